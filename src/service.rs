//! One request, start to finish: id, limits, routing, the local-redirect
//! loop, error -> response, and the access log.
//!
//! Handlers never call back up: a CGI/FastCGI local redirect comes back as
//! [`Reply::LocalRedirect`] and is re-dispatched here, at most
//! [`MAX_LOCAL_REDIRECTS`] times (lighttpd's `HANDLER_COMEBACK`).

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::future::{ready, Either};
use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::{Frame, SizeHint};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use crate::access_log::{AccessLog, AccessRecord};
use crate::body::{empty_request_body, Body, RequestBody};
use crate::config::Config;
use crate::context::{ConnInfo, RequestCtx, RequestId};
use crate::error::{Error, ErrorKind, Side};
use crate::reply::Reply;
use crate::router::{Route, Router};
use crate::server::ConnTracker;
use crate::{cgi, compress, fastcgi, paths, static_files, tls};

/// RFC 3875 section 6.2.2 local redirects followed for one request.
pub const MAX_LOCAL_REDIRECTS: usize = 10;

/// Everything shared by all requests of a running server.
pub struct App {
    pub config: Arc<Config>,
    router: Router,
    pub cgi: cgi::Runtime,
    pub fastcgi: fastcgi::Runtime,
    access_log: AccessLog,
    /// Small static files lately served.
    files: static_files::cache::FileCache,
    next_id: AtomicU64,
}

impl App {
    /// Build the routes and runtimes (this starts managed FastCGI backends).
    pub async fn new(config: Config) -> io::Result<Arc<App>> {
        let access_log = AccessLog::open(&config.access_log)?;
        Self::with_access_log(config, access_log).await
    }

    /// [`App::new`] with the access log already open (opened before
    /// privileges are dropped).
    pub async fn with_access_log(config: Config, access_log: AccessLog) -> io::Result<Arc<App>> {
        let fastcgi = fastcgi::Runtime::start(&config).await?;
        Ok(Arc::new(App {
            router: Router::new(&config),
            cgi: cgi::Runtime::new(&config),
            fastcgi,
            access_log,
            files: Default::default(),
            config: Arc::new(config),
            next_id: AtomicU64::new(1),
        }))
    }

    /// Write out the access log lines not yet written (at shutdown).
    pub fn flush_access_log(&self) {
        self.access_log.flush();
    }

