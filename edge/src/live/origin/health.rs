//! The active health check of a pool: the request it sends and what counts as healthy. The
//! node's health checker runs the checks of the pools in force.

use std::sync::Arc;
use std::time::Duration;

use edge_config::edge::{HealthCheck, Origin};
use pingora::http::RequestHeader;
use pingora::lb::health_check::HttpHealthCheck;
use pingora::protocols::tls::CaType;

use super::PoolError;

/// The HTTP check of a pool: `GET path` with the pool's Host, 2xx is healthy.
pub(super) fn http_check(
    origin: &Origin,
    hc: &HealthCheck,
    sni: &str,
    ca: Option<Arc<CaType>>,
) -> Result<Box<HttpHealthCheck>, PoolError> {
    let host = origin.host_header.as_deref().unwrap_or(sni);
    let mut check = HttpHealthCheck::new(sni, hc.tls.unwrap_or(origin.tls));
    check.port_override = hc.port;
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
