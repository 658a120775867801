//! The hostile suite: programs that attack the VM's limits (spec §10) and must end with the
//! process that §10 names dead with a clear reason, the other processes' work done, the VM alive
//! and its memory bounded. `tests/hostile/README.md` lists every case.
//!
//! Two kinds of test run here:
//!
//! - Every `.basm` directly under `tests/hostile/` is one test, described by comments in the
//!   file, as in the golden suite (`tests/golden.rs`): `; expect: TEXT` (the next line of
//!   standard output; all of stdout must match, and a file without any must print nothing),
//!   `; expect-status: N` (default 0), `; expect-stderr: TEXT` (stderr contains TEXT; may
//!   repeat), `; args: ...`, and two more keys: `; expect-stderr-max-bytes: N` (stderr is at most
//!   N bytes long) and `; skip-gc-stress: WHY` (the case is ignored when built with the
//!   `gc-stress` feature, where a collection after every allocation makes it too slow).
//! - What a golden file cannot say is a Rust test below: closed pipes, output on a pipe and on a
//!   terminal, unwritable stdout, stderr and trace, the trace of a bomb, the peak memory of a
//!   process churn, a 1 MB atom, invalid UTF-8 and a huge line in the source. Their programs are
//!   under `tests/hostile/driven/` or written on the fly.
//!
//! Every run of `ember` here has a deadline (a hang is killed and reported as a failure, never
//! waited for) and runs under `ulimit -v` so that a regression cannot take the machine's memory.
//! No test relies on timing to pass: deadlines are far above what a correct VM needs.
//!
//! The slow cases are ignored by default; run them with
//! `cargo test --release --test hostile -- --ignored` (the time bounds of the monitor storms are
//! checked by `cargo bench --bench hostile`).

use libtest_mimic::{Arguments, Failed, Trial};
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Every run is killed after this long: a hang fails instead of blocking the suite.
const DEADLINE: Duration = Duration::from_secs(120);
/// The slow (ignored) tests get longer.
const SLOW_DEADLINE: Duration = Duration::from_secs(900);
/// Address-space cap for each run of `ember` (KiB): the VM reserves a 1 GiB stack for its thread,
/// and a correct VM stays far below the rest.
const MEMORY_CAP_KIB: u64 = 4 << 20;
/// At most this much of a child's stdout or stderr is kept (the rest is counted and dropped).
const KEEP_BYTES: usize = 4 << 20;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------------------------------------
// Running `ember` with a deadline and a memory cap

/// Starts `ember ARGS` from the project root under `ulimit -v cap` (the shell `exec`s ember, so
/// the child's pid is ember's).
fn spawn_ember(args: &[OsString], stdout: Stdio, stderr: Stdio, cap_kib: u64) -> Child {
    Command::new("sh")
        .arg("-c")
        .arg("ulimit -v \"$1\" 2>/dev/null; shift; exec \"$@\"")
        .arg("sh")
        .arg(cap_kib.to_string())
        .arg(env!("CARGO_BIN_EXE_ember"))
        .args(args)
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("starts sh and ember")
}

/// How a child ended.
struct Ended {
    /// `None` when it was killed at the deadline.
    status: Option<ExitStatus>,
    elapsed: Duration,
    /// Highest VmHWM (peak resident set, KiB) seen while polling, where /proc has it.
    peak_rss_kib: Option<u64>,
}

/// Peak resident set size of a live process, from /proc (Linux only).
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Waits for `child`, killing it at `deadline`; polls its peak RSS meanwhile.
fn wait_for(child: &mut Child, deadline: Duration) -> Ended {
    let start = Instant::now();
    let mut peak = None;
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait().expect("polls the child") {
            return Ended {
                status: Some(status),
                elapsed: start.elapsed(),
                peak_rss_kib: peak,
            };
        }
        if let Some(kib) = vm_hwm_kib(child.id()) {
            peak = Some(peak.map_or(kib, |p: u64| p.max(kib)));
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ended {
                status: None,
                elapsed: start.elapsed(),
                peak_rss_kib: peak,
            };
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Reads a pipe to its end on a thread: the first `KEEP_BYTES` bytes and the total length.
fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<(Vec<u8>, u64)> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut total = 0u64;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    total += n as u64;
                    let room = KEEP_BYTES.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        }
        (kept, total)
    })
}

