//! HTTPS through the real binary: certificates chosen by the test or made at
//! start-up, ALPN (h2, http/1.1), handshake timeouts, plain HTTP on a TLS
//! port, `redirect_http`, `--check` of a cert/key pair, and curl when present.

#[path = "support/fcgi_backend.rs"]
mod fcgi_backend;
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use rustls_pki_types::pem::PemObject;

use reqwest::StatusCode;
use support::tls::{self as tls, Pki};
use support::{raw_with, status_of, TestServer, BIN};

const HELLO: &str = "hello over TLS\n";

/// A temp dir with `htdocs/hello.txt` and, when given, `cert.pem`/`key.pem`.
fn site(pki: Option<&Pki>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("htdocs")).unwrap();
    std::fs::write(dir.path().join("htdocs/hello.txt"), HELLO).unwrap();
    if let Some(pki) = pki {
        pki.write(dir.path());
    }
    dir
}

/// A server with a certificate for localhost/127.0.0.1 signed by a test CA.
fn server_with_pki(extra: &str) -> (TestServer, Pki) {
    let pki = tls::make_pki(&["localhost", "127.0.0.1"]);
    let yaml = format!(
        "document_root: htdocs\nlimits:\n  header_read_timeout: 1s\n{extra}tls:\n  listen: [\"127.0.0.1:0\"]\n  cert: cert.pem\n  key: key.pem\n"
    );
    let server = TestServer::start_in(site(Some(&pki)), &yaml);
    (server, pki)
}

const BOTH: &[&[u8]] = &[b"h2", b"http/1.1"];

#[test]
fn https_get_of_a_static_file_with_a_certificate_chosen_by_the_test() {
    let (srv, pki) = server_with_pki("");
    assert_eq!(srv.https_addrs().len(), 1);
    assert_ne!(srv.https_addr().port(), 0);
    let client = tls::https_client(tls::trusting(&pki.ca_pem, BOTH));
    let resp = client.get(srv.https_url("/hello.txt")).send().unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.text().unwrap(), HELLO);
    // The name in the certificate works too, and the plain listener still serves.
    let by_name = format!("https://localhost:{}/hello.txt", srv.https_addr().port());
    assert_eq!(client.get(by_name).send().unwrap().text().unwrap(), HELLO);
    let plain = support::client().get(srv.url("/hello.txt")).send().unwrap();
    assert_eq!(plain.text().unwrap(), HELLO);
}

#[test]
fn a_client_that_does_not_trust_the_certificate_is_refused() {
    let (srv, _pki) = server_with_pki("");
    let other = tls::make_pki(&["localhost"]);
    let client = tls::https_client(tls::trusting(&other.ca_pem, BOTH));
    assert!(client.get(srv.https_url("/hello.txt")).send().is_err());
}

#[test]
fn alpn_negotiates_h2_and_http11_when_h2_is_not_offered() {
    let (srv, pki) = server_with_pki("");
    let addr = srv.https_addr();
    let h2 = tls::connect(addr, "localhost", tls::trusting(&pki.ca_pem, BOTH));
    assert_eq!(h2.conn.alpn_protocol(), Some(&b"h2"[..]));
    let only_h2 = tls::connect(addr, "localhost", tls::trusting(&pki.ca_pem, &[b"h2"]));
    assert_eq!(only_h2.conn.alpn_protocol(), Some(&b"h2"[..]));

    for alpn in [&[&b"http/1.1"[..]][..], &[]] {
        let mut s = tls::connect(addr, "localhost", tls::trusting(&pki.ca_pem, alpn));
        let expected = alpn.first().copied();
        assert_eq!(s.conn.alpn_protocol(), expected);
        s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut reply = Vec::new();
        let _ = s.read_to_end(&mut reply);
        let reply = String::from_utf8_lossy(&reply);
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(reply.ends_with(HELLO), "{reply}");
    }

    // reqwest offering only http/1.1 gets HTTP/1.1.
    let h1 = tls::https_client(tls::trusting(&pki.ca_pem, &[b"http/1.1"]));
    let resp = h1.get(srv.https_url("/hello.txt")).send().unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    assert_eq!(resp.text().unwrap(), HELLO);
}

