//! The directives of `Cache-Control` and of the fields targeted at this cache
//! (`CDN-Cache-Control`, `Surrogate-Control`), read in one pass over the field's bytes.
//!
//! Pingora's `CacheControl` runs a regular expression and allocates a map entry per directive;
//! on a miss that showed in the profiles. This reader borrows the directives the cache
//! acts on from the header and allocates nothing. It delimits and interprets directives exactly
//! as Pingora 0.9.1 does (the differential test in `tests.rs` holds it to that), so the decision
//! of what is stored did not change with it:
//! - a directive begins at the start of a line or after a `,` or `;` (and optional whitespace);
//!   bytes that cannot begin one are skipped up to the next delimiter;
//! - its name is a token, its value a token or a quoted string right after `=`;
//! - names are compared without case; a directive repeated takes its last value;
//! - delta-seconds may be quoted, and a value too large for the clock counts as 2^31 - 1.

use std::time::Duration;

use http::header::{HeaderName, CACHE_CONTROL};
use http::{HeaderMap, HeaderValue};
use pingora::http::ResponseHeader;

/// RFC 9111 §1.2.2: a delta-seconds value too large to represent counts as this.
const DELTA_SECONDS_OVERFLOW: u32 = i32::MAX as u32;

/// The directives this cache acts on; any other is read past and ignored.
#[derive(Clone, Copy)]
enum Known {
    MaxAge,
    SMaxAge,
    NoCache,
    NoStore,
    Private,
    Public,
    MustRevalidate,
    ProxyRevalidate,
    StaleWhileRevalidate,
    StaleIfError,
    /// A request directive (RFC 9111 §5.2.1.7).
    OnlyIfCached,
}

const KNOWN: [(&[u8], Known); 11] = [
    (b"max-age", Known::MaxAge),
    (b"s-maxage", Known::SMaxAge),
    (b"no-cache", Known::NoCache),
    (b"no-store", Known::NoStore),
    (b"private", Known::Private),
    (b"public", Known::Public),
    (b"must-revalidate", Known::MustRevalidate),
    (b"proxy-revalidate", Known::ProxyRevalidate),
    (b"stale-while-revalidate", Known::StaleWhileRevalidate),
    (b"stale-if-error", Known::StaleIfError),
    (b"only-if-cached", Known::OnlyIfCached),
];

/// One directive as last seen: absent, present alone, or present with its raw value (a
/// quoted string keeps its quotes, as Pingora keeps them).
type Slot<'a> = Option<Option<&'a [u8]>>;

/// The directives of one field (all its lines), borrowed from the header they were read from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Directives<'a> {
    slots: [Slot<'a>; KNOWN.len()],
}

impl<'a> Directives<'a> {
    /// The directives of the field `name`, or `None` when the header has no such field (a
    /// field present with nothing readable in it is `Some`, and still takes precedence).
    pub fn of(headers: &'a HeaderMap, name: &HeaderName) -> Option<Self> {
        let mut lines = headers.get_all(name).iter().peekable();
        lines.peek()?;
        Some(Self::parse(lines))
    }

    /// The directives of `Cache-Control` in a response.
    pub fn of_response(resp: &'a ResponseHeader) -> Option<Self> {
        Self::of(&resp.headers, &CACHE_CONTROL)
    }

    /// Reads every line of a field, in order; a later occurrence of a directive replaces an
    /// earlier one.
    pub fn parse(lines: impl IntoIterator<Item = &'a HeaderValue>) -> Self {
        let mut out = Self::default();
        for line in lines {
            each_directive(line.as_bytes(), |name, value| {
                if let Some(k) = known(name) {
                    out.slots[k as usize] = Some(value);
                }
            });
        }
        out
    }

    fn has(&self, k: Known) -> bool {
        self.slots[k as usize].is_some()
    }

    fn alone(&self, k: Known) -> bool {
        self.slots[k as usize] == Some(None)
    }

