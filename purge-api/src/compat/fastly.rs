//! Fastly's purge calls, with the token in `Fastly-Key` (or `Authorization: Bearer`) and
//! `Fastly-Soft-Purge: 1` making any of them soft:
//! - `POST /service/{id}/purge/{key}`: one surrogate key (a tag);
//! - `POST /service/{id}/purge`: the keys of a `Surrogate-Key` header (space-separated) or of
//!   `{"surrogate_keys": [...]}`, answered with each key's purge id;
//! - `POST /service/{id}/purge_all`: everything;
//! - `POST /purge/{host}/{path}`: one URL.
//!
//! The service id is taken as given. Answers as Fastly does: `{"status": "ok", "id": ...}`, or
//! `{"msg", "detail"}` for an error.

use std::collections::BTreeMap;

use edge_config::purge::Purge;
use http::{Method, Request, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::json;

use super::caller;
use crate::api::{self, Reply};
use crate::service::SharedRef;
use crate::submit::{self, Refusal};

/// What a request asks for, before its body is read.
#[derive(Debug, PartialEq, Eq)]
enum Call {
    /// One key, from the path.
    Key(String),
    /// Keys from the `Surrogate-Key` header or the body.
    Keys,
    /// Everything.
    All,
    /// One URL: `http://{host}/{path}`.
    Url(String),
}

/// The call a path names; `None` for a path that is not one of Fastly's purge calls.
fn call_of(path: &str, query: Option<&str>) -> Option<Call> {
    if let Some(rest) = path.strip_prefix("/service/") {
        let (service, what) = rest.split_once('/')?;
        if service.is_empty() {
            return None;
        }
        return match what {
            "purge" => Some(Call::Keys),
            "purge_all" => Some(Call::All),
            _ => {
                let key = what.strip_prefix("purge/")?;
                (!key.is_empty() && !key.contains('/')).then(|| Call::Key(key.to_string()))
            }
        };
    }
    let cached = path.strip_prefix("/purge/")?;
    let (host, _) = cached.split_once('/').unwrap_or((cached, ""));
    if host.is_empty() {
        return None;
    }
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    let rest = if cached.contains('/') {
        cached.to_string()
    } else {
        format!("{cached}/")
    };
    Some(Call::Url(format!("http://{rest}{query}")))
}

/// Whether `path` is this entry point's.
pub fn owns(path: &str) -> bool {
    path.starts_with("/service/") || path.starts_with("/purge/")
}

fn failure(status: StatusCode, msg: &str, detail: impl Into<String>) -> Reply {
    api::json_reply(status, &json!({ "msg": msg, "detail": detail.into() }))
}

fn refused(r: Refusal) -> Reply {
    let msg = match r.status {
        StatusCode::FORBIDDEN => "Not authorized to purge this",
        StatusCode::TOO_MANY_REQUESTS => "Too many requests",
        StatusCode::PAYLOAD_TOO_LARGE => "Request too large",
        StatusCode::BAD_REQUEST => "Bad request",
        _ => "Purge not accepted",
    };
    let mut reply = failure(r.status, msg, r.message.clone());
    r.retry_after(reply.headers_mut());
    reply
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysBody {
    surrogate_keys: Vec<String>,
}

/// Answers a request to `/service/...` or `/purge/...`.
pub async fn handle(shared: &SharedRef, req: Request<Incoming>) -> Reply {
    let Some(call) = call_of(req.uri().path(), req.uri().query()) else {
        return failure(
            StatusCode::NOT_FOUND,
            "Record not found",
            "purge-api answers POST /service/{id}/purge/{key}, /service/{id}/purge, /service/{id}/purge_all and /purge/{host}/{path}",
        );
    };
    if req.method() != Method::POST {
        return failure(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed",
            "use POST",
        );
    }
    let Some(caller) = caller(shared, req.headers(), "fastly-key") else {
        return failure(
            StatusCode::UNAUTHORIZED,
            "Provided credentials are missing or invalid",
            "give a purge-api token as Fastly-Key: <token>",
        );
    };
    if let Err(r) = submit::admit(shared, caller) {
        return refused(r);
    }
    let soft = api::soft_asked(req.headers());
    let header_keys: Vec<String> = req
        .headers()
        .get("surrogate-key")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split_ascii_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    let body = match api::read_body(req, shared.config.limits.max_body).await {
        Ok(b) => b,
        Err(api::Refusal(status, message)) => return failure(status, "Bad request", message),
    };
    let (purge, keys) = match call {
        Call::Key(key) => (
            Purge {
                tags: vec![key],
                ..Default::default()
            },
            None,
        ),
        Call::All => (
            Purge {
                all: true,
                ..Default::default()
            },
            None,
        ),
        Call::Url(url) => (
            Purge {
                urls: vec![url],
                ..Default::default()
            },
            None,
        ),
        Call::Keys => {
            let keys = if header_keys.is_empty() && !body.is_empty() {
                match serde_json::from_slice::<KeysBody>(&body) {
                    Ok(b) => b.surrogate_keys,
                    Err(e) => {
                        return failure(
                            StatusCode::BAD_REQUEST,
                            "Bad request",
                            format!("malformed body: {e}; expected {{\"surrogate_keys\": [\"key-1\", \"key-2\"]}} or a Surrogate-Key header"),
                        )
                    }
                }
            } else {
                header_keys
            };
            (
                Purge {
                    tags: keys.clone(),
                    ..Default::default()
                },
                Some(keys),
            )
        }
    };
    let purge = Purge { soft, ..purge };
    match submit::log(shared, caller, &purge).await {
        Ok(seq) => {
            let id = shared.purge_id(seq);
            match keys {
                // A batch answers each key with its purge: here one purge holds them all.
                Some(keys) => {
                    let ids: BTreeMap<String, String> =
                        keys.into_iter().map(|k| (k, id.clone())).collect();
                    api::json_reply(StatusCode::OK, &ids)
                }
                None => api::json_reply(StatusCode::OK, &json!({ "status": "ok", "id": id })),
            }
        }
        Err(r) => refused(r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_their_calls() {
        assert_eq!(
            call_of("/service/SU1Z0isxPaozGVKXdv0eY/purge/product-42", None),
            Some(Call::Key("product-42".into()))
        );
        assert_eq!(call_of("/service/abc/purge", None), Some(Call::Keys));
        assert_eq!(call_of("/service/abc/purge_all", None), Some(Call::All));
        assert_eq!(
            call_of("/purge/www.example.com/img/a.png", Some("v=2")),
            Some(Call::Url("http://www.example.com/img/a.png?v=2".into()))
        );
        assert_eq!(
            call_of("/purge/www.example.com", None),
            Some(Call::Url("http://www.example.com/".into()))
        );
        for other in [
            "/service//purge",
            "/service/abc/purge/",
            "/service/abc/purge/a/b",
            "/service/abc",
            "/purge/",
            "/service/abc/details",
        ] {
            assert_eq!(call_of(other, None), None, "{other}");
        }
    }
}
