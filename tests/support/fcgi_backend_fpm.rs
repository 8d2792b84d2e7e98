//! A php-fpm master of the test's own: a generated configuration in a temp
//! dir with two pools, one on a Unix socket and one on a TCP port, static
//! workers, no php.ini (`-n`) so the machine's settings do not leak in.
//! Dropping it stops php-fpm (SIGQUIT, then SIGKILL).
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running php-fpm.
pub struct PhpFpm {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// The pool on a Unix socket.
    pub socket: PathBuf,
    /// The pool on TCP.
    pub tcp: SocketAddr,
}

/// The php-fpm binary: `PHP_FPM` if set, else `php-fpm*` on PATH or in the
/// usual sbin directories (Debian installs `/usr/sbin/php-fpm8.2`).
pub fn find() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PHP_FPM") {
        return Some(PathBuf::from(path));
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from));
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut found: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n == "php-fpm"
                        || (n.starts_with("php-fpm")
                            && n[7..].chars().all(|c| c.is_ascii_digit() || c == '.'))
                })
            })
            .collect();
        found.sort();
        if let Some(path) = found.pop() {
            return Some(path);
        }
    }
    None
}

/// Start php-fpm, or `None` with a loud message when it is not installed
/// (tests/run-all.sh installs it; a bare `cargo test` may not have it).
pub fn start(workers: usize) -> Option<PhpFpm> {
    let Some(binary) = find() else {
        // CI installs php-fpm (tests/run-all.sh): a missing one there is a failure, not a skip.
        assert!(
            std::env::var_os("CI").is_none(),
            "php-fpm is missing under CI"
        );
        eprintln!("\n!!!!! php-fpm not found: SKIPPING this php-fpm test (install php-fpm, or run tests/run-all.sh) !!!!!\n");
        return None;
    };
    let mut last_err = String::new();
    // The TCP port is picked free and then handed to php-fpm, which cannot
    // report a port it chose itself; a race lost to another test is retried.
    for _ in 0..5 {
        match try_start(&binary, workers) {
            Ok(fpm) => return Some(fpm),
            Err(err) => last_err = err,
        }
    }
    panic!("php-fpm ({}) would not start: {last_err}", binary.display());
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn try_start(binary: &Path, workers: usize) -> Result<PhpFpm, String> {
    let dir = tempfile::Builder::new()
        .prefix("gh-fpm-")
        .tempdir()
        .unwrap();
    let socket = dir.path().join("php.sock");
    let tcp: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let log = dir.path().join("fpm.log");
    let pool = |name: &str, listen: &str| {
        format!(
            "[{name}]\nlisten = {listen}\npm = static\npm.max_children = {workers}\n\
             catch_workers_output = yes\ndecorate_workers_output = no\n\
             php_admin_value[output_buffering] = 0\nphp_admin_value[upload_max_filesize] = 8M\n\
             php_admin_value[post_max_size] = 16M\nphp_admin_value[max_input_vars] = 5000\n"
        )
    };
    let config = format!(
        "[global]\nerror_log = {}\ndaemonize = no\npid = {}\n\n{}\n{}",
        log.display(),
        dir.path().join("fpm.pid").display(),
        pool("unix", &socket.display().to_string()),
        pool("tcp", &tcp.to_string()),
    );
    let conf = dir.path().join("php-fpm.conf");
    std::fs::write(&conf, config).unwrap();
    let mut child = Command::new(binary)
        .arg("-n")
        .arg("-y")
        .arg(&conf)
        .arg("-F")
        .arg("-R") // tests may run as root (containers, CI)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!("exited with {status}: {log}"));
        }
        let unix_up = std::os::unix::net::UnixStream::connect(&socket).is_ok();
        let tcp_up = TcpStream::connect_timeout(&tcp, Duration::from_millis(200)).is_ok();
        if unix_up && tcp_up {
            return Ok(PhpFpm {
                child: Some(child),
                dir,
                socket,
                tcp,
            });
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err("did not listen within 15 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl PhpFpm {
    /// php-fpm's own log (worker output included).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("fpm.log")).unwrap_or_default()
    }

    /// Stop php-fpm and its workers, and wait for them.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGQUIT: graceful stop of the master and its workers.
            let _ = Command::new("kill")
                .arg("-QUIT")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PhpFpm {
    fn drop(&mut self) {
        self.stop();
    }
}
