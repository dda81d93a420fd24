//! The disk tier's cache of heads: the decoded key and meta of objects read lately, so that a
//! hit on a small disk object reads only its body file.
//!
//! Without it a disk hit read the object's record from the catalog (a redb read transaction and
//! a B-tree lookup) and decoded its meta (msgpack, then zstd and HTTP/1 parsing of the header)
//! on every request, a large part of a small disk hit's CPU. Bodies stay on disk: this holds
//! only what nginx keeps at the front of its cache files
//! and reads again on each hit.
//!
//! A slot names the generation it was read for, so an object replaced since (a new generation)
//! never finds the old head. A head changed in place (a 304 refreshes the meta, a soft purge
//! marks it stale) is [`forget`](Heads::forget)-ten once the catalog has the new record; a read
//! that began before that does not cache what it read (the change counter).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::object::Head;
use super::slots::Slots;
use super::Hash;

/// Weights count in units of this many bytes: TinyUFO weighs with a `u16`.
const UNIT: u64 = 64;

/// A bounded cache of decoded heads by object.
pub struct Heads {
    slots: Slots<Arc<Head>>,
    /// Changes made in place so far; see the module's doc.
    changes: AtomicU64,
}

impl Heads {
    /// A cache of at most `max_bytes` of heads (0: none kept).
    pub fn new(max_bytes: u64) -> Self {
        // A head with a few header fields weighs about 2 KiB decoded.
        let estimated = (max_bytes / 2048).clamp(1024, 4 << 20) as usize;
        Heads {
            slots: Slots::new((max_bytes / UNIT) as usize, estimated),
            changes: AtomicU64::new(0),
        }
    }

    /// The head read for `combined` at generation `gen`, if kept.
    pub fn get(&self, combined: &Hash, gen: u64) -> Option<Arc<Head>> {
        self.slots.get(combined, gen)
    }

    /// What a reader takes before it reads a record, to hand to [`put`](Self::put).
    pub fn stamp(&self) -> u64 {
        self.changes.load(Ordering::SeqCst)
    }

    /// Keeps `head`, read for `combined` at `gen` by a read that took `stamp` before it began;
    /// not if anything was changed in place since.
    pub fn put(&self, stamp: u64, combined: Hash, gen: u64, head: Arc<Head>) {
        if !self.slots.enabled() || self.stamp() != stamp {
            return;
        }
        let weight = head
            .weight_bytes()
            .div_ceil(UNIT)
            .clamp(1, u64::from(u16::MAX)) as u16;
        self.slots.put(combined, gen, head, weight);
        // A change that came between the check above and the put: its `forget` may have run
        // before the put, so take back what may be stale.
        if self.stamp() != stamp {
            self.slots.remove(&combined);
        }
    }

    /// Drops the head of `combined`: its record changed in place. Call once the catalog holds
    /// the change, so that a read after this sees it.
    pub fn forget(&self, combined: &Hash) {
        self.changes.fetch_add(1, Ordering::SeqCst);
        self.slots.remove(combined);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn head(key: &'static [u8]) -> Arc<Head> {
        Arc::new(Head::new(Bytes::from_static(key), (vec![1], vec![2])))
    }

    #[test]
    fn a_read_that_began_before_a_change_caches_nothing() {
        let heads = Heads::new(1 << 20);
        let stamp = heads.stamp();
        heads.forget(&[1; 16]);
        heads.put(stamp, [1; 16], 7, head(b"old"));
        assert!(heads.get(&[1; 16], 7).is_none());
        heads.put(heads.stamp(), [1; 16], 7, head(b"new"));
        assert_eq!(
            heads.get(&[1; 16], 7).unwrap().key,
            Bytes::from_static(b"new")
        );
        heads.forget(&[1; 16]);
        assert!(heads.get(&[1; 16], 7).is_none());
    }

    #[test]
    fn a_cache_of_zero_bytes_keeps_nothing() {
        let heads = Heads::new(0);
        heads.put(heads.stamp(), [1; 16], 7, head(b"a"));
        assert!(heads.get(&[1; 16], 7).is_none());
    }
}
