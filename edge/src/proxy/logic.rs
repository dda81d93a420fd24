//! A rule's edge logic on the request path: access control first, then redirects, answered
//! here without the cache or the origin; header rules and the origin path on the way out and
//! in (DESIGN.md, "Edge logic").

use edge_config::edge::logic::{ErrorPage, HeaderRules, Logic, Placeholders};
use edge_config::edge::PathMatch;

use super::signed;
use super::*;
use crate::live::limiter::Limiter;
use crate::metrics::Refusal;

/// Applies header rules to a response on its way to the client (never to what is stored).
pub fn apply_response(rules: &HeaderRules, resp: &mut ResponseHeader) -> Result<()> {
    for name in &rules.remove {
        resp.remove_header(name);
    }
    for (name, value) in &rules.set {
        resp.insert_header(name.clone(), value.clone())?;
    }
    for (name, value) in &rules.add {
        resp.append_header(name.clone(), value.clone())?;
    }
    Ok(())
}

/// Applies header rules to the request sent to the origin.
pub(super) fn apply_request(rules: &HeaderRules, req: &mut RequestHeader) -> Result<()> {
    for name in &rules.remove {
        req.remove_header(name);
    }
    for (name, value) in &rules.set {
        req.insert_header(name.clone(), value.clone())?;
    }
    Ok(())
}

/// Makes `resp` the header of `page` in place of its own body: its type and length, and none
/// of the fields that described the replaced body.
pub(super) fn serve_page_in(resp: &mut ResponseHeader, page: &ErrorPage) -> Result<()> {
    for name in [
        http::header::CONTENT_ENCODING,
        http::header::CONTENT_RANGE,
        http::header::ETAG,
        http::header::LAST_MODIFIED,
        http::header::ACCEPT_RANGES,
        http::header::TRANSFER_ENCODING,
    ] {
        resp.remove_header(&name);
    }
    resp.insert_header(http::header::CONTENT_TYPE, page.content_type)?;
    resp.insert_header(http::header::CONTENT_LENGTH, page.body.len())?;
    Ok(())
}

/// The path after the rule's `path_prefix`; for other matches, the path without its `/`.
fn rest<'a>(path_match: Option<&PathMatch>, path: &'a str) -> &'a str {
    match path_match {
        Some(PathMatch::Prefix(p)) => path.strip_prefix(p.as_str()).unwrap_or(path),
        _ => path.strip_prefix('/').unwrap_or(path),
    }
}

/// Where a plain-HTTP request goes under `redirect_https`.
fn https_of(host: &str, path: &str, query: Option<&str>) -> String {
    match query {
        Some(q) => format!("https://{host}{path}?{q}"),
        None => format!("https://{host}{path}"),
    }
}

/// What the edge answers itself for a request under `logic`: a refusal, the rate limit's
/// 429, or a redirect.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Answer {
    /// Refused (403) for this reason.
    Refuse(Refusal),
    /// Over the rate limit: 429, to try again after this many seconds.
    Slow(u64),
    /// Sent elsewhere.
    Redirect(u16, String),
}

/// What a request brings to its rule's edge logic.
pub(super) struct Request<'a> {
    /// The client's address, if the connection has one.
    pub client: Option<std::net::IpAddr>,
    /// `http` or `https`.
    pub scheme: &'a str,
    /// The normalised host.
    pub host: &'a str,
    /// The request target.
    pub uri: &'a http::Uri,
    /// Unix seconds, for signed URLs' expiry.
    pub now: u64,
}

