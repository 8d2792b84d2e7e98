//! CGI (RFC 3875) against the real binary: what the program sees, what the
//! client gets. Process life (timeouts, kills, limits, zombies) is in
//! `cgi_processes.rs`.

mod cgi_site;
mod support;

use std::collections::BTreeMap;

use cgi_site::{env_map, noise, raw_exchange, Options, Site};
use support::{client, sha256_hex};

/// The environment env.py saw for a raw request.
fn raw_env(site: &Site, request: &str) -> BTreeMap<String, String> {
    let (status, _, body) = raw_exchange(site.addr(), request.as_bytes());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    env_map(&String::from_utf8_lossy(&body))
}

#[test]
fn every_meta_variable() {
    let site = Site::new(&["env.py"]);
    let port = site.addr().port();
    let env = raw_env(
        &site,
        "GET /cgi-bin/env.py/a%20b/c%C3%A9?format=text&x=%41+1&y=%2F HTTP/1.1\r\n\
         Host: example.test:1234\r\nAuthorization: Basic YWxpY2U6c2VjcmV0\r\n\
         Connection: close\r\n\r\n",
    );
    let root = site.root().canonicalize().unwrap();
    let htdocs = root.join("htdocs");
    let expect = [
        ("AUTH_TYPE", "Basic".to_owned()),
        ("REMOTE_USER", "alice".to_owned()),
        ("GATEWAY_INTERFACE", "CGI/1.1".to_owned()),
        ("PATH_INFO", "/a b/cé".to_owned()),
        ("PATH_TRANSLATED", format!("{}/a b/cé", htdocs.display())),
        ("QUERY_STRING", "format=text&x=%41+1&y=%2F".to_owned()),
        ("REMOTE_ADDR", "127.0.0.1".to_owned()),
        ("REMOTE_HOST", "127.0.0.1".to_owned()),
        ("REQUEST_METHOD", "GET".to_owned()),
        ("SCRIPT_NAME", "/cgi-bin/env.py".to_owned()),
        ("SERVER_NAME", "example.test".to_owned()),
        ("SERVER_PORT", port.to_string()),
        ("SERVER_PROTOCOL", "HTTP/1.1".to_owned()),
        (
            "SERVER_SOFTWARE",
            format!("gatehouse/{}", env!("CARGO_PKG_VERSION")),
        ),
        (
            "REQUEST_URI",
            "/cgi-bin/env.py/a%20b/c%C3%A9?format=text&x=%41+1&y=%2F".to_owned(),
        ),
        ("SCRIPT_FILENAME", format!("{}/cgi/env.py", root.display())),
        ("DOCUMENT_ROOT", htdocs.display().to_string()),
        ("SERVER_ADDR", "127.0.0.1".to_owned()),
        ("REQUEST_SCHEME", "http".to_owned()),
        ("HTTP_HOST", "example.test:1234".to_owned()),
        ("HTTP_CONNECTION", "close".to_owned()),
    ];
    for (name, value) in expect {
        assert_eq!(env.get(name), Some(&value), "{name} in {env:#?}");
    }
    let remote_port: u16 = env["REMOTE_PORT"].parse().unwrap();
    assert_ne!(remote_port, 0);
    for absent in [
        "CONTENT_LENGTH",
        "CONTENT_TYPE",
        "HTTPS",
        "HTTP_AUTHORIZATION",
    ] {
        assert!(!env.contains_key(absent), "{absent} in {env:#?}");
    }
}

#[test]
fn no_path_info_means_no_path_translated_and_empty_query() {
    let site = Site::new(&[]);
    site.add(
        "env.sh",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nenv\n",
        0o755,
    );
    let env = raw_env(&site, "GET /cgi-bin/env.sh HTTP/1.0\r\n\r\n");
    assert_eq!(env.get("QUERY_STRING").map(String::as_str), Some(""));
    assert!(!env.contains_key("PATH_INFO"));
    assert!(!env.contains_key("PATH_TRANSLATED"));
    assert_eq!(env["SERVER_PROTOCOL"], "HTTP/1.0");
    // No Host: the configured server name.
    assert_eq!(env["SERVER_NAME"], "localhost");
    assert!(!env.contains_key("AUTH_TYPE"));
    assert!(!env.contains_key("REMOTE_USER"));
}

