//! The one question every path asks of the bans: "what is to be done with this object?". A
//! lookup asks it of the request's URL and the stored header, a write into a tier and the sweep
//! of the stored key and meta; all of them build a [`Subject`] and call [`Bans::judge`]. The
//! cache asks through [`Admission`], which the bans implement here.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pingora::cache::{CacheMeta, ForcedFreshness};

use super::bans::{Bans, Subject, Verdict};
use crate::cache::key;
use crate::cache::{Admission, Decoded, Hash, Head};
use crate::http::{stamp, tags};

impl<'a> Subject<'a> {
    /// An object known by its primary hash, its request's host and path, and its stored header.
    pub fn of(
        primary: &'a Hash,
        host: &'a str,
        path: &'a str,
        headers: &'a http::HeaderMap,
    ) -> Subject<'a> {
        Subject {
            primary,
            host,
            path,
            tags: tags::stored(headers),
            stored_at: stamp::of(headers),
        }
    }

    /// An object known by its primary hash, its request's host and path, and the parts of its
    /// stored header decoded once (tags and stamp).
    pub fn of_decoded(primary: &'a Hash, host: &'a str, path: &'a str, d: &'a Decoded) -> Self {
        Subject {
            primary,
            host,
            path,
            tags: &d.tags,
            stored_at: d.stored_at,
        }
    }

    /// An object known by its primary hash, the bytes of its cache key (which carry the host
    /// and path) and its stored header.
    pub fn of_key(primary: &'a Hash, key_bytes: &'a [u8], headers: &'a http::HeaderMap) -> Self {
        let (host, path) = host_and_path(key_bytes);
        Subject::of(primary, host, path, headers)
    }
}

/// The host and path a cache key carries ("" for a part absent or not UTF-8).
fn host_and_path(key_bytes: &[u8]) -> (&str, &str) {
    fn text(b: Option<&[u8]>) -> &str {
        b.and_then(|b| std::str::from_utf8(b).ok()).unwrap_or("")
    }
    let parts = key::parts(key_bytes);
    (text(parts.map(|p| p.host)), text(parts.map(|p| p.path)))
}

impl Verdict {
    /// What the proxy tells Pingora about a hit with this verdict.
    pub fn forced(self) -> Option<ForcedFreshness> {
        match self {
            Verdict::Keep => None,
            Verdict::Gone => Some(ForcedFreshness::ForceMiss),
            Verdict::Stale(at) => Some(ForcedFreshness::ForceExpiredServeStale {
                expired_at: Some(expired_at(at)),
            }),
        }
    }
}

/// A ban time (µs since the epoch) as the `SystemTime` Pingora's meta expires at.
pub fn expired_at(at: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(at)
}

impl Bans {
    /// The verdict on a stored object known by its key bytes and decoded meta.
    pub fn judge_meta(&self, primary: &Hash, key_bytes: &[u8], meta: &CacheMeta) -> Verdict {
        if self.is_empty() {
            return Verdict::Keep;
        }
        self.judge(&Subject::of_key(primary, key_bytes, meta.headers()))
    }
}

/// Writes into a tier pass when no ban covers the object. An object whose meta does not decode
/// cannot be judged, so it is refused while any ban is in force.
impl Admission for Bans {
    fn admits(&self, primary: &Hash, head: &Head) -> bool {
        if self.is_empty() {
            return true;
        }
        head.decoded().is_some_and(|d| {
            let (host, path) = host_and_path(&head.key);
            self.judge(&Subject::of_decoded(primary, host, path, d)) == Verdict::Keep
        })
    }

    fn admits_record(&self, primary: &Hash, key_bytes: &[u8], meta: &(Vec<u8>, Vec<u8>)) -> bool {
        if self.is_empty() {
            return true;
        }
        CacheMeta::deserialize(&meta.0, &meta.1)
            .is_ok_and(|m| self.judge_meta(primary, key_bytes, &m) == Verdict::Keep)
    }

    fn began_before_a_retired_rule(&self, stored_at: u64) -> bool {
        self.began_before_a_retired_ban(stored_at)
    }
}

