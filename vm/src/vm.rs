//! The scheduler of spec §5 and everything between processes: the process table, the run
//! queue, links, monitors, exit signals, the registry and timers.
//!
//! One FIFO run queue. A slice takes the front process and runs it with [`interp::run_slice`]
//! until its budget is spent, it waits in `receive`, or it exits. Messages and signals are
//! delivered at once, so between one sender and one receiver they arrive in the order sent.

use crate::atoms::atom;
use crate::heap::Heap;
use crate::interp::{self, Outcome, Probe};
use crate::process::{Process, Status};
use crate::program::Program;
use crate::term::Term;
use crate::trace::Tracer;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::io::Write;
use std::rc::Rc;
use std::time::Instant;

/// How a run is set up.
pub struct Config {
    /// Reductions per slice (`--budget`).
    pub budget: u32,
    /// `--virtual-time`: the clock jumps to the next timeout when nothing can run.
    pub virtual_time: bool,
    /// `--seed` for `rand`; `None` seeds from the clock.
    pub seed: Option<u64>,
    /// A process whose heap holds more than this after a collection crashes `:heap_limit`.
    pub max_heap_bytes: usize,
    /// Deepest `call` nesting and largest `push` stack before `:stack_overflow`.
    pub max_stack: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            budget: 4000,
            virtual_time: false,
            seed: None,
            max_heap_bytes: 1 << 30,
            max_stack: 1 << 22,
        }
    }
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunEnd {
    /// Pid 0 exited; `reason` is its printed exit reason.
    MainExited { normal: bool, reason: String },
    /// Nothing can run, no timer is pending, and pid 0 is waiting.
    Deadlock,
    /// `halt n`.
    Halted(i32),
}

impl RunEnd {
    /// The exit status `ember run` uses.
    pub fn status(&self) -> i32 {
        match self {
            RunEnd::MainExited { normal: true, .. } => 0,
            RunEnd::MainExited { .. } => 3,
            RunEnd::Deadlock => 4,
            RunEnd::Halted(n) => *n,
        }
    }
}

/// Figures gathered during a run (always on: each is bumped per slice or per event, never per
/// instruction).
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub slices: u64,
    pub context_switches: u64,
    pub spawns: u64,
    pub messages_sent: u64,
    pub messages_received: u64,
    /// Messages a `receive` tested against its clauses (each at most once per receive).
    pub messages_tested: u64,
    pub gc_runs: u64,
    pub gc_nanos: u64,
    pub reductions: u64,
    /// Per exited or live process: (pid, reductions, peak heap bytes, mailbox high-water mark).
    pub processes: Vec<ProcStats>,
}