#[test]
fn ipv6_host_keeps_its_brackets() {
    let site = Site::new(&["env.py"]);
    let env = raw_env(
        &site,
        "GET /cgi-bin/env.py?format=text HTTP/1.1\r\nHost: [::1]:8080\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(env["SERVER_NAME"], "[::1]");
}

#[test]
fn content_variables_only_with_a_body() {
    let site = Site::new(&["env.py"]);
    let text = client()
        .post(site.url("/cgi-bin/env.py?format=text"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("a=1&b=2")
        .send()
        .unwrap()
        .text()
        .unwrap();
    let env = env_map(&text);
    assert_eq!(env["CONTENT_LENGTH"], "7");
    assert_eq!(env["CONTENT_TYPE"], "application/x-www-form-urlencoded");
    assert_eq!(env["REQUEST_METHOD"], "POST");
    assert!(!env.contains_key("HTTP_CONTENT_TYPE"), "{text}");
    assert!(!env.contains_key("HTTP_CONTENT_LENGTH"), "{text}");
}

#[test]
fn headers_become_http_variables() {
    let site = Site::new(&["env.py"]);
    let env = raw_env(
        &site,
        "GET /cgi-bin/env.py?format=text HTTP/1.1\r\nHost: h\r\nX-Custom-Thing: v\r\n\
         Accept: text/html\r\nAccept: text/plain\r\nCookie: a=1\r\nCookie: b=2\r\n\
         X-Forwarded-For: 10.0.0.1\r\nX-Forwarded_For: 6.6.6.6\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(env["HTTP_X_CUSTOM_THING"], "v");
    assert_eq!(env["HTTP_ACCEPT"], "text/html, text/plain");
    assert_eq!(env["HTTP_COOKIE"], "a=1; b=2");
    // Apache's rule: a name with `_` cannot pose as its dashed twin.
    assert_eq!(env["HTTP_X_FORWARDED_FOR"], "10.0.0.1");
}

/// httpoxy (CVE-2016-5385): `Proxy: ...` must never become HTTP_PROXY, which
/// HTTP libraries inside the program would take as their outgoing proxy.
#[test]
fn httpoxy_proxy_header_never_reaches_the_program() {
    let site = Site::new(&["env.py"]);
    let text = client()
        .get(site.url("/cgi-bin/env.py?format=text"))
        .header("proxy", "http://evil.example:3128")
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(!env_map(&text).contains_key("HTTP_PROXY"), "{text}");
    assert!(!text.contains("evil.example"), "{text}");
}

#[test]
fn authorization_withheld_unless_the_route_passes_it() {
    let site = Site::new(&["env.py"]);
    let text = client()
        .get(site.url("/cgi-bin/env.py?format=text"))
        .basic_auth("bob", Some("hunter2"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let env = env_map(&text);
    assert!(!env.contains_key("HTTP_AUTHORIZATION"), "{text}");
    assert!(
        !text.contains("aHVudGVyMg") && !text.contains("hunter2"),
        "{text}"
    );
    assert_eq!(env["AUTH_TYPE"], "Basic");
    assert_eq!(env["REMOTE_USER"], "bob");

    let opts = Options {
        pass_authorization: true,
        ..Options::default()
    };
    let site = Site::with(&["env.py"], opts);
    let text = client()
        .get(site.url("/cgi-bin/env.py?format=text"))
        .basic_auth("bob", Some("hunter2"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(
        env_map(&text)["HTTP_AUTHORIZATION"],
        "Basic Ym9iOmh1bnRlcjI="
    );
}

#[test]
fn nothing_from_the_server_environment_but_pass_env() {
    let site = Site::new(&["env.py"]);
    let text = client()
        .get(site.url("/cgi-bin/env.py?format=text"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let env = env_map(&text);
    assert!(env.contains_key("PATH"), "{text}");
    assert_eq!(
        env["CGI_SCRATCH_DIR"],
        site.scratch().canonicalize().unwrap().display().to_string()
    );
    // cargo runs tests with CARGO_* and HOME set; none of it may leak.
    assert!(!env.keys().any(|k| k.starts_with("CARGO")), "{text}");
    assert!(!env.contains_key("HOME"), "{text}");
}

#[test]
fn http2_request() {
    let site = Site::new(&["env.py"]);
    let h2 = reqwest::blocking::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = h2
        .get(site.url("/cgi-bin/env.py?format=text"))
        .send()
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    let env = env_map(&response.text().unwrap());
    assert_eq!(env["SERVER_PROTOCOL"], "HTTP/2.0");
    assert_eq!(env["SERVER_NAME"], "127.0.0.1");
    assert_eq!(
        env["HTTP_HOST"],
        format!("127.0.0.1:{}", site.addr().port())
    );
}

#[test]
fn ten_megabyte_post_is_echoed_intact() {
    let site = Site::new(&["echo.py"]);
    let data = noise(10 * 1024 * 1024);
    let response = client()
        .post(site.url("/cgi-bin/echo.py"))
        .body(data.clone())
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-content-length"], "10485760");
    let echoed = response.bytes().unwrap();
    assert_eq!(echoed.len(), data.len());
    assert_eq!(sha256_hex(&echoed), sha256_hex(&data));
}

#[test]
fn chunked_post_gets_an_exact_content_length() {
    let site = Site::new(&["echo.py"]);
    // 3 MiB: past the in-memory spool, so it goes through a temp file.
    let data = noise(3 * 1024 * 1024 + 17);
    let body = reqwest::blocking::Body::new(std::io::Cursor::new(data.clone()));
    let response = client()
        .post(site.url("/cgi-bin/echo.py"))
        .body(body)
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-content-length"],
        data.len().to_string()
    );
    assert_eq!(sha256_hex(&response.bytes().unwrap()), sha256_hex(&data));

    // A small chunked body, framed by hand.
    let (status, headers, body) = raw_exchange(
        site.addr(),
        b"POST /cgi-bin/echo.py HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\
          Connection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    );
    assert_eq!(status, 200);
    assert!(headers.contains(&("x-content-length".into(), "11".into())));
    assert_eq!(body, b"hello world");
}

#[test]
fn form_get_and_post_are_escaped() {
    let site = Site::new(&["form.py"]);
    let page = client()
        .get(site.url("/cgi-bin/form.py?name=%3Cb%3Eann%3C%2Fb%3E"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(page.contains("&lt;b&gt;ann&lt;/b&gt;"), "{page}");
    assert!(!page.contains("<b>ann"), "{page}");
    let page = client()
        .post(site.url("/cgi-bin/form.py"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("name=Zo%C3%AB&message=%3Cscript%3Ex%3C%2Fscript%3E")
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(page.contains("Form (POST)"), "{page}");
    assert!(page.contains("Zoë"), "{page}");
    assert!(page.contains("&lt;script&gt;x&lt;/script&gt;"), "{page}");
}

#[test]
fn multipart_upload_reports_size_and_sha256() {
    let site = Site::new(&["upload.py"]);
    let file = noise(200_000);
    let boundary = "----gatehouse-test-boundary";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi there\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"n.bin\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(&file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let report = client()
        .post(site.url("/cgi-bin/upload.py?format=text"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .unwrap()
        .text()
        .unwrap();
    let expected_file = format!(
        "name=file filename=n.bin size=200000 sha256={}",
        sha256_hex(&file)
    );
    let expected_note = format!(
        "name=note filename= size=8 sha256={}",
        sha256_hex(b"hi there")
    );
    assert!(report.lines().any(|l| l == expected_file), "{report}");
    assert!(report.lines().any(|l| l == expected_note), "{report}");
}

#[test]
fn client_and_local_redirects() {
    let site = Site::new(&["redirect.py", "hello.py"]);
    let response = client()
        .get(site.url("/cgi-bin/redirect.py"))
        .send()
        .unwrap();
    assert_eq!(response.status(), 302);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.ends_with("/index.html"), "{location}");
    assert!(location.starts_with("http://"), "{location}");

    let response = client()
        .get(site.url("/cgi-bin/redirect.py?status=301"))
        .send()
        .unwrap();
    assert_eq!(response.status(), 301);

    // Local: the server answers as if /index.html had been asked for.
    let response = client()
        .get(site.url("/cgi-bin/redirect.py?local=1"))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("location").is_none());
    assert_eq!(response.text().unwrap(), "<h1>home</h1>\n");

    // Local to another CGI program, through the router again.
    let response = client()
        .get(site.url("/cgi-bin/redirect.py?local=hello"))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response
        .text()
        .unwrap()
        .contains("Hello from a Python CGI script"));
}

#[test]
fn local_redirect_loops_stop() {
    let site = Site::new(&[]);
    site.add(
        "loop.sh",
        "#!/bin/sh\nprintf 'Location: /cgi-bin/loop.sh\\r\\n\\r\\n'\n",
        0o755,
    );
    let response = client().get(site.url("/cgi-bin/loop.sh")).send().unwrap();
    assert_eq!(response.status(), 500);
}

#[test]
fn nph_output_passes_through() {
    let site = Site::new(&["nph-hello.py"]);
    let (status, headers, body) = raw_exchange(
        site.addr(),
        b"GET /cgi-bin/nph-hello.py HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200);
    assert!(
        headers.contains(&("x-nph".into(), "yes".into())),
        "{headers:?}"
    );
    assert_eq!(body, b"Hello from an NPH script\n");
}

#[test]
fn shell_script_and_head() {
    let site = Site::new(&["hello.sh"]);
    let response = client().get(site.url("/cgi-bin/hello.sh")).send().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().unwrap(),
        "Hello from sh: GET /cgi-bin/hello.sh\n"
    );
    let (status, headers, body) = raw_exchange(
        site.addr(),
        b"HEAD /cgi-bin/hello.sh HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200);
    assert!(headers.contains(&("content-type".into(), "text/plain".into())));
    assert!(body.is_empty(), "{:?}", String::from_utf8_lossy(&body));
}

#[test]
fn compiled_program() {
    if std::process::Command::new("cc")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: no C compiler (cc)");
        return;
    }
    let site = Site::new(&[]);
    let source = support::repo_dir().join("cgi-bin/src/hello.c");
    let status = std::process::Command::new("cc")
        .arg("-O2")
        .arg("-o")
        .arg(site.cgi_dir().join("hello"))
        .arg(&source)
        .status()
        .unwrap();
    assert!(status.success());
    let text = client()
        .get(site.url("/cgi-bin/hello?q=1"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(text, "Hello from C: GET ?q=1\n");
}

#[test]
fn what_cannot_run_is_refused_and_never_sent() {
    let site = Site::new(&["hello.py", "src/hello.c"]);
    site.add("notes.cgi", "#!/bin/sh\necho SECRET-SOURCE\n", 0o644);
    for (path, status) in [
        ("/cgi-bin/notes.cgi", 403),
        ("/cgi-bin/src/hello.c", 403),
        ("/cgi-bin/src/", 403),
        ("/cgi-bin/src", 403),
        ("/cgi-bin/", 403),
        ("/cgi-bin/missing.py", 404),
        ("/cgi-bin/missing.py/x", 404),
    ] {
        let response = client().get(site.url(path)).send().unwrap();
        assert_eq!(response.status(), status, "{path}");
        let body = response.text().unwrap();
        assert!(
            !body.contains("SECRET-SOURCE") && !body.contains("#include"),
            "{path}: {body}"
        );
    }
    // A script's output, never its source.
    let body = client()
        .get(site.url("/cgi-bin/hello.py"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(!body.contains("import sys"), "{body}");
}

#[test]
fn broken_programs_get_500_or_502_and_a_log_line() {
    let site = Site::new(&[]);
    let cases = [
        ("noblank.sh", "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n'\n", 500, "no blank line"),
        ("plain.sh", "#!/bin/sh\necho hello\n", 500, "no blank line"),
        ("exit3.sh", "#!/bin/sh\necho boom >&2\nexit 3\n", 500, "exited with status 3"),
        ("noct.sh", "#!/bin/sh\nprintf 'X-A: 1\\r\\n\\r\\nbody'\n", 500, "without Content-Type"),
        ("te.sh", "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n'\n", 502, "Transfer-Encoding"),
        ("cr.sh", "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\nX-A: a\\rSet-Cookie: x=1\\r\\n\\r\\n'\n", 502, "CR inside"),
        ("fold.sh", "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\nX-A: a\\r\\n b\\r\\n\\r\\n'\n", 502, "obs-fold"),
        ("status.sh", "#!/bin/sh\nprintf 'Status: 2000\\r\\nContent-Type: text/plain\\r\\n\\r\\n'\n", 502, "bad Status"),
    ];
    for (name, text, _, _) in &cases {
        site.add(name, text, 0o755);
    }
    for (name, _, status, words) in cases {
        let response = client()
            .get(site.url(&format!("/cgi-bin/{name}")))
            .send()
            .unwrap();
        assert_eq!(response.status(), status, "{name}");
        let body = response.text().unwrap();
        assert!(
            !body.contains("Set-Cookie") && !body.contains("x=1"),
            "{name}: {body}"
        );
        let log = site.srv.wait_for_stderr(words);
        assert!(log.contains(words), "{name}: no {words:?} in\n{log}");
    }
    let log = site.srv.stderr_log();
    // The program's stderr names the request it came from.
    assert!(
        log.lines()
            .any(|l| l.contains("CGI stderr: boom") && l.contains(" id=")),
        "{log}"
    );
}

#[test]
fn failures_are_explained() {
    let opts = Options {
        interpreters: "{ .py: python3, .pl: no-such-perl-interpreter }",
        ..Options::default()
    };
    let site = Site::with(&[], opts);
    site.add("x.pl", "print 1;\n", 0o644);
    let response = client().get(site.url("/cgi-bin/x.pl")).send().unwrap();
    assert_eq!(response.status(), 500);
    let log = site.srv.wait_for_stderr("No such file");
    assert!(
        log.contains("no-such-perl-interpreter") && log.contains("No such file"),
        "{log}"
    );

    // What Python 3.13 prints for `import cgi`, whatever python3 is here.
    site.add(
        "old.py",
        "import sys\nsys.stderr.write(\"ModuleNotFoundError: No module named 'cgi'\\n\")\nsys.exit(1)\n",
        0o644,
    );
    let response = client().get(site.url("/cgi-bin/old.py")).send().unwrap();
    assert_eq!(response.status(), 500);
    let log = site.srv.wait_for_stderr("3.13");
    assert!(log.contains("Python 3.13"), "{log}");
}

/// Only stdin, stdout and stderr reach the child: no listening socket,
/// client connection, spool file or log file of the server.
#[test]
fn no_descriptor_leaks_into_the_child() {
    let site = Site::new(&[]);
    // fstat opens nothing itself, unlike listing /proc/self/fd.
    site.add(
        "fds.py",
        "import os, sys\n\
         open_fds = []\n\
         for fd in range(3, 1024):\n    \
             try:\n        os.fstat(fd)\n        open_fds.append(fd)\n    \
             except OSError:\n        pass\n\
         sys.stdin.buffer.read()\n\
         sys.stdout.write('Content-Type: text/plain\\r\\n\\r\\n' + repr(open_fds))\n",
        0o644,
    );
    // An idle keep-alive connection is open on the side while it runs.
    let idle = std::net::TcpStream::connect(site.addr()).unwrap();
    let body = reqwest::blocking::Body::new(std::io::Cursor::new(noise(2 << 20)));
    let text = client()
        .post(site.url("/cgi-bin/fds.py"))
        .body(body)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(text, "[]");
    drop(idle);
}

/// Without a request body the program's stdin is /dev/null, as lighttpd
/// gives it: an immediate end of file, no pipe for the server to close.
/// With one it is a pipe carrying the body.
#[test]
fn stdin_is_dev_null_without_a_body_and_a_pipe_with_one() {
    let site = Site::new(&[]);
    site.add(
        "stdin.py",
        "import os, stat, sys\n\
         mode = os.fstat(0).st_mode\n\
         kind = 'char' if stat.S_ISCHR(mode) else 'fifo' if stat.S_ISFIFO(mode) else 'other'\n\
         data = sys.stdin.buffer.read()\n\
         sys.stdout.write('Content-Type: text/plain\\r\\n\\r\\n%s %d' % (kind, len(data)))\n",
        0o644,
    );
    let get = client().get(site.url("/cgi-bin/stdin.py")).send().unwrap();
    assert_eq!(get.text().unwrap(), "char 0");
    let post = client()
        .post(site.url("/cgi-bin/stdin.py"))
        .body("hello")
        .send()
        .unwrap();
    assert_eq!(post.text().unwrap(), "fifo 5");
}

/// One response read off a kept-alive connection: its head (lower-cased)
/// and exactly the body its Content-Length announces.
fn read_sized_response(stream: &mut std::net::TcpStream) -> (String, Vec<u8>) {
    use std::io::Read;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            stream.read(&mut byte).unwrap(),
            1,
            "closed in a head: {head:?}"
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .unwrap_or_else(|| panic!("no content-length in {head}"))
        .trim()
        .parse()
        .unwrap();
    let mut body = vec![0; len];
    stream.read_exact(&mut body).unwrap();
    (head, body)
}

#[test]
fn a_declared_content_length_frames_the_response_and_binds_the_program() {
    use std::io::{Read, Write};
    let site = Site::new(&[]);
    let say = |name: &str, length: usize, body: &str| {
        let text = format!(
            "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\nContent-Length: {length}\\r\\n\\r\\n{body}'\n"
        );
        site.add(name, &text, 0o755);
    };
    say("exact.sh", 5, "hello");
    say("over.sh", 3, "hello");
    say("short.sh", 10, "hello");

    // Sent with its length, not chunked; HEAD states it too.
    let (status, headers, body) = raw_exchange(
        site.addr(),
        b"GET /cgi-bin/exact.sh HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    );
    assert_eq!((status, body.as_slice()), (200, &b"hello"[..]));
    assert!(
        headers.contains(&("content-length".into(), "5".into())),
        "{headers:?}"
    );
    assert!(
        !headers.iter().any(|(k, _)| k == "transfer-encoding"),
        "{headers:?}"
    );
    let (status, headers, body) = raw_exchange(
        site.addr(),
        b"HEAD /cgi-bin/exact.sh HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200);
    assert!(
        headers.contains(&("content-length".into(), "5".into())),
        "{headers:?}"
    );
    assert!(body.is_empty());

    // Bytes past the length are dropped: the next response on the same
    // connection is intact. HTTP/1.0 keep-alive works, having a length.
    let mut stream = std::net::TcpStream::connect(site.addr()).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    stream
        .write_all(
            b"GET /cgi-bin/over.sh HTTP/1.0\r\nConnection: keep-alive\r\n\r\n\
              GET /cgi-bin/exact.sh HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        )
        .unwrap();
    let (head, body) = read_sized_response(&mut stream);
    assert!(head.starts_with("http/1.0 200"), "{head}");
    assert_eq!(body, b"hel");
    let (head, body) = read_sized_response(&mut stream);
    assert!(head.starts_with("http/1.0 200"), "{head}");
    assert_eq!(body, b"hello");

    // Output short of its length: the connection is closed after what came,
    // so the client knows the response is incomplete.
    let mut stream = std::net::TcpStream::connect(site.addr()).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    stream
        .write_all(b"GET /cgi-bin/short.sh HTTP/1.1\r\nHost: h\r\n\r\n")
        .unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    let reply = String::from_utf8_lossy(&reply);
    let (head, body) = reply.split_once("\r\n\r\n").unwrap();
    assert!(
        head.to_ascii_lowercase().contains("content-length: 10"),
        "{head}"
    );
    assert_eq!(body, "hello");
}

#[test]
fn a_program_that_goes_on_after_its_declared_length_is_not_killed() {
    let site = Site::new(&[]);
    site.add(
        "after.sh",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\nContent-Length: 2\\r\\n\\r\\nok'\n\
         sleep 0.3\necho done > \"$CGI_SCRATCH_DIR/after\"\n",
        0o755,
    );
    let response = client().get(site.url("/cgi-bin/after.sh")).send().unwrap();
    assert_eq!(response.text().unwrap(), "ok");
    // The response was complete at its length, before the program ended;
    // the rest of its life was not cut short.
    let marker = site.scratch().join("after");
    assert_eq!(support::wait_for_file(&marker, "done"), "done\n");
}
