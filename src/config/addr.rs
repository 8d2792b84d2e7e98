//! Pure syntax checks for what the YAML names as strings: listen and backend
//! addresses, URL prefixes, environment variable names, regex errors.
//! Nothing here touches the file system.

use std::net::{Ipv6Addr, SocketAddr};

/// What a listen or backend address string is, before paths are resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddrSyntax {
    Tcp(SocketAddr),
    /// `host:port` kept as written (a backend is resolved when connecting).
    HostPort(String),
    /// The path after `unix:`, not yet resolved.
    Unix(String),
}

const LISTEN_EXPECTED: &str =
    "expected IP:PORT (like 127.0.0.1:8080 or [::1]:8080; an IP address, not a host name) or unix:/path";

/// A listener: `IP:PORT` (port 0 allowed) or, when `allow_unix`, `unix:/path`.
pub fn listen_addr(text: &str, allow_unix: bool) -> Result<AddrSyntax, String> {
    if let Some(path) = text.strip_prefix("unix:") {
        if !allow_unix {
            return Err(format!(
                "`{text}`: unix sockets are not supported here, expected IP:PORT (like 127.0.0.1:8443)"
            ));
        }
        return unix_path(text, path);
    }
    text.parse::<SocketAddr>()
        .map(AddrSyntax::Tcp)
        .map_err(|_| {
            if allow_unix {
                format!("`{text}` is not a listen address: {LISTEN_EXPECTED}")
            } else {
                format!("`{text}` is not a listen address: expected IP:PORT (like 127.0.0.1:8443 or [::1]:8443)")
            }
        })
}

/// A FastCGI backend: `unix:/path` or `host:port` (port 1..=65535).
pub fn backend_addr(text: &str) -> Result<AddrSyntax, String> {
    if let Some(path) = text.strip_prefix("unix:") {
        return unix_path(text, path);
    }
    let expected = "expected host:port (like 127.0.0.1:9000, [::1]:9000 or php:9000) or unix:/path";
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!("backend `{text}` has no port: {expected}"));
    };
    match port.parse::<u16>() {
        Ok(1..=65535) => {}
        _ => {
            return Err(format!(
                "backend `{text}`: the port must be a number from 1 to 65535"
            ))
        }
    }
    if host.is_empty() {
        return Err(format!("backend `{text}` has no host: {expected}"));
    }
    if let Some(inner) = host.strip_prefix('[') {
        let ok = inner
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<Ipv6Addr>().is_ok());
        if !ok {
            return Err(format!(
                "backend `{text}`: `{host}` is not a bracketed IPv6 address"
            ));
        }
    } else if host.contains(':') {
        return Err(format!(
            "backend `{text}`: write an IPv6 address in brackets, like [::1]:9000"
        ));
    } else if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err(format!(
            "backend `{text}`: `{host}` is not a valid host name: {expected}"
        ));
    }
    Ok(AddrSyntax::HostPort(text.to_owned()))
}

fn unix_path(text: &str, path: &str) -> Result<AddrSyntax, String> {
    if path.is_empty() {
        Err(format!("`{text}`: a path is needed after `unix:`"))
    } else {
        Ok(AddrSyntax::Unix(path.to_owned()))
    }
}

/// A URL prefix made to start and end with `/` (`cgi-bin` -> `/cgi-bin/`).
pub fn normalise_prefix(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("the prefix is empty; use `/` for everything".to_owned());
    }
    if let Some(c) = text
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | '\\' | '%'))
    {
        return Err(format!(
            "prefix `{text}` contains {c:?}; a prefix is a plain URL path"
        ));
    }
    if text.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(format!("prefix `{text}` contains a `.` or `..` segment"));
    }
    let mut prefix = String::with_capacity(text.len() + 2);
    if !text.starts_with('/') {
        prefix.push('/');
    }
    prefix.push_str(text);
    if !prefix.ends_with('/') {
        prefix.push('/');
    }
    if prefix.contains("//") {
        return Err(format!("prefix `{text}` contains an empty segment (`//`)"));
    }
    Ok(prefix)
}

