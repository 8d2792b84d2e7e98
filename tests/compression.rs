//! Compression through the real binary: gzip and brotli bodies decoded and
//! compared byte for byte with the file (in memory and streamed, over
//! HTTP/1.1 and HTTP/2 over TLS), q=0, precompressed copies, Range requests,
//! per-coding ETags, Cache-Control, CGI output on routes that opt in, and
//! curl --compressed when curl is installed.

#[path = "support/fcgi_backend.rs"]
mod fcgi_backend;
mod support;

use std::io::{BufWriter, Read, Write};
use std::process::Command;

use reqwest::blocking::Response;
use reqwest::StatusCode;
use sha2::Digest;
use support::tls::{self as tls, Pki};
use support::{client, rss_kib, TestServer};

/// `len` bytes of text that compresses (but not trivially).
fn text(len: usize) -> Vec<u8> {
    let words = [
        "gate",
        "house",
        "serves ",
        "static\n",
        "files, ",
        "cgi ",
        "and fastcgi. ",
    ];
    let mut out = Vec::with_capacity(len);
    let mut i = 0usize;
    while out.len() < len {
        out.extend_from_slice(words[i % words.len()].as_bytes());
        if i % 11 == 0 {
            out.extend_from_slice(format!("{i} ").as_bytes());
        }
        i = i.wrapping_mul(17).wrapping_add(5) % 100_003;
    }
    out.truncate(len);
    out
}

fn decode(coding: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    decoder(coding, data).read_to_end(&mut out).unwrap();
    out
}

fn decoder<'a, R: Read + 'a>(coding: &str, reader: R) -> Box<dyn Read + 'a> {
    match coding {
        "gzip" => Box::new(flate2::read::GzDecoder::new(reader)),
        "br" => Box::new(brotli::Decompressor::new(reader, 4096)),
        other => panic!("unexpected coding {other}"),
    }
}

