//! The interpreter loop: runs one process for one slice.
//!
//! The boundary with the scheduler is one call, [`run_slice`], which returns whether the process
//! yielded (budget spent), waits in `receive`, exited, or halted the VM. Every instruction costs
//! one reduction (`work n` costs `n`); the process state between slices is only its pc,
//! registers, stacks and heap. Garbage is collected only between instructions, after one that
//! allocated, when every live term is in a register, on a stack or in the mailbox.

use crate::atoms::atom;
use crate::bytecode::ClauseTable;
use crate::heap::Image;
use crate::isa::{Instr, Src, SrcKind};
use crate::map;
use crate::process::{Catch, PeerHint, Process};
use crate::program::{FlatClause, FormatError, MapKey, Pat, Program, SiteInfo};
use crate::runtime::{Exit, Outgoing, Runtime};
use crate::term::{self, Term, View};
use crate::threaded::{Messages, Receiving};
use crate::value::Value;
use smallvec::SmallVec;
use std::cmp::Ordering;

/// How a slice ended.
#[derive(Debug)]
pub enum Outcome {
    /// The budget ran out; the process goes to the back of the queue.
    Yield,
    /// Waiting in `receive`.
    Wait,
    /// The process ended; `raised_at` is the pc of the instruction when the VM raised the
    /// reason (`:badarith`, ...), which is then reported on stderr.
    Exit {
        reason: Term,
        raised_at: Option<u32>,
    },
    /// `halt n`.
    Halt(i32),
}

/// Sees every instruction before it runs, and every change of a process's call frames. The
/// profiler implements it; [`NoProbe`] compiles to nothing, so a plain run pays no
/// per-instruction cost for profiling.
pub trait Probe {
    /// False for [`NoProbe`]: the interpreter then skips every probe call at compile time.
    const ACTIVE: bool = true;
    /// The instruction at `pc` runs, once per run (with [`Probe::moved`] before or after it).
    /// The opcode is not passed: a probe that counts per pc derives it at the end, which costs
    /// less than a lookup per instruction.
    fn instr(&mut self, pc: u32);
    /// The `work` at `pc` spent `n` reductions beyond its own one.
    fn work(&mut self, pc: u32, n: u64);
    /// A slice of process `pid` (`entry`: where it started) began at `pc`, its call frames
    /// (return addresses, outermost first) `frames`, with `reds` reductions in its budget.
    fn slice_start(&mut self, pid: u32, entry: u32, frames: &[u32], pc: u32, reds: u32);
    /// The running process's call frames changed (a call, a return or a caught crash); it goes
    /// on at `pc` with `reds` reductions left. The reductions spent since the last call (or
    /// since the slice began) went to the frames the probe saw then.
    fn moved(&mut self, frames: &[u32], pc: u32, reds: u32);
    /// The slice ended with `reds` reductions left.
    fn slice_end(&mut self, reds: u32);
}

pub struct NoProbe;

impl Probe for NoProbe {
    const ACTIVE: bool = false;
    #[inline(always)]
    fn instr(&mut self, _: u32) {}
    #[inline(always)]
    fn work(&mut self, _: u32, _: u64) {}
    #[inline(always)]
    fn slice_start(&mut self, _: u32, _: u32, _: &[u32], _: u32, _: u32) {}
    #[inline(always)]
    fn moved(&mut self, _: &[u32], _: u32, _: u32) {}
    #[inline(always)]
    fn slice_end(&mut self, _: u32) {}
}

type Binds = SmallVec<[(u8, Term); 8]>;

/// Matches `v` against a pattern, collecting bindings in `binds` (registers are untouched until
/// the caller commits them, so a clause that fails half-way changes nothing).
fn matches(pat: &Pat, v: Term, regs: &[Term], binds: &mut Binds) -> bool {
    match pat {
        Pat::Any => true,
        Pat::Bind(r) => {
            binds.push((*r, v));
            true
        }
        Pat::Same(r) => binds
            .iter()
            .find(|(b, _)| b == r)
            .is_some_and(|(_, t)| term::eq(*t, v)),
        Pat::Pin(r) => term::eq(regs[*r as usize], v),
        // Equal words are equal terms; an immediate equals nothing else.
        Pat::Const(c) => *c == v || (!c.is_immediate() && !v.is_immediate() && term::eq(*c, v)),
        Pat::Tuple(items) => match term::tuple_elems(v) {
            Some(elems) if elems.len() == items.len() => {
                items.iter().zip(elems).all(|(p, &e)| match p {
                    // The leaves most patterns are made of, without a call.
                    Pat::Any => true,
                    Pat::Const(c) if c.is_immediate() => *c == e,
                    Pat::Bind(r) => {
                        binds.push((*r, e));
                        true
                    }
                    _ => matches(p, e, regs, binds),
                })
            }
            _ => false,
        },
        Pat::List(items, tail) => {
            let mut cur = v;
            for p in items.iter() {
                match cur.view() {
                    View::Cons(h, t) => {
                        if !matches(p, h, regs, binds) {
                            return false;
                        }
                        cur = t;
                    }
                    _ => return false,
                }
            }
            matches(tail, cur, regs, binds)
        }
        Pat::Map(pairs) => match map::fields(v) {
            Some(fields) => pairs.iter().all(|(k, p)| {
                let k = match k {
                    MapKey::Const(c) => *c,
                    MapKey::Pin(r) => regs[*r as usize],
                };
                map::get(fields, k).is_some_and(|e| matches(p, e, regs, binds))
            }),
            None => false,
        },
    }
}

fn commit(regs: &mut [Term], binds: &Binds) {
    for &(r, t) in binds {
        regs[r as usize] = t;
    }
}

/// The first clause of `table` matching `v`, its bindings written to `regs` (`binds`: scratch
/// space for the general matcher, which binds only once a whole pattern matched).
#[inline(always)]
fn select<'t>(
    prog: &Program,
    table: &'t ClauseTable,
    site: &SiteInfo,
    v: Term,
    regs: &mut [Term],
    binds: &mut Binds,
) -> Option<&'t crate::bytecode::Clause> {
    match &site.flat {
        Some(flat) => select_flat(table, flat, v, regs),
        None => select_general(prog, table, v, regs, binds),
    }
}

/// [`select`] by the general matcher.
#[inline(never)]
fn select_general<'t>(
    prog: &Program,
    table: &'t ClauseTable,
    v: Term,
    regs: &mut [Term],
    binds: &mut Binds,
) -> Option<&'t crate::bytecode::Clause> {
    let c = table.clauses.iter().find(|c| {
        binds.clear();
        matches(&prog.patterns[c.pattern.0 as usize], v, regs, binds)
    })?;
    commit(regs, binds);
    Some(c)
}

/// [`select`] of a site whose clauses are all flat tuples: the message's elements are compared
/// with each clause's constants, and the first that matches writes its elements to its
/// registers (first occurrences only: no clause reads a register it binds, so there is
/// nothing to undo and no list of bindings to keep).
#[inline(never)]
fn select_flat<'t>(
    table: &'t ClauseTable,
    flat: &[FlatClause],
    v: Term,
    regs: &mut [Term],
) -> Option<&'t crate::bytecode::Clause> {
    let elems = term::tuple_elems(v)?;
    let (c, f) = table
        .clauses
        .iter()
        .zip(flat)
        .find(|(_, f)| f.matches(elems))?;
    for &(i, r) in f.binds.iter() {
        regs[r as usize] = elems[i as usize];
    }
    Some(c)
}

/// A closure's code (an instruction index, through the program's function table), arity and
/// captured values.
fn closure_parts<'f>(prog: &Program, fields: &'f [Term]) -> (u32, usize, &'f [Term]) {
    let fun = fields[0].as_fun().expect("a closure holds its function");
    let arity = fields[1].as_small_int().expect("a closure holds its arity") as usize;
    (prog.fun_code(fun), arity, &fields[2..])
}

/// Removes the innermost handler.
fn drop_catch(p: &mut Process) -> Option<Catch> {
    p.extras.as_mut()?.catches.pop()
}

/// The handler a crash continues at: the innermost one whose function is still running.
fn take_catch(p: &mut Process) -> Option<Catch> {
    while let Some(c) = drop_catch(p) {
        if c.frames as usize <= p.frames.len() {
            return Some(c);
        }
    }
    None
}

/// A call beyond the frame cap: `:stack_overflow` at the depth limit, `:heap_limit` when the
/// frames would pass the memory limit first.
fn frame_limit(frames: usize, max_stack: usize) -> Term {
    Term::atom(if frames >= max_stack {
        atom::STACK_OVERFLOW
    } else {
        atom::HEAP_LIMIT
    })
}

fn int_result(p: &mut Process, r: Option<i64>) -> Option<Term> {
    r.map(|i| p.heap.int(i))
}

