//! Spreads a burst of new connections over the workers that share a listening socket.
//!
//! Every worker is woken for a new connection and the first to run takes it. In a burst (a
//! load balancer or a benchmark opening its connections at once) the worker that happens to
//! be running can take them all while the others wait for a CPU, and keep-alive connections
//! stay where they were accepted. A worker that has accepted more than [`SLACK`] connections
//! beyond the fewest another worker has, while more connections wait in the queue, pauses for
//! [`PAUSE`] after the accept so that the others take those. Pingora hands the connection
//! over only when the filter returns, so the paused connection waits too; with an empty
//! queue, as in steady or light traffic, no one pauses.

use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use pingora::listeners::ConnectionFilter;
use prometheus::IntCounter;

use super::fd;
use crate::node::conn::Connections;

/// How many connections a worker may accept beyond the fewest another listening worker has
/// accepted before it pauses.
const SLACK: u64 = 8;

/// How long a worker that is ahead waits before taking its next connection: a timer tick,
/// time for a worker waiting for a CPU to get one.
const PAUSE: Duration = Duration::from_millis(1);

/// Not listening (yet, or ever): left out of the comparison.
const IDLE: u64 = u64::MAX;

/// The connections each worker of a node has accepted since it started listening.
#[derive(Debug)]
pub struct Balance {
    accepted: Box<[AtomicU64]>,
}

impl Balance {
    /// A balance over `workers` workers, none listening yet.
    pub fn new(workers: usize) -> Arc<Self> {
        Arc::new(Balance {
            accepted: (0..workers).map(|_| AtomicU64::new(IDLE)).collect(),
        })
    }

    /// Worker `index` has its sockets and takes part from now on.
    pub(super) fn listening(&self, index: usize) {
        self.accepted[index].store(0, Ordering::Relaxed);
    }

    /// Counts a connection worker `index` accepted; whether it is now ahead of the worker
    /// with the fewest by more than [`SLACK`].
    fn ahead(&self, index: usize) -> bool {
        let mine = self.accepted[index].fetch_add(1, Ordering::Relaxed) + 1;
        let fewest = self
            .accepted
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != index)
            .map(|(_, n)| n.load(Ordering::Relaxed))
            .min()
            .unwrap_or(IDLE);
        fewest != IDLE && mine > fewest.saturating_add(SLACK)
    }
}

/// Run by Pingora after each accept of a worker (or of the one service of a work-stealing
/// runtime, which has no balance): counts the connection, refuses it when the node has
/// `max_connections` open, and paces the worker.
#[derive(Debug)]
pub(super) struct Pace {
    pub(super) index: usize,
    pub(super) accepted: IntCounter,
    pub(super) balance: Option<Arc<Balance>>,
    /// This worker's descriptors of the listening sockets, once it has them.
    pub(super) sockets: Arc<OnceLock<Vec<RawFd>>>,
    /// The node's client connections.
    pub(super) connections: Arc<Connections>,
}

impl Pace {
    /// Whether connections wait in the queue of any of this worker's sockets.
    fn others_waiting(&self) -> bool {
        self.sockets
            .get()
            .is_some_and(|fds| fds.iter().any(|f| fd::queued(*f).is_ok_and(|n| n > 0)))
    }
}

#[async_trait]
impl ConnectionFilter for Pace {
    async fn should_accept(&self, _addr: Option<&SocketAddr>) -> bool {
        self.accepted.inc();
        if !self.connections.admit() {
            return false;
        }
        let ahead = self.balance.as_ref().is_some_and(|b| b.ahead(self.index));
        if ahead && self.others_waiting() {
            tokio::time::sleep(PAUSE).await;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_more_than_the_slack_ahead_of_a_listening_one_is_ahead() {
        let balance = Balance::new(3);
        balance.listening(0);
        // Alone: nobody to leave connections to.
        for _ in 0..3 * SLACK {
            assert!(!balance.ahead(0));
        }
        balance.listening(1);
        for _ in 0..SLACK {
            assert!(!balance.ahead(1));
        }
        // 1 has SLACK, 0 has 3 * SLACK, and 2 never listened.
        assert!(balance.ahead(0));
        for _ in 0..2 * SLACK + 1 {
            balance.ahead(1);
        }
        assert!(!balance.ahead(0));
        assert!(!balance.ahead(1));
    }
}
