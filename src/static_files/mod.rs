//! Static files from the document root.
//!
//! [`handle`] runs these steps in order:
//! 1. No `document_root`: 404.
//! 2. A dotfile segment (`.git`, `.env`) unless `serve_dotfiles`: 404
//!    (`/.well-known/` is always allowed).
//! 3. In one blocking call ([`resolve`]): confine the path under the root
//!    (symlinks resolving outside are 403, missing is 404, anything but a
//!    regular file or directory 403); for a directory, a 301 to the slash
//!    form, the first index file, a listing, or 403; open the file, stat the
//!    open descriptor, and read it whole when it is small.
//! 4. Method: OPTIONS is 204, methods other than GET and HEAD 405, both with
//!    `Allow: GET, HEAD, OPTIONS` (the 405's is added by `service`).
//! 5. Preconditions, RFC 9110 section 13.2.2 ([`conditional`]): 412 or 304.
//! 6. Range, GET only, with If-Range ([`range`]): 206, multipart 206, or 416.
//! 7. The response: Content-Type ([`mime`]), Content-Length, ETag and
//!    Last-Modified ([`validators`]), Accept-Ranges; the body streamed
//!    ([`source`]), none for HEAD.
//!
//! Before steps 5 to 7, [`compress`] picks the form of the file: as stored,
//! a precompressed `.br`/`.gz` copy (looked up in step 3), or compressed on
//! the fly; an encoded form has its own ETag, and takes steps 5 and 7 but
//! never 6. Last, `Vary: Accept-Encoding` for compressible types and the
//! `Cache-Control` of the longest matching `cache_control` prefix
//! ([`cache_control`]).
//!
//! Errors carry file system paths only in their cause, which goes to the log.

pub mod cache;
pub mod cache_control;
pub mod compress;
pub mod conditional;
pub mod file_stream;
pub mod listing;
pub mod mime;
pub mod range;
pub mod resolve;
pub mod source;
pub mod validators;
pub mod watch;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::SystemTime;

use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode, Version};

use self::cache::FileCache;
use self::conditional::Outcome;
use self::range::{Multipart, Plan};
use self::resolve::{Lookup, OpenFile, Target, Wants};
use self::validators::Validators;
use crate::body::Body;
use crate::context::RequestCtx;
use crate::error::{Error, ErrorKind};
use crate::late_file::Lane;
use crate::paths;

/// The methods a static file answers, for `Allow`.
pub const ALLOW: &str = "GET, HEAD, OPTIONS";

/// Which of the request headers that static serving acts on are present,
/// found in one pass over the names: a hashed lookup for each costs more,
/// and most requests carry none of them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Asks {
    /// If-Match, If-None-Match, If-Modified-Since or If-Unmodified-Since.
    pub preconditions: bool,
    pub range: bool,
    pub accept_encoding: bool,
}

impl Asks {
    pub fn of(headers: &http::HeaderMap) -> Asks {
        let mut asks = Asks::default();
        for name in headers.keys() {
            if name == header::RANGE {
                asks.range = true;
            } else if name == header::ACCEPT_ENCODING {
                asks.accept_encoding = true;
            } else if name == header::IF_MATCH
                || name == header::IF_NONE_MATCH
                || name == header::IF_MODIFIED_SINCE
                || name == header::IF_UNMODIFIED_SINCE
            {
                asks.preconditions = true;
            }
        }
        asks
    }
}

/// What a request asks of the static handler: steps 1 to 3 up to the
/// lookup, the same whether the answer comes from the cache or not.
struct Ask<'a> {
    root: &'a std::path::Path,
    asks: Asks,
    encodings: Vec<crate::compress::Encoding>,
    wants: Wants,
    /// Only the path decides what is sent (see [`handle`]).
    cacheable: bool,
}

