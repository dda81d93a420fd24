//! `tracing` set-up: JSON or text lines on stderr, with Pingora's `log` records bridged in.
//!
//! Lines go through a non-blocking writer: a request only enqueues its access-log line, and a
//! background thread writes them in batches. Under overload, lines are dropped rather than
//! slowing requests (the drop count is reported by the writer on shutdown).

use std::io::BufWriter;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::{fmt, EnvFilter};

/// Keep this alive for the life of the process: dropping it flushes and stops the writer.
pub type LogGuard = WorkerGuard;

/// Pingora's cache warns once, at the first stored header, that it has no compression
/// dictionary. The edge never uses one (its stored headers are compressed without), so the line
/// says nothing an operator can act on; the module's errors still show.
const QUIET: &str = "pingora_cache::meta=error";

/// Installs the global subscriber. `RUST_LOG` overrides `level`.
pub fn init(json: bool, level: &str) -> LogGuard {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{level},{QUIET}")));
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .finish(BufWriter::with_capacity(64 << 10, std::io::stderr()));
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false);
    // `try_init` also installs the `log` -> `tracing` bridge for Pingora's records.
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    guard
}
