//! Cache storage: a memory tier of whole objects, the fills in flight that readers follow, and
//! the [`tiered::TieredStorage`] that Pingora's cache drives. The disk tier slots in under the
//! memory tier inside `tiered.rs`.

mod fill;
mod hit;
pub mod key;
pub mod memory;
mod object;
pub mod tiered;

pub use object::StoredObject;

/// A 128-bit cache hash as Pingora computes it (primary key, or primary plus variance).
pub type Hash = [u8; 16];
