//! Assembles the Pingora server: the proxy service on the public listeners, the admin service,
//! and background services (origin health checks, the disk sweep).

use std::sync::Arc;

use async_trait::async_trait;
use edge_config::edge::EdgeConfig;
use pingora::cache::lock::CacheLock;
use pingora::cache::predictor::Predictor;
use pingora::listeners::tls::TlsSettings;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use pingora::services::listening::Service;

use crate::admin::AdminApp;
use crate::cache::disk::{DiskError, DiskTier};
use crate::cache::memory::MemoryTier;
use crate::cache::tiered::TieredStorage;
use crate::metrics::Metrics;
use crate::origin::OriginPool;
use crate::proxy::{skip_prediction, EdgeProxy, EdgeState};
use crate::purge::sweep::Sweeper;
use crate::purge::{self, Bans, Purger};
use crate::router::Router;
use edge_config::token::Tokens;

/// Why a node could not be built from a valid configuration.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// An origin's servers could not be resolved.
    #[error("origin `{name}`: {source}")]
    Origin {
        /// Origin name.
        name: String,
        /// Resolution error.
        source: std::io::Error,
    },
    /// A TLS listener's certificate or key could not be loaded.
    #[error("listener {addr}: TLS: {message}")]
    Tls {
        /// Listener address.
        addr: String,
        /// What went wrong.
        message: String,
    },
    /// The disk tier could not be opened.
    #[error("cache.disk at {}: {source}", path.display())]
    Disk {
        /// The configured path.
        path: std::path::PathBuf,
        /// What went wrong.
        source: DiskError,
    },
    /// The admin token file could not be read, or holds no token.
    #[error("admin.token_file: {0}")]
    Token(String),
    /// Metrics could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// A node ready to run.
pub struct Node {
    server: Server,
    disk: Option<&'static DiskTier>,
}

impl Node {
    /// Serves until SIGTERM (or SIGINT), drains, then makes the disk tier's catalog durable
    /// and saves its eviction order.
    pub fn run(self) {
        self.server.run(RunArgs::default());
        if let Some(disk) = self.disk {
            match disk.close() {
                Ok(()) => tracing::info!("disk cache closed"),
                Err(e) => tracing::error!(error = %e, "disk cache did not close cleanly"),
            }
        }
    }
}

