//! What the disk tier keeps in memory per object beside its index entry (decoded heads, open
//! body files): a bounded map by object hash whose slots name the generation they were made
//! for, so an object replaced since (a new generation) never finds what was kept for the old one.

use std::sync::Arc;

use parking_lot::Mutex;
use tinyufo::TinyUfo;

use super::Hash;

struct Slot<T> {
    combined: Hash,
    gen: u64,
    /// Taken out when the slot is removed, replaced or evicted: TinyUFO drops what it lets go
    /// of only later (epoch-based reclamation), and a kept value may hold memory or a removed
    /// file's space.
    value: Mutex<Option<T>>,
}

/// A bounded map of values by object and generation, TinyLFU admission and S3-FIFO eviction.
pub struct Slots<T> {
    /// `None` when nothing is to be kept.
    map: Option<TinyUfo<Hash, Arc<Slot<T>>>>,
}

impl<T: Clone + Send + Sync + 'static> Slots<T> {
    /// Holds values of total weight at most `max_weight` (0: none), about `estimated` of them.
    pub fn new(max_weight: usize, estimated: usize) -> Self {
        Slots {
            map: (max_weight > 0).then(|| TinyUfo::new(max_weight, estimated)),
        }
    }

    /// Whether anything is kept at all.
    pub fn enabled(&self) -> bool {
        self.map.is_some()
    }

    /// The value kept for `combined` at generation `gen`.
    pub fn get(&self, combined: &Hash, gen: u64) -> Option<T> {
        // TinyUFO keeps only a 64-bit hash of the key, so check the full key.
        self.map
            .as_ref()?
            .get(combined)
            .filter(|s| &s.combined == combined && s.gen == gen)
            .and_then(|s| s.value.lock().clone())
    }

    /// Keeps `value` for `combined` at `gen`, in place of what was kept for `combined`;
    /// admission may turn it away.
    pub fn put(&self, combined: Hash, gen: u64, value: T, weight: u16) {
        let Some(map) = &self.map else {
            return;
        };
        // A slot already there is replaced in place, not returned as evicted.
        if let Some(old) = map.get(&combined) {
            old.value.lock().take();
        }
        let slot = Arc::new(Slot {
            combined,
            gen,
            value: Mutex::new(Some(value)),
        });
        for evicted in map.put(combined, slot, weight) {
            evicted.data.value.lock().take();
        }
    }

    /// Lets go of what is kept for `combined`.
    pub fn remove(&self, combined: &Hash) {
        if let Some(slot) = self.map.as_ref().and_then(|m| m.remove(combined)) {
            slot.value.lock().take();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_found_for_its_object_and_generation_until_removed() {
        let slots = Slots::new(16, 16);
        let value = Arc::new(5);
        slots.put([1; 16], 7, value.clone(), 1);
        assert_eq!(slots.get(&[1; 16], 7).as_deref(), Some(&5));
        assert!(slots.get(&[1; 16], 8).is_none());
        assert!(slots.get(&[2; 16], 7).is_none());
        slots.put([1; 16], 8, Arc::new(6), 1);
        assert_eq!(
            Arc::strong_count(&value),
            1,
            "the replaced slot let go of it"
        );
        assert!(slots.get(&[1; 16], 7).is_none());
        let newer = slots.get(&[1; 16], 8).unwrap();
        slots.remove(&[1; 16]);
        assert!(slots.get(&[1; 16], 8).is_none());
        assert_eq!(
            Arc::strong_count(&newer),
            1,
            "the removed slot let go of it"
        );
    }

    #[test]
    fn nothing_is_kept_in_no_room() {
        let slots = Slots::new(0, 16);
        assert!(!slots.enabled());
        slots.put([1; 16], 7, 5, 1);
        assert!(slots.get(&[1; 16], 7).is_none());
    }
}
