//! `ember prof`: runs a program with an instruction probe and reports where its reductions went.
//!
//! The probe is a type parameter of the interpreter loop, so `ember run` is compiled without it.
//! The report goes to standard error, leaving the program's own output on standard output.

use ember_vm::isa::{Instr, Opcode};
use ember_vm::vm::{RunEnd, Vm};
use ember_vm::Probe;
use foldhash::HashMap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

/// Counts reductions per instruction and, when `STACKS`, per call stack. The opcode histogram
/// is summed from the per-instruction counts at the end, and a stack's reductions are read off
/// the slice's budget when the frames change, so the probe's work per instruction is one
/// increment: a profiled run stays close to a plain one.
pub struct Profiler<const STACKS: bool> {
    /// Reductions by pc.
    counts: Vec<u64>,
    /// By pc: how often the instruction after it in the code ran straight after it (in the same
    /// slice), the count a superinstruction fusing the two would have run.
    pairs: Vec<u64>,
    /// The pc after the one that ran last in this slice, or `NO_PID` (no pc) at its start.
    after_last: u32,
    stacks: Stacks,
}

/// Call stacks as a tree: each node is a function (the pc of its first instruction) called
/// from its parent node; a stack is its deepest node.
struct Stacks {
    /// Per return address r: the function the call before it called (`call`'s target), or
    /// `DYNAMIC` for a `call_fun`, or r - 1 when r follows no call (the stack of a process
    /// that has not run since the profile began cannot be anything else).
    callees: Vec<u32>,
    /// Per node: its first child as (function, node), or `(NO_FUNCTION, 0)`: a recursive or
    /// single-callee function finds its child here without a scan.
    first_child: Vec<(u32, usize)>,
    /// Per node: its parent and its function.
    nodes: Vec<(usize, u32)>,
    /// Per node: its children as (function, node); a node has few, so a scan beats a hash.
    children: Vec<Vec<(u32, usize)>>,
    /// The nodes of processes' entries, by function.
    roots: HashMap<u32, usize>,
    /// Reductions per node.
    counts: Vec<u64>,
    /// Per process, the nodes of its frames, outermost first: a shadow of its call stack, kept
    /// in step with the frames the probe sees (a call adds one, a return or a caught crash
    /// drops some).
    shadows: HashMap<u32, Vec<usize>>,
    /// The process that ran last and its shadow (out of `shadows` while it runs).
    pid: u32,
    shadow: Vec<usize>,
    /// The node that the reductions go to: the last of `shadow`.
    node: usize,
    /// The reductions the slice had left when `node` was last brought up to date, or `OUT`
    /// between slices.
    left: u32,
}

const ROOT: usize = usize::MAX;
/// No process has pid `u32::MAX`, so the first instruction always looks at the shadow.
const NO_PID: u32 = u32::MAX;
/// `left` between slices: no budget is this large, so nothing is settled then.
const OUT: u32 = u32::MAX;
/// In `callees`: the callee is only known when the call is seen.
const DYNAMIC: u32 = u32::MAX;
/// In `first_child`: no child yet (no function starts past the code).
const NO_FUNCTION: u32 = u32::MAX;

impl Stacks {
    fn new(code: &[Instr]) -> Stacks {
        let mut callees: Vec<u32> = (0..=code.len() as u32).map(|r| r.wrapping_sub(1)).collect();
        for (pc, instr) in code.iter().enumerate() {
            callees[pc + 1] = match instr {
                Instr::Call { target, .. } | Instr::CallExt { target, .. } => target.0,
                Instr::CallFun { .. } => DYNAMIC,
                _ => continue,
            };
        }
        Stacks {
            callees,
            first_child: Vec::new(),
            nodes: Vec::new(),
            children: Vec::new(),
            roots: HashMap::default(),
            counts: Vec::new(),
            shadows: HashMap::default(),
            pid: NO_PID,
            shadow: Vec::new(),
            node: 0,
            left: OUT,
        }
    }

