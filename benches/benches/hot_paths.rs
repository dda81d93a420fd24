//! The per-request pure functions of the hot path: rule matching, cache-key building, header
//! parsing (the response's caching fields, `Accept-Encoding`, the stored meta a hit reads and the
//! one a miss writes) and the access-log line.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use edge::cache::key::cache_key;
use edge::cache::stored_header::StoredHeader;
use edge::cache::{Head, StoredObject};
use edge::http::cache_control::Directives;
use edge::http::{encoding, freshness};
use edge::live::router::select_rule;
use edge_config::edge::{CacheKeySpec, EdgeConfig};
use pingora::cache::cache_control::{CacheControl, InterpretCacheControl};
use pingora::cache::CacheMeta;
use pingora::http::{RequestHeader, ResponseHeader};

/// The reference configuration: its first site's rules (a prefix, a regex, a bypass).
fn config() -> EdgeConfig {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/examples/edge.yaml");
    EdgeConfig::load(&path).unwrap()
}

fn request(target: &str) -> RequestHeader {
    let mut req = RequestHeader::build("GET", target.as_bytes(), None).unwrap();
    req.insert_header("host", "www.example.com").unwrap();
    req.insert_header("accept-encoding", "gzip, deflate, br, zstd")
        .unwrap();
    req.insert_header("user-agent", "Mozilla/5.0 (X11; Linux x86_64) bench")
        .unwrap();
    req
}

fn origin_response() -> ResponseHeader {
    let mut resp = ResponseHeader::build(200, None).unwrap();
    for (n, v) in [
        ("content-type", "text/css; charset=utf-8"),
        ("content-length", "1024"),
        (
            "cache-control",
            "public, max-age=3600, stale-while-revalidate=60",
        ),
        ("etag", "\"6b035d76-400\""),
        ("last-modified", "Sun, 22 Nov 2026 21:24:06 GMT"),
        ("date", "Sun, 22 Nov 2026 21:24:06 GMT"),
        ("vary", "Accept-Encoding"),
        ("surrogate-key", "css site-v42 page-home"),
        ("server", "nginx/1.22.1"),
    ] {
        resp.insert_header(n, v).unwrap();
    }
    resp
}

fn rules(c: &mut Criterion) {
    let config = config();
    let rules = &config.sites[0].rules;
    let mut g = c.benchmark_group("rules");
    for (name, path) in [
        ("prefix_rule", "/assets/app.3f9a.js"),
        ("regex_rule", "/css/site.css"),
        ("no_rule", "/blog/2026/11/a-long-article-name"),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| select_rule(black_box(rules), "GET", black_box(path)))
        });
    }
    g.finish();
}

/// Fifty rules of edge logic (each with two response headers, every fifth with an access
/// list, every seventh a redirect); a request for the last one's path: the match, then the
/// headers applied to a hit's header.
fn edge_logic(c: &mut Criterion) {
    let mut yaml = String::from(
        "node: { id: b }\nlisten: [{ addr: 127.0.0.1:1 }]\nadmin: { addr: 127.0.0.1:2 }\n\
         origins: { o: { servers: [\"127.0.0.1:3\"] } }\nsites:\n  - hosts: ['*']\n    origin: o\n    rules:\n",
    );
    for i in 0..50 {
        yaml.push_str(&format!(
            "      - match: {{ path_prefix: /section-{i}/ }}\n        \
             response_headers: {{ set: {{ Access-Control-Allow-Origin: \"*\", X-Section: \"{i}\" }} }}\n"
        ));
        if i % 5 == 0 {
            yaml.push_str("        access: { allow: [\"10.0.0.0/8\"], deny: [\"10.9.0.0/16\"] }\n");
        }
        if i % 7 == 0 {
            yaml.push_str(
                "        redirect: { to: \"https://{host}/new/{rest}{query}\", status: 301 }\n",
            );
        }
    }
    let config = EdgeConfig::from_yaml(&yaml).unwrap();
    let rules = &config.sites[0].rules;
    let header = origin_response();
    c.bench_function("edge_logic/match_and_apply_50_rules", |b| {
        b.iter(|| {
            let (_, rule) = select_rule(black_box(rules), "GET", "/section-49/a/b.css").unwrap();
            let mut h = header.clone();
            edge::proxy::logic::apply_response(&rule.logic.response_headers, &mut h).unwrap();
            h
        })
    });
    c.bench_function("edge_logic/clone_header_alone", |b| {
        b.iter(|| black_box(&header).clone())
    });
}

