//! YAML text -> raw structs -> validated [`super::Config`], with every error.

use std::fmt;
use std::path::{Path, PathBuf};

use super::Config;

/// One problem found in the configuration, with its place when known.
#[derive(Debug, Clone)]
pub struct ConfigError {
    pub message: String,
    pub line: Option<u64>,
    pub column: Option<u64>,
}

/// Every problem found in one configuration (never just the first).
#[derive(Debug, Clone)]
pub struct ConfigErrors {
    pub file: Option<PathBuf>,
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        todo!()
    }
}

/// Load and validate a configuration file; relative paths resolve against its directory.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    todo!()
}

/// Parse and validate YAML text; relative paths resolve against `base_dir`.
pub fn load_str(text: &str, base_dir: &Path) -> Result<Config, ConfigErrors> {
    todo!()
}

/// The built-in configuration used when no file is given and
/// `conf/gatehouse.yaml` does not exist: `./htdocs`, `./cgi-bin` at `/cgi-bin/`,
/// `127.0.0.1:8080`, all relative to `base_dir` (the current directory).
pub fn builtin_defaults(base_dir: &Path) -> Result<Config, ConfigErrors> {
    todo!()
}
