//! Origin pools: weighted servers chosen round robin or by consistent hash of the cache key,
//! active HTTP health checks with rise and fall thresholds, passive health (servers that fail
//! to connect are skipped for a while), and the peer settings of each connection (TLS with SNI
//! and verification, timeouts, the keepalive pool).

pub mod health;
mod passive;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

use edge_config::edge::{LoadBalancing, Origin};
use pingora::lb::discovery::Static;
use pingora::lb::selection::{BackendIter, BackendSelection, Consistent, RoundRobin};
use pingora::lb::{Backend, Backends, LoadBalancer};

use pingora::protocols::l4::socket::SocketAddr as PeerAddr;
use pingora::protocols::tls::CaType;
use pingora::upstreams::peer::HttpPeer;

use passive::Passive;

/// How many backends a selection may skip over looking for an acceptable one.
const MAX_SELECT_ITERATIONS: usize = 256;

/// Why a pool could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// A server name could not be resolved.
    #[error("cannot resolve servers: {0}")]
    Resolve(#[from] std::io::Error),
    /// The CA file could not be read or holds no usable certificate.
    #[error("ca_file {path}: {message}")]
    Ca {
        /// The configured file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The health-check request could not be built.
    #[error("health_check: {0}")]
    HealthCheck(String),
}

enum Selector {
    RoundRobin(LoadBalancer<RoundRobin>),
    Hash(LoadBalancer<Consistent>),
}

/// A pool of origin servers.
pub struct OriginPool {
    name: String,
    selector: Selector,
    origin: Origin,
    ca: Option<Arc<CaType>>,
    passive: Passive,
    /// SNI (and the name the certificate must carry), derived once from the settings.
    sni: String,
    /// When the active health check is next due.
    check_due: parking_lot::Mutex<std::time::Instant>,
}

impl OriginPool {
    /// Builds the pool. Host names are resolved here (blocking), at start-up and on reload.
    pub fn build(name: &str, origin: &Origin) -> Result<Self, PoolError> {
        let mut backends = BTreeSet::new();
        for s in &origin.servers {
            for addr in std::net::ToSocketAddrs::to_socket_addrs(s.addr.as_str())? {
                backends.insert(Backend {
                    addr: PeerAddr::Inet(addr),
                    weight: s.weight as usize,
                    ext: Default::default(),
                });
            }
        }
        let ca = match &origin.ca_file {
            Some(path) => Some(load_ca(path)?),
            None => None,
        };
        let sni = origin
            .sni
            .clone()
            .or_else(|| origin.host_header.as_deref().map(host_only))
            .or_else(|| origin.servers.first().map(|s| host_only(&s.addr)))
            .unwrap_or_default();
        let check = HealthCheckSetup {
            sni: &sni,
            ca: ca.as_ref(),
        };
        let selector = match origin.lb {
            LoadBalancing::RoundRobin => Selector::RoundRobin(balancer(backends, origin, &check)?),
            LoadBalancing::ConsistentHash => Selector::Hash(balancer(backends, origin, &check)?),
        };
        Ok(OriginPool {
            name: name.to_string(),
            selector,
            origin: origin.clone(),
            ca,
            passive: Passive::new(origin.passive),
            sni,
            check_due: parking_lot::Mutex::new(std::time::Instant::now()),
        })
    }

    /// The configuration the pool was built from.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// A peer for a request whose cache key hashes to `key`, other than the servers in `tried`.
    ///
    /// Servers that are healthy (active check) and not marked down (passive) come first. When
    /// there is none, any untried server is better than a certain error: health checks lag,
    /// and a pool that is all down may be only partly down.
    pub fn peer(&self, key: &[u8], tried: &[SocketAddr]) -> Option<HttpPeer> {
        let untried = |b: &Backend| b.addr.as_inet().is_none_or(|a| !tried.contains(a));
        let backend = self
            .select(key, |b, healthy| {
                healthy && untried(b) && b.addr.as_inet().is_none_or(|a| self.passive.up(a))
            })
            .or_else(|| self.select(key, |b, _| untried(b)))?;
        let o = &self.origin;
        let mut peer = HttpPeer::new(backend.addr, o.tls, self.sni.clone());
        let opts = &mut peer.options;
        opts.connection_timeout = Some(o.connect_timeout);
        // The TCP connect, then the TLS handshake, each within connect_timeout.
        opts.total_connection_timeout = Some(o.connect_timeout * 2);
        opts.read_timeout = Some(o.read_timeout);
        opts.write_timeout = Some(o.write_timeout);
        opts.idle_timeout = Some(o.idle_timeout);
        opts.verify_cert = o.verify;
        opts.verify_hostname = o.verify;
        opts.ca = self.ca.clone();
        Some(peer)
    }

    /// Records a failed connect to `addr` (passive health).
    pub fn connect_failed(&self, addr: &SocketAddr) {
        if self.passive.failed(addr) {
            tracing::warn!(
                origin = %self.name,
                server = %addr,
                for_s = self.origin.passive.fail_timeout.as_secs_f64(),
                "origin server marked down after failed connects"
            );
        }
    }

    /// Records a successful connect to `addr` (passive health).
    pub fn connected(&self, addr: &SocketAddr) {
        self.passive.succeeded(addr);
    }

    fn select(&self, key: &[u8], accept: impl Fn(&Backend, bool) -> bool) -> Option<Backend> {
        match &self.selector {
            Selector::RoundRobin(lb) => lb.select_with(key, MAX_SELECT_ITERATIONS, accept),
            Selector::Hash(lb) => lb.select_with(key, MAX_SELECT_ITERATIONS, accept),
        }
    }

    /// Runs the active health check if it is due; returns when it is next due.
    pub(crate) async fn check_health(&self, now: std::time::Instant) -> Option<std::time::Instant> {
        let interval = self.origin.health_check.as_ref()?.interval;
        let due = *self.check_due.lock();
        if due > now {
            return Some(due);
        }
        let backends = match &self.selector {
            Selector::RoundRobin(lb) => lb.backends(),
            Selector::Hash(lb) => lb.backends(),
        };
        backends.run_health_check(true).await;
        let next = std::time::Instant::now() + interval;
        *self.check_due.lock() = next;
        Some(next)
    }
}

/// What the health check shares with the pool's own connections.
struct HealthCheckSetup<'a> {
    sni: &'a str,
    ca: Option<&'a Arc<CaType>>,
}