impl<'a> Ask<'a> {
    fn of(parts: &Parts, path: &str, ctx: &'a RequestCtx) -> Result<Ask<'a>, Error> {
        let config = &ctx.config;
        // 1
        let Some(root) = config.document_root.as_deref() else {
            return Err(Error::downstream(ErrorKind::NotFound)
                .with_cause(crate::error::msg("no document_root")));
        };
        // 2
        if !config.serve_dotfiles && paths::has_dotfile_segment(path) {
            return Err(Error::downstream(ErrorKind::NotFound)
                .with_cause(format!("dotfile refused: {path}")));
        }
        // 3
        let asks = Asks::of(&parts.headers);
        let encodings = compress::wanted(parts, asks, &config.compression);
        let wants = match parts.method {
            Method::GET => Wants::Content,
            Method::HEAD => Wants::Headers,
            _ => Wants::Existence,
        };
        // Hot small files come from the cache when nothing but the path
        // decides what is sent; everything else takes one trip to the
        // blocking pool. A client that accepts codings still gets a hit for
        // a type that is never compressed (images, archives): browsers ask
        // for gzip every time, and only a compressible file may have a
        // precompressed copy to look for.
        let cacheable = encodings.is_empty() || compress::never_compressed(path);
        Ok(Ask {
            root,
            asks,
            encodings,
            wants,
            cacheable,
        })
    }

    /// The file from the cache, where the path alone decides the answer.
    fn cached(&self, path: &str, files: &FileCache) -> Option<OpenFile> {
        self.cacheable
            .then(|| files.lookup(self.root, path, self.wants))
            .flatten()
    }
}

/// [`handle`] for a request answered without waiting: an error of steps 1
/// and 2, or a file in the cache. `None`: it needs the blocking pool.
///
/// The service calls this inside hyper's `Service::call`, so that the
/// request head is dropped before hyper reads ahead on the connection (it
/// does, to see a client leave mid-request): the head still holding hyper's
/// read buffer then makes it allocate a new 8 KiB one for every request.
pub fn handle_cached(
    parts: &Parts,
    path: &str,
    ctx: &RequestCtx,
    files: &FileCache,
) -> Option<Result<Response<Body>, Error>> {
    let ask = match Ask::of(parts, path, ctx) {
        Ok(ask) => ask,
        Err(e) => return Some(Err(e)),
    };
    let file = ask.cached(path, files)?;
    Some(respond(parts, path, ctx, &ask, Target::File(file)))
}

/// Serve `path` (already normalised by [`crate::paths::normalize`]) from the
/// configured document root, small files through `files`. `looked_up`:
/// [`handle_cached`] already found no entry to use, so the path is looked
/// up on the blocking pool (and the cache told what was found).
pub async fn handle(
    parts: &Parts,
    path: &str,
    ctx: &RequestCtx,
    files: &FileCache,
    looked_up: bool,
) -> Result<Response<Body>, Error> {
    let ask = Ask::of(parts, path, ctx)?;
    let cached = if looked_up {
        None
    } else {
        ask.cached(path, files)
    };
    let target = match cached {
        Some(file) => Target::File(file),
        None => {
            let lookup = Lookup {
                root: ask.root.to_path_buf(),
                path: path.to_owned(),
                index: ctx.config.index.clone(),
                directory_listing: ctx.config.directory_listing,
                show_hidden: ctx.config.serve_dotfiles,
                wants: ask.wants,
                sidecars: ask.encodings.clone(),
            };
            // Boxed: a hit never waits, and should not carry the state of
            // a miss in every request's future.
            let target = Box::pin(resolve_blocking(lookup)).await;
            if ask.cacheable {
                let file = match &target {
                    Ok(Target::File(file)) => Some(file),
                    _ => None,
                };
                files.store(ask.root, path, file);
            }
            target?
        }
    };
    respond(parts, path, ctx, &ask, target)
}

/// Steps 4 to 7 for what the lookup found, and `Cache-Control`.
fn respond(
    parts: &Parts,
    path: &str,
    ctx: &RequestCtx,
    ask: &Ask<'_>,
    target: Target,
) -> Result<Response<Body>, Error> {
    let head = parts.method == Method::HEAD;
    let mut response = match target {
        // 4
        Target::Exists if parts.method == Method::OPTIONS => options(),
        Target::Exists => return Err(Error::downstream(ErrorKind::MethodNotAllowed)),
        Target::RedirectToSlash => redirect_to_slash(path, parts.uri.query()),
        Target::Listing(html) => listing(html, head),
        // 5, 6, 7
        Target::File(file) => serve_form(parts, ask.asks, file, &ask.encodings, ctx)?,
    };
    let status = response.status();
    cache_control::apply(
        &ctx.config.cache_control,
        path,
        status,
        response.headers_mut(),
    );
    Ok(response)
}

async fn resolve_blocking(lookup: Lookup) -> Result<Target, Error> {
    tokio::task::spawn_blocking(move || resolve::resolve(&lookup))
        .await
        .map_err(Error::internal)?
}

fn options() -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(ALLOW));
    response
}

