//! Change reports from the kernel (inotify) for cached files, so that a
//! cache hit is checked without a system call.
//!
//! A hit used to `stat` its file every time: ~350 ns here, the one system
//! call of a hit besides the socket's read and write, and 10 % of the
//! throughput for a cached 1 KB file. Now the cache asks the kernel to
//! report changes to each cached file (its content or metadata, through any
//! of its links) and to its name in its directory (renamed over, deleted),
//! and takes in what was reported before every lookup. The inotify
//! descriptor sits in the runtime's own epoll set, so "nothing reported" is
//! a flag read, not a system call. A change completed before a request was
//! sent is reported by the same `epoll_wait` that reports the request, or an
//! earlier one, and is taken in before that request is looked up.
//!
//! Where the kernel would not report a change, a hit `stat`s as before: on
//! a file system not on the list of local ones ([`REPORTS_EVERY_CHANGE`]:
//! on NFS, FUSE or 9p a change made by another machine is not reported),
//! and without a runtime, inotify, or a free watch. Writes through a shared
//! `mmap` are not reported either; the entry's life ([`super::cache::TTL`],
//! one second) bounds those, as lighttpd's default stat cache bounds every
//! change. It bounds as well a rename of a directory above the file's own:
//! the path -> file mapping is trusted for that second.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, InotifyEvent, WatchDescriptor};
use nix::sys::statfs::{self, FsType};
use tokio::io::unix::AsyncFd;

/// Local file systems whose every change to a file goes through this kernel,
/// so inotify reports it.
const REPORTS_EVERY_CHANGE: [FsType; 5] = [
    statfs::EXT4_SUPER_MAGIC, // also ext2 and ext3
    statfs::XFS_SUPER_MAGIC,
    statfs::BTRFS_SUPER_MAGIC,
    statfs::TMPFS_MAGIC,
    statfs::OVERLAYFS_SUPER_MAGIC,
];

/// What changes a file: content, metadata (including its link count), or
/// the file going away. Not reads or opens: our own would report themselves.
fn file_changes() -> AddWatchFlags {
    AddWatchFlags::IN_MODIFY
        | AddWatchFlags::IN_ATTRIB
        | AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF
}

/// What changes which file a name in a directory refers to.
fn name_changes() -> AddWatchFlags {
    AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF
        | AddWatchFlags::IN_ONLYDIR
}

/// One inotify instance, registered with the runtime that made it.
pub struct Watcher(Arc<Shared>);

struct Shared {
    inotify: AsyncFd<InotifyFd>,
    /// What each watch is for, under one lock: a watch removed by a dropped
    /// notice and one added for a new entry must agree with this map.
    watches: Mutex<HashMap<WatchDescriptor, Subscribers>>,
}

/// An [`Inotify`] as the reactor takes it (by raw descriptor).
struct InotifyFd(Inotify);

impl AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

type Flag = Arc<AtomicBool>;

/// The entries one watch concerns: on a file, all of them (`any`); on a
/// directory, those of one name in it (`by_name`), or all when the
/// directory itself goes.
#[derive(Default)]
struct Subscribers {
    any: Vec<Flag>,
    by_name: HashMap<OsString, Vec<Flag>>,
}

impl Subscribers {
    fn mark_all(&self) {
        let named = self.by_name.values().flatten();
        self.any.iter().chain(named).for_each(mark);
    }

    fn is_empty(&self) -> bool {
        self.any.is_empty() && self.by_name.is_empty()
    }

    fn remove(&mut self, name: Option<&OsString>, flag: &Flag) {
        let unsubscribe = |flags: &mut Vec<Flag>| flags.retain(|f| !Arc::ptr_eq(f, flag));
        match name {
            None => unsubscribe(&mut self.any),
            Some(name) => {
                if let Some(flags) = self.by_name.get_mut(name) {
                    unsubscribe(flags);
                    if flags.is_empty() {
                        self.by_name.remove(name);
                    }
                }
            }
        }
    }
}

fn mark(flag: &Flag) {
    flag.store(true, Ordering::Release);
}

/// A cache entry's subscription: set once its file may have changed.
pub struct Notice {
    changed: Flag,
    file: WatchDescriptor,
    dir: WatchDescriptor,
    name: OsString,
    watcher: Arc<Shared>,
}

impl Notice {
    /// The kernel reported a change to the file (or lost track: a full
    /// queue, a removed watch) since the entry was made.
    pub fn changed(&self) -> bool {
        self.changed.load(Ordering::Acquire)
    }
}

impl Watcher {
    /// A watcher on the current runtime; `None` outside one or when inotify
    /// is not available (then every hit `stat`s).
    pub fn new() -> Option<Watcher> {
        tokio::runtime::Handle::try_current().ok()?;
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .map_err(|e| tracing::debug!("static file cache without inotify: {e}"))
            .ok()?;
        // SAFETY: the descriptor belongs to the `Inotify` inside, which
        // stays in the `AsyncFd` (never replaced, never closed) until the
        // `AsyncFd` is dropped.
        let inotify = unsafe { AsyncFd::register(InotifyFd(inotify)) }
            .map_err(|e| tracing::debug!("static file cache without inotify: {e}"))
            .ok()?;
        Some(Watcher(Arc::new(Shared {
            inotify,
            watches: Mutex::default(),
        })))
    }

