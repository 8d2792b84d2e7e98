//! Typed request errors and the one place where they become HTTP statuses.
//!
//! Every handler returns [`Error`]; `service` turns it into a response with
//! [`Error::status`]. The match there has no wildcard arm, so a new kind does
//! not compile until it has a status (hyper's `Server::on_error` does the same).

use std::fmt;

use http::StatusCode;

/// Who failed: decides whether the client, a backend or we are to blame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client sent something wrong, or went away.
    Downstream,
    /// A CGI program or FastCGI backend failed.
    Upstream,
    /// gatehouse itself (configuration, file system, a bug).
    Internal,
}

/// What went wrong, independent of who caused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    BadRequest,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    LengthRequired,
    PayloadTooLarge,
    UriTooLong,
    /// 412: a conditional request's precondition (If-Match,
    /// If-Unmodified-Since) failed (RFC 9110 section 13.2.2).
    PreconditionFailed,
    /// 416; carries the representation length for `Content-Range: bytes */LEN`.
    RangeNotSatisfiable(u64),
    HeaderFieldsTooLarge,
    /// A CGI program failed before it sent a complete header block.
    ScriptFailed,
    /// Local redirects looped past the limit.
    TooManyRedirects,
    Internal,
    /// A backend refused, reset, or sent garbage.
    BadGateway,
    /// gatehouse is at a configured limit (process or connection cap).
    Overloaded,
    /// A backend did not answer in time.
    GatewayTimeout,
    VersionNotSupported,
    /// The client is gone: nothing can be sent.
    ClientGone,
}

type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A request failure: its kind, who caused it, and why (for the error log only,
/// never for the client: causes may hold file system paths).
#[derive(Debug)]
pub struct Error {
    pub kind: ErrorKind,
    pub side: Side,
    pub cause: Option<Cause>,
}

impl Error {
    pub fn new(kind: ErrorKind, side: Side) -> Self {
        Error {
            kind,
            side,
            cause: None,
        }
    }

    /// Attach the reason, kept for the error log.
    pub fn with_cause(mut self, cause: impl Into<Cause>) -> Self {
        self.cause = Some(cause.into());
        self
    }

    pub fn downstream(kind: ErrorKind) -> Self {
        Error::new(kind, Side::Downstream)
    }

    pub fn upstream(kind: ErrorKind) -> Self {
        Error::new(kind, Side::Upstream)
    }

    pub fn internal(cause: impl Into<Cause>) -> Self {
        Error::new(ErrorKind::Internal, Side::Internal).with_cause(cause)
    }

    /// The status sent for this error; `None` when nothing can be sent.
    pub fn status(&self) -> Option<StatusCode> {
        use ErrorKind::*;
        Some(match self.kind {
            BadRequest => StatusCode::BAD_REQUEST,
            Forbidden => StatusCode::FORBIDDEN,
            NotFound => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            LengthRequired => StatusCode::LENGTH_REQUIRED,
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            UriTooLong => StatusCode::URI_TOO_LONG,
            PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            RangeNotSatisfiable(_) => StatusCode::RANGE_NOT_SATISFIABLE,
            HeaderFieldsTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ScriptFailed | TooManyRedirects | Internal => StatusCode::INTERNAL_SERVER_ERROR,
            BadGateway => StatusCode::BAD_GATEWAY,
            Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
            VersionNotSupported => StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            ClientGone => return None,
        })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = match self.side {
            Side::Downstream => "client",
            Side::Upstream => "upstream",
            Side::Internal => "internal",
        };
        match self.status() {
            Some(status) => write!(f, "{status} ({side} error)")?,
            None => write!(f, "client gone")?,
        }
        if let Some(cause) = &self.cause {
            write!(f, ": {cause}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|c| c as &(dyn std::error::Error + 'static))
    }
}

/// A short reason for the error log, made from a plain message.
pub fn msg(text: impl Into<String>) -> Cause {
    text.into().into()
}
