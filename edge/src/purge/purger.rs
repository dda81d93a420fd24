//! The admin purge operations and the sequence protocol of the purge log: purges are applied
//! in order, one at a time, each made durable before it is acknowledged; a sequence that skips
//! one is refused, one already applied is acknowledged again without effect.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use edge_config::edge::CacheKeySpec;
use edge_config::purge::{NodeState, Purge};
use tokio::sync::Notify;

use super::bans::{Ban, Bans, Scope};
use super::records::{self, Loaded, Position};
use super::{targets, PurgeError, Readiness};
use crate::cache::disk::DiskTier;
use crate::cache::tiered::TieredStorage;
use crate::http::stamp;
use crate::live::LiveHandle;
use crate::metrics::{Metrics, PurgeResult, SweepAction};

/// Targets a node takes in one call; purge-api's own limit is lower.
const MAX_ITEMS: usize = 100_000;

/// What the purger is handed by the node.
pub struct PurgerParts {
    /// The node's name, reported in its state.
    pub node_id: String,
    /// The configuration in force: a URL is purged under the keys its rule builds.
    pub live: LiveHandle,
    /// Key settings for URLs no rule matches.
    pub default_key: CacheKeySpec,
    /// The rules every lookup and write is judged against.
    pub bans: &'static Bans,
    /// Both tiers: a URL's objects are removed at once.
    pub storage: &'static TieredStorage,
    /// Where purge says whether the node has caught up.
    pub readiness: Arc<Readiness>,
    /// Where purge records are made durable, if the node has a disk tier.
    pub disk: Option<&'static DiskTier>,
    /// The purge metric families.
    pub metrics: Arc<Metrics>,
}

/// The node's purge state and the admin purge operations.
pub struct Purger {
    parts: PurgerParts,
    /// Takes purges one at a time, across the durable commit.
    applying: tokio::sync::Mutex<()>,
    /// The committed position (read without waiting for a purge in progress).
    position: parking_lot::Mutex<Position>,
    next_id: AtomicU64,
    sweep: Arc<Notify>,
}

impl Purger {
    /// The purge state of a node whose `bans` were built from `loaded`.
    pub fn new(parts: PurgerParts, loaded: Loaded) -> Self {
        let next_id = loaded.bans.iter().map(|b| b.id).max().unwrap_or(0) + 1;
        // A node that was part of a fleet may have missed purges while it was down: not ready
        // until purge-api says it has caught up. A node that never saw one has nothing stale.
        // A purge by hand (no log) does not make it one.
        let ready = loaded.position.as_ref().is_none_or(|p| p.log.is_none());
        parts.readiness.set(ready);
        if !ready {
            tracing::info!("not ready until purge-api confirms this node has caught up; hits are revalidated meanwhile");
        }
        let position = loaded.position.unwrap_or_default();
        parts
            .metrics
            .purge_applied_seq
            .set(position.applied_seq as i64);
        parts.metrics.purge_bans.set(parts.bans.len() as i64);
        Purger {
            applying: tokio::sync::Mutex::new(()),
            position: parking_lot::Mutex::new(position),
            next_id: AtomicU64::new(next_id),
            sweep: Arc::new(Notify::new()),
            parts,
        }
    }

    /// Woken when bans are added.
    pub fn sweep_signal(&self) -> Arc<Notify> {
        self.sweep.clone()
    }

    /// Whether the node has caught up with the purge log since it started.
    pub fn is_ready(&self) -> bool {
        self.parts.readiness.is_ready()
    }

    /// The node's position, for `GET /purge/state`.
    pub fn node_state(&self) -> NodeState {
        let pos = self.position.lock().clone();
        NodeState {
            applied_seq: pos.applied_seq,
            log: pos.log,
            node: self.parts.node_id.clone(),
            ready: self.is_ready(),
        }
    }

    /// Applies a purge. With a sequence, it applies only the next one (or a hard purge-all,
    /// which covers any it skips); one already applied is acknowledged again without effect.
    pub async fn apply(&self, p: Purge) -> Result<NodeState, PurgeError> {
        let sync_only = p.items() == 0 && p.seq.is_some();
        let targets = if sync_only {
            None
        } else {
            Some(p.targets(MAX_ITEMS)?)
        };
        let _turn = self.applying.lock().await;
        let pos = self.position.lock().clone();
        let mut next = pos.clone();
        if let Some(log) = &p.log {
            if next.log.as_ref() != Some(log) {
                if next.log.is_some() {
                    tracing::warn!(old = ?next.log, new = %log, "the purge log was replaced; following the new one from its start");
                }
                next.log = Some(log.clone());
                next.applied_seq = 0;
            }
        }
        let fresh = match p.seq {
            None => true,
            Some(s) if s <= next.applied_seq => false,
            Some(s) if !sync_only && (s == next.applied_seq + 1 || (p.all && !p.soft)) => true,
            Some(s) => {
                return Err(PurgeError::Gap {
                    applied: next.applied_seq,
                    got: s,
                })
            }
        };
        let mut bans = Vec::new();
        if fresh {
            if let Some(t) = &targets {
                let scopes = targets::scopes(t, &self.parts.live.load(), &self.parts.default_key);
                // A soft purge keeps what it names: its ban makes them stale, to revalidate.
                if !t.soft {
                    self.remove_keys(&scopes);
                }
                bans = self.rules(scopes, t.soft);
                // In force before anything is acknowledged or persisted.
                self.parts.bans.add(&bans);
            }
            if let Some(s) = p.seq {
                next.applied_seq = s;
            }
        }
        if let Some(disk) = self.parts.disk {
            if next != pos || !bans.is_empty() {
                disk.save_side(records::save_ops(&bans, &next)?).await?;
            }
        }
        if !bans.is_empty() {
            self.sweep.notify_one();
        }
        let applied = next.applied_seq;
        *self.position.lock() = next;
        if p.head.is_some_and(|h| applied >= h) && self.parts.readiness.caught_up() {
            tracing::info!(applied_seq = applied, "caught up with the purge log");
        }
        let m = &self.parts.metrics;
        m.purge_requests
            .with_label_values(&[if fresh {
                PurgeResult::Applied
            } else {
                PurgeResult::Duplicate
            }
            .label()])
            .inc();
        m.purge_applied_seq.set(applied as i64);
        m.purge_bans.set(self.parts.bans.len() as i64);
        if fresh && !bans.is_empty() {
            tracing::info!(seq = ?p.seq, bans = bans.len(), soft = p.soft, "purge applied");
        }
        Ok(self.node_state())
    }

    /// Removes the objects of the exact keys among `scopes` from both tiers now; their bans
    /// still cover the fills in flight and the sweep.
    fn remove_keys(&self, scopes: &[Scope]) {
        for scope in scopes {
            if let Scope::Key(primary) = scope {
                let n = self.parts.storage.invalidate_primary(primary);
                self.parts
                    .metrics
                    .purge_swept
                    .with_label_values(&[SweepAction::Removed.label()])
                    .inc_by(n as u64);
            }
        }
    }

    /// The ban rules of `scopes`, stamped now.
    fn rules(&self, scopes: Vec<Scope>, soft: bool) -> Vec<Ban> {
        let at = stamp::micros(SystemTime::now());
        scopes
            .into_iter()
            .map(|scope| Ban {
                id: self.next_id.fetch_add(1, Ordering::Relaxed),
                scope,
                at,
                soft,
            })
            .collect()
    }
}
