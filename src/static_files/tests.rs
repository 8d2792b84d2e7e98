//! `handle()` driven directly against a temporary document root.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;

use super::handle;
use crate::config::{Config, Limits, LogTarget};
use crate::context::{ConnInfo, RequestCtx, RequestId};
use crate::error::ErrorKind;

struct Site {
    _dir: tempfile::TempDir,
    /// Canonical document root.
    root: PathBuf,
    /// A directory next to the root (outside it).
    outside: PathBuf,
    config: Config,
}

/// What a request got: status, headers, body bytes; or the error kind.
type Outcome = Result<(StatusCode, HeaderMap, Vec<u8>), ErrorKind>;

fn site() -> Site {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().canonicalize().unwrap();
    let root = base.join("htdocs");
    let outside = base.join("outside");
    std::fs::create_dir_all(root.join("docs")).unwrap();
    std::fs::create_dir_all(root.join("empty")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(root.join("hello.txt"), b"hello, world\n").unwrap();
    std::fs::write(root.join("docs/index.html"), b"<h1>docs</h1>").unwrap();
    std::fs::write(root.join("digits.txt"), b"0123456789").unwrap();
    std::fs::write(outside.join("secret.txt"), b"secret").unwrap();
    let config = Config {
        listen: Vec::new(),
        server_name: "localhost".into(),
        document_root: Some(root.clone()),
        index: vec!["index.html".into(), "index.htm".into()],
        serve_dotfiles: false,
        directory_listing: false,
        access_log: LogTarget::Off,
        error_log: LogTarget::Off,
        log_level: "info".into(),
        shutdown_grace: Duration::from_secs(1),
        limits: Limits {
            max_request_body: 1 << 20,
            max_header_bytes: 1 << 16,
            max_uri_bytes: 8192,
            header_read_timeout: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(75),
        },
        tls: None,
        cgi: Vec::new(),
        fastcgi: Vec::new(),
    };
    Site {
        _dir: dir,
        root,
        outside,
        config,
    }
}

impl Site {
    async fn request(&self, method: Method, uri: &str, headers: &[(&str, &str)]) -> Outcome {
        let mut builder = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let (parts, ()) = builder.body(()).unwrap().into_parts();
        let path = crate::paths::normalize(parts.uri.path()).map_err(|e| e.kind)?;
        let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let ctx = RequestCtx {
            id: RequestId(1),
            conn: Arc::new(ConnInfo {
                peer,
                local: "127.0.0.1:8080".parse().unwrap(),
                secure: false,
            }),
            config: Arc::new(self.config.clone()),
        };
        let response = handle(&parts, &path, &ctx).await.map_err(|e| e.kind)?;
        let (head, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes().to_vec();
        Ok((head.status, head.headers, body))
    }

    async fn get(&self, uri: &str, headers: &[(&str, &str)]) -> Outcome {
        self.request(Method::GET, uri, headers).await
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap())
}

fn ok(outcome: Outcome) -> (StatusCode, HeaderMap, Vec<u8>) {
    outcome.unwrap_or_else(|kind| panic!("expected a response, got {kind:?}"))
}

fn write(path: &Path, content: &[u8]) {
    std::fs::write(path, content).unwrap();
}

#[tokio::test]
async fn get_small_file() {
    let site = site();
    let (status, headers, body) = ok(site.get("/hello.txt", &[]).await);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, b"hello, world\n");
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(header(&headers, "content-length"), Some("13"));
    assert_eq!(header(&headers, "accept-ranges"), Some("bytes"));
    let etag = header(&headers, "etag").unwrap();
    assert!(etag.starts_with("\"d-") && etag.ends_with('"'), "{etag}");
    let last_modified = header(&headers, "last-modified").unwrap();
    assert!(httpdate::parse_http_date(last_modified).is_ok());
}

#[tokio::test]
async fn get_large_file_streams() {
    let site = site();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    write(&site.root.join("big.bin"), &data);
    let (status, headers, body) = ok(site.get("/big.bin", &[]).await);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "content-length"), Some("300000"));
    assert_eq!(
        header(&headers, "content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(body, data);
    let (status, headers, body) = ok(site
        .get("/big.bin", &[("range", "bytes=70000-270000")])
        .await);
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        header(&headers, "content-range"),
        Some("bytes 70000-270000/300000")
    );
    assert_eq!(body, &data[70000..=270000]);
}

