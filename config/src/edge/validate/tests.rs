use crate::edge::{EdgeConfig, HostPattern, PathMatch, QueryKey};
use std::time::Duration;

const BASE: &str = r#"node:
  id: edge-1
listen:
  - addr: 127.0.0.1:8080
admin:
  addr: 127.0.0.1:9080
cache:
  memory: { max_size: 64MiB, max_object_size: 1MiB }
origins:
  web:
    servers: ["127.0.0.1:8000"]
sites:
  - hosts: ["static.example.com", "*.cdn.example.com"]
    origin: web
    rules:
      - match: { path_prefix: /assets/ }
        ttl: 365d
        cache_key: { query: ignore }
"#;

fn with(replace: &str, by: &str) -> String {
    assert!(
        BASE.contains(replace),
        "test setup: `{replace}` not in BASE"
    );
    BASE.replacen(replace, by, 1)
}

/// Asserts the YAML is rejected with a problem on `line` naming `field`.
fn rejects(yaml: &str, line: u64, field: &str) -> String {
    let problems = match EdgeConfig::from_yaml(yaml) {
        Ok(_) => panic!("accepted:\n{yaml}"),
        Err(p) => p,
    };
    let hit = problems
        .iter()
        .find(|p| p.field == field)
        .unwrap_or_else(|| panic!("no problem for `{field}` in {problems:?}"));
    assert_eq!(hit.line, line, "line of {field}: {problems:?}");
    hit.message.clone()
}

#[test]
fn base_is_valid() {
    let c = EdgeConfig::from_yaml(BASE).unwrap();
    assert_eq!(c.node_id, "edge-1");
    assert_eq!(c.cache.memory.max_size, 64 << 20);
    assert_eq!(
        c.sites[0].hosts,
        vec![
            HostPattern::Exact("static.example.com".into()),
            HostPattern::Suffix(".cdn.example.com".into())
        ]
    );
    let r = &c.sites[0].rules[0];
    assert!(matches!(&r.matcher.path, Some(PathMatch::Prefix(p)) if p == "/assets/"));
    assert_eq!(r.ttl, Some(std::time::Duration::from_secs(365 * 86_400)));
    assert_eq!(r.cache_key.query, QueryKey::Ignore);
}

#[test]
fn syntax_error_names_the_line() {
    let yaml = with("    origin: web\n", "    origin: [web\n");
    let problems = EdgeConfig::from_yaml(&yaml).unwrap_err();
    assert_eq!(problems.len(), 1);
    assert!(problems[0].line >= 14, "{problems:?}");
}

#[test]
fn unknown_field_is_rejected_with_its_line() {
    let yaml = with("    origin: web\n", "    origin: web\n    orgin: web\n");
    let problems = EdgeConfig::from_yaml(&yaml).unwrap_err();
    assert_eq!(problems[0].line, 15, "{problems:?}");
    assert!(problems[0].message.contains("orgin"), "{problems:?}");
}

#[test]
fn bad_size_and_duration() {
    let yaml = with("max_size: 64MiB", "max_size: 64 parsecs");
    let problems = EdgeConfig::from_yaml(&yaml).unwrap_err();
    assert_eq!(problems[0].line, 8);
    assert!(problems[0].message.contains("parsecs"), "{problems:?}");
    let yaml = with("ttl: 365d", "ttl: 1 fortnight");
    let problems = EdgeConfig::from_yaml(&yaml).unwrap_err();
    assert_eq!(problems[0].line, 17, "{problems:?}");
}

#[test]
fn node_id_must_be_a_token() {
    rejects(&with("id: edge-1", "id: \"edge 1\""), 2, "node.id");
}

#[test]
fn listen_addr_must_parse() {
    rejects(
        &with("addr: 127.0.0.1:8080", "addr: localhost"),
        4,
        "listen[0].addr",
    );
}

#[test]
fn listen_must_not_be_empty() {
    rejects(
        &with("listen:\n  - addr: 127.0.0.1:8080\n", "listen: []\n"),
        3,
        "listen",
    );
}

#[test]
fn admin_must_not_share_a_public_address() {
    rejects(
        &with("addr: 127.0.0.1:9080", "addr: 127.0.0.1:8080"),
        6,
        "admin.addr",
    );
}

