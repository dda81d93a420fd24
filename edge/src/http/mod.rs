//! HTTP caching semantics that are pure functions of headers: what may be stored and for how
//! long (RFC 9111, RFC 9213), and how the `Cache-Status` header reads (RFC 9211).

pub mod cache_status;
pub mod freshness;
