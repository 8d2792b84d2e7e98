//! The command line (clap derive, no logic).

use std::path::PathBuf;

use clap::Parser;

/// gatehouse: static files, CGI programs and FastCGI applications behind one HTTP server.
#[derive(Debug, Parser)]
#[command(name = "gatehouse", version, about)]
pub struct Cli {
    /// Configuration file (default: conf/gatehouse.yaml if it exists, else built-in defaults).
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Listen on ADDR (IP:PORT or unix:/path) instead of the configured addresses; repeatable.
    #[arg(short, long, value_name = "ADDR")]
    pub listen: Vec<String>,

    /// Validate the configuration, print "configuration ok" or the errors, and exit.
    #[arg(long)]
    pub check: bool,
}