/// The edge's own answer to a request under `logic`, in DESIGN.md's order: access control
/// (the address, then the signature), then the rate limit (counting this request), then the
/// HTTPS redirect (plain-HTTP listeners only), then the rule's redirect. `Ok` when the request
/// goes on to the cache, with the target to use instead of the client's when a signature
/// was checked (its parameters left out).
pub(super) fn answer(
    logic: &Logic,
    path_match: Option<&PathMatch>,
    limiter: Option<&Limiter>,
    r: &Request<'_>,
) -> Result<Option<String>, Answer> {
    if let Some(access) = &logic.access {
        if !r.client.is_some_and(|ip| access.permits(ip)) {
            return Err(Answer::Refuse(Refusal::Denied));
        }
    }
    let unsigned = match &logic.signed_url {
        None => None,
        Some(s) => {
            let target = r.uri.path_and_query().map_or("/", |pq| pq.as_str());
            match signed::check(s, target, r.now) {
                Ok(t) => Some(t),
                Err(signed::Refused::Expired) => return Err(Answer::Refuse(Refusal::Expired)),
                Err(signed::Refused::BadSignature) => {
                    return Err(Answer::Refuse(Refusal::BadSignature))
                }
            }
        }
    };
    if let (Some(limiter), Some(ip)) = (limiter, r.client) {
        if !limiter.admit(ip) {
            return Err(Answer::Slow(limiter.limit().retry_after()));
        }
    }
    let path = r.uri.path();
    if logic.redirect_https && r.scheme == "http" {
        return Err(Answer::Redirect(308, https_of(r.host, path, r.uri.query())));
    }
    let Some(rd) = &logic.redirect else {
        return Ok(unsigned);
    };
    let to = rd.to.render(&Placeholders {
        host: r.host,
        path,
        rest: rest(path_match, path),
        query: r.uri.query(),
    });
    Err(Answer::Redirect(rd.status, to))
}

