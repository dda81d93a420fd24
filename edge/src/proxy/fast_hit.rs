//! Fresh hits of whole objects answered from `request_filter`: from the memory tier, or from
//! the disk tier when the object is small enough to read whole.
//!
//! Pingora's cache state machine (cache lock, predictor, lookup, hit filter, range and
//! conditional filters, its response header copy) cost about half of a 1 KiB memory hit's CPU
//! in the profiles (`benches/load/profile.sh`). The common hit needs none of it: a plain GET or
//! HEAD, no validators, no range, a fresh object (of any variant) that no purge covers. Those
//! are answered here with the same header, `Age` and `Cache-Status` as Pingora's hit path would
//! give; anything else returns `false` and takes the full path (the computed key is kept for it).
//! A stale disk object too big for the memory tier is read again by the full path: a second read
//! per revalidation, against every fresh small disk hit answered here for less CPU.

use std::time::SystemTime;

use http::header::{
    AGE, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, RANGE,
};

use super::cork::Cork;
use super::hit_header;
use super::*;
use crate::cache::{Decoded, StoredObject, Tier};
use crate::purge::Verdict;

/// Request fields that ask for more than a whole stored response.
const NEEDS_FULL_PATH: [http::HeaderName; 6] = [
    RANGE,
    IF_NONE_MATCH,
    IF_MODIFIED_SINCE,
    IF_MATCH,
    IF_UNMODIFIED_SINCE,
    IF_RANGE,
];

/// Whether a cacheable request (GET or HEAD) could be a fast hit at all.
pub(super) fn eligible(req: &RequestHeader) -> bool {
    !NEEDS_FULL_PATH.iter().any(|h| req.headers.contains_key(h))
}

impl EdgeProxy {
    /// The whole stored object the request would hit, of the variant its `Vary` fields select,
    /// with the tier that holds it; `None` when there is none held whole. Sets the request's
    /// primary key and keeps its cache key for the full path.
    pub(super) async fn whole_stored(
        &self,
        session: &Session,
        ctx: &mut RequestCtx,
    ) -> Option<(Arc<StoredObject>, Tier)> {
        let s = &self.state;
        let key = self.key(session, ctx);
        let primary = key.primary_bin();
        ctx.primary = Some(primary);
        // As Pingora's lookup: the primary slot holds an object without variants, or the first
        // variant stored; another variant is under the key with the request's variance.
        let mut object = s.storage.whole_object(&primary).await;
        if let Some(stored) = object.as_ref().and_then(|(o, _)| o.decoded()) {
            if let Some(stored_variance) = stored.variance {
                let wanted = vary::variance(&stored.vary, session.req_header());
                object = match wanted {
                    Some(v) if v == stored_variance => object,
                    Some(v) => {
                        let mut variant = key.clone();
                        variant.set_variance_key(v);
                        s.storage
                            .whole_object(&variant.combined_bin())
                            .await
                            .filter(|(o, _)| o.decoded().is_some_and(|d| d.variance == Some(v)))
                    }
                    None => None,
                };
            }
        }
        ctx.key = Some(key);
        object
    }

    /// Whether no purge covers the `stored` response of the request's URL.
    pub(super) fn unpurged(&self, session: &Session, ctx: &RequestCtx, stored: &Decoded) -> bool {
        let s = &self.state;
        if s.bans.is_empty() {
            return true;
        }
        let Some(primary) = ctx.primary else {
            return false;
        };
        let path = session.req_header().uri.path();
        let subject = Subject::of_decoded(&primary, &ctx.host, path, stored);
        matches!(s.bans.judge(&subject), Verdict::Keep)
    }

    /// Writes the stored `object` (from `tier`) as the whole response, with its `Age` and the
    /// `Cache-Status` `cs`, which gets the remaining freshness.
    pub(super) async fn write_stored(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        object: &StoredObject,
        mut cs: CacheStatus,
        now: SystemTime,
    ) -> Result<()> {
        let Some(stored) = object.decoded() else {
            return Error::e_explain(ErrorType::InternalError, "stored meta not decoded");
        };
        let s = &self.state;
        let mut header = hit_header::for_hit(&object.head, &stored.header, |header| {
            header.set_version(http::Version::HTTP_11);
            // As Pingora's range filter (and nginx): a whole 200 of known length may be asked
            // for in ranges later.
            let length = header.headers.get(http::header::CONTENT_LENGTH);
            if header.status == http::StatusCode::OK
                && length.is_some_and(|l| l.to_str().is_ok_and(|l| l.parse::<usize>().is_ok()))
            {
                header.insert_header(http::header::ACCEPT_RANGES, "bytes")?;
            }
            strip_internal(header);
            Ok(())
        })?;
        let age = now.duration_since(stored.epoch).unwrap_or_default();
        header.insert_header(AGE, age.as_secs())?;
        if let Some(rule) = ctx.rule() {
            super::logic::apply_response(&rule.logic.response_headers, &mut header)?;
        }
        cs.ttl = Some(match stored.fresh_until.duration_since(now) {
            Ok(d) => d.as_secs() as i64,
            Err(e) => -(e.duration().as_secs() as i64),
        });
        let field = cs.render(&s.node_id);
        header.insert_header(CACHE_STATUS, &field)?;
        ctx.status = Some(cs);
        ctx.status_field = Some(field);
        let mut body = object.body.clone();
        if let Some(page) = ctx.error_page(header.status.as_u16()) {
            super::logic::serve_page_in(&mut header, page)?;
            body = Bytes::copy_from_slice(&page.body);
        }
        let head_only = session.req_header().method == Method::HEAD;
        // A header that would go out alone, as a segment of its own, leaves with the body.
        let _cork = (!head_only)
            .then(|| Cork::around(session, &header, body.len()))
            .flatten();
        session
            .write_response_header(Box::new(header), head_only)
            .await?;
        if !head_only {
            session.write_response_body(Some(body), true).await?;
        }
        Ok(())
    }

    /// Answers a fresh hit of a whole object; `Ok(false)` when the request needs the full path.
    pub(super) async fn fresh_hit(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<bool> {
        let s = &self.state;
        if !s.readiness.is_ready() {
            return Ok(false);
        }
        let Some((object, tier)) = self.whole_stored(session, ctx).await else {
            return Ok(false);
        };
        let Some(stored) = object.decoded() else {
            return Ok(false);
        };
        let now = SystemTime::now();
        // As Pingora: fresh while `fresh_until` has not passed. An object without a length is
        // sent chunked by the full path.
        if stored.fresh_until < now
            || stored.header.get("content-length").is_none()
            || !self.unpurged(session, ctx, stored)
        {
            return Ok(false);
        }
        let cs = CacheStatus {
            hit: true,
            detail: Some(tier.label()),
            ..Default::default()
        };
        s.storage.count_hit(tier);
        self.write_stored(session, ctx, &object, cs, now).await?;
        Ok(true)
    }
}
