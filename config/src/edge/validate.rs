//! Turns the file format into runtime types, collecting every problem on the way.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;
use serde_saphyr::Spanned;

use super::file::{self, EdgeFile, QueryFile};
use super::*;
use crate::check::{dur, socket_addr, Problems};
use crate::Problem;

/// The memory tier weighs objects in KiB with a 16-bit weight (TinyUFO), so this is its ceiling.
const MEMORY_MAX_OBJECT: u64 = 64 << 20;
const DEFAULT_MEMORY_OBJECT: u64 = 1 << 20;

/// Validates a parsed edge file. Returns every problem found, in file order.
pub fn validate(f: EdgeFile) -> Result<EdgeConfig, Vec<Problem>> {
    let mut p = Problems::default();

    let node_id = f.node.id.value.clone();
    if node_id.is_empty()
        || !node_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        p.at(
            &f.node.id,
            "node.id",
            "must be non-empty and use only letters, digits, `.`, `_` and `-` (it is the cache name in Cache-Status)",
        );
    }

    let mut listen = Vec::new();
    if f.listen.value.is_empty() {
        p.at(&f.listen, "listen", "at least one listener is needed");
    }
    for (i, l) in f.listen.value.iter().enumerate() {
        let addr = socket_addr(&mut p, &l.addr, &format!("listen[{i}].addr"));
        let tls = l
            .tls
            .as_ref()
            .map(|t| tls_files(&mut p, t, &format!("listen[{i}].tls")));
        if let Some(addr) = addr {
            if listen.iter().any(|x: &Listener| x.addr == addr) {
                p.at(&l.addr, format!("listen[{i}].addr"), "is listed twice");
            }
            listen.push(Listener { addr, tls });
        }
    }

    let admin_addr = socket_addr(&mut p, &f.admin.addr, "admin.addr");
    if let Some(a) = admin_addr {
        if listen.iter().any(|l| l.addr == a) {
            p.at(
                &f.admin.addr,
                "admin.addr",
                "must differ from every public listener: the admin API must not be public",
            );
        }
    }
    if let Some(t) = &f.admin.token_file {
        if t.value.is_empty() {
            p.at(t, "admin.token_file", "must be a file path");
        }
    }

    let cache = cache(&mut p, &f.cache);
    let origins = origin::origins(&mut p, &f.origins);
    let sites = sites(&mut p, &f.sites, &origins);
    let runtime = runtime(&mut p, &f.runtime);
    let log = log(&mut p, &f.log);
    let compression = compression(&mut p, &f.compression);
    let limits = limits(&mut p, &f.limits);
    let client_ip = f.client_ip.as_ref().map(|c| logic::client_ip(&mut p, c));

    if !p.0.is_empty() {
        p.0.sort_by_key(|x| x.line);
        return Err(p.0);
    }
    let admin_addr = admin_addr.ok_or_else(Vec::new)?;
    Ok(EdgeConfig {
        node_id,
        listen,
        admin: Admin {
            addr: admin_addr,
            token_file: f.admin.token_file.map(|t| PathBuf::from(t.value)),
        },
        cache,
        origins,
        sites,
        runtime,
        log,
        compression,
        limits,
        client_ip,
    })
}

fn tls_files(p: &mut Problems, t: &file::TlsFile, field: &str) -> TlsFiles {
    for (name, v) in [("cert", &t.cert), ("key", &t.key)] {
        if v.value.is_empty() {
            p.at(v, format!("{field}.{name}"), "must be a file path");
        }
    }
    TlsFiles {
        cert: PathBuf::from(&t.cert.value),
        key: PathBuf::from(&t.key.value),
    }
}

