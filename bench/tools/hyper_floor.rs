//! The floor of the static 1 KB case: hyper alone answering every request
//! with the same 1 KiB from memory (no files, routing, logging or checks),
//! on a runtime built as gatehouse builds its own. The benchmark measures it
//! beside the servers, so the table shows how much of a small file's cost is
//! gatehouse's own work and how much is hyper's and the kernel's.
//!
//! Usage: `hyper_floor PORT` (listens on 127.0.0.1).

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(18900);
    let runtime = gatehouse::server::runtime(gatehouse::config::Workers::Auto).expect("runtime");
    let body = Bytes::from(vec![b'x'; 1024]);
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind");
        println!("hyper_floor listening on http://127.0.0.1:{port}");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let body = body.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_request| {
                    let mut response = hyper::Response::new(Full::new(body.clone()));
                    response.headers_mut().insert(
                        CONTENT_TYPE,
                        HeaderValue::from_static("application/octet-stream"),
                    );
                    async move { Ok::<_, Infallible>(response) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}
