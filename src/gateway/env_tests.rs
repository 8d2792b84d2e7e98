use std::borrow::Cow;
use std::path::Path;

use http::{Request, Version};

use super::*;
use crate::gateway::testutil;

fn parts(builder: http::request::Builder) -> Parts {
    builder.body(()).unwrap().into_parts().0
}

const NO_EXTRA: &[(String, String)] = &[];

fn script() -> ScriptInfo<'static> {
    ScriptInfo {
        script_name: "/cgi-bin/env.py",
        path_info: None,
        script_filename: Path::new("/srv/cgi-bin/env.py"),
    }
}

fn opts() -> EnvOptions<'static> {
    EnvOptions {
        pass_authorization: false,
        content_length: None,
        document_root: Some(Path::new("/srv/htdocs")),
        extra: NO_EXTRA,
    }
}

/// The variables, owned, so that they outlive the request they describe.
fn env_of(p: &Parts, s: &ScriptInfo<'_>, o: &EnvOptions<'_>) -> Vec<Var<'static>> {
    build(p, &testutil::ctx(), s, o)
        .into_iter()
        .map(|(n, v)| (Cow::Owned(n.into_owned()), Cow::Owned(v.into_owned())))
        .collect()
}

fn get<'a>(vars: &'a [Var<'_>], name: &str) -> Option<&'a [u8]> {
    let mut found = vars.iter().filter(|(n, _)| n == name);
    let first = found.next().map(|(_, v)| v.as_ref());
    assert!(found.next().is_none(), "{name} appears twice");
    first
}

fn get_str<'a>(vars: &'a [Var<'_>], name: &str) -> Option<&'a str> {
    get(vars, name).map(|v| std::str::from_utf8(v).unwrap())
}

fn simple(uri: &str) -> Vec<Var<'static>> {
    env_of(
        &parts(Request::get(uri).header("host", "example.org:8080")),
        &script(),
        &opts(),
    )
}

#[test]
fn fixed_variables() {
    let vars = simple("/cgi-bin/env.py?a=1");
    assert_eq!(get_str(&vars, "GATEWAY_INTERFACE"), Some("CGI/1.1"));
    assert_eq!(get_str(&vars, "REQUEST_METHOD"), Some("GET"));
    assert_eq!(get_str(&vars, "SCRIPT_NAME"), Some("/cgi-bin/env.py"));
    assert_eq!(
        get_str(&vars, "SCRIPT_FILENAME"),
        Some("/srv/cgi-bin/env.py")
    );
    assert_eq!(get_str(&vars, "SERVER_PROTOCOL"), Some("HTTP/1.1"));
    assert_eq!(
        get_str(&vars, "SERVER_SOFTWARE"),
        Some(concat!("gatehouse/", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(get_str(&vars, "SERVER_PORT"), Some("8080"));
    assert_eq!(get_str(&vars, "SERVER_ADDR"), Some("127.0.0.1"));
    assert_eq!(get_str(&vars, "REMOTE_ADDR"), Some("192.0.2.10"));
    assert_eq!(get_str(&vars, "REMOTE_HOST"), Some("192.0.2.10"));
    assert_eq!(get_str(&vars, "REMOTE_PORT"), Some("54321"));
    assert_eq!(get_str(&vars, "REQUEST_SCHEME"), Some("http"));
    assert_eq!(get_str(&vars, "DOCUMENT_ROOT"), Some("/srv/htdocs"));
    assert_eq!(get_str(&vars, "REQUEST_URI"), Some("/cgi-bin/env.py?a=1"));
    assert_eq!(get(&vars, "HTTPS"), None);
    assert_eq!(get(&vars, "AUTH_TYPE"), None);
    assert_eq!(get(&vars, "REMOTE_USER"), None);
}

#[test]
fn names_are_unique() {
    let vars = simple("/x?y");
    let mut names: Vec<_> = vars.iter().map(|(n, _)| n.as_ref()).collect();
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(before, names.len());
}

#[test]
fn query_string_is_raw_and_empty_when_absent() {
    let vars = simple("/cgi-bin/env.py?q=a%20b&x=%2F+y");
    assert_eq!(get_str(&vars, "QUERY_STRING"), Some("q=a%20b&x=%2F+y"));
    assert_eq!(
        get_str(&vars, "REQUEST_URI"),
        Some("/cgi-bin/env.py?q=a%20b&x=%2F+y")
    );
    let vars = simple("/cgi-bin/env.py");
    assert_eq!(get_str(&vars, "QUERY_STRING"), Some(""));
}

#[test]
fn path_info_and_path_translated() {
    let p = parts(Request::get("/cgi-bin/env.py/a%20b/c"));
    let s = ScriptInfo {
        path_info: Some("/a b/c"),
        ..script()
    };
    let vars = env_of(&p, &s, &opts());
    assert_eq!(get_str(&vars, "PATH_INFO"), Some("/a b/c"));
    assert_eq!(get_str(&vars, "PATH_TRANSLATED"), Some("/srv/htdocs/a b/c"));

    // No PATH_INFO: neither variable.
    let vars = env_of(&p, &script(), &opts());
    assert_eq!(get(&vars, "PATH_INFO"), None);
    assert_eq!(get(&vars, "PATH_TRANSLATED"), None);
    let empty = ScriptInfo {
        path_info: Some(""),
        ..script()
    };
    assert_eq!(get(&env_of(&p, &empty, &opts()), "PATH_INFO"), None);

    // No document root: PATH_INFO alone, no DOCUMENT_ROOT.
    let no_root = EnvOptions {
        document_root: None,
        ..opts()
    };
    let vars = env_of(&p, &s, &no_root);
    assert_eq!(get_str(&vars, "PATH_INFO"), Some("/a b/c"));
    assert_eq!(get(&vars, "PATH_TRANSLATED"), None);
    assert_eq!(get(&vars, "DOCUMENT_ROOT"), None);

    // Root "/" does not double the slash.
    let slash = EnvOptions {
        document_root: Some(Path::new("/")),
        ..opts()
    };
    assert_eq!(
        get_str(&env_of(&p, &s, &slash), "PATH_TRANSLATED"),
        Some("/a b/c")
    );
}

#[test]
fn content_variables_only_with_a_body() {
    let p = parts(
        Request::post("/x")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("content-length", "5"),
    );
    let vars = env_of(&p, &script(), &opts());
    assert_eq!(get(&vars, "CONTENT_LENGTH"), None);
    assert_eq!(get(&vars, "CONTENT_TYPE"), None);

    let with_body = EnvOptions {
        content_length: Some(5),
        ..opts()
    };
    let vars = env_of(&p, &script(), &with_body);
    assert_eq!(get_str(&vars, "CONTENT_LENGTH"), Some("5"));
    assert_eq!(
        get_str(&vars, "CONTENT_TYPE"),
        Some("application/x-www-form-urlencoded")
    );
    // Never also as HTTP_CONTENT_*.
    assert_eq!(get(&vars, "HTTP_CONTENT_TYPE"), None);
    assert_eq!(get(&vars, "HTTP_CONTENT_LENGTH"), None);

    // A body without Content-Type: CONTENT_LENGTH only.
    let p = parts(Request::post("/x"));
    let vars = env_of(&p, &script(), &with_body);
    assert_eq!(get_str(&vars, "CONTENT_LENGTH"), Some("5"));
    assert_eq!(get(&vars, "CONTENT_TYPE"), None);
}

#[test]
fn headers_become_http_variables() {
    let p = parts(
        Request::get("/x")
            .header("host", "example.org")
            .header("user-agent", "test/1")
            .header("x-custom-thing", "v")
            .header("accept", "text/html")
            .header("accept", "text/plain")
            .header("cookie", "a=1")
            .header("cookie", "b=2")
            .header("connection", "keep-alive"),
    );
    let vars = env_of(&p, &script(), &opts());
    assert_eq!(get_str(&vars, "HTTP_HOST"), Some("example.org"));
    assert_eq!(get_str(&vars, "HTTP_USER_AGENT"), Some("test/1"));
    assert_eq!(get_str(&vars, "HTTP_X_CUSTOM_THING"), Some("v"));
    assert_eq!(get_str(&vars, "HTTP_ACCEPT"), Some("text/html, text/plain"));
    assert_eq!(get_str(&vars, "HTTP_COOKIE"), Some("a=1; b=2"));
    assert_eq!(get_str(&vars, "HTTP_CONNECTION"), Some("keep-alive"));
}

#[test]
fn header_values_may_be_non_utf8() {
    let value = http::HeaderValue::from_bytes(b"caf\xe9").unwrap();
    let p = parts(Request::get("/x").header("x-latin1", value));
    let vars = env_of(&p, &script(), &opts());
    assert_eq!(get(&vars, "HTTP_X_LATIN1"), Some(&b"caf\xe9"[..]));
}

/// httpoxy (CVE-2016-5385, Go issue 16405): a `Proxy` request header must not
/// become HTTP_PROXY, which HTTP client libraries take as their proxy.
#[test]
fn httpoxy_proxy_header_is_never_passed() {
    let p = parts(Request::get("/x").header("proxy", "http://evil.example:3128"));
    let vars = env_of(&p, &script(), &opts());
    assert_eq!(get(&vars, "HTTP_PROXY"), None);
    assert!(!vars.iter().any(|(_, v)| v.windows(4).any(|w| w == b"evil")));
}

/// Apache 2.4's rule: `X-Forwarded_For` would map to the same variable as
/// `X-Forwarded-For`, so names with `_` (or other non alnum/dash) are dropped.
#[test]
fn underscore_headers_cannot_spoof_dash_headers() {
    let p = parts(
        Request::get("/x")
            .header("x-forwarded-for", "10.0.0.1")
            .header("x-forwarded_for", "6.6.6.6")
            .header("x.dotted", "1")
            .header("x~tilde", "1"),
    );
    let vars = env_of(&p, &script(), &opts());
    assert_eq!(get_str(&vars, "HTTP_X_FORWARDED_FOR"), Some("10.0.0.1"));
    assert!(!vars.iter().any(|(n, _)| n.contains('.') || n.contains('~')));
    let p = parts(Request::get("/x").header("x-forwarded_for", "6.6.6.6"));
    assert_eq!(
        get(&env_of(&p, &script(), &opts()), "HTTP_X_FORWARDED_FOR"),
        None
    );
}

#[test]
fn authorization_withheld_unless_passed() {
    // "user:secret"
    let p = parts(Request::get("/x").header("authorization", "Basic dXNlcjpzZWNyZXQ="));
    let vars = env_of(&p, &script(), &opts());
    assert_eq!(get(&vars, "HTTP_AUTHORIZATION"), None);
    assert!(!vars
        .iter()
        .any(|(_, v)| v.windows(6).any(|w| w == b"secret")));
    assert_eq!(get_str(&vars, "AUTH_TYPE"), Some("Basic"));
    assert_eq!(get_str(&vars, "REMOTE_USER"), Some("user"));

    let pass = EnvOptions {
        pass_authorization: true,
        ..opts()
    };
    let vars = env_of(&p, &script(), &pass);
    assert_eq!(
        get_str(&vars, "HTTP_AUTHORIZATION"),
        Some("Basic dXNlcjpzZWNyZXQ=")
    );
}

#[test]
fn auth_type_from_any_scheme() {
    let cases: &[(&str, Option<&str>, Option<&str>)] = &[
        ("basic YWxpY2U6cHc=", Some("Basic"), Some("alice")),
        ("Basic YWxpY2U", Some("Basic"), Some("alice")),
        ("Basic !!!", Some("Basic"), None),
        ("Basic OnB3", Some("Basic"), None), // ":pw": empty user
        ("Digest username=\"bob\", realm=\"r\"", Some("Digest"), None),
        ("Bearer abc.def", Some("Bearer"), None),
        ("", None, None),
    ];
    for (header, auth_type, user) in cases {
        let p = parts(Request::get("/x").header("authorization", *header));
        let vars = env_of(&p, &script(), &opts());
        assert_eq!(get_str(&vars, "AUTH_TYPE"), *auth_type, "{header}");
        assert_eq!(get_str(&vars, "REMOTE_USER"), *user, "{header}");
    }
}

#[test]
fn base64_decoder() {
    assert_eq!(base64_decode(b"").unwrap(), b"");
    assert_eq!(base64_decode(b"Zg==").unwrap(), b"f");
    assert_eq!(base64_decode(b"Zm8=").unwrap(), b"fo");
    assert_eq!(base64_decode(b"Zm9v").unwrap(), b"foo");
    assert_eq!(base64_decode(b"Zm9vYg").unwrap(), b"foob");
    assert_eq!(base64_decode(b"+/+/").unwrap(), [0xfb, 0xff, 0xbf]);
    assert!(base64_decode(b"Z").is_none());
    assert!(base64_decode(b"Zm9v-_").is_none());
}

#[test]
fn server_name_rules() {
    let name = |b: http::request::Builder| server_name(&parts(b), "configured.example").to_owned();
    assert_eq!(
        name(Request::get("/").header("host", "example.org:8080")),
        "example.org"
    );
    assert_eq!(
        name(Request::get("/").header("host", "example.org")),
        "example.org"
    );
    assert_eq!(
        name(Request::get("/").header("host", "[::1]:8080")),
        "[::1]"
    );
    assert_eq!(name(Request::get("/").header("host", "[::1]")), "[::1]");
    assert_eq!(
        name(Request::get("/").header("host", "127.0.0.1:80")),
        "127.0.0.1"
    );
    // HTTP/2 and absolute-form: the authority wins over Host.
    assert_eq!(
        name(Request::get("https://h2.example:8443/x").header("host", "other.example")),
        "h2.example"
    );
    // No Host, or an implausible one: the configured name.
    assert_eq!(name(Request::get("/")), "configured.example");
    for bad in [
        "",
        ":80",
        "a b",
        "evil<script>",
        "[::1",
        "[zz]",
        "host:port",
        "[::1]x",
    ] {
        assert_eq!(
            name(Request::get("/").header("host", bad)),
            "configured.example",
            "{bad:?}"
        );
    }
}

#[test]
fn http2_without_host_gets_http_host_from_authority() {
    let p = parts(Request::get("https://example.org:8443/x").version(Version::HTTP_2));
    let vars = env_of(&p, &script(), &opts());
    assert_eq!(get_str(&vars, "HTTP_HOST"), Some("example.org:8443"));
    assert_eq!(get_str(&vars, "SERVER_NAME"), Some("example.org"));
    assert_eq!(get_str(&vars, "SERVER_PROTOCOL"), Some("HTTP/2.0"));
    assert_eq!(get_str(&vars, "REQUEST_URI"), Some("/x"));
}

#[test]
fn protocols() {
    assert_eq!(protocol(Version::HTTP_10), "HTTP/1.0");
    assert_eq!(protocol(Version::HTTP_11), "HTTP/1.1");
    assert_eq!(protocol(Version::HTTP_2), "HTTP/2.0");
}

#[test]
fn https_and_ipv6_connection() {
    let ctx = testutil::ctx_with(
        testutil::config(),
        "[::ffff:10.1.2.3]:4000",
        "[::1]:8443",
        true,
    );
    let p = parts(Request::get("/x").header("host", "[::1]:8443"));
    let vars = build(&p, &ctx, &script(), &opts());
    assert_eq!(get_str(&vars, "HTTPS"), Some("on"));
    assert_eq!(get_str(&vars, "REQUEST_SCHEME"), Some("https"));
    assert_eq!(get_str(&vars, "REMOTE_ADDR"), Some("10.1.2.3"));
    assert_eq!(get_str(&vars, "SERVER_ADDR"), Some("::1"));
    assert_eq!(get_str(&vars, "SERVER_PORT"), Some("8443"));
    assert_eq!(get_str(&vars, "SERVER_NAME"), Some("[::1]"));
}

#[test]
fn extra_variables_come_last_and_replace() {
    let extra = vec![
        ("APP_ENV".to_owned(), "demo".to_owned()),
        ("SERVER_NAME".to_owned(), "forced".to_owned()),
    ];
    let o = EnvOptions {
        extra: &extra,
        ..opts()
    };
    let vars = env_of(&parts(Request::get("/x")), &script(), &o);
    assert_eq!(get_str(&vars, "APP_ENV"), Some("demo"));
    assert_eq!(get_str(&vars, "SERVER_NAME"), Some("forced"));
    assert_eq!(vars.last().unwrap().0, "SERVER_NAME");
}

/// What the request, the script and the options already hold is borrowed,
/// not copied: a request's variables cost a few allocations, not two each.
#[test]
fn only_computed_values_are_owned() {
    let p = parts(
        Request::get("/cgi-bin/env.py?a=1")
            .header("host", "example.org")
            .header("accept", "text/html")
            .header("accept", "text/plain")
            .header("x-custom", "1"),
    );
    let extra = vec![("APP_ENV".to_owned(), "demo".to_owned())];
    let o = EnvOptions {
        extra: &extra,
        ..opts()
    };
    let ctx = testutil::ctx();
    let vars = build(&p, &ctx, &script(), &o);
    let owned: Vec<&str> = vars
        .iter()
        .filter(|(_, v)| matches!(v, Cow::Owned(_)))
        .map(|(n, _)| n.as_ref())
        .collect();
    // The addresses are the connection's text, made once for all its requests.
    assert_eq!(owned, ["HTTP_ACCEPT"]);
    let owned_names: Vec<&str> = vars
        .iter()
        .filter(|(n, _)| matches!(n, Cow::Owned(_)))
        .map(|(n, _)| n.as_ref())
        .collect();
    assert_eq!(owned_names, ["HTTP_X_CUSTOM"]);
}

#[test]
fn common_http_names_follow_the_rule() {
    for (header, var) in COMMON_HTTP_VARS {
        assert_eq!(http_var_name(header), *var);
    }
}
