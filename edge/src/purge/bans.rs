//! Ban rules: "every object of this scope stored before this time is gone (or stale)".
//!
//! A purge by host, prefix, tag or everything, and the URL purges, become bans at once, so a
//! purge of a million objects costs a few map entries. Every lookup is judged against them, and
//! the background sweep applies them to the stored objects and then retires them. Per scope only
//! the newest hard and the newest soft ban matter: a newer ban covers everything an older one of
//! the same kind does.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::cache::Hash;

/// What a ban covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Everything.
    All,
    /// One host.
    Host(String),
    /// Paths under a prefix on one host.
    Prefix {
        /// Normalised host.
        host: String,
        /// Path prefix.
        path: String,
    },
    /// Objects carrying a tag.
    Tag(String),
    /// One URL, all its variants: the primary hash of its cache key.
    Key(Hash),
    /// One path on one host with any query and request headers: a URL whose rule puts request
    /// headers in the key, so its keys cannot all be computed from the URL.
    Path {
        /// Normalised host.
        host: String,
        /// Exact path.
        path: String,
    },
}

/// One ban rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ban {
    /// Ascending id: retirement goes by it.
    pub id: u64,
    /// What it covers.
    pub scope: Scope,
    /// Objects stored at or before this time (µs since the epoch, this node's clock) are covered.
    pub at: u64,
    /// Stale rather than gone.
    pub soft: bool,
}

/// What a lookup or a sweep is to do with an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No ban covers it.
    Keep,
    /// A soft ban covers it: stale since that ban's time.
    Stale(u64),
    /// A hard ban covers it.
    Gone,
}

/// What is known of a stored object.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// Primary hash of its key.
    pub primary: &'a Hash,
    /// Normalised host.
    pub host: &'a str,
    /// Path.
    pub path: &'a str,
    /// Its tags, space-separated.
    pub tags: &'a str,
    /// When this node stored it (µs).
    pub stored_at: u64,
}

/// Newest hard and soft ban of one scope: (time, id).
#[derive(Debug, Clone, Copy, Default)]
struct Mark {
    hard: Option<(u64, u64)>,
    soft: Option<(u64, u64)>,
}

impl Mark {
    fn add(&mut self, ban: &Ban) {
        let slot = if ban.soft {
            &mut self.soft
        } else {
            &mut self.hard
        };
        // The later time covers the earlier; the larger id keeps the mark until the sweep that
        // applies the newer ban retires it (even if a clock step made it the earlier one).
        *slot = Some(match *slot {
            Some((at, id)) => (at.max(ban.at), id.max(ban.id)),
            None => (ban.at, ban.id),
        });
    }

    /// Drops bans up to `upto`; true when nothing is left.
    fn retire(&mut self, upto: u64) -> bool {
        for slot in [&mut self.hard, &mut self.soft] {
            if slot.is_some_and(|(_, id)| id <= upto) {
                *slot = None;
            }
        }
        self.hard.is_none() && self.soft.is_none()
    }

    fn judge(&self, stored_at: u64, v: &mut Verdict) {
        if self.hard.is_some_and(|(at, _)| stored_at <= at) {
            *v = Verdict::Gone;
            return;
        }
        if let Some((at, _)) = self.soft {
            if stored_at <= at {
                // Stale since the earliest soft ban that covers it.
                *v = match *v {
                    Verdict::Stale(prev) => Verdict::Stale(prev.min(at)),
                    Verdict::Keep => Verdict::Stale(at),
                    Verdict::Gone => Verdict::Gone,
                };
            }
        }
    }
}

#[derive(Debug, Default)]
struct Index {
    all: Mark,
    hosts: HashMap<String, Mark>,
    prefixes: HashMap<String, Vec<(String, Mark)>>,
    tags: HashMap<String, Mark>,
    keys: HashMap<Hash, Mark>,
    paths: HashMap<String, HashMap<String, Mark>>,
}

impl Index {
    fn add(&mut self, ban: &Ban) {
        match &ban.scope {
            Scope::All => self.all.add(ban),
            Scope::Host(h) => self.hosts.entry(h.clone()).or_default().add(ban),
            Scope::Prefix { host, path } => {
                let list = self.prefixes.entry(host.clone()).or_default();
                match list.iter_mut().find(|(p, _)| p == path) {
                    Some((_, m)) => m.add(ban),
                    None => {
                        let mut m = Mark::default();
                        m.add(ban);
                        list.push((path.clone(), m));
                    }
                }
            }
            Scope::Tag(t) => self.tags.entry(t.clone()).or_default().add(ban),
            Scope::Key(k) => self.keys.entry(*k).or_default().add(ban),
            Scope::Path { host, path } => self
                .paths
                .entry(host.clone())
                .or_default()
                .entry(path.clone())
                .or_default()
                .add(ban),
        }
    }

