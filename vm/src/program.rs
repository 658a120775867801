//! The runtime form of a verified module: instructions as they are, constants built once into
//! the literal area, templates and patterns turned into small trees whose constant parts are
//! ready-made terms.

use crate::atoms::AtomTable;
use crate::bytecode::{ClauseTable, Node};
use crate::heap::{flatten, Flat, Heap, Literals, TooBig};
use crate::isa::{Instr, Label, Src};
use crate::lower::Op;
use crate::map;
use crate::term::{self, Term};
use crate::verify::VerifiedModule;
use smallvec::SmallVec;
use std::sync::Arc;

/// A template: builds a term from registers.
#[derive(Clone, Debug)]
pub(crate) enum Tpl {
    Reg(u8),
    Const(Term),
    Tuple(Box<[Tpl]>),
    /// Items then tail (`Const(NIL)` for a proper list).
    List(Box<[Tpl]>, Box<Tpl>),
    /// A small map whose keys are constants: put in key order (and deduplicated, the last
    /// one winning) at load time, so building it is writing its words.
    FlatMap(Box<[Term]>, Box<[Tpl]>),
    /// Any other map: its entries are built, then put in order when the template runs (that
    /// needs the atoms' names).
    Map(Box<[(Tpl, Tpl)]>, Arc<AtomTable>),
}

/// Tuples of up to this many elements are built from an array on the stack.
const SMALL_TUPLE: usize = 8;

impl Tpl {
    /// Builds the template's term from the registers, on the process's own heap.
    pub(crate) fn build(&self, regs: &[Term], heap: &mut Heap) -> Term {
        self.build_with(heap, &|_, r| regs[r as usize])
    }

    /// [`Tpl::build`], from the template's image when it has one.
    pub(crate) fn build_from(
        &self,
        image: Option<&crate::heap::Image>,
        regs: &[Term],
        heap: &mut Heap,
    ) -> Term {
        match image {
            Some(image) => heap.build_image(image, regs),
            None => self.build(regs, heap),
        }
    }

    /// Builds the template's term in another process's heap: register values (terms of a heap
    /// of `src_words` words) are deep-copied there, within `room` words in all. From its image
    /// when it has one and the registers it reads hold immediates or literals (nothing to copy:
    /// a message such as `{:token, r5}` is one block written at once).
    #[inline]
    pub(crate) fn build_into(
        &self,
        regs: &[Term],
        image: Option<&crate::heap::Image>,
        dest: &mut Heap,
        lits: &Literals,
        src_words: usize,
        room: usize,
    ) -> Result<Term, TooBig> {
        if let Some(image) = image {
            if image.reads_only_shared(regs, lits) {
                if image.bytes() > room.saturating_mul(8) {
                    return Err(TooBig);
                }
                return Ok(dest.build_image(image, regs));
            }
        }
        self.build_into_copying(regs, dest, lits, src_words, room)
    }

    /// [`Tpl::build_into`] with the registers' values copied (out of line: the image's path
    /// stays short, and saves no registers for this one's).
    #[inline(never)]
    fn build_into_copying(
        &self,
        regs: &[Term],
        dest: &mut Heap,
        lits: &Literals,
        src_words: usize,
        room: usize,
    ) -> Result<Term, TooBig> {
        let start = dest.used_words();
        let failed = std::cell::Cell::new(false);
        let msg = self.build_with(dest, &|heap, r| {
            let v = regs[r as usize];
            if v.is_immediate() {
                return v;
            }
            let left = room.saturating_sub(heap.used_words() - start);
            heap.copy_into(v, lits, src_words, left)
                .unwrap_or_else(|TooBig| {
                    failed.set(true);
                    Term::NIL
                })
        });
        if failed.get() || dest.used_words() - start > room {
            return Err(TooBig);
        }
        Ok(msg)
    }

    /// Writes the term the template would build straight into `out` (see
    /// [`crate::heap::flatten`]); false when it takes more than `FLAT_WORDS` words.
    pub(crate) fn flatten(&self, regs: &[Term], lits: &Literals, out: &mut Flat) -> bool {
        match self {
            Tpl::Reg(r) => flatten(regs[*r as usize], lits, out),
            // A constant is an immediate or a literal: either travels as its word.
            Tpl::Const(c) => out.push(c.raw()),
            // Maps are built in the receiver's heap instead.
            Tpl::FlatMap(..) | Tpl::Map(..) => false,
            Tpl::Tuple(items) => {
                out.push(Heap::flat_tuple_header(items.len()))
                    && items.iter().all(|i| i.flatten(regs, lits, out))
            }
            Tpl::List(items, tail) => {
                out.push(Heap::flat_list_header(items.len()))
                    && items.iter().all(|i| i.flatten(regs, lits, out))
                    && tail.flatten(regs, lits, out)
            }
        }
    }

    /// Builds the term in `heap`; `reg` gives the value a register contributes (as it is, or
    /// deep-copied when the heap belongs to another process). Constants are shared.
    fn build_with<F: Fn(&mut Heap, u8) -> Term>(&self, heap: &mut Heap, reg: &F) -> Term {
        match self {
            Tpl::Reg(r) => reg(heap, *r),
            Tpl::Const(c) => *c,
            Tpl::Tuple(items) if items.len() <= SMALL_TUPLE => {
                let mut elems = [Term::NIL; SMALL_TUPLE];
                for (e, i) in elems.iter_mut().zip(items.iter()) {
                    *e = match i {
                        Tpl::Reg(r) => reg(heap, *r),
                        Tpl::Const(c) => *c,
                        _ => i.build_with(heap, reg),
                    };
                }
                heap.tuple(&elems[..items.len()])
            }
            Tpl::Tuple(items) => {
                let elems: SmallVec<[Term; 8]> =
                    items.iter().map(|i| i.build_with(heap, reg)).collect();
                heap.tuple(&elems)
            }
            Tpl::List(items, tail) => {
                let mut acc = tail.build_with(heap, reg);
                for i in items.iter().rev() {
                    let h = i.build_with(heap, reg);
                    acc = heap.cons(h, acc);
                }
                acc
            }
            Tpl::FlatMap(keys, vals) => {
                let vals: SmallVec<[Term; 8]> =
                    vals.iter().map(|v| v.build_with(heap, reg)).collect();
                map::flat_from_sorted(heap, keys, &vals)
            }
            Tpl::Map(pairs, atoms) => {
                let entries: Vec<(Term, Term)> = pairs
                    .iter()
                    .map(|(k, v)| (k.build_with(heap, reg), v.build_with(heap, reg)))
                    .collect();
                map::from_entries(heap, entries, &|a| atoms.name(a))
            }
        }
    }
}