/// What a run produced.
struct Run {
    ended: Ended,
    stdout: String,
    stdout_len: u64,
    stderr: String,
    stderr_len: u64,
}

impl Run {
    /// The exit status as a shell reports it: the code, or 128 + the signal.
    fn status(&self) -> Option<i32> {
        let status = self.ended.status?;
        status.code().or_else(|| {
            use std::os::unix::process::ExitStatusExt;
            status.signal().map(|s| 128 + s)
        })
    }

    fn describe_status(&self) -> String {
        match self.ended.status {
            None => format!(
                "did not end within {:.0} s (killed)",
                self.ended.elapsed.as_secs_f64()
            ),
            Some(s) => match s.code() {
                Some(c) => format!("exit status {c}"),
                None => format!("ended by a signal ({s})"),
            },
        }
    }

    /// A panic, an abort or a kill is never an acceptable way to end (spec §5, §10).
    fn crash_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.ended.status.is_none() {
            problems.push(self.describe_status());
        }
        if self.stderr.contains("panicked at") || self.stderr.contains("internal error") {
            problems.push("the binary panicked".to_string());
        }
        if self.stderr.contains("memory allocation of") {
            problems.push("the binary ran out of memory and aborted".to_string());
        }
        problems
    }

    fn report(&self, problems: &[String]) -> Failed {
        let mut stdout = self.stdout.clone();
        cut(&mut stdout, 4000);
        let mut stderr = self.stderr.clone();
        cut(&mut stderr, 4000);
        format!(
            "{}\n({}; {:.2} s; peak RSS {})\n--- stdout ({} bytes)\n{stdout}\n--- stderr ({} bytes)\n{stderr}",
            problems.join("\n"),
            self.describe_status(),
            self.ended.elapsed.as_secs_f64(),
            self.ended
                .peak_rss_kib
                .map_or("unknown".to_string(), |k| format!("{} MiB", k / 1024)),
            self.stdout_len,
            self.stderr_len,
        )
        .into()
    }
}

/// Cuts `s` to about `n` bytes (on a character boundary) for a failure message.
fn cut(s: &mut String, n: usize) {
    if s.len() > n {
        let mut end = n;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str("\n[... cut]");
    }
}

/// Runs `ember ARGS` with stdout and stderr captured, a deadline and the memory cap.
fn run_ember(args: &[OsString], deadline: Duration, cap_kib: u64) -> Run {
    let mut child = spawn_ember(args, Stdio::piped(), Stdio::piped(), cap_kib);
    let out = drain(child.stdout.take().unwrap());
    let err = drain(child.stderr.take().unwrap());
    let ended = wait_for(&mut child, deadline);
    let (out, stdout_len) = out.join().unwrap();
    let (err, stderr_len) = err.join().unwrap();
    Run {
        ended,
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stdout_len,
        stderr: String::from_utf8_lossy(&err).into_owned(),
        stderr_len,
    }
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

/// A scratch file path for this test run.
fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("ember-hostile-{}-{name}", std::process::id()))
}

// ---------------------------------------------------------------------------------------------
// The golden-style cases: tests/hostile/*.basm

#[derive(Default)]
struct Expectations {
    stdout: Vec<String>,
    status: Option<i32>,
    stderr: Vec<String>,
    stderr_max_bytes: Option<u64>,
    args: Vec<String>,
    skip_gc_stress: Option<String>,
}

