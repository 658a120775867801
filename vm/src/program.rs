//! The runtime form of a verified module: instructions as they are, constants built once into
//! the literal area, templates and patterns turned into small trees whose constant parts are
//! ready-made terms.

use crate::atoms::AtomTable;
use crate::bytecode::{ClauseTable, Node};
use crate::heap::Literals;
use crate::isa::{Instr, Label, Src};
use crate::lower::Op;
use crate::term::{self, Term};
use crate::verify::VerifiedModule;

/// A template: builds a term from registers.
#[derive(Debug)]
pub enum Tpl {
    Reg(u8),
    Const(Term),
    Tuple(Box<[Tpl]>),
    /// Items then tail (`Const(NIL)` for a proper list).
    List(Box<[Tpl]>, Box<Tpl>),
}

/// A pattern, matched without allocating.
#[derive(Debug)]
pub enum Pat {
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
}

impl Pat {
    /// How many registers this pattern binds (to size the scratch space).
    pub fn binds(&self) -> usize {
        match self {
            Pat::Bind(_) => 1,
            Pat::Tuple(items) => items.iter().map(Pat::binds).sum(),
            Pat::List(items, tail) => items.iter().map(Pat::binds).sum::<usize>() + tail.binds(),
            _ => 0,
        }
    }
}

/// What a receive site's patterns depend on, for skipping messages it need not test.
#[derive(Debug)]
pub struct SiteInfo {
    /// No clause pins a register: the patterns depend on the message alone, so a message the
    /// site rejected once it rejects again.
    pub pure: bool,
    /// Per clause, the registers it pins (`^rN`).
    pub pins: Vec<Vec<u8>>,
}

/// Everything the interpreter reads while running a program.
pub struct Program {
    pub module: VerifiedModule,
    pub code: Vec<Instr>,
    /// Specialised forms of the hot instructions, parallel to `code` (see `lower.rs`).
    pub ops: Vec<Op>,
    pub consts: Vec<Term>,
    pub templates: Vec<Tpl>,
    pub patterns: Vec<Pat>,
    pub clauses: Vec<ClauseTable>,
    /// Parallel to `clauses`.
    pub sites: Vec<SiteInfo>,
    pub args: Vec<Vec<Src>>,
    pub atoms: AtomTable,
    pub registers: usize,
    /// Keeps the memory of every constant term alive; never freed while the program runs.
    pub literals: Literals,
}

fn is_const(n: &Node) -> bool {
    let mut c = true;
    n.walk(&mut |n| c &= !matches!(n, Node::Reg(_) | Node::Pin(_) | Node::Wild));
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
        _ => {}
    }
}

fn tpl(n: &Node, consts: &mut impl Iterator<Item = Term>) -> Tpl {
    if is_const(n) {
        return Tpl::Const(consts.next().expect("const part"));
    }
    match n {
        Node::Reg(r) => Tpl::Reg(*r),
        Node::Tuple(items) => Tpl::Tuple(items.iter().map(|i| tpl(i, consts)).collect()),
        Node::List(items, tail) => Tpl::List(
            items.iter().map(|i| tpl(i, consts)).collect(),
            Box::new(tpl(tail, consts)),
        ),
        _ => unreachable!("verified template"),
    }
}

fn pat(n: &Node, consts: &mut impl Iterator<Item = Term>, seen: &mut Vec<u8>) -> Pat {
    if is_const(n) {
        return Pat::Const(consts.next().expect("const part"));
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
        _ => unreachable!("constant handled above"),
    }
}

impl Program {
    pub fn new(module: VerifiedModule) -> Program {
        let m = module.module();
        let mut atoms = AtomTable::default();
        let atom_map: Vec<u32> = m.atoms.iter().map(|a| atoms.intern(a)).collect();
        let mut nodes: Vec<Node> = m.literals.clone();
        for n in m.templates.iter().chain(&m.patterns) {
            const_parts(n, &mut nodes);
        }
        let (literals, terms) = Literals::build(&nodes, &|a| atom_map[a as usize]);
        let consts = terms[..m.literals.len()].to_vec();
        let mut rest = terms[m.literals.len()..].iter().copied();
        let templates = m.templates.iter().map(|n| tpl(n, &mut rest)).collect();
        let patterns = m
            .patterns
            .iter()
            .map(|n| pat(n, &mut rest, &mut Vec::new()))
            .collect();
        let sites = m
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
                SiteInfo {
                    pure: pins.iter().all(Vec::is_empty),
                    pins,
                }
            })
            .collect();
        Program {
            sites,
            ops: crate::lower::lower(&m.code, &consts),
            code: m.code.clone(),
            consts,
            templates,
            patterns,
            clauses: m.clauses.clone(),
            args: m.args.clone(),
            registers: module.registers(),
            atoms,
            literals,
            module,
        }
    }

    /// `mod:label` of the label at instruction `at` (how function references print).
    pub fn fun_name(&self, at: u32) -> String {
        let m = self.module.module();
        let unit = &m.units[self.module.unit_of(at)];
        match m.labels.iter().find(|l| l.at.0 == at) {
            Some(l) => format!("{}:{}", unit.name, l.name),
            None => format!("{}:{at}", unit.name),
        }
    }

    /// Appends the printed form of `t` (spec §1).
    pub fn format(&self, t: Term, out: &mut Vec<u8>) {
        term::format_with(t, &|a| self.atoms.name(a), &|at| self.fun_name(at), out);
    }

    /// The position of `main` in the program's first unit.
    pub fn entry(&self, name: &str) -> Option<Label> {
        self.module.find_label(0, name)
    }
}
