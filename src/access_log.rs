//! The access log, in Combined Log Format, written in batches by a thread of
//! its own so that requests never wait on a disk or a pipe.
//!
//! A request appends its line to a shared buffer: no allocation, no system
//! call. The writer thread is woken only when it is idle and the buffer was
//! empty; after each write it waits [`BATCH_INTERVAL`] before the next, so
//! under load it writes a few hundred lines at a time instead of being woken
//! (and switched to) once per request, which halved a loaded server's rate.
//! When idle, a line is written at once. The buffer is bounded: if the output
//! stops taking lines (a pipe nobody reads), new lines are counted and
//! dropped rather than growing memory, and the count goes to the error log.

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderValue, Method, Uri, Version};

use crate::config::LogTarget;
use crate::context::RequestId;
use crate::log_file::{LogFile, SharedLogFile};

/// Under load, at most one write per this interval.
pub const BATCH_INTERVAL: Duration = Duration::from_millis(10);
/// Lines waiting beyond this many bytes are dropped (and counted).
const MAX_PENDING: usize = 4 << 20;

/// One finished request, as the access log records it. Built at the start of
/// the request from cheap clones of its head (no formatting until it ends).
pub struct AccessRecord {
    pub peer: SocketAddr,
    /// When the request was received (`%t` in Apache's terms).
    pub time: SystemTime,
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub status: u16,
    pub bytes: u64,
    pub referer: Option<HeaderValue>,
    pub user_agent: Option<HeaderValue>,
    pub id: RequestId,
}

/// The access log: a handle to the shared buffer (or nothing when off).
#[derive(Clone)]
pub struct AccessLog {
    shared: Option<Arc<Shared>>,
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
    out: Mutex<Box<dyn Write + Send>>,
}

#[derive(Default)]
struct Pending {
    lines: Vec<u8>,
    writer_idle: bool,
    dropped: u64,
    memo: Memo,
}

impl AccessLog {
    pub fn open(target: &LogTarget) -> io::Result<Self> {
        let out: Box<dyn Write + Send> = match target {
            LogTarget::Off => return Ok(AccessLog { shared: None }),
            LogTarget::Std => Box::new(io::stdout()),
            // Reopened under its path on SIGUSR1/SIGHUP (logrotate).
            LogTarget::File(path) => Box::new(SharedLogFile(LogFile::open(path)?)),
        };
        let shared = Arc::new(Shared {
            pending: Mutex::default(),
            wake: Condvar::new(),
            out: Mutex::new(out),
        });
        let writer = shared.clone();
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || writer.write_forever())?;
        Ok(AccessLog {
            shared: Some(shared),
        })
    }

    pub fn enabled(&self) -> bool {
        self.shared.is_some()
    }

    pub fn record(&self, record: &AccessRecord) {
        let Some(shared) = &self.shared else {
            return;
        };
        let mut pending = lock(&shared.pending);
        if pending.lines.len() >= MAX_PENDING {
            pending.dropped += 1;
            return;
        }
        let was_empty = pending.lines.is_empty();
        let Pending { lines, memo, .. } = &mut *pending;
        write_combined(lines, memo, record);
        if was_empty && pending.writer_idle {
            pending.writer_idle = false;
            drop(pending);
            shared.wake.notify_one();
        }
    }

    /// Write out every line recorded so far (at shutdown: none is lost).
    pub fn flush(&self) {
        if let Some(shared) = &self.shared {
            let mut batch = Vec::new();
            shared.write_pending(&mut batch);
        }
    }
}

impl Shared {
    fn write_forever(&self) {
        let mut batch = Vec::new();
        loop {
            {
                let mut pending = lock(&self.pending);
                while pending.lines.is_empty() {
                    pending.writer_idle = true;
                    pending = self
                        .wake
                        .wait(pending)
                        .unwrap_or_else(|poison| poison.into_inner());
                }
                pending.writer_idle = false;
            }
            self.write_pending(&mut batch);
            std::thread::sleep(BATCH_INTERVAL);
        }
    }

