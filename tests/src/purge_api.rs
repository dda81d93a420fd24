//! Starts the real `purge-api` binary on an ephemeral loopback port, in front of edges.

use std::net::SocketAddr;
use std::process::Child;
use std::time::Duration;

use crate::edge::{admin_token_file, Scratch};
use crate::{client, eventually, free_port};

/// The bearer token harness purge-apis accept from callers.
pub const API_TOKEN: &str = "test-api-token";
/// A token harness purge-apis accept for `shop.test` and `*.img.test` only.
pub const SCOPED_TOKEN: &str = "test-scoped-token";

/// The `purge-api` binary cargo built beside this test.
pub fn purge_api_bin() -> std::path::PathBuf {
    crate::edge::edge_bin().with_file_name("purge-api")
}

/// A running purge-api, killed on drop. Its log store lives in its scratch directory, which
/// outlives restarts.
pub struct PurgeApi {
    /// API listener.
    pub addr: SocketAddr,
    child: Child,
    scratch: Scratch,
}

/// A purge-api to start: the admin listeners it delivers to, by tier, and what else its file
/// says. From [`PurgeApi::builder`].
#[derive(Default)]
pub struct PurgeApiSpec {
    edges: Vec<SocketAddr>,
    shields: Vec<SocketAddr>,
    shield_wait: Option<String>,
    postgres: Option<String>,
    delivery: String,
    extra: String,
}

fn admin_urls(addrs: &[SocketAddr]) -> String {
    let urls: Vec<String> = addrs.iter().map(|a| format!("\"http://{a}\"")).collect();
    format!("[{}]", urls.join(", "))
}

impl PurgeApiSpec {
    /// The nodes outside the shield tier (`nodes.static`).
    pub fn edges(mut self, admins: &[SocketAddr]) -> Self {
        self.edges = admins.to_vec();
        self
    }

    /// The shields (`nodes.shields.static`).
    pub fn shields(mut self, admins: &[SocketAddr]) -> Self {
        self.shields = admins.to_vec();
        self
    }

    /// `nodes.shield_wait`.
    pub fn shield_wait(mut self, wait: &str) -> Self {
        self.shield_wait = Some(wait.to_string());
        self
    }

    /// The log in PostgreSQL: `postgres:` keys as flow YAML (`url: "...", lease: 2s`).
    pub fn postgres(mut self, keys: &str) -> Self {
        self.postgres = Some(keys.to_string());
        self
    }

    /// Extra `delivery:` keys as flow YAML.
    pub fn delivery(mut self, keys: &str) -> Self {
        self.delivery = keys.to_string();
        self
    }

    /// Extra top-level YAML.
    pub fn extra(mut self, yaml: &str) -> Self {
        self.extra = yaml.to_string();
        self
    }

    /// Starts it and waits until it is healthy.
    pub fn start(self) -> PurgeApi {
        let mut nodes = format!("static: {}", admin_urls(&self.edges));
        if !self.shields.is_empty() {
            nodes.push_str(&format!(
                "\n  shields: {{ static: {} }}",
                admin_urls(&self.shields)
            ));
        }
        if let Some(wait) = &self.shield_wait {
            nodes.push_str(&format!("\n  shield_wait: {wait}"));
        }
        PurgeApi::launch(
            &nodes,
            &self.delivery,
            &self.extra,
            self.postgres
                .as_deref()
                .map(|keys| format!("postgres: {{ {keys} }}"))
                .as_deref(),
        )
    }
}

impl PurgeApi {
    /// A purge-api to build.
    pub fn builder() -> PurgeApiSpec {
        PurgeApiSpec::default()
    }

    /// A purge-api delivering to these admin listeners, with extra `delivery:` keys (flow YAML,
    /// `retain: 2`) and extra top-level YAML.
    pub fn start(nodes: &[SocketAddr], delivery: &str, extra: &str) -> PurgeApi {
        let static_nodes: Vec<String> = nodes.iter().map(|a| format!("\"http://{a}\"")).collect();
        Self::start_nodes(
            &format!("static: [{}]", static_nodes.join(", ")),
            delivery,
            extra,
        )
    }

    /// As [`PurgeApi::start`] with the `nodes:` keys other than `token_file` given as YAML
    /// (indented by two spaces after the first line).
    pub fn start_nodes(nodes: &str, delivery: &str, extra: &str) -> PurgeApi {
        Self::launch(nodes, delivery, extra, None)
    }

