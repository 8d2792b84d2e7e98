//! The error log, through `tracing` (the access log is [`crate::access_log`]).

use std::io;

use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogTarget};
use crate::log_file::{LogFile, SharedLogFile};

/// Install the global `tracing` subscriber writing to the configured error log.
/// `RUST_LOG` overrides `log_level` when set.
pub fn init_error_log(config: &Config) -> io::Result<()> {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new(format!("gatehouse={0},{0}", config.log_level)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let result = match &config.error_log {
        LogTarget::File(path) => {
            let file = LogFile::open(path)?;
            builder
                .with_ansi(false)
                .with_writer(move || SharedLogFile(file.clone()))
                .try_init()
        }
        LogTarget::Off => builder.with_writer(io::sink).try_init(),
        LogTarget::Std => builder.with_ansi(false).with_writer(io::stderr).try_init(),
    };
    // Already installed (tests in one process): keep the first one.
    let _ = result;
    Ok(())
}
