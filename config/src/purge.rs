//! The purge wire format both sides speak: the body a deploy pipeline sends to purge-api, the
//! body purge-api sends to each edge node (the same fields plus the log position), and the
//! node's answer. Validation lives here too, so the API and the node refuse the same things.

use serde::{Deserialize, Serialize};

use crate::host::normalize_host;

/// Targets per request unless the purge-api config says otherwise.
pub const DEFAULT_MAX_ITEMS: usize = 1000;

/// Longest tag accepted; the edge ignores longer ones in responses too.
pub const MAX_TAG: usize = 1024;

fn is_false(b: &bool) -> bool {
    !*b
}

/// A purge: what to invalidate, and how.
///
/// Callers of purge-api leave `seq`, `log` and `head` out; purge-api sets them when it delivers
/// a logged purge to a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Purge {
    /// Position of this purge in the purge log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Identity of the purge log, so a node notices a log that was replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    /// Newest sequence in the log when this was sent: a node that reaches it has caught up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<u64>,
    /// Absolute URLs: `https://static.example.com/a.css` (every variant, either scheme).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// `host/path-prefix`: `static.example.com/assets/`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<String>,
    /// Host names: everything stored for them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Cache tags (`Surrogate-Key` / `Cache-Tag` values).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Everything.
    #[serde(default, skip_serializing_if = "is_false")]
    pub all: bool,
    /// Mark stale (revalidate, serve stale where allowed) instead of deleting.
    #[serde(default, skip_serializing_if = "is_false")]
    pub soft: bool,
}

/// What a purge body looks like, for error messages.
const EXAMPLE: &str = r#"{"urls": ["https://static.example.com/app.css"], "tags": ["release-42"]}"#;

impl Purge {
    /// A purge from a request body, or a message for the caller that says what is expected:
    /// a JSON object naming `urls`, `prefixes`, `hosts`, `tags`, `all` and `soft`.
    pub fn from_json(body: &[u8]) -> Result<Purge, String> {
        let starts_as_object = body
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| *b == b'{');
        if !starts_as_object {
            return Err(format!(
                "the body must be a JSON object (Content-Type: application/json), for example {EXAMPLE}"
            ));
        }
        serde_json::from_slice(body).map_err(|e| {
            let text = e.to_string();
            match text.strip_prefix("unknown field `") {
                Some(rest) => {
                    let field = rest.split('`').next().unwrap_or("");
                    format!(
                        "unknown field `{field}`: a purge names urls, prefixes, hosts, tags, all and soft, for example {EXAMPLE}"
                    )
                }
                None => format!("malformed purge: {text}; expected a JSON object such as {EXAMPLE}"),
            }
        })
    }
}

/// A URL target, split as the cache key sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlTarget {
    /// Normalised host (lower case, no port).
    pub host: String,
    /// Path, as sent on the wire.
    pub path: String,
    /// Query without the `?`, if any.
    pub query: Option<String>,
}

/// A prefix target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixTarget {
    /// Normalised host.
    pub host: String,
    /// Path prefix, starting with `/`.
    pub path: String,
}

/// A validated purge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Targets {
    /// URLs.
    pub urls: Vec<UrlTarget>,
    /// Prefixes.
    pub prefixes: Vec<PrefixTarget>,
    /// Normalised hosts.
    pub hosts: Vec<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Everything.
    pub all: bool,
    /// Soft (expire) rather than hard (delete).
    pub soft: bool,
}

impl Targets {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        !self.all
            && self.urls.is_empty()
            && self.prefixes.is_empty()
            && self.hosts.is_empty()
            && self.tags.is_empty()
    }
}

/// Why a purge is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPurge {
    /// No target at all.
    #[error("the purge names nothing: give urls, prefixes, hosts, tags, or \"all\": true")]
    Empty,
    /// More targets than allowed in one request.
    #[error("{items} targets in one purge; at most {max} are accepted, split the request")]
    TooMany {
        /// Targets given.
        items: usize,
        /// The limit.
        max: usize,
    },
    /// A target that cannot be understood.
    #[error("{0}")]
    Bad(String),
}

