//! The HTTP API: `POST /v1/purge`, `GET /v1/purge/{id}`, `GET /v1/nodes`, `/metrics`,
//! `/healthz`. Every error is JSON `{"error": "..."}`.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use edge_config::api::{self, CappedBody, TooLarge};
use edge_config::purge::{InvalidPurge, Purge, Targets};
use edge_config::token::Scope;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde::Serialize;
use serde_json::json;

use crate::registry::Tier;
use crate::service::SharedRef;

/// Longest `?wait=` honoured.
const MAX_WAIT: Duration = Duration::from_secs(60);

type Reply = Response<Full<Bytes>>;

/// The shared reply as hyper's response.
fn hyper_reply(r: api::Reply) -> Reply {
    r.map(|body| Full::new(Bytes::from(body)))
}

fn reply(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Reply {
    hyper_reply(api::reply(status, content_type, body))
}

fn json_reply(status: StatusCode, body: &impl Serialize) -> Reply {
    hyper_reply(api::json(status, body))
}

fn error(status: StatusCode, msg: impl std::fmt::Display) -> Reply {
    hyper_reply(api::error(status, msg))
}

/// A refusal decided before a reply is built.
struct Refusal(StatusCode, String);

impl Refusal {
    fn reply(self) -> Reply {
        error(self.0, self.1)
    }
}

/// Answers one request.
pub async fn handle(shared: SharedRef, req: Request<Incoming>) -> Reply {
    let resp = route(&shared, req).await;
    shared
        .metrics
        .requests
        .with_label_values(&[resp.status().as_str()])
        .inc();
    resp
}

async fn route(shared: &SharedRef, req: Request<Incoming>) -> Reply {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let get = method == Method::GET || method == Method::HEAD;
    match path.as_str() {
        "/healthz" if get => json_reply(
            StatusCode::OK,
            &json!({ "status": "ok", "head": shared.store.head() }),
        ),
        "/metrics" if get => {
            shared.metrics.head.set(shared.store.head() as i64);
            shared
                .metrics
                .compacted
                .set(shared.store.compacted_through() as i64);
            reply(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                crate::metrics::Metrics::render(),
            )
        }
        "/healthz" | "/metrics" => error(StatusCode::METHOD_NOT_ALLOWED, "use GET"),
        p if p.starts_with("/v1/") => {
            let auth = req
                .headers()
                .get(header::AUTHORIZATION)
                .map(|v| v.as_bytes());
            let Some(caller) = shared.tokens.which(auth) else {
                return hyper_reply(api::unauthorized("token"));
            };
            match (method, p) {
                (Method::POST, "/v1/purge") => post_purge(shared, caller, req).await,
                (_, "/v1/purge") => error(StatusCode::METHOD_NOT_ALLOWED, "use POST"),
                (m, "/v1/nodes") if m == Method::GET => nodes(shared),
                (m, id) if m == Method::GET && id.starts_with("/v1/purge/") => {
                    // Another replica may have logged it since this one last read the head.
                    if let Err(e) = shared.store.refresh().await {
                        tracing::debug!(error = %e, "purge log head not refreshed");
                    }
                    purge_status(shared, &id["/v1/purge/".len()..])
                }
                _ => error(StatusCode::NOT_FOUND, "no such endpoint"),
            }
        }
        _ => error(StatusCode::NOT_FOUND, "no such endpoint"),
    }
}

/// Reads a body up to `max` bytes.
async fn read_body(req: Request<Incoming>, max: u64) -> Result<Bytes, Refusal> {
    let too_large = |e: TooLarge| Refusal(StatusCode::PAYLOAD_TOO_LARGE, e.to_string());
    let mut out = CappedBody::new(max);
    out.check_declared(req.headers()).map_err(too_large)?;
    let mut body = req.into_body();
    let read = async {
        while let Some(frame) = body.frame().await {
            let frame = frame
                .map_err(|e| Refusal(StatusCode::BAD_REQUEST, format!("reading body: {e}")))?;
            if let Ok(data) = frame.into_data() {
                out.push(&data).map_err(too_large)?;
            }
        }
        Ok(Bytes::from(out.into_bytes()))
    };
    // A body trickled in a byte at a time would hold a connection slot indefinitely.
    tokio::time::timeout(crate::server::CLIENT_TIMEOUT, read)
        .await
        .unwrap_or_else(|_| {
            Err(Refusal(
                StatusCode::REQUEST_TIMEOUT,
                "request body not received in time".into(),
            ))
        })
}

fn wait_of(query: Option<&str>) -> Result<Option<Duration>, Refusal> {
    let Some(q) = query else { return Ok(None) };
    for pair in q.split('&') {
        if let Some(v) = pair.strip_prefix("wait=") {
            return edge_config::units::parse_duration(v)
                .map(|d| Some(d.min(MAX_WAIT)))
                .map_err(|e| Refusal(StatusCode::BAD_REQUEST, format!("wait: {e}")));
        }
    }
    Ok(None)
}

async fn post_purge(shared: &SharedRef, caller: usize, req: Request<Incoming>) -> Reply {
    if let Err(retry_after) = shared.limiter.take(caller) {
        let mut r = error(
            StatusCode::TOO_MANY_REQUESTS,
            format!("rate limit for this token reached; retry in {retry_after}s"),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, http::HeaderValue::from(retry_after));
        return r;
    }
    let wait = match wait_of(req.uri().query()) {
        Ok(w) => w,
        Err(r) => return r.reply(),
    };
    let limits = &shared.config.limits;
    let body = match read_body(req, limits.max_body).await {
        Ok(b) => b,
        Err(r) => return r.reply(),
    };
    let purge: Purge = match Purge::from_json(&body) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    if purge.seq.is_some() || purge.log.is_some() || purge.head.is_some() {
        return error(
            StatusCode::BAD_REQUEST,
            "seq, log and head are set by the purge service, not by callers",
        );
    }
    let targets = match purge.targets(limits.max_items) {
        Ok(t) => t,
        Err(e @ InvalidPurge::TooMany { .. }) => return error(StatusCode::PAYLOAD_TOO_LARGE, e),
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    if let Err(why) = in_scope(shared.tokens.scope(caller), &targets) {
        return error(StatusCode::FORBIDDEN, why);
    }
    let seq = match shared.store.append(&purge).await {
        Ok(seq) => seq,
        Err(e) => {
            tracing::error!(error = %e, "purge not logged");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("purge not logged: {e}"),
            );
        }
    };
    // Compacting here keeps the log at `retain` entries without a timer; a failure only leaves
    // it longer for now.
    if let Err(e) = shared.store.retain(shared.config.delivery.retain).await {
        tracing::error!(error = %e, "purge log compaction failed");
    }
    // Durable: from here on the purge is delivered whatever happens to this process.
    shared.head.send_replace(seq);
    shared.metrics.head.set(seq as i64);
    tracing::info!(seq, caller, "purge logged");
    let id = shared.purge_id(seq);
    let Some(wait) = wait else {
        return json_reply(StatusCode::ACCEPTED, &json!({ "id": id, "seq": seq }));
    };
    let mut progress = shared.progress.subscribe();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        progress.mark_unchanged();
        let status = status_body(shared, seq);
        if status.complete {
            return json_reply(StatusCode::ACCEPTED, &status);
        }
        tokio::select! {
            _ = progress.changed() => {}
            _ = tokio::time::sleep_until(deadline) => {
                return json_reply(StatusCode::ACCEPTED, &status_body(shared, seq));
            }
        }
    }
}

