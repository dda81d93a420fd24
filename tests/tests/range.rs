//! Range requests answered from the cache.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed set-up is a failed test

use edge_tests::edge::Edge;
use edge_tests::origin::{Origin, Reply};

fn body() -> Vec<u8> {
    (0..100u8).map(|i| b'0' + i % 10).collect()
}

fn hundred_byte_origin() -> Origin {
    Origin::start(|_| {
        Reply::ok(
            body(),
            &[
                ("cache-control", "max-age=60"),
                ("content-type", "text/plain"),
            ],
        )
    })
}

#[test]
fn single_range_from_cache_is_206() {
    let origin = hundred_byte_origin();
    let edge = Edge::builder(origin.addr).start();
    let cold = edge.get("/r", &[("range", "bytes=10-14")]);
    assert_eq!(cold.status, 206, "a cold miss is ranged too");
    assert_eq!(cold.text(), "01234");
    let r = edge.get("/r", &[("range", "bytes=0-4")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.text(), "01234");
    assert_eq!(r.header("content-range"), Some("bytes 0-4/100"));
    assert!(r.cache_status_entry().matches("hit"));
    let tail = edge.get("/r", &[("range", "bytes=-3")]);
    assert_eq!((tail.status, tail.text().as_str()), (206, "789"));
    assert_eq!(origin.count("/r"), 1);
    assert!(
        origin.requests()[0].header("range").is_none(),
        "the origin is asked for the whole body"
    );
}

#[test]
fn multipart_ranges_and_unsatisfiable_ranges() {
    let origin = hundred_byte_origin();
    let edge = Edge::builder(origin.addr).start();
    edge.get("/m", &[]);
    let r = edge.get("/m", &[("range", "bytes=0-1,50-52")]);
    assert_eq!(r.status, 206);
    let ct = r.header("content-type").unwrap();
    assert!(ct.starts_with("multipart/byteranges; boundary="), "{ct}");
    let text = r.text();
    assert!(
        text.contains("Content-Range: bytes 0-1/100")
            && text.contains("Content-Range: bytes 50-52/100"),
        "{text}"
    );
    assert!(
        text.contains("\r\n01\r\n") && text.contains("\r\n012\r\n"),
        "{text}"
    );
    let bad = edge.get("/m", &[("range", "bytes=500-600")]);
    assert_eq!(bad.status, 416);
    assert_eq!(origin.count("/m"), 1);
}
