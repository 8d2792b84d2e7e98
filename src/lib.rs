//! gatehouse: an HTTP server that serves static files, runs CGI programs
//! (RFC 3875) and forwards to FastCGI responders.
//!
//! Data flows one way: [`server`] (listeners, accept, drain) -> [`service`]
//! (one request: id, limits, access log) -> [`router`] (a pure decision) ->
//! a handler ([`static_files`], [`cgi`], [`fastcgi`]) -> a streaming [`body`].

/// The `Server` header and `SERVER_SOFTWARE`: `gatehouse/<version>`.
pub const SERVER_SOFTWARE: &str = concat!("gatehouse/", env!("CARGO_PKG_VERSION"));

pub mod access_log;
pub mod body;
pub mod cgi;
pub mod cli;
pub mod compress;
pub mod config;
pub mod context;
pub mod error;
pub mod fastcgi;
pub mod gateway;
pub mod late_file;
pub mod log;
pub mod log_file;
pub mod paths;
pub mod privileges;
pub mod reply;
pub mod router;
pub mod server;
pub mod service;
pub mod static_files;
pub mod tls;
