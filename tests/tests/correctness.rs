//! HTTP behaviours a standard cache conformance suite checks, against a real edge and origin:
//! hop-by-hop fields of responses (RFC 9110 §7.6.1, RFC 9111 §3.1).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed set-up is a failed test

use edge_tests::edge::Edge;
use edge_tests::origin::{Origin, Reply};

#[test]
fn hop_by_hop_response_fields_are_neither_forwarded_nor_stored() {
    let origin = Origin::start(|_| {
        Reply::ok(
            "body",
            &[
                ("cache-control", "max-age=600"),
                ("connection", "a, b"),
                ("a", "1"),
                ("b", "2"),
                ("c", "3"),
                ("keep-alive", "timeout=5"),
                ("proxy-connection", "keep-alive"),
                ("upgrade", "h2c"),
                ("te", "trailers"),
                ("trailer", "x-sum"),
                ("proxy-authenticate", "Basic realm=x"),
            ],
        )
    });
    let edge = Edge::builder(origin.addr).start();
    let miss = edge.get("/hop", &[]);
    miss.assert_cache_status("fwd=miss");
    let hit = edge.get("/hop", &[]);
    hit.assert_cache_status("hit");
    for r in [&miss, &hit] {
        for gone in [
            "a",
            "b",
            "keep-alive",
            "proxy-connection",
            "upgrade",
            "te",
            "trailer",
            "proxy-authenticate",
        ] {
            assert_eq!(r.header(gone), None, "{gone} forwarded: {:?}", r.headers);
        }
        assert_eq!(r.header("c"), Some("3"));
        assert_eq!(r.text(), "body");
    }
}

fn age_of(r: &edge_tests::client::Response) -> Option<u64> {
    r.header("age").map(|a| a.parse().unwrap())
}

#[test]
fn the_origins_age_is_forwarded_on_a_miss_a_hit_and_a_pass() {
    let origin = Origin::start(|r| match r.path() {
        "/private" => Reply::ok("p", &[("cache-control", "private"), ("age", "100")]),
        _ => Reply::ok("a", &[("cache-control", "max-age=10000"), ("age", "7200")]),
    });
    let edge = Edge::builder(origin.addr).start();
    let miss = edge.get("/aged", &[]);
    miss.assert_cache_status("fwd=miss");
    let hit = edge.get("/aged", &[]);
    hit.assert_cache_status("hit");
    for r in [&miss, &hit] {
        let age = age_of(r).expect("no Age");
        assert!((7200..7210).contains(&age), "Age {age}");
    }
    // Not stored, passed on: the origin's Age still counts.
    let pass = edge.get("/private", &[]);
    assert_eq!(age_of(&pass), Some(100));
}

#[test]
fn invalid_and_list_ages_are_read_as_rfc_9111_says() {
    let origin = Origin::start(|r| {
        let age = match r.path() {
            "/dot" => "1.5",
            "/neg" => "-1",
            "/abc" => "abc",
            _ => "10, 20",
        };
        Reply::ok("x", &[("cache-control", "max-age=600"), ("age", age)])
    });
    let edge = Edge::builder(origin.addr).start();
    for path in ["/dot", "/neg", "/abc"] {
        // Ignored: the response is as fresh as the origin says, and no Age reaches the client.
        assert_eq!(age_of(&edge.get(path, &[])), None, "{path}");
        let hit = edge.get(path, &[]);
        hit.assert_cache_status("hit");
        assert!(age_of(&hit).unwrap() < 5, "{path}");
    }
    let list = edge.get("/list", &[]);
    assert_eq!(age_of(&list), Some(10));
}

#[test]
fn ages_too_large_to_represent_make_a_stale_object_never_a_storage_error() {
    let origin = Origin::start(|r| {
        let age = match r.path() {
            "/u32" => "4294967295",
            _ => "99999999999999999999999",
        };
        Reply::ok("x", &[("cache-control", "max-age=999999999"), ("age", age)])
    });
    let edge = Edge::builder(origin.addr).start();
    for path in ["/u32", "/huge"] {
        let first = edge.get(path, &[]);
        assert_eq!(first.status, 200);
        assert!(
            !first.cache_status_entry().matches("detail=StorageError"),
            "{}",
            first.cache_status()
        );
        // Stale on arrival: the next request goes to the origin again, never a fresh hit.
        let second = edge.get(path, &[]);
        assert!(
            !second.cache_status_entry().matches("hit"),
            "{}",
            second.cache_status()
        );
        assert!(!second.cache_status_entry().matches("detail=StorageError"));
        assert_eq!(origin.count(path), 2, "{path}");
    }
}

