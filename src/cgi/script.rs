//! Finding the program a CGI URL names, and how to run it.
//!
//! The path below the route prefix is walked one segment at a time: the
//! first segment that is a regular file is the script and the rest of the
//! path is PATH_INFO (RFC 3875 section 4.1.5; Apache's and lighttpd's
//! behaviour). `/cgi-bin/app.py/a b/c` runs `app.py` with PATH_INFO `/a b/c`.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use crate::config::CgiRoute;
use crate::error::{msg, Error, ErrorKind};

/// A program found for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// Canonical path of the file, inside the route's directory.
    pub file: PathBuf,
    /// Its directory: the working directory of the child.
    pub dir: PathBuf,
    /// URL path of the script (SCRIPT_NAME), decoded.
    pub script_name: String,
    /// The rest of the URL path (PATH_INFO), decoded; starts with `/`.
    pub path_info: Option<String>,
    /// What to execute: an interpreter and its arguments followed by the
    /// script, or the script alone. Never anything from the query string
    /// (RFC 3875 section 4.4 argv is how CVE-2012-1823 happened).
    pub argv: Vec<OsString>,
    /// `nph-` programs write a whole HTTP response head (section 5).
    pub nph: bool,
}

/// Find the program for `path` (normalised, starting with `route.prefix`).
/// Blocking file system calls: run it off the async workers.
///
/// 404 when nothing is there, 403 for a directory, a special file, a file
/// outside the route's directory, or a file that is neither executable nor
/// matched by `interpreters`. The file's contents are never read here, so a
/// script's source can not be sent.
pub fn locate(route: &CgiRoute, path: &str) -> Result<Script, Error> {
    let rel = path
        .strip_prefix(route.prefix.as_str())
        .ok_or_else(|| not_found("path outside the CGI prefix"))?;
    let segments: Vec<&str> = rel.split('/').collect();
    let mut fs_path = route.dir.clone();
    for (i, segment) in segments.iter().enumerate() {
        if segment.is_empty() {
            break;
        }
        fs_path.push(segment);
        let meta = fs::metadata(&fs_path).map_err(|e| lookup_error(&e))?;
        if meta.is_dir() {
            continue;
        }
        if !meta.is_file() {
            return Err(forbidden("not a regular file"));
        }
        let file = confine(route, &fs_path)?;
        let name = *segment;
        let argv = command(route, name, &file, meta.permissions().mode())?;
        let dir = file
            .parent()
            .map(PathBuf::from)
            .unwrap_or_else(|| route.dir.clone());
        let script_name = format!("{}{}", route.prefix, segments[..=i].join("/"));
        let path_info =
            (i + 1 < segments.len()).then(|| format!("/{}", segments[i + 1..].join("/")));
        return Ok(Script {
            file,
            dir,
            script_name,
            path_info,
            argv,
            nph: name.starts_with("nph-"),
        });
    }
    Err(forbidden("a directory, not a program"))
}

/// The canonical file, refused when a symlink leads out of the route's dir.
fn confine(route: &CgiRoute, candidate: &std::path::Path) -> Result<PathBuf, Error> {
    let root = route.dir.canonicalize().map_err(|e| lookup_error(&e))?;
    let file = candidate.canonicalize().map_err(|e| lookup_error(&e))?;
    if !file.starts_with(&root) {
        return Err(forbidden("the program resolves outside the CGI directory"));
    }
    Ok(file)
}

/// The argv: `interpreters` by extension, else the file itself if executable.
fn command(
    route: &CgiRoute,
    name: &str,
    file: &std::path::Path,
    mode: u32,
) -> Result<Vec<OsString>, Error> {
    let interpreter = route
        .interpreters
        .iter()
        .filter(|(ext, cmd)| {
            name.len() > ext.len() && name.ends_with(ext.as_str()) && !cmd.is_empty()
        })
        .max_by_key(|(ext, _)| ext.len());
    if let Some((_, cmd)) = interpreter {
        let mut argv: Vec<OsString> = cmd.iter().map(OsString::from).collect();
        argv.push(file.as_os_str().to_owned());
        return Ok(argv);
    }
    if mode & 0o111 == 0 {
        return Err(forbidden(
            "not executable, and no interpreter is configured for its extension",
        ));
    }
    Ok(vec![file.as_os_str().to_owned()])
}

fn lookup_error(err: &io::Error) -> Error {
    match err.kind() {
        io::ErrorKind::PermissionDenied => forbidden("permission denied"),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => not_found("no such program"),
        _ => Error::internal(format!("looking up a CGI program: {err}")),
    }
}

