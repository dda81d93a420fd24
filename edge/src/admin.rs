//! The admin listener: `/healthz`, `/readyz` and `/metrics`, on an address apart from the public
//! listeners. Purge endpoints join with the purge issue.

use std::sync::Arc;

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::cache::tiered::TieredStorage;
use crate::metrics::Metrics;

/// The admin HTTP application.
pub struct AdminApp {
    /// Metric families, refreshed from the tiers on scrape.
    pub metrics: Arc<Metrics>,
    /// Storage, for tier gauges.
    pub storage: &'static TieredStorage,
    /// Node id, reported by `/healthz`.
    pub node_id: String,
}

fn reply(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    let len = resp.body().len();
    resp.headers_mut()
        .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
    resp
}

fn json_error(status: StatusCode, msg: &str) -> Response<Vec<u8>> {
    let body = serde_json::json!({ "error": msg }).to_string().into_bytes();
    reply(status, "application/json", body)
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let path = req.uri.path().to_string();
        let get = req.method == http::Method::GET || req.method == http::Method::HEAD;
        match path.as_str() {
            "/healthz" | "/readyz" | "/metrics" if !get => {
                json_error(StatusCode::METHOD_NOT_ALLOWED, "use GET")
            }
            "/healthz" => {
                let body = serde_json::json!({ "status": "ok", "node": self.node_id });
                reply(
                    StatusCode::OK,
                    "application/json",
                    body.to_string().into_bytes(),
                )
            }
            // Ready as soon as it serves; purge catch-up will gate this (DESIGN.md, Purge).
            "/readyz" => reply(
                StatusCode::OK,
                "application/json",
                br#"{"ready":true}"#.to_vec(),
            ),
            "/metrics" => {
                self.metrics
                    .observe_tier("memory", self.storage.memory().stats());
                if let Some(disk) = self.storage.disk() {
                    self.metrics.observe_tier("disk", disk.stats());
                }
                reply(
                    StatusCode::OK,
                    "text/plain; version=0.0.4",
                    Metrics::render(),
                )
            }
            _ => json_error(StatusCode::NOT_FOUND, "no such admin endpoint"),
        }
    }
}