impl Process {
    /// This process's figures so far.
    pub fn stats(&self) -> ProcStats {
        ProcStats {
            pid: self.pid,
            reductions: self.reductions,
            peak_heap: self.peak_heap.max(self.heap.arena_bytes()),
            mailbox_peak: self.mailbox_peak,
            collections: self.heap.collections(),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct ProcStats {
    pub pid: u32,
    pub reductions: u64,
    pub peak_heap: usize,
    pub mailbox_peak: usize,
    pub collections: u64,
}

enum Clock {
    Real(Instant),
    Virtual(u64),
}

/// A pending exit: the process and its reason, held in the cascade's scratch heap.
struct Dying {
    proc: Box<Process>,
    reason: Term,
}

/// The exits of one cascade (usually one or two: no allocation).
type Dyings = smallvec::SmallVec<[Dying; 2]>;

pub struct Vm {
    pub(crate) prog: Rc<Program>,
    pub(crate) procs: Vec<Option<Box<Process>>>,
    pub(crate) queue: VecDeque<u32>,
    pub(crate) registry: HashMap<u32, u32>,
    timers: BinaryHeap<Reverse<(u64, u64, u32)>>,
    timer_seq: u64,
    clock: Clock,
    pub(crate) refs: u64,
    rng: u64,
    pub(crate) out: Box<dyn Write>,
    err: Box<dyn Write>,
    pub(crate) trace: Option<Tracer>,
    pub(crate) config: Config,
    main_exit: Option<(bool, String)>,
    /// Set when a signal sent while a process runs must end that process.
    pub(crate) cur_exit: Option<Term>,
    pub stats: Stats,
    halted: Option<i32>,
    /// Pid 0's crash was already written to stderr when it happened.
    main_reported: bool,
}

/// What a slice did, for the trace and stats.
fn outcome_name(o: &Outcome) -> &'static str {
    match o {
        Outcome::Yield => "yield",
        Outcome::Wait => "wait",
        Outcome::Exit { .. } | Outcome::Halt(_) => "exit",
    }
}

impl Vm {
    pub fn new(prog: Program, config: Config, out: Box<dyn Write>, err: Box<dyn Write>) -> Vm {
        let seed = config.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
        Vm {
            prog: Rc::new(prog),
            procs: Vec::new(),
            queue: VecDeque::new(),
            registry: HashMap::new(),
            timers: BinaryHeap::new(),
            timer_seq: 0,
            clock: if config.virtual_time {
                Clock::Virtual(0)
            } else {
                Clock::Real(Instant::now())
            },
            refs: 0,
            rng: seed,
            out,
            err,
            trace: None,
            config,
            main_exit: None,
            cur_exit: None,
            stats: Stats::default(),
            halted: None,
            main_reported: false,
        }
    }

    pub fn set_trace(&mut self, out: Box<dyn Write>) {
        self.trace = Some(Tracer::new(out));
    }

    pub fn program(&self) -> &Program {
        &self.prog
    }

    /// Spawns pid 0 at `entry` with `r0 :=` the list of `args` as binaries.
    pub fn spawn_main(&mut self, entry: &str, args: &[String]) -> Result<u32, String> {
        let Some(pc) = self.prog.entry(entry) else {
            let unit = &self.prog.module.module().units[0];
            return Err(format!(
                "{}: error: module `{}` has no label `{entry}` to start at",
                unit.file, unit.name
            ));
        };
        let pid = self.procs.len() as u32;
        let mut p = Box::new(Process::new(pid, pc.0, self.prog.registers_at(pc.0)));
        let items: Vec<Term> = args.iter().map(|a| p.heap.binary(a.as_bytes())).collect();
        p.regs[0] = p.heap.list_from(&items, Term::NIL);
        p.queued = true;
        self.procs.push(Some(p));
        self.queue.push_back(pid);
        self.stats.spawns += 1;
        Ok(pid)
    }

    /// Milliseconds since the VM started (virtual under `--virtual-time`).
    pub fn now_ms(&self) -> u64 {
        match &self.clock {
            Clock::Real(start) => start.elapsed().as_millis() as u64,
            Clock::Virtual(ms) => *ms,
        }
    }

    /// A uniform integer in `[0, n)` (splitmix64; small, fast, and repeatable for a seed).
    pub(crate) fn rand_below(&mut self, n: u64) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z as u128 * n as u128) >> 64) as u64
    }

    pub(crate) fn fresh_ref(&mut self) -> u64 {
        self.refs += 1;
        self.refs
    }

    pub(crate) fn format(&self, t: Term) -> String {
        let mut out = Vec::new();
        self.prog.format(t, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Trace events that print a term: the term is formatted only when tracing is on.
    pub(crate) fn trace_send(&mut self, from: u32, to: u32, msg: Term) {
        if self.trace.is_some() {
            let text = self.format(msg);
            if let Some(t) = self.trace.as_mut() {
                t.send(from, to, &text);
            }
        }
    }

    pub(crate) fn trace_receive(&mut self, pid: u32, msg: Term) {
        if self.trace.is_some() {
            let text = self.format(msg);
            if let Some(t) = self.trace.as_mut() {
                t.receive(pid, &text);
            }
        }
    }

    pub(crate) fn is_alive(&self, pid: u32, cur: &Process) -> bool {
        pid == cur.pid || self.procs.get(pid as usize).is_some_and(Option::is_some)
    }

    /// The process `pid`: the running one or one in the table.
    pub(crate) fn proc_mut<'a>(
        &'a mut self,
        cur: &'a mut Process,
        pid: u32,
    ) -> Option<&'a mut Process> {
        if pid == cur.pid {
            Some(cur)
        } else {
            self.procs
                .get_mut(pid as usize)
                .and_then(|p| p.as_deref_mut())
        }
    }

    /// Puts a waiting process back in the run queue.
    pub(crate) fn wake(&mut self, pid: u32) {
        if let Some(Some(p)) = self.procs.get_mut(pid as usize) {
            if p.status == Status::Waiting && !p.queued {
                p.status = Status::Runnable;
                p.queued = true;
                self.queue.push_back(pid);
            }
        }
    }

    /// Copies `msg` (a term of `from_heap`'s owner) into `to`'s mailbox and wakes it.
    pub(crate) fn deliver(&mut self, cur: &mut Process, to: u32, msg: Term) {
        let lits = &self.prog.literals;
        if to == cur.pid {
            cur.deliver(msg);
            return;
        }
        let Some(Some(p)) = self.procs.get_mut(to as usize) else {
            return;
        };
        let copy = p.heap.copy_into(msg, lits);
        p.deliver(copy);
        self.wake(to);
    }

    /// Builds `{:EXIT, from, reason}` in `to`'s heap and delivers it.
    fn deliver_exit_message(&mut self, cur: &mut Process, to: u32, from: u32, reason: Term) {
        let prog = self.prog.clone();
        let Some(p) = self.proc_mut(cur, to) else {
            return;
        };
        let r = p.heap.copy_into(reason, &prog.literals);
        let msg = p.heap.tuple(&[Term::atom(atom::EXIT), Term::pid(from), r]);
        p.deliver(msg);
        if to != cur.pid {
            self.wake(to);
        }
    }

    /// Sends exit signal `reason` from `from` to `to`, by the rules of spec §5. `via_link` marks
    /// signals that come from a link (never untrappable, whatever the reason).
    pub(crate) fn exit_signal(
        &mut self,
        cur: &mut Process,
        from: u32,
        to: u32,
        reason: Term,
        via_link: bool,
    ) {
        let mut scratch = Heap::new();
        let reason = scratch.copy_into(reason, &self.prog.literals);
        let mut dying = Dyings::new();
        self.signal(cur, from, to, reason, via_link, &mut dying, &mut scratch);
        self.cascade(cur, dying, &mut scratch);
    }

    /// Applies one exit signal; a process it kills is taken out of the table into `dying`.
    #[allow(clippy::too_many_arguments)]
    fn signal(
        &mut self,
        cur: &mut Process,
        from: u32,
        to: u32,
        reason: Term,
        via_link: bool,
        dying: &mut Dyings,
        scratch: &mut Heap,
    ) {
        let Some(target) = self.proc_mut(cur, to) else {
            return;
        };
        let kill = !via_link && reason.as_atom() == Some(atom::KILL);
        let trap = target.trap_exit;
        let new_reason = if kill {
            Some(Term::atom(atom::KILLED))
        } else if trap {
            self.deliver_exit_message(cur, to, from, reason);
            None
        } else if reason.as_atom() == Some(atom::NORMAL) && (via_link || to != from) {
            // `:normal` is ignored, except `exit self, :normal`, which ends the caller. A
            // signal still reaches the process: a waiting one is queued (spec §5), handles it,
            // and waits again.
            if to != cur.pid {
                self.wake(to);
            }
            None
        } else {
            Some(reason)
        };
        let Some(r) = new_reason else {
            return;
        };
        if to == cur.pid {
            if self.cur_exit.is_none() {
                self.cur_exit = Some(cur.heap.copy_into(r, &self.prog.literals));
            }
        } else if let Some(p) = self.procs[to as usize].take() {
            let r = scratch.copy_into(r, &self.prog.literals);
            dying.push(Dying { proc: p, reason: r });
        }
    }

    /// Ends the running process (taken out of the table by the caller) with `reason`.
    pub(crate) fn exit_running(&mut self, p: Box<Process>, reason: Term, raised_at: Option<u32>) {
        if let Some(pc) = raised_at {
            let line = format!(
                "error in process <0.{}>: {} at {}",
                p.pid,
                self.format(reason),
                self.prog.module.location(pc)
            );
            let _ = self.out.flush();
            let _ = writeln!(self.err, "{line}");
            if p.pid == 0 {
                // Already reported: the end of the run need not repeat it.
                self.main_reported = true;
            }
        }
        let mut scratch = Heap::new();
        let reason = scratch.copy_into(reason, &self.prog.literals);
        // No process is running during the cascade: use a placeholder that owns nothing.
        let mut none = Process::new(u32::MAX, 0, 0);
        let mut dying = Dyings::new();
        dying.push(Dying { proc: p, reason });
        self.cascade(&mut none, dying, &mut scratch);
    }

    /// Processes exits one after another: links get exit signals, monitors get `:DOWN`.
    fn cascade(&mut self, cur: &mut Process, mut dying: Dyings, scratch: &mut Heap) {
        while let Some(Dying {
            proc: mut p,
            reason,
        }) = dying.pop()
        {
            let pid = p.pid;
            self.record_exit(&p, reason);
            if let Some(name) = p.name.take() {
                self.registry.remove(&name);
            }
            for link in p.links.take() {
                if let Some(other) = self.proc_mut(cur, link) {
                    other.links.remove(pid);
                    self.signal(cur, pid, link, reason, true, &mut dying, scratch);
                }
            }
            for (r, watcher) in std::mem::take(&mut p.watchers) {
                let prog = self.prog.clone();
                if let Some(w) = self.proc_mut(cur, watcher) {
                    w.monitors.retain(|&(mr, _)| mr != r);
                    let reason = w.heap.copy_into(reason, &prog.literals);
                    let msg = w.heap.tuple(&[
                        Term::atom(atom::DOWN),
                        Term::reference(r),
                        Term::atom(atom::PROCESS),
                        Term::pid(pid),
                        reason,
                    ]);
                    w.deliver(msg);
                    self.wake(watcher);
                }
            }
            for (r, target) in std::mem::take(&mut p.monitors) {
                if let Some(t) = self.proc_mut(cur, target) {
                    t.watchers.retain(|&(wr, _)| wr != r);
                }
            }
        }
    }

    fn record_exit(&mut self, p: &Process, reason: Term) {
        if self.trace.is_some() {
            let text = self.format(reason);
            if let Some(t) = self.trace.as_mut() {
                t.exit(p.pid, &text);
            }
        }
        self.stats.processes.push(p.stats());
        if p.pid == 0 {
            let normal = reason.as_atom() == Some(atom::NORMAL);
            self.main_exit = Some((normal, self.format(reason)));
        }
    }

    /// Arms a receive timeout for `p` after `ms` milliseconds.
    pub(crate) fn arm_timer(&mut self, p: &mut Process, ms: u64) {
        self.timer_seq += 1;
        p.timer = self.timer_seq;
        let deadline = self.now_ms().saturating_add(ms);
        self.timers.push(Reverse((deadline, self.timer_seq, p.pid)));
    }

    /// Fires every timer due at `now`, in the order their processes started waiting.
    fn fire_due(&mut self, now: u64) {
        while let Some(Reverse((deadline, seq, pid))) = self.timers.peek().copied() {
            if deadline > now {
                break;
            }
            self.timers.pop();
            if let Some(Some(p)) = self.procs.get_mut(pid as usize) {
                if p.timer == seq {
                    p.timer = 0;
                    p.timed_out = true;
                    if let Some(t) = self.trace.as_mut() {
                        t.timeout(pid);
                    }
                    self.wake(pid);
                }
            }
        }
    }

    /// When nothing can run: waits for (or, in virtual time, jumps to) the next timeout.
    /// Returns false when no timer is pending.
    fn idle(&mut self) -> bool {
        // Drop timers whose receive already ended.
        while let Some(Reverse((_, seq, pid))) = self.timers.peek().copied() {
            let live = matches!(self.procs.get(pid as usize), Some(Some(p)) if p.timer == seq);
            if live {
                break;
            }
            self.timers.pop();
        }
        let Some(Reverse((deadline, _, _))) = self.timers.peek().copied() else {
            return false;
        };
        match &mut self.clock {
            Clock::Virtual(ms) => *ms = (*ms).max(deadline),
            Clock::Real(_) => {
                let now = self.now_ms();
                if deadline > now {
                    let _ = self.out.flush();
                    std::thread::sleep(std::time::Duration::from_millis(deadline - now));
                }
            }
        }
        let now = self.now_ms().max(deadline);
        self.fire_due(now);
        true
    }

    /// Runs until no process can run and no timer is pending, or `halt`.
    pub fn run(&mut self) -> RunEnd {
        self.run_with(&mut interp::NoProbe)
    }

    /// [`Vm::run`] with an instruction probe (the profiler); monomorphised so that the plain
    /// run pays nothing for it.
    pub fn run_with<P: Probe>(&mut self, probe: &mut P) -> RunEnd {
        let prog = self.prog.clone();
        let budget = self.config.budget.max(1);
        let mut last = u32::MAX;
        loop {
            if let Some(n) = self.halted {
                self.finish();
                return RunEnd::Halted(n);
            }
            if !self.timers.is_empty() && matches!(self.clock, Clock::Real(_)) {
                let now = self.now_ms();
                self.fire_due(now);
            }
            let Some(pid) = self.queue.pop_front() else {
                if self.idle() {
                    continue;
                }
                break;
            };
            let Some(mut p) = self.procs[pid as usize].take() else {
                continue; // killed while queued
            };
            p.queued = false;
            self.stats.slices += 1;
            if pid != last {
                self.stats.context_switches += 1;
                last = pid;
            }
            let (outcome, reds) = interp::run_slice(&prog, self, &mut p, budget, probe);
            p.reductions += reds as u64;
            self.stats.reductions += reds as u64;
            let name = outcome_name(&outcome);
            match outcome {
                Outcome::Yield => {
                    p.queued = true;
                    self.procs[pid as usize] = Some(p);
                    self.queue.push_back(pid);
                }
                Outcome::Wait => {
                    p.status = Status::Waiting;
                    self.procs[pid as usize] = Some(p);
                }
                Outcome::Exit { reason, raised_at } => self.exit_running(p, reason, raised_at),
                Outcome::Halt(n) => {
                    self.procs[pid as usize] = Some(p);
                    self.halted = Some(n);
                }
            }
            if self.trace.is_some() {
                let queue: Vec<u32> = self
                    .queue
                    .iter()
                    .copied()
                    .filter(|&q| matches!(self.procs.get(q as usize), Some(Some(_))))
                    .collect();
                if let Some(t) = self.trace.as_mut() {
                    t.slice(pid, reds as u64, name, &queue);
                }
            }
        }
        self.finish();
        match self.main_exit.clone() {
            Some((normal, reason)) => {
                if !normal && !self.main_reported {
                    let _ = writeln!(self.err, "process <0.0> exited with reason {reason}");
                }
                RunEnd::MainExited { normal, reason }
            }
            None => {
                self.report_deadlock();
                RunEnd::Deadlock
            }
        }
    }

    fn finish(&mut self) {
        let _ = self.out.flush();
        if let Some(t) = self.trace.as_mut() {
            t.flush();
        }
        for p in self.procs.iter().flatten() {
            self.stats.processes.push(p.stats());
        }
        self.stats.processes.sort_by_key(|p| p.pid);
    }

    fn report_deadlock(&mut self) {
        let mut lines = vec!["deadlock: no process can run and no timeout is pending".to_string()];
        for p in self.procs.iter().flatten() {
            let n = p.mailbox.len();
            lines.push(format!(
                "  <0.{}> waiting in receive at {} ({} message{} in mailbox)",
                p.pid,
                self.prog.module.location(p.pc),
                n,
                if n == 1 { "" } else { "s" }
            ));
        }
        for l in lines {
            let _ = writeln!(self.err, "{l}");
        }
    }

    /// A live process's figures (for tests and `ember prof`).
    pub fn process_stats(&self, pid: u32) -> Option<ProcStats> {
        if let Some(Some(p)) = self.procs.get(pid as usize) {
            return Some(p.stats());
        }
        self.stats.processes.iter().find(|s| s.pid == pid).cloned()
    }

    /// Number of processes alive now.
    pub fn live_processes(&self) -> usize {
        self.procs.iter().flatten().count()
    }
}
