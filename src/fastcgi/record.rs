//! FastCGI records (FastCGI 1.0 specification, section 3.3) and their codec.
//!
//! Every record is an 8-byte header (version, type, request id, content
//! length, padding length), at most 65,535 bytes of content and up to 255
//! bytes of padding. The decoder checks the version and hands out whole
//! records; a stream that ends inside a record is an error, never a short
//! record.
//!
//! Records we write carry no padding. The spec only recommends 8-byte
//! alignment, and it costs the receivers that read it with a call of its own:
//! flup spends a `recv` per padded record, php-fpm a `read` per padded STDIN
//! record. Apache's mod_proxy_fcgi and lighttpd do not pad either.

use std::io;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// The only protocol version (section 3.3).
pub const VERSION_1: u8 = 1;
/// Length of a record header.
pub const HEADER_LEN: usize = 8;
/// Largest content one record can carry (the length is 16 bits).
pub const MAX_CONTENT: usize = 65_535;
/// Request id 0 is reserved for management records (section 3.3).
pub const MANAGEMENT_ID: u16 = 0;

/// Record types (section 8).
pub mod kind {
    pub const BEGIN_REQUEST: u8 = 1;
    pub const ABORT_REQUEST: u8 = 2;
    pub const END_REQUEST: u8 = 3;
    pub const PARAMS: u8 = 4;
    pub const STDIN: u8 = 5;
    pub const STDOUT: u8 = 6;
    pub const STDERR: u8 = 7;
    pub const DATA: u8 = 8;
    pub const GET_VALUES: u8 = 9;
    pub const GET_VALUES_RESULT: u8 = 10;
    pub const UNKNOWN_TYPE: u8 = 11;
}

/// The Responder role, the only one gatehouse plays (section 6.2).
pub const ROLE_RESPONDER: u16 = 1;
/// BEGIN_REQUEST flag: keep the connection open after END_REQUEST (section 5.1).
pub const FLAG_KEEP_CONN: u8 = 1;

/// END_REQUEST protocol status values (section 5.5).
pub mod protocol_status {
    pub const REQUEST_COMPLETE: u8 = 0;
    pub const CANT_MPX_CONN: u8 = 1;
    pub const OVERLOADED: u8 = 2;
    pub const UNKNOWN_ROLE: u8 = 3;
}

/// One decoded record: its type, request id and content (padding dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub kind: u8,
    pub request_id: u16,
    pub content: Bytes,
}

/// The body of an END_REQUEST record (section 5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndRequest {
    /// The application's exit status (what a CGI program would have exited with).
    pub app_status: u32,
    pub protocol_status: u8,
}

impl EndRequest {
    /// Parse an END_REQUEST body; a short one is malformed (not a panic).
    pub fn parse(content: &[u8]) -> io::Result<Self> {
        if content.len() < 8 {
            return Err(malformed(format!(
                "END_REQUEST body of {} bytes, expected 8",
                content.len()
            )));
        }
        let mut c = content;
        Ok(EndRequest {
            app_status: c.get_u32(),
            protocol_status: c.get_u8(),
        })
    }
}

/// An `InvalidData` error: the peer broke the protocol.
pub fn malformed(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.into())
}

/// Bytes a record we write with `content_len` bytes of content takes.
pub fn record_len(content_len: usize) -> usize {
    HEADER_LEN + content_len
}

/// Bytes [`put_stream`] appends for `data_len` bytes of data.
pub fn stream_len(data_len: usize) -> usize {
    let rest = data_len % MAX_CONTENT;
    data_len / MAX_CONTENT * record_len(MAX_CONTENT) + if rest > 0 { record_len(rest) } else { 0 }
}

fn header(kind: u8, request_id: u16, content_len: usize) -> [u8; HEADER_LEN] {
    let [id_hi, id_lo] = request_id.to_be_bytes();
    let [len_hi, len_lo] = (content_len as u16).to_be_bytes();
    let (padding, reserved) = (0, 0);
    [
        VERSION_1, kind, id_hi, id_lo, len_hi, len_lo, padding, reserved,
    ]
}

/// Append one record to `buf`. `content` must fit in one record.
pub fn put_record(buf: &mut BytesMut, kind: u8, request_id: u16, content: &[u8]) {
    assert!(content.len() <= MAX_CONTENT, "record content too long");
    buf.reserve(HEADER_LEN + content.len());
    buf.put_slice(&header(kind, request_id, content.len()));
    buf.put_slice(content);
}

