//! The FastCGI gateway: pooled, streaming connections to responders
//! (php-fpm, flup, any FastCGI application), and managed backends.
//!
//! [`handle`] runs these steps, in this order:
//! 1. Refuse CR, LF or NUL in the path (400).
//! 2. Map the path to SCRIPT_NAME, PATH_INFO and SCRIPT_FILENAME
//!    ([`script`]); a script file missing under `root` is a 404 that never
//!    reaches the backend.
//! 3. Settle the body: none, streamed with its Content-Length, or spooled
//!    first when it has none (php-fpm stalls without CONTENT_LENGTH).
//! 4. Build the params: the RFC 3875 variables from [`crate::gateway::env`]
//!    (the same code as CGI), the route's `params`, REDIRECT_STATUS=200.
//! 5. Take a connection to one of the route's backends ([`upstream`],
//!    [`pool`]) and start the exchange ([`conn`]).
//! 6. Parse the response head out of FCGI_STDOUT with
//!    [`crate::gateway::response`] (Status, Location, local redirects).
//! 7. Answer: a local redirect, or a response whose body streams the rest.
//!
//! The record layer is our own (see the README's design notes): it checks
//! version and request id, treats EOF before END_REQUEST as an error, cuts
//! streams into records of at most 65,535 bytes, writes each request in as
//! few writes as possible with TCP_NODELAY, and never reuses a connection
//! whose request did not end cleanly.

pub mod conn;
pub mod params;
pub mod pool;
pub mod record;
pub mod script;
pub mod spawn;
pub mod stream;
pub mod upstream;
pub mod values;

#[cfg(test)]
mod testing;

use std::borrow::Cow;
use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use http::request::Parts;
use http::{header, Method, Response};
use http_body_util::BodyExt;

use crate::body::{Body, BoxError, RequestBody};
use crate::config::{BackendAddr, Config, FastCgiRoute, FastCgiTarget};
use crate::context::RequestCtx;
use crate::error::{Error, ErrorKind};
use crate::gateway::body::{self, ProgramBody};
use crate::gateway::response::{self, GatewayHead, HeadError, HeadParser, Mode, Prefixed, Settled};
use crate::gateway::{env, spool};
use crate::reply::Reply;
use conn::{Event, Failure};
use pool::{Backend, BackendSettings};
use record::protocol_status;
use upstream::Upstream;

/// Per-server FastCGI state: backend pools, managed backends.
pub struct Runtime {
    /// One per `fastcgi:` route, in configuration order.
    upstreams: Vec<Upstream>,
    backends: Vec<Arc<Backend>>,
    managed: Vec<spawn::Managed>,
    seen_scripts: script::SeenScripts,
}