#[test]
fn only_if_cached_answers_from_the_cache_or_504_without_asking_the_origin() {
    let origin = Origin::start(|_| Reply::ok("x", &[("cache-control", "max-age=600")]));
    let edge = Edge::builder(origin.addr).start();
    let only = [("cache-control", "only-if-cached")];
    let miss = edge.get("/oic", &only);
    assert_eq!(miss.status, 504);
    miss.assert_cache_status("detail=only-if-cached");
    assert_eq!(origin.count("/oic"), 0);
    edge.get("/oic", &[]);
    let hit = edge.get("/oic", &only);
    assert_eq!(hit.status, 200);
    hit.assert_cache_status("hit");
    assert_eq!(origin.count("/oic"), 1);
}

#[test]
fn a_stale_must_revalidate_response_with_the_origin_down_is_a_504() {
    let mut origin = Origin::start(|_| {
        Reply::ok(
            "x",
            &[
                ("cache-control", "max-age=1, must-revalidate"),
                ("etag", "\"v1\""),
            ],
        )
    });
    let edge = Edge::builder(origin.addr).start();
    edge.get("/mr", &[]).assert_cache_status("fwd=miss");
    origin.stop();
    edge_tests::eventually(
        std::time::Duration::from_secs(5),
        "the copy to go stale",
        || {
            let r = edge.get("/mr", &[]);
            (r.status != 200).then_some(r)
        },
    );
    let r = edge.get("/mr", &[]);
    assert_eq!(r.status, 504, "{} {}", r.cache_status(), r.text());
}

fn method(edge: &Edge, m: &str, host: &str, path: &str) -> edge_tests::client::Response {
    edge_tests::client::request(edge.addr, m, host, path, &[], b"")
}

fn count_method(origin: &Origin, m: &str, path: &str) -> usize {
    origin
        .requests()
        .iter()
        .filter(|r| r.method == m && r.path() == path)
        .count()
}

#[test]
fn methods_of_unknown_safety_invalidate_and_so_do_location_and_content_location() {
    let origin = Origin::start(|r| match (r.method.as_str(), r.path()) {
        ("GET", _) => Reply::ok("stored", &[("cache-control", "max-age=600")]),
        ("POST", "/form") => Reply::status(
            303,
            "",
            &[
                ("location", "/moved"),
                ("content-location", "http://example.com/described"),
            ],
        ),
        ("POST", "/elsewhere") => {
            Reply::status(303, "", &[("location", "http://other.example/theirs")])
        }
        (_, "/broken") => Reply::status(500, "", &[]),
        _ => Reply::ok("done", &[]),
    });
    let edge = Edge::builder(origin.addr).start();
    let hit_after = |host: &str, path: &str| {
        edge_tests::client::get(edge.addr, host, path, &[]);
        edge_tests::client::get(edge.addr, host, path, &[])
            .cache_status_entry()
            .matches("hit")
    };
    for m in [
        "M-SEARCH",
        "PROPPATCH",
        "MKCOL",
        "MOVE",
        "LOCK",
        "PURGE",
        "BAN",
    ] {
        assert!(hit_after("example.com", "/thing"));
        assert_eq!(method(&edge, m, "example.com", "/thing").status, 200, "{m}");
        edge.get("/thing", &[]).assert_cache_status("fwd=miss");
    }
    // Safe methods, and unsafe ones that failed, leave the stored response alone.
    assert!(hit_after("example.com", "/thing"));
    method(&edge, "OPTIONS", "example.com", "/thing");
    assert!(hit_after("example.com", "/broken"));
    assert_eq!(
        method(&edge, "M-SEARCH", "example.com", "/broken").status,
        500
    );
    edge.get("/thing", &[]).assert_cache_status("hit");
    edge.get("/broken", &[]).assert_cache_status("hit");

    // Location and Content-Location on this origin; never another origin's URL.
    assert!(hit_after("example.com", "/moved"));
    assert!(hit_after("example.com", "/described"));
    assert!(hit_after("other.example", "/theirs"));
    assert_eq!(method(&edge, "POST", "example.com", "/form").status, 303);
    assert_eq!(
        method(&edge, "POST", "example.com", "/elsewhere").status,
        303
    );
    edge.get("/moved", &[]).assert_cache_status("fwd=miss");
    edge.get("/described", &[]).assert_cache_status("fwd=miss");
    assert!(
        edge_tests::client::get(edge.addr, "other.example", "/theirs", &[])
            .cache_status_entry()
            .matches("hit")
    );
}

