//! One CGI child: spawning it in its own process group, killing the group,
//! reaping it, and logging its stderr.
//!
//! Killing always means `killpg(SIGKILL)` of the child's group: the child is
//! started with `process_group(0)`, so whatever it forks (a shell pipeline,
//! a background job) dies with it; `kill_on_drop` alone leaves grandchildren
//! running under PID 1. Every child is waited for by a reaper task, so no
//! zombie is left whatever happens to the request (lighttpd's
//! `cgi_waitpid_cb`).
//!
//! When the leader exits while others of its group still run (a daemonised
//! background job that closed its output), the reaper keeps watch and kills
//! the group at the deadline: nothing a program starts outlives `timeout`.
//! Killing a group whose leader has been reaped risks its number having been
//! given to a new process (`pid_max` is 32768 on many systems); see
//! [`kill_group_after_exit`] for why the check made there is enough.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_util::io::ReaderStream;

use crate::context::RequestId;
use crate::gateway::env::Var;

use super::script::Script;
use super::Permits;

/// Process groups of the children still running, for shutdown.
#[derive(Debug, Default)]
pub struct Live {
    groups: Mutex<HashSet<i32>>,
    /// Groups whose leader has exited while other members still ran.
    orphaned: Mutex<HashSet<i32>>,
}

impl Live {
    fn insert(&self, pgid: i32) {
        self.groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(pgid);
    }

    fn remove(&self, pgid: i32) {
        self.groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&pgid);
    }

    /// How many children are running.
    pub fn len(&self) -> usize {
        self.groups.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// SIGKILL every live group, and what is left of orphaned ones.
    pub fn kill_all(&self) {
        let groups: Vec<i32> = self
            .groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .collect();
        for pgid in groups {
            kill_group(pgid);
        }
        let orphaned: Vec<i32> = self
            .orphaned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .collect();
        for pgid in orphaned {
            kill_group_after_exit(pgid);
        }
    }

    fn orphan(&self, pgid: i32, orphaned: bool) {
        let mut set = self.orphaned.lock().unwrap_or_else(|e| e.into_inner());
        if orphaned {
            set.insert(pgid);
        } else {
            set.remove(&pgid);
        }
    }
}

/// Mark every descriptor this process inherited close-on-exec, so no CGI
/// child receives one. Rust opens its own descriptors with `O_CLOEXEC`, but
/// whatever started the server may have left some open without it (a
/// jobserver pipe, a supervisor's socket), and `exec` would hand those to
/// every program. Called once at start-up; safe to call again.
pub fn close_inherited_on_exec() {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    for entry in dir.flatten() {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if fd < 3 {
            continue;
        }
        // SAFETY: `fd` is listed as open and is only borrowed for this one
        // fcntl call. Should another thread close it meanwhile, the call
        // fails with EBADF or marks a new descriptor close-on-exec, which
        // it should be anyway; no data is read or written through it.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let _ = nix::fcntl::fcntl(
            borrowed,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        );
    }
}

fn kill_group(pgid: i32) {
    // ESRCH: the group is already gone, which is what we wanted.
    let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
}

/// True while some process is in group `pgid`.
fn group_exists(pgid: i32) -> bool {
    killpg(Pid::from_raw(pgid), None).is_ok()
}

/// Kill group `pgid` after its leader has been reaped. Linux gives a number
/// to a new process only when no process has it as pid, group or session id,
/// so while a member of our group lives the number is ours. A process that
/// now has that pid was therefore created after our group had emptied: the
/// number is someone else's, and nothing of ours is left to kill.
fn kill_group_after_exit(pgid: i32) {
    if std::path::Path::new(&format!("/proc/{pgid}")).exists() {
        return;
    }
    kill_group(pgid);
}

/// A running child's pipes and the handles that end it.
pub struct Spawned {
    /// `None` when the request has no body: stdin is then /dev/null.
    pub stdin: Option<ChildStdin>,
    pub stdout: ChildStdout,
    /// Kills the group when dropped while armed.
    pub guard: KillGuard,
    /// The exit status, once the reaper has it.
    pub exit: watch::Receiver<Option<ExitStatus>>,
}

/// What the reaper and the stderr logger need to know about a request.
#[derive(Debug, Clone)]
pub struct Tag {
    pub id: RequestId,
    /// The script's URL path, for log lines.
    pub script: Arc<str>,
}

