//! N schedulers (spec §9): one OS thread each, a run queue each, idle ones steal.
//!
//! ```text
//!             spawn / wake: push to own queue          steal when idle
//!   sched 0 ─► [ p3 p7 p1 ] ◄──── stealers ────► [ p4 p9 ] ◄─ sched 1
//!      │                                              │
//!      │  send p9, msg  (p9's lock, a moment)          │
//!      ├──► p9 waits: its body is taken out of its handle, the message built in its heap,
//!      │    and p9 queued here
//!      └──► p9 runs or is queued: the message goes to p9's signal queue (flat in the
//!           signal, or in a fragment), which p9 takes before its next slice or receive
//! ```
//!
//! As in the BEAM since OTP 21, every interaction between processes is a signal in the
//! receiver's incoming queue ([`Signal`]): messages, exit signals, link, unlink, monitor,
//! demonitor, `:DOWN` and timeouts. Any scheduler pushes to it under the receiver's own lock
//! (no lock is global, and each is held for a moment); only the process itself, on the
//! scheduler running it, takes from it, before each slice and whenever a `receive` finds
//! nothing. Each sender pushes in program order, so between one sender and one receiver
//! signals arrive in the order sent. A message of a few words travels written out flat inside
//! its signal ([`flatten`]); a larger one is copied by the sender into a heap of its own (a
//! fragment) which the receiver adopts into its heap ([`Heap::adopt`]).
//!
//! A process is `WAITING` (its body lies in its handle), `ACTIVE` (its body is held by one
//! scheduler: queued there, or running) or `DEAD`; the state, the signal queue and a waiting
//! body are under the handle's lock. A sender that finds its receiver `WAITING` takes the body
//! out, builds the message straight into its heap (the body is then that scheduler's alone:
//! no other thread can reach that heap until it is queued, and every later signal queues
//! behind this message) and queues it: a message to a waiting process costs what it costs
//! with one scheduler. A process about to wait looks at its signal queue under the lock and
//! stays `ACTIVE` if anything came, so no wake-up is lost. Queues hold the bodies themselves,
//! so running a queued process takes no lock unless signals are pending. A process spawned in
//! a slice is queued when that slice ends, so no other scheduler runs it before its spawner's
//! next instructions (a `monitor` or `link` right after `spawn` finds it alive).
//! Only a running process sends, and a process it wakes is queued before its slice ends; so
//! when every scheduler is idle and every queue is empty, no process can run, and when no
//! timer is pending either the run is over. (Schedulers count themselves idle only around
//! their waits: no counter is touched per message.)
//!
//! Erlang's rules for the races this opens: an exit signal from a former link partner that
//! arrives after `unlink` finds no link and is ignored; a `:DOWN` that arrives after
//! `demonitor` finds no monitor and is dropped; a link or monitor request that reaches a
//! process before it exits is answered with its exit reason, one that comes later with
//! `:noproc`.

use super::*;
use crate::heap::{flatten, prefetch, Flat, FLAT_WORDS};
use crate::proctable::PagedTable;
use crate::runtime::{Effect, Exit, Outgoing, Runtime};
use crossbeam_deque::{Injector, Steal, Stealer, Worker};
use crossbeam_utils::CachePadded;
use parking_lot::{Condvar, Mutex, RwLock};
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize};
use std::time::Duration;

/// In `receive` with nothing to take: its body lies in its handle.
const WAITING: u8 = 0;
/// Queued or running: its body is held by a scheduler.
const ACTIVE: u8 = 1;
const DEAD: u8 = 2;
/// A host mailbox (see `vm/host.rs`): its body lies in its handle, and it is never woken; its
/// signals are taken in when the run pauses.
const HOST: u8 = 3;

const NO_NAME: u32 = u32::MAX;
const NOT_HALTED: i32 = i32::MIN;

/// What one process sends another. Terms travel in the heap (fragment) beside them.
enum Signal {
    /// A small message, written out flat (no allocation).
    Flat(Flat),
    /// A larger one, in a heap of its own that the receiver adopts.
    Message {
        frag: Heap,
        msg: Term,
    },
    /// A message that did not fit the receiver's limit: the receiver crashes `:heap_limit`.
    TooBig,
    Exit {
        from: u32,
        reason: Term,
        frag: Heap,
        link: bool,
    },
    Link {
        from: u32,
    },
    Unlink {
        from: u32,
    },
    Monitor {
        from: u32,
        r: u64,
        who: Term,
    },
    Demonitor {
        r: u64,
    },
    Down {
        r: u64,
        who: Term,
        reason: Term,
        frag: Heap,
    },
    Timeout {
        key: (u64, u64),
    },
    /// Under `--trace`: the message signal that follows is named `s<id>` in the trace (its
    /// arrival number is only known when the receiver takes it in).
    Traced {
        id: u64,
    },
}

/// A process's incoming signals. One fits inline: a waiting process is usually woken by one
/// message, which then lies beside the lock instead of in another allocation.
type Inbox = smallvec::SmallVec<[Signal; 1]>;

/// A process as the other schedulers see it. (In this order: what a sender touches, the pid,
/// the lock, the state and a waiting body, lies in the first two cache lines, which a
/// scheduler prefetches.)
#[repr(C)]
pub(crate) struct Handle {
    pid: u32,
    /// The registered name (an atom), or `NO_NAME`.
    name: AtomicU32,
    /// Set (under the lock) when `signals` may hold something: the process's scheduler looks
    /// at it before each slice and takes the lock only when it is set.
    pending: AtomicBool,
    /// Set with the `DEAD` state: a lookup that finds the handle (still in the table until its
    /// scheduler's next batch) answers as if it were gone.
    dead: AtomicBool,
    /// The address of the process's body (a box, which stays where it is however it moves
    /// between queues and handle), for prefetching only.
    at: usize,
    /// The process's one lock, held for a moment: by a sender to push a signal or to take a
    /// waiting process's body, by the process's own scheduler to take its signals and to
    /// put the body back when it waits.
    inner: Mutex<Inner>,
}

/// What the lock of a [`Handle`] guards.
#[repr(C)]
struct Inner {
    /// `WAITING`, `ACTIVE` or `DEAD`. A sender that finds `WAITING` makes it `ACTIVE`,
    /// takes the body and queues it; one that finds `DEAD` drops its signal (a link or
    /// monitor request is then answered by its sender, `:noproc`).
    state: u8,
    /// The process itself while it waits.
    body: Option<Box<Process>>,
    /// Signals not yet taken, oldest first. (A vector under a lock rather than a lock-free
    /// segmented queue: a million waiting processes must not hold a block each.)
    signals: Inbox,
}

/// Takes the body of a waiting process (`inner` is its handle `h`'s), to be queued.
fn wake(h: &Arc<Handle>, inner: &mut Inner) -> Option<Box<Process>> {
    if inner.state != WAITING {
        return None;
    }
    inner.state = ACTIVE;
    let mut p = inner
        .body
        .take()
        .expect("a waiting process lies in its handle");
    p.status = Status::Runnable;
    p.queued = true;
    p.me = Some(Arc::clone(h));
    Some(p)
}

impl Handle {
    /// The handle of `p`, which starts active (held by whoever queues it); `p` keeps a
    /// reference to its own handle, as the table does.
    fn new(p: &mut Process) -> Arc<Handle> {
        let h = Arc::new(Handle {
            pid: p.pid,
            name: AtomicU32::new(p.name.unwrap_or(NO_NAME)),
            pending: AtomicBool::new(false),
            dead: AtomicBool::new(false),
            at: (p as *const Process).addr(),
            inner: Mutex::new(Inner {
                state: ACTIVE,
                signals: Inbox::new(),
                body: None,
            }),
        });
        p.me = Some(Arc::clone(&h));
        h
    }

    fn is_dead(&self) -> bool {
        self.inner.lock().state == DEAD
    }
}

/// The live processes' handles by pid: paged tables (as one scheduler's) in shards, each under
/// its own lock on its own cache line. The pages of 1,024 consecutive pids share a shard; a
/// scheduler that spawns many processes takes its pids a page at a time (`new_pid`), so
/// schedulers spawning at once insert into different pages under different locks.
struct Table {
    shards: Box<[CachePadded<Shard>]>,
}

type Shard = RwLock<PagedTable<Arc<Handle>>>;

impl Table {
    const SHARDS: usize = 64;

    fn new() -> Table {
        Table {
            shards: (0..Self::SHARDS)
                .map(|_| CachePadded::new(RwLock::new(PagedTable::new())))
                .collect(),
        }
    }

    /// The shard of `pid`, and its index there.
    fn shard(&self, pid: u32) -> (&Shard, u32) {
        (&self.shards[(pid as usize >> 10) % Self::SHARDS], pid)
    }

    fn lookup(&self, pid: u32) -> Option<Arc<Handle>> {
        let (shard, i) = self.shard(pid);
        shard.read().get_entry(i).cloned()
    }

    fn insert(&self, h: Arc<Handle>) {
        let (shard, i) = self.shard(h.pid);
        shard.write().insert_at(i, h);
    }

