//! The configuration reference (`docs/configuration.md`) and the file formats cannot drift
//! apart: every key the reference names exists in the types, and every key the types accept is
//! in the reference (itself, or inside a documented parent). Each struct's keys are read from
//! the "unknown field, expected one of ..." error a probe key draws from it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed probe is a failed test

use std::collections::BTreeSet;

use edge_config::edge::EdgeConfig;
use edge_config::purge_api::PurgeApiConfig;

/// Which file a section of the reference describes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum File {
    Edge,
    PurgeApi,
}

/// The keys of the struct at a path, drawn out by a probe key `zz` placed there (serde's
/// wording: `a`, `a` or `b`, one of `a`, `b`, `c`).
fn fields(file: File, probe: &str) -> BTreeSet<String> {
    let problems = match file {
        File::Edge => EdgeConfig::from_yaml(probe).map(|_| ()).unwrap_err(),
        File::PurgeApi => PurgeApiConfig::from_yaml(probe).map(|_| ()).unwrap_err(),
    };
    let message = &problems
        .iter()
        .find(|p| p.message.starts_with("unknown field `zz`"))
        .unwrap_or_else(|| panic!("{probe}: {problems:?}"))
        .message;
    let list = message.split_once("expected ").unwrap().1;
    let list = list.strip_prefix("one of ").unwrap_or(list);
    list.split([',', ' '])
        .filter(|f| f.starts_with('`'))
        .map(|f| f.trim_matches('`').to_string())
        .collect()
}

/// Keys accepted as another key's spelling (not listed separately in the reference).
const ALIASES: [(File, &str); 3] = [
    (File::Edge, "admin.tokens_file"),
    (File::PurgeApi, "token_file"),
    (File::PurgeApi, "nodes.tokens_file"),
];

/// Every struct the reference lists key by key: its path (as the reference writes it) and a
/// probe that reaches it.
const STRUCTS: &[(File, &str, &str)] = &[
    (File::Edge, "", "zz: 1"),
    (File::Edge, "node.", "node: { zz: 1 }"),
    (File::Edge, "listen[].", "listen: [{ zz: 1 }]"),
    (File::Edge, "listen[].tls.", "listen: [{ tls: { zz: 1 } }]"),
    (File::Edge, "admin.", "admin: { zz: 1 }"),
    (File::Edge, "cache.", "cache: { zz: 1 }"),
    (File::Edge, "cache.memory.", "cache: { memory: { zz: 1 } }"),
    (File::Edge, "cache.disk.", "cache: { disk: { zz: 1 } }"),
    (
        File::Edge,
        "cache.disk.admission.",
        "cache: { disk: { admission: { zz: 1 } } }",
    ),
    (File::Edge, "origins.NAME.", "origins: { a: { zz: 1 } }"),
    (File::Edge, "sites[].", "sites: [{ zz: 1 }]"),
    (File::Edge, "sites[].tls.", "sites: [{ tls: { zz: 1 } }]"),
    (File::Edge, "rules[].", "sites: [{ rules: [{ zz: 1 }] }]"),
    (
        File::Edge,
        "rules[].match.",
        "sites: [{ rules: [{ match: { zz: 1 } }] }]",
    ),
    (
        File::Edge,
        "rules[].cache_key.",
        "sites: [{ rules: [{ cache_key: { zz: 1 } }] }]",
    ),
    (File::Edge, "runtime.", "runtime: { zz: 1 }"),
    (File::Edge, "log.", "log: { zz: 1 }"),
    (File::Edge, "compression.", "compression: { zz: 1 }"),
    (File::Edge, "limits.", "limits: { zz: 1 }"),
    (File::PurgeApi, "", "zz: 1"),
    (File::PurgeApi, "postgres.", "postgres: { zz: 1 }"),
    (File::PurgeApi, "nodes.", "nodes: { zz: 1 }"),
    (
        File::PurgeApi,
        "nodes.shields.",
        "nodes: { shields: { zz: 1 } }",
    ),
    (File::PurgeApi, "compat.", "compat: { zz: 1 }"),
    (File::PurgeApi, "limits.", "limits: { zz: 1 }"),
    (File::PurgeApi, "delivery.", "delivery: { zz: 1 }"),
];

/// The keys the reference's tables name, by file: the first cell's backticked keys, with a
/// short `.key` meaning "the previous key's parent, then `key`".
fn documented() -> Vec<(File, String)> {
    let text = include_str!("../../docs/configuration.md");
    let mut file = File::Edge;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with("## purge-api configuration") {
            file = File::PurgeApi;
        } else if line.starts_with("## ") {
            file = File::Edge;
        }
        let Some(cell) = line
            .strip_prefix("| `")
            .map(|c| c.split(" |").next().unwrap_or(""))
        else {
            continue;
        };
        let mut previous = String::new();
        for key in format!("`{cell}").split(", ") {
            let key = key.trim().trim_matches('`');
            let key = match key.strip_prefix('.') {
                Some(short) => match previous.rsplit_once('.') {
                    Some((parent, _)) => format!("{parent}.{short}"),
                    None => short.to_string(),
                },
                None => key.to_string(),
            };
            previous = key.clone();
            out.push((file, key));
        }
    }
    out
}

/// A rule's keys as the reference writes them: `rules[].ttl`, not `sites[].rules[].ttl`.
fn short(key: &str) -> String {
    key.strip_prefix("sites[].rules[].")
        .map_or(key.to_string(), |r| format!("rules[].{r}"))
}

/// The struct path and field of a documented key (`rules[].match.path_prefix` is field
/// `path_prefix` of `rules[].match.`).
fn split(key: &str) -> (String, String) {
    let key = short(key);
    let key = key.trim_end_matches("[]");
    match key.rsplit_once('.') {
        Some((parent, field)) => (
            format!("{parent}."),
            field.trim_end_matches("[]").to_string(),
        ),
        None => (String::new(), key.to_string()),
    }
}

#[test]
fn every_documented_key_exists() {
    let mut missing = Vec::new();
    for (file, key) in documented() {
        let (parent, field) = split(&key);
        let Some((_, _, probe)) = STRUCTS.iter().find(|(f, p, _)| *f == file && *p == parent)
        else {
            missing.push(format!("{file:?} {key}: no struct `{parent}` is probed"));
            continue;
        };
        if !fields(file, probe).contains(&field) {
            missing.push(format!("{file:?} {key}: not a key of `{parent}`"));
        }
    }
    assert!(
        missing.is_empty(),
        "the reference names keys the code does not accept:\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_accepted_key_is_documented() {
    let docs = documented();
    let mut undocumented = Vec::new();
    for (file, parent, probe) in STRUCTS {
        for field in fields(*file, probe) {
            let path = format!("{parent}{field}");
            if ALIASES.contains(&(*file, path.as_str())) {
                continue;
            }
            let named = docs.iter().any(|(f, key)| {
                let key = short(key);
                *f == *file
                    && (key == path
                        || key.starts_with(&format!("{path}."))
                        || key.starts_with(&format!("{path}[]")))
            });
            if !named {
                undocumented.push(format!("{file:?} {path}"));
            }
        }
    }
    assert!(
        undocumented.is_empty(),
        "keys the code accepts that docs/configuration.md does not describe:\n{}",
        undocumented.join("\n")
    );
}
