//! Stopping without cutting a request: `SIGTERM` (stop) and `SIGQUIT` (hand the sockets to a
//! new process) let every request already begun finish before the runtimes are shut down.
//!
//! Pingora stops its accept loops when its shutdown watch fires, waits its grace period, then
//! shuts the runtimes down, and a runtime shut down drops every task still running: a download
//! or an origin fetch in flight is cut, whatever the grace period's length, and a long grace
//! period holds every stop (and, in an upgrade, the new process's wait for the disk catalog) for
//! its whole length. So the proxy services here run on a watch of the edge's own, fired by the
//! edge's own signal handling ([`Signals`]), which only reports the signal to Pingora once the
//! requests in flight are done or `runtime.shutdown_timeout` has passed. The admin listener
//! stays on Pingora's watch: it answers (`/readyz` 503, `/metrics`) until the end.

use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::server::{ListenFds, RuntimeOpts, ShutdownSignal, ShutdownSignalWatch, ShutdownWatch};
use pingora::services::Service;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tokio::time::Instant;

/// How long a connection accepted before the stop may take to send its first request. Pingora
/// closes every connection waiting for a request when a service stops; one the kernel completed
/// just before the stop (its request a round trip or a TLS handshake behind) would be closed
/// unanswered. Keep-alive connections idle at the stop are kept as long, and a request on one
/// is answered with `Connection: close`.
pub const LINGER: Duration = Duration::from_secs(1);

/// How often the drain looks at the requests in flight.
const POLL: Duration = Duration::from_millis(10);

/// Counters of requests in flight, one per thread (modulo): a request counts itself in and out
/// on its own thread's cache line, so counting moves no cache line between the workers on the
/// hit path.
const SLOTS: usize = 16;

/// One thread's counter, alone on its cache line (128 bytes: adjacent-line prefetch).
#[repr(align(128))]
#[derive(Default)]
struct Slot(AtomicIsize);

static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static SLOT: usize = NEXT_SLOT.fetch_add(1, Ordering::Relaxed) % SLOTS;
}

/// The node's stop: its own watch for the proxy services, and the requests in flight.
pub struct Drain {
    stop: watch::Sender<bool>,
    stopping: AtomicBool,
    /// A request may end on another thread than it began on (a work-stealing runtime): only
    /// the sum of the slots means anything.
    in_flight: [Slot; SLOTS],
    /// Services run on the stop, and those that have ended (their idle connections closed).
    services: AtomicUsize,
    closed: AtomicUsize,
    listeners: OnceLock<ListenFds>,
    grace: Duration,
    timeout: Duration,
    upgrade_sock: String,
}

impl Drain {
    /// `grace`: how long a stopping node keeps accepting (`runtime.grace_period`); `timeout`:
    /// how long its requests may take to finish (`runtime.shutdown_timeout`); `upgrade_sock`:
    /// where a new process waits for the listening sockets.
    pub fn new(grace: Duration, timeout: Duration, upgrade_sock: String) -> Drain {
        Drain {
            stop: watch::channel(false).0,
            stopping: AtomicBool::new(false),
            in_flight: Default::default(),
            services: AtomicUsize::new(0),
            closed: AtomicUsize::new(0),
            listeners: OnceLock::new(),
            grace,
            timeout,
            upgrade_sock,
        }
    }

    /// Whether the node has been told to stop or to hand over (`/readyz` then answers 503).
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Whether the node has stopped accepting and is finishing what it has begun.
    pub fn is_draining(&self) -> bool {
        *self.stop.borrow()
    }

    /// Counts a request in flight until the guard is dropped.
    pub fn enter(&'static self) -> InFlight {
        self.count(1);
        InFlight(self)
    }

    fn count(&self, n: isize) {
        SLOT.with(|&i| self.in_flight[i].0.fetch_add(n, Ordering::AcqRel));
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        let n: isize = self
            .in_flight
            .iter()
            .map(|s| s.0.load(Ordering::Acquire))
            .sum();
        n.max(0).unsigned_abs()
    }

    /// `service` run on the node's own stop rather than Pingora's shutdown watch.
    pub fn service<S: Service>(&'static self, service: S) -> OnStop<S> {
        self.services.fetch_add(1, Ordering::AcqRel);
        OnStop {
            service,
            drain: self,
        }
    }

    /// What [`Node::run`](crate::node::Node::run) hands Pingora as its shutdown signal.
    pub fn signals(&'static self) -> Box<dyn ShutdownSignalWatch> {
        Box::new(Signals(self))
    }

