//! Content-Type from the file name's extension.

use std::cell::RefCell;
use std::collections::HashMap;

use http::HeaderValue;

/// Types that are text but not `text/*`: without a charset, browsers guess
/// (and a guessed UTF-7 or Latin-1 has been an XSS vector).
const TEXT_LIKE: &[&str] = &[
    "application/javascript",
    "application/json",
    "application/xml",
    "image/svg+xml",
];

/// Extensions whose type was worked out, per thread: the table search, the
/// formatting and the header validation were ~3% of a small file's cost.
/// Bounded, since any served file name can add one.
const MEMO_LIMIT: usize = 256;

thread_local! {
    static MEMO: RefCell<HashMap<Box<str>, MediaType>> = RefCell::new(HashMap::new());
}

/// What a file's name says about its content: worked out once per opened
/// file (and kept with a cached one), not once per response.
#[derive(Debug, Clone)]
pub struct MediaType {
    /// The Content-Type value.
    pub header: HeaderValue,
    /// Worth compressing ([`crate::compress::compressible`]).
    pub compressible: bool,
}

impl MediaType {
    fn new(header: HeaderValue) -> MediaType {
        let compressible = header.to_str().is_ok_and(crate::compress::compressible);
        MediaType {
            header,
            compressible,
        }
    }
}

/// The media type of a URL path: the type its extension names, with
/// `; charset=utf-8` for text; `application/octet-stream` when unknown.
pub fn media_type(path: &str) -> MediaType {
    let Some(ext) = extension(path) else {
        return MediaType::new(of_path(path));
    };
    MEMO.with(|memo| {
        if let Some(media) = memo.borrow().get(ext) {
            return media.clone();
        }
        let media = MediaType::new(of_path(path));
        let mut memo = memo.borrow_mut();
        if memo.len() >= MEMO_LIMIT {
            memo.clear();
        }
        memo.insert(ext.into(), media.clone());
        media
    })
}

/// The extension of a URL path's last segment, as `Path::extension` has it:
/// `.png` alone is a name without one, `file.` has an empty one.
pub fn extension(path: &str) -> Option<&str> {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.rsplit_once('.')
        .filter(|(stem, _)| !stem.is_empty())
        .map(|(_, ext)| ext)
}

fn of_path(path: &str) -> HeaderValue {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let essence = mime.essence_str();
    let is_text = mime.type_() == mime_guess::mime::TEXT || TEXT_LIKE.contains(&essence);
    let value = if is_text {
        format!("{essence}; charset=utf-8")
    } else {
        essence.to_owned()
    };
    // Built from a registered type name: always a valid header value.
    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("application/octet-stream"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_and_charsets() {
        for (path, expected) in [
            ("/index.html", "text/html; charset=utf-8"),
            ("/INDEX.HTM", "text/html; charset=utf-8"),
            ("/style.css", "text/css; charset=utf-8"),
            ("/a.txt", "text/plain; charset=utf-8"),
            ("/app.js", "text/javascript; charset=utf-8"),
            ("/mod.mjs", "application/javascript; charset=utf-8"),
            ("/data.json", "application/json; charset=utf-8"),
            ("/logo.svg", "image/svg+xml; charset=utf-8"),
            ("/feed.xml", "text/xml; charset=utf-8"),
            // A dotfile named like an extension must not decide for it.
            ("/.png", "application/octet-stream"),
            ("/photo.png", "image/png"),
            ("/again.PNG", "image/png"),
            ("/photo.JPG", "image/jpeg"),
            ("/doc.pdf", "application/pdf"),
            ("/a.wasm", "application/wasm"),
            ("/archive.tar.gz", "application/gzip"),
            ("/README", "application/octet-stream"),
            ("/file.unknownext", "application/octet-stream"),
            ("/dir.d/noext", "application/octet-stream"),
            ("/.hidden", "application/octet-stream"),
        ] {
            assert_eq!(media_type(path).header, expected, "{path}");
        }
    }
}
