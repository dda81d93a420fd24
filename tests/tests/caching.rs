//! Storing, hits, and what must never be stored.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed set-up is a failed test

use edge_tests::{client, eventually};
use std::time::Duration;

use edge_tests::edge::{DiskCache, Edge, Scratch};
use edge_tests::origin::{Origin, Reply};

fn cc(v: &'static str) -> impl Fn(&edge_tests::origin::Req) -> Reply {
    move |r| Reply::ok(format!("body of {}", r.target), &[("cache-control", v)])
}

#[test]
fn hit_after_miss_reaches_the_origin_once() {
    let origin = Origin::start(cc("public, max-age=60"));
    let edge = Edge::builder(origin.addr).start();
    let a = edge.get("/a.css", &[]);
    assert_eq!(a.status, 200);
    assert_eq!(a.cache_status(), "edge-test; fwd=miss; stored");
    let b = edge.get("/a.css", &[]);
    assert_eq!(b.status, 200);
    assert!(
        b.cache_status().starts_with("edge-test; hit"),
        "{}",
        b.cache_status()
    );
    assert!(
        b.cache_status_entry().matches("detail=memory"),
        "{}",
        b.cache_status()
    );
    assert_eq!(b.body, a.body);
    assert!(b.header("age").is_some(), "a hit carries Age");
    assert_eq!(origin.count("/a.css"), 1);
}

