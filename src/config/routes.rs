//! The `cgi:` and `fastcgi:` lists, validated into routes.

use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;
use serde_saphyr::Spanned;

use super::addr::{self, AddrSyntax};
use super::raw::{Pairs, RawCgi, RawFastCgi, RawSpawn};
use super::validate::{place, Validator};
use super::{BackendAddr, CgiRoute, FastCgiRoute, FastCgiTarget, RouteMatch, SpawnConfig};

/// Interpreters used when a route has no `interpreters` key.
const DEFAULT_INTERPRETERS: [(&str, &str); 3] =
    [(".py", "python3"), (".pl", "perl"), (".sh", "sh")];
const DEFAULT_PASS_ENV: [&str; 3] = ["PATH", "LANG", "TZ"];

impl Validator {
    /// Without a `cgi` key: `/cgi-bin/` -> `<base>/cgi-bin` when that directory exists.
    pub(super) fn default_cgi(&self) -> Vec<CgiRoute> {
        match super::validate::canonical_dir(&self.resolve("cgi-bin")) {
            Ok(dir) => vec![cgi_route_defaults("/cgi-bin/".to_owned(), dir)],
            Err(_) => Vec::new(),
        }
    }

    pub(super) fn cgi_routes(&mut self, routes: &[Spanned<RawCgi>]) -> Vec<CgiRoute> {
        let mut out: Vec<CgiRoute> = Vec::new();
        for (i, route) in routes.iter().enumerate() {
            let key = format!("cgi[{i}]");
            if let Some(route) = self.cgi_route(&key, route) {
                if out.iter().any(|r| r.prefix == route.prefix) {
                    let at = routes[i].value.prefix.as_ref().map(|p| p.referenced);
                    self.error(
                        at,
                        format!(
                            "{key}.prefix: `{}` is already used by another cgi route",
                            route.prefix
                        ),
                    );
                }
                out.push(route);
            }
        }
        out
    }

    fn cgi_route(&mut self, key: &str, raw: &Spanned<RawCgi>) -> Option<CgiRoute> {
        let errors_before = self.errors.len();
        let route = &raw.value;
        let prefix = self.prefix(key, route.prefix.as_ref(), raw);
        let dir = match &route.dir {
            Some(dir) => self.existing_dir(&format!("{key}.dir"), dir),
            None => {
                self.error(
                    place(raw),
                    format!("{key}: `dir` is missing (the directory holding the programs)"),
                );
                None
            }
        };
        let interpreters = match &route.interpreters {
            None => default_interpreters(),
            Some(map) => self.interpreters(key, map),
        };
        let env = route
            .env
            .as_ref()
            .map(|env| self.variables(&format!("{key}.env"), env))
            .unwrap_or_default();
        let pass_env = match &route.pass_env {
            None => DEFAULT_PASS_ENV.iter().map(|s| (*s).to_owned()).collect(),
            Some(names) => {
                for name in names {
                    if let Err(message) = addr::env_name(&name.value) {
                        self.error(place(name), format!("{key}.pass_env: {message}"));
                    }
                }
                names.iter().map(|n| n.value.clone()).collect()
            }
        };
        let timeout = self.duration(
            &format!("{key}.timeout"),
            route.timeout.as_ref(),
            60_000,
            false,
        );
        let max_processes = self.at_least_one(
            &format!("{key}.max_processes"),
            route.max_processes.as_ref(),
            64,
        );
        let queue_timeout = self.duration(
            &format!("{key}.queue_timeout"),
            route.queue_timeout.as_ref(),
            10_000,
            true,
        );
        let route = CgiRoute {
            prefix: prefix?,
            dir: dir?,
            interpreters,
            timeout,
            max_processes,
            queue_timeout,
            env,
            pass_env,
            pass_authorization: route.pass_authorization.unwrap_or(false),
            compress: route.compress.unwrap_or(false),
        };
        (self.errors.len() == errors_before).then_some(route)
    }

    fn interpreters(
        &mut self,
        key: &str,
        map: &Pairs<Spanned<String>, Spanned<super::raw::Command>>,
    ) -> Vec<(String, Vec<String>)> {
        let mut out = Vec::new();
        for (ext, command) in &map.0 {
            let valid_ext = ext.value.len() > 1
                && ext.value.starts_with('.')
                && !ext.value[1..].contains(['.', '/', '\\', '\0'])
                && !ext.value.contains(char::is_whitespace);
            if !valid_ext {
                self.error(
                    place(ext),
                    format!("{key}.interpreters: `{}` is not a file extension; write it with its dot, like `.py`", ext.value),
                );
            }
            let words = &command.value.0;
            if words.is_empty() || words.iter().any(|w| w.is_empty() || w.contains('\0')) {
                self.error(
                    place(command),
                    format!("{key}.interpreters.{}: the command is empty; write it like `python3` or [python3, -u]", ext.value),
                );
            }
            out.push((ext.value.clone(), words.clone()));
        }
        out
    }

