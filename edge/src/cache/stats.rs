//! Counters each tier keeps; the metrics endpoint copies them into Prometheus families at scrape
//! time, so the request path only touches atomics.

use std::sync::atomic::{AtomicU64, Ordering};

/// One tier's counters.
#[derive(Debug, Default)]
pub struct TierStats {
    /// Bytes held (bodies and meta).
    pub bytes: AtomicU64,
    /// Objects held.
    pub objects: AtomicU64,
    /// Lookups this tier answered.
    pub hits: AtomicU64,
    /// Objects dropped to make room.
    pub evictions: AtomicU64,
    /// Objects the tier declined: admission policy, or too large.
    pub rejections: AtomicU64,
    /// Failed reads and writes (I/O errors, corrupt files); each one was served from elsewhere.
    pub errors: AtomicU64,
    /// Bodies the scrub read and found whole.
    pub scrubbed: AtomicU64,
    /// Bodies the scrub found damaged, and removed.
    pub scrub_damaged: AtomicU64,
    /// Objects written to the tier (its admission let them in).
    pub admitted: AtomicU64,
    /// Objects the admission kept out: not yet asked for often enough.
    pub not_admitted: AtomicU64,
}

impl TierStats {
    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
