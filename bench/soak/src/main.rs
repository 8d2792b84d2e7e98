//! Soak load client: a closed-loop mixed load (static, CGI, FastCGI, and
//! clients that hang up mid-response) against one gatehouse on loopback,
//! with the server's RSS, descriptors and processes sampled as it runs.
//!
//! soak-client --addr 127.0.0.1:PORT --pid PID [--duration 600] [--warmup 20]
//!             [--concurrency 256] [--interval 5] [--out samples.tsv]
//!
//! Phases: warm-up (load, not judged); idle (load stopped, connections
//! closed: the idle descriptor count); the judged run; idle again. Then the
//! verdict, one PASS/FAIL line per rule, exit status 1 on any FAIL:
//! - no zombie under the server after the run, and none during it that lasts
//!   from one sample to the next (a child that exited a moment ago and is
//!   about to be reaped is a zombie for that moment: counted, not judged);
//! - descriptors back to the idle count after the run;
//! - RSS after the run within 20% of where it was after warm-up;
//! - no 5xx and no transport error except on requests that hang up on purpose.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One request kind of the mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Small,
    Medium,
    Cgi,
    FastCgi,
    /// A large static file, dropped after its first chunk.
    AbortStatic,
    /// A CGI program streaming output, dropped after its first chunk.
    AbortCgi,
    /// A fresh connection that says `Connection: close`.
    Close,
}

/// The mix, per 20 requests.
const MIX: [Kind; 20] = {
    use Kind::*;
    [
        Small,
        Cgi,
        Small,
        FastCgi,
        Medium,
        Small,
        Cgi,
        Small,
        FastCgi,
        AbortStatic,
        Small,
        Cgi,
        Medium,
        Small,
        FastCgi,
        Close,
        Small,
        Cgi,
        Medium,
        AbortCgi,
    ]
};

impl Kind {
    fn path(self) -> &'static str {
        match self {
            Kind::Small | Kind::Close => "/small.txt",
            Kind::Medium => "/medium.bin",
            Kind::Cgi => "/cgi-bin/hello.sh",
            Kind::FastCgi => "/wsgi/soak",
            Kind::AbortStatic => "/large.bin",
            Kind::AbortCgi => "/cgi-bin/stream.sh",
        }
    }

    fn aborts(self) -> bool {
        matches!(self, Kind::AbortStatic | Kind::AbortCgi)
    }
}

#[derive(Default)]
struct Counters {
    ok: AtomicU64,
    aborted: AtomicU64,
    status_4xx: AtomicU64,
    status_5xx: AtomicU64,
    /// Transport errors on requests that were not meant to hang up.
    errors: AtomicU64,
    bytes: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> [u64; 6] {
        [
            self.ok.load(Ordering::Relaxed),
            self.aborted.load(Ordering::Relaxed),
            self.status_4xx.load(Ordering::Relaxed),
            self.status_5xx.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        ]
    }
}

struct Args {
    addr: String,
    pid: u32,
    duration: u64,
    warmup: u64,
    concurrency: usize,
    interval: u64,
    out: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        addr: String::new(),
        pid: 0,
        duration: 600,
        warmup: 20,
        concurrency: 256,
        interval: 5,
        out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--addr" => a.addr = value,
            "--pid" => a.pid = value.parse().expect("--pid"),
            "--duration" => a.duration = value.parse().expect("--duration"),
            "--warmup" => a.warmup = value.parse().expect("--warmup"),
            "--concurrency" => a.concurrency = value.parse().expect("--concurrency"),
            "--interval" => a.interval = value.parse().expect("--interval"),
            "--out" => a.out = Some(value),
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(
        !a.addr.is_empty() && a.pid != 0,
        "--addr and --pid are required"
    );
    a
}

/// What /proc says about the server and everything under it.
#[derive(Debug, Clone, Default)]
struct Probe {
    rss_kib: u64,
    fds: usize,
    /// Processes under the server (children, grandchildren, ...).
    descendants: usize,
    /// Zombies under the server, by pid.
    zombies: Vec<u32>,
}