#[test]
fn tls12_and_tls13_are_both_accepted() {
    let (srv, pki) = server_with_pki("");
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(pki.ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let s = tls::connect(srv.https_addr(), "localhost", config);
        assert_eq!(s.conn.protocol_version(), Some(version.version));
    }
}

#[test]
fn self_signed_certificate_is_the_one_whose_fingerprint_is_logged() {
    let yaml = "document_root: htdocs\nserver_name: www.example.test\ntls:\n  listen: [\"127.0.0.1:0\"]\n  self_signed: true\n";
    let srv = TestServer::start_in(site(None), yaml);
    let log = srv.stderr_log();
    let fingerprint = tls::logged_fingerprint(&log).unwrap_or_else(|| panic!("{log}"));
    assert_eq!(fingerprint.len(), 32 * 3 - 1, "{fingerprint}");

    let pinned = tls::https_client(tls::pinned(&fingerprint, BOTH));
    let resp = pinned.get(srv.https_url("/hello.txt")).send().unwrap();
    assert_eq!(resp.text().unwrap(), HELLO);

    let mut wrong = fingerprint.clone().into_bytes();
    wrong[0] = if wrong[0] == b'0' { b'1' } else { b'0' };
    let wrong = String::from_utf8(wrong).unwrap();
    let refused = tls::https_client(tls::pinned(&wrong, BOTH));
    assert!(refused.get(srv.https_url("/hello.txt")).send().is_err());

    // Made for server_name, localhost and the loopback addresses.
    let s = tls::connect(
        srv.https_addr(),
        "localhost",
        tls::pinned(&fingerprint, BOTH),
    );
    let cert = s.conn.peer_certificates().unwrap()[0].clone();
    let der = cert.as_ref();
    for name in [&b"www.example.test"[..], b"localhost", &[127, 0, 0, 1]] {
        assert!(der.windows(name.len()).any(|w| w == name), "{name:?}");
    }
}

#[test]
fn a_stalled_handshake_is_cut_off_while_another_client_is_served() {
    let (srv, pki) = server_with_pki("");
    let addr = srv.https_addr();
    // One says nothing, one sends the first bytes of a ClientHello and stops.
    let silent = TcpStream::connect(addr).unwrap();
    let mut partial = TcpStream::connect(addr).unwrap();
    partial
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .unwrap();
    let started = Instant::now();

    let client = tls::https_client(tls::trusting(&pki.ca_pem, BOTH));
    let resp = client.get(srv.https_url("/hello.txt")).send().unwrap();
    assert_eq!(resp.text().unwrap(), HELLO);
    assert!(started.elapsed() < Duration::from_millis(900));

    for mut stalled in [silent, partial] {
        stalled
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 64];
        // Closed by the server: end of stream (or a reset), not our timeout.
        match stalled.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => panic!("unexpected {n} bytes from a stalled handshake"),
            Err(e) => assert!(
                !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "{e}"
            ),
        }
    }
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
}