#[test]
fn memory_bounds() {
    rejects(
        &with("max_size: 64MiB", "max_size: 1KiB"),
        8,
        "cache.memory.max_size",
    );
    rejects(
        &with("max_object_size: 1MiB", "max_object_size: 128MiB"),
        8,
        "cache.memory.max_object_size",
    );
    let yaml = with(
        "memory: { max_size: 64MiB, max_object_size: 1MiB }",
        "memory: { max_size: 1GiB, max_object_size: 100MiB }",
    );
    let msg = rejects(&yaml, 8, "cache.memory.max_object_size");
    assert!(msg.contains("64MiB"), "{msg}");
}

#[test]
fn disk_bounds() {
    let yaml = with(
        "  memory: { max_size: 64MiB, max_object_size: 1MiB }\n",
        "  memory: { max_size: 64MiB, max_object_size: 1MiB }\n  disk: { path: /tmp/x, max_size: 1GiB, max_object_size: 2GiB }\n",
    );
    rejects(&yaml, 9, "cache.disk.max_object_size");
}

#[test]
fn disk_meta_cache_defaults_and_can_be_turned_off() {
    let disk = |extra: &str| {
        with(
            "  memory: { max_size: 64MiB, max_object_size: 1MiB }\n",
            &format!("  memory: {{ max_size: 64MiB, max_object_size: 1MiB }}\n  disk: {{ path: /tmp/x, max_size: 1GiB{extra} }}\n"),
        )
    };
    let meta_cache = |yaml: &str| {
        EdgeConfig::from_yaml(yaml)
            .unwrap()
            .cache
            .disk
            .unwrap()
            .meta_cache
    };
    assert_eq!(meta_cache(&disk("")), crate::edge::DEFAULT_META_CACHE);
    assert_eq!(meta_cache(&disk(", meta_cache: 0")), 0);
    assert_eq!(meta_cache(&disk(", meta_cache: 8MiB")), 8 << 20);
    let problems = EdgeConfig::from_yaml(&disk(", meta_cache: plenty")).unwrap_err();
    assert_eq!(problems[0].line, 9, "{problems:?}");
    assert!(problems[0].message.contains("plenty"), "{problems:?}");
}

#[test]
fn disk_admission_and_scrub_default_and_are_bounded() {
    let disk = |extra: &str| {
        with(
            "  memory: { max_size: 64MiB, max_object_size: 1MiB }\n",
            &format!("  memory: {{ max_size: 64MiB, max_object_size: 1MiB }}\n  disk: {{ path: /tmp/x, max_size: 1GiB{extra} }}\n"),
        )
    };
    let settings = |yaml: &str| EdgeConfig::from_yaml(yaml).unwrap().cache.disk.unwrap();
    let d = settings(&disk(""));
    assert_eq!(
        (d.min_uses, d.scrub_interval),
        (1, crate::edge::DEFAULT_SCRUB_INTERVAL)
    );
    let d = settings(&disk(", admission: { min_uses: 2 }, scrub_interval: 0s"));
    assert_eq!((d.min_uses, d.scrub_interval), (2, Duration::ZERO));
    rejects(
        &disk(", admission: { min_uses: 0 }"),
        9,
        "cache.disk.admission.min_uses",
    );
    rejects(
        &disk(", scrub_interval: 10ms"),
        9,
        "cache.disk.scrub_interval",
    );
}

#[test]
fn a_rule_slices_by_a_bounded_aligned_size() {
    let rule = |extra: &str| {
        with(
            "        ttl: 365d\n",
            &format!("        ttl: 365d\n{extra}"),
        )
    };
    let c = EdgeConfig::from_yaml(&rule("        slice: 1MiB\n")).unwrap();
    assert_eq!(c.sites[0].rules[0].slice, Some(1 << 20));
    assert_eq!(
        EdgeConfig::from_yaml(BASE).unwrap().sites[0].rules[0].slice,
        None
    );
    for bad in ["4KiB", "100KiB", "1GiB"] {
        rejects(
            &rule(&format!("        slice: {bad}\n")),
            18,
            "sites[0].rules[0].slice",
        );
    }
    rejects(
        &rule("        slice: 1MiB\n        cache: false\n"),
        18,
        "sites[0].rules[0].slice",
    );
}

#[test]
fn origin_servers() {
    rejects(
        &with(
            "servers: [\"127.0.0.1:8000\"]",
            "servers: [\"http://127.0.0.1:8000\"]",
        ),
        11,
        "origins.web.servers[0]",
    );
    rejects(
        &with("servers: [\"127.0.0.1:8000\"]", "servers: []"),
        11,
        "origins.web.servers",
    );
}

