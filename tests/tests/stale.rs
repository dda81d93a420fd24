//! Revalidation with 304, stale-while-revalidate and stale-if-error. These wait for a one-second
//! max-age to run out: the freshness clock is what is under test.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed set-up is a failed test

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use edge_tests::client;
use edge_tests::edge::Edge;
use edge_tests::eventually;
use edge_tests::origin::{Origin, Reply};

fn wait_stale() {
    std::thread::sleep(Duration::from_millis(2100));
}

#[test]
fn revalidation_with_304_merges_headers() {
    let origin = etag_origin(
        Reply::ok(
            "version one",
            &[
                ("etag", "\"v1\""),
                ("cache-control", "max-age=1"),
                ("x-rev", "1"),
            ],
        ),
        Reply::status(
            304,
            "",
            &[
                ("etag", "\"v1\""),
                ("cache-control", "max-age=60"),
                ("x-rev", "2"),
            ],
        ),
    );
    let edge = Edge::builder(origin.addr).start();
    let reval = fetch_stale_and_revalidate(&edge, "/r");
    assert_eq!(reval.status, 200);
    assert_eq!(reval.text(), "version one");
    assert_eq!(origin.requests()[1].header("if-none-match"), Some("\"v1\""));
    let hit = edge.get("/r", &[]);
    assert!(
        hit.cache_status_entry().matches("hit"),
        "{}",
        hit.cache_status()
    );
    assert_eq!(
        hit.header("x-rev"),
        Some("2"),
        "the 304's headers were merged"
    );
    assert_eq!(origin.count("/r"), 2);
}

#[test]
fn revalidation_keeps_an_object_that_only_cdn_cache_control_made_cacheable() {
    // The targeted field governs this cache; the 304 does not repeat it (RFC 9111 lets it omit
    // unchanged fields), so the stored copy must still carry it when the 304 is merged.
    let origin = etag_origin(
        Reply::ok(
            "targeted",
            &[
                ("etag", "\"v1\""),
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=1"),
            ],
        ),
        Reply::status(304, "", &[("etag", "\"v1\"")]),
    );
    let edge = Edge::builder(origin.addr).start();
    let reval = fetch_stale_and_revalidate(&edge, "/t");
    assert!(
        reval.header("cdn-cache-control").is_none(),
        "never shown to clients"
    );
    let next = edge.get("/t", &[]);
    assert!(
        next.cache_status_entry().matches("hit"),
        "still stored and fresh after the 304: {}",
        next.cache_status()
    );
    assert_eq!(origin.count("/t"), 2);
}

/// An origin answering `not_modified` to `If-None-Match: "v1"`, and `full` otherwise.
fn etag_origin(full: Reply, not_modified: Reply) -> Origin {
    Origin::start(move |r| {
        if r.header("if-none-match") == Some("\"v1\"") {
            not_modified.clone()
        } else {
            full.clone()
        }
    })
}

/// Stores `path`, lets it go stale, and fetches it again: the answer must be a 304 revalidation.
fn fetch_stale_and_revalidate(edge: &Edge, path: &str) -> client::Response {
    edge.get(path, &[]);
    wait_stale();
    let reval = edge.get(path, &[]);
    let cs = reval.cache_status();
    assert!(
        cs.starts_with("edge-test; fwd=stale; fwd-status=304"),
        "{cs}"
    );
    reval
}

#[test]
fn stale_while_revalidate_serves_stale_and_refreshes_in_the_background() {
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    let origin = Origin::start(move |_| {
        let v = n2.fetch_add(1, Ordering::SeqCst) + 1;
        Reply::ok(
            format!("v{v}"),
            &[("cache-control", "max-age=1, stale-while-revalidate=30")],
        )
        .delayed(Duration::from_millis(if v > 1 { 300 } else { 0 }))
    });
    let edge = Edge::builder(origin.addr).start();
    assert_eq!(edge.get("/swr", &[]).text(), "v1");
    wait_stale();
    let stale = edge.get("/swr", &[]);
    assert_eq!(stale.text(), "v1", "served stale at once");
    assert_eq!(
        edge.metric("edge_cache_requests_total{outcome=\"stale\"}"),
        1.0
    );
    assert!(
        stale
            .cache_status_entry()
            .matches("detail=stale-while-revalidate"),
        "{}",
        stale.cache_status()
    );
    eventually(Duration::from_secs(10), "the background refresh", || {
        (edge.get("/swr", &[]).text() == "v2").then_some(())
    });
}

/// `/s` is answered with the stored copy, and `Cache-Status` says so with `mark`.
fn assert_stale_copy(edge: &Edge, mark: &str) {
    let r = edge.get("/s", &[]);
    let cs = r.cache_status();
    assert_eq!((r.status, r.text().as_str()), (200, "good copy"), "{cs}");
    assert!(cs.contains(mark), "{cs}");
}

#[test]
fn stale_if_error_when_the_origin_is_down_or_failing() {
    let fail = Arc::new(AtomicUsize::new(0));
    let f2 = fail.clone();
    let mut origin = Origin::start(move |_| {
        if f2.load(Ordering::SeqCst) == 1 {
            Reply::status(503, "down", &[])
        } else {
            Reply::ok(
                "good copy",
                &[("cache-control", "max-age=1, stale-if-error=60")],
            )
        }
    });
    let rules = "- { match: { path_prefix: /strict/ }, stale_if_error: 1d }";
    let edge = Edge::builder(origin.addr).rules(rules).start();
    edge.get("/s", &[]);
    wait_stale();
    fail.store(1, Ordering::SeqCst);
    assert_stale_copy(&edge, "fwd=stale");
    origin.stop();
    // Nothing comes back from a stopped origin: unreachable, not an error it answered.
    assert_stale_copy(&edge, "origin-unreachable");
    assert_eq!(
        edge.metric("edge_cache_requests_total{outcome=\"stale\"}"),
        2.0,
        "both stale answers are counted as stale"
    );
    // Something never cached, with the origin down: an error, with Cache-Status.
    let r = edge.get("/never-seen", &[]);
    assert_eq!(r.status, 502);
    assert_eq!(
        edge.metric("edge_cache_requests_total{outcome=\"error\"}"),
        1.0
    );
    assert!(
        r.cache_status().starts_with("edge-test; fwd=miss"),
        "{}",
        r.cache_status()
    );
}

#[test]
fn must_revalidate_forbids_stale_on_error() {
    let mut origin =
        Origin::start(|_| Reply::ok("strict", &[("cache-control", "max-age=1, must-revalidate")]));
    let edge = Edge::builder(origin.addr)
        .rules("- { match: { path_prefix: / }, stale_if_error: 1d }")
        .start();
    edge.get("/m", &[]);
    wait_stale();
    origin.stop();
    // A stored response that must be revalidated and cannot be: 504 (RFC 9111 §4.3.3).
    let r = edge.get("/m", &[]);
    assert_eq!(r.status, 504, "{}", r.cache_status());
}