/// The purge gate against fills, driven through the storage as Pingora drives it: a fill that
/// began before an invalidation finishes for its own client but is stored nowhere.
#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use bytes::Bytes;
    use edge_config::edge::{CacheKeySpec, MemorySettings};
    use pingora::cache::key::CacheHashKey;
    use pingora::cache::storage::Storage;
    use pingora::cache::trace::Span;
    use pingora::cache::{CacheKey, CacheMeta};
    use pingora::http::{RequestHeader, ResponseHeader};

    use super::*;
    use crate::cache::key::cache_key;
    use crate::cache::memory::MemoryTier;
    use crate::cache::tiered::TieredStorage;
    use crate::cache::Unaccounted;
    use crate::purge::bans::{Ban, Scope};

    fn storage() -> (&'static TieredStorage, &'static Bans) {
        let bans: &'static Bans = Box::leak(Box::new(Bans::new(&[])));
        let memory = MemoryTier::new(&MemorySettings {
            max_size: 1 << 20,
            max_object_size: 64 << 10,
        });
        let storage = TieredStorage::new(memory, None, bans, Arc::new(Unaccounted));
        (Box::leak(Box::new(storage)), bans)
    }

    fn key(path: &str) -> CacheKey {
        let req = RequestHeader::build("GET", path.as_bytes(), None).unwrap();
        cache_key("http", "h.example", &req, &CacheKeySpec::default())
    }

    /// The meta of a response whose fetch started at `started`, fresh for an hour.
    fn meta(started: SystemTime) -> CacheMeta {
        let mut header = ResponseHeader::build(200, None).unwrap();
        header
            .insert_header("cache-control", "max-age=3600")
            .unwrap();
        stamp::set(&mut header, started);
        let now = SystemTime::now();
        CacheMeta::new(now + Duration::from_secs(3600), now, 0, 0, header)
    }

    fn ban(id: u64, at: SystemTime) -> Ban {
        Ban {
            id,
            scope: Scope::Host("h.example".into()),
            at: stamp::micros(at),
            soft: false,
        }
    }

    /// Fills `path` with a body in two writes, running `meanwhile` between them; whether the
    /// storage holds it afterwards.
    async fn fill(storage: &'static TieredStorage, path: &str, meanwhile: impl FnOnce()) -> bool {
        let span = Span::inactive().handle();
        let key = key(path);
        let started = SystemTime::now() - Duration::from_millis(10);
        let mut miss = storage
            .get_miss_handler(&key, &meta(started), &span)
            .await
            .unwrap();
        miss.write_body(Bytes::from_static(b"first half, "), false)
            .await
            .unwrap();
        meanwhile();
        miss.write_body(Bytes::from_static(b"second half"), true)
            .await
            .unwrap();
        miss.finish().await.unwrap();
        storage.lookup(&key, &span).await.unwrap().is_some()
    }

    #[tokio::test]
    async fn a_fill_nothing_invalidates_is_stored() {
        let (storage, _) = storage();
        assert!(fill(storage, "/kept", || {}).await);
    }

    #[tokio::test]
    async fn a_ban_in_force_when_the_fill_ends_keeps_it_out() {
        let (storage, bans) = storage();
        let stored = fill(storage, "/banned", || {
            bans.add(&[ban(1, SystemTime::now())])
        })
        .await;
        assert!(!stored);
    }

    #[tokio::test]
    async fn a_ban_retired_by_the_sweep_before_the_fill_ends_still_keeps_it_out() {
        let (storage, bans) = storage();
        let stored = fill(storage, "/swept", || {
            bans.add(&[ban(1, SystemTime::now())]);
            bans.retire(1);
        })
        .await;
        assert!(!stored, "the ban is gone, but the fill began before it");
    }

    #[tokio::test]
    async fn an_invalidation_of_the_url_during_the_fill_keeps_it_out() {
        let (storage, _) = storage();
        let primary = key("/posted").primary_bin();
        let stored = fill(storage, "/posted", || {
            storage.invalidate_primary(&primary);
        })
        .await;
        assert!(!stored);
    }

    #[tokio::test]
    async fn a_ban_on_another_host_lets_the_fill_in() {
        let (storage, bans) = storage();
        let other = Ban {
            scope: Scope::Host("other.example".into()),
            ..ban(1, SystemTime::now())
        };
        assert!(fill(storage, "/elsewhere", || bans.add(&[other])).await);
    }
}
