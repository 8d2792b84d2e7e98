//! Files too large for the cache are sent on plain HTTP/1 connections by
//! reading each range only when the socket takes it (src/late_file.rs), and
//! cached files of 32 KiB or more from the page cache the same way. The
//! bytes must be exact in every form of response, other protocols must not
//! be affected, a file that shrinks mid-send must show as a truncated body,
//! and many stalled downloads must not hold memory.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::tls::{self as tls};
use support::{client, rss_kib, TestServer};

/// Over three 1 MiB placeholders, with an odd tail.
const LEN: usize = 3 * 1024 * 1024 + 123;

fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i >> 16) as u8)
        .collect()
}

fn site(extra: &str) -> (TestServer, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("htdocs")).unwrap();
    let data = pattern(LEN);
    std::fs::write(dir.path().join("htdocs/big.bin"), &data).unwrap();
    let yaml = format!("document_root: htdocs\naccess_log: \"off\"\n{extra}");
    (TestServer::start_in(dir, &yaml), data)
}

#[test]
fn whole_file_single_range_and_head_are_exact() {
    let (srv, data) = site("");
    let resp = client().get(srv.url("/big.bin")).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    assert_eq!(resp.content_length(), Some(LEN as u64));
    assert!(resp.bytes().unwrap() == data[..], "whole body differs");

    // Across both placeholder boundaries.
    let (first, last) = (1_048_000usize, 2_097_700usize);
    let resp = client()
        .get(srv.url("/big.bin"))
        .header("Range", format!("bytes={first}-{last}"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 206);
    assert!(resp.bytes().unwrap() == data[first..=last], "range differs");

    let resp = client()
        .get(srv.url("/big.bin"))
        .header("Range", format!("bytes=-{}", 5))
        .send()
        .unwrap();
    assert!(resp.bytes().unwrap() == data[LEN - 5..]);

    let resp = client().head(srv.url("/big.bin")).send().unwrap();
    assert_eq!(resp.headers()["content-length"], LEN.to_string().as_str());
    assert!(resp.bytes().unwrap().is_empty());
}

#[test]
fn multipart_ranges_carry_the_right_bytes_in_order() {
    let (srv, data) = site("");
    let ranges = [
        (0usize, 9usize),
        (1_048_570, 1_048_580),
        (3_145_000, LEN - 1),
    ];
    let spec: Vec<String> = ranges.iter().map(|(a, b)| format!("{a}-{b}")).collect();
    let resp = client()
        .get(srv.url("/big.bin"))
        .header("Range", format!("bytes={}", spec.join(",")))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 206);
    let length = resp.content_length().unwrap();
    let body = resp.bytes().unwrap();
    assert_eq!(body.len() as u64, length);
    let mut from = 0;
    for (a, b) in ranges {
        let part = &data[a..=b];
        let at = body[from..]
            .windows(part.len())
            .position(|w| w == part)
            .unwrap_or_else(|| panic!("part {a}-{b} missing or out of order"));
        from += at + part.len();
    }
}

#[test]
fn pipelined_and_http10_requests_get_exact_bodies() {
    let (srv, data) = site("");
    // Both requests at once: the second response's chunks queue right behind
    // the first's.
    let all = exchange(
        srv.addr(),
        b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=100-\r\nConnection: close\r\n\r\n",
    );
    let (first, rest) = split_response(&all);
    assert!(first == &data[..], "first pipelined body differs");
    let (second, tail) = split_response(rest);
    assert!(second == &data[100..], "second pipelined body differs");
    assert!(tail.is_empty());

    let all = exchange(srv.addr(), b"GET /big.bin HTTP/1.0\r\n\r\n");
    let (body, _) = split_response(&all);
    assert!(body == &data[..], "HTTP/1.0 body differs");
}

/// Send `request` on a new connection and read until the server closes it.
fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut all = Vec::new();
    stream.read_to_end(&mut all).unwrap();
    all
}

/// One response with a Content-Length from the front of `bytes`: its body
/// and what follows it.
fn split_response(bytes: &[u8]) -> (&[u8], &[u8]) {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head")
        + 4;
    let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .expect("content-length")
        .trim()
        .parse()
        .unwrap();
    assert!(bytes.len() >= end + len, "body cut short");
    (&bytes[end..end + len], &bytes[end + len..])
}

#[test]
fn http2_and_tls_are_served_by_copy_and_exact() {
    let pki = tls::make_pki(&["localhost", "127.0.0.1"]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("htdocs")).unwrap();
    let data = pattern(LEN);
    std::fs::write(dir.path().join("htdocs/big.bin"), &data).unwrap();
    pki.write(dir.path());
    let srv = TestServer::start_in(
        dir,
        "document_root: htdocs\ntls:\n  listen: [\"127.0.0.1:0\"]\n  cert: cert.pem\n  key: key.pem\n",
    );
    let h2c = reqwest::blocking::Client::builder()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let resp = h2c.get(srv.url("/big.bin")).send().unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert!(resp.bytes().unwrap() == data[..], "h2c body differs");

    for alpn in [&[b"h2".as_slice()][..], &[b"http/1.1".as_slice()][..]] {
        let https = tls::https_client(tls::trusting(&pki.ca_pem, alpn));
        let resp = https.get(srv.https_url("/big.bin")).send().unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.bytes().unwrap() == data[..], "TLS body differs");
    }
}