#[test]
fn origin_sni_needs_tls() {
    rejects(
        &with(
            "    servers: [\"127.0.0.1:8000\"]\n",
            "    servers: [\"127.0.0.1:8000\"]\n    sni: example.com\n",
        ),
        12,
        "origins.web.sni",
    );
}

#[test]
fn origin_health_check_and_timeouts() {
    let yaml = with(
        "    servers: [\"127.0.0.1:8000\"]\n",
        "    servers: [\"127.0.0.1:8000\"]\n    health_check: { path: healthz, interval: 10ms, port: 0 }\n    connect_timeout: 0s\n",
    );
    rejects(&yaml, 12, "origins.web.health_check.port");
    rejects(&yaml, 12, "origins.web.health_check.path");
    rejects(&yaml, 12, "origins.web.health_check.interval");
    rejects(&yaml, 13, "origins.web.connect_timeout");
}

#[test]
fn unknown_lb_is_rejected() {
    let yaml = with(
        "    servers: [\"127.0.0.1:8000\"]\n",
        "    servers: [\"127.0.0.1:8000\"]\n    lb: random\n",
    );
    let problems = EdgeConfig::from_yaml(&yaml).unwrap_err();
    assert_eq!(problems[0].line, 12, "{problems:?}");
}

#[test]
fn site_origin_must_exist() {
    let msg = rejects(&with("origin: web", "origin: api"), 14, "sites[0].origin");
    assert!(msg.contains("web"), "lists the defined origins: {msg}");
}

#[test]
fn host_patterns() {
    rejects(
        &with("\"static.example.com\"", "\"https://static.example.com\""),
        13,
        "sites[0].hosts[0]",
    );
    rejects(
        &with("\"*.cdn.example.com\"", "\"static.example.com\""),
        13,
        "sites[0].hosts[1]",
    );
}

#[test]
fn hosts_and_sites_not_empty() {
    rejects(
        &with(
            "hosts: [\"static.example.com\", \"*.cdn.example.com\"]",
            "hosts: []",
        ),
        13,
        "sites[0].hosts",
    );
}

#[test]
fn rule_path_tests() {
    rejects(
        &with("path_prefix: /assets/", "path_prefix: assets/"),
        16,
        "sites[0].rules[0].match.path_prefix",
    );
    rejects(
        &with("path_prefix: /assets/", "path_regex: '(unclosed'"),
        16,
        "sites[0].rules[0].match.path_regex",
    );
    rejects(
        &with("path_prefix: /assets/", "path_prefix: /a/, path_regex: 'x'"),
        16,
        "sites[0].rules[0].match",
    );
    rejects(
        &with("path_prefix: /assets/", "path_glob: 'assets/*'"),
        16,
        "sites[0].rules[0].match.path_glob",
    );
}

#[test]
fn rule_methods_and_extensions() {
    rejects(
        &with(
            "path_prefix: /assets/",
            "path_prefix: /assets/, methods: [\"GET HEAD\"]",
        ),
        16,
        "sites[0].rules[0].match.methods[0]",
    );
    rejects(
        &with(
            "path_prefix: /assets/",
            "path_prefix: /assets/, extensions: [\"\"]",
        ),
        16,
        "sites[0].rules[0].match.extensions[0]",
    );
}

#[test]
fn bypass_rule_with_ttl_is_contradictory() {
    rejects(
        &with("ttl: 365d", "cache: false\n        ttl: 1d"),
        17,
        "sites[0].rules[0].cache",
    );
    rejects(
        &with("ttl: 365d", "cache: false\n        cache_errors: true"),
        17,
        "sites[0].rules[0].cache",
    );
    let opted = with("ttl: 365d", "ttl: 365d\n        cache_errors: true");
    assert!(EdgeConfig::from_yaml(&opted).unwrap().sites[0].rules[0].cache_errors);
    assert!(!EdgeConfig::from_yaml(BASE).unwrap().sites[0].rules[0].cache_errors);
}

#[test]
fn ttl_and_default_ttl_conflict() {
    rejects(
        &with("ttl: 365d", "ttl: 1d\n        default_ttl: 1h"),
        18,
        "sites[0].rules[0].default_ttl",
    );
}

#[test]
fn cache_key_query_and_headers() {
    rejects(
        &with("query: ignore", "query: some"),
        18,
        "sites[0].rules[0].cache_key.query",
    );
    rejects(
        &with("query: ignore", "query: []"),
        18,
        "sites[0].rules[0].cache_key.query",
    );
    rejects(
        &with("{ query: ignore }", "{ headers: [Host] }"),
        18,
        "sites[0].rules[0].cache_key.headers[0]",
    );
    rejects(
        &with("{ query: ignore }", "{ headers: [\"bad header\"] }"),
        18,
        "sites[0].rules[0].cache_key.headers[0]",
    );
}