#[tokio::test]
async fn head_has_headers_without_body() {
    let site = site();
    for name in ["/hello.txt", "/big.bin"] {
        if name == "/big.bin" {
            write(&site.root.join("big.bin"), &vec![7u8; 100_000]);
        }
        let (_, get_headers, _) = ok(site.get(name, &[]).await);
        let (status, headers, body) = ok(site.request(Method::HEAD, name, &[]).await);
        assert_eq!(status, StatusCode::OK);
        assert!(body.is_empty());
        assert_eq!(headers, get_headers, "{name}");
    }
    // Range is for GET only.
    let (status, headers, _) = ok(site
        .request(Method::HEAD, "/digits.txt", &[("range", "bytes=0-1")])
        .await);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "content-length"), Some("10"));
}

#[tokio::test]
async fn options_and_other_methods() {
    let site = site();
    let (status, headers, body) = ok(site.request(Method::OPTIONS, "/hello.txt", &[]).await);
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(header(&headers, "allow"), Some("GET, HEAD, OPTIONS"));
    assert!(body.is_empty());
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
        for path in ["/hello.txt", "/docs", "/docs/", "/empty/"] {
            let got = site.request(method.clone(), path, &[]).await;
            assert_eq!(
                got.unwrap_err(),
                ErrorKind::MethodNotAllowed,
                "{method} {path}"
            );
        }
        // Missing stays 404 whatever the method.
        let got = site.request(method, "/missing", &[]).await;
        assert_eq!(got.unwrap_err(), ErrorKind::NotFound);
    }
}

#[tokio::test]
async fn missing_and_disabled() {
    let mut site = site();
    assert_eq!(
        site.get("/missing.txt", &[]).await.unwrap_err(),
        ErrorKind::NotFound
    );
    assert_eq!(
        site.get("/hello.txt/", &[]).await.unwrap_err(),
        ErrorKind::NotFound
    );
    assert_eq!(
        site.get("/hello.txt/x", &[]).await.unwrap_err(),
        ErrorKind::NotFound
    );
    site.config.document_root = None;
    assert_eq!(
        site.get("/hello.txt", &[]).await.unwrap_err(),
        ErrorKind::NotFound
    );
}

#[tokio::test]
async fn traversal_is_refused() {
    let site = site();
    for (uri, kind) in [
        ("/../outside/secret.txt", ErrorKind::Forbidden),
        ("/%2e%2e/outside/secret.txt", ErrorKind::Forbidden),
        ("/docs/..%2f..%2foutside/secret.txt", ErrorKind::NotFound),
        ("/..%5coutside%5csecret.txt", ErrorKind::BadRequest),
        ("/%252e%252e/outside/secret.txt", ErrorKind::NotFound),
        ("/..;/outside/secret.txt", ErrorKind::NotFound),
        ("/hello.txt%00.html", ErrorKind::BadRequest),
    ] {
        assert_eq!(site.get(uri, &[]).await.unwrap_err(), kind, "{uri}");
    }
}

/// A symlink inside the root pointing at /etc/passwd (or anywhere outside)
/// must not be followed out.
#[tokio::test]
async fn symlink_escape_is_refused() {
    let site = site();
    std::os::unix::fs::symlink("/etc/passwd", site.root.join("passwd")).unwrap();
    std::os::unix::fs::symlink(&site.outside, site.root.join("out")).unwrap();
    std::os::unix::fs::symlink("../outside/secret.txt", site.root.join("rel")).unwrap();
    for uri in ["/passwd", "/out/secret.txt", "/out/", "/rel"] {
        for method in [Method::GET, Method::HEAD, Method::OPTIONS] {
            let got = site.request(method.clone(), uri, &[]).await;
            assert_eq!(got.unwrap_err(), ErrorKind::Forbidden, "{method} {uri}");
        }
    }
}

