//! Pingora's own floor, for the benchmark table: the least a Pingora HTTP service can spend on a
//! request on a machine, measured beside the edge in the same cdnbench run.
//!
//! `pingora-floor proxy` is a Pingora proxy with caching off (every request goes to `$ORIGIN`);
//! `pingora-floor cache` is the same proxy with Pingora's cache on: its own in-memory storage
//! (`MemCache`, which Pingora marks for testing and which is used here only to measure; it is
//! unbounded, which a benchmark of minutes does not notice), its cache lock, the URL as the key
//! and `Cache-Control` as the only rule. That is the least a cache built on Pingora's cache state
//! machine spends on a hit and on a miss, before any storage tier, rule, log or metric of the
//! edge's. `pingora-floor static` answers every request from `request_filter` with a fixed body
//! of `$FLOOR_BODY` bytes (1 KiB by default; no cache, no origin): the cost of Pingora's HTTP/1
//! server alone. A header and body too big for Pingora's write buffer together are sent corked
//! by the edge's `Cork::around`, as the edge sends a hit (`edge/src/proxy/cork.rs`). Listens on
//! `127.0.0.1:$CANDIDATE_PORT` with one worker thread per CPU, as the edge's default.

use std::process::ExitCode;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use edge::proxy::cork::Cork;
use pingora::cache::cache_control::CacheControl;
use pingora::cache::filters::resp_cacheable;
use pingora::cache::lock::{CacheKeyLockImpl, CacheLock};
use pingora::cache::{CacheKey, CacheMetaDefaults, MemCache, RespCacheable};
use pingora::http::{ResponseHeader, StatusCode};
use pingora::proxy::{ProxyHttp, Session};
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use pingora::upstreams::peer::HttpPeer;
use pingora::Result;

/// The size of every `static` answer unless `$FLOOR_BODY` says otherwise: cdnbench's `hot1k`.
const DEFAULT_BODY: usize = 1024;

/// No freshness without `Cache-Control`: the origin of every benchmark sends `max-age`.
const DEFAULTS: CacheMetaDefaults = CacheMetaDefaults::new(no_default_ttl, 0, 0);

fn no_default_ttl(_: StatusCode) -> Option<Duration> {
    None
}

/// Pingora's own storage and cache lock, for `cache` mode.
struct PingoraCache {
    storage: &'static MemCache,
    lock: &'static CacheKeyLockImpl,
}

struct Floor {
    origin: Option<String>,
    cache: Option<PingoraCache>,
    body: Bytes,
}

#[async_trait]
impl ProxyHttp for Floor {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn request_filter(&self, session: &mut Session, _ctx: &mut ()) -> Result<bool> {
        if self.origin.is_some() {
            return Ok(false);
        }
        let mut resp = ResponseHeader::build(200, Some(3))?;
        resp.insert_header("content-length", self.body.len())?;
        resp.insert_header("cache-control", "public, max-age=3600")?;
        // Corked as the edge corks a fast hit: a header that would go out alone leaves with the body.
        let _cork = Cork::around(session, &resp, self.body.len());
        session.write_response_header(Box::new(resp), false).await?;
        session
            .write_response_body(Some(self.body.clone()), true)
            .await?;
        Ok(true)
    }

    fn request_cache_filter(&self, session: &mut Session, _ctx: &mut ()) -> Result<()> {
        if let Some(cache) = &self.cache {
            session
                .cache
                .enable(cache.storage, None, None, Some(cache.lock), None);
        }
        Ok(())
    }

    fn cache_key_callback(&self, session: &Session, _ctx: &mut ()) -> Result<CacheKey> {
        let req = session.req_header();
        // A host has no '/' and a path starts with one: the two cannot run into each other.
        let host = req.headers.get("host").map_or(&b""[..], |h| h.as_bytes());
        let mut primary = host.to_vec();
        primary.extend_from_slice(req.raw_path());
        Ok(CacheKey::new(primary, ""))
    }

    fn response_cache_filter(
        &self,
        session: &Session,
        resp: &ResponseHeader,
        _ctx: &mut (),
    ) -> Result<RespCacheable> {
        let authorization = session.req_header().headers.contains_key("authorization");
        Ok(resp_cacheable(
            CacheControl::from_resp_headers(resp).as_ref(),
            resp.clone(),
            authorization,
            &DEFAULTS,
        ))
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        let origin = self.origin.clone().unwrap_or_default();
        Ok(Box::new(HttpPeer::new(origin, false, String::new())))
    }
}

fn main() -> ExitCode {
    let mode = std::env::args().nth(1).unwrap_or_default();
    if !matches!(mode.as_str(), "proxy" | "cache" | "static") {
        eprintln!("usage: pingora-floor proxy|cache|static (env CANDIDATE_PORT, ORIGIN)");
        return ExitCode::from(64);
    }
    let origin = match (mode.as_str(), std::env::var("ORIGIN")) {
        ("static", _) => None,
        (_, Ok(o)) => Some(o),
        (_, Err(_)) => {
            eprintln!("pingora-floor {mode}: set ORIGIN to host:port");
            return ExitCode::from(64);
        }
    };
    let cache = (mode == "cache").then(|| PingoraCache {
        storage: Box::leak(Box::new(MemCache::new())),
        lock: Box::leak(CacheLock::new_boxed(Duration::from_secs(10))),
    });
    let body = match std::env::var("FLOOR_BODY").map(|b| b.parse::<usize>()) {
        Err(_) => DEFAULT_BODY,
        Ok(Ok(n)) => n,
        Ok(Err(_)) => {
            eprintln!("pingora-floor: FLOOR_BODY must be a number of bytes");
            return ExitCode::from(64);
        }
    };
    let body = Bytes::from(vec![b'x'; body]);
    let port = std::env::var("CANDIDATE_PORT").unwrap_or_else(|_| "19050".into());
    let conf = ServerConf {
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        // A benchmark stops it between runs: no draining to wait for (Pingora's default is 5 min).
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut service = pingora::proxy::http_proxy_service(
        &server.configuration,
        Floor {
            origin,
            cache,
            body,
        },
    );
    service.add_tcp(&format!("127.0.0.1:{port}"));
    server.add_service(service);
    server.run_forever()
}
