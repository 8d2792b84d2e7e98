//! The RFC 3875 section 6 response parser, shared by CGI and FastCGI.
//!
//! A program's output is a header block, a blank line, then the body. The
//! parser is fed byte chunks as they arrive ([`HeadParser::feed`]) and gives
//! back a [`GatewayHead`] and the body bytes that came with the last chunk;
//! [`read_head`] does the same for a stream and hands back the rest of it.
//! FastCGI feeds it the payload of its `FCGI_STDOUT` records.
//!
//! What is refused (every case an attacker-controlled program could use to
//! smuggle or split responses): CR anywhere inside a line, obs-fold
//! continuation lines (RFC 9112 section 5.2), names that are not tokens,
//! values with control bytes, a second `Status` or `Location`, a
//! `Transfer-Encoding`, a `Content-Length` that is not a number or differs
//! from an earlier one, and a header block over the limit. A valid
//! `Content-Length` frames the body ([`super::body::ProgramBody`] holds the
//! program to it, so a lying program cannot desynchronise a kept-alive
//! connection). Hop-by-hop headers (`Connection`, `Keep-Alive`, `Upgrade`,
//! ...) are not forwarded.

use std::fmt;
use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::{HeaderMap, StatusCode};

/// Default limit of a header block, in bytes.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// At most this many header fields (a `HeaderMap` cannot grow without bound).
pub const MAX_FIELDS: usize = 500;

/// What the server does with a parsed head (RFC 3875 section 6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// 6.2.1: send the document (status, headers, body).
    Document,
    /// 6.2.2: serve this path (and query) instead, as if the client had asked
    /// for it. Only when `Location` is a path, no `Status` was given and no
    /// body followed the head (see [`settle_local_redirect`]).
    LocalRedirect(String),
    /// 6.2.3, 6.2.4: redirect the client (`Location` is in `headers`).
    ClientRedirect,
}

/// A parsed response head, ready to become an HTTP response.
#[derive(Debug)]
pub struct GatewayHead {
    pub status: StatusCode,
    /// Headers to send: without `Status`, `Content-Length` and hop-by-hop ones.
    pub headers: HeaderMap,
    pub action: Action,
    /// The program's `Content-Length`.
    pub content_length: Option<u64>,
}

/// Why a head could not be parsed.
#[derive(Debug)]
pub enum HeadError {
    /// The output ended before the blank line that ends the header block.
    NoHeaderBlock,
    /// None of `Content-Type`, `Status`, `Location` (RFC 3875 section 6.2).
    MissingContentType,
    /// A line the parser refuses; the text says which rule it broke.
    Malformed(String),
    /// The header block (or the number of fields) is over the limit.
    TooLarge,
    /// Reading the output failed.
    Io(io::Error),
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadError::NoHeaderBlock => {
                f.write_str("the output ended before its headers did: it printed no blank line after its headers")
            }
            HeadError::MissingContentType => {
                f.write_str("its headers have no Content-Type, Status or Location")
            }
            HeadError::Malformed(why) => write!(f, "malformed header output: {why}"),
            HeadError::TooLarge => write!(
                f,
                "its header block is over {MAX_HEAD_BYTES} bytes or {MAX_FIELDS} fields"
            ),
            HeadError::Io(e) => write!(f, "reading its output failed: {e}"),
        }
    }
}

impl std::error::Error for HeadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HeadError::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// How the first lines are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// RFC 3875 section 6: CGI header fields (`Status`, `Location`).
    Cgi,
    /// Non-parsed header output (section 5): an `HTTP/1.1 200 OK` status line,
    /// then ordinary header fields.
    Nph,
}

/// An incremental parser for one response head.
#[derive(Debug)]
pub struct HeadParser {
    mode: Mode,
    limit: usize,
    /// Bytes of the current, incomplete line.
    buf: BytesMut,
    /// Bytes of complete lines already parsed.
    consumed: usize,
    lines: usize,
    status: Option<StatusCode>,
    location: Option<HeaderValue>,
    content_type: bool,
    content_length: Option<u64>,
    fields: usize,
    headers: HeaderMap,
    /// The first bad line. It is reported when the blank line comes: output
    /// that never ends its head is [`HeadError::NoHeaderBlock`], whatever it
    /// held (a program that prints `hello` printed no headers at all).
    failed: Option<HeadError>,
}

impl HeadParser {
    /// A parser for `mode` that refuses heads over `limit` bytes.
    pub fn new(mode: Mode, limit: usize) -> Self {
        HeadParser {
            mode,
            limit,
            buf: BytesMut::new(),
            consumed: 0,
            lines: 0,
            status: None,
            location: None,
            content_type: false,
            content_length: None,
            fields: 0,
            headers: HeaderMap::new(),
            failed: None,
        }
    }

