//! The properties each fuzz target checks, shared by the targets
//! (`fuzz/fuzz_targets/*.rs`) and by the regression test that replays every
//! saved input (`tests/fuzz_regressions.rs`). A broken property panics.

#![allow(dead_code)]

use std::path::{Component, Path};

use bytes::BytesMut;
use http::StatusCode;
use tokio_util::codec::{Decoder, Encoder};

use gatehouse::fastcgi::record::{kind, EndRequest, Record, RecordCodec, MAX_CONTENT};
use gatehouse::fastcgi::{params, values};
use gatehouse::gateway::response::{Action, GatewayHead, HeadError, HeadParser, Mode};

/// Path decoding and normalisation: whatever the input, an accepted path is
/// absolute, has no `.`/`..` segments, no empty segments, no NUL, backslash
/// or control byte, and joined to a root it never leaves that root.
pub fn path(data: &[u8]) {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(normal) = gatehouse::paths::normalize(raw) else {
        return;
    };
    assert!(normal.starts_with('/'), "{normal:?} is not absolute");
    let inner = normal.trim_start_matches('/');
    let inner = inner.strip_suffix('/').unwrap_or(inner);
    if !inner.is_empty() {
        for segment in inner.split('/') {
            assert!(
                !matches!(segment, "" | "." | ".."),
                "segment {segment:?} left in {normal:?} (from {raw:?})"
            );
        }
    }
    assert!(
        !normal.bytes().any(|b| b == b'\\' || b.is_ascii_control()),
        "{normal:?} holds a backslash or a control byte (from {raw:?})"
    );
    let root = Path::new("/srv/root");
    let joined = root.join(normal.trim_start_matches('/'));
    assert!(joined.starts_with(root), "{joined:?} left the root");
    assert!(
        joined
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_))),
        "{joined:?} has a component that moves (from {raw:?})"
    );
}

/// The CGI/FastCGI response-head parser. The first input byte picks the mode,
/// the limit and how the rest is cut into chunks; the rest is the program's
/// output. Whatever the chunking, the result is the same, and an accepted head
/// holds nothing that could split or smuggle a response.
pub fn gateway_head(data: &[u8]) {
    let Some((&selector, output)) = data.split_first() else {
        return;
    };
    let mode = if selector & 1 == 0 {
        Mode::Cgi
    } else {
        Mode::Nph
    };
    let limit = if selector & 2 == 0 { 256 } else { 64 * 1024 };
    let chunk = usize::from(selector >> 2).max(1);

    let whole = HeadParser::new(mode, limit).feed(output);
    let mut parser = HeadParser::new(mode, limit);
    let mut chunked = Ok(None);
    let mut fed = 0;
    for piece in output.chunks(chunk) {
        fed += piece.len();
        chunked = parser.feed(piece);
        if !matches!(chunked, Ok(None)) {
            break;
        }
    }
    match (&whole, &chunked) {
        (Ok(Some((head, body))), Ok(Some((head2, body2)))) => {
            let mut rest = body2.to_vec();
            rest.extend_from_slice(&output[fed..]);
            assert_eq!(&body[..], &rest[..], "chunking changed the body");
            // A local redirect followed by a body becomes a client redirect
            // once the body is seen (`settle_local_redirect`), in whichever
            // chunk it comes.
            let settled = |head: &GatewayHead| {
                let mut text = format!("{head:?}");
                if matches!(head.action, Action::LocalRedirect(_)) && !body.is_empty() {
                    text = format!(
                        "{:?}",
                        (StatusCode::FOUND, &head.headers, "client redirect")
                    );
                } else if matches!(head.action, Action::ClientRedirect) {
                    text = format!("{:?}", (head.status, &head.headers, "client redirect"));
                }
                text
            };
            assert_eq!(settled(head), settled(head2), "chunking changed the head");
            check_head(head, mode);
        }
        (Ok(None), Ok(None)) => {}
        (Err(a), Err(b)) => assert_eq!(kind_of(a), kind_of(b), "{a} vs {b}"),
        (a, b) => panic!("whole {a:?} but chunked {b:?}"),
    }
}