/// 301 to `path/`, keeping the query. The path is re-encoded from its
/// normalised form, so it never starts with `//` (which a browser would read
/// as another host: an open redirect).
fn redirect_to_slash(path: &str, query: Option<&str>) -> Response<Body> {
    let mut location = paths::encode(path);
    location.push('/');
    if let Some(query) = query {
        location.push('?');
        location.push_str(query);
    }
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::MOVED_PERMANENTLY;
    // Encoded path and a query hyper already validated: visible ASCII only.
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

fn listing(html: String, head: bool) -> Response<Body> {
    let len = html.len();
    let body = if head {
        Body::empty()
    } else {
        Body::full(html)
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    response
}

/// Steps 5 to 7 for the form of the file that [`compress::choose`] picks,
/// with `Vary: Accept-Encoding` when another client could get another form.
fn serve_form(
    parts: &Parts,
    asks: Asks,
    file: OpenFile,
    encodings: &[crate::compress::Encoding],
    ctx: &RequestCtx,
) -> Result<Response<Body>, Error> {
    let compression = &ctx.config.compression;
    let varies = compress::varies(&file.media, compression);
    // HTTP/2 frames body bytes itself: only HTTP/1 sends placeholders as is.
    let lane = ctx
        .conn
        .file_lane
        .as_ref()
        .filter(|_| matches!(parts.version, Version::HTTP_10 | Version::HTTP_11));
    let mut response = match compress::choose(file, encodings, compression) {
        compress::Choice::Identity(file) => serve_file(parts, asks, file, lane)?,
        compress::Choice::Encoded(encoded) => encoded.serve(parts, asks)?,
    };
    if varies {
        crate::compress::add_vary(response.headers_mut());
    }
    Ok(response)
}

/// Steps 5 to 7 for an open regular file, as stored.
fn serve_file(
    parts: &Parts,
    asks: Asks,
    mut file: OpenFile,
    lane: Option<&Arc<Lane>>,
) -> Result<Response<Body>, Error> {
    if let Some(not_modified) = check_preconditions(parts, asks, &file.validators)? {
        return Ok(not_modified);
    }
    let plan = if asks.range {
        range_plan(parts, &file)
    } else {
        Plan::Full
    };
    let mut response = Response::new(Body::empty());
    *response.headers_mut() = match file.head.take() {
        Some(head) => HeaderMap::clone(&head),
        None => full_head(&file),
    };
    let headers = response.headers_mut();
    let (status, body) = match plan {
        Plan::Unsatisfiable => {
            return Err(Error::downstream(ErrorKind::RangeNotSatisfiable(file.len)));
        }
        Plan::Full => (StatusCode::OK, file.source.map(|s| s.whole(file.len, lane))),
        Plan::Single(range) => {
            let content_range =
                HeaderValue::from_str(&range.content_range(file.len)).expect("digits");
            headers.insert(header::CONTENT_RANGE, content_range);
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(range.size()));
            let body = file.source.map(|s| s.range(range, lane));
            (StatusCode::PARTIAL_CONTENT, body)
        }
        Plan::Multi(ranges) => {
            let part_type = file
                .media
                .header
                .to_str()
                .unwrap_or("application/octet-stream");
            let multipart = Multipart::new(&ranges, file.len, part_type);
            let value = HeaderValue::from_str(&multipart.content_type).expect("ASCII boundary");
            headers.insert(header::CONTENT_TYPE, value);
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(multipart.len));
            let body = file.source.map(|s| s.pieces(multipart.pieces, lane));
            (StatusCode::PARTIAL_CONTENT, body)
        }
    };
    *response.status_mut() = status;
    // HEAD has no source: same headers, no body.
    *response.body_mut() = body.unwrap_or_default();
    Ok(response)
}

/// The head of a full 200 for `file`: ETag, Last-Modified, Accept-Ranges,
/// Content-Type, Content-Length and Server. A cached file keeps one and
/// each hit clones it: six entries copied instead of six hashed inserts
/// (~600 instructions of a 13,000-instruction response). Server is
/// included because six fill the map as made: `service` inserting it
/// afterwards would grow the map (an insert reserves room before it looks
/// for the name), so it only checks that it is there.
pub(super) fn full_head(file: &OpenFile) -> HeaderMap {
    let v = &file.validators;
    let mut headers = HeaderMap::with_capacity(6);
    headers.insert(header::ETAG, v.etag_header());
    if let Some(last_modified) = v.last_modified_header() {
        headers.insert(header::LAST_MODIFIED, last_modified);
    }
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(header::CONTENT_TYPE, file.media.header.clone());
    headers.insert(header::CONTENT_LENGTH, v.length_header(file.len));
    headers.insert(
        header::SERVER,
        HeaderValue::from_static(crate::SERVER_SOFTWARE),
    );
    headers
}

/// Step 5: `Err` for a 412, `Ok(Some)` for a 304, `Ok(None)` to go on.
fn check_preconditions(
    parts: &Parts,
    asks: Asks,
    v: &Validators,
) -> Result<Option<Response<Body>>, Error> {
    if !asks.preconditions {
        return Ok(None);
    }
    let now = SystemTime::now();
    match conditional::evaluate(&parts.method, &parts.headers, v, now) {
        Outcome::Proceed => Ok(None),
        Outcome::NotModified => Ok(Some(not_modified(v))),
        Outcome::PreconditionFailed => Err(Error::downstream(ErrorKind::PreconditionFailed)),
    }
}

/// Step 6: RFC 9110 section 14.2: Range applies to GET only, is ignored when
/// invalid or repeated, and If-Range (section 13.1.5) may turn it off.
fn range_plan(parts: &Parts, file: &OpenFile) -> Plan {
    if parts.method != Method::GET {
        return Plan::Full;
    }
    let mut values = parts.headers.get_all(header::RANGE).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Plan::Full;
    };
    let Some(specs) = value.to_str().ok().and_then(range::parse) else {
        return Plan::Full;
    };
    if !conditional::if_range_allows(&parts.headers, &file.validators, SystemTime::now()) {
        return Plan::Full;
    }
    range::plan(&specs, file.len)
}

/// 304 (RFC 9110 section 15.4.5): the validators a 200 would carry, no
/// content headers, no body.
fn not_modified(validators: &Validators) -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NOT_MODIFIED;
    let headers = response.headers_mut();
    headers.insert(header::ETAG, validators.etag_header());
    if let Some(last_modified) = validators.last_modified_header() {
        headers.insert(header::LAST_MODIFIED, last_modified);
    }
    response
}