#[test]
fn tags_have_no_separators() {
    rejects(
        &with("ttl: 365d", "ttl: 365d\n        tags: [\"a b\"]"),
        18,
        "sites[0].rules[0].tags[0]",
    );
}

#[test]
fn runtime_and_log() {
    let yaml = format!("{BASE}runtime: {{ threads: 0 }}\nlog: {{ format: xml, level: loud }}\n");
    rejects(&yaml, 19, "runtime.threads");
    rejects(&yaml, 20, "log.format");
    rejects(&yaml, 20, "log.level");
}

#[test]
fn every_problem_is_reported() {
    let yaml = with("id: edge-1", "id: \"\"").replace("origin: web", "origin: nope");
    let problems = EdgeConfig::from_yaml(&yaml).unwrap_err();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].line < problems[1].line);
}

#[test]
fn glob_semantics() {
    let yaml = with("path_prefix: /assets/", "path_glob: '/img/**/*.png'");
    let c = EdgeConfig::from_yaml(&yaml).unwrap();
    let Some(PathMatch::Glob(re)) = &c.sites[0].rules[0].matcher.path else {
        panic!("glob expected")
    };
    assert!(re.is_match("/img/a/b/c.png"));
    assert!(!re.is_match("/img/a/b/c.png.exe"));
    assert!(!re.is_match("/other/img/x.png"));
}

#[test]
fn origin_pool_settings_are_read() {
    let yaml = with(
        "    servers: [\"127.0.0.1:8000\"]\n",
        "    servers: [\"127.0.0.1:8000\", { addr: \"127.0.0.1:8001\", weight: 3 }]\n    tls: true\n    sni: origin.example.com\n    verify: false\n    ca_file: /etc/edge/ca.pem\n    host_header: origin.example.com\n    health_check: { path: /healthz, rise: 1, fall: 2 }\n    passive_health: { max_fails: 2, fail_timeout: 3s }\n    write_timeout: 4s\n    idle_timeout: 5s\n",
    );
    let c = EdgeConfig::from_yaml(&yaml).unwrap();
    let o = &c.origins["web"];
    assert_eq!(o.servers[1].addr, "127.0.0.1:8001");
    assert_eq!((o.servers[0].weight, o.servers[1].weight), (1, 3));
    assert!(o.tls && !o.verify);
    assert_eq!(
        o.ca_file.as_deref(),
        Some(std::path::Path::new("/etc/edge/ca.pem"))
    );
    assert_eq!(o.host_header.as_deref(), Some("origin.example.com"));
    let hc = o.health_check.as_ref().unwrap();
    assert_eq!((hc.rise, hc.fall), (1, 2));
    assert_eq!(o.passive.max_fails, 2);
    assert_eq!(o.passive.fail_timeout, std::time::Duration::from_secs(3));
    assert_eq!(o.write_timeout, std::time::Duration::from_secs(4));
    assert_eq!(o.idle_timeout, std::time::Duration::from_secs(5));
    // Two servers: one other server to fail over to by default.
    assert_eq!(o.retries, 1);
}

#[test]
fn origin_pool_settings_are_checked() {
    let yaml = with(
        "    servers: [\"127.0.0.1:8000\"]\n",
        "    servers: [{ addr: \"127.0.0.1:8000\", weight: 0 }]\n    ca_file: /etc/ca.pem\n    verify: true\n    host_header: \"bad host\"\n    health_check: { path: /h, rise: 0, fall: 101 }\n    passive_health: { fail_timeout: 0s }\n    retries: 11\n    write_timeout: 0s\n    idle_timeout: 0s\n",
    );
    rejects(&yaml, 11, "origins.web.servers[0].weight");
    rejects(&yaml, 12, "origins.web.ca_file");
    rejects(&yaml, 13, "origins.web.verify");
    rejects(&yaml, 14, "origins.web.host_header");
    rejects(&yaml, 15, "origins.web.health_check.rise");
    rejects(&yaml, 15, "origins.web.health_check.fall");
    rejects(&yaml, 16, "origins.web.passive_health.fail_timeout");
    rejects(&yaml, 17, "origins.web.retries");
    rejects(&yaml, 18, "origins.web.write_timeout");
    rejects(&yaml, 19, "origins.web.idle_timeout");
}

