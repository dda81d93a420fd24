//! When this node stored a response: the time purges are compared with.
//!
//! Pingora's `created` is the response's age-adjusted birth (RFC 9111 §4.2.3), which an origin or
//! a parent cache moves into the past with `Age`; comparing it with a purge would make an object
//! fetched after the purge look older than it. The stamp is this node's own clock at the start
//! of the request that fetched the response, so a fill that began before a purge counts as older
//! than it. It travels in the stored header and is removed before the client.

use std::time::{SystemTime, UNIX_EPOCH};

use http::header::HeaderName;
use pingora::http::ResponseHeader;

/// The stored field. An origin that sends it has it replaced.
pub const STORED_AT: HeaderName = HeaderName::from_static("x-edge-stored-at");

/// Microseconds since the Unix epoch (0 before it).
pub fn micros(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros().min(u128::from(u64::MAX)) as u64)
}

/// Stamps a header about to be stored.
pub fn set(header: &mut ResponseHeader, fetch_started: SystemTime) {
    // A decimal integer is a valid field value.
    let _ = header.insert_header(STORED_AT, micros(fetch_started).to_string());
}

/// The stamp of a stored header; 0 for objects stored before stamps existed, which every purge
/// then covers.
pub fn of(headers: &http::HeaderMap) -> u64 {
    headers
        .get(STORED_AT)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Removes the stamp from a response on its way to the client.
pub fn strip(header: &mut ResponseHeader) {
    header.remove_header(&STORED_AT);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn round_trips_and_replaces_an_origin_value() {
        let mut r = ResponseHeader::build(200, None).unwrap();
        r.insert_header("X-Edge-Stored-At", "99999999999999999")
            .unwrap();
        let t = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        set(&mut r, t);
        assert_eq!(of(&r.headers), 1_700_000_000_123_456);
        strip(&mut r);
        assert_eq!(of(&r.headers), 0);
    }
}
