//! The [`Storage`] Pingora's cache drives: fills in flight first, then the memory tier, then
//! the disk tier.
//!
//! Lookups prefer a fill in flight so that a refetch of an expired object is visible to new
//! readers as it streams in. Every body goes through to disk: one of unknown or large size as it
//! streams, one known to fit the memory tier whole once it ends. A body small enough for the
//! memory tier is also kept whole and offered to it on `finish`. A disk hit small enough is read
//! whole, checked, and promoted to memory. A fill stays visible to lookups until the memory tier
//! holds the object or its disk commit is durable.
//!
//! Disk writes are made durable one per CPU at a time: on a small machine, hundreds of
//! concurrent create-write-fsync calls spent more CPU contending in the kernel than writing.
//! Whole bodies waiting for their turn are bounded in bytes (`QUEUED_LIMIT`); past that, a
//! body is not written to disk (a disk rejection; the memory tier may still hold it), so misses
//! faster than the disk shed disk writes instead of holding memory without bound.
//!
//! The disk never costs a client its response: a failed disk read is a miss, a failed disk
//! write leaves the response to finish from memory, and both are counted and logged.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use pingora::cache::key::{CacheHashKey, CacheKey};
use pingora::cache::storage::{
    HandleMiss, HitHandler, MissFinishType, MissHandler, PurgeOutcome, PurgeTarget, PurgeType,
    Storage,
};
use pingora::cache::trace::SpanHandle;
use pingora::cache::CacheMeta;
use pingora::{Error, ErrorType, Result};

use super::body_file::{BodyError, BLOCK};
use super::catalog::Record;
use super::disk::{DiskBody, DiskError, DiskTier, Found, HowToRead, PendingWrite};
use super::fill::{Fill, Progress};
use super::hit::{warm_here_or_blocking, BodyHit, DiskHit, FillHit};
use super::memory::MemoryTier;
use super::object::Head;
use super::stats::TierStats;
use super::writers::Writers;
use super::{Admission, ClientBuffers, Hash, Source, StoredObject, Tier};

/// Disk hits up to this size are read on the worker thread when the page cache holds their body
/// (`preadv2` with `RWF_NOWAIT`), as nginx reads without `aio`: that takes microseconds, and a
/// hand-off to the blocking pool cost more CPU than the read itself. A body the disk must supply is read on
/// the blocking pool instead, so a cold disk does not stall the worker for it (the file's open
/// and the catalog's record read still could, from a cold directory or B-tree page). Larger
/// bodies always go through the blocking pool.
const INLINE_READ: u64 = 256 << 10;

/// The edge's cache storage.
pub struct TieredStorage {
    memory: MemoryTier,
    disk: Option<&'static DiskTier>,
    /// Asked before anything is written into a tier (purge's bans).
    admission: &'static dyn Admission,
    fills: Mutex<HashMap<Hash, Vec<Arc<Fill>>>>,
    next_fill: AtomicU64,
    /// Make finished bodies durable, one per CPU at a time, at a lower priority than serving.
    writers: Writers,
    /// Whole bodies waiting to be written to disk.
    queued: WriteQueue,
    /// Where disk hits account the blocks they hold for their clients.
    buffers: Arc<dyn ClientBuffers>,
}

/// Most bytes of whole bodies (with their meta) waiting for the disk: a few thousand small
/// objects, a second or two of file creation. A deeper queue only moved the disk work past the
/// burst, onto the CPU of whatever ran next.
const QUEUED_LIMIT: u64 = 4 << 20;

/// Bytes waiting for the disk, within a limit.
struct WriteQueue {
    bytes: AtomicU64,
    limit: u64,
}

impl WriteQueue {
    /// Takes `len` bytes of room; false if that would pass the limit.
    fn try_add(&self, len: u64) -> bool {
        self.bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| {
                (q + len <= self.limit).then_some(q + len)
            })
            .is_ok()
    }

    /// Gives back room taken by [`try_add`](Self::try_add).
    fn remove(&self, len: u64) {
        self.bytes.fetch_sub(len, Ordering::Relaxed);
    }
}

