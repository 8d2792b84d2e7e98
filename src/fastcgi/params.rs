//! Name-value pairs (FastCGI specification, section 3.4): the body of the
//! PARAMS stream and of GET_VALUES / GET_VALUES_RESULT.
//!
//! A length below 128 takes one byte; anything longer takes four with the top
//! bit set, so a pair of any length up to 2^31 - 1 can be written.
//!
//! The specification lets a pair straddle two PARAMS records, but php-fpm
//! (`fcgi_get_params` in `main/fastcgi.c`) and flup (`Connection._do_params`)
//! decode each record on its own and fail or silently corrupt the variables
//! when one does. So [`params_records`] starts a new record rather than split a
//! pair, and only a single pair larger than a whole record is split (there is
//! no other way to send it; backends that read the stream as the
//! specification says still get it right).

use std::io;

use bytes::{BufMut, Bytes, BytesMut};

use super::record::{self, kind, OpenRecord, MAX_CONTENT};

/// Largest length the four-byte form can carry.
const MAX_LEN: usize = 0x7fff_ffff;

fn put_len(buf: &mut BytesMut, len: usize) {
    if len < 0x80 {
        buf.put_u8(len as u8);
    } else {
        buf.put_u32(len as u32 | 0x8000_0000);
    }
}

/// Encoded size of one pair.
pub fn pair_len(name: &[u8], value: &[u8]) -> usize {
    let len_of = |n: usize| if n < 0x80 { 1 } else { 4 };
    len_of(name.len()) + len_of(value.len()) + name.len() + value.len()
}

/// Append one encoded pair. Panics past 2 GiB, which no request reaches (the
/// header limits are far smaller).
pub fn put_pair(buf: &mut BytesMut, name: &[u8], value: &[u8]) {
    assert!(name.len() <= MAX_LEN && value.len() <= MAX_LEN);
    buf.reserve(pair_len(name, value));
    if name.len() < 0x80 && value.len() < 0x80 {
        // The common case (every variable but long headers), in one store.
        buf.extend_from_slice(&[name.len() as u8, value.len() as u8]);
    } else {
        put_len(buf, name.len());
        put_len(buf, value.len());
    }
    buf.extend_from_slice(name);
    buf.extend_from_slice(value);
}

/// Append the whole PARAMS stream for `request_id` to `buf`: the pairs in
/// records of at most 65,535 bytes, each pair inside one record when it fits,
/// then the empty PARAMS record that ends the stream. The pairs are written
/// straight into `buf`; size it with [`stream_len`] first and it never grows.
pub fn params_records<'a, I>(buf: &mut BytesMut, request_id: u16, pairs: I)
where
    I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
{
    let mut open: Option<OpenRecord> = None;
    for (name, value) in pairs {
        let len = pair_len(name, value);
        if let Some(full) = open.take_if(|record| record.content_len(buf) + len > MAX_CONTENT) {
            full.finish(buf);
        }
        if len > MAX_CONTENT {
            // One pair larger than a record: the only case that must straddle.
            let mut pair = BytesMut::with_capacity(len);
            put_pair(&mut pair, name, value);
            record::put_stream(buf, kind::PARAMS, request_id, &pair);
            continue;
        }
        if open.is_none() {
            open = Some(OpenRecord::begin(buf, kind::PARAMS, request_id));
        }
        put_pair(buf, name, value);
    }
    if let Some(last) = open {
        last.finish(buf);
    }
    record::put_record(buf, kind::PARAMS, request_id, b"");
}

/// Bytes [`params_records`] appends for `pairs`: the same packing, counted.
pub fn stream_len<'a, I>(pairs: I) -> usize
where
    I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
{
    let mut total = 0;
    // Content of the record being filled; 0 when none is (no pair is empty).
    let mut open = 0;
    for (name, value) in pairs {
        let len = pair_len(name, value);
        if open > 0 && open + len > MAX_CONTENT {
            total += record::record_len(open);
            open = 0;
        }
        if len > MAX_CONTENT {
            total += record::stream_len(len);
        } else {
            open += len;
        }
    }
    if open > 0 {
        total += record::record_len(open);
    }
    total + record::record_len(0)
}

fn get_len(src: &[u8], pos: &mut usize) -> io::Result<usize> {
    let first = *src
        .get(*pos)
        .ok_or_else(|| record::malformed("name-value pair cut short"))?;
    if first < 0x80 {
        *pos += 1;
        return Ok(first as usize);
    }
    let bytes = src
        .get(*pos..*pos + 4)
        .ok_or_else(|| record::malformed("name-value length cut short"))?;
    *pos += 4;
    Ok((u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) & 0x7fff_ffff) as usize)
}

