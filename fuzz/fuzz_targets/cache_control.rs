//! Arbitrary caching headers and statuses through the storage decision: never a panic, and
//! never a stored 5xx, `no-store` or `private` response.
#![no_main]

use std::time::{Duration, SystemTime};

use edge::http::freshness::decide;
use libfuzzer_sys::fuzz_target;
use pingora::http::ResponseHeader;

const FIELDS: &[&str] = &[
    "cache-control",
    "cdn-cache-control",
    "surrogate-control",
    "age",
    "date",
    "expires",
    "last-modified",
    "etag",
    "vary",
    "set-cookie",
];

fuzz_target!(|data: &[u8]| {
    let Some((head, rest)) = data.split_at_checked(3) else {
        return;
    };
    let status = 100 + u16::from_be_bytes([head[0], head[1]]) % 500;
    let Ok(mut resp) = ResponseHeader::build(status, None) else {
        return;
    };
    for (i, value) in rest.split(|b| *b == b'\n').enumerate().take(16) {
        let name = FIELDS[i % FIELDS.len()];
        let Ok(v) = http::HeaderValue::from_bytes(value) else {
            continue;
        };
        let _ = resp.append_header(name, v);
    }
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    if let Ok(f) = decide(&resp, head[2] & 1 == 1, None, now) {
        assert!(status < 500, "a {status} was stored");
        assert!(
            f.fresh_until
                >= f.created
                    .checked_sub(Duration::from_secs(1))
                    .unwrap_or(f.created)
        );
    }
});
