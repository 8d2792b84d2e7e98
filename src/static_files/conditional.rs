//! Conditional requests, RFC 9110 section 13: If-Match, If-None-Match,
//! If-Modified-Since, If-Unmodified-Since, If-Range.

use std::time::{Duration, SystemTime};

use http::header::{self, HeaderMap, HeaderName};
use http::Method;

use super::validators::Validators;

/// What the preconditions decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Serve the request (Range may still apply).
    Proceed,
    /// 304 Not Modified.
    NotModified,
    /// 412 Precondition Failed.
    PreconditionFailed,
}

/// Evaluate the preconditions in the order of RFC 9110 section 13.2.2 (steps
/// 1 to 4; If-Range, step 5, is [`if_range_allows`]) at time `now`.
pub fn evaluate(method: &Method, headers: &HeaderMap, v: &Validators, now: SystemTime) -> Outcome {
    let get_or_head = method == Method::GET || method == Method::HEAD;
    // Step 1; section 13.1.1: If-Match uses the strong comparison.
    if let Some(tags) = tag_list(headers, &header::IF_MATCH) {
        if !tags.matches(v.etag(), Comparison::Strong) {
            return Outcome::PreconditionFailed;
        }
    // Step 2; section 13.1.4: only when there is no If-Match.
    } else if let Some(since) = date(headers, &header::IF_UNMODIFIED_SINCE) {
        if v.last_modified().is_some_and(|lm| lm > since) {
            return Outcome::PreconditionFailed;
        }
    }
    // Step 3; section 13.1.2: If-None-Match uses the weak comparison.
    if let Some(tags) = tag_list(headers, &header::IF_NONE_MATCH) {
        if tags.matches(v.etag(), Comparison::Weak) {
            return if get_or_head {
                Outcome::NotModified
            } else {
                Outcome::PreconditionFailed
            };
        }
    // Step 4; section 13.1.3: only without If-None-Match, only for GET/HEAD.
    // A date in the future is a skewed or forged clock; honouring it could pin
    // a stale copy for a while, so it is ignored (as Apache does).
    } else if get_or_head {
        if let Some(since) = date(headers, &header::IF_MODIFIED_SINCE).filter(|&d| d <= now) {
            if v.last_modified().is_some_and(|lm| lm <= since) {
                return Outcome::NotModified;
            }
        }
    }
    Outcome::Proceed
}

/// RFC 9110 section 13.1.5: true when a Range may be honoured: no If-Range,
/// or one that names the current representation (an entity tag by strong
/// comparison, or a date exactly equal to a strong Last-Modified).
pub fn if_range_allows(headers: &HeaderMap, v: &Validators, now: SystemTime) -> bool {
    let mut values = headers.get_all(header::IF_RANGE).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        // Absent: allowed. Repeated: not a valid If-Range, so no range.
        return headers.get(header::IF_RANGE).is_none();
    };
    let Ok(text) = value.to_str() else {
        return false;
    };
    let text = text.trim();
    if text.starts_with('"') || text.starts_with("W/") {
        let (tag, rest) = parse_tag(text);
        return rest.trim().is_empty()
            && tag.is_some_and(|t| t.matches(v.etag(), Comparison::Strong));
    }
    // Section 8.8.2.2: Last-Modified is strong only when at least a second old;
    // a file changed twice within one second keeps its date.
    match (httpdate::parse_http_date(text), v.last_modified()) {
        (Ok(date), Some(lm)) => date == lm && lm + Duration::from_secs(1) <= now,
        _ => false,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Strong,
    Weak,
}

/// One entity tag from a request header.
#[derive(Debug, PartialEq, Eq)]
struct Tag<'a> {
    weak: bool,
    /// The opaque part, without quotes.
    opaque: &'a str,
}

impl Tag<'_> {
    /// RFC 9110 section 8.8.3.2; `ours` is our own (strong, quoted) tag.
    fn matches(&self, ours: &str, how: Comparison) -> bool {
        let ours = ours.trim_matches('"');
        match how {
            Comparison::Strong => !self.weak && self.opaque == ours,
            Comparison::Weak => self.opaque == ours,
        }
    }
}

/// `*` or a list of entity tags, gathered from every line of a header.
#[derive(Debug, PartialEq, Eq)]
enum TagList<'a> {
    Any,
    Tags(Vec<Tag<'a>>),
}

impl TagList<'_> {
    fn matches(&self, ours: &str, how: Comparison) -> bool {
        match self {
            // The selected representation exists (we only get here for files).
            TagList::Any => true,
            TagList::Tags(tags) => tags.iter().any(|t| t.matches(ours, how)),
        }
    }
}

