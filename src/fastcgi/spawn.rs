//! Managed backends (`spawn:`): gatehouse starts the application, as lighttpd
//! and mod_fcgid do.
//!
//! A Unix listening socket is made in a private temporary directory and each
//! of the N copies gets it as its fd 0, the convention of the FastCGI
//! specification (section 2.2) that flup's `WSGIServer()` and `php-cgi` follow
//! when started without arguments; the copies accept on it themselves and the
//! pool connects to its path. Each copy runs in its own process group (so its
//! own children are stopped with it), is restarted with a growing back-off
//! when it dies, and is stopped on shutdown: SIGTERM, then SIGKILL. Should
//! gatehouse itself be killed outright, the copies get SIGTERM from the
//! kernel (Linux's parent-death signal) instead of living on as orphans.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::SpawnConfig;

const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A copy that ran this long before dying starts over at the first back-off.
const HEALTHY_RUN: Duration = Duration::from_secs(10);
/// Time between SIGTERM and SIGKILL on shutdown.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// A supervised group of copies of one application sharing one socket.
pub struct Managed {
    /// Holds the socket; removed when dropped.
    _dir: tempfile::TempDir,
    socket: PathBuf,
    stop: CancellationToken,
    supervisors: Mutex<Vec<JoinHandle<()>>>,
}

impl Managed {
    /// Create the socket and start the copies. Must run inside the runtime.
    pub fn start(config: &SpawnConfig) -> io::Result<Managed> {
        let dir = tempfile::Builder::new()
            .prefix("gatehouse-fcgi-")
            .tempdir()?;
        let socket = dir.path().join("app.sock");
        let listener = UnixListener::bind(&socket)?;
        let stop = CancellationToken::new();
        let mut supervisors = Vec::new();
        for copy in 0..config.processes {
            let fd = OwnedFd::from(listener.try_clone()?);
            let sup = Supervisor {
                config: config.clone(),
                listener: fd,
                copy,
                stop: stop.clone(),
            };
            supervisors.push(tokio::spawn(sup.run()));
        }
        tracing::info!(
            command = ?config.command, processes = config.processes, socket = %socket.display(),
            "managed fastcgi backend started"
        );
        Ok(Managed {
            _dir: dir,
            socket,
            stop,
            supervisors: Mutex::new(supervisors),
        })
    }

    /// The socket the copies accept on.
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// Stop every copy (SIGTERM, then SIGKILL after a grace period) and wait
    /// until all are reaped.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        let handles =
            std::mem::take(&mut *self.supervisors.lock().unwrap_or_else(|p| p.into_inner()));
        for handle in handles {
            let _ = handle.await;
        }
    }
}

impl Drop for Managed {
    fn drop(&mut self) {
        // Supervisors see this and stop their copies (kill_on_drop covers a
        // runtime that is going away).
        self.stop.cancel();
    }
}

/// Keeps one copy running.
struct Supervisor {
    config: SpawnConfig,
    listener: OwnedFd,
    copy: usize,
    stop: CancellationToken,
}

