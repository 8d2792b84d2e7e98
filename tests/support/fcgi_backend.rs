//! A small FastCGI responder of our own, for what php-fpm and flup will not
//! do on request: garbage, a close mid-response, silence. It counts the
//! connections it accepts, so connection reuse is visible.
//!
//! It decodes records itself (not with gatehouse's codec, which is what is
//! under test) and picks its behaviour from PATH_INFO:
//!
//! | PATH_INFO | answer |
//! |---|---|
//! | `/env` | every param as `NAME=value` lines |
//! | `/stdin` | CONTENT_LENGTH and the body back |
//! | `/count` | the number of connections accepted so far |
//! | `/garbage` | bytes that are no FastCGI record |
//! | `/wrong-id` | a well-formed response for request id 2 |
//! | `/close-early` | closes before any output |
//! | `/close-mid` | a head and part of the body, then closes |
//! | `/garbage-after-head` | a head and part of the body, then bytes that are no record, in one write |
//! | `/slow` | waits 3 s, then answers |
//! | `/local` | `Location: /t/env` (a local redirect) |
//! | `/remote` | `Location: http://example.com/` without Status |
//! | `/stderr` | a line on FCGI_STDERR, then a normal answer |
//! | `/inject-cr` | a header value with a CR inside (response splitting) |
//! | `/inject-status` | two `Status` headers |
//! | `/inject-name` | a header name with a space in it |
//! | `/flood` | endless output, as fast as gatehouse takes it |
//! | `/declared` | `Content-Length: <query string>` and `hello` |
//! | `/declared-slow` | `Content-Length: 10`, `hello`, `world` 100 ms later, END_REQUEST 100 ms after that |
//! | other | `hello` (`?repeat=N`: N times) |
//!
//! [`FcgiBackend::stop`] kills it (listener and every connection) and
//! [`FcgiBackend::start_on`] brings one back on the same address.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A running test backend on 127.0.0.1, port chosen by the system.
pub struct FcgiBackend {
    pub addr: SocketAddr,
    accepts: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    /// Bytes `/flood` has written so far.
    flooded: Arc<AtomicU64>,
    stopped: Arc<AtomicBool>,
    /// Open connections by number, for `stop`.
    conns: Arc<Mutex<HashMap<usize, TcpStream>>>,
}

impl FcgiBackend {
    /// Start; `max_conns` is what it answers to FCGI_GET_VALUES.
    pub fn start(max_conns: usize) -> FcgiBackend {
        Self::start_on("127.0.0.1:0".parse().unwrap(), max_conns)
    }

    /// Start on `addr` (a stopped backend's address, to bring it back).
    pub fn start_on(addr: SocketAddr, max_conns: usize) -> FcgiBackend {
        let listener = TcpListener::bind(addr).expect("bind");
        let addr = listener.local_addr().unwrap();
        let accepts = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let flooded = Arc::new(AtomicU64::new(0));
        let stopped = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(HashMap::new()));
        let (a, r, f, st, c) = (
            accepts.clone(),
            requests.clone(),
            flooded.clone(),
            stopped.clone(),
            conns.clone(),
        );
        std::thread::spawn(move || {
            for (n, sock) in listener.incoming().enumerate() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(sock) = sock else { continue };
                if let Ok(clone) = sock.try_clone() {
                    c.lock().unwrap().insert(n, clone);
                }
                let (a, r, f, c) = (a.clone(), r.clone(), f.clone(), c.clone());
                std::thread::spawn(move || {
                    serve(sock, max_conns, a, r, f);
                    // The copy kept for `stop` must not hold the connection open.
                    if let Some(clone) = c.lock().unwrap().remove(&n) {
                        let _ = clone.shutdown(std::net::Shutdown::Both);
                    }
                });
            }
        });
        FcgiBackend {
            addr,
            accepts,
            requests,
            flooded,
            stopped,
            conns,
        }
    }

    /// Kill it: stop listening and reset every open connection, as a
    /// crashed backend would.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag and drops the listener.
        let _ = TcpStream::connect(self.addr);
        for (_, conn) in self.conns.lock().unwrap().drain() {
            let _ = conn.shutdown(std::net::Shutdown::Both);
        }
        // The listener is gone once connecting is refused.
        for _ in 0..200 {
            if TcpStream::connect(self.addr).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the test backend on {} did not stop", self.addr);
    }

    /// Bytes written by `/flood` requests so far.
    pub fn flooded(&self) -> u64 {
        self.flooded.load(Ordering::SeqCst)
    }

    /// Connections that carried a request (FCGI_GET_VALUES ones not counted).
    pub fn accepts(&self) -> usize {
        self.accepts.load(Ordering::SeqCst)
    }

    /// Requests answered or at least begun.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

