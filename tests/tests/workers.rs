//! The proxy runs a single-threaded service per worker thread, all accepting on the same
//! listening sockets: every worker takes connections, a burst of them is spread over the
//! workers, and `runtime.work_stealing` keeps the one shared service.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed set-up is a failed test

use std::io::{Read, Write};
use std::net::TcpStream;

use edge_tests::edge::Edge;
use edge_tests::origin::{Origin, Reply};

fn cacheable_origin() -> Origin {
    Origin::start(|r| {
        Reply::ok(
            format!("body of {}", r.target),
            &[("cache-control", "max-age=600")],
        )
    })
}

fn edge_with(origin: &Origin, runtime: &str) -> Edge {
    Edge::with_pool(&format!("servers: [\"{}\"]", origin.addr))
        .node_id("workers")
        .runtime(runtime)
        .start()
}

fn accepted(edge: &Edge, worker: usize) -> f64 {
    edge.metric(&format!(
        "edge_connections_accepted_total{{worker=\"{worker}\"}}"
    ))
}

/// Opens `n` connections before writing a request on any, then reads every answer: the
/// connections wait in the accept queue together.
fn burst(edge: &Edge, n: usize) {
    let mut conns: Vec<TcpStream> = (0..n)
        .map(|_| TcpStream::connect(edge.addr).unwrap())
        .collect();
    for (i, c) in conns.iter_mut().enumerate() {
        write!(
            c,
            "GET /b{} HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
            i % 4
        )
        .unwrap();
    }
    for c in &mut conns {
        let mut answer = String::new();
        c.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
}

#[test]
fn a_burst_of_connections_reaches_every_worker() {
    let origin = cacheable_origin();
    let edge = edge_with(&origin, "threads: 3");
    let before: Vec<f64> = (0..3).map(|w| accepted(&edge, w)).collect();
    burst(&edge, 64);
    let took: Vec<f64> = (0..3).map(|w| accepted(&edge, w) - before[w]).collect();
    // At least: the harness's readiness probe of the public port may be counted late.
    assert!(took.iter().sum::<f64>() >= 64.0, "{took:?}");
    // A worker without its share of the sockets would take none; one the others outran by
    // more than a few connections pauses, and the rest of the burst goes to the others.
    for (w, n) in took.iter().enumerate() {
        assert!(*n >= 1.0, "worker {w} took none of the burst: {took:?}");
    }
}

#[test]
fn a_work_stealing_runtime_serves_as_one_worker() {
    let origin = cacheable_origin();
    let edge = edge_with(&origin, "threads: 2, work_stealing: true");
    let before = accepted(&edge, 0);
    burst(&edge, 16);
    assert!(accepted(&edge, 0) - before >= 16.0);
    assert_eq!(accepted(&edge, 1), 0.0, "one service, counted as worker 0");
    edge.get("/b0", &[]).assert_cache_status("hit");
}
