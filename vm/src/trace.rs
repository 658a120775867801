//! `--trace PATH`: scheduler and process events as JSON Lines, in the order they happen.
//!
//! Events are written at spawn, send, receive, exit, timeout and at the end of every slice; the
//! interpreter's dispatch loop never looks at the tracer.

use serde_json::{json, Value};
use std::io::Write;

pub struct Tracer {
    out: Box<dyn Write + Send>,
    /// Set by the first failed write; the VM ends the run with it (spec §10).
    failed: bool,
    error: Option<std::io::Error>,
}

impl Tracer {
    pub fn new(out: Box<dyn Write + Send>) -> Tracer {
        Tracer {
            out,
            failed: false,
            error: None,
        }
    }

    fn emit(&mut self, v: Value) {
        if self.failed {
            return;
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

    pub fn spawn(&mut self, pid: u32, child: u32, link: bool) {
        self.emit(json!({"ev": "spawn", "pid": pid, "child": child, "link": link}));
    }
    pub fn send(&mut self, from: u32, to: u32, msg: &str) {
        self.emit(json!({"ev": "send", "from": from, "to": to, "msg": msg}));
    }
    pub fn receive(&mut self, pid: u32, msg: &str) {
        self.emit(json!({"ev": "receive", "pid": pid, "msg": msg}));
    }
    pub fn timeout(&mut self, pid: u32) {
        self.emit(json!({"ev": "timeout", "pid": pid}));
    }
    pub fn exit(&mut self, pid: u32, reason: &str) {
        self.emit(json!({"ev": "exit", "pid": pid, "reason": reason}));
    }
    pub fn slice(&mut self, pid: u32, reds: u64, outcome: &str, queue: &[u32]) {
        self.emit(
            json!({"ev": "slice", "pid": pid, "reds": reds, "outcome": outcome, "queue": queue}),
        );
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
