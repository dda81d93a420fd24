//! What the API, the delivery tasks and discovery share.

use std::sync::Arc;

use edge_config::purge_api::PurgeApiConfig;
use edge_config::token::Tokens;
use tokio::sync::watch;

use crate::limit::RateLimiter;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::registry::Tier;
use crate::replicas::Replicas;
use crate::shields::{Release, ShieldGate};
use crate::store::Store;

/// The purge service's shared state.
pub struct Shared {
    /// The validated configuration.
    pub config: PurgeApiConfig,
    /// The durable log.
    pub store: Store,
    /// Tokens callers present.
    pub tokens: Tokens,
    /// Token sent to the nodes.
    pub node_token: String,
    /// The nodes.
    pub registry: Registry,
    /// Leases and shared positions, when replicas share a PostgreSQL log.
    pub replicas: Option<Replicas>,
    /// Per-token rate limits.
    pub limiter: RateLimiter,
    /// Metric families.
    pub metrics: Metrics,
    /// The log's head: delivery tasks wake when it moves.
    pub head: watch::Sender<u64>,
    /// Bumped whenever a node's position moves: `?wait` callers and held deliveries re-check
    /// on it.
    pub progress: watch::Sender<u64>,
    /// Holds purges back from the edges until the shields applied them; `None` without
    /// shields.
    pub shields: Option<ShieldGate>,
}

impl Shared {
    /// Wakes everything that waits on node positions.
    pub fn progressed(&self) {
        self.progress.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The highest sequence a node of `tier` may be sent now: the log's head for a shield, or
    /// without shields; for the others, what the shields have released.
    pub fn release(&self, tier: Tier) -> Release {
        let head = self.store.head();
        let (Tier::Edge, Some(gate)) = (tier, &self.shields) else {
            return Release {
                through: head,
                timeout_at: None,
            };
        };
        let now = std::time::Instant::now();
        let floor = gate.floor(now, self.registry.tier(Tier::Shield).map(|n| n.view()));
        let (release, released) = gate.release(now, head, floor);
        for (by, waited) in released {
            self.metrics
                .shield_wait
                .with_label_values(&[by.label()])
                .observe(waited.as_secs_f64());
        }
        release
    }

    /// The public id of a logged purge.
    pub fn purge_id(&self, seq: u64) -> String {
        format!("{}-{seq}", self.store.log_id())
    }

    /// The sequence of a public purge id, if it names one of this log's purges.
    pub fn seq_of(&self, id: &str) -> Option<u64> {
        let (log, seq) = id.rsplit_once('-')?;
        let seq: u64 = seq.parse().ok()?;
        (log == self.store.log_id() && seq >= 1 && seq <= self.store.head()).then_some(seq)
    }
}

/// Shared state handed to tasks.
pub type SharedRef = Arc<Shared>;
