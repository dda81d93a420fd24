//! Cache storage: a memory tier of whole objects over a disk tier of body files and a catalog,
//! the fills in flight that readers follow, and the [`tiered::TieredStorage`] that Pingora's
//! cache drives.

pub mod admission;
pub mod body_file;
pub mod catalog;
pub mod disk;
mod fill;
pub(crate) mod fs_check;
mod heads;
mod hit;
pub mod index;
pub mod key;
pub mod memory;
mod object;
pub(crate) mod open_files;
mod pread;
pub mod scrub;
mod slots;
pub mod stats;
pub mod stored_header;
pub mod tiered;
mod writers;

pub use object::{Decoded, Head, StoredObject};

/// A storage tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Whole objects in memory.
    Memory,
    /// Body files and the catalog.
    Disk,
}

impl Tier {
    /// Its name in metrics (`tier`) and in `Cache-Status` `detail`.
    pub fn label(self) -> &'static str {
        match self {
            Tier::Memory => "memory",
            Tier::Disk => "disk",
        }
    }
}

/// Where a hit's body comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A tier.
    Tier(Tier),
    /// Another request's fill in flight, which this one follows (a coalesced miss).
    Coalesced,
}

impl Source {
    /// Its name in `Cache-Status` `detail`.
    pub fn label(self) -> &'static str {
        match self {
            Source::Tier(t) => t.label(),
            Source::Coalesced => "coalesced",
        }
    }
}

/// A 128-bit cache hash as Pingora computes it (primary key, or primary plus variance).
pub type Hash = [u8; 16];

/// Bytes accounted to a client by [`ClientBuffers::hold`], given back when dropped.
pub type BufferHold = Box<dyn Send + Sync>;

/// Where a hit accounts the blocks it reads from disk for a client, from the read until the
/// client has taken them (the next read, or the end of the response). Implemented above the
/// cache, by the node's client connections, which may cut the slowest clients to stay under
/// a ceiling.
pub trait ClientBuffers: Send + Sync {
    /// Accounts `bytes` to the current request until the returned value is dropped.
    fn hold(&self, bytes: usize) -> BufferHold;
}

/// The gate every write into a tier passes, asked under that tier's writer lock so that an
/// invalidation either sees the object stored or refuses it. Purge implements it with its bans;
/// the cache only knows the answer.
pub trait Admission: Send + Sync {
    /// Whether an object known by its decoded head (the memory tier, a fill, a revalidation)
    /// may be written. One whose head does not decode is refused while any rule is in force.
    fn admits(&self, primary: &Hash, head: &Head) -> bool;
    /// [`admits`](Self::admits) for a record of the disk catalog: its key bytes and its
    /// serialized meta.
    fn admits_record(&self, primary: &Hash, key: &[u8], meta: &(Vec<u8>, Vec<u8>)) -> bool;
    /// Whether a body stored at `stored_at` (µs since the epoch, [`crate::http::stamp`]) began
    /// before an invalidation that no longer shows among the rules in force: it may be what that
    /// invalidation covered, so it goes to its own client and into no tier.
    fn began_before_a_retired_rule(&self, stored_at: u64) -> bool;
}

/// Admits everything (a cache no purge reaches: benchmarks, unit tests).
pub struct AdmitAll;

impl Admission for AdmitAll {
    fn admits(&self, _: &Hash, _: &Head) -> bool {
        true
    }
    fn admits_record(&self, _: &Hash, _: &[u8], _: &(Vec<u8>, Vec<u8>)) -> bool {
        true
    }
    fn began_before_a_retired_rule(&self, _: u64) -> bool {
        false
    }
}

/// No accounting: every hold is free.
pub struct Unaccounted;

impl ClientBuffers for Unaccounted {
    fn hold(&self, _bytes: usize) -> BufferHold {
        Box::new(())
    }
}
