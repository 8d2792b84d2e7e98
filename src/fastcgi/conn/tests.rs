use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use tokio::io::AsyncReadExt;

use super::*;
use crate::config::BackendAddr;
use crate::fastcgi::pool::{Backend, BackendSettings};
use crate::fastcgi::testing::{self, answer, end, stdout, Options, Step};

fn backend(addr: &BackendAddr, keepalive: usize) -> Arc<Backend> {
    Backend::new(
        addr.clone(),
        BackendSettings {
            connect_timeout: Duration::from_secs(2),
            keepalive,
            max_conns: None,
            copies: 1,
        },
    )
}

fn body(data: Vec<u8>) -> RequestBody {
    http_body_util::Full::new(Bytes::from(data))
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A body that arrives in `chunks` pieces, each after a yield, so it cannot
/// all be prefetched.
fn slow_body(data: Vec<u8>, chunks: usize) -> RequestBody {
    let size = data.len().div_ceil(chunks);
    let parts: Vec<Bytes> = data.chunks(size).map(Bytes::copy_from_slice).collect();
    let stream = futures_util::stream::iter(parts).then(|b| async move {
        tokio::task::yield_now().await;
        Ok::<_, BoxError>(http_body::Frame::data(b))
    });
    http_body_util::StreamBody::new(stream).boxed_unsync()
}

fn request(params: &[(&str, &str)], body: Option<RequestBody>, timeout: Duration) -> Request {
    Request::new(
        params.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
        body,
        timeout,
        RequestId(7),
        true,
    )
    .unwrap_or_else(|_| panic!("request"))
}

/// Run one request and gather its output: (stdout, the final event).
async fn exchange(b: &Arc<Backend>, req: Request) -> (Vec<u8>, Event) {
    let conn = b.checkout(Duration::from_secs(2)).await.unwrap();
    let mut rx = start(conn, req);
    let mut out = Vec::new();
    loop {
        match rx.recv().await.expect("an end or a failure") {
            Event::Stdout(bytes) => out.extend_from_slice(&bytes),
            other => return (out, other),
        }
    }
}

#[tokio::test]
async fn simple_request_and_reuse() {
    let fake = testing::start(Options::default(), |seen| {
        answer(&format!(
            "Content-Type: text/plain\r\n\r\nhello {}",
            seen.param("NAME").unwrap()
        ))
    })
    .await;
    let b = backend(&fake.addr, 4);
    for i in 0..3 {
        let (out, last) = exchange(
            &b,
            request(&[("NAME", "world")], None, Duration::from_secs(5)),
        )
        .await;
        assert_eq!(
            out, b"Content-Type: text/plain\r\n\r\nhello world",
            "request {i}"
        );
        assert!(matches!(last, Event::End(EndRequest { app_status: 0, .. })));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        fake.accepts.load(Ordering::SeqCst),
        1,
        "one connection for three requests"
    );
    assert_eq!(b.idle_connections(), 1);
    let seen = fake.seen.lock().unwrap();
    assert!(seen[0].keep_conn);
    // A GET goes out in one write: BEGIN, PARAMS, empty PARAMS, empty STDIN.
    assert_eq!(
        seen[0].records.iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![kind::BEGIN_REQUEST, kind::PARAMS, kind::PARAMS, kind::STDIN]
    );
}

#[tokio::test]
async fn keepalive_zero_means_no_keep_conn() {
    let fake = testing::start(Options::default(), |_| answer("Status: 204\r\n\r\n")).await;
    let b = backend(&fake.addr, 0);
    for _ in 0..3 {
        let req = Request::new(
            std::iter::empty(),
            None,
            Duration::from_secs(5),
            RequestId(1),
            false,
        )
        .unwrap_or_else(|_| panic!("request"));
        let (_, last) = exchange(&b, req).await;
        assert!(matches!(last, Event::End(_)));
    }
    assert_eq!(fake.accepts.load(Ordering::SeqCst), 3);
    assert!(!fake.seen.lock().unwrap()[0].keep_conn);
    assert_eq!(b.open_connections(), 0);
}

#[tokio::test]
async fn large_body_is_streamed_in_records() {
    let fake = testing::start(Options::default(), |seen| {
        answer(&format!("Status: 200\r\n\r\n{}", seen.stdin.len()))
    })
    .await;
    let b = backend(&fake.addr, 4);
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let (out, _) = exchange(
        &b,
        request(
            &[],
            Some(slow_body(data.clone(), 7)),
            Duration::from_secs(5),
        ),
    )
    .await;
    assert!(out.ends_with(b"300000"));
    let seen = fake.seen.lock().unwrap();
    assert_eq!(seen[0].stdin, data);
    let stdin: Vec<usize> = seen[0]
        .records
        .iter()
        .filter(|r| r.0 == kind::STDIN)
        .map(|r| r.1)
        .collect();
    assert!(stdin.iter().all(|&n| n <= record::MAX_CONTENT));
    assert_eq!(stdin.last(), Some(&0), "STDIN ends with an empty record");
}

#[tokio::test]
async fn small_body_goes_in_the_first_write() {
    let fake = testing::start(Options::default(), |seen| {
        answer(&String::from_utf8_lossy(&seen.stdin))
    })
    .await;
    let b = backend(&fake.addr, 4);
    let req = request(
        &[("CONTENT_LENGTH", "3")],
        Some(body(b"a=1".to_vec())),
        Duration::from_secs(5),
    );
    assert!(
        req.body.is_none(),
        "a body already at hand is read to its end"
    );
    let (out, _) = exchange(&b, req).await;
    assert_eq!(out, b"a=1");
}

#[tokio::test]
async fn params_over_64k_arrive_intact() {
    let fake = testing::start(Options::default(), |seen| {
        let total: usize = seen.params.iter().map(|(n, v)| n.len() + v.len()).sum();
        answer(&format!("\r\n{total}"))
    })
    .await;
    let b = backend(&fake.addr, 4);
    let names: Vec<String> = (0..50).map(|i| format!("HTTP_X_{i:02}")).collect();
    let value = "v".repeat(3000);
    let params: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), value.as_str())).collect();
    let (out, _) = exchange(&b, request(&params, None, Duration::from_secs(5))).await;
    assert_eq!(out, format!("\r\n{}", 50 * (9 + 3000)).as_bytes());
}

