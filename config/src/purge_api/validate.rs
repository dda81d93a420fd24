//! Turns the purge-api file format into runtime types, collecting every problem on the way.

use std::path::PathBuf;
use std::time::Duration;

use super::file::{self, PurgeApiFile};
use super::*;
use crate::check::{dur, socket_addr, Problems};
use crate::Problem;

/// Validates a parsed purge-api file. Returns every problem found, in file order.
pub fn validate(f: PurgeApiFile) -> Result<PurgeApiConfig, Vec<Problem>> {
    let mut p = Problems::default();
    let listen = socket_addr(&mut p, &f.listen, "listen");
    if f.tokens_file.value.is_empty() {
        p.at(&f.tokens_file, "tokens_file", "must be a file path");
    }
    let store = store(&mut p, &f);
    let nodes = nodes(&mut p, &f.nodes);
    let limits = limits(&mut p, &f.limits);
    let delivery = delivery(&mut p, &f.delivery);
    let compat = compat(&mut p, &f.compat);
    p.finish(|| {
        Some(PurgeApiConfig {
            listen: listen?,
            tokens_file: PathBuf::from(&f.tokens_file.value),
            store: store?,
            nodes,
            limits,
            delivery,
            compat,
        })
    })
}

fn store(p: &mut Problems, f: &PurgeApiFile) -> Option<Store> {
    match (&f.store, &f.postgres) {
        (Some(s), None) => {
            if s.value.is_empty() {
                p.at(s, "store", "must be a file path");
            }
            Some(Store::Embedded(PathBuf::from(&s.value)))
        }
        (None, Some(pg)) => postgres(p, pg).map(Store::Postgres),
        (Some(s), Some(_)) => {
            p.at(
                s,
                "store",
                "give either `store` (the embedded log) or `postgres`, not both",
            );
            None
        }
        (None, None) => {
            p.at(
                &f.listen,
                "store",
                "is missing: give the embedded log's file path, or a `postgres` block",
            );
            None
        }
    }
}

fn postgres(p: &mut Problems, f: &serde_saphyr::Spanned<file::PostgresFile>) -> Option<Postgres> {
    let pg = &f.value;
    let url = match (&pg.url, &pg.url_file) {
        (Some(u), None) if u.value.trim().is_empty() => {
            p.at(u, "postgres.url", "must be a connection string");
            None
        }
        (Some(u), None) => Some(PostgresUrl::Inline(u.value.trim().to_string())),
        (None, Some(u)) if u.value.is_empty() => {
            p.at(u, "postgres.url_file", "must be a file path");
            None
        }
        (None, Some(u)) => Some(PostgresUrl::File(PathBuf::from(&u.value))),
        (Some(u), Some(_)) => {
            p.at(u, "postgres.url", "give `url` or `url_file`, not both");
            None
        }
        (None, None) => {
            p.at(
                f,
                "postgres",
                "needs `url` or `url_file` (a connection string such as postgres://purge@db/purges)",
            );
            None
        }
    };
    let lease = dur(&pg.lease).unwrap_or(Duration::from_secs(10));
    let poll = dur(&pg.poll).unwrap_or(Duration::from_millis(250));
    if let Some(l) = &pg.lease {
        if l.value.0 < Duration::from_secs(1) {
            p.at(l, "postgres.lease", "must be at least 1s");
        }
    }
    if let Some(v) = &pg.poll {
        if v.value.0.is_zero() {
            p.at(v, "postgres.poll", "must be longer than 0s");
        } else if v.value.0.saturating_mul(4) > lease {
            // A lease is renewed on a poll tick once half of it has run: four ticks per lease
            // leave room for one slow round trip before it runs out.
            p.at(
                v,
                "postgres.poll",
                "must be at most a quarter of postgres.lease",
            );
        }
    }
    if let Some(ca) = &pg.ca_file {
        if ca.value.is_empty() {
            p.at(ca, "postgres.ca_file", "must be a file path");
        }
    }
    Some(Postgres {
        url: url?,
        ca_file: pg.ca_file.as_ref().map(|c| PathBuf::from(&c.value)),
        lease,
        poll,
    })
}

