//! The cache key: scheme, host, path, the normalised query and any keyed request headers.
//!
//! Components are length-prefixed before hashing, so no choice of host, path or query can make
//! two different requests share a key (a key without the host was CVE-2026-2836).
//!
//! The key carries its hash, made once: Pingora's `CacheKey` hashes its primary key (Blake2b)
//! on every `primary_bin`/`combined_bin` call, several times per miss, which showed in miss
//! profiles. The hash is the one Pingora would compute, so stored objects keep theirs.

use edge_config::edge::{CacheKeySpec, QueryKey};
use pingora::cache::key::hash_key;
use pingora::cache::CacheKey;
use pingora::http::RequestHeader;

/// Builds the key for a request to `host` (already lower-cased, without port) under `spec`.
pub fn cache_key(scheme: &str, host: &str, req: &RequestHeader, spec: &CacheKeySpec) -> CacheKey {
    let mut primary = Vec::with_capacity(128);
    push(&mut primary, b"v1");
    push(&mut primary, scheme.as_bytes());
    push(&mut primary, host.as_bytes());
    push(&mut primary, req.uri.path().as_bytes());
    let query = normalised_query(req.uri.query(), &spec.query);
    push(&mut primary, query.as_bytes());
    for name in &spec.headers {
        push(&mut primary, name.as_bytes());
        let mut values = req.headers.get_all(name.as_str()).iter().peekable();
        if values.peek().is_none() {
            // Absent differs from present-but-empty.
            primary.push(0xff);
        }
        for v in values {
            push(&mut primary, v.as_bytes());
        }
    }
    let hash = hash_key(&primary);
    let mut key = CacheKey::new(primary, "");
    key.set_primary_bin_override(hash);
    key
}

/// Host and path of a stored object, read back from its primary key (for purges by host,
/// prefix and path, which match what the key was built from).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyParts<'a> {
    /// `http` or `https`.
    pub scheme: &'a [u8],
    /// Normalised host.
    pub host: &'a [u8],
    /// Path as requested.
    pub path: &'a [u8],
}

/// Splits a primary key built by [`cache_key`]; `None` for any other shape.
pub fn parts(primary: &[u8]) -> Option<KeyParts<'_>> {
    let mut rest = primary;
    let mut next = || {
        let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let part = rest.get(4..4 + len)?;
        rest = &rest[4 + len..];
        Some(part)
    };
    if next()? != b"v1" {
        return None;
    }
    Some(KeyParts {
        scheme: next()?,
        host: next()?,
        path: next()?,
    })
}

fn push(out: &mut Vec<u8>, part: &[u8]) {
    out.extend_from_slice(&(part.len() as u32).to_be_bytes());
    out.extend_from_slice(part);
}

/// The query as it enters the key: parameters sorted by name so their order does not split the
/// cache, filtered to the kept names when the rule lists them. The sort is stable: repeated
/// names keep their order, because origins that read the first (or last) value would answer
/// `?a=1&a=2` and `?a=2&a=1` differently.
pub fn normalised_query(query: Option<&str>, mode: &QueryKey) -> String {
    let (Some(q), false) = (query, *mode == QueryKey::Ignore) else {
        return String::new();
    };
    let pairs = q.split('&').filter(|p| !p.is_empty());
    let mut pairs: Vec<&str> = match mode {
        QueryKey::Keep(names) => pairs
            .filter(|p| names.iter().any(|k| k == param_name(p)))
            .collect(),
        _ => pairs.collect(),
    };
    pairs.sort_by(|a, b| param_name(a).cmp(param_name(b)));
    pairs.join("&")
}

fn param_name(pair: &str) -> &str {
    pair.split_once('=').map_or(pair, |(n, _)| n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora::cache::key::CacheHashKey;

    fn req(uri: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", uri.as_bytes(), None).unwrap();
        for (k, v) in headers {
            r.insert_header(k.to_string(), *v).unwrap();
        }
        r
    }

    fn key(host: &str, uri: &str, spec: &CacheKeySpec) -> [u8; 16] {
        cache_key("http", host, &req(uri, &[]), spec).primary_bin()
    }

    #[test]
    fn the_hash_carried_is_the_one_pingora_computes() {
        let s = CacheKeySpec::default();
        let key = cache_key("https", "a.com", &req("/p?b=2&a=1", &[]), &s);
        let plain = CacheKey::new(key.primary_key().to_vec(), "");
        assert_eq!(key.primary_bin(), plain.primary_bin());
        assert_eq!(key.combined_bin(), plain.combined_bin());
    }

    #[test]
    fn host_and_path_are_separate_components() {
        let s = CacheKeySpec::default();
        assert_ne!(key("a.com", "/b/c", &s), key("a.com/b", "/c", &s));
        assert_ne!(key("a.com", "/x", &s), key("b.com", "/x", &s));
        assert_ne!(
            cache_key("http", "a.com", &req("/x", &[]), &s).primary_bin(),
            cache_key("https", "a.com", &req("/x", &[]), &s).primary_bin()
        );
    }

    #[test]
    fn parts_read_back_host_and_path() {
        let spec = CacheKeySpec {
            query: QueryKey::All,
            headers: vec!["x-device".into()],
        };
        let k = cache_key(
            "https",
            "a.com",
            &req("/x/y?q=1", &[("x-device", "m")]),
            &spec,
        );
        let p = parts(k.primary_key()).unwrap();
        assert_eq!(
            (p.scheme, p.host, p.path),
            (&b"https"[..], &b"a.com"[..], &b"/x/y"[..])
        );
        assert_eq!(parts(b"v2"), None);
        assert_eq!(parts(&[0, 0, 0, 9, b'v']), None);
    }

    #[test]
    fn query_modes() {
        let all = CacheKeySpec::default();
        assert_eq!(key("h", "/p?b=2&a=1", &all), key("h", "/p?a=1&b=2", &all));
        assert_ne!(key("h", "/p?a=1", &all), key("h", "/p?a=2", &all));
        assert_ne!(key("h", "/p?a=1", &all), key("h", "/p", &all));
        let ignore = CacheKeySpec {
            query: QueryKey::Ignore,
            headers: vec![],
        };
        assert_eq!(key("h", "/p?a=1", &ignore), key("h", "/p", &ignore));
        let keep = CacheKeySpec {
            query: QueryKey::Keep(vec!["v".into()]),
            headers: vec![],
        };
        assert_eq!(key("h", "/p?v=1&utm=x", &keep), key("h", "/p?v=1", &keep));
        assert_ne!(key("h", "/p?v=1", &keep), key("h", "/p?v=2", &keep));
    }

    #[test]
    fn keyed_headers_split_the_cache() {
        let spec = CacheKeySpec {
            query: QueryKey::All,
            headers: vec!["x-device".into()],
        };
        let k = |h: &[(&str, &str)]| cache_key("http", "h", &req("/p", h), &spec).primary_bin();
        assert_ne!(k(&[("x-device", "mobile")]), k(&[("x-device", "desktop")]));
        assert_ne!(k(&[("x-device", "")]), k(&[]));
        assert_eq!(k(&[("x-device", "mobile")]), k(&[("x-device", "mobile")]));
    }
}
