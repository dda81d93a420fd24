//! The part of the configuration a reload replaces: sites, rules, origin pools, certificates,
//! compression and the admin tokens. Requests take one snapshot when they start and keep it to
//! the end, so a reload never changes the rules under a request in flight.
//!
//! Below it: the origin pools, the certificates and the router it is built from.

pub mod certs;
pub mod limiter;
pub mod origin;
pub mod router;

use std::collections::BTreeMap;
use std::sync::Arc;

use edge_config::edge::{Compression, EdgeConfig, Site};
use edge_config::token::{TokenError, Tokens};

use arc_swap::ArcSwap;

use certs::{CertError, Certs};
use origin::{OriginPool, PoolError};
use router::Router;

/// The configuration in force, shared by everything that reads it per request or per
/// handshake (the proxy, SNI, health checks, purge) and swapped whole by a reload.
pub type LiveHandle = Arc<ArcSwap<Live>>;

/// A handle on `live` as the configuration in force.
pub fn handle(live: Live) -> LiveHandle {
    Arc::new(ArcSwap::from_pointee(live))
}

/// Why a configuration could not be built into a [`Live`].
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// An origin pool could not be built.
    #[error("origin `{name}`: {source}")]
    Origin {
        /// Origin name.
        name: String,
        /// What went wrong.
        source: PoolError,
    },
    /// A site names an origin the file does not define (validation prevents it).
    #[error("site origin `{0}`: no such origin")]
    NoSuchOrigin(String),
    /// A certificate or key could not be loaded.
    #[error("{at}: TLS: {source}")]
    Tls {
        /// The listener or site.
        at: String,
        /// What went wrong.
        source: Box<CertError>,
    },
    /// The admin token file could not be read, or holds no token.
    #[error("admin.token_file: {0}")]
    Token(#[from] TokenError),
    /// The admin token file scopes a token to hosts, which the admin listener cannot honour.
    #[error("admin.token_file: {}: admin tokens cannot be scoped to hosts (scopes are for purge-api's tokens_file)", .0.display())]
    ScopedToken(std::path::PathBuf),
}

/// One generation of the reloadable configuration.
pub struct Live {
    /// 1 at start-up, one more at each successful reload.
    pub generation: u64,
    /// Host -> site.
    pub router: Router,
    /// The origin pool of each site, same indexes.
    pub site_pools: Vec<Arc<OriginPool>>,
    /// Pools by name (for health checks).
    pub pools: BTreeMap<String, Arc<OriginPool>>,
    /// TLS certificates.
    pub certs: Certs,
    /// The rate limiter of each rule that has one, by site and rule index. A reload starts
    /// them afresh.
    pub limiters: Vec<Vec<Option<Arc<limiter::Limiter>>>>,
    /// Bearer tokens of the admin purge endpoints.
    pub admin_tokens: Option<Tokens>,
    /// Whether any rule caches in slices (only then may requests spawn subrequests).
    pub slices: bool,
    /// The validated file this generation was built from.
    pub config: EdgeConfig,
}

impl Live {
    /// Sites, indexed as the router returns them.
    pub fn sites(&self) -> &[Site] {
        &self.config.sites
    }

    /// Response compression.
    pub fn compression(&self) -> Compression {
        self.config.compression
    }

    /// Builds a generation from `config`. Pools whose settings did not change are carried over
    /// from `previous` with their health state and connections; the rest are built anew (which
    /// resolves host names: call off the async runtime).
    pub fn build(config: &EdgeConfig, previous: Option<&Live>) -> Result<Live, LiveError> {
        let mut pools = BTreeMap::new();
        for (name, origin) in &config.origins {
            let reused = previous
                .and_then(|p| p.pools.get(name))
                .filter(|p| p.origin() == origin)
                .cloned();
            let pool = match reused {
                Some(p) => p,
                None => Arc::new(OriginPool::build(name, origin).map_err(|source| {
                    LiveError::Origin {
                        name: name.clone(),
                        source,
                    }
                })?),
            };
            pools.insert(name.clone(), pool);
        }
        let site_pools = config
            .sites
            .iter()
            .map(|s| {
                // Validation guarantees every site's origin exists.
                pools
                    .get(&s.origin)
                    .cloned()
                    .ok_or_else(|| LiveError::NoSuchOrigin(s.origin.clone()))
            })
            .collect::<Result<_, _>>()?;
        let tls_err = |at: String| {
            move |source| LiveError::Tls {
                at,
                source: Box::new(source),
            }
        };
        let mut certs = Certs::default();
        for l in &config.listen {
            certs.listeners.push(match &l.tls {
                Some(files) => {
                    Some(certs::load(files).map_err(tls_err(format!("listener {}", l.addr)))?)
                }
                None => None,
            });
        }
        for (i, s) in config.sites.iter().enumerate() {
            certs.sites.push(match &s.tls {
                Some(files) => Some(certs::load(files).map_err(tls_err(format!("sites[{i}]")))?),
                None => None,
            });
        }
        let admin_tokens = match &config.admin.token_file {
            Some(path) => {
                let tokens = Tokens::read(path).map_err(LiveError::Token)?;
                if tokens.any_scoped() {
                    // Scopes bind purge-api callers; here a scope would be silently ignored.
                    return Err(LiveError::ScopedToken(path.clone()));
                }
                Some(tokens)
            }
            None => None,
        };
        let limiters = config
            .sites
            .iter()
            .map(|s| {
                s.rules
                    .iter()
                    .map(|r| {
                        r.logic
                            .rate_limit
                            .map(|l| Arc::new(limiter::Limiter::new(l)))
                    })
                    .collect()
            })
            .collect();
        Ok(Live {
            limiters,
            generation: previous.map_or(1, |p| p.generation + 1),
            router: Router::new(&config.sites),
            site_pools,
            pools,
            certs,
            admin_tokens,
            slices: config
                .sites
                .iter()
                .any(|s| s.rules.iter().any(|r| r.slice.is_some())),
            config: config.clone(),
        })
    }

