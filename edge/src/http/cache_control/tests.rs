use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use pingora::cache::cache_control::{CacheControl, InterpretCacheControl};
use proptest::prelude::*;

use super::*;

fn headers(lines: &[&[u8]]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for l in lines {
        h.append("cache-control", HeaderValue::from_bytes(l).unwrap());
    }
    h
}

fn read(lines: &[&[u8]]) -> Directives<'static> {
    let h = Box::leak(Box::new(headers(lines)));
    Directives::of(h, &CACHE_CONTROL).unwrap()
}

fn names(it: Option<impl Iterator<Item = &'static [u8]>>) -> Option<Vec<Vec<u8>>> {
    it.map(|it| it.map(<[u8]>::to_vec).collect())
}

/// Everything the cache asks of the directives, from this reader and from Pingora's.
#[derive(Debug, PartialEq)]
struct Answers {
    no_store: bool,
    private: bool,
    no_cache: bool,
    public: bool,
    authorized: bool,
    fresh: Option<Duration>,
    swr: Option<Duration>,
    sie: Option<Duration>,
    private_names: Option<Vec<Vec<u8>>>,
    no_cache_names: Option<Vec<Vec<u8>>>,
}

fn ours(lines: &[&[u8]]) -> Answers {
    let d = read(lines);
    Answers {
        no_store: d.no_store(),
        private: d.private(),
        no_cache: d.no_cache(),
        public: d.public(),
        authorized: d.allow_caching_authorized_req(),
        fresh: d.fresh_duration(),
        swr: d.stale_while_revalidate(),
        sie: d.stale_if_error(),
        private_names: names(d.private_field_names()),
        no_cache_names: names(d.no_cache_field_names()),
    }
}

fn pingoras(lines: &[&[u8]]) -> Answers {
    let h = headers(lines);
    let c = CacheControl::from_headers_named("cache-control", &h).unwrap();
    let names = |it: Option<pingora::cache::cache_control::ListValueIter<'_>>| {
        it.map(|it| it.map(<[u8]>::to_vec).collect())
    };
    Answers {
        no_store: c.no_store(),
        private: c.private(),
        no_cache: c.no_cache(),
        public: c.public(),
        authorized: c.allow_caching_authorized_req(),
        fresh: c.fresh_duration(),
        swr: c.serve_stale_while_revalidate_duration(),
        sie: c.serve_stale_if_error_duration(),
        private_names: names(c.private_field_names()),
        no_cache_names: names(c.no_cache_field_names()),
    }
}

#[test]
fn reads_the_common_forms() {
    let d = read(&[b"public, max-age=3600, stale-while-revalidate=60"]);
    assert!(d.public() && !d.private() && !d.no_store());
    assert_eq!(d.fresh_duration(), Some(Duration::from_secs(3600)));
    assert_eq!(d.stale_while_revalidate(), Some(Duration::from_secs(60)));
    assert_eq!(d.stale_if_error(), None);

    let d = read(&[b"max-age=60", b"S-MAXAGE=\"600\""]);
    assert_eq!(d.fresh_duration(), Some(Duration::from_secs(600)));
    assert_eq!(d.stale_while_revalidate(), Some(Duration::ZERO));
    assert!(d.allow_caching_authorized_req());

    let d = read(&[b"no-cache=\"Set-Cookie, x-a\" ; private=x-b"]);
    assert!(!d.no_cache() && !d.private());
    let withheld: Vec<_> = d.withheld_fields().iter().map(|n| n.to_string()).collect();
    assert_eq!(withheld, ["x-b", "set-cookie", "x-a"]);
}

#[test]
fn the_last_occurrence_of_a_directive_wins() {
    assert!(!read(&[b"private, private=x"]).private());
    assert!(read(&[b"private=x", b"private"]).private());
    assert_eq!(
        read(&[b"max-age=5, max-age=7"]).fresh_duration(),
        Some(Duration::from_secs(7))
    );
}

#[test]
fn malformed_values_read_as_pingora_reads_them() {
    // A number too big for the clock is 2^31 - 1; one that is no number gives no lifetime.
    assert_eq!(
        read(&[b"max-age=99999999999"]).fresh_duration(),
        Some(Duration::from_secs(u64::from(DELTA_SECONDS_OVERFLOW)))
    );
    assert_eq!(read(&[b"max-age=soon"]).fresh_duration(), None);
    assert_eq!(read(&[b"s-maxage=x, max-age=60"]).fresh_duration(), None);
    // An unclosed quote leaves the directive without a value; bytes that cannot begin a
    // directive are skipped up to the next delimiter.
    assert_eq!(read(&[b"max-age=\"60"]).fresh_duration(), None);
    assert!(read(&[b"max-age=60 no-store"]).fresh_duration().is_some());
    assert!(!read(&[b"max-age=60 no-store"]).no_store());
    assert!(read(&[b"max-age=60 x, no-store"]).no_store());
    assert!(read(&[b"(x) ;;  no-store"]).no_store());
    assert!(!read(&[b" no-store"]).no_store());
}

