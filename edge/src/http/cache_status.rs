//! The `Cache-Status` response header (RFC 9211), with the node id as the cache name.
//!
//! The leading forms are the contract in DESIGN.md (`edge-1; hit`, `edge-1; fwd=miss; stored`,
//! `edge-1; fwd=stale; fwd-status=304`, `edge-1; fwd=bypass`); further parameters follow them.

use std::fmt::Write;

/// Why a request went to the origin: the value of `fwd`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    /// Nothing usable was stored.
    Miss,
    /// A stored response needed revalidating (or stood in for a failed origin).
    Stale,
    /// The cache was not used: a rule says so, or the edge answered itself.
    Bypass,
    /// A method that does not use the cache.
    Method,
}

impl Forward {
    /// The token `Cache-Status` carries.
    pub fn as_str(self) -> &'static str {
        match self {
            Forward::Miss => "miss",
            Forward::Stale => "stale",
            Forward::Bypass => "bypass",
            Forward::Method => "method",
        }
    }
}

/// How a request ended, for metrics and the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Served from the cache.
    Hit,
    /// A stale copy served, while revalidating or in place of a failed origin.
    Stale,
    /// Revalidated with a 304.
    Revalidated,
    /// Expired and fetched again.
    Expired,
    /// Fetched from the origin.
    Miss,
    /// Not cached by rule, or answered by the edge itself.
    Bypass,
    /// A method that skips the cache.
    Pass,
    /// Nothing could be served.
    Error,
}

impl Outcome {
    /// Every outcome, in the order metrics list them.
    pub const ALL: [Outcome; 8] = [
        Outcome::Hit,
        Outcome::Stale,
        Outcome::Revalidated,
        Outcome::Expired,
        Outcome::Miss,
        Outcome::Bypass,
        Outcome::Pass,
        Outcome::Error,
    ];

    /// The label of metrics (`status`) and of the access log.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Stale => "stale",
            Outcome::Revalidated => "revalidated",
            Outcome::Expired => "expired",
            Outcome::Miss => "miss",
            Outcome::Bypass => "bypass",
            Outcome::Pass => "pass",
            Outcome::Error => "error",
        }
    }
}

/// What happened to a request, as `Cache-Status` reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheStatus {
    /// Served from cache without going to the origin.
    pub hit: bool,
    /// Why the request went to the origin.
    pub fwd: Option<Forward>,
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
            s.push_str("; fwd=");
            s.push_str(fwd.as_str());
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

    /// How the request ended.
    pub fn outcome(&self) -> Outcome {
        match (self.detail, self.hit, self.fwd) {
            (Some(STALE_WHILE_REVALIDATE | STALE_IF_ERROR | ORIGIN_UNREACHABLE), _, _) => {
                Outcome::Stale
            }
            (Some(ORIGIN_ERROR | CLIENT_ERROR | INTERNAL_ERROR), _, _) => Outcome::Error,
            (_, true, _) => Outcome::Hit,
            (_, false, Some(Forward::Stale)) if self.fwd_status == Some(304) => {
                Outcome::Revalidated
            }
            (_, false, Some(Forward::Stale)) => Outcome::Expired,
            (_, false, Some(Forward::Miss)) => Outcome::Miss,
            (_, false, Some(Forward::Bypass)) => Outcome::Bypass,
            (_, false, Some(Forward::Method)) => Outcome::Pass,
            (_, false, None) => Outcome::Error,
        }
    }
}

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
            fwd: Some(Forward::Miss),
            stored: true,
            ..Default::default()
        };
        assert_eq!(miss.render("edge-1"), "edge-1; fwd=miss; stored");
        let reval = CacheStatus {
            fwd: Some(Forward::Stale),
            fwd_status: Some(304),
            ..Default::default()
        };
        assert_eq!(reval.render("edge-1"), "edge-1; fwd=stale; fwd-status=304");
        let bypass = CacheStatus {
            fwd: Some(Forward::Bypass),
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
                st(false, Some(Forward::Stale), Some(503), Some(STALE_IF_ERROR)),
                "stale",
            ),
            (
                st(false, Some(Forward::Stale), None, Some(ORIGIN_UNREACHABLE)),
                "stale",
            ),
            (
                st(false, Some(Forward::Stale), Some(304), None),
                "revalidated",
            ),
            (st(false, Some(Forward::Stale), Some(200), None), "expired"),
            (
                st(false, Some(Forward::Miss), None, Some("private")),
                "miss",
            ),
            (
                st(false, Some(Forward::Miss), None, Some(ORIGIN_ERROR)),
                "error",
            ),
            (
                st(false, Some(Forward::Bypass), None, Some("unknown-host")),
                "bypass",
            ),
            (st(false, Some(Forward::Method), None, None), "pass"),
        ];
        for (cs, label) in cases {
            assert_eq!(cs.outcome().label(), label, "{cs:?}");
        }
    }

    #[test]
    fn each_outcome_and_forward_reason_has_its_own_label() {
        let labels: std::collections::HashSet<_> = Outcome::ALL.iter().map(|o| o.label()).collect();
        assert_eq!(labels.len(), Outcome::ALL.len());
        let fwd = [
            Forward::Miss,
            Forward::Stale,
            Forward::Bypass,
            Forward::Method,
        ];
        let tokens: std::collections::HashSet<_> = fwd.iter().map(|f| f.as_str()).collect();
        assert_eq!(tokens.len(), fwd.len());
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
            fwd: Some(Forward::Miss),
            detail: Some("no store"),
            ..Default::default()
        };
        assert_eq!(odd.render("e"), "e; fwd=miss; detail=\"no store\"");
    }
}