#[tokio::test]
async fn symlink_inside_root_is_served() {
    let site = site();
    std::os::unix::fs::symlink("hello.txt", site.root.join("alias.html")).unwrap();
    std::os::unix::fs::symlink(site.root.join("docs"), site.root.join("manual")).unwrap();
    let (status, headers, body) = ok(site.get("/alias.html", &[]).await);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, b"hello, world\n");
    // The type comes from the name asked for, as nginx does.
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/html; charset=utf-8")
    );
    let (_, _, body) = ok(site.get("/manual/", &[]).await);
    assert_eq!(body, b"<h1>docs</h1>");
}

#[tokio::test]
async fn directory_redirects_to_slash_keeping_query() {
    let site = site();
    let (status, headers, body) = ok(site.get("/docs?a=1&b=%20", &[]).await);
    assert_eq!(status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(header(&headers, "location"), Some("/docs/?a=1&b=%20"));
    assert!(body.is_empty());
    let (_, headers, _) = ok(site.request(Method::HEAD, "/docs", &[]).await);
    assert_eq!(header(&headers, "location"), Some("/docs/"));
    // Names are re-encoded.
    std::fs::create_dir(site.root.join("a dir")).unwrap();
    let (_, headers, _) = ok(site.get("/a%20dir", &[]).await);
    assert_eq!(header(&headers, "location"), Some("/a%20dir/"));
}

/// `//evil.example` as a Location would send the browser to another host.
#[tokio::test]
async fn redirect_is_never_protocol_relative() {
    let site = site();
    std::fs::create_dir(site.root.join("evil.example")).unwrap();
    let (status, headers, _) = ok(site.get("//evil.example", &[]).await);
    assert_eq!(status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(header(&headers, "location"), Some("/evil.example/"));
}

#[tokio::test]
async fn directory_index_file() {
    let site = site();
    let (status, headers, body) = ok(site.get("/docs/", &[]).await);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, b"<h1>docs</h1>");
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/html; charset=utf-8")
    );
    // The second index name is tried when the first is missing.
    write(&site.root.join("empty/index.htm"), b"htm");
    let (_, _, body) = ok(site.get("/empty/", &[]).await);
    assert_eq!(body, b"htm");
    // The root itself.
    write(&site.root.join("index.html"), b"home");
    let (_, _, body) = ok(site.get("/", &[]).await);
    assert_eq!(body, b"home");
}

#[tokio::test]
async fn index_symlink_escape_is_refused() {
    let site = site();
    std::os::unix::fs::symlink(
        site.outside.join("secret.txt"),
        site.root.join("empty/index.html"),
    )
    .unwrap();
    assert_eq!(
        site.get("/empty/", &[]).await.unwrap_err(),
        ErrorKind::Forbidden
    );
}

#[tokio::test]
async fn directory_without_index_is_403() {
    let site = site();
    assert_eq!(
        site.get("/empty/", &[]).await.unwrap_err(),
        ErrorKind::Forbidden
    );
    // A directory named like an index file is skipped.
    std::fs::create_dir(site.root.join("empty/index.html")).unwrap();
    assert_eq!(
        site.get("/empty/", &[]).await.unwrap_err(),
        ErrorKind::Forbidden
    );
}

#[tokio::test]
async fn directory_listing() {
    let mut site = site();
    site.config.directory_listing = true;
    write(&site.root.join("empty/b <b>.txt"), b"");
    write(&site.root.join("empty/a.txt"), b"");
    write(&site.root.join("empty/.env"), b"SECRET=1");
    std::fs::create_dir(site.root.join("empty/sub")).unwrap();
    let (status, headers, body) = ok(site.get("/empty/", &[]).await);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(
        header(&headers, "content-length"),
        Some(body.len().to_string().as_str())
    );
    let html = String::from_utf8(body).unwrap();
    assert!(!html.contains(".env"));
    assert!(html.contains("<a href=\"./b%20%3Cb%3E.txt\">b &lt;b&gt;.txt</a>"));
    let a = html.find("a.txt").unwrap();
    let b = html.find("b &lt;").unwrap();
    let sub = html.find("sub/").unwrap();
    assert!(a < b && b < sub, "sorted");
    let (_, head_headers, body) = ok(site.request(Method::HEAD, "/empty/", &[]).await);
    assert!(body.is_empty());
    assert_eq!(head_headers, headers);
}

