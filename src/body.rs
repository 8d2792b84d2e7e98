//! The response body type shared by every handler, and request-body helpers.
//!
//! Small responses are a single `Bytes` (no allocation for a box, and hyper
//! sees the exact length); everything else is a boxed stream that is polled
//! as the client reads, so backpressure reaches files, pipes and sockets.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use http_body::{Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, StreamBody};

/// Errors a request body can produce (hyper's own, or the size limit).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The request body as handlers see it: already wrapped in the size limit.
pub type RequestBody = UnsyncBoxBody<Bytes, BoxError>;

/// True when a request-body error means "over `max_request_body`".
pub fn is_too_large(err: &BoxError) -> bool {
    err.is::<http_body_util::LengthLimitError>()
}

/// An empty request body (used for re-dispatched local redirects).
pub fn empty_request_body() -> RequestBody {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// The body of every response gatehouse sends.
pub struct Body {
    inner: Inner,
}

enum Inner {
    Full(Option<Bytes>),
    Boxed(UnsyncBoxBody<Bytes, io::Error>),
}

impl Body {
    pub fn empty() -> Self {
        Body {
            inner: Inner::Full(None),
        }
    }

    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Body {
            inner: Inner::Full((!bytes.is_empty()).then_some(bytes)),
        }
    }

    /// A body produced by a stream of chunks, polled only as the client reads.
    pub fn stream<S>(stream: S) -> Self
    where
        S: Stream<Item = io::Result<Bytes>> + Send + 'static,
    {
        let body = StreamBody::new(futures_util::StreamExt::map(stream, |r| r.map(Frame::data)));
        Body {
            inner: Inner::Boxed(body.boxed_unsync()),
        }
    }

    /// Any `http_body::Body` with `Bytes` chunks.
    pub fn from_body<B>(body: B) -> Self
    where
        B: http_body::Body<Data = Bytes, Error = io::Error> + Send + 'static,
    {
        Body {
            inner: Inner::Boxed(body.boxed_unsync()),
        }
    }
}

impl Default for Body {
    fn default() -> Self {
        Body::empty()
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match &mut self.get_mut().inner {
            Inner::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Inner::Boxed(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Full(bytes) => bytes.is_none(),
            Inner::Boxed(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            Inner::Boxed(body) => body.size_hint(),
        }
    }
}
