//! Spooling a request body without a length (memory, then a temp file).
//!
//! RFC 3875 section 4.1.2 makes CONTENT_LENGTH the only way a CGI program
//! learns where the body ends, and FastCGI applications (PHP) read it too. A
//! chunked (or HTTP/2 length-less) body is therefore read completely first:
//! into memory up to [`MEMORY_LIMIT`], then into an unnamed temp file that
//! disappears with its descriptor, never past `max_request_body`.

use std::io::{self, SeekFrom};

use bytes::{Bytes, BytesMut};
use futures_util::stream::{self, BoxStream, StreamExt};
use http_body_util::BodyExt;
use tokio::fs::File;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use tokio_util::io::ReaderStream;

use crate::body::{is_too_large, BoxError, RequestBody};
use crate::error::{Error, ErrorKind};

/// Bodies up to this size stay in memory.
pub const MEMORY_LIMIT: usize = 1 << 20;
/// Read size when streaming a spooled file back.
const READ_CHUNK: usize = 64 * 1024;

/// A request body read to its end, with its exact length.
#[derive(Debug)]
pub struct Spooled {
    len: u64,
    store: Store,
}

#[derive(Debug)]
enum Store {
    Memory(Vec<Bytes>),
    /// Positioned at its start.
    File(File),
}

impl Spooled {
    /// The exact length of the body (CONTENT_LENGTH).
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when the body went to a temp file.
    pub fn on_disk(&self) -> bool {
        matches!(self.store, Store::File(_))
    }

    /// The body again, as a stream of chunks.
    pub fn into_stream(self) -> BoxStream<'static, io::Result<Bytes>> {
        match self.store {
            Store::Memory(chunks) => stream::iter(chunks.into_iter().map(Ok)).boxed(),
            Store::File(file) => ReaderStream::with_capacity(file, READ_CHUNK).boxed(),
        }
    }
}

/// Read `body` to its end, keeping at most `memory_limit` bytes in memory and
/// refusing more than `max` bytes in all (413).
pub async fn spool(mut body: RequestBody, memory_limit: usize, max: u64) -> Result<Spooled, Error> {
    let mut memory: Vec<Bytes> = Vec::new();
    let mut file: Option<File> = None;
    let mut len: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(body_error)?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers: nothing to spool
        };
        len += data.len() as u64;
        if len > max {
            return Err(too_large());
        }
        if let Some(file) = file.as_mut() {
            file.write_all(&data).await.map_err(temp_error)?;
        } else if len > memory_limit as u64 {
            let mut f = temp_file().await?;
            for chunk in memory.drain(..) {
                f.write_all(&chunk).await.map_err(temp_error)?;
            }
            f.write_all(&data).await.map_err(temp_error)?;
            file = Some(f);
        } else if !data.is_empty() {
            memory.push(data);
        }
    }
    let store = match file {
        Some(mut f) => {
            f.flush().await.map_err(temp_error)?;
            f.seek(SeekFrom::Start(0)).await.map_err(temp_error)?;
            Store::File(f)
        }
        None => Store::Memory(coalesce(memory)),
    };
    Ok(Spooled { len, store })
}

/// The error for a request body that failed while being read: over the
/// limit (413), or broken or abandoned by the client (400, nobody may hear it).
pub fn body_error(err: BoxError) -> Error {
    if is_too_large(&err) {
        return too_large().with_cause(err);
    }
    Error::downstream(ErrorKind::BadRequest).with_cause(err)
}

fn too_large() -> Error {
    Error::downstream(ErrorKind::PayloadTooLarge)
}

fn temp_error(err: io::Error) -> Error {
    Error::internal(format!("spooling the request body to a temp file: {err}"))
}

async fn temp_file() -> Result<File, Error> {
    let file = tokio::task::spawn_blocking(tempfile::tempfile)
        .await
        .map_err(|e| Error::internal(format!("creating a temp file: {e}")))?
        .map_err(temp_error)?;
    Ok(File::from_std(file))
}

/// Many small frames (a chunked upload in 10-byte pieces) become one buffer.
fn coalesce(chunks: Vec<Bytes>) -> Vec<Bytes> {
    if chunks.len() <= 1 {
        return chunks;
    }
    let total = chunks.iter().map(Bytes::len).sum();
    let mut all = BytesMut::with_capacity(total);
    for chunk in chunks {
        all.extend_from_slice(&chunk);
    }
    vec![all.freeze()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Frame;
    use http_body_util::{Limited, StreamBody};

    fn body_of(chunks: Vec<&'static [u8]>) -> RequestBody {
        let frames = chunks
            .into_iter()
            .map(|c| Ok::<_, BoxError>(Frame::data(Bytes::from_static(c))));
        StreamBody::new(stream::iter(frames)).boxed_unsync()
    }

    async fn read_back(spooled: Spooled) -> Vec<u8> {
        let mut out = Vec::new();
        let mut s = spooled.into_stream();
        while let Some(chunk) = s.next().await {
            out.extend_from_slice(&chunk.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn small_bodies_stay_in_memory() {
        let spooled = spool(body_of(vec![b"ab", b"", b"cd"]), 16, 100)
            .await
            .unwrap();
        assert_eq!(spooled.len(), 4);
        assert!(!spooled.on_disk());
        assert_eq!(read_back(spooled).await, b"abcd");

        let spooled = spool(body_of(vec![]), 16, 100).await.unwrap();
        assert!(spooled.is_empty());
        assert_eq!(read_back(spooled).await, b"");
    }

    #[tokio::test]
    async fn large_bodies_go_to_disk() {
        let spooled = spool(body_of(vec![b"0123456789", b"abcdefghij", b"XYZ"]), 16, 100)
            .await
            .unwrap();
        assert_eq!(spooled.len(), 23);
        assert!(spooled.on_disk());
        assert_eq!(read_back(spooled).await, b"0123456789abcdefghijXYZ");
    }

    #[tokio::test]
    async fn over_the_limit_is_413() {
        let err = spool(body_of(vec![b"0123456789", b"0123456789"]), 4, 15)
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::PayloadTooLarge);
        // Exactly at the limit is fine.
        let ok = spool(body_of(vec![b"0123456789", b"01234"]), 4, 15)
            .await
            .unwrap();
        assert_eq!(ok.len(), 15);
    }

    #[tokio::test]
    async fn hyper_limit_error_is_413_and_others_400() {
        let limited = Limited::new(body_of(vec![b"0123456789"]), 5);
        let err = spool(limited.boxed_unsync(), 4, 100).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::PayloadTooLarge);

        let broken = StreamBody::new(stream::iter(vec![Err::<Frame<Bytes>, BoxError>(
            "connection reset".into(),
        )]));
        let err = spool(broken.boxed_unsync(), 4, 100).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadRequest);
    }
}
