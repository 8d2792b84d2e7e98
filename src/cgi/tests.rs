//! The handler driven directly, with real programs in a temp dir.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http::{Request, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};

use super::*;
use crate::body::BoxError;
use crate::config::CgiRoute;
use crate::gateway::testutil;

struct Fixture {
    tmp: tempfile::TempDir,
    ctx: RequestCtx,
    rt: Runtime,
}

fn fixture(scripts: &[(&str, &str)], tweak: impl FnOnce(&mut CgiRoute)) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cgi");
    fs::create_dir(&dir).unwrap();
    for (name, text) in scripts {
        let path = dir.join(name);
        fs::write(&path, text).unwrap();
        let mode = if name.ends_with(".txt") { 0o644 } else { 0o755 };
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    }
    let mut route = CgiRoute {
        prefix: "/cgi-bin/".into(),
        dir: dir.canonicalize().unwrap(),
        interpreters: vec![(".py".into(), vec!["python3".into()])],
        timeout: Duration::from_secs(10),
        max_processes: 8,
        queue_timeout: Duration::from_secs(10),
        env: vec![("ROUTE_VAR".into(), "from-route".into())],
        pass_env: vec!["PATH".into()],
        pass_authorization: false,
        compress: false,
    };
    tweak(&mut route);
    let mut config = testutil::config();
    config.document_root = Some(tmp.path().to_path_buf());
    config.cgi = vec![route];
    let rt = Runtime::new(&config);
    let ctx = testutil::ctx_with(config, "127.0.0.1:40000", "127.0.0.1:8080", false);
    Fixture { tmp, ctx, rt }
}

impl Fixture {
    fn dir(&self) -> std::path::PathBuf {
        self.tmp.path().join("cgi")
    }

    async fn run(&self, req: Request<RequestBody>) -> Result<Reply, Error> {
        let path = percent_encoding::percent_decode_str(req.uri().path())
            .decode_utf8()
            .unwrap()
            .into_owned();
        let (parts, body) = req.into_parts();
        handle(&self.rt, 0, &parts, body, &path, &self.ctx).await
    }

    async fn get(&self, uri: &str) -> Result<Reply, Error> {
        self.run(Request::get(uri).body(empty()).unwrap()).await
    }
}

fn empty() -> RequestBody {
    crate::body::empty_request_body()
}

