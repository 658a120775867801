//! The verifier: the only way to obtain a [`VerifiedModule`], the only thing the VM runs.
//!
//! It checks every fact the interpreter relies on, so that the interpreter never has to: table
//! indices in range, jump targets inside the code, node kinds allowed in each table, clause
//! tables fitting their instruction, units partitioning the code and ending in an instruction
//! that does not fall through.

use crate::bytecode::{DecodeError, Module, Node};
use crate::isa::{Flags, Label, Opcode, Operand, OperandKind, Src, SrcKind};
use std::fmt;

/// A module that passed [`verify`].
#[derive(Clone, Debug)]
pub struct VerifiedModule {
    module: Module,
    registers: usize,
}

impl VerifiedModule {
    pub fn module(&self) -> &Module {
        &self.module
    }
    /// Number of registers a process of this program needs (highest register used + 1).
    pub fn registers(&self) -> usize {
        self.registers
    }
    /// The unit (source module) that holds instruction `pc`.
    pub fn unit_of(&self, pc: u32) -> usize {
        self.module
            .units
            .partition_point(|u| u.end <= pc)
            .min(self.module.units.len() - 1)
    }
    /// `file.basm:LINE` of instruction `pc`.
    pub fn location(&self, pc: u32) -> String {
        let unit = &self.module.units[self.unit_of(pc)];
        let line = self.module.lines.get(pc as usize).copied().unwrap_or(0);
        format!("{}:{}", unit.file, line)
    }
    /// The code position of label `name` in unit `unit`.
    pub fn find_label(&self, unit: usize, name: &str) -> Option<Label> {
        self.module
            .labels
            .iter()
            .find(|l| l.unit as usize == unit && l.name == name)
            .map(|l| l.at)
    }
    /// The innermost label at or before `pc` in the same unit, as `module:label` (for profiles).
    pub fn function_name(&self, pc: u32) -> String {
        let u = self.unit_of(pc);
        let unit = &self.module.units[u];
        let best = self
            .module
            .labels
            .iter()
            .filter(|l| l.unit as usize == u && l.at.0 <= pc)
            .max_by_key(|l| l.at.0);
        match best {
            Some(l) => format!("{}:{}", unit.name, l.name),
            None => format!("{}:?", unit.name),
        }
    }
}

/// Why a module was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerifyError {
    /// The bytes are not a well-formed `.ebc` file.
    Decode(DecodeError),
    /// The module is well formed but inconsistent.
    Invalid(String),
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::Decode(e) => write!(f, "{e}"),
            VerifyError::Invalid(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for VerifyError {}

/// Decodes and verifies an `.ebc` file.
pub fn load(bytes: &[u8]) -> Result<VerifiedModule, VerifyError> {
    let module = Module::decode(bytes).map_err(VerifyError::Decode)?;
    verify(module)
}

/// What a node may contain in each table.
#[derive(Clone, Copy, PartialEq, Eq)]
enum NodeUse {
    Literal,
    Template,
    Pattern,
}

struct Checker<'m> {
    m: &'m Module,
    max_reg: Option<u8>,
}

fn bad<T>(msg: String) -> Result<T, VerifyError> {
    Err(VerifyError::Invalid(msg))
}

