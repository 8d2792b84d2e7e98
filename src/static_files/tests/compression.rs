//! Encoded forms of static files: on the fly, precompressed copies, their
//! ETags and conditional requests; and Cache-Control.

use std::io::Read;
use std::time::{Duration, SystemTime};

use http::HeaderValue;

use super::*;
use crate::config::CacheControlRule;

fn decode(coding: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        "gzip" => flate2::read::GzDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap(),
        "br" => brotli::Decompressor::new(data, 4096)
            .read_to_end(&mut out)
            .unwrap(),
        other => panic!("{other}"),
    };
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    crate::compress::compress_all(crate::compress::Encoding::Gzip, 9, data)
        .unwrap()
        .to_vec()
}

/// Text that compresses: `len` bytes of CSS-ish lines.
fn css(len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while out.len() < len {
        out.extend_from_slice(format!(".rule-{i} {{ color: #{:06x}; }}\n", i * 7919).as_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

fn set_mtime(path: &Path, time: SystemTime) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(time).unwrap();
}

#[tokio::test]
async fn text_is_compressed_when_asked_and_vary_is_always_there() {
    let site = site();
    let small = css(5000);
    let large = css(300_000);
    write(&site.root.join("small.css"), &small);
    write(&site.root.join("large.css"), &large);
    for (name, content) in [("/small.css", &small), ("/large.css", &large)] {
        let (_, plain, body) = ok(site.get(name, &[]).await);
        assert_eq!(&body, content);
        assert_eq!(header(&plain, "vary"), Some("Accept-Encoding"));
        assert_eq!(header(&plain, "content-encoding"), None);
        let identity_etag = header(&plain, "etag").unwrap().to_owned();
        for (accept, coding, suffix) in [
            ("gzip, deflate, br", "br", "-br\""),
            ("gzip", "gzip", "-gz\""),
            ("br;q=0.5, gzip", "gzip", "-gz\""),
        ] {
            let (status, headers, body) = ok(site.get(name, &[("accept-encoding", accept)]).await);
            assert_eq!(status, StatusCode::OK);
            assert_eq!(
                header(&headers, "content-encoding"),
                Some(coding),
                "{accept}"
            );
            assert_eq!(header(&headers, "vary"), Some("Accept-Encoding"));
            assert_eq!(
                header(&headers, "content-type"),
                Some("text/css; charset=utf-8")
            );
            let etag = header(&headers, "etag").unwrap();
            assert!(etag.ends_with(suffix), "{etag}");
            assert_eq!(
                etag.trim_end_matches(suffix),
                identity_etag.trim_end_matches('"')
            );
            assert!(body.len() < content.len() / 3);
            assert_eq!(&decode(coding, &body), content, "{name} {accept}");
            // Known length when compressed in memory; streamed otherwise.
            let length = header(&headers, "content-length");
            if content.len() <= 64 * 1024 {
                assert_eq!(length, Some(body.len().to_string().as_str()));
            } else {
                assert_eq!(length, None);
            }
        }
    }
}

#[tokio::test]
async fn refused_tiny_binary_and_range_requests_are_sent_as_stored() {
    let site = site();
    let text = css(5000);
    write(&site.root.join("a.css"), &text);
    write(&site.root.join("tiny.css"), &text[..500]);
    write(&site.root.join("photo.png"), &text);
    write(&site.root.join("font.woff2"), &text);
    for (uri, accept) in [
        ("/a.css", "br;q=0, gzip;q=0"),
        ("/a.css", "identity"),
        ("/a.css", "*;q=0, identity"),
        ("/a.css", "deflate"),
        ("/tiny.css", "gzip, br"),
        ("/photo.png", "gzip, br"),
        ("/font.woff2", "gzip, br"),
    ] {
        let (status, headers, body) = ok(site.get(uri, &[("accept-encoding", accept)]).await);
        assert_eq!(status, StatusCode::OK);
        assert_eq!(header(&headers, "content-encoding"), None, "{uri} {accept}");
        assert!(body == text || body == text[..500], "{uri} {accept}");
    }
    // Vary only where the response could have been compressed.
    let (_, headers, _) = ok(site.get("/tiny.css", &[]).await);
    assert_eq!(header(&headers, "vary"), Some("Accept-Encoding"));
    let (_, headers, _) = ok(site.get("/photo.png", &[("accept-encoding", "gzip")]).await);
    assert_eq!(header(&headers, "vary"), None);

    let (status, headers, body) = ok(site
        .get(
            "/a.css",
            &[("accept-encoding", "gzip, br"), ("range", "bytes=10-19")],
        )
        .await);
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&headers, "content-encoding"), None);
    assert_eq!(header(&headers, "vary"), Some("Accept-Encoding"));
    assert_eq!(body, &text[10..20]);
}

