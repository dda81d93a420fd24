//! TLS termination: certificates chosen by SNI. A site's own certificate serves its hosts; the
//! listener's certificate serves everything else. Both are read from the configuration in
//! force at each handshake, so a reload replaces them without a restart.

use std::sync::Arc;

use pingora::tls::sign::CertifiedKey;
use pingora::tls::{ClientHello, ResolvesServerCert};

use crate::live::router::{normalize_host, Router};
use crate::live::LiveHandle;

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

/// What serves a handshake on listener `listener` for a client that asked for `server_name`:
/// the certificate of the site the router picks for that name, else the listener's own.
pub fn choose<'a, T>(
    router: &Router,
    sites: &'a [Option<T>],
    listeners: &'a [Option<T>],
    listener: usize,
    server_name: Option<&str>,
) -> Option<&'a T> {
    let by_site = server_name
        .and_then(normalize_host)
        .and_then(|h| router.route(&h))
        .and_then(|site| sites.get(site)?.as_ref());
    by_site.or_else(|| listeners.get(listener)?.as_ref())
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let live = self.live.load();
        let certs = &live.certs;
        choose(
            &live.router,
            &certs.sites,
            &certs.listeners,
            self.listener,
            hello.server_name(),
        )
        .cloned()
    }
}

#[cfg(test)]
mod tests {
    use edge_config::edge::EdgeConfig;

    use super::*;

    #[test]
    fn a_site_certificate_serves_its_hosts_and_the_listener_the_rest() {
        let config = EdgeConfig::from_yaml(
            "node: { id: t }\nlisten: [{ addr: 127.0.0.1:1 }, { addr: 127.0.0.1:4 }]\n\
             admin: { addr: 127.0.0.1:2 }\norigins: { o: { servers: [\"127.0.0.1:3\"] } }\n\
             sites:\n\
             - { hosts: [shop.example.com], origin: o }\n\
             - { hosts: ['*.img.example.com'], origin: o }\n\
             - { hosts: ['*'], origin: o }\n",
        )
        .unwrap();
        let router = Router::new(&config.sites);
        let sites = [Some("shop"), Some("img"), None];
        let listeners = [Some("plain default"), Some("tls default")];
        let pick = |listener, name| choose(&router, &sites, &listeners, listener, name).copied();
        assert_eq!(pick(1, Some("shop.example.com")), Some("shop"));
        assert_eq!(
            pick(1, Some("SHOP.example.com.")),
            Some("shop"),
            "names are normalised"
        );
        assert_eq!(pick(1, Some("a.img.example.com")), Some("img"));
        assert_eq!(
            pick(1, Some("other.org")),
            Some("tls default"),
            "the catch-all has none"
        );
        assert_eq!(pick(1, None), Some("tls default"), "no SNI");
        assert_eq!(pick(0, Some("other.org")), Some("plain default"));
        assert_eq!(pick(7, Some("other.org")), None);
    }
}
