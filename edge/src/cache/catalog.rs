//! The disk tier's catalog: a redb database (an ACID B-tree) that says which body files hold
//! committed objects.
//!
//! Two tables share a key (the object's combined hash): `entries`, small fixed records read in
//! full at start-up to rebuild the in-memory index, and `records`, the serialized meta and cache
//! key read on a hit. A body file is published (fsync, rename) before its entry is committed, so
//! a committed entry always names a complete file; files without an entry are orphans that the
//! start-up sweep removes.
//!
//! Writes go through one committer thread that folds whatever is queued into one transaction:
//! under a burst of misses, the cost of a durable commit is shared by many objects. Commits that
//! would follow each other closely are spaced ([`COMMIT_SPACING`]) so that there is something to
//! share: a change after a quiet spell is committed at once.

use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

use super::body_file::file_len;
use super::Hash;

const ENTRIES: TableDefinition<&[u8; 16], &[u8]> = TableDefinition::new("entries");
const RECORDS: TableDefinition<&[u8; 16], &[u8]> = TableDefinition::new("records");
/// Side records by ascending id, opaque to the cache (purge keeps its rules here, until its
/// sweep has applied them to every object). The table names are part of the file format.
const SIDE_ROWS: TableDefinition<u64, &[u8]> = TableDefinition::new("bans");
/// One opaque side state (purge's position in its log).
const SIDE: TableDefinition<&str, &[u8]> = TableDefinition::new("purge");
const SIDE_STATE: &str = "state";

/// redb's own page cache. Its default (1 GiB) would count against the node's memory on top of
/// the memory tier; the operating system's page cache still holds the catalog's hot pages.
const CACHE_BYTES: usize = 64 << 20;

/// Most write jobs folded into one transaction.
const MAX_BATCH: usize = 4096;

/// Least time from the end of one commit to the start of the next. Without it, a miss storm
/// committed hundreds of times a second with one or two objects each, and every commit (its
/// page copies, a dozen page writes, an `fdatasync`) added up to a large share of the CPU.
/// Spacing bounds commits to 100 a second under load; what waits on a commit (a
/// purge, a fill standing in for its disk write) waits at most this much longer, and only
/// then.
const COMMIT_SPACING: Duration = Duration::from_millis(10);

/// What the index keeps of a committed object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Generation: names the body file, and orders writes to the same key.
    pub gen: u64,
    /// Body length in bytes.
    pub body_len: u64,
    /// Length of the serialized record (meta and key), counted in the tier's size.
    pub record_len: u32,
    /// When it was committed (Unix seconds): the eviction order rebuilt after a crash.
    pub created: u64,
    /// The primary hash, shared by every variant of a URL.
    pub primary: Hash,
}

const ENTRY_LEN: usize = 8 + 8 + 4 + 8 + 16;

impl Entry {
    /// Bytes this object costs the tier: its file and its catalog record.
    pub fn weight(&self) -> u64 {
        file_len(self.body_len) + u64::from(self.record_len)
    }

    fn encode(&self) -> [u8; ENTRY_LEN] {
        let mut out = [0u8; ENTRY_LEN];
        out[0..8].copy_from_slice(&self.gen.to_le_bytes());
        out[8..16].copy_from_slice(&self.body_len.to_le_bytes());
        out[16..20].copy_from_slice(&self.record_len.to_le_bytes());
        out[20..28].copy_from_slice(&self.created.to_le_bytes());
        out[28..44].copy_from_slice(&self.primary);
        out
    }

    fn decode(b: &[u8]) -> Option<Entry> {
        if b.len() != ENTRY_LEN {
            return None;
        }
        let u64_at = |i: usize| {
            b.get(i..i + 8)
                .and_then(|s| s.try_into().ok())
                .map(u64::from_le_bytes)
        };
        Some(Entry {
            gen: u64_at(0)?,
            body_len: u64_at(8)?,
            record_len: u32::from_le_bytes(b.get(16..20)?.try_into().ok()?),
            created: u64_at(20)?,
            primary: b.get(28..44)?.try_into().ok()?,
        })
    }
}

/// The part of an object read on a hit: Pingora's serialized meta, and the cache key it was
/// stored under (kept for purges by prefix and host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// `CacheMeta::serialize()` output.
    pub meta: (Vec<u8>, Vec<u8>),
    /// The primary cache key, before hashing.
    pub key: Vec<u8>,
}

impl Record {
    /// Serialized form: three length-prefixed byte strings.
    pub fn encode(&self) -> Vec<u8> {
        let parts = [&self.meta.0[..], &self.meta.1[..], &self.key[..]];
        let mut out = Vec::with_capacity(12 + parts.iter().map(|p| p.len()).sum::<usize>());
        for p in parts {
            out.extend_from_slice(&(p.len() as u32).to_le_bytes());
            out.extend_from_slice(p);
        }
        out
    }

