//! A programmable HTTP/1.1 origin on `127.0.0.1:0` that records every request it is sent.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// A request as the origin saw it.
#[derive(Debug, Clone)]
pub struct Req {
    /// Method.
    pub method: String,
    /// Path with query.
    pub target: String,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Req {
    /// First value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
}

/// What the origin answers.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status.
    pub status: u16,
    /// Headers (Content-Length is added unless `chunked`).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// Wait this long before answering.
    pub delay: Duration,
    /// Send the body chunked.
    pub chunked: bool,
    /// Close the connection after this many body bytes (a crash mid-body).
    pub truncate_after: Option<usize>,
    /// Pause between body writes of 16 KiB, so a fill stays in progress.
    pub drip: Duration,
    /// Instead of `body`: this many bytes of [`pattern`], made as they are sent (for bodies too
    /// large to hold).
    pub generated: Option<u64>,
}

/// Byte `i` of a generated body: varies within and across blocks, so a misplaced or repeated
/// block does not compare equal.
pub fn pattern_byte(i: u64) -> u8 {
    ((i ^ (i >> 11) ^ (i >> 19)) % 251) as u8
}

/// Bytes `range` of a generated body.
pub fn pattern(range: std::ops::Range<u64>) -> Vec<u8> {
    range.map(pattern_byte).collect()
}

impl Reply {
    /// 200 with a body and headers.
    pub fn ok(body: impl Into<Vec<u8>>, headers: &[(&str, &str)]) -> Reply {
        Reply::status(200, body, headers)
    }

    /// Any status.
    pub fn status(status: u16, body: impl Into<Vec<u8>>, headers: &[(&str, &str)]) -> Reply {
        Reply {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.into(),
            delay: Duration::ZERO,
            chunked: false,
            truncate_after: None,
            drip: Duration::ZERO,
            generated: None,
        }
    }

    /// 200 with a generated body of `len` bytes ([`pattern`]).
    pub fn generated(len: u64, headers: &[(&str, &str)]) -> Reply {
        let mut r = Reply::ok(Vec::new(), headers);
        r.generated = Some(len);
        r
    }

    /// A generated object of `len` bytes ([`pattern`], offset by `shift` to make another
    /// version of it) as an origin that honours `Range` answers `req`: a `206` of the bytes one
    /// `bytes=a-b` range names, else a `200` of all of them, with `headers`.
    pub fn ranged(req: &Req, len: u64, shift: u64, headers: &[(&str, &str)]) -> Reply {
        let bytes = |from: u64, to: u64| -> Vec<u8> {
            (from..to).map(|i| pattern_byte(i + shift)).collect()
        };
        let range = req
            .header("range")
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.split_once('-'))
            .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)));
        match range {
            Some((from, _)) if from >= len => {
                let mut r = Reply::status(416, Vec::new(), headers);
                r.headers
                    .push(("Content-Range".into(), format!("bytes */{len}")));
                r
            }
            Some((from, to)) => {
                let end = (to + 1).min(len);
                let mut r = Reply::status(206, bytes(from, end), headers);
                r.headers.push((
                    "Content-Range".into(),
                    format!("bytes {from}-{}/{len}", end - 1),
                ));
                r
            }
            None => Reply::ok(bytes(0, len), headers),
        }
    }

    /// With a delay before answering.
    pub fn delayed(mut self, d: Duration) -> Reply {
        self.delay = d;
        self
    }
}

type Handler = Arc<dyn Fn(&Req) -> Reply + Send + Sync>;

/// A running origin. Dropping it (or [`Origin::stop`]) closes the listener and every connection.
pub struct Origin {
    /// Where it listens.
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<Req>>>,
    rt: Option<tokio::runtime::Runtime>,
}

