//! Node discovery: the static list, plus DNS names resolved again every `refresh` (a headless
//! Kubernetes service resolves to one address per ready pod).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use edge_config::purge_api::{DnsNodes, NodeList};

use crate::delivery;
use crate::registry::Tier;
use crate::service::SharedRef;

fn url_of(addr: SocketAddr) -> String {
    // `SocketAddr`'s Display brackets IPv6 addresses, as URLs want.
    format!("http://{addr}")
}

/// Resolves the DNS names of one list; a name that fails keeps what it resolved to last time,
/// so a passing DNS failure never drops nodes (and their delivery cursors).
async fn resolve(
    static_nodes: &[String],
    names: &[DnsNodes],
    last: &mut [BTreeSet<String>],
) -> BTreeSet<String> {
    let mut urls: BTreeSet<String> = static_nodes.iter().cloned().collect();
    for (i, d) in names.iter().enumerate() {
        match tokio::net::lookup_host((d.name.as_str(), d.port)).await {
            Ok(addrs) => {
                let found: BTreeSet<String> = addrs.map(url_of).collect();
                if let Some(slot) = last.get_mut(i) {
                    *slot = found;
                }
            }
            Err(e) => {
                tracing::warn!(name = %d.name, error = %e, "cannot resolve node name; keeping its last addresses");
            }
        }
        if let Some(slot) = last.get(i) {
            urls.extend(slot.iter().cloned());
        }
    }
    urls
}

/// What each tier's list names last resolved to.
struct Resolved {
    edges: Vec<BTreeSet<String>>,
    shields: Vec<BTreeSet<String>>,
}

/// Every node with its tier; an address both lists reach is a shield.
async fn resolve_all(shared: &SharedRef, last: &mut Resolved) -> BTreeMap<String, Tier> {
    let n = &shared.config.nodes;
    let mut urls: BTreeMap<String, Tier> = resolve(&n.static_nodes, &n.dns, &mut last.edges)
        .await
        .into_iter()
        .map(|u| (u, Tier::Edge))
        .collect();
    let NodeList { static_nodes, dns } = &n.shields;
    for url in resolve(static_nodes, dns, &mut last.shields).await {
        urls.insert(url, Tier::Shield);
    }
    urls
}

/// Keeps the node set current; runs for the life of the process.
pub async fn run(shared: SharedRef) {
    let n = &shared.config.nodes;
    let mut last = Resolved {
        edges: vec![BTreeSet::new(); n.dns.len()],
        shields: vec![BTreeSet::new(); n.shields.dns.len()],
    };
    loop {
        let urls = resolve_all(&shared, &mut last).await;
        let spawn_shared = shared.clone();
        let (added, removed) = shared.registry.set(&urls, |node| {
            tokio::spawn(delivery::run(spawn_shared.clone(), node))
        });
        for url in &removed {
            shared.metrics.remove_node(url);
        }
        if shared.replicas.is_none() {
            // The only process on an embedded log delivers to every node.
            shared.metrics.leases.set(urls.len() as i64);
        }
        if !added.is_empty() || !removed.is_empty() {
            tracing::info!(?added, ?removed, nodes = urls.len(), "node set changed");
            shared.progressed();
            if let Some(r) = &shared.replicas {
                // New nodes need a lease before anything is delivered to them.
                r.news.notify_one();
            }
        }
        if n.dns.is_empty() && n.shields.dns.is_empty() {
            return;
        }
        tokio::time::sleep(shared.config.nodes.refresh).await;
    }
}