#[tokio::test]
async fn dotfiles_are_hidden_unless_enabled() {
    let mut site = site();
    write(&site.root.join(".env"), b"SECRET=1");
    std::fs::create_dir_all(site.root.join(".git")).unwrap();
    write(&site.root.join(".git/config"), b"[core]");
    std::fs::create_dir_all(site.root.join(".well-known/acme-challenge")).unwrap();
    write(
        &site.root.join(".well-known/acme-challenge/tok"),
        b"tok.key",
    );
    for uri in [
        "/.env",
        "/.git/config",
        "/.git/",
        "/%2eenv",
        "/docs/.htaccess",
    ] {
        assert_eq!(
            site.get(uri, &[]).await.unwrap_err(),
            ErrorKind::NotFound,
            "{uri}"
        );
    }
    let (_, _, body) = ok(site.get("/.well-known/acme-challenge/tok", &[]).await);
    assert_eq!(body, b"tok.key");
    site.config.serve_dotfiles = true;
    let (_, _, body) = ok(site.get("/.env", &[]).await);
    assert_eq!(body, b"SECRET=1");
}

#[cfg(unix)]
#[tokio::test]
async fn only_regular_files_are_served() {
    let site = site();
    let fifo = site.root.join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    // Must answer, not hang waiting for a writer.
    let got = tokio::time::timeout(Duration::from_secs(5), site.get("/fifo", &[])).await;
    assert_eq!(got.unwrap().unwrap_err(), ErrorKind::Forbidden);
    std::os::unix::fs::symlink("/dev/zero", site.root.join("zero")).unwrap();
    assert_eq!(
        site.get("/zero", &[]).await.unwrap_err(),
        ErrorKind::Forbidden
    );
}

