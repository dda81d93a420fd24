//! The proxy as one single-threaded service per worker, every worker accepting on the same
//! listening sockets, as nginx's workers do.
//!
//! Pingora's default for a service of N threads is one listener task whose runtime accepts
//! every connection and spawns it on a random runtime of the N. The socket stays registered
//! with the accepting runtime's reactor, so half the connections have each readiness event
//! reported on one thread and their task woken on another; the upstream connection pool is
//! shared by the N runtimes too, so an origin connection kept alive is reused, and watched
//! while idle, across threads as well. Each of those wakes is an eventfd write and, on a busy
//! machine, a context switch. A worker here accepts, serves and pools its own connections on
//! its own thread.
//!
//! Worker 0 binds the sockets, or takes them over from the old process in an upgrade, and
//! registers them in Pingora's table of listening sockets, the table handed to the next
//! process on upgrade. Every other worker waits for those entries and listens on its own
//! duplicate of each descriptor, given to it in a private table: a duplicate shares the
//! socket (and its accept queue), the upgrade hands over the one table unchanged, and each
//! worker closes only its own descriptor when it stops. Two services given the same entry
//! would both own, and both close, one descriptor.
//!
//! A shared accept queue wakes every worker for a new connection; `pace.rs` keeps a burst of
//! them from all going to one worker. `edge_connections_accepted_total{worker}` shows the split.

use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::proxy::HttpProxy;
use pingora::server::{Fds, ListenFds, ShutdownWatch};
use pingora::services::listening::Service as Listening;
use pingora::services::Service;
use prometheus::IntCounter;

use crate::drain::Linger;
use crate::node::conn::{Connections, Counted, Guarded};
use crate::proxy::EdgeProxy;

mod fd;
mod pace;

pub use pace::Balance;
use pace::Pace;

/// How often a worker looks for worker 0's sockets while they are being bound. Binding is
/// immediate unless the address is in use, when Pingora retries for up to 30 s.
const POLL: Duration = Duration::from_millis(2);

/// A worker's proxy service.
pub type ProxyService = Listening<Linger<Counted<Guarded<HttpProxy<EdgeProxy>>>>>;

/// Counts (and admits) the connections the one service of a work-stealing runtime accepts, as
/// worker 0.
pub fn count_accepts(
    service: &mut ProxyService,
    accepted: IntCounter,
    connections: Arc<Connections>,
) {
    service.set_connection_filter(Arc::new(Pace {
        index: 0,
        accepted,
        balance: None,
        sockets: Arc::default(),
        connections,
    }));
}

/// One worker: a proxy service run on a runtime of its own thread.
pub struct Worker {
    index: usize,
    service: ProxyService,
    balance: Arc<Balance>,
    sockets: Arc<OnceLock<Vec<RawFd>>>,
}

impl Worker {
    /// Worker `index` of the node, serving with `service`, counting its connections in
    /// `accepted`, admitting them within the node's `connections` and pacing its accepts by
    /// `balance`. Worker 0 binds the listening sockets the others share.
    pub fn new(
        index: usize,
        mut service: ProxyService,
        accepted: IntCounter,
        balance: Arc<Balance>,
        connections: Arc<Connections>,
    ) -> Self {
        let sockets = Arc::new(OnceLock::new());
        service.set_connection_filter(Arc::new(Pace {
            index,
            accepted,
            balance: Some(balance.clone()),
            sockets: sockets.clone(),
            connections,
        }));
        Worker {
            index,
            service,
            balance,
            sockets,
        }
    }

    /// A private table holding a duplicate of each of worker 0's sockets, which `fds` are,
    /// and the duplicates' numbers; `None` if one cannot be made (those made are closed).
    fn duplicates(&self, addrs: Vec<String>, fds: &[RawFd]) -> Option<(Fds, Vec<RawFd>)> {
        let mut dups = Vec::with_capacity(fds.len());
        for (addr, fd) in addrs.iter().zip(fds) {
            match crate::fds::duplicate(*fd) {
                Ok(dup) => dups.push(dup),
                Err(e) => {
                    tracing::error!(worker = self.index, %addr, error = %e,
                        "cannot share the listening socket; this worker takes no connections");
                    return None;
                }
            }
        }
        let mut own = Fds::new();
        let raw = dups.iter().map(AsRawFd::as_raw_fd).collect();
        // Pingora's listener takes each one over from the table.
        for (addr, dup) in addrs.into_iter().zip(dups) {
            own.add(addr, dup.into_raw_fd());
        }
        Some((own, raw))
    }
}

/// Worker 0's descriptors of `addrs`, once it has bound them all (or taken them over); `None`
/// if the node shuts down first.
async fn bound(
    table: &ListenFds,
    addrs: &[String],
    index: usize,
    mut shutdown: ShutdownWatch,
) -> Option<Vec<RawFd>> {
    let started = Instant::now();
    let mut warned = false;
    loop {
        {
            let table = table.lock();
            let found: Vec<RawFd> = addrs.iter().filter_map(|a| table.get(a).copied()).collect();
            if found.len() == addrs.len() {
                return Some(found);
            }
        }
        if !warned && started.elapsed() > Duration::from_secs(10) {
            warned = true;
            tracing::warn!(worker = index, "still waiting for the listening sockets");
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = shutdown.changed() => return None,
        }
    }
}

#[async_trait]
impl Service for Worker {
    async fn start_service(
        &mut self,
        fds: Option<ListenFds>,
        shutdown: ShutdownWatch,
        listeners_per_fd: usize,
    ) {
        let addrs = self.service.listen_addresses().unwrap_or_default();
        let fds = match fds {
            None => None,
            Some(table) if self.index == 0 => {
                // Its own descriptors, for pacing, once its listeners have bound them.
                let (table2, sockets, stop) =
                    (table.clone(), self.sockets.clone(), shutdown.clone());
                tokio::spawn(async move {
                    if let Some(fds) = bound(&table2, &addrs, 0, stop).await {
                        let _ = sockets.set(fds);
                    }
                });
                Some(table)
            }
            Some(table) => {
                let Some(originals) = bound(&table, &addrs, self.index, shutdown.clone()).await
                else {
                    return;
                };
                let Some((own, dups)) = self.duplicates(addrs, &originals) else {
                    return;
                };
                let _ = self.sockets.set(dups);
                Some(Arc::new(parking_lot::Mutex::new(own)))
            }
        };
        self.balance.listening(self.index);
        Service::start_service(&mut self.service, fds, shutdown, listeners_per_fd).await
    }

    fn name(&self) -> &str {
        Service::name(&self.service)
    }

    fn threads(&self) -> Option<usize> {
        Some(1)
    }

    fn listen_addresses(&self) -> Option<Vec<String>> {
        self.service.listen_addresses()
    }
}