fn probe(pid: u32) -> Probe {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    // pid -> (ppid, zombie)
    let mut procs: HashMap<u32, (u32, bool)> = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("");
        let ppid = fields.next().and_then(|f| f.parse().ok()).unwrap_or(0);
        procs.insert(p, (ppid, state == "Z"));
    }
    let mut descendants = 0;
    let mut zombies = Vec::new();
    for (&p, &(_, zombie)) in &procs {
        let mut up = p;
        let mut depth = 0;
        while let Some(&(ppid, _)) = procs.get(&up) {
            if ppid == pid {
                descendants += 1;
                if zombie {
                    zombies.push(p);
                }
                break;
            }
            up = ppid;
            depth += 1;
            if ppid <= 1 || depth > 64 {
                break;
            }
        }
    }
    Probe {
        rss_kib,
        fds,
        descendants,
        zombies,
    }
}

async fn one(client: &reqwest::Client, base: &str, kind: Kind, counters: &Counters) {
    let mut req = client.get(format!("{base}{}", kind.path()));
    if kind == Kind::Close {
        req = req.header("connection", "close");
    }
    let resp = match req.send().await {
        Ok(resp) => resp,
        Err(_) => {
            counters.errors.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let status = resp.status().as_u16();
    if status >= 500 {
        counters.status_5xx.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if status >= 400 {
        counters.status_4xx.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let mut resp = resp;
    if kind.aborts() {
        // Hang up mid-response: one chunk, then the connection is dropped.
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                counters
                    .bytes
                    .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                counters.aborted.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        return;
    }
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                counters
                    .bytes
                    .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
            Ok(None) => {
                counters.ok.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(_) => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    }
}

/// Run the load until `stop`; each worker owns a client (its connections).
fn load(
    base: &str,
    concurrency: usize,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..concurrency)
        .map(|w| {
            let (base, counters, stop) = (base.to_owned(), counters.clone(), stop.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .pool_max_idle_per_host(1)
                    .build()
                    .expect("client");
                let mut i = w;
                while !stop.load(Ordering::Relaxed) {
                    one(&client, &base, MIX[i % MIX.len()], &counters).await;
                    i += 1;
                }
            })
        })
        .collect()
}

/// Stop the load and wait until the server's descriptors stop falling.
async fn settle(workers: Vec<tokio::task::JoinHandle<()>>, stop: &AtomicBool, pid: u32) -> Probe {
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    let mut last = probe(pid);
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = probe(pid);
        if now.fds == last.fds && now.descendants == last.descendants && now.zombies.is_empty() {
            return now;
        }
        last = now;
    }
    last
}

#[tokio::main]
async fn main() {
    let a = args();
    let base = format!("http://{}", a.addr);
    let mut out: Box<dyn Write> = match &a.out {
        Some(path) => Box::new(std::fs::File::create(path).expect("--out")),
        None => Box::new(std::io::sink()),
    };
    let start = probe(a.pid);
    println!(
        "start: rss {} KiB, fds {}, processes {}",
        start.rss_kib, start.fds, start.descendants
    );

    // Warm-up, then idle: the baselines.
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let workers = load(&base, a.concurrency, counters.clone(), stop.clone());
    tokio::time::sleep(Duration::from_secs(a.warmup)).await;
    let idle = settle(workers, &stop, a.pid).await;
    let warm = counters.snapshot();
    println!(
        "after warm-up ({} requests, {} 5xx, {} errors): rss {} KiB, idle fds {}, processes {}",
        warm[0] + warm[1],
        warm[3],
        warm[4],
        idle.rss_kib,
        idle.fds,
        idle.descendants
    );

    // The judged run.
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let header = "t_s\treq_per_s\tok\taborted\t4xx\t5xx\terrors\tMB_per_s\trss_kib\tfds\tprocesses\tunreaped";
    println!("{header}");
    let _ = writeln!(out, "{header}");
    let began = Instant::now();
    let workers = load(&base, a.concurrency, counters.clone(), stop.clone());
    let mut last = counters.snapshot();
    let mut last_t = began;
    let mut peak = Probe::default();
    let mut unreaped_peak = 0;
    let mut persistent: Vec<u32> = Vec::new();
    let mut previous_zombies: Vec<u32> = Vec::new();
    while began.elapsed() < Duration::from_secs(a.duration) {
        tokio::time::sleep(Duration::from_secs(a.interval)).await;
        let now = counters.snapshot();
        let dt = last_t.elapsed().as_secs_f64();
        last_t = Instant::now();
        let p = probe(a.pid);
        peak.rss_kib = peak.rss_kib.max(p.rss_kib);
        peak.fds = peak.fds.max(p.fds);
        peak.descendants = peak.descendants.max(p.descendants);
        unreaped_peak = unreaped_peak.max(p.zombies.len());
        persistent.extend(p.zombies.iter().filter(|z| previous_zombies.contains(z)));
        previous_zombies = p.zombies.clone();
        let d = |i: usize| now[i] - last[i];
        let line = format!(
            "{:.0}\t{:.0}\t{}\t{}\t{}\t{}\t{}\t{:.1}\t{}\t{}\t{}\t{}",
            began.elapsed().as_secs_f64(),
            (d(0) + d(1) + d(2) + d(3) + d(4)) as f64 / dt,
            d(0),
            d(1),
            d(2),
            d(3),
            d(4),
            d(5) as f64 / dt / 1e6,
            p.rss_kib,
            p.fds,
            p.descendants,
            p.zombies.len()
        );
        println!("{line}");
        let _ = writeln!(out, "{line}");
        last = now;
    }
    let elapsed = began.elapsed().as_secs_f64();
    let after = settle(workers, &stop, a.pid).await;
    let total = counters.snapshot();
    let requests = total[0] + total[1] + total[2] + total[3] + total[4];

    println!();
    println!(
        "run: {:.0} s, {} requests ({:.0}/s), {} complete, {} hung up on purpose, {} 4xx, {} 5xx, {} errors, {:.1} GB sent",
        elapsed,
        requests,
        requests as f64 / elapsed,
        total[0],
        total[1],
        total[2],
        total[3],
        total[4],
        total[5] as f64 / 1e9
    );
    println!(
        "peaks: rss {} KiB, fds {}, processes {}, exited and not yet reaped {}",
        peak.rss_kib, peak.fds, peak.descendants, unreaped_peak
    );
    println!(
        "after: rss {} KiB (after warm-up {} KiB), fds {} (idle {}), processes {} (idle {}), zombies {}",
        after.rss_kib,
        idle.rss_kib,
        after.fds,
        idle.fds,
        after.descendants,
        idle.descendants,
        after.zombies.len()
    );
    let rss_change = (after.rss_kib as f64 - idle.rss_kib as f64) / idle.rss_kib.max(1) as f64;
    let verdicts = [
        (
            "no zombies",
            persistent.is_empty() && after.zombies.is_empty(),
            format!(
                "{} after, {} lasting from one sample to the next",
                after.zombies.len(),
                persistent.len()
            ),
        ),
        (
            "descriptors back to idle",
            after.fds <= idle.fds,
            format!("{} after, {} idle", after.fds, idle.fds),
        ),
        (
            "processes back to idle",
            after.descendants <= idle.descendants,
            format!("{} after, {} idle", after.descendants, idle.descendants),
        ),
        (
            "RSS within 20% of after warm-up",
            rss_change.abs() <= 0.20,
            format!("{:+.1}%", rss_change * 100.0),
        ),
        (
            "no 5xx, no errors but deliberate hang-ups",
            total[3] == 0 && total[4] == 0 && total[2] == 0,
            format!("{} 5xx, {} errors, {} 4xx", total[3], total[4], total[2]),
        ),
    ];
    let mut failed = false;
    for (rule, ok, detail) in verdicts {
        println!("{} {rule}: {detail}", if ok { "PASS" } else { "FAIL" });
        failed |= !ok;
    }
    std::process::exit(i32::from(failed));
}