impl TieredStorage {
    /// Storage over a memory tier and, optionally, a disk tier under it.
    pub fn new(
        memory: MemoryTier,
        disk: Option<&'static DiskTier>,
        admission: &'static dyn Admission,
        buffers: Arc<dyn ClientBuffers>,
    ) -> Self {
        TieredStorage {
            memory,
            disk,
            admission,
            buffers,
            fills: Mutex::new(HashMap::new()),
            next_fill: AtomicU64::new(1),
            writers: Writers::new(std::thread::available_parallelism().map_or(2, |n| n.get())),
            queued: WriteQueue {
                bytes: AtomicU64::new(0),
                limit: QUEUED_LIMIT,
            },
        }
    }

    /// The memory tier (for metrics).
    pub fn memory(&self) -> &MemoryTier {
        &self.memory
    }

    /// The disk tier, if there is one.
    pub fn disk(&self) -> Option<&'static DiskTier> {
        self.disk
    }

    /// Largest object any tier stores: bigger responses are not cached.
    pub fn max_object_size(&self) -> u64 {
        let disk = self.disk.map_or(0, |d| d.max_object_size());
        self.memory.max_object_size().max(disk)
    }

    /// Whether an object may enter a tier. Asked under the tier's writer lock.
    fn admits(&self, primary: &Hash, head: &Head) -> bool {
        self.admission.admits(primary, head)
    }

    /// [`admits`](Self::admits) for a record in the disk tier's catalog.
    fn admits_record(&self, primary: &Hash, record: &Record) -> bool {
        self.admission
            .admits_record(primary, &record.key, &record.meta)
    }

    /// Whether a fill's body may enter a tier: its URL was not invalidated while it ran, the
    /// bans in force let it in, and it did not begin before a purge whose ban is retired
    /// already (see [`outlived_by_a_purge`](Self::outlived_by_a_purge)). Judged on the fill's
    /// head, which the disk record's meta is serialized from.
    fn admits_fill(&self, fill: &Fill) -> bool {
        !fill.invalidated()
            && self.admits(&fill.primary, &fill.head)
            && !self.outlived_by_a_purge(&fill.head)
    }

    /// Whether the body a fill fetches began before a purge whose ban is retired already: it
    /// may be what that purge covered, so it goes to its own client and into no tier.
    fn outlived_by_a_purge(&self, fill: &Head) -> bool {
        fill.decoded()
            .is_some_and(|d| self.admission.began_before_a_retired_rule(d.stored_at))
    }

    /// Drops every stored variant of a URL (its primary key) from both tiers. Fills of it in
    /// flight finish for the clients following them, but are stored nowhere and followed by
    /// no new request: they began before the invalidation, so may carry what it replaced. They
    /// are marked first, so one that ends meanwhile is either refused or removed here.
    pub fn invalidate_primary(&self, primary: &Hash) -> usize {
        for fill in self.fills.lock().values().flatten() {
            if fill.primary == *primary {
                fill.invalidate();
            }
        }
        let mut n = self.memory.remove_primary(primary);
        if let Some(disk) = self.disk {
            // The unlinks are quick; the catalog change is queued, not awaited.
            n += disk.remove(&disk.of_primary(primary)).0;
        }
        n
    }

    async fn disk_lookup(&'static self, combined: Hash) -> Option<(CacheMeta, HitHandler)> {
        match self.disk_read(combined, false).await? {
            DiskFound::Whole(object) => {
                // Decoded when read: rebuilding the meta from it cannot fail.
                let meta = object.cache_meta().ok()?;
                self.count_hit(Tier::Disk);
                Some((
                    meta,
                    Box::new(BodyHit::new(object.body.clone(), Tier::Disk)),
                ))
            }
            DiskFound::Streamed(meta, hit) => {
                self.count_hit(Tier::Disk);
                Some((meta, Box::new(hit)))
            }
        }
    }

    /// Reads `combined` from the disk tier: whole (and offered to memory) if it is small enough
    /// to, else opened for streaming unless `whole_only`. Counts failures, not hits.
    async fn disk_read(&'static self, combined: Hash, whole_only: bool) -> Option<DiskFound> {
        let disk = self.disk?;
        let entry = disk.lookup(&combined)?;
        // Read whole (one read) what memory may take, and anything within one checksum block.
        let whole = self.memory.max_object_size().max(BLOCK);
        if whole_only && entry.body_len > whole {
            return None;
        }
        // What memory may take is checked whole: it is never checked again there.
        let how = HowToRead {
            whole_limit: whole,
            cached_only: true,
            check_all: entry.body_len <= self.memory.max_object_size(),
        };
        let here = if entry.body_len <= INLINE_READ {
            match disk.read(&combined, &entry, how) {
                Ok(Found::Cold) => Ok(None),
                read => read.map(Some),
            }
        } else {
            Ok(None)
        };
        let blocking = HowToRead {
            cached_only: false,
            ..how
        };
        let read = warm_here_or_blocking(here, move || disk.read(&combined, &entry, blocking))
            .await
            .ok()?;
        let (head, body) = match read {
            Ok(Found::Object(head, body)) => (head, body),
            Ok(Found::Gone | Found::Cold) => return None,
            Err(e) => {
                disk.fail(&combined, &entry, &e);
                return None;
            }
        };
        let undecodable = || {
            let damaged = BodyError::Corrupt("stored meta does not deserialize");
            disk.fail(&combined, &entry, &damaged.into());
        };
        match body {
            DiskBody::Whole(body) => {
                let object = Arc::new(StoredObject::of_head(combined, entry.primary, head, body));
                if object.decoded().is_none() {
                    undecodable();
                    return None;
                }
                // Bodies read whole only because they fit one block are not memory's to take.
                if entry.body_len <= self.memory.max_object_size() {
                    self.memory
                        .put_if(object.clone(), |o| self.admits(&o.primary, &o.head));
                }
                Some(DiskFound::Whole(object))
            }
            DiskBody::File(file, first) => {
                let meta = match head.cache_meta() {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::debug!(error = %e, "stored meta does not deserialize");
                        undecodable();
                        return None;
                    }
                };
                let hit = DiskHit::new(file, first, disk, combined, entry, self.buffers.clone());
                Some(DiskFound::Streamed(meta, hit))
            }
        }
    }

    /// The whole object under `combined` when no fill is writing that key (a fill's newer
    /// response takes precedence), and the tier it came from: the memory tier's, or the disk
    /// tier's when small enough to read whole (offered to memory as on any disk hit). What the
    /// proxy may answer a fresh hit from without Pingora's cache machinery; call
    /// [`count_hit`](Self::count_hit) if it is served.
    pub async fn whole_object(&'static self, combined: &Hash) -> Option<(Arc<StoredObject>, Tier)> {
        if self.fills.lock().contains_key(combined) {
            return None;
        }
        if let Some(object) = self.memory.get(combined) {
            return Some((object, Tier::Memory));
        }
        match self.disk_read(*combined, true).await? {
            DiskFound::Whole(object) => Some((object, Tier::Disk)),
            DiskFound::Streamed(..) => None,
        }
    }

    /// Counts a hit served from `tier` ([`Tier::Memory`] or [`Tier::Disk`]).
    pub fn count_hit(&self, tier: Tier) {
        match (tier, self.disk) {
            (Tier::Disk, Some(disk)) => disk.hit(),
            _ => TierStats::bump(&self.memory.stats().hits),
        }
    }

    fn latest_fill(&self, combined: &Hash) -> Option<Arc<Fill>> {
        self.fills
            .lock()
            .get(combined)
            .and_then(|v| v.last().filter(|f| !f.invalidated()).cloned())
    }

    fn unregister(&self, combined: &Hash, id: u64) {
        let mut fills = self.fills.lock();
        if let Some(list) = fills.get_mut(combined) {
            list.retain(|f| f.id != id);
            if list.is_empty() {
                fills.remove(combined);
            }
        }
    }
}