/// The absolute path of a bare program name (`python3`) on the PATH the child
/// will get, remembered once found. Rust's `Command` spawns the cheap way
/// (posix_spawn, vfork semantics) only when the program is a path or PATH is
/// left alone; a bare name with a PATH of our own makes it `fork()` the
/// whole server instead, copying its page tables on every request (measured:
/// `copy_page_range` at the top of the CGI profile). Not found: the name as
/// given, so the spawn error still says what is missing.
fn resolve_program(program: &OsStr, path: Option<&OsStr>) -> PathBuf {
    use std::collections::HashMap;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::OnceLock;
    type Found = HashMap<(OsString, OsString), PathBuf>;
    static FOUND: OnceLock<Mutex<Found>> = OnceLock::new();

    let (Some(path), false) = (path, program.as_bytes().contains(&b'/')) else {
        return PathBuf::from(program);
    };
    let key = (program.to_owned(), path.to_owned());
    let found = FOUND.get_or_init(Mutex::default);
    if let Some(hit) = found.lock().ok().and_then(|f| f.get(&key).cloned()) {
        return hit;
    }
    let candidate = std::env::split_paths(path)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(program))
        .find(|file| {
            std::fs::metadata(file)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        });
    match candidate {
        Some(file) => {
            if let Ok(mut f) = found.lock() {
                f.insert(key, file.clone());
            }
            file
        }
        None => PathBuf::from(program),
    }
}

/// What to start for one request.
pub struct Program<'a> {
    pub script: &'a Script,
    /// Its RFC 3875 variables.
    pub env: &'a [Var<'a>],
    /// Variables passed on from our own environment.
    pub pass_env: &'a [String],
    /// A request body is coming: stdin is a pipe. Without one it is
    /// /dev/null, as lighttpd does: no pipe, no task to close it, and the
    /// program still reads an immediate end of file.
    pub body: bool,
}

/// The command that starts `program.script` with exactly its variables
/// (plus `pass_env`) in its own process group.
pub fn command(program: &Program<'_>) -> Command {
    let Program {
        script,
        env,
        pass_env,
        body,
    } = program;
    let child_path = env
        .iter()
        .find(|(name, _)| name == "PATH")
        .map(|(_, value)| OsStr::from_bytes(value).to_owned())
        .or_else(|| {
            pass_env
                .iter()
                .any(|n| n == "PATH")
                .then(|| std::env::var_os("PATH"))
                .flatten()
        });
    let executable = resolve_program(&script.argv[0], child_path.as_deref());
    let mut cmd = Command::new(&executable);
    cmd.args(&script.argv[1..])
        .env_clear()
        .current_dir(&script.dir)
        .stdin(if *body { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    for name in pass_env.iter() {
        if let Some(value) = std::env::var_os(name) {
            cmd.env(name, value);
        }
    }
    for (name, value) in env.iter() {
        // An environment string cannot hold NUL; nothing we build has one.
        if !value.contains(&0) && !name.contains(['=', '\0']) {
            cmd.env(name.as_ref(), OsStr::from_bytes(value));
        }
    }
    cmd
}

/// Start `cmd` (made by [`command`]). The reaper holds the route's slot
/// until the child has exited and its place in the start gate while it is
/// starting (see [`super::Runtime`]), and kills the group at `deadline` if it
/// still runs. Everything that watches the child is in place before this
/// returns, so it may run on a blocking thread whose caller has gone: the
/// [`Spawned`] then dropped kills the group.
pub fn start(
    mut cmd: Command,
    deadline: Instant,
    permits: Permits,
    live: &Arc<Live>,
    tag: &Tag,
) -> io::Result<Spawned> {
    let mut child = cmd.spawn()?;
    let stdin = child.stdin.take();
    let (Some(pid), Some(stdout), Some(stderr)) =
        (child.id(), child.stdout.take(), child.stderr.take())
    else {
        return Err(io::Error::other("child spawned without its pipes"));
    };
    let pgid = pid as i32;
    live.insert(pgid);
    let (exit_tx, exit) = watch::channel(None);
    tokio::spawn(reap(
        child,
        pgid,
        deadline,
        permits,
        live.clone(),
        exit_tx,
        tag.clone(),
    ));
    tokio::spawn(log_stderr(stderr, tag.clone()));
    Ok(Spawned {
        stdin,
        stdout,
        guard: KillGuard {
            pgid,
            armed: true,
            tasks: Vec::new(),
            tag: tag.clone(),
            exit: exit.clone(),
        },
        exit,
    })
}

/// Wait for the child (killing its group at the deadline), then forget it.
async fn reap(
    mut child: Child,
    pgid: i32,
    deadline: Instant,
    permits: Permits,
    live: Arc<Live>,
    exit_tx: watch::Sender<Option<ExitStatus>>,
    tag: Tag,
) {
    let Permits { slot, start } = permits;
    let mut start = Some(start);
    let start_over = Instant::now() + super::START_MAX;
    let check = tokio::time::sleep(super::START_CHECK);
    let past_deadline = tokio::time::sleep_until(deadline);
    tokio::pin!(check, past_deadline);
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            () = &mut check, if start.is_some() => {
                let next = Instant::now() + super::START_CHECK;
                if next < start_over && is_on_cpu(pgid) {
                    check.as_mut().reset(next);
                } else {
                    start = None;
                }
            }
            () = &mut past_deadline => {
                tracing::warn!(id = %tag.id, script = %tag.script, "CGI program ran past its timeout; killing its process group");
                kill_group(pgid);
                break child.wait().await;
            }
        }
    };
    drop(start);
    live.remove(pgid);
    drop(slot);
    match status {
        Ok(status) => {
            if !status.success() {
                tracing::info!(id = %tag.id, script = %tag.script, "CGI program {}", describe(status));
            }
            let _ = exit_tx.send(Some(status));
        }
        Err(e) => {
            tracing::error!(id = %tag.id, script = %tag.script, "waiting for a CGI program: {e}")
        }
    }
    // Checked right after reaping: a member still alive keeps the number ours.
    if group_exists(pgid) {
        live.orphan(pgid, true);
        tokio::time::sleep_until(deadline).await;
        if group_exists(pgid) {
            tracing::warn!(id = %tag.id, script = %tag.script, "processes started by a CGI program outlived it until its timeout; killing its process group");
            kill_group_after_exit(pgid);
        }
        live.orphan(pgid, false);
    }
}

