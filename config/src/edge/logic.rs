//! The validated edge logic of a rule: header rules, redirects, the origin path, access control.
//! Each is compiled once at load; applying it is a pure function of the request.

use std::fmt;
use std::net::IpAddr;

use http::{HeaderName, HeaderValue};

pub use crate::cidr::Cidr;

/// Fields to set (replacing any of the name), add (beside any of the name) and remove.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderRules {
    /// Replace every field of the name with this one.
    pub set: Vec<(HeaderName, HeaderValue)>,
    /// Add this field beside those of the name (responses only).
    pub add: Vec<(HeaderName, HeaderValue)>,
    /// Remove every field of the name.
    pub remove: Vec<HeaderName>,
}

impl HeaderRules {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }
}

/// A part of a redirect's target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Written as is.
    Text(String),
    /// `{host}`: the request's host.
    Host,
    /// `{path}`: the request's path.
    Path,
    /// `{rest}`: the path after the rule's `path_prefix` (the whole path without its leading
    /// `/` for other matches).
    Rest,
    /// `{query}`: `?` and the query, or nothing.
    Query,
}

/// A redirect target with its placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(pub Vec<Piece>);

/// What a template's placeholders stand for in one request.
#[derive(Debug, Clone, Copy)]
pub struct Placeholders<'a> {
    /// The request's host.
    pub host: &'a str,
    /// The request's path.
    pub path: &'a str,
    /// The path after the matched prefix.
    pub rest: &'a str,
    /// The query without its `?`, if any.
    pub query: Option<&'a str>,
}

impl Template {
    /// Parses `{host}`, `{path}`, `{rest}` and `{query}` out of `text`; `{{` and `}}` are
    /// braces. An unknown placeholder or an unclosed brace is an error naming it.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let name: String = chars.by_ref().take_while(|&c| c != '}').collect();
                    let piece = match name.as_str() {
                        "host" => Piece::Host,
                        "path" => Piece::Path,
                        "rest" => Piece::Rest,
                        "query" => Piece::Query,
                        other => {
                            return Err(format!(
                                "unknown placeholder `{{{other}}}` (use {{host}}, {{path}}, {{rest}} or {{query}})"
                            ))
                        }
                    };
                    if !literal.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut literal)));
                    }
                    pieces.push(piece);
                }
                '}' => return Err("a `}` without its `{` (write `}}` for a brace)".into()),
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(Template(pieces))
    }

    /// The target for one request.
    pub fn render(&self, p: &Placeholders<'_>) -> String {
        let mut out = String::with_capacity(64);
        for piece in &self.0 {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Host => out.push_str(p.host),
                Piece::Path => out.push_str(p.path),
                Piece::Rest => out.push_str(p.rest),
                Piece::Query => {
                    if let Some(q) = p.query {
                        out.push('?');
                        out.push_str(q);
                    }
                }
            }
        }
        out
    }
}

/// A redirect answered at the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// Where to.
    pub to: Template,
    /// 301, 302, 303, 307 or 308.
    pub status: u16,
}

/// The statuses a redirect may use.
pub const REDIRECT_STATUSES: [u16; 5] = [301, 302, 303, 307, 308];

/// The path sent to the origin, changed from the client's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginPath {
    /// Removed from the front of the path when it is there.
    pub strip_prefix: Option<String>,
    /// Put in front of the path.
    pub add_prefix: Option<String>,
}

impl OriginPath {
    /// The origin's path for the client's `path`.
    pub fn apply(&self, path: &str) -> String {
        let mut rest = path;
        if let Some(strip) = &self.strip_prefix {
            if let Some(r) = rest.strip_prefix(strip.as_str()) {
                if r.is_empty() || r.starts_with('/') || strip.ends_with('/') {
                    rest = r;
                }
            }
        }
        let rest = rest.trim_start_matches('/');
        match &self.add_prefix {
            Some(add) => format!("{}/{rest}", add.trim_end_matches('/')),
            None => format!("/{rest}"),
        }
    }
}

/// The proxies in front of the edge that are trusted to name the client in a header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIp {
    /// Peers (and hops) whose word is taken.
    pub trusted: Vec<Cidr>,
    /// The header they append the client to (`X-Forwarded-For`).
    pub header: HeaderName,
}

impl ClientIp {
    /// The client behind `peer`: the peer itself unless it is trusted; then, walking the
    /// header's list from its right end (the hop nearest the edge), the first address that is
    /// not trusted, or the left-most one when all are. A malformed entry ends the walk at the
    /// last address known good.
    pub fn client(&self, peer: IpAddr, headers: &http::HeaderMap) -> IpAddr {
        let trusted = |ip: IpAddr| self.trusted.iter().any(|c| c.contains(ip));
        if !trusted(peer) {
            return peer;
        }
        let mut client = peer;
        let fields: Vec<&str> = headers
            .get_all(&self.header)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        for hop in fields.iter().rev().flat_map(|f| f.rsplit(',')) {
            let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                return client;
            };
            client = ip;
            if !trusted(ip) {
                return ip;
            }
        }
        client
    }
}

