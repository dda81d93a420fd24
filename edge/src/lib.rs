//! The edge node: a Pingora caching reverse proxy with a memory tier, per-path rules and
//! RFC 9111 semantics. `main.rs` only parses the command line and calls [`server::build`].

pub mod admin;
pub mod cache;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod origin;
pub mod proxy;
pub mod purge;
pub mod router;
pub mod server;
