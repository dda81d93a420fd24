//! The edge node's configuration: runtime types, loading and validation.

pub mod file;
pub mod logic;
mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;

pub use validate::validate;

use crate::ConfigError;

/// A validated edge configuration.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// Node id: the cache name in `Cache-Status`, and the name in purge acknowledgements.
    pub node_id: String,
    /// Public listeners.
    pub listen: Vec<Listener>,
    /// The admin listener (metrics, health, purge).
    pub admin: Admin,
    /// Storage tiers.
    pub cache: Cache,
    /// Origin pools by name.
    pub origins: BTreeMap<String, Origin>,
    /// Sites in file order.
    pub sites: Vec<Site>,
    /// Process settings.
    pub runtime: Runtime,
    /// Logging.
    pub log: Log,
    /// Response compression.
    pub compression: Compression,
    /// Request size limits.
    pub limits: Limits,
    /// Proxies trusted to name the client (`None`: the client is the connection's peer).
    pub client_ip: Option<logic::ClientIp>,
}

/// A public listener.
#[derive(Debug, Clone)]
pub struct Listener {
    /// Socket address.
    pub addr: SocketAddr,
    /// Certificate and key for TLS (HTTP/2 by ALPN), if any.
    pub tls: Option<TlsFiles>,
}

/// PEM files for a TLS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

/// The admin listener.
#[derive(Debug, Clone)]
pub struct Admin {
    /// Socket address; keep it off the public network.
    pub addr: SocketAddr,
    /// File holding the bearer token that purge calls must present.
    pub token_file: Option<PathBuf>,
}

/// Storage tiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cache {
    /// Memory tier.
    pub memory: MemorySettings,
    /// Disk tier, when configured.
    pub disk: Option<DiskSettings>,
    /// How long readers of a key wait for the one fetch in flight before going to the origin.
    pub lock_timeout: Duration,
    /// How long past its freshness a stored response may stand in when the origin cannot be
    /// reached at all, unless the response forbids stale or gives its own `stale-if-error` (a
    /// rule's `stale_if_error` replaces it too); zero: never.
    pub stale_if_unreachable: Duration,
}

/// `cache.stale_if_unreachable` when the file does not set it.
pub const DEFAULT_STALE_IF_UNREACHABLE: Duration = Duration::from_secs(86_400);

/// Memory tier bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemorySettings {
    /// Bytes of bodies the tier may hold.
    pub max_size: u64,
    /// Largest body the tier stores.
    pub max_object_size: u64,
}

/// Disk tier settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSettings {
    /// Directory of the tier.
    pub path: PathBuf,
    /// Bytes of bodies the tier may hold.
    pub max_size: u64,
    /// Largest body the tier stores.
    pub max_object_size: u64,
    /// Bytes of memory for the decoded heads (key and meta) of objects read lately, so that a
    /// hit on one reads only its body file; 0 keeps none.
    pub meta_cache: u64,
    /// An object is written to disk from its `min_uses`-th request within the frequency window
    /// on (1: every cacheable object).
    pub min_uses: u32,
    /// How long one pass of the background scrub over every body takes; zero: no scrub.
    pub scrub_interval: Duration,
}

/// One scrub pass over the disk tier when `cache.disk.scrub_interval` is not set.
pub const DEFAULT_SCRUB_INTERVAL: Duration = Duration::from_secs(7 * 86_400);

/// Bytes of decoded disk heads kept when `cache.disk.meta_cache` is not set.
pub const DEFAULT_META_CACHE: u64 = 64 << 20;

/// An origin pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The servers, each with its weight.
    pub servers: Vec<Server>,
    /// Whether to speak TLS to the servers.
    pub tls: bool,
    /// SNI (and certificate name) to use with TLS; defaults to the server's host.
    pub sni: Option<String>,
    /// Verify the origin's certificate chain and name.
    pub verify: bool,
    /// CA certificates trusted for this origin instead of the system's.
    pub ca_file: Option<PathBuf>,
    /// Host header sent to the origin instead of the client's.
    pub host_header: Option<String>,
    /// How a server is chosen.
    pub lb: LoadBalancing,
    /// Active health check.
    pub health_check: Option<HealthCheck>,
    /// Passive health: servers that fail to connect are skipped for a while.
    pub passive: PassiveHealth,
    /// Other servers an idempotent request may try after a failed connect.
    pub retries: u32,
    /// TCP (and TLS) connect timeout.
    pub connect_timeout: Duration,
    /// Timeout for each read from the origin.
    pub read_timeout: Duration,
    /// Timeout for each write to the origin.
    pub write_timeout: Duration,
    /// How long an idle keepalive connection stays in the pool.
    pub idle_timeout: Duration,
}