#[test]
fn an_invalidation_wins_over_a_fill_that_began_before_it() {
    let origin = Origin::start(|r| match r.method.as_str() {
        "GET" => {
            // 12 writes of 16 KiB, 250 ms apart: a fill of about 3 s.
            let mut reply = Reply::ok(vec![b'a'; 12 * 16384], &[("cache-control", "max-age=600")]);
            reply.drip = std::time::Duration::from_millis(250);
            reply
        }
        _ => Reply::ok("changed", &[]),
    });
    let edge = Edge::builder(origin.addr).start();
    let slow = {
        let addr = edge.addr;
        std::thread::spawn(move || edge_tests::client::get(addr, "example.com", "/race", &[]))
    };
    edge_tests::eventually(
        std::time::Duration::from_secs(5),
        "the fill to start",
        || (count_method(&origin, "GET", "/race") == 1).then_some(()),
    );
    assert_eq!(method(&edge, "POST", "example.com", "/race").status, 200);
    let first = slow.join().unwrap();
    assert_eq!(
        first.body.len(),
        12 * 16384,
        "the fill's own client gets it whole"
    );
    // Not stored: the next request goes to the origin.
    let after = edge.get("/race", &[]);
    after.assert_cache_status("fwd=miss");
    assert_eq!(count_method(&origin, "GET", "/race"), 2);
}

#[test]
fn a_304_updates_the_stored_fields_but_not_the_ones_of_the_body_nor_its_cookies() {
    let origin = Origin::start(|r| {
        if r.header("if-none-match").is_some() {
            Reply::status(
                304,
                "",
                &[
                    ("etag", "\"b\""),
                    ("content-md5", "bmV3"),
                    ("x-rev", "2"),
                    ("cache-control", "max-age=600"),
                    ("set-cookie", "session=for-this-client"),
                ],
            )
        } else {
            Reply::ok(
                "body",
                &[
                    ("etag", "\"a\""),
                    ("content-md5", "b2xk"),
                    ("x-rev", "1"),
                    ("cache-control", "max-age=1"),
                ],
            )
        }
    });
    let edge = Edge::builder(origin.addr).start();
    edge.get("/rv", &[]).assert_cache_status("fwd=miss");
    let revalidated =
        edge_tests::eventually(std::time::Duration::from_secs(5), "a revalidation", || {
            let r = edge.get("/rv", &[]);
            r.cache_status_entry()
                .matches("fwd-status=304")
                .then_some(r)
        });
    assert_eq!(revalidated.header("x-rev"), Some("2"));
    assert_eq!(revalidated.header("etag"), Some("\"a\""));
    assert_eq!(revalidated.header("content-md5"), Some("b2xk"));
    assert_eq!(
        revalidated.header("set-cookie"),
        Some("session=for-this-client")
    );
    assert_eq!(revalidated.text(), "body");
    // The next client gets the updated copy, without the first one's cookie.
    let hit = edge.get("/rv", &[]);
    hit.assert_cache_status("hit");
    assert_eq!(hit.header("x-rev"), Some("2"));
    assert_eq!(hit.header("etag"), Some("\"a\""));
    assert_eq!(hit.header("set-cookie"), None);
}

