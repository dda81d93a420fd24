//! Faults around a real edge: origins that stall or reset, a disk that fills up or loses files,
//! an edge killed under load, and a node cut off from purge-api. What must hold: no partial or
//! wrong body is ever stored or served as whole, and nothing acknowledged is lost.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed set-up is a failed test

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use edge_tests::client;
use edge_tests::edge::{DiskCache, Edge, Scratch};
use edge_tests::netcut::NetCut;
use edge_tests::origin::{pattern, Origin, Reply};
use edge_tests::purge_api::PurgeApi;
use edge_tests::{eventually, files_under, parts_under, total_len};

const CACHEABLE: &[(&str, &str)] = &[("cache-control", "max-age=3600")];

fn disk_cfg(dir: &Path, disk: &str) -> String {
    DiskCache::at(dir).memory_object("1KiB").disk(disk).yaml()
}

#[test]
fn an_origin_that_stalls_or_resets_mid_body_is_never_stored() {
    let origin = Origin::start(|r| match r.path() {
        "/slow-header" => Reply::ok("late", CACHEABLE).delayed(Duration::from_secs(3)),
        "/stall" => {
            // 16 KiB, then a pause longer than the read timeout.
            let mut rep = Reply::ok(pattern(0..100_000), CACHEABLE);
            rep.drip = Duration::from_secs(3);
            rep
        }
        "/reset" => {
            let mut rep = Reply::generated(100_000, CACHEABLE);
            rep.truncate_after = Some(30_000);
            rep
        }
        "/stale" if r.header("if-none-match").is_some() || r.target.contains("slow") => {
            Reply::ok("late", CACHEABLE).delayed(Duration::from_secs(3))
        }
        _ => Reply::ok(
            "v1",
            &[
                ("cache-control", "max-age=1, stale-if-error=60"),
                ("etag", "\"1\""),
            ],
        ),
    });
    let edge = Edge::with_pool(&format!(
        "servers: [\"{}\"], read_timeout: 1s, retries: 0",
        origin.addr
    ))
    .node_id("edge-1")
    .start();
    for _ in 0..2 {
        let r = edge.get("/slow-header", &[]);
        assert_eq!(r.status, 504, "a timed-out origin is a gateway timeout");
    }
    assert_eq!(origin.count("/slow-header"), 2, "nothing was stored");

    for path in ["/stall", "/reset"] {
        for round in 0..2 {
            let r = edge.get(path, &[]);
            assert!(
                r.status >= 500 || !r.complete,
                "{path} round {round}: a broken body must not look whole ({} complete={} len={} {:?})",
                r.status,
                r.complete,
                r.body.len(),
                r.headers
            );
            if r.status == 200 {
                assert!(r.body.len() < 100_000);
                assert_eq!(r.body, pattern(0..r.body.len() as u64), "{path}");
            }
        }
        assert_eq!(
            origin.count(path),
            2,
            "{path}: the partial body was not stored"
        );
    }

    // With a stale copy that allows it, a stalled revalidation serves the stale copy.
    assert_eq!(edge.get("/stale", &[]).text(), "v1");
    std::thread::sleep(Duration::from_millis(1100)); // let it go stale (max-age=1)
    let r = edge.get("/stale", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "v1");
    r.assert_cache_status("fwd=stale");
    assert_eq!(edge.get("/after", &[]).status, 200, "the node still serves");
}

