//! `Cache-Status` (RFC 9211) read as the list it is, so tests assert on parameters, not on
//! substrings of the field.

/// One cache's entry: its name and its parameters, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The cache's name (the node id).
    pub cache: String,
    /// Each parameter and its value, unquoted (`None` for a bare one such as `hit`).
    pub params: Vec<(String, Option<String>)>,
}

impl Entry {
    /// The value of parameter `key`, if it is there with one.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_deref())
    }

    /// Whether parameter `key` is there, with or without a value.
    pub fn has(&self, key: &str) -> bool {
        self.params.iter().any(|(k, _)| k == key)
    }

    /// Whether every `;`-separated item of `expect` holds: `hit` (a bare parameter is there),
    /// `fwd=miss` (a parameter has this value), `ttl=` (a parameter is there, any value).
    pub fn matches(&self, expect: &str) -> bool {
        expect
            .split(';')
            .map(str::trim)
            .filter(|i| !i.is_empty())
            .all(|item| match item.split_once('=') {
                Some((k, "")) => self.has(k),
                Some((k, v)) => self.get(k) == Some(v),
                None => self.has(item),
            })
    }
}

/// The entries of a `Cache-Status` field, the first cache (nearest the origin) first.
pub fn parse(field: &str) -> Vec<Entry> {
    split_outside_quotes(field, ',')
        .into_iter()
        .filter(|e| !e.trim().is_empty())
        .map(|entry| {
            let mut items = split_outside_quotes(&entry, ';').into_iter();
            let cache = items.next().unwrap_or_default().trim().to_string();
            let params = items
                .map(|p| {
                    let p = p.trim();
                    match p.split_once('=') {
                        Some((k, v)) => (k.to_string(), Some(v.trim_matches('"').to_string())),
                        None => (p.to_string(), None),
                    }
                })
                .collect();
            Entry { cache, params }
        })
        .collect()
}

fn split_outside_quotes(s: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    for c in s.chars() {
        if c == '"' {
            quoted = !quoted;
        }
        if c == sep && !quoted {
            out.push(String::new());
        } else if let Some(last) = out.last_mut() {
            last.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_and_parameters() {
        let e = parse("shield-1; hit; ttl=5, edge-1; fwd=miss; stored; detail=\"a, b; c\"");
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].cache, "shield-1");
        assert!(e[0].matches("hit; ttl="));
        assert!(!e[1].matches("hit"));
        assert!(e[1].matches("fwd=miss; stored"));
        assert_eq!(e[1].get("detail"), Some("a, b; c"));
        assert!(!e[1].matches("fwd=mis"));
    }
}
