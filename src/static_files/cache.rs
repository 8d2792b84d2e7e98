//! Recently served small files, so that hot ones skip the blocking pool.
//!
//! Every static request used to cost a hop to tokio's blocking pool (confine,
//! stat, open, read): at 100 connections that was hundreds of threads and
//! several context switches per request. lighttpd keeps a stat cache whose
//! entries it trusts for a second; this does the same for files small
//! enough to be read whole ([`super::source::READ_WHOLE`]), with their content.
//!
//! Freshness: the path -> file mapping (index files, symlinks) is trusted for
//! [`TTL`]; the content is trusted only while the kernel has reported no
//! change to the file ([`super::watch`]). Where it would not report every
//! change, a hit first `stat`s the canonical file and is used only if inode,
//! links, length and modification time are unchanged. That `stat` runs on
//! the runtime thread, as nginx and lighttpd run theirs on the event loop:
//! the file was opened moments ago, so its inode is in the dentry cache and
//! the call does not wait on a disk.
//!
//! When an entry's mapping expires, one request looks the path up again
//! (on the blocking pool) while the others go on using the entry, whose
//! content the kernel still vouches for, for at most [`RECHECK_GRACE`].
//! Before, the entry was dropped and every request that came before the
//! new one was stored went to the blocking pool too (two or three a second
//! for a hot file at 1,000 connections, more the busier the loop). The
//! look-up replaces the entry, or removes it when it finds no file to keep
//! ([`FileCache::store`]).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use super::mime::MediaType;
use super::resolve::{OpenFile, Wants};
use super::source::Source;
use super::validators::Validators;
use super::watch::{Notice, Watcher};

/// How long a path -> file mapping is trusted.
pub const TTL: Duration = Duration::from_secs(1);
/// How long an expired entry keeps serving while one request checks its
/// path again; past it, another request checks (the first was cancelled).
pub const RECHECK_GRACE: Duration = Duration::from_millis(100);
const MAX_ENTRIES: usize = 1024;
const MAX_BYTES: usize = 16 << 20;

/// What identifies one version of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    ino: u64,
    dev: u64,
    links: u64,
    len: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl Stamp {
    pub fn of(meta: &std::fs::Metadata) -> Stamp {
        Stamp {
            ino: meta.ino(),
            dev: meta.dev(),
            links: meta.nlink(),
            len: meta.len(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
        }
    }
}

/// The stamp of the file at `path` now, if it can be read.
fn stamp_now(path: &Path) -> Option<Stamp> {
    std::fs::metadata(path).ok().map(|m| Stamp::of(&m))
}

/// One file as it was read. Shared, so a hit takes it under the lock and
/// checks it outside.
struct Entry {
    canonical: Box<Path>,
    stamp: Stamp,
    url_path: Arc<str>,
    media: MediaType,
    validators: Validators,
    modified: Option<SystemTime>,
    content: Bytes,
    /// The open file, for contents sent from the page cache
    /// ([`super::source::SENDFILE_FROM`]).
    file: Option<Arc<std::fs::File>>,
    /// When the path -> file mapping stops being trusted ([`TTL`]).
    expires: Instant,
    /// Once expired: until when the request checking the path again is
    /// waited for.
    recheck_until: Mutex<Option<Instant>>,
    /// Set when the kernel reports changes to the file; without one, every
    /// hit `stat`s it.
    notice: Option<Notice>,
    /// The head of a full response, cloned by each hit.
    head: Arc<http::HeaderMap>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

type Paths = HashMap<Box<str>, Arc<Entry>, BuildHasherDefault<PathHasher>>;

/// The hash of the path keys: a multiply-rotate over eight bytes at a time
/// (rustc's FxHash), then MurmurHash3's finaliser, so that the low bits the
/// table indexes by depend on every byte. SipHash, the default, cost ~200
/// instructions a hit. A keyed hash defends a map whose keys a client
/// chooses against collisions made on purpose; here only files that exist
/// become keys, at most [`MAX_ENTRIES`] of them, and a lookup never inserts.
#[derive(Default, Clone, Copy)]
struct PathHasher(u64);

impl PathHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for PathHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            let mut le = [0u8; 8];
            le.copy_from_slice(word);
            self.add(u64::from_le_bytes(le));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut le = [0u8; 8];
            le[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(le));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    /// MurmurHash3's finaliser: every input bit reaches every output bit.
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// Entries by document root, then URL path: a hit borrows both keys, no
/// allocation. Roots are few (the document root, a route's own): a list
/// compared byte for byte costs less than hashing a `Path`, which walks its
/// components.
#[derive(Default)]
struct Cache {
    roots: Vec<(PathBuf, Paths)>,
    count: usize,
    bytes: usize,
}

/// The small files one server has served lately, and the watcher that tells
/// it when they change.
#[derive(Default)]
pub struct FileCache {
    entries: Mutex<Cache>,
    /// Made by the first store, on the runtime that serves the requests.
    watcher: OnceLock<Option<Watcher>>,
}

impl std::fmt::Debug for FileCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileCache").finish_non_exhaustive()
    }
}

