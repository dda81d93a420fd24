//! The disk tier's open descriptors: small body files read lately are kept open, so that a hit
//! on a hot object reads its file without opening and closing it (together 11 % of the edge's
//! samples on a 1 KiB disk hit, perf).
//!
//! A slot names the generation it was opened for, and every unlink of a body file drops the
//! slot of its object first (see `DiskTier::unlink`), so a descriptor never outlives the object
//! it reads by more than a read in flight, and never pins the space of a removed file. Damage
//! written into a file in place is seen through the kept descriptor as through a new one: the
//! checksums are checked on every read.

use std::fs::File;
use std::sync::Arc;

use parking_lot::Mutex;
use tinyufo::TinyUfo;

use super::Hash;

/// Most descriptors kept, whatever the process may open.
const MAX_KEPT: u64 = 4096;

struct Slot {
    combined: Hash,
    gen: u64,
    /// Taken out when the slot is forgotten or evicted: TinyUFO drops what it removes only
    /// later (epoch-based reclamation), and a removed file's space is freed only at its close.
    file: Mutex<Option<Arc<File>>>,
}

/// A bounded set of open body files by object, TinyLFU admission and S3-FIFO eviction.
pub struct OpenFiles {
    slots: Option<TinyUfo<Hash, Arc<Slot>>>,
}

impl OpenFiles {
    /// Keeps at most a quarter of the process's descriptor limit (`RLIMIT_NOFILE`), and at
    /// most 4,096: the rest stay for connections.
    pub fn new() -> Self {
        Self::with_capacity(nofile_limit().map_or(0, |n| (n / 4).min(MAX_KEPT)) as usize)
    }

    /// Keeps at most `max` descriptors (0: none).
    pub fn with_capacity(max: usize) -> Self {
        OpenFiles {
            slots: (max > 0).then(|| TinyUfo::new(max, max)),
        }
    }

    /// The file of `combined` at generation `gen`, if kept open.
    pub fn get(&self, combined: &Hash, gen: u64) -> Option<Arc<File>> {
        // TinyUFO keeps only a 64-bit hash of the key, so check the full key.
        self.slots
            .as_ref()?
            .get(combined)
            .filter(|s| &s.combined == combined && s.gen == gen)
            .and_then(|s| s.file.lock().clone())
    }

    /// Keeps `file`, opened for `combined` at `gen`. What it evicts is closed when dropped.
    pub fn put(&self, combined: Hash, gen: u64, file: Arc<File>) {
        if let Some(slots) = &self.slots {
            // A slot already there for this key is replaced in place, not returned as evicted.
            if let Some(old) = slots.get(&combined) {
                old.file.lock().take();
            }
            let slot = Arc::new(Slot {
                combined,
                gen,
                file: Mutex::new(Some(file)),
            });
            for evicted in slots.put(combined, slot, 1) {
                evicted.data.file.lock().take();
            }
        }
    }

    /// Closes the kept file of `combined`, if any (once reads in flight let go of it).
    pub fn forget(&self, combined: &Hash) {
        if let Some(slot) = self.slots.as_ref().and_then(|s| s.remove(combined)) {
            slot.file.lock().take();
        }
    }
}

/// The soft limit on open descriptors, if it can be read.
fn nofile_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` through a valid pointer to a local.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    (rc == 0).then_some(limit.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_found_for_its_generation_until_forgotten() {
        let files = OpenFiles::with_capacity(16);
        let file = Arc::new(File::open("/dev/null").unwrap());
        files.put([1; 16], 7, file.clone());
        assert!(Arc::ptr_eq(&files.get(&[1; 16], 7).unwrap(), &file));
        assert!(files.get(&[1; 16], 8).is_none());
        assert!(files.get(&[2; 16], 7).is_none());
        files.forget(&[1; 16]);
        assert!(files.get(&[1; 16], 7).is_none());
        assert_eq!(
            Arc::strong_count(&file),
            1,
            "the forgotten slot let go of it"
        );
    }

    #[test]
    fn the_limit_leaves_most_descriptors_to_connections() {
        let limit = nofile_limit().unwrap();
        assert!(limit > 0);
        let files = OpenFiles::new();
        assert_eq!(files.slots.is_some(), limit >= 4);
    }
}
