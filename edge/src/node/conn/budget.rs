//! The node-wide ceiling on bytes read from the disk tier for clients and not yet taken by
//! them (`limits.client_buffers`).
//!
//! A disk hit holds one checked block between reading it and the client taking it; a client
//! that stops reading keeps its block until `send_timeout` closes it. Many such clients at once
//! could still hold a lot, so each block is accounted here with the time it was handed out and
//! the request's [`Watch`](crate::proxy::watch::Watch): when a new block would take the total
//! past the ceiling, the requests whose blocks have waited longest, the slowest readers, are
//! cut until it fits.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use crate::cache::{BufferHold, ClientBuffers};
use crate::proxy::watch::{self, Watch};

/// Bytes held for clients, and who holds them.
pub struct Budget {
    limit: AtomicU64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    next: u64,
    held: u64,
    /// Bytes of holders already cut.
    leaving: u64,
    holders: HashMap<u64, Holder>,
}

struct Holder {
    bytes: u64,
    since: Instant,
    /// The request to cut; none for work outside a client request (a background refresh).
    cut: Option<Arc<Watch>>,
    /// Cut, its bytes on their way back.
    leaving: bool,
}

impl Budget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Self {
        Budget {
            limit: AtomicU64::new(limit),
            state: Mutex::new(State::default()),
        }
    }

    /// A new ceiling (a reload).
    pub fn set_limit(&self, limit: u64) {
        self.limit.store(limit, Ordering::Relaxed);
    }

    /// Bytes held now.
    pub fn held(&self) -> u64 {
        self.state.lock().held
    }

    /// Accounts `bytes` for `cut`'s request; cuts the longest-waiting holders while the total
    /// is over the ceiling. Returns the holder's id and how many requests it cut.
    fn take(&self, bytes: u64, cut: Option<Arc<Watch>>) -> (u64, usize) {
        let limit = self.limit.load(Ordering::Relaxed);
        let mut s = self.state.lock();
        let id = s.next;
        s.next += 1;
        s.held += bytes;
        // Requests cut already give their bytes back as they unwind.
        let mut over = (s.held - s.leaving).saturating_sub(limit);
        let mut cut_now = 0;
        if over > 0 {
            let mut victims: Vec<(Instant, u64)> = s
                .holders
                .iter()
                .filter(|(_, h)| !h.leaving && h.cut.is_some())
                .map(|(id, h)| (h.since, *id))
                .collect();
            victims.sort_unstable();
            for (_, victim) in victims {
                if over == 0 {
                    break;
                }
                let Some(h) = s.holders.get_mut(&victim) else {
                    continue;
                };
                h.leaving = true;
                let freed = h.bytes;
                // Two blocks of one request are freed by one cut.
                if h.cut.as_ref().is_some_and(|c| c.cut()) {
                    cut_now += 1;
                }
                s.leaving += freed;
                over = over.saturating_sub(freed);
            }
        }
        s.holders.insert(
            id,
            Holder {
                bytes,
                since: Instant::now(),
                cut,
                leaving: false,
            },
        );
        (id, cut_now)
    }

    fn give_back(&self, id: u64) {
        let mut s = self.state.lock();
        if let Some(h) = s.holders.remove(&id) {
            s.held -= h.bytes;
            if h.leaving {
                s.leaving -= h.bytes;
            }
        }
    }
}

/// A block's bytes, given back to the budget when dropped.
struct Held {
    budget: Arc<Budget>,
    id: u64,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget.give_back(self.id);
    }
}

/// The budget as the cache sees it: the request is the one whose task reads the block.
pub struct Shared(pub Arc<Budget>);

impl ClientBuffers for Shared {
    fn hold(&self, bytes: usize) -> BufferHold {
        let (id, _) = self.0.take(bytes as u64, watch::current());
        Box::new(Held {
            budget: self.0.clone(),
            id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_counted_until_dropped() {
        let b = Arc::new(Budget::new(1 << 20));
        let shared = Shared(b.clone());
        let one = shared.hold(1000);
        let two = shared.hold(500);
        assert_eq!(b.held(), 1500);
        drop(one);
        assert_eq!(b.held(), 500);
        drop(two);
        assert_eq!(b.held(), 0);
    }

    #[test]
    fn over_the_ceiling_the_longest_waiting_requests_are_cut_first() {
        let b = Budget::new(300);
        let cuts: Vec<Arc<Watch>> = (0..4).map(|_| Arc::new(Watch::default())).collect();
        let mut ids = Vec::new();
        for c in &cuts[..3] {
            // 100 bytes each: 300, at the ceiling, nobody cut.
            let (id, n) = b.take(100, Some(c.clone()));
            assert_eq!(n, 0);
            ids.push(id);
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        // 150 more: 150 over, so the two oldest (100 each) are cut, the third is not.
        let (_, n) = b.take(150, Some(cuts[3].clone()));
        assert_eq!(n, 2);
        assert!(cuts[0].is_cut() && cuts[1].is_cut());
        assert!(!cuts[2].is_cut() && !cuts[3].is_cut());
        // The bytes of cut requests count as leaving: 10 more fit without another cut.
        let (_, n) = b.take(10, None);
        assert_eq!(n, 0);
        b.give_back(ids[0]);
        b.give_back(ids[1]);
        assert_eq!(b.held(), 260);
    }

    #[test]
    fn work_outside_a_request_is_counted_but_never_cut() {
        let b = Budget::new(10);
        b.take(100, None);
        let (_, n) = b.take(100, None);
        assert_eq!(n, 0);
        assert_eq!(b.held(), 200);
    }
}
