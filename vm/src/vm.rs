//! The scheduler of spec §5 and everything between processes: the process table, the run
//! queue, links, monitors, exit signals, the registry, timers, and the limits of spec §10.
//!
//! One FIFO run queue. A slice takes the front process and runs it with `interp::run_slice`
//! until its budget is spent, it waits in `receive`, or it exits. Messages and signals are
//! delivered at once, so between one sender and one receiver they arrive in the order sent.
//!
//! # Memory
//!
//! A process's footprint (`Process::memory`) is its heap, its two stacks and its mailbox
//! slots. It is checked against `--max-heap` where it grows: after a collection, before an
//! instruction builds a large result (`to_str`, `concat`, `print`), on `push`, and when a message
//! is delivered (the receiver dies `:heap_limit` and the message is dropped). The sum over all
//! processes, plus a fixed cost per process, is kept in `Vm::memory` and checked against
//! `--max-memory` at the same points. Copies measure before they allocate (see
//! `Heap::copy_into`), so no term is ever built in full before a check refuses it.

use crate::atoms::atom;
use crate::explore::{Choice, Decision, Deviation, Point, Schedule, Strategy};
use crate::heap::{prefetch, Heap, Literals, TooBig};
use crate::interp::{self, Outcome, Probe};
use crate::process::{
    PeerHint, Process, Status, HOT_LINES, LINK_BYTES, MAILBOX_SLOT_BYTES, MONITOR_BYTES,
};
use crate::proctable::ProcTable;
use crate::program::Program;
use crate::runtime::{Effect, Exit, Outgoing, Runtime};
use crate::term::Term;
use crate::trace::Tracer;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{self, Write};
use std::sync::Arc;
use std::time::Instant;

mod host;
pub(crate) mod smp;
pub use crate::program::CodeError;
pub use host::{
    Builder, Capture, CodeOp, CodeReply, Dest, HostError, LoadError, Mailbox, Pause, Remote,
};
mod code;
pub use code::Loader;
pub(crate) use host::{RemoteInbox, Stop};

/// Printed forms in reports (crash lines, exit reasons, trace `msg`) are cut here (spec §10).
pub const REPORT_CUT: usize = 1000;

/// What one live process costs besides its footprint: the process struct and its table entry.
pub const PROCESS_OVERHEAD: usize = std::mem::size_of::<Process>() + 32;

/// How a run is set up.
pub struct Config {
    /// Reductions per slice (`--budget`).
    pub budget: u32,
    /// `--virtual-time`: the clock jumps to the next timeout when nothing can run.
    pub virtual_time: bool,
    /// `--seed` for `rand`; `None` seeds from the clock.
    pub seed: Option<u64>,
    /// `--max-heap`: a process whose heap, stacks and mailbox would pass this many bytes
    /// crashes `:heap_limit`.
    pub max_heap_bytes: usize,
    /// `--max-memory`: the whole VM's bound; an allocation that would pass it crashes the
    /// allocating process `:heap_limit`, a spawn crashes the spawner `:system_limit`.
    pub max_memory_bytes: usize,
    /// `--max-processes`: a spawn beyond this many live processes crashes `:system_limit`.
    pub max_processes: usize,
    /// Deepest `call` nesting and largest `push` stack before `:stack_overflow`.
    pub max_stack: usize,
    /// For embedders and fuzzing: end the run once this many reductions were spent in all
    /// (checked between slices; one scheduler only). The CLI has no such bound.
    pub max_reductions: Option<u64>,
    /// `--schedulers`: how many scheduler threads run processes (spec §9). One gives the exact
    /// single-queue order of spec §5.
    pub schedulers: usize,
    /// `--quiet-reports`: the `report` instruction writes nothing (spec §5 as first written).
    pub quiet_reports: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            budget: 4000,
            virtual_time: false,
            seed: None,
            max_heap_bytes: 1 << 30,
            max_memory_bytes: default_max_memory(),
            max_processes: 1 << 22,
            max_stack: 1 << 22,
            max_reductions: None,
            schedulers: 1,
            quiet_reports: false,
        }
    }
}

/// Three quarters of the machine's memory (spec §10), or 8 GiB where it cannot be read.
pub fn default_max_memory() -> usize {
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
        kib.checked_mul(1024)
    });
    total.map_or(8 << 30, |t| t / 4 * 3)
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
    /// Standard output, standard error or the trace could not be written (spec §10): a closed
    /// pipe ends the run quietly with status 141; any other failure with status 1 and
    /// `message` (which the VM could not write itself when standard error is what failed).
    OutputFailed {
        status: i32,
        message: Option<String>,
    },
    /// [`Config::max_reductions`] were spent.
    ReductionLimit,
}

impl RunEnd {
    /// The exit status `ember run` uses.
    pub fn status(&self) -> i32 {
        match self {
            RunEnd::MainExited { normal: true, .. } => 0,
            RunEnd::MainExited { .. } => 3,
            RunEnd::Deadlock => 4,
            RunEnd::Halted(n) => *n,
            RunEnd::OutputFailed { status, .. } => *status,
            RunEnd::ReductionLimit => 5,
        }
    }
}

/// Figures gathered during a run (always on: each is bumped per slice or per event, never per
/// instruction). Nothing here grows with the number of processes (spec §10: a dead process
/// leaves nothing behind).
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Crashes the VM raised and reported (`:badarith`, a failed `assert`, ...).
    pub crashes: u64,
    pub slices: u64,
    pub context_switches: u64,
    pub spawns: u64,
    pub exits: u64,
    pub messages_sent: u64,
    pub messages_received: u64,
    /// Messages a `receive` tested against its clauses (each at most once per receive).
    pub messages_tested: u64,
    pub gc_runs: u64,
    /// How many of the collections were major (the others minor: see the heap's policy).
    pub gc_major_runs: u64,
    pub gc_nanos: u64,
    pub reductions: u64,
    /// The most live processes at once.
    pub peak_processes: usize,
    /// The largest heap any process had, in bytes.
    pub peak_heap: usize,
    /// The longest mailbox any process had.
    pub mailbox_peak: usize,
    /// The processes that ran the most reductions, most first (at most [`Stats::TOP`]),
    /// live ones included once the run has ended.
    pub top: Vec<ProcStats>,
    /// Pid 0's figures when it exited.
    pub main: Option<ProcStats>,
    /// Per scheduler, with more than one.
    pub schedulers: Vec<SchedulerStats>,
}

/// One scheduler's figures (N schedulers).
#[derive(Clone, Debug, Default)]
pub struct SchedulerStats {
    pub id: usize,
    pub slices: u64,
    /// Processes taken from another scheduler's queue.
    pub steals: u64,
    /// Time spent looking for work or asleep.
    pub idle_nanos: u64,
}

impl Stats {
    /// How many processes [`Stats::top`] keeps.
    pub const TOP: usize = 10;

    /// Records the figures of a process that exited (or is still alive at the end).
    fn record(&mut self, s: ProcStats) {
        self.peak_heap = self.peak_heap.max(s.peak_heap);
        self.mailbox_peak = self.mailbox_peak.max(s.mailbox_peak);
        if s.pid == 0 {
            self.main = Some(s.clone());
        }
        let better = |a: &ProcStats, b: &ProcStats| {
            a.reductions > b.reductions || (a.reductions == b.reductions && a.pid < b.pid)
        };
        if self.top.len() == Self::TOP && !better(&s, &self.top[Self::TOP - 1]) {
            return;
        }
        let at = self.top.partition_point(|t| better(t, &s));
        self.top.insert(at, s);
        self.top.truncate(Self::TOP);
    }
}