#[test]
fn a_field_present_with_nothing_readable_still_counts() {
    let h = headers(&[b"=,;"]);
    assert_eq!(
        Directives::of(&h, &CACHE_CONTROL),
        Some(Directives::default())
    );
    assert_eq!(
        Directives::of(&h, &HeaderName::from_static("cdn-cache-control")),
        None
    );
}

#[test]
fn every_byte_delimits_as_in_pingoras_parser() {
    for b in 0..=255u8 {
        if HeaderValue::from_bytes(&[b]).is_err() {
            continue;
        }
        for line in [
            [&b"max-age=6"[..], &[b], b"0"].concat(),
            [&[b][..], b"no-store"].concat(),
            [&b"x"[..], &[b], b"private"].concat(),
            [&b"private=\"a"[..], &[b], b"b\", no-cache"].concat(),
        ] {
            assert_eq!(
                ours(&[&line]),
                pingoras(&[&line]),
                "{:?}",
                line.escape_ascii()
            );
        }
    }
}

/// Pieces that exercise every branch of the grammar: the directives the cache reads (in
/// any case), numbers of every shape, quotes, escapes, delimiters, whitespace, obs-text.
fn piece() -> impl Strategy<Value = &'static [u8]> {
    prop::sample::select(vec![
        &b"max-age"[..],
        b"MAX-Age",
        b"s-maxage",
        b"no-cache",
        b"no-store",
        b"private",
        b"Public",
        b"must-revalidate",
        b"proxy-revalidate",
        b"stale-while-revalidate",
        b"stale-if-error",
        b"immutable",
        b"set-cookie",
        b"x",
        b"=",
        b"=",
        b"60",
        b"0",
        b"+5",
        b"-1",
        b"1.5",
        b"4294967295",
        b"99999999999",
        b"\"",
        b"\"",
        b"\\",
        b"\\\"",
        b",",
        b",",
        b";",
        b" ",
        b"\t",
        b"(",
        b"/",
        b"\xc3\xa9",
        b"\xff",
        b"\xe2\x84\xaa",
    ])
}

/// A directive as an origin would write one, often with a value, sometimes malformed: an
/// unclosed quote, escapes, a list of field names.
fn directive() -> impl Strategy<Value = Vec<u8>> {
    let name = prop::sample::select(vec![
        &b"max-age"[..],
        b"s-maxage",
        b"No-Cache",
        b"no-store",
        b"private",
        b"public",
        b"must-revalidate",
        b"stale-while-revalidate",
        b"stale-if-error",
        b"ext",
    ]);
    let inner = prop::sample::select(vec![
        &b"set-cookie"[..],
        b"X-A",
        b"60",
        b",",
        b", ",
        b" ",
        b"\\",
        b"\\\"",
        b"\\x",
        b"\t",
        b"\xff",
    ]);
    let quoted = (prop::collection::vec(inner, 0..5), any::<bool>()).prop_map(|(p, closed)| {
        let mut v = b"\"".to_vec();
        v.extend(p.concat());
        if closed {
            v.push(b'"');
        }
        v
    });
    let token = prop::sample::select(vec![&b"60"[..], b"0", b"+5", b"1e3", b"99999999999", b"x"])
        .prop_map(<[u8]>::to_vec);
    let value = prop_oneof![
        Just(Vec::new()),
        token.prop_map(|t| [&b"="[..], &t].concat()),
        quoted.prop_map(|q| [&b"="[..], &q].concat())
    ];
    (name, value).prop_map(|(n, v)| [n, &v].concat())
}

/// A line of directives, well or badly delimited, or a line of arbitrary pieces.
fn line() -> impl Strategy<Value = Vec<u8>> {
    let joiner = prop::sample::select(vec![&b","[..], b", ", b" ,", b";", b",,", b" ", b""]);
    let listed = prop::collection::vec((directive(), joiner), 0..5).prop_map(|ds| {
        ds.into_iter()
            .flat_map(|(d, j)| [d, j.to_vec()])
            .collect::<Vec<_>>()
            .concat()
    });
    let pieces = prop::collection::vec(piece(), 0..12).prop_map(|p| p.concat());
    prop_oneof![listed, pieces]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    /// The reader answers every question the cache asks exactly as Pingora's parser does.
    #[test]
    fn agrees_with_pingoras_parser(lines in prop::collection::vec(line(), 1..4)) {
        let lines: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
        prop_assert_eq!(ours(&lines), pingoras(&lines));
    }
}
