//! Threaded dispatch of the lowered ops: the interpreter's fast path.
//!
//! Each lowered op ([`crate::lower::Op`]) becomes a [`Slot`] that carries its handler, a plain
//! function, beside its operands. A handler does its op's work and then calls the next slot's
//! handler itself, in tail position with the same signature, so LLVM compiles that call to a
//! jump (a sibling call; Stitch's design): there is no central loop and no `match` on the op,
//! and each op ends in an indirect jump of its own, which the branch predictor learns per op.
//! The pc, the register file and the budget stay in machine registers from op to op.
//!
//! A handler whose operands are not what it expects (a boxed integer, an overflow, a `ret` with
//! handlers installed...) returns [`Exit`] at its own slot with its reduction unspent: the
//! general interpreter runs that instruction. A handler never half-runs an instruction, so the
//! general path sees exactly the state it would have seen; this is what keeps one semantics
//! across the two paths (`Program::without_lowering` turns this one off).
//!
//! # Messages
//!
//! A `receive` whose clauses are all flat tuples and which has no `after`, and a `send` of a
//! fixed-shape template to a register, run as handlers too, so that a process that takes a
//! message, computes and sends the next (a ring, a relay, a worker) runs its whole slice here:
//! the receive scans the mailbox as the general path does (`Mailbox::take_matching`) and waits
//! on an empty one; the send asks the VM, through one indirect call ([`Messages`]), to deliver
//! straight into the receiver's heap. The interpreter lends what they need ([`Receiving`]) only
//! when the general path would do nothing more: no trace to write, no timer to cancel, and (for
//! the wait and the send) one scheduler, whose signals never wait to be drained. Otherwise
//! they exit, and the general path runs them.
//!
//! # Stack
//!
//! Rust does not promise tail calls. Optimised builds (the test profile too: `opt-level = 1`)
//! make every `next!` a jump; the test `ten_million_ops_run_in_a_small_stack` proves it by
//! running 10⁷ ops on a 64 KiB stack, and `a_ring_member_takes_sends_and_waits_in_the_handlers`
//! does the same for the receive and send handlers (those that call out keep no local whose
//! address the call sees, which is what LLVM needs to make their last call a jump). A build that does not (`opt-level = 0`, Miri) would grow
//! the stack by one frame per op, so [`Threaded::run`] never runs more than [`CHUNK`] ops per
//! call into the handlers: the stack stays bounded in every build.
//!
//! # Safety
//!
//! This is one of the two modules of the VM with `unsafe` code (the other is `heap.rs`). The
//! handlers read and write registers and follow slots through raw pointers, without bounds
//! checks. That is sound because of three invariants, established when a [`Threaded`] is built
//! and checked once per entry by [`Threaded::run`]:
//!
//! 1. **Registers.** Each slot's `need` is at least one more than every register index of
//!    every slot reachable from it without leaving the handlers (a fixpoint computed when the
//!    slots are built). `run` only enters a slot whose `need` the register file meets, and a
//!    `ret` only continues at one whose `need` it meets, so every register a handler names is
//!    in the file. (A process's register file is sized for the code reachable from its entry,
//!    so this holds wherever it runs.)
//! 2. **Slots.** There is one slot per instruction plus a last one that exits; every jump
//!    offset, a receive's clause targets among them, lands on a slot (a target out of range
//!    makes the op exit instead). So `ip + 1` of
//!    any slot but the last, and every jump target, is a slot; the last slot never continues.
//! 3. **Returns.** `ret` takes its target from the process's frames, which only hold code
//!    positions; it still checks the target against the slot count before it jumps.
//!
//! Every `unsafe` block says which of these it relies on.

#![deny(clippy::undocumented_unsafe_blocks)]
#![deny(unsafe_op_in_unsafe_fn)]

use crate::bytecode::ClauseTable;
use crate::heap::{by_patch_counts, Heap, Image, ANY};
use crate::lower::{Cond, Op, SMALL_TAG, SMALL_TAG_MASK};
use crate::process::Mailbox;
use crate::program::{FlatClause, SiteInfo};
use crate::term::{self, Term};
use smallvec::SmallVec;

/// At most this many ops run per call into the handlers (see "Stack" above).
const CHUNK: u32 = 4096;

/// The signature every handler shares: the slot to run, the register file, the reductions
/// left (at least 1) and the context of the run.
type Handler = unsafe fn(*const Slot, *mut Term, u32, &mut Cx) -> Exit;

/// One lowered op with its handler.
#[derive(Clone, Copy)]
#[repr(C)]
struct Slot {
    run: Handler,
    /// A jump target: a slot of the same vector (so a taken branch is one load away from its
    /// handler); for a `move_image`, its image (in [`Threaded::images`], cast: one load, no
    /// index to check); for a `receive`, its [`Receive`] (in [`Threaded::receives`]); or null.
    jump: *const Slot,
    /// A constant word, an increment (`k << 4`), or a call's return position, by op.
    k: i64,
    /// A second constant word (the compare of a fused add-and-jump).
    k2: i64,
    /// Register operands (`a`, `b` sources, `d` destination), by op.
    a: u8,
    b: u8,
    d: u8,
    /// False for the exit slot (an instruction the general interpreter runs).
    lowered: bool,
    /// The registers a run from here may name: the most any slot reachable from this one
    /// without leaving the handlers names (invariant 1).
    need: u16,
    /// A run from here may reach a `receive` or a `send`: only then does the interpreter
    /// gather the [`Receiving`] they need (most entries are a loop's arithmetic).
    messages: bool,
}

/// Where the handlers stopped and the reductions left. `pc` has [`WAIT`] set when a receive
/// found the mailbox empty, spent its reduction, and the process waits there (at the rest of
/// `pc`). Two fields, not a third for the flag: a pair is returned in two machine registers,
/// which is what lets every handler end in a jump to the next (a larger struct is returned
/// through memory, and LLVM then makes those tail calls plain calls).
struct Exit {
    pc: usize,
    reds: u32,
}

/// The flag of [`Exit::pc`] that says the process waits: no slot index comes near it.
const WAIT: usize = 1 << (usize::BITS - 1);

/// What the `receive` and `send` handlers need of the process and the VM. The interpreter
/// lends it only when the general path's receive would do nothing more than the handler does:
/// no trace to write and no timer to cancel.
pub(crate) struct Receiving<'a> {
    pub(crate) mailbox: &'a mut Mailbox,
    pub(crate) timed_out: &'a mut bool,
    /// An empty mailbox means the process waits: no signal can be pending besides it (one
    /// scheduler; with N, the general path drains the signals first).
    pub(crate) may_wait: bool,
    /// The VM may take a `send` (`Messages::send_image`): one scheduler's can; with N the
    /// general path sends, and the handler does not ask.
    pub(crate) may_send: bool,
    pub(crate) vm: &'a mut dyn Messages,
}

/// The VM as the `receive` and `send` handlers see it (the interpreter's runtime, through
/// one indirect call: the handlers are not generic over it).
pub(crate) trait Messages {
    /// A receive tested `tested` messages, and took the last one if `took` (the statistics).
    fn tested(&mut self, tested: u64, took: bool);
    /// `send` of a template with image `image`, of the registers `regs`, to `to`, when that
    /// is all the general path's `send` would do: true when sent; false, with nothing done,
    /// when the general path must run it (`Runtime::send_image`).
    fn send_image(&mut self, to: Term, image: &Image, regs: &[Term]) -> bool;
}

/// A `receive` the handlers run: its clause table's index (the mailbox's scan state is kept
/// per site), its clauses (all flat: [`SiteInfo::flat`]) and the slot each continues at.
#[derive(Clone)]
struct Receive {
    site: u32,
    clauses: Box<[FlatClause]>,
    targets: Box<[u32]>,
}

impl Receive {
    /// The target of the first clause `msg` matches, with that clause's bindings written to
    /// `regs`; none written when no clause matches.
    ///
    /// # Safety
    /// `regs` holds every register a clause binds (invariant 1: they count in the slot's need).
    #[inline(always)]
    unsafe fn select(&self, msg: Term, regs: *mut Term) -> Option<u32> {
        let elems = term::tuple_elems(msg)?;
        let (clause, &target) = self
            .clauses
            .iter()
            .zip(&self.targets[..])
            .find(|(c, _)| c.matches(elems))?;
        for &(i, r) in clause.binds.iter() {
            // SAFETY: `r` is a register a clause binds, in the file (this function's contract).
            unsafe { *regs.add(r as usize) = elems[i as usize] };
        }
        Some(target)
    }
}

/// What `call`, `ret`, the builds, and `receive` and `send` need besides the registers.
struct Cx<'a, 'r, 's> {
    /// The process's heap, for terms built from images.
    heap: &'a mut Heap,
    images: &'a [Image],
    frames: &'a mut Vec<u32>,
    frame_cap: usize,
    /// With `try` handlers installed a `ret` may end one: the general path does that.
    catching: bool,
    base: *const Slot,
    slots: usize,
    /// The register file's length.
    registers: usize,
    /// `None`: receives exit to the general path.
    receiving: Option<&'r mut Receiving<'s>>,
}

