//! Shield tiers first. An edge whose origin is a shield refills from it; were the edge purged
//! before the shield, it could store the shield's pre-purge copy anew and serve it until its
//! TTL ends. So the nodes outside `nodes.shields` are sent a purge only once every shield has
//! applied it, or once it has waited `nodes.shield_wait`; a shield unreachable for that long
//! holds nothing back until it answers again (it catches up as any node does, and reports not
//! ready until it has, so the edges' health checks keep it out of their pools meanwhile).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::registry::{NodeView, Tier};

/// Why a held purge went on to the other nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleasedBy {
    /// Every shield applied it.
    Shields,
    /// It waited `shield_wait`.
    Timeout,
}

impl ReleasedBy {
    /// Every reason.
    pub const ALL: [ReleasedBy; 2] = [ReleasedBy::Shields, ReleasedBy::Timeout];

    /// The `released_by` label.
    pub fn label(self) -> &'static str {
        match self {
            ReleasedBy::Shields => "shields",
            ReleasedBy::Timeout => "timeout",
        }
    }
}

/// What the shields have applied, as far as it holds the other nodes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Floor {
    /// The lowest sequence applied by a shield that holds purges back.
    Applied(u64),
    /// No shield is known (none resolved): nothing is held.
    NoShield,
    /// Every shield has been unreachable for the wait: nothing is held.
    AllAway,
}

/// What the other nodes may be sent now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Release {
    /// The highest sequence they may be sent.
    pub through: u64,
    /// When the oldest held purge goes on without its shields, if one is held.
    pub timeout_at: Option<Instant>,
}

/// Holds purges back from the nodes outside the shield tier.
pub struct ShieldGate {
    wait: Duration,
    state: Mutex<GateState>,
}

#[derive(Default)]
struct GateState {
    /// Held sequences in runs, each with when this process first knew of it: the run ends at
    /// `.0` and starts after the previous run's end.
    held: VecDeque<(u64, Instant)>,
    /// The highest sequence released so far (releases never go back).
    released: u64,
}

impl ShieldGate {
    /// A gate that holds a purge for at most `wait`.
    pub fn new(wait: Duration) -> Self {
        ShieldGate {
            wait,
            state: Mutex::new(GateState::default()),
        }
    }

    /// What the shields have applied: the lowest sequence among those that hold purges back
    /// (every shield but one unreachable for `wait` or longer).
    pub fn floor(&self, now: Instant, shields: impl Iterator<Item = NodeView>) -> Floor {
        let mut any = false;
        let mut lowest: Option<u64> = None;
        for v in shields.filter(|v| v.tier == Tier::Shield) {
            any = true;
            let away = v
                .down_since
                .is_some_and(|since| now.saturating_duration_since(since) >= self.wait);
            if !away {
                let applied = v.applied_seq.unwrap_or(0);
                lowest = Some(lowest.map_or(applied, |l| l.min(applied)));
            }
        }
        match (any, lowest) {
            (_, Some(applied)) => Floor::Applied(applied),
            (false, None) => Floor::NoShield,
            (true, None) => Floor::AllAway,
        }
    }

