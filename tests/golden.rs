//! The golden-file runner: every .basm under `tests/basm/` and `examples/` is one test.
//!
//! Expectations live in the file itself, as comments (in the manner of the Wren and clox test
//! suites), so a new case is one new file:
//!
//! - `; expect: TEXT`: the next line of standard output (all of stdout must match, in order;
//!   a file with no `expect:` line must print nothing).
//! - `; expect-status: N`: the exit status (default 0, or 1 when errors are expected).
//! - `; expect-stderr: TEXT`: standard error contains TEXT (may repeat).
//! - `; expect-error: LINE:COL MESSAGE`: assembly fails with `FILE:LINE:COL: error: MESSAGE`
//!   (may repeat; every one must be reported).
//! - `; args: ...`: arguments after the file name (flags such as `--virtual-time` or the
//!   program's own arguments), split on spaces.
//! - `; schedulers: 1`: the output depends on the single-queue order of spec §5.
//!
//! Each file runs with `--schedulers 1` and again with `--schedulers 4` (spec §9: what Erlang's
//! rules fix must not depend on the number of schedulers), except files that say they depend on
//! the single-queue order, or whose flags ask for it (`--budget`, `--trace`, `--virtual-time`),
//! and files that do not assemble; and once more with `--no-lower` (one scheduler, every
//! instruction in the general interpreter: the fast path must change nothing a program sees).
//!
//! Files under a `modules/` directory are imported by other tests and not run on their own, nor
//! is a file whose first line is a `; library: ...` comment (a module an example imports or
//! loads beside it, as `examples/upgrade/counter.basm`).

use libtest_mimic::{Arguments, Failed, Trial};
use std::path::{Path, PathBuf};
use std::process::Command;

struct Expectations {
    stdout: Vec<String>,
    status: Option<i32>,
    stderr: Vec<String>,
    errors: Vec<String>,
    args: Vec<String>,
    single_queue: bool,
}

fn parse(text: &str) -> Expectations {
    let mut e = Expectations {
        stdout: Vec::new(),
        status: None,
        stderr: Vec::new(),
        errors: Vec::new(),
        args: Vec::new(),
        single_queue: false,
    };
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
        } else if let Some(rest) = comment.strip_prefix("expect-error:") {
            e.errors.push(rest.trim().to_string());
        } else if let Some(rest) = comment.strip_prefix("args:") {
            e.args.extend(rest.split_whitespace().map(str::to_string));
        } else if let Some(rest) = comment.strip_prefix("schedulers:") {
            e.single_queue = rest.split_whitespace().next() == Some("1");
        }
    }
    e
}

/// Whether the file may also run with several schedulers.
fn any_schedulers(e: &Expectations) -> bool {
    let exact = ["--budget", "--trace", "--virtual-time", "--schedulers"];
    !e.single_queue && e.errors.is_empty() && !e.args.iter().any(|a| exact.contains(&a.as_str()))
}

fn check(root: &Path, path: &Path, schedulers: u32, lowering: bool) -> Result<(), Failed> {
    let text = std::fs::read_to_string(root.join(path)).map_err(|e| format!("read: {e}"))?;
    let e = parse(&text);
    let output = Command::new(env!("CARGO_BIN_EXE_ember"))
        .current_dir(root)
        .arg("run")
        .arg(path)
        .args(["--schedulers", &schedulers.to_string()])
        .args(if lowering {
            &[][..]
        } else {
            &["--no-lower"][..]
        })
        .args(&e.args)
        .output()
        .map_err(|err| format!("spawn ember: {err}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let status = output.status.code().unwrap_or(-1);
    let mut problems = Vec::new();
    let want_status = e.status.unwrap_or(if e.errors.is_empty() { 0 } else { 1 });
    if status != want_status {
        problems.push(format!("exit status {status}, expected {want_status}"));
    }
    let got: Vec<&str> = stdout.lines().collect();
    if got != e.stdout {
        problems.push(format!(
            "stdout differs\n--- expected\n{}\n--- got\n{}",
            e.stdout.join("\n"),
            got.join("\n")
        ));
    }
    for s in &e.stderr {
        if !stderr.contains(s.as_str()) {
            problems.push(format!("stderr lacks `{s}`"));
        }
    }
    for err in &e.errors {
        let (pos, msg) = err.split_once(' ').unwrap_or((err, ""));
        let want = format!("{}:{pos}: error: {msg}", path.display());
        if !stderr.lines().any(|l| l == want) {
            problems.push(format!("stderr lacks the line `{want}`"));
        }
    }
    if !e.errors.is_empty() {
        let reported = stderr.lines().filter(|l| l.contains(": error: ")).count();
        if reported != e.errors.len() {
            problems.push(format!(
                "{reported} errors reported, {} expected",
                e.errors.len()
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}\n--- stderr\n{stderr}", problems.join("\n")).into())
    }
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n != "modules") {
                collect(&p, out);
            }
        } else if p.extension().is_some_and(|x| x == "basm") {
            out.push(p);
        }
    }
}

fn main() {
    let args = Arguments::from_args();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    collect(&root.join("tests/basm"), &mut files);
    collect(&root.join("examples"), &mut files);
    let mut trials = Vec::new();
    for path in files {
        let name = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .display()
            .to_string();
        let rel = PathBuf::from(&name);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if text.starts_with("; library:") {
            continue;
        }
        let many = any_schedulers(&parse(&text));
        let one = rel.clone();
        trials.push(Trial::test(name.clone(), move || {
            check(Path::new(env!("CARGO_MANIFEST_DIR")), &one, 1, true)
        }));
        let unlowered = rel.clone();
        trials.push(Trial::test(format!("{name} [no lowering]"), move || {
            check(Path::new(env!("CARGO_MANIFEST_DIR")), &unlowered, 1, false)
        }));
        if many {
            trials.push(Trial::test(format!("{name} [4 schedulers]"), move || {
                check(Path::new(env!("CARGO_MANIFEST_DIR")), &rel, 4, true)
            }));
        }
    }
    libtest_mimic::run(&args, trials).exit();
}
