//! The HTTP API: `POST /v1/purge`, `GET /v1/purge/{id}`, `GET /v1/nodes`, `/metrics`,
//! `/healthz`. Every error is JSON `{"error": "..."}`.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use edge_config::api::{self, CappedBody, TooLarge};
use edge_config::purge::Purge;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde::Serialize;
use serde_json::json;

use crate::compat;
use crate::service::SharedRef;
use crate::submit::{self, Caller};

/// Longest `?wait=` honoured.
const MAX_WAIT: Duration = Duration::from_secs(60);

/// A reply of the API and of the compatible entry points.
pub(crate) type Reply = Response<Full<Bytes>>;

/// The shared reply as hyper's response.
fn hyper_reply(r: api::Reply) -> Reply {
    r.map(|body| Full::new(Bytes::from(body)))
}

fn reply(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Reply {
    hyper_reply(api::reply(status, content_type, body))
}

pub(crate) fn json_reply(status: StatusCode, body: &impl Serialize) -> Reply {
    hyper_reply(api::json(status, body))
}

pub(crate) fn error(status: StatusCode, msg: impl std::fmt::Display) -> Reply {
    hyper_reply(api::error(status, msg))
}

/// A refusal decided before a reply is built.
pub(crate) struct Refusal(pub(crate) StatusCode, pub(crate) String);

impl Refusal {
    fn reply(self) -> Reply {
        error(self.0, self.1)
    }
}

/// Answers one request.
pub async fn handle(shared: SharedRef, req: Request<Incoming>, peer: SocketAddr) -> Reply {
    let resp = route(&shared, req, peer).await;
    shared
        .metrics
        .requests
        .with_label_values(&[resp.status().as_str()])
        .inc();
    resp
}

async fn route(shared: &SharedRef, req: Request<Incoming>, peer: SocketAddr) -> Reply {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    if method.as_str() == compat::varnish::METHOD {
        return compat::varnish::handle(shared, req, peer).await;
    }
    if compat::cloudflare::owns(&path) {
        return compat::cloudflare::handle(shared, req).await;
    }
    if compat::fastly::owns(&path) {
        return compat::fastly::handle(shared, req).await;
    }
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
            let Some(caller) = shared.tokens.which(auth).map(Caller::Token) else {
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
pub(crate) async fn read_body(req: Request<Incoming>, max: u64) -> Result<Bytes, Refusal> {
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

pub(crate) fn wait_of(query: Option<&str>) -> Result<Option<Duration>, Refusal> {
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

async fn post_purge(shared: &SharedRef, caller: Caller, req: Request<Incoming>) -> Reply {
    if let Err(r) = submit::admit(shared, caller) {
        return refused(r);
    }
    let wait = match wait_of(req.uri().query()) {
        Ok(w) => w,
        Err(r) => return r.reply(),
    };
    let soft = soft_asked(req.headers());
    let body = match read_body(req, shared.config.limits.max_body).await {
        Ok(b) => b,
        Err(r) => return r.reply(),
    };
    let mut purge: Purge = match Purge::from_json(&body) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    if purge.seq.is_some() || purge.log.is_some() || purge.head.is_some() {
        return error(
            StatusCode::BAD_REQUEST,
            "seq, log and head are set by the purge service, not by callers",
        );
    }
    purge.soft |= soft;
    let seq = match submit::log(shared, caller, &purge).await {
        Ok(seq) => seq,
        Err(r) => return refused(r),
    };
    let Some(wait) = wait else {
        return json_reply(
            StatusCode::ACCEPTED,
            &json!({ "id": shared.purge_id(seq), "seq": seq }),
        );
    };
    json_reply(StatusCode::ACCEPTED, &submit::wait(shared, seq, wait).await)
}

/// A refusal in this API's shape: `{"error": "..."}`, with `Retry-After` on a 429.
pub(crate) fn refused(r: submit::Refusal) -> Reply {
    let mut reply = error(r.status, &r.message);
    r.retry_after(reply.headers_mut());
    reply
}

/// Whether the request asks for a soft purge with `Fastly-Soft-Purge: 1`, as Fastly's API
/// (and so the tools written for it) does.
pub(crate) fn soft_asked(headers: &http::HeaderMap) -> bool {
    headers
        .get("fastly-soft-purge")
        .is_some_and(|v| v.as_bytes().trim_ascii() == b"1")
}

fn purge_status(shared: &SharedRef, id: &str) -> Reply {
    match shared.seq_of(id) {
        Some(seq) => json_reply(StatusCode::OK, &submit::status(shared, seq)),
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
