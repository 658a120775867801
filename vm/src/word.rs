//! The word encoding of terms: one machine word per value, its tags and the immediates. Nothing
//! here reads memory, so this module knows nothing of heaps; [`crate::term`] reads pointer
//! terms through [`crate::heap`], and the heap stores terms as these words.
//!
//! # Word layout
//!
//! The low 2 bits are the primary tag:
//!
//! | bits `1..0` | meaning |
//! |---|---|
//! | `00` | boxed pointer: the word is the 8-aligned address of an object's header word |
//! | `01` | cons pointer: the 8-aligned address of a two-word cell (head, tail), plus 1 |
//! | `10` | header word: the first word of a boxed object; only inside objects, never a value |
//! | `11` | immediate |
//!
//! Immediates use bits `3..2` as a sub-tag, and the "other" sub-tag uses bits `5..4` too:
//!
//! | low bits | kind | payload |
//! |---|---|---|
//! | `..00_11` | small integer | 60-bit signed integer in bits `63..4` (decode: arithmetic `>> 4`) |
//! | `..01_11` | atom | u32 atom index in bits `35..4` |
//! | `..10_11` | pid | u32 spawn number in bits `35..4` |
//! | `00_11_11` | `[]` | none: the word is exactly `0x0f` |
//! | `01_11_11` | reference | 58-bit counter in bits `63..6` |
//! | `10_11_11` | function reference | u32 function-table entry in bits `37..6` |
//! | `11_11_11` | unused | |
//!
//! Header words, object layouts and the collector's forwarding marker are described in `heap.rs`.
//!
//! Integers are *canonical*: a value that fits 60 bits is always a small integer, only values
//! outside that range are boxed. So two equal integers have the same kind and comparing them by
//! value is exact equality.
//!
//! `Term`'s derived `==` compares the words (identity: same immediate or same pointer); use
//! [`crate::term::eq`] for the language's structural equality.

#![forbid(unsafe_code)]

use std::fmt;

/// One Ember value. See the module documentation for the layout.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[repr(transparent)] // heap.rs stores terms as the u64 words of objects
pub struct Term(u64);

const PRIMARY_MASK: u64 = 0b11;
const TAG_BOXED: u64 = 0b00;
const TAG_CONS: u64 = 0b01;
const TAG_IMMEDIATE: u64 = 0b11;

const IMM_MASK: u64 = 0b11_11;
const IMM_SMALL: u64 = 0b00_11;
const IMM_ATOM: u64 = 0b01_11;
const IMM_PID: u64 = 0b10_11;
const IMM_OTHER: u64 = 0b11_11;

const OTHER_MASK: u64 = 0b11_11_11;
const OTHER_NIL: u64 = 0b00_11_11;
const OTHER_REF: u64 = 0b01_11_11;
const OTHER_FUN: u64 = 0b10_11_11;

/// Small integers: the payload starts at bit 4, so 60 bits remain.
const SMALL_SHIFT: u32 = 4;
/// The smallest and largest small integers.
pub const SMALL_MIN: i64 = -(1 << 59);
pub const SMALL_MAX: i64 = (1 << 59) - 1;
/// References: the payload starts at bit 6, so 58 bits remain (a counter never gets there).
const REF_SHIFT: u32 = 6;
pub const REF_MAX: u64 = (1 << 58) - 1;

