//! The body of a CGI or FastCGI response, framed as Apache and nginx frame
//! it: by the program's `Content-Length` when it declared one (or the length
//! of its whole output, when all of it came with the head), chunked
//! otherwise.
//!
//! The declared length is the client's framing, so the program is held to
//! it: bytes past it are dropped (and logged), and output that ends short of
//! it ends the body with an error, which makes hyper abort the connection
//! rather than leave the client waiting for bytes that never come. Neither
//! can desynchronise a kept-alive connection.
//!
//! hyper stops polling a body once its length is sent, but the program's
//! output is not over until it ends: a FastCGI connection goes back to its
//! pool only after END_REQUEST, and a CGI program that is still writing
//! must not be killed for it. So the rest is read here when it is already
//! there, and otherwise in a task of its own.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http::header::{HeaderValue, CONTENT_LENGTH};
use http::{HeaderMap, Method, StatusCode};
use http_body::{Frame, SizeHint};

/// Whether a response to `method` with `status` carries a body: not for
/// HEAD, 204 or 304 (RFC 9110 sections 9.3.2, 15.3.5, 15.4.5).
pub fn sends_body(method: &Method, status: StatusCode) -> bool {
    method != Method::HEAD && status != StatusCode::NO_CONTENT && status != StatusCode::NOT_MODIFIED
}

/// A HEAD response states the length the program declared: the length a GET
/// would have had (RFC 9110 section 8.6).
pub fn bodiless_length(
    headers: &mut HeaderMap,
    method: &Method,
    status: StatusCode,
    declared: Option<u64>,
) {
    if let (true, Some(len)) = (method == Method::HEAD, declared) {
        if status != StatusCode::NO_CONTENT && status != StatusCode::NOT_MODIFIED {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
        }
    }
}

/// The response body of a program's output `S` (after the head).
pub struct ProgramBody<S>
where
    S: Stream<Item = io::Result<Bytes>> + Unpin + Send + 'static,
{
    /// `None` once the output ended, or was handed to a draining task.
    output: Option<S>,
    /// Bytes still owed under the declared length; `None`: no length.
    remaining: Option<u64>,
    /// The output ended this many bytes short; the error is given on the
    /// next poll, so hyper first sends what it has (see `poll_frame`).
    short: Option<u64>,
}

impl<S> ProgramBody<S>
where
    S: Stream<Item = io::Result<Bytes>> + Unpin + Send + 'static,
{
    /// `length`: what the program declared, or what the whole output is.
    pub fn new(output: S, length: Option<u64>) -> Self {
        ProgramBody {
            output: Some(output),
            remaining: length,
            short: None,
        }
    }

    /// The declared length is sent: read what is left of the output now if
    /// it is there, else in the background (see the module docs).
    fn finish(&mut self, cx: &mut Context<'_>, excess: u64) {
        let Some(mut output) = self.output.take() else {
            return;
        };
        let mut excess = Excess(excess);
        loop {
            match output.poll_next_unpin(cx) {
                Poll::Ready(None) | Poll::Ready(Some(Err(_))) => return,
                Poll::Ready(Some(Ok(extra))) if excess.add(extra.len()) => {}
                Poll::Ready(Some(Ok(_))) => return,
                Poll::Pending => return drain(output, excess),
            }
        }
    }
}

/// Most output read past a declared length before the program is taken to
/// be broken and its output dropped (which stops it): reading on would only
/// burn CPU for bytes nobody gets.
const EXCESS_LIMIT: u64 = 1 << 20;

/// Bytes written past the declared length, logged once when the output is
/// done with.
struct Excess(u64);

impl Excess {
    /// Count `bytes` more; false once past [`EXCESS_LIMIT`].
    fn add(&mut self, bytes: usize) -> bool {
        self.0 += bytes as u64;
        self.0 <= EXCESS_LIMIT
    }
}

impl Drop for Excess {
    fn drop(&mut self) {
        if self.0 > EXCESS_LIMIT {
            tracing::warn!(
                bytes = self.0,
                "a CGI or FastCGI program wrote over 1 MiB more than its Content-Length; its output was dropped"
            );
        } else if self.0 > 0 {
            tracing::warn!(
                bytes = self.0,
                "a CGI or FastCGI program wrote more than its Content-Length; the excess was dropped"
            );
        }
    }
}

