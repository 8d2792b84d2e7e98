//! Raw structs -> typed [`Config`]: defaults filled in, units parsed, paths
//! resolved against the configuration file's directory, every problem
//! collected with its line and column. Routes are in `routes.rs`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_saphyr::{Location, Spanned};

use super::addr::{self, AddrSyntax};
use super::load::ConfigError;
use super::raw::{RawConfig, RawLimits, RawTls, SpannedStrings};
use super::units::{self, UnitScalar};
use super::{Config, Limits, ListenAddr, LogTarget, RunAs, TlsConfig, Workers, MAX_WORKERS};

pub(super) const LOG_LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

/// Turns a [`RawConfig`] into a [`Config`], collecting every error on the way.
pub(super) struct Validator {
    /// Absolute directory that relative paths resolve against.
    pub(super) base: PathBuf,
    pub(super) errors: Vec<ConfigError>,
}

/// The place of a spanned value, for error messages.
pub(super) fn place<T>(value: &Spanned<T>) -> Option<Location> {
    Some(value.referenced)
}

impl Validator {
    pub(super) fn new(base: &Path) -> Self {
        Validator {
            base: base.to_path_buf(),
            errors: Vec::new(),
        }
    }

    pub(super) fn error(&mut self, at: Option<Location>, message: impl Into<String>) {
        self.errors.push(ConfigError::at(at, message));
    }

    /// The whole configuration, or every problem found in it.
    pub(super) fn config(mut self, raw: RawConfig) -> Result<Config, Vec<ConfigError>> {
        let document_root = match &raw.document_root {
            None => self.default_dir("document_root", "htdocs"),
            Some(None) => None,
            Some(Some(dir)) => self.existing_dir("document_root", dir),
        };
        let tls = raw.tls.as_ref().and_then(|tls| self.tls(tls));
        let listen = self.listen(raw.listen.as_ref(), raw.tls.is_some());
        let cgi = match raw.cgi {
            None => self.default_cgi(),
            Some(None) => Vec::new(),
            Some(Some(routes)) => self.cgi_routes(&routes),
        };
        let static_off = matches!(raw.document_root, Some(None));
        let fastcgi = self.fastcgi_routes(
            raw.fastcgi.as_deref().unwrap_or_default(),
            document_root.as_ref(),
            static_off,
        );
        let config = Config {
            listen,
            server_name: self.server_name(raw.server_name.as_ref()),
            document_root,
            index: self.index(raw.index.as_deref()),
            serve_dotfiles: raw.serve_dotfiles.unwrap_or(false),
            directory_listing: raw.directory_listing.unwrap_or(false),
            access_log: self.log_target("access_log", raw.access_log.as_ref()),
            error_log: self.log_target("error_log", raw.error_log.as_ref()),
            log_level: self.log_level(raw.log_level.as_ref()),
            shutdown_grace: self.duration(
                "shutdown_grace",
                raw.shutdown_grace.as_ref(),
                10_000,
                true,
            ),
            workers: self.workers(raw.workers.as_ref()),
            limits: self.limits(raw.limits.unwrap_or_default()),
            tls,
            compression: self.compression(raw.compression.as_ref()),
            cache_control: self.cache_control(raw.cache_control.as_deref()),
            cgi,
            fastcgi,
            run_as: RunAs {
                user: self.account("user", raw.user.as_ref()),
                group: self.account("group", raw.group.as_ref()),
            },
        };
        if self.errors.is_empty() {
            Ok(config)
        } else {
            Err(self.errors)
        }
    }

