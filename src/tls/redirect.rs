//! `tls.redirect_http`: the plain listeners answer every request with a 308
//! to the same path and query on the first HTTPS listener.
//!
//! 308, not 301: RFC 9110 section 15.4.9, the method and body are kept, so a
//! POST stays a POST. Unix-socket listeners are left alone: a proxy in front
//! of them has already decided the scheme.

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Response, StatusCode};

use crate::body::Body;
use crate::context::RequestCtx;

/// The redirect for a request that arrived on a plain TCP listener while
/// `tls.redirect_http` is on; `None` when the request is to be served.
pub fn https_redirect(parts: &Parts, ctx: &RequestCtx) -> Option<Response<Body>> {
    let tls = ctx.config.tls.as_ref().filter(|t| t.redirect_http)?;
    // A TCP socket never has local port 0; `ConnInfo::unix()` does.
    if ctx.conn.secure || ctx.conn.local.port() == 0 {
        return None;
    }
    let port = tls.listen.first()?.port();
    let location = location(parts, &ctx.config.server_name, port);
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
    let headers = response.headers_mut();
    // The host passed `valid_host` and the path and query are what hyper
    // already accepted as a request target: visible ASCII only.
    if let Ok(value) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, value);
    }
    Some(response)
}

/// `https://HOST[:PORT]/path?query`: the host the client asked for (the
/// request target's authority, else `Host`) without its port, else
/// `server_name`; no port when it is 443.
fn location(parts: &Parts, server_name: &str, port: u16) -> String {
    let asked = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            parts
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        });
    let host = asked
        .as_deref()
        .map(strip_port)
        .filter(|h| valid_host(h))
        .unwrap_or(server_name);
    let target = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .filter(|t| t.starts_with('/'))
        .unwrap_or("/");
    if port == 443 {
        format!("https://{host}{target}")
    } else {
        format!("https://{host}:{port}{target}")
    }
}

/// `host:port` -> `host`, `[::1]:port` -> `[::1]`; userinfo (`user@host`)
/// is cut too, so it never reaches the Location.
fn strip_port(authority: &str) -> &str {
    let host = authority.rsplit('@').next().unwrap_or(authority);
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    host.split(':').next().unwrap_or(host)
}

/// A DNS name, an IPv4 address, or a bracketed IPv6 address: nothing that
/// could end the authority early and send the client elsewhere.
fn valid_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    fn parts(uri: &str, host: Option<&str>) -> Parts {
        let mut builder = Request::builder().uri(uri);
        if let Some(host) = host {
            builder = builder.header(header::HOST, host);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn keeps_path_and_query_and_swaps_the_port() {
        let p = parts("/a/b%20c?x=1&y", Some("example.org:8080"));
        assert_eq!(
            location(&p, "srv", 8443),
            "https://example.org:8443/a/b%20c?x=1&y"
        );
        assert_eq!(
            location(&p, "srv", 443),
            "https://example.org/a/b%20c?x=1&y"
        );
    }

    #[test]
    fn host_falls_back_to_server_name() {
        assert_eq!(
            location(&parts("/", None), "srv", 8443),
            "https://srv:8443/"
        );
        for bad in ["evil.com/x", "a b", "", "x\\y", "[zz]"] {
            let p = parts("/p", Some(bad));
            assert_eq!(location(&p, "srv", 1), "https://srv:1/p", "{bad:?}");
        }
    }

    #[test]
    fn ipv6_and_absolute_form() {
        let p = parts("/x", Some("[::1]:8080"));
        assert_eq!(location(&p, "srv", 8443), "https://[::1]:8443/x");
        let p = parts("http://user@example.net:80/y?q", Some("other"));
        assert_eq!(location(&p, "srv", 8443), "https://example.net:8443/y?q");
    }
}
