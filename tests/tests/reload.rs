//! SIGHUP reloads: a new rule takes effect without a restart, the cache and requests in flight
//! survive, and a broken file is refused while the old configuration keeps serving.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed set-up is a failed test

use std::time::Duration;

use edge_tests::edge::Edge;
use edge_tests::eventually;
use edge_tests::origin::{Origin, Reply};

/// An origin that gives no freshness: only a rule makes its responses cacheable.
fn no_freshness() -> Origin {
    Origin::start(|r| {
        let reply = Reply::ok(format!("body of {}", r.target), &[]);
        if r.path() == "/slow" {
            reply.delayed(Duration::from_millis(1500))
        } else {
            reply
        }
    })
}

fn yaml(origin: &Origin, port: u16, admin: u16, rules: &str) -> String {
    Edge::with_pool(&format!("servers: [\"{}\"]", origin.addr))
        .rules(rules)
        .yaml(port, admin)
}

const RULE_A: &str = "- { match: { path_prefix: /a }, default_ttl: 1h }";
const RULE_B: &str = "- { match: { path_prefix: /b }, default_ttl: 1h }";

#[test]
fn sighup_applies_a_new_rule_keeps_the_cache_and_finishes_requests_in_flight() {
    let origin = no_freshness();
    let edge = Edge::start_config("edge-test", |p, a| yaml(&origin, p, a, RULE_A));
    let (port, admin) = (edge.addr.port(), edge.admin.port());
    edge.get("/a", &[]);
    edge.get("/a", &[]).assert_cache_status("hit");
    edge.get("/b", &[]);
    edge.get("/b", &[]).assert_cache_status("fwd=miss");
    assert_eq!(origin.count("/b"), 2, "no rule for /b yet: not stored");

    // A request in flight when the reload lands completes under the old configuration.
    let addr = edge.addr;
    let slow =
        std::thread::spawn(move || edge_tests::client::get(addr, "example.com", "/slow", &[]));
    std::thread::sleep(Duration::from_millis(200));
    let new = yaml(&origin, port, admin, &format!("{RULE_A}\n{RULE_B}"));
    assert!(edge.reload(&new), "reload applied: {}", edge.log());
    assert_eq!(edge.metric("edge_config_generation"), 2.0);
    let slow = slow.join().unwrap();
    assert_eq!(slow.status, 200);
    assert_eq!(slow.text(), "body of /slow");

    edge.get("/b", &[]).assert_cache_status("stored");
    edge.get("/b", &[]).assert_cache_status("hit");
    assert_eq!(origin.count("/b"), 3);
    // The cache survived: /a is still a hit, never fetched again.
    edge.get("/a", &[]).assert_cache_status("hit");
    assert_eq!(origin.count("/a"), 1);
}

#[test]
fn sighup_with_a_broken_file_keeps_serving_the_old_configuration() {
    let origin = no_freshness();
    let edge = Edge::start_config("edge-test", |p, a| yaml(&origin, p, a, RULE_A));
    let (port, admin) = (edge.addr.port(), edge.admin.port());
    edge.get("/a", &[]);
    edge.get("/a", &[]).assert_cache_status("hit");

    // Not YAML at all, then valid YAML that fails validation, then a file that validates but
    // names an origin that cannot be resolved.
    let good = yaml(&origin, port, admin, RULE_A);
    let broken = [
        format!("{good}\n  : : ["),
        good.replace("default_ttl: 1h", "default_ttl: soon"),
        good.replace(&origin.addr.to_string(), "no-such-host.invalid:80"),
    ];
    for (i, bad) in broken.iter().enumerate() {
        assert!(!edge.reload(bad), "broken file {i} refused");
        // The log is written by a background thread: the line may follow the metric.
        eventually(Duration::from_secs(10), "the refusal logged", || {
            (edge.log().matches("reload refused").count() > i).then_some(())
        });
        edge.get("/a", &[]).assert_cache_status("hit");
        assert_eq!(edge.get("/other", &[]).status, 200);
    }
    assert!(
        edge.log()
            .contains("edge.yaml:13: sites[0].rules[0].default_ttl: `soon` is not a duration"),
        "the error names the file, the line, the field and the value: {}",
        edge.log()
    );
    assert_eq!(edge.metric("edge_config_generation"), 1.0);
    // The rules in force are still the first file's: /b is not stored.
    edge.get("/b", &[]);
    edge.get("/b", &[]).assert_cache_status("fwd=miss");
    // And a good file afterwards applies.
    assert!(edge.reload(&yaml(&origin, port, admin, RULE_B)));
    edge.get("/b", &[]);
    edge.get("/b", &[]).assert_cache_status("hit");
}

#[test]
fn sighup_moves_a_site_to_another_origin() {
    let old = Origin::start(|_| Reply::ok("old", &[("cache-control", "no-store")]));
    let new = Origin::start(|_| Reply::ok("new", &[("cache-control", "no-store")]));
    let edge = Edge::start_config("edge-test", |p, a| yaml(&old, p, a, ""));
    assert_eq!(edge.get("/x", &[]).text(), "old");
    let moved = yaml(&new, edge.addr.port(), edge.admin.port(), "");
    assert!(edge.reload(&moved));
    for i in 0..5 {
        assert_eq!(edge.get(&format!("/y{i}"), &[]).text(), "new");
    }
    assert_eq!(old.requests().len(), 1);
}