impl Runtime {
    /// Build pools and start managed (`spawn:`) backends.
    ///
    /// Routes naming the same address share one pool, since the capacity is
    /// the backend's, not the route's: it keeps the most idle connections any
    /// of them asks for and the lowest `max_conns` any of them sets.
    pub async fn start(config: &Config) -> io::Result<Self> {
        let mut managed = Vec::new();
        let mut route_addrs = Vec::new();
        let mut settings: HashMap<BackendAddr, BackendSettings> = HashMap::new();
        for route in &config.fastcgi {
            let (addrs, copies) = match &route.target {
                FastCgiTarget::Backends(addrs) => (addrs.clone(), 1),
                FastCgiTarget::Spawn(spawn_config) => {
                    let group = spawn::Managed::start(spawn_config)?;
                    let addr = BackendAddr::Unix(group.socket_path().to_path_buf());
                    managed.push(group);
                    (vec![addr], spawn_config.processes)
                }
            };
            for addr in &addrs {
                let merged = settings.entry(addr.clone()).or_insert(BackendSettings {
                    connect_timeout: route.connect_timeout,
                    keepalive: 0,
                    max_conns: None,
                    copies,
                });
                merged.keepalive = merged.keepalive.max(route.keepalive);
                merged.max_conns = match (merged.max_conns, route.max_conns) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            route_addrs.push(addrs);
        }
        let mut by_addr: HashMap<BackendAddr, Arc<Backend>> = HashMap::new();
        let mut backends = Vec::new();
        let upstreams = route_addrs
            .into_iter()
            .map(|addrs| {
                let list = addrs
                    .into_iter()
                    .map(|addr| {
                        by_addr
                            .entry(addr.clone())
                            .or_insert_with(|| {
                                let b = Backend::new(addr.clone(), settings[&addr].clone());
                                backends.push(b.clone());
                                b
                            })
                            .clone()
                    })
                    .collect();
                Upstream::new(list)
            })
            .collect();
        Ok(Runtime {
            seen_scripts: script::SeenScripts::new(),
            upstreams,
            backends,
            managed,
        })
    }

    /// Stop managed backends and close pooled connections.
    pub async fn shutdown(&self) {
        for backend in &self.backends {
            backend.close_idle();
        }
        for group in &self.managed {
            group.shutdown().await;
        }
    }

    /// The pools of a route (for tests and status pages).
    pub fn upstream(&self, route: usize) -> Option<&Upstream> {
        self.upstreams.get(route)
    }
}

/// Forward the request to the backends of `ctx.config.fastcgi[route]`.
/// `path` is normalised.
pub async fn handle(
    rt: &Runtime,
    route: usize,
    parts: &Parts,
    body: RequestBody,
    path: &str,
    ctx: &RequestCtx,
) -> Result<Reply, Error> {
    let config = &ctx.config.fastcgi[route];
    let upstream = &rt.upstreams[route];

    // 1, 2
    script::check_path_bytes(path)?;
    let document_root = ctx.config.document_root.as_deref();
    let target = script::resolve(config, path, document_root);
    if let (true, Some(root)) = (target.must_exist, config.root.as_deref().or(document_root)) {
        if !rt.seen_scripts.recently(root, &target) {
            let (root, checked) = (root.to_path_buf(), target.clone());
            let root = tokio::task::spawn_blocking(move || {
                script::check_exists(&root, &checked).map(|()| root)
            })
            .await
            .map_err(|e| Error::internal(format!("script check: {e}")))??;
            rt.seen_scripts.remember(&root, &target);
        }
    }

    // 3
    let (content_length, body) = settle_body(parts, body, ctx).await?;

    // 4
    let vars = params(parts, ctx, config, &target, content_length);

    // 5
    let conn = upstream.checkout(config.connect_timeout).await?;
    let req = conn::Request::new(
        vars.iter().map(|(n, v)| (n.as_bytes(), v.as_ref())),
        body,
        config.read_timeout,
        ctx.id,
        config.keepalive > 0,
    )
    .map_err(failure_error)?;
    let events = conn::start(conn, req);

    // 6
    let (head, rest) = read_head(events).await?;
    let (head, mut rest) = match response::settle_local_redirect(head, rest).await {
        Ok(Settled::LocalRedirect(target)) => return Ok(Reply::LocalRedirect(target)),
        Ok(Settled::Response(head, rest)) => (head, rest),
        Err(err) => return Err(head_error(err)),
    };

    // 7, once every other connection woken with this one has had its turn:
    // answers that came back together then go out together, and the client
    // is woken once for several of them (see the README's design notes).
    tokio::task::yield_now().await;
    let ended = std::future::poll_fn(|cx| Poll::Ready(rest.poll_gather(cx, GATHER_LIMIT)))
        .await
        .map_err(|err| head_error(HeadError::Io(err)))?;
    if let (true, Some(declared)) = (ended, head.content_length) {
        let sent = rest.front_len() as u64;
        if sent < declared && body::sends_body(&parts.method, head.status) {
            return Err(bad_gateway(format!(
                "fastcgi response: {sent} bytes of a Content-Length of {declared}"
            )));
        }
    }
    Ok(Reply::Response(respond(&parts.method, head, rest, ended)))
}

/// Output already read with the head, up to this much, is gathered into the
/// response before it is sent: when it is all of it (END_REQUEST came too),
/// the response has a length instead of chunks, its connection is back in
/// the pool before the client is written to, and a backend that failed
/// right after its head is a clean 502.
const GATHER_LIMIT: usize = 64 * 1024;

/// The body as the backend gets it, and CONTENT_LENGTH (`None`: no body).
async fn settle_body(
    parts: &Parts,
    body: RequestBody,
    ctx: &RequestCtx,
) -> Result<(Option<u64>, Option<RequestBody>), Error> {
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(len) = declared {
        return Ok((Some(len), (len > 0).then_some(body)));
    }
    if http_body::Body::is_end_stream(&body) {
        return Ok((None, None));
    }
    // Chunked, or HTTP/2 without a length: read it all first.
    let spooled = spool::spool(
        body,
        spool::MEMORY_LIMIT,
        ctx.config.limits.max_request_body,
    )
    .await?;
    let len = spooled.len();
    let stream = spooled
        .into_stream()
        .map_ok(http_body::Frame::data)
        .map_err(BoxError::from);
    Ok((
        Some(len),
        Some(http_body_util::StreamBody::new(stream).boxed_unsync()),
    ))
}

/// RFC 3875 variables plus what FastCGI applications expect.
fn params<'a>(
    parts: &'a Parts,
    ctx: &'a RequestCtx,
    route: &'a FastCgiRoute,
    target: &'a script::Script,
    content_length: Option<u64>,
) -> Vec<env::Var<'a>> {
    let info = env::ScriptInfo {
        script_name: &target.script_name,
        path_info: target.path_info.as_deref(),
        script_filename: &target.script_filename,
    };
    let opts = env::EnvOptions {
        pass_authorization: route.pass_authorization,
        content_length,
        document_root: ctx
            .config
            .document_root
            .as_deref()
            .or(route.root.as_deref()),
        extra: &route.params,
    };
    let mut vars = env::build(parts, ctx, &info, &opts);
    // php-cgi refuses to run without it (its `cgi.force_redirect` guard);
    // a route param of the same name wins.
    if !vars.iter().any(|(n, _)| n == "REDIRECT_STATUS") {
        vars.push((Cow::Borrowed("REDIRECT_STATUS"), Cow::Borrowed(b"200")));
    }
    vars
}