    /// `Ok(None)` when absent or without a value, `Err` when the value is not a number.
    fn delta_seconds(&self, k: Known) -> Result<Option<u32>, ()> {
        let Some(Some(value)) = self.slots[k as usize] else {
            return Ok(None);
        };
        let text = std::str::from_utf8(unquoted(value)).map_err(|_| ())?;
        match text.parse::<u32>() {
            Ok(secs) => Ok(Some(secs)),
            Err(e) if *e.kind() == std::num::IntErrorKind::PosOverflow => {
                Ok(Some(DELTA_SECONDS_OVERFLOW))
            }
            Err(_) => Err(()),
        }
    }

    /// `no-store`, with or without a value.
    pub fn no_store(&self) -> bool {
        self.has(Known::NoStore)
    }

    /// `private` alone; `private="field"` only withholds the fields it names (RFC 9111 §5.2.2.7).
    pub fn private(&self) -> bool {
        self.alone(Known::Private)
    }

    /// `no-cache` alone; `no-cache="field"` only withholds the fields it names.
    pub fn no_cache(&self) -> bool {
        self.alone(Known::NoCache)
    }

    /// `only-if-cached`, in a request: answer from the cache or with a 504, never the origin.
    pub fn only_if_cached(&self) -> bool {
        self.has(Known::OnlyIfCached)
    }

    /// `public`.
    pub fn public(&self) -> bool {
        self.has(Known::Public)
    }

    /// Whether a response to a request with `Authorization` may be shared (RFC 9111 §3.5).
    pub fn allow_caching_authorized_req(&self) -> bool {
        self.has(Known::MustRevalidate) || self.public() || self.has(Known::SMaxAge)
    }

    /// The freshness lifetime the directives give: zero for `no-cache`, else `s-maxage`, else
    /// `max-age`. An `s-maxage` that is not a number gives none at all, as in Pingora.
    pub fn fresh_duration(&self) -> Option<Duration> {
        if self.no_cache() {
            return Some(Duration::ZERO);
        }
        let secs = self
            .delta_seconds(Known::SMaxAge)
            .ok()?
            .or_else(|| self.delta_seconds(Known::MaxAge).unwrap_or(None))?;
        Some(Duration::from_secs(u64::from(secs)))
    }

    /// `stale-while-revalidate`; zero when a directive forbids serving stale.
    pub fn stale_while_revalidate(&self) -> Option<Duration> {
        self.stale_window(Known::StaleWhileRevalidate)
    }

    /// `stale-if-error`; zero when a directive forbids serving stale.
    pub fn stale_if_error(&self) -> Option<Duration> {
        self.stale_window(Known::StaleIfError)
    }

    fn stale_window(&self, k: Known) -> Option<Duration> {
        // RFC 9111 §4.2.4: these forbid serving stale; s-maxage implies proxy-revalidate.
        if self.has(Known::MustRevalidate)
            || self.has(Known::ProxyRevalidate)
            || self.has(Known::SMaxAge)
        {
            return Some(Duration::ZERO);
        }
        self.delta_seconds(k)
            .unwrap_or(None)
            .map(|s| Duration::from_secs(u64::from(s)))
    }

    /// The field names of `private="…"`, trimmed, as written.
    pub fn private_field_names(&self) -> Option<impl Iterator<Item = &'a [u8]>> {
        self.field_names(Known::Private)
    }

    /// The field names of `no-cache="…"`, trimmed, as written.
    pub fn no_cache_field_names(&self) -> Option<impl Iterator<Item = &'a [u8]>> {
        self.field_names(Known::NoCache)
    }

    fn field_names(&self, k: Known) -> Option<impl Iterator<Item = &'a [u8]>> {
        let value = self.slots[k as usize]??;
        Some(unquoted(value).split(|&b| b == b',').map(trim_ows))
    }

    /// The fields `private="…"` and `no-cache="…"` name, which a shared cache must not store.
    pub fn withheld_fields(&self) -> Vec<HeaderName> {
        let private = self.private_field_names().into_iter().flatten();
        let no_cache = self.no_cache_field_names().into_iter().flatten();
        private
            .chain(no_cache)
            .filter_map(|n| HeaderName::from_bytes(n).ok())
            .collect()
    }
}