    /// Removes the handles of `pids` (sorted), a shard's lock taken once for all its pids;
    /// the handles go to `out`, to be dropped outside the locks.
    fn remove_all(&self, pids: &[u32], out: &mut Vec<Arc<Handle>>) {
        let mut rest = pids;
        while let Some(&first) = rest.first() {
            let (shard, _) = self.shard(first);
            let mut shard_table = shard.write();
            let n = rest
                .iter()
                .take_while(|&&pid| std::ptr::eq(self.shard(pid).0, shard))
                .count();
            for &pid in &rest[..n] {
                out.extend(shard_table.remove_entry(pid));
            }
            rest = &rest[n..];
        }
    }

    /// Every handle now, in pid order.
    fn all(&self) -> Vec<Arc<Handle>> {
        let mut all: Vec<Arc<Handle>> = self
            .shards
            .iter()
            .flat_map(|s| s.read().entries().cloned().collect::<Vec<_>>())
            .collect();
        all.sort_by_key(|h| h.pid);
        all
    }

    /// Every handle, in pid order (the run is over).
    fn drain(&mut self) -> Vec<Arc<Handle>> {
        let mut all: Vec<Arc<Handle>> = self
            .shards
            .iter_mut()
            .flat_map(|s| s.get_mut().entries().cloned().collect::<Vec<_>>())
            .collect();
        all.sort_by_key(|h| h.pid);
        all
    }
}

/// What all schedulers share.
struct Shared {
    prog: Arc<Program>,
    config: Config,
    table: Table,
    registry: RwLock<HashMap<u32, u32>>,
    // The counters every scheduler writes, each on its own cache line: a write to one does
    // not take the others (or what is read at every slice) away from the other cores.
    next_pid: CachePadded<AtomicU64>,
    alive: CachePadded<AtomicUsize>,
    /// Bytes accounted to live processes (as `Vm::memory`).
    memory: CachePadded<AtomicUsize>,
    refs: CachePadded<AtomicU64>,
    seed: u64,
    injector: Injector<Box<Process>>,
    stealers: Vec<Stealer<Box<Process>>>,
    sleep: Mutex<()>,
    wake: Condvar,
    sleepers: AtomicUsize,
    done: AtomicBool,
    halted: AtomicI32,
    timers: Mutex<BTreeMap<(u64, u64), u32>>,
    /// The earliest deadline in `timers` or earlier (`u64::MAX`: none): schedulers look at the
    /// timers only once it has passed.
    next_deadline: AtomicU64,
    timer_seq: CachePadded<AtomicU64>,
    start: Instant,
    /// Virtual milliseconds under `--virtual-time`.
    virtual_ms: AtomicU64,
    out: Mutex<Box<dyn Write + Send>>,
    err: Mutex<Box<dyn Write + Send>>,
    trace: Mutex<Option<Tracer>>,
    tracing: bool,
    /// Under `--trace`: the number of the next message sent as a signal, and for each such
    /// message in a mailbox, (receiver, arrival number) -> that number.
    next_msg_id: AtomicU64,
    msg_ids: Mutex<HashMap<(u32, u64), u64>>,
    output_failure: Mutex<Option<RunEnd>>,
    main_exit: Mutex<Option<(bool, String)>>,
    main_reported: AtomicBool,
    /// Figures of exited processes, merged by the schedulers as they stop.
    stats: Mutex<Stats>,
    /// When the run stops (see [`Stop`]).
    stop: Stop,
    /// What other threads send through a [`Remote`].
    remote: Arc<super::host::RemoteInbox>,
    /// Processes still queued when the run ends (by `halt`) or pauses, handed back to the VM
    /// as they are (boxed, as the VM keeps them).
    #[allow(clippy::vec_box)]
    leftover: Mutex<Vec<Box<Process>>>,
    /// The run stopped for a code request (see `Vm::serve_code`).
    code_pause: AtomicBool,
}

/// One scheduler: its run queue and its figures; the runtime the interpreter sees.
struct Sched<'s> {
    id: usize,
    sh: &'s Shared,
    /// Newest at the back, where this scheduler pushes and pops; other schedulers steal the
    /// oldest, from the front (see `find_work`).
    queue: Worker<Box<Process>>,
    /// This scheduler's own queue seen from the front: its oldest process.
    oldest: Stealer<Box<Process>>,
    /// Reductions run since this scheduler last took its oldest process.
    since_oldest: u64,
    stats: Stats,
    /// The handle of the process running now.
    running: Option<Arc<Handle>>,
    /// Bytes this scheduler's processes grew (or shrank) by that are not in the shared
    /// account yet: it is brought up to date a megabyte at a time, so that schedulers do not
    /// fight over its cache line at every slice. The `--max-memory` check is that much
    /// approximate per scheduler.
    mem_delta: i64,
    /// Processes this scheduler started minus those that ended on it, not yet in the shared
    /// count.
    alive_delta: i64,
    /// Pids this scheduler took in a block and has not given out yet.
    pids: std::ops::Range<u64>,
    /// Processes this scheduler spawned.
    spawned: u64,
    /// Processes spawned in the running slice, queued when it ends.
    #[allow(clippy::vec_box)]
    born: Vec<Box<Process>>,
    /// Under `--trace`: the id a `Traced` signal gave the message signal that follows it.
    traced_next: Option<u64>,
    /// Pids of processes that ended here and are still in the table (dead handles there
    /// answer as if absent), taken out `DEAD_BATCH` at a time: one lock per shard for all.
    dead: Vec<u32>,
}

/// The first chunk of a message's fragment: a few small terms (a larger message adds chunks).
const FRAGMENT_BYTES: usize = 64;

/// How far a scheduler's memory figure may drift from the shared account.
const MEM_FLUSH: i64 = 1 << 20;

/// How far a scheduler's count of processes may drift from the shared one (far from the
/// limit; see `count_spawn`).
const ALIVE_FLUSH: i64 = 256;

/// Pids a scheduler takes one at a time before it takes them in blocks (see `new_pid`).
const SINGLE_PIDS: u64 = 1000;

/// Pids a scheduler takes at a time after that: a page of the process table.
const PID_BLOCK: u64 = 1024;

/// Dead processes a scheduler takes out of the table at a time.
const DEAD_BATCH: usize = 64;

