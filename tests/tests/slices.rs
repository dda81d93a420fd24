//! Objects cached in slices (a rule's `slice`): a cold `Range` fetches only the slices it
//! covers, a full `GET` is assembled byte-exact from them, every purge reaches every slice, and
//! an origin that changes the object between slices, or ignores `Range`, never gets two versions
//! spliced into one body.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed set-up is a failed test

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use edge_tests::client::Response;
use edge_tests::edge::Edge;
use edge_tests::origin::{pattern_byte, Origin, Reply};

const MIB: u64 = 1 << 20;
const LEN: u64 = 8 * MIB + 12_345;

/// Bytes `from..to` of version `shift` of the object.
fn version(shift: u64, from: u64, to: u64) -> Vec<u8> {
    (from..to).map(|i| pattern_byte(i + shift)).collect()
}

/// An origin serving one object of [`LEN`] bytes that honours `Range`, in the version the test
/// sets (its `ETag` names it); or, with `ranges: false`, that ignores `Range`.
fn origin(shift: Arc<AtomicU64>, ranges: bool) -> Origin {
    Origin::start(move |req| {
        let v = shift.load(Ordering::SeqCst);
        let etag = format!("\"v{v}\"");
        let headers = [
            ("Cache-Control", "max-age=3600"),
            ("ETag", etag.as_str()),
            ("Surrogate-Key", "video"),
        ];
        if ranges {
            Reply::ranged(req, LEN, v, &headers)
        } else {
            Reply::ok(version(v, 0, LEN), &headers)
        }
    })
}

fn edge(origin: &Origin) -> Edge {
    Edge::builder(origin.addr)
        .rules("- match: { path_prefix: /v/ }\n  slice: 1MiB\n")
        .start()
}

/// The `Range` headers the origin was asked for, in order.
fn ranges_asked(origin: &Origin) -> Vec<String> {
    origin
        .requests()
        .iter()
        .map(|r| r.header("range").unwrap_or("none").to_string())
        .collect()
}

fn range(edge: &Edge, from: u64, to: u64) -> Response {
    edge.get("/v/movie.mp4", &[("Range", &format!("bytes={from}-{to}"))])
}

#[test]
fn a_cold_range_fetches_only_its_slices_and_is_then_a_hit() {
    let origin = origin(Arc::new(AtomicU64::new(0)), true);
    let edge = edge(&origin);
    let r = range(&edge, 3_000_000, 3_000_999);
    assert_eq!(r.status, 206, "{}", r.text());
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 3000000-3000999/{LEN}").as_str())
    );
    assert_eq!(r.body, version(0, 3_000_000, 3_001_000));
    assert!(
        r.cache_status().contains("fwd=miss"),
        "{}",
        r.cache_status()
    );
    assert_eq!(ranges_asked(&origin), ["bytes=2097152-3145727"]);
    // Across a slice boundary: the next slice only.
    let r = range(&edge, 3_145_000, 3_146_000);
    assert_eq!(r.body, version(0, 3_145_000, 3_146_001));
    assert_eq!(ranges_asked(&origin).len(), 2);
    let r = range(&edge, 3_000_000, 3_000_999);
    assert!(r.cache_status().contains("hit"), "{}", r.cache_status());
    assert_eq!(ranges_asked(&origin).len(), 2);
    // The last slice is short; a suffix range reaches it.
    let r = edge.get("/v/movie.mp4", &[("Range", "bytes=-100")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, version(0, LEN - 100, LEN));
    assert_eq!(
        ranges_asked(&origin).last().unwrap(),
        &format!("bytes={}-{}", 8 * MIB, 9 * MIB - 1)
    );
}