/// What the disk tier held for a lookup.
enum DiskFound {
    /// Read whole and decoded.
    Whole(Arc<StoredObject>),
    /// Opened for streaming.
    Streamed(CacheMeta, DiskHit),
}

/// A meta without fields, for an answer whose meta Pingora does not read (so its times need
/// no clock read).
fn stand_in_meta() -> Result<CacheMeta> {
    let epoch = std::time::UNIX_EPOCH;
    let header = pingora::http::ResponseHeader::build_no_case(200, Some(0))?;
    Ok(CacheMeta::new(epoch, epoch, 0, 0, header))
}

fn hit_from_fill(
    fill: Arc<Fill>,
    buffers: Arc<dyn ClientBuffers>,
) -> Result<Option<(CacheMeta, HitHandler)>> {
    let meta = fill.head.cache_meta()?;
    Ok(Some((meta, Box::new(FillHit::new(fill, buffers)))))
}

#[async_trait]
impl Storage for TieredStorage {
    async fn lookup(
        &'static self,
        key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        let combined = key.combined_bin();
        if let Some(fill) = self.latest_fill(&combined) {
            if !self.outlived_by_a_purge(&fill.head) {
                return hit_from_fill(fill, self.buffers.clone());
            }
        }
        if let Some(obj) = self.memory.get(&combined) {
            let meta = obj.cache_meta()?;
            self.count_hit(Tier::Memory);
            return Ok(Some((
                meta,
                Box::new(BodyHit::new(obj.body.clone(), Tier::Memory)),
            )));
        }
        Ok(self.disk_lookup(combined).await)
    }

