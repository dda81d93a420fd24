//! The two wrappers around the proxy that watch each client connection: [`Counted`] around a
//! whole connection (its place among `max_connections`, the hand-over from the TLS watchdog),
//! and [`Guarded`] around each request (the deadline of its head, keep-alive, the cut of
//! [`budget`](super::budget)).
//!
//! Pingora reads the request head inside the proxy's `process_new_http`; only the proxy's
//! first hook knows it has arrived. The two sides meet through the proxy's per-request
//! [`Watch`] that `Guarded` sets around the call. An HTTP/1.x connection runs all its requests
//! on its own task, so `Counted` keeps a task-local count of them as well; HTTP/2 streams each
//! run on a task of their own, with their head read before they start.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::apps::{HttpServerApp, HttpServerOptions, ReusedHttpStream, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::{Stream, ALPN};
use pingora::server::ShutdownWatch;

use super::{Closed, Connections, Slot};
use crate::proxy::watch::{self, Watch};

tokio::task_local! {
    static CONNECTION: std::cell::Cell<u64>;
}

/// The proxy, each of its requests watched (see the module).
pub struct Guarded<A> {
    app: Arc<A>,
    connections: Arc<Connections>,
    options: HttpServerOptions,
}

impl<A> Guarded<A> {
    /// Wraps `app`; `options` are the service's HTTP options, HTTP/2's idle timeout set here.
    pub fn new(app: A, connections: Arc<Connections>, mut options: HttpServerOptions) -> Self {
        let idle = connections.keepalive_secs();
        options.h2_idle_timeout = (idle > 0).then(|| Duration::from_secs(idle));
        Guarded {
            app: Arc::new(app),
            connections,
            options,
        }
    }

    /// The wrapped proxy.
    pub fn app(&self) -> &A {
        &self.app
    }
}

#[async_trait]
impl<A: HttpServerApp + Send + Sync + 'static> HttpServerApp for Guarded<A> {
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        let c = &self.connections;
        let h2 = session.is_http2();
        // The head's deadline: from the start of a new connection (after TLS), or after the
        // keep-alive wait of a reused one. An HTTP/2 stream's head is in already.
        let mut deadline = None;
        let mut reused = false;
        if h2 {
            c.first_stream(&session);
        } else {
            let served = CONNECTION.try_with(|n| n.replace(n.get() + 1)).unwrap_or(0);
            reused = served > 0;
            let keepalive = Duration::from_secs(c.keepalive_secs());
            if reused && !keepalive.is_zero() {
                // Pingora applies it to each read of the next head, its wait for the first
                // byte included.
                session.set_keepalive(Some(c.keepalive_secs()));
            }
            let wait = if reused { keepalive } else { Duration::ZERO };
            deadline = Some(wait + c.client_header_timeout());
        }
        let started = Instant::now();
        let deadline = deadline.map(|d| started + d);
        let watch = Arc::new(Watch::default());
        let request = watch::scope(watch.clone(), self.app.process_new_http(session, shutdown));
        tokio::pin!(request);
        let timer = tokio::time::sleep_until(deadline.unwrap_or(started).into());
        tokio::pin!(timer);
        let mut timing = deadline.is_some();
        loop {
            tokio::select! {
                biased;
                reused_stream = &mut request => {
                    if watch.send_timed_out() {
                        c.metrics.closed(Closed::SendTimeout);
                    }
                    if reused && reused_stream.is_none() && !watch.head_was_read()
                        && started.elapsed() >= Duration::from_secs(c.keepalive_secs())
                    {
                        c.metrics.closed(Closed::KeepaliveTimeout);
                    }
                    return reused_stream;
                }
                _ = watch.cutting() => {
                    c.metrics.closed(Closed::ClientBuffers);
                    return None;
                }
                _ = &mut timer, if timing => {
                    if watch.head_was_read() {
                        timing = false;
                        continue;
                    }
                    c.metrics.closed(Closed::ClientHeaderTimeout);
                    return None;
                }
            }
        }
    }

    fn h2_options(&self) -> Option<pingora::protocols::http::v2::server::H2Options> {
        self.app.h2_options()
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        Some(&self.options)
    }

    async fn http_cleanup(&self) {
        self.app.http_cleanup().await;
    }
}

/// A whole client connection: holds its place among `max_connections` and takes it over from
/// the TLS watchdog.
pub struct Counted<A> {
    app: Arc<A>,
    connections: Arc<Connections>,
}

impl<A> Counted<A> {
    /// Wraps `app`.
    pub fn new(app: A, connections: Arc<Connections>) -> Self {
        Counted {
            app: Arc::new(app),
            connections,
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Counted<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let c = &self.connections;
        if stream.get_ssl_digest().is_some() {
            let h2 = matches!(stream.selected_alpn_proto(), Some(ALPN::H2));
            // The watchdog gave the place back if the handshake ended after its deadline.
            if !c.handshake_done(&stream, h2.then(|| c.client_header_timeout())) {
                return None;
            }
        }
        let _slot = Slot::taken(c);
        CONNECTION
            .scope(
                std::cell::Cell::new(0),
                self.app.process_new(stream, shutdown),
            )
            .await
    }

    async fn cleanup(&self) {
        self.app.cleanup().await;
    }
}
