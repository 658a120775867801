//! The instruction set, declared once.
//!
//! `for_each_instr!` holds one row per instruction: its variant name, mnemonic, operands (each
//! with a kind and, for optional trailing operands, the default the assembler fills in), flags and
//! a one-line doc. Everything else that knows about instructions is generated from that table:
//! the in-memory [`Instr`] enum, [`Opcode`] with its [`OpInfo`] (mnemonics for the assembler and
//! disassembler, operand kinds for the encoder, decoder and verifier), the generic operand view
//! [`Instr::operands`] / [`Instr::from_operands`], and `docs/isa.md` ([`isa_markdown`]).
//! Adding an instruction is one row here plus its semantics in the interpreter.

use std::fmt;

/// A destination register, `r0` … `r255`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reg(pub u8);

/// A source operand: a register, a constant from the literal table, or a template (a literal
/// with registers in it, built on the heap when the instruction runs).
///
/// The kind lives in the low two bits so that reading a register is one shift and one load.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Src(u32);

/// What a [`Src`] refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SrcKind {
    Reg(u8),
    Const(u32),
    Template(u32),
}

impl Src {
    const REG: u32 = 0;
    const CONST: u32 = 1;
    const TEMPLATE: u32 = 2;
    /// Largest index a constant or template may have (30 bits).
    pub const MAX_INDEX: u32 = (1 << 30) - 1;

    pub const fn reg(r: u8) -> Src {
        Src((r as u32) << 2 | Self::REG)
    }
    /// Panics if `k` exceeds [`Src::MAX_INDEX`]; callers check tables against it first.
    pub const fn constant(k: u32) -> Src {
        assert!(k <= Self::MAX_INDEX);
        Src(k << 2 | Self::CONST)
    }
    pub const fn template(k: u32) -> Src {
        assert!(k <= Self::MAX_INDEX);
        Src(k << 2 | Self::TEMPLATE)
    }
    /// Rebuilds a source from its raw encoding; `None` for the unused fourth kind or a register
    /// number above 255.
    pub fn from_raw(raw: u32) -> Option<Src> {
        let s = Src(raw);
        match raw & 3 {
            Self::REG if raw >> 2 > 255 => None,
            3 => None,
            _ => Some(s),
        }
    }
    pub const fn raw(self) -> u32 {
        self.0
    }
    #[inline(always)]
    pub fn kind(self) -> SrcKind {
        match self.0 & 3 {
            Self::REG => SrcKind::Reg((self.0 >> 2) as u8),
            Self::CONST => SrcKind::Const(self.0 >> 2),
            _ => SrcKind::Template(self.0 >> 2),
        }
    }
    #[inline(always)]
    pub fn as_reg(self) -> Option<u8> {
        if self.0 & 3 == Self::REG {
            Some((self.0 >> 2) as u8)
        } else {
            None
        }
    }
}

impl fmt::Debug for Src {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind() {
            SrcKind::Reg(r) => write!(f, "r{r}"),
            SrcKind::Const(k) => write!(f, "const#{k}"),
            SrcKind::Template(k) => write!(f, "template#{k}"),
        }
    }
}

/// A code position: an index into the program's instruction vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label(pub u32);

/// An index into the module's pattern table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PatId(pub u32);

/// An index into the module's clause tables (`case` and `receive`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClausesId(pub u32);

/// An index into the module's argument lists (the trailing sources of `spawn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ArgsId(pub u32);

/// How an operand is written and checked. Several kinds share one Rust type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperandKind {
    /// `d`: a destination register.
    Dst,
    /// `a b v t p`: a register, a literal or a template.
    Src,
    /// `n`: a register or an integer literal.
    Num,
    /// `L`: `label` or `mod:label`.
    Label,
    /// A pattern (`match`).
    Pattern,
    /// The `| pattern -> L` clause lines that follow `case` and `receive`.
    Clauses,
    /// Zero or more trailing sources (`spawn d, L, a, ...`).
    Args,
}

impl OperandKind {
    /// The placeholder used in the docs and in error messages.
    pub fn placeholder(self) -> &'static str {
        match self {
            OperandKind::Dst => "d",
            OperandKind::Src => "v",
            OperandKind::Num => "n",
            OperandKind::Label => "L",
            OperandKind::Pattern => "PATTERN",
            OperandKind::Clauses => "+ clauses",
            OperandKind::Args => "[, a ...]",
        }
    }
}

/// One operand of an instruction, in the generic view used by the encoder, decoder, verifier
/// and disassembler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operand {
    Reg(Reg),
    Src(Src),
    Label(Label),
    Pattern(PatId),
    Clauses(ClausesId),
    Args(ArgsId),
}

/// Instruction properties, used by the verifier and by tools.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flags(pub u8);

