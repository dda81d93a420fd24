//! Arbitrary purge request bodies (the JSON purge-api and the edge admin both parse): refused
//! with an error or turned into targets within the item limit; never a panic.
#![no_main]

use edge_config::purge::Purge;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(purge) = serde_json::from_slice::<Purge>(data) else {
        return;
    };
    if let Ok(t) = purge.targets(100) {
        let items = t.urls.len() + t.prefixes.len() + t.hosts.len() + t.tags.len();
        assert!(items <= 100);
        assert!(t
            .urls
            .iter()
            .all(|u| !u.host.is_empty() && u.path.starts_with('/')));
    }
});
