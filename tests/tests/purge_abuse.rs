//! The purge API under abuse: tokens scoped to hosts, floods of bad and good callers, and
//! bodies that are huge or never finish. Nothing refused is logged or delivered.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed set-up is a failed test

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use edge_tests::client;
use edge_tests::edge::Edge;
use edge_tests::origin::{Origin, Reply};
use edge_tests::purge_api::{PurgeApi, SCOPED_TOKEN};

fn head(api: &PurgeApi) -> u64 {
    let r = client::get(api.addr, "purge-api", "/healthz", &[]);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    v["head"].as_u64().unwrap()
}

fn error_of(r: &client::Response) -> String {
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    v["error"].as_str().unwrap().to_string()
}

#[test]
fn a_scoped_token_purges_only_its_own_hosts() {
    let origin = Origin::start(|_| Reply::ok("x", &[("cache-control", "max-age=600")]));
    let edge = Edge::builder(origin.addr).start();
    let api = PurgeApi::start(&[edge.admin], "", "");
    let hosts = ["shop.test", "a.img.test", "other.test"];
    for h in hosts {
        client::get(edge.addr, h, "/p", &[]);
        client::get(edge.addr, h, "/p", &[]).assert_cache_status("hit");
    }

    let refused = [
        (r#"{"urls": ["http://other.test/p"]}"#, "other.test"),
        (r#"{"prefixes": ["other.test/"]}"#, "other.test"),
        (r#"{"hosts": ["other.test"]}"#, "other.test"),
        (r#"{"hosts": ["img.test"]}"#, "img.test"),
        (r#"{"hosts": ["evilshop.test"]}"#, "evilshop.test"),
        (
            r#"{"urls": ["http://shop.test/p", "http://other.test/p"]}"#,
            "other.test",
        ),
        (r#"{"tags": ["everything"]}"#, "tags"),
        (r#"{"all": true}"#, "all"),
    ];
    for (body, says) in refused {
        let r = api.purge_as(SCOPED_TOKEN, body, "");
        assert_eq!(r.status, 403, "{body}: {}", r.text());
        let msg = error_of(&r);
        assert!(msg.contains(says), "{msg:?} does not name {says:?}");
    }
    assert_eq!(head(&api), 0, "nothing refused was logged");

    let r = api.purge_as(
        SCOPED_TOKEN,
        r#"{"urls": ["http://shop.test/p"], "hosts": ["a.img.test"]}"#,
        "wait=5s",
    );
    assert_eq!(r.status, 202, "{}", r.text());
    assert!(r.text().contains(r#""complete":true"#), "{}", r.text());
    client::get(edge.addr, "shop.test", "/p", &[]).assert_cache_status("fwd=miss");
    client::get(edge.addr, "a.img.test", "/p", &[]).assert_cache_status("fwd=miss");
    client::get(edge.addr, "other.test", "/p", &[]).assert_cache_status("hit");

    // The unscoped token still may.
    let r = api.purge(r#"{"hosts": ["other.test"]}"#, "wait=5s");
    assert_eq!(r.status, 202);
    client::get(edge.addr, "other.test", "/p", &[]).assert_cache_status("fwd=miss");
}

#[test]
fn floods_are_refused_cleanly_and_nothing_refused_is_logged() {
    let origin = Origin::start(|_| Reply::ok("x", &[]));
    let edge = Edge::builder(origin.addr).start();
    let api = PurgeApi::start(
        &[edge.admin],
        "",
        "limits: { rate_per_second: 1, burst: 20 }\n",
    );
    let addr = api.addr;
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..400)
            .map(|i| {
                s.spawn(move || {
                    let token = if i % 2 == 0 {
                        "wrong"
                    } else {
                        edge_tests::purge_api::API_TOKEN
                    };
                    let auth = format!("Bearer {token}");
                    let body = format!(r#"{{"urls": ["http://flood.test/{i}"]}}"#);
                    client::request(
                        addr,
                        "POST",
                        "purge-api",
                        "/v1/purge",
                        &[("Authorization", &auth)],
                        body.as_bytes(),
                    )
                    .status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let count = |s: u16| statuses.iter().filter(|&&x| x == s).count();
    assert_eq!(count(401), 200, "{statuses:?}");
    let accepted = count(202);
    assert!((20..=30).contains(&accepted), "burst 20 at 1/s: {accepted}");
    assert_eq!(accepted + count(429), 200, "{statuses:?}");
    assert_eq!(
        head(&api),
        accepted as u64,
        "exactly the accepted purges were logged"
    );
    assert_eq!(
        client::get(addr, "purge-api", "/healthz", &[]).status,
        200,
        "still serving"
    );
}

/// Sends a purge request's `head` (after the request line, Host and token), lets `body` write
/// what follows (write errors are expected once the server refuses), and returns the status line.
fn status_after(api: &PurgeApi, head: &str, body: impl FnOnce(&mut TcpStream)) -> String {
    let mut s = TcpStream::connect(api.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "POST /v1/purge HTTP/1.1\r\nHost: p\r\nAuthorization: Bearer {}\r\n{head}\r\n",
        edge_tests::purge_api::API_TOKEN
    )
    .unwrap();
    body(&mut s);
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    text.lines().next().unwrap_or("").to_string()
}

#[test]
fn huge_and_endless_bodies_are_refused() {
    let origin = Origin::start(|_| Reply::ok("x", &[]));
    let edge = Edge::builder(origin.addr).start();
    let api = PurgeApi::start(&[edge.admin], "", "limits: { max_body: 64KiB }\n");

    // Declared huge: refused on the header, before the body is read.
    let status = status_after(&api, "Content-Length: 500000000\r\n", |s| {
        let _ = s.write_all(&[b' '; 65536]);
    });
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");

    // Chunked with no declared size: cut off at the limit.
    let status = status_after(&api, "Transfer-Encoding: chunked\r\n", |s| {
        for _ in 0..40 {
            if write!(s, "1000\r\n{}\r\n", " ".repeat(4096)).is_err() {
                break;
            }
        }
    });
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");

    // A body that stops arriving: 408 after the client timeout, not a connection held forever.
    let status = status_after(&api, "Content-Length: 100\r\n", |s| {
        s.write_all(b"{\"urls\":").unwrap();
    });
    assert!(status.starts_with("HTTP/1.1 408"), "{status}");
    assert_eq!(head(&api), 0);
}