impl Flags {
    /// May continue at a label rather than the next instruction.
    pub const BRANCH: Flags = Flags(1);
    /// May allocate on the process heap (a GC may follow it).
    pub const ALLOC: Flags = Flags(2);
    /// May suspend the process (wait in `receive`).
    pub const YIELD: Flags = Flags(4);
    /// Never continues at the next instruction.
    pub const TERM: Flags = Flags(8);

    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
    pub fn names(self) -> Vec<&'static str> {
        [
            (Self::BRANCH, "branch"),
            (Self::ALLOC, "alloc"),
            (Self::YIELD, "yield"),
            (Self::TERM, "term"),
        ]
        .iter()
        .filter(|(f, _)| self.contains(*f))
        .map(|(_, n)| *n)
        .collect()
    }
}

/// Static description of one operand slot.
#[derive(Debug)]
pub struct OperandSpec {
    pub name: &'static str,
    pub kind: OperandKind,
    /// The assembly text the assembler uses when this trailing operand is left out.
    pub default: Option<&'static str>,
}

/// Static description of one instruction.
#[derive(Debug)]
pub struct OpInfo {
    pub mnemonic: &'static str,
    pub operands: &'static [OperandSpec],
    pub flags: Flags,
    pub doc: &'static str,
    pub group: &'static str,
}

