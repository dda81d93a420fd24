//! Deadlines that Pingora's own timeouts do not cover: the TLS handshake (Pingora allows any
//! handshake a minute), and an HTTP/2 connection's wait for its first stream (the HTTP/2
//! handshake waits for the client's preface with no limit, and the idle timeout starts after
//! it).
//!
//! A TLS connection is armed before its handshake (Pingora's pre-TLS callback) with a duplicate
//! of its socket; when the handshake is done, [`Counted`](super::Counted) disarms it, or arms
//! it again until the first stream for HTTP/2. A deadline that passes shuts the socket down
//! through the duplicate, which wakes whatever waits on it with an end of stream. Entries are
//! keyed by the kernel's socket cookie, which no other socket has while the host is up, so a
//! descriptor number reused by a new connection cannot be mistaken for the old one.

use std::collections::HashMap;
use std::net::Shutdown;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use pingora::listeners::PreTlsProcess;
use pingora::protocols::http::ServerSession;
use pingora::protocols::l4::ext::get_socket_cookie;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::Stream;
use pingora::{Error, ErrorType, Result};
use tokio::sync::oneshot;

use super::{Closed, Connections};

/// What an armed connection waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The end of its TLS handshake; the entry holds the connection's place.
    Handshake,
    /// Its first HTTP/2 stream.
    FirstStream,
}

struct Entry {
    /// Dropped to disarm: the timer task then ends and closes its duplicate.
    _stop: oneshot::Sender<()>,
    phase: Phase,
}

/// The armed connections.
#[derive(Default)]
pub struct Watchdog {
    entries: Mutex<HashMap<u64, Entry>>,
    /// HTTP/2 connections armed until their first stream, so streams skip the look-up when
    /// there are none.
    streams_waiting: AtomicUsize,
}

impl Watchdog {
    /// Connections armed now.
    pub fn armed(&self) -> usize {
        self.entries.lock().len()
    }
}

impl Connections {
    /// Arms the socket `cookie` names, through `socket` (its duplicate), to be shut down after
    /// `after` unless disarmed first.
    fn arm(self: &Arc<Self>, cookie: u64, socket: OwnedFd, after: Duration, phase: Phase) {
        let (stop, stopped) = oneshot::channel();
        if phase == Phase::FirstStream {
            self.watchdog
                .streams_waiting
                .fetch_add(1, Ordering::Relaxed);
        }
        self.watchdog
            .entries
            .lock()
            .insert(cookie, Entry { _stop: stop, phase });
        let c = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(after) => c.expire(cookie, socket),
                _ = stopped => {}
            }
        });
    }

    /// The deadline of `cookie` passed: shut it down, unless it was disarmed meanwhile.
    fn expire(&self, cookie: u64, socket: OwnedFd) {
        let Some(entry) = self.watchdog.entries.lock().remove(&cookie) else {
            return;
        };
        // Its handshake or its preface read wakes with an end of stream.
        let _ = std::net::TcpStream::from(socket).shutdown(Shutdown::Both);
        match entry.phase {
            Phase::Handshake => {
                self.metrics.closed(Closed::TlsHandshakeTimeout);
                // The connection never reached `Counted`: its place is given back here.
                self.release();
            }
            Phase::FirstStream => {
                self.watchdog
                    .streams_waiting
                    .fetch_sub(1, Ordering::Relaxed);
                self.metrics.closed(Closed::ClientHeaderTimeout);
            }
        }
    }

    /// Disarms `cookie`; whether it was armed in `phase`.
    fn disarm(&self, cookie: u64, phase: Phase) -> bool {
        let mut entries = self.watchdog.entries.lock();
        if entries.get(&cookie).is_none_or(|e| e.phase != phase) {
            return false;
        }
        entries.remove(&cookie);
        drop(entries);
        if phase == Phase::FirstStream {
            self.watchdog
                .streams_waiting
                .fetch_sub(1, Ordering::Relaxed);
        }
        true
    }

    /// A TLS handshake ended: disarms the connection, and arms it again for `first_stream`
    /// (HTTP/2). `false` when its deadline had passed already (the place is given back, and
    /// the connection is to be dropped).
    pub(super) fn handshake_done(
        self: &Arc<Self>,
        stream: &Stream,
        first_stream: Option<Duration>,
    ) -> bool {
        let Ok(cookie) = get_socket_cookie(stream.id()) else {
            return false;
        };
        if !self.disarm(cookie, Phase::Handshake) {
            return false;
        }
        if let Some(after) = first_stream {
            // Without a duplicate the stream waits as Pingora lets it: the idle timeout.
            if let Ok(socket) = crate::fds::duplicate(stream.id()) {
                self.arm(cookie, socket, after, Phase::FirstStream);
            }
        }
        true
    }

    /// An HTTP/2 stream started: its connection waits no more.
    pub(super) fn first_stream(&self, session: &ServerSession) {
        if self.watchdog.streams_waiting.load(Ordering::Relaxed) == 0 {
            return;
        }
        let cookie = session
            .digest()
            .and_then(|d| d.socket_digest.as_ref())
            .and_then(|s| s.socket_cookie().ok());
        if let Some(cookie) = cookie {
            self.disarm(cookie, Phase::FirstStream);
        }
    }
}

/// Pingora's pre-TLS callback on the TLS listeners: arms each connection for its handshake.
pub struct TlsDeadline(pub Arc<Connections>);

#[async_trait]
impl PreTlsProcess for TlsDeadline {
    async fn process(&self, stream: &mut L4Stream) -> Result<()> {
        let c = &self.0;
        let fd = stream.as_raw_fd();
        let armed = get_socket_cookie(fd).and_then(|cookie| {
            let socket = crate::fds::duplicate(fd)?;
            c.arm(cookie, socket, c.tls_handshake_timeout(), Phase::Handshake);
            Ok(())
        });
        if let Err(e) = armed {
            // Refused: the place the connection filter took is given back now.
            c.release();
            return Error::e_explain(
                ErrorType::AcceptError,
                format!("cannot watch the TLS handshake: {e}"),
            );
        }
        Ok(())
    }
}
