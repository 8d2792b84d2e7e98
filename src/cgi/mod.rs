//! The CGI gateway: one process per request (RFC 3875).

use http::request::Parts;

use crate::body::RequestBody;
use crate::config::Config;
use crate::context::RequestCtx;
use crate::error::Error;
use crate::reply::Reply;

/// Per-server CGI state: process limits per route, the live children.
pub struct Runtime {}

impl Runtime {
    pub fn new(config: &Config) -> Self {
        let _ = config;
        Runtime {}
    }

    /// Kill the process group of every child still running (shutdown).
    pub fn kill_all(&self) {}
}

/// Run the program that `path` (normalised, starting with the route prefix)
/// names under `ctx.config.cgi[route]`.
pub async fn handle(
    rt: &Runtime,
    route: usize,
    parts: Parts,
    body: RequestBody,
    path: &str,
    ctx: &RequestCtx,
) -> Result<Reply, Error> {
    let _ = (rt, route, parts, body, path, ctx);
    todo!()
}
