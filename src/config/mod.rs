//! The validated configuration every other module reads.
//!
//! `raw` holds the serde structs that mirror the YAML (unknown keys rejected);
//! `load` turns them into these typed values: durations and sizes parsed,
//! paths made absolute against the configuration file's directory, regexes
//! compiled once, every problem collected with its line and column.

mod addr;
mod compression;
mod load;
mod raw;
mod routes;
#[cfg(test)]
mod tests;
pub mod units;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;

pub use load::{builtin_defaults, load_file, load_str, ConfigError, ConfigErrors};

/// Where a listener binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// Where a log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    /// `-`: stdout for the access log, stderr for the error log.
    Std,
    File(PathBuf),
    Off,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_request_body: u64,
    pub max_header_bytes: usize,
    pub max_uri_bytes: usize,
    pub header_read_timeout: Duration,
    pub keepalive_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub listen: Vec<SocketAddr>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub self_signed: bool,
    pub redirect_http: bool,
}

/// `compression:`: gzip and brotli for static text files (and for the
/// CGI/FastCGI routes that set `compress: true`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compression {
    pub enabled: bool,
    pub gzip: bool,
    pub brotli: bool,
    /// Smaller files are sent as they are: compressing them does not pay.
    pub min_size: u64,
    /// 1 (fastest) to 9 (smallest).
    pub gzip_level: u32,
    /// Brotli quality, 0 to 11 (gatehouse uses 1 to 9 on the fly).
    pub brotli_level: u32,
}

impl Default for Compression {
    fn default() -> Self {
        Compression {
            enabled: true,
            gzip: true,
            brotli: true,
            min_size: 1024,
            gzip_level: 6,
            brotli_level: 4,
        }
    }
}

/// One `cache_control:` rule: static responses whose path starts with
/// `prefix` get `Cache-Control: value` (the longest prefix wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheControlRule {
    pub prefix: String,
    pub value: http::HeaderValue,
}

/// One `cgi:` route.
#[derive(Debug, Clone)]
pub struct CgiRoute {
    /// URL prefix, always ending in `/`.
    pub prefix: String,
    /// Absolute, canonical directory holding the programs.
    pub dir: PathBuf,
    /// Extension with its dot (`.py`) -> command and arguments (`["python3"]`).
    pub interpreters: Vec<(String, Vec<String>)>,
    pub timeout: Duration,
    pub max_processes: usize,
    /// How long a request waits for one of the `max_processes` slots
    /// before 503.
    pub queue_timeout: Duration,
    pub env: Vec<(String, String)>,
    pub pass_env: Vec<String>,
    pub pass_authorization: bool,
    /// Compress the program's output when the client accepts it and the
    /// program did not set Content-Encoding itself.
    pub compress: bool,
}

/// How a FastCGI route is chosen.
#[derive(Debug, Clone)]
pub enum RouteMatch {
    /// A mounted responder: SCRIPT_NAME is the prefix without its trailing `/`.
    Prefix(String),
    /// A regex on the decoded path (php-fpm style).
    Regex(Regex),
}

/// A FastCGI backend address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BackendAddr {
    /// `host:port`, resolved when connecting.
    Tcp(String),
    Unix(PathBuf),
}

/// A managed backend that gatehouse starts and supervises.
#[derive(Debug, Clone)]
pub struct SpawnConfig {
    /// Program and arguments; relative paths in arguments are left as written,
    /// the working directory is the configuration file's directory.
    pub command: Vec<String>,
    pub processes: usize,
    pub working_dir: PathBuf,
}

#[derive(Debug, Clone)]
pub enum FastCgiTarget {
    Backends(Vec<BackendAddr>),
    Spawn(SpawnConfig),
}

/// One `fastcgi:` route.
#[derive(Debug, Clone)]
pub struct FastCgiRoute {
    pub matcher: RouteMatch,
    pub target: FastCgiTarget,
    /// Absolute; SCRIPT_FILENAME = root + SCRIPT_NAME.
    pub root: Option<PathBuf>,
    pub index: Option<String>,
    pub split_path_info: Option<Regex>,
    pub params: Vec<(String, String)>,
    pub pass_authorization: bool,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub keepalive: usize,
    pub max_conns: Option<usize>,
    /// As [`CgiRoute::compress`].
    pub compress: bool,
}

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Vec<ListenAddr>,
    pub server_name: String,
    /// Absolute, canonical; `None` disables static serving.
    pub document_root: Option<PathBuf>,
    pub index: Vec<String>,
    pub serve_dotfiles: bool,
    pub directory_listing: bool,
    pub access_log: LogTarget,
    pub error_log: LogTarget,
    pub log_level: String,
    pub shutdown_grace: Duration,
    pub workers: Workers,
    pub limits: Limits,
    pub tls: Option<TlsConfig>,
    pub compression: Compression,
    /// Longest prefix first.
    pub cache_control: Vec<CacheControlRule>,
    pub cgi: Vec<CgiRoute>,
    pub fastcgi: Vec<FastCgiRoute>,
    /// Who to become after binding, when started as root (see `privileges`).
    pub run_as: RunAs,
}

/// The `workers` key: how many threads run the event loop (accepting,
/// HTTP, static files, talking to programs and backends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workers {
    /// One fewer than the CPUs gatehouse may use, at least one: the CGI
    /// programs and FastCGI backends it serves need a CPU too.
    Auto,
    Count(usize),
}

/// The most `workers` accepts.
pub const MAX_WORKERS: usize = 1024;

impl Workers {
    /// The number of threads, given how many CPUs this process may use.
    pub fn threads(self, cpus: usize) -> usize {
        match self {
            Workers::Auto => cpus.saturating_sub(1).max(1),
            Workers::Count(n) => n,
        }
    }
}

/// The `user` and `group` keys: names that exist on this system.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunAs {
    pub user: Option<String>,
    pub group: Option<String>,
}

impl ListenAddr {
    /// Parse `IP:PORT` (`[::1]:8080` for IPv6; port 0 asks for any free port)
    /// or `unix:/path` (a relative path resolves against `base`).
    pub fn parse(text: &str, base: &Path) -> Result<ListenAddr, String> {
        Ok(match addr::listen_addr(text, true)? {
            addr::AddrSyntax::Tcp(sock) => ListenAddr::Tcp(sock),
            addr::AddrSyntax::Unix(path) => ListenAddr::Unix(base.join(path)),
            addr::AddrSyntax::HostPort(other) => return Err(format!("`{other}` is not IP:PORT")),
        })
    }
}

/// The configuration the command line asks for: `--config FILE`, else
/// `conf/gatehouse.yaml` when it exists, else the built-in defaults; then
/// `--listen` addresses (if any) replace the configured ones.
pub fn load_for_cli(file: Option<&Path>, listen: &[String]) -> Result<Config, ConfigErrors> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let default_file = Path::new("conf/gatehouse.yaml");
    let mut config = match file {
        Some(file) => load_file(file)?,
        None if default_file.is_file() => load_file(default_file)?,
        None => builtin_defaults(&cwd)?,
    };
    if !listen.is_empty() {
        let mut addrs = Vec::new();
        let mut errors = Vec::new();
        for text in listen {
            match ListenAddr::parse(text, &cwd) {
                Ok(addr) => addrs.push(addr),
                Err(message) => errors.push(ConfigError {
                    message: format!("--listen: {message}"),
                    line: None,
                    column: None,
                }),
            }
        }
        if !errors.is_empty() {
            return Err(ConfigErrors { file: None, errors });
        }
        config.listen = addrs;
    }
    Ok(config)
}
