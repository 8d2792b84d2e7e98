use std::sync::atomic::Ordering;
use std::time::Duration;

use super::*;
use crate::error::ErrorKind;
use crate::fastcgi::testing::{self, answer, Options, Step};
use crate::fastcgi::upstream::Upstream;

fn settings(keepalive: usize, max_conns: Option<usize>) -> BackendSettings {
    BackendSettings {
        connect_timeout: Duration::from_secs(1),
        keepalive,
        max_conns,
        copies: 1,
    }
}

fn refused_addr() -> BackendAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    BackendAddr::Tcp(addr)
}

#[tokio::test]
async fn capacity_comes_from_get_values() {
    let fake = testing::start(
        Options {
            max_conns: Some(3),
            ..Options::default()
        },
        |_| answer("\r\n"),
    )
    .await;
    let b = Backend::new(fake.addr.clone(), settings(8, None));
    drop(b.checkout(Duration::from_secs(1)).await.unwrap());
    assert_eq!(b.known_capacity(), Some(3));

    let b = Backend::new(fake.addr.clone(), settings(8, Some(2)));
    drop(b.checkout(Duration::from_secs(1)).await.unwrap());
    assert_eq!(b.known_capacity(), Some(2), "the route may lower it");

    let b = Backend::new(fake.addr.clone(), settings(8, Some(50)));
    drop(b.checkout(Duration::from_secs(1)).await.unwrap());
    assert_eq!(
        b.known_capacity(),
        Some(3),
        "but never raise it past the backend's word"
    );
}

#[tokio::test]
async fn capacity_defaults_when_not_answered() {
    let fake = testing::start(
        Options {
            max_conns: None,
            ..Options::default()
        },
        |_| answer("\r\n"),
    )
    .await;
    let b = Backend::new(fake.addr.clone(), settings(8, None));
    drop(b.checkout(Duration::from_secs(1)).await.unwrap());
    assert_eq!(b.known_capacity(), Some(DEFAULT_CAPACITY));
    let b = Backend::new(fake.addr.clone(), settings(8, Some(5)));
    drop(b.checkout(Duration::from_secs(1)).await.unwrap());
    assert_eq!(b.known_capacity(), Some(5));
}

