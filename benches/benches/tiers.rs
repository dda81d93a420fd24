//! The cache tiers on their own: memory put and hit, disk write (through to a durable commit),
//! disk hit (read whole and checked; its head kept in memory, and read from the catalog and
//! decoded) and a checked block read from a large body file.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use edge::cache::catalog::Record;
use edge::cache::disk::{DiskBody, DiskTier, Found, HowToRead};
use edge::cache::memory::MemoryTier;
use edge::cache::{Hash, StoredObject};
use edge_config::edge::{DiskSettings, MemorySettings, DEFAULT_META_CACHE};

const MEMORY: MemorySettings = MemorySettings {
    max_size: 256 << 20,
    max_object_size: 1 << 20,
};

fn hash(n: u64) -> Hash {
    let mut h = [0u8; 16];
    h[..8].copy_from_slice(&n.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
    h[8..].copy_from_slice(&n.to_le_bytes());
    h
}

fn object(n: u64, body: &Bytes) -> Arc<StoredObject> {
    Arc::new(StoredObject::new(
        hash(n),
        hash(n),
        Bytes::new(),
        (vec![0; 64], vec![0; 256]),
        body.clone(),
    ))
}

fn memory(c: &mut Criterion) {
    let body = Bytes::from(vec![7u8; 1024]);
    let mut g = c.benchmark_group("memory");
    g.throughput(Throughput::Elements(1));
    let tier = MemoryTier::new(&MEMORY);
    let mut n = 0u64;
    g.bench_function("put_1k", |b| {
        b.iter(|| {
            n += 1;
            tier.put(object(n, &body))
        })
    });
    let hot = MemoryTier::new(&MEMORY);
    for n in 0..10_000 {
        hot.put(object(n, &body));
    }
    let mut i = 0u64;
    g.bench_function("hit_1k", |b| {
        b.iter(|| {
            i = (i + 1) % 10_000;
            hot.get(&hash(i)).is_some()
        })
    });
    g.finish();
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("edge-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A serialized meta as a static asset's response stores it.
fn meta() -> (Vec<u8>, Vec<u8>) {
    let now = std::time::SystemTime::now();
    let mut header = pingora::http::ResponseHeader::build(200, None).unwrap();
    for (name, value) in [
        ("content-type", "application/javascript"),
        ("content-length", "4096"),
        ("cache-control", "public, max-age=3600"),
        ("etag", "\"5f3a-1c2b3d4e\""),
        ("last-modified", "Mon, 23 Nov 2026 10:00:00 GMT"),
        ("date", "Mon, 23 Nov 2026 12:00:00 GMT"),
    ] {
        header.insert_header(name, value).unwrap();
    }
    let fresh = now + std::time::Duration::from_secs(3600);
    pingora::cache::CacheMeta::new(fresh, now, 0, 0, header)
        .serialize()
        .unwrap()
}

/// Writes one body through the tier's whole write path: temp file, checksums, fsync, rename,
/// index, durable catalog commit.
fn put(tier: &DiskTier, rt: &tokio::runtime::Runtime, n: u64, body: &[u8]) {
    let gen = tier.write_whole(&hash(n), body).unwrap();
    let record = Record {
        meta: meta(),
        key: format!("v1/example.com/{n}").into_bytes(),
    };
    rt.block_on(tier.commit(hash(n), gen, body.len() as u64, hash(n), &record, || true))
        .unwrap();
}

fn disk(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = scratch("disk");
    let mut settings = DiskSettings {
        path: dir.clone(),
        max_size: 8 << 30,
        max_object_size: 1 << 30,
        meta_cache: DEFAULT_META_CACHE,
        min_uses: 1,
        scrub_interval: std::time::Duration::ZERO,
    };
    let mut tier = DiskTier::open(&settings).unwrap();
    let small = vec![3u8; 4096];
    let mut g = c.benchmark_group("disk");
    g.throughput(Throughput::Elements(1));
    g.sample_size(20);
    let mut n = 1_000_000u64;
    g.bench_function("put_4k_durable", |b| {
        b.iter(|| {
            n += 1;
            put(&tier, &rt, n, &small)
        })
    });
    for n in 0..1000 {
        put(&tier, &rt, n, &small);
    }
    g.sample_size(100);
    let hit = |tier: &DiskTier, i: u64| {
        let entry = tier.lookup(&hash(i)).unwrap();
        // Read whole and not promoted: checked once per kept file, as a disk hit of an object
        // larger than the memory tier takes is.
        let how = HowToRead {
            whole_limit: 1 << 20,
            cached_only: false,
            check_all: false,
        };
        match tier.read(&hash(i), &entry, how).unwrap() {
            Found::Object(head, DiskBody::Whole(body)) => {
                assert!(head.decoded().is_some());
                body.len()
            }
            _ => panic!("not found whole"),
        }
    };
    let mut i = 0u64;
    g.bench_function("hit_4k", |b| {
        b.iter(|| {
            i = (i + 1) % 1000;
            hit(&tier, i)
        })
    });
    // Every head read from the catalog and decoded: the same objects, no heads kept.
    drop(tier);
    settings.meta_cache = 0;
    tier = DiskTier::open_waiting(&settings, Duration::from_secs(10), |_| {}).unwrap();
    g.bench_function("hit_4k_head_not_kept", |b| {
        b.iter(|| {
            i = (i + 1) % 1000;
            hit(&tier, i)
        })
    });
    let large = vec![5u8; 8 << 20];
    put(&tier, &rt, 99_999_999, &large);
    g.throughput(Throughput::Bytes(edge::cache::body_file::BLOCK));
    g.bench_function("block_read", |b| {
        let entry = tier.lookup(&hash(99_999_999)).unwrap();
        let Found::Object(_, DiskBody::File(file, _)) = tier
            .read(
                &hash(99_999_999),
                &entry,
                HowToRead {
                    whole_limit: 0,
                    cached_only: false,
                    check_all: false,
                },
            )
            .unwrap()
        else {
            panic!("not streamed");
        };
        let mut block = 0;
        b.iter_batched(
            || {
                block = (block + 1) % ((8 << 20) / edge::cache::body_file::BLOCK);
                block
            },
            |b| file.read_block(b).unwrap().len(),
            BatchSize::SmallInput,
        )
    });
    g.finish();
    drop(tier);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, memory, disk);
criterion_main!(benches);
