//! Connection pools: one per backend, and the choice of backend per request.
//!
//! Each kept-alive php-fpm connection pins a worker, so a backend's busy plus
//! idle connections never exceed its capacity: what it reports through
//! FCGI_GET_VALUES (FCGI_MAX_CONNS), lowered to the route's `max_conns`, or a
//! default when it does not answer. A request prefers an idle connection to a
//! new one, and waits a bounded time for one to free up (then 503) rather than
//! pile onto a saturated backend.
//!
//! A backend whose capacity is guessed (php-fpm answers only
//! FCGI_MPXS_CONNS, flup under Python 3 answers nothing, and the route sets
//! no `max_conns`) can be oversubscribed: a php-fpm worker serves a
//! kept-alive connection until it closes, so a new connection made while all
//! workers are busy waits in the accept backlog behind our own idle ones. So
//! while a new connection has waited [`STALLED_AFTER`] for its first byte,
//! a released connection is closed instead of kept, which frees a worker to
//! accept it, and the pool's ceiling drops to the connections that are being
//! answered (at most once per [`STALLED_AFTER`], so connections in transit
//! are not counted twice). The pool then stops growing past what the backend
//! really serves: no connection closed only to open another that queues
//! again. Not before the stall: closing on every release while a new
//! connection was merely young made flup's pool churn (a connect, a thread
//! and a close per request: flup ran at half its speed).
//!
//! A backend that refuses connections is marked down for a growing back-off
//! (passive health); [`super::upstream`] skips it while it is.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use std::collections::VecDeque;

use tokio::sync::{oneshot, OnceCell};

use super::stream::BackendStream;
use super::values;
use crate::config::BackendAddr;

/// Capacity when the backend does not say and the route does not either.
pub const DEFAULT_CAPACITY: usize = 16;
/// flup reports its file-descriptor limit as FCGI_MAX_CONNS; no backend gets
/// more connections than this without an explicit `max_conns`.
pub const CAPACITY_CEILING: usize = 128;
/// How long FCGI_GET_VALUES may take at most.
const VALUES_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a new connection may wait for its first byte before it is taken
/// to be queued behind our own idle connections at a backend of guessed
/// capacity.
pub const STALLED_AFTER: Duration = Duration::from_millis(100);
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The settings of one backend (merged when several routes name it).
#[derive(Debug, Clone)]
pub struct BackendSettings {
    pub connect_timeout: Duration,
    /// Idle connections kept; 0 = a connection per request, no FCGI_KEEP_CONN.
    pub keepalive: usize,
    pub max_conns: Option<usize>,
    /// Processes sharing the address: a managed group's copies each answer
    /// FCGI_GET_VALUES for themselves (php-cgi says 1), so the group can
    /// serve that many times more. 1 for an external backend.
    pub copies: usize,
}

/// Why no connection could be had from one backend.
#[derive(Debug)]
pub enum CheckoutError {
    /// Connecting failed (refused, missing socket, timeout).
    Connect(io::Error),
    /// Every connection stayed busy for the whole wait.
    Full,
}

#[derive(Default)]
struct Slots {
    idle: Vec<BackendStream>,
    /// Busy plus idle connections, plus those being connected.
    total: usize,
    /// Requests waiting for a connection, oldest first. A released
    /// connection (or a freed slot) goes straight to the oldest, so a request
    /// that has waited is never overtaken by one that just arrived: that
    /// overtaking is what makes the tail latency of a saturated backend long.
    waiters: VecDeque<oneshot::Sender<Handed>>,
}

/// What a waiting request is handed.
enum Handoff {
    /// A kept-alive connection, ready for the next request.
    Conn(BackendStream),
    /// A slot: the request may open a new connection.
    Slot,
}

/// A [`Handoff`] on its way to a waiter. If the waiter gives up after it was
/// sent (its wait timed out, or its client left) and it is never taken, its
/// drop gives it back: a connection or slot is never lost in transit.
struct Handed {
    handoff: Option<Handoff>,
    backend: Arc<Backend>,
}

impl Handed {
    fn take(mut self) -> Handoff {
        self.handoff.take().expect("a handoff is taken once")
    }
}

impl Drop for Handed {
    fn drop(&mut self) {
        if let Some(handoff) = self.handoff.take() {
            self.backend.give_back(handoff);
        }
    }
}

#[derive(Default)]
struct Health {
    failures: u32,
    down_until: Option<Instant>,
}