fn keys(c: &mut Criterion) {
    let config = config();
    let rules = &config.sites[0].rules;
    let mut g = c.benchmark_group("cache_key");
    for (name, target) in [
        ("no_query", "/css/site.css"),
        (
            "query_sorted",
            "/search?q=shoes&page=2&sort=price&utm_source=x",
        ),
        ("query_ignored", "/assets/app.3f9a.js?v=42"),
    ] {
        let req = request(target);
        let spec = select_rule(rules, "GET", req.uri.path())
            .map_or_else(CacheKeySpec::default, |(_, r)| r.cache_key.clone());
        g.bench_function(name, |b| {
            b.iter(|| cache_key("https", "www.example.com", black_box(&req), &spec))
        });
    }
    g.finish();
}

fn headers(c: &mut Criterion) {
    let mut g = c.benchmark_group("headers");
    let resp = origin_response();
    let now = SystemTime::now();
    g.bench_function("cache_control_decide", |b| {
        b.iter(|| freshness::decide(black_box(&resp), false, None, now).is_ok())
    });
    // The edge's reader of the caching directives against Pingora's regex parser, on the
    // same field; the decision above reads it (and the two targeted fields) once per miss.
    g.bench_function("cache_control_read", |b| {
        b.iter(|| {
            let d = Directives::of_response(black_box(&resp)).unwrap();
            (d.fresh_duration(), d.stale_while_revalidate())
        })
    });
    g.bench_function("cache_control_read_pingora", |b| {
        b.iter(|| {
            let c = CacheControl::from_resp_headers(black_box(&resp)).unwrap();
            (
                c.fresh_duration(),
                c.serve_stale_while_revalidate_duration(),
            )
        })
    });
    let req = request("/");
    g.bench_function("accept_encoding_normalize", |b| {
        b.iter(|| {
            encoding::normalize(
                black_box(&req)
                    .headers
                    .get_all("accept-encoding")
                    .iter()
                    .map(|v| v.as_bytes()),
            )
        })
    });
    // The header a miss keeps with its object (compact), and the one a hit makes of it, against
    // a plain clone (which would share the buffer Pingora parsed the response from).
    g.bench_function("stored_header_own", |b| {
        b.iter(|| StoredHeader::of(black_box(&resp)).unwrap())
    });
    let kept = StoredHeader::of(&resp).unwrap();
    g.bench_function("stored_header_make", |b| {
        b.iter(|| black_box(&kept).header().unwrap())
    });
    g.bench_function("response_header_clone", |b| {
        b.iter(|| black_box(&resp).clone())
    });
    let created = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
    let live = CacheMeta::new(created + Duration::from_secs(3600), created, 60, 0, resp);
    // What every miss did on the response's path: the header compressed with zstd. Now only a
    // body the disk tier takes pays for it, off the response's path.
    g.bench_function("stored_meta_serialize", |b| {
        b.iter(|| black_box(&live).serialize().unwrap())
    });
    // What a miss does instead: the internal part serialized, the header decoded and owned.
    g.bench_function("stored_head_of_live", |b| {
        b.iter(|| Head::of_live(Bytes::new(), black_box(&live)).unwrap())
    });
    let meta = live.serialize().unwrap();
    // What every memory hit did before the decoded copy: zstd and HTTP/1 parsing.
    g.bench_function("stored_meta_deserialize", |b| {
        b.iter(|| CacheMeta::deserialize(black_box(&meta.0), black_box(&meta.1)).unwrap())
    });
    let object = StoredObject::new([1; 16], [1; 16], Bytes::new(), meta, Bytes::new());
    // What a hit on the full path does now; the fast path only clones the header.
    g.bench_function("stored_meta_from_decoded", |b| {
        b.iter(|| black_box(&object).cache_meta().unwrap())
    });
    g.bench_function("stored_header_clone", |b| {
        b.iter(|| black_box(&object).decoded().unwrap().header.clone())
    });
    g.finish();
}

/// The access-log line of a 1 KiB hit, formatted into a reused buffer as a worker does.
fn log_line(c: &mut Criterion) {
    let entry = edge::access_log::Entry {
        time: UNIX_EPOCH + Duration::from_millis(1_795_370_816_123),
        client: Some("127.0.0.1:41234".parse().unwrap()),
        method: "GET",
        host: "static.example.com",
        site: "static",
        path: "/assets/app.3f9a.js",
        proto: "HTTP/1.1",
        status: 200,
        bytes: 1024,
        cache: "hit",
        cache_status: "edge-1; hit; ttl=3541; detail=memory",
        origin_ms: None,
        total_ms: 0.087,
        error: None,
    };
    let mut line = Vec::with_capacity(512);
    c.bench_function("access_log_line", |b| {
        b.iter(|| {
            line.clear();
            black_box(&entry).write_json(&mut line);
            line.len()
        })
    });
}

criterion_group!(benches, rules, edge_logic, keys, headers, log_line);
criterion_main!(benches);
