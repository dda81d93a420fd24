use std::time::{Duration, SystemTime};

use edge_config::edge::{EdgeConfig, Rule};
use httpdate::fmt_http_date;
use pingora::http::ResponseHeader;

use super::*;

fn resp(status: u16, headers: &[(&str, &str)]) -> ResponseHeader {
    let mut r = ResponseHeader::build(status, None).unwrap();
    for (k, v) in headers {
        r.append_header(k.to_string(), *v).unwrap();
    }
    r
}

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn ttl(f: Freshness) -> u64 {
    f.fresh_until.duration_since(now()).unwrap().as_secs()
}

fn rule(yaml_rule: &str) -> Rule {
    let yaml = format!(
        "node: {{ id: t }}\nlisten: [{{ addr: 127.0.0.1:1 }}]\nadmin: {{ addr: 127.0.0.1:2 }}\norigins: {{ o: {{ servers: [\"127.0.0.1:3\"] }} }}\nsites:\n  - hosts: [\"*\"]\n    origin: o\n    rules:\n      - {yaml_rule}\n"
    );
    EdgeConfig::from_yaml(&yaml).unwrap().sites[0].rules[0].clone()
}

/// Seconds of freshness for a 200 with these headers and no rule.
fn ttl_for(headers: &[(&str, &str)]) -> u64 {
    ttl(decide(&resp(200, headers), false, None, now()).unwrap())
}

#[test]
fn max_age_and_s_maxage() {
    assert_eq!(ttl_for(&[("cache-control", "max-age=60")]), 60);
    assert_eq!(
        ttl_for(&[("cache-control", "max-age=60, s-maxage=600")]),
        600
    );
}

#[test]
fn never_stored() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("cache-control", "no-store, max-age=60")], "no-store"),
        (&[("cache-control", "private, max-age=60")], "private"),
        (
            &[("cache-control", "max-age=60"), ("set-cookie", "s=1")],
            "set-cookie",
        ),
        (
            &[("cache-control", "max-age=60"), ("vary", "*")],
            "vary-star",
        ),
        (
            &[("cache-control", "max-age=60"), ("vary", "accept, *")],
            "vary-star",
        ),
        (&[], "no-freshness"),
    ];
    for (headers, why) in cases {
        assert_eq!(
            decide(&resp(200, headers), false, None, now()),
            Err(*why),
            "{headers:?}"
        );
    }
    assert_eq!(
        decide(
            &resp(503, &[("cache-control", "max-age=60")]),
            false,
            None,
            now()
        ),
        Err("status")
    );
    assert_eq!(
        decide(
            &resp(206, &[("cache-control", "max-age=60")]),
            false,
            None,
            now()
        ),
        Err("status")
    );
}

#[test]
fn set_cookie_allowed_by_rule_or_stripped_by_directive() {
    let r = rule("{ match: { path_prefix: / }, allow_set_cookie: true }");
    let h = [("cache-control", "max-age=60"), ("set-cookie", "s=1")];
    assert!(decide(&resp(200, &h), false, Some(&r), now()).is_ok());
    let h = [
        ("cache-control", "max-age=60, no-cache=\"set-cookie\""),
        ("set-cookie", "s=1"),
    ];
    assert!(decide(&resp(200, &h), false, None, now()).is_ok());
}

#[test]
fn authorization_needs_an_explicit_permission() {
    let plain = resp(200, &[("cache-control", "max-age=60")]);
    assert_eq!(decide(&plain, true, None, now()), Err("authorization"));
    for cc in [
        "public, max-age=60",
        "s-maxage=60",
        "must-revalidate, max-age=60",
    ] {
        assert!(
            decide(&resp(200, &[("cache-control", cc)]), true, None, now()).is_ok(),
            "{cc}"
        );
    }
    // A rule ttl does not make a private answer shareable.
    let r = rule("{ match: { path_prefix: / }, ttl: 1d }");
    assert_eq!(decide(&plain, true, Some(&r), now()), Err("authorization"));
}

#[test]
fn targeted_fields_take_precedence() {
    let h = [
        ("cache-control", "no-store"),
        ("cdn-cache-control", "max-age=300"),
    ];
    assert_eq!(
        ttl(decide(&resp(200, &h), false, None, now()).unwrap()),
        300
    );
    let h = [
        ("cache-control", "max-age=300"),
        ("surrogate-control", "no-store"),
    ];
    assert_eq!(decide(&resp(200, &h), false, None, now()), Err("no-store"));
    let h = [
        ("cache-control", "max-age=1"),
        ("surrogate-control", "max-age=99"),
        ("cdn-cache-control", "max-age=7"),
    ];
    assert_eq!(ttl(decide(&resp(200, &h), false, None, now()).unwrap()), 7);
}