/// Read FCGI_STDOUT until the response head is complete.
async fn read_head(mut events: conn::Exchange) -> Result<(GatewayHead, Prefixed<Output>), Error> {
    let mut parser = HeadParser::new(Mode::Cgi, response::MAX_HEAD_BYTES);
    loop {
        match events.recv().await {
            Some(Event::Stdout(chunk)) => {
                if let Some((head, body)) = parser.feed_bytes(chunk).map_err(head_error)? {
                    return Ok((head, Prefixed::new(body, Output(Some(events)))));
                }
            }
            Some(Event::End(end)) if end.protocol_status != protocol_status::REQUEST_COMPLETE => {
                return Err(bad_gateway(format!(
                    "backend refused the request (protocol status {}: {})",
                    end.protocol_status,
                    refusal(end.protocol_status)
                )))
            }
            Some(Event::End(_)) => return Err(head_error(HeadError::NoHeaderBlock)),
            Some(Event::Failed(failure)) => return Err(failure_error(failure)),
            None => return Err(bad_gateway("fastcgi exchange ended without END_REQUEST")),
        }
    }
}

fn refusal(status: u8) -> &'static str {
    match status {
        protocol_status::CANT_MPX_CONN => "cannot multiplex",
        protocol_status::OVERLOADED => "overloaded",
        protocol_status::UNKNOWN_ROLE => "unknown role",
        _ => "unknown",
    }
}

/// The HTTP response for a parsed head (`ended`: `rest` holds all of the
/// output). HEAD, 204 and 304 send no body, but the rest of the output is
/// still read so the connection can go back to its pool.
fn respond(
    method: &Method,
    head: GatewayHead,
    rest: Prefixed<Output>,
    ended: bool,
) -> Response<Body> {
    let length = head
        .content_length
        .or_else(|| ended.then(|| rest.front_len() as u64));
    let mut headers = head.headers;
    let body = if body::sends_body(method, head.status) {
        Body::from_body(ProgramBody::new(rest, length))
    } else {
        if !ended {
            tokio::spawn(rest.for_each(|_| async {}));
        }
        body::bodiless_length(&mut headers, method, head.status, head.content_length);
        Body::empty()
    };
    let mut response = Response::new(body);
    *response.status_mut() = head.status;
    *response.headers_mut() = headers;
    response
}

/// The rest of FCGI_STDOUT after the head. An exchange that fails after the
/// head yields an error, so hyper aborts the client connection instead of
/// ending the response as if it were complete.
pub struct Output(Option<conn::Exchange>);

impl Stream for Output {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(events) = self.0.as_mut() else {
            return Poll::Ready(None);
        };
        let item = match events.poll_recv(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Some(Event::Stdout(chunk))) => return Poll::Ready(Some(Ok(chunk))),
            Poll::Ready(Some(Event::End(_))) => None,
            Poll::Ready(Some(Event::Failed(failure))) => Some(Err(failure_io(failure))),
            Poll::Ready(None) => Some(Err(io::Error::other("fastcgi exchange ended early"))),
        };
        self.0 = None;
        Poll::Ready(item)
    }
}

fn bad_gateway(cause: impl Into<String>) -> Error {
    Error::upstream(ErrorKind::BadGateway).with_cause(cause.into())
}

fn failure_error(failure: Failure) -> Error {
    match failure {
        Failure::Backend(err) => bad_gateway(format!("fastcgi backend: {err}")),
        Failure::Reconnect(err) => bad_gateway(format!("fastcgi reconnect: {err}")),
        Failure::Timeout(after) => Error::upstream(ErrorKind::GatewayTimeout).with_cause(format!(
            "no answer from the fastcgi backend within {after:?}"
        )),
        Failure::Body(err) => spool::body_error(err),
    }
}

fn failure_io(failure: Failure) -> io::Error {
    match failure {
        Failure::Backend(err) | Failure::Reconnect(err) => err,
        Failure::Timeout(after) => io::Error::new(
            io::ErrorKind::TimedOut,
            format!("fastcgi backend silent for {after:?}"),
        ),
        Failure::Body(err) => io::Error::other(err),
    }
}

/// A response head the backend got wrong is its failure: 502, with the
/// reason in the error log.
fn head_error(err: HeadError) -> Error {
    match err {
        HeadError::Io(e) if e.kind() == io::ErrorKind::TimedOut => {
            Error::upstream(ErrorKind::GatewayTimeout).with_cause(e)
        }
        other => bad_gateway(format!("fastcgi response: {other}")),
    }
}
