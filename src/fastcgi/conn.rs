//! One request on one connection (FastCGI specification, sections 5 and 6.2).
//!
//! The request is written as BEGIN_REQUEST, the PARAMS stream and whatever of
//! the body is already at hand, in one buffer and so one write; the rest of
//! the body follows as STDIN records while the STDOUT records are read, both
//! at once, so a backend that answers before it has read all its input does
//! not deadlock against us. The exchange is a future the handler polls
//! itself, first for the head and then, inside the response body, for the
//! rest: a client that reads slowly slows the backend down instead of filling
//! memory. (It ran in a task of its own behind a channel once; the task, the
//! channel and the wake-ups between them were a seventh of a php request's
//! user-space instructions. The channel's one merit, grouping answers that
//! are ready together, the handler keeps by yielding once; see `handle`.)
//!
//! A connection goes back to its pool only when its request reached
//! END_REQUEST cleanly, all of STDIN was written and no byte is left over;
//! anything else (an abort, a timeout, garbage) closes it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, StreamExt};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, Sleep};
use tokio_util::codec::FramedRead;

use super::params;
use super::pool::{lock, Answered, PooledConn};
use super::record::{self, kind, protocol_status, EndRequest, RecordCodec, MANAGEMENT_ID};
use crate::body::{BoxError, RequestBody};
use crate::context::RequestId;

/// Requests are not multiplexed: each connection carries one at a time.
pub const REQUEST_ID: u16 = 1;
/// Body bytes gathered into the first write when they are already there.
const PREFETCH_LIMIT: usize = 64 * 1024;
/// Room for a read from the backend (a STDOUT record of a small page fits).
const READ_CAPACITY: usize = 8 * 1024;

/// What the exchange tells the handler, in order.
#[derive(Debug)]
pub enum Event {
    /// Bytes of FCGI_STDOUT.
    Stdout(Bytes),
    /// END_REQUEST arrived: the response is complete.
    End(EndRequest),
    /// The exchange failed; nothing follows.
    Failed(Failure),
}

/// Why an exchange failed.
#[derive(Debug)]
pub enum Failure {
    /// The backend closed, reset, or broke the protocol.
    Backend(io::Error),
    /// Nothing from the backend within `read_timeout`.
    Timeout(Duration),
    /// Reading the client's request body failed (too large, or the client left).
    Body(BoxError),
    /// The stale connection could not be replaced.
    Reconnect(io::Error),
}

/// A request ready to be sent: its params encoded, the start of its body read.
pub struct Request {
    /// BEGIN_REQUEST, the PARAMS stream and STDIN records for the body bytes
    /// read so far (and the empty STDIN record once the body is complete):
    /// the first write of every attempt.
    head: BytesMut,
    /// Where STDIN starts in `head`.
    stdin_start: usize,
    /// The body still to read; `None` once it has been read to the end.
    body: Option<RequestBody>,
    pub read_timeout: Duration,
    pub id: RequestId,
    /// Ask for FCGI_KEEP_CONN (the route keeps idle connections); already
    /// encoded in `head`.
    keep_conn: bool,
}

impl Request {
    /// Encode `params` and take as much of `body` as is already available
    /// without waiting, so a small request goes out in a single write.
    pub fn new<'a, I>(
        params: I,
        body: Option<RequestBody>,
        read_timeout: Duration,
        id: RequestId,
        keep_conn: bool,
    ) -> Result<Self, Failure>
    where
        I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
        I::IntoIter: Clone,
    {
        let params = params.into_iter();
        // Room for BEGIN_REQUEST, the params and the empty STDIN record: a
        // request without a body is encoded without growing it.
        let mut head = BytesMut::with_capacity(
            record::BEGIN_REQUEST_LEN + params::stream_len(params.clone()) + record::record_len(0),
        );
        record::put_begin_request(&mut head, REQUEST_ID, keep_conn);
        params::params_records(&mut head, REQUEST_ID, params);
        let mut req = Request {
            stdin_start: head.len(),
            head,
            body,
            read_timeout,
            id,
            keep_conn,
        };
        req.prefetch()?;
        Ok(req)
    }

    fn prefetch(&mut self) -> Result<(), Failure> {
        while let Some(body) = self.body.as_mut() {
            if self.head.len() - self.stdin_start >= PREFETCH_LIMIT {
                break;
            }
            match body.frame().now_or_never() {
                None => break,
                Some(None) => self.body = None,
                Some(Some(Err(err))) => return Err(Failure::Body(err)),
                Some(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        record::put_stream(&mut self.head, kind::STDIN, REQUEST_ID, &data);
                    }
                }
            }
        }
        if self.body.is_none() {
            record::put_record(&mut self.head, kind::STDIN, REQUEST_ID, b"");
        }
        Ok(())
    }
}

