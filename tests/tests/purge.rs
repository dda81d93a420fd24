//! Purges through the real purge-api to three real edges: every kind of target, soft purges and
//! 304 revalidation, bad input, a node down during a purge, purge-api killed with -9 after
//! acknowledging, compaction past a node's position, DNS discovery and the CLI.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use edge_tests::client::{self, Response};
use edge_tests::edge::{DiskCache, Edge, Scratch};
use edge_tests::eventually;
use edge_tests::origin::{Origin, Reply, Req};
use edge_tests::purge_api::{purge_api_bin, PurgeApi, API_TOKEN};
use serde_json::Value;

/// Tagged, cacheable objects with validators; a 304 for a matching `If-None-Match`.
fn handler(req: &Req) -> Reply {
    let etag = format!("\"{}\"", req.path());
    if req.header("if-none-match") == Some(etag.as_str()) {
        return Reply::status(
            304,
            "",
            &[("ETag", &etag), ("Cache-Control", "max-age=3600")],
        );
    }
    let tags = match req.path() {
        "/t/a.css" => "group-a product-1",
        "/t/b.css" => "group-b",
        _ => "",
    };
    let mut headers = vec![
        ("Cache-Control", "max-age=3600, stale-while-revalidate=60"),
        ("ETag", etag.as_str()),
    ];
    if !tags.is_empty() {
        headers.push(("Surrogate-Key", tags));
    }
    Reply::ok(format!("body of {}", req.path()), &headers)
}

fn get(edge: &Edge, host: &str, path: &str) -> Response {
    let r = client::get(edge.addr, host, path, &[]);
    assert_eq!(r.status, 200, "{host}{path}: {}", r.text());
    assert!(r.header("surrogate-key").is_none() && r.header("x-edge-stored-at").is_none());
    r
}

fn is_hit(edge: &Edge, host: &str, path: &str) -> bool {
    // A fresh hit: a stale one served while revalidating says `detail=stale-while-revalidate`.
    let cs = get(edge, host, path).cache_status().to_string();
    cs.contains("; hit") && !cs.contains("stale")
}

/// Fetches until stored and a hit on every edge.
fn warm(edges: &[Edge], objects: &[(&str, &str)]) {
    for e in edges {
        for (host, path) in objects {
            eventually(
                Duration::from_secs(10),
                &format!("{host}{path} cached"),
                || is_hit(e, host, path).then_some(()),
            );
        }
    }
}

fn json(r: &Response) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
}

fn wait_nodes_up(api: &PurgeApi, n: usize) {
    eventually(Duration::from_secs(20), "every node reachable", || {
        let v = json(&api.get("/v1/nodes"));
        let nodes = v["nodes"].as_array().unwrap();
        (nodes.len() == n && nodes.iter().all(|n| n["up"] == true)).then_some(())
    });
}

/// Purges through the API, waiting until every node applied it.
fn purge_everywhere(api: &PurgeApi, body: &str) -> Value {
    let r = api.purge(body, "wait=10s");
    assert_eq!(r.status, 202, "{}", r.text());
    let v = json(&r);
    assert_eq!(v["complete"], true, "not applied everywhere: {v}");
    v
}

fn admins(edges: &[Edge]) -> Vec<SocketAddr> {
    edges.iter().map(|e| e.admin).collect()
}

