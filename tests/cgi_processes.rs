//! CGI process life against the real binary: streaming, timeouts, client
//! disconnects, process limits, shutdown, and no zombie or leaked
//! descriptor afterwards.

mod cgi_site;
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use cgi_site::{is_dead, wait_dead, Options, Site};
use support::{client, open_fds, zombie_children};

#[test]
fn output_streams_before_the_program_ends() {
    let site = Site::new(&["stream.py"]);
    let marker = site.scratch().join("finished");
    let response = client()
        .get(site.url("/cgi-bin/stream.py?n=4&delay=0.5&marker=finished"))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["transfer-encoding"], "chunked");
    let mut lines = BufReader::new(response).lines();
    let first = lines.next().unwrap().unwrap();
    assert_eq!(first, "step 1 of 4 (25%)");
    // The program writes the marker only after its last line.
    assert!(
        !marker.exists(),
        "the first line came only after the program ended"
    );
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert_eq!(rest.last().map(String::as_str), Some("done"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !marker.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(marker.exists());
}

#[test]
fn timeout_before_headers_is_504_and_kills_the_program() {
    let opts = Options {
        timeout: "1s",
        ..Options::default()
    };
    let site = Site::with(&["sleep.py"], opts);
    let started = Instant::now();
    let response = client()
        .get(site.url("/cgi-bin/sleep.py?s=30&pidfile=timeout.pid"))
        .send()
        .unwrap();
    assert_eq!(response.status(), 504);
    assert!(started.elapsed() < Duration::from_secs(10));
    let pid = site.pid_from("timeout.pid");
    assert!(
        wait_dead(pid, Duration::from_secs(5)),
        "pid {pid} outlived its timeout"
    );
    let log = site.srv.wait_for_stderr("timeout");
    assert!(log.contains("timeout"), "{log}");
}

#[test]
fn timeout_mid_body_aborts_the_response() {
    let opts = Options {
        timeout: "1s",
        ..Options::default()
    };
    let site = Site::with(&["sleep.py"], opts);
    let response = client()
        .get(site.url("/cgi-bin/sleep.py?s=30&early=1&pidfile=mid.pid"))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    let pid = site.pid_from("mid.pid");
    let mut body = Vec::new();
    let result = BufReader::new(response).read_to_end(&mut body);
    // Not a clean end: the connection was aborted without the last chunk.
    assert!(result.is_err(), "a timed-out body ended cleanly: {body:?}");
    assert!(String::from_utf8_lossy(&body).starts_with("sleeping"));
    assert!(
        wait_dead(pid, Duration::from_secs(5)),
        "pid {pid} outlived its timeout"
    );
}

/// Send a request on a raw socket, wait for the program's pid, hang up.
fn disconnect_after_start(site: &Site, query: &str, pidfile: &str, read_first: bool) -> u32 {
    let mut stream = TcpStream::connect(site.addr()).unwrap();
    let request =
        format!("GET /cgi-bin/sleep.py?{query}&pidfile={pidfile} HTTP/1.1\r\nHost: h\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let pid = site.pid_from(pidfile);
    if read_first {
        let mut buf = [0u8; 512];
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let n = stream.read(&mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    }
    assert!(!is_dead(pid), "pid {pid} ended on its own");
    drop(stream);
    pid
}

#[test]
fn client_disconnect_kills_the_program() {
    let site = Site::new(&["sleep.py"]);
    // Before the program has sent its headers...
    let pid = disconnect_after_start(&site, "s=30", "before.pid", false);
    assert!(
        wait_dead(pid, Duration::from_secs(5)),
        "pid {pid} survived the disconnect"
    );
    // ...and while its body is streaming.
    let pid = disconnect_after_start(&site, "s=30&early=1", "during.pid", true);
    assert!(
        wait_dead(pid, Duration::from_secs(5)),
        "pid {pid} survived the disconnect"
    );
}

#[test]
fn the_whole_process_group_is_killed() {
    let opts = Options {
        timeout: "1s",
        ..Options::default()
    };
    let site = Site::with(&[], opts);
    // A shell that leaves a background child: kill_on_drop alone would
    // leave the `sleep` running under PID 1.
    let scratch = site.scratch();
    let script = format!(
        "#!/bin/sh\necho $$ > {0}/leader.pid\nsleep 30 &\necho $! > {0}/child.pid\nwait\n",
        scratch.display()
    );
    site.add("group.sh", &script, 0o755);
    let response = client().get(site.url("/cgi-bin/group.sh")).send().unwrap();
    assert_eq!(response.status(), 504);
    let leader = site.pid_from("leader.pid");
    let child = site.pid_from("child.pid");
    assert!(
        wait_dead(leader, Duration::from_secs(5)),
        "leader {leader} alive"
    );
    assert!(
        wait_dead(child, Duration::from_secs(5)),
        "grandchild {child} alive"
    );
}

#[test]
fn fifty_concurrent_requests() {
    let site = Site::new(&["env.py"]);
    let url = site.url("/cgi-bin/env.py?format=text");
    let threads: Vec<_> = (0..50)
        .map(|i| {
            let url = format!("{url}&n={i}");
            std::thread::spawn(move || {
                let response = client().get(url).send().unwrap();
                let status = response.status().as_u16();
                (status, response.text().unwrap())
            })
        })
        .collect();
    for (i, thread) in threads.into_iter().enumerate() {
        let (status, text) = thread.join().unwrap();
        assert_eq!(status, 200, "request {i}: {text}");
        let query = format!("QUERY_STRING=format=text&n={i}");
        assert!(
            text.lines().any(|l| l == query),
            "request {i} got another's answer"
        );
    }
    // A program can close its output a moment before it exits and is
    // reaped: a zombie may exist for that moment, but none may stay.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !zombie_children(site.srv.pid()).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(zombie_children(site.srv.pid()).is_empty());
}

#[test]
fn max_processes_queues_for_queue_timeout_then_gives_503() {
    let opts = Options {
        max_processes: 1,
        queue_timeout: "1s",
        ..Options::default()
    };
    let site = Site::with(&["sleep.py", "hello.py"], opts);
    // A request queued behind a short one is answered once the slot frees.
    let short_url = site.url("/cgi-bin/sleep.py?s=0.3&pidfile=short.pid");
    let short = std::thread::spawn(move || client().get(short_url).send().unwrap().status());
    site.pid_from("short.pid");
    let queued = client().get(site.url("/cgi-bin/hello.py")).send().unwrap();
    assert_eq!(queued.status(), 200);
    assert_eq!(short.join().unwrap(), 200);
    // Behind one that outlasts queue_timeout: 503 with Retry-After.
    let busy_url = site.url("/cgi-bin/sleep.py?s=6&pidfile=busy.pid");
    let busy = std::thread::spawn(move || client().get(busy_url).send().unwrap().status());
    site.pid_from("busy.pid");
    let response = client().get(site.url("/cgi-bin/hello.py")).send().unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(busy.join().unwrap(), 200);
    // The slot is free again.
    let response = client().get(site.url("/cgi-bin/hello.py")).send().unwrap();
    assert_eq!(response.status(), 200);
}

#[test]
fn shutdown_kills_remaining_children() {
    let mut site = Site::new(&["sleep.py"]);
    let url = site.url("/cgi-bin/sleep.py?s=60&pidfile=shutdown.pid");
    let _request = std::thread::spawn(move || client().get(url).send().map(|r| r.status()));
    let pid = site.pid_from("shutdown.pid");
    let status = site.srv.signal_and_wait(15, Duration::from_secs(10));
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    assert!(
        wait_dead(pid, Duration::from_secs(5)),
        "pid {pid} outlived the server"
    );
}

/// After every kind of ending (normal, error, timeout, disconnect, 503),
/// the server has no zombie child and no more descriptors than before.
#[test]
fn no_zombies_or_leaked_descriptors() {
    let opts = Options {
        timeout: "2s",
        max_processes: 4,
        ..Options::default()
    };
    let site = Site::with(
        &[
            "hello.py",
            "echo.py",
            "sleep.py",
            "stream.py",
            "nph-hello.py",
        ],
        opts,
    );
    site.add("fail.sh", "#!/bin/sh\necho failing >&2\nexit 1\n", 0o755);
    let server = site.srv.pid();
    let warm = client();
    assert_eq!(
        warm.get(site.url("/cgi-bin/hello.py"))
            .send()
            .unwrap()
            .status(),
        200
    );
    drop(warm);
    std::thread::sleep(Duration::from_millis(300));
    let baseline = open_fds(server);

    let http = client();
    for _ in 0..5 {
        assert_eq!(
            http.get(site.url("/cgi-bin/hello.py"))
                .send()
                .unwrap()
                .status(),
            200
        );
        assert_eq!(
            http.get(site.url("/cgi-bin/nph-hello.py"))
                .send()
                .unwrap()
                .status(),
            200
        );
        assert_eq!(
            http.get(site.url("/cgi-bin/fail.sh"))
                .send()
                .unwrap()
                .status(),
            500
        );
        let echoed = http
            .post(site.url("/cgi-bin/echo.py"))
            .body(vec![7u8; 300_000])
            .send()
            .unwrap()
            .bytes()
            .unwrap();
        assert_eq!(echoed.len(), 300_000);
    }
    assert_eq!(
        http.get(site.url("/cgi-bin/sleep.py?s=30"))
            .send()
            .unwrap()
            .status(),
        504
    );
    for i in 0..3 {
        let mut stream = TcpStream::connect(site.addr()).unwrap();
        let request = format!("GET /cgi-bin/stream.py?n=20&x={i} HTTP/1.1\r\nHost: h\r\n\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let mut buf = [0u8; 256];
        let _ = stream.read(&mut buf);
    }
    drop(http);

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let zombies = zombie_children(server);
        let fds = open_fds(server);
        if zombies.is_empty() && fds <= baseline {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "zombies {zombies:?}, descriptors {fds} (baseline {baseline})"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SIGTERM lets a request already in flight finish (within `shutdown_grace`)
/// and then exits 0.
#[test]
fn shutdown_lets_in_flight_requests_finish() {
    let opts = Options {
        extra_yaml: "shutdown_grace: 20s\n",
        ..Options::default()
    };
    let mut site = Site::with(&["sleep.py"], opts);
    let url = site.url("/cgi-bin/sleep.py?s=2&pidfile=drain.pid");
    let request = std::thread::spawn(move || {
        let response = client().get(url).send().unwrap();
        (response.status(), response.text().unwrap())
    });
    site.pid_from("drain.pid");
    let status = site.srv.signal_and_wait(15, Duration::from_secs(30));
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    let (code, body) = request.join().unwrap();
    assert_eq!(code, 200);
    assert_eq!(body, "slept 2.0s\n");
}