/// Start the exchange: it makes progress while its [`Exchange`] is polled.
/// Dropping the `Exchange` aborts the request.
pub fn start(conn: PooledConn, req: Request) -> Exchange {
    let slot = Arc::new(Mutex::new(None));
    let tx = Sender(slot.clone());
    Exchange {
        slot,
        run: Some(Box::pin(run(conn, req, tx))),
    }
}

/// The handler's end of an exchange: its events, in order.
pub struct Exchange {
    slot: Arc<Mutex<Option<Event>>>,
    run: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl Exchange {
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        let Some(run) = self.run.as_mut() else {
            return Poll::Ready(None);
        };
        if run.as_mut().poll(cx).is_ready() {
            self.run = None;
        }
        match lock(&self.slot).take() {
            Some(event) => Poll::Ready(Some(event)),
            None if self.run.is_none() => Poll::Ready(None),
            None => Poll::Pending,
        }
    }

    pub async fn recv(&mut self) -> Option<Event> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }
}

/// The exchange's end: it leaves each event in the slot and yields once, so
/// the [`Exchange`] polling it returns the event before the exchange goes on.
struct Sender(Arc<Mutex<Option<Event>>>);

impl Sender {
    /// Done once the receiver has taken the event. (Not after one yield: the
    /// exchange polls its reading half again when its writing half finishes
    /// in the same poll.) No waker is kept: the receiver polls again when it
    /// wants the next event.
    async fn send(&self, event: Event) {
        *lock(&self.0) = Some(event);
        std::future::poll_fn(|_| {
            if lock(&self.0).is_some() {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
    }
}

/// The connection while its request is unfinished. Dropped unfinished (the
/// client left, the handler gave up, the exchange failed), it tells the
/// backend to stop (section 5.4) and closes: its state is unknown, so it is
/// never reused.
struct InFlight(Option<PooledConn>);

impl InFlight {
    fn conn(&mut self) -> &mut PooledConn {
        self.0
            .as_mut()
            .expect("an unfinished request holds its connection")
    }

    /// END_REQUEST came: keep the connection when `reusable`, close it
    /// otherwise, abort nothing.
    fn finish(mut self, reusable: bool) {
        if let Some(conn) = self.0.take() {
            if reusable {
                conn.release();
            }
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            let mut buf = BytesMut::new();
            record::put_record(&mut buf, kind::ABORT_REQUEST, REQUEST_ID, b"");
            // The socket takes 8 bytes at once unless the backend stopped
            // reading, and then it is no use waiting for it.
            let _ = conn.stream().try_write(&buf);
        }
    }
}

/// How one attempt ended.
enum Outcome {
    /// END_REQUEST seen; `reusable` when the connection is in a known state.
    Done {
        end: EndRequest,
        reusable: bool,
    },
    /// A reused connection failed before anything came back and before any
    /// body byte beyond the first write was consumed: safe to send again.
    Stale(io::Error),
    Failed(Failure),
}

/// A plain fn returning an `async move` block, not an `async fn`: an async
/// fn keeps room for its arguments beside the locals it moves them into
/// (208 bytes here), and this future must stay within the allocator's small
/// sizes (1,024 bytes) to be allocated cheaply.
fn run(conn: PooledConn, mut req: Request, tx: Sender) -> impl Future<Output = ()> + Send {
    let mut conn = InFlight(Some(conn));
    async move {
        let mut retried = false;
        loop {
            let (stream, answered) = conn.conn().split();
            let outcome = attempt(stream, &answered, &mut req, &tx).await;
            match outcome {
                Outcome::Done { end, reusable } => {
                    if end.app_status != 0 {
                        tracing::debug!(request = %req.id, app_status = end.app_status, "fastcgi app status");
                    }
                    // Back to the pool first: a slow client must not hold it.
                    conn.finish(reusable && req.keep_conn);
                    tx.send(Event::End(end)).await;
                    return;
                }
                Outcome::Stale(err) if !retried && conn.conn().reused() => {
                    tracing::debug!(request = %req.id, error = %err, "pooled fastcgi connection was stale; retrying on a new one");
                    retried = true;
                    // Boxed, as a rare path: connecting is a large future.
                    if let Err(err) = Box::pin(conn.conn().reconnect()).await {
                        conn.finish(false);
                        tx.send(Event::Failed(Failure::Reconnect(err))).await;
                        return;
                    }
                }
                Outcome::Stale(err) => {
                    conn.finish(false);
                    tx.send(Event::Failed(Failure::Backend(err))).await;
                    return;
                }
                Outcome::Failed(failure) => {
                    drop(conn);
                    tx.send(Event::Failed(failure)).await;
                    return;
                }
            }
        }
    }
}

/// How reading the backend's records ended.
enum ReadEnd {
    End { end: EndRequest, leftover: bool },
    Eof,
    Error(io::Error),
    Timeout,
}

/// How writing the request ended.
enum WriteEnd {
    Done,
    Backend(io::Error),
    Body(BoxError),
}

/// What both halves of one attempt know about its progress. (Atomics and a
/// mutex only because the future must be `Send`: both halves run in this one
/// future and never contend.)
struct Progress {
    /// Progress either way pushes the read timeout back: a long upload to a
    /// backend that reads it is not a silent backend.
    last: Mutex<Instant>,
    /// A record of this request came back.
    received: AtomicBool,
    /// Body bytes beyond the first write were taken from the client: the
    /// request can no longer be sent again.
    body_consumed: AtomicBool,
}

impl Progress {
    fn touch(&self) {
        *lock(&self.last) = Instant::now();
    }

    fn last(&self) -> Instant {
        *lock(&self.last)
    }
}

/// One try at the request on one connection: write and read at once. The
/// read buffer is the connection's own, kept between requests: an answer
/// that fits needs no allocation to be read.
async fn attempt(
    stream: &mut super::stream::BackendStream,
    answered: &Answered<'_>,
    req: &mut Request,
    tx: &Sender,
) -> Outcome {
    let super::stream::Split {
        read,
        mut write,
        read_buf,
        silence,
    } = stream.split();
    let mut records = FramedRead::with_capacity(read, RecordCodec, 0);
    // Reclaims the allocation when the last request's chunks are gone.
    read_buf.reserve(READ_CAPACITY);
    std::mem::swap(records.read_buffer_mut(), read_buf);
    let outcome = drive(&mut records, &mut write, silence, answered, req, tx).await;
    std::mem::swap(records.read_buffer_mut(), read_buf);
    if read_buf.capacity() > 2 * READ_CAPACITY {
        // Grown for a large record: an idle connection keeps no more than this.
        *read_buf = BytesMut::new();
    }
    outcome
}

async fn drive<R, W>(
    records: &mut FramedRead<R, RecordCodec>,
    write_half: &mut W,
    silence: Pin<&mut Sleep>,
    answered: &Answered<'_>,
    req: &mut Request,
    tx: &Sender,
) -> Outcome
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let progress = Progress {
        last: Mutex::new(Instant::now()),
        received: AtomicBool::new(false),
        body_consumed: AtomicBool::new(false),
    };
    let (read_timeout, id) = (req.read_timeout, req.id);
    let writer = write_request(write_half, req, &progress);
    let reader = read_response(records, silence, tx, &progress, answered, read_timeout, id);
    tokio::pin!(writer, reader);
    let mut written = None;
    let read_end = loop {
        tokio::select! {
            end = &mut reader => break end,
            end = &mut writer, if written.is_none() => match end {
                WriteEnd::Body(err) => return Outcome::Failed(Failure::Body(err)),
                // The backend may have answered and closed early: keep reading.
                other => written = Some(other),
            },
        }
    };
    if let Some(WriteEnd::Backend(err)) = &written {
        tracing::debug!(request = %id, error = %err, "writing to the fastcgi backend failed");
    }
    let all_written = matches!(written, Some(WriteEnd::Done));
    let stale = |err: io::Error| {
        let untouched = !progress.received.load(Relaxed) && !progress.body_consumed.load(Relaxed);
        if untouched && is_disconnect(&err) {
            Outcome::Stale(err)
        } else {
            Outcome::Failed(Failure::Backend(err))
        }
    };
    match read_end {
        ReadEnd::End { end, leftover } => Outcome::Done {
            reusable: all_written
                && !leftover
                && end.protocol_status == protocol_status::REQUEST_COMPLETE,
            end,
        },
        ReadEnd::Eof => stale(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "backend closed the connection before END_REQUEST",
        )),
        ReadEnd::Error(err) => stale(err),
        ReadEnd::Timeout => Outcome::Failed(Failure::Timeout(read_timeout)),
    }
}

/// BEGIN_REQUEST, PARAMS and the start of STDIN in one write, then the rest
/// of the body as it arrives, then the empty STDIN record.
async fn write_request<W: AsyncWrite + Unpin>(
    out: &mut W,
    req: &mut Request,
    progress: &Progress,
) -> WriteEnd {
    if let Err(err) = out.write_all(&req.head).await {
        return WriteEnd::Backend(err);
    }
    progress.touch();
    if req.body.is_none() {
        return WriteEnd::Done;
    }
    // Boxed: most requests have no more body, and this loop's state inline
    // would push the exchange's future past the allocator's small sizes.
    Box::pin(write_body(out, req, progress)).await
}

/// The rest of the body as it arrives, then the empty STDIN record.
async fn write_body<W: AsyncWrite + Unpin>(
    out: &mut W,
    req: &mut Request,
    progress: &Progress,
) -> WriteEnd {
    let Some(body) = req.body.as_mut() else {
        return WriteEnd::Done;
    };
    let mut buf = BytesMut::new();
    loop {
        let data = match body.frame().await {
            None => break,
            Some(Err(err)) => return WriteEnd::Body(err),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) if !data.is_empty() => data,
                _ => continue,
            },
        };
        progress.body_consumed.store(true, Relaxed);
        progress.touch();
        buf.clear();
        record::put_stream(&mut buf, kind::STDIN, REQUEST_ID, &data);
        if let Err(err) = out.write_all(&buf).await {
            return WriteEnd::Backend(err);
        }
        progress.touch();
    }
    req.body = None;
    buf.clear();
    record::put_record(&mut buf, kind::STDIN, REQUEST_ID, b"");
    // Were this attempt retried, its first write must now end STDIN.
    req.head.extend_from_slice(&buf);
    match out.write_all(&buf).await {
        Ok(()) => WriteEnd::Done,
        Err(err) => WriteEnd::Backend(err),
    }
}

