//! Any text given as either binary's configuration is accepted or refused with problems that
//! name a line inside the text; never a panic.
#![no_main]

use edge_config::edge::EdgeConfig;
use edge_config::purge_api::PurgeApiConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // YAML breaks lines at CR, LF and CRLF (a lone CR is a line to an editor too).
    let lines = 1 + text
        .replace("\r\n", "\n")
        .bytes()
        .filter(|b| matches!(b, b'\n' | b'\r'))
        .count() as u64;
    if let Err(problems) = EdgeConfig::from_yaml(text) {
        assert!(!problems.is_empty());
        assert!(problems.iter().all(|p| p.line <= lines), "{problems:?}");
    }
    if let Err(problems) = PurgeApiConfig::from_yaml(text) {
        assert!(!problems.is_empty());
    }
});
