//! May a response be stored, and how long is it fresh? RFC 9111 §3 and §4.2, with the targeted
//! fields of RFC 9213 (`CDN-Cache-Control`) and `Surrogate-Control` taking precedence over
//! `Cache-Control`, and the rule's overrides.

use std::time::{Duration, SystemTime};

use edge_config::edge::{Rule, DEFAULT_NEGATIVE_TTL};
use http::header::{HeaderName, AGE, DATE, ETAG, EXPIRES, LAST_MODIFIED, SET_COOKIE, VARY};
use httpdate::HttpDate;
use pingora::http::ResponseHeader;

use super::cache_control::Directives;

/// `CDN-Cache-Control` (RFC 9213).
pub const CDN_CACHE_CONTROL: HeaderName = HeaderName::from_static("cdn-cache-control");
/// `Surrogate-Control` (Edge Architecture Specification).
pub const SURROGATE_CONTROL: HeaderName = HeaderName::from_static("surrogate-control");

/// Heuristic freshness is this share of the time since `Last-Modified` (RFC 9111 §4.2.2)…
const HEURISTIC_FRACTION: u32 = 10;
/// …capped here, so an old file still revalidates daily.
const HEURISTIC_CAP: Duration = Duration::from_secs(86_400);

/// What the cache stores about a response's freshness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// When the response was generated, by our clock: receipt time less its `Age`.
    pub created: SystemTime,
    /// Until when it is fresh.
    pub fresh_until: SystemTime,
    /// stale-while-revalidate window, seconds.
    pub stale_while_revalidate: u32,
    /// stale-if-error window, seconds.
    pub stale_if_error: u32,
}

/// Why a response is not stored. The text appears in `Cache-Status` `detail` and metrics.
pub type NotStored = &'static str;

/// Decides whether `resp` may be stored, for a request that did (`authorization`) or did not
/// carry `Authorization`, under `rule` (if one matched), at `now`.
pub fn decide(
    resp: &ResponseHeader,
    authorization: bool,
    rule: Option<&Rule>,
    now: SystemTime,
) -> Result<Freshness, NotStored> {
    let status = resp.status.as_u16();
    // 206 and 304 are never stored as such (Pingora fetches whole bodies); 5xx only when the
    // rule opts in, and then only for the freshness the response states itself.
    let error = (500..600).contains(&status);
    let stored_error = error && rule.is_some_and(|r| r.cache_errors);
    if !((200..500).contains(&status) || stored_error) || status == 206 || status == 304 {
        return Err("status");
    }
    let control = controlling_cache_control(resp);
    let control = control.as_ref();
    if control.is_some_and(Directives::no_store) {
        return Err("no-store");
    }
    if control.is_some_and(Directives::private) {
        return Err("private");
    }
    if resp.headers.get_all(VARY).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.split(',').any(|f| f.trim() == "*"))
    }) {
        return Err("vary-star");
    }
    // RFC 9111 §3.5: only public, s-maxage or must-revalidate make these shareable.
    if authorization && !control.is_some_and(|c| c.allow_caching_authorized_req()) {
        return Err("authorization");
    }
    if resp.headers.contains_key(SET_COOKIE)
        && !rule.is_some_and(|r| r.allow_set_cookie)
        && !cookie_stripped_by_directive(control)
    {
        return Err("set-cookie");
    }

    // Rule TTLs apply to the statuses a CDN caches by default, never to 404s and other errors:
    // an asset rule with `ttl: 365d` must not pin a missing file for a year.
    let rule_applies = matches!(status, 200 | 203 | 204 | 300 | 301 | 308 | 410);
    let negative = matches!(status, 404 | 405 | 414);
    let explicit = explicit_lifetime(control, resp, now);
    if error && explicit.is_none() {
        return Err("no-freshness");
    }
    let lifetime = rule
        .and_then(|r| r.ttl)
        .filter(|_| rule_applies)
        .or(explicit)
        .or_else(|| rule.and_then(|r| r.default_ttl).filter(|_| rule_applies))
        .or_else(|| {
            (rule_applies || control.is_some_and(Directives::public))
                .then(|| heuristic_lifetime(resp, now))
                .flatten()
        });
    let lifetime = if negative {
        // Negative caching: absorb a burst of requests for a missing file, whatever the
        // origin says, but never hide a file deployed later for longer than negative_ttl.
        let cap = rule.map_or(DEFAULT_NEGATIVE_TTL, |r| r.negative_ttl);
        if cap.is_zero() {
            return Err("negative-ttl");
        }
        lifetime.map_or(cap, |l| l.min(cap))
    } else {
        lifetime.ok_or("no-freshness")?
    };
    let validators = resp.headers.contains_key(ETAG) || resp.headers.contains_key(LAST_MODIFIED);
    if lifetime.is_zero() && !validators {
        // Stale on arrival and no way to revalidate: storing it saves nothing.
        return Err("no-freshness");
    }

    let age = age(resp);
    // Never before the epoch, which the stored meta cannot encode: an age that large is stale
    // for any lifetime a response can state.
    let created = now
        .checked_sub(age)
        .filter(|t| *t >= SystemTime::UNIX_EPOCH)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let fresh_until = if lifetime.is_zero() {
        // Strictly before now, so the first reuse revalidates.
        created
            .checked_sub(Duration::from_secs(1))
            .unwrap_or(created)
    } else {
        created.checked_add(lifetime).unwrap_or(created)
    };
    if !validators && fresh_until <= now {
        // Stale on arrival (its Age used its lifetime up) and no way to revalidate it.
        return Err("stale-on-arrival");
    }
    let (swr, sie) = stale_windows(control, rule);
    Ok(Freshness {
        created,
        fresh_until,
        stale_while_revalidate: swr,
        stale_if_error: sie,
    })
}

