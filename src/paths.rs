//! Request paths: percent-decoding, normalisation, and confinement under a root.
//! Every handler gets its path from here, so no handler can be walked out of
//! its root.
//!
//! Decisions, each pinned by a test below:
//! - Decoding happens exactly once (`%252e` is the literal name `%2e`): a
//!   second decode is how IIS fell to the 2001 "double decode" traversal
//!   (CVE-2001-0333).
//! - An encoded slash (`%2F`) is 404, as with Apache's `AllowEncodedSlashes Off`:
//!   a name cannot contain `/`, and decoding it into a separator would let a
//!   client hide segments from prefix routing.
//! - Backslashes, raw or encoded, are 400: they are a separator on Windows and
//!   for some backends, so a name holding one would mean different things to
//!   us and to them.
//! - `..` segments in any spelling (`..`, `%2e%2e`, `.%2e`, `%2E.`) are 403;
//!   they are refused, not resolved, so a path never moves up.
//! - Overlong UTF-8 (`%c0%ae`, the classic encoded dot, CVE-2000-0884) and any
//!   other invalid UTF-8 is 400.
//! - Control bytes, raw or encoded (`%0d%0a`, `%00`, `%7f`), are 400: a path
//!   ends up in headers (`Location`), logs and CGI variables, where CR/LF
//!   splits lines (response splitting, log forging; CWE-113, CWE-117).

use std::borrow::Cow;
use std::io;
use std::path::{Path, PathBuf};

use percent_encoding::{percent_encode, AsciiSet, CONTROLS};

use crate::error::{msg, Error, ErrorKind};

/// Percent-decode and normalise the path of a request target (without its
/// query string).
///
/// The result starts with `/`, has no `.`/`..` segments and no `//` runs, and
/// keeps a trailing `/` (also the one implied by a final `.` segment). Encoded
/// slashes are 404; backslashes, control bytes (NUL, CR, LF, ...), bad escapes
/// and invalid UTF-8 are 400; `..` segments are 403.
pub fn normalize(raw_path: &str) -> Result<Cow<'_, str>, Error> {
    if !raw_path.starts_with('/') {
        return Err(refuse(ErrorKind::BadRequest, "path does not start with /"));
    }
    if is_normal(raw_path) {
        return Ok(Cow::Borrowed(raw_path));
    }
    let decoded = decode_once(raw_path.as_bytes())?;
    let decoded = String::from_utf8(decoded)
        .map_err(|_| refuse(ErrorKind::BadRequest, "path is not valid UTF-8"))?;

    let mut out = String::with_capacity(decoded.len());
    let mut trailing_slash = false;
    for segment in decoded.split('/') {
        // RFC 3986 section 5.2.4: an empty or "." last segment leaves a directory.
        trailing_slash = matches!(segment, "" | ".");
        match segment {
            "" | "." => {}
            ".." => return Err(refuse(ErrorKind::Forbidden, "'..' segment in path")),
            name => {
                out.push('/');
                out.push_str(name);
            }
        }
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    Ok(Cow::Owned(out))
}

/// True when `raw` (starting with `/`) is already its own normal form, as
/// most request paths are: nothing to decode or refuse, no empty, `.` or
/// `..` segment but a final empty one (the trailing slash). Checking is
/// cheaper than rebuilding it; one pass over the bytes, as every request
/// pays it (`split` cost three times as much).
fn is_normal(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    let mut start = 1; // where the current segment begins
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'%' || b == b'\\' || b.is_ascii_control() {
            return false;
        }
        if b == b'/' && i > 0 {
            if matches!(&bytes[start..i], b"" | b"." | b"..") {
                return false;
            }
            start = i + 1;
        }
    }
    // The last segment may be empty (a trailing slash).
    !matches!(bytes.get(start..), Some(b"." | b".."))
}