#[test]
fn plain_http_sent_to_the_tls_port_is_closed() {
    let (srv, _pki) = server_with_pki("");
    let started = Instant::now();
    let reply = raw_with(
        srv.https_addr(),
        b"GET /hello.txt HTTP/1.1\r\nHost: localhost\r\n\r\n",
        Duration::from_secs(10),
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(!reply.contains("HTTP/1.1"), "{reply:?}");
    assert!(!reply.contains(HELLO), "{reply:?}");
}

#[test]
fn redirect_http_sends_plain_requests_to_the_tls_port() {
    let pki = tls::make_pki(&["localhost", "127.0.0.1"]);
    let yaml = "document_root: htdocs\nserver_name: fallback.test\ntls:\n  listen: [\"127.0.0.1:0\"]\n  cert: cert.pem\n  key: key.pem\n  redirect_http: true\n";
    let srv = TestServer::start_in(site(Some(&pki)), yaml);
    let port = srv.https_addr().port();

    let client = support::client();
    let resp = client
        .get(srv.url("/dir/a%20b.txt?x=1&y=2"))
        .header("Host", "example.test:8080")
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        resp.headers()["location"],
        format!("https://example.test:{port}/dir/a%20b.txt?x=1&y=2").as_str()
    );
    // Any method, any path: still a 308 (the method is kept by the client).
    let resp = client.post(srv.url("/form")).body("a=1").send().unwrap();
    assert_eq!(resp.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        resp.headers()["location"],
        format!("https://127.0.0.1:{port}/form").as_str()
    );
    // No Host (HTTP/1.0): server_name.
    let reply = raw_with(
        srv.addr(),
        b"GET /hello.txt HTTP/1.0\r\n\r\n",
        Duration::from_secs(5),
    );
    assert_eq!(status_of(&reply), 308);
    let expected = format!("location: https://fallback.test:{port}/hello.txt\r\n");
    assert!(reply.to_ascii_lowercase().contains(&expected), "{reply}");
    // The TLS listener serves.
    let https = tls::https_client(tls::trusting(&pki.ca_pem, BOTH));
    let resp = https.get(srv.https_url("/hello.txt")).send().unwrap();
    assert_eq!(resp.text().unwrap(), HELLO);
}

#[test]
fn https_only_server_prints_only_https_lines() {
    let pki = tls::make_pki(&["localhost", "127.0.0.1"]);
    let yaml = "listen: []\ndocument_root: htdocs\ntls:\n  listen: [\"127.0.0.1:0\", \"127.0.0.1:0\"]\n  cert: cert.pem\n  key: key.pem\n";
    let srv = TestServer::start_in(site(Some(&pki)), yaml);
    assert!(srv.addrs().is_empty());
    assert_eq!(srv.https_addrs().len(), 2);
    let client = tls::https_client(tls::trusting(&pki.ca_pem, BOTH));
    for addr in srv.https_addrs() {
        let url = format!("https://{addr}/hello.txt");
        assert_eq!(client.get(url).send().unwrap().text().unwrap(), HELLO);
    }
    let log = srv.stderr_log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("gatehouse listening on "))
        .collect();
    let expected: Vec<String> = srv
        .https_addrs()
        .iter()
        .map(|a| format!("gatehouse listening on https://{a}"))
        .collect();
    assert_eq!(lines, expected);
}