/// Runs `vm`'s processes on `n` schedulers until no process can run and no timer is pending,
/// or `halt`; then hands everything back to `vm` (its figures, pid 0's exit, the processes
/// still alive for the deadlock report).
pub(super) fn run(vm: &mut Vm, n: usize, stop: Stop) -> bool {
    let workers: Vec<Worker<Box<Process>>> = (0..n).map(|_| Worker::new_lifo()).collect();
    let sh = Shared {
        prog: Arc::clone(&vm.prog),
        config: std::mem::take(&mut vm.config),
        table: Table::new(),
        registry: RwLock::new(std::mem::take(&mut vm.registry)),
        next_pid: CachePadded::new(AtomicU64::new(vm.next_pid)),
        alive: CachePadded::new(AtomicUsize::new(vm.alive)),
        memory: CachePadded::new(AtomicUsize::new(vm.memory)),
        refs: CachePadded::new(AtomicU64::new(vm.refs)),
        seed: vm.seed,
        injector: Injector::new(),
        stealers: workers.iter().map(Worker::stealer).collect(),
        sleep: Mutex::new(()),
        wake: Condvar::new(),
        sleepers: AtomicUsize::new(0),
        done: AtomicBool::new(false),
        halted: AtomicI32::new(NOT_HALTED),
        next_deadline: AtomicU64::new(vm.timers.first_key_value().map_or(u64::MAX, |(k, _)| k.0)),
        timers: Mutex::new(std::mem::take(&mut vm.timers)),
        stop,
        remote: Arc::clone(&vm.remote),
        timer_seq: CachePadded::new(AtomicU64::new(vm.timer_seq)),
        start: match vm.clock {
            Clock::Real(start) => start,
            Clock::Virtual(_) => Instant::now(),
        },
        virtual_ms: AtomicU64::new(match vm.clock {
            Clock::Virtual(ms) => ms,
            Clock::Real(_) => 0,
        }),
        out: Mutex::new(std::mem::replace(&mut vm.out, Box::new(io::sink()))),
        err: Mutex::new(std::mem::replace(&mut vm.err, Box::new(io::sink()))),
        tracing: vm.trace.is_some(),
        trace: Mutex::new(vm.trace.take()),
        next_msg_id: AtomicU64::new(0),
        msg_ids: Mutex::new(HashMap::new()),
        output_failure: Mutex::new(None),
        main_exit: Mutex::new(vm.main_exit.take()),
        main_reported: AtomicBool::new(vm.main_reported),
        stats: Mutex::new(std::mem::take(&mut vm.stats)),
        leftover: Mutex::new(Vec::new()),
        code_pause: AtomicBool::new(false),
    };
    // The queued processes start queued, in their order; the others (a run that paused
    // before, host mailboxes) lie in their handles.
    let mut procs: Vec<Box<Process>> = Vec::new();
    while let Some(pid) = vm.queue.pop_front() {
        if let Some(p) = vm.procs.remove(pid) {
            procs.push(p);
        }
    }
    for mut p in procs {
        p.queued = true;
        sh.table.insert(Handle::new(&mut p));
        sh.injector.push(p);
    }
    let rest: Vec<u32> = vm.procs.values().map(|p| p.pid).collect();
    for pid in rest {
        let Some(mut p) = vm.procs.remove(pid) else {
            continue;
        };
        let h = Handle::new(&mut p);
        p.me = None;
        {
            let mut inner = h.inner.lock();
            inner.state = if p.status == Status::Host {
                HOST
            } else {
                WAITING
            };
            inner.body = Some(p);
        }
        sh.table.insert(h);
    }
    let timed = matches!(vm.clock, Clock::Virtual(_));
    std::thread::scope(|scope| {
        for (id, queue) in workers.into_iter().enumerate() {
            let sh = &sh;
            scope.spawn(move || {
                crate::trace::set_scheduler(id);
                let mut s = Sched::new(id, sh, queue);
                s.run(timed);
                s.flush_memory();
                s.flush_alive();
                s.remove_dead();
                // After `halt`: what was still queued goes back to the VM.
                let mut left = sh.leftover.lock();
                while let Some(p) = s.queue.pop() {
                    left.push(p);
                }
                drop(left);
                let mut all = sh.stats.lock();
                all.merge(&s.stats, id);
            });
        }
    });
    let code_pause = sh.code_pause.load(SeqCst);
    if (stop != Stop::End || code_pause) && sh.halted.load(SeqCst) == NOT_HALTED {
        settle(&sh);
    }
    // Hand back what the end of the run and the reports need.
    let mut sh = sh;
    vm.config = std::mem::take(&mut sh.config);
    vm.out = std::mem::replace(sh.out.get_mut(), Box::new(io::sink()));
    vm.err = std::mem::replace(sh.err.get_mut(), Box::new(io::sink()));
    vm.trace = sh.trace.get_mut().take();
    vm.stats = std::mem::take(sh.stats.get_mut());
    vm.main_exit = sh.main_exit.get_mut().take();
    vm.main_reported = sh.main_reported.load(SeqCst);
    vm.registry = std::mem::take(sh.registry.get_mut());
    vm.alive = sh.alive.load(SeqCst);
    vm.memory = sh.memory.load(SeqCst);
    vm.refs = sh.refs.load(SeqCst);
    vm.next_pid = sh.next_pid.load(SeqCst);
    if let Clock::Virtual(ms) = &mut vm.clock {
        *ms = sh.virtual_ms.load(SeqCst);
    }
    // Processes hold their handles (and their last peer's): taking them out of the handles
    // and dropping those references ends the cycles.
    let mut left = std::mem::take(sh.leftover.get_mut());
    while let Steal::Success(p) = sh.injector.steal() {
        left.push(p);
    }
    for h in sh.table.drain() {
        left.extend(h.inner.lock().body.take());
    }
    vm.timers = std::mem::take(sh.timers.get_mut());
    for mut p in left {
        p.me = None;
        p.peer = None;
        if p.queued {
            vm.queue.push_back(p.pid);
        }
        vm.procs.insert(p);
    }
    if let Some(failure) = sh.output_failure.get_mut().take() {
        vm.output_failure = Some(failure);
    }
    let halted = sh.halted.load(SeqCst);
    if halted != NOT_HALTED {
        vm.halted = Some(halted);
    }
    stop != Stop::End || code_pause
}

/// A paused run's last step, on one thread once the schedulers stopped: the signals still in
/// the handles (those to host mailboxes, and those to processes queued when the run paused)
/// are taken in, as their processes would take them before their next slice, so that the VM
/// holds every process with its messages. Taking them may end a process, whose exit signals
/// are taken in turn.
fn settle(sh: &Shared) {
    let mut s = Sched::new(0, sh, Worker::new_lifo());
    let mut queued: HashMap<u32, Box<Process>> = HashMap::new();
    for p in sh.leftover.lock().drain(..) {
        queued.insert(p.pid, p);
    }
    while let Steal::Success(p) = sh.injector.steal() {
        queued.insert(p.pid, p);
    }
    loop {
        let mut any = false;
        for h in sh.table.all() {
            let (signals, in_handle) = {
                let mut inner = h.inner.lock();
                if inner.signals.is_empty() || inner.state == DEAD {
                    continue;
                }
                h.pending.store(false, Relaxed);
                let signals = std::mem::take(&mut inner.signals);
                let body = if inner.state == HOST {
                    inner.body.take()
                } else {
                    None
                };
                (signals, body)
            };
            let from_handle = in_handle.is_some();
            let Some(mut p) = in_handle.or_else(|| queued.remove(&h.pid)) else {
                continue;
            };
            any = true;
            s.running = Some(Arc::clone(&h));
            match s.apply_batch(&mut p, signals) {
                Ok(_) => {
                    s.account(&mut p);
                    if from_handle {
                        h.inner.lock().body = Some(p);
                    } else {
                        queued.insert(p.pid, p);
                    }
                }
                Err(exit) => {
                    let at = exit.raised.then_some(p.pc);
                    s.die(&h, p, exit.reason, at);
                }
            }
            s.running = None;
            // Processes a message woke.
            while let Some(p) = s.queue.pop() {
                queued.insert(p.pid, p);
            }
        }
        if !any {
            break;
        }
    }
    s.flush_memory();
    s.flush_alive();
    s.remove_dead();
    sh.leftover.lock().extend(queued.into_values());
    sh.stats.lock().merge(&s.stats, 0);
}

impl Shared {
    /// No process is queued anywhere.
    fn queues_empty(&self) -> bool {
        self.injector.is_empty() && self.stealers.iter().all(Stealer::is_empty)
    }

    fn now_ms(&self) -> u64 {
        if self.config.virtual_time {
            self.virtual_ms.load(Acquire)
        } else {
            (self.start.elapsed().as_millis() as u64).min(CLOCK_MAX)
        }
    }

    /// The handle of live process `pid`. (It may die right after: a signal to it then
    /// finds it `DEAD`.)
    fn lookup(&self, pid: u32) -> Option<Arc<Handle>> {
        self.table.lookup(pid).filter(|h| !h.dead.load(Acquire))
    }

    fn format(&self, t: Term) -> String {
        report_form(&self.prog, t)
    }

    fn output_failed(&self, what: &str, e: &io::Error) {
        let mut f = self.output_failure.lock();
        if f.is_none() {
            *f = Some(output_failure(what, e));
        }
        drop(f);
        self.halt(1);
    }

    fn halt(&self, n: i32) {
        let _ = self.halted.compare_exchange(NOT_HALTED, n, SeqCst, SeqCst);
        self.done.store(true, SeqCst);
        let _guard = self.sleep.lock();
        self.wake.notify_all();
    }

    fn write_err(&self, line: &str) {
        if let Err(e) = self.out.lock().flush() {
            self.output_failed("standard output", &e);
        }
        let mut err = self.err.lock();
        if let Err(e) = writeln!(err, "{line}").and_then(|()| err.flush()) {
            drop(err);
            self.output_failed("standard error", &e);
        }
    }

    fn report_crash(&self, p: &Process, reason: Term, pc: u32) {
        let line = crash_line(&self.prog, p, reason, pc);
        self.write_err(&line);
        if p.pid == 0 {
            self.main_reported.store(true, SeqCst);
        }
    }

    /// Fires the timers due now (under the timers lock, so that no one sees an empty timer
    /// table while their wake-ups are still to come); queues the processes they wake.
    fn fire_due(&self, s: &Sched<'_>) -> bool {
        let now = self.now_ms();
        if now < self.next_deadline.load(Acquire) {
            return false;
        }
        let mut timers = self.timers.lock();
        let mut fired = false;
        while let Some((&key, &pid)) = timers.first_key_value() {
            if key.0 > now {
                break;
            }
            timers.remove(&key);
            if let Some(h) = self.lookup(pid) {
                if self.tracing {
                    if let Some(t) = self.trace.lock().as_mut() {
                        t.timeout(pid);
                    }
                }
                s.signal(&h, Signal::Timeout { key });
                fired = true;
            }
        }
        let next = timers.first_key_value().map_or(u64::MAX, |(k, _)| k.0);
        self.next_deadline.store(next, Release);
        fired
    }
}

impl Stats {
    /// Adds a scheduler's figures (`id`) to the run's.
    fn merge(&mut self, s: &Stats, id: usize) {
        self.slices += s.slices;
        self.context_switches += s.context_switches;
        self.spawns += s.spawns;
        self.exits += s.exits;
        self.messages_sent += s.messages_sent;
        self.messages_received += s.messages_received;
        self.messages_tested += s.messages_tested;
        self.gc_runs += s.gc_runs;
        self.gc_major_runs += s.gc_major_runs;
        self.gc_nanos += s.gc_nanos;
        self.reductions += s.reductions;
        self.peak_processes = self.peak_processes.max(s.peak_processes);
        for t in &s.top {
            self.record(t.clone());
        }
        if let Some(m) = &s.main {
            self.main = Some(m.clone());
        }
        self.peak_heap = self.peak_heap.max(s.peak_heap);
        self.mailbox_peak = self.mailbox_peak.max(s.mailbox_peak);
        let mine = s.schedulers.first().cloned().unwrap_or_default();
        self.schedulers.push(SchedulerStats { id, ..mine });
        self.schedulers.sort_by_key(|s| s.id);
    }
}