impl Process {
    /// This process's figures so far.
    pub fn stats(&self) -> ProcStats {
        ProcStats {
            pid: self.pid,
            reductions: self.reductions,
            peak_heap: self.peak_heap.max(self.heap.arena_bytes()),
            mailbox_peak: self.mailbox_peak as usize,
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

/// The largest clock reading: `now` is a signed 64-bit integer and never goes backwards, so
/// deadlines saturate here (spec §10).
const CLOCK_MAX: u64 = i64::MAX as u64;

/// The last pid number (the process table reserves the two above it).
const MAX_PID: u64 = u32::MAX as u64 - 2;

/// A pending exit: the process and its reason, held in the cascade's scratch heap.
struct Dying {
    proc: Box<Process>,
    reason: Term,
}

/// The exits of one cascade (usually one or two: no allocation).
type Dyings = smallvec::SmallVec<[Dying; 2]>;

/// The running process during an effect, if any. It is checked out of the table, so what
/// reaches it is applied to it here, and an exit it must take is collected here for the effect
/// to return (no side channel on the VM, no placeholder process).
struct Running<'a> {
    proc: Option<&'a mut Process>,
    exit: Option<Exit>,
}

impl<'a> Running<'a> {
    fn new(p: &'a mut Process) -> Running<'a> {
        Running {
            proc: Some(p),
            exit: None,
        }
    }

    fn none() -> Running<'a> {
        Running {
            proc: None,
            exit: None,
        }
    }

    fn is(&self, pid: u32) -> bool {
        self.proc.as_ref().is_some_and(|p| p.pid == pid)
    }

    /// The running process must exit once the current instruction is done (the first reason
    /// wins).
    fn raise(&mut self, exit: Exit) {
        if self.exit.is_none() {
            self.exit = Some(exit);
        }
    }

    fn result(self) -> Effect {
        self.exit.map_or(Ok(()), Err)
    }
}

pub struct Vm {
    prog: Arc<Program>,
    /// Under `ember check`, `--schedule` and `--replay`: who decides the steps (one scheduler).
    explorer: Option<Box<dyn Strategy>>,
    /// Steps (slices) taken so far, for the explorer.
    steps: u64,
    /// The decisions taken that differ from the default, when an explorer decides.
    deviations: Vec<Deviation>,
    /// `--record`: every value the `now` instruction read.
    nows_recorded: Option<std::cell::RefCell<Vec<u64>>>,
    /// `--replay`: those values, given back in order (then the clock's own), and how many were.
    nows_replayed: Option<(Vec<u64>, std::cell::Cell<usize>)>,
    /// Live processes by pid (the running one checked out). Nothing is kept per dead process
    /// (spec §10).
    procs: ProcTable,
    /// Processes alive, the running one included.
    alive: usize,
    /// The next pid number; pids are never reused.
    next_pid: u64,
    queue: VecDeque<u32>,
    registry: HashMap<u32, u32>,
    /// Armed receive timeouts by (deadline, arming order): same-moment timeouts fire in the
    /// order their receives began waiting. A process holds its key, so a receive that ends
    /// removes its timer at once.
    timers: BTreeMap<(u64, u64), u32>,
    timer_seq: u64,
    clock: Clock,
    refs: u64,
    /// `--seed` (or the clock's): each process's `rand` is seeded from it and its pid.
    seed: u64,
    out: Box<dyn Write + Send>,
    err: Box<dyn Write + Send>,
    trace: Option<Tracer>,
    config: Config,
    main_exit: Option<(bool, String)>,
    pub stats: Stats,
    halted: Option<i32>,
    /// Pid 0's crash was already written to stderr when it happened.
    main_reported: bool,
    /// Bytes accounted to all live processes ([`Process::accounted`] summed).
    memory: usize,
    /// The first failure to write an output, which ends the run.
    output_failure: Option<RunEnd>,
    /// The run ended (`halt`, an output failed, the reduction limit): nothing runs again.
    ended: bool,
    /// What other threads send through a [`Remote`].
    pub(crate) remote: Arc<host::RemoteInbox>,
    /// Reads modules for code requests (see [`Vm::set_loader`]).
    loader: Option<Box<code::Loader>>,
}

/// The printed form of `t` for a report, cut at [`REPORT_CUT`] bytes (spec §10).
fn report_form(prog: &Program, t: Term) -> String {
    crate::term::format_cut(
        t,
        &|a| prog.atoms.name(a),
        &|at| prog.fun_name(at),
        REPORT_CUT,
    )
}

/// `error in process <0.N>: REASON at FILE:LINE` (spec §5), then the crash's context on
/// indented lines (see [`crash_context`]).
fn crash_line(prog: &Program, p: &Process, reason: Term, pc: u32) -> String {
    let mut text = format!(
        "error in process <0.{}>: {} at {}",
        p.pid,
        report_form(prog, reason),
        prog.module.location(pc)
    );
    crash_context(prog, p, pc, &mut text);
    note_lines(prog, p, &mut text);
    text
}

/// A note shows at most this many `key: value` lines.
const NOTE_LINES: usize = 10;

/// The lines of `p`'s `crash_note`: a `key: value` line per pair of a list of `{atom, value}`
/// pairs, else one `note:` line; values cut as operands are.
fn note_lines(prog: &Program, p: &Process, out: &mut String) {
    use crate::word::View;
    use std::fmt::Write as _;
    let note = p.note();
    if note.is_nil() {
        return;
    }
    let text = |t: Term| {
        crate::term::format_cut(
            t,
            &|a| prog.atoms.name(a),
            &|f| prog.fun_name(f),
            OPERAND_CUT,
        )
    };
    let mut pairs = Vec::new();
    let mut rest = note;
    while let View::Cons(head, tail) = rest.view() {
        match head.view() {
            View::Tuple([k, v]) if k.as_atom().is_some() && pairs.len() < NOTE_LINES => {
                pairs.push((prog.atoms.name(k.as_atom().unwrap_or_default()), *v));
            }
            _ => break,
        }
        rest = tail;
    }
    if rest.is_nil() {
        for (k, v) in pairs {
            let _ = write!(out, "\n    {k}: {}", text(v));
        }
    } else {
        let _ = write!(out, "\n    note: {}", text(note));
    }
}

/// Whether `reason` is an abnormal exit's: not `:normal`, `:shutdown` or `{:shutdown, _}`
/// (Erlang's rule for what a supervisor or a crash report counts as a failure).
fn abnormal(reason: Term) -> bool {
    use crate::word::View;
    match reason.view() {
        View::Atom(a) => a != atom::NORMAL && a != atom::SHUTDOWN,
        View::Tuple([tag, _]) => tag.as_atom() != Some(atom::SHUTDOWN),
        _ => true,
    }
}

/// The report of an abnormal exit a process with a note asked for itself (`crash`, `exit` of
/// itself): `process <0.N> exited with reason REASON`, then its note. None for others.
pub(crate) fn noted_exit_report(prog: &Program, p: &Process, reason: Term) -> Option<String> {
    if p.note().is_nil() || !abnormal(reason) {
        return None;
    }
    let mut text = format!(
        "process <0.{}> exited with reason {}",
        p.pid,
        report_form(prog, reason)
    );
    note_lines(prog, p, &mut text);
    Some(text)
}

/// Operand values in a crash's context are cut at this many bytes.
const OPERAND_CUT: usize = 200;
/// A deadlock report shows this many of a waiting process's messages at most.
const DEADLOCK_MESSAGES: usize = 3;
/// A crash's backtrace shows this many frames at most.
const BACKTRACE_FRAMES: usize = 10;

/// The context of a crash raised at instruction `pc` of `p`, on indented lines: the
/// instruction as written, the values of the registers it reads (cut at [`OPERAND_CUT`]
/// bytes), and the backtrace: the function it ran in and the calls that led there, innermost
/// first, as `module:label (file:line)`.
fn crash_context(prog: &Program, p: &Process, pc: u32, out: &mut String) {
    use crate::isa::{Operand, SrcKind};
    use std::fmt::Write as _;
    let Some(instr) = prog.code.get(pc as usize) else {
        return;
    };
    let m = prog.module.module();
    let mut read: Vec<u8> = Vec::new();
    let src_text = |s: crate::isa::Src, read: &mut Vec<u8>| match s.kind() {
        SrcKind::Reg(r) => {
            read.push(r);
            format!("r{r}")
        }
        SrcKind::Const(k) => crate::term::format_cut(
            prog.consts[k as usize],
            &|a| prog.atoms.name(a),
            &|f| prog.fun_name(f),
            OPERAND_CUT,
        ),
        SrcKind::Template(k) => {
            let node = &m.templates[k as usize];
            node.walk(&mut |n| {
                if let crate::bytecode::Node::Reg(r) = n {
                    read.push(*r);
                }
            });
            "(a template)".to_string()
        }
    };
    let mut parts: Vec<String> = Vec::new();
    for op in instr.operands() {
        parts.push(match op {
            Operand::Reg(r) => format!("r{}", r.0),
            Operand::Src(s) => src_text(s, &mut read),
            Operand::Label(l) => prog.module.function_name(l.0),
            Operand::Pattern(_) => "(a pattern)".to_string(),
            // A `receive`'s timeout is an operand too (a bad one is what it crashes on).
            Operand::Clauses(t) => match &m.clauses[t.0 as usize].after {
                Some(a) => format!("after {}", src_text(a.timeout, &mut read)),
                None => continue,
            },
            Operand::Args(a) => {
                let args: Vec<String> = m.args[a.0 as usize]
                    .iter()
                    .map(|s| src_text(*s, &mut read))
                    .collect();
                if args.is_empty() {
                    continue;
                }
                args.join(", ")
            }
        });
    }
    let _ = write!(out, "\n    {}", instr.opcode().mnemonic());
    if !parts.is_empty() {
        let _ = write!(out, " {}", parts.join(", "));
    }
    read.sort_unstable();
    read.dedup();
    for r in read {
        let v = p.regs.get(r as usize).copied().unwrap_or(Term::NIL);
        let text = crate::term::format_cut(
            v,
            &|a| prog.atoms.name(a),
            &|f| prog.fun_name(f),
            OPERAND_CUT,
        );
        let _ = write!(out, "\n    r{r} = {text}");
    }
    let frame = |pc: u32| {
        format!(
            "{} ({})",
            prog.module.function_name(pc),
            prog.module.location(pc)
        )
    };
    let _ = write!(out, "\n    in {}", frame(pc));
    // Return addresses, innermost last: the call is the instruction before each.
    let calls = p.frames.iter().rev().filter(|&&r| r > 0);
    for (i, &ret) in calls.enumerate() {
        if i == BACKTRACE_FRAMES {
            let _ = write!(out, "\n    ... {} more", p.frames.len() - i);
            break;
        }
        let _ = write!(out, "\n    called from {}", frame(ret - 1));
    }
}

/// How a run ends when `what` (standard output, standard error, the trace) cannot be written:
/// quietly with 141 for a closed pipe, as a shell reports SIGPIPE; else 1 with a message.
fn output_failure(what: &str, e: &io::Error) -> RunEnd {
    if e.kind() == io::ErrorKind::BrokenPipe && what != "trace" {
        RunEnd::OutputFailed {
            status: 141,
            message: None,
        }
    } else {
        RunEnd::OutputFailed {
            status: 1,
            message: Some(format!("ember: error: cannot write {what}: {e}")),
        }
    }
}

/// The bytes `p` counts for in the VM's total (`--max-memory`): what counts against its own
/// `--max-heap`, its links and monitors, and the process itself.
#[inline]
pub(crate) fn footprint(p: &Process) -> usize {
    p.memory() + PROCESS_OVERHEAD + p.relations_bytes()
}

/// The VM's total `memory` with `p`'s share brought up to date for what counts against its
/// `--max-heap` (`mine`, [`Process::memory`]), but not for its links and monitors: they count
/// as of its last accounting, at the end of its last slice (this runs at every slice and send).
#[inline]
fn total_with(memory: usize, p: &Process, mine: usize) -> usize {
    memory.saturating_sub(p.accounted) + mine + PROCESS_OVERHEAD
}

/// Bytes the VM, whose total is `memory`, may still grow by under `--max-memory` before `p`
/// passes it, with `p`'s links and monitors as of its last accounting (cheap enough for every
/// `monitor`: a process taking monitors without end passes the limit by one slice's at most).
#[inline]
pub(crate) fn memory_room(config: &Config, memory: usize, p: &Process) -> usize {
    let now = total_with(memory, p, p.memory());
    config.max_memory_bytes.saturating_sub(now.max(memory))
}

/// Brings `p`'s share of the VM's memory up to date: its share before and now.
#[inline]
fn restate(p: &mut Process) -> (usize, usize) {
    let before = p.accounted;
    p.accounted = footprint(p);
    (before, p.accounted)
}

/// Brings `p`'s share of the VM's `memory` up to date.
#[inline]
fn account(memory: &mut usize, p: &mut Process) {
    let (before, now) = restate(p);
    *memory = *memory - before + now;
}

/// Bytes `p` may still grow by before it passes `--max-heap` or, with the VM's `memory`,
/// `--max-memory`.
#[inline]
fn room_of(config: &Config, memory: usize, p: &Process) -> usize {
    let mine = p.memory();
    let own = config.max_heap_bytes.saturating_sub(mine);
    let global = config
        .max_memory_bytes
        .saturating_sub(total_with(memory, p, mine));
    own.min(global)
}

/// Words a message to `p` may take: its room, less the mailbox slot the message takes.
#[inline]
fn delivery_room(config: &Config, memory: usize, p: &Process) -> usize {
    room_of(config, memory, p).saturating_sub(MAILBOX_SLOT_BYTES) / 8
}

/// What an exit signal did to the process that received it, for the trace.
pub(crate) fn exit_action(kill: bool, trapped: bool, exits: bool) -> &'static str {
    if kill {
        "killed"
    } else if trapped {
        "trapped"
    } else if exits {
        "exits"
    } else {
        "ignored"
    }
}

/// What a slice did, for the trace and stats.
pub(crate) fn outcome_name(o: &Outcome) -> &'static str {
    match o {
        Outcome::Yield => "yield",
        Outcome::Wait => "wait",
        Outcome::Exit { .. } | Outcome::Halt(_) => "exit",
    }
}