/// The threaded form of a program's lowered ops.
pub(crate) struct Threaded {
    /// Never resized after `link`, so the jump pointers stay valid (invariant 2).
    slots: Vec<Slot>,
    /// Per slot, the index of its jump target, or `NO_TARGET`: what `link` makes the pointers
    /// from (in a clone too).
    targets: Vec<u32>,
    /// The images the `move_image` slots build, by the index in their `k`. A vector, never
    /// resized after `link`, rather than a box: the slots point into it, and moving a box
    /// asserts unique access to what it holds (Stacked Borrows), which would void them.
    images: Vec<Image>,
    /// The `move_image` slots: what `link` points at their images.
    image_slots: Vec<u32>,
    /// The receives the `receive` slots run, by the index in their `k` (a vector for the
    /// reason `images` is one).
    receives: Vec<Receive>,
    /// The `receive` slots: what `link` points at their receives.
    receive_slots: Vec<u32>,
}

/// The slots control may go to from slot `pc` without leaving the handlers, besides a `ret`'s
/// (checked when it runs) and a receive's (its [`Receive::targets`]): `NO_TARGET` fills the
/// rest.
fn successors(op: &Op, pc: u32, target: u32) -> [u32; 3] {
    let n = NO_TARGET;
    match op {
        Op::Slow | Op::Resolved(_) | Op::Ret | Op::Receive { .. } => [n; 3],
        Op::SendImage { .. } => [pc + 1, n, n],
        Op::Jump(_) | Op::Call(_) => [target, n, n],
        Op::Nop
        | Op::MoveR { .. }
        | Op::MoveC { .. }
        | Op::AddRR { .. }
        | Op::SubRR { .. }
        | Op::AddRI { .. }
        | Op::MoveImage { .. } => [pc + 1, n, n],
        Op::JccRR { .. } | Op::JccRI { .. } | Op::JeqRI { .. } | Op::AddJump { .. } => {
            [pc + 1, target, n]
        }
        Op::AddJccRI { .. } => [pc + 1, target, pc + 2],
        Op::AccStepJcc { .. } => [pc + 1, target, pc + 3],
    }
}

/// Raises each slot's `need` to the most any slot reachable from it needs (invariant 1): a
/// fixpoint over the predecessors, each slot revisited only when its need grows (at most 256
/// times, as needs are register counts), so loading stays linear in practice.
fn propagate_need(
    ops: &[Op],
    slots: &[Slot],
    targets: &[u32],
    receives: &[Receive],
    need: &mut [u16],
) {
    let n = need.len();
    let succ = |pc: usize| -> SmallVec<[u32; 3]> {
        match ops.get(pc) {
            Some(Op::Receive { .. }) if slots[pc].lowered => receives[slots[pc].k as usize]
                .targets
                .iter()
                .copied()
                .collect(),
            Some(op) if slots[pc].lowered => successors(op, pc as u32, targets[pc]).into(),
            // An exit slot never continues.
            _ => SmallVec::new(),
        }
    };
    // Predecessors in compressed rows.
    let mut start = vec![0u32; n + 1];
    for pc in 0..n {
        for s in succ(pc).into_iter().filter(|&s| (s as usize) < n) {
            start[s as usize + 1] += 1;
        }
    }
    for i in 0..n {
        start[i + 1] += start[i];
    }
    let mut fill = start.clone();
    let mut preds = vec![0u32; start[n] as usize];
    for pc in 0..n {
        for s in succ(pc).into_iter().filter(|&s| (s as usize) < n) {
            preds[fill[s as usize] as usize] = pc as u32;
            fill[s as usize] += 1;
        }
    }
    let mut work: Vec<u32> = (0..n as u32).collect();
    while let Some(x) = work.pop() {
        let x = x as usize;
        for &p in &preds[start[x] as usize..start[x + 1] as usize] {
            if need[p as usize] < need[x] {
                need[p as usize] = need[x];
                work.push(p);
            }
        }
    }
}

const NO_TARGET: u32 = u32::MAX;

// SAFETY: a `Threaded` is immutable once linked; its raw pointers only point into its own
// `slots`, which it owns, so sharing or sending it is as safe as sharing or sending a `Vec`.
unsafe impl Send for Threaded {}
// SAFETY: as for `Send`: nothing is written through the pointers.
unsafe impl Sync for Threaded {}

impl Clone for Threaded {
    fn clone(&self) -> Threaded {
        let mut copy = Threaded {
            slots: self.slots.clone(),
            targets: self.targets.clone(),
            images: self.images.clone(),
            image_slots: self.image_slots.clone(),
            receives: self.receives.clone(),
            receive_slots: self.receive_slots.clone(),
        };
        // The copied pointers point into `self`'s slots: point them into the copy's.
        copy.link();
        copy
    }
}

impl std::fmt::Debug for Threaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Threaded({} slots)", self.slots.len())
    }
}

/// The handler of `cond` among four instances of a handler generic over it.
macro_rules! by_cond {
    ($cond:expr, $h:ident) => {
        match $cond {
            Cond::Lt => $h::<{ Cond::Lt as u8 }> as Handler,
            Cond::Le => $h::<{ Cond::Le as u8 }> as Handler,
            Cond::Gt => $h::<{ Cond::Gt as u8 }> as Handler,
            Cond::Ge => $h::<{ Cond::Ge as u8 }> as Handler,
        }
    };
}

