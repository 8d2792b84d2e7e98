use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .global_queue_interval(2)
        .build()
        .unwrap();
    let body = Bytes::from(vec![b'x'; 1024]);
    let auto = std::env::var_os("AUTO").is_some();
    rt.block_on(async move {
        let l = tokio::net::TcpListener::bind("127.0.0.1:18900")
            .await
            .unwrap();
        loop {
            let (s, _) = l.accept().await.unwrap();
            s.set_nodelay(true).unwrap();
            let body = body.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |_req| {
                    let body = body.clone();
                    async move {
                        let mut r = hyper::Response::new(Full::new(body));
                        r.headers_mut().insert(
                            "content-type",
                            hyper::header::HeaderValue::from_static("application/octet-stream"),
                        );
                        Ok::<_, Infallible>(r)
                    }
                });
                if auto {
                    let b = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    );
                    let _ = b.serve_connection(TokioIo::new(s), svc).await;
                } else {
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(s), svc)
                        .await;
                }
            });
        }
    });
}