    /// Feed the next chunk of output. `Ok(Some((head, body)))` once the blank
    /// line has been seen; `body` holds what followed it in this chunk. Do
    /// not feed the parser again after that. A bad line is reported when the
    /// blank line arrives; only [`HeadError::TooLarge`] comes at once.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Option<(GatewayHead, Bytes)>, HeadError> {
        let scanned = self.buf.len();
        self.buf.extend_from_slice(chunk);
        let mut from = scanned;
        while let Some(pos) = memchr::memchr(b'\n', &self.buf[from..]) {
            let line = self.buf.split_to(from + pos).freeze();
            self.buf.advance(1);
            from = 0;
            let body_follows = !self.buf.is_empty();
            if let Some(head) = self.complete_line(&line, 0..line.len(), body_follows)? {
                return Ok(Some((head, self.buf.split().freeze())));
            }
        }
        self.check_size()?;
        Ok(None)
    }

    /// [`HeadParser::feed`] for a chunk it may keep: the lines that arrived
    /// whole are parsed where they are, and the body is a slice of `chunk`,
    /// not a copy (a FastCGI or CGI answer's head usually comes in one read).
    pub fn feed_bytes(&mut self, chunk: Bytes) -> Result<Option<(GatewayHead, Bytes)>, HeadError> {
        if !self.buf.is_empty() {
            return self.feed(&chunk);
        }
        let mut start = 0;
        while let Some(pos) = memchr::memchr(b'\n', &chunk[start..]) {
            let end = start + pos;
            let body_follows = end + 1 < chunk.len();
            if let Some(head) = self.complete_line(&chunk, start..end, body_follows)? {
                return Ok(Some((head, chunk.slice(end + 1..))));
            }
            start = end + 1;
        }
        self.buf.extend_from_slice(&chunk[start..]);
        self.check_size()?;
        Ok(None)
    }

    /// One line of `src`, its LF already taken off: the head when it was the
    /// blank line that ends it (`body_follows`: output came after it in the
    /// chunk). Header values stay slices of `src`, not copies.
    fn complete_line(
        &mut self,
        src: &Bytes,
        mut line: Range<usize>,
        body_follows: bool,
    ) -> Result<Option<GatewayHead>, HeadError> {
        self.consumed += line.len() + 1;
        if self.consumed > self.limit {
            return Err(HeadError::TooLarge);
        }
        // Line ends are CRLF or bare LF (RFC 3875 section 6.3: NL).
        if src[line.clone()].ends_with(b"\r") {
            line.end -= 1;
        }
        if line.is_empty() && !(self.mode == Mode::Nph && self.lines == 0) {
            if let Some(err) = self.failed.take() {
                return Err(err);
            }
            return self.finish(body_follows).map(Some);
        }
        if self.failed.is_none() {
            match self.line(src, line) {
                Err(HeadError::TooLarge) => return Err(HeadError::TooLarge),
                Err(err) => self.failed = Some(err),
                Ok(()) => {}
            }
        }
        self.lines += 1;
        Ok(None)
    }

    /// The unfinished line counts against the limit too.
    fn check_size(&self) -> Result<(), HeadError> {
        if self.consumed + self.buf.len() > self.limit {
            return Err(HeadError::TooLarge);
        }
        Ok(())
    }

    fn line(&mut self, src: &Bytes, range: Range<usize>) -> Result<(), HeadError> {
        let line = &src[range.clone()];
        if line.contains(&b'\r') {
            return Err(malformed("a CR inside a header line"));
        }
        if self.mode == Mode::Nph && self.lines == 0 {
            self.status = Some(parse_status_line(line)?);
            return Ok(());
        }
        if line.starts_with(b" ") || line.starts_with(b"\t") {
            return Err(malformed("an obs-fold continuation line"));
        }
        let colon =
            memchr::memchr(b':', line).ok_or_else(|| malformed("a header line without a colon"))?;
        let after = &line[colon + 1..];
        let value = after.trim_ascii();
        if !value
            .iter()
            .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
        {
            let name = String::from_utf8_lossy(&line[..colon]);
            return Err(malformed(format!(
                "control characters in the {name} header"
            )));
        }
        // Status is no HTTP header: checked before a header name is made
        // (of a name the http crate does not know, a copy).
        if self.mode == Mode::Cgi && line[..colon].eq_ignore_ascii_case(b"status") {
            if self.status.is_some() {
                return Err(malformed("a second Status header"));
            }
            self.status = Some(parse_status(value)?);
            return Ok(());
        }
        let name = HeaderName::from_bytes(&line[..colon])
            .map_err(|_| malformed("a header name that is not a token"))?;
        let start = range.start + colon + 1 + (after.len() - after.trim_ascii_start().len());
        self.field(name, src, start..start + value.len())
    }

    /// A field whose value is `src[value]`, free of control characters.
    fn field(
        &mut self,
        name: HeaderName,
        src: &Bytes,
        value: Range<usize>,
    ) -> Result<(), HeadError> {
        let bytes = &src[value.clone()];
        let shared = || {
            HeaderValue::from_maybe_shared(src.slice(value.clone()))
                .map_err(|_| malformed(format!("control characters in the {name} header")))
        };
        let mut value = None;
        match name.as_str() {
            "location" if self.mode == Mode::Cgi => {
                if self.location.is_some() {
                    return Err(malformed("a second Location header"));
                }
                if bytes.is_empty() {
                    return Err(malformed("an empty Location header"));
                }
                let location = value.insert(shared()?);
                self.location = Some(location.clone());
            }
            "transfer-encoding" => {
                return Err(malformed(
                    "a Transfer-Encoding header (the server frames the body)",
                ));
            }
            "content-length" => {
                let len = parse_content_length(bytes)?;
                if self.content_length.is_some_and(|earlier| earlier != len) {
                    return Err(malformed("two different Content-Length headers"));
                }
                self.content_length = Some(len);
                return Ok(());
            }
            // Hop-by-hop headers are the server's own.
            "connection" | "keep-alive" | "proxy-connection" | "upgrade" | "te" | "trailer" => {
                return Ok(())
            }
            "status" => return Ok(()),
            _ => {}
        }
        let value = match value {
            Some(value) => value,
            None => shared()?,
        };
        if name == CONTENT_TYPE {
            self.content_type = true;
        }
        self.fields += 1;
        if self.fields > MAX_FIELDS {
            return Err(HeadError::TooLarge);
        }
        self.headers
            .try_append(name, value)
            .map_err(|_| HeadError::TooLarge)?;
        Ok(())
    }

    fn finish(&mut self, body_follows: bool) -> Result<GatewayHead, HeadError> {
        let headers = std::mem::take(&mut self.headers);
        if self.mode == Mode::Nph {
            let status = self.status.ok_or(HeadError::NoHeaderBlock)?;
            return Ok(GatewayHead {
                status,
                headers,
                action: Action::Document,
                content_length: self.content_length,
            });
        }
        let action = match &self.location {
            Some(loc) => match loc.to_str() {
                Ok(path) if is_local(path) && self.status.is_none() && !body_follows => {
                    Action::LocalRedirect(path.to_owned())
                }
                _ => Action::ClientRedirect,
            },
            None if self.status.is_none() && !self.content_type => {
                return Err(HeadError::MissingContentType)
            }
            None => Action::Document,
        };
        let status = match (self.status, &action) {
            (Some(status), _) => status,
            (None, Action::ClientRedirect) => StatusCode::FOUND,
            (None, _) => StatusCode::OK,
        };
        Ok(GatewayHead {
            status,
            headers,
            action,
            content_length: self.content_length,
        })
    }
}

