//! What a request must look like before it is keyed, routed or forwarded: within the size
//! limits, its path in the one form that the rules, the cache key and the origin all see, and
//! without the headers that change an origin's answer but are not in the key.

use edge_config::edge::Limits;
use http::Uri;
use pingora::http::RequestHeader;

/// Request headers that many origin frameworks honour (to rebuild links, pick a route, or
/// change the method) but that clients can set freely. Unless a rule keys on one, forwarding it
/// would let one client's value decide the body every other client gets: they are dropped on
/// requests whose answer may be stored.
pub const UNKEYED_HAZARDS: &[&str] = &[
    "forwarded",
    "x-forwarded-host",
    "x-forwarded-scheme",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-server",
    "x-host",
    "x-original-url",
    "x-rewrite-url",
    "x-original-host",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Why a request is refused before it is routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oversize {
    /// The request target is longer than `max_uri_size`: 414.
    Uri,
    /// The header fields are too many or too large: 431.
    Header,
}

impl Oversize {
    /// The status that answers it.
    pub fn status(self) -> u16 {
        match self {
            Oversize::Uri => 414,
            Oversize::Header => 431,
        }
    }

    /// The `Cache-Status` detail and log reason.
    pub fn detail(self) -> &'static str {
        match self {
            Oversize::Uri => "uri-too-long",
            Oversize::Header => "header-too-large",
        }
    }
}

/// Checks a request against the configured limits.
pub fn check_limits(req: &RequestHeader, limits: &Limits) -> Result<(), Oversize> {
    if req.raw_path().len() > limits.max_uri_size {
        return Err(Oversize::Uri);
    }
    if req.headers.len() > limits.max_headers {
        return Err(Oversize::Header);
    }
    let bytes: usize = req
        .headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    if bytes > limits.max_header_size {
        return Err(Oversize::Header);
    }
    Ok(())
}

/// The request's URI with dot-segments removed (RFC 3986 §5.2.4), `None` when it is already in
/// that form. `%2e` counts as a dot, as origins that decode it will read it so; `%2F` and `;`
/// are left as they are, so the key and the origin both see them verbatim.
pub fn normalized_uri(uri: &Uri) -> Option<Uri> {
    let path = uri.path();
    if !path.starts_with('/') || !has_dot_segment(path) {
        return None;
    }
    let clean = remove_dot_segments(path);
    let pq = match uri.query() {
        Some(q) => format!("{clean}?{q}"),
        None => clean,
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = pq.parse().ok();
    Uri::from_parts(parts).ok()
}

/// How many dots a segment spells, counting `%2e` as one; `None` if it holds anything else.
fn dots(seg: &str) -> Option<usize> {
    let mut rest = seg.as_bytes();
    let mut n = 0;
    while !rest.is_empty() {
        rest = match rest {
            [b'.', tail @ ..] => tail,
            [b'%', b'2', b'e' | b'E', tail @ ..] => tail,
            _ => return None,
        };
        n += 1;
    }
    Some(n)
}

fn is_dot(seg: &str) -> bool {
    dots(seg) == Some(1)
}

fn is_dot_dot(seg: &str) -> bool {
    dots(seg) == Some(2)
}

fn has_dot_segment(path: &str) -> bool {
    // Most paths have neither a dot nor a percent sign: nothing to scan for.
    (path.contains('.') || path.contains('%'))
        && path.split('/').any(|s| is_dot(s) || is_dot_dot(s))
}

/// Removes `.` and `..` segments from an absolute path; `..` never climbs above the root.
pub fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segs: Vec<&str> = path.split('/').skip(1).collect();
    let last = segs.len().saturating_sub(1);
    for (i, seg) in segs.iter().enumerate() {
        if is_dot(seg) || is_dot_dot(seg) {
            if is_dot_dot(seg) {
                out.pop();
            }
            // A trailing dot segment leaves a directory: `/a/b/..` is `/a/`.
            if i == last {
                out.push("");
            }
        } else {
            out.push(seg);
        }
    }
    format!("/{}", out.join("/"))
}