    fn decode(mut b: &[u8]) -> Option<Record> {
        let mut next = || {
            let len = u32::from_le_bytes(b.get(..4)?.try_into().ok()?) as usize;
            let part = b.get(4..4 + len)?.to_vec();
            b = &b[4 + len..];
            Some(part)
        };
        let (m0, m1, key) = (next()?, next()?, next()?);
        Some(Record {
            meta: (m0, m1),
            key,
        })
    }
}

/// One change to the catalog.
#[derive(Debug)]
pub enum Op {
    /// Adds or replaces an object.
    Put {
        /// Combined hash.
        hash: Hash,
        /// Its index entry.
        entry: Entry,
        /// `Record::encode()` output.
        record: Vec<u8>,
    },
    /// Replaces the record of an object that is still there (a 304 refreshed its meta).
    SetRecord {
        /// Combined hash.
        hash: Hash,
        /// `Record::encode()` output.
        record: Vec<u8>,
    },
    /// Drops an object.
    Remove(Hash),
    /// Adds a side record. Side records ride the committer that removes objects, so a layer
    /// above the cache can make a record durable only after the removals it follows.
    PutSide {
        /// Record id (ascending).
        id: u64,
        /// Its bytes, opaque to the cache.
        bytes: Vec<u8>,
    },
    /// Drops every side record up to this id.
    RetireSide(u64),
    /// Replaces the side state.
    SetSideState(Vec<u8>),
}

/// The side records and state the catalog holds, opaque to the cache.
#[derive(Debug, Default)]
pub struct SideRecords {
    /// The side state, if one was ever saved.
    pub state: Option<Vec<u8>>,
    /// Records not yet retired, by id.
    pub rows: Vec<(u64, Vec<u8>)>,
}

/// Why changes did not become durable. Shared by every write of the failed batch.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CommitError {
    /// The batch's transaction failed.
    #[error(transparent)]
    Failed(Arc<redb::Error>),
    /// The committer thread has stopped.
    #[error("the catalog committer has stopped")]
    Stopped,
}

struct Job {
    ops: Vec<Op>,
    done: Option<oneshot::Sender<Result<(), CommitError>>>,
}

/// The catalog and its committer thread.
pub struct Catalog {
    db: Arc<Database>,
    jobs: mpsc::Sender<Job>,
}

impl Catalog {
    /// Opens (or creates) the catalog at `path` and reads every entry, in no particular order.
    /// The database is locked for this process: a second node on the same directory fails here.
    pub fn open(path: &Path) -> Result<(Catalog, Vec<(Hash, Entry)>), redb::Error> {
        let db = Arc::new(
            Database::builder()
                .set_cache_size(CACHE_BYTES)
                .create(path)?,
        );
        let txn = db.begin_write()?;
        txn.open_table(ENTRIES)?;
        txn.open_table(RECORDS)?;
        txn.open_table(SIDE_ROWS)?;
        txn.open_table(SIDE)?;
        txn.commit()?;
        let mut entries = Vec::new();
        let mut damaged = Vec::new();
        {
            let txn = db.begin_read()?;
            let table = txn.open_table(ENTRIES)?;
            for row in table.iter()? {
                let (k, v) = row?;
                let hash = *k.value();
                match Entry::decode(v.value()) {
                    Some(e) => entries.push((hash, e)),
                    None => damaged.push(hash),
                }
            }
        }
        if !damaged.is_empty() {
            tracing::warn!(count = damaged.len(), "dropping unreadable catalog entries");
            apply(
                &db,
                damaged
                    .into_iter()
                    .map(Op::Remove)
                    .collect::<Vec<_>>()
                    .iter(),
            )?;
        }
        let (jobs, rx) = mpsc::channel::<Job>();
        let committer_db = db.clone();
        std::thread::Builder::new()
            .name("edge-catalog".into())
            .spawn(move || commit_loop(&committer_db, &rx))
            .map_err(redb::Error::Io)?;
        Ok((Catalog { db, jobs }, entries))
    }