impl Threaded {
    /// Threads `ops`, one slot per op and an exit slot after them; `images` are the program's
    /// template images, by template (what `Op::MoveImage` names); `tables` and `sites` its
    /// clause tables and what is known of them, by index (what `Op::Receive` names).
    pub(crate) fn new(
        ops: &[Op],
        images: &[Option<Image>],
        tables: &[ClauseTable],
        sites: &[SiteInfo],
    ) -> Threaded {
        let mut own_images = Vec::new();
        let mut image_slots = Vec::new();
        let mut receives = Vec::new();
        let mut receive_slots = Vec::new();
        let exit_slot = Slot {
            run: exit,
            jump: std::ptr::null(),
            k: 0,
            k2: 0,
            a: 0,
            b: 0,
            d: 0,
            lowered: false,
            need: 0,
            messages: false,
        };
        let mut targets = Vec::with_capacity(ops.len() + 1);
        // Per slot: the registers it names (one more than the highest).
        let mut need: Vec<u16> = Vec::with_capacity(ops.len() + 1);
        // Per slot: 1 for a `receive` or `send` (what `Slot::messages` is made from).
        let mut messages: Vec<u16> = Vec::with_capacity(ops.len() + 1);
        let mut slots = Vec::with_capacity(ops.len() + 1);
        for (pc, op) in ops.iter().enumerate() {
            // Invariant 2: a target past the exit slot makes the op exit (the verifier rules
            // such targets out; this keeps the handlers sound without relying on it).
            let in_range = |target: u32| (target as usize <= ops.len()).then_some(target);
            let mut s = Slot {
                lowered: true,
                ..exit_slot
            };
            let mut jump_to = NO_TARGET;
            let mut names = 0u16;
            let mut uses = |regs: &[u8]| {
                for &r in regs {
                    names = names.max(u16::from(r) + 1);
                }
            };
            let made = match *op {
                Op::Slow | Op::Resolved(_) => None,
                Op::Nop => {
                    s.run = nop;
                    Some(())
                }
                Op::Jump(t) => in_range(t).map(|j| {
                    s.run = jump;
                    jump_to = j;
                }),
                Op::MoveR { d, s: a } => {
                    uses(&[d, a]);
                    (s.run, s.d, s.a) = (move_r, d, a);
                    Some(())
                }
                Op::MoveC { d, t } => {
                    uses(&[d]);
                    (s.run, s.d, s.k) = (move_c, d, t.raw() as i64);
                    Some(())
                }
                Op::AddRR { d, a, b } => {
                    uses(&[d, a, b]);
                    (s.run, s.d, s.a, s.b) = (arith_rr::<false>, d, a, b);
                    Some(())
                }
                Op::SubRR { d, a, b } => {
                    uses(&[d, a, b]);
                    (s.run, s.d, s.a, s.b) = (arith_rr::<true>, d, a, b);
                    Some(())
                }
                Op::AddRI { d, a, delta } => {
                    uses(&[d, a]);
                    (s.run, s.d, s.a, s.k) = (add_ri, d, a, delta);
                    Some(())
                }
                Op::JccRR { a, b, cond, target } => in_range(target).map(|j| {
                    uses(&[a, b]);
                    (s.run, s.a, s.b) = (by_cond!(cond, jcc_rr), a, b);
                    jump_to = j;
                }),
                Op::JccRI { a, k, cond, target } => in_range(target).map(|j| {
                    uses(&[a]);
                    (s.run, s.a, s.k) = (by_cond!(cond, jcc_ri), a, k);
                    jump_to = j;
                }),
                Op::JeqRI { a, k, eq, target } => in_range(target).map(|j| {
                    uses(&[a]);
                    let run: Handler = if eq { jeq_ri::<true> } else { jeq_ri::<false> };
                    (s.run, s.a, s.k) = (run, a, k as i64);
                    jump_to = j;
                }),
                Op::AddJccRI {
                    d,
                    a,
                    cond,
                    delta,
                    k,
                    target,
                } => in_range(target).map(|j| {
                    uses(&[d, a]);
                    // A loop that is this pair alone (`L: sub r, r, 1; jgt r, 0, L`) runs in
                    // its handler, the register in a machine register.
                    s.run = if target as usize == pc && a == d {
                        by_cond!(cond, add_jcc_loop)
                    } else {
                        by_cond!(cond, add_jcc_ri)
                    };
                    (s.d, s.a, s.k, s.k2) = (d, a, delta.into(), k.into());
                    jump_to = j;
                }),
                Op::AddJump {
                    d,
                    a,
                    delta,
                    target,
                } => in_range(target).map(|j| {
                    uses(&[d, a]);
                    (s.run, s.d, s.a, s.k) = (add_jump, d, a, delta.into());
                    jump_to = j;
                }),
                Op::AccStepJcc {
                    d,
                    a,
                    b,
                    cond,
                    delta,
                    k,
                    target,
                } => in_range(target).map(|j| {
                    uses(&[d, a, b]);
                    // As for the pair: a loop that is this triple alone, accumulating in place.
                    s.run = if target as usize == pc && a == d {
                        by_cond!(cond, acc_step_loop)
                    } else {
                        by_cond!(cond, acc_step_jcc)
                    };
                    (s.d, s.a, s.b) = (d, a, b);
                    (s.k, s.k2) = (delta.into(), k.into());
                    jump_to = j;
                }),
                Op::MoveImage { d, image } => match images.get(image as usize) {
                    Some(Some(image)) => {
                        uses(&[d]);
                        names = names.max(image.registers());
                        (s.run, s.d, s.k) = (move_image_for(image), d, own_images.len() as i64);
                        own_images.push(image.clone());
                        image_slots.push(pc as u32);
                        Some(())
                    }
                    _ => None,
                },
                Op::SendImage { to, image } => match images.get(image as usize) {
                    Some(Some(image)) => {
                        uses(&[to]);
                        names = names.max(image.registers());
                        (s.run, s.a, s.k) = (send_image, to, own_images.len() as i64);
                        own_images.push(image.clone());
                        image_slots.push(pc as u32);
                        Some(())
                    }
                    _ => None,
                },
                Op::Receive { site } => {
                    let table = tables.get(site as usize).filter(|t| t.after.is_none());
                    let flat = sites.get(site as usize).and_then(|s| s.flat.as_ref());
                    match (table, flat) {
                        (Some(table), Some(flat)) if flat.len() == table.clauses.len() => {
                            let targets: Option<Box<[u32]>> = table
                                .clauses
                                .iter()
                                .map(|c| in_range(c.target.map_or(pc as u32 + 1, |l| l.0)))
                                .collect();
                            targets.map(|targets| {
                                for clause in flat.iter() {
                                    for &(_, r) in clause.binds.iter() {
                                        uses(&[r]);
                                    }
                                }
                                (s.run, s.k) = (receive, receives.len() as i64);
                                receives.push(Receive {
                                    site,
                                    clauses: flat.clone(),
                                    targets,
                                });
                                receive_slots.push(pc as u32);
                            })
                        }
                        _ => None,
                    }
                }
                Op::Call(t) => in_range(t).map(|j| {
                    (s.run, s.k) = (call, pc as i64 + 1);
                    jump_to = j;
                }),
                Op::Ret => {
                    s.run = ret;
                    Some(())
                }
            };
            slots.push(if made.is_some() {
                s
            } else {
                Slot {
                    k: pc as i64,
                    ..exit_slot
                }
            });
            targets.push(match made {
                Some(()) => jump_to,
                None => NO_TARGET,
            });
            need.push(if made.is_some() { names } else { 0 });
            let messaging = matches!(op, Op::Receive { .. } | Op::SendImage { .. });
            messages.push(u16::from(made.is_some() && messaging));
        }
        slots.push(Slot {
            k: ops.len() as i64,
            ..exit_slot
        });
        targets.push(NO_TARGET);
        need.push(0);
        messages.push(0);
        propagate_need(ops, &slots, &targets, &receives, &mut need);
        // The same fixpoint: 1 where a messaging slot is reachable.
        propagate_need(ops, &slots, &targets, &receives, &mut messages);
        for ((slot, &need), &messages) in slots.iter_mut().zip(&need).zip(&messages) {
            slot.need = need;
            slot.messages = messages > 0;
        }
        let mut threaded = Threaded {
            slots,
            targets,
            images: own_images,
            image_slots,
            receives,
            receive_slots,
        };
        threaded.link();
        threaded
    }

    /// Points each slot's jump at its target's slot.
    fn link(&mut self) {
        let base = self.slots.as_ptr();
        for (slot, &target) in self.slots.iter_mut().zip(&self.targets) {
            slot.jump = if target == NO_TARGET {
                std::ptr::null()
            } else {
                // `target` is at most the exit slot's index (checked in `new`), so in bounds.
                base.wrapping_add(target as usize)
            };
        }
        for &at in &self.image_slots {
            let slot = &mut self.slots[at as usize];
            // `k` is an index into `images` (made with it in `new`).
            slot.jump = (&raw const self.images[slot.k as usize]).cast();
        }
        for &at in &self.receive_slots {
            let slot = &mut self.slots[at as usize];
            // `k` is an index into `receives` (made with it in `new`).
            slot.jump = (&raw const self.receives[slot.k as usize]).cast();
        }
    }

    /// Whether [`Threaded::run`] would run anything from `pc` with a register file of
    /// `registers` and `reds` left, and if so whether the run may reach a `receive` or a
    /// `send` (which need a [`Receiving`]): what the general interpreter asks before it
    /// gathers what a run needs (at every instruction it runs, so a load and a few compares).
    #[inline]
    pub(crate) fn can_run(&self, pc: usize, registers: usize, reds: u32) -> Option<bool> {
        match self.slots.get(pc) {
            Some(slot) if slot.lowered && registers >= slot.need as usize && reds > 0 => {
                Some(slot.messages)
            }
            _ => None,
        }
    }

    /// Runs the ops from `pc` for at most `reds` reductions, while their operands are what
    /// they expect. Returns the pc of the first instruction not run (the general interpreter
    /// runs it), the reductions left, and whether the process is to wait at that pc (a
    /// receive found its mailbox empty; see [`Receiving`]).
    ///
    /// Most instructions of a program that sends and spawns are not lowered: the check that
    /// the first one is, inlined in the general interpreter, keeps their cost to a load.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn run(
        &self,
        regs: &mut [Term],
        frames: &mut Vec<u32>,
        heap: &mut Heap,
        pc: usize,
        reds: u32,
        frame_cap: usize,
        catching: bool,
        receiving: Option<&mut Receiving<'_>>,
    ) -> (usize, u32, bool) {
        match self.slots.get(pc) {
            // Invariants 1 and 2, checked once per entry; handlers need a reduction to start.
            Some(slot) if slot.lowered && regs.len() >= slot.need as usize && reds > 0 => {
                // At most `CHUNK` ops per call (see "Stack"): the rest of the budget is kept
                // here, and the general path runs the next instruction when a chunk ends.
                let chunk = reds.min(CHUNK);
                let out = self.enter(
                    regs, frames, heap, pc, chunk, frame_cap, catching, receiving,
                );
                (
                    out.pc & !WAIT,
                    out.reds + (reds - chunk),
                    out.pc & WAIT != 0,
                )
            }
            _ => (pc, reds, false),
        }
    }

    /// Calls the handler of slot `pc`, which `run` checked may run.
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn enter(
        &self,
        regs: &mut [Term],
        frames: &mut Vec<u32>,
        heap: &mut Heap,
        pc: usize,
        reds: u32,
        frame_cap: usize,
        catching: bool,
        receiving: Option<&mut Receiving<'_>>,
    ) -> Exit {
        let base = self.slots.as_ptr();
        let mut cx = Cx {
            heap,
            images: &self.images,
            frames,
            frame_cap,
            catching,
            base,
            slots: self.slots.len(),
            registers: regs.len(),
            receiving,
        };
        // SAFETY: `run` checked that pc is a slot, that the register file meets its need
        // (invariant 1) and that reds > 0.
        unsafe {
            let ip = base.add(pc);
            ((*ip).run)(ip, regs.as_mut_ptr(), reds, &mut cx)
        }
    }
}

/// Where the handlers stopped (the slot at `ip`, as a pc) and the reductions left: every way out
/// of the handlers.
#[inline(always)]
fn stop(ip: *const Slot, reds: u32, cx: &Cx) -> Exit {
    Exit {
        pc: (ip.addr() - cx.base.addr()) / std::mem::size_of::<Slot>(),
        reds,
    }
}

// ---- the handlers ----

