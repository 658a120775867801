//! `ember check`: runs a program under many schedules and reports the first run that ends
//! badly, with a command that replays it and the shortest schedule found that still fails.
//!
//! Every run is on one scheduler and virtual time, so a run is a function of its schedule (the
//! decisions that differ from the default, see `ember_vm::explore`) and the seed: replaying
//! the schedule repeats the run exactly, trace included.

use ember_vm::explore::{Dfs, FixedBudget, Pct, RandomWalk, Replay, Schedule, Strategy};
use ember_vm::program::Program;
use ember_vm::vm::{Config, RunEnd, Vm};
use std::collections::HashSet;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StrategyName {
    /// A runnable process chosen at random at each step, slices cut short at random, timeouts
    /// fired early now and then.
    Random,
    /// Probabilistic concurrency testing: random priorities with `--depth` - 1 change points,
    /// one reduction per step.
    Pct,
    /// The default order with every budget from 1 to `--runs`.
    Budgets,
    /// Systematic: every interleaving of the processes' visible steps, one reduction per step,
    /// each explored once (steps local to a process are not interleaved: partial-order
    /// reduction); says when all were explored within `--runs`.
    Dpor,
}

/// What `ember check` was asked.
pub struct Options {
    pub file: PathBuf,
    pub args: Vec<String>,
    pub runs: u64,
    pub seed: u64,
    pub strategy: StrategyName,
    pub max_steps: u64,
    pub depth: u32,
    pub budget: u32,
    /// Where to write the trace of the shortest failing run.
    pub trace: Option<PathBuf>,
}

/// A writer into memory that the VM can own while the caller reads it after the run.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

/// One run's outcome.
struct Outcome {
    /// Why the run ended badly, if it did.
    failure: Option<String>,
    /// The run hit `--max-steps` (not judged).
    cut: bool,
    schedule: Schedule,
    steps: u64,
    stderr: String,
}

fn config(opts: &Options) -> Config {
    Config {
        budget: opts.budget,
        virtual_time: true,
        seed: Some(opts.seed),
        max_reductions: Some(opts.max_steps),
        schedulers: 1,
        ..Default::default()
    }
}

/// Runs the program once under `strategy`; with `trace`, writes the run's trace there.
fn run_once(
    prog: &Arc<Program>,
    opts: &Options,
    strategy: Box<dyn Strategy>,
    trace: Option<&PathBuf>,
) -> Result<Outcome, String> {
    let err = Captured::default();
    let mut vm = Vm::with_program(
        Arc::clone(prog),
        config(opts),
        Box::new(io::sink()),
        Box::new(err.clone()),
    );
    if let Some(path) = trace {
        let file = std::fs::File::create(path)
            .map_err(|e| format!("{}: error: cannot create trace file: {e}", path.display()))?;
        vm.set_trace(Box::new(io::BufWriter::new(file)));
    }
    vm.spawn_main("main", &opts.args)?;
    vm.explore(strategy);
    let end = vm.run();
    let stderr = err.text();
    // The first crash the VM raised is the likeliest cause of what followed.
    let crash = stderr.lines().find(|l| l.starts_with("error in process"));
    let failure = match (&end, crash) {
        (_, Some(line)) if vm.stats.crashes > 0 => Some(format!("a crash: {line}")),
        (RunEnd::Deadlock, _) => Some("deadlock: pid 0 waits and nothing can run".to_string()),
        (
            RunEnd::MainExited {
                normal: false,
                reason,
            },
            _,
        ) => Some(format!("pid 0 exited with reason {reason}")),
        _ => None,
    };
    Ok(Outcome {
        failure,
        cut: end == RunEnd::ReductionLimit,
        schedule: vm.schedule(),
        steps: vm.steps(),
        stderr,
    })
}

/// The strategy of run `run` (0-based).
fn strategy(opts: &Options, run: u64, steps_seen: u64) -> Box<dyn Strategy> {
    let seed = opts.seed.wrapping_add(run.wrapping_mul(0x9e37_79b9));
    match opts.strategy {
        StrategyName::Random => Box::new(RandomWalk::new(seed)),
        StrategyName::Pct => Box::new(Pct::new(seed, opts.depth, steps_seen.max(16))),
        StrategyName::Budgets => Box::new(FixedBudget((run % u64::from(opts.budget)) as u32 + 1)),
        // Driven by `check` itself (its prefix comes from the run before).
        StrategyName::Dpor => Box::new(Dfs::new(Vec::new())),
    }
}

