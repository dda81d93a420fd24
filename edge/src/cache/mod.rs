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
mod open_files;
mod pread;
mod slots;
pub mod stats;
pub mod tiered;
mod writers;

pub use object::{owned_header, Head, StoredObject};

/// A 128-bit cache hash as Pingora computes it (primary key, or primary plus variance).
pub type Hash = [u8; 16];