/// Whether process `pid` is running or waiting for a CPU (state `R` in
/// `/proc/PID/stat`), rather than sleeping on I/O or a timer.
fn is_on_cpu(pid: i32) -> bool {
    let Ok(stat) = std::fs::read(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // "PID (comm) S ...": comm may hold spaces and parentheses, the state
    // follows the last ')'.
    let Some(close) = stat.iter().rposition(|&b| b == b')') else {
        return false;
    };
    stat.get(close + 2) == Some(&b'R')
}

/// "exited with status 1", "was killed by signal 9 (SIGKILL)".
pub fn describe(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exited with status {code}");
    }
    match status.signal() {
        Some(sig) => match Signal::try_from(sig) {
            Ok(name) => format!("was killed by signal {sig} ({name})"),
            Err(_) => format!("was killed by signal {sig}"),
        },
        None => format!("ended with {status}"),
    }
}

/// Kills the child's process group when dropped while armed: the response
/// body owns it, so a client that goes away (hyper drops the body) or a
/// failed request takes the program down with it. Also aborts helper tasks
/// (the stdin writer) that would otherwise outlive the request.
pub struct KillGuard {
    pgid: i32,
    armed: bool,
    tasks: Vec<AbortHandle>,
    tag: Tag,
    exit: watch::Receiver<Option<ExitStatus>>,
}

impl KillGuard {
    /// A task to abort when the guard goes, armed or not.
    pub fn own_task(&mut self, task: AbortHandle) {
        self.tasks.push(task);
    }

    /// The program's output ended normally: let it exit on its own (the
    /// reaper still kills it at the deadline).
    pub fn disarm(&mut self) {
        self.armed = false;
    }

    /// Kill the group now.
    pub fn kill(&mut self) {
        self.kill_group();
        self.armed = false;
    }

    fn kill_group(&self) {
        if self.exit.borrow().is_some() {
            kill_group_after_exit(self.pgid);
        } else {
            // Not reaped yet: the leader, even a zombie, holds the number.
            kill_group(self.pgid);
        }
    }
}

impl Drop for KillGuard {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        if self.armed {
            // Still killed when the leader has exited: its children may not have.
            if self.exit.borrow().is_none() {
                tracing::info!(id = %self.tag.id, script = %self.tag.script, "request ended before the CGI program's output did (client gone, timeout or bad output); killing its process group");
            }
            self.kill_group();
        }
    }
}

