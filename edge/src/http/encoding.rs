//! Content codings: the client's `Accept-Encoding` reduced to the codings the edge knows, so
//! responses that vary on it are stored as a few variants rather than one per browser's
//! spelling of the header, and the origin is asked with exactly the value the variant is keyed
//! on.

use http::header::{CONTENT_ENCODING, VARY};
use pingora::http::ResponseHeader;

const BR: u8 = 1;
const GZIP: u8 = 2;
const ZSTD: u8 = 4;

/// The normalised value for each subset of {br, gzip, zstd}; "" is identity only.
const SETS: [&str; 8] = [
    "",
    "br",
    "gzip",
    "br, gzip",
    "zstd",
    "br, zstd",
    "gzip, zstd",
    "br, gzip, zstd",
];

/// The normalised `Accept-Encoding` of a request: the codings among br, gzip and zstd that the
/// client accepts (`q` above 0, or through `*`), in a fixed order. "" means identity only.
pub fn normalize<'a>(values: impl Iterator<Item = &'a [u8]>) -> &'static str {
    let (mut yes, mut no, mut any) = (0u8, 0u8, false);
    for v in values {
        let Ok(v) = std::str::from_utf8(v) else {
            continue;
        };
        for item in v.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let refused = parts.any(|p| {
                let p = p.trim();
                p.strip_prefix("q=")
                    .or_else(|| p.strip_prefix("Q="))
                    .is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0))
            });
            let bit = match coding.as_str() {
                "br" => BR,
                "gzip" | "x-gzip" => GZIP,
                "zstd" => ZSTD,
                "*" => {
                    any = !refused;
                    continue;
                }
                _ => continue,
            };
            if refused {
                no |= bit;
            } else {
                yes |= bit;
            }
        }
    }
    if any {
        yes |= (BR | GZIP | ZSTD) & !no;
    }
    SETS[usize::from(yes & !no)]
}

/// Whether the response's body is encoded (anything but identity).
fn is_encoded(resp: &ResponseHeader) -> bool {
    resp.headers
        .get(CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !v.trim().is_empty() && !v.trim().eq_ignore_ascii_case("identity"))
}

/// Whether `Vary` names `Accept-Encoding` (or `*`).
fn varies_on_encoding(resp: &ResponseHeader) -> bool {
    resp.headers.get_all(VARY).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',').any(|n| {
                let n = n.trim();
                n == "*" || n.eq_ignore_ascii_case("accept-encoding")
            })
        })
    })
}

/// An encoded response that does not say it varies on `Accept-Encoding` would be served to
/// clients that cannot decode it: add the `Vary` the origin left out.
pub fn ensure_vary(resp: &mut ResponseHeader) -> pingora::Result<()> {
    if is_encoded(resp) && !varies_on_encoding(resp) {
        resp.append_header(VARY, "Accept-Encoding")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(v: &str) -> &'static str {
        normalize(std::iter::once(v.as_bytes()))
    }

    #[test]
    fn reduces_to_known_codings_in_a_fixed_order() {
        assert_eq!(n("gzip, deflate, br"), "br, gzip");
        assert_eq!(n("br;q=1.0, gzip;q=0.8, *;q=0.1"), "br, gzip, zstd");
        assert_eq!(n("GZIP"), "gzip");
        assert_eq!(n("gzip;q=0"), "");
        assert_eq!(n("*, br;q=0"), "gzip, zstd");
        assert_eq!(n("identity"), "");
        assert_eq!(n(""), "");
        assert_eq!(normalize(std::iter::empty()), "");
        assert_eq!(
            normalize(["gzip".as_bytes(), "br".as_bytes()].into_iter()),
            "br, gzip"
        );
    }

    #[test]
    fn adds_vary_to_encoded_responses_only() {
        let mut r = ResponseHeader::build(200, None).unwrap();
        ensure_vary(&mut r).unwrap();
        assert!(r.headers.get(VARY).is_none());
        r.insert_header(CONTENT_ENCODING, "gzip").unwrap();
        ensure_vary(&mut r).unwrap();
        assert_eq!(r.headers.get(VARY).unwrap(), "Accept-Encoding");
        ensure_vary(&mut r).unwrap();
        assert_eq!(r.headers.get_all(VARY).iter().count(), 1);
    }
}
