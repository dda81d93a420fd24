//! The durable purge log: a redb file mapping sequence numbers to purges.
//!
//! An append returns only after its transaction is durable (redb's default `Immediate`
//! durability fsyncs on commit), so a purge acknowledged to a caller survives a `kill -9` and a
//! power cut. Compaction drops a prefix of the log; a node whose position is inside that prefix
//! is sent one purge-all instead of what it missed.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use edge_config::purge::Purge;
use parking_lot::RwLock;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const LOG_ID: &str = "log_id";
const COMPACTED: &str = "compacted_through";

/// Recent entries kept in memory, so delivery of new purges never waits on a read.
const RECENT: usize = 4096;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// redb failed (I/O, corruption, lock held by another process).
    #[error("purge log: {0}")]
    Db(#[from] redb::Error),
    /// An entry could not be encoded or decoded.
    #[error("purge log entry: {0}")]
    Encoding(#[from] serde_json::Error),
}

/// The purge log.
pub struct Store {
    db: Database,
    log_id: String,
    head: AtomicU64,
    compacted: AtomicU64,
    recent: RwLock<BTreeMap<u64, Arc<Purge>>>,
}

/// A random-enough 64-bit value without a dependency: std's hasher keys are seeded from the
/// operating system's randomness per process, and the clock separates calls.
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

impl Store {
    /// Opens (or creates) the log at `path`. Fails if another process holds it.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Db(e.into()))?;
        }
        let db = Database::create(path).map_err(redb::Error::from)?;
        let (log_id, compacted, head) = Self::init(&db)?;
        let store = Store {
            db,
            log_id,
            head: AtomicU64::new(head),
            compacted: AtomicU64::new(compacted),
            recent: RwLock::new(BTreeMap::new()),
        };
        Ok(store)
    }

    /// Reads (or sets) the log id, the compaction point and the head.
    fn init(db: &Database) -> Result<(String, u64, u64), redb::Error> {
        let txn = db.begin_write()?;
        let found = {
            let mut meta = txn.open_table(META)?;
            let existing = meta
                .get(LOG_ID)?
                .map(|v| String::from_utf8_lossy(v.value()).into_owned());
            let log_id = match existing {
                Some(id) => id,
                None => {
                    let id = format!("{:016x}", random_u64());
                    meta.insert(LOG_ID, id.as_bytes())?;
                    id
                }
            };
            let compacted = meta
                .get(COMPACTED)?
                .and_then(|v| v.value().try_into().ok().map(u64::from_le_bytes))
                .unwrap_or(0);
            let log = txn.open_table(LOG)?;
            let last = log.last()?.map(|(k, _)| k.value()).unwrap_or(0);
            (log_id, compacted, last.max(compacted))
        };
        txn.commit()?;
        Ok(found)
    }

    /// The log's identity: nodes notice a replaced log by it.
    pub fn log_id(&self) -> &str {
        &self.log_id
    }

    /// The newest sequence (0 for an empty log).
    pub fn head(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }

    /// Entries up to this sequence are compacted away.
    pub fn compacted_through(&self) -> u64 {
        self.compacted.load(Ordering::Acquire)
    }

    /// Appends a purge and returns its sequence once it is durable. Blocking.
    pub fn append(&self, purge: &Purge) -> Result<u64, StoreError> {
        let bytes = serde_json::to_vec(purge)?;
        let seq = self.write_entry(&bytes)?;
        let mut recent = self.recent.write();
        recent.insert(seq, Arc::new(purge.clone()));
        while recent.len() > RECENT {
            recent.pop_first();
        }
        self.head.fetch_max(seq, Ordering::AcqRel);
        Ok(seq)
    }

    /// The purge at `seq`, if the log still holds it. Blocking on a miss of the recent cache.
    pub fn get(&self, seq: u64) -> Result<Option<Arc<Purge>>, StoreError> {
        if let Some(p) = self.recent.read().get(&seq) {
            return Ok(Some(p.clone()));
        }
        match self.read_entry(seq)? {
            Some(bytes) => Ok(Some(Arc::new(serde_json::from_slice(&bytes)?))),
            None => Ok(None),
        }
    }

    fn write_entry(&self, bytes: &[u8]) -> Result<u64, redb::Error> {
        let txn = self.db.begin_write()?;
        let seq = {
            let mut log = txn.open_table(LOG)?;
            let last = log.last()?.map(|(k, _)| k.value()).unwrap_or(0);
            let seq = last.max(self.compacted_through()) + 1;
            log.insert(seq, bytes)?;
            seq
        };
        txn.commit()?;
        Ok(seq)
    }

    fn read_entry(&self, seq: u64) -> Result<Option<Vec<u8>>, redb::Error> {
        let txn = self.db.begin_read()?;
        let log = txn.open_table(LOG)?;
        Ok(log.get(seq)?.map(|v| v.value().to_vec()))
    }

    /// Keeps the newest `retain` entries: drops the rest. Blocking.
    pub fn retain(&self, retain: u64) -> Result<usize, StoreError> {
        self.compact(self.head().saturating_sub(retain))
    }

    /// Drops every entry up to `through`. Blocking.
    pub fn compact(&self, through: u64) -> Result<usize, StoreError> {
        let through = through.min(self.head());
        if through <= self.compacted_through() {
            return Ok(0);
        }
        let n = self.drop_through(through)?;
        self.compacted.store(through, Ordering::Release);
        self.recent.write().retain(|s, _| *s > through);
        Ok(n)
    }

    fn drop_through(&self, through: u64) -> Result<usize, redb::Error> {
        let txn = self.db.begin_write()?;
        let mut n = 0;
        {
            let mut log = txn.open_table(LOG)?;
            log.retain_in::<u64, _>(..=through, |_, _| {
                n += 1;
                false
            })?;
            let mut meta = txn.open_table(META)?;
            meta.insert(COMPACTED, &through.to_le_bytes()[..])?;
        }
        txn.commit()?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(t: &str) -> Purge {
        Purge {
            tags: vec![t.into()],
            ..Default::default()
        }
    }

    #[test]
    fn appends_survive_reopening_and_compaction_keeps_sequences_rising() {
        let dir = std::env::temp_dir().join(format!("purge-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("log.redb");
        let id;
        {
            let s = Store::open(&path).unwrap();
            id = s.log_id().to_string();
            assert_eq!(s.append(&tag("a")).unwrap(), 1);
            assert_eq!(s.append(&tag("b")).unwrap(), 2);
            assert_eq!(s.append(&tag("c")).unwrap(), 3);
            assert_eq!(s.compact(2).unwrap(), 2);
            assert!(s.get(1).unwrap().is_none());
        }
        let s = Store::open(&path).unwrap();
        assert_eq!(s.log_id(), id);
        assert_eq!((s.head(), s.compacted_through()), (3, 2));
        assert_eq!(s.get(3).unwrap().unwrap().tags, vec!["c"]);
        // Everything compacted: the next sequence still follows the last one.
        s.compact(3).unwrap();
        drop(s);
        let s = Store::open(&path).unwrap();
        assert_eq!(s.head(), 3);
        assert_eq!(s.append(&tag("d")).unwrap(), 4);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
