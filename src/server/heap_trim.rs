//! Heap memory handed back to the kernel once a burst of connections ends.
//!
//! Every connection allocates buffers, a task and its futures; when a
//! thousand of them close, glibc keeps the freed memory in its heap (it only
//! returns the top of a heap by itself, and the top is seldom free), so a
//! server that once held 1,000 connections stayed at ~36 MB instead of the
//! ~8 MB it started with. `malloc_trim(0)` returns every free page in every
//! arena (36 → 10 MB measured). It walks the heap under the arena lock (~2
//! ms for that heap), so it runs once per burst: when the open connections
//! fell to half the most open since the last trim, and by at least
//! [`MIN_CLOSED`]. The accept loop records the most open ([`Peak`]), so a
//! burst shorter than the check interval is not missed.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::task::TaskTracker;

/// How often the open connections are counted.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Fewer closed connections leave too little behind to be worth a trim.
const MIN_CLOSED: usize = 64;

/// Whether a trim is due: the open connections fell to half of `peak` or
/// less, and by at least [`MIN_CLOSED`].
fn burst_ended(peak: usize, open: usize) -> bool {
    open <= peak / 2 && peak - open >= MIN_CLOSED
}

/// The most connections open at once since the last trim.
#[derive(Default)]
pub struct Peak(AtomicUsize);

impl Peak {
    /// Record that `open` connections are open now.
    pub fn saw(&self, open: usize) {
        self.0.fetch_max(open, Relaxed);
    }
}

/// Count `connections` every [`CHECK_EVERY`] and trim the heap after each
/// burst, until `shutdown` is signalled.
pub async fn run(connections: TaskTracker, peak: Arc<Peak>, mut shutdown: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(CHECK_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = ticks.tick() => {}
        }
        let open = connections.len();
        if burst_ended(peak.0.load(Relaxed), open) {
            trim();
            peak.0.store(open, Relaxed);
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    let started = std::time::Instant::now();
    // SAFETY: malloc_trim only walks glibc's own heaps, under their locks.
    let released = unsafe { libc::malloc_trim(0) } == 1;
    tracing::debug!(
        released,
        elapsed_us = started.elapsed().as_micros() as u64,
        "heap trimmed after a burst of connections"
    );
}

/// Other allocators (musl's) return free memory by themselves.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trim_is_due_only_when_a_burst_has_ended() {
        // 1,000 connections down to none, or to half.
        assert!(burst_ended(1000, 0));
        assert!(burst_ended(1000, 500));
        // Still busy: fewer than half closed.
        assert!(!burst_ended(1000, 501));
        // Too few connections closed to matter.
        assert!(!burst_ended(100, 40));
        assert!(burst_ended(128, 64));
        assert!(!burst_ended(0, 0));
    }
}
