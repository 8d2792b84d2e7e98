//! The FastCGI gateway against a backend of our own (tests/support/fcgi_backend.rs):
//! params, bodies, reuse, local redirects, and every fault php-fpm will not
//! produce on request.

#[path = "support/fcgi_backend.rs"]
mod fcgi_backend;
mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use fcgi_backend::FcgiBackend;
use support::{client, raw, status_of, TestServer};

/// A free port that refuses connections (nothing listens there).
fn refused_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A server with `/t/` on `backend`, the routes in `extra`, a php-style
/// route, and static files.
fn server(backend: &FcgiBackend, extra: &str) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("htdocs")).unwrap();
    std::fs::write(dir.path().join("htdocs/index.html"), "static ok").unwrap();
    std::fs::create_dir_all(dir.path().join("php/sub")).unwrap();
    std::fs::write(dir.path().join("php/exists.php"), "<?php").unwrap();
    std::fs::write(dir.path().join("php/sub/index.php"), "<?php").unwrap();
    let addr = backend.addr;
    let yaml = format!(
        r#"document_root: htdocs
access_log: "off"
fastcgi:
  - prefix: /t/
    backends: ["{addr}"]
    read_timeout: 1s
    keepalive: 4
    params: {{ APP_ENV: test }}
{extra}  - match: '(\.php(/|$))|/$'
    backends: ["{addr}"]
    root: php
    index: index.php
    split_path_info: '^(.+?\.php)(/.*)?$'
"#
    );
    TestServer::start_in(dir, &yaml)
}

