//! Starts the real `edge` binary on ephemeral loopback ports and waits until it is healthy.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::{client, eventually, free_port};

pub use crate::spec::{site, DiskCache, EdgeSpec, DEFAULT_CACHE};

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

/// What Pingora logs when a listening port is taken.
const PORT_IN_USE: &str = "is in use";

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
    /// A test edge in front of `origin` (see [`EdgeSpec`]), to configure and then
    /// [`start`](EdgeSpec::start).
    pub fn builder(origin: SocketAddr) -> EdgeSpec {
        EdgeSpec::new(origin)
    }

    /// A test edge whose pool `origin` has these keys (flow YAML without braces:
    /// `servers: ["…"], read_timeout: 1s`), to configure and then start.
    pub fn with_pool(keys: &str) -> EdgeSpec {
        EdgeSpec::new(([127, 0, 0, 1], 0).into()).pool(keys)
    }

    /// Starts an edge on the YAML `yaml(port, admin)` makes for two free ports, trying new
    /// ports when one is taken meanwhile. [`EdgeSpec::yaml`] gives the harness's usual file to
    /// start from.
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

    /// Starts the binary on a full YAML text, listening on `port` with admin on `admin`, or
    /// says why the process exited instead of becoming healthy.
    fn try_start_yaml(yaml: &str, port: u16, admin: u16, node_id: String) -> Result<Edge, String> {
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

    /// The sum of the series of `name{labels}` that carry these labels (and maybe others),
    /// 0 when there is none: `edge_cache_requests_total{outcome="hit"}` adds up every site.
    pub fn metric(&self, series: &str) -> f64 {
        crate::metrics::sum(&self.metrics(), series)
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
