//! The ban sweep (Varnish calls it the ban lurker): a background pass over both tiers that
//! removes what hard bans cover and expires what soft bans cover, then retires those bans so
//! lookups stop paying for them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::cache::CacheMeta;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::sync::Notify;

use super::judge::expired_at;
use super::{Bans, Verdict};
use crate::cache::disk::{DiskError, DiskTier};
use crate::cache::tiered::TieredStorage;
use crate::cache::Hash;
use crate::metrics::{Metrics, SweepAction};

/// Records read from the catalog per blocking step.
const SCAN_CHUNK: usize = 2048;

/// Lets a burst of purges (a deploy's worth) land before a pass, so one pass serves them all.
const SETTLE: Duration = Duration::from_millis(20);

/// The background service.
pub struct Sweeper {
    /// Ban rules.
    pub bans: &'static Bans,
    /// Both tiers.
    pub storage: &'static TieredStorage,
    /// Woken by new bans.
    pub signal: Arc<Notify>,
    /// Metric families.
    pub metrics: Arc<Metrics>,
}

#[derive(Default)]
struct Tally {
    removed: u64,
    expired: u64,
}

impl Sweeper {
    /// One pass: every object stored now is judged against every ban in force now.
    async fn pass(&self) -> Result<Tally, DiskError> {
        let mut t = Tally::default();
        self.memory(&mut t).await;
        if let Some(disk) = self.storage.disk() {
            self.disk(disk, &mut t).await?;
        }
        Ok(t)
    }

    async fn memory(&self, t: &mut Tally) {
        let memory = self.storage.memory();
        for (i, combined) in memory.keys().into_iter().enumerate() {
            if i % 1024 == 1023 {
                tokio::task::yield_now().await;
            }
            let Some(obj) = memory.get(&combined) else {
                continue;
            };
            let Ok(mut meta) = obj.cache_meta() else {
                memory.remove(&combined);
                continue;
            };
            match self.bans.judge_meta(&obj.primary, obj.key(), &meta) {
                Verdict::Keep => {}
                Verdict::Gone => {
                    if memory.remove(&combined) {
                        t.removed += 1;
                    }
                }
                Verdict::Stale(at) => {
                    meta.expire_at(expired_at(at));
                    if memory.update_meta(&combined, &meta, |_| true) {
                        t.expired += 1;
                    }
                }
            }
        }
    }

    async fn disk(&self, disk: &'static DiskTier, t: &mut Tally) -> Result<(), DiskError> {
        // Every commit that passed the write gate before the bans were in force is in the index
        // after the barrier, and in the catalog after the flush.
        tokio::task::spawn_blocking(move || {
            disk.barrier();
            disk.flush()
        })
        .await??;
        let mut after: Option<Hash> = None;
        loop {
            let from = after;
            let chunk =
                tokio::task::spawn_blocking(move || disk.scan(from.as_ref(), SCAN_CHUNK)).await??;
            let Some((last, _)) = chunk.last() else {
                break;
            };
            after = Some(*last);
            let mut gone = Vec::new();
            for (hash, record) in chunk {
                let Some(primary) = disk.primary_of(&hash) else {
                    continue;
                };
                let Ok(mut meta) = CacheMeta::deserialize(&record.meta.0, &record.meta.1) else {
                    gone.push(hash);
                    continue;
                };
                match self.bans.judge_meta(&primary, &record.key, &meta) {
                    Verdict::Keep => {}
                    Verdict::Gone => gone.push(hash),
                    Verdict::Stale(at) => {
                        meta.expire_at(expired_at(at));
                        let Ok(m) = meta.serialize() else {
                            gone.push(hash);
                            continue;
                        };
                        match disk.update_meta(&hash, m, |_| true).await {
                            Ok(true) => t.expired += 1,
                            Ok(false) => {}
                            Err(e) => {
                                disk.write_failed(&e);
                                gone.push(hash);
                            }
                        }
                    }
                }
            }
            if !gone.is_empty() {
                let (n, _) = tokio::task::spawn_blocking(move || disk.remove(&gone)).await?;
                t.removed += n as u64;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl BackgroundService for Sweeper {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            if self.bans.is_empty() {
                tokio::select! {
                    _ = self.signal.notified() => {}
                    _ = shutdown.changed() => return,
                }
            }
            tokio::time::sleep(SETTLE).await;
            let upto = self.bans.newest();
            let start = Instant::now();
            let t = match self.pass().await {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!(error = %e, "purge sweep failed; its bans stay in force");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if let Some(disk) = self.storage.disk() {
                // Queued after the pass's removals, so it is never durable before them.
                if let Err(e) = disk.save_side(vec![super::records::retire_op(upto)]).await {
                    tracing::error!(error = %e, "cannot retire swept bans; they stay in force");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
            self.bans.retire(upto);
            let elapsed = start.elapsed();
            let m = &self.metrics;
            m.purge_sweep_duration.observe(elapsed.as_secs_f64());
            m.purge_swept
                .with_label_values(&[SweepAction::Removed.label()])
                .inc_by(t.removed);
            m.purge_swept
                .with_label_values(&[SweepAction::Expired.label()])
                .inc_by(t.expired);
            m.purge_bans.set(self.bans.len() as i64);
            tracing::info!(
                removed = t.removed,
                expired = t.expired,
                ms = elapsed.as_secs_f64() * 1e3,
                bans_left = self.bans.len(),
                "purge sweep done"
            );
            if *shutdown.borrow() {
                return;
            }
        }
    }
}