#[test]
fn a_stale_copy_stands_in_when_the_origin_cannot_be_reached_within_the_window() {
    let fresh_for_a_second =
        |_: &edge_tests::origin::Req| Reply::ok("stored", &[("cache-control", "max-age=1")]);
    let stale_after = |edge: &Edge, path: &str| {
        edge_tests::eventually(
            std::time::Duration::from_secs(5),
            "the copy to go stale",
            || {
                std::thread::sleep(std::time::Duration::from_millis(200));
                let r = edge.get(path, &[]);
                (!r.cache_status_entry().matches("hit")).then_some(r)
            },
        )
    };
    // The node's default (a day): served stale, and said so.
    let mut origin = Origin::start(fresh_for_a_second);
    let edge = Edge::builder(origin.addr).start();
    edge.get("/down", &[]);
    origin.stop();
    let r = stale_after(&edge, "/down");
    assert_eq!(r.status, 200, "{}", r.cache_status());
    assert_eq!(r.text(), "stored");
    r.assert_cache_status("fwd=stale");
    r.assert_cache_status("detail=origin-unreachable");
    assert!(
        edge.metric("edge_stale_unreachable_total") >= 1.0,
        "{}",
        edge.metrics()
            .lines()
            .filter(|l| l.contains("stale"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // Turned off: the error.
    let mut origin = Origin::start(fresh_for_a_second);
    let cache = "{ memory: { max_size: 64MiB }, stale_if_unreachable: 0s }";
    let edge = Edge::builder(origin.addr).cache(cache).start();
    edge.get("/down", &[]);
    origin.stop();
    let r = stale_after(&edge, "/down");
    assert!(r.status >= 500, "{} {}", r.status, r.cache_status());

    // An origin that answers 503 is reachable: only stale-if-error would allow the copy.
    let origin = Origin::start(|r| {
        if r.header("x-fail").is_some() || r.method == "GET" && r.path() == "/later" {
            Reply::status(503, "down", &[])
        } else {
            Reply::ok("stored", &[("cache-control", "max-age=1")])
        }
    });
    let edge = Edge::builder(origin.addr).start();
    edge.get("/answers", &[]);
    let r = edge_tests::eventually(std::time::Duration::from_secs(5), "a revalidation", || {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let r = edge.get("/answers", &[("x-fail", "1")]);
        (!r.cache_status_entry().matches("hit")).then_some(r)
    });
    assert_eq!(r.status, 503, "{}", r.cache_status());
}

#[test]
fn a_vary_that_a_304_adds_keeps_one_users_copy_from_another() {
    let origin = Origin::start(|r| {
        let lang = r.header("accept-language").unwrap_or("none").to_string();
        if r.header("if-none-match").is_some() {
            Reply::status(
                304,
                "",
                &[
                    ("vary", "Accept-Language"),
                    ("cache-control", "max-age=600"),
                ],
            )
        } else {
            Reply::ok(
                format!("for {lang}"),
                &[("etag", "\"v\""), ("cache-control", "max-age=1")],
            )
        }
    });
    let edge = Edge::builder(origin.addr).start();
    let en = [("accept-language", "en")];
    let fr = [("accept-language", "fr")];
    assert_eq!(edge.get("/lang", &en).text(), "for en");
    let revalidated =
        edge_tests::eventually(std::time::Duration::from_secs(5), "a revalidation", || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            let r = edge.get("/lang", &en);
            r.cache_status_entry()
                .matches("fwd-status=304")
                .then_some(r)
        });
    assert_eq!(revalidated.text(), "for en");
    // The French client must not get the English copy the origin now says varies.
    assert_eq!(edge.get("/lang", &fr).text(), "for fr");
}

#[test]
fn vary_matches_requests_that_spell_a_list_differently() {
    let origin = Origin::start(|r| {
        Reply::ok(
            format!("for {}", r.header("accept-language").unwrap_or("")),
            &[
                ("cache-control", "max-age=600"),
                ("vary", "Accept-Language"),
            ],
        )
    });
    let edge = Edge::builder(origin.addr).start();
    edge.get("/v", &[("accept-language", "en-US, fr;q=0.5")])
        .assert_cache_status("fwd=miss");
    let same = edge.get("/v", &[("accept-language", "fr; q=0.5,EN-us")]);
    same.assert_cache_status("hit");
    let other = edge.get("/v", &[("accept-language", "de")]);
    other.assert_cache_status("fwd=miss");
    assert_eq!(other.text(), "for de");
}

#[test]
fn a_rule_may_store_a_fresh_5xx_and_by_default_none_is_stored() {
    let origin = Origin::start(|_| Reply::status(503, "busy", &[("cache-control", "max-age=60")]));
    let edge = Edge::builder(origin.addr)
        .rules("- { match: { path_prefix: /errors/ }, cache_errors: true }")
        .start();
    for path in ["/errors/a", "/other"] {
        assert_eq!(edge.get(path, &[]).status, 503);
        edge.get(path, &[]);
    }
    assert_eq!(origin.count("/errors/a"), 1, "stored for its max-age");
    assert_eq!(origin.count("/other"), 2, "no 5xx stored without the rule");
}

/// An origin that closes a keep-alive connection 300 ms after its last answer, as many
/// application servers do; answers `If-None-Match` with a 304.
fn closing_origin() -> std::net::SocketAddr {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            std::thread::spawn(move || {
                conn.set_read_timeout(Some(std::time::Duration::from_millis(300)))
                    .unwrap();
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut out = conn;
                loop {
                    let mut conditional = false;
                    let mut line = String::new();
                    match reader.read_line(&mut line) {
                        Ok(n) if n > 0 => {}
                        _ => return,
                    }
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).is_err() {
                            return;
                        }
                        if h.to_ascii_lowercase().starts_with("if-none-match") {
                            conditional = true;
                        }
                        if h.trim().is_empty() {
                            break;
                        }
                    }
                    let reply: &[u8] = if conditional {
                        b"HTTP/1.1 304 Not Modified\r\nETag: \"v\"\r\nCache-Control: max-age=1, must-revalidate\r\n\r\n"
                    } else {
                        b"HTTP/1.1 200 OK\r\nETag: \"v\"\r\nCache-Control: max-age=1, must-revalidate\r\nContent-Length: 4\r\n\r\nbody"
                    };
                    if out.write_all(reply).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn a_request_read_after_a_pause_is_always_answered() {
    use std::io::Write;
    let edge = Edge::builder(closing_origin()).start();
    for round in 0..3 {
        let mut conn = std::net::TcpStream::connect(edge.addr).unwrap();
        conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let path = format!("/paused{round}");
        conn.write_all(format!("GET {path} HTTP/1.1\r\nHost: example.com\r\n\r\n").as_bytes())
            .unwrap();
        assert_eq!(edge_tests::client::read_one(&mut conn).unwrap().status, 200);
        conn.write_all(format!("GET {path} HTTP/1.1\r\nHost: example.com\r\n\r\n").as_bytes())
            .unwrap();
        assert_eq!(edge_tests::client::read_one(&mut conn).unwrap().status, 200);
        // The origin has closed its side of the pooled connection meanwhile, and the copy is
        // stale and must be revalidated.
        std::thread::sleep(std::time::Duration::from_millis(1500 + 300 * round));
        conn.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: example.com\r\nIf-None-Match: \"v\"\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
        let r = edge_tests::client::read_one(&mut conn)
            .unwrap_or_else(|e| panic!("round {round}: no answer: {e}"));
        assert!(matches!(r.status, 200 | 304), "round {round}: {}", r.status);
    }
}

#[test]
fn an_origin_that_dies_before_its_body_leaves_the_stale_copy_in_place() {
    let fail = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let f = fail.clone();
    let origin = Origin::start(move |_| {
        let mut r = Reply::ok(
            vec![b'x'; 100_000],
            &[("cache-control", "max-age=1, stale-if-error=60")],
        );
        if f.load(std::sync::atomic::Ordering::SeqCst) {
            // The header, then the connection closes before any of the body.
            r.truncate_after = Some(0);
        }
        r
    });
    let edge = Edge::builder(origin.addr).start();
    assert_eq!(edge.get("/dies", &[]).body.len(), 100_000);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    fail.store(true, std::sync::atomic::Ordering::SeqCst);
    for _ in 0..5 {
        let r = edge.get("/dies", &[]);
        let cs = r.cache_status();
        // Never an error while the stored copy may stand in. When the origin's header reached
        // the client before its connection broke, the response can only be cut short, and is.
        assert_eq!(r.status, 200, "{cs}");
        if r.complete {
            assert_eq!(r.body.len(), 100_000, "{cs}");
            r.assert_cache_status("fwd=stale");
            r.assert_cache_status("detail=stale-if-error");
        }
    }
}
