//! Signed URLs (DESIGN.md, "Edge logic"): a URL carries its expiry (Unix seconds) and an
//! HMAC-SHA256 of its path and query up to `&<signature parameter>=`, base64url without
//! padding. Any key of the rule's key file verifies; both parameters are then left out of the
//! cache key and of the request to the origin.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use edge_config::edge::logic::SignedUrl;
use ring::hmac;

/// Why a signed URL was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No signature or expiry, or a signature no key makes.
    BadSignature,
    /// Signed, but past its expiry.
    Expired,
}

/// The signature of `signed` (a path and query) under `key`.
pub fn sign(key: &[u8], signed: &str) -> String {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), signed.as_bytes());
    URL_SAFE_NO_PAD.encode(tag.as_ref())
}

/// `path_and_query` (the URL as requested) with an expiry at `expires` and its signature under
/// `key` appended.
pub fn sign_url(
    key: &[u8],
    path_and_query: &str,
    expires: u64,
    expires_param: &str,
    signature_param: &str,
) -> String {
    let sep = if path_and_query.contains('?') {
        '&'
    } else {
        '?'
    };
    let signed = format!("{path_and_query}{sep}{expires_param}={expires}");
    let sig = sign(key, &signed);
    format!("{signed}&{signature_param}={sig}")
}

/// Checks the request's `path_and_query` at `now` (Unix seconds); on success, the path and
/// query without the two parameters, for the cache key and the origin.
pub fn check(s: &SignedUrl, path_and_query: &str, now: u64) -> Result<String, Refused> {
    let marker = format!("&{}=", s.signature_param);
    let at = path_and_query.rfind(&marker).ok_or(Refused::BadSignature)?;
    let (signed, rest) = path_and_query.split_at(at);
    let sig = &rest[marker.len()..];
    if sig.contains('&') {
        // The signature closes the URL: anything after it would be unsigned.
        return Err(Refused::BadSignature);
    }
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| Refused::BadSignature)?;
    let verified = s.keys.iter().any(|k| {
        hmac::verify(
            &hmac::Key::new(hmac::HMAC_SHA256, k),
            signed.as_bytes(),
            &sig,
        )
        .is_ok()
    });
    if !verified {
        return Err(Refused::BadSignature);
    }
    let (path, query) = signed.split_once('?').ok_or(Refused::BadSignature)?;
    let mut expires = None;
    let mut kept = Vec::new();
    for pair in query.split('&') {
        let name = pair.split('=').next().unwrap_or("");
        if name == s.expires_param {
            expires = pair
                .split_once('=')
                .and_then(|(_, v)| v.parse::<u64>().ok());
        } else if name != s.signature_param {
            kept.push(pair);
        }
    }
    match expires {
        None => Err(Refused::BadSignature),
        Some(e) if e < now => Err(Refused::Expired),
        Some(_) if kept.is_empty() => Ok(path.to_string()),
        Some(_) => Ok(format!("{path}?{}", kept.join("&"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(keys: &[&str]) -> SignedUrl {
        SignedUrl {
            keys: keys.iter().map(|k| k.as_bytes().to_vec()).collect(),
            expires_param: "exp".into(),
            signature_param: "sig".into(),
        }
    }

    #[test]
    fn the_design_example_signs_the_path_and_query_up_to_sig() {
        let url = sign_url(b"k1", "/downloads/a.zip", 1_767_225_600, "exp", "sig");
        let (signed, sig) = url.split_once("&sig=").unwrap();
        assert_eq!(signed, "/downloads/a.zip?exp=1767225600");
        assert_eq!(sig, sign(b"k1", "/downloads/a.zip?exp=1767225600"));
        assert!(!sig.contains('=') && !sig.contains('+') && !sig.contains('/'));
        assert_eq!(sig.len(), 43, "32 bytes, base64url without padding");
    }

    #[test]
    fn any_key_verifies_and_the_parameters_go() {
        let url = sign_url(b"old", "/d/a.zip?v=2", 2_000, "exp", "sig");
        assert_eq!(
            check(&rule(&["new", "old"]), &url, 1_000),
            Ok("/d/a.zip?v=2".into())
        );
        let bare = sign_url(b"new", "/d/b.zip", 2_000, "exp", "sig");
        assert_eq!(check(&rule(&["new"]), &bare, 2_000), Ok("/d/b.zip".into()));
    }

    #[test]
    fn missing_wrong_tampered_and_expired_are_refused() {
        let r = rule(&["k"]);
        let url = sign_url(b"k", "/d/a.zip", 2_000, "exp", "sig");
        assert_eq!(check(&r, &url, 2_001), Err(Refused::Expired));
        assert_eq!(check(&r, "/d/a.zip", 0), Err(Refused::BadSignature));
        assert_eq!(
            check(&r, "/d/a.zip?exp=2000", 0),
            Err(Refused::BadSignature)
        );
        let other = sign_url(b"not-k", "/d/a.zip", 2_000, "exp", "sig");
        assert_eq!(check(&r, &other, 0), Err(Refused::BadSignature));
        let tampered = url.replace("/d/a.zip", "/d/b.zip");
        assert_eq!(check(&r, &tampered, 0), Err(Refused::BadSignature));
        let longer = url.replace("exp=2000", "exp=9999");
        assert_eq!(check(&r, &longer, 0), Err(Refused::BadSignature));
        assert_eq!(
            check(&r, &format!("{url}&x=1"), 0),
            Err(Refused::BadSignature)
        );
        assert_eq!(
            check(&r, "/d/a.zip?exp=2000&sig=!!", 0),
            Err(Refused::BadSignature)
        );
    }
}