#[tokio::test]
async fn conditional_get() {
    let site = site();
    let (_, headers, _) = ok(site.get("/hello.txt", &[]).await);
    let etag = header(&headers, "etag").unwrap().to_owned();
    let last_modified = header(&headers, "last-modified").unwrap().to_owned();

    for (name, value, expected) in [
        ("if-none-match", etag.as_str(), StatusCode::NOT_MODIFIED),
        ("if-none-match", "*", StatusCode::NOT_MODIFIED),
        ("if-none-match", "\"x\", W/\"y\"", StatusCode::OK),
        (
            "if-modified-since",
            last_modified.as_str(),
            StatusCode::NOT_MODIFIED,
        ),
        (
            "if-modified-since",
            "Sun, 06 Nov 1994 08:49:37 GMT",
            StatusCode::OK,
        ),
    ] {
        let (status, headers, body) = ok(site.get("/hello.txt", &[(name, value)]).await);
        assert_eq!(status, expected, "{name}: {value}");
        if status == StatusCode::NOT_MODIFIED {
            assert!(body.is_empty());
            assert_eq!(header(&headers, "etag"), Some(etag.as_str()));
            assert_eq!(
                header(&headers, "last-modified"),
                Some(last_modified.as_str())
            );
            assert_eq!(header(&headers, "content-length"), None);
            assert_eq!(header(&headers, "content-type"), None);
        }
    }
    // HEAD gets 304 too.
    let (status, _, _) = ok(site
        .request(Method::HEAD, "/hello.txt", &[("if-none-match", &etag)])
        .await);
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    // If-None-Match that fails disables If-Modified-Since.
    let h = [
        ("if-none-match", "\"other\""),
        ("if-modified-since", last_modified.as_str()),
    ];
    assert_eq!(ok(site.get("/hello.txt", &h).await).0, StatusCode::OK);
    // 412s.
    let failed = site.get("/hello.txt", &[("if-match", "\"other\"")]).await;
    assert_eq!(failed.unwrap_err(), ErrorKind::PreconditionFailed);
    let failed = site
        .get(
            "/hello.txt",
            &[("if-unmodified-since", "Sun, 06 Nov 1994 08:49:37 GMT")],
        )
        .await;
    assert_eq!(failed.unwrap_err(), ErrorKind::PreconditionFailed);
    assert_eq!(
        ok(site.get("/hello.txt", &[("if-match", &etag)]).await).0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn etag_changes_with_content() {
    let site = site();
    let (_, before, _) = ok(site.get("/hello.txt", &[]).await);
    write(&site.root.join("hello.txt"), b"changed, longer\n");
    let (_, after, _) = ok(site.get("/hello.txt", &[]).await);
    assert_ne!(before.get("etag"), after.get("etag"));
    let stale = [("if-none-match", header(&before, "etag").unwrap())];
    assert_eq!(ok(site.get("/hello.txt", &stale).await).0, StatusCode::OK);
}

#[tokio::test]
async fn single_ranges() {
    let site = site();
    for (range, content_range, expected) in [
        ("bytes=0-3", "bytes 0-3/10", &b"0123"[..]),
        ("bytes=7-", "bytes 7-9/10", b"789"),
        ("bytes=-2", "bytes 8-9/10", b"89"),
        ("bytes=5-100", "bytes 5-9/10", b"56789"),
        ("bytes=0-0,0-2", "bytes 0-2/10", b"012"),
    ] {
        let (status, headers, body) = ok(site.get("/digits.txt", &[("range", range)]).await);
        assert_eq!(status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(header(&headers, "content-range"), Some(content_range));
        assert_eq!(
            header(&headers, "content-length"),
            Some(expected.len().to_string().as_str())
        );
        assert_eq!(
            header(&headers, "content-type"),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(body, expected);
    }
}

#[tokio::test]
async fn unsatisfiable_and_ignored_ranges() {
    let site = site();
    for range in ["bytes=10-", "bytes=20-30", "bytes=-0"] {
        let got = site.get("/digits.txt", &[("range", range)]).await;
        assert_eq!(
            got.unwrap_err(),
            ErrorKind::RangeNotSatisfiable(10),
            "{range}"
        );
    }
    for range in ["bytes=3-1", "bytes=x", "lines=0-1", "bytes 0-1"] {
        let (status, _, body) = ok(site.get("/digits.txt", &[("range", range)]).await);
        assert_eq!(status, StatusCode::OK, "{range}");
        assert_eq!(body, b"0123456789");
    }
    // More than MAX_RANGES ranges: the whole file.
    let many: Vec<String> = (0..17).map(|i| format!("{i}-{i}")).collect();
    let many = format!("bytes={}", many.join(","));
    let many_ranges = site.get("/digits.txt", &[("range", &many)]).await;
    assert_eq!(ok(many_ranges).0, StatusCode::OK);
}

#[tokio::test]
async fn if_range() {
    let site = site();
    let (_, headers, _) = ok(site.get("/digits.txt", &[]).await);
    let etag = header(&headers, "etag").unwrap().to_owned();
    let last_modified = header(&headers, "last-modified").unwrap().to_owned();
    let weak = format!("W/{etag}");
    for (if_range, expected) in [
        (etag.as_str(), StatusCode::PARTIAL_CONTENT),
        (last_modified.as_str(), StatusCode::PARTIAL_CONTENT),
        ("\"stale\"", StatusCode::OK),
        (weak.as_str(), StatusCode::OK),
        ("Sun, 06 Nov 1994 08:49:37 GMT", StatusCode::OK),
    ] {
        let h = [("range", "bytes=0-1"), ("if-range", if_range)];
        let (status, _, body) = ok(site.get("/digits.txt", &h).await);
        assert_eq!(status, expected, "{if_range}");
        let expected_body: &[u8] = if expected == StatusCode::OK {
            b"0123456789"
        } else {
            b"01"
        };
        assert_eq!(body, expected_body);
    }
}

/// Split a multipart/byteranges body into (Content-Range, data) parts.
fn parse_multipart(content_type: &str, body: &[u8]) -> Vec<(String, String, Vec<u8>)> {
    let boundary = content_type
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap();
    let delimiter = format!("--{boundary}");
    let text = String::from_utf8_lossy(body).into_owned();
    assert!(text.starts_with(&delimiter));
    assert!(text.ends_with(&format!("\r\n--{boundary}--\r\n")));
    let mut parts = Vec::new();
    for chunk in text.split(&delimiter).skip(1) {
        if chunk.starts_with("--") {
            break;
        }
        let chunk = chunk.strip_prefix("\r\n").unwrap();
        let chunk = chunk.strip_suffix("\r\n").unwrap();
        let (head, data) = chunk.split_once("\r\n\r\n").unwrap();
        let mut content_type = String::new();
        let mut content_range = String::new();
        for line in head.split("\r\n") {
            let (name, value) = line.split_once(": ").unwrap();
            match name {
                "Content-Type" => content_type = value.to_owned(),
                "Content-Range" => content_range = value.to_owned(),
                other => panic!("unexpected part header {other}"),
            }
        }
        parts.push((content_type, content_range, data.as_bytes().to_vec()));
    }
    parts
}

#[tokio::test]
async fn multiple_ranges_are_multipart() {
    let site = site();
    let h = [("range", "bytes=7-8, 0-1,-1")];
    let (status, headers, body) = ok(site.get("/digits.txt", &h).await);
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        header(&headers, "content-length"),
        Some(body.len().to_string().as_str())
    );
    assert_eq!(header(&headers, "content-range"), None);
    let content_type = header(&headers, "content-type").unwrap();
    let parts = parse_multipart(content_type, &body);
    let text = "text/plain; charset=utf-8".to_owned();
    assert_eq!(
        parts,
        vec![
            (text.clone(), "bytes 0-1/10".to_owned(), b"01".to_vec()),
            (text, "bytes 7-9/10".to_owned(), b"789".to_vec()),
        ]
    );
}

#[tokio::test]
async fn multipart_from_a_large_file() {
    let site = site();
    let data: Vec<u8> = (0..200_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    write(&site.root.join("big.txt"), &data);
    let h = [("range", "bytes=0-9,100000-170000,-5")];
    let (status, headers, body) = ok(site.get("/big.txt", &h).await);
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        header(&headers, "content-length"),
        Some(body.len().to_string().as_str())
    );
    let parts = parse_multipart(header(&headers, "content-type").unwrap(), &body);
    let ranges: Vec<&str> = parts.iter().map(|p| p.1.as_str()).collect();
    assert_eq!(
        ranges,
        [
            "bytes 0-9/200000",
            "bytes 100000-170000/200000",
            "bytes 199995-199999/200000"
        ]
    );
    assert_eq!(parts[1].2, &data[100000..=170000]);
    assert_eq!(parts[2].2, &data[199995..]);
}

#[tokio::test]
async fn empty_file() {
    let site = site();
    write(&site.root.join("empty.txt"), b"");
    let (status, headers, body) = ok(site.get("/empty.txt", &[]).await);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "content-length"), Some("0"));
    assert!(body.is_empty());
    let got = site.get("/empty.txt", &[("range", "bytes=0-")]).await;
    assert_eq!(got.unwrap_err(), ErrorKind::RangeNotSatisfiable(0));
}

#[tokio::test]
async fn unreadable_file_is_403() {
    use std::os::unix::fs::PermissionsExt;
    let site = site();
    let path = site.root.join("private.txt");
    write(&path, b"x");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
    // Root ignores permissions; only check when they apply.
    if std::fs::File::open(&path).is_err() {
        assert_eq!(
            site.get("/private.txt", &[]).await.unwrap_err(),
            ErrorKind::Forbidden
        );
    }
}