#[test]
fn a_full_get_is_assembled_from_the_slices_and_purges_reach_every_slice() {
    let origin = origin(Arc::new(AtomicU64::new(0)), true);
    let edge = edge(&origin);
    range(&edge, 5 * MIB, 5 * MIB + 10);
    let r = edge.get("/v/movie.mp4", &[]);
    assert_eq!(r.status, 200);
    assert!(r.complete);
    assert_eq!(r.header("content-length"), Some(LEN.to_string().as_str()));
    assert_eq!(r.body.len() as u64, LEN);
    assert!(r.body == version(0, 0, LEN), "the assembled body differs");
    // Nine slices, each fetched once: the one the range brought is not fetched again.
    assert_eq!(origin.requests().len(), 9);
    let again = edge.get("/v/movie.mp4", &[]);
    assert!(
        again.cache_status().contains("hit"),
        "{}",
        again.cache_status()
    );
    assert_eq!(origin.requests().len(), 9);
    assert!(edge
        .get("/v/movie.mp4", &[("Range", "bytes=0-0")])
        .header("x-edge-slice-total")
        .is_none());
    // HEAD: the object's header, no body, nothing fetched.
    let head =
        edge_tests::client::request(edge.addr, "HEAD", "example.com", "/v/movie.mp4", &[], b"");
    assert_eq!(
        head.header("content-length"),
        Some(LEN.to_string().as_str())
    );
    assert_eq!(origin.requests().len(), 9);

    let r = edge.purge(r#"{"tags": ["video"]}"#);
    assert_eq!(r.status, 200);
    let r = edge.get("/v/movie.mp4", &[]);
    assert!(r.body == version(0, 0, LEN));
    assert_eq!(
        origin.requests().len(),
        18,
        "every slice fetched again after the tag purge"
    );
    let r = edge.purge(r#"{"urls": ["http://example.com/v/movie.mp4"]}"#);
    assert_eq!(r.status, 200);
    range(&edge, 7 * MIB, 7 * MIB);
    assert_eq!(
        origin.requests().len(),
        19,
        "the URL purge reached the slices"
    );
}

#[test]
fn an_object_that_changes_between_slices_is_never_spliced() {
    let shift = Arc::new(AtomicU64::new(0));
    let origin = origin(shift.clone(), true);
    let edge = edge(&origin);
    // Slice 0 of version 0 is stored; then the origin moves to version 1.
    range(&edge, 0, 10);
    shift.store(1, Ordering::SeqCst);
    let r = edge.get("/v/movie.mp4", &[]);
    assert!(!r.complete, "two versions were spliced into one response");
    assert!(r.body.len() as u64 <= MIB);
    assert_eq!(r.body, version(0, 0, r.body.len() as u64));
    // The stale slices are dropped: the next response is all of version 1.
    let r = edge.get("/v/movie.mp4", &[]);
    assert!(r.complete);
    assert!(r.body == version(1, 0, LEN), "not the new version whole");
    assert_eq!(r.header("etag"), Some("\"v1\""));
}

#[test]
fn an_origin_that_ignores_range_is_served_as_it_answers() {
    let origin = origin(Arc::new(AtomicU64::new(0)), false);
    let edge = edge(&origin);
    // Its whole 200 is passed through as the origin sent it (RFC 9110 lets it ignore Range).
    let r = range(&edge, 100, 199);
    assert_eq!(r.status, 200);
    assert!(r.complete);
    assert!(r.body == version(0, 0, LEN), "wrong bytes");
    assert!(
        r.cache_status().contains("not-sliced"),
        "{}",
        r.cache_status()
    );
    let r = edge.get("/v/movie.mp4", &[]);
    assert!(r.complete && r.body == version(0, 0, LEN));
}

/// `kill -9` while a sliced response is being filled: the slices committed to disk before it
/// serve after the restart, the one cut off is fetched again, and the body is whole and right.
#[test]
fn kill_9_in_the_middle_of_a_sliced_fill_leaves_a_servable_object() {
    use std::time::Duration;

    use edge_tests::edge::{DiskCache, Scratch};
    use edge_tests::{eventually, parts_under};

    let origin = Origin::start(|req| {
        let mut r = Reply::ranged(req, LEN, 0, &[("Cache-Control", "max-age=3600")]);
        // Slices after the first trickle in, so the kill lands in the middle of the object.
        if req
            .header("range")
            .is_some_and(|r| !r.starts_with("bytes=0-"))
        {
            r.drip = Duration::from_millis(10);
        }
        r
    });
    let dir = Scratch::new("slices-kill");
    let cache = DiskCache::at(&dir.0).memory_object("64KiB").yaml();
    let rules = "- match: { path_prefix: /v/ }\n  slice: 1MiB\n";
    let mut edge = Edge::builder(origin.addr)
        .cache(&cache)
        .rules(rules)
        .start();
    let addr = edge.addr;
    let reader = std::thread::spawn(move || {
        edge_tests::client::get_checked(addr, "example.com", "/v/movie.mp4", pattern_byte).ok()
    });
    eventually(
        Duration::from_secs(20),
        "a slice file being written",
        || (!parts_under(&dir.0.join("objects")).is_empty()).then_some(()),
    );
    edge.signal_and_wait("KILL");
    let partial = reader.join().unwrap();
    assert!(
        partial.is_none_or(|p| p.len < LEN),
        "the response finished before the kill"
    );

    let edge = Edge::builder(origin.addr)
        .cache(&cache)
        .rules(rules)
        .start();
    let whole =
        edge_tests::client::get_checked(edge.addr, "example.com", "/v/movie.mp4", pattern_byte)
            .unwrap();
    assert_eq!((whole.status, whole.len), (200, LEN));
    // Slice 0 came back from disk: it was committed before the kill.
    let first = range(&edge, 0, 0);
    assert!(
        first.cache_status().contains("hit"),
        "{}",
        first.cache_status()
    );
}