/// A local-Location (RFC 3875 section 6.3.2): an absolute path, not a
/// network-path reference (`//host/x` is a client redirect in every browser).
fn is_local(location: &str) -> bool {
    location.starts_with('/') && !location.starts_with("//")
}

fn malformed(why: impl Into<String>) -> HeadError {
    HeadError::Malformed(why.into())
}

/// RFC 3875 section 6.3.3: `Status: 3DIGIT [SP reason-phrase]`. 1xx codes are
/// interim responses and cannot end a program's answer.
fn parse_status(value: &[u8]) -> Result<StatusCode, HeadError> {
    let bad = || malformed(format!("a bad Status {:?}", String::from_utf8_lossy(value)));
    let (code, rest) = value.split_at_checked(3).ok_or_else(bad)?;
    if !code.iter().all(u8::is_ascii_digit)
        || !(rest.is_empty() || rest[0] == b' ' || rest[0] == b'\t')
    {
        return Err(bad());
    }
    let status = StatusCode::from_bytes(code).map_err(|_| bad())?;
    if status.is_informational() {
        return Err(bad());
    }
    Ok(status)
}

/// RFC 9110 section 8.6: `1*DIGIT`. (A list of equal values, which a
/// recipient may accept, is no program's output: refused with the rest.)
fn parse_content_length(value: &[u8]) -> Result<u64, HeadError> {
    let bad = || {
        malformed(format!(
            "a bad Content-Length {:?}",
            String::from_utf8_lossy(value)
        ))
    };
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or_else(bad)
}

/// `HTTP/1.1 200 OK` (RFC 9112 section 4), for NPH programs.
fn parse_status_line(line: &[u8]) -> Result<StatusCode, HeadError> {
    let bad = || {
        malformed(format!(
            "a bad NPH status line {:?}",
            String::from_utf8_lossy(line)
        ))
    };
    let rest = line.strip_prefix(b"HTTP/").ok_or_else(bad)?;
    let space = rest.iter().position(|&b| b == b' ').ok_or_else(bad)?;
    let version = &rest[..space];
    let version_ok = match version {
        [major] => major.is_ascii_digit(),
        [major, b'.', minor] => major.is_ascii_digit() && minor.is_ascii_digit(),
        _ => false,
    };
    if !version_ok {
        return Err(bad());
    }
    parse_status(&rest[space + 1..])
}

