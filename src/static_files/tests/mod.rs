//! `handle()` driven directly against a temporary document root.

mod compression;
mod security;
mod serving;
mod validators;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;

use super::{handle, handle_cached};
use crate::config::Config;
use crate::context::{ConnInfo, RequestCtx, RequestId};
use crate::error::ErrorKind;

struct Site {
    _dir: tempfile::TempDir,
    /// Canonical document root.
    root: PathBuf,
    /// A directory next to the root (outside it).
    outside: PathBuf,
    config: Config,
    files: super::cache::FileCache,
}

/// What a request got: status, headers, body bytes; or the error kind.
type Outcome = Result<(StatusCode, HeaderMap, Vec<u8>), ErrorKind>;

fn site() -> Site {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().canonicalize().unwrap();
    let root = base.join("htdocs");
    let outside = base.join("outside");
    std::fs::create_dir_all(root.join("docs")).unwrap();
    std::fs::create_dir_all(root.join("empty")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(root.join("hello.txt"), b"hello, world\n").unwrap();
    std::fs::write(root.join("docs/index.html"), b"<h1>docs</h1>").unwrap();
    std::fs::write(root.join("digits.txt"), b"0123456789").unwrap();
    std::fs::write(outside.join("secret.txt"), b"secret").unwrap();
    let config = Config {
        server_name: "localhost".into(),
        document_root: Some(root.clone()),
        index: vec!["index.html".into(), "index.htm".into()],
        ..crate::gateway::testutil::config()
    };
    Site {
        _dir: dir,
        root,
        outside,
        config,
        files: Default::default(),
    }
}

impl Site {
    async fn request(&self, method: Method, uri: &str, headers: &[(&str, &str)]) -> Outcome {
        let parts = request_head(method, uri, headers);
        let path = crate::paths::normalize(parts.uri.path()).map_err(|e| e.kind)?;
        // A server reads each request after a turn of the reactor, which
        // takes in the file changes reported before it (`watch`).
        tokio::task::yield_now().await;
        let response = handle(&parts, &path, &self.ctx(), &self.files, false)
            .await
            .map_err(|e| e.kind)?;
        let (head, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes().to_vec();
        Ok((head.status, head.headers, body))
    }

    /// What [`handle_cached`] answers at once, `None` when it would wait.
    async fn cached(&self, method: Method, uri: &str, headers: &[(&str, &str)]) -> Option<Outcome> {
        let parts = request_head(method, uri, headers);
        let path = crate::paths::normalize(parts.uri.path()).ok()?;
        tokio::task::yield_now().await;
        let response = match handle_cached(&parts, &path, &self.ctx(), &self.files)? {
            Ok(response) => response,
            Err(e) => return Some(Err(e.kind)),
        };
        let (head, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes().to_vec();
        Some(Ok((head.status, head.headers, body)))
    }

    fn ctx(&self) -> RequestCtx {
        let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        RequestCtx {
            id: RequestId(1),
            conn: Arc::new(ConnInfo {
                peer,
                local: "127.0.0.1:8080".parse().unwrap(),
                secure: false,
                file_lane: None,
                addr_text: Default::default(),
            }),
            config: Arc::new(self.config.clone()),
        }
    }

    async fn get(&self, uri: &str, headers: &[(&str, &str)]) -> Outcome {
        self.request(Method::GET, uri, headers).await
    }
}

fn request_head(method: Method, uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap().into_parts().0
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap())
}

fn ok(outcome: Outcome) -> (StatusCode, HeaderMap, Vec<u8>) {
    outcome.unwrap_or_else(|kind| panic!("expected a response, got {kind:?}"))
}

fn write(path: &Path, content: &[u8]) {
    std::fs::write(path, content).unwrap();
}