impl<'s> Sched<'s> {
    /// Scheduler `id` with its run queue, nothing run yet.
    fn new(id: usize, sh: &'s Shared, queue: Worker<Box<Process>>) -> Sched<'s> {
        Sched {
            id,
            sh,
            oldest: queue.stealer(),
            since_oldest: 0,
            queue,
            stats: Stats::default(),
            running: None,
            mem_delta: 0,
            alive_delta: 0,
            pids: 0..0,
            spawned: 0,
            dead: Vec::new(),
            born: Vec::new(),
            traced_next: None,
        }
    }

    /// The VM's memory as this scheduler sees it.
    fn memory(&self) -> usize {
        (self.sh.memory.load(Relaxed) as i64 + self.mem_delta).max(0) as usize
    }

    /// The room `p` has under its limits (as [`room_of`]).
    fn room_for(&self, p: &Process) -> usize {
        room_of(&self.sh.config, self.memory(), p)
    }

    fn account(&mut self, p: &mut Process) {
        let now = footprint(p);
        self.mem_delta += now as i64 - p.accounted as i64;
        p.accounted = now;
        if self.mem_delta.abs() >= MEM_FLUSH {
            self.flush_memory();
        }
    }

    /// Counts a new process against `--max-processes`: false at the limit. Far below it, in
    /// this scheduler's own count, brought into the shared one `ALIVE_FLUSH` at a time (so that
    /// schedulers spawning and exiting at once do not fight over one cache line); near it,
    /// exactly, in the shared count.
    fn count_spawn(&mut self) -> bool {
        let sh = self.sh;
        let max = sh.config.max_processes;
        if !self.near_process_limit() {
            self.alive_delta += 1;
            if self.alive_delta >= ALIVE_FLUSH {
                self.flush_alive();
            }
            return true;
        }
        self.flush_alive();
        if sh.alive.fetch_add(1, SeqCst) >= max {
            sh.alive.fetch_sub(1, SeqCst);
            return false;
        }
        true
    }

    /// A process this scheduler counted, or one that ended here, is gone.
    fn count_exit(&mut self) {
        self.alive_delta -= 1;
        if self.alive_delta <= -ALIVE_FLUSH || self.near_process_limit() {
            self.flush_alive();
        }
    }

    /// Whether the shared count, with what every scheduler may hold back, could reach
    /// `--max-processes`: then every count goes to the shared one at once.
    fn near_process_limit(&self) -> bool {
        let held_back = 2 * ALIVE_FLUSH as usize * self.sh.stealers.len();
        self.sh.alive.load(Relaxed).saturating_add(held_back) >= self.sh.config.max_processes
    }

    fn flush_alive(&mut self) {
        let d = std::mem::take(&mut self.alive_delta);
        if d > 0 {
            self.sh.alive.fetch_add(d as usize, SeqCst);
        } else if d < 0 {
            self.sh.alive.fetch_sub(d.unsigned_abs() as usize, SeqCst);
        }
    }

    /// A pid for a new process. The first `SINGLE_PIDS` a scheduler gives out come one at a
    /// time from the shared counter, in spawn order as with one scheduler; after that it takes
    /// a page-aligned block of `PID_BLOCK` at a time, so that schedulers spawning at once do
    /// not share a counter, nor a page of the process table.
    fn new_pid(&mut self) -> Option<u32> {
        let sh = self.sh;
        let pid = if self.pids.start < self.pids.end {
            let pid = self.pids.start;
            self.pids.start += 1;
            pid
        } else if self.spawned < SINGLE_PIDS {
            sh.next_pid.fetch_add(1, SeqCst)
        } else {
            let mut cur = sh.next_pid.load(Relaxed);
            loop {
                let start = cur.next_multiple_of(PID_BLOCK);
                match sh
                    .next_pid
                    .compare_exchange_weak(cur, start + PID_BLOCK, SeqCst, Relaxed)
                {
                    Ok(_) => break,
                    Err(now) => cur = now,
                }
            }
            let start = cur.next_multiple_of(PID_BLOCK);
            self.pids = start + 1..start + PID_BLOCK;
            start
        };
        self.spawned += 1;
        (pid <= MAX_PID).then_some(pid as u32)
    }

    /// Takes the processes that ended on this scheduler out of the table.
    fn remove_dead(&mut self) {
        let mut pids = std::mem::take(&mut self.dead);
        pids.sort_unstable();
        let mut handles = Vec::with_capacity(pids.len());
        self.sh.table.remove_all(&pids, &mut handles);
        drop(handles);
        pids.clear();
        self.dead = pids;
    }

    fn flush_memory(&mut self) {
        let d = std::mem::take(&mut self.mem_delta);
        if d >= 0 {
            self.sh.memory.fetch_add(d as usize, Relaxed);
        } else {
            self.sh.memory.fetch_sub(d.unsigned_abs() as usize, Relaxed);
        }
    }

    /// Pushes `sig` to `h`'s queue and queues `h` if it waits. False when `h` has exited
    /// (and answered what was queued for it): the signal is dropped, and a link or monitor
    /// request is then the sender's to answer.
    fn signal(&self, h: &Arc<Handle>, sig: Signal) -> bool {
        self.signals(h, [sig])
    }

    /// [`Sched::signal`] for signals that must stay together (no other sender's between).
    fn signals<const N: usize>(&self, h: &Arc<Handle>, sigs: [Signal; N]) -> bool {
        let mut inner = h.inner.lock();
        if inner.state == DEAD {
            return false;
        }
        inner.signals.extend(sigs);
        h.pending.store(true, Release);
        if let Some(body) = wake(h, &mut inner) {
            drop(inner);
            self.enqueue(body);
        }
        true
    }

    fn enqueue(&self, p: Box<Process>) {
        self.queue.push(p);
        // Wake a sleeping scheduler only for work this one has to spare: a process woken by
        // a message usually runs here next, without crossing threads.
        if self.queue.len() > 1 && self.sh.sleepers.load(SeqCst) > 0 {
            let _guard = self.sh.sleep.lock();
            self.sh.wake.notify_one();
        }
    }

    /// The next process to run: from this scheduler's queue, the shared one, or another's.
    ///
    /// Work first, as work-stealing schedulers do: the process spawned or woken last runs
    /// next, while what it touched is still in this core's cache (a message just built in its
    /// heap, a child's parent), and a tree of spawns is walked depth first, so it never holds
    /// more than a path of it at once. Fairness is kept by the budget: once the processes run
    /// newest-first have used a slice's budget between them, the oldest queued process runs
    /// (a process that used up its own slice has used that budget alone). So a queued
    /// process waits at most its place in the queue times a budget of reductions run here;
    /// other schedulers steal the oldest.
    fn find_work(&mut self, budget: u64) -> Option<Box<Process>> {
        if self.since_oldest >= budget {
            self.since_oldest = 0;
            if let Steal::Success(p) = self.oldest.steal() {
                return Some(p);
            }
        }
        if let Some(p) = self.queue.pop() {
            return Some(p);
        }
        loop {
            let mut retry = false;
            match self.sh.injector.steal_batch_and_pop(&self.queue) {
                Steal::Success(h) => return Some(h),
                Steal::Retry => retry = true,
                Steal::Empty => {}
            }
            let n = self.sh.stealers.len();
            for k in 1..n {
                let victim = &self.sh.stealers[(self.id + k) % n];
                match victim.steal_batch_and_pop(&self.queue) {
                    Steal::Success(h) => {
                        self.sched_stats().steals += 1;
                        return Some(h);
                    }
                    Steal::Retry => retry = true,
                    Steal::Empty => {}
                }
            }
            if !retry {
                return None;
            }
        }
    }

    fn sched_stats(&mut self) -> &mut SchedulerStats {
        if self.stats.schedulers.is_empty() {
            self.stats.schedulers.push(SchedulerStats::default());
        }
        &mut self.stats.schedulers[0]
    }

    fn run(&mut self, virtual_time: bool) {
        let prog = Arc::clone(&self.sh.prog);
        let budget = self.sh.config.budget.max(1);
        let mut last = u32::MAX;
        let bound = match self.sh.stop {
            Stop::Reductions(n) => n,
            _ => u64::MAX,
        };
        loop {
            if self.sh.done.load(Acquire) {
                return;
            }
            if self.sh.remote.pending.load(Acquire) {
                self.take_remote();
            }
            if self.stats.reductions >= bound {
                // This scheduler's share of a bounded run is spent: the run pauses.
                let _guard = self.sh.sleep.lock();
                self.sh.done.store(true, SeqCst);
                self.sh.wake.notify_all();
                return;
            }
            // Timers are looked at every so many slices (and whenever the scheduler idles):
            // reading the clock at every slice costs more than the slice of a relay.
            if !virtual_time && self.stats.slices.is_multiple_of(64) {
                self.sh.fire_due(self);
            }
            let Some(mut p) = self.find_work(u64::from(budget)) else {
                if self.idle(virtual_time) {
                    return;
                }
                continue;
            };
            let h = p.me.take().expect("a process holds its handle");
            // Near the process limit, what this scheduler held back counts at once.
            if self.alive_delta != 0 && self.near_process_limit() {
                self.flush_alive();
            }
            // The signals that came since it last ran.
            let signals = if h.pending.load(Acquire) {
                let mut inner = h.inner.lock();
                h.pending.store(false, Relaxed);
                std::mem::take(&mut inner.signals)
            } else {
                Inbox::new()
            };
            p.queued = false;
            self.stats.slices += 1;
            self.sched_stats().slices += 1;
            if p.pid != last {
                self.stats.context_switches += 1;
                last = p.pid;
            }
            self.running = Some(h);
            // For the trace: when the slice began and the function it began in.
            let began = self.sh.tracing.then(|| {
                let start = self.sh.trace.lock().as_ref().map_or(0, |t| t.now());
                (start, self.sh.prog.module.function_name(p.pc))
            });
            let pid = p.pid;
            let (outcome, reds) = match self.apply_batch(&mut p, signals) {
                Ok(_) => interp::run_slice(&prog, self, &mut p, budget, &mut interp::NoProbe),
                Err(exit) => (
                    Outcome::Exit {
                        reason: exit.reason,
                        raised_at: exit.raised.then_some(p.pc),
                    },
                    0,
                ),
            };
            let h = self.running.take().expect("the handle of the slice");
            p.reductions += reds as u64;
            self.stats.reductions += reds as u64;
            self.since_oldest += u64::from(reds.max(1));
            let name = crate::vm::outcome_name(&outcome);
            match outcome {
                Outcome::Yield => {
                    p.queued = true;
                    self.account(&mut p);
                    p.me = Some(h);
                    self.enqueue(p);
                }
                Outcome::Wait => {
                    self.account(&mut p);
                    let mut inner = h.inner.lock();
                    // A signal that came after the receive last looked: it runs again at once.
                    if inner.signals.is_empty() {
                        // Waiting, it holds no reference to its handle (no cycle); whoever
                        // wakes it gives it one.
                        p.status = Status::Waiting;
                        inner.state = WAITING;
                        inner.body = Some(p);
                    } else {
                        drop(inner);
                        p.queued = true;
                        p.me = Some(h);
                        self.enqueue(p);
                    }
                }
                Outcome::Exit { reason, raised_at } => {
                    self.die(&h, p, reason, raised_at);
                }
                Outcome::Halt(n) => {
                    if let Some((start, label)) = &began {
                        if let Some(t) = self.sh.trace.lock().as_mut() {
                            t.slice(pid, u64::from(reds), name, None, *start, label);
                        }
                    }
                    p.me = Some(h);
                    let mut left = self.sh.leftover.lock();
                    left.push(p);
                    left.append(&mut self.born);
                    drop(left);
                    self.sh.halt(n);
                    return;
                }
            }
            if let Some((start, label)) = began {
                if let Some(t) = self.sh.trace.lock().as_mut() {
                    t.slice(pid, u64::from(reds), name, None, start, &label);
                }
            }
            // What the slice spawned is queued now, the last spawned on top.
            if !self.born.is_empty() {
                let mut born = std::mem::take(&mut self.born);
                for c in born.drain(..) {
                    self.enqueue(c);
                }
                self.born = born;
            }
        }
    }

    /// No work found. Returns true when the run is over.
    fn idle(&mut self, virtual_time: bool) -> bool {
        let t0 = Instant::now();
        let over = self.idle_wait(virtual_time);
        self.sched_stats().idle_nanos += t0.elapsed().as_nanos() as u64;
        over
    }

    fn idle_wait(&mut self, virtual_time: bool) -> bool {
        self.flush_alive();
        self.remove_dead();
        if let Err(e) = self.sh.out.lock().flush() {
            self.sh.output_failed("standard output", &e);
        }
        let mut guard = self.sh.sleep.lock();
        if self.sh.done.load(SeqCst) {
            return true;
        }
        let idle = self.sh.sleepers.fetch_add(1, SeqCst) + 1;
        if idle == self.sh.stealers.len() && self.sh.queues_empty() {
            if self.sh.remote.pending.load(Acquire) || self.sh.remote.code_pending.load(Acquire) {
                // Another thread sent something: the run loop takes it.
                self.sh.sleepers.fetch_sub(1, SeqCst);
                return false;
            }
            // No process can run anywhere: only a timer can wake one.
            let deadline = self.sh.timers.lock().first_key_value().map(|(k, _)| k.0);
            if deadline.is_none() && self.sh.stop == Stop::End && self.sh.remote.has_senders() {
                // A `Remote` may still send: wait for it.
                self.sh.wake.wait_for(&mut guard, Duration::from_millis(1));
                self.sh.sleepers.fetch_sub(1, SeqCst);
                return false;
            }
            let Some(deadline) = deadline else {
                self.sh.done.store(true, SeqCst);
                self.sh.wake.notify_all();
                self.sh.sleepers.fetch_sub(1, SeqCst);
                return true;
            };
            if self.sh.stop != Stop::End && !virtual_time {
                // Idle is where a paused run stops; the host waits for the timer.
                self.sh.done.store(true, SeqCst);
                self.sh.wake.notify_all();
                self.sh.sleepers.fetch_sub(1, SeqCst);
                return true;
            }
            if virtual_time {
                // Every scheduler is idle: the clock jumps (spec §9).
                self.sh.sleepers.fetch_sub(1, SeqCst);
                drop(guard);
                let now = self.sh.virtual_ms.fetch_max(deadline, SeqCst).max(deadline);
                if let Some(t) = self.sh.trace.lock().as_mut() {
                    t.set_virtual_now(now);
                }
                self.sh.fire_due(self);
                return false;
            }
            let now = self.sh.now_ms();
            if deadline > now {
                self.sh
                    .wake
                    .wait_for(&mut guard, Duration::from_millis(deadline - now));
            }
            self.sh.sleepers.fetch_sub(1, SeqCst);
            drop(guard);
            self.sh.fire_due(self);
            return false;
        }
        // Others are busy, or have work this scheduler could not steal yet: wait to be woken.
        self.sh.wake.wait_for(&mut guard, Duration::from_millis(1));
        self.sh.sleepers.fetch_sub(1, SeqCst);
        false
    }

    /// A copy of `t` (a term of a heap of `src_words` words) in a fragment for another
    /// process, within its heap limit.
    fn fragment(&self, t: Term, src_words: usize) -> Result<(Heap, Term), TooBig> {
        let mut frag = Heap::with_capacity(FRAGMENT_BYTES);
        let max = self.sh.config.max_heap_bytes / 8;
        let t = frag.copy_into(t, &self.sh.prog.literals, src_words, max)?;
        Ok((frag, t))
    }

    /// Exit signal `reason` (a term of a heap of `src_words` words) to `to`.
    fn exit_signal_to(
        &self,
        h: &Arc<Handle>,
        from: u32,
        reason: Term,
        src_words: usize,
        link: bool,
    ) {
        let sig = match self.fragment(reason, src_words) {
            Ok((frag, reason)) => Signal::Exit {
                from,
                reason,
                frag,
                link,
            },
            Err(TooBig) => Signal::TooBig,
        };
        self.signal(h, sig);
    }

    /// Applies an exit signal to `p` itself (drained, or sent to itself): an `{:EXIT, ...}`
    /// message, nothing, or the exit `p` must take.
    fn apply_exit(
        &mut self,
        p: &mut Process,
        from: u32,
        reason: Term,
        frag: Heap,
        link: bool,
    ) -> Effect<bool> {
        if link {
            // Erlang's unlink rule: a signal from a partner no longer linked is ignored.
            if !p.linked_to(from) {
                return Ok(false);
            }
            p.unlink_from(from);
        }
        let kill = !link && reason.as_atom() == Some(atom::KILL);
        if self.sh.tracing {
            let ignored = reason.as_atom() == Some(atom::NORMAL) && (link || from != p.pid);
            let action = crate::vm::exit_action(kill, p.trap_exit, !ignored);
            let text = self.sh.format(reason);
            if let Some(t) = self.sh.trace.lock().as_mut() {
                t.exit_signal_received(p.pid, from, &text, link, action);
            }
        }
        if kill {
            return Err(Exit {
                reason: Term::atom(atom::KILLED),
                raised: false,
            });
        }
        p.heap.adopt(frag);
        if p.trap_exit {
            let msg = p
                .heap
                .tuple(&[Term::atom(atom::EXIT), Term::pid(from), reason]);
            self.deliver_local(p, msg)?;
            return Ok(true);
        }
        if reason.as_atom() == Some(atom::NORMAL) && (link || from != p.pid) {
            return Ok(false);
        }
        Err(Exit {
            reason,
            raised: false,
        })
    }

    /// A message built in `p`'s own heap joins its mailbox, within its limit.
    fn deliver_local(&mut self, p: &mut Process, msg: Term) -> Effect {
        p.deliver(msg);
        if p.memory() > self.sh.config.max_heap_bytes {
            return Err(Exit::raised(atom::HEAP_LIMIT));
        }
        Ok(())
    }

    /// Ends `p` (its handle `h`) with `reason`: partners get exit signals, watchers `:DOWN`,
    /// and what was still queued for it is answered (links and monitors with `:noproc`).
    fn die(&mut self, h: &Arc<Handle>, mut p: Box<Process>, reason: Term, raised_at: Option<u32>) {
        let pid = p.pid;
        if let Some(pc) = raised_at {
            self.sh.report_crash(&p, reason, pc);
        } else if self.sh.config.quiet_reports {
        } else if let Some(report) = crate::vm::noted_exit_report(&self.sh.prog, &p, reason) {
            self.sh.write_err(&report);
            if pid == 0 {
                self.sh.main_reported.store(true, SeqCst);
            }
        }
        // From here on, signals to it are dropped and link and monitor requests are answered
        // by their senders (`:noproc`); those that reached it before are answered below.
        // (A dead handle is as good as none: its entry in the table goes with the next batch.)
        let late = {
            let mut inner = h.inner.lock();
            inner.state = DEAD;
            h.dead.store(true, Release);
            std::mem::take(&mut inner.signals)
        };
        self.dead.push(pid);
        if self.dead.len() >= DEAD_BATCH {
            self.remove_dead();
        }
        let name = h.name.swap(NO_NAME, SeqCst);
        if name != NO_NAME {
            let mut reg = self.sh.registry.write();
            if reg.get(&name) == Some(&pid) {
                reg.remove(&name);
            }
        }
        if p.timer != (0, 0) {
            self.sh.timers.lock().remove(&p.timer);
        }
        if self.sh.tracing {
            let text = self.sh.format(reason);
            if let Some(t) = self.sh.trace.lock().as_mut() {
                t.exit(pid, &text);
            }
        }
        self.stats.exits += 1;
        self.stats.record(p.stats());
        if pid == 0 {
            let normal = reason.as_atom() == Some(atom::NORMAL);
            *self.sh.main_exit.lock() = Some((normal, self.sh.format(reason)));
        }
        let src_words = p.heap.used_words();
        let mut rel = p.take_relations();
        // Its share is given back before its signals are built (as with one scheduler; the
        // entries its monitors hold in their targets go when each target takes its
        // `Demonitor`).
        self.mem_delta -= p.accounted as i64;
        for link in rel.links.take() {
            if let Some(o) = self.sh.lookup(link) {
                self.exit_signal_to(&o, pid, reason, src_words, true);
            }
        }
        for (r, (watcher, who)) in rel.watchers {
            if watcher == pid {
                continue;
            }
            if let Some(w) = self.sh.lookup(watcher) {
                self.down_to(&w, r, who, reason, src_words);
            }
        }
        for (r, target) in rel.monitors {
            if let Some(t) = self.sh.lookup(target) {
                self.signal(&t, Signal::Demonitor { r });
            }
        }
        // Link and monitor requests that reached it while it ran get its exit reason, as if
        // they had been taken before it exited.
        for sig in late {
            match sig {
                Signal::Link { from } => {
                    if let Some(o) = self.sh.lookup(from) {
                        self.exit_signal_to(&o, pid, reason, src_words, true);
                    }
                }
                Signal::Monitor { from, r, who } => {
                    if let Some(w) = self.sh.lookup(from) {
                        self.down_to(&w, r, who, reason, src_words);
                    }
                }
                _ => {}
            }
        }
        self.count_exit();
    }

    fn down_to(&self, w: &Arc<Handle>, r: u64, who: Term, reason: Term, src_words: usize) {
        let sig = match self.fragment(reason, src_words) {
            Ok((frag, reason)) => Signal::Down {
                r,
                who,
                reason,
                frag,
            },
            Err(TooBig) => Signal::TooBig,
        };
        self.signal(w, sig);
    }

    /// Delivers what other threads sent through a [`Remote`], each message built in a
    /// fragment of its own as a large message is (a bad name or value is dropped).
    fn take_remote(&mut self) {
        // Messages first, then code requests: `Remote::request` marks its request before it
        // marks the inbox, so a request whose mark this take clears is seen below.
        let sent = self.sh.remote.take();
        if self.sh.remote.code_pending.load(Acquire) {
            // A code request: every scheduler stops, and the VM serves it whole.
            let _guard = self.sh.sleep.lock();
            self.sh.code_pause.store(true, SeqCst);
            self.sh.done.store(true, SeqCst);
            self.sh.wake.notify_all();
        }
        for (to, msg) in sent {
            let pid = match to {
                Dest::Pid(p) => Some(p.number()),
                Dest::Name(n) => self
                    .sh
                    .prog
                    .atoms
                    .lookup(&n)
                    .and_then(|a| self.sh.registry.read().get(&a).copied()),
            };
            let Some(h) = pid.and_then(|pid| self.sh.lookup(pid)) else {
                continue;
            };
            let mut frag = Heap::with_capacity(FRAGMENT_BYTES);
            let Ok(msg) = crate::value::build(&msg, &mut frag, &self.sh.prog) else {
                continue;
            };
            let sig = if frag.used_bytes() > self.sh.config.max_heap_bytes {
                Signal::TooBig
            } else {
                Signal::Message { frag, msg }
            };
            self.stats.messages_sent += 1;
            self.signal(&h, sig);
        }
    }

    fn me(&self) -> &Arc<Handle> {
        self.running.as_ref().expect("a process is running")
    }
}

impl Runtime for Sched<'_> {
    const DRAINS: bool = true;
    fn send(&mut self, p: &mut Process, to: Term, msg: Outgoing<'_>) -> Effect {
        let target = if let Some(pid) = to.as_pid() {
            pid
        } else if let Some(pid) = to
            .as_atom()
            .and_then(|n| self.sh.registry.read().get(&n).copied())
        {
            pid
        } else {
            return Err(Exit::raised(atom::BADARG));
        };
        self.stats.messages_sent += 1;
        let src_words = p.heap.used_words();
        if target == p.pid {
            let v = match msg {
                Outgoing::Term(v) => v,
                Outgoing::Template(t, image) => t.build_from(image, &p.regs, &mut p.heap),
            };
            let effect = self.deliver_local(p, v);
            let seq = p.mailbox.newest_seq();
            self.trace_send(p.pid, target, v, || seq.map(|n| format!("{target}.{n}")));
            return effect;
        }
        // The last process sent to is kept with the sender: a relay, a client or a server
        // sends to the same one again and again, and then needs no table lookup.
        let h = match p.peer.take() {
            Some(h) if h.pid == target => Some(h),
            _ => self.sh.lookup(target),
        };
        let Some(h) = h else {
            if let Outgoing::Term(v) = msg {
                self.trace_send(p.pid, target, v, || None);
            }
            return Ok(()); // dead: dropped
        };
        if !p.peer_at.is_of(h.at) {
            p.peer_at = PeerHint::body(h.at);
        }
        self.send_to(p, &h, msg, src_words);
        p.peer = Some(h);
        Ok(())
    }

