//! The child's stdout after its head: streamed to the client as written.
//!
//! [`ScriptBody`] owns the [`KillGuard`], so the program's life is tied to
//! the response: when hyper drops the body early (the client went away) the
//! group is killed; when the deadline passes mid-body the group is killed
//! and the body ends with an error, which makes hyper abort the connection
//! instead of ending a truncated response cleanly.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::time::{Instant, Sleep};

use super::process::{KillGuard, Tag};

/// The response body of a CGI program.
pub struct ScriptBody<S> {
    inner: S,
    guard: KillGuard,
    deadline: Pin<Box<Sleep>>,
    tag: Tag,
    done: bool,
}

impl<S> ScriptBody<S> {
    pub fn new(inner: S, guard: KillGuard, deadline: Instant, tag: Tag) -> Self {
        ScriptBody {
            inner,
            guard,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            tag,
            done: false,
        }
    }

    fn timed_out(&mut self) -> Poll<Option<io::Result<Bytes>>> {
        self.done = true;
        self.guard.kill();
        tracing::warn!(id = %self.tag.id, script = %self.tag.script, "CGI program ran past its timeout while sending its body; killed, connection aborted");
        Poll::Ready(Some(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "CGI program timed out",
        ))))
    }
}

impl<S> Stream for ScriptBody<S>
where
    S: Stream<Item = io::Result<Bytes>> + Unpin,
{
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        // The deadline first: a program that never stops writing still stops.
        if this.deadline.as_mut().poll(cx).is_ready() {
            return this.timed_out();
        }
        match this.inner.poll_next_unpin(cx) {
            Poll::Ready(None) => {
                // The reaper kills at the same deadline; an EOF caused by that
                // kill is a timeout, not a complete body.
                if Instant::now() >= this.deadline.deadline() {
                    return this.timed_out();
                }
                this.done = true;
                this.guard.disarm();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                this.done = true;
                tracing::warn!(id = %this.tag.id, script = %this.tag.script, "reading CGI output: {e}");
                Poll::Ready(Some(Err(e)))
            }
            other => other,
        }
    }
}

/// Read and discard the rest of the output (HEAD, 204, 304: no body is sent,
/// but the program may still write one and must not die of EPIPE for it).
pub fn drain<S>(mut rest: S, mut guard: KillGuard, deadline: Instant)
where
    S: Stream<Item = io::Result<Bytes>> + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let drained = tokio::time::timeout_at(deadline, async {
            while let Some(Ok(_)) = rest.next().await {}
        });
        if drained.await.is_ok() {
            guard.disarm();
        }
        // On timeout the guard, dropped armed, kills the group.
    });
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::stream;

    use super::*;

    #[test]
    fn body_is_send() {
        fn send<T: Send + 'static>() {}
        send::<
            ScriptBody<
                crate::gateway::response::Prefixed<
                    tokio_util::io::ReaderStream<tokio::process::ChildStdout>,
                >,
            >,
        >();
    }

    #[tokio::test]
    async fn deadline_ends_an_endless_body_with_an_error() {
        let child = tokio::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id().unwrap();
        let endless = stream::repeat_with(|| Ok(Bytes::from_static(b"x")));
        let guard = super::super::process::test_guard(pid as i32);
        let tag = Tag {
            id: crate::context::RequestId(1),
            script: "/t".into(),
        };
        let deadline = Instant::now() + Duration::from_millis(100);
        let mut body = ScriptBody::new(endless, guard, deadline, tag);
        let mut n = 0u64;
        let err = loop {
            match body.next().await {
                Some(Ok(_)) => n += 1,
                Some(Err(e)) => break e,
                None => panic!("ended without an error"),
            }
            if n % 1000 == 0 {
                tokio::task::yield_now().await;
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(body.next().await.is_none());
        let mut child = child;
        let status = child.wait().await.unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
    }
}