#[test]
fn age_counts_the_origins_age() {
    let origin =
        Origin::start(|_| Reply::ok("x", &[("cache-control", "max-age=1000"), ("age", "100")]));
    let edge = Edge::builder(origin.addr).start();
    edge.get("/aged", &[]);
    let hit = edge.get("/aged", &[]);
    let age: u64 = hit.header("age").unwrap().parse().unwrap();
    assert!(
        (100..110).contains(&age),
        "Age {age} should include the origin's 100"
    );
    let ttl: i64 = hit
        .cache_status()
        .split("ttl=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(ttl <= 900, "freshness left is max-age less Age: {ttl}");
}

#[test]
fn never_stored() {
    let origin = Origin::start(|r| {
        let h: &[(&str, &str)] = match r.path() {
            "/private" => &[("cache-control", "private, max-age=60")],
            "/no-store" => &[("cache-control", "no-store, max-age=60")],
            "/cookie" => &[
                ("cache-control", "public, max-age=60"),
                ("set-cookie", "session=abc"),
            ],
            "/vary-star" => &[("cache-control", "max-age=60"), ("vary", "*")],
            "/error" => return Reply::status(500, "boom", &[("cache-control", "max-age=60")]),
            _ => &[],
        };
        Reply::ok(format!("for {}", r.path()), h)
    });
    let edge = Edge::builder(origin.addr).start();
    for (path, reason) in [
        ("/private", "private"),
        ("/no-store", "no-store"),
        ("/cookie", "set-cookie"),
        ("/vary-star", "vary-star"),
        ("/error", "status"),
        ("/no-freshness", "no-freshness"),
    ] {
        // The first answer names the reason (later ones may say the predictor skipped the cache).
        let first = edge.get(path, &[]);
        assert_eq!(
            first.cache_status(),
            format!("edge-test; fwd=miss; detail={reason}"),
            "{path}"
        );
        for _ in 0..2 {
            let r = edge.get(path, &[]);
            assert!(
                !r.cache_status_entry().matches("hit"),
                "{path}: {}",
                r.cache_status()
            );
            assert!(
                !r.cache_status_entry().matches("stored"),
                "{path}: {}",
                r.cache_status()
            );
        }
        assert_eq!(
            origin.count(path),
            3,
            "{path} must reach the origin every time"
        );
    }
}

#[test]
fn set_cookie_is_stored_only_when_a_rule_allows_it() {
    let origin = Origin::start(|_| {
        Reply::ok(
            "c",
            &[
                ("cache-control", "max-age=60"),
                ("set-cookie", "theme=dark"),
            ],
        )
    });
    let edge = Edge::builder(origin.addr)
        .rules("- { match: { path_prefix: /shared/ }, allow_set_cookie: true }")
        .start();
    edge.get("/shared/x", &[]);
    let hit = edge.get("/shared/x", &[]);
    assert!(hit.cache_status_entry().matches("hit"));
    assert_eq!(hit.header("set-cookie"), Some("theme=dark"));
    edge.get("/other", &[]);
    edge.get("/other", &[]);
    assert_eq!(origin.count("/shared/x"), 1);
    assert_eq!(origin.count("/other"), 2);
}

#[test]
fn authorization_bearing_requests() {
    let origin = Origin::start(|r| match r.path() {
        "/public" => Reply::ok("p", &[("cache-control", "public, max-age=60")]),
        "/s-maxage" => Reply::ok("s", &[("cache-control", "s-maxage=60")]),
        _ => Reply::ok(
            format!("for {:?}", r.header("authorization")),
            &[("cache-control", "max-age=60")],
        ),
    });
    let edge = Edge::builder(origin.addr).start();
    let alice = edge.get("/me", &[("authorization", "Bearer alice")]);
    let bob = edge.get("/me", &[("authorization", "Bearer bob")]);
    assert_ne!(
        alice.body, bob.body,
        "one user's answer must never reach another"
    );
    assert_eq!(origin.count("/me"), 2);
    for path in ["/public", "/s-maxage"] {
        edge.get(path, &[("authorization", "Bearer alice")]);
        let r = edge.get(path, &[("authorization", "Bearer bob")]);
        assert!(
            r.cache_status_entry().matches("hit"),
            "{path}: {}",
            r.cache_status()
        );
        assert_eq!(origin.count(path), 1);
    }
}

#[test]
fn rules_bypass_ttl_and_default_ttl() {
    let origin = Origin::start(|r| match r.path() {
        "/forced/a" => Reply::ok("a", &[("cache-control", "max-age=0")]),
        _ => Reply::ok("b", &[]),
    });
    let rules = "- { match: { path_prefix: /api/ }, cache: false }\n\
                 - { match: { path_prefix: /forced/ }, ttl: 1h }\n\
                 - { match: { path_glob: '/static/**' }, default_ttl: 10m }";
    let edge = Edge::builder(origin.addr).rules(rules).start();
    for _ in 0..2 {
        let r = edge.get("/api/x", &[]);
        assert_eq!(r.cache_status(), "edge-test; fwd=bypass");
    }
    assert_eq!(origin.count("/api/x"), 2);
    edge.get("/forced/a", &[]);
    let r = edge.get("/forced/a", &[]);
    assert!(
        r.cache_status_entry().matches("hit"),
        "ttl overrides max-age=0: {}",
        r.cache_status()
    );
    edge.get("/static/deep/file.txt", &[]);
    let r = edge.get("/static/deep/file.txt", &[]);
    assert!(
        r.cache_status_entry().matches("hit"),
        "default_ttl applies: {}",
        r.cache_status()
    );
    // No rule, no freshness from the origin: not stored.
    edge.get("/plain", &[]);
    edge.get("/plain", &[]);
    assert_eq!(origin.count("/plain"), 2);
}

#[test]
fn cache_key_query_modes() {
    let origin = Origin::start(|r| Reply::ok(r.target.clone(), &[("cache-control", "max-age=60")]));
    let rules = "- { match: { path_prefix: /ignore/ }, cache_key: { query: ignore } }\n\
                 - { match: { path_prefix: /keep/ }, cache_key: { query: [v] } }";
    let edge = Edge::builder(origin.addr).rules(rules).start();
    edge.get("/ignore/x?a=1", &[]);
    assert!(edge
        .get("/ignore/x?a=2", &[])
        .cache_status_entry()
        .matches("hit"));
    edge.get("/keep/x?v=1&utm=a", &[]);
    assert!(edge
        .get("/keep/x?utm=b&v=1", &[])
        .cache_status_entry()
        .matches("hit"));
    assert!(!edge
        .get("/keep/x?v=2", &[])
        .cache_status_entry()
        .matches("hit"));
    edge.get("/all?a=1&b=2", &[]);
    assert!(
        edge.get("/all?b=2&a=1", &[])
            .cache_status_entry()
            .matches("hit"),
        "order does not split the cache"
    );
    assert!(!edge
        .get("/all?a=1&b=3", &[])
        .cache_status_entry()
        .matches("hit"));
}

#[test]
fn keyed_request_headers_split_the_cache() {
    // The origin changes the body on X-Device without saying Vary: only keying the header keeps
    // one device's page from being served to another (cache poisoning through an unkeyed header).
    let origin = Origin::start(|r| {
        Reply::ok(
            format!("page for {}", r.header("x-device").unwrap_or("unknown")),
            &[("cache-control", "max-age=60")],
        )
    });
    let edge = Edge::builder(origin.addr)
        .rules("- { match: { path_prefix: / }, cache_key: { headers: [X-Device] } }")
        .start();
    assert_eq!(
        edge.get("/p", &[("x-device", "mobile")]).text(),
        "page for mobile"
    );
    assert_eq!(
        edge.get("/p", &[("x-device", "desktop")]).text(),
        "page for desktop"
    );
    assert_eq!(edge.get("/p", &[]).text(), "page for unknown");
    let again = edge.get("/p", &[("x-device", "mobile")]);
    assert_eq!(again.text(), "page for mobile");
    assert!(again.cache_status_entry().matches("hit"));
    assert_eq!(origin.count("/p"), 3);
}

#[test]
fn unknown_host_is_refused_and_never_proxied() {
    let origin = Origin::start(|_| Reply::ok("x", &[]));
    let sites = "  - hosts: [\"static.example.com\", \"*.cdn.example.com\"]\n    origin: origin\n";
    let edge = Edge::builder(origin.addr).sites(sites).start();
    let r = client::get(edge.addr, "evil.example.org", "/", &[]);
    assert_eq!(r.status, 404);
    assert!(r.text().contains("evil.example.org"), "{}", r.text());
    assert!(r.cache_status_entry().matches("fwd=bypass"));
    assert_eq!(
        client::get(edge.addr, "img.cdn.example.com", "/", &[]).status,
        200
    );
    assert_eq!(
        client::get(edge.addr, "STATIC.example.com:8080", "/", &[]).status,
        200
    );
    assert_eq!(
        origin.requests().len(),
        2,
        "only the known hosts reached the origin"
    );
}

#[test]
fn invalid_host_gets_400() {
    let origin = Origin::start(|_| Reply::ok("x", &[]));
    let edge = Edge::builder(origin.addr).start();
    for host in ["a b", "a/b", "x:notaport"] {
        let r = client::get(edge.addr, host, "/", &[]);
        assert_eq!(r.status, 400, "{host}");
    }
    let r = client::raw(
        edge.addr,
        b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
        false,
    )
    .unwrap();
    assert_eq!(r.status, 400, "missing Host");
    assert!(origin.requests().is_empty());
}

#[test]
fn vary_keeps_variants_apart() {
    let origin = Origin::start(|r| {
        let lang = r.header("accept-language").unwrap_or("none").to_string();
        Reply::ok(
            format!("hello in {lang}"),
            &[("cache-control", "max-age=60"), ("vary", "Accept-Language")],
        )
    });
    let edge = Edge::builder(origin.addr).start();
    let en = edge.get("/v", &[("accept-language", "en")]);
    let fr = edge.get("/v", &[("accept-language", "fr")]);
    let en2 = edge.get("/v", &[("accept-language", "en")]);
    let fr2 = edge.get("/v", &[("accept-language", "fr")]);
    assert_eq!(en.text(), "hello in en");
    assert_eq!(fr.text(), "hello in fr");
    assert_eq!(en2.text(), "hello in en");
    assert_eq!(fr2.text(), "hello in fr");
    assert!(en2.cache_status_entry().matches("hit") && fr2.cache_status_entry().matches("hit"));
    assert_eq!(origin.count("/v"), 2);
}

#[test]
fn head_is_served_from_a_stored_get() {
    let origin = Origin::start(|_| Reply::ok(vec![b'z'; 1000], &[("cache-control", "max-age=60")]));
    let edge = Edge::builder(origin.addr).start();
    let head = client::request(edge.addr, "HEAD", "example.com", "/h", &[], b"");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(
        origin.requests()[0].method,
        "GET",
        "a HEAD miss fetches the full GET"
    );
    let get = edge.get("/h", &[]);
    assert!(
        get.cache_status_entry().matches("hit"),
        "{}",
        get.cache_status()
    );
    assert_eq!(get.body.len(), 1000);
    let head2 = client::request(edge.addr, "HEAD", "example.com", "/h", &[], b"");
    assert!(head2.cache_status_entry().matches("hit"));
    assert_eq!(head2.header("content-length"), Some("1000"));
    assert_eq!(origin.count("/h"), 1);
}

#[test]
fn unsafe_methods_pass_through_and_invalidate() {
    let origin = Origin::start(|r| {
        Reply::ok(
            format!(
                "{} {} {}",
                r.method,
                r.target,
                String::from_utf8_lossy(&r.body)
            ),
            &[("cache-control", "max-age=60")],
        )
    });
    let edge = Edge::builder(origin.addr).start();
    edge.get("/doc", &[]);
    assert!(edge.get("/doc", &[]).cache_status_entry().matches("hit"));
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        let r = client::request(edge.addr, method, "example.com", "/doc", &[], b"payload");
        assert_eq!(r.text(), format!("{method} /doc payload"));
        assert_eq!(r.cache_status(), "edge-test; fwd=method");
        let after = edge.get("/doc", &[]);
        assert!(
            after.cache_status_entry().matches("fwd=miss"),
            "{method} invalidates: {}",
            after.cache_status()
        );
    }
    let gets = origin
        .requests()
        .iter()
        .filter(|r| r.method == "GET")
        .count();
    assert_eq!(gets, 5);
    let other = client::request(edge.addr, "OPTIONS", "example.com", "/doc", &[], b"");
    assert_eq!(other.text(), "OPTIONS /doc ");
}

