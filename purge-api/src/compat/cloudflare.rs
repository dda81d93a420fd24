//! Cloudflare's `POST /client/v4/zones/{zone}/purge_cache`, with a token as `Authorization:
//! Bearer` (an API token) or `X-Auth-Key` (the older API key; `X-Auth-Email` is not checked).
//! The body names `files` (URLs, or `{"url": ...}` objects whose `headers` are not needed: every
//! variant is purged), `tags`, `hosts`, `prefixes` or `purge_everything`; the zone is taken as
//! given. Answers in Cloudflare's envelope: `{"success", "errors": [{"code", "message"}],
//! "messages", "result": {"id"}}`.

use edge_config::purge::Purge;
use http::{Method, Request, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::json;

use super::caller;
use crate::api::{self, Reply};
use crate::service::SharedRef;
use crate::submit::{self, Refusal};

/// The path's shape, for the error that names it.
const ENDPOINT: &str = "POST /client/v4/zones/{zone}/purge_cache";

/// What a request body may name, as Cloudflare spells it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    #[serde(default)]
    files: Vec<File>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    prefixes: Vec<String>,
    #[serde(default)]
    purge_everything: bool,
}

/// A URL, alone or with the request headers of one cache key.
#[derive(Deserialize)]
#[serde(untagged)]
enum File {
    Url(String),
    WithHeaders {
        url: String,
        #[allow(dead_code)] // every variant of a URL is purged: the headers add nothing
        #[serde(default)]
        headers: serde_json::Map<String, serde_json::Value>,
    },
}

/// Cloudflare's error codes this endpoint uses (the envelope's `errors[].code`).
fn code(status: StatusCode, empty: bool) -> u32 {
    match status {
        StatusCode::UNAUTHORIZED => 10000,
        StatusCode::BAD_REQUEST if empty => 1012,
        StatusCode::BAD_REQUEST => 1013,
        StatusCode::FORBIDDEN => 1015,
        StatusCode::PAYLOAD_TOO_LARGE => 1016,
        StatusCode::TOO_MANY_REQUESTS => 971,
        StatusCode::NOT_FOUND => 7003,
        StatusCode::METHOD_NOT_ALLOWED => 10405,
        _ => 1017,
    }
}

fn failure(status: StatusCode, message: impl Into<String>) -> Reply {
    let message = message.into();
    let empty = message.starts_with("the purge names nothing");
    let message = if empty {
        "Request must contain one of \"purge_everything\", \"files\", \"tags\", \"hosts\" or \"prefixes\"".to_string()
    } else {
        message
    };
    api::json_reply(
        status,
        &json!({
            "success": false,
            "errors": [{ "code": code(status, empty), "message": message }],
            "messages": [],
            "result": null,
        }),
    )
}

fn refused(r: Refusal) -> Reply {
    let mut reply = failure(r.status, r.message.clone());
    r.retry_after(reply.headers_mut());
    reply
}

/// Whether `path` is this entry point's.
pub fn owns(path: &str) -> bool {
    path.starts_with("/client/v4/")
}

/// Answers a request to `/client/v4/...`.
pub async fn handle(shared: &SharedRef, req: Request<Incoming>) -> Reply {
    let zone = req
        .uri()
        .path()
        .strip_prefix("/client/v4/zones/")
        .and_then(|rest| rest.strip_suffix("/purge_cache"))
        .filter(|z| !z.is_empty() && !z.contains('/'));
    if zone.is_none() {
        return failure(
            StatusCode::NOT_FOUND,
            format!("no such endpoint; purge-api answers {ENDPOINT}"),
        );
    }
    if req.method() != Method::POST {
        return failure(StatusCode::METHOD_NOT_ALLOWED, format!("use {ENDPOINT}"));
    }
    let Some(caller) = caller(shared, req.headers(), "x-auth-key") else {
        return failure(
            StatusCode::UNAUTHORIZED,
            "Authentication error: give a purge-api token as Authorization: Bearer <token> or X-Auth-Key",
        );
    };
    if let Err(r) = submit::admit(shared, caller) {
        return refused(r);
    }
    let soft = api::soft_asked(req.headers());
    let body = match api::read_body(req, shared.config.limits.max_body).await {
        Ok(b) => b,
        Err(api::Refusal(status, message)) => return failure(status, message),
    };
    let purge = match purge_of(&body) {
        Ok(p) => Purge { soft, ..p },
        Err(message) => return failure(StatusCode::BAD_REQUEST, message),
    };
    match submit::log(shared, caller, &purge).await {
        Ok(seq) => api::json_reply(
            StatusCode::OK,
            &json!({
                "success": true,
                "errors": [],
                "messages": [],
                "result": { "id": shared.purge_id(seq) },
            }),
        ),
        Err(r) => refused(r),
    }
}

/// The purge a Cloudflare body asks for. Prefixes are `host/path` as ours are; a scheme in front
/// is dropped, as Cloudflare's own examples sometimes carry one.
fn purge_of(body: &[u8]) -> Result<Purge, String> {
    let expected = "expected a JSON object like {\"files\": [\"https://www.example.com/app.css\"]}";
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(format!("malformed purge: {expected}"));
    }
    let b: Body =
        serde_json::from_slice(body).map_err(|e| format!("malformed purge: {e}; {expected}"))?;
    let urls = b
        .files
        .into_iter()
        .map(|f| match f {
            File::Url(url) | File::WithHeaders { url, .. } => url,
        })
        .collect();
    let prefixes = b
        .prefixes
        .into_iter()
        .map(|p| {
            p.strip_prefix("https://")
                .or_else(|| p.strip_prefix("http://"))
                .map_or_else(|| p.clone(), str::to_string)
        })
        .collect();
    Ok(Purge {
        urls,
        prefixes,
        hosts: b.hosts,
        tags: b.tags,
        all: b.purge_everything,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_becomes_one_purge() {
        let p = purge_of(
            br#"{"files": ["https://a.example/x.css", {"url": "http://a.example/y", "headers": {"CF-IPCountry": "US"}}],
                 "prefixes": ["https://b.example/assets/", "c.example/img/"], "hosts": ["d.example"], "tags": ["t"]}"#,
        )
        .unwrap();
        assert_eq!(p.urls, ["https://a.example/x.css", "http://a.example/y"]);
        assert_eq!(p.prefixes, ["b.example/assets/", "c.example/img/"]);
        assert_eq!(
            (p.hosts, p.tags, p.all),
            (vec!["d.example".to_string()], vec!["t".to_string()], false)
        );
        assert!(purge_of(br#"{"purge_everything": true}"#).unwrap().all);
    }

    #[test]
    fn what_cloudflare_would_refuse_is_refused() {
        for bad in [
            &b"files=a"[..],
            br#"{"files": "x"}"#,
            br#"{"urls": ["x"]}"#,
            b"[]",
        ] {
            assert!(purge_of(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
