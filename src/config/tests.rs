//! Loading whole configurations: every key, defaults, paths, and errors with
//! their line and column.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::*;

/// A temporary base directory with `htdocs/` (the default document root).
fn site() -> TempDir {
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir(tmp.path().join("htdocs")).unwrap();
    tmp
}

fn base(tmp: &TempDir) -> PathBuf {
    fs::canonicalize(tmp.path()).unwrap()
}

fn load(tmp: &TempDir, yaml: &str) -> Config {
    load_str(yaml, tmp.path()).unwrap_or_else(|e| panic!("unexpected errors:\n{e}"))
}

fn errors(tmp: &TempDir, yaml: &str) -> ConfigErrors {
    match load_str(yaml, tmp.path()) {
        Ok(_) => panic!("accepted:\n{yaml}"),
        Err(e) => e,
    }
}

/// The one error at `line:column`, which must mention every `needle`.
fn assert_error(errs: &ConfigErrors, line: u64, column: u64, needles: &[&str]) {
    let found = errs
        .errors
        .iter()
        .find(|e| e.line == Some(line) && e.column == Some(column));
    let Some(error) = found else {
        panic!("no error at {line}:{column}; got:\n{errs}");
    };
    for needle in needles {
        assert!(
            error.message.contains(needle),
            "`{needle}` not in: {}",
            error.message
        );
    }
}

fn only_error(tmp: &TempDir, yaml: &str, line: u64, column: u64, needles: &[&str]) {
    let errs = errors(tmp, yaml);
    assert_eq!(errs.errors.len(), 1, "expected one error, got:\n{errs}");
    assert_error(&errs, line, column, needles);
}

#[test]
fn empty_document_means_all_defaults() {
    let tmp = site();
    for yaml in ["", "# nothing here\n", "~\n", "---\n"] {
        let c = load(&tmp, yaml);
        assert_eq!(
            c.listen,
            vec![ListenAddr::Tcp("127.0.0.1:8080".parse().unwrap())]
        );
        assert_eq!(c.server_name, "localhost");
        assert_eq!(c.document_root, Some(base(&tmp).join("htdocs")));
        assert_eq!(c.index, vec!["index.html"]);
        assert!(!c.serve_dotfiles && !c.directory_listing);
        assert_eq!(c.access_log, LogTarget::Std);
        assert_eq!(c.error_log, LogTarget::Std);
        assert_eq!(c.log_level, "info");
        assert_eq!(c.shutdown_grace, Duration::from_secs(10));
        assert_eq!(c.workers, Workers::Auto);
        assert_eq!(c.limits.max_request_body, 64 << 20);
        assert_eq!(c.limits.max_header_bytes, 64 << 10);
        assert_eq!(c.limits.max_uri_bytes, 8 << 10);
        assert_eq!(c.limits.header_read_timeout, Duration::from_secs(10));
        assert_eq!(c.limits.keepalive_timeout, Duration::from_secs(75));
        assert!(c.tls.is_none());
        assert!(c.cgi.is_empty(), "no cgi-bin directory, no default route");
        assert!(c.fastcgi.is_empty());
    }
}

#[test]
fn builtin_defaults_add_cgi_bin_when_it_exists() {
    let tmp = site();
    assert!(builtin_defaults(tmp.path()).unwrap().cgi.is_empty());
    fs::create_dir(tmp.path().join("cgi-bin")).unwrap();
    let c = builtin_defaults(tmp.path()).unwrap();
    assert_eq!(c.cgi.len(), 1);
    let cgi = &c.cgi[0];
    assert_eq!(cgi.prefix, "/cgi-bin/");
    assert_eq!(cgi.dir, base(&tmp).join("cgi-bin"));
    assert_eq!(
        cgi.interpreters,
        vec![
            (".py".to_owned(), vec!["python3".to_owned()]),
            (".pl".to_owned(), vec!["perl".to_owned()]),
            (".sh".to_owned(), vec!["sh".to_owned()]),
        ]
    );
    assert_eq!(cgi.timeout, Duration::from_secs(60));
    assert_eq!(cgi.max_processes, 64);
    assert_eq!(cgi.queue_timeout, Duration::from_secs(10));
    assert!(cgi.env.is_empty());
    assert_eq!(cgi.pass_env, vec!["PATH", "LANG", "TZ"]);
    assert!(!cgi.pass_authorization);
    // Present but empty or null: no CGI at all.
    assert!(load(&tmp, "cgi: []\n").cgi.is_empty());
    assert!(load(&tmp, "cgi:\n# - prefix: /cgi-bin/\n").cgi.is_empty());
}

