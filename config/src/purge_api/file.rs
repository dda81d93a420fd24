//! The serde shape of the purge-api YAML file.
#![allow(missing_docs)] // Field for field the YAML; the README's configuration reference documents each key.

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::units::{ByteSize, HumanDuration};

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeApiFile {
    pub listen: Spanned<String>,
    /// `token_file` is accepted too: the edge's admin key has the singular.
    #[serde(alias = "token_file")]
    pub tokens_file: Spanned<String>,
    /// The embedded log's file; absent when `postgres` holds the log.
    pub store: Option<Spanned<String>>,
    /// The log in PostgreSQL, shared by several replicas.
    pub postgres: Option<Spanned<PostgresFile>>,
    pub nodes: Spanned<NodesFile>,
    #[serde(default)]
    pub limits: LimitsFile,
    #[serde(default)]
    pub delivery: DeliveryFile,
    #[serde(default)]
    pub compat: CompatFile,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresFile {
    /// Connection string (`postgres://user@host/db` or `host=... user=...`).
    pub url: Option<Spanned<String>>,
    /// A file holding the connection string (it carries the password).
    pub url_file: Option<Spanned<String>>,
    /// PEM CA certificates that verify the server's TLS certificate (default: the system's).
    pub ca_file: Option<Spanned<String>>,
    /// How long a replica's claim on delivering to one node lasts without renewal.
    pub lease: Option<Spanned<HumanDuration>>,
    /// How often a replica reads the log head, the leases and the nodes' positions.
    pub poll: Option<Spanned<HumanDuration>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodesFile {
    #[serde(default, rename = "static")]
    pub static_nodes: Vec<Spanned<String>>,
    #[serde(default)]
    pub dns: Vec<Spanned<DnsFile>>,
    /// `tokens_file` is accepted too.
    #[serde(alias = "tokens_file")]
    pub token_file: Spanned<String>,
    /// How often DNS names are resolved again.
    pub refresh: Option<Spanned<HumanDuration>>,
    /// Nodes that apply every purge before the others are sent it.
    pub shields: Option<Spanned<ShieldsFile>>,
    /// Longest the other nodes wait for a shield that has not applied a purge.
    pub shield_wait: Option<Spanned<HumanDuration>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShieldsFile {
    #[serde(default, rename = "static")]
    pub static_nodes: Vec<Spanned<String>>,
    #[serde(default)]
    pub dns: Vec<Spanned<DnsFile>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompatFile {
    /// Client networks whose `PURGE <url>` requests are taken without a token.
    #[serde(default)]
    pub varnish_purge_from: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsFile {
    pub name: String,
    pub port: u16,
    /// `http` (default); the admin listener has no TLS.
    pub scheme: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    pub max_items: Option<Spanned<usize>>,
    pub max_body: Option<Spanned<ByteSize>>,
    pub rate_per_second: Option<Spanned<f64>>,
    pub burst: Option<Spanned<u32>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryFile {
    pub timeout: Option<Spanned<HumanDuration>>,
    pub poll: Option<Spanned<HumanDuration>>,
    pub retry_min: Option<Spanned<HumanDuration>>,
    pub retry_max: Option<Spanned<HumanDuration>>,
    pub retain: Option<Spanned<u64>>,
}
