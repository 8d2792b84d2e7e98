//! Listeners, the accept loop, per-connection timeouts, and graceful drain.
//!
//! Each bound socket prints exactly `gatehouse listening on http://IP:PORT`
//! (`https://` for the TLS listeners) on stderr (tests and tools read that
//! line to find the port). A TLS handshake runs in its connection's task,
//! bounded by `header_read_timeout`, never in the accept loop. On SIGTERM or
//! SIGINT the listeners close, open connections are asked to finish within
//! `shutdown_grace`, then remaining CGI children are killed and managed
//! FastCGI backends stopped.

mod alarm;
mod framing;
mod heap_trim;
mod observed;
mod signals;
mod tracker;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;

use alarm::{Alarm, First};
use framing::{FramingIo, FramingObserver};
pub use tracker::ConnTracker;
use tracker::{TrackedIo, Verdict};

use crate::access_log::AccessLog;
use crate::config::{Config, ListenAddr, Workers};
use crate::context::ConnInfo;
use crate::late_file::{self, LateFileIo};
use crate::service::App;
use crate::tls::Tls;

/// A bound socket, before its accept loop starts.
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, std::path::PathBuf),
    /// An HTTPS listener: each accepted stream is handshaken in its own task.
    Tls(TcpListener, TlsAcceptor),
}

/// A failure to start: the message says which address and why.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