    /// What may go on now, given the log's `head` and the shields' `floor`; with every run of
    /// sequences released since the last call, how and after how long.
    pub fn release(
        &self,
        now: Instant,
        head: u64,
        floor: Floor,
    ) -> (Release, Vec<(ReleasedBy, Duration)>) {
        let mut st = self.state.lock();
        let known = st.held.back().map_or(st.released, |(end, _)| *end);
        if head > known {
            st.held.push_back((head, now));
        }
        let (floor, by_floor) = match floor {
            Floor::Applied(applied) => (applied.min(head), ReleasedBy::Shields),
            Floor::NoShield => (head, ReleasedBy::Shields),
            Floor::AllAway => (head, ReleasedBy::Timeout),
        };
        let mut through = st.released.max(floor);
        let mut released = Vec::new();
        while let Some(&(end, since)) = st.held.front() {
            let waited = now.saturating_duration_since(since);
            let by = if end <= floor {
                by_floor
            } else if waited >= self.wait {
                ReleasedBy::Timeout
            } else {
                break;
            };
            released.push((by, waited));
            through = through.max(end);
            st.held.pop_front();
        }
        st.released = through;
        let timeout_at = st.held.front().map(|(_, since)| *since + self.wait);
        (
            Release {
                through,
                timeout_at,
            },
            released,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(30);

    fn shield(applied: Option<u64>, down_for: Option<Duration>, now: Instant) -> NodeView {
        NodeView {
            tier: Tier::Shield,
            applied_seq: applied,
            up: down_for.is_none(),
            down_since: down_for.map(|d| now - d),
            ..Default::default()
        }
    }

    #[test]
    fn a_purge_waits_for_every_shield() {
        let gate = ShieldGate::new(WAIT);
        let t0 = Instant::now();
        let floor = gate.floor(
            t0,
            [shield(Some(3), None, t0), shield(Some(5), None, t0)].into_iter(),
        );
        assert_eq!(floor, Floor::Applied(3));
        let (r, released) = gate.release(t0, 5, floor);
        assert_eq!(r.through, 3, "held at the slower shield");
        assert_eq!(r.timeout_at, Some(t0 + WAIT));
        assert!(released.is_empty());
        let t1 = t0 + Duration::from_millis(20);
        let (r, released) = gate.release(t1, 5, Floor::Applied(5));
        assert_eq!(r.through, 5);
        assert_eq!(r.timeout_at, None);
        assert_eq!(released, [(ReleasedBy::Shields, Duration::from_millis(20))]);
    }

    #[test]
    fn a_purge_goes_on_after_the_wait() {
        let gate = ShieldGate::new(WAIT);
        let t0 = Instant::now();
        gate.release(t0, 1, Floor::Applied(0));
        let (r, _) = gate.release(t0 + WAIT - Duration::from_millis(1), 1, Floor::Applied(0));
        assert_eq!(r.through, 0);
        let (r, released) = gate.release(t0 + WAIT, 1, Floor::Applied(0));
        assert_eq!(r.through, 1);
        assert_eq!(released, [(ReleasedBy::Timeout, WAIT)]);
        // A release is never taken back, whatever the shields say later.
        let (r, _) = gate.release(t0 + WAIT, 1, Floor::Applied(0));
        assert_eq!(r.through, 1);
        // The next purge is held again, from when it was first seen.
        let t2 = t0 + WAIT * 2;
        let (r, _) = gate.release(t2, 2, Floor::Applied(0));
        assert_eq!((r.through, r.timeout_at), (1, Some(t2 + WAIT)));
    }

    #[test]
    fn a_shield_unreachable_for_the_wait_holds_nothing_back() {
        let gate = ShieldGate::new(WAIT);
        let now = Instant::now();
        let long_down = shield(Some(1), Some(WAIT), now);
        let just_down = shield(Some(2), Some(Duration::from_secs(1)), now);
        assert_eq!(
            gate.floor(now, [long_down.clone(), just_down].into_iter()),
            Floor::Applied(2)
        );
        assert_eq!(gate.floor(now, [long_down].into_iter()), Floor::AllAway);
        let (r, released) = gate.release(now, 9, Floor::AllAway);
        assert_eq!(r.through, 9);
        assert_eq!(released, [(ReleasedBy::Timeout, Duration::ZERO)]);
    }

    #[test]
    fn edges_are_not_shields() {
        let gate = ShieldGate::new(WAIT);
        let now = Instant::now();
        let edge = NodeView {
            tier: Tier::Edge,
            applied_seq: Some(0),
            ..Default::default()
        };
        assert_eq!(gate.floor(now, [edge].into_iter()), Floor::NoShield);
    }
}
