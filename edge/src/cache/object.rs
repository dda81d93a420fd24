use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use pingora::cache::CacheMeta;
use pingora::http::ResponseHeader;
use pingora::{Error, ErrorType};

use super::stored_header::StoredHeader;
use super::Hash;

/// A complete cached response: its head (key and meta) and the whole body.
///
/// Objects are immutable; a revalidation that changes the headers stores a new object that
/// shares the body (a `Bytes` clone, no copy).
#[derive(Debug)]
pub struct StoredObject {
    /// Primary plus variance hash: what a lookup asks for.
    pub combined: Hash,
    /// Primary hash alone: every variant of one URL shares it.
    pub primary: Hash,
    /// Key and meta, shared with the disk tier's cache of heads when read from disk.
    pub head: Arc<Head>,
    /// The body.
    pub body: Bytes,
}

/// What the memory tier holds for an object besides its body and head: TinyUFO's entry and its
/// share of the frequency sketch, the variant map's entry, the object's record and the
/// allocations' headers. Measured with `benches/benches/index_memory.rs` (the tier's growth per
/// object less what the head counts), rounded up.
pub const HELD_PER_OBJECT: u64 = 640;

/// What an object is besides its body: its key and its meta.
///
/// The meta is kept as its internal fields and its header decoded, not as
/// `CacheMeta::serialize()` output: compressing the header with zstd is a large share of a
/// miss (criterion `stored_meta_serialize`), yet only a body the disk tier takes needs it, and a hit
/// reads the decoded header anyway. [`serialize`](Self::serialize) makes the stored form when it
/// is wanted.
#[derive(Debug)]
pub struct Head {
    /// The primary cache key before hashing: purges read host and path from it.
    pub key: Bytes,
    /// Freshness, times, variance.
    internal: Internal,
    /// The meta, decoded when the head is made (`None` if the stored meta does not decode).
    /// Decompressing and parsing the header was a tenth of a memory hit's CPU (perf), so it is
    /// done once per head instead of once per hit, and its size counts in the weight.
    decoded: Option<Decoded>,
}

impl Head {
    /// A head of a serialized meta (`CacheMeta::serialize()` output), decoded here.
    pub fn new(key: Bytes, meta: (Vec<u8>, Vec<u8>)) -> Self {
        let (internal, decoded) = match CacheMeta::deserialize(&meta.0, &meta.1) {
            Ok(m) => (Internal::of(&m, meta.0), Decoded::of(&m)),
            Err(_) => (Internal::Serialized(meta.0), None),
        };
        Head {
            key,
            internal,
            decoded,
        }
    }

    /// A head of the live meta a miss stores: nothing is compressed.
    pub fn of_live(key: Bytes, meta: &CacheMeta) -> pingora::Result<Self> {
        let internal = match Internal::fields(meta) {
            Some(fields) => fields,
            None => Internal::Serialized(meta.serialize()?.0),
        };
        let Some(decoded) = Decoded::of(meta) else {
            return Error::e_explain(
                ErrorType::InternalError,
                "response header too large to keep",
            );
        };
        Ok(Head {
            key,
            internal,
            decoded: Some(decoded),
        })
    }

    /// Bytes this head costs: key, internal meta and the decoded header.
    pub fn weight_bytes(&self) -> u64 {
        let decoded = self.decoded.as_ref().map_or(0, |d| d.bytes);
        (self.key.len() + size_of::<Internal>() + self.internal.heap_bytes()) as u64 + decoded
    }

    /// The decoded meta; `None` if the stored meta does not decode.
    pub fn decoded(&self) -> Option<&Decoded> {
        self.decoded.as_ref()
    }

    /// The meta as Pingora wants it on a lookup: made again from its fields, the header from
    /// the compact copy.
    pub fn cache_meta(&self) -> pingora::Result<CacheMeta> {
        let Some(decoded) = &self.decoded else {
            return Error::e_explain(ErrorType::InternalError, "stored meta does not decode");
        };
        self.internal.meta(decoded)
    }

    /// The meta as the disk tier stores it (`CacheMeta::serialize()` output).
    pub fn serialize(&self) -> pingora::Result<(Vec<u8>, Vec<u8>)> {
        self.cache_meta()?.serialize()
    }
}