    fn spawn(
        &mut self,
        p: &mut Process,
        at: u32,
        link: bool,
        args: &[Term],
        src_words: usize,
    ) -> Effect<u32> {
        let sh = self.sh;
        let system_limit = Exit::raised(atom::SYSTEM_LIMIT);
        if self.memory().saturating_add(PROCESS_OVERHEAD) > sh.config.max_memory_bytes
            || !self.count_spawn()
        {
            return Err(system_limit);
        }
        let Some(pid) = self.new_pid() else {
            self.count_exit();
            return Err(system_limit);
        };
        let nregs = sh.prog.registers_at(at).max(args.len());
        let mut c = Box::new(Process::new(pid, at, nregs));
        c.seed_rand(sh.seed);
        let room = self.room_for(&c) / 8;
        for (i, &v) in args.iter().enumerate() {
            let left = room.saturating_sub(c.heap.used_words());
            match c.heap.copy_into(v, &sh.prog.literals, src_words, left) {
                Ok(v) => c.regs[i] = v,
                Err(TooBig) => {
                    self.count_exit();
                    return Err(Exit::raised(atom::HEAP_LIMIT));
                }
            }
        }
        if link {
            c.relations().links.insert(p.pid);
            p.relations().links.insert(pid);
        }
        c.queued = true;
        // A child most often sends to its parent first: it starts with the parent as the
        // process it last sent to (no table lookup for its first reply).
        c.peer = self.running.clone();
        c.peer_at = PeerHint::body((p as *const Process).addr());
        self.account(&mut c);
        sh.table.insert(Handle::new(&mut c));
        self.stats.spawns += 1;
        self.stats.peak_processes = self.stats.peak_processes.max(sh.alive.load(Relaxed));
        if sh.tracing {
            if let Some(t) = sh.trace.lock().as_mut() {
                t.spawn(p.pid, pid, link);
            }
        }
        // Queued when this slice ends, as with one scheduler: no other scheduler can run it
        // before its spawner's next instructions (a `monitor` or `link` right after `spawn`
        // finds it alive, as programs written for one scheduler expect).
        self.born.push(c);
        Ok(pid)
    }

