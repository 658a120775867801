//! Lowering: specialised forms of the hottest instructions, derived once at load time.
//!
//! The instruction table (`isa.rs`) stays the one definition of the instruction set; this is a
//! cache next to it, one [`Op`] per instruction at the same index. An op knows its operand forms
//! (register or constant) in advance and works on tagged words directly: a small integer is
//! `value << 4 | 0b0011`, so adding two of them is one machine add on the words (minus one tag),
//! comparing them compares the words, and an `i64` overflow of that add is exactly a result that
//! leaves the small-integer range. Whenever an operand is not what the op expects (a boxed
//! integer, a non-integer, an overflow), the fast loop stops and the general interpreter runs
//! the original instruction, so lowering never changes behaviour.

use crate::isa::{Instr, Src, SrcKind};
use crate::term::Term;

/// Tag bits of a small integer word (see `term.rs`).
pub const SMALL_TAG_MASK: u64 = 0b1111;
pub const SMALL_TAG: u64 = 0b0011;

/// A comparison for the conditional jumps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)] // the threaded handlers are instances of a const generic over `Cond as u8`
pub enum Cond {
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cond {
    #[cfg(test)]
    pub fn holds(self, a: i64, b: i64) -> bool {
        match self {
            Cond::Lt => a < b,
            Cond::Le => a <= b,
            Cond::Gt => a > b,
            Cond::Ge => a >= b,
        }
    }
    /// The condition with its operands swapped (`a < b` is `b > a`).
    fn flip(self) -> Cond {
        match self {
            Cond::Lt => Cond::Gt,
            Cond::Le => Cond::Ge,
            Cond::Gt => Cond::Lt,
            Cond::Ge => Cond::Le,
        }
    }
}

/// A lowered instruction. `Slow` means: run `code[pc]` in the general interpreter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Slow,
    Nop,
    Jump(u32),
    MoveR {
        d: u8,
        s: u8,
    },
    MoveC {
        d: u8,
        t: Term,
    },
    /// `d := a + b`, both registers.
    AddRR {
        d: u8,
        a: u8,
        b: u8,
    },
    /// `d := a - b`, both registers.
    SubRR {
        d: u8,
        a: u8,
        b: u8,
    },
    /// `d := a + k` for a small constant k (`sub` by k is `add` of -k); `delta` is `k << 4`.
    AddRI {
        d: u8,
        a: u8,
        delta: i64,
    },
    /// Jump if `a cond b`, both registers holding small integers.
    JccRR {
        a: u8,
        b: u8,
        cond: Cond,
        target: u32,
    },
    /// Jump if `a cond k`; `k` is the small constant's word.
    JccRI {
        a: u8,
        k: i64,
        cond: Cond,
        target: u32,
    },
    /// `jeq`/`jne` against an immediate constant: words equal exactly when terms are equal
    /// (integers are canonical, so no boxed term equals an immediate).
    JeqRI {
        a: u8,
        k: u64,
        eq: bool,
        target: u32,
    },
    Call(u32),
    /// Runs in the general interpreter, as `Slow`, with the target of a call or spawn through
    /// the export table already looked up (its slot's code).
    Resolved(u32),
    Ret,
    /// A superinstruction: `add`/`sub d, a, k` then `jcc d, k2, L` on the same register (the
    /// tail of most counting loops), in one dispatch. It needs two reductions; with one left
    /// it runs only the `add` (`delta`) part, so a budget still ends at the exact instruction.
    /// The op at the next index stays the plain jump, for code that jumps straight to it.
    AddJccRI {
        d: u8,
        a: u8,
        cond: Cond,
        delta: i32,
        k: i32,
        target: u32,
    },
    /// A superinstruction: `add d, a, b`, then `add`/`sub b, b, k` and `jcc b, k2, L`, the body
    /// of a counting loop that accumulates (`ember prof`'s top triple: `add sub jgt`). Three
    /// reductions; with fewer left it runs as its parts. `d` is not `b`, so `b` is read once.
    /// The ops at the next two indices stay the pair and the jump.
    AccStepJcc {
        d: u8,
        a: u8,
        b: u8,
        cond: Cond,
        delta: i16,
        k: i32,
        target: u32,
    },
    /// `move d, TEMPLATE` of a template of a fixed shape: built from its image (`heap::Image`,
    /// index `image` of the program's). Set by `Program::build`, which has the images.
    MoveImage {
        d: u8,
        image: u32,
    },
    /// `receive` of clause table `site`, whose clauses are all flat tuples (`SiteInfo::flat`)
    /// and which has no `after`: the threaded handler takes a matching message, or waits on an
    /// empty mailbox, without the general interpreter. Set by `Program::build`, which has the
    /// sites.
    Receive {
        site: u32,
    },
    /// `send to, TEMPLATE` to a register of a template of a fixed shape (`image`, as in
    /// `MoveImage`): the threaded handler sends it when the runtime can do so at once. Set by
    /// `Program::build`.
    SendImage {
        to: u8,
        image: u32,
    },
    /// A superinstruction: `add`/`sub d, a, k` then `jump L` (a loop's step back to its head),
    /// two reductions, or the `add` alone with one left, as `AddJccRI`.
    AddJump {
        d: u8,
        a: u8,
        delta: i32,
        target: u32,
    },
}

