//! Stopping without cutting a request: after `SIGTERM` the node stops accepting, `/readyz`
//! says so, and what it had begun (a slow origin fetch, a download, a connection accepted just
//! before) is answered in full within `runtime.shutdown_timeout`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed set-up is a failed test

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use edge_tests::client;
use edge_tests::edge::Edge;
use edge_tests::eventually;
use edge_tests::origin::{pattern_byte, Origin, Reply};

/// An edge in front of `origin` that may take 20 s to drain (the harness's usual is 1 s).
fn patient_edge(origin: &Origin) -> Edge {
    let pool = format!("servers: [\"{}\"], read_timeout: 30s", origin.addr);
    Edge::with_pool(&pool)
        .node_id("drain-test")
        .shutdown_timeout("20s")
        .start()
}

/// Waits until `/readyz` reports the node has stopped accepting.
fn wait_draining(edge: &Edge) -> client::Response {
    eventually(Duration::from_secs(10), "the node to drain", || {
        let r = edge.readyz();
        r.text().contains("\"draining\":true").then_some(r)
    })
}

#[test]
fn a_download_in_flight_at_sigterm_is_answered_in_full() {
    const LEN: u64 = 256 * 1024;
    // Headers after 500 ms, then 16 KiB every 50 ms: about 1.3 s in all.
    let origin = Origin::start(|_| {
        let mut r = Reply::generated(LEN, &[("cache-control", "max-age=600")])
            .delayed(Duration::from_millis(500));
        r.drip = Duration::from_millis(50);
        r
    });
    let mut edge = patient_edge(&origin);
    let addr = edge.addr;
    let download =
        std::thread::spawn(move || client::get_checked(addr, "example.com", "/big", pattern_byte));
    eventually(Duration::from_secs(10), "the origin fetch", || {
        (origin.count("/big") == 1).then_some(())
    });

    edge.signal("TERM");
    let ready = wait_draining(&edge);
    assert_eq!(ready.status, 503, "{}", ready.text());
    assert!(ready.text().contains("\"ready\":false"), "{}", ready.text());
    assert!(
        ready.text().contains("\"stopping\":true"),
        "{}",
        ready.text()
    );
    let exit = edge.wait();

    let got = download.join().unwrap().unwrap();
    assert_eq!(got.status, 200);
    assert_eq!(got.len, LEN, "the whole body");
    assert_eq!(got.first_mismatch, None);
    assert!(exit.success(), "{exit}");
}

#[test]
fn a_connection_accepted_before_the_stop_is_answered_after_it() {
    let origin = Origin::start(|_| Reply::ok("late but whole", &[]));
    let mut edge = patient_edge(&origin);
    let accepted = |edge: &Edge| {
        edge.metric("edge_connections_accepted_total{worker=\"0\"}")
            + edge.metric("edge_connections_accepted_total{worker=\"1\"}")
    };
    let before = accepted(&edge);
    let mut conn = TcpStream::connect(edge.addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    eventually(Duration::from_secs(10), "the edge to accept", || {
        (accepted(&edge) > before).then_some(())
    });

    // The node stops accepting with this connection open and no request on it yet: Pingora
    // would close it unanswered at once.
    edge.signal("TERM");
    wait_draining(&edge);
    conn.write_all(b"GET /late HTTP/1.1\r\nHost: example.com\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    let lower = answer.to_ascii_lowercase();
    assert!(lower.starts_with("http/1.1 200"), "{answer:?}");
    assert!(lower.contains("connection: close"), "{answer:?}");
    assert!(answer.ends_with("late but whole"), "{answer:?}");
    assert!(edge.wait().success());
}

#[test]
fn a_drain_ends_at_the_shutdown_timeout() {
    // The harness's edge drains for at most 1 s; this origin answers after 30.
    let origin = Origin::start(|_| Reply::ok("too late", &[]).delayed(Duration::from_secs(30)));
    let mut edge = Edge::builder(origin.addr).start();
    let addr = edge.addr;
    let stuck = std::thread::spawn(move || {
        client::raw(
            addr,
            b"GET /stuck HTTP/1.1\r\nHost: example.com\r\n\r\n",
            false,
        )
    });
    eventually(Duration::from_secs(10), "the origin fetch", || {
        (origin.count("/stuck") == 1).then_some(())
    });
    assert!(edge.signal_and_wait("TERM").success());
    assert!(
        stuck.join().unwrap().is_err(),
        "cut at the timeout, not answered"
    );
    assert!(
        edge.log().contains("stopping with requests in flight"),
        "{}",
        edge.log()
    );
}