#[test]
fn targeted_cache_control_wins_and_is_stripped() {
    let origin = Origin::start(|r| match r.path() {
        "/cdn" => Reply::ok(
            "c",
            &[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=60"),
            ],
        ),
        "/surrogate" => Reply::ok(
            "s",
            &[
                ("cache-control", "private"),
                ("surrogate-control", "max-age=60"),
            ],
        ),
        _ => Reply::ok(
            "n",
            &[
                ("cache-control", "max-age=60"),
                ("cdn-cache-control", "no-store"),
            ],
        ),
    });
    let edge = Edge::builder(origin.addr).start();
    for path in ["/cdn", "/surrogate", "/no"] {
        let first = edge.get(path, &[]);
        let second = edge.get(path, &[]);
        for r in [&first, &second] {
            assert!(
                r.header("cdn-cache-control").is_none() && r.header("surrogate-control").is_none(),
                "{path}"
            );
        }
        assert!(
            second.header("cache-control").is_some(),
            "the client's Cache-Control stays"
        );
    }
    assert_eq!(origin.count("/cdn"), 1);
    assert_eq!(origin.count("/surrogate"), 1);
    assert_eq!(origin.count("/no"), 2);
}

#[test]
fn expires_counts_from_date_not_our_clock() {
    // The origin's clock is an hour behind; Expires is 60 s after its Date: fresh for 60 s.
    let origin = Origin::start(|_| {
        let date = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        let expires = date + std::time::Duration::from_secs(60);
        Reply::ok(
            "e",
            &[("date", &httpdate(date)), ("expires", &httpdate(expires))],
        )
    });
    let edge = Edge::builder(origin.addr).start();
    edge.get("/e", &[]);
    assert!(edge.get("/e", &[]).cache_status_entry().matches("hit"));
    assert_eq!(origin.count("/e"), 1);
}

