//! A rule's edge logic against the real binary: header rules on every kind of response,
//! redirects and access refusals answered at the edge, the origin path rewritten for the origin
//! alone.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed set-up is a failed test

use std::time::Duration;

use edge_tests::edge::{DiskCache, Edge, Scratch};
use edge_tests::eventually;
use edge_tests::origin::{Origin, Reply};

/// Every path cacheable for an hour, with a validator and a `Server` field to remove.
fn origin() -> Origin {
    Origin::start(|r| {
        Reply::ok(
            format!("body of {}", r.target),
            &[
                ("cache-control", "max-age=3600"),
                ("etag", "\"v1\""),
                ("server", "origin-server/1.0"),
            ],
        )
    })
}

const FONT_RULE: &str = "- match: { path_prefix: /fonts/ }\n  \
     response_headers: { set: { Access-Control-Allow-Origin: \"*\" }, add: { Timing-Allow-Origin: \"*\" }, remove: [Server] }";

fn assert_rule_headers(r: &edge_tests::client::Response, what: &str) {
    assert_eq!(r.header("access-control-allow-origin"), Some("*"), "{what}");
    assert_eq!(r.header("timing-allow-origin"), Some("*"), "{what}");
    assert_eq!(r.header("server"), None, "{what}");
}

#[test]
fn response_headers_reach_misses_hits_revalidations_and_errors() {
    let mut origin = origin();
    let edge = Edge::builder(origin.addr).rules(FONT_RULE).start();
    let miss = edge.get("/fonts/a.woff2", &[]);
    miss.assert_cache_status("fwd=miss; stored");
    assert_rule_headers(&miss, "miss");
    let hit = edge.get("/fonts/a.woff2", &[]);
    hit.assert_cache_status("hit; detail=memory");
    assert_rule_headers(&hit, "fast hit");
    let ranged = edge.get("/fonts/a.woff2", &[("range", "bytes=0-3")]);
    assert_eq!(ranged.status, 206);
    assert_rule_headers(&ranged, "hit through Pingora's path (a range)");
    let not_modified = edge.get("/fonts/a.woff2", &[("if-none-match", "\"v1\"")]);
    assert_eq!(not_modified.status, 304);
    assert_rule_headers(&not_modified, "304 to a conditional client");
    // Elsewhere the origin's own fields pass untouched.
    let other = edge.get("/css/a.css", &[]);
    assert_eq!(other.header("server"), Some("origin-server/1.0"));
    assert_eq!(other.header("access-control-allow-origin"), None);
    // An error the edge writes itself carries them too.
    origin.stop();
    let error = edge.get("/fonts/new.woff2", &[]);
    assert_eq!(error.status, 502, "{}", error.text());
    assert_rule_headers(&error, "the edge's 502");
}

#[test]
fn a_reload_changes_the_next_hits_headers_and_the_stored_copy_never_had_them() {
    let origin = origin();
    let spec = Edge::builder(origin.addr).rules(FONT_RULE);
    let edge = spec.clone().start();
    assert_rule_headers(&edge.get("/fonts/a.woff2", &[]), "miss");
    assert_rule_headers(&edge.get("/fonts/a.woff2", &[]), "hit before the reload");
    let without = spec
        .rules("- match: { path_prefix: /fonts/ }\n  response_headers: { set: { X-Other: yes } }")
        .yaml(edge.addr.port(), edge.admin.port());
    assert!(edge.reload(&without));
    let hit = edge.get("/fonts/a.woff2", &[]);
    hit.assert_cache_status("hit");
    assert_eq!(hit.header("x-other"), Some("yes"));
    assert_eq!(hit.header("access-control-allow-origin"), None);
    assert_eq!(
        hit.header("server"),
        Some("origin-server/1.0"),
        "removed from responses, kept in the stored copy"
    );
    assert_eq!(origin.count("/fonts/a.woff2"), 1);
}