#[tokio::test]
async fn busy_plus_idle_never_exceed_capacity_and_excess_waits() {
    let fake = testing::start(
        Options {
            max_conns: Some(2),
            ..Options::default()
        },
        |_| answer("\r\n"),
    )
    .await;
    let b = Backend::new(fake.addr.clone(), settings(8, None));
    let mut c1 = b.checkout(Duration::from_secs(1)).await.unwrap();
    let mut c2 = b.checkout(Duration::from_secs(1)).await.unwrap();
    c1.split().1.mark();
    c2.split().1.mark();
    assert_eq!(b.open_connections(), 2);
    // A third waits, then gives up.
    let started = std::time::Instant::now();
    assert!(matches!(
        b.checkout(Duration::from_millis(150)).await,
        Err(CheckoutError::Full)
    ));
    assert!(started.elapsed() >= Duration::from_millis(140));
    // A waiting request gets the connection that is released.
    let waiter = {
        let b = b.clone();
        tokio::spawn(async move { b.checkout(Duration::from_secs(2)).await.map(|c| c.reused()) })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    c1.release();
    assert!(
        matches!(waiter.await.unwrap(), Ok(true)),
        "the idle one is handed over"
    );
    drop(c2);
    assert!(b.open_connections() <= 2);
}

#[tokio::test]
async fn idle_connections_are_capped_by_keepalive() {
    let fake = testing::start(Options::default(), |_| answer("\r\n")).await;
    let b = Backend::new(fake.addr.clone(), settings(1, None));
    let c1 = b.checkout(Duration::from_secs(1)).await.unwrap();
    let c2 = b.checkout(Duration::from_secs(1)).await.unwrap();
    c1.release();
    c2.release();
    assert_eq!(b.idle_connections(), 1);
    assert_eq!(b.open_connections(), 1);
}

/// A backend of guessed capacity (it does not report it, the route does not
/// set it) with two connections: the first answered, the second not yet.
async fn guessed_with_one_unanswered() -> (testing::Fake, Arc<Backend>, PooledConn, PooledConn) {
    let silent = Options {
        max_conns: None,
        ..Options::default()
    };
    let fake = testing::start(silent, |_| answer("\r\n")).await;
    let b = Backend::new(fake.addr.clone(), settings(4, None));
    let mut answered = b.checkout(Duration::from_secs(1)).await.unwrap();
    answered.split().1.mark();
    let unanswered = b.checkout(Duration::from_secs(1)).await.unwrap();
    (fake, b, answered, unanswered)
}

#[tokio::test]
async fn released_connections_close_while_a_new_one_stalls() {
    let (_fake, b, c1, c2) = guessed_with_one_unanswered().await;
    tokio::time::sleep(STALLED_AFTER).await;
    c1.release();
    assert_eq!(
        b.idle_connections(),
        0,
        "c2 may be queued behind c1 at the backend"
    );
    c2.release();
    assert_eq!(b.idle_connections(), 1);
    // The stall taught the pool the backend serves one connection: it
    // queues for it rather than open another that would queue at the
    // backend.
    assert_eq!(b.learnt_ceiling(), Some(1));
    let c3 = b.checkout(Duration::from_secs(1)).await.unwrap();
    assert!(c3.reused());
    assert!(matches!(
        b.checkout(Duration::from_millis(50)).await,
        Err(CheckoutError::Full)
    ));
    assert_eq!(b.open_connections(), 1);
}

#[tokio::test]
async fn a_young_unanswered_connection_does_not_close_released_ones() {
    let (_fake, b, c1, mut c2) = guessed_with_one_unanswered().await;
    c1.release();
    assert_eq!(
        b.idle_connections(),
        1,
        "c2 has only just been opened: a thread-per-connection backend answers it soon"
    );
    // Answered, it no longer counts, however old it grows.
    c2.split().1.mark();
    tokio::time::sleep(STALLED_AFTER).await;
    c2.release();
    assert_eq!(b.idle_connections(), 2);
}

#[tokio::test]
async fn stale_idle_connections_are_skipped() {
    let fake = testing::start(Options::default(), |_| vec![Step::Close]).await;
    let b = Backend::new(fake.addr.clone(), settings(4, None));
    let mut c = b.checkout(Duration::from_secs(1)).await.unwrap();
    // Make the fake see a request so it closes the connection.
    tokio::io::AsyncWriteExt::write_all(c.split().0, &{
        let mut buf = bytes::BytesMut::new();
        crate::fastcgi::record::put_begin_request(&mut buf, 1, true);
        crate::fastcgi::params::params_records(&mut buf, 1, std::iter::empty());
        crate::fastcgi::record::put_record(&mut buf, 5, 1, b"");
        buf
    })
    .await
    .unwrap();
    c.release();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let c = b.checkout(Duration::from_secs(1)).await.unwrap();
    assert!(!c.reused(), "the closed idle connection was replaced");
}

#[tokio::test]
async fn failover_and_passive_health() {
    let fake = testing::start(Options::default(), |_| answer("\r\n")).await;
    let dead = Backend::new(refused_addr(), settings(4, None));
    let live = Backend::new(fake.addr.clone(), settings(4, None));
    let up = Upstream::new(vec![dead.clone(), live.clone()]);
    for _ in 0..4 {
        let conn = up.checkout(Duration::from_secs(1)).await.unwrap();
        assert!(Arc::ptr_eq(conn.backend(), &live));
    }
    assert!(
        dead.down_until().is_some(),
        "the refusing backend is marked down"
    );
}

#[tokio::test]
async fn least_outstanding_spreads_load() {
    let a = testing::start(Options::default(), |_| answer("\r\n")).await;
    let c = testing::start(Options::default(), |_| answer("\r\n")).await;
    let up = Upstream::new(vec![
        Backend::new(a.addr.clone(), settings(4, None)),
        Backend::new(c.addr.clone(), settings(4, None)),
    ]);
    let c1 = up.checkout(Duration::from_secs(1)).await.unwrap();
    let c2 = up.checkout(Duration::from_secs(1)).await.unwrap();
    assert!(
        !Arc::ptr_eq(c1.backend(), c2.backend()),
        "the busy one is avoided"
    );
}

#[tokio::test]
async fn all_down_is_bad_gateway() {
    let up = Upstream::new(vec![
        Backend::new(refused_addr(), settings(4, None)),
        Backend::new(
            BackendAddr::Unix("/nonexistent/php.sock".into()),
            settings(4, None),
        ),
    ]);
    for _ in 0..3 {
        let err = up.checkout(Duration::from_secs(1)).await.err().unwrap();
        assert_eq!(err.kind, ErrorKind::BadGateway);
    }
}

#[tokio::test]
async fn full_backend_is_overloaded() {
    let fake = testing::start(
        Options {
            max_conns: Some(1),
            ..Options::default()
        },
        |_| answer("\r\n"),
    )
    .await;
    let up = Upstream::new(vec![Backend::new(fake.addr.clone(), settings(4, None))]);
    let _held = up.checkout(Duration::from_secs(1)).await.unwrap();
    let err = up.checkout(Duration::from_millis(50)).await.err().unwrap();
    assert_eq!(err.kind, ErrorKind::Overloaded);
    assert_eq!(
        fake.accepts.load(Ordering::SeqCst),
        0,
        "no request was sent"
    );
}

#[tokio::test]
async fn a_backend_that_goes_away_fails_cleanly() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = BackendAddr::Tcp(listener.local_addr().unwrap().to_string());
    let b = Backend::new(addr, settings(4, Some(2)));
    let accepting = tokio::spawn(async move {
        let _ = listener.accept().await; // the FCGI_GET_VALUES query
        let _ = listener.accept().await;
    });
    drop(b.checkout(Duration::from_secs(1)).await.unwrap());
    accepting.abort();
    let _ = accepting.await;
    // Capacity is known now; the connect itself fails, and the slot comes back.
    assert!(matches!(
        b.checkout(Duration::from_secs(1)).await,
        Err(CheckoutError::Connect(_))
    ));
    assert_eq!(b.open_connections(), 0);
}

