//! Malformed requests get a 400, never a crash, and never reach the origin; the node keeps
//! serving.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed set-up is a failed test

use edge_tests::client;
use edge_tests::edge::Edge;
use edge_tests::origin::{Origin, Reply};

#[test]
fn garbage_gets_a_4xx_and_the_node_survives() {
    let origin = Origin::start(|_| Reply::ok("fine", &[("cache-control", "max-age=60")]));
    let edge = Edge::builder(origin.addr).start();
    let cases: &[&[u8]] = &[
        b"GARBAGE\r\n\r\n",
        b"GET /\r\n\r\n",
        b"GET / HTTP/9.9\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nBad Header Line\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n",
        b"\x00\x01\x02\x03\r\n\r\n",
    ];
    for raw in cases {
        let r = client::raw(edge.addr, raw, false).expect("an answer, not a dropped connection");
        assert_eq!(r.status, 400, "{:?}", String::from_utf8_lossy(raw));
    }
    assert!(
        origin.requests().is_empty(),
        "nothing malformed reached the origin"
    );
    assert_eq!(
        edge.get("/after", &[]).text(),
        "fine",
        "the node still serves"
    );
}
