//! Waiting on a connection and, beside it, on what may cut it short (its
//! timer, the shutdown signal) without polling those every time the
//! connection is woken.
//!
//! `select!` polls every branch on every wake-up, and a kept-alive
//! connection is woken two or three times a request: polling a timer and a
//! watch channel that had not fired was ~500 instructions a request, a twentieth
//! of a small static file's. Here they are polled with a waker of their own
//! that notes it was them, so after the first poll they are polled again only
//! when one of them fired.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

/// Which of the two finished first.
pub enum First<M, S> {
    Main(M),
    Side(S),
}

/// One per connection: its waker is handed to the side futures.
pub struct Alarm {
    shared: Arc<Shared>,
    waker: Waker,
}

#[derive(Default)]
struct Shared {
    fired: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Shared {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl Alarm {
    pub fn new() -> Self {
        let shared = Arc::new(Shared::default());
        Alarm {
            waker: Waker::from(shared.clone()),
            shared,
        }
    }

    /// Poll `main` whenever the task is woken and `side` on the first poll
    /// and then only when its own waker fired; ready with whichever finishes
    /// first (`main` when both could).
    pub async fn race<M, S>(
        &self,
        mut main: Pin<&mut M>,
        mut side: Pin<&mut S>,
    ) -> First<M::Output, S::Output>
    where
        M: Future,
        S: Future,
    {
        let mut armed = false;
        poll_fn(|cx| {
            if let Poll::Ready(out) = main.as_mut().poll(cx) {
                return Poll::Ready(First::Main(out));
            }
            // Registered before the flag is read: a firing in between still
            // wakes this task.
            self.shared.task.register(cx.waker());
            if self.shared.fired.swap(false, Ordering::AcqRel) || !armed {
                armed = true;
                let mut side_cx = Context::from_waker(&self.waker);
                if let Poll::Ready(out) = side.as_mut().poll(&mut side_cx) {
                    return Poll::Ready(First::Side(out));
                }
            }
            Poll::Pending
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use super::*;

    /// A future that counts its polls and is ready after `ready_after` of them.
    struct Counted<'a> {
        polls: &'a AtomicUsize,
        ready_after: usize,
    }

    impl Future for Counted<'_> {
        type Output = usize;
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
            let n = self.polls.fetch_add(1, Ordering::Relaxed) + 1;
            if n >= self.ready_after {
                Poll::Ready(n)
            } else {
                cx.waker().wake_by_ref(); // asks to be polled again at once
                Poll::Pending
            }
        }
    }

    #[tokio::test]
    async fn the_side_is_polled_once_while_the_main_future_is_woken_many_times() {
        let alarm = Alarm::new();
        let polls = AtomicUsize::new(0);
        let main = std::pin::pin!(Counted {
            polls: &polls,
            ready_after: 50,
        });
        let side_polls = AtomicUsize::new(0);
        let side = std::pin::pin!(poll_fn(|_| {
            side_polls.fetch_add(1, Ordering::Relaxed);
            Poll::<()>::Pending
        }));
        assert!(matches!(alarm.race(main, side).await, First::Main(50)));
        assert_eq!(side_polls.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn a_side_that_fires_later_ends_the_race() {
        let alarm = Alarm::new();
        let main = std::pin::pin!(std::future::pending::<()>());
        let side = std::pin::pin!(tokio::time::sleep(Duration::from_millis(20)));
        let raced = tokio::time::timeout(Duration::from_secs(5), alarm.race(main, side)).await;
        assert!(matches!(raced, Ok(First::Side(()))));
    }

    #[tokio::test]
    async fn a_shutdown_signal_ends_the_race_while_the_main_future_is_busy() {
        let alarm = Alarm::new();
        let (tx, mut rx) = tokio::sync::watch::channel(false);
        let polls = AtomicUsize::new(0);
        let main = std::pin::pin!(Counted {
            polls: &polls,
            ready_after: usize::MAX,
        });
        let side = std::pin::pin!(rx.changed());
        let signal = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            tx.send(true).unwrap();
            std::future::pending::<()>().await
        };
        let raced = tokio::time::timeout(Duration::from_secs(5), async {
            tokio::select! {
                first = alarm.race(main, side) => first,
                () = signal => unreachable!(),
            }
        })
        .await;
        assert!(matches!(raced, Ok(First::Side(Ok(())))));
    }
}
