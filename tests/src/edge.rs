//! Starts the real `edge` binary on ephemeral loopback ports and waits until it is healthy.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::{client, eventually, free_port};

/// The `edge` binary cargo built beside this test (`EDGE_BIN` overrides).
pub fn edge_bin() -> PathBuf {
    if let Ok(p) = std::env::var("EDGE_BIN") {
        return PathBuf::from(p);
    }
    // Test executables live in target/<profile>/deps; the binaries one level up.
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let bin = dir.join("edge");
    assert!(
        bin.exists(),
        "no edge binary at {} (run `cargo build --workspace --bins` first, as scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// A scratch directory under the system temp dir, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// A new empty directory.
    pub fn new(tag: &str) -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "edge-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Sites block for a catch-all site on origin `origin` with these rules (YAML list items).
pub fn site(rules: &str) -> String {
    let rules = if rules.trim().is_empty() {
        "    rules: []\n".to_string()
    } else {
        let indented: String = rules.lines().map(|l| format!("      {l}\n")).collect();
        format!("    rules:\n{indented}")
    };
    format!("  - hosts: [\"*\"]\n    origin: origin\n{rules}")
}

/// A `cache:` mapping (flow YAML) with `memory` bytes in memory and a disk tier of `disk` bytes
/// at `dir`; objects up to 1 MiB in memory and 16 MiB on disk.
pub fn disk_cache(dir: &std::path::Path, memory: &str, disk: &str) -> String {
    format!(
        "{{ memory: {{ max_size: {memory}, max_object_size: 1MiB }}, \
         disk: {{ path: \"{}\", max_size: {disk}, max_object_size: 16MiB }}, lock_timeout: 5s }}",
        dir.display()
    )
}

/// What Pingora logs when a listening port is taken.
const PORT_IN_USE: &str = "is in use";

/// The harness's usual head of a configuration: node id, a plain listener on `port`, the admin
/// listener on `admin` with the harness token, a memory cache, and quiet logs. Origins and
/// sites follow.
pub fn node_yaml(node_id: &str, port: u16, admin: u16) -> String {
    head_yaml(node_id, port, admin, DEFAULT_CACHE)
}

/// How long the harness's edges may take to drain (`runtime.shutdown_timeout`).
const SHUTDOWN_TIMEOUT: &str = "1s";

/// [`node_yaml`] with a drain that may take `shutdown_timeout`.
fn patient_node_yaml(node_id: &str, port: u16, admin: u16, shutdown_timeout: &str) -> String {
    runtime_yaml(node_id, port, admin, DEFAULT_CACHE, shutdown_timeout)
}

/// [`head_yaml`] with a second listener, on `tls_port`, speaking TLS with `cert` (HTTP/2 by
/// ALPN).
pub fn tls_head_yaml(
    node_id: &str,
    port: u16,
    admin: u16,
    cache: &str,
    tls_port: u16,
    cert: &crate::pki::CertFiles,
) -> String {
    head_yaml(node_id, port, admin, cache).replace(
        &format!("listen: [{{ addr: \"127.0.0.1:{port}\" }}]"),
        &format!(
            "listen:\n  - addr: \"127.0.0.1:{port}\"\n  - addr: \"127.0.0.1:{tls_port}\"\n    tls: {{ cert: \"{}\", key: \"{}\" }}",
            cert.cert.display(),
            cert.key.display()
        ),
    )
}

/// [`node_yaml`] with this `cache:` mapping (flow YAML) instead of the harness's memory cache.
pub fn head_yaml(node_id: &str, port: u16, admin: u16, cache: &str) -> String {
    runtime_yaml(node_id, port, admin, cache, SHUTDOWN_TIMEOUT)
}

fn runtime_yaml(
    node_id: &str,
    port: u16,
    admin: u16,
    cache: &str,
    shutdown_timeout: &str,
) -> String {
    let token = admin_token_file().display().to_string();
    format!(
        "node: {{ id: {node_id} }}\n\
         listen: [{{ addr: \"127.0.0.1:{port}\" }}]\n\
         admin: {{ addr: \"127.0.0.1:{admin}\", token_file: \"{token}\" }}\n\
         cache: {cache}\n\
         runtime: {{ threads: 2, grace_period: 0s, shutdown_timeout: {shutdown_timeout} }}\n\
         log: {{ format: text, level: warn, access: false }}\n"
    )
}

/// The harness's cache: memory only.
pub const DEFAULT_CACHE: &str =
    "{ memory: { max_size: 64MiB, max_object_size: 4MiB }, lock_timeout: 5s }";

/// The bearer token every harness edge accepts on its admin listener.
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// A file holding [`ADMIN_TOKEN`], written once per test process.
pub fn admin_token_file() -> PathBuf {
    static FILE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    FILE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("edge-test-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("admin-token");
        std::fs::write(&f, format!("{ADMIN_TOKEN}\n")).unwrap();
        f
    })
    .clone()
}

/// A running edge process, killed on drop.
pub struct Edge {
    /// Public listener.
    pub addr: SocketAddr,
    /// Admin listener.
    pub admin: SocketAddr,
    /// Node id (the cache name in Cache-Status).
    pub node_id: String,
    child: Child,
    scratch: Scratch,
}

impl Edge {
    /// An edge in front of `origin` with a catch-all site and these rules.
    pub fn start(origin: SocketAddr, rules: &str) -> Edge {
        Self::start_with(origin, &site(rules), "")
    }

    /// An edge with a custom `sites:` block and extra top-level YAML.
    pub fn start_with(origin: SocketAddr, sites: &str, extra: &str) -> Edge {
        Self::start_full(origin, sites, DEFAULT_CACHE, extra)
    }

    /// An edge with a disk tier at `dir` and this `cache:` mapping (flow YAML, which must name
    /// `dir` as its disk path); the directory outlives the process, for restarts.
    pub fn start_cache(origin: SocketAddr, rules: &str, cache: &str) -> Edge {
        Self::start_full(origin, &site(rules), cache, "")
    }

    fn start_full(origin: SocketAddr, sites: &str, cache: &str, extra: &str) -> Edge {
        // A port picked by `free_port` can be taken by another test's process before this one
        // binds it: then try again on new ports, as often as that plausibly happens.
        let mut attempts = 3;
        loop {
            let port = free_port();
            let admin = free_port();
            let yaml = Self::harness_yaml(origin, sites, cache, extra, port, admin);
            match Self::try_start_yaml(&yaml, port, admin, "edge-test".to_string()) {
                Ok(edge) => return edge,
                Err(log) if attempts > 1 && log.contains(PORT_IN_USE) => attempts -= 1,
                Err(log) => panic!("{log}"),
            }
        }
    }

    fn harness_yaml(
        origin: SocketAddr,
        sites: &str,
        cache: &str,
        extra: &str,
        port: u16,
        admin: u16,
    ) -> String {
        format!(
            "{}origins:\n  origin: {{ servers: [\"{origin}\"], connect_timeout: 1s, read_timeout: 5s }}\n\
             sites:\n{sites}{extra}",
            head_yaml("edge-test", port, admin, cache)
        )
    }

    /// Starts an edge on the YAML `yaml(port, admin)` makes for two free ports, trying new
    /// ports when one is taken meanwhile. [`node_yaml`] gives the harness's usual head.
    pub fn start_config(node_id: &str, yaml: impl Fn(u16, u16) -> String) -> Edge {
        let mut attempts = 3;
        loop {
            let (port, admin) = (free_port(), free_port());
            match Self::try_start_yaml(&yaml(port, admin), port, admin, node_id.to_string()) {
                Ok(edge) => return edge,
                Err(log) if attempts > 1 && log.contains(PORT_IN_USE) => attempts -= 1,
                Err(log) => panic!("{log}"),
            }
        }
    }

    /// An edge `node_id` whose one origin pool, `origin`, has these keys (flow YAML without
    /// braces: `servers: ["…"], read_timeout: 1s`) and a catch-all site with these rules.
    pub fn start_pool(node_id: &str, origin: &str, rules: &str) -> Edge {
        Self::start_patient(node_id, origin, rules, SHUTDOWN_TIMEOUT)
    }

    /// [`start_pool`](Self::start_pool) with a drain that may take `shutdown_timeout` (the
    /// harness's usual is 1 s), for tests of what a stop lets finish.
    pub fn start_patient(node_id: &str, origin: &str, rules: &str, shutdown_timeout: &str) -> Edge {
        Self::start_config(node_id, |port, admin| {
            format!(
                "{}origins:\n  origin: {{ {origin} }}\nsites:\n{}",
                patient_node_yaml(node_id, port, admin, shutdown_timeout),
                site(rules)
            )
        })
    }

    /// The configuration file the process runs on.
    pub fn config_path(&self) -> PathBuf {
        self.scratch.0.join("edge.yaml")
    }

    /// The node's scratch directory (removed when the edge is dropped).
    pub fn dir(&self) -> &std::path::Path {
        &self.scratch.0
    }

    /// Replaces the configuration file with `yaml` and sends SIGHUP; waits until the reload
    /// was applied or refused, and returns whether it was applied.
    pub fn reload(&self, yaml: &str) -> bool {
        let ok = self.metric("edge_config_reloads_total{result=\"ok\"}");
        let err = self.metric("edge_config_reloads_total{result=\"error\"}");
        std::fs::write(self.config_path(), yaml).unwrap();
        let sent = Command::new("kill")
            .arg("-HUP")
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(sent.success(), "kill -HUP failed");
        eventually(Duration::from_secs(20), "the reload to finish", || {
            if self.metric("edge_config_reloads_total{result=\"ok\"}") > ok {
                Some(true)
            } else if self.metric("edge_config_reloads_total{result=\"error\"}") > err {
                Some(false)
            } else {
                None
            }
        })
    }

    /// Starts the binary on a full YAML text, listening on `port` with admin on `admin`.
    pub fn start_yaml(yaml: &str, port: u16, admin: u16, node_id: String) -> Edge {
        Self::try_start_yaml(yaml, port, admin, node_id).unwrap_or_else(|log| panic!("{log}"))
    }

    /// As [`Edge::start_yaml`], or why the process exited instead of becoming healthy.
    pub fn try_start_yaml(
        yaml: &str,
        port: u16,
        admin: u16,
        node_id: String,
    ) -> Result<Edge, String> {
        let scratch = Scratch::new("edge");
        let config = scratch.0.join("edge.yaml");
        std::fs::write(&config, yaml).unwrap();
        let child = Self::spawn(&scratch);
        let mut edge = Edge {
            addr: ([127, 0, 0, 1], port).into(),
            admin: ([127, 0, 0, 1], admin).into(),
            node_id,
            child,
            scratch,
        };
        edge.wait_healthy()?;
        Ok(edge)
    }

    fn spawn(scratch: &Scratch) -> Child {
        crate::spawn_logged(
            &edge_bin(),
            &scratch.0.join("edge.yaml"),
            &scratch.0.join("edge.log"),
        )
    }

    /// Starts the process again on the same configuration and ports, after it was stopped
    /// with [`Edge::signal_and_wait`].
    pub fn restart(&mut self) {
        self.child = Self::spawn(&self.scratch);
        self.wait_healthy().unwrap_or_else(|log| panic!("{log}"));
    }

    /// A graceful upgrade: starts a second process with `--upgrade` (and `env`), sends the
    /// running one SIGQUIT so it hands over its listening sockets, waits for it to exit
    /// (returned) and for the new one to be healthy.
    pub fn upgrade(&mut self, env: &[(&str, &std::ffi::OsStr)]) -> std::process::ExitStatus {
        let sock = std::env::temp_dir().join(format!("edge-{}-upgrade.sock", self.node_id));
        let _ = std::fs::remove_file(&sock);
        let new = crate::spawn_logged_with(
            &edge_bin(),
            &self.config_path(),
            &self.scratch.0.join("edge.log"),
            &["--upgrade"],
            env,
        );
        // The new process listens on the upgrade socket for the old one's listeners.
        eventually(Duration::from_secs(10), "the upgrade socket", || {
            sock.exists().then_some(())
        });
        let old = std::mem::replace(&mut self.child, new);
        let mut old = old;
        let sent = Command::new("kill")
            .arg("-QUIT")
            .arg(old.id().to_string())
            .status()
            .unwrap();
        assert!(sent.success(), "kill -QUIT failed");
        let status = old.wait().unwrap();
        self.wait_healthy().unwrap_or_else(|log| panic!("{log}"));
        status
    }

    /// `POST /purge` on the admin listener with the harness token.
    pub fn purge(&self, json: &str) -> client::Response {
        let auth = format!("Bearer {ADMIN_TOKEN}");
        client::request(
            self.admin,
            "POST",
            "admin",
            "/purge",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            json.as_bytes(),
        )
    }

    /// `GET /readyz` status.
    pub fn ready_status(&self) -> u16 {
        self.readyz().status
    }

    fn wait_healthy(&mut self) -> Result<(), String> {
        let admin = self.admin;
        let addr = self.addr;
        eventually(
            Duration::from_secs(30),
            "the edge to become healthy",
            || {
                if let Ok(Some(status)) = self.child.try_wait() {
                    return Some(Err(format!("edge exited with {status}:\n{}", self.log())));
                }
                // Pingora retries a port that is in use; another process holds it, so what
                // answers there is not this edge.
                let log = self.log();
                if log.contains(PORT_IN_USE) {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Some(Err(format!("edge could not bind its port:\n{log}")));
                }
                let healthy = client::raw(
                    admin,
                    b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                    false,
                )
                .is_ok_and(|r| r.status == 200);
                let listening = std::net::TcpStream::connect(addr).is_ok();
                (healthy && listening).then_some(Ok(()))
            },
        )
    }

    /// The process's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.scratch.0.join("edge.log")).unwrap_or_default()
    }

    /// `/metrics` text.
    pub fn metrics(&self) -> String {
        client::get(self.admin, "admin", "/metrics", &[]).text()
    }

    /// The value of one metric line (`name{labels}`), 0 when absent.
    pub fn metric(&self, series: &str) -> f64 {
        self.metrics()
            .lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    }

    /// Waits until the disk tier holds at least `n` objects: their commits are durable.
    pub fn wait_disk_objects(&self, n: usize, timeout: Duration) {
        eventually(timeout, &format!("{n} objects on disk"), || {
            (self.metric("edge_cache_tier_objects{tier=\"disk\"}") >= n as f64).then_some(())
        });
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (`TERM`, `KILL`, ...) and waits for the process to exit.
    pub fn signal_and_wait(&mut self, signal: &str) -> std::process::ExitStatus {
        self.signal(signal);
        self.wait()
    }

    /// Sends a signal (`TERM`, `QUIT`, ...).
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{signal} failed");
    }

    /// Waits for the process to exit.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.child.wait().unwrap()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// `GET /readyz`: its status and body.
    pub fn readyz(&self) -> client::Response {
        client::get(self.admin, "admin", "/readyz", &[])
    }

    /// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM` for the peak).
    pub fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// GET through the edge.
    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> client::Response {
        client::get(self.addr, "example.com", path, headers)
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
