//! TLS termination: certificates chosen by SNI. A site's own certificate serves its hosts; the
//! listener's certificate serves everything else. Both are read from the configuration in
//! force at each handshake, so a reload replaces them without a restart.

use std::sync::Arc;

use pingora::tls::sign::CertifiedKey;
use pingora::tls::{ClientHello, ResolvesServerCert};

use crate::live::router::normalize_host;
use crate::live::{Live, LiveHandle};

/// Picks the certificate for a handshake on one listener.
pub struct SniResolver {
    live: LiveHandle,
    listener: usize,
}

impl std::fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SniResolver")
            .field("listener", &self.listener)
            .finish()
    }
}

impl SniResolver {
    /// A resolver for the listener at `listener` in the configuration in force.
    pub fn new(live: LiveHandle, listener: usize) -> Self {
        SniResolver { live, listener }
    }
}

/// The certificate `live` serves on listener `listener` to a client that asked for
/// `server_name`.
pub fn choose(
    live: &Live,
    listener: usize,
    server_name: Option<&str>,
) -> Option<Arc<CertifiedKey>> {
    let by_site = server_name
        .and_then(normalize_host)
        .and_then(|h| live.router.route(&h))
        .and_then(|site| live.certs.sites.get(site).cloned().flatten());
    by_site.or_else(|| live.certs.listeners.get(listener).cloned().flatten())
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        choose(&self.live.load(), self.listener, hello.server_name())
    }
}