fn header(resp: &Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

struct Files {
    small: Vec<u8>,
    large: Vec<u8>,
}

/// A site with `htdocs/small.css` (in memory when served) and
/// `htdocs/large.txt` (streamed), and `cert.pem`/`key.pem` when given.
fn site(pki: Option<&Pki>) -> (tempfile::TempDir, Files) {
    let dir = tempfile::tempdir().unwrap();
    let htdocs = dir.path().join("htdocs");
    std::fs::create_dir(&htdocs).unwrap();
    let files = Files {
        small: text(20_000),
        large: text(3_000_000),
    };
    std::fs::write(htdocs.join("small.css"), &files.small).unwrap();
    std::fs::write(htdocs.join("large.txt"), &files.large).unwrap();
    if let Some(pki) = pki {
        pki.write(dir.path());
    }
    (dir, files)
}

#[test]
fn gzip_and_brotli_bodies_decode_to_the_file() {
    let (dir, files) = site(None);
    let srv = TestServer::start_in(dir, "document_root: htdocs\n");
    let c = client();
    for (path, content) in [("/small.css", &files.small), ("/large.txt", &files.large)] {
        for (accept, coding) in [("gzip", "gzip"), ("br", "br"), ("gzip, deflate, br", "br")] {
            let resp = c
                .get(srv.url(path))
                .header("Accept-Encoding", accept)
                .send()
                .unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            assert_eq!(header(&resp, "content-encoding").as_deref(), Some(coding));
            assert_eq!(header(&resp, "vary").as_deref(), Some("Accept-Encoding"));
            let body = resp.bytes().unwrap();
            assert!(body.len() < content.len() / 2, "{path} {accept}");
            assert!(decode(coding, &body) == *content, "{path} {accept}");
        }
        // Without Accept-Encoding: the file as stored, still with Vary.
        let resp = c.get(srv.url(path)).send().unwrap();
        assert_eq!(header(&resp, "content-encoding"), None);
        assert_eq!(header(&resp, "vary").as_deref(), Some("Accept-Encoding"));
        assert!(resp.bytes().unwrap() == *content);
    }
}

#[test]
fn compressed_over_http2_and_tls() {
    let pki = tls::make_pki(&["localhost", "127.0.0.1"]);
    let (dir, files) = site(Some(&pki));
    let yaml = "document_root: htdocs\ntls:\n  listen: [\"127.0.0.1:0\"]\n  cert: cert.pem\n  key: key.pem\n";
    let srv = TestServer::start_in(dir, yaml);
    let c = tls::https_client(tls::trusting(&pki.ca_pem, &[b"h2", b"http/1.1"]));
    for (path, content) in [("/small.css", &files.small), ("/large.txt", &files.large)] {
        for coding in ["gzip", "br"] {
            let resp = c
                .get(srv.https_url(path))
                .header("Accept-Encoding", coding)
                .send()
                .unwrap();
            assert_eq!(resp.version(), reqwest::Version::HTTP_2);
            assert_eq!(header(&resp, "content-encoding").as_deref(), Some(coding));
            assert!(decode(coding, &resp.bytes().unwrap()) == *content);
        }
    }
}

#[test]
fn q_zero_refuses_a_coding() {
    let (dir, files) = site(None);
    let srv = TestServer::start_in(dir, "document_root: htdocs\n");
    let c = client();
    for (accept, expected) in [
        ("br;q=0, gzip", Some("gzip")),
        ("gzip;q=0, br", Some("br")),
        ("gzip;q=0, br;q=0", None),
        ("*;q=0", None),
        ("br;q=0.2, gzip;q=0.9", Some("gzip")),
        ("gzip;q=0.5, identity", None),
    ] {
        let resp = c
            .get(srv.url("/small.css"))
            .header("Accept-Encoding", accept)
            .send()
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let coding = header(&resp, "content-encoding");
        assert_eq!(coding.as_deref(), expected, "{accept}");
        let body = resp.bytes().unwrap();
        match coding {
            Some(coding) => assert!(decode(&coding, &body) == files.small),
            None => assert!(body == files.small),
        }
    }
}

#[test]
fn precompressed_sidecars_are_served_in_place() {
    let (dir, files) = site(None);
    let htdocs = dir.path().join("htdocs");
    // Made by "the build", recognisably different from gatehouse's own output.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(b"built: small.css.gz\n").unwrap();
    let gz = gz.finish().unwrap();
    let mut br = brotli::CompressorWriter::new(Vec::new(), 4096, 11, 22);
    br.write_all(b"built: small.css.br\n").unwrap();
    let br = br.into_inner();
    std::fs::write(htdocs.join("small.css.gz"), &gz).unwrap();
    std::fs::write(htdocs.join("small.css.br"), &br).unwrap();
    let srv = TestServer::start_in(dir, "document_root: htdocs\n");
    let c = client();

    for (accept, coding, raw) in [("br, gzip", "br", &br), ("gzip", "gzip", &gz)] {
        let resp = c
            .get(srv.url("/small.css"))
            .header("Accept-Encoding", accept)
            .send()
            .unwrap();
        assert_eq!(header(&resp, "content-encoding").as_deref(), Some(coding));
        assert_eq!(
            header(&resp, "content-type").as_deref(),
            Some("text/css; charset=utf-8")
        );
        assert_eq!(resp.content_length(), Some(raw.len() as u64));
        let etag = header(&resp, "etag").unwrap();
        let body = resp.bytes().unwrap();
        assert_eq!(&body[..], &raw[..]);
        let ext = if coding == "br" { "br" } else { "gz" };
        assert_eq!(
            decode(coding, &body),
            format!("built: small.css.{ext}\n").as_bytes()
        );
        // Revalidation with the copy's own tag.
        let resp = c
            .get(srv.url("/small.css"))
            .header("Accept-Encoding", accept)
            .header("If-None-Match", &etag)
            .send()
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(header(&resp, "etag"), Some(etag));
    }
    // Not asked for: the file itself.
    let resp = c.get(srv.url("/small.css")).send().unwrap();
    assert!(resp.bytes().unwrap() == files.small);
}

#[test]
fn range_requests_are_served_uncompressed() {
    let (dir, files) = site(None);
    let srv = TestServer::start_in(dir, "document_root: htdocs\n");
    let c = client();
    for path in ["/small.css", "/large.txt"] {
        let content = if path == "/small.css" {
            &files.small
        } else {
            &files.large
        };
        let resp = c
            .get(srv.url(path))
            .header("Accept-Encoding", "gzip, br")
            .header("Range", "bytes=100-1099")
            .send()
            .unwrap();
        assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(header(&resp, "content-encoding"), None);
        assert_eq!(
            header(&resp, "content-range"),
            Some(format!("bytes 100-1099/{}", content.len()))
        );
        assert_eq!(&resp.bytes().unwrap()[..], &content[100..1100]);
    }
}

#[test]
fn etags_differ_per_coding_and_revalidate() {
    let (dir, _files) = site(None);
    let srv = TestServer::start_in(dir, "document_root: htdocs\n");
    let c = client();
    let etag_for = |accept: &str| {
        let resp = c
            .get(srv.url("/small.css"))
            .header("Accept-Encoding", accept)
            .send()
            .unwrap();
        header(&resp, "etag").unwrap()
    };
    let plain = etag_for("identity");
    let gz = etag_for("gzip");
    let br = etag_for("br");
    assert!(plain != gz && gz != br && plain != br);
    assert_eq!(gz, format!("{}-gz\"", plain.trim_end_matches('"')));
    assert_eq!(br, format!("{}-br\"", plain.trim_end_matches('"')));
    for (accept, etag, expected) in [
        ("gzip", &gz, StatusCode::NOT_MODIFIED),
        ("br", &br, StatusCode::NOT_MODIFIED),
        ("identity", &plain, StatusCode::NOT_MODIFIED),
        ("gzip", &plain, StatusCode::OK),
        ("br", &gz, StatusCode::OK),
    ] {
        let resp = c
            .get(srv.url("/small.css"))
            .header("Accept-Encoding", accept)
            .header("If-None-Match", etag.as_str())
            .send()
            .unwrap();
        assert_eq!(resp.status(), expected, "{accept} {etag}");
        assert_eq!(header(&resp, "vary").as_deref(), Some("Accept-Encoding"));
    }
}

#[test]
fn cache_control_by_prefix() {
    let (dir, _files) = site(None);
    std::fs::create_dir(dir.path().join("htdocs/static")).unwrap();
    std::fs::write(dir.path().join("htdocs/static/app.js"), "let x = 1;\n").unwrap();
    let yaml = "document_root: htdocs\ncache_control:\n  - { prefix: /, value: no-cache }\n  - prefix: /static/\n    value: \"public, max-age=86400\"\n";
    let srv = TestServer::start_in(dir, yaml);
    let c = client();
    let cc = |path: &str| header(&c.get(srv.url(path)).send().unwrap(), "cache-control");
    assert_eq!(
        cc("/static/app.js").as_deref(),
        Some("public, max-age=86400")
    );
    assert_eq!(cc("/small.css").as_deref(), Some("no-cache"));
    assert_eq!(cc("/missing"), None);
}

#[test]
fn large_compressed_downloads_stream_in_bounded_memory() {
    const SIZE: usize = 40 << 20;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("htdocs")).unwrap();
    let path = dir.path().join("htdocs/big.txt");
    let mut expected = sha2::Sha256::new();
    {
        let mut out = BufWriter::new(std::fs::File::create(&path).unwrap());
        // Random letters: compressed, the file is still well over the memory
        // margin below, so buffering on either side would show. One random
        // mebibyte, its alphabet shifted per mebibyte so no encoder window
        // finds the previous one.
        const ALPHABET: &[u8; 29] = b"abcdefghijklmnopqrstuvwxyz  \n";
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let symbols: Vec<u8> = (0..1 << 20)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state % 29) as u8
            })
            .collect();
        for i in 0..SIZE >> 20 {
            let chunk: Vec<u8> = symbols
                .iter()
                .map(|&s| ALPHABET[(s as usize + i) % 29])
                .collect();
            out.write_all(&chunk).unwrap();
            expected.update(&chunk);
        }
    }
    let expected = expected.finalize();
    let srv = TestServer::start_in(dir, "document_root: htdocs\naccess_log: \"off\"\n");
    let c = client();
    c.get(srv.url("/")).send().unwrap();
    let before = rss_kib(srv.pid());
    for coding in ["gzip", "br"] {
        let resp = c
            .get(srv.url("/big.txt"))
            .header("Accept-Encoding", coding)
            .send()
            .unwrap();
        assert_eq!(header(&resp, "content-encoding").as_deref(), Some(coding));
        assert_eq!(resp.content_length(), None, "streamed, length unknown");
        let mut reader = decoder(coding, resp);
        let mut got = sha2::Sha256::new();
        let mut total = 0;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            total += n;
            got.update(&buf[..n]);
        }
        assert_eq!(total, SIZE);
        assert_eq!(got.finalize(), expected, "{coding}");
    }
    let peak = std::fs::read_to_string(format!("/proc/{}/status", srv.pid()))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap();
    assert!(
        peak < before + 16 * 1024,
        "peak RSS {peak} KiB vs {before} KiB before"
    );
}

