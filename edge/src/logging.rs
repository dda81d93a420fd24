//! `tracing` set-up: JSON or text lines on stderr, with Pingora's `log` records bridged in.

use tracing_subscriber::{fmt, EnvFilter};

/// Installs the global subscriber. `RUST_LOG` overrides `level`. Safe to call once per process.
pub fn init(json: bool, level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // `try_init` also installs the `log` -> `tracing` bridge for Pingora's records.
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}
