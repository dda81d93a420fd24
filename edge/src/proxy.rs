//! The `ProxyHttp` service: routing by Host, rules, caching through Pingora's HTTP cache with the
//! project's storage, `Cache-Status`, metrics and the access log.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use edge_config::edge::logic::ErrorPage;
use edge_config::edge::{CacheKeySpec, Rule};
use http::header::{ACCEPT_ENCODING, AUTHORIZATION, CACHE_CONTROL, HOST};
use http::Method;
use pingora::cache::key::CacheHashKey;
use pingora::cache::lock::CacheKeyLockImpl;
use pingora::cache::predictor::Predictor;
use pingora::cache::{
    CacheKey, CacheMeta, CacheOptionOverrides, CachePhase, NoCacheReason, RespCacheable,
};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::modules::http::compression::{ResponseCompression, ResponseCompressionBuilder};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::{HttpPeer, Peer};
use pingora::{Error, ErrorSource, ErrorType, Result};

use crate::access_log::{self, AccessLog};
use crate::cache::key::cache_key;
use crate::cache::tiered::TieredStorage;
use crate::cache::{Hash, Source};
use crate::drain::{Drain, InFlight};
use crate::http::cache_control::Directives;
use crate::http::cache_status::{
    CacheStatus, Forward, Outcome, CLIENT_ERROR, INTERNAL_ERROR, ONLY_IF_CACHED, ORIGIN_ERROR,
    ORIGIN_UNREACHABLE, STALE_IF_ERROR, STALE_WHILE_REVALIDATE,
};
use crate::http::freshness::{self, CDN_CACHE_CONTROL, SURROGATE_CONTROL};
use crate::http::{encoding, hop, hygiene, stamp, tags, vary};
use crate::live::origin::OriginPool;
use crate::live::router::{normalize_host, select_rule};
use crate::live::{Live, LiveHandle};
use crate::metrics::{Metrics, OriginResult, NO_SITE};
use crate::purge::{Bans, Readiness, Subject};

pub mod cork;
mod fast_hit;
mod hit_header;
pub mod logic;
pub mod signed;
mod slices;
mod stale;
pub mod watch;

#[cfg(test)]
mod tests;

/// Header naming the cache in RFC 9211.
const CACHE_STATUS: &str = "cache-status";
/// RFC 8586: the caches a request went through, to stop forwarding loops between nodes.
const CDN_LOOP: &str = "cdn-loop";

/// What the proxy needs for every request.
pub struct EdgeState {
    /// Cache name in `Cache-Status`.
    pub node_id: String,
    /// Sites, rules, origins and certificates: replaced whole by a reload.
    pub live: LiveHandle,
    /// Cache storage.
    pub storage: &'static TieredStorage,
    /// Coalesces concurrent misses for one key into one origin fetch.
    pub cache_lock: &'static CacheKeyLockImpl,
    /// Remembers keys that turned out uncacheable, so their requests skip the cache lock.
    pub predictor: &'static Predictor<16>,
    /// How long a coalesced reader waits for the fetch it follows.
    pub lock_timeout: Duration,
    /// Metric families.
    pub metrics: Arc<Metrics>,
    /// Where access-log lines go, if anywhere.
    pub access_log: Option<AccessLog>,
    /// Key settings for requests no rule matches.
    pub default_key: CacheKeySpec,
    /// Purge ban rules, judged on every hit.
    pub bans: &'static Bans,
    /// Caught up with the purge log since start-up. Until then every hit is revalidated with
    /// the origin first, so purges the node missed while it was down cannot be served.
    pub readiness: Arc<Readiness>,
    /// The node's stop, which waits for the requests in flight.
    pub drain: &'static Drain,
}

/// The proxy.
pub struct EdgeProxy {
    state: Arc<EdgeState>,
}

impl EdgeProxy {
    /// A proxy over `state`.
    pub fn new(state: Arc<EdgeState>) -> Self {
        EdgeProxy { state }
    }
}

/// Per-request state.
pub struct RequestCtx {
    /// The configuration this request runs under, from its start to its end.
    live: Arc<Live>,
    /// Holds the node's stop until this request is done.
    _in_flight: InFlight,
    start: Instant,
    /// The same moment on the wall clock: the stamp of what this request stores.
    started_at: SystemTime,
    /// `https` on a TLS listener: the scheme is part of the key.
    scheme: &'static str,
    host: String,
    site: Option<usize>,
    rule: Option<usize>,
    /// Set when the cache is not used at all: a rule's bypass, or a method.
    fwd: Option<Forward>,
    /// An unsafe method: a success invalidates the URL's stored responses.
    invalidates: bool,
    primary: Option<Hash>,
    /// The cache key, when the fast path computed it and handed the request on.
    key: Option<CacheKey>,
    /// Where a hit came from.
    hit_source: Option<Source>,
    origin_start: Option<Instant>,
    origin_time: Option<Duration>,
    origin_status: Option<u16>,
    /// The lookup found a stored response that needs revalidating.
    stale_found: bool,
    /// The origin could not be reached (nothing came back), and a stale copy may stand in.
    origin_unreachable: bool,
    /// The origin's `Age` (RFC 9111 §5.1), when it sent a valid one.
    origin_age: Option<u64>,
    /// Header fields of a 304 from the origin, merged into the stored response.
    not_modified: Option<http::HeaderMap>,
    /// The `Set-Cookie` fields of that 304: for this client only.
    cookies_of_304: Vec<http::HeaderValue>,
    status: Option<CacheStatus>,
    /// The `Cache-Status` field sent, for the access log.
    status_field: Option<String>,
    /// The origin's (or an upstream cache's) `Cache-Status`, continued in ours.
    upstream_status: Option<http::HeaderValue>,
    /// Origin servers this request failed to connect to (failover skips them).
    tried: Vec<std::net::SocketAddr>,
    /// Whether the site's page replaces this response's body.
    error_page: PageSwap,
    /// The slice this request fetches, when it is the subrequest of a sliced response.
    slice: Option<slices::SliceOf>,
}

