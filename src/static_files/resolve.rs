//! The blocking half of serving a path: confine it under the root, decide
//! what it names (file, directory, index file, listing), open and stat the
//! file, and read it when small. `handle` runs all of it in one
//! `spawn_blocking` call.

use std::fs::{Metadata, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use nix::fcntl::OFlag;

use super::compress::{self, Sidecar};
use super::listing;
use super::mime::{self, MediaType};
use super::source::{Source, READ_WHOLE, SENDFILE_FROM};
use super::validators::Validators;
use crate::compress::Encoding;
use crate::error::{Error, ErrorKind};
use crate::paths;

/// How much of the target the method needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wants {
    /// OPTIONS and methods we refuse: only whether it exists.
    Existence,
    /// HEAD: everything but the content.
    Headers,
    /// GET.
    Content,
}

/// One lookup, owned so that it can move to the blocking pool.
#[derive(Debug, Clone)]
pub struct Lookup {
    /// Canonical document root.
    pub root: PathBuf,
    /// Normalised URL path.
    pub path: String,
    pub index: Vec<String>,
    pub directory_listing: bool,
    pub show_hidden: bool,
    pub wants: Wants,
    /// Precompressed copies to look for, most wanted first (see
    /// [`super::compress`]); empty when none may be sent.
    pub sidecars: Vec<Encoding>,
}

/// What the path names. Not boxed: a cache hit makes one per request, and
/// a box would be an allocation each time.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Target {
    /// It exists (only answered for [`Wants::Existence`]).
    Exists,
    /// A directory named without its trailing slash.
    RedirectToSlash,
    /// A directory listing, rendered.
    Listing(String),
    /// A regular file (possibly a directory's index file).
    File(OpenFile),
}

/// A regular file ready to be served.
#[derive(Debug)]
pub struct OpenFile {
    /// The URL path of the file itself (an index file's name gives the type).
    pub url_path: Arc<str>,
    /// Its Content-Type and whether that is worth compressing.
    pub media: MediaType,
    pub len: u64,
    pub validators: Validators,
    /// `None` for HEAD.
    pub source: Option<Source>,
    /// Modification time with the file system's precision.
    pub modified: Option<SystemTime>,
    /// A precompressed copy to send instead, when one was looked for and found.
    pub sidecar: Option<Box<Sidecar>>,
    /// The canonical path and the version that was opened (for [`super::cache`]).
    pub found: Option<(PathBuf, super::cache::Stamp)>,
    /// The head of a full response ([`super::full_head`]), when the cache
    /// kept one. Shared: an `OpenFile` moves several times, and a map
    /// inline would be 96 bytes more to copy each time.
    pub head: Option<Arc<http::HeaderMap>>,
}

/// Find and open what `lookup.path` names. Blocking.
pub fn resolve(lookup: &Lookup) -> Result<Target, Error> {
    let found = paths::confine(&lookup.root, &lookup.path)?;
    let meta = stat(&found)?;
    if lookup.wants == Wants::Existence {
        return Ok(Target::Exists);
    }
    if meta.is_file() {
        let file = open(&found, &lookup.path, lookup.wants)?;
        return Ok(Target::File(with_sidecar(file, lookup)));
    }
    if !lookup.path.ends_with('/') {
        return Ok(Target::RedirectToSlash);
    }
    for name in &lookup.index {
        let url_path = format!("{}{name}", lookup.path);
        if let Some(file) = index_file(&lookup.root, &url_path, lookup.wants)? {
            return Ok(Target::File(with_sidecar(file, lookup)));
        }
    }
    if !lookup.directory_listing {
        return Err(Error::downstream(ErrorKind::Forbidden)
            .with_cause(format!("{}: directory without index file", found.display())));
    }
    let entries =
        listing::read(&found, lookup.show_hidden).map_err(|e| paths::fs_error(e, &found))?;
    Ok(Target::Listing(listing::render(&lookup.path, &entries)))
}

fn with_sidecar(mut file: OpenFile, lookup: &Lookup) -> OpenFile {
    file.sidecar =
        compress::find_sidecar(&lookup.root, &file, &lookup.sidecars, lookup.wants).map(Box::new);
    file
}

/// The index file `url_path`, or `None` when there is no such regular file.
fn index_file(root: &Path, url_path: &str, wants: Wants) -> Result<Option<OpenFile>, Error> {
    let found = match paths::confine(root, url_path) {
        Ok(found) => found,
        Err(e) if e.kind == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if stat(&found)?.is_dir() {
        return Ok(None);
    }
    open(&found, url_path, wants).map(Some)
}

/// Metadata of a directory or regular file; anything else is 403.
fn stat(path: &Path) -> Result<Metadata, Error> {
    let meta = std::fs::metadata(path).map_err(|e| paths::fs_error(e, path))?;
    if meta.is_file() || meta.is_dir() {
        Ok(meta)
    } else {
        Err(not_regular(path))
    }
}

fn not_regular(path: &Path) -> Error {
    Error::downstream(ErrorKind::Forbidden)
        .with_cause(format!("{}: not a regular file", path.display()))
}

/// Open `path` (canonical) and take its metadata from the open descriptor, so
/// that what we describe is what we send.
pub(super) fn open(path: &Path, url_path: &str, wants: Wants) -> Result<OpenFile, Error> {
    // O_NONBLOCK: if a FIFO replaced the file since `stat`, open must not wait
    // for a writer (it has no effect on regular files). O_NOFOLLOW: nor may a
    // symlink that replaced the final component since `confine`.
    let flags = OFlag::O_NONBLOCK | OFlag::O_NOFOLLOW;
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits())
        .open(path)
        .map_err(|e| paths::fs_error(e, path))?;
    let meta = file.metadata().map_err(|e| paths::fs_error(e, path))?;
    if !meta.is_file() {
        return Err(not_regular(path));
    }
    let mut len = meta.len();
    let source = match wants {
        Wants::Content if len <= READ_WHOLE => {
            let mut content = Vec::with_capacity(len as usize);
            (&mut file)
                .take(len)
                .read_to_end(&mut content)
                .map_err(|e| paths::fs_error(e, path))?;
            // Shrunk since fstat: describe what we read.
            len = content.len() as u64;
            let keep = (len >= SENDFILE_FROM).then(|| Arc::new(file));
            Some(Source::Memory(content.into(), keep))
        }
        Wants::Content => Some(Source::File(file)),
        Wants::Headers | Wants::Existence => None,
    };
    Ok(OpenFile {
        url_path: url_path.into(),
        media: mime::media_type(url_path),
        len,
        validators: Validators::from_metadata(&meta),
        source,
        modified: meta.modified().ok(),
        sidecar: None,
        found: Some((path.to_path_buf(), super::cache::Stamp::of(&meta))),
        head: None,
    })
}
