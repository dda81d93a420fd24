//! The edge node: a Pingora caching reverse proxy with memory and disk tiers, per-path rules,
//! RFC 9111 semantics, origin pools, TLS by SNI and hot reload. `main.rs` only parses the
//! command line and calls [`server::build`].

pub mod access_log;
pub mod admin;
pub mod cache;
pub mod certs;
pub mod conn;
pub mod drain;
pub mod fds;
pub mod health;
pub mod http;
pub mod live;
pub mod logging;
pub mod metrics;
pub mod origin;
pub mod proxy;
pub mod purge;
pub mod reload;
pub mod router;
pub mod server;
pub mod systemd;
pub mod tls;
pub mod workers;