/// An environment variable (or FastCGI parameter) name: non-empty, no `=`, no NUL.
pub fn env_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        Err("a variable name is empty".to_owned())
    } else if name.contains(['=', '\0']) {
        Err(format!("variable name {name:?} contains `=` or a NUL byte"))
    } else {
        Ok(())
    }
}

/// A file name such as an index file: not empty, no `/`, not `.` or `..`.
pub fn plain_file_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
        Err(format!(
            "`{name}` is not a plain file name (no `/`, not `.` or `..`)"
        ))
    } else {
        Ok(())
    }
}

/// The regex crate's error on one line: the reason without the caret drawing.
pub fn regex_error_text(err: &regex::Error) -> String {
    match err {
        regex::Error::Syntax(text) => text
            .lines()
            .rev()
            .find_map(|line| line.strip_prefix("error: "))
            .unwrap_or(text)
            .trim()
            .to_owned(),
        other => other.to_string().replace('\n', " "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        assert_eq!(
            listen_addr("127.0.0.1:8080", true),
            Ok(AddrSyntax::Tcp("127.0.0.1:8080".parse().unwrap()))
        );
        assert_eq!(
            listen_addr("[::1]:0", true),
            Ok(AddrSyntax::Tcp("[::1]:0".parse().unwrap()))
        );
        assert_eq!(
            listen_addr("unix:run/g.sock", true),
            Ok(AddrSyntax::Unix("run/g.sock".into()))
        );
        for bad in [
            "localhost:8080",
            "8080",
            ":8080",
            "127.0.0.1",
            "127.0.0.1:99999",
            "unix:",
        ] {
            let e = listen_addr(bad, true).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
        assert!(listen_addr("localhost:1", true)
            .unwrap_err()
            .contains("expected IP:PORT"));
        assert!(listen_addr("unix:/x", false)
            .unwrap_err()
            .contains("not supported"));
    }

    #[test]
    fn backend_addresses() {
        for ok in [
            "127.0.0.1:9000",
            "php:9000",
            "my-host.example:1",
            "[::1]:9000",
        ] {
            assert_eq!(backend_addr(ok), Ok(AddrSyntax::HostPort(ok.into())));
        }
        assert_eq!(
            backend_addr("unix:/run/php.sock"),
            Ok(AddrSyntax::Unix("/run/php.sock".into()))
        );
        assert!(backend_addr("php").unwrap_err().contains("no port"));
        assert!(backend_addr(":9000").unwrap_err().contains("no host"));
        assert!(backend_addr("php:0").unwrap_err().contains("1 to 65535"));
        assert!(backend_addr("php:65536")
            .unwrap_err()
            .contains("1 to 65535"));
        assert!(backend_addr("php:http").unwrap_err().contains("1 to 65535"));
        assert!(backend_addr("::1:9000").unwrap_err().contains("brackets"));
        assert!(backend_addr("[zz]:9000").unwrap_err().contains("IPv6"));
        assert!(backend_addr("a b:9000").unwrap_err().contains("host name"));
        assert!(backend_addr("unix:").is_err());
    }

    #[test]
    fn prefixes() {
        assert_eq!(normalise_prefix("/cgi-bin/").unwrap(), "/cgi-bin/");
        assert_eq!(normalise_prefix("cgi-bin").unwrap(), "/cgi-bin/");
        assert_eq!(normalise_prefix("/app").unwrap(), "/app/");
        assert_eq!(normalise_prefix("/").unwrap(), "/");
        assert_eq!(normalise_prefix("/a/b").unwrap(), "/a/b/");
        for bad in ["", "/a b/", "/a//b/", "/../x", "/a?b", "/%2e/"] {
            assert!(normalise_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names() {
        assert!(env_name("APP_ENV").is_ok());
        assert!(env_name("").is_err());
        assert!(env_name("A=B").is_err());
        assert!(plain_file_name("index.php").is_ok());
        assert!(plain_file_name("a/index.php").is_err());
        assert!(plain_file_name("..").is_err());
    }

    #[test]
    fn regex_errors_fit_on_one_line() {
        let pattern = ["(", "abc"].concat();
        let err = regex::Regex::new(&pattern).unwrap_err();
        assert_eq!(regex_error_text(&err), "unclosed group");
    }
}