    /// Subscribe to changes of `file` (a canonical path), read moments ago.
    /// `still_same` checks, once the watches are in place, that it has not
    /// changed since the read: nothing would report a change in between.
    /// `None` when changes to it would not all be reported.
    pub fn watch(&self, file: &Path, still_same: impl FnOnce() -> bool) -> Option<Notice> {
        let (dir, name) = (file.parent()?, file.file_name()?);
        let fs = statfs::statfs(dir).ok()?.filesystem_type();
        if !REPORTS_EVERY_CHANGE.contains(&fs) {
            return None;
        }
        let changed = Flag::default();
        let (file_wd, dir_wd) = {
            let mut watches = self.0.watches.lock().ok()?;
            let inotify = &self.0.inotify.get_ref().0;
            let add = |path: &Path, mask| {
                inotify
                    .add_watch(path, mask)
                    .map_err(|e| tracing::debug!("no inotify watch on {}: {e}", path.display()))
                    .ok()
            };
            let file_wd = add(file, file_changes())?;
            let Some(dir_wd) = add(dir, name_changes()) else {
                if !watches.contains_key(&file_wd) {
                    let _ = inotify.rm_watch(file_wd);
                }
                return None;
            };
            let subscribers = watches.entry(file_wd).or_default();
            subscribers.any.push(changed.clone());
            let subscribers = watches.entry(dir_wd).or_default();
            let named = subscribers.by_name.entry(name.to_owned()).or_default();
            named.push(changed.clone());
            (file_wd, dir_wd)
        };
        let notice = Notice {
            changed,
            file: file_wd,
            dir: dir_wd,
            name: name.to_owned(),
            watcher: self.0.clone(),
        };
        still_same().then_some(notice)
    }

    /// Take in every change the kernel has reported. False when that could
    /// not be done (the runtime's task budget is spent, or it is shutting
    /// down): the caller must `stat` instead.
    pub fn catch_up(&self) -> bool {
        if !tokio::task::coop::has_budget_remaining() {
            // poll_read_ready would say Pending without looking.
            return false;
        }
        let mut cx = Context::from_waker(Waker::noop());
        let mut guard = match self.0.inotify.poll_read_ready(&mut cx) {
            Poll::Pending => return true, // nothing reported
            Poll::Ready(Ok(guard)) => guard,
            Poll::Ready(Err(_)) => return false,
        };
        // Read and applied under the lock, and readiness cleared only once
        // the queue is empty: another thread sees "nothing reported" only
        // after every reported change is on its entry.
        let Ok(mut watches) = self.0.watches.lock() else {
            return false;
        };
        loop {
            match guard.try_io(|fd| fd.get_ref().0.read_events().map_err(io::Error::from)) {
                Ok(Ok(events)) => events.iter().for_each(|e| apply(&mut watches, e)),
                Ok(Err(e)) => {
                    tracing::warn!("reading inotify reports: {e}; cached files will be re-read");
                    watches.values().for_each(Subscribers::mark_all);
                    return false;
                }
                Err(_would_block) => return true,
            }
        }
    }
}

/// Mark the entries one report concerns.
fn apply(watches: &mut HashMap<WatchDescriptor, Subscribers>, event: &InotifyEvent) {
    if event.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
        // Reports were lost: nothing can be trusted.
        watches.values().for_each(Subscribers::mark_all);
        return;
    }
    if event.mask.contains(AddWatchFlags::IN_IGNORED) {
        // The watch is gone: its file or directory was deleted (or we
        // removed it, and it has no subscribers left).
        if let Some(subscribers) = watches.remove(&event.wd) {
            subscribers.mark_all();
        }
        return;
    }
    let Some(subscribers) = watches.get(&event.wd) else {
        return;
    };
    match event.name.as_ref() {
        Some(name) => subscribers
            .by_name
            .get(name)
            .into_iter()
            .flatten()
            .for_each(mark),
        // The watched file itself, or the directory itself.
        None => subscribers.mark_all(),
    }
}

