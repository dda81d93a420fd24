//! The edge's admin purge endpoint on its own: authentication and bad input, sequences, fills in
//! flight, variants, soft purges without stale windows, and the background sweep.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use edge_tests::client::{self, Response};
use edge_tests::edge::{DiskCache, Edge, Scratch, ADMIN_TOKEN};
use edge_tests::origin::{Origin, Reply, Req};
use edge_tests::{eventually, files_under, parts_under};

fn cacheable(req: &Req) -> Reply {
    let etag = format!("\"{}\"", req.path());
    if req.header("if-none-match") == Some(etag.as_str()) {
        return Reply::status(304, "", &[("ETag", &etag)]);
    }
    let tags = format!(
        "all,{}",
        req.path().trim_start_matches('/').replace('/', "-")
    );
    Reply::ok(
        format!("body of {}", req.target),
        &[
            ("Cache-Control", "max-age=3600"),
            ("ETag", &etag),
            ("Cache-Tag", &tags),
            ("Vary", "Accept-Language"),
        ],
    )
}

fn status_of(r: &Response) -> String {
    r.cache_status().to_string()
}

fn hit(edge: &Edge, path: &str, headers: &[(&str, &str)]) -> bool {
    let cs = status_of(&edge.get(path, headers));
    cs.contains("; hit") && !cs.contains("stale")
}

fn error_of(r: &Response) -> String {
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    v["error"].as_str().unwrap().to_string()
}

