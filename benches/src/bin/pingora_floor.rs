//! Pingora's own floor, for the benchmark table: the least a Pingora HTTP service can spend on a
//! request on this machine, measured beside the edge in the same cdnbench run.
//!
//! `pingora-floor proxy` is a Pingora proxy with caching off (every request goes to `$ORIGIN`);
//! `pingora-floor static` answers every request from `request_filter` with a fixed 1 KiB body
//! (no cache, no origin): the cost of Pingora's HTTP/1 server alone. Listens on
//! `127.0.0.1:$CANDIDATE_PORT` with 2 worker threads, as the edge's default on this machine.

use std::process::ExitCode;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::{ProxyHttp, Session};
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use pingora::upstreams::peer::HttpPeer;
use pingora::Result;

/// The body of every `static` answer: the size of cdnbench's `hot1k` object.
const BODY: &[u8] = &[b'x'; 1024];

struct Floor {
    origin: Option<String>,
}

#[async_trait]
impl ProxyHttp for Floor {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn request_filter(&self, session: &mut Session, _ctx: &mut ()) -> Result<bool> {
        if self.origin.is_some() {
            return Ok(false);
        }
        let mut resp = ResponseHeader::build(200, Some(3))?;
        resp.insert_header("content-length", BODY.len())?;
        resp.insert_header("cache-control", "public, max-age=3600")?;
        session.write_response_header(Box::new(resp), false).await?;
        session
            .write_response_body(Some(Bytes::from_static(BODY)), true)
            .await?;
        Ok(true)
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        let origin = self.origin.clone().unwrap_or_default();
        Ok(Box::new(HttpPeer::new(origin, false, String::new())))
    }
}

fn main() -> ExitCode {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let origin = match mode.as_str() {
        "proxy" => match std::env::var("ORIGIN") {
            Ok(o) => Some(o),
            Err(_) => {
                eprintln!("pingora-floor proxy: set ORIGIN to host:port");
                return ExitCode::from(64);
            }
        },
        "static" => None,
        _ => {
            eprintln!("usage: pingora-floor proxy|static (env CANDIDATE_PORT, ORIGIN)");
            return ExitCode::from(64);
        }
    };
    let port = std::env::var("CANDIDATE_PORT").unwrap_or_else(|_| "19050".into());
    let conf = ServerConf {
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut service = pingora::proxy::http_proxy_service(&server.configuration, Floor { origin });
    service.add_tcp(&format!("127.0.0.1:{port}"));
    server.add_service(service);
    server.run_forever()
}