#[test]
fn response_headers_reach_a_disk_hit_after_a_restart() {
    let origin = origin();
    let dir = Scratch::new("logic-disk");
    let mut edge = Edge::builder(origin.addr)
        .rules(FONT_RULE)
        .cache(DiskCache::at(&dir.0))
        .start();
    edge.get("/fonts/a.woff2", &[]);
    edge.wait_disk_objects(1, Duration::from_secs(20));
    edge.signal_and_wait("TERM");
    edge.restart();
    let hit = edge.get("/fonts/a.woff2", &[]);
    hit.assert_cache_status("hit; detail=disk");
    assert_rule_headers(&hit, "disk hit after a restart");
}

#[test]
fn request_headers_reach_the_origin() {
    let origin = origin();
    let edge = Edge::builder(origin.addr)
        .rules(
            "- match: { path_prefix: /api/ }\n  cache: false\n  \
             request_headers: { set: { X-From-Edge: \"1\" }, remove: [Cookie] }",
        )
        .start();
    let r = edge.get(
        "/api/me",
        &[("cookie", "session=secret"), ("x-from-edge", "0")],
    );
    assert_eq!(r.status, 200);
    let seen = origin.requests();
    let req = seen.iter().find(|r| r.path() == "/api/me").unwrap();
    assert_eq!(req.header("x-from-edge"), Some("1"));
    assert_eq!(req.header("cookie"), None);
}

#[test]
fn redirects_are_answered_at_the_edge() {
    let origin = origin();
    let edge = Edge::builder(origin.addr)
        .rules(
            "- match: { path_prefix: /old/ }\n  \
             redirect: { to: \"https://{host}/new/{rest}{query}\", status: 301 }\n\
             - match: { path_prefix: /secure/ }\n  redirect_https: true\n  \
             response_headers: { set: { Strict-Transport-Security: \"max-age=31536000\" } }\n\
             - match: { path_prefix: /moved }\n  redirect: { to: /elsewhere }",
        )
        .start();
    let r = edge.get("/old/a/b.html?x=1", &[]);
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location"),
        Some("https://example.com/new/a/b.html?x=1")
    );
    r.assert_cache_status("fwd=bypass; detail=redirect");
    let s = edge.get("/secure/login?next=%2F", &[]);
    assert_eq!(s.status, 308);
    assert_eq!(
        s.header("location"),
        Some("https://example.com/secure/login?next=%2F")
    );
    assert_eq!(
        s.header("strict-transport-security"),
        Some("max-age=31536000")
    );
    let m = edge.get("/moved", &[]);
    assert_eq!((m.status, m.header("location")), (302, Some("/elsewhere")));
    assert!(
        origin.requests().is_empty(),
        "the origin saw a redirected request"
    );
    assert_eq!(edge.metric("edge_refusals_total{reason=\"redirect\"}"), 3.0);
}

