//! From a normalised path to SCRIPT_NAME, PATH_INFO and SCRIPT_FILENAME.
//!
//! - A `prefix` route is a mounted responder (flup, any WSGI app): SCRIPT_NAME
//!   is the prefix without its trailing `/`, PATH_INFO the rest (PEP 3333).
//! - A `match` route is php-fpm style: `split_path_info` captures SCRIPT_NAME
//!   and PATH_INFO, `index` is appended to a SCRIPT_NAME that ends in `/`
//!   (nginx's `fastcgi_index`), and SCRIPT_FILENAME is `root` + SCRIPT_NAME.
//!   The script file must exist under `root`, or the request is a 404 that
//!   never reaches the backend: CVE-2019-11043 (php-fpm's `env_path_info`
//!   underflow) and the older `cgi.fix_pathinfo` attacks (`/upload.gif/x.php`
//!   run as PHP) both start by passing a path with no such script on.
//!
//! Matching is byte-wise on the decoded UTF-8 path with the configured
//! regexes, whose `\.` is the ASCII dot only. Nothing is case-folded or
//! normalised with Unicode tables, so `/shell\u{2024}php` (ONE DOT LEADER)
//! neither matches `\.php` nor splits there (CVE-2026-24895: a look-alike dot
//! that lower-casing turned into a PHP extension while byte offsets moved).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::config::{FastCgiRoute, RouteMatch};
use crate::error::{Error, ErrorKind};
use crate::paths;

/// Where a request goes inside the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub script_name: String,
    /// `None` when nothing follows the script.
    pub path_info: Option<String>,
    pub script_filename: PathBuf,
    /// The script must exist as a regular file (`match` routes with a root).
    pub must_exist: bool,
}

/// CR, LF and NUL never go into a FastCGI param: backends that log or
/// re-parse SCRIPT_NAME / PATH_INFO could be split by them (400).
pub fn check_path_bytes(path: &str) -> Result<(), Error> {
    if path.bytes().any(|b| matches!(b, b'\r' | b'\n' | b'\0')) {
        return Err(Error::downstream(ErrorKind::BadRequest)
            .with_cause("CR, LF or NUL in a path bound for a FastCGI backend"));
    }
    Ok(())
}

/// Map `path` (normalised) under `route`. No file system access.
pub fn resolve(route: &FastCgiRoute, path: &str, document_root: Option<&Path>) -> Script {
    let base = route.root.as_deref().or(document_root);
    match &route.matcher {
        RouteMatch::Prefix(prefix) => {
            let script_name = prefix.trim_end_matches('/');
            // The router sends `/app` and `/app/...` here.
            let rest = path.strip_prefix(script_name).unwrap_or("");
            Script {
                script_name: script_name.to_string(),
                path_info: (!rest.is_empty()).then(|| rest.to_string()),
                script_filename: under(base, script_name),
                must_exist: false,
            }
        }
        RouteMatch::Regex(_) => {
            let (mut script_name, path_info) = split(route, path);
            if script_name.ends_with('/') {
                if let Some(index) = &route.index {
                    script_name.push_str(index);
                }
            }
            Script {
                script_filename: under(base, &script_name),
                script_name,
                path_info,
                must_exist: base.is_some(),
            }
        }
    }
}

/// `split_path_info` captures 1 and 2; without a match the whole path is the
/// script (nginx's `fastcgi_split_path_info` does the same).
fn split(route: &FastCgiRoute, path: &str) -> (String, Option<String>) {
    let captures = route
        .split_path_info
        .as_ref()
        .and_then(|re| re.captures(path));
    match captures.as_ref().and_then(|c| c.get(1).map(|m| (c, m))) {
        Some((c, script)) => {
            let info = c.get(2).map(|m| m.as_str()).filter(|s| !s.is_empty());
            (script.as_str().to_string(), info.map(str::to_string))
        }
        None => (path.to_string(), None),
    }
}

fn under(base: Option<&Path>, script_name: &str) -> PathBuf {
    match base {
        Some(root) => {
            // `root.join(...)`, sized once rather than copied and then grown.
            let relative = script_name.trim_start_matches('/');
            let mut path = PathBuf::with_capacity(root.as_os_str().len() + 1 + relative.len());
            path.push(root);
            path.push(relative);
            path
        }
        None => PathBuf::from(script_name),
    }
}

/// For a script that must exist: it is a regular file under `root`, reached
/// without leaving it through a symlink. Blocking: call off the runtime.
pub fn check_exists(root: &Path, script: &Script) -> Result<(), Error> {
    if !script.must_exist {
        return Ok(());
    }
    let real = paths::confine(root, &script.script_name)?;
    let meta = std::fs::metadata(&real).map_err(|e| paths::fs_error(e, &real))?;
    if !meta.is_file() {
        return Err(Error::downstream(ErrorKind::NotFound).with_cause(format!(
            "{} is not a file; not passed to the FastCGI backend",
            real.display()
        )));
    }
    Ok(())
}