fn cache(p: &mut Problems, f: &file::CacheFile) -> Cache {
    let memory = match &f.memory {
        None => MemorySettings {
            max_size: 256 << 20,
            max_object_size: DEFAULT_MEMORY_OBJECT,
        },
        Some(m) => {
            let max_size = m.max_size.value.0;
            let max_object_size = m
                .max_object_size
                .as_ref()
                .map_or(DEFAULT_MEMORY_OBJECT.min(max_size), |s| s.value.0);
            if max_size < 1 << 20 {
                p.at(
                    &m.max_size,
                    "cache.memory.max_size",
                    "must be at least 1MiB",
                );
            }
            if let Some(s) = &m.max_object_size {
                if s.value.0 == 0 {
                    p.at(s, "cache.memory.max_object_size", "must be greater than 0");
                } else if s.value.0 > max_size {
                    p.at(
                        s,
                        "cache.memory.max_object_size",
                        "must not exceed cache.memory.max_size",
                    );
                } else if s.value.0 > MEMORY_MAX_OBJECT {
                    p.at(
                        s,
                        "cache.memory.max_object_size",
                        "must be at most 64MiB: larger objects belong on the disk tier",
                    );
                }
            }
            MemorySettings {
                max_size,
                max_object_size,
            }
        }
    };
    let disk = f.disk.as_ref().map(|d| {
        if d.path.value.is_empty() {
            p.at(&d.path, "cache.disk.path", "must be a directory path");
        }
        if d.max_size.value.0 == 0 {
            p.at(&d.max_size, "cache.disk.max_size", "must be greater than 0");
        }
        let max_object_size = d
            .max_object_size
            .as_ref()
            .map_or(d.max_size.value.0, |s| s.value.0);
        if let Some(s) = &d.max_object_size {
            if s.value.0 == 0 || s.value.0 > d.max_size.value.0 {
                p.at(
                    s,
                    "cache.disk.max_object_size",
                    "must be greater than 0 and at most cache.disk.max_size",
                );
            }
        }
        let min_uses = d.admission.as_ref().map_or(1, |a| a.value.min_uses.value);
        if let Some(a) = &d.admission {
            if !(1..=100).contains(&a.value.min_uses.value) {
                p.at(
                    &a.value.min_uses,
                    "cache.disk.admission.min_uses",
                    "must be between 1 (every object) and 100",
                );
            }
        }
        let scrub_interval = dur(&d.scrub_interval).unwrap_or(DEFAULT_SCRUB_INTERVAL);
        if let Some(i) = &d.scrub_interval {
            if !i.value.0.is_zero() && i.value.0 < Duration::from_secs(1) {
                p.at(
                    i,
                    "cache.disk.scrub_interval",
                    "must be 0s (no scrub) or at least 1s",
                );
            }
        }
        DiskSettings {
            path: PathBuf::from(&d.path.value),
            max_size: d.max_size.value.0,
            max_object_size,
            meta_cache: d
                .meta_cache
                .as_ref()
                .map_or(DEFAULT_META_CACHE, |s| s.value.0),
            min_uses,
            scrub_interval,
        }
    });
    let lock_timeout = dur(&f.lock_timeout).unwrap_or(Duration::from_secs(10));
    if let Some(t) = &f.lock_timeout {
        if t.value.0.is_zero() {
            p.at(t, "cache.lock_timeout", "must be greater than 0");
        }
    }
    let stale_if_unreachable = dur(&f.stale_if_unreachable).unwrap_or(DEFAULT_STALE_IF_UNREACHABLE);
    if let Some(t) = &f.stale_if_unreachable {
        if t.value.0 > Duration::from_secs(u64::from(u32::MAX)) {
            p.at(
                t,
                "cache.stale_if_unreachable",
                "must be at most 7000w, about 136 years (0s turns it off)",
            );
        }
    }
    Cache {
        memory,
        disk,
        lock_timeout,
        stale_if_unreachable,
    }
}

pub(super) fn valid_host_port(s: &str) -> bool {
    if s.parse::<SocketAddr>().is_ok() {
        return true;
    }
    match s.rsplit_once(':') {
        Some((host, port)) => port.parse::<u16>().is_ok_and(|p| p > 0) && valid_host_name(host),
        None => false,
    }
}

