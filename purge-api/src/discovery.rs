//! Node discovery: the static list, plus DNS names resolved again every `refresh` (a headless
//! Kubernetes service resolves to one address per ready pod).

use std::collections::BTreeSet;
use std::net::SocketAddr;

use crate::delivery;
use crate::service::SharedRef;

fn url_of(addr: SocketAddr) -> String {
    // `SocketAddr`'s Display brackets IPv6 addresses, as URLs want.
    format!("http://{addr}")
}

/// Resolves the DNS names; a name that fails keeps what it resolved to last time, so a
/// passing DNS failure never drops nodes (and their delivery cursors).
async fn resolve(shared: &SharedRef, last: &mut [BTreeSet<String>]) -> BTreeSet<String> {
    let mut urls: BTreeSet<String> = shared.config.nodes.static_nodes.iter().cloned().collect();
    for (i, d) in shared.config.nodes.dns.iter().enumerate() {
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

/// Keeps the node set current; runs for the life of the process.
pub async fn run(shared: SharedRef) {
    let mut last = vec![BTreeSet::new(); shared.config.nodes.dns.len()];
    loop {
        let urls = resolve(&shared, &mut last).await;
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
        if shared.config.nodes.dns.is_empty() {
            return;
        }
        tokio::time::sleep(shared.config.nodes.refresh).await;
    }
}
