//! Range requests, RFC 9110 section 14: parsing `Range: bytes=...`, deciding
//! what to send, and the `multipart/byteranges` framing (section 14.6).

use std::hash::{BuildHasher, Hasher};

use bytes::Bytes;

/// More ranges than this in one request get the whole representation
/// (section 14.3 lets a server ignore "many small ranges"; each part costs a
/// header and a seek, so long lists are a cheap amplification).
pub const MAX_RANGES: usize = 16;

/// One `range-spec` as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spec {
    /// `first-last` or `first-`.
    FromTo(u64, Option<u64>),
    /// `-suffix`: the last `suffix` bytes.
    Suffix(u64),
}

/// A satisfiable range, both ends inclusive, within the representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub first: u64,
    pub last: u64,
}

impl ByteRange {
    /// Number of bytes in the range.
    pub fn size(&self) -> u64 {
        self.last - self.first + 1
    }

    /// The `Content-Range` value for this range of a `total`-byte representation.
    pub fn content_range(&self, total: u64) -> String {
        format!("bytes {}-{}/{total}", self.first, self.last)
    }
}

/// What to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// 200 with the whole representation.
    Full,
    /// 206 with one range.
    Single(ByteRange),
    /// 206 `multipart/byteranges`, ranges sorted and disjoint (at least two).
    Multi(Vec<ByteRange>),
    /// 416.
    Unsatisfiable,
}

/// Parse a Range header value. `None` when it is not a syntactically valid
/// `bytes` range set: such a header is ignored (section 14.2).
pub fn parse(value: &str) -> Option<Vec<Spec>> {
    let (unit, set) = value.trim().split_once('=')?;
    // Section 14.1: range units are case-insensitive.
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return None;
    }
    let mut specs = Vec::new();
    // Section 5.6.1: recipients accept and ignore empty list elements.
    for item in set.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (first, last) = item.split_once('-')?;
        let spec = if first.is_empty() {
            Spec::Suffix(number(last)?)
        } else {
            let first = number(first)?;
            let last = if last.is_empty() {
                None
            } else {
                Some(number(last)?)
            };
            // Section 14.1.1: last-pos below first-pos makes the set invalid.
            if last.is_some_and(|l| l < first) {
                return None;
            }
            Spec::FromTo(first, last)
        };
        specs.push(spec);
    }
    (!specs.is_empty()).then_some(specs)
}

/// `1*DIGIT`, no sign, no spaces; overflow is invalid.
fn number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Decide the response for `specs` against a representation of `len` bytes.
///
/// Unsatisfiable specs are dropped (section 14.1.1); none left is 416.
/// Overlapping and adjacent ranges are coalesced and sorted (section 14.3
/// allows it; it also defeats the overlapping-ranges amplification,
/// CVE-2011-3192 "Apache Killer"); one left is a plain 206.
pub fn plan(specs: &[Spec], len: u64) -> Plan {
    if specs.len() > MAX_RANGES {
        return Plan::Full;
    }
    let mut ranges: Vec<ByteRange> = specs.iter().filter_map(|s| resolve(*s, len)).collect();
    if ranges.is_empty() {
        return Plan::Unsatisfiable;
    }
    ranges.sort_by_key(|r| r.first);
    let mut merged: Vec<ByteRange> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match merged.last_mut() {
            Some(prev) if range.first <= prev.last.saturating_add(1) => {
                prev.last = prev.last.max(range.last);
            }
            _ => merged.push(range),
        }
    }
    if merged.len() == 1 {
        Plan::Single(merged[0])
    } else {
        Plan::Multi(merged)
    }
}

/// A spec made concrete, or `None` when it selects no byte.
fn resolve(spec: Spec, len: u64) -> Option<ByteRange> {
    if len == 0 {
        return None;
    }
    match spec {
        Spec::FromTo(first, _) if first >= len => None,
        Spec::FromTo(first, last) => Some(ByteRange {
            first,
            last: last.map_or(len - 1, |l| l.min(len - 1)),
        }),
        Spec::Suffix(0) => None,
        Spec::Suffix(n) => Some(ByteRange {
            first: len.saturating_sub(n),
            last: len - 1,
        }),
    }
}