/// The images of `templates` (see `heap::Image`).
fn images(templates: &[Tpl]) -> Vec<Option<crate::heap::Image>> {
    use crate::heap::{Image, Shape};
    fn shape(t: &Tpl) -> Shape<'_, Tpl> {
        match t {
            Tpl::Reg(r) => Shape::Reg(*r),
            Tpl::Const(c) => Shape::Const(*c),
            Tpl::Tuple(items) => Shape::Tuple(items),
            Tpl::List(items, tail) => Shape::List(items, tail),
            Tpl::FlatMap(..) | Tpl::Map(..) => Shape::Other,
        }
    }
    templates.iter().map(|t| Image::of(t, &shape)).collect()
}

impl Tpl {
    /// Is `keep` true of every constant in the template?
    fn consts_all(&self, keep: &dyn Fn(&Term) -> bool) -> bool {
        match self {
            Tpl::Reg(_) => true,
            Tpl::Const(c) => keep(c),
            Tpl::Tuple(items) => items.iter().all(|i| i.consts_all(keep)),
            Tpl::List(items, tail) => {
                items.iter().all(|i| i.consts_all(keep)) && tail.consts_all(keep)
            }
            Tpl::FlatMap(keys, vals) => {
                keys.iter().all(keep) && vals.iter().all(|v| v.consts_all(keep))
            }
            Tpl::Map(pairs, _) => pairs
                .iter()
                .all(|(k, v)| k.consts_all(keep) && v.consts_all(keep)),
        }
    }
}

/// A map pattern's key: a constant, or `^rN`.
#[derive(Clone, Debug)]
pub(crate) enum MapKey {
    Const(Term),
    Pin(u8),
}

/// A pattern, matched without allocating.
#[derive(Clone, Debug)]
pub(crate) enum Pat {
    Any,
    /// First occurrence of a register in this pattern: binds it.
    Bind(u8),
    /// Later occurrence: must equal what the first one bound.
    Same(u8),
    /// `^rN`: must equal the register's current value.
    Pin(u8),
    Const(Term),
    Tuple(Box<[Pat]>),
    List(Box<[Pat]>, Box<Pat>),
    /// A map that has every key, each value matching its pattern (`#{}` matches any map).
    Map(Box<[(MapKey, Pat)]>),
}

impl Pat {
    /// Is `keep` true of every constant in the pattern?
    fn consts_all(&self, keep: &dyn Fn(&Term) -> bool) -> bool {
        match self {
            Pat::Any | Pat::Bind(_) | Pat::Same(_) | Pat::Pin(_) => true,
            Pat::Const(c) => keep(c),
            Pat::Tuple(items) => items.iter().all(|i| i.consts_all(keep)),
            Pat::List(items, tail) => {
                items.iter().all(|i| i.consts_all(keep)) && tail.consts_all(keep)
            }
            Pat::Map(pairs) => pairs.iter().all(|(k, v)| {
                let key = match k {
                    MapKey::Const(c) => keep(c),
                    MapKey::Pin(_) => true,
                };
                key && v.consts_all(keep)
            }),
        }
    }
}

/// A constant pattern; a constant tuple becomes a tuple of constant elements, so that
/// matching it checks the arity and compares immediates word by word (the common receive
/// pattern `{:token, 0}`) instead of walking both terms.
fn split_const(t: Term) -> Pat {
    match t.view() {
        crate::term::View::Tuple(elems) if elems.len() <= 8 => {
            Pat::Tuple(elems.iter().map(|&e| split_const(e)).collect())
        }
        _ => Pat::Const(t),
    }
}

/// What a receive site's patterns depend on, for skipping messages it need not test.
#[derive(Clone, Debug)]
pub(crate) struct SiteInfo {
    /// No clause pins a register: the patterns depend on the message alone, so a message the
    /// site rejected once it rejects again.
    pub pure: bool,
    /// Per clause, the registers it pins (`^rN`).
    pub pins: Vec<Vec<u8>>,
    /// The clauses as flat tuples, when every one is a tuple of `_`, first occurrences of
    /// registers and immediate constants (`{:token, 0}`, `{:token, r1}`: most receives and
    /// cases): matched without the general matcher's recursion.
    pub flat: Option<Box<[FlatClause]>>,
}

/// A clause `{...}` of a [`SiteInfo::flat`] site.
#[derive(Clone, Debug)]
pub(crate) struct FlatClause {
    pub arity: usize,
    /// (element, the immediate it must be).
    pub consts: Box<[(u8, Term)]>,
    /// (element, the register it binds).
    pub binds: Box<[(u8, u8)]>,
}

impl FlatClause {
    /// Whether a tuple of `elems` matches: its arity, and its constants in place.
    #[inline(always)]
    pub(crate) fn matches(&self, elems: &[Term]) -> bool {
        self.arity == elems.len() && self.consts.iter().all(|&(i, k)| elems[i as usize] == k)
    }

    /// The flat form of `pat`, if it has one.
    pub(crate) fn of(pat: &Pat) -> Option<FlatClause> {
        let Pat::Tuple(items) = pat else { return None };
        let (mut consts, mut binds) = (Vec::new(), Vec::new());
        for (i, item) in items.iter().enumerate() {
            let i = u8::try_from(i).ok()?;
            match item {
                Pat::Any => {}
                Pat::Bind(r) => binds.push((i, *r)),
                Pat::Const(c) if c.is_immediate() => consts.push((i, *c)),
                _ => return None,
            }
        }
        Some(FlatClause {
            arity: items.len(),
            consts: consts.into(),
            binds: binds.into(),
        })
    }
}