/// `a bsl b`: a negative `b` shifts right; a result outside 64 bits is `None` (`:badarith`).
fn shift_left(a: i64, b: i64) -> Option<i64> {
    if b < 0 {
        return Some(a >> b.unsigned_abs().min(63));
    }
    if a == 0 {
        return Some(0);
    }
    if b >= 64 {
        return None;
    }
    i64::try_from((a as i128) << b).ok()
}

/// `a bsr b`: arithmetic; a negative `b` shifts left (and may overflow).
fn shift_right(a: i64, b: i64) -> Option<i64> {
    if b < 0 {
        return match b.checked_neg() {
            Some(n) => shift_left(a, n),
            None if a == 0 => Some(0),
            None => None,
        };
    }
    Some(a >> b.min(63))
}

/// Proper list length, or `None` for an improper list or a non-list.
fn list_len(mut t: Term) -> Option<usize> {
    let mut n = 0;
    loop {
        match t.view() {
            View::Nil => return Some(n),
            View::Cons(_, tl) => {
                n += 1;
                t = tl;
            }
            _ => return None,
        }
    }
}

/// A float written as Erlang writes one (`1.5`, `-2.0e-3`: digits on both sides of the point),
/// or an integer (`7` reads as `7.0`); `None` for anything else, or beyond the float range.
fn parse_float(bytes: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(bytes).ok()?;
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exp) = match body.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e)),
        None => (body, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, "0"));
    let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    let exp_ok = exp.is_none_or(|e| digits(e.strip_prefix(['-', '+']).unwrap_or(e)));
    if !digits(int) || !digits(frac) || !exp_ok {
        return None;
    }
    s.parse::<f64>().ok().filter(|f| f.is_finite())
}

fn parse_int(bytes: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(bytes).ok()?;
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The runtime and the running process as the threaded `receive` and `send` see them.
struct ThreadedMessages<'a, R> {
    vm: &'a mut R,
    pid: u32,
    peer_at: &'a mut PeerHint,
}

impl<R: Runtime> Messages for ThreadedMessages<'_, R> {
    fn tested(&mut self, tested: u64, took: bool) {
        let stats = self.vm.stats();
        stats.messages_tested += tested;
        stats.messages_received += u64::from(took);
    }

    fn send_image(&mut self, to: Term, image: &Image, regs: &[Term]) -> bool {
        self.vm.send_image(self.pid, self.peer_at, to, image, regs)
    }
}

