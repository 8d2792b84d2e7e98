//! `user` and `group`: started as root, gatehouse binds, then runs (with its
//! CGI programs) as the configured user; names that do not exist are
//! configuration errors.

mod support;

use std::os::unix::fs::PermissionsExt;

use support::{client, TestServer};

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
}

/// `Uid:`, `Gid:` and `Groups:` of a process, from /proc.
fn ids(pid: u32) -> (String, String, String) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    (field("Uid:"), field("Gid:"), field("Groups:"))
}

#[test]
fn started_as_root_it_runs_and_spawns_as_the_configured_user() {
    if !is_root() {
        eprintln!("SKIPPED: privilege dropping needs the tests to run as root");
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs as root; this test must not be skipped there"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // `nobody` must be able to read the site.
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(root.join("htdocs")).unwrap();
    std::fs::write(root.join("htdocs/a.txt"), "hello\n").unwrap();
    std::fs::create_dir(root.join("cgi")).unwrap();
    let script = root.join("cgi/id.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\necho \"$(id -u) $(id -g) $(id -G)\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let srv = TestServer::start_in(
        dir,
        "document_root: htdocs\naccess_log: \"off\"\nuser: nobody\ngroup: nogroup\n\
         cgi:\n  - prefix: /cgi-bin/\n    dir: cgi\n    pass_env: [PATH]\n",
    );
    let (uid, gid, groups) = ids(srv.pid());
    assert_eq!(uid, "65534 65534 65534 65534", "server uids");
    assert_eq!(gid, "65534 65534 65534 65534", "server gids");
    assert_eq!(groups, "65534", "supplementary groups");
    let resp = client().get(srv.url("/a.txt")).send().unwrap();
    assert_eq!(resp.text().unwrap(), "hello\n");
    let resp = client().get(srv.url("/cgi-bin/id.sh")).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().unwrap().trim(), "65534 65534 65534");
}

#[test]
fn unknown_user_or_group_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("htdocs")).unwrap();
    let path = dir.path().join("g.yaml");
    std::fs::write(
        &path,
        "document_root: htdocs\nuser: no-such-user-4d1f\ngroup: no-such-group-4d1f\n",
    )
    .unwrap();
    let out = std::process::Command::new(support::BIN)
        .args(["--check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("g.yaml:2:") && stderr.contains("no-such-user-4d1f"),
        "{stderr}"
    );
    assert!(
        stderr.contains("g.yaml:3:") && stderr.contains("no-such-group-4d1f"),
        "{stderr}"
    );
}
