//! Response compression: gzip and brotli, chosen from `Accept-Encoding`.
//!
//! Static files use it through `static_files::compress` (which adds
//! precompressed `.gz`/`.br` files); CGI and FastCGI routes with
//! `compress: true` through [`gateway_response`]. Everything else is sent as
//! it is.

pub mod accept;
pub mod encoder;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::BodyDataStream;

pub use self::accept::{acceptable, negotiate};
pub use self::encoder::{compress_all, compress_stream, Compressor};
use crate::body::Body;
use crate::config::Compression;
use crate::reply::Reply;

/// A content coding gatehouse produces (RFC 9110 section 8.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    Gzip,
    Brotli,
}

impl Encoding {
    /// The `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Encoding::Gzip => "gzip",
            Encoding::Brotli => "br",
        }
    }

    /// The file name suffix of a precompressed copy (`style.css.gz`).
    pub fn extension(self) -> &'static str {
        match self {
            Encoding::Gzip => ".gz",
            Encoding::Brotli => ".br",
        }
    }

    /// Appended inside an ETag's quotes: each coding is its own
    /// representation with its own tag (RFC 9110 section 8.8.3).
    pub fn etag_suffix(self) -> &'static str {
        match self {
            Encoding::Gzip => "-gz",
            Encoding::Brotli => "-br",
        }
    }

    fn header_value(self) -> HeaderValue {
        HeaderValue::from_static(self.token())
    }
}

/// The codings the configuration allows, in the server's preference (brotli
/// compresses text 15 to 25 per cent smaller than gzip at similar speed).
/// Asked on every static request: no allocation.
pub fn offered(config: &Compression) -> &'static [Encoding] {
    match (
        config.enabled && config.brotli,
        config.enabled && config.gzip,
    ) {
        (true, true) => &[Encoding::Brotli, Encoding::Gzip],
        (true, false) => &[Encoding::Brotli],
        (false, true) => &[Encoding::Gzip],
        (false, false) => &[],
    }
}

/// The encoder level for `encoding` under `config`.
pub fn level(config: &Compression, encoding: Encoding) -> u32 {
    match encoding {
        Encoding::Gzip => config.gzip_level,
        Encoding::Brotli => config.brotli_level,
    }
}

/// Media types worth compressing: text and text-like formats. Everything
/// else (images, audio, video, archives, woff/woff2 fonts, PDF) is already
/// compressed or binary, and is sent as it is.
pub fn compressible(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    // Lowercased only when it is not already (types we name always are).
    let lowered;
    let essence = if essence.bytes().any(|b| b.is_ascii_uppercase()) {
        lowered = essence.to_ascii_lowercase();
        lowered.as_str()
    } else {
        essence
    };
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    match kind {
        "text" => true,
        "application" => {
            subtype.ends_with("+json")
                || subtype.ends_with("+xml")
                || matches!(
                    subtype,
                    "javascript"
                        | "x-javascript"
                        | "ecmascript"
                        | "json"
                        | "xml"
                        | "wasm"
                        | "x-sh"
                        | "x-tar"
                        | "rtf"
                        | "postscript"
                        | "vnd.ms-fontobject"
                        | "x-font-ttf"
                        | "x-font-otf"
                        | "x-httpd-php"
                )
        }
        "image" => matches!(subtype, "svg+xml" | "x-icon" | "vnd.microsoft.icon" | "bmp"),
        "font" => matches!(subtype, "ttf" | "otf" | "sfnt" | "collection"),
        _ => false,
    }
}

/// An entity tag for the `encoding` form of the representation tagged
/// `etag`: `"abc"` -> `"abc-gz"`, `W/"abc"` -> `W/"abc-gz"`.
pub fn encoded_etag(etag: &str, encoding: Encoding) -> Option<String> {
    let trimmed = etag.trim();
    let (weak, quoted) = match trimmed.strip_prefix("W/") {
        Some(rest) => ("W/", rest),
        None => ("", trimmed),
    };
    let opaque = quoted.strip_prefix('"')?.strip_suffix('"')?;
    Some(format!("{weak}\"{opaque}{}\"", encoding.etag_suffix()))
}

/// Add `Accept-Encoding` to `Vary` unless it is there already (or `*`).
pub fn add_vary(headers: &mut HeaderMap) {
    let present = headers.get_all(header::VARY).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .map(str::trim)
                .any(|f| f == "*" || f.eq_ignore_ascii_case("accept-encoding"))
        })
    });
    if !present {
        headers.append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
}

/// A CGI/FastCGI reply, compressed when its route has `compress: true`, the
/// client accepts a coding, and the program left the body as it is: no
/// `Content-Encoding` of its own, a compressible type, a status with a body
/// that is not partial, and no known length under `min_size`. Its output is
/// flushed chunk by chunk, so a program that streams still streams.
pub fn gateway_response(
    reply: Reply,
    request: &HeaderMap,
    config: &Compression,
    route_opted_in: bool,
) -> Reply {
    let Reply::Response(mut response) = reply else {
        return reply;
    };
    if !route_opted_in || !config.enabled || !worth_compressing(&response, config) {
        return Reply::Response(response);
    }
    add_vary(response.headers_mut());
    let Some(encoding) = negotiate(request, offered(config)) else {
        return Reply::Response(response);
    };
    let (mut parts, body) = response.into_parts();
    let headers = &mut parts.headers;
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::ACCEPT_RANGES);
    headers.insert(header::CONTENT_ENCODING, encoding.header_value());
    if let Some(etag) = headers
        .get(header::ETAG)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| encoded_etag(v, encoding))
        .and_then(|v| HeaderValue::from_str(&v).ok())
    {
        headers.insert(header::ETAG, etag);
    }
    let compressor = Compressor::new(encoding, level(config, encoding));
    let body = Body::stream(compress_stream(BodyDataStream::new(body), compressor, true));
    Reply::Response(Response::from_parts(parts, body))
}

fn worth_compressing(response: &Response<Body>, config: &Compression) -> bool {
    let status = response.status();
    let headers = response.headers();
    let has_body = status.is_success()
        && status != StatusCode::NO_CONTENT
        && status != StatusCode::PARTIAL_CONTENT;
    let compressible_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(compressible);
    // A program's length is its body's, not a header (see gateway::body).
    let long_enough = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .or_else(|| http_body::Body::size_hint(response.body()).exact())
        .is_none_or(|len| len >= config.min_size);
    has_body
        && compressible_type
        && long_enough
        && !headers.contains_key(header::CONTENT_ENCODING)
        && !headers.contains_key(header::CONTENT_RANGE)
}

#[cfg(test)]
mod tests;