/// Runs `p` for at most `budget` reductions. Returns how the slice ended and the reductions
/// it spent. A crash a handler catches (`try`) continues at the handler within the slice.
pub(crate) fn run_slice<P: Probe, R: Runtime>(
    prog: &Program,
    vm: &mut R,
    p: &mut Process,
    budget: u32,
    probe: &mut P,
) -> (Outcome, u32) {
    // Opaque to the optimiser: otherwise it loads some forty fields of the program that the
    // instructions use into the function's prologue (they are invariant in the loop), and
    // spills them to the stack, about 150 instructions at every slice, which in a ring of
    // processes runs two or three instructions.
    let prog: &Program = std::hint::black_box(prog);
    let code = &prog.code[..];
    let mut pc = p.pc as usize;
    let mut reds = budget;
    let mut binds = Binds::new();
    // The instruction running now, for crash reports (pc may already point past it).
    let mut here: usize;
    let names = |a: u32| prog.atoms.name(a);
    // Limits (spec §10): the heap is collected, and checked, once it passes what the process may
    // still hold; call frames stop where they would pass it (pushes are checked one by one).
    let room = vm.room(p);
    p.heap.set_cap(p.heap.used_bytes().saturating_add(room));
    let max_stack = vm.max_stack();
    let frame_cap = max_stack.min(p.frames.len() + room / std::mem::size_of::<u32>());
    probe.slice_start(p.pid, p.entry, &p.frames, p.pc, budget);

    // Reads an operand; a template builds its term on the process heap.
    macro_rules! read {
        ($s:expr) => {{
            let s: Src = $s;
            match s.kind() {
                SrcKind::Reg(r) => p.regs[r as usize],
                SrcKind::Const(k) => prog.consts[k as usize],
                SrcKind::Template(k) => prog.build_template(k, &p.regs, &mut p.heap),
            }
        }};
    }
    macro_rules! done {
        ($outcome:expr) => {{
            p.pc = pc as u32;
            return ($outcome, budget - reds);
        }};
    }
    // A crash the VM raises (class `:error`): caught by the innermost handler `try` installed,
    // else the process exits with it, reported. `:heap_limit` is never caught (spec §10).
    macro_rules! crash {
        ($reason:expr) => {{
            let reason: Term = $reason;
            if reason.as_atom() != Some(atom::HEAP_LIMIT) {
                raise!(atom::ERROR, reason);
            }
            p.pc = pc as u32;
            return (
                Outcome::Exit {
                    reason,
                    raised_at: Some(here as u32),
                },
                budget - reds,
            );
        }};
    }

    macro_rules! badarg {
        () => {
            crash!(Term::atom(atom::BADARG))
        };
    }
    macro_rules! badarith {
        () => {
            crash!(Term::atom(atom::BADARITH))
        };
    }
    // After an instruction that allocated: collect if the heap passed its limit.
    macro_rules! gc_point {
        () => {
            if p.heap.needs_gc() {
                vm.collect(p, &mut []);
                if vm.over_limit(p) {
                    crash!(Term::atom(atom::HEAP_LIMIT));
                }
            }
        };
    }
    // Before an instruction builds a result of `$bytes` bytes: collect first if it does not fit
    // (the `$root` variables are the terms the instruction holds: a collection moves them, and
    // they are updated), and crash `:heap_limit` if it still does not (spec §10): the result is
    // never built in full first.
    macro_rules! ensure_room {
        ($bytes:expr $(, $root:ident)*) => {{
            let bytes: usize = $bytes;
            if vm.room(p) < bytes {
                let mut roots = [$($root),*];
                vm.collect(p, &mut roots);
                let mut _moved = roots.into_iter();
                $($root = _moved.next().expect("one per root");)*
                if vm.room(p) < bytes {
                    crash!(Term::atom(atom::HEAP_LIMIT));
                }
            }
        }};
    }
    // The length of the printed form of `$v` if it fits the room left (else `:heap_limit`,
    // after a collection that may make room); `$v` is updated if the collection moved it.
    macro_rules! printed_len {
        ($v:ident) => {{
            let fun_names = |at: u32| prog.fun_name(at);
            match term::printed_len(
                $v,
                &names,
                &fun_names,
                vm.room(p),
                p.heap.used_words() + prog.literals.size_bytes() / 8,
            ) {
                Some(n) => n,
                None => {
                    let mut roots = [$v];
                    vm.collect(p, &mut roots);
                    $v = roots[0];
                    match term::printed_len(
                        $v,
                        &names,
                        &fun_names,
                        vm.room(p),
                        p.heap.used_words() + prog.literals.size_bytes() / 8,
                    ) {
                        Some(n) => n,
                        None => crash!(Term::atom(atom::HEAP_LIMIT)),
                    }
                }
            }
        }};
    }
    // `d :=` `:true` or `:false` (a template operand may have allocated: GC point).
    macro_rules! boolean {
        ($d:expr, $b:expr) => {{
            let b: bool = $b;
            p.regs[$d.0 as usize] = Term::atom(if b { atom::TRUE } else { atom::FALSE });
            pc += 1;
            gc_point!();
        }};
    }
    // `format`'s text for operands `$f` and `$args` (crashes `:badarg` or `:heap_limit`).
    macro_rules! format_text {
        ($f:expr, $args:expr) => {{
            let (mut f, mut args) = (read!($f), read!($args));
            let Some(fmt) = term::binary_bytes(f) else {
                badarg!()
            };
            let mut text = prog.format_directives(fmt, args, vm.room(p));
            if text == Err(FormatError::TooBig) {
                // Collect once: what is garbage makes room.
                let mut roots = [f, args];
                vm.collect(p, &mut roots);
                [f, args] = roots;
                let fmt = term::binary_bytes(f).expect("still the same binary");
                text = prog.format_directives(fmt, args, vm.room(p));
            }
            match text {
                Ok(text) => text,
                Err(FormatError::BadArg) => badarg!(),
                Err(FormatError::TooBig) => crash!(Term::atom(atom::HEAP_LIMIT)),
            }
        }};
    }
    // `call`'s and `call_fun`'s arguments into r0, r1, ...: all read before any is written.
    macro_rules! pass_args {
        ($args:expr) => {{
            let srcs = &prog.args[$args.0 as usize];
            if !srcs.is_empty() {
                let mut values: SmallVec<[Term; 8]> = SmallVec::with_capacity(srcs.len());
                for a in srcs.iter() {
                    values.push(read!(*a));
                }
                if p.regs.len() < values.len() {
                    p.regs.resize(values.len(), Term::NIL);
                }
                p.regs[..values.len()].copy_from_slice(&values);
            }
        }};
    }
    // A trace event for what an instruction did to links, monitors or names (nothing unless a
    // trace is being written: these are not the instructions of a hot loop).
    macro_rules! traced {
        ($($event:tt)+) => {
            if vm.tracing() {
                vm.trace_event(serde_json::json!($($event)+));
            }
        };
    }
    let printed =
        |t: Term| term::format_cut(t, &names, &|f| prog.fun_name(f), crate::vm::REPORT_CUT);
    // The fields of map `$m`, or crash `{:badmap, m}`.
    macro_rules! map_fields {
        ($m:expr) => {{
            let m: Term = $m;
            match map::fields(m) {
                Some(f) => f,
                None => {
                    let reason = p.heap.tuple(&[Term::atom(atom::BADMAP), m]);
                    crash!(reason)
                }
            }
        }};
    }
    // The term order of two operands.
    macro_rules! order {
        ($a:expr, $b:expr) => {{
            let (a, b) = (read!($a), read!($b));
            term::compare(a, b, &names)
        }};
    }
    // A float result: infinite or NaN crashes `:badarith` (Erlang has neither).
    macro_rules! float_result {
        ($d:expr, $f:expr) => {{
            let f: f64 = $f;
            if !f.is_finite() {
                badarith!()
            }
            p.regs[$d.0 as usize] = p.heap.float(f);
            pc += 1;
            gc_point!();
        }};
    }
    // `trunc`, `round`: an integer stays as it is, a float goes through `$f`.
    macro_rules! to_integer {
        ($d:expr, $a:expr, $f:expr) => {{
            let a = read!($a);
            let f: fn(f64) -> f64 = $f;
            let i = match a.view() {
                View::Int(i) => i,
                View::Float(x) => {
                    let r = f(x);
                    // Beyond i64 (no bignums): as an overflow.
                    if !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&r) {
                        badarith!()
                    }
                    r as i64
                }
                _ => badarg!(),
            };
            p.regs[$d.0 as usize] = p.heap.int(i);
            pc += 1;
            gc_point!();
        }};
    }
    macro_rules! arith {
        ($d:expr, $a:expr, $b:expr, $f:expr) => {
            arith!($d, $a, $b, $f, |_, _| f64::NAN)
        };
        ($d:expr, $a:expr, $b:expr, $f:expr, $float:expr) => {{
            let f: fn(i64, i64) -> Option<i64> = $f;
            let (a, b) = (read!($a), read!($b));
            // Fast path: small operands, small result; nothing allocated, no GC check.
            if let (Some(x), Some(y)) = (a.as_small_int(), b.as_small_int()) {
                if let Some(t) = f(x, y).and_then(Term::small_int) {
                    p.regs[$d.0 as usize] = t;
                    pc += 1;
                    continue;
                }
            }
            // A float operand makes a float (integers stay integers); for the integer-only
            // instructions `$float` gives NaN, so `:badarith`.
            if a.is_float() || b.is_float() {
                let (Some(x), Some(y)) = (a.as_number(), b.as_number()) else {
                    badarith!()
                };
                let float: fn(f64, f64) -> f64 = $float;
                float_result!($d, float(x, y));
                continue;
            }
            let Some(a) = a.as_int() else { badarith!() };
            let Some(b) = b.as_int() else { badarith!() };
            match int_result(p, f(a, b)) {
                Some(t) => p.regs[$d.0 as usize] = t,
                None => badarith!(),
            }
            pc += 1;
            gc_point!();
        }};
    }
    macro_rules! compare_jump {
        ($a:expr, $b:expr, $target:expr, $test:expr) => {{
            let a = read!($a);
            let b = read!($b);
            let test: fn(Ordering) -> bool = $test;
            // Fast path: two small integers (no template was built, so no GC check).
            if let (Some(x), Some(y)) = (a.as_small_int(), b.as_small_int()) {
                pc = if test(x.cmp(&y)) {
                    $target.0 as usize
                } else {
                    pc + 1
                };
                continue;
            }
            let ord = term::compare(a, b, &names);
            pc = if test(ord) {
                $target.0 as usize
            } else {
                pc + 1
            };
            gc_point!();
        }};
    }
    // The running process takes an exit an effect returned: reported when the VM raised it.
    macro_rules! exit {
        ($exit:expr) => {{
            let exit: Exit = $exit;
            if exit.raised {
                crash!(exit.reason);
            }
            done!(Outcome::Exit {
                reason: exit.reason,
                raised_at: None
            });
        }};
    }
    // An effect's result: its value, or the exit it returned.
    macro_rules! effect {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(exit) => exit!(exit),
            }
        };
    }

    // A new process at `$at`; arguments are copied into its r0, r1, ...
    // `spawn_fun` / `spawn_link_fun`: a function reference, or a closure whose captured values
    // follow the arguments (which must be as many as its arity: else `:badarg`).
    macro_rules! spawn_fun {
        ($d:expr, $f:expr, $args:expr, $link:expr) => {{
            let f = read!($f);
            match f.view() {
                View::Fun(fun) => spawn!($d, prog.fun_code(fun), $args, $link),
                View::Closure(fields) => {
                    let (at, arity, captured) = closure_parts(prog, fields);
                    let args = &prog.args[$args.0 as usize];
                    if args.len() != arity {
                        badarg!()
                    }
                    let mut values: SmallVec<[Term; 8]> = SmallVec::new();
                    for a in args.iter() {
                        values.push(read!(*a));
                    }
                    values.extend_from_slice(captured);
                    let src_words = p.heap.used_words();
                    match vm.spawn(p, at, $link, &values, src_words) {
                        Ok(child) => p.regs[$d.0 as usize] = Term::pid(child),
                        Err(exit) => exit!(exit),
                    }
                    pc += 1;
                    gc_point!();
                }
                _ => badarg!(),
            }
        }};
    }
    macro_rules! spawn {
        ($d:expr, $at:expr, $args:expr, $link:expr) => {{
            let args = &prog.args[$args.0 as usize];
            let mut values: SmallVec<[Term; 8]> = SmallVec::with_capacity(args.len());
            for a in args.iter() {
                values.push(read!(*a));
            }
            let src_words = p.heap.used_words();
            match vm.spawn(p, $at, $link, &values, src_words) {
                Ok(child) => p.regs[$d.0 as usize] = Term::pid(child),
                Err(exit) => exit!(exit),
            }
            pc += 1;
            gc_point!();
        }};
    }

    'dispatch: loop {
        // Continues at the innermost live handler `try` installed, with the class and reason in
        // its registers and the frames and the stack cut back to where it was installed;
        // without one, goes on. (Defined here, where the loop's label is in scope.)
        macro_rules! raise {
            ($class:expr, $reason:expr) => {{
                if let Some(c) = take_catch(p) {
                    let reason: Term = $reason;
                    p.frames.truncate(c.frames as usize);
                    p.stack.truncate(c.stack as usize);
                    p.regs[c.class as usize] = Term::atom($class);
                    p.regs[c.reason as usize] = reason;
                    pc = c.target as usize;
                    probe.moved(&p.frames, pc as u32, reds);
                    continue 'dispatch;
                }
            }};
        }
        // The common register-and-small-integer instructions run threaded (`threaded.rs`),
        // with pc and the budget in machine registers; they stop before anything else. A probe
        // sees every instruction here instead.
        let enter = if P::ACTIVE {
            None
        } else {
            prog.threaded.can_run(pc, p.regs.len(), reds)
        };
        if let Some(messages) = enter {
            // A receive or send runs threaded when the general path would do no more than
            // the handler: no trace to write, no timer to cancel. What they need is made only
            // for a run that can reach one (most entries are a loop's arithmetic).
            let mut threaded;
            let mut receiving = if messages && !vm.tracing() && p.timer == (0, 0) {
                threaded = ThreadedMessages {
                    vm: &mut *vm,
                    pid: p.pid,
                    peer_at: &mut p.peer_at,
                };
                Some(Receiving {
                    mailbox: &mut p.mailbox,
                    timed_out: &mut p.timed_out,
                    may_wait: !R::DRAINS,
                    may_send: R::SENDS_IMAGES,
                    vm: &mut threaded,
                })
            } else {
                None
            };
            let wait;
            (pc, reds, wait) = prog.threaded.run(
                &mut p.regs,
                &mut p.frames,
                &mut p.heap,
                pc,
                reds,
                frame_cap,
                p.extras.as_ref().is_some_and(|x| !x.catches.is_empty()),
                receiving.as_mut(),
            );
            if wait {
                done!(Outcome::Wait);
            }
        }
        if reds == 0 {
            done!(Outcome::Yield);
        }
        let instr = code[pc];
        here = pc;
        reds -= 1;
        probe.instr(pc as u32);
        match instr {
            Instr::End {} => done!(Outcome::Exit {
                reason: Term::atom(atom::NORMAL),
                raised_at: None
            }),
            Instr::Crash { v } => {
                let reason = read!(v);
                raise!(atom::EXIT_CLASS, reason);
                done!(Outcome::Exit {
                    reason,
                    raised_at: None
                })
            }
            Instr::Error { v } => {
                let reason = read!(v);
                crash!(reason)
            }
            Instr::Throw { v } => {
                let value = read!(v);
                raise!(atom::THROW, value);
                // Uncaught: Erlang's `{nocatch, V}`, reported like any error (no handler is
                // left to catch it).
                crash!(p.heap.tuple(&[Term::atom(atom::NOCATCH), value]));
            }
            Instr::Try {
                class,
                reason,
                target,
            } => {
                // Handlers count as stack (spec §10): a loop of `try` cannot grow without bound.
                let installed = p.extras.as_ref().map_or(0, |x| x.catches.len());
                if installed >= max_stack {
                    crash!(Term::atom(atom::STACK_OVERFLOW));
                }
                if vm.room(p) < std::mem::size_of::<Catch>() {
                    crash!(Term::atom(atom::HEAP_LIMIT));
                }
                p.extras.get_or_insert_default().catches.push(Catch {
                    target: target.0,
                    class: class.0,
                    reason: reason.0,
                    frames: p.frames.len() as u32,
                    stack: p.stack.len() as u32,
                });
                pc += 1;
            }
            Instr::TryEnd {} => {
                if drop_catch(p).is_none() {
                    badarg!()
                }
                pc += 1;
            }
            Instr::Halt { n } => match read!(n).as_int() {
                Some(n) => {
                    pc += 1;
                    done!(Outcome::Halt((n & 0xff) as i32))
                }
                None => badarg!(),
            },
            Instr::Jump { target } => pc = target.0 as usize,
            Instr::Jeq { a, b, target } => {
                let (a, b) = (read!(a), read!(b));
                pc = if term::eq_num(a, b) {
                    target.0 as usize
                } else {
                    pc + 1
                };
                gc_point!();
            }
            Instr::Jne { a, b, target } => {
                let (a, b) = (read!(a), read!(b));
                pc = if term::eq_num(a, b) {
                    pc + 1
                } else {
                    target.0 as usize
                };
                gc_point!();
            }
            Instr::Jlt { a, b, target } => compare_jump!(a, b, target, |o| o == Ordering::Less),
            Instr::Jle { a, b, target } => compare_jump!(a, b, target, |o| o != Ordering::Greater),
            Instr::Jgt { a, b, target } => compare_jump!(a, b, target, |o| o == Ordering::Greater),
            Instr::Jge { a, b, target } => compare_jump!(a, b, target, |o| o != Ordering::Less),
            Instr::Call { target, args } => {
                if p.frames.len() >= frame_cap {
                    crash!(frame_limit(p.frames.len(), max_stack));
                }
                pass_args!(args);
                p.frames.push(pc as u32 + 1);
                pc = target.0 as usize;
                probe.moved(&p.frames, pc as u32, reds);
                gc_point!();
            }
            Instr::CallExt { target, args } => {
                if p.frames.len() >= frame_cap {
                    crash!(frame_limit(p.frames.len(), max_stack));
                }
                pass_args!(args);
                let to = prog.export_target(pc, target.0);
                if to == crate::program::UNDEF {
                    crash!(Term::atom(atom::UNDEF));
                }
                p.frames.push(pc as u32 + 1);
                pc = to as usize;
                probe.moved(&p.frames, pc as u32, reds);
                gc_point!();
            }
            Instr::JumpExt { target } => {
                let to = prog.export_target(pc, target.0);
                if to == crate::program::UNDEF {
                    crash!(Term::atom(atom::UNDEF));
                }
                pc = to as usize;
                probe.moved(&p.frames, pc as u32, reds);
            }
            Instr::Ret {} => match p.frames.pop() {
                Some(ret) => {
                    // A handler the returning function installed ends with it. (Handlers are
                    // in order of depth, innermost last: only the last ones can be deeper.)
                    let depth = p.frames.len() as u32;
                    while p
                        .extras
                        .as_ref()
                        .and_then(|x| x.catches.last())
                        .is_some_and(|c| c.frames > depth)
                    {
                        drop_catch(p);
                    }
                    pc = ret as usize;
                    probe.moved(&p.frames, ret, reds);
                }
                None => done!(Outcome::Exit {
                    reason: Term::atom(atom::NORMAL),
                    raised_at: None
                }),
            },
            Instr::Push { a } => {
                if p.stack.len() >= max_stack {
                    crash!(Term::atom(atom::STACK_OVERFLOW));
                }
                if vm.room(p) < std::mem::size_of::<Term>() {
                    crash!(Term::atom(atom::HEAP_LIMIT));
                }
                let v = read!(a);
                p.stack.push(v);
                pc += 1;
                gc_point!();
            }
            Instr::Pop { d } => match p.stack.pop() {
                Some(v) => {
                    p.regs[d.0 as usize] = v;
                    pc += 1;
                }
                None => badarg!(),
            },
            Instr::Match { a, pattern } => {
                let v = read!(a);
                binds.clear();
                if matches(&prog.patterns[pattern.0 as usize], v, &p.regs, &mut binds) {
                    commit(&mut p.regs, &binds);
                    pc += 1;
                    gc_point!();
                } else {
                    let reason = p.heap.tuple(&[Term::atom(atom::BADMATCH), v]);
                    crash!(reason);
                }
            }
            Instr::Case { a, clauses } => {
                let v = read!(a);
                let table = &prog.clauses[clauses.0 as usize];
                let site = &prog.sites[clauses.0 as usize];
                match select(prog, table, site, v, &mut p.regs, &mut binds) {
                    Some(c) => {
                        pc = c.target.map_or(pc + 1, |l| l.0 as usize);
                        gc_point!();
                    }
                    None => {
                        let reason = p.heap.tuple(&[Term::atom(atom::CASE_CLAUSE), v]);
                        crash!(reason);
                    }
                }
            }
            Instr::Work { n } => {
                if p.work_left == 0 {
                    match read!(n).as_int() {
                        // `work 0` costs what any instruction costs.
                        Some(0) => {
                            pc += 1;
                            continue;
                        }
                        Some(n) if n > 0 => p.work_left = n as u64,
                        _ => badarg!(),
                    }
                }
                // `work n` costs n in all; this dispatch's reduction is one of them.
                reds += 1;
                let take = p.work_left.min(reds as u64);
                reds -= take as u32;
                probe.work(pc as u32, take - 1);
                p.work_left -= take;
                if p.work_left == 0 {
                    pc += 1;
                }
            }
            Instr::Nop {} => pc += 1,
            Instr::Move { d, v } => {
                p.regs[d.0 as usize] = read!(v);
                pc += 1;
                gc_point!();
            }
            Instr::Add { d, a, b } => arith!(d, a, b, i64::checked_add, |x, y| x + y),
            Instr::Sub { d, a, b } => arith!(d, a, b, i64::checked_sub, |x, y| x - y),
            Instr::Mul { d, a, b } => arith!(d, a, b, i64::checked_mul, |x, y| x * y),
            Instr::Fdiv { d, a, b } => {
                let (Some(x), Some(y)) = (read!(a).as_number(), read!(b).as_number()) else {
                    badarith!()
                };
                if y == 0.0 {
                    badarith!()
                }
                float_result!(d, x / y);
            }
            Instr::ToFloat { d, a } => {
                let a = read!(a);
                let x = match term::binary_bytes(a) {
                    Some(bytes) => parse_float(bytes),
                    None => a.as_number(),
                };
                let Some(x) = x else { badarg!() };
                float_result!(d, x);
            }
            Instr::Trunc { d, a } => to_integer!(d, a, f64::trunc),
            Instr::Eq { d, a, b } => boolean!(d, term::eq_num(read!(a), read!(b))),
            Instr::Ne { d, a, b } => boolean!(d, !term::eq_num(read!(a), read!(b))),
            Instr::Eqx { d, a, b } => boolean!(d, term::eq(read!(a), read!(b))),
            Instr::Nex { d, a, b } => boolean!(d, !term::eq(read!(a), read!(b))),
            Instr::Lt { d, a, b } => boolean!(d, order!(a, b) == Ordering::Less),
            Instr::Le { d, a, b } => boolean!(d, order!(a, b) != Ordering::Greater),
            Instr::Gt { d, a, b } => boolean!(d, order!(a, b) == Ordering::Greater),
            Instr::Ge { d, a, b } => boolean!(d, order!(a, b) != Ordering::Less),
            Instr::Min { d, a, b } => {
                let (a, b) = (read!(a), read!(b));
                let less = term::compare(b, a, &names) == Ordering::Less;
                p.regs[d.0 as usize] = if less { b } else { a };
                pc += 1;
                gc_point!();
            }
            Instr::Max { d, a, b } => {
                let (a, b) = (read!(a), read!(b));
                let greater = term::compare(b, a, &names) == Ordering::Greater;
                p.regs[d.0 as usize] = if greater { b } else { a };
                pc += 1;
                gc_point!();
            }
            Instr::IsInteger { d, a } => boolean!(d, read!(a).as_int().is_some()),
            Instr::IsFloat { d, a } => boolean!(d, read!(a).is_float()),
            Instr::IsNumber { d, a } => boolean!(d, read!(a).as_number().is_some()),
            Instr::IsAtom { d, a } => boolean!(d, read!(a).as_atom().is_some()),
            Instr::IsBoolean { d, a } => boolean!(
                d,
                matches!(read!(a).as_atom(), Some(atom::TRUE | atom::FALSE))
            ),
            Instr::IsTuple { d, a } => boolean!(d, read!(a).is_tuple()),
            Instr::IsList { d, a } => {
                let a = read!(a);
                boolean!(d, a.is_nil() || a.is_cons())
            }
            Instr::IsMap { d, a } => boolean!(d, map::fields(read!(a)).is_some()),
            Instr::IsBinary { d, a } => boolean!(d, read!(a).is_binary()),
            Instr::IsPid { d, a } => boolean!(d, read!(a).as_pid().is_some()),
            Instr::IsRef { d, a } => boolean!(d, read!(a).as_ref().is_some()),
            Instr::IsFun { d, a } => boolean!(
                d,
                matches!(read!(a).view(), View::Fun(_) | View::Closure(_))
            ),
            Instr::Round { d, a } => to_integer!(d, a, f64::round),
            Instr::Div { d, a, b } => arith!(d, a, b, i64::checked_div),
            Instr::Rem { d, a, b } => {
                // i64::MIN rem -1 is 0, not an overflow.
                arith!(d, a, b, |a, b| (b != 0).then(|| a.wrapping_rem(b)))
            }
            Instr::Band { d, a, b } => arith!(d, a, b, |a, b| Some(a & b)),
            Instr::Bor { d, a, b } => arith!(d, a, b, |a, b| Some(a | b)),
            Instr::Bxor { d, a, b } => arith!(d, a, b, |a, b| Some(a ^ b)),
            Instr::Bsl { d, a, b } => arith!(d, a, b, shift_left),
            Instr::Bsr { d, a, b } => arith!(d, a, b, shift_right),
            Instr::Neg { d, a } => {
                let a = read!(a);
                if let View::Float(f) = a.view() {
                    float_result!(d, -f);
                    continue;
                }
                let Some(a) = a.as_int() else { badarith!() };
                match int_result(p, a.checked_neg()) {
                    Some(t) => p.regs[d.0 as usize] = t,
                    None => badarith!(),
                }
                pc += 1;
                gc_point!();
            }
            Instr::Elem { d, t, i } => {
                let (t, i) = (read!(t), read!(i));
                let v = match (t.view(), i.as_int()) {
                    (View::Tuple(elems), Some(i)) if i >= 0 && (i as usize) < elems.len() => {
                        elems[i as usize]
                    }
                    _ => badarg!(),
                };
                p.regs[d.0 as usize] = v;
                pc += 1;
                gc_point!();
            }
            Instr::Setelem { d, t, i, v } => {
                let (t, i, v) = (read!(t), read!(i), read!(v));
                let mut elems: SmallVec<[Term; 8]> = match (t.view(), i.as_int()) {
                    (View::Tuple(elems), Some(i)) if i >= 0 && (i as usize) < elems.len() => {
                        elems.iter().copied().collect()
                    }
                    _ => badarg!(),
                };
                elems[i.as_int().unwrap_or(0) as usize] = v;
                p.regs[d.0 as usize] = p.heap.tuple(&elems);
                pc += 1;
                gc_point!();
            }
            Instr::Len { d, x } => {
                let x = read!(x);
                let n = match x.view() {
                    View::Tuple(e) => e.len(),
                    View::Binary(b) => b.len(),
                    View::Map(fields) => map::shape(fields).0,
                    View::Nil | View::Cons(..) => match list_len(x) {
                        Some(n) => n,
                        None => badarg!(),
                    },
                    _ => badarg!(),
                };
                p.regs[d.0 as usize] = p.heap.int(n as i64);
                pc += 1;
                gc_point!();
            }
            Instr::Cons { d, h, t } => {
                let (h, t) = (read!(h), read!(t));
                p.regs[d.0 as usize] = p.heap.cons(h, t);
                pc += 1;
                gc_point!();
            }
            Instr::Hd { d, l } => {
                match read!(l).view() {
                    View::Cons(h, _) => p.regs[d.0 as usize] = h,
                    _ => badarg!(),
                }
                pc += 1;
                gc_point!();
            }
            Instr::Tl { d, l } => {
                match read!(l).view() {
                    View::Cons(_, t) => p.regs[d.0 as usize] = t,
                    _ => badarg!(),
                }
                pc += 1;
                gc_point!();
            }
            Instr::Concat { d, a, b } => {
                let (mut a, mut b) = (read!(a), read!(b));
                let len = match (a.view(), b.view()) {
                    (View::Binary(x), View::Binary(y)) => x.len() + y.len(),
                    _ => badarg!(),
                };
                ensure_room!(8 + len.next_multiple_of(8), a, b);
                p.regs[d.0 as usize] = match (a.view(), b.view()) {
                    (View::Binary(x), View::Binary(y)) => p.heap.binary_concat(&[x, y]),
                    _ => badarg!(),
                };
                pc += 1;
                gc_point!();
            }
            Instr::ToStr { d, v } => {
                let mut v = read!(v);
                let len = printed_len!(v);
                // The printed form and its binary both fit the room left.
                ensure_room!(8 + len.next_multiple_of(8), v);
                let mut out = Vec::with_capacity(len);
                prog.format(v, &mut out);
                p.regs[d.0 as usize] = p.heap.binary(&out);
                pc += 1;
                gc_point!();
            }
            Instr::Byte { d, b, i } => {
                let (b, i) = (read!(b), read!(i));
                let byte = match (term::binary_bytes(b), i.as_int()) {
                    (Some(bytes), Some(i)) if i >= 0 => bytes.get(i as usize).copied(),
                    _ => None,
                };
                let Some(byte) = byte else { badarg!() };
                p.regs[d.0 as usize] = Term::small_int(i64::from(byte)).expect("a byte");
                pc += 1;
                gc_point!();
            }
            Instr::Slice { d, b, i, n } => {
                let (mut b, i, n) = (read!(b), read!(i), read!(n));
                let range = match (term::binary_bytes(b), i.as_int(), n.as_int()) {
                    (Some(bytes), Some(i), Some(n))
                        if i >= 0
                            && n >= 0
                            && i.checked_add(n)
                                .is_some_and(|e| e as u64 <= bytes.len() as u64) =>
                    {
                        Some(i as usize..(i + n) as usize)
                    }
                    _ => None,
                };
                let Some(range) = range else { badarg!() };
                ensure_room!(8 + range.len().next_multiple_of(8), b);
                let bytes = term::binary_bytes(b).expect("still the binary");
                let part = bytes[range].to_vec();
                p.regs[d.0 as usize] = p.heap.binary(&part);
                pc += 1;
                gc_point!();
            }
            Instr::Split { d, b, sep } => {
                let (mut b, mut sep) = (read!(b), read!(sep));
                let (Some(bytes), Some(s)) = (term::binary_bytes(b), term::binary_bytes(sep))
                else {
                    badarg!()
                };
                if s.is_empty() {
                    badarg!()
                }
                // Each part costs its bytes plus a binary header and a list cell. (A linear
                // search: one instruction must not cost the square of its operands.)
                let parts = memchr::memmem::find_iter(bytes, s).count() + 1;
                ensure_room!(bytes.len() + 40 * parts, b, sep);
                let (bytes, s) = (
                    term::binary_bytes(b).expect("still the binary").to_vec(),
                    term::binary_bytes(sep).expect("still the binary").to_vec(),
                );
                let mut pieces: Vec<&[u8]> = Vec::with_capacity(parts);
                let mut start = 0;
                for at in memchr::memmem::find_iter(&bytes, &s) {
                    pieces.push(&bytes[start..at]);
                    start = at + s.len();
                }
                let rest = &bytes[start..];
                pieces.push(rest);
                let mut list = Term::NIL;
                for piece in pieces.iter().rev() {
                    let t = p.heap.binary(piece);
                    list = p.heap.cons(t, list);
                }
                p.regs[d.0 as usize] = list;
                pc += 1;
                gc_point!();
            }
            Instr::ToAtom { d, b } => {
                let atom = term::binary_bytes(read!(b))
                    .and_then(|bytes| std::str::from_utf8(bytes).ok())
                    .and_then(|name| prog.atoms.lookup(name));
                let Some(atom) = atom else { badarg!() };
                p.regs[d.0 as usize] = Term::atom(atom);
                pc += 1;
            }
            Instr::AtomName { d, a } => {
                let Some(atom) = read!(a).as_atom() else {
                    badarg!()
                };
                let name = prog.atoms.name(atom);
                ensure_room!(8 + name.len().next_multiple_of(8));
                p.regs[d.0 as usize] = p.heap.binary(name.as_bytes());
                pc += 1;
                gc_point!();
            }
            Instr::Format { d, f, args } => {
                let text = format_text!(f, args);
                ensure_room!(8 + text.len().next_multiple_of(8));
                p.regs[d.0 as usize] = p.heap.binary(&text);
                pc += 1;
                gc_point!();
            }
            Instr::Printf { f, args } => {
                let text = format_text!(f, args);
                pc += 1;
                if !vm.print(&text) {
                    done!(Outcome::Yield);
                }
                gc_point!();
            }
            Instr::MapGet { d, m, k } => {
                let (m, k) = (read!(m), read!(k));
                let fields = map_fields!(m);
                match map::get(fields, k) {
                    Some(v) => p.regs[d.0 as usize] = v,
                    None => {
                        let reason = p.heap.tuple(&[Term::atom(atom::BADKEY), k]);
                        crash!(reason)
                    }
                }
                pc += 1;
                gc_point!();
            }
            Instr::MapFind { d, m, k } => {
                let (m, k) = (read!(m), read!(k));
                let fields = map_fields!(m);
                p.regs[d.0 as usize] = match map::get(fields, k) {
                    Some(v) => p.heap.tuple(&[Term::atom(atom::OK), v]),
                    None => Term::atom(atom::ERROR),
                };
                pc += 1;
                gc_point!();
            }
            Instr::MapHas { d, m, k } => {
                let (m, k) = (read!(m), read!(k));
                let fields = map_fields!(m);
                boolean!(d, map::get(fields, k).is_some())
            }
            // A put or a remove builds at most a path of the trie (or one flat map): a bounded
            // number of words, checked at the GC point as `setelem`'s copy is.
            Instr::MapPut { d, m, k, v } => {
                let (m, k, v) = (read!(m), read!(k), read!(v));
                let _ = map_fields!(m);
                p.regs[d.0 as usize] = map::put(&mut p.heap, m, k, v, &names);
                pc += 1;
                gc_point!();
            }
            Instr::MapUpdate { d, m, k, v } => {
                let (m, k, v) = (read!(m), read!(k), read!(v));
                if map::get(map_fields!(m), k).is_none() {
                    let reason = p.heap.tuple(&[Term::atom(atom::BADKEY), k]);
                    crash!(reason)
                }
                p.regs[d.0 as usize] = map::put(&mut p.heap, m, k, v, &names);
                pc += 1;
                gc_point!();
            }
            Instr::MapRemove { d, m, k } => {
                let (m, k) = (read!(m), read!(k));
                let _ = map_fields!(m);
                p.regs[d.0 as usize] = map::remove(&mut p.heap, m, k, &names);
                pc += 1;
                gc_point!();
            }
            Instr::MapKeys { d, m } | Instr::MapValues { d, m } | Instr::MapToList { d, m } => {
                let mut m = read!(m);
                let n = map::shape(map_fields!(m)).0;
                let pairs = matches!(instr, Instr::MapToList { .. });
                // A cell per entry, and a pair per entry for `map_to_list`.
                ensure_room!(n * if pairs { 40 } else { 16 }, m);
                let entries = map::sorted_entries(map_fields!(m), &names);
                let items: Vec<Term> = match instr {
                    Instr::MapKeys { .. } => entries.iter().map(|e| e.0).collect(),
                    Instr::MapValues { .. } => entries.iter().map(|e| e.1).collect(),
                    _ => entries
                        .iter()
                        .map(|&(k, v)| p.heap.tuple(&[k, v]))
                        .collect(),
                };
                p.regs[d.0 as usize] = p.heap.list_from(&items, Term::NIL);
                pc += 1;
                gc_point!();
            }
            Instr::MapFromList { d, l } => {
                let mut l = read!(l);
                let Some(n) = list_len(l) else { badarg!() };
                // Room first: a collection would move the entries.
                ensure_room!(map::words_for(n) * 8, l);
                let mut entries = Vec::with_capacity(n);
                for item in term::list_iter(l) {
                    match term::tuple_elems(item) {
                        Some(&[k, v]) => entries.push((k, v)),
                        _ => badarg!(),
                    }
                }
                p.regs[d.0 as usize] = map::from_entries(&mut p.heap, entries, &names);
                pc += 1;
                gc_point!();
            }
            Instr::MapMerge { d, a, b } => {
                let (mut a, mut b) = (read!(a), read!(b));
                let n = map::shape(map_fields!(a)).0 + map::shape(map_fields!(b)).0;
                ensure_room!(map::words_for(n) * 8, a, b);
                let mut entries = map::sorted_entries(map_fields!(a), &names);
                entries.extend(map::sorted_entries(map_fields!(b), &names));
                p.regs[d.0 as usize] = map::from_entries(&mut p.heap, entries, &names);
                pc += 1;
                gc_point!();
            }
            Instr::ToInt { d, b } => {
                let n = match read!(b).view() {
                    View::Binary(bytes) => parse_int(bytes),
                    _ => None,
                };
                match n {
                    Some(n) => p.regs[d.0 as usize] = p.heap.int(n),
                    None => badarg!(),
                }
                pc += 1;
                gc_point!();
            }
            Instr::Print { v } => {
                let mut v = read!(v);
                let mut line = Vec::new();
                match v.view() {
                    View::Binary(b) => line.extend_from_slice(b),
                    _ => {
                        // A printed form longer than the room left counts as a result.
                        let len = printed_len!(v);
                        line.reserve_exact(len + 1);
                        prog.format(v, &mut line);
                    }
                }
                line.push(b'\n');
                pc += 1;
                if !vm.print(&line) {
                    done!(Outcome::Yield);
                }
                gc_point!();
            }
            Instr::Assert { a, b } => {
                let (a, b) = (read!(a), read!(b));
                if !term::eq(a, b) {
                    let reason = p.heap.tuple(&[Term::atom(atom::ASSERT), a, b]);
                    crash!(reason);
                }
                pc += 1;
                gc_point!();
            }
            Instr::CrashNote { v } => {
                let v = read!(v);
                if v.is_nil() {
                    if let Some(x) = p.extras.as_deref_mut() {
                        x.note = Term::NIL;
                    }
                } else {
                    p.extras.get_or_insert_default().note = v;
                }
                pc += 1;
                gc_point!();
            }
            Instr::Native { arity, .. } => {
                // A host value built in `p`'s heap within its limits (an atom the program does
                // not have: `:badarg`). Built in a scratch heap first, so that a collection
                // making room moves nothing built yet.
                macro_rules! host_term {
                    ($v:expr) => {{
                        if let Some(t) = crate::value::immediate($v, prog) {
                            Ok(t)
                        } else {
                            let mut scratch = crate::heap::Heap::new();
                            match crate::value::build($v, &mut scratch, prog) {
                                Err(_) => Err(Term::atom(atom::BADARG)),
                                Ok(t) => {
                                    let words = scratch.used_words();
                                    ensure_room!(words * 8);
                                    let room = vm.room(p) / 8;
                                    p.heap
                                        .copy_into(t, &prog.literals, words, room)
                                        .map_err(|_| Term::atom(atom::HEAP_LIMIT))
                                }
                            }
                        }
                    }};
                }
                let Some(native) = prog.native_at(pc as u32) else {
                    crash!(Term::atom(atom::UNDEF));
                };
                let n = read!(arity).as_int().unwrap_or(0).clamp(0, 255) as usize;
                let mut args: SmallVec<[Value; 4]> = SmallVec::new();
                for &t in &p.regs[..n.min(p.regs.len())] {
                    match crate::value::read(t, prog) {
                        Ok(v) => args.push(v),
                        Err(_) => crash!(Term::atom(atom::SYSTEM_LIMIT)),
                    }
                }
                let mut call = crate::native::NativeCall {
                    args: &args,
                    caller: crate::value::Pid(p.pid),
                    sends: Vec::new(),
                    remote: vm.remote_inbox(),
                };
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    (native.f)(&mut call)
                }));
                // The call's own dispatch is one of its reductions; what the slice has not
                // left ends it.
                let extra = native.reductions.saturating_sub(1).min(reds);
                reds -= extra;
                probe.work(pc as u32, u64::from(extra));
                let sends = std::mem::take(&mut call.sends);
                let (value, crashed) = match result {
                    Ok(Ok(v)) => (v, false),
                    Ok(Err(reason)) => (reason, true),
                    Err(panic) => {
                        let text = panic
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "a panic".into());
                        let reason = Value::tuple([
                            Value::atom("native_panic"),
                            Value::binary(format!("{}:{}: {text}", native.module, native.name)),
                        ]);
                        (reason, true)
                    }
                };
                for (to, msg) in sends {
                    let Some(to) = (match to {
                        Value::Pid(pid) => Some(Term::pid(pid.0)),
                        Value::Atom(a) => prog.atoms.lookup(&a).map(Term::atom),
                        _ => None,
                    }) else {
                        badarg!()
                    };
                    let msg = match host_term!(&msg) {
                        Ok(t) => t,
                        Err(e) => crash!(e),
                    };
                    effect!(vm.send(p, to, Outgoing::Term(msg)));
                }
                let v = match host_term!(&value) {
                    Ok(t) => t,
                    Err(e) => crash!(e),
                };
                if crashed {
                    crash!(v);
                }
                p.regs[0] = v;
                pc += 1;
                gc_point!();
            }
            Instr::Report { v } => {
                // Cut as every report is (spec §10), with room for a few printed terms.
                const CUT: usize = 4 * crate::vm::REPORT_CUT;
                let v = read!(v);
                let mut line = match v.view() {
                    View::Binary(b) => String::from_utf8_lossy(&b[..b.len().min(CUT)]).into_owned(),
                    _ => term::format_cut(v, &names, &|f| prog.fun_name(f), CUT),
                };
                if matches!(v.view(), View::Binary(b) if b.len() > CUT) {
                    line.push_str("...");
                }
                vm.report(&line);
                pc += 1;
                gc_point!();
            }
            Instr::Now { d } => {
                let now = vm.now_ms() as i64;
                p.regs[d.0 as usize] = p.heap.int(now);
                pc += 1;
                gc_point!();
            }
            Instr::Rand { d, n } => match read!(n).as_int() {
                Some(n) if n > 0 => {
                    let r = p.rand_below(n as u64) as i64;
                    p.regs[d.0 as usize] = p.heap.int(r);
                    pc += 1;
                    gc_point!();
                }
                _ => badarg!(),
            },
            Instr::SelfPid { d } => {
                p.regs[d.0 as usize] = Term::pid(p.pid);
                pc += 1;
            }
            Instr::Spawn { d, target, args } => spawn!(d, target.0, args, false),
            Instr::SpawnLink { d, target, args } => spawn!(d, target.0, args, true),
            Instr::SpawnExt { d, target, args } => {
                let to = prog.export_target(pc, target.0);
                if to == crate::program::UNDEF {
                    crash!(Term::atom(atom::UNDEF));
                }
                spawn!(d, to, args, false)
            }
            Instr::SpawnLinkExt { d, target, args } => {
                let to = prog.export_target(pc, target.0);
                if to == crate::program::UNDEF {
                    crash!(Term::atom(atom::UNDEF));
                }
                spawn!(d, to, args, true)
            }
            Instr::SpawnFun { d, f, args } => spawn_fun!(d, f, args, false),
            Instr::SpawnLinkFun { d, f, args } => spawn_fun!(d, f, args, true),
            Instr::CallFun { f, args } => {
                let f = read!(f);
                pass_args!(args);
                let at = match f.view() {
                    View::Fun(fun) => prog.fun_code(fun),
                    // A closure's captured values go after its arguments.
                    View::Closure(fields) => {
                        let (at, arity, captured) = closure_parts(prog, fields);
                        let end = arity + captured.len();
                        if p.regs.len() < end {
                            p.regs.resize(end, Term::NIL);
                        }
                        p.regs[arity..end].copy_from_slice(captured);
                        at
                    }
                    _ => badarg!(),
                };
                if p.frames.len() >= frame_cap {
                    crash!(frame_limit(p.frames.len(), max_stack));
                }
                p.frames.push(pc as u32 + 1);
                pc = at as usize;
                probe.moved(&p.frames, at, reds);
                gc_point!();
            }
            Instr::Closure {
                d,
                target,
                arity,
                captured,
            } => {
                let args = &prog.args[captured.0 as usize];
                let arity = read!(arity).as_int();
                let Some(arity) = arity.filter(|&a| a >= 0 && a as usize + args.len() <= 256)
                else {
                    badarg!()
                };
                let mut values: SmallVec<[Term; 8]> = SmallVec::with_capacity(args.len());
                for a in args.iter() {
                    values.push(read!(*a));
                }
                let fun = prog.fun_of(target.0);
                p.regs[d.0 as usize] = p.heap.closure(fun, arity as u8, &values);
                pc += 1;
                gc_point!();
            }
            Instr::Send { p: to, v: value } => {
                let to = read!(to);
                let msg = match value.kind() {
                    SrcKind::Template(k) => Outgoing::Template(
                        &prog.templates[k as usize],
                        prog.images[k as usize].as_ref(),
                    ),
                    _ => Outgoing::Term(read!(value)),
                };
                pc += 1;
                effect!(vm.send(p, to, msg));
                gc_point!();
            }
            Instr::Receive { clauses } => {
                let table = &prog.clauses[clauses.0 as usize];
                // Nothing to test and no timeout: wait at once (a process in a ring or behind
                // a server comes back here with an empty mailbox after every message). An
                // empty mailbox holds no scan state to keep: the take that emptied it reset it.
                if p.mailbox.len() == 0 && table.after.is_none() && !effect!(vm.drain(p)) {
                    done!(Outcome::Wait);
                }
                let site = &prog.sites[clauses.0 as usize];
                let past_mark = match p.mailbox.marked_ref() {
                    Some(r) if !site.pure => site.pins.iter().all(|pins| {
                        pins.iter()
                            .any(|&reg| p.regs[reg as usize].as_ref() == Some(r))
                    }),
                    _ => false,
                };
                let mut c = p.mailbox.resume(site.pure.then_some(clauses.0), past_mark);
                let mut chosen = None;
                loop {
                    while let Some(msg) = p.mailbox.peek(c) {
                        vm.stats().messages_tested += 1;
                        if let Some(clause) =
                            select(prog, table, site, msg, &mut p.regs, &mut binds)
                        {
                            chosen = Some(clause.target);
                            break;
                        }
                        c = p.mailbox.skip(c);
                    }
                    // Nothing matched: take what arrived meanwhile (N schedulers) before waiting.
                    if chosen.is_some() || !effect!(vm.drain(p)) {
                        break;
                    }
                    c = p.mailbox.resume(site.pure.then_some(clauses.0), past_mark);
                }
                if let Some(target) = chosen {
                    let seq = p.mailbox.seq_at(c);
                    let msg = p.mailbox.take(c);
                    p.timed_out = false;
                    vm.received(p, msg, seq);
                    pc = target.map_or(pc + 1, |l| l.0 as usize);
                    gc_point!();
                    continue;
                }
                let Some(after) = &table.after else {
                    done!(Outcome::Wait);
                };
                let timeout = read!(after.timeout);
                let expired = if p.timed_out {
                    true
                } else if timeout.as_atom() == Some(atom::INFINITY) {
                    false
                } else {
                    match timeout.as_int() {
                        Some(0) => true,
                        Some(ms) if ms > 0 => {
                            if p.timer == (0, 0) {
                                vm.arm_timer(p, ms as u64);
                            }
                            false
                        }
                        _ => badarg!(),
                    }
                };
                if !expired {
                    done!(Outcome::Wait);
                }
                p.timed_out = false;
                vm.cancel_timer(p);
                p.mailbox.reset_scan();
                pc = after.target.map_or(pc + 1, |l| l.0 as usize);
                gc_point!();
            }
            Instr::Link { p: other } => {
                let Some(other) = read!(other).as_pid() else {
                    badarg!()
                };
                traced!({"ev": "link", "pid": p.pid, "other": other});
                pc += 1;
                effect!(vm.link(p, other));
                gc_point!();
            }
            Instr::Unlink { p: other } => {
                let Some(other) = read!(other).as_pid() else {
                    badarg!()
                };
                traced!({"ev": "unlink", "pid": p.pid, "other": other});
                vm.unlink(p, other);
                pc += 1;
                gc_point!();
            }
            Instr::Monitor { d, p: target } => {
                let target = read!(target);
                let r = effect!(vm.monitor(p, target));
                traced!({"ev": "monitor", "pid": p.pid, "target": printed(target), "ref": r});
                p.regs[d.0 as usize] = Term::reference(r);
                pc += 1;
                gc_point!();
            }
            Instr::Demonitor { r } => {
                let Some(r) = read!(r).as_ref() else {
                    badarg!()
                };
                traced!({"ev": "demonitor", "pid": p.pid, "ref": r});
                vm.demonitor(p, r);
                pc += 1;
                gc_point!();
            }
            Instr::Exit { p: to, v } => {
                let (to, v) = (read!(to), read!(v));
                let Some(to) = to.as_pid() else { badarg!() };
                traced!({"ev": "exit_signal", "from": p.pid, "to": to, "reason": printed(v)});
                pc += 1;
                effect!(vm.exit(p, to, v));
                gc_point!();
            }
            Instr::TrapExit { v } => {
                match read!(v).as_atom() {
                    Some(atom::TRUE) => p.trap_exit = true,
                    Some(atom::FALSE) => p.trap_exit = false,
                    _ => badarg!(),
                }
                pc += 1;
                gc_point!();
            }
            Instr::Register { name, p: who } => {
                let (name, who) = (read!(name), read!(who));
                let (Some(name), Some(pid)) = (name.as_atom(), who.as_pid()) else {
                    badarg!()
                };
                effect!(vm.register(p, name, pid));
                traced!({"ev": "register", "pid": p.pid, "name": printed(Term::atom(name)), "target": pid});
                pc += 1;
                gc_point!();
            }
            Instr::Unregister { name } => {
                let Some(name) = read!(name).as_atom() else {
                    badarg!()
                };
                effect!(vm.unregister(p, name));
                traced!({"ev": "unregister", "pid": p.pid, "name": printed(Term::atom(name))});
                pc += 1;
                gc_point!();
            }
            Instr::Whereis { d, name } => {
                let Some(name) = read!(name).as_atom() else {
                    badarg!()
                };
                p.regs[d.0 as usize] = match vm.whereis(name) {
                    Some(pid) => Term::pid(pid),
                    None => Term::atom(atom::UNDEFINED),
                };
                pc += 1;
                gc_point!();
            }
            Instr::MakeRef { d } => {
                let r = vm.make_ref(p);
                p.regs[d.0 as usize] = Term::reference(r);
                pc += 1;
            }
        }
    }
}