#[test]
fn the_origin_path_changes_for_the_origin_only() {
    let origin = origin();
    let edge = Edge::builder(origin.addr)
        .rules("- match: { path_prefix: /app/ }\n  origin_path: { strip_prefix: /app, add_prefix: /dist }")
        .start();
    let r = edge.get("/app/js/main.js?v=3", &[]);
    assert_eq!(r.text(), "body of /dist/js/main.js?v=3");
    edge.get("/app/js/main.js?v=3", &[])
        .assert_cache_status("hit");
    // Purged by the URL the clients use.
    let p = edge.purge(r#"{"urls": ["http://example.com/app/js/main.js?v=3"]}"#);
    assert_eq!(p.status, 200, "{}", p.text());
    edge.get("/app/js/main.js?v=3", &[])
        .assert_cache_status("fwd=miss");
    assert_eq!(origin.count("/dist/js/main.js"), 2);
    assert_eq!(origin.count("/app/js/main.js"), 0);
}

#[test]
fn access_rules_refuse_before_the_cache() {
    let origin = origin();
    let edge = Edge::builder(origin.addr)
        .rules(
            "- match: { path_prefix: /admin/ }\n  access: { allow: [\"10.0.0.0/8\", \"2001:db8::/32\"] }\n\
             - match: { path_prefix: /team/ }\n  access: { allow: [\"127.0.0.0/8\", \"::1\"], deny: [\"10.9.0.0/16\"] }\n\
             - match: { path_prefix: /closed/ }\n  access: { allow: [\"127.0.0.0/8\"], deny: [\"127.0.0.1\"] }",
        )
        .start();
    let admin = edge.get("/admin/", &[]);
    assert_eq!(admin.status, 403);
    admin.assert_cache_status("fwd=bypass; detail=denied");
    assert_eq!(edge.get("/team/a", &[]).status, 200);
    assert_eq!(edge.get("/team/a", &[]).status, 200);
    let closed = edge.get("/closed/a", &[]);
    assert_eq!(closed.status, 403, "deny wins over allow");
    assert_eq!(origin.count("/admin/"), 0);
    assert_eq!(origin.count("/closed/a"), 0);
    // The refusal comes before a stored copy could answer.
    assert_eq!(origin.count("/team/a"), 1);
    eventually(Duration::from_secs(5), "the refusals counted", || {
        (edge.metric("edge_refusals_total{reason=\"denied\"}") == 2.0).then_some(())
    });
}

#[test]
fn error_pages_replace_the_bodies_of_errors_from_the_origin_and_the_edge() {
    let mut origin = Origin::start(|r| match r.path() {
        "/down" => Reply::status(503, "origin's own 503 text", &[("server", "o")]),
        "/missing" => Reply::status(404, "origin's 404", &[("cache-control", "max-age=60")]),
        _ => Reply::ok("fine", &[("cache-control", "max-age=60")]),
    });
    let dir = Scratch::new("error-pages");
    let page = |name: &str, text: &str| {
        let p = dir.0.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let sites = format!(
        "  - hosts: [\"*\"]\n    origin: origin\n    \
         error_pages: {{ \"503\": \"{}\", \"5xx\": \"{}\", \"4xx\": \"{}\" }}\n    \
         rules: [{{ match: {{ path_prefix: /private/ }}, access: {{ deny: [\"127.0.0.0/8\"] }} }}]\n",
        page("503.html", "<h1>back soon</h1>"),
        page("5xx.html", "<h1>something broke</h1>"),
        page("4xx.txt", "not here"),
    );
    let edge = Edge::builder(origin.addr).sites(&sites).start();
    let down = edge.get("/down", &[]);
    assert_eq!(down.status, 503);
    assert_eq!(down.text(), "<h1>back soon</h1>");
    assert_eq!(
        down.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    down.assert_cache_status("fwd=miss");
    for round in ["miss", "hit"] {
        let missing = edge.get("/missing", &[]);
        assert_eq!(
            (missing.status, missing.text().as_str()),
            (404, "not here"),
            "{round}"
        );
        assert_eq!(
            missing.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
        missing.assert_cache_status(if round == "hit" { "hit" } else { "fwd=miss" });
    }
    let denied = edge.get("/private/x", &[]);
    assert_eq!((denied.status, denied.text().as_str()), (403, "not here"));
    assert_eq!(edge.get("/ok", &[]).text(), "fine");
    origin.stop();
    let unreachable = edge.get("/gone", &[]);
    assert_eq!(unreachable.status, 502);
    assert_eq!(unreachable.text(), "<h1>something broke</h1>");
}

#[test]
fn a_rate_limit_refuses_past_the_burst_and_recovers() {
    let origin = origin();
    let edge = Edge::builder(origin.addr)
        .rules(
            "- match: { path_prefix: /api/ }\n  cache: false\n  \
             rate_limit: { requests: 2, per: 1s, burst: 3, by: client_ip }",
        )
        .start();
    let statuses: Vec<u16> = (0..5).map(|_| edge.get("/api/x", &[]).status).collect();
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    let over = edge.get("/api/x", &[]);
    assert_eq!(over.status, 429);
    assert_eq!(over.header("retry-after"), Some("1"));
    over.assert_cache_status("fwd=bypass; detail=rate-limited");
    assert_eq!(
        edge.get("/other", &[]).status,
        200,
        "only the rule's paths are limited"
    );
    assert_eq!(
        origin.count("/api/x"),
        3,
        "refused requests never reach the origin"
    );
    // The window is 1.5 s (a burst of 3 earned back at 2 per second): it recovers after it.
    eventually(
        Duration::from_secs(10),
        "the limit to let requests through again",
        || (edge.get("/api/x", &[]).status == 200).then_some(()),
    );
    assert!(edge.metric("edge_refusals_total{reason=\"rate_limited\"}") >= 3.0);
    assert!(edge.metric("edge_rate_limited_total{site=\"*\",rule=\"0\"}") >= 3.0);
}

/// `edge sign-url` for `url` with `key_file`, valid for `expires`.
fn signed(key_file: &std::path::Path, expires: &str, url: &str) -> String {
    let out = std::process::Command::new(edge_tests::edge::edge_bin())
        .args(["sign-url", "--key-file"])
        .arg(key_file)
        .args(["--expires", expires, url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn signed_urls_are_checked_and_share_one_cache_key() {
    let origin = origin();
    let dir = Scratch::new("signed");
    let keys = dir.0.join("url-keys");
    std::fs::write(&keys, "new-key\nold-key\n").unwrap();
    let edge = Edge::builder(origin.addr)
        .rules(&format!(
            "- match: {{ path_prefix: /downloads/ }}\n  \
             signed_url: {{ key_file: \"{}\", expires_param: exp, signature_param: sig }}",
            keys.display()
        ))
        .start();
    let one = signed(&keys, "1h", "/downloads/a.zip?v=2");
    let two = signed(&keys, "2h", "/downloads/a.zip?v=2");
    assert_ne!(one, two);
    let first = edge.get(&one, &[]);
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(
        first.text(),
        "body of /downloads/a.zip?v=2",
        "the origin sees no signature"
    );
    edge.get(&two, &[]).assert_cache_status("hit");
    assert_eq!(origin.count("/downloads/a.zip"), 1);

    let missing = edge.get("/downloads/a.zip?v=2", &[]);
    assert_eq!(missing.status, 403);
    missing.assert_cache_status("fwd=bypass; detail=bad-signature");
    let wrong = edge.get(&one.replace("v=2", "v=3"), &[]);
    wrong.assert_cache_status("detail=bad-signature");
    // A URL signed with the second key of the file (rotation).
    std::fs::write(dir.0.join("old-only"), "old-key\n").unwrap();
    let by_old = signed(&dir.0.join("old-only"), "1h", "/downloads/b.zip");
    assert_eq!(edge.get(&by_old, &[]).status, 200);
    let soon = signed(&keys, "0s", "/downloads/c.zip");
    eventually(Duration::from_secs(5), "the URL to expire", || {
        let r = edge.get(&soon, &[]);
        r.cache_status_entry()
            .matches("detail=expired")
            .then_some(())
    });
    assert!(edge.metric("edge_refusals_total{reason=\"bad_signature\"}") >= 2.0);
}

#[test]
fn a_trusted_proxy_names_the_client_for_access_rules() {
    let origin = origin();
    let rules = "- match: { path_prefix: /office/ }\n  access: { allow: [\"203.0.113.0/24\"] }";
    let behind = Edge::builder(origin.addr)
        .rules(rules)
        .extra("client_ip: { trusted: [\"127.0.0.0/8\"], header: X-Forwarded-For }\n")
        .start();
    let office = [("x-forwarded-for", "203.0.113.5")];
    assert_eq!(behind.get("/office/a", &office).status, 200);
    let elsewhere = [("x-forwarded-for", "203.0.113.5, 198.51.100.1")];
    assert_eq!(
        behind.get("/office/a", &elsewhere).status,
        403,
        "the right-most untrusted hop is the client"
    );
    // Without trusted proxies the header is the client's own word, and not taken.
    let direct = Edge::builder(origin.addr).rules(rules).start();
    assert_eq!(direct.get("/office/a", &office).status, 403);
}

#[test]
fn each_site_has_its_own_series() {
    let origin = origin();
    let sites = "  - name: shop\n    hosts: [\"shop.example\"]\n    origin: origin\n\
                 \x20 - hosts: [\"blog.example\", \"*.blog.example\"]\n    origin: origin\n";
    let edge = Edge::builder(origin.addr).sites(sites).start();
    // Exported at 0 before any request, so rates over them are defined.
    assert!(edge
        .metrics()
        .contains("edge_cache_requests_total{outcome=\"hit\",site=\"shop\"} 0"));
    for _ in 0..2 {
        edge_tests::client::get(edge.addr, "shop.example", "/a", &[]);
    }
    edge_tests::client::get(edge.addr, "blog.example", "/a", &[]);
    edge_tests::client::get(edge.addr, "nowhere.example", "/a", &[]);
    let m = |series: &str| edge.metric(series);
    assert_eq!(
        m("edge_cache_requests_total{site=\"shop\",outcome=\"miss\"}"),
        1.0
    );
    assert_eq!(
        m("edge_cache_requests_total{site=\"shop\",outcome=\"hit\"}"),
        1.0
    );
    assert_eq!(
        m("edge_cache_requests_total{site=\"blog.example\",outcome=\"miss\"}"),
        1.0
    );
    assert_eq!(
        m("edge_cache_requests_total{site=\"-\",outcome=\"bypass\"}"),
        1.0
    );
    assert_eq!(
        m("edge_origin_requests_total{site=\"shop\",result=\"2xx\"}"),
        1.0
    );
    assert!(m("edge_response_bytes_total{site=\"blog.example\"}") > 0.0);
    assert_eq!(m("edge_responses_total{site=\"shop\",code=\"200\"}"), 2.0);
    assert_eq!(m("edge_responses_total{site=\"-\",code=\"404\"}"), 1.0);
    assert_eq!(
        m("edge_cache_requests_total{outcome=\"miss\"}"),
        2.0,
        "summed over sites"
    );
}

#[test]
fn ipv6_clients_are_judged_by_ipv6_blocks() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("SKIPPED: no IPv6 loopback on this host");
        return;
    }
    let origin = origin();
    let spec = Edge::builder(origin.addr).rules(
        "- match: { path_prefix: /v6/ }\n  access: { allow: [\"::1/128\"] }\n\
         - match: { path_prefix: /lan/ }\n  access: { allow: [\"2001:db8::/32\", \"127.0.0.0/8\"] }\n\
         - match: { path_prefix: /nov6/ }\n  access: { deny: [\"::/0\"] }",
    );
    // A second listener on the IPv6 loopback, beside the harness's own.
    let v6_port = edge_tests::free_port();
    let edge = Edge::start_config("edge-test", |port, admin| {
        spec.yaml(port, admin).replace(
            "listen: [{ addr: \"127.0.0.1:",
            &format!("listen: [{{ addr: \"[::1]:{v6_port}\" }}, {{ addr: \"127.0.0.1:"),
        )
    });
    let v6: std::net::SocketAddr = format!("[::1]:{v6_port}").parse().unwrap();
    let get = |addr, path| edge_tests::client::get(addr, "example.com", path, &[]).status;
    assert_eq!(get(v6, "/v6/a"), 200);
    assert_eq!(
        get(edge.addr, "/v6/a"),
        403,
        "an IPv4 client is outside ::1/128"
    );
    assert_eq!(get(v6, "/lan/a"), 403, "::1 is outside 2001:db8::/32");
    assert_eq!(get(edge.addr, "/lan/a"), 200);
    assert_eq!(get(v6, "/nov6/a"), 403);
    assert_eq!(get(edge.addr, "/nov6/a"), 200, "::/0 holds no IPv4 address");
}