struct Rec {
    kind: u8,
    id: u16,
    content: Vec<u8>,
}

fn read_rec(sock: &mut TcpStream) -> Option<Rec> {
    let mut h = [0u8; 8];
    sock.read_exact(&mut h).ok()?;
    assert_eq!(h[0], 1, "gatehouse sent a record with version {}", h[0]);
    let len = u16::from_be_bytes([h[4], h[5]]) as usize;
    let mut content = vec![0u8; len + h[6] as usize];
    sock.read_exact(&mut content).ok()?;
    content.truncate(len);
    Some(Rec {
        kind: h[1],
        id: u16::from_be_bytes([h[2], h[3]]),
        content,
    })
}

fn rec(kind: u8, id: u16, content: &[u8]) -> Vec<u8> {
    let mut out = vec![1, kind];
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&(content.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(content);
    out
}

fn stdout(id: u16, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in data.chunks(65535) {
        out.extend(rec(6, id, chunk));
    }
    out
}

fn end(id: u16) -> Vec<u8> {
    rec(3, id, &[0; 8])
}

fn pair_len(buf: &[u8], pos: &mut usize) -> usize {
    if buf[*pos] < 0x80 {
        *pos += 1;
        buf[*pos - 1] as usize
    } else {
        let n = u32::from_be_bytes([buf[*pos], buf[*pos + 1], buf[*pos + 2], buf[*pos + 3]]);
        *pos += 4;
        (n & 0x7fff_ffff) as usize
    }
}

fn pairs(buf: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let n = pair_len(buf, &mut pos);
        let v = pair_len(buf, &mut pos);
        let name = String::from_utf8_lossy(&buf[pos..pos + n]).into_owned();
        let value = String::from_utf8_lossy(&buf[pos + n..pos + n + v]).into_owned();
        pos += n + v;
        out.push((name, value));
    }
    out
}

fn encode_pair(out: &mut Vec<u8>, name: &str, value: &str) {
    for len in [name.len(), value.len()] {
        if len < 0x80 {
            out.push(len as u8);
        } else {
            out.extend_from_slice(&(len as u32 | 0x8000_0000).to_be_bytes());
        }
    }
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(value.as_bytes());
}