/// Bind every configured address and print its listening line.
pub async fn bind_all(config: &Config) -> Result<Vec<Listener>, StartError> {
    let mut listeners = Vec::new();
    for addr in &config.listen {
        let listener = match addr {
            ListenAddr::Tcp(sock) => {
                let l = TcpListener::bind(sock)
                    .await
                    .map_err(|e| StartError(format!("cannot listen on {sock}: {e}")))?;
                let local = l
                    .local_addr()
                    .map_err(|e| StartError(format!("cannot listen on {sock}: {e}")))?;
                eprintln!("gatehouse listening on http://{local}");
                Listener::Tcp(l)
            }
            ListenAddr::Unix(path) => {
                remove_stale_socket(path);
                let l = UnixListener::bind(path).map_err(|e| {
                    StartError(format!("cannot listen on unix:{}: {e}", path.display()))
                })?;
                eprintln!("gatehouse listening on unix:{}", path.display());
                Listener::Unix(l, path.clone())
            }
        };
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Bind every `tls.listen` address and print its `https://` listening line.
/// Returns the listeners and the addresses actually bound (real ports).
pub async fn bind_tls(
    config: &Config,
    tls: &Tls,
) -> Result<(Vec<Listener>, Vec<std::net::SocketAddr>), StartError> {
    let mut listeners = Vec::new();
    let mut bound = Vec::new();
    for sock in config.tls.iter().flat_map(|t| &t.listen) {
        let fail = |e: io::Error| StartError(format!("cannot listen on {sock} (tls): {e}"));
        let l = TcpListener::bind(sock).await.map_err(fail)?;
        let local = l.local_addr().map_err(fail)?;
        eprintln!("gatehouse listening on https://{local}");
        bound.push(local);
        listeners.push(Listener::Tls(l, tls.acceptor.clone()));
    }
    Ok((listeners, bound))
}

/// A socket file left by an earlier run would make bind fail; remove it, but
/// never a regular file that happens to have the name.
fn remove_stale_socket(path: &std::path::Path) {
    use std::os::unix::fs::FileTypeExt;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_socket() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Run the server until SIGTERM/SIGINT, then drain and return; SIGUSR1 and
/// SIGHUP reopen the log files meanwhile.
pub async fn run(mut config: Config) -> Result<(), StartError> {
    let (mut stop, reopen) = signals::install()
        .map_err(|e| StartError(format!("cannot install signal handlers: {e}")))?;
    let tls = match &config.tls {
        Some(tls) => Some(Tls::new(tls, &config.server_name).map_err(StartError)?),
        None => None,
    };
    if let Some(fingerprint) = tls
        .as_ref()
        .and_then(|t| t.self_signed_fingerprint.as_ref())
    {
        eprintln!("gatehouse self-signed certificate sha256 fingerprint {fingerprint}");
    }
    let mut listeners = bind_all(&config).await?;
    if let (Some(tls), Some(tls_config)) = (&tls, config.tls.clone()) {
        let (tls_listeners, bound) = bind_tls(&config, tls).await?;
        listeners.extend(tls_listeners);
        // From here on the configuration names the real ports (port 0
        // asked), which `redirect_http` needs.
        config.tls = Some(crate::config::TlsConfig {
            listen: bound,
            ..tls_config
        });
    }
    // Files root may open first, then nothing privileged is left to do:
    // no child is started before this point.
    let access_log = AccessLog::open(&config.access_log)
        .map_err(|e| StartError(format!("cannot open the access log: {e}")))?;
    crate::privileges::drop_privileges(&config.run_as)
        .map_err(|e| StartError(format!("cannot drop privileges: {e}")))?;
    let app = App::with_access_log(config, access_log)
        .await
        .map_err(|e| StartError(format!("cannot start: {e}")))?;
    tokio::spawn(reopen.serve());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let connections = TaskTracker::new();
    let builder = Arc::new(http_builder(&app.config));
    let peak = Arc::new(heap_trim::Peak::default());
    tokio::spawn(heap_trim::run(
        connections.clone(),
        peak.clone(),
        shutdown_rx.clone(),
    ));

    let mut accept_loops = Vec::new();
    for listener in listeners {
        let server = Server {
            app: app.clone(),
            builder: builder.clone(),
            shutdown: shutdown_rx.clone(),
            connections: connections.clone(),
            peak: peak.clone(),
        };
        accept_loops.push(tokio::spawn(server.accept_loop(listener)));
    }

    stop.recv().await;
    tracing::info!(
        "shutting down: draining connections for up to {:?}",
        app.config.shutdown_grace
    );
    let _ = shutdown_tx.send(true);
    for handle in accept_loops {
        let _ = handle.await;
    }
    connections.close();
    if tokio::time::timeout(app.config.shutdown_grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace period over; closing remaining connections");
    }
    app.cgi.kill_all();
    app.fastcgi.shutdown().await;
    app.flush_access_log();
    Ok(())
}

fn http_builder(config: &Config) -> auto::Builder<TokioExecutor> {
    let limits = &config.limits;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The request line and headers must fit in hyper's read buffer; their
    // separate limits (414, 431) are checked per request in `service`, so
    // the buffer leaves room for both.
    let buffer = (limits.max_header_bytes + limits.max_uri_bytes + 1024).max(8192);
    builder.http1().keep_alive(true).max_buf_size(buffer);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(256);
    builder
}

struct Server {
    app: Arc<App>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    shutdown: watch::Receiver<bool>,
    connections: TaskTracker,
    /// The most connections open at once, for [`heap_trim`].
    peak: Arc<heap_trim::Peak>,
}

impl Server {
    async fn accept_loop(mut self, listener: Listener) {
        loop {
            let accepted = tokio::select! {
                _ = self.shutdown.changed() => break,
                accepted = accept(&listener) => accepted,
            };
            match accepted {
                Ok((stream, info)) => {
                    let conn = Connection {
                        app: self.app.clone(),
                        builder: self.builder.clone(),
                        shutdown: self.shutdown.clone(),
                    };
                    // Two kinds of task: a TLS connection's future is about
                    // 6 KiB, a plain one's 2 KiB, and a task is as large as
                    // the largest future it may hold.
                    let info = Arc::new(info);
                    match stream {
                        Stream::Tls(s, acceptor) => {
                            self.connections.spawn(conn.serve_tls(s, acceptor, info))
                        }
                        Stream::Plain(s) => self.connections.spawn(conn.serve_plain(s, info)),
                    };
                    self.peak.saw(self.connections.len());
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::error!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        if let Listener::Unix(_, path) = &listener {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A stream from any kind of listener.
enum Stream {
    Plain(PlainStream),
    /// Accepted on a TLS listener, not yet handshaken.
    Tls(tokio::net::TcpStream, TlsAcceptor),
}

enum PlainStream {
    /// TCP, with the lane its file bodies are sent through.
    Tcp(tokio::net::TcpStream, Option<Arc<late_file::Lane>>),
    Unix(tokio::net::UnixStream),
}

async fn accept(listener: &Listener) -> io::Result<(Stream, ConnInfo)> {
    match listener {
        Listener::Tcp(l) | Listener::Tls(l, _) => {
            let (stream, peer) = l.accept().await?;
            let _ = stream.set_nodelay(true);
            let local = stream.local_addr()?;
            let (stream, lane) = match listener {
                Listener::Tls(_, acceptor) => (Stream::Tls(stream, acceptor.clone()), None),
                _ => {
                    let lane = late_file::Lane::new();
                    (Stream::Plain(PlainStream::Tcp(stream, lane.clone())), lane)
                }
            };
            let info = ConnInfo {
                peer,
                local,
                secure: matches!(listener, Listener::Tls(..)),
                file_lane: lane,
                addr_text: Default::default(),
            };
            Ok((stream, info))
        }
        Listener::Unix(l, _) => {
            let (stream, _) = l.accept().await?;
            Ok((Stream::Plain(PlainStream::Unix(stream)), ConnInfo::unix()))
        }
    }
}

struct Connection {
    app: Arc<App>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    shutdown: watch::Receiver<bool>,
}

impl Connection {
    /// A plain TCP or Unix connection.
    async fn serve_plain(self, stream: PlainStream, info: Arc<ConnInfo>) {
        let tracker = ConnTracker::new();
        match stream {
            PlainStream::Tcp(s, Some(lane)) => {
                let io = TrackedIo::new(LateFileIo::new(s, lane), tracker.clone());
                self.serve_io(io, info, tracker).await;
            }
            PlainStream::Tcp(s, None) => {
                let io = TrackedIo::new(s, tracker.clone());
                self.serve_io(io, info, tracker).await;
            }
            PlainStream::Unix(s) => {
                let io = TrackedIo::new(s, tracker.clone());
                self.serve_io(io, info, tracker).await;
            }
        }
    }

    async fn serve_tls(
        mut self,
        stream: tokio::net::TcpStream,
        acceptor: TlsAcceptor,
        info: Arc<ConnInfo>,
    ) {
        let tracker = ConnTracker::new();
        let io = TrackedIo::new(stream, tracker.clone());
        if let Some(tls) = self.handshake(io, &acceptor).await {
            self.serve_io(tls, info, tracker).await;
        }
    }

    /// The TLS handshake, within `header_read_timeout` (it counts against the
    /// first request's head: the tracker started with the connection). A
    /// failure (plain HTTP on a TLS port, no common version or cipher) or a
    /// timeout closes the connection; nothing else waits on it.
    async fn handshake<T>(
        &mut self,
        stream: T,
        acceptor: &TlsAcceptor,
    ) -> Option<tokio_rustls::server::TlsStream<T>>
    where
        T: AsyncRead + AsyncWrite + Unpin,
    {
        let limit = self.app.config.limits.header_read_timeout;
        tokio::select! {
            result = tokio::time::timeout(limit, acceptor.accept(stream)) => match result {
                Ok(Ok(tls)) => Some(tls),
                Ok(Err(e)) => {
                    tracing::debug!("TLS handshake failed: {e}");
                    None
                }
                Err(_) => {
                    tracing::debug!("TLS handshake not finished in time; closing connection");
                    None
                }
            },
            _ = self.shutdown.changed() => None,
        }
    }

    async fn serve_io<T>(mut self, stream: T, info: Arc<ConnInfo>, tracker: Arc<ConnTracker>)
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let io = TokioIo::new(FramingIo::new(
            stream,
            FramingObserver::new(tracker.clone()),
        ));
        let app = self.app.clone();
        let conn_tracker = tracker.clone();
        // `serve` is called here, not in the future: it answers what needs
        // no waiting before hyper's next read (see `App::serve`).
        let service =
            service_fn(move |req| app.clone().serve(req, info.clone(), conn_tracker.clone()));
        let conn = self.builder.serve_connection(io, service);
        tokio::pin!(conn);
        let limits = &self.app.config.limits;
        let mut closing = false;
        let alarm = Alarm::new();
        loop {
            let wait = if closing {
                Duration::from_secs(3600)
            } else {
                match tracker.verdict(limits.header_read_timeout, limits.keepalive_timeout) {
                    Verdict::Wait(d) => d,
                    Verdict::HeaderTimeout => {
                        tracing::debug!("request head not received in time; closing connection");
                        return;
                    }
                    Verdict::IdleTimeout => {
                        conn.as_mut().graceful_shutdown();
                        closing = true;
                        continue;
                    }
                }
            };
            let (shutdown, listening) = (&mut self.shutdown, !closing);
            let cut_short = std::pin::pin!(async move {
                tokio::select! {
                    _ = shutdown.changed(), if listening => true,
                    () = tokio::time::sleep(wait) => false,
                }
            });
            match alarm.race(conn.as_mut(), cut_short).await {
                First::Main(result) => {
                    if let Err(e) = result {
                        tracing::debug!("connection ended: {e}");
                    }
                    return;
                }
                First::Side(true) => {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
                First::Side(false) => {}
            }
        }
    }
}

/// Raise the soft limit on open descriptors towards the hard one, as
/// nginx's `worker_rlimit_nofile` and Go's runtime do: each client
/// connection, backend connection, CGI pipe and cached file of 32 KiB or
/// more holds a descriptor, and with Debian's default soft limit of 1,024
/// the thousandth client would be refused (`EMFILE`) while the hard limit
/// allows far more. At most to [`OPEN_FILES_WANTED`]: CGI programs inherit
/// the limit (a spawn cannot lower it without giving up posix_spawn), and
/// old ones close every descriptor up to it before they exec.
pub fn raise_open_file_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) => {
            if let Some(wanted) = raised_soft_limit(soft, hard) {
                if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, wanted, hard) {
                    tracing::warn!("open file limit stays at {soft}: {e}");
                }
            }
        }
        Err(e) => tracing::warn!("cannot read the open file limit: {e}"),
    }
}

/// The CPUs this process may use (its affinity mask, a container's quota).
pub fn available_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The soft limit to set, if higher than `soft`.
fn raised_soft_limit(soft: u64, hard: u64) -> Option<u64> {
    Some(hard.min(OPEN_FILES_WANTED)).filter(|&wanted| wanted > soft)
}

/// The soft limit on open descriptors gatehouse asks for (nginx users'
/// usual `worker_rlimit_nofile`).
const OPEN_FILES_WANTED: u64 = 65_536;

/// The tokio runtime with `workers` event-loop threads (also the runtime of
/// `bench/tools/hyper_floor.rs`, so that its floor is ours).
///
/// `auto` leaves a CPU to the programs and backends: on two CPUs, with
/// php-fpm and the load generator on the same machine, one event loop
/// served 6-20 % more than two (static 1 KB and 100 KB at 100 and 1,000
/// connections, php-fpm at 100 and 1,000) with less CPU per request (php:
/// 39 against 53 us): two loop threads, a CPU-bound load generator and the
/// backend's workers take turns on two CPUs, and the work-stealing
/// scheduler's wake-ups across threads cost more than they bring. CGI
/// programs are spawned off the loop meanwhile (see `cgi::Runtime`).
///
/// One thread is the current-thread runtime: its one FIFO queue serves
/// woken connections in the order they woke. The multi-thread runtime with one worker keeps 256
/// of them in the worker's queue and the rest in the shared one, and at
/// 1,000 connections the two groups were served at different rates (p50
/// 5 ms, p90 15 ms). Measured with the current-thread runtime: a 1 KB file at
/// 1,000 connections p99 16 -> 10 ms (+3 % req/s), 100 KB p99 48 -> 26 ms
/// (+12 %), php-fpm at 10 connections +8 %, at 100 -2.5 %.
pub fn runtime(workers: Workers) -> io::Result<tokio::runtime::Runtime> {
    let threads = workers.threads(available_cpus());
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(threads);
        builder
    };
    // The blocking pool reads files and checks scripts; past a few dozen
    // threads more of them only add context switches and stacks.
    // Connections woken together overflow a worker's local queue into the
    // shared one; checked only every ~31 polls, those waited behind the rest
    // for rounds on end: at 1,000 connections p99 was 160 ms with p50 3 ms.
    // Every other poll: p99 18 ms, and throughput up 7%.
    builder
        .enable_all()
        .max_blocking_threads(64)
        .global_queue_interval(2)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_file_limit_is_raised_to_the_hard_one_up_to_65536() {
        // Debian's defaults: soft 1,024, hard 524,288.
        assert_eq!(raised_soft_limit(1024, 524_288), Some(65_536));
        assert_eq!(raised_soft_limit(256, 4096), Some(4096));
        // Never lowered, never above the hard limit.
        assert_eq!(raised_soft_limit(100_000, 524_288), None);
        assert_eq!(raised_soft_limit(65_536, 65_536), None);
        assert_eq!(raised_soft_limit(4096, 4096), None);
    }
}