impl Supervisor {
    async fn run(self) {
        let mut backoff = FIRST_BACKOFF;
        while !self.stop.is_cancelled() {
            let started = Instant::now();
            match self.spawn() {
                Ok(mut child) => {
                    let pid = child.id().unwrap_or(0);
                    tokio::select! {
                        status = child.wait() => self.log_exit(pid, status, backoff),
                        () = self.stop.cancelled() => {
                            stop_child(&mut child, pid).await;
                            return;
                        }
                    }
                }
                Err(err) => tracing::error!(
                    command = ?self.config.command, copy = self.copy, error = %err, ?backoff,
                    "cannot start managed fastcgi backend; trying again"
                ),
            }
            if started.elapsed() >= HEALTHY_RUN {
                backoff = FIRST_BACKOFF;
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = self.stop.cancelled() => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    fn spawn(&self) -> io::Result<Child> {
        let (program, args) = self
            .config
            .command
            .split_first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
        let mut command = Command::new(program);
        command
            .args(args)
            .current_dir(&self.config.working_dir)
            .stdin(Stdio::from(self.listener.try_clone()?))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        die_with_parent(&mut command);
        let mut child = command.spawn()?;
        let pid = child.id().unwrap_or(0);
        // The application's own output goes to the error log, not to our
        // stdout (where the access log may be).
        if let Some(out) = child.stdout.take() {
            tokio::spawn(log_lines(out, pid));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(log_lines(err, pid));
        }
        tracing::info!(pid, copy = self.copy, command = ?self.config.command, "managed fastcgi backend running");
        Ok(child)
    }

    fn log_exit(&self, pid: u32, status: io::Result<ExitStatus>, backoff: Duration) {
        let status = match status {
            Ok(s) => s.to_string(),
            Err(e) => e.to_string(),
        };
        tracing::warn!(
            pid, copy = self.copy, command = ?self.config.command, %status, restart_in = ?backoff,
            "managed fastcgi backend exited; restarting"
        );
    }
}

/// Ask the kernel to send SIGTERM to the child when gatehouse dies (the
/// forking thread, strictly: a runtime worker, which lives as long as the
/// server). A copy whose parent is already gone by then exits at once.
#[cfg(target_os = "linux")]
fn die_with_parent(command: &mut Command) {
    let parent = nix::unistd::getpid();
    // PR_SET_PDEATHSIG fires when the spawning *thread* exits: copies are
    // spawned from runtime worker threads, which live as long as the server.
    // SAFETY: the closure runs in the child between fork and exec and only
    // makes async-signal-safe system calls (prctl, getppid); it allocates
    // nothing and touches no lock.
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)?;
            if nix::unistd::getppid() != parent {
                // From an errno, not a message: no allocation between fork and exec.
                return Err(io::Error::from(nix::errno::Errno::ESRCH));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_command: &mut Command) {}

/// SIGTERM to the copy's process group, SIGKILL if it is still there after
/// the grace period, then reap it.
async fn stop_child(child: &mut Child, pid: u32) {
    let Ok(raw) = i32::try_from(pid) else { return };
    if raw <= 0 {
        return;
    }
    let group = Pid::from_raw(raw);
    let _ = killpg(group, Signal::SIGTERM);
    if tokio::time::timeout(STOP_GRACE, child.wait())
        .await
        .is_err()
    {
        tracing::warn!(pid, "managed fastcgi backend ignored SIGTERM; killing it");
        let _ = killpg(group, Signal::SIGKILL);
        let _ = child.wait().await;
    }
    // Whatever else is left in the group (children of the copy).
    let _ = killpg(group, Signal::SIGKILL);
}

async fn log_lines(pipe: impl AsyncRead + Unpin, pid: u32) {
    let mut lines = BufReader::new(pipe).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::warn!(pid, "managed fastcgi backend: {line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(script: &str, processes: usize) -> SpawnConfig {
        SpawnConfig {
            command: vec!["python3".into(), "-c".into(), script.into()],
            processes,
            working_dir: std::env::temp_dir(),
        }
    }

    /// Accepts on fd 0 and writes its pid to each connection, then closes it.
    const PID_SERVER: &str = "import os, socket\n\
        s = socket.socket(fileno=0)\n\
        while True:\n\
        \x20   c, _ = s.accept()\n\
        \x20   c.sendall(str(os.getpid()).encode())\n\
        \x20   c.close()\n";

    async fn ask_pid(socket: &Path) -> Option<u32> {
        use tokio::io::AsyncReadExt;
        let mut conn = tokio::net::UnixStream::connect(socket).await.ok()?;
        let mut out = String::new();
        tokio::time::timeout(Duration::from_secs(5), conn.read_to_string(&mut out))
            .await
            .ok()?
            .ok()?;
        out.parse().ok()
    }

    fn alive(pid: u32) -> bool {
        nix::sys::signal::kill(Pid::from_raw(pid as i32), None).is_ok()
    }

    #[tokio::test]
    async fn copies_share_fd0_restart_and_stop() {
        let managed = Managed::start(&config(PID_SERVER, 2)).unwrap();
        let pid = ask_pid(managed.socket_path())
            .await
            .expect("a copy answers on fd 0");

        let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        // Comes back (after the first back-off) and serves again.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut pids = std::collections::HashSet::new();
        while Instant::now() < deadline && pids.len() < 2 {
            if let Some(p) = ask_pid(managed.socket_path()).await {
                if p != pid {
                    pids.insert(p);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(pids.len(), 2, "the other copy and the restarted one");

        managed.shutdown().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        for p in pids {
            assert!(!alive(p), "copy {p} stopped");
        }
    }

    #[tokio::test]
    async fn stubborn_copies_are_killed() {
        let script =
            format!("import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n{PID_SERVER}");
        let managed = Managed::start(&config(&script, 1)).unwrap();
        let pid = ask_pid(managed.socket_path()).await.unwrap();
        let started = Instant::now();
        managed.shutdown().await;
        assert!(started.elapsed() >= STOP_GRACE - Duration::from_millis(100));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!alive(pid));
    }

    #[tokio::test]
    async fn a_missing_program_is_retried_not_fatal() {
        let managed = Managed::start(&SpawnConfig {
            command: vec!["/nonexistent/app".into()],
            processes: 1,
            working_dir: std::env::temp_dir(),
        })
        .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        managed.shutdown().await;
    }
}
