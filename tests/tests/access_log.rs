//! The access log: one JSON line per request with the fields operators read, to a file that
//! is reopened on SIGHUP (log rotation), or to stdout.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed set-up is a failed test

use std::path::Path;
use std::time::Duration;

use edge_tests::edge::Edge;
use edge_tests::eventually;
use edge_tests::origin::{Origin, Reply};

fn lines(path: &Path, n: usize) -> Vec<serde_json::Value> {
    eventually(
        Duration::from_secs(10),
        &format!("{n} access-log lines"),
        || {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<serde_json::Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
                .collect();
            (lines.len() >= n).then_some(lines)
        },
    )
}

fn edge_logging_to(origin: &Origin, output: &str) -> Edge {
    Edge::with_pool(&format!("servers: [\"{}\"]", origin.addr))
        .access_log(output)
        .start()
}

#[test]
fn one_json_line_per_request_to_a_file_reopened_on_sighup() {
    let origin = Origin::start(|_| Reply::ok("0123456789", &[("cache-control", "max-age=60")]));
    let dir = edge_tests::edge::Scratch::new("access");
    let path = dir.0.join("access.log");
    let edge = edge_logging_to(&origin, &format!("{{ output: \"{}\" }}", path.display()));
    edge.get("/a.css?secret=1", &[]);
    edge.get("/a.css?secret=1", &[]);
    let l = lines(&path, 2);
    assert_eq!(l.len(), 2);
    let (miss, hit) = (&l[0], &l[1]);
    for line in [miss, hit] {
        assert!(line["time"].as_str().unwrap().ends_with('Z'), "{line}");
        assert!(
            line["client"].as_str().unwrap().starts_with("127.0.0.1:"),
            "{line}"
        );
        assert_eq!(line["method"], "GET");
        assert_eq!(line["host"], "example.com");
        assert_eq!(
            line["site"], "*",
            "the catch-all site, named after its host pattern"
        );
        assert_eq!(line["path"], "/a.css", "the query is not logged");
        assert_eq!(line["proto"], "HTTP/1.1");
        assert_eq!(line["status"], 200);
        assert_eq!(line["bytes"], 10);
        assert!(line["total_ms"].as_f64().unwrap() >= 0.0);
    }
    assert_eq!(miss["cache"], "miss");
    assert!(miss["origin_ms"].as_f64().is_some(), "{miss}");
    assert_eq!(hit["cache"], "hit");
    assert!(hit["origin_ms"].is_null(), "{hit}");
    assert!(hit["cache_status"]
        .as_str()
        .unwrap()
        .starts_with("edge-test; hit"));

    // Rotation: move the file away, SIGHUP, and the next line starts a new file.
    let rotated = dir.0.join("access.log.1");
    std::fs::rename(&path, &rotated).unwrap();
    let yaml = std::fs::read_to_string(edge.config_path()).unwrap();
    assert!(edge.reload(&yaml));
    edge.get("/after", &[]);
    let fresh = lines(&path, 1);
    assert_eq!(fresh[0]["path"], "/after");
    assert_eq!(lines(&rotated, 2).len(), 2);
}

#[test]
fn access_true_writes_json_lines_to_stdout() {
    let origin = Origin::start(|_| Reply::ok("x", &[]));
    let edge = edge_logging_to(&origin, "true");
    edge.get("/to-stdout", &[]);
    // The harness sends stdout and stderr to the node's log file.
    eventually(Duration::from_secs(10), "the line on stdout", || {
        edge.log()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["path"] == "/to-stdout")
    });
}