#[tokio::test]
async fn backend_answering_before_reading_input_does_not_deadlock() {
    let options = Options {
        answer_early: true,
        ..Options::default()
    };
    // 2 MB out before reading any of 2 MB in: more than socket buffers hold.
    let fake = testing::start(options, |_| {
        let mut out = stdout(b"Status: 200\r\n\r\n");
        out.extend(stdout(&vec![b'o'; 2_000_000]));
        out.extend(end(0));
        vec![Step::Send(out)]
    })
    .await;
    let b = backend(&fake.addr, 4);
    let req = request(
        &[],
        Some(slow_body(vec![b'i'; 2_000_000], 40)),
        Duration::from_secs(5),
    );
    let (out, last) = tokio::time::timeout(Duration::from_secs(10), exchange(&b, req))
        .await
        .expect("no deadlock");
    assert_eq!(out.len(), "Status: 200\r\n\r\n".len() + 2_000_000);
    assert!(matches!(last, Event::End(_)));
}

#[tokio::test]
async fn eof_before_end_request_is_an_error() {
    let fake = testing::start(Options::default(), |_| {
        vec![
            Step::Send(stdout(b"Status: 200\r\n\r\npartial")),
            Step::Close,
        ]
    })
    .await;
    let b = backend(&fake.addr, 4);
    let (out, last) = exchange(&b, request(&[], None, Duration::from_secs(5))).await;
    assert!(out.ends_with(b"partial"));
    assert!(
        matches!(last, Event::Failed(Failure::Backend(_))),
        "{last:?}"
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(b.open_connections(), 0, "never reused");
}

#[tokio::test]
async fn wrong_request_id_is_refused() {
    let fake = testing::start(Options::default(), |_| {
        let mut buf = BytesMut::new();
        record::put_record(&mut buf, kind::STDOUT, 2, b"Status: 200\r\n\r\nnot yours");
        vec![Step::Send(buf.to_vec())]
    })
    .await;
    let b = backend(&fake.addr, 4);
    let (out, last) = exchange(&b, request(&[], None, Duration::from_secs(5))).await;
    assert!(out.is_empty());
    match last {
        Event::Failed(Failure::Backend(err)) => assert_eq!(err.kind(), io::ErrorKind::InvalidData),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn garbage_and_short_end_request_are_errors() {
    for bytes in [
        b"HTTP/1.1 200 OK\r\n\r\n".to_vec(),
        vec![1, kind::END_REQUEST, 0, 1, 0, 2, 0, 0, 0, 0],
        vec![1, 42, 0, 1, 0, 0, 0, 0],
    ] {
        let fake =
            testing::start(Options::default(), move |_| vec![Step::Send(bytes.clone())]).await;
        let b = backend(&fake.addr, 4);
        let (_, last) = exchange(&b, request(&[], None, Duration::from_secs(5))).await;
        assert!(
            matches!(last, Event::Failed(Failure::Backend(_))),
            "{last:?}"
        );
    }
}

#[tokio::test]
async fn silent_backend_times_out() {
    let fake = testing::start(Options::default(), |_| {
        vec![Step::Sleep(Duration::from_secs(5))]
    })
    .await;
    let b = backend(&fake.addr, 4);
    let (_, last) = exchange(&b, request(&[], None, Duration::from_millis(200))).await;
    assert!(
        matches!(last, Event::Failed(Failure::Timeout(_))),
        "{last:?}"
    );
}

#[tokio::test]
async fn the_silence_timer_kept_with_a_connection_counts_each_request_afresh() {
    // One connection for all: its timer outlives requests and fires while
    // the connection is idle, and still bounds only the request at hand.
    let fake = testing::start(Options::default(), |seen| {
        let pause = seen.param("PAUSE_MS").unwrap().parse().unwrap();
        let mut steps = vec![Step::Sleep(Duration::from_millis(pause))];
        steps.extend(answer("\r\nok"));
        steps
    })
    .await;
    let b = backend(&fake.addr, 4);
    let timeout = Duration::from_millis(300);
    for (i, pause) in ["0", "200", "0", "200", "900", "0"].into_iter().enumerate() {
        let (out, last) = exchange(&b, request(&[("PAUSE_MS", pause)], None, timeout)).await;
        if pause == "900" {
            assert!(
                matches!(last, Event::Failed(Failure::Timeout(_))),
                "{last:?}"
            );
        } else {
            assert_eq!(out, b"\r\nok", "request {i}: {last:?}");
        }
        if i == 2 {
            tokio::time::sleep(Duration::from_millis(500)).await; // fires idle
        }
    }
    // The timed-out connection was closed; the others were one connection.
    assert_eq!(fake.accepts.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn stderr_is_not_stdout() {
    let fake = testing::start(Options::default(), |_| {
        let mut buf = BytesMut::new();
        record::put_record(&mut buf, kind::STDERR, 1, b"PHP Warning: something\n");
        let mut out = buf.to_vec();
        out.extend(stdout(b"\r\nok"));
        out.extend(end(3));
        vec![Step::Send(out)]
    })
    .await;
    let b = backend(&fake.addr, 4);
    let (out, last) = exchange(&b, request(&[], None, Duration::from_secs(5))).await;
    assert_eq!(out, b"\r\nok");
    assert!(matches!(last, Event::End(EndRequest { app_status: 3, .. })));
}

#[tokio::test]
async fn stale_reused_connection_is_replaced() {
    // The second request on the first connection finds it closed without an
    // answer (a php-fpm worker that just reached pm.max_requests).
    let fake = testing::start(Options::default(), |seen| {
        if seen.conn == 0 && seen.param("N") == Some("2") {
            vec![Step::Close]
        } else {
            answer("\r\nok")
        }
    })
    .await;
    let b = backend(&fake.addr, 4);
    let (out, _) = exchange(&b, request(&[("N", "1")], None, Duration::from_secs(5))).await;
    assert_eq!(out, b"\r\nok");
    tokio::time::sleep(Duration::from_millis(10)).await;
    let (out, last) = exchange(&b, request(&[("N", "2")], None, Duration::from_secs(5))).await;
    assert_eq!(out, b"\r\nok", "{last:?}");
    assert_eq!(fake.accepts.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn dropped_receiver_aborts_and_closes() {
    let fake = testing::start(Options::default(), |_| {
        vec![
            Step::Send(stdout(b"\r\nstart")),
            Step::Sleep(Duration::from_secs(5)),
        ]
    })
    .await;
    let b = backend(&fake.addr, 4);
    let conn = b.checkout(Duration::from_secs(2)).await.unwrap();
    let mut rx = start(conn, request(&[], None, Duration::from_secs(30)));
    assert!(matches!(rx.recv().await, Some(Event::Stdout(_))));
    drop(rx);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        b.open_connections(),
        0,
        "the connection is closed, not pooled"
    );
}

#[tokio::test]
async fn a_dropped_exchange_tells_the_backend_to_stop() {
    // A backend that answers in part, then reads on: what comes after the
    // answer must be ABORT_REQUEST and then the end of the connection.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = BackendAddr::Tcp(listener.local_addr().unwrap().to_string());
    let peer = tokio::spawn(async move {
        let mut sock = loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut header = [0u8; 2];
            sock.read_exact(&mut header).await.unwrap();
            // The pool's FCGI_GET_VALUES goes unanswered, as flup's does.
            if header[1] == kind::BEGIN_REQUEST {
                break sock;
            }
        };
        let (rd, mut wr) = sock.split();
        let mut records = FramedRead::new(rd, RecordCodec);
        // (The rest of BEGIN_REQUEST's header and its body, then PARAMS.)
        let mut rest = [0u8; 14];
        records.get_mut().read_exact(&mut rest).await.unwrap();
        while let Some(Ok(rec)) = records.next().await {
            if rec.kind == kind::STDIN && rec.content.is_empty() {
                break;
            }
        }
        wr.write_all(&stdout(b"\r\nstart")).await.unwrap();
        let mut after = Vec::new();
        while let Some(Ok(rec)) = records.next().await {
            after.push((rec.kind, rec.request_id));
        }
        after
    });
    let b = backend(&addr, 4);
    let conn = b.checkout(Duration::from_secs(2)).await.unwrap();
    let mut rx = start(conn, request(&[], None, Duration::from_secs(30)));
    let first = rx.recv().await;
    assert!(matches!(first, Some(Event::Stdout(_))), "{first:?}");
    drop(rx);
    let after = tokio::time::timeout(Duration::from_secs(5), peer)
        .await
        .expect("the connection is closed")
        .unwrap();
    assert_eq!(after, vec![(kind::ABORT_REQUEST, REQUEST_ID)]);
    assert_eq!(b.open_connections(), 0);
}

#[tokio::test]
async fn idle_connections_do_not_starve_a_single_worker_backend() {
    // One worker that keeps serving a kept-alive connection until it closes,
    // and no FCGI_MAX_CONNS answer: php-fpm with pm.max_children = 1.
    let options = Options {
        max_conns: None,
        one_at_a_time: true,
        ..Options::default()
    };
    let fake = testing::start(options, |seen| {
        let mut steps = vec![];
        if seen.param("SLOW").is_some() {
            steps.push(Step::Sleep(Duration::from_millis(300)));
        }
        steps.extend(answer("\r\nok"));
        steps
    })
    .await;
    let b = backend(&fake.addr, 4);
    let slow = {
        let b = b.clone();
        tokio::spawn(async move {
            exchange(&b, request(&[("SLOW", "1")], None, Duration::from_secs(5)))
                .await
                .0
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    // This one's connection waits in the backlog behind the slow one's.
    let (out, last) = exchange(&b, request(&[], None, Duration::from_secs(3))).await;
    assert_eq!(out, b"\r\nok", "{last:?}");
    assert_eq!(slow.await.unwrap(), b"\r\nok");
}

#[tokio::test]
async fn bytes_after_end_request_retire_the_connection() {
    // The connection keeps its read buffer between requests: leftover bytes
    // must never reach the next request, so such a connection is not reused.
    let fake = testing::start(Options::default(), |seen| {
        let mut bytes = stdout(format!("\r\nanswer {}", seen.param("N").unwrap()).as_bytes());
        bytes.extend(end(0));
        if seen.param("N") == Some("1") {
            bytes.extend(stdout(b"stray"));
        }
        vec![Step::Send(bytes)]
    })
    .await;
    let b = backend(&fake.addr, 4);
    let (out, _) = exchange(&b, request(&[("N", "1")], None, Duration::from_secs(5))).await;
    assert_eq!(out, b"\r\nanswer 1");
    tokio::time::sleep(Duration::from_millis(10)).await;
    let (out, last) = exchange(&b, request(&[("N", "2")], None, Duration::from_secs(5))).await;
    assert_eq!(out, b"\r\nanswer 2", "{last:?}");
    assert_eq!(fake.accepts.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn answers_larger_than_the_read_buffer_stay_whole_on_a_reused_connection() {
    // Records split across reads, and a buffer whose last chunks may still be
    // alive when the next request reads into it.
    let fake = testing::start(Options::default(), |seen| {
        let n: u8 = seen.param("N").unwrap().parse().unwrap();
        let body = vec![b'a' + n; 100_000 + usize::from(n) * 7];
        let mut text = b"\r\n".to_vec();
        text.extend(body);
        let mut bytes = stdout(&text);
        bytes.extend(end(0));
        vec![Step::Send(bytes)]
    })
    .await;
    let b = backend(&fake.addr, 4);
    let mut kept = Vec::new();
    for n in 0..4u8 {
        let conn = b.checkout(Duration::from_secs(2)).await.unwrap();
        let req = request(&[("N", &n.to_string())], None, Duration::from_secs(5));
        let mut rx = start(conn, req);
        let mut chunks = Vec::new();
        let last = loop {
            match rx.recv().await.expect("an end or a failure") {
                Event::Stdout(bytes) => chunks.push(bytes),
                other => break other,
            }
        };
        assert!(matches!(last, Event::End(_)), "{last:?}");
        let out: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        let mut want = b"\r\n".to_vec();
        want.extend(vec![b'a' + n; 100_000 + usize::from(n) * 7]);
        assert!(out == want, "request {n}: {} bytes", out.len());
        kept.push(chunks); // chunks of earlier answers stay alive meanwhile
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for (n, chunks) in kept.iter().enumerate() {
        let n = u8::try_from(n).unwrap();
        assert!(chunks
            .iter()
            .all(|c| c.iter().all(|&x| x == b'a' + n || x == b'\r' || x == b'\n')));
    }
    assert_eq!(fake.accepts.load(Ordering::SeqCst), 1);
}