impl Vm {
    pub fn new(
        prog: Program,
        config: Config,
        out: Box<dyn Write + Send>,
        err: Box<dyn Write + Send>,
    ) -> Vm {
        Vm::with_program(Arc::new(prog), config, out, err)
    }

    /// [`Vm::new`] for a program already shared (`ember check` runs one program many times).
    pub fn with_program(
        prog: Arc<Program>,
        config: Config,
        out: Box<dyn Write + Send>,
        err: Box<dyn Write + Send>,
    ) -> Vm {
        let seed = config.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
        Vm {
            prog,
            explorer: None,
            steps: 0,
            deviations: Vec::new(),
            nows_recorded: None,
            nows_replayed: None,
            procs: ProcTable::new(),
            alive: 0,
            next_pid: 0,
            queue: VecDeque::new(),
            registry: HashMap::new(),
            timers: BTreeMap::new(),
            timer_seq: 0,
            clock: if config.virtual_time {
                Clock::Virtual(0)
            } else {
                Clock::Real(Instant::now())
            },
            refs: 0,
            seed,
            out,
            err,
            trace: None,
            config,
            main_exit: None,
            stats: Stats::default(),
            halted: None,
            main_reported: false,
            memory: 0,
            output_failure: None,
            ended: false,
            remote: Arc::default(),
            loader: None,
        }
    }

    pub fn set_trace(&mut self, out: Box<dyn Write + Send>) {
        let mut tracer = Tracer::new(out);
        if let Clock::Virtual(ms) = self.clock {
            tracer.set_virtual_now(ms);
        }
        tracer.header();
        self.trace = Some(tracer);
    }

    pub fn program(&self) -> &Program {
        &self.prog
    }

    /// The shared program, for another run of it.
    pub fn shared_program(&self) -> Arc<Program> {
        Arc::clone(&self.prog)
    }

    /// Lets `strategy` decide every step of the run (see [`crate::explore`]): which runnable
    /// process runs, how long its slice is, and when a timeout fires early. One scheduler and
    /// virtual time: the VM is set up so.
    pub fn explore(&mut self, strategy: Box<dyn Strategy>) {
        self.config.schedulers = 1;
        self.config.virtual_time = true;
        self.clock = Clock::Virtual(0);
        self.explorer = Some(strategy);
    }

    /// Records the run's schedule ([`Vm::schedule`]) as it runs, on the clock it was set up
    /// with: under real time every timeout that fires is a decision of the schedule, so that a
    /// run seen once in real time replays on virtual time in the same order; and what `now`
    /// read ([`Vm::recorded_nows`]). One scheduler.
    pub fn record(&mut self) {
        self.config.schedulers = 1;
        self.explorer = Some(Box::new(crate::explore::Replay::new(&Schedule::default())));
        self.nows_recorded = Some(Default::default());
    }

    /// The values the `now` instruction read in a run under [`Vm::record`].
    pub fn recorded_nows(&self) -> Vec<u64> {
        self.nows_recorded
            .as_ref()
            .map_or_else(Vec::new, |log| log.borrow().clone())
    }

    /// Makes the `now` instruction read `values` in order (what a recorded run read), then the
    /// clock.
    pub fn replay_nows(&mut self, values: Vec<u64>) {
        self.nows_replayed = Some((values, std::cell::Cell::new(0)));
    }

    /// The decisions of this run that differ from the default (under [`Vm::explore`]): the
    /// schedule that replays it.
    pub fn schedule(&self) -> Schedule {
        Schedule(self.deviations.clone())
    }

    /// Steps (slices) taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The next slice as the explorer decides it: the process and its budget; None when
    /// nothing can run and no timeout is pending.
    fn explore_next(&mut self, budget: u32) -> Option<(u32, u32)> {
        loop {
            let procs = &self.procs;
            self.queue.retain(|&q| procs.contains(q));
            let runnable: Vec<u32> = self.queue.iter().copied().collect();
            let timer = !self.timers.is_empty();
            if runnable.is_empty() && !timer {
                return None;
            }
            if runnable.is_empty() && matches!(self.clock, Clock::Real(_)) {
                // Real time (a recording): wait for the timeout; its firing is recorded.
                if !self.idle() {
                    return None;
                }
                continue;
            }
            let step = self.steps;
            let reads_local = self.explorer.as_ref().is_some_and(|e| e.reads_local());
            let local: Vec<bool> = runnable
                .iter()
                .map(|&pid| {
                    reads_local
                        && self.procs.get(pid).is_some_and(|p| {
                            p.work_left > 0
                                || self.prog.code.get(p.pc as usize).is_some_and(|i| {
                                    crate::explore::is_local(i.opcode())
                                        || (i.opcode() == crate::isa::Opcode::Ret
                                            && !p.frames.is_empty())
                                })
                        })
                })
                .collect();
            let at = Point {
                step,
                runnable: &runnable,
                local: &local,
                timer,
                budget,
            };
            let explorer = self.explorer.as_mut()?;
            match explorer.decide(&at) {
                Decision::Fire if timer => {
                    if !runnable.is_empty() {
                        self.deviations.push(Deviation {
                            step,
                            choice: Choice::Fire,
                        });
                    }
                    self.fire_earliest();
                }
                Decision::Run { index, budget: b } if !runnable.is_empty() => {
                    let index = index.min(runnable.len() - 1);
                    let b = b.max(1);
                    let pid = runnable[index];
                    self.queue.remove(index);
                    if index != 0 || b != budget {
                        self.deviations.push(Deviation {
                            step,
                            choice: Choice::Run {
                                pid: (index != 0).then_some(pid),
                                budget: (b != budget).then_some(b),
                            },
                        });
                    }
                    self.steps += 1;
                    return Some((pid, b));
                }
                // A decision that cannot be taken: the default.
                _ if runnable.is_empty() => self.fire_earliest(),
                _ => {
                    self.queue.pop_front();
                    self.steps += 1;
                    return Some((runnable[0], budget));
                }
            }
        }
    }

