//! The HTML listing of a directory (when `directory_listing` is on).

use std::fmt::Write;
use std::io;
use std::path::Path;

use crate::paths;

/// One name in a listing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub name: String,
    pub is_dir: bool,
}

/// The entries of `dir`, sorted by name. Blocking. Dotfiles are left out
/// unless `show_hidden`; names that are not UTF-8 are left out (no request
/// path can name them, see [`paths::normalize`]).
pub fn read(dir: &Path, show_hidden: bool) -> io::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') && !show_hidden {
            continue;
        }
        // Follows symlinks; a dangling one is listed as a file (and 404s).
        let is_dir = std::fs::metadata(entry.path()).is_ok_and(|m| m.is_dir());
        entries.push(Entry { name, is_dir });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

/// Render the listing of the directory at URL path `url_path` (normalised,
/// ending in `/`). Names are HTML-escaped; links are percent-encoded and
/// start with `./` so that a name like `javascript:x` stays a relative path.
pub fn render(url_path: &str, entries: &[Entry]) -> String {
    let title = html_escape(url_path);
    let mut html = String::with_capacity(256 + entries.len() * 96);
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\n\
         <body>\n<h1>Index of {title}</h1>\n<ul>\n"
    );
    if url_path != "/" {
        html.push_str("<li><a href=\"../\">../</a></li>\n");
    }
    for entry in entries {
        let slash = if entry.is_dir { "/" } else { "" };
        let _ = writeln!(
            html,
            "<li><a href=\"./{}{slash}\">{}{slash}</a></li>",
            html_escape(&paths::encode(&entry.name)),
            html_escape(&entry.name),
        );
    }
    html.push_str("</ul>\n</body>\n</html>\n");
    html
}

fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, is_dir: bool) -> Entry {
        Entry {
            name: name.to_owned(),
            is_dir,
        }
    }

    #[test]
    fn render_escapes_names_and_links() {
        let html = render(
            "/a&b/",
            &[
                entry("<img onerror=alert(1)>", false),
                entry("sp ace?#", true),
                entry("javascript:x", false),
            ],
        );
        assert!(html.contains("<title>Index of /a&amp;b/</title>"));
        assert!(html.contains("<li><a href=\"../\">../</a></li>"));
        assert!(html.contains(
            "<a href=\"./%3Cimg%20onerror=alert(1)%3E\">&lt;img onerror=alert(1)&gt;</a>"
        ));
        assert!(html.contains("<a href=\"./sp%20ace%3F%23/\">sp ace?#/</a>"));
        assert!(html.contains("<a href=\"./javascript:x\">javascript:x</a>"));
        assert!(!html.contains("<img"));
    }

    #[test]
    fn root_has_no_parent_link() {
        assert!(!render("/", &[]).contains("../"));
    }

    #[test]
    fn read_sorts_and_hides_dotfiles() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.txt"), b"").unwrap();
        std::fs::write(dir.path().join(".env"), b"").unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        std::os::unix::fs::symlink("a", dir.path().join("c")).unwrap();
        let expected = vec![entry("a", true), entry("b.txt", false), entry("c", true)];
        assert_eq!(read(dir.path(), false).unwrap(), expected);
        assert_eq!(read(dir.path(), true).unwrap()[0], entry(".env", false));
    }
}
