//! Objects cached in slices (a rule's `slice`), as nginx's slice module does: each slice is an
//! object of both tiers, fetched from the origin with `Range` by a subrequest that runs through
//! this proxy's own cache path (lookup, coalescing, storage, revalidation, purge judgement), keyed
//! by the URL's primary key and a variance that names the slice. The client's request is
//! answered here from those subrequests, one slice at a time, in order: a `Range` asks only for
//! the slices it covers, and a full `GET` never holds more than what one slice sends at once.
//!
//! A slice is stored as a `200` of the slice's bytes with the object's length beside it
//! ([`TOTAL`]). The first slice a response reads gives its header; every later one must carry the
//! same validators and length, or the response is cut short rather than splice two versions of
//! the object, and the URL's slices are dropped so the next request fetches one version. An
//! origin that answers the first `Range` with a whole `200` is answered through as it is, unsliced.

use bytes::Bytes;
use http::header::{
    ACCEPT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE, ETAG, IF_MATCH, IF_MODIFIED_SINCE,
    IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, LAST_MODIFIED, RANGE,
};
use http::{HeaderName, Method};
use pingora::cache::key::HashBinary;
use pingora::http::ResponseHeader;
use pingora::protocols::http::HttpTask;
use pingora::proxy::subrequest::{BodyMode, Ctx as SubrequestCtx};
use pingora::proxy::{range_header_filter, RangeType, Session, SubrequestSpawner};
use pingora::{Error, ErrorType, Result};
use tokio::sync::mpsc;

use super::*;

/// The object's length, kept beside each stored slice.
pub(super) const TOTAL: HeaderName = HeaderName::from_static("x-edge-slice-total");

/// Which slice a subrequest fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SliceOf {
    /// Its number: it holds bytes `index * size ..`.
    pub index: u64,
    /// Bytes per slice.
    pub size: u64,
}

impl SliceOf {
    /// The first byte of the slice.
    fn start(self) -> u64 {
        self.index * self.size
    }

    /// The variance that keys the slice under its URL's primary key.
    pub(super) fn variance(self) -> HashBinary {
        let mut h = slice_hash(self.index, self.size);
        // Never the zero variance Pingora treats as none.
        h[0] |= 1;
        h
    }

    /// The `Range` asking the origin for this slice.
    pub(super) fn range(self) -> String {
        format!("bytes={}-{}", self.start(), self.start() + self.size - 1)
    }

    /// Checks a `206`'s `Content-Range` against this slice; the object's length when it is the
    /// slice asked for.
    pub(super) fn total_in(self, content_range: &[u8]) -> Option<u64> {
        let text = std::str::from_utf8(content_range).ok()?.trim();
        let rest = text.strip_prefix("bytes ")?;
        let (span, total) = rest.split_once('/')?;
        let (from, to) = span.split_once('-')?;
        let (from, to, total): (u64, u64, u64) =
            (from.parse().ok()?, to.parse().ok()?, total.parse().ok()?);
        let end = (self.start() + self.size).min(total);
        (from == self.start() && to + 1 == end && to >= from).then_some(total)
    }
}

/// A 16-byte digest of a slice's number and size (not cryptographic: it only has to differ
/// between slices of one URL and from any `Vary` variance, which hashes field values).
fn slice_hash(index: u64, size: u64) -> HashBinary {
    let mut out = [0u8; 16];
    let a = (index ^ 0x736c_6963_6500_0000).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let b = (size ^ a.rotate_left(29)).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    out[..8].copy_from_slice(&a.to_le_bytes());
    out[8..].copy_from_slice(&b.to_le_bytes());
    out
}

/// The slice a subrequest was made for, if it is one.
pub(super) fn of_subrequest(session: &Session) -> Option<SliceOf> {
    session
        .subrequest_ctx
        .as_ref()?
        .user_ctx()?
        .downcast_ref::<SliceOf>()
        .copied()
}

