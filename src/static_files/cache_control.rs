//! `cache_control:`: a `Cache-Control` header for static responses by path
//! prefix, the longest prefix winning.

use http::header::{self, HeaderMap};
use http::StatusCode;

use crate::config::CacheControlRule;

/// Add the rule's header for `path` to a 200, 206 or 304 (a 304 carries
/// what the 200 would: RFC 9110 section 15.4.5). `rules` are longest prefix
/// first, as the configuration keeps them.
pub fn apply(rules: &[CacheControlRule], path: &str, status: StatusCode, headers: &mut HeaderMap) {
    let cacheable = matches!(
        status,
        StatusCode::OK | StatusCode::PARTIAL_CONTENT | StatusCode::NOT_MODIFIED
    );
    if !cacheable {
        return;
    }
    if let Some(rule) = rules.iter().find(|r| path.starts_with(r.prefix.as_str())) {
        headers.insert(header::CACHE_CONTROL, rule.value.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn rules() -> Vec<CacheControlRule> {
        [
            ("/static/img/", "public, max-age=31536000, immutable"),
            ("/static/", "public, max-age=86400"),
            ("/", "no-cache"),
        ]
        .into_iter()
        .map(|(prefix, value)| CacheControlRule {
            prefix: prefix.to_owned(),
            value: HeaderValue::from_static(value),
        })
        .collect()
    }

    fn header_for(path: &str, status: StatusCode) -> Option<String> {
        let mut headers = HeaderMap::new();
        apply(&rules(), path, status, &mut headers);
        headers
            .get(header::CACHE_CONTROL)
            .map(|v| v.to_str().unwrap().to_owned())
    }

    #[test]
    fn longest_prefix_wins() {
        let ok = StatusCode::OK;
        assert_eq!(
            header_for("/static/img/a.png", ok).as_deref(),
            Some("public, max-age=31536000, immutable")
        );
        assert_eq!(
            header_for("/static/app.css", ok).as_deref(),
            Some("public, max-age=86400")
        );
        assert_eq!(header_for("/index.html", ok).as_deref(), Some("no-cache"));
        assert_eq!(header_for("/staticfile", ok).as_deref(), Some("no-cache"));
    }

    #[test]
    fn only_on_successful_and_not_modified_responses() {
        assert!(header_for("/static/a", StatusCode::NOT_MODIFIED).is_some());
        assert!(header_for("/static/a", StatusCode::PARTIAL_CONTENT).is_some());
        assert!(header_for("/static/a", StatusCode::NOT_FOUND).is_none());
        assert!(header_for("/static/", StatusCode::MOVED_PERMANENTLY).is_none());
        let mut headers = HeaderMap::new();
        apply(&[], "/x", StatusCode::OK, &mut headers);
        assert!(headers.is_empty());
    }
}
