//! The memory tier: whole objects in a TinyUFO (TinyLFU admission, S3-FIFO eviction) bounded in
//! bytes.
//!
//! TinyUFO weighs entries with a `u16`, so weights are KiB (rounded up): the bound is exact to
//! within 1 KiB per object, and the largest object is 64 MiB (config validation enforces it).

use edge_config::edge::MemorySettings;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::Mutex;
use pingora::cache::CacheMeta;
use tinyufo::TinyUfo;

use super::stats::TierStats;
use super::{Hash, Head, StoredObject};

const WEIGHT_UNIT: u64 = 1024;

/// The bounded in-memory object store.
pub struct MemoryTier {
    objects: TinyUfo<Hash, Arc<StoredObject>>,
    /// primary -> stored variants, so a URL can be invalidated with all its variants.
    variants: Mutex<HashMap<Hash, Vec<Hash>>>,
    /// Serializes writers so the byte and object counts follow the map exactly.
    write: Mutex<()>,
    max_object_size: u64,
    stats: TierStats,
}

impl MemoryTier {
    /// A tier holding at most `settings.max_size` bytes, objects up to
    /// `settings.max_object_size` each.
    pub fn new(settings: &MemorySettings) -> Self {
        let MemorySettings {
            max_size,
            max_object_size,
        } = *settings;
        let units = (max_size / WEIGHT_UNIT).max(1) as usize;
        // TinyLFU's estimator is sized for the number of objects expected; assume ~8 KiB each.
        let estimated = (max_size / 8192).clamp(1024, 16 << 20) as usize;
        MemoryTier {
            objects: TinyUfo::new(units, estimated),
            variants: Mutex::new(HashMap::new()),
            write: Mutex::new(()),
            max_object_size,
            stats: TierStats::default(),
        }
    }

    /// Largest object the tier takes.
    pub fn max_object_size(&self) -> u64 {
        self.max_object_size
    }

    /// Counters for metrics.
    pub fn stats(&self) -> &TierStats {
        &self.stats
    }

    /// The object stored under `combined`, if any.
    pub fn get(&self, combined: &Hash) -> Option<Arc<StoredObject>> {
        // TinyUFO keeps only a 64-bit hash of the key, so check the full key.
        self.objects
            .get(combined)
            .filter(|o| &o.combined == combined)
    }

    /// Offers an object to the tier. Returns whether it is now stored: the admission policy may
    /// prefer what is already there when the tier is full. An object already stored under the
    /// same key is replaced in place (TinyUFO keeps its queue position and use count, and does
    /// not ask admission again), so a refresh never evicts what it refreshes.
    pub fn put(&self, object: Arc<StoredObject>) -> bool {
        self.put_if(object, |_| true)
    }