fn not_found(why: &str) -> Error {
    Error::downstream(ErrorKind::NotFound).with_cause(msg(why))
}

fn forbidden(why: &str) -> Error {
    Error::downstream(ErrorKind::Forbidden).with_cause(msg(why))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;
    use std::time::Duration;

    use super::*;

    fn route(dir: &std::path::Path) -> CgiRoute {
        CgiRoute {
            prefix: "/cgi-bin/".into(),
            dir: dir.canonicalize().unwrap(),
            interpreters: vec![
                (".py".into(), vec!["python3".into()]),
                (".sh".into(), vec!["sh".into()]),
            ],
            timeout: Duration::from_secs(5),
            max_processes: 4,
            queue_timeout: std::time::Duration::from_secs(10),
            env: Vec::new(),
            pass_env: Vec::new(),
            pass_authorization: false,
            compress: false,
        }
    }

    fn write(path: &std::path::Path, mode: u32) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, "#!/bin/sh\necho secret source\n").unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn fixture() -> (tempfile::TempDir, CgiRoute) {
        let tmp = tempfile::tempdir().unwrap();
        let cgi = tmp.path().join("cgi");
        write(&cgi.join("app.py"), 0o644);
        write(&cgi.join("run"), 0o755);
        write(&cgi.join("plain.txt"), 0o644);
        write(&cgi.join("nph-raw"), 0o755);
        write(&cgi.join("sub/deep.sh"), 0o644);
        write(&tmp.path().join("outside"), 0o755);
        symlink(tmp.path().join("outside"), cgi.join("escape")).unwrap();
        symlink(cgi.join("run"), cgi.join("alias")).unwrap();
        let route = route(&cgi);
        (tmp, route)
    }

    fn kind(result: Result<Script, Error>) -> ErrorKind {
        result.expect_err("expected an error").kind
    }

    #[test]
    fn interpreted_script_with_path_info() {
        let (_tmp, route) = fixture();
        let s = locate(&route, "/cgi-bin/app.py/a b/c").unwrap();
        assert_eq!(s.file, route.dir.join("app.py"));
        assert_eq!(s.dir, route.dir);
        assert_eq!(s.script_name, "/cgi-bin/app.py");
        assert_eq!(s.path_info.as_deref(), Some("/a b/c"));
        assert_eq!(
            s.argv,
            [OsString::from("python3"), route.dir.join("app.py").into()]
        );
        assert!(!s.nph);

        let s = locate(&route, "/cgi-bin/app.py").unwrap();
        assert_eq!(s.path_info, None);
        let s = locate(&route, "/cgi-bin/app.py/").unwrap();
        assert_eq!(s.path_info.as_deref(), Some("/"));
    }

    #[test]
    fn executables_subdirectories_and_nph() {
        let (_tmp, route) = fixture();
        let s = locate(&route, "/cgi-bin/run/x").unwrap();
        assert_eq!(s.argv, [OsString::from(route.dir.join("run"))]);
        let s = locate(&route, "/cgi-bin/sub/deep.sh").unwrap();
        assert_eq!(s.script_name, "/cgi-bin/sub/deep.sh");
        assert_eq!(s.dir, route.dir.join("sub"));
        assert_eq!(s.argv[0], "sh");
        assert!(locate(&route, "/cgi-bin/nph-raw").unwrap().nph);
        // A symlink inside the directory is fine.
        assert_eq!(
            locate(&route, "/cgi-bin/alias").unwrap().file,
            route.dir.join("run")
        );
    }

    #[test]
    fn refusals() {
        let (_tmp, route) = fixture();
        assert_eq!(
            kind(locate(&route, "/cgi-bin/missing.py")),
            ErrorKind::NotFound
        );
        assert_eq!(
            kind(locate(&route, "/cgi-bin/sub/missing")),
            ErrorKind::NotFound
        );
        assert_eq!(kind(locate(&route, "/cgi-bin/")), ErrorKind::Forbidden);
        assert_eq!(kind(locate(&route, "/cgi-bin/sub/")), ErrorKind::Forbidden);
        assert_eq!(kind(locate(&route, "/cgi-bin/sub")), ErrorKind::Forbidden);
        assert_eq!(
            kind(locate(&route, "/cgi-bin/plain.txt")),
            ErrorKind::Forbidden
        );
        assert_eq!(
            kind(locate(&route, "/cgi-bin/escape")),
            ErrorKind::Forbidden
        );
        assert_eq!(
            kind(locate(&route, "/elsewhere/app.py")),
            ErrorKind::NotFound
        );
    }
}