fn parse(text: &str) -> Expectations {
    let mut e = Expectations::default();
    for line in text.lines() {
        let Some(pos) = line.find(';') else { continue };
        let comment = line[pos + 1..].trim_start();
        if let Some(rest) = comment.strip_prefix("expect:") {
            e.stdout
                .push(rest.strip_prefix(' ').unwrap_or(rest).to_string());
        } else if let Some(rest) = comment.strip_prefix("expect-status:") {
            e.status = rest.trim().parse().ok();
        } else if let Some(rest) = comment.strip_prefix("expect-stderr:") {
            e.stderr.push(rest.trim().to_string());
        } else if let Some(rest) = comment.strip_prefix("expect-stderr-max-bytes:") {
            e.stderr_max_bytes = rest.trim().parse().ok();
        } else if let Some(rest) = comment.strip_prefix("args:") {
            e.args.extend(rest.split_whitespace().map(str::to_string));
        } else if let Some(rest) = comment.strip_prefix("skip-gc-stress:") {
            e.skip_gc_stress = Some(rest.trim().to_string());
        }
    }
    e
}

fn check_file(rel: &Path) -> Result<(), Failed> {
    let text = std::fs::read_to_string(root().join(rel)).map_err(|e| format!("read: {e}"))?;
    let e = parse(&text);
    let mut args = os(&["run"]);
    args.push(rel.into());
    args.extend(e.args.iter().map(OsString::from));
    let run = run_ember(&args, DEADLINE, MEMORY_CAP_KIB);
    let mut problems = run.crash_problems();
    let want_status = e.status.unwrap_or(0);
    if run.ended.status.is_some() && run.status() != Some(want_status) {
        problems.push(format!(
            "{}, expected exit status {want_status}",
            run.describe_status()
        ));
    }
    let got: Vec<&str> = run.stdout.lines().collect();
    if got != e.stdout {
        let mut got = got.join("\n");
        cut(&mut got, 2000);
        problems.push(format!(
            "stdout differs\n--- expected\n{}\n--- got\n{got}",
            e.stdout.join("\n"),
        ));
    }
    for s in &e.stderr {
        if !run.stderr.contains(s.as_str()) {
            problems.push(format!("stderr lacks `{s}`"));
        }
    }
    if let Some(max) = e.stderr_max_bytes {
        if run.stderr_len > max {
            problems.push(format!(
                "stderr is {} bytes long, at most {max} expected",
                run.stderr_len
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(run.report(&problems))
    }
}

fn golden_trials() -> Vec<Trial> {
    let dir = root().join("tests/hostile");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/hostile exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "basm"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let rel = path.strip_prefix(root()).unwrap().to_path_buf();
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let skip = cfg!(feature = "gc-stress") && parse(&text).skip_gc_stress.is_some();
            Trial::test(rel.display().to_string(), move || check_file(&rel)).with_ignored_flag(skip)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Output: closed pipes, unwritable stdout, stderr and trace, output not held back

/// Spec §10: a closed pipe ends the run quietly, with status 141 (as a shell reports SIGPIPE).
/// `ember run print_forever.basm | head -1`: the reader takes one line and goes away.
fn closed_pipe_ends_the_run_with_status_141() -> Result<(), Failed> {
    let args = os(&["run", "tests/hostile/driven/print_forever.basm"]);
    let mut child = spawn_ember(&args, Stdio::piped(), Stdio::piped(), MEMORY_CAP_KIB);
    let err = drain(child.stderr.take().unwrap());
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    let read = reader.read_line(&mut first);
    drop(reader); // closes the read end: the next write of ember's gets EPIPE
    let ended = wait_for(&mut child, Duration::from_secs(60));
    let (err, stderr_len) = err.join().unwrap();
    let run = Run {
        ended,
        stdout: first.clone(),
        stdout_len: first.len() as u64,
        stderr: String::from_utf8_lossy(&err).into_owned(),
        stderr_len,
    };
    let mut problems = run.crash_problems();
    if read.is_err() || first != "{:line, 0}\n" {
        problems.push(format!("the first line was {first:?} ({read:?})"));
    }
    if run.ended.status.is_some() && run.status() != Some(141) {
        problems.push(format!("{}, expected 141", run.describe_status()));
    }
    if !run.stderr.is_empty() {
        problems.push("a closed pipe must end the run quietly: stderr is not empty".into());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(run.report(&problems))
    }
}

/// Spec §10: `print` output reaches a pipe at the latest when the VM waits for a timer. The
/// program prints a line and then waits ten minutes: the line must arrive while it waits.
fn print_output_is_not_held_back_until_the_end() -> Result<(), Failed> {
    let args = os(&["run", "tests/hostile/driven/print_then_wait.basm"]);
    let mut child = spawn_ember(&args, Stdio::piped(), Stdio::null(), MEMORY_CAP_KIB);
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut first = String::new();
        let _ = BufReader::new(stdout).read_line(&mut first);
        let _ = tx.send(first);
    });
    let got = rx.recv_timeout(Duration::from_secs(60));
    let still_running = child.try_wait().ok().flatten().is_none();
    let _ = child.kill();
    let _ = child.wait();
    match got {
        Ok(line) if line == "first\n" && still_running => Ok(()),
        Ok(line) if line == "first\n" => {
            Err("the line arrived only after the run ended (it must not wait for the end)".into())
        }
        Ok(line) => Err(format!("read {line:?} instead of the first line").into()),
        Err(_) => Err(
            "no output within 60 s while the VM waited on a 10-minute timer: `print` output \
             is held back"
                .into(),
        ),
    }
}

/// Whether `script` (util-linux) is there to run a program on a pseudo-terminal.
fn have_script() -> bool {
    Command::new("script")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Spec §10: `print` output reaches a terminal line by line. The program prints a line and then
/// computes forever (never idle, never waiting): run on a pseudo-terminal through `script`, the
/// line must show while it computes.
fn print_output_reaches_a_terminal_line_by_line() -> Result<(), Failed> {
    let command = format!(
        "ulimit -v {MEMORY_CAP_KIB} 2>/dev/null; exec '{}' run tests/hostile/driven/print_then_busy.basm",
        env!("CARGO_BIN_EXE_ember")
    );
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start script: {e}"))?;
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut first = String::new();
        let _ = BufReader::new(stdout).read_line(&mut first);
        let _ = tx.send(first);
    });
    let got = rx.recv_timeout(Duration::from_secs(60));
    // Killing `script` hangs up the terminal, which ends ember.
    let _ = child.kill();
    let _ = child.wait();
    match got {
        Ok(line) if line.trim_end() == "first" => Ok(()),
        Ok(line) => Err(format!("read {line:?} instead of the first line").into()),
        Err(_) => Err(
            "no output on the terminal within 60 s while the program computed: `print` output \
             is held back"
                .into(),
        ),
    }
}

/// Runs `ember ARGS` with stdout and/or stderr on /dev/full (the others captured).
fn run_with_dev_full(args: &[OsString], stdout_full: bool, stderr_full: bool) -> Run {
    let full = || {
        Stdio::from(
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .expect("/dev/full exists"),
        )
    };
    let mut child = spawn_ember(
        args,
        if stdout_full { full() } else { Stdio::piped() },
        if stderr_full { full() } else { Stdio::piped() },
        MEMORY_CAP_KIB,
    );
    let out = child.stdout.take().map(drain);
    let err = child.stderr.take().map(drain);
    let ended = wait_for(&mut child, DEADLINE);
    let (out, stdout_len) = out.map_or((Vec::new(), 0), |h| h.join().unwrap());
    let (err, stderr_len) = err.map_or((Vec::new(), 0), |h| h.join().unwrap());
    Run {
        ended,
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stdout_len,
        stderr: String::from_utf8_lossy(&err).into_owned(),
        stderr_len,
    }
}

/// Checks that a run whose output could not be written ended with status 1, without a panic,
/// and (when stderr is writable) with a message.
fn expect_write_failure(run: &Run, stderr_writable: bool) -> Result<(), Failed> {
    let mut problems = run.crash_problems();
    if run.ended.status.is_some() && run.status() != Some(1) {
        problems.push(format!("{}, expected 1", run.describe_status()));
    }
    if stderr_writable && run.stderr.trim().is_empty() {
        problems.push("no message on stderr about the failed write".into());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(run.report(&problems))
    }
}

/// Spec §10: failing to write standard output ends the run with status 1 and a message.
fn stdout_on_dev_full_exits_1() -> Result<(), Failed> {
    // One line: the failure shows only when the output is flushed at the end.
    let one = run_with_dev_full(
        &os(&["run", "tests/hostile/driven/print_lines.basm", "1"]),
        true,
        false,
    );
    expect_write_failure(&one, true).map_err(|e| format!("one line: {}", msg(&e)))?;
    // Many lines: the failure shows mid-run.
    let many = run_with_dev_full(
        &os(&["run", "tests/hostile/driven/print_lines.basm", "100000"]),
        true,
        false,
    );
    expect_write_failure(&many, true).map_err(|e| format!("100,000 lines: {}", msg(&e)).into())
}

/// Spec §10: failing to write standard error ends the run with status 1: a crash line of the
/// VM's, or the error message of an input that cannot be read (which must not panic instead).
fn stderr_on_dev_full_exits_1() -> Result<(), Failed> {
    let run = run_with_dev_full(
        &os(&["run", "tests/hostile/driven/child_crash.basm"]),
        false,
        true,
    );
    expect_write_failure(&run, false).map_err(|e| format!("a crash line: {}", msg(&e)))?;
    let run = run_with_dev_full(&os(&["run", "no/such/file.basm"]), false, true);
    expect_write_failure(&run, false)
        .map_err(|e| format!("a missing file's error: {}", msg(&e)).into())
}

/// Spec §10: with neither stdout nor stderr writable, the run still ends with status 1.
fn stdout_and_stderr_on_dev_full_exit_1() -> Result<(), Failed> {
    let run = run_with_dev_full(
        &os(&["run", "tests/hostile/driven/child_crash.basm"]),
        true,
        true,
    );
    expect_write_failure(&run, false)
}

/// Spec §10: failing to write the trace ends the run with status 1 and a message.
fn trace_on_dev_full_exits_1() -> Result<(), Failed> {
    let run = run_ember(
        &os(&[
            "run",
            "tests/hostile/driven/print_lines.basm",
            "1000",
            "--trace",
            "/dev/full",
        ]),
        DEADLINE,
        MEMORY_CAP_KIB,
    );
    expect_write_failure(&run, true)
}

fn msg(f: &Failed) -> String {
    f.message().unwrap_or("").to_string()
}

// ---------------------------------------------------------------------------------------------
// Shared-term bombs in the trace

/// Spec §10: printed forms in trace `msg` fields are cut at 1,000 bytes, ending in `...`.
fn trace_of_a_bomb_is_cut() -> Result<(), Failed> {
    let trace = temp("bomb-trace.jsonl");
    let _ = std::fs::remove_file(&trace);
    let mut args = os(&["run", "tests/hostile/driven/bomb_trace.basm", "--trace"]);
    args.push(trace.clone().into());
    let run = run_ember(&args, DEADLINE, MEMORY_CAP_KIB);
    let mut problems = run.crash_problems();
    if run.ended.status.is_some() && run.status() != Some(0) {
        problems.push(format!("{}, expected 0", run.describe_status()));
    }
    if run.stdout != "trace: done\n" {
        problems.push("stdout is not `trace: done`".into());
    }
    let size = std::fs::metadata(&trace).map(|m| m.len()).unwrap_or(0);
    if size > 1 << 20 {
        problems.push(format!(
            "the trace is {size} bytes long (a few small events expected)"
        ));
    } else {
        let text = std::fs::read_to_string(&trace).unwrap_or_default();
        let mut bomb_sends = 0;
        for line in text.lines() {
            if line.len() > 4096 {
                problems.push(format!("a trace line of {} bytes", line.len()));
                continue;
            }
            let Ok(ev) = serde_json::from_str::<serde_json::Value>(line) else {
                problems.push(format!("a trace line is not JSON: {line:.200}"));
                continue;
            };
            if ev["ev"] == "send" {
                let m = ev["msg"].as_str().unwrap_or("");
                if m.starts_with("{:bomb, {{{{{{{{{{") {
                    bomb_sends += 1;
                    if !m.ends_with("...") || m.len() > 1100 {
                        problems.push(format!(
                            "the bomb's `msg` is {} bytes and does not end in `...` after at \
                             most 1,000: {m:.120}",
                            m.len()
                        ));
                    }
                }
            }
        }
        if bomb_sends != 1 {
            problems.push(format!(
                "{bomb_sends} `send` events of the bomb in the trace, 1 expected"
            ));
        }
    }
    let _ = std::fs::remove_file(&trace);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(run.report(&problems))
    }
}

