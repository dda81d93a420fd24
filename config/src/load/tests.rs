use crate::edge::file::EdgeFile;
use crate::edge::EdgeConfig;
use crate::purge_api::file::PurgeApiFile;
use crate::Problem;

const GOOD: &str = r#"node:
  id: edge-1
listen:
  - addr: 127.0.0.1:8080
admin:
  addr: 127.0.0.1:9080
origins:
  web:
    servers: ["127.0.0.1:8000"]
sites:
  - hosts: ["static.example.com"]
    origin: web
    rules:
      - match: { path_prefix: /assets/ }
        ttl: 1d
      - match: { path_prefix: /api/ }
        cache: false
"#;

fn problems(yaml: &str) -> Vec<Problem> {
    EdgeConfig::from_yaml(yaml).map(|_| ()).unwrap_err()
}

fn edit(pairs: &[(&str, &str)]) -> String {
    let mut s = GOOD.to_string();
    for (from, to) in pairs {
        assert!(s.contains(from), "test setup: `{from}` not in GOOD");
        s = s.replacen(from, to, 1);
    }
    s
}

fn has(problems: &[Problem], line: u64, field: &str, words: &str) {
    assert!(
        problems
            .iter()
            .any(|p| p.line == line && p.field == field && p.message.contains(words)),
        "no `{field}` at line {line} saying `{words}` in {problems:#?}"
    );
}

#[test]
fn every_key_and_type_error_is_reported_with_its_line_and_field() {
    let bad = edit(&[
        (
            "listen:\n  - addr: 127.0.0.1:8080",
            "listen: 127.0.0.1:8080",
        ),
        ("cache: false", "cache: maybe"),
        ("    origin: web", "    orign: web"),
    ]);
    let p = problems(&bad);
    has(&p, 3, "listen", "expected a list, got \"127.0.0.1:8080\"");
    has(&p, 11, "sites[0].orign", "unknown field `orign`");
    // The misspelt key leaves the site without the one it needs.
    has(&p, 10, "sites[0]", "missing field `origin`");
    has(
        &p,
        16,
        "sites[0].rules[1].cache",
        "expected true or false, got \"maybe\"",
    );
    assert_eq!(p.len(), 4, "nothing made up is blamed: {p:#?}");
}

#[test]
fn logic_errors_of_what_could_be_read_join_the_shape_errors() {
    let bad = edit(&[
        ("cache: false", "cache: maybe"),
        ("id: edge-1", "id: \"edge 1\""),
        ("ttl: 1d", "ttl: 1 fortnight"),
    ]);
    let p = problems(&bad);
    has(&p, 2, "node.id", "");
    has(&p, 15, "sites[0].rules[0].ttl", "duration");
    has(&p, 17, "sites[0].rules[1].cache", "true or false");
    let lines: Vec<u64> = p.iter().map(|p| p.line).collect();
    assert!(lines.is_sorted(), "in file order: {p:#?}");
}

#[test]
fn a_missing_key_is_named_at_its_parent() {
    let bad = edit(&[("    servers: [\"127.0.0.1:8000\"]\n", "    weight: 1\n")]);
    let p = problems(&bad);
    // `weight` is not a pool key either; the missing `servers` is the pool's, at its key.
    has(&p, 8, "origins.web", "missing field `servers`");
    has(&p, 9, "origins.web.weight", "unknown field `weight`");
    assert_eq!(p.len(), 2, "{p:#?}");
}

#[test]
fn quoted_yes_is_not_a_boolean() {
    let p = problems(&edit(&[("cache: false", "cache: \"no\"")]));
    has(
        &p,
        17,
        "sites[0].rules[1].cache",
        "expected true or false, got \"no\"",
    );
}

#[test]
fn a_wrong_enum_value_names_the_choices() {
    let p = problems(&edit(&[(
        "      - match: { path_prefix: /api/ }",
        "      - match: { path_prefix: /api/ }\n        cache_key: { query: sometimes }",
    )]));
    has(&p, 17, "sites[0].rules[1].cache_key.query", "sometimes");
}

#[test]
fn broken_yaml_keeps_the_readers_single_error() {
    let p = problems(&edit(&[("    origin: web", "    origin: [web")]));
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(p[0].line >= 11, "{p:#?}");
}

/// The recovering reader and the typed reader agree on what a good file says: every sample
/// configuration reads through the tree with no problem.
#[test]
fn the_tree_reader_accepts_every_sample() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with(".yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let problems = if name.starts_with("edge") {
            super::recover::recover::<EdgeFile>(&text).unwrap().problems
        } else {
            super::recover::recover::<PurgeApiFile>(&text)
                .unwrap()
                .problems
        };
        assert!(problems.is_empty(), "{name}: {problems:#?}");
        seen += 1;
    }
    assert!(seen >= 4);
}

#[test]
fn anchors_and_merge_keys_read_as_the_typed_reader_reads_them() {
    let yaml = GOOD.replace(
        "origins:\n  web:\n    servers: [\"127.0.0.1:8000\"]",
        "origins:\n  web: &pool\n    servers: [\"127.0.0.1:8000\"]\n  other: *pool\n  third:\n    <<: *pool",
    );
    let typed = EdgeConfig::from_yaml(&yaml).unwrap();
    assert_eq!(typed.origins.len(), 3);
    let tree = super::recover::recover::<EdgeFile>(&yaml).unwrap();
    assert!(tree.problems.is_empty(), "{:#?}", tree.problems);
    assert_eq!(tree.value.unwrap().origins.value.len(), 3);
}

#[test]
fn a_number_where_text_is_expected_reads_as_its_text_in_both_readers() {
    let good = edit(&[("id: edge-1", "id: 7")]);
    assert_eq!(EdgeConfig::from_yaml(&good).unwrap().node_id, "7");
    let p = problems(&edit(&[
        ("id: edge-1", "id: 7"),
        ("cache: false", "cache: 1"),
    ]));
    assert_eq!(p.len(), 1, "{p:#?}");
    has(
        &p,
        17,
        "sites[0].rules[1].cache",
        "expected true or false, got \"1\"",
    );
}

#[test]
fn nested_aliases_cannot_multiply_a_file_without_bound() {
    let mut yaml = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let prev = format!("*a{}", i - 1);
        yaml.push_str(&format!("a{i}: &a{i} [{}]\n", vec![prev; 10].join(", ")));
    }
    assert!(super::tree::parse(&yaml).is_none());
    assert!(!problems(&yaml).is_empty());
}