/// Continues at slot `ip` with `reds` left: a tail call of its handler, or the end of the run
/// when the budget is spent. `ip` must be a slot (invariant 2 or 3).
macro_rules! next {
    ($ip:expr, $regs:ident, $reds:expr, $cx:ident) => {{
        let ip: *const Slot = $ip;
        let reds: u32 = $reds;
        if reds == 0 {
            return stop(ip, reds, $cx);
        }
        // SAFETY: the caller of `next!` passes a slot (invariants 2 and 3).
        return unsafe { ((*ip).run)(ip, $regs, reds, $cx) };
    }};
}

/// The slot after `ip`.
macro_rules! step {
    ($ip:ident) => {
        // SAFETY: only the exit slot is last, and it never continues (invariant 2).
        unsafe { $ip.add(1) }
    };
}

/// The slot `ip`'s jump names.
macro_rules! target {
    ($ip:ident, $s:ident) => {
        $s.jump
    };
}

/// Reads register `r` as a word.
macro_rules! get {
    ($regs:ident, $r:expr) => {
        // SAFETY: every register operand is below the register file's length (invariant 1).
        unsafe { (*$regs.add($r as usize)).raw() }
    };
}

/// Writes the word `w` to register `r`.
macro_rules! set {
    ($regs:ident, $r:expr, $w:expr) => {
        // SAFETY: as in `get!` (invariant 1).
        unsafe { *$regs.add($r as usize) = Term::from_raw($w as u64) }
    };
}

/// The slot's operands.
macro_rules! slot {
    ($ip:ident) => {
        // SAFETY: handlers are only called on slots (invariants 2 and 3).
        unsafe { &*$ip }
    };
}

/// Whether the word is a small integer's.
#[inline(always)]
fn is_small(w: u64) -> bool {
    w & SMALL_TAG_MASK == SMALL_TAG
}

#[inline(always)]
fn holds<const C: u8>(a: i64, b: i64) -> bool {
    match C {
        c if c == Cond::Lt as u8 => a < b,
        c if c == Cond::Le as u8 => a <= b,
        c if c == Cond::Gt as u8 => a > b,
        _ => a >= b,
    }
}

/// The exit slot, and the op of every instruction the general interpreter runs: its `k` is its
/// own index (what `stop` computes, read rather than divided out: every run ends here).
unsafe fn exit(ip: *const Slot, _: *mut Term, reds: u32, cx: &mut Cx) -> Exit {
    let pc = slot!(ip).k as usize;
    debug_assert_eq!(pc, stop(ip, reds, cx).pc);
    Exit { pc, reds }
}

unsafe fn nop(ip: *const Slot, regs: *mut Term, reds: u32, cx: &mut Cx) -> Exit {
    next!(step!(ip), regs, reds - 1, cx)
}

unsafe fn jump(ip: *const Slot, regs: *mut Term, reds: u32, cx: &mut Cx) -> Exit {
    let s = slot!(ip);
    next!(target!(ip, s), regs, reds - 1, cx)
}

unsafe fn move_r(ip: *const Slot, regs: *mut Term, reds: u32, cx: &mut Cx) -> Exit {
    let s = slot!(ip);
    let w = get!(regs, s.a);
    set!(regs, s.d, w);
    next!(step!(ip), regs, reds - 1, cx)
}

unsafe fn move_c(ip: *const Slot, regs: *mut Term, reds: u32, cx: &mut Cx) -> Exit {
    let s = slot!(ip);
    set!(regs, s.d, s.k);
    next!(step!(ip), regs, reds - 1, cx)
}

/// `d := a + delta` (`delta` is `k << 4`: adding it to the word keeps the tag).
unsafe fn add_ri(ip: *const Slot, regs: *mut Term, reds: u32, cx: &mut Cx) -> Exit {
    let s = slot!(ip);
    let w = get!(regs, s.a);
    if !is_small(w) {
        return stop(ip, reds, cx);
    }
    let Some(sum) = (w as i64).checked_add(s.k) else {
        return stop(ip, reds, cx);
    };
    set!(regs, s.d, sum);
    next!(step!(ip), regs, reds - 1, cx)
}

/// `d := a + b` (the words' sum less one tag) or, with `SUB`, `d := a - b` (their difference
/// plus one tag).
unsafe fn arith_rr<const SUB: bool>(
    ip: *const Slot,
    regs: *mut Term,
    reds: u32,
    cx: &mut Cx,
) -> Exit {
    let s = slot!(ip);
    let (x, y) = (get!(regs, s.a), get!(regs, s.b));
    // y - tag is b's value shifted left: its low bits are zero exactly when b is small.
    let y = y.wrapping_sub(SMALL_TAG);
    if (x.wrapping_sub(SMALL_TAG) | y) & SMALL_TAG_MASK != 0 {
        return stop(ip, reds, cx);
    }
    let result = if SUB {
        (x as i64).checked_sub(y as i64)
    } else {
        (x as i64).checked_add(y as i64)
    };
    let Some(result) = result else {
        return stop(ip, reds, cx);
    };
    set!(regs, s.d, result);
    next!(step!(ip), regs, reds - 1, cx)
}
/// Jump if `a C b`, both small (tagged words keep their order).
unsafe fn jcc_rr<const C: u8>(ip: *const Slot, regs: *mut Term, reds: u32, cx: &mut Cx) -> Exit {
    let s = slot!(ip);
    let (x, y) = (get!(regs, s.a), get!(regs, s.b));
    if (x.wrapping_sub(SMALL_TAG) | y.wrapping_sub(SMALL_TAG)) & SMALL_TAG_MASK != 0 {
        return stop(ip, reds, cx);
    }
    if holds::<C>(x as i64, y as i64) {
        next!(target!(ip, s), regs, reds - 1, cx)
    }
    next!(step!(ip), regs, reds - 1, cx)
}

/// Jump if `a C k`, `k` a small constant's word.
unsafe fn jcc_ri<const C: u8>(ip: *const Slot, regs: *mut Term, reds: u32, cx: &mut Cx) -> Exit {
    let s = slot!(ip);
    let x = get!(regs, s.a);
    if !is_small(x) {
        return stop(ip, reds, cx);
    }
    if holds::<C>(x as i64, s.k) {
        next!(target!(ip, s), regs, reds - 1, cx)
    }
    next!(step!(ip), regs, reds - 1, cx)
}

/// `jeq`/`jne` (`EQ`) against an immediate constant's word `k`.
unsafe fn jeq_ri<const EQ: bool>(ip: *const Slot, regs: *mut Term, reds: u32, cx: &mut Cx) -> Exit {
    let s = slot!(ip);
    let w = get!(regs, s.a);
    let k = s.k as u64;
    // A float may equal a small integer constant (Erlang's `==`): the general path decides.
    if w != k && !Term::from_raw(w).is_immediate() && is_small(k) {
        return stop(ip, reds, cx);
    }
    if (w == k) == EQ {
        next!(target!(ip, s), regs, reds - 1, cx)
    }
    next!(step!(ip), regs, reds - 1, cx)
}

/// `add`/`sub d, a, k` then `jcc d, k2, L`: two instructions, two reductions. With one left it
/// runs the first only, and the next slot (the plain jump) runs in the next slice.
unsafe fn add_jcc_ri<const C: u8>(
    ip: *const Slot,
    regs: *mut Term,
    reds: u32,
    cx: &mut Cx,
) -> Exit {
    let s = slot!(ip);
    let w = get!(regs, s.a);
    if !is_small(w) {
        return stop(ip, reds, cx);
    }
    let Some(sum) = (w as i64).checked_add(s.k) else {
        return stop(ip, reds, cx);
    };
    set!(regs, s.d, sum);
    // With two left the pair ends the slice: the plain path, so the fused one needs no check.
    if reds <= 2 {
        next!(step!(ip), regs, reds - 1, cx)
    }
    if holds::<C>(sum, s.k2) {
        next!(target!(ip, s), regs, reds - 2, cx)
    }
    // SAFETY: the fused pair's second op is not the exit slot, so the one after it is a slot.
    next!(unsafe { ip.add(2) }, regs, reds - 2, cx)
}

/// `add`/`sub d, a, k` then `jump L`: two reductions, or the first alone with one left.
unsafe fn add_jump(ip: *const Slot, regs: *mut Term, reds: u32, cx: &mut Cx) -> Exit {
    let s = slot!(ip);
    let w = get!(regs, s.a);
    if !is_small(w) {
        return stop(ip, reds, cx);
    }
    let Some(sum) = (w as i64).checked_add(s.k) else {
        return stop(ip, reds, cx);
    };
    set!(regs, s.d, sum);
    if reds <= 2 {
        next!(step!(ip), regs, reds - 1, cx)
    }
    next!(target!(ip, s), regs, reds - 2, cx)
}