// ---------------------------------------------------------------------------------------------
// Programs written on the fly: a 1 MB atom, invalid UTF-8, a 10 MB line

/// The second bomb: a list of 20,000 copies of one 1 MB atom, through `to_str`. The
/// printed form is 20 GB: spec §10, pid 0 crashes :heap_limit (default limit) at the `to_str`;
/// an unrelated counter finishes.
fn to_str_of_a_list_of_one_big_atom_crashes_heap_limit() -> Result<(), Failed> {
    let src = temp("big-atom.basm");
    let atom = "a".repeat(1 << 20);
    let program = format!(
        "main:\n    spawn r11, counter\n    move r1, :\"{atom}\"\n    move r3, []\n    \
         move r2, 20000\nfill:\n    cons r3, r1, r3\n    sub r2, r2, 1\n    jgt r2, 0, fill\n    \
         to_str r4, r3\n    print \"not reached\"\n    end\n\
         counter:\n    move r1, 0\n    move r2, 100000\ncount:\n    add r1, r1, r2\n    \
         sub r2, r2, 1\n    jgt r2, 0, count\n    print {{:counted, r1}}\n    end\n"
    );
    std::fs::write(&src, program).map_err(|e| format!("write: {e}"))?;
    let mut args = os(&["run"]);
    args.push(src.clone().into());
    let run = run_ember(&args, DEADLINE, MEMORY_CAP_KIB);
    let _ = std::fs::remove_file(&src);
    let mut problems = run.crash_problems();
    if run.ended.status.is_some() && run.status() != Some(3) {
        problems.push(format!("{}, expected 3", run.describe_status()));
    }
    if run.stdout != "{:counted, 5000050000}\n" {
        problems.push("stdout is not the counter's line alone".into());
    }
    let want = format!(
        "error in process <0.0>: :heap_limit at {}:10",
        src.display()
    );
    if !run.stderr.contains(&want) {
        problems.push(format!("stderr lacks `{want}`"));
    }
    if run.stderr_len > 4096 {
        problems.push(format!("stderr is {} bytes long", run.stderr_len));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(run.report(&problems))
    }
}

