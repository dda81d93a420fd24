//! The quick-start origin: a few paths that show the cache at work. `sample-origin [ADDR]`
//! (default 127.0.0.1:8000).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a demo program: fail loudly

use edge_tests::origin::{Origin, Reply};

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8000".into());
    let origin = Origin::start_on(addr.parse().expect("ADDR like 127.0.0.1:8000"), |req| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        match req.path() {
            "/" | "/index.html" => Reply::ok(
                "<h1>edge CDN sample origin</h1>\n",
                &[
                    ("content-type", "text/html"),
                    ("cache-control", "public, max-age=10"),
                    ("etag", "\"index-v1\""),
                ],
            ),
            "/assets/app.css" => Reply::ok(
                "body { font-family: sans-serif }\n",
                &[
                    ("content-type", "text/css"),
                    ("cache-control", "public, max-age=31536000, immutable"),
                    ("surrogate-key", "assets css"),
                    ("etag", "\"css-v1\""),
                ],
            ),
            "/assets/app.js" => Reply::ok(
                "console.log('hello from the edge')\n",
                &[
                    ("content-type", "application/javascript"),
                    ("cache-control", "public, max-age=600"),
                    ("cache-tag", "assets,js"),
                ],
            ),
            "/api/time" => Reply::ok(
                format!("{{\"now\":{now}}}\n"),
                &[
                    ("content-type", "application/json"),
                    ("cache-control", "no-store"),
                ],
            ),
            "/private" => Reply::ok(
                "only for you\n",
                &[("cache-control", "private, max-age=60")],
            ),
            _ => Reply::status(404, "not found\n", &[("cache-control", "max-age=5")]),
        }
    });
    println!("sample origin listening on http://{}", origin.addr);
    loop {
        std::thread::park();
    }
}
