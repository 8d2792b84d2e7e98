//! Logging: the error log through `tracing`, and the access log in Combined
//! Log Format written by a background thread so requests never wait on disk.

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogTarget};

/// Install the global `tracing` subscriber writing to the configured error log.
/// `RUST_LOG` overrides `log_level` when set.
pub fn init_error_log(config: &Config) -> io::Result<()> {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new(format!("gatehouse={0},{0}", config.log_level)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let result = match &config.error_log {
        LogTarget::File(path) => {
            let file = OpenOptions::new().create(true).append(true).open(path)?;
            builder
                .with_ansi(false)
                .with_writer(Mutex::new(file))
                .try_init()
        }
        LogTarget::Off => builder.with_writer(io::sink).try_init(),
        LogTarget::Std => builder.with_ansi(false).with_writer(io::stderr).try_init(),
    };
    // Already installed (tests in one process): keep the first one.
    let _ = result;
    Ok(())
}

/// One finished request, as the access log records it.
pub struct AccessRecord {
    pub peer: SocketAddr,
    pub user: Option<String>,
    pub time: SystemTime,
    pub request_line: String,
    pub status: u16,
    pub bytes: u64,
    pub referer: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: String,
}

/// The access log: a channel to a writer thread (or nothing when off).
#[derive(Clone)]
pub struct AccessLog {
    sender: Option<Sender<String>>,
}

impl AccessLog {
    pub fn open(target: &LogTarget) -> io::Result<Self> {
        let out: Box<dyn Write + Send> = match target {
            LogTarget::Off => return Ok(AccessLog { sender: None }),
            LogTarget::Std => Box::new(io::stdout()),
            LogTarget::File(path) => {
                Box::new(OpenOptions::new().create(true).append(true).open(path)?)
            }
        };
        let (sender, receiver) = mpsc::channel();
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_lines(receiver, out))?;
        Ok(AccessLog {
            sender: Some(sender),
        })
    }

    pub fn enabled(&self) -> bool {
        self.sender.is_some()
    }

    pub fn record(&self, record: &AccessRecord) {
        if let Some(sender) = &self.sender {
            let _ = sender.send(format_combined(record));
        }
    }
}

/// Write lines as they come, flushing whenever the queue runs dry, so the log
/// is current without a write per line under load.
fn write_lines(receiver: Receiver<String>, out: Box<dyn Write + Send>) {
    let mut out = BufWriter::new(out);
    while let Ok(line) = receiver.recv() {
        let _ = out.write_all(line.as_bytes());
        while let Ok(line) = receiver.try_recv() {
            let _ = out.write_all(line.as_bytes());
        }
        let _ = out.flush();
    }
}

/// Combined Log Format, with the request id appended as a last field:
/// `host - user [time] "request" status bytes "referer" "agent" id`.
pub fn format_combined(r: &AccessRecord) -> String {
    format!(
        "{} - {} [{}] \"{}\" {} {} \"{}\" \"{}\" {}\n",
        r.peer.ip(),
        r.user.as_deref().map(escape).unwrap_or_else(|| "-".into()),
        clf_time(r.time),
        escape(&r.request_line),
        r.status,
        if r.bytes == 0 {
            "-".to_string()
        } else {
            r.bytes.to_string()
        },
        r.referer
            .as_deref()
            .map(escape)
            .unwrap_or_else(|| "-".into()),
        r.user_agent
            .as_deref()
            .map(escape)
            .unwrap_or_else(|| "-".into()),
        r.request_id,
    )
}

/// Escape quotes, backslashes and control bytes so a client cannot forge log lines.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// `10/Oct/2000:13:55:36 +0000` (always UTC).
fn clf_time(time: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
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
    use std::time::Duration;

    #[test]
    fn clf_time_matches_known_dates() {
        let t = UNIX_EPOCH + Duration::from_secs(971_186_136);
        assert_eq!(clf_time(t), "10/Oct/2000:13:55:36 +0000");
        assert_eq!(clf_time(UNIX_EPOCH), "01/Jan/1970:00:00:00 +0000");
        // 2024-02-29 12:00:00 UTC, a leap day.
        let leap = UNIX_EPOCH + Duration::from_secs(1_709_208_000);
        assert_eq!(clf_time(leap), "29/Feb/2024:12:00:00 +0000");
    }

    #[test]
    fn combined_line_escapes_quotes_and_controls() {
        let r = AccessRecord {
            peer: "127.0.0.1:5555".parse().unwrap(),
            user: None,
            time: UNIX_EPOCH,
            request_line: "GET /a\"b HTTP/1.1".into(),
            status: 200,
            bytes: 0,
            referer: None,
            user_agent: Some("evil\n127.0.0.1 - - fake".into()),
            request_id: "00000001".into(),
        };
        let line = format_combined(&r);
        assert_eq!(
            line,
            "127.0.0.1 - - [01/Jan/1970:00:00:00 +0000] \"GET /a\\\"b HTTP/1.1\" 200 - \"-\" \"evil\\x0a127.0.0.1 - - fake\" 00000001\n"
        );
    }
}
