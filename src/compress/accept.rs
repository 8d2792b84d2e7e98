//! `Accept-Encoding`, RFC 9110 section 12.5.3: which content coding, if any,
//! the client wants for this response.

use http::header::{self, HeaderMap};

use super::Encoding;

/// q-values in thousandths (section 12.4.2: at most three decimals).
type Q = u16;

/// The coding to send among `offered` (in the server's order of preference,
/// which breaks ties), or `None` for the identity coding.
pub fn negotiate(headers: &HeaderMap, offered: &[Encoding]) -> Option<Encoding> {
    acceptable(headers, offered).first().copied()
}

/// The codings of `offered` that the client accepts rather than identity,
/// most wanted first (equal weights keep the order of `offered`).
///
/// - No `Accept-Encoding`: identity (section 12.5.3 allows any coding, but
///   a client that says nothing may not decode anything).
/// - `q=0` refuses a coding; `*` stands for every coding not named.
/// - `identity` (named, or through `*`) wins when its weight is higher than
///   that of every offered coding: `gzip;q=0.5, identity` is identity.
/// - `x-gzip` is `gzip` (section 8.4.1.3).
pub fn acceptable(headers: &HeaderMap, offered: &[Encoding]) -> Vec<Encoding> {
    let mut values = headers.get_all(header::ACCEPT_ENCODING).iter().peekable();
    if values.peek().is_none() {
        return Vec::new();
    }
    let mut prefs: Vec<(String, Q)> = Vec::new();
    for value in values {
        let Ok(text) = value.to_str() else {
            continue;
        };
        prefs.extend(text.split(',').filter_map(parse_member));
    }
    let weight = |names: &[&str]| -> Option<Q> {
        let named = prefs
            .iter()
            .filter(|(coding, _)| names.contains(&coding.as_str()))
            .map(|&(_, q)| q)
            .max();
        named.or_else(|| prefs.iter().find(|(c, _)| c == "*").map(|&(_, q)| q))
    };
    // Unnamed identity (and no `*`) weighs least: it is only the fallback.
    let identity = weight(&["identity"]).unwrap_or(0);
    let mut wanted: Vec<(Encoding, Q)> = offered
        .iter()
        .filter_map(|&encoding| {
            let names: &[&str] = match encoding {
                Encoding::Gzip => &["gzip", "x-gzip"],
                Encoding::Brotli => &["br"],
            };
            weight(names)
                .filter(|&q| q > 0 && q >= identity)
                .map(|q| (encoding, q))
        })
        .collect();
    // Stable: ties stay in the server's order.
    wanted.sort_by_key(|&(_, q)| std::cmp::Reverse(q));
    wanted.into_iter().map(|(encoding, _)| encoding).collect()
}

/// One list member: `coding` or `coding;q=0.5`, lower-cased. Empty members
/// (section 5.6.1) and malformed weights are skipped.
fn parse_member(member: &str) -> Option<(String, Q)> {
    let mut parts = member.split(';');
    let coding = parts.next()?.trim().to_ascii_lowercase();
    if coding.is_empty() {
        return None;
    }
    let mut q = 1000;
    for param in parts {
        let (name, value) = param.split_once('=')?;
        if name.trim().eq_ignore_ascii_case("q") {
            q = parse_q(value.trim())?;
        }
    }
    Some((coding, q))
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`
fn parse_q(text: &str) -> Option<Q> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths: Q = format!("{frac:0<3}").parse().ok()?;
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const BOTH: &[Encoding] = &[Encoding::Brotli, Encoding::Gzip];

    fn pick(values: &[&str], offered: &[Encoding]) -> Option<Encoding> {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        }
        negotiate(&headers, offered)
    }

    #[test]
    fn plain_lists_prefer_the_servers_order() {
        use Encoding::*;
        assert_eq!(pick(&["gzip, deflate, br"], BOTH), Some(Brotli));
        assert_eq!(pick(&["gzip"], BOTH), Some(Gzip));
        assert_eq!(pick(&["br"], &[Gzip]), None);
        assert_eq!(pick(&["GZIP"], BOTH), Some(Gzip));
        assert_eq!(pick(&["x-gzip"], BOTH), Some(Gzip));
        assert_eq!(pick(&["gzip", "br"], BOTH), Some(Brotli), "several lines");
        assert_eq!(pick(&[], BOTH), None, "absent");
        assert_eq!(pick(&[""], BOTH), None, "empty: identity only");
        assert_eq!(pick(&["deflate, zstd"], BOTH), None);
    }

    #[test]
    fn q_values_are_honoured() {
        use Encoding::*;
        assert_eq!(pick(&["br;q=0.5, gzip;q=0.8"], BOTH), Some(Gzip));
        assert_eq!(pick(&["br;q=1.0, gzip;q=0.999"], BOTH), Some(Brotli));
        assert_eq!(pick(&["br ; Q=0.1 , gzip ; q=0.2"], BOTH), Some(Gzip));
        assert_eq!(pick(&["br;q=0, gzip"], BOTH), Some(Gzip));
        assert_eq!(pick(&["br;q=0, gzip;q=0"], BOTH), None);
        assert_eq!(pick(&["gzip;q=0.000"], BOTH), None);
        // Malformed weights drop their member.
        assert_eq!(pick(&["br;q=2, gzip;q=0.5"], BOTH), Some(Gzip));
        assert_eq!(pick(&["br;q=0.1234, gzip;q=abc"], BOTH), None);
    }

    #[test]
    fn acceptable_lists_most_wanted_first() {
        use Encoding::*;
        let list = |v: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            acceptable(&headers, BOTH)
        };
        assert_eq!(list("gzip, br"), [Brotli, Gzip]);
        assert_eq!(list("gzip, br;q=0.5"), [Gzip, Brotli]);
        assert_eq!(list("gzip;q=0.4, br;q=0.5, identity;q=0.45"), [Brotli]);
        assert!(list("identity").is_empty());
    }

    #[test]
    fn star_and_identity() {
        use Encoding::*;
        assert_eq!(pick(&["*"], BOTH), Some(Brotli));
        assert_eq!(pick(&["*;q=0"], BOTH), None);
        assert_eq!(pick(&["br;q=0, *"], BOTH), Some(Gzip));
        assert_eq!(pick(&["gzip;q=0.5, *;q=0"], BOTH), Some(Gzip));
        assert_eq!(pick(&["identity"], BOTH), None);
        assert_eq!(pick(&["gzip;q=0.5, identity"], BOTH), None);
        assert_eq!(pick(&["gzip, identity;q=0.5"], BOTH), Some(Gzip));
        assert_eq!(pick(&["gzip, identity"], BOTH), Some(Gzip), "ties compress");
        assert_eq!(pick(&["gzip;q=0.5"], BOTH), Some(Gzip));
        assert_eq!(pick(&["identity;q=0, gzip;q=0.1"], BOTH), Some(Gzip));
    }
}
