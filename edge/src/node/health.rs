//! Active health checks. One background service checks every pool of the configuration in
//! force, each at its own interval, so pools added by a reload are checked without a restart
//! (Pingora's background services are fixed once the server runs).

use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::live::LiveHandle;

/// The longest the checker sleeps, so a reload's new pools are checked promptly.
const MAX_IDLE: Duration = Duration::from_millis(500);

/// Runs the health checks of the pools in force.
pub struct HealthChecker {
    /// The configuration in force, whose pools are checked.
    pub live: LiveHandle,
}

#[async_trait]
impl BackgroundService for HealthChecker {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            let live = self.live.load_full();
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