#[test]
fn missing_default_document_root_is_an_error_without_location() {
    let tmp = tempfile::tempdir().unwrap();
    let errs = builtin_defaults(tmp.path()).unwrap_err();
    assert_eq!(errs.errors.len(), 1);
    let e = &errs.errors[0];
    assert_eq!((e.line, e.column), (None, None));
    assert!(
        e.message.contains("document_root") && e.message.contains("does not exist"),
        "{}",
        e.message
    );
    assert!(
        errs.to_string().starts_with("<config>: document_root"),
        "{errs}"
    );
    // `null` disables static files and needs no directory.
    assert_eq!(load(&tmp, "document_root: null\n").document_root, None);
}

/// The spec's example, every key, with the directories and files it names.
const FULL: &str = r#"
listen: ["127.0.0.1:8080", "[::1]:0", "unix:run/gatehouse.sock"]
server_name: example.test
document_root: htdocs
index: [index.html, index.htm]
serve_dotfiles: true
directory_listing: true
access_log: logs/access.log
error_log: "off"
log_level: debug
shutdown_grace: 2500ms
limits:
  max_request_body: 1MB
  max_header_bytes: 16KiB
  max_uri_bytes: 2048
  header_read_timeout: 3s
  keepalive_timeout: 0s
tls:
  listen: ["127.0.0.1:8443"]
  cert: tls/cert.pem
  key: tls/key.pem
  self_signed: false
  redirect_http: true
cgi:
  - prefix: cgi-bin
    dir: cgi-bin
    interpreters:
      .py: python3 -u
      .rb: [ruby, -w]
    timeout: 5m
    max_processes: 3
    queue_timeout: 0s
    env: {APP_MODE: test, ZONE: "1"}
    pass_env: [PATH, HOME]
    pass_authorization: true
fastcgi:
  - prefix: /app/
    backends: ["127.0.0.1:9001"]
  - match: '\.php(/|$)'
    backends: ["unix:/run/php/php-fpm.sock", "127.0.0.1:9000", "unix:sock/app.sock"]
    root: htdocs
    index: index.php
    split_path_info: '^(.+?\.php)(/.*)?$'
    params: { APP_ENV: demo, B: x }
    pass_authorization: false
    connect_timeout: 1s
    read_timeout: 1h
    keepalive: 0
    max_conns: 8
  - prefix: /wsgi/
    spawn:
      command: [python3, apps/hello_wsgi.py]
      processes: 2
"#;