/// One backend address with its pool.
pub struct Backend {
    addr: BackendAddr,
    settings: BackendSettings,
    slots: Mutex<Slots>,
    capacity: OnceCell<usize>,
    health: Mutex<Health>,
    /// Requests holding or waiting for a connection (for balancing).
    pub(super) outstanding: AtomicUsize,
    /// New connections whose request has had no answer yet (the fast check)
    /// and when each began waiting.
    unanswered: AtomicUsize,
    unanswered_since: Mutex<Vec<Instant>>,
    /// True when neither the backend nor the route gave the capacity.
    capacity_guessed: AtomicBool,
    /// For a guessed capacity: the most connections the backend was seen to
    /// serve at once (lowered on a stall), and when it was last lowered.
    ceiling: AtomicUsize,
    lowered_at: Mutex<Option<Instant>>,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Backend {
    pub fn new(addr: BackendAddr, settings: BackendSettings) -> Arc<Self> {
        Arc::new(Backend {
            addr,
            settings,
            slots: Mutex::default(),
            capacity: OnceCell::new(),
            health: Mutex::default(),
            outstanding: AtomicUsize::new(0),
            unanswered: AtomicUsize::new(0),
            unanswered_since: Mutex::default(),
            capacity_guessed: AtomicBool::new(false),
            ceiling: AtomicUsize::new(usize::MAX),
            lowered_at: Mutex::default(),
        })
    }

    pub fn addr(&self) -> &BackendAddr {
        &self.addr
    }

    pub fn settings(&self) -> &BackendSettings {
        &self.settings
    }

    /// Connections open now (busy and idle).
    pub fn open_connections(&self) -> usize {
        lock(&self.slots).total
    }

    /// Idle connections kept now.
    pub fn idle_connections(&self) -> usize {
        lock(&self.slots).idle.len()
    }

    /// The capacity once known.
    pub fn known_capacity(&self) -> Option<usize> {
        self.capacity.get().copied()
    }

    /// Close the idle connections (shutdown).
    pub fn close_idle(&self) {
        let mut slots = lock(&self.slots);
        let n = slots.idle.len();
        slots.idle.clear();
        slots.total -= n;
    }

    /// The most connections to have open: the capacity, lowered to the
    /// ceiling learnt from stalls.
    fn limit(&self) -> usize {
        self.capacity_or_default()
            .min(self.ceiling.load(Ordering::Relaxed))
            .max(1)
    }

    fn capacity_or_default(&self) -> usize {
        self.capacity.get().copied().unwrap_or(DEFAULT_CAPACITY)
    }

    /// `stalled` of the open connections wait for their first byte: serve
    /// with those that are answered.
    fn lower_ceiling(&self, stalled: usize) {
        {
            let mut lowered_at = lock(&self.lowered_at);
            if lowered_at.is_some_and(|at| at.elapsed() < STALLED_AFTER) {
                return;
            }
            *lowered_at = Some(Instant::now());
        }
        let ceiling = self.open_connections().saturating_sub(stalled).max(1);
        let before = self.ceiling.fetch_min(ceiling, Ordering::Relaxed);
        if ceiling < before && ceiling < self.capacity_or_default() {
            tracing::info!(
                backend = %show(&self.addr), connections = ceiling,
                "fastcgi backend served fewer connections than guessed; pool lowered"
            );
        }
    }

    /// The ceiling in force (`None`: none learnt).
    pub fn learnt_ceiling(&self) -> Option<usize> {
        Some(self.ceiling.load(Ordering::Relaxed)).filter(|&c| c != usize::MAX)
    }

    /// New connections that have waited [`STALLED_AFTER`] or longer for
    /// their first byte.
    fn stalled_connections(&self) -> usize {
        if self.unanswered.load(Ordering::Relaxed) == 0 {
            return 0;
        }
        lock(&self.unanswered_since)
            .iter()
            .filter(|since| since.elapsed() >= STALLED_AFTER)
            .count()
    }

    /// When a backend marked down may be tried again; `None` when it is up.
    pub(super) fn down_until(&self) -> Option<Instant> {
        lock(&self.health)
            .down_until
            .filter(|&until| until > Instant::now())
    }

    fn mark_up(&self) {
        let mut health = lock(&self.health);
        if health.failures > 0 {
            tracing::info!(backend = %show(&self.addr), "fastcgi backend is accepting connections again");
        }
        *health = Health::default();
    }

    fn mark_down(&self, err: &io::Error) {
        let mut health = lock(&self.health);
        let backoff = FIRST_BACKOFF
            .saturating_mul(1 << health.failures.min(10))
            .min(MAX_BACKOFF);
        health.failures += 1;
        health.down_until = Some(Instant::now() + backoff);
        tracing::warn!(backend = %show(&self.addr), error = %err, ?backoff, "fastcgi backend marked down");
    }

    /// Return a connection or a slot: to the oldest waiter still waiting,
    /// else to the idle list (or free the slot). The lock is never held while
    /// sending, since a refused handoff may come straight back here.
    fn give_back(self: &Arc<Self>, mut handoff: Handoff) {
        loop {
            let waiter = {
                let mut slots = lock(&self.slots);
                // Above the limit (the ceiling was lowered): close, and let
                // no one open a replacement.
                if slots.total > self.limit() {
                    slots.total -= 1;
                    return;
                }
                match slots.waiters.pop_front() {
                    Some(waiter) => waiter,
                    None => {
                        match handoff {
                            Handoff::Conn(stream) if slots.idle.len() < self.settings.keepalive => {
                                slots.idle.push(stream)
                            }
                            _ => slots.total -= 1,
                        }
                        return;
                    }
                }
            };
            let handed = Handed {
                handoff: Some(handoff),
                backend: self.clone(),
            };
            match waiter.send(handed) {
                Ok(()) => return,
                Err(returned) => handoff = returned.take(), // that one gave up
            }
        }
    }

    async fn connect(&self) -> io::Result<BackendStream> {
        match BackendStream::connect(&self.addr, self.settings.connect_timeout).await {
            Ok(stream) => {
                self.mark_up();
                Ok(stream)
            }
            Err(err) => {
                self.mark_down(&err);
                Err(err)
            }
        }
    }

    /// The most connections this backend may have open, asked once
    /// (FCGI_GET_VALUES) and remembered. A failed connect is returned and
    /// leaves it unknown, so the next request asks again.
    async fn capacity(&self) -> io::Result<usize> {
        let cap = self
            .capacity
            .get_or_try_init(|| async {
                let stream = self.connect().await?;
                let timeout = VALUES_TIMEOUT.min(self.settings.connect_timeout);
                let reported = match values::query(stream, timeout).await {
                    Ok(v) => v
                        .max_conns
                        .filter(|&n| n > 0)
                        .map(|n| n.saturating_mul(self.settings.copies.max(1))),
                    Err(err) => {
                        tracing::info!(backend = %show(&self.addr), error = %err, "no FCGI_GET_VALUES answer");
                        None
                    }
                };
                let configured = self.settings.max_conns;
                let capacity = match (reported, configured) {
                    (Some(r), Some(c)) => r.min(c),
                    (Some(r), None) => r.min(CAPACITY_CEILING),
                    (None, Some(c)) => c,
                    (None, None) => {
                        self.capacity_guessed.store(true, Ordering::Relaxed);
                        DEFAULT_CAPACITY
                    }
                };
                tracing::info!(
                    backend = %show(&self.addr), ?reported, ?configured, capacity,
                    "fastcgi pool sized"
                );
                Ok::<_, io::Error>(capacity.max(1))
            })
            .await?;
        Ok(*cap)
    }

    /// A connection: an idle one if there is one, a new one while under
    /// capacity, else wait up to `wait` for one to be released.
    pub async fn checkout(self: &Arc<Self>, wait: Duration) -> Result<PooledConn, CheckoutError> {
        let ticket = Outstanding::new(self.clone());
        self.capacity().await.map_err(CheckoutError::Connect)?;
        let waiting = {
            let mut slots = lock(&self.slots);
            // Most recently used first: the likeliest to be alive.
            while let Some(stream) = slots.idle.pop() {
                if stream.is_stale() {
                    slots.total -= 1;
                    continue;
                }
                return Ok(PooledConn::new(ticket, Some(stream), true));
            }
            if slots.total < self.limit() {
                slots.total += 1;
                None
            } else {
                let (tx, rx) = oneshot::channel();
                slots.waiters.push_back(tx);
                Some(rx)
            }
        };
        let handoff = match waiting {
            None => Handoff::Slot,
            Some(rx) => match tokio::time::timeout(wait, rx).await {
                Ok(Ok(handed)) => handed.take(),
                // Timed out (our sender is skipped when its turn comes), or
                // the pool went away.
                _ => return Err(CheckoutError::Full),
            },
        };
        match handoff {
            Handoff::Conn(stream) => Ok(PooledConn::new(ticket, Some(stream), true)),
            Handoff::Slot => {
                // The slot is ours from here; dropping `conn` gives it back
                // even if this future is cancelled mid-connect.
                let mut conn = PooledConn::new(ticket, None, false);
                conn.await_first_byte();
                let stream = self.connect().await.map_err(CheckoutError::Connect)?;
                conn.stream = Some(stream);
                Ok(conn)
            }
        }
    }
}

/// Counts a request against a backend while it holds or waits for a connection.
struct Outstanding(Arc<Backend>);

impl Outstanding {
    fn new(backend: Arc<Backend>) -> Self {
        backend.outstanding.fetch_add(1, Ordering::Relaxed);
        Outstanding(backend)
    }
}

impl Drop for Outstanding {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection checked out of a pool. Dropping it closes the connection and
/// frees its slot; [`PooledConn::release`] keeps it for reuse instead.
pub struct PooledConn {
    ticket: Outstanding,
    stream: Option<BackendStream>,
    reused: bool,
    reusable: bool,
    awaiting_first_byte: AtomicBool,
    awaiting_since: Instant,
}

impl PooledConn {
    fn new(ticket: Outstanding, stream: Option<BackendStream>, reused: bool) -> Self {
        PooledConn {
            ticket,
            stream,
            reused,
            reusable: false,
            awaiting_first_byte: AtomicBool::new(false),
            awaiting_since: Instant::now(),
        }
    }

