//! Whether the node has caught up with the purge log since it started. Until then every hit is
//! revalidated with the origin first, so purges the node missed while it was down cannot be
//! served; `/readyz` answers 503.

use std::sync::atomic::{AtomicBool, Ordering};

/// Owned by purge: set once at start from what the disk tier remembers, and once more when
/// purge-api says the node has caught up. Everyone else only reads it.
#[derive(Debug)]
pub struct Readiness(AtomicBool);

impl Readiness {
    /// Ready until [`Purger::new`](super::Purger::new) reads the saved position: a node with no
    /// purge history has nothing to catch up on.
    pub fn new() -> Self {
        Readiness(AtomicBool::new(true))
    }

    /// Whether the node has caught up.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    pub(super) fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    /// Marks the node caught up; true if it was not before.
    pub(super) fn caught_up(&self) -> bool {
        !self.0.swap(true, Ordering::AcqRel)
    }
}

impl Default for Readiness {
    fn default() -> Self {
        Readiness::new()
    }
}