/// A `multipart/byteranges` body laid out as literal headers and file spans.
#[derive(Debug)]
pub struct Multipart {
    /// The full Content-Type value, with the boundary.
    pub content_type: String,
    /// Literal bytes and ranges of the file, in order.
    pub pieces: Vec<Piece>,
    /// The exact body length.
    pub len: u64,
}

/// One piece of a multipart body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Literal(Bytes),
    File(ByteRange),
}

impl Multipart {
    /// Frame `ranges` of a `total`-byte representation of type `part_type`.
    pub fn new(ranges: &[ByteRange], total: u64, part_type: &str) -> Self {
        Multipart::with_boundary(ranges, total, part_type, &boundary())
    }

    fn with_boundary(ranges: &[ByteRange], total: u64, part_type: &str, boundary: &str) -> Self {
        let mut pieces = Vec::with_capacity(ranges.len() * 2 + 1);
        for (i, range) in ranges.iter().enumerate() {
            // The first delimiter needs no CRLF before it (RFC 2046 section 5.1.1).
            let lead = if i == 0 { "" } else { "\r\n" };
            let head = format!(
                "{lead}--{boundary}\r\nContent-Type: {part_type}\r\nContent-Range: {}\r\n\r\n",
                range.content_range(total)
            );
            pieces.push(Piece::Literal(Bytes::from(head)));
            pieces.push(Piece::File(*range));
        }
        pieces.push(Piece::Literal(Bytes::from(format!(
            "\r\n--{boundary}--\r\n"
        ))));
        let len = pieces
            .iter()
            .map(|p| match p {
                Piece::Literal(b) => b.len() as u64,
                Piece::File(r) => r.size(),
            })
            .sum();
        Multipart {
            content_type: format!("multipart/byteranges; boundary={boundary}"),
            pieces,
            len,
        }
    }
}

/// A boundary unlikely to occur in the file: 128 random bits (std's
/// `RandomState` is seeded from the OS and advanced per instance).
fn boundary() -> String {
    let word = || {
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    };
    format!("gatehouse-{:016x}{:016x}", word(), word())
}

#[cfg(test)]
mod tests {
    use super::*;
    use Spec::*;

    fn r(first: u64, last: u64) -> ByteRange {
        ByteRange { first, last }
    }

    #[test]
    fn parse_valid() {
        assert_eq!(parse("bytes=0-499"), Some(vec![FromTo(0, Some(499))]));
        assert_eq!(parse("bytes=500-"), Some(vec![FromTo(500, None)]));
        assert_eq!(parse("bytes=-500"), Some(vec![Suffix(500)]));
        assert_eq!(parse("BYTES=1-1"), Some(vec![FromTo(1, Some(1))]));
        assert_eq!(
            parse("bytes=0-0, -1 ,, 5-"),
            Some(vec![FromTo(0, Some(0)), Suffix(1), FromTo(5, None)])
        );
        assert_eq!(parse(" bytes=0-1"), Some(vec![FromTo(0, Some(1))]));
        // Unsatisfiable but valid: parsed, decided later.
        assert_eq!(parse("bytes=-0"), Some(vec![Suffix(0)]));
        assert_eq!(parse("bytes=900-999"), Some(vec![FromTo(900, Some(999))]));
    }

    #[test]
    fn parse_invalid_is_ignored() {
        for value in [
            "",
            "bytes",
            "bytes=",
            "bytes=,",
            "bytes=-",
            "bytes=a-b",
            "bytes=1-a",
            "bytes=5-1",
            "bytes=+1-2",
            "bytes=1 -2",
            "bytes=1-2-3",
            "bytes=--1",
            "bytes=0x10-",
            "bytes=99999999999999999999-",
            "bytes=1",
            "items=0-1",
            "bytes 0-1",
            "bytes=0-1, x",
        ] {
            assert_eq!(parse(value), None, "{value:?}");
        }
    }

