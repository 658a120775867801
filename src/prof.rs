//! `ember prof`: runs a program with an instruction probe and reports where its reductions went.
//!
//! The probe is a type parameter of the interpreter loop, so `ember run` is compiled without it.
//! The report goes to standard error, leaving the program's own output on standard output.

use ember_vm::isa::{Instr, Opcode};
use ember_vm::vm::{RunEnd, Vm};
use ember_vm::Probe;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

/// Counts reductions per opcode and, optionally, per call stack.
pub struct Profiler {
    /// Reductions by opcode.
    pub ops: Vec<u64>,
    stacks: Option<Stacks>,
}

struct Stacks {
    code: Vec<Instr>,
    ids: HashMap<Vec<u32>, usize>,
    keys: Vec<Vec<u32>>,
    counts: Vec<u64>,
    /// (pid, depth, stack id) of the previous instruction: consecutive instructions of one
    /// process at the same depth share their stack, so most lookups are skipped.
    last: Option<(u32, usize, usize)>,
}

impl Stacks {
    fn stack_id(&mut self, pid: u32, entry: u32, frames: &[u32]) -> usize {
        if let Some((lp, depth, id)) = self.last {
            if lp == pid && depth == frames.len() {
                return id;
            }
        }
        // A stack is the process's entry label, then the target of each `call` on it.
        let mut key = Vec::with_capacity(frames.len() + 1);
        key.push(entry);
        for &ret in frames {
            match self.code.get(ret as usize - 1) {
                Some(Instr::Call { target, .. }) => key.push(target.0),
                _ => key.push(ret - 1),
            }
        }
        let id = match self.ids.get(&key) {
            Some(&id) => id,
            None => {
                let id = self.keys.len();
                self.ids.insert(key.clone(), id);
                self.keys.push(key);
                self.counts.push(0);
                id
            }
        };
        self.last = Some((pid, frames.len(), id));
        id
    }
}

impl Probe for Profiler {
    #[inline]
    fn instr(&mut self, pid: u32, entry: u32, frames: &[u32], _pc: u32, op: Opcode) {
        self.ops[op as usize] += 1;
        if let Some(s) = self.stacks.as_mut() {
            let id = s.stack_id(pid, entry, frames);
            s.counts[id] += 1;
        }
    }

    #[inline]
    fn work(&mut self, n: u64) {
        self.ops[Opcode::Work as usize] += n;
        if let Some(s) = self.stacks.as_mut() {
            if let Some((_, _, id)) = s.last {
                s.counts[id] += n;
            }
        }
    }
}

impl Profiler {
    pub fn new(code: Option<Vec<Instr>>) -> Profiler {
        Profiler {
            ops: vec![0; Opcode::ALL.len()],
            stacks: code.map(|code| Stacks {
                code,
                ids: HashMap::new(),
                keys: Vec::new(),
                counts: Vec::new(),
                last: None,
            }),
        }
    }

    /// The folded stacks (`a;b;c COUNT` per line), named `module:label`.
    pub fn folded(&self, vm: &Vm) -> String {
        let mut out = String::new();
        let Some(s) = &self.stacks else {
            return out;
        };
        let module = &vm.program().module;
        let mut lines: Vec<(String, u64)> = s
            .keys
            .iter()
            .zip(&s.counts)
            .filter(|(_, &n)| n > 0)
            .map(|(key, &n)| {
                let names: Vec<String> = key.iter().map(|&pc| module.function_name(pc)).collect();
                (names.join(";"), n)
            })
            .collect();
        lines.sort();
        for (stack, n) in lines {
            let _ = writeln!(out, "{stack} {n}");
        }
        out
    }
}

fn share(n: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        n as f64 * 100.0 / total as f64
    }
}

/// The human-readable report.
pub fn report(vm: &Vm, prof: &Profiler, wall: std::time::Duration) -> String {
    let mut r = String::new();
    let total: u64 = prof.ops.iter().sum();
    let _ = writeln!(r, "== instruction histogram (reductions by opcode)");
    let mut ops: Vec<(Opcode, u64)> = Opcode::ALL
        .iter()
        .map(|&op| (op, prof.ops[op as usize]))
        .filter(|(_, n)| *n > 0)
        .collect();
    ops.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    for (op, n) in ops {
        let _ = writeln!(
            r,
            "  {:<12} {:>14} {:>6.2}%",
            op.mnemonic(),
            n,
            share(n, total)
        );
    }
    let _ = writeln!(r, "  {:<12} {:>14}", "total", total);

    let st = &vm.stats;
    let procs = &st.top;
    let _ = writeln!(r, "== top processes by reductions");
    let _ = writeln!(
        r,
        "  {:<10} {:>14} {:>7} {:>12} {:>12} {:>6}",
        "pid", "reductions", "share", "peak heap", "mailbox max", "GCs"
    );
    for p in procs.iter().take(10) {
        let _ = writeln!(
            r,
            "  {:<10} {:>14} {:>6.2}% {:>12} {:>12} {:>6}",
            format!("<0.{}>", p.pid),
            p.reductions,
            share(p.reductions, st.reductions),
            p.peak_heap,
            p.mailbox_peak,
            p.collections
        );
    }
    let _ = writeln!(r, "== scheduler");
    let _ = writeln!(r, "  reductions          {}", st.reductions);
    let _ = writeln!(r, "  slices              {}", st.slices);
    let _ = writeln!(r, "  context switches    {}", st.context_switches);
    let _ = writeln!(r, "  processes spawned   {}", st.spawns);
    let _ = writeln!(r, "  messages sent       {}", st.messages_sent);
    let _ = writeln!(r, "  messages received   {}", st.messages_received);
    let _ = writeln!(r, "  messages tested     {}", st.messages_tested);
    let _ = writeln!(r, "  mailbox high water  {}", st.mailbox_peak);
    for sc in &st.schedulers {
        let _ = writeln!(
            r,
            "  scheduler {:<3}       {} slices, {} steals, {:.3} ms idle",
            sc.id,
            sc.slices,
            sc.steals,
            sc.idle_nanos as f64 / 1e6
        );
    }
    let _ = writeln!(r, "  GC runs             {}", st.gc_runs);
    let _ = writeln!(
        r,
        "  time in GC          {:.3} ms",
        st.gc_nanos as f64 / 1e6
    );
    let _ = writeln!(r, "  peak heap (one process) {} bytes", st.peak_heap);
    let _ = writeln!(
        r,
        "  wall time           {:.3} ms",
        wall.as_secs_f64() * 1e3
    );
    r
}

/// Runs `vm` under the profiler, prints the report to stderr and writes folded stacks.
pub fn profile(vm: &mut Vm, folded: Option<&Path>) -> Result<RunEnd, String> {
    let code = folded.map(|_| vm.program().code.clone());
    let mut prof = Profiler::new(code);
    let t0 = Instant::now();
    let end = vm.run_with(&mut prof);
    let wall = t0.elapsed();
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(report(vm, &prof, wall).as_bytes());
    if let Some(path) = folded {
        std::fs::write(path, prof.folded(vm))
            .map_err(|e| format!("{}: error: cannot write folded stacks: {e}", path.display()))?;
    }
    Ok(end)
}
