//! The admin listener, on an address apart from the public listeners: `/healthz`, `/readyz`
//! (503 until the node has caught up with the purge log), `/metrics`, and the purge endpoints
//! `POST /purge` and `GET /purge/state` behind a bearer token.

use std::sync::Arc;

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use edge_config::api::{self, CappedBody, Reply};
use edge_config::purge::{NodeState, Purge};

use crate::cache::tiered::TieredStorage;
use crate::cache::Tier;
use crate::drain::Drain;
use crate::live::LiveHandle;
use crate::metrics::{Metrics, PurgeResult};
use crate::purge::{PurgeError, Purger};

/// Largest purge body accepted (purge-api sends at most a few hundred KiB).
const MAX_BODY: u64 = 8 << 20;

/// The admin HTTP application.
pub struct AdminApp {
    /// Metric families, refreshed from the tiers on scrape.
    pub metrics: Arc<Metrics>,
    /// Storage, for tier gauges.
    pub storage: &'static TieredStorage,
    /// Node id, reported by `/healthz`.
    pub node_id: String,
    /// Purge state and operations.
    pub purger: Arc<Purger>,
    /// The configuration in force, for its admin tokens (`None` turns the purge endpoints off).
    pub live: LiveHandle,
    /// The node's stop: a stopping node is not ready.
    pub drain: &'static Drain,
    /// Client connections: a node that cannot take more is not ready.
    pub capacity: Arc<dyn Capacity>,
}

/// Why a node cannot take more clients, if it cannot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Saturation {
    /// `max_connections` are open.
    pub at_connection_limit: bool,
    /// Nearly every descriptor the process may open is open.
    pub short_of_descriptors: bool,
}

impl Saturation {
    /// Either.
    pub fn any(self) -> bool {
        self.at_connection_limit || self.short_of_descriptors
    }
}

/// What `/readyz` asks of the node's client connections, and `/metrics` has refresh.
pub trait Capacity: Send + Sync {
    /// Whether the node can take more clients; brings the connection gauges up to date.
    fn saturation(&self) -> Saturation;
}

