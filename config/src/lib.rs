//! Configuration shared by the `edge` and `purge-api` binaries, and the purge wire format they
//! speak to each other.
//!
//! Each binary's YAML is read in two steps, as in linkerd2-proxy's config: the serde *file format*
//! (`file` modules, spans kept so errors can name a line), then `validate()`, which returns every
//! problem it finds and otherwise yields the runtime types the binaries use. The crate has no
//! Pingora dependency so that the purge service can share it.

pub mod api;
mod check;
pub mod cidr;
pub mod edge;
mod error;
pub mod host;
mod load;
mod paths;
pub mod purge;
pub mod purge_api;
pub mod token;
pub mod units;

pub use error::{ConfigError, Problem};
