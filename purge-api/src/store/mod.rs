//! The durable purge log: sequence numbers to purges, in an embedded redb file (one process) or
//! in PostgreSQL (several replicas). Compaction drops a prefix of the log; a node whose position
//! is inside that prefix is sent one purge-all instead of what it missed.

mod embedded;
pub mod postgres;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use edge_config::purge::Purge;
use edge_config::purge_api::Store as StoreConfig;
use parking_lot::RwLock;

use embedded::Embedded;
use postgres::Pg;

/// Recent entries kept in memory, so delivery of new purges never waits on a read.
const RECENT: usize = 4096;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// redb failed (I/O, corruption, lock held by another process).
    #[error("purge log: {0}")]
    Db(#[from] redb::Error),
    /// PostgreSQL failed or could not be reached.
    #[error("purge log in PostgreSQL: {}", with_causes(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// The PostgreSQL connection string could not be read or does not parse.
    #[error("postgres.url: {0}")]
    Url(String),
    /// The CA certificates for PostgreSQL's TLS could not be loaded.
    #[error("postgres TLS: {0}")]
    Tls(String),
    /// An entry could not be encoded or decoded.
    #[error("purge log entry: {0}")]
    Encoding(#[from] serde_json::Error),
    /// A blocking call on the embedded log did not finish.
    #[error("purge log task: {0}")]
    Task(String),
}

/// An error and what caused it: the PostgreSQL client's own message ("error performing TLS
/// handshake") leaves the reason (an unknown certificate, a refused connection) to its sources.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = c.source();
    }
    text
}

/// How far the log goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    /// The newest sequence (0 for an empty log).
    pub head: u64,
    /// Entries up to this sequence are compacted away.
    pub compacted: u64,
}

enum Backend {
    Embedded(Arc<Embedded>),
    Postgres(Box<Pg>),
}

/// The purge log, whichever backend holds it.
pub struct Store {
    backend: Backend,
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
    /// Opens (or creates) the log the configuration names.
    pub async fn open(config: &StoreConfig) -> Result<Store, StoreError> {
        let (backend, log_id, at) = match config {
            StoreConfig::Embedded(path) => {
                let path = path.clone();
                let (db, id, at) =
                    blocking(move || Embedded::open(&path).map_err(Into::into)).await?;
                (Backend::Embedded(Arc::new(db)), id, at)
            }
            StoreConfig::Postgres(pg) => {
                let (db, id, at) = Pg::open(pg).await?;
                (Backend::Postgres(Box::new(db)), id, at)
            }
        };
        Ok(Store {
            backend,
            log_id,
            head: AtomicU64::new(at.head),
            compacted: AtomicU64::new(at.compacted),
            recent: RwLock::new(BTreeMap::new()),
        })
    }

    /// The PostgreSQL backend, when the log is shared by replicas.
    pub fn postgres(&self) -> Option<&Pg> {
        match &self.backend {
            Backend::Postgres(pg) => Some(pg),
            Backend::Embedded(_) => None,
        }
    }

    /// The log's identity: nodes notice a replaced log by it.
    pub fn log_id(&self) -> &str {
        &self.log_id
    }

    /// The newest sequence this process knows of (0 for an empty log).
    pub fn head(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }

    /// Entries up to this sequence are compacted away.
    pub fn compacted_through(&self) -> u64 {
        self.compacted.load(Ordering::Acquire)
    }

    fn learn(&self, at: Position) {
        self.head.fetch_max(at.head, Ordering::AcqRel);
        // Every poll passes through here: the cache is pruned only when compaction moved.
        if self.compacted.fetch_max(at.compacted, Ordering::AcqRel) < at.compacted {
            self.recent.write().retain(|s, _| *s > at.compacted);
        }
    }

    /// Appends a purge and returns its sequence once it is durable.
    pub async fn append(&self, purge: &Purge) -> Result<u64, StoreError> {
        let seq = match &self.backend {
            Backend::Embedded(db) => {
                let bytes = serde_json::to_vec(purge)?;
                let (db, compacted) = (db.clone(), self.compacted_through());
                blocking(move || db.append(&bytes, compacted).map_err(Into::into)).await?
            }
            Backend::Postgres(pg) => pg.append(&serde_json::to_string(purge)?).await?,
        };
        let mut recent = self.recent.write();
        recent.insert(seq, Arc::new(purge.clone()));
        while recent.len() > RECENT {
            recent.pop_first();
        }
        drop(recent);
        self.head.fetch_max(seq, Ordering::AcqRel);
        Ok(seq)
    }

    /// The purge at `seq`, if the log still holds it.
    pub async fn get(&self, seq: u64) -> Result<Option<Arc<Purge>>, StoreError> {
        if let Some(p) = self.recent.read().get(&seq) {
            return Ok(Some(p.clone()));
        }
        let bytes = match &self.backend {
            Backend::Embedded(db) => {
                let db = db.clone();
                blocking(move || db.read(seq).map_err(Into::into)).await?
            }
            Backend::Postgres(pg) => pg.read(seq).await?.map(String::into_bytes),
        };
        match bytes {
            Some(bytes) => Ok(Some(Arc::new(serde_json::from_slice(&bytes)?))),
            None => Ok(None),
        }
    }

    /// Keeps the newest `retain` entries: drops the rest. Returns how many went.
    pub async fn retain(&self, retain: u64) -> Result<usize, StoreError> {
        let through = self.head().saturating_sub(retain);
        if through <= self.compacted_through() {
            return Ok(0);
        }
        let (n, at) = match &self.backend {
            Backend::Embedded(db) => {
                let db = db.clone();
                let n = blocking(move || db.drop_through(through).map_err(Into::into)).await?;
                let at = Position {
                    head: self.head(),
                    compacted: through,
                };
                (n, at)
            }
            Backend::Postgres(pg) => pg.compact(retain).await?,
        };
        self.learn(at);
        Ok(n)
    }

    /// Reads the log's position again (other replicas append to a shared log); true if the
    /// head moved. The embedded log has no other writer.
    pub async fn refresh(&self) -> Result<bool, StoreError> {
        let Backend::Postgres(pg) = &self.backend else {
            return Ok(false);
        };
        let before = self.head();
        self.learn(pg.position().await?);
        Ok(self.head() > before)
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
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

    #[tokio::test]
    async fn appends_survive_reopening_and_compaction_keeps_sequences_rising() {
        let dir = std::env::temp_dir().join(format!("purge-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = StoreConfig::Embedded(dir.join("log.redb"));
        let id;
        {
            let s = Store::open(&config).await.unwrap();
            id = s.log_id().to_string();
            assert_eq!(s.append(&tag("a")).await.unwrap(), 1);
            assert_eq!(s.append(&tag("b")).await.unwrap(), 2);
            assert_eq!(s.append(&tag("c")).await.unwrap(), 3);
            assert_eq!(s.retain(1).await.unwrap(), 2);
            s.recent.write().clear();
            assert!(s.get(1).await.unwrap().is_none());
            assert_eq!(s.get(3).await.unwrap().unwrap().tags, vec!["c"]);
        }
        let s = Store::open(&config).await.unwrap();
        assert_eq!(s.log_id(), id);
        assert_eq!((s.head(), s.compacted_through()), (3, 2));
        assert_eq!(s.get(3).await.unwrap().unwrap().tags, vec!["c"]);
        // Everything compacted: the next sequence still follows the last one.
        s.retain(0).await.unwrap();
        drop(s);
        let s = Store::open(&config).await.unwrap();
        assert_eq!(s.head(), 3);
        assert_eq!(s.append(&tag("d")).await.unwrap(), 4);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
