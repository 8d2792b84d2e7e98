use std::io::Read;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::BodyExt;

use super::*;

/// Decode a gzip or brotli body (shared by the compression tests).
pub(crate) fn decode(encoding: Encoding, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding {
        Encoding::Gzip => flate2::read::GzDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap(),
        Encoding::Brotli => brotli::Decompressor::new(data, 4096)
            .read_to_end(&mut out)
            .unwrap(),
    };
    out
}

#[test]
fn text_like_types_are_compressible_and_compressed_ones_are_not() {
    for yes in [
        "text/html; charset=utf-8",
        "TEXT/CSS",
        "text/plain",
        "application/javascript; charset=utf-8",
        "application/json",
        "application/ld+json",
        "application/rss+xml",
        "application/wasm",
        "image/svg+xml; charset=utf-8",
        "font/ttf",
    ] {
        assert!(compressible(yes), "{yes}");
    }
    for no in [
        "image/png",
        "image/jpeg",
        "image/webp",
        "video/mp4",
        "audio/mpeg",
        "application/zip",
        "application/gzip",
        "application/x-bzip2",
        "application/pdf",
        "application/octet-stream",
        "font/woff",
        "font/woff2",
        "",
        "garbage",
    ] {
        assert!(!compressible(no), "{no}");
    }
}

#[test]
fn etags_get_a_suffix_per_encoding() {
    assert_eq!(
        encoded_etag("\"12-34\"", Encoding::Gzip).as_deref(),
        Some("\"12-34-gz\"")
    );
    assert_eq!(
        encoded_etag("W/\"x\"", Encoding::Brotli).as_deref(),
        Some("W/\"x-br\"")
    );
    assert_eq!(encoded_etag("unquoted", Encoding::Gzip), None);
}

#[test]
fn vary_is_added_once() {
    let mut headers = HeaderMap::new();
    add_vary(&mut headers);
    add_vary(&mut headers);
    assert_eq!(headers.get_all(header::VARY).iter().count(), 1);
    let mut headers = HeaderMap::new();
    headers.insert(
        header::VARY,
        HeaderValue::from_static("Cookie, accept-encoding"),
    );
    add_vary(&mut headers);
    assert_eq!(headers.get_all(header::VARY).iter().count(), 1);
    let mut headers = HeaderMap::new();
    headers.insert(header::VARY, HeaderValue::from_static("Cookie"));
    add_vary(&mut headers);
    assert_eq!(headers.get_all(header::VARY).iter().count(), 2);
}

fn program_output(content_type: Option<&str>, extra: &[(&str, &str)], body: &str) -> Reply {
    let mut response = Response::new(Body::full(body.to_owned()));
    if let Some(ct) = content_type {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
    }
    for (name, value) in extra {
        response.headers_mut().insert(
            header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    Reply::Response(response)
}

fn accepting(value: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_str(value).unwrap(),
    );
    headers
}

async fn run(reply: Reply, request: &HeaderMap, opted_in: bool) -> (Response<()>, Vec<u8>) {
    let Reply::Response(response) =
        gateway_response(reply, request, &Compression::default(), opted_in)
    else {
        panic!("not a response");
    };
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes().to_vec();
    (Response::from_parts(parts, ()), bytes)
}

#[tokio::test]
async fn gateway_output_is_compressed_only_when_the_route_opts_in() {
    let text = "line of program output\n".repeat(100);
    let out = || program_output(Some("text/plain"), &[("etag", "\"v1\"")], &text);
    let (head, body) = run(out(), &accepting("gzip"), false).await;
    assert!(head.headers().get(header::CONTENT_ENCODING).is_none());
    assert!(head.headers().get(header::VARY).is_none());
    assert_eq!(body, text.as_bytes());

    let (head, body) = run(out(), &accepting("gzip, br"), true).await;
    assert_eq!(head.headers()[header::CONTENT_ENCODING], "br");
    assert_eq!(head.headers()[header::VARY], "Accept-Encoding");
    assert_eq!(head.headers()[header::ETAG], "\"v1-br\"");
    assert_eq!(decode(Encoding::Brotli, &body), text.as_bytes());

    let (head, body) = run(out(), &accepting("gzip"), true).await;
    assert_eq!(head.headers()[header::CONTENT_ENCODING], "gzip");
    assert_eq!(decode(Encoding::Gzip, &body), text.as_bytes());

    // Not asked: sent as it is, with Vary.
    let (head, body) = run(out(), &HeaderMap::new(), true).await;
    assert!(head.headers().get(header::CONTENT_ENCODING).is_none());
    assert_eq!(head.headers()[header::VARY], "Accept-Encoding");
    assert_eq!(body, text.as_bytes());
}

#[tokio::test]
async fn gateway_output_the_program_encoded_or_that_does_not_pay_is_left_alone() {
    let text = "x".repeat(5000);
    let cases = [
        (Some("image/png"), vec![], text.as_str()),
        (None, vec![], &text),
        (
            Some("text/plain"),
            vec![("content-encoding", "gzip")],
            &text,
        ),
        (
            Some("text/plain"),
            vec![("content-length", "10")],
            "short text",
        ),
        (
            Some("text/plain"),
            vec![("content-range", "bytes 0-4/10")],
            "01234",
        ),
    ];
    for (content_type, extra, body_in) in cases {
        let program_encoding = extra
            .iter()
            .find(|(n, _)| *n == "content-encoding")
            .map(|(_, v)| *v);
        let reply = program_output(content_type, &extra, body_in);
        let (head, body) = run(reply, &accepting("gzip"), true).await;
        let encoding = head.headers().get(header::CONTENT_ENCODING);
        assert_eq!(encoding.map(|v| v.to_str().unwrap()), program_encoding);
        assert_eq!(body, body_in.as_bytes(), "{content_type:?} {extra:?}");
    }
    let mut not_found = Response::new(Body::full(text.clone()));
    *not_found.status_mut() = StatusCode::NOT_FOUND;
    not_found
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    let (head, body) = run(Reply::Response(not_found), &accepting("gzip"), true).await;
    assert!(head.headers().get(header::CONTENT_ENCODING).is_none());
    assert_eq!(body, text.as_bytes());
}