#[test]
fn check_reports_a_mismatched_or_unreadable_pair() {
    let pki = tls::make_pki(&["localhost"]);
    let other = tls::make_pki(&["localhost"]);
    let dir = site(Some(&pki));
    std::fs::write(dir.path().join("other.key"), &other.key_pem).unwrap();
    std::fs::write(dir.path().join("junk.pem"), "hello\n").unwrap();
    let check = |cert: &str, key: &str| {
        let config = dir.path().join("check.yaml");
        let yaml = format!(
            "document_root: htdocs\ntls:\n  listen: [\"127.0.0.1:0\"]\n  cert: {cert}\n  key: {key}\n"
        );
        std::fs::write(&config, yaml).unwrap();
        let out = Command::new(BIN)
            .arg("--check")
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code(), text)
    };
    let (code, text) = check("cert.pem", "key.pem");
    assert_eq!((code, text.trim()), (Some(0), "configuration ok"));
    let (code, text) = check("cert.pem", "other.key");
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("check.yaml:4:9: tls: the private key"),
        "{text}"
    );
    assert!(
        text.contains("does not belong to the certificate"),
        "{text}"
    );
    let (code, text) = check("junk.pem", "key.pem");
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("tls.cert: ") && text.contains("no certificate"),
        "{text}"
    );
    let (code, text) = check("cert.pem", "missing.pem");
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("tls.key: ") && text.contains("does not exist"),
        "{text}"
    );
    // The server itself refuses to start with the same status.
    check("cert.pem", "other.key");
    let config = dir.path().join("check.yaml");
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// NAME=value lines of `env.py?format=text`, as a map.
fn cgi_env(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn cgi_over_https_sees_https_scheme_port_and_protocol() {
    let pki = tls::make_pki(&["localhost", "127.0.0.1"]);
    let dir = site(Some(&pki));
    std::fs::create_dir(dir.path().join("cgi")).unwrap();
    std::fs::copy(
        support::repo_dir().join("cgi-bin/env.py"),
        dir.path().join("cgi/env.py"),
    )
    .unwrap();
    let yaml = "document_root: htdocs\ncgi:\n  - prefix: /cgi-bin/\n    dir: cgi\n    interpreters: { .py: python3 }\ntls:\n  listen: [\"127.0.0.1:0\"]\n  cert: cert.pem\n  key: key.pem\n";
    let srv = TestServer::start_in(dir, yaml);
    let tls_port = srv.https_addr().port().to_string();
    let path = "/cgi-bin/env.py?format=text";

    for (alpn, protocol) in [(BOTH, "HTTP/2.0"), (&[&b"http/1.1"[..]][..], "HTTP/1.1")] {
        let client = tls::https_client(tls::trusting(&pki.ca_pem, alpn));
        let resp = client.get(srv.https_url(path)).send().unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let env = cgi_env(&resp.text().unwrap());
        assert_eq!(env.get("HTTPS").map(String::as_str), Some("on"), "{env:?}");
        assert_eq!(env["REQUEST_SCHEME"], "https");
        assert_eq!(env["SERVER_PORT"], tls_port);
        assert_eq!(env["SERVER_PROTOCOL"], protocol);
    }

    let resp = support::client().get(srv.url(path)).send().unwrap();
    let env = cgi_env(&resp.text().unwrap());
    assert!(!env.contains_key("HTTPS"), "{env:?}");
    assert_eq!(env["REQUEST_SCHEME"], "http");
    assert_eq!(env["SERVER_PORT"], srv.addr().port().to_string());
    assert_eq!(env["SERVER_PROTOCOL"], "HTTP/1.1");
}

#[test]
fn fastcgi_over_https_sees_https_scheme_port_and_protocol() {
    let backend = fcgi_backend::FcgiBackend::start(4);
    let pki = tls::make_pki(&["localhost", "127.0.0.1"]);
    let yaml = format!(
        "document_root: htdocs\nfastcgi:\n  - prefix: /t/\n    backends: [\"{}\"]\ntls:\n  listen: [\"127.0.0.1:0\"]\n  cert: cert.pem\n  key: key.pem\n",
        backend.addr
    );
    let srv = TestServer::start_in(site(Some(&pki)), &yaml);
    let tls_port = srv.https_addr().port().to_string();
    for (alpn, protocol) in [(BOTH, "HTTP/2.0"), (&[&b"http/1.1"[..]][..], "HTTP/1.1")] {
        let client = tls::https_client(tls::trusting(&pki.ca_pem, alpn));
        let resp = client.get(srv.https_url("/t/env")).send().unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let env = cgi_env(&resp.text().unwrap());
        assert_eq!(env.get("HTTPS").map(String::as_str), Some("on"), "{env:?}");
        assert_eq!(env["REQUEST_SCHEME"], "https");
        assert_eq!(env["SERVER_PORT"], tls_port);
        assert_eq!(env["SERVER_PROTOCOL"], protocol);
    }
    let resp = support::client().get(srv.url("/t/env")).send().unwrap();
    let env = cgi_env(&resp.text().unwrap());
    assert!(!env.contains_key("HTTPS"), "{env:?}");
    assert_eq!(env["REQUEST_SCHEME"], "http");
}

/// `curl --http2` against the TLS port, when curl is installed.
#[test]
fn curl_negotiates_http2_over_tls() {
    if Command::new("curl").arg("--version").output().is_err() {
        eprintln!("curl not installed; skipped");
        return;
    }
    let (srv, pki) = server_with_pki("");
    let ca = srv.dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let curl = |flag: &str| {
        let out = Command::new("curl")
            .args(["-sS", flag, "--cacert"])
            .arg(&ca)
            .args(["-w", "\n%{http_version}"])
            .arg(srv.https_url("/hello.txt"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(curl("--http2"), format!("{HELLO}\n2"));
    assert_eq!(curl("--http1.1"), format!("{HELLO}\n1.1"));
}
