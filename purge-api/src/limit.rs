//! Per-token rate limits: a token bucket each.

use std::time::Instant;

use parking_lot::Mutex;

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Token buckets, one per caller token.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<Vec<Bucket>>,
}

impl RateLimiter {
    /// `rate` purges per second sustained, `burst` at once, for `callers` tokens.
    pub fn new(rate: f64, burst: u32, callers: usize) -> Self {
        let now = Instant::now();
        RateLimiter {
            rate,
            burst: f64::from(burst),
            buckets: Mutex::new(
                (0..callers)
                    .map(|_| Bucket {
                        tokens: f64::from(burst),
                        last: now,
                    })
                    .collect(),
            ),
        }
    }

    /// Takes one purge from caller `i`'s bucket: `Ok`, or the seconds until one is available.
    pub fn take(&self, i: usize) -> Result<(), u64> {
        let mut buckets = self.buckets.lock();
        let Some(b) = buckets.get_mut(i) else {
            return Ok(());
        };
        let now = Instant::now();
        b.tokens =
            (b.tokens + now.duration_since(b.last).as_secs_f64() * self.rate).min(self.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - b.tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_refusals_with_a_wait() {
        let l = RateLimiter::new(0.5, 3, 2);
        assert!((0..3).all(|_| l.take(0).is_ok()));
        assert_eq!(l.take(0), Err(2));
        // Another caller has its own bucket.
        assert!(l.take(1).is_ok());
    }
}