/// A record whose content is written straight into the buffer after its
/// header, rather than gathered elsewhere and copied in: the header is
/// completed by [`OpenRecord::finish`] once the content is known.
#[must_use = "a record must be finished to get its length"]
pub struct OpenRecord {
    start: usize,
    kind: u8,
    request_id: u16,
}

impl OpenRecord {
    /// Append a header whose length is still to be filled in.
    pub fn begin(buf: &mut BytesMut, kind: u8, request_id: u16) -> Self {
        let start = buf.len();
        buf.put_slice(&header(kind, request_id, 0));
        OpenRecord {
            start,
            kind,
            request_id,
        }
    }

    /// Content bytes appended so far.
    pub fn content_len(&self, buf: &BytesMut) -> usize {
        buf.len() - self.start - HEADER_LEN
    }

    /// Fill in the header. The content must fit in one record.
    pub fn finish(self, buf: &mut BytesMut) {
        let len = self.content_len(buf);
        assert!(len <= MAX_CONTENT, "record content too long");
        buf[self.start..self.start + HEADER_LEN].copy_from_slice(&header(
            self.kind,
            self.request_id,
            len,
        ));
    }
}

/// Append `data` as a stream (PARAMS, STDIN, ...) cut into records of at most
/// [`MAX_CONTENT`] bytes. Empty `data` appends nothing: the empty record that
/// ends a stream is written with [`put_record`] on purpose.
pub fn put_stream(buf: &mut BytesMut, kind: u8, request_id: u16, data: &[u8]) {
    for chunk in data.chunks(MAX_CONTENT) {
        put_record(buf, kind, request_id, chunk);
    }
}

/// Length of a BEGIN_REQUEST record.
pub const BEGIN_REQUEST_LEN: usize = HEADER_LEN + 8;

/// Append a BEGIN_REQUEST record for the Responder role (section 5.1).
pub fn put_begin_request(buf: &mut BytesMut, request_id: u16, keep_conn: bool) {
    let flags = if keep_conn { FLAG_KEEP_CONN } else { 0 };
    let mut body = [0u8; 8];
    body[..2].copy_from_slice(&ROLE_RESPONDER.to_be_bytes());
    body[2] = flags;
    put_record(buf, kind::BEGIN_REQUEST, request_id, &body);
}

/// Decodes records from a byte stream; encodes single records.
#[derive(Debug, Default, Clone, Copy)]
pub struct RecordCodec;

impl Decoder for RecordCodec {
    type Item = Record;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<Record>> {
        if src.len() < HEADER_LEN {
            src.reserve(HEADER_LEN - src.len());
            return Ok(None);
        }
        let version = src[0];
        if version != VERSION_1 {
            return Err(malformed(format!("record version {version}, expected 1")));
        }
        let content_len = u16::from_be_bytes([src[4], src[5]]) as usize;
        let padding_len = src[6] as usize;
        let total = HEADER_LEN + content_len + padding_len;
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        let kind = src[1];
        let request_id = u16::from_be_bytes([src[2], src[3]]);
        src.advance(HEADER_LEN);
        let content = src.split_to(content_len).freeze();
        src.advance(padding_len);
        Ok(Some(Record {
            kind,
            request_id,
            content,
        }))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> io::Result<Option<Record>> {
        match self.decode(src)? {
            Some(record) => Ok(Some(record)),
            None if src.is_empty() => Ok(None),
            None => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("connection closed inside a record ({} bytes)", src.len()),
            )),
        }
    }
}

impl Encoder<Record> for RecordCodec {
    type Error = io::Error;

