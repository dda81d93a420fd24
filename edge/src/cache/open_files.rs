//! The disk tier's open body files: those read lately are kept open, with their checksum table
//! and which blocks were checked, so that a hit on a hot object reads its file without opening
//! and closing it (which dominated the profile of a small disk hit) and without checking again
//! what was checked once.
//!
//! A slot names the generation it was opened for, and every unlink of a body file drops the
//! slot of its object first (see `DiskTier::unlink`), so a descriptor never outlives the object
//! it reads by more than a read in flight, and never pins the space of a removed file. Damage
//! written into a kept file after its blocks were checked is found by the scrub (or by a
//! promotion to memory, which checks every block), not by the next hit.

use std::sync::Arc;

use super::body_file::BodyFile;
use super::slots::Slots;
use super::Hash;

/// Most descriptors kept, whatever the process may open.
const MAX_KEPT: u64 = 4096;

/// A bounded set of open body files by object.
pub struct OpenFiles {
    slots: Slots<Arc<BodyFile>>,
}

/// Body files the tier keeps open under a descriptor limit of `limit`: a quarter of it, and at
/// most 4,096; the rest stay for connections.
pub fn most_kept(limit: u64) -> u64 {
    (limit / 4).min(MAX_KEPT)
}

impl OpenFiles {
    /// Keeps at most [`most_kept`] under the process's descriptor limit (`RLIMIT_NOFILE`).
    pub fn new() -> Self {
        Self::with_capacity(nofile_limit().map_or(0, most_kept) as usize)
    }

    /// Keeps at most `max` descriptors (0: none).
    pub fn with_capacity(max: usize) -> Self {
        OpenFiles {
            slots: Slots::new(max, max),
        }
    }

    /// The file of `combined` at generation `gen`, if kept open.
    pub fn get(&self, combined: &Hash, gen: u64) -> Option<Arc<BodyFile>> {
        self.slots.get(combined, gen)
    }

    /// Keeps `file`, opened for `combined` at `gen`. What it evicts is closed once reads in
    /// flight let go of it.
    pub fn put(&self, combined: Hash, gen: u64, file: Arc<BodyFile>) {
        self.slots.put(combined, gen, file, 1);
    }

    /// Closes the kept file of `combined`, if any (once reads in flight let go of it).
    pub fn forget(&self, combined: &Hash) {
        self.slots.remove(combined);
    }
}

/// The soft limit on open descriptors, if it can be read.
fn nofile_limit() -> Option<u64> {
    crate::fds::limits().ok().map(|(soft, _)| soft)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_leaves_most_descriptors_to_connections() {
        let limit = nofile_limit().unwrap();
        assert!(limit > 0);
        let files = OpenFiles::new();
        assert_eq!(files.slots.enabled(), limit >= 4);
    }
}
