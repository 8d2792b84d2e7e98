//! File bodies read when the socket can take them, not before.
//!
//! hyper sends a body by queueing the chunks it is given until its write
//! buffer limit (the request-head limit, ~73 KiB here) is reached, so a file
//! streamed through it keeps up to that much plus a chunk in memory per
//! connection: at 1,000 connections downloading large files that was
//! ~180 MB, and a working set far beyond the CPU caches.
//!
//! A file body is made of *placeholder* chunks instead: `Bytes` whose pointer
//! lies in a reserved address range that is mapped read-only and never
//! written, each standing for a range of an open file. hyper queues them like
//! any chunk and passes them to the connection's I/O as `IoSlice`s (its
//! HTTP/1 writer writes vectored and never reads body bytes). [`LateFileIo`],
//! the connection's bottom layer, recognises those addresses and, once the
//! socket is writable, sends the range with sendfile(2): no copy in user
//! space, none in the kernel either (the socket queues the page-cache pages).
//! Memory per connection is a few dozen bytes whatever the file and the
//! connection count.
//!
//! sendfile needs a low not-sent mark on the socket to be fast here (see
//! [`set_not_sent_low_mark`] for why and what was measured).
//!
//! Only where nothing above the socket reads the bytes: plain TCP (TLS
//! encrypts them) and HTTP/1 (the HTTP/2 framer copies small frames), and
//! only for bodies sent as stored (not compressed on the fly). A placeholder
//! that reached anything else would be read as zeros, which is why the
//! mapping is readable at all: reading it is sound, just wrong, and the tests
//! compare every byte of every form of response.

use std::fs::File;
use std::io::{self, IoSlice};
use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// The largest file range one placeholder stands for. Before each is
/// handed to hyper, its pages are checked to be in the page cache (and read
/// in on the blocking pool if not), so the read at send time seldom waits
/// for a disk.
pub const MAX_PLACEHOLDER: u64 = 1 << 20;
/// The per-thread buffer a range is read into and sent from, where the file
/// system cannot splice.
const SEND_BUF: usize = 64 * 1024;
/// The most one write call sends, so one connection with a large socket
/// buffer does not hold the thread long.
const MAX_SEND_PER_CALL: usize = 512 * 1024;
/// The socket's not-sent low mark while it carries files (see
/// [`set_not_sent_low_mark`]): 4-32 KiB measured alike, 64 KiB and more (a
/// loopback segment's size and up) lost half the rate.
const NOT_SENT_LOW_MARK: u32 = 16 * 1024;
/// The reserved address range: several placeholders of one connection can be
/// alive at once (hyper queues the next before the last is sent), and each
/// needs addresses of its own.
const REGION_LEN: usize = 16 * MAX_PLACEHOLDER as usize;

/// The reserved, read-only, never-populated address range (`None` where it
/// could not be mapped, e.g. under a small `ulimit -v`: files are then read
/// and copied as before).
struct Region {
    base: usize,
}

fn region() -> Option<&'static Region> {
    static REGION: OnceLock<Option<Region>> = OnceLock::new();
    REGION
        .get_or_init(|| {
            use rustix::mm::{mmap_anonymous, MapFlags, ProtFlags};
            // SAFETY: a fresh anonymous mapping at an address the kernel
            // chooses; it aliases nothing and is never unmapped.
            let base = unsafe {
                mmap_anonymous(
                    std::ptr::null_mut(),
                    REGION_LEN,
                    ProtFlags::READ,
                    MapFlags::PRIVATE | MapFlags::NORESERVE,
                )
            };
            match base {
                Ok(base) => Some(Region {
                    base: base as usize,
                }),
                Err(e) => {
                    tracing::warn!("no address range for late-read file bodies ({e}); files are streamed in chunks");
                    None
                }
            }
        })
        .as_ref()
}

impl Region {
    fn offset_of(&self, ptr: *const u8) -> Option<usize> {
        (ptr as usize)
            .checked_sub(self.base)
            .filter(|&offset| offset < REGION_LEN)
    }
}

/// One file range a placeholder stands for.
struct Entry {
    id: u64,
    /// Offset of the placeholder in the region.
    start: usize,
    len: usize,
    file: Arc<File>,
    file_offset: u64,
}

