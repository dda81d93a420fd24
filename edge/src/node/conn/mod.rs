//! Client connections against slow and hostile clients: a timeout for every state a connection
//! can wait in, a ceiling on open connections, and a ceiling on the bytes held for clients that
//! stop reading.
//!
//! | state                                   | bounded by                                   | where |
//! |-----------------------------------------|----------------------------------------------|-------|
//! | accepted, TLS handshake                 | `tls_handshake_timeout`                      | [`watchdog`] |
//! | TLS done, HTTP/2 preface and first stream | `client_header_timeout`                    | [`watchdog`] |
//! | first HTTP/1.x request head             | `client_header_timeout`, the whole head      | [`guard`] |
//! | idle between HTTP/1.1 requests          | `keepalive_timeout`, then the head as above  | Pingora, [`guard`] |
//! | HTTP/2 with no stream open              | `keepalive_timeout`                          | Pingora's `h2_idle_timeout` |
//! | writing to a client that does not read  | `send_timeout` without progress              | Pingora's write timeout |
//! | disk bytes waiting for such a client    | `client_buffers`, node-wide                  | [`budget`] |
//! | one more connection                     | `max_connections`                            | [`Connections::admit`] |
//!
//! Every setting is read per connection or per request from [`Connections`], which a reload
//! updates; HTTP/2's idle timeout is Pingora's per-service option and is read at start.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use edge_config::edge::Limits;

use crate::admin::{Capacity, Saturation};
use prometheus::{register_int_counter, register_int_counter_vec, register_int_gauge};
use prometheus::{IntCounter, IntGauge};

pub mod budget;
pub mod guard;
pub mod watchdog;

pub use budget::Budget;
pub use guard::{Counted, Guarded};
pub use watchdog::Watchdog;

/// Why the edge closed a client connection (or an HTTP/2 stream) on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// The request head did not arrive whole in time.
    ClientHeaderTimeout,
    /// Idle too long between requests.
    KeepaliveTimeout,
    /// The TLS handshake did not finish in time.
    TlsHandshakeTimeout,
    /// A write to the client made no progress in time.
    SendTimeout,
    /// Cut to bring the bytes held for clients back under `client_buffers`.
    ClientBuffers,
}

impl Closed {
    /// Every reason, in label order.
    pub const ALL: [Closed; 5] = [
        Closed::ClientHeaderTimeout,
        Closed::KeepaliveTimeout,
        Closed::TlsHandshakeTimeout,
        Closed::SendTimeout,
        Closed::ClientBuffers,
    ];

    /// The `reason` label of `edge_connections_closed_total`.
    pub fn label(self) -> &'static str {
        match self {
            Closed::ClientHeaderTimeout => "client_header_timeout",
            Closed::KeepaliveTimeout => "keepalive_timeout",
            Closed::TlsHandshakeTimeout => "tls_handshake_timeout",
            Closed::SendTimeout => "send_timeout",
            Closed::ClientBuffers => "client_buffers",
        }
    }
}

/// The connection families of `/metrics`.
pub struct ConnMetrics {
    /// `edge_connections_open`: client connections open, as of the last scrape.
    pub open: IntGauge,
    /// `edge_connections_refused_total`: connections refused at `max_connections`.
    pub refused: IntCounter,
    /// `edge_connections_closed_total{reason}`, in [`Closed::ALL`] order.
    closed: Vec<IntCounter>,
    /// `edge_client_buffer_bytes`: disk bytes held for clients, as of the last scrape.
    pub buffered: IntGauge,
    /// `edge_connections_saturated`: 1 while the node cannot take more clients.
    saturated: IntGauge,
    /// `edge_descriptors_open`: descriptors the process has open.
    descriptors: IntGauge,
}

impl ConnMetrics {
    /// Families registered nowhere, for unit tests.
    #[cfg(test)]
    pub(crate) fn unregistered() -> Self {
        ConnMetrics {
            open: IntGauge::new("open", "h").unwrap(),
            refused: IntCounter::new("refused", "h").unwrap(),
            closed: Closed::ALL
                .iter()
                .map(|c| IntCounter::new(c.label(), "h").unwrap())
                .collect(),
            buffered: IntGauge::new("buffered", "h").unwrap(),
            saturated: IntGauge::new("saturated", "h").unwrap(),
            descriptors: IntGauge::new("descriptors", "h").unwrap(),
        }
    }

