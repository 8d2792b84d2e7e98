//! Which form of a static file to send: the file itself, a precompressed
//! copy beside it (`style.css.br`, `style.css.gz`, as nginx's `gzip_static`
//! and Caddy's `precompressed` do), or the file compressed as it is sent.
//!
//! Each form is its own representation (RFC 9110 section 8.8.3): its ETag
//! carries a suffix inside the quotes (`"…-br"`, `"…-gz"`), so conditional
//! requests and caches never mix them up, and every response for a
//! compressible type says `Vary: Accept-Encoding`, whichever form it got.
//!
//! Not compressed: Range requests (ranges are of the file as stored),
//! types that are already compressed (images, video, archives, woff
//! fonts: see [`crate::compress::compressible`]) and files under
//! `compression.min_size`. A precompressed copy is used only when it is a
//! regular file under the root and not older than the file itself.

use std::path::Path;

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode};

use super::mime::{self, MediaType};
use super::resolve::{self, OpenFile, Wants};
use super::source::Source;
use super::validators::Validators;
use super::Asks;
use crate::body::Body;
use crate::compress::{self, Compressor, Encoding};
use crate::config::Compression;
use crate::error::Error;
use crate::paths;

/// A precompressed copy found beside a file.
#[derive(Debug)]
pub struct Sidecar {
    pub encoding: Encoding,
    /// Opened like the file itself; its `url_path` is the original's (the
    /// type comes from it).
    pub file: OpenFile,
}

/// The codings this request may get, most wanted first: none for a Range
/// request (GET only: RFC 9110 section 14.2) or when compression is off.
pub fn wanted(parts: &Parts, asks: Asks, config: &Compression) -> Vec<Encoding> {
    if !asks.accept_encoding || (parts.method == Method::GET && asks.range) {
        return Vec::new();
    }
    compress::acceptable(&parts.headers, compress::offered(config))
}

/// True when responses for a file of this media type depend on
/// `Accept-Encoding`.
pub fn varies(media: &MediaType, config: &Compression) -> bool {
    media.compressible && !compress::offered(config).is_empty()
}

/// True when a request for `url_path` names a file by an extension whose
/// type is never compressed. (A path without one may be a directory whose
/// index file is.)
pub fn never_compressed(url_path: &str) -> bool {
    let has_extension = mime::extension(url_path).is_some_and(|ext| !ext.is_empty());
    has_extension && !mime::media_type(url_path).compressible
}

/// The first of `encodings` with a usable precompressed copy of `file`.
/// Blocking: part of the resolve step.
pub fn find_sidecar(
    root: &Path,
    file: &OpenFile,
    encodings: &[Encoding],
    wants: Wants,
) -> Option<Sidecar> {
    if encodings.is_empty() || !file.media.compressible {
        return None;
    }
    encodings.iter().find_map(|&encoding| {
        let url_path = format!("{}{}", file.url_path, encoding.extension());
        // Confined like any request path: a symlinked copy pointing outside
        // the root is not used.
        let found = paths::confine(root, &url_path).ok()?;
        if !std::fs::metadata(&found).ok()?.is_file() {
            return None;
        }
        let mut copy = resolve::open(&found, &file.url_path, wants).ok()?;
        let fresh = match (copy.modified, file.modified) {
            (Some(copy_time), Some(file_time)) => copy_time >= file_time,
            _ => false,
        };
        copy.sidecar = None;
        fresh.then_some(Sidecar {
            encoding,
            file: copy,
        })
    })
}

/// What to send for a file.
pub enum Choice {
    /// The file as stored (ranges and all).
    Identity(OpenFile),
    Encoded(Encoded),
}

/// The file in one content coding.
pub struct Encoded {
    file: OpenFile,
    encoding: Encoding,
    validators: Validators,
    /// `Some(level)`: compress while sending; `None`: `file` is a
    /// precompressed copy, sent as it is.
    on_the_fly: Option<u32>,
}

/// Precompressed copy first, then compression on the fly (only for
/// compressible files of at least `min_size`), else the file as stored.
pub fn choose(mut file: OpenFile, encodings: &[Encoding], config: &Compression) -> Choice {
    if let Some(sidecar) = file.sidecar.take() {
        return Choice::Encoded(Encoded {
            validators: encoded_validators(&sidecar.file.validators, sidecar.encoding),
            file: sidecar.file,
            encoding: sidecar.encoding,
            on_the_fly: None,
        });
    }
    match encodings.first() {
        Some(&encoding) if file.len >= config.min_size && file.media.compressible => {
            Choice::Encoded(Encoded {
                validators: encoded_validators(&file.validators, encoding),
                file,
                encoding,
                on_the_fly: Some(compress::level(config, encoding)),
            })
        }
        _ => Choice::Identity(file),
    }
}

fn encoded_validators(v: &Validators, encoding: Encoding) -> Validators {
    Validators::from_parts(
        compress::encoded_etag(v.etag(), encoding).unwrap_or_else(|| v.etag().to_owned()),
        v.last_modified(),
    )
}

impl Encoded {
    /// Preconditions against this form's validators, then a 200 (or 304).
    pub fn serve(self, parts: &Parts, asks: Asks) -> Result<Response<Body>, Error> {
        if let Some(not_modified) = super::check_preconditions(parts, asks, &self.validators)? {
            return Ok(not_modified);
        }
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::OK;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, self.file.media.header.clone());
        headers.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(self.encoding.token()),
        );
        headers.insert(header::ETAG, self.validators.etag_header());
        if let Some(last_modified) = self.validators.last_modified_header() {
            headers.insert(header::LAST_MODIFIED, last_modified);
        }
        let len = self.file.len;
        let (length, body) = match (self.on_the_fly, self.file.source) {
            // HEAD: a precompressed copy's length is known, a compressed
            // stream's is not (and may be left out: RFC 9110 section 8.6).
            (None, None) => (Some(len), Body::empty()),
            (Some(_), None) => (None, Body::empty()),
            // Sidecars are copied: they are small, and this keeps zero-copy
            // bodies to one path.
            (None, Some(source)) => (Some(len), source.whole(len, None)),
            (Some(level), Some(Source::Memory(bytes, _))) => {
                let packed = compress::compress_all(self.encoding, level, &bytes)
                    .map_err(Error::internal)?;
                (Some(packed.len() as u64), Body::full(packed))
            }
            (Some(level), Some(Source::File(file))) => {
                let chunks = Box::pin(super::file_stream::read_range(
                    std::sync::Arc::new(file),
                    0,
                    len,
                ));
                let compressor = Compressor::new(self.encoding, level);
                (
                    None,
                    Body::stream(compress::compress_stream(chunks, compressor, false)),
                )
            }
        };
        if let Some(length) = length {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        }
        *response.body_mut() = body;
        Ok(response)
    }
}
