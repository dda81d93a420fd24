//! Varnish-style `PURGE <url>`, as CMS plugins send it to their caches: the request target is
//! the URL (absolute, or a path with its `Host`), from a client in `compat.varnish_purge_from`
//! (there is no token). `X-Purge-Method: regex` with a pattern that is a literal path followed by
//! `.*` (what the plugins send to clear a section, or `/.*` for the whole site) is a prefix
//! purge; any other pattern is answered 501: the purge log has no regular expressions.
//! Answers `200 {"status": "ok", "id": ...}`, or `{"error"}` as `/v1/` does.

use std::net::SocketAddr;

use edge_config::purge::Purge;
use http::{header, Request, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use crate::api::{self, Reply};
use crate::service::SharedRef;
use crate::submit::{self, Caller};

/// The method this entry point answers.
pub const METHOD: &str = "PURGE";

/// What a `PURGE` asks for: a URL, or (regex) a prefix.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    Url(String),
    Prefix(String),
}

/// The target of a `PURGE` with request target `target`, `Host` header `host` and
/// `X-Purge-Method` `method`.
fn target_of(
    target: &str,
    host: Option<&str>,
    method: Option<&str>,
) -> Result<Target, (StatusCode, String)> {
    let (host, path) = match target.split_once("://") {
        Some((_, rest)) => match rest.split_once('/') {
            Some((h, p)) => (h.to_string(), format!("/{p}")),
            None => (rest.to_string(), "/".to_string()),
        },
        None => {
            let host = host.filter(|h| !h.is_empty()).ok_or((
                StatusCode::BAD_REQUEST,
                "PURGE of a path needs a Host header (or an absolute URL as the request target)"
                    .to_string(),
            ))?;
            (host.to_string(), target.to_string())
        }
    };
    // The port a client reached the cache on is not part of what is stored.
    let host = host
        .rsplit_once(':')
        .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host.as_str(), |(h, _)| h)
        .to_string();
    match method.map(str::trim) {
        None | Some("") | Some("default") | Some("exact") => {
            Ok(Target::Url(format!("http://{host}{path}")))
        }
        Some(m) if m.eq_ignore_ascii_case("regex") => {
            let literal = path
                .strip_suffix(".*")
                .filter(|p| !p.contains(['*', '?', '[', '(', '|', '+', '$', '^', '{', '\\']));
            match literal {
                Some(prefix) => Ok(Target::Prefix(format!("{host}{prefix}"))),
                None => Err((
                    StatusCode::NOT_IMPLEMENTED,
                    format!("regex purges are not supported beyond a literal path followed by `.*` (got `{path}`); purge a prefix, a host or tags"),
                )),
            }
        }
        Some(m) => Err((
            StatusCode::BAD_REQUEST,
            format!("X-Purge-Method `{m}`: use `default` or `regex`"),
        )),
    }
}

/// Answers a `PURGE` from `peer`.
pub async fn handle(shared: &SharedRef, req: Request<Incoming>, peer: SocketAddr) -> Reply {
    let allowed = &shared.config.compat.varnish_purge_from;
    if allowed.is_empty() {
        return api::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "PURGE is not enabled: list the networks that may send it in compat.varnish_purge_from",
        );
    }
    if !allowed.iter().any(|net| net.contains(peer.ip())) {
        return api::error(
            StatusCode::FORBIDDEN,
            format!("{} is not in compat.varnish_purge_from", peer.ip()),
        );
    }
    let caller = Caller::Network;
    if let Err(r) = submit::admit(shared, caller) {
        return api::refused(r);
    }
    let text = |name: header::HeaderName| req.headers().get(name).and_then(|v| v.to_str().ok());
    let target = target_of(
        &req.uri().to_string(),
        text(header::HOST),
        req.headers()
            .get("x-purge-method")
            .and_then(|v| v.to_str().ok()),
    );
    let soft = api::soft_asked(req.headers());
    let purge = match target {
        Ok(Target::Url(url)) => Purge {
            urls: vec![url],
            soft,
            ..Default::default()
        },
        Ok(Target::Prefix(prefix)) => Purge {
            prefixes: vec![prefix],
            soft,
            ..Default::default()
        },
        Err((status, message)) => return api::error(status, message),
    };
    match submit::log(shared, caller, &purge).await {
        Ok(seq) => api::json_reply(
            StatusCode::OK,
            &json!({ "status": "ok", "id": shared.purge_id(seq) }),
        ),
        Err(r) => api::refused(r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_purge_names_a_url_or_a_prefix() {
        let url = |s: &str| Ok(Target::Url(s.to_string()));
        assert_eq!(
            target_of("/a.css?v=1", Some("www.example.com"), None),
            url("http://www.example.com/a.css?v=1")
        );
        assert_eq!(
            target_of("http://www.example.com:8080/a", None, None),
            url("http://www.example.com/a")
        );
        assert_eq!(
            target_of("https://www.example.com", None, Some("default")),
            url("http://www.example.com/")
        );
        assert_eq!(
            target_of("/blog/.*", Some("www.example.com"), Some("regex")),
            Ok(Target::Prefix("www.example.com/blog/".into()))
        );
        assert_eq!(
            target_of("/.*", Some("w.example"), Some("regex")),
            Ok(Target::Prefix("w.example/".into()))
        );
    }

    #[test]
    fn what_the_log_cannot_say_is_refused() {
        assert_eq!(
            target_of("/a", None, None).unwrap_err().0,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            target_of("/a/(b|c).*", Some("h"), Some("regex"))
                .unwrap_err()
                .0,
            StatusCode::NOT_IMPLEMENTED
        );
        assert_eq!(
            target_of("/a\\.css", Some("h"), Some("regex"))
                .unwrap_err()
                .0,
            StatusCode::NOT_IMPLEMENTED
        );
        assert_eq!(
            target_of("/a", Some("h"), Some("ban")).unwrap_err().0,
            StatusCode::BAD_REQUEST
        );
    }
}