/// Decode `%XX` escapes once, refusing what may not appear in a path.
fn decode_once(raw: &[u8]) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let byte = raw[i];
        if byte != b'%' {
            match byte {
                b'\\' => return Err(refuse(ErrorKind::BadRequest, "backslash in path")),
                0 => return Err(refuse(ErrorKind::BadRequest, "NUL byte in path")),
                b if b.is_ascii_control() => {
                    return Err(refuse(ErrorKind::BadRequest, "control byte in path"))
                }
                _ => out.push(byte),
            }
            i += 1;
            continue;
        }
        let hi = raw.get(i + 1).and_then(|b| hex_value(*b));
        let lo = raw.get(i + 2).and_then(|b| hex_value(*b));
        let (Some(hi), Some(lo)) = (hi, lo) else {
            return Err(refuse(ErrorKind::BadRequest, "bad percent escape in path"));
        };
        match hi << 4 | lo {
            b'/' => return Err(refuse(ErrorKind::NotFound, "encoded slash in path")),
            b'\\' => return Err(refuse(ErrorKind::BadRequest, "encoded backslash in path")),
            0 => return Err(refuse(ErrorKind::BadRequest, "encoded NUL in path")),
            b if b.is_ascii_control() => {
                return Err(refuse(
                    ErrorKind::BadRequest,
                    "encoded control byte in path",
                ))
            }
            decoded => out.push(decoded),
        }
        i += 3;
    }
    Ok(out)
}

fn hex_value(byte: u8) -> Option<u8> {
    (byte as char).to_digit(16).map(|d| d as u8)
}

fn refuse(kind: ErrorKind, why: &str) -> Error {
    Error::downstream(kind).with_cause(msg(why))
}

/// True when a segment of the normalised path starts with `.` (`.git`, `.env`,
/// `.htaccess`), except a leading `/.well-known/` (RFC 8615; ACME needs it).
pub fn has_dotfile_segment(normalized: &str) -> bool {
    let bytes = normalized.as_bytes();
    let mut segment = 0; // index of the segment `i` is in, as `split('/')` counts
    let mut at_start = true;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'/' {
            segment += 1;
            at_start = true;
            continue;
        }
        if at_start && b == b'.' {
            let name = bytes[i..].split(|&c| c == b'/').next();
            if !(segment == 1 && name == Some(b".well-known")) {
                return true;
            }
        }
        at_start = false;
    }
    false
}

/// Map a normalised URL path to a file system path under `root` (canonical),
/// refusing symlinks that resolve outside it. Blocking: call off the runtime.
///
/// Missing (or a file used as a directory) is 404, a symlink escape or an
/// unreadable component 403. Causes name the path; they go only to the log.
pub fn confine(root: &Path, normalized: &str) -> Result<PathBuf, Error> {
    let joined = root.join(normalized.trim_start_matches('/'));
    let canonical = std::fs::canonicalize(&joined).map_err(|e| fs_error(e, &joined))?;
    // Component-wise: /srv/www2 does not start with /srv/www. The root should
    // be canonical already; if it is not, compare with its canonical form
    // rather than refuse every path (paid only on this refusal path).
    let inside = canonical.starts_with(root)
        || std::fs::canonicalize(root).is_ok_and(|real| canonical.starts_with(real));
    if !inside {
        return Err(Error::downstream(ErrorKind::Forbidden).with_cause(format!(
            "{} resolves to {}, outside {}",
            joined.display(),
            canonical.display(),
            root.display()
        )));
    }
    Ok(canonical)
}

/// The client-facing error for a failed file system call on `path`.
pub fn fs_error(err: io::Error, path: &Path) -> Error {
    use nix::errno::Errno;
    let cause = format!("{}: {err}", path.display());
    let kind = match err.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => ErrorKind::NotFound,
        io::ErrorKind::PermissionDenied => ErrorKind::Forbidden,
        _ => match err.raw_os_error().map(Errno::from_raw) {
            Some(Errno::ELOOP | Errno::ENAMETOOLONG) => ErrorKind::NotFound,
            _ => return Error::internal(cause),
        },
    };
    Error::downstream(kind).with_cause(cause)
}