    /// `env:` and `params:` maps: names checked, order kept.
    fn variables(
        &mut self,
        key: &str,
        map: &Pairs<Spanned<String>, String>,
    ) -> Vec<(String, String)> {
        for (name, value) in &map.0 {
            if let Err(message) = addr::env_name(&name.value) {
                self.error(place(name), format!("{key}: {message}"));
            } else if value.contains('\0') {
                self.error(
                    place(name),
                    format!("{key}.{}: the value contains a NUL byte", name.value),
                );
            }
        }
        map.0
            .iter()
            .map(|(n, v)| (n.value.clone(), v.clone()))
            .collect()
    }

    /// A route's `prefix`: required (for cgi), normalised to `/.../`.
    fn prefix<T>(
        &mut self,
        key: &str,
        raw: Option<&Spanned<String>>,
        route: &Spanned<T>,
    ) -> Option<String> {
        let Some(prefix) = raw else {
            self.error(
                place(route),
                format!("{key}: `prefix` is missing (a URL path like /cgi-bin/)"),
            );
            return None;
        };
        match addr::normalise_prefix(&prefix.value) {
            Ok(p) => Some(p),
            Err(message) => {
                self.error(place(prefix), format!("{key}.prefix: {message}"));
                None
            }
        }
    }

    pub(super) fn fastcgi_routes(
        &mut self,
        routes: &[Spanned<RawFastCgi>],
        document_root: Option<&PathBuf>,
        static_off: bool,
    ) -> Vec<FastCgiRoute> {
        let mut out: Vec<FastCgiRoute> = Vec::new();
        for (i, route) in routes.iter().enumerate() {
            let key = format!("fastcgi[{i}]");
            if let Some(route) = self.fastcgi_route(&key, route, document_root, static_off) {
                if let RouteMatch::Prefix(prefix) = &route.matcher {
                    let taken = out
                        .iter()
                        .any(|r| matches!(&r.matcher, RouteMatch::Prefix(p) if p == prefix));
                    if taken {
                        let at = routes[i].value.prefix.as_ref().map(|p| p.referenced);
                        self.error(
                            at,
                            format!(
                                "{key}.prefix: `{prefix}` is already used by another fastcgi route"
                            ),
                        );
                    }
                }
                out.push(route);
            }
        }
        out
    }

    fn fastcgi_route(
        &mut self,
        key: &str,
        raw: &Spanned<RawFastCgi>,
        document_root: Option<&PathBuf>,
        static_off: bool,
    ) -> Option<FastCgiRoute> {
        let errors_before = self.errors.len();
        let route = &raw.value;
        let matcher = match (&route.prefix, &route.matches) {
            (Some(_), None) => self
                .prefix(key, route.prefix.as_ref(), raw)
                .map(RouteMatch::Prefix),
            (None, Some(pattern)) => self
                .regex(&format!("{key}.match"), pattern)
                .map(RouteMatch::Regex),
            (Some(_), Some(_)) => {
                self.error(
                    place(raw),
                    format!("{key}: give `prefix` or `match`, not both"),
                );
                None
            }
            (None, None) => {
                self.error(
                    place(raw),
                    format!(
                        "{key}: give `prefix` (like /app/) or `match` (a regex like '\\.php(/|$)')"
                    ),
                );
                None
            }
        };
        let target = match (&route.backends, &route.spawn) {
            (Some(backends), None) => self.backends(key, backends).map(FastCgiTarget::Backends),
            (None, Some(spawn)) => self.spawn(key, spawn).map(FastCgiTarget::Spawn),
            (Some(_), Some(_)) => {
                self.error(
                    place(raw),
                    format!("{key}: give `backends` or `spawn`, not both"),
                );
                None
            }
            (None, None) => {
                self.error(
                    place(raw),
                    format!("{key}: give `backends` (addresses of running responders) or `spawn` (a command to start)"),
                );
                None
            }
        };
        let root = match &route.root {
            Some(root) => self.existing_dir(&format!("{key}.root"), root),
            None if route.matches.is_some() => {
                // A document_root that failed validation is reported already.
                if static_off {
                    self.error(
                        place(raw),
                        format!("{key}: a `match` route needs `root` when document_root is null"),
                    );
                }
                document_root.cloned()
            }
            None => None,
        };
        if let Some(index) = &route.index {
            if let Err(message) = addr::plain_file_name(&index.value) {
                self.error(place(index), format!("{key}.index: {message}"));
            }
        }
        let split_path_info = route
            .split_path_info
            .as_ref()
            .and_then(|pattern| self.split_path_info(&format!("{key}.split_path_info"), pattern));
        let params = route
            .params
            .as_ref()
            .map(|params| self.variables(&format!("{key}.params"), params))
            .unwrap_or_default();
        let max_conns = route
            .max_conns
            .as_ref()
            .map(|n| self.at_least_one(&format!("{key}.max_conns"), Some(n), 1));
        let connect_timeout = self.duration(
            &format!("{key}.connect_timeout"),
            route.connect_timeout.as_ref(),
            5_000,
            false,
        );
        let read_timeout = self.duration(
            &format!("{key}.read_timeout"),
            route.read_timeout.as_ref(),
            60_000,
            false,
        );
        let route = FastCgiRoute {
            matcher: matcher?,
            target: target?,
            root,
            index: route.index.as_ref().map(|i| i.value.clone()),
            split_path_info,
            params,
            pass_authorization: route.pass_authorization.unwrap_or(true),
            connect_timeout,
            read_timeout,
            keepalive: route
                .keepalive
                .map_or(16, |k| usize::try_from(k).unwrap_or(usize::MAX)),
            max_conns,
            compress: route.compress.unwrap_or(false),
        };
        (self.errors.len() == errors_before).then_some(route)
    }