/// A tmpfs smaller than the configured disk tier: writes fail with ENOSPC, requests do not.
#[test]
fn a_full_disk_fails_writes_not_requests() {
    let scratch = Scratch::new("full-disk");
    let mnt = scratch.0.join("small");
    std::fs::create_dir_all(&mnt).unwrap();
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    let sudo: &[&str] = if root { &[] } else { &["sudo", "-n"] };
    let run = |args: &[&str]| {
        let all: Vec<&str> = sudo.iter().chain(args).copied().collect();
        std::process::Command::new(all[0])
            .args(&all[1..])
            .arg(&mnt)
            .status()
            .is_ok_and(|s| s.success())
    };
    if !run(&["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs"]) {
        // Only without root and without password-less sudo; CI runs as root.
        assert!(!root, "root could not mount a tmpfs");
        eprintln!("SKIPPED: mounting a tmpfs needs root or password-less sudo");
        return;
    }
    struct Unmount<F: Fn(&[&str]) -> bool>(F);
    impl<F: Fn(&[&str]) -> bool> Drop for Unmount<F> {
        fn drop(&mut self) {
            (self.0)(&["umount", "-l"]);
        }
    }
    let _unmount = Unmount(run);

    let origin = Origin::start(|_| Reply::generated(400_000, CACHEABLE));
    let edge = Edge::builder(origin.addr)
        .cache(disk_cfg(&mnt, "64MiB"))
        .start();
    // 40 objects of 400 KB into 4 MiB.
    for i in 0..40 {
        let r = edge.get(&format!("/o{i}"), &[]);
        assert_eq!(r.status, 200, "/o{i}");
        assert!(r.complete, "/o{i}");
        assert_eq!(r.body, pattern(0..400_000), "/o{i}");
    }
    eventually(Duration::from_secs(20), "write failures counted", || {
        (edge.metric("edge_cache_tier_errors_total{tier=\"disk\"}") > 0.0).then_some(())
    });
    // Whatever was stored reads back whole; whatever was not is fetched again, whole.
    for i in 0..40 {
        let r = edge.get(&format!("/o{i}"), &[]);
        assert_eq!(r.status, 200, "/o{i}");
        assert_eq!(r.body, pattern(0..400_000), "/o{i}");
    }
    assert_eq!(edge.get("/after", &[]).status, 200);
    // Failed writes leave no temp files filling the disk.
    let tmp_bytes = total_len(&parts_under(&mnt.join("objects")));
    assert_eq!(tmp_bytes, 0, "partial writes were left behind");
}

/// Body files deleted, or replaced by something unreadable, behind the cache's back.
#[test]
fn unreadable_body_files_are_misses() {
    let origin = Origin::start(|_| Reply::generated(200_000, CACHEABLE));
    let dir = Scratch::new("disk-unreadable");
    let edge = Edge::builder(origin.addr)
        .cache(disk_cfg(&dir.0, "64MiB"))
        .start();
    edge.get("/a", &[]);
    eventually(Duration::from_secs(20), "/a on disk", || {
        edge.get("/a", &[])
            .cache_status_entry()
            .matches("detail=disk")
            .then_some(())
    });
    let objects = dir.0.join("objects");
    let files = files_under(&objects);
    assert_eq!(files.len(), 1, "{files:?}");
    for damage in ["deleted", "a directory"] {
        let f = files_under(&objects).pop().unwrap();
        std::fs::remove_file(&f).unwrap();
        if damage == "a directory" {
            std::fs::create_dir(&f).unwrap();
        }
        let before = origin.count("/a");
        let r = edge.get("/a", &[]);
        assert_eq!(r.status, 200, "{damage}");
        assert_eq!(r.body, pattern(0..200_000), "{damage}");
        assert_eq!(origin.count("/a"), before + 1, "{damage}: refetched");
        if damage == "a directory" {
            let _ = std::fs::remove_dir(&f);
        }
        eventually(Duration::from_secs(20), "/a on disk again", || {
            edge.get("/a", &[])
                .cache_status_entry()
                .matches("detail=disk")
                .then_some(())
        });
    }
}

/// The body each path must have: its own name, repeated, so a body served under the wrong key
/// or spliced from two objects does not compare equal.
fn body_of(path: &str) -> Vec<u8> {
    path.as_bytes()
        .iter()
        .chain(b"|")
        .copied()
        .cycle()
        .take(50_000)
        .collect()
}