/// Everything the interpreter reads while running a program.
#[derive(Clone)]
pub struct Program {
    pub module: VerifiedModule,
    pub code: Vec<Instr>,
    /// Specialised forms of the hot instructions, parallel to `code` (see `lower.rs`).
    pub(crate) ops: Vec<Op>,
    /// `ops` threaded, what the interpreter's fast path runs (see `threaded.rs`).
    pub(crate) threaded: crate::threaded::Threaded,
    pub(crate) consts: Vec<Term>,
    pub(crate) templates: Vec<Tpl>,
    /// Parallel to `templates`: the image of each whose shape is fixed (see `heap::Image`).
    pub(crate) images: Vec<Option<crate::heap::Image>>,
    pub(crate) patterns: Vec<Pat>,
    pub clauses: Vec<ClauseTable>,
    /// Parallel to `clauses`.
    pub(crate) sites: Vec<SiteInfo>,
    pub args: Vec<Vec<Src>>,
    /// Shared with the map templates that put keys in order when they run.
    pub(crate) atoms: Arc<AtomTable>,
    pub registers: usize,
    /// Keeps the memory of every constant term alive; never freed while the program runs.
    pub(crate) literals: Literals,
    /// For each instruction where a process can start (`main`, spawn targets, function
    /// references), how many registers the code reachable from there uses; 0 elsewhere.
    entry_registers: Vec<u16>,
    /// The function table: entry `i` is the code (an instruction index) of function value
    /// `i`. A function value (`Term::fun`, a closure's first field) holds its entry, never a
    /// code address, as a BEAM fun holds its fun entry: the entries of one module are
    /// contiguous (modules are laid out one after another), so they form that module's table,
    /// and a new version of a module can get a table of its own without rewriting any term.
    funs: Vec<u32>,
    /// Per instruction: its entry in `funs`, or `u32::MAX` when no function value names it.
    fun_of: Vec<u32>,
    /// The export table: per exported label of each module, its code (slot `i` of a module's
    /// exports is what `call_ext`, `spawn_ext` and `spawn_link_ext` reach). A new version of a
    /// module gets new slots' targets; the calls that name the module follow them.
    exports: Vec<u32>,
    /// (label position, slot) for each exported label, by position: how an instruction's
    /// target names its slot.
    export_slots: Vec<(u32, u32)>,
    /// The native functions linked to the program's `native` instructions: (instruction,
    /// function), in instruction order.
    natives: Vec<(u32, crate::native::Native)>,
    /// Every term built into the literal areas, in the order they were built: what a purge
    /// looks through for literals that name the purged code.
    literal_terms: Vec<Term>,
    /// Which unit is each module's current and old version (see `code.rs`).
    pub(crate) versions: crate::code::Versions,
    /// Extra atoms the program was built with (kept for the next version's build).
    extra_atoms: Vec<String>,
    /// The host's natives, linked again in the next version.
    host_natives: crate::native::Natives,
    /// The lowered fast path is on.
    lowered: bool,
    /// Registers every process has at least: once a version has been loaded, code a process
    /// reaches through the export table is no longer what its register file was sized for, so
    /// every process gets the program's whole register count (as a process that calls a
    /// function value does).
    register_floor: usize,
}

/// Why a version of a module could not be loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodeError {
    /// The module still has an old version: purge it first (the BEAM's `not_purged`).
    NotPurged,
    /// The module is not valid bytecode, or names a module or label the running program lacks.
    Invalid(String),
    /// The program would pass [`MAX_LOADED_CODE`] instructions: a purged version's code is
    /// never reused, so a program that reloads forever is stopped here.
    SystemLimit,
}

/// The most instructions a program may hold, every version it ever loaded included (64 MiB of
/// code).
pub const MAX_LOADED_CODE: usize = 1 << 22;

impl std::fmt::Display for CodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CodeError::NotPurged => write!(f, "the module's old version is not purged"),
            CodeError::Invalid(e) => write!(f, "{e}"),
            CodeError::SystemLimit => write!(
                f,
                "the program would pass {MAX_LOADED_CODE} instructions, old versions included"
            ),
        }
    }
}

impl std::error::Error for CodeError {}

/// An export slot whose module's current version does not export its label: calls through it
/// crash `:undef`.
pub(crate) const UNDEF: u32 = u32::MAX;

/// The export table of `m`: a slot per exported label of each module (by module and label
/// name, so that every version of a module shares its slots), holding the code of that label in
/// the module's current version, or [`UNDEF`] when the current version does not export it;
/// and (position, slot) for each exported label of each version, by position (of labels at one
/// position, the first).
fn export_table(
    m: &crate::bytecode::Module,
    versions: &crate::code::Versions,
) -> (Vec<u32>, Vec<(u32, u32)>) {
    let mut exports = Vec::new();
    let mut slots = Vec::new();
    let mut at: std::collections::HashMap<(u32, &str), u32> = std::collections::HashMap::new();
    for l in &m.labels {
        at.entry((l.unit, l.name.as_str())).or_insert(l.at.0);
    }
    let mut slot_of: std::collections::HashMap<(&str, &str), u32> =
        std::collections::HashMap::new();
    for (u, unit) in m.units.iter().enumerate() {
        let current = versions.current(&unit.name) == Some(u as u32);
        for name in &unit.exports {
            if let Some(&pos) = at.get(&(u as u32, name.as_str())) {
                let slot = *slot_of.entry((&unit.name, name)).or_insert_with(|| {
                    exports.push(UNDEF);
                    exports.len() as u32 - 1
                });
                slots.push((pos, slot));
                if current {
                    exports[slot as usize] = pos;
                }
            }
        }
    }
    slots.sort_by_key(|&(at, slot)| (at, slot));
    slots.dedup_by_key(|&mut (at, _)| at);
    (exports, slots)
}

/// The target of the slot of exported label position `at` (`at` itself if it has none, which
/// the verifier rules out).
fn resolve_export(exports: &[u32], slots: &[(u32, u32)], at: u32) -> u32 {
    match slots.binary_search_by_key(&at, |&(a, _)| a) {
        Ok(i) => exports[slots[i].1 as usize],
        Err(_) => at,
    }
}

/// The function table of `m`: every label used as a value (in a constant, template or pattern,
/// or by `closure`) and each instruction's entry. The entries of `prev` (the table before a load)
/// keep their numbers, since terms hold them; labels first used as values by the tables and code
/// after `from` (what the load appended) get new entries after them, in code order.
fn fun_table(m: &crate::bytecode::Module, prev: &[u32], from: &Tables) -> (Vec<u32>, Vec<u32>) {
    let mut targets: Vec<u32> = Vec::new();
    let nodes = m.literals[from.literals..]
        .iter()
        .chain(&m.templates[from.templates..])
        .chain(&m.patterns[from.patterns..]);
    for n in nodes {
        n.walk(&mut |x| {
            if let Node::Fun(at) = x {
                targets.push(*at);
            }
        });
    }
    for instr in &m.code[from.code..] {
        if let Instr::Closure { target, .. } = instr {
            targets.push(target.0);
        }
    }
    let mut fun_of = vec![u32::MAX; m.code.len()];
    for (i, &at) in prev.iter().enumerate() {
        fun_of[at as usize] = i as u32;
    }
    targets.sort_unstable();
    targets.dedup();
    let mut funs = prev.to_vec();
    for at in targets {
        if fun_of[at as usize] == u32::MAX {
            fun_of[at as usize] = funs.len() as u32;
            funs.push(at);
        }
    }
    (funs, fun_of)
}

/// How long each of a module's tables is: what a program was built from, so that the next
/// version's build knows what is new.
#[derive(Clone, Copy, Debug, Default)]
struct Tables {
    code: usize,
    literals: usize,
    templates: usize,
    patterns: usize,
}