/// A raw 0xFF byte in a string literal (not UTF-8, and not the `\xFF` escape) must not silently
/// become U+FFFD. Either the assembler rejects it (status 1, `FILE:2:COL: error: ...`) or the
/// binary holds that byte (`len` 3, printed `"a\xffb"` inside a term).
fn a_raw_ff_byte_in_a_string_is_not_silently_replaced() -> Result<(), Failed> {
    let src = temp("raw-ff.basm");
    let mut program = b"main:\n    move r1, \"a".to_vec();
    program.push(0xFF);
    program.extend_from_slice(b"b\"\n    len r2, r1\n    print r2\n    print {r1}\n    end\n");
    std::fs::write(&src, program).map_err(|e| format!("write: {e}"))?;
    let mut args = os(&["run"]);
    args.push(src.clone().into());
    let run = run_ember(&args, DEADLINE, MEMORY_CAP_KIB);
    let _ = std::fs::remove_file(&src);
    let mut problems = run.crash_problems();
    let rejected = format!("{}:2:", src.display());
    match run.status() {
        Some(1) => {
            if !(run.stderr.contains(&rejected) && run.stderr.contains("error:")) {
                problems.push(format!(
                    "rejected, but stderr lacks an error at `{rejected}COL: error: ...`"
                ));
            }
        }
        Some(0) => {
            if run.stdout != "3\n{\"a\\xffb\"}\n" {
                problems.push(format!(
                    "accepted, but the binary is not the 3 bytes a, 0xFF, b (stdout {:?}; \
                     5 and U+FFFD means the byte was silently replaced)",
                    run.stdout
                ));
            }
        }
        _ => problems.push(format!(
            "{}, expected 1 (rejected) or 0 (byte kept)",
            run.describe_status()
        )),
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(run.report(&problems))
    }
}