fn httpdate(t: std::time::SystemTime) -> String {
    // RFC 9110 IMF-fixdate without a date crate.
    let secs = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let days = secs / 86_400;
    let (h, m, s) = ((secs % 86_400) / 3600, (secs % 3600) / 60, secs % 60);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(mo - 1) as usize];
    format!("{weekday}, {d:02} {month} {y} {h:02}:{m:02}:{s:02} GMT")
}

#[test]
fn metrics_count_hits_misses_and_the_memory_tier() {
    let origin = Origin::start(cc("max-age=60"));
    let edge = Edge::builder(origin.addr).start();
    // Every outcome's series is there from the start, at 0, so rates over them are defined.
    let before = edge.metrics();
    for status in [
        "hit",
        "stale",
        "revalidated",
        "expired",
        "miss",
        "bypass",
        "pass",
        "error",
    ] {
        let series = format!("edge_cache_requests_total{{outcome=\"{status}\",site=\"*\"}} 0");
        assert!(before.contains(&series), "no {series} at start");
    }
    for series in [
        "edge_config_reloads_total{result=\"ok\"} 0",
        "edge_config_reloads_total{result=\"error\"} 0",
        "edge_purge_requests_total{result=\"applied\"} 0",
        "edge_purge_swept_objects_total{action=\"expired\"} 0",
        "edge_origin_requests_total{result=\"5xx\",site=\"*\"} 0",
        "edge_refusals_total{reason=\"denied\"} 0",
    ] {
        assert!(before.contains(series), "no {series} at start");
    }
    edge.get("/m", &[]);
    edge.get("/m", &[]);
    edge.get("/m", &[]);
    assert_eq!(
        edge.metric("edge_cache_requests_total{outcome=\"miss\"}"),
        1.0
    );
    assert_eq!(
        edge.metric("edge_cache_requests_total{outcome=\"hit\"}"),
        2.0
    );
    assert_eq!(edge.metric("edge_cache_tier_objects{tier=\"memory\"}"), 1.0);
    assert!(edge.metric("edge_cache_tier_bytes{tier=\"memory\"}") > 0.0);
    assert_eq!(
        edge.metric("edge_origin_requests_total{result=\"2xx\"}"),
        1.0
    );
    assert!(edge
        .metrics()
        .contains("edge_origin_duration_seconds_bucket"));
    assert!(edge
        .metrics()
        .contains("edge_response_bytes_total{outcome=\"hit\",site=\"*\"}"));
}