fn kind_of(err: &HeadError) -> &'static str {
    match err {
        HeadError::NoHeaderBlock => "no header block",
        HeadError::MissingContentType => "missing content type",
        HeadError::Malformed(_) => "malformed",
        HeadError::TooLarge => "too large",
        HeadError::Io(_) => "io",
    }
}

fn check_head(head: &GatewayHead, mode: Mode) {
    assert!(
        !head.status.is_informational(),
        "1xx status {}",
        head.status
    );
    for (name, value) in &head.headers {
        assert!(
            !value
                .as_bytes()
                .iter()
                .any(|&b| b == b'\r' || b == b'\n' || b == 0),
            "{name} value {value:?} holds CR, LF or NUL"
        );
        for banned in [
            "status",
            "content-length",
            "transfer-encoding",
            "connection",
            "keep-alive",
            "upgrade",
            "te",
            "trailer",
        ] {
            if banned == "status" && mode == Mode::Nph {
                continue;
            }
            assert_ne!(name.as_str(), banned, "{banned} forwarded");
        }
    }
    if let Action::LocalRedirect(path) = &head.action {
        assert!(path.starts_with('/') && !path.starts_with("//"), "{path:?}");
    }
}

/// The FastCGI record decoder and what reads record contents: records come
/// out the same however the bytes arrive, never longer than a record can be,
/// re-encode to themselves, and their contents parse or fail without a panic.
pub fn fastcgi_records(data: &[u8]) {
    let Some((&selector, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(selector).max(1);
    let whole = decode_all(stream, stream.len().max(1));
    let chunked = decode_all(stream, chunk);
    assert_eq!(whole, chunked, "chunking changed the records");
    let (records, _) = whole;
    for rec in &records {
        assert!(rec.content.len() <= MAX_CONTENT);
        let mut buf = BytesMut::new();
        RecordCodec
            .encode(rec.clone(), &mut buf)
            .expect("re-encode");
        let again = RecordCodec
            .decode(&mut buf)
            .expect("decode")
            .expect("whole");
        assert_eq!(&again, rec);
        assert!(buf.is_empty());
        match rec.kind {
            kind::END_REQUEST => {
                let _ = EndRequest::parse(&rec.content);
            }
            kind::GET_VALUES_RESULT => {
                let _ = values::parse_result(&rec.content);
            }
            kind::PARAMS => {
                if let Ok(pairs) = params::decode_pairs(&rec.content) {
                    let total: usize = pairs.iter().map(|(n, v)| params::pair_len(n, v)).sum();
                    assert!(total <= rec.content.len());
                }
            }
            kind::STDOUT => {
                let _ = HeadParser::new(Mode::Cgi, 64 * 1024).feed(&rec.content);
            }
            _ => {}
        }
    }
}

/// Decode `stream` fed `chunk` bytes at a time: the records, then how it
/// ended (`None` clean, `Some(kind)` the error kind).
fn decode_all(stream: &[u8], chunk: usize) -> (Vec<Record>, Option<std::io::ErrorKind>) {
    let mut codec = RecordCodec;
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(rec)) => out.push(rec),
                Ok(None) => break,
                Err(e) => return (out, Some(e.kind())),
            }
        }
    }
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(Some(rec)) => out.push(rec),
            Ok(None) => return (out, None),
            Err(e) => return (out, Some(e.kind())),
        }
    }
}

/// The YAML configuration loader: any text loads or gives errors (with
/// places inside the text), never a panic or a hang.
pub fn config_yaml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let base = std::env::temp_dir();
    if let Err(errors) = gatehouse::config::load_str(text, &base) {
        assert!(!errors.errors.is_empty(), "an error without a message");
        // YAML counts CR LF, a lone CR and LF each as one line break.
        let lines = text
            .replace("\r\n", "\n")
            .replace('\r', "\n")
            .split('\n')
            .count() as u64
            + 1;
        for error in &errors.errors {
            if let Some(line) = error.line {
                assert!(line <= lines, "line {line} of a {lines}-line text");
            }
            let _ = error.to_string();
        }
    }
}
