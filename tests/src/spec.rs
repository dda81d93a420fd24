//! The configuration of a test edge, built field by field: one place writes the harness's YAML.
//!
//! ```ignore
//! let edge = Edge::builder(origin.addr)
//!     .rules("- { match: { path_prefix: /a/ }, ttl: 1h }")
//!     .cache(DiskCache::at(&dir.0).disk("64MiB"))
//!     .start();
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::edge::{admin_token_file, Edge};
use crate::pki::CertFiles;

/// The harness's cache: memory only.
pub const DEFAULT_CACHE: &str =
    "{ memory: { max_size: 64MiB, max_object_size: 4MiB }, lock_timeout: 5s }";

/// A `sites:` block of one catch-all site on the pool `origin` with these rules (YAML list
/// items, one per line).
pub fn site(rules: &str) -> String {
    let rules = if rules.trim().is_empty() {
        "    rules: []\n".to_string()
    } else {
        let indented: String = rules.lines().map(|l| format!("      {l}\n")).collect();
        format!("    rules:\n{indented}")
    };
    format!("  - hosts: [\"*\"]\n    origin: origin\n{rules}")
}

/// A cache with a disk tier: the `cache:` mapping of a test edge that keeps objects on disk.
#[derive(Debug, Clone)]
pub struct DiskCache {
    dir: PathBuf,
    memory: String,
    memory_object: String,
    disk: String,
    disk_object: String,
    lock_timeout: String,
    /// Extra `cache.disk` keys (flow YAML, each with its leading `, `).
    disk_extra: String,
}

impl DiskCache {
    /// A disk tier at `dir` (64 MiB, objects up to 16 MiB) under a 16 MiB memory tier (objects
    /// up to 1 MiB).
    pub fn at(dir: &Path) -> Self {
        DiskCache {
            dir: dir.to_owned(),
            memory: "16MiB".into(),
            memory_object: "1MiB".into(),
            disk: "64MiB".into(),
            disk_object: "16MiB".into(),
            lock_timeout: "5s".into(),
            disk_extra: String::new(),
        }
    }

    /// How long concurrent misses wait for one fetch (`cache.lock_timeout`; the harness's is
    /// 5 s, the edge's own default 10 s).
    pub fn lock_timeout(mut self, d: &str) -> Self {
        self.lock_timeout = d.into();
        self
    }

    /// The memory tier's size.
    pub fn memory(mut self, size: &str) -> Self {
        self.memory = size.into();
        self
    }

    /// The largest object the memory tier takes.
    pub fn memory_object(mut self, size: &str) -> Self {
        self.memory_object = size.into();
        self
    }

    /// The disk tier's size.
    pub fn disk(mut self, size: &str) -> Self {
        self.disk = size.into();
        self
    }

    /// The largest object the disk tier takes.
    pub fn disk_object(mut self, size: &str) -> Self {
        self.disk_object = size.into();
        self
    }

    /// How long one pass of the background scrub takes (`cache.disk.scrub_interval`).
    pub fn scrub_interval(mut self, d: &str) -> Self {
        self.disk_extra.push_str(&format!(", scrub_interval: {d}"));
        self
    }

    /// From which request on an object is written to disk (`cache.disk.admission.min_uses`).
    pub fn min_uses(mut self, n: u32) -> Self {
        self.disk_extra
            .push_str(&format!(", admission: {{ min_uses: {n} }}"));
        self
    }

    /// The `cache:` mapping (flow YAML).
    pub fn yaml(&self) -> String {
        format!(
            "{{ memory: {{ max_size: {}, max_object_size: {} }}, \
             disk: {{ path: \"{}\", max_size: {}, max_object_size: {}{} }}, lock_timeout: {} }}",
            self.memory,
            self.memory_object,
            self.dir.display(),
            self.disk,
            self.disk_object,
            self.disk_extra,
            self.lock_timeout
        )
    }
}

impl From<DiskCache> for String {
    fn from(d: DiskCache) -> String {
        d.yaml()
    }
}

/// Everything a test edge's configuration file says; [`start`](Self::start) writes it for two
/// free ports and starts the binary on it.
#[derive(Debug, Clone)]
pub struct EdgeSpec {
    node_id: String,
    pool: String,
    sites: String,
    cache: String,
    extra: String,
    runtime: String,
    shutdown_timeout: String,
    access_log: String,
    tls: Option<(u16, CertFiles)>,
}

