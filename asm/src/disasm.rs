//! The disassembler: a module back to .basm text that assembles to the same bytes.
//!
//! Each unit is printed as a `.module` section with its `.file`, exports and imports; labels
//! from the label table stand where they were defined; `.line N` directives keep the line
//! table; literals, templates and patterns print in source syntax.

use ember_vm::bytecode::{Module, Node};
use ember_vm::isa::{Instr, Label, Opcode, Operand, OperandKind, Src, SrcKind};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Prints `m` as assembly source.
pub fn disassemble(m: &Module) -> String {
    let mut d = Disasm {
        m,
        out: String::new(),
        line: 1,
        shift: 0,
        names: BTreeMap::new(),
        unit: 0,
    };
    d.collect_names();
    for u in 0..m.units.len() {
        d.unit(u);
    }
    d.out
}

struct Disasm<'m> {
    m: &'m Module,
    out: String,
    /// The 1-based line number of the next line written.
    line: i64,
    /// What the assembler will add to a physical line number after the last `.line`.
    shift: i64,
    /// Instruction index → label names defined there (in table order), with their unit.
    names: BTreeMap<u32, Vec<(u32, String)>>,
    /// The unit being printed (function references print relative to it).
    unit: usize,
}

impl Disasm<'_> {
    fn collect_names(&mut self) {
        for l in &self.m.labels {
            self.names
                .entry(l.at.0)
                .or_default()
                .push((l.unit, l.name.clone()));
        }
        // Targets without a name (only in hand-made files) get a synthetic one.
        let mut unnamed = Vec::new();
        let mut see = |l: Label| {
            if !self.names.contains_key(&l.0) {
                unnamed.push(l.0);
            }
        };
        for instr in &self.m.code {
            for op in instr.operands() {
                if let Operand::Label(l) = op {
                    see(l);
                }
            }
        }
        for n in self
            .m
            .literals
            .iter()
            .chain(&self.m.templates)
            .chain(&self.m.patterns)
        {
            n.walk(&mut |n| {
                if let Node::Fun(at) = n {
                    see(Label(*at));
                }
            });
        }
        for t in &self.m.clauses {
            t.clauses.iter().filter_map(|c| c.target).for_each(&mut see);
            t.after.iter().filter_map(|a| a.target).for_each(&mut see);
        }
        for at in unnamed {
            let unit = self.unit_of(at);
            self.names
                .entry(at)
                .or_default()
                .push((unit, format!("L{at}")));
        }
    }

    fn unit_of(&self, at: u32) -> u32 {
        self.m
            .units
            .iter()
            .position(|u| at >= u.start && at < u.end)
            .unwrap_or(0) as u32
    }

    fn writeln(&mut self, text: &str) {
        self.out.push_str(text);
        self.out.push('\n');
        self.line += 1;
    }

    fn unit(&mut self, u: usize) {
        self.unit = u;
        // The assembler starts every unit without a `.line` shift.
        self.shift = 0;
        let unit = &self.m.units[u];
        if u > 0 {
            self.writeln("");
        }
        self.writeln(&format!(".module {}", unit.name));
        self.writeln(&format!(".file {}", quote(unit.file.as_bytes())));
        if !unit.exports.is_empty() {
            self.writeln(&format!(".export {}", unit.exports.join(", ")));
        }
        if !unit.imports.is_empty() {
            self.writeln(&format!(".import {}", unit.imports.join(", ")));
        }
        for pc in unit.start..unit.end {
            if let Some(names) = self.names.get(&pc).cloned() {
                for (lu, name) in names {
                    if lu as usize == u {
                        self.writeln(&format!("{name}:"));
                    }
                }
            }
            let want = self.m.lines.get(pc as usize).copied().unwrap_or(0) as i64;
            if (self.line + self.shift).max(0) != want {
                let here = self.line;
                self.writeln(&format!(".line {want}"));
                self.shift = want - (here + 1);
            }
            let instr = self.m.code[pc as usize];
            let text = self.instr(u, &instr);
            for line in text.lines() {
                self.writeln(line);
            }
        }
    }

    fn label(&self, from_unit: usize, l: Label) -> String {
        let names = self.names.get(&l.0).map(Vec::as_slice).unwrap_or(&[]);
        if let Some((_, n)) = names.iter().find(|(u, _)| *u as usize == from_unit) {
            return n.clone();
        }
        let target = self.unit_of(l.0) as usize;
        let unit = &self.m.units[target];
        let exported = names
            .iter()
            .find(|(u, n)| *u as usize == target && unit.exports.contains(n));
        match exported.or_else(|| names.first()) {
            Some((_, n)) => format!("{}:{n}", unit.name),
            None => format!("L{}", l.0),
        }
    }

    /// `module:label` for an exported label, whichever unit is printing.
    fn qualified_label(&self, l: Label) -> String {
        let target = self.unit_of(l.0) as usize;
        let unit = &self.m.units[target];
        let names = self.names.get(&l.0).map(Vec::as_slice).unwrap_or(&[]);
        match names
            .iter()
            .find(|(u, n)| *u as usize == target && unit.exports.contains(n))
        {
            Some((_, n)) => format!("{}:{n}", unit.name),
            None => self.label(usize::MAX, l),
        }
    }

    fn instr(&self, unit: usize, instr: &Instr) -> String {
        let op = instr.opcode();
        // A call through the export table is written as the source writes it: the plain
        // mnemonic with a label named with its module (which the assembler turns back into it).
        let (mnemonic, through_table) = match op {
            Opcode::CallExt => ("call", true),
            Opcode::JumpExt => ("jump", true),
            Opcode::SpawnExt => ("spawn", true),
            Opcode::SpawnLinkExt => ("spawn_link", true),
            _ => (op.mnemonic(), false),
        };
        let mut s = format!("    {mnemonic}");
        let mut clauses = String::new();
        let mut first = true;
        for (operand, spec) in instr.operands().iter().zip(op.info().operands) {
            let text = match *operand {
                Operand::Reg(r) => format!("r{}", r.0),
                Operand::Src(src) => self.src(src),
                Operand::Label(l) if through_table => self.qualified_label(l),
                Operand::Label(l) => self.label(unit, l),
                Operand::Pattern(p) => self.pattern(&self.m.patterns[p.0 as usize]),
                Operand::Args(a) => {
                    for src in &self.m.args[a.0 as usize] {
                        let _ = write!(s, "{}{}", if first { " " } else { ", " }, self.src(*src));
                        first = false;
                    }
                    continue;
                }
                Operand::Clauses(t) => {
                    let table = &self.m.clauses[t.0 as usize];
                    for c in &table.clauses {
                        let _ = write!(
                            clauses,
                            "\n      | {}",
                            self.pattern(&self.m.patterns[c.pattern.0 as usize])
                        );
                        if let Some(l) = c.target {
                            let _ = write!(clauses, " -> {}", self.label(unit, l));
                        }
                    }
                    if let Some(a) = &table.after {
                        let _ = write!(clauses, "\n      | after {}", self.src(a.timeout));
                        if let Some(l) = a.target {
                            let _ = write!(clauses, " -> {}", self.label(unit, l));
                        }
                    }
                    continue;
                }
            };
            debug_assert!(spec.kind != OperandKind::Clauses);
            let _ = write!(s, "{}{}", if first { " " } else { ", " }, text);
            first = false;
        }
        s.push_str(&clauses);
        s
    }

    fn src(&self, s: Src) -> String {
        match s.kind() {
            SrcKind::Reg(r) => format!("r{r}"),
            SrcKind::Const(k) => self.node(&self.m.literals[k as usize]),
            SrcKind::Template(k) => self.node(&self.m.templates[k as usize]),
        }
    }

    fn node(&self, n: &Node) -> String {
        let mut out = String::new();
        self.write_node(n, false, &mut out);
        out
    }

    /// A pattern: its maps associate with `:=`.
    fn pattern(&self, n: &Node) -> String {
        let mut out = String::new();
        self.write_node(n, true, &mut out);
        out
    }

    fn write_node(&self, n: &Node, pattern: bool, out: &mut String) {
        match n {
            Node::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Node::Float(bits) => out.push_str(&ember_vm::float_text(f64::from_bits(*bits))),
            Node::Atom(a) => out.push_str(&atom_text(&self.m.atoms[*a as usize])),
            Node::Binary(b) => out.push_str(&quote(b)),
            Node::Tuple(items) => {
                out.push('{');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    self.write_node(item, pattern, out);
                }
                out.push('}');
            }
            Node::List(items, tail) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    self.write_node(item, pattern, out);
                }
                if **tail != Node::Nil {
                    out.push_str(" | ");
                    self.write_node(tail, pattern, out);
                }
                out.push(']');
            }
            Node::Nil => out.push_str("[]"),
            Node::Reg(r) => {
                let _ = write!(out, "r{r}");
            }
            Node::Pin(r) => {
                let _ = write!(out, "^r{r}");
            }
            Node::Wild => out.push('_'),
            Node::Fun(at) => out.push_str(&self.label(self.unit, Label(*at))),
            Node::Map(pairs) => {
                out.push_str("#{");
                for (i, (k, v)) in pairs.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    self.write_node(k, pattern, out);
                    out.push_str(if pattern { " := " } else { " => " });
                    self.write_node(v, pattern, out);
                }
                out.push('}');
            }
        }
    }
}

/// `:name`, quoted when it is not an identifier.
pub fn atom_text(name: &str) -> String {
    let ident = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ident {
        format!(":{name}")
    } else {
        format!(":{}", quote(name.as_bytes()))
    }
}

/// A string literal in .basm syntax that the lexer reads back as exactly `bytes`.
pub fn quote(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                '\0' => out.push_str("\\0"),
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                c if c.is_control() => {
                    let mut buf = [0; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        let _ = write!(out, "\\x{b:02x}");
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out.push('"');
    out
}