/// Drops and simplifies the decisions of a failing schedule while the run still fails, until
/// no single decision can go.
fn shrink(prog: &Arc<Program>, opts: &Options, found: &Schedule) -> Result<Schedule, String> {
    let fails = |s: &Schedule| -> Result<bool, String> {
        Ok(run_once(prog, opts, Box::new(Replay::new(s)), None)?
            .failure
            .is_some())
    };
    let mut best = found.clone();
    // Chunks first, halving (as delta debugging does), so that a long schedule shrinks in
    // about n log n runs; then single decisions are simplified.
    let mut chunk = best.0.len().div_ceil(2).max(1);
    loop {
        let mut start = 0;
        while start < best.0.len() {
            let mut fewer = best.clone();
            let end = (start + chunk).min(fewer.0.len());
            fewer.0.drain(start..end);
            if fails(&fewer)? {
                best = fewer;
            } else {
                start += chunk;
            }
        }
        if chunk == 1 {
            break;
        }
        chunk = chunk.div_ceil(2);
    }
    for i in 0..best.0.len() {
        // Keep the decision but only the part of it that matters.
        if let ember_vm::explore::Choice::Run {
            pid: Some(_),
            budget: Some(b),
        } = best.0[i].choice
        {
            let mut simpler = best.clone();
            simpler.0[i].choice = ember_vm::explore::Choice::Run {
                pid: None,
                budget: Some(b),
            };
            if fails(&simpler)? {
                best = simpler;
            }
        }
    }
    Ok(best)
}

/// The shell form of the arguments of a replay command.
fn command(opts: &Options, schedule: &Schedule) -> String {
    let mut cmd = format!("ember run {}", opts.file.display());
    for a in &opts.args {
        cmd.push(' ');
        cmd.push_str(a);
    }
    if opts.budget != 4000 {
        cmd.push_str(&format!(" --budget {}", opts.budget));
    }
    cmd.push_str(&format!(" --seed {} --schedule '{schedule}'", opts.seed));
    cmd
}

/// Runs the check; the status is 0 when no run failed, 1 when one did, 2 when no run finished
/// within `--max-steps` (nothing was judged).
pub fn check(opts: &Options, prog: Program) -> Result<u8, String> {
    let prog = Arc::new(prog);
    let started = Instant::now();
    let mut distinct: HashSet<String> = HashSet::new();
    let mut cut = 0u64;
    let mut steps_seen = 0u64;
    let mut out = io::stdout().lock();
    // The systematic strategy: the next run's prefix, None once every schedule was explored.
    let mut prefix = Some(Vec::new());
    let mut explored_all = false;
    for run in 0..opts.runs {
        let (chosen, trail) = if opts.strategy == StrategyName::Dpor {
            let Some(p) = prefix.take() else {
                explored_all = true;
                break;
            };
            let dfs = Dfs::new(p);
            let trail = std::sync::Arc::clone(&dfs.trail);
            (Box::new(dfs) as Box<dyn Strategy>, Some(trail))
        } else {
            (strategy(opts, run, steps_seen), None)
        };
        let outcome = run_once(&prog, opts, chosen, None)?;
        if let Some(trail) = trail {
            let trail = trail.lock().unwrap_or_else(|e| e.into_inner());
            prefix = Dfs::next_prefix(&trail);
        }
        steps_seen = steps_seen.max(outcome.steps);
        distinct.insert(outcome.schedule.to_string());
        cut += u64::from(outcome.cut);
        let Some(failure) = outcome.failure else {
            continue;
        };
        let secs = started.elapsed().as_secs_f64();
        let shortest = shrink(&prog, opts, &outcome.schedule)?;
        let _ = writeln!(
            out,
            "FAILED on run {} of {} ({:?} strategy, seed {}): {failure}",
            run + 1,
            opts.runs,
            opts.strategy,
            opts.seed
        );
        let _ = writeln!(
            out,
            "  schedule: {} of {} decisions still fails: {}",
            shortest.0.len(),
            outcome.schedule.0.len(),
            if shortest.0.is_empty() {
                "the default order".to_string()
            } else {
                format!("'{shortest}'")
            }
        );
        let _ = writeln!(out, "  replay:   {}", command(opts, &shortest));
        if let Some(path) = &opts.trace {
            run_once(&prog, opts, Box::new(Replay::new(&shortest)), Some(path))?;
            let _ = writeln!(
                out,
                "  trace:    {} (ember view {} -o failure.html)",
                path.display(),
                path.display()
            );
        }
        let _ = writeln!(
            out,
            "  {} runs in {:.2} s ({:.0} runs/s), {} distinct schedules",
            run + 1,
            secs,
            (run + 1) as f64 / secs.max(1e-9),
            distinct.len()
        );
        for line in outcome.stderr.lines() {
            let _ = writeln!(out, "  | {line}");
        }
        return Ok(1);
    }
    let secs = started.elapsed().as_secs_f64();
    if opts.strategy == StrategyName::Dpor && prefix.is_none() {
        explored_all = true;
    }
    let runs = if opts.strategy == StrategyName::Dpor {
        distinct.len() as u64
    } else {
        opts.runs
    };
    let _ =
        writeln!(
        out,
        "{}: {}{} runs ({:?} strategy, seed {}), {} distinct schedules, {:.2} s ({:.0} runs/s){}",
        if cut > 0 && cut == runs {
            "no run finished"
        } else {
            "passed"
        },
        if explored_all { "all schedules explored in " } else { "" },
        runs,
        opts.strategy,
        opts.seed,
        distinct.len(),
        secs,
        runs as f64 / secs.max(1e-9),
        if cut > 0 {
            format!("; {cut} runs cut at --max-steps")
        } else {
            String::new()
        }
    );
    Ok(if cut > 0 && cut == runs { 2 } else { 0 })
}