impl Tables {
    fn of(m: &crate::bytecode::Module) -> Tables {
        Tables {
            code: m.code.len(),
            literals: m.literals.len(),
            templates: m.templates.len(),
            patterns: m.patterns.len(),
        }
    }
}

/// A constant subtree: it becomes a literal term. (Maps are never literals: they are built
/// where they are used, in key order.)
fn is_const(n: &Node) -> bool {
    let mut c = true;
    n.walk(&mut |n| c &= !matches!(n, Node::Reg(_) | Node::Pin(_) | Node::Wild | Node::Map(_)));
    c
}

/// Collects the maximal constant subtrees of `n` (in a fixed order reused by the builders).
fn const_parts(n: &Node, out: &mut Vec<Node>) {
    if is_const(n) {
        out.push(n.clone());
        return;
    }
    match n {
        Node::Tuple(items) => items.iter().for_each(|i| const_parts(i, out)),
        Node::List(items, tail) => {
            items.iter().for_each(|i| const_parts(i, out));
            const_parts(tail, out);
        }
        Node::Map(pairs) => pairs.iter().for_each(|(k, v)| {
            const_parts(k, out);
            const_parts(v, out);
        }),
        _ => {}
    }
}

fn tpl(n: &Node, consts: &mut impl Iterator<Item = Term>, atoms: &Arc<AtomTable>) -> Tpl {
    if is_const(n) {
        return Tpl::Const(consts.next().expect("const part"));
    }
    match n {
        Node::Reg(r) => Tpl::Reg(*r),
        Node::Tuple(items) => Tpl::Tuple(items.iter().map(|i| tpl(i, consts, atoms)).collect()),
        Node::List(items, tail) => Tpl::List(
            items.iter().map(|i| tpl(i, consts, atoms)).collect(),
            Box::new(tpl(tail, consts, atoms)),
        ),
        Node::Map(pairs) => {
            let pairs: Vec<(Tpl, Tpl)> = pairs
                .iter()
                .map(|(k, v)| (tpl(k, consts, atoms), tpl(v, consts, atoms)))
                .collect();
            let keys: Option<Vec<Term>> = pairs
                .iter()
                .map(|(k, _)| match k {
                    Tpl::Const(c) => Some(*c),
                    _ => None,
                })
                .collect();
            match keys {
                Some(keys) if keys.len() <= map::FLAT_MAX => {
                    // Key order now; of equal keys the last wins (as `#{a => 1, a => 2}`).
                    let names = |a: u32| atoms.name(a);
                    let mut order: Vec<usize> = (0..keys.len()).collect();
                    order.sort_by(|&i, &j| term::compare_keys(keys[i], keys[j], &names));
                    let mut kept: Vec<usize> = Vec::with_capacity(order.len());
                    for i in order {
                        match kept.last_mut() {
                            Some(last) if term::eq(keys[*last], keys[i]) => *last = i,
                            _ => kept.push(i),
                        }
                    }
                    let mut vals: Vec<Option<Tpl>> =
                        pairs.into_iter().map(|(_, v)| Some(v)).collect();
                    Tpl::FlatMap(
                        kept.iter().map(|&i| keys[i]).collect(),
                        kept.iter()
                            .map(|&i| vals[i].take().expect("each value once"))
                            .collect(),
                    )
                }
                _ => Tpl::Map(pairs.into(), atoms.clone()),
            }
        }
        _ => unreachable!("verified template"),
    }
}

fn pat(n: &Node, consts: &mut impl Iterator<Item = Term>, seen: &mut Vec<u8>) -> Pat {
    if is_const(n) {
        return split_const(consts.next().expect("const part"));
    }
    match n {
        Node::Reg(r) if seen.contains(r) => Pat::Same(*r),
        Node::Reg(r) => {
            seen.push(*r);
            Pat::Bind(*r)
        }
        Node::Pin(r) => Pat::Pin(*r),
        Node::Wild => Pat::Any,
        Node::Tuple(items) => Pat::Tuple(items.iter().map(|i| pat(i, consts, seen)).collect()),
        Node::List(items, tail) => Pat::List(
            items.iter().map(|i| pat(i, consts, seen)).collect(),
            Box::new(pat(tail, consts, seen)),
        ),
        Node::Map(pairs) => Pat::Map(
            pairs
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        Node::Pin(r) => MapKey::Pin(*r),
                        _ => MapKey::Const(consts.next().expect("const key")),
                    };
                    (key, pat(v, consts, seen))
                })
                .collect(),
        ),
        _ => unreachable!("constant handled above"),
    }
}

impl Program {
    /// [`Program::new`] with the lowered fast path off: every instruction runs in the general
    /// interpreter. The two paths must agree on everything a program can see; the tests run
    /// programs both ways (as the BEAM tests its interpreter and its JIT on the same suites).
    pub fn without_lowering(module: VerifiedModule) -> Program {
        Program::new(module).lowering_off()
    }

    /// This program with the lowered fast path off (see [`Program::without_lowering`]).
    pub fn lowering_off(mut self) -> Program {
        self.ops = vec![Op::Slow; self.code.len()];
        self.threaded =
            crate::threaded::Threaded::new(&self.ops, &self.images, &self.clauses, &self.sites);
        self.lowered = false;
        self
    }

    pub fn new(module: VerifiedModule) -> Program {
        Program::with_atoms(module, &[])
    }

    /// [`Program::new`] with `extra` atoms besides the program's: atoms an embedding host or
    /// its natives make (atoms are never made at run time).
    pub fn with_atoms(module: VerifiedModule, extra: &[String]) -> Program {
        let versions = crate::code::Versions::of(module.module());
        let mut p = Program::build(module, extra, None, versions, u32::MAX);
        // The VM's own natives only: their arities are the stdlib's.
        let _ = p.link_natives(&crate::native::Natives::default());
        p
    }

