//! The proxy's decisions, as pure functions of what a request brings.

use pingora::cache::{CachePhase, NoCacheReason};

use super::*;

fn req(method: &str, target: &str, headers: &[(&str, &str)]) -> RequestHeader {
    let mut r = RequestHeader::build(method, b"/", None).unwrap();
    // An absolute target keeps its authority, as HTTP/2's :authority arrives.
    r.set_uri(target.parse().unwrap());
    for (k, v) in headers {
        r.append_header(k.to_string(), *v).unwrap();
    }
    r
}

#[test]
fn cache_status_follows_the_phase() {
    let hit = Facts {
        ttl: Some(30),
        hit_source: Some(Source::Tier(crate::cache::Tier::Disk)),
        ..Facts::default()
    };
    let cases: [(CachePhase, Facts, &str); 10] = [
        (CachePhase::Hit, hit, "e; hit; ttl=30; detail=disk"),
        (
            CachePhase::StaleUpdating,
            Facts {
                ttl: Some(-2),
                ..hit
            },
            "e; hit; ttl=-2; detail=stale-while-revalidate",
        ),
        (
            CachePhase::Miss,
            Facts {
                storing: true,
                ..Facts::default()
            },
            "e; fwd=miss; stored",
        ),
        (CachePhase::Miss, Facts::default(), "e; fwd=miss"),
        (
            CachePhase::Expired,
            Facts {
                origin_status: Some(200),
                storing: true,
                ..Facts::default()
            },
            "e; fwd=stale; fwd-status=200; stored",
        ),
        (
            CachePhase::Revalidated,
            Facts {
                ttl: Some(60),
                ..Facts::default()
            },
            "e; fwd=stale; fwd-status=304; ttl=60",
        ),
        (
            CachePhase::Stale,
            Facts {
                origin_status: Some(503),
                ..Facts::default()
            },
            "e; fwd=stale; fwd-status=503; detail=stale-if-error",
        ),
        (
            CachePhase::Stale,
            Facts {
                origin_unreachable: true,
                ..Facts::default()
            },
            "e; fwd=stale; detail=origin-unreachable",
        ),
        (
            CachePhase::Disabled(NoCacheReason::ResponseTooLarge),
            Facts::default(),
            "e; fwd=miss; detail=too-large",
        ),
        (
            CachePhase::Hit,
            Facts {
                fwd: Some(Forward::Bypass),
                ..hit
            },
            "e; fwd=bypass",
        ),
    ];
    for (phase, facts, want) in cases {
        assert_eq!(status_of(phase, &facts).render("e"), want, "{facts:?}");
    }
    let private = status_of(
        CachePhase::Disabled(NoCacheReason::Custom("private")),
        &Facts::default(),
    );
    assert_eq!(private.render("e"), "e; fwd=miss; detail=private");
}

#[test]
fn unsafe_methods_invalidate_and_only_get_and_head_use_the_cache() {
    for m in [
        "POST", "PUT", "DELETE", "PATCH", "M-SEARCH", "PURGE", "MKCOL",
    ] {
        let m = Method::from_bytes(m.as_bytes()).unwrap();
        assert!(is_unsafe_method(&m), "{m}");
        assert!(!is_cacheable_method(&m), "{m}");
    }
    for m in [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE] {
        assert!(!is_unsafe_method(&m), "{m}");
    }
    assert!(is_cacheable_method(&Method::GET) && is_cacheable_method(&Method::HEAD));
}

#[test]
fn the_host_is_refused_when_authority_and_host_disagree() {
    assert_eq!(
        request_host(&req("GET", "/", &[("host", "a.example")])),
        Some("a.example")
    );
    let h2 = req("GET", "https://a.example/x", &[]);
    assert_eq!(request_host(&h2), Some("a.example"));
    let both = req("GET", "https://a.example/x", &[("host", "A.EXAMPLE")]);
    assert_eq!(request_host(&both), Some("a.example"));
    let mismatch = req("GET", "https://a.example/x", &[("host", "b.example")]);
    assert_eq!(request_host(&mismatch), None);
}

#[test]
fn a_loop_is_seen_in_any_cdn_loop_field() {
    let one = req("GET", "/", &[("cdn-loop", "shield-1, edge-1; v=1")]);
    assert!(forwarded_by(&one, "edge-1"));
    assert!(forwarded_by(&one, "shield-1"));
    assert!(!forwarded_by(&one, "edge"));
    let two = req("GET", "/", &[("cdn-loop", "a"), ("cdn-loop", "edge-2")]);
    assert!(forwarded_by(&two, "edge-2"));
}

#[test]
fn only_plain_requests_take_the_fast_path() {
    assert!(fast_hit::eligible(&req("GET", "/a", &[("accept", "*/*")])));
    for h in ["range", "if-none-match", "if-modified-since", "if-match"] {
        assert!(!fast_hit::eligible(&req("GET", "/a", &[(h, "x")])), "{h}");
    }
}

#[test]
fn one_users_answers_never_teach_the_predictor() {
    assert!(skip_prediction("authorization") && skip_prediction("status"));
    assert!(!skip_prediction("private") && !skip_prediction("no-store"));
}