#[test]
fn every_key_is_parsed() {
    let tmp = site();
    for dir in ["run", "logs", "tls", "cgi-bin"] {
        fs::create_dir(tmp.path().join(dir)).unwrap();
    }
    write_tls_pair(&tmp.path().join("tls"), "cert.pem", "key.pem");
    let b = base(&tmp);
    let c = load(&tmp, FULL);

    assert_eq!(
        c.listen,
        vec![
            ListenAddr::Tcp("127.0.0.1:8080".parse().unwrap()),
            ListenAddr::Tcp("[::1]:0".parse().unwrap()),
            ListenAddr::Unix(b.join("run/gatehouse.sock")),
        ]
    );
    assert_eq!(c.server_name, "example.test");
    assert_eq!(c.document_root, Some(b.join("htdocs")));
    assert_eq!(c.index, vec!["index.html", "index.htm"]);
    assert!(c.serve_dotfiles && c.directory_listing);
    assert_eq!(c.access_log, LogTarget::File(b.join("logs/access.log")));
    assert_eq!(c.error_log, LogTarget::Off);
    assert_eq!(c.log_level, "debug");
    assert_eq!(c.shutdown_grace, Duration::from_millis(2500));
    assert_eq!(c.limits.max_request_body, 1_000_000);
    assert_eq!(c.limits.max_header_bytes, 16 * 1024);
    assert_eq!(c.limits.max_uri_bytes, 2048);
    assert_eq!(c.limits.header_read_timeout, Duration::from_secs(3));
    assert_eq!(c.limits.keepalive_timeout, Duration::ZERO);

    let tls = c.tls.as_ref().unwrap();
    assert_eq!(tls.listen, vec!["127.0.0.1:8443".parse().unwrap()]);
    assert_eq!(tls.cert.as_deref(), Some(b.join("tls/cert.pem").as_path()));
    assert_eq!(tls.key.as_deref(), Some(b.join("tls/key.pem").as_path()));
    assert!(!tls.self_signed && tls.redirect_http);

    let cgi = &c.cgi[..];
    assert_eq!(cgi.len(), 1);
    assert_eq!(cgi[0].prefix, "/cgi-bin/");
    assert_eq!(cgi[0].dir, b.join("cgi-bin"));
    assert_eq!(
        cgi[0].interpreters,
        vec![
            (
                ".py".to_owned(),
                vec!["python3".to_owned(), "-u".to_owned()]
            ),
            (".rb".to_owned(), vec!["ruby".to_owned(), "-w".to_owned()]),
        ]
    );
    assert_eq!(cgi[0].timeout, Duration::from_secs(300));
    assert_eq!(cgi[0].max_processes, 3);
    assert_eq!(cgi[0].queue_timeout, Duration::ZERO);
    assert_eq!(
        cgi[0].env,
        vec![
            ("APP_MODE".to_owned(), "test".to_owned()),
            ("ZONE".to_owned(), "1".to_owned())
        ]
    );
    assert_eq!(cgi[0].pass_env, vec!["PATH", "HOME"]);
    assert!(cgi[0].pass_authorization);

    let f = &c.fastcgi[..];
    assert_eq!(f.len(), 3);
    assert!(matches!(&f[0].matcher, RouteMatch::Prefix(p) if p == "/app/"));
    assert!(
        matches!(&f[0].target, FastCgiTarget::Backends(b) if b == &[BackendAddr::Tcp("127.0.0.1:9001".into())])
    );
    assert_eq!(f[0].root, None);
    assert!(f[0].pass_authorization, "true by default for FastCGI");
    assert_eq!(f[0].connect_timeout, Duration::from_secs(5));
    assert_eq!(f[0].read_timeout, Duration::from_secs(60));
    assert_eq!(f[0].keepalive, 16);
    assert_eq!(f[0].max_conns, None);
    assert!(f[0].params.is_empty() && f[0].index.is_none() && f[0].split_path_info.is_none());

    let RouteMatch::Regex(re) = &f[1].matcher else {
        panic!("not a regex route")
    };
    assert!(re.is_match("/a/index.php") && re.is_match("/x.php/info") && !re.is_match("/x.phps"));
    let FastCgiTarget::Backends(backends) = &f[1].target else {
        panic!("not backends")
    };
    assert_eq!(
        backends,
        &[
            BackendAddr::Unix("/run/php/php-fpm.sock".into()),
            BackendAddr::Tcp("127.0.0.1:9000".into()),
            BackendAddr::Unix(b.join("sock/app.sock")),
        ]
    );
    assert_eq!(f[1].root, Some(b.join("htdocs")));
    assert_eq!(f[1].index.as_deref(), Some("index.php"));
    let split = f[1]
        .split_path_info
        .as_ref()
        .unwrap()
        .captures("/a.php/b")
        .unwrap();
    assert_eq!((&split[1], &split[2]), ("/a.php", "/b"));
    assert_eq!(
        f[1].params,
        vec![
            ("APP_ENV".to_owned(), "demo".to_owned()),
            ("B".to_owned(), "x".to_owned())
        ]
    );
    assert!(!f[1].pass_authorization);
    assert_eq!(f[1].connect_timeout, Duration::from_secs(1));
    assert_eq!(f[1].read_timeout, Duration::from_secs(3600));
    assert_eq!(f[1].keepalive, 0);
    assert_eq!(f[1].max_conns, Some(8));

    let FastCgiTarget::Spawn(spawn) = &f[2].target else {
        panic!("not spawn")
    };
    assert_eq!(spawn.command, vec!["python3", "apps/hello_wsgi.py"]);
    assert_eq!(spawn.processes, 2);
    assert_eq!(spawn.working_dir, b);
}

#[test]
fn relative_paths_resolve_against_the_config_file_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("conf");
    for dir in ["conf", "htdocs", "cgi", "logs"] {
        fs::create_dir(tmp.path().join(dir)).unwrap();
    }
    let file = conf.join("site.yaml");
    fs::write(
        &file,
        "document_root: ../htdocs\naccess_log: ../logs/a.log\nlisten: [unix:g.sock]\n\
         cgi:\n  - prefix: /c/\n    dir: ../cgi\n\
         fastcgi:\n  - match: x\n    spawn: {command: [app]}\n",
    )
    .unwrap();
    let b = base(&tmp);
    let c = load_file(&file).unwrap();
    assert_eq!(c.document_root, Some(b.join("htdocs")));
    assert_eq!(c.access_log, LogTarget::File(b.join("logs/a.log")));
    assert_eq!(c.listen, vec![ListenAddr::Unix(b.join("conf/g.sock"))]);
    assert_eq!(c.cgi[0].dir, b.join("cgi"));
    assert_eq!(
        c.fastcgi[0].root,
        Some(b.join("htdocs")),
        "match route defaults to document_root"
    );
    let FastCgiTarget::Spawn(spawn) = &c.fastcgi[0].target else {
        panic!()
    };
    assert_eq!(spawn.working_dir, b.join("conf"));
    // Absolute paths stay as they are (canonicalised).
    let yaml = format!("document_root: {}\n", b.join("cgi").display());
    assert_eq!(
        load_str(&yaml, Path::new("/")).unwrap().document_root,
        Some(b.join("cgi"))
    );
}

