//! Static files end to end, through the real binary and a real HTTP client.

mod support;

use support::{client, raw, status_of, TestServer};

fn site(extra: &str) -> TestServer {
    site_with(extra, TestServer::start_in)
}

fn site_with(extra: &str, start: fn(tempfile::TempDir, &str) -> TestServer) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("htdocs");
    std::fs::create_dir_all(root.join("docs")).unwrap();
    std::fs::create_dir_all(root.join("empty")).unwrap();
    std::fs::create_dir_all(root.join("app")).unwrap();
    std::fs::write(root.join("index.html"), "<h1>home</h1>\n").unwrap();
    std::fs::write(root.join("docs/index.html"), "<h1>docs</h1>\n").unwrap();
    std::fs::write(root.join("app/main.htm"), "main\n").unwrap();
    std::fs::write(root.join("style.css"), "body{}\n").unwrap();
    std::fs::write(root.join("data.json"), "{}\n").unwrap();
    std::fs::write(root.join("photo.png"), [0x89, b'P', b'N', b'G']).unwrap();
    std::fs::write(root.join("blob.unknownext"), "??").unwrap();
    std::fs::write(root.join("digits.txt"), "0123456789").unwrap();
    std::fs::write(root.join(".env"), "SECRET=1").unwrap();
    std::fs::write(root.join("empty/file one.txt"), "x").unwrap();
    let root_line = if extra.contains("document_root:") {
        ""
    } else {
        "document_root: htdocs\n"
    };
    start(dir, &format!("{root_line}cgi: []\n{extra}"))
}

#[test]
fn content_types_lengths_and_validators() {
    let srv = site("");
    let c = client();
    for (path, ctype) in [
        ("/index.html", "text/html; charset=utf-8"),
        ("/style.css", "text/css; charset=utf-8"),
        ("/data.json", "application/json; charset=utf-8"),
        ("/digits.txt", "text/plain; charset=utf-8"),
        ("/photo.png", "image/png"),
        ("/blob.unknownext", "application/octet-stream"),
    ] {
        let resp = c.get(srv.url(path)).send().unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.headers()["content-type"], ctype, "{path}");
        assert!(resp.headers().contains_key("last-modified"), "{path}");
        let etag = resp.headers()["etag"].to_str().unwrap();
        assert!(
            etag.starts_with('"') && !etag.starts_with("W/"),
            "strong ETag: {etag}"
        );
    }
    let resp = c.get(srv.url("/digits.txt")).send().unwrap();
    assert_eq!(resp.headers()["content-length"], "10");
    assert_eq!(resp.headers()["accept-ranges"], "bytes");
}

#[test]
fn conditional_requests_give_304() {
    let srv = site("");
    let c = client();
    let first = c.get(srv.url("/digits.txt")).send().unwrap();
    let etag = first.headers()["etag"].clone();
    let modified = first.headers()["last-modified"].clone();
    let resp = c
        .get(srv.url("/digits.txt"))
        .header("If-None-Match", etag.clone())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 304);
    assert_eq!(resp.headers()["etag"], etag);
    assert_eq!(resp.bytes().unwrap().len(), 0);
    let resp = c
        .get(srv.url("/digits.txt"))
        .header("If-None-Match", "\"other\", *")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 304);
    let resp = c
        .get(srv.url("/digits.txt"))
        .header("If-None-Match", "\"other\"")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = c
        .get(srv.url("/digits.txt"))
        .header("If-Modified-Since", modified.clone())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 304);
    let resp = c
        .get(srv.url("/digits.txt"))
        .header("If-Modified-Since", "Thu, 01 Jan 1998 00:00:00 GMT")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    // If-None-Match wins over If-Modified-Since (RFC 9110 section 13.2.2).
    let resp = c
        .get(srv.url("/digits.txt"))
        .header("If-None-Match", "\"other\"")
        .header("If-Modified-Since", modified)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = c
        .get(srv.url("/digits.txt"))
        .header("If-Match", "\"other\"")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 412);
}

#[test]
fn ranges() {
    let srv = site("");
    let c = client();
    let resp = c
        .get(srv.url("/digits.txt"))
        .header("Range", "bytes=2-4")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.headers()["content-range"], "bytes 2-4/10");
    assert_eq!(resp.text().unwrap(), "234");
    let resp = c
        .get(srv.url("/digits.txt"))
        .header("Range", "bytes=-3")
        .send()
        .unwrap();
    assert_eq!(resp.text().unwrap(), "789");
    let resp = c
        .get(srv.url("/digits.txt"))
        .header("Range", "bytes=7-")
        .send()
        .unwrap();
    assert_eq!(resp.text().unwrap(), "789");
    let resp = c
        .get(srv.url("/digits.txt"))
        .header("Range", "bytes=50-60")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 416);
    assert_eq!(resp.headers()["content-range"], "bytes */10");
    // A malformed Range is ignored.
    let resp = c
        .get(srv.url("/digits.txt"))
        .header("Range", "bytes=z-q")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().unwrap(), "0123456789");
    // Several ranges: multipart/byteranges.
    let resp = c
        .get(srv.url("/digits.txt"))
        .header("Range", "bytes=0-1,5-6")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 206);
    let ctype = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        ctype.starts_with("multipart/byteranges; boundary="),
        "{ctype}"
    );
    let body = resp.text().unwrap();
    assert!(
        body.contains("Content-Range: bytes 0-1/10\r\n\r\n01\r\n"),
        "{body}"
    );
    assert!(
        body.contains("Content-Range: bytes 5-6/10\r\n\r\n56\r\n"),
        "{body}"
    );
}

