//! The disk tier: one body file per object under `objects/<xx>/`, a redb catalog, and an
//! in-memory index with an LRU weighted in bytes.
//!
//! A write goes to `objects/<xx>/<hash>-<gen>.<run>.part`, is fsynced and renamed to
//! `<hash>-<gen>` in the same folder, and only then is it entered in the index and the catalog; so
//! the catalog never names a file that is not complete. The temp file sits beside its final name
//! because file creation and rename lock their directory: one shared temp folder serialized every
//! miss on one lock (and a rename across folders takes two). What an interrupted run leaves
//! behind (temp files, published files never committed, entries whose file is gone) is cleared
//! at the next start by [`DiskTier::sweep`], in the background, while the node already serves.
//!
//! Every method that touches the file system blocks: the storage calls them off the async workers.

use edge_config::edge::DiskSettings;
use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::Mutex;
use pingora::cache::key::str2hex;
use tokio::sync::oneshot;

use super::admission::DiskAdmission;
use super::body_file::{BodyError, BodyFile, BodyWriter};
use super::catalog::{Catalog, CommitError, Entry, Op, Record, SideRecords};
use super::heads::Heads;
use super::index::Index;
use super::object::Head;
use super::open_files::OpenFiles;
use super::stats::TierStats;
use super::writers::Panicked;
use super::Hash;