/// A meta's internal part, kept so that the meta can be made again without decoding anything.
#[derive(Debug)]
enum Internal {
    /// A meta that `CacheMeta::new` makes again, one whose `updated` and `provenance` are its
    /// `created` (every meta a miss stores): the fields [`Decoded`] does not hold already
    /// (`fresh_until` and the variance are read from there). Making the meta from them takes
    /// no msgpack and no zstd (decoding the serialized part meant decompressing an empty header
    /// too).
    Fields {
        created: SystemTime,
        stale_while_revalidate: u32,
        stale_if_error: u32,
        epoch_override: Option<SystemTime>,
    },
    /// Any other meta (one revalidated since it was stored: Pingora sets `updated` to the time
    /// of the 304 and offers no setter): `CacheMeta::serialize().0`.
    Serialized(Vec<u8>),
}

impl Internal {
    /// `meta`'s fields, or its `serialized` internal part if they would not make it again.
    fn of(meta: &CacheMeta, serialized: Vec<u8>) -> Self {
        Self::fields(meta).unwrap_or(Internal::Serialized(serialized))
    }

    fn fields(meta: &CacheMeta) -> Option<Self> {
        let created = meta.created();
        (meta.updated() == created && meta.provenance() == created).then(|| Internal::Fields {
            created,
            stale_while_revalidate: meta.stale_while_revalidate_sec(),
            stale_if_error: meta.stale_if_error_sec(),
            epoch_override: meta.epoch_override(),
        })
    }

    /// The meta with these fields and `decoded`'s (the header made again).
    fn meta(&self, decoded: &Decoded) -> pingora::Result<CacheMeta> {
        let header = decoded.header.header()?;
        match self {
            Internal::Fields {
                created,
                stale_while_revalidate,
                stale_if_error,
                epoch_override,
            } => {
                let mut meta = CacheMeta::new(
                    decoded.fresh_until,
                    *created,
                    *stale_while_revalidate,
                    *stale_if_error,
                    header,
                );
                if let Some(variance) = decoded.variance {
                    meta.set_variance(variance);
                }
                if let Some(epoch) = epoch_override {
                    meta.set_epoch_override(*epoch);
                }
                Ok(meta)
            }
            Internal::Serialized(internal) => {
                let mut meta = CacheMeta::deserialize(internal, empty_header())?;
                *meta.response_header_mut() = header;
                Ok(meta)
            }
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Internal::Fields { .. } => 0,
            Internal::Serialized(v) => v.capacity(),
        }
    }
}

impl StoredObject {
    /// An object, its meta decoded from `meta`.
    pub fn new(
        combined: Hash,
        primary: Hash,
        key: Bytes,
        meta: (Vec<u8>, Vec<u8>),
        body: Bytes,
    ) -> Self {
        Self::of_head(combined, primary, Arc::new(Head::new(key, meta)), body)
    }

    /// An object of a head made before.
    pub fn of_head(combined: Hash, primary: Hash, head: Arc<Head>, body: Bytes) -> Self {
        StoredObject {
            combined,
            primary,
            head,
            body,
        }
    }

    /// The primary cache key before hashing.
    pub fn key(&self) -> &Bytes {
        &self.head.key
    }

    /// Bytes this object costs the memory tier: body, key, internal meta, the decoded header,
    /// and what the tier keeps for every object besides ([`HELD_PER_OBJECT`]), so that the
    /// tier's byte bound is a bound on the memory it takes.
    pub fn weight_bytes(&self) -> u64 {
        self.body.len() as u64 + self.head.weight_bytes() + HELD_PER_OBJECT
    }

    /// The decoded meta; `None` if the stored meta does not decode.
    pub fn decoded(&self) -> Option<&Decoded> {
        self.head.decoded()
    }

    /// The object's meta as Pingora wants it on a lookup.
    pub fn cache_meta(&self) -> pingora::Result<CacheMeta> {
        self.head.cache_meta()
    }
}

