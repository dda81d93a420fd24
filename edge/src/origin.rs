//! Origin pools: servers chosen round robin or by consistent hash of the cache key, with an
//! optional active HTTP health check run as a Pingora background service.

use std::sync::Arc;

use edge_config::edge::{LoadBalancing, Origin};
use pingora::http::RequestHeader;
use pingora::lb::health_check::HttpHealthCheck;
use pingora::lb::selection::{Consistent, RoundRobin};
use pingora::lb::LoadBalancer;
use pingora::services::background::{background_service, GenBackgroundService};
use pingora::upstreams::peer::HttpPeer;

/// How many backends a selection may skip over looking for a healthy one.
const MAX_SELECT_ITERATIONS: usize = 256;

enum Selector {
    RoundRobin(Arc<LoadBalancer<RoundRobin>>),
    Hash(Arc<LoadBalancer<Consistent>>),
}

/// A pool of origin servers.
pub struct OriginPool {
    selector: Selector,
    origin: Origin,
}

/// A health-check service to register with the server, when the pool has a health check.
pub type HealthService = Box<dyn pingora::services::ServiceWithDependents>;

impl OriginPool {
    /// Builds the pool, and its health-check service if it has one. Host names are resolved here,
    /// once, at start-up.
    pub fn build(
        name: &str,
        origin: &Origin,
    ) -> std::io::Result<(Arc<Self>, Option<HealthService>)> {
        fn wire<S>(
            name: &str,
            origin: &Origin,
        ) -> std::io::Result<(Arc<LoadBalancer<S>>, Option<HealthService>)>
        where
            S: pingora::lb::selection::BackendSelection + Send + Sync + 'static,
            S::Iter: pingora::lb::selection::BackendIter,
        {
            let mut lb =
                LoadBalancer::<S>::try_from_iter(origin.servers.iter().map(String::as_str))?;
            let Some(hc) = &origin.health_check else {
                return Ok((Arc::new(lb), None));
            };
            let host = origin
                .sni
                .clone()
                .or_else(|| {
                    origin
                        .servers
                        .first()
                        .and_then(|s| s.rsplit_once(':'))
                        .map(|(h, _)| h.to_string())
                })
                .unwrap_or_default();
            let mut check = HttpHealthCheck::new(&host, origin.tls);
            let mut req = RequestHeader::build("GET", hc.path.as_bytes(), None)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            req.insert_header("host", host.as_str())
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            check.req = req;
            check.peer_template.options.connection_timeout = Some(origin.connect_timeout);
            lb.set_health_check(Box::new(check));
            lb.health_check_frequency = Some(hc.interval);
            let service: GenBackgroundService<LoadBalancer<S>> =
                background_service(&format!("health check {name}"), lb);
            let task = service.task();
            Ok((task, Some(Box::new(service))))
        }

        let (selector, service) = match origin.lb {
            LoadBalancing::RoundRobin => {
                let (lb, s) = wire::<RoundRobin>(name, origin)?;
                (Selector::RoundRobin(lb), s)
            }
            LoadBalancing::ConsistentHash => {
                let (lb, s) = wire::<Consistent>(name, origin)?;
                (Selector::Hash(lb), s)
            }
        };
        Ok((
            Arc::new(OriginPool {
                selector,
                origin: origin.clone(),
            }),
            service,
        ))
    }

    /// A peer for a request whose cache key hashes to `key`. `None` when every server is down.
    pub fn peer(&self, key: &[u8]) -> Option<HttpPeer> {
        let backend = match &self.selector {
            Selector::RoundRobin(lb) => lb.select(key, MAX_SELECT_ITERATIONS),
            Selector::Hash(lb) => lb.select(key, MAX_SELECT_ITERATIONS),
        }?;
        let sni = self.origin.sni.clone().unwrap_or_default();
        let mut peer = HttpPeer::new(backend.addr, self.origin.tls, sni);
        peer.options.connection_timeout = Some(self.origin.connect_timeout);
        peer.options.read_timeout = Some(self.origin.read_timeout);
        peer.options.write_timeout = Some(self.origin.read_timeout);
        Some(peer)
    }
}
