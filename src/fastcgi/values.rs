//! FCGI_GET_VALUES (FastCGI specification, section 4.1): ask a backend how
//! many connections and requests it can serve before sizing its pool.
//!
//! php-fpm answers and then closes the connection, so the query gets a
//! connection of its own.

use std::io;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio_util::codec::FramedRead;

use super::params;
use super::record::{self, kind, RecordCodec, MANAGEMENT_ID};
use super::stream::BackendStream;

pub const MAX_CONNS: &str = "FCGI_MAX_CONNS";
pub const MAX_REQS: &str = "FCGI_MAX_REQS";
pub const MPXS_CONNS: &str = "FCGI_MPXS_CONNS";

/// What a backend said about itself; a value it left out is `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackendValues {
    pub max_conns: Option<usize>,
    pub max_reqs: Option<usize>,
    pub mpxs_conns: Option<bool>,
}

/// The GET_VALUES record asking for the three variables.
pub fn query_record() -> BytesMut {
    let mut body = BytesMut::new();
    for name in [MAX_CONNS, MAX_REQS, MPXS_CONNS] {
        params::put_pair(&mut body, name.as_bytes(), b"");
    }
    let mut buf = BytesMut::new();
    record::put_record(&mut buf, kind::GET_VALUES, MANAGEMENT_ID, &body);
    buf
}

/// Read the variables out of a GET_VALUES_RESULT body. Values that are not
/// decimal numbers are ignored.
pub fn parse_result(content: &bytes::Bytes) -> io::Result<BackendValues> {
    let mut values = BackendValues::default();
    for (name, value) in params::decode_pairs(content)? {
        let number = std::str::from_utf8(&value)
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok());
        match &name[..] {
            n if n == MAX_CONNS.as_bytes() => values.max_conns = number,
            n if n == MAX_REQS.as_bytes() => values.max_reqs = number,
            n if n == MPXS_CONNS.as_bytes() => values.mpxs_conns = number.map(|n| n != 0),
            _ => {}
        }
    }
    Ok(values)
}

/// Send the query on `stream` and wait up to `timeout` for the answer.
/// A backend that answers UNKNOWN_TYPE, closes, or stays silent is an error;
/// the caller falls back to configured or default limits.
pub async fn query(mut stream: BackendStream, timeout: Duration) -> io::Result<BackendValues> {
    let exchange = async {
        stream.write_all(&query_record()).await?;
        let mut records = FramedRead::new(&mut stream, RecordCodec);
        while let Some(rec) = records.next().await {
            let rec = rec?;
            match rec.kind {
                kind::GET_VALUES_RESULT => return parse_result(&rec.content),
                kind::UNKNOWN_TYPE => {
                    return Err(io::Error::new(
                        io::ErrorKind::Unsupported,
                        "backend does not know FCGI_GET_VALUES",
                    ))
                }
                _ => {}
            }
        }
        Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "backend closed without answering FCGI_GET_VALUES",
        ))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or_else(|_| {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no FCGI_GET_VALUES answer in time",
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BackendAddr;
    use tokio::io::AsyncReadExt;

    #[test]
    fn result_parsing() {
        let mut body = BytesMut::new();
        params::put_pair(&mut body, b"FCGI_MAX_CONNS", b"4");
        params::put_pair(&mut body, b"FCGI_MAX_REQS", b"4");
        params::put_pair(&mut body, b"FCGI_MPXS_CONNS", b"0");
        params::put_pair(&mut body, b"OTHER", b"x");
        let values = parse_result(&body.freeze()).unwrap();
        assert_eq!(
            values,
            BackendValues {
                max_conns: Some(4),
                max_reqs: Some(4),
                mpxs_conns: Some(false)
            }
        );
    }

    async fn backend(answer: Option<Vec<u8>>) -> BackendStream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = BackendAddr::Tcp(listener.local_addr().unwrap().to_string());
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut query = vec![0u8; query_record().len()];
            sock.read_exact(&mut query).await.unwrap();
            assert_eq!(query[1], kind::GET_VALUES);
            match answer {
                Some(bytes) => sock.write_all(&bytes).await.unwrap(),
                None => tokio::time::sleep(Duration::from_secs(5)).await,
            }
        });
        BackendStream::connect(&addr, Duration::from_secs(1))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn query_answered() {
        let mut body = BytesMut::new();
        params::put_pair(&mut body, b"FCGI_MAX_CONNS", b"7");
        let mut answer = BytesMut::new();
        record::put_record(&mut answer, kind::GET_VALUES_RESULT, 0, &body);
        let stream = backend(Some(answer.to_vec())).await;
        let values = query(stream, Duration::from_secs(1)).await.unwrap();
        assert_eq!(values.max_conns, Some(7));
        assert_eq!(values.mpxs_conns, None);
    }

    #[tokio::test]
    async fn query_silent_times_out() {
        let stream = backend(None).await;
        let err = query(stream, Duration::from_millis(100)).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn query_unknown_type() {
        let mut answer = BytesMut::new();
        record::put_record(
            &mut answer,
            kind::UNKNOWN_TYPE,
            0,
            &[9, 0, 0, 0, 0, 0, 0, 0],
        );
        let stream = backend(Some(answer.to_vec())).await;
        assert!(query(stream, Duration::from_secs(1)).await.is_err());
    }
}