#[test]
fn the_shipped_configuration_loads() {
    let tmp = tempfile::tempdir().unwrap();
    for dir in ["conf", "htdocs", "cgi-bin"] {
        fs::create_dir(tmp.path().join(dir)).unwrap();
    }
    let file = tmp.path().join("conf/gatehouse.yaml");
    fs::write(&file, include_str!("../../conf/gatehouse.yaml")).unwrap();
    let c = load_file(&file).unwrap_or_else(|e| panic!("{e}"));
    let b = base(&tmp);
    assert_eq!(c.document_root, Some(b.join("htdocs")));
    assert_eq!(c.cgi.len(), 1);
    assert_eq!(c.cgi[0].dir, b.join("cgi-bin"));
    assert_eq!(
        c.listen,
        vec![ListenAddr::Tcp("127.0.0.1:8080".parse().unwrap())]
    );
}

#[test]
fn unknown_key_is_named_with_its_place() {
    let tmp = site();
    only_error(
        &tmp,
        "server_name: a\nlisten_on: [x]\n",
        2,
        1,
        &["listen_on"],
    );
    only_error(&tmp, "limits:\n  max_body: 1\n", 2, 3, &["max_body"]);
    only_error(
        &tmp,
        "cgi:\n  - prefix: /x/\n    dirr: x\n",
        3,
        5,
        &["dirr"],
    );
    only_error(
        &tmp,
        "fastcgi:\n  - prefix: /x/\n    spawn:\n      command: [a]\n      procs: 2\n",
        5,
        7,
        &["procs"],
    );
}

#[test]
fn yaml_errors_carry_line_and_column() {
    let tmp = site();
    // `yes` is not a boolean (strict booleans).
    only_error(
        &tmp,
        "index: [a]\nserve_dotfiles: yes\n",
        2,
        17,
        &["boolean"],
    );
    // Duplicate keys.
    only_error(
        &tmp,
        "server_name: a\nserver_name: b\n",
        2,
        1,
        &["duplicate", "server_name"],
    );
    // A type error.
    only_error(&tmp, "listen: 127.0.0.1:8080\n", 1, 9, &["expected a list"]);
    // A syntax error.
    let errs = errors(&tmp, "index: [a\nlisten: []\n");
    assert_eq!(errs.errors.len(), 1, "{errs}");
    assert!(errs.errors[0].line.is_some(), "{errs}");
    // Several documents.
    assert!(errors(&tmp, "index: []\n---\nindex: []\n").errors[0]
        .line
        .is_some());
    // The message does not repeat the place: it is printed in front.
    let text = errors(&tmp, "bogus: 1\n").to_string();
    assert!(
        text.starts_with("<config>:1:1: ") && !text.contains("line 1"),
        "{text}"
    );
}

#[test]
fn workers_is_auto_or_a_count() {
    let tmp = site();
    assert_eq!(load(&tmp, "workers: auto\n").workers, Workers::Auto);
    assert_eq!(load(&tmp, "workers: 3\n").workers, Workers::Count(3));
    for bad in ["0", "-2", "1025", "many", "2.5"] {
        only_error(
            &tmp,
            &format!("workers: {bad}\n"),
            1,
            10,
            &["workers", "auto or a number from 1 to 1024"],
        );
    }
}

#[test]
fn auto_workers_leave_a_cpu_to_the_programs() {
    assert_eq!(Workers::Auto.threads(1), 1);
    assert_eq!(Workers::Auto.threads(2), 1);
    assert_eq!(Workers::Auto.threads(4), 3);
    assert_eq!(Workers::Auto.threads(16), 15);
    assert_eq!(Workers::Count(4).threads(2), 4);
}

