//! The node's assembly, the top layer: it builds every service from the configuration and
//! hands each the narrow state it uses (the proxy service on the public listeners, the admin
//! service, and the background services: origin health checks, the disk and purge sweeps,
//! SIGHUP reload), the workers that share connections between runtimes, and the connection
//! layer around the proxy. Nothing below imports it.

pub mod conn;
pub mod health;
pub mod reload;
pub mod systemd;
pub mod workers;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use edge_config::edge::{DiskSettings, EdgeConfig};
use pingora::cache::lock::CacheLock;
use pingora::cache::predictor::Predictor;
use pingora::listeners::tls::TlsSettings;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{RunArgs, Server, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use pingora::services::listening::Service;

use crate::access_log::AccessLog;
use crate::admin::AdminApp;
use crate::cache::disk::{DiskError, DiskTier};
use crate::cache::memory::MemoryTier;
use crate::cache::scrub::Scrubber;
use crate::cache::tiered::TieredStorage;
use crate::drain::{Drain, Linger};
use crate::live::{self, Live, LiveError};
use crate::metrics::Metrics;
use crate::node::conn::watchdog::TlsDeadline;
use crate::proxy::{skip_prediction, EdgeProxy, EdgeState};
use crate::purge::sweep::Sweeper;
use crate::purge::{self, Bans, Purger, PurgerParts, Readiness};
use crate::tls::SniResolver;
use conn::{ConnMetrics, Connections, Counted, Guarded};
use health::HealthChecker;
use reload::Reloader;
use workers::{Balance, ProxyService, Worker};

/// How long Pingora waits, once the requests are drained, for blocking work still running
/// (disk writes) before it stops the runtimes: its own default.
const BLOCKING_WORK_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a node could not be built from a valid configuration.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The reloadable part of the configuration (origins, certificates, tokens) did not build.
    #[error(transparent)]
    Live(#[from] LiveError),
    /// A listener's TLS settings could not be made.
    #[error("{at}: TLS: {source}")]
    Tls {
        /// The listener.
        at: String,
        /// What Pingora said.
        source: Box<pingora::Error>,
    },
    /// The access log could not be opened.
    #[error("log.access: {0}")]
    AccessLog(#[source] std::io::Error),
    /// The disk tier could not be opened.
    #[error("cache.disk at {}: {source}", path.display())]
    Disk {
        /// The configured path.
        path: std::path::PathBuf,
        /// What went wrong.
        source: DiskError,
    },
    /// Metrics could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// A node ready to run.
pub struct Node {
    server: Server,
    disk: Option<&'static DiskTier>,
    drain: &'static Drain,
}

impl Node {
    /// Serves until SIGTERM, SIGQUIT (or SIGINT), drains (see [`crate::drain`]), then makes
    /// the disk tier's catalog durable and saves its eviction order.
    pub fn run(self) {
        crate::node::systemd::ready();
        self.server.run(RunArgs {
            shutdown_signal: self.drain.signals(),
        });
        if let Some(disk) = self.disk {
            match disk.close() {
                Ok(()) => tracing::info!("disk cache closed"),
                Err(e) => tracing::error!(error = %e, "disk cache did not close cleanly"),
            }
        }
    }
}

/// How the process was started.
#[derive(Debug, Clone)]
pub struct Options {
    /// The configuration file, read again on SIGHUP.
    pub config_path: PathBuf,
    /// Take the listening sockets over from a running node (Pingora's graceful upgrade).
    pub upgrade: bool,
}

/// Builds a ready-to-run node for `config`. Call once per process: the storage, cache lock and
/// predictor live for the whole process (Pingora's cache wants them `'static`).
pub fn build(config: &EdgeConfig, options: &Options) -> Result<Node, BuildError> {
    // First what the file names (certificates, tokens, origin hosts): an upgrade that cannot
    // start must fail before it takes the sockets over from the running node.
    let live = Live::build(config, None)?;
    let conf = ServerConf {
        threads: config.runtime.threads,
        work_stealing: config.runtime.work_stealing,
        // The grace period and the drain are the edge's own (`drain`): Pingora is told of the
        // stop once the requests are done, and then only waits for blocking disk work.
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(BLOCKING_WORK_TIMEOUT.as_secs()),
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
    let opt = Opt {
        upgrade: options.upgrade,
        ..Opt::default()
    };
    let drain: &'static Drain = Box::leak(Box::new(Drain::new(
        config.runtime.grace_period,
        config.runtime.shutdown_timeout,
        conf.upgrade_sock.clone(),
    )));
    let mut server = Server::new_with_opt_and_conf(Some(opt), conf);
    server.bootstrap();
    if options.upgrade {
        // The sockets are ours now; the old process exits once drained, before this one may
        // be ready (it waits for the disk catalog), and systemd must not take that for the end.
        crate::node::systemd::main_pid();
    }

    // Each client connection takes a descriptor: the usual soft limit is far below
    // `limits.max_connections`.
    match crate::fds::raise() {
        Ok(limit) => tracing::info!(limit, "descriptor limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the descriptor limit"),
    }
    let connections = Connections::new(&config.limits, ConnMetrics::register()?);

    let memory = MemoryTier::new(&config.cache.memory);
    let disk: Option<&'static DiskTier> = match &config.cache.disk {
        Some(d) => {
            let tier = open_disk(d, config, options.upgrade)?;
            let tier: &'static DiskTier = Box::leak(Box::new(tier));
            server.add_service(background_service("disk sweep", DiskSweep(tier)));
            if !d.scrub_interval.is_zero() {
                server.add_service(background_service(
                    "disk scrub",
                    DiskScrub(Scrubber::new(tier, d.scrub_interval)),
                ));
            }
            Some(tier)
        }
        None => None,
    };
    let loaded = purge::Loaded::from_disk(disk);
    let bans: &'static Bans = Box::leak(Box::new(Bans::new(loaded.bans())));
    let storage: &'static TieredStorage = Box::leak(Box::new(TieredStorage::new(
        memory,
        disk,
        bans,
        Arc::new(conn::budget::Shared(connections.budget.clone())),
    )));
    let cache_lock = Box::leak(CacheLock::new_boxed(config.cache.lock_timeout));
    let predictor: &'static Predictor<16> =
        Box::leak(Box::new(Predictor::new(1024, Some(skip_prediction))));

    let metrics = Arc::new(Metrics::register()?);
    let readiness = Arc::new(Readiness::new());
    let access_log = match &config.log.access {
        Some(output) => Some(
            AccessLog::open(output, metrics.access_log_dropped.clone())
                .map_err(BuildError::AccessLog)?,
        ),
        None => None,
    };
    metrics.config_generation.set(live.generation as i64);
    metrics.prepare_sites(live.sites().iter().map(|s| s.name.as_str()));
    let live = live::handle(live);
    let reopen_log = access_log.as_ref().map(AccessLog::reopener);
    let purger = Arc::new(Purger::new(
        PurgerParts {
            node_id: config.node_id.clone(),
            live: live.clone(),
            default_key: Default::default(),
            bans,
            storage,
            readiness: readiness.clone(),
            disk,
            metrics: metrics.clone(),
        },
        loaded,
    ));
    let state = Arc::new(EdgeState {
        node_id: config.node_id.clone(),
        live: live.clone(),
        storage,
        cache_lock,
        predictor,
        lock_timeout: config.cache.lock_timeout,
        metrics: metrics.clone(),
        access_log,
        default_key: Default::default(),
        bans,
        readiness,
        drain,
    });
    server.add_service(background_service(
        "purge sweep",
        Sweeper {
            bans,
            storage,
            signal: purger.sweep_signal(),
            metrics: metrics.clone(),
        },
    ));
    server.add_service(background_service(
        "origin health checks",
        HealthChecker { live: live.clone() },
    ));
    server.add_service(background_service(
        "config reload",
        Reloader {
            live: live.clone(),
            access_log: reopen_log,
            reloads: metrics.config_reloads.clone(),
            generation: metrics.config_generation.clone(),
            path: options.config_path.clone(),
            connections: connections.clone(),
        },
    ));

    // A runtime per thread (the default): a single-threaded service per worker, see
    // `workers`. A work-stealing runtime moves tasks between its threads anyway: one service.
    let workers = if config.runtime.work_stealing {
        1
    } else {
        config.runtime.threads
    };
    let balance = Balance::new(workers);
    for index in 0..workers {
        let mut proxy = proxy_service(&server, config, &state, &connections, index)?;
        let accepted = metrics.accepted.with_label_values(&[&index.to_string()]);
        if config.runtime.work_stealing {
            workers::count_accepts(&mut proxy, accepted, connections.clone());
            server.add_service(drain.service(proxy));
        } else {
            let worker = Worker::new(index, proxy, accepted, balance.clone(), connections.clone());
            server.add_service(drain.service(worker));
        }
    }

    let mut admin = Service::new(
        "admin".to_string(),
        AdminApp {
            metrics,
            storage,
            node_id: config.node_id.clone(),
            purger,
            live,
            drain,
            capacity: connections,
        },
    );
    admin.add_tcp(&config.admin.addr.to_string());
    server.add_service(admin);
    Ok(Node {
        server,
        disk,
        drain,
    })
}