#[test]
fn site_tls_access_log_and_compression() {
    let yaml = format!(
        "{BASE}    tls: {{ cert: '', key: /k.pem }}\nlog:\n  access: {{ output: '' }}\ncompression: {{ on_the_fly: true, level: 12 }}\n"
    );
    rejects(&yaml, 19, "sites[0].tls.cert");
    rejects(&yaml, 21, "log.access.output");
    rejects(&yaml, 22, "compression.level");
    let good = format!(
        "{BASE}    tls: {{ cert: /c.pem, key: /k.pem }}\nlog:\n  access: {{ output: /var/log/edge/access.log }}\ncompression: {{ on_the_fly: true }}\n"
    );
    let c = EdgeConfig::from_yaml(&good).unwrap();
    assert!(c.sites[0].tls.is_some());
    assert_eq!(
        c.log.access,
        Some(crate::edge::AccessOutput::File(
            "/var/log/edge/access.log".into()
        ))
    );
    assert!(c.compression.on_the_fly);
    let off = format!("{BASE}log: {{ access: false }}\n");
    assert_eq!(EdgeConfig::from_yaml(&off).unwrap().log.access, None);
    assert_eq!(
        EdgeConfig::from_yaml(BASE).unwrap().log.access,
        Some(crate::edge::AccessOutput::Stdout)
    );
}

#[test]
fn negative_ttl_is_short_and_defaults_to_ten_seconds() {
    let c = EdgeConfig::from_yaml(BASE).unwrap();
    assert_eq!(
        c.sites[0].rules[0].negative_ttl,
        crate::edge::DEFAULT_NEGATIVE_TTL
    );
    let c =
        EdgeConfig::from_yaml(&with("ttl: 365d", "ttl: 365d\n        negative_ttl: 0s")).unwrap();
    assert!(c.sites[0].rules[0].negative_ttl.is_zero());
    rejects(
        &with("ttl: 365d", "ttl: 365d\n        negative_ttl: 2h"),
        18,
        "sites[0].rules[0].negative_ttl",
    );
    rejects(
        &with(
            "ttl: 365d\n        cache_key: { query: ignore }",
            "cache: false\n        negative_ttl: 5s",
        ),
        17,
        "sites[0].rules[0].cache",
    );
}

#[test]
fn request_limits_are_within_the_parsers() {
    let c = EdgeConfig::from_yaml(BASE).unwrap();
    assert_eq!(c.limits, crate::edge::Limits::default());
    let ok = format!(
        "{BASE}limits: {{ max_uri_size: 2KiB, max_header_size: 16KiB, max_headers: 50 }}\n"
    );
    let c = EdgeConfig::from_yaml(&ok).unwrap();
    assert_eq!(
        (
            c.limits.max_uri_size,
            c.limits.max_header_size,
            c.limits.max_headers
        ),
        (2048, 16384, 50)
    );
    rejects(
        &format!("{BASE}limits: {{ max_uri_size: 100KiB }}\n"),
        19,
        "limits.max_uri_size",
    );
    rejects(
        &format!("{BASE}limits: {{ max_uri_size: 10B }}\n"),
        19,
        "limits.max_uri_size",
    );
    rejects(
        &format!("{BASE}limits: {{ max_header_size: 2MiB }}\n"),
        19,
        "limits.max_header_size",
    );
    rejects(
        &format!("{BASE}limits: {{ max_headers: 1000 }}\n"),
        19,
        "limits.max_headers",
    );
    rejects(
        &format!("{BASE}limits: {{ max_body: 1 }}\n"),
        19,
        "limits.max_body",
    );
}

#[test]
fn connection_timeouts_and_ceilings_are_read_and_bounded() {
    let ok = format!(
        "{BASE}limits: {{ client_header_timeout: 2s, keepalive_timeout: 0s, \
         tls_handshake_timeout: 3s, send_timeout: 500ms, max_connections: 10, \
         client_buffers: 8MiB }}\n"
    );
    let l = EdgeConfig::from_yaml(&ok).unwrap().limits;
    assert_eq!(l.client_header_timeout, Duration::from_secs(2));
    assert_eq!(l.keepalive_timeout, Duration::ZERO);
    assert_eq!(l.tls_handshake_timeout, Duration::from_secs(3));
    assert_eq!(l.send_timeout, Duration::from_millis(500));
    assert_eq!((l.max_connections, l.client_buffers), (10, 8 << 20));
    for (setting, field) in [
        ("client_header_timeout: 0s", "limits.client_header_timeout"),
        ("client_header_timeout: 2h", "limits.client_header_timeout"),
        ("keepalive_timeout: 1500ms", "limits.keepalive_timeout"),
        ("tls_handshake_timeout: 0s", "limits.tls_handshake_timeout"),
        ("tls_handshake_timeout: 2m", "limits.tls_handshake_timeout"),
        ("send_timeout: 0s", "limits.send_timeout"),
        ("max_connections: 0", "limits.max_connections"),
        ("client_buffers: 64KiB", "limits.client_buffers"),
    ] {
        rejects(&format!("{BASE}limits: {{ {setting} }}\n"), 19, field);
    }
}