/// The site's error page standing in for a response's body.
#[derive(Default)]
enum PageSwap {
    /// The response keeps its body.
    #[default]
    None,
    /// The page goes out with the first piece of the body.
    Pending(ErrorPage),
    /// The page went out: the rest of the error's own body is dropped.
    Sent,
}

impl RequestCtx {
    /// The `site` label of this request: its site's name, or [`NO_SITE`].
    pub(super) fn site_name(&self) -> &str {
        self.site
            .and_then(|i| self.live.sites().get(i))
            .map_or(NO_SITE, |s| s.name.as_str())
    }

    /// The site's page for an error `status`, if it has one.
    fn error_page(&self, status: u16) -> Option<&ErrorPage> {
        self.live.sites()[self.site?].error_pages.for_status(status)
    }

    fn rule(&self) -> Option<&Rule> {
        Some(&self.live.sites()[self.site?].rules[self.rule?])
    }

    fn pool(&self) -> Option<&Arc<OriginPool>> {
        self.live.site_pools.get(self.site?)
    }
}

/// The predictor's skip test (a plain fn, as Pingora wants it): these reasons say nothing about
/// the URL, only about this request or a passing fault, so remembering them would make one
/// user's request or one 5xx bypass the cache for everyone for a while.
pub fn skip_prediction(reason: &'static str) -> bool {
    matches!(reason, "authorization" | "status")
}

fn is_cacheable_method(m: &Method) -> bool {
    m == Method::GET || m == Method::HEAD
}

