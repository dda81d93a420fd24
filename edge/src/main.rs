//! `edge --config FILE [--check]`: runs a CDN edge node, or validates its configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
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
#[command(version, about)]
struct Cli {
    /// The node's YAML configuration.
    #[arg(long, short = 'c')]
    config: PathBuf,
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match EdgeConfig::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    if cli.preflight {
        if let Err(e) = edge::live::Live::build(&config, None) {
            eprintln!("{}: {e}", cli.config.display());
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    }
    if cli.check || cli.preflight {
        println!("{}: ok", cli.config.display());
        return ExitCode::SUCCESS;
    }
    let _log = edge::logging::init(config.log.json, &config.log.level);
    let options = edge::node::Options {
        config_path: cli.config.clone(),
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
