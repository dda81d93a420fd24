//! TLS termination with rustls: certificates chosen by SNI, HTTP/2 and HTTP/1.1 by ALPN, with
//! a real client (curl); certificates replaced by a reload; TLS to an origin verified with a
//! custom CA.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed set-up is a failed test

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use edge_tests::edge::{Edge, Scratch};
use edge_tests::origin::{Origin, Reply};
use edge_tests::pki::{Ca, CertFiles};
use edge_tests::{eventually, free_port};

/// `curl` over TLS to `host` (resolved to loopback at `port`), trusting `ca`. Returns the body
/// and the HTTP version, or curl's error.
fn curl(port: u16, host: &str, ca: &Path, version: &str) -> Result<(String, String), String> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", version, "--cacert"])
        .arg(ca)
        .arg("--resolve")
        .arg(format!("{host}:{port}:127.0.0.1"))
        .arg(format!("https://{host}:{port}/page"))
        .args(["-w", "\n%{http_version}"])
        .output()
        .expect("curl runs (scripts/setup.sh installs it)");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, v) = text.rsplit_once('\n').unwrap();
    Ok((body.to_string(), v.to_string()))
}

/// An edge with a plain listener and a TLS listener on `tls_port` (certificate `default`), the
/// given sites, and an origin at `origin`.
fn start_tls_edge(
    node: &str,
    tls_port: u16,
    default: &CertFiles,
    sites: &str,
    origin: std::net::SocketAddr,
) -> Edge {
    Edge::start_config(node, |port, admin| {
        tls_yaml(node, port, admin, tls_port, default, sites, origin)
    })
}

fn tls_yaml(
    node: &str,
    port: u16,
    admin: u16,
    tls_port: u16,
    default: &CertFiles,
    sites: &str,
    origin: std::net::SocketAddr,
) -> String {
    Edge::with_pool(&format!("servers: [\"{origin}\"]"))
        .node_id(node)
        .tls(tls_port, default)
        .sites(sites)
        .yaml(port, admin)
}

fn site_with_cert(host: &str, c: &CertFiles) -> String {
    format!(
        "  - hosts: [\"{host}\"]\n    origin: origin\n    tls: {{ cert: \"{}\", key: \"{}\" }}\n",
        c.cert.display(),
        c.key.display()
    )
}

fn echo_host() -> Origin {
    Origin::start(|r| {
        Reply::ok(
            format!("page for {}", r.header("host").unwrap_or("")),
            &[("cache-control", "max-age=60")],
        )
    })
}

#[test]
fn certificates_are_chosen_by_sni_over_http2_and_http1() {
    let dir = Scratch::new("tls");
    let ca = Ca::new(&dir.0, "ca");
    let (a, b, d) = (
        ca.leaf("a.test", "a"),
        ca.leaf("b.test", "b"),
        ca.leaf("default.test", "default"),
    );
    let origin = echo_host();
    let tls_port = free_port();
    let sites = format!(
        "{}{}  - hosts: [\"*\"]\n    origin: origin\n",
        site_with_cert("a.test", &a),
        site_with_cert("b.test", &b)
    );
    let _edge = start_tls_edge("edge-tls", tls_port, &d, &sites, origin.addr);
    // curl checks the certificate against the name it asked for: success means the right one.
    for host in ["a.test", "b.test", "default.test"] {
        let (body, version) = curl(tls_port, host, &ca.files.cert, "--http2").unwrap();
        assert_eq!(body, format!("page for {host}:{tls_port}"));
        assert_eq!(version, "2", "HTTP/2 by ALPN for {host}");
    }
    let (_, version) = curl(tls_port, "a.test", &ca.files.cert, "--http1.1").unwrap();
    assert_eq!(version, "1.1");
    // A name with no certificate of its own gets the listener's, which does not cover it.
    let err = curl(tls_port, "other.test", &ca.files.cert, "--http2").unwrap_err();
    assert!(err.contains("certificate") || err.contains("SSL"), "{err}");
}