fn serve(
    mut sock: TcpStream,
    max_conns: usize,
    accepts: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    flooded: Arc<AtomicU64>,
) {
    let mut counted = false;
    loop {
        let mut params = Vec::new();
        let mut stdin = Vec::new();
        let mut keep = false;
        let mut id = 0;
        loop {
            let Some(r) = read_rec(&mut sock) else { return };
            match r.kind {
                9 => {
                    let mut body = Vec::new();
                    encode_pair(&mut body, "FCGI_MAX_CONNS", &max_conns.to_string());
                    encode_pair(&mut body, "FCGI_MAX_REQS", &max_conns.to_string());
                    encode_pair(&mut body, "FCGI_MPXS_CONNS", "0");
                    let _ = sock.write_all(&rec(10, 0, &body));
                    return;
                }
                1 => {
                    if !counted {
                        counted = true;
                        accepts.fetch_add(1, Ordering::SeqCst);
                    }
                    requests.fetch_add(1, Ordering::SeqCst);
                    id = r.id;
                    keep = r.content[2] & 1 == 1;
                }
                2 => return,
                4 => params.extend_from_slice(&r.content),
                5 if r.content.is_empty() => break,
                5 => stdin.extend_from_slice(&r.content),
                _ => {}
            }
        }
        let params = pairs(&params);
        let get = |n: &str| {
            params
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let ok = |body: &str| {
            let mut out = stdout(
                id,
                format!("Content-Type: text/plain\r\n\r\n{body}").as_bytes(),
            );
            out.extend(end(id));
            out
        };
        let out = match get("PATH_INFO").as_str() {
            "/env" => {
                let lines: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
                ok(&(lines.join("\n") + "\n"))
            }
            "/stdin" => {
                let body = format!(
                    "CONTENT_LENGTH={}\n{}",
                    get("CONTENT_LENGTH"),
                    String::from_utf8_lossy(&stdin)
                );
                ok(&body)
            }
            "/count" => ok(&accepts.load(Ordering::SeqCst).to_string()),
            "/garbage" => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi".to_vec(),
            "/wrong-id" => {
                let other = id.wrapping_add(1);
                let mut out = stdout(other, b"Content-Type: text/plain\r\n\r\nnot yours");
                out.extend(end(other));
                out
            }
            "/close-early" => return,
            "/garbage-after-head" => {
                let mut out = stdout(id, b"Content-Type: text/plain\r\n\r\nthe first part");
                out.extend_from_slice(b"this is no record");
                out
            }
            "/close-mid" => {
                let _ = sock.write_all(&stdout(
                    id,
                    b"Content-Type: text/plain\r\n\r\nthe first part",
                ));
                std::thread::sleep(Duration::from_millis(100));
                return;
            }
            "/slow" => {
                std::thread::sleep(Duration::from_secs(3));
                ok("slow")
            }
            "/local" => {
                let mut out = stdout(id, b"Location: /t/env?from=local\r\n\r\n");
                out.extend(end(id));
                out
            }
            "/remote" => {
                let mut out = stdout(id, b"Location: http://example.com/\r\n\r\n");
                out.extend(end(id));
                out
            }
            "/stderr" => {
                let mut out = rec(7, id, b"a warning from the backend\n");
                out.extend(ok("with stderr"));
                out
            }
            "/inject-cr" => {
                let mut out = stdout(
                    id,
                    b"Content-Type: text/plain\r\nX-Note: a\rSet-Cookie: injected=1\r\n\r\nbody",
                );
                out.extend(end(id));
                out
            }
            "/inject-status" => {
                let mut out = stdout(
                    id,
                    b"Status: 200 OK\r\nStatus: 302 Found\r\nContent-Type: text/plain\r\n\r\nbody",
                );
                out.extend(end(id));
                out
            }
            "/inject-name" => {
                let mut out = stdout(
                    id,
                    b"Content-Type: text/plain\r\nSet-Cookie injected: 1\r\n\r\nbody",
                );
                out.extend(end(id));
                out
            }
            "/flood" => {
                if sock
                    .write_all(&stdout(
                        id,
                        b"Content-Type: application/octet-stream\r\n\r\n",
                    ))
                    .is_err()
                {
                    return;
                }
                let chunk = stdout(id, &[b'x'; 65535]);
                while sock.write_all(&chunk).is_ok() {
                    flooded.fetch_add(65535, Ordering::SeqCst);
                }
                return;
            }
            "/declared" => {
                // Content-Length: <QUERY_STRING>, then "hello", whatever it said.
                let head = format!(
                    "Content-Type: text/plain\r\nContent-Length: {}\r\n\r\nhello",
                    get("QUERY_STRING")
                );
                let mut out = stdout(id, head.as_bytes());
                out.extend(end(id));
                out
            }
            "/declared-slow" => {
                // Content-Length: 10 and "hello"; "world" and END_REQUEST
                // each 100 ms later.
                let head = b"Content-Type: text/plain\r\nContent-Length: 10\r\n\r\nhello";
                if sock.write_all(&stdout(id, head)).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
                if sock.write_all(&stdout(id, b"world")).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
                end(id)
            }
            _ => {
                let times = get("QUERY_STRING")
                    .strip_prefix("repeat=")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1);
                ok(&"hello".repeat(times))
            }
        };
        if sock.write_all(&out).is_err() || !keep {
            return;
        }
    }
}
