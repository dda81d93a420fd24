//! Delivery to one node: everything it has not applied, in order, one purge per request, with
//! retries (exponential backoff with jitter) while it is unreachable. The node's own durable
//! position is the cursor: this task asks for it when it starts, after every failure and on
//! every poll, so a node that restarted, or lost its disk, is brought up to date from where it
//! really is.

use std::sync::Arc;
use std::time::{Duration, Instant};

use edge_config::purge::{NodeState, Purge};
use http::{Method, StatusCode};

use crate::client::{Client, ClientError};
use crate::registry::NodeHandle;
use crate::service::SharedRef;
use crate::store::random_u64;

/// Why one step failed.
#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("node answered {0}: {1}")]
    Status(StatusCode, String),
    #[error("node answer unreadable: {0}")]
    Body(#[from] serde_json::Error),
    #[error("purge log: {0}")]
    Store(String),
}

enum Step {
    /// The node moved forward (or its position was learned): go on at once.
    Progress,
    /// Nothing to send.
    Idle,
    /// The next purge waits for the shields to apply it, at most until the instant given.
    Held(Option<Instant>),
}

struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let exp = self
            .min
            .saturating_mul(1u32 << self.failures.min(16))
            .min(self.max);
        self.failures = self.failures.saturating_add(1);
        // Full jitter over the upper half, so a fleet of retries does not move in step.
        let frac = 0.5 + (random_u64() % 1000) as f64 / 2000.0;
        exp.mul_f64(frac)
    }
}

struct Delivery {
    shared: SharedRef,
    node: Arc<NodeHandle>,
    client: Client,
    /// The node's applied sequence in this log, as it last said; `None` until asked.
    applied: Option<u64>,
    ready: bool,
    checked: Instant,
}

/// Runs delivery to `node` until the task is aborted (the node left).
pub async fn run(shared: SharedRef, node: Arc<NodeHandle>) {
    let d = shared.config.delivery.clone();
    let client = match Client::new(&node.url, d.timeout) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(node = %node.url, error = %e, "cannot deliver to this node");
            return;
        }
    };
    let mut head = shared.head.subscribe();
    let mut progress = shared.progress.subscribe();
    let mut backoff = Backoff {
        min: d.retry_min,
        max: d.retry_max,
        failures: 0,
    };
    let mut s = Delivery {
        shared,
        node,
        client,
        applied: None,
        ready: false,
        checked: Instant::now(),
    };
    loop {
        if let Some(r) = s.shared.replicas.as_ref() {
            let mut taken = r.taken.subscribe();
            if !r.holds(&s.node.url) {
                // Another replica delivers to this node; ask the node afresh on taking it over.
                s.applied = None;
                s.ready = false;
                tokio::select! {
                    _ = taken.changed() => {}
                    _ = tokio::time::sleep(r.poll) => {}
                }
                continue;
            }
        }
        match s.step().await {
            Ok(Step::Progress) => backoff.failures = 0,
            Ok(Step::Idle) => {
                backoff.failures = 0;
                head.mark_unchanged();
                tokio::select! {
                    _ = head.changed() => {}
                    _ = tokio::time::sleep(d.poll) => {}
                }
            }
            Ok(Step::Held(timeout_at)) => {
                // Woken when a shield moves (a position changed), when the hold runs out, or
                // at the poll.
                backoff.failures = 0;
                head.mark_unchanged();
                progress.mark_unchanged();
                let poll_at = Instant::now() + d.poll;
                let until = timeout_at.map_or(poll_at, |t| t.min(poll_at));
                tokio::select! {
                    _ = head.changed() => {}
                    _ = progress.changed() => {}
                    _ = tokio::time::sleep_until(until.into()) => {}
                }
            }
            Err(e) => {
                let first = backoff.failures == 0;
                s.applied = None;
                let shared = &s.shared;
                shared
                    .metrics
                    .deliveries
                    .with_label_values(&["error"])
                    .inc();
                shared
                    .metrics
                    .node_up
                    .with_label_values(&[&s.node.url])
                    .set(0);
                s.node.update(|v| {
                    v.up = false;
                    v.last_error = Some(e.to_string());
                });
                if first {
                    tracing::warn!(node = %s.node.url, error = %e, "node unreachable; retrying with backoff");
                    s.report_down(&e.to_string()).await;
                }
                tokio::time::sleep(backoff.next()).await;
            }
        }
    }
}

