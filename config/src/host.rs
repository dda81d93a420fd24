//! Host names as the edge keys and routes them, and as purges name them.

/// Lower-cases a Host value and drops its port and any trailing dot. `None` when it is not a
/// host name or IP literal: such requests are refused, never routed or proxied.
pub fn normalize_host(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let host = if let Some(rest) = raw.strip_prefix('[') {
        // [v6]:port
        let end = rest.find(']')?;
        let after = &rest[end + 1..];
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(valid_port)) {
            return None;
        }
        return rest[..end]
            .parse::<std::net::Ipv6Addr>()
            .ok()
            .map(|a| format!("[{a}]"));
    } else {
        match raw.rsplit_once(':') {
            Some((h, port)) if valid_port(port) => h,
            Some(_) => return None,
            None => raw,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        && !host.split('.').any(str::is_empty);
    ok.then(|| host.to_ascii_lowercase())
}

fn valid_port(p: &str) -> bool {
    // Digits only (`u16::from_str` would take a `+`), and a port that exists.
    !p.is_empty()
        && p.len() <= 5
        && p.bytes().all(|b| b.is_ascii_digit())
        && p.parse::<u16>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_cases_and_drops_port_and_dot() {
        assert_eq!(
            normalize_host("A.Example.COM.:443").as_deref(),
            Some("a.example.com")
        );
        assert_eq!(normalize_host("a..b"), None);
        assert_eq!(normalize_host("a/b"), None);
    }
}
