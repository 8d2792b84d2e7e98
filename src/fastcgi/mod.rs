//! The FastCGI gateway: pooled connections to responders (php-fpm, flup).

pub mod conn;
pub mod params;
pub mod pool;
pub mod record;
pub mod spawn;
pub mod stream;
pub mod values;

#[cfg(test)]
mod testing;

use http::request::Parts;

use crate::body::RequestBody;
use crate::config::Config;
use crate::context::RequestCtx;
use crate::error::Error;
use crate::reply::Reply;

/// Per-server FastCGI state: backend pools, managed backends.
pub struct Runtime {}

impl Runtime {
    /// Build pools and start managed (`spawn:`) backends.
    pub async fn start(config: &Config) -> std::io::Result<Self> {
        let _ = config;
        Ok(Runtime {})
    }

    /// Stop managed backends and close pooled connections.
    pub async fn shutdown(&self) {}
}

/// Forward the request to the backends of `ctx.config.fastcgi[route]`.
/// `path` is normalised.
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
