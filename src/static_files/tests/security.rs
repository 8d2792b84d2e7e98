//! What must never be served: traversal, symlink escapes, dotfiles, devices.

use super::*;

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