/// The instruction table. Each row: `Variant "mnemonic" (operand: Kind [= "default"], ...)
/// [FLAGS] group "doc";`
#[macro_export]
macro_rules! for_each_instr {
    ($m:ident) => {
        $m! {
            End "end" () [TERM] "control" "The process exits with reason `:normal`.";
            Crash "crash" (v: Src = ":crash") [ALLOC TERM] "control" "The process exits with reason `v` (default `:crash`).";
            Halt "halt" (n: Num = "0") [TERM] "control" "The whole VM stops at once; `ember run` exits with status `n` (default 0).";
            Jump "jump" (target: Label) [BRANCH TERM] "control" "Continue at `L`.";
            Jeq "jeq" (a: Src, b: Src, target: Label) [BRANCH ALLOC] "control" "Jump to `L` if `a == b` (Erlang's `==`: structural, `1` equals `1.0`).";
            Jne "jne" (a: Src, b: Src, target: Label) [BRANCH ALLOC] "control" "Jump to `L` if `a != b`.";
            Jlt "jlt" (a: Src, b: Src, target: Label) [BRANCH ALLOC] "control" "Jump to `L` if `a < b` in term order.";
            Jle "jle" (a: Src, b: Src, target: Label) [BRANCH ALLOC] "control" "Jump to `L` if `a <= b` in term order.";
            Jgt "jgt" (a: Src, b: Src, target: Label) [BRANCH ALLOC] "control" "Jump to `L` if `a > b` in term order.";
            Jge "jge" (a: Src, b: Src, target: Label) [BRANCH ALLOC] "control" "Jump to `L` if `a >= b` in term order.";
            Call "call" (target: Label, args: Args) [BRANCH ALLOC] "control" "Push the continuation (the next instruction) and continue at `L`; the arguments, if any, are first copied into `r0, r1, ...` (all read before any is written).";
            Ret "ret" () [BRANCH TERM] "control" "Pop a continuation and continue there; with an empty stack the process exits `:normal`.";
            Push "push" (a: Src) [ALLOC] "control" "Save a term on the process stack.";
            Pop "pop" (d: Dst) [] "control" "Restore a term from the process stack (`:badarg` if it is empty).";
            Match "match" (a: Src, pattern: Pattern) [ALLOC] "control" "Bind the pattern or crash `{:badmatch, a}`.";
            Case "case" (a: Src, clauses: Clauses) [BRANCH ALLOC] "control" "The first clause whose pattern matches `a` wins; no match: crash `{:case_clause, a}`.";
            Work "work" (n: Num) [] "control" "Spend `n` reductions doing nothing; may span several slices.";
            Nop "nop" () [] "control" "Nothing.";
            Move "move" (d: Dst, v: Src) [ALLOC] "data" "`d := v` (a template builds a new term).";
            Add "add" (d: Dst, a: Src, b: Src) [ALLOC] "data" "`d := a + b`; overflow crashes `:badarith`.";
            Sub "sub" (d: Dst, a: Src, b: Src) [ALLOC] "data" "`d := a - b`.";
            Mul "mul" (d: Dst, a: Src, b: Src) [ALLOC] "data" "`d := a * b`.";
            Div "div" (d: Dst, a: Src, b: Src) [ALLOC] "data" "`d := a / b`, truncated toward zero; division by zero crashes `:badarith`.";
            Rem "rem" (d: Dst, a: Src, b: Src) [ALLOC] "data" "`d := a rem b` (sign of `a`); division by zero crashes `:badarith`.";
            Neg "neg" (d: Dst, a: Src) [ALLOC] "data" "`d := -a`.";
            Band "band" (d: Dst, a: Src, b: Src) [ALLOC] "data" "Bitwise and.";
            Bor "bor" (d: Dst, a: Src, b: Src) [ALLOC] "data" "Bitwise or.";
            Bxor "bxor" (d: Dst, a: Src, b: Src) [ALLOC] "data" "Bitwise exclusive or.";
            Bsl "bsl" (d: Dst, a: Src, b: Src) [ALLOC] "data" "Arithmetic shift left by `b` bits (right if negative); overflow crashes `:badarith`.";
            Bsr "bsr" (d: Dst, a: Src, b: Src) [ALLOC] "data" "Arithmetic shift right by `b` bits (left if negative).";
            Elem "elem" (d: Dst, t: Src, i: Src) [ALLOC] "data" "`d := t[i]`, 0-based; out of range or not a tuple crashes `:badarg`.";
            Setelem "setelem" (d: Dst, t: Src, i: Src, v: Src) [ALLOC] "data" "`d :=` a copy of tuple `t` with element `i` replaced.";
            Len "len" (d: Dst, x: Src) [ALLOC] "data" "Tuple size, proper list length, binary byte size, or a map's number of entries; otherwise `:badarg`.";
            Cons "cons" (d: Dst, h: Src, t: Src) [ALLOC] "data" "`d := [h | t]`.";
            Hd "hd" (d: Dst, l: Src) [ALLOC] "data" "Head of a non-empty list; otherwise `:badarg`.";
            Tl "tl" (d: Dst, l: Src) [ALLOC] "data" "Tail of a non-empty list; otherwise `:badarg`.";
            Concat "concat" (d: Dst, a: Src, b: Src) [ALLOC] "data" "Binary concatenation; non-binaries crash `:badarg`.";
            ToStr "to_str" (d: Dst, v: Src) [ALLOC] "data" "`d :=` the printed form of `v` as a binary.";
            ToInt "to_int" (d: Dst, b: Src) [ALLOC] "data" "`d :=` the integer written in decimal in binary `b`; otherwise `:badarg`.";
            Print "print" (v: Src) [ALLOC] "data" "Write the printed form of `v` and a newline to standard output (a binary is written as raw bytes).";
            Now "now" (d: Dst) [ALLOC] "data" "`d :=` milliseconds since the VM started (virtual under `--virtual-time`).";
            Rand "rand" (d: Dst, n: Num) [ALLOC] "data" "Uniform integer in `[0, n)` from the VM's generator, seeded by `--seed`.";
            SelfPid "self" (d: Dst) [] "processes" "`d :=` own pid.";
            Spawn "spawn" (d: Dst, target: Label, args: Args) [ALLOC] "processes" "New process at `L`; the arguments are copied into its `r0, r1, ...`; `d :=` its pid.";
            SpawnLink "spawn_link" (d: Dst, target: Label, args: Args) [ALLOC] "processes" "`spawn`, linked atomically before either runs.";
            Send "send" (p: Src, v: Src) [ALLOC] "processes" "Copy `v` into the mailbox of `p` (a pid or a registered name).";
            Receive "receive" (clauses: Clauses) [BRANCH ALLOC YIELD] "processes" "Selective receive: the oldest message that matches a clause is removed and its clause taken.";
            Link "link" (p: Src) [ALLOC] "processes" "Link to `p` (both ways); a dead `p` delivers exit signal `:noproc`.";
            Unlink "unlink" (p: Src) [ALLOC] "processes" "Remove the link with `p` at both ends.";
            Monitor "monitor" (d: Dst, p: Src) [ALLOC] "processes" "Monitor `p`; `d :=` a fresh reference.";
            Demonitor "demonitor" (r: Src) [ALLOC] "processes" "Remove a monitor and flush its `:DOWN` message.";
            Exit "exit" (p: Src, v: Src) [ALLOC] "processes" "Send exit signal `v` to `p` (Erlang's `exit/2`).";
            TrapExit "trap_exit" (v: Src) [ALLOC] "processes" "`:true` or `:false`: exit signals become `{:EXIT, from, reason}` messages.";
            Register "register" (name: Src, p: Src) [ALLOC] "processes" "Register `p` under the atom `name`.";
            Unregister "unregister" (name: Src) [ALLOC] "processes" "Remove a registered name.";
            Whereis "whereis" (d: Dst, name: Src) [ALLOC] "processes" "`d :=` the pid registered as `name`, or `:undefined`.";
            MakeRef "make_ref" (d: Dst) [] "processes" "`d :=` a fresh unique reference.";
            CallFun "call_fun" (f: Src, args: Args) [BRANCH ALLOC] "control" "Like `call`, at the function reference in `f` (a label used as a value); otherwise `:badarg`. The arguments, if any, are first copied into `r0, r1, ...`, as `call` copies them.";
            SpawnFun "spawn_fun" (d: Dst, f: Src, args: Args) [ALLOC] "processes" "Like `spawn`, at the function reference in `f`.";
            SpawnLinkFun "spawn_link_fun" (d: Dst, f: Src, args: Args) [ALLOC] "processes" "Like `spawn_link`, at the function reference in `f`.";
            Fdiv "fdiv" (d: Dst, a: Src, b: Src) [ALLOC] "data" "`d := a / b` as a float (Erlang's `/`), from integers or floats; division by zero crashes `:badarith`.";
            ToFloat "to_float" (d: Dst, a: Src) [ALLOC] "data" "`d :=` the number `a` as a float; not a number: `:badarg`.";
            Trunc "trunc" (d: Dst, a: Src) [ALLOC] "data" "`d :=` the number `a` truncated toward zero to an integer; not a number: `:badarg`; beyond 64 bits: `:badarith`.";
            Round "round" (d: Dst, a: Src) [ALLOC] "data" "`d :=` the number `a` rounded to the nearest integer, halves away from zero; as `trunc` otherwise.";
            Eq "eq" (d: Dst, a: Src, b: Src) [ALLOC] "data" "`d := a == b` (Erlang's `==`: `1` equals `1.0`), `:true` or `:false`.";
            Ne "ne" (d: Dst, a: Src, b: Src) [ALLOC] "data" "`d := a /= b`, `:true` or `:false`.";
            Eqx "eqx" (d: Dst, a: Src, b: Src) [ALLOC] "data" "`d := a =:= b` (exact, as patterns match: `1` differs from `1.0`), `:true` or `:false`.";
            Nex "nex" (d: Dst, a: Src, b: Src) [ALLOC] "data" "`d := a =/= b`, `:true` or `:false`.";
            Lt "lt" (d: Dst, a: Src, b: Src) [ALLOC] "data" "`d := a < b` in term order, `:true` or `:false`.";
            Le "le" (d: Dst, a: Src, b: Src) [ALLOC] "data" "`d := a =< b` in term order, `:true` or `:false`.";
            Gt "gt" (d: Dst, a: Src, b: Src) [ALLOC] "data" "`d := a > b` in term order, `:true` or `:false`.";
            Ge "ge" (d: Dst, a: Src, b: Src) [ALLOC] "data" "`d := a >= b` in term order, `:true` or `:false`.";
            Min "min" (d: Dst, a: Src, b: Src) [ALLOC] "data" "`d :=` the smaller of `a` and `b` in term order (`a` when they compare equal).";
            Max "max" (d: Dst, a: Src, b: Src) [ALLOC] "data" "`d :=` the larger of `a` and `b` in term order (`a` when they compare equal).";
            IsInteger "is_integer" (d: Dst, a: Src) [ALLOC] "data" "`d := :true` if `a` is an integer, else `:false`.";
            IsFloat "is_float" (d: Dst, a: Src) [ALLOC] "data" "`d := :true` if `a` is a float.";
            IsNumber "is_number" (d: Dst, a: Src) [ALLOC] "data" "`d := :true` if `a` is an integer or a float.";
            IsAtom "is_atom" (d: Dst, a: Src) [ALLOC] "data" "`d := :true` if `a` is an atom (the booleans included).";
            IsBoolean "is_boolean" (d: Dst, a: Src) [ALLOC] "data" "`d := :true` if `a` is `:true` or `:false`.";
            IsTuple "is_tuple" (d: Dst, a: Src) [ALLOC] "data" "`d := :true` if `a` is a tuple.";
            IsList "is_list" (d: Dst, a: Src) [ALLOC] "data" "`d := :true` if `a` is `[]` or a list cell (as Erlang's `is_list`, improper lists too).";
            IsMap "is_map" (d: Dst, a: Src) [ALLOC] "data" "`d := :true` if `a` is a map.";
            IsBinary "is_binary" (d: Dst, a: Src) [ALLOC] "data" "`d := :true` if `a` is a binary.";
            IsPid "is_pid" (d: Dst, a: Src) [ALLOC] "data" "`d := :true` if `a` is a pid.";
            IsRef "is_ref" (d: Dst, a: Src) [ALLOC] "data" "`d := :true` if `a` is a reference.";
            IsFun "is_fun" (d: Dst, a: Src) [ALLOC] "data" "`d := :true` if `a` is a function reference.";
            Byte "byte" (d: Dst, b: Src, i: Src) [ALLOC] "data" "`d :=` byte `i` (0-based) of binary `b`; out of range or not a binary: `:badarg`.";
            Slice "slice" (d: Dst, b: Src, i: Src, n: Src) [ALLOC] "data" "`d :=` the `n` bytes of binary `b` from byte `i` (0-based) on; out of range: `:badarg`.";
            Split "split" (d: Dst, b: Src, sep: Src) [ALLOC] "data" "`d :=` the list of the parts of binary `b` between occurrences of the non-empty binary `sep`.";
            ToAtom "to_atom" (d: Dst, b: Src) [] "data" "`d :=` the atom named by binary `b`, if the program has it (atoms are never made at run time); otherwise `:badarg`.";
            AtomName "atom_name" (d: Dst, a: Src) [ALLOC] "data" "`d :=` the name of atom `a` as a binary (no colon); otherwise `:badarg`.";
            Closure "closure" (d: Dst, target: Label, arity: Num, captured: Args) [ALLOC] "data" "`d :=` a closure of the function at `L` taking `arity` arguments, capturing the values of the trailing operands: calling or spawning it passes them after the arguments (in `r<arity>`, ...), as the BEAM passes a fun's free variables.";
            Try "try" (class: Dst, reason: Dst, target: Label) [BRANCH] "control" "Install a handler until `try_end` (or until the function that ran `try` returns): a crash this process raises meanwhile (a VM-raised error, `crash`, `throw`) continues at `L` with `class := :error | :exit | :throw` and `reason :=` the reason, the call frames and the stack cut back to what they were here. `:heap_limit` and exit signals are not caught.";
            TryEnd "try_end" () [] "control" "Remove the innermost handler `try` installed (none: `:badarg`).";
            Throw "throw" (v: Src) [ALLOC TERM] "control" "Raise `v` with class `:throw`; uncaught, the process exits `{:nocatch, v}`.";
            Format "format" (d: Dst, f: Src, args: Src) [ALLOC] "data" "`d :=` a binary: the text of binary `f` with its `~` directives (`~p ~w ~s ~b ~f ~c ~n ~~`, with width and precision) filled from the list `args`, as Erlang's `io_lib:format`; a bad directive or argument crashes `:badarg`.";
            Error "error" (v: Src) [ALLOC TERM] "control" "Raise `v` with class `:error`, as the VM raises its own errors (Erlang's `error/1`): `try` catches it as `:error`; uncaught, the process exits with reason `v`, reported on standard error with the crash's context. What stdlib functions raise.";
            Report "report" (v: Src) [ALLOC] "data" "Write the printed form of `v` (a binary as its raw bytes) and a newline to standard error, unless `--quiet-reports`: how the stdlib's supervisors report a child's abnormal exit.";
            Printf "printf" (f: Src, args: Src) [ALLOC] "data" "Write `format`'s text for `f` and `args` to standard output, as Erlang's `io:format` (no newline is added: end with `~n`).";
            MapGet "map_get" (d: Dst, m: Src, k: Src) [ALLOC] "maps" "`d :=` the value of key `k` in map `m` (keys match exactly, as `=:=`); no such key: crash `{:badkey, k}`; `m` not a map: `{:badmap, m}`.";
            MapFind "map_find" (d: Dst, m: Src, k: Src) [ALLOC] "maps" "`d := {:ok, v}` when map `m` has key `k` with value `v`, else `:error`; not a map: `{:badmap, m}`.";
            MapHas "map_has" (d: Dst, m: Src, k: Src) [ALLOC] "maps" "`d := :true` if map `m` has key `k`, else `:false` (Erlang's `is_key`).";
            MapPut "map_put" (d: Dst, m: Src, k: Src, v: Src) [ALLOC] "maps" "`d :=` map `m` with key `k` set to `v` (added or replaced).";
            MapUpdate "map_update" (d: Dst, m: Src, k: Src, v: Src) [ALLOC] "maps" "`d :=` map `m` with the value of its key `k` replaced by `v`; no such key: crash `{:badkey, k}`.";
            MapRemove "map_remove" (d: Dst, m: Src, k: Src) [ALLOC] "maps" "`d :=` map `m` without key `k` (the same map if it has no such key).";
            MapKeys "map_keys" (d: Dst, m: Src) [ALLOC] "maps" "`d :=` the list of the keys of map `m`, in map-key order.";
            MapValues "map_values" (d: Dst, m: Src) [ALLOC] "maps" "`d :=` the list of the values of map `m`, in the order of their keys.";
            MapToList "map_to_list" (d: Dst, m: Src) [ALLOC] "maps" "`d :=` the list of `{key, value}` tuples of map `m`, in map-key order.";
            MapFromList "map_from_list" (d: Dst, l: Src) [ALLOC] "maps" "`d :=` the map of the `{key, value}` tuples of proper list `l` (a later key wins); anything else in `l`: `:badarg`.";
            MapMerge "map_merge" (d: Dst, a: Src, b: Src) [ALLOC] "maps" "`d :=` the entries of maps `a` and `b`, `b`'s value winning for a key both have.";
            Assert "assert" (a: Src, b: Src) [ALLOC] "control" "Crash `{:assert, a, b}` (class `:error`) unless `a =:= b`: a property `ember check` looks for in every schedule.";
            CrashNote "crash_note" (v: Src) [ALLOC] "processes" "Note `v` for this process's crash reports (`[]`: none): a list of `{key, value}` pairs is shown one `key: value` line each, anything else on a `note:` line. A process with a note also reports an abnormal exit it asks for itself (`crash`, `exit` of itself), unless `--quiet-reports`. The stdlib server notes the message it is handling and its state, as Erlang's gen_server report shows the last message in and the state.";
            Native "native" (m: Src, f: Src, arity: Num) [ALLOC] "processes" "Run the host's native function `m:f` (constant atoms) on `r0, ..., r<arity-1>` and put its result in `r0`; it costs the reductions the host declared for it, may send messages, and may crash the process (`:badarg`, say). A function the host did not register crashes `:undef`. The assembler writes the stub modules that hold these for an embedding host (see the `native` module of `ember-vm`); a program calls `m:f` as any exported label.";
            CallExt "call_ext" (target: Label, args: Args) [BRANCH ALLOC] "control" "`call` of an exported label through its module's export table: what the assembler writes for `call m:l` (another module's label, or this module's named with its module). It goes to the module's current version when a new one is loaded, as the BEAM's remote calls do; `call l` stays in the version it runs in.";
            SpawnExt "spawn_ext" (d: Dst, target: Label, args: Args) [ALLOC] "processes" "`spawn` of an exported label through its module's export table (what `spawn d, m:l` assembles to): the process starts in the module's current version.";
            SpawnLinkExt "spawn_link_ext" (d: Dst, target: Label, args: Args) [ALLOC] "processes" "`spawn_link` through the export table (what `spawn_link d, m:l` assembles to).";
            JumpExt "jump_ext" (target: Label) [BRANCH TERM] "control" "`jump` to an exported label through its module's export table (what `jump m:l` assembles to): a tail call that goes to the module's current version, so that a loop written `jump m:loop` moves to new code when it is loaded, leaving no frame in the old (the BEAM's `?MODULE:loop(State)`).";
        }
    };
}