#[test]
fn a_reload_replaces_certificates_and_a_broken_one_is_refused() {
    let dir = Scratch::new("tls-reload");
    let ca = Ca::new(&dir.0, "ca");
    let (a, d) = (ca.leaf("a.test", "a"), ca.leaf("default.test", "default"));
    let origin = echo_host();
    let tls_port = free_port();
    let sites = format!(
        "{}  - hosts: [\"*\"]\n    origin: origin\n",
        site_with_cert("a.test", &a)
    );
    let edge = start_tls_edge("edge-tls", tls_port, &d, &sites, origin.addr);
    curl(tls_port, "a.test", &ca.files.cert, "--http2").unwrap();

    // A new certificate from another CA in the same files, and the same configuration.
    let ca2 = Ca::new(&dir.0, "ca2");
    let a2 = ca2.leaf("a.test", "a2");
    std::fs::copy(&a2.cert, &a.cert).unwrap();
    std::fs::copy(&a2.key, &a.key).unwrap();
    let yaml = std::fs::read_to_string(edge.config_path()).unwrap();
    assert!(edge.reload(&yaml), "reload applied");
    curl(tls_port, "a.test", &ca2.files.cert, "--http2").unwrap();
    assert!(curl(tls_port, "a.test", &ca.files.cert, "--http2").is_err());

    // A certificate file that cannot be read as one: the reload is refused, the old one stays.
    std::fs::write(&a.cert, "not a certificate\n").unwrap();
    assert!(!edge.reload(&yaml), "reload refused");
    // The log is written by a background thread: the line may follow the metric.
    eventually(Duration::from_secs(10), "the refusal logged", || {
        edge.log().contains("reload refused").then_some(())
    });
    curl(tls_port, "a.test", &ca2.files.cert, "--http2").unwrap();
}

#[test]
fn tls_to_the_origin_is_verified_against_a_custom_ca() {
    let dir = Scratch::new("origin-tls");
    let ca = Ca::new(&dir.0, "ca");
    let (o, d) = (ca.leaf("origin.test", "o"), ca.leaf("default.test", "d"));
    let backend = echo_host();
    // The TLS origin is another edge with a TLS listener.
    let tls_port = free_port();
    let sites = site_with_cert("origin.test", &o) + "  - hosts: [\"*\"]\n    origin: origin\n";
    let _tls_origin = start_tls_edge("tls-origin", tls_port, &d, &sites, backend.addr);
    let front = |tls: String| {
        Edge::with_pool(&format!(
            "servers: [\"127.0.0.1:{tls_port}\"], tls: true, {tls}"
        ))
        .node_id("front")
        .sites("  - { hosts: [\"*\"], origin: origin }\n")
        .start()
    };
    let trusted = front(format!(
        "sni: origin.test, host_header: origin.test, ca_file: \"{}\"",
        ca.files.cert.display()
    ));
    let r = trusted.get("/x", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "page for origin.test");
    // The system roots do not know the test CA.
    let untrusted = front("sni: origin.test, host_header: origin.test".to_string());
    assert_eq!(untrusted.get("/x", &[]).status, 502);
    // A name the certificate does not cover.
    let wrong_name = front(format!(
        "sni: wrong.test, host_header: origin.test, ca_file: \"{}\"",
        ca.files.cert.display()
    ));
    assert_eq!(wrong_name.get("/x", &[]).status, 502);
}

/// A sliced object over HTTP/2: the client's range is answered from the slices its subrequests
/// fetched, as over HTTP/1.
#[test]
fn a_sliced_object_answers_ranges_over_http2() {
    use edge_tests::origin::pattern;

    let dir = Scratch::new("tls-slices");
    let ca = Ca::new(&dir.0, "ca");
    let leaf = ca.leaf("a.test", "a");
    let origin =
        Origin::start(|r| Reply::ranged(r, 300_000, 0, &[("cache-control", "max-age=60")]));
    let tls_port = free_port();
    let sites = format!(
        "{}    rules:\n      - match: {{ path_prefix: /v/ }}\n        slice: 64KiB\n",
        site_with_cert("a.test", &leaf)
    );
    let _edge = start_tls_edge("edge-tls", tls_port, &leaf, &sites, origin.addr);
    let out = dir.0.join("body");
    let run = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--http2", "--cacert"])
        .arg(&ca.files.cert)
        .arg("--resolve")
        .arg(format!("a.test:{tls_port}:127.0.0.1"))
        .args(["-H", "Range: bytes=100000-100099", "-o"])
        .arg(&out)
        .args(["-w", "%{http_code} %{http_version}"])
        .arg(format!("https://a.test:{tls_port}/v/movie.mp4"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "206 2",
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(std::fs::read(&out).unwrap(), pattern(100_000..100_100));
    assert_eq!(
        origin
            .requests()
            .iter()
            .filter_map(|r| r.header("range").map(str::to_string))
            .collect::<Vec<_>>(),
        ["bytes=65536-131071"]
    );
}
