//! Purges on the node: the admin `POST /purge` turns targets into ban rules (and removes exact
//! URLs at once), keeps the purge-log position durable, and says when the node has caught up.
//!
//! Order matters for "a purged object is never served": a purge's bans are in force before it
//! is acknowledged, every lookup is judged against them, every write into a tier is judged under
//! that tier's writer lock, and the sweep lists a tier under the same lock after the bans are in
//! force. So an object is either judged when it is stored, or listed and judged by the sweep;
//! only then are the bans retired.

pub mod bans;
pub mod sweep;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use edge_config::purge::{InvalidPurge, NodeState, Purge, Targets, UrlTarget};
use pingora::cache::key::CacheHashKey;
use pingora::cache::{CacheMeta, ForcedFreshness};
use pingora::http::RequestHeader;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::cache::catalog::Op;
use crate::cache::disk::{DiskError, DiskTier};
use crate::cache::key::{self, cache_key};
use crate::cache::Hash;
use crate::cache::Head;
use crate::http::{stamp, tags};
use crate::proxy::EdgeState;
use crate::router::select_rule;
pub use bans::{Ban, Bans, Scope, Subject, Verdict};

/// Targets a node takes in one call; purge-api's own limit is lower.
const MAX_ITEMS: usize = 100_000;

/// Why a purge was not applied.
#[derive(Debug, thiserror::Error)]
pub enum PurgeError {
    /// The body names nothing, or something malformed.
    #[error(transparent)]
    Invalid(#[from] InvalidPurge),
    /// A sequence past the next one: an earlier purge would be skipped.
    #[error("sequence {got} skips ahead: this node applied up to {applied}, send {} first", applied + 1)]
    Gap {
        /// Last applied.
        applied: u64,
        /// What was sent.
        got: u64,
    },
    /// The purge could not be made durable.
    #[error("cannot record the purge durably: {0}")]
    Store(#[from] DiskError),
}

/// The durable purge position.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Position {
    applied_seq: u64,
    log: Option<String>,
}

/// What the disk tier held about purges at start-up.
#[derive(Debug, Default)]
pub struct Loaded {
    bans: Vec<Ban>,
    position: Option<Position>,
}

impl Loaded {
    /// Reads the purge records kept in the disk tier's catalog (nothing without a disk tier:
    /// a memory-only node starts empty, so no earlier purge can apply to it).
    pub fn from_disk(disk: Option<&DiskTier>) -> Loaded {
        let Some(records) = disk.and_then(DiskTier::take_purge_records) else {
            return Loaded::default();
        };
        let mut bans = Vec::with_capacity(records.bans.len());
        for (id, bytes) in records.bans {
            match serde_json::from_slice::<Ban>(&bytes) {
                Ok(b) => bans.push(b),
                Err(e) => {
                    // Unreadable: the safe reading is "everything before it", as of now.
                    tracing::error!(id, error = %e, "unreadable ban rule; purging everything instead");
                    bans.push(Ban {
                        id,
                        scope: Scope::All,
                        at: stamp::micros(SystemTime::now()),
                        soft: false,
                    });
                }
            }
        }
        let position = records.state.map(|s| {
            serde_json::from_slice(&s).unwrap_or_else(|e| {
                // Sequence 0 makes purge-api resend the log, or a purge-all past compaction.
                tracing::error!(error = %e, "unreadable purge position; starting from 0");
                Position {
                    applied_seq: 0,
                    log: Some(String::new()),
                }
            })
        });
        Loaded { bans, position }
    }

    /// The ban rules, to build the [`Bans`] the storage and the proxy share.
    pub fn bans(&self) -> &[Ban] {
        &self.bans
    }
}

/// The node's purge state and the admin purge operations.
pub struct Purger {
    state: Arc<EdgeState>,
    disk: Option<&'static DiskTier>,
    /// Takes purges one at a time, across the durable commit.
    applying: tokio::sync::Mutex<()>,
    /// The committed position (read without waiting for a purge in progress).
    position: parking_lot::Mutex<Position>,
    next_id: AtomicU64,
    sweep: Arc<Notify>,
}

impl Purger {
    /// The purge state of a node over `state` (whose `bans` were built from `loaded`).
    pub fn new(state: Arc<EdgeState>, loaded: Loaded, disk: Option<&'static DiskTier>) -> Self {
        let next_id = loaded.bans.iter().map(|b| b.id).max().unwrap_or(0) + 1;
        // A node that was part of a fleet may have missed purges while it was down: not ready
        // until purge-api says it has caught up. A node that never saw one has nothing stale.
        // A purge by hand (no log) does not make it one.
        let ready = loaded.position.as_ref().is_none_or(|p| p.log.is_none());
        state.purge_ready.store(ready, Ordering::Release);
        if !ready {
            tracing::info!("not ready until purge-api confirms this node has caught up; hits are revalidated meanwhile");
        }
        let position = loaded.position.unwrap_or_default();
        state
            .metrics
            .purge_applied_seq
            .set(position.applied_seq as i64);
        Purger {
            disk,
            applying: tokio::sync::Mutex::new(()),
            position: parking_lot::Mutex::new(position),
            next_id: AtomicU64::new(next_id),
            sweep: Arc::new(Notify::new()),
            state,
        }
    }