    fn retire(&mut self, upto: u64) {
        self.all.retire(upto);
        self.hosts.retain(|_, m| !m.retire(upto));
        self.prefixes.retain(|_, list| {
            list.retain_mut(|(_, m)| !m.retire(upto));
            !list.is_empty()
        });
        self.tags.retain(|_, m| !m.retire(upto));
        self.keys.retain(|_, m| !m.retire(upto));
        self.paths.retain(|_, paths| {
            paths.retain(|_, m| !m.retire(upto));
            !paths.is_empty()
        });
    }

    fn judge(&self, s: &Subject<'_>) -> Verdict {
        let mut v = Verdict::Keep;
        let t = s.stored_at;
        self.all.judge(t, &mut v);
        if let Some(m) = self.hosts.get(s.host) {
            m.judge(t, &mut v);
        }
        if let Some(list) = self.prefixes.get(s.host) {
            for (p, m) in list {
                if s.path.starts_with(p.as_str()) {
                    m.judge(t, &mut v);
                }
            }
        }
        if !self.tags.is_empty() {
            for tag in s.tags.split_ascii_whitespace() {
                if let Some(m) = self.tags.get(tag) {
                    m.judge(t, &mut v);
                }
            }
        }
        if let Some(m) = self.keys.get(s.primary) {
            m.judge(t, &mut v);
        }
        if let Some(m) = self.paths.get(s.host).and_then(|p| p.get(s.path)) {
            m.judge(t, &mut v);
        }
        v
    }
}

/// The node's ban rules.
#[derive(Debug, Default)]
pub struct Bans {
    index: RwLock<Index>,
    /// Bans added and not retired; lookups skip the lock while it is zero.
    active: AtomicUsize,
    /// Ids and times of the bans in force, in order, so retirement knows how many it removes
    /// and the latest time it retires.
    ids: parking_lot::Mutex<Vec<(u64, u64)>>,
    /// The latest time of a retired ban (µs; 0 before any retirement). A body whose fetch
    /// began before it may be one that ban covered, which nothing can judge any more.
    retired_at: AtomicU64,
}

impl Bans {
    /// Rules loaded from the catalog at start-up.
    pub fn new(existing: &[Ban]) -> Self {
        let bans = Bans::default();
        bans.add(existing);
        bans
    }

    /// Whether no ban is in force.
    pub fn is_empty(&self) -> bool {
        self.active.load(Ordering::Acquire) == 0
    }