impl Checker<'_> {
    fn reg(&mut self, r: u8) {
        self.max_reg = self.max_reg.max(Some(r));
    }

    fn node(&mut self, n: &Node, usage: NodeUse, what: &str) -> Result<(), VerifyError> {
        let mut err = None;
        let atoms = self.m.atoms.len();
        let code = self.m.code.len();
        let mut regs = Vec::new();
        n.walk(&mut |n| {
            let problem = match n {
                Node::Atom(a) if *a as usize >= atoms => {
                    Some(format!("atom index {a} out of range ({atoms} atoms)"))
                }
                Node::Reg(r) if usage == NodeUse::Literal => {
                    Some(format!("register r{r} in a literal"))
                }
                Node::Pin(_) | Node::Wild if usage != NodeUse::Pattern => {
                    Some("`^r`/`_` outside a pattern".to_string())
                }
                Node::List(items, _) if items.is_empty() => Some("empty list node".to_string()),
                Node::Map(_) if usage == NodeUse::Literal => {
                    Some("a map in a literal (maps are built by templates)".to_string())
                }
                Node::Map(pairs)
                    if usage == NodeUse::Pattern
                        && pairs.iter().any(|(k, _)| !k.is_map_pattern_key()) =>
                {
                    Some("a map pattern's key must be a constant or `^rN`".to_string())
                }
                Node::Fun(at) if *at as usize >= code => Some(format!(
                    "function reference to instruction {at} is outside the code ({code} instructions)"
                )),
                Node::Reg(r) | Node::Pin(r) => {
                    regs.push(*r);
                    None
                }
                _ => None,
            };
            if err.is_none() {
                err = problem;
            }
        });
        regs.into_iter().for_each(|r| self.reg(r));
        match err {
            Some(e) => bad(format!("{what}: {e}")),
            None => Ok(()),
        }
    }

    fn src(&mut self, s: Src, kind: OperandKind, at: &str) -> Result<(), VerifyError> {
        match s.kind() {
            SrcKind::Reg(r) => self.reg(r),
            SrcKind::Const(k) => {
                let Some(lit) = self.m.literals.get(k as usize) else {
                    return bad(format!(
                        "{at}: literal index {k} out of range ({} literals)",
                        self.m.literals.len()
                    ));
                };
                if kind == OperandKind::Num && !matches!(lit, Node::Int(_)) {
                    return bad(format!("{at}: operand must be an integer or a register"));
                }
            }
            SrcKind::Template(k) => {
                if kind == OperandKind::Num {
                    return bad(format!("{at}: operand must be an integer or a register"));
                }
                if k as usize >= self.m.templates.len() {
                    return bad(format!(
                        "{at}: template index {k} out of range ({} templates)",
                        self.m.templates.len()
                    ));
                }
            }
        }
        Ok(())
    }

    fn label(&self, l: Label, at: &str) -> Result<(), VerifyError> {
        if l.0 as usize >= self.m.code.len() {
            return bad(format!(
                "{at}: jump target {} is outside the code ({} instructions)",
                l.0,
                self.m.code.len()
            ));
        }
        Ok(())
    }
}