    /// Serve one request and return its response, whose body writes the
    /// access-log line and tells the connection tracker when it is done.
    ///
    /// What needs no waiting is done before this returns (hyper calls it
    /// from `Service::call`): the head's checks, routing, and the whole
    /// answer for errors, redirects and cached files. The request head is
    /// then gone before hyper reads ahead on the connection; see
    /// [`static_files::handle_cached`] for why that matters.
    pub fn serve(
        self: Arc<Self>,
        req: Request<Incoming>,
        conn: Arc<ConnInfo>,
        tracker: Arc<ConnTracker>,
    ) -> impl Future<Output = Result<Response<LoggedBody>, Infallible>> + Send + 'static {
        let seq = tracker.request_started();
        // RFC 9112 section 6.1: Content-Length with Transfer-Encoding is
        // refused rather than resolved (see `server::framing`).
        let both_lengths = req.version() < Version::HTTP_2 && tracker.had_both_lengths(seq);
        let id = RequestId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let ctx = RequestCtx {
            id,
            conn,
            config: self.config.clone(),
        };
        // Boxed: the record rides in the request's future and its response,
        // both moved several times; 264 bytes inline were copied with them
        // even with the log off.
        let record = self
            .access_log
            .enabled()
            .then(|| Box::new(access_record(&req, &ctx)));
        let ending = Ending {
            id,
            version: req.version(),
            record,
            tracker,
        };
        let answered = match self.route(req, &ctx, both_lengths) {
            Ok(Step::Wait(routed)) => {
                return Either::Right(async move {
                    let result = self.dispatch(routed, &ctx).await;
                    Ok(self.finish(result, ending))
                })
            }
            Ok(Step::Answered(response)) => Ok(response),
            Err(err) => Err(err),
        };
        Either::Left(ready(Ok(self.finish(answered, ending))))
    }

    /// The response made whole: errors as responses, `Server`, and the body
    /// that logs the request when it ends.
    fn finish(
        &self,
        result: Result<Response<Body>, Error>,
        ending: Ending,
    ) -> Response<LoggedBody> {
        let Ending {
            id,
            version,
            record,
            tracker,
        } = ending;
        let mut response = match result {
            Ok(response) => response,
            Err(err) => {
                log_error(&err, id);
                error_response(&err, version)
            }
        };
        set_server(response.headers_mut());
        let status = response.status();
        response.map(|body| LoggedBody {
            inner: body,
            bytes: 0,
            status,
            record,
            log: self.access_log.clone(),
            tracker,
        })
    }

    /// Everything about a request known without waiting: the head's checks,
    /// its route, and for a cached static file the answer.
    fn route(
        &self,
        req: Request<Incoming>,
        ctx: &RequestCtx,
        both_lengths: bool,
    ) -> Result<Step, Error> {
        if both_lengths {
            return Err(Error::downstream(ErrorKind::BadRequest)
                .with_cause("Content-Length together with Transfer-Encoding"));
        }
        let (parts, incoming) = req.into_parts();
        let chunked = check_head(&parts, &self.config)?;
        if let Some(redirect) = tls::redirect::https_redirect(&parts, ctx) {
            return Ok(Step::Answered(redirect));
        }
        let path = paths::normalize(parts.uri.path())?;
        let route = self.router.route(&path);
        // A static file never reads a body, but one that was sent must
        // still be well framed and within the limit: that takes waiting.
        if let (Route::Static, false) = (route, chunked) {
            if let Some(result) = static_files::handle_cached(&parts, &path, ctx, &self.files) {
                return result.map(Step::Answered);
            }
        }
        // Kept only where normalising changed it; otherwise it is the
        // request's own path, which moves with the request.
        let path = match path {
            Cow::Borrowed(_) => None,
            Cow::Owned(path) => Some(path),
        };
        Ok(Step::Wait(Routed {
            parts,
            incoming,
            chunked,
            route,
            path,
        }))
    }

    async fn dispatch(&self, routed: Routed, ctx: &RequestCtx) -> Result<Response<Body>, Error> {
        let Routed {
            mut parts,
            incoming,
            mut chunked,
            route,
            path,
        } = routed;
        let max_body = usize::try_from(self.config.limits.max_request_body).unwrap_or(usize::MAX);
        // Boxed only when a handler takes it: a static file never does.
        let mut incoming = Some(incoming);
        let mut take_body = move || match incoming.take() {
            Some(incoming) => Limited::new(incoming, max_body).boxed_unsync(),
            None => empty_request_body(),
        };
        let compression = &self.config.compression;
        let mut first = Some((route, path));
        for _ in 0..=MAX_LOCAL_REDIRECTS {
            // `route` asked the file cache already (a static file without
            // a chunked body, not redirected to).
            let looked_up = first.is_some() && !chunked;
            let (path, route) = match first.take() {
                Some((route, Some(path))) => (Cow::Owned(path), route),
                Some((route, None)) => (Cow::Borrowed(parts.uri.path()), route),
                None => {
                    let path = paths::normalize(parts.uri.path())?;
                    let route = self.router.route(&path);
                    (path, route)
                }
            };
            let reply = match route {
                Route::Static => {
                    // A static file never reads a body, but one that was sent
                    // must still be well framed (a bad chunk size is a 400,
                    // RFC 9112 section 7.1) and within the limit.
                    if chunked {
                        discard(&mut take_body()).await?;
                    }
                    let handler = static_files::handle(&parts, &path, ctx, &self.files, looked_up);
                    Reply::Response(handler.await?)
                }
                Route::Cgi(i) => {
                    // Boxed, as FastCGI below: their state machines are
                    // large, and every request's future (static ones
                    // included) would be that size, copied on each move.
                    let handler = cgi::handle(&self.cgi, i, &parts, take_body(), &path, ctx);
                    let reply = Box::pin(handler).await?;
                    let opted_in = self.config.cgi[i].compress;
                    compress::gateway_response(reply, &parts.headers, compression, opted_in)
                }
                Route::FastCgi(i) => {
                    let handler =
                        fastcgi::handle(&self.fastcgi, i, &parts, take_body(), &path, ctx);
                    let reply = Box::pin(handler).await?;
                    let opted_in = self.config.fastcgi[i].compress;
                    compress::gateway_response(reply, &parts.headers, compression, opted_in)
                }
            };
            match reply {
                Reply::Response(response) => return Ok(response),
                Reply::LocalRedirect(target) => {
                    tracing::debug!(id = %ctx.id, %target, "local redirect");
                    let uri = target.parse::<Uri>().map_err(|e| {
                        Error::upstream(ErrorKind::BadGateway)
                            .with_cause(format!("local redirect to an invalid URI {target:?}: {e}"))
                    })?;
                    parts = redirected(&parts, uri);
                    chunked = false; // the body went to the first handler
                }
            }
        }
        Err(Error::new(ErrorKind::TooManyRedirects, Side::Upstream)
            .with_cause(format!("more than {MAX_LOCAL_REDIRECTS} local redirects")))
    }
}

/// What [`App::route`] found out.
enum Step {
    Answered(Response<Body>),
    /// A handler has to wait: for a program, the blocking pool or a body.
    Wait(Routed),
}