#[test]
fn stale_if_unreachable_defaults_to_a_day_and_zero_turns_it_off() {
    let c = EdgeConfig::from_yaml(BASE).unwrap();
    assert_eq!(c.cache.stale_if_unreachable, Duration::from_secs(86_400));
    let off = BASE.replace(
        "cache:\n  memory: { max_size: 64MiB, max_object_size: 1MiB }",
        "cache:\n  memory: { max_size: 64MiB, max_object_size: 1MiB }\n  stale_if_unreachable: 0s",
    );
    let c = EdgeConfig::from_yaml(&off).unwrap();
    assert_eq!(c.cache.stale_if_unreachable, Duration::ZERO);
    let bad = off.replace("stale_if_unreachable: 0s", "stale_if_unreachable: 8000w");
    rejects(&bad, 9, "cache.stale_if_unreachable");
}

#[test]
fn work_stealing_is_off_unless_asked_and_must_be_a_bool() {
    assert!(!EdgeConfig::from_yaml(BASE).unwrap().runtime.work_stealing);
    let on = format!("{BASE}runtime: {{ work_stealing: true }}\n");
    assert!(EdgeConfig::from_yaml(&on).unwrap().runtime.work_stealing);
    let bad = format!("{BASE}runtime: {{ work_stealing: often }}\n");
    let problems = EdgeConfig::from_yaml(&bad).unwrap_err();
    assert!(
        problems.iter().any(|p| p.line == 19
            && p.field == "runtime.work_stealing"
            && p.message.contains("true or false")),
        "{problems:?}"
    );
}

/// BASE's rule with these lines added after its `cache_key` (they start on line 19).
fn with_logic(lines: &str) -> String {
    let indented: String = lines.lines().map(|l| format!("\n        {l}")).collect();
    with(
        "cache_key: { query: ignore }",
        &format!("cache_key: {{ query: ignore }}{indented}"),
    )
}

#[test]
fn edge_logic_is_read() {
    let c = EdgeConfig::from_yaml(&with_logic(
        "response_headers: { set: { Access-Control-Allow-Origin: \"*\" }, add: { Vary: Origin }, remove: [Server] }\n\
         request_headers: { set: { X-From-Edge: \"1\" }, remove: [Cookie] }\n\
         redirect: { to: \"https://{host}/new/{rest}{query}\", status: 301 }\n\
         redirect_https: true\n\
         origin_path: { strip_prefix: /assets, add_prefix: /dist }\n\
         access: { allow: [\"10.0.0.0/8\", \"2001:db8::/32\"], deny: [\"10.9.0.0/16\"] }",
    ))
    .unwrap();
    let l = &c.sites[0].rules[0].logic;
    assert_eq!(l.response_headers.set[0].0, "access-control-allow-origin");
    assert_eq!(l.response_headers.add[0].1, "Origin");
    assert_eq!(l.response_headers.remove[0], "server");
    assert_eq!(l.request_headers.remove[0], "cookie");
    assert_eq!(l.redirect.as_ref().map(|r| r.status), Some(301));
    assert!(l.redirect_https);
    assert_eq!(
        l.origin_path.as_ref().map(|o| o.apply("/assets/a.css")),
        Some("/dist/a.css".into())
    );
    let access = l.access.as_ref().unwrap();
    assert!(access.permits("10.1.1.1".parse().unwrap()));
    assert!(!access.permits("10.9.1.1".parse().unwrap()));
    let plain = EdgeConfig::from_yaml(BASE).unwrap();
    let none = &plain.sites[0].rules[0].logic;
    assert!(none.response_headers.is_empty() && none.redirect.is_none() && !none.redirect_https);
    let default_status = EdgeConfig::from_yaml(&with_logic("redirect: { to: /x }")).unwrap();
    assert_eq!(
        default_status.sites[0].rules[0]
            .logic
            .redirect
            .as_ref()
            .unwrap()
            .status,
        302
    );
}

