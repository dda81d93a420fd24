//! RAM per cached object spent on bookkeeping, with `OBJECTS` objects (default 1,000,000):
//! the disk tier's index (entry map, eviction order, variant lists) and the memory tier's own
//! structures (TinyUFO's entries and estimator, the variant map, each object's record and the
//! decoded header it keeps). Bodies are not counted: they are the payload. Measured as the
//! growth of the process's resident memory. Run with
//! `cargo bench -p edge-benches --bench index_memory`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use edge::cache::catalog::Entry;
use edge::cache::index::Index;
use edge::cache::memory::MemoryTier;
use edge::cache::{Hash, StoredObject};
use pingora::cache::CacheMeta;
use pingora::http::ResponseHeader;

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib * 1024
}

fn hash(i: u64) -> Hash {
    let mut h = [0u8; 16];
    h[..8].copy_from_slice(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
    h[8..].copy_from_slice(&i.to_le_bytes());
    h
}

fn main() {
    let objects: u64 = std::env::var("OBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);

    // Disk index, sized for the objects as a node's start-up sizes it from the catalog.
    let before = rss_bytes();
    let index = Index::new(1 << 50, objects as usize);
    for i in 0..objects {
        let h = hash(i);
        index.insert(
            h,
            Entry {
                gen: i + 1,
                body_len: 20_000,
                record_len: 400,
                created: 1_700_000_000 + i,
                primary: h,
            },
        );
    }
    let grown = rss_bytes().saturating_sub(before);
    assert_eq!(index.count() as u64, objects);
    println!(
        "disk index: {objects} objects, RSS +{} MiB, {} bytes per object",
        grown >> 20,
        grown / objects
    );
    drop(index);

    // Memory tier: objects with a typical stored header and an empty body, so what grows is
    // the bookkeeping; the key is reported apart (it counts in the tier's byte bound like the
    // body does).
    let mut header = ResponseHeader::build(200, None).unwrap();
    for (n, v) in [
        ("content-type", "application/javascript"),
        ("content-length", "0"),
        ("cache-control", "public, max-age=3600"),
        ("etag", "\"6b035d76-400\""),
        ("last-modified", "Sun, 22 Nov 2026 21:24:06 GMT"),
        ("x-edge-stored-at", "1795000000000000"),
    ] {
        header.insert_header(n, v).unwrap();
    }
    let created = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
    let meta = CacheMeta::new(created + Duration::from_secs(3600), created, 0, 0, header)
        .serialize()
        .unwrap();
    // The head keeps the meta's fields and its decoded header; the serialized form is the disk's.
    let (internal, compressed) = (meta.0.len(), meta.1.len());
    let key_len = "v1/https/example.com/assets/1000000.js".len() as u64;
    let before = rss_bytes();
    // Sized as a node sizes it: TinyLFU's estimator expects one object per 8 KiB of the bound.
    let tier = MemoryTier::new(&edge_config::edge::MemorySettings {
        max_size: objects * 8192,
        max_object_size: 1 << 20,
    });
    for i in 0..objects {
        let h = hash(i);
        let key = Bytes::from(format!("v1/https/example.com/assets/{i}.js"));
        tier.put(Arc::new(StoredObject::new(
            h,
            h,
            key,
            meta.clone(),
            Bytes::new(),
        )));
    }
    let grown = rss_bytes().saturating_sub(before);
    let held = tier
        .stats()
        .objects
        .load(std::sync::atomic::Ordering::Relaxed);
    let payload = key_len;
    let counted = tier
        .stats()
        .bytes
        .load(std::sync::atomic::Ordering::Relaxed)
        / held.max(1);
    let decoded = StoredObject::new([0; 16], [0; 16], Bytes::new(), meta.clone(), Bytes::new());
    let before_headers = rss_bytes();
    let headers: Vec<_> = (0..objects)
        .map(|_| decoded.decoded().unwrap().header.clone())
        .collect();
    let header_bytes = rss_bytes().saturating_sub(before_headers) / objects;
    drop(headers);
    // What a hit makes of it: Pingora's header map, for comparison.
    let before_maps = rss_bytes();
    let maps: Vec<ResponseHeader> = (0..objects)
        .map(|_| decoded.decoded().unwrap().header.header().unwrap())
        .collect();
    let map_bytes = rss_bytes().saturating_sub(before_maps) / objects;
    drop(maps);
    println!(
        "memory tier: {held} objects, RSS +{} MiB, {} bytes per object, of which {payload} are \
         the key, {} the bookkeeping (TinyUFO, variant map, record, meta fields, decoded \
         header); the serialized meta, not kept, would be {internal} + {compressed} more",
        grown >> 20,
        grown / held.max(1),
        (grown / held.max(1)).saturating_sub(payload)
    );
    println!(
        "one kept header alone: {header_bytes} bytes (as Pingora's header map: {map_bytes} bytes)"
    );
    println!(
        "counted against the tier's bound: {counted} bytes per object (resident: {})",
        grown / held.max(1)
    );
}