/// Makes a slice's subrequest a plain GET of the slice: what the client asked of the object is
/// answered from the slices, and a slice is stored as the origin sends it.
pub(super) fn plain_get(req: &mut RequestHeader) {
    req.set_method(Method::GET);
    for f in [
        RANGE,
        IF_RANGE,
        IF_NONE_MATCH,
        IF_MODIFIED_SINCE,
        IF_MATCH,
        IF_UNMODIFIED_SINCE,
        ACCEPT_ENCODING,
    ] {
        req.remove_header(&f);
    }
}

/// The object's length a stored (or just fetched) slice carries, if it is a slice.
fn total_of(header: &ResponseHeader) -> Option<u64> {
    if header.status != 200 {
        return None;
    }
    header.headers.get(TOTAL)?.to_str().ok()?.parse().ok()
}

/// The first byte a request's `Range` asks for, when it names one (`bytes=N-` or `bytes=N-M`).
fn range_start(req: &RequestHeader) -> Option<u64> {
    let v = req.headers.get(RANGE)?.to_str().ok()?;
    let spec = v.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    spec.split_once('-')?.0.trim().parse().ok()
}

/// A slice's response: read whole from a tier, or as its subrequest gives it.
struct Fetched {
    header: ResponseHeader,
    /// The header was the whole response.
    ended: bool,
    /// Served from a tier without a request to the origin.
    hit: bool,
    source: Source,
}

enum Source {
    /// A fresh stored slice, read whole; taken by the first read.
    Stored(Option<Bytes>),
    /// A subrequest's output.
    Subrequest {
        tasks: mpsc::Receiver<HttpTask>,
        /// Kept so the subrequest does not see its input closed.
        _input: mpsc::Sender<HttpTask>,
    },
}

impl Fetched {
    /// The next piece of the body; `None` at its end.
    async fn next(&mut self) -> Result<Option<Bytes>> {
        if self.ended {
            return Ok(None);
        }
        let tasks = match &mut self.source {
            Source::Stored(body) => {
                self.ended = true;
                return Ok(body.take().filter(|b| !b.is_empty()));
            }
            Source::Subrequest { tasks, .. } => tasks,
        };
        loop {
            match tasks.recv().await {
                Some(HttpTask::Body(data, end)) => {
                    self.ended = end;
                    match data {
                        Some(d) if !d.is_empty() => return Ok(Some(d)),
                        _ if end => return Ok(None),
                        _ => continue,
                    }
                }
                Some(HttpTask::Failed(e)) => return Err(e),
                Some(HttpTask::Done) | None => {
                    self.ended = true;
                    return Ok(None);
                }
                Some(_) => continue,
            }
        }
    }

    /// Whether this slice is of the same version of the object as `first`.
    fn same_version_as(&self, first: &ResponseHeader) -> bool {
        [ETAG, LAST_MODIFIED, TOTAL]
            .iter()
            .all(|f| self.header.headers.get(f) == first.headers.get(f))
    }

    /// Whether the slice was a hit here.
    fn hit(&self) -> bool {
        self.hit
            || self
                .header
                .headers
                .get(CACHE_STATUS)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit(',').next())
                .is_some_and(|mine| mine.contains("; hit"))
    }
}

impl EdgeProxy {
    /// Answers a GET or HEAD of a sliced rule from its slices. `Ok(false)` when subrequests
    /// cannot be made here: the request then takes the ordinary path, unsliced.
    pub(super) async fn serve_sliced(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        size: u64,
        key: CacheKey,
    ) -> Result<bool> {
        let Some(spawner) = session.subrequest_spawner.take() else {
            return Ok(false);
        };
        let served = self.sliced(session, ctx, size, &key, &spawner).await;
        session.subrequest_spawner = Some(spawner);
        served.map(|()| true)
    }