#[test]
fn expires_is_relative_to_date() {
    let date = now() - Duration::from_secs(3600);
    let h = [
        ("date", fmt_http_date(date)),
        ("expires", fmt_http_date(date + Duration::from_secs(100))),
    ];
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // 100 s of freshness from our receipt, whatever the origin's clock says.
    assert_eq!(
        ttl(decide(&resp(200, &h), false, None, now()).unwrap()),
        100
    );
}

#[test]
fn invalid_expires_means_expired() {
    let h = [("expires", "0"), ("etag", "\"x\"")];
    let f = decide(&resp(200, &h), false, None, now()).unwrap();
    assert!(f.fresh_until < now());
    // Without a validator there is nothing worth keeping.
    assert_eq!(
        decide(&resp(200, &[("expires", "garbage")]), false, None, now()),
        Err("no-freshness")
    );
    // Two Expires headers are invalid too.
    let two = resp(
        200,
        &[
            ("expires", "Thu, 01 Jan 2099 00:00:00 GMT"),
            ("expires", "Thu, 01 Jan 2099 00:00:00 GMT"),
        ],
    );
    assert_eq!(decide(&two, false, None, now()), Err("no-freshness"));
}

#[test]
fn cache_control_beats_expires() {
    let h = [
        ("cache-control", "max-age=5"),
        ("expires", "Thu, 01 Jan 2099 00:00:00 GMT"),
    ];
    assert_eq!(ttl(decide(&resp(200, &h), false, None, now()).unwrap()), 5);
}

#[test]
fn no_cache_is_stored_but_always_revalidated() {
    let h = [
        (
            "cache-control",
            "no-cache, max-age=600, stale-while-revalidate=60",
        ),
        ("etag", "\"v1\""),
    ];
    let f = decide(&resp(200, &h), false, None, now()).unwrap();
    assert!(f.fresh_until < now());
    assert_eq!(f.stale_while_revalidate, 0);
}

#[test]
fn age_counts_against_freshness() {
    let h = [("cache-control", "max-age=100"), ("age", "30")];
    let f = decide(&resp(200, &h), false, None, now()).unwrap();
    assert_eq!(ttl(f), 70);
    assert_eq!(f.created, now() - Duration::from_secs(30));
    let h = [("cache-control", "max-age=100"), ("age", "bogus")];
    assert_eq!(
        ttl(decide(&resp(200, &h), false, None, now()).unwrap()),
        100
    );
}

#[test]
fn age_is_read_as_rfc_9111_says_and_saturates() {
    let age = |fields: &[&str]| {
        let mut r = resp(200, &[]);
        for f in fields {
            r.append_header("age", *f).unwrap();
        }
        age_value(&r.headers)
    };
    assert_eq!(age(&["7200"]), Some(7200));
    assert_eq!(age(&[" 7 "]), Some(7));
    for invalid in ["1.5", "-1", "abc", "", "+5", "0x10"] {
        assert_eq!(age(&[invalid]), None, "{invalid}");
    }
    // A list, or two fields: the first member.
    assert_eq!(age(&["10, 20"]), Some(10));
    assert_eq!(age(&["10", "20"]), Some(10));
    assert_eq!(age(&["4294967295"]), Some(MAX_DELTA_SECONDS));
    assert_eq!(age(&["99999999999999999999999"]), Some(MAX_DELTA_SECONDS));
    assert_eq!(age(&[]), None);
}

#[test]
fn an_age_past_the_epoch_is_stored_as_stale_never_before_the_epoch() {
    for huge in ["4294967295", "99999999999999999999999"] {
        let h = [
            ("cache-control", "max-age=999999999"),
            ("age", huge),
            ("etag", "\"v1\""),
        ];
        let f = decide(&resp(200, &h), false, None, now()).unwrap();
        assert!(f.created >= SystemTime::UNIX_EPOCH);
        assert!(f.fresh_until < now(), "{huge}: served as fresh");
    }
}