    /// Fires the earliest pending timeout now; under virtual time the clock moves to its
    /// deadline if that is later.
    fn fire_earliest(&mut self) {
        let Some((&(deadline, seq), &pid)) = self.timers.first_key_value() else {
            return;
        };
        if let Clock::Virtual(ms) = &mut self.clock {
            *ms = (*ms).max(deadline);
            if let Some(t) = self.trace.as_mut() {
                t.set_virtual_now(*ms);
            }
        }
        self.timers.remove(&(deadline, seq));
        self.fire(pid);
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
        // The same spawn as the instruction's, with no parent: the arguments are built in a
        // scratch heap and copied like any spawn arguments.
        let mut scratch = Heap::new();
        let items: Vec<Term> = args.iter().map(|a| scratch.binary(a.as_bytes())).collect();
        let list = scratch.list_from(&items, Term::NIL);
        self.spawn_process(None, pc.0, false, &[list], scratch.used_words())
            .map_err(|e| {
                format!(
                    "error: the first process cannot be spawned: {}",
                    self.format(e.reason)
                )
            })
    }

    /// The pid for a new process, if the limits allow one (spec §10): otherwise the spawner
    /// crashes with the reason returned.
    fn new_pid(&mut self) -> Result<u32, Term> {
        let system_limit = Term::atom(atom::SYSTEM_LIMIT);
        if self.alive >= self.config.max_processes
            || self.next_pid > MAX_PID
            || self.memory.saturating_add(PROCESS_OVERHEAD) > self.config.max_memory_bytes
        {
            return Err(system_limit);
        }
        let pid = self.next_pid as u32;
        self.next_pid += 1;
        Ok(pid)
    }

    /// Adds a new process (its pid from [`Vm::new_pid`]) to the table and the run queue.
    fn add_process(&mut self, mut p: Box<Process>) {
        let pid = p.pid;
        p.queued = true;
        self.alive += 1;
        self.stats.peak_processes = self.stats.peak_processes.max(self.alive);
        self.stats.spawns += 1;
        self.account(&mut p);
        self.procs.insert(p);
        self.queue.push_back(pid);
    }

    /// Brings `p`'s share of [`Vm::memory`] up to date.
    pub(crate) fn account(&mut self, p: &mut Process) {
        account(&mut self.memory, p);
    }

    /// Bytes `p` may still grow by before it passes `--max-heap` or the VM's `--max-memory`.
    pub(crate) fn room(&self, p: &Process) -> usize {
        room_of(&self.config, self.memory, p)
    }

    /// Whether `p` holds more than `--max-heap`, or the VM more than `--max-memory`.
    pub(crate) fn over_limit(&self, p: &Process) -> bool {
        let mine = p.memory();
        mine > self.config.max_heap_bytes
            || total_with(self.memory, p, mine) > self.config.max_memory_bytes
    }

    /// Milliseconds since the VM started (virtual under `--virtual-time`); never more than
    /// `i64::MAX`.
    pub fn now_ms(&self) -> u64 {
        match &self.clock {
            Clock::Real(start) => (start.elapsed().as_millis() as u64).min(CLOCK_MAX),
            Clock::Virtual(ms) => *ms,
        }
    }

    /// The printed form of `t` for a report, cut at [`REPORT_CUT`] bytes (spec §10).
    pub(crate) fn format(&self, t: Term) -> String {
        report_form(&self.prog, t)
    }

    /// Trace events that print a term: the term is formatted only when tracing is on.
    #[inline]
    pub(crate) fn trace_receive(&mut self, pid: u32, msg: Term, seq: u64) {
        if self.trace.is_some() {
            let text = self.format(msg);
            if let Some(t) = self.trace.as_mut() {
                t.receive(pid, &text, &format!("{pid}.{seq}"));
            }
        }
    }

    /// Writes a line of `print` to standard output; a failure ends the run (spec §10).
    pub(crate) fn print(&mut self, bytes: &[u8]) -> bool {
        match self.out.write_all(bytes) {
            Ok(()) => true,
            Err(e) => {
                self.output_failed("standard output", &e);
                false
            }
        }
    }

    /// Writes a line to standard error; a failure ends the run.
    fn write_err(&mut self, line: &str) {
        // Standard output first, so that what was printed before the report comes before it.
        self.flush_out();
        if let Err(e) = writeln!(self.err, "{line}").and_then(|()| self.err.flush()) {
            self.output_failed("standard error", &e);
        }
    }

    fn flush_out(&mut self) {
        if let Err(e) = self.out.flush() {
            self.output_failed("standard output", &e);
        }
    }

    /// Records the first output failure; the run ends at the next scheduling point.
    fn output_failed(&mut self, what: &str, e: &io::Error) {
        if self.output_failure.is_some() {
            return;
        }
        self.output_failure = Some(output_failure(what, e));
    }

    // ---- effects: what the interpreter asks of the runtime ----
    //
    // Each takes the running process (checked out of the table) and returns what the
    // instruction needs; an exit the running process must take comes back as `Err(Exit)`.

    /// `send`: copies `msg` (a term of `p`'s heap, or a template built from its registers)
    /// into the mailbox of `to` (a pid or a registered name).
    #[inline(always)]
    pub(crate) fn send_msg(&mut self, p: &mut Process, to: Term, msg: Outgoing<'_>) -> Effect {
        let target = if let Some(pid) = to.as_pid() {
            pid
        } else if let Some(pid) = to.as_atom().and_then(|name| self.registry.get(&name)) {
            *pid
        } else {
            return Err(Exit::raised(atom::BADARG));
        };
        self.stats.messages_sent += 1;
        let src_words = p.heap.used_words();
        // A template sent to another process is built straight in the receiver's heap: the
        // copy-on-send without a first copy in the sender's. (With tracing on, the message is
        // built first, so the send event can show it.)
        if let Outgoing::Template(t, image) = msg {
            if target != p.pid && self.trace.is_none() {
                let regs = &p.regs;
                let delivered = self.try_deliver(target, &mut p.peer_at, |heap, lits, room| {
                    t.build_into(regs, image, heap, lits, src_words, room)
                });
                if delivered {
                    return Ok(());
                }
                let mut cur = Running::new(p);
                self.kill_raised(&mut cur, target, Term::atom(atom::HEAP_LIMIT));
                return cur.result();
            }
        }
        let v = match msg {
            Outgoing::Term(v) => v,
            Outgoing::Template(t, image) => t.build_from(image, &p.regs, &mut p.heap),
        };
        // Traced after delivery, naming the message as the receive will: receiver and arrival
        // number.
        let text = self.trace.is_some().then(|| self.format(v));
        let from = p.pid;
        let mut cur = Running::new(p);
        let before = self.newest_seq(&cur, target);
        self.deliver(&mut cur, target, v);
        if let Some(text) = text {
            let after = self.newest_seq(&cur, target);
            let id = (after != before)
                .then_some(after)
                .flatten()
                .map(|seq| format!("{target}.{seq}"));
            if let Some(t) = self.trace.as_mut() {
                t.send(from, target, &text, id.as_deref());
            }
        }
        cur.result()
    }

    /// `send` of a template with image `image` (of the registers `regs`) from process `from`,
    /// when that is all `send_msg` would do: `to` another process's pid, no trace, the
    /// registers the image reads immediates or literals, and room for it in the receiver as it
    /// is. False, with nothing done, for anything else: the caller runs `send_msg`.
    pub(crate) fn send_image(
        &mut self,
        from: u32,
        peer_at: &mut PeerHint,
        to: Term,
        image: &crate::heap::Image,
        regs: &[Term],
    ) -> bool {
        let Some(target) = to.as_pid() else {
            return false;
        };
        if target == from || self.trace.is_some() {
            return false;
        }
        if !image.reads_only_shared(regs, &self.prog.literals) {
            return false;
        }
        if let Some(p) = self.procs.get(target) {
            // What `build_into` checks: it fits, so `try_deliver` builds it at once.
            if image.bytes() > delivery_room(&self.config, self.memory, p).saturating_mul(8) {
                return false;
            }
        }
        self.stats.messages_sent += 1;
        let delivered = self.try_deliver(target, peer_at, |heap, _, _| {
            Ok(heap.build_image(image, regs))
        });
        debug_assert!(delivered, "checked to fit");
        true
    }