#[test]
fn if_range_is_honoured() {
    let srv = site("");
    let c = client();
    let etag = c.get(srv.url("/digits.txt")).send().unwrap().headers()["etag"].clone();
    let resp = c
        .get(srv.url("/digits.txt"))
        .header("Range", "bytes=0-0")
        .header("If-Range", etag)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 206);
    let resp = c
        .get(srv.url("/digits.txt"))
        .header("Range", "bytes=0-0")
        .header("If-Range", "\"stale\"")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().unwrap(), "0123456789");
}

#[test]
fn head_has_headers_without_body() {
    let srv = site("");
    let reply = raw(
        srv.addr(),
        b"HEAD /digits.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status_of(&reply), 200);
    assert!(
        reply
            .to_ascii_lowercase()
            .contains("content-length: 10\r\n"),
        "{reply}"
    );
    assert!(
        reply.ends_with("\r\n\r\n"),
        "no body after the head: {reply:?}"
    );
}

#[test]
fn other_methods_get_405_with_allow() {
    let srv = site("");
    let c = client();
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let resp = c
            .request(method.parse().unwrap(), srv.url("/digits.txt"))
            .body("x")
            .send()
            .unwrap();
        assert_eq!(resp.status(), 405, "{method}");
        let allow = resp.headers()["allow"].to_str().unwrap();
        assert!(allow.contains("GET") && allow.contains("HEAD"), "{allow}");
    }
}

#[test]
fn directories_redirect_index_and_forbid() {
    let srv = site("");
    let c = client();
    let resp = c.get(srv.url("/docs?x=1&y=2")).send().unwrap();
    assert_eq!(resp.status(), 301);
    assert_eq!(resp.headers()["location"], "/docs/?x=1&y=2");
    let resp = c.get(srv.url("/docs/")).send().unwrap();
    assert_eq!(resp.text().unwrap(), "<h1>docs</h1>\n");
    assert_eq!(
        c.get(srv.url("/")).send().unwrap().text().unwrap(),
        "<h1>home</h1>\n"
    );
    assert_eq!(c.get(srv.url("/empty/")).send().unwrap().status(), 403);
}

#[test]
fn configured_index_names_are_tried_in_order() {
    let srv = site("index: [main.htm, index.html]\n");
    assert_eq!(
        client()
            .get(srv.url("/app/"))
            .send()
            .unwrap()
            .text()
            .unwrap(),
        "main\n"
    );
    assert_eq!(
        client()
            .get(srv.url("/docs/"))
            .send()
            .unwrap()
            .text()
            .unwrap(),
        "<h1>docs</h1>\n"
    );
}

#[test]
fn directory_listing_when_enabled() {
    let srv = site("directory_listing: true\n");
    let resp = client().get(srv.url("/empty/")).send().unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.text().unwrap();
    assert!(body.contains("file%20one.txt"), "{body}");
    assert!(body.contains("file one.txt"), "{body}");
}

#[test]
fn dotfiles_are_hidden_unless_configured() {
    let srv = site("");
    assert_eq!(client().get(srv.url("/.env")).send().unwrap().status(), 404);
    let open = site("serve_dotfiles: true\n");
    assert_eq!(
        client()
            .get(open.url("/.env"))
            .send()
            .unwrap()
            .text()
            .unwrap(),
        "SECRET=1"
    );
}

#[test]
fn missing_files_get_a_clean_404_page() {
    let srv = site("");
    let resp = client().get(srv.url("/nope.html")).send().unwrap();
    assert_eq!(resp.status(), 404);
    assert!(resp.text().unwrap().contains("<h1>404 Not Found</h1>"));
}

#[test]
fn static_serving_can_be_disabled() {
    let srv = site("document_root: null\n");
    assert_eq!(
        client()
            .get(srv.url("/index.html"))
            .send()
            .unwrap()
            .status(),
        404
    );
}

/// Hot small files are served from memory, trusted while the kernel reports
/// no change to them: every change is seen by the very next request, on
/// both runtimes (one CPU: a single thread; otherwise a pool).
#[test]
fn every_change_to_a_cached_file_is_seen_by_the_next_request() {
    for start in [TestServer::start_in, TestServer::start_on_one_cpu] {
        let srv = site_with("", start);
        let root = srv.dir.path().join("htdocs");
        let file = root.join("digits.txt");
        let c = client();
        let get = |path: &str| {
            let resp = c.get(srv.url(path)).send().unwrap();
            (resp.status().as_u16(), resp.text().unwrap())
        };
        for round in 0..20 {
            // Rewritten in place: same length, same inode, and the
            // modification time put back, which no `stat` would notice.
            let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
            let text = format!("{round:0>10}");
            let mut f = std::fs::File::options().write(true).open(&file).unwrap();
            std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
            f.set_modified(mtime).unwrap();
            drop(f);
            // Twice: the second is a hit on what the first stored.
            for _ in 0..2 {
                assert_eq!(get("/digits.txt"), (200, text.clone()), "round {round}");
            }
        }

        std::fs::write(root.join("new.tmp"), "renamed in").unwrap();
        std::fs::rename(root.join("new.tmp"), &file).unwrap();
        assert_eq!(get("/digits.txt").1, "renamed in");
        std::fs::remove_file(&file).unwrap();
        assert_eq!(get("/digits.txt").0, 404);
        std::fs::write(&file, "back").unwrap();
        assert_eq!(get("/digits.txt").1, "back");

        // Written through a second link in another directory.
        std::fs::hard_link(&file, root.join("docs/link.txt")).unwrap();
        assert_eq!(get("/digits.txt").1, "back");
        std::fs::write(root.join("docs/link.txt"), "via link").unwrap();
        assert_eq!(get("/digits.txt").1, "via link");
    }
}