/// Scripts found by [`check_exists`] in the last second. A hot PHP page is
/// checked once a second instead of costing every request a trip to the
/// blocking pool; a script deleted since is passed on for at most that long,
/// and php-fpm then answers its own "File not found." (never a different
/// file: the path still goes through `split_path_info` and confinement).
pub struct SeenScripts {
    /// By root, then by SCRIPT_NAME, so that a look-up borrows its keys
    /// instead of building a tuple of owned ones for every request. Roots are
    /// few (one per route): a list compared byte for byte costs less than
    /// hashing a `Path`, which walks its components.
    seen: std::sync::Mutex<Vec<(PathBuf, Scripts)>>,
}

type Scripts = HashMap<String, std::time::Instant>;

fn scripts_of<'a>(seen: &'a mut [(PathBuf, Scripts)], root: &Path) -> Option<&'a mut Scripts> {
    let root = root.as_os_str().as_encoded_bytes();
    seen.iter_mut()
        .find(|(r, _)| r.as_os_str().as_encoded_bytes() == root)
        .map(|(_, scripts)| scripts)
}

impl SeenScripts {
    const TTL: std::time::Duration = std::time::Duration::from_secs(1);
    const MAX: usize = 4096;

    pub fn new() -> Self {
        SeenScripts {
            seen: std::sync::Mutex::default(),
        }
    }

    pub fn recently(&self, root: &Path, script: &Script) -> bool {
        let Ok(mut seen) = self.seen.lock() else {
            return false;
        };
        scripts_of(&mut seen, root)
            .and_then(|scripts| scripts.get(&script.script_name))
            .is_some_and(|at| at.elapsed() < Self::TTL)
    }

    pub fn remember(&self, root: &Path, script: &Script) {
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        let count = |seen: &[(PathBuf, Scripts)]| {
            seen.iter().map(|(_, scripts)| scripts.len()).sum::<usize>()
        };
        if count(&seen) >= Self::MAX {
            for (_, scripts) in seen.iter_mut() {
                scripts.retain(|_, at| at.elapsed() < Self::TTL);
            }
            seen.retain(|(_, scripts)| !scripts.is_empty());
            if count(&seen) >= Self::MAX {
                return;
            }
        }
        let now = std::time::Instant::now();
        match scripts_of(&mut seen, root) {
            Some(scripts) => {
                scripts.insert(script.script_name.clone(), now);
            }
            None => seen.push((
                root.to_path_buf(),
                HashMap::from([(script.script_name.clone(), now)]),
            )),
        }
    }
}

impl Default for SeenScripts {
    fn default() -> Self {
        SeenScripts::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BackendAddr, FastCgiTarget};
    use regex::Regex;
    use std::time::Duration;

    fn route(matcher: RouteMatch, root: Option<&str>) -> FastCgiRoute {
        FastCgiRoute {
            matcher,
            target: FastCgiTarget::Backends(vec![BackendAddr::Tcp("127.0.0.1:9000".into())]),
            root: root.map(PathBuf::from),
            index: Some("index.php".into()),
            split_path_info: Some(Regex::new(r"^(.+?\.php)(/.*)?$").unwrap()),
            params: vec![],
            pass_authorization: true,
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            keepalive: 4,
            max_conns: None,
            compress: false,
        }
    }

    fn php() -> FastCgiRoute {
        route(
            RouteMatch::Regex(Regex::new(r"\.php(/|$)").unwrap()),
            Some("/srv/www"),
        )
    }

    fn script(name: &str, info: Option<&str>, file: &str) -> Script {
        Script {
            script_name: name.into(),
            path_info: info.map(Into::into),
            script_filename: file.into(),
            must_exist: true,
        }
    }

    #[test]
    fn prefix_routes_mount_a_responder() {
        let r = route(RouteMatch::Prefix("/app/".into()), None);
        let s = resolve(&r, "/app/hello/world", None);
        assert_eq!(
            (s.script_name.as_str(), s.path_info.as_deref()),
            ("/app", Some("/hello/world"))
        );
        assert!(!s.must_exist);
        let s = resolve(&r, "/app/", None);
        assert_eq!(s.path_info.as_deref(), Some("/"));
        let s = resolve(&r, "/app", None);
        assert_eq!((s.script_name.as_str(), s.path_info), ("/app", None));
    }

