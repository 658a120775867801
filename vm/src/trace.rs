//! `--trace PATH`: scheduler and process events as JSON Lines, in the order they happen.
//!
//! Events are written at spawn, send, receive, exit, timeout and at the end of every slice; the
//! interpreter's dispatch loop never looks at the tracer. Every event has a time `t`:
//! microseconds since the tracer started, or the virtual milliseconds under `--virtual-time`;
//! with more than one scheduler, the `sched` that wrote it.

use serde_json::{json, Value};
use std::cell::Cell;
use std::io::Write;
use std::time::Instant;

thread_local! {
    /// The scheduler this thread is, when there are several (events say which wrote them).
    static SCHEDULER: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Marks this thread as scheduler `id` (for the `sched` of the events it writes).
pub(crate) fn set_scheduler(id: usize) {
    SCHEDULER.set(Some(id));
}

pub struct Tracer {
    out: Box<dyn Write + Send>,
    /// Set by the first failed write; the VM ends the run with it (spec §10).
    failed: bool,
    error: Option<std::io::Error>,
    start: Instant,
    /// Under `--virtual-time`: the virtual clock, which the VM moves.
    virtual_ms: Option<u64>,
    /// `--trace-gc`: collections are events too.
    pub gc: bool,
}

impl Tracer {
    pub fn new(out: Box<dyn Write + Send>) -> Tracer {
        Tracer {
            out,
            failed: false,
            error: None,
            start: Instant::now(),
            virtual_ms: None,
            gc: false,
        }
    }

    /// The first event of a trace: what its times count (`us`, or `virtual_ms`).
    pub fn header(&mut self) {
        let clock = if self.virtual_ms.is_some() {
            "virtual_ms"
        } else {
            "us"
        };
        self.emit(json!({"ev": "trace", "clock": clock}));
    }

    /// Events are timed by the virtual clock, now at `ms`.
    pub fn set_virtual_now(&mut self, ms: u64) {
        self.virtual_ms = Some(ms);
    }

    /// The time an event written now gets.
    pub fn now(&self) -> u64 {
        match self.virtual_ms {
            Some(ms) => ms,
            None => self.start.elapsed().as_micros() as u64,
        }
    }

    fn emit(&mut self, mut v: Value) {
        if self.failed {
            return;
        }
        v["t"] = json!(self.now());
        if let Some(id) = SCHEDULER.get() {
            v["sched"] = json!(id);
        }
        if let Err(e) = writeln!(self.out, "{v}") {
            self.failed = true;
            self.error = Some(e);
        }
    }

    /// The write error that stopped the trace, once.
    pub fn take_error(&mut self) -> Option<std::io::Error> {
        self.error.take()
    }

    /// An event made elsewhere (links, monitors, names, exit signals, collections).
    pub fn event(&mut self, v: Value) {
        self.emit(v);
    }

    /// A collection of `pid`'s heap: bytes of objects before and after, and how long it took.
    pub fn gc(&mut self, pid: u32, before: usize, after: usize, us: u64) {
        self.emit(json!({"ev": "gc", "pid": pid, "before": before, "after": after, "us": us}));
    }

    pub fn spawn(&mut self, pid: u32, child: u32, link: bool) {
        self.emit(json!({"ev": "spawn", "pid": pid, "child": child, "link": link}));
    }
    /// A message sent, with the `id` the receive that takes it will carry, when it is known
    /// (not for a message to a process that is gone).
    pub fn send(&mut self, from: u32, to: u32, msg: &str, id: Option<&str>) {
        let mut v = json!({"ev": "send", "from": from, "to": to, "msg": msg});
        if let Some(id) = id {
            v["id"] = json!(id);
        }
        self.emit(v);
    }
    /// A receive took the message named `id` (as its `send` was).
    pub fn receive(&mut self, pid: u32, msg: &str, id: &str) {
        self.emit(json!({"ev": "receive", "pid": pid, "msg": msg, "id": id}));
    }
    /// Process `pid` received an exit signal from `from` (through a link, or an `exit`), and
    /// `action` says what it did: `trapped` (an `:EXIT` message), `killed`, `exits` or `ignored`.
    pub fn exit_signal_received(
        &mut self,
        pid: u32,
        from: u32,
        reason: &str,
        link: bool,
        action: &str,
    ) {
        self.emit(json!({
            "ev": "exit_signal_received", "pid": pid, "from": from, "reason": reason,
            "link": link, "action": action
        }));
    }
    pub fn timeout(&mut self, pid: u32) {
        self.emit(json!({"ev": "timeout", "pid": pid}));
    }
    pub fn exit(&mut self, pid: u32, reason: &str) {
        self.emit(json!({"ev": "exit", "pid": pid, "reason": reason}));
    }
    /// A slice of `pid` that began at `start` (a time as `t` is) in function `label`; `queue`:
    /// the run queue after it, front first (one scheduler only: several have a queue each, not
    /// listed, and the slice's `sched` says whose it ran on).
    #[allow(clippy::too_many_arguments)]
    pub fn slice(
        &mut self,
        pid: u32,
        reds: u64,
        outcome: &str,
        queue: Option<&[u32]>,
        start: u64,
        label: &str,
    ) {
        let mut v = json!({
            "ev": "slice", "pid": pid, "reds": reds, "outcome": outcome,
            "start": start, "label": label
        });
        if let Some(queue) = queue {
            v["queue"] = json!(queue);
        }
        self.emit(v);
    }

    pub fn flush(&mut self) {
        if self.failed {
            return;
        }
        if let Err(e) = self.out.flush() {
            self.failed = true;
            self.error = Some(e);
        }
    }
}
