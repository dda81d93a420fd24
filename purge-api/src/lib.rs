//! purge-api: takes purges over an authenticated HTTP API, logs them durably with sequence
//! numbers, and delivers each to every edge node in order, with retries and catch-up.
//! `main.rs` only parses the command line and calls [`server::build`] and [`server::run`], or
//! [`cli::run`] for the `purge` subcommand.

pub mod api;
pub mod cli;
pub mod client;
pub mod compat;
pub mod delivery;
pub mod discovery;
pub mod limit;
pub mod metrics;
pub mod registry;
pub mod replicas;
pub mod server;
pub mod service;
pub mod shields;
pub mod store;
pub mod submit;
