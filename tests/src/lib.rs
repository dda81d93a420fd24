//! The integration-test harness: a programmable origin that counts what it is asked, launchers
//! for the real `edge` and `purge-api` binaries on ephemeral ports, and a raw HTTP/1.1 client (raw so tests can send
//! exactly the bytes they mean, malformed ones included).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: a failed set-up is a failed test

pub mod cache_status;
pub mod client;
pub mod edge;
pub mod metrics;
pub mod netcut;
pub mod origin;
pub mod pki;
pub mod postgres;
pub mod purge_api;
pub mod spec;

use std::time::{Duration, Instant};

/// Every file under `dir`, recursively (none if it does not exist).
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The summed sizes of `paths` (a file gone meanwhile counts 0).
pub fn total_len(paths: &[std::path::PathBuf]) -> u64 {
    paths
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum()
}

/// The disk tier's temp files (bodies still being written) under `dir`.
pub fn parts_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "part"))
        .collect()
}

/// The number in the environment variable `name`, or `default` when it is unset or not a
/// number (the load programs' settings).
pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
pub fn eventually<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A free loopback port: bound, read and released. The tiny window before the edge binds it is
/// the price of starting a separate process on it.
pub fn free_port() -> u16 {
    // The kernel may hand the port just released to the very next bind: two calls in a row
    // (an edge's public and admin ports) then named the same port, which the edge rightly
    // refuses. No port is handed out twice by one test process.
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut given = GIVEN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Starts `bin --config <config>` with stdout and stderr appended to `log` (so a restarted
/// process's log follows the first run's).
pub fn spawn_logged(
    bin: &std::path::Path,
    config: &std::path::Path,
    log: &std::path::Path,
) -> std::process::Child {
    spawn_logged_with(bin, config, log, &[], &[])
}

/// As [`spawn_logged`], with more arguments after `--config <config>` and environment variables.
pub fn spawn_logged_with(
    bin: &std::path::Path,
    config: &std::path::Path,
    log: &std::path::Path,
    args: &[&str],
    env: &[(&str, &std::ffi::OsStr)],
) -> std::process::Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    std::process::Command::new(bin)
        .arg("--config")
        .arg(config)
        .args(args)
        .envs(env.iter().copied())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap()
}