fn small_const(s: Src, consts: &[Term]) -> Option<Term> {
    match s.kind() {
        SrcKind::Const(k) => consts
            .get(k as usize)
            .copied()
            .filter(|t| t.as_small_int().is_some()),
        _ => None,
    }
}

fn lower_cmp(a: Src, b: Src, cond: Cond, target: u32, consts: &[Term]) -> Op {
    match (a.as_reg(), b.as_reg()) {
        (Some(a), Some(b)) => Op::JccRR { a, b, cond, target },
        (Some(a), None) => match small_const(b, consts) {
            Some(k) => Op::JccRI {
                a,
                k: k.raw() as i64,
                cond,
                target,
            },
            None => Op::Slow,
        },
        (None, Some(b)) => match small_const(a, consts) {
            Some(k) => Op::JccRI {
                a: b,
                k: k.raw() as i64,
                cond: cond.flip(),
                target,
            },
            None => Op::Slow,
        },
        (None, None) => Op::Slow,
    }
}

/// `a + sign * k` with `a` a register and `k` a small constant, as an `AddRI`.
fn lower_add_const(d: u8, a: u8, k: Term, negate: bool) -> Op {
    let v = k.as_small_int().expect("small constant");
    let v = if negate { v.checked_neg() } else { Some(v) };
    match v.and_then(|v| v.checked_mul(16)) {
        Some(delta) => Op::AddRI { d, a, delta },
        None => Op::Slow,
    }
}

/// The lowered form of every instruction, index for index, with adjacent pairs fused.
///
/// The pairs fused are the most frequent of `ember prof`'s "adjacent pairs" over `examples/`
/// and `bench/`: `sub`+`jgt` (a counting loop's tail) and `add`+`jump` (a loop's step back).
pub fn lower(code: &[Instr], consts: &[Term], args: &[Vec<Src>]) -> Vec<Op> {
    let mut ops = lower_each(code, consts, args);
    for i in 0..ops.len().saturating_sub(1) {
        if let (Op::AddRI { d, a, delta }, Op::Jump(target)) = (ops[i], ops[i + 1]) {
            if let Ok(delta) = i32::try_from(delta) {
                ops[i] = Op::AddJump {
                    d,
                    a,
                    delta,
                    target,
                };
            }
            continue;
        }
        if let (
            Op::AddRI { d, a, delta },
            Op::JccRI {
                a: tested,
                k,
                cond,
                target,
            },
        ) = (ops[i], ops[i + 1])
        {
            if let (true, Ok(delta), Ok(k)) = (tested == d, i32::try_from(delta), i32::try_from(k))
            {
                ops[i] = Op::AddJccRI {
                    d,
                    a,
                    cond,
                    delta,
                    k,
                    target,
                };
            }
        }
    }
    // Triples, over the fused pairs: an `add` of two registers before an `AddJccRI` that
    // steps one of them in place.
    for i in 0..ops.len().saturating_sub(1) {
        if let (
            Op::AddRR { d, a, b },
            Op::AddJccRI {
                d: stepped,
                a: step_of,
                cond,
                delta,
                k,
                target,
            },
        ) = (ops[i], ops[i + 1])
        {
            // The stepped register as `b` (addition commutes).
            let (a, b) = if a == step_of { (b, a) } else { (a, b) };
            if let (true, Ok(delta)) =
                (b == step_of && stepped == b && d != b, i16::try_from(delta))
            {
                ops[i] = Op::AccStepJcc {
                    d,
                    a,
                    b,
                    cond,
                    delta,
                    k,
                    target,
                };
            }
        }
    }
    ops
}

