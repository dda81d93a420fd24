//! Active health checks. One background service checks every pool of the configuration in
//! force, each at its own interval, so pools added by a reload are checked without a restart
//! (Pingora's background services are fixed once the server runs).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use edge_config::edge::{HealthCheck, Origin};
use pingora::http::RequestHeader;
use pingora::lb::health_check::HttpHealthCheck;
use pingora::protocols::tls::CaType;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use super::PoolError;
use crate::proxy::EdgeState;

/// The longest the checker sleeps, so a reload's new pools are checked promptly.
const MAX_IDLE: Duration = Duration::from_millis(500);

/// The HTTP check of a pool: `GET path` with the pool's Host, 2xx is healthy.
pub(super) fn http_check(
    origin: &Origin,
    hc: &HealthCheck,
    sni: &str,
    ca: Option<Arc<CaType>>,
) -> Result<Box<HttpHealthCheck>, PoolError> {
    let host = origin.host_header.as_deref().unwrap_or(sni);
    let mut check = HttpHealthCheck::new(sni, origin.tls);
    let mut req = RequestHeader::build("GET", hc.path.as_bytes(), None)
        .map_err(|e| PoolError::HealthCheck(e.to_string()))?;
    req.insert_header("host", host)
        .map_err(|e| PoolError::HealthCheck(e.to_string()))?;
    check.req = req;
    check.consecutive_success = hc.rise as usize;
    check.consecutive_failure = hc.fall as usize;
    let opts = &mut check.peer_template.options;
    opts.connection_timeout = Some(origin.connect_timeout);
    opts.read_timeout = Some(
        origin
            .read_timeout
            .min(hc.interval.max(Duration::from_secs(1))),
    );
    opts.verify_cert = origin.verify;
    opts.verify_hostname = origin.verify;
    opts.ca = ca;
    Ok(Box::new(check))
}

/// Runs the health checks of the pools in force.
pub struct HealthChecker {
    /// Where the configuration in force is read.
    pub state: Arc<EdgeState>,
}

#[async_trait]
impl BackgroundService for HealthChecker {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            let live = self.state.live.load_full();
            let now = Instant::now();
            let mut next = now + MAX_IDLE;
            for pool in live.pools.values() {
                if let Some(due) = pool.check_health(now).await {
                    next = next.min(due);
                }
            }
            tokio::select! {
                _ = tokio::time::sleep_until(next.max(now + Duration::from_millis(10)).into()) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
