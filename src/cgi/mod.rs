//! The CGI gateway: one process per request (RFC 3875).
//!
//! [`handle`] runs these steps, in this order:
//! 1. find the program ([`script::locate`]): 404 or 403, never its source;
//! 2. get the body ready ([`input::prepare`]): streamed when it has a length,
//!    spooled when it has none, so CONTENT_LENGTH is always exact;
//! 3. build the environment ([`crate::gateway::env`]);
//! 4. take one of the route's `max_processes` slots and a place in the
//!    start gate ([`Runtime`]), waiting at most `queue_timeout` (in arrival
//!    order), else 503;
//! 5. spawn the program in its own process group, a reaper task waiting on
//!    it ([`process::start`], on the blocking pool when there is a second CPU);
//! 6. copy the body, if there is one, to its stdin in a task of its own;
//! 7. read its response head ([`crate::gateway::response`]) before the
//!    deadline: 504 past it, 500 for no header block, 502 for a malformed one;
//! 8. answer: a local redirect for `service` to re-dispatch, or a response
//!    whose body streams stdout and owns the guard that kills the group.
//!
//! `timeout` covers the whole request, from step 1 to the last body byte.

mod input;
pub mod located;
mod output;
pub mod process;
pub mod script;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use http::request::Parts;
use http::{Method, Response};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::io::ReaderStream;

use crate::body::{Body, RequestBody};
use crate::config::{CgiRoute, Config};
use crate::context::RequestCtx;
use crate::error::{msg, Error, ErrorKind, Side};
use crate::gateway::body::{self, ProgramBody};
use crate::gateway::env::{self, EnvOptions, ScriptInfo};
use crate::gateway::response::{self, GatewayHead, HeadError, HeadParser, Mode, Settled};
use crate::reply::Reply;

use self::located::Located;
use self::process::{Live, Program, Spawned, Tag};
use self::script::Script;

/// Read size for stdout (64 KiB, the pipe buffer size on Linux).
const READ_CHUNK: usize = 64 * 1024;
/// How long to wait for an exit status to explain a failure.
const EXIT_WAIT: Duration = Duration::from_secs(1);

/// How often a child holding a place in the start gate is looked at.
pub const START_CHECK: Duration = Duration::from_millis(25);
/// The longest a child holds a place in the start gate: by then it has
/// started, and a long computation must not keep others from starting.
pub const START_MAX: Duration = Duration::from_millis(500);

/// Per-server CGI state: process limits per route, the start gate, the live
/// children.
///
/// The start gate: at most `2 x CPUs` (at least 8) children may be starting
/// at once. A new child takes a place and keeps it until it exits, is seen
/// (every [`START_CHECK`]) waiting rather than running, or has held it for
/// [`START_MAX`]. Interpreters spend their first milliseconds on CPU
/// (Python: about 9 ms here); 64 of them started together on one core share
/// its caches in time slices, and served 90-92 req/s where 8 at a time
/// served 105-106. A program that waits (on a database, a sleep) gives its
/// place back within [`START_CHECK`], and one that computes for long within
/// [`START_MAX`], so the gate shapes bursts of starts and never lowers
/// `max_processes`.
pub struct Runtime {
    slots: Vec<Arc<Semaphore>>,
    starts: Arc<Semaphore>,
    live: Arc<Live>,
    located: Located,
    /// Spawn on the blocking pool rather than on the event loop.
    spawn_off_loop: bool,
}

/// The permits a child runs under: its route's process slot, held until it
/// has exited, and its place in the start gate.
pub struct Permits {
    pub slot: OwnedSemaphorePermit,
    pub start: OwnedSemaphorePermit,
}

