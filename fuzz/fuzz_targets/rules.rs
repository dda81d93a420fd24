//! Arbitrary request lines through what every request meets first: dot-segment normalisation
//! (which must be idempotent), the rule matcher of the reference configuration, and the key.
#![no_main]

use std::sync::OnceLock;

use edge::cache::key::cache_key;
use edge::http::hygiene::normalized_uri;
use edge::live::router::select_rule;
use edge_config::edge::EdgeConfig;
use libfuzzer_sys::fuzz_target;
use pingora::http::RequestHeader;

fn config() -> &'static EdgeConfig {
    static CONFIG: OnceLock<EdgeConfig> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let text = include_str!("../../config/examples/edge.yaml");
        EdgeConfig::from_yaml(text).expect("the reference configuration is valid")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&m, target)) = data.split_first() else {
        return;
    };
    let method = ["GET", "HEAD", "POST", "PURGE"][usize::from(m % 4)];
    let Ok(mut req) = RequestHeader::build(method, target, None) else {
        return;
    };
    if let Some(uri) = normalized_uri(&req.uri) {
        assert!(normalized_uri(&uri).is_none(), "not idempotent: {uri}");
        req.set_uri(uri);
    }
    let rules = &config().sites[0].rules;
    let spec = select_rule(rules, method, req.uri.path())
        .map_or_else(Default::default, |(_, r)| r.cache_key.clone());
    let _ = cache_key("https", "static.example.com", &req, &spec);
});