/// Which clients a rule serves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    /// When non-empty, only these.
    pub allow: Vec<Cidr>,
    /// Never these (wins over `allow`).
    pub deny: Vec<Cidr>,
}

impl Access {
    /// Whether a client at `ip` is served.
    pub fn permits(&self, ip: IpAddr) -> bool {
        if self.deny.iter().any(|c| c.contains(ip)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|c| c.contains(ip))
    }
}

/// Signed URLs a rule requires (DESIGN.md: HMAC-SHA256 over the path and query up to
/// `&<signature_param>=`, base64url without padding; `expires_param` in Unix seconds).
#[derive(Clone, PartialEq, Eq)]
pub struct SignedUrl {
    /// Every key accepted (one per line of the key file, for rotation); the first signs.
    pub keys: Vec<Vec<u8>>,
    /// The parameter holding the expiry (`exp`).
    pub expires_param: String,
    /// The parameter holding the signature (`sig`), the last of the URL.
    pub signature_param: String,
}

impl fmt::Debug for SignedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print a key.
        f.debug_struct("SignedUrl")
            .field("keys", &self.keys.len())
            .field("expires_param", &self.expires_param)
            .field("signature_param", &self.signature_param)
            .finish()
    }
}

/// The keys of a URL-signing key file: each non-blank line, surrounding whitespace trimmed.
pub fn read_url_keys(path: &std::path::Path) -> Result<Vec<Vec<u8>>, String> {
    let text = std::fs::read(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let keys: Vec<Vec<u8>> = text
        .split(|b| *b == b'\n')
        .map(|l| l.trim_ascii().to_vec())
        .filter(|l| !l.is_empty())
        .collect();
    if keys.is_empty() {
        return Err(format!("{}: holds no key", path.display()));
    }
    Ok(keys)
}

/// How many requests one client may make under a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per `per`, sustained.
    pub requests: u64,
    /// The period of `requests`.
    pub per: std::time::Duration,
    /// Requests a client that was quiet may make at once (at least `requests`).
    pub burst: u64,
}

impl RateLimit {
    /// The window over which a client's requests are counted against `burst`: the time a
    /// full burst takes to earn back at the sustained rate.
    pub fn window(&self) -> std::time::Duration {
        self.per
            .mul_f64(self.burst as f64 / self.requests.max(1) as f64)
    }

    /// Whole seconds a refused client should wait (`Retry-After`): the time one request takes
    /// to earn back, at least a second.
    pub fn retry_after(&self) -> u64 {
        let per_request = self.per.as_secs_f64() / self.requests.max(1) as f64;
        (per_request.ceil() as u64).max(1)
    }
}

/// A page served in place of an error response's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorPage {
    /// Its bytes, read when the configuration was loaded.
    pub body: std::sync::Arc<[u8]>,
    /// From the file's extension.
    pub content_type: &'static str,
}

/// A site's error pages: an exact status wins over its class.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorPages {
    /// By status, 400 to 599.
    pub exact: std::collections::BTreeMap<u16, ErrorPage>,
    /// `4xx` and `5xx`.
    pub class: [Option<ErrorPage>; 2],
}

impl ErrorPages {
    /// The page for `status`, if any.
    pub fn for_status(&self, status: u16) -> Option<&ErrorPage> {
        if status < 400 {
            return None;
        }
        if let Some(p) = self.exact.get(&status) {
            return Some(p);
        }
        match status {
            400..=499 => self.class[0].as_ref(),
            500..=599 => self.class[1].as_ref(),
            _ => None,
        }
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.class.iter().all(Option::is_none)
    }
}

/// The content type of a page named `path`, by its extension.
pub fn content_type_of(path: &std::path::Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("json") => "application/json",
        Some("xml") => "application/xml",
        Some("svg") => "image/svg+xml",
        Some("css") => "text/css; charset=utf-8",
        _ => "text/plain; charset=utf-8",
    }
}

/// What a rule does besides caching.
#[derive(Debug, Clone, Default)]
pub struct Logic {
    /// Applied to every response the rule matches, never to what is stored.
    pub response_headers: HeaderRules,
    /// Applied to the request sent to the origin.
    pub request_headers: HeaderRules,
    /// Answered at the edge.
    pub redirect: Option<Redirect>,
    /// A request on a plain-HTTP listener is sent to `https://{host}{path}{query}` (308).
    pub redirect_https: bool,
    /// The path sent to the origin.
    pub origin_path: Option<OriginPath>,
    /// Which clients are served.
    pub access: Option<Access>,
    /// How often one client may ask.
    pub rate_limit: Option<RateLimit>,
    /// The signature every request must carry.
    pub signed_url: Option<SignedUrl>,
}