/// One server of an origin pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// `host:port`.
    pub addr: String,
    /// Relative share of the requests (at least 1).
    pub weight: u32,
}

/// Passive health settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassiveHealth {
    /// Consecutive connect failures that mark a server down; 0 turns passive health off.
    pub max_fails: u32,
    /// How long a server marked down is skipped.
    pub fail_timeout: Duration,
}

/// How a server of a pool is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadBalancing {
    /// In turn.
    RoundRobin,
    /// By a hash of the cache key, so each object comes from one server.
    ConsistentHash,
}

/// An active HTTP health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// Path requested with GET; a 2xx means healthy.
    pub path: String,
    /// Time between checks.
    pub interval: Duration,
    /// Consecutive successes that bring a server back.
    pub rise: u32,
    /// Consecutive failures that take a server out.
    pub fall: u32,
    /// The port checked on each server, when not the one it serves on (a shield's admin
    /// listener, whose `/readyz` says whether it has caught up with the purges).
    pub port: Option<u16>,
    /// Whether the check speaks TLS; `None`: as the pool does.
    pub tls: Option<bool>,
}

/// A site: the hosts it answers for, its origin and its rules.
#[derive(Debug, Clone)]
pub struct Site {
    /// The `site` label of its metrics and access-log lines: `name`, else its first host as
    /// written.
    pub name: String,
    /// Host patterns.
    pub hosts: Vec<HostPattern>,
    /// Name of the origin pool.
    pub origin: String,
    /// Certificate for the site's hosts on TLS listeners, chosen by SNI.
    pub tls: Option<TlsFiles>,
    /// Rules, first match wins.
    pub rules: Vec<Rule>,
    /// Bodies for error responses, by status or class.
    pub error_pages: logic::ErrorPages,
}

/// A host name pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// Exactly this name (lower case).
    Exact(String),
    /// Any name ending in `.suffix` (stored with the leading dot, lower case).
    Suffix(String),
    /// Any host.
    Any,
}

/// A caching rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// What requests it applies to.
    pub matcher: Match,
    /// `false`: never cached, straight to the origin.
    pub cache: bool,
    /// Freshness that overrides the origin's.
    pub ttl: Option<Duration>,
    /// Freshness when the origin gives none.
    pub default_ttl: Option<Duration>,
    /// The longest a 404, 405 or 414 is stored, whatever the origin says (0: never).
    pub negative_ttl: Duration,
    /// stale-while-revalidate window when the origin gives none.
    pub stale_while_revalidate: Option<Duration>,
    /// stale-if-error window when the origin gives none.
    pub stale_if_error: Option<Duration>,
    /// What goes into the cache key beyond scheme, host and path.
    pub cache_key: CacheKeySpec,
    /// Tags added to every object the rule stores.
    pub tags: Vec<String>,
    /// Store responses that carry `Set-Cookie` (the cookie is stored and replayed).
    pub allow_set_cookie: bool,
    /// Store a 5xx response that states its own freshness (`max-age`, `s-maxage`, `Expires`),
    /// for that long; without it no 5xx is stored.
    pub cache_errors: bool,
    /// What the rule does besides caching: headers, redirects, the origin path, access.
    pub logic: logic::Logic,
    /// Bytes per slice when the rule caches objects in slices fetched with upstream `Range`.
    pub slice: Option<u64>,
}

/// The smallest slice: one checksum block of the disk tier.
pub const MIN_SLICE: u64 = 64 << 10;
/// The largest slice, so that one slice is a bounded read.
pub const MAX_SLICE: u64 = 64 << 20;

/// The request side of a rule.
#[derive(Debug, Clone, Default)]
pub struct Match {
    /// Path test, if any.
    pub path: Option<PathMatch>,
    /// Upper-case methods, if restricted.
    pub methods: Option<Vec<String>>,
    /// Lower-case file extensions without the dot, if restricted.
    pub extensions: Option<Vec<String>>,
}