    /// The node of `function` called from `parent` (`ROOT` for a process's entry).
    fn node(&mut self, parent: usize, function: u32) -> usize {
        let found = if parent == ROOT {
            self.roots.get(&function).copied()
        } else {
            let kids = &self.children[parent];
            kids.iter().find(|(f, _)| *f == function).map(|&(_, id)| id)
        };
        if let Some(id) = found {
            return id;
        }
        let id = self.nodes.len();
        self.nodes.push((parent, function));
        self.children.push(Vec::new());
        self.first_child.push((NO_FUNCTION, 0));
        self.counts.push(0);
        if parent == ROOT {
            self.roots.insert(function, id);
        } else {
            self.children[parent].push((function, id));
            if self.first_child[parent].0 == NO_FUNCTION {
                self.first_child[parent] = (function, id);
            }
        }
        id
    }

    /// Gives the reductions spent since the last look to the current node.
    #[inline(always)]
    fn settle(&mut self, left: u32) {
        if self.left != OUT {
            self.counts[self.node] += u64::from(self.left - left);
        }
    }

    /// The function a frame returning to `ret` called: a `call` names it; a `call_fun`'s callee
    /// is `entered`, where it began, when known.
    #[inline(always)]
    fn callee(&self, ret: u32, entered: u32) -> u32 {
        // Code loaded while the profile runs (`code:load`) is past the table: its calls are
        // not known, so its frames are named by where they return to.
        match self.callees.get(ret as usize).copied() {
            Some(DYNAMIC) => entered,
            Some(f) => f,
            None => ret.wrapping_sub(1),
        }
    }

