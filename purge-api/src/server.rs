//! Builds the service from its configuration and runs it: the API listener, node discovery
//! (which starts a delivery task per node) and, for a PostgreSQL log, the replica's leases.

use std::sync::Arc;
use std::time::Duration;

use edge_config::purge_api::{PurgeApiConfig, Store as StoreConfig};
use edge_config::token::{TokenError, Tokens};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::limit::RateLimiter;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::replicas::Replicas;
use crate::service::{Shared, SharedRef};
use crate::store::{Store, StoreError};
use crate::{api, discovery};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A tokens file could not be read.
    #[error("{field}: {source}")]
    Tokens {
        /// The config field naming the file.
        field: &'static str,
        /// What went wrong.
        source: TokenError,
    },
    /// The purge log could not be opened.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The listener could not bind.
    #[error("listen {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Metrics could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// Opens the log, reads the tokens and binds the listener.
pub async fn build(config: PurgeApiConfig) -> Result<(SharedRef, TcpListener), StartError> {
    let tokens = Tokens::read(&config.tokens_file).map_err(|source| StartError::Tokens {
        field: "tokens_file",
        source,
    })?;
    let node_token =
        Tokens::read_first(&config.nodes.token_file).map_err(|source| StartError::Tokens {
            field: "nodes.token_file",
            source,
        })?;
    let store = Store::open(&config.store).await?;
    let replicas = match &config.store {
        StoreConfig::Postgres(pg) => Some(Replicas::new(pg.lease, pg.poll)),
        StoreConfig::Embedded(_) => None,
    };
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: config.listen,
            source,
        })?;
    // One bucket per token, and one for the networks allowed to send PURGE.
    let limiter = RateLimiter::new(
        config.limits.rate_per_second,
        config.limits.burst,
        tokens.len() + 1,
    );
    let head = store.head();
    let shields = (!config.nodes.shields.is_empty())
        .then(|| crate::shields::ShieldGate::new(config.nodes.shield_wait));
    let shared = Arc::new(Shared {
        config,
        store,
        tokens,
        node_token,
        registry: Registry::default(),
        replicas,
        limiter,
        metrics: Metrics::register()?,
        head: watch::Sender::new(head),
        progress: watch::Sender::new(0),
        shields,
    });
    Ok((shared, listener))
}

/// Most client connections served at once.
const MAX_CONNECTIONS: usize = 1024;
/// How long a client may take to send a request header, or a request body.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves until the process is stopped. Every acknowledged purge is already durable, so a stop
/// at any point loses nothing: delivery resumes from each node's own position on restart.
pub async fn run(shared: SharedRef, listener: TcpListener) {
    tracing::info!(
        listen = %shared.config.listen,
        head = shared.store.head(),
        log = shared.store.log_id(),
        replica = shared.replicas.as_ref().map(|r| r.id.as_str()),
        "purge-api serving"
    );
    tokio::spawn(crate::replicas::run(shared.clone()));
    tokio::spawn(discovery::run(shared.clone()));
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        // At the cap, new connections wait in the kernel's backlog instead of costing a
        // descriptor and a task each: a flood slows callers down but cannot exhaust the process.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, std::convert::Infallible>(api::handle(shared, req, peer).await) }
            });
            // A caller that never finishes its header is dropped rather than held forever.
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(CLIENT_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
}