#[test]
fn objects_over_max_object_size_are_proxied_not_stored() {
    // The harness sets cache.memory.max_object_size to 4MiB.
    let origin = Origin::start(|r| {
        let size = if r.path() == "/big" { 5 << 20 } else { 3 << 20 };
        Reply::ok(vec![b'b'; size], &[("cache-control", "max-age=60")])
    });
    let edge = Edge::builder(origin.addr).start();
    for _ in 0..2 {
        let r = edge.get("/big", &[]);
        assert!(r.complete && r.body.len() == 5 << 20);
        assert!(
            r.cache_status_entry().matches("detail=too-large"),
            "{}",
            r.cache_status()
        );
    }
    assert_eq!(origin.count("/big"), 2);
    edge.get("/fits", &[]);
    let r = edge.get("/fits", &[]);
    assert!(r.cache_status_entry().matches("hit") && r.body.len() == 3 << 20);
    assert_eq!(origin.count("/fits"), 1);
}

#[test]
fn cache_tags_are_kept_from_clients() {
    let origin = Origin::start(|_| {
        Reply::ok(
            "tagged",
            &[
                ("cache-control", "max-age=60"),
                ("surrogate-key", "product-1 category-4"),
                ("cache-tag", "product-1,home"),
            ],
        )
    });
    let edge = Edge::builder(origin.addr)
        .rules("- match: { path_prefix: / }\n  tags: [from-rule]")
        .start();
    for expect in ["fwd=miss", "hit"] {
        let r = edge.get("/t", &[]);
        r.assert_cache_status(expect);
        assert_eq!(r.text(), "tagged");
        assert!(r.header("surrogate-key").is_none(), "{:?}", r.headers);
        assert!(r.header("cache-tag").is_none(), "{:?}", r.headers);
    }
}