    /// Brings the shadow of `pid` in step with `frames`.
    #[cold]
    #[inline(never)]
    fn switch(&mut self, pid: u32, entry: u32, frames: &[u32], pc: u32) {
        if pid != self.pid {
            let shadow = self.shadows.remove(&pid).unwrap_or_default();
            let old = std::mem::replace(&mut self.shadow, shadow);
            if self.pid != NO_PID {
                self.shadows.insert(self.pid, old);
            }
            self.pid = pid;
        }
        let depth = frames.len();
        if self.shadow.is_empty() {
            let root = self.node(ROOT, entry);
            self.shadow.push(root);
        }
        // Returned, or a caught crash cut the stack back.
        self.shadow.truncate(depth + 1);
        // Entered calls: frame k's return address follows its call. The innermost callee began
        // at `pc` if the probe sees the call as it happens; for the others (at a slice's start)
        // a `call_fun`'s site has to do.
        while self.shadow.len() < depth + 1 {
            let k = self.shadow.len();
            let ret = frames[k - 1];
            let function = if k == depth {
                self.callee(ret, pc)
            } else {
                self.callee(ret, ret - 1)
            };
            let parent = *self.shadow.last().expect("a root");
            let id = self.node(parent, function);
            self.shadow.push(id);
        }
        self.node = *self.shadow.last().expect("a root");
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

impl<const STACKS: bool> Probe for Profiler<STACKS> {
    #[inline(always)]
    fn instr(&mut self, pc: u32) {
        if pc as usize >= self.counts.len() {
            self.grow(pc);
        }
        self.counts[pc as usize] += 1;
        if pc == self.after_last {
            self.pairs[pc as usize - 1] += 1;
        }
        self.after_last = pc + 1;
    }

    #[inline(always)]
    fn work(&mut self, pc: u32, n: u64) {
        if pc as usize >= self.counts.len() {
            self.grow(pc);
        }
        self.counts[pc as usize] += n;
    }

    fn slice_start(&mut self, pid: u32, entry: u32, frames: &[u32], pc: u32, reds: u32) {
        self.after_last = NO_PID;
        if STACKS {
            let s = &mut self.stacks;
            s.settle(reds);
            s.left = reds;
            s.switch(pid, entry, frames, pc);
        }
    }

    #[inline(always)]
    fn moved(&mut self, frames: &[u32], pc: u32, reds: u32) {
        if STACKS {
            let s = &mut self.stacks;
            s.settle(reds);
            s.left = reds;
            let (depth, len) = (frames.len(), s.shadow.len());
            // The common cases, a call or a return, touch only the end of the shadow.
            if depth + 2 == len {
                s.shadow.pop();
                s.node = s.shadow[depth];
            } else if depth == len && depth > 0 {
                let function = s.callee(frames[depth - 1], pc);
                s.node = match s.first_child[s.node] {
                    (f, id) if f == function => id,
                    _ => s.node(s.node, function),
                };
                s.shadow.push(s.node);
            } else {
                // (The shadow is not empty after `slice_start`: no entry is needed.)
                s.switch(s.pid, NO_PID, frames, pc);
            }
        }
    }

    #[inline]
    fn slice_end(&mut self, reds: u32) {
        if STACKS {
            let s = &mut self.stacks;
            s.settle(reds);
            s.left = OUT;
        }
    }
}

impl<const STACKS: bool> Profiler<STACKS> {
    pub fn new(code: &[Instr]) -> Profiler<STACKS> {
        Profiler {
            counts: vec![0; code.len()],
            pairs: vec![0; code.len()],
            after_last: NO_PID,
            stacks: Stacks::new(if STACKS { code } else { &[] }),
        }
    }

    /// Makes room for the counts of code loaded while the profile runs (`code:load`).
    #[cold]
    fn grow(&mut self, pc: u32) {
        let len = pc as usize + 1;
        self.counts.resize(len, 0);
        self.pairs.resize(len, 0);
    }

    /// Reductions by opcode.
    pub fn ops(&self, vm: &Vm) -> Vec<u64> {
        let mut ops = vec![0; Opcode::ALL.len()];
        for (instr, n) in vm.program().code.iter().zip(&self.counts) {
            ops[instr.opcode() as usize] += n;
        }
        ops
    }

    /// Adjacent pairs by opcodes: how often the second ran straight after the first, most
    /// frequent first.
    pub fn pairs(&self, vm: &Vm) -> Vec<((Opcode, Opcode), u64)> {
        let code = &vm.program().code;
        let mut by_ops: HashMap<(Opcode, Opcode), u64> = HashMap::default();
        for (pc, &n) in self.pairs.iter().enumerate().filter(|(_, &n)| n > 0) {
            *by_ops
                .entry((code[pc].opcode(), code[pc + 1].opcode()))
                .or_default() += n;
        }
        let mut pairs: Vec<_> = by_ops.into_iter().collect();
        pairs.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        pairs
    }

    /// The folded stacks (`a;b;c COUNT` per line), named `module:label`.
    pub fn folded(&self, vm: &Vm) -> String {
        let mut out = String::new();
        if !STACKS {
            return out;
        }
        let s = &self.stacks;
        let module = &vm.program().module;
        // Two nodes may name the same stack (a function reached at two of its labels):
        // one line each.
        let mut merged: std::collections::BTreeMap<String, u64> = Default::default();
        for (id, &n) in s.counts.iter().enumerate().filter(|(_, &n)| n > 0) {
            let names: Vec<String> = s
                .path(id)
                .iter()
                .map(|&pc| module.function_name(pc))
                .collect();
            *merged.entry(names.join(";")).or_default() += n;
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
pub fn report(
    vm: &Vm,
    ops: &[u64],
    pairs: &[((Opcode, Opcode), u64)],
    wall: std::time::Duration,
) -> String {
    let mut r = String::new();
    let total: u64 = ops.iter().sum();
    let _ = writeln!(r, "== instruction histogram (reductions by opcode)");
    let mut ops: Vec<(Opcode, u64)> = Opcode::ALL
        .iter()
        .map(|&op| (op, ops[op as usize]))
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

    // What a superinstruction would fuse: the lowering's fused ops were chosen from this.
    let _ = writeln!(
        r,
        "== adjacent pairs (the second ran straight after the first, the next in the code)"
    );
    for &((a, b), n) in pairs.iter().take(12) {
        let pair = format!("{} {}", a.mnemonic(), b.mnemonic());
        let _ = writeln!(r, "  {:<24} {:>14} {:>6.2}%", pair, n, share(n, total));
    }

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
    let _ = writeln!(
        r,
        "  GC runs             {} ({} major, {} minor)",
        st.gc_runs,
        st.gc_major_runs,
        st.gc_runs - st.gc_major_runs
    );
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
    if outputs.folded.is_some() || outputs.svg.is_some() {
        profile_with::<true>(vm, outputs)
    } else {
        profile_with::<false>(vm, outputs)
    }
}

fn profile_with<const STACKS: bool>(vm: &mut Vm, outputs: &Outputs) -> Result<RunEnd, String> {
    let mut prof = Profiler::<STACKS>::new(&vm.program().code);
    let t0 = Instant::now();
    let end = vm.run_with(&mut prof);
    let wall = t0.elapsed();
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(report(vm, &prof.ops(vm), &prof.pairs(vm), wall).as_bytes());
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
