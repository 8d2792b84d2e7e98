use futures_util::stream;

use super::*;

fn parse(mode: Mode, input: &[u8]) -> Result<(GatewayHead, Bytes), HeadError> {
    // The same chunks, whole or in two at every split, parse the same whether
    // copied in (`feed`) or kept (`feed_bytes`).
    for split in 0..=input.len() {
        let (first, second) = input.split_at(split);
        let copied = parse_chunks(mode, &[first, second], HeadParser::feed);
        let kept = parse_chunks(mode, &[first, second], |p, c| {
            p.feed_bytes(Bytes::copy_from_slice(c))
        });
        assert_eq!(
            format!("{kept:?}"),
            format!("{copied:?}"),
            "split at {split}"
        );
    }
    parse_chunks(mode, &[input], HeadParser::feed)
}

/// Feed `chunks` in turn until a head comes out; its body then holds the
/// rest of the chunk it came in.
fn parse_chunks(
    mode: Mode,
    chunks: &[&[u8]],
    mut feed: impl FnMut(&mut HeadParser, &[u8]) -> Result<Option<(GatewayHead, Bytes)>, HeadError>,
) -> Result<(GatewayHead, Bytes), HeadError> {
    let mut parser = HeadParser::new(mode, 1024);
    for chunk in chunks {
        if let Some(done) = feed(&mut parser, chunk)? {
            return Ok(done);
        }
    }
    Err(HeadError::NoHeaderBlock)
}

fn cgi(input: &str) -> Result<(GatewayHead, Bytes), HeadError> {
    parse(Mode::Cgi, input.as_bytes())
}

/// Feed one byte at a time: the result must not depend on chunking.
fn cgi_bytewise(input: &[u8]) -> Result<(GatewayHead, Bytes), HeadError> {
    let mut parser = HeadParser::new(Mode::Cgi, 1024);
    let mut done = None;
    for (i, b) in input.iter().enumerate() {
        if let Some((head, mut body)) = parser.feed(std::slice::from_ref(b))? {
            let mut all = body.to_vec();
            all.extend_from_slice(&input[i + 1..]);
            body = Bytes::from(all);
            done = Some((head, body));
            break;
        }
    }
    done.ok_or(HeadError::NoHeaderBlock)
}

#[test]
fn document_with_crlf_and_lf() {
    for input in [
        "Content-Type: text/html\r\nX-A: 1\r\n\r\n<p>hi",
        "Content-Type: text/html\nX-A: 1\n\n<p>hi",
        "Content-Type:text/html\nX-A:   1  \n\r\n<p>hi",
    ] {
        let (head, body) = cgi(input).unwrap();
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(head.action, Action::Document);
        assert_eq!(head.headers["content-type"], "text/html");
        assert_eq!(head.headers["x-a"], "1");
        assert_eq!(&body[..], b"<p>hi");
        let (head2, body2) = cgi_bytewise(input.as_bytes()).unwrap();
        assert_eq!(head2.headers, head.headers);
        assert_eq!(body2, body);
    }
}

#[test]
fn status_header() {
    let (head, _) = cgi("Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\n").unwrap();
    assert_eq!(head.status, StatusCode::NOT_FOUND);
    assert!(head.headers.get("status").is_none());
    let (head, _) = cgi("Status: 204\n\n").unwrap();
    assert_eq!(head.status, StatusCode::NO_CONTENT);
    assert_eq!(head.action, Action::Document);
    let (head, _) = cgi("status:599 custom\n\n").unwrap();
    assert_eq!(head.status.as_u16(), 599);
}

#[test]
fn repeated_headers_are_kept() {
    let (head, _) = cgi("Content-Type: text/plain\nSet-Cookie: a=1\nSet-Cookie: b=2\n\n").unwrap();
    let cookies: Vec<_> = head.headers.get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
}