/// Read records until END_REQUEST: STDOUT to the handler, STDERR to the log.
async fn read_response<R: AsyncRead + Unpin>(
    records: &mut FramedRead<R, RecordCodec>,
    mut silence: Pin<&mut Sleep>,
    tx: &Sender,
    progress: &Progress,
    answered: &Answered<'_>,
    read_timeout: Duration,
    id: RequestId,
) -> ReadEnd {
    // The connection's timer, moved only when it fires early: progress
    // pushes the deadline back without touching the timer wheel.
    silence.as_mut().reset(progress.last() + read_timeout);
    loop {
        let next = tokio::select! {
            next = records.next() => next,
            () = &mut silence => {
                let deadline = progress.last() + read_timeout;
                if deadline > Instant::now() {
                    silence.as_mut().reset(deadline);
                    continue;
                }
                return ReadEnd::Timeout;
            }
        };
        let rec = match next {
            None => return ReadEnd::Eof,
            Some(Err(err)) => return ReadEnd::Error(err),
            Some(Ok(rec)) => rec,
        };
        progress.touch();
        if rec.request_id == MANAGEMENT_ID && rec.kind >= kind::GET_VALUES {
            continue; // management answers carry no part of this response
        }
        if rec.request_id != REQUEST_ID {
            let why = format!(
                "record for request id {}, expected {REQUEST_ID}",
                rec.request_id
            );
            return ReadEnd::Error(record::malformed(why));
        }
        progress.received.store(true, Relaxed);
        answered.mark();
        match rec.kind {
            kind::STDOUT if rec.content.is_empty() => {}
            kind::STDOUT => {
                tx.send(Event::Stdout(rec.content)).await;
                // Waiting for a slow client is not the backend's silence.
                progress.touch();
            }
            kind::STDERR => log_stderr(id, &rec.content),
            kind::END_REQUEST => {
                return match EndRequest::parse(&rec.content) {
                    Ok(end) => ReadEnd::End {
                        end,
                        leftover: !records.read_buffer().is_empty(),
                    },
                    Err(err) => ReadEnd::Error(err),
                }
            }
            other => {
                let why = format!("unexpected record type {other} in a response");
                return ReadEnd::Error(record::malformed(why));
            }
        }
    }
}

fn is_disconnect(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

/// FCGI_STDERR goes to the error log, a line at a time, with the request id.
fn log_stderr(id: RequestId, content: &[u8]) {
    let text = String::from_utf8_lossy(content);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        tracing::warn!(request = %id, "fastcgi stderr: {}", line.trim_end());
    }
}

#[cfg(test)]
mod tests;
