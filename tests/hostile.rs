//! Hostile HTTP input on raw sockets, one test per vector: malformed request
//! lines and headers, request smuggling into CGI and FastCGI, limits on
//! bodies as they arrive, slow clients, and CGI/FastCGI output that tries to
//! inject headers. (URI and header-size limits: tests/server.rs; traversal:
//! tests/traversal.rs.)

#[path = "support/fcgi_backend.rs"]
mod fcgi_backend;
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fcgi_backend::FcgiBackend;
use support::{client, rss_kib, status_of, TestServer};

/// A CGI program that leaves a marker file when it runs, then echoes
/// CONTENT_LENGTH and its input.
const ECHO: &str = "#!/bin/sh\ntouch \"$MARKER_DIR/ran\"\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\necho \"len=$CONTENT_LENGTH\"\ncat\n";

struct Site {
    srv: TestServer,
    backend: FcgiBackend,
    markers: PathBuf,
}

impl Site {
    fn ran(&self) -> bool {
        self.markers.join("ran").exists()
    }
}

fn site() -> Site {
    let backend = FcgiBackend::start(8);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join("htdocs")).unwrap();
    std::fs::write(root.join("htdocs/a.txt"), "hello\n").unwrap();
    std::fs::create_dir(root.join("cgi")).unwrap();
    std::fs::create_dir(root.join("markers")).unwrap();
    let programs = [
        ("echo.sh", ECHO),
        (
            "args.sh",
            "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\necho \"argc=$# args=$*\"\n",
        ),
        (
            "inject-cr.sh",
            "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\nX-Note: a\\rSet-Cookie: injected=1\\r\\n\\r\\nbody'\n",
        ),
        (
            "inject-status.sh",
            "#!/bin/sh\nprintf 'Status: 200 OK\\r\\nStatus: 302 Found\\r\\nContent-Type: text/plain\\r\\n\\r\\nbody'\n",
        ),
        (
            "inject-name.sh",
            "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\nSet-Cookie injected: 1\\r\\n\\r\\nbody'\n",
        ),
        (
            "inject-fold.sh",
            "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\nX-Note: a\\r\\n Set-Cookie: injected=1\\r\\n\\r\\nbody'\n",
        ),
    ];
    for (name, text) in programs {
        let path = root.join("cgi").join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let markers = root.join("markers").canonicalize().unwrap();
    let yaml = format!(
        r#"document_root: htdocs
access_log: "off"
limits:
  max_request_body: 4KiB
  header_read_timeout: 2s
cgi:
  - prefix: /cgi-bin/
    dir: cgi
    env: {{ MARKER_DIR: "{markers}" }}
fastcgi:
  - prefix: /t/
    backends: ["{addr}"]
    read_timeout: 5s
"#,
        markers = markers.display(),
        addr = backend.addr,
    );
    Site {
        srv: TestServer::start_in(dir, &yaml),
        backend,
        markers,
    }
}