    fn regex(&mut self, key: &str, pattern: &Spanned<String>) -> Option<Regex> {
        match Regex::new(&pattern.value) {
            Ok(re) => Some(re),
            Err(e) => {
                self.error(
                    place(pattern),
                    format!(
                        "{key}: invalid regex `{}`: {}",
                        pattern.value,
                        addr::regex_error_text(&e)
                    ),
                );
                None
            }
        }
    }

    fn split_path_info(&mut self, key: &str, pattern: &Spanned<String>) -> Option<Regex> {
        let re = self.regex(key, pattern)?;
        if re.captures_len() < 2 {
            self.error(
                place(pattern),
                format!("{key}: the regex needs a capture group for SCRIPT_NAME (and a second for PATH_INFO)"),
            );
            return None;
        }
        Some(re)
    }

    fn backends(
        &mut self,
        key: &str,
        list: &Spanned<Vec<Spanned<String>>>,
    ) -> Option<Vec<BackendAddr>> {
        if list.value.is_empty() {
            self.error(
                place(list),
                format!("{key}.backends: give at least one address, like 127.0.0.1:9000"),
            );
            return None;
        }
        let mut out = Vec::new();
        for entry in &list.value {
            match addr::backend_addr(&entry.value) {
                Ok(AddrSyntax::Unix(path)) => out.push(BackendAddr::Unix(self.resolve(&path))),
                Ok(AddrSyntax::HostPort(hp)) => out.push(BackendAddr::Tcp(hp)),
                Ok(AddrSyntax::Tcp(socket)) => out.push(BackendAddr::Tcp(socket.to_string())),
                Err(message) => self.error(place(entry), format!("{key}.backends: {message}")),
            }
        }
        (out.len() == list.value.len()).then_some(out)
    }

    fn spawn(&mut self, key: &str, raw: &Spanned<RawSpawn>) -> Option<SpawnConfig> {
        let command = match &raw.value.command {
            Some(command) if !command.value.is_empty() => {
                let words: Vec<String> = command.value.iter().map(|w| w.value.clone()).collect();
                if let Some(bad) = command
                    .value
                    .iter()
                    .find(|w| w.value.is_empty() || w.value.contains('\0'))
                {
                    self.error(
                        place(bad),
                        format!("{key}.spawn.command: an empty or NUL-containing argument"),
                    );
                    return None;
                }
                words
            }
            Some(command) => {
                self.error(
                    place(command),
                    format!("{key}.spawn.command: the command is empty"),
                );
                return None;
            }
            None => {
                self.error(
                    place(raw),
                    format!("{key}.spawn: `command` is missing (a list like [python3, app.py])"),
                );
                return None;
            }
        };
        let processes = self.at_least_one(
            &format!("{key}.spawn.processes"),
            raw.value.processes.as_ref(),
            1,
        );
        Some(SpawnConfig {
            command,
            processes,
            working_dir: self.base.clone(),
        })
    }
}

fn default_interpreters() -> Vec<(String, Vec<String>)> {
    DEFAULT_INTERPRETERS
        .iter()
        .map(|(ext, cmd)| ((*ext).to_owned(), vec![(*cmd).to_owned()]))
        .collect()
}

fn cgi_route_defaults(prefix: String, dir: PathBuf) -> CgiRoute {
    CgiRoute {
        prefix,
        dir,
        interpreters: default_interpreters(),
        timeout: Duration::from_secs(60),
        max_processes: 64,
        queue_timeout: Duration::from_secs(10),
        env: Vec::new(),
        pass_env: DEFAULT_PASS_ENV.iter().map(|s| (*s).to_owned()).collect(),
        pass_authorization: false,
        compress: false,
    }
}