/// How a rule tests the path.
#[derive(Debug, Clone)]
pub enum PathMatch {
    /// The path starts with this.
    Prefix(String),
    /// A glob (`*` within a segment, `**` across segments, `?` one character), compiled.
    Glob(Regex),
    /// A regular expression, compiled.
    Regex(Regex),
}

/// Cache key settings of a rule.
#[derive(Debug, Clone, Default)]
pub struct CacheKeySpec {
    /// Which query parameters are part of the key.
    pub query: QueryKey,
    /// Request headers (lower case) whose values are part of the key.
    pub headers: Vec<String>,
}

/// Which query parameters are part of the key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum QueryKey {
    /// Every parameter (sorted, so order does not split the cache).
    #[default]
    All,
    /// None: the query string is dropped from the key.
    Ignore,
    /// Only these names.
    Keep(Vec<String>),
}

/// Process settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runtime {
    /// Worker threads of the proxy service.
    pub threads: usize,
    /// Whether idle worker threads take tasks from busy ones (one shared Tokio runtime), or
    /// each thread keeps the connections it was given (a runtime per thread).
    pub work_stealing: bool,
    /// How long a stopping node keeps accepting before draining.
    pub grace_period: Duration,
    /// How long draining may take before connections are cut.
    pub shutdown_timeout: Duration,
}

/// Log settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log {
    /// `json` or `text`.
    pub json: bool,
    /// Default level filter, overridden by `RUST_LOG`.
    pub level: String,
    /// Where the JSON access log goes; `None` turns it off.
    pub access: Option<AccessOutput>,
}

/// Where access-log lines are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessOutput {
    /// Standard output.
    Stdout,
    /// Standard error (beside the process log).
    Stderr,
    /// A file, appended to and reopened on SIGHUP (for log rotation).
    File(PathBuf),
}

/// Response compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compression {
    /// Compress compressible responses on the fly for clients that accept it.
    pub on_the_fly: bool,
    /// Level for gzip, brotli and zstd.
    pub level: u32,
}

/// How long a 404 (405, 414) is stored when no rule says otherwise: long enough to absorb a
/// burst of requests for a missing file, short enough that a file deployed after it shows up.
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(10);

/// Request size limits, connection timeouts and the node's connection and buffer ceilings.
/// Pingora's parser refuses (400) beyond its own sizes: a 64 KiB target, 1 MiB of header and 256
/// fields. The timeouts carry nginx's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest request target (path and query); longer is answered 414.
    pub max_uri_size: usize,
    /// Most bytes of request header fields (names and values); more is answered 431.
    pub max_header_size: usize,
    /// Most request header fields; more is answered 431.
    pub max_headers: usize,
    /// How long a connection may take to send its first request head, whole; on a TLS
    /// listener the time starts once the handshake is done.
    pub client_header_timeout: Duration,
    /// Idle time allowed between two requests of an HTTP/1.1 connection, or with no stream
    /// open on an HTTP/2 connection; zero turns HTTP/1.1 keep-alive off.
    pub keepalive_timeout: Duration,
    /// How long a TLS handshake may take, from the accept.
    pub tls_handshake_timeout: Duration,
    /// How long a write to a client may make no progress before the connection is closed.
    pub send_timeout: Duration,
    /// Client connections open at once on the node; more are refused at accept.
    pub max_connections: usize,
    /// Bytes read from the disk tier for clients and not yet taken by them, node-wide; past
    /// it the clients that have taken nothing for the longest are cut.
    pub client_buffers: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_uri_size: 8 * 1024,
            max_header_size: 32 * 1024,
            max_headers: 100,
            client_header_timeout: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(75),
            tls_handshake_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(60),
            max_connections: 50_000,
            client_buffers: 256 << 20,
        }
    }
}

impl EdgeConfig {
    /// Reads and validates an edge configuration file. Relative paths in it are read from the
    /// file's folder.
    pub fn load(path: &Path) -> Result<EdgeConfig, ConfigError> {
        crate::load::load_checked(path, |mut file: file::EdgeFile| {
            crate::paths::edge(&mut file, path.parent().unwrap_or(Path::new("")));
            validate(file)
        })
    }

    /// Parses and validates YAML text (for tests and tools).
    pub fn from_yaml(text: &str) -> Result<EdgeConfig, Vec<crate::Problem>> {
        crate::load::read_checked(text, validate)
    }
}