#[test]
fn the_admin_purge_needs_the_token_and_a_valid_body() {
    let origin = Origin::start(cacheable);
    let edge = Edge::builder(origin.addr).start();
    let post = |auth: &str, body: &str| {
        client::request(
            edge.admin,
            "POST",
            "admin",
            "/purge",
            &[("Authorization", auth)],
            body.as_bytes(),
        )
    };
    for auth in [
        "",
        "Bearer nope",
        "Basic dGVzdA==",
        "Bearer test-admin-toke",
    ] {
        let r = post(auth, r#"{"all": true}"#);
        assert_eq!(r.status, 401, "{auth:?}");
        assert!(error_of(&r).contains("bearer token"));
    }
    let state = client::get(edge.admin, "admin", "/purge/state", &[]);
    assert_eq!(state.status, 401);
    for (body, says) in [
        ("{", "malformed purge"),
        (r#"{"everything": true}"#, "unknown field"),
        (r#"{}"#, "names nothing"),
        (r#"{"urls": ["a.css"]}"#, "absolute URL"),
        (r#"{"prefixes": ["/no-host"]}"#, "host name"),
        (r#"{"tags": [""]}"#, "visible ASCII"),
    ] {
        let r = edge.purge(body);
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert!(error_of(&r).contains(says), "{body}: {}", r.text());
    }
    let big = format!(r#"{{"tags": ["{}"]}}"#, "x".repeat(9 << 20));
    let r = edge.purge(&big);
    assert_eq!(r.status, 413);
    // Sequences: the next one, a repeat (no effect), a gap (refused, nothing skipped).
    let ok = edge.purge(r#"{"seq": 1, "log": "L", "tags": ["a"]}"#);
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert!(ok.text().contains("\"applied_seq\":1"));
    assert_eq!(
        edge.purge(r#"{"seq": 1, "log": "L", "tags": ["a"]}"#)
            .status,
        200
    );
    let gap = edge.purge(r#"{"seq": 3, "log": "L", "tags": ["a"]}"#);
    assert_eq!(gap.status, 409);
    assert!(gap.text().contains("\"applied_seq\":1"), "{}", gap.text());
    // A hard purge-all may jump (it covers whatever it skips); a soft one may not.
    assert_eq!(
        edge.purge(r#"{"seq": 5, "log": "L", "all": true, "soft": true}"#)
            .status,
        409
    );
    assert_eq!(
        edge.purge(r#"{"seq": 5, "log": "L", "all": true}"#).status,
        200
    );
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let state = client::get(
        edge.admin,
        "admin",
        "/purge/state",
        &[("Authorization", &auth)],
    );
    assert!(
        state.text().contains("\"applied_seq\":5"),
        "{}",
        state.text()
    );
    assert!(edge.metric("edge_purge_requests_total{result=\"gap\"}") >= 2.0);
    assert!(edge.metric("edge_purge_requests_total{result=\"unauthorized\"}") >= 5.0);
}

#[test]
fn a_url_purge_takes_every_variant_and_every_keyed_header_value() {
    let origin = Origin::start(cacheable);
    let rules = "- match: { path_prefix: /keyed/ }\n  cache_key: { headers: [x-device] }";
    let edge = Edge::builder(origin.addr).rules(rules).start();
    // Two Vary variants of one URL, and two keyed-header values of another: four objects.
    let objects: &[(&str, &[(&str, &str)])] = &[
        ("/plain.css", &[("Accept-Language", "en")]),
        ("/plain.css", &[("Accept-Language", "fr")]),
        ("/keyed/a.css", &[("X-Device", "mobile")]),
        ("/keyed/a.css", &[("X-Device", "desktop")]),
    ];
    for (path, h) in objects {
        eventually(Duration::from_secs(5), "stored", || {
            hit(&edge, path, h).then_some(())
        });
    }
    eventually(Duration::from_secs(5), "stored", || {
        hit(&edge, "/other.css", &[]).then_some(())
    });
    let r = edge.purge(
        r#"{"urls": ["https://example.com/plain.css", "http://example.com:8080/keyed/a.css"]}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    for (path, h) in objects {
        assert!(!hit(&edge, path, h), "{path} {h:?} survived");
    }
    assert!(hit(&edge, "/other.css", &[]));
}

#[test]
fn a_fill_in_flight_when_a_purge_lands_is_not_stored() {
    let origin = Origin::start(|req| {
        let r = cacheable(req);
        if req.path() == "/slow.css" && req.header("if-none-match").is_none() {
            // The purge lands while this body is on its way.
            Reply {
                drip: Duration::from_millis(300),
                ..r
            }
        } else {
            r
        }
    });
    let edge = Edge::builder(origin.addr).start();
    let addr = edge.addr;
    let slow = std::thread::spawn(move || client::get(addr, "example.com", "/slow.css", &[]));
    eventually(Duration::from_secs(5), "the fill to start", || {
        (origin.count("/slow.css") == 1).then_some(())
    });
    let r = edge.purge(r#"{"tags": ["slow.css"]}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    let first = slow.join().unwrap();
    assert_eq!(first.status, 200);
    assert!(first.complete);
    // The body fetched before the purge went to its client, and no further.
    let again = edge.get("/slow.css", &[]);
    assert!(
        !status_of(&again).contains("; hit"),
        "{}",
        status_of(&again)
    );
    assert_eq!(origin.count("/slow.css"), 2);
}

#[test]
fn a_fill_that_outlasts_the_sweep_of_its_purge_is_not_stored() {
    // 64 KiB in four pieces a quarter of a second apart: the fill takes about a second, far
    // longer than the sweep that retires the purge's ban. Each fetch has a body of its own.
    let fetches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = fetches.clone();
    let origin = Origin::start(move |req| {
        let mut r = cacheable(req);
        if req.path() == "/long.css" {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            r.body = version(n).to_vec();
            r.drip = Duration::from_millis(250);
        }
        r
    });
    fn version(n: usize) -> Vec<u8> {
        let mut body = format!("fetch {n};").repeat(64 * 1024 / 8);
        body.truncate(64 * 1024);
        body.into_bytes()
    }
    // In memory; and on disk only (too big for memory), written as it streams in.
    for disk in [None, Some(Scratch::new("purge-long-fill"))] {
        let edge = match &disk {
            None => Edge::builder(origin.addr).start(),
            Some(dir) => Edge::builder(origin.addr)
                .cache(
                    DiskCache::at(&dir.0)
                        .memory_object("1KiB")
                        .disk_object("64MiB")
                        .lock_timeout("10s"),
                )
                .start(),
        };
        let tier = if disk.is_some() { "disk" } else { "memory" };
        let before = origin.count("/long.css");
        let purged = version(fetches.load(std::sync::atomic::Ordering::SeqCst));
        let addr = edge.addr;
        let slow = std::thread::spawn(move || client::get(addr, "example.com", "/long.css", &[]));
        eventually(Duration::from_secs(5), "the fill to start", || {
            (origin.count("/long.css") == before + 1).then_some(())
        });
        let r = edge.purge(r#"{"tags": ["long.css"]}"#);
        assert_eq!(r.status, 200, "{}", r.text());
        eventually(
            Duration::from_secs(5),
            "the sweep to retire the ban",
            || (edge.metric("edge_purge_bans") == 0.0).then_some(()),
        );
        // Anything served from now on was fetched after the purge.
        let not_purged = |what: &str| {
            let r = edge.get("/long.css", &[]);
            assert_eq!(r.status, 200);
            assert!(r.body != purged, "{tier}: {what}: {}", status_of(&r));
        };
        // A reader arriving now does not follow the fill that began before the purge: it
        // fetches anew (and may store that).
        not_purged("the fill that began before its purge was served");
        let first = slow.join().unwrap();
        assert_eq!(first.status, 200);
        assert!(first.complete);
        assert!(
            first.body == purged,
            "its own client gets the body it asked for"
        );
        if let Some(dir) = &disk {
            // The follower's body is committed; the one written as the first fill went is
            // removed instead.
            eventually(
                Duration::from_secs(20),
                "one body file, the follower's",
                || {
                    let files = files_under(&dir.0.join("objects"));
                    (files.len() == 1 && parts_under(&dir.0.join("objects")).is_empty())
                        .then_some(())
                },
            );
        }
        not_purged("a body fetched before its purge was stored");
    }
}

#[test]
fn a_soft_purge_without_stale_windows_revalidates_before_serving() {
    // By tag and by URL: a soft URL purge keeps the object too, to revalidate.
    for (path, purge) in [
        ("/soft.css", r#"{"tags": ["soft.css"], "soft": true}"#),
        (
            "/soft-url.css",
            r#"{"urls": ["http://example.com/soft-url.css"], "soft": true}"#,
        ),
    ] {
        let origin = Origin::start(cacheable);
        let edge = Edge::builder(origin.addr).start();
        eventually(Duration::from_secs(5), "stored", || {
            hit(&edge, path, &[]).then_some(())
        });
        let r = edge.purge(purge);
        assert_eq!(r.status, 200);
        let r = edge.get(path, &[]);
        assert_eq!(r.text(), format!("body of {path}"));
        assert!(
            status_of(&r).contains("fwd-status=304"),
            "{path}: {}",
            status_of(&r)
        );
        assert!(hit(&edge, path, &[]));
        let reqs = origin.requests();
        assert_eq!(reqs.len(), 2);
        assert_eq!(
            reqs[1].header("if-none-match"),
            Some(format!("\"{path}\"").as_str())
        );
    }
}

#[test]
fn the_sweep_removes_purged_objects_from_disk_and_retires_its_bans() {
    let origin = Origin::start(cacheable);
    let dir = Scratch::new("sweep");
    let cache = DiskCache::at(&dir.0).memory("16MiB").disk("64MiB").yaml();
    let edge = Edge::builder(origin.addr).cache(&cache).start();
    let paths: Vec<String> = (0..200).map(|i| format!("/p/{i}.css")).collect();
    for p in &paths {
        assert_eq!(edge.get(p, &[]).status, 200);
    }
    edge.wait_disk_objects(200, Duration::from_secs(20));
    // Every object carries the tag `all`; half are listed by prefix as well.
    let r = edge.purge(r#"{"tags": ["all"], "prefixes": ["example.com/p/1"]}"#);
    assert_eq!(r.status, 200);
    eventually(Duration::from_secs(20), "the sweep to finish", || {
        (edge.metric("edge_purge_bans") == 0.0
            && edge.metric("edge_cache_tier_objects{tier=\"disk\"}") == 0.0
            && edge.metric("edge_cache_tier_objects{tier=\"memory\"}") == 0.0)
            .then_some(())
    });
    assert!(edge.metric("edge_purge_swept_objects_total{action=\"removed\"}") >= 200.0);
    // With the bans retired, what was purged stays purged.
    for p in paths.iter().step_by(20) {
        assert!(!hit(&edge, p, &[]), "{p}");
    }
}

#[test]
fn tags_survive_a_restart_and_a_purge_by_hand_keeps_the_node_ready() {
    let origin = Origin::start(cacheable);
    let dir = Scratch::new("tags-restart");
    let cache = DiskCache::at(&dir.0).memory("16MiB").disk("64MiB").yaml();
    let mut edge = Edge::builder(origin.addr).cache(&cache).start();
    for p in ["/tagged.css", "/other.css"] {
        eventually(Duration::from_secs(10), "stored on disk", || {
            status_of(&edge.get(p, &[]))
                .contains("detail=memory")
                .then_some(())
        });
    }
    assert_eq!(edge.purge(r#"{"tags": ["unrelated"]}"#).status, 200);
    edge.signal_and_wait("TERM");
    edge.restart();
    // No purge-api involved: a purge by hand does not hold the node back after a restart.
    assert_eq!(edge.ready_status(), 200);
    assert!(status_of(&edge.get("/tagged.css", &[])).contains("detail=disk"));
    // The tag came back from disk with the object.
    assert_eq!(edge.purge(r#"{"tags": ["tagged.css"]}"#).status, 200);
    assert!(!hit(&edge, "/tagged.css", &[]));
    assert!(hit(&edge, "/other.css", &[]));
}
