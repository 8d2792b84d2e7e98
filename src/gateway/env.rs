//! The RFC 3875 meta-variables, built once for CGI and FastCGI.
//!
//! [`build`] is a pure function of the request head, the connection and the
//! script that was chosen. CGI turns its list into the child's environment,
//! FastCGI into `FCGI_PARAMS` (one builder, many sinks: lighttpd's
//! `http_cgi_headers`). Values are bytes because request header values may
//! hold obs-text that is not UTF-8.
//!
//! Variables and where they are defined (RFC 3875 section 4.1 unless noted):
//!
//! | variable | rule |
//! |---|---|
//! | AUTH_TYPE (4.1.1) | scheme of the `Authorization` header (`Basic`, `Digest`, other) |
//! | CONTENT_LENGTH (4.1.2) | only when the request has a body |
//! | CONTENT_TYPE (4.1.3) | only when the request has a body and a `Content-Type` |
//! | GATEWAY_INTERFACE (4.1.4) | `CGI/1.1` |
//! | PATH_INFO (4.1.5) | decoded, only when not empty |
//! | PATH_TRANSLATED (4.1.6) | document root + PATH_INFO, only with both |
//! | QUERY_STRING (4.1.7) | raw, never decoded; empty when there is none |
//! | REMOTE_ADDR / REMOTE_HOST (4.1.8, 4.1.9) | the peer IP; no DNS look-ups |
//! | REMOTE_USER (4.1.11) | user name of `Basic` credentials (not verified!) |
//! | REQUEST_METHOD (4.1.12) | as sent |
//! | SCRIPT_NAME (4.1.13) | URL path of the script |
//! | SERVER_NAME (4.1.14) | URI authority or `Host`, without port; else the configured name |
//! | SERVER_PORT (4.1.15) | port of the local socket |
//! | SERVER_PROTOCOL (4.1.16) | `HTTP/1.0`, `HTTP/1.1`, `HTTP/2.0` |
//! | SERVER_SOFTWARE (4.1.17) | `gatehouse/<version>` |
//! | HTTP_* (4.1.18) | request headers, see [`header_vars`] |
//! | REQUEST_URI, SCRIPT_FILENAME, DOCUMENT_ROOT, REMOTE_PORT, SERVER_ADDR, REQUEST_SCHEME, HTTPS | common extensions (Apache, lighttpd, nginx) |
//!
//! Nothing here comes from the server's own environment: CGI adds `pass_env`
//! itself. No RFC 3875 section 4.4 command line is ever derived from the
//! query string (CVE-2012-1823, php-cgi taking `?-s` as a flag).

use std::borrow::Cow;
use std::fmt;
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, HOST};
use http::request::Parts;
use http::{HeaderMap, Version};

use crate::context::RequestCtx;

/// One meta-variable: its name and its value as bytes.
///
/// Both borrow from the request head, the connection, the script and the
/// options wherever the text is already there; only what had to be computed
/// (numbers, addresses, joined header values, `HTTP_*` names other than
/// the common ones) is owned. A request's variables thus cost a handful of
/// allocations, not two each.
pub type Var<'a> = (Cow<'a, str>, Cow<'a, [u8]>);

/// The script a request was mapped to.
#[derive(Debug, Clone, Copy)]
pub struct ScriptInfo<'a> {
    /// URL path of the script, decoded (`/cgi-bin/app.py`, `/app`).
    pub script_name: &'a str,
    /// Decoded rest of the path after the script (`/a b/c`); `None` or `""`
    /// when there is none.
    pub path_info: Option<&'a str>,
    /// The file the program is (CGI) or the backend should run (FastCGI).
    pub script_filename: &'a Path,
}

/// Choices that depend on the route and the body, not on the request head.
#[derive(Debug, Clone, Copy)]
pub struct EnvOptions<'a> {
    /// Pass `Authorization` on as `HTTP_AUTHORIZATION`.
    pub pass_authorization: bool,
    /// `Some` only when the request has a body (after spooling, when it had
    /// no `Content-Length`).
    pub content_length: Option<u64>,
    /// DOCUMENT_ROOT and the base of PATH_TRANSLATED.
    pub document_root: Option<&'a Path>,
    /// Route variables (`env:` / `params:`), added last; they replace a
    /// variable of the same name.
    pub extra: &'a [(String, String)],
}

