//! A bounded soak: two edges with disk tiers, purge-api and an origin, under mixed hits, misses,
//! large objects and purges at high concurrency for `SOAK_SECONDS` (default 300). Every body is
//! checked. Prints the figures and exits 1 if any request failed, if RSS or open descriptors
//! grew after warm-up, or if a cache tier left its bounds. Run by `scripts/soak.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test program: fail loudly

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edge_tests::edge::{DiskCache, Edge, Scratch};
use edge_tests::origin::{Origin, Reply};
use edge_tests::purge_api::PurgeApi;

const HOT: u64 = 300;
const BIG: u64 = 20;
const MEMORY: u64 = 16 << 20;
const DISK: u64 = 128 << 20;

/// The body of a path: its name repeated to a size its prefix chooses, so every body is
/// checkable and a body under the wrong key does not compare equal.
fn body_of(path: &str) -> Vec<u8> {
    let len = if path.starts_with("/big/") {
        512 * 1024
    } else if path.starts_with("/cold/") {
        8 * 1024
    } else {
        2 * 1024
    };
    path.bytes().chain(*b"|").cycle().take(len).collect()
}

/// A keep-alive HTTP/1.1 connection (the harness client opens one per request, which would
/// run the loopback out of ports in minutes).
struct Conn {
    addr: SocketAddr,
    stream: Option<BufReader<TcpStream>>,
}

impl Conn {
    fn get(&mut self, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
        if self.stream.is_none() {
            let s = TcpStream::connect(self.addr)?;
            s.set_read_timeout(Some(Duration::from_secs(30)))?;
            s.set_nodelay(true)?;
            self.stream = Some(BufReader::new(s));
        }
        let r = self.exchange(path);
        if r.is_err() {
            self.stream = None;
        }
        r
    }

    fn exchange(&mut self, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
        let s = self.stream.as_mut().expect("connected");
        write!(
            s.get_mut(),
            "GET {path} HTTP/1.1\r\nHost: soak.test\r\nAccept-Encoding: identity\r\n\r\n"
        )?;
        let mut line = String::new();
        s.read_line(&mut line)?;
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let (mut len, mut chunked, mut close) = (None, false, false);
        loop {
            line.clear();
            s.read_line(&mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let (k, v) = l.split_once(':').unwrap_or((l, ""));
            let (k, v) = (k.to_ascii_lowercase(), v.trim().to_ascii_lowercase());
            match k.as_str() {
                "content-length" => len = v.parse::<usize>().ok(),
                "transfer-encoding" => chunked = v.contains("chunked"),
                "connection" => close = v == "close",
                _ => {}
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                s.read_line(&mut line)?;
                let n = usize::from_str_radix(line.trim(), 16).map_err(std::io::Error::other)?;
                let mut chunk = vec![0; n + 2];
                s.read_exact(&mut chunk)?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        } else {
            body.resize(len.unwrap_or(0), 0);
            s.read_exact(&mut body)?;
        }
        if close {
            self.stream = None;
        }
        Ok((status, body))
    }
}

/// A small xorshift generator: the mix needs no statistics, only spread.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    errors: AtomicU64,
    bytes: AtomicU64,
    purges: AtomicU64,
    purge_errors: AtomicU64,
}

fn proc_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn proc_fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64)
}

fn mib(bytes: f64) -> f64 {
    bytes / 1_048_576.0
}

fn tier_bytes(edge: &Edge, tier: &str) -> f64 {
    edge.metric(&format!("edge_cache_tier_bytes{{tier=\"{tier}\"}}"))
}

struct Sample {
    at: Duration,
    rss: Vec<u64>,
    fds: Vec<u64>,
    memory: Vec<f64>,
    disk: Vec<f64>,
    ok: u64,
}