#[cfg(test)]
mod table_agrees {
    use crate::isa::{Flags, Opcode};
    use std::collections::HashMap;

    /// The body of each macro of this file, by name (what `name!` expands to, for the search).
    fn macros(src: &str) -> HashMap<&str, &str> {
        let marker = concat!("macro_", "rules! ");
        let mut out = HashMap::new();
        for (at, _) in src.match_indices(marker) {
            let rest = &src[at + marker.len()..];
            let name = rest
                .split(|c: char| !c.is_alphanumeric() && c != '_')
                .next();
            let Some(open) = rest.find('{') else { continue };
            let mut depth = 0;
            let mut end = open;
            for (i, c) in rest[open..].char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    end = open + i;
                    break;
                }
            }
            out.insert(name.unwrap_or_default(), &rest[open..end]);
        }
        out
    }

    /// Whether `text`, with the macros it invokes expanded, contains `what`.
    fn reaches(text: &str, what: &str, macros: &HashMap<&str, &str>, depth: usize) -> bool {
        if text.contains(what) {
            return true;
        }
        depth < 8
            && text.match_indices('!').any(|(i, _)| {
                let name_start = text[..i]
                    .rfind(|c: char| !c.is_alphanumeric() && c != '_')
                    .map_or(0, |s| s + 1);
                macros
                    .get(&text[name_start..i])
                    .is_some_and(|body| reaches(body, what, macros, depth + 1))
            })
    }

    /// The flags of the instruction table are what the general interpreter does: an
    /// instruction that continues ends with the collection point exactly when the table says
    /// it allocates, and waits in `receive` exactly when it says it may suspend. (The table
    /// is the one source: the verifier, the docs and the tools read it; this keeps it honest.)
    #[test]
    fn the_table_flags_agree_with_the_interpreter() {
        let src = include_str!("interp.rs");
        let macros = macros(src);
        let run_slice = &src[src.find("fn run_slice").expect("run_slice")..];
        let arm_marker = "\n            Instr::";
        let starts: Vec<usize> = run_slice
            .match_indices(arm_marker)
            .map(|(i, _)| i)
            .collect();
        let mut arms: HashMap<String, &str> = HashMap::new();
        for (k, &start) in starts.iter().enumerate() {
            // The last arm ends with the match (its closing brace, two levels out).
            let end = starts.get(k + 1).copied().unwrap_or_else(|| {
                start
                    + run_slice[start..]
                        .find("\n        }\n")
                        .unwrap_or(run_slice.len() - start)
            });
            let body = &run_slice[start..end];
            let head = body.lines().nth(1).unwrap_or_default();
            for alt in head.split('|') {
                let alt = alt.trim();
                if let Some(name) = alt.strip_prefix("Instr::") {
                    let name = name.split([' ', '{', '(']).next().unwrap_or_default();
                    arms.insert(name.to_string(), body);
                }
            }
        }
        for &op in Opcode::ALL {
            let name = format!("{op:?}");
            let body = arms
                .get(&name)
                .unwrap_or_else(|| panic!("no arm for {name} in the interpreter"));
            let flags = op.info().flags;
            if !flags.contains(Flags::TERM) {
                assert_eq!(
                    flags.contains(Flags::ALLOC),
                    reaches(body, "gc_point!", &macros, 0),
                    "{name}: the ALLOC flag and the interpreter's collection point disagree"
                );
            }
            assert_eq!(
                flags.contains(Flags::YIELD),
                reaches(body, "Outcome::Wait", &macros, 0),
                "{name}: the YIELD flag and the interpreter disagree"
            );
        }
    }
}

