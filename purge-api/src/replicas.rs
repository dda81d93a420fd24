//! Replicas sharing a PostgreSQL log: per-node delivery leases, the shared head, and the
//! positions the other replicas heard from their nodes.
//!
//! Each node is delivered to by the one replica holding its lease. A lease runs for
//! `postgres.lease` on the database's clock and is renewed once half of it has gone; a replica
//! that dies stops renewing, and another takes the node over when the lease runs out, starting
//! from the node's own durable position. Order and at-least-once come from that position, not
//! from the lease: a node applies only the purge after the last one it applied, so even two
//! replicas delivering at once (one stalled past its lease) cannot reorder or skip a purge.
//! The lease only keeps replicas from doing the work twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::registry::NodeHandle;
use crate::service::SharedRef;
use crate::store::postgres::{NodeRow, Pg};
use crate::store::{random_u64, StoreError};

/// Shortest time between two reads of the shared state when news keeps coming.
const MIN_TICK: Duration = Duration::from_millis(5);

/// This replica's part in a group sharing one log.
pub struct Replicas {
    /// This replica's name in the lease table: host name and a random suffix.
    pub id: String,
    lease: Duration,
    /// How often the head, leases and positions are read.
    pub poll: Duration,
    /// Leases held, by node URL, with when they run out on this process's clock.
    held: Mutex<HashMap<String, Instant>>,
    /// Something changed (another replica's news, this node set): read the shared state now.
    pub news: Arc<Notify>,
    /// Bumped when this replica takes a node: its delivery task starts at once.
    pub taken: watch::Sender<u64>,
}

impl Replicas {
    /// A replica named after this host.
    pub fn new(lease: Duration, poll: Duration) -> Replicas {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "purge-api".to_string());
        Replicas {
            id: format!("{host}-{:08x}", random_u64() as u32),
            lease,
            poll,
            held: Mutex::new(HashMap::new()),
            news: Arc::new(Notify::new()),
            taken: watch::Sender::new(0),
        }
    }

    /// Whether this replica delivers to `url` now.
    pub fn holds(&self, url: &str) -> bool {
        self.held
            .lock()
            .get(url)
            .is_some_and(|until| *until > Instant::now())
    }

    fn held_count(&self) -> usize {
        let now = Instant::now();
        self.held.lock().values().filter(|u| **u > now).count()
    }
}

/// Keeps leases, the head and other replicas' node positions current; runs for the life of
/// the process when the log is in PostgreSQL.
pub async fn run(shared: SharedRef) {
    let (Some(r), Some(pg)) = (&shared.replicas, shared.store.postgres()) else {
        return;
    };
    let mut listener: Option<JoinHandle<()>> = None;
    let mut failing = false;
    loop {
        if listener.as_ref().is_none_or(JoinHandle::is_finished) {
            // Without it, news waits for the next poll; with it, for the next notification.
            listener = match pg.listen(r.news.clone()).await {
                Ok(task) => Some(task),
                Err(e) => {
                    tracing::debug!(error = %e, "not listening for replicas' news");
                    None
                }
            };
        }
        match tick(&shared, r, pg).await {
            Ok(()) if failing => {
                failing = false;
                tracing::info!("PostgreSQL reachable again");
            }
            Ok(()) => {}
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "cannot reach the purge log in PostgreSQL; delivery pauses as leases run out");
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(r.poll) => {}
            _ = r.news.notified() => {
                // A burst of news (a purge, then every node's position) is read in a few
                // ticks, not one each.
                tokio::time::sleep(MIN_TICK).await;
            }
        }
    }
}

async fn tick(shared: &SharedRef, r: &Replicas, pg: &Pg) -> Result<(), StoreError> {
    if shared.store.refresh().await? {
        let head = shared.store.head();
        shared.head.send_replace(head);
        shared.metrics.head.set(head as i64);
    }
    let rows: HashMap<String, NodeRow> = pg
        .nodes()
        .await?
        .into_iter()
        .map(|row| (row.url.clone(), row))
        .collect();
    let nodes = shared.registry.all();
    for node in &nodes {
        let url = node.url.as_str();
        let row = rows.get(url);
        let mine = r.held.lock().get(url).copied();
        let claim = match mine {
            Some(until) => until.saturating_duration_since(Instant::now()) < r.lease / 2,
            None => row.is_none_or(|row| !row.live || row.holder == r.id),
        };
        if claim {
            // The database starts the lease no earlier than this, so it runs out here first.
            let sent = Instant::now();
            if pg.claim(url, &r.id, r.lease).await? {
                // A lease that ran out here (the database was out of reach) counts as new.
                let had = r.holds(url);
                r.held.lock().insert(url.to_string(), sent + r.lease);
                if !had {
                    tracing::info!(node = %url, replica = %r.id, "delivering to this node");
                    r.taken.send_modify(|n| *n = n.wrapping_add(1));
                }
            } else if r.held.lock().remove(url).is_some() {
                tracing::warn!(node = %url, "another replica took this node over");
            }
        }
        if !r.holds(url) {
            if let Some(row) = row {
                observe(shared, node, row);
            }
        }
    }
    r.held
        .lock()
        .retain(|url, _| nodes.iter().any(|n| n.url == *url));
    shared.metrics.leases.set(r.held_count() as i64);
    Ok(())
}

/// Takes in what the replica delivering to `node` last heard from it.
fn observe(shared: &SharedRef, node: &Arc<NodeHandle>, row: &NodeRow) {
    let before = node.view();
    let applied = row.applied_seq.or(before.applied_seq);
    node.update(|v| {
        v.holder = Some(row.holder.clone());
        v.applied_seq = applied;
        v.ready = row.ready;
        // No live lease: no replica is delivering to it, whatever was last heard.
        v.up = row.live && row.up;
        if let Some(id) = &row.node_id {
            v.node = id.clone();
        }
        v.last_error = if row.live {
            row.last_error.clone()
        } else {
            Some(format!("no replica holds its lease (last: {})", row.holder))
        };
    });
    shared
        .metrics
        .node_up
        .with_label_values(&[&node.url])
        .set(i64::from(row.live && row.up));
    if let Some(applied) = applied {
        let m = &shared.metrics;
        m.node_applied
            .with_label_values(&[&node.url])
            .set(applied as i64);
        m.node_lag
            .with_label_values(&[&node.url])
            .set(shared.store.head().saturating_sub(applied) as i64);
    }
    if before.applied_seq != applied || before.ready != row.ready {
        shared.progressed();
    }
}