fn main() {
    let seconds = edge_tests::env_or("SOAK_SECONDS", 300);
    let concurrency = edge_tests::env_or("SOAK_CONCURRENCY", 64);
    let origin = Origin::start(|r| {
        let tag = r.path().split('/').nth(1).unwrap_or("none").to_string();
        Reply::ok(
            body_of(r.path()),
            &[
                ("cache-control", "max-age=3600"),
                ("surrogate-key", tag.as_str()),
            ],
        )
    });
    let dirs = [Scratch::new("soak-1"), Scratch::new("soak-2")];
    let edges: Vec<Edge> = dirs
        .iter()
        .map(|d| {
            let cache = DiskCache::at(&d.0)
                .memory(&format!("{MEMORY}B"))
                .memory_object("64KiB")
                .disk(&format!("{DISK}B"))
                .disk_object("1MiB");
            Edge::builder(origin.addr).cache(cache).start()
        })
        .collect();
    let api = PurgeApi::start(
        &edges.iter().map(|e| e.admin).collect::<Vec<_>>(),
        "",
        "limits: { rate_per_second: 1000, burst: 1000 }\n",
    );
    let pids: Vec<u32> = edges.iter().map(Edge::pid).chain([api.pid()]).collect();
    println!(
        "soak: {seconds}s, {concurrency} connections over 2 edges (memory {} MiB, disk {} MiB each), purge-api, one origin",
        MEMORY >> 20,
        DISK >> 20
    );

    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let cold = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for w in 0..concurrency {
        let addr = edges[(w % 2) as usize].addr;
        let (counts, stop, cold) = (counts.clone(), stop.clone(), cold.clone());
        threads.push(std::thread::spawn(move || {
            let mut conn = Conn { addr, stream: None };
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (w + 1));
            while !stop.load(Ordering::Relaxed) {
                let roll = rng.next() % 100;
                let path = if roll < 85 {
                    format!("/hot/{}", rng.next() % HOT)
                } else if roll < 97 {
                    format!("/cold/{}", cold.fetch_add(1, Ordering::Relaxed))
                } else {
                    format!("/big/{}", rng.next() % BIG)
                };
                match conn.get(&path) {
                    Ok((200, body)) if body == body_of(&path) => {
                        counts.ok.fetch_add(1, Ordering::Relaxed);
                        counts.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                    }
                    other => {
                        let what = match other {
                            Ok((s, b)) => format!("status {s}, {} bytes", b.len()),
                            Err(e) => e.to_string(),
                        };
                        if counts.errors.fetch_add(1, Ordering::Relaxed) < 10 {
                            eprintln!("error: GET {path}: {what}");
                        }
                    }
                }
            }
        }));
    }
    {
        let (counts, stop) = (counts.clone(), stop.clone());
        let api_addr = api.addr;
        threads.push(std::thread::spawn(move || {
            let mut rng = Rng(42);
            let auth = format!("Bearer {}", edge_tests::purge_api::API_TOKEN);
            while !stop.load(Ordering::Relaxed) {
                let body = match rng.next() % 4 {
                    0 => r#"{"tags": ["big"]}"#.to_string(),
                    1 => r#"{"prefixes": ["soak.test/hot/1"]}"#.to_string(),
                    2 => r#"{"tags": ["hot"], "soft": true}"#.to_string(),
                    _ => format!(
                        r#"{{"urls": ["http://soak.test/hot/{}"]}}"#,
                        rng.next() % HOT
                    ),
                };
                let r = edge_tests::client::request(
                    api_addr,
                    "POST",
                    "purge-api",
                    "/v1/purge",
                    &[("Authorization", &auth)],
                    body.as_bytes(),
                );
                if r.status == 202 {
                    counts.purges.fetch_add(1, Ordering::Relaxed);
                } else {
                    counts.purge_errors.fetch_add(1, Ordering::Relaxed);
                    eprintln!("error: purge {body}: {} {}", r.status, r.text());
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        }));
    }

    let start = Instant::now();
    let mut samples = Vec::new();
    let interval = Duration::from_secs((seconds / 20).clamp(1, 15));
    while start.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(interval);
        let s = Sample {
            at: start.elapsed(),
            rss: pids.iter().map(|&p| proc_rss_kib(p)).collect(),
            fds: pids.iter().map(|&p| proc_fds(p)).collect(),
            memory: edges.iter().map(|e| tier_bytes(e, "memory")).collect(),
            disk: edges.iter().map(|e| tier_bytes(e, "disk")).collect(),
            ok: counts.ok.load(Ordering::Relaxed),
        };
        println!(
            "{:>5.0}s  {:>9} ok  {:>6} req/s  RSS MiB edge {:>5.1} {:>5.1} api {:>4.1}  fds {:>4} {:>4} {:>3}  memory tier MiB {:>5.1} {:>5.1}  disk tier MiB {:>6.1} {:>6.1}",
            s.at.as_secs_f64(),
            s.ok,
            (s.ok - samples.last().map_or(0, |p: &Sample| p.ok)) / interval.as_secs().max(1),
            mib(s.rss[0] as f64 * 1024.0),
            mib(s.rss[1] as f64 * 1024.0),
            mib(s.rss[2] as f64 * 1024.0),
            s.fds[0],
            s.fds[1],
            s.fds[2],
            mib(s.memory[0]),
            mib(s.memory[1]),
            mib(s.disk[0]),
            mib(s.disk[1]),
        );
        samples.push(s);
    }
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }

    let elapsed = start.elapsed().as_secs_f64();
    let ok = counts.ok.load(Ordering::Relaxed);
    let errors = counts.errors.load(Ordering::Relaxed);
    let purge_errors = counts.purge_errors.load(Ordering::Relaxed);
    // Growth is judged from half-way (by then the disk tiers have reached their bound and their
    // index its size: in a 300 s run they fill in about 140 s) to the end.
    let warm = &samples[samples.len() / 2];
    let last = samples.last().expect("at least one sample");
    let mut failures = Vec::new();
    if errors > 0 || purge_errors > 0 {
        failures.push(format!(
            "{errors} request errors, {purge_errors} purge errors"
        ));
    }
    let names = ["edge-1", "edge-2", "purge-api"];
    for (i, name) in names.iter().enumerate() {
        // Allocator noise on a few MiB is not growth; a leak over minutes is more than this.
        let rss_limit = warm.rss[i] + warm.rss[i] / 5 + 8 * 1024;
        if last.rss[i] > rss_limit {
            failures.push(format!(
                "{name}: RSS grew from {} to {} KiB after warm-up",
                warm.rss[i], last.rss[i]
            ));
        }
        if last.fds[i] > warm.fds[i] + 16 {
            failures.push(format!(
                "{name}: open descriptors grew from {} to {}",
                warm.fds[i], last.fds[i]
            ));
        }
    }
    for (i, s) in samples.iter().enumerate() {
        for e in 0..2 {
            if s.memory[e] > MEMORY as f64 * 1.05 || s.disk[e] > DISK as f64 * 1.05 {
                failures.push(format!(
                    "edge-{}: a tier over its bound in sample {i}",
                    e + 1
                ));
            }
        }
    }
    println!(
        "\nrequests ok {ok}, errors {errors}; {:.0} req/s, {:.1} MB/s; purges accepted {}, refused {purge_errors}",
        ok as f64 / elapsed,
        counts.bytes.load(Ordering::Relaxed) as f64 / elapsed / 1e6,
        counts.purges.load(Ordering::Relaxed),
    );
    let growth: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            format!(
                "{name} RSS {:.1} -> {:.1} MiB, fds {} -> {}",
                mib(warm.rss[i] as f64 * 1024.0),
                mib(last.rss[i] as f64 * 1024.0),
                warm.fds[i],
                last.fds[i]
            )
        })
        .collect();
    println!("from half-way to the end: {}", growth.join("; "));
    if failures.is_empty() {
        println!("soak: PASS");
    } else {
        for f in &failures {
            println!("soak: FAIL: {f}");
        }
        std::process::exit(1);
    }
}