impl Logic {
    /// Whether it may answer a request at the edge (refuse, limit or redirect it), so the
    /// request path must consult it before the cache.
    pub fn acts_on_requests(&self) -> bool {
        self.access.is_some()
            || self.signed_url.is_some()
            || self.rate_limit.is_some()
            || self.redirect.is_some()
            || self.redirect_https
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_blocks_of_both_families() {
        let net = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(net.contains("10.200.3.4".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.1.1".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
        let odd = Cidr::parse("192.168.0.0/23").unwrap();
        assert!(odd.contains("192.168.1.255".parse().unwrap()));
        assert!(!odd.contains("192.168.2.0".parse().unwrap()));
        let host = Cidr::parse("::1").unwrap();
        assert_eq!(host.to_string(), "::1/128");
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "example.com",
            "10.0.0.0/x",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_client_is_the_right_most_untrusted_hop() {
        let c = ClientIp {
            trusted: vec![
                Cidr::parse("10.0.0.0/8").unwrap(),
                Cidr::parse("::1").unwrap(),
            ],
            header: HeaderName::from_static("x-forwarded-for"),
        };
        let mut h = http::HeaderMap::new();
        h.append(
            "x-forwarded-for",
            HeaderValue::from_static("198.51.100.7, 203.0.113.9"),
        );
        h.append("x-forwarded-for", HeaderValue::from_static("10.1.1.1"));
        let lb: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(c.client(lb, &h), "203.0.113.9".parse::<IpAddr>().unwrap());
        let stranger: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            c.client(stranger, &h),
            stranger,
            "an untrusted peer is the client"
        );
        assert_eq!(c.client(lb, &http::HeaderMap::new()), lb);
        let mut all = http::HeaderMap::new();
        all.insert(
            "x-forwarded-for",
            HeaderValue::from_static("10.9.9.9, 10.1.1.1"),
        );
        assert_eq!(c.client(lb, &all), "10.9.9.9".parse::<IpAddr>().unwrap());
        let mut junk = http::HeaderMap::new();
        junk.insert(
            "x-forwarded-for",
            HeaderValue::from_static("forged, 10.1.1.1"),
        );
        assert_eq!(c.client(lb, &junk), "10.1.1.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn deny_wins_and_a_non_empty_allow_refuses_the_rest() {
        let a = Access {
            allow: vec![Cidr::parse("10.0.0.0/8").unwrap()],
            deny: vec![Cidr::parse("10.9.0.0/16").unwrap()],
        };
        assert!(a.permits("10.1.2.3".parse().unwrap()));
        assert!(!a.permits("10.9.2.3".parse().unwrap()));
        assert!(!a.permits("192.0.2.1".parse().unwrap()));
        let deny_only = Access {
            allow: vec![],
            deny: vec![Cidr::parse("192.0.2.0/24").unwrap()],
        };
        assert!(deny_only.permits("10.1.2.3".parse().unwrap()));
        assert!(!deny_only.permits("192.0.2.9".parse().unwrap()));
    }

    #[test]
    fn templates_fill_their_placeholders() {
        let t = Template::parse("https://{host}/new/{rest}{query}").unwrap();
        let p = Placeholders {
            host: "static.example.com",
            path: "/old/a/b.css",
            rest: "a/b.css",
            query: Some("v=2"),
        };
        assert_eq!(t.render(&p), "https://static.example.com/new/a/b.css?v=2");
        let q = Placeholders { query: None, ..p };
        assert_eq!(t.render(&q), "https://static.example.com/new/a/b.css");
        assert_eq!(
            Template::parse("/x{{y}}{path}").unwrap().render(&p),
            "/x{y}/old/a/b.css"
        );
        assert!(Template::parse("/{file}").unwrap_err().contains("`{file}`"));
        assert!(Template::parse("/a}").is_err());
    }

    #[test]
    fn the_origin_path_strips_and_adds_prefixes() {
        let both = OriginPath {
            strip_prefix: Some("/app".into()),
            add_prefix: Some("/dist".into()),
        };
        assert_eq!(both.apply("/app/x/y.js"), "/dist/x/y.js");
        assert_eq!(both.apply("/app"), "/dist/");
        assert_eq!(
            both.apply("/apple/x"),
            "/dist/apple/x",
            "a prefix ends at a segment"
        );
        assert_eq!(both.apply("/other"), "/dist/other");
        let strip = OriginPath {
            strip_prefix: Some("/v1/".into()),
            add_prefix: None,
        };
        assert_eq!(strip.apply("/v1/users"), "/users");
        let add = OriginPath {
            strip_prefix: None,
            add_prefix: Some("/bucket/".into()),
        };
        assert_eq!(add.apply("/a.css"), "/bucket/a.css");
    }
}
