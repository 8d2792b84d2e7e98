//! Reading a file range as a stream of chunks without a thread hop per chunk.
//!
//! Each chunk is first read on the runtime thread with `preadv2(RWF_NOWAIT)`:
//! the kernel copies what is in the page cache and answers EAGAIN instead of
//! waiting for a disk, so the runtime is never blocked. Only then does the
//! read go to the blocking pool. A served file is nearly always cached, and
//! a hop per 64 KiB chunk was most of the cost of a large download
//! (context switches at the top of the profile).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::{stream, Stream};
use rustix::io::{Errno, IoSliceMut, ReadWriteFlags};

use super::source::CHUNK;

/// `len` bytes of `file` from `first`, in chunks of at most [`CHUNK`] bytes.
/// A file that shrinks meanwhile ends the stream with an error, so the client
/// sees a truncated body rather than a short one passed off as whole.
pub fn read_range(
    file: Arc<File>,
    first: u64,
    len: u64,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    let end = first.saturating_add(len);
    stream::try_unfold(
        (file, first, true),
        move |(file, offset, nowait)| async move {
            if offset >= end {
                return Ok(None);
            }
            let want = (end - offset).min(CHUNK as u64) as usize;
            let (cached, nowait) = if nowait {
                read_cached(&file, offset, want)
            } else {
                (None, false)
            };
            let chunk = match cached {
                Some(chunk) => chunk,
                None => {
                    let file = file.clone();
                    tokio::task::spawn_blocking(move || read_at(&file, offset, want))
                        .await
                        .map_err(io::Error::other)??
                }
            };
            if chunk.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shrank while serving",
                ));
            }
            let next = offset + chunk.len() as u64;
            Ok(Some((chunk, (file, next, nowait))))
        },
    )
}

/// What the page cache holds at `offset` (`None`: not cached, or an error
/// the blocking read will report), and whether to keep trying this way
/// (`false` where the file system does not support RWF_NOWAIT).
fn read_cached(file: &File, offset: u64, want: usize) -> (Option<Bytes>, bool) {
    let mut buf = BytesMut::zeroed(want);
    match rustix::io::preadv2(
        file,
        &mut [IoSliceMut::new(&mut buf)],
        offset,
        ReadWriteFlags::NOWAIT,
    ) {
        Ok(n) => {
            buf.truncate(n);
            (Some(buf.freeze()), true)
        }
        Err(Errno::AGAIN) => (None, true),
        Err(Errno::OPNOTSUPP | Errno::INVAL | Errno::NOSYS) => (None, false),
        Err(_) => (None, true),
    }
}

fn read_at(file: &File, offset: u64, want: usize) -> io::Result<Bytes> {
    let mut buf = vec![0u8; want];
    let n = file.read_at(&mut buf, offset)?;
    buf.truncate(n);
    Ok(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::TryStreamExt;

    #[tokio::test]
    async fn reads_exactly_the_range_in_bounded_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..(3 * CHUNK + 100)).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let file = Arc::new(File::open(&path).unwrap());
        let chunks: Vec<Bytes> = read_range(file.clone(), 10, 2 * CHUNK as u64 + 7)
            .try_collect()
            .await
            .unwrap();
        assert!(chunks.iter().all(|c| c.len() <= CHUNK));
        let joined: Vec<u8> = chunks.concat();
        assert_eq!(joined, data[10..10 + 2 * CHUNK + 7]);
        let empty: Vec<Bytes> = read_range(file, 5, 0).try_collect().await.unwrap();
        assert!(empty.is_empty());
    }

    #[tokio::test]
    async fn a_file_that_shrank_is_an_error_not_a_short_success() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![1u8; 1000]).unwrap();
        let file = Arc::new(File::open(&path).unwrap());
        let result: io::Result<Vec<Bytes>> = read_range(file, 0, 5000).try_collect().await;
        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }
}
