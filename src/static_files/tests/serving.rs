//! Plain serving: files, HEAD, methods, directories, index files, listings.

use super::*;

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

/// Peak resident memory of this process, in KiB (Linux).
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Memory stays flat while a 2 GiB file streams (a sparse file: no disk
/// needed). Slow in debug builds, so run on demand:
/// `cargo test --lib two_gib -- --ignored`.
#[tokio::test]
#[ignore]
async fn two_gib_file_streams_in_flat_memory() {
    let site = site();
    let len: u64 = 2 << 30;
    let file = std::fs::File::create(site.root.join("huge.bin")).unwrap();
    file.set_len(len).unwrap();
    let (parts, ()) = Request::get("/huge.bin").body(()).unwrap().into_parts();
    let ctx = site.ctx();
    let response = handle(&parts, "/huge.bin", &ctx, &site.files, false)
        .await
        .unwrap();
    assert_eq!(
        header(response.headers(), "content-length"),
        Some(len.to_string().as_str())
    );
    let before = peak_rss_kib();
    let mut body = response.into_body();
    let (mut total, mut largest) = (0u64, 0usize);
    while let Some(frame) = body.frame().await {
        let data = frame.unwrap().into_data().unwrap();
        total += data.len() as u64;
        largest = largest.max(data.len());
    }
    assert_eq!(total, len);
    assert!(largest <= 64 * 1024, "{largest}");
    let grown = peak_rss_kib().saturating_sub(before);
    assert!(grown < 32 * 1024, "peak RSS grew by {grown} KiB");
}

#[tokio::test]
async fn streamed_chunks_are_at_most_64_kib() {
    let site = site();
    write(&site.root.join("mib.bin"), &vec![1u8; 1 << 20]);
    let (parts, ()) = Request::get("/mib.bin").body(()).unwrap().into_parts();
    let response = handle(&parts, "/mib.bin", &site.ctx(), &site.files, false)
        .await
        .unwrap();
    let mut body = response.into_body();
    let mut total = 0;
    while let Some(frame) = body.frame().await {
        let data = frame.unwrap().into_data().unwrap();
        assert!(data.len() <= 64 * 1024);
        total += data.len();
    }
    assert_eq!(total, 1 << 20);
}

/// The answer made at once from the cache is the one `handle` makes, for
/// every form of request a cached file gets; what needs the disk waits.
#[tokio::test]
async fn answers_at_once_are_the_answers_of_handle() {
    let site = site();
    let etag = {
        let (_, headers, _) = ok(site.get("/digits.txt", &[]).await);
        header(&headers, "etag").unwrap().to_owned()
    };
    let asks: Vec<(Method, Vec<(&str, &str)>)> = vec![
        (Method::GET, vec![]),
        (Method::HEAD, vec![]),
        (Method::GET, vec![("range", "bytes=2-4")]),
        (Method::GET, vec![("range", "bytes=20-30")]),
        (Method::GET, vec![("if-none-match", etag.as_str())]),
        (Method::GET, vec![("if-match", "\"other\"")]),
        // Other methods: whether the cache answers them or not, the same.
        (Method::POST, vec![]),
        (Method::OPTIONS, vec![]),
    ];
    for (method, headers) in &asks {
        let at_once = site.cached(method.clone(), "/digits.txt", headers).await;
        let Some(at_once) = at_once else {
            assert!(
                ![Method::GET, Method::HEAD].contains(method),
                "{method} {headers:?}: not answered at once"
            );
            continue;
        };
        let waited = site.request(method.clone(), "/digits.txt", headers).await;
        let strip_date = |o: Outcome| {
            o.map(|(status, mut headers, body)| {
                headers.remove("date");
                (status, headers, body)
            })
        };
        assert_eq!(
            strip_date(at_once),
            strip_date(waited),
            "{method} {headers:?}"
        );
    }
    // Refused before any lookup: answered at once, as `handle` does.
    assert_eq!(
        site.cached(Method::GET, "/.env", &[]).await,
        Some(Err(ErrorKind::NotFound))
    );
    // Not in the cache (never served, missing, a directory): it waits.
    assert!(site.cached(Method::GET, "/hello.txt", &[]).await.is_none());
    assert!(site
        .cached(Method::GET, "/nothing.txt", &[])
        .await
        .is_none());
    assert!(site.cached(Method::GET, "/docs/", &[]).await.is_none());
    // A compressible file for a client that takes gzip may have a
    // precompressed copy to look for: it waits even when cached.
    assert!(site
        .cached(Method::GET, "/digits.txt", &[("accept-encoding", "gzip")])
        .await
        .is_none());
}
