//! A blocking HTTP/1.1 client over a plain `TcpStream`, one request per connection.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header fields in order, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body (de-chunked).
    pub body: Vec<u8>,
    /// The body ended as its framing said (Content-Length reached, or the last chunk seen).
    pub complete: bool,
}

impl Response {
    /// First value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `Cache-Status`, or "" when absent.
    pub fn cache_status(&self) -> &str {
        self.header("cache-status").unwrap_or("")
    }

    /// This node's `Cache-Status` entry (the last one), parsed; an entry without name or
    /// parameters when the response has none.
    pub fn cache_status_entry(&self) -> crate::cache_status::Entry {
        crate::cache_status::parse(self.cache_status())
            .pop()
            .unwrap_or(crate::cache_status::Entry {
                cache: String::new(),
                params: Vec::new(),
            })
    }

    /// Panics unless this node's `Cache-Status` entry has every parameter `expect` names
    /// (`hit`, `fwd=miss`, `hit; ttl=`; see [`Entry::matches`](crate::cache_status::Entry::matches)),
    /// showing the whole field.
    pub fn assert_cache_status(&self, expect: &str) {
        let cs = self.cache_status();
        assert!(
            self.cache_status_entry().matches(expect),
            "Cache-Status `{cs}` lacks `{expect}`"
        );
    }

    /// Body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// GET `path` with `Host: host` and extra headers.
pub fn get(addr: SocketAddr, host: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    request(addr, "GET", host, path, headers, b"")
}

/// Any method, with a body.
pub fn request(
    addr: SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    raw(addr, &bytes, method == "HEAD").expect("request failed")
}

/// Sends raw bytes and parses one response. `head`: the request was HEAD (no body follows).
pub fn raw(addr: SocketAddr, bytes: &[u8], head: bool) -> std::io::Result<Response> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.write_all(bytes)?;
    let mut buf = Vec::new();
    // Read to EOF, tolerating a reset after data: a truncated body is what some tests look for.
    let mut chunk = [0u8; 64 * 1024];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if buf.is_empty() => return Err(e),
            Err(_) => break,
        }
    }
    parse(&buf, head).ok_or_else(|| {
        std::io::Error::other(format!(
            "unparsable response: {:?}",
            String::from_utf8_lossy(&buf)
        ))
    })
}

/// Asks for `path` on a connection whose receive buffer is 4 KiB (so the kernel takes little
/// of the body for it), and never reads: a client that stopped reading. Blocks on a runtime of
/// its own only to connect.
pub fn stalled_get(addr: SocketAddr, path: &str) -> std::io::Result<TcpStream> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let stream = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_recv_buffer_size(4096)?;
        socket.connect(addr).await
    })?;
    let mut s = stream.into_std()?;
    s.set_nonblocking(false)?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: example.com\r\n\r\n").as_bytes())?;
    Ok(s)
}

/// Reads one response framed by `Content-Length` (or a 204 or 304, which have no body) from a
/// connection kept open, leaving it ready for the next request.
pub fn read_one(s: &mut TcpStream) -> std::io::Result<Response> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.push(byte[0]);
    }
    let head = parse(&buf, true).ok_or_else(|| std::io::Error::other("unparsable head"))?;
    if matches!(head.status, 204 | 304) {
        return Ok(head);
    }
    let len: usize = head
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| std::io::Error::other("no content-length"))?;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)?;
    buf.extend_from_slice(&body);
    parse(&buf, false).ok_or_else(|| std::io::Error::other("unparsable response"))
}

fn parse(buf: &[u8], head: bool) -> Option<Response> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head_text = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = head_text.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &buf[end + 4..];
    let find = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    };
    let (body, complete) = if head || status == 304 || status == 204 {
        (Vec::new(), true)
    } else if find("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        dechunk(rest)
    } else if let Some(len) = find("content-length").and_then(|v| v.parse::<usize>().ok()) {
        (rest[..rest.len().min(len)].to_vec(), rest.len() >= len)
    } else {
        (rest.to_vec(), true)
    };
    Some(Response {
        status,
        headers,
        body,
        complete,
    })
}

fn dechunk(mut b: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return (out, false);
        };
        let size = std::str::from_utf8(&b[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok());
        let Some(size) = size else {
            return (out, false);
        };
        b = &b[eol + 2..];
        if size == 0 {
            return (out, true);
        }
        if b.len() < size {
            out.extend_from_slice(b);
            return (out, false);
        }
        out.extend_from_slice(&b[..size]);
        b = b.get(size + 2..).unwrap_or(&[]);
    }
}

/// What [`get_checked`] saw.
#[derive(Debug)]
pub struct Streamed {
    /// Status code.
    pub status: u16,
    /// `Cache-Status`.
    pub cache_status: String,
    /// Body bytes received.
    pub len: u64,
    /// Offset of the first byte that differed from the expected body, if any.
    pub first_mismatch: Option<u64>,
}

/// GET a large body and compare it, as it streams, with `expected(offset)`; nothing is held.
/// The response must use Content-Length framing.
pub fn get_checked(
    addr: SocketAddr,
    host: &str,
    path: &str,
    expected: impl Fn(u64) -> u8,
) -> std::io::Result<Streamed> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut head = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    let (status, cache_status, mut pending) = loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::Error::other("closed before the header ended"));
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            let r = parse(&head[..end + 4], true)
                .ok_or_else(|| std::io::Error::other("unparsable header"))?;
            let cs = r.cache_status().to_string();
            break (r.status, cs, head[end + 4..].to_vec());
        }
    };
    let mut len = 0u64;
    let mut first_mismatch = None;
    loop {
        for b in &pending {
            if first_mismatch.is_none() && *b != expected(len) {
                first_mismatch = Some(len);
            }
            len += 1;
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => pending = buf[..n].to_vec(),
        }
    }
    Ok(Streamed {
        status,
        cache_status,
        len,
        first_mismatch,
    })
}
