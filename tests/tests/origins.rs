//! Origin pools: failover when a server dies, consistent hashing, weights, active health
//! checks, the Host rewrite, an origin shield in front of the origin, and forwarding loops.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed set-up is a failed test

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use edge_tests::edge::Edge;
use edge_tests::eventually;
use edge_tests::origin::{Origin, Reply};

/// An origin that names itself in the body and is never cached.
fn named(name: &'static str) -> Origin {
    Origin::start(move |_| Reply::ok(name, &[("cache-control", "no-store")]))
}

fn pool_edge(servers: &str, pool: &str) -> Edge {
    Edge::with_pool(&format!(
        "servers: [{servers}], connect_timeout: 1s, read_timeout: 5s{pool}"
    ))
    .node_id("edge-test")
    .start()
}

#[test]
fn killing_one_origin_server_keeps_every_request_200() {
    let a = named("a");
    let mut b = named("b");
    let edge = pool_edge(&format!("\"{}\", \"{}\"", a.addr, b.addr), "");
    for i in 0..10 {
        assert_eq!(edge.get(&format!("/x{i}"), &[]).status, 200);
    }
    assert!(
        a.requests().len() >= 3 && b.requests().len() >= 3,
        "round robin uses both"
    );

    b.stop();
    let before = a.requests().len();
    for i in 0..40 {
        let r = edge.get(&format!("/y{i}"), &[]);
        assert_eq!(r.status, 200, "request {i} after b died: {}", r.text());
        assert_eq!(r.text(), "a");
    }
    assert_eq!(a.requests().len() - before, 40);
    // The first request to find b dead was retried on a; passive health then skips b.
    let retries = edge.metric("edge_origin_retries_total");
    assert!((1.0..5.0).contains(&retries), "retries: {retries}");
}

#[test]
fn consistent_hashing_sends_each_key_to_one_server() {
    let servers: Vec<Origin> = (0..3)
        .map(|_| Origin::start(|_| Reply::ok("x", &[("cache-control", "no-store")])))
        .collect();
    let list = servers
        .iter()
        .map(|s| format!("\"{}\"", s.addr))
        .collect::<Vec<_>>()
        .join(", ");
    let edge = pool_edge(&list, ", lb: consistent_hash");
    for round in 0..3 {
        for i in 0..60 {
            assert_eq!(
                edge.get(&format!("/k{i}?v=1"), &[]).status,
                200,
                "round {round}"
            );
        }
    }
    for i in 0..60 {
        let path = format!("/k{i}");
        let owners: Vec<usize> = servers.iter().map(|s| s.count(&path)).collect();
        assert_eq!(
            owners.iter().filter(|&&n| n > 0).count(),
            1,
            "{path} went to more than one server: {owners:?}"
        );
        assert_eq!(owners.iter().sum::<usize>(), 3);
    }
    for s in &servers {
        assert!(s.requests().len() >= 15, "every server owns some keys");
    }
}

#[test]
fn weights_share_the_load_and_the_host_header_is_rewritten() {
    let light = named("light");
    let heavy = named("heavy");
    let edge = pool_edge(
        &format!(
            "\"{}\", {{ addr: \"{}\", weight: 3 }}",
            light.addr, heavy.addr
        ),
        ", host_header: origin.internal",
    );
    for i in 0..80 {
        assert_eq!(edge.get(&format!("/w{i}"), &[]).status, 200);
    }
    let (l, h) = (light.requests().len(), heavy.requests().len());
    assert_eq!(l + h, 80);
    assert!(
        (50..=70).contains(&h),
        "weight 3 of 4 should get about 60 of 80: {h}"
    );
    for r in light.requests().iter().chain(heavy.requests().iter()) {
        assert_eq!(r.header("host"), Some("origin.internal"));
    }
}

#[test]
fn an_active_health_check_takes_a_server_out_and_brings_it_back() {
    let sick = Arc::new(AtomicBool::new(false));
    let s2 = sick.clone();
    let a = Origin::start(move |r| {
        if r.path() == "/healthz" && s2.load(Ordering::SeqCst) {
            Reply::status(503, "sick", &[])
        } else {
            Reply::ok("a", &[("cache-control", "no-store")])
        }
    });
    let b = named("b");
    let edge = pool_edge(
        &format!("\"{}\", \"{}\"", a.addr, b.addr),
        ", health_check: { path: /healthz, interval: 100ms, rise: 2, fall: 2 }",
    );
    sick.store(true, Ordering::SeqCst);
    // Two failed checks (fall: 2) and a is out: then a run of requests all go to b.
    eventually(Duration::from_secs(10), "a taken out", || {
        (0..6)
            .all(|i| edge.get(&format!("/h{i}"), &[]).text() == "b")
            .then_some(())
    });
    let served_by_a = a
        .requests()
        .iter()
        .filter(|r| r.path() != "/healthz")
        .count();
    for i in 0..20 {
        assert_eq!(edge.get(&format!("/out{i}"), &[]).text(), "b");
    }
    let after = a
        .requests()
        .iter()
        .filter(|r| r.path() != "/healthz")
        .count();
    assert_eq!(after, served_by_a, "no request reached the sick server");
    assert_eq!(edge.metric("edge_origin_retries_total"), 0.0);

    sick.store(false, Ordering::SeqCst);
    eventually(Duration::from_secs(10), "a back in the pool", || {
        (0..6)
            .any(|i| edge.get(&format!("/back{i}"), &[]).text() == "a")
            .then_some(())
    });
}

