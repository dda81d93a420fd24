//! The disk tier's in-memory index: which objects are committed, and their eviction order.
//!
//! The order is Pingora's sharded LRU (`pingora-lru`), weighted in bytes. Lookups and removals
//! never touch the disk; the catalog is the durable copy this index is rebuilt from.

use std::collections::HashMap;

use parking_lot::RwLock;
use pingora_lru::Lru;

use super::catalog::Entry;
use super::Hash;

const SHARDS: usize = 16;

/// Objects and their order.
pub struct Index {
    entries: RwLock<HashMap<Hash, Entry>>,
    /// primary -> combined hashes of its variants, for objects stored under a variance only
    /// (most objects have none, and cost nothing here).
    variants: RwLock<HashMap<Hash, Vec<Hash>>>,
    lru: Lru<Hash, SHARDS>,
}

fn lru_key(hash: &Hash) -> u64 {
    let mut k = [0u8; 8];
    k.copy_from_slice(&hash[..8]);
    u64::from_le_bytes(k)
}

impl Index {
    /// An empty index bounded at `max_bytes`.
    pub fn new(max_bytes: u64, expected: usize) -> Self {
        Index {
            entries: RwLock::new(HashMap::with_capacity(expected)),
            variants: RwLock::new(HashMap::new()),
            lru: Lru::with_capacity(max_bytes as usize, expected / SHARDS + 1),
        }
    }

    /// The entry for `hash`, marking it recently used.
    pub fn get(&self, hash: &Hash) -> Option<Entry> {
        let e = self.entries.read().get(hash).copied()?;
        self.lru.promote(lru_key(hash));
        Some(e)
    }

    /// The entry for `hash`, leaving the order alone.
    pub fn peek(&self, hash: &Hash) -> Option<Entry> {
        self.entries.read().get(hash).copied()
    }

    /// Adds or replaces an entry as the most recently used. Returns the entry it replaced.
    pub fn insert(&self, hash: Hash, entry: Entry) -> Option<Entry> {
        let old = self.entries.write().insert(hash, entry);
        self.link_variant(&hash, &entry);
        self.lru
            .admit(lru_key(&hash), hash, entry.weight() as usize);
        old
    }

    /// Adds an entry as the least recently used: rebuilds a saved order when called with the
    /// most recently used first.
    pub fn insert_oldest(&self, hash: Hash, entry: Entry) {
        self.entries.write().insert(hash, entry);
        self.link_variant(&hash, &entry);
        self.lru
            .insert_tail(lru_key(&hash), hash, entry.weight() as usize);
    }

    fn link_variant(&self, hash: &Hash, entry: &Entry) {
        if *hash != entry.primary {
            let mut variants = self.variants.write();
            let list = variants.entry(entry.primary).or_default();
            if !list.contains(hash) {
                list.push(*hash);
            }
        }
    }

    /// Removes `hash` if it is still at generation `gen` (or any generation, with `None`).
    pub fn remove(&self, hash: &Hash, gen: Option<u64>) -> Option<Entry> {
        let mut entries = self.entries.write();
        let current = entries.get(hash)?;
        if gen.is_some_and(|g| g != current.gen) {
            return None;
        }
        let old = entries.remove(hash)?;
        drop(entries);
        self.lru.remove(lru_key(hash));
        self.unlink_variant(hash, &old);
        Some(old)
    }

    fn unlink_variant(&self, hash: &Hash, entry: &Entry) {
        if *hash != entry.primary {
            let mut variants = self.variants.write();
            if let Some(list) = variants.get_mut(&entry.primary) {
                list.retain(|h| h != hash);
                if list.is_empty() {
                    variants.remove(&entry.primary);
                }
            }
        }
    }

    /// Every stored hash for a primary key: the object without variance and each variant.
    pub fn of_primary(&self, primary: &Hash) -> Vec<Hash> {
        let mut out = self
            .variants
            .read()
            .get(primary)
            .cloned()
            .unwrap_or_default();
        if self.entries.read().contains_key(primary) {
            out.push(*primary);
        }
        out
    }

