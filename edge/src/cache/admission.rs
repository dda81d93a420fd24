//! The disk tier's admission: an object is written to disk only from its `min_uses`-th request
//! that reaches the origin, as nginx's `proxy_cache_min_uses` and Traffic Server's cache_promote
//! do, so that a one-hit object costs no file, no catalog entry and no fsync (the memory tier
//! may still hold it).
//!
//! Requests are counted in a count-min sketch (`pingora-limits`' estimator) over a window of
//! recent misses: two sketches take turns, the older one forgotten as the newer fills, so a key
//! asked for again within about one window keeps its count and a key last asked for long ago
//! starts over.

use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use pingora_limits::estimator::Estimator;

use super::Hash;

/// Misses a sketch counts before the older one is forgotten.
const WINDOW: usize = 1 << 20;
/// The sketch's shape: 4 rows of 64 Ki counters (2 MiB each), for an error far below one
/// use on a window of a million keys.
const HASHES: usize = 4;
const SLOTS: usize = 64 << 10;

/// Counts the requests each key made lately.
pub struct DiskAdmission {
    min_uses: isize,
    sketches: [Estimator; 2],
    /// Which sketch counts now (its lowest bit).
    current: AtomicUsize,
    /// Misses counted in the current window.
    events: AtomicUsize,
    rotating: Mutex<()>,
}

impl DiskAdmission {
    /// Admission from the `min_uses`-th request; `None` when every object is admitted.
    pub fn new(min_uses: u32) -> Option<Self> {
        (min_uses > 1).then(|| DiskAdmission {
            min_uses: min_uses as isize,
            sketches: [Estimator::new(HASHES, SLOTS), Estimator::new(HASHES, SLOTS)],
            current: AtomicUsize::new(0),
            events: AtomicUsize::new(0),
            rotating: Mutex::new(()),
        })
    }

    /// Counts one more request for `key`; whether it has been asked for `min_uses` times now.
    pub fn admits(&self, key: &Hash) -> bool {
        let now = self.current.load(Ordering::Acquire) & 1;
        let count = self.sketches[now].incr(key, 1) + self.sketches[now ^ 1].get(key);
        if self.events.fetch_add(1, Ordering::Relaxed) + 1 >= WINDOW {
            self.rotate(now);
        }
        count >= self.min_uses
    }

    /// Starts a new window: the older sketch is cleared and counts from now on.
    fn rotate(&self, seen: usize) {
        let _one = self.rotating.lock();
        if self.current.load(Ordering::Acquire) & 1 != seen {
            return;
        }
        self.sketches[seen ^ 1].reset();
        self.events.store(0, Ordering::Relaxed);
        self.current.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_admitted_from_its_nth_request() {
        assert!(DiskAdmission::new(1).is_none(), "every object: no counting");
        let a = DiskAdmission::new(3).unwrap();
        let (k, other) = ([1; 16], [2; 16]);
        assert!(!a.admits(&k));
        assert!(!a.admits(&other));
        assert!(!a.admits(&k));
        assert!(a.admits(&k));
        assert!(a.admits(&k));
        assert!(!a.admits(&other));
    }

    #[test]
    fn counts_survive_one_window_and_fade_after_two() {
        let a = DiskAdmission::new(2).unwrap();
        let k = [7; 16];
        assert!(!a.admits(&k));
        a.rotate(0);
        // The previous window's count still counts.
        assert!(a.admits(&k));
        let j = [8; 16];
        assert!(!a.admits(&j));
        a.rotate(1);
        a.rotate(0);
        assert!(!a.admits(&j), "asked for two windows ago: starts over");
    }
}