    /// Registers the families. Fails only if they are registered twice in one process.
    pub fn register() -> prometheus::Result<Self> {
        let closed = register_int_counter_vec!(
            "edge_connections_closed_total",
            "Client connections (or HTTP/2 streams) the edge closed on its own, by reason.",
            &["reason"]
        )?;
        Ok(ConnMetrics {
            open: register_int_gauge!("edge_connections_open", "Client connections open now.")?,
            refused: register_int_counter!(
                "edge_connections_refused_total",
                "Client connections refused because the node had limits.max_connections open."
            )?,
            closed: Closed::ALL
                .iter()
                .map(|c| closed.with_label_values(&[c.label()]))
                .collect(),
            buffered: register_int_gauge!(
                "edge_client_buffer_bytes",
                "Bytes read from the disk tier for clients and not yet taken by them."
            )?,
            saturated: register_int_gauge!(
                "edge_connections_saturated",
                "1 while the node has limits.max_connections open or is short of descriptors (then /readyz is 503)."
            )?,
            descriptors: register_int_gauge!(
                "edge_descriptors_open",
                "Descriptors the process has open (its limit is raised to the hard limit at start)."
            )?,
        })
    }

    /// Counts a connection closed for `why`.
    pub fn closed(&self, why: Closed) {
        tracing::debug!(reason = why.label(), "client connection closed");
        if let Some(c) = self.closed.get(why as usize) {
            c.inc();
        }
    }
}

/// The node's client connections: the settings in force, how many are open, and the state
/// the timeouts and ceilings keep. Shared by the workers' connection filters, the listeners'
/// wrappers, the proxy and the admin listener's readiness.
pub struct Connections {
    /// What the descriptor limit leaves room for: `max_connections` is capped to it.
    ceiling: usize,
    header_ms: AtomicU64,
    keepalive_s: AtomicU64,
    tls_ms: AtomicU64,
    send_ms: AtomicU64,
    max: AtomicUsize,
    open: AtomicUsize,
    /// Disk bytes held for clients.
    pub budget: Arc<Budget>,
    /// Deadlines of TLS handshakes and of HTTP/2 connections' first streams.
    pub watchdog: Watchdog,
    /// The connection families.
    pub metrics: ConnMetrics,
}

impl Connections {
    /// The node's connections under `limits`.
    pub fn new(limits: &Limits, metrics: ConnMetrics) -> Arc<Self> {
        Self::with_ceiling(
            limits,
            metrics,
            crate::fds::connection_ceiling(crate::cache::open_files::most_kept),
        )
    }

    /// As [`new`](Self::new), with `max_connections` capped to `ceiling`.
    fn with_ceiling(limits: &Limits, metrics: ConnMetrics, ceiling: usize) -> Arc<Self> {
        let c = Arc::new(Connections {
            ceiling,
            header_ms: AtomicU64::new(0),
            keepalive_s: AtomicU64::new(0),
            tls_ms: AtomicU64::new(0),
            send_ms: AtomicU64::new(0),
            max: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
            budget: Arc::new(Budget::new(limits.client_buffers)),
            watchdog: Watchdog::default(),
            metrics,
        });
        c.update(limits);
        c
    }

    /// Applies the limits of a reloaded configuration to the connections that start from now.
    pub fn update(&self, limits: &Limits) {
        let ms = |d: Duration| d.as_millis().min(u128::from(u64::MAX)) as u64;
        self.header_ms
            .store(ms(limits.client_header_timeout), Ordering::Relaxed);
        self.keepalive_s
            .store(limits.keepalive_timeout.as_secs(), Ordering::Relaxed);
        self.tls_ms
            .store(ms(limits.tls_handshake_timeout), Ordering::Relaxed);
        self.send_ms
            .store(ms(limits.send_timeout), Ordering::Relaxed);
        let max = limits.max_connections.min(self.ceiling);
        if max < limits.max_connections {
            tracing::warn!(
                max_connections = limits.max_connections,
                in_force = max,
                "limits.max_connections is above what the descriptor limit leaves room for \
                 (raise LimitNOFILE): the lower figure is in force"
            );
        }
        self.max.store(max, Ordering::Relaxed);
        self.budget.set_limit(limits.client_buffers);
    }

    /// `limits.client_header_timeout`.
    pub fn client_header_timeout(&self) -> Duration {
        Duration::from_millis(self.header_ms.load(Ordering::Relaxed))
    }

    /// `limits.keepalive_timeout` in whole seconds, as Pingora keeps it; 0 is off.
    pub fn keepalive_secs(&self) -> u64 {
        self.keepalive_s.load(Ordering::Relaxed)
    }

