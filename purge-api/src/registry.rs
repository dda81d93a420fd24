//! The nodes purge-api delivers to, and what it last heard from each.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use tokio::task::JoinHandle;

/// Which tier a node is in: shields apply every purge before the edges are sent it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tier {
    /// Listed under `nodes.shields`.
    Shield,
    /// Every other node.
    #[default]
    Edge,
}

impl Tier {
    /// Both tiers, shields first.
    pub const ALL: [Tier; 2] = [Tier::Shield, Tier::Edge];

    /// The tier's name in the API's answers.
    pub fn label(self) -> &'static str {
        match self {
            Tier::Shield => "shield",
            Tier::Edge => "edge",
        }
    }
}

impl Serialize for Tier {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.label())
    }
}

/// What is known of one node.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeView {
    /// Admin base URL.
    pub url: String,
    /// Its tier.
    pub tier: Tier,
    /// The node's id, once it answered.
    pub node: String,
    /// Last sequence it applied, once it answered.
    pub applied_seq: Option<u64>,
    /// Whether it reports itself caught up (its `/readyz`).
    pub ready: bool,
    /// Whether the last exchange succeeded.
    pub up: bool,
    /// The last failure, if the last exchange failed.
    pub last_error: Option<String>,
    /// The replica delivering to it, when replicas share a PostgreSQL log.
    pub holder: Option<String>,
    /// Since when the exchanges with it have failed, while they do.
    #[serde(skip)]
    pub down_since: Option<Instant>,
}

/// One node and its delivery task.
pub struct NodeHandle {
    /// Admin base URL.
    pub url: String,
    /// Its tier.
    pub tier: Tier,
    view: Mutex<NodeView>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl NodeHandle {
    /// A copy of what is known.
    pub fn view(&self) -> NodeView {
        self.view.lock().clone()
    }

    /// Changes what is known.
    pub fn update(&self, f: impl FnOnce(&mut NodeView)) {
        let mut v = self.view.lock();
        f(&mut v);
        v.down_since = match (v.up, v.down_since) {
            (true, _) => None,
            (false, None) => Some(Instant::now()),
            (false, since) => since,
        };
    }
}

/// Every node, by admin URL.
#[derive(Default)]
pub struct Registry {
    nodes: RwLock<BTreeMap<String, Arc<NodeHandle>>>,
}

impl Registry {
    /// The current nodes.
    pub fn all(&self) -> Vec<Arc<NodeHandle>> {
        self.nodes.read().values().cloned().collect()
    }

    /// The current nodes of one tier.
    pub fn tier(&self, tier: Tier) -> impl Iterator<Item = Arc<NodeHandle>> {
        self.all().into_iter().filter(move |n| n.tier == tier)
    }

    /// Makes the set of nodes `urls` (with their tiers): new ones get a task from `spawn`, gone
    /// ones lose theirs, and one that changed tier is both. Returns the URLs added and removed.
    pub fn set(
        &self,
        urls: &BTreeMap<String, Tier>,
        spawn: impl Fn(Arc<NodeHandle>) -> JoinHandle<()>,
    ) -> (Vec<String>, Vec<String>) {
        let mut nodes = self.nodes.write();
        let removed: Vec<String> = nodes
            .iter()
            .filter(|(u, n)| urls.get(*u) != Some(&n.tier))
            .map(|(u, _)| u.clone())
            .collect();
        for url in &removed {
            if let Some(n) = nodes.remove(url) {
                if let Some(task) = n.task.lock().take() {
                    task.abort();
                }
            }
        }
        let mut added = Vec::new();
        for (url, tier) in urls {
            if nodes.contains_key(url) {
                continue;
            }
            let node = Arc::new(NodeHandle {
                url: url.clone(),
                tier: *tier,
                view: Mutex::new(NodeView {
                    url: url.clone(),
                    tier: *tier,
                    ..Default::default()
                }),
                task: Mutex::new(None),
            });
            *node.task.lock() = Some(spawn(node.clone()));
            nodes.insert(url.clone(), node);
            added.push(url.clone());
        }
        (added, removed)
    }
}