#[tokio::test]
async fn conditional_requests_use_the_etag_of_each_coding() {
    let site = site();
    write(&site.root.join("a.css"), &css(5000));
    let (_, headers, _) = ok(site.get("/a.css", &[("accept-encoding", "gzip")]).await);
    let gz_etag = header(&headers, "etag").unwrap().to_owned();
    let (_, headers, _) = ok(site.get("/a.css", &[]).await);
    let plain_etag = header(&headers, "etag").unwrap().to_owned();
    assert_ne!(gz_etag, plain_etag);

    let (status, headers, body) = ok(site
        .get(
            "/a.css",
            &[("accept-encoding", "gzip"), ("if-none-match", &gz_etag)],
        )
        .await);
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    assert_eq!(header(&headers, "etag"), Some(gz_etag.as_str()));
    assert_eq!(header(&headers, "vary"), Some("Accept-Encoding"));
    // The identity tag does not validate the gzip form, nor the reverse.
    let (status, headers, _) = ok(site
        .get(
            "/a.css",
            &[("accept-encoding", "gzip"), ("if-none-match", &plain_etag)],
        )
        .await);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "content-encoding"), Some("gzip"));
    let (status, _, _) = ok(site.get("/a.css", &[("if-none-match", &gz_etag)]).await);
    assert_eq!(status, StatusCode::OK);
    // A cache that holds both sends both.
    let both = format!("{plain_etag}, {gz_etag}");
    let (status, _, _) = ok(site
        .get(
            "/a.css",
            &[
                ("accept-encoding", "br;q=0, gzip"),
                ("if-none-match", &both),
            ],
        )
        .await);
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    // If-Match is strong: the gzip tag passes for the gzip form only.
    let (status, _, _) = ok(site
        .get(
            "/a.css",
            &[("accept-encoding", "gzip"), ("if-match", &gz_etag)],
        )
        .await);
    assert_eq!(status, StatusCode::OK);
    let refused = site
        .get(
            "/a.css",
            &[("accept-encoding", "gzip"), ("if-match", &plain_etag)],
        )
        .await;
    assert_eq!(refused.err(), Some(ErrorKind::PreconditionFailed));
}

#[tokio::test]
async fn precompressed_copies_are_served_in_place_when_fresh() {
    let site = site();
    let text = css(3000);
    write(&site.root.join("app.js"), &text);
    // Recognisably different from what gatehouse would make.
    let marker_gz = gzip(b"from app.js.gz");
    let marker_br =
        crate::compress::compress_all(crate::compress::Encoding::Brotli, 11, b"from app.js.br")
            .unwrap();
    write(&site.root.join("app.js.gz"), &marker_gz);
    write(&site.root.join("app.js.br"), &marker_br);

    let (_, headers, body) = ok(site
        .get("/app.js", &[("accept-encoding", "gzip, br")])
        .await);
    assert_eq!(header(&headers, "content-encoding"), Some("br"));
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(
        header(&headers, "content-length"),
        Some(marker_br.len().to_string().as_str())
    );
    assert_eq!(header(&headers, "vary"), Some("Accept-Encoding"));
    assert!(header(&headers, "etag").unwrap().ends_with("-br\""));
    assert_eq!(decode("br", &body), b"from app.js.br");

    let (_, headers, body) = ok(site.get("/app.js", &[("accept-encoding", "gzip")]).await);
    assert_eq!(header(&headers, "content-encoding"), Some("gzip"));
    assert_eq!(body, marker_gz);
    let etag = header(&headers, "etag").unwrap().to_owned();
    let (status, _, _) = ok(site
        .get(
            "/app.js",
            &[("accept-encoding", "gzip"), ("if-none-match", &etag)],
        )
        .await);
    assert_eq!(status, StatusCode::NOT_MODIFIED);

    // HEAD: the copy's headers, no body.
    let (_, headers, body) = ok(site
        .request(Method::HEAD, "/app.js", &[("accept-encoding", "gzip")])
        .await);
    assert_eq!(
        header(&headers, "content-length"),
        Some(marker_gz.len().to_string().as_str())
    );
    assert!(body.is_empty());

    // Not asked for, or a Range: the file itself.
    let (_, headers, body) = ok(site.get("/app.js", &[]).await);
    assert_eq!(header(&headers, "content-encoding"), None);
    assert_eq!(body, text);
    let (status, _, body) = ok(site
        .get(
            "/app.js",
            &[("accept-encoding", "gzip"), ("range", "bytes=0-3")],
        )
        .await);
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, &text[..4]);

    // Older than the file: ignored (compressed on the fly instead).
    let now = SystemTime::now();
    set_mtime(&site.root.join("app.js"), now);
    set_mtime(&site.root.join("app.js.gz"), now - Duration::from_secs(60));
    let (_, headers, body) = ok(site.get("/app.js", &[("accept-encoding", "gzip")]).await);
    assert_eq!(header(&headers, "content-encoding"), Some("gzip"));
    assert_eq!(decode("gzip", &body), text);
}

