//! No request ever reads outside the document root: a table of traversal
//! attempts sent as raw bytes (HTTP clients would normalise them first).

mod support;

use support::{raw, status_of, TestServer};

const SECRET: &str = "TOPSECRET-d41d8cd9";

fn hostile_site() -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("htdocs");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::create_dir_all(root.join(".git")).unwrap();
    std::fs::write(root.join("index.html"), "home\n").unwrap();
    std::fs::write(root.join("sub/page.txt"), "page\n").unwrap();
    std::fs::write(dir.path().join("secret.txt"), SECRET).unwrap();
    std::fs::write(root.join(".env"), SECRET).unwrap();
    std::fs::write(root.join(".htaccess"), SECRET).unwrap();
    std::fs::write(root.join(".git/config"), SECRET).unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("link-out.txt")).unwrap();
    std::os::unix::fs::symlink("/etc", root.join("etc-link")).unwrap();
    std::os::unix::fs::symlink("../secret.txt", root.join("sub-link.txt")).unwrap();
    TestServer::start_in(dir, "document_root: htdocs\ncgi: []\n")
}

#[test]
fn traversal_attempts_never_reach_outside_the_root() {
    let srv = hostile_site();
    let attempts = [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/.%2e/secret.txt",
        "/%2e./secret.txt",
        "/..%2fsecret.txt",
        "/..%2Fsecret.txt",
        "/%2e%2e%2fsecret.txt",
        "/..\\secret.txt",
        "/..%5csecret.txt",
        "/%5c..%5csecret.txt",
        "/sub/../../secret.txt",
        "/./../secret.txt",
        "//../secret.txt",
        "/sub/..%2f..%2fsecret.txt",
        "/%252e%252e/secret.txt",
        "/secret.txt%00.html",
        "/index.html%00",
        "/link-out.txt",
        "/sub-link.txt",
        "/etc-link/passwd",
        "/etc-link/hostname",
        "/..;/secret.txt",
        "/%c0%ae%c0%ae/secret.txt",
        "/%c0%afsecret.txt",
        "/.env",
        "/.htaccess",
        "/.git/config",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "/%2e%2e%5csecret.txt",
        "http://x/../secret.txt",
    ];
    for target in attempts {
        let request = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let reply = raw(srv.addr(), request.as_bytes());
        assert!(
            !reply.contains(SECRET),
            "{target} leaked the secret:\n{reply}"
        );
        assert!(
            !reply.contains("root:"),
            "{target} leaked /etc/passwd:\n{reply}"
        );
        if reply.is_empty() {
            continue; // refused at the HTTP layer and closed: also fine
        }
        let status = status_of(&reply);
        assert!(
            [400, 403, 404].contains(&status),
            "{target}: status {status}\n{reply}"
        );
    }
}

#[test]
fn normal_paths_next_to_the_attempts_still_work() {
    let srv = hostile_site();
    for (target, expect) in [
        ("/sub/page.txt", "page\n"),
        ("/sub/./page.txt", "page\n"),
        ("//sub//page.txt", "page\n"),
        ("/s%75b/page.txt", "page\n"),
    ] {
        let reply = raw(
            srv.addr(),
            format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert_eq!(status_of(&reply), 200, "{target}: {reply}");
        assert!(reply.ends_with(expect), "{target}: {reply}");
    }
}