#[cfg(test)]
mod flat_select {
    use super::*;
    use crate::bytecode::Clause;
    use crate::heap::Heap;
    use crate::isa::{Label, PatId};

    fn int(i: i64) -> Term {
        Term::small_int(i).expect("small")
    }

    /// The flat matcher picks the clause the general one picks, and writes the same bindings
    /// to the registers, for every message: tuples of each arity with matching and clashing
    /// elements, and others.
    #[test]
    fn flat_clauses_match_as_the_general_matcher_does() {
        let token = Term::atom(atom::TRUE);
        let other = Term::atom(atom::FALSE);
        let pats = vec![
            Pat::Tuple(vec![Pat::Const(token), Pat::Const(int(0))].into()),
            Pat::Tuple(vec![Pat::Const(token), Pat::Bind(1)].into()),
            Pat::Tuple(vec![Pat::Any, Pat::Bind(2), Pat::Bind(3)].into()),
            Pat::Tuple(vec![].into()),
            Pat::Tuple(vec![Pat::Bind(4)].into()),
        ];
        let flat: Vec<FlatClause> = pats
            .iter()
            .map(|p| FlatClause::of(p).expect("flat"))
            .collect();
        let table = ClauseTable {
            clauses: (0..pats.len())
                .map(|i| Clause {
                    pattern: PatId(i as u32),
                    target: Some(Label(i as u32)),
                })
                .collect(),
            after: None,
        };
        let mut heap = Heap::new();
        let nested = heap.tuple(&[int(1)]);
        let messages = [
            heap.tuple(&[token, int(0)]),
            heap.tuple(&[token, int(7)]),
            heap.tuple(&[other, int(0)]),
            heap.tuple(&[token, nested]),
            heap.tuple(&[other, token, nested]),
            heap.tuple(&[]),
            heap.tuple(&[int(9)]),
            heap.tuple(&[int(1), int(2), int(3), int(4)]),
            heap.cons(token, Term::NIL),
            int(5),
            token,
        ];
        for &m in &messages {
            let mut general = Binds::new();
            let want = table.clauses.iter().zip(&pats).find(|(_, p)| {
                general.clear();
                matches(p, m, &[], &mut general)
            });
            // Registers the clauses bind, filled with a marker: a clause that does not match
            // writes none of them, one that does writes exactly its bindings.
            let marker = Term::atom(atom::UNDEFINED);
            let mut regs = [marker; 5];
            let got = select_flat(&table, &flat, m, &mut regs);
            assert_eq!(got.map(|c| c.target), want.map(|(c, _)| c.target));
            let mut expected = [marker; 5];
            if got.is_some() {
                commit(&mut expected, &general);
            }
            assert_eq!(regs, expected, "{m:?}");
        }
        // Patterns the flat matcher leaves to the general one.
        let pinned = Pat::Tuple(vec![Pat::Pin(0)].into());
        let repeated = Pat::Tuple(vec![Pat::Bind(0), Pat::Same(0)].into());
        let nested = Pat::Tuple(vec![Pat::Tuple(vec![].into())].into());
        let boxed = Pat::Const(heap.tuple(&[]));
        let list = Pat::List(vec![Pat::Any].into(), Box::new(Pat::Any));
        for p in [
            pinned,
            repeated,
            nested,
            Pat::Tuple(vec![boxed].into()),
            list,
            Pat::Any,
        ] {
            assert!(FlatClause::of(&p).is_none(), "{p:?}");
        }
    }
}