macro_rules! isa_ty {
    (Dst) => {
        Reg
    };
    (Src) => {
        Src
    };
    (Num) => {
        Src
    };
    (Label) => {
        Label
    };
    (Pattern) => {
        PatId
    };
    (Clauses) => {
        ClausesId
    };
    (Args) => {
        ArgsId
    };
}

macro_rules! isa_operand {
    (Dst, $v:expr) => {
        Operand::Reg($v)
    };
    (Src, $v:expr) => {
        Operand::Src($v)
    };
    (Num, $v:expr) => {
        Operand::Src($v)
    };
    (Label, $v:expr) => {
        Operand::Label($v)
    };
    (Pattern, $v:expr) => {
        Operand::Pattern($v)
    };
    (Clauses, $v:expr) => {
        Operand::Clauses($v)
    };
    (Args, $v:expr) => {
        Operand::Args($v)
    };
}

macro_rules! isa_take {
    (Dst, $v:expr) => {
        match $v {
            Operand::Reg(x) => *x,
            _ => return None,
        }
    };
    (Src, $v:expr) => {
        match $v {
            Operand::Src(x) => *x,
            _ => return None,
        }
    };
    (Num, $v:expr) => {
        match $v {
            Operand::Src(x) => *x,
            _ => return None,
        }
    };
    (Label, $v:expr) => {
        match $v {
            Operand::Label(x) => *x,
            _ => return None,
        }
    };
    (Pattern, $v:expr) => {
        match $v {
            Operand::Pattern(x) => *x,
            _ => return None,
        }
    };
    (Clauses, $v:expr) => {
        match $v {
            Operand::Clauses(x) => *x,
            _ => return None,
        }
    };
    (Args, $v:expr) => {
        match $v {
            Operand::Args(x) => *x,
            _ => return None,
        }
    };
}