#[test]
fn bad_units_are_reported_with_their_place() {
    let tmp = site();
    only_error(
        &tmp,
        "shutdown_grace: 10\n",
        1,
        17,
        &["shutdown_grace", "no unit", "10s"],
    );
    only_error(&tmp, "shutdown_grace: 10y\n", 1, 17, &["unknown unit"]);
    only_error(
        &tmp,
        "limits:\n  max_request_body: 12XB\n",
        2,
        21,
        &["limits.max_request_body", "XB"],
    );
    only_error(
        &tmp,
        "limits:\n  max_header_bytes: -1\n",
        2,
        21,
        &["negative"],
    );
    only_error(
        &tmp,
        "limits:\n  max_uri_bytes: 0\n",
        2,
        18,
        &["more than 0"],
    );
    only_error(
        &tmp,
        "limits:\n  header_read_timeout: 0s\n",
        2,
        24,
        &["more than 0s"],
    );
    only_error(
        &tmp,
        "limits:\n  keepalive_timeout: 1.5s\n",
        2,
        22,
        &["1.5s"],
    );
}

#[test]
fn bad_values_are_reported_with_their_place() {
    let tmp = site();
    only_error(
        &tmp,
        "listen: [\"localhost:80\"]\n",
        1,
        10,
        &["localhost:80", "IP:PORT", "unix:/path"],
    );
    only_error(
        &tmp,
        "listen: [\"unix:nodir/x.sock\"]\n",
        1,
        10,
        &["nodir", "does not exist"],
    );
    only_error(&tmp, "listen: []\n", 1, 9, &["at least one"]);
    only_error(
        &tmp,
        "document_root: nowhere\n",
        1,
        16,
        &["document_root", "nowhere", "does not exist"],
    );
    fs::write(tmp.path().join("file"), "").unwrap();
    only_error(&tmp, "document_root: file\n", 1, 16, &["not a directory"]);
    only_error(
        &tmp,
        "access_log: no/such/dir.log\n",
        1,
        13,
        &["access_log", "does not exist"],
    );
    only_error(&tmp, "error_log: htdocs\n", 1, 12, &["is a directory"]);
    only_error(
        &tmp,
        "log_level: loud\n",
        1,
        12,
        &["loud", "error, warn, info, debug, trace"],
    );
    only_error(&tmp, "index: [a/b.html]\n", 1, 9, &["plain file name"]);
    only_error(&tmp, "server_name: \"\"\n", 1, 14, &["server_name"]);
}

