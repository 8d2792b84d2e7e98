//! A shadow of HTTP/1.1 request framing, to find request heads that carry
//! both `Content-Length` and `Transfer-Encoding` (RFC 9112 section 6.1).
//!
//! Such a request is the classic smuggling vector (CL.TE / TE.CL, the
//! "HTTP Desync Attacks" of 2019): a proxy in front may frame it by one
//! header and us by the other. hyper lets `Transfer-Encoding` win, as the RFC
//! allows, removes `Content-Length` before the service sees the request, and
//! closes the connection afterwards. RFC 9112 section 6.1 also allows
//! treating the message as an error, which is safer behind a proxy that
//! already forwarded it: so the connection's reads are fed through this
//! scanner, which counts request heads as hyper does and records the index
//! of the first one with both headers; `service` answers that request 400.
//!
//! The scanner never decides framing: hyper does. If the two ever disagree
//! (a client sending something hyper refuses), the scanner stops or marks a
//! head hyper never dispatches; the worst outcome is a 400 on the client's
//! own connection, never a smuggled request.

use std::sync::Arc;

use super::observed::{Observed, ReadObserver};
use super::ConnTracker;

/// Longest request-head line the scanner follows; past it, it stops (hyper
/// answers 431 or 414 for such a head anyway).
const MAX_LINE: usize = 128 * 1024;

/// Where the scanner is in the byte stream of one connection.
#[derive(Debug)]
enum State {
    /// Reading a request head, line by line.
    Head(Head),
    /// Skipping this many bytes of a body with a `Content-Length`.
    Body(u64),
    /// Reading a chunk-size line.
    ChunkSize,
    /// Skipping chunk data.
    ChunkData(u64),
    /// Reading the CRLF after chunk data (an empty line).
    ChunkEnd,
    /// Reading trailer lines after the last chunk, until an empty one.
    Trailers,
    /// Not following any more (HTTP/2, a head hyper refuses, one with both
    /// headers after which hyper closes).
    Off,
}

#[derive(Debug, Default)]
struct Head {
    /// Lines seen so far (0: still at the request line).
    lines: usize,
    content_length: Option<u64>,
    content_length_seen: bool,
    transfer_encoding: Option<bool>,
}

/// Follows the requests on one HTTP/1 connection.
#[derive(Debug)]
pub struct FramingScanner {
    state: State,
    /// The current line, when the state reads lines.
    line: Vec<u8>,
    /// Request heads completed so far.
    heads: u64,
    /// The 1-based index of the first head with both headers.
    flagged: Option<u64>,
}

impl Default for FramingScanner {
    fn default() -> Self {
        FramingScanner {
            state: State::Head(Head::default()),
            line: Vec::new(),
            heads: 0,
            flagged: None,
        }
    }
}

impl FramingScanner {
    /// The 1-based index of the first request head that had both
    /// `Content-Length` and `Transfer-Encoding`, once one has been read.
    pub fn flagged(&self) -> Option<u64> {
        self.flagged
    }

    /// True when the scanner has stopped following the stream.
    pub fn is_off(&self) -> bool {
        matches!(self.state, State::Off)
    }

    /// Feed the next bytes read from the connection.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match &mut self.state {
                State::Off => return,
                State::Body(left) | State::ChunkData(left) if *left > 0 => {
                    let n = (*left).min(bytes.len() as u64);
                    *left -= n;
                    bytes = &bytes[n as usize..];
                }
                State::Body(_) => self.state = State::Head(Head::default()),
                State::ChunkData(_) => self.state = State::ChunkEnd,
                State::Head(_) | State::ChunkSize | State::ChunkEnd | State::Trailers => {
                    let Some(nl) = memchr::memchr(b'\n', bytes) else {
                        self.push_line(bytes);
                        return;
                    };
                    let (end, rest) = (&bytes[..nl], &bytes[nl + 1..]);
                    bytes = rest;
                    if self.line.is_empty() && end.len() <= MAX_LINE {
                        // The whole line came in this read (the usual case):
                        // looked at where it is, not copied.
                        self.line_done(without_cr(end));
                        continue;
                    }
                    self.push_line(end);
                    let mut line = std::mem::take(&mut self.line);
                    self.line_done(without_cr(&line));
                    line.clear();
                    // Keep a small buffer, not the longest line ever seen.
                    if line.capacity() <= 4096 {
                        self.line = line;
                    }
                }
            }
        }
    }

    fn push_line(&mut self, bytes: &[u8]) {
        if self.line.len() + bytes.len() > MAX_LINE {
            self.state = State::Off;
            self.line = Vec::new();
        } else {
            self.line.extend_from_slice(bytes);
        }
    }

    fn line_done(&mut self, line: &[u8]) {
        match &mut self.state {
            State::Head(head) => {
                if head.lines == 0 {
                    if line.is_empty() {
                        return; // RFC 9112 section 2.2: empty lines before a request
                    }
                    head.lines = 1;
                    if line.starts_with(b"PRI * HTTP/2") {
                        self.state = State::Off;
                    }
                    return;
                }
                if line.is_empty() {
                    self.head_done();
                    return;
                }
                head.lines += 1;
                header(head, line);
            }
            State::ChunkSize => match chunk_size(line) {
                Some(0) => self.state = State::Trailers,
                Some(n) => self.state = State::ChunkData(n),
                None => self.state = State::Off,
            },
            // Chunk data longer than its size said: hyper refuses it.
            State::ChunkEnd if !line.is_empty() => self.state = State::Off,
            State::ChunkEnd => self.state = State::ChunkSize,
            State::Trailers if line.is_empty() => self.state = State::Head(Head::default()),
            State::Trailers => {}
            State::Body(_) | State::ChunkData(_) | State::Off => {}
        }
    }

    fn head_done(&mut self) {
        let State::Head(head) = std::mem::replace(&mut self.state, State::Off) else {
            return;
        };
        self.heads += 1;
        self.state = match (head.content_length_seen, head.transfer_encoding) {
            (true, Some(_)) => {
                self.flagged.get_or_insert(self.heads);
                State::Off
            }
            (_, Some(true)) => State::ChunkSize,
            (_, Some(false)) => State::Off,
            (true, None) => match head.content_length {
                Some(len) => State::Body(len),
                None => State::Off,
            },
            (false, None) => State::Head(Head::default()),
        };
    }
}

