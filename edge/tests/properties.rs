//! Properties of the two pure functions every request goes through: the cache key and the rule
//! matcher. Each is checked against a plain model written here, over generated requests.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed set-up is a failed test

use edge::cache::key::cache_key;
use edge::http::hygiene::normalized_uri;
use edge::live::router::select_rule;
use edge_config::edge::{CacheKeySpec, EdgeConfig, QueryKey, Rule};
use pingora::cache::key::CacheHashKey;
use pingora::http::RequestHeader;
use proptest::prelude::*;

/// A request as far as the key is concerned.
#[derive(Debug, Clone)]
struct Req {
    scheme: &'static str,
    host: String,
    path: String,
    query: Option<Vec<(String, String)>>,
    device: Option<String>,
}

impl Req {
    fn target(&self) -> String {
        match &self.query {
            None => self.path.clone(),
            Some(q) => {
                let q: Vec<String> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("{}?{}", self.path, q.join("&"))
            }
        }
    }

    fn key(&self, spec: &CacheKeySpec) -> [u8; 16] {
        let mut r = RequestHeader::build("GET", self.target().as_bytes(), None).unwrap();
        if let Some(d) = &self.device {
            r.insert_header("x-device", d.as_str()).unwrap();
        }
        cache_key(self.scheme, &self.host, &r, spec).primary_bin()
    }

    /// What the key must distinguish, by the model: everything, except that parameters are
    /// grouped by name (keeping the order of repeats), and what the rule drops.
    fn model(&self, spec: &CacheKeySpec) -> impl PartialEq + std::fmt::Debug {
        let mut q: Vec<(String, String)> = match (&spec.query, &self.query) {
            (QueryKey::Ignore, _) | (_, None) => vec![],
            (QueryKey::All, Some(q)) => q.clone(),
            (QueryKey::Keep(names), Some(q)) => q
                .iter()
                .filter(|(k, _)| names.contains(k))
                .cloned()
                .collect(),
        };
        q.sort_by(|a, b| a.0.cmp(&b.0));
        (
            self.scheme,
            self.host.clone(),
            self.path.clone(),
            q,
            self.device.clone(),
        )
    }
}

fn req() -> impl Strategy<Value = Req> {
    (
        prop_oneof![Just("http"), Just("https")],
        "[ab][ab.]{0,3}",
        "/[ab/;%2F]{0,6}",
        proptest::option::of(proptest::collection::vec(("[pq]", "[0-2]{0,1}"), 0..4)),
        proptest::option::of("[mx]{0,1}"),
    )
        .prop_map(|(scheme, host, path, query, device)| Req {
            scheme,
            host,
            path,
            query,
            device,
        })
}