/// The parts of an object's meta that a hit reads, decoded once.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The stored response header (with this node's internal fields), kept compact.
    pub header: StoredHeader,
    /// Fresh until then (Pingora's `fresh_until`).
    pub fresh_until: SystemTime,
    /// What its age counts from (Pingora's `epoch`: the last update unless overridden).
    pub epoch: SystemTime,
    /// The variance hash when stored as one variant of several (`Vary`).
    pub variance: Option<pingora::cache::key::HashBinary>,
    /// The fields its `Vary` names, normalised ([`crate::http::vary::names`]).
    pub vary: Vec<String>,
    /// Its tags, space-separated, as a purge judges them ([`crate::http::tags::stored`]).
    pub tags: Box<str>,
    /// When this node began to fetch it (µs, [`crate::http::stamp::of`]).
    pub stored_at: u64,
    /// Roughly what the decoded parts cost in memory.
    bytes: u64,
}

impl Decoded {
    /// The parts of `meta` a hit reads; `None` for a header too large to keep compact.
    pub fn of(meta: &CacheMeta) -> Option<Decoded> {
        let response = meta.response_header();
        let header = StoredHeader::of(response)?;
        let tags: Box<str> = crate::http::tags::stored(&response.headers).into();
        let vary = crate::http::vary::names(&response.headers);
        let bytes = header.heap_bytes()
            + tags.len()
            + vary.iter().map(|v| v.len() + 24).sum::<usize>()
            + std::mem::size_of::<Decoded>();
        Some(Decoded {
            vary,
            fresh_until: meta.fresh_until(),
            epoch: meta.epoch(),
            variance: meta.variance(),
            stored_at: crate::http::stamp::of(&response.headers),
            tags,
            bytes: bytes as u64,
            header,
        })
    }
}

