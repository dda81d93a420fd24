//! Passive health: a server that fails to connect `max_fails` times in a row is skipped for
//! `fail_timeout`, so requests stop paying a connect timeout for it before the active check
//! (if any) notices.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use edge_config::edge::PassiveHealth;
use parking_lot::Mutex;

#[derive(Default)]
struct State {
    fails: u32,
    down_until: Option<Instant>,
}

pub(super) struct Passive {
    settings: PassiveHealth,
    servers: Mutex<HashMap<SocketAddr, State>>,
}

impl Passive {
    pub(super) fn new(settings: PassiveHealth) -> Self {
        Passive {
            settings,
            servers: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `addr` may be chosen.
    pub(super) fn up(&self, addr: &SocketAddr) -> bool {
        if self.settings.max_fails == 0 {
            return true;
        }
        let servers = self.servers.lock();
        match servers.get(addr).and_then(|s| s.down_until) {
            Some(until) => until <= Instant::now(),
            None => true,
        }
    }

    /// Counts a failure; true when it marks the server down.
    pub(super) fn failed(&self, addr: &SocketAddr) -> bool {
        if self.settings.max_fails == 0 {
            return false;
        }
        let mut servers = self.servers.lock();
        let s = servers.entry(*addr).or_default();
        s.fails += 1;
        if s.fails >= self.settings.max_fails {
            s.fails = 0;
            s.down_until = Some(Instant::now() + self.settings.fail_timeout);
            return true;
        }
        false
    }

    /// A success clears the count; a server past its timeout is back.
    pub(super) fn succeeded(&self, addr: &SocketAddr) {
        if self.settings.max_fails == 0 {
            return;
        }
        self.servers.lock().remove(addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn marks_down_after_max_fails_and_a_success_clears() {
        let p = Passive::new(PassiveHealth {
            max_fails: 2,
            fail_timeout: Duration::from_secs(60),
        });
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert!(!p.failed(&a));
        assert!(p.up(&a));
        assert!(p.failed(&a));
        assert!(!p.up(&a));
        p.succeeded(&a);
        assert!(p.up(&a));
    }

    #[test]
    fn off_when_max_fails_is_zero() {
        let p = Passive::new(PassiveHealth {
            max_fails: 0,
            fail_timeout: Duration::from_secs(60),
        });
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert!(!p.failed(&a));
        assert!(p.up(&a));
    }
}