    /// The program of `module`, a module whose tables extend those of `prev`'s (a version of a
    /// module was linked in, see `code.rs`): everything `prev` built is kept as it is (atoms,
    /// constants, function entries: terms hold them), and what the load appended is built
    /// into a literal area of its own, owned by unit `owner`.
    fn build(
        module: VerifiedModule,
        extra: &[String],
        prev: Option<&Program>,
        versions: crate::code::Versions,
        owner: u32,
    ) -> Program {
        let m = module.module();
        let from = prev.map_or(Tables::default(), |p| Tables::of(p.module.module()));
        let mut atoms = prev.map_or_else(AtomTable::default, |p| (*p.atoms).clone());
        let atom_map: Vec<u32> = m.atoms.iter().map(|a| atoms.intern(a)).collect();
        for a in extra {
            atoms.intern(a);
        }
        let mut nodes: Vec<Node> = m.literals[from.literals..].to_vec();
        for n in m.templates[from.templates..]
            .iter()
            .chain(&m.patterns[from.patterns..])
        {
            const_parts(n, &mut nodes);
        }
        let (funs, fun_of) = fun_table(m, prev.map_or(&[], |p| &p.funs), &from);
        // Function references in constants hold their function-table entry.
        for n in &mut nodes {
            n.walk_mut(&mut |x| {
                if let Node::Fun(at) = x {
                    *at = fun_of[*at as usize];
                }
            });
        }
        let atom_of = |a: u32| atom_map[a as usize];
        let (literals, terms) = match prev {
            None => Literals::build(&nodes, &atom_of),
            Some(p) => p.literals.with_area(&nodes, &atom_of, owner),
        };
        let new_literals = m.literals.len() - from.literals;
        let mut consts = prev.map_or_else(Vec::new, |p| p.consts.clone());
        consts.extend_from_slice(&terms[..new_literals]);
        let mut rest = terms[new_literals..].iter().copied();
        let atoms = Arc::new(atoms);
        let mut templates = prev.map_or_else(Vec::new, |p| p.templates.clone());
        templates.extend(
            m.templates[from.templates..]
                .iter()
                .map(|n| tpl(n, &mut rest, &atoms)),
        );
        let mut patterns = prev.map_or_else(Vec::new, |p| p.patterns.clone());
        patterns.extend(
            m.patterns[from.patterns..]
                .iter()
                .map(|n| pat(n, &mut rest, &mut Vec::new())),
        );
        let mut literal_terms = prev.map_or_else(Vec::new, |p| p.literal_terms.clone());
        literal_terms.extend(terms.iter().copied().filter(|t| t.is_pointer()));
        let sites: Vec<SiteInfo> = m
            .clauses
            .iter()
            .map(|t| {
                let pins: Vec<Vec<u8>> = t
                    .clauses
                    .iter()
                    .map(|c| {
                        let mut regs = Vec::new();
                        m.patterns[c.pattern.0 as usize].walk(&mut |n| {
                            if let Node::Pin(r) = n {
                                regs.push(*r);
                            }
                        });
                        regs
                    })
                    .collect();
                let flat = t
                    .clauses
                    .iter()
                    .map(|c| FlatClause::of(&patterns[c.pattern.0 as usize]))
                    .collect::<Option<Box<[FlatClause]>>>();
                SiteInfo {
                    pure: pins.iter().all(Vec::is_empty),
                    pins,
                    flat,
                }
            })
            .collect();
        let entry_registers = entry_registers(&module);
        let (exports, export_slots) = export_table(m, &versions);
        let mut ops = crate::lower::lower(&m.code, &consts, &m.args);
        let images = images(&templates);
        // A call through the export table with no arguments to copy is lowered to the plain
        // call of its slot's target. Others keep their slot's target for the general
        // interpreter, as does a call whose module no longer exports its label (`:undef`).
        for (pc, instr) in m.code.iter().enumerate() {
            match instr {
                Instr::CallExt { target, args } if m.args[args.0 as usize].is_empty() => {
                    let to = resolve_export(&exports, &export_slots, target.0);
                    ops[pc] = if to == UNDEF {
                        Op::Resolved(UNDEF)
                    } else {
                        Op::Call(to)
                    };
                }
                Instr::JumpExt { target } => {
                    let to = resolve_export(&exports, &export_slots, target.0);
                    ops[pc] = if to == UNDEF {
                        Op::Resolved(UNDEF)
                    } else {
                        Op::Jump(to)
                    };
                }
                Instr::CallExt { target, .. }
                | Instr::SpawnExt { target, .. }
                | Instr::SpawnLinkExt { target, .. } => {
                    ops[pc] = Op::Resolved(resolve_export(&exports, &export_slots, target.0));
                }
                Instr::Send { p: to, v } => {
                    if let (Some(to), crate::isa::SrcKind::Template(k)) = (to.as_reg(), v.kind()) {
                        if images.get(k as usize).is_some_and(Option::is_some) {
                            ops[pc] = Op::SendImage { to, image: k };
                        }
                    }
                }
                Instr::Receive { clauses } => {
                    let flat = sites
                        .get(clauses.0 as usize)
                        .is_some_and(|s| s.pure && s.flat.is_some());
                    if flat && m.clauses[clauses.0 as usize].after.is_none() {
                        ops[pc] = Op::Receive { site: clauses.0 };
                    }
                }
                Instr::Move { d, v } => {
                    if let crate::isa::SrcKind::Template(k) = v.kind() {
                        if images.get(k as usize).is_some_and(Option::is_some) {
                            ops[pc] = Op::MoveImage { d: d.0, image: k };
                        }
                    }
                }
                _ => {}
            }
        }
        let threaded = crate::threaded::Threaded::new(&ops, &images, &m.clauses, &sites);
        Program {
            exports,
            export_slots,
            natives: Vec::new(),
            funs,
            fun_of,
            entry_registers,
            sites,
            threaded,
            ops,
            code: m.code.clone(),
            consts,
            images,
            templates,
            patterns,
            clauses: m.clauses.clone(),
            args: m.args.clone(),
            registers: module.registers(),
            atoms,
            literals,
            literal_terms,
            versions,
            extra_atoms: extra.to_vec(),
            host_natives: crate::native::Natives::default(),
            lowered: true,
            register_floor: if prev.is_some() {
                module.registers().max(1)
            } else {
                0
            },
            module,
        }
    }

    /// [`Program::new`], with the `native` instructions linked to the host's functions. A
    /// function registered with another arity than its stub's is an error; one not registered
    /// crashes its caller `:undef` when called.
    pub fn with_natives(
        module: VerifiedModule,
        natives: &crate::native::Natives,
    ) -> Result<Program, String> {
        let mut p = Program::with_atoms(module, &natives.atoms);
        p.link_natives(natives)?;
        Ok(p)
    }