fn known(name: &[u8]) -> Option<Known> {
    KNOWN
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|&(_, k)| k)
}

fn unquoted(value: &[u8]) -> &[u8] {
    value
        .strip_prefix(b"\"")
        .and_then(|v| v.strip_suffix(b"\""))
        .unwrap_or(value)
}

/// RFC 9110 §5.6.3: optional whitespace is spaces and tabs.
fn trim_ows(bytes: &[u8]) -> &[u8] {
    let ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !ows(b)).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !ows(b)).map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// RFC 9110 §5.6.2 `tchar`, widened as Pingora widens it: any byte but controls, space, DEL
/// and the delimiters (so `obs-text` is allowed).
fn is_token(b: u8) -> bool {
    TOKEN[usize::from(b)]
}

/// [`is_token`] as a table, since it is asked of every byte of every field read.
const TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = b'!';
    while b < 0x7f {
        table[b as usize] = !matches!(
            b,
            b'(' | b')'
                | b'<'
                | b'>'
                | b'@'
                | b','
                | b';'
                | b':'
                | b'\\'
                | b'"'
                | b'/'
                | b'['
                | b']'
                | b'?'
                | b'='
                | b'{'
                | b'}'
        );
        b += 1;
    }
    let mut high = 0x80;
    while high < 256 {
        table[high] = true;
        high += 1;
    }
    table
};

/// The whitespace allowed around a delimiter (ASCII whitespace, as the regex's `\s`).
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// The end of the run of bytes matching `f` from `from`.
fn run(line: &[u8], from: usize, f: impl Fn(u8) -> bool) -> usize {
    line[from..]
        .iter()
        .position(|&b| !f(b))
        .map_or(line.len(), |n| from + n)
}

/// Calls `f` with the name and the raw value of every directive of one field line.
fn each_directive<'a>(line: &'a [u8], mut f: impl FnMut(&'a [u8], Option<&'a [u8]>)) {
    let mut next = if line.first().is_some_and(|&b| is_token(b)) {
        Some(0)
    } else {
        after_delimiter(line, 0)
    };
    while let Some(start) = next {
        let name_end = run(line, start, is_token);
        let (value, end) = value_after(line, name_end);
        f(&line[start..name_end], value);
        next = after_delimiter(line, end);
    }
}

/// Where the next directive's name begins: after the first `,` or `;` at or past `from` that is
/// followed, past any whitespace, by a token.
fn after_delimiter(line: &[u8], from: usize) -> Option<usize> {
    (from..line.len())
        .filter(|&i| line[i] == b',' || line[i] == b';')
        .map(|i| run(line, i + 1, is_space))
        .find(|&name| line.get(name).is_some_and(|&b| is_token(b)))
}

/// The value after a directive's name, if `=` and a token or a whole quoted string follow it,
/// and where the directive ends.
fn value_after(line: &[u8], name_end: usize) -> (Option<&[u8]>, usize) {
    if line.get(name_end) != Some(&b'=') {
        return (None, name_end);
    }
    let start = name_end + 1;
    let end = match line.get(start) {
        Some(&b) if is_token(b) => Some(run(line, start, is_token)),
        Some(b'"') => quoted_end(line, start),
        _ => None,
    };
    match end {
        Some(end) => (Some(&line[start..end]), end),
        // A dangling `=` or an unclosed quote: the directive stands without a value.
        None => (None, name_end),
    }
}

/// The end of the quoted string opening at `start`, just past its closing quote.
fn quoted_end(line: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while let Some(&b) = line.get(i) {
        match b {
            b'"' => return Some(i + 1),
            // A backslash escapes any byte but a line feed (the regex's `\\.`).
            b'\\' => match line.get(i + 1) {
                Some(&n) if n != b'\n' => i += 2,
                _ => return None,
            },
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests;