    /// Woken when bans are added.
    pub fn sweep_signal(&self) -> Arc<Notify> {
        self.sweep.clone()
    }

    /// Whether the node has caught up with the purge log since it started.
    pub fn is_ready(&self) -> bool {
        self.state.purge_ready.load(Ordering::Acquire)
    }

    /// The node's position, for `GET /purge/state`.
    pub fn node_state(&self) -> NodeState {
        let pos = self.position.lock().clone();
        NodeState {
            applied_seq: pos.applied_seq,
            log: pos.log,
            node: self.state.node_id.clone(),
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
                bans = self.bans_for(t);
                // In force before anything is acknowledged or persisted.
                self.state.bans.add(&bans);
            }
            if let Some(s) = p.seq {
                next.applied_seq = s;
            }
        }
        if let Some(disk) = self.disk {
            if next != pos || !bans.is_empty() {
                let mut ops = Vec::with_capacity(bans.len() + 1);
                for b in &bans {
                    let ban =
                        serde_json::to_vec(b).map_err(|e| DiskError::Commit(e.to_string()))?;
                    ops.push(Op::PutBan { id: b.id, ban });
                }
                let state =
                    serde_json::to_vec(&next).map_err(|e| DiskError::Commit(e.to_string()))?;
                ops.push(Op::SetPurgeState(state));
                disk.save_purge(ops).await?;
            }
        }
        if !bans.is_empty() {
            self.sweep.notify_one();
        }
        let applied = next.applied_seq;
        *self.position.lock() = next;
        if p.head.is_some_and(|h| applied >= h)
            && !self.state.purge_ready.swap(true, Ordering::AcqRel)
        {
            tracing::info!(applied_seq = applied, "caught up with the purge log");
        }
        let m = &self.state.metrics;
        m.purge_requests
            .with_label_values(&[if fresh { "applied" } else { "duplicate" }])
            .inc();
        m.purge_applied_seq.set(applied as i64);
        m.purge_bans.set(self.state.bans.len() as i64);
        if fresh && !bans.is_empty() {
            tracing::info!(seq = ?p.seq, bans = bans.len(), soft = p.soft, "purge applied");
        }
        Ok(self.node_state())
    }

    fn bans_for(&self, t: &Targets) -> Vec<Ban> {
        let mut scopes = Vec::new();
        if t.all {
            scopes.push(Scope::All);
        }
        scopes.extend(t.hosts.iter().cloned().map(Scope::Host));
        for p in &t.prefixes {
            scopes.push(if p.path == "/" {
                Scope::Host(p.host.clone())
            } else {
                Scope::Prefix {
                    host: p.host.clone(),
                    path: p.path.clone(),
                }
            });
        }
        scopes.extend(t.tags.iter().cloned().map(Scope::Tag));
        for u in &t.urls {
            for scope in self.url_scopes(u) {
                if let Scope::Key(primary) = &scope {
                    // The URL's objects go now; the ban covers fills in flight and the sweep.
                    let n = self.state.storage.invalidate_primary(primary);
                    self.state
                        .metrics
                        .purge_swept
                        .with_label_values(&["removed"])
                        .inc_by(n as u64);
                }
                scopes.push(scope);
            }
        }
        let at = stamp::micros(SystemTime::now());
        scopes
            .into_iter()
            .map(|scope| Ban {
                id: self.next_id.fetch_add(1, Ordering::Relaxed),
                scope,
                at,
                soft: t.soft,
            })
            .collect()
    }

    /// The keys a URL is stored under, as the proxy builds them for a GET of it, in both
    /// schemes. A rule that keys request headers has keys the URL alone cannot give: its path
    /// is banned instead, whatever the query and headers.
    fn url_scopes(&self, u: &UrlTarget) -> Vec<Scope> {
        let live = self.state.live.load();
        let rule = live
            .router
            .route(&u.host)
            .and_then(|site| select_rule(&live.sites()[site].rules, "GET", &u.path))
            .map(|(_, r)| r);
        let spec = rule.map_or(&self.state.default_key, |r| &r.cache_key);
        let by_path = || {
            vec![Scope::Path {
                host: u.host.clone(),
                path: u.path.clone(),
            }]
        };
        if !spec.headers.is_empty() {
            return by_path();
        }
        let target = match &u.query {
            Some(q) => format!("{}?{q}", u.path),
            None => u.path.clone(),
        };
        let Ok(req) = RequestHeader::build("GET", target.as_bytes(), None) else {
            return by_path();
        };
        ["http", "https"]
            .into_iter()
            .map(|scheme| Scope::Key(cache_key(scheme, &u.host, &req, spec).primary_bin()))
            .collect()
    }
}

