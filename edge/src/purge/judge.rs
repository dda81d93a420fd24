//! The one question every path asks of the bans: "what is to be done with this object?". A
//! lookup asks it of the request's URL and the stored header, a write into a tier and the sweep
//! of the stored key and meta; all of them build a [`Subject`] and call [`Bans::judge`]. The
//! cache asks through [`Admission`], which the bans implement here.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pingora::cache::{CacheMeta, ForcedFreshness};

use super::bans::{Bans, Subject, Verdict};
use crate::cache::key;
use crate::cache::{Admission, Hash, Head};
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

    /// An object known by its primary hash, the bytes of its cache key (which carry the host
    /// and path) and its stored header.
    pub fn of_key(primary: &'a Hash, key_bytes: &'a [u8], headers: &'a http::HeaderMap) -> Self {
        let parts = key::parts(key_bytes);
        fn text(b: Option<&[u8]>) -> &str {
            b.and_then(|b| std::str::from_utf8(b).ok()).unwrap_or("")
        }
        Subject::of(
            primary,
            text(parts.map(|p| p.host)),
            text(parts.map(|p| p.path)),
            headers,
        )
    }
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
            self.judge(&Subject::of_key(primary, &head.key, &d.header.headers)) == Verdict::Keep
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
