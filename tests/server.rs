//! The server itself: command line, listening lines, limits, timeouts,
//! keep-alive, h2c, logs and shutdown, against the real binary.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::{client, raw, status_of, wait_for_file, TestServer};

fn site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("htdocs")).unwrap();
    std::fs::write(dir.path().join("htdocs/index.html"), "<h1>home</h1>\n").unwrap();
    std::fs::write(dir.path().join("htdocs/a.txt"), "hello\n").unwrap();
    dir
}

fn start(extra_yaml: &str) -> TestServer {
    TestServer::start_in(
        site(),
        &format!("document_root: htdocs\ncgi: []\n{extra_yaml}"),
    )
}

fn run_check(yaml: &str) -> (i32, String, String) {
    let dir = site();
    let path = dir.path().join("check.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = std::process::Command::new(support::BIN)
        .args(["--check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn prints_one_exact_listening_line_per_socket_with_the_real_port() {
    let args: Vec<String> = [
        "--config",
        "gatehouse.yaml",
        "--listen",
        "127.0.0.1:0",
        "--listen",
        "127.0.0.1:0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let dir = site();
    std::fs::write(dir.path().join("gatehouse.yaml"), "document_root: htdocs\n").unwrap();
    let srv = TestServer::spawn(dir, &args, None).unwrap();
    assert_eq!(srv.addrs().len(), 2, "{}", srv.stderr_log());
    assert_ne!(srv.addrs()[0].port(), 0);
    assert_ne!(srv.addrs()[0].port(), srv.addrs()[1].port());
    let log = srv.stderr_log();
    for addr in srv.addrs() {
        let line = format!("gatehouse listening on http://{addr}\n");
        assert!(log.contains(&line), "{log}");
        let body = client()
            .get(format!("http://{addr}/a.txt"))
            .send()
            .unwrap()
            .text()
            .unwrap();
        assert_eq!(body, "hello\n");
    }
}

#[test]
fn without_arguments_serves_htdocs_of_the_current_directory() {
    let args = vec!["--listen".to_string(), "127.0.0.1:0".to_string()];
    let srv = TestServer::spawn(site(), &args, None).unwrap();
    let body = client()
        .get(srv.url("/a.txt"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(body, "hello\n");
}

#[test]
fn without_arguments_loads_conf_gatehouse_yaml_when_present() {
    let dir = site();
    std::fs::create_dir(dir.path().join("conf")).unwrap();
    std::fs::create_dir(dir.path().join("other")).unwrap();
    std::fs::write(dir.path().join("other/a.txt"), "from conf\n").unwrap();
    // Relative paths resolve against the configuration file's directory.
    std::fs::write(
        dir.path().join("conf/gatehouse.yaml"),
        "document_root: ../other\n",
    )
    .unwrap();
    let args = vec!["--listen".to_string(), "127.0.0.1:0".to_string()];
    let srv = TestServer::spawn(dir, &args, None).unwrap();
    let body = client()
        .get(srv.url("/a.txt"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(body, "from conf\n");
}

#[test]
fn check_accepts_a_good_configuration() {
    let (code, stdout, _) = run_check("document_root: htdocs\nlisten: [\"127.0.0.1:0\"]\n");
    assert_eq!(code, 0);
    assert_eq!(stdout.trim(), "configuration ok");
}

#[test]
fn check_accepts_the_shipped_default_configuration() {
    let out = std::process::Command::new(support::BIN)
        .args(["--check", "--config"])
        .arg(support::repo_dir().join("conf/gatehouse.yaml"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_rejects_unknown_keys_by_name_with_line_and_column() {
    let (code, stdout, stderr) =
        run_check("document_root: htdocs\nlimits:\n  max_body_size: 1MiB\n");
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(stderr.contains("max_body_size"), "{stderr}");
    assert!(stderr.contains(":3:"), "line 3 expected in {stderr}");
    assert!(!stdout.contains("configuration ok"));
}

#[test]
fn check_reports_yaml_syntax_errors_with_line_and_column() {
    let (code, _, stderr) = run_check("document_root: htdocs\nindex: [a, b\nlisten: x\n");
    assert_eq!(code, 2);
    assert!(stderr.contains("check.yaml:"), "{stderr}");
}

#[test]
fn check_lists_every_semantic_error() {
    let yaml = "document_root: /no/such/dir\nlisten: [\"not an address\"]\nfastcgi:\n  - match: '(unclosed'\n    backends: [\"127.0.0.1:9000\"]\n";
    let (code, _, stderr) = run_check(yaml);
    assert_eq!(code, 2);
    assert!(
        stderr.lines().count() >= 3,
        "three errors expected:\n{stderr}"
    );
}

#[test]
fn bad_listen_flag_is_a_configuration_error() {
    let dir = site();
    let out = std::process::Command::new(support::BIN)
        .args(["--check", "--listen", "nowhere"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let srv = start("");
    let mut stream = TcpStream::connect(srv.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    for _ in 0..3 {
        stream
            .write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut buf = vec![0u8; 4096];
        let n = stream.read(&mut buf).unwrap();
        let reply = String::from_utf8_lossy(&buf[..n]);
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(reply.ends_with("hello\n"), "{reply}");
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let srv = start("");
    let reply = raw(
        srv.addr(),
        b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\nGET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let statuses: Vec<&str> = reply
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &reply[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, ["200", "404", "200"], "{reply}");
}

#[test]
fn http2_with_prior_knowledge_works() {
    let srv = start("");
    let client = reqwest::blocking::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let resp = client.get(srv.url("/a.txt")).send().unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().unwrap(), "hello\n");
}

#[test]
fn http_1_0_is_served() {
    let srv = start("");
    let reply = raw(srv.addr(), b"GET /a.txt HTTP/1.0\r\n\r\n");
    assert!(
        reply.starts_with("HTTP/1.0 200") || reply.starts_with("HTTP/1.1 200"),
        "{reply}"
    );
    assert!(reply.ends_with("hello\n"));
}

#[test]
fn unknown_http_versions_are_refused() {
    let srv = start("");
    for request in [
        &b"GET / HTTP/3.0\r\nHost: x\r\n\r\n"[..],
        b"GET / HTTP/1.2\r\nHost: x\r\n\r\n",
        b"GET /\r\n\r\n",
    ] {
        let reply = raw(srv.addr(), request);
        let status = status_of(&reply);
        assert!(status == 400 || status == 505, "{reply}");
    }
}

#[test]
fn http_1_1_without_host_is_400() {
    let srv = start("");
    let reply = raw(srv.addr(), b"GET /a.txt HTTP/1.1\r\n\r\n");
    assert_eq!(status_of(&reply), 400, "{reply}");
}

#[test]
fn long_uri_is_414() {
    let srv = start("");
    let path = format!("/{}", "a".repeat(20_000));
    let reply = raw(
        srv.addr(),
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    );
    assert_eq!(status_of(&reply), 414, "{}", &reply[..reply.len().min(200)]);
}

#[test]
fn large_headers_are_431() {
    let srv = start("limits:\n  max_header_bytes: 16KiB\n");
    let big = "x".repeat(20_000);
    let reply = raw(
        srv.addr(),
        format!("GET /a.txt HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").as_bytes(),
    );
    assert_eq!(status_of(&reply), 431, "{reply}");
    // Far past every buffer: still 431, never a hang.
    let huge = "x".repeat(200_000);
    let reply = raw(
        srv.addr(),
        format!("GET /a.txt HTTP/1.1\r\nHost: x\r\nX-Big: {huge}\r\n\r\n").as_bytes(),
    );
    assert_eq!(status_of(&reply), 431, "{reply}");
}

#[test]
fn declared_body_over_the_limit_is_413() {
    let srv = start("limits:\n  max_request_body: 1KiB\n");
    let reply = raw(
        srv.addr(),
        b"POST /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n",
    );
    assert_eq!(status_of(&reply), 413, "{reply}");
}

#[test]
fn a_client_trickling_headers_is_cut_off_while_others_are_served() {
    let srv = start("limits:\n  header_read_timeout: 1s\n");
    let mut slow = TcpStream::connect(srv.addr()).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let started = Instant::now();
    let mut closed = false;
    for byte in b"GET /a.txt HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa" {
        if slow.write_all(&[*byte]).is_err() {
            closed = true;
            break;
        }
        // Others are served meanwhile.
        assert_eq!(
            client().get(srv.url("/a.txt")).send().unwrap().status(),
            200
        );
        std::thread::sleep(Duration::from_millis(300));
        if started.elapsed() > Duration::from_secs(4) {
            break;
        }
    }
    if !closed {
        let mut buf = [0u8; 1024];
        let n = slow.read(&mut buf).unwrap_or(0);
        let reply = String::from_utf8_lossy(&buf[..n]);
        assert!(n == 0 || reply.starts_with("HTTP/1.1 408"), "{reply}");
    }
}

#[test]
fn a_silent_connection_is_closed_after_the_header_timeout() {
    let srv = start("limits:\n  header_read_timeout: 1s\n");
    let mut idle = TcpStream::connect(srv.addr()).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(
        idle.read(&mut buf).unwrap_or(0),
        0,
        "the server closes the connection"
    );
}

#[test]
fn idle_keep_alive_connections_are_closed_after_keepalive_timeout() {
    let srv = start("limits:\n  header_read_timeout: 30s\n  keepalive_timeout: 1s\n");
    let mut stream = TcpStream::connect(srv.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    stream
        .write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert_eq!(stream.read(&mut buf).unwrap_or(0), 0, "closed after idling");
}

#[test]
fn access_log_is_combined_log_format_with_request_id() {
    let srv = start("");
    client()
        .get(srv.url("/a.txt?q=1"))
        .header("Referer", "http://ref.example/")
        .header("User-Agent", "tester/1.0")
        .send()
        .unwrap();
    let log = srv.wait_for_stdout("tester/1.0");
    let line = log.lines().find(|l| l.contains("tester/1.0")).expect(&log);
    let re = regex::Regex::new(
        r#"^127\.0\.0\.1 - - \[\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000\] "GET /a\.txt\?q=1 HTTP/1\.1" 200 6 "http://ref\.example/" "tester/1\.0" [0-9a-f]{8}$"#,
    )
    .unwrap();
    assert!(re.is_match(line), "{line}");
}

#[test]
fn access_log_to_a_file_and_off() {
    let dir = site();
    let log_path = dir.path().join("access.log");
    let srv = TestServer::start_in(dir, "document_root: htdocs\naccess_log: access.log\n");
    client().get(srv.url("/a.txt")).send().unwrap();
    let content = wait_for_file(&log_path, "GET /a.txt");
    assert!(
        content.contains("\"GET /a.txt HTTP/1.1\" 200 6"),
        "{content}"
    );
    assert!(!srv.stdout_log().contains("GET /a.txt"));

    let off = start("access_log: \"off\"\n");
    client().get(off.url("/a.txt")).send().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(!off.stdout_log().contains("GET /a.txt"));
}

#[test]
fn sigusr1_and_sighup_reopen_log_files_moved_away() {
    let dir = site();
    let logs = dir.path().to_path_buf();
    let (access, errors) = (logs.join("access.log"), logs.join("error.log"));
    let mut srv = TestServer::start_in(
        dir,
        "document_root: htdocs\naccess_log: access.log\nerror_log: error.log\nlog_level: info\n",
    );
    let get = |tag: &str| {
        let response = client().get(srv.url(&format!("/a.txt?{tag}"))).send();
        assert_eq!(response.unwrap().status(), 200, "{tag}");
    };
    get("first");
    assert!(wait_for_file(&access, "?first ").contains("?first "));
    for (signal, round) in [(10, 1), (1, 2)] {
        std::fs::rename(&access, logs.join(format!("access.log.{round}"))).unwrap();
        std::fs::rename(&errors, logs.join(format!("error.log.{round}"))).unwrap();
        srv.signal(signal);
        let new_errors = wait_for_file(&errors, "log files reopened");
        assert!(
            new_errors.contains("log files reopened"),
            "signal {signal}: {new_errors:?}"
        );
        let tag = format!("after{round}");
        get(&tag);
        let new_access = wait_for_file(&access, &format!("?{tag} "));
        assert!(new_access.contains(&format!("?{tag} ")), "{new_access:?}");
        let rotated = std::fs::read_to_string(logs.join(format!("access.log.{round}"))).unwrap();
        assert!(!rotated.contains(&format!("?{tag} ")), "{rotated:?}");
    }
    let first = std::fs::read_to_string(logs.join("access.log.1")).unwrap();
    assert!(first.contains("?first "), "{first:?}");
    assert!(!std::fs::read_to_string(&access)
        .unwrap()
        .contains("?first "));
    let status = srv
        .signal_and_wait(15, Duration::from_secs(20))
        .expect("exited");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_log_that_cannot_be_reopened_keeps_the_old_file() {
    let dir = site();
    std::fs::create_dir(dir.path().join("logs")).unwrap();
    let base = dir.path().to_path_buf();
    let srv = TestServer::start_in(
        dir,
        "document_root: htdocs\naccess_log: logs/access.log\nerror_log: \"-\"\nlog_level: info\n",
    );
    // The directory goes away: the path cannot be opened again.
    std::fs::rename(base.join("logs"), base.join("gone")).unwrap();
    srv.signal(10);
    let stderr = srv.wait_for_stderr("cannot reopen a log file");
    assert!(stderr.contains("cannot reopen a log file"), "{stderr}");
    let response = client().get(srv.url("/a.txt?kept")).send().unwrap();
    assert_eq!(response.status(), 200);
    let kept = wait_for_file(&base.join("gone/access.log"), "?kept ");
    assert!(kept.contains("?kept "), "{kept:?}");
}

#[test]
fn sigterm_drains_and_exits_zero() {
    let mut srv = start("shutdown_grace: 2s\n");
    // An idle keep-alive connection must not hold the shutdown past the grace period.
    let mut idle = TcpStream::connect(srv.addr()).unwrap();
    idle.write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 1024];
    let _ = idle.read(&mut buf).unwrap();
    let status = srv
        .signal_and_wait(15, Duration::from_secs(20))
        .expect("exited");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn access_log_lines_are_all_written_by_shutdown() {
    // Lines are written in batches: the ones still waiting when SIGTERM
    // arrives must not be lost.
    let mut srv = start("shutdown_grace: 2s\n");
    let mut conn = TcpStream::connect(srv.addr()).unwrap();
    let mut buf = vec![0u8; 4096];
    for n in 0..300 {
        conn.write_all(format!("GET /a.txt?n={n} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap();
        let mut got = Vec::new();
        while !got.ends_with(b"hello\n") {
            let read = conn.read(&mut buf).unwrap();
            assert!(read > 0, "closed early");
            got.extend_from_slice(&buf[..read]);
        }
    }
    drop(conn);
    let status = srv
        .signal_and_wait(15, Duration::from_secs(20))
        .expect("exited");
    assert_eq!(status.code(), Some(0));
    let log = srv.wait_for_stdout("?n=299 ");
    for n in 0..300 {
        assert!(
            log.contains(&format!("/a.txt?n={n} HTTP/1.1")),
            "line {n} lost"
        );
    }
}

#[test]
fn sigint_exits_zero() {
    let mut srv = start("");
    let status = srv
        .signal_and_wait(2, Duration::from_secs(20))
        .expect("exited");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn error_pages_are_small_html_without_paths() {
    let srv = start("");
    let resp = client().get(srv.url("/missing/file.txt")).send().unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
    let body = resp.text().unwrap();
    assert!(body.contains("404 Not Found"));
    assert!(!body.contains("htdocs") && !body.contains("/tmp"), "{body}");
}

#[test]
fn content_length_with_transfer_encoding_is_never_smuggled() {
    // hyper lets Transfer-Encoding win over Content-Length (RFC 9112 section
    // 6.3) and closes the connection after the response, so nothing that
    // follows on the same connection is taken as a second request.
    let srv = start("");
    let reply = raw(
        srv.addr(),
        b"POST /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert!([400, 405].contains(&status_of(&reply)), "{reply}");
    assert_eq!(
        reply.matches("HTTP/1.1 ").count(),
        1,
        "no smuggled second response: {reply}"
    );
}

/// A site with a CGI script, served under `yaml_extra` by `start`; 16
/// clients fetch a file and run the program ten times each, then SIGTERM
/// must stop the server cleanly. Returns the event-loop threads counted
/// while it ran (tokio's workers; the blocking pool's threads share the
/// name, so this is an upper bound).
fn serve_files_and_programs_then_stop(
    start: fn(tempfile::TempDir, &str) -> TestServer,
    yaml_extra: &str,
) -> usize {
    let dir = site();
    let cgi = dir.path().join("cgi-bin");
    std::fs::create_dir(&cgi).unwrap();
    std::fs::write(
        cgi.join("hello.sh"),
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nhello %s\\n' \"$QUERY_STRING\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(cgi.join("hello.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut srv = start(
        dir,
        &format!("document_root: htdocs\naccess_log: \"off\"\nshutdown_grace: 2s\ncgi:\n  - prefix: /cgi-bin/\n    dir: cgi-bin\n{yaml_extra}"),
    );
    let workers_at_start = tokio_workers(srv.pid());
    let threads: Vec<_> = (0..16)
        .map(|n| {
            let file = srv.url("/a.txt");
            let program = srv.url(&format!("/cgi-bin/hello.sh?{n}"));
            std::thread::spawn(move || {
                let http = client();
                for _ in 0..10 {
                    assert_eq!(http.get(&file).send().unwrap().text().unwrap(), "hello\n");
                    let reply = http.get(&program).send().unwrap().text().unwrap();
                    assert_eq!(reply, format!("hello {n}\n"));
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let status = srv
        .signal_and_wait(15, Duration::from_secs(20))
        .expect("exited");
    assert_eq!(status.code(), Some(0));
    workers_at_start
}

/// Threads of `pid` named as tokio names its workers.
fn tokio_workers(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim() == "tokio-rt-worker")
        .count()
}

#[test]
fn on_one_cpu_it_serves_files_and_programs_and_stops_cleanly() {
    // One CPU (see `server::runtime`): the current-thread runtime, programs
    // spawned on the event loop itself; blocking pool, child processes and
    // signals must all still work.
    let workers = serve_files_and_programs_then_stop(TestServer::start_on_one_cpu, "");
    assert_eq!(workers, 0, "the event loop is the main thread");
}

#[test]
fn one_worker_spawns_programs_off_the_loop_and_stops_cleanly() {
    // One event loop, programs spawned on the blocking pool (when there is
    // a second CPU, as on the machines the tests run on).
    let workers = serve_files_and_programs_then_stop(TestServer::start_in, "workers: 1\n");
    assert_eq!(workers, 0, "the event loop is the main thread");
}

#[test]
fn several_workers_run_the_multi_thread_runtime_and_stop_cleanly() {
    let workers = serve_files_and_programs_then_stop(TestServer::start_in, "workers: 3\n");
    assert!(workers >= 3, "{workers} worker threads");
}

#[test]
fn memory_a_burst_of_connections_took_goes_back_once_they_close() {
    let srv = start("access_log: \"off\"\n");
    let ask = |stream: &mut TcpStream| {
        stream
            .write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = stream.read(&mut buf).unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    };
    let mut warm = TcpStream::connect(srv.addr()).unwrap();
    ask(&mut warm);
    let idle = support::rss_kib(srv.pid());
    // Each open connection holds its buffers, task and futures: together
    // they grow the heap by megabytes.
    let burst: Vec<TcpStream> = (0..500)
        .map(|_| {
            let mut stream = TcpStream::connect(srv.addr()).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            ask(&mut stream);
            stream
        })
        .collect();
    let busy = support::rss_kib(srv.pid());
    let grown = busy.saturating_sub(idle);
    assert!(
        grown > 4 * 1024,
        "500 connections grew RSS by only {grown} KiB"
    );
    drop(burst);
    // Counted once a second: freed memory goes back within a few.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut now = busy;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        now = support::rss_kib(srv.pid());
        if now < idle + grown / 2 {
            break;
        }
    }
    assert!(
        now < idle + grown / 2,
        "RSS idle {idle} KiB, with 500 connections {busy} KiB, after they closed {now} KiB"
    );
    ask(&mut warm);
}

#[test]
fn a_unix_socket_listener_serves_files_and_keeps_the_connection_alive() {
    let dir = site();
    let sock = dir.path().join("gatehouse.sock");
    let srv = TestServer::start_in(
        dir,
        &format!(
            "document_root: htdocs\ncgi: []\nlisten: [\"127.0.0.1:0\", \"unix:{}\"]\n",
            sock.display()
        ),
    );
    srv.wait_for_stderr(&format!("gatehouse listening on unix:{}", sock.display()));
    let mut conn = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // Two requests on one connection: the second proves keep-alive works.
    conn.write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    conn.read_to_string(&mut reply).unwrap();
    assert_eq!(reply.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{reply}");
    assert_eq!(reply.matches("\r\n\r\nhello\n").count(), 2, "{reply}");
    // The TCP listener next to it still answers.
    assert_eq!(
        status_of(&raw(
            srv.addr(),
            b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )),
        200
    );
}

#[test]
fn the_soft_open_file_limit_is_raised_towards_the_hard_one() {
    // Debian's default soft limit (1,024) would refuse the thousandth client.
    let srv = TestServer::start_wrapped(
        site(),
        "document_root: htdocs\ncgi: []\n",
        &["prlimit", "--nofile=256:4096"],
    );
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", srv.pid())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let numbers: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(numbers, ["4096", "4096"], "{line}");
    // And it serves more clients at once than the old soft limit allowed.
    let conns: Vec<TcpStream> = (0..400)
        .map(|_| TcpStream::connect(srv.addr()).unwrap())
        .collect();
    for mut c in conns.into_iter().rev().take(3) {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut reply = String::new();
        c.read_to_string(&mut reply).unwrap();
        assert_eq!(status_of(&reply), 200, "{reply}");
    }
}