    fn link(&mut self, p: &mut Process, other: u32) -> Effect {
        if other == p.pid {
            return Ok(());
        }
        let o = self.sh.lookup(other);
        if p.linked_to(other) && o.is_some() {
            return Ok(());
        }
        // (As with one scheduler: a link counts against `--max-memory` on both sides.)
        if o.is_some() && memory_room(&self.sh.config, self.memory(), p) < 2 * LINK_BYTES {
            return Err(Exit::raised(atom::HEAP_LIMIT));
        }
        match o {
            Some(o) if self.signal(&o, Signal::Link { from: p.pid }) => {
                p.relations().links.insert(other);
                Ok(())
            }
            _ => {
                // Linking to a dead process: exit signal `:noproc`, raised by the VM.
                p.relations().links.insert(other);
                self.apply_exit(p, other, Term::atom(atom::NOPROC), Heap::new(), true)
                    .map(|_| ())
                    .map_err(|e| Exit { raised: true, ..e })
            }
        }
    }

    fn unlink(&mut self, p: &mut Process, other: u32) {
        p.unlink_from(other);
        if let Some(o) = self.sh.lookup(other) {
            self.signal(&o, Signal::Unlink { from: p.pid });
        }
    }

    fn monitor(&mut self, p: &mut Process, target: Term) -> Effect<u64> {
        let watched = if let Some(pid) = target.as_pid() {
            Some(pid)
        } else if let Some(name) = target.as_atom() {
            self.sh.registry.read().get(&name).copied()
        } else {
            return Err(Exit::raised(atom::BADARG));
        };
        // (As with one scheduler: a monitor counts against `--max-memory` on both sides.)
        if watched.is_some() && memory_room(&self.sh.config, self.memory(), p) < 2 * MONITOR_BYTES {
            return Err(Exit::raised(atom::HEAP_LIMIT));
        }
        let r = self.make_ref(p);
        let me = p.pid;
        match watched.map(|w| (w, self.sh.lookup(w))) {
            Some((w, _)) if w == me => {
                let rel = p.relations();
                rel.monitors.insert(r, w);
                rel.watchers.insert(r, (me, target));
            }
            Some((w, Some(h)))
                if self.signal(
                    &h,
                    Signal::Monitor {
                        from: me,
                        r,
                        who: target,
                    },
                ) =>
            {
                p.relations().monitors.insert(r, w);
            }
            _ => {
                let msg = p.heap.down_message(r, target, Term::atom(atom::NOPROC));
                p.deliver(msg);
            }
        }
        Ok(r)
    }