impl EdgeProxy {
    /// Answers the request at the edge when its rule refuses or redirects it; `Ok(true)` when
    /// it did.
    pub(super) async fn edge_answer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<bool> {
        let Some(rule) = ctx.rule() else {
            return Ok(false);
        };
        let logic = &rule.logic;
        if !logic.acts_on_requests() {
            return Ok(false);
        }
        // The client and the clock only where a rule asks for them.
        let client = if logic.access.is_some() || logic.rate_limit.is_some() {
            let peer = session
                .client_addr()
                .and_then(|a| a.as_inet())
                .map(|a| a.ip());
            match (&ctx.live.config.client_ip, peer) {
                (Some(trust), Some(peer)) => {
                    Some(trust.client(peer, &session.req_header().headers))
                }
                _ => peer,
            }
        } else {
            None
        };
        let now = if logic.signed_url.is_some() {
            SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        } else {
            0
        };
        let limiter = ctx
            .live
            .limiters
            .get(ctx.site.unwrap_or(usize::MAX))
            .and_then(|s| s.get(ctx.rule?))
            .and_then(Option::as_deref);
        let answer = answer(
            logic,
            rule.matcher.path.as_ref(),
            limiter,
            &Request {
                client,
                scheme: ctx.scheme,
                host: &ctx.host,
                uri: &session.req_header().uri,
                now,
            },
        );
        match answer {
            Ok(None) => Ok(false),
            Ok(Some(unsigned)) => {
                // The key and the origin see the URL without its signature.
                let uri = http::Uri::try_from(unsigned)
                    .map_err(|e| Error::because(ErrorType::InternalError, "unsigned target", e))?;
                session.req_header_mut().set_uri(uri);
                Ok(false)
            }
            Err(Answer::Refuse(why)) => {
                self.state.metrics.refused(why);
                self.respond_local(session, ctx, 403, why.detail(), "403 Forbidden\n".into())
                    .await
            }
            Err(Answer::Slow(retry_after)) => {
                let why = Refusal::RateLimited;
                self.state.metrics.refused(why);
                if let Some(rule) = ctx.rule {
                    self.state.metrics.rate_limited(ctx.site_name(), rule);
                }
                let extra = (http::header::RETRY_AFTER, retry_after.to_string());
                let body = "429 Too Many Requests\n".to_string();
                self.answer_here(
                    session,
                    ctx,
                    Forward::Bypass,
                    429,
                    why.detail(),
                    Some(extra),
                    body,
                )
                .await
            }
            Err(Answer::Redirect(status, location)) => {
                let why = Refusal::Redirect;
                self.state.metrics.refused(why);
                let body = format!("{status} redirect to {location}\n");
                let extra = (http::header::LOCATION, location);
                self.answer_here(
                    session,
                    ctx,
                    Forward::Bypass,
                    status,
                    why.detail(),
                    Some(extra),
                    body,
                )
                .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use edge_config::edge::logic::{Access, Cidr, Redirect, Template};

    use super::*;

    fn uri(s: &str) -> http::Uri {
        s.parse().unwrap()
    }

    fn request<'a>(client: Option<&str>, scheme: &'a str, uri: &'a http::Uri) -> Request<'a> {
        Request {
            client: client.map(|c| c.parse().unwrap()),
            scheme,
            host: "h.example",
            uri,
            now: 1_000,
        }
    }

    #[test]
    fn access_comes_first_then_the_signature_then_https_then_the_redirect() {
        let logic = Logic {
            access: Some(Access {
                allow: vec![Cidr::parse("10.0.0.0/8").unwrap()],
                deny: vec![],
            }),
            redirect_https: true,
            redirect: Some(Redirect {
                to: Template::parse("https://{host}/new/{rest}{query}").unwrap(),
                status: 301,
            }),
            ..Logic::default()
        };
        let prefix = PathMatch::Prefix("/old/".into());
        let u = uri("/old/a/b?x=1");
        let at = |client, scheme| answer(&logic, Some(&prefix), None, &request(client, scheme, &u));
        let denied = Err(Answer::Refuse(Refusal::Denied));
        assert_eq!(at(Some("192.0.2.1"), "https"), denied);
        assert_eq!(at(None, "https"), denied);
        assert_eq!(
            at(Some("10.1.2.3"), "http"),
            Err(Answer::Redirect(
                308,
                "https://h.example/old/a/b?x=1".into()
            ))
        );
        assert_eq!(
            at(Some("10.1.2.3"), "https"),
            Err(Answer::Redirect(
                301,
                "https://h.example/new/a/b?x=1".into()
            ))
        );
        let plain = request(Some("10.1.2.3"), "http", &u);
        assert_eq!(answer(&Logic::default(), None, None, &plain), Ok(None));

        let signed = Logic {
            signed_url: Some(edge_config::edge::logic::SignedUrl {
                keys: vec![b"k".to_vec()],
                expires_param: "exp".into(),
                signature_param: "sig".into(),
            }),
            ..logic.clone()
        };
        let inside = |u: &http::Uri| {
            answer(
                &signed,
                Some(&prefix),
                None,
                &request(Some("10.1.2.3"), "https", u),
            )
            .map(|_| ())
        };
        let bad = Err(Answer::Refuse(Refusal::BadSignature));
        assert_eq!(
            inside(&u),
            bad,
            "the signature is checked before the redirect"
        );
        let good = uri(&signed::sign_url(b"k", "/old/a/b?x=1", 2_000, "exp", "sig"));
        assert!(matches!(inside(&good), Err(Answer::Redirect(301, _))));
        let old = uri(&signed::sign_url(b"k", "/old/a/b?x=1", 999, "exp", "sig"));
        assert_eq!(inside(&old), Err(Answer::Refuse(Refusal::Expired)));
        let outside = answer(
            &signed,
            Some(&prefix),
            None,
            &request(Some("192.0.2.1"), "https", &good),
        );
        assert_eq!(outside, denied, "the address is checked first");
    }

    #[test]
    fn rest_is_what_follows_the_prefix() {
        let p = PathMatch::Prefix("/old/".into());
        assert_eq!(rest(Some(&p), "/old/a/b"), "a/b");
        assert_eq!(rest(None, "/a/b"), "a/b");
    }
}