    /// `limits.tls_handshake_timeout`.
    pub fn tls_handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.tls_ms.load(Ordering::Relaxed))
    }

    /// `limits.send_timeout`.
    pub fn send_timeout(&self) -> Duration {
        Duration::from_millis(self.send_ms.load(Ordering::Relaxed))
    }

    /// Takes a place for a connection just accepted; `false` (counted) when the node has
    /// `max_connections` open already. A place taken is given back by [`Slot`]'s drop.
    pub fn admit(&self) -> bool {
        let max = self.max.load(Ordering::Relaxed);
        let taken = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            });
        match taken {
            Ok(_) => true,
            Err(_) => {
                self.metrics.refused.inc();
                false
            }
        }
    }

    /// Whether the node has `max_connections` open.
    pub fn at_limit(&self) -> bool {
        self.open.load(Ordering::Relaxed) >= self.max.load(Ordering::Relaxed)
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    fn release(&self) {
        let _ = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(1))
            });
    }
}

impl Capacity for Connections {
    /// Below `max_connections` and not short of descriptors. Updates the connection gauges.
    fn saturation(&self) -> Saturation {
        // Read at the scrape: a gauge set by each of several threads as it changes the count
        // could be left at an older value by the last two to race.
        self.metrics.open.set(self.open() as i64);
        self.metrics.buffered.set(self.budget.held() as i64);
        let descriptors = crate::fds::open();
        if let Ok(n) = &descriptors {
            self.metrics.descriptors.set(*n as i64);
        }
        let s = Saturation {
            at_connection_limit: self.at_limit(),
            short_of_descriptors: crate::fds::short(descriptors),
        };
        self.metrics.saturated.set(i64::from(s.any()));
        s
    }
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections")
            .field("open", &self.open())
            .field("max", &self.max.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// A connection's place among the node's `max_connections`, given back when dropped.
pub struct Slot(Arc<Connections>);

impl Slot {
    /// The place [`Connections::admit`] took for the connection now being handed over.
    pub(crate) fn taken(connections: &Arc<Connections>) -> Slot {
        Slot(connections.clone())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> ConnMetrics {
        ConnMetrics::unregistered()
    }

    #[test]
    fn the_descriptor_limit_caps_max_connections() {
        let limits = Limits {
            max_connections: 10,
            ..Limits::default()
        };
        let c = Connections::with_ceiling(&limits, metrics(), 2);
        assert!(c.admit() && c.admit());
        assert!(!c.admit());
    }

    fn connections(max: usize) -> Arc<Connections> {
        let limits = Limits {
            max_connections: max,
            ..Limits::default()
        };
        Connections::with_ceiling(&limits, metrics(), usize::MAX)
    }

    #[test]
    fn admission_stops_at_the_ceiling_and_resumes_when_a_place_is_given_back() {
        let c = connections(2);
        assert!(c.admit() && c.admit());
        let (a, b) = (Slot::taken(&c), Slot::taken(&c));
        assert!(c.at_limit());
        assert!(c.saturation().at_connection_limit);
        assert_eq!(c.metrics.saturated.get(), 1);
        assert!(!c.admit());
        assert_eq!(c.metrics.refused.get(), 1);
        drop(a);
        assert!(!c.at_limit());
        assert!(c.admit());
        let _c = Slot::taken(&c);
        c.saturation();
        assert_eq!(c.metrics.open.get(), 2);
        drop(b);
        assert_eq!(c.open(), 1);
    }

    #[test]
    fn a_reload_changes_the_settings_and_the_ceiling() {
        let c = connections(1);
        assert_eq!(c.keepalive_secs(), 75);
        assert!(c.admit());
        let _slot = Slot::taken(&c);
        assert!(!c.admit());
        c.update(&Limits {
            max_connections: 3,
            keepalive_timeout: Duration::from_secs(5),
            send_timeout: Duration::from_millis(1500),
            ..Limits::default()
        });
        assert!(c.admit());
        assert_eq!(c.keepalive_secs(), 5);
        assert_eq!(c.send_timeout(), Duration::from_millis(1500));
    }

    #[test]
    fn each_reason_has_its_own_label_and_counter() {
        let c = connections(1);
        c.metrics.closed(Closed::SendTimeout);
        c.metrics.closed(Closed::SendTimeout);
        c.metrics.closed(Closed::ClientBuffers);
        let counts: Vec<u64> = c.metrics.closed.iter().map(IntCounter::get).collect();
        assert_eq!(counts, [0, 0, 0, 2, 1]);
        let labels: std::collections::HashSet<_> = Closed::ALL.iter().map(|c| c.label()).collect();
        assert_eq!(labels.len(), Closed::ALL.len());
    }
}
