//! The access log: one JSON line per request, to stdout, stderr or a file.
//!
//! A request only serialises its line and hands it to a channel; a background thread writes
//! the lines in batches. Under overload lines are dropped rather than slowing requests. A file
//! is reopened on SIGHUP, so log rotation needs no copy-and-truncate.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use edge_config::edge::AccessOutput;
use serde::Serialize;
use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};

/// One request, as logged.
#[derive(Serialize)]
pub struct Entry<'a> {
    /// When the request started (RFC 3339, UTC, milliseconds).
    pub time: String,
    /// Client address.
    pub client: String,
    /// Request method.
    pub method: &'a str,
    /// Normalised host.
    pub host: &'a str,
    /// Path, without the query (which may carry secrets).
    pub path: &'a str,
    /// HTTP version of the client's request.
    pub proto: &'static str,
    /// Response status; 0 when none was sent.
    pub status: u16,
    /// Body bytes sent.
    pub bytes: u64,
    /// Short cache status: hit, miss, stale, bypass, error ...
    pub cache: &'a str,
    /// The `Cache-Status` entry of this node.
    pub cache_status: &'a str,
    /// Time to the origin's response header, when the origin was asked.
    pub origin_ms: Option<f64>,
    /// Time from the request to the last byte.
    pub total_ms: f64,
    /// What went wrong, if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The access-log writer.
pub struct AccessLog {
    writer: NonBlocking,
    reopen: Arc<AtomicBool>,
    _guard: WorkerGuard,
}

impl AccessLog {
    /// Opens `output` (a file is created if missing and appended to).
    pub fn open(output: &AccessOutput) -> io::Result<AccessLog> {
        let reopen = Arc::new(AtomicBool::new(false));
        let sink: Box<dyn Write + Send> = match output {
            AccessOutput::Stdout => Box::new(BufWriter::with_capacity(64 << 10, io::stdout())),
            AccessOutput::Stderr => Box::new(BufWriter::with_capacity(64 << 10, io::stderr())),
            AccessOutput::File(path) => Box::new(ReopeningFile::open(path, reopen.clone())?),
        };
        let (writer, guard) = NonBlockingBuilder::default()
            .lossy(true)
            .thread_name("access-log")
            .finish(sink);
        Ok(AccessLog {
            writer,
            reopen,
            _guard: guard,
        })
    }

    /// Writes one line.
    pub fn write(&self, entry: &Entry<'_>) {
        let Ok(mut line) = serde_json::to_vec(entry) else {
            return;
        };
        line.push(b'\n');
        // One write is one message to the writer thread: lines never interleave.
        let _ = self.writer.clone().write_all(&line);
    }

    /// Reopens a file output before its next line (after log rotation).
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::Release);
    }
}

/// An append-only file that reopens its path when asked.
struct ReopeningFile {
    path: PathBuf,
    file: BufWriter<File>,
    reopen: Arc<AtomicBool>,
}

impl ReopeningFile {
    fn open(path: &Path, reopen: Arc<AtomicBool>) -> io::Result<Self> {
        Ok(ReopeningFile {
            path: path.to_owned(),
            file: BufWriter::with_capacity(64 << 10, append(path)?),
            reopen,
        })
    }
}

fn append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl Write for ReopeningFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.reopen.swap(false, Ordering::AcqRel) {
            self.file.flush()?;
            match append(&self.path) {
                Ok(f) => self.file = BufWriter::with_capacity(64 << 10, f),
                // Keep writing to the old file rather than lose lines.
                Err(e) => eprintln!("access log: cannot reopen {}: {e}", self.path.display()),
            }
        }
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// RFC 3339 in UTC with milliseconds, e.g. `2026-11-22T18:06:56.123Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_utc_times() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_370_816_123);
        assert_eq!(rfc3339(t), "2026-11-22T18:06:56.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }
}
