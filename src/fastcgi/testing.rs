//! A scripted FastCGI backend for unit tests: it decodes what it is sent and
//! answers with whatever bytes a test script returns, right or wrong.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_util::codec::FramedRead;

use super::params;
use super::record::{self, kind, RecordCodec};
use crate::config::BackendAddr;

/// What the backend received for one request.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub keep_conn: bool,
    pub params: Vec<(String, String)>,
    pub stdin: Vec<u8>,
    /// Records received, in order, as (type, content length).
    pub records: Vec<(u8, usize)>,
    /// The 0-based connection this request came on.
    pub conn: usize,
}

impl Seen {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One thing the backend does in answer.
#[derive(Debug, Clone)]
pub enum Step {
    Send(Vec<u8>),
    Sleep(Duration),
    Close,
}

type Script = dyn Fn(&Seen) -> Vec<Step> + Send + Sync;

/// How the fake behaves.
pub struct Options {
    /// FCGI_MAX_CONNS to answer FCGI_GET_VALUES with; `None`: UNKNOWN_TYPE.
    pub max_conns: Option<usize>,
    /// Answer right after PARAMS, before reading STDIN.
    pub answer_early: bool,
    /// Serve one connection at a time, like a single php-fpm worker.
    pub one_at_a_time: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_conns: Some(8),
            answer_early: false,
            one_at_a_time: false,
        }
    }
}

/// A running fake backend.
pub struct Fake {
    pub addr: BackendAddr,
    /// Connections accepted, not counting FCGI_GET_VALUES ones.
    pub accepts: Arc<AtomicUsize>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

/// STDOUT records for `data` on request 1.
pub fn stdout(data: &[u8]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    record::put_stream(&mut buf, kind::STDOUT, 1, data);
    buf.to_vec()
}

/// A complete END_REQUEST on request 1.
pub fn end(app_status: u32) -> Vec<u8> {
    let mut body = [0u8; 8];
    body[..4].copy_from_slice(&app_status.to_be_bytes());
    let mut buf = BytesMut::new();
    record::put_record(&mut buf, kind::END_REQUEST, 1, &body);
    buf.to_vec()
}

/// A whole well-formed answer: the response text as STDOUT, then the end.
pub fn answer(text: &str) -> Vec<Step> {
    let mut bytes = stdout(text.as_bytes());
    bytes.extend(end(0));
    vec![Step::Send(bytes)]
}

pub async fn start<F>(options: Options, script: F) -> Fake
where
    F: Fn(&Seen) -> Vec<Step> + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = BackendAddr::Tcp(listener.local_addr().unwrap().to_string());
    let accepts = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let script: Arc<Script> = Arc::new(script);
    let options = Arc::new(options);
    let fake = Fake {
        addr,
        accepts: accepts.clone(),
        seen: seen.clone(),
    };
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let (script, options, accepts, seen) = (
                script.clone(),
                options.clone(),
                accepts.clone(),
                seen.clone(),
            );
            if options.one_at_a_time {
                serve(sock, script, options, accepts, seen).await;
            } else {
                tokio::spawn(serve(sock, script, options, accepts, seen));
            }
        }
    });
    fake
}

async fn serve(
    mut sock: tokio::net::TcpStream,
    script: Arc<Script>,
    options: Arc<Options>,
    accepts: Arc<AtomicUsize>,
    seen_log: Arc<Mutex<Vec<Seen>>>,
) {
    let (rd, mut wr) = sock.split();
    let mut records = FramedRead::new(rd, RecordCodec);
    let mut conn_no = None;
    loop {
        let mut seen = Seen::default();
        let mut params_raw = BytesMut::new();
        let mut params_done = false;
        let mut answered = false;
        loop {
            let Some(Ok(rec)) = records.next().await else {
                return;
            };
            if rec.kind == kind::GET_VALUES {
                let mut out = BytesMut::new();
                match options.max_conns {
                    Some(n) => {
                        let mut body = BytesMut::new();
                        params::put_pair(&mut body, b"FCGI_MAX_CONNS", n.to_string().as_bytes());
                        record::put_record(&mut out, kind::GET_VALUES_RESULT, 0, &body);
                    }
                    None => record::put_record(
                        &mut out,
                        kind::UNKNOWN_TYPE,
                        0,
                        &[9, 0, 0, 0, 0, 0, 0, 0],
                    ),
                }
                let _ = wr.write_all(&out).await;
                return;
            }
            let conn = *conn_no.get_or_insert_with(|| accepts.fetch_add(1, Ordering::SeqCst));
            seen.conn = conn;
            seen.records.push((rec.kind, rec.content.len()));
            match rec.kind {
                kind::BEGIN_REQUEST => seen.keep_conn = rec.content[2] & 1 == 1,
                kind::PARAMS if rec.content.is_empty() => {
                    params_done = true;
                    let pairs = params::decode_pairs(&params_raw.split().freeze()).unwrap();
                    seen.params = pairs
                        .into_iter()
                        .map(|(n, v)| {
                            (
                                String::from_utf8_lossy(&n).into_owned(),
                                String::from_utf8_lossy(&v).into_owned(),
                            )
                        })
                        .collect();
                }
                kind::PARAMS => params_raw.extend_from_slice(&rec.content),
                kind::STDIN if rec.content.is_empty() => break,
                kind::STDIN => seen.stdin.extend_from_slice(&rec.content),
                kind::ABORT_REQUEST => return,
                _ => {}
            }
            if params_done && options.answer_early && !answered {
                answered = true;
                seen_log.lock().unwrap().push(seen.clone());
                if !perform(&mut wr, script(&seen)).await {
                    return;
                }
            }
        }
        if !answered {
            seen_log.lock().unwrap().push(seen.clone());
            if !perform(&mut wr, script(&seen)).await {
                return;
            }
        }
        if !seen.keep_conn {
            return;
        }
    }
}

/// Run the steps; false when the connection was closed.
async fn perform(wr: &mut tokio::net::tcp::WriteHalf<'_>, steps: Vec<Step>) -> bool {
    for step in steps {
        match step {
            Step::Send(bytes) => {
                if wr.write_all(&bytes).await.is_err() {
                    return false;
                }
            }
            Step::Sleep(d) => tokio::time::sleep(d).await,
            Step::Close => return false,
        }
    }
    true
}
