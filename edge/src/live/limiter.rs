//! A rule's rate limit in force: how many requests each client made lately, counted in a
//! fixed-size sketch (Pingora's `pingora-limits`), so memory stays bounded however many clients
//! there are. Two clients that share a slot in every row of the sketch are counted together:
//! the estimate errs high, never low.

use std::net::IpAddr;

use edge_config::edge::logic::RateLimit;
use pingora_limits::rate::Rate;

/// Rows and columns of each window's sketch: 4 × 4096 counters, 256 KiB for a rule's two
/// windows.
const HASHES: usize = 4;
const SLOTS: usize = 4096;

/// Admits each client's requests up to a [`RateLimit`].
pub struct Limiter {
    limit: RateLimit,
    rate: Rate,
}

impl Limiter {
    /// A limiter with nothing counted.
    pub fn new(limit: RateLimit) -> Self {
        Limiter {
            limit,
            rate: Rate::new_with_estimator_config(limit.window(), HASHES, SLOTS),
        }
    }

    /// The limit it applies.
    pub fn limit(&self) -> &RateLimit {
        &self.limit
    }

    /// Whether a request from `client` is within the limit, counting it if it is. A client's
    /// admitted requests are counted over a sliding window of [`RateLimit::window`] (the last
    /// window weighted by how much of it still overlaps), which may not pass `burst`: a quiet
    /// client may send `burst` at once, and a busy one `requests` per `per`. A refused request
    /// is not counted, as nginx's `limit_req` does not: a client that keeps asking is served
    /// again as soon as its rate allows.
    pub fn admit(&self, client: IpAddr) -> bool {
        let recent = self.rate.rate_with(&client, |c| {
            c.prev_samples as f64 * (1.0 - c.current_interval_fraction) + c.curr_samples as f64
        });
        if recent + 1.0 > self.limit.burst as f64 {
            return false;
        }
        self.rate.observe(&client, 1);
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_is_admitted_and_then_the_client_waits() {
        let l = Limiter::new(RateLimit {
            requests: 3,
            per: Duration::from_secs(60),
            burst: 5,
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        let admitted = (0..8).filter(|_| l.admit(a)).count();
        assert_eq!(admitted, 5);
        assert!(l.admit(b), "another client has its own count");
        assert_eq!(l.limit().retry_after(), 20);
    }
}
