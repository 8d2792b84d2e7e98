//! The gzip and brotli encoders, and a stream adapter that compresses a body
//! chunk by chunk: memory stays bounded (the encoder's window plus one
//! chunk) whatever the size, and larger chunks are compressed on the
//! blocking pool so the runtime's threads are never held for milliseconds.

use std::io::{self, Write};

use bytes::Bytes;
use futures_util::{stream, Stream, StreamExt};

use super::Encoding;

/// Chunks at least this large are compressed with `spawn_blocking`; smaller
/// ones (a CGI program's lines) cost less than the hand-off.
const BLOCKING_FROM: usize = 16 * 1024;

/// Brotli window: 2^20 bytes. The default (2^22) quadruples the memory per
/// response for a gain of a few per cent on large files.
const BROTLI_WINDOW_BITS: u32 = 20;

/// One response's encoder.
pub struct Compressor {
    inner: Inner,
}

enum Inner {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
}

impl Compressor {
    /// `level`: gzip 1 to 9, brotli quality 0 to 11.
    pub fn new(encoding: Encoding, level: u32) -> Self {
        let inner = match encoding {
            Encoding::Gzip => Inner::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(level.min(9)),
            )),
            Encoding::Brotli => Inner::Brotli(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                4096,
                level.min(11),
                BROTLI_WINDOW_BITS,
            ))),
        };
        Compressor { inner }
    }

    /// Feed `data`; returns what the encoder has produced so far (often
    /// nothing: it emits in blocks).
    pub fn write(&mut self, data: &[u8]) -> io::Result<Bytes> {
        match &mut self.inner {
            Inner::Gzip(e) => {
                e.write_all(data)?;
                Ok(take(e.get_mut()))
            }
            Inner::Brotli(e) => {
                e.write_all(data)?;
                Ok(take(e.get_mut()))
            }
        }
    }

    /// Everything written so far, decodable now (a sync flush): for
    /// streamed program output that the client should see as it comes.
    pub fn flush(&mut self) -> io::Result<Bytes> {
        match &mut self.inner {
            Inner::Gzip(e) => {
                e.flush()?;
                Ok(take(e.get_mut()))
            }
            Inner::Brotli(e) => {
                e.flush()?;
                Ok(take(e.get_mut()))
            }
        }
    }

    /// End the stream: the remaining output and the trailer.
    pub fn finish(self) -> io::Result<Bytes> {
        match self.inner {
            Inner::Gzip(e) => e.finish().map(Bytes::from),
            Inner::Brotli(e) => Ok(Bytes::from(e.into_inner())),
        }
    }
}

fn take(buffer: &mut Vec<u8>) -> Bytes {
    Bytes::from(std::mem::take(buffer))
}

/// Compress a whole small body at once.
pub fn compress_all(encoding: Encoding, level: u32, data: &[u8]) -> io::Result<Bytes> {
    let mut compressor = Compressor::new(encoding, level);
    let head = compressor.write(data)?;
    let tail = compressor.finish()?;
    let mut out = Vec::with_capacity(head.len() + tail.len());
    out.extend_from_slice(&head);
    out.extend_from_slice(&tail);
    Ok(Bytes::from(out))
}

/// The compressed form of `input`, produced as `input` is polled.
/// `flush_each`: flush after every input chunk, so that a streaming program's
/// output reaches the client without waiting for the encoder's blocks.
pub fn compress_stream<S>(
    input: S,
    compressor: Compressor,
    flush_each: bool,
) -> impl Stream<Item = io::Result<Bytes>> + Send
where
    S: Stream<Item = io::Result<Bytes>> + Send + Unpin + 'static,
{
    let state = Some((input, compressor));
    stream::try_unfold(state, move |state| async move {
        let Some((mut input, mut compressor)) = state else {
            return Ok(None);
        };
        loop {
            let Some(chunk) = input.next().await else {
                let tail = compressor.finish()?;
                return Ok(Some((tail, None)));
            };
            let chunk = chunk?;
            let (back, out) = if chunk.len() >= BLOCKING_FROM {
                tokio::task::spawn_blocking(move || {
                    let out = encode(&mut compressor, &chunk, flush_each);
                    (compressor, out)
                })
                .await
                .map_err(io::Error::other)?
            } else {
                let out = encode(&mut compressor, &chunk, flush_each);
                (compressor, out)
            };
            compressor = back;
            let out = out?;
            if !out.is_empty() {
                return Ok(Some((out, Some((input, compressor)))));
            }
        }
    })
}

