//! Cache storage: a memory tier of whole objects over a disk tier of body files and a catalog,
//! the fills in flight that readers follow, and the [`tiered::TieredStorage`] that Pingora's
//! cache drives.

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
mod slots;
pub mod stats;
pub mod tiered;
mod writers;

pub use object::{owned_header, Head, StoredObject};

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

/// No accounting: every hold is free.
pub struct Unaccounted;

impl ClientBuffers for Unaccounted {
    fn hold(&self, _bytes: usize) -> BufferHold {
        Box::new(())
    }
}