    fn encode(&mut self, record: Record, dst: &mut BytesMut) -> io::Result<()> {
        if record.content.len() > MAX_CONTENT {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "record content over 65535 bytes",
            ));
        }
        put_record(dst, record.kind, record.request_id, &record.content);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: u8, id: u16, content: &[u8]) -> Record {
        Record {
            kind,
            request_id: id,
            content: Bytes::copy_from_slice(content),
        }
    }

    #[test]
    fn round_trip_without_padding() {
        let mut buf = BytesMut::new();
        let mut codec = RecordCodec;
        for len in [0usize, 1, 7, 8, 9, 1000, MAX_CONTENT] {
            let content = vec![b'x'; len];
            codec
                .encode(record(kind::STDOUT, 1, &content), &mut buf)
                .unwrap();
            assert_eq!(buf.len(), HEADER_LEN + len, "no padding for len {len}");
            assert_eq!(buf[6], 0, "padding length for len {len}");
            let got = codec.decode(&mut buf).unwrap().unwrap();
            assert_eq!(got, record(kind::STDOUT, 1, &content));
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn foreign_padding_is_skipped() {
        // A peer may pad however it likes (here 3 bytes after 2 of content).
        let mut buf = BytesMut::from(&[1, 6, 0, 1, 0, 2, 3, 0, b'h', b'i', 9, 9, 9][..]);
        buf.extend_from_slice(&[1, 3, 0, 1, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let mut codec = RecordCodec;
        assert_eq!(
            codec.decode(&mut buf).unwrap().unwrap(),
            record(kind::STDOUT, 1, b"hi")
        );
        let end = codec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(end.kind, kind::END_REQUEST);
        assert!(buf.is_empty());
    }

    #[test]
    fn partial_input_waits() {
        let mut whole = BytesMut::new();
        put_record(&mut whole, kind::STDOUT, 1, b"hello world");
        let mut codec = RecordCodec;
        let mut buf = BytesMut::new();
        for (i, byte) in whole.iter().enumerate() {
            buf.put_u8(*byte);
            let got = codec.decode(&mut buf).unwrap();
            assert_eq!(got.is_some(), i == whole.len() - 1);
        }
    }

    #[test]
    fn truncated_record_at_eof_is_an_error() {
        let mut whole = BytesMut::new();
        put_record(&mut whole, kind::STDOUT, 1, b"hello world");
        let mut codec = RecordCodec;
        for cut in [3, HEADER_LEN, HEADER_LEN + 4, whole.len() - 1] {
            let mut buf = BytesMut::from(&whole[..cut]);
            let err = codec.decode_eof(&mut buf).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "cut at {cut}");
        }
        let mut empty = BytesMut::new();
        assert!(codec.decode_eof(&mut empty).unwrap().is_none());
    }

    #[test]
    fn wrong_version_is_malformed() {
        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\n"[..]);
        let err = RecordCodec.decode(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn streams_are_cut_at_65535() {
        let data = vec![7u8; MAX_CONTENT * 2 + 10];
        let mut buf = BytesMut::new();
        put_stream(&mut buf, kind::STDIN, 3, &data);
        let mut sizes = Vec::new();
        while let Some(r) = RecordCodec.decode(&mut buf).unwrap() {
            assert_eq!((r.kind, r.request_id), (kind::STDIN, 3));
            sizes.push(r.content.len());
        }
        assert_eq!(sizes, vec![MAX_CONTENT, MAX_CONTENT, 10]);
        put_stream(&mut buf, kind::STDIN, 3, b"");
        assert!(buf.is_empty(), "an empty stream chunk writes no record");
    }

    #[test]
    fn open_records_match_put_record() {
        for len in [0usize, 1, 7, 8, 9, 1000, MAX_CONTENT] {
            let content = vec![b'x'; len];
            let mut whole = BytesMut::new();
            put_record(&mut whole, kind::PARAMS, 3, &content);
            assert_eq!(whole.len(), record_len(len));
            let mut buf = BytesMut::new();
            let record = OpenRecord::begin(&mut buf, kind::PARAMS, 3);
            buf.put_slice(&content);
            assert_eq!(record.content_len(&buf), len);
            record.finish(&mut buf);
            assert_eq!(buf, whole, "len {len}");
        }
        for len in [
            0usize,
            1,
            MAX_CONTENT,
            MAX_CONTENT + 1,
            MAX_CONTENT * 2 + 10,
        ] {
            let mut buf = BytesMut::new();
            put_stream(&mut buf, kind::STDIN, 1, &vec![0; len]);
            assert_eq!(buf.len(), stream_len(len), "len {len}");
        }
    }

    #[test]
    fn begin_request_layout() {
        let mut buf = BytesMut::new();
        put_begin_request(&mut buf, 1, true);
        assert_eq!(&buf[..], &[1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0]);
        assert_eq!(buf.len(), BEGIN_REQUEST_LEN);
        buf.clear();
        put_begin_request(&mut buf, 1, false);
        assert_eq!(buf[10], 0);
    }

    #[test]
    fn end_request_parse() {
        let end = EndRequest::parse(&[0, 0, 1, 2, 2, 0, 0, 0]).unwrap();
        assert_eq!(end.app_status, 258);
        assert_eq!(end.protocol_status, protocol_status::OVERLOADED);
        assert!(
            EndRequest::parse(&[0, 0, 0]).is_err(),
            "short body: error, no panic"
        );
    }

    #[test]
    fn oversized_record_is_refused_by_encoder() {
        let mut buf = BytesMut::new();
        let big = record(kind::STDOUT, 1, &vec![0; MAX_CONTENT + 1]);
        assert!(RecordCodec.encode(big, &mut buf).is_err());
    }
}