    fn demonitor(&mut self, p: &mut Process, r: u64) {
        if let Some(target) = p.drop_monitor(r) {
            if target == p.pid {
                p.drop_watcher(r);
            } else if let Some(h) = self.sh.lookup(target) {
                self.signal(&h, Signal::Demonitor { r });
            }
        } else {
            p.flush_down(r);
        }
    }

    fn exit(&mut self, p: &mut Process, to: u32, reason: Term) -> Effect {
        if to == p.pid {
            return self
                .apply_exit(p, to, reason, Heap::new(), false)
                .map(|_| ());
        }
        if let Some(h) = self.sh.lookup(to) {
            self.exit_signal_to(&h, p.pid, reason, p.heap.used_words(), false);
        }
        Ok(())
    }

    fn register(&mut self, p: &mut Process, name: u32, pid: u32) -> Effect {
        let badarg = Exit::raised(atom::BADARG);
        if name == atom::UNDEFINED {
            return Err(badarg);
        }
        let mut reg = self.sh.registry.write();
        if reg.contains_key(&name) {
            return Err(badarg);
        }
        let h = if pid == p.pid {
            Arc::clone(self.me())
        } else {
            self.sh.lookup(pid).ok_or(badarg)?
        };
        if h.name
            .compare_exchange(NO_NAME, name, SeqCst, SeqCst)
            .is_err()
            || h.is_dead()
        {
            return Err(badarg);
        }
        reg.insert(name, pid);
        Ok(())
    }

    fn unregister(&mut self, _: &mut Process, name: u32) -> Effect {
        let pid = self
            .sh
            .registry
            .write()
            .remove(&name)
            .ok_or(Exit::raised(atom::BADARG))?;
        if let Some(h) = self.sh.lookup(pid) {
            let _ = h.name.compare_exchange(name, NO_NAME, SeqCst, SeqCst);
        }
        Ok(())
    }

    fn whereis(&self, name: u32) -> Option<u32> {
        self.sh.registry.read().get(&name).copied()
    }

    fn make_ref(&mut self, p: &mut Process) -> u64 {
        let r = self.sh.refs.fetch_add(1, Relaxed) + 1;
        p.mailbox.mark_ref(r);
        r
    }

    fn received(&mut self, p: &mut Process, msg: Term, seq: u64) {
        self.cancel_timer(p);
        self.stats.messages_received += 1;
        if self.sh.tracing {
            let text = self.sh.format(msg);
            let id = match self.sh.msg_ids.lock().remove(&(p.pid, seq)) {
                Some(id) => format!("s{id}"),
                None => format!("{}.{seq}", p.pid),
            };
            if let Some(t) = self.sh.trace.lock().as_mut() {
                t.receive(p.pid, &text, &id);
            }
        }
    }

    fn drain(&mut self, p: &mut Process) -> Effect<bool> {
        let h = self.me();
        if !h.pending.load(Acquire) {
            return Ok(false);
        }
        let batch = {
            let mut inner = h.inner.lock();
            h.pending.store(false, Relaxed);
            std::mem::take(&mut inner.signals)
        };
        self.apply_batch(p, batch)
    }

    fn collect(&mut self, p: &mut Process, roots: &mut [Term]) {
        let t0 = Instant::now();
        let before = p.heap.used_bytes();
        let majors = p.heap.major_collections();
        p.collect(&self.sh.prog.literals, roots);
        let took = t0.elapsed();
        self.stats.gc_runs += 1;
        self.stats.gc_major_runs += p.heap.major_collections() - majors;
        self.stats.gc_nanos += took.as_nanos() as u64;
        if self.sh.tracing {
            if let Some(t) = self.sh.trace.lock().as_mut().filter(|t| t.gc) {
                t.gc(p.pid, before, p.heap.used_bytes(), took.as_micros() as u64);
            }
        }
    }

    fn tracing(&self) -> bool {
        self.sh.tracing
    }

    fn trace_event(&mut self, event: serde_json::Value) {
        if let Some(t) = self.sh.trace.lock().as_mut() {
            t.event(event);
        }
    }

    fn room(&self, p: &Process) -> usize {
        self.room_for(p)
    }

    fn over_limit(&self, p: &Process) -> bool {
        let mine = p.memory();
        mine > self.sh.config.max_heap_bytes
            || total_with(self.memory(), p, mine) > self.sh.config.max_memory_bytes
    }

    fn max_stack(&self) -> usize {
        self.sh.config.max_stack
    }

    fn report(&mut self, line: &str) {
        if !self.sh.config.quiet_reports {
            self.sh.write_err(line);
        }
    }

    fn print(&mut self, line: &[u8]) -> bool {
        let result = self.sh.out.lock().write_all(line);
        match result {
            Ok(()) => true,
            Err(e) => {
                self.sh.output_failed("standard output", &e);
                false
            }
        }
    }

    fn now_ms(&self) -> u64 {
        self.sh.now_ms()
    }

    fn arm_timer(&mut self, p: &mut Process, ms: u64) {
        let seq = self.sh.timer_seq.fetch_add(1, Relaxed) + 1;
        let deadline = self.sh.now_ms().saturating_add(ms).min(CLOCK_MAX);
        p.timer = (deadline, seq);
        self.sh.timers.lock().insert(p.timer, p.pid);
        self.sh.next_deadline.fetch_min(deadline, AcqRel);
    }

    fn cancel_timer(&mut self, p: &mut Process) {
        if p.timer != (0, 0) {
            self.sh.timers.lock().remove(&p.timer);
            p.timer = (0, 0);
        }
    }

    fn stats(&mut self) -> &mut Stats {
        &mut self.stats
    }
    fn remote_inbox(&self) -> &Arc<super::host::RemoteInbox> {
        &self.sh.remote
    }
}