/// A plain GET or HEAD of a fresh object read whole (from memory, or from disk when small enough)
/// is answered before Pingora's cache machinery (the fast path); a request with a validator or a
/// range takes the full path. Both must give the same response, for every variant of a `Vary`
/// object.
#[test]
fn fast_and_full_path_hits_answer_alike() {
    let (origin, edge) = vary_origin_and_edge("");
    fast_and_full_path_alike(&origin, &edge, "memory");
}

/// As above with the memory tier taking nothing: every variant is read from the disk tier, the
/// variant lookup included.
#[test]
fn fast_and_full_path_disk_hits_answer_alike() {
    let dir = Scratch::new("fast-disk");
    let cache = DiskCache::at(&dir.0)
        .memory_object("64B")
        .lock_timeout("10s")
        .yaml();
    let (origin, edge) = vary_origin_and_edge(&cache);
    fast_and_full_path_alike(&origin, &edge, "disk");
}

/// An origin whose `/page` varies on `Accept-Language`, and an edge with `cache` (or the default
/// cache if empty) in front of it.
fn vary_origin_and_edge(cache: &str) -> (Origin, Edge) {
    let origin = Origin::start(|r| {
        let lang = r.header("accept-language").unwrap_or("none").to_string();
        Reply::ok(
            format!("{} in {lang}", r.target),
            &[
                ("cache-control", "public, max-age=60"),
                ("vary", "Accept-Language"),
                ("etag", "\"v1\""),
                ("surrogate-key", "page"),
            ],
        )
    });
    let edge = if cache.is_empty() {
        Edge::builder(origin.addr).start()
    } else {
        Edge::builder(origin.addr).cache(cache).start()
    };
    (origin, edge)
}

fn fast_and_full_path_alike(origin: &Origin, edge: &Edge, tier: &str) {
    for lang in ["en", "fr", "de"] {
        let miss = edge.get("/page", &[("accept-language", lang)]);
        assert_eq!(miss.cache_status(), "edge-test; fwd=miss; stored");
    }
    // Not a validator the stored `ETag` matches: the full path answers 200 from the cache.
    let full_only = ("if-none-match", "\"other\"");
    if tier == "disk" {
        // The disk tier counts an object at its commit; the fill that stood in for it answers
        // the full path's lookups until just after that.
        for lang in ["en", "fr", "de"] {
            eventually(Duration::from_secs(20), &format!("{lang} on disk"), || {
                let r = edge.get("/page", &[("accept-language", lang), full_only]);
                r.cache_status_entry().matches("detail=disk").then_some(())
            });
        }
    }
    for lang in ["en", "fr", "de"] {
        let fast = edge.get("/page", &[("accept-language", lang)]);
        let full = edge.get("/page", &[("accept-language", lang), full_only]);
        for r in [&fast, &full] {
            assert_eq!(r.status, 200);
            assert_eq!(r.text(), format!("/page in {lang}"));
            r.assert_cache_status("hit");
            r.assert_cache_status(&format!("detail={tier}"));
            assert!(r.header("age").is_some(), "{:?}", r.headers);
            assert!(r.header("surrogate-key").is_none(), "tags stay inside");
            assert!(
                r.header("x-edge-stored-at").is_none(),
                "the stamp stays inside"
            );
        }
        let names = |r: &client::Response| {
            let mut n: Vec<String> = r.headers.iter().map(|(k, _)| k.clone()).collect();
            n.sort();
            n
        };
        assert_eq!(names(&fast), names(&full));
        for (k, v) in &fast.headers {
            if !matches!(k.as_str(), "age" | "cache-status" | "date") {
                assert_eq!(full.header(k), Some(v.as_str()), "{k}");
            }
        }
    }
    let head = client::request(
        edge.addr,
        "HEAD",
        "example.com",
        "/page",
        &[("accept-language", "fr")],
        b"",
    );
    assert_eq!(head.status, 200);
    head.assert_cache_status("hit");
    head.assert_cache_status(&format!("detail={tier}"));
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), Some("11"));
    // A variant never asked for is a miss, not another variant's body.
    let it = edge.get("/page", &[("accept-language", "it")]);
    assert_eq!(it.text(), "/page in it");
    assert_eq!(it.cache_status(), "edge-test; fwd=miss; stored");
    assert_eq!(origin.count("/page"), 4);
    // A validator that matches gets 304 from the full path.
    let not_modified = edge.get(
        "/page",
        &[("accept-language", "en"), ("if-none-match", "\"v1\"")],
    );
    assert_eq!(not_modified.status, 304);
}