    async fn sliced(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        size: u64,
        key: &CacheKey,
        spawner: &SubrequestSpawner,
    ) -> Result<()> {
        let req = session.req_header().clone();
        let head = req.method == Method::HEAD;
        let asked_from = range_start(&req).unwrap_or(0);
        let mut index = asked_from / size;
        let mut slice = self
            .slice_of(session, ctx, key, spawner, SliceOf { index, size })
            .await?;
        let Some(total) = total_of(&slice.header) else {
            return self.forward(session, ctx, slice, head).await;
        };
        // The whole object's header, as a `200` would have it, then the client's range of it.
        let mut resp = slice.header.clone();
        resp.remove_header(&TOTAL);
        resp.remove_header(CACHE_STATUS);
        resp.insert_header(CONTENT_LENGTH, total)?;
        // At most one range (Pingora counts "fewer than" its limit).
        let (from, to) = match range_header_filter(&req, &mut resp, Some(2)) {
            RangeType::Single(r) => (r.start as u64, r.end as u64),
            RangeType::Invalid => {
                drop(slice);
                return self.unsatisfiable(session, ctx, total).await;
            }
            // A multipart range is answered whole (RFC 9110 lets a server ignore `Range`).
            RangeType::None | RangeType::Multi(_) => {
                resp.set_status(200)?;
                resp.remove_header(&CONTENT_RANGE);
                resp.insert_header(CONTENT_LENGTH, total)?;
                (0, total)
            }
        };
        if from / size != index {
            // A suffix range (`bytes=-N`) starts where only the length says.
            let probe = slice.header.clone();
            index = from / size;
            slice = self
                .slice_of(session, ctx, key, spawner, SliceOf { index, size })
                .await?;
            if total_of(&slice.header).is_none() || !slice.same_version_as(&probe) {
                return Error::e_explain(ErrorType::InternalError, "slice changed under a range");
            }
        }
        let first = slice.header.clone();
        let cs = CacheStatus {
            hit: slice.hit(),
            fwd: (!slice.hit()).then_some(Forward::Miss),
            detail: Some("sliced"),
            ..Default::default()
        };
        self.finish_header(ctx, &mut resp, cs)?;
        let empty = head || from == to;
        session.write_response_header(Box::new(resp), empty).await?;
        if empty {
            return Ok(());
        }
        let mut pos = from;
        loop {
            let start = index * size;
            let end = (start + size).min(total);
            let mut at = start;
            while let Some(data) = slice.next().await? {
                let len = data.len() as u64;
                let (lo, hi) = (pos.max(at), (at + len).min(to));
                if lo < hi {
                    let piece = data.slice((lo - at) as usize..(hi - at) as usize);
                    pos = hi;
                    session.write_response_body(Some(piece), pos == to).await?;
                }
                at += len;
            }
            if at != end {
                return Error::e_explain(ErrorType::ReadError, "a slice ended short");
            }
            if pos >= to {
                return Ok(());
            }
            index += 1;
            slice = self
                .slice_of(session, ctx, key, spawner, SliceOf { index, size })
                .await?;
            if total_of(&slice.header).is_none() || !slice.same_version_as(&first) {
                // Two versions of the object: none of the URL's slices can be trusted together.
                if let Some(primary) = ctx.primary {
                    self.state.storage.invalidate_primary(&primary);
                }
                return Error::e_explain(
                    ErrorType::InternalError,
                    "the object changed between its slices",
                );
            }
        }
    }

    /// Slice `slice` of the request's object: read whole from a tier when a fresh copy no purge
    /// covers is there (as a fast hit is, with no subrequest), else by a subrequest.
    async fn slice_of(
        &self,
        session: &mut Session,
        ctx: &RequestCtx,
        key: &CacheKey,
        spawner: &SubrequestSpawner,
        slice: SliceOf,
    ) -> Result<Fetched> {
        match self.stored_slice(session, ctx, key, slice).await {
            Some(stored) => Ok(stored),
            None => fetch(session, spawner, slice).await,
        }
    }

    async fn stored_slice(
        &self,
        session: &Session,
        ctx: &RequestCtx,
        key: &CacheKey,
        slice: SliceOf,
    ) -> Option<Fetched> {
        let s = &self.state;
        if !s.readiness.is_ready() {
            return None;
        }
        let mut key = key.clone();
        key.set_variance_key(slice.variance());
        let (object, tier) = s.storage.whole_object(&key.combined_bin()).await?;
        let stored = object.decoded()?;
        if stored.fresh_until < SystemTime::now() || !self.unpurged(session, ctx, stored) {
            return None;
        }
        let header = stored.header.header().ok()?;
        s.storage.count_hit(tier);
        Some(Fetched {
            header,
            ended: false,
            hit: true,
            source: Source::Stored(Some(object.body.clone())),
        })
    }