/// A serialized minimal header, to decode the internal part of a meta without its own header.
fn empty_header() -> &'static [u8] {
    static EMPTY: OnceLock<Vec<u8>> = OnceLock::new();
    EMPTY.get_or_init(|| {
        ResponseHeader::build(200, Some(0))
            .and_then(|h| CacheMeta::new(UNIX_EPOCH, UNIX_EPOCH, 0, 0, h).serialize())
            .map(|(_, header)| header)
            .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use http::HeaderValue;
    use std::time::Duration;

    const CREATED: Duration = Duration::from_secs(1_700_000_000);

    /// A meta with a variance, an epoch override and a mixed-case field.
    fn sample_meta() -> CacheMeta {
        let created = UNIX_EPOCH + CREATED;
        let mut header = ResponseHeader::build(200, None).unwrap();
        header.insert_header("content-length", "5").unwrap();
        header.insert_header("Vary", "Accept-Language").unwrap();
        header.insert_header("x-Mixed-Case", "v").unwrap();
        let mut meta = CacheMeta::new(created + Duration::from_secs(60), created, 7, 9, header);
        meta.set_variance_key([3; 16]);
        meta.set_epoch_override(created + Duration::from_secs(5));
        meta
    }

    #[test]
    fn the_rebuilt_meta_equals_the_stored_one() {
        let created = UNIX_EPOCH + CREATED;
        let meta = sample_meta();
        let o = StoredObject::new(
            [1; 16],
            [2; 16],
            Bytes::new(),
            meta.serialize().unwrap(),
            Bytes::from_static(b"hello"),
        );
        let d = o.decoded().unwrap();
        assert_eq!(d.variance, Some([3; 16]));
        assert_eq!(d.fresh_until, created + Duration::from_secs(60));
        assert_eq!(d.epoch, created + Duration::from_secs(5));
        let rebuilt = o.cache_meta().unwrap();
        assert_eq!(rebuilt.serialize().unwrap(), meta.serialize().unwrap());
        assert_eq!(rebuilt.stale_if_error_sec(), 9);
    }

    #[test]
    fn a_head_of_the_live_meta_equals_a_head_of_its_serialization() {
        let meta = sample_meta();
        let bytes = meta.serialize().unwrap();
        let live = Head::of_live(Bytes::from_static(b"k"), &meta).unwrap();
        let read = Head::new(Bytes::from_static(b"k"), bytes.clone());
        let (l, r) = (live.decoded().unwrap(), read.decoded().unwrap());
        assert_eq!(l.vary.len(), 1);
        assert_eq!(
            (l.fresh_until, l.epoch, l.variance, &l.vary, l.bytes),
            (r.fresh_until, r.epoch, r.variance, &r.vary, r.bytes)
        );
        assert_eq!(live.weight_bytes(), read.weight_bytes());
        assert_eq!(live.serialize().unwrap(), bytes);
        assert_eq!(read.serialize().unwrap(), bytes);
    }

    #[test]
    fn every_kind_of_meta_is_made_again_as_pingora_serializes_it() {
        let created = UNIX_EPOCH + CREATED;
        let plain = || {
            let header = ResponseHeader::build(200, None).unwrap();
            CacheMeta::new(created + Duration::from_secs(60), created, 0, 3, header)
        };
        let mut revalidated = sample_meta();
        // `updated` moves to now, which no constructor can say: it is kept serialized.
        revalidated.update_freshness(created + Duration::from_secs(600), 1, 2);
        let mut expired = plain();
        expired.expire_at(created + Duration::from_secs(1));
        let mut no_stale = sample_meta();
        no_stale.disable_serve_stale();
        let metas = [plain(), sample_meta(), revalidated, expired, no_stale];
        for (i, meta) in metas.iter().enumerate() {
            let bytes = meta.serialize().unwrap();
            let live = Head::of_live(Bytes::new(), meta).unwrap();
            let read = Head::new(Bytes::new(), bytes.clone());
            assert_eq!(live.serialize().unwrap(), bytes, "meta {i}");
            assert_eq!(read.serialize().unwrap(), bytes, "meta {i}");
            let kept = matches!(live.internal, Internal::Serialized(_));
            assert_eq!(kept, i == 2, "meta {i}");
            assert_eq!(matches!(read.internal, Internal::Serialized(_)), kept);
        }
    }

    /// A header parsed as Pingora parses a response: its case-kept names and its values are
    /// slices of the one buffer the response was read into.
    fn header_in(buf: &Bytes) -> ResponseHeader {
        let mut header = ResponseHeader::build(200, None).unwrap();
        header.set_reason_phrase(Some("Fine")).unwrap();
        for (name, value) in [(0..4, 5..11), (12..16, 17..21), (0..4, 22..26)] {
            let value = HeaderValue::from_maybe_shared(buf.slice(value)).unwrap();
            header.append_header(buf.slice(name), value).unwrap();
        }
        header
    }

    #[test]
    fn a_stored_header_does_not_keep_the_buffer_it_was_read_into() {
        let mut read = BytesMut::with_capacity(4096);
        read.extend_from_slice(b"X-Ab v1.0.0 ETAG \"e1\" more body bytes");
        let read = read.freeze();
        let header = header_in(&read);
        let created = UNIX_EPOCH + CREATED;
        let meta = CacheMeta::new(created, created, 0, 0, header);
        let decoded = Decoded::of(&meta).unwrap();
        let kept = decoded.header.header().unwrap();
        let wire = |h: &ResponseHeader| {
            let mut out = Vec::new();
            h.header_to_h1_wire(&mut out);
            (
                h.status,
                h.version,
                h.get_reason_phrase().map(str::to_owned),
                out,
            )
        };
        assert_eq!(wire(&kept), wire(meta.response_header()));
        assert_eq!(
            String::from_utf8(wire(&kept).3).unwrap(),
            "X-Ab: v1.0.0\r\nX-Ab: more\r\nETAG: \"e1\"\r\n"
        );
        drop(meta);
        // Only this test's handle is left: the decoded copy holds none.
        assert!(read.is_unique());
        assert_eq!(kept.headers.get_all("x-ab").iter().count(), 2);
    }

    #[test]
    fn an_undecodable_meta_is_an_error_not_a_panic() {
        let o = StoredObject::new(
            [1; 16],
            [1; 16],
            Bytes::new(),
            (vec![1, 2], vec![3]),
            Bytes::new(),
        );
        assert!(o.decoded().is_none());
        assert!(o.cache_meta().is_err());
    }
}
