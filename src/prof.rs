//! `ember prof`: runs a program with an instruction probe and reports where its reductions went.
//!
//! The probe is a type parameter of the interpreter loop, so `ember run` is compiled without it.
//! The report goes to standard error, leaving the program's own output on standard output.

use ember_vm::isa::{Instr, Opcode};
use ember_vm::vm::{RunEnd, Vm};
use ember_vm::Probe;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::BuildHasherDefault;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

/// Counts reductions per opcode and, optionally, per call stack.
pub struct Profiler {
    /// Reductions by opcode.
    pub ops: Vec<u64>,
    stacks: Option<Stacks>,
}

/// Call stacks as a tree: each node is a function (the pc of its first instruction) called
/// from its parent node; a stack is its deepest node.
struct Stacks {
    code: Vec<Instr>,
    /// (parent node or `ROOT`, function) -> node.
    ids: HashMap<(usize, u32), usize, BuildHasherDefault<WordHasher>>,
    /// Per node: its parent and its function.
    nodes: Vec<(usize, u32)>,
    counts: Vec<u64>,
    /// Per process, the nodes of its frames, outermost first: a shadow of its call stack, kept
    /// in step with the frames the probe sees (a call adds one, a return or a caught crash
    /// drops some).
    shadows: HashMap<u32, Vec<usize>>,
    /// The process that ran last and its shadow (out of `shadows` while it runs).
    current: Option<(u32, Vec<usize>)>,
    /// (pid, depth, node) of the previous instruction: consecutive instructions of one
    /// process at the same depth share their stack, so most lookups are skipped.
    last: Option<(u32, usize, usize)>,
}

const ROOT: usize = usize::MAX;

/// A multiply-rotate hasher for the profiler's small integer keys (the standard one is built to
/// resist chosen keys, which a profile of one's own program does not need).
#[derive(Default)]
struct WordHasher(u64);

impl std::hash::Hasher for WordHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

impl Stacks {
    fn node(&mut self, parent: usize, function: u32) -> usize {
        if let Some(&id) = self.ids.get(&(parent, function)) {
            return id;
        }
        let id = self.nodes.len();
        self.ids.insert((parent, function), id);
        self.nodes.push((parent, function));
        self.counts.push(0);
        id
    }

    fn stack_id(&mut self, pid: u32, entry: u32, frames: &[u32], pc: u32) -> usize {
        let depth = frames.len();
        if let Some((lp, ld, id)) = self.last {
            if lp == pid && ld == depth {
                return id;
            }
        }
        let mut shadow = match self.current.take() {
            Some((p, shadow)) if p == pid => shadow,
            other => {
                if let Some((p, shadow)) = other {
                    self.shadows.insert(p, shadow);
                }
                self.shadows.remove(&pid).unwrap_or_default()
            }
        };
        if shadow.is_empty() {
            shadow.push(self.node(ROOT, entry));
        }
        // Returned, or a caught crash cut the stack back.
        shadow.truncate(depth + 1);
        // Entered calls. Frame k's return address follows its call: a `call` names its target;
        // a `call_fun`'s target is where the callee starts, the pc of its first instruction
        // when the probe sees the call as it happens (the case but for a missed instruction,
        // where the call site has to do).
        while shadow.len() < depth + 1 {
            let k = shadow.len();
            let ret = frames[k - 1];
            let function = match self.code.get(ret as usize - 1) {
                Some(Instr::Call { target, .. }) => target.0,
                Some(Instr::CallFun { .. }) if k == depth => pc,
                _ => ret - 1,
            };
            let parent = *shadow.last().expect("a root");
            let id = self.node(parent, function);
            shadow.push(id);
        }
        let id = *shadow.last().expect("a root");
        self.current = Some((pid, shadow));
        self.last = Some((pid, depth, id));
        id
    }

    /// The functions of node `id`, outermost first.
    fn path(&self, mut id: usize) -> Vec<u32> {
        let mut path = Vec::new();
        while id != ROOT {
            let (parent, function) = self.nodes[id];
            path.push(function);
            id = parent;
        }
        path.reverse();
        path
    }
}

impl Probe for Profiler {
    #[inline]
    fn instr(&mut self, pid: u32, entry: u32, frames: &[u32], pc: u32, op: Opcode) {
        self.ops[op as usize] += 1;
        if let Some(s) = self.stacks.as_mut() {
            let id = s.stack_id(pid, entry, frames, pc);
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
                ids: HashMap::default(),
                nodes: Vec::new(),
                counts: Vec::new(),
                shadows: HashMap::new(),
                current: None,
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
        let lines: Vec<(String, u64)> = s
            .counts
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(id, &n)| {
                let names: Vec<String> = s
                    .path(id)
                    .iter()
                    .map(|&pc| module.function_name(pc))
                    .collect();
                (names.join(";"), n)
            })
            .collect();
        // Two nodes may name the same stack (a function reached at two of its labels):
        // one line each.
        let mut merged: std::collections::BTreeMap<String, u64> = Default::default();
        for (stack, n) in lines {
            *merged.entry(stack).or_default() += n;
        }
        for (stack, n) in merged {
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

/// What `ember prof` writes besides its report.
pub struct Outputs {
    /// The folded call stacks.
    pub folded: Option<PathBuf>,
    /// Their flame graph.
    pub svg: Option<PathBuf>,
}

/// Runs `vm` under the profiler, prints the report to stderr and writes the folded stacks and
/// the flame graph asked for.
pub fn profile(vm: &mut Vm, outputs: &Outputs) -> Result<RunEnd, String> {
    let stacks = outputs.folded.is_some() || outputs.svg.is_some();
    let code = stacks.then(|| vm.program().code.clone());
    let mut prof = Profiler::new(code);
    let t0 = Instant::now();
    let end = vm.run_with(&mut prof);
    let wall = t0.elapsed();
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(report(vm, &prof, wall).as_bytes());
    let folded = prof.folded(vm);
    if let Some(path) = &outputs.folded {
        std::fs::write(path, &folded)
            .map_err(|e| format!("{}: error: cannot write folded stacks: {e}", path.display()))?;
    }
    if let Some(path) = &outputs.svg {
        let cannot = |e: std::io::Error| {
            format!(
                "{}: error: cannot write the flame graph: {e}",
                path.display()
            )
        };
        let file = std::fs::File::create(path).map_err(cannot)?;
        let mut opts = inferno::flamegraph::Options::default();
        opts.title = "ember prof".to_string();
        opts.count_name = "reductions".to_string();
        let mut out = std::io::BufWriter::new(file);
        inferno::flamegraph::from_lines(&mut opts, folded.lines(), &mut out).map_err(cannot)?;
        out.flush().map_err(cannot)?;
    }
    Ok(end)
}
