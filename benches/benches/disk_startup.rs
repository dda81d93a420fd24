//! How long a node with a large disk cache takes to start: the catalog read and the index and
//! eviction order rebuilt, for `OBJECTS` objects (default 1,000,000). Run with
//! `cargo bench -p edge-benches --bench disk_startup`.
//!
//! Only the catalog is filled: opening the tier does not touch body files (the sweep that checks
//! them runs in the background once the node serves), so bodies would only slow the set-up.
//! A child process fills it and aborts with the database open, as `kill -9` would leave it, so
//! the first open includes redb's recovery; the later opens follow clean closes.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use edge::cache::catalog::{Catalog, Entry, Op, Record};
use edge::cache::disk::DiskTier;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

const CHILD: &str = "EDGE_STARTUP_FILL_DIR";

fn main() {
    let objects: u64 = std::env::var("OBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    if let Ok(dir) = std::env::var(CHILD) {
        fill(std::path::Path::new(&dir), objects);
        // Leave the database as a crash would: open, never closed.
        std::process::abort();
    }
    let dir = std::env::temp_dir().join(format!("edge-startup-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let started = Instant::now();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .env(CHILD, &dir)
        .env("OBJECTS", objects.to_string())
        .status()
        .unwrap();
    assert!(!status.success(), "the filling process should have aborted");
    println!(
        "filled a catalog of {objects} objects in {:.1?} (then aborted)",
        started.elapsed()
    );
    measure(&dir, objects);
    let _ = std::fs::remove_dir_all(&dir);
}

fn fill(dir: &std::path::Path, objects: u64) {
    {
        let (catalog, _) = Catalog::open(&dir.join("catalog.redb")).unwrap();
        let mut n = 0u64;
        while n < objects {
            let ops = (n..(n + 50_000).min(objects))
                .map(|i| {
                    let mut hash = [0u8; 16];
                    hash[..8].copy_from_slice(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
                    hash[8..].copy_from_slice(&i.to_le_bytes());
                    let record = Record {
                        meta: (vec![1; 60], vec![2; 300]),
                        key: format!("v1/https/example.com/assets/{i}.js").into_bytes(),
                    };
                    Op::Put {
                        hash,
                        entry: Entry {
                            gen: i + 1,
                            body_len: 20_000,
                            record_len: record.encode().len() as u32,
                            created: 1_700_000_000 + i,
                            primary: hash,
                        },
                        record: record.encode(),
                    }
                })
                .collect();
            catalog.submit(ops).blocking_recv().unwrap().unwrap();
            n = (n + 50_000).min(objects);
        }
        std::mem::forget(catalog);
    }
}

fn measure(dir: &std::path::Path, objects: u64) {
    let db = std::fs::metadata(dir.join("catalog.redb")).unwrap().len();
    println!("catalog file: {} MiB", db >> 20);
    for run in 1..=4 {
        let before = rss_kib();
        let start = Instant::now();
        // The previous run's committer thread may still hold the database for a moment.
        let settings = edge_config::edge::DiskSettings {
            path: dir.to_owned(),
            max_size: 1 << 50,
            max_object_size: 1 << 30,
            meta_cache: edge_config::edge::DEFAULT_META_CACHE,
            min_uses: 1,
            scrub_interval: std::time::Duration::ZERO,
        };
        let tier =
            DiskTier::open_waiting(&settings, std::time::Duration::from_secs(10), |_| {}).unwrap();
        let took = start.elapsed();
        let held = tier
            .stats()
            .objects
            .load(std::sync::atomic::Ordering::Relaxed);
        let after = if run == 1 { "a crash" } else { "a clean close" };
        println!(
            "run {run}, after {after}: opened with {held} objects in {took:.2?}; RSS +{} MiB",
            rss_kib().saturating_sub(before) / 1024
        );
        assert_eq!(held, objects);
        drop(tier);
    }
}