fn nodes(p: &mut Problems, f: &serde_saphyr::Spanned<file::NodesFile>) -> Nodes {
    let n = &f.value;
    if n.static_nodes.is_empty() && n.dns.is_empty() {
        p.at(
            f,
            "nodes",
            "lists no node: give `static` admin URLs or `dns` names",
        );
    }
    let list = node_list(p, "nodes", &n.static_nodes, &n.dns);
    let shields = match &n.shields {
        Some(s) => {
            let shields = node_list(p, "nodes.shields", &s.value.static_nodes, &s.value.dns);
            for (i, url) in s.value.static_nodes.iter().enumerate() {
                if list
                    .static_nodes
                    .contains(&url.value.trim_end_matches('/').to_string())
                {
                    p.at(
                        url,
                        format!("nodes.shields.static[{i}]"),
                        "is listed under `nodes.static` too: a node is a shield or not",
                    );
                }
            }
            if shields.is_empty() {
                p.at(
                    s,
                    "nodes.shields",
                    "lists no shield: give `static` admin URLs or `dns` names, or leave it out",
                );
            }
            shields
        }
        None => NodeList::default(),
    };
    if n.token_file.value.is_empty() {
        p.at(&n.token_file, "nodes.token_file", "must be a file path");
    }
    let refresh = dur(&n.refresh).unwrap_or(Duration::from_secs(30));
    if let Some(r) = &n.refresh {
        if r.value.0 < Duration::from_secs(1) {
            p.at(r, "nodes.refresh", "must be at least 1s");
        }
    }
    let shield_wait = dur(&n.shield_wait).unwrap_or(Duration::from_secs(30));
    if let Some(w) = &n.shield_wait {
        if w.value.0 > Duration::from_secs(3600) {
            p.at(
                w,
                "nodes.shield_wait",
                "must be at most 1h: the other nodes wait this long for a shield",
            );
        }
    }
    Nodes {
        static_nodes: list.static_nodes,
        dns: list.dns,
        token_file: PathBuf::from(&n.token_file.value),
        refresh,
        shields,
        shield_wait,
    }
}

/// The admin URLs and DNS names of one list of nodes, `at` naming where it is in the file.
fn node_list(
    p: &mut Problems,
    at: &str,
    static_nodes: &[serde_saphyr::Spanned<String>],
    names: &[serde_saphyr::Spanned<file::DnsFile>],
) -> NodeList {
    let mut urls: Vec<String> = Vec::new();
    for (i, s) in static_nodes.iter().enumerate() {
        let url = s.value.trim_end_matches('/');
        let ok = url
            .strip_prefix("http://")
            .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'));
        if !ok {
            p.at(
                s,
                format!("{at}.static[{i}]"),
                format!(
                    "`{}` is not an admin URL like `http://10.0.1.1:9080`",
                    s.value
                ),
            );
        } else if urls.iter().any(|x| x == url) {
            p.at(s, format!("{at}.static[{i}]"), "is listed twice");
        } else {
            urls.push(url.to_string());
        }
    }
    let mut dns = Vec::new();
    for (i, d) in names.iter().enumerate() {
        if d.value.name.is_empty() || d.value.name.contains('/') {
            p.at(d, format!("{at}.dns[{i}].name"), "must be a DNS name");
        }
        if d.value.port == 0 {
            p.at(d, format!("{at}.dns[{i}].port"), "must be a port (1-65535)");
        }
        if d.value.scheme.as_deref().is_some_and(|s| s != "http") {
            p.at(
                d,
                format!("{at}.dns[{i}].scheme"),
                "must be `http`: the admin listener speaks plain HTTP",
            );
        }
        dns.push(DnsNodes {
            name: d.value.name.clone(),
            port: d.value.port,
        });
    }
    NodeList {
        static_nodes: urls,
        dns,
    }
}

fn compat(p: &mut Problems, f: &file::CompatFile) -> Compat {
    let varnish_purge_from = f
        .varnish_purge_from
        .iter()
        .enumerate()
        .filter_map(|(i, c)| match crate::cidr::Cidr::parse(&c.value) {
            Ok(net) => Some(net),
            Err(e) => {
                p.at(c, format!("compat.varnish_purge_from[{i}]"), e);
                None
            }
        })
        .collect();
    Compat { varnish_purge_from }
}

fn limits(p: &mut Problems, f: &file::LimitsFile) -> Limits {
    if let Some(m) = &f.max_items {
        if m.value == 0 {
            p.at(m, "limits.max_items", "must be at least 1");
        }
    }
    if let Some(m) = &f.max_body {
        if m.value.0 < 1024 {
            p.at(m, "limits.max_body", "must be at least 1KiB");
        }
    }
    if let Some(r) = &f.rate_per_second {
        if !(r.value > 0.0 && r.value.is_finite()) {
            p.at(r, "limits.rate_per_second", "must be a positive number");
        }
    }
    if let Some(b) = &f.burst {
        if b.value == 0 {
            p.at(b, "limits.burst", "must be at least 1");
        }
    }
    Limits {
        max_items: f
            .max_items
            .as_ref()
            .map_or(crate::purge::DEFAULT_MAX_ITEMS, |m| m.value),
        max_body: f.max_body.as_ref().map_or(1 << 20, |m| m.value.0),
        rate_per_second: f.rate_per_second.as_ref().map_or(20.0, |r| r.value),
        burst: f.burst.as_ref().map_or(100, |b| b.value),
    }
}