impl FileCache {
    /// The file `path` names under `root`, if a fresh entry holds it.
    pub fn lookup(&self, root: &Path, path: &str, wants: Wants) -> Option<OpenFile> {
        if wants == Wants::Existence {
            return None;
        }
        // Before the entry is read: every change reported so far is on it.
        let reports_current = self
            .watcher
            .get()
            .and_then(Option::as_ref)
            .is_some_and(Watcher::catch_up);
        let entry = {
            let mut cache = self.entries.lock().ok()?;
            let entry = cache.get(root, path)?;
            if entry.to_recheck(Instant::now()) {
                return None;
            }
            entry
        };
        let fresh = match &entry.notice {
            Some(notice) if notice.changed() => false,
            Some(_) if reports_current => true,
            // Outside the lock: the one system call of such a hit.
            _ => stamp_now(&entry.canonical) == Some(entry.stamp),
        };
        if !fresh {
            if let Ok(mut cache) = self.entries.lock() {
                cache.remove(root, path, &entry);
            }
            return None;
        }
        Some(entry.open_file(wants))
    }

    /// After looking `path` up again: remember `file` if it is a small file
    /// just read whole (when nothing about it depended on the request beyond
    /// its path), else forget what the cache held for the path.
    pub fn store(&self, root: &Path, path: &str, file: Option<&OpenFile>) {
        if !file.is_some_and(|file| self.keep(root, path, file)) {
            if let Ok(mut cache) = self.entries.lock() {
                cache.forget(root, path);
            }
        }
    }

    /// Store `file` if it can be kept.
    fn keep(&self, root: &Path, path: &str, file: &OpenFile) -> bool {
        let (Some(Source::Memory(content, open)), Some((canonical, stamp)), None) =
            (&file.source, &file.found, &file.sidecar)
        else {
            return false;
        };
        if content.len() as u64 != stamp.len {
            return false; // changed while it was read
        }
        let watcher = self.watcher.get_or_init(Watcher::new).as_ref();
        let notice =
            watcher.and_then(|w| w.watch(canonical, || stamp_now(canonical) == Some(*stamp)));
        let Ok(mut cache) = self.entries.lock() else {
            return false;
        };
        if cache.count >= MAX_ENTRIES || cache.bytes + content.len() > MAX_BYTES {
            cache.evict_stale();
            if cache.count >= MAX_ENTRIES || cache.bytes + content.len() > MAX_BYTES {
                return false;
            }
        }
        let entry = Arc::new(Entry {
            canonical: canonical.as_path().into(),
            stamp: *stamp,
            url_path: file.url_path.clone(),
            media: file.media.clone(),
            validators: file.validators.clone(),
            modified: file.modified,
            content: content.clone(),
            file: open.clone(),
            expires: Instant::now() + TTL,
            recheck_until: Mutex::new(None),
            notice,
            head: Arc::new(super::full_head(file)),
        });
        cache.insert(root, path, entry);
        true
    }
}

impl Entry {
    /// Whether the caller is to look the path up again: true for the first
    /// request to find the entry expired, and again for one request each
    /// [`RECHECK_GRACE`] until the entry is replaced or removed; the others
    /// meanwhile use the entry.
    fn to_recheck(&self, now: Instant) -> bool {
        if now <= self.expires {
            return false;
        }
        let mut until = lock(&self.recheck_until);
        if until.is_some_and(|until| now < until) {
            return false;
        }
        *until = Some(now + RECHECK_GRACE);
        true
    }

    /// What a hit serves: the entry's file, with its content for a GET.
    fn open_file(&self, wants: Wants) -> OpenFile {
        OpenFile {
            url_path: self.url_path.clone(),
            media: self.media.clone(),
            len: self.content.len() as u64,
            validators: self.validators.clone(),
            source: (wants == Wants::Content)
                .then(|| Source::Memory(self.content.clone(), self.file.clone())),
            modified: self.modified,
            sidecar: None,
            // A hit is not stored again.
            found: None,
            head: Some(self.head.clone()),
        }
    }
}