pub(super) fn valid_host_name(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn host_pattern(s: &str) -> Option<HostPattern> {
    let s = s.to_ascii_lowercase();
    if s == "*" {
        Some(HostPattern::Any)
    } else if let Some(suffix) = s.strip_prefix("*.") {
        valid_host_name(suffix).then(|| HostPattern::Suffix(format!(".{suffix}")))
    } else {
        valid_host_name(&s).then_some(HostPattern::Exact(s))
    }
}

fn sites(
    p: &mut Problems,
    f: &Spanned<Vec<file::SiteFile>>,
    origins: &BTreeMap<String, Origin>,
) -> Vec<Site> {
    if f.value.is_empty() {
        p.at(f, "sites", "at least one site is needed");
    }
    let mut seen: HashMap<HostPattern, usize> = HashMap::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    for (i, s) in f.value.iter().enumerate() {
        let field = format!("sites[{i}]");
        if s.hosts.value.is_empty() {
            p.at(
                &s.hosts,
                format!("{field}.hosts"),
                "at least one host is needed",
            );
        }
        let mut hosts = Vec::new();
        for (j, h) in s.hosts.value.iter().enumerate() {
            match host_pattern(&h.value) {
                None => p.at(
                    h,
                    format!("{field}.hosts[{j}]"),
                    format!(
                        "`{}` is not a host name, `*.suffix` or `*` (no scheme, port or path)",
                        h.value
                    ),
                ),
                Some(pat) => {
                    if let Some(other) = seen.insert(pat.clone(), i) {
                        p.at(
                            h,
                            format!("{field}.hosts[{j}]"),
                            format!("`{}` is already served by sites[{other}]", h.value),
                        );
                    }
                    hosts.push(pat);
                }
            }
        }
        if !origins.contains_key(&s.origin.value) && !s.origin.value.is_empty() {
            let known: Vec<&str> = origins.keys().map(String::as_str).collect();
            p.at(
                &s.origin,
                format!("{field}.origin"),
                format!(
                    "no origin named `{}` (defined: {})",
                    s.origin.value,
                    known.join(", ")
                ),
            );
        }
        let rules = s
            .rules
            .iter()
            .enumerate()
            .map(|(j, r)| rule(p, r, &format!("{field}.rules[{j}]")))
            .collect();
        let tls = s
            .tls
            .as_ref()
            .map(|t| tls_files(p, t, &format!("{field}.tls")));
        let error_pages = logic::error_pages(p, &s.error_pages, &format!("{field}.error_pages"));
        let name = match &s.name {
            Some(n) => {
                if n.value.trim().is_empty() || n.value.chars().any(char::is_control) {
                    p.at(n, format!("{field}.name"), "a name of printable characters");
                } else if let Some(j) = names.get(&n.value) {
                    p.at(
                        n,
                        format!("{field}.name"),
                        format!("`{}` already names sites[{j}]", n.value),
                    );
                }
                n.value.clone()
            }
            None => s
                .hosts
                .value
                .first()
                .map(|h| h.value.to_ascii_lowercase())
                .unwrap_or_default(),
        };
        names.entry(name.clone()).or_insert(i);
        out.push(Site {
            name,
            hosts,
            origin: s.origin.value.clone(),
            tls,
            rules,
            error_pages,
        });
    }
    out
}

fn rule(p: &mut Problems, r: &file::RuleFile, field: &str) -> Rule {
    let m = &r.matcher.value;
    let mfield = format!("{field}.match");
    let path_tests = [
        m.path_prefix.is_some(),
        m.path_glob.is_some(),
        m.path_regex.is_some(),
    ];
    if path_tests.iter().filter(|x| **x).count() > 1 {
        p.at(
            &r.matcher,
            &mfield,
            "use one of path_prefix, path_glob and path_regex, not several",
        );
    }
    let mut path = None;
    if let Some(prefix) = &m.path_prefix {
        if !prefix.value.starts_with('/') {
            p.at(
                prefix,
                format!("{mfield}.path_prefix"),
                "must start with `/`",
            );
        }
        path = Some(PathMatch::Prefix(prefix.value.clone()));
    }
    if let Some(glob) = &m.path_glob {
        if !glob.value.starts_with('/') && !glob.value.starts_with('*') {
            p.at(
                glob,
                format!("{mfield}.path_glob"),
                "must start with `/` or `*`",
            );
        }
        match Regex::new(&glob_to_regex(&glob.value)) {
            Ok(re) => path = Some(PathMatch::Glob(re)),
            Err(e) => p.at(
                glob,
                format!("{mfield}.path_glob"),
                format!("invalid glob: {e}"),
            ),
        }
    }
    if let Some(re) = &m.path_regex {
        match Regex::new(&re.value) {
            Ok(re) => path = Some(PathMatch::Regex(re)),
            Err(e) => p.at(re, format!("{mfield}.path_regex"), regex_problem(&e)),
        }
    }
    let methods = m.methods.as_ref().map(|ms| {
        ms.iter()
            .enumerate()
            .map(|(k, x)| {
                if x.value.is_empty() || !x.value.chars().all(|c| c.is_ascii_alphabetic()) {
                    p.at(
                        x,
                        format!("{mfield}.methods[{k}]"),
                        format!("`{}` is not an HTTP method", x.value),
                    );
                }
                x.value.to_ascii_uppercase()
            })
            .collect()
    });
    let extensions = m.extensions.as_ref().map(|es| {
        es.iter()
            .enumerate()
            .map(|(k, x)| {
                let e = x.value.trim_start_matches('.').to_ascii_lowercase();
                if e.is_empty() || e.contains('/') {
                    p.at(
                        x,
                        format!("{mfield}.extensions[{k}]"),
                        format!("`{}` is not a file extension", x.value),
                    );
                }
                e
            })
            .collect()
    });

    let cache = r.cache.as_ref().is_none_or(|c| c.value);
    if let Some(c) = &r.cache {
        if !c.value {
            let extras = [
                r.ttl.is_some(),
                r.default_ttl.is_some(),
                r.negative_ttl.is_some(),
                r.stale_while_revalidate.is_some(),
                r.stale_if_error.is_some(),
                r.cache_key.is_some(),
                !r.tags.is_empty(),
                r.allow_set_cookie,
                r.cache_errors,
            ];
            if extras.iter().any(|x| *x) {
                p.at(
                    c,
                    format!("{field}.cache"),
                    "`cache: false` bypasses the cache, so ttl, stale, cache_key, tags, allow_set_cookie and cache_errors do nothing here; remove them",
                );
            }
        }
    }
    if let (Some(_), Some(d)) = (&r.ttl, &r.default_ttl) {
        p.at(
            d,
            format!("{field}.default_ttl"),
            "`ttl` already overrides the origin's freshness; use one of ttl and default_ttl",
        );
    }

    if let Some(n) = &r.negative_ttl {
        if n.value.0 > MAX_NEGATIVE_TTL {
            p.at(
                n,
                format!("{field}.negative_ttl"),
                "at most 1h: a stored 404 hides a file deployed after it for this long",
            );
        }
    }

    let mut cache_key = CacheKeySpec::default();
    if let Some(ck) = &r.cache_key {
        if let Some(q) = &ck.query {
            cache_key.query = match &q.value {
                QueryFile::Mode(m) if m == "all" => QueryKey::All,
                QueryFile::Mode(m) if m == "ignore" => QueryKey::Ignore,
                QueryFile::Mode(m) => {
                    p.at(
                        q,
                        format!("{field}.cache_key.query"),
                        format!("`{m}` is not `all`, `ignore` or a list of parameter names"),
                    );
                    QueryKey::All
                }
                QueryFile::Keep(names) => {
                    if names.is_empty() || names.iter().any(String::is_empty) {
                        p.at(
                            q,
                            format!("{field}.cache_key.query"),
                            "a list of parameter names must be non-empty (use `ignore` to drop the query)",
                        );
                    }
                    let mut names = names.clone();
                    names.sort();
                    names.dedup();
                    QueryKey::Keep(names)
                }
            };
        }
        for (k, h) in ck.headers.iter().enumerate() {
            let name = h.value.to_ascii_lowercase();
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                p.at(
                    h,
                    format!("{field}.cache_key.headers[{k}]"),
                    format!("`{}` is not a header name", h.value),
                );
            } else if name == "host" {
                p.at(
                    h,
                    format!("{field}.cache_key.headers[{k}]"),
                    "the host is always part of the key",
                );
            }
            cache_key.headers.push(name);
        }
        cache_key.headers.sort();
        cache_key.headers.dedup();
    }
    for (k, t) in r.tags.iter().enumerate() {
        if t.value.is_empty() || t.value.contains(|c: char| c.is_whitespace() || c == ',') {
            p.at(
                t,
                format!("{field}.tags[{k}]"),
                "a tag must be non-empty, without spaces or commas",
            );
        }
    }

    Rule {
        matcher: Match {
            path,
            methods,
            extensions,
        },
        cache,
        ttl: dur(&r.ttl),
        default_ttl: dur(&r.default_ttl),
        negative_ttl: dur(&r.negative_ttl).unwrap_or(DEFAULT_NEGATIVE_TTL),
        stale_while_revalidate: dur(&r.stale_while_revalidate),
        stale_if_error: dur(&r.stale_if_error),
        cache_key,
        tags: r.tags.iter().map(|t| t.value.clone()).collect(),
        allow_set_cookie: r.allow_set_cookie,
        cache_errors: r.cache_errors,
        logic: logic::logic(p, r, field),
        slice: slice(p, r, cache, field),
    }
}