    fn await_first_byte(&mut self) {
        if !self.awaiting_first_byte.swap(true, Ordering::Relaxed) {
            self.awaiting_since = Instant::now();
            let backend = self.backend();
            lock(&backend.unanswered_since).push(self.awaiting_since);
            backend.unanswered.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn backend(&self) -> &Arc<Backend> {
        &self.ticket.0
    }

    /// True when this connection served an earlier request.
    pub fn reused(&self) -> bool {
        self.reused
    }

    pub fn stream(&self) -> &BackendStream {
        self.stream
            .as_ref()
            .expect("a checked-out connection has a stream")
    }

    /// The stream, and a handle to report the first byte of the answer with.
    pub fn split(&mut self) -> (&mut BackendStream, Answered<'_>) {
        let answered = Answered {
            flag: &self.awaiting_first_byte,
            since: self.awaiting_since,
            backend: &self.ticket.0,
        };
        let stream = self
            .stream
            .as_mut()
            .expect("a checked-out connection has a stream");
        (stream, answered)
    }

    /// Replace a connection that proved stale by a fresh one on the same
    /// backend, keeping its slot (pingora's `ReusedOnly` retry).
    pub async fn reconnect(&mut self) -> io::Result<()> {
        self.stream = None;
        self.reused = false;
        self.await_first_byte();
        self.stream = Some(self.backend().connect().await?);
        Ok(())
    }

    /// The request on this connection reached END_REQUEST cleanly: keep it.
    pub fn release(mut self) {
        self.reusable = true;
    }
}

impl Drop for PooledConn {
    fn drop(&mut self) {
        let backend = self.ticket.0.clone();
        Answered {
            flag: &self.awaiting_first_byte,
            since: self.awaiting_since,
            backend: &backend,
        }
        .mark();
        // Only a guessed capacity can oversubscribe the backend; with a
        // known one, closing released connections would only churn them
        // (a connect and a close per request under load).
        let stalled = if backend.capacity_guessed.load(Ordering::Relaxed) {
            backend.stalled_connections()
        } else {
            0
        };
        if stalled > 0 {
            backend.lower_ceiling(stalled);
        }
        let keep = self.reusable && stalled == 0;
        let handoff = match self.stream.take() {
            Some(stream) if keep && backend.settings.keepalive > 0 => Handoff::Conn(stream),
            _ => Handoff::Slot,
        };
        backend.give_back(handoff);
    }
}

/// Reports that a connection's request got its first byte of answer.
pub struct Answered<'a> {
    flag: &'a AtomicBool,
    since: Instant,
    backend: &'a Backend,
}

impl Answered<'_> {
    pub fn mark(&self) {
        if self.flag.swap(false, Ordering::Relaxed) {
            let mut waiting = lock(&self.backend.unanswered_since);
            if let Some(i) = waiting.iter().position(|&t| t == self.since) {
                waiting.swap_remove(i);
            }
            self.backend.unanswered.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// A backend address as configured (`host:port` or `unix:/path`).
pub fn show(addr: &BackendAddr) -> String {
    match addr {
        BackendAddr::Tcp(hp) => hp.clone(),
        BackendAddr::Unix(path) => format!("unix:{}", path.display()),
    }
}

#[cfg(test)]
mod tests;
