//! Purge benchmarks against real processes (release build):
//! - propagation: from `POST /v1/purge?wait=` to "applied on every node", for 20 edges on
//!   loopback, memory-only and with disk tiers (each node then makes its position durable);
//! - a tag purge on 100k cached objects: how long the call takes, and how long the background
//!   sweep takes to remove them from both tiers.
//!
//! `cargo build --release --bins && cargo bench -p edge-benches --bench purge`
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: fail loudly

use std::time::{Duration, Instant};

use edge_tests::client;
use edge_tests::edge::{disk_cache, Edge, Scratch};
use edge_tests::eventually;
use edge_tests::origin::{Origin, Reply};
use edge_tests::purge_api::PurgeApi;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn origin() -> Origin {
    Origin::start(|req| {
        let tags = format!("big {}", req.path());
        Reply::ok(
            vec![b'x'; 100],
            &[("Cache-Control", "max-age=3600"), ("Surrogate-Key", &tags)],
        )
    })
}

fn propagation(label: &str, disk: bool, nodes: usize, purges: usize) {
    let origin = origin();
    let dirs: Vec<Scratch> = (0..nodes).map(|_| Scratch::new("bench-purge")).collect();
    let edges: Vec<Edge> = dirs
        .iter()
        .map(|d| {
            if disk {
                Edge::start_cache(origin.addr, "", &disk_cache(&d.0, "16MiB", "64MiB"))
            } else {
                Edge::start(origin.addr, "")
            }
        })
        .collect();
    let admins: Vec<_> = edges.iter().map(|e| e.admin).collect();
    // A deploy pipeline sends far fewer; the limit would only measure itself here.
    let api = PurgeApi::start(
        &admins,
        "",
        "limits: { rate_per_second: 100000, burst: 100000 }\n",
    );
    eventually(Duration::from_secs(30), "every node up", || {
        let r = api.get("/v1/nodes");
        let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
        let n = v["nodes"].as_array()?;
        (n.len() == nodes && n.iter().all(|n| n["up"] == true)).then_some(())
    });
    let mut times = Vec::with_capacity(purges);
    for i in 0..purges + 20 {
        let body = format!(r#"{{"tags": ["tag-{i}"]}}"#);
        let start = Instant::now();
        let r = api.purge(&body, "wait=10s");
        let t = start.elapsed();
        assert!(r.text().contains("\"complete\":true"), "{}", r.text());
        if i >= 20 {
            times.push(t);
        }
    }
    times.sort();
    println!(
        "| {label} | {nodes} | {purges} | {} | {} | {} |",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
        ms(*times.last().unwrap()),
    );
}

fn tag_purge(objects: usize) {
    let origin = origin();
    let dir = Scratch::new("bench-tag");
    let edge = Edge::start_cache(origin.addr, "", &disk_cache(&dir.0, "256MiB", "4GiB"));
    let fill = Instant::now();
    std::thread::scope(|s| {
        for t in 0..8 {
            let addr = edge.addr;
            s.spawn(move || {
                for i in (t..objects).step_by(8) {
                    let r = client::get(addr, "example.com", &format!("/o/{i}"), &[]);
                    assert_eq!(r.status, 200);
                }
            });
        }
    });
    edge.wait_disk_objects(objects, Duration::from_secs(120));
    let fill = fill.elapsed();
    let memory = edge.metric("edge_cache_tier_objects{tier=\"memory\"}");
    let start = Instant::now();
    let r = edge.purge(r#"{"tags": ["big"]}"#);
    let call = start.elapsed();
    assert_eq!(r.status, 200);
    // Purged at once: lookups judge the ban.
    let probe = edge.get("/o/7", &[]);
    assert!(!probe.cache_status().contains("; hit"));
    eventually(Duration::from_secs(600), "the sweep to finish", || {
        (edge.metric("edge_purge_bans") == 0.0).then_some(())
    });
    let swept = start.elapsed();
    let sweep = edge.metric("edge_purge_sweep_duration_seconds_sum");
    let removed = edge.metric("edge_purge_swept_objects_total{action=\"removed\"}");
    println!(
        "| tag on {objects} objects ({memory} also in memory) | {} ms | {:.2} s (sweep pass {:.2} s) | {removed} | fill took {:.1} s |",
        ms(call),
        swept.as_secs_f64(),
        sweep,
        fill.as_secs_f64()
    );
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument picks one part.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let run = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    if run("propagation") {
        println!("| nodes' storage | nodes | purges | p50 ms | p99 ms | max ms |");
        println!("|---|---|---|---|---|---|");
        propagation("memory only", false, 20, 500);
        propagation("memory + disk (durable position)", true, 20, 500);
    }
    if run("tag") {
        println!();
        println!("| purge | call returned in | bans retired after | objects removed | |");
        println!("|---|---|---|---|---|");
        tag_purge(100_000);
    }
}