    /// Links every `native` instruction to the host's function of its name, or the VM's own
    /// (the `code` module's requests).
    fn link_natives(&mut self, natives: &crate::native::Natives) -> Result<(), String> {
        let m = self.module.module();
        let builtin = crate::native::Natives::builtin();
        let mut linked = Vec::new();
        for (at, instr) in m.code.iter().enumerate() {
            let Instr::Native { m: md, f, arity } = instr else {
                continue;
            };
            let name = |s: &crate::isa::Src| match s.kind() {
                crate::isa::SrcKind::Const(c) => self.consts[c as usize]
                    .as_atom()
                    .map(|a| self.atoms.name(a).to_string()),
                _ => None,
            };
            let (Some(md), Some(f)) = (name(md), name(f)) else {
                continue;
            };
            let Some(native) = natives.find(&md, &f).or_else(|| builtin.find(&md, &f)) else {
                continue;
            };
            let arity = match arity.kind() {
                crate::isa::SrcKind::Const(c) => self.consts[c as usize].as_int(),
                _ => None,
            };
            if arity != Some(i64::from(native.arity)) {
                return Err(format!(
                    "native function {md}:{f} is registered with {} arguments, but {} calls it with {}",
                    native.arity,
                    self.module.location(at as u32),
                    arity.map_or("a register's count".into(), |a| a.to_string())
                ));
            }
            linked.push((at as u32, native.clone()));
        }
        self.natives = linked;
        self.host_natives = natives.clone();
        Ok(())
    }

    /// This program with the first unit of `new` (a module assembled on its own) loaded as its
    /// module's current version, the current one becoming old (see `code.rs`). Fails if the
    /// module still has an old version (`:not_purged`), or if `new` is not a valid module or
    /// names what the running program lacks.
    pub(crate) fn load(&self, new: crate::bytecode::Module) -> Result<Program, CodeError> {
        let new = crate::verify::verify(new).map_err(|e| CodeError::Invalid(e.to_string()))?;
        let new = new.module();
        let name = new
            .units
            .first()
            .map(|u| u.name.clone())
            .unwrap_or_default();
        if self.versions.old(&name).is_some() {
            return Err(CodeError::NotPurged);
        }
        let unit_len = new.units.first().map_or(0, |u| (u.end - u.start) as usize);
        if self.code.len() + unit_len > MAX_LOADED_CODE {
            return Err(CodeError::SystemLimit);
        }
        let mut merged = self.module.module().clone();
        let unit = crate::code::link(&mut merged, &self.versions, new)
            .map_err(|e| CodeError::Invalid(format!("cannot load {name}: {e}")))?;
        let merged = crate::verify::verify(merged)
            .map_err(|e| CodeError::Invalid(format!("cannot load {name}: {e}")))?;
        let mut versions = self.versions.clone();
        versions.install(&name, unit);
        let mut p = Program::build(merged, &self.extra_atoms, Some(self), versions, unit);
        p.link_natives(&self.host_natives)
            .map_err(CodeError::Invalid)?;
        if !self.lowered {
            p = p.lowering_off();
        }
        Ok(p)
    }

    /// This program with `module`'s old version purged: its unit, its literal area left out
    /// (the caller copies its literals out of every heap first, see `Vm::purge`), and the
    /// constants of its code forgotten. `None` if the module has no old version.
    pub(crate) fn purged(&self, module: &str) -> Option<(Program, u32)> {
        let mut versions = self.versions.clone();
        let unit = versions.purge(module)?;
        let literals = self.literals.without(unit);
        let keep = |t: &Term| !t.is_pointer() || literals.contains_term(*t);
        let consts = self
            .consts
            .iter()
            .map(|t| if keep(t) { *t } else { Term::NIL })
            .collect();
        // Templates and patterns of the purged code that hold its literals are never used
        // again (nothing can reach that code); they become harmless ones.
        let templates: Vec<Tpl> = self
            .templates
            .iter()
            .map(|t| {
                if t.consts_all(&keep) {
                    t.clone()
                } else {
                    Tpl::Const(Term::NIL)
                }
            })
            .collect();
        let patterns = self
            .patterns
            .iter()
            .map(|p| {
                if p.consts_all(&keep) {
                    p.clone()
                } else {
                    Pat::Any
                }
            })
            .collect();
        let mut ops = self.ops.clone();
        let u = &self.module.module().units[unit as usize];
        for op in &mut ops[u.start as usize..u.end as usize] {
            *op = Op::Slow;
        }
        let images = images(&templates);
        Some((
            Program {
                literal_terms: self.literal_terms.iter().copied().filter(keep).collect(),
                literals,
                consts,
                threaded: crate::threaded::Threaded::new(&ops, &images, &self.clauses, &self.sites),
                images,
                templates,
                patterns,
                ops,
                versions,
                ..self.clone()
            },
            unit,
        ))
    }

    /// Registers every process needs at least (see `register_floor`).
    pub(crate) fn register_floor(&self) -> usize {
        self.register_floor
    }

    /// Builds template `k` on the process's heap, from its registers.
    #[inline]
    pub(crate) fn build_template(&self, k: u32, regs: &[Term], heap: &mut Heap) -> Term {
        match &self.images[k as usize] {
            Some(image) => heap.build_image(image, regs),
            None => self.templates[k as usize].build(regs, heap),
        }
    }

    /// Does function entry `fun` name code of `unit`?
    pub(crate) fn fun_in_unit(&self, fun: u32, unit: u32) -> bool {
        let u = &self.module.module().units[unit as usize];
        self.funs
            .get(fun as usize)
            .is_some_and(|&at| (u.start..u.end).contains(&at))
    }

    /// The literal objects (by address) that hold, at any depth, a function of `unit`'s code:
    /// a process holding one holds that code.
    pub(crate) fn literals_naming(&self, unit: u32) -> std::collections::HashSet<u64> {
        fn walk(
            t: Term,
            names: &dyn Fn(u32) -> bool,
            memo: &mut std::collections::HashMap<u64, bool>,
        ) -> bool {
            if let Some(f) = t.as_fun() {
                return names(f);
            }
            if !t.is_pointer() {
                return false;
            }
            if let Some(&known) = memo.get(&t.addr()) {
                return known;
            }
            let found = match t.view() {
                crate::term::View::Tuple(elems) => {
                    let mut any = false;
                    for &e in elems {
                        any |= walk(e, names, memo);
                    }
                    any
                }
                crate::term::View::Cons(h, rest) => walk(h, names, memo) | walk(rest, names, memo),
                _ => false,
            };
            memo.insert(t.addr(), found);
            found
        }
        let names = |f: u32| self.fun_in_unit(f, unit);
        let mut memo = std::collections::HashMap::new();
        for &t in &self.literal_terms {
            walk(t, &names, &mut memo);
        }
        memo.into_iter()
            .filter(|&(_, found)| found)
            .map(|(addr, _)| addr)
            .collect()
    }

    /// The code the call through the export table at instruction `pc` goes to (its target
    /// `at`): its slot's target, looked up when the program was lowered, or now (the
    /// verifier checked that `at` is an exported label).
    #[inline]
    pub(crate) fn export_target(&self, pc: usize, at: u32) -> u32 {
        match self.ops[pc] {
            Op::Resolved(t) => t,
            _ => resolve_export(&self.exports, &self.export_slots, at),
        }
    }