/// Read a head from `stream` and give back the rest of the stream, starting
/// with the body bytes that came after the blank line.
pub async fn read_head<S>(
    mut stream: S,
    mut parser: HeadParser,
) -> Result<(GatewayHead, Prefixed<S>), HeadError>
where
    S: Stream<Item = io::Result<Bytes>> + Unpin,
{
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(HeadError::Io)?;
        if let Some((head, body)) = parser.feed_bytes(chunk)? {
            return Ok((head, Prefixed::new(body, stream)));
        }
    }
    Err(HeadError::NoHeaderBlock)
}

/// What a head with [`Action::LocalRedirect`] turned out to be.
pub enum Settled<S> {
    /// No body followed: serve this path instead.
    LocalRedirect(String),
    /// Output followed the head, which RFC 3875 section 6.2.2 forbids for a
    /// local redirect: it is sent as a client redirect (302) with that body.
    Response(GatewayHead, Prefixed<S>),
}

/// Wait for the end of the output after a local-redirect head: a local
/// redirect "MUST NOT return any other header fields or a message-body"
/// (RFC 3875 section 6.2.2). Rather than drop what the program wrote, a
/// body turns the answer into a client redirect (302, `Location` as given).
pub async fn settle_local_redirect<S>(
    mut head: GatewayHead,
    mut rest: Prefixed<S>,
) -> Result<Settled<S>, HeadError>
where
    S: Stream<Item = io::Result<Bytes>> + Unpin,
{
    let Action::LocalRedirect(path) = &head.action else {
        return Ok(Settled::Response(head, rest));
    };
    loop {
        match rest.next().await {
            None => return Ok(Settled::LocalRedirect(path.clone())),
            Some(Err(e)) => return Err(HeadError::Io(e)),
            Some(Ok(chunk)) if chunk.is_empty() => {}
            Some(Ok(chunk)) => {
                head.action = Action::ClientRedirect;
                head.status = StatusCode::FOUND;
                return Ok(Settled::Response(head, Prefixed::new(chunk, rest.inner)));
            }
        }
    }
}

/// A stream with some bytes put back in front of it.
#[derive(Debug)]
pub struct Prefixed<S> {
    first: Option<Bytes>,
    inner: S,
}

impl<S> Prefixed<S> {
    pub fn new(first: Bytes, inner: S) -> Self {
        Prefixed {
            first: (!first.is_empty()).then_some(first),
            inner,
        }
    }

    /// The underlying stream; drops bytes not yet yielded.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// Bytes put back in front, not yet yielded.
    pub fn front_len(&self) -> usize {
        self.first.as_ref().map_or(0, Bytes::len)
    }
}

impl<S> Prefixed<S>
where
    S: Stream<Item = io::Result<Bytes>> + Unpin,
{
    /// Take in front what the stream already has, without waiting, until
    /// `limit` bytes are in front: `Ok(true)` when the stream ended there,
    /// so the front is all there is.
    pub fn poll_gather(&mut self, cx: &mut Context<'_>, limit: usize) -> io::Result<bool> {
        let mut joined: Option<BytesMut> = None;
        let ended = loop {
            let held = joined
                .as_ref()
                .map_or_else(|| self.front_len(), BytesMut::len);
            if held >= limit {
                break false;
            }
            match Pin::new(&mut self.inner).poll_next(cx) {
                Poll::Pending => break false,
                Poll::Ready(None) => break true,
                Poll::Ready(Some(Err(err))) => return Err(err),
                Poll::Ready(Some(Ok(chunk))) if chunk.is_empty() => {}
                Poll::Ready(Some(Ok(chunk))) => match (&mut joined, &self.first) {
                    (Some(joined), _) => joined.extend_from_slice(&chunk),
                    (None, None) => self.first = Some(chunk),
                    (None, Some(first)) => {
                        let mut both = BytesMut::with_capacity(first.len() + chunk.len());
                        both.extend_from_slice(first);
                        both.extend_from_slice(&chunk);
                        joined = Some(both);
                    }
                },
            }
        };
        if let Some(joined) = joined {
            self.first = Some(joined.freeze());
        }
        Ok(ended)
    }
}

impl<S> Stream for Prefixed<S>
where
    S: Stream<Item = io::Result<Bytes>> + Unpin,
{
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(first)));
        }
        Pin::new(&mut self.inner).poll_next(cx)
    }
}

#[cfg(test)]
#[path = "response_tests.rs"]
mod tests;