#[test]
fn a_response_stale_on_arrival_is_stored_only_with_a_validator() {
    let h = [("cache-control", "max-age=10"), ("age", "20")];
    assert_eq!(
        decide(&resp(200, &h), false, None, now()).unwrap_err(),
        "stale-on-arrival"
    );
    let h = [
        ("cache-control", "max-age=10"),
        ("age", "20"),
        ("etag", "\"a\""),
    ];
    assert!(decide(&resp(200, &h), false, None, now()).is_ok());
}

#[test]
fn heuristic_only_where_allowed() {
    let lm = fmt_http_date(now() - Duration::from_secs(1000));
    let h = [("last-modified", lm.as_str())];
    assert_eq!(
        ttl(decide(&resp(200, &h), false, None, now()).unwrap()),
        100
    );
    // 302 is not heuristically cacheable.
    assert_eq!(
        decide(&resp(302, &h), false, None, now()),
        Err("no-freshness")
    );
    // Capped at a day.
    let old = fmt_http_date(now() - Duration::from_secs(100 * 86_400));
    assert_eq!(
        ttl(decide(
            &resp(200, &[("last-modified", old.as_str())]),
            false,
            None,
            now()
        )
        .unwrap()),
        86_400
    );
}

#[test]
fn rule_ttl_and_default_ttl() {
    let r = rule("{ match: { path_prefix: / }, ttl: 1h }");
    let f = decide(
        &resp(200, &[("cache-control", "max-age=5")]),
        false,
        Some(&r),
        now(),
    )
    .unwrap();
    assert_eq!(ttl(f), 3600);
    // Not for a 404: that gets the negative TTL.
    assert_eq!(
        ttl(decide(&resp(404, &[]), false, Some(&r), now()).unwrap()),
        10
    );
    // Never over no-store.
    assert_eq!(
        decide(
            &resp(200, &[("cache-control", "no-store")]),
            false,
            Some(&r),
            now()
        ),
        Err("no-store")
    );

    let d = rule("{ match: { path_prefix: / }, default_ttl: 1h }");
    assert_eq!(
        ttl(decide(&resp(200, &[]), false, Some(&d), now()).unwrap()),
        3600
    );
    assert_eq!(
        ttl(decide(
            &resp(200, &[("cache-control", "max-age=5")]),
            false,
            Some(&d),
            now()
        )
        .unwrap()),
        5
    );
}

#[test]
fn stale_windows_from_origin_then_rule() {
    let h = [(
        "cache-control",
        "max-age=5, stale-while-revalidate=30, stale-if-error=60",
    )];
    let f = decide(&resp(200, &h), false, None, now()).unwrap();
    assert_eq!((f.stale_while_revalidate, f.stale_if_error), (30, 60));
    let r = rule("{ match: { path_prefix: / }, stale_while_revalidate: 10s, stale_if_error: 1d }");
    let f = decide(
        &resp(200, &[("cache-control", "max-age=5")]),
        false,
        Some(&r),
        now(),
    )
    .unwrap();
    assert_eq!((f.stale_while_revalidate, f.stale_if_error), (10, 86_400));
    for cc in [
        "max-age=5, must-revalidate",
        "max-age=5, proxy-revalidate",
        "s-maxage=5",
    ] {
        let f = decide(&resp(200, &[("cache-control", cc)]), false, Some(&r), now()).unwrap();
        assert_eq!((f.stale_while_revalidate, f.stale_if_error), (0, 0), "{cc}");
    }
}

#[test]
fn prepare_for_store_strips_age_and_private_fields_but_keeps_targeted_ones() {
    let mut r = resp(
        200,
        &[
            ("cache-control", "max-age=5, private=\"x-user\""),
            ("x-user", "alice"),
            ("age", "3"),
            ("cdn-cache-control", "max-age=9"),
            ("surrogate-control", "max-age=9"),
            ("etag", "\"e\""),
        ],
    );
    prepare_for_store(&mut r);
    for gone in ["x-user", "age"] {
        assert!(r.headers.get(gone).is_none(), "{gone}");
    }
    // Kept for the decision a revalidation makes again; never shown to clients (proxy strips).
    for kept in ["etag", "cdn-cache-control", "surrogate-control"] {
        assert!(r.headers.get(kept).is_some(), "{kept}");
    }
}

#[test]
fn prepare_for_store_finds_field_names_in_any_case_and_any_cache_control_line() {
    let mut r = resp(
        200,
        &[
            ("cache-control", "max-age=5"),
            ("cache-control", "No-Cache=\"X-Debug\""),
            ("x-debug", "1"),
            ("x-kept", "1"),
        ],
    );
    prepare_for_store(&mut r);
    assert!(r.headers.get("x-debug").is_none());
    assert!(r.headers.get("x-kept").is_some());
}