/// `add d, a, b`, then `add`/`sub b, b, k` and `jcc b, k2, L` (the body of a counting loop
/// that accumulates: `acc += i; i -= 1; while i > 0`), three reductions. `b` is checked small
/// once and read once (the lowering made sure `d` is not `b`). With three reductions or fewer
/// left, or a step that overflows, the plain `add` runs and its slot's successors go on.
unsafe fn acc_step_jcc<const C: u8>(
    ip: *const Slot,
    regs: *mut Term,
    reds: u32,
    cx: &mut Cx,
) -> Exit {
    if reds <= 3 {
        // SAFETY: the same slot, whose first op is this `add`.
        return unsafe { arith_rr::<false>(ip, regs, reds, cx) };
    }
    let s = slot!(ip);
    let (x, i) = (get!(regs, s.a), get!(regs, s.b));
    let i_untagged = i.wrapping_sub(SMALL_TAG);
    if (x.wrapping_sub(SMALL_TAG) | i_untagged) & SMALL_TAG_MASK != 0 {
        return stop(ip, reds, cx);
    }
    let (Some(acc), Some(stepped)) = (
        (x as i64).checked_add(i_untagged as i64),
        (i as i64).checked_add(s.k),
    ) else {
        // SAFETY: as above.
        return unsafe { arith_rr::<false>(ip, regs, reds, cx) };
    };
    set!(regs, s.d, acc);
    set!(regs, s.b, stepped);
    if holds::<C>(stepped, s.k2) {
        next!(target!(ip, s), regs, reds - 3, cx)
    }
    // SAFETY: the triple's last op is not the exit slot, so the one after it is a slot.
    next!(unsafe { ip.add(3) }, regs, reds - 3, cx)
}

/// `add_jcc_ri` of a loop that is the pair alone, `d` its own source: it goes round inside the
/// handler with the register in a machine register (a memory round trip per iteration would
/// bound it by store-to-load latency), writing it back whenever it leaves. Two reductions per
/// iteration, as the pair's; the last one or two, and an overflow, go through `add_jcc_ri`.
unsafe fn add_jcc_loop<const C: u8>(
    ip: *const Slot,
    regs: *mut Term,
    mut reds: u32,
    cx: &mut Cx,
) -> Exit {
    if reds <= 2 {
        // SAFETY: the same slot, whose op `add_jcc_ri` runs.
        return unsafe { add_jcc_ri::<C>(ip, regs, reds, cx) };
    }
    let s = slot!(ip);
    let mut w = get!(regs, s.a);
    if !is_small(w) {
        return stop(ip, reds, cx);
    }
    loop {
        // The register holds `w` in memory only once the loop leaves.
        let Some(sum) = (w as i64).checked_add(s.k) else {
            set!(regs, s.d, w);
            return stop(ip, reds, cx);
        };
        w = sum as u64;
        reds -= 2;
        if !holds::<C>(sum, s.k2) {
            set!(regs, s.d, w);
            // SAFETY: as in `add_jcc_ri`.
            next!(unsafe { ip.add(2) }, regs, reds, cx)
        }
        if reds <= 2 {
            set!(regs, s.d, w);
            next!(ip, regs, reds, cx)
        }
    }
}

/// `acc_step_jcc` of a loop that is the triple alone, accumulating in place (`d` is `a`): it
/// goes round inside the handler with both registers in machine registers (both are small
/// after the first check, as sums of small integers that did not overflow), writing them back
/// whenever it leaves. Three reductions per iteration; the last ones, and an overflow, go
/// through the plain `add` (`arith_rr`) and the slots after it.
unsafe fn acc_step_loop<const C: u8>(
    ip: *const Slot,
    regs: *mut Term,
    mut reds: u32,
    cx: &mut Cx,
) -> Exit {
    if reds <= 3 {
        // SAFETY: the same slot, whose first op is this `add`.
        return unsafe { arith_rr::<false>(ip, regs, reds, cx) };
    }
    let s = slot!(ip);
    let (mut acc, mut i) = (get!(regs, s.a), get!(regs, s.b));
    if (acc.wrapping_sub(SMALL_TAG) | i.wrapping_sub(SMALL_TAG)) & SMALL_TAG_MASK != 0 {
        return stop(ip, reds, cx);
    }
    loop {
        let (Some(sum), Some(stepped)) = (
            (acc as i64).checked_add(i.wrapping_sub(SMALL_TAG) as i64),
            (i as i64).checked_add(s.k),
        ) else {
            set!(regs, s.d, acc);
            set!(regs, s.b, i);
            // SAFETY: as above.
            return unsafe { arith_rr::<false>(ip, regs, reds, cx) };
        };
        (acc, i) = (sum as u64, stepped as u64);
        reds -= 3;
        if !holds::<C>(stepped, s.k2) {
            set!(regs, s.d, acc);
            set!(regs, s.b, i);
            // SAFETY: as in `acc_step_jcc`.
            next!(unsafe { ip.add(3) }, regs, reds, cx)
        }
        if reds <= 3 {
            set!(regs, s.d, acc);
            set!(regs, s.b, i);
            next!(ip, regs, reds, cx)
        }
    }
}

/// `move d, TEMPLATE` built from the template's image, in the young block when it fits
/// without leaving a collection due (one compare: see `heap::Young`), else by
/// `move_image_with_calls`.
/// `RELS` and `REGS`: the image's counts of words to patch, when a handler is made for them
/// (see [`move_image_for`]), else `heap::ANY`.
unsafe fn move_image<const RELS: usize, const REGS: usize>(
    ip: *const Slot,
    regs: *mut Term,
    reds: u32,
    cx: &mut Cx,
) -> Exit {
    let s = slot!(ip);
    // SAFETY: `link` pointed a `move_image` slot's `jump` at its image, in the `Threaded`
    // whose slots run (and which the caller borrows for the run).
    let image = unsafe { &*s.jump.cast::<Image>() };
    // SAFETY: the slot's `need` counts the registers the image reads (invariant 1), and `run`
    // checked that the register file `regs` points to is that long; `RELS` and `REGS` are the
    // image's counts or `ANY` (`move_image_for`).
    let Some(built) = (unsafe { cx.heap.build_image_inline::<RELS, REGS>(image, regs) }) else {
        // (A sibling call: this handler makes no other, so it saves no register.)
        // SAFETY: as this handler's.
        return unsafe { move_image_with_calls(ip, regs, reds, cx) };
    };
    set!(regs, s.d, built.raw());
    next!(step!(ip), regs, reds - 1, cx)
}

/// The `move_image` handler for `image`: one made for its counts of pointers and registers
/// (up to 4 of each: nearly every template), else the one that reads them from the image.
fn move_image_for(image: &Image) -> Handler {
    by_patch_counts!(image.small_patches(), move_image, Handler)
}

/// `move_image` of a large image, or one that needs a new block of the young generation, or
/// one that would leave a collection due (the general path runs it then, and collects right
/// after, as it always does).
#[inline(never)]
unsafe fn move_image_with_calls(ip: *const Slot, regs: *mut Term, reds: u32, cx: &mut Cx) -> Exit {
    let s = slot!(ip);
    let image = &cx.images[s.k as usize];
    if !cx.heap.fits_without_gc(image.bytes()) {
        return stop(ip, reds, cx);
    }
    // SAFETY: as in `move_image`.
    let built = unsafe { cx.heap.build_image_from(image, regs) };
    set!(regs, s.d, built.raw());
    next!(step!(ip), regs, reds - 1, cx)
}

/// `receive` of flat clauses, without `after`: takes the first message the general path would
/// test if a clause matches it, binds, and continues at that clause's target; waits on an empty
/// mailbox when it may. Anything else (no [`Receiving`], a message no clause matches, a
/// collection due, signals to drain) exits to the general path, which runs the receive in
/// full: what the handler did before it exits (the scan's start, `Mailbox::take_first`) is
/// what the general path does first anyway.
unsafe fn receive(ip: *const Slot, regs: *mut Term, reds: u32, cx: &mut Cx) -> Exit {
    let s = slot!(ip);
    // SAFETY: `link` pointed a `receive` slot's `jump` at its receive, in the `Threaded`
    // whose slots run (and which the caller borrows for the run).
    let r = unsafe { &*s.jump.cast::<Receive>() };
    let Some(rx) = cx.receiving.as_mut() else {
        return stop(ip, reds, cx);
    };
    if rx.mailbox.len() == 0 {
        if !rx.may_wait {
            return stop(ip, reds, cx);
        }
        return wait(ip, reds, cx);
    }
    // (The general path collects after a receive when one is due: a delivery may have
    // filled the heap; taking a message allocates nothing.)
    if cx.heap.needs_gc() {
        return stop(ip, reds, cx);
    }
    // SAFETY: the slot's `need` counts every register a clause binds (invariant 1).
    let Some(target) = (unsafe { take_matching(r, rx, regs) }) else {
        // Nothing matched: the process waits for more, or the general path drains the
        // signals first (and resumes the scan after the messages just rejected).
        if rx.may_wait {
            return wait(ip, reds, cx);
        }
        return stop(ip, reds, cx);
    };
    // SAFETY: targets are at most the exit slot's index (checked in `new`), so slots of this
    // vector (invariant 2).
    let to = unsafe { cx.base.add(target as usize) };
    next!(to, regs, reds - 1, cx)
}