/// A term taken apart. Slices borrow the object the term points to; the `'static` is a promise
/// the VM keeps by hand (see the module documentation): don't hold a view across a collection.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum View<'a> {
    Int(i64),
    /// A 64-bit float (always finite).
    Float(f64),
    Atom(u32),
    Pid(u32),
    Ref(u64),
    /// A function reference: a label used as a value (its entry in the function table).
    Fun(u32),
    /// A closure: the function reference, its arity (a small integer) and the captured values.
    Closure(&'a [Term]),
    Nil,
    Tuple(&'a [Term]),
    /// A map: its fields, the entry count (a small integer) first; see `crate::map`.
    Map(&'a [Term]),
    /// A list cell: head, tail.
    Cons(Term, Term),
    Binary(&'a [u8]),
}

impl Term {
    /// `[]`.
    pub const NIL: Term = Term(OTHER_NIL);

    pub const fn atom(id: u32) -> Term {
        Term(((id as u64) << SMALL_SHIFT) | IMM_ATOM)
    }

    pub const fn pid(n: u32) -> Term {
        Term(((n as u64) << SMALL_SHIFT) | IMM_PID)
    }

    /// A reference with counter `n`. Panics if `n > REF_MAX` (2^58 - 1), which a VM making one
    /// reference per nanosecond reaches after 9 years.
    pub fn reference(n: u64) -> Term {
        assert!(n <= REF_MAX, "reference counter {n} does not fit 58 bits");
        Term((n << REF_SHIFT) | OTHER_REF)
    }

    /// A function reference: entry `fun` of the program's function table (which names the
    /// module and the code; see `Program::fun_code`).
    pub const fn fun(fun: u32) -> Term {
        Term(((fun as u64) << REF_SHIFT) | OTHER_FUN)
    }

    pub fn as_fun(self) -> Option<u32> {
        (self.0 & OTHER_MASK == OTHER_FUN).then_some((self.0 >> REF_SHIFT) as u32)
    }

    /// The small integer `i`, or `None` if it does not fit 60 bits (then it needs
    /// [`crate::heap::Heap::int`], which boxes it).
    pub const fn small_int(i: i64) -> Option<Term> {
        if i < SMALL_MIN || i > SMALL_MAX {
            return None;
        }
        Some(Term(((i as u64) << SMALL_SHIFT) | IMM_SMALL))
    }

    pub const fn raw(self) -> u64 {
        self.0
    }

    /// For tests and debugging only. Forging a pointer term (low bits `00` or `01`) that
    /// `heap.rs` did not make breaks the invariant every accessor relies on.
    pub const fn from_raw(raw: u64) -> Term {
        Term(raw)
    }

    #[cfg(test)]
    pub fn is_atom(self, id: u32) -> bool {
        self == Term::atom(id)
    }

    pub fn as_atom(self) -> Option<u32> {
        (self.0 & IMM_MASK == IMM_ATOM).then_some((self.0 >> SMALL_SHIFT) as u32)
    }

    pub fn as_pid(self) -> Option<u32> {
        (self.0 & IMM_MASK == IMM_PID).then_some((self.0 >> SMALL_SHIFT) as u32)
    }

    pub fn as_ref(self) -> Option<u64> {
        (self.0 & OTHER_MASK == OTHER_REF).then_some(self.0 >> REF_SHIFT)
    }

    /// The small integer's value, without looking at the heap.
    pub fn as_small_int(self) -> Option<i64> {
        (self.0 & IMM_MASK == IMM_SMALL).then_some((self.0 as i64) >> SMALL_SHIFT)
    }

    pub fn is_nil(self) -> bool {
        self == Term::NIL
    }

    pub fn is_cons(self) -> bool {
        self.0 & PRIMARY_MASK == TAG_CONS
    }

    /// True for values held in the word itself (integers that fit 60 bits, atoms, pids,
    /// references, `[]`): they need no heap and survive any collection.
    pub fn is_immediate(self) -> bool {
        self.0 & PRIMARY_MASK == TAG_IMMEDIATE
    }

    /// The view of an immediate term; `None` for a pointer term (which [`crate::term`] reads
    /// through the heap).
    pub(crate) fn immediate_view(self) -> Option<View<'static>> {
        if self.0 & PRIMARY_MASK != TAG_IMMEDIATE {
            return None;
        }
        Some(match self.0 & IMM_MASK {
            IMM_SMALL => View::Int((self.0 as i64) >> SMALL_SHIFT),
            IMM_ATOM => View::Atom((self.0 >> SMALL_SHIFT) as u32),
            IMM_PID => View::Pid((self.0 >> SMALL_SHIFT) as u32),
            IMM_OTHER => match self.0 & OTHER_MASK {
                OTHER_NIL => View::Nil,
                OTHER_REF => View::Ref(self.0 >> REF_SHIFT),
                OTHER_FUN => View::Fun((self.0 >> REF_SHIFT) as u32),
                _ => unreachable!("unused immediate tag in {self:?}"),
            },
            _ => unreachable!("two bits have four values"),
        })
    }

    // ---- for heap.rs: pointer terms ----

    /// True for boxed and cons pointers (the terms that point into memory).
    pub(crate) fn is_pointer(self) -> bool {
        self.0 & 0b10 == 0
    }

    pub(crate) fn is_boxed(self) -> bool {
        self.0 & PRIMARY_MASK == TAG_BOXED
    }

    /// The address a pointer term points to (cell or header word).
    pub(crate) fn addr(self) -> u64 {
        self.0 & !0b111
    }

    /// The pointer term of the same kind as `self` (boxed or cons) for the object at `addr`.
    pub(crate) fn same_kind_at(self, addr: u64) -> Term {
        debug_assert!(self.is_pointer() && addr & 0b111 == 0);
        Term(addr | (self.0 & PRIMARY_MASK))
    }

    pub(crate) fn boxed_at(addr: u64) -> Term {
        debug_assert!(addr & 0b111 == 0);
        Term(addr | TAG_BOXED)
    }

    pub(crate) fn cons_at(addr: u64) -> Term {
        debug_assert!(addr & 0b111 == 0);
        Term(addr | TAG_CONS)
    }
}

/// Shows the word and its primary kind; never dereferences (safe on a stale term).
impl fmt::Debug for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 & PRIMARY_MASK {
            TAG_IMMEDIATE => match self.0 & IMM_MASK {
                IMM_SMALL => write!(f, "Term({})", (self.0 as i64) >> SMALL_SHIFT),
                IMM_ATOM => write!(f, "Term(atom {})", self.0 >> SMALL_SHIFT),
                IMM_PID => write!(f, "Term(<0.{}>)", self.0 >> SMALL_SHIFT),
                _ if *self == Term::NIL => write!(f, "Term([])"),
                _ if self.0 & OTHER_MASK == OTHER_REF => {
                    write!(f, "Term(#Ref<{}>)", self.0 >> REF_SHIFT)
                }
                _ if self.0 & OTHER_MASK == OTHER_FUN => {
                    write!(f, "Term(#Fun<{}>)", self.0 >> REF_SHIFT)
                }
                _ => write!(f, "Term(bad immediate {:#x})", self.0),
            },
            TAG_CONS => write!(f, "Term(cons @{:#x})", self.addr()),
            TAG_BOXED => write!(f, "Term(boxed @{:#x})", self.addr()),
            _ => write!(f, "Term(header {:#x})", self.0),
        }
    }
}