    /// The arrival number of `to`'s newest message (`to` may be the running process).
    fn newest_seq(&self, cur: &Running<'_>, to: u32) -> Option<u64> {
        match cur.proc.as_deref().filter(|p| p.pid == to) {
            Some(p) => p.mailbox.newest_seq(),
            None => self.procs.get(to).and_then(|p| p.mailbox.newest_seq()),
        }
    }

    /// `spawn`/`spawn_link` (and pid 0, with no parent): a new process at `at` whose registers
    /// r0, r1, ... are copies of `args` (terms of a heap of `src_words` words), queued at the
    /// back. The spawner pays for what does not fit (spec §10).
    pub(crate) fn spawn_process(
        &mut self,
        parent: Option<&mut Process>,
        at: u32,
        link: bool,
        args: &[Term],
        src_words: usize,
    ) -> Effect<u32> {
        let pid = self.new_pid().map_err(|reason| Exit {
            reason,
            raised: true,
        })?;
        // At least as many registers as arguments: they land in r0, r1, ...
        let nregs = self.prog.registers_at(at).max(args.len());
        let mut c = Box::new(Process::new(pid, at, nregs));
        c.seed_rand(self.seed);
        let room = self.room(&c) / 8;
        for (i, &v) in args.iter().enumerate() {
            let left = room.saturating_sub(c.heap.used_words());
            c.regs[i] = c
                .heap
                .copy_into(v, &self.prog.literals, src_words, left)
                .map_err(|TooBig| Exit::raised(atom::HEAP_LIMIT))?;
        }
        let parent = parent.map(|p| {
            if link {
                c.relations().links.insert(p.pid);
                p.relations().links.insert(pid);
            }
            p.pid
        });
        self.add_process(c);
        if let (Some(t), Some(parent)) = (self.trace.as_mut(), parent) {
            t.spawn(parent, pid, link);
        }
        Ok(pid)
    }

    /// `link`: both ends at once; to a dead pid, exit signal `:noproc` (raised by the VM).
    pub(crate) fn link_pids(&mut self, p: &mut Process, other: u32) -> Effect {
        if other == p.pid {
            return Ok(());
        }
        if self.procs.contains(other) && !p.linked_to(other) {
            // A link is an entry in both processes: it counts against `--max-memory`, as a
            // monitor does (without it, processes linking to all the others grow the VM
            // quadratically).
            if memory_room(&self.config, self.memory, p) < 2 * LINK_BYTES {
                return Err(Exit::raised(atom::HEAP_LIMIT));
            }
        }
        if let Some(o) = self.procs.get_mut(other) {
            if !p.linked_to(other) {
                p.relations().links.insert(other);
                o.relations().links.insert(p.pid);
            }
            return Ok(());
        }
        let (me, src_words) = (p.pid, p.heap.used_words());
        let mut cur = Running::new(p);
        self.exit_signal(
            &mut cur,
            other,
            me,
            Term::atom(atom::NOPROC),
            true,
            src_words,
        );
        cur.result().map_err(|e| Exit { raised: true, ..e })
    }

    /// `unlink`: both ends.
    pub(crate) fn unlink_pids(&mut self, p: &mut Process, other: u32) {
        p.unlink_from(other);
        if let Some(o) = self.procs.get_mut(other) {
            o.unlink_from(p.pid);
        }
    }

    /// `monitor` of a pid or a registered name: the new reference. A monitor taken by name
    /// names the name in its `:DOWN` (spec §8); of a dead or unknown target, the `:DOWN`
    /// (reason `:noproc`) comes at once.
    pub(crate) fn monitor_target(&mut self, p: &mut Process, target: Term) -> Effect<u64> {
        let watched = if let Some(pid) = target.as_pid() {
            Some(pid)
        } else if let Some(name) = target.as_atom() {
            self.registry.get(&name).copied()
        } else {
            return Err(Exit::raised(atom::BADARG));
        };
        // A monitor is an entry in both processes (spec §10: it counts against
        // `--max-memory`; one that would pass it crashes the monitoring process).
        if watched.is_some() && memory_room(&self.config, self.memory, p) < 2 * MONITOR_BYTES {
            return Err(Exit::raised(atom::HEAP_LIMIT));
        }
        let r = self.make_ref(p);
        let me = p.pid;
        match watched {
            Some(w) if w == me => {
                let rel = p.relations();
                rel.monitors.insert(r, w);
                rel.watchers.insert(r, (me, target));
            }
            Some(w) if self.procs.contains(w) => {
                p.relations().monitors.insert(r, w);
                if let Some(o) = self.procs.get_mut(w) {
                    o.relations().watchers.insert(r, (me, target));
                    // (It may not run again: its share is brought up to date now.)
                    account(&mut self.memory, o);
                }
            }
            _ => {
                let msg = p.heap.down_message(r, target, Term::atom(atom::NOPROC));
                p.deliver(msg);
            }
        }
        Ok(r)
    }

    /// `demonitor`: removes the monitor, or flushes its `:DOWN` if it already fired.
    pub(crate) fn demonitor_ref(&mut self, p: &mut Process, r: u64) {
        if let Some(target) = p.drop_monitor(r) {
            // Still active: its `:DOWN` was not sent, so there is nothing to flush.
            if target == p.pid {
                p.drop_watcher(r);
            } else if let Some(t) = self.procs.get_mut(target) {
                // (Its share is brought up to date when it next runs, or exits.)
                t.drop_watcher(r);
            }
        } else {
            p.flush_down(r);
        }
    }

    /// `exit p, reason` (Erlang's `exit/2`).
    pub(crate) fn exit_to(&mut self, p: &mut Process, to: u32, reason: Term) -> Effect {
        let (me, src_words) = (p.pid, p.heap.used_words());
        let mut cur = Running::new(p);
        self.exit_signal(&mut cur, me, to, reason, false, src_words);
        cur.result()
    }

    /// `register name, pid`: `:badarg` for a taken name, a dead pid, or a process that already
    /// has a name.
    pub(crate) fn register_name(&mut self, p: &mut Process, name: u32, pid: u32) -> Effect {
        if name == atom::UNDEFINED || self.registry.contains_key(&name) {
            return Err(Exit::raised(atom::BADARG));
        }
        let target = if pid == p.pid {
            Some(p)
        } else {
            self.procs.get_mut(pid)
        };
        match target {
            Some(t) if t.name.is_none() => {
                t.name = Some(name);
                self.registry.insert(name, pid);
                Ok(())
            }
            _ => Err(Exit::raised(atom::BADARG)),
        }
    }

    /// `unregister name`: `:badarg` if the name is not registered.
    pub(crate) fn unregister_name(&mut self, p: &mut Process, name: u32) -> Effect {
        let pid = self
            .registry
            .remove(&name)
            .ok_or(Exit::raised(atom::BADARG))?;
        if pid == p.pid {
            p.name = None;
        } else if let Some(t) = self.procs.get_mut(pid) {
            t.name = None;
        }
        Ok(())
    }

    /// `whereis name`.
    pub(crate) fn whereis_atom(&self, name: u32) -> Option<u32> {
        self.registry.get(&name).copied()
    }

    /// `make_ref`: a fresh reference; `p`'s mailbox notes it (see `Mailbox::mark_ref`).
    pub(crate) fn make_ref(&mut self, p: &mut Process) -> u64 {
        self.refs += 1;
        p.mailbox.mark_ref(self.refs);
        self.refs
    }

    /// A receive took `msg`: its timer is disarmed.
    #[inline(always)]
    pub(crate) fn received(&mut self, p: &mut Process, msg: Term, seq: u64) {
        self.cancel_timer(p);
        self.stats.messages_received += 1;
        self.trace_receive(p.pid, msg, seq);
    }

    /// Collects `p`'s heap now; `roots` are terms the instruction holds (updated in place).
    pub(crate) fn collect(&mut self, p: &mut Process, roots: &mut [Term]) {
        let t0 = Instant::now();
        let before = p.heap.used_bytes();
        let majors = p.heap.major_collections();
        p.collect(&self.prog.literals, roots);
        let took = t0.elapsed();
        self.stats.gc_runs += 1;
        self.stats.gc_major_runs += p.heap.major_collections() - majors;
        self.stats.gc_nanos += took.as_nanos() as u64;
        if let Some(t) = self.trace.as_mut().filter(|t| t.gc) {
            t.gc(p.pid, before, p.heap.used_bytes(), took.as_micros() as u64);
        }
    }

    /// `--trace-gc`: collections are trace events too (off by default, so that runs that
    /// collect at different times, as under `gc-stress`, write the same trace).
    pub fn set_trace_gc(&mut self, on: bool) {
        if let Some(t) = self.trace.as_mut() {
            t.gc = on;
        }
    }

    /// Deepest call nesting and largest push stack (`--max-stack` has no flag: fixed).
    pub(crate) fn max_stack(&self) -> usize {
        self.config.max_stack
    }

    // ---- delivery and exits, inside the runtime ----