/// A request checked and routed, on its way to a handler that waits.
struct Routed {
    parts: Parts,
    incoming: Incoming,
    /// The body is chunked (no Content-Length).
    chunked: bool,
    route: Route,
    /// The normalised path where it differs from the request's.
    path: Option<String>,
}

/// What [`App::finish`] needs of the request.
struct Ending {
    id: RequestId,
    version: Version,
    record: Option<Box<AccessRecord>>,
    tracker: Arc<ConnTracker>,
}

/// `Server: gatehouse/<version>`, replacing any a program sent. A cached
/// file's head carries it already ([`static_files::full_head`]): inserting
/// into that full map would grow it, even to replace.
fn set_server(headers: &mut HeaderMap) {
    let mut values = headers.get_all(header::SERVER).iter();
    let ours =
        matches!((values.next(), values.next()), (Some(v), None) if v == crate::SERVER_SOFTWARE);
    if !ours {
        headers.insert(
            header::SERVER,
            HeaderValue::from_static(crate::SERVER_SOFTWARE),
        );
    }
}

/// Read a request body to its end, keeping nothing: its framing and size
/// errors become 400 and 413.
async fn discard(body: &mut RequestBody) -> Result<(), Error> {
    while let Some(frame) = body.frame().await {
        frame.map_err(crate::gateway::spool::body_error)?;
    }
    Ok(())
}

/// Limits and sanity checks on the request head, before any handler runs.
/// Returns whether the request has a `Transfer-Encoding` (a chunked body).
fn check_head(parts: &Parts, config: &Config) -> Result<bool, Error> {
    let limits = &config.limits;
    let target_len = parts.uri.path_and_query().map_or(0, |pq| pq.as_str().len())
        + parts.uri.authority().map_or(0, |a| a.as_str().len());
    if target_len > limits.max_uri_bytes {
        return Err(Error::downstream(ErrorKind::UriTooLong));
    }
    // One pass over the fields: the size, and the three that framing and
    // routing depend on (a hashed lookup for each costs more).
    let mut header_bytes = 0;
    let (mut hosts, mut content_length) = (0, None);
    let mut codings: (Option<&HeaderValue>, usize) = (None, 0);
    for (name, value) in &parts.headers {
        header_bytes += name.as_str().len() + value.len() + 4;
        if name == header::HOST {
            hosts += 1;
        } else if name == header::TRANSFER_ENCODING {
            codings = (codings.0.or(Some(value)), codings.1 + 1);
        } else if name == header::CONTENT_LENGTH {
            content_length = content_length.or(Some(value));
        }
    }
    if header_bytes > limits.max_header_bytes {
        return Err(Error::downstream(ErrorKind::HeaderFieldsTooLarge));
    }
    if !is_registered_method(&parts.method) {
        return Err(Error::downstream(ErrorKind::BadRequest)
            .with_cause(format!("unknown method {}", parts.method)));
    }
    // RFC 9112 section 6.1: `chunked` is the only coding a request may carry
    // here, once (`gzip, chunked` would hand programs an encoded body;
    // `chunked, chunked` and other spellings are smuggling probes).
    if let (Some(first), count) = codings {
        if !first.as_bytes().eq_ignore_ascii_case(b"chunked") || count > 1 {
            return Err(Error::downstream(ErrorKind::BadRequest)
                .with_cause(format!("Transfer-Encoding {first:?} is not just chunked")));
        }
    }
    // RFC 9112 section 3.2: an HTTP/1.1 request without exactly one Host is a 400.
    if parts.version == Version::HTTP_11 && hosts != 1 {
        return Err(Error::downstream(ErrorKind::BadRequest).with_cause("missing or repeated Host"));
    }
    if let Some(len) = content_length {
        let len: u64 = len
            .to_str()
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                Error::downstream(ErrorKind::BadRequest).with_cause("bad Content-Length")
            })?;
        if len > limits.max_request_body {
            return Err(Error::downstream(ErrorKind::PayloadTooLarge));
        }
    }
    Ok(codings.1 > 0)
}

/// The methods of the IANA HTTP Method Registry (RFC 9110 section 16.1):
/// anything else is refused with 400 before it reaches a handler, so a CGI
/// program never sees a method no client could mean (`get`, `FOO`).
const REGISTERED_METHODS: &[&str] = &[
    "ACL",
    "BASELINE-CONTROL",
    "BIND",
    "CHECKIN",
    "CHECKOUT",
    "CONNECT",
    "COPY",
    "DELETE",
    "GET",
    "HEAD",
    "LABEL",
    "LINK",
    "LOCK",
    "MERGE",
    "MKACTIVITY",
    "MKCALENDAR",
    "MKCOL",
    "MKREDIRECTREF",
    "MKWORKSPACE",
    "MOVE",
    "OPTIONS",
    "ORDERPATCH",
    "PATCH",
    "POST",
    "PRI",
    "PROPFIND",
    "PROPPATCH",
    "PUT",
    "QUERY",
    "REBIND",
    "REPORT",
    "SEARCH",
    "TRACE",
    "UNBIND",
    "UNCHECKOUT",
    "UNLINK",
    "UNLOCK",
    "UPDATE",
    "UPDATEREDIRECTREF",
    "VERSION-CONTROL",
];