#[derive(Default)]
struct LaneState {
    entries: Vec<Entry>,
    next_id: u64,
    /// Where the next placeholder starts in the region.
    cursor: usize,
}

/// The placeholders of one connection, shared by its bodies (which make them)
/// and its [`LateFileIo`] (which sends what they stand for).
#[derive(Default)]
pub struct Lane {
    state: Mutex<LaneState>,
}

impl std::fmt::Debug for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Lane")
    }
}

impl Lane {
    /// A lane when late-read bodies are available in this process.
    pub fn new() -> Option<Arc<Lane>> {
        region().map(|_| Arc::new(Lane::default()))
    }

    fn lock(&self) -> MutexGuard<'_, LaneState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A chunk of `len` bytes (at most [`MAX_PLACEHOLDER`]) standing for
    /// `file` from `file_offset`.
    fn placeholder(self: &Arc<Self>, file: Arc<File>, file_offset: u64, len: usize) -> Bytes {
        let region = region().expect("a lane exists only with a region");
        debug_assert!(len > 0 && len as u64 <= MAX_PLACEHOLDER);
        let (id, start) = {
            let mut state = self.lock();
            if state.cursor + len > REGION_LEN {
                state.cursor = 0;
            }
            let start = state.cursor;
            state.cursor += len;
            let id = state.next_id;
            state.next_id += 1;
            state.entries.push(Entry {
                id,
                start,
                len,
                file,
                file_offset,
            });
            (id, start)
        };
        Bytes::from_owner(Placeholder {
            lane: self.clone(),
            id,
            ptr: (region.base + start) as *const u8,
            len,
        })
    }

    /// The file and offset behind the region offset `at`, and how many bytes
    /// of that range remain from there.
    fn resolve(&self, at: usize) -> Option<(Arc<File>, u64, usize)> {
        let state = self.lock();
        state
            .entries
            .iter()
            .find(|e| e.start <= at && at < e.start + e.len)
            .map(|e| {
                let into = at - e.start;
                (e.file.clone(), e.file_offset + into as u64, e.len - into)
            })
    }
}

/// The owner of a placeholder's `Bytes`: dropping the last clone forgets the
/// file range.
struct Placeholder {
    lane: Arc<Lane>,
    id: u64,
    ptr: *const u8,
    len: usize,
}

// SAFETY: `ptr` points into the process-wide read-only region, which lives
// for the rest of the process and is never written.
unsafe impl Send for Placeholder {}
unsafe impl Sync for Placeholder {}

impl AsRef<[u8]> for Placeholder {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: the range lies inside the mapped, readable region (reads
        // see zeros) and nothing ever writes it.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for Placeholder {
    fn drop(&mut self) {
        self.lane.lock().entries.retain(|e| e.id != self.id);
    }
}

/// `len` bytes of `file` from `first` as placeholder chunks for `lane`'s
/// connection.
pub fn file_chunks(
    lane: Arc<Lane>,
    file: Arc<File>,
    first: u64,
    len: u64,
) -> impl futures_util::Stream<Item = io::Result<Bytes>> + Send + 'static {
    let end = first.saturating_add(len);
    futures_util::stream::try_unfold(first, move |offset| {
        let lane = lane.clone();
        let file = file.clone();
        async move {
            if offset >= end {
                return Ok(None);
            }
            let n = (end - offset).min(MAX_PLACEHOLDER) as usize;
            if !is_cached(&file, offset, n) {
                let file = file.clone();
                tokio::task::spawn_blocking(move || read_in(&file, offset, n))
                    .await
                    .map_err(io::Error::other)??;
            }
            let chunk = lane.placeholder(file, offset, n);
            Ok(Some((chunk, offset + n as u64)))
        }
    })
}

/// A placeholder for `len` bytes of `file` from `offset` (at most
/// [`MAX_PLACEHOLDER`]) if their first and last pages are in the page
/// cache; `None` if not, for callers that hold the bytes in memory too and
/// cannot wait for a disk.
pub fn resident_placeholder(
    lane: &Arc<Lane>,
    file: &Arc<File>,
    offset: u64,
    len: u64,
) -> Option<Bytes> {
    let len = usize::try_from(len)
        .ok()
        .filter(|&n| n > 0 && n as u64 <= MAX_PLACEHOLDER)?;
    is_cached(file, offset, len).then(|| lane.placeholder(file.clone(), offset, len))
}