impl Runtime {
    /// Also marks inherited descriptors close-on-exec (see
    /// [`process::close_inherited_on_exec`]).
    pub fn new(config: &Config) -> Self {
        process::close_inherited_on_exec();
        let slots = config
            .cgi
            .iter()
            .map(|route| {
                Arc::new(Semaphore::new(
                    route.max_processes.clamp(1, Semaphore::MAX_PERMITS),
                ))
            })
            .collect();
        let cpus = crate::server::available_cpus();
        Runtime {
            slots,
            starts: Arc::new(Semaphore::new((2 * cpus).max(8))),
            spawn_off_loop: cpus > 1,
            live: Arc::new(Live::default()),
            located: Located::new(config.cgi.len()),
        }
    }

    /// Kill the process group of every child still running (shutdown).
    pub fn kill_all(&self) {
        self.live.kill_all();
    }

    /// Start a child: on a blocking thread when there is another CPU to
    /// run it on. With vfork semantics the spawning thread waits until the
    /// child has exec'd (~100-200 us of kernel time for a small program);
    /// the event loop meanwhile serves everyone else.
    async fn start(
        &self,
        command: tokio::process::Command,
        deadline: Instant,
        permits: Permits,
        tag: &Tag,
    ) -> io::Result<Spawned> {
        if !self.spawn_off_loop {
            return process::start(command, deadline, permits, &self.live, tag);
        }
        let live = self.live.clone();
        let tag = tag.clone();
        tokio::task::spawn_blocking(move || process::start(command, deadline, permits, &live, &tag))
            .await
            .unwrap_or_else(|e| Err(io::Error::other(e)))
    }

    /// How many CGI children are running now.
    pub fn children(&self) -> usize {
        self.live.len()
    }

    /// Step 4: a process slot of the route, then a place in the start gate.
    async fn permits(
        &self,
        route: &CgiRoute,
        index: usize,
        deadline: Instant,
    ) -> Result<Permits, Error> {
        let sem = self
            .slots
            .get(index)
            .ok_or_else(|| Error::internal("CGI route without a process limit"))?;
        // A queue rides out a burst (Apache queues without limit); one that
        // lasts `queue_timeout` is overload, and a 503 with Retry-After
        // serves the client better than a longer wait.
        let wait = route
            .queue_timeout
            .min(deadline.saturating_duration_since(Instant::now()));
        let give_up = Instant::now() + wait;
        let overloaded = |what: &str| {
            Error::new(ErrorKind::Overloaded, Side::Internal).with_cause(format!(
                "{what} of {} busy for {wait:?} (max_processes {})",
                route.prefix, route.max_processes
            ))
        };
        let slot = acquire(sem, give_up)
            .await
            .ok_or_else(|| overloaded("all CGI process slots"))?;
        let start = acquire(&self.starts, give_up)
            .await
            .ok_or_else(|| overloaded("the CGI start gate"))?;
        Ok(Permits { slot, start })
    }
}

/// A permit of `sem` (first come, first served), unless `give_up` comes first.
async fn acquire(sem: &Arc<Semaphore>, give_up: Instant) -> Option<OwnedSemaphorePermit> {
    if let Ok(permit) = sem.clone().try_acquire_owned() {
        return Some(permit);
    }
    match tokio::time::timeout_at(give_up, sem.clone().acquire_owned()).await {
        Ok(Ok(permit)) => Some(permit),
        _ => None,
    }
}

