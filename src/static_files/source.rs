//! Where a file's bytes come from, and the bodies made from them: a small file
//! already in memory, or an open file streamed in 64 KiB chunks as the client
//! reads (memory stays flat for any size; hyper's `send_file` example).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::{stream, StreamExt};

use super::file_stream::read_range;
use super::range::{ByteRange, Piece};
use crate::body::Body;
use crate::late_file::{self, Lane};

/// Files up to this size are read whole in the blocking step; it is also the
/// chunk size of streamed files.
pub const CHUNK: usize = 64 * 1024;

/// Files up to this size are read whole in the lookup's one blocking call
/// (and kept by [`super::cache`]): one trip to the blocking pool instead of
/// one per chunk, and cached copies are shared by every response.
pub const READ_WHOLE: u64 = 256 * 1024;

/// Files from this size on are sent with sendfile(2) from the page cache
/// where the connection takes placeholders ([`late_file`]), even when their
/// content is in memory: copying a 100 KiB body into the socket was a third
/// of the server's CPU time for such a response (lighttpd and nginx send
/// these with sendfile too). Below it, one `writev` of head and body from
/// memory beats a second call and the page-cache probe.
pub const SENDFILE_FROM: u64 = 32 * 1024;

/// The content of a file about to be served.
#[derive(Debug)]
pub enum Source {
    /// Read entirely (small files), and for files of [`SENDFILE_FROM`] bytes
    /// or more the open file, to send from the page cache instead.
    Memory(Bytes, Option<Arc<std::fs::File>>),
    /// Open, positioned at its start.
    File(std::fs::File),
}

/// `len` bytes of `file` from `first`: read as the socket takes it where the
/// connection has a lane, else read in chunks.
fn file_range(
    file: Arc<std::fs::File>,
    first: u64,
    len: u64,
    lane: Option<&Arc<Lane>>,
) -> futures_util::stream::BoxStream<'static, std::io::Result<Bytes>> {
    match lane {
        Some(lane) => late_file::file_chunks(lane.clone(), file, first, len).boxed(),
        None => read_range(file, first, len).boxed(),
    }
}

impl Source {
    /// The whole file (`len` bytes).
    pub fn whole(self, len: u64, lane: Option<&Arc<Lane>>) -> Body {
        match self {
            Source::Memory(bytes, file) => {
                Body::full(zero_copy(file.as_ref(), 0, len, lane).unwrap_or(bytes))
            }
            Source::File(file) => Body::stream(file_range(Arc::new(file), 0, len, lane)),
        }
    }

    /// One range of the file.
    pub fn range(self, range: ByteRange, lane: Option<&Arc<Lane>>) -> Body {
        match self {
            Source::Memory(bytes, file) => Body::full(
                zero_copy(file.as_ref(), range.first, range.size(), lane)
                    .unwrap_or_else(|| slice(&bytes, range)),
            ),
            Source::File(file) => {
                Body::stream(file_range(Arc::new(file), range.first, range.size(), lane))
            }
        }
    }

    /// Literal pieces and ranges of the file in order (a multipart body).
    pub fn pieces(self, pieces: Vec<Piece>, lane: Option<&Arc<Lane>>) -> Body {
        match self {
            Source::Memory(bytes, _) => {
                let mut out = BytesMut::new();
                for piece in &pieces {
                    match piece {
                        Piece::Literal(literal) => out.extend_from_slice(literal),
                        Piece::File(range) => out.extend_from_slice(&slice(&bytes, *range)),
                    }
                }
                Body::full(out.freeze())
            }
            Source::File(file) => {
                let file = Arc::new(file);
                let lane = lane.cloned();
                let parts = stream::iter(pieces).flat_map(move |piece| match piece {
                    Piece::Literal(bytes) => stream::once(async move { Ok(bytes) }).boxed(),
                    Piece::File(range) => {
                        file_range(file.clone(), range.first, range.size(), lane.as_ref())
                    }
                });
                Body::stream(parts)
            }
        }
    }
}

/// A placeholder for `len` bytes of `file` from `offset`: where the
/// connection sends placeholders, the range is [`SENDFILE_FROM`] or more and
/// its pages are in the page cache. `None`: send the copy in memory.
fn zero_copy(
    file: Option<&Arc<std::fs::File>>,
    offset: u64,
    len: u64,
    lane: Option<&Arc<Lane>>,
) -> Option<Bytes> {
    if len < SENDFILE_FROM {
        return None;
    }
    late_file::resident_placeholder(lane?, file?, offset, len)
}

/// Bytes of `range`, clamped to what was read (the file may have shrunk).
fn slice(bytes: &Bytes, range: ByteRange) -> Bytes {
    let len = bytes.len() as u64;
    if len == 0 {
        return Bytes::new();
    }
    let first = range.first.min(len) as usize;
    let end = range.last.saturating_add(1).min(len) as usize;
    bytes.slice(first..end.max(first))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn r(first: u64, last: u64) -> ByteRange {
        ByteRange { first, last }
    }

    async fn collect(body: Body) -> Vec<u8> {
        body.collect().await.unwrap().to_bytes().to_vec()
    }

    fn big_file(len: usize) -> (tempfile::NamedTempFile, Vec<u8>) {
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &data).unwrap();
        (file, data)
    }

    #[tokio::test]
    async fn file_ranges_stream_the_right_bytes() {
        let (tmp, data) = big_file(3 * CHUNK + 17);
        let open = || Source::File(std::fs::File::open(tmp.path()).unwrap());
        assert_eq!(collect(open().whole(data.len() as u64, None)).await, data);
        let range = r(CHUNK as u64 - 3, 2 * CHUNK as u64 + 5);
        let expected = &data[range.first as usize..=range.last as usize];
        assert_eq!(collect(open().range(range, None)).await, expected);
    }

    #[tokio::test]
    async fn file_pieces_interleave_literals_and_ranges() {
        let (tmp, data) = big_file(3 * CHUNK);
        let ranges = [
            r(10, 19),
            r(CHUNK as u64, 2 * CHUNK as u64 + 100),
            r(3 * CHUNK as u64 - 1, 3 * CHUNK as u64 - 1),
        ];
        let pieces = vec![
            Piece::Literal(Bytes::from_static(b"<a>")),
            Piece::File(ranges[0]),
            Piece::File(ranges[1]),
            Piece::Literal(Bytes::from_static(b"<b>")),
            Piece::File(ranges[2]),
            Piece::File(ranges[0]),
        ];
        let mut expected = b"<a>".to_vec();
        let part = |r: ByteRange| &data[r.first as usize..=r.last as usize];
        expected.extend_from_slice(part(ranges[0]));
        expected.extend_from_slice(part(ranges[1]));
        expected.extend_from_slice(b"<b>");
        expected.extend_from_slice(part(ranges[2]));
        expected.extend_from_slice(part(ranges[0]));
        let from_file = Source::File(std::fs::File::open(tmp.path()).unwrap());
        assert_eq!(
            collect(from_file.pieces(pieces.clone(), None)).await,
            expected
        );
        let from_memory = Source::Memory(Bytes::from(data.clone()), None);
        assert_eq!(collect(from_memory.pieces(pieces, None)).await, expected);
    }

    #[test]
    fn memory_slices_clamp() {
        let bytes = Bytes::from_static(b"0123456789");
        assert_eq!(slice(&bytes, r(2, 4)), "234");
        assert_eq!(slice(&bytes, r(8, 20)), "89");
        assert_eq!(slice(&bytes, r(20, 30)), "");
        assert_eq!(slice(&Bytes::new(), r(0, 0)), "");
    }
}