#[tokio::test]
async fn released_connections_are_kept_when_the_capacity_is_known() {
    // Reported (FCGI_MAX_CONNS 8): keeping them cannot oversubscribe the
    // backend, and closing them would cost a connect per request under load.
    let fake = testing::start(Options::default(), |_| answer("\r\n")).await;
    let b = Backend::new(fake.addr.clone(), settings(4, None));
    let mut c1 = b.checkout(Duration::from_secs(1)).await.unwrap();
    c1.split().1.mark();
    let c2 = b.checkout(Duration::from_secs(1)).await.unwrap();
    c1.release();
    assert_eq!(b.idle_connections(), 1);
    c2.release();
    assert_eq!(b.idle_connections(), 2);
}

#[tokio::test]
async fn a_connection_handed_to_a_waiter_that_gave_up_is_not_lost() {
    let fake = testing::start(Options::default(), |_| answer("\r\n")).await;
    let b = Backend::new(fake.addr.clone(), settings(1, Some(1)));
    let c1 = b.checkout(Duration::from_secs(1)).await.unwrap();
    let waiter = {
        let b = b.clone();
        tokio::spawn(async move { b.checkout(Duration::from_secs(5)).await.map(|_| ()) })
    };
    tokio::time::sleep(Duration::from_millis(50)).await; // queued behind c1
                                                         // Handed over while the waiter has not run yet; then the waiter goes away
                                                         // (its client left) without ever taking it.
    c1.release();
    waiter.abort();
    let _ = waiter.await;
    assert_eq!(b.open_connections(), 1, "the handed connection came back");
    let again = tokio::time::timeout(Duration::from_secs(1), b.checkout(Duration::from_secs(1)))
        .await
        .expect("not stuck behind a lost slot")
        .unwrap();
    assert!(again.reused());
}