/// Longest decimal `u64`.
const MAX_U64_TEXT: usize = 20;

/// Build every meta-variable for one request, in a stable order, names unique.
pub fn build<'a>(
    parts: &'a Parts,
    ctx: &'a RequestCtx,
    script: &ScriptInfo<'a>,
    opts: &EnvOptions<'a>,
) -> Vec<Var<'a>> {
    // Room for every fixed variable, the headers, the route's variables and
    // FastCGI's REDIRECT_STATUS: the list is never grown.
    let mut vars: Vec<Var<'a>> = Vec::with_capacity(32 + parts.headers.len() + opts.extra.len());
    let mut set =
        |name: &'static str, value: Cow<'a, [u8]>| vars.push((Cow::Borrowed(name), value));
    let text = |value: &'a str| Cow::Borrowed(value.as_bytes());

    // 4.1.1 AUTH_TYPE and 4.1.11 REMOTE_USER. gatehouse authenticates nobody:
    // these describe what the client sent, so REMOTE_USER is a claim, not a
    // verified identity.
    if let Some((scheme, user)) = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| auth(v.as_bytes()))
    {
        set("AUTH_TYPE", text(scheme));
        if let Some(user) = user {
            set("REMOTE_USER", Cow::Owned(user));
        }
    }
    // 4.1.2, 4.1.3: only with a body ("If no data is attached, then NULL").
    if let Some(len) = opts.content_length {
        set("CONTENT_LENGTH", display(len, MAX_U64_TEXT));
        if let Some(ct) = parts.headers.get(CONTENT_TYPE) {
            set("CONTENT_TYPE", Cow::Borrowed(ct.as_bytes()));
        }
    }
    // 4.1.4
    set("GATEWAY_INTERFACE", Cow::Borrowed(b"CGI/1.1"));
    // 4.1.5, 4.1.6: PATH_TRANSLATED maps PATH_INFO the way the document root
    // would map a URL (virtual-to-physical translation).
    if let Some(info) = script.path_info.filter(|p| !p.is_empty()) {
        set("PATH_INFO", text(info));
        if let Some(root) = opts.document_root {
            set("PATH_TRANSLATED", Cow::Owned(join_root(root, info)));
        }
    }
    // 4.1.7: raw; scripts decode it themselves.
    set("QUERY_STRING", text(parts.uri.query().unwrap_or("")));
    // 4.1.8, 4.1.9: REMOTE_HOST may be the address when no name is known;
    // a DNS look-up per request would be slow and spoofable.
    let addr = ctx.conn.addr_text();
    set("REMOTE_ADDR", text(&addr.peer_ip));
    set("REMOTE_HOST", text(&addr.peer_ip));
    set("REMOTE_PORT", text(&addr.peer_port));
    // 4.1.12
    set("REQUEST_METHOD", text(parts.method.as_str()));
    // 4.1.13
    set("SCRIPT_NAME", text(script.script_name));
    // 4.1.14
    set(
        "SERVER_NAME",
        text(server_name(parts, &ctx.config.server_name)),
    );
    // 4.1.15
    set("SERVER_PORT", text(&addr.local_port));
    // 4.1.16
    set("SERVER_PROTOCOL", text(protocol(parts.version)));
    // 4.1.17
    set("SERVER_SOFTWARE", text(crate::SERVER_SOFTWARE));
    // Extensions every CGI library expects (Apache, lighttpd, nginx).
    let uri = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    set("REQUEST_URI", text(uri));
    set(
        "SCRIPT_FILENAME",
        Cow::Borrowed(script.script_filename.as_os_str().as_bytes()),
    );
    if let Some(root) = opts.document_root {
        set("DOCUMENT_ROOT", Cow::Borrowed(root.as_os_str().as_bytes()));
    }
    set("SERVER_ADDR", text(&addr.local_ip));
    set("REQUEST_SCHEME", text(ctx.conn.scheme()));
    if ctx.conn.secure {
        set("HTTPS", Cow::Borrowed(b"on"));
    }

    // 4.1.18
    header_vars(&mut vars, parts, opts.pass_authorization);
    for (name, value) in opts.extra {
        vars.retain(|(n, _)| n != name);
        vars.push((Cow::Borrowed(name), Cow::Borrowed(value.as_bytes())));
    }
    vars
}