/// Run the program that `path` (normalised, starting with the route prefix)
/// names under `ctx.config.cgi[route]`.
pub async fn handle(
    rt: &Runtime,
    route: usize,
    parts: &Parts,
    body: RequestBody,
    path: &str,
    ctx: &RequestCtx,
) -> Result<Reply, Error> {
    let config = ctx.config.clone();
    let r = config
        .cgi
        .get(route)
        .ok_or_else(|| Error::internal("no such CGI route"))?;
    let deadline = Instant::now() + r.timeout;

    let script = rt.locate(&config, route, path).await?;
    let tag = Tag {
        id: ctx.id,
        script: script.script_name.as_str().into(),
    };
    let input = input::prepare(parts, body, config.limits.max_request_body, deadline).await?;
    let vars = environment(parts, ctx, r, &script, input.content_length());
    let permits = rt.permits(r, route, deadline).await?;
    let command = process::command(&Program {
        script: &script,
        env: &vars,
        pass_env: &r.pass_env,
        body: input.content_length().is_some(),
    });
    let Spawned {
        stdin,
        stdout,
        mut guard,
        exit,
    } = rt
        .start(command, deadline, permits, &tag)
        .await
        .map_err(|e| spawn_failed(&script, &e, &tag))?;
    if let Some(stdin) = stdin {
        let feeder = tokio::spawn(tokio::time::timeout_at(deadline, input::feed(stdin, input)));
        guard.own_task(feeder.abort_handle());
    }

    let stdout = ReaderStream::with_capacity(stdout, READ_CHUNK);
    match read_answer(stdout, script.nph, deadline).await {
        Ok(Settled::LocalRedirect(target)) => {
            guard.disarm();
            Ok(Reply::LocalRedirect(target))
        }
        Ok(Settled::Response(head, rest)) => Ok(Reply::Response(respond(
            &parts.method,
            head,
            rest,
            guard,
            deadline,
            tag,
        ))),
        Err(err) => Err(head_failed(err, exit, deadline, r, &tag).await),
    }
}

/// Step 3: the RFC 3875 variables for this program.
fn environment<'a>(
    parts: &'a Parts,
    ctx: &'a RequestCtx,
    route: &'a CgiRoute,
    script: &'a Script,
    content_length: Option<u64>,
) -> Vec<env::Var<'a>> {
    env::build(
        parts,
        ctx,
        &ScriptInfo {
            script_name: &script.script_name,
            path_info: script.path_info.as_deref(),
            script_filename: &script.file,
        },
        &EnvOptions {
            pass_authorization: route.pass_authorization,
            content_length,
            document_root: ctx.config.document_root.as_deref(),
            extra: &route.env,
        },
    )
}

/// Step 7: the head, and for a local redirect the proof that no body
/// follows. `Err(None)` when the deadline passed.
async fn read_answer<S>(
    stdout: S,
    nph: bool,
    deadline: Instant,
) -> Result<Settled<S>, Option<HeadError>>
where
    S: Stream<Item = io::Result<Bytes>> + Unpin,
{
    let mode = if nph { Mode::Nph } else { Mode::Cgi };
    let parser = HeadParser::new(mode, response::MAX_HEAD_BYTES);
    let answer = async {
        let (head, rest) = response::read_head(stdout, parser).await?;
        response::settle_local_redirect(head, rest).await
    };
    match tokio::time::timeout_at(deadline, answer).await {
        Ok(settled) => settled.map_err(Some),
        Err(_) => Err(None),
    }
}

/// Step 8: the response; its body streams the rest of stdout, framed by the
/// program's Content-Length if it gave one, and owns the guard. HEAD, 204
/// and 304 send no body, but the program may still write one: it is drained
/// rather than killed for it.
fn respond<S>(
    method: &Method,
    head: GatewayHead,
    rest: S,
    guard: process::KillGuard,
    deadline: Instant,
    tag: Tag,
) -> Response<Body>
where
    S: Stream<Item = io::Result<Bytes>> + Unpin + Send + 'static,
{
    let mut headers = head.headers;
    let body = if body::sends_body(method, head.status) {
        let output = output::ScriptBody::new(rest, guard, deadline, tag);
        Body::from_body(ProgramBody::new(output, head.content_length))
    } else {
        output::drain(rest, guard, deadline);
        body::bodiless_length(&mut headers, method, head.status, head.content_length);
        Body::empty()
    };
    let mut response = Response::new(body);
    *response.status_mut() = head.status;
    *response.headers_mut() = headers;
    response
}