/// A diagnostic about a 10 MB line must not echo the line whole (nor 10 MB of spaces before its
/// caret): status 1, the error's position, and a short stderr.
fn the_diagnostic_of_a_10_mb_line_is_short() -> Result<(), Failed> {
    let src = temp("long-line.basm");
    let mut program = String::from("main:\n    move r1, [");
    program.push_str(&"1, ".repeat((10 << 20) / 3));
    program.push_str("@]\n    end\n");
    std::fs::write(&src, program).map_err(|e| format!("write: {e}"))?;
    let mut args = os(&["run"]);
    args.push(src.clone().into());
    let run = run_ember(&args, DEADLINE, MEMORY_CAP_KIB);
    let _ = std::fs::remove_file(&src);
    let mut problems = run.crash_problems();
    if run.ended.status.is_some() && run.status() != Some(1) {
        problems.push(format!("{}, expected 1", run.describe_status()));
    }
    let at = format!("{}:2:", src.display());
    if !(run.stderr.contains(&at) && run.stderr.contains("error:")) {
        problems.push(format!("stderr lacks an error at `{at}COL`"));
    }
    if run.stderr_len > 64 << 10 {
        problems.push(format!(
            "stderr is {} bytes long for one error (at most 64 KiB expected)",
            run.stderr_len
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(run.report(&problems))
    }
}

// ---------------------------------------------------------------------------------------------
// Process churn: memory bounded

/// Runs `process_churn.basm` with `n` processes and checks the output and the peak RSS.
fn churn(n: u64, max_rss_mib: u64, deadline: Duration) -> Result<(), Failed> {
    let n_arg = n.to_string();
    let run = run_ember(
        &os(&["run", "tests/hostile/driven/process_churn.basm", &n_arg]),
        deadline,
        MEMORY_CAP_KIB,
    );
    let mut problems = run.crash_problems();
    if run.ended.status.is_some() && run.status() != Some(0) {
        problems.push(format!("{}, expected 0", run.describe_status()));
    }
    if run.stdout != format!("{{:churned, {n}}}\n") {
        problems.push("stdout is not the churn's count".into());
    }
    match run.ended.peak_rss_kib {
        Some(kib) if kib > max_rss_mib << 10 => problems.push(format!(
            "peak RSS {} MiB after {n} processes, at most {max_rss_mib} MiB expected",
            kib >> 10
        )),
        Some(_) => {}
        None if cfg!(target_os = "linux") => problems.push("could not read VmHWM".into()),
        None => {}
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(run.report(&problems))
    }
}

/// Spec §10: a dead process leaves nothing behind, statistics included. The figure: ten
/// million processes, at most three alive at a time, must stay under 100 MB (they ended at
/// 483 MB).
fn process_churn_10m_stays_under_100_mb() -> Result<(), Failed> {
    churn(10_000_000, 100, DEADLINE)
}

// ---------------------------------------------------------------------------------------------
// Slow cases (ignored by default)

/// The monitor storm at the size: one million monitors on one target, all resolved.
/// (Its time bound is checked by `cargo bench --bench hostile`.)
fn monitor_storm_1m_completes() -> Result<(), Failed> {
    storm("monitor_storm", "{:downs, 1000000}")
}

/// One million monitors removed with `demonitor`.
fn demonitor_storm_1m_completes() -> Result<(), Failed> {
    storm("demonitor_storm", "{:demonitored, 1000000}")
}

fn storm(file: &str, first_line: &str) -> Result<(), Failed> {
    let path = format!("tests/hostile/{file}.basm");
    let run = run_ember(
        &os(&["run", &path, "1000000", "--virtual-time"]),
        SLOW_DEADLINE,
        MEMORY_CAP_KIB,
    );
    let mut problems = run.crash_problems();
    if run.ended.status.is_some() && run.status() != Some(0) {
        problems.push(format!("{}, expected 0", run.describe_status()));
    }
    if run.stdout.lines().next() != Some(first_line) || run.stdout.lines().count() != 3 {
        problems.push(format!("stdout does not start with `{first_line}`"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(run.report(&problems))
    }
}

/// Spec §10 with the default limits: spawning forever ends with main crashed :system_limit
/// (status 3), never with an abort. (Millions of processes: slow, and up to a few GB.)
fn spawning_forever_with_default_limits_crashes_system_limit() -> Result<(), Failed> {
    let run = run_ember(
        &os(&["run", "tests/hostile/driven/spawn_forever.basm"]),
        SLOW_DEADLINE,
        12 << 20,
    );
    let mut problems = run.crash_problems();
    if run.ended.status.is_some() && run.status() != Some(3) {
        problems.push(format!("{}, expected 3", run.describe_status()));
    }
    let want = "error in process <0.0>: :system_limit at tests/hostile/driven/spawn_forever.basm:8";
    if !run.stderr.contains(want) {
        problems.push(format!("stderr lacks `{want}`"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(run.report(&problems))
    }
}

/// A Rust-side case of the suite.
type Check = fn() -> Result<(), Failed>;

fn main() {
    let args = Arguments::from_args();
    let gc_stress = cfg!(feature = "gc-stress");
    let mut trials = golden_trials();
    let rust: Vec<(&str, Check, bool)> = vec![
        (
            "closed_pipe_ends_the_run_with_status_141",
            closed_pipe_ends_the_run_with_status_141,
            false,
        ),
        (
            "print_output_is_not_held_back_until_the_end",
            print_output_is_not_held_back_until_the_end,
            false,
        ),
        (
            "print_output_reaches_a_terminal_line_by_line",
            print_output_reaches_a_terminal_line_by_line,
            !have_script(),
        ),
        (
            "stdout_on_dev_full_exits_1",
            stdout_on_dev_full_exits_1,
            false,
        ),
        (
            "stderr_on_dev_full_exits_1",
            stderr_on_dev_full_exits_1,
            false,
        ),
        (
            "stdout_and_stderr_on_dev_full_exit_1",
            stdout_and_stderr_on_dev_full_exit_1,
            false,
        ),
        (
            "trace_on_dev_full_exits_1",
            trace_on_dev_full_exits_1,
            false,
        ),
        ("trace_of_a_bomb_is_cut", trace_of_a_bomb_is_cut, false),
        (
            "to_str_of_a_list_of_one_big_atom_crashes_heap_limit",
            to_str_of_a_list_of_one_big_atom_crashes_heap_limit,
            gc_stress,
        ),
        (
            "a_raw_ff_byte_in_a_string_is_not_silently_replaced",
            a_raw_ff_byte_in_a_string_is_not_silently_replaced,
            false,
        ),
        (
            "the_diagnostic_of_a_10_mb_line_is_short",
            the_diagnostic_of_a_10_mb_line_is_short,
            false,
        ),
        (
            "process_churn_10m_stays_under_100_mb",
            process_churn_10m_stays_under_100_mb,
            gc_stress,
        ),
        (
            "slow::monitor_storm_1m_completes",
            monitor_storm_1m_completes,
            true,
        ),
        (
            "slow::demonitor_storm_1m_completes",
            demonitor_storm_1m_completes,
            true,
        ),
        (
            "slow::spawning_forever_with_default_limits_crashes_system_limit",
            spawning_forever_with_default_limits_crashes_system_limit,
            true,
        ),
    ];
    for (name, f, ignored) in rust {
        trials.push(Trial::test(name, f).with_ignored_flag(ignored));
    }
    libtest_mimic::run(&args, trials).exit();
}