/// A check on another port of each server (a shield's admin `/readyz`) decides whether the
/// server is in the pool, whatever its serving port answers. Two servers on two loopback
/// addresses, each with a checked listener on the same port.
#[test]
fn a_health_check_on_another_port_takes_a_server_out_and_back() {
    let port = (0..20)
        .find_map(|_| {
            let two = std::net::TcpListener::bind("127.0.0.2:0").ok()?;
            let port = two.local_addr().ok()?.port();
            std::net::TcpListener::bind(("127.0.0.1", port)).ok()?;
            Some(port)
        })
        .expect("a port free on 127.0.0.1 and 127.0.0.2");
    let a = named("a");
    let b = Origin::start_on("127.0.0.2:0".parse().unwrap(), |_| {
        Reply::ok("b", &[("cache-control", "no-store")])
    });
    let a_ready = Arc::new(AtomicBool::new(true));
    let r2 = a_ready.clone();
    let _a_admin = Origin::start_on(([127, 0, 0, 1], port).into(), move |r| {
        match (r.path(), r2.load(Ordering::SeqCst)) {
            ("/readyz", true) => Reply::ok("ready", &[]),
            _ => Reply::status(503, "catching up", &[]),
        }
    });
    let _b_admin = Origin::start_on(([127, 0, 0, 2], port).into(), |_| Reply::ok("ready", &[]));
    let edge = pool_edge(
        &format!("\"{}\", \"{}\"", a.addr, b.addr),
        &format!(
            ", health_check: {{ path: /readyz, port: {port}, tls: false, interval: 100ms, rise: 1, fall: 1 }}"
        ),
    );
    a_ready.store(false, Ordering::SeqCst);
    eventually(Duration::from_secs(10), "a taken out", || {
        (0..6)
            .all(|i| edge.get(&format!("/out{i}"), &[]).text() == "b")
            .then_some(())
    });
    a_ready.store(true, Ordering::SeqCst);
    eventually(Duration::from_secs(10), "a back in the pool", || {
        (0..6)
            .any(|i| edge.get(&format!("/back{i}"), &[]).text() == "a")
            .then_some(())
    });
    for origin in [&a, &b] {
        assert_eq!(
            origin.count("/readyz"),
            0,
            "the serving ports are not checked"
        );
    }
}

#[test]
fn an_origin_shield_shows_both_caches_in_cache_status() {
    let origin = Origin::start(|r| {
        Reply::ok(
            format!("body of {}", r.target),
            &[("cache-control", "max-age=60")],
        )
    });
    let shield = Edge::with_pool(&format!("servers: [\"{}\"]", origin.addr))
        .node_id("shield-1")
        .start();
    let child = |id: &'static str| {
        Edge::with_pool(&format!("servers: [\"{}\"]", shield.addr))
            .node_id(id)
            .start()
    };
    let (c1, c2) = (child("edge-1"), child("edge-2"));

    let first = c1.get("/a.css", &[]);
    assert_eq!(first.status, 200);
    assert_eq!(
        first.cache_status(),
        "shield-1; fwd=miss; stored, edge-1; fwd=miss; stored"
    );
    let hit = c1.get("/a.css", &[]);
    assert!(
        hit.cache_status().starts_with("edge-1; hit"),
        "a hit names only this node: {}",
        hit.cache_status()
    );
    // The second edge misses, and the shield answers from its cache.
    let other = c2.get("/a.css", &[]);
    let cs = other.cache_status();
    assert!(
        cs.starts_with("shield-1; hit") && cs.ends_with("edge-2; fwd=miss; stored"),
        "{cs}"
    );
    assert_eq!(other.body, first.body);
    assert_eq!(origin.count("/a.css"), 1, "the shield fetched it once");
    // Each hop is named in CDN-Loop (RFC 8586), which is how loops are caught.
    let hops = origin.requests()[0]
        .header("cdn-loop")
        .unwrap_or("")
        .to_string();
    assert_eq!(hops, "edge-1, shield-1");
}

#[test]
fn an_edge_that_is_its_own_origin_answers_508() {
    // An edge whose origin is its own public port: the forwarded request comes back to it.
    let spec = Edge::with_pool("").node_id("loop-1");
    let edge = Edge::start_config("loop-1", |port, admin| {
        spec.clone()
            .pool(&format!("servers: [\"127.0.0.1:{port}\"]"))
            .yaml(port, admin)
    });
    let r = edge.get("/x", &[]);
    assert_eq!(r.status, 508, "{}", r.text());
    // The inner pass saw the loop; the outer one forwarded its answer.
    let entries = edge_tests::cache_status::parse(r.cache_status());
    assert!(
        entries.iter().any(|e| e.matches("detail=loop-detected")),
        "{}",
        r.cache_status()
    );
}
