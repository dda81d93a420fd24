//! Content codings: variants stored per normalised `Accept-Encoding`, never served across;
//! an encoded response without `Vary` decoded for clients that cannot take it; on-the-fly
//! compression for clients that accept it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed set-up is a failed test

use std::io::Write;
use std::process::{Command, Stdio};

use edge_tests::client::Response;
use edge_tests::edge::Edge;
use edge_tests::origin::{Origin, Reply};

fn gzip_tool(args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("gzip")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("gzip runs (scripts/setup.sh installs it)");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "gzip {args:?}");
    out.stdout
}

fn gzip(data: &[u8]) -> Vec<u8> {
    gzip_tool(&["-c", "-n"], data)
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    gzip_tool(&["-d", "-c"], data)
}

fn text(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| format!("line {i} of a compressible text\n"))
        .collect::<String>()
        .into_bytes()
}

fn edge_for(origin: &Origin, extra: &'static str) -> Edge {
    Edge::with_pool(&format!("servers: [\"{}\"]", origin.addr))
        .extra(extra)
        .start()
}

/// The body as the client would see it after decoding, and whether it came encoded.
fn decoded(r: &Response) -> (Vec<u8>, Option<String>) {
    match r.header("content-encoding") {
        Some("gzip") => (gunzip(&r.body), Some("gzip".into())),
        Some(other) => (r.body.clone(), Some(other.to_string())),
        None => (r.body.clone(), None),
    }
}

#[test]
fn gzip_and_identity_variants_are_never_mixed() {
    let plain = text(200);
    let zipped = gzip(&plain);
    let (p2, z2) = (plain.clone(), zipped.clone());
    let origin = Origin::start(move |r| {
        let ae = r.header("accept-encoding").unwrap_or("");
        let common = [
            ("cache-control", "max-age=60"),
            ("content-type", "text/plain"),
            ("vary", "Accept-Encoding"),
        ];
        if ae.contains("gzip") {
            let mut h = common.to_vec();
            h.push(("content-encoding", "gzip"));
            Reply::ok(z2.clone(), &h)
        } else {
            Reply::ok(p2.clone(), &common)
        }
    });
    let edge = edge_for(&origin, "");
    for round in 0..3 {
        let g = edge.get("/t.txt", &[("Accept-Encoding", "gzip, deflate")]);
        assert_eq!(g.header("content-encoding"), Some("gzip"), "round {round}");
        assert_eq!(g.body, zipped);
        let i = edge.get("/t.txt", &[]);
        assert_eq!(i.header("content-encoding"), None, "round {round}");
        assert_eq!(i.body, plain);
        let q0 = edge.get("/t.txt", &[("Accept-Encoding", "gzip;q=0, identity")]);
        assert_eq!(q0.header("content-encoding"), None, "round {round}");
        assert_eq!(q0.body, plain);
        if round > 0 {
            g.assert_cache_status("hit");
            i.assert_cache_status("hit");
            q0.assert_cache_status("hit");
        }
    }
    // Two variants, whatever the spelling: the origin was asked with the normalised value.
    let seen: Vec<Option<String>> = origin
        .requests()
        .iter()
        .map(|r| r.header("accept-encoding").map(str::to_string))
        .collect();
    assert_eq!(seen, vec![Some("gzip".to_string()), None]);
}

#[test]
fn an_encoded_response_without_vary_is_decoded_for_clients_that_cannot_take_it() {
    let plain = text(200);
    let zipped = gzip(&plain);
    let z2 = zipped.clone();
    // A careless origin: always gzip, and no Vary.
    let origin = Origin::start(move |_| {
        Reply::ok(
            z2.clone(),
            &[
                ("cache-control", "max-age=60"),
                ("content-type", "text/plain"),
                ("content-encoding", "gzip"),
            ],
        )
    });
    let edge = edge_for(&origin, "");
    let g = edge.get("/careless.txt", &[("Accept-Encoding", "gzip")]);
    assert_eq!(g.body, zipped);
    assert!(
        g.header("vary")
            .is_some_and(|v| v.eq_ignore_ascii_case("accept-encoding")),
        "the missing Vary is added: {:?}",
        g.headers
    );
    for _ in 0..2 {
        let i = edge.get("/careless.txt", &[]);
        assert_eq!(i.status, 200);
        assert_eq!(i.header("content-encoding"), None);
        assert_eq!(i.text().len(), plain.len());
        assert_eq!(
            i.body, plain,
            "decoded for a client that did not ask for gzip"
        );
    }
    edge.get("/careless.txt", &[("Accept-Encoding", "gzip")])
        .assert_cache_status("hit");
    assert_eq!(origin.requests().len(), 2, "one fetch per variant");
}

#[test]
fn compression_on_the_fly_serves_each_client_the_coding_it_accepts() {
    let page = text(200);
    let p2 = page.clone();
    let origin = Origin::start(move |r| {
        let ct = if r.path().ends_with(".png") {
            "image/png"
        } else {
            "text/html"
        };
        Reply::ok(
            p2.clone(),
            &[("cache-control", "max-age=60"), ("content-type", ct)],
        )
    });
    let edge = edge_for(&origin, "compression: { on_the_fly: true, level: 5 }\n");
    let g = edge.get("/page.html", &[("Accept-Encoding", "gzip")]);
    assert_eq!(decoded(&g), (page.clone(), Some("gzip".into())));
    assert!(
        g.body.len() < page.len() / 2,
        "compressed: {}",
        g.body.len()
    );
    assert!(
        g.header("vary")
            .is_some_and(|v| v.to_ascii_lowercase().contains("accept-encoding")),
        "{:?}",
        g.headers
    );
    let i = edge.get("/page.html", &[]);
    i.assert_cache_status("hit");
    assert_eq!(decoded(&i), (page.clone(), None));
    let b = edge.get("/page.html", &[("Accept-Encoding", "br")]);
    assert_eq!(b.header("content-encoding"), Some("br"));
    let again = edge.get("/page.html", &[("Accept-Encoding", "gzip")]);
    again.assert_cache_status("hit");
    assert_eq!(decoded(&again), (page.clone(), Some("gzip".into())));
    assert_eq!(
        origin.count("/page.html"),
        1,
        "stored once, as the origin sent it"
    );
    // Images are not recompressed.
    let png = edge.get("/i.png", &[("Accept-Encoding", "gzip")]);
    assert_eq!(png.header("content-encoding"), None);
    assert_eq!(png.body, page);
}