    /// Takes least recently used objects out until the total is within the bound.
    pub fn evict_to_limit(&self) -> Vec<(Hash, Entry)> {
        let mut out = Vec::new();
        for (hash, _) in self.lru.evict_to_limit() {
            let removed = self.entries.write().remove(&hash);
            if let Some(entry) = removed {
                self.unlink_variant(&hash, &entry);
                out.push((hash, entry));
            }
        }
        out
    }

    /// Objects held.
    pub fn count(&self) -> usize {
        self.entries.read().len()
    }

    /// Bytes held (files and records).
    pub fn bytes(&self) -> u64 {
        self.lru.weight() as u64
    }

    /// Every hash, most recently used first within each shard, shards one after another: the
    /// order `insert_oldest` rebuilds when fed in this order.
    pub fn order(&self) -> Vec<Hash> {
        let mut out = Vec::with_capacity(self.count());
        for shard in 0..self.lru.shards() {
            self.lru.iter_for_each(shard, |(h, _)| out.push(*h));
        }
        out
    }

    /// Whether `hash` is at generation `gen`.
    pub fn holds(&self, hash: &Hash, gen: u64) -> bool {
        self.entries.read().get(hash).is_some_and(|e| e.gen == gen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(primary: u8, gen: u64, body_len: u64) -> Entry {
        Entry {
            gen,
            body_len,
            record_len: 0,
            created: 0,
            primary: [primary; 16],
        }
    }

    fn hash(n: u32) -> Hash {
        let mut h = [0u8; 16];
        // Spread over the LRU's shards as real (uniform) hashes are.
        h[..8].copy_from_slice(&(u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15)).to_le_bytes());
        h[12..].copy_from_slice(&n.to_le_bytes());
        h
    }

    #[test]
    fn evicts_least_recently_used_first_and_stays_in_bound() {
        let weight = entry(0, 0, 10_000).weight();
        let idx = Index::new(weight * 1000, 1024);
        for n in 0..1000 {
            idx.insert(hash(n), entry(0, n.into(), 10_000));
        }
        assert!(idx.evict_to_limit().is_empty());
        // The oldest hundred are used again; the next two hundred writes must evict others.
        for n in 0..100 {
            idx.get(&hash(n)).unwrap();
        }
        let mut gone = Vec::new();
        for n in 1000..1200 {
            idx.insert(hash(n), entry(0, n.into(), 10_000));
            gone.extend(idx.evict_to_limit());
        }
        assert_eq!(gone.len(), 200);
        assert!(idx.bytes() <= weight * 1000);
        assert_eq!(idx.count(), 1000);
        for n in 0..100 {
            assert!(
                idx.peek(&hash(n)).is_some(),
                "recently used object {n} was evicted"
            );
        }
        for (h, _) in &gone {
            assert!(idx.peek(h).is_none());
        }
    }

    #[test]
    fn finds_every_variant_of_a_primary() {
        let idx = Index::new(1 << 30, 16);
        idx.insert([9; 16], entry(9, 1, 10));
        idx.insert([10; 16], entry(9, 2, 10));
        idx.insert([11; 16], entry(9, 3, 10));
        let mut all = idx.of_primary(&[9; 16]);
        all.sort();
        assert_eq!(all, vec![[9; 16], [10; 16], [11; 16]]);
        idx.remove(&[10; 16], None).unwrap();
        assert_eq!(idx.of_primary(&[9; 16]).len(), 2);
    }

    #[test]
    fn removal_by_generation_spares_a_newer_write() {
        let idx = Index::new(1 << 30, 16);
        idx.insert([1; 16], entry(1, 5, 10));
        assert!(idx.remove(&[1; 16], Some(4)).is_none());
        assert!(idx.holds(&[1; 16], 5));
        assert!(idx.remove(&[1; 16], Some(5)).is_some());
        assert_eq!(idx.count(), 0);
    }

    #[test]
    fn order_rebuilds_the_same_order() {
        let idx = Index::new(1 << 30, 16);
        for n in 1..=40u8 {
            idx.insert([n; 16], entry(n, n.into(), 10));
        }
        idx.get(&[3; 16]);
        let order = idx.order();
        let rebuilt = Index::new(1 << 30, 16);
        for h in &order {
            rebuilt.insert_oldest(*h, entry(h[0], h[0].into(), 10));
        }
        assert_eq!(rebuilt.order(), order);
    }
}