/// `CDN-Cache-Control`, else `Surrogate-Control`, else `Cache-Control`: a targeted field, when
/// present, replaces `Cache-Control` for this cache (RFC 9213 §2.1).
pub fn controlling_cache_control(resp: &ResponseHeader) -> Option<Directives<'_>> {
    Directives::of(&resp.headers, &CDN_CACHE_CONTROL)
        .or_else(|| Directives::of(&resp.headers, &SURROGATE_CONTROL))
        .or_else(|| Directives::of_response(resp))
}

/// Headers the stored copy must not keep: `Age` (recomputed on every hit) and any field that
/// `private="…"` or `no-cache="…"` names. The fields targeted at this cache stay stored, because
/// a revalidation decides again on the stored header merged with the 304; the proxy strips them
/// from every response on the way out.
pub fn prepare_for_store(resp: &mut ResponseHeader) {
    let withheld = Directives::of_response(resp).map_or_else(Vec::new, |d| d.withheld_fields());
    for name in withheld {
        resp.remove_header(&name);
    }
    resp.remove_header(&AGE);
}

/// The stored response updated with the fields of a 304 (RFC 9111 §3.2, §4.3.4), except those
/// that describe the stored body itself, which the 304 has just confirmed (its length, coding,
/// range, digest and validator), and the framing of the 304 message.
pub fn merge_not_modified(stored: &ResponseHeader, fields: &http::HeaderMap) -> ResponseHeader {
    use http::header::{
        CONNECTION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE, ETAG, TE, TRAILER,
        TRANSFER_ENCODING, UPGRADE,
    };
    let mut out = stored.clone();
    let kept = [
        CONNECTION,
        CONTENT_ENCODING,
        CONTENT_LENGTH,
        CONTENT_RANGE,
        ETAG,
        TE,
        TRAILER,
        TRANSFER_ENCODING,
        UPGRADE,
    ];
    for name in fields.keys() {
        // A cookie set by the 304 is for the client who asked (the proxy forwards it), never
        // for the stored copy that everyone gets.
        if kept.contains(name)
            || matches!(name.as_str(), "keep-alive" | "content-md5" | "set-cookie")
        {
            continue;
        }
        out.remove_header(name);
        for v in fields.get_all(name) {
            // Names and values came from a parsed header map, so they are valid here too.
            let _ = out.append_header(name.clone(), v.clone());
        }
    }
    out
}

fn cookie_stripped_by_directive(control: Option<&Directives<'_>>) -> bool {
    control.is_some_and(|c| c.withheld_fields().contains(&SET_COOKIE))
}

