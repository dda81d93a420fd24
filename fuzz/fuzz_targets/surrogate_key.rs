//! Arbitrary `Surrogate-Key` and `Cache-Tag` fields: the tags read back from the stored field
//! are exactly the tags read from the origin's fields.
#![no_main]

use edge::http::tags::{of_response, prepare_for_store};
use libfuzzer_sys::fuzz_target;
use pingora::http::ResponseHeader;

fuzz_target!(|data: &[u8]| {
    let Ok(mut resp) = ResponseHeader::build(200, None) else {
        return;
    };
    for (i, value) in data.split(|b| *b == b'\n').enumerate().take(8) {
        let name = if i % 2 == 0 {
            "surrogate-key"
        } else {
            "cache-tag"
        };
        let Ok(v) = http::HeaderValue::from_bytes(value) else {
            continue;
        };
        let _ = resp.append_header(name, v);
    }
    let extra = vec!["rule-tag".to_string()];
    let tags = of_response(&resp, &extra);
    prepare_for_store(&mut resp, &extra);
    assert_eq!(of_response(&resp, &[]), tags);
});