/// `send to, TEMPLATE` of a template with an image, to a register: sent by the runtime when it
/// can do so at once (another process's pid, room in its heap as it is, no trace...), else
/// run by the general path.
unsafe fn send_image(ip: *const Slot, regs: *mut Term, reds: u32, cx: &mut Cx) -> Exit {
    let s = slot!(ip);
    // (The general path collects after a send when one is due; sending allocates nothing in
    // the sender's heap.)
    if cx.heap.needs_gc() {
        return stop(ip, reds, cx);
    }
    let Some(rx) = cx.receiving.as_mut().filter(|rx| rx.may_send) else {
        return stop(ip, reds, cx);
    };
    // SAFETY: `link` pointed the slot's `jump` at its image, as for `move_image`.
    let image = unsafe { &*s.jump.cast::<Image>() };
    let to = Term::from_raw(get!(regs, s.a));
    // SAFETY: `regs` points to the register file, `cx.registers` long, which nothing else
    // reads or writes while the slice lives.
    let file = unsafe { std::slice::from_raw_parts(regs, cx.registers) };
    if !rx.vm.send_image(to, image, file) {
        return stop(ip, reds, cx);
    }
    next!(step!(ip), regs, reds - 1, cx)
}

/// The receive's scan: the target of the clause that matched the message taken, or `None`
/// when no message matched. (Out of line, so that the handler keeps no local whose address a
/// call sees: LLVM makes the jump to the next handler a tail call only then, and the
/// unoptimised builds would not.)
///
/// # Safety
/// As [`Receive::select`]'s.
#[inline(never)]
unsafe fn take_matching(r: &Receive, rx: &mut Receiving, regs: *mut Term) -> Option<u32> {
    let mut tested = 0;
    // SAFETY: this function's contract.
    let target = rx
        .mailbox
        .take_matching(r.site, &mut tested, |msg| unsafe { r.select(msg, regs) });
    rx.vm.tested(tested, target.is_some());
    if target.is_some() {
        *rx.timed_out = false;
    }
    target
}

/// A receive's wait, as the general path's: its reduction spent, the process waits at it. (Its
/// own function: built in `receive`, this exit's flag kept LLVM from making the jump to the
/// next handler there a tail call.)
#[inline(never)]
fn wait(ip: *const Slot, reds: u32, cx: &Cx) -> Exit {
    let at = stop(ip, reds - 1, cx);
    Exit {
        pc: at.pc | WAIT,
        reds: at.reds,
    }
}

/// A call that passes no arguments: push the return position, jump.
unsafe fn call(ip: *const Slot, regs: *mut Term, reds: u32, cx: &mut Cx) -> Exit {
    let s = slot!(ip);
    if cx.frames.len() >= cx.frame_cap {
        return stop(ip, reds, cx);
    }
    cx.frames.push(s.k as u32);
    next!(target!(ip, s), regs, reds - 1, cx)
}