/// Makes the target sent upstream exactly the one the key was built from. Pingora keeps the raw
/// bytes of a request line it had to escape and would send those; the key sees the escaped URI.
pub fn forward_as_keyed(req: &mut RequestHeader) {
    let keyed = req.uri.path_and_query().map(|pq| pq.as_str().as_bytes());
    if keyed.is_some_and(|k| k != req.raw_path()) {
        let uri = req.uri.clone();
        req.set_uri(uri);
    }
}

/// Whether the request carries a body (chunked, or a non-zero Content-Length).
pub fn has_body(req: &RequestHeader) -> bool {
    req.headers.contains_key(http::header::TRANSFER_ENCODING)
        || req
            .headers
            .get(http::header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
}

/// Drops the [`UNKEYED_HAZARDS`] that `keyed` (the rule's keyed headers) does not name.
pub fn strip_unkeyed(req: &mut RequestHeader, keyed: &[String]) {
    for name in UNKEYED_HAZARDS {
        if !keyed.iter().any(|k| k.eq_ignore_ascii_case(name)) {
            req.remove_header(*name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &str) -> String {
        let uri: Uri = p.parse().unwrap();
        normalized_uri(&uri).map_or_else(|| p.to_string(), |u| u.to_string())
    }

    #[test]
    fn dot_segments_are_removed_and_nothing_else_changes() {
        assert_eq!(norm("/a/./b/../c"), "/a/c");
        assert_eq!(norm("/a/../../etc/passwd"), "/etc/passwd");
        assert_eq!(norm("/a/%2e%2E/b"), "/b");
        assert_eq!(norm("/a/.%2e/b?x=/../y"), "/b?x=/../y");
        assert_eq!(norm("/a/b/.."), "/a/");
        assert_eq!(norm("/a/b/."), "/a/b/");
        assert_eq!(norm("/.."), "/");
        assert_eq!(norm("/a%2F..%2Fb"), "/a%2F..%2Fb", "%2F is not a separator");
        assert_eq!(norm("/a;x=1/b"), "/a;x=1/b");
        assert_eq!(norm("/a..b/...c/.d"), "/a..b/...c/.d");
        assert_eq!(
            norm("//a//b"),
            "//a//b",
            "empty segments are the origin's business"
        );
        assert_eq!(
            norm("http://h.test/a/../b"),
            "http://h.test/b",
            "absolute form keeps its authority"
        );
    }

    #[test]
    fn limits_answer_414_and_431() {
        let limits = Limits {
            max_uri_size: 300,
            max_header_size: 1024,
            max_headers: 8,
            ..Limits::default()
        };
        let mut r =
            RequestHeader::build("GET", format!("/{}", "a".repeat(299)).as_bytes(), None).unwrap();
        assert_eq!(check_limits(&r, &limits), Ok(()));
        r.set_uri(format!("/{}", "a".repeat(300)).parse().unwrap());
        assert_eq!(check_limits(&r, &limits), Err(Oversize::Uri));
        r.set_uri("/".parse().unwrap());
        r.insert_header("x-big", "v".repeat(1100)).unwrap();
        assert_eq!(check_limits(&r, &limits), Err(Oversize::Header));
        r.remove_header("x-big");
        for i in 0..9 {
            r.insert_header(format!("x-{i}"), "v").unwrap();
        }
        assert_eq!(check_limits(&r, &limits), Err(Oversize::Header));
    }

    #[test]
    fn hazards_go_unless_keyed() {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        r.insert_header("x-forwarded-host", "evil.test").unwrap();
        r.insert_header("X-HTTP-Method-Override", "DELETE").unwrap();
        r.insert_header("accept", "*/*").unwrap();
        strip_unkeyed(&mut r, &["x-http-method-override".to_string()]);
        assert!(r.headers.get("x-forwarded-host").is_none());
        assert_eq!(r.headers.get("x-http-method-override").unwrap(), "DELETE");
        assert_eq!(r.headers.get("accept").unwrap(), "*/*");
    }
}
