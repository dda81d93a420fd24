//! The `Cache-Status` response header (RFC 9211), with the node id as the cache name.
//!
//! The leading forms are the contract in DESIGN.md (`edge-1; hit`, `edge-1; fwd=miss; stored`,
//! `edge-1; fwd=stale; fwd-status=304`, `edge-1; fwd=bypass`); further parameters follow them.

use std::fmt::Write;

/// What happened to a request, as `Cache-Status` reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheStatus {
    /// Served from cache without going to the origin.
    pub hit: bool,
    /// Why the request went to the origin: `miss`, `stale`, `bypass`, `method`.
    pub fwd: Option<&'static str>,
    /// The origin's status when it differs in meaning from the response (a 304 on revalidation).
    pub fwd_status: Option<u16>,
    /// The response is being stored.
    pub stored: bool,
    /// Remaining freshness in seconds (negative when stale).
    pub ttl: Option<i64>,
    /// Extra detail: the tier that answered, or why the response was not stored.
    pub detail: Option<&'static str>,
}

impl CacheStatus {
    /// Renders the header value for cache `node`.
    pub fn render(&self, node: &str) -> String {
        let mut s = String::with_capacity(64);
        s.push_str(node);
        if self.hit {
            s.push_str("; hit");
        }
        if let Some(fwd) = self.fwd {
            let _ = write!(s, "; fwd={fwd}");
        }
        if let Some(st) = self.fwd_status {
            let _ = write!(s, "; fwd-status={st}");
        }
        if self.stored {
            s.push_str("; stored");
        }
        if let Some(ttl) = self.ttl {
            let _ = write!(s, "; ttl={ttl}");
        }
        if let Some(d) = self.detail {
            // sf-token where it is one, else an sf-string.
            if d.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._:/*".contains(&b))
                && d.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
            {
                let _ = write!(s, "; detail={d}");
            } else {
                let _ = write!(s, "; detail=\"{}\"", d.replace(['"', '\\'], ""));
            }
        }
        s
    }

    /// A short label for metrics and the access log: hit, stale (a stale copy served, while
    /// revalidating or on an origin error), revalidated, expired, miss, bypass, pass or error.
    /// Always one of [`LABELS`].
    pub fn label(&self) -> &'static str {
        match (self.detail, self.hit, self.fwd) {
            (Some(STALE_WHILE_REVALIDATE | STALE_IF_ERROR | ORIGIN_UNREACHABLE), _, _) => "stale",
            (Some(ORIGIN_ERROR | CLIENT_ERROR | INTERNAL_ERROR), _, _) => "error",
            (_, true, _) => "hit",
            (_, false, Some("stale")) if self.fwd_status == Some(304) => "revalidated",
            (_, false, Some("stale")) => "expired",
            (_, false, Some("miss")) => "miss",
            (_, false, Some("bypass")) => "bypass",
            (_, false, Some("method")) => "pass",
            _ => "error",
        }
    }
}

/// Every [`CacheStatus::label`], as metrics label requests.
pub const LABELS: [&str; 8] = [
    "hit",
    "stale",
    "revalidated",
    "expired",
    "miss",
    "bypass",
    "pass",
    "error",
];

/// `detail` of a stale copy served while one background request revalidates.
pub const STALE_WHILE_REVALIDATE: &str = "stale-while-revalidate";
/// `detail` of a stale copy served because the origin failed.
pub const STALE_IF_ERROR: &str = "stale-if-error";
/// `detail` of a stale copy served because the origin could not be reached at all.
pub const ORIGIN_UNREACHABLE: &str = "origin-unreachable";
/// `detail` when the origin failed and nothing could be served.
pub const ORIGIN_ERROR: &str = "origin-error";
/// `detail` when the client's side of the exchange failed.
pub const CLIENT_ERROR: &str = "client-error";
/// `detail` for a failure inside the edge.
pub const INTERNAL_ERROR: &str = "internal-error";
/// `detail` of a request with `only-if-cached` that the cache could not answer (504).
pub const ONLY_IF_CACHED: &str = "only-if-cached";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_forms() {
        let hit = CacheStatus {
            hit: true,
            ..Default::default()
        };
        assert_eq!(hit.render("edge-1"), "edge-1; hit");
        let miss = CacheStatus {
            fwd: Some("miss"),
            stored: true,
            ..Default::default()
        };
        assert_eq!(miss.render("edge-1"), "edge-1; fwd=miss; stored");
        let reval = CacheStatus {
            fwd: Some("stale"),
            fwd_status: Some(304),
            ..Default::default()
        };
        assert_eq!(reval.render("edge-1"), "edge-1; fwd=stale; fwd-status=304");
        let bypass = CacheStatus {
            fwd: Some("bypass"),
            ..Default::default()
        };
        assert_eq!(bypass.render("edge-1"), "edge-1; fwd=bypass");
    }

    #[test]
    fn labels() {
        let st = |hit, fwd, fwd_status, detail| CacheStatus {
            hit,
            fwd,
            fwd_status,
            detail,
            ..Default::default()
        };
        let cases = [
            (st(true, None, None, Some("memory")), "hit"),
            (st(true, None, None, Some(STALE_WHILE_REVALIDATE)), "stale"),
            (
                st(false, Some("stale"), Some(503), Some(STALE_IF_ERROR)),
                "stale",
            ),
            (
                st(false, Some("stale"), None, Some(ORIGIN_UNREACHABLE)),
                "stale",
            ),
            (st(false, Some("stale"), Some(304), None), "revalidated"),
            (st(false, Some("stale"), Some(200), None), "expired"),
            (st(false, Some("miss"), None, Some("private")), "miss"),
            (st(false, Some("miss"), None, Some(ORIGIN_ERROR)), "error"),
            (
                st(false, Some("bypass"), None, Some("unknown-host")),
                "bypass",
            ),
            (st(false, Some("method"), None, None), "pass"),
        ];
        for (cs, label) in cases {
            assert_eq!(cs.label(), label, "{cs:?}");
            assert!(LABELS.contains(&label));
        }
    }

    #[test]
    fn extra_parameters_follow() {
        let hit = CacheStatus {
            hit: true,
            ttl: Some(-3),
            detail: Some("memory"),
            ..Default::default()
        };
        assert_eq!(hit.render("e"), "e; hit; ttl=-3; detail=memory");
        let odd = CacheStatus {
            fwd: Some("miss"),
            detail: Some("no store"),
            ..Default::default()
        };
        assert_eq!(odd.render("e"), "e; fwd=miss; detail=\"no store\"");
    }
}