#[test]
fn a_304_updates_every_field_but_framing() {
    let stored = resp(
        200,
        &[
            ("etag", "\"a\""),
            ("x-rev", "1"),
            ("content-length", "10"),
            ("cache-control", "max-age=1"),
        ],
    );
    let mut fields = http::HeaderMap::new();
    fields.insert("x-rev", "2".parse().unwrap());
    fields.insert("cache-control", "max-age=60".parse().unwrap());
    fields.insert("content-length", "0".parse().unwrap());
    // Fields that describe the stored body, which the 304 just confirmed, stay as stored.
    fields.insert("etag", "\"b\"".parse().unwrap());
    fields.insert("content-md5", "bmV3".parse().unwrap());
    fields.insert("date", "Sun, 06 Dec 2026 10:00:00 GMT".parse().unwrap());
    let merged = merge_not_modified(&stored, &fields);
    assert_eq!(merged.headers["x-rev"], "2");
    assert_eq!(merged.headers["cache-control"], "max-age=60");
    assert_eq!(merged.headers["content-length"], "10");
    assert_eq!(merged.headers["etag"], "\"a\"");
    assert!(!merged.headers.contains_key("content-md5"));
    assert_eq!(merged.headers["date"], "Sun, 06 Dec 2026 10:00:00 GMT");
    assert_eq!(merged.status, 200);
}

#[test]
fn a_404_is_stored_for_the_negative_ttl_at_most() {
    let d = rule("{ match: { path_prefix: / }, negative_ttl: 30s }");
    for status in [404, 405, 414] {
        // Silent origin: the negative TTL.
        assert_eq!(
            ttl(decide(&resp(status, &[]), false, Some(&d), now()).unwrap()),
            30
        );
        // A long max-age is capped; a shorter one kept.
        let long = [("cache-control", "max-age=86400")];
        assert_eq!(
            ttl(decide(&resp(status, &long), false, Some(&d), now()).unwrap()),
            30
        );
        let short = [("cache-control", "max-age=5")];
        assert_eq!(
            ttl(decide(&resp(status, &short), false, Some(&d), now()).unwrap()),
            5
        );
        // no-store and private still win.
        let ns = [("cache-control", "no-store")];
        assert_eq!(
            decide(&resp(status, &ns), false, Some(&d), now()),
            Err("no-store")
        );
    }
    // Without a rule, the default.
    assert_eq!(
        ttl(decide(&resp(404, &[]), false, None, now()).unwrap()),
        10
    );
    // Zero: never.
    let off = rule("{ match: { path_prefix: / }, negative_ttl: 0s }");
    assert_eq!(
        decide(
            &resp(404, &[("cache-control", "max-age=60")]),
            false,
            Some(&off),
            now()
        ),
        Err("negative-ttl")
    );
    // A 5xx is never stored, whatever it says.
    for status in [500, 502, 503, 504] {
        let long = [("cache-control", "public, max-age=86400")];
        assert_eq!(
            decide(&resp(status, &long), false, Some(&d), now()),
            Err("status")
        );
    }
}

#[test]
fn a_rule_may_store_a_5xx_for_the_freshness_it_states_and_no_other() {
    let stated = [("cache-control", "max-age=30")];
    let pinned = rule("{ match: { path_prefix: / }, cache_errors: true, ttl: 1d }");
    assert_eq!(
        ttl(decide(&resp(503, &stated), false, Some(&pinned), now()).unwrap()),
        30,
        "the rule's ttl is not for errors"
    );
    let opted = rule("{ match: { path_prefix: / }, cache_errors: true, default_ttl: 1h }");
    assert_eq!(
        ttl(decide(&resp(503, &stated), false, Some(&opted), now()).unwrap()),
        30
    );
    // Without a stated lifetime (a default_ttl or a heuristic would apply to a 200): not stored.
    let lm = fmt_http_date(now() - Duration::from_secs(1000));
    for silent in [
        &[][..],
        &[("cache-control", "public"), ("last-modified", lm.as_str())][..],
    ] {
        assert_eq!(
            decide(&resp(500, silent), false, Some(&opted), now()),
            Err("no-freshness")
        );
    }
    // The other limits still hold.
    let private = [("cache-control", "private, max-age=30")];
    assert_eq!(
        decide(&resp(503, &private), false, Some(&opted), now()),
        Err("private")
    );
}
