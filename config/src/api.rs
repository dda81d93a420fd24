//! The HTTP plumbing both binaries' JSON endpoints share: the edge's admin listener and the
//! purge API answer the same way (JSON bodies, `{"error": "..."}` on every refusal, bearer
//! tokens, bodies read up to a cap). Framework-free: each server turns the [`Reply`] into its own
//! response type.

use std::fmt::Display;

use http::{header, HeaderValue, Response, StatusCode};
use serde::Serialize;

/// A whole response, body in memory.
pub type Reply = Response<Vec<u8>>;

/// A response of `content_type` with its length.
pub fn reply(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Reply {
    let len = body.len();
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    r
}

/// `body` as JSON.
pub fn json(status: StatusCode, body: &impl Serialize) -> Reply {
    // Serializing the crate's own types and `serde_json::Value` cannot fail.
    reply(
        status,
        "application/json",
        serde_json::to_vec(body).unwrap_or_default(),
    )
}

/// A refusal: `{"error": msg}`.
pub fn error(status: StatusCode, msg: impl Display) -> Reply {
    json(status, &serde_json::json!({ "error": msg.to_string() }))
}

/// `401` for a missing or wrong bearer token, with the challenge RFC 6750 asks for.
pub fn unauthorized(token_name: &str) -> Reply {
    let mut r = error(
        StatusCode::UNAUTHORIZED,
        format!("missing or wrong bearer token (Authorization: Bearer <{token_name}>)"),
    );
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

/// A request body too large for its endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("request body over {max} bytes")]
pub struct TooLarge {
    /// The cap.
    pub max: u64,
}

impl TooLarge {
    /// The `413` refusal.
    pub fn reply(self) -> Reply {
        error(StatusCode::PAYLOAD_TOO_LARGE, self)
    }
}

/// A request body read chunk by chunk, refused as soon as it passes its cap.
#[derive(Debug)]
pub struct CappedBody {
    max: u64,
    bytes: Vec<u8>,
}

impl CappedBody {
    /// An empty body that takes at most `max` bytes.
    pub fn new(max: u64) -> Self {
        CappedBody {
            max,
            bytes: Vec::new(),
        }
    }

    /// Refuses a body whose declared `Content-Length` is over the cap, before reading it.
    pub fn check_declared(&self, headers: &http::HeaderMap) -> Result<(), TooLarge> {
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        match declared {
            Some(n) if n > self.max => Err(TooLarge { max: self.max }),
            _ => Ok(()),
        }
    }

    /// Adds a chunk, or refuses the body it would take past the cap.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), TooLarge> {
        if (self.bytes.len() + chunk.len()) as u64 > self.max {
            return Err(TooLarge { max: self.max });
        }
        self.bytes.extend_from_slice(chunk);
        Ok(())
    }

    /// The body read.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_json_with_their_length() {
        let r = error(StatusCode::BAD_REQUEST, "no");
        assert_eq!(r.status(), 400);
        assert_eq!(r.body(), br#"{"error":"no"}"#);
        assert_eq!(r.headers()[header::CONTENT_LENGTH], "14");
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        let u = unauthorized("token");
        assert_eq!(u.status(), 401);
        assert_eq!(u.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }

    #[test]
    fn a_body_is_refused_past_its_cap_declared_or_read() {
        let mut b = CappedBody::new(5);
        let mut h = http::HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(6));
        assert_eq!(b.check_declared(&h), Err(TooLarge { max: 5 }));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(5));
        assert_eq!(b.check_declared(&h), Ok(()));
        assert_eq!(b.push(b"abc"), Ok(()));
        assert_eq!(b.push(b"def"), Err(TooLarge { max: 5 }));
        assert_eq!(b.push(b"de"), Ok(()));
        assert_eq!(b.into_bytes(), b"abcde");
    }
}