    /// The record of an object. Blocking: call it off the async workers.
    pub fn record(&self, hash: &Hash) -> Result<Option<Record>, redb::Error> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(RECORDS)?;
        Ok(table.get(hash)?.and_then(|v| Record::decode(v.value())))
    }

    /// The record of an object if its committed entry is generation `gen`: a record read for a
    /// body file must be that file's. Blocking: call it off the async workers.
    pub fn record_at(&self, hash: &Hash, gen: u64) -> Result<Option<Record>, redb::Error> {
        let txn = self.db.begin_read()?;
        let entries = txn.open_table(ENTRIES)?;
        let committed = entries
            .get(hash)?
            .and_then(|v| Entry::decode(v.value()))
            .is_some_and(|e| e.gen == gen);
        if !committed {
            return Ok(None);
        }
        let table = txn.open_table(RECORDS)?;
        Ok(table.get(hash)?.and_then(|v| Record::decode(v.value())))
    }

    /// The side state and records. Blocking.
    pub fn side_records(&self) -> Result<SideRecords, redb::Error> {
        let txn = self.db.begin_read()?;
        let state = txn
            .open_table(SIDE)?
            .get(SIDE_STATE)?
            .map(|v| v.value().to_vec());
        let mut rows = Vec::new();
        for row in txn.open_table(SIDE_ROWS)?.iter()? {
            let (k, v) = row?;
            rows.push((k.value(), v.value().to_vec()));
        }
        Ok(SideRecords { state, rows })
    }

    /// Up to `limit` records in hash order, starting after `after`. Blocking; each call is its
    /// own read transaction, so a walk of the whole catalog never pins old pages for long.
    pub fn scan(
        &self,
        after: Option<&Hash>,
        limit: usize,
    ) -> Result<Vec<(Hash, Record)>, redb::Error> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(RECORDS)?;
        let rows = match after {
            Some(h) => table
                .range::<&[u8; 16]>((std::ops::Bound::Excluded(h), std::ops::Bound::Unbounded))?,
            None => table.range::<&[u8; 16]>(..)?,
        };
        let mut out = Vec::with_capacity(limit.min(4096));
        for row in rows.take(limit) {
            let (k, v) = row?;
            if let Some(r) = Record::decode(v.value()) {
                out.push((*k.value(), r));
            }
        }
        Ok(out)
    }

    /// Queues changes; the receiver says when they are durable (or why not).
    pub fn submit(&self, ops: Vec<Op>) -> oneshot::Receiver<Result<(), CommitError>> {
        let (tx, rx) = oneshot::channel();
        self.send(Job {
            ops,
            done: Some(tx),
        });
        rx
    }

    /// Queues changes nobody waits for (evictions, removals of damaged objects).
    pub fn submit_detached(&self, ops: Vec<Op>) {
        self.send(Job { ops, done: None });
    }

    fn send(&self, job: Job) {
        if self.jobs.send(job).is_err() {
            tracing::error!("catalog committer is gone; change dropped");
        }
    }

    /// Waits until everything queued so far is committed. Blocking; for shutdown.
    pub fn flush(&self) -> Result<(), CommitError> {
        self.submit(Vec::new())
            .blocking_recv()
            .map_err(|_| CommitError::Stopped)?
    }
}

fn commit_loop(db: &Database, rx: &mpsc::Receiver<Job>) {
    let mut last_commit: Option<Instant> = None;
    while let Ok(first) = rx.recv() {
        let until = last_commit.map(|t| t + COMMIT_SPACING);
        let jobs = gather(rx, first, until, MAX_BATCH);
        let result = apply(db, jobs.iter().flat_map(|j| j.ops.iter())).map_err(|e| {
            tracing::error!(error = %e, "catalog commit failed");
            CommitError::Failed(Arc::new(e))
        });
        last_commit = Some(Instant::now());
        for job in jobs {
            if let Some(done) = job.done {
                let _ = done.send(result.clone());
            }
        }
    }
}

/// `first` and what else is queued, up to `max`: until `until` if that is still to come (what
/// arrives meanwhile joins), else only what is queued already.
fn gather<T>(rx: &mpsc::Receiver<T>, first: T, until: Option<Instant>, max: usize) -> Vec<T> {
    let mut batch = vec![first];
    while batch.len() < max {
        let wait = until.and_then(|u| u.checked_duration_since(Instant::now()));
        let next = match wait {
            Some(wait) => rx.recv_timeout(wait).ok(),
            None => rx.try_recv().ok(),
        };
        match next {
            Some(j) => batch.push(j),
            None => break,
        }
    }
    batch
}