/// Builds a ready-to-run node for `config`. Call once per process: the storage, cache lock and
/// predictor live for the whole process (Pingora's cache wants them `'static`).
pub fn build(config: &EdgeConfig) -> Result<Node, BuildError> {
    let conf = ServerConf {
        threads: config.runtime.threads,
        grace_period_seconds: Some(config.runtime.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(config.runtime.shutdown_timeout.as_secs()),
        // Per node, so several nodes can share a machine (tests, the local demo).
        pid_file: std::env::temp_dir()
            .join(format!("edge-{}.pid", config.node_id))
            .to_string_lossy()
            .into_owned(),
        upgrade_sock: std::env::temp_dir()
            .join(format!("edge-{}-upgrade.sock", config.node_id))
            .to_string_lossy()
            .into_owned(),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let memory = MemoryTier::new(
        config.cache.memory.max_size,
        config.cache.memory.max_object_size,
    );
    let disk: Option<&'static DiskTier> = match &config.cache.disk {
        Some(d) => {
            let started = std::time::Instant::now();
            let tier =
                DiskTier::open(&d.path, d.max_size, d.max_object_size).map_err(|source| {
                    BuildError::Disk {
                        path: d.path.clone(),
                        source,
                    }
                })?;
            let tier: &'static DiskTier = Box::leak(Box::new(tier));
            let stats = tier.stats();
            tracing::info!(
                path = %d.path.display(),
                objects = stats.objects.load(std::sync::atomic::Ordering::Relaxed),
                bytes = stats.bytes.load(std::sync::atomic::Ordering::Relaxed),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "disk cache opened"
            );
            server.add_service(background_service("disk sweep", DiskSweep(tier)));
            Some(tier)
        }
        None => None,
    };
    let loaded = purge::Loaded::from_disk(disk);
    let bans: &'static Bans = Box::leak(Box::new(Bans::new(loaded.bans())));
    let storage: &'static TieredStorage =
        Box::leak(Box::new(TieredStorage::new(memory, disk, bans)));
    let cache_lock = Box::leak(CacheLock::new_boxed(config.cache.lock_timeout));
    let predictor: &'static Predictor<16> =
        Box::leak(Box::new(Predictor::new(1024, Some(skip_prediction))));

    let mut pools = std::collections::BTreeMap::new();
    for (name, origin) in &config.origins {
        let (pool, health) =
            OriginPool::build(name, origin).map_err(|source| BuildError::Origin {
                name: name.clone(),
                source,
            })?;
        if let Some(h) = health {
            server.add_boxed_service(h);
        }
        pools.insert(name.clone(), pool);
    }
    // Validation guarantees every site's origin exists; a miss here would misalign the indexes.
    let site_origins = config
        .sites
        .iter()
        .map(|s| {
            pools
                .get(&s.origin)
                .cloned()
                .ok_or_else(|| BuildError::Origin {
                    name: s.origin.clone(),
                    source: std::io::Error::other("no such origin"),
                })
        })
        .collect::<Result<_, _>>()?;

    let metrics = Arc::new(Metrics::register()?);
    let state = Arc::new(EdgeState {
        node_id: config.node_id.clone(),
        router: Router::new(&config.sites),
        sites: config.sites.clone(),
        site_origins,
        storage,
        cache_lock,
        predictor,
        lock_timeout: config.cache.lock_timeout,
        metrics: metrics.clone(),
        access_log: config.log.access,
        default_key: Default::default(),
        bans,
        purge_ready: std::sync::atomic::AtomicBool::new(true),
    });
    let tokens = match &config.admin.token_file {
        Some(path) => Some(Tokens::read(path).map_err(BuildError::Token)?),
        None => None,
    };
    let purger = Arc::new(Purger::new(state.clone(), loaded, disk));
    metrics.purge_bans.set(bans.len() as i64);
    server.add_service(background_service(
        "purge sweep",
        Sweeper {
            bans,
            storage,
            signal: purger.sweep_signal(),
            metrics: metrics.clone(),
        },
    ));

    let mut proxy =
        pingora::proxy::http_proxy_service(&server.configuration, EdgeProxy::new(state));
    for l in &config.listen {
        let addr = l.addr.to_string();
        match &l.tls {
            None => proxy.add_tcp(&addr),
            Some(tls) => {
                let err = |e: &dyn std::fmt::Display| BuildError::Tls {
                    addr: addr.clone(),
                    message: e.to_string(),
                };
                let mut settings = TlsSettings::intermediate(
                    &tls.cert.to_string_lossy(),
                    &tls.key.to_string_lossy(),
                )
                .map_err(|e| err(&e))?;
                settings.enable_h2();
                proxy.add_tls_with_settings(&addr, None, settings);
            }
        }
    }
    server.add_service(proxy);

    let mut admin = Service::new(
        "admin".to_string(),
        AdminApp {
            metrics,
            storage,
            node_id: config.node_id.clone(),
            purger,
            tokens,
        },
    );
    admin.add_tcp(&config.admin.addr.to_string());
    server.add_service(admin);
    Ok(Node { server, disk })
}

/// Clears what an earlier run left on disk, in the background so the node serves at once.
struct DiskSweep(&'static DiskTier);

#[async_trait]
impl BackgroundService for DiskSweep {
    async fn start(&self, _shutdown: ShutdownWatch) {
        let disk = self.0;
        match tokio::task::spawn_blocking(move || disk.sweep()).await {
            Ok(Ok((files, entries))) => {
                tracing::info!(files, entries, "disk cache sweep removed leftovers")
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "disk cache sweep failed"),
            Err(e) => tracing::warn!(error = %e, "disk cache sweep task failed"),
        }
    }
}
