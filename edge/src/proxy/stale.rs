//! A stale copy served when the origin failed after Pingora had taken its answer as the new
//! response (its header came, then the connection broke before the body): Pingora offers stale
//! only for failures before that point, and would answer with an error although the stored
//! copy may still stand in. Whole objects only; a larger one is left to the error.

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use super::*;

impl EdgeProxy {
    /// Serves the stored copy after the origin failed with `e`, if one may stand in for it:
    /// nothing was written yet, the lookup had found it stale, no purge covers it, and its
    /// window allows (`stale-if-error` for an error status, `stale_if_unreachable` for a
    /// broken exchange). `Ok(true)` when it was written.
    pub(super) async fn stale_after_failure(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        e: &Error,
    ) -> Result<bool> {
        let s = &self.state;
        if !ctx.stale_found
            || e.esource() != &ErrorSource::Upstream
            || session.response_written().is_some()
            || !s.purge_ready.load(Ordering::Acquire)
        {
            return Ok(false);
        }
        let Some((object, _)) = self.whole_stored(session, ctx).await else {
            return Ok(false);
        };
        let Some(stored) = object.decoded() else {
            return Ok(false);
        };
        if !self.unpurged(session, ctx, &stored.header) {
            return Ok(false);
        }
        let rule = ctx.rule();
        let (window, detail) = match e.etype() {
            ErrorType::HTTPStatus(_) => (
                freshness::stale_if_error(&stored.header, rule),
                STALE_IF_ERROR,
            ),
            // A broken exchange: unreachable if nothing came back, an error if a header did.
            _ => (
                freshness::stale_if_unreachable(
                    &stored.header,
                    rule,
                    ctx.live.config.cache.stale_if_unreachable,
                ),
                if ctx.origin_status.is_some() {
                    STALE_IF_ERROR
                } else {
                    ORIGIN_UNREACHABLE
                },
            ),
        };
        let now = SystemTime::now();
        let stale_for = now.duration_since(stored.fresh_until).unwrap_or_default();
        if window == 0 || stale_for > Duration::from_secs(u64::from(window)) {
            return Ok(false);
        }
        let cs = CacheStatus {
            fwd: Some("stale"),
            fwd_status: ctx.origin_status,
            detail: Some(detail),
            ..Default::default()
        };
        self.write_stored(session, ctx, &object, cs, now).await?;
        if detail == ORIGIN_UNREACHABLE {
            s.metrics.stale_unreachable.inc();
        }
        Ok(true)
    }
}