impl Origin {
    /// Starts an origin answering with `handler`.
    pub fn start(handler: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> Origin {
        Self::start_on("127.0.0.1:0".parse().unwrap(), handler)
    }

    /// Starts an origin on a given address (to bring one back on the same port).
    pub fn start_on(
        addr: SocketAddr,
        handler: impl Fn(&Req) -> Reply + Send + Sync + 'static,
    ) -> Origin {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt.block_on(TcpListener::bind(addr)).unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let handler: Handler = Arc::new(handler);
        let l2 = log.clone();
        rt.spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let (h, l) = (handler.clone(), l2.clone());
                tokio::spawn(async move {
                    let _ = serve(sock, h, l).await;
                });
            }
        });
        Origin {
            addr,
            log,
            rt: Some(rt),
        }
    }

    /// Stops answering: the port refuses connections afterwards.
    pub fn stop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
            // The runtime drops its tasks, the listener among them, on its own threads after
            // this returns; until then the kernel still completes connections into the dying
            // listener's backlog, and a request sent on one fails after it connected (a 502 where
            // a test expects failover). Wait, with a deadline, until the port refuses.
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while std::net::TcpStream::connect_timeout(&self.addr, Duration::from_millis(200))
                .is_ok()
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Req> {
        self.log.lock().unwrap().clone()
    }

    /// How many requests had this path (query ignored).
    pub fn count(&self, path: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path() == path)
            .count()
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn serve(
    sock: TcpStream,
    handler: Handler,
    log: Arc<Mutex<Vec<Req>>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(sock);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).await?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let find = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v): &(String, String)| v.clone())
        };
        let mut body = Vec::new();
        if let Some(len) = find("content-length").and_then(|v| v.parse::<usize>().ok()) {
            body.resize(len, 0);
            reader.read_exact(&mut body).await?;
        } else if find("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            loop {
                let mut size = String::new();
                reader.read_line(&mut size).await?;
                let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
                let mut chunk = vec![0; n + 2];
                reader.read_exact(&mut chunk).await?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        }
        let req = Req {
            method: method.clone(),
            target,
            headers,
            body,
        };
        log.lock().unwrap().push(req.clone());
        let reply = handler(&req);
        if !reply.delay.is_zero() {
            tokio::time::sleep(reply.delay).await;
        }
        let reason = match reply.status {
            200 => "OK",
            304 => "Not Modified",
            404 => "Not Found",
            _ => "Status",
        };
        let mut head = format!("HTTP/1.1 {} {reason}\r\n", reply.status);
        for (k, v) in &reply.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        let bodyless = reply.status == 304 || reply.status == 204;
        if reply.chunked {
            head.push_str("Transfer-Encoding: chunked\r\n");
        } else if !bodyless
            && !reply
                .headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        {
            let len = reply.generated.unwrap_or(reply.body.len() as u64);
            head.push_str(&format!("Content-Length: {len}\r\n"));
        }
        head.push_str("\r\n");
        let sock = reader.get_mut();
        sock.write_all(head.as_bytes()).await?;
        if method == "HEAD" || bodyless {
            continue;
        }
        if let Some(len) = reply.generated {
            let limit = reply.truncate_after.map_or(len, |t| (t as u64).min(len));
            let mut at = 0;
            while at < limit {
                let end = (at + 256 * 1024).min(limit);
                sock.write_all(&pattern(at..end)).await?;
                at = end;
                if !reply.drip.is_zero() {
                    tokio::time::sleep(reply.drip).await;
                }
            }
            if reply.truncate_after.is_some() {
                return Ok(());
            }
            sock.flush().await?;
            continue;
        }
        let limit = reply
            .truncate_after
            .unwrap_or(usize::MAX)
            .min(reply.body.len());
        for piece in reply.body[..limit].chunks(16 * 1024) {
            if reply.chunked {
                sock.write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                    .await?;
                sock.write_all(piece).await?;
                sock.write_all(b"\r\n").await?;
            } else {
                sock.write_all(piece).await?;
            }
            sock.flush().await?;
            if !reply.drip.is_zero() {
                tokio::time::sleep(reply.drip).await;
            }
        }
        if reply.truncate_after.is_some() {
            // Die mid-body: no terminating chunk, connection reset.
            return Ok(());
        }
        if reply.chunked {
            sock.write_all(b"0\r\n\r\n").await?;
        }
        sock.flush().await?;
    }
}

/// Counts per path, for assertions over many requests.
pub fn counts(reqs: &[Req]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for r in reqs {
        *m.entry(r.path().to_string()).or_default() += 1;
    }
    m
}