    #[test]
    fn split_path_info_table() {
        let r = php();
        for (path, want) in [
            (
                "/index.php",
                script("/index.php", None, "/srv/www/index.php"),
            ),
            (
                "/a/b.php/x/y",
                script("/a/b.php", Some("/x/y"), "/srv/www/a/b.php"),
            ),
            ("/b.php/", script("/b.php", Some("/"), "/srv/www/b.php")),
            // Lazy: the first .php ends the script (nginx's usual pattern).
            (
                "/x.php/y.php",
                script("/x.php", Some("/y.php"), "/srv/www/x.php"),
            ),
            // CVE-2019-11043 request shape: PATH_INFO with a newline never
            // gets here (400 first), and the script must exist.
            (
                "/dir/",
                script("/dir/index.php", None, "/srv/www/dir/index.php"),
            ),
        ] {
            assert_eq!(resolve(&r, path, None), want, "{path}");
        }
    }

    #[test]
    fn unicode_lookalike_dots_do_not_split_cve_2026_24895() {
        let r = php();
        let RouteMatch::Regex(matcher) = &r.matcher else {
            unreachable!()
        };
        for dot in ['\u{2024}', '\u{FF0E}', '\u{FE52}', '\u{0701}', '\u{3002}'] {
            let path = format!("/shell{dot}php");
            assert!(!matcher.is_match(&path), "{path:?} must not route to PHP");
            let s = resolve(&r, &format!("/up{dot}php/real.php/info"), None);
            assert_eq!(
                s.script_name,
                format!("/up{dot}php/real.php"),
                "split at the ASCII dot only"
            );
            assert_eq!(s.path_info.as_deref(), Some("/info"));
        }
        // Nor does case: `.PHP` is not `.php` for a case-sensitive pattern.
        assert!(!matcher.is_match("/x.PHP"));
    }

    #[test]
    fn cr_lf_nul_are_refused() {
        for bad in ["/a.php/\n", "/a\r.php", "/a.php\0", "/x.php/%0a"] {
            let decoded = bad.replace("%0a", "\n");
            assert_eq!(
                check_path_bytes(&decoded).unwrap_err().kind,
                ErrorKind::BadRequest,
                "{bad:?}"
            );
        }
        assert!(check_path_bytes("/fine.php/ok").is_ok());
    }

    #[test]
    fn missing_scripts_are_404_without_the_backend() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::write(root.join("real.php"), "<?php").unwrap();
        std::fs::create_dir(root.join("sub.php")).unwrap();
        let mut r = php();
        r.root = Some(root.clone());
        let ok = resolve(&r, "/real.php/extra", None);
        assert!(check_exists(&root, &ok).is_ok());
        assert_eq!(ok.script_filename, root.join("real.php"));
        for missing in [
            "/nope.php",
            "/real.php.php",
            "/sub.php",
            "/upload.gif/x.php",
        ] {
            let s = resolve(&r, missing, None);
            assert_eq!(
                check_exists(&root, &s).unwrap_err().kind,
                ErrorKind::NotFound,
                "{missing}"
            );
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("/etc/hostname", root.join("escape.php")).unwrap();
            let s = resolve(&r, "/escape.php", None);
            assert!(
                check_exists(&root, &s).is_err(),
                "a symlink out of root is refused"
            );
        }
    }

    #[test]
    fn root_falls_back_to_document_root() {
        let r = route(RouteMatch::Regex(Regex::new(r"\.php$").unwrap()), None);
        let s = resolve(&r, "/i.php", Some(Path::new("/docs")));
        assert_eq!(s.script_filename, PathBuf::from("/docs/i.php"));
        assert!(s.must_exist);
        let s = resolve(&r, "/i.php", None);
        assert!(!s.must_exist, "nothing to check against");
    }

    #[test]
    fn script_filename_is_root_joined_with_script_name() {
        for (root, name) in [
            ("/srv/www", "/a/b.php"),
            ("/srv/www/", "/b.php"),
            ("php", "//b.php"),
            ("/", "/b.php"),
            ("/srv", "/"),
        ] {
            let root = Path::new(root);
            let joined = root.join(name.trim_start_matches('/'));
            assert_eq!(under(Some(root), name), joined, "{root:?} {name:?}");
        }
    }

    #[test]
    fn seen_scripts_are_remembered_per_root_and_name() {
        let seen = SeenScripts::new();
        let a = script("/a.php", None, "/srv/www/a.php");
        let b = script("/b.php", None, "/srv/www/b.php");
        let (root, other_root) = (Path::new("/srv/www"), Path::new("/srv/other"));
        assert!(!seen.recently(root, &a));
        seen.remember(root, &a);
        assert!(seen.recently(root, &a));
        assert!(!seen.recently(root, &b));
        assert!(!seen.recently(other_root, &a));
    }
}
