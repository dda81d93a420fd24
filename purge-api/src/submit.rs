//! What every purge entry point shares once it knows who calls and what they purge: the
//! caller's rate limit, the size limits and the token's host scope, the durable append, and
//! waiting for the nodes. `/v1/purge` and the Cloudflare, Fastly and Varnish entry points differ
//! only in how they read a request and shape their answer.

use std::collections::BTreeMap;
use std::time::Duration;

use edge_config::purge::{InvalidPurge, Purge, Targets};
use edge_config::token::Scope;
use http::StatusCode;
use serde::Serialize;

use crate::registry::Tier;
use crate::service::SharedRef;

/// Who sends a purge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// The holder of the token at this index of `tokens_file`.
    Token(usize),
    /// A client of a network in `compat.varnish_purge_from` (no token; every host).
    Network,
}

impl Caller {
    /// Its rate-limit bucket: one per token, and one shared by the network callers.
    pub fn slot(self, shared: &SharedRef) -> usize {
        match self {
            Caller::Token(i) => i,
            Caller::Network => shared.tokens.len(),
        }
    }

    fn scope(self, shared: &SharedRef) -> &Scope {
        match self {
            Caller::Token(i) => shared.tokens.scope(i),
            Caller::Network => &Scope::All,
        }
    }
}

/// Why a purge was refused, for each entry point to say in its own shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The HTTP status.
    pub status: StatusCode,
    /// What was wrong, for the caller.
    pub message: String,
    /// Seconds until the caller's rate limit has room again, for a 429.
    pub retry_after: Option<u64>,
}

impl Refusal {
    /// A refusal with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Refusal {
            status,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl Refusal {
    /// Adds `Retry-After` to a reply of this refusal when it is a rate limit's.
    pub fn retry_after(&self, headers: &mut http::HeaderMap) {
        if let Some(after) = self.retry_after {
            headers.insert(http::header::RETRY_AFTER, http::HeaderValue::from(after));
        }
    }
}

/// Takes one purge from the caller's rate limit.
pub fn admit(shared: &SharedRef, caller: Caller) -> Result<(), Refusal> {
    shared
        .limiter
        .take(caller.slot(shared))
        .map_err(|retry_after| Refusal {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: format!("rate limit for this caller reached; retry in {retry_after}s"),
            retry_after: Some(retry_after),
        })
}

/// Checks `purge` against the limits and the caller's scope, and appends it to the log;
/// returns its sequence once it is durable (from then on it is delivered whatever happens).
pub async fn log(shared: &SharedRef, caller: Caller, purge: &Purge) -> Result<u64, Refusal> {
    let targets = match purge.targets(shared.config.limits.max_items) {
        Ok(t) => t,
        Err(e @ InvalidPurge::TooMany { .. }) => {
            return Err(Refusal::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()))
        }
        Err(e) => return Err(Refusal::new(StatusCode::BAD_REQUEST, e.to_string())),
    };
    in_scope(caller.scope(shared), &targets)
        .map_err(|why| Refusal::new(StatusCode::FORBIDDEN, why))?;
    let seq = shared.store.append(purge).await.map_err(|e| {
        tracing::error!(error = %e, "purge not logged");
        Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("purge not logged: {e}"),
        )
    })?;
    // Compacting here keeps the log at `retain` entries without a timer; a failure only leaves
    // it longer for now.
    if let Err(e) = shared.store.retain(shared.config.delivery.retain).await {
        tracing::error!(error = %e, "purge log compaction failed");
    }
    shared.head.send_replace(seq);
    shared.metrics.head.set(seq as i64);
    tracing::info!(seq, ?caller, "purge logged");
    Ok(seq)
}

/// A token scoped to hosts purges only within them: no tags or purge-all, which reach every
/// host's objects, and every URL, prefix and host inside the scope.
fn in_scope(scope: &Scope, t: &Targets) -> Result<(), String> {
    if *scope == Scope::All {
        return Ok(());
    }
    if t.all || !t.tags.is_empty() {
        return Err("this token is scoped to hosts: tags and all reach every host; use urls, prefixes or hosts".into());
    }
    let hosts = t
        .urls
        .iter()
        .map(|u| &u.host)
        .chain(t.prefixes.iter().map(|p| &p.host))
        .chain(t.hosts.iter());
    for h in hosts {
        if !scope.allows_host(h) {
            return Err(format!("this token may not purge host `{h}`"));
        }
    }
    Ok(())
}

/// Waits until every node applied purge `seq`, or `wait` ran out; says which applied it.
pub async fn wait(shared: &SharedRef, seq: u64, wait: Duration) -> PurgeStatus {
    let mut progress = shared.progress.subscribe();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        progress.mark_unchanged();
        let status = status(shared, seq);
        if status.complete {
            return status;
        }
        tokio::select! {
            _ = progress.changed() => {}
            _ = tokio::time::sleep_until(deadline) => return self::status(shared, seq),
        }
    }
}

/// One node's progress on one purge.
#[derive(Serialize)]
pub struct NodeApplied {
    node: String,
    id: String,
    tier: Tier,
    applied: bool,
    applied_seq: Option<u64>,
    up: bool,
}

/// One tier's progress on one purge.
#[derive(Serialize)]
pub struct TierApplied {
    nodes: usize,
    applied: usize,
    /// Every node of the tier applied it.
    complete: bool,
    /// Not yet sent to this tier: the shields have not all applied it (edges only).
    held: bool,
}

/// Where a purge stands.
#[derive(Serialize)]
pub struct PurgeStatus {
    /// Its public id.
    pub id: String,
    /// Its sequence in the log.
    pub seq: u64,
    /// Every current node applied it.
    pub complete: bool,
    /// By tier, shields first; only the tiers that have nodes.
    tiers: BTreeMap<Tier, TierApplied>,
    nodes: Vec<NodeApplied>,
}

/// Where purge `seq` stands on every node.
pub fn status(shared: &SharedRef, seq: u64) -> PurgeStatus {
    let nodes: Vec<NodeApplied> = shared
        .registry
        .all()
        .iter()
        .map(|n| {
            let v = n.view();
            NodeApplied {
                applied: v.applied_seq.is_some_and(|a| a >= seq),
                node: v.url,
                id: v.node,
                tier: v.tier,
                applied_seq: v.applied_seq,
                up: v.up,
            }
        })
        .collect();
    let mut tiers = BTreeMap::new();
    for tier in Tier::ALL {
        let of_tier = || nodes.iter().filter(|n| n.tier == tier);
        let count = of_tier().count();
        if count == 0 {
            continue;
        }
        let applied = of_tier().filter(|n| n.applied).count();
        tiers.insert(
            tier,
            TierApplied {
                nodes: count,
                applied,
                complete: applied == count,
                held: shared.release(tier).through < seq,
            },
        );
    }
    PurgeStatus {
        id: shared.purge_id(seq),
        seq,
        complete: !nodes.is_empty() && nodes.iter().all(|n| n.applied),
        tiers,
        nodes,
    }
}