/// The subject a stored object presents to the bans.
pub fn subject<'a>(
    primary: &'a Hash,
    host: &'a str,
    path: &'a str,
    meta: &'a CacheMeta,
) -> Subject<'a> {
    subject_of(primary, host, path, meta.headers())
}

/// [`subject`] from a stored header's fields.
pub fn subject_of<'a>(
    primary: &'a Hash,
    host: &'a str,
    path: &'a str,
    headers: &'a http::HeaderMap,
) -> Subject<'a> {
    Subject {
        primary,
        host,
        path,
        tags: tags::stored(headers),
        stored_at: stamp::of(headers),
    }
}

/// What the proxy tells Pingora about a hit the bans cover.
pub fn forced(v: Verdict) -> Option<ForcedFreshness> {
    match v {
        Verdict::Keep => None,
        Verdict::Gone => Some(ForcedFreshness::ForceMiss),
        Verdict::Stale(at) => Some(ForcedFreshness::ForceExpiredServeStale {
            expired_at: Some(forced_time(at)),
        }),
    }
}

/// A ban time as the `SystemTime` Pingora's meta uses.
pub fn forced_time(at: u64) -> SystemTime {
    UNIX_EPOCH + std::time::Duration::from_micros(at)
}

/// The verdict on a stored object known by its primary key bytes and serialized meta (for the
/// storage's write gate and the sweep). An object that cannot be read is judged gone.
pub fn judge_stored(
    bans: &Bans,
    primary: &Hash,
    key_bytes: &[u8],
    meta: &(Vec<u8>, Vec<u8>),
) -> Verdict {
    if bans.is_empty() {
        return Verdict::Keep;
    }
    let Ok(meta) = CacheMeta::deserialize(&meta.0, &meta.1) else {
        return Verdict::Gone;
    };
    judge_meta(bans, primary, key_bytes, &meta)
}

/// The verdict on an object in the memory tier or being filled: judged on its decoded header,
/// and gone if its meta does not decode.
pub fn judge_head(bans: &Bans, primary: &Hash, head: &Head) -> Verdict {
    if bans.is_empty() {
        return Verdict::Keep;
    }
    match head.decoded() {
        Some(d) => judge_headers(bans, primary, &head.key, &d.header.headers),
        None => Verdict::Gone,
    }
}

/// [`judge_stored`] with the meta already deserialized.
pub fn judge_meta(bans: &Bans, primary: &Hash, key_bytes: &[u8], meta: &CacheMeta) -> Verdict {
    judge_headers(bans, primary, key_bytes, meta.headers())
}

fn judge_headers(
    bans: &Bans,
    primary: &Hash,
    key_bytes: &[u8],
    headers: &http::HeaderMap,
) -> Verdict {
    let parts = key::parts(key_bytes);
    fn text(b: Option<&[u8]>) -> &str {
        b.and_then(|b| std::str::from_utf8(b).ok()).unwrap_or("")
    }
    let host = text(parts.map(|p| p.host));
    let path = text(parts.map(|p| p.path));
    bans.judge(&subject_of(primary, host, path, headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bans_and_the_position_come_back_from_the_disk_tier() {
        let dir = std::env::temp_dir().join(format!("edge-purge-loaded-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let open = || loop {
            // A dropped tier's committer thread lets go of the catalog a moment later.
            match DiskTier::open(&dir, 1 << 30, 1 << 20) {
                Ok(t) => return t,
                Err(DiskError::Catalog(redb::Error::DatabaseAlreadyOpen)) => {
                    std::thread::yield_now()
                }
                Err(e) => panic!("{e}"),
            }
        };
        let tag = Ban {
            id: 4,
            scope: Scope::Tag("t".into()),
            at: 123,
            soft: true,
        };
        let position = Position {
            applied_seq: 9,
            log: Some("L".into()),
        };
        let tier = open();
        tier.save_purge(vec![
            Op::PutBan {
                id: 4,
                ban: serde_json::to_vec(&tag).unwrap(),
            },
            Op::PutBan {
                id: 5,
                ban: b"not a ban".to_vec(),
            },
            Op::SetPurgeState(serde_json::to_vec(&position).unwrap()),
        ])
        .await
        .unwrap();
        drop(tier);
        let tier = open();
        let loaded = Loaded::from_disk(Some(&tier));
        assert_eq!(loaded.position, Some(position));
        assert_eq!(loaded.bans[0], tag);
        // An unreadable rule is read as the widest one: everything, hard.
        assert_eq!((loaded.bans[1].id, &loaded.bans[1].scope), (5, &Scope::All));
        assert!(!loaded.bans[1].soft);
        assert!(Loaded::from_disk(None).bans.is_empty());
        drop(tier);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