/// `value` as text, written straight into a buffer of `capacity` bytes
/// (one allocation, no intermediate `String`).
fn display<'a>(value: impl fmt::Display, capacity: usize) -> Cow<'a, [u8]> {
    let mut text = Vec::with_capacity(capacity);
    // Writing into a Vec cannot fail.
    let _ = write!(text, "{value}");
    Cow::Owned(text)
}

/// Append the `HTTP_*` variables (RFC 3875 section 4.1.18) to `vars`.
///
/// - The name is upper-cased with `-` turned into `_`; repeated headers are
///   joined with `, ` (`Cookie` with `; `, RFC 9113 section 8.2.3).
/// - `Proxy` is never passed: a client-supplied `HTTP_PROXY` is read by many
///   HTTP libraries as their outgoing proxy (httpoxy, CVE-2016-5385; Go
///   issue 16405).
/// - A name holding anything but letters, digits and `-` is dropped, as
///   Apache 2.4 does: `X-Forwarded_For` would otherwise become the same
///   variable as `X-Forwarded-For` and could spoof it.
/// - `Content-Type` and `Content-Length` only appear as CONTENT_TYPE and
///   CONTENT_LENGTH (section 4.1.18: "those already passed ... may be removed").
/// - `Authorization` carries the client's credentials; it is withheld unless
///   the route opts in (section 4.1.18 allows removing it).
/// - With no `Host` header (HTTP/2 sends `:authority`), HTTP_HOST is the URI
///   authority, so scripts find the host where they always look.
pub fn header_vars<'a>(vars: &mut Vec<Var<'a>>, parts: &'a Parts, pass_authorization: bool) {
    let headers: &HeaderMap = &parts.headers;
    for name in headers.keys() {
        let lower = name.as_str();
        let withheld = matches!(lower, "proxy" | "content-type" | "content-length")
            || (name == AUTHORIZATION && !pass_authorization);
        if withheld
            || !lower
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            continue;
        }
        let values = headers.get_all(name);
        let mut each = values.iter();
        let value = match (each.next(), each.next()) {
            (Some(only), None) => Cow::Borrowed(only.as_bytes()),
            _ => {
                let separator: &[u8] = if name == COOKIE { b"; " } else { b", " };
                let len = values
                    .iter()
                    .map(|v| separator.len() + v.len())
                    .sum::<usize>()
                    .saturating_sub(separator.len());
                let mut joined = Vec::with_capacity(len);
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        joined.extend_from_slice(separator);
                    }
                    joined.extend_from_slice(v.as_bytes());
                }
                Cow::Owned(joined)
            }
        };
        let var_name = COMMON_HTTP_VARS
            .iter()
            .find(|(header, _)| *header == lower)
            .map_or_else(
                || Cow::Owned(http_var_name(lower)),
                |(_, var)| Cow::Borrowed(*var),
            );
        vars.push((var_name, value));
    }
    if !headers.contains_key(HOST) {
        if let Some(authority) = parts.uri.authority() {
            vars.push((
                Cow::Borrowed("HTTP_HOST"),
                Cow::Borrowed(authority.as_str().as_bytes()),
            ));
        }
    }
}

/// The `HTTP_*` names of headers most requests carry, written out so that
/// they need not be built for every request (a test checks them against
/// [`http_var_name`]).
const COMMON_HTTP_VARS: &[(&str, &str)] = &[
    ("host", "HTTP_HOST"),
    ("user-agent", "HTTP_USER_AGENT"),
    ("accept", "HTTP_ACCEPT"),
    ("accept-encoding", "HTTP_ACCEPT_ENCODING"),
    ("accept-language", "HTTP_ACCEPT_LANGUAGE"),
    ("connection", "HTTP_CONNECTION"),
    ("cookie", "HTTP_COOKIE"),
    ("referer", "HTTP_REFERER"),
    ("origin", "HTTP_ORIGIN"),
    ("cache-control", "HTTP_CACHE_CONTROL"),
    ("if-modified-since", "HTTP_IF_MODIFIED_SINCE"),
    ("if-none-match", "HTTP_IF_NONE_MATCH"),
    (
        "upgrade-insecure-requests",
        "HTTP_UPGRADE_INSECURE_REQUESTS",
    ),
    ("x-forwarded-for", "HTTP_X_FORWARDED_FOR"),
    ("x-forwarded-proto", "HTTP_X_FORWARDED_PROTO"),
    ("x-requested-with", "HTTP_X_REQUESTED_WITH"),
];