impl Cache {
    fn insert(&mut self, root: &Path, path: &str, entry: Arc<Entry>) {
        self.bytes += entry.content.len();
        self.count += 1;
        let old = match self.paths_mut(root) {
            Some(paths) => paths.insert(path.into(), entry),
            None => {
                let paths = Paths::from_iter([(path.into(), entry)]);
                self.roots.push((root.to_path_buf(), paths));
                None
            }
        };
        if let Some(old) = old {
            self.bytes -= old.content.len();
            self.count -= 1;
        }
    }

    fn paths_mut(&mut self, root: &Path) -> Option<&mut Paths> {
        let root = root.as_os_str().as_encoded_bytes();
        self.roots
            .iter_mut()
            .find(|(r, _)| r.as_os_str().as_encoded_bytes() == root)
            .map(|(_, paths)| paths)
    }

    fn get(&mut self, root: &Path, path: &str) -> Option<Arc<Entry>> {
        self.paths_mut(root)?.get(path).cloned()
    }

    /// Drop `entry` (not a newer one stored meanwhile under the same path).
    fn remove(&mut self, root: &Path, path: &str, entry: &Arc<Entry>) {
        let Some(paths) = self.paths_mut(root) else {
            return;
        };
        if paths.get(path).is_some_and(|e| Arc::ptr_eq(e, entry)) {
            paths.remove(path);
            self.bytes -= entry.content.len();
            self.count -= 1;
        }
    }

    /// Drop whatever is stored under `path`.
    fn forget(&mut self, root: &Path, path: &str) {
        if let Some(entry) = self.get(root, path) {
            self.remove(root, path, &entry);
        }
    }

