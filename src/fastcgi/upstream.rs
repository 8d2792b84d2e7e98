//! The backends of one route: which one a request goes to.
//!
//! The least busy backend that is up is tried first (ties in turn); a
//! connect failure moves the request on to the next, and a route whose
//! backends are all marked down still tries the one that comes back soonest
//! rather than fail without trying.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::pool::{show, Backend, CheckoutError, PooledConn};
use crate::error::{Error, ErrorKind};

/// The backends of one route.
pub struct Upstream {
    backends: Vec<Arc<Backend>>,
    next: AtomicUsize,
}

impl Upstream {
    pub fn new(backends: Vec<Arc<Backend>>) -> Self {
        Upstream {
            backends,
            next: AtomicUsize::new(0),
        }
    }

    pub fn backends(&self) -> &[Arc<Backend>] {
        &self.backends
    }

    /// Backends in the order to try: those up, least outstanding first (ties
    /// in turn); when none is up, the one that comes back soonest.
    fn candidates(&self) -> Vec<Arc<Backend>> {
        let n = self.backends.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let rotated = (0..n).map(|i| &self.backends[(start + i) % n]);
        let (mut up, mut down): (Vec<_>, Vec<_>) = rotated
            .map(|b| (b.clone(), b.down_until()))
            .partition(|(_, until)| until.is_none());
        // Stable sort keeps the rotation among equals.
        up.sort_by_key(|(b, _)| b.outstanding.load(Ordering::Relaxed));
        down.sort_by_key(|(_, until)| *until);
        let mut order: Vec<_> = up.into_iter().map(|(b, _)| b).collect();
        if order.is_empty() {
            order.extend(down.into_iter().take(1).map(|(b, _)| b));
        }
        order
    }

    /// A connection to one of the backends. Connect failures move on to the
    /// next backend; all failing is 502; a full backend is 503.
    pub async fn checkout(&self, wait: Duration) -> Result<PooledConn, Error> {
        let mut last_err = None;
        // A route with one backend tries it, up or down: no order to build.
        let order = (self.backends.len() > 1).then(|| self.candidates());
        for backend in order.as_deref().unwrap_or(&self.backends) {
            match backend.checkout(wait).await {
                Ok(conn) => return Ok(conn),
                Err(CheckoutError::Full) => {
                    return Err(Error::upstream(ErrorKind::Overloaded).with_cause(format!(
                        "all connections to {} busy for {wait:?}",
                        show(backend.addr())
                    )))
                }
                Err(CheckoutError::Connect(err)) => {
                    last_err = Some(format!("{}: {err}", show(backend.addr())));
                }
            }
        }
        Err(Error::upstream(ErrorKind::BadGateway)
            .with_cause(last_err.unwrap_or_else(|| "no fastcgi backend".to_string())))
    }
}
