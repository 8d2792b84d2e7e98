//! A CGI site for one test: a temp dir with copies of the demo programs it
//! needs (`cgi-bin/`), a small `htdocs/`, a scratch dir the programs may
//! write pid and marker files to (`CGI_SCRATCH_DIR`), and the server.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::{repo_dir, TestServer};

/// Route settings a test may change.
pub struct Options {
    pub timeout: &'static str,
    pub max_processes: usize,
    pub queue_timeout: &'static str,
    pub pass_authorization: bool,
    pub interpreters: &'static str,
    pub extra_yaml: &'static str,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: "20s",
            max_processes: 64,
            queue_timeout: "10s",
            pass_authorization: false,
            interpreters: "{ .py: python3, .sh: sh }",
            extra_yaml: "",
        }
    }
}

pub struct Site {
    pub srv: TestServer,
}

impl Site {
    /// A site with copies of these demo programs (names in `cgi-bin/`).
    pub fn new(programs: &[&str]) -> Site {
        Site::with(programs, Options::default())
    }

    pub fn with(programs: &[&str], opts: Options) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir(root.join("htdocs")).unwrap();
        fs::write(root.join("htdocs/index.html"), "<h1>home</h1>\n").unwrap();
        fs::create_dir(root.join("cgi")).unwrap();
        fs::create_dir(root.join("scratch")).unwrap();
        for name in programs {
            let from = repo_dir().join("cgi-bin").join(name);
            let to = root.join("cgi").join(name);
            fs::create_dir_all(to.parent().unwrap()).unwrap();
            fs::copy(&from, &to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
        }
        let scratch = root.join("scratch").canonicalize().unwrap();
        let yaml = format!(
            "document_root: htdocs\n\
             access_log: \"off\"\n\
             {grace}{extra}\n\
             cgi:\n  - prefix: /cgi-bin/\n    dir: cgi\n    interpreters: {interp}\n    \
             timeout: {timeout}\n    max_processes: {max}\n    queue_timeout: {queue}\n    \
             env: {{ CGI_SCRATCH_DIR: \"{scratch}\" }}\n    pass_env: [PATH, LANG]\n    \
             pass_authorization: {auth}\n",
            grace = if opts.extra_yaml.contains("shutdown_grace:") {
                ""
            } else {
                "shutdown_grace: 1s\n"
            },
            extra = opts.extra_yaml,
            interp = opts.interpreters,
            timeout = opts.timeout,
            max = opts.max_processes,
            queue = opts.queue_timeout,
            scratch = scratch.display(),
            auth = opts.pass_authorization,
        );
        Site {
            srv: TestServer::start_in(dir, &yaml),
        }
    }

    pub fn root(&self) -> &Path {
        self.srv.dir.path()
    }

    pub fn cgi_dir(&self) -> PathBuf {
        self.root().join("cgi")
    }

    pub fn scratch(&self) -> PathBuf {
        self.root().join("scratch")
    }

    /// Add a program of our own to the CGI dir.
    pub fn add(&self, name: &str, text: &str, mode: u32) {
        let path = self.cgi_dir().join(name);
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    }

    pub fn url(&self, path: &str) -> String {
        self.srv.url(path)
    }

    pub fn addr(&self) -> SocketAddr {
        self.srv.addr()
    }

    /// Wait for a pid file in the scratch dir.
    pub fn pid_from(&self, name: &str) -> u32 {
        let path = self.scratch().join(name);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(text) = fs::read_to_string(&path) {
                if let Ok(pid) = text.trim().parse() {
                    return pid;
                }
            }
            assert!(Instant::now() < deadline, "no pid file {}", path.display());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// True when `pid` is gone, or a zombie that is not the server's (a killed
/// grandchild reparented to an init that reaps slowly).
pub fn is_dead(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// Wait up to `limit` for `pid` to die.
pub fn wait_dead(pid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if is_dead(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    is_dead(pid)
}

/// `NAME=value` lines (env.py?format=text) as a map.
pub fn env_map(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// One raw HTTP/1.x exchange on a fresh connection (the request should say
/// `Connection: close`): status, lower-cased headers, de-chunked body.
pub fn raw_exchange(addr: SocketAddr, request: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    let split = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&reply[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = reply[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v == "chunked")
    {
        body = dechunk(&body);
    }
    (status, headers, body)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..eol]).unwrap().trim(), 16).unwrap();
        data = &data[eol + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// Deterministic bytes that do not compress (for body tests).
pub fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