/// Why the disk tier could not do something. None of these reach a client: the storage serves
/// from another tier or the origin instead, and counts the error.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// A body file could not be read or written.
    #[error(transparent)]
    Body(#[from] BodyError),
    /// The catalog failed.
    #[error("catalog: {0}")]
    Catalog(#[from] redb::Error),
    /// The catalog's committer reported a failed commit.
    #[error("catalog commit: {0}")]
    Commit(#[from] CommitError),
    /// A blocking task doing disk work panicked or was cancelled.
    #[error("disk task: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// A disk writer thread panicked during the write.
    #[error("disk writer: {0}")]
    Writer(#[from] Panicked),
    /// An object's meta could not be serialized for its record.
    #[error("meta: {0}")]
    Meta(#[source] Box<pingora::Error>),
}

impl From<io::Error> for DiskError {
    fn from(e: io::Error) -> Self {
        DiskError::Body(BodyError::Io(e))
    }
}

/// A body being written.
pub struct PendingWrite {
    /// Generation: orders writes to one key and names the file.
    pub gen: u64,
    /// The writer.
    pub writer: BodyWriter,
    tmp: PathBuf,
}

/// How a hit reads a body.
#[derive(Debug, Clone, Copy)]
pub struct HowToRead {
    /// Bodies up to this size are read whole (in one read); larger ones are streamed.
    pub whole_limit: u64,
    /// Read only whole and only from the page cache, so that the read cannot wait for the disk
    /// (the open of a file not kept open, and the catalog read of a head not kept, still can).
    pub cached_only: bool,
    /// Check every block of a whole read, even those checked before through a kept file: the
    /// body is to be promoted to memory, where it is never checked again.
    pub check_all: bool,
}

/// A body read for a hit.
pub enum DiskBody {
    /// Small enough to read whole: read and checked (once per opened file).
    Whole(Bytes),
    /// Streamed a block at a time, each checked the first time its opened file reads it; the
    /// first block is read already, so damage there is a miss rather than a response that fails
    /// midway.
    File(Arc<BodyFile>, Bytes),
}

/// What the scrub found of one body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scrubbed {
    /// Every block as written.
    Whole,
    /// Damaged: removed, to be refetched on its next request.
    Damaged,
    /// Removed or replaced since it was listed.
    Gone,
}

/// What a read for a hit found.
pub enum Found {
    /// The object's head and body.
    Object(Arc<Head>, DiskBody),
    /// Removed or replaced since the index lookup, or its record is not committed yet.
    Gone,
    /// Not read: the page cache does not hold it (a `cached_only` read).
    Cold,
}

/// The disk tier.
pub struct DiskTier {
    objects: PathBuf,
    order_file: PathBuf,
    catalog: Catalog,
    index: Index,
    /// Decoded heads of objects read lately.
    heads: Heads,
    /// Body files read lately, kept open.
    files: OpenFiles,
    /// Counts requests when objects are written from their N-th on; `None`: every one is.
    admission: Option<DiskAdmission>,
    max_object_size: u64,
    next_gen: AtomicU64,
    /// Generations below this were written by an earlier run: the sweep may judge their files.
    first_gen: u64,
    /// Ends the names of this run's temp files (`.<run>.part`): generations restart after the
    /// last committed one, so only this tells an earlier run's temp file from one being written.
    part_suffix: String,
    /// Serializes index changes with their file deletions and catalog ops, so the catalog sees
    /// changes to one key in the order the index made them.
    write: Mutex<()>,
    stats: TierStats,
    /// The side records the catalog held at start-up, until the layer that owns them takes them.
    side_records: Mutex<Option<SideRecords>>,
}

const ORDER_FILE: &str = "lru.order";
/// Suffix of a body file still being written.
const PART: &str = ".part";

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Lower-case hex of `bytes`. By table: `write!` per byte showed in the profile of a small disk
/// hit, which names its file with it.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

impl DiskTier {
    /// [`open`](Self::open), trying again for up to `patience` while it fails: the catalog may
    /// still be held by the process an upgrade replaces, or by a tier just dropped (its
    /// committer thread lets go a moment later). `waiting` hears the first failure.
    pub fn open_waiting(
        settings: &DiskSettings,
        patience: Duration,
        waiting: impl FnOnce(&DiskError),
    ) -> Result<DiskTier, DiskError> {
        let started = Instant::now();
        let mut waiting = Some(waiting);
        loop {
            match DiskTier::open(settings) {
                Err(e) if started.elapsed() < patience => {
                    if let Some(w) = waiting.take() {
                        w(&e);
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                opened => return opened,
            }
        }
    }

    /// Opens the tier at `settings.path`, creating it if needed, and rebuilds the index from the
    /// catalog. Fails if the directory cannot be used or another process has it open.
    pub fn open(settings: &DiskSettings) -> Result<DiskTier, DiskError> {
        let root = &settings.path;
        let max_size = settings.max_size;
        let objects = root.join("objects");
        for dir in 0..=255u8 {
            fs::create_dir_all(objects.join(format!("{dir:02x}")))?;
        }
        let (catalog, entries) = Catalog::open(&root.join("catalog.redb"))?;
        let side_records = catalog.side_records()?;
        let order_file = root.join(ORDER_FILE);
        let saved = read_order(&order_file);
        let next_gen = entries.iter().map(|(_, e)| e.gen).max().unwrap_or(0) + 1;
        let index = Index::new(max_size, entries.len().max(1024));
        let mut by_hash: HashMap<Hash, Entry> = entries.into_iter().collect();
        // Objects committed after the order was saved (a crash since) are the newest: they go
        // first, newest first; then the saved order, most recent first.
        let saved_set: HashSet<&Hash> = saved.iter().collect();
        let mut newer: Vec<(Hash, Entry)> = by_hash
            .iter()
            .filter(|(h, _)| !saved_set.contains(h))
            .map(|(h, e)| (*h, *e))
            .collect();
        newer.sort_unstable_by_key(|(_, e)| std::cmp::Reverse((e.created, e.gen)));
        for (h, e) in newer {
            by_hash.remove(&h);
            index.insert_oldest(h, e);
        }
        for h in saved {
            if let Some(e) = by_hash.remove(&h) {
                index.insert_oldest(h, e);
            }
        }
        let tier = DiskTier {
            objects,
            order_file,
            catalog,
            index,
            heads: Heads::new(settings.meta_cache),
            files: OpenFiles::new(),
            admission: DiskAdmission::new(settings.min_uses),
            max_object_size: settings.max_object_size,
            next_gen: AtomicU64::new(next_gen),
            first_gen: next_gen,
            part_suffix: format!(
                ".{:x}{PART}",
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos())
            ),
            write: Mutex::new(()),
            stats: TierStats::default(),
            side_records: Mutex::new(Some(side_records)),
        };
        // The bound may have shrunk since the last run.
        let _w = tier.write.lock();
        tier.evict_locked();
        drop(_w);
        tier.refresh_gauges();
        Ok(tier)
    }

    /// Largest body the tier takes.
    pub fn max_object_size(&self) -> u64 {
        self.max_object_size
    }

    /// Counters, with the byte and object gauges brought up to date.
    pub fn stats(&self) -> &TierStats {
        self.refresh_gauges();
        &self.stats
    }

    fn refresh_gauges(&self) {
        self.stats
            .bytes
            .store(self.index.bytes(), Ordering::Relaxed);
        self.stats
            .objects
            .store(self.index.count() as u64, Ordering::Relaxed);
    }

    /// Removes the body file of `hash` at `gen`, closing the kept descriptor of `hash` first so
    /// that it does not keep the file's space.
    fn unlink(&self, hash: &Hash, gen: u64) {
        self.files.forget(hash);
        let _ = fs::remove_file(self.path_of(hash, gen));
    }

    fn path_of(&self, hash: &Hash, gen: u64) -> PathBuf {
        use std::fmt::Write;
        let mut name = hex(hash);
        let _ = write!(name, "-{gen}");
        let mut path = self.objects.join(&name[..2]);
        path.push(name);
        path
    }

    fn part_of(&self, hash: &Hash, gen: u64) -> PathBuf {
        let mut path = self.path_of(hash, gen).into_os_string();
        path.push(&self.part_suffix);
        path.into()
    }

    /// The committed entry for `hash`, marked recently used.
    pub fn lookup(&self, hash: &Hash) -> Option<Entry> {
        self.index.get(hash)
    }

    /// Reads an object for a hit: its head, and its body whole or opened for streaming, as
    /// `read` says. Blocking. A body the disk would have to supply to a `cached_only` read is
    /// [`Found::Cold`], to be read again without it on a blocking thread.
    pub fn read(&self, hash: &Hash, entry: &Entry, read: HowToRead) -> Result<Found, DiskError> {
        let Some(head) = self.head(hash, entry.gen)? else {
            return Ok(Found::Gone);
        };
        match self.read_body(hash, entry, read) {
            Ok(Some(b)) => Ok(Found::Object(head, b)),
            Ok(None) => Ok(Found::Cold),
            // Replaced or removed between the index lookup and the open: not damage.
            Err(BodyError::Io(e))
                if e.kind() == io::ErrorKind::NotFound && !self.index.holds(hash, entry.gen) =>
            {
                Ok(Found::Gone)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The body of `hash` at `entry`, through its kept file, or a file opened (and kept).
    fn read_body(
        &self,
        hash: &Hash,
        entry: &Entry,
        read: HowToRead,
    ) -> Result<Option<DiskBody>, BodyError> {
        let whole = entry.body_len <= read.whole_limit;
        if !whole && read.cached_only {
            return Ok(None);
        }
        if let Some(file) = self.files.get(hash, entry.gen) {
            // A file deleted behind the tier's back, or replaced by a rename over its name, has
            // no link left: it is opened again by name, as an unkept one would be. One `statx`
            // instead of the path walk, open and close.
            if file.is_linked()? {
                return if whole {
                    Ok(file
                        .read_all(read.cached_only, read.check_all)?
                        .map(DiskBody::Whole))
                } else {
                    let first = file.read_block(0)?;
                    Ok(Some(DiskBody::File(file, first)))
                };
            }
            self.files.forget(hash);
        }
        let path = self.path_of(hash, entry.gen);
        let (file, body) = if whole {
            match BodyFile::open_whole(&path, hash, entry.body_len, read.cached_only)? {
                Some((file, body)) => (Arc::new(file), DiskBody::Whole(body)),
                None => return Ok(None),
            }
        } else {
            let file = Arc::new(BodyFile::open(&path, hash, entry.body_len)?);
            let first = file.read_block(0)?;
            (file.clone(), DiskBody::File(file, first))
        };
        self.files.put(*hash, entry.gen, file);
        // Removed since the lookup: its unlink may have run before the put, so that nothing
        // pins the removed file, take it back out.
        if !self.index.holds(hash, entry.gen) {
            self.files.forget(hash);
        }
        Ok(Some(body))
    }

    /// The head of `hash` as committed at `gen`: kept, or read from the catalog and kept. `None`
    /// if the catalog holds no record of that generation (its commit is still queued).
    fn head(&self, hash: &Hash, gen: u64) -> Result<Option<Arc<Head>>, DiskError> {
        if let Some(head) = self.heads.get(hash, gen) {
            return Ok(Some(head));
        }
        let stamp = self.heads.stamp();
        let Some(record) = self.catalog.record_at(hash, gen)? else {
            return Ok(None);
        };
        let head = Arc::new(Head::new(record.key.into(), record.meta));
        // An undecodable head is not kept: the caller removes the object.
        if head.decoded().is_some() {
            self.heads.put(stamp, *hash, gen, head.clone());
        }
        Ok(Some(head))
    }

    /// Counts a request for `combined` that reaches the origin; whether its response may be
    /// written to the tier (`cache.disk.admission.min_uses`).
    pub fn admits_use(&self, combined: &Hash) -> bool {
        let admitted = self.admission.as_ref().is_none_or(|a| a.admits(combined));
        TierStats::bump(if admitted {
            &self.stats.admitted
        } else {
            &self.stats.not_admitted
        });
        admitted
    }

    /// Records a failed read of `hash` at `entry`: counts it, logs it and removes the object,
    /// so the next request is a miss that stores a good copy.
    pub fn fail(&self, hash: &Hash, entry: &Entry, error: &DiskError) {
        TierStats::bump(&self.stats.errors);
        tracing::warn!(object = %hex(hash), gen = entry.gen, %error, "disk cache read failed; object removed");
        let _w = self.write.lock();
        if self.index.remove(hash, Some(entry.gen)).is_some() {
            self.unlink(hash, entry.gen);
            self.catalog.submit_detached(vec![Op::Remove(*hash)]);
        }
    }

    /// Counts and logs a failed write; the response it was for is still served.
    pub fn write_failed(&self, error: &DiskError) {
        TierStats::bump(&self.stats.errors);
        tracing::warn!(%error, "disk cache write failed; serving without storing");
    }

    /// Counts an object too large for this tier.
    pub fn rejected(&self) {
        TierStats::bump(&self.stats.rejections);
    }

    /// Counts a hit.
    pub fn hit(&self) {
        TierStats::bump(&self.stats.hits);
    }

    /// Starts writing the body of `hash`. Blocking.
    pub fn begin(&self, hash: &Hash) -> Result<PendingWrite, DiskError> {
        let gen = self.next_gen.fetch_add(1, Ordering::Relaxed);
        let tmp = self.part_of(hash, gen);
        let writer = BodyWriter::create(&tmp)?;
        Ok(PendingWrite { gen, writer, tmp })
    }

    /// Writes and publishes a whole body at once: [`begin`](Self::begin), one write and
    /// [`publish`](Self::publish). Blocking; returns the generation to commit.
    pub fn write_whole(&self, hash: &Hash, body: &[u8]) -> Result<u64, DiskError> {
        let mut pending = self.begin(hash)?;
        if let Err(e) = pending.writer.write(body) {
            self.abandon(pending);
            return Err(e.into());
        }
        self.publish(pending, hash)
    }

    /// Drops a write that will not be committed. Blocking.
    pub fn abandon(&self, pending: PendingWrite) {
        let _ = fs::remove_file(&pending.tmp);
    }

    /// Finishes a body file (checksums, fsync) and moves it into place. Blocking.
    pub fn publish(&self, pending: PendingWrite, hash: &Hash) -> Result<u64, DiskError> {
        let result = pending
            .writer
            .finish(hash)
            .and_then(|_| fs::rename(&pending.tmp, self.path_of(hash, pending.gen)));
        if let Err(e) = result {
            let _ = fs::remove_file(&pending.tmp);
            return Err(e.into());
        }
        Ok(pending.gen)
    }

    /// Enters a published body in the index and the catalog, evicting what no longer fits.
    /// Returns when the catalog has it (or says why not); a write older than what the index
    /// holds for the key is dropped instead.
    ///
    /// `admit` is asked under the tier's writer lock, as [`barrier`](Self::barrier) is taken:
    /// a purge either sees this object in the catalog or this commit sees the purge.
    pub async fn commit(
        &self,
        hash: Hash,
        gen: u64,
        body_len: u64,
        primary: Hash,
        record: &Record,
        admit: impl FnOnce() -> bool,
    ) -> Result<bool, DiskError> {
        let record = record.encode();
        let entry = Entry {
            gen,
            body_len,
            record_len: record.len() as u32,
            created: now_secs(),
            primary,
        };
        let done = {
            let _w = self.write.lock();
            if self.index.peek(&hash).is_some_and(|e| e.gen > gen) || !admit() {
                self.unlink(&hash, gen);
                return Ok(false);
            }
            if let Some(old) = self.index.insert(hash, entry) {
                self.unlink(&hash, old.gen);
            }
            let done = self.catalog.submit(vec![Op::Put {
                hash,
                entry,
                record,
            }]);
            self.evict_locked();
            done
        };
        self.await_commit(done).await.inspect_err(|_| {
            // Not durable: take it back out rather than serve what a restart would forget.
            let _w = self.write.lock();
            if self.index.remove(&hash, Some(gen)).is_some() {
                self.unlink(&hash, gen);
            }
        })?;
        Ok(true)
    }

    async fn await_commit(
        &self,
        done: oneshot::Receiver<Result<(), CommitError>>,
    ) -> Result<(), DiskError> {
        Ok(done.await.map_err(|_| CommitError::Stopped)??)
    }

    fn evict_locked(&self) {
        let victims = self.index.evict_to_limit();
        if victims.is_empty() {
            return;
        }
        let mut ops = Vec::with_capacity(victims.len());
        for (hash, entry) in victims {
            self.unlink(&hash, entry.gen);
            ops.push(Op::Remove(hash));
            TierStats::bump(&self.stats.evictions);
        }
        self.catalog.submit_detached(ops);
    }

    /// Removes objects; the receiver says when the removal is durable. Blocking (unlinks).
    pub fn remove(&self, hashes: &[Hash]) -> (usize, oneshot::Receiver<Result<(), CommitError>>) {
        let _w = self.write.lock();
        let mut ops = Vec::new();
        for hash in hashes {
            if let Some(old) = self.index.remove(hash, None) {
                self.unlink(hash, old.gen);
                ops.push(Op::Remove(*hash));
            }
        }
        let n = ops.len();
        (n, self.catalog.submit(ops))
    }

    /// Every stored hash of a URL (all its variants).
    pub fn of_primary(&self, primary: &Hash) -> Vec<Hash> {
        self.index.of_primary(primary)
    }

    /// Replaces the meta of a stored object (after a 304). Returns whether it was there.
    /// `admit` is asked as in [`commit`](Self::commit).
    pub async fn update_meta(
        &self,
        hash: &Hash,
        meta: (Vec<u8>, Vec<u8>),
        admit: impl FnOnce(&Record) -> bool,
    ) -> Result<bool, DiskError> {
        if self.index.peek(hash).is_none() {
            return Ok(false);
        }
        let Some(mut record) = self.catalog.record(hash)? else {
            return Ok(false);
        };
        record.meta = meta;
        let done = {
            let _w = self.write.lock();
            if !admit(&record) {
                return Ok(false);
            }
            self.catalog.submit(vec![Op::SetRecord {
                hash: *hash,
                record: record.encode(),
            }])
        };
        let committed = self.await_commit(done).await;
        // Once the catalog has the new record, or has failed to take it: either way what was
        // kept may no longer be what it holds.
        self.heads.forget(hash);
        committed?;
        Ok(true)
    }

    /// Waits for every commit that holds the writer lock now: after this, whatever it let in
    /// is in the index, and its catalog change is queued.
    pub fn barrier(&self) {
        drop(self.write.lock());
    }

    /// Waits until every queued catalog change is durable. Blocking.
    pub fn flush(&self) -> Result<(), DiskError> {
        Ok(self.catalog.flush()?)
    }

    /// Up to `limit` committed records in hash order after `after` (see [`Catalog::scan`]).
    /// Blocking.
    pub fn scan(
        &self,
        after: Option<&Hash>,
        limit: usize,
    ) -> Result<Vec<(Hash, Record)>, DiskError> {
        Ok(self.catalog.scan(after, limit)?)
    }

    /// The committed entry for `hash`, leaving its place in the eviction order alone.
    pub fn peek(&self, hash: &Hash) -> Option<Entry> {
        self.index.peek(hash)
    }

    /// Objects committed.
    pub fn count(&self) -> usize {
        self.index.count()
    }

    /// Reads and checks every block of the body of `hash` at `entry` through a file opened for
    /// it alone, whatever a kept file checked before; a body that fails is removed. Blocking.
    pub fn scrub(&self, hash: &Hash, entry: &Entry) -> Scrubbed {
        let checked = BodyFile::open(&self.path_of(hash, entry.gen), hash, entry.body_len)
            .and_then(|file| file.scrub());
        match checked {
            Ok(()) => {
                TierStats::bump(&self.stats.scrubbed);
                Scrubbed::Whole
            }
            // Replaced or removed since it was listed: not damage.
            Err(BodyError::Io(e))
                if e.kind() == io::ErrorKind::NotFound && !self.index.holds(hash, entry.gen) =>
            {
                Scrubbed::Gone
            }
            Err(e) => {
                self.fail(hash, entry, &e.into());
                // Counted once removed, so that whoever sees the count finds it gone.
                TierStats::bump(&self.stats.scrub_damaged);
                Scrubbed::Damaged
            }
        }
    }

    /// The primary hash of a stored object.
    pub fn primary_of(&self, hash: &Hash) -> Option<Hash> {
        self.index.peek(hash).map(|e| e.primary)
    }

    /// The side records read at start-up; `None` after the first call.
    pub fn take_side_records(&self) -> Option<SideRecords> {
        self.side_records.lock().take()
    }

    /// Commits side records ([`Op::PutSide`], [`Op::RetireSide`], [`Op::SetSideState`])
    /// durably, after every removal submitted before them.
    pub async fn save_side(&self, ops: Vec<Op>) -> Result<(), DiskError> {
        self.await_commit(self.catalog.submit(ops)).await
    }

    /// Clears what an earlier run left behind: temp files, body files no entry names (published
    /// but never committed, or evicted before a crash), and entries whose file is gone. Files of
    /// this run are not judged: a write may be between its rename and its commit. Blocking;
    /// returns the number of files and entries removed.
    pub fn sweep(&self) -> io::Result<(usize, usize)> {
        let mut files = 0;
        let mut seen = HashSet::new();
        for dir in fs::read_dir(&self.objects)? {
            let dir = dir?.path();
            for file in fs::read_dir(&dir)? {
                let path = file?.path();
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default();
                if name.ends_with(&self.part_suffix) {
                    continue;
                }
                let parsed = name.split_once('-').and_then(|(h, g)| {
                    // An earlier run's temp file parses as nothing, so it goes.
                    Some((str2hex(h)?, g.parse::<u64>().ok()?))
                });
                match parsed {
                    Some((_, gen)) if gen >= self.first_gen => {}
                    Some((hash, gen)) if self.index.holds(&hash, gen) => {
                        seen.insert(hash);
                    }
                    _ => {
                        if fs::remove_file(&path).is_ok() {
                            files += 1;
                        }
                    }
                }
            }
        }
        let missing: Vec<Hash> = self
            .index
            .order()
            .into_iter()
            .filter(|h| {
                !seen.contains(h) && self.index.peek(h).is_some_and(|e| e.gen < self.first_gen)
            })
            .collect();
        let (entries, _) = self.remove(&missing);
        Ok((files, entries))
    }

    /// Makes the catalog durable and saves the eviction order, for a clean stop. Blocking.
    pub fn close(&self) -> Result<(), DiskError> {
        self.catalog.flush()?;
        let order = self.index.order();
        let mut bytes = Vec::with_capacity(order.len() * 16);
        for h in &order {
            bytes.extend_from_slice(h);
        }
        let tmp = self.order_file.with_extension("tmp");
        fs::write(&tmp, &bytes)?;
        fs::rename(&tmp, &self.order_file)?;
        Ok(())
    }
}

/// The eviction order saved at the last clean stop, most recent first; empty if none.
fn read_order(path: &Path) -> Vec<Hash> {
    let Ok(bytes) = fs::read(path) else {
        return Vec::new();
    };
    bytes
        .chunks_exact(16)
        .filter_map(|c| c.try_into().ok())
        .collect()
}

/// A tier at `dir` for tests (1 GiB, objects up to 1 MiB), opened once the tier a test dropped
/// there has let go of it.
#[cfg(test)]
pub(crate) fn test_tier(dir: &Path) -> DiskTier {
    let settings = DiskSettings {
        path: dir.to_owned(),
        max_size: 1 << 30,
        max_object_size: 1 << 20,
        meta_cache: edge_config::edge::DEFAULT_META_CACHE,
        min_uses: 1,
        scrub_interval: Duration::ZERO,
    };
    DiskTier::open_waiting(&settings, Duration::from_secs(10), |_| {}).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hashes that all fall in the LRU's first shard, so the whole order is one list.
    /// A read of the whole body, as a hit small enough for memory makes it.
    const WHOLE: HowToRead = HowToRead {
        whole_limit: 1 << 20,
        cached_only: false,
        check_all: false,
    };

    fn h(n: u64) -> Hash {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&(n * 16).to_le_bytes());
        out[8..].copy_from_slice(&n.to_le_bytes());
        out
    }

    async fn put(tier: &DiskTier, n: u64) {
        let gen = tier.write_whole(&h(n), b"body").unwrap();
        let record = Record {
            meta: (vec![1], vec![2]),
            key: n.to_string().into_bytes(),
        };
        assert!(tier
            .commit(h(n), gen, 4, h(n), &record, || true)
            .await
            .unwrap());
    }

    /// A serialized meta whose header says `x-rev: <rev>`.
    fn meta(rev: u32) -> (Vec<u8>, Vec<u8>) {
        let now = SystemTime::now();
        let mut header = pingora::http::ResponseHeader::build(200, None).unwrap();
        header.insert_header("x-rev", rev.to_string()).unwrap();
        pingora::cache::CacheMeta::new(now + std::time::Duration::from_secs(60), now, 0, 0, header)
            .serialize()
            .unwrap()
    }

    /// Reads `hash` whole and returns its head and its `x-rev`.
    fn read_rev(tier: &DiskTier, hash: &Hash) -> (Arc<Head>, String) {
        let entry = tier.lookup(hash).unwrap();
        let Found::Object(head, _) = tier.read(hash, &entry, WHOLE).unwrap() else {
            panic!("not found");
        };
        let rev = String::from_utf8(
            head.decoded()
                .unwrap()
                .header
                .get("x-rev")
                .unwrap()
                .to_vec(),
        )
        .unwrap();
        (head, rev)
    }

    #[tokio::test]
    async fn a_hit_reads_the_record_as_committed_not_an_older_kept_head() {
        let dir = empty_dir("heads");
        let tier = &reopen(&dir);
        let commit = |rev: u32| {
            let gen = tier.write_whole(&h(1), b"body").unwrap();
            let record = Record {
                meta: meta(rev),
                key: b"k".to_vec(),
            };
            async move { tier.commit(h(1), gen, 4, h(1), &record, || true).await }
        };
        assert!(commit(1).await.unwrap());
        let (first, rev) = read_rev(tier, &h(1));
        assert_eq!(rev, "1");
        let (again, _) = read_rev(tier, &h(1));
        assert!(
            Arc::ptr_eq(&first, &again),
            "the second read uses the kept head"
        );

        // A 304 refreshes the record in place.
        assert!(tier.update_meta(&h(1), meta(2), |_| true).await.unwrap());
        assert_eq!(read_rev(tier, &h(1)).1, "2");

        // A new response replaces the object.
        assert!(commit(3).await.unwrap());
        assert_eq!(read_rev(tier, &h(1)).1, "3");

        // A body file whose entry is not committed has no record yet.
        let gen = tier.write_whole(&h(1), b"body").unwrap();
        let entry = Entry {
            gen,
            ..tier.lookup(&h(1)).unwrap()
        };
        assert!(matches!(
            tier.read(&h(1), &entry, WHOLE).unwrap(),
            Found::Gone
        ));
        let _ = fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_kept_descriptor_is_closed_when_its_file_is_removed_or_replaced() {
        let dir = empty_dir("files");
        let tier = &reopen(&dir);
        let kept = |n: u64| {
            let entry = tier.lookup(&h(n)).unwrap();
            assert!(matches!(
                tier.read(&h(n), &entry, WHOLE).unwrap(),
                Found::Object(_, DiskBody::Whole(_))
            ));
            let file = tier.files.get(&h(n), entry.gen).expect("kept open");
            (entry.gen, file)
        };
        put(tier, 1).await;
        let (first, file) = kept(1);
        let (_, again) = kept(1);
        assert!(
            Arc::ptr_eq(&file, &again),
            "the second read uses the kept descriptor"
        );
        drop((file, again));

        // Replaced: the old generation's descriptor is closed, the new one is opened.
        put(tier, 1).await;
        assert!(tier.files.get(&h(1), first).is_none());
        let (second, file) = kept(1);
        assert_ne!(first, second);
        drop(file);

        // Removed, and evicted.
        tier.remove(&[h(1)]);
        assert!(tier.files.get(&h(1), second).is_none());
        put(tier, 2).await;
        let (gen, file) = kept(2);
        drop(file);
        tier.fail(
            &h(2),
            &tier.lookup(&h(2)).unwrap(),
            &DiskError::Commit(CommitError::Stopped),
        );
        assert!(tier.files.get(&h(2), gen).is_none());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn file_names_are_the_lower_case_hex_the_sweep_parses() {
        let hash = [
            0x00, 0x0f, 0xa0, 0xff, 0x12, 0x9e, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
        ];
        assert_eq!(hex(&hash), "000fa0ff129e00000000000000000001");
        for n in [0, 1, 255, 1 << 40] {
            assert_eq!(str2hex(&hex(&h(n))), Some(h(n)));
        }
    }

    /// A new, empty directory for one test's tier.
    fn empty_dir(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("edge-disk-{test}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn reopen(dir: &Path) -> DiskTier {
        test_tier(dir)
    }

    #[tokio::test]
    async fn side_records_survive_reopening_until_retired() {
        let dir = empty_dir("purge");
        let tier = reopen(&dir);
        assert!(tier.take_side_records().unwrap().state.is_none());
        let ban = |id: u64| Op::PutSide {
            id,
            bytes: format!("ban {id}").into_bytes(),
        };
        tier.save_side(vec![
            ban(1),
            ban(2),
            ban(3),
            Op::SetSideState(b"7".to_vec()),
        ])
        .await
        .unwrap();
        tier.save_side(vec![Op::RetireSide(2)]).await.unwrap();
        drop(tier);
        let tier = reopen(&dir);
        let records = tier.take_side_records().unwrap();
        assert_eq!(records.state.as_deref(), Some(&b"7"[..]));
        assert_eq!(records.rows, vec![(3, b"ban 3".to_vec())]);
        assert!(tier.take_side_records().is_none());
        drop(tier);
        let _ = fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn the_eviction_order_survives_a_clean_stop_and_a_crash() {
        let dir = empty_dir("order");
        let tier = reopen(&dir);
        for n in 1..=5 {
            put(&tier, n).await;
        }
        tier.lookup(&h(2)).unwrap();
        let used = vec![h(2), h(5), h(4), h(3), h(1)];
        assert_eq!(tier.index.order(), used);

        // `close` blocks, as it does after the server's runtimes have stopped.
        std::thread::scope(|s| s.spawn(|| tier.close()).join())
            .unwrap()
            .unwrap();
        drop(tier);
        let tier = reopen(&dir);
        assert_eq!(tier.index.order(), used, "the saved order");

        // Committed after the save, then no clean stop: newest, ahead of the saved order.
        put(&tier, 6).await;
        drop(tier);
        let tier = reopen(&dir);
        let mut expected = vec![h(6)];
        expected.extend(&used);
        assert_eq!(tier.index.order(), expected);

        // No saved order at all: commit order, newest first.
        drop(tier);
        fs::remove_file(dir.join(ORDER_FILE)).unwrap();
        let tier = reopen(&dir);
        assert_eq!(tier.index.order(), vec![h(6), h(5), h(4), h(3), h(2), h(1)]);
        drop(tier);
        let _ = fs::remove_dir_all(&dir);
    }
}