fn is_registered_method(method: &Method) -> bool {
    // The everyday ones without a scan of the table.
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::POST | Method::PUT | Method::DELETE | Method::OPTIONS
    ) || REGISTERED_METHODS.contains(&method.as_str())
}

/// The request a local redirect to `uri` re-dispatches: the original request's
/// headers, as a GET without a body (RFC 3875 section 6.2.2).
fn redirected(parts: &Parts, uri: Uri) -> Parts {
    let (mut next, ()) = Request::new(()).into_parts();
    next.method = Method::GET;
    next.version = parts.version;
    next.uri = uri;
    next.headers = without_body_headers(&parts.headers);
    next
}

fn without_body_headers(headers: &HeaderMap) -> HeaderMap {
    let mut headers = headers.clone();
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::CONTENT_TYPE);
    headers.remove(header::TRANSFER_ENCODING);
    headers
}

/// The span an error's log line carries. Requests have none while they
/// run: made and entered per request at the default `info` level it cost a
/// tenth of a small file's rate and 5 % of a php-fpm request's; the lines a
/// request's program or backend writes name it with an `id` field instead.
fn request_span(id: RequestId) -> tracing::Span {
    tracing::info_span!("request", id = %id)
}

fn log_error(err: &Error, id: RequestId) {
    match err.side {
        // Client errors (404s, 400s) are frequent: no span unless shown.
        Side::Downstream => {
            if tracing::enabled!(tracing::Level::DEBUG) {
                request_span(id).in_scope(|| tracing::debug!("{err}"));
            }
        }
        Side::Upstream | Side::Internal => {
            request_span(id).in_scope(|| tracing::error!("{err}"));
        }
    }
}

/// The response for an error: a small HTML page that names the status only
/// (never a path or a cause), plus the headers the status requires.
pub fn error_response(err: &Error, version: Version) -> Response<Body> {
    // 499: nginx's "client closed request", only ever seen in the access log.
    let status = err
        .status()
        .unwrap_or_else(|| StatusCode::from_u16(499).expect("499 is a valid status code"));
    let reason = status.canonical_reason().unwrap_or("Error");
    let page = format!(
        "<!DOCTYPE html>\n<html><head><title>{code} {reason}</title></head>\n<body><h1>{code} {reason}</h1>\n<hr><p>gatehouse</p></body></html>\n",
        code = status.as_u16()
    );
    let mut response = Response::new(Body::full(page));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    match err.kind {
        ErrorKind::MethodNotAllowed => {
            headers.insert(header::ALLOW, HeaderValue::from_static(static_files::ALLOW));
        }
        ErrorKind::RangeNotSatisfiable(len) => {
            headers.insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{len}"))
                    .expect("digits are a valid header value"),
            );
        }
        ErrorKind::Overloaded => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        _ => {}
    }
    // After a malformed or oversized request the rest of the stream cannot be
    // trusted (or was not read): close the connection.
    let close = matches!(
        err.kind,
        ErrorKind::BadRequest
            | ErrorKind::PayloadTooLarge
            | ErrorKind::HeaderFieldsTooLarge
            | ErrorKind::UriTooLong
            | ErrorKind::RequestTimeout
    );
    if close && version < Version::HTTP_2 {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

fn access_record(req: &Request<Incoming>, ctx: &RequestCtx) -> AccessRecord {
    AccessRecord {
        peer: ctx.conn.peer,
        time: SystemTime::now(),
        method: req.method().clone(),
        uri: req.uri().clone(),
        version: req.version(),
        status: 0,
        bytes: 0,
        referer: req.headers().get(header::REFERER).cloned(),
        user_agent: req.headers().get(header::USER_AGENT).cloned(),
        id: ctx.id,
    }
}

/// The response body as hyper sees it: counts bytes for the access log, and
/// when dropped (sent, failed, or abandoned) writes the log line and tells the
/// connection the request is over.
pub struct LoggedBody {
    inner: Body,
    bytes: u64,
    status: StatusCode,
    record: Option<Box<AccessRecord>>,
    log: AccessLog,
    tracker: Arc<ConnTracker>,
}

impl http_body::Body for LoggedBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        let frame = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &frame {
            if let Some(data) = frame.data_ref() {
                this.bytes += data.len() as u64;
            }
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        if let Some(mut record) = self.record.take() {
            record.status = self.status.as_u16();
            record.bytes = self.bytes;
            self.log.record(&record);
        }
        self.tracker.request_finished();
    }
}
