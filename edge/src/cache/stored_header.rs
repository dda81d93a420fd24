//! A stored response header in the least memory: its fields' bytes in one buffer of their own
//! size and where each lies, made into Pingora's `ResponseHeader` when a hit needs one.
//!
//! A decoded `ResponseHeader` keeps every field twice (in the header map and in its case map),
//! each entry with its hash, links and two `Bytes` handles, in maps sized to a power of two: about
//! 1.5 KB for a header of six fields, most of what a small object cost the memory tier. Kept
//! compact, the same header is its bytes and 16 bytes per field. Making the map again costs a hit
//! what the clone it replaces cost (the same allocations), and the bytes are copied into a buffer
//! of the hit's own, so no reference count is shared between the workers serving one object.

use bytes::BytesMut;
use http::{HeaderName, HeaderValue, StatusCode, Version};
use pingora::http::ResponseHeader;

/// Where one field's name (as the origin wrote it when case is kept) and value lie in the buffer.
#[derive(Debug, Clone, Copy)]
struct Field {
    name: (u32, u32),
    value: (u32, u32),
}

/// A response header kept compact.
#[derive(Debug, Clone)]
pub struct StoredHeader {
    status: StatusCode,
    version: Version,
    reason: Option<Box<str>>,
    /// Whether the names are kept as the origin wrote them.
    case: bool,
    buf: Box<[u8]>,
    fields: Box<[Field]>,
}

impl StoredHeader {
    /// The compact form of `header`; `None` for a header too large to index with 32 bits.
    pub fn of(header: &ResponseHeader) -> Option<Self> {
        let case = header.has_case();
        let mut buf = Vec::with_capacity(
            header
                .headers
                .iter()
                .map(|(name, v)| name.as_str().len() + v.len())
                .sum(),
        );
        let mut put = |bytes: &[u8]| -> Option<(u32, u32)> {
            let start = u32::try_from(buf.len()).ok()?;
            buf.extend_from_slice(bytes);
            Some((start, u32::try_from(buf.len()).ok()?))
        };
        let mut fields = Vec::with_capacity(header.headers.len());
        if case {
            for (name, value) in header.case_header_iter() {
                fields.push(Field {
                    name: put(name.as_slice())?,
                    value: put(value.as_bytes())?,
                });
            }
        } else {
            for (name, value) in header.headers.iter() {
                fields.push(Field {
                    name: put(name.as_str().as_bytes())?,
                    value: put(value.as_bytes())?,
                });
            }
        }
        if fields.len() != header.headers.len() {
            return None;
        }
        Some(StoredHeader {
            status: header.status,
            version: header.version,
            reason: header
                .get_reason_phrase()
                .filter(|r| Some(*r) != header.status.canonical_reason())
                .map(Box::from),
            case,
            buf: buf.into_boxed_slice(),
            fields: fields.into_boxed_slice(),
        })
    }

    /// The header, in maps and a buffer of its own.
    pub fn header(&self) -> pingora::Result<ResponseHeader> {
        let n = self.fields.len();
        let mut out = if self.case {
            ResponseHeader::build(self.status, Some(n))?
        } else {
            ResponseHeader::build_no_case(self.status, Some(n))?
        };
        out.set_version(self.version);
        if let Some(reason) = &self.reason {
            out.set_reason_phrase(Some(reason))?;
        }
        let buf = BytesMut::from(&self.buf[..]).freeze();
        let slice = |(from, to): (u32, u32)| buf.slice(from as usize..to as usize);
        for f in self.fields.iter() {
            let value = HeaderValue::from_maybe_shared(slice(f.value)).map_err(|e| {
                pingora::Error::because(pingora::ErrorType::InternalError, "stored field", e)
            })?;
            if self.case {
                out.append_header(slice(f.name), value)?;
            } else {
                let name = HeaderName::from_bytes(&self.buf[f.name.0 as usize..f.name.1 as usize])
                    .map_err(|e| {
                        pingora::Error::because(pingora::ErrorType::InternalError, "stored name", e)
                    })?;
                out.append_header(name, value)?;
            }
        }
        Ok(out)
    }

    /// The first value of the field `name` (lower case), if any.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.fields.iter().find_map(|f| {
            let n = &self.buf[f.name.0 as usize..f.name.1 as usize];
            n.eq_ignore_ascii_case(name.as_bytes())
                .then(|| &self.buf[f.value.0 as usize..f.value.1 as usize])
        })
    }

    /// Bytes it holds on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.buf.len()
            + self.fields.len() * std::mem::size_of::<Field>()
            + self.reason.as_ref().map_or(0, |r| r.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(h: &ResponseHeader) -> Vec<u8> {
        let mut out = BytesMut::new();
        h.header_to_h1_wire(&mut out);
        out.to_vec()
    }

    #[test]
    fn a_header_is_made_again_as_it_was_case_order_and_repeats_included() {
        let mut h = ResponseHeader::build(203, None).unwrap();
        h.append_header("Content-Type", "text/css").unwrap();
        h.append_header("X-AB", "1").unwrap();
        h.append_header("x-ab", "2").unwrap();
        h.append_header("ETag", "\"v1\"").unwrap();
        h.set_reason_phrase(Some("Fine")).unwrap();
        let stored = StoredHeader::of(&h).unwrap();
        let again = stored.header().unwrap();
        assert_eq!(wire(&again), wire(&h));
        assert_eq!(again.status, h.status);
        assert_eq!(stored.get("etag"), Some(&b"\"v1\""[..]));
        assert_eq!(stored.get("x-ab"), Some(&b"1"[..]));
        assert_eq!(stored.get("vary"), None);
        assert!(stored.heap_bytes() < 200, "{}", stored.heap_bytes());
    }

    #[test]
    fn a_header_without_kept_case_stays_without() {
        let mut h = ResponseHeader::build_no_case(404, None).unwrap();
        h.append_header("x-a", "1").unwrap();
        h.append_header("x-a", "2").unwrap();
        h.append_header("cache-control", "max-age=5").unwrap();
        let again = StoredHeader::of(&h).unwrap().header().unwrap();
        assert!(!again.has_case());
        assert_eq!(again.status, 404);
        assert_eq!(again.headers, h.headers);
        assert_eq!(wire(&again), wire(&h));
    }
}