const CGI_SCRIPT: &str = "printf 'Content-Type: text/plain\\r\\n\\r\\n'\n\
i=0\nwhile [ $i -lt 300 ]; do echo \"line $i of the program output\"; i=$((i+1)); done\n";

fn cgi_expected() -> Vec<u8> {
    (0..300)
        .map(|i| format!("line {i} of the program output\n"))
        .collect::<String>()
        .into_bytes()
}

#[test]
fn cgi_output_is_compressed_only_on_routes_that_opt_in() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("htdocs")).unwrap();
    std::fs::create_dir(dir.path().join("cgi")).unwrap();
    std::fs::write(dir.path().join("cgi/lines.sh"), CGI_SCRIPT).unwrap();
    let yaml = "document_root: htdocs\ncgi:\n  - prefix: /plain/\n    dir: cgi\n    interpreters: { .sh: sh }\n  - prefix: /packed/\n    dir: cgi\n    interpreters: { .sh: sh }\n    compress: true\n";
    let srv = TestServer::start_in(dir, yaml);
    let c = client();
    let get = |path: &str| {
        c.get(srv.url(path))
            .header("Accept-Encoding", "gzip")
            .send()
            .unwrap()
    };
    let resp = get("/plain/lines.sh");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "content-encoding"), None);
    assert_eq!(header(&resp, "vary"), None);
    assert!(resp.bytes().unwrap() == cgi_expected());

    let resp = get("/packed/lines.sh");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "content-encoding").as_deref(), Some("gzip"));
    assert_eq!(header(&resp, "vary").as_deref(), Some("Accept-Encoding"));
    assert_eq!(decode("gzip", &resp.bytes().unwrap()), cgi_expected());

    let resp = c.get(srv.url("/packed/lines.sh")).send().unwrap();
    assert_eq!(header(&resp, "content-encoding"), None);
    assert!(resp.bytes().unwrap() == cgi_expected());
}

