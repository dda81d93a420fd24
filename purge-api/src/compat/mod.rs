//! The purge entry points of other CDNs and caches, so that the deploy pipelines, CMS plugins
//! and CI actions written for them purge through purge-api unchanged. Each reads its own
//! request and answers in its own shape; what it asks for becomes one purge of the same log,
//! checked as `/v1/purge` checks it (rate limit, size limits, the token's host scope).

pub mod cloudflare;
pub mod fastly;
pub mod varnish;

use http::{header, HeaderMap};

use crate::submit::Caller;

/// The caller a bearer token (`Authorization: Bearer`) or a bare key in `key_header` names.
fn caller(
    shared: &crate::service::SharedRef,
    headers: &HeaderMap,
    key_header: &str,
) -> Option<Caller> {
    let tokens = &shared.tokens;
    tokens
        .which(headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()))
        .or_else(|| tokens.which_key(headers.get(key_header).map(|v| v.as_bytes())))
        .map(Caller::Token)
}
