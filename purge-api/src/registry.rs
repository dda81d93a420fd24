//! The nodes purge-api delivers to, and what it last heard from each.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use tokio::task::JoinHandle;

/// What is known of one node.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeView {
    /// Admin base URL.
    pub url: String,
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
}

/// One node and its delivery task.
pub struct NodeHandle {
    /// Admin base URL.
    pub url: String,
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
        f(&mut self.view.lock());
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

    /// Makes the set of nodes `urls`: new ones get a task from `spawn`, gone ones lose theirs.
    /// Returns the URLs added and removed.
    pub fn set(
        &self,
        urls: &BTreeSet<String>,
        spawn: impl Fn(Arc<NodeHandle>) -> JoinHandle<()>,
    ) -> (Vec<String>, Vec<String>) {
        let mut nodes = self.nodes.write();
        let removed: Vec<String> = nodes
            .keys()
            .filter(|u| !urls.contains(*u))
            .cloned()
            .collect();
        for url in &removed {
            if let Some(n) = nodes.remove(url) {
                if let Some(task) = n.task.lock().take() {
                    task.abort();
                }
            }
        }
        let mut added = Vec::new();
        for url in urls {
            if nodes.contains_key(url) {
                continue;
            }
            let node = Arc::new(NodeHandle {
                url: url.clone(),
                view: Mutex::new(NodeView {
                    url: url.clone(),
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
