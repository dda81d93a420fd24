//! Cold `Range` requests on sliced objects, against nginx's slice module in the same run: a 1 KB
//! range at a random offset inside a 128 MiB object never fetched before, the time to its first
//! response byte, and how many slices the origin was asked for; then the same ranges again
//! (stored). Both caches slice by 1 MiB in front of the same origin, on loopback.
//!
//! `cargo build --release --bins && cargo bench -p edge-benches --bench slices` (needs nginx with
//! `--with-http_slice_module`, as Debian's is; `RANGES=50` sets the count).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: fail loudly

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use edge_tests::edge::{Edge, Scratch};
use edge_tests::origin::{Origin, Reply};
use edge_tests::{eventually, free_port};

const LEN: u64 = 128 << 20;

/// A TCP GET with `Range: bytes=from-(from+1023)`: the time to the first response byte, and
/// whether the whole response came (status 206 and 1,024 body bytes).
fn ranged_get(addr: SocketAddr, path: &str, from: u64) -> (Duration, bool) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: example.com\r\nRange: bytes={from}-{}\r\nConnection: close\r\n\r\n",
        from + 1023
    );
    let start = Instant::now();
    s.write_all(req.as_bytes()).unwrap();
    let mut first = [0u8; 1];
    s.read_exact(&mut first).unwrap();
    let ttfb = start.elapsed();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    let body = rest
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| rest.len() - at - 4);
    let ok = rest.starts_with(b"TTP/1.1 206") && body == Some(1024);
    (ttfb, ok)
}

/// An nginx, stopped (master and workers) when dropped.
struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGQUIT: the master stops its workers and exits (SIGKILL would orphan them).
        let _ = Command::new("kill")
            .args(["-QUIT", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

fn nginx(dir: &std::path::Path, port: u16, origin: SocketAddr) -> Nginx {
    let conf = dir.join("nginx.conf");
    std::fs::create_dir_all(dir.join("cache")).unwrap();
    std::fs::write(
        &conf,
        format!(
            "worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n\
               proxy_cache_path {d}/cache levels=1:2 keys_zone=c:10m max_size=4g inactive=1h use_temp_path=off;\n\
               server {{\n    listen 127.0.0.1:{port};\n    location / {{\n\
                 slice 1m;\n      proxy_cache c;\n\
                 proxy_cache_key $uri$is_args$args$slice_range;\n\
                 proxy_set_header Range $slice_range;\n      proxy_cache_valid 200 206 1h;\n\
                 proxy_http_version 1.1;\n      proxy_pass http://{origin};\n    }}\n  }}\n}}\n",
            d = dir.display()
        ),
    )
    .unwrap();
    Nginx(
        Command::new("nginx")
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(dir)
            .spawn()
            .expect("nginx"),
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn main() {
    if Command::new("nginx").arg("-v").output().is_err() {
        eprintln!("nginx is not installed: apt-get install nginx");
        return;
    }
    let ranges: u64 = std::env::var("RANGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let origin = Origin::start(|req| {
        Reply::ranged(
            req,
            LEN,
            0,
            &[("Cache-Control", "max-age=3600"), ("ETag", "\"v1\"")],
        )
    });
    let edge = Edge::builder(origin.addr)
        .cache("{ memory: { max_size: 512MiB, max_object_size: 2MiB }, lock_timeout: 5s }")
        .rules("- match: { path_prefix: /v/ }\n  slice: 1MiB\n")
        .start();
    let dir = Scratch::new("bench-nginx-slice");
    let port = free_port();
    let _nginx = nginx(&dir.0, port, origin.addr);
    let nginx_addr: SocketAddr = ([127, 0, 0, 1], port).into();
    eventually(Duration::from_secs(10), "nginx to listen", || {
        TcpStream::connect(nginx_addr).ok().map(|_| ())
    });

    println!("| cache | cold 1 KB range: p50 ms | p90 ms | slices fetched per range (max) | stored: p50 ms |");
    println!("|---|---|---|---|---|");
    for (name, addr) in [("edge", edge.addr), ("nginx slice", nginx_addr)] {
        let tag = name.replace(' ', "-");
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let offsets: Vec<u64> = (0..ranges)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x % (LEN - 1024)
            })
            .collect();
        let (mut cold, mut warm, mut most) = (Vec::new(), Vec::new(), 0usize);
        for (i, from) in offsets.iter().enumerate() {
            let path = format!("/v/{tag}-{i}.bin");
            let before = origin.count(&path);
            let (t, ok) = ranged_get(addr, &path, *from);
            assert!(ok, "{name}: bad answer for {path} at {from}");
            cold.push(t);
            most = most.max(origin.count(&path) - before);
        }
        for (i, from) in offsets.iter().enumerate() {
            let (t, ok) = ranged_get(addr, &format!("/v/{tag}-{i}.bin"), *from);
            assert!(ok);
            warm.push(t);
        }
        cold.sort();
        warm.sort();
        println!(
            "| {name} | {} | {} | {most} | {} |",
            ms(percentile(&cold, 0.5)),
            ms(percentile(&cold, 0.9)),
            ms(percentile(&warm, 0.5)),
        );
    }
}