#[test]
fn redirects() {
    let (head, _) = cgi("Location: https://example.org/x\r\n\r\n").unwrap();
    assert_eq!(head.action, Action::ClientRedirect);
    assert_eq!(head.status, StatusCode::FOUND);
    assert_eq!(head.headers["location"], "https://example.org/x");

    let (head, _) = cgi("Status: 301 Moved\nLocation: https://example.org/\n\n").unwrap();
    assert_eq!(
        (head.action, head.status),
        (Action::ClientRedirect, StatusCode::MOVED_PERMANENTLY)
    );

    let (head, _) = cgi("Location: /index.html?x=1\n\n").unwrap();
    assert_eq!(head.action, Action::LocalRedirect("/index.html?x=1".into()));

    // A local path with a Status, or with a body: a client redirect.
    let (head, _) = cgi("Status: 303 See Other\nLocation: /next\n\n").unwrap();
    assert_eq!(
        (head.action, head.status),
        (Action::ClientRedirect, StatusCode::SEE_OTHER)
    );
    let (head, body) = cgi("Location: /next\nContent-Type: text/plain\n\nmoved").unwrap();
    assert_eq!(
        (head.action, head.status),
        (Action::ClientRedirect, StatusCode::FOUND)
    );
    assert_eq!(&body[..], b"moved");

    // A network-path reference is not local.
    let (head, _) = cgi("Location: //evil.example/x\n\n").unwrap();
    assert_eq!(head.action, Action::ClientRedirect);
}

#[test]
fn hop_by_hop_are_dropped_and_length_is_taken_out() {
    let (head, _) = cgi(
        "Content-Type: text/plain\nContent-Length: 99999\nConnection: close\nKeep-Alive: timeout=5\nUpgrade: h2c\nX-Kept: 1\n\n",
    )
    .unwrap();
    let names: Vec<_> = head.headers.keys().map(|k| k.as_str()).collect();
    assert_eq!(names, ["content-type", "x-kept"]);
    assert_eq!(head.content_length, Some(99999));
    let (head, _) = cgi("Content-Type: text/plain\n\n").unwrap();
    assert_eq!(head.content_length, None);
}