    async fn lookup_streaming_write(
        &'static self,
        key: &CacheKey,
        tag: Option<&[u8]>,
        trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        let Some(id) = tag.and_then(|t| <[u8; 8]>::try_from(t).ok()) else {
            return self.lookup(key, trace).await;
        };
        let id = u64::from_be_bytes(id);
        let combined = key.combined_bin();
        let fill = self
            .fills
            .lock()
            .get(&combined)
            .and_then(|v| v.iter().find(|f| f.id == id).cloned());
        match fill {
            // The miss's own client: Pingora (`HttpCache::set_miss_handler`) takes only the body
            // reader from this answer and keeps the meta it gave the miss handler, so the meta
            // here is a stand-in instead of a copy of the stored header, which it would not read.
            // A test of any miss's response headers would fail if Pingora began to use it.
            Some(fill) => Ok(Some((
                stand_in_meta()?,
                Box::new(FillHit::new(fill, self.buffers.clone())) as HitHandler,
            ))),
            // Finished already: the object is in a tier now, or was not admitted.
            None => self.lookup(key, trace).await,
        }
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<MissHandler> {
        let id = self.next_fill.fetch_add(1, Ordering::Relaxed);
        let length = content_length(meta);
        let keep = length.is_none_or(|l| l <= self.memory.max_object_size());
        let combined = key.combined_bin();
        let mut deferred = false;
        let disk = match self.disk {
            Some(d) if length.is_some_and(|l| l > d.max_object_size()) => {
                d.rejected();
                None
            }
            // Not asked for often enough yet: the memory tier may still take it.
            Some(d) if !d.admits_use(&combined) => None,
            // A body known to fit the memory tier is held whole by the fill anyway, so its file
            // is written in one go once it ends: the response waits on no disk work at all.
            Some(_) if keep && length.is_some() => {
                deferred = true;
                None
            }
            Some(d) => match tokio::task::spawn_blocking(move || d.begin(&combined)).await {
                Ok(Ok(pending)) => Some(pending),
                Ok(Err(e)) => {
                    d.write_failed(&e);
                    None
                }
                Err(_) => None,
            },
            None => None,
        };
        let file = disk.as_ref().map(|p| p.writer.shared());
        let head = Head::of_live(Bytes::copy_from_slice(key.primary_key()), meta)?;
        let fill = Arc::new(Fill::new(id, key.primary_bin(), Arc::new(head), file, keep));
        self.fills
            .lock()
            .entry(combined)
            .or_default()
            .push(fill.clone());
        Ok(Box::new(TieredMiss {
            storage: self,
            fill,
            combined,
            primary: key.primary_bin(),
            written: 0,
            tag: id.to_be_bytes(),
            finished: false,
            disk,
            deferred,
            keep,
        }))
    }

    async fn purge(
        &'static self,
        target: PurgeTarget<'_>,
        _purge_type: PurgeType,
        _trace: &SpanHandle,
    ) -> Result<PurgeOutcome> {
        let combined = target.key().combined_bin();
        let mut found = self.memory.remove(&combined);
        if let Some(disk) = self.disk {
            let (n, done) = disk.remove(&[combined]);
            if n > 0 {
                found = true;
                done.await
                    .map_err(|_| Error::explain(ErrorType::InternalError, "catalog is gone"))?
                    .map_err(|e| Error::because(ErrorType::InternalError, "purge", e))?;
            }
        }
        Ok(if found {
            PurgeOutcome::Purged(None)
        } else {
            PurgeOutcome::NotFound
        })
    }

    async fn update_meta(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<bool> {
        let combined = key.combined_bin();
        // A revalidation that began before a purge refreshes nothing the purge covers.
        let mut found = self
            .memory
            .update_meta(&combined, meta, |o| self.admits(&o.primary, &o.head));
        if let Some(disk) = self.disk {
            let meta = meta.serialize()?;
            let primary = key.primary_bin();
            let admit = |r: &Record| self.admits_record(&primary, r);
            match disk.update_meta(&combined, meta, admit).await {
                Ok(on_disk) => found |= on_disk,
                Err(e) => disk.write_failed(&e),
            }
        }
        Ok(found)
    }

    fn support_streaming_partial_write(&self) -> bool {
        true
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}

/// Writes one response: chunks go to the disk file (if the disk takes it) and to the fill that
/// readers follow; `finish` offers a small body to memory and commits the file.
struct TieredMiss {
    storage: &'static TieredStorage,
    fill: Arc<Fill>,
    combined: Hash,
    primary: Hash,
    written: u64,
    tag: [u8; 8],
    finished: bool,
    disk: Option<PendingWrite>,
    /// The disk file is written from the whole body at `finish`.
    deferred: bool,
    /// Still small enough for the memory tier.
    keep: bool,
}

impl TieredMiss {
    /// Writes a chunk to the disk file; false (and the file dropped) if the disk cannot take it.
    async fn write_disk(&mut self, data: &Bytes) -> bool {
        let (Some(mut pending), Some(disk)) = (self.disk.take(), self.storage.disk) else {
            return false;
        };
        if self.written > disk.max_object_size() {
            disk.rejected();
            tokio::task::spawn_blocking(move || disk.abandon(pending));
            return false;
        }
        let chunk = data.clone();
        let wrote = tokio::task::spawn_blocking(move || {
            let r = pending.writer.write(&chunk);
            (pending, r)
        })
        .await;
        match wrote {
            Ok((pending, Ok(()))) => {
                self.disk = Some(pending);
                true
            }
            Ok((pending, Err(e))) => {
                disk.write_failed(&e.into());
                tokio::task::spawn_blocking(move || disk.abandon(pending));
                false
            }
            Err(e) => {
                disk.write_failed(&DiskError::Task(e));
                false
            }
        }
    }
}

/// The response's Content-Length, when it has one.
fn content_length(meta: &CacheMeta) -> Option<u64> {
    meta.headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// What a whole body costs while it waits for the disk: the body, its head, and the fill and
/// task around them.
fn queued_weight(body: &Bytes, fill: &Fill) -> u64 {
    body.len() as u64 + fill.head.weight_bytes() + 512
}

/// A body on its way to the disk tier: a file written as it arrived, or the whole body.
enum ToDisk {
    Written(PendingWrite),
    /// A whole body, and the room it holds in the write queue.
    Whole {
        body: Bytes,
        queued: u64,
    },
}

/// A finished body on its way into the disk tier.
struct DiskCommit {
    body: ToDisk,
    fill: Arc<Fill>,
    combined: Hash,
    primary: Hash,
    body_len: u64,
}

impl DiskCommit {
    /// Publishes and commits the file, then retires the fill that stood in for it.
    async fn run(self, storage: &'static TieredStorage, disk: &'static DiskTier) {
        let DiskCommit {
            body,
            fill,
            combined,
            primary,
            body_len,
        } = self;
        let queued = match &body {
            ToDisk::Whole { queued, .. } => *queued,
            ToDisk::Written(_) => 0,
        };
        let head = fill.head.clone();
        let published = storage
            .writers
            .run(move || {
                // Compressed here, off the response's path: only a body the disk takes needs it.
                let meta = match head.serialize() {
                    Ok(meta) => meta,
                    Err(e) => {
                        if let ToDisk::Written(pending) = body {
                            disk.abandon(pending);
                        }
                        return Err(DiskError::Meta(e));
                    }
                };
                let gen = match body {
                    ToDisk::Written(pending) => disk.publish(pending, &combined),
                    ToDisk::Whole { body, .. } => disk.write_whole(&combined, &body),
                }?;
                Ok((gen, meta))
            })
            .await;
        // Also after a panicked write: the room must come back.
        storage.queued.remove(queued);
        let result = match published {
            Ok(Ok((gen, meta))) => {
                let record = Record {
                    meta,
                    key: fill.head.key.to_vec(),
                };
                let admit = || storage.admits_fill(&fill);
                disk.commit(combined, gen, body_len, primary, &record, admit)
                    .await
            }
            Ok(Err(e)) => Err(e),
            Err(e) => Err(DiskError::Writer(e)),
        };
        if let Err(e) = result {
            disk.write_failed(&e);
        }
        storage.unregister(&combined, fill.id);
    }
}

#[async_trait]
impl HandleMiss for TieredMiss {
    async fn write_body(&mut self, data: Bytes, _eof: bool) -> Result<()> {
        self.written += data.len() as u64;
        if self.written > self.storage.max_object_size() {
            // Pingora's max-file-size check normally stops this first; never buffer unbounded.
            return Error::e_explain(
                ErrorType::InternalError,
                "response grew past the cache's max_object_size",
            );
        }
        if self.keep && self.written > self.storage.memory.max_object_size() {
            self.keep = false;
        }
        if data.is_empty() {
            return Ok(());
        }
        let in_file = self.write_disk(&data).await;
        self.fill.append(data, in_file);
        if !self.keep {
            self.fill.release_memory();
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<MissFinishType> {
        let size = self.written as usize;
        let whole = if self.keep || self.deferred {
            self.fill.concat()
        } else {
            None
        };
        let storage = self.storage;
        let mut in_memory = false;
        if let (true, Some(body)) = (self.keep, &whole) {
            in_memory = storage.memory.put_if(
                Arc::new(StoredObject::of_head(
                    self.combined,
                    self.primary,
                    self.fill.head.clone(),
                    body.clone(),
                )),
                |_| storage.admits_fill(&self.fill),
            );
        }
        self.fill.set(Progress::Done);
        self.finished = true;
        if in_memory {
            // Lookups find it in memory now; the fill need not stand in for the disk write.
            storage.unregister(&self.combined, self.fill.id);
        }
        let body = match (self.disk.take(), whole, storage.disk) {
            (Some(pending), _, _) => Some(ToDisk::Written(pending)),
            (None, Some(body), Some(disk)) if self.deferred => {
                let queued = queued_weight(&body, &self.fill);
                if storage.queued.try_add(queued) {
                    Some(ToDisk::Whole { body, queued })
                } else {
                    disk.rejected();
                    None
                }
            }
            _ => None,
        };
        match (body, storage.disk) {
            (Some(body), Some(disk)) => {
                // Followers have the whole body already; until the file is durable and
                // committed, the memory tier or else the fill answers lookups.
                let commit = DiskCommit {
                    body,
                    fill: self.fill.clone(),
                    combined: self.combined,
                    primary: self.primary,
                    body_len: self.written,
                };
                tokio::spawn(commit.run(storage, disk));
            }
            _ => storage.unregister(&self.combined, self.fill.id),
        }
        Ok(MissFinishType::Created(size))
    }

    fn streaming_write_tag(&self) -> Option<&[u8]> {
        Some(&self.tag)
    }
}

impl Drop for TieredMiss {
    fn drop(&mut self) {
        if !self.finished {
            self.storage.unregister(&self.combined, self.fill.id);
            self.fill.set(Progress::Aborted);
            if let (Some(pending), Some(disk)) = (self.disk.take(), self.storage.disk) {
                disk.abandon(pending);
            }
        }
    }
}

/// Which source a hit comes from, for `Cache-Status` `detail`: a tier, or a fill in flight that
/// this request follows (a coalesced miss).
pub fn hit_source(hit: &HitHandler) -> Source {
    let any = hit.as_any();
    if let Some(body) = any.downcast_ref::<BodyHit>() {
        Source::Tier(body.tier)
    } else if any.is::<DiskHit>() {
        Source::Tier(Tier::Disk)
    } else {
        Source::Coalesced
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_write_queue_turns_bodies_away_past_its_limit_until_room_is_given_back() {
        let q = WriteQueue {
            bytes: AtomicU64::new(0),
            limit: 100,
        };
        assert!(q.try_add(60));
        assert!(q.try_add(40));
        assert!(!q.try_add(1));
        q.remove(60);
        assert!(!q.try_add(61));
        assert!(q.try_add(60));
    }
}
