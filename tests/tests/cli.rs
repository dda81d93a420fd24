//! `edge --check` and start-up with a bad configuration.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed set-up is a failed test

use std::process::Command;

use edge_tests::edge::{edge_bin, Scratch};

const GOOD: &str = "node: { id: e1 }\nlisten: [{ addr: \"127.0.0.1:18080\" }]\nadmin: { addr: \"127.0.0.1:19080\" }\norigins:\n  o: { servers: [\"127.0.0.1:1\"] }\nsites:\n  - hosts: [\"*\"]\n    origin: o\n";

fn run(yaml: &str, check: bool) -> (i32, String, String) {
    run_with(yaml, if check { &["--check"] } else { &[] })
}

fn run_with(yaml: &str, args: &[&str]) -> (i32, String, String) {
    let dir = Scratch::new("cli");
    let path = dir.0.join("edge.yaml");
    std::fs::write(&path, yaml).unwrap();
    let mut cmd = Command::new(edge_bin());
    cmd.arg("--config").arg(&path).args(args);
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_accepts_a_good_file() {
    let (code, out, _) = run(GOOD, true);
    assert_eq!(code, 0);
    assert!(out.contains("ok"));
}

#[test]
fn broken_yaml_is_rejected_with_its_line() {
    let broken = GOOD.replace("    origin: o\n", "    origin: [o\n");
    let (code, _, err) = run(&broken, true);
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("edge.yaml:8") || err.contains("edge.yaml:9"),
        "names the file and line: {err}"
    );
}

#[test]
fn invalid_values_are_all_reported_with_line_and_field() {
    let bad = GOOD
        .replace("127.0.0.1:19080", "nowhere")
        .replace("origin: o", "origin: missing");
    let (code, _, err) = run(&bad, true);
    assert_eq!(code, 64);
    assert!(err.contains("edge.yaml:3: admin.addr:"), "{err}");
    assert!(
        err.contains("edge.yaml:8: sites[0].origin: no origin named `missing`"),
        "{err}"
    );
}

#[test]
fn every_key_and_type_error_is_reported_at_once() {
    let bad = GOOD
        .replace(
            "listen: [{ addr: \"127.0.0.1:18080\" }]",
            "listen: 127.0.0.1:18080",
        )
        .replace("node: { id: e1 }", "node: { id: e1, zone: west }")
        .replace(
            "    origin: o\n",
            "    origin: o\n    rules: [{ cache: maybe }]\n",
        )
        .replace("127.0.0.1:19080", "nowhere");
    let (code, _, err) = run(&bad, true);
    assert_eq!(code, 64, "{err}");
    for line in [
        "edge.yaml:1: node.zone: unknown field `zone`, expected `id`",
        "edge.yaml:2: listen: expected a list, got \"127.0.0.1:18080\"",
        "edge.yaml:3: admin.addr:",
        "edge.yaml:9: sites[0].rules[0].cache: expected true or false, got \"maybe\"",
    ] {
        assert!(err.contains(line), "missing `{line}` in:\n{err}");
    }
}

#[test]
fn a_bad_config_refuses_to_start() {
    let (code, _, err) = run(&GOOD.replace("id: e1", "id: \"\""), false);
    assert_eq!(code, 64);
    assert!(err.contains("node.id"), "{err}");
    let (code, _, err) = run("this is: [not, valid", false);
    assert_eq!(code, 64, "{err}");
    let dir = Scratch::new("missing");
    let out = Command::new(edge_bin())
        .arg("--config")
        .arg(dir.0.join("absent.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

#[test]
fn preflight_loads_the_files_the_configuration_names() {
    let dir = Scratch::new("cli-files");
    let missing = dir.0.join("missing.pem");
    let with_cert = GOOD.replace(
        "    origin: o\n",
        &format!(
            "    origin: o\n    tls: {{ cert: \"{}\", key: \"{}\" }}\n",
            missing.display(),
            missing.display()
        ),
    );
    // --check looks at the file alone (the reference file names paths of a production host).
    assert_eq!(run(&with_cert, true).0, 0);
    let (code, _, err) = run_with(&with_cert, &["--preflight"]);
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("sites[0]: TLS") && err.contains("missing.pem"),
        "{err}"
    );
    // Host scopes are for purge-api callers; on the admin listener they would be ignored.
    let tokens = dir.0.join("admin-token");
    std::fs::write(&tokens, "secret static.example.com\n").unwrap();
    let scoped = GOOD.replace(
        "admin: { addr: \"127.0.0.1:19080\" }",
        &format!(
            "admin: {{ addr: \"127.0.0.1:19080\", token_file: \"{}\" }}",
            tokens.display()
        ),
    );
    let (code, _, err) = run_with(&scoped, &["--preflight"]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("cannot be scoped to hosts"), "{err}");
    let unresolvable = GOOD.replace("\"127.0.0.1:1\"", "\"no-such-host.invalid:80\"");
    let (code, _, err) = run_with(&unresolvable, &["--preflight"]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("origin `o`"), "{err}");
}

#[test]
fn preflight_accepts_a_good_file() {
    let (code, out, err) = run_with(GOOD, &["--preflight"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ok"));
}

#[test]
fn sign_url_prints_a_signed_url_or_refuses_bad_input_with_64() {
    let dir = Scratch::new("sign-url");
    let keys = dir.0.join("keys");
    std::fs::write(&keys, "k\n").unwrap();
    let sign = |args: &[&str]| {
        let out = Command::new(edge_bin())
            .arg("sign-url")
            .arg("--key-file")
            .arg(&keys)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, _) = sign(&["https://static.example.com/a.zip?v=1"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("https://static.example.com/a.zip?v=1&exp="),
        "{out}"
    );
    assert!(
        out.trim_end()
            .rsplit_once("&sig=")
            .is_some_and(|(_, s)| s.len() == 43),
        "{out}"
    );
    let (code, _, err) = sign(&["--expires", "soon", "/a.zip"]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("--expires"), "{err}");
    let (code, _, err) = sign(&["not a url"]);
    assert_eq!(code, 64, "{err}");
    std::fs::write(&keys, "\n").unwrap();
    let (code, _, err) = sign(&["/a.zip"]);
    assert_eq!((code, err.contains("no key")), (64, true), "{err}");
}

#[test]
fn relative_paths_are_read_from_the_config_files_folder() {
    let dir = Scratch::new("relative");
    std::fs::create_dir_all(dir.0.join("secrets")).unwrap();
    std::fs::write(dir.0.join("secrets/admin-token"), "t\n").unwrap();
    std::fs::write(dir.0.join("404.html"), "gone").unwrap();
    let yaml = GOOD
        .replace(
            "admin: { addr: \"127.0.0.1:19080\" }",
            "admin: { addr: \"127.0.0.1:19080\", token_file: secrets/admin-token }",
        )
        .replace(
            "    origin: o\n",
            "    origin: o\n    error_pages: { \"404\": 404.html }\n",
        );
    let path = dir.0.join("edge.yaml");
    std::fs::write(&path, yaml).unwrap();
    // Started from elsewhere, the file's own folder still anchors its paths.
    let out = Command::new(edge_bin())
        .current_dir("/")
        .arg("--config")
        .arg(&path)
        .arg("--preflight")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
