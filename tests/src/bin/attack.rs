//! Replays the attacks of slow and hostile clients against a real edge (disk tier, TLS
//! listener, an origin) and prints what held: an idle-connection flood, readers that stop
//! reading a large disk object, and HTTP/2 streams with a zero window (with `h2load`, when it
//! is installed). Each attack is held `ATTACK_HOLD` seconds (default: until the longest
//! timeout in force has passed) and its figures are taken during and after it. Bounded in
//! count and time; loopback only. Run by `scripts/attack.sh`.
//!
//! `ATTACK_IDLE` (20000), `ATTACK_READERS` (2000), `ATTACK_H2_CONNECTIONS` (40),
//! `ATTACK_H2_STREAMS` (100), `ATTACK_LIMITS` (a `limits:` mapping in flow YAML, without
//! braces; empty: the node's defaults, and the file has no `limits` key at all).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test program: fail loudly

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use edge_tests::edge::{DiskCache, Edge, Scratch};
use edge_tests::origin::{Origin, Reply};
use edge_tests::pki::Ca;

const LARGE: u64 = 8 << 20;

/// What one look at the edge process shows.
struct Sample {
    rss_mib: f64,
    fds: usize,
    open: f64,
    buffered_mib: f64,
    ready: u16,
    probe_ms: Option<f64>,
}

fn sample(edge: &Edge) -> Sample {
    let fds = std::fs::read_dir(format!("/proc/{}/fd", edge.pid()))
        .map(|d| d.count())
        .unwrap_or(0);
    let t = Instant::now();
    let probe = edge_tests::client::raw(
        edge.addr,
        b"GET /small HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
        false,
    )
    .ok()
    .filter(|r| r.status == 200)
    .map(|_| t.elapsed().as_secs_f64() * 1e3);
    Sample {
        rss_mib: edge.memory_kib("VmRSS") as f64 / 1024.0,
        fds,
        open: edge.metric("edge_connections_open"),
        buffered_mib: edge.metric("edge_client_buffer_bytes") / 1048576.0,
        ready: edge.ready_status(),
        probe_ms: probe,
    }
}

fn print(attack: &str, phase: &str, s: &Sample, extra: &str) {
    let probe = s
        .probe_ms
        .map_or("FAILED".to_string(), |ms| format!("{ms:.1} ms"));
    println!(
        "| {attack} | {phase} | {:.0} | {} | {} | {:.1} | {} | {probe} | {extra} |",
        s.rss_mib, s.fds, s.open, s.buffered_mib, s.ready
    );
}

/// How many of `streams` the edge has closed (a read sees the end, or an error).
fn closed(streams: &mut [TcpStream]) -> usize {
    let mut buf = [0u8; 64 << 10];
    let mut n = 0;
    for s in streams.iter_mut() {
        s.set_nonblocking(true).unwrap();
        let gone = loop {
            match s.read(&mut buf) {
                Ok(0) => break true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break false,
                Err(_) => break true,
            }
        };
        n += usize::from(gone);
    }
    n
}

/// Idle connections one helper process holds.
const IDLE_PER_PROCESS: u64 = 9_000;

/// A helper process holding idle connections (this program run as `attack idle ADDR N`): it
/// prints how many it opened, then, each time a line arrives on its input, how many the edge
/// has closed.
struct Idle {
    child: std::process::Child,
    out: std::io::BufReader<std::process::ChildStdout>,
}

impl Idle {
    fn start(addr: SocketAddr, n: u64) -> Idle {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["idle", &addr.to_string(), &n.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = std::io::BufReader::new(child.stdout.take().unwrap());
        Idle { child, out }
    }

    /// The next figure the helper prints.
    fn read(&mut self) -> u64 {
        use std::io::BufRead;
        let mut line = String::new();
        let _ = self.out.read_line(&mut line);
        line.trim().parse().unwrap_or(0)
    }

    /// How many connections it opened (its first figure).
    fn opened(&mut self) -> u64 {
        self.read()
    }

    /// How many of them the edge has closed by now.
    fn closed(&mut self) -> u64 {
        if let Some(stdin) = self.child.stdin.as_mut() {
            let _ = stdin.write_all(b"\n");
        }
        self.read()
    }
}

impl Drop for Idle {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The helper's side of [`Idle`].
fn idle_helper(addr: SocketAddr, n: u64) {
    let mut conns: Vec<TcpStream> = (0..n)
        .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok())
        .collect();
    println!("{}", conns.len());
    let mut line = String::new();
    while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
        println!("{}", closed(&mut conns));
        line.clear();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("idle") {
        idle_helper(args[2].parse().unwrap(), args[3].parse().unwrap());
        return;
    }
    let idle = edge_tests::env_or("ATTACK_IDLE", 20_000);
    let readers = edge_tests::env_or("ATTACK_READERS", 2_000);
    let h2_connections = edge_tests::env_or("ATTACK_H2_CONNECTIONS", 40);
    let h2_streams = edge_tests::env_or("ATTACK_H2_STREAMS", 100);
    let limits = std::env::var("ATTACK_LIMITS").unwrap_or_default();
    // The product's defaults: header 10 s, send 60 s.
    let hold = Duration::from_secs(edge_tests::env_or("ATTACK_HOLD", 65));