    /// The process `pid`: the running one or one in the table.
    fn proc_mut<'a>(&'a mut self, cur: &'a mut Running<'_>, pid: u32) -> Option<&'a mut Process> {
        match cur.proc.as_deref_mut() {
            Some(p) if p.pid == pid => Some(p),
            _ => self.procs.get_mut(pid),
        }
    }

    /// Puts a waiting process back in the run queue.
    fn wake(&mut self, pid: u32) {
        if let Some(p) = self.procs.get_mut(pid) {
            if p.status == Status::Waiting && !p.queued {
                p.status = Status::Runnable;
                p.queued = true;
                self.queue.push_back(pid);
            }
        }
    }

    /// Copies `msg` (a term of the running process's heap) into `to`'s mailbox and wakes it.
    fn deliver(&mut self, cur: &mut Running<'_>, to: u32, msg: Term) {
        let max_heap = self.config.max_heap_bytes;
        if let Some(p) = cur.proc.as_deref_mut().filter(|p| p.pid == to) {
            p.deliver(msg);
            if p.memory() > max_heap {
                cur.raise(Exit::raised(atom::HEAP_LIMIT));
            }
            return;
        }
        let src_words = cur.proc.as_ref().map_or(0, |p| p.heap.used_words());
        self.deliver_built(cur, to, |heap, lits, room| {
            heap.copy_into(msg, lits, src_words, room)
        });
    }

    /// Delivers to `to` a message that `build` makes in its heap within `room` words; the
    /// running process builds in its own heap. What does not fit crashes the receiver
    /// `:heap_limit` and is dropped (spec §10).
    fn deliver_built(
        &mut self,
        cur: &mut Running<'_>,
        to: u32,
        mut build: impl FnMut(&mut Heap, &Literals, usize) -> Result<Term, TooBig>,
    ) {
        if let Some(p) = cur.proc.as_deref_mut().filter(|p| p.pid == to) {
            let room = room_of(&self.config, self.memory, p) / 8;
            match build(&mut p.heap, &self.prog.literals, room) {
                Ok(msg) => p.deliver(msg),
                Err(TooBig) => cur.raise(Exit::raised(atom::HEAP_LIMIT)),
            }
            return;
        }
        let mut peer_at = PeerHint::default();
        let peer_at = match cur.proc.as_deref_mut() {
            Some(p) => &mut p.peer_at,
            None => &mut peer_at,
        };
        if !self.try_deliver(to, peer_at, build) {
            self.kill_raised(cur, to, Term::atom(atom::HEAP_LIMIT));
        }
    }

    /// Delivers to `to`, a process in the table (not the running one), a message that `build`
    /// makes in its heap within `room` words. When it does not fit, the receiver's garbage is
    /// collected and the message built again; false when it still does not fit, and the
    /// caller must end the receiver with [`Vm::kill_raised`]. True for a dead `to`: the message
    /// is dropped silently.
    ///
    /// `peer_at` (the sender's) gets the receiver's address; a receiver this wakes has its own
    /// last receiver prefetched, which at 10,000 processes in a ring is what keeps its next
    /// send from missing the cache on every line it touches (see [`Process`]).
    fn try_deliver(
        &mut self,
        to: u32,
        peer_at: &mut PeerHint,
        mut build: impl FnMut(&mut Heap, &Literals, usize) -> Result<Term, TooBig>,
    ) -> bool {
        let lits = &self.prog.literals;
        let Some(p) = self.procs.get_mut(to) else {
            return true;
        };
        let mut delivered = false;
        for attempt in 0..2 {
            let room = delivery_room(&self.config, self.memory, p);
            match build(&mut p.heap, lits, room) {
                Ok(msg) => {
                    p.deliver(msg);
                    peer_at.record(p);
                    delivered = true;
                    if p.heap.used_bytes() > self.config.max_heap_bytes {
                        // A copy that began as a tree and turned out to be a DAG left garbage.
                        p.collect(lits, &mut []);
                    }
                    break;
                }
                Err(TooBig) if attempt == 0 => {
                    let t0 = Instant::now();
                    let majors = p.heap.major_collections();
                    p.collect(lits, &mut []);
                    self.stats.gc_runs += 1;
                    self.stats.gc_major_runs += p.heap.major_collections() - majors;
                    self.stats.gc_nanos += t0.elapsed().as_nanos() as u64;
                }
                Err(TooBig) => {}
            }
        }
        // (The receiver's share of the VM's memory is brought up to date when it next runs,
        // which a delivery makes sure of; its own limit was checked against what it holds.)
        if delivered && p.status == Status::Waiting && !p.queued {
            p.status = Status::Runnable;
            p.queued = true;
            self.queue.push_back(to);
            p.peer_at.prefetch();
            prefetch::<2>(p.regs.as_ptr().addr());
            prefetch::<HOT_LINES>((&raw const *p).addr());
        }
        delivered
    }

    /// Ends process `pid` with a VM-raised immediate `reason`, reported on stderr.
    fn kill_raised(&mut self, cur: &mut Running<'_>, pid: u32, reason: Term) {
        if cur.is(pid) {
            cur.raise(Exit {
                reason,
                raised: true,
            });
            return;
        }
        let Some(p) = self.procs.remove(pid) else {
            return;
        };
        self.report_crash(&p, reason, p.pc);
        let mut scratch = Heap::new();
        let mut dying = Dyings::new();
        dying.push(Dying { proc: p, reason });
        self.cascade(cur, dying, &mut scratch);
    }

    /// `error in process <0.N>: REASON at FILE:LINE` (spec §5).
    fn report_crash(&mut self, p: &Process, reason: Term, pc: u32) {
        self.stats.crashes += 1;
        let line = crash_line(&self.prog, p, reason, pc);
        self.write_err(&line);
        if p.pid == 0 {
            // Already reported: the end of the run need not repeat it.
            self.main_reported = true;
        }
    }

    /// Sends exit signal `reason` (a term of a heap of `src_words` words) from `from` to `to`,
    /// by the rules of spec §5. `via_link` marks signals that come from a link (never
    /// untrappable, whatever the reason).
    fn exit_signal(
        &mut self,
        cur: &mut Running<'_>,
        from: u32,
        to: u32,
        reason: Term,
        via_link: bool,
        src_words: usize,
    ) {
        let mut scratch = Heap::new();
        let reason = self.copy_to_scratch(&mut scratch, reason, src_words);
        let mut dying = Dyings::new();
        self.signal(cur, from, to, reason, via_link, &mut dying, &mut scratch);
        self.cascade(cur, dying, &mut scratch);
    }

    /// A copy of `t` (from a heap of `src_words` words) in a cascade's scratch heap. The copy
    /// is never larger than its source (shared objects stay shared), so it needs no limit.
    fn copy_to_scratch(&self, scratch: &mut Heap, t: Term, src_words: usize) -> Term {
        scratch
            .copy_into(t, &self.prog.literals, src_words, usize::MAX)
            .unwrap_or(Term::NIL)
    }

    /// Applies one exit signal (its reason a term of `scratch`); a process it kills is taken
    /// out of the table into `dying`.
    #[allow(clippy::too_many_arguments)]
    fn signal(
        &mut self,
        cur: &mut Running<'_>,
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
        let src_words = scratch.used_words();
        let new_reason = if kill {
            Some(Term::atom(atom::KILLED))
        } else if trap {
            self.deliver_built(cur, to, |heap, lits, room| {
                // The tuple's 4 words, then the reason in what is left.
                let room = room.checked_sub(4).ok_or(TooBig)?;
                let r = heap.copy_into(reason, lits, src_words, room)?;
                Ok(heap.tuple(&[Term::atom(atom::EXIT), Term::pid(from), r]))
            });
            None
        } else if reason.as_atom() == Some(atom::NORMAL) && (via_link || to != from) {
            // `:normal` is ignored, except `exit self, :normal`, which ends the caller. A
            // signal still reaches the process: a waiting one is queued (spec §5), handles it,
            // and waits again.
            if !cur.is(to) {
                self.wake(to);
            }
            None
        } else {
            Some(reason)
        };
        if self.trace.is_some() {
            let action = exit_action(kill, trap, new_reason.is_some());
            let text = self.format(reason);
            if let Some(t) = self.trace.as_mut() {
                t.exit_signal_received(to, from, &text, via_link, action);
            }
        }
        let Some(r) = new_reason else {
            return;
        };
        if let Some(p) = cur.proc.as_deref_mut().filter(|p| p.pid == to) {
            if cur.exit.is_none() {
                let room = room_of(&self.config, self.memory, p) / 8;
                let exit = match p.heap.copy_into(r, &self.prog.literals, src_words, room) {
                    Ok(reason) => Exit {
                        reason,
                        raised: false,
                    },
                    Err(TooBig) => Exit::raised(atom::HEAP_LIMIT),
                };
                cur.raise(exit);
            }
        } else if let Some(p) = self.procs.remove(to) {
            dying.push(Dying { proc: p, reason: r });
        }
    }

    /// Ends the running process (taken out of the table by the caller) with `reason`.
    fn exit_running(&mut self, p: Box<Process>, reason: Term, raised_at: Option<u32>) {
        if let Some(pc) = raised_at {
            self.report_crash(&p, reason, pc);
        } else if self.config.quiet_reports {
        } else if let Some(report) = noted_exit_report(&self.prog, &p, reason) {
            self.write_err(&report);
            if p.pid == 0 {
                self.main_reported = true;
            }
        }
        let mut scratch = Heap::new();
        let reason = self.copy_to_scratch(&mut scratch, reason, p.heap.used_words());
        let mut dying = Dyings::new();
        dying.push(Dying { proc: p, reason });
        // No process is running during the cascade.
        self.cascade(&mut Running::none(), dying, &mut scratch);
    }

    /// Processes exits one after another: links get exit signals, monitors get `:DOWN`.
    fn cascade(&mut self, cur: &mut Running<'_>, mut dying: Dyings, scratch: &mut Heap) {
        while let Some(Dying {
            proc: mut p,
            reason,
        }) = dying.pop()
        {
            let pid = p.pid;
            self.record_exit(&mut p, reason);
            if let Some(name) = p.name.take() {
                self.registry.remove(&name);
            }
            if p.timer != (0, 0) {
                self.timers.remove(&p.timer);
            }
            let mut rel = p.take_relations();
            // What it held is given back before its signals are built, so that its `:DOWN`s
            // and exit signals fit where it passed `--max-memory`: its own share, and what its
            // monitors held in their targets (a target that waits for good gives it back too).
            for (r, target) in rel.monitors {
                if let Some(t) = self.proc_mut(cur, target) {
                    t.drop_watcher(r);
                    let (before, now) = restate(t);
                    self.memory = self.memory - before + now;
                }
            }
            self.memory -= p.accounted;
            for link in rel.links.take() {
                if let Some(other) = self.proc_mut(cur, link) {
                    other.unlink_from(pid);
                    self.signal(cur, pid, link, reason, true, &mut dying, scratch);
                }
            }
            let src_words = scratch.used_words();
            for (r, (watcher, who)) in rel.watchers {
                let Some(w) = self.proc_mut(cur, watcher) else {
                    continue;
                };
                w.drop_monitor(r);
                self.deliver_built(cur, watcher, |heap, lits, room| {
                    // The tuple's 6 words, then the reason in what is left.
                    let room = room.checked_sub(6).ok_or(TooBig)?;
                    let reason = heap.copy_into(reason, lits, src_words, room)?;
                    Ok(heap.down_message(r, who, reason))
                });
            }
            self.alive -= 1;
        }
    }

    fn record_exit(&mut self, p: &mut Process, reason: Term) {
        if self.trace.is_some() {
            let text = self.format(reason);
            if let Some(t) = self.trace.as_mut() {
                t.exit(p.pid, &text);
            }
        }
        self.stats.exits += 1;
        self.stats.record(p.stats());
        if p.pid == 0 {
            let normal = reason.as_atom() == Some(atom::NORMAL);
            self.main_exit = Some((normal, self.format(reason)));
        }
    }

    /// Arms a receive timeout for `p` after `ms` milliseconds.
    pub(crate) fn arm_timer(&mut self, p: &mut Process, ms: u64) {
        self.timer_seq += 1;
        let deadline = self.now_ms().saturating_add(ms).min(CLOCK_MAX);
        p.timer = (deadline, self.timer_seq);
        self.timers.insert(p.timer, p.pid);
    }

    /// Disarms `p`'s receive timeout, if one is armed.
    pub(crate) fn cancel_timer(&mut self, p: &mut Process) {
        if p.timer != (0, 0) {
            self.timers.remove(&p.timer);
            p.timer = (0, 0);
        }
    }

    /// Fires every timer due at `now`, in the order their processes started waiting.
    fn fire_due(&mut self, now: u64) {
        while let Some((&(deadline, seq), &pid)) = self.timers.first_key_value() {
            if deadline > now {
                break;
            }
            self.timers.remove(&(deadline, seq));
            if self.explorer.is_some() {
                // Recording a real-time run: where the timeout fired is part of its schedule.
                self.deviations.push(Deviation {
                    step: self.steps,
                    choice: Choice::Fire,
                });
            }
            self.fire(pid);
        }
    }

    /// `pid`'s timeout fired (its timer is out of the table).
    fn fire(&mut self, pid: u32) {
        if let Some(p) = self.procs.get_mut(pid) {
            p.timer = (0, 0);
            p.timed_out = true;
            if let Some(t) = self.trace.as_mut() {
                t.timeout(pid);
            }
            self.wake(pid);
        }
    }

    /// When nothing can run: waits for (or, in virtual time, jumps to) the next timeout.
    /// Returns false when no timer is pending.
    fn idle(&mut self) -> bool {
        // Whatever was printed is shown before the VM waits (spec §10).
        self.flush_out();
        let Some((&(deadline, _), _)) = self.timers.first_key_value() else {
            return false;
        };
        match &mut self.clock {
            Clock::Virtual(ms) => {
                *ms = (*ms).max(deadline);
                if let Some(t) = self.trace.as_mut() {
                    t.set_virtual_now(*ms);
                }
            }
            Clock::Real(_) => {
                let now = self.now_ms();
                if deadline > now {
                    let wait = std::time::Duration::from_millis(deadline - now);
                    if self.remote.has_senders() {
                        // Another thread may send meanwhile: that runs first (the loop
                        // comes back here for the timer).
                        self.remote.wait(wait);
                        if self.now_ms() < deadline {
                            return true;
                        }
                    } else {
                        std::thread::sleep(wait);
                    }
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
        self.run_loop(probe, Stop::End)
            .expect("a run to the end ends")
    }

    /// Runs slices until `stop`: `Some` when the run is over (for [`Stop::End`], always),
    /// `None` when it paused (idle, or the reductions were spent).
    pub(crate) fn run_loop<P: Probe>(&mut self, probe: &mut P, stop: Stop) -> Option<RunEnd> {
        if self.ended {
            return Some(RunEnd::Halted(self.halted.unwrap_or(0)));
        }
        if self.config.schedulers > 1 {
            // N schedulers (the profiler's probe sees one scheduler only: it is not used).
            let mut paused = smp::run(self, self.config.schedulers, stop);
            // A code request stops every scheduler; it is served with the VM whole, then the
            // run goes on.
            while self
                .remote
                .code_pending
                .load(std::sync::atomic::Ordering::Acquire)
                && self.halted.is_none()
                && self.output_failure.is_none()
            {
                self.serve_code();
                paused = smp::run(self, self.config.schedulers, stop);
            }
            if let Some(n) = self.halted {
                self.finish();
                self.ended = true;
                return Some(self.output_failure.take().unwrap_or(RunEnd::Halted(n)));
            }
            if let Some(end) = self.output_failure.take() {
                self.finish();
                self.ended = true;
                return Some(end);
            }
            if paused {
                self.flush_out();
                return None;
            }
            return Some(self.end_of_run());
        }
        let mut prog = self.prog.clone();
        let budget = self.config.budget.max(1);
        let mut last = u32::MAX;
        let until = match stop {
            Stop::Reductions(n) => Some(self.stats.reductions.saturating_add(n)),
            _ => None,
        };
        loop {
            if let Some(n) = self.halted {
                self.finish();
                self.ended = true;
                return Some(self.output_failure.take().unwrap_or(RunEnd::Halted(n)));
            }
            if self
                .remote
                .pending
                .load(std::sync::atomic::Ordering::Acquire)
            {
                self.take_remote();
                prog = self.prog.clone();
            }
            if let Some(t) = self.trace.as_mut() {
                if let Some(e) = t.take_error() {
                    self.output_failed("trace", &e);
                }
            }
            // (Tested before it is taken: a take moves the whole `Option<RunEnd>` at every
            // slice.)
            if self.output_failure.is_some() {
                let end = self.output_failure.take();
                self.finish();
                self.ended = true;
                return self.output_failure.take().or(end);
            }
            if self
                .config
                .max_reductions
                .is_some_and(|max| self.stats.reductions >= max)
            {
                self.finish();
                self.ended = true;
                return Some(RunEnd::ReductionLimit);
            }
            if until.is_some_and(|u| self.stats.reductions >= u) {
                self.flush_out();
                return None;
            }
            if !self.timers.is_empty() && matches!(self.clock, Clock::Real(_)) {
                let now = self.now_ms();
                self.fire_due(now);
            }
            let (pid, budget) = if self.explorer.is_some() {
                match self.explore_next(budget) {
                    Some(next) => next,
                    None if self.output_failure.is_some() => continue,
                    None => break,
                }
            } else {
                let Some(pid) = self.queue.pop_front() else {
                    if self.take_remote() {
                        prog = self.prog.clone();
                        continue;
                    }
                    let wait = stop == Stop::End || matches!(self.clock, Clock::Virtual(_));
                    if wait && self.idle() {
                        continue;
                    }
                    if stop != Stop::End && self.output_failure.is_none() {
                        self.flush_out();
                        return None;
                    }
                    if self.output_failure.is_some() {
                        continue;
                    }
                    if self.remote.has_senders() {
                        // Nothing can run, but another thread may still send: wait for it.
                        self.flush_out();
                        self.remote.wait(std::time::Duration::from_millis(10));
                        continue;
                    }
                    break;
                };
                (pid, budget)
            };
            let Some(mut p) = self.procs.check_out(pid) else {
                continue; // killed while queued
            };
            p.queued = false;
            self.stats.slices += 1;
            if pid != last {
                self.stats.context_switches += 1;
                last = pid;
            }
            // For the trace: when the slice began and the function it began in.
            let began = self
                .trace
                .as_ref()
                .map(|t| (t.now(), prog.module.function_name(p.pc)));
            let (outcome, reds) = interp::run_slice(&prog, self, &mut p, budget, probe);
            probe.slice_end(budget - reds);
            p.reductions += reds as u64;
            self.stats.reductions += reds as u64;
            let name = outcome_name(&outcome);
            match outcome {
                Outcome::Yield => {
                    p.queued = true;
                    self.account(&mut p);
                    self.procs.put_back(p);
                    self.queue.push_back(pid);
                }
                Outcome::Wait => {
                    p.status = Status::Waiting;
                    self.account(&mut p);
                    self.procs.put_back(p);
                }
                Outcome::Exit { reason, raised_at } => {
                    self.procs.release(pid);
                    self.exit_running(p, reason, raised_at);
                }
                Outcome::Halt(n) => {
                    self.procs.put_back(p);
                    self.halted = Some(n);
                }
            }
            if self.trace.is_some() {
                let queue: Vec<u32> = self
                    .queue
                    .iter()
                    .copied()
                    .filter(|&q| self.procs.contains(q))
                    .collect();
                if let (Some(t), Some((start, label))) = (self.trace.as_mut(), began) {
                    t.slice(pid, reds as u64, name, Some(&queue), start, &label);
                }
            }
        }
        Some(self.end_of_run())
    }

    /// No process can run and no timer is pending: pid 0's exit, or a deadlock.
    fn end_of_run(&mut self) -> RunEnd {
        self.finish();
        if let Some(end) = self.output_failure.take() {
            return end;
        }
        let end = match self.main_exit.clone() {
            Some((normal, reason)) => {
                if !normal && !self.main_reported {
                    self.write_err(&format!("process <0.0> exited with reason {reason}"));
                }
                RunEnd::MainExited { normal, reason }
            }
            None => {
                self.report_deadlock();
                RunEnd::Deadlock
            }
        };
        self.output_failure.take().unwrap_or(end)
    }

    fn finish(&mut self) {
        self.flush_out();
        if let Some(t) = self.trace.as_mut() {
            t.flush();
            if let Some(e) = t.take_error() {
                self.output_failed("trace", &e);
            }
        }
        let live: Vec<_> = self.procs.values().map(|p| p.stats()).collect();
        for s in live {
            self.stats.record(s);
        }
    }

    fn report_deadlock(&mut self) {
        let mut lines = vec!["deadlock: no process can run and no timeout is pending".to_string()];
        let mut waiting: Vec<&Process> = self
            .procs
            .values()
            .filter(|p| p.status != Status::Host)
            .collect();
        waiting.sort_by_key(|p| p.pid);
        for p in waiting {
            let n = p.mailbox.len();
            lines.push(format!(
                "  <0.{}> waiting in receive at {} ({} message{} in mailbox)",
                p.pid,
                self.prog.module.location(p.pc),
                n,
                if n == 1 { "" } else { "s" }
            ));
            // None of them matched (else it would have taken it): the first few say why.
            for m in p.mailbox.iter().take(DEADLOCK_MESSAGES) {
                let text = crate::term::format_cut(
                    m,
                    &|a| self.prog.atoms.name(a),
                    &|f| self.prog.fun_name(f),
                    OPERAND_CUT,
                );
                lines.push(format!("    unmatched: {text}"));
            }
            if n > DEADLOCK_MESSAGES {
                lines.push(format!("    ... {} more", n - DEADLOCK_MESSAGES));
            }
        }
        for l in lines {
            self.write_err(&l);
        }
    }

    /// A process's figures (for tests and `ember prof`): a live one's, pid 0's after it
    /// exited, or one of the [`Stats::top`] processes.
    pub fn process_stats(&self, pid: u32) -> Option<ProcStats> {
        if let Some(p) = self.procs.get(pid) {
            return Some(p.stats());
        }
        if pid == 0 {
            if let Some(m) = &self.stats.main {
                return Some(m.clone());
            }
        }
        self.stats.top.iter().find(|s| s.pid == pid).cloned()
    }

    /// Number of processes alive now.
    pub fn live_processes(&self) -> usize {
        self.alive
    }

    /// Bytes accounted to the live processes (their heaps, stacks, mailboxes and structs).
    pub fn memory_bytes(&self) -> usize {
        self.memory
    }
}

/// One scheduler: the effects above, and signals that take effect at once.
impl Runtime for Vm {
    const DRAINS: bool = false;
    const SENDS_IMAGES: bool = true;
    #[inline]
    fn send(&mut self, p: &mut Process, to: Term, msg: Outgoing<'_>) -> Effect {
        Vm::send_msg(self, p, to, msg)
    }
    #[inline]
    fn send_image(
        &mut self,
        from: u32,
        peer_at: &mut PeerHint,
        to: Term,
        image: &crate::heap::Image,
        regs: &[Term],
    ) -> bool {
        Vm::send_image(self, from, peer_at, to, image, regs)
    }
    #[inline]
    fn spawn(
        &mut self,
        p: &mut Process,
        at: u32,
        link: bool,
        args: &[Term],
        src_words: usize,
    ) -> Effect<u32> {
        Vm::spawn_process(self, Some(p), at, link, args, src_words)
    }
    #[inline]
    fn link(&mut self, p: &mut Process, other: u32) -> Effect {
        Vm::link_pids(self, p, other)
    }
    #[inline]
    fn unlink(&mut self, p: &mut Process, other: u32) {
        Vm::unlink_pids(self, p, other)
    }
    #[inline]
    fn monitor(&mut self, p: &mut Process, target: Term) -> Effect<u64> {
        Vm::monitor_target(self, p, target)
    }
    #[inline]
    fn demonitor(&mut self, p: &mut Process, r: u64) {
        Vm::demonitor_ref(self, p, r)
    }
    #[inline]
    fn exit(&mut self, p: &mut Process, to: u32, reason: Term) -> Effect {
        Vm::exit_to(self, p, to, reason)
    }
    #[inline]
    fn register(&mut self, p: &mut Process, name: u32, pid: u32) -> Effect {
        Vm::register_name(self, p, name, pid)
    }
    #[inline]
    fn unregister(&mut self, p: &mut Process, name: u32) -> Effect {
        Vm::unregister_name(self, p, name)
    }
    #[inline]
    fn whereis(&self, name: u32) -> Option<u32> {
        Vm::whereis_atom(self, name)
    }
    #[inline]
    fn make_ref(&mut self, p: &mut Process) -> u64 {
        Vm::make_ref(self, p)
    }
    #[inline]
    fn received(&mut self, p: &mut Process, msg: Term, seq: u64) {
        Vm::received(self, p, msg, seq)
    }
    #[inline]
    fn drain(&mut self, _: &mut Process) -> Effect<bool> {
        Ok(false)
    }
    #[inline]
    fn collect(&mut self, p: &mut Process, roots: &mut [Term]) {
        Vm::collect(self, p, roots)
    }
    #[inline]
    fn tracing(&self) -> bool {
        self.trace.is_some()
    }
    fn trace_event(&mut self, event: serde_json::Value) {
        if let Some(t) = self.trace.as_mut() {
            t.event(event);
        }
    }
    #[inline]
    fn room(&self, p: &Process) -> usize {
        Vm::room(self, p)
    }
    #[inline]
    fn over_limit(&self, p: &Process) -> bool {
        Vm::over_limit(self, p)
    }
    #[inline]
    fn max_stack(&self) -> usize {
        Vm::max_stack(self)
    }
    #[inline]
    fn print(&mut self, line: &[u8]) -> bool {
        Vm::print(self, line)
    }
    fn report(&mut self, line: &str) {
        if !self.config.quiet_reports {
            self.write_err(line);
        }
    }
    #[inline]
    fn now_ms(&self) -> u64 {
        // What the `now` instruction reads: a replay gives back what the recorded run read.
        if let Some((values, next)) = &self.nows_replayed {
            if let Some(&v) = values.get(next.get()) {
                next.set(next.get() + 1);
                return v;
            }
        }
        let v = Vm::now_ms(self);
        if let Some(log) = &self.nows_recorded {
            log.borrow_mut().push(v);
        }
        v
    }
    #[inline]
    fn arm_timer(&mut self, p: &mut Process, ms: u64) {
        Vm::arm_timer(self, p, ms)
    }
    #[inline]
    fn cancel_timer(&mut self, p: &mut Process) {
        Vm::cancel_timer(self, p)
    }
    #[inline]
    fn stats(&mut self) -> &mut Stats {
        &mut self.stats
    }
    fn remote_inbox(&self) -> &Arc<host::RemoteInbox> {
        &self.remote
    }
}