/// Checks a module completely; the result is the only thing the VM accepts.
pub fn verify(module: Module) -> Result<VerifiedModule, VerifyError> {
    let m = &module;
    let mut c = Checker { m, max_reg: None };

    for (i, n) in m.literals.iter().enumerate() {
        c.node(n, NodeUse::Literal, &format!("literal {i}"))?;
    }
    for (i, n) in m.templates.iter().enumerate() {
        c.node(n, NodeUse::Template, &format!("template {i}"))?;
    }
    for (i, n) in m.patterns.iter().enumerate() {
        c.node(n, NodeUse::Pattern, &format!("pattern {i}"))?;
    }
    for (i, list) in m.args.iter().enumerate() {
        // Arguments land in r0, r1, ...: no more of them than there are registers.
        if list.len() > 256 {
            return bad(format!(
                "argument list {i}: {} arguments (at most 256: they land in r0 ... r255)",
                list.len()
            ));
        }
        for s in list {
            c.src(*s, OperandKind::Src, &format!("argument list {i}"))?;
        }
    }

    // Units partition the code, in order, each ending in an instruction that cannot fall through.
    if m.units.is_empty() {
        return bad("the module has no units".into());
    }
    let mut expect = 0;
    for (i, u) in m.units.iter().enumerate() {
        if u.start != expect || u.end <= u.start {
            return bad(format!(
                "unit {i} (`{}`) covers instructions {}..{}, expected to start at {expect} and be non-empty",
                u.name, u.start, u.end
            ));
        }
        let last = m.code.get(u.end as usize - 1);
        if last.is_none_or(|l| falls_through(l.opcode())) {
            return bad(format!(
                "unit {i} (`{}`): its last instruction falls through past its end",
                u.name
            ));
        }
        expect = u.end;
    }
    if expect as usize != m.code.len() {
        return bad(format!(
            "units cover {expect} of {} instructions",
            m.code.len()
        ));
    }
    if m.lines.len() != m.code.len() {
        return bad(format!(
            "line table covers {} of {} instructions",
            m.lines.len(),
            m.code.len()
        ));
    }
    for (i, l) in m.labels.iter().enumerate() {
        let Some(u) = m.units.get(l.unit as usize) else {
            return bad(format!(
                "label {i} (`{}`): unit {} out of range",
                l.name, l.unit
            ));
        };
        if l.at.0 < u.start || l.at.0 >= u.end {
            return bad(format!(
                "label {i} (`{}`) at {} lies outside its unit `{}`",
                l.name, l.at.0, u.name
            ));
        }
    }
    // One set of (unit name, label) pairs: checking each export against every label would be
    // quadratic in the module, and a crafted file can be large.
    let defined: std::collections::HashSet<(&str, &str)> = m
        .labels
        .iter()
        .map(|l| (m.units[l.unit as usize].name.as_str(), l.name.as_str()))
        .collect();
    for u in &m.units {
        for e in &u.exports {
            if !defined.contains(&(u.name.as_str(), e.as_str())) {
                return bad(format!(
                    "unit `{}` exports `{e}`, which is not one of its labels",
                    u.name
                ));
            }
        }
    }

    // What a call through the export table may name: a label its module exports.
    let exported_at: std::collections::HashSet<u32> = m
        .labels
        .iter()
        .filter(|l| {
            m.units
                .get(l.unit as usize)
                .is_some_and(|u| u.exports.contains(&l.name))
        })
        .map(|l| l.at.0)
        .collect();

    // Clause tables: remember which instruction uses each, to check case vs receive.
    let mut clause_user: Vec<Option<Opcode>> = vec![None; m.clauses.len()];
    for (pc, instr) in m.code.iter().enumerate() {
        let op = instr.opcode();
        let at = format!("instruction {pc} (`{}`)", op.mnemonic());
        for (operand, spec) in instr.operands().iter().zip(op.info().operands) {
            match *operand {
                Operand::Reg(r) => c.reg(r.0),
                Operand::Src(s) => c.src(s, spec.kind, &at)?,
                Operand::Label(l) => {
                    c.label(l, &at)?;
                    if matches!(
                        op,
                        Opcode::CallExt | Opcode::JumpExt | Opcode::SpawnExt | Opcode::SpawnLinkExt
                    ) && !exported_at.contains(&l.0)
                    {
                        return bad(format!(
                            "{at}: target {} is not an exported label (a call through the export table names one)",
                            l.0
                        ));
                    }
                }
                Operand::Pattern(p) => {
                    if p.0 as usize >= m.patterns.len() {
                        return bad(format!("{at}: pattern index {} out of range", p.0));
                    }
                }
                Operand::Args(a) => {
                    if a.0 as usize >= m.args.len() {
                        return bad(format!("{at}: argument list index {} out of range", a.0));
                    }
                }
                Operand::Clauses(t) => {
                    let Some(slot) = clause_user.get_mut(t.0 as usize) else {
                        return bad(format!("{at}: clause table index {} out of range", t.0));
                    };
                    *slot = Some(op);
                }
            }
        }
    }
    for (i, t) in m.clauses.iter().enumerate() {
        let at = format!("clause table {i}");
        for cl in &t.clauses {
            if cl.pattern.0 as usize >= m.patterns.len() {
                return bad(format!("{at}: pattern index {} out of range", cl.pattern.0));
            }
            if let Some(l) = cl.target {
                c.label(l, &at)?;
            }
        }
        if let Some(a) = &t.after {
            if let Some(l) = a.target {
                c.label(l, &at)?;
            }
            c.src(a.timeout, OperandKind::Src, &at)?;
            let ok = match a.timeout.kind() {
                SrcKind::Reg(_) => true,
                SrcKind::Const(k) => match &m.literals[k as usize] {
                    Node::Int(ms) => *ms >= 0,
                    Node::Atom(a) => m.atoms[*a as usize] == "infinity",
                    _ => false,
                },
                SrcKind::Template(_) => false,
            };
            if !ok {
                return bad(format!(
                    "{at}: `after` takes milliseconds (>= 0), a register or :infinity"
                ));
            }
        }
        match clause_user[i] {
            Some(Opcode::Case) if t.after.is_some() => {
                return bad(format!("{at}: `case` cannot have an `after` clause"))
            }
            Some(Opcode::Case) if t.clauses.is_empty() => {
                return bad(format!("{at}: `case` needs at least one clause"))
            }
            Some(Opcode::Receive) if t.clauses.is_empty() && t.after.is_none() => {
                return bad(format!("{at}: `receive` needs a clause or an `after`"))
            }
            _ => {}
        }
    }
    // Spawn arguments land in the child's r0, r1, ...: those registers must exist too.
    let widest_spawn = m.args.iter().map(Vec::len).max().unwrap_or(0);
    let registers = c.max_reg.map_or(0, |r| r as usize + 1).max(widest_spawn);
    Ok(VerifiedModule { module, registers })
}

/// True when an instruction with opcode `op` may continue at the next instruction.
pub fn falls_through(op: Opcode) -> bool {
    !op.info().flags.contains(Flags::TERM)
}
