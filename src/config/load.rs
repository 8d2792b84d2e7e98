//! YAML text -> raw structs -> validated [`super::Config`], with every error.
//!
//! A YAML syntax or type error stops the parser: that one error is reported,
//! with the line and column serde-saphyr gives. Everything after parsing
//! (units, paths, addresses, regexes, exclusive keys) is checked by
//! [`super::validate`], which collects every problem before giving up.

use std::borrow::Cow;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_saphyr::{Localizer, Location, MessageFormatter, UserMessageFormatter};

use super::raw::RawConfig;
use super::validate::Validator;
use super::Config;

/// Larger configuration files are refused before parsing (a real one is a few KiB).
pub const MAX_CONFIG_BYTES: usize = 1 << 20;

/// One problem found in the configuration, with its place when known.
#[derive(Debug, Clone)]
pub struct ConfigError {
    pub message: String,
    pub line: Option<u64>,
    pub column: Option<u64>,
}

impl ConfigError {
    /// A problem without a place in the file (a default, an unreadable file).
    pub fn new(message: impl Into<String>) -> Self {
        ConfigError {
            message: message.into(),
            line: None,
            column: None,
        }
    }

    /// A problem at a YAML location (`Location::UNKNOWN` gives no place).
    pub fn at(location: Option<Location>, message: impl Into<String>) -> Self {
        let place = location.filter(|l| l.line() > 0);
        ConfigError {
            message: message.into(),
            line: place.map(|l| l.line()),
            column: place.map(|l| l.column()),
        }
    }
}

impl fmt::Display for ConfigError {
    /// `LINE:COLUMN: message`, or the message alone.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(f, "{line}:{column}: ")?,
            (Some(line), None) => write!(f, "{line}: ")?,
            _ => {}
        }
        f.write_str(&one_line(&self.message))
    }
}

/// Every problem found in one configuration (never just the first).
#[derive(Debug, Clone)]
pub struct ConfigErrors {
    pub file: Option<PathBuf>,
    pub errors: Vec<ConfigError>,
}

impl ConfigErrors {
    fn one(file: Option<&Path>, error: ConfigError) -> Self {
        ConfigErrors {
            file: file.map(Path::to_path_buf),
            errors: vec![error],
        }
    }
}

impl fmt::Display for ConfigErrors {
    /// One line per error: `FILE:LINE:COLUMN: message` (`FILE: message` when
    /// there is no place; `<config>` when there is no file).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self
            .file
            .as_ref()
            .map_or(Cow::Borrowed("<config>"), |p| p.to_string_lossy());
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            if error.line.is_some() {
                write!(f, "{file}:{error}")?;
            } else {
                write!(f, "{file}: {error}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Load and validate a configuration file; relative paths resolve against its directory.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let text = read_limited(path).map_err(|e| ConfigErrors::one(Some(path), e))?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let base = std::fs::canonicalize(parent).map_err(|e| {
        ConfigErrors::one(
            Some(path),
            ConfigError::new(format!(
                "cannot resolve the directory {}: {e}",
                parent.display()
            )),
        )
    })?;
    load_str(&text, &base).map_err(|mut errors| {
        errors.file = Some(path.to_path_buf());
        errors
    })
}

/// Parse and validate YAML text; relative paths resolve against `base_dir`.
pub fn load_str(text: &str, base_dir: &Path) -> Result<Config, ConfigErrors> {
    let fail = |errors: Vec<ConfigError>| ConfigErrors { file: None, errors };
    if text.len() > MAX_CONFIG_BYTES {
        return Err(fail(vec![ConfigError::new(format!(
            "the configuration is larger than {MAX_CONFIG_BYTES} bytes"
        ))]));
    }
    let raw = parse(text).map_err(|e| fail(vec![e]))?;
    Validator::new(&absolute(base_dir))
        .config(raw)
        .map_err(|mut errors| {
            // In file order; problems without a place (defaults) first.
            errors.sort_by_key(|e| (e.line, e.column));
            fail(errors)
        })
}