/// Decode a complete sequence of pairs (a GET_VALUES_RESULT body, or a whole
/// PARAMS stream joined together).
pub fn decode_pairs(src: &Bytes) -> io::Result<Vec<(Bytes, Bytes)>> {
    let mut pairs = Vec::new();
    let mut pos = 0;
    while pos < src.len() {
        let name_len = get_len(src, &mut pos)?;
        let value_len = get_len(src, &mut pos)?;
        let end = pos
            .checked_add(name_len)
            .and_then(|p| p.checked_add(value_len))
            .filter(|&end| end <= src.len())
            .ok_or_else(|| record::malformed("name-value pair longer than its record"))?;
        let name = src.slice(pos..pos + name_len);
        let value = src.slice(pos + name_len..end);
        pairs.push((name, value));
        pos = end;
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fastcgi::record::{Record, RecordCodec};
    use tokio_util::codec::Decoder;

    fn records(mut buf: BytesMut) -> Vec<Record> {
        let mut out = Vec::new();
        while let Some(r) = RecordCodec.decode(&mut buf).unwrap() {
            out.push(r);
        }
        assert!(buf.is_empty());
        out
    }

    /// The PARAMS stream for `pairs` in a buffer sized by [`stream_len`],
    /// checking that it was exactly right.
    fn sized_params<'a, I>(pairs: I) -> BytesMut
    where
        I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
        I::IntoIter: Clone,
    {
        let pairs = pairs.into_iter();
        let len = stream_len(pairs.clone());
        let mut buf = BytesMut::with_capacity(len);
        let capacity = buf.capacity();
        params_records(&mut buf, 1, pairs);
        assert_eq!(buf.len(), len);
        assert_eq!(buf.capacity(), capacity, "the buffer was grown");
        buf
    }

    #[test]
    fn short_and_long_lengths() {
        let long = vec![b'v'; 300];
        let mut buf = BytesMut::new();
        put_pair(&mut buf, b"A", b"1");
        assert_eq!(&buf[..], b"\x01\x01A1");
        buf.clear();
        put_pair(&mut buf, b"B", &long);
        assert_eq!(&buf[..5], &[1, 0x80, 0, 1, 44]);
        let pairs = decode_pairs(&buf.freeze()).unwrap();
        assert_eq!(pairs, vec![(Bytes::from("B"), Bytes::from(long))]);
    }

    #[test]
    fn boundary_127_and_128() {
        for n in [127usize, 128] {
            let name = vec![b'n'; n];
            let mut buf = BytesMut::new();
            put_pair(&mut buf, &name, b"");
            assert_eq!(buf.len(), pair_len(&name, b""));
            let pairs = decode_pairs(&buf.freeze()).unwrap();
            assert_eq!(pairs[0].0.len(), n);
        }
    }

    #[test]
    fn params_over_64k_keep_pairs_whole() {
        // Forty 2 KiB values: 80 KiB of params, more than one record.
        let values: Vec<(String, Vec<u8>)> = (0..40)
            .map(|i| (format!("HTTP_X_{i}"), vec![b'a' + (i % 26) as u8; 2048]))
            .collect();
        let pairs = || values.iter().map(|(n, v)| (n.as_bytes(), v.as_slice()));
        let buf = sized_params(pairs());
        let recs = records(buf);
        assert!(recs.len() >= 3, "two data records and the empty one");
        assert!(recs.last().unwrap().content.is_empty());
        let mut decoded = Vec::new();
        for r in &recs {
            assert_eq!((r.kind, r.request_id), (kind::PARAMS, 1));
            assert!(r.content.len() <= MAX_CONTENT);
            // Each record decodes on its own, as php-fpm and flup need.
            decoded.extend(decode_pairs(&r.content).unwrap());
        }
        assert_eq!(decoded.len(), 40);
        for ((n, v), (dn, dv)) in values.iter().zip(&decoded) {
            assert_eq!((n.as_bytes(), v.as_slice()), (&dn[..], &dv[..]));
        }
    }

    #[test]
    fn one_pair_larger_than_a_record_straddles() {
        let huge = vec![b'z'; 100_000];
        let buf = sized_params([(&b"BIG"[..], &huge[..]), (b"AFTER", b"x")]);
        let recs = records(buf);
        let joined: Vec<u8> = recs.iter().flat_map(|r| r.content.to_vec()).collect();
        let pairs = decode_pairs(&Bytes::from(joined)).unwrap();
        assert_eq!(pairs.len(), 2);
        assert_eq!(pairs[0].1.len(), 100_000);
        assert_eq!(&pairs[1].0[..], b"AFTER");
    }

    #[test]
    fn no_params_is_just_the_terminator() {
        let buf = sized_params(std::iter::empty());
        let recs = records(buf);
        assert_eq!(recs.len(), 1);
        assert!(recs[0].content.is_empty());
    }

    #[test]
    fn records_fill_up_to_the_limit() {
        // Pairs of 6 + value bytes: A and B fill a record exactly, C starts
        // the next one, and D, exactly a record's size, one of its own.
        let a = vec![b'a'; 32_761];
        let b = vec![b'b'; 32_762];
        let d = vec![b'd'; MAX_CONTENT - 6];
        let pairs = [(&b"A"[..], &a[..]), (b"B", &b), (b"C", &a), (b"D", &d)];
        let sizes: Vec<usize> = records(sized_params(pairs))
            .iter()
            .map(|r| r.content.len())
            .collect();
        assert_eq!(sizes, [MAX_CONTENT, 32_767, MAX_CONTENT, 0]);
    }

    #[test]
    fn truncated_pairs_are_errors() {
        let mut buf = BytesMut::new();
        put_pair(&mut buf, b"NAME", &[b'v'; 200]);
        let whole = buf.freeze();
        for cut in [1, 3, 6, whole.len() - 1] {
            assert!(decode_pairs(&whole.slice(..cut)).is_err(), "cut at {cut}");
        }
        // A four-byte length claiming 2 GiB must not overflow or allocate.
        let lying = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x01, b'a']);
        assert!(decode_pairs(&lying).is_err());
    }
}
