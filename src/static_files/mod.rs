//! Static files from the document root.

use http::request::Parts;
use http::Response;

use crate::body::Body;
use crate::context::RequestCtx;
use crate::error::Error;

/// Serve `path` (already normalised by [`crate::paths::normalize`]) from the
/// configured document root.
pub async fn handle(parts: &Parts, path: &str, ctx: &RequestCtx) -> Result<Response<Body>, Error> {
    let _ = (parts, path, ctx);
    todo!()
}
