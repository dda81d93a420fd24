//! `pingora-floor`, the yardstick docs/benchmarks.md measures the edge against, must be what it says:
//! in `cache` mode a repeated GET is answered from Pingora's cache without asking the origin,
//! and what `Cache-Control` forbids is not kept; in `proxy` mode every request goes to the origin;
//! in `static` mode none does, and the answer has the size asked for.
#![allow(clippy::unwrap_used)] // tests

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use edge_tests::client::{self, Response};
use edge_tests::origin::{Origin, Reply};
use edge_tests::{eventually, free_port};

/// A running `pingora-floor`, killed on drop.
struct Floor {
    child: Child,
    addr: SocketAddr,
}

impl Floor {
    fn start(mode: &str, origin: SocketAddr) -> Floor {
        Floor::start_with(mode, origin, &[])
    }

    fn start_with(mode: &str, origin: SocketAddr, env: &[(&str, &str)]) -> Floor {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_pingora-floor"))
            .arg(mode)
            .envs(env.iter().copied())
            .env("ORIGIN", origin.to_string())
            .env("CANDIDATE_PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let floor = Floor { child, addr };
        eventually(Duration::from_secs(20), "the floor listening", || {
            client::raw(
                addr,
                b"GET /ready HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                false,
            )
            .ok()
        });
        floor
    }

    fn get(&self, path: &str) -> Response {
        client::get(self.addr, "t", path, &[])
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn origin() -> Origin {
    Origin::start(|req| {
        let cc = if req.path().starts_with("/private") {
            "private"
        } else {
            "public, max-age=60"
        };
        Reply::ok(format!("body of {}", req.path()), &[("cache-control", cc)])
    })
}

#[test]
fn the_cache_floor_answers_a_repeat_from_its_cache_and_keeps_nothing_private() {
    let origin = origin();
    let floor = Floor::start("cache", origin.addr);
    for _ in 0..3 {
        let r = floor.get("/a");
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "body of /a");
    }
    assert_eq!(
        origin.count("/a"),
        1,
        "repeats were not served from the cache"
    );
    for _ in 0..2 {
        assert_eq!(floor.get("/private").text(), "body of /private");
    }
    assert_eq!(origin.count("/private"), 2, "a private answer was cached");
}

#[test]
fn the_proxy_floor_asks_the_origin_every_time() {
    let origin = origin();
    let floor = Floor::start("proxy", origin.addr);
    for _ in 0..3 {
        assert_eq!(floor.get("/a").text(), "body of /a");
    }
    assert_eq!(origin.count("/a"), 3);
}

#[test]
fn the_static_floor_answers_with_a_body_of_the_size_asked_and_never_asks_the_origin() {
    let origin = origin();
    for (size, env) in [(1024, vec![]), (100_000, vec![("FLOOR_BODY", "100000")])] {
        let floor = Floor::start_with("static", origin.addr, &env);
        for _ in 0..2 {
            let r = floor.get("/a");
            assert_eq!(r.status, 200);
            assert!(r.complete);
            assert_eq!(r.body.len(), size);
        }
    }
    assert_eq!(origin.count("/a"), 0);
}

#[test]
fn a_body_size_that_is_not_a_number_is_refused_as_a_usage_error() {
    let status = Command::new(env!("CARGO_BIN_EXE_pingora-floor"))
        .arg("static")
        .env("FLOOR_BODY", "100k")
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(64));
}

#[test]
fn an_unknown_mode_is_refused_as_a_usage_error() {
    let status = Command::new(env!("CARGO_BIN_EXE_pingora-floor"))
        .arg("nonsense")
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(64));
}