#[test]
fn fastcgi_output_is_compressed_only_on_routes_that_opt_in() {
    let backend = fcgi_backend::FcgiBackend::start(4);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("htdocs")).unwrap();
    let yaml = format!(
        "document_root: htdocs\ncompression:\n  min_size: 10\nfastcgi:\n  - prefix: /plain/\n    backends: [\"{0}\"]\n  - prefix: /packed/\n    backends: [\"{0}\"]\n    compress: true\n",
        backend.addr
    );
    let srv = TestServer::start_in(dir, &yaml);
    let c = client();
    let get = |path: &str| {
        c.get(srv.url(path))
            .header("Accept-Encoding", "br, gzip")
            .send()
            .unwrap()
    };
    let resp = get("/plain/hello");
    assert_eq!(header(&resp, "content-encoding"), None);
    assert_eq!(resp.text().unwrap(), "hello");
    // "hello" came whole with its head: its length is known, and under
    // min_size, as a static file of that size would be.
    let resp = get("/packed/hello");
    assert_eq!(header(&resp, "content-encoding"), None);
    assert_eq!(resp.text().unwrap(), "hello");
    let resp = get("/packed/hello?repeat=20");
    assert_eq!(header(&resp, "content-encoding").as_deref(), Some("br"));
    assert_eq!(header(&resp, "vary").as_deref(), Some("Accept-Encoding"));
    assert_eq!(
        decode("br", &resp.bytes().unwrap()),
        "hello".repeat(20).as_bytes()
    );
}

/// curl decodes what it asked for with --compressed, over HTTP/2 and TLS.
#[test]
fn curl_compressed_over_http2() {
    if Command::new("curl").arg("--version").output().is_err() {
        eprintln!("curl not installed; skipped");
        return;
    }
    let pki = tls::make_pki(&["localhost", "127.0.0.1"]);
    let (dir, files) = site(Some(&pki));
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let yaml = "document_root: htdocs\ntls:\n  listen: [\"127.0.0.1:0\"]\n  cert: cert.pem\n  key: key.pem\n";
    let srv = TestServer::start_in(dir, yaml);
    let out_file = srv.dir.path().join("out.bin");
    let out = Command::new("curl")
        .args(["-sS", "--http2", "--compressed", "--cacert"])
        .arg(&ca)
        .arg("-o")
        .arg(&out_file)
        .args(["-w", "%{http_version} %{size_download}"])
        .arg(srv.https_url("/large.txt"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8(out.stdout).unwrap();
    let (version, downloaded) = summary.split_once(' ').unwrap();
    assert_eq!(version, "2");
    let downloaded: usize = downloaded.parse().unwrap();
    assert!(downloaded < files.large.len() / 2, "{summary}");
    assert!(std::fs::read(&out_file).unwrap() == files.large);
}