fn encode(compressor: &mut Compressor, chunk: &[u8], flush: bool) -> io::Result<Bytes> {
    let written = compressor.write(chunk)?;
    if !flush {
        return Ok(written);
    }
    let flushed = compressor.flush()?;
    if written.is_empty() {
        return Ok(flushed);
    }
    let mut out = Vec::with_capacity(written.len() + flushed.len());
    out.extend_from_slice(&written);
    out.extend_from_slice(&flushed);
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::compress::tests::decode;

    fn text(len: usize) -> Vec<u8> {
        let words = ["alpha ", "beta ", "gamma\n", "delta ", "epsilon "];
        let mut out = Vec::new();
        let mut i = 0usize;
        while out.len() < len {
            out.extend_from_slice(words[i % words.len()].as_bytes());
            i = i.wrapping_mul(31).wrapping_add(7) % 1009;
        }
        out.truncate(len);
        out
    }

    #[test]
    fn whole_bodies_round_trip() {
        for encoding in [Encoding::Gzip, Encoding::Brotli] {
            for len in [0, 1, 1000, 70_000] {
                let data = text(len);
                let packed = compress_all(encoding, 6, &data).unwrap();
                assert_eq!(decode(encoding, &packed), data, "{encoding:?} {len}");
                if len >= 1000 {
                    assert!(packed.len() < data.len() / 2, "{encoding:?} {len}");
                }
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn streams_round_trip_with_small_and_large_chunks() {
        let data = text(300_000);
        for encoding in [Encoding::Gzip, Encoding::Brotli] {
            for flush in [false, true] {
                let chunks: Vec<io::Result<Bytes>> = data
                    .chunks(40_000)
                    .flat_map(|c| {
                        let (a, b) = c.split_at(100);
                        [Ok(Bytes::copy_from_slice(a)), Ok(Bytes::copy_from_slice(b))]
                    })
                    .collect();
                let input = stream::iter(chunks);
                let out: Vec<Bytes> = compress_stream(input, Compressor::new(encoding, 4), flush)
                    .map(|r| r.unwrap())
                    .collect()
                    .await;
                assert!(out.iter().all(|c| !c.is_empty()));
                let packed: Vec<u8> = out.concat();
                assert_eq!(decode(encoding, &packed), data, "{encoding:?} {flush}");
            }
        }
    }

    #[tokio::test]
    async fn flushing_makes_each_chunk_decodable_at_once() {
        for encoding in [Encoding::Gzip, Encoding::Brotli] {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<io::Result<Bytes>>();
            let input = tokio_stream_from(rx);
            let mut out = Box::pin(compress_stream(input, Compressor::new(encoding, 4), true));
            tx.send(Ok(Bytes::from_static(b"first line\n"))).unwrap();
            let first = out.next().await.unwrap().unwrap();
            // A streaming decoder gets the line before the stream ends.
            let mut partial = Vec::new();
            match encoding {
                Encoding::Gzip => {
                    let mut d = flate2::read::GzDecoder::new(&first[..]);
                    let mut buf = [0u8; 64];
                    let n = d.read(&mut buf).unwrap();
                    partial.extend_from_slice(&buf[..n]);
                }
                Encoding::Brotli => {
                    let mut d = brotli::Decompressor::new(&first[..], 4096);
                    let mut buf = [0u8; 64];
                    let n = d.read(&mut buf).unwrap();
                    partial.extend_from_slice(&buf[..n]);
                }
            }
            assert_eq!(partial, b"first line\n", "{encoding:?}");
            drop(tx);
            let rest: Vec<Bytes> = out.map(|r| r.unwrap()).collect().await;
            let mut all = first.to_vec();
            all.extend(rest.concat());
            assert_eq!(decode(encoding, &all), b"first line\n");
        }
    }

    fn tokio_stream_from(
        mut rx: tokio::sync::mpsc::UnboundedReceiver<io::Result<Bytes>>,
    ) -> impl Stream<Item = io::Result<Bytes>> + Send + Unpin {
        Box::pin(stream::poll_fn(move |cx| rx.poll_recv(cx)))
    }
}
