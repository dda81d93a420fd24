//! purge-api's configuration: runtime types, loading and validation.

pub mod file;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use validate::validate;

use crate::ConfigError;

/// A validated purge-api configuration.
#[derive(Debug, Clone)]
pub struct PurgeApiConfig {
    /// Where the API listens.
    pub listen: SocketAddr,
    /// Bearer tokens accepted from callers, one per line.
    pub tokens_file: PathBuf,
    /// Where the durable purge log lives.
    pub store: Store,
    /// The edge nodes to deliver to.
    pub nodes: Nodes,
    /// Request limits.
    pub limits: Limits,
    /// Delivery tuning.
    pub delivery: Delivery,
    /// The purge entry points of other CDNs.
    pub compat: Compat,
}

/// What the entry points borrowed from other CDNs and caches accept.
#[derive(Debug, Clone, Default)]
pub struct Compat {
    /// Client networks whose Varnish-style `PURGE <url>` is taken without a token; empty: the
    /// method is refused.
    pub varnish_purge_from: Vec<crate::cidr::Cidr>,
}

/// Where the durable purge log lives.
#[derive(Debug, Clone)]
pub enum Store {
    /// An embedded redb file: one purge-api process (the default).
    Embedded(PathBuf),
    /// PostgreSQL, shared by several purge-api replicas.
    Postgres(Postgres),
}

/// The purge log in PostgreSQL.
#[derive(Debug, Clone)]
pub struct Postgres {
    /// Where the connection string comes from.
    pub url: PostgresUrl,
    /// CA certificates for the server's TLS certificate; `None`: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// How long a replica's claim on delivering to one node lasts without renewal.
    pub lease: Duration,
    /// How often a replica reads the log head, the leases and the nodes' positions.
    pub poll: Duration,
}

/// A PostgreSQL connection string, inline or read from a file at start.
#[derive(Debug, Clone)]
pub enum PostgresUrl {
    /// Given in the YAML.
    Inline(String),
    /// Read from this file (first non-empty line).
    File(PathBuf),
}

/// Where the nodes are.
#[derive(Debug, Clone)]
pub struct Nodes {
    /// Admin base URLs (`http://10.0.1.1:9080`).
    pub static_nodes: Vec<String>,
    /// Names resolved to every address they have (a headless Kubernetes service).
    pub dns: Vec<DnsNodes>,
    /// Bearer token sent to the nodes' admin listeners.
    pub token_file: PathBuf,
    /// How often the names are resolved again.
    pub refresh: Duration,
    /// Nodes that apply every purge before any other node is sent it.
    pub shields: NodeList,
    /// Longest the other nodes are held back by a shield that has not applied a purge (one
    /// that has been unreachable this long holds nothing back until it answers again).
    pub shield_wait: Duration,
}

/// Nodes named one by one and by DNS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeList {
    /// Admin base URLs (`http://10.0.2.1:9080`).
    pub static_nodes: Vec<String>,
    /// Names resolved to every address they have.
    pub dns: Vec<DnsNodes>,
}

impl NodeList {
    /// Whether it names no node.
    pub fn is_empty(&self) -> bool {
        self.static_nodes.is_empty() && self.dns.is_empty()
    }
}

/// A DNS name standing for many nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsNodes {
    /// Name to resolve.
    pub name: String,
    /// Admin port on each address.
    pub port: u16,
}

/// What one caller may send.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Targets in one purge.
    pub max_items: usize,
    /// Bytes in one request body.
    pub max_body: u64,
    /// Purges per second per token, sustained.
    pub rate_per_second: f64,
    /// Purges a token may send at once above the rate.
    pub burst: u32,
}

/// How purges reach the nodes.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Per request to a node.
    pub timeout: Duration,
    /// How often an idle node's state is checked (a restart, a lost cursor).
    pub poll: Duration,
    /// First retry delay after a failure; doubles per failure, with jitter.
    pub retry_min: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// Log entries kept: older ones are compacted away, and a node behind them gets a purge-all.
    pub retain: u64,
}

impl PurgeApiConfig {
    /// Parses and validates YAML text (for tests and tools).
    pub fn from_yaml(text: &str) -> Result<PurgeApiConfig, Vec<crate::Problem>> {
        crate::load::read_checked(text, validate)
    }

    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<PurgeApiConfig, ConfigError> {
        crate::load::load_checked(path, |mut file: file::PurgeApiFile| {
            crate::paths::purge_api(&mut file, path.parent().unwrap_or(Path::new("")));
            validate(file)
        })
    }
}