impl Delivery {
    async fn step(&mut self) -> Result<Step, StepError> {
        let poll = self.shared.config.delivery.poll;
        if self.applied.is_none() || self.checked.elapsed() >= poll {
            let (status, body) = self
                .client
                .send(
                    Method::GET,
                    "/purge/state",
                    Some(&self.shared.node_token),
                    None,
                )
                .await?;
            if status != StatusCode::OK {
                return Err(StepError::Status(
                    status,
                    String::from_utf8_lossy(&body).into(),
                ));
            }
            let state: NodeState = serde_json::from_slice(&body)?;
            self.learn(&state).await;
            self.checked = Instant::now();
        }
        let applied = self.applied.unwrap_or(0);
        let store = &self.shared.store;
        // An edge is told of, and sent, only what the shields have released: held back, it
        // stays ready, at the head it was told.
        let release = self.shared.release(self.node.tier);
        let head = release.through;
        let held = head < store.head();
        let log = store.log_id().to_string();
        let sync = applied >= head;
        let purge = if sync {
            if self.ready {
                return Ok(if held {
                    Step::Held(release.timeout_at)
                } else {
                    Step::Idle
                });
            }
            // Nothing to send but the news that it has caught up.
            Purge {
                seq: Some(applied),
                ..Default::default()
            }
        } else if applied < store.compacted_through() {
            if store.compacted_through() > head {
                return Ok(Step::Held(release.timeout_at));
            }
            // What it missed is compacted away: everything goes.
            Purge {
                seq: Some(store.compacted_through()),
                all: true,
                ..Default::default()
            }
        } else {
            let next = applied + 1;
            let entry = match store.get(next).await {
                Ok(Some(p)) => p,
                Ok(None) => return Err(StepError::Store(format!("entry {next} is missing"))),
                Err(e) => return Err(StepError::Store(e.to_string())),
            };
            Purge {
                seq: Some(next),
                ..(*entry).clone()
            }
        };
        let purge = Purge {
            log: Some(log),
            head: Some(head),
            ..purge
        };
        let body = serde_json::to_vec(&purge)?;
        let start = Instant::now();
        let (status, answer) = self
            .client
            .send(
                Method::POST,
                "/purge",
                Some(&self.shared.node_token),
                Some(body),
            )
            .await?;
        let m = &self.shared.metrics;
        match status {
            StatusCode::OK => {
                m.delivery_duration.observe(start.elapsed().as_secs_f64());
                m.deliveries.with_label_values(&["ok"]).inc();
                let state: NodeState = serde_json::from_slice(&answer)?;
                self.learn(&state).await;
                // A node that stays unready after the news waits for the next purge or poll.
                Ok(if sync { Step::Idle } else { Step::Progress })
            }
            StatusCode::CONFLICT => {
                // Its position moved under us (a restart, a replaced disk): ask again.
                m.deliveries.with_label_values(&["gap"]).inc();
                self.applied = None;
                Ok(Step::Progress)
            }
            _ => Err(StepError::Status(
                status,
                String::from_utf8_lossy(&answer).into(),
            )),
        }
    }

    async fn learn(&mut self, state: &NodeState) {
        let log = self.shared.store.log_id();
        // A node on another log (or none yet) starts this one from the beginning.
        let applied = if state.log.as_deref() == Some(log) {
            state.applied_seq
        } else {
            0
        };
        let moved = self.applied != Some(applied) || self.ready != state.ready;
        self.applied = Some(applied);
        self.ready = state.ready;
        let head = self.shared.store.head();
        let url = &self.node.url;
        let m = &self.shared.metrics;
        m.node_applied.with_label_values(&[url]).set(applied as i64);
        m.node_lag
            .with_label_values(&[url])
            .set(head.saturating_sub(applied) as i64);
        m.node_up.with_label_values(&[url]).set(1);
        let was_down = !self.node.view().up;
        let holder = self.shared.replicas.as_ref().map(|r| r.id.clone());
        self.node.update(|v| {
            v.node = state.node.clone();
            v.applied_seq = Some(applied);
            v.ready = state.ready;
            v.up = true;
            v.last_error = None;
            v.holder = holder;
        });
        if was_down {
            tracing::info!(node = %url, id = %state.node, applied, head, "node reachable");
        }
        if moved {
            self.shared.progressed();
            self.report(&state.node, applied, state.ready).await;
        }
    }

    /// Tells the other replicas (through the shared log) that the node cannot be reached.
    async fn report_down(&self, error: &str) {
        let (Some(r), Some(pg)) = (&self.shared.replicas, self.shared.store.postgres()) else {
            return;
        };
        if let Err(e) = pg.report_down(&self.node.url, &r.id, error).await {
            tracing::debug!(node = %self.node.url, error = %e, "node state not shared");
        }
    }

    /// Tells the other replicas (through the shared log) where the node is.
    async fn report(&self, node_id: &str, applied: u64, ready: bool) {
        let (Some(r), Some(pg)) = (&self.shared.replicas, self.shared.store.postgres()) else {
            return;
        };
        if let Err(e) = pg
            .report(&self.node.url, &r.id, node_id, applied, ready)
            .await
        {
            tracing::debug!(node = %self.node.url, error = %e, "node position not shared");
        }
    }
}