/// A rule's slice size: a multiple of 64 KiB between 64 KiB and 64 MiB, on a rule that caches.
fn slice(p: &mut Problems, r: &file::RuleFile, cache: bool, field: &str) -> Option<u64> {
    let s = r.slice.as_ref()?;
    let size = s.value.0;
    if !(MIN_SLICE..=MAX_SLICE).contains(&size) || size % MIN_SLICE != 0 {
        p.at(
            s,
            format!("{field}.slice"),
            "must be a multiple of 64KiB from 64KiB to 64MiB, like `1MiB`",
        );
        return None;
    }
    if !cache {
        p.at(
            s,
            format!("{field}.slice"),
            "slices are cached: remove `cache: false` or `slice`",
        );
        return None;
    }
    Some(size)
}

/// A regex error as one problem: the reason first, then the pattern and the caret under it on
/// lines of their own, so they stay aligned when the problem is printed.
fn regex_problem(e: &regex::Error) -> String {
    let text = e.to_string();
    let lines: Vec<&str> = text.lines().collect();
    let reason = lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("error: "))
        .unwrap_or(text.as_str());
    let shown: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("    "))
        .copied()
        .collect();
    if shown.is_empty() {
        format!("invalid regular expression: {reason}")
    } else {
        format!("invalid regular expression: {reason}\n{}", shown.join("\n"))
    }
}