#[test]
fn tag_prefix_host_url_and_all_reach_every_node() {
    let origin = Origin::start(handler);
    let edges: Vec<Edge> = (0..3).map(|_| Edge::builder(origin.addr).start()).collect();
    let api = PurgeApi::start(&admins(&edges), "", "");
    wait_nodes_up(&api, 3);
    let a_css = ("a.example", "/t/a.css");
    let b_css = ("a.example", "/t/b.css");
    let a_js = ("a.example", "/assets/x.js");
    let b_js = ("b.example", "/assets/x.js");
    let query = ("a.example", "/q?v=1");
    let all = [a_css, b_css, a_js, b_js, query];
    // (purge, objects it must purge, objects it must leave)
    type Object<'a> = (&'a str, &'a str);
    let cases: Vec<(&str, Vec<Object>, Vec<Object>)> = vec![
        (r#"{"tags": ["product-1"]}"#, vec![a_css], vec![b_css, a_js]),
        (
            r#"{"prefixes": ["a.example/assets/"]}"#,
            vec![a_js],
            vec![b_js, a_css],
        ),
        (r#"{"hosts": ["B.Example"]}"#, vec![b_js], vec![a_js, b_css]),
        (
            r#"{"urls": ["https://a.example/t/b.css", "http://a.example/q?v=1"]}"#,
            vec![b_css, query],
            vec![a_css, a_js],
        ),
        (r#"{"all": true}"#, all.to_vec(), vec![]),
    ];
    for (body, purged, kept) in cases {
        warm(&edges, &all);
        let before = origin.requests().len();
        let v = purge_everywhere(&api, body);
        assert_eq!(v["nodes"].as_array().unwrap().len(), 3);
        for e in &edges {
            for (host, path) in &kept {
                assert!(is_hit(e, host, path), "{body} purged {host}{path}");
            }
            for (host, path) in &purged {
                assert!(!is_hit(e, host, path), "{body} left {host}{path}");
            }
        }
        // Each purged object was fetched again once per edge, nothing else.
        assert_eq!(origin.requests().len() - before, purged.len() * 3, "{body}");
    }
    // The purge status names each node.
    let id = api.purge(r#"{"tags": ["group-b"]}"#, "wait=10s");
    let id = json(&id)["id"].as_str().unwrap().to_string();
    let status = json(&api.get(&format!("/v1/purge/{id}")));
    assert_eq!(status["complete"], true);
    for n in status["nodes"].as_array().unwrap() {
        assert_eq!(n["applied"], true);
        assert_eq!(n["id"], "edge-test");
    }
    let metrics = client::get(api.addr, "x", "/metrics", &[]).text();
    assert!(
        metrics.contains("purge_api_node_lag{node=\"http://"),
        "{metrics}"
    );
}

#[test]
fn a_soft_purge_serves_stale_and_revalidates_with_a_304() {
    let origin = Origin::start(handler);
    let edges: Vec<Edge> = (0..3).map(|_| Edge::builder(origin.addr).start()).collect();
    let api = PurgeApi::start(&admins(&edges), "", "");
    wait_nodes_up(&api, 3);
    let obj = ("a.example", "/t/b.css");
    warm(&edges, &[obj]);
    purge_everywhere(&api, r#"{"tags": ["group-b"], "soft": true}"#);
    for e in &edges {
        // Served at once from the stale copy while it revalidates in the background.
        let r = get(e, obj.0, obj.1);
        assert_eq!(r.text(), "body of /t/b.css");
        assert!(
            r.cache_status_entry()
                .matches("detail=stale-while-revalidate"),
            "{}",
            r.cache_status()
        );
        eventually(Duration::from_secs(10), "revalidated to a hit", || {
            is_hit(e, obj.0, obj.1).then_some(())
        });
    }
    let reqs = origin.requests();
    let full: Vec<_> = reqs
        .iter()
        .filter(|r| r.path() == "/t/b.css" && r.header("if-none-match").is_none())
        .collect();
    let conditional = reqs
        .iter()
        .filter(|r| r.path() == "/t/b.css" && r.header("if-none-match") == Some("\"/t/b.css\""))
        .count();
    assert_eq!(full.len(), 3, "one full fetch per edge, before the purge");
    assert_eq!(conditional, 3, "one conditional revalidation per edge");
}

#[test]
fn the_api_refuses_bad_requests_with_json_errors() {
    let origin = Origin::start(handler);
    let edge = Edge::builder(origin.addr).start();
    let api = PurgeApi::start(
        &[edge.admin],
        "",
        "limits: { max_items: 5, max_body: 2KiB, rate_per_second: 0.2, burst: 30 }\n",
    );
    let post = |auth: Option<&str>, body: &str| {
        let auth = auth.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("Authorization", a.as_str()));
        }
        client::request(
            api.addr,
            "POST",
            "x",
            "/v1/purge",
            &headers,
            body.as_bytes(),
        )
    };
    let expect = |r: Response, status: u16, says: &str| {
        assert_eq!(r.status, status, "{}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"));
        let msg = json(&r)["error"].as_str().unwrap().to_string();
        assert!(msg.contains(says), "{msg:?} does not say {says:?}");
    };
    expect(post(None, r#"{"all": true}"#), 401, "bearer token");
    expect(post(Some("wrong"), r#"{"all": true}"#), 401, "bearer token");
    expect(api.get("/v1/purge/nope-1"), 404, "no purge");
    let ok = Some(API_TOKEN);
    expect(post(ok, "{not json"), 400, "malformed purge");
    expect(post(ok, r#"{"tag": ["x"]}"#), 400, "unknown field");
    expect(post(ok, "tags=x"), 400, "must be a JSON object");
    expect(post(ok, r#"{}"#), 400, "names nothing");
    expect(post(ok, r#"{"soft": true}"#), 400, "names nothing");
    expect(
        post(ok, r#"{"urls": ["/relative.css"]}"#),
        400,
        "absolute URL",
    );
    expect(
        post(ok, r#"{"urls": ["https://a b/x"]}"#),
        400,
        "valid host",
    );
    expect(
        post(ok, r#"{"seq": 4, "all": true}"#),
        400,
        "set by the purge service",
    );
    expect(
        post(ok, r#"{"tags": ["1", "2", "3", "4", "5", "6"]}"#),
        413,
        "at most 5",
    );
    let big = format!(r#"{{"tags": ["{}"]}}"#, "x".repeat(4000));
    expect(post(ok, &big), 413, "over 2048 bytes");
    // Nothing refused was logged.
    assert_eq!(json(&api.get("/v1/nodes"))["head"], 0);
    // The rate limit is per token: the burst runs out for one, not for the other.
    let mut limited = None;
    for _ in 0..40 {
        let r = post(ok, r#"{"tags": ["t"]}"#);
        if r.status == 429 {
            limited = Some(r);
            break;
        }
        assert_eq!(r.status, 202, "{}", r.text());
    }
    let limited = limited.expect("no 429 within 40 purges");
    assert!(
        limited
            .header("retry-after")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    expect(limited, 429, "rate limit");
    assert_eq!(post(Some("second-token"), r#"{"tags": ["t"]}"#).status, 202);
}

#[test]
fn a_node_down_during_a_purge_serves_nothing_purged_when_it_returns() {
    let origin = Origin::start(handler);
    let dirs: Vec<Scratch> = (0..3).map(|_| Scratch::new("purge-disk")).collect();
    let mut edges: Vec<Edge> = dirs
        .iter()
        .map(|d| {
            Edge::builder(origin.addr)
                .cache(DiskCache::at(&d.0).memory("16MiB").disk("64MiB").yaml())
                .start()
        })
        .collect();
    let api = PurgeApi::start(&admins(&edges), "", "");
    wait_nodes_up(&api, 3);
    // Every node takes part in the log before it goes down.
    purge_everywhere(&api, r#"{"tags": ["nothing-yet"]}"#);
    let purged = ("a.example", "/t/a.css");
    let kept = ("a.example", "/t/b.css");
    warm(&edges, &[purged, kept]);
    // Committed to disk (not only a fill in flight) before the crash.
    edges[2].wait_disk_objects(2, Duration::from_secs(10));
    edges[2].signal_and_wait("KILL");
    let r = api.purge(r#"{"tags": ["product-1"]}"#, "wait=1s");
    let v = json(&r);
    assert_eq!(v["complete"], false, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let fetched = origin.count(purged.1);
    edges[2].restart();
    // Whether or not it has caught up yet, the purged object is not served from its cache
    // without the origin: the first request after the restart reaches the origin.
    let r = get(&edges[2], purged.0, purged.1);
    assert!(
        !r.cache_status_entry().matches("hit"),
        "{}",
        r.cache_status()
    );
    assert_eq!(origin.count(purged.1), fetched + 1);
    eventually(Duration::from_secs(10), "the node ready again", || {
        (edges[2].ready_status() == 200).then_some(())
    });
    // The node is ready once it has applied the purge, a moment before purge-api has its
    // answer and records it.
    eventually(
        Duration::from_secs(10),
        "purge-api to record the purge complete",
        || {
            let status = json(&api.get(&format!("/v1/purge/{id}")));
            (status["complete"] == true).then_some(())
        },
    );
    // Once caught up it serves from its disk again what was not purged.
    assert!(is_hit(&edges[2], kept.0, kept.1));
    assert!(is_hit(&edges[2], kept.0, kept.1));
}

#[test]
fn purge_api_killed_after_acknowledging_delivers_after_restart() {
    let origin = Origin::start(handler);
    let dir = Scratch::new("purge-disk");
    let mut edge = Edge::builder(origin.addr)
        .cache(DiskCache::at(&dir.0).memory("16MiB").disk("64MiB").yaml())
        .start();
    let mut api = PurgeApi::start(&[edge.admin], "", "");
    wait_nodes_up(&api, 1);
    purge_everywhere(&api, r#"{"tags": ["nothing-yet"]}"#);
    let obj = ("a.example", "/t/a.css");
    warm(std::slice::from_ref(&edge), &[obj]);
    edge.wait_disk_objects(1, Duration::from_secs(10));
    // The node is down, so the purge can only be in the log when purge-api dies.
    edge.signal_and_wait("TERM");
    let r = api.purge(r#"{"tags": ["product-1"]}"#, "");
    assert_eq!(r.status, 202);
    let id = json(&r)["id"].as_str().unwrap().to_string();
    api.kill9();
    edge.restart();
    api.restart();
    eventually(Duration::from_secs(10), "the purge delivered", || {
        (json(&api.get(&format!("/v1/purge/{id}")))["complete"] == true).then_some(())
    });
    let before = origin.count(obj.1);
    assert!(!is_hit(&edge, obj.0, obj.1));
    assert_eq!(origin.count(obj.1), before + 1);
    assert_eq!(edge.ready_status(), 200);
}

#[test]
fn a_node_behind_the_compacted_log_gets_a_purge_all() {
    let origin = Origin::start(handler);
    let dirs: Vec<Scratch> = (0..2).map(|_| Scratch::new("purge-disk")).collect();
    let mut edges: Vec<Edge> = dirs
        .iter()
        .map(|d| {
            Edge::builder(origin.addr)
                .cache(DiskCache::at(&d.0).memory("16MiB").disk("64MiB").yaml())
                .start()
        })
        .collect();
    let api = PurgeApi::start(&admins(&edges), "retain: 2", "");
    wait_nodes_up(&api, 2);
    purge_everywhere(&api, r#"{"tags": ["nothing-yet"]}"#);
    let untagged = ("a.example", "/plain.txt");
    warm(&edges, &[untagged]);
    edges[1].wait_disk_objects(1, Duration::from_secs(10));
    edges[1].signal_and_wait("TERM");
    for t in ["x1", "x2", "x3", "x4"] {
        let r = api.purge(&format!(r#"{{"tags": ["{t}"]}}"#), "");
        assert_eq!(r.status, 202);
        let seq = json(&r)["seq"].as_u64().unwrap();
        // Compaction counts entries, not nodes: a live node more than `retain` behind would get
        // a purge-all too. Only the node that is down may fall behind here.
        eventually(Duration::from_secs(10), "the live node applied it", || {
            let v = json(&api.get("/v1/nodes"));
            let nodes = v["nodes"].as_array().unwrap();
            nodes
                .iter()
                .any(|n| n["up"] == true && n["applied_seq"].as_u64() >= Some(seq))
                .then_some(())
        });
    }
    let nodes = json(&api.get("/v1/nodes"));
    assert_eq!(nodes["head"], 5);
    assert_eq!(nodes["compacted_through"], 3);
    edges[1].restart();
    eventually(Duration::from_secs(10), "the node caught up", || {
        (edges[1].ready_status() == 200).then_some(())
    });
    // What it missed is gone from the log, so it purged everything.
    assert!(!is_hit(&edges[1], untagged.0, untagged.1));
    assert!(is_hit(&edges[0], untagged.0, untagged.1));
    let state = json(&client::get(
        edges[1].admin,
        "x",
        "/purge/state",
        &[(
            "Authorization",
            &format!("Bearer {}", edge_tests::edge::ADMIN_TOKEN),
        )],
    ));
    assert_eq!(state["applied_seq"], 5);
}

#[test]
fn nodes_are_found_by_dns_name() {
    let origin = Origin::start(handler);
    let edge = Edge::builder(origin.addr).start();
    // No static list; `localhost` resolves to the node's loopback address (and maybe ::1,
    // where nothing listens: that one is a node that is down).
    let nodes = format!(
        "dns: [{{ name: localhost, port: {} }}]\n  refresh: 1s",
        edge.admin.port()
    );
    let api = PurgeApi::start_nodes(&nodes, "", "");
    let url = format!("http://{}", edge.admin);
    eventually(Duration::from_secs(10), "the node found and synced", || {
        let v = json(&api.get("/v1/nodes"));
        v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["url"] == url.as_str() && n["up"] == true)
            .then_some(())
    });
}

#[test]
fn the_cli_purges_and_waits() {
    let origin = Origin::start(handler);
    let edges: Vec<Edge> = (0..2).map(|_| Edge::builder(origin.addr).start()).collect();
    let api = PurgeApi::start(&admins(&edges), "", "");
    wait_nodes_up(&api, 2);
    let obj = ("a.example", "/t/a.css");
    warm(&edges, &[obj]);
    let out = Command::new(purge_api_bin())
        .args(["purge", "--tag", "product-1", "--wait", "10s"])
        .env("PURGE_API_ENDPOINT", format!("http://{}", api.addr))
        .env("PURGE_API_TOKEN", API_TOKEN)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\"complete\":true"), "{stdout}");
    for e in &edges {
        assert!(!is_hit(e, obj.0, obj.1));
    }
    // A wrong token is refused, with exit code 2 and the API's error.
    let out = Command::new(purge_api_bin())
        .args(["purge", "--endpoint", &format!("http://{}", api.addr)])
        .args(["--token", "wrong", "--all"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("bearer token"));
    // A bad config is refused by --check with exit 64.
    let bad = Scratch::new("purge-api-bad");
    let f = bad.0.join("bad.yaml");
    std::fs::write(
        &f,
        "listen: nowhere\ntokens_file: t\nstore: s\nnodes: { token_file: t }\n",
    )
    .unwrap();
    let out = Command::new(purge_api_bin())
        .arg("--config")
        .arg(&f)
        .arg("--check")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml:1: listen"), "{err}");
    let out = Command::new(purge_api_bin())
        .arg("--config")
        .arg(api.config_path())
        .arg("--check")
        .output()
        .unwrap();
    assert!(out.status.success());
}