    /// Settings that differ from `self` in `new` but only take effect after a restart.
    pub fn restart_only_changes(&self, new: &EdgeConfig) -> Vec<&'static str> {
        let old = &self.config;
        let mut out = Vec::new();
        if old.node_id != new.node_id {
            out.push("node.id");
        }
        let addrs = |c: &EdgeConfig| {
            c.listen
                .iter()
                .map(|l| (l.addr, l.tls.is_some()))
                .collect::<Vec<_>>()
        };
        if addrs(old) != addrs(new) {
            out.push("listen");
        }
        if old.admin.addr != new.admin.addr {
            out.push("admin.addr");
        }
        // All of the cache's settings but the stale window, read per response.
        let tiers = |c: &EdgeConfig| (c.cache.memory, c.cache.disk.clone(), c.cache.lock_timeout);
        if tiers(old) != tiers(new) {
            out.push("cache");
        }
        if old.runtime != new.runtime {
            out.push("runtime");
        }
        if old.log != new.log {
            out.push("log");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> EdgeConfig {
        EdgeConfig::from_yaml(&format!(
            "node: {{ id: t }}\nlisten: [{{ addr: 127.0.0.1:1 }}]\nadmin: {{ addr: 127.0.0.1:2 }}\n\
             origins: {{ o: {{ servers: [\"127.0.0.1:3\"] }}, p: {{ servers: [\"127.0.0.1:4\"] }} }}\n\
             sites: [{{ hosts: ['*'], origin: o }}]\n{extra}"
        ))
        .unwrap()
    }

    #[test]
    fn a_generation_reuses_the_pools_that_did_not_change() {
        let first = Live::build(&config(""), None).unwrap();
        assert_eq!(first.generation, 1);
        let mut changed = config("");
        changed.origins.get_mut("p").unwrap().connect_timeout = std::time::Duration::from_secs(9);
        let second = Live::build(&changed, Some(&first)).unwrap();
        assert_eq!(second.generation, 2);
        assert!(Arc::ptr_eq(&first.pools["o"], &second.pools["o"]));
        assert!(!Arc::ptr_eq(&first.pools["p"], &second.pools["p"]));
        assert!(Arc::ptr_eq(&second.site_pools[0], &second.pools["o"]));
    }

    #[test]
    fn what_a_reload_cannot_change_is_named() {
        let live = Live::build(&config(""), None).unwrap();
        assert!(live.restart_only_changes(&config("")).is_empty());
        let moved = config("runtime: { threads: 3 }\nlog: { format: text }\n");
        assert_eq!(live.restart_only_changes(&moved), ["runtime", "log"]);
    }

    #[test]
    fn admin_tokens_must_load_and_may_not_be_scoped() {
        let dir = std::env::temp_dir().join(format!("edge-live-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("tokens");
        let with_tokens = |path: &std::path::Path| {
            let mut c = config("");
            c.admin.token_file = Some(path.to_owned());
            c
        };
        assert!(matches!(
            Live::build(&with_tokens(&dir.join("missing")), None),
            Err(LiveError::Token(_))
        ));
        std::fs::write(&file, "secret shop.example.com\n").unwrap();
        assert!(matches!(
            Live::build(&with_tokens(&file), None),
            Err(LiveError::ScopedToken(_))
        ));
        std::fs::write(&file, "secret\n").unwrap();
        let live = Live::build(&with_tokens(&file), None).unwrap();
        assert!(live
            .admin_tokens
            .is_some_and(|t| t.accepts(Some(b"Bearer secret"))));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