macro_rules! isa_default {
    () => {
        None
    };
    ($d:literal) => {
        Some($d)
    };
}

macro_rules! define_isa {
    ($( $name:ident $mn:literal ( $($f:ident : $k:ident $(= $def:literal)?),* ) [$($flag:ident)*] $group:literal $doc:literal; )*) => {
        /// One decoded instruction, as the interpreter runs it.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Instr {
            $( #[doc = $doc] $name { $($f: isa_ty!($k)),* }, )*
        }

        /// An instruction's opcode; its numeric value is the byte in the `.ebc` file.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Opcode {
            $( $name, )*
        }

        impl Opcode {
            /// Every opcode, in numeric order.
            pub const ALL: &'static [Opcode] = &[$(Opcode::$name),*];

            pub fn from_u8(byte: u8) -> Option<Opcode> {
                Self::ALL.get(byte as usize).copied()
            }

            pub fn info(self) -> &'static OpInfo {
                &OP_INFO[self as usize]
            }

            pub fn mnemonic(self) -> &'static str {
                self.info().mnemonic
            }

            pub fn from_mnemonic(text: &str) -> Option<Opcode> {
                match text {
                    $( $mn => Some(Opcode::$name), )*
                    _ => None,
                }
            }
        }

        /// The static description of every opcode, indexed by `Opcode as usize`.
        pub static OP_INFO: &[OpInfo] = &[
            $( OpInfo {
                mnemonic: $mn,
                operands: &[$(OperandSpec { name: stringify!($f), kind: OperandKind::$k, default: isa_default!($($def)?) }),*],
                flags: Flags(0 $(| Flags::$flag.0)*),
                doc: $doc,
                group: $group,
            }, )*
        ];

        impl Instr {
            pub fn opcode(&self) -> Opcode {
                match self {
                    $( Instr::$name { .. } => Opcode::$name, )*
                }
            }

            /// The operands in table order.
            pub fn operands(&self) -> smallvec::SmallVec<[Operand; 4]> {
                match *self {
                    $( Instr::$name { $($f),* } => smallvec::smallvec![$(isa_operand!($k, $f)),*], )*
                }
            }

            /// Builds an instruction from operands in table order; `None` if their number or
            /// types do not fit the opcode.
            pub fn from_operands(op: Opcode, operands: &[Operand]) -> Option<Instr> {
                #[allow(unused_mut, unused_variables)]
                let mut it = operands.iter();
                let instr = match op {
                    $( Opcode::$name => Instr::$name { $($f: isa_take!($k, it.next()?)),* }, )*
                };
                if it.next().is_some() {
                    return None;
                }
                Some(instr)
            }
        }
    };
}