/// Whether the first and last page of the range are in the page cache
/// (a probe, not a promise: the send-time read copes either way).
fn is_cached(file: &File, offset: u64, len: usize) -> bool {
    let last = offset + len.saturating_sub(1) as u64;
    [offset, last]
        .iter()
        .all(|&at| matches!(read_nowait(file, at, &mut [0u8; 1]), Ok(Some(_))))
}

/// Read the range into the page cache (on the blocking pool).
fn read_in(file: &File, offset: u64, len: usize) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0; SEND_BUF.min(len)];
    let mut done = 0;
    while done < len {
        let want = (len - done).min(buf.len());
        let n = file.read_at(&mut buf[..want], offset + done as u64)?;
        if n == 0 {
            break; // shrank: the send reports it
        }
        done += n;
    }
    Ok(())
}

/// `preadv2(RWF_NOWAIT)`: `Ok(None)` when the data is not cached or the file
/// system cannot say.
fn read_nowait(file: &File, offset: u64, buf: &mut [u8]) -> io::Result<Option<usize>> {
    use rustix::io::{Errno, IoSliceMut, ReadWriteFlags};
    match rustix::io::preadv2(
        file,
        &mut [IoSliceMut::new(buf)],
        offset,
        ReadWriteFlags::NOWAIT,
    ) {
        Ok(n) => Ok(Some(n)),
        Err(Errno::AGAIN | Errno::OPNOTSUPP | Errno::INVAL | Errno::NOSYS) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A TCP stream that sends the file ranges behind placeholder slices and
/// writes everything else as it is.
pub struct LateFileIo {
    inner: TcpStream,
    lane: Arc<Lane>,
    /// Whether the socket's not-sent low mark is set (at its first file
    /// range).
    low_mark_set: bool,
}

impl LateFileIo {
    pub fn new(inner: TcpStream, lane: Arc<Lane>) -> Self {
        LateFileIo {
            inner,
            lane,
            low_mark_set: false,
        }
    }

    /// Send at most `max` bytes of the file range behind region offset `at`.
    fn poll_send_placeholder(
        &mut self,
        cx: &mut Context<'_>,
        at: usize,
        max: usize,
    ) -> Poll<io::Result<usize>> {
        let Some((file, offset, remaining)) = self.lane.resolve(at) else {
            return Poll::Ready(Err(io::Error::other(
                "a file body chunk outlived its file range",
            )));
        };
        let len = remaining.min(max);
        if !self.low_mark_set {
            self.low_mark_set = true;
            set_not_sent_low_mark(&self.inner);
        }
        match ready!(self.poll_send_with(cx, |socket| send_range(socket, &file, offset, len))) {
            Ok(0) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while serving",
            ))),
            result => Poll::Ready(result),
        }
    }

    /// Run the non-blocking `send` once the socket is writable, again
    /// whenever it finds the socket full.
    fn poll_send_with(
        &self,
        cx: &mut Context<'_>,
        mut send: impl FnMut(&TcpStream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.inner.poll_write_ready(cx))?;
            match self.inner.try_io(Interest::WRITABLE, || send(&self.inner)) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                result => return Poll::Ready(result),
            }
        }
    }

    /// Send what comes ahead of a file range (a response head, mostly) with
    /// `MSG_MORE`, so that it leaves in one segment with the range's first
    /// bytes instead of alone: the connection has `TCP_NODELAY`, and a small
    /// response's head sent by itself costs the receiver a wake-up and both
    /// sides a packet. sendfile(2) pushes what is held when it returns.
    fn poll_send_ahead(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        use rustix::net::{SendAncillaryBuffer, SendFlags};
        let flags = SendFlags::MORE | SendFlags::DONTWAIT | SendFlags::NOSIGNAL;
        self.poll_send_with(cx, |socket| {
            rustix::net::sendmsg(socket, bufs, &mut SendAncillaryBuffer::default(), flags)
                .map_err(io::Error::from)
        })
    }
}

