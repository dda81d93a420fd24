//! A stale copy served when the origin failed after Pingora had taken its answer as the new
//! response (its header came, then the connection broke before the body): Pingora offers stale
//! only for failures before that point, and would answer with an error although the stored
//! copy may still stand in. Whole objects only; a larger one is left to the error.

use std::time::{Duration, SystemTime};

use super::*;

/// Why a stored copy stands in for a failed origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StandIn {
    /// The origin answered with an error, or broke off after answering (`stale-if-error`).
    IfError,
    /// Nothing came back (`cache.stale_if_unreachable`).
    Unreachable,
}

impl StandIn {
    /// Its `Cache-Status` `detail`.
    pub(super) fn detail(self) -> &'static str {
        match self {
            StandIn::IfError => STALE_IF_ERROR,
            StandIn::Unreachable => ORIGIN_UNREACHABLE,
        }
    }
}

impl EdgeProxy {
    /// Why a stored response (`header`, fresh until `fresh_until`) may stand in after the
    /// origin failed with `e`; `None` when it may not.
    /// Only origin-side failures: a broken client must not be fed stale data. An error status
    /// gets the window `stale-if-error` (the response's or the rule's) gives; a broken exchange
    /// the wider `stale_if_unreachable`, called unreachable if nothing came back.
    pub(super) fn stand_in(
        &self,
        ctx: &RequestCtx,
        header: &ResponseHeader,
        fresh_until: SystemTime,
        e: &Error,
    ) -> Option<StandIn> {
        if e.esource() != &ErrorSource::Upstream {
            return None;
        }
        let rule = ctx.rule();
        let (window, why) = match e.etype() {
            ErrorType::HTTPStatus(_) => (freshness::stale_if_error(header, rule), StandIn::IfError),
            _ => (
                freshness::stale_if_unreachable(
                    header,
                    rule,
                    ctx.live.config.cache.stale_if_unreachable,
                ),
                if ctx.origin_status.is_some() {
                    StandIn::IfError
                } else {
                    StandIn::Unreachable
                },
            ),
        };
        let stale_for = SystemTime::now()
            .duration_since(fresh_until)
            .unwrap_or_default();
        (window > 0 && stale_for <= Duration::from_secs(u64::from(window))).then_some(why)
    }

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
        if !ctx.stale_found || session.response_written().is_some() || !s.readiness.is_ready() {
            return Ok(false);
        }
        let Some((object, _)) = self.whole_stored(session, ctx).await else {
            return Ok(false);
        };
        let Some(stored) = object.decoded() else {
            return Ok(false);
        };
        if !self.unpurged(session, ctx, stored) {
            return Ok(false);
        }
        let now = SystemTime::now();
        let header = stored.header.header()?;
        let Some(why) = self.stand_in(ctx, &header, stored.fresh_until, e) else {
            return Ok(false);
        };
        let cs = CacheStatus {
            fwd: Some(Forward::Stale),
            fwd_status: ctx.origin_status,
            detail: Some(why.detail()),
            ..Default::default()
        };
        self.write_stored(session, ctx, &object, cs, now).await?;
        if why == StandIn::Unreachable {
            s.metrics.stale_unreachable.inc();
        }
        Ok(true)
    }
}
