//! Concurrent misses for one key make one origin fetch; readers following a fill never see a
//! truncated body as complete.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed set-up is a failed test

use std::sync::{Arc, Barrier};
use std::time::Duration;

use edge_tests::edge::Edge;
use edge_tests::origin::{Origin, Reply};

#[test]
fn fifty_concurrent_misses_make_one_origin_request() {
    let origin = Origin::start(|_| {
        Reply::ok(vec![b'c'; 20_000], &[("cache-control", "max-age=60")])
            .delayed(Duration::from_millis(500))
    });
    let edge = Arc::new(Edge::builder(origin.addr).start());
    let barrier = Arc::new(Barrier::new(50));
    let handles: Vec<_> = (0..50)
        .map(|_| {
            let (edge, barrier) = (edge.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                edge.get("/hot", &[])
            })
        })
        .collect();
    for h in handles {
        let r = h.join().unwrap();
        assert_eq!(r.status, 200);
        assert!(r.complete);
        assert_eq!(r.body.len(), 20_000);
    }
    assert_eq!(origin.count("/hot"), 1);
}

#[test]
fn an_aborted_fill_is_an_error_for_every_reader_and_is_not_stored() {
    let origin = Origin::start(|_| {
        let mut r = Reply::ok(vec![b'a'; 512 * 1024], &[("cache-control", "max-age=60")]);
        r.truncate_after = Some(256 * 1024);
        r.drip = Duration::from_millis(20);
        r
    });
    let edge = Arc::new(Edge::builder(origin.addr).start());
    let handles: Vec<_> = (0..3)
        .map(|i| {
            let edge = edge.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50 * i));
                edge.get("/broken", &[])
            })
        })
        .collect();
    for h in handles {
        let r = h.join().unwrap();
        assert!(
            !r.complete,
            "a truncated body must not end cleanly ({} bytes)",
            r.body.len()
        );
        assert!(r.body.len() < 512 * 1024);
    }
    let before = origin.count("/broken");
    let again = edge.get("/broken", &[]);
    assert!(!again.complete);
    assert_eq!(
        origin.count("/broken"),
        before + 1,
        "nothing partial was stored"
    );
}