/// Set `TCP_NOTSENT_LOWAT` on a socket about to carry a file, so it counts
/// as writable only while less than [`NOT_SENT_LOW_MARK`] of what it was
/// given is still unsent. Without it each send fills the whole send buffer
/// (megabytes here), and most of that is transmitted later from the
/// *receiver's* acknowledgements, on the receiver's CPU: over loopback at 10
/// connections sendfile(2) then made 180-225 10 MB responses a second where
/// lighttpd, which sends 256 KiB per turn, made 540-650; with the mark,
/// 600-630, and 400-435 at 100 and 1,000 connections (lighttpd 175 and 68,
/// the previous copy from a mapping 318 and 133). It stays set for the
/// connection: responses up to 100 KiB sent from memory measured the same
/// either way.
fn set_not_sent_low_mark(socket: &TcpStream) {
    if let Err(e) = socket2::SockRef::from(socket).set_tcp_notsent_lowat(NOT_SENT_LOW_MARK) {
        tracing::debug!("TCP_NOTSENT_LOWAT not set: {e}");
    }
}

/// Send what the socket takes of the range, at most [`MAX_SEND_PER_CALL`],
/// with sendfile(2): the kernel queues the page-cache pages themselves, no
/// copy at all. Where the file system cannot splice, the range is read piece
/// by piece into a buffer and sent from there. `Ok(0)`: the file ended early
/// (a file that shrank under a send ends the body short; nothing is mapped,
/// so nothing can fault).
fn send_range(socket: &TcpStream, file: &File, offset: u64, len: usize) -> io::Result<usize> {
    use rustix::io::Errno;
    let len = len.min(MAX_SEND_PER_CALL);
    let mut at = offset;
    rustix::fs::sendfile(socket.as_fd(), file, Some(&mut at), len).or_else(|e| match e {
        Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP => send_copied(socket, file, offset, len),
        e => Err(e.into()),
    })
}

