//! Shield tiers first: purge-api sends a purge to the edges only once every shield applied it,
//! so an edge never refills a purged object from a shield that still holds it; and a shield
//! that stays away holds the edges back for `nodes.shield_wait` at most. With the embedded log
//! and with two replicas on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed set-up is a failed test

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use edge_tests::client;
use edge_tests::edge::{Edge, ADMIN_TOKEN};
use edge_tests::eventually;
use edge_tests::netcut::NetCut;
use edge_tests::origin::{Origin, Reply};
use edge_tests::postgres::Postgres;
use edge_tests::purge_api::{PurgeApi, PurgeApiSpec};
use serde_json::Value;

const OBJECT: &str = "/obj";
const PURGE: &str = r#"{"urls": ["http://example.com/obj"]}"#;

fn json(r: &client::Response) -> Value {
    serde_json::from_str(&r.text()).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
}

/// An origin whose body is its current version, a shield in front of it, and an edge whose
/// origin is the shield. purge-api reaches the shield's admin listener through a link the test
/// can cut.
struct Tiers {
    version: Arc<AtomicU64>,
    _origin: Origin,
    shield: Edge,
    edge: Edge,
    shield_link: NetCut,
}

impl Tiers {
    fn start() -> Tiers {
        let version = Arc::new(AtomicU64::new(1));
        let v = version.clone();
        let origin = Origin::start(move |_| {
            Reply::ok(
                format!("v{}", v.load(Ordering::SeqCst)),
                &[("Cache-Control", "max-age=3600")],
            )
        });
        let shield = Edge::with_pool(&format!("servers: [\"{}\"]", origin.addr))
            .node_id("shield-1")
            .start();
        let edge = Edge::with_pool(&format!("servers: [\"{}\"]", shield.addr))
            .node_id("edge-1")
            .start();
        let shield_link = NetCut::start(shield.admin);
        Tiers {
            version,
            _origin: origin,
            shield,
            edge,
            shield_link,
        }
    }

    /// A purge-api delivering to both, the shield as a shield.
    fn purge_api(&self) -> PurgeApiSpec {
        PurgeApi::builder()
            .edges(&[self.edge.admin])
            .shields(&[self.shield_link.addr])
    }

    fn body(&self) -> String {
        self.edge.get(OBJECT, &[]).text()
    }

    /// Both tiers store version 1, and the origin moves to version 2.
    fn cache_v1_then_change(&self) {
        assert_eq!(self.body(), "v1");
        assert!(self.edge.get(OBJECT, &[]).cache_status().contains("hit"));
        assert!(self.shield.get(OBJECT, &[]).cache_status().contains("hit"));
        self.version.store(2, Ordering::SeqCst);
    }
}

fn applied(admin: SocketAddr) -> u64 {
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let r = client::get(admin, "x", "/purge/state", &[("Authorization", &auth)]);
    json(&r)["applied_seq"].as_u64().unwrap_or(0)
}

fn send(api: &PurgeApi) -> (String, u64) {
    let r = api.purge(PURGE, "");
    assert_eq!(r.status, 202, "{}", r.text());
    let v = json(&r);
    (
        v["id"].as_str().unwrap().to_string(),
        v["seq"].as_u64().unwrap(),
    )
}

fn status(api: &PurgeApi, id: &str) -> Value {
    json(&api.get(&format!("/v1/purge/{id}")))
}

/// The shield's link is cut while a purge is sent: the edge is not sent it (it keeps serving
/// its copy, and a refetch could only have brought the shield's old one back), and applies it
/// once the shield has; the refetch then reaches the origin's new version.
fn a_cut_shield_holds_the_purge_back(apis: &[PurgeApi], t: &Tiers) {
    t.cache_v1_then_change();
    t.shield_link.set_cut(true);
    let (id, seq) = send(&apis[0]);
    // Held: purge-api has tried the shield and failed, and says the edges wait on it.
    eventually(
        Duration::from_secs(10),
        "the shield found unreachable",
        || {
            let s = status(&apis[0], &id);
            let shield_down = s["nodes"]
                .as_array()?
                .iter()
                .any(|n| n["tier"] == "shield" && n["up"] == false);
            (shield_down && s["tiers"]["edge"]["held"] == true).then_some(())
        },
    );
    for api in apis {
        // Each replica's own view agrees once it has heard of the purge.
        eventually(Duration::from_secs(10), "every replica holding", || {
            (status(api, &id)["tiers"]["edge"]["held"] == true).then_some(())
        });
    }
    assert!(
        applied(t.edge.admin) < seq,
        "the edge was sent the purge before the shield"
    );
    // Meanwhile the edge serves what it has; nothing it fetches could be newer than the shield.
    assert_eq!(t.body(), "v1");
    assert!(t.edge.get(OBJECT, &[]).cache_status().contains("hit"));

    t.shield_link.set_cut(false);
    eventually(
        Duration::from_secs(20),
        "both tiers applied the purge",
        || (status(&apis[0], &id)["complete"] == true).then_some(()),
    );
    assert!(applied(t.shield.admin) >= seq && applied(t.edge.admin) >= seq);
    assert_eq!(t.body(), "v2", "the edge refetched through a purged shield");
    let s = status(&apis[0], &id);
    assert_eq!(s["tiers"]["shield"]["complete"], true, "{s}");
    assert_eq!(s["tiers"]["edge"]["held"], false, "{s}");
}

#[test]
fn a_shield_applies_each_purge_before_the_edges_are_sent_it() {
    let t = Tiers::start();
    let api = t.purge_api().start();
    a_cut_shield_holds_the_purge_back(std::slice::from_ref(&api), &t);
    // The purge went through the gate once, released by the shield.
    assert_eq!(
        api.metric("purge_api_shield_wait_seconds_count{released_by=\"shields\"}"),
        1.0
    );
}

#[test]
fn replicas_on_postgres_hold_the_edges_back_for_the_shields_too() {
    let pg = Postgres::start();
    let t = Tiers::start();
    let keys = format!("url: \"{}\", lease: 2s, poll: 100ms", pg.url());
    let apis = [
        t.purge_api().postgres(&keys).start(),
        t.purge_api().postgres(&keys).start(),
    ];
    a_cut_shield_holds_the_purge_back(&apis, &t);
}

#[test]
fn a_shield_away_longer_than_the_wait_holds_the_edges_back_no_more() {
    let t = Tiers::start();
    let api = t.purge_api().shield_wait("1s").start();
    t.cache_v1_then_change();
    t.shield_link.set_cut(true);
    let (id, seq) = send(&api);
    eventually(
        Duration::from_secs(15),
        "the edge applies it without the shield",
        || (applied(t.edge.admin) >= seq).then_some(()),
    );
    let s = status(&api, &id);
    assert_eq!(s["complete"], false, "{s}");
    assert_eq!(s["tiers"]["shield"]["applied"], 0, "{s}");
    assert_eq!(s["tiers"]["edge"]["complete"], true, "{s}");
    assert_eq!(
        api.metric("purge_api_shield_wait_seconds_count{released_by=\"timeout\"}"),
        1.0
    );
    // Away for longer than the wait, the shield holds nothing back: the next purge goes to the
    // edge without waiting out the second.
    let (_, next) = send(&api);
    eventually(Duration::from_secs(5), "the next purge applied", || {
        (applied(t.edge.admin) >= next).then_some(())
    });
    // Back, the shield catches up from its position.
    t.shield_link.set_cut(false);
    eventually(Duration::from_secs(20), "the shield caught up", || {
        (applied(t.shield.admin) >= next).then_some(())
    });
    assert_eq!(status(&api, &id)["complete"], true);
}