fn full(data: impl Into<Bytes>) -> RequestBody {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn chunked(parts: Vec<&'static [u8]>) -> RequestBody {
    let frames = parts
        .into_iter()
        .map(|p| Ok::<_, BoxError>(Frame::data(Bytes::from_static(p))));
    StreamBody::new(stream::iter(frames)).boxed_unsync()
}

fn response(reply: Result<Reply, Error>) -> Response<Body> {
    match reply {
        Ok(Reply::Response(r)) => r,
        Ok(Reply::LocalRedirect(to)) => panic!("unexpected local redirect to {to}"),
        Err(e) => panic!("unexpected error {e}"),
    }
}

fn error_kind(reply: Result<Reply, Error>) -> ErrorKind {
    match reply {
        Err(e) => e.kind,
        Ok(_) => panic!("expected an error"),
    }
}

async fn text(r: Response<Body>) -> String {
    let bytes = r.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// True once `pid` is gone (or a zombie of a parent that is not us).
fn dead(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

async fn wait_dead(pid: u32) -> bool {
    for _ in 0..100 {
        if dead(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

async fn read_pid(path: &Path) -> u32 {
    for _ in 0..200 {
        if let Ok(text) = fs::read_to_string(path) {
            if let Ok(pid) = text.trim().parse() {
                return pid;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no pid in {}", path.display());
}

const ENV_SH: &str = "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\nenv | sort\n";
const ECHO_SH: &str = "#!/bin/sh\nprintf 'Content-Type: application/octet-stream\\nX-Len: %s\\n\\n' \"$CONTENT_LENGTH\"\ncat\n";
/// Writes its pid and its own child's pid, then waits on that child.
const SLEEP_SH: &str = "#!/bin/sh\necho $$ > leader.pid\nsleep 30 &\necho $! > child.pid\nwait\n";

#[tokio::test]
async fn hello_document() {
    let fx = fixture(
        &[(
            "hello",
            "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\nX-A: 1\\r\\n\\r\\nhello\\n'\n",
        )],
        |_| {},
    );
    let r = response(fx.get("/cgi-bin/hello").await);
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "text/plain");
    assert_eq!(r.headers()["x-a"], "1");
    assert_eq!(text(r).await, "hello\n");
    assert!(wait_dead_children(&fx.rt).await);
}

async fn wait_dead_children(rt: &Runtime) -> bool {
    for _ in 0..100 {
        if rt.children() == 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn environment_is_exact() {
    let fx = fixture(&[("env", ENV_SH)], |_| {});
    let r = response(fx.get("/cgi-bin/env/a%20b/c?x=%41+1").await);
    let env = text(r).await;
    let has = |line: &str| env.lines().any(|l| l == line);
    assert!(has("PATH_INFO=/a b/c"), "{env}");
    assert!(has("QUERY_STRING=x=%41+1"), "{env}");
    assert!(has("SCRIPT_NAME=/cgi-bin/env"), "{env}");
    assert!(has("GATEWAY_INTERFACE=CGI/1.1"), "{env}");
    assert!(has("ROUTE_VAR=from-route"), "{env}");
    assert!(
        has(&format!(
            "PATH_TRANSLATED={}/a b/c",
            fx.tmp.path().display()
        )),
        "{env}"
    );
    assert!(!env.contains("CONTENT_LENGTH"), "{env}");
    assert!(env.lines().any(|l| l.starts_with("PATH=")), "{env}");
    // Nothing else from our own environment.
    assert!(!env.lines().any(|l| l.starts_with("CARGO")), "{env}");
    assert!(!env.lines().any(|l| l.starts_with("HOME=")), "{env}");
}

#[tokio::test]
async fn post_body_is_echoed() {
    let fx = fixture(&[("echo", ECHO_SH)], |_| {});
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let req = Request::post("/cgi-bin/echo")
        .header("content-length", data.len())
        .body(full(data.clone()))
        .unwrap();
    let r = response(fx.run(req).await);
    assert_eq!(r.headers()["x-len"], "3000000");
    let body = r.into_body().collect().await.unwrap().to_bytes();
    assert!(body == data, "echoed body differs");
}

#[tokio::test]
async fn chunked_body_is_spooled_with_its_length() {
    let fx = fixture(&[("echo", ECHO_SH)], |_| {});
    let req = Request::post("/cgi-bin/echo")
        .header("transfer-encoding", "chunked")
        .body(chunked(vec![b"hello ", b"chunked ", b"world"]))
        .unwrap();
    let r = response(fx.run(req).await);
    assert_eq!(r.headers()["x-len"], "19");
    assert_eq!(text(r).await, "hello chunked world");
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let fx = fixture(&[("echo", ECHO_SH)], |_| {});
    let mut ctx = fx.ctx.clone();
    let mut config = (*ctx.config).clone();
    config.limits.max_request_body = 10;
    ctx.config = Arc::new(config);
    let req = Request::post("/cgi-bin/echo")
        .header("content-length", "11")
        .body(full(&b"01234567890"[..]))
        .unwrap();
    let (parts, body) = req.into_parts();
    let reply = handle(&fx.rt, 0, &parts, body, "/cgi-bin/echo", &ctx).await;
    assert_eq!(error_kind(reply), ErrorKind::PayloadTooLarge);
    let req = Request::post("/cgi-bin/echo")
        .header("transfer-encoding", "chunked")
        .body(chunked(vec![b"0123456", b"7890"]))
        .unwrap();
    let (parts, body) = req.into_parts();
    let reply = handle(&fx.rt, 0, &parts, body, "/cgi-bin/echo", &ctx).await;
    assert_eq!(error_kind(reply), ErrorKind::PayloadTooLarge);
}

#[tokio::test]
async fn a_program_that_ignores_stdin_still_answers() {
    // The body is larger than a pipe buffer and never read.
    let fx = fixture(
        &[(
            "hi",
            "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nhi'\n",
        )],
        |_| {},
    );
    let data = vec![b'x'; 1 << 20];
    let req = Request::post("/cgi-bin/hi")
        .header("content-length", data.len())
        .body(full(data))
        .unwrap();
    assert_eq!(text(response(fx.run(req).await)).await, "hi");
}

#[tokio::test]
async fn bad_output_maps_to_500_and_502() {
    let fx = fixture(
        &[
            ("noblank", "#!/bin/sh\nprintf 'Content-Type: text/plain\\n'\n"),
            ("nothing", "#!/bin/sh\nexit 0\n"),
            ("fail", "#!/bin/sh\necho oops >&2\nexit 3\n"),
            ("noct", "#!/bin/sh\nprintf 'X-A: 1\\n\\nbody'\n"),
            ("te", "#!/bin/sh\nprintf 'Content-Type: text/plain\\nTransfer-Encoding: chunked\\n\\n0\\r\\n\\r\\n'\n"),
            ("crlf", "#!/bin/sh\nprintf 'Content-Type: text/plain\\nX-A: a\\rb\\n\\n'\n"),
            ("big", "#!/bin/sh\nprintf 'Content-Type: text/plain\\n'\nhead -c 70000 /dev/zero | tr '\\0' a\nprintf ': x\\n\\n'\n"),
            ("plain.txt", "Content-Type: text/plain\n\nsource\n"),
        ],
        |_| {},
    );
    assert_eq!(
        error_kind(fx.get("/cgi-bin/noblank").await),
        ErrorKind::ScriptFailed
    );
    assert_eq!(
        error_kind(fx.get("/cgi-bin/nothing").await),
        ErrorKind::ScriptFailed
    );
    assert_eq!(
        error_kind(fx.get("/cgi-bin/fail").await),
        ErrorKind::ScriptFailed
    );
    assert_eq!(
        error_kind(fx.get("/cgi-bin/noct").await),
        ErrorKind::ScriptFailed
    );
    assert_eq!(
        error_kind(fx.get("/cgi-bin/te").await),
        ErrorKind::BadGateway
    );
    assert_eq!(
        error_kind(fx.get("/cgi-bin/crlf").await),
        ErrorKind::BadGateway
    );
    assert_eq!(
        error_kind(fx.get("/cgi-bin/big").await),
        ErrorKind::BadGateway
    );
    assert_eq!(
        error_kind(fx.get("/cgi-bin/plain.txt").await),
        ErrorKind::Forbidden
    );
    assert_eq!(
        error_kind(fx.get("/cgi-bin/missing").await),
        ErrorKind::NotFound
    );
    assert_eq!(error_kind(fx.get("/cgi-bin/").await), ErrorKind::Forbidden);
    assert!(wait_dead_children(&fx.rt).await);
}

#[tokio::test]
async fn missing_interpreter_is_500() {
    let fx = fixture(&[("x.py", "print('hi')\n")], |r| {
        r.interpreters = vec![(".py".into(), vec!["no-such-interpreter-9".into()])];
    });
    assert_eq!(
        error_kind(fx.get("/cgi-bin/x.py").await),
        ErrorKind::ScriptFailed
    );
    let fx = fixture(&[("badshebang", "#!/no/such/interp\n")], |_| {});
    assert_eq!(
        error_kind(fx.get("/cgi-bin/badshebang").await),
        ErrorKind::ScriptFailed
    );
}

#[tokio::test]
async fn python_interpreter() {
    let py = "import os, sys\nsys.stdout.write('Content-Type: text/plain\\r\\n\\r\\n' + os.environ['REQUEST_METHOD'])\n";
    let fx = fixture(&[("m.py", py)], |_| {});
    fs::set_permissions(fx.dir().join("m.py"), fs::Permissions::from_mode(0o644)).unwrap();
    let r = response(fx.get("/cgi-bin/m.py").await);
    assert_eq!(text(r).await, "GET");
}

#[tokio::test]
async fn timeout_before_headers_is_504_and_kills_the_group() {
    let fx = fixture(&[("sleep", SLEEP_SH)], |r| {
        r.timeout = Duration::from_millis(700)
    });
    let reply = fx.get("/cgi-bin/sleep").await;
    assert_eq!(error_kind(reply), ErrorKind::GatewayTimeout);
    let leader = read_pid(&fx.dir().join("leader.pid")).await;
    let child = read_pid(&fx.dir().join("child.pid")).await;
    assert!(wait_dead(leader).await, "leader {leader} still alive");
    assert!(wait_dead(child).await, "grandchild {child} still alive");
    assert!(wait_dead_children(&fx.rt).await);
}

#[tokio::test]
async fn timeout_mid_body_aborts_the_body() {
    let script = "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nfirst\\n'\necho $$ > leader.pid\nexec sleep 30\n";
    let fx = fixture(&[("slow", script)], |r| {
        r.timeout = Duration::from_millis(700)
    });
    let r = response(fx.get("/cgi-bin/slow").await);
    let mut body = r.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"first\n");
    let err = body.frame().await.unwrap().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    assert!(wait_dead(read_pid(&fx.dir().join("leader.pid")).await).await);
}

#[tokio::test]
async fn dropping_the_body_kills_the_group() {
    let script = "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nfirst\\n'\necho $$ > leader.pid\nsleep 30 &\necho $! > child.pid\nwait\n";
    let fx = fixture(&[("slow", script)], |_| {});
    let r = response(fx.get("/cgi-bin/slow").await);
    let leader = read_pid(&fx.dir().join("leader.pid")).await;
    let child = read_pid(&fx.dir().join("child.pid")).await;
    assert!(!dead(leader));
    drop(r); // the client went away
    assert!(wait_dead(leader).await, "leader {leader} still alive");
    assert!(wait_dead(child).await, "grandchild {child} still alive");
    assert!(wait_dead_children(&fx.rt).await);
}

#[tokio::test]
async fn dropping_the_handler_kills_the_group() {
    let fx = fixture(&[("sleep", SLEEP_SH)], |_| {});
    let pending = tokio::time::timeout(Duration::from_millis(300), fx.get("/cgi-bin/sleep")).await;
    assert!(pending.is_err());
    let leader = read_pid(&fx.dir().join("leader.pid")).await;
    assert!(wait_dead(leader).await, "leader {leader} still alive");
}

#[tokio::test]
async fn kill_all_ends_every_child() {
    let fx = fixture(&[("sleep", SLEEP_SH)], |_| {});
    let request = fx.get("/cgi-bin/sleep");
    let killer = async {
        let leader = read_pid(&fx.dir().join("leader.pid")).await;
        fx.rt.kill_all();
        leader
    };
    let (reply, leader) = tokio::join!(request, killer);
    assert_eq!(error_kind(reply), ErrorKind::ScriptFailed);
    assert!(wait_dead(leader).await);
}

#[tokio::test]
async fn max_processes_gives_503() {
    let fx = fixture(
        &[
            ("sleep", SLEEP_SH),
            ("hello", "#!/bin/sh\nprintf 'Status: 204\\n\\n'\n"),
        ],
        |r| {
            r.max_processes = 1;
            r.queue_timeout = Duration::from_millis(300);
        },
    );
    let busy = fx.get("/cgi-bin/sleep");
    let second = async {
        read_pid(&fx.dir().join("leader.pid")).await;
        let started = Instant::now();
        let reply = fx.get("/cgi-bin/hello").await;
        (reply, started.elapsed())
    };
    tokio::select! {
        _ = busy => panic!("the sleeper ended"),
        (reply, waited) = second => {
            assert_eq!(error_kind(reply), ErrorKind::Overloaded);
            assert!(waited >= Duration::from_millis(300));
        }
    }
    // The sleeper's request future was dropped: its slot comes back.
    let r = response(fx.get("/cgi-bin/hello").await);
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn redirects() {
    let fx = fixture(
        &[
            ("local", "#!/bin/sh\nprintf 'Location: /index.html?x=1\\n\\n'\n"),
            ("client", "#!/bin/sh\nprintf 'Location: http://example.org/\\n\\n'\n"),
            ("localbody", "#!/bin/sh\nprintf 'Location: /x\\nContent-Type: text/plain\\n\\n'\nsleep 0.1\necho moved\n"),
        ],
        |_| {},
    );
    match fx.get("/cgi-bin/local").await {
        Ok(Reply::LocalRedirect(to)) => assert_eq!(to, "/index.html?x=1"),
        _ => panic!("expected a local redirect"),
    }
    let r = response(fx.get("/cgi-bin/client").await);
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(r.headers()["location"], "http://example.org/");
    let r = response(fx.get("/cgi-bin/localbody").await);
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(text(r).await, "moved\n");
}

#[tokio::test]
async fn nph_and_head() {
    let fx = fixture(
        &[
            ("nph-raw", "#!/bin/sh\nprintf 'HTTP/1.1 202 Accepted\\r\\nX-Nph: 1\\r\\n\\r\\nraw body'\n"),
            ("big", "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\nhead -c 1000000 /dev/zero\necho done > done.txt\n"),
        ],
        |_| {},
    );
    let r = response(fx.get("/cgi-bin/nph-raw").await);
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(r.headers()["x-nph"], "1");
    assert_eq!(text(r).await, "raw body");

    let req = Request::head("/cgi-bin/big").body(empty()).unwrap();
    let r = response(fx.run(req).await);
    assert_eq!(r.headers()["content-type"], "text/plain");
    assert_eq!(text(r).await, "");
    // The program was drained, not killed: it ran to its end.
    for _ in 0..100 {
        if fx.dir().join("done.txt").exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the HEAD program did not finish");
}

/// Waits until `$WANT` programs have started (each leaves a file in
/// `$BARRIER`), at most 10 s, then says how many had.
const BARRIER_SH: &str = r#"#!/bin/sh
touch "$BARRIER/$$"
i=0
while [ "$(ls "$BARRIER" | wc -l)" -lt "$WANT" ] && [ $i -lt 200 ]; do
  sleep 0.05
  i=$((i+1))
done
printf 'Content-Type: text/plain\n\n'
ls "$BARRIER" | wc -l
"#;

/// Start `extra` more copies of `script` than the start gate has places,
/// all at once, and check that each saw every copy started: had the gate
/// kept its places, the last ones could not start until the first gave up.
async fn all_start(name: &str, script: &str, extra: usize, tweak: impl FnOnce(&mut CgiRoute)) {
    let barrier = tempfile::tempdir().unwrap();
    let want = Runtime::new(&testutil::config()).starts.available_permits() + extra;
    let fx = fixture(&[(name, script)], |r| {
        tweak(r);
        r.max_processes = want;
        r.env
            .push(("BARRIER".into(), barrier.path().display().to_string()));
        r.env.push(("WANT".into(), want.to_string()));
    });
    let uri = format!("/cgi-bin/{name}");
    let requests = (0..want).map(|_| async { text(response(fx.get(&uri).await)).await });
    for answer in futures_util::future::join_all(requests).await {
        assert_eq!(answer.trim(), want.to_string());
    }
}

#[tokio::test]
async fn waiting_programs_give_back_their_place_in_the_start_gate() {
    all_start("barrier", BARRIER_SH, 4, |_| {}).await;
}

/// Like [`BARRIER_SH`], but never sleeps: it stays on CPU while it waits.
const BARRIER_SPIN_PY: &str = r#"import os, sys, time
d, want = os.environ["BARRIER"], int(os.environ["WANT"])
open(os.path.join(d, str(os.getpid())), "w").close()
end = time.time() + 10
while len(os.listdir(d)) < want and time.time() < end:
    pass
sys.stdout.write("Content-Type: text/plain\n\n%d\n" % len(os.listdir(d)))
"#;

#[tokio::test]
async fn computing_programs_give_back_their_place_in_time() {
    // Past `START_MAX` a program that is still computing gives its place up.
    all_start("spin.py", BARRIER_SPIN_PY, 2, |r| {
        // The interpreter itself: a wrapper (pyenv's shim is a shell script)
        // would wait for its child and give the place back for that reason.
        r.interpreters = vec![(".py".into(), vec!["/usr/bin/python3".into()])];
    })
    .await;
}