    /// The native function linked to the `native` instruction at `at`.
    pub(crate) fn native_at(&self, at: u32) -> Option<&crate::native::Native> {
        self.natives
            .binary_search_by_key(&at, |(pc, _)| *pc)
            .ok()
            .map(|i| &self.natives[i].1)
    }

    /// How many function values the program has (the function table's length).
    pub(crate) fn fun_count(&self) -> usize {
        self.funs.len()
    }

    /// The register file size for a process starting at `entry`: only as many registers as the
    /// code it can reach uses (spec §2), at least one.
    pub fn registers_at(&self, entry: u32) -> usize {
        match self.entry_registers.get(entry as usize) {
            Some(&n) if n > 0 => (n as usize).max(self.register_floor),
            _ => self.registers.max(1),
        }
    }

    /// The code of function value `fun` (an entry of the function table).
    #[inline]
    pub(crate) fn fun_code(&self, fun: u32) -> u32 {
        self.funs[fun as usize]
    }

    /// The function-table entry of the function at instruction `at` (a `closure` target).
    #[inline]
    pub(crate) fn fun_of(&self, at: u32) -> u32 {
        self.fun_of[at as usize]
    }

    /// `mod:label` of function value `fun` (how function references print).
    pub fn fun_name(&self, fun: u32) -> String {
        let at = self.fun_code(fun);
        let m = self.module.module();
        let unit = &m.units[self.module.unit_of(at)];
        match m.labels.iter().find(|l| l.at.0 == at) {
            Some(l) => format!("{}:{}", unit.name, l.name),
            None => format!("{}:{at}", unit.name),
        }
    }

    /// Appends the printed form of `t` (spec §1).
    pub(crate) fn format(&self, t: Term, out: &mut Vec<u8>) {
        term::format_with(t, &|a| self.atoms.name(a), &|at| self.fun_name(at), out);
    }

    /// `format`'s text: `fmt` with each directive replaced by what it makes of the next of
    /// `args` (a proper list), in the spirit of Erlang's `io_lib:format`. A directive is `~`, an
    /// optional field width (`-` first to justify left), an optional `.precision`, and one of:
    /// `p` and `w` the printed form; `s` a binary, an atom's name or a list of character codes,
    /// as text (at most `precision` bytes); `b`/`B` an integer in base `precision` (default 10,
    /// letters lowercase / uppercase); `f` a number with `precision` digits after the point
    /// (default 6); `c` the character with that code; `n` a newline; `~` a tilde. The text
    /// stays within `cap` bytes.
    pub(crate) fn format_directives(
        &self,
        fmt: &[u8],
        args: Term,
        cap: usize,
    ) -> Result<Vec<u8>, FormatError> {
        let mut out = Vec::new();
        let mut args = term::list_iter(args);
        let mut i = 0;
        while i < fmt.len() {
            let c = fmt[i];
            i += 1;
            if c != b'~' {
                out.push(c);
                continue;
            }
            let left = fmt.get(i) == Some(&b'-');
            if left {
                i += 1;
            }
            let number = |i: &mut usize| {
                let start = *i;
                while fmt.get(*i).is_some_and(u8::is_ascii_digit) {
                    *i += 1;
                }
                std::str::from_utf8(&fmt[start..*i])
                    .ok()
                    .filter(|s| !s.is_empty())
                    .map(|s| s.parse::<usize>().map_err(|_| FormatError::BadArg))
                    .transpose()
            };
            let width = number(&mut i)?;
            let precision = if fmt.get(i) == Some(&b'.') {
                i += 1;
                number(&mut i)?
            } else {
                None
            };
            let control = *fmt.get(i).ok_or(FormatError::BadArg)?;
            i += 1;
            let mut field = Vec::new();
            match control {
                b'n' => field.push(b'\n'),
                b'~' => field.push(b'~'),
                _ => {
                    let arg = args.next().ok_or(FormatError::BadArg)?;
                    self.format_one(control, precision, arg, cap, &mut field)?;
                }
            }
            let pad = width.map_or(0, |w| w.saturating_sub(field.len()));
            if out.len() + field.len() + pad > cap {
                return Err(FormatError::TooBig);
            }
            if !left {
                out.resize(out.len() + pad, b' ');
            }
            out.extend_from_slice(&field);
            if left {
                out.resize(out.len() + pad, b' ');
            }
        }
        if out.len() > cap {
            return Err(FormatError::TooBig);
        }
        // Every argument used, and `args` a proper list.
        if args.next().is_some() || !args.tail().is_nil() {
            return Err(FormatError::BadArg);
        }
        Ok(out)
    }

    fn format_one(
        &self,
        control: u8,
        precision: Option<usize>,
        arg: Term,
        cap: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), FormatError> {
        use crate::term::View;
        match control {
            b'p' | b'w' => {
                let names = |a| self.atoms.name(a);
                let funs = |at| self.fun_name(at);
                if !term::format_within(arg, &names, &funs, cap, out) {
                    return Err(FormatError::TooBig);
                }
            }
            b's' => {
                match arg.view() {
                    View::Binary(b) => out.extend_from_slice(b),
                    View::Atom(a) => out.extend_from_slice(self.atoms.name(a).as_bytes()),
                    View::Nil | View::Cons(..) => {
                        let mut chars = term::list_iter(arg);
                        for c in chars.by_ref() {
                            push_char(c, out)?;
                            if out.len() > cap {
                                return Err(FormatError::TooBig);
                            }
                        }
                        if !chars.tail().is_nil() {
                            return Err(FormatError::BadArg);
                        }
                    }
                    _ => return Err(FormatError::BadArg),
                }
                if let Some(p) = precision {
                    out.truncate(p);
                }
            }
            b'b' | b'B' => {
                let n = arg.as_int().ok_or(FormatError::BadArg)?;
                let base = precision.unwrap_or(10);
                if !(2..=36).contains(&base) {
                    return Err(FormatError::BadArg);
                }
                let mut digits = Vec::new();
                let mut m = n.unsigned_abs();
                loop {
                    let d = (m % base as u64) as u8;
                    digits.push(match d {
                        0..=9 => b'0' + d,
                        _ if control == b'b' => b'a' + d - 10,
                        _ => b'A' + d - 10,
                    });
                    m /= base as u64;
                    if m == 0 {
                        break;
                    }
                }
                if n < 0 {
                    out.push(b'-');
                }
                out.extend(digits.iter().rev());
            }
            b'f' => {
                let x = arg.as_number().ok_or(FormatError::BadArg)?;
                // (Longer than any float's digits: the result stays small.)
                let digits = precision.unwrap_or(6).min(340);
                out.extend_from_slice(fixed_point(x, digits).as_bytes());
            }
            b'c' => push_char(arg, out)?,
            _ => return Err(FormatError::BadArg),
        }
        Ok(())
    }

