//! Cache tags (surrogate keys): what an origin says an object belongs to, for purging by tag.
//!
//! Origins send `Surrogate-Key` (space-separated, Fastly's form) or `Cache-Tag` (comma-separated,
//! Cloudflare's form); a rule may add its own. The stored header carries the union as one
//! `Surrogate-Key` field, so the tags travel with the object through both tiers and restarts;
//! clients see neither field.

use http::header::HeaderName;
use pingora::http::ResponseHeader;

/// `Surrogate-Key`.
pub const SURROGATE_KEY: HeaderName = HeaderName::from_static("surrogate-key");
/// `Cache-Tag`.
pub const CACHE_TAG: HeaderName = HeaderName::from_static("cache-tag");

// Longest tag kept; longer ones are ignored (Fastly's limit is 1 KiB as well), and a purge
// naming one is refused.
use edge_config::purge::MAX_TAG;

fn push(out: &mut Vec<String>, tag: &[u8]) {
    let Ok(tag) = std::str::from_utf8(tag) else {
        return;
    };
    let tag = tag.trim();
    if !tag.is_empty()
        && tag.len() <= MAX_TAG
        && tag.bytes().all(|b| b.is_ascii_graphic())
        && !out.iter().any(|t| t == tag)
    {
        out.push(tag.to_string());
    }
}

/// The tags of a response header (in either field) plus `extra`, each once, in order.
pub fn of_response(header: &ResponseHeader, extra: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    // Byte-wise, so one tag with non-ASCII bytes costs only itself, not its whole field.
    for v in header.headers.get_all(SURROGATE_KEY) {
        v.as_bytes()
            .split(|b| b.is_ascii_whitespace())
            .for_each(|t| push(&mut out, t));
    }
    for v in header.headers.get_all(CACHE_TAG) {
        v.as_bytes()
            .split(|b| *b == b',')
            .for_each(|t| push(&mut out, t));
    }
    extra.iter().for_each(|t| push(&mut out, t.as_bytes()));
    out
}

/// Rewrites a header about to be stored so that it carries every tag in one `Surrogate-Key`.
pub fn prepare_for_store(header: &mut ResponseHeader, extra: &[String]) {
    let tags = of_response(header, extra);
    header.remove_header(&SURROGATE_KEY);
    header.remove_header(&CACHE_TAG);
    if !tags.is_empty() {
        // Tags are visible ASCII, so the joined value is a valid field value.
        let _ = header.insert_header(SURROGATE_KEY, tags.join(" "));
    }
}

/// The stored tags of an object, as [`prepare_for_store`] left them: one space-separated value.
pub fn stored(headers: &http::HeaderMap) -> &str {
    headers
        .get(SURROGATE_KEY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Removes the tag fields from a response on its way to the client.
pub fn strip(header: &mut ResponseHeader) {
    header.remove_header(&SURROGATE_KEY);
    header.remove_header(&CACHE_TAG);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(fields: &[(&str, &str)]) -> ResponseHeader {
        let mut r = ResponseHeader::build(200, None).unwrap();
        for (k, v) in fields {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn reads_both_fields_and_rule_tags_once_each() {
        let r = resp(&[
            ("Surrogate-Key", "a  b\tc"),
            ("Surrogate-Key", "d"),
            ("Cache-Tag", "b, e ,,f"),
        ]);
        let tags = of_response(&r, &["g".to_string(), "a".to_string()]);
        assert_eq!(tags, ["a", "b", "c", "d", "e", "f", "g"]);
    }

    #[test]
    fn ignores_tags_that_are_too_long_or_not_visible_ascii() {
        let long = "x".repeat(MAX_TAG + 1);
        let r = resp(&[("Cache-Tag", &format!("{long},ok,caf\u{e9}"))]);
        assert_eq!(of_response(&r, &[]), ["ok"]);
    }

    #[test]
    fn stores_one_surrogate_key_field_with_the_union() {
        let mut r = resp(&[("Cache-Tag", "p,q"), ("Surrogate-Key", "q r")]);
        prepare_for_store(&mut r, &["rule".to_string()]);
        assert!(r.headers.get(CACHE_TAG).is_none());
        assert_eq!(r.headers.get_all(SURROGATE_KEY).iter().count(), 1);
        assert_eq!(r.headers.get(SURROGATE_KEY).unwrap(), "q r p rule");
        let mut none = resp(&[]);
        prepare_for_store(&mut none, &[]);
        assert!(none.headers.get(SURROGATE_KEY).is_none());
    }
}
