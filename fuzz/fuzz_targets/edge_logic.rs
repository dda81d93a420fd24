//! Arbitrary input through a rule's edge logic as a request meets it: redirect templates
//! (parsed, then rendered with any placeholders), CIDR blocks and the trusted-proxy walk,
//! origin paths and signed-URL checks. None may panic; a parsed template renders its text.
#![no_main]

use edge::proxy::signed;
use edge_config::edge::logic::{Cidr, ClientIp, OriginPath, Placeholders, SignedUrl, Template};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(4, '\u{0}');
    let (a, b, c, d) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    if let Ok(t) = Template::parse(a) {
        let out = t.render(&Placeholders {
            host: b,
            path: c,
            rest: d,
            query: (!d.is_empty()).then_some(d),
        });
        if !a.contains(['{', '}']) {
            assert_eq!(out, a);
        }
    }
    if let Ok(cidr) = Cidr::parse(a) {
        if let Ok(ip) = b.parse() {
            let _ = cidr.contains(ip);
            let trust = ClientIp {
                trusted: vec![cidr],
                header: http::HeaderName::from_static("x-forwarded-for"),
            };
            let mut headers = http::HeaderMap::new();
            if let Ok(v) = http::HeaderValue::from_str(c) {
                headers.insert("x-forwarded-for", v);
            }
            let _ = trust.client(ip, &headers);
        }
    }
    let op = OriginPath {
        strip_prefix: Some(format!("/{b}")),
        add_prefix: (!c.is_empty()).then(|| format!("/{c}")),
    };
    assert!(op.apply(a).starts_with('/'));
    let rule = SignedUrl {
        keys: vec![b.as_bytes().to_vec()],
        expires_param: "exp".into(),
        signature_param: "sig".into(),
    };
    let _ = signed::check(&rule, a, 1_000);
    let url = signed::sign_url(b.as_bytes(), &format!("/{c}"), 2_000, "exp", "sig");
    assert!(signed::check(&rule, &url, 1_000).is_ok(), "{url}");
});