fn env_of(body: &str) -> HashMap<String, String> {
    body.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn params_for_a_mounted_responder() {
    let backend = FcgiBackend::start(8);
    let srv = server(&backend, "");
    let resp = client()
        .get(srv.url("/t/env?a=1&b=%20"))
        .header("Proxy", "http://evil.example/")
        .header("X-Custom", "yes")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let env = env_of(&resp.text().unwrap());
    assert_eq!(env["SCRIPT_NAME"], "/t");
    assert_eq!(env["PATH_INFO"], "/env");
    assert_eq!(env["QUERY_STRING"], "a=1&b=%20");
    assert_eq!(env["REQUEST_METHOD"], "GET");
    assert_eq!(env["REDIRECT_STATUS"], "200");
    assert_eq!(env["GATEWAY_INTERFACE"], "CGI/1.1");
    assert_eq!(env["APP_ENV"], "test", "route params");
    assert_eq!(env["HTTP_X_CUSTOM"], "yes");
    assert!(!env.contains_key("HTTP_PROXY"), "httpoxy");
    assert!(
        !env.contains_key("CONTENT_LENGTH"),
        "no body, no CONTENT_LENGTH"
    );
    assert!(!env.contains_key("HTTPS"));
}

#[test]
fn bodies_with_and_without_a_length() {
    let backend = FcgiBackend::start(8);
    let srv = server(&backend, "");
    let resp = client()
        .post(srv.url("/t/stdin"))
        .body("hello=world")
        .send()
        .unwrap();
    assert_eq!(resp.text().unwrap(), "CONTENT_LENGTH=11\nhello=world");

    // Chunked: spooled first, so CONTENT_LENGTH is exact.
    let data = "x".repeat(200_000);
    let resp = client()
        .post(srv.url("/t/stdin"))
        .body(reqwest::blocking::Body::new(std::io::Cursor::new(
            data.clone(),
        )))
        .send()
        .unwrap();
    let text = resp.text().unwrap();
    assert_eq!(text, format!("CONTENT_LENGTH=200000\n{data}"));
}

#[test]
fn connections_are_reused() {
    let backend = FcgiBackend::start(8);
    let other = FcgiBackend::start(8);
    let extra = format!(
        "  - prefix: /k0/\n    backends: [\"{}\"]\n    keepalive: 0\n",
        other.addr
    );
    let srv = server(&backend, &extra);
    let c = client();
    for _ in 0..10 {
        assert_eq!(
            c.get(srv.url("/t/")).send().unwrap().text().unwrap(),
            "hello"
        );
    }
    assert!(backend.requests() >= 10);
    assert!(
        backend.accepts() < 3,
        "10 requests over {} connections",
        backend.accepts()
    );
    for _ in 0..3 {
        assert_eq!(c.get(srv.url("/k0/")).send().unwrap().status(), 200);
    }
    assert_eq!(
        other.accepts(),
        3,
        "keepalive: 0 is a connection per request"
    );
}

#[test]
fn malformed_responses_are_502() {
    let backend = FcgiBackend::start(8);
    let srv = server(&backend, "");
    for path in ["/t/garbage", "/t/wrong-id", "/t/close-early"] {
        let resp = client().get(srv.url(path)).send().unwrap();
        assert_eq!(resp.status(), 502, "{path}");
    }
    // And the pool recovers.
    assert_eq!(client().get(srv.url("/t/")).send().unwrap().status(), 200);
}

#[test]
fn a_close_mid_response_aborts_the_client_connection() {
    let backend = FcgiBackend::start(8);
    let srv = server(&backend, "");
    let reply = raw(
        srv.addr(),
        b"GET /t/close-mid HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status_of(&reply), 200);
    assert!(reply.contains("the first part"));
    assert!(
        !reply.ends_with("0\r\n\r\n"),
        "a truncated response must not end like a complete one: {reply:?}"
    );
}

/// Status, lower-cased head and body of each response in a raw reply whose
/// responses all have a Content-Length.
fn sized_responses(mut reply: &str) -> Vec<(u16, String, String)> {
    let mut out = Vec::new();
    while let Some((head, rest)) = reply.split_once("\r\n\r\n") {
        let head = head.to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap_or_else(|| panic!("no content-length in {head}"))
            .parse()
            .unwrap();
        let body = rest.get(..len).unwrap_or(rest);
        out.push((status_of(&head), head.clone(), body.to_owned()));
        reply = &rest[body.len()..];
    }
    out
}

#[test]
fn responses_carry_the_declared_or_whole_length() {
    let backend = FcgiBackend::start(8);
    let srv = server(&backend, "");
    // A whole answer read with its head is sent with its length; a declared
    // one frames the body, excess dropped; HEAD states it.
    let reply = raw(
        srv.addr(),
        b"GET /t/ HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /t/declared?5 HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /t/declared?3 HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /t/declared-slow HTTP/1.0\r\n\r\n",
    );
    let responses = sized_responses(&reply);
    // The slow one's END_REQUEST comes 100 ms after its response is
    // complete, and only then is its connection free (a loaded machine
    // takes longer).
    std::thread::sleep(Duration::from_millis(1000));
    let bodies: Vec<&str> = responses.iter().map(|(_, _, b)| b.as_str()).collect();
    assert_eq!(bodies, ["hello", "hello", "hel", "helloworld"], "{reply}");
    for (status, head, _) in &responses {
        assert_eq!(*status, 200, "{head}");
        assert!(!head.contains("transfer-encoding"), "{head}");
    }
    let reply = raw(
        srv.addr(),
        b"HEAD /t/declared?5 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status_of(&reply), 200);
    assert!(
        reply.to_ascii_lowercase().contains("content-length: 5\r\n"),
        "{reply}"
    );
    assert!(reply.ends_with("\r\n\r\n"), "{reply}");
    // Every one went back to the pool: one connection served all.
    let count = client().get(srv.url("/t/count")).send().unwrap();
    assert_eq!(count.text().unwrap(), "1");

    // Output that ended short of its declared length (all of it came with
    // the head, so nothing was sent yet) is the backend's fault.
    let resp = client().get(srv.url("/t/declared?10")).send().unwrap();
    assert_eq!(resp.status(), 502);

    // A failure that came with the head: nothing was sent yet, so a 502.
    let resp = client()
        .get(srv.url("/t/garbage-after-head"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 502);

    // A Content-Length that is no number is the backend's fault.
    let resp = client().get(srv.url("/t/declared?ten")).send().unwrap();
    assert_eq!(resp.status(), 502);
}

#[test]
fn a_silent_backend_is_504() {
    let backend = FcgiBackend::start(8);
    let srv = server(&backend, "");
    let started = Instant::now();
    let resp = client().get(srv.url("/t/slow")).send().unwrap();
    assert_eq!(resp.status(), 504);
    // read_timeout is 1s; a far larger bound only shows nothing hung.
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn local_and_client_redirects() {
    let backend = FcgiBackend::start(8);
    let srv = server(&backend, "");
    let resp = client().get(srv.url("/t/local")).send().unwrap();
    assert_eq!(resp.status(), 200);
    let env = env_of(&resp.text().unwrap());
    assert_eq!(
        env["QUERY_STRING"], "from=local",
        "re-dispatched as GET /t/env?from=local"
    );

    let resp = client().get(srv.url("/t/remote")).send().unwrap();
    assert_eq!(
        resp.status(),
        302,
        "Location without Status is a 302, not a blank 200"
    );
    assert_eq!(resp.headers()["location"], "http://example.com/");
}

#[test]
fn php_style_routes_check_the_script_first() {
    let backend = FcgiBackend::start(8);
    let srv = server(&backend, "");
    let root = srv.dir.path().join("php").canonicalize().unwrap();
    let resp = client().get(srv.url("/exists.php/env?q=1")).send().unwrap();
    assert_eq!(resp.status(), 200);
    let env = env_of(&resp.text().unwrap());
    assert_eq!(env["SCRIPT_NAME"], "/exists.php");
    assert_eq!(env["PATH_INFO"], "/env");
    assert_eq!(
        env["SCRIPT_FILENAME"],
        root.join("exists.php").display().to_string()
    );
    let docroot = srv.dir.path().join("htdocs").canonicalize().unwrap();
    assert_eq!(env["DOCUMENT_ROOT"], docroot.display().to_string());
    assert_eq!(
        env["PATH_TRANSLATED"],
        docroot.join("env").display().to_string()
    );

    // `index` for paths ending in / (the split gives no PATH_INFO there).
    let resp = client().get(srv.url("/sub/")).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().unwrap(), "hello");

    let before = backend.requests();
    // CVE-2019-11043 starts with a path whose script does not exist.
    for path in [
        "/missing.php",
        "/missing.php/env",
        "/exists.gif/x.php",
        "/nosub/",
    ] {
        let resp = client().get(srv.url(path)).send().unwrap();
        assert_eq!(resp.status(), 404, "{path}");
    }
    assert_eq!(backend.requests(), before, "the backend never saw them");
}

#[test]
fn cr_lf_and_lookalike_dots() {
    let backend = FcgiBackend::start(8);
    let srv = server(&backend, "");
    let before = backend.requests();
    for path in ["/t/a%0d%0aSet-Cookie:x", "/t/a%0ab", "/exists.php/%0a"] {
        let reply = raw(
            srv.addr(),
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert_eq!(status_of(&reply), 400, "{path}");
    }
    // CVE-2026-24895: U+2024 ONE DOT LEADER is no dot; this is a static 404.
    let resp = client().get(srv.url("/exists%E2%80%A4php")).send().unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(backend.requests(), before);
}

#[test]
fn head_has_no_body() {
    let backend = FcgiBackend::start(8);
    let srv = server(&backend, "");
    let reply = raw(
        srv.addr(),
        b"HEAD /t/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status_of(&reply), 200);
    assert!(!reply.contains("hello"), "{reply:?}");
}

#[test]
fn stderr_goes_to_the_error_log_with_the_request_id() {
    let backend = FcgiBackend::start(8);
    let srv = server(&backend, "");
    assert_eq!(
        client()
            .get(srv.url("/t/stderr"))
            .send()
            .unwrap()
            .text()
            .unwrap(),
        "with stderr"
    );
    let log = srv.wait_for_stderr("a warning from the backend");
    let line = log
        .lines()
        .find(|l| l.contains("a warning from the backend"))
        .unwrap_or_else(|| panic!("no stderr line in {log}"));
    assert!(line.contains("request"), "{line}");
}

#[test]
fn failover_all_down_and_static_still_served() {
    let backend = FcgiBackend::start(8);
    let dead = refused_port();
    let extra = format!(
        r#"  - prefix: /two/
    backends: ["127.0.0.1:{dead}", "{}"]
  - prefix: /down/
    backends: ["127.0.0.1:{dead}", "unix:/nonexistent/php.sock"]
"#,
        backend.addr
    );
    let srv = server(&backend, &extra);
    for _ in 0..5 {
        assert_eq!(client().get(srv.url("/two/")).send().unwrap().status(), 200);
    }
    for _ in 0..2 {
        assert_eq!(
            client().get(srv.url("/down/")).send().unwrap().status(),
            502
        );
    }
    let resp = client().get(srv.url("/index.html")).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().unwrap(), "static ok");
}

#[test]
fn a_full_backend_queues_then_503() {
    let backend = FcgiBackend::start(1);
    let extra = format!(
        r#"  - prefix: /one/
    backends: ["{}"]
    connect_timeout: 300ms
    read_timeout: 5s
"#,
        backend.addr
    );
    let srv = server(&backend, &extra);
    let url = srv.url("/one/slow");
    let slow = std::thread::spawn(move || client().get(url).send().unwrap().status());
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let resp = client().get(srv.url("/one/")).send().unwrap();
    assert_eq!(resp.status(), 503, "FCGI_MAX_CONNS=1 and that one is busy");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "it waited first"
    );
    assert_eq!(slow.join().unwrap(), 200);
    assert_eq!(client().get(srv.url("/one/")).send().unwrap().status(), 200);
}

#[test]
fn client_disconnects_leak_nothing() {
    let backend = FcgiBackend::start(8);
    let srv = server(&backend, "");
    assert_eq!(client().get(srv.url("/t/")).send().unwrap().status(), 200);
    std::thread::sleep(Duration::from_millis(100));
    let baseline = support::open_fds(srv.pid());
    for _ in 0..5 {
        let mut s = std::net::TcpStream::connect(srv.addr()).unwrap();
        std::io::Write::write_all(&mut s, b"GET /t/slow HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        std::thread::sleep(Duration::from_millis(100));
        drop(s);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while support::open_fds(srv.pid()) > baseline + 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        support::open_fds(srv.pid()) <= baseline + 1,
        "descriptors released"
    );
    assert_eq!(client().get(srv.url("/t/")).send().unwrap().status(), 200);
}

#[test]
fn keep_alive_requests_do_not_stall_on_nagle() {
    // Eight small unbuffered writes per request once cost 44 ms each over TCP
    // keep-alive (Nagle against delayed ACK); one buffer and TCP_NODELAY do not.
    let backend = FcgiBackend::start(8);
    let srv = server(&backend, "");
    let c = client();
    assert_eq!(
        c.post(srv.url("/t/stdin"))
            .body("warm")
            .send()
            .unwrap()
            .status(),
        200
    );
    for i in 0..30 {
        let resp = c
            .post(srv.url("/t/stdin"))
            .body(format!("n={i}"))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.bytes().unwrap();
    }
    // Speed itself is the benchmark's to measure (bench/); here: one
    // connection carried all of them.
    assert!(backend.accepts() <= 2);
}