impl Purge {
    /// How many targets it names (`all` counts as one).
    pub fn items(&self) -> usize {
        self.urls.len()
            + self.prefixes.len()
            + self.hosts.len()
            + self.tags.len()
            + usize::from(self.all)
    }

    /// Checks every target and splits URLs and prefixes into their parts.
    pub fn targets(&self, max_items: usize) -> Result<Targets, InvalidPurge> {
        let items = self.items();
        if items > max_items {
            return Err(InvalidPurge::TooMany {
                items,
                max: max_items,
            });
        }
        let t = Targets {
            urls: self
                .urls
                .iter()
                .map(|u| parse_url(u))
                .collect::<Result<_, _>>()?,
            prefixes: self
                .prefixes
                .iter()
                .map(|p| parse_prefix(p))
                .collect::<Result<_, _>>()?,
            hosts: self
                .hosts
                .iter()
                .map(|h| {
                    normalize_host(h).ok_or_else(|| bad(format!("hosts: {h:?} is not a host name")))
                })
                .collect::<Result<_, _>>()?,
            tags: self
                .tags
                .iter()
                .map(|t| check_tag(t).map(str::to_string))
                .collect::<Result<_, _>>()?,
            all: self.all,
            soft: self.soft,
        };
        if t.is_empty() {
            return Err(InvalidPurge::Empty);
        }
        Ok(t)
    }
}

fn bad(msg: String) -> InvalidPurge {
    InvalidPurge::Bad(msg)
}

fn check_path(field: &str, raw: &str, path: &str) -> Result<(), InvalidPurge> {
    if path.bytes().any(|b| !b.is_ascii_graphic()) {
        return Err(bad(format!(
            "{field}: {raw:?} has spaces, control or non-ASCII characters in its path; percent-encode them as the request does"
        )));
    }
    Ok(())
}

/// `http(s)://host[:port]/path[?query]`; a fragment is dropped, as clients never send one.
fn parse_url(raw: &str) -> Result<UrlTarget, InvalidPurge> {
    let err = |why: &str| bad(format!("urls: {raw:?} {why}"));
    let (scheme, rest) = raw
        .split_once("://")
        .ok_or_else(|| err("is not an absolute URL (https://host/path)"))?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(err("must use http or https"));
    }
    let rest = rest.split_once('#').map_or(rest, |(r, _)| r);
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, target) = rest.split_at(split);
    if authority.contains('@') {
        return Err(err("must not carry user information"));
    }
    let host = normalize_host(authority).ok_or_else(|| err("has no valid host"))?;
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (target, None),
    };
    let path = if path.is_empty() { "/" } else { path };
    check_path("urls", raw, path)?;
    if let Some(q) = &query {
        check_path("urls", raw, q)?;
    }
    Ok(UrlTarget {
        host,
        path: path.to_string(),
        query: query.filter(|q| !q.is_empty()),
    })
}

/// `host/path-prefix`, optionally with a scheme in front (it is ignored: both schemes go).
fn parse_prefix(raw: &str) -> Result<PrefixTarget, InvalidPurge> {
    let rest = raw.split_once("://").map_or(raw, |(_, r)| r);
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let host = normalize_host(authority).ok_or_else(|| {
        bad(format!(
            "prefixes: {raw:?} must start with a host name (host/path)"
        ))
    })?;
    check_path("prefixes", raw, path)?;
    Ok(PrefixTarget {
        host,
        path: path.to_string(),
    })
}

fn check_tag(tag: &str) -> Result<&str, InvalidPurge> {
    if tag.is_empty() || tag.len() > MAX_TAG || !tag.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad(format!(
            "tags: {tag:?} must be 1 to {MAX_TAG} visible ASCII characters without spaces"
        )));
    }
    Ok(tag)
}