impl<S> Drop for ProgramBody<S>
where
    S: Stream<Item = io::Result<Bytes>> + Unpin + Send + 'static,
{
    /// A body of declared length 0 is never polled; any other body dropped
    /// before its end means the client left, and the output is dropped with
    /// it (which stops the program).
    fn drop(&mut self) {
        if self.remaining == Some(0) {
            if let Some(output) = self.output.take() {
                drain(output, Excess(0));
            }
        }
    }
}

impl<S> http_body::Body for ProgramBody<S>
where
    S: Stream<Item = io::Result<Bytes>> + Unpin + Send + 'static,
{
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        if let Some(short) = this.short.take() {
            return Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the program's output ended {short} bytes short of its Content-Length"),
            ))));
        }
        if this.remaining == Some(0) {
            this.finish(cx, 0);
            return Poll::Ready(None);
        }
        let Some(output) = this.output.as_mut() else {
            return Poll::Ready(None);
        };
        let item = ready!(output.poll_next_unpin(cx));
        let mut chunk = match item {
            Some(Ok(chunk)) => chunk,
            Some(Err(err)) => {
                this.output = None;
                return Poll::Ready(Some(Err(err)));
            }
            None => {
                this.output = None;
                let Some(short) = this.remaining else {
                    return Poll::Ready(None);
                };
                // An error makes hyper close the connection at once, and
                // drop what it has not written yet: pending once first lets
                // it flush, so the client gets what came, then the close.
                this.short = Some(short);
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        };
        if let Some(remaining) = this.remaining.as_mut() {
            let len = chunk.len() as u64;
            if len < *remaining {
                *remaining -= len;
            } else {
                let excess = len - *remaining;
                chunk.truncate(*remaining as usize);
                *remaining = 0;
                this.finish(cx, excess);
            }
        }
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        (self.output.is_none() && self.short.is_none()) || self.remaining == Some(0)
    }

    fn size_hint(&self) -> SizeHint {
        match self.remaining {
            Some(remaining) => SizeHint::with_exact(remaining),
            None => SizeHint::default(),
        }
    }
}