impl Sched<'_> {
    /// Applies `batch` in order (true when a message came), until a signal makes `p` exit:
    /// what that left untaken goes back in front of what arrived since.
    fn apply_batch(&mut self, p: &mut Process, batch: Inbox) -> Effect<bool> {
        let mut got = false;
        let mut signals = batch.into_iter();
        while let Some(sig) = signals.next() {
            if let Err(exit) = self.apply_signal(p, sig, &mut got) {
                let rest: Inbox = signals.collect();
                if !rest.is_empty() {
                    let h = self.me();
                    let mut inner = h.inner.lock();
                    let newer = std::mem::replace(&mut inner.signals, rest);
                    inner.signals.extend(newer);
                    h.pending.store(true, Release);
                }
                return Err(exit);
            }
        }
        Ok(got)
    }

    /// Under `--trace`: the message that just joined `p`'s mailbox keeps the name its send
    /// gave it, for the receive that takes it.
    fn name_arrival(&mut self, p: &Process) {
        if let (Some(id), Some(seq)) = (self.traced_next.take(), p.mailbox.newest_seq()) {
            self.sh.msg_ids.lock().insert((p.pid, seq), id);
        }
    }

    /// Applies one signal to `p`; `got` is set when it adds a message (or a timeout).
    fn apply_signal(&mut self, p: &mut Process, sig: Signal, got: &mut bool) -> Effect {
        {
            match sig {
                Signal::Flat(words) => {
                    if 8 * FLAT_WORDS + MAILBOX_SLOT_BYTES > self.room_for(p) {
                        self.collect(p, &mut []);
                        if 8 * FLAT_WORDS + MAILBOX_SLOT_BYTES > self.room_for(p) {
                            return Err(Exit::raised(atom::HEAP_LIMIT));
                        }
                    }
                    let msg = p.heap.unflatten(&words);
                    p.deliver(msg);
                    self.name_arrival(p);
                    *got = true;
                }
                Signal::Message { frag, msg } => {
                    let room = self.room_for(p);
                    if frag.used_bytes() + MAILBOX_SLOT_BYTES > room {
                        // Collect once: what is garbage makes room.
                        self.collect(p, &mut []);
                        if frag.used_bytes() + MAILBOX_SLOT_BYTES > self.room_for(p) {
                            return Err(Exit::raised(atom::HEAP_LIMIT));
                        }
                    }
                    p.heap.adopt(frag);
                    p.deliver(msg);
                    self.name_arrival(p);
                    *got = true;
                }
                Signal::TooBig => return Err(Exit::raised(atom::HEAP_LIMIT)),
                Signal::Exit {
                    from,
                    reason,
                    frag,
                    link,
                } => *got |= self.apply_exit(p, from, reason, frag, link)?,
                Signal::Link { from } => p.relations().links.insert(from),
                Signal::Unlink { from } => p.unlink_from(from),
                Signal::Monitor { from, r, who } => {
                    p.relations().watchers.insert(r, (from, who));
                }
                Signal::Demonitor { r } => p.drop_watcher(r),
                Signal::Down {
                    r,
                    who,
                    reason,
                    frag,
                } => {
                    // A `:DOWN` after `demonitor` is dropped.
                    if p.drop_monitor(r).is_some() {
                        p.heap.adopt(frag);
                        let msg = p.heap.down_message(r, who, reason);
                        self.deliver_local(p, msg)?;
                        *got = true;
                    }
                }
                Signal::Traced { id } => self.traced_next = Some(id),
                Signal::Timeout { key } => {
                    if p.timer == key {
                        p.timer = (0, 0);
                        p.timed_out = true;
                        *got = true;
                    }
                }
            }
        }
        Ok(())
    }

    /// Sends `msg` (from `p`, whose heap has `src_words` words) to `h`'s process. To a
    /// waiting process, straight into its heap: its body is this scheduler's from the moment
    /// it is taken out of the handle until it is queued, so no other thread uses that heap,
    /// and every later signal queues behind this message. To a running or queued one, as a
    /// signal.
    fn send_to(&mut self, p: &mut Process, h: &Arc<Handle>, msg: Outgoing<'_>, src_words: usize) {
        let mut inner = h.inner.lock();
        match inner.state {
            DEAD => {
                drop(inner);
                if let Outgoing::Term(v) = msg {
                    self.trace_send(p.pid, h.pid, v, || None);
                }
            }
            WAITING => {
                let mut body = wake(h, &mut inner).expect("a waiting process");
                drop(inner);
                // It will most likely send to the process it last sent to, some slices from
                // now: load that handle into this core's cache while it waits in the queue
                // (a relay in a ring of many processes otherwise misses it at every send).
                if let Some(next) = &body.peer {
                    prefetch::<2>(Arc::as_ptr(next).addr());
                    body.peer_at.prefetch();
                }
                let delivered = self.deliver_into(p, &mut body, msg, src_words);
                p.peer_at.record(&body);
                if !delivered {
                    // No room in its heap as it is: it takes the message as a signal when it
                    // runs (and collects, or crashes `:heap_limit`), before any that came since.
                    let id = self.msg_id();
                    let sig = self.message_signal(p, h.pid, msg, src_words, id);
                    let mut inner = h.inner.lock();
                    inner.signals.insert(0, sig);
                    if let Some(id) = id {
                        inner.signals.insert(0, Signal::Traced { id });
                    }
                    h.pending.store(true, Release);
                }
                self.enqueue(body);
            }
            _ => {
                // Most messages are a few words: written out flat, under the lock.
                let mut flat = Flat::new();
                let lits = &self.sh.prog.literals;
                let small = match msg {
                    Outgoing::Term(v) => flatten(v, lits, &mut flat),
                    Outgoing::Template(t, _) => t.flatten(&p.regs, lits, &mut flat),
                };
                if small {
                    let id = self.msg_id();
                    if let Some(id) = id {
                        inner.signals.push(Signal::Traced { id });
                    }
                    inner.signals.push(Signal::Flat(flat));
                    h.pending.store(true, Release);
                    drop(inner);
                    if let Some(id) = id {
                        let v = p.heap.unflatten(&flat);
                        self.trace_send(p.pid, h.pid, v, || Some(format!("s{id}")));
                    }
                    return;
                }
                drop(inner);
                let id = self.msg_id();
                let sig = self.message_signal(p, h.pid, msg, src_words, id);
                match id {
                    Some(id) => self.signals(h, [Signal::Traced { id }, sig]),
                    None => self.signal(h, sig),
                };
            }
        }
    }

    /// Builds `msg` (from `p`) in `to`'s heap, within its room, and delivers it; false when
    /// it does not fit.
    fn deliver_into(
        &mut self,
        p: &Process,
        to: &mut Process,
        msg: Outgoing<'_>,
        src_words: usize,
    ) -> bool {
        let lits = &self.sh.prog.literals;
        let room = self.room_for(to).saturating_sub(MAILBOX_SLOT_BYTES) / 8;
        let built = match msg {
            Outgoing::Term(v) => to.heap.copy_into(v, lits, src_words, room),
            Outgoing::Template(t, image) => {
                t.build_into(&p.regs, image, &mut to.heap, lits, src_words, room)
            }
        };
        let Ok(v) = built else {
            return false;
        };
        to.deliver(v);
        let seq = to.mailbox.newest_seq();
        let to_pid = to.pid;
        self.trace_send(p.pid, to_pid, v, || seq.map(|n| format!("{to_pid}.{n}")));
        if to.heap.used_bytes() > self.sh.config.max_heap_bytes {
            // A copy that began as a tree and turned out to be a DAG left garbage.
            self.collect(to, &mut []);
        }
        true
    }

    /// Under `--trace`, a number for a message sent as a signal.
    fn msg_id(&self) -> Option<u64> {
        self.sh
            .tracing
            .then(|| self.sh.next_msg_id.fetch_add(1, Relaxed))
    }

    /// `msg` as a signal: flat when it is small, else in a fragment of its own; `id`: its
    /// number under `--trace`.
    fn message_signal(
        &self,
        p: &mut Process,
        to: u32,
        msg: Outgoing<'_>,
        src_words: usize,
        id: Option<u64>,
    ) -> Signal {
        let name = move || id.map(|id| format!("s{id}"));
        let lits = &self.sh.prog.literals;
        let mut flat = Flat::new();
        let small = match msg {
            Outgoing::Term(v) => flatten(v, lits, &mut flat),
            Outgoing::Template(t, _) => t.flatten(&p.regs, lits, &mut flat),
        };
        if small {
            if self.sh.tracing {
                let v = p.heap.unflatten(&flat);
                self.trace_send(p.pid, to, v, name);
            }
            return Signal::Flat(flat);
        }
        let mut frag = Heap::with_capacity(FRAGMENT_BYTES);
        let max = self.sh.config.max_heap_bytes / 8;
        let built = match msg {
            Outgoing::Term(v) => frag.copy_into(v, lits, src_words, max),
            Outgoing::Template(t, image) => {
                t.build_into(&p.regs, image, &mut frag, lits, src_words, max)
            }
        };
        match built {
            Ok(v) => {
                self.trace_send(p.pid, to, v, name);
                Signal::Message { frag, msg: v }
            }
            Err(TooBig) => Signal::TooBig,
        }
    }

    /// `id` is only called under `--trace`: the message ids are text, made for the trace.
    fn trace_send(&self, from: u32, to: u32, msg: Term, id: impl FnOnce() -> Option<String>) {
        if self.sh.tracing {
            let text = self.sh.format(msg);
            let id = id();
            if let Some(t) = self.sh.trace.lock().as_mut() {
                t.send(from, to, &text, id.as_deref());
            }
        }
    }
}
