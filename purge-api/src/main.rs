//! `purge-api --config FILE [--check]` runs the purge service, or validates its configuration;
//! `purge-api purge --url ... --tag ... [--wait]` sends a purge to one.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use edge_config::purge_api::PurgeApiConfig;
use purge_api::server::StartError;
use purge_api::store::StoreError;

/// sysexits(3) EX_USAGE: the configuration is unusable.
const EXIT_BAD_CONFIG: u8 = 64;

/// The purge service of the edge CDN.
#[derive(Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    /// The service's YAML configuration.
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Validate the configuration and exit: 0 if it is good, 64 with every problem if not.
    #[arg(long)]
    check: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Send a purge to a running purge-api (for deploy pipelines).
    Purge(purge_api::cli::PurgeArgs),
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Purge(args)) = cli.command {
        return match runtime() {
            Ok(rt) => ExitCode::from(rt.block_on(purge_api::cli::run(args))),
            Err(e) => {
                eprintln!("purge: {e}");
                ExitCode::from(2)
            }
        };
    }
    let Some(path) = cli.config else {
        eprintln!("purge-api: give --config FILE (or the `purge` subcommand)");
        return ExitCode::from(EXIT_BAD_CONFIG);
    };
    let config = match PurgeApiConfig::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    if cli.check {
        println!("{}: ok", path.display());
        return ExitCode::SUCCESS;
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .json()
        .flatten_event(true)
        .with_writer(std::io::stderr)
        .init();
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        match purge_api::server::build(config).await {
            Ok((shared, listener)) => {
                purge_api::server::run(shared, listener).await;
                ExitCode::SUCCESS
            }
            // An unreachable database is not a bad configuration: a supervisor retries it.
            Err(e @ StartError::Store(StoreError::Postgres(_))) => {
                tracing::error!("cannot start: {e}");
                ExitCode::FAILURE
            }
            Err(e) => {
                tracing::error!("cannot start: {e}");
                ExitCode::from(EXIT_BAD_CONFIG)
            }
        }
    })
}
