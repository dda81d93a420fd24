//! The purge entry points of Cloudflare, Fastly and Varnish on purge-api: each, called as its
//! tools call it, purges the edge through the same log, with the same token scopes, and answers
//! (and refuses) in that API's shape.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed set-up is a failed test

use std::time::Duration;

use edge_tests::client::{self, Response};
use edge_tests::edge::Edge;
use edge_tests::eventually;
use edge_tests::origin::{Origin, Reply};
use edge_tests::purge_api::{PurgeApi, API_TOKEN, SCOPED_TOKEN};
use serde_json::Value;

fn json(r: &Response) -> Value {
    serde_json::from_str(&r.text()).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
}

/// An edge caching everything an hour, tagged by the first path segment, and a purge-api that
/// takes `PURGE` from `varnish_from`.
struct Setup {
    _origin: Origin,
    edge: Edge,
    api: PurgeApi,
}

impl Setup {
    fn start(varnish_from: &str) -> Setup {
        let origin = Origin::start(|r| {
            let tag = r
                .path()
                .trim_start_matches('/')
                .split('/')
                .next()
                .unwrap_or("");
            Reply::ok(
                format!("body of {}", r.target),
                &[
                    ("Cache-Control", "max-age=3600"),
                    ("Surrogate-Key", &format!("all {tag}")),
                ],
            )
        });
        let edge = Edge::builder(origin.addr).start();
        let api = PurgeApi::builder()
            .edges(&[edge.admin])
            .extra(&format!(
                "compat: {{ varnish_purge_from: [{varnish_from}] }}\n"
            ))
            .start();
        Setup {
            _origin: origin,
            edge,
            api,
        }
    }

    /// Caches `path` on the edge.
    fn cache(&self, path: &str) {
        self.edge.get(path, &[]);
        assert!(self.cached(path), "{path} not cached");
    }

    fn cached(&self, path: &str) -> bool {
        self.edge.get(path, &[]).cache_status_entry().matches("hit")
    }

    /// Waits until purge `id` is applied, then says whether `path` is still a hit.
    fn purged(&self, id: &str, path: &str) -> bool {
        eventually(Duration::from_secs(10), "the purge applied", || {
            (json(&self.api.get(&format!("/v1/purge/{id}")))["complete"] == true).then_some(())
        });
        !self.cached(path)
    }