    /// [`put`](Self::put), if `admit` still agrees once the tier's writer lock is held. A purge
    /// registers its bans before it lists the tier under the same lock, so an object is either
    /// listed (and purged) or judged against the bans here.
    pub fn put_if(
        &self,
        object: Arc<StoredObject>,
        admit: impl FnOnce(&StoredObject) -> bool,
    ) -> bool {
        let size = object.weight_bytes();
        if size > self.max_object_size {
            return false;
        }
        let weight = size.div_ceil(WEIGHT_UNIT).clamp(1, u16::MAX as u64) as u16;
        let _w = self.write.lock();
        if !admit(&object) {
            return false;
        }
        // Whatever holds this key's slot (the full-key check is skipped on purpose: a 64-bit
        // collision is replaced too, and must leave the counts).
        if let Some(replaced) = self.objects.get(&object.combined) {
            self.forget(&replaced);
        }
        let evicted = self.objects.put(object.combined, object.clone(), weight);
        let mut admitted = true;
        for kv in evicted {
            if Arc::ptr_eq(&kv.data, &object) {
                admitted = false;
                self.stats.rejections.fetch_add(1, Ordering::Relaxed);
            } else {
                self.forget(&kv.data);
                self.stats.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
        if admitted {
            self.stats.bytes.fetch_add(size, Ordering::Relaxed);
            self.stats.objects.fetch_add(1, Ordering::Relaxed);
            let mut variants = self.variants.lock();
            let list = variants.entry(object.primary).or_default();
            if !list.contains(&object.combined) {
                list.push(object.combined);
            }
        }
        admitted
    }

    /// Replaces the meta of a stored object (after a 304 or a soft purge), keeping its body and
    /// its place. `admit` is asked as in [`put_if`](Self::put_if).
    pub fn update_meta(
        &self,
        combined: &Hash,
        meta: &CacheMeta,
        admit: impl FnOnce(&StoredObject) -> bool,
    ) -> bool {
        let Some(old) = self.get(combined) else {
            return false;
        };
        let Ok(head) = Head::of_live(old.key().clone(), meta) else {
            return false;
        };
        self.put_if(
            Arc::new(StoredObject::of_head(
                old.combined,
                old.primary,
                Arc::new(head),
                old.body.clone(),
            )),
            admit,
        )
    }

    /// Every stored object's combined hash, listed under the writer lock (see
    /// [`put_if`](Self::put_if)).
    pub fn keys(&self) -> Vec<Hash> {
        let _w = self.write.lock();
        self.variants.lock().values().flatten().copied().collect()
    }

    /// Removes one object. Returns whether it was there.
    pub fn remove(&self, combined: &Hash) -> bool {
        let _w = self.write.lock();
        self.remove_locked(combined)
    }

    /// Removes every variant stored for a primary key. Returns how many.
    pub fn remove_primary(&self, primary: &Hash) -> usize {
        let _w = self.write.lock();
        let list = self.variants.lock().remove(primary).unwrap_or_default();
        let mut n = 0;
        // Every stored object is listed under its primary, a variant-less one included.
        for combined in &list {
            if self.remove_locked(combined) {
                n += 1;
            }
        }
        n
    }

    fn remove_locked(&self, combined: &Hash) -> bool {
        match self.get(combined) {
            Some(old) => {
                self.objects.remove(combined);
                self.forget(&old);
                true
            }
            None => false,
        }
    }

    fn forget(&self, old: &StoredObject) {
        self.stats
            .bytes
            .fetch_sub(old.weight_bytes(), Ordering::Relaxed);
        self.stats.objects.fetch_sub(1, Ordering::Relaxed);
        let mut variants = self.variants.lock();
        if let Some(list) = variants.get_mut(&old.primary) {
            list.retain(|c| c != &old.combined);
            if list.is_empty() {
                variants.remove(&old.primary);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tier(max_object_size: u64) -> MemoryTier {
        MemoryTier::new(&MemorySettings {
            max_size: 1 << 20,
            max_object_size,
        })
    }
    use bytes::Bytes;

    fn obj(n: u8, variant: u8, size: usize) -> Arc<StoredObject> {
        let mut combined = [0; 16];
        (combined[0], combined[1], combined[15]) = (n ^ variant.wrapping_mul(31), variant, n);
        let mut primary = [0; 16];
        (primary[0], primary[15]) = (n, n);
        Arc::new(StoredObject::new(
            combined,
            primary,
            Bytes::new(),
            (vec![0; 8], vec![0; 8]),
            Bytes::from(vec![n; size]),
        ))
    }

    #[test]
    fn stores_and_finds() {
        let t = tier(64 << 10);
        let o = obj(1, 0, 1000);
        assert!(t.put(o.clone()));
        assert_eq!(t.get(&o.combined).unwrap().body.len(), 1000);
        assert_eq!(t.stats().objects.load(Ordering::Relaxed), 1);
        assert!(t.remove(&o.combined));
        assert!(t.get(&o.combined).is_none());
        assert_eq!(t.stats().bytes.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn refuses_objects_over_the_limit() {
        let t = tier(4096);
        assert!(!t.put(obj(1, 0, 5000)));
        assert_eq!(t.stats().objects.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn stays_within_its_bound() {
        let t = tier(64 << 10);
        for n in 0..=255u8 {
            for v in 0..4u8 {
                t.put(obj(n, v, 16 << 10));
            }
        }
        let bytes = t.stats().bytes.load(Ordering::Relaxed);
        assert!(bytes <= 1 << 20, "{bytes} bytes held, bound is 1 MiB");
        assert!(t.stats().evictions.load(Ordering::Relaxed) > 0);
    }

    #[test]
    fn removes_every_variant_of_a_url() {
        let t = tier(64 << 10);
        let a = obj(7, 1, 100);
        let b = obj(7, 2, 100);
        assert!(t.put(a.clone()) && t.put(b.clone()));
        assert_eq!(t.remove_primary(&a.primary), 2);
        assert!(t.get(&a.combined).is_none() && t.get(&b.combined).is_none());
        assert_eq!(t.stats().objects.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn update_meta_keeps_the_body() {
        let t = tier(64 << 10);
        let o = obj(3, 0, 100);
        t.put(o.clone());
        let header = pingora::http::ResponseHeader::build(200, None).unwrap();
        let until = std::time::UNIX_EPOCH + std::time::Duration::from_secs(77);
        let meta = pingora::cache::CacheMeta::new(until, until, 0, 0, header);
        assert!(t.update_meta(&o.combined, &meta, |_| true));
        let got = t.get(&o.combined).unwrap();
        assert_eq!(got.decoded().unwrap().fresh_until, until);
        assert_eq!(got.body, o.body);
        assert_eq!(t.stats().objects.load(Ordering::Relaxed), 1);
    }
}