fn without_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Note what framing a header line asks for.
fn header(head: &mut Head, line: &[u8]) {
    let Some(colon) = memchr::memchr(b':', line) else {
        return;
    };
    let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
    if name.eq_ignore_ascii_case(b"content-length") {
        let len = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
        head.content_length = match (head.content_length_seen, head.content_length, len) {
            (false, _, len) => len,
            (true, Some(prev), Some(len)) if prev == len => Some(len),
            _ => None,
        };
        head.content_length_seen = true;
    } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
        // As hyper reads it: chunked when the last coding is chunked.
        let chunked = value
            .rsplit(|&b| b == b',')
            .next()
            .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        head.transfer_encoding = Some(chunked);
    }
}

/// A chunk-size line: hex digits, then optional extensions after `;`.
fn chunk_size(line: &[u8]) -> Option<u64> {
    let end = line
        .iter()
        .position(|&b| b == b';' || b == b' ' || b == b'\t')
        .unwrap_or(line.len());
    let digits = std::str::from_utf8(&line[..end]).ok()?;
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// The plaintext stream of a connection, fed through the scanner.
pub type FramingIo<T> = Observed<T, FramingObserver>;

/// Feeds a connection's reads to its scanner until the scanner stops, then
/// records the flagged head (if any) with the tracker.
pub struct FramingObserver {
    scanner: Option<FramingScanner>,
    tracker: Arc<ConnTracker>,
}

impl FramingObserver {
    pub fn new(tracker: Arc<ConnTracker>) -> Self {
        FramingObserver {
            scanner: Some(FramingScanner::default()),
            tracker,
        }
    }
}

impl ReadObserver for FramingObserver {
    fn observe(&mut self, bytes: &[u8]) {
        if let Some(scanner) = self.scanner.as_mut() {
            scanner.feed(bytes);
            if scanner.is_off() {
                if let Some(head) = scanner.flagged() {
                    self.tracker.both_lengths_in(head);
                }
                self.scanner = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(input: &[u8]) -> FramingScanner {
        let mut whole = FramingScanner::default();
        whole.feed(input);
        // Byte by byte gives the same answer.
        let mut bytewise = FramingScanner::default();
        for b in input {
            bytewise.feed(std::slice::from_ref(b));
        }
        assert_eq!(whole.flagged(), bytewise.flagged());
        assert_eq!(whole.heads, bytewise.heads);
        whole
    }

    #[test]
    fn both_headers_flag_their_head_in_either_order() {
        let cl_te =
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n";
        let te_cl =
            b"POST / HTTP/1.1\r\nHost: x\r\ntransfer-encoding: chunked\r\ncontent-length: 4\r\n\r\n";
        assert_eq!(scan(cl_te).flagged(), Some(1));
        assert_eq!(scan(te_cl).flagged(), Some(1));
    }

    #[test]
    fn pipelined_requests_are_counted_past_their_bodies() {
        let mut input = Vec::new();
        input.extend_from_slice(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
        // A body that looks like a request with both headers is only a body.
        let fake = b"GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        input.extend_from_slice(
            format!(
                "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
                fake.len()
            )
            .as_bytes(),
        );
        input.extend_from_slice(fake);
        input.extend_from_slice(
            b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        input.extend_from_slice(b"5;ext=1\r\nhello\r\n");
        input.extend_from_slice(format!("{:x}\r\n", fake.len()).as_bytes());
        input.extend_from_slice(fake);
        input.extend_from_slice(b"\r\n0\r\nX-Trailer: 1\r\n\r\n");
        input.extend_from_slice(b"\r\nGET /d HTTP/1.1\r\nHost: x\r\n\r\n");
        input.extend_from_slice(
            b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        let s = scan(&input);
        assert_eq!(s.heads, 5);
        assert_eq!(s.flagged(), Some(5));
    }

    #[test]
    fn ordinary_requests_are_never_flagged() {
        let input = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nPOST / HTTP/1.1\nContent-Length: 2\n\nabGET / HTTP/1.1\r\n\r\n";
        let s = scan(input);
        assert_eq!(s.heads, 3);
        assert_eq!(s.flagged(), None);
    }

    #[test]
    fn http2_and_oversized_lines_stop_the_scanner() {
        assert!(scan(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").is_off());
        let mut long = b"GET /".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_LINE + 1));
        assert!(scan(&long).is_off());
    }

    #[test]
    fn bad_chunk_sizes_stop_the_scanner() {
        for size in ["zz", "-1", "", "fffffffffffffffff1"] {
            let input = format!(
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{size}\r\nabc\r\n0\r\n\r\n"
            );
            assert!(scan(input.as_bytes()).is_off(), "{size:?}");
        }
    }
}
