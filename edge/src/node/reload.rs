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
use prometheus::{IntCounterVec, IntGauge};

use edge_config::ConfigError;

use crate::access_log::Reopen;
use crate::live::{Live, LiveError, LiveHandle};
use crate::metrics::ReloadResult;
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
    /// `edge_config_reloads_total{result}`.
    pub reloads: IntCounterVec,
    /// `edge_config_generation`.
    pub generation: IntGauge,
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
        loop {
            tokio::select! {
                got = hup.recv() => if got.is_none() { return },
                _ = shutdown.changed() => return,
            }
            match self.reload().await {
                Ok(generation) => {
                    self.reloads
                        .with_label_values(&[ReloadResult::Ok.label()])
                        .inc();
                    self.generation.set(generation as i64);
                    tracing::info!(generation, path = %self.path.display(), "configuration reloaded");
                }
                Err(e) => {
                    self.reloads
                        .with_label_values(&[ReloadResult::Error.label()])
                        .inc();
                    tracing::error!(
                        path = %self.path.display(),
                        "configuration reload refused, the one in force stays: {e}"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use edge_config::edge::Limits;

    use super::*;
    use crate::node::conn::ConnMetrics;

    fn file(rule: &str) -> String {
        format!(
            "node: {{ id: t }}\nlisten: [{{ addr: 127.0.0.1:1 }}]\nadmin: {{ addr: 127.0.0.1:2 }}\n\
             origins: {{ o: {{ servers: [\"127.0.0.1:3\"] }} }}\n\
             sites: [{{ hosts: ['*'], origin: o, rules: [{rule}] }}]\n"
        )
    }

    #[tokio::test]
    async fn a_valid_file_replaces_the_configuration_and_a_refused_one_leaves_it() {
        let dir = std::env::temp_dir().join(format!("edge-reload-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("edge.yaml");
        std::fs::write(&path, file("{ match: { path_prefix: /a }, ttl: 1h }")).unwrap();
        let config = EdgeConfig::load(&path).unwrap();
        let live = crate::live::handle(Live::build(&config, None).unwrap());
        let reloader = Reloader {
            live: live.clone(),
            access_log: None,
            reloads: IntCounterVec::new(prometheus::Opts::new("r", "h"), &["result"]).unwrap(),
            generation: IntGauge::new("g", "h").unwrap(),
            path: path.clone(),
            connections: Connections::new(&Limits::default(), ConnMetrics::unregistered()),
        };
        let pool = live.load().pools["o"].clone();

        std::fs::write(&path, file("{ match: { path_prefix: /b }, ttl: 1h }")).unwrap();
        assert_eq!(reloader.reload().await.unwrap(), 2);
        let now = live.load_full();
        assert_eq!(now.generation, 2);
        assert_eq!(now.sites()[0].rules.len(), 1);
        assert!(
            Arc::ptr_eq(&now.pools["o"], &pool),
            "an unchanged pool keeps its health state and connections"
        );

        std::fs::write(&path, "sites: [").unwrap();
        assert!(matches!(
            reloader.reload().await,
            Err(ReloadError::Config(_))
        ));
        let missing = dir.join("no-such-token");
        let names_missing = file("").replace(
            "admin: { addr: 127.0.0.1:2 }",
            &format!(
                "admin: {{ addr: 127.0.0.1:2, token_file: \"{}\" }}",
                missing.display()
            ),
        );
        std::fs::write(&path, names_missing).unwrap();
        assert!(matches!(
            reloader.reload().await,
            Err(ReloadError::Build(LiveError::Token(_)))
        ));
        assert!(
            Arc::ptr_eq(&live.load_full(), &now),
            "refused files change nothing"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