    #[test]
    fn plan_single_ranges() {
        let len = 1000;
        let single = |specs: &[Spec]| plan(specs, len);
        assert_eq!(single(&[FromTo(0, Some(499))]), Plan::Single(r(0, 499)));
        assert_eq!(single(&[FromTo(500, None)]), Plan::Single(r(500, 999)));
        assert_eq!(
            single(&[FromTo(500, Some(5000))]),
            Plan::Single(r(500, 999))
        );
        assert_eq!(single(&[Suffix(100)]), Plan::Single(r(900, 999)));
        assert_eq!(single(&[Suffix(5000)]), Plan::Single(r(0, 999)));
        assert_eq!(single(&[FromTo(999, None)]), Plan::Single(r(999, 999)));
    }

    #[test]
    fn plan_unsatisfiable() {
        assert_eq!(plan(&[FromTo(1000, None)], 1000), Plan::Unsatisfiable);
        assert_eq!(plan(&[FromTo(1000, Some(2000))], 1000), Plan::Unsatisfiable);
        assert_eq!(plan(&[Suffix(0)], 1000), Plan::Unsatisfiable);
        assert_eq!(plan(&[FromTo(0, None)], 0), Plan::Unsatisfiable);
        assert_eq!(plan(&[Suffix(5)], 0), Plan::Unsatisfiable);
        // One satisfiable spec among unsatisfiable ones is enough.
        let specs = [FromTo(2000, None), FromTo(0, Some(0))];
        assert_eq!(plan(&specs, 1000), Plan::Single(r(0, 0)));
    }

    #[test]
    fn plan_multi_sorts_and_coalesces() {
        let specs = [FromTo(500, Some(599)), FromTo(0, Some(99))];
        assert_eq!(plan(&specs, 1000), Plan::Multi(vec![r(0, 99), r(500, 599)]));
        // Overlapping and adjacent ranges merge.
        let specs = [
            FromTo(0, Some(10)),
            FromTo(5, Some(20)),
            FromTo(21, Some(30)),
        ];
        assert_eq!(plan(&specs, 1000), Plan::Single(r(0, 30)));
        let specs = [FromTo(0, None), FromTo(0, None), Suffix(1000)];
        assert_eq!(plan(&specs, 1000), Plan::Single(r(0, 999)));
        let specs = [FromTo(0, Some(1)), Suffix(2)];
        assert_eq!(plan(&specs, 1000), Plan::Multi(vec![r(0, 1), r(998, 999)]));
    }

    #[test]
    fn plan_too_many_ranges_is_full() {
        let specs: Vec<Spec> = (0..=MAX_RANGES as u64)
            .map(|i| FromTo(i * 10, Some(i * 10)))
            .collect();
        assert_eq!(plan(&specs, 1000), Plan::Full);
        assert!(
            matches!(plan(&specs[..MAX_RANGES], 1000), Plan::Multi(v) if v.len() == MAX_RANGES)
        );
    }

    #[test]
    fn multipart_framing() {
        let m = Multipart::with_boundary(&[r(0, 1), r(5, 5)], 10, "text/plain", "B");
        assert_eq!(m.content_type, "multipart/byteranges; boundary=B");
        let expected_head0 =
            "--B\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\n";
        let expected_head1 =
            "\r\n--B\r\nContent-Type: text/plain\r\nContent-Range: bytes 5-5/10\r\n\r\n";
        assert_eq!(
            m.pieces,
            vec![
                Piece::Literal(Bytes::from(expected_head0)),
                Piece::File(r(0, 1)),
                Piece::Literal(Bytes::from(expected_head1)),
                Piece::File(r(5, 5)),
                Piece::Literal(Bytes::from("\r\n--B--\r\n")),
            ]
        );
        let literal: usize = [expected_head0, expected_head1, "\r\n--B--\r\n"]
            .iter()
            .map(|s| s.len())
            .sum();
        assert_eq!(m.len, literal as u64 + 3);
    }

    #[test]
    fn boundaries_differ() {
        assert_ne!(boundary(), boundary());
        assert!(boundary().len() <= 70, "RFC 2046 limit");
    }
}