fn spec() -> impl Strategy<Value = CacheKeySpec> {
    let query = prop_oneof![
        Just(QueryKey::All),
        Just(QueryKey::Ignore),
        Just(QueryKey::Keep(vec!["p".into()])),
    ];
    (query, any::<bool>()).prop_map(|(query, device)| CacheKeySpec {
        query,
        headers: if device {
            vec!["x-device".into()]
        } else {
            vec![]
        },
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// Two requests share a key exactly when the model says they are the same request under
    /// the rule: never by accident of how host, path, query and headers are spelt.
    #[test]
    fn keys_collide_only_when_the_rule_says_so(
        a in req(),
        other in req(),
        mix in any::<[bool; 5]>(),
        shuffle in any::<proptest::sample::Index>(),
        spec in spec(),
    ) {
        // Independent requests almost never agree on enough to test a collision: `b` is `a`
        // with some parts taken from `other` and the query parameters reordered.
        let mut b = a.clone();
        if mix[0] { b.scheme = other.scheme; }
        if mix[1] { b.host = other.host.clone(); }
        if mix[2] { b.path = other.path.clone(); }
        if mix[3] { b.device = other.device.clone(); }
        if mix[4] {
            b.query = other.query.clone();
        } else if let Some(q) = &mut b.query {
            if !q.is_empty() {
                let i = shuffle.index(q.len());
                q.rotate_left(i);
            }
        }
        let spec_headers_only = |r: &Req| {
            let mut r = r.clone();
            if spec.headers.is_empty() {
                r.device = None;
            }
            r
        };
        let (a, b) = (spec_headers_only(&a), spec_headers_only(&b));
        prop_assert_eq!(a.key(&spec) == b.key(&spec), a.model(&spec) == b.model(&spec),
            "{:?} / {:?}", a.target(), b.target());
    }

    /// Normalising a path is idempotent and leaves no dot-segment for an origin to resolve.
    #[test]
    fn normalised_paths_are_fixed_points(path in "/[a./%2eE]{0,12}") {
        let uri: http::Uri = path.parse().unwrap();
        let once = normalized_uri(&uri).unwrap_or(uri);
        prop_assert!(normalized_uri(&once).is_none(), "{} -> {}", path, once);
        for seg in once.path().split('/') {
            let s = seg.to_ascii_lowercase().replace("%2e", ".");
            prop_assert!(s != "." && s != "..", "{} -> {}", path, once);
        }
    }
}

/// One generated rule: its YAML, and the model of what it matches.
#[derive(Debug, Clone)]
enum Pat {
    Prefix(String),
    Glob(String),
    Ext(String),
    Method(String),
}

impl Pat {
    fn yaml(&self) -> String {
        match self {
            Pat::Prefix(p) => format!("{{ match: {{ path_prefix: \"{p}\" }} }}"),
            Pat::Glob(g) => format!("{{ match: {{ path_glob: \"{g}\" }} }}"),
            Pat::Ext(e) => format!("{{ match: {{ extensions: [{e}] }} }}"),
            Pat::Method(m) => format!("{{ match: {{ methods: [{m}] }} }}"),
        }
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        match self {
            Pat::Prefix(p) => path.starts_with(p.as_str()),
            Pat::Glob(g) => glob(g.as_bytes(), path.as_bytes()),
            Pat::Ext(e) => {
                let last = path.rsplit('/').next().unwrap_or("");
                last.rsplit_once('.')
                    .is_some_and(|(_, x)| x.eq_ignore_ascii_case(e))
            }
            Pat::Method(m) => m.eq_ignore_ascii_case(method),
        }
    }
}

/// The glob of the README, by backtracking: `**` anything, `*` anything but `/`, `?` one
/// character but `/`.
fn glob(g: &[u8], p: &[u8]) -> bool {
    match g {
        [] => p.is_empty(),
        [b'*', b'*', rest @ ..] => (0..=p.len()).any(|i| glob(rest, &p[i..])),
        [b'*', rest @ ..] => (0..=p.len())
            .take_while(|&i| i == 0 || p[i - 1] != b'/')
            .any(|i| glob(rest, &p[i..])),
        [b'?', rest @ ..] => p.first().is_some_and(|&c| c != b'/') && glob(rest, &p[1..]),
        [c, rest @ ..] => p.first() == Some(c) && glob(rest, &p[1..]),
    }
}

fn pat() -> impl Strategy<Value = Pat> {
    prop_oneof![
        "/[ab/.]{0,4}".prop_map(Pat::Prefix),
        "/[ab/.*?]{0,6}".prop_map(Pat::Glob),
        prop_oneof![Just("css"), Just("js"), Just("CSS")].prop_map(|e| Pat::Ext(e.into())),
        prop_oneof![Just("GET"), Just("HEAD"), Just("post")].prop_map(|m| Pat::Method(m.into())),
    ]
}

fn rules(pats: &[Pat]) -> Vec<Rule> {
    let rules: Vec<String> = pats
        .iter()
        .map(|p| format!("      - {}\n", p.yaml()))
        .collect();
    let yaml = format!(
        "node: {{ id: t }}\nlisten: [{{ addr: 127.0.0.1:1 }}]\nadmin: {{ addr: 127.0.0.1:2 }}\norigins: {{ o: {{ servers: [\"127.0.0.1:3\"] }} }}\nsites:\n  - hosts: [\"*\"]\n    origin: o\n    rules:\n{}",
        rules.concat()
    );
    EdgeConfig::from_yaml(&yaml)
        .unwrap_or_else(|p| panic!("{p:?}\n{yaml}"))
        .sites
        .remove(0)
        .rules
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The first rule whose match holds wins, and none is skipped or invented.
    #[test]
    fn the_first_matching_rule_wins(
        pats in proptest::collection::vec(pat(), 1..6),
        method in prop_oneof![Just("GET"), Just("HEAD"), Just("POST")],
        path in "/[ab/.]{0,6}(\\.(css|js|CSS))?",
    ) {
        let compiled = rules(&pats);
        let want = pats.iter().position(|p| p.matches(method, &path));
        let got = select_rule(&compiled, method, &path).map(|(i, _)| i);
        prop_assert_eq!(got, want, "{:?} {} {}", pats, method, path);
    }
}
