//! What purge keeps in the disk tier's catalog, as side records the cache does not read: each
//! ban rule not yet retired, and the node's position in the purge log. Their encoding is
//! purge's own (JSON); the catalog's committer makes them durable after the removals they follow.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::bans::{Ban, Scope};
use super::PurgeError;
use crate::cache::catalog::Op;
use crate::cache::disk::DiskTier;
use crate::http::stamp;

/// The durable purge position.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Position {
    pub(super) applied_seq: u64,
    pub(super) log: Option<String>,
}

/// What the disk tier held about purges at start-up.
#[derive(Debug, Default)]
pub struct Loaded {
    pub(super) bans: Vec<Ban>,
    pub(super) position: Option<Position>,
}

impl Loaded {
    /// Reads the purge records kept in the disk tier's catalog (nothing without a disk tier:
    /// a memory-only node starts empty, so no earlier purge can apply to it).
    pub fn from_disk(disk: Option<&DiskTier>) -> Loaded {
        let Some(records) = disk.and_then(DiskTier::take_side_records) else {
            return Loaded::default();
        };
        let mut bans = Vec::with_capacity(records.rows.len());
        for (id, bytes) in records.rows {
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

    /// The ban rules, to build the [`Bans`](super::Bans) the storage and the proxy share.
    pub fn bans(&self) -> &[Ban] {
        &self.bans
    }
}

/// The catalog operations that record `bans` and then `position`.
pub(super) fn save_ops(bans: &[Ban], position: &Position) -> Result<Vec<Op>, PurgeError> {
    let mut ops = Vec::with_capacity(bans.len() + 1);
    for b in bans {
        ops.push(Op::PutSide {
            id: b.id,
            bytes: serde_json::to_vec(b)?,
        });
    }
    ops.push(Op::SetSideState(serde_json::to_vec(position)?));
    Ok(ops)
}

/// The catalog operation that retires every ban up to `upto`.
pub(super) fn retire_op(upto: u64) -> Op {
    Op::RetireSide(upto)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bans_and_the_position_come_back_from_the_disk_tier() {
        let dir = std::env::temp_dir().join(format!("edge-purge-loaded-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let open = || crate::cache::disk::test_tier(&dir);
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
        let mut ops = save_ops(std::slice::from_ref(&tag), &position).unwrap();
        ops.insert(
            1,
            Op::PutSide {
                id: 5,
                bytes: b"not a ban".to_vec(),
            },
        );
        tier.save_side(ops).await.unwrap();
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