fn balancer<S>(
    backends: BTreeSet<Backend>,
    origin: &Origin,
    check: &HealthCheckSetup<'_>,
) -> Result<LoadBalancer<S>, PoolError>
where
    S: BackendSelection + 'static,
    S::Iter: BackendIter,
{
    let mut b = Backends::new(Static::new(backends));
    if let Some(hc) = &origin.health_check {
        b.set_health_check(health::http_check(
            origin,
            hc,
            check.sni,
            check.ca.cloned(),
        )?);
    }
    let lb = LoadBalancer::<S>::from_backends(b);
    // A static discovery completes at once: poll it once rather than await in a sync context.
    let polled = {
        let mut update = std::pin::pin!(lb.update());
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        std::future::Future::poll(update.as_mut(), &mut cx)
    };
    if let std::task::Poll::Ready(Err(e)) = polled {
        return Err(PoolError::Resolve(std::io::Error::other(e.to_string())));
    }
    Ok(lb)
}

/// The host part of `host:port`.
fn host_only(addr: &str) -> String {
    match addr.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => h.trim_matches(['[', ']']).to_string(),
        _ => addr.to_string(),
    }
}

/// CA certificates from a PEM file, checked as trust anchors before Pingora sees them.
fn load_ca(path: &std::path::Path) -> Result<Arc<CaType>, PoolError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let err = |message: String| PoolError::Ca {
        path: path.display().to_string(),
        message,
    };
    let ders = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if ders.is_empty() {
        return Err(err("no certificate in the file".into()));
    }
    let mut store = pingora::tls::RootCertStore::empty();
    let mut out = Vec::with_capacity(ders.len());
    for der in ders {
        store
            .add(der.clone())
            .map_err(|e| err(format!("not a usable CA certificate: {e}")))?;
        out.push(pingora::utils::tls::WrappedX509::new(
            der.to_vec(),
            pingora::utils::tls::parse_x509,
        ));
    }
    Ok(Arc::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_only_strips_the_port() {
        assert_eq!(host_only("origin.example.com:443"), "origin.example.com");
        assert_eq!(host_only("[::1]:8080"), "::1");
        assert_eq!(host_only("origin"), "origin");
    }
}