    /// Cache-Status, the rule's response headers and this node's fields on the way out.
    fn finish_header(
        &self,
        ctx: &mut RequestCtx,
        resp: &mut ResponseHeader,
        cs: CacheStatus,
    ) -> Result<()> {
        strip_internal(resp);
        resp.remove_header(&TOTAL);
        let field = cs.render(&self.state.node_id);
        resp.insert_header(CACHE_STATUS, &field)?;
        if let Some(rule) = ctx.rule() {
            logic::apply_response(&rule.logic.response_headers, resp)?;
        }
        ctx.status = Some(cs);
        ctx.status_field = Some(field);
        Ok(())
    }

    /// Answers with what a slice's subrequest answered, when it is not a slice (an origin that
    /// ignores `Range`, an error): header and body as they come.
    async fn forward(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        mut fetched: Fetched,
        head: bool,
    ) -> Result<()> {
        let mut resp = fetched.header.clone();
        let cs = CacheStatus {
            fwd: Some(Forward::Miss),
            detail: Some("not-sliced"),
            ..Default::default()
        };
        self.finish_header(ctx, &mut resp, cs)?;
        let empty = head || fetched.ended;
        session.write_response_header(Box::new(resp), empty).await?;
        if empty {
            return Ok(());
        }
        while let Some(data) = fetched.next().await? {
            session.write_response_body(Some(data), false).await?;
        }
        session.write_response_body(None, true).await?;
        Ok(())
    }

    /// `416` with the object's length, for a range that starts past its end.
    async fn unsatisfiable(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        total: u64,
    ) -> Result<()> {
        let mut resp = ResponseHeader::build(416, Some(3))?;
        resp.insert_header(CONTENT_RANGE, format!("bytes */{total}"))?;
        resp.insert_header(CONTENT_LENGTH, 0)?;
        let cs = CacheStatus {
            hit: true,
            detail: Some("sliced"),
            ..Default::default()
        };
        self.finish_header(ctx, &mut resp, cs)?;
        session.write_response_header(Box::new(resp), true).await
    }
}

/// Starts the subrequest for `slice` and waits for its response header.
async fn fetch(
    session: &mut Session,
    spawner: &SubrequestSpawner,
    slice: SliceOf,
) -> Result<Fetched> {
    let ctx = SubrequestCtx::builder()
        .user_ctx(Box::new(slice))
        .body_mode(BodyMode::NoBody)
        .build();
    // A subrequest reads its request as HTTP/1 text: an HTTP/2 request is written as HTTP/1.1,
    // with its `:authority` as the Host, for the copy, and left as it was.
    let req = session.req_header_mut();
    let h2 = req.version == http::Version::HTTP_2;
    let had_host = req.headers.contains_key(HOST);
    if h2 {
        req.set_version(http::Version::HTTP_11);
        if let (false, Some(authority)) = (had_host, req.uri.authority().cloned()) {
            req.insert_header(HOST, authority.as_str())?;
        }
    }
    let (sub, handle) = spawner.create_subrequest(session.as_downstream(), ctx);
    if h2 {
        let req = session.req_header_mut();
        req.set_version(http::Version::HTTP_2);
        if !had_host {
            req.remove_header(&HOST);
        }
    }
    tokio::spawn(sub.run());
    let mut tasks = handle.rx;
    loop {
        match tasks.recv().await {
            Some(HttpTask::Header(header, ended)) => {
                return Ok(Fetched {
                    header: *header,
                    ended,
                    hit: false,
                    source: Source::Subrequest {
                        tasks,
                        _input: handle.tx,
                    },
                })
            }
            Some(HttpTask::Failed(e)) => return Err(e),
            None => return Error::e_explain(ErrorType::ReadError, "slice subrequest ended"),
            Some(_) => continue,
        }
    }
}