fn explicit_lifetime(
    control: Option<&Directives<'_>>,
    resp: &ResponseHeader,
    now: SystemTime,
) -> Option<Duration> {
    if let Some(d) = control.and_then(|c| c.fresh_duration()) {
        return Some(d);
    }
    let mut expires = resp.headers.get_all(EXPIRES).iter();
    let first = expires.next()?;
    // An invalid or repeated Expires means "already expired" (RFC 9111 §5.3).
    if expires.next().is_some() {
        return Some(Duration::ZERO);
    }
    let Some(expires) = http_date(first) else {
        return Some(Duration::ZERO);
    };
    // Freshness is Expires - Date; without a valid Date, the time we received it (§4.2.1).
    let date = resp.headers.get(DATE).and_then(http_date).unwrap_or(now);
    Some(expires.duration_since(date).unwrap_or(Duration::ZERO))
}

fn heuristic_lifetime(resp: &ResponseHeader, now: SystemTime) -> Option<Duration> {
    let modified = resp.headers.get(LAST_MODIFIED).and_then(http_date)?;
    let date = resp.headers.get(DATE).and_then(http_date).unwrap_or(now);
    let since = date.duration_since(modified).ok()?;
    Some((since / HEURISTIC_FRACTION).min(HEURISTIC_CAP))
}

/// The origin's `Age`. The apparent age from `Date` is not used: an origin with a fast clock
/// would expire everything early, and Varnish makes the same choice.
fn age(resp: &ResponseHeader) -> Duration {
    Duration::from_secs(age_value(&resp.headers).unwrap_or(0))
}

/// The largest delta-seconds a cache keeps (RFC 9111 §1.2.2): anything larger, however many
/// digits it has, is this.
pub const MAX_DELTA_SECONDS: u64 = 1 << 31;

/// The `Age` of a message as RFC 9111 §5.1 reads it: the first member of the field (of the
/// first field, when there are several), if it is a non-negative integer; `None` when absent or
/// invalid (`1.5`, `-1`, `abc`), which a cache ignores. Saturates at [`MAX_DELTA_SECONDS`].
pub fn age_value(headers: &http::HeaderMap) -> Option<u64> {
    let first = headers.get(AGE)?.to_str().ok()?.split(',').next()?.trim();
    if first.is_empty() || !first.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        first
            .parse::<u64>()
            .map_or(MAX_DELTA_SECONDS, |v| v.min(MAX_DELTA_SECONDS)),
    )
}

/// The stale-if-error window to store with a response: how long past its freshness a stale
/// copy may stand in when the origin cannot be reached at all (RFC 9111 §4.2.4 allows it when
/// disconnected). The response's own `stale-if-error`, else the rule's, else `default`; none
/// when the response forbids stale (`no-cache`, `must-revalidate`, `proxy-revalidate`,
/// `s-maxage`). An origin that answers with an error gets only [`decide`]'s window.
pub fn stale_if_unreachable(resp: &ResponseHeader, rule: Option<&Rule>, default: Duration) -> u32 {
    let control = controlling_cache_control(resp);
    if control.as_ref().is_some_and(Directives::no_cache) {
        return 0;
    }
    let window = control
        .and_then(|c| c.stale_if_error())
        .or_else(|| rule.and_then(|r| r.stale_if_error))
        .unwrap_or(default);
    u32::try_from(window.as_secs()).unwrap_or(u32::MAX)
}

/// The stale-if-error window [`decide`] gives `resp`: what an origin error allows.
pub fn stale_if_error(resp: &ResponseHeader, rule: Option<&Rule>) -> u32 {
    stale_windows(controlling_cache_control(resp).as_ref(), rule).1
}

fn stale_windows(control: Option<&Directives<'_>>, rule: Option<&Rule>) -> (u32, u32) {
    let secs = |d: Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
    // must-revalidate, proxy-revalidate and s-maxage forbid stale (the directives say
    // Some(0)); so does no-cache, which asks for validation on every reuse.
    if control.is_some_and(Directives::no_cache) {
        return (0, 0);
    }
    let swr = control
        .and_then(|c| c.stale_while_revalidate())
        .or_else(|| rule.and_then(|r| r.stale_while_revalidate))
        .map_or(0, secs);
    let sie = control
        .and_then(|c| c.stale_if_error())
        .or_else(|| rule.and_then(|r| r.stale_if_error))
        .map_or(0, secs);
    (swr, sie)
}

fn http_date(v: &http::HeaderValue) -> Option<SystemTime> {
    v.to_str()
        .ok()?
        .parse::<HttpDate>()
        .ok()
        .map(SystemTime::from)
}

#[cfg(test)]
mod tests;
