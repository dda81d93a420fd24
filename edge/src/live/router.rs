//! Which site a request is for (by Host) and which of its rules applies (first match wins).
//! Both are pure functions of the request, compiled once from the configuration.

use std::collections::HashMap;

use edge_config::edge::{HostPattern, PathMatch, Rule, Site};

/// Host name -> site index, compiled from the sites' host patterns.
#[derive(Debug)]
pub struct Router {
    exact: HashMap<String, usize>,
    /// `(".suffix", site)`, longest suffix first so the most specific wildcard wins.
    suffixes: Vec<(String, usize)>,
    any: Option<usize>,
}

impl Router {
    /// Compiles the host patterns of `sites`.
    pub fn new(sites: &[Site]) -> Self {
        let mut exact = HashMap::new();
        let mut suffixes = Vec::new();
        let mut any = None;
        for (i, site) in sites.iter().enumerate() {
            for h in &site.hosts {
                match h {
                    HostPattern::Exact(name) => {
                        exact.entry(name.clone()).or_insert(i);
                    }
                    HostPattern::Suffix(s) => suffixes.push((s.clone(), i)),
                    HostPattern::Any => {
                        any.get_or_insert(i);
                    }
                }
            }
        }
        suffixes.sort_by_key(|s| std::cmp::Reverse(s.0.len()));
        Router {
            exact,
            suffixes,
            any,
        }
    }

    /// The site for a normalised host.
    pub fn route(&self, host: &str) -> Option<usize> {
        if let Some(i) = self.exact.get(host) {
            return Some(*i);
        }
        self.suffixes
            .iter()
            .find(|(s, _)| host.ends_with(s.as_str()))
            .map(|(_, i)| *i)
            .or(self.any)
    }
}

pub use edge_config::host::normalize_host;

/// The first rule of `rules` that matches the request, if any.
pub fn select_rule<'a>(rules: &'a [Rule], method: &str, path: &str) -> Option<(usize, &'a Rule)> {
    rules
        .iter()
        .enumerate()
        .find(|(_, r)| rule_matches(r, method, path))
}

fn rule_matches(rule: &Rule, method: &str, path: &str) -> bool {
    let m = &rule.matcher;
    if let Some(methods) = &m.methods {
        if !methods.iter().any(|x| x.eq_ignore_ascii_case(method)) {
            return false;
        }
    }
    if let Some(exts) = &m.extensions {
        let last = path.rsplit('/').next().unwrap_or("");
        let ext = last.rsplit_once('.').map(|(_, e)| e);
        if !ext.is_some_and(|e| exts.iter().any(|x| x.eq_ignore_ascii_case(e))) {
            return false;
        }
    }
    match &m.path {
        None => true,
        Some(PathMatch::Prefix(p)) => path.starts_with(p.as_str()),
        Some(PathMatch::Glob(re)) | Some(PathMatch::Regex(re)) => re.is_match(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge_config::edge::EdgeConfig;

    fn sites(yaml_sites: &str) -> Vec<Site> {
        let yaml = format!(
            "node: {{ id: t }}\nlisten: [{{ addr: 127.0.0.1:1 }}]\nadmin: {{ addr: 127.0.0.1:2 }}\norigins: {{ o: {{ servers: [\"127.0.0.1:3\"] }} }}\nsites:\n{yaml_sites}"
        );
        EdgeConfig::from_yaml(&yaml).unwrap().sites
    }

    #[test]
    fn exact_then_longest_suffix_then_any() {
        let s = sites(
            "  - { hosts: [a.example.com], origin: o }\n  - { hosts: ['*.example.com'], origin: o }\n  - { hosts: ['*.cdn.example.com'], origin: o }\n  - { hosts: ['*'], origin: o }\n",
        );
        let r = Router::new(&s);
        assert_eq!(r.route("a.example.com"), Some(0));
        assert_eq!(r.route("b.example.com"), Some(1));
        assert_eq!(r.route("x.cdn.example.com"), Some(2));
        assert_eq!(r.route("example.com"), Some(3));
        assert_eq!(r.route("other.org"), Some(3));
    }

    #[test]
    fn unknown_host_without_catch_all() {
        let s = sites("  - { hosts: [a.example.com], origin: o }\n");
        assert_eq!(Router::new(&s).route("b.example.com"), None);
        assert_eq!(Router::new(&s).route("evil-a.example.com"), None);
    }

    #[test]
    fn host_normalisation() {
        assert_eq!(
            normalize_host("Static.Example.COM:8080").as_deref(),
            Some("static.example.com")
        );
        assert_eq!(
            normalize_host("example.com.").as_deref(),
            Some("example.com")
        );
        assert_eq!(normalize_host("[::1]:80").as_deref(), Some("[::1]"));
        for bad in [
            "",
            "a b",
            "a/b",
            "a..b",
            "x:port",
            "ex@mple.com",
            "[::1",
            "host:99999999",
        ] {
            assert_eq!(normalize_host(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn first_matching_rule_wins() {
        let s = sites(
            "  - hosts: ['*']\n    origin: o\n    rules:\n      - { match: { path_prefix: /api/ }, cache: false }\n      - { match: { path_regex: '\\.(css|js)$' }, default_ttl: 1h }\n      - { match: { extensions: [png], methods: [GET] }, ttl: 1d }\n      - { match: { path_glob: '/img/*' }, ttl: 2d }\n",
        );
        let rules = &s[0].rules;
        assert_eq!(select_rule(rules, "GET", "/api/x.js").map(|r| r.0), Some(0));
        assert_eq!(select_rule(rules, "GET", "/a/b.css").map(|r| r.0), Some(1));
        assert_eq!(
            select_rule(rules, "GET", "/img/a.png").map(|r| r.0),
            Some(2)
        );
        assert_eq!(
            select_rule(rules, "HEAD", "/img/a.png").map(|r| r.0),
            Some(3)
        );
        assert_eq!(select_rule(rules, "GET", "/img/a/b.gif").map(|r| r.0), None);
        assert_eq!(select_rule(rules, "GET", "/index.html").map(|r| r.0), None);
    }
}
