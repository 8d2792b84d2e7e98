//! Per-connection timing: the header-read timeout (slowloris) and the
//! keep-alive idle timeout, enforced from outside hyper.
//!
//! hyper's own `header_read_timeout` starts when it waits for the next
//! request, so it would also cut idle keep-alive connections at the header
//! timeout. Here the two are separate, as in nginx: a connection waiting for
//! its first request, or with part of a request head received, has
//! `header_read_timeout`; an idle keep-alive connection has
//! `keepalive_timeout`.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nix::time::{clock_gettime, ClockId};

use super::observed::{Observed, ReadObserver};

/// What a connection's watchdog should do now.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Check again after this long.
    Wait(Duration),
    /// A request head is arriving too slowly: drop the connection.
    HeaderTimeout,
    /// Idle past the keep-alive timeout: close gracefully.
    IdleTimeout,
}

/// Milliseconds on the coarse monotonic clock. Read twice per request: the
/// vDSO returns the last tick's time without reading the clock source, and
/// without an `Instant`'s arithmetic (together ~250 instructions a request
/// less). Its resolution, one kernel tick (1-10 ms), is far finer than the
/// timeouts it measures.
fn coarse_ms() -> u64 {
    clock_gettime(ClockId::CLOCK_MONOTONIC_COARSE).map_or(0, |t| {
        (t.tv_sec() as u64) * 1000 + (t.tv_nsec() as u64) / 1_000_000
    })
}

/// Shared between a connection's I/O wrapper, its requests and its watchdog.
pub struct ConnTracker {
    /// [`coarse_ms`] when the connection was accepted.
    start: u64,
    /// Requests whose response body has not been dropped yet.
    in_flight: AtomicUsize,
    /// Milliseconds since `start` when the last request finished (0: none yet).
    last_finished: AtomicU64,
    /// Milliseconds since `start` + 1 of the first byte read while no request
    /// was in flight (0: none).
    first_idle_byte: AtomicU64,
    requests_served: AtomicU64,
    /// Requests started on this connection (their 1-based sequence numbers).
    requests_started: AtomicU64,
    /// The sequence number of the first HTTP/1 request whose head had both
    /// Content-Length and Transfer-Encoding (0: none; see `framing`).
    both_lengths: AtomicU64,
}

impl ConnTracker {
    pub fn new() -> Arc<Self> {
        Arc::new(ConnTracker {
            start: coarse_ms(),
            in_flight: AtomicUsize::new(0),
            last_finished: AtomicU64::new(0),
            first_idle_byte: AtomicU64::new(0),
            requests_served: AtomicU64::new(0),
            requests_started: AtomicU64::new(0),
            both_lengths: AtomicU64::new(0),
        })
    }

    fn now_ms(&self) -> u64 {
        coarse_ms().saturating_sub(self.start)
    }

    /// A request arrived; returns its 1-based sequence number on this connection.
    pub fn request_started(&self) -> u64 {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.first_idle_byte.store(0, Ordering::Release);
        self.requests_started.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// The scanner found both lengths in the head of request `seq`.
    pub fn both_lengths_in(&self, seq: u64) {
        let _ = self
            .both_lengths
            .compare_exchange(0, seq, Ordering::AcqRel, Ordering::Acquire);
    }

    /// True when HTTP/1 request `seq` had both Content-Length and
    /// Transfer-Encoding in its head.
    pub fn had_both_lengths(&self, seq: u64) -> bool {
        self.both_lengths.load(Ordering::Acquire) == seq
    }

    pub fn request_finished(&self) {
        self.requests_served.fetch_add(1, Ordering::Relaxed);
        self.last_finished.store(self.now_ms(), Ordering::Release);
        self.first_idle_byte.store(0, Ordering::Release);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    fn bytes_read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && self.first_idle_byte.load(Ordering::Acquire) == 0
        {
            self.first_idle_byte
                .store(self.now_ms() + 1, Ordering::Release);
        }
    }

    /// Decide, from the connection's state, whether a timeout has passed.
    pub fn verdict(&self, header_timeout: Duration, keepalive: Duration) -> Verdict {
        let tick = Duration::from_millis(250);
        if self.in_flight.load(Ordering::Acquire) > 0 {
            // Handlers have their own timeouts while a request runs.
            return Verdict::Wait(tick.max(Duration::from_secs(1)));
        }
        let now = self.now_ms();
        let first_byte = self.first_idle_byte.load(Ordering::Acquire);
        let (since, limit, verdict) = if first_byte > 0 {
            (first_byte - 1, header_timeout, Verdict::HeaderTimeout)
        } else if self.requests_served.load(Ordering::Relaxed) == 0 {
            // Connected but silent: the first request head is late.
            (0, header_timeout, Verdict::HeaderTimeout)
        } else {
            (
                self.last_finished.load(Ordering::Acquire),
                keepalive,
                Verdict::IdleTimeout,
            )
        };
        let elapsed = Duration::from_millis(now.saturating_sub(since));
        if elapsed >= limit {
            verdict
        } else {
            Verdict::Wait(
                (limit - elapsed)
                    .min(Duration::from_secs(1))
                    .max(Duration::from_millis(10)),
            )
        }
    }
}

/// The socket as the tracker sees it: every read marks activity.
pub type TrackedIo<T> = Observed<T, Arc<ConnTracker>>;

impl ReadObserver for Arc<ConnTracker> {
    fn observe(&mut self, _bytes: &[u8]) {
        self.bytes_read();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: Duration = Duration::from_millis(40);
    const IDLE: Duration = Duration::from_millis(200);
    /// More than one tick of the coarse clock on any kernel (HZ 100 and up).
    const TICK: Duration = Duration::from_millis(20);

    #[test]
    fn silent_new_connection_gets_the_header_timeout() {
        let t = ConnTracker::new();
        assert!(matches!(t.verdict(HEADER, IDLE), Verdict::Wait(_)));
        std::thread::sleep(HEADER + TICK);
        assert_eq!(t.verdict(HEADER, IDLE), Verdict::HeaderTimeout);
    }

    #[test]
    fn in_flight_requests_are_never_timed_out_here() {
        let t = ConnTracker::new();
        t.request_started();
        std::thread::sleep(HEADER + TICK);
        assert!(matches!(t.verdict(HEADER, IDLE), Verdict::Wait(_)));
    }

    #[test]
    fn idle_keepalive_gets_the_longer_timeout_until_a_byte_arrives() {
        let t = ConnTracker::new();
        t.request_started();
        t.request_finished();
        std::thread::sleep(HEADER + TICK);
        assert!(matches!(t.verdict(HEADER, IDLE), Verdict::Wait(_)));
        t.bytes_read();
        std::thread::sleep(HEADER + TICK);
        assert_eq!(t.verdict(HEADER, IDLE), Verdict::HeaderTimeout);
    }

    #[test]
    fn idle_keepalive_times_out() {
        let t = ConnTracker::new();
        t.request_started();
        t.request_finished();
        std::thread::sleep(IDLE + TICK);
        assert_eq!(t.verdict(HEADER, IDLE), Verdict::IdleTimeout);
    }
}