/// A guard for a process group made outside [`start`] (tests).
#[cfg(test)]
pub fn test_guard(pgid: i32) -> KillGuard {
    KillGuard {
        pgid,
        armed: true,
        tasks: Vec::new(),
        tag: Tag {
            id: RequestId(0),
            script: "test".into(),
        },
        exit: watch::channel(None).1,
    }
}

/// Longest stderr line logged as is; the rest of it is cut.
const MAX_LOG_LINE: usize = 4096;

/// Log stderr line by line with the request id. Reads until EOF whatever
/// happens, so a chatty program never blocks on a full stderr pipe.
async fn log_stderr(stderr: ChildStderr, tag: Tag) {
    let mut chunks = ReaderStream::new(stderr);
    let mut line = BytesMut::new();
    let mut cut = false;
    while let Some(Ok(chunk)) = chunks.next().await {
        let mut rest: Bytes = chunk;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            let part = rest.split_to(nl + 1);
            push_capped(&mut line, &part[..nl], &mut cut);
            log_line(&line, cut, &tag);
            line.clear();
            cut = false;
        }
        push_capped(&mut line, &rest, &mut cut);
    }
    if !line.is_empty() {
        log_line(&line, cut, &tag);
    }
}

fn push_capped(line: &mut BytesMut, bytes: &[u8], cut: &mut bool) {
    let room = MAX_LOG_LINE.saturating_sub(line.len());
    line.extend_from_slice(&bytes[..bytes.len().min(room)]);
    *cut |= bytes.len() > room;
}

fn log_line(line: &[u8], cut: bool, tag: &Tag) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = String::from_utf8_lossy(line);
    let more = if cut { " [...]" } else { "" };
    tracing::warn!(id = %tag.id, script = %tag.script, "CGI stderr: {text}{more}");
    if let Some(hint) = stderr_hint(&text) {
        tracing::warn!(id = %tag.id, script = %tag.script, "hint: {hint}");
    }
}

/// Advice for stderr lines that have one well-known cause.
pub fn stderr_hint(line: &str) -> Option<&'static str> {
    if line.contains("No module named 'cgi'") || line.contains("No module named 'cgitb'") {
        return Some(
            "Python 3.13 removed the `cgi` and `cgitb` modules (PEP 594): read QUERY_STRING with \
             urllib.parse.parse_qs, the body from sys.stdin.buffer (CONTENT_LENGTH bytes), and \
             multipart bodies with the `email` package",
        );
    }
    if line.starts_with("/usr/bin/env:") && line.contains("No such file or directory") {
        return Some(
            "the interpreter named in the script's #! line is not installed or not on the PATH \
             given to CGI programs (see `pass_env`)",
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints() {
        assert!(stderr_hint("ModuleNotFoundError: No module named 'cgi'")
            .unwrap()
            .contains("3.13"));
        assert!(
            stderr_hint("/usr/bin/env: 'python9': No such file or directory")
                .unwrap()
                .contains("#!")
        );
        assert!(stderr_hint("Traceback (most recent call last):").is_none());
    }

    #[test]
    fn tells_a_computing_process_from_a_waiting_one() {
        let mut spin = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .unwrap();
        let mut sleep = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        // Both may need a moment to settle (exec, first page faults).
        let settled = |pid: u32, on_cpu: bool| {
            (0..200).any(|_| {
                std::thread::sleep(std::time::Duration::from_millis(10));
                is_on_cpu(pid as i32) == on_cpu
            })
        };
        assert!(settled(spin.id(), true));
        assert!(settled(sleep.id(), false));
        for child in [&mut spin, &mut sleep] {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        assert!(!is_on_cpu(spin.id() as i32), "reaped: no such process");
    }

    #[test]
    fn describes_exits() {
        assert_eq!(
            describe(ExitStatus::from_raw(1 << 8)),
            "exited with status 1"
        );
        assert_eq!(
            describe(ExitStatus::from_raw(9)),
            "was killed by signal 9 (SIGKILL)"
        );
    }

    #[test]
    fn capped_lines() {
        let mut line = BytesMut::new();
        let mut cut = false;
        push_capped(&mut line, &[b'a'; MAX_LOG_LINE - 1], &mut cut);
        assert!(!cut);
        push_capped(&mut line, b"bc", &mut cut);
        assert!(cut);
        assert_eq!(line.len(), MAX_LOG_LINE);
    }
}
