//! HTTP caching semantics that are pure functions of headers: what may be stored and for how
//! long (RFC 9111, RFC 9213), how the `Cache-Status` header reads (RFC 9211), and the cache tags
//! a response carries, when this node stored a response (what purges compare), and content
//! codings, and the request hygiene applied before any of them.

pub mod cache_control;
pub mod cache_status;
pub mod encoding;
pub mod freshness;
pub mod hop;
pub mod hygiene;
pub mod stamp;
pub mod tags;
pub mod vary;
