//! gatehouse in front of a real php-fpm (started by each test, see
//! tests/support/fcgi_backend_fpm.rs), over its Unix socket and its TCP port.

#[path = "support/fcgi_backend_fpm.rs"]
mod fpm;
mod support;

use std::collections::HashMap;
use std::io::Read;
use std::time::{Duration, Instant};

use fpm::PhpFpm;
use support::{client, sha256_hex, TestServer};

const SCRIPTS: &[(&str, &str)] = &[
    (
        "hello.php",
        r#"<?php echo "Hello from PHP ", PHP_VERSION, "\n";"#,
    ),
    (
        "server.php",
        r#"<?php foreach (['SCRIPT_NAME','SCRIPT_FILENAME','PATH_INFO','PATH_TRANSLATED','QUERY_STRING','REQUEST_METHOD','DOCUMENT_ROOT','REQUEST_URI','CONTENT_LENGTH','HTTP_HOST','APP_ENV','REDIRECT_STATUS'] as $k) { echo $k, '=', $_SERVER[$k] ?? '(unset)', "\n"; }"#,
    ),
    (
        "post.php",
        r#"<?php foreach ($_POST as $k => $v) { echo "$k=$v\n"; }"#,
    ),
    (
        "upload.php",
        r#"<?php $f = $_FILES['file']; echo "name=", $f['name'], "\nsize=", $f['size'], "\nerror=", $f['error'], "\nsha256=", hash_file('sha256', $f['tmp_name']), "\nnote=", $_POST['note'] ?? '', "\n";"#,
    ),
    (
        "headers.php",
        r#"<?php http_response_code(201); header('X-Php: yes'); header('Content-Type: text/plain'); setcookie('a', '1'); setcookie('b', '2'); setcookie('c', '3'); echo "created";"#,
    ),
    (
        "big.php",
        r#"<?php for ($i = 0; $i < 81920; $i++) { printf("%063d\n", $i); }"#,
    ),
    (
        "flush.php",
        // Waits (up to 20 s) for the test to create `seen` beside it, which the
        // test does only after the first line reached it: without streaming
        // the two would wait for each other and the second line says so.
        r#"<?php echo "first\n"; flush(); $f = __DIR__ . "/seen"; for ($i = 0; $i < 200 && !file_exists($f); $i++) usleep(100000); echo file_exists($f) ? "second\n" : "second (too late)\n";"#,
    ),
    ("slow.php", r#"<?php sleep(4); echo "late";"#),
    (
        "nap.php",
        r#"<?php usleep(300000); echo "rested ", getmypid();"#,
    ),
    ("redirect.php", r#"<?php header('Location: /hello.php');"#),
    (
        "headers_in.php",
        r#"<?php $n = 0; $len = 0; foreach ($_SERVER as $k => $v) { if (strncmp($k, 'HTTP_X_BIG_', 11) === 0) { $n++; $len += strlen($v); } } echo "count=$n\nbytes=$len\n";"#,
    ),
];

/// php-fpm plus gatehouse with `\.php` routed to `backend` (a YAML address).
struct Site {
    srv: TestServer,
    fpm: PhpFpm,
}

fn site_with(workers: usize, route_extra: &str, use_tcp: bool) -> Option<Site> {
    let fpm = fpm::start(workers)?;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("htdocs")).unwrap();
    std::fs::write(dir.path().join("htdocs/index.html"), "static ok").unwrap();
    std::fs::create_dir_all(dir.path().join("php")).unwrap();
    for (name, code) in SCRIPTS {
        std::fs::write(dir.path().join("php").join(name), code).unwrap();
    }
    let backend = if use_tcp {
        fpm.tcp.to_string()
    } else {
        format!("unix:{}", fpm.socket.display())
    };
    let yaml = format!(
        r#"document_root: htdocs
access_log: "off"
limits:
  max_header_bytes: 256KiB
fastcgi:
  - match: '\.php(/|$)'
    backends: ["{backend}"]
    root: php
    split_path_info: '^(.+?\.php)(/.*)?$'
    params: {{ APP_ENV: demo }}
    read_timeout: 2s
{route_extra}"#
    );
    let srv = TestServer::start_in(dir, &yaml);
    Some(Site { srv, fpm })
}

fn site() -> Option<Site> {
    site_with(3, "    max_conns: 3\n", false)
}

fn lines(body: &str) -> HashMap<String, String> {
    body.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn hello_php() {
    let Some(s) = site() else { return };
    let resp = client().get(s.srv.url("/hello.php")).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let body = resp.text().unwrap();
    assert!(
        body.starts_with("Hello from PHP 8") || body.starts_with("Hello from PHP "),
        "{body}"
    );
}

#[test]
fn hello_php_over_tcp() {
    let Some(s) = site_with(2, "", true) else {
        return;
    };
    for _ in 0..3 {
        let resp = client()
            .get(s.srv.url("/hello.php"))
            .send()
            .unwrap_or_else(|e| panic!("{e}: {}", s.srv.stderr_log()));
        assert_eq!(resp.status(), 200);
        assert!(resp.text().unwrap().starts_with("Hello from PHP"));
    }
}

#[test]
fn server_variables() {
    let Some(s) = site() else { return };
    let resp = client()
        .get(s.srv.url("/server.php/extra/path?x=1&y=two"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v = lines(&resp.text().unwrap());
    let root = s.srv.dir.path().join("php").canonicalize().unwrap();
    let docroot = s.srv.dir.path().join("htdocs").canonicalize().unwrap();
    assert_eq!(v["SCRIPT_NAME"], "/server.php");
    assert_eq!(
        v["SCRIPT_FILENAME"],
        root.join("server.php").display().to_string()
    );
    assert_eq!(v["PATH_INFO"], "/extra/path");
    assert_eq!(
        v["PATH_TRANSLATED"],
        docroot.join("extra/path").display().to_string()
    );
    assert_eq!(v["QUERY_STRING"], "x=1&y=two");
    assert_eq!(v["REQUEST_METHOD"], "GET");
    assert_eq!(v["DOCUMENT_ROOT"], docroot.display().to_string());
    assert_eq!(v["REQUEST_URI"], "/server.php/extra/path?x=1&y=two");
    assert_eq!(v["CONTENT_LENGTH"], "(unset)");
    assert_eq!(v["APP_ENV"], "demo");
    assert_eq!(v["REDIRECT_STATUS"], "200");
    assert_eq!(v["HTTP_HOST"], s.srv.addr().to_string());

    let resp = client().delete(s.srv.url("/server.php")).send().unwrap();
    let v = lines(&resp.text().unwrap());
    assert_eq!(v["REQUEST_METHOD"], "DELETE");
    assert_eq!(v["PATH_INFO"], "(unset)");
}

#[test]
fn post_form_fields() {
    let Some(s) = site() else { return };
    let resp = client()
        .post(s.srv.url("/post.php"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("a=1&b=hello+world&c=%C3%A9t%C3%A9")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().unwrap(), "a=1\nb=hello world\nc=été\n");

    // Chunked: without spooling php-fpm would wait for a CONTENT_LENGTH.
    let body = "x=".to_string() + &"y".repeat(100_000);
    let resp = client()
        .post(s.srv.url("/post.php"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(reqwest::blocking::Body::new(std::io::Cursor::new(
            body.clone(),
        )))
        .send()
        .unwrap();
    assert_eq!(resp.text().unwrap(), format!("x={}\n", "y".repeat(100_000)));
}

#[test]
fn multipart_upload() {
    let Some(s) = site() else { return };
    let file: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let boundary = "gatehouse-boundary-1234";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi there\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"data.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(&file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let resp = client()
        .post(s.srv.url("/upload.php"))
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v = lines(&resp.text().unwrap());
    assert_eq!(v["name"], "data.bin");
    assert_eq!(v["size"], "300000");
    assert_eq!(v["error"], "0");
    assert_eq!(v["sha256"], sha256_hex(&file));
    assert_eq!(v["note"], "hi there");
}

#[test]
fn status_headers_and_cookies() {
    let Some(s) = site() else { return };
    let resp = client().get(s.srv.url("/headers.php")).send().unwrap();
    assert_eq!(resp.status(), 201, "http_response_code()");
    assert_eq!(resp.headers()["x-php"], "yes", "header()");
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let cookies: Vec<_> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(
        cookies,
        vec!["a=1", "b=2", "c=3"],
        "every Set-Cookie kept, in order"
    );
    assert_eq!(resp.text().unwrap(), "created");

    let resp = client().get(s.srv.url("/redirect.php")).send().unwrap();
    assert_eq!(resp.status(), 302);
    assert_eq!(resp.headers()["location"], "/hello.php");
}

#[test]
fn five_megabytes_intact() {
    let Some(s) = site() else { return };
    let resp = client().get(s.srv.url("/big.php")).send().unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.bytes().unwrap();
    let mut expected = Vec::with_capacity(5 << 20);
    for i in 0..81920 {
        expected.extend_from_slice(format!("{i:063}\n").as_bytes());
    }
    assert_eq!(body.len(), 5 << 20);
    assert_eq!(sha256_hex(&body), sha256_hex(&expected));
}

#[test]
fn flush_reaches_the_client_at_once() {
    let Some(s) = site() else { return };
    let mut resp = client().get(s.srv.url("/flush.php")).send().unwrap();
    assert_eq!(resp.status(), 200);
    let mut buf = [0u8; 64];
    let n = resp.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"first\n");
    std::fs::write(s.srv.dir.path().join("php/seen"), "").unwrap();
    let mut rest = String::new();
    resp.read_to_string(&mut rest).unwrap();
    assert_eq!(
        rest, "second\n",
        "the first line arrived while the script still ran"
    );
}

#[test]
fn slow_script_is_504() {
    let Some(s) = site() else { return };
    let started = Instant::now();
    let resp = client().get(s.srv.url("/slow.php")).send().unwrap();
    assert_eq!(resp.status(), 504);
    // read_timeout is 2s and the script sleeps 4s: a bound far above both
    // only shows that the request did not hang until the client gave up.
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn stopped_php_fpm_is_502_and_static_files_still_work() {
    let Some(mut s) = site() else { return };
    assert_eq!(
        client()
            .get(s.srv.url("/hello.php"))
            .send()
            .unwrap()
            .status(),
        200
    );
    s.fpm.stop();
    for _ in 0..3 {
        let resp = client()
            .get(s.srv.url("/hello.php"))
            .send()
            .unwrap_or_else(|e| panic!("{e}: {}", s.srv.stderr_log()));
        assert_eq!(resp.status(), 502, "php-fpm is down: bad gateway, not 503");
    }
    let resp = client().get(s.srv.url("/index.html")).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().unwrap(), "static ok");
}

#[test]
fn params_over_64k_reach_php() {
    let Some(s) = site() else { return };
    let value = "v".repeat(2000);
    let mut req = client().get(s.srv.url("/headers_in.php"));
    for i in 0..40 {
        req = req.header(format!("X-Big-{i:02}"), value.as_str());
    }
    let resp = req.send().unwrap();
    assert_eq!(resp.status(), 200);
    let v = lines(&resp.text().unwrap());
    assert_eq!(v["count"], "40");
    assert_eq!(v["bytes"], "80000");
}

#[test]
fn requests_beyond_the_workers_queue_and_all_succeed() {
    // 3 workers and no max_conns: php-fpm does not report FCGI_MAX_CONNS, so
    // the pool must not let its idle connections starve new ones.
    let Some(s) = site_with(3, "    keepalive: 16\n", false) else {
        return;
    };
    let run = |n: usize| {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let url = s.srv.url("/nap.php");
                std::thread::spawn(move || {
                    let resp = client().get(url).send().unwrap();
                    (resp.status().as_u16(), resp.text().unwrap())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    };
    // Leaves three kept-alive connections, one per worker.
    for (status, _) in run(3) {
        assert_eq!(status, 200);
    }
    let started = Instant::now();
    for (status, body) in run(7) {
        assert_eq!(status, 200, "{body}");
        assert!(body.starts_with("rested"));
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "no request hung"
    );
}