/// Read the rest of `output` to its end in a task of its own.
fn drain<S>(output: S, mut excess: Excess)
where
    S: Stream<Item = io::Result<Bytes>> + Unpin + Send + 'static,
{
    // Only hyper drops bodies, always inside the runtime; without one there
    // is nothing to drive the output, and dropping it stops the program.
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let mut output = output;
            while let Some(Ok(extra)) = output.next().await {
                if !excess.add(extra.len()) {
                    return;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use futures_util::stream;
    use http_body_util::BodyExt;

    use super::*;

    fn chunks(parts: &[&'static str]) -> impl Stream<Item = io::Result<Bytes>> + Unpin + Send {
        stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p.as_bytes())))
                .collect::<Vec<_>>(),
        )
    }

    /// An output that tells when it was polled to its end (the way a
    /// FastCGI exchange reaches END_REQUEST) and when it was dropped.
    struct Watched<S> {
        inner: S,
        ended: Arc<AtomicBool>,
        dropped: Arc<AtomicBool>,
    }

    impl<S> Watched<S> {
        /// The output and its two flags: ended, dropped.
        fn new(inner: S) -> (Self, Arc<AtomicBool>, Arc<AtomicBool>) {
            let (ended, dropped) = (
                Arc::new(AtomicBool::new(false)),
                Arc::new(AtomicBool::new(false)),
            );
            let watched = Watched {
                inner,
                ended: ended.clone(),
                dropped: dropped.clone(),
            };
            (watched, ended, dropped)
        }
    }

    impl<S: Stream<Item = io::Result<Bytes>> + Unpin> Stream for Watched<S> {
        type Item = io::Result<Bytes>;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            let next = self.inner.poll_next_unpin(cx);
            if let Poll::Ready(None) = next {
                self.ended.store(true, Ordering::SeqCst);
            }
            next
        }
    }

    impl<S> Drop for Watched<S> {
        fn drop(&mut self) {
            self.dropped.store(true, Ordering::SeqCst);
        }
    }

    async fn collect<S>(body: ProgramBody<S>) -> io::Result<Vec<u8>>
    where
        S: Stream<Item = io::Result<Bytes>> + Unpin + Send + 'static,
    {
        Ok(body.collect().await?.to_bytes().to_vec())
    }

    #[tokio::test]
    async fn without_a_length_the_output_is_sent_as_it_comes() {
        let body = ProgramBody::new(chunks(&["ab", "", "cd"]), None);
        assert_eq!(http_body::Body::size_hint(&body).exact(), None);
        assert_eq!(collect(body).await.unwrap(), b"abcd");
    }

    #[tokio::test]
    async fn a_declared_length_is_exact_and_the_output_is_read_to_its_end() {
        let (output, ended, _) = Watched::new(chunks(&["ab", "cd", ""]));
        let mut body = ProgramBody::new(output, Some(4));
        assert_eq!(http_body::Body::size_hint(&body).exact(), Some(4));
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, "ab");
        assert_eq!(http_body::Body::size_hint(&body).exact(), Some(2));
        let second = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(second, "cd");
        // hyper polls no further once the length is sent: the end of the
        // output was read all the same.
        assert!(http_body::Body::is_end_stream(&body));
        assert!(ended.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn bytes_past_the_declared_length_are_dropped() {
        let body = ProgramBody::new(chunks(&["abc", "defgh", "ij"]), Some(5));
        assert_eq!(collect(body).await.unwrap(), b"abcde");
    }

    #[tokio::test]
    async fn output_short_of_the_declared_length_ends_in_an_error() {
        let body = ProgramBody::new(chunks(&["abc"]), Some(5));
        let err = collect(body).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(err.to_string().contains("2 bytes short"), "{err}");
    }

    #[tokio::test]
    async fn output_still_coming_after_the_length_is_read_in_the_background() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<io::Result<Bytes>>();
        let (output, ended, _) = Watched::new(tokio_stream_from(rx));
        tx.send(Ok(Bytes::from_static(b"abc"))).unwrap();
        let mut body = ProgramBody::new(output, Some(3));
        let data = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(data, "abc");
        drop(body);
        assert!(!ended.load(Ordering::SeqCst));
        tx.send(Ok(Bytes::from_static(b"late"))).unwrap();
        drop(tx);
        assert!(
            ends_soon(&ended).await,
            "the rest of the output was not read"
        );
    }

    #[tokio::test]
    async fn a_declared_length_of_zero_still_reads_the_output() {
        let (output, ended, _) = Watched::new(chunks(&["", ""]));
        let body = ProgramBody::new(output, Some(0));
        assert!(http_body::Body::is_end_stream(&body));
        drop(body);
        assert!(ends_soon(&ended).await, "the output was not read");
    }

    #[tokio::test]
    async fn a_body_dropped_before_its_length_drops_the_output() {
        let (output, ended, dropped) = Watched::new(chunks(&["ab", "cd"]));
        let mut body = ProgramBody::new(output, Some(4));
        body.frame().await.unwrap().unwrap();
        drop(body);
        // Dropped there and then (which stops the program), not drained.
        assert!(dropped.load(Ordering::SeqCst));
        assert!(!ended.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn endless_output_past_the_length_is_dropped_after_a_mebibyte() {
        let endless = stream::repeat_with(|| Ok(Bytes::from(vec![b'x'; 64 * 1024])));
        let (output, _, dropped) = Watched::new(endless);
        let mut body = ProgramBody::new(output, Some(3));
        let data = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(data, "xxx");
        assert!(http_body::Body::is_end_stream(&body));
        assert!(dropped.load(Ordering::SeqCst));
    }

    /// Whether `ended` is set within 100 turns of the runtime (a drain task
    /// needs a few).
    async fn ends_soon(ended: &AtomicBool) -> bool {
        for _ in 0..100 {
            if ended.load(Ordering::SeqCst) {
                return true;
            }
            tokio::task::yield_now().await;
        }
        false
    }

    fn tokio_stream_from(
        mut rx: tokio::sync::mpsc::UnboundedReceiver<io::Result<Bytes>>,
    ) -> impl Stream<Item = io::Result<Bytes>> + Unpin + Send {
        Box::pin(stream::poll_fn(move |cx| rx.poll_recv(cx)))
    }
}