#[test]
fn an_edge_killed_under_load_serves_correct_bodies_after_restart() {
    let origin = Origin::start(|r| Reply::ok(body_of(r.path()), CACHEABLE));
    let dir = Scratch::new("kill-load");
    let cfg = disk_cfg(&dir.0, "64MiB");
    let mut edge = Edge::builder(origin.addr).cache(&cfg).start();
    let addr = Arc::new(Mutex::new(edge.addr));
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let wrong = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (addr, stop, served, wrong) =
                (addr.clone(), stop.clone(), served.clone(), wrong.clone());
            std::thread::spawn(move || {
                let mut i = w;
                while !stop.load(Ordering::SeqCst) {
                    i += 7;
                    let path = format!("/k{}", i % 60);
                    let a = *addr.lock().unwrap();
                    let req = format!(
                        "GET {path} HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n"
                    );
                    // Connection errors while the node is down are expected.
                    let Ok(r) = client::raw(a, req.as_bytes(), false) else {
                        continue;
                    };
                    if r.status == 200 && r.complete {
                        if r.body != body_of(&path) {
                            wrong.lock().unwrap().push(path);
                        }
                        served.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    eventually(Duration::from_secs(30), "load under way", || {
        (served.load(Ordering::SeqCst) > 300).then_some(())
    });
    edge.signal_and_wait("KILL");
    let before_restart = served.load(Ordering::SeqCst);
    let edge2 = Edge::builder(origin.addr).cache(&cfg).start();
    *addr.lock().unwrap() = edge2.addr;
    eventually(Duration::from_secs(30), "load after the restart", || {
        (served.load(Ordering::SeqCst) > before_restart + 300).then_some(())
    });
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().unwrap();
    }
    assert!(
        wrong.lock().unwrap().is_empty(),
        "wrong bodies served as whole: {:?}",
        wrong.lock().unwrap()
    );
    for i in 0..60 {
        let path = format!("/k{i}");
        let r = edge2.get(&path, &[]);
        assert_eq!(r.status, 200);
        assert!(r.complete);
        assert_eq!(r.body, body_of(&path), "{path}");
    }
}

/// A node cut off from purge-api (a partition, not a crash: it keeps serving) is brought up to
/// date in order when the link returns, and purge-api reports it behind meanwhile.
#[test]
fn a_node_cut_off_during_purges_catches_up_when_the_link_returns() {
    let origin = Origin::start(|_| Reply::ok("x", CACHEABLE));
    let edges = [
        Edge::builder(origin.addr).start(),
        Edge::builder(origin.addr).start(),
    ];
    let cut = NetCut::start(edges[1].admin);
    let api = PurgeApi::start(&[edges[0].admin, cut.addr], "", "");
    for e in &edges {
        for i in 0..5 {
            e.get(&format!("/p{i}"), &[]);
            e.get(&format!("/p{i}"), &[]).assert_cache_status("hit");
        }
    }
    cut.set_cut(true);
    for i in 0..5 {
        let r = api.purge(
            &format!(r#"{{"urls": ["http://example.com/p{i}"]}}"#),
            "wait=1s",
        );
        assert_eq!(r.status, 202);
        assert!(r.text().contains(r#""complete":false"#), "{}", r.text());
        edges[0]
            .get(&format!("/p{i}"), &[])
            .assert_cache_status("fwd=miss");
    }
    let nodes = api.get("/v1/nodes").text();
    assert!(
        nodes.contains("\"lag\":5"),
        "the cut node is reported 5 behind: {nodes}"
    );
    // Still serving its (stale) copies while cut off: that is what a partition looks like.
    edges[1].get("/p0", &[]).assert_cache_status("hit");

    cut.set_cut(false);
    eventually(Duration::from_secs(20), "the cut node to catch up", || {
        let v: serde_json::Value = serde_json::from_slice(&api.get("/v1/nodes").body).unwrap();
        v.as_array()
            .or_else(|| v["nodes"].as_array())
            .unwrap()
            .iter()
            .all(|n| n["lag"] == 0)
            .then_some(())
    });
    for i in 0..5 {
        edges[1]
            .get(&format!("/p{i}"), &[])
            .assert_cache_status("fwd=miss");
    }
}

/// purge-api killed with -9 while a purge is still on its way to a node (the node is cut off,
/// so delivery is retrying): after the restart the purge reaches it from the durable log.
#[test]
fn purge_api_killed_mid_fan_out_delivers_after_restart() {
    let origin = Origin::start(|_| Reply::ok("x", CACHEABLE));
    let edges = [
        Edge::builder(origin.addr).start(),
        Edge::builder(origin.addr).start(),
    ];
    let cut = NetCut::start(edges[1].admin);
    let mut api = PurgeApi::start(&[edges[0].admin, cut.addr], "", "");
    for e in &edges {
        e.get("/k", &[]);
        e.get("/k", &[]).assert_cache_status("hit");
    }
    cut.set_cut(true);
    let r = api.purge(r#"{"urls": ["http://example.com/k"]}"#, "wait=1s");
    assert_eq!(r.status, 202);
    assert!(r.text().contains(r#""complete":false"#), "{}", r.text());
    edges[0].get("/k", &[]).assert_cache_status("fwd=miss");
    edges[1].get("/k", &[]).assert_cache_status("hit");

    api.kill9();
    cut.set_cut(false);
    api.restart();
    eventually(
        Duration::from_secs(20),
        "the purge to reach the cut node",
        || {
            edges[1]
                .get("/k", &[])
                .cache_status_entry()
                .matches("fwd=miss")
                .then_some(())
        },
    );
}