    /// Stops accepting, then waits until the requests in flight are done and every service
    /// has ended (closed its idle connections), or until `runtime.shutdown_timeout`.
    async fn drain(&self) {
        let deadline = Instant::now() + self.timeout;
        // `send` would not store the value with no service subscribed.
        self.stop.send_replace(true);
        tracing::info!(in_flight = self.in_flight(), "stopped accepting; draining");
        loop {
            let closed =
                self.closed.load(Ordering::Acquire) >= self.services.load(Ordering::Acquire);
            let left = self.in_flight();
            if closed && left == 0 {
                tracing::info!("drained");
                return;
            }
            if Instant::now() >= deadline {
                tracing::warn!(
                    in_flight = left,
                    "runtime.shutdown_timeout passed; stopping with requests in flight"
                );
                return;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Hands the listening sockets to the process started with `--upgrade`.
    async fn hand_over(&self) -> Result<(), HandOverError> {
        let table = self
            .listeners
            .get()
            .cloned()
            .ok_or(HandOverError::NoSockets)?;
        let path = self.upgrade_sock.clone();
        // Pingora's send retries the connection with sleeps.
        tokio::task::spawn_blocking(move || table.lock().send_to_sock(path.as_str()))
            .await?
            .map_err(|e| HandOverError::Send(e.into()))?;
        Ok(())
    }
}

/// Why the listening sockets could not be handed to a new process.
#[derive(Debug, thiserror::Error)]
enum HandOverError {
    /// This process never took any (it has no listeners yet).
    #[error("no listening sockets to hand over")]
    NoSockets,
    /// The blocking task that sends them failed.
    #[error("hand-over task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// No process took them (none started with `--upgrade`, or it went away).
    #[error("{0}")]
    Send(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A request in flight; see [`Drain::enter`].
pub struct InFlight(&'static Drain);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.count(-1);
    }
}

/// The edge's shutdown signals, as Pingora's own (`SIGTERM` stop, `SIGQUIT` upgrade, `SIGINT`
/// at once), with the drain before Pingora is told.
struct Signals(&'static Drain);

#[async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        let drain = self.0;
        let (Ok(mut quit), Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::quit()),
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot handle signals; stopping");
            return ShutdownSignal::FastShutdown;
        };
        let upgrade = loop {
            tokio::select! {
                _ = quit.recv() => match drain.hand_over().await {
                    Ok(()) => break true,
                    // Pingora stops anyway, and nothing would serve; this node serves on.
                    Err(e) => tracing::error!(error = %e,
                        "SIGQUIT: the sockets could not be handed over; still serving"),
                },
                _ = term.recv() => break false,
                _ = int.recv() => return ShutdownSignal::FastShutdown,
            }
        };
        drain.stopping.store(true, Ordering::Release);
        let wind_down = async {
            if upgrade {
                tracing::info!("listening sockets handed over; draining");
            } else {
                tracing::info!(grace = ?drain.grace, "SIGTERM: accepting for the grace period, then draining");
                tokio::time::sleep(drain.grace).await;
            }
            drain.drain().await;
        };
        tokio::select! {
            _ = wind_down => ShutdownSignal::GracefulTerminate,
            _ = int.recv() => ShutdownSignal::FastShutdown,
        }
    }
}

/// A proxy application whose idle connections are closed [`LINGER`] after its service stops.
pub struct Linger<A> {
    app: Arc<A>,
}

impl<A> Linger<A> {
    /// Wraps `app`.
    pub fn new(app: A) -> Self {
        Linger { app: Arc::new(app) }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Linger<A> {
    async fn process_new(
        self: &Arc<Self>,
        session: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        self.app.process_new(session, shutdown).await
    }

    async fn cleanup(&self) {
        tokio::time::sleep(LINGER).await;
        self.app.cleanup().await;
    }
}

/// A service run on the node's stop (see [`Drain::service`]). It also keeps the table of
/// listening sockets, which an upgrade hands over.
pub struct OnStop<S> {
    service: S,
    drain: &'static Drain,
}

#[async_trait]
impl<S: Service> Service for OnStop<S> {
    async fn start_service(
        &mut self,
        fds: Option<ListenFds>,
        _shutdown: ShutdownWatch,
        listeners_per_fd: usize,
    ) {
        if let Some(table) = &fds {
            let _ = self.drain.listeners.set(table.clone());
        }
        let stop = self.drain.stop.subscribe();
        // A listening service returns once it has stopped accepting and closed its idle
        // connections; a worker that could not start returns at once.
        self.service
            .start_service(fds, stop, listeners_per_fd)
            .await;
        self.drain.closed.fetch_add(1, Ordering::AcqRel);
    }

    fn name(&self) -> &str {
        self.service.name()
    }

    fn threads(&self) -> Option<usize> {
        self.service.threads()
    }

    fn runtime_opts_override(&self, global: &RuntimeOpts) -> Option<RuntimeOpts> {
        self.service.runtime_opts_override(global)
    }

    fn listen_addresses(&self) -> Option<Vec<String>> {
        self.service.listen_addresses()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A drain that gives up after `timeout`.
    fn drain(timeout: Duration) -> &'static Drain {
        Box::leak(Box::new(Drain::new(Duration::ZERO, timeout, String::new())))
    }

    #[test]
    fn requests_are_counted_across_threads_until_their_guards_drop() {
        let d = drain(Duration::ZERO);
        let here = d.enter();
        let moved = d.enter();
        let there = std::thread::spawn(move || d.enter()).join().unwrap();
        assert_eq!(d.in_flight(), 3);
        // Ended on another thread than it began on, as in a work-stealing runtime.
        std::thread::spawn(move || drop(moved)).join().unwrap();
        assert_eq!(d.in_flight(), 2);
        drop(here);
        drop(there);
        assert_eq!(d.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_drain_waits_for_every_service_and_request_until_its_timeout() {
        let d = drain(Duration::from_millis(200));
        let _service = d.service(Idle);
        let held = d.enter();
        assert!(!d.is_draining());
        // Neither the service has ended nor the request: the timeout ends it.
        let started = Instant::now();
        d.drain().await;
        assert!(d.is_draining());
        assert!(started.elapsed() >= Duration::from_millis(200));
        drop(held);
    }

    #[tokio::test]
    async fn a_drain_ends_as_soon_as_the_last_request_does() {
        let d = drain(Duration::from_secs(60));
        let held = d.enter();
        let ending = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            drop(held);
        });
        // No service to wait for; the request ends after 50 ms, long before the timeout.
        tokio::time::timeout(Duration::from_secs(20), d.drain())
            .await
            .expect("the drain returned once nothing was in flight");
        assert!(d.is_draining());
        assert_eq!(d.in_flight(), 0);
        ending.await.unwrap();
    }

    struct Idle;

    #[async_trait]
    impl Service for Idle {
        fn name(&self) -> &str {
            "idle"
        }
    }
}
