//! `Vary`: which request fields tell a stored response's variants apart, and a request's
//! variance against them.

use http::header::{ACCEPT_ENCODING, VARY};
use pingora::cache::key::HashBinary;
use pingora::cache::VarianceBuilder;
use pingora::http::{RequestHeader, ResponseHeader};

use super::encoding;

/// The field names a stored response varies on: lower-cased, sorted, without duplicates
/// (empty when it has no `Vary`). A stored object keeps them, so a hit does not parse `Vary`.
pub fn names(stored: &http::HeaderMap) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for v in stored.get_all(VARY) {
        let Ok(v) = v.to_str() else { continue };
        names.extend(
            v.split(',')
                .map(|n| n.trim().to_ascii_lowercase())
                .filter(|n| !n.is_empty()),
        );
    }
    names.sort();
    names.dedup();
    names
}

/// Whether the fields of a 304 name a `Vary` other than the stored response's: the stored copy
/// was kept for requests the origin now tells apart. A 304 without `Vary` changes nothing.
pub fn changed_by(stored: &ResponseHeader, not_modified: &http::HeaderMap) -> bool {
    not_modified.contains_key(VARY) && names(not_modified) != names(&stored.headers)
}

/// The variance of a request against the `names` of [`names`]: the request's values of those
/// fields, hashed (`None` when there are none).
pub fn variance(names: &[String], req: &RequestHeader) -> Option<HashBinary> {
    if names.is_empty() {
        return None;
    }
    let mut builder = VarianceBuilder::new();
    for name in names {
        if name == "accept-encoding" {
            // Keyed on the normalised value, which is also what the origin was asked with.
            let ae = encoding::normalize(
                req.headers
                    .get_all(ACCEPT_ENCODING)
                    .iter()
                    .map(|v| v.as_bytes()),
            );
            builder.add_value(name, ae.as_bytes());
            continue;
        }
        let lines = req.headers.get_all(name.as_str());
        builder.add_owned_value(name, normalized(name, lines.iter().map(|v| v.as_bytes())));
    }
    builder.finalize()
}

/// A varied field's value as its variance keys it: all its lines as one list, each member
/// trimmed of the whitespace around it, so requests that differ only in how they wrote the
/// list are one variant (RFC 9110 §5.3, §5.6.1). `Accept-Language` members are lower-cased
/// (language tags are case-insensitive) and sorted (members of equal weight have no order, and
/// a weight is part of its member).
fn normalized<'a>(name: &str, lines: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
    let members = lines
        .flat_map(|line| line.split(|b| *b == b','))
        .map(|m| m.trim_ascii())
        .filter(|m| !m.is_empty());
    if name != "accept-language" {
        let mut out = Vec::new();
        for m in members {
            if !out.is_empty() {
                out.push(b',');
            }
            out.extend_from_slice(m);
        }
        return out;
    }
    let mut tags: Vec<Vec<u8>> = members
        .map(|m| {
            m.iter()
                .filter(|b| !matches!(b, b' ' | b'\t'))
                .map(u8::to_ascii_lowercase)
                .collect()
        })
        .collect();
    tags.sort_unstable();
    tags.join(&b',')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(fields: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        for (n, v) in fields {
            r.append_header(n.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn list_values_that_differ_only_in_spelling_are_one_variant() {
        let names = vec!["accept-language".to_string(), "x-list".to_string()];
        let v = |fields: &[(&str, &str)]| variance(&names, &req(fields)).unwrap();
        let base = v(&[("accept-language", "en-US, fr;q=0.5"), ("x-list", "a, b")]);
        assert_eq!(
            base,
            v(&[("Accept-Language", "fr; q=0.5 ,EN-us"), ("x-list", "a,b")])
        );
        assert_eq!(
            base,
            v(&[
                ("accept-language", "en-US"),
                ("accept-language", "fr;q=0.5"),
                ("x-list", "a"),
                ("x-list", " b ")
            ])
        );
        // Other fields keep their case and order; different languages stay different.
        assert_ne!(
            base,
            v(&[("accept-language", "en-US, fr;q=0.5"), ("x-list", "b, a")])
        );
        assert_ne!(
            base,
            v(&[("accept-language", "en-US, fr;q=0.5"), ("x-list", "A, b")])
        );
        assert_ne!(
            base,
            v(&[("accept-language", "en-GB, fr;q=0.5"), ("x-list", "a, b")])
        );
        assert_ne!(base, v(&[("x-list", "a, b")]));
    }

    #[test]
    fn a_304_changes_the_variance_only_when_it_names_other_fields() {
        let mut stored = ResponseHeader::build(200, None).unwrap();
        stored.append_header("vary", "Accept-Encoding").unwrap();
        let mut fields = http::HeaderMap::new();
        assert!(!changed_by(&stored, &fields), "no Vary: nothing said");
        fields.insert("vary", "accept-encoding".parse().unwrap());
        assert!(!changed_by(&stored, &fields), "the same names");
        fields.insert("vary", "Accept-Encoding, Accept-Language".parse().unwrap());
        assert!(changed_by(&stored, &fields));
    }

    #[test]
    fn names_are_normalised_and_variance_follows_the_values() {
        let mut stored = http::HeaderMap::new();
        stored.append(VARY, "Accept-Language, accept-encoding".parse().unwrap());
        stored.append(VARY, "ACCEPT-LANGUAGE".parse().unwrap());
        let names = names(&stored);
        assert_eq!(names, ["accept-encoding", "accept-language"]);
        assert!(variance(&[], &req(&[])).is_none());
        let en = variance(&names, &req(&[("accept-language", "en")]));
        assert_ne!(en, variance(&names, &req(&[("accept-language", "fr")])));
        // Accept-Encoding is keyed on its normalised form.
        assert_eq!(
            variance(
                &names,
                &req(&[("accept-language", "en"), ("accept-encoding", "gzip, br")])
            ),
            variance(
                &names,
                &req(&[
                    ("accept-language", "en"),
                    ("accept-encoding", "br;q=1, gzip")
                ])
            )
        );
        // Repeated fields count as their comma-joined value.
        assert_eq!(
            variance(
                &names,
                &req(&[("accept-language", "en"), ("accept-language", "fr")])
            ),
            variance(&names, &req(&[("accept-language", "en,fr")]))
        );
        assert_ne!(en, variance(&names, &req(&[])));
    }
}