thread_local! {
    static SEND_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Read the range piece by piece into this thread's buffer and send each,
/// until the socket is full or the range is sent. Bytes read but not taken
/// by the socket are read again next time. `Ok(0)`: the file ended early.
fn send_copied(socket: &TcpStream, file: &File, offset: u64, limit: usize) -> io::Result<usize> {
    SEND_BUFFER.with(|cell| {
        let mut buf = cell.borrow_mut();
        if buf.len() < SEND_BUF {
            buf.resize(SEND_BUF, 0);
        }
        let mut sent = 0;
        while sent < limit {
            let want = (limit - sent).min(SEND_BUF);
            let at = offset + sent as u64;
            let n = match read_nowait(file, at, &mut buf[..want])? {
                Some(n) => n,
                None => std::os::unix::fs::FileExt::read_at(file, &mut buf[..want], at)?,
            };
            if n == 0 {
                break;
            }
            match rustix::net::send(socket.as_fd(), &buf[..n], rustix::net::SendFlags::DONTWAIT) {
                Ok(m) => {
                    sent += m;
                    if m < n {
                        break;
                    }
                }
                // Report what was sent: a full socket waits for the next
                // call, an error comes back on it.
                Err(_) if sent > 0 => break,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(sent)
    })
}

impl AsyncRead for LateFileIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for LateFileIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let Some(region) = region() else {
            return Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        };
        // Send what comes before the first placeholder as it is; a
        // placeholder in front is sent on its own.
        let first = bufs
            .iter()
            .position(|b| !b.is_empty() && region.offset_of(b.as_ptr()).is_some());
        match first {
            None => Pin::new(&mut this.inner).poll_write_vectored(cx, bufs),
            Some(0) => {
                let at = region.offset_of(bufs[0].as_ptr()).expect("checked");
                this.poll_send_placeholder(cx, at, bufs[0].len())
            }
            Some(k) => this.poll_send_ahead(cx, &bufs[..k]),
        }
    }

    fn is_write_vectored(&self) -> bool {
        // hyper queues body chunks (rather than copying them into its own
        // buffer) only for vectored I/O: placeholders depend on it.
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use std::io::Write;

    #[tokio::test]
    async fn placeholders_resolve_to_their_file_range_and_are_forgotten_when_dropped() {
        let lane = Lane::new().expect("region");
        let mut tmp = tempfile::tempfile().unwrap();
        tmp.write_all(b"0123456789").unwrap();
        let file = Arc::new(tmp);
        let chunks: Vec<Bytes> = file_chunks(lane.clone(), file, 2, 5)
            .map(|c| c.unwrap())
            .collect()
            .await;
        assert_eq!(chunks.len(), 1);
        let region = region().unwrap();
        let at = region.offset_of(chunks[0].as_ptr()).expect("in the region");
        let (_, offset, len) = lane.resolve(at).unwrap();
        assert_eq!((offset, len), (2, 5));
        let (_, offset, len) = lane.resolve(at + 3).unwrap();
        assert_eq!((offset, len), (5, 2));
        drop(chunks);
        assert!(lane.resolve(at).is_none());
    }

    /// A connected pair: what `send_range` writes to the first is read
    /// from the second.
    async fn socket_pair() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (client.unwrap(), accepted.unwrap().0)
    }

    async fn received(mut from: TcpStream, len: usize) -> Vec<u8> {
        use tokio::io::AsyncReadExt;
        let mut got = vec![0; len];
        from.read_exact(&mut got).await.unwrap();
        got
    }

    #[tokio::test]
    async fn ranges_are_sent_spliced_or_copied_byte_for_byte() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut tmp = tempfile::tempfile().unwrap();
        tmp.write_all(&data).unwrap();
        // Not on a page boundary, and longer than one copy buffer.
        let (offset, len) = (5_000u64, 100_000usize);
        let expected = &data[offset as usize..offset as usize + len];
        for spliced in [true, false] {
            let (sender, receiver) = socket_pair().await;
            let reader = tokio::spawn(received(receiver, len));
            let mut sent = 0;
            while sent < len {
                sender.writable().await.unwrap();
                let at = offset + sent as u64;
                let n = if spliced {
                    send_range(&sender, &tmp, at, len - sent)
                } else {
                    send_copied(&sender, &tmp, at, len - sent)
                };
                match n {
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("{e}"),
                }
            }
            assert_eq!(reader.await.unwrap(), expected, "spliced: {spliced}");
        }
    }

    #[tokio::test]
    async fn a_connection_sends_placeholders_as_their_file_bytes_under_the_low_mark() {
        use tokio::io::AsyncWriteExt;
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 241) as u8).collect();
        let mut tmp = tempfile::tempfile().unwrap();
        tmp.write_all(&data).unwrap();
        let lane = Lane::new().expect("region");
        let chunks: Vec<Bytes> = file_chunks(lane.clone(), Arc::new(tmp), 7, 150_000)
            .map(|c| c.unwrap())
            .collect()
            .await;
        let (sender, receiver) = socket_pair().await;
        let reader = tokio::spawn(received(receiver, 4 + 150_000));
        let mut io = LateFileIo::new(sender, lane);
        let unset = socket2::SockRef::from(&io.inner)
            .tcp_notsent_lowat()
            .unwrap();
        assert_ne!(unset, NOT_SENT_LOW_MARK);
        io.write_all(b"head").await.unwrap();
        for chunk in &chunks {
            io.write_all(chunk).await.unwrap();
        }
        io.flush().await.unwrap();
        let got = reader.await.unwrap();
        assert_eq!(&got[..4], b"head");
        assert!(got[4..] == data[7..150_007], "file bytes differ");
        let set = socket2::SockRef::from(&io.inner)
            .tcp_notsent_lowat()
            .unwrap();
        assert_eq!(set, NOT_SENT_LOW_MARK);
    }

    #[tokio::test]
    async fn large_ranges_are_split_and_placeholders_do_not_overlap() {
        let lane = Lane::new().expect("region");
        let file = Arc::new(tempfile::tempfile().unwrap());
        let len = 2 * MAX_PLACEHOLDER + 10;
        let chunks: Vec<Bytes> = file_chunks(lane.clone(), file, 0, len)
            .map(|c| c.unwrap())
            .collect()
            .await;
        let sizes: Vec<u64> = chunks.iter().map(|c| c.len() as u64).collect();
        assert_eq!(sizes, [MAX_PLACEHOLDER, MAX_PLACEHOLDER, 10]);
        let region = region().unwrap();
        for (i, chunk) in chunks.iter().enumerate() {
            let at = region.offset_of(chunk.as_ptr()).unwrap();
            let (_, offset, _) = lane.resolve(at).unwrap();
            assert_eq!(offset, i as u64 * MAX_PLACEHOLDER);
        }
    }
}
