//! Validators, RFC 9110 section 8.8: the strong ETag and Last-Modified of a
//! file, made from its metadata.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderValue;

/// What a file's state is compared against. Shared: a cached file's hits
/// each take a reference, not copies of its three header values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validators(Arc<Inner>);

#[derive(Debug, PartialEq, Eq)]
struct Inner {
    /// The strong entity tag, quotes included: `"<len hex>-<mtime ns hex>"`.
    etag: String,
    /// Modification time, whole seconds as HTTP dates carry; `None` when it
    /// cannot be written as an HTTP date (before 1970 or after 9999).
    last_modified: Option<SystemTime>,
    /// The two as header values, made once: a cached file is served many
    /// times, and formatting the date was ~1.5% of a small file's cost.
    etag_value: HeaderValue,
    last_modified_value: Option<HeaderValue>,
    /// The whole file's `Content-Length`, with the length it was made for.
    length_value: Option<(u64, HeaderValue)>,
}

impl Validators {
    pub fn from_metadata(meta: &Metadata) -> Self {
        Validators::new(meta.len(), meta.mtime(), meta.mtime_nsec())
    }

    /// From length and modification time (seconds and nanoseconds since the
    /// epoch, as `stat` gives them).
    pub fn new(len: u64, mtime_secs: i64, mtime_nsec: i64) -> Self {
        let nanos = i128::from(mtime_secs) * 1_000_000_000 + i128::from(mtime_nsec);
        // Pre-epoch times are clamped; the length still tells files apart.
        let etag = format!("\"{len:x}-{:x}\"", nanos.max(0));
        // httpdate panics outside [1970, 9999].
        let last_modified = u64::try_from(mtime_secs)
            .ok()
            .filter(|&secs| secs < 253_402_300_800)
            .map(|secs| UNIX_EPOCH + Duration::from_secs(secs));
        Validators(Arc::new(Inner {
            length_value: Some((len, HeaderValue::from(len))),
            ..Inner::new(etag, last_modified)
        }))
    }

    /// `etag` is a quoted entity tag (made by [`Validators::new`] or derived
    /// from one).
    pub fn from_parts(etag: String, last_modified: Option<SystemTime>) -> Self {
        Validators(Arc::new(Inner::new(etag, last_modified)))
    }

    /// The entity tag, quotes included.
    pub fn etag(&self) -> &str {
        &self.0.etag
    }

    /// Modification time, whole seconds as HTTP dates carry; `None` when it
    /// cannot be written as an HTTP date (before 1970 or after 9999).
    pub fn last_modified(&self) -> Option<SystemTime> {
        self.0.last_modified
    }

    pub fn etag_header(&self) -> HeaderValue {
        self.0.etag_value.clone()
    }

    pub fn last_modified_header(&self) -> Option<HeaderValue> {
        self.0.last_modified_value.clone()
    }

    /// `Content-Length: len`, made once per file version for the length it
    /// was seen with (a cached file's full responses then allocate none).
    pub fn length_header(&self, len: u64) -> HeaderValue {
        match &self.0.length_value {
            Some((known, value)) if *known == len => value.clone(),
            _ => HeaderValue::from(len),
        }
    }
}

impl Inner {
    fn new(etag: String, last_modified: Option<SystemTime>) -> Self {
        Inner {
            etag_value: HeaderValue::from_str(&etag).expect("hex digits and quotes"),
            last_modified_value: last_modified
                .map(|t| HeaderValue::from_str(&httpdate::fmt_http_date(t)).expect("ASCII date")),
            etag,
            last_modified,
            length_value: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LM: &str = "Sun, 06 Nov 1994 08:49:37 GMT";

    fn validators() -> Validators {
        // 784111777 is 1994-11-06 08:49:37 UTC.
        Validators::new(0x1234, 784_111_777, 500)
    }

    #[test]
    fn etag_and_last_modified_format() {
        let v = validators();
        assert_eq!(v.etag(), "\"1234-ae1b981bc490bf4\"");
        assert_eq!(v.last_modified_header().unwrap(), LM);
        assert_eq!(v.etag_header(), v.etag());
        // Nanoseconds change the tag but not the HTTP date.
        let later = Validators::new(0x1234, 784_111_777, 501);
        assert_ne!(later.etag(), v.etag());
        assert_eq!(later.last_modified(), v.last_modified());
        // A different length changes the tag.
        assert_ne!(Validators::new(0x1235, 784_111_777, 500).etag(), v.etag());
    }

    #[test]
    fn dates_outside_http_range_have_no_last_modified() {
        let old = Validators::new(3, -10, 0);
        assert_eq!(old.etag(), "\"3-0\"");
        assert_eq!(old.last_modified(), None);
        assert_eq!(Validators::new(3, 253_402_300_800, 0).last_modified(), None);
        assert!(Validators::new(3, 253_402_300_799, 0)
            .last_modified()
            .is_some());
    }
}