    let origin = Origin::start(|r| match r.path() {
        "/large" => Reply::generated(LARGE, &[("cache-control", "max-age=3600")]),
        _ => Reply::ok("fine", &[("cache-control", "max-age=3600")]),
    });
    let dir = Scratch::new("attack");
    let ca = Ca::new(&dir.0, "ca");
    let cert = ca.leaf("localhost", "leaf");
    let tls_port = edge_tests::free_port();
    let limits_yaml = if limits.is_empty() {
        String::new()
    } else {
        format!("limits: {{ {limits} }}\n")
    };
    let edge = Edge::with_pool(&format!("servers: [\"{}\"]", origin.addr))
        .node_id("edge-attack")
        .cache(DiskCache::at(&dir.0).memory("64MiB").disk("1GiB"))
        .tls(tls_port, &cert)
        .extra(&limits_yaml)
        .start();
    let r = edge.get("/large", &[]);
    assert_eq!(r.body.len() as u64, LARGE);
    edge.wait_disk_objects(1, Duration::from_secs(30));
    println!(
        "edge pid {}, limits: {}; each attack held {} s",
        edge.pid(),
        if limits.is_empty() {
            "defaults"
        } else {
            &limits
        },
        hold.as_secs()
    );
    println!(
        "| attack | phase | RSS MiB | descriptors | open | held MiB | /readyz | a normal GET | |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    print("-", "at rest", &sample(&edge), "");

    // 1. Idle connections that never send a byte, from helper processes of at most
    if idle > 0 {
        // IDLE_PER_PROCESS each: one process's descriptors would run out first.
        let mut helpers: Vec<Idle> = (0..idle.div_ceil(IDLE_PER_PROCESS))
            .map(|i| Idle::start(edge.addr, IDLE_PER_PROCESS.min(idle - i * IDLE_PER_PROCESS)))
            .collect();
        let opened: u64 = helpers.iter_mut().map(Idle::opened).sum();
        std::thread::sleep(Duration::from_secs(2));
        print(
            "idle flood",
            "during",
            &sample(&edge),
            &format!("{opened} of {idle} opened"),
        );
        std::thread::sleep(hold);
        let closed_idle: u64 = helpers.iter_mut().map(Idle::closed).sum();
        print(
            "idle flood",
            "after",
            &sample(&edge),
            &format!("{closed_idle} of {opened} closed by the edge"),
        );
        drop(helpers);
        std::thread::sleep(Duration::from_secs(2));
    }

    // 2. Readers that ask for an 8 MiB disk object and stop reading.
    if readers > 0 {
        let before = sample(&edge);
        let mut stalled: Vec<TcpStream> = (0..readers)
            .filter_map(|_| edge_tests::client::stalled_get(edge.addr, "/large").ok())
            .collect();
        std::thread::sleep(Duration::from_secs(3));
        let during = sample(&edge);
        print(
            "stalled readers",
            "during",
            &during,
            &format!(
                "{} readers, {:.0} KiB each",
                stalled.len(),
                (during.rss_mib - before.rss_mib).max(0.0) * 1024.0 / stalled.len().max(1) as f64
            ),
        );
        std::thread::sleep(hold);
        print(
            "stalled readers",
            "after",
            &sample(&edge),
            &format!(
                "{} of {} closed by the edge",
                closed(&mut stalled),
                stalled.len()
            ),
        );
        drop(stalled);
        std::thread::sleep(Duration::from_secs(2));
    }

    // 3. HTTP/2 streams with a zero window.
    if h2_connections * h2_streams > 0 {
        let h2load = Command::new("h2load")
            .args(["-c", &h2_connections.to_string()])
            .args(["-m", &h2_streams.to_string()])
            .args(["-n", &(h2_connections * h2_streams).to_string()])
            .args(["-w", "0", "-W", "0"])
            .arg(format!("https://127.0.0.1:{tls_port}/large"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match h2load {
            Err(_) => println!("| h2 zero window | skipped | | | | | | | h2load not installed |"),
            Ok(mut child) => {
                let before = sample(&edge);
                std::thread::sleep(Duration::from_secs(5));
                let during = sample(&edge);
                print(
                    "h2 zero window",
                    "during",
                    &during,
                    &format!(
                        "{h2_connections} connections x {h2_streams} streams, {:.0} KiB a stream",
                        (during.rss_mib - before.rss_mib).max(0.0) * 1024.0
                            / (h2_connections * h2_streams) as f64
                    ),
                );
                std::thread::sleep(hold);
                let ended = child.try_wait().ok().flatten().is_some();
                print(
                    "h2 zero window",
                    "after",
                    &sample(&edge),
                    if ended {
                        "h2load's connections ended"
                    } else {
                        "h2load still connected"
                    },
                );
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
    println!(
        "closed by reason: {}",
        [
            "client_header_timeout",
            "keepalive_timeout",
            "tls_handshake_timeout",
            "send_timeout",
            "client_buffers"
        ]
        .iter()
        .map(|r| format!(
            "{r} {}",
            edge.metric(&format!("edge_connections_closed_total{{reason=\"{r}\"}}"))
        ))
        .collect::<Vec<_>>()
        .join(", ")
    );
}
