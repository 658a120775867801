//! Hot code loading, the bytecode half: linking a new version of a module into the running
//! program, and the table of which unit is each module's current and old version.
//!
//! A running program's [`Module`] only grows. Loading appends the new version's code and tables
//! after everything already there, so that every code position, constant, atom and function
//! entry a process or a term holds keeps its meaning: the old version's code stays where it is
//! (processes finish in it), and purging it only makes it unreachable. The new unit's
//! references to other modules (`call lists:reverse`, `&other:label`) are linked by name to
//! those modules' current versions in the running program, as the BEAM links a loaded module's
//! imports to what is loaded.

use crate::bytecode::{ClauseTable, LabelDef, Module, Node, Unit};
use crate::isa::{ArgsId, ClausesId, Instr, Label, Operand, PatId, Src, SrcKind};
use std::collections::HashMap;

/// Which unit is each module's current version, and which its old one (a module has at most
/// one old version: loading while one exists fails `:not_purged`).
#[derive(Clone, Debug, Default)]
pub struct Versions {
    current: HashMap<String, u32>,
    old: HashMap<String, u32>,
}

impl Versions {
    /// The versions of a program as first loaded: every unit is its module's current version.
    pub fn of(m: &Module) -> Versions {
        let mut v = Versions::default();
        for (i, u) in m.units.iter().enumerate() {
            v.current.entry(u.name.clone()).or_insert(i as u32);
        }
        v
    }
    /// The unit of `module`'s current version.
    pub fn current(&self, module: &str) -> Option<u32> {
        self.current.get(module).copied()
    }
    /// The unit of `module`'s old version, if it has one.
    pub fn old(&self, module: &str) -> Option<u32> {
        self.old.get(module).copied()
    }
    /// `unit` (just appended) becomes `module`'s current version, the current one its old.
    pub(crate) fn install(&mut self, module: &str, unit: u32) {
        if let Some(prev) = self.current.insert(module.to_string(), unit) {
            self.old.insert(module.to_string(), prev);
        }
    }
    /// `module`'s old version is gone; its unit, if it had one.
    pub(crate) fn purge(&mut self, module: &str) -> Option<u32> {
        self.old.remove(module)
    }
}

/// Appends unit 0 of `new` (a module assembled on its own: the version to load, with its imports
/// as further units) to `running`, as a new unit; its references to other modules go to the
/// current versions in `versions`. The new unit's index, or why it cannot be linked.
pub fn link(running: &mut Module, versions: &Versions, new: &Module) -> Result<u32, String> {
    let Some(unit) = new.units.first() else {
        return Err("the module has no code".into());
    };
    let mut l = Linker {
        new,
        base: running.code.len() as u32,
        start: unit.start,
        end: unit.end,
        atoms: HashMap::new(),
        atom_index: running
            .atoms
            .iter()
            .enumerate()
            .map(|(i, a)| (a.clone(), i as u32))
            .collect(),
        literals: HashMap::new(),
        templates: HashMap::new(),
        patterns: HashMap::new(),
        clauses: HashMap::new(),
        args: HashMap::new(),
        versions,
        run: running,
    };
    let mut code = Vec::with_capacity((unit.end - unit.start) as usize);
    for instr in &new.code[unit.start as usize..unit.end as usize] {
        code.push(l.instr(instr)?);
    }
    let index = l.run.units.len() as u32;
    let base = l.base;
    let run = l.run;
    run.code.extend(code);
    run.lines
        .extend((unit.start..unit.end).map(|pc| new.lines.get(pc as usize).copied().unwrap_or(0)));
    for label in new.labels.iter().filter(|d| d.unit == 0) {
        run.labels.push(LabelDef {
            name: label.name.clone(),
            unit: index,
            at: Label(label.at.0 - unit.start + base),
        });
    }
    run.units.push(Unit {
        name: unit.name.clone(),
        file: unit.file.clone(),
        start: base,
        end: run.code.len() as u32,
        exports: unit.exports.clone(),
        imports: unit.imports.clone(),
    });
    Ok(index)
}

/// The node tables of a module.
#[derive(Clone, Copy)]
enum Nodes {
    Literals,
    Templates,
    Patterns,
}

impl Nodes {
    fn of(self, m: &Module) -> &[Node] {
        match self {
            Nodes::Literals => &m.literals,
            Nodes::Templates => &m.templates,
            Nodes::Patterns => &m.patterns,
        }
    }
}

/// Copies what the new unit's instructions use into the running module's tables, each entry
/// once, renumbered.
struct Linker<'a> {
    run: &'a mut Module,
    new: &'a Module,
    versions: &'a Versions,
    /// Where the unit's code goes in the running module, and where it was in `new`.
    base: u32,
    start: u32,
    end: u32,
    atoms: HashMap<u32, u32>,
    atom_index: HashMap<String, u32>,
    literals: HashMap<u32, u32>,
    templates: HashMap<u32, u32>,
    patterns: HashMap<u32, u32>,
    clauses: HashMap<u32, u32>,
    args: HashMap<u32, u32>,
}

