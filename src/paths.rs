//! Request paths: percent-decoding, normalisation, and confinement under a root.
//! Every handler gets its path from here, so no handler can be walked out of
//! its root.

use std::path::{Path, PathBuf};

use crate::error::Error;

/// Percent-decode and normalise the path of a request target.
///
/// The result starts with `/`, has no `.`/`..` segments and no `//` runs, and
/// keeps a trailing `/`. Encoded slashes, backslashes, NUL bytes, `..`
/// segments and invalid UTF-8 are refused.
pub fn normalize(raw_path: &str) -> Result<String, Error> {
    let _ = raw_path;
    todo!()
}

/// Map a normalised URL path to a file system path under `root` (canonical),
/// refusing symlinks that resolve outside it. Blocking: call off the runtime.
pub fn confine(root: &Path, normalized: &str) -> Result<PathBuf, Error> {
    let _ = (root, normalized);
    todo!()
}
