//! A connection to a backend, TCP or Unix socket, behind one type, with the
//! buffer its answers are read into and the timer that bounds its silences
//! (both kept with the connection between requests: a timer moved later is an
//! atomic store, a new one goes into tokio's timer wheel and out again, ~900
//! instructions a request).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{tcp, unix, TcpStream, UnixStream};
use tokio::time::Sleep;
use tokio_util::either::Either;

use crate::config::BackendAddr;

/// A connected backend socket.
#[derive(Debug)]
pub struct BackendStream {
    socket: Socket,
    read_buf: BytesMut,
    silence: Pin<Box<Sleep>>,
}

/// A connection taken apart for one request.
pub struct Split<'a> {
    pub read: ReadHalf<'a>,
    pub write: WriteHalf<'a>,
    pub read_buf: &'a mut BytesMut,
    /// Reset it to the request's deadline before waiting on it.
    pub silence: Pin<&'a mut Sleep>,
}

#[derive(Debug)]
enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// The reading half of a [`BackendStream`], see [`BackendStream::split`].
pub type ReadHalf<'a> = Either<tcp::ReadHalf<'a>, unix::ReadHalf<'a>>;
/// The writing half of a [`BackendStream`], see [`BackendStream::split`].
pub type WriteHalf<'a> = Either<tcp::WriteHalf<'a>, unix::WriteHalf<'a>>;

impl BackendStream {
    /// Connect within `timeout`. TCP connections get TCP_NODELAY: a request is
    /// written in one or a few buffers, and Nagle's algorithm against the
    /// peer's delayed ACK would otherwise stall each small write by ~40 ms.
    pub async fn connect(addr: &BackendAddr, timeout: Duration) -> io::Result<Self> {
        let connect = async {
            match addr {
                BackendAddr::Tcp(host_port) => {
                    let stream = TcpStream::connect(host_port.as_str()).await?;
                    stream.set_nodelay(true)?;
                    Ok(Socket::Tcp(stream))
                }
                BackendAddr::Unix(path) => Ok(Socket::Unix(UnixStream::connect(path).await?)),
            }
        };
        match tokio::time::timeout(timeout, connect).await {
            Ok(result) => result.map(|socket| BackendStream {
                socket,
                read_buf: BytesMut::new(),
                silence: Box::pin(tokio::time::sleep(Duration::ZERO)),
            }),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connect timed out after {timeout:?}"),
            )),
        }
    }

    /// Halves to read and write with at the same time, and the read buffer.
    /// They borrow the socket: unlike `tokio::io::split`, no allocation per
    /// request and no lock taken on every poll.
    pub fn split(&mut self) -> Split<'_> {
        let (read, write) = match &mut self.socket {
            Socket::Tcp(s) => {
                let (read, write) = s.split();
                (Either::Left(read), Either::Left(write))
            }
            Socket::Unix(s) => {
                let (read, write) = s.split();
                (Either::Right(read), Either::Right(write))
            }
        };
        Split {
            read,
            write,
            read_buf: &mut self.read_buf,
            silence: self.silence.as_mut(),
        }
    }

    /// Write what the socket takes now, without waiting: a last word on a
    /// connection about to close, from code that cannot wait.
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        match &self.socket {
            Socket::Tcp(s) => s.try_write(buf),
            Socket::Unix(s) => s.try_write(buf),
        }
    }

    /// True when an idle connection can no longer be used: the backend closed
    /// it, reset it, or sent something unasked (a connection at rest between
    /// requests has nothing to say). Does not block.
    pub fn is_stale(&self) -> bool {
        let mut probe = [0u8; 1];
        let result = match &self.socket {
            Socket::Tcp(s) => s.try_read(&mut probe),
            Socket::Unix(s) => s.try_read(&mut probe),
        };
        !matches!(result, Err(ref e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

impl AsyncRead for BackendStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().socket {
            Socket::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Socket::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for BackendStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().socket {
            Socket::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Socket::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().socket {
            Socket::Tcp(s) => Pin::new(s).poll_flush(cx),
            Socket::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().socket {
            Socket::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Socket::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn stale_detection() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = BackendAddr::Tcp(listener.local_addr().unwrap().to_string());
        let stream = BackendStream::connect(&addr, Duration::from_secs(2))
            .await
            .unwrap();
        let (mut peer, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!stream.is_stale(), "a quiet open connection is usable");

        peer.write_all(b"x").await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(stream.is_stale(), "unasked data means unknown state");

        let stream = BackendStream::connect(&addr, Duration::from_secs(2))
            .await
            .unwrap();
        let (peer, _) = listener.accept().await.unwrap();
        drop(peer);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(stream.is_stale(), "a closed connection is stale");
    }

    #[tokio::test]
    async fn refused_and_missing_socket_fail() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let err = BackendStream::connect(&BackendAddr::Tcp(addr), Duration::from_secs(2))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        let missing = BackendAddr::Unix("/nonexistent/gatehouse.sock".into());
        assert!(BackendStream::connect(&missing, Duration::from_secs(2))
            .await
            .is_err());
    }
}