#[test]
fn several_errors_are_reported_together() {
    let tmp = site();
    let yaml = "\
shutdown_grace: 5
document_root: missing
listen: [nonsense]
limits:
  max_request_body: lots
fastcgi:
  - match: '(unclosed'
    backends: [\"php:99999\"]
";
    let errs = errors(&tmp, yaml);
    assert_eq!(errs.errors.len(), 6, "{errs}");
    assert_error(&errs, 1, 17, &["no unit"]);
    assert_error(&errs, 2, 16, &["does not exist"]);
    assert_error(&errs, 3, 10, &["nonsense"]);
    assert_error(&errs, 5, 21, &["lots"]);
    assert_error(
        &errs,
        7,
        12,
        &["invalid regex", "(unclosed", "unclosed group"],
    );
    assert_error(&errs, 8, 16, &["1 to 65535"]);
    let text = errs.to_string();
    assert_eq!(text.lines().count(), 6, "one line per error:\n{text}");
    let lines: Vec<u64> = errs.errors.iter().filter_map(|e| e.line).collect();
    assert_eq!(lines, [1, 2, 3, 5, 7, 8], "in file order");
    assert!(text.lines().all(|l| l.starts_with("<config>:")), "{text}");
}

#[test]
fn display_names_the_file() {
    let tmp = site();
    let file = tmp.path().join("bad.yaml");
    fs::write(&file, "server_name: a\nbogus: 1\n").unwrap();
    let text = load_file(&file).unwrap_err().to_string();
    assert_eq!(
        text,
        format!("{}:2:1: unknown field `bogus`, expected one of listen, server_name, document_root, index, serve_dotfiles, directory_listing, access_log, error_log, log_level, shutdown_grace, workers, limits, tls, compression, cache_control, cgi, fastcgi, user, group", file.display())
    );
    let errs = ConfigErrors {
        file: Some("x.yaml".into()),
        errors: vec![ConfigError::new("a"), ConfigError::new("b\nc")],
    };
    assert_eq!(errs.to_string(), "x.yaml: a\nx.yaml: b\\nc");
}

#[test]
fn unreadable_file_gives_the_os_reason() {
    let tmp = site();
    let file = tmp.path().join("absent.yaml");
    let errs = load_file(&file).unwrap_err();
    assert_eq!(errs.file.as_deref(), Some(file.as_path()));
    let text = errs.to_string();
    assert!(
        text.starts_with(&format!("{}: cannot read: ", file.display())),
        "{text}"
    );
    assert!(text.contains("No such file"), "{text}");
    let dir_errs = load_file(tmp.path()).unwrap_err().to_string();
    assert!(dir_errs.contains("cannot read"), "{dir_errs}");
}

#[test]
fn alias_bomb_is_rejected_quickly() {
    let tmp = site();
    let mut yaml = String::from(
        "pass: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let names = ["b", "c", "d", "e", "f", "g", "h", "i"];
    let mut previous = "a";
    for name in names {
        let refs = vec![format!("*{previous}"); 9].join(",");
        yaml.push_str(&format!("{name}: &{name} [{refs}]\n"));
        previous = name;
    }
    let start = Instant::now();
    assert!(load_str(&yaml, tmp.path()).is_err());
    // Even a target that accepts anything stops at the budget, not after 9^9 nodes.
    let any =
        serde_saphyr::from_str_with_options::<serde::de::IgnoredAny>(&yaml, load::yaml_options());
    let message = any.expect_err("the bomb was expanded").to_string();
    assert!(
        message.contains("alias") || message.contains("limit"),
        "{message}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn oversized_document_is_refused() {
    let tmp = site();
    let yaml = format!("server_name: {}\n", "a".repeat(load::MAX_CONFIG_BYTES));
    let errs = errors(&tmp, &yaml);
    assert!(errs.errors[0].message.contains("larger than"), "{errs}");
}

#[test]
fn fastcgi_prefix_and_match_are_exclusive() {
    let tmp = site();
    only_error(
        &tmp,
        "fastcgi:\n  - prefix: /a/\n    match: x\n    backends: [\"h:1\"]\n",
        2,
        5,
        &["fastcgi[0]", "`prefix` or `match`, not both"],
    );
    only_error(
        &tmp,
        "fastcgi:\n  - backends: [\"h:1\"]\n",
        2,
        5,
        &["fastcgi[0]", "give `prefix`"],
    );
}

#[test]
fn fastcgi_backends_and_spawn_are_exclusive() {
    let tmp = site();
    only_error(
        &tmp,
        "fastcgi:\n  - prefix: /a/\n    backends: [\"h:1\"]\n    spawn: {command: [x]}\n",
        2,
        5,
        &["fastcgi[0]", "`backends` or `spawn`, not both"],
    );
    let errs = errors(&tmp, "fastcgi:\n  - prefix: /a/\n  - prefix: /b/\n    backends: [\"h:1\"]\n    spawn: {command: [x]}\n");
    assert_eq!(errs.errors.len(), 2, "{errs}");
    assert_error(&errs, 2, 5, &["fastcgi[0]", "give `backends`"]);
    assert_error(&errs, 3, 5, &["fastcgi[1]", "not both"]);
}

#[test]
fn fastcgi_route_errors() {
    let tmp = site();
    only_error(
        &tmp,
        "fastcgi:\n  - match: x\n    backends: [h:1]\n    split_path_info: '^(.+'\n",
        4,
        22,
        &["split_path_info", "invalid regex"],
    );
    only_error(
        &tmp,
        "fastcgi:\n  - match: x\n    backends: [h:1]\n    split_path_info: 'php'\n",
        4,
        22,
        &["capture group"],
    );
    only_error(
        &tmp,
        "fastcgi:\n  - prefix: /a/\n    backends: []\n",
        3,
        15,
        &["at least one"],
    );
    only_error(
        &tmp,
        "fastcgi:\n  - prefix: /a/\n    spawn: {command: []}\n",
        3,
        22,
        &["empty"],
    );
    only_error(
        &tmp,
        "fastcgi:\n  - prefix: /a/\n    spawn: {processes: 2}\n",
        3,
        12,
        &["command"],
    );
    only_error(
        &tmp,
        "fastcgi:\n  - prefix: /a/\n    spawn: {command: [a], processes: 0}\n",
        3,
        38,
        &["at least 1"],
    );
    only_error(
        &tmp,
        "fastcgi:\n  - prefix: /a/\n    backends: [h:1]\n    max_conns: 0\n",
        4,
        16,
        &["at least 1"],
    );
    only_error(
        &tmp,
        "fastcgi:\n  - prefix: /a/\n    backends: [h:1]\n    root: nope\n",
        4,
        11,
        &["root", "does not exist"],
    );
    only_error(
        &tmp,
        "document_root: null\nfastcgi:\n  - match: x\n    backends: [h:1]\n",
        3,
        5,
        &["needs `root`"],
    );
    only_error(
        &tmp,
        "fastcgi:\n  - prefix: /a\n    backends: [h:1]\n  - prefix: a/\n    backends: [h:2]\n",
        4,
        13,
        &["already used"],
    );
}

#[test]
fn cgi_route_errors() {
    let tmp = site();
    fs::create_dir(tmp.path().join("cgi")).unwrap();
    only_error(
        &tmp,
        "cgi:\n  - prefix: /c/\n",
        2,
        5,
        &["cgi[0]", "`dir` is missing"],
    );
    only_error(&tmp, "cgi:\n  - dir: cgi\n", 2, 5, &["`prefix` is missing"]);
    only_error(
        &tmp,
        "cgi:\n  - prefix: /c/\n    dir: nope\n",
        3,
        10,
        &["cgi[0].dir", "does not exist"],
    );
    only_error(
        &tmp,
        "cgi:\n  - prefix: /c/\n    dir: cgi\n    max_processes: 0\n",
        4,
        20,
        &["at least 1"],
    );
    only_error(
        &tmp,
        "cgi:\n  - prefix: /c/\n    dir: cgi\n    interpreters: {py: python3}\n",
        4,
        20,
        &["`py`", "`.py`"],
    );
    only_error(
        &tmp,
        "cgi:\n  - prefix: /c/\n    dir: cgi\n    interpreters: {.py: \"\"}\n",
        4,
        25,
        &["empty"],
    );
    only_error(
        &tmp,
        "cgi:\n  - prefix: /c/\n    dir: cgi\n    timeout: 60\n",
        4,
        14,
        &["cgi[0].timeout", "no unit"],
    );
    only_error(
        &tmp,
        "cgi:\n  - prefix: /c/\n    dir: cgi\n    env: {\"A=B\": x}\n",
        4,
        11,
        &["`=`"],
    );
    only_error(
        &tmp,
        "cgi:\n  - prefix: /a b/\n    dir: cgi\n",
        2,
        13,
        &["prefix"],
    );
    // Every problem of one route at once.
    let errs = errors(
        &tmp,
        "cgi:\n  - prefix: ''\n    dir: nope\n    timeout: 1\n    max_processes: 0\n    queue_timeout: soon\n",
    );
    assert_eq!(errs.errors.len(), 5, "{errs}");
    assert!(errs.to_string().contains("queue_timeout"), "{errs}");
    // `interpreters: {}` means none: every program must be executable.
    let c = load(
        &tmp,
        "cgi:\n  - prefix: /c/\n    dir: cgi\n    interpreters: {}\n",
    );
    assert!(c.cgi[0].interpreters.is_empty());
}

#[test]
fn tls_needs_cert_and_key_or_self_signed() {
    let tmp = site();
    fs::write(tmp.path().join("c.pem"), "x").unwrap();
    fs::write(tmp.path().join("k.pem"), "x").unwrap();
    let c = load(
        &tmp,
        "tls:\n  listen: [\"127.0.0.1:0\"]\n  self_signed: true\n",
    );
    let tls = c.tls.unwrap();
    assert!(tls.self_signed && tls.cert.is_none() && !tls.redirect_http);
    // HTTPS only: no plain listeners.
    assert!(load(
        &tmp,
        "listen: []\ntls:\n  listen: [\"127.0.0.1:0\"]\n  self_signed: true\n"
    )
    .listen
    .is_empty());
    only_error(
        &tmp,
        "tls:\n  listen: [\"127.0.0.1:0\"]\n",
        2,
        3,
        &["`cert` and `key`", "self_signed"],
    );
    only_error(
        &tmp,
        "tls:\n  listen: [\"127.0.0.1:0\"]\n  cert: c.pem\n  key: k.pem\n  self_signed: true\n",
        2,
        3,
        &["not both"],
    );
    only_error(
        &tmp,
        "tls:\n  listen: [\"127.0.0.1:0\"]\n  cert: c.pem\n",
        3,
        9,
        &["without `key`"],
    );
    only_error(
        &tmp,
        "tls:\n  listen: [\"127.0.0.1:0\"]\n  cert: c.pem\n  key: nokey.pem\n",
        4,
        8,
        &["does not exist"],
    );
    only_error(
        &tmp,
        "tls:\n  self_signed: true\n",
        2,
        3,
        &["`listen` is missing"],
    );
    only_error(
        &tmp,
        "tls:\n  listen: [\"unix:/x\"]\n  self_signed: true\n",
        2,
        12,
        &["not supported"],
    );
}

/// A matching certificate and key, as PEM files in `dir`.
fn write_tls_pair(dir: &Path, cert: &str, key: &str) {
    let made = rcgen::generate_simple_self_signed(vec!["example.test".to_string()]).unwrap();
    fs::write(dir.join(cert), made.cert.pem()).unwrap();
    fs::write(dir.join(key), made.key_pair.serialize_pem()).unwrap();
}

#[test]
fn tls_pair_is_loaded_and_matched_by_the_check() {
    let tmp = site();
    write_tls_pair(tmp.path(), "a.pem", "a.key");
    write_tls_pair(tmp.path(), "b.pem", "b.key");
    fs::write(tmp.path().join("junk.pem"), "not PEM\n").unwrap();
    let c = load(
        &tmp,
        "tls:\n  listen: [\"127.0.0.1:0\"]\n  cert: a.pem\n  key: a.key\n",
    );
    assert!(c.tls.unwrap().cert.is_some());
    only_error(
        &tmp,
        "tls:\n  listen: [\"127.0.0.1:0\"]\n  cert: a.pem\n  key: b.key\n",
        3,
        9,
        &["does not belong to the certificate", "b.key", "a.pem"],
    );
    only_error(
        &tmp,
        "tls:\n  listen: [\"127.0.0.1:0\"]\n  cert: junk.pem\n  key: a.key\n",
        3,
        9,
        &["tls.cert", "junk.pem", "no certificate"],
    );
    only_error(
        &tmp,
        "tls:\n  listen: [\"127.0.0.1:0\"]\n  cert: a.pem\n  key: junk.pem\n",
        3,
        9,
        &["tls.key", "junk.pem", "no private key"],
    );
}

#[test]
fn compression_and_cache_control() {
    let tmp = site();
    fs::create_dir(tmp.path().join("cgi")).unwrap();
    let c = load(&tmp, "");
    assert_eq!(c.compression, Compression::default());
    assert!(c.compression.enabled && c.compression.gzip && c.compression.brotli);
    assert_eq!(c.compression.min_size, 1024);
    assert!(c.cache_control.is_empty());
    assert!(c.cgi.iter().all(|r| !r.compress));

    let c = load(
        &tmp,
        "compression:\n  enabled: true\n  gzip: false\n  brotli: true\n  min_size: 4KiB\n  level: best\n\
         cache_control:\n  - { prefix: /, value: no-cache }\n  - prefix: /static/\n    value: \"public, max-age=86400\"\n\
         cgi:\n  - prefix: /c/\n    dir: cgi\n    compress: true\n\
         fastcgi:\n  - prefix: /app/\n    backends: [\"127.0.0.1:9000\"]\n    compress: true\n",
    );
    assert!(!c.compression.gzip && c.compression.brotli);
    assert_eq!(c.compression.min_size, 4096);
    assert_eq!(
        (c.compression.gzip_level, c.compression.brotli_level),
        (9, 9)
    );
    let rules: Vec<(&str, &str)> = c
        .cache_control
        .iter()
        .map(|r| (r.prefix.as_str(), r.value.to_str().unwrap()))
        .collect();
    assert_eq!(
        rules,
        [("/static/", "public, max-age=86400"), ("/", "no-cache")],
        "longest prefix first"
    );
    assert!(c.cgi[0].compress && c.fastcgi[0].compress);
    assert_eq!(
        load(&tmp, "compression:\n  level: 3\n")
            .compression
            .gzip_level,
        3
    );
    assert!(
        !load(&tmp, "compression: { enabled: false }\n")
            .compression
            .enabled
    );

    only_error(
        &tmp,
        "compression:\n  level: 11\n",
        2,
        10,
        &["`11`", "1 to 9"],
    );
    only_error(&tmp, "compression:\n  level: max\n", 2, 10, &["`max`"]);
    only_error(
        &tmp,
        "compression:\n  min_size: lots\n",
        2,
        13,
        &["compression.min_size"],
    );
    only_error(
        &tmp,
        "compression:\n  zstd: true\n",
        2,
        3,
        &["unknown field `zstd`"],
    );
    only_error(
        &tmp,
        "cache_control:\n  - { prefix: static/, value: x }\n",
        2,
        15,
        &["must start with /"],
    );
    only_error(
        &tmp,
        "cache_control:\n  - { prefix: /a/ }\n",
        2,
        5,
        &["give `prefix` and `value`"],
    );
    only_error(
        &tmp,
        "cache_control:\n  - { prefix: /a/, value: x }\n  - { prefix: /a/, value: y }\n",
        3,
        15,
        &["already listed"],
    );
}
