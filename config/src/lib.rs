//! Configuration shared by the `edge` and `purge-api` binaries.
//!
//! Each binary's YAML is read in two steps, as in linkerd2-proxy's config: the serde *file format*
//! (`file` modules, spans kept so errors can name a line), then `validate()`, which returns every
//! problem it finds and otherwise yields the runtime types the binaries use. The crate has no
//! Pingora dependency so that the purge service can share it.

pub mod edge;
mod error;
mod load;
pub mod units;

pub use error::{ConfigError, Problem};
pub use load::load_yaml;