    /// The position of `main` in the program's first unit.
    pub fn entry(&self, name: &str) -> Option<Label> {
        self.module.find_label(0, name)
    }
}

/// Appends the character whose code is `c`, in UTF-8; not a character code: `BadArg`.
fn push_char(c: Term, out: &mut Vec<u8>) -> Result<(), FormatError> {
    let c = c
        .as_int()
        .and_then(|c| u32::try_from(c).ok())
        .and_then(char::from_u32)
        .ok_or(FormatError::BadArg)?;
    let mut buf = [0; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    Ok(())
}

/// `x` with `digits` digits after the point, correctly rounded from its exact value, a tie
/// away from zero (as Erlang's `~.Nf` writes it; Rust's `{:.N}` breaks ties to even).
fn fixed_point(x: f64, digits: usize) -> String {
    // Every float's exact decimal expansion ends within 1,074 digits after the point.
    let exact = format!("{:.1100}", x.abs());
    let (int, frac) = exact.split_once('.').expect("a point");
    let tie = frac.as_bytes()[digits] == b'5' && frac[digits + 1..].bytes().all(|b| b == b'0');
    if !tie {
        return format!("{x:.digits$}");
    }
    let mut kept: Vec<u8> = int.bytes().chain(frac[..digits].bytes()).collect();
    // Add one in the last kept place.
    let mut i = kept.len();
    loop {
        if i == 0 {
            kept.insert(0, b'1');
            break;
        }
        i -= 1;
        if kept[i] == b'9' {
            kept[i] = b'0';
        } else {
            kept[i] += 1;
            break;
        }
    }
    let point = kept.len() - digits;
    let mut text = String::from(if x.is_sign_negative() { "-" } else { "" });
    text.push_str(std::str::from_utf8(&kept[..point]).expect("digits"));
    if digits > 0 {
        text.push('.');
        text.push_str(std::str::from_utf8(&kept[point..]).expect("digits"));
    }
    text
}

/// Why `format` failed: a directive it does not know or an argument that does not fit one
/// (`:badarg`), or a text longer than the room left (`:heap_limit`).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FormatError {
    BadArg,
    TooBig,
}

/// Register counts per process entry point, from the code reachable from each entry: the next
/// instruction, every label an instruction or clause names (calls return to the next one), and
/// the targets of function references its operands hold (`call_fun` may continue there).
/// Conservative: a register anything reachable mentions is counted.
fn entry_registers(module: &VerifiedModule) -> Vec<u16> {
    use crate::isa::{Flags, Operand};
    let m = module.module();
    let n = m.code.len();
    let mut out = vec![0u16; n];
    // Registers each node mentions, and the function references in it.
    fn node_facts(node: &Node, regs: &mut u16, funs: &mut Vec<u32>) {
        node.walk(&mut |x| match x {
            Node::Reg(r) | Node::Pin(r) => *regs = (*regs).max(*r as u16 + 1),
            Node::Fun(at) => funs.push(*at),
            _ => {}
        });
    }
    let src_facts = |s: Src, regs: &mut u16, funs: &mut Vec<u32>| match s.kind() {
        crate::isa::SrcKind::Reg(r) => *regs = (*regs).max(r as u16 + 1),
        crate::isa::SrcKind::Const(k) => node_facts(&m.literals[k as usize], regs, funs),
        crate::isa::SrcKind::Template(k) => node_facts(&m.templates[k as usize], regs, funs),
    };
    // Per instruction: registers it mentions and the instructions control may go to next.
    let mut own = vec![0u16; n];
    let mut next: Vec<Vec<u32>> = vec![Vec::new(); n];
    let mut entries: Vec<u32> = Vec::new();
    for (pc, instr) in m.code.iter().enumerate() {
        let mut regs = 0u16;
        let mut succ = Vec::new();
        let mut funs = Vec::new();
        if !instr.opcode().info().flags.contains(Flags::TERM) && pc + 1 < n {
            succ.push(pc as u32 + 1);
        }
        for op in instr.operands() {
            match op {
                Operand::Reg(r) => regs = regs.max(r.0 as u16 + 1),
                Operand::Src(s) => src_facts(s, &mut regs, &mut funs),
                Operand::Label(l) => {
                    if matches!(
                        instr,
                        Instr::Spawn { .. }
                            | Instr::SpawnLink { .. }
                            | Instr::SpawnExt { .. }
                            | Instr::SpawnLinkExt { .. }
                    ) {
                        entries.push(l.0);
                    } else if matches!(instr, Instr::Closure { .. }) {
                        // Like a function reference: called here or spawned elsewhere.
                        funs.push(l.0);
                    } else {
                        succ.push(l.0);
                    }
                }
                Operand::Pattern(p) => node_facts(&m.patterns[p.0 as usize], &mut regs, &mut funs),
                Operand::Clauses(t) => {
                    let table = &m.clauses[t.0 as usize];
                    for c in &table.clauses {
                        node_facts(&m.patterns[c.pattern.0 as usize], &mut regs, &mut funs);
                        succ.extend(c.target.map(|l| l.0));
                    }
                    if let Some(a) = &table.after {
                        src_facts(a.timeout, &mut regs, &mut funs);
                        succ.extend(a.target.map(|l| l.0));
                    }
                }
                Operand::Args(a) => {
                    for s in &m.args[a.0 as usize] {
                        src_facts(*s, &mut regs, &mut funs);
                    }
                }
            }
        }
        // A function reference may be called here (call_fun) or start a process elsewhere.
        succ.extend(funs.iter().copied());
        entries.extend(funs);
        own[pc] = regs;
        next[pc] = succ;
    }
    entries.extend(module.find_label(0, "main").map(|l| l.0));
    entries.sort_unstable();
    entries.dedup();
    // Bounded work: each entry walks at most the whole program once.
    if entries.len().saturating_mul(n) > 20_000_000 {
        return out;
    }
    let mut seen = vec![u32::MAX; n];
    for (mark, &entry) in entries.iter().enumerate() {
        let mut regs = 1u16;
        let mut stack = vec![entry];
        while let Some(pc) = stack.pop() {
            let i = pc as usize;
            if i >= n || seen[i] == mark as u32 {
                continue;
            }
            seen[i] = mark as u32;
            if matches!(m.code[i], Instr::CallFun { .. }) {
                // A function reference received in a message can lead anywhere: all registers.
                regs = module.registers().max(1) as u16;
                break;
            }
            regs = regs.max(own[i]);
            stack.extend(next[i].iter().copied());
        }
        if let Some(slot) = out.get_mut(entry as usize) {
            *slot = regs;
        }
    }
    out
}
