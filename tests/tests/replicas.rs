//! Several purge-api replicas sharing the purge log in a real PostgreSQL server: sequence
//! numbers from the database, one replica delivering to each node (a lease), and a replica
//! killed mid fan-out whose nodes another replica takes over.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed set-up is a failed test

use std::net::SocketAddr;
use std::time::Duration;

use edge_tests::client;
use edge_tests::edge::{Edge, ADMIN_TOKEN};
use edge_tests::eventually;
use edge_tests::netcut::NetCut;
use edge_tests::origin::{Origin, Reply};
use edge_tests::pki::Ca;
use edge_tests::postgres::Postgres;
use edge_tests::purge_api::PurgeApi;
use serde_json::Value;

const CACHEABLE: &[(&str, &str)] = &[("cache-control", "max-age=3600")];
/// Short leases so a dead replica's nodes move within the test's patience.
const PG_TUNING: &str = "lease: 2s, poll: 100ms";

fn json(r: &client::Response) -> Value {
    serde_json::from_str(&r.text()).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
}

fn purge(api: &PurgeApi, path: &str) -> u64 {
    let r = api.purge(&format!(r#"{{"urls": ["http://example.com{path}"]}}"#), "");
    assert_eq!(r.status, 202, "{}", r.text());
    json(&r)["seq"].as_u64().unwrap()
}

/// The node's own durable position: the last purge it applied.
fn applied(edge_admin: SocketAddr) -> u64 {
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let r = client::get(edge_admin, "x", "/purge/state", &[("Authorization", &auth)]);
    json(&r)["applied_seq"].as_u64().unwrap_or(0)
}

/// Which replica delivers to each node, as `api` sees it (`None` until leases settle).
fn holders(api: &PurgeApi) -> Option<Vec<(String, String)>> {
    let nodes = json(&api.get("/v1/nodes"));
    nodes["nodes"]
        .as_array()?
        .iter()
        .map(|n| {
            Some((
                n["url"].as_str()?.to_string(),
                n["delivered_by"].as_str()?.to_string(),
            ))
        })
        .collect()
}

fn replica_id(api: &PurgeApi) -> String {
    json(&api.get("/v1/nodes"))["replica"]
        .as_str()
        .unwrap()
        .to_string()
}

fn cached(edge: &Edge, path: &str) -> bool {
    edge.get(path, &[]).cache_status_entry().matches("hit")
}

/// Two edges in front of one origin, on one PostgreSQL server.
struct Fleet {
    pg: Postgres,
    _origin: Origin,
    edges: [Edge; 2],
}

impl Fleet {
    fn start() -> Fleet {
        let pg = Postgres::start();
        let origin = Origin::start(|_| Reply::ok("x", CACHEABLE));
        let edges = [
            Edge::builder(origin.addr).start(),
            Edge::builder(origin.addr).start(),
        ];
        Fleet {
            pg,
            _origin: origin,
            edges,
        }
    }

    /// Two replicas delivering to `nodes`, with these `postgres:` keys beside `url`.
    fn replicas(&self, nodes: &[SocketAddr], tuning: &str) -> [PurgeApi; 2] {
        let settings = format!("url: \"{}\", {tuning}", self.pg.url());
        [
            PurgeApi::start_replica(nodes, &settings),
            PurgeApi::start_replica(nodes, &settings),
        ]
    }

    fn admins(&self) -> [SocketAddr; 2] {
        [self.edges[0].admin, self.edges[1].admin]
    }
}

/// Starts a replica that must refuse to start; returns what the harness saw (exit status and
/// log).
fn start_failure(nodes: &[SocketAddr], postgres: &str) -> String {
    std::panic::catch_unwind(|| PurgeApi::start_replica(nodes, postgres))
        .err()
        .and_then(|e| e.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| panic!("purge-api started with `{postgres}`"))
}

#[test]
fn replicas_share_one_log_with_database_sequences_and_one_deliverer_per_node() {
    let fleet = Fleet::start();
    let (pg, edges, admins) = (&fleet.pg, &fleet.edges, fleet.admins());
    let apis = fleet.replicas(&admins, PG_TUNING);
    for e in edges {
        for p in ["/a", "/b", "/c"] {
            e.get(p, &[]);
            assert!(cached(e, p));
        }
    }
    // Sequences interleave across replicas without a gap or a repeat.
    let seqs = [
        purge(&apis[0], "/a"),
        purge(&apis[1], "/b"),
        purge(&apis[0], "/c"),
    ];
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(pg.sql("SELECT head FROM purge_meta"), "3");
    assert_eq!(pg.sql("SELECT count(*) FROM purge_log"), "3");
    eventually(
        Duration::from_secs(20),
        "every node to apply all three",
        || admins.iter().all(|a| applied(*a) == 3).then_some(()),
    );
    for e in edges {
        for p in ["/a", "/b", "/c"] {
            assert!(!cached(e, p), "{p} still cached");
        }
    }
    // Both replicas agree on who delivers to each node, and each node has exactly one.
    let agreed = eventually(Duration::from_secs(10), "the replicas to agree", || {
        let (a, b) = (holders(&apis[0])?, holders(&apis[1])?);
        (a == b).then_some(a)
    });
    let ids = [replica_id(&apis[0]), replica_id(&apis[1])];
    assert_ne!(ids[0], ids[1]);
    assert_eq!(agreed.len(), 2);
    assert!(agreed.iter().all(|(_, h)| ids.contains(h)), "{agreed:?}");
    assert_eq!(
        pg.sql("SELECT count(*) FROM purge_nodes WHERE lease_until > now()"),
        "2"
    );
    // Concurrent purges through both replicas: every sequence handed out once, none skipped.
    let mut seqs: Vec<u64> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let api = &apis[w % 2];
                s.spawn(move || {
                    (0..10)
                        .map(|i| purge(api, &format!("/w{w}-{i}")))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    seqs.sort_unstable();
    assert_eq!(seqs, (4..=43).collect::<Vec<u64>>());
    eventually(
        Duration::from_secs(20),
        "every node to apply all 43",
        || admins.iter().all(|a| applied(*a) == 43).then_some(()),
    );
    // A purge logged by one replica reports complete from the other.
    let id = json(&apis[1].purge(r#"{"urls": ["http://example.com/a"]}"#, ""))["id"]
        .as_str()
        .unwrap()
        .to_string();
    eventually(
        Duration::from_secs(10),
        "the other replica to see it done",
        || {
            json(&apis[0].get(&format!("/v1/purge/{id}")))["complete"]
                .as_bool()
                .filter(|c| *c)
        },
    );
}

#[test]
fn a_replica_killed_mid_fan_out_hands_its_nodes_to_another_in_order() {
    let fleet = Fleet::start();
    let edges = &fleet.edges;
    let cut = NetCut::start(edges[1].admin);
    let nodes = [edges[0].admin, cut.addr];
    let mut apis = fleet.replicas(&nodes, PG_TUNING);
    let cut_url = format!("http://{}", cut.addr);
    let holder = eventually(
        Duration::from_secs(10),
        "a replica to take the cut node",
        || {
            holders(&apis[0])?
                .into_iter()
                .find(|(url, _)| *url == cut_url)
                .map(|(_, h)| h)
        },
    );
    let (dying, survivor) = if replica_id(&apis[0]) == holder {
        (0, 1)
    } else {
        (1, 0)
    };
    let paths = ["/p1", "/p2", "/p3"];
    for e in edges {
        for p in paths {
            e.get(p, &[]);
            assert!(cached(e, p));
        }
    }
    cut.set_cut(true);
    // Logged through both replicas while the replica delivering to the cut node retries it.
    let last = [
        purge(&apis[dying], paths[0]),
        purge(&apis[survivor], paths[1]),
        purge(&apis[dying], paths[2]),
    ][2];
    assert_eq!(last, 3);
    eventually(
        Duration::from_secs(10),
        "the reachable node to apply all",
        || (applied(edges[0].admin) == 3).then_some(()),
    );
    assert!(
        paths.iter().all(|p| cached(&edges[1], p)),
        "the cut node was reached"
    );
    eventually(
        Duration::from_secs(10),
        "the dying replica to be retrying the cut node",
        || apis[dying].log().contains("node unreachable").then_some(()),
    );
    // The other replica learns of it through the database.
    eventually(
        Duration::from_secs(10),
        "the survivor to see the cut node down",
        || {
            let nodes = json(&apis[survivor].get("/v1/nodes"));
            let cut_node = nodes["nodes"]
                .as_array()?
                .iter()
                .find(|n| n["url"] == cut_url.as_str())?
                .clone();
            (cut_node["up"] == false && cut_node["last_error"].is_string()).then_some(())
        },
    );

    apis[dying].kill9();
    cut.set_cut(false);
    eventually(
        Duration::from_secs(20),
        "the survivor to deliver to the cut node",
        || (applied(edges[1].admin) == 3).then_some(()),
    );
    for p in paths {
        assert!(!cached(&edges[1], p), "{p} still cached on the cut node");
    }
    let survivor_id = replica_id(&apis[survivor]);
    let now = holders(&apis[survivor]).unwrap();
    assert!(now.iter().all(|(_, h)| *h == survivor_id), "{now:?}");
    // The log is written by a background thread: the line may follow what it announced.
    eventually(Duration::from_secs(10), "the take-over logged", || {
        apis[survivor]
            .log()
            .contains("delivering to this node")
            .then_some(())
    });
    // The survivor goes on alone.
    edges[0].get("/p1", &[]);
    edges[1].get("/p1", &[]);
    let seq = purge(&apis[survivor], "/p1");
    assert_eq!(seq, 4);
    eventually(
        Duration::from_secs(10),
        "both nodes to apply the next purge",
        || (applied(edges[0].admin) == 4 && applied(edges[1].admin) == 4).then_some(()),
    );
}

#[test]
fn news_between_replicas_travels_by_notification_not_by_poll() {
    let fleet = Fleet::start();
    let edges = &fleet.edges;
    // A poll far longer than the deadlines below: only notifications can meet them.
    let apis = fleet.replicas(&fleet.admins(), "lease: 60s, poll: 15s");
    let settled = eventually(
        Duration::from_secs(5),
        "both nodes to have a deliverer",
        || {
            let h = holders(&apis[0])?;
            (h.len() == 2).then_some(h)
        },
    );
    let ids = [replica_id(&apis[0]), replica_id(&apis[1])];
    let held_by = |i: usize| settled.iter().filter(|(_, h)| *h == ids[i]).count();
    // Logged through the replica delivering to fewer nodes (usually none): the one delivering
    // learns of the purge, and it of the nodes' progress, only through the database.
    let quiet = if held_by(0) <= held_by(1) { 0 } else { 1 };
    for e in edges {
        e.get("/n", &[]);
    }
    let r = apis[quiet].purge(r#"{"urls": ["http://example.com/n"]}"#, "wait=5s");
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(json(&r)["complete"], true, "{}", r.text());
    for e in edges {
        e.get("/n", &[]).assert_cache_status("fwd=miss");
    }
}

#[test]
fn a_database_outage_refuses_purges_and_loses_none_acknowledged() {
    let mut pg = Postgres::start();
    let origin = Origin::start(|_| Reply::ok("x", CACHEABLE));
    let edge = Edge::builder(origin.addr).start();
    let tuning = format!("url: \"{}\", {PG_TUNING}", pg.url());
    let api = PurgeApi::start_replica(&[edge.admin], &tuning);
    assert_eq!(purge(&api, "/before"), 1);
    pg.stop();
    let refused = api.purge(r#"{"urls": ["http://example.com/during"]}"#, "");
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert!(refused.text().contains("not logged"), "{}", refused.text());
    pg.start_again();
    // The replica reconnects on its own; the refused purge was never logged.
    let seq = eventually(Duration::from_secs(20), "purges to be taken again", || {
        let r = api.purge(r#"{"urls": ["http://example.com/after"]}"#, "");
        (r.status == 202).then(|| json(&r)["seq"].as_u64().unwrap())
    });
    assert_eq!(seq, 2);
    assert_eq!(pg.sql("SELECT count(*) FROM purge_log"), "2");
    eventually(Duration::from_secs(20), "the node to apply both", || {
        (applied(edge.admin) == 2).then_some(())
    });
}

#[test]
fn a_replica_speaks_tls_to_the_database_and_verifies_its_certificate() {
    let certs = edge_tests::edge::Scratch::new("pg-ca");
    let ca = Ca::new(&certs.0, "pg-ca");
    let pg = Postgres::start_tls(&ca.leaf("localhost", "pg"));
    let origin = Origin::start(|_| Reply::ok("x", CACHEABLE));
    let edge = Edge::builder(origin.addr).start();
    let url = format!(
        "postgres://edge@localhost:{}/postgres?sslmode=require",
        pg.port
    );
    let tuning = format!(
        "url: \"{url}\", ca_file: \"{}\", {PG_TUNING}",
        ca.files.cert.display()
    );
    let api = PurgeApi::start_replica(&[edge.admin], &tuning);
    assert_eq!(purge(&api, "/tls"), 1);
    // The server saw an encrypted session from purge-api.
    assert_eq!(
        pg.sql(
            "SELECT count(*) > 0 FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
                WHERE ssl AND application_name = 'purge-api'"
        ),
        "t"
    );
    eventually(Duration::from_secs(10), "the node to apply it", || {
        (applied(edge.admin) == 1).then_some(())
    });
    // A certificate from a CA the replica was not given is refused: no plaintext fallback.
    let other = Ca::new(&certs.0, "other-ca");
    let message = start_failure(
        &[edge.admin],
        &format!(
            "url: \"{url}\", ca_file: \"{}\"",
            other.files.cert.display()
        ),
    );
    assert!(message.contains("purge-api exited"), "{message}");
    assert!(message.to_lowercase().contains("certificate"), "{message}");
}

#[test]
fn a_replica_cannot_start_without_its_database() {
    let port = edge_tests::free_port();
    let origin = Origin::start(|_| Reply::ok("x", CACHEABLE));
    let edge = Edge::builder(origin.addr).start();
    let message = start_failure(
        &[edge.admin],
        &format!("url: \"postgres://edge@127.0.0.1:{port}/postgres\""),
    );
    // Not exit 64 (a bad configuration): a supervisor should retry an unreachable database.
    assert!(
        message.contains("purge-api exited with exit status: 1:"),
        "{message}"
    );
    assert!(message.contains("PostgreSQL"), "{message}");
    assert!(message.contains("refused"), "{message}");
    // A connection string that does not parse is a bad configuration: 64, naming it.
    let message = start_failure(&[edge.admin], "url: \"postgres://edge@[::1/x\"");
    assert!(
        message.contains("purge-api exited with exit status: 64:"),
        "{message}"
    );
    assert!(message.contains("postgres.url"), "{message}");
}
