//! SIGHUP: reload the configuration file. Sites, rules, origins, certificates, compression and
//! the admin tokens are replaced at once for new requests, while requests in flight finish
//! under the generation they started with; the cache is untouched. A file that does not
//! validate, or names a certificate or CA that cannot be loaded, is refused with a logged error
//! and the configuration in force stays. Listeners, the admin address, the cache tiers, the
//! runtime and the log settings need a restart (or a graceful upgrade); a change to them is
//! logged and otherwise ignored.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use edge_config::edge::EdgeConfig;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use edge_config::ConfigError;

use crate::access_log::Reopen;
use crate::live::{Live, LiveError, LiveHandle};
use crate::metrics::Metrics;
use crate::node::conn::Connections;

/// Why a reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file does not load or validate.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// It validates, but names something that cannot be loaded (a certificate, a CA, tokens).
    #[error(transparent)]
    Build(#[from] LiveError),
    /// The blocking task that builds it failed.
    #[error("reload task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Waits for SIGHUP and reloads.
pub struct Reloader {
    /// The configuration in force, replaced by a reload.
    pub live: LiveHandle,
    /// The access log, reopened on SIGHUP (log rotation).
    pub access_log: Option<Reopen>,
    /// The reload metric families.
    pub metrics: Arc<Metrics>,
    /// The file the node was started with.
    pub path: PathBuf,
    /// Client connections, which take the new limits.
    pub connections: Arc<Connections>,
}

impl Reloader {
    /// Reloads once; returns the new generation, or why the file was refused.
    pub async fn reload(&self) -> Result<u64, ReloadError> {
        if let Some(log) = &self.access_log {
            log.reopen();
        }
        let current = self.live.load_full();
        let path = self.path.clone();
        let (live, restart) = tokio::task::spawn_blocking(move || {
            let config = EdgeConfig::load(&path)?;
            let restart = current.restart_only_changes(&config);
            let live = Live::build(&config, Some(&current))?;
            Ok::<_, ReloadError>((live, restart))
        })
        .await??;
        if !restart.is_empty() {
            tracing::warn!(
                settings = %restart.join(", "),
                "these settings changed but take effect only after a restart or upgrade"
            );
        }
        let generation = live.generation;
        self.connections.update(&live.config.limits);
        self.live.store(Arc::new(live));
        Ok(generation)
    }
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGHUP: reload is off");
                return;
            }
        };
        let metrics = &self.metrics;
        loop {
            tokio::select! {
                got = hup.recv() => if got.is_none() { return },
                _ = shutdown.changed() => return,
            }
            match self.reload().await {
                Ok(generation) => {
                    metrics.config_reloads.with_label_values(&["ok"]).inc();
                    metrics.config_generation.set(generation as i64);
                    tracing::info!(generation, path = %self.path.display(), "configuration reloaded");
                }
                Err(e) => {
                    metrics.config_reloads.with_label_values(&["error"]).inc();
                    tracing::error!(
                        path = %self.path.display(),
                        "configuration reload refused, the one in force stays: {e}"
                    );
                }
            }
        }
    }
}
