//! Log files that follow their path: on SIGUSR1 or SIGHUP (the signals nginx
//! and lighttpd reopen their logs on) each one is opened again under its
//! configured name, so logrotate can move a log away and have the next line
//! start the new file, without `copytruncate` and the lines it loses.
//!
//! The new file is opened before the old one is let go: if it cannot be
//! opened (privileges were dropped and the directory is root's, the disk is
//! full), writing goes on into the old file and the caller reports why.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

/// One log file, shared by whoever writes to it.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    file: Mutex<File>,
}

/// Every open log file, for [`reopen_all`].
fn registry() -> &'static Mutex<Vec<Weak<LogFile>>> {
    static REGISTRY: OnceLock<Mutex<Vec<Weak<LogFile>>>> = OnceLock::new();
    REGISTRY.get_or_init(Mutex::default)
}

impl LogFile {
    /// Open `path` for appending (created when missing) and register it to
    /// be reopened by [`reopen_all`].
    pub fn open(path: &Path) -> io::Result<Arc<LogFile>> {
        let log = Arc::new(LogFile {
            path: path.to_path_buf(),
            file: Mutex::new(open_append(path)?),
        });
        let mut registry = lock(registry());
        registry.retain(|weak| weak.strong_count() > 0);
        registry.push(Arc::downgrade(&log));
        Ok(log)
    }

    /// Open the path again and write there from now on; on failure the old
    /// file stays in use.
    pub fn reopen(&self) -> io::Result<()> {
        let fresh = open_append(&self.path)?;
        *lock(&self.file) = fresh;
        Ok(())
    }

    /// The file, locked: one writer at a time, and never during a reopen.
    pub fn lock(&self) -> MutexGuard<'_, File> {
        lock(&self.file)
    }
}

/// Reopen every log file still in use; the ones that could not be reopened
/// are returned with the reason.
pub fn reopen_all() -> Vec<(PathBuf, io::Error)> {
    let files: Vec<Arc<LogFile>> = lock(registry()).iter().filter_map(Weak::upgrade).collect();
    files
        .iter()
        .filter_map(|log| log.reopen().err().map(|e| (log.path.clone(), e)))
        .collect()
}

/// A shared log file as an `io::Write` (each call takes the lock).
#[derive(Debug, Clone)]
pub struct SharedLogFile(pub Arc<LogFile>);

impl Write for SharedLogFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        // Under one lock, so a batch is never split by a reopen.
        self.0.lock().write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.lock().flush()
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding it leaves a plain file handle: keep logging.
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moved_log_is_followed_to_a_new_file_on_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let log = LogFile::open(&path).unwrap();
        let mut out = SharedLogFile(log.clone());
        out.write_all(b"one\n").unwrap();
        std::fs::rename(&path, dir.path().join("x.log.1")).unwrap();
        out.write_all(b"two\n").unwrap();
        // Other tests' logs may be registered too: only this one matters.
        assert!(!reopen_all().iter().any(|(failed, _)| *failed == path));
        out.write_all(b"three\n").unwrap();
        let rotated = std::fs::read_to_string(dir.path().join("x.log.1")).unwrap();
        assert_eq!(rotated, "one\ntwo\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "three\n");
    }

    #[test]
    fn a_log_that_cannot_be_reopened_keeps_its_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("logs");
        std::fs::create_dir(&sub).unwrap();
        let path = sub.join("x.log");
        let log = LogFile::open(&path).unwrap();
        std::fs::rename(&sub, dir.path().join("moved")).unwrap();
        let err = log.reopen().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        SharedLogFile(log).write_all(b"still here\n").unwrap();
        let kept = std::fs::read_to_string(dir.path().join("moved/x.log")).unwrap();
        assert_eq!(kept, "still here\n");
    }
}