    fn post(&self, path: &str, headers: &[(&str, &str)], body: &str) -> Response {
        client::request(
            self.api.addr,
            "POST",
            "api.example",
            path,
            headers,
            body.as_bytes(),
        )
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

const CF: &str = "/client/v4/zones/023e105f4ecef8ad9ca31a8372d0c353/purge_cache";

#[test]
fn cloudflare_purge_cache_purges_and_answers_in_its_envelope() {
    let s = Setup::start("");
    s.cache("/css/a.css");
    s.cache("/img/b.png");
    s.cache("/js/c.js");
    let auth = bearer(API_TOKEN);
    let r = s.post(
        CF,
        &[("Authorization", &auth)],
        r#"{"files": ["http://example.com/css/a.css", {"url": "https://example.com/img/b.png", "headers": {"CF-IPCountry": "US"}}]}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = json(&r);
    assert_eq!(v["success"], true, "{v}");
    assert_eq!(v["errors"], Value::Array(vec![]));
    let id = v["result"]["id"].as_str().unwrap().to_string();
    assert!(s.purged(&id, "/css/a.css") && !s.cached("/img/b.png"));
    assert!(s.cached("/js/c.js"), "only what was named");

    // The older API key header, and tags.
    let r = s.post(
        CF,
        &[
            ("X-Auth-Key", API_TOKEN),
            ("X-Auth-Email", "ops@example.com"),
        ],
        r#"{"tags": ["js"]}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(s.purged(json(&r)["result"]["id"].as_str().unwrap(), "/js/c.js"));

    s.cache("/css/a.css");
    let r = s.post(
        CF,
        &[("Authorization", &auth)],
        r#"{"prefixes": ["example.com/css/"]}"#,
    );
    assert!(s.purged(json(&r)["result"]["id"].as_str().unwrap(), "/css/a.css"));
    s.cache("/js/c.js");
    let r = s.post(
        CF,
        &[("Authorization", &auth)],
        r#"{"hosts": ["example.com"]}"#,
    );
    assert!(s.purged(json(&r)["result"]["id"].as_str().unwrap(), "/js/c.js"));
    s.cache("/img/b.png");
    let r = s.post(
        CF,
        &[("Authorization", &auth)],
        r#"{"purge_everything": true}"#,
    );
    assert!(s.purged(json(&r)["result"]["id"].as_str().unwrap(), "/img/b.png"));
}

#[test]
fn cloudflare_refusals_carry_its_error_codes() {
    let s = Setup::start("");
    let refused = |r: Response, status: u16, code: u64| {
        assert_eq!(r.status, status, "{}", r.text());
        let v = json(&r);
        assert_eq!(v["success"], false, "{v}");
        assert_eq!(v["errors"][0]["code"], code, "{v}");
        assert!(v["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    };
    let body = r#"{"files": ["http://example.com/a"]}"#;
    refused(s.post(CF, &[], body), 401, 10000);
    refused(
        s.post(CF, &[("Authorization", "Bearer wrong")], body),
        401,
        10000,
    );
    refused(s.post(CF, &[("X-Auth-Key", "wrong")], body), 401, 10000);
    let scoped = bearer(SCOPED_TOKEN);
    refused(s.post(CF, &[("Authorization", &scoped)], body), 403, 1015);
    refused(
        s.post(
            CF,
            &[("Authorization", &scoped)],
            r#"{"purge_everything": true}"#,
        ),
        403,
        1015,
    );
    let auth = bearer(API_TOKEN);
    refused(
        s.post(CF, &[("Authorization", &auth)], "files=a"),
        400,
        1013,
    );
    refused(
        s.post(CF, &[("Authorization", &auth)], r#"{"files": "x"}"#),
        400,
        1013,
    );
    refused(s.post(CF, &[("Authorization", &auth)], "{}"), 400, 1012);
    refused(
        s.post(
            CF,
            &[("Authorization", &auth)],
            r#"{"files": ["/relative"]}"#,
        ),
        400,
        1013,
    );
    refused(
        s.post(
            "/client/v4/zones/z/dns_records",
            &[("Authorization", &auth)],
            body,
        ),
        404,
        7003,
    );
    let r = client::get(s.api.addr, "api.example", CF, &[("Authorization", &auth)]);
    refused(r, 405, 10405);
    // A scoped token within its hosts is accepted.
    let r = s.post(
        CF,
        &[("Authorization", &scoped)],
        r#"{"files": ["https://shop.test/a"]}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn fastly_purges_by_key_batch_url_and_all_and_answers_in_its_shapes() {
    let s = Setup::start("");
    s.cache("/css/a.css");
    s.cache("/img/b.png");
    s.cache("/js/c.js");
    let key = [("Fastly-Key", API_TOKEN)];
    let r = s.post("/service/SU1Z0isxPaozGVKXdv0eY/purge/css", &key, "");
    assert_eq!(r.status, 200, "{}", r.text());
    let v = json(&r);
    assert_eq!(v["status"], "ok", "{v}");
    assert!(s.purged(v["id"].as_str().unwrap(), "/css/a.css"));
    assert!(s.cached("/img/b.png"));

    // A batch by header answers each key with its purge id.
    let r = s.post(
        "/service/x/purge",
        &[key[0], ("Surrogate-Key", "img js")],
        "",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = json(&r);
    let id = v["img"].as_str().unwrap();
    assert_eq!(v["js"], id, "{v}");
    assert!(s.purged(id, "/img/b.png") && !s.cached("/js/c.js"));

    s.cache("/img/b.png");
    let r = s.post("/service/x/purge", &key, r#"{"surrogate_keys": ["img"]}"#);
    assert!(s.purged(json(&r)["img"].as_str().unwrap(), "/img/b.png"));

    s.cache("/css/a.css");
    let r = s.post("/purge/example.com/css/a.css", &key, "");
    assert_eq!(json(&r)["status"], "ok");
    assert!(s.purged(json(&r)["id"].as_str().unwrap(), "/css/a.css"));

    s.cache("/js/c.js");
    let r = s.post("/service/x/purge_all", &key, "");
    assert!(s.purged(json(&r)["id"].as_str().unwrap(), "/js/c.js"));
}

/// The entry points a soft purge is asked through with `Fastly-Soft-Purge: 1`.
#[derive(Debug, Clone, Copy)]
enum Entry {
    FastlyKey,
    V1,
    VarnishPurge,
}

impl Entry {
    /// Soft-purges `path` (tagged with its first segment) through this entry point.
    fn soft_purge(self, s: &Setup, path: &str) -> Response {
        let soft = ("Fastly-Soft-Purge", "1");
        let tag = path.split('/').nth(1).unwrap();
        match self {
            Entry::FastlyKey => s.post(
                &format!("/service/x/purge/{tag}"),
                &[("Fastly-Key", API_TOKEN), soft],
                "",
            ),
            Entry::V1 => {
                let auth = bearer(API_TOKEN);
                s.post(
                    "/v1/purge",
                    &[("Authorization", &auth), soft],
                    &format!(r#"{{"tags": ["{tag}"]}}"#),
                )
            }
            Entry::VarnishPurge => {
                client::request(s.api.addr, "PURGE", "example.com", path, &[soft], b"")
            }
        }
    }
}

#[test]
fn fastly_soft_purge_marks_stale_on_every_entry_point() {
    let s = Setup::start("\"127.0.0.1\"");
    for (entry, path) in [
        (Entry::FastlyKey, "/css/a.css"),
        (Entry::V1, "/img/b.png"),
        (Entry::VarnishPurge, "/js/c.js"),
    ] {
        s.cache(path);
        let r = entry.soft_purge(&s, path);
        assert!(
            r.status == 200 || r.status == 202,
            "{entry:?}: {}",
            r.text()
        );
        let id = json(&r)["id"].as_str().unwrap().to_string();
        eventually(Duration::from_secs(10), "applied", || {
            (json(&s.api.get(&format!("/v1/purge/{id}")))["complete"] == true).then_some(())
        });
        // Soft: kept, and revalidated with the origin before it is served again.
        let cs = s.edge.get(path, &[]).cache_status().to_string();
        assert!(cs.contains("fwd=stale"), "{entry:?}: {cs}");
    }
}

#[test]
fn fastly_refusals_say_msg_and_detail() {
    let s = Setup::start("");
    let refused = |r: Response, status: u16| {
        assert_eq!(r.status, status, "{}", r.text());
        let v = json(&r);
        assert!(v["msg"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        assert!(v["detail"].is_string(), "{v}");
    };
    refused(s.post("/service/x/purge/css", &[], ""), 401);
    refused(
        s.post("/service/x/purge/css", &[("Fastly-Key", "wrong")], ""),
        401,
    );
    // A token scoped to hosts cannot purge keys (they reach every host), but can purge its URLs.
    refused(
        s.post("/service/x/purge/css", &[("Fastly-Key", SCOPED_TOKEN)], ""),
        403,
    );
    refused(
        s.post("/purge/example.com/a", &[("Fastly-Key", SCOPED_TOKEN)], ""),
        403,
    );
    let r = s.post("/purge/shop.test/a", &[("Fastly-Key", SCOPED_TOKEN)], "");
    assert_eq!(r.status, 200, "{}", r.text());
    let key = [("Fastly-Key", API_TOKEN)];
    refused(s.post("/service/x/purge", &key, "surrogate_keys=a"), 400);
    refused(s.post("/service/x/purge", &key, ""), 400);
    refused(s.post("/service/x/stats", &key, ""), 404);
    refused(
        client::get(s.api.addr, "h", "/service/x/purge_all", &key),
        405,
    );
}

#[test]
fn varnish_purge_from_an_allowed_network_purges_a_url_or_a_regex_prefix() {
    let s = Setup::start("\"127.0.0.0/8\"");
    s.cache("/css/a.css");
    s.cache("/css/b.css");
    s.cache("/img/c.png");
    let r = client::request(s.api.addr, "PURGE", "example.com", "/css/a.css", &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(s.purged(json(&r)["id"].as_str().unwrap(), "/css/a.css"));
    assert!(s.cached("/css/b.css"));

    // An absolute request target, as some plugins send it.
    let r = client::raw(
        s.api.addr,
        b"PURGE http://example.com/css/b.css HTTP/1.1\r\nHost: purge-api\r\nConnection: close\r\n\r\n",
        false,
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(s.purged(json(&r)["id"].as_str().unwrap(), "/css/b.css"));

    // `/.*` by regex: the whole site, as WordPress's purge-all sends it.
    s.cache("/css/a.css");
    let regex = [("X-Purge-Method", "regex")];
    let r = client::request(s.api.addr, "PURGE", "example.com", "/.*", &regex, b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let id = json(&r)["id"].as_str().unwrap().to_string();
    assert!(s.purged(&id, "/css/a.css") && !s.cached("/img/c.png"));

    let r = client::request(
        s.api.addr,
        "PURGE",
        "example.com",
        "/(css|img)/.*",
        &regex,
        b"",
    );
    assert_eq!(r.status, 501, "{}", r.text());
    assert!(json(&r)["error"].as_str().unwrap().contains("regex"));
}

#[test]
fn varnish_purge_is_refused_outside_its_networks_and_when_not_enabled() {
    let outside = Setup::start("\"10.0.0.0/8\"");
    let r = client::request(outside.api.addr, "PURGE", "example.com", "/a", &[], b"");
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(json(&r)["error"].as_str().unwrap().contains("127.0.0.1"));
    let off = Setup::start("");
    let r = client::request(off.api.addr, "PURGE", "example.com", "/a", &[], b"");
    assert_eq!(r.status, 405, "{}", r.text());
    assert!(json(&r)["error"]
        .as_str()
        .unwrap()
        .contains("varnish_purge_from"));
    // Nothing refused was logged.
    let head = json(&client::get(off.api.addr, "h", "/healthz", &[]))["head"].clone();
    assert_eq!(head, 0);
}
