//! A real PostgreSQL server on a loopback ephemeral port, in a scratch data directory, stopped
//! on drop. It is Debian's `postgresql` package, which `scripts/setup.sh` installs; the server
//! refuses to run as root, so as root it runs as the package's `postgres` user.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::edge::Scratch;
use crate::pki::CertFiles;
use crate::{eventually, free_port};

/// A running server; `url()` connects as a superuser with trust authentication.
pub struct Postgres {
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    bin: PathBuf,
    child: Child,
    running: bool,
    /// Settings beyond the defaults (`-c name=value`), kept for restarts.
    settings: Vec<String>,
    scratch: Scratch,
}

/// The newest installed server's binaries (`PG_BIN` overrides).
fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, b)| b)
        .expect("no PostgreSQL server under /usr/lib/postgresql: run scripts/setup.sh")
}

fn is_root() -> bool {
    static ROOT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ROOT.get_or_init(|| {
        Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
    })
}

/// As root, hands `path` (and what is under it) to the `postgres` user the server runs as.
fn give_to_postgres(path: &Path) {
    if is_root() {
        let ok = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "cannot hand {} to the postgres user", path.display());
    }
}

/// `program args...`, as the `postgres` user when this process is root.
fn command(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl Postgres {
    /// Creates a cluster and starts it.
    pub fn start() -> Postgres {
        Self::start_with(None)
    }

    /// As [`Postgres::start`], offering TLS with this certificate (and accepting plaintext).
    pub fn start_tls(cert: &CertFiles) -> Postgres {
        Self::start_with(Some(cert))
    }

    fn start_with(cert: Option<&CertFiles>) -> Postgres {
        let bin = bin_dir();
        let scratch = Scratch::new("postgres");
        let data = scratch.0.join("data");
        give_to_postgres(&scratch.0);
        let out = command(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "edge", "--no-sync", "-E", "UTF8"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut settings = Vec::new();
        if let Some(cert) = cert {
            // The server insists on owning its key, readable by nobody else.
            for (from, to) in [(&cert.cert, "server.crt"), (&cert.key, "server.key")] {
                let dest = data.join(to);
                std::fs::copy(from, &dest).unwrap();
                std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o600)).unwrap();
                give_to_postgres(&dest);
            }
            settings.push("ssl=on".to_string());
        }
        let port = free_port();
        let child = Self::spawn(&bin, &scratch.0, port, &settings);
        let mut pg = Postgres {
            port,
            bin,
            child,
            running: true,
            settings,
            scratch,
        };
        pg.wait_ready();
        pg
    }

    fn spawn(bin: &Path, dir: &Path, port: u16, settings: &[String]) -> Child {
        let log_path = dir.join("postgres.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        give_to_postgres(&log_path);
        command(&bin.join("postgres"))
            .arg("-D")
            .arg(dir.join("data"))
            .arg("-p")
            .arg(port.to_string())
            .arg("-k")
            .arg(dir)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=100",
            ])
            .args(settings.iter().flat_map(|s| ["-c", s.as_str()]))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    /// Stops the server (a fast shutdown: open connections are cut).
    pub fn stop(&mut self) {
        if !std::mem::replace(&mut self.running, false) {
            return;
        }
        // SIGINT is the postmaster's fast shutdown; as root the child is `runuser`, so the
        // postmaster's own pid comes from its pid file.
        let pid = std::fs::read_to_string(self.scratch.0.join("data/postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next().map(str::to_string))
            .unwrap_or_else(|| self.child.id().to_string());
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let _ = self.child.wait();
    }

    /// Starts it again on the same data and port.
    pub fn start_again(&mut self) {
        self.child = Self::spawn(&self.bin, &self.scratch.0, self.port, &self.settings);
        self.running = true;
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let port = self.port;
        eventually(
            Duration::from_secs(60),
            "PostgreSQL to accept connections",
            || {
                if let Ok(Some(status)) = self.child.try_wait() {
                    panic!("postgres exited with {status}:\n{}", self.log());
                }
                Command::new(self.bin.join("pg_isready"))
                    .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
                    .status()
                    .is_ok_and(|s| s.success())
                    .then_some(())
            },
        );
    }

    /// A connection string for the `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://edge@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs one SQL statement with `psql` and returns its unaligned output.
    pub fn sql(&self, statement: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.url(),
                "-c",
            ])
            .arg(statement)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.scratch.0.join("postgres.log")).unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}
