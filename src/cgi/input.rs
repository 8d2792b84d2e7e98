//! The request body on its way to the child's stdin.
//!
//! With a `Content-Length` the body is streamed to stdin as it arrives;
//! without one (chunked, or HTTP/2 DATA without a length) it is spooled
//! first so that CONTENT_LENGTH can be set (RFC 3875 section 4.1.2). The
//! writer runs as its own task, concurrently with the reading of stdout: a
//! program that answers before (or without) reading its input never waits
//! on us, and we never wait on it.

use bytes::Bytes;
use futures_util::StreamExt;
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::request::Parts;
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;
use tokio::process::ChildStdin;
use tokio::time::Instant;

use crate::body::RequestBody;
use crate::error::{msg, Error, ErrorKind};
use crate::gateway::spool::{self, Spooled};

/// The body of one request, ready for stdin.
pub enum Input {
    /// No body: stdin is /dev/null, CONTENT_LENGTH unset.
    Nothing,
    /// A body with a declared length, streamed as it arrives.
    Streamed(RequestBody, u64),
    /// A body read to its end first.
    Spooled(Spooled),
}

impl Input {
    /// CONTENT_LENGTH: `Some` exactly when there is a body.
    pub fn content_length(&self) -> Option<u64> {
        match self {
            Input::Nothing => None,
            Input::Streamed(_, len) => Some(*len),
            Input::Spooled(spooled) => Some(spooled.len()),
        }
    }
}

/// Decide how the body reaches the child, spooling it when it has no length.
/// `deadline` bounds the spooling (a client trickling its upload gets 408).
pub async fn prepare(
    parts: &Parts,
    body: RequestBody,
    max: u64,
    deadline: Instant,
) -> Result<Input, Error> {
    let chunked = parts.headers.contains_key(TRANSFER_ENCODING);
    let declared = match parts.headers.get(CONTENT_LENGTH) {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    Error::downstream(ErrorKind::BadRequest).with_cause(msg("bad Content-Length"))
                })?,
        ),
        None => None,
    };
    if declared.is_some_and(|len| len > max) {
        return Err(Error::downstream(ErrorKind::PayloadTooLarge));
    }
    match declared {
        Some(len) if !chunked => return Ok(Input::Streamed(body, len)),
        None if !chunked && http_body::Body::is_end_stream(&body) => return Ok(Input::Nothing),
        _ => {}
    }
    let spooling = spool::spool(body, spool::MEMORY_LIMIT, max);
    match tokio::time::timeout_at(deadline, spooling).await {
        Ok(spooled) => Ok(Input::Spooled(spooled?)),
        Err(_) => Err(Error::downstream(ErrorKind::RequestTimeout).with_cause(msg(
            "the request body did not arrive within the CGI timeout",
        ))),
    }
}

/// Copy the body to the child's stdin, then close it. A child that exits or
/// closes stdin early (EPIPE) just ends the copy; so does a client whose
/// body breaks off (the child sees a short read).
pub async fn feed(mut stdin: ChildStdin, input: Input) {
    match input {
        Input::Nothing => {}
        Input::Streamed(mut body, _) => {
            while let Some(Ok(frame)) = body.frame().await {
                if let Ok(data) = frame.into_data() {
                    if write(&mut stdin, data).await.is_err() {
                        break;
                    }
                }
            }
        }
        Input::Spooled(spooled) => {
            let mut chunks = spooled.into_stream();
            while let Some(Ok(data)) = chunks.next().await {
                if write(&mut stdin, data).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = stdin.shutdown().await;
}

async fn write(stdin: &mut ChildStdin, data: Bytes) -> std::io::Result<()> {
    stdin.write_all(&data).await
}