/// `*` matches within a path segment, `**` across segments, `?` one character; the glob must
/// match the whole path.
fn glob_to_regex(glob: &str) -> String {
    let mut re = String::from("^");
    let mut chars = glob.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                re.push_str(".*");
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    re
}

fn runtime(p: &mut Problems, f: &file::RuntimeFile) -> Runtime {
    if let Some(t) = &f.threads {
        if t.value == 0 || t.value > 1024 {
            p.at(t, "runtime.threads", "must be between 1 and 1024");
        }
    }
    Runtime {
        threads: f.threads.as_ref().map_or_else(
            || std::thread::available_parallelism().map_or(1, |n| n.get()),
            |t| t.value,
        ),
        work_stealing: f.work_stealing.unwrap_or(false),
        grace_period: dur(&f.grace_period).unwrap_or(Duration::ZERO),
        shutdown_timeout: dur(&f.shutdown_timeout).unwrap_or(Duration::from_secs(10)),
    }
}

fn log(p: &mut Problems, f: &file::LogFile) -> Log {
    let json = match f.format.as_ref() {
        None => true,
        Some(s) if s.value == "json" => true,
        Some(s) if s.value == "text" => false,
        Some(s) => {
            p.at(s, "log.format", "must be `json` or `text`");
            true
        }
    };
    let level = f
        .level
        .as_ref()
        .map_or("info".to_string(), |l| l.value.clone());
    if let Some(l) = &f.level {
        if !["error", "warn", "info", "debug", "trace"].contains(&l.value.as_str()) {
            p.at(
                l,
                "log.level",
                "must be one of error, warn, info, debug, trace",
            );
        }
    }
    let access = match f.access.as_ref().map(|a| (a, &a.value)) {
        None | Some((_, file::AccessFile::Enabled(true))) => Some(AccessOutput::Stdout),
        Some((_, file::AccessFile::Enabled(false))) => None,
        Some((at, file::AccessFile::To(t))) => match t.output.as_str() {
            "stdout" => Some(AccessOutput::Stdout),
            "stderr" => Some(AccessOutput::Stderr),
            "" => {
                p.at(
                    at,
                    "log.access.output",
                    "must be `stdout`, `stderr` or a file path",
                );
                None
            }
            path => Some(AccessOutput::File(PathBuf::from(path))),
        },
    };
    Log {
        json,
        level,
        access,
    }
}