impl AdminApp {
    /// `None` when the caller may use the purge endpoints, else the refusal.
    fn refuse(&self, session: &ServerSession) -> Option<Response<Vec<u8>>> {
        let live = self.live.load();
        let Some(tokens) = &live.admin_tokens else {
            return Some(api::error(
                StatusCode::FORBIDDEN,
                "purging is off on this node: set admin.token_file",
            ));
        };
        let auth = session
            .req_header()
            .headers
            .get(http::header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        if tokens.accepts(auth) {
            return None;
        }
        self.count(PurgeResult::Unauthorized);
        Some(api::unauthorized("admin token"))
    }

    fn count(&self, result: PurgeResult) {
        self.metrics
            .purge_requests
            .with_label_values(&[result.label()])
            .inc();
    }

    async fn purge(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let mut body = CappedBody::new(MAX_BODY);
        loop {
            match session.read_request_body().await {
                Ok(Some(chunk)) => {
                    if let Err(too_large) = body.push(&chunk) {
                        self.count(PurgeResult::Invalid);
                        return too_large.reply();
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    self.count(PurgeResult::Invalid);
                    return api::error(StatusCode::BAD_REQUEST, format!("reading body: {e}"));
                }
            }
        }
        let purge: Purge = match Purge::from_json(&body.into_bytes()) {
            Ok(p) => p,
            Err(e) => {
                self.count(PurgeResult::Invalid);
                return api::error(StatusCode::BAD_REQUEST, e);
            }
        };
        match self.purger.apply(purge).await {
            Ok(state) => api::json(StatusCode::OK, &state),
            Err(e @ PurgeError::Invalid(_)) => {
                self.count(PurgeResult::Invalid);
                api::error(StatusCode::BAD_REQUEST, &e)
            }
            Err(e @ PurgeError::Gap { applied, .. }) => {
                self.count(PurgeResult::Gap);
                let body = serde_json::json!({ "error": e.to_string(), "applied_seq": applied });
                api::json(StatusCode::CONFLICT, &body)
            }
            Err(e @ (PurgeError::Store(_) | PurgeError::Encode(_))) => {
                self.count(PurgeResult::Error);
                tracing::error!(error = %e, "purge not recorded");
                api::error(StatusCode::SERVICE_UNAVAILABLE, &e)
            }
        }
    }
}

/// An admin endpoint, or why a request names none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Healthz,
    Readyz,
    Metrics,
    PurgeState,
    Purge,
    /// A known path with the wrong method: the one to use.
    UseMethod(&'static str),
    NotFound,
}

impl Route {
    /// The endpoint `method path` asks for.
    fn of(method: &http::Method, path: &str) -> Route {
        let get = method == http::Method::GET || method == http::Method::HEAD;
        match path {
            "/healthz" | "/readyz" | "/metrics" | "/purge/state" if !get => Route::UseMethod("GET"),
            "/purge" if method != http::Method::POST => Route::UseMethod("POST"),
            "/healthz" => Route::Healthz,
            "/readyz" => Route::Readyz,
            "/metrics" => Route::Metrics,
            "/purge/state" => Route::PurgeState,
            "/purge" => Route::Purge,
            _ => Route::NotFound,
        }
    }
}

/// `/readyz`'s answer: ready only when caught up with the purge log, not stopping and able to
/// take more clients.
fn readiness(state: NodeState, stopping: bool, draining: bool, saturation: Saturation) -> Reply {
    // A stopping node is not ready, however far it has caught up; nor is one that would refuse
    // the clients a load balancer sends it.
    let ready = state.ready && !stopping && !saturation.any();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut body = serde_json::json!(state);
    body["ready"] = ready.into();
    body["stopping"] = stopping.into();
    body["draining"] = draining.into();
    body["at_connection_limit"] = saturation.at_connection_limit.into();
    body["short_of_descriptors"] = saturation.short_of_descriptors.into();
    api::json(status, &body)
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        match Route::of(&req.method, req.uri.path()) {
            Route::UseMethod(m) => api::error(StatusCode::METHOD_NOT_ALLOWED, format!("use {m}")),
            Route::NotFound => api::error(StatusCode::NOT_FOUND, "no such admin endpoint"),
            Route::Healthz => {
                let body = serde_json::json!({ "status": "ok", "node": self.node_id });
                api::json(StatusCode::OK, &body)
            }
            Route::Readyz => readiness(
                self.purger.node_state(),
                self.drain.is_stopping(),
                self.drain.is_draining(),
                self.capacity.saturation(),
            ),
            Route::Metrics => {
                self.capacity.saturation();
                self.metrics
                    .observe_tier(Tier::Memory, self.storage.memory().stats());
                if let Some(disk) = self.storage.disk() {
                    self.metrics.observe_tier(Tier::Disk, disk.stats());
                }
                api::reply(
                    StatusCode::OK,
                    "text/plain; version=0.0.4",
                    Metrics::render(),
                )
            }
            Route::PurgeState => match self.refuse(session) {
                Some(refusal) => refusal,
                None => api::json(StatusCode::OK, &self.purger.node_state()),
            },
            Route::Purge => match self.refuse(session) {
                Some(refusal) => refusal,
                None => self.purge(session).await,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_path_and_method_finds_its_endpoint() {
        use http::Method;
        let cases = [
            (Method::GET, "/healthz", Route::Healthz),
            (Method::HEAD, "/readyz", Route::Readyz),
            (Method::GET, "/metrics", Route::Metrics),
            (Method::GET, "/purge/state", Route::PurgeState),
            (Method::POST, "/purge", Route::Purge),
            (Method::POST, "/metrics", Route::UseMethod("GET")),
            (Method::DELETE, "/purge/state", Route::UseMethod("GET")),
            (Method::GET, "/purge", Route::UseMethod("POST")),
            (Method::GET, "/purge/", Route::NotFound),
            (Method::GET, "/", Route::NotFound),
        ];
        for (m, p, want) in cases {
            assert_eq!(Route::of(&m, p), want, "{m} {p}");
        }
    }

    #[test]
    fn a_node_is_ready_only_caught_up_running_and_with_room() {
        let state = |ready| NodeState {
            applied_seq: 3,
            log: Some("L".into()),
            node: "edge-1".into(),
            ready,
        };
        let room = Saturation {
            at_connection_limit: false,
            short_of_descriptors: false,
        };
        let full = Saturation {
            at_connection_limit: true,
            ..room
        };
        let r = readiness(state(true), false, false, room);
        assert_eq!(r.status(), 200);
        let body: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(
            (body["ready"].as_bool(), body["applied_seq"].as_u64()),
            (Some(true), Some(3))
        );
        for (caught_up, stopping, saturation) in [
            (false, false, room),
            (true, true, room),
            (true, false, full),
        ] {
            let r = readiness(state(caught_up), stopping, stopping, saturation);
            assert_eq!(r.status(), 503, "{caught_up} {stopping} {saturation:?}");
        }
    }
}