#[test]
fn a_file_that_shrinks_mid_send_ends_the_body_short() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("htdocs")).unwrap();
    let path = dir.path().join("htdocs/shrinks.bin");
    let big = 64 << 20;
    std::fs::File::create(&path).unwrap().set_len(big).unwrap();
    let srv = TestServer::start_in(dir, "document_root: htdocs\n");

    let mut stream = TcpStream::connect(srv.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .write_all(b"GET /shrinks.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut got = stream.read(&mut buf).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(2 << 20)
        .unwrap();
    // Read until the server closes: well short of the promised length.
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    assert!((got as u64) < big, "a short file was passed off as whole");
    // The server goes on serving.
    let resp = client().get(srv.url("/shrinks.bin")).send().unwrap();
    assert_eq!(resp.content_length(), Some(2 << 20));
    assert_eq!(resp.bytes().unwrap().len(), 2 << 20);
}

#[test]
fn stalled_downloads_hold_no_file_data_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("htdocs")).unwrap();
    std::fs::write(dir.path().join("htdocs/big.bin"), pattern(8 << 20)).unwrap();
    let srv = TestServer::start_in(dir, "document_root: htdocs\naccess_log: \"off\"\n");
    client()
        .get(srv.url("/big.bin"))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    let before = rss_kib(srv.pid());
    // 300 clients that ask and never read: every socket fills and every
    // response stalls with its body still to send. Queued 64 KiB chunks
    // held ~130 KiB per connection here (~40 MB in all).
    let stalled: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut s = TcpStream::connect(srv.addr()).unwrap();
            s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
                .unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let grown = rss_kib(srv.pid()).saturating_sub(before);
    drop(stalled);
    assert!(
        grown < 12 * 1024,
        "300 stalled downloads grew RSS by {grown} KiB"
    );
}

/// A cached file of 32 KiB or more goes out with sendfile(2) too (its copy in
/// memory serves the forms that copy): whole, ranged, pipelined, compressed,
/// over TLS, and after the file was replaced.
#[test]
fn cached_files_sent_from_the_page_cache_are_exact_in_every_form() {
    use std::io::Read as _;
    let pki = tls::make_pki(&["localhost", "127.0.0.1"]);
    let dir = tempfile::tempdir().unwrap();
    let htdocs = dir.path().join("htdocs");
    std::fs::create_dir(&htdocs).unwrap();
    let data = pattern(100 * 1024 + 7);
    std::fs::write(htdocs.join("mid.bin"), &data).unwrap();
    let text = b"a line of text that compresses well\n".repeat(2000);
    std::fs::write(htdocs.join("mid.txt"), &text).unwrap();
    pki.write(dir.path());
    let srv = TestServer::start_in(
        dir,
        "document_root: htdocs\naccess_log: \"off\"\ntls:\n  listen: [\"127.0.0.1:0\"]\n  cert: cert.pem\n  key: key.pem\n",
    );
    // The first request fills the cache; the pipelined ones are hits that
    // queue behind each other on one connection.
    let first = client().get(srv.url("/mid.bin")).send().unwrap();
    assert!(first.bytes().unwrap() == data[..], "first body differs");
    let all = exchange(
        srv.addr(),
        b"GET /mid.bin HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /mid.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=40000-\r\n\r\n\
          GET /mid.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=5-9\r\n\r\n\
          GET /mid.txt HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /mid.bin HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    let (whole, rest) = split_response(&all);
    assert!(whole == &data[..], "cached body differs");
    let (tail, rest) = split_response(rest);
    assert!(tail == &data[40000..], "cached range differs");
    let (small, rest) = split_response(rest);
    assert_eq!(small, &data[5..10]);
    let (plain_text, rest) = split_response(rest);
    assert!(plain_text == &text[..], "cached text differs");
    let (again, rest) = split_response(rest);
    assert!(again == &data[..], "second cached body differs");
    assert!(rest.is_empty());

    // Compressed on the fly from the copy in memory.
    let all = exchange(
        srv.addr(),
        b"GET /mid.txt HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
    );
    let head = String::from_utf8_lossy(&all[..200]).to_ascii_lowercase();
    assert!(head.contains("content-encoding: gzip"), "{head}");
    let (packed, _) = split_response(&all);
    let mut unpacked = Vec::new();
    flate2::read::GzDecoder::new(packed)
        .read_to_end(&mut unpacked)
        .unwrap();
    assert!(unpacked == text, "gzip body differs");

    let resp = client().head(srv.url("/mid.bin")).send().unwrap();
    assert_eq!(
        resp.headers()["content-length"],
        data.len().to_string().as_str()
    );
    assert!(resp.bytes().unwrap().is_empty());

    let https = tls::https_client(tls::trusting(&pki.ca_pem, &[b"http/1.1".as_slice()]));
    let resp = https.get(srv.https_url("/mid.bin")).send().unwrap();
    assert!(resp.bytes().unwrap() == data[..], "TLS body differs");

    // Replaced (renamed over): the new file, never the old descriptor's.
    let newer = pattern(70 * 1024 + 3)
        .iter()
        .map(|b| b ^ 0x5a)
        .collect::<Vec<u8>>();
    std::fs::write(htdocs.join("mid.new"), &newer).unwrap();
    std::fs::rename(htdocs.join("mid.new"), htdocs.join("mid.bin")).unwrap();
    let resp = client().get(srv.url("/mid.bin")).send().unwrap();
    assert!(
        resp.bytes().unwrap() == newer[..],
        "replaced file not served fresh"
    );
}