impl Linker<'_> {
    fn instr(&mut self, instr: &Instr) -> Result<Instr, String> {
        let ops: Vec<Operand> = instr
            .operands()
            .into_iter()
            .map(|o| self.operand(o))
            .collect::<Result<_, _>>()?;
        Instr::from_operands(instr.opcode(), &ops).ok_or_else(|| "malformed instruction".into())
    }

    fn operand(&mut self, o: Operand) -> Result<Operand, String> {
        Ok(match o {
            Operand::Reg(r) => Operand::Reg(r),
            Operand::Src(s) => Operand::Src(self.src(s)?),
            Operand::Label(l) => Operand::Label(self.label(l)?),
            Operand::Pattern(p) => Operand::Pattern(PatId(self.pattern(p.0)?)),
            Operand::Clauses(c) => Operand::Clauses(ClausesId(self.clause_table(c.0)?)),
            Operand::Args(a) => Operand::Args(ArgsId(self.arg_list(a.0)?)),
        })
    }

    fn src(&mut self, s: Src) -> Result<Src, String> {
        Ok(match s.kind() {
            SrcKind::Reg(_) => s,
            SrcKind::Const(k) => Src::constant(self.literal(k)?),
            SrcKind::Template(k) => Src::template(self.template(k)?),
        })
    }

    /// A code position of `new` in the running module: inside the unit, moved with it;
    /// elsewhere, the same label of the current version of the module that holds it.
    fn label(&mut self, l: Label) -> Result<Label, String> {
        if (self.start..self.end).contains(&l.0) {
            return Ok(Label(l.0 - self.start + self.base));
        }
        let new = self.new;
        let unit = new
            .units
            .iter()
            .position(|u| (u.start..u.end).contains(&l.0))
            .ok_or("a label outside the code")?;
        let name = new
            .labels
            .iter()
            .find(|d| d.unit as usize == unit && d.at == l)
            .map(|d| d.name.as_str())
            .ok_or("a reference to an unnamed position of another module")?;
        let module = &new.units[unit].name;
        let target = self
            .versions
            .current(module)
            .and_then(|u| {
                self.run
                    .labels
                    .iter()
                    .find(|d| d.unit == u && d.name == name)
            })
            .ok_or_else(|| {
                format!("it refers to {module}:{name}, which the running program does not have")
            })?;
        Ok(target.at)
    }

    fn atom(&mut self, a: u32) -> u32 {
        if let Some(&x) = self.atoms.get(&a) {
            return x;
        }
        let name = &self.new.atoms[a as usize];
        let x = *self.atom_index.entry(name.clone()).or_insert_with(|| {
            self.run.atoms.push(name.clone());
            self.run.atoms.len() as u32 - 1
        });
        self.atoms.insert(a, x);
        x
    }

    fn node(&mut self, n: &Node) -> Result<Node, String> {
        let mut n = n.clone();
        let mut failed = None;
        n.walk_mut(&mut |x| match x {
            Node::Atom(a) => *a = self.atom(*a),
            Node::Fun(at) => match self.label(Label(*at)) {
                Ok(l) => *at = l.0,
                Err(e) => failed = Some(e),
            },
            _ => {}
        });
        failed.map_or(Ok(n), Err)
    }

    /// Entry `k` of one of `new`'s node tables, copied into the same table of the running
    /// module (once), renumbered.
    fn node_entry(&mut self, table: Nodes, k: u32) -> Result<u32, String> {
        let memo = match table {
            Nodes::Literals => &self.literals,
            Nodes::Templates => &self.templates,
            Nodes::Patterns => &self.patterns,
        };
        if let Some(&x) = memo.get(&k) {
            return Ok(x);
        }
        let new = self.new;
        let n = self.node(&table.of(new)[k as usize])?;
        let (dest, memo) = match table {
            Nodes::Literals => (&mut self.run.literals, &mut self.literals),
            Nodes::Templates => (&mut self.run.templates, &mut self.templates),
            Nodes::Patterns => (&mut self.run.patterns, &mut self.patterns),
        };
        dest.push(n);
        let x = dest.len() as u32 - 1;
        memo.insert(k, x);
        Ok(x)
    }

    fn literal(&mut self, k: u32) -> Result<u32, String> {
        self.node_entry(Nodes::Literals, k)
    }

    fn template(&mut self, k: u32) -> Result<u32, String> {
        self.node_entry(Nodes::Templates, k)
    }

    fn pattern(&mut self, k: u32) -> Result<u32, String> {
        self.node_entry(Nodes::Patterns, k)
    }

    fn clause_table(&mut self, k: u32) -> Result<u32, String> {
        if let Some(&x) = self.clauses.get(&k) {
            return Ok(x);
        }
        let t = &self.new.clauses[k as usize];
        let mut out = ClauseTable {
            clauses: Vec::with_capacity(t.clauses.len()),
            after: None,
        };
        for c in &t.clauses {
            out.clauses.push(crate::bytecode::Clause {
                pattern: PatId(self.pattern(c.pattern.0)?),
                target: c.target.map(|l| self.label(l)).transpose()?,
            });
        }
        if let Some(a) = &t.after {
            out.after = Some(crate::bytecode::After {
                timeout: self.src(a.timeout)?,
                target: a.target.map(|l| self.label(l)).transpose()?,
            });
        }
        self.run.clauses.push(out);
        let x = self.run.clauses.len() as u32 - 1;
        self.clauses.insert(k, x);
        Ok(x)
    }

    fn arg_list(&mut self, k: u32) -> Result<u32, String> {
        if let Some(&x) = self.args.get(&k) {
            return Ok(x);
        }
        let list = self.new.args[k as usize]
            .iter()
            .map(|&s| self.src(s))
            .collect::<Result<Vec<_>, _>>()?;
        self.run.args.push(list);
        let x = self.run.args.len() as u32 - 1;
        self.args.insert(k, x);
        Ok(x)
    }
}