    /// Take what is pending and write it; `batch` is the spare buffer that
    /// changes places with the pending one, so neither is reallocated.
    fn write_pending(&self, batch: &mut Vec<u8>) {
        // The output lock first: a flush at shutdown waits for a write in
        // progress, then takes what came after it.
        let mut out = lock(&self.out);
        let dropped = {
            let mut pending = lock(&self.pending);
            std::mem::swap(&mut pending.lines, batch);
            std::mem::take(&mut pending.dropped)
        };
        if !batch.is_empty() {
            let _ = out.write_all(batch).and_then(|()| out.flush());
        }
        drop(out);
        if dropped > 0 {
            tracing::warn!("access log output is not keeping up: {dropped} lines dropped");
        }
        batch.clear();
        if batch.capacity() > MAX_PENDING {
            batch.shrink_to(64 << 10);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding it leaves plain bytes: keep logging.
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// What consecutive lines mostly share, formatted once: the second they
/// were received in, and the client address.
#[derive(Default)]
struct Memo {
    secs: u64,
    time: String,
    ip: Option<(IpAddr, String)>,
}

/// Append one Combined Log Format line, with the request id as a last field:
/// `host - - [time] "request" status bytes "referer" "agent" id`. Written
/// by hand rather than through `format!`, which was half the log's cost.
fn write_combined(out: &mut Vec<u8>, memo: &mut Memo, r: &AccessRecord) {
    let secs = r.time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if memo.time.is_empty() || memo.secs != secs {
        (memo.secs, memo.time) = (secs, clf_time(secs));
    }
    let ip = r.peer.ip();
    let ip_text = match &memo.ip {
        Some((known, text)) if *known == ip => text,
        _ => &memo.ip.insert((ip, ip.to_string())).1,
    };
    out.extend_from_slice(ip_text.as_bytes());
    out.extend_from_slice(b" - - [");
    out.extend_from_slice(memo.time.as_bytes());
    out.extend_from_slice(b"] \"");
    escape_into(out, r.method.as_str().as_bytes());
    out.push(b' ');
    let start = out.len();
    match (r.uri.scheme(), r.uri.path_and_query()) {
        (None, Some(origin_form)) => out.extend_from_slice(origin_form.as_str().as_bytes()),
        // Absolute form (or `*`): rare, let `Uri` spell it.
        _ => {
            let _ = write!(out, "{}", r.uri);
        }
    }
    escape_tail(out, start);
    out.extend_from_slice(match r.version {
        Version::HTTP_09 => b" HTTP/0.9\" ",
        Version::HTTP_10 => b" HTTP/1.0\" ",
        Version::HTTP_2 => b" HTTP/2.0\" ",
        Version::HTTP_3 => b" HTTP/3.0\" ",
        _ => b" HTTP/1.1\" ",
    });
    push_decimal(out, u64::from(r.status));
    out.push(b' ');
    if r.bytes == 0 {
        out.push(b'-');
    } else {
        push_decimal(out, r.bytes);
    }
    for value in [&r.referer, &r.user_agent] {
        out.extend_from_slice(b" \"");
        match value {
            Some(value) => escape_into(out, value.as_bytes()),
            None => out.push(b'-'),
        }
        out.push(b'"');
    }
    out.push(b' ');
    push_hex_id(out, r.id.0);
    out.push(b'\n');
}

fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// As [`RequestId`]'s `Display`: lowercase hex, at least 8 digits.
fn push_hex_id(out: &mut Vec<u8>, id: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let width = (16 - id.leading_zeros() as usize / 4).max(8);
    for i in (0..width).rev() {
        out.push(HEX[(id >> (i * 4)) as usize & 0xf]);
    }
}

/// Escape quotes, backslashes, control bytes and non-ASCII bytes (as
/// `\xHH`, as nginx does) so that a client can neither forge a line nor
/// put bytes in the log that are not text.
fn escape_into(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x20..=0x7e => out.push(b),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
}

/// [`escape_into`] for what was just written from `start` on, when escaping
/// is rarely needed (the request target: hyper has checked it is visible
/// ASCII, but a `"` or `\` may be in it).
fn escape_tail(out: &mut Vec<u8>, start: usize) {
    if out[start..]
        .iter()
        .all(|&b| matches!(b, 0x20..=0x7e) && b != b'"' && b != b'\\')
    {
        return;
    }
    let raw = out.split_off(start);
    escape_into(out, &raw);
}

/// `10/Oct/2000:13:55:36 +0000` (always UTC).
fn clf_time(secs: u64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{:02}/{}/{}:{:02}:{:02}:{:02} +0000",
        day,
        MONTHS[(month - 1) as usize],
        year,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month 1-12, day 1-31), Howard Hinnant's algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clf_time_matches_known_dates() {
        assert_eq!(clf_time(971_186_136), "10/Oct/2000:13:55:36 +0000");
        assert_eq!(clf_time(0), "01/Jan/1970:00:00:00 +0000");
        // 2024-02-29 12:00:00 UTC, a leap day.
        assert_eq!(clf_time(1_709_208_000), "29/Feb/2024:12:00:00 +0000");
    }

    fn record(uri: &str, user_agent: Option<&[u8]>) -> AccessRecord {
        AccessRecord {
            peer: "127.0.0.1:5555".parse().unwrap(),
            time: UNIX_EPOCH,
            method: Method::GET,
            uri: uri.parse().unwrap(),
            version: Version::HTTP_11,
            status: 200,
            bytes: 0,
            referer: None,
            user_agent: user_agent.map(|v| HeaderValue::from_bytes(v).unwrap()),
            id: RequestId(1),
        }
    }

    fn line(r: &AccessRecord) -> String {
        let mut out = Vec::new();
        write_combined(&mut out, &mut Memo::default(), r);
        String::from_utf8(out).expect("the log is ASCII")
    }

    #[test]
    fn combined_line_escapes_quotes_controls_and_non_ascii() {
        let r = record("/a?q=%22", Some(b"evil\"\t\xff\\ \xc3\xa9"));
        assert_eq!(
            line(&r),
            "127.0.0.1 - - [01/Jan/1970:00:00:00 +0000] \"GET /a?q=%22 HTTP/1.1\" 200 - \"-\" \"evil\\\"\\x09\\xff\\\\ \\xc3\\xa9\" 00000001\n"
        );
    }

    #[test]
    fn combined_line_counts_bytes_and_names_the_referer() {
        let mut r = record("http://example.com/x", None);
        r.bytes = 1234;
        r.status = 404;
        r.referer = Some(HeaderValue::from_static("http://ref.example/"));
        assert_eq!(
            line(&r),
            "127.0.0.1 - - [01/Jan/1970:00:00:00 +0000] \"GET http://example.com/x HTTP/1.1\" 404 1234 \"http://ref.example/\" \"-\" 00000001\n"
        );
    }

    #[test]
    fn numbers_and_ids_are_spelled_as_display_would() {
        for n in [0u64, 7, 10, 404, 1_234_567, u64::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
        for id in [0u64, 1, 0x2a, 0xffff_ffff, 0x1_0000_0000, u64::MAX] {
            let mut out = Vec::new();
            push_hex_id(&mut out, id);
            assert_eq!(out, RequestId(id).to_string().as_bytes());
        }
        let mut r = record("/", None);
        r.version = Version::HTTP_10;
        assert!(line(&r).contains("\"GET / HTTP/1.0\" 200 -"));
        r.version = Version::HTTP_2;
        assert!(line(&r).contains("\"GET / HTTP/2.0\" 200 -"));
    }

    #[test]
    fn the_time_is_reformatted_when_the_second_changes() {
        let mut out = Vec::new();
        let mut memo = Memo::default();
        let mut r = record("/", None);
        write_combined(&mut out, &mut memo, &r);
        r.time = UNIX_EPOCH + Duration::from_secs(971_186_136);
        r.peer = "[::1]:443".parse().unwrap();
        write_combined(&mut out, &mut memo, &r);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("[01/Jan/1970:00:00:00 +0000]"), "{text}");
        assert!(text.contains("[10/Oct/2000:13:55:36 +0000]"), "{text}");
        assert!(text.starts_with("127.0.0.1 - - "), "{text}");
        assert!(text.contains("\n::1 - - "), "{text}");
    }

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn flush_writes_every_recorded_line_and_pending_stays_bounded() {
        let sink = Sink::default();
        let shared = Arc::new(Shared {
            pending: Mutex::default(),
            wake: Condvar::new(),
            out: Mutex::new(Box::new(sink.clone())),
        });
        // No writer thread: lines wait until flushed.
        let log = AccessLog {
            shared: Some(shared.clone()),
        };
        for _ in 0..1000 {
            log.record(&record("/x", None));
        }
        log.flush();
        let written = sink.0.lock().unwrap().clone();
        assert_eq!(written.iter().filter(|&&b| b == b'\n').count(), 1000);

        // Nothing takes the lines: the pending buffer stops growing.
        let long = "a".repeat(60_000);
        for _ in 0..200 {
            log.record(&record(&format!("/{long}"), None));
        }
        let pending = lock(&shared.pending);
        assert!(pending.lines.len() < MAX_PENDING + 70_000);
        assert!(pending.dropped > 0);
    }
}