#[tokio::test]
async fn precompressed_copies_of_index_files_and_small_files_are_used() {
    let site = site();
    write(
        &site.root.join("docs/index.html.gz"),
        &gzip(b"<h1>docs, precompressed</h1>"),
    );
    let (_, headers, body) = ok(site.get("/docs/", &[("accept-encoding", "gzip")]).await);
    assert_eq!(header(&headers, "content-encoding"), Some("gzip"));
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(decode("gzip", &body), b"<h1>docs, precompressed</h1>");
}

#[tokio::test]
async fn precompressed_copies_outside_the_root_or_not_files_are_ignored() {
    let site = site();
    write(&site.root.join("a.css"), &css(100));
    write(&site.outside.join("a.css.gz"), &gzip(b"secret"));
    std::os::unix::fs::symlink(site.outside.join("a.css.gz"), site.root.join("a.css.gz")).unwrap();
    std::fs::create_dir(site.root.join("a.css.br")).unwrap();
    let (_, headers, body) = ok(site.get("/a.css", &[("accept-encoding", "br, gzip")]).await);
    assert_eq!(header(&headers, "content-encoding"), None);
    assert_eq!(body, css(100));
}

#[tokio::test]
async fn compression_can_be_turned_off() {
    let mut site = site();
    write(&site.root.join("a.css"), &css(5000));
    write(&site.root.join("b.css"), &css(5000));
    write(&site.root.join("b.css.gz"), &gzip(b"b"));
    site.config.compression.enabled = false;
    for uri in ["/a.css", "/b.css"] {
        let (_, headers, _) = ok(site.get(uri, &[("accept-encoding", "gzip, br")]).await);
        assert_eq!(header(&headers, "content-encoding"), None);
        assert_eq!(header(&headers, "vary"), None);
    }
    site.config.compression.enabled = true;
    site.config.compression.brotli = false;
    let (_, headers, _) = ok(site.get("/a.css", &[("accept-encoding", "br, gzip")]).await);
    assert_eq!(header(&headers, "content-encoding"), Some("gzip"));
    site.config.compression.min_size = 10_000;
    let (_, headers, _) = ok(site.get("/a.css", &[("accept-encoding", "gzip")]).await);
    assert_eq!(header(&headers, "content-encoding"), None);
}

#[tokio::test]
async fn cache_control_by_longest_prefix() {
    let mut site = site();
    site.config.cache_control = vec![
        CacheControlRule {
            prefix: "/docs/".into(),
            value: HeaderValue::from_static("public, max-age=86400"),
        },
        CacheControlRule {
            prefix: "/".into(),
            value: HeaderValue::from_static("no-cache"),
        },
    ];
    let (_, headers, _) = ok(site.get("/docs/", &[]).await);
    assert_eq!(
        header(&headers, "cache-control"),
        Some("public, max-age=86400")
    );
    let (_, headers, _) = ok(site.get("/hello.txt", &[]).await);
    assert_eq!(header(&headers, "cache-control"), Some("no-cache"));
    let etag = header(&headers, "etag").unwrap().to_owned();
    let (status, headers, _) = ok(site.get("/hello.txt", &[("if-none-match", &etag)]).await);
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert_eq!(header(&headers, "cache-control"), Some("no-cache"));
    assert!(site.get("/missing.txt", &[]).await.is_err());
}

#[tokio::test]
async fn a_cached_index_file_does_not_hide_its_precompressed_copy() {
    let site = site();
    write(
        &site.root.join("docs/index.html.gz"),
        &gzip(b"<h1>docs, precompressed</h1>"),
    );
    // The first request, without codings, puts /docs/ in the small-file cache.
    let (_, headers, _) = ok(site.get("/docs/", &[]).await);
    assert_eq!(header(&headers, "content-encoding"), None);
    let (_, headers, body) = ok(site.get("/docs/", &[("accept-encoding", "gzip")]).await);
    assert_eq!(header(&headers, "content-encoding"), Some("gzip"));
    assert_eq!(decode("gzip", &body), b"<h1>docs, precompressed</h1>");
}

#[tokio::test]
async fn types_never_compressed_are_served_from_the_cache_and_stay_fresh() {
    let site = site();
    write(&site.root.join("pic.png"), b"first version");
    let gz = [("accept-encoding", "gzip, br")];
    let (_, headers, body) = ok(site.get("/pic.png", &gz).await);
    assert_eq!(header(&headers, "content-encoding"), None);
    assert_eq!(body, b"first version");
    write(&site.root.join("pic.png"), b"second, longer version");
    let (_, _, body) = ok(site.get("/pic.png", &gz).await);
    assert_eq!(body, b"second, longer version");
}

#[test]
fn only_a_named_type_that_is_never_compressed_skips_the_sidecar_search() {
    use super::super::compress::never_compressed;
    assert!(never_compressed("/pic.png"));
    assert!(never_compressed("/a/b/archive.tar.gz"));
    assert!(!never_compressed("/style.css"));
    assert!(
        !never_compressed("/docs/"),
        "a directory's index may be text"
    );
    assert!(!never_compressed("/README"));
    assert!(!never_compressed("/.png"), "a dotfile name, no extension");
    assert!(!never_compressed("/file."));
}