/// What must be escaped in a URL path (RFC 3986 `pchar` plus `/`), with `&`,
/// `'` and `;` too so that the result is also safe inside an HTML attribute.
const PATH_ESCAPE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'\'')
    .add(b';')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Percent-encode a decoded path for use in a URL (`Location`, links); `/`
/// is kept, everything else outside `pchar` and all non-ASCII is escaped.
pub fn encode(decoded: &str) -> String {
    percent_encode(decoded.as_bytes(), PATH_ESCAPE).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (raw, expected): `Ok(normalised)` or `Err(kind)`.
    const CASES: &[(&str, Result<&str, ErrorKind>)] = {
        use ErrorKind::*;
        &[
            ("/", Ok("/")),
            ("/index.html", Ok("/index.html")),
            ("/a/b/c", Ok("/a/b/c")),
            ("/a/b/", Ok("/a/b/")),
            ("//a///b//", Ok("/a/b/")),
            ("/a/./b", Ok("/a/b")),
            ("/a/.", Ok("/a/")),
            ("/.", Ok("/")),
            ("/./", Ok("/")),
            ("/a/%2e/b", Ok("/a/b")),
            ("/a/%2E", Ok("/a/")),
            ("/hello%20world.txt", Ok("/hello world.txt")),
            ("/caf%C3%A9", Ok("/café")),
            ("/caf%c3%a9", Ok("/café")),
            ("/café", Ok("/café")),
            ("/a+b", Ok("/a+b")),
            ("/a%3Fb", Ok("/a?b")),
            ("/a%23b", Ok("/a#b")),
            ("/a%25b", Ok("/a%b")),
            ("/...", Ok("/...")),
            ("/..foo", Ok("/..foo")),
            ("/foo..", Ok("/foo..")),
            ("/.hidden", Ok("/.hidden")),
            // `;` is not a parameter separator here: `..;` is a plain name
            // (the Tomcat path-parameter bypass does not apply).
            ("/..;/etc/passwd", Ok("/..;/etc/passwd")),
            // Decoded once only: the literal name "%2e%2e", which then 404s.
            ("/%252e%252e/etc/passwd", Ok("/%2e%2e/etc/passwd")),
            ("/%252f", Ok("/%2f")),
            // Traversal in every spelling.
            ("/..", Err(Forbidden)),
            ("/../etc/passwd", Err(Forbidden)),
            ("/a/../../etc/passwd", Err(Forbidden)),
            ("/a/..", Err(Forbidden)),
            ("/a/../b", Err(Forbidden)),
            ("/%2e%2e/etc/passwd", Err(Forbidden)),
            ("/%2E%2e/", Err(Forbidden)),
            ("/.%2e/x", Err(Forbidden)),
            ("/%2e./x", Err(Forbidden)),
            ("/a/%2e%2e", Err(Forbidden)),
            ("//..//x", Err(Forbidden)),
            // Encoded slashes.
            ("/a%2fb", Err(NotFound)),
            ("/a%2Fb", Err(NotFound)),
            ("/..%2fetc%2fpasswd", Err(NotFound)),
            // Backslashes, raw and encoded.
            ("/a\\b", Err(BadRequest)),
            ("/..\\..\\windows", Err(BadRequest)),
            ("/a%5cb", Err(BadRequest)),
            ("/..%5C..%5Cx", Err(BadRequest)),
            // NUL.
            ("/a%00.html", Err(BadRequest)),
            ("/a\0b", Err(BadRequest)),
            // CR, LF and other control bytes (response splitting, log forging).
            ("/a%0d%0aSet-Cookie:%20x=1", Err(BadRequest)),
            ("/a%0Ab", Err(BadRequest)),
            ("/a%09b", Err(BadRequest)),
            ("/a%7fb", Err(BadRequest)),
            ("/a\rb", Err(BadRequest)),
            ("/a\u{18}/b", Err(BadRequest)),
            // Bad escapes.
            ("/a%", Err(BadRequest)),
            ("/a%2", Err(BadRequest)),
            ("/a%zz", Err(BadRequest)),
            ("/a%g0", Err(BadRequest)),
            ("/a%%30", Err(BadRequest)),
            // Invalid UTF-8, including the overlong encodings of '.' and '/'.
            ("/%c0%ae%c0%ae/etc/passwd", Err(BadRequest)),
            ("/%c0%af", Err(BadRequest)),
            ("/%e0%80%ae", Err(BadRequest)),
            ("/%ff", Err(BadRequest)),
            ("/%C3", Err(BadRequest)),
            // Not origin-form.
            ("", Err(BadRequest)),
            ("*", Err(BadRequest)),
            ("a/b", Err(BadRequest)),
        ]
    };

    #[test]
    fn normalize_table() {
        for (raw, expected) in CASES {
            let got = normalize(raw).map_err(|e| e.kind);
            assert_eq!(
                got.as_deref(),
                expected.as_ref().map(|s| *s),
                "normalize({raw:?})"
            );
        }
    }

    #[test]
    fn paths_already_normal_are_only_checked() {
        for (raw, normal) in [
            ("/", true),
            ("/a/b.html", true),
            ("/a/b/", true),
            ("/..a/b..", true),
            ("/.well-known/x", true),
            ("/a//b", false),
            ("//a", false),
            ("/a/./b", false),
            ("/a/.", false),
            ("/a/..", false),
            ("/%41", false),
            ("/a\\b", false),
            ("/a\tb", false),
        ] {
            assert_eq!(is_normal(raw), normal, "{raw:?}");
            if normal {
                assert_eq!(normalize(raw).unwrap(), raw);
            }
        }
    }

    #[test]
    fn normalized_output_is_a_fixed_point() {
        for (raw, expected) in CASES {
            if let Ok(out) = expected {
                // Re-encoding and normalising again changes nothing.
                assert_eq!(normalize(&encode(out)).unwrap(), *out, "from {raw:?}");
            }
        }
    }

    /// The byte loops agree with the `split` forms they replaced, on every
    /// path of up to five characters from the ones that matter.
    #[test]
    fn byte_loops_agree_with_split() {
        fn is_normal_by_split(raw: &str) -> bool {
            let clean = raw
                .bytes()
                .all(|b| b != b'%' && b != b'\\' && !b.is_ascii_control());
            let mut segments = raw[1..].split('/').peekable();
            clean
                && std::iter::from_fn(|| segments.next().map(|s| (s, segments.peek().is_none())))
                    .all(|(s, last)| !matches!(s, "." | "..") && (last || !s.is_empty()))
        }
        fn dotfile_by_split(normalized: &str) -> bool {
            normalized.split('/').enumerate().any(|(i, segment)| {
                segment.starts_with('.') && !(i == 1 && segment == ".well-known")
            })
        }
        let alphabet = ['/', '.', 'a', '%', '\\', '\t'];
        let mut paths = vec![String::from("/")];
        let mut next = paths.clone();
        for _ in 0..5 {
            next = next
                .iter()
                .flat_map(|p| alphabet.iter().map(move |c| format!("{p}{c}")))
                .collect();
            paths.extend(next.iter().cloned());
        }
        paths.extend(
            [
                "/.well-known",
                "/.well-known/",
                "/.well-knownx",
                "/a/.well-known",
                ".a",
                "a/.b",
            ]
            .map(String::from),
        );
        for path in &paths {
            if path.starts_with('/') {
                assert_eq!(is_normal(path), is_normal_by_split(path), "{path:?}");
            }
            assert_eq!(
                has_dotfile_segment(path),
                dotfile_by_split(path),
                "{path:?}"
            );
        }
    }

    #[test]
    fn dotfile_segments() {
        assert!(has_dotfile_segment("/.git/config"));
        assert!(has_dotfile_segment("/.env"));
        assert!(has_dotfile_segment("/app/.htaccess"));
        assert!(has_dotfile_segment("/a/.b/"));
        assert!(has_dotfile_segment("/a/..;/"));
        assert!(!has_dotfile_segment("/"));
        assert!(!has_dotfile_segment("/a.b/c.txt"));
        assert!(!has_dotfile_segment("/.well-known/acme-challenge/tok"));
        assert!(!has_dotfile_segment("/.well-known"));
        // Only the top-level .well-known is exempt, and not what is inside it.
        assert!(has_dotfile_segment("/.well-known/.secret"));
        assert!(has_dotfile_segment("/sub/.well-known/x"));
    }

    #[test]
    fn encode_escapes_what_a_path_or_attribute_cannot_hold() {
        assert_eq!(encode("/a b/c?d#e"), "/a%20b/c%3Fd%23e");
        assert_eq!(encode("/x\"<'&>;%"), "/x%22%3C%27%26%3E%3B%25");
        assert_eq!(encode("/café"), "/caf%C3%A9");
        assert_eq!(encode("/\r\n"), "/%0D%0A");
        assert_eq!(encode("/a-b_c.d~e"), "/a-b_c.d~e");
    }

    fn root() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap().join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/file.txt"), b"x").unwrap();
        (dir, root)
    }

    #[test]
    fn confine_resolves_inside_root() {
        let (_dir, root) = root();
        assert_eq!(confine(&root, "/").unwrap(), root);
        assert_eq!(confine(&root, "/sub/").unwrap(), root.join("sub"));
        assert_eq!(
            confine(&root, "/sub/file.txt").unwrap(),
            root.join("sub/file.txt")
        );
    }

    #[test]
    fn confine_missing_is_404() {
        let (_dir, root) = root();
        assert_eq!(
            confine(&root, "/nope").unwrap_err().kind,
            ErrorKind::NotFound
        );
        // A file used as a directory (ENOTDIR).
        let err = confine(&root, "/sub/file.txt/").unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
        let err = confine(&root, "/sub/file.txt/more").unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
    }

    #[test]
    fn confine_refuses_symlink_escape() {
        let (dir, root) = root();
        let outside = dir.path().join("outside.txt");
        std::fs::write(&outside, b"secret").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("escape")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("etc")).unwrap();
        // Sibling directory sharing the root's name as a prefix.
        let sibling = dir.path().canonicalize().unwrap().join("root2");
        std::fs::create_dir(&sibling).unwrap();
        std::os::unix::fs::symlink(&sibling, root.join("sibling")).unwrap();
        for path in ["/escape", "/etc/passwd", "/etc/", "/sibling/"] {
            let err = confine(&root, path).unwrap_err();
            assert_eq!(err.kind, ErrorKind::Forbidden, "{path}");
            // The cause (log only) has the path; the kind alone reaches the client.
            assert!(err.cause.is_some());
        }
    }

    #[test]
    fn confine_follows_symlink_inside_root() {
        let (_dir, root) = root();
        std::os::unix::fs::symlink(root.join("sub/file.txt"), root.join("link")).unwrap();
        std::os::unix::fs::symlink("sub", root.join("sublink")).unwrap();
        assert_eq!(confine(&root, "/link").unwrap(), root.join("sub/file.txt"));
        assert_eq!(
            confine(&root, "/sublink/file.txt").unwrap(),
            root.join("sub/file.txt")
        );
    }

    #[test]
    fn confine_tolerates_a_root_that_is_not_canonical() {
        let (dir, root) = root();
        let alias = dir.path().canonicalize().unwrap().join("alias");
        std::os::unix::fs::symlink(&root, &alias).unwrap();
        let found = confine(&alias, "/sub/file.txt").unwrap();
        assert_eq!(found, root.join("sub/file.txt"));
        std::os::unix::fs::symlink("/etc", root.join("etc")).unwrap();
        assert_eq!(
            confine(&alias, "/etc/").unwrap_err().kind,
            ErrorKind::Forbidden
        );
    }

    #[test]
    fn confine_symlink_loop_is_404() {
        let (_dir, root) = root();
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        assert_eq!(
            confine(&root, "/loop").unwrap_err().kind,
            ErrorKind::NotFound
        );
    }
}
