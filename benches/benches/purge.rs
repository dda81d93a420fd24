//! Purge benchmarks against real processes (release build):
//! - propagation: from `POST /v1/purge?wait=` to "applied on every node", for 20 edges on
//!   loopback, memory-only and with disk tiers (each node then makes its position durable), with
//!   the embedded log and with two replicas on PostgreSQL (purges sent to the replica delivering
//!   to the nodes, and to the other one), and for 20 edges behind 2 shields (each purge applied
//!   by the shields before the edges are sent it);
//! - a tag purge on 100k cached objects: how long the call takes, and how long the background
//!   sweep takes to remove them from both tiers.
//!
//! `cargo build --release --bins && cargo bench -p edge-benches --bench purge`
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: fail loudly

use std::time::{Duration, Instant};

use edge_tests::client;
use edge_tests::edge::{DiskCache, Edge, Scratch};
use edge_tests::eventually;
use edge_tests::origin::{Origin, Reply};
use edge_tests::postgres::Postgres;
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

/// Where purge-api keeps its log, and which replica the purges go through.
#[derive(Clone, Copy)]
enum Log {
    Embedded,
    /// Two replicas on PostgreSQL; purges sent to the one delivering to the nodes, or not.
    Postgres {
        through_deliverer: bool,
    },
}

/// Big enough that the bench measures delivery, not the per-token rate limit.
const NO_LIMIT: &str = "limits: { rate_per_second: 100000, burst: 100000 }\n";

/// The purge-api fleet measured: how many edges, and how many shields in front of them.
#[derive(Clone, Copy)]
struct Nodes {
    edges: usize,
    shields: usize,
}

fn propagation(label: &str, disk: bool, log: Log, fleet: Nodes, purges: usize) {
    let Nodes {
        edges: nodes,
        shields,
    } = fleet;
    let origin = origin();
    let dirs: Vec<Scratch> = (0..nodes).map(|_| Scratch::new("bench-purge")).collect();
    let edges: Vec<Edge> = dirs
        .iter()
        .map(|d| {
            if disk {
                Edge::builder(origin.addr)
                    .cache(DiskCache::at(&d.0).memory("16MiB").disk("64MiB").yaml())
                    .start()
            } else {
                Edge::builder(origin.addr).start()
            }
        })
        .collect();
    let admins: Vec<_> = edges.iter().map(|e| e.admin).collect();
    // Shields are memory-only edges in front of the origin; the edges' own origin does not
    // change what delivery measures.
    let shield_edges: Vec<Edge> = (0..shields)
        .map(|_| Edge::builder(origin.addr).start())
        .collect();
    let shield_admins: Vec<_> = shield_edges.iter().map(|e| e.admin).collect();
    let spec = || {
        PurgeApi::builder()
            .edges(&admins)
            .shields(&shield_admins)
            .extra(NO_LIMIT)
    };
    let pg = matches!(log, Log::Postgres { .. }).then(Postgres::start);
    let apis: Vec<PurgeApi> = match &pg {
        None => vec![spec().start()],
        Some(pg) => {
            let settings = format!("url: \"{}\"", pg.url());
            (0..2).map(|_| spec().postgres(&settings).start()).collect()
        }
    };
    let nodes = nodes + shields;
    let view = |api: &PurgeApi| -> Option<serde_json::Value> {
        serde_json::from_slice(&api.get("/v1/nodes").body).ok()
    };
    eventually(Duration::from_secs(30), "every node up", || {
        let v = view(&apis[0])?;
        let n = v["nodes"].as_array()?;
        (n.len() == nodes && n.iter().all(|n| n["up"] == true)).then_some(())
    });
    // With replicas, the one holding most nodes' leases is "the deliverer".
    let api = match log {
        Log::Embedded => &apis[0],
        Log::Postgres { through_deliverer } => {
            let first = view(&apis[0]).unwrap();
            let id = first["replica"].as_str().unwrap().to_string();
            let mine = first["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|n| n["delivered_by"] == id.as_str())
                .count();
            let deliverer = usize::from(mine * 2 < nodes);
            &apis[if through_deliverer {
                deliverer
            } else {
                1 - deliverer
            }]
        }
    };
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
    let nodes = match shields {
        0 => nodes.to_string(),
        n => format!("{} behind {n} shields", nodes - n),
    };
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
    let edge = Edge::builder(origin.addr)
        .cache(DiskCache::at(&dir.0).memory("256MiB").disk("4GiB").yaml())
        .start();
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

const TWENTY: Nodes = Nodes {
    edges: 20,
    shields: 0,
};

fn main() {
    // `cargo bench` passes `--bench`; a filter argument picks one part.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let run = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    if run("propagation") {
        println!("| nodes' storage | purge log | nodes | purges | p50 ms | p99 ms | max ms |");
        println!("|---|---|---|---|---|---|---|");
        propagation("memory only | embedded", false, Log::Embedded, TWENTY, 500);
        propagation(
            "memory + disk (durable position) | embedded",
            true,
            Log::Embedded,
            TWENTY,
            500,
        );
        let through = Log::Postgres {
            through_deliverer: true,
        };
        propagation(
            "memory only | PostgreSQL, via the delivering replica",
            false,
            through,
            TWENTY,
            500,
        );
        let other = Log::Postgres {
            through_deliverer: false,
        };
        propagation(
            "memory only | PostgreSQL, via the other replica",
            false,
            other,
            TWENTY,
            500,
        );
        let behind_shields = Nodes {
            edges: 20,
            shields: 2,
        };
        propagation(
            "memory only | embedded, 2 shields first",
            false,
            Log::Embedded,
            behind_shields,
            500,
        );
        propagation(
            "memory only | PostgreSQL via the delivering replica, 2 shields first",
            false,
            Log::Postgres {
                through_deliverer: true,
            },
            behind_shields,
            500,
        );
    }
    if run("tag") {
        println!();
        println!("| purge | call returned in | bans retired after | objects removed | |");
        println!("|---|---|---|---|---|");
        tag_purge(100_000);
    }
}