fn apply<'a>(db: &Database, ops: impl Iterator<Item = &'a Op>) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    {
        let mut entries = txn.open_table(ENTRIES)?;
        let mut records = txn.open_table(RECORDS)?;
        let mut side_rows = txn.open_table(SIDE_ROWS)?;
        let mut side = txn.open_table(SIDE)?;
        for op in ops {
            match op {
                Op::Put {
                    hash,
                    entry,
                    record,
                } => {
                    entries.insert(hash, &entry.encode()[..])?;
                    records.insert(hash, &record[..])?;
                }
                Op::SetRecord { hash, record } => {
                    let present = entries.get(hash)?.and_then(|v| Entry::decode(v.value()));
                    if let Some(mut entry) = present {
                        entry.record_len = record.len() as u32;
                        entries.insert(hash, &entry.encode()[..])?;
                        records.insert(hash, &record[..])?;
                    }
                }
                Op::Remove(hash) => {
                    entries.remove(hash)?;
                    records.remove(hash)?;
                }
                Op::PutSide { id, bytes } => {
                    side_rows.insert(id, &bytes[..])?;
                }
                Op::RetireSide(upto) => {
                    side_rows.retain_in::<u64, _>(..=*upto, |_, _| false)?;
                }
                Op::SetSideState(state) => {
                    side.insert(SIDE_STATE, &state[..])?;
                }
            }
        }
    }
    txn.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(gen: u64) -> Entry {
        Entry {
            gen,
            body_len: 1000 + gen,
            record_len: 30,
            created: 1_700_000_000,
            primary: [gen as u8; 16],
        }
    }

    fn record(n: u8) -> Record {
        Record {
            meta: (vec![n; 10], vec![n; 5]),
            key: b"v1/key".to_vec(),
        }
    }

    #[test]
    fn a_commit_soon_after_another_gathers_what_arrives_until_its_turn() {
        let (tx, rx) = mpsc::channel();
        let late = tx.clone();
        let sender = std::thread::spawn(move || {
            for n in [2, 3] {
                std::thread::sleep(Duration::from_millis(30));
                late.send(n).unwrap();
            }
        });
        let batch = gather(
            &rx,
            1,
            Some(Instant::now() + Duration::from_millis(500)),
            10,
        );
        sender.join().unwrap();
        assert_eq!(batch, [1, 2, 3]);
    }

    #[test]
    fn a_commit_after_a_quiet_spell_takes_only_what_is_queued() {
        let (tx, rx) = mpsc::channel();
        tx.send(2).unwrap();
        tx.send(3).unwrap();
        let past = Instant::now();
        std::thread::sleep(Duration::from_millis(1));
        assert_eq!(gather(&rx, 1, Some(past), 10), [1, 2, 3]);
        tx.send(5).unwrap();
        assert_eq!(gather(&rx, 4, None, 10), [4, 5]);
        // The batch limit holds while waiting too.
        for n in 7..10 {
            tx.send(n).unwrap();
        }
        let until = Instant::now() + Duration::from_secs(60);
        assert_eq!(gather(&rx, 6, Some(until), 3), [6, 7, 8]);
    }

    #[test]
    fn entries_and_records_round_trip() {
        let e = entry(9);
        assert_eq!(Entry::decode(&e.encode()), Some(e));
        assert_eq!(Entry::decode(&e.encode()[1..]), None);
        let r = record(4);
        assert_eq!(Record::decode(&r.encode()), Some(r));
        assert_eq!(Record::decode(&[1, 0, 0]), None);
    }

    #[tokio::test]
    async fn commits_survive_reopening() {
        let dir = std::env::temp_dir().join(format!("edge-catalog-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("catalog.redb");
        {
            let (cat, entries) = Catalog::open(&path).unwrap();
            assert!(entries.is_empty());
            let ops = (1..=3u8)
                .map(|n| Op::Put {
                    hash: [n; 16],
                    entry: entry(u64::from(n)),
                    record: record(n).encode(),
                })
                .collect();
            cat.submit(ops).await.unwrap().unwrap();
            cat.submit(vec![
                Op::Remove([2; 16]),
                Op::SetRecord {
                    hash: [3; 16],
                    record: record(33).encode(),
                },
                // A record for an object that is gone is not resurrected.
                Op::SetRecord {
                    hash: [2; 16],
                    record: record(22).encode(),
                },
            ])
            .await
            .unwrap()
            .unwrap();
            assert_eq!(cat.record(&[3; 16]).unwrap(), Some(record(33)));
        }
        // The committer thread holds the database until its channel closes; wait for the lock.
        let reopened = loop {
            match Catalog::open(&path) {
                Ok(c) => break c,
                Err(redb::Error::DatabaseAlreadyOpen) => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        };
        let (cat, mut entries) = reopened;
        entries.sort_by_key(|(h, _)| *h);
        let hashes: Vec<Hash> = entries.iter().map(|(h, _)| *h).collect();
        assert_eq!(hashes, vec![[1; 16], [3; 16]]);
        assert_eq!(cat.record(&[2; 16]).unwrap(), None);
        assert_eq!(cat.record(&[1; 16]).unwrap(), Some(record(1)));
    }
}
