//! The serde shape of the edge YAML file. Fields that validation may reject carry their span so
//! the error can name the line.
#![allow(missing_docs)] // Field for field the YAML; the README's configuration reference documents each key.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::units::{ByteSize, HumanDuration};

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeFile {
    pub node: NodeFile,
    pub listen: Spanned<Vec<ListenFile>>,
    pub admin: AdminFile,
    #[serde(default)]
    pub cache: CacheFile,
    pub origins: Spanned<BTreeMap<String, Spanned<OriginFile>>>,
    pub sites: Spanned<Vec<SiteFile>>,
    #[serde(default)]
    pub runtime: RuntimeFile,
    #[serde(default)]
    pub log: LogFile,
    #[serde(default)]
    pub compression: CompressionFile,
    #[serde(default)]
    pub limits: LimitsFile,
    pub client_ip: Option<Spanned<ClientIpFile>>,
}

/// Which proxies in front of the edge are trusted to say who the client is.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientIpFile {
    pub trusted: Vec<Spanned<String>>,
    pub header: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeFile {
    pub id: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenFile {
    pub addr: Spanned<String>,
    pub tls: Option<TlsFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    pub cert: Spanned<String>,
    pub key: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminFile {
    pub addr: Spanned<String>,
    /// `tokens_file` is accepted too: purge-api's key has the plural.
    #[serde(alias = "tokens_file")]
    pub token_file: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheFile {
    pub memory: Option<MemoryFile>,
    pub disk: Option<DiskFile>,
    /// How long concurrent misses for one key wait for the first fetch before going to the origin.
    pub lock_timeout: Option<Spanned<HumanDuration>>,
    /// How long a stale copy may stand in when the origin cannot be reached.
    pub stale_if_unreachable: Option<Spanned<HumanDuration>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryFile {
    pub max_size: Spanned<ByteSize>,
    pub max_object_size: Option<Spanned<ByteSize>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskFile {
    pub path: Spanned<String>,
    pub max_size: Spanned<ByteSize>,
    pub max_object_size: Option<Spanned<ByteSize>>,
    /// Memory for the decoded heads (key and meta) of disk objects read lately.
    pub meta_cache: Option<Spanned<ByteSize>>,
    /// Which objects are written to disk.
    pub admission: Option<Spanned<AdmissionFile>>,
    /// How long one pass of the background scrub over every body takes (`0s`: none).
    pub scrub_interval: Option<Spanned<HumanDuration>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdmissionFile {
    /// An object is written to disk from its N-th request on.
    pub min_uses: Spanned<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginFile {
    pub servers: Spanned<Vec<Spanned<ServerFile>>>,
    #[serde(default)]
    pub tls: bool,
    pub sni: Option<Spanned<String>>,
    /// Verify the origin's certificate (chain and name); on unless set to false.
    pub verify: Option<Spanned<bool>>,
    /// PEM file of CA certificates trusted for this origin instead of the system's.
    pub ca_file: Option<Spanned<String>>,
    /// Host header sent to the origin instead of the client's.
    pub host_header: Option<Spanned<String>>,
    #[serde(default)]
    pub lb: LbFile,
    pub health_check: Option<HealthCheckFile>,
    pub passive_health: Option<PassiveHealthFile>,
    /// Other servers an idempotent request may try after a failed connect.
    pub retries: Option<Spanned<u32>>,
    pub connect_timeout: Option<Spanned<HumanDuration>>,
    pub read_timeout: Option<Spanned<HumanDuration>>,
    pub write_timeout: Option<Spanned<HumanDuration>>,
    /// How long an idle keepalive connection to the origin is kept in the pool.
    pub idle_timeout: Option<Spanned<HumanDuration>>,
}

/// `"host:port"`, or `{ addr: "host:port", weight: 3 }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ServerFile {
    Addr(String),
    Weighted { addr: String, weight: Option<u32> },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PassiveHealthFile {
    /// Consecutive connect failures that mark a server down.
    pub max_fails: Option<Spanned<u32>>,
    /// How long a server marked down is skipped.
    pub fail_timeout: Option<Spanned<HumanDuration>>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LbFile {
    #[default]
    RoundRobin,
    ConsistentHash,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckFile {
    pub path: Spanned<String>,
    pub interval: Option<Spanned<HumanDuration>>,
    /// Consecutive successes that bring a server back.
    pub rise: Option<Spanned<u32>>,
    /// Consecutive failures that take a server out.
    pub fall: Option<Spanned<u32>>,
    /// Check this port of each server instead of the one it serves on.
    pub port: Option<Spanned<u16>>,
    /// Whether the check speaks TLS (default: as the pool does).
    pub tls: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteFile {
    /// The `site` label of its metrics and access-log lines (default: its first host).
    pub name: Option<Spanned<String>>,
    pub hosts: Spanned<Vec<Spanned<String>>>,
    pub origin: Spanned<String>,
    /// Certificate for the site's hosts on TLS listeners, chosen by SNI.
    pub tls: Option<TlsFile>,
    #[serde(default)]
    pub rules: Vec<RuleFile>,
    /// Pages for error statuses: `"404"` or a class, `"5xx"`.
    #[serde(default)]
    pub error_pages: BTreeMap<String, Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    #[serde(rename = "match")]
    pub matcher: Spanned<MatchFile>,
    pub cache: Option<Spanned<bool>>,
    pub ttl: Option<Spanned<HumanDuration>>,
    pub default_ttl: Option<Spanned<HumanDuration>>,
    /// How long a 404 (or 405, 414) may be stored, at most.
    pub negative_ttl: Option<Spanned<HumanDuration>>,
    pub stale_while_revalidate: Option<Spanned<HumanDuration>>,
    pub stale_if_error: Option<Spanned<HumanDuration>>,
    pub cache_key: Option<CacheKeyFile>,
    #[serde(default)]
    pub tags: Vec<Spanned<String>>,
    #[serde(default)]
    pub allow_set_cookie: bool,
    /// Store a 5xx that states its own freshness.
    #[serde(default)]
    pub cache_errors: bool,
    pub response_headers: Option<Spanned<HeaderRulesFile>>,
    pub request_headers: Option<Spanned<HeaderRulesFile>>,
    pub redirect: Option<Spanned<RedirectFile>>,
    pub redirect_https: Option<Spanned<bool>>,
    pub origin_path: Option<Spanned<OriginPathFile>>,
    pub access: Option<Spanned<AccessRuleFile>>,
    pub rate_limit: Option<Spanned<RateLimitFile>>,
    pub signed_url: Option<Spanned<SignedUrlFile>>,
    /// Objects cached in slices of this size, fetched with upstream `Range`.
    pub slice: Option<Spanned<ByteSize>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedUrlFile {
    pub key_file: Spanned<String>,
    pub expires_param: Option<Spanned<String>>,
    pub signature_param: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitFile {
    pub requests: Spanned<u64>,
    pub per: Option<Spanned<HumanDuration>>,
    pub burst: Option<Spanned<u64>>,
    pub by: Option<Spanned<String>>,
}

/// `set`, `add` (response only) and `remove` of header fields.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderRulesFile {
    #[serde(default)]
    pub set: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub add: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub remove: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectFile {
    pub to: Spanned<String>,
    pub status: Option<Spanned<u16>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginPathFile {
    pub strip_prefix: Option<Spanned<String>>,
    pub add_prefix: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRuleFile {
    #[serde(default)]
    pub allow: Vec<Spanned<String>>,
    #[serde(default)]
    pub deny: Vec<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchFile {
    pub path_prefix: Option<Spanned<String>>,
    pub path_glob: Option<Spanned<String>>,
    pub path_regex: Option<Spanned<String>>,
    pub methods: Option<Vec<Spanned<String>>>,
    pub extensions: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheKeyFile {
    pub query: Option<Spanned<QueryFile>>,
    #[serde(default)]
    pub headers: Vec<Spanned<String>>,
}

/// `query: ignore`, `query: all`, or `query: [names to keep]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum QueryFile {
    Mode(String),
    Keep(Vec<String>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeFile {
    pub threads: Option<Spanned<usize>>,
    pub work_stealing: Option<bool>,
    pub grace_period: Option<Spanned<HumanDuration>>,
    pub shutdown_timeout: Option<Spanned<HumanDuration>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogFile {
    pub format: Option<Spanned<String>>,
    pub level: Option<Spanned<String>>,
    /// One JSON access-log line per request: `true` (stdout), `false`, or `{ output }`.
    pub access: Option<Spanned<AccessFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum AccessFile {
    Enabled(bool),
    To(AccessToFile),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessToFile {
    /// `stdout`, `stderr`, or a file path (appended to, reopened on SIGHUP).
    pub output: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompressionFile {
    /// Compress compressible responses on the fly for clients that accept it.
    pub on_the_fly: Option<bool>,
    /// Compression level for on-the-fly gzip, brotli and zstd.
    pub level: Option<Spanned<u32>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    /// Longest request target (path and query); longer gets 414.
    pub max_uri_size: Option<Spanned<ByteSize>>,
    /// Most bytes of request header fields; more gets 431.
    pub max_header_size: Option<Spanned<ByteSize>>,
    /// Most request header fields; more gets 431.
    pub max_headers: Option<Spanned<usize>>,
    /// The whole request head of a new connection must arrive within this.
    pub client_header_timeout: Option<Spanned<HumanDuration>>,
    /// Idle time allowed between requests (HTTP/1.1) or streams (HTTP/2).
    pub keepalive_timeout: Option<Spanned<HumanDuration>>,
    /// The TLS handshake must finish within this.
    pub tls_handshake_timeout: Option<Spanned<HumanDuration>>,
    /// A write to a client that makes no progress for this long closes the connection.
    pub send_timeout: Option<Spanned<HumanDuration>>,
    /// Open client connections per node; more are refused.
    pub max_connections: Option<Spanned<usize>>,
    /// Node-wide bytes read from disk for clients and not yet taken by them.
    pub client_buffers: Option<Spanned<ByteSize>>,
}
