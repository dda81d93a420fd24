//! `edge --config FILE [--check]`: runs a CDN edge node, or validates its configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use edge_config::edge::EdgeConfig;

/// jemalloc in place of glibc's malloc, as Pingora's own examples use: every miss stores a new
/// object, so the heap grows steadily, and glibc grew its per-thread heaps a page at a time (an
/// `mprotect` per miss) and spent a large part of a miss in `malloc`.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// sysexits(3) EX_USAGE: the configuration is unusable.
const EXIT_BAD_CONFIG: u8 = 64;

/// A CDN edge node on Pingora.
#[derive(Parser)]
#[command(
    version,
    about,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The node's YAML configuration.
    #[arg(long, short = 'c', required = true)]
    config: Option<PathBuf>,
    /// Validate the configuration and exit: 0 if it is good, 64 with every problem if not.
    #[arg(long)]
    check: bool,
    /// As --check, and also load the certificates, keys, CA and token files the configuration
    /// names and resolve its origin hosts: everything a start or an upgrade needs.
    #[arg(long)]
    preflight: bool,
    /// Graceful upgrade: take the listening sockets over from the running node (send it
    /// SIGQUIT right after starting this one), so no connection is refused.
    #[arg(long, short = 'u')]
    upgrade: bool,
}

/// Tools beside the node.
#[derive(Subcommand)]
enum Command {
    /// Prints URL signed for a rule's `signed_url`, with the first key of KEY_FILE.
    SignUrl {
        /// The rule's `key_file`.
        #[arg(long)]
        key_file: PathBuf,
        /// How long the URL stays valid (`30s`, `1h`, `7d`).
        #[arg(long, default_value = "1h")]
        expires: String,
        /// The rule's `expires_param`.
        #[arg(long, default_value = "exp")]
        expires_param: String,
        /// The rule's `signature_param`.
        #[arg(long, default_value = "sig")]
        signature_param: String,
        /// The URL: absolute (`https://static.example.com/a.zip`) or a path.
        url: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::SignUrl {
        key_file,
        expires,
        expires_param,
        signature_param,
        url,
    }) = &cli.command
    {
        return match sign_url(key_file, expires, expires_param, signature_param, url) {
            Ok(signed) => {
                println!("{signed}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("sign-url: {e}");
                ExitCode::from(EXIT_BAD_CONFIG)
            }
        };
    }
    let Some(config_path) = cli.config.clone() else {
        eprintln!("--config is required");
        return ExitCode::from(EXIT_BAD_CONFIG);
    };
    let config = match EdgeConfig::load(&config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    if cli.preflight {
        if let Err(e) = edge::live::Live::build(&config, None) {
            eprintln!("{}: {e}", config_path.display());
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    }
    if cli.check || cli.preflight {
        println!("{}: ok", config_path.display());
        return ExitCode::SUCCESS;
    }
    let _log = edge::logging::init(config.log.json, &config.log.level);
    let options = edge::node::Options {
        config_path: config_path.clone(),
        upgrade: cli.upgrade,
    };
    match edge::node::build(&config, &options) {
        Ok(node) => {
            tracing::info!(node = %config.node_id, "edge starting");
            node.run();
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("cannot start: {e}");
            ExitCode::from(EXIT_BAD_CONFIG)
        }
    }
}

/// `url` signed with the first key of `key_file`, valid for `expires` from now.
fn sign_url(
    key_file: &std::path::Path,
    expires: &str,
    expires_param: &str,
    signature_param: &str,
    url: &str,
) -> Result<String, String> {
    let keys = edge_config::edge::logic::read_url_keys(key_file)?;
    let valid =
        edge_config::units::parse_duration(expires).map_err(|e| format!("--expires: {e}"))?;
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    let target = uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .filter(|t| t.starts_with('/'))
        .ok_or_else(|| format!("`{url}` has no path"))?;
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .saturating_add(valid)
        .as_secs();
    let signed =
        edge::proxy::signed::sign_url(&keys[0], target, until, expires_param, signature_param);
    Ok(match (uri.scheme_str(), uri.authority()) {
        (Some(scheme), Some(authority)) => format!("{scheme}://{authority}{signed}"),
        _ => signed,
    })
}
