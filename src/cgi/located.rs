//! Programs recently found, so a hot one skips the blocking pool.
//!
//! Finding a program ([`super::script::locate`]) stats every segment of its
//! path and canonicalises it, on the blocking pool: a thread hand-off and
//! back (two context switches and a handful of futex calls) plus a dozen
//! system calls, for every request of a program that costs well under a
//! millisecond to run. As the static file cache does (and lighttpd's stat
//! cache), the path -> program mapping is trusted for [`TTL`]; the program
//! itself never is: every hit first `stat`s the file and is used only if
//! device, inode, mode and change time are those it was found with (a
//! write, `chmod` or replacement changes one of them).

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::script::Script;

/// How long a path -> program mapping is trusted.
pub const TTL: Duration = Duration::from_secs(1);
/// Entries per route; past it, stale ones are dropped, and if none is, the
/// new one is not kept.
const MAX_ENTRIES: usize = 1024;

/// What identifies one version of a program file, permissions included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    mode: u32,
    ctime: i64,
    ctime_nsec: i64,
}

impl Stamp {
    /// The file's stamp now; `None` when it cannot be stat'ed.
    pub fn of(file: &Path) -> Option<Stamp> {
        let meta = std::fs::metadata(file).ok()?;
        Some(Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            mode: meta.mode(),
            ctime: meta.ctime(),
            ctime_nsec: meta.ctime_nsec(),
        })
    }
}

struct Entry {
    script: Arc<Script>,
    stamp: Stamp,
    stored: Instant,
}

/// The programs found per route, by normalised URL path.
pub struct Located {
    routes: Vec<Mutex<HashMap<Box<str>, Entry>>>,
}

impl Located {
    pub fn new(routes: usize) -> Self {
        Located {
            routes: (0..routes).map(|_| Mutex::default()).collect(),
        }
    }

    /// The program `path` names under `route`, if a fresh entry holds it
    /// and its file is unchanged.
    pub fn get(&self, route: usize, path: &str) -> Option<Arc<Script>> {
        let (script, stamp) = {
            let entries = self.routes.get(route)?.lock().ok()?;
            let entry = entries.get(path)?;
            if entry.stored.elapsed() > TTL {
                return None;
            }
            (entry.script.clone(), entry.stamp)
        };
        // Outside the lock: the one system call of a hit.
        (Stamp::of(&script.file) == Some(stamp)).then_some(script)
    }

    /// Remember the program found for `path`, with its file's stamp taken
    /// right after it was found.
    pub fn put(&self, route: usize, path: &str, script: Arc<Script>, stamp: Stamp) {
        let Some(Ok(mut entries)) = self.routes.get(route).map(|m| m.lock()) else {
            return;
        };
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(path) {
            entries.retain(|_, e| e.stored.elapsed() <= TTL);
            if entries.len() >= MAX_ENTRIES {
                return;
            }
        }
        let entry = Entry {
            script,
            stamp,
            stored: Instant::now(),
        };
        entries.insert(path.into(), entry);
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn script(file: &Path) -> Arc<Script> {
        Arc::new(Script {
            file: file.to_path_buf(),
            dir: file.parent().unwrap().to_path_buf(),
            script_name: "/cgi-bin/a".into(),
            path_info: None,
            argv: vec![file.as_os_str().to_owned()],
            nph: false,
        })
    }

    #[test]
    fn a_changed_program_is_never_taken_from_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a");
        std::fs::write(&file, "#!/bin/sh\necho one\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        let located = Located::new(2);
        let found = script(&file);
        located.put(0, "/cgi-bin/a", found.clone(), Stamp::of(&file).unwrap());

        let hit = located.get(0, "/cgi-bin/a").expect("a hit");
        assert!(Arc::ptr_eq(&hit, &found));
        assert!(located.get(1, "/cgi-bin/a").is_none(), "routes are apart");
        assert!(located.get(0, "/cgi-bin/b").is_none());

        // No longer executable: a miss (the lookup then answers 403).
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(located.get(0, "/cgi-bin/a").is_none());

        // Rewritten in place (same inode, same mode): a miss.
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        located.put(0, "/cgi-bin/a", found.clone(), Stamp::of(&file).unwrap());
        assert!(located.get(0, "/cgi-bin/a").is_some());
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&file, "#!/bin/sh\necho two\n").unwrap();
        assert!(located.get(0, "/cgi-bin/a").is_none());

        // Deleted: a miss.
        located.put(0, "/cgi-bin/a", found, Stamp::of(&file).unwrap());
        std::fs::remove_file(&file).unwrap();
        assert!(located.get(0, "/cgi-bin/a").is_none());
    }

    #[test]
    fn the_cache_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a");
        std::fs::write(&file, "x").unwrap();
        let stamp = Stamp::of(&file).unwrap();
        let located = Located::new(1);
        for i in 0..MAX_ENTRIES + 10 {
            located.put(0, &format!("/cgi-bin/a/{i}"), script(&file), stamp);
        }
        assert_eq!(located.routes[0].lock().unwrap().len(), MAX_ENTRIES);
        assert!(located.get(0, "/cgi-bin/a/0").is_some());
        assert!(located
            .get(0, &format!("/cgi-bin/a/{MAX_ENTRIES}"))
            .is_none());
    }
}
