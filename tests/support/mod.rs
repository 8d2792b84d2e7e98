//! Test harness: the real `gatehouse` binary on port 0, found through the
//! `gatehouse listening on http://IP:PORT` (and `https://`) lines it prints;
//! killed on drop.
#![allow(dead_code)]

pub mod tls;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

/// A running gatehouse.
pub struct TestServer {
    child: Option<Child>,
    addrs: Vec<SocketAddr>,
    https_addrs: Vec<SocketAddr>,
    stderr: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
    /// Keeps the configuration file's directory alive.
    pub dir: tempfile::TempDir,
}

impl TestServer {
    /// Start with this YAML (written to a temp dir; relative paths in it
    /// resolve there). `listen` defaults to 127.0.0.1:0 when the YAML has none.
    pub fn start(yaml: &str) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(dir, yaml)
    }

    /// Start with this YAML written as `gatehouse.yaml` inside `dir`.
    pub fn start_in(dir: tempfile::TempDir, yaml: &str) -> TestServer {
        let config = dir.path().join("gatehouse.yaml");
        std::fs::write(&config, yaml).expect("write config");
        let mut args = vec!["--config".to_string(), config.display().to_string()];
        if !yaml.lines().any(|l| l.starts_with("listen:")) {
            args.extend(["--listen".to_string(), "127.0.0.1:0".to_string()]);
        }
        Self::spawn(dir, &args, None).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`TestServer::start_in`], the server allowed only CPU 0 (`taskset`),
    /// as on a one-CPU machine or container.
    pub fn start_on_one_cpu(dir: tempfile::TempDir, yaml: &str) -> TestServer {
        Self::start_wrapped(dir, yaml, &["taskset", "-c", "0"])
    }

    /// [`TestServer::start_in`] through `wrapper` (a program that runs its
    /// last arguments as a command, such as `prlimit` or `taskset`).
    pub fn start_wrapped(dir: tempfile::TempDir, yaml: &str, wrapper: &[&str]) -> TestServer {
        let config = dir.path().join("gatehouse.yaml");
        std::fs::write(&config, yaml).expect("write config");
        let mut args: Vec<String> = wrapper[1..].iter().map(|s| s.to_string()).collect();
        args.extend([
            BIN.to_string(),
            "--config".to_string(),
            config.display().to_string(),
            "--listen".to_string(),
            "127.0.0.1:0".to_string(),
        ]);
        Self::spawn_program(wrapper[0], dir, &args, None).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Run the binary with these arguments in `cwd` (default: the temp dir).
    pub fn spawn(
        dir: tempfile::TempDir,
        args: &[String],
        cwd: Option<&Path>,
    ) -> Result<TestServer, String> {
        Self::spawn_program(BIN, dir, args, cwd)
    }

    fn spawn_program(
        program: &str,
        dir: tempfile::TempDir,
        args: &[String],
        cwd: Option<&Path>,
    ) -> Result<TestServer, String> {
        let mut child = Command::new(program)
            .args(args)
            .current_dir(cwd.unwrap_or(dir.path()))
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {program}: {e}"))?;
        let stderr = Arc::new(Mutex::new(String::new()));
        let stdout = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let pipe = child.stderr.take().unwrap();
            let sink = stderr.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    if let Some(addr) = line.strip_prefix("gatehouse listening on http://") {
                        let _ = tx.send(addr.parse::<SocketAddr>().ok().map(|a| (false, a)));
                    }
                    if let Some(addr) = line.strip_prefix("gatehouse listening on https://") {
                        let _ = tx.send(addr.parse::<SocketAddr>().ok().map(|a| (true, a)));
                    }
                    let mut s = sink.lock().unwrap();
                    s.push_str(&line);
                    s.push('\n');
                }
                let _ = tx.send(None);
            });
        }
        {
            let pipe = child.stdout.take().unwrap();
            let sink = stdout.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(pipe);
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 0 {
                    sink.lock().unwrap().push_str(&line);
                    line.clear();
                }
            });
        }
        let mut server = TestServer {
            child: Some(child),
            addrs: Vec::new(),
            https_addrs: Vec::new(),
            stderr,
            stdout,
            dir,
        };
        // The first address arrives first; take any others printed right after.
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Some(found)) => server.record(found),
            _ => {
                let status = server.child.as_mut().unwrap().wait().ok();
                std::thread::sleep(Duration::from_millis(100));
                return Err(format!(
                    "gatehouse did not start (exit {status:?}); stderr:\n{}",
                    server.stderr_log()
                ));
            }
        }
        while let Ok(Some(found)) = rx.recv_timeout(Duration::from_millis(200)) {
            server.record(found);
        }
        Ok(server)
    }

    fn record(&mut self, (https, addr): (bool, SocketAddr)) {
        if https {
            self.https_addrs.push(addr);
        } else {
            self.addrs.push(addr);
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The addresses printed as `gatehouse listening on https://IP:PORT`.
    pub fn https_addrs(&self) -> &[SocketAddr] {
        &self.https_addrs
    }

    pub fn https_addr(&self) -> SocketAddr {
        self.https_addrs[0]
    }

    /// `https://127.0.0.1:PORT` + `path` on the first TLS listener.
    pub fn https_url(&self, path: &str) -> String {
        format!("https://{}{}", self.https_addr(), path)
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base(), path)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// What the server wrote to stderr so far (error log, listening lines).
    pub fn stderr_log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// What the server wrote to stdout so far (the access log by default).
    pub fn stdout_log(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Wait until stdout contains `needle` (the access log is written by a
    /// background thread).
    pub fn wait_for_stdout(&self, needle: &str) -> String {
        wait_for(|| self.stdout_log(), needle)
    }

    /// Same for stderr.
    pub fn wait_for_stderr(&self, needle: &str) -> String {
        wait_for(|| self.stderr_log(), needle)
    }

    /// Send a signal and return at once.
    pub fn signal(&self, signal: i32) {
        unsafe_kill(self.pid(), signal);
    }

    /// Send a signal and wait for the exit status (at most `limit`).
    pub fn signal_and_wait(&mut self, signal: i32, limit: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut().unwrap();
        unsafe_kill(child.id(), signal);
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TestServer {
    /// SIGTERM first, as a service manager would, so the server removes what
    /// it made (a managed backend's socket directory); SIGKILL only if it
    /// has not exited in time.
    fn drop(&mut self) {
        let running = matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)));
        if running {
            self.signal_and_wait(15, Duration::from_secs(5));
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Read `text` until it contains `needle` or 10 s have passed; the last read.
pub fn wait_for(text: impl Fn() -> String, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let read = text();
        if read.contains(needle) || Instant::now() > deadline {
            return read;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Wait until the file at `path` contains `needle` (a log written by a
/// background thread); its content then.
pub fn wait_for_file(path: &Path, needle: &str) -> String {
    wait_for(|| std::fs::read_to_string(path).unwrap_or_default(), needle)
}

/// `kill(2)` through the `kill` command: tests stay free of unsafe code.
fn unsafe_kill(pid: u32, signal: i32) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

/// A blocking HTTP client that neither follows redirects nor decompresses.
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

/// Send raw bytes, then read until the server closes or `wait` passes quietly.
pub fn raw(addr: SocketAddr, request: &[u8]) -> String {
    raw_with(addr, request, Duration::from_secs(5))
}

pub fn raw_with(addr: SocketAddr, request: &[u8], wait: Duration) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(wait)).unwrap();
    let _ = stream.write_all(request);
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The status code of the first response in a raw reply.
pub fn status_of(reply: &str) -> u16 {
    reply
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {reply:?}"))
}

/// The repository's own directory (for htdocs/, cgi-bin/, conf/).
pub fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Hex sha256 of bytes.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(data);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Resident set size of a process in KiB, from /proc.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Number of open descriptors of a process, from /proc.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Children of `pid` that are zombies, from /proc/*/stat.
pub fn zombie_children(pid: u32) -> Vec<u32> {
    let mut zombies = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next();
        let ppid: Option<u32> = fields.next().and_then(|p| p.parse().ok());
        if state == Some("Z") && ppid == Some(pid) {
            if let Ok(child) = entry.file_name().to_string_lossy().parse() {
                zombies.push(child);
            }
        }
    }
    zombies
}