for_each_instr!(define_isa);

/// The contents of `docs/isa.md`, generated from the table (a test keeps the file in step).
pub fn isa_markdown() -> String {
    let mut out = String::from(
        "# Ember instruction set\n\n\
         Generated from the instruction table in `vm/src/isa.rs` (`for_each_instr!`); \
         do not edit by hand. A test fails when this file is stale; regenerate it with \
         `cargo run -- isa > docs/isa.md`.\n\n\
         Operands: `d` destination register; `v` a register, literal or template; \
         `n` a register or integer literal; `L` a label (`label` or `mod:label`). \
         Flags: `branch` may continue at a label, `alloc` may allocate on the process heap, \
         `yield` may suspend the process, `term` never continues at the next instruction.\n",
    );
    let mut group = "";
    for op in Opcode::ALL {
        let info = op.info();
        if info.group != group {
            group = info.group;
            let mut title = group.to_string();
            title[..1].make_ascii_uppercase();
            out.push_str(&format!(
                "\n## {title}\n\n| opcode | syntax | flags | meaning |\n|---|---|---|---|\n"
            ));
        }
        out.push_str(&format!(
            "| {} | `{}` | {} | {} |\n",
            *op as u8,
            syntax(*op),
            info.flags.names().join(", "),
            info.doc
        ));
    }
    out
}

