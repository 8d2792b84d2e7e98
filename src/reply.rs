//! What a handler gives back to `service`.

use http::Response;

use crate::body::Body;

/// A handler's answer: a response, or a local redirect that `service`
/// re-dispatches through the router (RFC 3875 section 6.2.2).
pub enum Reply {
    Response(Response<Body>),
    /// A path with optional query (`/new/place?x=1`), to be served as if the
    /// client had asked for it with GET.
    LocalRedirect(String),
}

impl From<Response<Body>> for Reply {
    fn from(response: Response<Body>) -> Self {
        Reply::Response(response)
    }
}