#[test]
fn edge_logic_rejects_what_it_cannot_do() {
    let r = "sites[0].rules[0]";
    let cases = [
        (
            "response_headers: { set: { \"Bad Name\": x } }",
            format!("{r}.response_headers.set.Bad Name"),
        ),
        (
            "response_headers: { set: { Content-Length: \"5\" } }",
            format!("{r}.response_headers.set.Content-Length"),
        ),
        (
            "response_headers: { remove: [Transfer-Encoding] }",
            format!("{r}.response_headers.remove[0]"),
        ),
        (
            "request_headers: { set: { Connection: close } }",
            format!("{r}.request_headers.set.Connection"),
        ),
        (
            "request_headers: { add: { X-A: \"1\" } }",
            format!("{r}.request_headers.add"),
        ),
        (
            "response_headers: { set: { X-A: \"a\\u0001b\" } }",
            format!("{r}.response_headers.set.X-A"),
        ),
        (
            "redirect: { to: \"/new/{file}\" }",
            format!("{r}.redirect.to"),
        ),
        (
            "redirect: { to: /new, status: 200 }",
            format!("{r}.redirect.status"),
        ),
        (
            "origin_path: { strip_prefix: app }",
            format!("{r}.origin_path.strip_prefix"),
        ),
        ("origin_path: {}", format!("{r}.origin_path")),
        (
            "access: { allow: [\"10.0.0.0/33\"] }",
            format!("{r}.access.allow[0]"),
        ),
        (
            "access: { deny: [\"not-an-ip\"] }",
            format!("{r}.access.deny[0]"),
        ),
        ("access: {}", format!("{r}.access")),
    ];
    for (lines, field) in cases {
        rejects(&with_logic(lines), 19, &field);
    }
    let msg = rejects(
        &with_logic("redirect: { to: \"/new/{file}\" }"),
        19,
        &format!("{r}.redirect.to"),
    );
    assert!(msg.contains("{file}"), "{msg}");
}