    fn evict_stale(&mut self) {
        let now = Instant::now();
        for (_, paths) in &mut self.roots {
            paths.retain(|_, e| now <= e.expires);
        }
        self.roots.retain(|(_, paths)| !paths.is_empty());
        let entries = self.roots.iter().flat_map(|(_, paths)| paths.values());
        (self.count, self.bytes) = entries.fold((0, 0), |(n, b), e| (n + 1, b + e.content.len()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Paths that differ in one byte anywhere spread over the table: the
    /// low bits (the bucket) and the top seven (hashbrown's tag) both come
    /// out about as varied as random numbers would.
    #[test]
    fn similar_paths_hash_apart() {
        use std::collections::HashSet;
        use std::hash::BuildHasher;
        let build = BuildHasherDefault::<PathHasher>::default();
        let families: [fn(usize) -> String; 4] = [
            |i| format!("/img/photo-{i:04}.jpg"),
            |i| format!("/{i:03}.html"),
            |i| format!("/docs/{}/index.html", "x".repeat(i % 40 + 1)),
            |i| format!("/a/{}", char::from_u32(0x4e00 + i as u32).unwrap()),
        ];
        for (n, family) in families.iter().enumerate() {
            let hashes: Vec<u64> = (0..1000)
                .map(|i| build.hash_one(family(i).as_str()))
                .collect();
            let distinct = |bits: &dyn Fn(u64) -> u64| {
                hashes
                    .iter()
                    .map(|&h| bits(h))
                    .collect::<HashSet<_>>()
                    .len()
            };
            let all = hashes.iter().collect::<HashSet<_>>().len();
            // 1000 random keys: ~639 of 1024 buckets, all 128 tags.
            let buckets = distinct(&|h| h & 1023);
            let tags = distinct(&|h| h >> 57);
            let expected = if n == 2 { 40 } else { 1000 };
            assert_eq!(all, expected, "family {n}: full hashes collide");
            if n != 2 {
                assert!(buckets > 550, "family {n}: {buckets} buckets of 1024");
                assert!(tags > 120, "family {n}: {tags} tags of 128");
            }
        }
    }

    fn read(root: &Path, path: &str, wants: Wants) -> OpenFile {
        let found = crate::paths::confine(root, path).unwrap();
        super::super::resolve::open(&found, path, wants).unwrap()
    }

    /// Outside a runtime there is no watcher: every hit `stat`s.
    #[test]
    fn a_changed_file_is_never_served_from_the_cache() {
        let cache = FileCache::default();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::write(root.join("a.txt"), "one").unwrap();
        let file = read(&root, "/a.txt", Wants::Content);
        cache.store(&root, "/a.txt", Some(&file));
        let hit = cache
            .lookup(&root, "/a.txt", Wants::Content)
            .expect("a hit");
        assert!(matches!(hit.source, Some(Source::Memory(ref b, _)) if b == "one"));
        assert!(cache
            .lookup(&root, "/a.txt", Wants::Headers)
            .unwrap()
            .source
            .is_none());

        // Same length, new content and modification time: a miss.
        std::fs::write(root.join("a.txt"), "two").unwrap();
        let mtime = std::fs::metadata(root.join("a.txt"))
            .unwrap()
            .modified()
            .unwrap();
        std::fs::File::options()
            .write(true)
            .open(root.join("a.txt"))
            .unwrap()
            .set_modified(mtime + Duration::from_secs(5))
            .unwrap();
        assert!(cache.lookup(&root, "/a.txt", Wants::Content).is_none());

        // Deleted: a miss.
        let file = read(&root, "/a.txt", Wants::Content);
        cache.store(&root, "/a.txt", Some(&file));
        std::fs::remove_file(root.join("a.txt")).unwrap();
        assert!(cache.lookup(&root, "/a.txt", Wants::Content).is_none());
    }

    #[test]
    fn an_expired_entry_is_checked_again_by_one_request_at_a_time() {
        let cache = FileCache::default();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::write(root.join("a.txt"), "one").unwrap();
        cache.store(
            &root,
            "/a.txt",
            Some(&read(&root, "/a.txt", Wants::Content)),
        );
        let entry = cache.entries.lock().unwrap().get(&root, "/a.txt").unwrap();
        let expired = entry.expires + Duration::from_millis(1);
        assert!(!entry.to_recheck(entry.expires), "fresh until it expires");
        assert!(
            entry.to_recheck(expired),
            "the first to find it expired checks"
        );
        assert!(!entry.to_recheck(expired), "the others use it meanwhile");
        let later = expired + RECHECK_GRACE / 2;
        assert!(!entry.to_recheck(later));
        // The check never came back (its client left): another request checks.
        assert!(entry.to_recheck(expired + RECHECK_GRACE));

        // A check that finds a file replaces the entry; one that finds none
        // removes it.
        cache.store(
            &root,
            "/a.txt",
            Some(&read(&root, "/a.txt", Wants::Content)),
        );
        let replaced = cache.entries.lock().unwrap().get(&root, "/a.txt").unwrap();
        assert!(!Arc::ptr_eq(&entry, &replaced));
        assert!(
            lock(&replaced.recheck_until).is_none() && replaced.expires >= entry.expires,
            "a new entry has its own life"
        );
        std::fs::remove_file(root.join("a.txt")).unwrap();
        cache.store(&root, "/a.txt", None);
        assert!(cache.entries.lock().unwrap().get(&root, "/a.txt").is_none());
        assert_eq!(cache.entries.lock().unwrap().count, 0);
    }

    #[test]
    fn only_whole_small_files_without_a_precompressed_copy_are_kept() {
        let cache = FileCache::default();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::write(
            root.join("big.bin"),
            vec![7u8; super::super::source::READ_WHOLE as usize + 1],
        )
        .unwrap();
        let file = read(&root, "/big.bin", Wants::Content);
        cache.store(&root, "/big.bin", Some(&file));
        assert!(cache.lookup(&root, "/big.bin", Wants::Content).is_none());
        std::fs::write(root.join("h.txt"), "x").unwrap();
        let head = read(&root, "/h.txt", Wants::Headers);
        cache.store(&root, "/h.txt", Some(&head));
        assert!(cache.lookup(&root, "/h.txt", Wants::Headers).is_none());
    }

    /// On a runtime, a hit trusts the kernel's reports: a change that a
    /// `stat` cannot see (same length, same inode, modification time put
    /// back) is still a miss.
    #[tokio::test]
    async fn a_watched_file_is_a_miss_after_any_reported_change() {
        let cache = FileCache::default();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let path = root.join("a.txt");
        std::fs::write(&path, "one").unwrap();
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        cache.store(
            &root,
            "/a.txt",
            Some(&read(&root, "/a.txt", Wants::Content)),
        );
        tokio::task::yield_now().await;
        assert!(cache.lookup(&root, "/a.txt", Wants::Content).is_some());

        let file = std::fs::File::options().write(true).open(&path).unwrap();
        std::io::Write::write_all(&mut &file, b"two").unwrap();
        file.set_modified(mtime).unwrap();
        drop(file);
        let now = std::fs::metadata(&path).unwrap();
        assert_eq!(now.modified().unwrap(), mtime, "a stat sees no change");
        // The reactor takes in the report before it reads a request sent
        // after the change; here a yield stands in for that.
        tokio::task::yield_now().await;
        assert!(cache.lookup(&root, "/a.txt", Wants::Content).is_none());

        let file = read(&root, "/a.txt", Wants::Content);
        cache.store(&root, "/a.txt", Some(&file));
        let hit = cache
            .lookup(&root, "/a.txt", Wants::Content)
            .expect("a hit");
        assert!(matches!(hit.source, Some(Source::Memory(ref b, _)) if b == "two"));
    }
}