/// Whether a success of `m` invalidates the stored responses of its URL: every method not known
/// to be safe (RFC 9110 §9.2.1), those whose safety is unknown included (RFC 9111 §4.4).
fn is_unsafe_method(m: &Method) -> bool {
    !matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

fn request_host(req: &RequestHeader) -> Option<&str> {
    // HTTP/2 carries it in :authority (the URI); HTTP/1.1 in Host. Both present and different is
    // ambiguous, and ambiguity is how caches get poisoned: refuse it.
    let header = req.headers.get(HOST).and_then(|v| v.to_str().ok());
    let uri = req.uri.authority().map(|a| a.as_str());
    match (uri, header) {
        (Some(u), Some(h)) if !u.eq_ignore_ascii_case(h) => None,
        (Some(u), _) => Some(u),
        (None, h) => h,
    }
}

impl EdgeProxy {
    fn key(&self, session: &Session, ctx: &RequestCtx) -> CacheKey {
        let spec = ctx.rule().map_or(&self.state.default_key, |r| &r.cache_key);
        cache_key(ctx.scheme, &ctx.host, session.req_header(), spec)
    }

    /// Answers a request the edge will not serve (a malformed or unknown host, a refused
    /// client), with `Cache-Status` like every response, and closes the connection after it.
    async fn respond_local(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        status: u16,
        detail: &'static str,
        body: String,
    ) -> Result<bool> {
        session.set_keepalive(None);
        self.answer_here(session, ctx, Forward::Bypass, status, detail, None, body)
            .await
    }

    /// Answers at the edge: `Cache-Status: <node>; fwd=<fwd>; detail=<detail>`, one `extra`
    /// field if any, and `body` (or the site's error page). `Ok(true)`: the request is done.
    #[allow(clippy::too_many_arguments)]
    async fn answer_here(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        fwd: Forward,
        status: u16,
        detail: &'static str,
        extra: Option<(http::HeaderName, String)>,
        body: String,
    ) -> Result<bool> {
        let cs = CacheStatus {
            fwd: Some(fwd),
            detail: Some(detail),
            ..Default::default()
        };
        let field = cs.render(&self.state.node_id);
        self.write_plain(session, ctx, status, &field, extra, body)
            .await?;
        ctx.status = Some(cs);
        ctx.status_field = Some(field);
        Ok(true)
    }

    /// The primary key of the URL `target` (absolute, or a path) names, if it is on the same
    /// scheme and host as the request, under the rule that URL's path selects.
    fn same_origin_key(&self, session: &Session, ctx: &RequestCtx, target: &str) -> Option<Hash> {
        let uri: http::Uri = target.parse().ok()?;
        if let Some(authority) = uri.authority() {
            let same_host = normalize_host(authority.as_str()).is_some_and(|h| h == ctx.host);
            if !same_host || uri.scheme_str() != Some(ctx.scheme) {
                return None;
            }
        }
        let path_and_query = uri.path_and_query()?;
        if !path_and_query.as_str().starts_with('/') {
            return None;
        }
        let mut req = session.req_header().clone();
        req.set_method(Method::GET);
        req.set_uri(http::Uri::try_from(path_and_query.as_str()).ok()?);
        let rules = &ctx.live.sites().get(ctx.site?)?.rules;
        let spec = select_rule(rules, "GET", req.uri.path())
            .map_or(&self.state.default_key, |(_, r)| &r.cache_key);
        Some(cache_key(ctx.scheme, &ctx.host, &req, spec).primary_bin())
    }

    /// The `Age` of a response this request fetched from the origin (a fill, an uncacheable or
    /// bypassed response): the origin's own plus the time since the request went to it (RFC
    /// 9111 §4.2.3, §5.1). `None` when the origin sent none and less than a second passed; a
    /// response served from the cache carries the age of the stored copy instead.
    fn forwarded_age(&self, session: &Session, ctx: &RequestCtx) -> Option<u64> {
        let from_cache = matches!(
            session.cache.phase(),
            CachePhase::Hit
                | CachePhase::StaleUpdating
                | CachePhase::Stale
                | CachePhase::Revalidated
                | CachePhase::RevalidatedNoCache(_)
        );
        if from_cache || ctx.origin_status.is_none_or(|s| s == 304) {
            return None;
        }
        let waited = ctx.origin_start.map_or(0, |s| s.elapsed().as_secs());
        match ctx.origin_age {
            Some(age) => Some(age.saturating_add(waited)),
            None => (waited > 0).then_some(waited),
        }
    }

    /// Writes a complete plain-text response generated by the edge itself (with one `extra`
    /// field: a redirect's `Location`, a refusal's `Retry-After`), with the rule's response
    /// headers.
    async fn write_plain(
        &self,
        session: &mut Session,
        ctx: &RequestCtx,
        status: u16,
        cache_status: &str,
        extra: Option<(http::HeaderName, String)>,
        body: String,
    ) -> Result<()> {
        let (content_type, body) = match ctx.error_page(status) {
            Some(page) => (page.content_type, Bytes::copy_from_slice(&page.body)),
            None => ("text/plain; charset=utf-8", Bytes::from(body)),
        };
        let mut resp = ResponseHeader::build(status, Some(5))?;
        resp.insert_header(http::header::CONTENT_TYPE, content_type)?;
        resp.insert_header(http::header::CONTENT_LENGTH, body.len())?;
        resp.insert_header(CACHE_STATUS, cache_status)?;
        if let Some((name, value)) = extra {
            resp.insert_header(name, value)?;
        }
        if let Some(rule) = ctx.rule() {
            logic::apply_response(&rule.logic.response_headers, &mut resp)?;
        }
        session.write_response_header(Box::new(resp), false).await?;
        session.write_response_body(Some(body), true).await
    }

    /// `Cache-Status` for a response that went through the proxy, from Pingora's cache phase.
    fn cache_status(&self, session: &Session, ctx: &RequestCtx) -> CacheStatus {
        let cache = &session.cache;
        let ttl = cache.maybe_cache_meta().map(|meta| {
            let now = SystemTime::now();
            match meta.fresh_until().duration_since(now) {
                Ok(d) => d.as_secs() as i64,
                Err(e) => -(e.duration().as_secs() as i64),
            }
        });
        status_of(
            cache.phase(),
            &Facts {
                fwd: ctx.fwd,
                ttl,
                hit_source: ctx.hit_source,
                origin_status: ctx.origin_status,
                origin_unreachable: ctx.origin_unreachable,
                storing: cache.enabled(),
            },
        )
    }
}

/// What the proxy knows of a request when it writes `Cache-Status`, besides Pingora's phase.
#[derive(Debug, Clone, Copy, Default)]
struct Facts {
    /// The cache was not used at all, and why.
    fwd: Option<Forward>,
    /// Remaining freshness of the stored response in play, if any.
    ttl: Option<i64>,
    hit_source: Option<Source>,
    origin_status: Option<u16>,
    origin_unreachable: bool,
    /// The cache is still on for this request: what it fetches is being stored.
    storing: bool,
}

/// `Cache-Status` for a request in `phase`.
fn status_of(phase: CachePhase, f: &Facts) -> CacheStatus {
    let mut cs = CacheStatus::default();
    if let Some(fwd) = f.fwd {
        cs.fwd = Some(fwd);
        return cs;
    }
    match phase {
        CachePhase::Hit => {
            cs.hit = true;
            cs.ttl = f.ttl;
            cs.detail = f.hit_source.map(Source::label);
        }
        CachePhase::StaleUpdating => {
            cs.hit = true;
            cs.ttl = f.ttl;
            cs.detail = Some(STALE_WHILE_REVALIDATE);
        }
        CachePhase::Stale => {
            cs.fwd = Some(Forward::Stale);
            cs.fwd_status = f.origin_status;
            cs.detail = Some(if f.origin_unreachable {
                ORIGIN_UNREACHABLE
            } else {
                STALE_IF_ERROR
            });
        }
        CachePhase::Revalidated | CachePhase::RevalidatedNoCache(_) => {
            cs.fwd = Some(Forward::Stale);
            cs.fwd_status = Some(304);
            cs.ttl = f.ttl;
        }
        CachePhase::Expired => {
            cs.fwd = Some(Forward::Stale);
            cs.fwd_status = f.origin_status;
            cs.stored = f.storing;
        }
        CachePhase::Miss => {
            cs.fwd = Some(Forward::Miss);
            cs.stored = f.storing;
        }
        CachePhase::Disabled(reason) => {
            cs.fwd = Some(Forward::Miss);
            cs.detail = Some(match reason {
                NoCacheReason::Custom(r) => r,
                NoCacheReason::ResponseTooLarge | NoCacheReason::PredictedResponseTooLarge => {
                    "too-large"
                }
                other => other.as_str(),
            });
        }
        CachePhase::Bypass => {
            cs.fwd = Some(Forward::Miss);
            cs.detail = Some("predicted-uncacheable");
        }
        _ => cs.fwd = Some(Forward::Miss),
    }
    cs
}

#[async_trait]
impl ProxyHttp for EdgeProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            live: self.state.live.load_full(),
            _in_flight: self.state.drain.enter(),
            start: Instant::now(),
            started_at: SystemTime::now(),
            scheme: "http",
            host: String::new(),
            site: None,
            rule: None,
            fwd: None,
            invalidates: false,
            primary: None,
            key: None,
            hit_source: None,
            origin_start: None,
            origin_time: None,
            origin_status: None,
            stale_found: false,
            origin_unreachable: false,
            origin_age: None,
            not_modified: None,
            cookies_of_304: Vec::new(),
            status: None,
            status_field: None,
            upstream_status: None,
            error_page: PageSwap::None,
            tried: Vec::new(),
            slice: None,
        }
    }

    fn init_downstream_modules(&self, modules: &mut pingora::modules::http::HttpModules) {
        // Off here; each request sets it from the configuration in force (early_request_filter).
        modules.add_module(ResponseCompressionBuilder::enable(0));
    }

    async fn early_request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        watch::head_read();
        let limits = &ctx.live.config.limits;
        // Each write to the client: one that makes no progress this long ends the connection
        // (the client stopped reading), whatever the response's size.
        session.set_write_timeout(Some(limits.send_timeout));
        if limits.keepalive_timeout.is_zero() {
            session.set_keepalive(None);
        }
        let c = ctx.live.compression();
        if let Some(m) = session
            .downstream_modules_ctx
            .get_mut::<ResponseCompression>()
        {
            if c.on_the_fly {
                m.adjust_level(c.level);
            }
            // A stored encoded response reaches a client that cannot decode it only if the
            // origin forgot `Vary`; decoding it here is the last line of defence.
            m.adjust_decompression(true);
        }
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        if let Err(over) = hygiene::check_limits(session.req_header(), &ctx.live.config.limits) {
            let body = format!("{}\n", over.detail().replace('-', " "));
            return self
                .respond_local(session, ctx, over.status(), over.detail(), body)
                .await;
        }
        // One form of the path for the rules, the key and the origin alike.
        let req = session.req_header_mut();
        if let Some(uri) = hygiene::normalized_uri(&req.uri) {
            req.set_uri(uri);
        }
        hygiene::forward_as_keyed(req);
        let req = session.req_header();
        let Some(host) = request_host(req).and_then(normalize_host) else {
            return self
                .respond_local(
                    session,
                    ctx,
                    400,
                    "invalid-host",
                    "invalid or missing Host header\n".into(),
                )
                .await;
        };
        if forwarded_by(req, &self.state.node_id) {
            ctx.host = host;
            return self
                .respond_local(
                    session,
                    ctx,
                    508,
                    "loop-detected",
                    "this request already went through this node: origins form a loop\n".into(),
                )
                .await;
        }
        let Some(site) = ctx.live.router.route(&host) else {
            let body = format!("no site is configured for host \"{host}\" on this CDN node\n");
            ctx.host = host;
            return self
                .respond_local(session, ctx, 404, "unknown-host", body)
                .await;
        };
        let method = req.method.clone();
        let rule = select_rule(
            &ctx.live.sites()[site].rules,
            method.as_str(),
            req.uri.path(),
        );
        ctx.rule = rule.map(|(i, _)| i);
        if !is_cacheable_method(&method) {
            ctx.fwd = Some(Forward::Method);
            ctx.invalidates = is_unsafe_method(&method);
        } else if rule.is_some_and(|(_, r)| !r.cache) {
            ctx.fwd = Some(Forward::Bypass);
        }
        let body_on_cacheable = ctx.fwd.is_none() && hygiene::has_body(req);
        ctx.site = Some(site);
        ctx.host = host;
        if session.digest().is_some_and(|d| d.ssl_digest.is_some()) {
            ctx.scheme = "https";
        }
        ctx.slice = slices::of_subrequest(session);
        if ctx.slice.is_some() {
            slices::plain_get(session.req_header_mut());
        }
        // Access control, then redirects, before the cache (DESIGN.md, "Edge logic"); a slice's
        // subrequest was let through already as its client's request.
        if ctx.slice.is_none() && self.edge_answer(session, ctx).await? {
            return Ok(true);
        }
        if body_on_cacheable {
            // The body is not in the key, so an answer that depends on it would be served to
            // requests without it; and origins that ignore GET bodies misread the connection.
            return self
                .respond_local(
                    session,
                    ctx,
                    400,
                    "body-on-get",
                    "a GET or HEAD request must not carry a body here\n".into(),
                )
                .await;
        }
        if ctx.slice.is_some() {
            return Ok(false);
        }
        if let (None, Some(size)) = (ctx.fwd, ctx.rule().and_then(|r| r.slice)) {
            // The key (its primary part) is the URL's: a purge of it reaches every slice.
            let key = self.key(session, ctx);
            ctx.primary = Some(key.primary_bin());
            return self.serve_sliced(session, ctx, size, key).await;
        }
        if ctx.fwd.is_none() && fast_hit::eligible(session.req_header()) {
            return self.fresh_hit(session, ctx).await;
        }
        Ok(false)
    }

    fn allow_spawning_subrequest(&self, session: &Session, ctx: &RequestCtx) -> bool {
        // Sliced responses are made of subrequests; a subrequest makes none of its own. Without
        // a sliced rule no request needs the spawner (a reference taken on the shared proxy).
        ctx.live.slices && session.subrequest_ctx.is_none()
    }

    fn request_cache_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<()> {
        if ctx.fwd.is_some() && !ctx.invalidates {
            return Ok(());
        }
        if ctx.invalidates {
            // Not cached, but the key of the URL is needed to invalidate it on success.
            ctx.primary = Some(self.key(session, ctx).primary_bin());
            return Ok(());
        }
        let s = &self.state;
        session.cache.enable(
            s.storage,
            None,
            Some(s.predictor),
            Some(s.cache_lock),
            Some({
                let mut o = CacheOptionOverrides::default();
                o.wait_timeout = Some(s.lock_timeout);
                o
            }),
        );
        session
            .cache
            .set_max_file_size_bytes(s.storage.max_object_size() as usize);
        Ok(())
    }

    fn cache_key_callback(&self, session: &Session, ctx: &mut RequestCtx) -> Result<CacheKey> {
        let mut key = ctx.key.take().unwrap_or_else(|| self.key(session, ctx));
        ctx.primary = Some(key.primary_bin());
        if let Some(slice) = ctx.slice {
            key.set_variance_key(slice.variance());
        }
        Ok(key)
    }

    async fn cache_hit_filter(
        &self,
        session: &mut Session,
        meta: &CacheMeta,
        hit_handler: &mut pingora::cache::storage::HitHandler,
        is_fresh: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<pingora::cache::ForcedFreshness>> {
        ctx.stale_found = !is_fresh;
        ctx.hit_source = Some(crate::cache::tiered::hit_source(hit_handler));
        if !self.state.readiness.is_ready() {
            return Ok(Some(pingora::cache::ForcedFreshness::ForceExpired));
        }
        let (Some(primary), false) = (ctx.primary, self.state.bans.is_empty()) else {
            return Ok(None);
        };
        let path = session.req_header().uri.path();
        let subject = Subject::of(&primary, &ctx.host, path, meta.headers());
        Ok(self.state.bans.judge(&subject).forced())
    }

    fn cache_vary_filter(
        &self,
        meta: &CacheMeta,
        ctx: &mut RequestCtx,
        req: &RequestHeader,
    ) -> Option<pingora::cache::key::HashBinary> {
        if let Some(slice) = ctx.slice {
            return Some(slice.variance());
        }
        vary::variance(&vary::names(meta.headers()), req)
    }

    fn response_cache_filter(
        &self,
        session: &Session,
        resp: &ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<RespCacheable> {
        let authorization = session.req_header().headers.contains_key(AUTHORIZATION);
        let merged;
        let resp = match ctx.not_modified.take() {
            Some(fields) => {
                // Onto the stored header itself: Pingora's merge already took the 304's
                // validator, which must stay the stored body's.
                let stored = session
                    .cache
                    .maybe_cache_meta()
                    .map(|m| m.response_header());
                let stored = stored.unwrap_or(resp);
                if vary::changed_by(stored, &fields) {
                    // The copy was stored for any request; the origin now says it varies. It
                    // stays this client's answer (the 304 was for its request), and goes.
                    if let Some(primary) = ctx.primary {
                        let n = self.state.storage.invalidate_primary(&primary);
                        self.state.metrics.invalidations.inc_by(n as u64);
                    }
                    return Ok(RespCacheable::Uncacheable(NoCacheReason::Custom(
                        "vary-changed",
                    )));
                }
                merged = freshness::merge_not_modified(stored, &fields);
                &merged
            }
            None => resp,
        };
        let rule = ctx.rule();
        if ctx.slice.is_some() && !resp.headers.contains_key(slices::TOTAL) {
            // The origin did not answer with the slice asked for.
            return Ok(RespCacheable::Uncacheable(NoCacheReason::Custom(
                "not-a-slice",
            )));
        }
        Ok(
            match freshness::decide(resp, authorization, rule, SystemTime::now()) {
                Ok(mut f) => {
                    let unreachable = ctx.live.config.cache.stale_if_unreachable;
                    f.stale_if_error = f.stale_if_error.max(freshness::stale_if_unreachable(
                        resp,
                        rule,
                        unreachable,
                    ));
                    let mut header = resp.clone();
                    freshness::prepare_for_store(&mut header);
                    // What the caches upstream said of their copy describes that fetch; a hit
                    // here is this node's alone.
                    header.remove_header(CACHE_STATUS);
                    tags::prepare_for_store(&mut header, rule.map_or(&[], |r| &r.tags));
                    stamp::set(&mut header, ctx.started_at);
                    RespCacheable::Cacheable(CacheMeta::new(
                        f.fresh_until,
                        f.created,
                        f.stale_while_revalidate,
                        f.stale_if_error,
                        header,
                    ))
                }
                Err(reason) => RespCacheable::Uncacheable(NoCacheReason::Custom(reason)),
            },
        )
    }

    async fn proxy_upstream_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<bool> {
        // RFC 9111 §5.2.1.7: a client that asked for a stored response only gets a 504 when
        // there is none it may have.
        let only_if_cached = Directives::of(&session.req_header().headers, &CACHE_CONTROL)
            .is_some_and(|d| d.only_if_cached());
        if only_if_cached && ctx.fwd.is_none() {
            let forwarded = self.cache_status(session, ctx).fwd.unwrap_or(Forward::Miss);
            session.set_keepalive(None);
            self.answer_here(
                session,
                ctx,
                forwarded,
                504,
                ONLY_IF_CACHED,
                None,
                "504 Gateway Timeout: not in the cache (only-if-cached)\n".into(),
            )
            .await?;
            return Ok(false);
        }
        Ok(true)
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let pool = ctx
            .pool()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no site chosen"))?;
        // Cached requests hash their cache key; the rest (bypass, POST, ...) have none and hash
        // their path, so consistent hashing still spreads them over the pool.
        let key: &[u8] = match &ctx.primary {
            Some(primary) => primary,
            None => session.req_header().uri.path().as_bytes(),
        };
        let peer = pool.peer(key, &ctx.tried).ok_or_else(|| {
            Error::explain(
                ErrorType::ConnectNoRoute,
                "no server of the origin pool is left to try",
            )
        })?;
        ctx.origin_start = Some(Instant::now());
        Ok(Box::new(peer))
    }

    fn fail_to_connect(
        &self,
        session: &mut Session,
        peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        let Some(pool) = ctx.pool() else {
            return e;
        };
        let addr = peer.address().as_inet().copied();
        if let Some(addr) = &addr {
            pool.connect_failed(addr);
        }
        let retries = pool.origin().retries as usize;
        // Only a failed connect rules a server out for this request: Pingora's own retry of a
        // reused keepalive connection that the server had closed may go to the same server.
        ctx.tried.extend(addr);
        // Nothing reached the server: an idempotent request can go to another one.
        if session.req_header().method.is_idempotent() && ctx.tried.len() <= retries {
            self.state.metrics.origin_retries.inc();
            e.set_retry(true);
        }
        e
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        reused: bool,
        peer: &HttpPeer,
        #[cfg(unix)] _fd: std::os::unix::io::RawFd,
        #[cfg(windows)] _sock: std::os::windows::io::RawSocket,
        _digest: Option<&pingora::protocols::Digest>,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if !reused {
            if let (Some(pool), Some(addr)) = (ctx.pool(), peer.address().as_inet()) {
                pool.connected(addr);
            }
        }
        Ok(())
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(host) = ctx.pool().and_then(|p| p.origin().host_header.as_deref()) {
            upstream.insert_header(HOST, host)?;
        }
        let keyed = &ctx
            .rule()
            .map_or(&self.state.default_key, |r| &r.cache_key)
            .headers;
        if ctx.fwd.is_none() {
            // The answer may be stored: nothing outside the key may shape it.
            hygiene::strip_unkeyed(upstream, keyed);
        }
        // What the edge knows, from the key, so an origin can build links without trusting
        // the client's word for it (unless a rule keys on the client's).
        for (name, value) in [
            ("x-forwarded-proto", ctx.scheme),
            ("x-forwarded-host", ctx.host.as_str()),
        ] {
            if !keyed.iter().any(|k| k == name) {
                upstream.insert_header(name, value)?;
            }
        }
        let ae = encoding::normalize(
            upstream
                .headers
                .get_all(ACCEPT_ENCODING)
                .iter()
                .map(|v| v.as_bytes()),
        );
        if ae.is_empty() {
            upstream.remove_header(&ACCEPT_ENCODING);
        } else {
            upstream.insert_header(ACCEPT_ENCODING, ae)?;
        }
        let hops = match upstream.headers.get(CDN_LOOP).and_then(|v| v.to_str().ok()) {
            Some(prev) => format!("{prev}, {}", self.state.node_id),
            None => self.state.node_id.clone(),
        };
        upstream.insert_header(CDN_LOOP, hops)?;
        if let Some(addr) = session.client_addr().and_then(|a| a.as_inet()) {
            let ip = addr.ip().to_string();
            let xff = match upstream
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
            {
                Some(prev) => format!("{prev}, {ip}"),
                None => ip,
            };
            upstream.insert_header("x-forwarded-for", xff)?;
        }
        if let Some(slice) = ctx.slice {
            upstream.insert_header(http::header::RANGE, slice.range())?;
            upstream.remove_header(&http::header::IF_RANGE);
        }
        if let Some(rule) = ctx.rule() {
            logic::apply_request(&rule.logic.request_headers, upstream)?;
            if let Some(op) = &rule.logic.origin_path {
                // The cache key and purges keep the client's URL; only the origin sees this.
                let path = op.apply(upstream.uri.path());
                let target = match upstream.uri.query() {
                    Some(q) => format!("{path}?{q}"),
                    None => path,
                };
                let uri = http::Uri::try_from(target).map_err(|e| {
                    Error::because(
                        ErrorType::InternalError,
                        "origin_path made an invalid URI",
                        e,
                    )
                })?;
                upstream.set_uri(uri);
            }
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let status = resp.status.as_u16();
        ctx.origin_status = Some(status);
        // Before anything is stored: neither forwarded nor kept (RFC 9111 §3.1).
        hop::strip(resp);
        if let Some(slice) = ctx.slice {
            // The slice asked for is stored as a `200` of its bytes, the object's length beside.
            let total = (status == 206)
                .then(|| resp.headers.get(http::header::CONTENT_RANGE))
                .flatten()
                .and_then(|v| slice.total_in(v.as_bytes()));
            if let Some(total) = total {
                resp.set_status(200)?;
                resp.remove_header(&http::header::CONTENT_RANGE);
                resp.insert_header(slices::TOTAL, total)?;
            }
        }
        ctx.origin_age = freshness::age_value(&resp.headers);
        encoding::ensure_vary(resp)?;
        // The stored copy drops it (a hit is this node's alone), so keep it for this response.
        ctx.upstream_status = resp.headers.get(CACHE_STATUS).cloned();
        if status == 304 {
            // Pingora merges only a few validators into the stored header; RFC 9111 §4.3.4
            // wants every field the 304 carries. Kept for `response_cache_filter`.
            ctx.not_modified = Some(resp.headers.clone());
            ctx.cookies_of_304 = resp
                .headers
                .get_all(http::header::SET_COOKIE)
                .iter()
                .cloned()
                .collect();
        }
        if let Some(start) = ctx.origin_start {
            let t = start.elapsed();
            ctx.origin_time = Some(t);
            self.state.metrics.origin_duration.observe(t.as_secs_f64());
        }
        self.state
            .metrics
            .origin_request(ctx.site_name(), OriginResult::of_status(status));
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let cs = self.cache_status(session, ctx);
        let mine = cs.render(&self.state.node_id);
        // RFC 9211 §2: keep what the caches upstream (an origin shield) said, and add this one.
        let upstream = ctx.upstream_status.take();
        let field = match upstream.as_ref().and_then(|v| v.to_str().ok()) {
            Some(upstream) if !upstream.trim().is_empty() => format!("{upstream}, {mine}"),
            _ => mine,
        };
        resp.insert_header(CACHE_STATUS, &field)?;
        ctx.status_field = Some(field);
        strip_internal(resp);
        if ctx.slice.is_some() {
            // What goes to the client is made from it (`slices.rs`), with the rule's headers.
            ctx.status = Some(cs);
            return Ok(());
        }
        if let Some(rule) = ctx.rule() {
            logic::apply_response(&rule.logic.response_headers, resp)?;
        }
        if let Some(page) = ctx.error_page(resp.status.as_u16()).cloned() {
            logic::serve_page_in(resp, &page)?;
            ctx.error_page = PageSwap::Pending(page);
        }
        if ctx.origin_unreachable && session.cache.phase() == CachePhase::Stale {
            self.state.metrics.stale_unreachable.inc();
        }
        if let Some(age) = self.forwarded_age(session, ctx) {
            resp.insert_header(http::header::AGE, age)?;
        }
        if matches!(
            session.cache.phase(),
            CachePhase::Revalidated | CachePhase::RevalidatedNoCache(_)
        ) {
            // The 304's cookies, kept out of the stored copy, go to the client who asked.
            for cookie in ctx.cookies_of_304.drain(..) {
                resp.append_header(http::header::SET_COOKIE, cookie)?;
            }
        }
        if ctx.invalidates && (200..400).contains(&resp.status.as_u16()) {
            let mut n = 0;
            if let Some(primary) = ctx.primary {
                n += self.state.storage.invalidate_primary(&primary);
            }
            // RFC 9111 §4.4 allows the URLs the response names as changed too, on this origin.
            for field in [http::header::LOCATION, http::header::CONTENT_LOCATION] {
                let target = resp.headers.get(&field).and_then(|v| v.to_str().ok());
                if let Some(primary) = target.and_then(|t| self.same_origin_key(session, ctx, t)) {
                    n += self.state.storage.invalidate_primary(&primary);
                }
            }
            self.state.metrics.invalidations.inc_by(n as u64);
        }
        ctx.status = Some(cs);
        Ok(())
    }

    fn response_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        // The page stands in for whatever body the error had, stored or fetched: sent with the
        // first piece (the end of a stored body may come without one), then nothing.
        match std::mem::take(&mut ctx.error_page) {
            PageSwap::None => {}
            PageSwap::Pending(page) => {
                *body = (session.req_header().method != Method::HEAD)
                    .then(|| Bytes::copy_from_slice(&page.body));
                ctx.error_page = PageSwap::Sent;
            }
            PageSwap::Sent => {
                *body = None;
                ctx.error_page = PageSwap::Sent;
            }
        }
        Ok(None)
    }

    fn should_serve_stale(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        error: Option<&Error>,
    ) -> bool {
        // During revalidation (no error) the stored windows decide; Pingora checks them.
        let Some(e) = error else { return true };
        let Some(meta) = session.cache.maybe_cache_meta() else {
            return false;
        };
        match self.stand_in(ctx, meta.response_header(), meta.fresh_until(), e) {
            Some(why) => {
                ctx.origin_unreachable = why == stale::StandIn::Unreachable;
                true
            }
            None => false,
        }
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        if let Ok(true) = self.stale_after_failure(session, ctx, e).await {
            return FailToProxy {
                error_code: 200,
                can_reuse_downstream: false,
            };
        }
        let code = match e.etype() {
            ErrorType::HTTPStatus(code) => *code,
            _ => match e.esource() {
                // As nginx: an origin that did not answer in time is a gateway timeout.
                ErrorSource::Upstream
                    if matches!(
                        e.etype(),
                        ErrorType::ReadTimedout
                            | ErrorType::ConnectTimedout
                            | ErrorType::TLSHandshakeTimedout
                    ) =>
                {
                    504
                }
                // A stored response that had to be revalidated and could be neither (the origin
                // failed) nor served stale (must-revalidate and the like): RFC 9111 §4.3.3.
                ErrorSource::Upstream if ctx.stale_found => 504,
                ErrorSource::Upstream => 502,
                ErrorSource::Downstream => match e.etype() {
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                    _ => 400,
                },
                ErrorSource::Internal | ErrorSource::Unset => 500,
            },
        };
        if e.esource() == &ErrorSource::Upstream {
            self.state
                .metrics
                .origin_request(ctx.site_name(), OriginResult::Error);
        }
        let cs = CacheStatus {
            fwd: Some(ctx.fwd.unwrap_or(Forward::Miss)),
            detail: Some(match e.esource() {
                ErrorSource::Upstream => ORIGIN_ERROR,
                ErrorSource::Downstream => CLIENT_ERROR,
                _ => INTERNAL_ERROR,
            }),
            ..Default::default()
        };
        let field = cs.render(&self.state.node_id);
        if code > 0 && session.response_written().is_none() {
            let reason = http::StatusCode::from_u16(code)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("");
            // The client may be gone already; there is no one left to tell.
            let _ = self
                .write_plain(
                    session,
                    ctx,
                    code,
                    &field,
                    None,
                    format!("{code} {reason}\n"),
                )
                .await;
        }
        ctx.status = Some(cs);
        ctx.status_field = Some(field);
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        if ctx.slice.is_some() {
            // Part of its client's request, which is logged and counted once.
            return;
        }
        watch::request_ended(e);
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let outcome = ctx
            .status
            .as_ref()
            .map_or(Outcome::Error, CacheStatus::outcome);
        let bytes = session.body_bytes_sent() as u64;
        let elapsed = ctx.start.elapsed();
        self.state
            .metrics
            .request(ctx.site_name(), outcome, status, bytes, elapsed);
        if let Some(log) = &self.state.access_log {
            let req = session.req_header();
            log.write(&access_log::Entry {
                time: ctx.started_at,
                client: session.client_addr().and_then(|a| a.as_inet()).copied(),
                method: req.method.as_str(),
                host: &ctx.host,
                site: ctx.site_name(),
                path: req.uri.path(),
                proto: match req.version {
                    http::Version::HTTP_2 => "HTTP/2",
                    http::Version::HTTP_10 => "HTTP/1.0",
                    _ => "HTTP/1.1",
                },
                status,
                bytes,
                cache: outcome.label(),
                cache_status: ctx.status_field.as_deref().unwrap_or(""),
                origin_ms: ctx.origin_time.map(|t| t.as_secs_f64() * 1e3),
                total_ms: elapsed.as_secs_f64() * 1e3,
                error: e.map(|e| e.to_string()),
            });
        }
    }
}

/// Removes what is addressed to this cache or kept for it from a response on its way out:
/// `CDN-Cache-Control` and `Surrogate-Control` (RFC 9213 §2.1), tags and the storage stamp.
fn strip_internal(resp: &mut ResponseHeader) {
    resp.remove_header(&CDN_CACHE_CONTROL);
    resp.remove_header(&SURROGATE_CONTROL);
    tags::strip(resp);
    stamp::strip(resp);
}

/// Whether this node's id is among the hops of the request's `CDN-Loop`.
fn forwarded_by(req: &RequestHeader, node_id: &str) -> bool {
    req.headers.get_all(CDN_LOOP).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|hop| hop.split(';').next().unwrap_or("").trim() == node_id)
        })
    })
}