fn compression(p: &mut Problems, f: &file::CompressionFile) -> Compression {
    // gzip takes 1..=9 and brotli 0..=11; one level serves both, so the common range.
    if let Some(l) = &f.level {
        if !(1..=9).contains(&l.value) {
            p.at(l, "compression.level", "must be between 1 and 9");
        }
    }
    Compression {
        on_the_fly: f.on_the_fly.unwrap_or(false),
        level: f.level.as_ref().map_or(5, |l| l.value),
    }
}

const MAX_NEGATIVE_TTL: Duration = Duration::from_secs(3600);

fn limits(p: &mut Problems, f: &file::LimitsFile) -> Limits {
    let d = Limits::default();
    let mut size = |v: &Option<Spanned<crate::units::ByteSize>>,
                    field: &str,
                    range: std::ops::RangeInclusive<u64>,
                    why: &str,
                    default: usize| {
        let Some(v) = v else { return default };
        if !range.contains(&v.value.0) {
            p.at(v, format!("limits.{field}"), why);
        }
        v.value.0 as usize
    };
    // The upper bounds are Pingora's parser's: past them a request is refused before any limit
    // here could answer it properly.
    let max_uri_size = size(
        &f.max_uri_size,
        "max_uri_size",
        256..=65_000,
        "must be between 256B and 63KiB (the parser's own limit is 64KiB)",
        d.max_uri_size,
    );
    let max_header_size = size(
        &f.max_header_size,
        "max_header_size",
        1024..=1024 * 1024,
        "must be between 1KiB and 1MiB (the parser's own limit)",
        d.max_header_size,
    );
    if let Some(n) = &f.max_headers {
        if !(8..=256).contains(&n.value) {
            p.at(
                n,
                "limits.max_headers",
                "must be between 8 and 256 (the parser's own limit)",
            );
        }
    }
    let mut timeout = |v: &Option<Spanned<crate::units::HumanDuration>>,
                       field: &str,
                       zero_allowed: bool,
                       max: Duration,
                       default: Duration| {
        let Some(v) = v else { return default };
        let t = v.value.0;
        if t.is_zero() && !zero_allowed {
            p.at(v, format!("limits.{field}"), "must be greater than 0s");
        } else if t > max {
            p.at(
                v,
                format!("limits.{field}"),
                format!("must be at most {}s", max.as_secs()),
            );
        }
        t
    };
    let hour = Duration::from_secs(3600);
    let client_header_timeout = timeout(
        &f.client_header_timeout,
        "client_header_timeout",
        false,
        hour,
        d.client_header_timeout,
    );
    let keepalive_timeout = timeout(
        &f.keepalive_timeout,
        "keepalive_timeout",
        true,
        hour,
        d.keepalive_timeout,
    );
    // Pingora gives up on any handshake after a minute on its own.
    let tls_handshake_timeout = timeout(
        &f.tls_handshake_timeout,
        "tls_handshake_timeout",
        false,
        Duration::from_secs(60),
        d.tls_handshake_timeout,
    );
    let send_timeout = timeout(&f.send_timeout, "send_timeout", false, hour, d.send_timeout);
    if let Some(v) = &f.keepalive_timeout {
        // Pingora keeps an HTTP/1.1 keep-alive timeout in whole seconds.
        if v.value.0.subsec_nanos() != 0 {
            p.at(
                v,
                "limits.keepalive_timeout",
                "must be whole seconds (0s turns keep-alive off)",
            );
        }
    }
    if let Some(n) = &f.max_connections {
        if n.value == 0 {
            p.at(n, "limits.max_connections", "must be at least 1");
        }
    }
    if let Some(b) = &f.client_buffers {
        if b.value.0 < 1 << 20 {
            p.at(b, "limits.client_buffers", "must be at least 1MiB");
        }
    }
    Limits {
        max_uri_size,
        max_header_size,
        max_headers: f.max_headers.as_ref().map_or(d.max_headers, |n| n.value),
        client_header_timeout,
        keepalive_timeout,
        tls_handshake_timeout,
        send_timeout,
        max_connections: f
            .max_connections
            .as_ref()
            .map_or(d.max_connections, |n| n.value),
        client_buffers: f
            .client_buffers
            .as_ref()
            .map_or(d.client_buffers, |b| b.value.0),
    }
}

mod logic;
mod origin;
#[cfg(test)]
mod tests;