/// A fast hit too big for Pingora's header buffer is sent with the socket corked, so its header
/// leaves with the body; the cork must come off after every such response, or the rest of a
/// keep-alive connection would wait on the kernel. On one connection: big, small, big, HEAD,
/// small, each answered whole and byte for byte before the next is asked. A cork left on holds
/// every small answer after it for the kernel's 200 ms, so the quickest of them tells.
#[test]
fn corked_fast_hits_leave_a_keep_alive_connection_answering_in_full() {
    const BIG: u64 = 300 * 1024;
    let origin = Origin::start(|r| {
        let cc = [("cache-control", "public, max-age=60")];
        match r.path() {
            "/big" => Reply::ok(edge_tests::origin::pattern(0..BIG), &cc),
            _ => Reply::ok("small", &cc),
        }
    });
    let edge = Edge::builder(origin.addr).start();
    for path in ["/big", "/small"] {
        edge.get(path, &[]).assert_cache_status("fwd=miss");
        edge.get(path, &[]).assert_cache_status("detail=memory");
    }
    let conn = std::net::TcpStream::connect(edge.addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut reader = std::io::BufReader::new(conn.try_clone().unwrap());
    let mut writer = conn;
    let mut small = Vec::new();
    for (method, path) in [
        ("GET", "/big"),
        ("GET", "/small"),
        ("GET", "/big"),
        ("HEAD", "/big"),
        ("GET", "/small"),
        ("GET", "/big"),
        ("GET", "/small"),
        ("GET", "/small"),
    ] {
        let asked = std::time::Instant::now();
        let ask = format!("{method} {path} HTTP/1.1\r\nHost: example.com\r\n\r\n");
        std::io::Write::write_all(&mut writer, ask.as_bytes()).unwrap();
        let mut head = String::new();
        loop {
            let mut line = String::new();
            let n = std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
            assert!(n > 0, "{method} {path}: connection closed after {head:?}");
            if line == "\r\n" {
                break;
            }
            head.push_str(&line.to_ascii_lowercase());
        }
        assert!(head.starts_with("http/1.1 200"), "{method} {path}: {head}");
        assert!(head.contains("detail=memory"), "{method} {path}: {head}");
        assert!(
            !head.contains("connection: close"),
            "{method} {path}: {head}"
        );
        let length: u64 = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no length for {method} {path}: {head}"));
        let expected = match path {
            "/big" => edge_tests::origin::pattern(0..BIG),
            _ => b"small".to_vec(),
        };
        assert_eq!(length, expected.len() as u64, "{method} {path}");
        if method == "HEAD" {
            continue;
        }
        let mut body = vec![0; expected.len()];
        std::io::Read::read_exact(&mut reader, &mut body).unwrap();
        assert!(body == expected, "{method} {path}: body differs");
        if path == "/small" {
            small.push(asked.elapsed());
        }
    }
    let quickest = small.iter().min().unwrap();
    assert!(
        *quickest < Duration::from_millis(150),
        "every small answer after a corked one took at least {quickest:?}: a cork stayed on"
    );
    assert_eq!(origin.count("/big"), 1);
}
