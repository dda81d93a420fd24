//! Which ban scopes a purge's targets become. A URL becomes the keys the proxy stores it under
//! (both schemes), as the rule in force for it keys requests; the rest map one to one.

use edge_config::edge::CacheKeySpec;
use edge_config::purge::{Targets, UrlTarget};
use pingora::cache::key::CacheHashKey;
use pingora::http::RequestHeader;

use super::bans::Scope;
use crate::cache::key::cache_key;
use crate::live::router::select_rule;
use crate::live::Live;

/// The scopes of `t` under the configuration `live` (`default_key` for URLs no rule matches).
pub(super) fn scopes(t: &Targets, live: &Live, default_key: &CacheKeySpec) -> Vec<Scope> {
    let mut scopes = Vec::new();
    if t.all {
        scopes.push(Scope::All);
    }
    scopes.extend(t.hosts.iter().cloned().map(Scope::Host));
    for p in &t.prefixes {
        scopes.push(if p.path == "/" {
            Scope::Host(p.host.clone())
        } else {
            Scope::Prefix {
                host: p.host.clone(),
                path: p.path.clone(),
            }
        });
    }
    scopes.extend(t.tags.iter().cloned().map(Scope::Tag));
    for u in &t.urls {
        scopes.extend(url_scopes(u, live, default_key));
    }
    scopes
}

/// The keys a URL is stored under, as the proxy builds them for a GET of it, in both schemes.
/// A rule that keys request headers has keys the URL alone cannot give: its path is banned
/// instead, whatever the query and headers.
fn url_scopes(u: &UrlTarget, live: &Live, default_key: &CacheKeySpec) -> Vec<Scope> {
    let rule = live
        .router
        .route(&u.host)
        .and_then(|site| select_rule(&live.sites()[site].rules, "GET", &u.path))
        .map(|(_, r)| r);
    let spec = rule.map_or(default_key, |r| &r.cache_key);
    let by_path = || {
        vec![Scope::Path {
            host: u.host.clone(),
            path: u.path.clone(),
        }]
    };
    if !spec.headers.is_empty() {
        return by_path();
    }
    let target = match &u.query {
        Some(q) => format!("{}?{q}", u.path),
        None => u.path.clone(),
    };
    let Ok(req) = RequestHeader::build("GET", target.as_bytes(), None) else {
        return by_path();
    };
    ["http", "https"]
        .into_iter()
        .map(|scheme| Scope::Key(cache_key(scheme, &u.host, &req, spec).primary_bin()))
        .collect()
}