impl Runtime {
    /// Step 1: from the cache of programs recently found, or off the async
    /// workers (it stats and canonicalises paths).
    async fn locate(
        &self,
        config: &Arc<Config>,
        route: usize,
        path: &str,
    ) -> Result<Arc<Script>, Error> {
        if let Some(script) = self.located.get(route, path) {
            return Ok(script);
        }
        let (config, owned_path) = (config.clone(), path.to_owned());
        let (script, stamp) = tokio::task::spawn_blocking(move || {
            let script = script::locate(&config.cgi[route], &owned_path)?;
            let stamp = located::Stamp::of(&script.file);
            Ok::<_, Error>((Arc::new(script), stamp))
        })
        .await
        .map_err(|e| Error::internal(format!("looking up a CGI program: {e}")))??;
        if let Some(stamp) = stamp {
            self.located.put(route, path, script.clone(), stamp);
        }
        Ok(script)
    }
}

/// A spawn failure, in words that say what to fix (`service` logs it).
fn spawn_failed(script: &Script, err: &io::Error, tag: &Tag) -> Error {
    let program = script.argv[0].to_string_lossy();
    let interpreted = script.argv.len() > 1;
    let why = match err.kind() {
        io::ErrorKind::NotFound if interpreted => format!(
            "cannot start its interpreter `{program}`: No such file or directory (is it installed, \
             and on the PATH passed to CGI programs? see `interpreters` and `pass_env`)"
        ),
        io::ErrorKind::NotFound => format!(
            "cannot be executed: No such file or directory (the interpreter named in its #! line \
             is missing, or it has CRLF line ends): {err}"
        ),
        _ => format!("cannot be started ({program}): {err}"),
    };
    let kind = match err.kind() {
        io::ErrorKind::PermissionDenied if !interpreted => ErrorKind::Forbidden,
        _ => ErrorKind::ScriptFailed,
    };
    Error::upstream(kind).with_cause(msg(format!("CGI program {}: {why}", tag.script)))
}

/// Why the head could not be had; `None` for the deadline. The cause says
/// it in words a user can act on; `service` logs it with the request id.
async fn head_failed(
    err: Option<HeadError>,
    mut exit: watch::Receiver<Option<std::process::ExitStatus>>,
    deadline: Instant,
    route: &CgiRoute,
    tag: &Tag,
) -> Error {
    let timeout = || {
        let why = format!(
            "sent no complete headers within its timeout of {:?}; its process group was killed",
            route.timeout
        );
        (ErrorKind::GatewayTimeout, why)
    };
    let (kind, why) = match err {
        None => timeout(),
        // The reaper kills at the deadline too; the EOF that follows is ours.
        Some(HeadError::NoHeaderBlock) if Instant::now() >= deadline => timeout(),
        Some(HeadError::NoHeaderBlock) => (
            ErrorKind::ScriptFailed,
            no_head_block(&mut exit, deadline).await,
        ),
        Some(HeadError::MissingContentType) => (
            ErrorKind::ScriptFailed,
            "sent headers without Content-Type, Status or Location".to_owned(),
        ),
        Some(e @ (HeadError::Malformed(_) | HeadError::TooLarge)) => {
            (ErrorKind::BadGateway, e.to_string())
        }
        Some(e @ HeadError::Io(_)) => (ErrorKind::Internal, e.to_string()),
    };
    Error::upstream(kind).with_cause(msg(format!("CGI program {}: {why}", tag.script)))
}

/// Explain output that ended without a header block, by the exit status.
async fn no_head_block(
    exit: &mut watch::Receiver<Option<std::process::ExitStatus>>,
    deadline: Instant,
) -> String {
    let wait = (Instant::now() + EXIT_WAIT).min(deadline);
    let status = tokio::time::timeout_at(wait, exit.wait_for(Option::is_some))
        .await
        .ok()
        .and_then(|r| r.ok().and_then(|s| *s));
    match status {
        Some(status) if !status.success() => format!(
            "{} before sending its headers (see its stderr above)",
            process::describe(status)
        ),
        Some(_) => "printed no blank line after its headers (or printed nothing)".to_owned(),
        None => "closed its output before sending its headers".to_owned(),
    }
}

#[cfg(test)]
mod tests;
