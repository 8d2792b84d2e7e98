//! The signals the server acts on: SIGTERM and SIGINT stop it, SIGUSR1 and
//! SIGHUP reopen its log files ([`crate::log_file`]).
//!
//! All four are caught before the first socket is bound: one that arrived
//! between the "listening" line and its handler would otherwise take its
//! default action and kill the process (with SIGTERM, an exit by signal
//! instead of the drain and exit 0 the command line promises; with SIGUSR1,
//! sent by a logrotate script written for nginx, the server itself).

use std::io;

use tokio::signal::unix::{signal, Signal, SignalKind};

/// SIGTERM and SIGINT.
pub struct Stop {
    term: Signal,
    int: Signal,
}

/// SIGUSR1 and SIGHUP.
pub struct Reopen {
    usr1: Signal,
    hup: Signal,
}

/// Catch all four from now on.
pub fn install() -> io::Result<(Stop, Reopen)> {
    Ok((
        Stop {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        },
        Reopen {
            usr1: signal(SignalKind::user_defined1())?,
            hup: signal(SignalKind::hangup())?,
        },
    ))
}

impl Stop {
    /// Wait for SIGTERM or SIGINT.
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

impl Reopen {
    /// Reopen the log files on every SIGUSR1 or SIGHUP, for as long as the
    /// server runs.
    pub async fn serve(mut self) {
        loop {
            tokio::select! {
                Some(()) = self.usr1.recv() => {}
                Some(()) = self.hup.recv() => {}
                else => return,
            }
            // Opening a file may wait on a disk: not on the runtime thread.
            let Ok(failures) = tokio::task::spawn_blocking(crate::log_file::reopen_all).await
            else {
                continue;
            };
            if failures.is_empty() {
                tracing::info!("log files reopened");
            }
            for (path, err) in failures {
                tracing::warn!(
                    path = %path.display(),
                    error = %err,
                    "cannot reopen a log file; still writing to the old one"
                );
            }
        }
    }
}
