//! `purge-api purge ...`: the client for deploy pipelines. It sends one purge, optionally waits
//! until every node applied it, prints the answer, and exits 0 only if it was accepted (and,
//! with `--wait`, applied everywhere).

use std::time::Duration;

use edge_config::purge::Purge;
use http::{Method, StatusCode};

use crate::client::Client;

/// What to purge and where to send it.
#[derive(Debug, clap::Args)]
pub struct PurgeArgs {
    /// The purge API's base URL.
    #[arg(
        long,
        env = "PURGE_API_ENDPOINT",
        default_value = "http://127.0.0.1:7070"
    )]
    pub endpoint: String,
    /// Bearer token.
    #[arg(long, env = "PURGE_API_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Absolute URL to purge (every variant); repeatable.
    #[arg(long = "url")]
    pub urls: Vec<String>,
    /// `host/path-prefix` to purge; repeatable.
    #[arg(long = "prefix")]
    pub prefixes: Vec<String>,
    /// Host to purge entirely; repeatable.
    #[arg(long = "host")]
    pub hosts: Vec<String>,
    /// Cache tag (surrogate key) to purge; repeatable.
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Purge everything.
    #[arg(long)]
    pub all: bool,
    /// Mark stale instead of deleting (revalidated, served stale where allowed).
    #[arg(long)]
    pub soft: bool,
    /// Wait until every node applied it, at most this long (`30s`).
    #[arg(long, value_parser = edge_config::units::parse_duration, num_args = 0..=1, default_missing_value = "30s")]
    pub wait: Option<Duration>,
}

/// Exit codes: 0 done, 1 accepted but not applied everywhere in time, 2 refused or failed.
pub async fn run(args: PurgeArgs) -> u8 {
    let purge = Purge {
        urls: args.urls,
        prefixes: args.prefixes,
        hosts: args.hosts,
        tags: args.tags,
        all: args.all,
        soft: args.soft,
        ..Default::default()
    };
    let body = match serde_json::to_vec(&purge) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("purge: {e}");
            return 2;
        }
    };
    let timeout = args.wait.unwrap_or_default() + Duration::from_secs(10);
    let mut client = match Client::new(&args.endpoint, timeout) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("purge: {e}");
            return 2;
        }
    };
    let path = match args.wait {
        Some(w) => format!("/v1/purge?wait={}ms", w.as_millis()),
        None => "/v1/purge".to_string(),
    };
    match client
        .send(Method::POST, &path, Some(&args.token), Some(body))
        .await
    {
        Ok((status, answer)) => {
            println!("{}", String::from_utf8_lossy(&answer));
            if status != StatusCode::ACCEPTED {
                eprintln!("purge: refused with {status}");
                return 2;
            }
            let complete = serde_json::from_slice::<serde_json::Value>(&answer)
                .ok()
                .and_then(|v| v.get("complete").and_then(|c| c.as_bool()));
            match (args.wait, complete) {
                (Some(_), Some(false)) => {
                    eprintln!("purge: accepted, but not every node applied it in time");
                    1
                }
                _ => 0,
            }
        }
        Err(e) => {
            eprintln!("purge: {e}");
            2
        }
    }
}