/// The tags of `name`, or `None` when the header is absent. Malformed members
/// are skipped, so they match nothing.
fn tag_list<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<TagList<'a>> {
    let mut values = headers.get_all(name).iter().peekable();
    values.peek()?;
    let mut tags = Vec::new();
    for value in values {
        let Ok(mut rest) = value.to_str() else {
            continue;
        };
        loop {
            rest = rest.trim_start_matches([' ', '\t', ',']);
            if rest.is_empty() {
                break;
            }
            if let Some(after) = rest.strip_prefix('*') {
                if after.trim_start_matches([' ', '\t']).is_empty() || after.starts_with(',') {
                    return Some(TagList::Any);
                }
            }
            let (tag, after) = parse_tag(rest);
            tags.extend(tag);
            rest = after;
        }
    }
    Some(TagList::Tags(tags))
}

/// Parse one `entity-tag` at the start of `text`; on malformed input skip to
/// the next comma. Returns the tag and what follows it.
fn parse_tag(text: &str) -> (Option<Tag<'_>>, &str) {
    let (weak, quoted) = match text.strip_prefix("W/") {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    if let Some(inner) = quoted.strip_prefix('"') {
        if let Some(end) = inner.find('"') {
            let after = &inner[end + 1..];
            // The tag must end at a list separator or the end of the value.
            let next = after.trim_start_matches([' ', '\t']);
            if next.is_empty() || next.starts_with(',') {
                let opaque = &inner[..end];
                return (Some(Tag { weak, opaque }), next);
            }
        }
    }
    let skip = text.find(',').unwrap_or(text.len());
    (None, &text[skip..])
}

/// An HTTP date header; invalid or repeated values are ignored (section 13.1.3).
fn date(headers: &HeaderMap, name: &HeaderName) -> Option<SystemTime> {
    let mut values = headers.get_all(name).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return None;
    };
    httpdate::parse_http_date(value.to_str().ok()?.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const LM: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    const BEFORE: &str = "Sun, 06 Nov 1994 08:49:36 GMT";
    const AFTER: &str = "Sun, 06 Nov 1994 08:49:38 GMT";

    fn validators() -> Validators {
        // 784111777 is 1994-11-06 08:49:37 UTC.
        Validators::new(0x1234, 784_111_777, 500)
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    /// A day after LM.
    fn now() -> SystemTime {
        validators().last_modified().unwrap() + Duration::from_secs(86_400)
    }

    fn eval(method: Method, pairs: &[(&str, &str)]) -> Outcome {
        evaluate(&method, &headers(pairs), &validators(), now())
    }

    #[test]
    fn no_conditions_proceed() {
        assert_eq!(eval(Method::GET, &[]), Outcome::Proceed);
    }

    #[test]
    fn if_none_match() {
        use Outcome::*;
        let tag = validators().etag().to_owned();
        let weak = format!("W/{tag}");
        let list = format!("\"other\", {tag}");
        for (value, expected) in [
            (tag.as_str(), NotModified),
            (weak.as_str(), NotModified),
            ("*", NotModified),
            (list.as_str(), NotModified),
            ("\"other\"", Proceed),
            ("W/\"other\", \"x,y\"", Proceed),
            ("1234-ae1b981bc490bf4", Proceed), // unquoted: malformed
            ("", Proceed),
        ] {
            assert_eq!(
                eval(Method::GET, &[("if-none-match", value)]),
                expected,
                "{value}"
            );
        }
        assert_eq!(eval(Method::HEAD, &[("if-none-match", &tag)]), NotModified);
        // Other methods get 412 instead of 304.
        assert_eq!(
            eval(Method::PUT, &[("if-none-match", "*")]),
            PreconditionFailed
        );
        // Across several header lines.
        let h = [("if-none-match", "\"a\""), ("if-none-match", tag.as_str())];
        assert_eq!(eval(Method::GET, &h), NotModified);
    }

    #[test]
    fn if_match_is_strong() {
        use Outcome::*;
        let tag = validators().etag().to_owned();
        let weak = format!("W/{tag}");
        assert_eq!(eval(Method::GET, &[("if-match", &tag)]), Proceed);
        assert_eq!(eval(Method::GET, &[("if-match", "*")]), Proceed);
        assert_eq!(eval(Method::GET, &[("if-match", "\"a\", *")]), Proceed);
        assert_eq!(
            eval(Method::GET, &[("if-match", &weak)]),
            PreconditionFailed
        );
        assert_eq!(
            eval(Method::GET, &[("if-match", "\"nope\"")]),
            PreconditionFailed
        );
        assert_eq!(
            eval(Method::GET, &[("if-match", "garbage")]),
            PreconditionFailed
        );
    }

    #[test]
    fn if_unmodified_since() {
        use Outcome::*;
        assert_eq!(eval(Method::GET, &[("if-unmodified-since", LM)]), Proceed);
        assert_eq!(
            eval(Method::GET, &[("if-unmodified-since", AFTER)]),
            Proceed
        );
        assert_eq!(
            eval(Method::GET, &[("if-unmodified-since", BEFORE)]),
            PreconditionFailed
        );
        assert_eq!(
            eval(Method::GET, &[("if-unmodified-since", "yesterday")]),
            Proceed
        );
        // Ignored when If-Match is present (and If-Match passes).
        let tag = validators().etag().to_owned();
        let h = [("if-match", tag.as_str()), ("if-unmodified-since", BEFORE)];
        assert_eq!(eval(Method::GET, &h), Proceed);
    }

    #[test]
    fn if_modified_since() {
        use Outcome::*;
        assert_eq!(eval(Method::GET, &[("if-modified-since", LM)]), NotModified);
        assert_eq!(
            eval(Method::GET, &[("if-modified-since", AFTER)]),
            NotModified
        );
        assert_eq!(eval(Method::GET, &[("if-modified-since", BEFORE)]), Proceed);
        assert_eq!(
            eval(Method::HEAD, &[("if-modified-since", LM)]),
            NotModified
        );
        // RFC 850 and asctime forms are HTTP dates too.
        let rfc850 = "Sunday, 06-Nov-94 08:49:37 GMT";
        assert_eq!(
            eval(Method::GET, &[("if-modified-since", rfc850)]),
            NotModified
        );
        let asctime = "Sun Nov  6 08:49:37 1994";
        assert_eq!(
            eval(Method::GET, &[("if-modified-since", asctime)]),
            NotModified
        );
        // Invalid dates and other methods: ignored.
        assert_eq!(eval(Method::GET, &[("if-modified-since", "soon")]), Proceed);
        assert_eq!(eval(Method::POST, &[("if-modified-since", LM)]), Proceed);
        // Ignored when If-None-Match is present.
        let h = [("if-none-match", "\"other\""), ("if-modified-since", AFTER)];
        assert_eq!(eval(Method::GET, &h), Proceed);
    }

    #[test]
    fn if_modified_since_in_the_future_is_ignored() {
        let v = validators();
        let tomorrow = httpdate::fmt_http_date(now() + Duration::from_secs(86_400));
        let h = headers(&[("if-modified-since", &tomorrow)]);
        assert_eq!(evaluate(&Method::GET, &h, &v, now()), Outcome::Proceed);
    }

    #[test]
    fn if_range_date_needs_a_strong_last_modified() {
        let v = validators();
        let h = headers(&[("if-range", LM)]);
        let lm = v.last_modified().unwrap();
        assert!(!if_range_allows(&h, &v, lm));
        assert!(!if_range_allows(&h, &v, lm + Duration::from_millis(999)));
        assert!(if_range_allows(&h, &v, lm + Duration::from_secs(1)));
    }

    #[test]
    fn if_match_failure_wins_over_not_modified() {
        let h = [("if-match", "\"nope\""), ("if-none-match", "*")];
        assert_eq!(eval(Method::GET, &h), Outcome::PreconditionFailed);
    }

    #[test]
    fn if_range() {
        let v = validators();
        let check = |pairs: &[(&str, &str)]| if_range_allows(&headers(pairs), &v, now());
        let weak = format!("W/{}", v.etag());
        assert!(check(&[]));
        assert!(check(&[("if-range", v.etag())]));
        assert!(check(&[("if-range", LM)]));
        assert!(!check(&[("if-range", &weak)]));
        assert!(!check(&[("if-range", "\"other\"")]));
        assert!(!check(&[("if-range", AFTER)]));
        assert!(!check(&[("if-range", BEFORE)]));
        assert!(!check(&[("if-range", "not a date")]));
        assert!(!check(&[("if-range", v.etag()), ("if-range", v.etag())]));
    }

    #[test]
    fn tag_parsing() {
        let h = headers(&[("if-none-match", " W/\"a\" ,\"b,c\",, bad, \"d\"x, \"e\"")]);
        let list = tag_list(&h, &header::IF_NONE_MATCH).unwrap();
        let expected = vec![
            Tag {
                weak: true,
                opaque: "a",
            },
            Tag {
                weak: false,
                opaque: "b,c",
            },
            Tag {
                weak: false,
                opaque: "e",
            },
        ];
        assert_eq!(list, TagList::Tags(expected));
        assert_eq!(tag_list(&h, &header::IF_MATCH), None);
    }
}