/// Send `request`, read until the server closes or goes quiet for `wait`.
/// Returns the reply and whether the server closed the connection.
fn exchange_with(addr: SocketAddr, request: &[u8], wait: Duration) -> (String, bool) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(wait)).unwrap();
    let _ = stream.write_all(request);
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    let closed = loop {
        match stream.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

fn exchange(addr: SocketAddr, request: &[u8]) -> (String, bool) {
    exchange_with(addr, request, Duration::from_secs(5))
}

/// Every request gets exactly one 400 and the connection closed.
fn assert_400_and_closed(site: &Site, requests: &[Vec<u8>]) {
    for request in requests {
        let (reply, closed) = exchange(site.srv.addr(), request);
        let shown = String::from_utf8_lossy(request);
        assert_eq!(status_of(&reply), 400, "{shown:?} -> {reply}");
        assert_eq!(
            reply.matches("HTTP/1.1 ").count(),
            1,
            "{shown:?} -> {reply}"
        );
        assert!(closed, "connection left open after {shown:?}");
    }
}

fn lines(parts: &[&str]) -> Vec<Vec<u8>> {
    parts.iter().map(|p| p.as_bytes().to_vec()).collect()
}

#[test]
fn garbage_request_lines_are_400() {
    let site = site();
    let mut requests = lines(&[
        "HELLO\r\n\r\n",
        "GET\r\n\r\n",
        "GET  /a.txt  HTTP/1.1\r\nHost: x\r\n\r\n",
        " GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /a.txt HTTP/1.1 extra\r\nHost: x\r\n\r\n",
        "GET /a.txt HTTPS/1.1\r\nHost: x\r\n\r\n",
        "\r\n\r\n\r\nxyz\r\n\r\n",
    ]);
    // A TLS ClientHello on the plain port.
    requests.push(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec());
    requests.push(b"GET /a.txt HTTP/1.1\x00\r\nHost: x\r\n\r\n".to_vec());
    assert_400_and_closed(&site, &requests);
}

#[test]
fn missing_http_version_is_400() {
    let site = site();
    assert_400_and_closed(
        &site,
        &lines(&[
            "GET /a.txt\r\nHost: x\r\n\r\n",
            "GET /a.txt \r\nHost: x\r\n\r\n",
        ]),
    );
}

#[test]
fn unknown_methods_are_400() {
    let site = site();
    assert_400_and_closed(
        &site,
        &lines(&[
            "FOO /a.txt HTTP/1.1\r\nHost: x\r\n\r\n",
            "get /a.txt HTTP/1.1\r\nHost: x\r\n\r\n",
            "BREW /cgi-bin/echo.sh HTTP/1.1\r\nHost: x\r\n\r\n",
            "G(T /a.txt HTTP/1.1\r\nHost: x\r\n\r\n",
            "GE\x01T /a.txt HTTP/1.1\r\nHost: x\r\n\r\n",
        ]),
    );
    assert!(!site.ran(), "a CGI program saw an unknown method");
    // Registered methods still reach CGI programs (WebDAV's, for one).
    let (reply, _) = exchange(
        site.srv.addr(),
        b"PROPFIND /cgi-bin/echo.sh HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status_of(&reply), 200, "{reply}");
}

#[test]
fn invalid_header_names_are_400() {
    let site = site();
    assert_400_and_closed(
        &site,
        &lines(&[
            "GET /a.txt HTTP/1.1\r\nHost: x\r\nBad Name: y\r\n\r\n",
            "GET /a.txt HTTP/1.1\r\nHost: x\r\nX-A : y\r\n\r\n",
            "GET /a.txt HTTP/1.1\r\nHost: x\r\nBad\x01: y\r\n\r\n",
            "GET /a.txt HTTP/1.1\r\nHost: x\r\n: no name\r\n\r\n",
            "GET /a.txt HTTP/1.1\r\nHost: x\r\n(x): y\r\n\r\n",
            "GET /a.txt HTTP/1.1\r\nHost: x\r\nNo-Colon\r\n\r\n",
        ]),
    );
}

#[test]
fn invalid_header_values_are_400() {
    let site = site();
    assert_400_and_closed(
        &site,
        &lines(&[
            "GET /a.txt HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
            "GET /a.txt HTTP/1.1\r\nHost: x\r\nX-A: a\x07b\r\n\r\n",
            "GET /a.txt HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n",
            "GET /a.txt HTTP/1.1\r\nHost: x\r\nX-A: a\x7fb\r\n\r\n",
        ]),
    );
}

#[test]
fn obs_fold_is_400() {
    // RFC 9112 section 5.2: a server may reject obs-fold with 400; folding is
    // how a header value hides a second header from a front end.
    let site = site();
    assert_400_and_closed(
        &site,
        &lines(&[
            "GET /a.txt HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
            "GET /a.txt HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tTransfer-Encoding: chunked\r\n\r\n",
            "GET /a.txt HTTP/1.1\r\n Host: x\r\n\r\n",
        ]),
    );
}

#[test]
fn nul_in_the_target_is_400() {
    let site = site();
    let mut requests = vec![b"GET /a.txt\x00 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()];
    for path in [
        "/a.txt%00",
        "/a.txt%00.html",
        "/cgi-bin/echo.sh%00",
        "/t/x%00y",
    ] {
        requests.push(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes());
    }
    assert_400_and_closed(&site, &requests);
    assert!(!site.ran());
}

#[test]
fn cr_lf_in_the_target_is_400() {
    let site = site();
    let mut requests = lines(&[
        "GET /a\r.txt HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /a\n.txt HTTP/1.1\r\nHost: x\r\n\r\n",
    ]);
    // Encoded: response splitting through a redirect or a CGI variable.
    for path in [
        "/a.txt%0d%0aSet-Cookie:%20x=1",
        "/%0aX:y/",
        "/cgi-bin/echo.sh/%0d%0aX-Injected:%201",
        "/t/x%0d%0aX-Injected:%201",
    ] {
        requests.push(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes());
    }
    assert_400_and_closed(&site, &requests);
    assert!(!site.ran());
    assert_eq!(site.backend.requests(), 0);
}

/// A request that smuggles a second one behind it, sent to CGI and FastCGI.
fn smuggling(head_fields: &str) -> Vec<Vec<u8>> {
    ["/cgi-bin/echo.sh", "/t/stdin"]
        .iter()
        .map(|path| {
            format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\n{head_fields}\r\n\
                 0\r\n\r\nGET /cgi-bin/echo.sh?smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
            )
            .into_bytes()
        })
        .collect()
}

#[test]
fn content_length_with_transfer_encoding_is_400_and_closes() {
    let site = site();
    let mut requests = smuggling("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n");
    requests.extend(smuggling(
        "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
    ));
    requests.extend(smuggling(
        "transfer-encoding: chunked\r\ncontent-length: 0\r\n",
    ));
    assert_400_and_closed(&site, &requests);
    assert!(!site.ran(), "a CGI program ran");
    assert_eq!(site.backend.requests(), 0, "a FastCGI request was sent");
    // Pipelined behind a good request: the good one is answered, the
    // smuggling one is refused, and nothing after it.
    let (reply, closed) = exchange(
        site.srv.addr(),
        b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n\
          POST /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n\
          0\r\n\r\nGET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let statuses: Vec<&str> = reply
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &reply[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, ["200", "400"], "{reply}");
    assert!(closed);
}

#[test]
fn duplicate_differing_content_length_is_400_and_closes() {
    let site = site();
    let mut requests = Vec::new();
    for path in ["/cgi-bin/echo.sh", "/t/stdin", "/a.txt"] {
        for fields in [
            "Content-Length: 4\r\nContent-Length: 5\r\n",
            "Content-Length: 4, 5\r\n",
            "Content-Length: 4, 4\r\n",
            "Content-Length: +4\r\n",
            "Content-Length: 0x4\r\n",
            "Content-Length: -4\r\n",
        ] {
            requests.push(
                format!(
                    "POST {path} HTTP/1.1\r\nHost: x\r\n{fields}\r\nabcdeGET / HTTP/1.1\r\n\r\n"
                )
                .into_bytes(),
            );
        }
    }
    assert_400_and_closed(&site, &requests);
    assert!(!site.ran());
    assert_eq!(site.backend.requests(), 0);
}

#[test]
fn bad_chunk_sizes_are_400_and_close() {
    let site = site();
    let mut requests = Vec::new();
    for path in ["/cgi-bin/echo.sh", "/t/stdin", "/a.txt"] {
        for size in ["zz", "-1", "0x5", "ffffffffffffffffffff", " 5", "5 5"] {
            requests.push(
                format!(
                    "POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
                     {size}\r\nabcde\r\n0\r\n\r\nGET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n"
                )
                .into_bytes(),
            );
        }
        // Chunk data longer than its size says.
        requests.push(
            format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
                 2\r\nabcde\r\n0\r\n\r\n"
            )
            .into_bytes(),
        );
    }
    assert_400_and_closed(&site, &requests);
    assert!(!site.ran(), "a CGI program got a broken body");
    assert_eq!(site.backend.requests(), 0, "a backend got a broken body");
}

#[test]
fn transfer_codings_other_than_chunked_are_400() {
    let site = site();
    let mut requests = Vec::new();
    for coding in [
        "gzip",
        "identity",
        "chunked, chunked",
        "gzip, chunked",
        "xchunked",
        "chunked\r\nTransfer-Encoding: chunked",
    ] {
        requests.push(
            format!(
                "POST /cgi-bin/echo.sh HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: {coding}\r\n\r\n0\r\n\r\n"
            )
            .into_bytes(),
        );
    }
    // HTTP/1.0 has no chunked coding (RFC 9112 section 6.1).
    requests.push(
        b"POST /cgi-bin/echo.sh HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
    );
    assert_400_and_closed(&site, &requests);
    assert!(!site.ran());
}

#[test]
fn chunked_body_over_the_limit_is_413_as_it_arrives() {
    let site = site();
    for path in ["/cgi-bin/echo.sh", "/t/stdin"] {
        // 5 KiB in chunks against a 4 KiB limit, and the body never ends:
        // the answer cannot wait for its end.
        let mut request =
            format!("POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
                .into_bytes();
        for _ in 0..5 {
            request.extend_from_slice(b"400\r\n");
            request.extend_from_slice(&[b'x'; 1024]);
            request.extend_from_slice(b"\r\n");
        }
        let started = Instant::now();
        let (reply, closed) = exchange_with(site.srv.addr(), &request, Duration::from_secs(10));
        assert_eq!(status_of(&reply), 413, "{path}: {reply}");
        assert!(closed, "{path}");
        assert!(started.elapsed() < Duration::from_secs(8), "{path}: waited");
    }
    assert!(!site.ran());
    assert_eq!(site.backend.requests(), 0);
    // Exactly at the limit is fine.
    let mut request =
        b"POST /cgi-bin/echo.sh HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            .to_vec();
    for _ in 0..4 {
        request.extend_from_slice(b"400\r\n");
        request.extend_from_slice(&[b'x'; 1024]);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let (reply, _) = exchange(site.srv.addr(), &request);
    assert_eq!(status_of(&reply), 200, "{reply}");
    assert!(reply.contains("len=4096"), "{reply}");
}

#[test]
fn declared_body_over_the_limit_is_413_before_any_program_runs() {
    let site = site();
    for path in ["/cgi-bin/echo.sh", "/t/stdin"] {
        let (reply, closed) = exchange(
            site.srv.addr(),
            format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\nxxxx")
                .as_bytes(),
        );
        assert_eq!(status_of(&reply), 413, "{path}: {reply}");
        assert!(closed);
    }
    assert!(!site.ran());
    assert_eq!(site.backend.requests(), 0);
}

#[test]
fn slowloris_is_cut_off_while_a_hundred_clients_are_served() {
    let site = site();
    let addr = site.srv.addr();
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..100)
        .map(|_| {
            let (stop, served, failed) = (stop.clone(), served.clone(), failed.clone());
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(addr).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                let mut buf = [0u8; 4096];
                while !stop.load(Ordering::SeqCst) {
                    let ok = stream
                        .write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
                        .is_ok()
                        && matches!(stream.read(&mut buf), Ok(n) if n > 0 && buf.starts_with(b"HTTP/1.1 200"));
                    if ok {
                        served.fetch_add(1, Ordering::SeqCst);
                    } else {
                        failed.fetch_add(1, Ordering::SeqCst);
                        // Reconnect and go on (counted as a failure).
                        stream = TcpStream::connect(addr).unwrap();
                        stream
                            .set_read_timeout(Some(Duration::from_secs(10)))
                            .unwrap();
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        })
        .collect();

    // One header byte a second: the header timeout is 2s.
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let started = Instant::now();
    let mut cut_off = None;
    let mut buf = [0u8; 1024];
    for byte in
        b"GET /a.txt HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter()
    {
        if slow.write_all(&[*byte]).is_err() {
            cut_off = Some(started.elapsed());
            break;
        }
        match slow.read(&mut buf) {
            Ok(0) => {
                cut_off = Some(started.elapsed());
                break;
            }
            Ok(n) => {
                let reply = String::from_utf8_lossy(&buf[..n]);
                assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
                cut_off = Some(started.elapsed());
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                cut_off = Some(started.elapsed());
                break;
            }
            Err(_) => {} // still open
        }
        std::thread::sleep(Duration::from_millis(900));
        if started.elapsed() > Duration::from_secs(20) {
            break;
        }
    }
    let during = served.load(Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    let cut_off = cut_off.expect("the trickling client was never cut off");
    assert!(
        cut_off >= Duration::from_millis(1500) && cut_off < Duration::from_secs(6),
        "cut off after {cut_off:?}, the header timeout is 2s"
    );
    assert_eq!(failed.load(Ordering::SeqCst), 0, "other clients failed");
    assert!(during >= 100, "only {during} requests served meanwhile");
}

#[test]
fn a_client_that_stops_reading_a_large_file_holds_bounded_memory() {
    let site = site();
    let big = site.srv.dir.path().join("htdocs/big.bin");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(512 << 20)
        .unwrap();
    // Warm up, then measure.
    assert_eq!(
        client()
            .get(site.srv.url("/a.txt"))
            .send()
            .unwrap()
            .status(),
        200
    );
    let before = rss_kib(site.srv.pid());
    let stalled: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut s = TcpStream::connect(site.srv.addr()).unwrap();
            s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    let after = rss_kib(site.srv.pid());
    // 20 stalled 512 MiB downloads: socket buffers and one read buffer each,
    // nothing near the file size.
    assert!(
        after.saturating_sub(before) < 64 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    drop(stalled);
    assert_eq!(
        client()
            .get(site.srv.url("/a.txt"))
            .send()
            .unwrap()
            .status(),
        200
    );
}

fn assert_injection_refused(srv: &TestServer, paths: &[&str]) {
    for path in paths {
        let (reply, _) = exchange(
            srv.addr(),
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert_eq!(status_of(&reply), 502, "{path}: {reply}");
        let lower = reply.to_ascii_lowercase();
        assert!(
            !lower.contains("injected")
                && !lower.contains("set-cookie")
                && !lower.contains("x-note"),
            "{path} forwarded something: {reply}"
        );
    }
}

#[test]
fn header_injection_from_cgi_output_is_502() {
    let site = site();
    assert_injection_refused(
        &site.srv,
        &[
            "/cgi-bin/inject-cr.sh",
            "/cgi-bin/inject-status.sh",
            "/cgi-bin/inject-name.sh",
            "/cgi-bin/inject-fold.sh",
        ],
    );
}

#[test]
fn header_injection_from_fastcgi_output_is_502() {
    let site = site();
    assert_injection_refused(
        &site.srv,
        &["/t/inject-cr", "/t/inject-status", "/t/inject-name"],
    );
    // The pool is still good afterwards.
    assert_eq!(
        client().get(site.srv.url("/t/")).send().unwrap().status(),
        200
    );
}

#[test]
fn query_string_never_becomes_argv() {
    // RFC 3875 section 4.4 suggests an "=-less" query as command-line words;
    // php-cgi took `?-s` as its flag to print the source (CVE-2012-1823).
    let site = site();
    for query in ["-s", "-d+allow_url_include%3d1+-n", "a+b+c"] {
        let resp = client()
            .get(site.srv.url(&format!("/cgi-bin/args.sh?{query}")))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().unwrap().trim(), "argc=0 args=", "?{query}");
    }
}

#[test]
fn content_length_with_transfer_encoding_over_tls_is_400_and_closes() {
    // The framing check reads the decrypted stream, so HTTPS is covered too.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("htdocs")).unwrap();
    std::fs::write(dir.path().join("htdocs/a.txt"), "hello\n").unwrap();
    let srv = TestServer::start_in(
        dir,
        "document_root: htdocs\naccess_log: \"off\"\ncgi: []\n\
         tls:\n  listen: [\"127.0.0.1:0\"]\n  self_signed: true\n",
    );
    let log = srv.stderr_log();
    let fingerprint = support::tls::logged_fingerprint(&log).unwrap_or_else(|| panic!("{log}"));
    let config = support::tls::pinned(&fingerprint, &[b"http/1.1"]);
    let mut s = support::tls::connect(srv.https_addr(), "localhost", config);
    s.write_all(
        b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n\
          POST /a.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n\
          0\r\n\r\nGET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    let reply = String::from_utf8_lossy(&reply);
    let statuses: Vec<&str> = reply
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &reply[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, ["200", "400"], "{reply}");
}
