//! A rule's edge logic: header rules, redirects, the origin path, access control, rate
//! limits; and a site's error pages.

use http::{HeaderName, HeaderValue};
use serde_saphyr::Spanned;

use crate::check::Problems;
use crate::edge::file::{self, HeaderRulesFile};
use crate::edge::logic::{
    content_type_of, Access, Cidr, ClientIp, ErrorPage, ErrorPages, HeaderRules, Logic, OriginPath,
    RateLimit, Redirect, SignedUrl, Template, REDIRECT_STATUSES,
};

/// Fields a rule may not set or remove: they frame the message or belong to one connection.
const HOP_AND_FRAMING: [&str; 8] = [
    "connection",
    "content-length",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The status of `redirect` when it names none: temporary, as nginx's `rewrite … redirect`.
const DEFAULT_REDIRECT: u16 = 302;

/// The edge logic of rule `r` at `field`.
pub(super) fn logic(p: &mut Problems, r: &file::RuleFile, field: &str) -> Logic {
    let response_headers = r
        .response_headers
        .as_ref()
        .map_or_else(HeaderRules::default, |h| {
            header_rules(p, h, &format!("{field}.response_headers"), true)
        });
    let request_headers = r
        .request_headers
        .as_ref()
        .map_or_else(HeaderRules::default, |h| {
            header_rules(p, h, &format!("{field}.request_headers"), false)
        });
    let redirect = r
        .redirect
        .as_ref()
        .map(|rd| redirect(p, rd, &format!("{field}.redirect")));
    let origin_path = r
        .origin_path
        .as_ref()
        .map(|o| origin_path(p, o, &format!("{field}.origin_path")));
    let access = r
        .access
        .as_ref()
        .map(|a| access(p, a, &format!("{field}.access")));
    let rate_limit = r
        .rate_limit
        .as_ref()
        .map(|rl| rate_limit(p, rl, &format!("{field}.rate_limit")));
    let signed_url = r
        .signed_url
        .as_ref()
        .map(|s| signed_url(p, s, &format!("{field}.signed_url")));
    Logic {
        signed_url,
        rate_limit,
        response_headers,
        request_headers,
        redirect,
        redirect_https: r.redirect_https.as_ref().is_some_and(|b| b.value),
        origin_path,
        access,
    }
}

fn header_rules(
    p: &mut Problems,
    h: &Spanned<HeaderRulesFile>,
    field: &str,
    response: bool,
) -> HeaderRules {
    let mut out = HeaderRules::default();
    let name_of = |p: &mut Problems, name: &str, at: &Spanned<String>, f: String| {
        match HeaderName::from_bytes(name.as_bytes()) {
            Ok(n) if HOP_AND_FRAMING.contains(&n.as_str()) => {
                p.at(
                    at,
                    f,
                    format!("`{name}` frames the message or belongs to one connection: the edge sets it"),
                );
                None
            }
            Ok(n) => Some(n),
            Err(_) => {
                p.at(at, f, format!("`{name}` is not a header name (a token)"));
                None
            }
        }
    };
    for (kind, map, to) in [("set", &h.value.set, 0), ("add", &h.value.add, 1)] {
        if kind == "add" && !response && !map.is_empty() {
            p.at(
                h,
                format!("{field}.add"),
                "requests take `set` and `remove`; `add` is for responses",
            );
            continue;
        }
        for (name, value) in map {
            let f = format!("{field}.{kind}.{name}");
            let Some(n) = name_of(p, name, value, f.clone()) else {
                continue;
            };
            match HeaderValue::from_str(&value.value) {
                Ok(v) if to == 0 => out.set.push((n, v)),
                Ok(v) => out.add.push((n, v)),
                Err(_) => p.at(value, f, "not a valid header value (control characters?)"),
            }
        }
    }
    for (k, name) in h.value.remove.iter().enumerate() {
        if let Some(n) = name_of(p, &name.value, name, format!("{field}.remove[{k}]")) {
            out.remove.push(n);
        }
    }
    out
}

fn redirect(p: &mut Problems, r: &Spanned<file::RedirectFile>, field: &str) -> Redirect {
    let status = r.value.status.as_ref().map_or(DEFAULT_REDIRECT, |s| {
        if !REDIRECT_STATUSES.contains(&s.value) {
            p.at(
                s,
                format!("{field}.status"),
                format!(
                    "{} is not a redirect: use 301, 302, 303, 307 or 308",
                    s.value
                ),
            );
        }
        s.value
    });
    let to = match Template::parse(&r.value.to.value) {
        Ok(t) => t,
        Err(e) => {
            p.at(&r.value.to, format!("{field}.to"), e);
            Template(Vec::new())
        }
    };
    if r.value.to.value.trim().is_empty() {
        p.at(&r.value.to, format!("{field}.to"), "must name where to");
    }
    Redirect { to, status }
}

fn origin_path(p: &mut Problems, o: &Spanned<file::OriginPathFile>, field: &str) -> OriginPath {
    let mut check = |v: &Option<Spanned<String>>, name: &str| {
        v.as_ref().map(|s| {
            if !s.value.starts_with('/') || s.value.contains(['?', '#']) {
                p.at(
                    s,
                    format!("{field}.{name}"),
                    "a path prefix starts with `/` and has no query",
                );
            }
            s.value.clone()
        })
    };
    let out = OriginPath {
        strip_prefix: check(&o.value.strip_prefix, "strip_prefix"),
        add_prefix: check(&o.value.add_prefix, "add_prefix"),
    };
    if out == OriginPath::default() {
        p.at(
            o,
            field.to_string(),
            "name strip_prefix, add_prefix or both",
        );
    }
    out
}

fn access(p: &mut Problems, a: &Spanned<file::AccessRuleFile>, field: &str) -> Access {
    let mut blocks = |list: &[Spanned<String>], name: &str| -> Vec<Cidr> {
        list.iter()
            .enumerate()
            .filter_map(|(k, c)| match Cidr::parse(&c.value) {
                Ok(c) => Some(c),
                Err(e) => {
                    p.at(c, format!("{field}.{name}[{k}]"), e);
                    None
                }
            })
            .collect()
    };
    let out = Access {
        allow: blocks(&a.value.allow, "allow"),
        deny: blocks(&a.value.deny, "deny"),
    };
    if a.value.allow.is_empty() && a.value.deny.is_empty() {
        p.at(
            a,
            field.to_string(),
            "name the networks to allow, to deny, or both",
        );
    }
    out
}

/// The largest error page: it is held in memory and sent in place of a body.
const MAX_ERROR_PAGE: u64 = 1 << 20;

/// A site's `error_pages`, each file read now so that a missing one stops the start (or the
/// reload) with its line.
pub(super) fn error_pages(
    p: &mut Problems,
    pages: &std::collections::BTreeMap<String, Spanned<String>>,
    field: &str,
) -> ErrorPages {
    let mut out = ErrorPages::default();
    for (key, path) in pages {
        let f = format!("{field}.{key}");
        let slot = match key.as_str() {
            "4xx" => Err(0),
            "5xx" => Err(1),
            k => match k.parse::<u16>() {
                Ok(s) if (400..=599).contains(&s) => Ok(s),
                _ => {
                    p.at(
                        path,
                        f,
                        format!("`{key}` is not an error status (400-599) or `4xx`/`5xx`"),
                    );
                    continue;
                }
            },
        };
        let file = std::path::Path::new(&path.value);
        let body = match std::fs::metadata(file) {
            Ok(m) if m.len() > MAX_ERROR_PAGE => {
                p.at(path, f, format!("{}: over 1 MiB", file.display()));
                continue;
            }
            Ok(_) => std::fs::read(file),
            Err(e) => Err(e),
        };
        let body = match body {
            Ok(b) => b,
            Err(e) => {
                p.at(path, f, format!("{}: cannot read: {e}", file.display()));
                continue;
            }
        };
        let page = ErrorPage {
            body: body.into(),
            content_type: content_type_of(file),
        };
        match slot {
            Ok(status) => {
                out.exact.insert(status, page);
            }
            Err(class) => out.class[class] = Some(page),
        }
    }
    out
}

/// The longest `per` of a rate limit: a client's count is kept in a sketch that forgets it
/// after its window, and a day is already past any sensible limit.
const MAX_RATE_PERIOD: std::time::Duration = std::time::Duration::from_secs(86_400);

fn rate_limit(p: &mut Problems, rl: &Spanned<file::RateLimitFile>, field: &str) -> RateLimit {
    let f = &rl.value;
    if f.requests.value == 0 {
        p.at(
            &f.requests,
            format!("{field}.requests"),
            "a rate of zero refuses everyone; use access to refuse clients",
        );
    }
    let per = f
        .per
        .as_ref()
        .map_or(std::time::Duration::from_secs(1), |d| {
            if d.value.0 < std::time::Duration::from_millis(1) || d.value.0 > MAX_RATE_PERIOD {
                p.at(d, format!("{field}.per"), "between 1ms and 1d");
            }
            d.value.0
        });
    let burst = f.burst.as_ref().map_or(f.requests.value, |b| {
        if b.value < f.requests.value {
            p.at(
                b,
                format!("{field}.burst"),
                format!(
                    "at least `requests` ({}): a burst is what a quiet client may send at once",
                    f.requests.value
                ),
            );
        }
        b.value
    });
    if let Some(by) = &f.by {
        if by.value != "client_ip" {
            p.at(
                by,
                format!("{field}.by"),
                format!("`{}`: only `client_ip` is supported", by.value),
            );
        }
    }
    RateLimit {
        requests: f.requests.value,
        per,
        burst,
    }
}

fn signed_url(p: &mut Problems, s: &Spanned<file::SignedUrlFile>, field: &str) -> SignedUrl {
    let f = &s.value;
    let keys = match crate::edge::logic::read_url_keys(std::path::Path::new(&f.key_file.value)) {
        Ok(k) => k,
        Err(e) => {
            p.at(&f.key_file, format!("{field}.key_file"), e);
            Vec::new()
        }
    };
    let mut param = |v: &Option<Spanned<String>>, name: &str, default: &str| match v {
        None => default.to_string(),
        Some(s) => {
            let ok = !s.value.is_empty()
                && s.value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b));
            if !ok {
                p.at(
                    s,
                    format!("{field}.{name}"),
                    "a query parameter name: letters, digits, `-`, `_`, `.`, `~`",
                );
            }
            s.value.clone()
        }
    };
    let expires_param = param(&f.expires_param, "expires_param", "exp");
    let signature_param = param(&f.signature_param, "signature_param", "sig");
    if expires_param == signature_param {
        p.at(
            s,
            field.to_string(),
            "expires_param and signature_param must differ",
        );
    }
    SignedUrl {
        keys,
        expires_param,
        signature_param,
    }
}

/// The top-level `client_ip`.
pub(super) fn client_ip(p: &mut Problems, c: &Spanned<file::ClientIpFile>) -> ClientIp {
    let trusted: Vec<Cidr> = c
        .value
        .trusted
        .iter()
        .enumerate()
        .filter_map(|(k, t)| match Cidr::parse(&t.value) {
            Ok(cidr) => Some(cidr),
            Err(e) => {
                p.at(t, format!("client_ip.trusted[{k}]"), e);
                None
            }
        })
        .collect();
    if c.value.trusted.is_empty() {
        p.at(c, "client_ip.trusted", "name the proxies to trust");
    }
    let header = match &c.value.header {
        None => HeaderName::from_static("x-forwarded-for"),
        Some(h) => HeaderName::from_bytes(h.value.as_bytes()).unwrap_or_else(|_| {
            p.at(
                h,
                "client_ip.header",
                format!("`{}` is not a header name", h.value),
            );
            HeaderName::from_static("x-forwarded-for")
        }),
    };
    ClientIp { trusted, header }
}
