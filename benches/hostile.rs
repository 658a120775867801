//! Time and memory bounds of the hostile suite's slow cases (`tests/hostile/README.md`), run on
//! the `ember` binary built with the bench profile:
//!
//!     cargo bench --bench hostile
//!
//! - monitor storm: 1,000,000 monitors on one target that then exits; every :DOWN received;
//!   bound 15 s (the issue: over 60 s).
//! - demonitor storm: 1,000,000 monitors removed with `demonitor`; bound 15 s (the issue: 200,000
//!   took 12 s).
//! - process churn: 10,000,000 short-lived processes, at most three alive at a time; peak RSS
//!   bound 100 MB (the issue: 483 MB).
//!
//! Each prints one `>> NAME: ...` line; the run exits 1 if any case fails or passes its bound, so
//! a script (or CI) can run it as a check. Every run is killed after 120 s and runs under
//! `ulimit -v` (4 GiB). Without `--bench` (as `cargo test --benches` runs it) the sizes are
//! 10,000 and nothing is bounded: a smoke test that the cases run.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const KILL_AFTER: Duration = Duration::from_secs(120);

struct Case {
    name: &'static str,
    file: &'static str,
    /// The first line of stdout; `N` stands for the size.
    first_line: &'static str,
    full_size: u64,
    max_seconds: Option<f64>,
    max_rss_mib: Option<u64>,
}

struct Measured {
    status: Option<i32>,
    seconds: f64,
    peak_rss_kib: Option<u64>,
    stdout: String,
    stderr: String,
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn measure(file: &str, n: u64) -> Measured {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v \"$1\" 2>/dev/null; shift; exec \"$@\"")
        .arg("sh")
        .arg((4u64 << 20).to_string())
        .arg(env!("CARGO_BIN_EXE_ember"))
        .args(["run", file, &n.to_string(), "--virtual-time"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts ember");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = pipe.by_ref().take(1 << 20).read_to_end(&mut v);
            let _ = std::io::copy(&mut pipe, &mut std::io::sink());
            String::from_utf8_lossy(&v).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let mut peak = None;
    let status = loop {
        if let Some(s) = child.try_wait().expect("polls ember") {
            break s.code();
        }
        if let Some(k) = vm_hwm_kib(child.id()) {
            peak = Some(peak.map_or(k, |p: u64| p.max(k)));
        }
        if start.elapsed() > KILL_AFTER {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Measured {
        status,
        seconds: start.elapsed().as_secs_f64(),
        peak_rss_kib: peak,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let filter: Option<String> = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .filter(|_| full);
    let cases = [
        Case {
            name: "monitor_storm",
            file: "tests/hostile/monitor_storm.basm",
            first_line: "{:downs, N}",
            full_size: 1_000_000,
            max_seconds: Some(15.0),
            max_rss_mib: None,
        },
        Case {
            name: "demonitor_storm",
            file: "tests/hostile/demonitor_storm.basm",
            first_line: "{:demonitored, N}",
            full_size: 1_000_000,
            max_seconds: Some(15.0),
            max_rss_mib: None,
        },
        Case {
            name: "process_churn",
            file: "tests/hostile/driven/process_churn.basm",
            first_line: "{:churned, N}",
            full_size: 10_000_000,
            max_seconds: None,
            max_rss_mib: Some(100),
        },
    ];
    let mut failed = false;
    for case in &cases {
        if filter.as_deref().is_some_and(|f| !case.name.contains(f)) {
            continue;
        }
        let n = if full { case.full_size } else { 10_000 };
        let m = measure(case.file, n);
        let rss = m
            .peak_rss_kib
            .map_or("unknown".to_string(), |k| format!("{} MiB", k >> 10));
        println!(
            ">> {} {n}: {:.2} s, peak RSS {rss}, exit status {}",
            case.name,
            m.seconds,
            m.status
                .map_or("none (killed)".to_string(), |s| s.to_string())
        );
        let mut problems = Vec::new();
        if m.status != Some(0) {
            problems.push("did not end with status 0".to_string());
        }
        let want = case.first_line.replace('N', &n.to_string());
        if m.stdout.lines().next() != Some(want.as_str()) {
            problems.push(format!("stdout does not start with `{want}`"));
        }
        if full {
            if let Some(max) = case.max_seconds {
                if m.seconds > max {
                    problems.push(format!("took more than {max} s"));
                }
            }
            if let (Some(max), Some(k)) = (case.max_rss_mib, m.peak_rss_kib) {
                if k > max << 10 {
                    problems.push(format!("peak RSS above {max} MiB"));
                }
            }
        }
        if !problems.is_empty() {
            failed = true;
            println!("   FAILED: {}", problems.join("; "));
            let stderr: String = m.stderr.chars().take(2000).collect();
            if !stderr.is_empty() {
                println!("   stderr: {stderr}");
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
}