    fn listen(&mut self, raw: Option<&SpannedStrings>, have_tls: bool) -> Vec<ListenAddr> {
        let Some(list) = raw else {
            return vec![ListenAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 8080)))];
        };
        if list.value.is_empty() && !have_tls {
            self.error(
                place(list),
                "listen: no addresses and no tls listeners; give at least one, like 127.0.0.1:8080",
            );
        }
        let mut out = Vec::new();
        for entry in &list.value {
            match addr::listen_addr(&entry.value, true) {
                Ok(AddrSyntax::Tcp(socket)) => out.push(ListenAddr::Tcp(socket)),
                Ok(AddrSyntax::Unix(path)) => {
                    if let Some(path) = self.file_in_existing_dir("listen", entry, &path) {
                        out.push(ListenAddr::Unix(path));
                    }
                }
                Ok(AddrSyntax::HostPort(_)) => {}
                Err(message) => self.error(place(entry), format!("listen: {message}")),
            }
        }
        out
    }

    /// A `user` or `group` name, which must exist here (not only at start-up:
    /// `--check` says so too).
    fn account(&mut self, key: &str, raw: Option<&Spanned<String>>) -> Option<String> {
        let name = raw?;
        let found = match key {
            "user" => nix::unistd::User::from_name(&name.value).map(|u| u.is_some()),
            _ => nix::unistd::Group::from_name(&name.value).map(|g| g.is_some()),
        };
        match found {
            Ok(true) => {}
            Ok(false) => self.error(
                place(name),
                format!("{key}: there is no {key} `{}` on this system", name.value),
            ),
            Err(e) => self.error(
                place(name),
                format!("{key}: cannot look up `{}`: {e}", name.value),
            ),
        }
        Some(name.value.clone())
    }

    fn server_name(&mut self, raw: Option<&Spanned<String>>) -> String {
        let Some(name) = raw else {
            return "localhost".to_owned();
        };
        if name.value.is_empty()
            || name
                .value
                .contains(|c: char| c.is_whitespace() || c.is_control() || c == '/')
        {
            self.error(
                place(name),
                format!("server_name: `{}` is not a host name", name.value),
            );
        }
        name.value.clone()
    }

    fn index(&mut self, raw: Option<&[Spanned<String>]>) -> Vec<String> {
        let Some(names) = raw else {
            return vec!["index.html".to_owned()];
        };
        for name in names {
            if let Err(message) = addr::plain_file_name(&name.value) {
                self.error(place(name), format!("index: {message}"));
            }
        }
        names.iter().map(|n| n.value.clone()).collect()
    }

    fn workers(&mut self, raw: Option<&Spanned<UnitScalar>>) -> Workers {
        let Some(workers) = raw else {
            return Workers::Auto;
        };
        match &workers.value {
            UnitScalar::Text(text) if text == "auto" => return Workers::Auto,
            UnitScalar::Int(n) => {
                if let Some(n) = usize::try_from(*n)
                    .ok()
                    .filter(|n| (1..=MAX_WORKERS).contains(n))
                {
                    return Workers::Count(n);
                }
            }
            UnitScalar::Text(_) => {}
        }
        let found = match &workers.value {
            UnitScalar::Text(text) => text.clone(),
            UnitScalar::Int(n) => n.to_string(),
        };
        self.error(
            place(workers),
            format!("workers: `{found}` is not auto or a number from 1 to {MAX_WORKERS}"),
        );
        Workers::Auto
    }

    fn log_level(&mut self, raw: Option<&Spanned<String>>) -> String {
        let Some(level) = raw else {
            return "info".to_owned();
        };
        let lower = level.value.to_ascii_lowercase();
        if !LOG_LEVELS.contains(&lower.as_str()) {
            self.error(
                place(level),
                format!(
                    "log_level: `{}` is not one of {}",
                    level.value,
                    LOG_LEVELS.join(", ")
                ),
            );
        }
        lower
    }

    /// `-` (stdout for the access log, stderr for the error log), `off`, or a file
    /// whose directory exists.
    fn log_target(&mut self, key: &str, raw: Option<&Spanned<String>>) -> LogTarget {
        let Some(target) = raw else {
            return LogTarget::Std;
        };
        match target.value.as_str() {
            "-" => LogTarget::Std,
            "off" => LogTarget::Off,
            path => self
                .file_in_existing_dir(key, target, path)
                .map_or(LogTarget::Off, LogTarget::File),
        }
    }

    fn limits(&mut self, raw: RawLimits) -> Limits {
        let max_header_bytes = self.size(
            "limits.max_header_bytes",
            raw.max_header_bytes.as_ref(),
            64 << 10,
            false,
        );
        let max_uri_bytes = self.size(
            "limits.max_uri_bytes",
            raw.max_uri_bytes.as_ref(),
            8 << 10,
            false,
        );
        Limits {
            max_request_body: self.size(
                "limits.max_request_body",
                raw.max_request_body.as_ref(),
                64 << 20,
                true,
            ),
            max_header_bytes: usize::try_from(max_header_bytes).unwrap_or(usize::MAX),
            max_uri_bytes: usize::try_from(max_uri_bytes).unwrap_or(usize::MAX),
            header_read_timeout: self.duration(
                "limits.header_read_timeout",
                raw.header_read_timeout.as_ref(),
                10_000,
                false,
            ),
            keepalive_timeout: self.duration(
                "limits.keepalive_timeout",
                raw.keepalive_timeout.as_ref(),
                75_000,
                true,
            ),
        }
    }

    fn tls(&mut self, raw: &Spanned<RawTls>) -> Option<TlsConfig> {
        let tls = &raw.value;
        let errors_before = self.errors.len();
        let mut listen = Vec::new();
        match &tls.listen {
            Some(list) if !list.value.is_empty() => {
                for entry in &list.value {
                    match addr::listen_addr(&entry.value, false) {
                        Ok(AddrSyntax::Tcp(socket)) => listen.push(socket),
                        Ok(_) => {}
                        Err(message) => self.error(place(entry), format!("tls.listen: {message}")),
                    }
                }
            }
            Some(list) => self.error(
                place(list),
                "tls.listen: give at least one address, like 127.0.0.1:8443",
            ),
            None => self.error(
                place(raw),
                "tls: `listen` is missing (like listen: [\"127.0.0.1:8443\"])",
            ),
        }
        let self_signed = tls.self_signed.unwrap_or(false);
        let cert = tls
            .cert
            .as_ref()
            .and_then(|c| self.existing_file("tls.cert", c));
        let key = tls
            .key
            .as_ref()
            .and_then(|k| self.existing_file("tls.key", k));
        match (&tls.cert, &tls.key, self_signed) {
            (Some(_), Some(_), false) | (None, None, true) => {}
            (Some(_), Some(_), true) => self.error(
                place(raw),
                "tls: give either `cert` and `key`, or `self_signed: true`, not both",
            ),
            (None, None, false) => self.error(
                place(raw),
                "tls: give `cert` and `key` (PEM files), or `self_signed: true`",
            ),
            (Some(c), None, _) => self.error(place(c), "tls: `cert` is given without `key`"),
            (None, Some(k), _) => self.error(place(k), "tls: `key` is given without `cert`"),
        }
        // The same loading and matching as start-up, so `--check` catches an
        // unreadable, malformed or mismatched pair.
        let complete = self.errors.len() == errors_before;
        if let (true, Some(cert_path), Some(key_path), Some(at)) =
            (complete, &cert, &key, &tls.cert)
        {
            if let Err(message) = crate::tls::load_key_pair(cert_path, key_path) {
                self.error(place(at), message);
            }
        }
        (self.errors.len() == errors_before).then(|| TlsConfig {
            listen,
            cert,
            key,
            self_signed,
            redirect_http: tls.redirect_http.unwrap_or(false),
        })
    }

    // ---- values with units ------------------------------------------------

    /// A duration, `default_ms` when absent; zero refused unless `zero_ok`.
    pub(super) fn duration(
        &mut self,
        key: &str,
        raw: Option<&Spanned<UnitScalar>>,
        default_ms: u64,
        zero_ok: bool,
    ) -> Duration {
        let Some(value) = raw else {
            return Duration::from_millis(default_ms);
        };
        match units::Duration::from_scalar(&value.value) {
            Ok(d) if d.get().is_zero() && !zero_ok => {
                self.error(place(value), format!("{key}: must be more than 0s"));
                Duration::from_millis(default_ms)
            }
            Ok(d) => d.get(),
            Err(e) => {
                self.error(place(value), format!("{key}: {e}"));
                Duration::from_millis(default_ms)
            }
        }
    }

    /// A size in bytes, `default` when absent; zero refused unless `zero_ok`.
    pub(super) fn size(
        &mut self,
        key: &str,
        raw: Option<&Spanned<UnitScalar>>,
        default: u64,
        zero_ok: bool,
    ) -> u64 {
        let Some(value) = raw else {
            return default;
        };
        match units::ByteSize::from_scalar(&value.value) {
            Ok(units::ByteSize(0)) if !zero_ok => {
                self.error(place(value), format!("{key}: must be more than 0 bytes"));
                default
            }
            Ok(size) => size.get(),
            Err(e) => {
                self.error(place(value), format!("{key}: {e}"));
                default
            }
        }
    }

    /// A count that must be at least 1; `default` when absent.
    pub(super) fn at_least_one(
        &mut self,
        key: &str,
        raw: Option<&Spanned<u64>>,
        default: usize,
    ) -> usize {
        match raw {
            None => default,
            Some(n) if n.value == 0 => {
                self.error(place(n), format!("{key}: must be at least 1"));
                default
            }
            Some(n) => usize::try_from(n.value).unwrap_or(usize::MAX),
        }
    }

    // ---- paths ------------------------------------------------------------

    pub(super) fn resolve(&self, path: &str) -> PathBuf {
        self.base.join(path)
    }

    /// A configured directory: resolved, must exist, stored canonical.
    pub(super) fn existing_dir(&mut self, key: &str, raw: &Spanned<String>) -> Option<PathBuf> {
        if raw.value.is_empty() {
            self.error(place(raw), format!("{key}: the path is empty"));
            return None;
        }
        let path = self.resolve(&raw.value);
        match canonical_dir(&path) {
            Ok(dir) => Some(dir),
            Err(message) => {
                self.error(place(raw), format!("{key}: {message}"));
                None
            }
        }
    }

    /// A directory used by default when its key is absent: it must exist too,
    /// and the message says how to do without it.
    fn default_dir(&mut self, key: &str, name: &str) -> Option<PathBuf> {
        let path = self.resolve(name);
        match canonical_dir(&path) {
            Ok(dir) => Some(dir),
            Err(message) => {
                self.error(
                    None,
                    format!("{key} (default `{name}`): {message}; create it, set `{key}`, or set `{key}: null`"),
                );
                None
            }
        }
    }

    /// A file that must already exist (a TLS certificate or key).
    fn existing_file(&mut self, key: &str, raw: &Spanned<String>) -> Option<PathBuf> {
        let path = self.resolve(&raw.value);
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() => Some(path),
            Ok(_) => {
                self.error(
                    place(raw),
                    format!("{key}: {} is not a file", path.display()),
                );
                None
            }
            Err(e) => {
                self.error(
                    place(raw),
                    format!("{key}: {}: {}", path.display(), io_reason(&e)),
                );
                None
            }
        }
    }

    /// A file gatehouse creates (a log, a unix socket): its directory must
    /// exist; stored as the canonical directory joined with the file name.
    fn file_in_existing_dir(
        &mut self,
        key: &str,
        at: &Spanned<String>,
        path: &str,
    ) -> Option<PathBuf> {
        let full = self.resolve(path);
        let (Some(parent), Some(name)) = (full.parent(), full.file_name()) else {
            self.error(place(at), format!("{key}: `{path}` does not name a file"));
            return None;
        };
        if path.ends_with('/') || full.is_dir() {
            self.error(
                place(at),
                format!("{key}: {} is a directory, not a file", full.display()),
            );
            return None;
        }
        match canonical_dir(parent) {
            Ok(dir) => Some(dir.join(name)),
            Err(message) => {
                self.error(
                    place(at),
                    format!("{key}: the directory of `{path}`: {message}"),
                );
                None
            }
        }
    }
}

/// `canonicalize`, with messages that say what is wrong with the directory.
pub(super) fn canonical_dir(path: &Path) -> Result<PathBuf, String> {
    match std::fs::canonicalize(path) {
        Ok(dir) if dir.is_dir() => Ok(dir),
        Ok(_) => Err(format!("{} is not a directory", path.display())),
        Err(e) => Err(format!("{}: {}", path.display(), io_reason(&e))),
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "does not exist".to_owned(),
        _ => e.to_string(),
    }
}
