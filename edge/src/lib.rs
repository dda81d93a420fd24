//! The edge node: a Pingora caching reverse proxy with memory and disk tiers, per-path rules,
//! RFC 9111 semantics, origin pools, TLS by SNI and hot reload. `main.rs` only parses the
//! command line and calls [`node::build`].
//!
//! Modules form layers that import one way only, from the top down (checked by a test,
//! `layers` below):
//!
//! - [`node`]: assembly, reload, health checks, workers and client connections;
//! - [`admin`], [`proxy`], [`tls`]: the services;
//! - [`purge`]: ban rules, the purge protocol, the sweep;
//! - [`metrics`]: the metric families;
//! - [`live`]: the configuration in force, with its origin pools, certificates and router;
//! - [`cache`]: the memory and disk tiers, which ask [`cache::Admission`] before any write;
//! - [`http`]: pure HTTP semantics;
//! - leaves any layer may use: [`fds`], [`drain`], [`access_log`], [`logging`].

pub mod access_log;
pub mod admin;
pub mod cache;
pub mod drain;
pub mod fds;
pub mod http;
pub mod live;
pub mod logging;
pub mod metrics;
pub mod node;
pub mod proxy;
pub mod purge;
pub mod tls;

#[cfg(test)]
mod layers;
