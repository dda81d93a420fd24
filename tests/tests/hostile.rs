//! Hostile requests against a real edge: smuggling, oversized requests, path tricks, headers
//! that would poison the cache, cache deception, and errors that must not be stored.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed set-up is a failed test

use std::time::{Duration, Instant};

use edge_tests::client;
use edge_tests::edge::Edge;
use edge_tests::origin::{Origin, Reply};

fn cached(_: &edge_tests::origin::Req) -> Reply {
    Reply::ok("fine", &[("cache-control", "max-age=600")])
}

/// Conflicting or broken framing never reaches the origin as a second request, and the node
/// keeps serving.
#[test]
fn request_smuggling_is_refused_or_framed_one_way() {
    let origin = Origin::start(cached);
    let edge = Edge::builder(origin.addr).start();
    let refused: &[(&str, &[u8])] = &[
        (
            "two different Content-Length",
            b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        ),
        (
            "bad chunk size",
            b"POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        ),
        (
            "chunked not last",
            b"POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        ),
        (
            "unknown coding",
            b"POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "obs-fold",
            b"GET /a HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n  folded\r\n\r\n",
        ),
        (
            "space before colon",
            b"GET /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "HTTP/1.0 with Transfer-Encoding",
            b"POST /a HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
    ];
    for (what, raw) in refused {
        let r = client::raw(edge.addr, raw, false).expect(what);
        assert_eq!(r.status, 400, "{what}");
    }

    // Both Content-Length and Transfer-Encoding: chunked framing wins (RFC 9112 §6.3), the
    // Content-Length is not forwarded, and the connection closes, so the bytes after the
    // chunked body are never read as a request.
    let r = client::raw(
        edge.addr,
        b"POST /cl-te HTTP/1.1\r\nHost: h\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n",
        false,
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("close"));

    // A bare LF ends a line (RFC 9112 §2.2); the edge re-serialises what it parsed, so the
    // origin reads the same two fields and the same framing.
    let r = client::raw(
        edge.addr,
        b"POST /lf HTTP/1.1\r\nHost: h\r\nConnection: close\r\nX-A: 1\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        false,
    )
    .unwrap();
    assert_eq!(r.status, 200);

    // A GET carrying a body (unkeyed, and misread by origins that ignore GET bodies), with a
    // pipelined request behind it.
    for te in ["Content-Length: 3", "Transfer-Encoding: chunked"] {
        let body = if te.starts_with("Content") {
            "abc"
        } else {
            "3\r\nabc\r\n0\r\n\r\n"
        };
        let raw = format!(
            "GET /with-body HTTP/1.1\r\nHost: h\r\n{te}\r\n\r\n{body}GET /smuggled2 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        );
        let r = client::raw(edge.addr, raw.as_bytes(), false).unwrap();
        assert_eq!(r.status, 400, "{te}");
        r.assert_cache_status("detail=body-on-get");
    }

    let reqs = origin.requests();
    let paths: Vec<&str> = reqs.iter().map(|r| r.path()).collect();
    assert!(
        !paths
            .iter()
            .any(|p| p.starts_with("/smuggled") || *p == "/a" || *p == "/with-body"),
        "nothing refused or smuggled reached the origin: {paths:?}"
    );
    let lf = reqs.iter().find(|r| r.path() == "/lf").unwrap();
    assert_eq!(lf.header("x-a"), Some("1"));
    assert!(lf.body.is_empty());
    let clte = reqs.iter().find(|r| r.path() == "/cl-te").unwrap();
    assert_eq!(clte.body, b"hello");
    assert_eq!(clte.header("content-length"), None, "{:?}", clte.headers);
    assert_eq!(
        edge.get("/after", &[]).text(),
        "fine",
        "the node still serves"
    );
}

#[test]
fn oversized_requests_get_414_and_431() {
    let origin = Origin::start(cached);
    let edge = Edge::builder(origin.addr)
        .sites(&edge_tests::edge::site(""))
        .extra("limits: { max_uri_size: 2KiB, max_header_size: 8KiB, max_headers: 40 }\n")
        .start();
    let long_path = format!("/{}", "a".repeat(3000));
    let r = edge.get(&long_path, &[]);
    assert_eq!(r.status, 414);
    r.assert_cache_status("detail=uri-too-long");
    let long_query = format!("/q?x={}", "b".repeat(2100));
    assert_eq!(edge.get(&long_query, &[]).status, 414);
    assert_eq!(edge.get(&format!("/{}", "a".repeat(1900)), &[]).status, 200);

    let big = "v".repeat(9000);
    let r = edge.get("/h", &[("x-big", &big)]);
    assert_eq!(r.status, 431);
    r.assert_cache_status("detail=header-too-large");
    let many: Vec<(String, String)> = (0..45).map(|i| (format!("x-h{i}"), "1".into())).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(edge.get("/h", &many).status, 431);
    assert_eq!(edge.get("/h", &many[..30]).status, 200);

    // Past the parser's own limits the answer is still a 4xx, never a crash.
    let huge_uri = format!("/{}", "a".repeat(70_000));
    assert_eq!(edge.get(&huge_uri, &[]).status, 400);
    let huge_header = "v".repeat(1_100_000);
    let r = edge.get("/h", &[("x-huge", &huge_header)]);
    assert!((400..500).contains(&r.status), "{}", r.status);
    let reqs = origin.requests();
    assert!(
        reqs.iter()
            .all(|r| r.target.len() < 2100 && r.headers.len() < 40),
        "nothing over the limits was forwarded"
    );
    assert_eq!(edge.get("/after", &[]).text(), "fine");
}

#[test]
fn hosts_that_are_not_host_names_get_400() {
    let origin = Origin::start(cached);
    let edge = Edge::builder(origin.addr).start();
    for host in [
        "a.test:99999",
        "a.test:+80",
        "a..test",
        "a.test:80:80",
        "[::1",
    ] {
        let r = client::get(edge.addr, host, "/", &[]);
        assert_eq!(r.status, 400, "{host}");
        r.assert_cache_status("detail=invalid-host");
    }
    let two_hosts = client::raw(
        edge.addr,
        b"GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n",
        false,
    )
    .unwrap();
    assert_eq!(two_hosts.status, 400);
    let absolute_elsewhere = client::raw(
        edge.addr,
        b"GET http://b.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n",
        false,
    )
    .unwrap();
    assert_eq!(absolute_elsewhere.status, 400, "ambiguous authority");
    assert!(origin.requests().is_empty());
}

/// The origin sees the same path the key and the rules saw: dot-segments resolved once, at
/// the edge; `%2F` and `;` kept verbatim on both sides.
#[test]
fn paths_are_normalised_once_for_rules_key_and_origin() {
    let origin = Origin::start(|r| {
        Reply::ok(
            format!("origin saw {}", r.target),
            &[("cache-control", "max-age=600")],
        )
    });
    let edge = Edge::builder(origin.addr).rules("- { match: { path_prefix: /private/ }, cache: false }\n- { match: { path_prefix: /assets/ }, ttl: 1d }").start();
    let r = edge.get("/assets/./a/../app.css", &[]);
    assert_eq!(r.text(), "origin saw /assets/app.css");
    r.assert_cache_status("fwd=miss");
    for same in [
        "/assets/app.css",
        "/x/../assets/app.css",
        "/assets/%2e/app.css",
        "/assets/x/%2E%2e/app.css",
    ] {
        let r = edge.get(same, &[]);
        assert_eq!(r.text(), "origin saw /assets/app.css", "{same}");
        r.assert_cache_status("hit");
    }
    assert_eq!(origin.count("/assets/app.css"), 1);

    // A rule cannot be dodged with dot-segments: this is /private/, bypassed, every time.
    for _ in 0..2 {
        let r = edge.get("/assets/../private/me", &[]);
        assert_eq!(r.text(), "origin saw /private/me");
        r.assert_cache_status("fwd=bypass");
    }
    // Above the root stays at the root.
    assert_eq!(
        edge.get("/../../etc/passwd", &[]).text(),
        "origin saw /etc/passwd"
    );

    // `%2F` and `;` are not separators to the edge, and not rewritten on the way.
    let r = edge.get("/assets%2F..%2Fprivate/me", &[]);
    assert_eq!(r.text(), "origin saw /assets%2F..%2Fprivate/me");
    let r = edge.get("/assets/app.css;v=2", &[]);
    assert_eq!(r.text(), "origin saw /assets/app.css;v=2");
    r.assert_cache_status("fwd=miss");
    let r = edge.get("/assets/a%2Fb.css", &[]);
    assert_eq!(r.text(), "origin saw /assets/a%2Fb.css");
    r.assert_cache_status("fwd=miss");

    // The query is the origin's to read; dots in it are left alone.
    let r = edge.get("/assets/app.css?f=/../x", &[]);
    assert_eq!(r.text(), "origin saw /assets/app.css?f=/../x");
}

/// Headers origins act on but the key does not hold are not forwarded on cacheable requests,
/// so one client cannot choose what every other client is served.
#[test]
fn unkeyed_headers_cannot_poison_the_cache() {
    const HAZARDS: &[(&str, &str)] = &[
        ("x-forwarded-host", "evil.test"),
        ("x-forwarded-scheme", "nothttps"),
        ("x-forwarded-proto", "gopher"),
        ("x-original-url", "/admin"),
        ("x-rewrite-url", "/admin"),
        ("x-http-method-override", "DELETE"),
        ("forwarded", "host=evil.test"),
    ];
    let origin = Origin::start(|r| {
        // An origin framework that trusts every one of them.
        let seen: Vec<String> = HAZARDS
            .iter()
            .filter_map(|(h, _)| r.header(h).map(|v| format!("{h}={v}")))
            .collect();
        Reply::ok(seen.join(" "), &[("cache-control", "max-age=600")])
    });
    let edge = Edge::builder(origin.addr).rules("- { match: { path_prefix: /keyed/ }, cache_key: { headers: [x-forwarded-host] } }\n- { match: { path_prefix: /api/ }, cache: false }").start();
    let r = edge.get("/page", HAZARDS);
    assert_eq!(
        r.text(),
        "x-forwarded-host=example.com x-forwarded-proto=http",
        "only what the edge itself knows reaches the origin"
    );
    let victim = edge.get("/page", &[]);
    assert_eq!(victim.text(), r.text());
    victim.assert_cache_status("hit");

    // A rule that keys on one forwards it, and each value has its own entry.
    let a = edge.get("/keyed/p", &[("x-forwarded-host", "a.test")]);
    assert!(a.text().contains("x-forwarded-host=a.test"), "{}", a.text());
    let b = edge.get("/keyed/p", &[("x-forwarded-host", "b.test")]);
    assert!(b.text().contains("x-forwarded-host=b.test"), "{}", b.text());
    assert!(edge
        .get("/keyed/p", &[("x-forwarded-host", "a.test")])
        .cache_status_entry()
        .matches("hit"));

    // A bypassed path is never shared: the origin gets them as sent (the edge's own
    // X-Forwarded-Host/Proto replace the client's).
    let r = edge.get("/api/x", &[("x-http-method-override", "DELETE")]);
    assert!(
        r.text().contains("x-http-method-override=DELETE"),
        "{}",
        r.text()
    );
}

/// Web cache deception: `/account/x.css` looks like a static file, but the origin says it is
/// private, and that wins over any rule.
#[test]
fn cache_deception_stores_nothing_the_origin_calls_private() {
    let origin = Origin::start(|r| {
        let cc = if r.path().contains("nostore") {
            "no-store"
        } else {
            "private, max-age=600"
        };
        Reply::ok(
            format!("account of {}", r.header("cookie").unwrap_or("nobody")),
            &[("cache-control", cc)],
        )
    });
    let edge = Edge::builder(origin.addr)
        .rules("- { match: { path_regex: '\\.(css|js)$' }, ttl: 365d }")
        .start();
    for path in ["/account/x.css", "/account;x.css", "/account/nostore/x.js"] {
        let alice = edge.get(path, &[("cookie", "alice")]);
        assert_eq!(alice.text(), "account of alice");
        let mallory = edge.get(path, &[]);
        assert_eq!(mallory.text(), "account of nobody", "{path}");
        assert!(!mallory.cache_status_entry().matches("hit"), "{path}");
        assert_eq!(origin.count(path), 2, "{path}");
    }
}

/// A 5xx is never stored, whatever it says; a 404 is stored for the negative TTL only.
#[test]
fn errors_are_never_stored_and_404_only_briefly() {
    let origin = Origin::start(|r| match r.path() {
        p if p.starts_with("/5") => Reply::status(
            p[1..4].parse().unwrap(),
            "broken",
            &[("cache-control", "public, max-age=86400")],
        ),
        "/gone-long" => Reply::status(404, "no", &[("cache-control", "max-age=86400")]),
        _ => Reply::status(404, "no", &[]),
    });
    let edge = Edge::builder(origin.addr).rules("- { match: { path_prefix: /never/ }, negative_ttl: 0s }\n- { match: { path_prefix: / }, negative_ttl: 1s }").start();
    for p in ["/500", "/502", "/503", "/504"] {
        for _ in 0..2 {
            let r = edge.get(p, &[]);
            assert_eq!(r.status.to_string(), p[1..]);
            assert!(!r.cache_status_entry().matches("hit"), "{p}");
        }
        assert_eq!(origin.count(p), 2, "{p} went to the origin every time");
    }

    for p in ["/missing", "/gone-long"] {
        let start = Instant::now();
        edge.get(p, &[]).assert_cache_status("stored");
        edge.get(p, &[]).assert_cache_status("hit");
        // Expires within the deadline, however long the origin asked for, and not before the
        // negative TTL.
        let deadline = start + Duration::from_secs(10);
        loop {
            let r = edge.get(p, &[]);
            if !r.cache_status_entry().matches("hit") {
                break;
            }
            assert!(Instant::now() < deadline, "{p} still a hit after 10s");
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(start.elapsed() >= Duration::from_millis(900), "{p}");
    }

    edge.get("/never/x", &[]);
    edge.get("/never/x", &[]).assert_cache_status("fwd=miss");
    assert_eq!(origin.count("/never/x"), 2);
}