impl EdgeSpec {
    /// A node `edge-test` with one pool (`origin`: the server at `origin`, 1 s to connect,
    /// 5 s to answer), a catch-all site without rules, a memory cache, a 1 s drain, no access
    /// log.
    pub fn new(origin: SocketAddr) -> Self {
        EdgeSpec {
            node_id: "edge-test".into(),
            pool: format!("servers: [\"{origin}\"], connect_timeout: 1s, read_timeout: 5s"),
            sites: site(""),
            cache: DEFAULT_CACHE.into(),
            extra: String::new(),
            runtime: "threads: 2".into(),
            shutdown_timeout: "1s".into(),
            access_log: "false".into(),
            tls: None,
        }
    }

    /// The node id (the cache name in `Cache-Status`).
    pub fn node_id(mut self, id: &str) -> Self {
        self.node_id = id.into();
        self
    }

    /// The keys of the pool `origin` (flow YAML without braces: `servers: ["…"],
    /// read_timeout: 1s`) instead of the one server given to [`new`](Self::new).
    pub fn pool(mut self, keys: &str) -> Self {
        self.pool = keys.into();
        self
    }

    /// The catch-all site's rules (YAML list items, one per line).
    pub fn rules(mut self, rules: &str) -> Self {
        self.sites = site(rules);
        self
    }

    /// A whole `sites:` block instead of the catch-all site.
    pub fn sites(mut self, sites: &str) -> Self {
        self.sites = sites.into();
        self
    }

    /// The `cache:` mapping: flow YAML, or a [`DiskCache`].
    pub fn cache(mut self, cache: impl Into<String>) -> Self {
        self.cache = cache.into();
        self
    }

    /// More top-level YAML (`limits:`, `compression:`, …), appended as written.
    pub fn extra(mut self, yaml: &str) -> Self {
        self.extra.push_str(yaml);
        self
    }

    /// The leading keys of `runtime:` (the harness's is `threads: 2`); a 0 s grace period and
    /// the drain's timeout follow.
    pub fn runtime(mut self, keys: &str) -> Self {
        self.runtime = keys.into();
        self
    }

    /// How long a stop may take to drain (`runtime.shutdown_timeout`).
    pub fn shutdown_timeout(mut self, d: &str) -> Self {
        self.shutdown_timeout = d.into();
        self
    }

    /// `log.access` (`true`, `false`, or `{ output: … }`).
    pub fn access_log(mut self, value: &str) -> Self {
        self.access_log = value.into();
        self
    }

    /// A second listener on `port`, speaking TLS with `cert` (HTTP/2 by ALPN).
    pub fn tls(mut self, port: u16, cert: &CertFiles) -> Self {
        self.tls = Some((port, cert.clone()));
        self
    }

    /// The configuration file for a node listening on `port`, its admin listener on `admin`.
    pub fn yaml(&self, port: u16, admin: u16) -> String {
        let token = admin_token_file().display().to_string();
        let listen = match &self.tls {
            None => format!("listen: [{{ addr: \"127.0.0.1:{port}\" }}]\n"),
            Some((tls_port, cert)) => format!(
                "listen:\n  - addr: \"127.0.0.1:{port}\"\n  - addr: \"127.0.0.1:{tls_port}\"\n    tls: {{ cert: \"{}\", key: \"{}\" }}\n",
                cert.cert.display(),
                cert.key.display()
            ),
        };
        format!(
            "node: {{ id: {} }}\n\
             {listen}\
             admin: {{ addr: \"127.0.0.1:{admin}\", token_file: \"{token}\" }}\n\
             cache: {}\n\
             runtime: {{ {}, grace_period: 0s, shutdown_timeout: {} }}\n\
             log: {{ format: text, level: warn, access: {} }}\n\
             origins:\n  origin: {{ {} }}\n\
             sites:\n{}{}",
            self.node_id,
            self.cache,
            self.runtime,
            self.shutdown_timeout,
            self.access_log,
            self.pool,
            self.sites,
            self.extra
        )
    }

    /// Starts the edge on two free ports (new ones if another process takes one meanwhile).
    pub fn start(self) -> Edge {
        let id = self.node_id.clone();
        Edge::start_config(&id, move |port, admin| self.yaml(port, admin))
    }
}
