//! The embedded purge log: a redb file mapping sequence numbers to purges, for one purge-api
//! process.
//!
//! An append returns only after its transaction is durable (redb's default `Immediate`
//! durability fsyncs on commit), so a purge acknowledged to a caller survives a `kill -9` and a
//! power cut. Every call blocks: [`super::Store`] runs them on the blocking pool.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{random_u64, Position};

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const LOG_ID: &str = "log_id";
const COMPACTED: &str = "compacted_through";

/// The redb file.
pub struct Embedded {
    db: Database,
}

impl Embedded {
    /// Opens (or creates) the log at `path`; fails if another process holds it.
    pub fn open(path: &Path) -> Result<(Embedded, String, Position), redb::Error> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let db = Database::create(path)?;
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
            (
                log_id,
                Position {
                    head: last.max(compacted),
                    compacted,
                },
            )
        };
        txn.commit()?;
        Ok((Embedded { db }, found.0, found.1))
    }

    /// Writes an entry after the last one (or after the compaction point) and returns its
    /// sequence once durable.
    pub fn append(&self, bytes: &[u8], compacted: u64) -> Result<u64, redb::Error> {
        let txn = self.db.begin_write()?;
        let seq = {
            let mut log = txn.open_table(LOG)?;
            let last = log.last()?.map(|(k, _)| k.value()).unwrap_or(0);
            let seq = last.max(compacted) + 1;
            log.insert(seq, bytes)?;
            seq
        };
        txn.commit()?;
        Ok(seq)
    }

    /// The entry at `seq`, if the log holds it.
    pub fn read(&self, seq: u64) -> Result<Option<Vec<u8>>, redb::Error> {
        let txn = self.db.begin_read()?;
        let log = txn.open_table(LOG)?;
        Ok(log.get(seq)?.map(|v| v.value().to_vec()))
    }

    /// Drops every entry up to `through` and records the compaction point.
    pub fn drop_through(&self, through: u64) -> Result<usize, redb::Error> {
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