fn lower_each(code: &[Instr], consts: &[Term], args: &[Vec<Src>]) -> Vec<Op> {
    code.iter()
        .map(|instr| match *instr {
            Instr::Nop {} => Op::Nop,
            Instr::Jump { target } => Op::Jump(target.0),
            Instr::Move { d, v } => match v.kind() {
                SrcKind::Reg(s) => Op::MoveR { d: d.0, s },
                SrcKind::Const(k) => Op::MoveC {
                    d: d.0,
                    t: consts[k as usize],
                },
                SrcKind::Template(_) => Op::Slow,
            },
            Instr::Add { d, a, b } => {
                match (a.as_reg(), b.as_reg()) {
                    (Some(a), Some(b)) => Op::AddRR { d: d.0, a, b },
                    (Some(a), None) => small_const(b, consts)
                        .map_or(Op::Slow, |k| lower_add_const(d.0, a, k, false)),
                    (None, Some(b)) => small_const(a, consts)
                        .map_or(Op::Slow, |k| lower_add_const(d.0, b, k, false)),
                    _ => Op::Slow,
                }
            }
            Instr::Sub { d, a, b } => match (a.as_reg(), b.as_reg()) {
                (Some(a), Some(b)) => Op::SubRR { d: d.0, a, b },
                (Some(a), None) => {
                    small_const(b, consts).map_or(Op::Slow, |k| lower_add_const(d.0, a, k, true))
                }
                _ => Op::Slow,
            },
            Instr::Jlt { a, b, target } => lower_cmp(a, b, Cond::Lt, target.0, consts),
            Instr::Jle { a, b, target } => lower_cmp(a, b, Cond::Le, target.0, consts),
            Instr::Jgt { a, b, target } => lower_cmp(a, b, Cond::Gt, target.0, consts),
            Instr::Jge { a, b, target } => lower_cmp(a, b, Cond::Ge, target.0, consts),
            Instr::Jeq { a, b, target } | Instr::Jne { a, b, target } => {
                let eq = matches!(instr, Instr::Jeq { .. });
                let (reg, konst) = match (a.as_reg(), b.as_reg()) {
                    (Some(r), None) => (r, b),
                    (None, Some(r)) => (r, a),
                    _ => return Op::Slow,
                };
                match konst.kind() {
                    SrcKind::Const(k) if consts[k as usize].is_immediate() => Op::JeqRI {
                        a: reg,
                        k: consts[k as usize].raw(),
                        eq,
                        target: target.0,
                    },
                    _ => Op::Slow,
                }
            }
            // A call that passes arguments copies them first: the general path.
            Instr::Call { target, args: a } if args[a.0 as usize].is_empty() => Op::Call(target.0),
            Instr::Ret {} => Op::Ret,
            _ => Op::Slow,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_hold_as_their_comparisons() {
        for a in -2..=2i64 {
            for b in [-2, 0, 2, i64::MIN, i64::MAX] {
                assert_eq!(Cond::Lt.holds(a, b), a < b);
                assert_eq!(Cond::Le.holds(a, b), a <= b);
                assert_eq!(Cond::Gt.holds(a, b), a > b);
                assert_eq!(Cond::Ge.holds(a, b), a >= b);
                for c in [Cond::Lt, Cond::Le, Cond::Gt, Cond::Ge] {
                    assert_eq!(c.flip().holds(b, a), c.holds(a, b));
                }
            }
        }
    }

    #[test]
    fn op_is_sixteen_bytes() {
        assert_eq!(std::mem::size_of::<Op>(), 16);
    }

    #[test]
    fn tagged_arithmetic_matches_integer_arithmetic_at_the_edges() {
        let small = |v: i64| Term::small_int(v).unwrap().raw() as i64;
        for (a, b) in [
            (1, 2),
            (-5, 3),
            (crate::word::SMALL_MAX, 0),
            (crate::word::SMALL_MIN, 0),
            (crate::word::SMALL_MAX, 1),
            (crate::word::SMALL_MIN, -1),
        ] {
            let sum = small(a).checked_add(b * 16);
            match Term::small_int(a + b) {
                Some(t) => assert_eq!(sum, Some(t.raw() as i64), "{a} + {b}"),
                None => assert_eq!(sum, None, "{a} + {b} leaves the small range"),
            }
            let rr = small(a).checked_add(small(b) - SMALL_TAG as i64);
            assert_eq!(
                rr,
                Term::small_int(a + b).map(|t| t.raw() as i64),
                "{a} + {b} (registers)"
            );
        }
        assert!(small(-3) < small(2) && small(7) > small(-100));
    }

    #[test]
    fn a_counting_loop_tail_is_fused() {
        use crate::isa::{Label, Reg};
        let consts = [Term::small_int(1).unwrap(), Term::small_int(0).unwrap()];
        let code = [
            Instr::Sub {
                d: Reg(4),
                a: Src::reg(4),
                b: Src::constant(0),
            },
            Instr::Jgt {
                a: Src::reg(4),
                b: Src::constant(1),
                target: Label(0),
            },
            Instr::End {},
        ];
        let ops = lower(&code, &consts, &[]);
        assert_eq!(
            ops[0],
            Op::AddJccRI {
                d: 4,
                a: 4,
                cond: Cond::Gt,
                delta: -16,
                k: 3,
                target: 0
            }
        );
        assert_eq!(
            ops[1],
            Op::JccRI {
                a: 4,
                k: 3,
                cond: Cond::Gt,
                target: 0
            }
        );
        assert_eq!(ops[2], Op::Slow);
    }

    #[test]
    fn constants_on_the_left_flip_the_comparison() {
        let consts = [Term::small_int(5).unwrap()];
        let op = lower_cmp(Src::constant(0), Src::reg(1), Cond::Lt, 9, &consts);
        assert_eq!(
            op,
            Op::JccRI {
                a: 1,
                k: consts[0].raw() as i64,
                cond: Cond::Gt,
                target: 9
            }
        );
    }
}
