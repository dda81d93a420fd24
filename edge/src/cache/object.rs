use bytes::Bytes;

use super::Hash;

/// A complete cached response: serialized Pingora meta and the whole body.
///
/// Objects are immutable; a revalidation that changes the headers stores a new object that
/// shares the body (a `Bytes` clone, no copy).
#[derive(Debug)]
pub struct StoredObject {
    /// Primary plus variance hash: what a lookup asks for.
    pub combined: Hash,
    /// Primary hash alone: every variant of one URL shares it.
    pub primary: Hash,
    /// The primary cache key before hashing: purges read host and path from it.
    pub key: Bytes,
    /// `CacheMeta::serialize()` output.
    pub meta: (Vec<u8>, Vec<u8>),
    /// The body.
    pub body: Bytes,
}

impl StoredObject {
    /// Bytes this object costs the tier (body and meta).
    pub fn weight_bytes(&self) -> u64 {
        (self.body.len() + self.key.len() + self.meta.0.len() + self.meta.1.len()) as u64
    }
}
