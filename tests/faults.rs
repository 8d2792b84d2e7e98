//! Faults on the far side: CGI programs that flood, stall, close their
//! output early or leave children behind; a process limit under a thousand
//! requests; a FastCGI backend that floods, dies mid-response, comes back,
//! or accepts connections and never answers. Memory stays bounded, every
//! process dies by its timeout, and other routes keep working throughout.

#[path = "support/fcgi_backend.rs"]
mod fcgi_backend;
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fcgi_backend::FcgiBackend;
use support::{client, rss_kib, zombie_children, TestServer};

/// CGI programs, each writing its pid (and its children's) to `$SCRATCH`.
const PROGRAMS: &[(&str, &str)] = &[
    (
        "flood.sh",
        "#!/bin/sh\necho $$ > \"$SCRATCH/flood.$QUERY_STRING\"\nprintf 'Content-Type: application/octet-stream\\r\\n\\r\\n'\nexec cat /dev/zero\n",
    ),
    (
        "no-stdin.sh",
        "#!/bin/sh\necho $$ > \"$SCRATCH/no-stdin.pid\"\nexec sleep 60\n",
    ),
    (
        "early.sh",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nanswered without reading'\n",
    ),
    (
        "close-stdout.sh",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\ndone'\nexec >&- 2>&-\nsleep 60 &\necho $! > \"$SCRATCH/close-stdout.child\"\necho $$ > \"$SCRATCH/close-stdout.pid\"\nwait\n",
    ),
    (
        "daemon.sh",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nleft a job'\nexec >&- 2>&-\nsleep 60 &\necho $! > \"$SCRATCH/daemon.child\"\nexit 0\n",
    ),
    (
        "grandchild.sh",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\npartial'\nsleep 60 &\necho $! > \"$SCRATCH/grandchild.child\"\necho $$ > \"$SCRATCH/grandchild.pid\"\nexit 0\n",
    ),
    (
        "sleep.sh",
        "#!/bin/sh\nstart=$(date +%s%N)\nsleep 0.5\necho \"$start $(date +%s%N)\" >> \"$SCRATCH/intervals\"\nprintf 'Content-Type: text/plain\\r\\n\\r\\nslept'\n",
    ),
    ("hello.sh", "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nhello'\n"),
];

struct Site {
    srv: TestServer,
    scratch: PathBuf,
}