/// The proxy service for worker `index`, on every public listener.
fn proxy_service(
    server: &Server,
    config: &EdgeConfig,
    state: &Arc<EdgeState>,
    connections: &Arc<Connections>,
    index: usize,
) -> Result<ProxyService, BuildError> {
    let app = pingora::proxy::http_proxy(&server.configuration, EdgeProxy::new(state.clone()));
    let app = Guarded::new(app, connections.clone(), Default::default());
    let app = Counted::new(app, connections.clone());
    let mut proxy = Service::new(format!("proxy {index}"), Linger::new(app));
    if config.listen.iter().any(|l| l.tls.is_some()) {
        // Called on the TLS listeners only.
        proxy
            .endpoints()
            .set_pre_tls_callback(Arc::new(TlsDeadline(connections.clone())));
    }
    for (i, l) in config.listen.iter().enumerate() {
        let addr = l.addr.to_string();
        match &l.tls {
            None => proxy.add_tcp(&addr),
            Some(tls) => {
                // The files were loaded by `Live::build`; the resolver serves them (and the
                // sites' certificates) from the configuration in force.
                let mut settings = TlsSettings::intermediate(
                    &tls.cert.to_string_lossy(),
                    &tls.key.to_string_lossy(),
                )
                .map_err(|source| BuildError::Tls {
                    at: format!("listener {addr}"),
                    source,
                })?;
                settings.set_cert_resolver(Arc::new(SniResolver::new(state.live.clone(), i)));
                settings.enable_h2();
                proxy.add_tls_with_settings(&addr, None, settings);
            }
        }
    }
    Ok(proxy)
}