    /// Bans in force.
    pub fn len(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    /// The newest ban's id (0 when none).
    pub fn newest(&self) -> u64 {
        self.ids.lock().last().map_or(0, |&(id, _)| id)
    }

    /// Puts rules in force. Ids must ascend across calls.
    pub fn add(&self, bans: &[Ban]) {
        if bans.is_empty() {
            return;
        }
        let mut ids = self.ids.lock();
        let mut index = self.index.write();
        for b in bans {
            index.add(b);
            ids.push((b.id, b.at));
        }
        self.active.store(ids.len(), Ordering::Release);
    }

    /// Drops every rule up to `upto`: the sweep has applied them to every stored object.
    pub fn retire(&self, upto: u64) {
        let mut ids = self.ids.lock();
        let mut index = self.index.write();
        index.retire(upto);
        let latest = ids
            .iter()
            .filter(|&&(id, _)| id <= upto)
            .map(|&(_, at)| at)
            .max();
        if let Some(at) = latest {
            self.retired_at.fetch_max(at, Ordering::AcqRel);
        }
        ids.retain(|&(id, _)| id > upto);
        self.active.store(ids.len(), Ordering::Release);
    }

    /// Whether a body whose fetch began at `stored_at` (µs) began before a ban that is retired
    /// now. The sweep applied that ban to what the tiers held, not to fills still in flight,
    /// so such a body must not enter a tier or be served from its fill: judged against the
    /// bans in force, it would look untouched by a purge already acknowledged.
    pub fn began_before_a_retired_ban(&self, stored_at: u64) -> bool {
        stored_at < self.retired_at.load(Ordering::Acquire)
    }

    /// What the rules say about an object.
    pub fn judge(&self, s: &Subject<'_>) -> Verdict {
        if self.is_empty() {
            return Verdict::Keep;
        }
        self.index.read().judge(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban(id: u64, scope: Scope, at: u64, soft: bool) -> Ban {
        Ban {
            id,
            scope,
            at,
            soft,
        }
    }

    fn subject<'a>(primary: &'a Hash, path: &'a str, tags: &'a str, at: u64) -> Subject<'a> {
        Subject {
            primary,
            host: "a.com",
            path,
            tags,
            stored_at: at,
        }
    }

    #[test]
    fn each_scope_covers_what_it_names_and_only_before_its_time() {
        let k = [7; 16];
        let other = [8; 16];
        let cases = [
            (Scope::All, "/x", "", &other),
            (Scope::Host("a.com".into()), "/x", "", &other),
            (
                Scope::Prefix {
                    host: "a.com".into(),
                    path: "/assets/".into(),
                },
                "/assets/a.css",
                "",
                &other,
            ),
            (Scope::Tag("t1".into()), "/x", "t0 t1", &other),
            (Scope::Key(k), "/x", "", &k),
            (
                Scope::Path {
                    host: "a.com".into(),
                    path: "/x".into(),
                },
                "/x",
                "",
                &other,
            ),
        ];
        for (scope, path, tags, primary) in cases {
            let bans = Bans::new(&[ban(1, scope.clone(), 100, false)]);
            assert_eq!(
                bans.judge(&subject(primary, path, tags, 100)),
                Verdict::Gone,
                "{scope:?}"
            );
            assert_eq!(
                bans.judge(&subject(primary, path, tags, 101)),
                Verdict::Keep,
                "{scope:?}"
            );
        }
        let bans = Bans::new(&[
            ban(1, Scope::Host("b.com".into()), 100, false),
            ban(
                2,
                Scope::Prefix {
                    host: "a.com".into(),
                    path: "/assets/".into(),
                },
                100,
                false,
            ),
            ban(3, Scope::Tag("t1".into()), 100, false),
            ban(4, Scope::Key(k), 100, false),
        ]);
        assert_eq!(
            bans.judge(&subject(&other, "/asset", "t10 xt1", 50)),
            Verdict::Keep
        );
    }

    #[test]
    fn hard_beats_soft_and_soft_is_stale_from_its_earliest_time() {
        let bans = Bans::new(&[
            ban(1, Scope::Tag("a".into()), 200, true),
            ban(2, Scope::Tag("b".into()), 150, true),
        ]);
        let p = [0; 16];
        assert_eq!(
            bans.judge(&subject(&p, "/", "a b", 100)),
            Verdict::Stale(150)
        );
        assert_eq!(
            bans.judge(&subject(&p, "/", "a b", 160)),
            Verdict::Stale(200)
        );
        bans.add(&[ban(3, Scope::Host("a.com".into()), 120, false)]);
        assert_eq!(bans.judge(&subject(&p, "/", "a b", 100)), Verdict::Gone);
        assert_eq!(
            bans.judge(&subject(&p, "/", "a b", 130)),
            Verdict::Stale(150)
        );
    }

    #[test]
    fn retiring_keeps_newer_bans_of_the_same_scope() {
        let bans = Bans::new(&[ban(1, Scope::Tag("a".into()), 100, false)]);
        bans.add(&[ban(2, Scope::Tag("a".into()), 300, false)]);
        bans.add(&[ban(3, Scope::All, 50, true)]);
        assert_eq!(bans.len(), 3);
        bans.retire(1);
        assert_eq!(bans.len(), 2);
        let p = [0; 16];
        assert_eq!(bans.judge(&subject(&p, "/", "a", 250)), Verdict::Gone);
        bans.retire(3);
        assert!(bans.is_empty());
        assert_eq!(bans.judge(&subject(&p, "/", "a", 0)), Verdict::Keep);
    }

    #[test]
    fn a_fetch_that_began_before_a_retired_ban_is_known_as_such() {
        let bans = Bans::new(&[]);
        assert!(!bans.began_before_a_retired_ban(0));
        bans.add(&[ban(1, Scope::Tag("a".into()), 100, false)]);
        bans.add(&[ban(2, Scope::Host("h".into()), 300, false)]);
        // In force, a ban judges what it covers; nothing is retired yet.
        assert!(!bans.began_before_a_retired_ban(50));
        bans.retire(1);
        assert!(bans.began_before_a_retired_ban(99));
        assert!(!bans.began_before_a_retired_ban(100));
        assert!(
            !bans.began_before_a_retired_ban(200),
            "ban 2 is still in force"
        );
        bans.retire(2);
        assert!(bans.began_before_a_retired_ban(299));
        assert!(!bans.began_before_a_retired_ban(300));
        // Retiring again, or nothing, moves nothing back.
        bans.retire(2);
        assert!(bans.began_before_a_retired_ban(299));
    }
}