fn delivery(p: &mut Problems, f: &file::DeliveryFile) -> Delivery {
    let d = Delivery {
        timeout: dur(&f.timeout).unwrap_or(Duration::from_secs(5)),
        poll: dur(&f.poll).unwrap_or(Duration::from_secs(5)),
        retry_min: dur(&f.retry_min).unwrap_or(Duration::from_millis(100)),
        retry_max: dur(&f.retry_max).unwrap_or(Duration::from_secs(10)),
        retain: f.retain.as_ref().map_or(100_000, |r| r.value),
    };
    for (field, v) in [
        ("delivery.timeout", &f.timeout),
        ("delivery.poll", &f.poll),
        ("delivery.retry_min", &f.retry_min),
        ("delivery.retry_max", &f.retry_max),
    ] {
        if let Some(v) = v {
            if v.value.0.is_zero() {
                p.at(v, field, "must be longer than 0s");
            }
        }
    }
    if let Some(r) = &f.retry_max {
        if d.retry_max < d.retry_min {
            p.at(
                r,
                "delivery.retry_max",
                "must not be shorter than retry_min",
            );
        }
    }
    if let Some(r) = &f.retain {
        if r.value == 0 {
            p.at(r, "delivery.retain", "must be at least 1");
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"listen: 127.0.0.1:7070
tokens_file: /etc/purge-api/tokens
store: /var/lib/purge-api/purges.db
nodes:
  static: ["http://10.0.1.1:9080", "http://10.0.1.2:9080"]
  dns: [{ name: edge-admin.cdn.svc.cluster.local, port: 9080 }]
  token_file: /etc/purge-api/edge-admin-token
"#;

    fn parse(yaml: &str) -> Result<PurgeApiConfig, Vec<Problem>> {
        crate::load::read_checked(yaml, validate)
    }

    fn rejects(yaml: &str, line: u64, field: &str) {
        let problems = parse(yaml).expect_err("accepted");
        assert!(
            problems.iter().any(|p| p.field == field && p.line == line),
            "no problem for `{field}` at line {line} in {problems:?}"
        );
    }

    #[test]
    fn the_design_sample_is_valid() {
        let c = parse(BASE).unwrap();
        assert_eq!(c.nodes.static_nodes.len(), 2);
        assert_eq!(c.nodes.dns[0].port, 9080);
        assert_eq!(c.limits.max_items, 1000);
    }

    #[test]
    fn each_rule_rejects() {
        rejects(&BASE.replace("127.0.0.1:7070", "nowhere"), 1, "listen");
        rejects(
            &BASE.replace("/etc/purge-api/tokens", "\"\""),
            2,
            "tokens_file",
        );
        rejects(
            &BASE.replace("http://10.0.1.2:9080", "10.0.1.2:9080"),
            5,
            "nodes.static[1]",
        );
        rejects(
            &BASE.replace("http://10.0.1.2:9080", "http://10.0.1.1:9080"),
            5,
            "nodes.static[1]",
        );
        rejects(
            &BASE.replace("port: 9080", "port: 0"),
            6,
            "nodes.dns[0].port",
        );
        rejects(
            &BASE.replace("port: 9080 }", "port: 9080, scheme: https }"),
            6,
            "nodes.dns[0].scheme",
        );
        let no_nodes = BASE
            .replace(
                "  static: [\"http://10.0.1.1:9080\", \"http://10.0.1.2:9080\"]\n",
                "",
            )
            .replace(
                "  dns: [{ name: edge-admin.cdn.svc.cluster.local, port: 9080 }]\n",
                "",
            );
        rejects(&no_nodes, 5, "nodes");
        let extra = |s: &str| format!("{BASE}{s}");
        rejects(&extra("limits: { max_items: 0 }\n"), 8, "limits.max_items");
        rejects(&extra("limits: { max_body: 10 }\n"), 8, "limits.max_body");
        rejects(
            &extra("limits: { rate_per_second: -1 }\n"),
            8,
            "limits.rate_per_second",
        );
        rejects(&extra("limits: { burst: 0 }\n"), 8, "limits.burst");
        rejects(&extra("delivery: { timeout: 0s }\n"), 8, "delivery.timeout");
        rejects(
            &extra("delivery: { retry_min: 5s, retry_max: 1s }\n"),
            8,
            "delivery.retry_max",
        );
        rejects(&extra("delivery: { retain: 0 }\n"), 8, "delivery.retain");
        rejects(
            &BASE.replace("nodes:\n", "nodes:\n  refresh: 10ms\n"),
            5,
            "nodes.refresh",
        );
    }

    #[test]
    fn shields_are_a_node_list_of_their_own() {
        let c = parse(BASE).unwrap();
        assert!(c.nodes.shields.is_empty());
        assert_eq!(c.nodes.shield_wait, Duration::from_secs(30));
        let with = |shields: &str| BASE.replace("nodes:\n", &format!("nodes:\n{shields}"));
        let c = parse(&with(
            "  shields: { static: [\"http://10.0.2.1:9080/\"], dns: [{ name: shield.internal, port: 9080 }] }\n  shield_wait: 5s\n",
        ))
        .unwrap();
        assert_eq!(c.nodes.shields.static_nodes, ["http://10.0.2.1:9080"]);
        assert_eq!(c.nodes.shields.dns[0].name, "shield.internal");
        assert_eq!(c.nodes.shield_wait, Duration::from_secs(5));
        rejects(
            &with("  shields: { static: [\"10.0.2.1:9080\"] }\n"),
            5,
            "nodes.shields.static[0]",
        );
        rejects(
            &with("  shields: { static: [\"http://10.0.1.2:9080\"] }\n"),
            5,
            "nodes.shields.static[0]",
        );
        rejects(
            &with("  shields: { dns: [{ name: shield.internal, port: 0 }] }\n"),
            5,
            "nodes.shields.dns[0].port",
        );
        rejects(&with("  shields: {}\n"), 5, "nodes.shields");
        rejects(&with("  shield_wait: 2h\n"), 5, "nodes.shield_wait");
    }

    #[test]
    fn varnish_purges_come_from_listed_networks() {
        let c = parse(BASE).unwrap();
        assert!(c.compat.varnish_purge_from.is_empty());
        let c = parse(&format!(
            "{BASE}compat: {{ varnish_purge_from: [\"10.0.0.0/8\", \"::1\"] }}\n"
        ))
        .unwrap();
        assert!(c.compat.varnish_purge_from[0].contains("10.1.2.3".parse().unwrap()));
        rejects(
            &format!("{BASE}compat: {{ varnish_purge_from: [\"10.0.0.0/33\"] }}\n"),
            8,
            "compat.varnish_purge_from[0]",
        );
    }

    const PG: &str = "postgres: { url: \"postgres://purge@db/purges\" }\n";

    fn pg(block: &str) -> String {
        BASE.replace("store: /var/lib/purge-api/purges.db\n", block)
    }

    #[test]
    fn postgres_replaces_the_embedded_store() {
        let c = parse(&pg(PG)).unwrap();
        let Store::Postgres(p) = c.store else {
            panic!("not postgres: {:?}", c.store)
        };
        assert!(matches!(p.url, PostgresUrl::Inline(ref u) if u == "postgres://purge@db/purges"));
        assert_eq!(
            (p.lease, p.poll),
            (Duration::from_secs(10), Duration::from_millis(250))
        );
        let c = parse(&pg(
            "postgres:\n  url_file: /etc/purge-api/pg\n  lease: 4s\n  poll: 1s\n",
        ))
        .unwrap();
        assert!(matches!(
            c.store,
            Store::Postgres(Postgres {
                url: PostgresUrl::File(_),
                ..
            })
        ));
        assert!(matches!(parse(BASE).unwrap().store, Store::Embedded(_)));
    }

    #[test]
    fn each_store_rule_rejects() {
        rejects(&format!("{BASE}{PG}"), 3, "store");
        rejects(&pg(""), 1, "store");
        rejects(
            &BASE.replace("/var/lib/purge-api/purges.db", "\"\""),
            3,
            "store",
        );
        rejects(&pg("postgres: { lease: 5s }\n"), 3, "postgres");
        rejects(&pg("postgres: { url: \" \" }\n"), 3, "postgres.url");
        rejects(
            &pg("postgres: { url_file: \"\" }\n"),
            3,
            "postgres.url_file",
        );
        rejects(
            &pg("postgres: { url: a, url_file: /b }\n"),
            3,
            "postgres.url",
        );
        rejects(
            &pg("postgres:\n  url: a\n  lease: 500ms\n"),
            5,
            "postgres.lease",
        );
        rejects(&pg("postgres:\n  url: a\n  poll: 0s\n"), 5, "postgres.poll");
        rejects(
            &pg("postgres:\n  url: a\n  ca_file: \"\"\n"),
            5,
            "postgres.ca_file",
        );
        rejects(
            &pg("postgres:\n  url: a\n  lease: 4s\n  poll: 2s\n"),
            6,
            "postgres.poll",
        );
    }

    #[test]
    fn unknown_keys_name_their_line() {
        let problems = parse(&format!("{BASE}colour: blue\n")).unwrap_err();
        assert_eq!(problems[0].line, 8, "{problems:?}");
    }
}