/// The built-in configuration used when no file is given and
/// `conf/gatehouse.yaml` does not exist: `./htdocs`, `./cgi-bin` at `/cgi-bin/`,
/// `127.0.0.1:8080`, all relative to `base_dir` (the current directory).
pub fn builtin_defaults(base_dir: &Path) -> Result<Config, ConfigErrors> {
    load_str("", base_dir)
}

/// The YAML step: strict booleans, duplicate keys refused, and a budget so an
/// alias bomb ("billion laughs") or a huge document fails fast.
fn parse(text: &str) -> Result<RawConfig, ConfigError> {
    // An empty document (or only comments, or `~`) means all defaults.
    serde_saphyr::from_str_with_options::<Option<RawConfig>>(text, yaml_options())
        .map(Option::unwrap_or_default)
        .map_err(|e| ConfigError::at(e.location(), yaml_message(&e)))
}

pub(super) fn yaml_options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.strict_booleans = true;
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    options.with_snippet = false;
    options.budget = serde_saphyr::budget! {
        max_events: 100_000,
        max_aliases: 1_000,
        max_anchors: 1_000,
        max_depth: 32,
        max_documents: 1,
        max_nodes: 50_000,
        max_total_scalar_bytes: MAX_CONFIG_BYTES,
        max_merge_keys: 1_000,
    };
    options.alias_limits = serde_saphyr::alias_limits! {
        max_total_replayed_events: 10_000,
        max_replay_stack_depth: 16,
        max_alias_expansions_per_anchor: 1_000,
    };
    options
}

/// serde-saphyr's user-facing message without its "at line X, column Y"
/// suffix: the place is printed in front, `FILE:LINE:COLUMN:`.
fn yaml_message(err: &serde_saphyr::Error) -> String {
    struct NoPlace;
    impl Localizer for NoPlace {
        fn attach_location<'a>(&self, base: Cow<'a, str>, _loc: Location) -> Cow<'a, str> {
            base
        }
    }
    let formatter = UserMessageFormatter.with_localizer(&NoPlace);
    let formatter: &dyn MessageFormatter = &formatter;
    let message = err.without_snippet().render_with_formatter(formatter);
    // Parser vocabulary in the words of the configuration.
    let plain = match message.as_str() {
        "expected sequence start" => "expected a list, like [a, b]",
        "expected mapping start" => "expected a mapping of `key: value` entries",
        "expected string scalar" => "expected a string",
        "invalid u64" => "expected a whole number, 0 or more",
        _ => return message,
    };
    plain.to_owned()
}

/// Read at most [`MAX_CONFIG_BYTES`] + 1 bytes, so `--config /dev/zero` fails instead of hanging.
fn read_limited(path: &Path) -> Result<String, ConfigError> {
    let file =
        std::fs::File::open(path).map_err(|e| ConfigError::new(format!("cannot read: {e}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ConfigError::new(format!("cannot read: {e}")))?;
    if bytes.len() > MAX_CONFIG_BYTES {
        return Err(ConfigError::new(format!(
            "the configuration is larger than {MAX_CONFIG_BYTES} bytes"
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        ConfigError::new(format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// `base_dir` made absolute (canonical when it exists) so stored paths are absolute.
fn absolute(base_dir: &Path) -> PathBuf {
    std::fs::canonicalize(base_dir)
        .or_else(|_| std::path::absolute(base_dir))
        .unwrap_or_else(|_| base_dir.to_path_buf())
}

/// Control characters (a newline in a quoted key, say) escaped so one error is one line.
fn one_line(text: &str) -> Cow<'_, str> {
    if text.chars().any(char::is_control) {
        Cow::Owned(
            text.chars()
                .map(|c| {
                    if c.is_control() {
                        c.escape_default().to_string()
                    } else {
                        c.to_string()
                    }
                })
                .collect(),
        )
    } else {
        Cow::Borrowed(text)
    }
}