/// Opens the disk tier. During an upgrade the old process holds the catalog until it has
/// drained, so the new one waits for it.
fn open_disk(d: &DiskSettings, config: &EdgeConfig, upgrade: bool) -> Result<DiskTier, BuildError> {
    let started = Instant::now();
    let patience = if upgrade {
        config.runtime.grace_period + config.runtime.shutdown_timeout + Duration::from_secs(10)
    } else {
        Duration::ZERO
    };
    let tier = DiskTier::open_waiting(d, patience, |e| {
        tracing::info!(error = %e, "waiting for the old process to release the disk cache");
    })
    .map_err(|source| BuildError::Disk {
        path: d.path.clone(),
        source,
    })?;
    let stats = tier.stats();
    tracing::info!(
        path = %d.path.display(),
        objects = stats.objects.load(std::sync::atomic::Ordering::Relaxed),
        bytes = stats.bytes.load(std::sync::atomic::Ordering::Relaxed),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "disk cache opened"
    );
    if let Some(device) = crate::cache::fs_check::unjournaled_ext4(&d.path) {
        tracing::warn!(
            path = %d.path.display(),
            device,
            "the disk cache is on ext4 without a journal: after many deletions, creating each body \
             file scans recently freed inodes; a journaled ext4 or XFS avoids it (README, \
             \"Operations: the disk tier\")"
        );
    }
    Ok(tier)
}

/// Reads every body on disk again over `cache.disk.scrub_interval` (see `cache::scrub`).
struct DiskScrub(Scrubber);

#[async_trait]
impl BackgroundService for DiskScrub {
    async fn start(&self, shutdown: ShutdownWatch) {
        self.0.run(shutdown).await;
    }
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