    /// A replica keeping its log in PostgreSQL (`postgres:` keys as flow YAML, `url: ...`),
    /// delivering to these admin listeners.
    pub fn start_replica(nodes: &[SocketAddr], postgres: &str) -> PurgeApi {
        Self::start_replica_with(nodes, postgres, "")
    }

    /// As [`PurgeApi::start_replica`], with extra top-level YAML.
    pub fn start_replica_with(nodes: &[SocketAddr], postgres: &str, extra: &str) -> PurgeApi {
        let static_nodes: Vec<String> = nodes.iter().map(|a| format!("\"http://{a}\"")).collect();
        Self::launch(
            &format!("static: [{}]", static_nodes.join(", ")),
            "",
            extra,
            Some(&format!("postgres: {{ {postgres} }}")),
        )
    }

    fn launch(nodes: &str, delivery: &str, extra: &str, store: Option<&str>) -> PurgeApi {
        let scratch = Scratch::new("purge-api");
        let port = free_port();
        let tokens = scratch.0.join("tokens");
        std::fs::write(
            &tokens,
            format!("# callers\n{API_TOKEN}\nsecond-token\n{SCOPED_TOKEN} shop.test *.img.test\n"),
        )
        .unwrap();
        let yaml = format!(
            "listen: \"127.0.0.1:{port}\"\n\
             tokens_file: \"{}\"\n\
             {store}\n\
             nodes:\n  {nodes}\n  token_file: \"{}\"\n\
             delivery: {{ retry_min: 20ms, retry_max: 500ms, poll: 1s, timeout: 2s{delivery} }}\n\
             {extra}",
            tokens.display(),
            admin_token_file().display(),
            store = store.map_or_else(
                || format!("store: \"{}\"", scratch.0.join("purges.db").display()),
                str::to_string
            ),
            delivery = if delivery.is_empty() {
                String::new()
            } else {
                format!(", {delivery}")
            },
        );
        std::fs::write(scratch.0.join("purge-api.yaml"), yaml).unwrap();
        let child = Self::spawn(&scratch);
        let mut api = PurgeApi {
            addr: ([127, 0, 0, 1], port).into(),
            child,
            scratch,
        };
        api.wait_healthy();
        api
    }

    fn spawn(scratch: &Scratch) -> Child {
        crate::spawn_logged(
            &purge_api_bin(),
            &scratch.0.join("purge-api.yaml"),
            &scratch.0.join("purge-api.log"),
        )
    }

    fn wait_healthy(&mut self) {
        let addr = self.addr;
        eventually(
            Duration::from_secs(30),
            "purge-api to become healthy",
            || {
                if let Ok(Some(status)) = self.child.try_wait() {
                    panic!("purge-api exited with {status}:\n{}", self.log());
                }
                client::raw(
                    addr,
                    b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                    false,
                )
                .is_ok_and(|r| r.status == 200)
                .then_some(())
            },
        );
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process with SIGKILL.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same configuration, port and log store.
    pub fn restart(&mut self) {
        self.child = Self::spawn(&self.scratch);
        self.wait_healthy();
    }

    /// The process's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.scratch.0.join("purge-api.log")).unwrap_or_default()
    }

    /// `POST /v1/purge` (with `?query` if given) with the harness token.
    pub fn purge(&self, json: &str, query: &str) -> client::Response {
        self.purge_as(API_TOKEN, json, query)
    }

    /// `POST /v1/purge` (with `?query` if given) with this token.
    pub fn purge_as(&self, token: &str, json: &str, query: &str) -> client::Response {
        let auth = format!("Bearer {token}");
        let path = if query.is_empty() {
            "/v1/purge".to_string()
        } else {
            format!("/v1/purge?{query}")
        };
        client::request(
            self.addr,
            "POST",
            "purge-api",
            &path,
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            json.as_bytes(),
        )
    }

    /// GET with the harness token.
    pub fn get(&self, path: &str) -> client::Response {
        let auth = format!("Bearer {API_TOKEN}");
        client::get(self.addr, "purge-api", path, &[("Authorization", &auth)])
    }

    /// The sum of the series of its `/metrics` named as `series` is, with at least its labels.
    pub fn metric(&self, series: &str) -> f64 {
        let text = client::get(self.addr, "purge-api", "/metrics", &[]).text();
        crate::metrics::sum(&text, series)
    }

    /// Path of the config file (for `--check`).
    pub fn config_path(&self) -> std::path::PathBuf {
        self.scratch.0.join("purge-api.yaml")
    }
}

impl Drop for PurgeApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