#[test]
fn error_pages_are_read_at_load() {
    let dir = std::env::temp_dir().join(format!("edge-error-pages-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("404.html");
    std::fs::write(&page, "<p>gone</p>").unwrap();
    let pages = |map: &str| {
        with(
            "    origin: web\n",
            &format!("    origin: web\n    error_pages: {map}\n"),
        )
    };
    let ok =
        EdgeConfig::from_yaml(&pages(&format!("{{ \"404\": \"{}\" }}", page.display()))).unwrap();
    let p = ok.sites[0].error_pages.for_status(404).unwrap();
    assert_eq!(
        (&*p.body, p.content_type),
        (&b"<p>gone</p>"[..], "text/html; charset=utf-8")
    );
    assert!(ok.sites[0].error_pages.for_status(500).is_none());
    let missing = dir.join("nope.html");
    let msg = rejects(
        &pages(&format!("{{ \"5xx\": \"{}\" }}", missing.display())),
        15,
        "sites[0].error_pages.5xx",
    );
    assert!(msg.contains("cannot read"), "{msg}");
    rejects(
        &pages(&format!("{{ \"302\": \"{}\" }}", page.display())),
        15,
        "sites[0].error_pages.302",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rate_limits_are_checked() {
    let r = "sites[0].rules[0].rate_limit";
    let ok = EdgeConfig::from_yaml(&with_logic(
        "rate_limit: { requests: 100, per: 1s, burst: 200 }",
    ))
    .unwrap();
    let rl = ok.sites[0].rules[0].logic.rate_limit.unwrap();
    assert_eq!(
        (rl.requests, rl.burst, rl.window()),
        (100, 200, Duration::from_secs(2))
    );
    let cases = [
        ("rate_limit: { requests: 0 }", format!("{r}.requests")),
        (
            "rate_limit: { requests: 5, burst: 2 }",
            format!("{r}.burst"),
        ),
        ("rate_limit: { requests: 5, per: 0s }", format!("{r}.per")),
        ("rate_limit: { requests: 5, by: header }", format!("{r}.by")),
    ];
    for (lines, field) in cases {
        rejects(&with_logic(lines), 19, &field);
    }
}

#[test]
fn signed_urls_need_a_key_file() {
    let r = "sites[0].rules[0].signed_url";
    let missing = rejects(
        &with_logic("signed_url: { key_file: /nonexistent/url-keys }"),
        19,
        &format!("{r}.key_file"),
    );
    assert!(missing.contains("cannot read"), "{missing}");
    let dir = std::env::temp_dir().join(format!("edge-url-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let empty = dir.join("empty");
    std::fs::write(&empty, "\n  \n").unwrap();
    let msg = rejects(
        &with_logic(&format!(
            "signed_url: {{ key_file: \"{}\" }}",
            empty.display()
        )),
        19,
        &format!("{r}.key_file"),
    );
    assert!(msg.contains("no key"), "{msg}");
    let keys = dir.join("keys");
    std::fs::write(&keys, " k1 \nk2\n").unwrap();
    let ok = EdgeConfig::from_yaml(&with_logic(&format!(
        "signed_url: {{ key_file: \"{}\" }}",
        keys.display()
    )))
    .unwrap();
    let s = ok.sites[0].rules[0].logic.signed_url.as_ref().unwrap();
    assert_eq!(
        (s.keys.len(), &s.keys[0][..], s.expires_param.as_str()),
        (2, &b"k1"[..], "exp")
    );
    rejects(
        &with_logic(&format!(
            "signed_url: {{ key_file: \"{}\", expires_param: s, signature_param: s }}",
            keys.display()
        )),
        19,
        r,
    );
    rejects(
        &with_logic(&format!(
            "signed_url: {{ key_file: \"{}\", signature_param: \"a&b\" }}",
            keys.display()
        )),
        19,
        &format!("{r}.signature_param"),
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn trusted_proxies_are_checked() {
    let base = format!("{BASE}client_ip: {{ trusted: [\"10.0.0.0/8\", \"bad\"] }}\n");
    rejects(&base, 19, "client_ip.trusted[1]");
    let header = format!("{BASE}client_ip: {{ trusted: [\"10.0.0.0/8\"], header: \"X Bad\" }}\n");
    rejects(&header, 19, "client_ip.header");
    let ok =
        EdgeConfig::from_yaml(&format!("{BASE}client_ip: {{ trusted: [\"::1\"] }}\n")).unwrap();
    assert_eq!(ok.client_ip.unwrap().header, "x-forwarded-for");
}

#[test]
fn site_names_default_to_the_first_host_and_are_unique() {
    let c = EdgeConfig::from_yaml(BASE).unwrap();
    assert_eq!(c.sites[0].name, "static.example.com");
    let named = with(
        "  - hosts: [\"static.example.com\", \"*.cdn.example.com\"]\n",
        "  - name: static\n    hosts: [\"static.example.com\", \"*.cdn.example.com\"]\n",
    );
    assert_eq!(
        EdgeConfig::from_yaml(&named).unwrap().sites[0].name,
        "static"
    );
    let twice = format!(
        "{BASE}  - name: static.example.com\n    hosts: [other.example.com]\n    origin: web\n"
    );
    rejects(&twice, 19, "sites[1].name");
    let blank = with(
        "  - hosts: [\"static.example.com\", \"*.cdn.example.com\"]\n",
        "  - name: \" \"\n    hosts: [\"static.example.com\", \"*.cdn.example.com\"]\n",
    );
    rejects(&blank, 13, "sites[0].name");
}

#[test]
fn booleans_are_true_or_false_only() {
    for spelling in ["yes", "\"no\"", "off", "On"] {
        let yaml = with(
            "        ttl: 365d\n",
            &format!("        ttl: 365d\n        allow_set_cookie: {spelling}\n"),
        );
        let problems = EdgeConfig::from_yaml(&yaml).unwrap_err();
        assert_eq!(problems[0].line, 18, "{spelling}: {problems:?}");
    }
    let yaml = with(
        "        ttl: 365d\n",
        "        ttl: 365d\n        allow_set_cookie: true\n",
    );
    assert!(EdgeConfig::from_yaml(&yaml).unwrap().sites[0].rules[0].allow_set_cookie);
}

#[test]
fn a_regex_error_keeps_its_caret_under_the_pattern() {
    let msg = rejects(
        &with("path_prefix: /assets/", "path_regex: '/a(b'"),
        16,
        "sites[0].rules[0].match.path_regex",
    );
    let lines: Vec<&str> = msg.lines().collect();
    assert_eq!(
        lines[0], "invalid regular expression: unclosed group",
        "{msg}"
    );
    assert_eq!(lines.len(), 3, "{msg}");
    let (pattern, caret) = (lines[1], lines[2]);
    assert_eq!(pattern.trim(), "/a(b");
    assert_eq!(&pattern[caret.find('^').unwrap()..][..1], "(", "{msg}");
}