/// A node's purge position: the answer to `POST /purge` and `GET /purge/state`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    /// Last sequence applied, durably.
    pub applied_seq: u64,
    /// The log that sequence belongs to, if the node has seen one.
    #[serde(default)]
    pub log: Option<String>,
    /// The node id.
    #[serde(default)]
    pub node: String,
    /// Whether the node has caught up since it started (its `/readyz`).
    #[serde(default)]
    pub ready: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn purge(json: &str) -> Result<Purge, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(purge(r#"{"url": ["x"]}"#)
            .unwrap_err()
            .contains("unknown field"));
    }

    #[test]
    fn urls_split_into_host_path_and_query() {
        let p = purge(
            r#"{"urls": ["HTTPS://Static.Example.com:443/a/b.css?v=1#top", "http://x.org"]}"#,
        )
        .unwrap();
        let t = p.targets(10).unwrap();
        assert_eq!(
            t.urls[0],
            UrlTarget {
                host: "static.example.com".into(),
                path: "/a/b.css".into(),
                query: Some("v=1".into())
            }
        );
        assert_eq!(t.urls[1].path, "/");
        assert_eq!(t.urls[1].query, None);
    }

    #[test]
    fn malformed_urls_are_refused() {
        for u in [
            "/a.css",
            "ftp://x.org/a",
            "https:///a",
            "https://user@x.org/a",
            "https://x.org/a b",
            "https://bad host/",
        ] {
            let p = Purge {
                urls: vec![u.into()],
                ..Default::default()
            };
            assert!(matches!(p.targets(10), Err(InvalidPurge::Bad(_))), "{u}");
        }
    }

    #[test]
    fn prefixes_hosts_and_tags() {
        let p = Purge {
            prefixes: vec!["Static.example.com/assets/".into(), "x.org".into()],
            hosts: vec!["A.com:8080".into()],
            tags: vec!["product-1".into()],
            ..Default::default()
        };
        let t = p.targets(10).unwrap();
        assert_eq!(t.prefixes[0].host, "static.example.com");
        assert_eq!(t.prefixes[0].path, "/assets/");
        assert_eq!(t.prefixes[1].path, "/");
        assert_eq!(t.hosts, vec!["a.com"]);
        for bad in [
            vec!["".to_string()],
            vec!["a b".into()],
            vec!["x".repeat(2000)],
        ] {
            let p = Purge {
                tags: bad,
                ..Default::default()
            };
            assert!(p.targets(10).is_err());
        }
        let p = Purge {
            hosts: vec!["no/host".into()],
            ..Default::default()
        };
        assert!(p.targets(10).is_err());
    }

    #[test]
    fn empty_and_oversized_purges_are_refused() {
        assert_eq!(Purge::default().targets(10), Err(InvalidPurge::Empty));
        let soft_only = Purge {
            soft: true,
            ..Default::default()
        };
        assert_eq!(soft_only.targets(10), Err(InvalidPurge::Empty));
        let many = Purge {
            tags: (0..11).map(|i| format!("t{i}")).collect(),
            ..Default::default()
        };
        assert_eq!(
            many.targets(10),
            Err(InvalidPurge::TooMany { items: 11, max: 10 })
        );
    }
}

#[cfg(test)]
mod from_json_tests {
    use super::*;

    #[test]
    fn callers_are_told_what_a_purge_looks_like() {
        assert_eq!(
            Purge::from_json(br#" {"tags": ["a"]}"#).unwrap().tags,
            ["a"]
        );
        let form = Purge::from_json(b"tags=a").unwrap_err();
        assert!(form.starts_with("the body must be a JSON object"), "{form}");
        let field = Purge::from_json(br#"{"tag": ["a"]}"#).unwrap_err();
        assert!(
            field.starts_with("unknown field `tag`: a purge names urls"),
            "{field}"
        );
        assert!(
            !field.contains("seq"),
            "internal fields are not offered: {field}"
        );
        let typed = Purge::from_json(br#"{"tags": "a"}"#).unwrap_err();
        assert!(
            typed.starts_with("malformed purge: invalid type"),
            "{typed}"
        );
    }
}