impl Drop for Notice {
    /// Unsubscribe; a watch goes with its last subscriber.
    fn drop(&mut self) {
        let Ok(mut watches) = self.watcher.watches.lock() else {
            return;
        };
        let inotify = &self.watcher.inotify.get_ref().0;
        for (wd, name) in [(self.file, None), (self.dir, Some(&self.name))] {
            let Some(subscribers) = watches.get_mut(&wd) else {
                continue; // the kernel removed it (IN_IGNORED)
            };
            subscribers.remove(name, &self.changed);
            if subscribers.is_empty() {
                watches.remove(&wd);
                // An error means the kernel dropped it already.
                let _ = inotify.rm_watch(wd);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Let the runtime's reactor see what the kernel queued, as it does
    /// before it reads any request sent after a change.
    async fn turn_reactor() {
        tokio::task::yield_now().await;
    }

    fn same() -> bool {
        true
    }

    fn canonical_tempdir() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        (dir, root)
    }

    #[tokio::test]
    async fn changes_to_a_watched_file_and_its_name_are_reported() {
        let (_dir, root) = canonical_tempdir();
        let watcher = Watcher::new().expect("inotify");
        for name in ["a", "b", "c", "d", "e"] {
            std::fs::write(root.join(name), name).unwrap();
        }
        let [a, b, c, d, e] =
            ["a", "b", "c", "d", "e"].map(|n| watcher.watch(&root.join(n), same).expect("watched"));
        let a_again = watcher.watch(&root.join("a"), same).unwrap();

        // Nothing changed: nothing reported.
        turn_reactor().await;
        assert!(watcher.catch_up());
        assert!(![&a, &b, &c, &d, &e].iter().any(|n| n.changed()));

        std::fs::write(root.join("a"), "A").unwrap();
        turn_reactor().await;
        assert!(watcher.catch_up());
        assert!(a.changed() && a_again.changed(), "written");
        assert!(!b.changed(), "a neighbour is not disturbed");

        std::fs::rename(root.join("c"), root.join("b")).unwrap();
        let file = std::fs::File::options()
            .write(true)
            .open(root.join("d"))
            .unwrap();
        file.set_modified(std::time::SystemTime::UNIX_EPOCH)
            .unwrap();
        std::fs::remove_file(root.join("e")).unwrap();
        turn_reactor().await;
        assert!(watcher.catch_up());
        assert!(b.changed(), "replaced by a rename");
        assert!(c.changed(), "renamed away");
        assert!(d.changed(), "touched");
        assert!(e.changed(), "deleted");
    }

    /// A write through another link is reported on the file, not in the
    /// directory of the name that was cached.
    #[tokio::test]
    async fn a_write_through_a_link_elsewhere_is_reported() {
        let (_dir, root) = canonical_tempdir();
        std::fs::create_dir(root.join("other")).unwrap();
        std::fs::write(root.join("a"), "a").unwrap();
        let watcher = Watcher::new().expect("inotify");
        let a = watcher.watch(&root.join("a"), same).unwrap();
        std::fs::hard_link(root.join("a"), root.join("other/a")).unwrap();
        turn_reactor().await;
        assert!(watcher.catch_up());
        assert!(a.changed(), "a new link changes the link count");

        let a = watcher.watch(&root.join("a"), same).unwrap();
        std::fs::write(root.join("other/a"), "b").unwrap();
        turn_reactor().await;
        assert!(watcher.catch_up());
        assert!(a.changed());
    }

    #[tokio::test]
    async fn a_file_that_changed_before_its_watch_is_not_trusted() {
        let (_dir, root) = canonical_tempdir();
        let watcher = Watcher::new().expect("inotify");
        std::fs::write(root.join("a"), "a").unwrap();
        assert!(watcher.watch(&root.join("a"), || false).is_none());
        assert!(
            watcher.0.watches.lock().unwrap().is_empty(),
            "its watches went with it"
        );
    }

    #[tokio::test]
    async fn the_last_notice_removes_the_watches() {
        let (_dir, root) = canonical_tempdir();
        let watcher = Watcher::new().expect("inotify");
        std::fs::write(root.join("a"), "a").unwrap();
        std::fs::write(root.join("b"), "b").unwrap();
        let a = watcher.watch(&root.join("a"), same).unwrap();
        let a2 = watcher.watch(&root.join("a"), same).unwrap();
        let b = watcher.watch(&root.join("b"), same).unwrap();
        let count = || watcher.0.watches.lock().unwrap().len();
        assert_eq!(count(), 3, "two files and their directory");
        drop(a);
        assert_eq!(count(), 3);
        drop(a2);
        assert_eq!(count(), 2);
        drop(b);
        assert_eq!(count(), 0);
        // The kernel's IN_IGNORED for the removed watches is taken in quietly.
        turn_reactor().await;
        assert!(watcher.catch_up());
    }

    #[tokio::test]
    async fn deleting_the_directory_marks_its_files() {
        let (_dir, root) = canonical_tempdir();
        let sub = root.join("sub");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join("a"), "a").unwrap();
        std::fs::write(sub.join("b"), "b").unwrap();
        let watcher = Watcher::new().expect("inotify");
        let a = watcher.watch(&sub.join("a"), same).unwrap();
        let b = watcher.watch(&sub.join("b"), same).unwrap();
        std::fs::rename(&sub, root.join("moved")).unwrap();
        turn_reactor().await;
        assert!(watcher.catch_up());
        assert!(a.changed() && b.changed(), "the directory moved");
        std::fs::remove_dir_all(root.join("moved")).unwrap();
        turn_reactor().await;
        assert!(watcher.catch_up());
        drop((a, b)); // their watches are already gone: no error
        assert!(watcher.0.watches.lock().unwrap().is_empty());
    }
}