#[test]
fn content_length_must_be_one_number() {
    let (head, _) =
        cgi("Content-Length: 5\nContent-Type: text/plain\nContent-Length:  5 \n\n").unwrap();
    assert_eq!(head.content_length, Some(5));
    for bad in [
        "",
        "-1",
        "+5",
        "5 5",
        "5, 5",
        "0x10",
        "1e3",
        "99999999999999999999999",
    ] {
        let input = format!("Content-Type: text/plain\nContent-Length: {bad}\n\n");
        match cgi(&input) {
            Err(HeadError::Malformed(why)) => {
                assert!(why.contains("Content-Length"), "{bad:?}: {why}")
            }
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    match cgi("Content-Type: text/plain\nContent-Length: 5\nContent-Length: 6\n\n") {
        Err(HeadError::Malformed(why)) => assert!(why.contains("two different"), "{why}"),
        other => panic!("{other:?}"),
    }
    let (head, _) = parse(
        Mode::Nph,
        b"HTTP/1.1 200 OK\nContent-Type: text/plain\nContent-Length: 7\n\n",
    )
    .unwrap();
    assert_eq!(head.content_length, Some(7));
}

#[test]
fn missing_content_type() {
    assert!(matches!(
        cgi("X-Only: 1\n\nbody"),
        Err(HeadError::MissingContentType)
    ));
    assert!(matches!(
        cgi("\r\nbody"),
        Err(HeadError::MissingContentType)
    ));
}

#[test]
fn no_header_block() {
    let mut parser = HeadParser::new(Mode::Cgi, 1024);
    assert!(parser
        .feed(b"Content-Type: text/plain\n")
        .unwrap()
        .is_none());
    // A program that prints plain text has no header block at all, even
    // though its first line is not a header: EOF decides.
    let mut parser = HeadParser::new(Mode::Cgi, 1024);
    assert!(parser.feed(b"hello world\n").unwrap().is_none());
}

/// Heads a hostile or broken program might print; each must be refused.
#[test]
fn malicious_heads_are_refused() {
    let cases: &[(&str, &[u8])] = &[
        (
            "CR inside a value",
            b"Content-Type: text/html\rSet-Cookie: x=1\n\n",
        ),
        ("CR inside a name", b"X\rY: 1\nContent-Type: text/html\n\n"),
        (
            "obs-fold",
            b"Content-Type: text/html\nX-A: 1\n  continued\n\n",
        ),
        (
            "tab fold",
            b"Content-Type: text/html\nX-A: 1\n\tcontinued\n\n",
        ),
        ("no colon", b"Content-Type: text/html\nHTTP/1.1 200 OK\n\n"),
        ("space before colon", b"Content-Type : text/html\n\n"),
        ("empty name", b": x\nContent-Type: text/html\n\n"),
        ("bad name", b"X(Y): 1\nContent-Type: text/html\n\n"),
        ("NUL in value", b"Content-Type: text/html\x00\n\n"),
        ("DEL in value", b"Content-Type: text/ht\x7fml\n\n"),
        (
            "second Status",
            b"Status: 200\nStatus: 302\nContent-Type: text/html\n\n",
        ),
        (
            "second Location",
            b"Location: /a\nLocation: http://evil/\n\n",
        ),
        ("empty Location", b"Location:\n\n"),
        (
            "Transfer-Encoding",
            b"Content-Type: text/html\nTransfer-Encoding: chunked\n\n",
        ),
        (
            "status two digits",
            b"Status: 20\nContent-Type: text/html\n\n",
        ),
        (
            "status four digits",
            b"Status: 2000\nContent-Type: text/html\n\n",
        ),
        (
            "status no space",
            b"Status: 200OK\nContent-Type: text/html\n\n",
        ),
        (
            "status not digits",
            b"Status: abc\nContent-Type: text/html\n\n",
        ),
        (
            "status below 100",
            b"Status: 099\nContent-Type: text/html\n\n",
        ),
        (
            "status interim",
            b"Status: 101 Switching Protocols\nUpgrade: websocket\n\n",
        ),
        ("status empty", b"Status:\nContent-Type: text/html\n\n"),
        (
            "status negative",
            b"Status: -12\nContent-Type: text/html\n\n",
        ),
    ];
    for (what, input) in cases {
        match parse(Mode::Cgi, input) {
            Err(HeadError::Malformed(_)) => {}
            other => panic!(
                "{what}: expected Malformed, got {:?}",
                other.map(|(h, _)| h)
            ),
        }
        assert!(
            matches!(cgi_bytewise(input), Err(HeadError::Malformed(_))),
            "{what} (byte by byte)"
        );
    }
}

#[test]
fn oversized_heads() {
    // One endless line.
    let mut parser = HeadParser::new(Mode::Cgi, 100);
    assert!(parser.feed(&[b'a'; 60]).unwrap().is_none());
    assert!(matches!(parser.feed(&[b'a'; 60]), Err(HeadError::TooLarge)));
    // Many short lines.
    let mut parser = HeadParser::new(Mode::Cgi, 100);
    let many = "X: 1\n".repeat(30);
    assert!(matches!(
        parser.feed(many.as_bytes()),
        Err(HeadError::TooLarge)
    ));
    // Too many fields within the byte limit.
    let mut parser = HeadParser::new(Mode::Cgi, 1 << 20);
    let many = "X: 1\n".repeat(MAX_FIELDS + 1);
    assert!(matches!(
        parser.feed(many.as_bytes()),
        Err(HeadError::TooLarge)
    ));
    // A body larger than the limit after a small head is fine.
    let mut parser = HeadParser::new(Mode::Cgi, 100);
    let mut input = b"Content-Type: text/plain\n\n".to_vec();
    input.extend_from_slice(&[b'x'; 1000]);
    let (_, body) = parser.feed(&input).unwrap().unwrap();
    assert_eq!(body.len(), 1000);
}

#[test]
fn nph_status_line() {
    let (head, body) = parse(
        Mode::Nph,
        b"HTTP/1.1 201 Created\r\nX-A: 1\r\nStatus: 500\r\n\r\nraw",
    )
    .unwrap();
    assert_eq!(head.status, StatusCode::CREATED);
    assert_eq!(head.action, Action::Document);
    assert_eq!(head.headers["x-a"], "1");
    assert!(head.headers.get("status").is_none());
    assert_eq!(&body[..], b"raw");
    // No Content-Type needed; Location is an ordinary header.
    let (head, _) = parse(Mode::Nph, b"HTTP/1.0 302 Found\nLocation: /x\n\n").unwrap();
    assert_eq!(head.status, StatusCode::FOUND);
    assert_eq!(head.headers["location"], "/x");
    for bad in [
        &b"\r\n\r\n"[..],
        b"Content-Type: text/html\n\n",
        b"HTTP/1.1 20 OK\n\n",
        b"HTTP/x 200 OK\n\n",
        b"HTTP/1.1  200 OK\n\n",
        b"HTTPS/1.1 200 OK\n\n",
    ] {
        assert!(
            matches!(parse(Mode::Nph, bad), Err(HeadError::Malformed(_))),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = io::Result<Bytes>> + Unpin {
    stream::iter(
        parts
            .iter()
            .map(|p| Ok(Bytes::from_static(p)))
            .collect::<Vec<_>>(),
    )
}

async fn collect<S: Stream<Item = io::Result<Bytes>> + Unpin>(mut s: S) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = s.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

#[tokio::test]
async fn read_head_returns_the_rest() {
    let s = chunks(&[
        b"Content-Type: te",
        b"xt/plain\r\n\r",
        b"\nhello ",
        b"world",
    ]);
    let (head, rest) = read_head(s, HeadParser::new(Mode::Cgi, 1024))
        .await
        .unwrap();
    assert_eq!(head.headers["content-type"], "text/plain");
    assert_eq!(collect(rest).await, b"hello world");

    let s = chunks(&[b"Content-Type: text/plain\n"]);
    let result = read_head(s, HeadParser::new(Mode::Cgi, 1024)).await;
    assert!(matches!(result, Err(HeadError::NoHeaderBlock)));

    let s = stream::iter(vec![Err(io::Error::other("boom"))]);
    let result = read_head(s, HeadParser::new(Mode::Cgi, 1024)).await;
    assert!(matches!(result, Err(HeadError::Io(_))));
}

#[tokio::test]
async fn local_redirect_settles_on_an_empty_body() {
    let s = chunks(&[b"Location: /next?a=1\n\n"]);
    let (head, rest) = read_head(s, HeadParser::new(Mode::Cgi, 1024))
        .await
        .unwrap();
    match settle_local_redirect(head, rest).await.unwrap() {
        Settled::LocalRedirect(path) => assert_eq!(path, "/next?a=1"),
        Settled::Response(..) => panic!("expected a local redirect"),
    }

    // Output after the head (in a later chunk): a client redirect with it.
    let s = chunks(&[b"Location: /next\n\n", b"", b"late body"]);
    let (head, rest) = read_head(s, HeadParser::new(Mode::Cgi, 1024))
        .await
        .unwrap();
    assert_eq!(head.action, Action::LocalRedirect("/next".into()));
    match settle_local_redirect(head, rest).await.unwrap() {
        Settled::Response(head, rest) => {
            assert_eq!(
                (head.action, head.status),
                (Action::ClientRedirect, StatusCode::FOUND)
            );
            assert_eq!(head.headers["location"], "/next");
            assert_eq!(collect(rest).await, b"late body");
        }
        Settled::LocalRedirect(_) => panic!("a body makes it a client redirect"),
    }
}