fn http_var_name(header: &str) -> String {
    let mut name = String::with_capacity(5 + header.len());
    name.push_str("HTTP_");
    name.extend(header.chars().map(|c| match c {
        '-' => '_',
        c => c.to_ascii_uppercase(),
    }));
    name
}

/// SERVER_NAME: the host the client asked for, without its port.
///
/// The URI authority comes first: for absolute-form requests RFC 9112
/// section 3.2.2 says `Host` is ignored, and HTTP/2 carries `:authority`
/// there. A host that is not a plausible name or address literal falls back
/// to the configured name rather than reaching scripts.
pub fn server_name<'a>(parts: &'a Parts, configured: &'a str) -> &'a str {
    let from_request = parts
        .uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| parts.headers.get(HOST).and_then(|h| h.to_str().ok()));
    from_request
        .and_then(host_without_port)
        .unwrap_or(configured)
}

/// `example.com:8080` -> `example.com`, `[::1]:8080` -> `[::1]`; `None` when
/// the host is empty or holds characters no host name or literal has.
fn host_without_port(authority: &str) -> Option<&str> {
    // Credentials in an authority (`user@host`) are not part of the host.
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let end = rest.find(']')?;
        let literal = &rest[..end];
        let ok = literal
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'));
        if literal.is_empty() || !ok {
            return None;
        }
        let after = &rest[end + 1..];
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        (&authority[..end + 2], port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        let ok = host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if host.is_empty() || !ok {
            return None;
        }
        (host, port)
    };
    match port {
        Some(p) if !p.bytes().all(|b| b.is_ascii_digit()) => None,
        _ => Some(host),
    }
}

/// SERVER_PROTOCOL (RFC 3875 section 4.1.16: `HTTP/` major `.` minor).
pub fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// Scheme (canonical case for Basic and Digest) and, for Basic, the user name.
fn auth(value: &[u8]) -> Option<(&str, Option<Vec<u8>>)> {
    let value = value.trim_ascii_start();
    let end = value
        .iter()
        .position(|b| b.is_ascii_whitespace())
        .unwrap_or(value.len());
    let (scheme, credentials) = value.split_at(end);
    if scheme.is_empty() || !scheme.iter().copied().all(is_tchar) {
        return None;
    }
    let scheme = std::str::from_utf8(scheme).ok()?;
    if scheme.eq_ignore_ascii_case("basic") {
        let user = base64_decode(credentials.trim_ascii()).map(|decoded| {
            let end = decoded
                .iter()
                .position(|&b| b == b':')
                .unwrap_or(decoded.len());
            decoded[..end].to_vec()
        });
        // A user name with control bytes (NUL, CR) cannot become a variable.
        let user = user.filter(|u| !u.is_empty() && !u.iter().any(|b| b.is_ascii_control()));
        return Some(("Basic", user));
    }
    if scheme.eq_ignore_ascii_case("digest") {
        return Some(("Digest", None));
    }
    Some((scheme, None))
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Standard base64 (RFC 4648 section 4); padding optional. `None` when invalid.
fn base64_decode(input: &[u8]) -> Option<Vec<u8>> {
    let input = input
        .strip_suffix(b"==")
        .or_else(|| input.strip_suffix(b"="))
        .unwrap_or(input);
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &c in input {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // A single leftover symbol (6 bits) cannot end valid base64.
    (bits < 6).then_some(out)
}

/// `root` + `info` as bytes, with exactly one `/` between them.
fn join_root(root: &Path, info: &str) -> Vec<u8> {
    let root = root.as_os_str().as_bytes();
    let root = root.strip_suffix(b"/").unwrap_or(root);
    let mut out = Vec::with_capacity(root.len() + info.len() + 1);
    out.extend_from_slice(root);
    if !info.starts_with('/') {
        out.push(b'/');
    }
    out.extend_from_slice(info.as_bytes());
    out
}

#[cfg(test)]
#[path = "env_tests.rs"]
mod tests;