/// `setelem d, t, i, v`-style syntax of one instruction, optional operands in brackets.
pub fn syntax(op: Opcode) -> String {
    let info = op.info();
    let mut s = info.mnemonic.to_string();
    let mut first = true;
    for spec in info.operands {
        let name = match spec.kind {
            OperandKind::Clauses => {
                s.push_str(" + clauses");
                continue;
            }
            OperandKind::Args => {
                s.push_str(" [, a ...]");
                continue;
            }
            OperandKind::Label => "L".to_string(),
            OperandKind::Pattern => "PATTERN".to_string(),
            _ => spec.name.to_string(),
        };
        let sep = if first { " " } else { ", " };
        first = false;
        if spec.default.is_some() {
            s.push_str(&format!(" [{}]", name));
        } else {
            s.push_str(sep);
            s.push_str(&name);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instruction_is_sixteen_bytes() {
        assert_eq!(std::mem::size_of::<Instr>(), 16);
    }

    #[test]
    fn opcodes_round_trip_through_bytes_and_mnemonics() {
        for (i, op) in Opcode::ALL.iter().enumerate() {
            assert_eq!(*op as usize, i);
            assert_eq!(Opcode::from_u8(i as u8), Some(*op));
            assert_eq!(Opcode::from_mnemonic(op.mnemonic()), Some(*op));
        }
        assert_eq!(Opcode::from_u8(Opcode::ALL.len() as u8), None);
    }

    /// The opcode numbers of bytecode version [`PINNED_VERSION`], as `.ebc` files of that
    /// version hold them. An opcode may be added at the end; moving or removing one changes
    /// what existing files mean, so it needs a new `bytecode::VERSION` (and this table
    /// re-pinned with it).
    const PINNED_VERSION: u16 = 2;
    const PINNED: &[(u8, &str)] = &[
        (0, "end"),
        (1, "crash"),
        (2, "halt"),
        (3, "jump"),
        (4, "jeq"),
        (5, "jne"),
        (6, "jlt"),
        (7, "jle"),
        (8, "jgt"),
        (9, "jge"),
        (10, "call"),
        (11, "ret"),
        (12, "push"),
        (13, "pop"),
        (14, "match"),
        (15, "case"),
        (16, "work"),
        (17, "nop"),
        (18, "move"),
        (19, "add"),
        (20, "sub"),
        (21, "mul"),
        (22, "div"),
        (23, "rem"),
        (24, "neg"),
        (25, "band"),
        (26, "bor"),
        (27, "bxor"),
        (28, "bsl"),
        (29, "bsr"),
        (30, "elem"),
        (31, "setelem"),
        (32, "len"),
        (33, "cons"),
        (34, "hd"),
        (35, "tl"),
        (36, "concat"),
        (37, "to_str"),
        (38, "to_int"),
        (39, "print"),
        (40, "now"),
        (41, "rand"),
        (42, "self"),
        (43, "spawn"),
        (44, "spawn_link"),
        (45, "send"),
        (46, "receive"),
        (47, "link"),
        (48, "unlink"),
        (49, "monitor"),
        (50, "demonitor"),
        (51, "exit"),
        (52, "trap_exit"),
        (53, "register"),
        (54, "unregister"),
        (55, "whereis"),
        (56, "make_ref"),
        (57, "call_fun"),
        (58, "spawn_fun"),
        (59, "spawn_link_fun"),
        (60, "fdiv"),
        (61, "to_float"),
        (62, "trunc"),
        (63, "round"),
        (64, "eq"),
        (65, "ne"),
        (66, "eqx"),
        (67, "nex"),
        (68, "lt"),
        (69, "le"),
        (70, "gt"),
        (71, "ge"),
        (72, "min"),
        (73, "max"),
        (74, "is_integer"),
        (75, "is_float"),
        (76, "is_number"),
        (77, "is_atom"),
        (78, "is_boolean"),
        (79, "is_tuple"),
        (80, "is_list"),
        (81, "is_map"),
        (82, "is_binary"),
        (83, "is_pid"),
        (84, "is_ref"),
        (85, "is_fun"),
        (86, "byte"),
        (87, "slice"),
        (88, "split"),
        (89, "to_atom"),
        (90, "atom_name"),
        (91, "closure"),
        (92, "try"),
        (93, "try_end"),
        (94, "throw"),
        (95, "format"),
        (96, "error"),
        (97, "report"),
        (98, "printf"),
        (99, "map_get"),
        (100, "map_find"),
        (101, "map_has"),
        (102, "map_put"),
        (103, "map_update"),
        (104, "map_remove"),
        (105, "map_keys"),
        (106, "map_values"),
        (107, "map_to_list"),
        (108, "map_from_list"),
        (109, "map_merge"),
        (110, "assert"),
        (111, "crash_note"),
        (112, "native"),
        (113, "call_ext"),
        (114, "spawn_ext"),
        (115, "spawn_link_ext"),
    ];

    #[test]
    fn opcode_numbers_stay_pinned_within_a_bytecode_version() {
        if crate::bytecode::VERSION != PINNED_VERSION {
            return; // a new version: re-pin the table with it
        }
        for &(number, mnemonic) in PINNED {
            assert_eq!(
                Opcode::from_mnemonic(mnemonic).map(|op| op as u8),
                Some(number),
                "`{mnemonic}` moved or went away: bump bytecode::VERSION and re-pin"
            );
        }
    }

    #[test]
    fn operands_round_trip() {
        let i = Instr::Setelem {
            d: Reg(3),
            t: Src::reg(1),
            i: Src::constant(7),
            v: Src::template(2),
        };
        assert_eq!(Instr::from_operands(i.opcode(), &i.operands()), Some(i));
        assert_eq!(Instr::from_operands(Opcode::Nop, &i.operands()), None);
    }

    #[test]
    fn src_encoding() {
        assert_eq!(Src::reg(255).kind(), SrcKind::Reg(255));
        assert_eq!(Src::constant(9).kind(), SrcKind::Const(9));
        assert_eq!(Src::template(4).kind(), SrcKind::Template(4));
        assert_eq!(Src::from_raw(256 << 2), None);
        assert_eq!(Src::from_raw(3), None);
    }

    #[test]
    fn docs_isa_md_is_up_to_date() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/isa.md");
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            on_disk == isa_markdown(),
            "docs/isa.md is stale: run `cargo run -- isa > docs/isa.md`"
        );
    }
}
