//! The routing decision: a pure function of the normalised path, compiled
//! once at start-up. FastCGI routes first (in configuration order), then CGI
//! routes (longest prefix wins), then static files.

use crate::config::{Config, RouteMatch};

/// Where a request goes; indexes refer to `config.fastcgi` / `config.cgi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    FastCgi(usize),
    Cgi(usize),
    Static,
}

enum FastCgiMatcher {
    Prefix(String),
    Regex(regex::Regex),
}

/// Routes compiled from the configuration.
pub struct Router {
    fastcgi: Vec<FastCgiMatcher>,
    /// (prefix, index into `config.cgi`), longest prefix first.
    cgi: Vec<(String, usize)>,
}

impl Router {
    pub fn new(config: &Config) -> Self {
        let fastcgi = config
            .fastcgi
            .iter()
            .map(|r| match &r.matcher {
                RouteMatch::Prefix(p) => FastCgiMatcher::Prefix(p.clone()),
                RouteMatch::Regex(re) => FastCgiMatcher::Regex(re.clone()),
            })
            .collect();
        let mut cgi: Vec<(String, usize)> = config
            .cgi
            .iter()
            .enumerate()
            .map(|(i, r)| (r.prefix.clone(), i))
            .collect();
        cgi.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        Router { fastcgi, cgi }
    }

    /// Decide where a normalised path goes.
    pub fn route(&self, path: &str) -> Route {
        for (i, m) in self.fastcgi.iter().enumerate() {
            let hit = match m {
                FastCgiMatcher::Prefix(p) => prefix_matches(p, path),
                FastCgiMatcher::Regex(re) => re.is_match(path),
            };
            if hit {
                return Route::FastCgi(i);
            }
        }
        for (prefix, i) in &self.cgi {
            if path.starts_with(prefix.as_str()) {
                return Route::Cgi(*i);
            }
        }
        Route::Static
    }
}

/// `/app/` matches `/app/...` and the bare mount point `/app`, as a WSGI
/// mount does (SCRIPT_NAME=/app, empty PATH_INFO).
fn prefix_matches(prefix: &str, path: &str) -> bool {
    path.starts_with(prefix) || prefix.strip_suffix('/') == Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_matching_includes_bare_mount_point() {
        assert!(prefix_matches("/app/", "/app/x"));
        assert!(prefix_matches("/app/", "/app/"));
        assert!(prefix_matches("/app/", "/app"));
        assert!(!prefix_matches("/app/", "/apple"));
        assert!(!prefix_matches("/app/", "/ap"));
    }
}
