//! Conditional requests (304, 412) and ranges (206, 416, multipart).

use super::*;

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
    let path = site.root.join("digits.txt");
    // Just written: its Last-Modified is weak, so a date cannot validate it.
    let (_, headers, _) = ok(site.get("/digits.txt", &[]).await);
    let fresh = header(&headers, "last-modified").unwrap().to_owned();
    let h = [("range", "bytes=0-1"), ("if-range", fresh.as_str())];
    assert_eq!(ok(site.get("/digits.txt", &h).await).0, StatusCode::OK);

    let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    let file = std::fs::File::options().write(true).open(&path).unwrap();
    file.set_modified(an_hour_ago).unwrap();
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