impl Site {
    fn pid(&self, name: &str) -> u32 {
        let path = self.scratch.join(name);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(text) = std::fs::read_to_string(&path) {
                if let Ok(pid) = text.trim().parse() {
                    return pid;
                }
            }
            assert!(Instant::now() < deadline, "no pid file {}", path.display());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A site with the programs above (CGI `timeout` and `max_processes` as
/// given), static files, and `/t/` on `backend` when there is one.
fn site(timeout: &str, max_processes: usize, backend: Option<SocketAddr>) -> Site {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join("htdocs")).unwrap();
    std::fs::write(root.join("htdocs/a.txt"), "hello\n").unwrap();
    std::fs::create_dir(root.join("cgi")).unwrap();
    std::fs::create_dir(root.join("scratch")).unwrap();
    for (name, text) in PROGRAMS {
        let path = root.join("cgi").join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let scratch = root.join("scratch").canonicalize().unwrap();
    let fastcgi = match backend {
        Some(addr) => format!(
            "fastcgi:\n  - prefix: /t/\n    backends: [\"{addr}\"]\n    read_timeout: 2s\n    connect_timeout: 1s\n"
        ),
        None => String::new(),
    };
    let yaml = format!(
        r#"document_root: htdocs
access_log: "off"
shutdown_grace: 1s
cgi:
  - prefix: /cgi-bin/
    dir: cgi
    timeout: {timeout}
    max_processes: {max_processes}
    queue_timeout: 1s
    env: {{ SCRATCH: "{scratch}" }}
    pass_env: [PATH]
{fastcgi}"#,
        scratch = scratch.display(),
    );
    Site {
        srv: TestServer::start_in(dir, &yaml),
        scratch,
    }
}

/// True when `pid` is gone (or a zombie that the server does not own).
fn is_dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn wait_dead(pid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while !is_dead(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    true
}

/// Children of `pid` (running or zombie), from /proc.
fn children_of(pid: u32) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if rest.split_whitespace().nth(1) == Some(pid.to_string().as_str()) {
            n += 1;
        }
    }
    n
}

/// Wait until the server has no child processes left.
fn wait_no_children(pid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while children_of(pid) > 0 {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// Send a GET and read only the response head, leaving the body unread.
fn start_download(addr: SocketAddr, path: &str) -> BufReader<TcpStream> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut reader = BufReader::with_capacity(64, s);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{path}: {line}");
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" {
            return reader;
        }
    }
}

#[test]
fn cgi_flood_to_a_slow_reader_keeps_memory_bounded() {
    let site = site("60s", 64, None);
    let pid = site.srv.pid();
    assert_eq!(
        client()
            .get(site.srv.url("/a.txt"))
            .send()
            .unwrap()
            .status(),
        200
    );
    let before = rss_kib(pid);
    let stalled: Vec<_> = (0..10)
        .map(|i| start_download(site.srv.addr(), &format!("/cgi-bin/flood.sh?{i}")))
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    let after = rss_kib(pid);
    // Ten programs writing /dev/zero as fast as they can, to clients that
    // read nothing: each holds a pipe, a read buffer and socket buffers.
    assert!(
        after.saturating_sub(before) < 48 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    let programs: Vec<u32> = (0..10).map(|i| site.pid(&format!("flood.{i}"))).collect();
    for p in &programs {
        assert!(
            !is_dead(*p),
            "a flooding program died while blocked on its pipe"
        );
    }
    // The clients go away: every program is killed and reaped.
    drop(stalled);
    for p in programs {
        assert!(wait_dead(p, Duration::from_secs(10)), "pid {p} survived");
    }
    assert!(wait_no_children(pid, Duration::from_secs(10)));
    assert!(zombie_children(pid).is_empty());
}

#[test]
fn a_program_that_never_reads_stdin_while_a_large_body_arrives_is_504() {
    let site = site("3s", 64, None);
    let mut s = TcpStream::connect(site.srv.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut writer = s.try_clone().unwrap();
    let body_len = 32 << 20;
    let sender = std::thread::spawn(move || {
        let _ = write!(
            writer,
            "POST /cgi-bin/no-stdin.sh HTTP/1.1\r\nHost: x\r\nContent-Length: {body_len}\r\n\r\n"
        );
        let chunk = vec![b'x'; 1 << 20];
        let mut sent = 0;
        while sent < body_len {
            if writer.write_all(&chunk).is_err() {
                break;
            }
            sent += chunk.len();
        }
        sent
    });
    let started = Instant::now();
    let leader = site.pid("no-stdin.pid");
    let mut reply = [0u8; 12];
    s.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"HTTP/1.1 504");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "answered after {took:?}");
    assert!(
        wait_dead(leader, Duration::from_secs(5)),
        "the program survived"
    );
    drop(s);
    let sent = sender.join().unwrap();
    assert!(
        sent < body_len,
        "the whole body was taken while nobody read it"
    );
    assert_eq!(
        client()
            .get(site.srv.url("/cgi-bin/hello.sh"))
            .send()
            .unwrap()
            .status(),
        200
    );
}

#[test]
fn a_program_that_answers_without_reading_a_large_body_is_not_stuck() {
    let site = site("10s", 64, None);
    let mut s = TcpStream::connect(site.srv.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut writer = s.try_clone().unwrap();
    let body_len = 32 << 20;
    let sender = std::thread::spawn(move || {
        let _ = write!(
            writer,
            "POST /cgi-bin/early.sh HTTP/1.1\r\nHost: x\r\nContent-Length: {body_len}\r\n\r\n"
        );
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..32 {
            if writer.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&reply).contains("answered without reading") {
        let n = s.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "closed before the answer: {}",
            String::from_utf8_lossy(&reply)
        );
        reply.extend_from_slice(&buf[..n]);
    }
    assert!(reply.starts_with(b"HTTP/1.1 200"));
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "the answer waited for the body"
    );
    drop(s);
    sender.join().unwrap();
}

#[test]
fn a_program_that_closes_stdout_but_keeps_running_dies_at_its_timeout() {
    let site = site("3s", 64, None);
    let started = Instant::now();
    let resp = client()
        .get(site.srv.url("/cgi-bin/close-stdout.sh"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().unwrap(), "done");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the answer ended with its output"
    );
    let leader = site.pid("close-stdout.pid");
    let child = site.pid("close-stdout.child");
    assert!(!is_dead(leader), "still running after its answer");
    assert!(
        wait_dead(leader, Duration::from_secs(8)),
        "leader {leader} outlived its timeout"
    );
    assert!(
        wait_dead(child, Duration::from_secs(8)),
        "child {child} outlived its timeout"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(2500),
        "killed before the timeout"
    );
}

#[test]
fn a_background_job_left_by_an_exited_program_dies_at_the_timeout() {
    let site = site("3s", 64, None);
    let started = Instant::now();
    let resp = client()
        .get(site.srv.url("/cgi-bin/daemon.sh"))
        .send()
        .unwrap();
    assert_eq!(resp.text().unwrap(), "left a job");
    let child = site.pid("daemon.child");
    assert!(!is_dead(child));
    assert!(
        wait_dead(child, Duration::from_secs(8)),
        "the job {child} outlived the timeout"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(2500),
        "killed before the timeout"
    );
    assert!(wait_no_children(site.srv.pid(), Duration::from_secs(5)));
}

#[test]
fn a_grandchild_holding_stdout_ends_the_request_at_the_timeout() {
    let site = site("3s", 64, None);
    let started = Instant::now();
    let mut s = TcpStream::connect(site.srv.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"GET /cgi-bin/grandchild.sh HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    let took = started.elapsed();
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("partial"), "{reply}");
    // The output never ended, so the response must not look complete.
    assert!(
        !reply.ends_with("0\r\n\r\n"),
        "a cut response ended cleanly: {reply:?}"
    );
    assert!(
        took >= Duration::from_millis(2500) && took < Duration::from_secs(10),
        "ended after {took:?}; the timeout is 3s"
    );
    let child = site.pid("grandchild.child");
    assert!(
        wait_dead(child, Duration::from_secs(5)),
        "grandchild {child} survived"
    );
    assert!(wait_no_children(site.srv.pid(), Duration::from_secs(5)));
    assert!(zombie_children(site.srv.pid()).is_empty());
}

#[test]
fn a_thousand_requests_against_sixteen_processes() {
    let site = site("30s", 16, None);
    let pid = site.srv.pid();
    let url = site.srv.url("/cgi-bin/sleep.sh");
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..100)
        .map(|_| {
            let (url, next) = (url.clone(), next.clone());
            std::thread::spawn(move || {
                let client = client();
                let mut statuses = Vec::new();
                while next.fetch_add(1, Ordering::SeqCst) < 1000 {
                    let status = match client.get(&url).send() {
                        Ok(resp) => resp.status().as_u16(),
                        Err(e) => panic!("request failed: {e}"),
                    };
                    statuses.push(status);
                }
                statuses
            })
        })
        .collect();
    let statuses: Vec<u16> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert_eq!(statuses.len(), 1000);
    let ok = statuses.iter().filter(|&&s| s == 200).count();
    let busy = statuses.iter().filter(|&&s| s == 503).count();
    assert_eq!(ok + busy, 1000, "only 200 and 503 expected: {statuses:?}");
    assert!(ok >= 16 && busy > 0, "{ok} answered, {busy} refused");
    // Each program logged when it ran: at no moment did more than 16 overlap.
    let log = std::fs::read_to_string(site.scratch.join("intervals")).unwrap();
    let mut events: Vec<(u128, i32)> = Vec::new();
    for line in log.lines() {
        let (start, end) = line.split_once(' ').unwrap();
        events.push((start.parse().unwrap(), 1));
        events.push((end.parse().unwrap(), -1));
    }
    assert_eq!(events.len(), 2 * ok, "every answered request ran once");
    events.sort();
    let (mut running, mut peak) = (0, 0);
    for (_, change) in events {
        running += change;
        peak = peak.max(running);
    }
    assert!(peak <= 16, "{peak} programs at once with max_processes: 16");
    assert!(
        peak >= 8,
        "only {peak} at once: the limit was never reached"
    );
    // Nothing crashed, nothing is left.
    assert_eq!(
        client()
            .get(site.srv.url("/cgi-bin/hello.sh"))
            .send()
            .unwrap()
            .status(),
        200
    );
    assert!(wait_no_children(pid, Duration::from_secs(10)));
    assert!(zombie_children(pid).is_empty());
}

#[test]
fn fastcgi_flood_to_a_slow_reader_keeps_memory_bounded() {
    let backend = FcgiBackend::start(64);
    let site = site("60s", 64, Some(backend.addr));
    let pid = site.srv.pid();
    assert_eq!(
        client().get(site.srv.url("/t/")).send().unwrap().status(),
        200
    );
    let before = rss_kib(pid);
    let stalled: Vec<_> = (0..10)
        .map(|_| start_download(site.srv.addr(), "/t/flood"))
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    let flooded = backend.flooded();
    std::thread::sleep(Duration::from_secs(1));
    let after = rss_kib(pid);
    assert!(
        backend.flooded() - flooded < 1 << 20,
        "the backend kept writing to clients that read nothing"
    );
    assert!(
        flooded < 10 * (16 << 20),
        "{flooded} bytes taken from the backend for clients that read nothing"
    );
    assert!(
        after.saturating_sub(before) < 48 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    drop(stalled);
    assert_eq!(
        client().get(site.srv.url("/t/")).send().unwrap().status(),
        200
    );
}

/// Static files and CGI, requested in a loop until `stop`: every failure
/// is counted.
fn other_routes(
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(usize, Vec<String>)> {
    std::thread::spawn(move || {
        let client = client();
        let mut served = 0;
        let mut failures = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            for path in ["/a.txt", "/cgi-bin/hello.sh"] {
                match client.get(format!("http://{addr}{path}")).send() {
                    Ok(r) if r.status() == 200 => served += 1,
                    Ok(r) => failures.push(format!("{path}: {}", r.status())),
                    Err(e) => failures.push(format!("{path}: {e}")),
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        (served, failures)
    })
}

#[test]
fn a_fastcgi_backend_killed_mid_response_then_back() {
    let backend = FcgiBackend::start(8);
    let addr = backend.addr;
    let site = site("10s", 64, Some(addr));
    let stop = Arc::new(AtomicBool::new(false));
    let others = other_routes(site.srv.addr(), stop.clone());
    assert_eq!(
        client().get(site.srv.url("/t/")).send().unwrap().status(),
        200
    );

    // Killed while answering: one response is streaming (`/flood`), another
    // waits for its head (`/slow` answers after 3 s; it is killed at 0.3 s).
    let mut streaming = start_download(site.srv.addr(), "/t/flood");
    let mut buf = vec![0u8; 1 << 16];
    streaming.read_exact(&mut buf[..1024]).unwrap();
    let in_flight = {
        let url = site.srv.url("/t/slow");
        std::thread::spawn(move || client().get(url).send().map(|r| r.status().as_u16()))
    };
    std::thread::sleep(Duration::from_millis(300));
    backend.stop();
    // The streaming response is aborted, not ended as if complete.
    let mut rest = Vec::new();
    let _ = streaming.read_to_end(&mut rest);
    assert!(
        !rest.ends_with(b"0\r\n\r\n"),
        "a cut response ended cleanly"
    );
    assert_eq!(in_flight.join().unwrap().unwrap(), 502);
    // Down: 502, quickly, again and again.
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(
            client().get(site.srv.url("/t/")).send().unwrap().status(),
            502
        );
        assert!(started.elapsed() < Duration::from_secs(3));
    }
    // Back on the same address: the pool recovers.
    let back = FcgiBackend::start_on(addr, 8);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = client().get(site.srv.url("/t/")).send().unwrap().status();
        if status == 200 {
            break;
        }
        assert_eq!(status, 502);
        assert!(Instant::now() < deadline, "the pool never recovered");
        std::thread::sleep(Duration::from_millis(100));
    }
    for _ in 0..10 {
        assert_eq!(
            client().get(site.srv.url("/t/")).send().unwrap().status(),
            200
        );
    }
    assert!(back.requests() >= 10);
    stop.store(true, Ordering::SeqCst);
    let (served, failures) = others.join().unwrap();
    assert!(failures.is_empty(), "other routes failed: {failures:?}");
    assert!(served > 10, "other routes served only {served}");
}

#[test]
fn a_fastcgi_backend_that_accepts_and_never_answers_is_504() {
    // A listener that never calls accept: connections complete in its
    // backlog, requests are written into it, and nothing ever comes back.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let site = site("10s", 64, Some(silent.local_addr().unwrap()));
    let stop = Arc::new(AtomicBool::new(false));
    let others = other_routes(site.srv.addr(), stop.clone());
    for _ in 0..3 {
        let started = Instant::now();
        let resp = client().get(site.srv.url("/t/")).send().unwrap();
        assert_eq!(resp.status(), 504);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    }
    stop.store(true, Ordering::SeqCst);
    let (served, failures) = others.join().unwrap();
    assert!(failures.is_empty(), "other routes failed: {failures:?}");
    assert!(served > 0);
    drop(silent);
}

#[test]
fn a_fastcgi_backend_sending_garbage_or_refusing_is_502_and_others_are_unaffected() {
    let backend = FcgiBackend::start(8);
    let site = site("10s", 64, Some(backend.addr));
    let stop = Arc::new(AtomicBool::new(false));
    let others = other_routes(site.srv.addr(), stop.clone());
    for path in [
        "/t/garbage",
        "/t/wrong-id",
        "/t/close-early",
        "/t/close-mid",
    ] {
        let status = client()
            .get(site.srv.url(path))
            .send()
            .map(|r| (r.status().as_u16(), r.text().is_ok()));
        match path {
            // Its head came through before the close: 200, then an abort.
            "/t/close-mid" => assert!(matches!(status, Ok((200, false)) | Err(_)), "{status:?}"),
            _ => assert_eq!(status.unwrap().0, 502, "{path}"),
        }
    }
    backend.stop();
    assert_eq!(
        client().get(site.srv.url("/t/")).send().unwrap().status(),
        502
    );
    stop.store(true, Ordering::SeqCst);
    let (_, failures) = others.join().unwrap();
    assert!(failures.is_empty(), "other routes failed: {failures:?}");
}
