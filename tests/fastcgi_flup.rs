//! A real flup (WSGI over FastCGI) application as a managed backend:
//! gatehouse starts apps/hello_wsgi.py with the listening socket as fd 0.

mod support;

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{client, repo_dir, TestServer};

fn flup_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import flup.server.fcgi"])
        .status()
        .is_ok_and(|s| s.success());
    // CI installs flup (tests/run-all.sh): a missing one there is a failure, not a skip.
    assert!(
        ok || std::env::var_os("CI").is_none(),
        "flup is missing under CI"
    );
    if !ok {
        eprintln!("\n!!!!! python3 with flup not found: SKIPPING this flup test (pip install flup, or run tests/run-all.sh) !!!!!\n");
    }
    ok
}

fn server(processes: usize) -> TestServer {
    let app = repo_dir().join("apps/hello_wsgi.py");
    let yaml = format!(
        r#"document_root: null
access_log: "off"
fastcgi:
  - prefix: /wsgi/
    spawn:
      command: [python3, "{}"]
      processes: {processes}
    read_timeout: 10s
"#,
        app.display()
    );
    TestServer::start(&yaml)
}

fn lines(body: &str) -> HashMap<String, String> {
    body.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn pid_of(srv: &TestServer) -> u32 {
    let resp = client().get(srv.url("/wsgi/pid")).send().unwrap();
    assert_eq!(resp.status(), 200);
    lines(&resp.text().unwrap())["pid"].parse().unwrap()
}

fn alive(pid: u32) -> bool {
    // A zombie still has /proc/PID; its state is Z.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

#[test]
fn script_name_and_path_info() {
    if !flup_available() {
        return;
    }
    let srv = server(2);
    let resp = client()
        .get(srv.url("/wsgi/hello/there?x=1&y=%20"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.text().unwrap();
    assert!(body.starts_with("hello from flup"), "{body}");
    let v = lines(&body);
    assert_eq!(v["SCRIPT_NAME"], "/wsgi");
    assert_eq!(v["PATH_INFO"], "/hello/there");
    assert_eq!(v["QUERY_STRING"], "x=1&y=%20");
    assert_eq!(v["REQUEST_METHOD"], "GET");
    assert!(v["SERVER_SOFTWARE"].starts_with("gatehouse/"));

    // The bare mount point: SCRIPT_NAME /wsgi, empty PATH_INFO.
    let v = lines(
        &client()
            .get(srv.url("/wsgi"))
            .send()
            .unwrap()
            .text()
            .unwrap(),
    );
    assert_eq!(
        (v["SCRIPT_NAME"].as_str(), v["PATH_INFO"].as_str()),
        ("/wsgi", "")
    );
}

#[test]
fn post_echo() {
    if !flup_available() {
        return;
    }
    let srv = server(1);
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    let resp = client()
        .post(srv.url("/wsgi/echo"))
        .header("Content-Type", "application/x-test")
        .body(data.clone())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/x-test");
    assert_eq!(resp.headers()["x-received-length"], "200000");
    assert_eq!(resp.bytes().unwrap().to_vec(), data);

    // Chunked too (spooled, so flup gets CONTENT_LENGTH).
    let resp = client()
        .post(srv.url("/wsgi/echo"))
        .body(reqwest::blocking::Body::new(std::io::Cursor::new(
            b"chunked hello".to_vec(),
        )))
        .send()
        .unwrap();
    assert_eq!(resp.text().unwrap(), "chunked hello");
}

#[test]
fn a_killed_copy_comes_back() {
    if !flup_available() {
        return;
    }
    let srv = server(1);
    let first = pid_of(&srv);
    let _ = Command::new("kill")
        .args(["-KILL", &first.to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(15);
    let second = loop {
        // The socket is gatehouse's and stays open: requests wait in its
        // backlog for the new copy instead of failing.
        if let Ok(resp) = client().get(srv.url("/wsgi/pid")).send() {
            if resp.status() == 200 {
                let pid: u32 = lines(&resp.text().unwrap())["pid"].parse().unwrap();
                if pid != first {
                    break pid;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "no new copy: {}",
            srv.stderr_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!alive(first), "the killed copy was reaped");
    let log = srv.wait_for_stderr("restarting");
    assert!(
        log.contains("managed fastcgi backend exited; restarting"),
        "{log}"
    );
    assert_eq!(pid_of(&srv), second, "and it keeps serving");
}

#[test]
fn shutdown_stops_the_copies() {
    if !flup_available() {
        return;
    }
    let mut srv = server(2);
    let mut pids = std::collections::HashSet::new();
    for _ in 0..10 {
        pids.insert(pid_of(&srv));
    }
    let status = srv
        .signal_and_wait(15, Duration::from_secs(15))
        .expect("gatehouse exits");
    assert!(status.success(), "{status:?}");
    std::thread::sleep(Duration::from_millis(200));
    for pid in pids {
        assert!(!alive(pid), "copy {pid} stopped with gatehouse");
    }
}

#[test]
fn copies_do_not_outlive_a_killed_gatehouse() {
    if !flup_available() {
        return;
    }
    let mut srv = server(1);
    let pid = pid_of(&srv);
    srv.signal_and_wait(9, Duration::from_secs(10))
        .expect("gatehouse killed");
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!alive(pid), "copy {pid} got the parent-death signal");
    // A killed gatehouse cannot remove its socket directory; do it here.
    let log = srv.stderr_log();
    let socket = log
        .split_whitespace()
        .find_map(|word| word.strip_prefix("socket="))
        .expect("the start-up line names the socket");
    let dir = std::path::Path::new(socket).parent().unwrap();
    assert!(dir.starts_with(std::env::temp_dir()), "{}", dir.display());
    std::fs::remove_dir_all(dir).unwrap();
}