unsafe fn ret(ip: *const Slot, regs: *mut Term, reds: u32, cx: &mut Cx) -> Exit {
    match cx.frames.last() {
        // Invariant 3: the return position is checked against the slots, and what the code
        // there needs against the register file (invariant 1).
        Some(&r) if !cx.catching && (r as usize) < cx.slots => {
            // SAFETY: r < slots, checked just above.
            let to = unsafe { cx.base.add(r as usize) };
            // SAFETY: as above.
            if unsafe { (*to).need } as usize > cx.registers {
                return stop(ip, reds, cx);
            }
            cx.frames.pop();
            next!(to, regs, reds - 1, cx)
        }
        _ => stop(ip, reds, cx),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Threads ops that hold no receive.
    fn threaded(ops: &[Op], images: &[Option<Image>]) -> Threaded {
        Threaded::new(ops, images, &[], &[])
    }

    impl Threaded {
        /// [`Threaded::run`] with no [`Receiving`]: the pc and reductions left.
        #[allow(clippy::too_many_arguments)]
        fn run_ops(
            &self,
            regs: &mut [Term],
            frames: &mut Vec<u32>,
            heap: &mut Heap,
            pc: usize,
            reds: u32,
            frame_cap: usize,
            catching: bool,
        ) -> (usize, u32) {
            let (pc, reds, wait) =
                self.run(regs, frames, heap, pc, reds, frame_cap, catching, None);
            assert!(!wait);
            (pc, reds)
        }
    }

    fn small(v: i64) -> Term {
        Term::small_int(v).unwrap()
    }

    /// `r1 += r2; r2 -= 1; jgt r2, 0, 0` then an instruction the general path runs, lowered
    /// as the VM lowers it (the three fused, the last two fused).
    fn counting_loop() -> Vec<Op> {
        use crate::isa::{Instr, Label, Reg, Src};
        let consts = [small(1), small(0)];
        let code = [
            Instr::Add {
                d: Reg(1),
                a: Src::reg(1),
                b: Src::reg(2),
            },
            Instr::Sub {
                d: Reg(2),
                a: Src::reg(2),
                b: Src::constant(0),
            },
            Instr::Jgt {
                a: Src::reg(2),
                b: Src::constant(1),
                target: Label(0),
            },
            Instr::End {},
        ];
        let ops = crate::lower::lower(&code, &consts, &[]);
        assert!(matches!(ops[0], Op::AccStepJcc { .. }), "{ops:?}");
        assert!(matches!(ops[1], Op::AddJccRI { .. }), "{ops:?}");
        ops
    }

    #[test]
    fn a_slot_is_forty_bytes() {
        assert_eq!(std::mem::size_of::<Slot>(), 40);
    }

    #[test]
    fn a_loop_runs_to_its_exit_and_counts_every_instruction() {
        let code = threaded(&counting_loop(), &[]);
        let mut regs = vec![small(0), small(0), small(100)];
        let mut frames = Vec::new();
        // 100 iterations of three instructions, then the exit.
        let (pc, left) = code.run_ops(&mut regs, &mut frames, &mut Heap::new(), 0, 1000, 0, false);
        assert_eq!((pc, left), (3, 1000 - 300));
        assert_eq!(regs[1], small(5050));
        assert_eq!(regs[2], small(0));
    }

    #[test]
    fn a_budget_ends_at_the_exact_instruction() {
        let code = threaded(&counting_loop(), &[]);
        for budget in 1..=10u32 {
            let mut regs = vec![small(0), small(0), small(100)];
            let (pc, left) = code.run_ops(
                &mut regs,
                &mut Vec::new(),
                &mut Heap::new(),
                0,
                budget,
                0,
                false,
            );
            assert_eq!(left, 0);
            // Instructions run: budget; the pc is the next of the three.
            assert_eq!(pc, budget as usize % 3, "budget {budget}");
            let iterations = budget as i64 / 3;
            let acc: i64 = (0..iterations + i64::from(budget % 3 > 0))
                .map(|i| 100 - i)
                .sum();
            assert_eq!(regs[1], small(acc), "budget {budget}");
        }
    }

    /// The loop `L: r1 -= 1; jgt r1, 0, L` (the pair alone: it goes round in its handler), and
    /// the triple of `counting_loop` behind a `nop` (its jump leaves it: the plain handler),
    /// both stopped at every budget: each ends at the exact instruction with the state the
    /// instructions before it left.
    #[test]
    fn loops_in_a_handler_and_out_of_it_end_at_the_exact_instruction() {
        use crate::isa::{Instr, Label, Reg, Src};
        let consts = [small(1), small(0)];
        let down = [
            Instr::Sub {
                d: Reg(1),
                a: Src::reg(1),
                b: Src::constant(0),
            },
            Instr::Jgt {
                a: Src::reg(1),
                b: Src::constant(1),
                target: Label(0),
            },
            Instr::End {},
        ];
        let code = threaded(&crate::lower::lower(&down, &consts, &[]), &[]);
        for budget in 1..=9u32 {
            let mut regs = vec![small(0), small(100)];
            let (pc, left) = code.run_ops(
                &mut regs,
                &mut Vec::new(),
                &mut Heap::new(),
                0,
                budget,
                0,
                false,
            );
            assert_eq!((pc, left), (budget as usize % 2, 0), "budget {budget}");
            assert_eq!(regs[1], small(100 - i64::from(budget.div_ceil(2))));
        }
        let mut regs = vec![small(0), small(100)];
        let (pc, left) = code.run_ops(
            &mut regs,
            &mut Vec::new(),
            &mut Heap::new(),
            0,
            1000,
            0,
            false,
        );
        assert_eq!((pc, left, regs[1]), (2, 800, small(0)));

        let mut ops = vec![Op::Nop];
        ops.extend(counting_loop().into_iter().map(|op| match op {
            Op::AccStepJcc {
                d,
                a,
                b,
                cond,
                delta,
                k,
                ..
            } => Op::AccStepJcc {
                d,
                a,
                b,
                cond,
                delta,
                k,
                target: 0,
            },
            other => other,
        }));
        let code = threaded(&ops, &[]);
        for budget in 1..=12u32 {
            let mut regs = vec![small(0), small(0), small(100)];
            let (pc, left) = code.run_ops(
                &mut regs,
                &mut Vec::new(),
                &mut Heap::new(),
                0,
                budget,
                0,
                false,
            );
            // nop, add, sub, jgt, nop, add, ...
            assert_eq!((pc, left), (budget as usize % 4, 0), "budget {budget}");
            let adds = i64::from((budget + 2) / 4);
            assert_eq!(
                regs[1],
                small((0..adds).map(|k| 100 - k).sum()),
                "budget {budget}"
            );
        }
    }

    #[test]
    fn unexpected_operands_exit_before_the_instruction() {
        let code = threaded(&counting_loop(), &[]);
        let mut regs = vec![small(0), Term::atom(0), small(100)];
        let (pc, left) = code.run_ops(
            &mut regs,
            &mut Vec::new(),
            &mut Heap::new(),
            0,
            50,
            0,
            false,
        );
        assert_eq!((pc, left), (0, 50));
        // An overflow leaves the small range: exit, register untouched.
        let max = small(crate::word::SMALL_MAX);
        let mut regs = vec![small(0), max, small(1)];
        let (pc, left) = code.run_ops(
            &mut regs,
            &mut Vec::new(),
            &mut Heap::new(),
            0,
            50,
            0,
            false,
        );
        assert_eq!((pc, left, regs[1]), (0, 50, max));
    }

    #[test]
    fn a_short_register_file_or_a_stray_pc_runs_nothing() {
        let code = threaded(&counting_loop(), &[]);
        let mut regs = vec![small(0), small(0)];
        assert_eq!(
            code.run_ops(&mut regs, &mut Vec::new(), &mut Heap::new(), 0, 9, 0, false),
            (0, 9)
        );
        let mut regs = vec![small(0); 3];
        assert_eq!(
            code.run_ops(
                &mut regs,
                &mut Vec::new(),
                &mut Heap::new(),
                99,
                9,
                0,
                false
            ),
            (99, 9)
        );
    }

    #[test]
    fn calls_and_returns_use_the_frames() {
        // 0: call 2; 1: exit; 2: r0 += 1; 3: ret
        let ops = [
            Op::Call(2),
            Op::Slow,
            Op::AddRI {
                d: 0,
                a: 0,
                delta: 16,
            },
            Op::Ret,
        ];
        let code = threaded(&ops, &[]);
        let mut regs = vec![small(1)];
        let mut frames = vec![];
        let (pc, left) = code.run_ops(&mut regs, &mut frames, &mut Heap::new(), 0, 10, 8, false);
        assert_eq!((pc, left, regs[0]), (1, 7, small(2)));
        assert!(frames.is_empty());
        // No room for a frame, or a `ret` with handlers installed: the general path.
        assert_eq!(
            code.run_ops(&mut regs, &mut frames, &mut Heap::new(), 0, 10, 0, false),
            (0, 10)
        );
        let mut frames = vec![1];
        assert_eq!(
            code.run_ops(&mut regs, &mut frames, &mut Heap::new(), 3, 10, 8, true),
            (3, 10)
        );
        // A return position past the code is not followed.
        let mut frames = vec![1000];
        assert_eq!(
            code.run_ops(&mut regs, &mut frames, &mut Heap::new(), 3, 10, 8, false),
            (3, 10)
        );
        assert_eq!(frames, [1000]);
    }

    #[test]
    fn a_slot_needs_the_registers_of_all_it_reaches() {
        // 0: r0 := r0; 1: jump 3; 2: r9 := r9 (unreachable from 0); 3: r5 += 1; 4: exit
        let ops = [
            Op::MoveR { d: 0, s: 0 },
            Op::Jump(3),
            Op::MoveR { d: 9, s: 9 },
            Op::AddRI {
                d: 5,
                a: 5,
                delta: 16,
            },
            Op::Slow,
        ];
        let code = threaded(&ops, &[]);
        let need: Vec<u16> = code.slots.iter().map(|s| s.need).collect();
        assert_eq!(need, [6, 6, 10, 6, 0, 0]);
        // Five registers are one short of what slot 0 reaches: nothing runs.
        let mut regs = vec![small(0); 5];
        assert_eq!(
            code.run_ops(&mut regs, &mut Vec::new(), &mut Heap::new(), 0, 9, 0, false),
            (0, 9)
        );
        let mut regs = vec![small(0); 6];
        assert_eq!(
            code.run_ops(&mut regs, &mut Vec::new(), &mut Heap::new(), 0, 9, 0, false),
            (4, 6)
        );
        assert_eq!(regs[5], small(1));
    }

    #[test]
    fn a_ret_to_code_that_needs_more_registers_exits() {
        // 0: ret; 1: r7 := r7; 2: exit
        let ops = [Op::Ret, Op::MoveR { d: 7, s: 7 }, Op::Slow];
        let code = threaded(&ops, &[]);
        let mut regs = vec![small(0); 2];
        let mut frames = vec![1];
        assert_eq!(
            code.run_ops(&mut regs, &mut frames, &mut Heap::new(), 0, 9, 8, false),
            (0, 9)
        );
        assert_eq!(frames, [1]);
        let mut regs = vec![small(0); 8];
        assert_eq!(
            code.run_ops(&mut regs, &mut frames, &mut Heap::new(), 0, 9, 8, false),
            (2, 7)
        );
    }

    /// `move r2, {r0, [r1]}` from its image, in the handlers; not when the allocation would
    /// call for a collection (the general path builds it then, and collects).
    #[test]
    fn a_template_builds_from_its_image_unless_a_collection_is_due() {
        use crate::heap::{read_boxed, read_cons, Boxed, Image, Shape};
        enum T {
            R(u8),
            Tup(Vec<T>),
            L(Vec<T>),
        }
        fn shape(t: &T) -> Shape<'_, T> {
            static NIL: T = T::L(Vec::new());
            match t {
                T::R(r) => Shape::Reg(*r),
                T::Tup(items) => Shape::Tuple(items),
                T::L(items) if items.is_empty() => Shape::Const(Term::NIL),
                T::L(items) => Shape::List(items, &NIL),
            }
        }
        let t = T::Tup(vec![T::R(0), T::L(vec![T::R(1)])]);
        let image = Image::of(&t, &shape).expect("a fixed shape");
        let code = threaded(
            &[Op::MoveImage { d: 2, image: 0 }, Op::Slow],
            &[Some(image)],
        );
        assert_eq!(code.slots[0].need, 3);
        let mut regs = vec![small(5), small(6), Term::NIL];
        let mut heap = Heap::new();
        let out = code.run_ops(&mut regs, &mut Vec::new(), &mut heap, 0, 10, 0, false);
        if cfg!(feature = "gc-stress") {
            // Every allocation calls for a collection there: the general path's.
            assert_eq!((out, regs[2]), ((0, 10), Term::NIL));
            return;
        }
        assert_eq!(out, (1, 9));
        let Some(Boxed::Tuple(elems)) = read_boxed(regs[2]) else {
            panic!("a tuple")
        };
        assert_eq!(elems[0], small(5));
        assert_eq!(read_cons(elems[1]), Some((small(6), Term::NIL)));
        // No room left under the cap: nothing is built, the general path runs it.
        heap.set_cap(heap.used_bytes());
        regs[2] = Term::NIL;
        let out = code.run_ops(&mut regs, &mut Vec::new(), &mut heap, 0, 10, 0, false);
        assert_eq!((out, regs[2]), ((0, 10), Term::NIL));
    }

    /// A mock VM for the `receive` and `send` handlers: it takes every send it is offered
    /// (or none), and keeps what it sent.
    struct Sends {
        accept: bool,
        sent: Vec<i64>,
        took: u32,
    }

    impl Messages for Sends {
        fn tested(&mut self, _: u64, took: bool) {
            self.took += u32::from(took);
        }
        fn send_image(&mut self, to: Term, _: &Image, regs: &[Term]) -> bool {
            assert_eq!(to, small(99), "the pid register");
            if self.accept {
                self.sent.push(regs[1].as_small_int().expect("the count"));
            }
            self.accept
        }
    }

    /// A ring member's loop: `receive {:token, 0} -> 4 | {:token, r1}`, `sub r1, r1, 1`,
    /// `send r0, {:token, r1}`, `jump 0`; slot 4 is the general path's.
    fn ring_member() -> Threaded {
        use crate::bytecode::Clause;
        use crate::heap::Shape;
        use crate::isa::{Label, PatId};
        enum T {
            R(u8),
            C(Term),
            Tup(Vec<T>),
        }
        fn shape(t: &T) -> Shape<'_, T> {
            match t {
                T::R(r) => Shape::Reg(*r),
                T::C(c) => Shape::Const(*c),
                T::Tup(items) => Shape::Tuple(items),
            }
        }
        let token = Term::atom(TOKEN);
        let image = Image::of(&T::Tup(vec![T::C(token), T::R(1)]), &shape).expect("fixed");
        let table = ClauseTable {
            clauses: vec![
                Clause {
                    pattern: PatId(0),
                    target: Some(Label(4)),
                },
                Clause {
                    pattern: PatId(1),
                    target: None,
                },
            ],
            after: None,
        };
        let site = SiteInfo {
            pure: true,
            pins: vec![vec![], vec![]],
            flat: Some(Box::new([
                FlatClause {
                    arity: 2,
                    consts: Box::new([(0, token), (1, small(0))]),
                    binds: Box::new([]),
                },
                FlatClause {
                    arity: 2,
                    consts: Box::new([(0, token)]),
                    binds: Box::new([(1, 1)]),
                },
            ])),
        };
        let ops = [
            Op::Receive { site: 0 },
            Op::AddRI {
                d: 1,
                a: 1,
                delta: -1 << 4,
            },
            Op::SendImage { to: 0, image: 0 },
            Op::Jump(0),
            Op::Slow,
        ];
        Threaded::new(&ops, &[Some(image)], &[table], &[site])
    }

    const TOKEN: u32 = 7;

    /// Runs `code` from slot 0 straight into the handlers (past `run`'s chunks) on a small
    /// stack, with a mailbox of `{:token, k}` for each `k` of `tokens` and the mock VM:
    /// where it stopped, the reductions spent, whether it waits, and the mock.
    fn run_member(code: Threaded, tokens: Vec<i64>, accept: bool) -> (usize, u32, bool, Sends) {
        let run = move || {
            let code = code;
            // The messages in a heap of their own: the process's stays small, with no
            // collection due.
            let (mut heap, mut messages) = (Heap::new(), Heap::new());
            let mut mailbox = Mailbox::new();
            for k in tokens {
                mailbox.push(messages.tuple(&[Term::atom(TOKEN), small(k)]));
            }
            let mut regs = vec![small(99), Term::NIL];
            let mut frames = Vec::new();
            let mut timed_out = true;
            let mut vm = Sends {
                accept,
                sent: Vec::new(),
                took: 0,
            };
            let mut receiving = Receiving {
                mailbox: &mut mailbox,
                timed_out: &mut timed_out,
                may_wait: true,
                may_send: true,
                vm: &mut vm,
            };
            let mut cx = Cx {
                heap: &mut heap,
                images: &code.images,
                frames: &mut frames,
                frame_cap: 0,
                catching: false,
                base: code.slots.as_ptr(),
                slots: code.slots.len(),
                registers: regs.len(),
                receiving: Some(&mut receiving),
            };
            let ip = code.slots.as_ptr();
            // SAFETY: the register file has the 2 registers the slots name; ip is slot 0.
            let out = unsafe { ((*ip).run)(ip, regs.as_mut_ptr(), u32::MAX, &mut cx) };
            assert!(!timed_out || vm.took == 0, "a take clears the timeout flag");
            (out.pc & !WAIT, u32::MAX - out.reds, out.pc & WAIT != 0, vm)
        };
        let stack = if cfg!(miri) { 8 << 20 } else { 64 << 10 };
        std::thread::Builder::new()
            .stack_size(stack)
            .spawn(run)
            .unwrap()
            .join()
            .unwrap()
    }

    #[test]
    fn a_ring_member_takes_sends_and_waits_in_the_handlers() {
        if cfg!(feature = "gc-stress") {
            return; // every receive exits there: a collection is always due
        }
        let n: i64 = if cfg!(miri) { 200 } else { 100_000 };
        let tokens: Vec<i64> = (1..=n).collect();
        let (pc, spent, wait, vm) = run_member(ring_member(), tokens, true);
        // Four ops a message, then the receive that found the mailbox empty: one reduction
        // more, and the process waits at it.
        assert_eq!((pc, spent, wait), (0, 4 * n as u32 + 1, true));
        assert_eq!(vm.took, n as u32);
        assert_eq!(vm.sent, (0..n).collect::<Vec<_>>());
    }

    #[test]
    fn a_receive_or_send_the_handlers_cannot_do_exits_before_it() {
        if cfg!(feature = "gc-stress") {
            return;
        }
        // `{:token, 0}` goes to the general path's slot 4 (a clause's target).
        let (pc, spent, wait, vm) = run_member(ring_member(), vec![0], true);
        assert_eq!((pc, spent, wait, vm.took), (4, 1, false, 1));
        // A send the VM does not take: the general path runs it, after the `sub`.
        let (pc, spent, wait, vm) = run_member(ring_member(), vec![5], false);
        assert_eq!((pc, spent, wait, vm.took), (2, 2, false, 1));
        assert!(vm.sent.is_empty());
        // A message no clause matches stays, skipped: the scan goes on past it, and the
        // process waits when nothing matched (or, with signals to drain first, the general
        // path runs the receive: it resumes after the skipped message).
        let scan = |tokens: &[Option<i64>], may_wait: bool| {
            let code = ring_member();
            let mut heap = Heap::new();
            let mut mailbox = Mailbox::new();
            for t in tokens {
                let msg = match t {
                    Some(k) => heap.tuple(&[Term::atom(TOKEN), small(*k)]),
                    None => heap.tuple(&[small(1)]),
                };
                mailbox.push(msg);
            }
            let mut regs = vec![small(99), Term::NIL];
            let (mut frames, mut timed_out) = (Vec::new(), false);
            let mut vm = Sends {
                accept: true,
                sent: Vec::new(),
                took: 0,
            };
            let mut receiving = Receiving {
                mailbox: &mut mailbox,
                timed_out: &mut timed_out,
                may_wait,
                may_send: true,
                vm: &mut vm,
            };
            let out = code.run(
                &mut regs,
                &mut frames,
                &mut heap,
                0,
                10,
                0,
                false,
                Some(&mut receiving),
            );
            (out, mailbox.len(), vm.took)
        };
        assert_eq!(scan(&[None], true), ((0, 9, true), 1, 0));
        assert_eq!(scan(&[None], false), ((0, 10, false), 1, 0));
        assert_eq!(scan(&[None, Some(0), None], true), ((4, 9, false), 2, 1));
        // Without the VM lent (a trace, a timer): the general path.
        let code = ring_member();
        let mut regs = vec![small(99), Term::NIL];
        let out = code.run_ops(
            &mut regs,
            &mut Vec::new(),
            &mut Heap::new(),
            0,
            10,
            0,
            false,
        );
        assert_eq!(out, (0, 10));
    }

    #[test]
    fn a_clone_jumps_within_itself() {
        let original = threaded(&counting_loop(), &[]);
        let copy = original.clone();
        drop(original);
        let mut regs = vec![small(0), small(0), small(10)];
        assert_eq!(
            copy.run_ops(
                &mut regs,
                &mut Vec::new(),
                &mut Heap::new(),
                0,
                100,
                0,
                false
            ),
            (3, 70)
        );
        assert_eq!(regs[1], small(55));
    }

    #[test]
    fn targets_out_of_range_exit() {
        let code = threaded(&[Op::Jump(7), Op::Nop], &[]);
        assert_eq!(
            code.run_ops(&mut [], &mut Vec::new(), &mut Heap::new(), 0, 5, 0, false),
            (0, 5)
        );
        let code = threaded(&[Op::Nop, Op::Jump(0)], &[]);
        assert_eq!(
            code.run_ops(&mut [], &mut Vec::new(), &mut Heap::new(), 0, 5, 0, false),
            (1, 0)
        );
    }

    /// Each op's handler continues to the next by a jump, not a call: ten million ops in one
    /// call into the handlers would need far more than 64 KiB of stack otherwise. (Miri, which
    /// makes no tail calls, runs a short version with `CHUNK` bounding the depth.)
    #[test]
    fn ten_million_ops_run_in_a_small_stack() {
        let n: i64 = if cfg!(miri) { 3_000 } else { 10_000_000 };
        let ops = counting_loop();
        let code = threaded(&ops, &[]);
        let run = move || {
            let code = code; // the whole `Threaded` (it is `Send`), not its fields
            let mut regs = vec![small(0), small(0), small(n / 3)];
            let mut frames = Vec::new();
            // Past the chunking: straight into the handlers, as `run` does per chunk.
            let mut heap = Heap::new();
            let mut cx = Cx {
                heap: &mut heap,
                images: &[],
                frames: &mut frames,
                frame_cap: 0,
                catching: false,
                base: code.slots.as_ptr(),
                slots: code.slots.len(),
                registers: 3,
                receiving: None,
            };
            let ip = code.slots.as_ptr();
            // SAFETY: the register file has the 3 registers the slots name; ip is slot 0.
            let out = unsafe { ((*ip).run)(ip, regs.as_mut_ptr(), u32::MAX, &mut cx) };
            (out.pc, u32::MAX - out.reds, regs[2])
        };
        let stack = if cfg!(miri) { 8 << 20 } else { 64 << 10 };
        let (pc, spent, i) = std::thread::Builder::new()
            .stack_size(stack)
            .spawn(run)
            .unwrap()
            .join()
            .unwrap();
        assert_eq!((pc, spent as i64, i), (3usize, n / 3 * 3, small(0)));
    }
}