#[derive(Serialize)]
struct NodeApplied {
    node: String,
    id: String,
    tier: Tier,
    applied: bool,
    applied_seq: Option<u64>,
    up: bool,
}

/// One tier's progress on one purge.
#[derive(Serialize)]
struct TierApplied {
    nodes: usize,
    applied: usize,
    /// Every node of the tier applied it.
    complete: bool,
    /// Not yet sent to this tier: the shields have not all applied it (edges only).
    held: bool,
}

#[derive(Serialize)]
struct PurgeStatus {
    id: String,
    seq: u64,
    /// Every current node applied it.
    complete: bool,
    /// By tier, shields first; only the tiers that have nodes.
    tiers: BTreeMap<Tier, TierApplied>,
    nodes: Vec<NodeApplied>,
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

fn status_body(shared: &SharedRef, seq: u64) -> PurgeStatus {
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

fn purge_status(shared: &SharedRef, id: &str) -> Reply {
    match shared.seq_of(id) {
        Some(seq) => json_reply(StatusCode::OK, &status_body(shared, seq)),
        None => error(StatusCode::NOT_FOUND, format!("no purge with id {id:?}")),
    }
}

fn nodes(shared: &SharedRef) -> Reply {
    let head = shared.store.head();
    let nodes: Vec<serde_json::Value> = shared
        .registry
        .all()
        .iter()
        .map(|n| {
            let v = n.view();
            json!({
                "url": v.url,
                "tier": v.tier,
                "node": v.node,
                "applied_seq": v.applied_seq,
                "lag": v.applied_seq.map(|a| head.saturating_sub(a)),
                "ready": v.ready,
                "up": v.up,
                "last_error": v.last_error,
                "delivered_by": v.holder,
            })
        })
        .collect();
    json_reply(
        StatusCode::OK,
        &json!({
            "head": head,
            "compacted_through": shared.store.compacted_through(),
            "replica": shared.replicas.as_ref().map(|r| r.id.as_str()),
            "nodes": nodes,
        }),
    )
}
