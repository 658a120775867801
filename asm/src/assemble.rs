//! The assembler: parsed .basm files → one linked [`Module`].
//!
//! A program is its own file plus everything it imports, transitively. Each `.module` section is
//! a *unit*; units are laid out one after another (the file's own first, then imports in the
//! order they are first named), so every label, local or `mod:label`, becomes one instruction
//! index. Tables are filled in code order, which is also the order the disassembler prints, so
//! `asm → disasm → asm` reproduces the same bytes.

use crate::ast::{self, Clause, ClauseKind, Expr, ExprKind, Item, LabelRef, Span};
use crate::diag::{self, Diagnostic};
use crate::parser;
use crate::stdlib;
use ember_vm::bytecode::{After, ClauseTable, LabelDef, Module, Node, Unit};
use ember_vm::isa::{
    ArgsId, ClausesId, Instr, Label, Opcode, Operand, OperandKind, PatId, Reg, Src,
};
use indexmap::{IndexMap, IndexSet};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// One source file taking part in an assembly.
#[derive(Clone, Debug)]
pub struct SourceFile {
    /// The name used in messages (`examples/ring.basm`, `stdlib/lists.basm`).
    pub name: String,
    pub text: String,
    /// Where `.import NAME` looks for `NAME.basm`; `None` for embedded stdlib files.
    pub dir: Option<PathBuf>,
}

/// Diagnostics of one file.
#[derive(Clone, Debug)]
pub struct FileErrors {
    pub file: String,
    pub text: String,
    pub diagnostics: Vec<Diagnostic>,
}

/// Everything that went wrong in an assembly, grouped by file.
#[derive(Clone, Debug, Default)]
pub struct AsmErrors {
    pub files: Vec<FileErrors>,
}

impl AsmErrors {
    pub fn count(&self) -> usize {
        self.files.iter().map(|f| f.diagnostics.len()).sum()
    }
    fn push(&mut self, src: &SourceFile, d: Diagnostic) {
        match self.files.iter_mut().find(|f| f.file == src.name) {
            Some(f) => f.diagnostics.push(d),
            None => self.files.push(FileErrors {
                file: src.name.clone(),
                text: src.text.clone(),
                diagnostics: vec![d],
            }),
        }
    }
}

impl fmt::Display for AsmErrors {
    /// Each file's diagnostics in source order, at most [`diag::MAX_SHOWN`] in all (a file of
    /// garbage must not print a million errors), then a line counting the rest.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut room = diag::MAX_SHOWN;
        for fe in &self.files {
            let mut ds: Vec<&Diagnostic> = fe.diagnostics.iter().collect();
            ds.sort_by_key(|d| d.span.start);
            let shown: Vec<Diagnostic> = ds.into_iter().take(room).cloned().collect();
            room -= shown.len();
            write!(f, "{}", diag::render(&fe.file, &fe.text, &shown))?;
        }
        let more = self.count() - (diag::MAX_SHOWN - room);
        if more > 0 {
            let s = if more == 1 { "" } else { "s" };
            writeln!(f, "... and {more} more error{s}")?;
        }
        Ok(())
    }
}

impl std::error::Error for AsmErrors {}

impl SourceFile {
    /// A source file from the bytes of a file. Source text must be UTF-8 (bytes that are not go
    /// in strings as `\xHH` escapes): otherwise the error points at the first bad byte, shown
    /// in its line with the bad bytes replaced by U+FFFD.
    pub fn from_bytes(
        name: String,
        bytes: Vec<u8>,
        dir: Option<PathBuf>,
    ) -> Result<SourceFile, AsmErrors> {
        match String::from_utf8(bytes) {
            Ok(text) => Ok(SourceFile { name, text, dir }),
            Err(e) => {
                let at = e.utf8_error().valid_up_to();
                let byte = e.as_bytes()[at];
                // The replacement leaves the valid prefix as it is, so `at` is still the
                // offset of the bad byte, and its U+FFFD is one character under the caret.
                let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
                let src = SourceFile { name, text, dir };
                let mut errs = AsmErrors::default();
                errs.push(
                    &src,
                    Diagnostic::new(
                        Span::new(at, at + char::REPLACEMENT_CHARACTER.len_utf8()),
                        format!("invalid UTF-8 in source (byte {byte:#04x})"),
                    ),
                );
                Err(errs)
            }
        }
    }
}

/// Assembles the program whose main file is at `path`.
pub fn assemble_path(path: &Path) -> Result<Module, AsmErrors> {
    let name = path.display().to_string();
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => {
            let src = SourceFile {
                name: name.clone(),
                text: String::new(),
                dir: None,
            };
            let mut errs = AsmErrors::default();
            errs.push(
                &src,
                Diagnostic::new(Span { start: 0, end: 0 }, format!("cannot read file: {e}")),
            );
            return Err(errs);
        }
    };
    let dir = path.parent().map(Path::to_path_buf);
    assemble(SourceFile::from_bytes(name, bytes, dir)?)
}

/// Assembles a program from its main source file; imports are looked up beside the file
/// (when it has a directory) and then in the embedded stdlib.
pub fn assemble(main: SourceFile) -> Result<Module, AsmErrors> {
    assemble_with(main, &[])
}

/// [`assemble`] with a library of in-memory modules, `(module name, source text)`, which
/// `.import` finds after the importer's directory and before the stdlib: an embedding host's
/// own modules, or the stubs of its native functions (`ember_vm::native::Natives::sources`).
pub fn assemble_with(main: SourceFile, library: &[(String, String)]) -> Result<Module, AsmErrors> {
    let mut asm = Assembler {
        library: library.to_vec(),
        ..Assembler::default()
    };
    // Emit even after parse or import errors, so independent errors elsewhere are reported too.
    asm.load_program(main);
    let module = asm.emit();
    if asm.errors.count() > 0 {
        return Err(asm.errors);
    }
    Ok(module)
}

/// A parsed unit before emission.
struct UnitSrc {
    file: usize,
    name: String,
    name_span: Span,
    file_name: Option<String>,
    items: Vec<Item>,
    exports: Vec<(String, Span)>,
    imports: Vec<(String, Span)>,
    /// Local label name → (local instruction index, span).
    labels: IndexMap<String, (u32, Span)>,
    /// Instructions including the implicit trailing `end`.
    len: u32,
    implicit_end: bool,
    base: u32,
}

#[derive(Default)]
struct Assembler {
    files: Vec<SourceFile>,
    units: Vec<UnitSrc>,
    errors: AsmErrors,
    atoms: IndexSet<String>,
    literals: IndexMap<Node, u32>,
    templates: IndexMap<Node, u32>,
    patterns: IndexMap<Node, u32>,
    module: Module,
    /// The unit being emitted (labels used as values resolve in it).
    current: usize,
    /// Per file, where the parser reported errors: a clause line it dropped must not also
    /// make its instruction look clause-less.
    parse_errors: Vec<Vec<usize>>,
    /// Byte range between the instruction being assembled and the next item.
    clause_zone: (usize, usize),
    /// Per file, where its lines start (built once: a file may hold many units).
    lines: Vec<Rc<LineIndex>>,
    /// Unit name → index in `units` (lookups by name must not scan thousands of units).
    unit_by_name: HashMap<String, usize>,
    /// In-memory modules `.import` finds before the stdlib (see [`assemble_with`]).
    library: Vec<(String, String)>,
}

/// Where an import can come from.
enum Found {
    Unit,
    Source(SourceFile),
    /// A file that is not UTF-8: its error, and it is not loaded.
    Invalid(AsmErrors),
    Missing,
}

impl Assembler {
    fn error(&mut self, file: usize, span: Span, msg: impl Into<String>) {
        self.errors
            .push(&self.files[file], Diagnostic::new(span, msg.into()));
    }

    fn load_program(&mut self, main: SourceFile) {
        self.add_file(main);
        // Resolve imports breadth-first: units are laid out in the order they are first named.
        let mut next = 0;
        while next < self.units.len() {
            let imports = self.units[next].imports.clone();
            let file = self.units[next].file;
            for (name, span) in imports {
                match self.find_import(file, &name) {
                    Found::Unit => {}
                    Found::Source(src) => {
                        let before = self.units.len();
                        self.add_file(src);
                        if !self.units[before..].iter().any(|u| u.name == name) {
                            let q = diag::quote(&name);
                            let msg = format!("module file for {q} does not define module {q}");
                            self.error(file, span, msg);
                        }
                    }
                    Found::Invalid(errs) => {
                        // Reported once, however many units import it.
                        for fe in errs.files {
                            if !self.errors.files.iter().any(|f| f.file == fe.file) {
                                self.errors.files.push(fe);
                            }
                        }
                    }
                    Found::Missing => self.error(
                        file,
                        span,
                        format!(
                            "unknown module `{name}`: no `{name}.basm` beside this file and no stdlib module of that name"
                        ),
                    ),
                }
            }
            next += 1;
        }
        let mut base = 0;
        for u in &mut self.units {
            u.base = base;
            base += u.len;
        }
    }

    fn find_import(&self, importer: usize, name: &str) -> Found {
        if self.unit_by_name.contains_key(name) {
            return Found::Unit;
        }
        if let Some(dir) = &self.files[importer].dir {
            let path = dir.join(format!("{name}.basm"));
            // A file beside the importer that is already part of the program (the importer
            // itself, say `server.basm` importing the stdlib's `server`) is not the import.
            let loaded = std::fs::canonicalize(&path).ok().is_some_and(|p| {
                self.files
                    .iter()
                    .any(|f| std::fs::canonicalize(&f.name).ok().as_ref() == Some(&p))
            });
            if let (false, Ok(bytes)) = (loaded, std::fs::read(&path)) {
                let name = path.display().to_string();
                return match SourceFile::from_bytes(name, bytes, Some(dir.clone())) {
                    Ok(src) => Found::Source(src),
                    Err(errs) => Found::Invalid(errs),
                };
            }
        }
        if let Some((_, text)) = self.library.iter().find(|(n, _)| n == name) {
            return Found::Source(SourceFile {
                name: format!("{name}.basm"),
                text: text.clone(),
                dir: None,
            });
        }
        match stdlib::source(name) {
            Some(text) => Found::Source(SourceFile {
                name: format!("stdlib/{name}.basm"),
                text: text.to_string(),
                dir: None,
            }),
            None => Found::Missing,
        }
    }

    /// Parses a file and splits it into units at its `.module` directives.
    fn add_file(&mut self, src: SourceFile) {
        let file = self.files.len();
        let (program, diags) = parser::parse(&src.text);
        self.lines.push(Rc::new(LineIndex::new(&src.text)));
        self.files.push(src);
        self.parse_errors
            .push(diags.iter().map(|d| d.span.start).collect());
        for d in diags {
            self.errors.push(&self.files[file], d);
        }
        let stem = Path::new(&self.files[file].name)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "main".into());
        let mut current: Option<UnitSrc> = None;
        let new_unit = |name: String, span: Span| UnitSrc {
            file,
            name,
            name_span: span,
            file_name: None,
            items: Vec::new(),
            exports: Vec::new(),
            imports: Vec::new(),
            labels: IndexMap::new(),
            len: 0,
            implicit_end: false,
            base: 0,
        };
        for item in program.items {
            if let Item::Module { name, span } = &item {
                if let Some(u) = current.as_mut().filter(|u| u.items.is_empty()) {
                    // `.module` before any code only names the current unit.
                    u.name = name.clone();
                    u.name_span = *span;
                    continue;
                }
                if let Some(u) = current.take() {
                    self.finish_unit(u);
                }
                current = Some(new_unit(name.clone(), *span));
                continue;
            }
            let u =
                current.get_or_insert_with(|| new_unit(stem.clone(), Span { start: 0, end: 0 }));
            match item {
                Item::Export { names, .. } => u.exports.extend(names),
                Item::Import { names, .. } => u.imports.extend(names),
                Item::File { name, .. } => u.file_name = Some(name),
                other => u.items.push(other),
            }
        }
        let u = current.unwrap_or_else(|| new_unit(stem, Span { start: 0, end: 0 }));
        self.finish_unit(u);
    }

    /// Assigns local instruction indices to labels and decides on the implicit `end`.
    fn finish_unit(&mut self, mut u: UnitSrc) {
        if let Some(prev) = self.unit_by_name.get(&u.name).map(|&i| &self.units[i]) {
            let (file, span) = (u.file, u.name_span);
            let msg = format!(
                "module {} is defined twice (also in {})",
                diag::quote(&u.name),
                self.files[prev.file].name
            );
            self.error(file, span, msg);
            return;
        }
        let mut n = 0u32;
        let mut last: Option<&ast::Instr> = None;
        let mut dups = Vec::new();
        for item in &u.items {
            match item {
                Item::Label { name, span } => {
                    if let Some((_, first)) = u.labels.get(name) {
                        dups.push((*span, name.clone(), *first));
                    } else {
                        u.labels.insert(name.clone(), (n, *span));
                    }
                }
                Item::Instr(i) => {
                    n += 1;
                    last = Some(i);
                }
                _ => {}
            }
        }
        // A unit must not run off its end: unless it ends in an instruction that cannot fall
        // through, it gets an `end` (the disassembly then shows it, and re-assembling adds none).
        let falls_through = match last {
            None => true,
            Some(i) => {
                Opcode::from_mnemonic(&i.mnemonic).is_some_and(ember_vm::verify::falls_through)
            }
        };
        let trailing_label = u
            .items
            .iter()
            .rev()
            .take_while(|i| !matches!(i, Item::Instr(_)))
            .any(|i| matches!(i, Item::Label { .. }));
        u.implicit_end = falls_through || trailing_label;
        u.len = n + u.implicit_end as u32;
        for (span, name, first) in dups {
            let line = self.lines[u.file].line(first.start);
            self.error(
                u.file,
                span,
                format!(
                    "duplicate label {} (first defined on line {line})",
                    diag::quote(&name)
                ),
            );
        }
        self.unit_by_name.insert(u.name.clone(), self.units.len());
        self.units.push(u);
    }

    fn atom(&mut self, name: &str) -> u32 {
        self.atoms.insert_full(name.to_string()).0 as u32
    }

    fn intern(table: &mut IndexMap<Node, u32>, n: Node) -> u32 {
        let next = table.len() as u32;
        *table.entry(n).or_insert(next)
    }

    /// Converts an expression to a node; `Err` carries the span and message of the first
    /// construct not allowed in `usage`.
    fn node(&mut self, e: &Expr, usage: Usage) -> Result<Node, (Span, String)> {
        Ok(match &e.kind {
            ExprKind::Int(i) => Node::Int(*i),
            ExprKind::Float(bits) => Node::Float(*bits),
            ExprKind::Atom(a) => Node::Atom(self.atom(a)),
            ExprKind::Str(b) => Node::Binary(b.clone()),
            ExprKind::Tuple(items) => Node::Tuple(
                items
                    .iter()
                    .map(|i| self.node(i, usage))
                    .collect::<Result<_, _>>()?,
            ),
            ExprKind::List(items, tail) => {
                let nodes = items
                    .iter()
                    .map(|i| self.node(i, usage))
                    .collect::<Result<Vec<_>, _>>()?;
                let tail = match tail {
                    Some(t) => self.node(t, usage)?,
                    None => Node::Nil,
                };
                if nodes.is_empty() {
                    tail
                } else {
                    Node::List(nodes, Box::new(tail))
                }
            }
            ExprKind::Map(pairs) => {
                let mut nodes = Vec::with_capacity(pairs.len());
                for pair in pairs {
                    match (usage == Usage::Pattern, pair.exact) {
                        (true, false) => {
                            return Err((
                                pair.op_span,
                                "a map pattern matches keys with `:=`, not `=>`".into(),
                            ))
                        }
                        (false, true) => {
                            return Err((
                                pair.op_span,
                                "`:=` is for map patterns; a map template uses `=>`".into(),
                            ))
                        }
                        _ => {}
                    }
                    let key = self.node(&pair.key, usage)?;
                    if usage == Usage::Pattern && !key.is_map_pattern_key() {
                        return Err((
                            pair.key.span,
                            "a map pattern's key is a constant or `^rN` (a key cannot bind)".into(),
                        ));
                    }
                    nodes.push((key, self.node(&pair.value, usage)?));
                }
                Node::Map(nodes)
            }
            ExprKind::Reg(r) => Node::Reg(*r),
            ExprKind::Pin(r) if usage == Usage::Pattern => Node::Pin(*r),
            ExprKind::Wild if usage == Usage::Pattern => Node::Wild,
            ExprKind::Pin(_) | ExprKind::Wild => {
                return Err((e.span, "`^rN` and `_` are only allowed in patterns".into()))
            }
            // A label used as a value is a function reference (for `call_fun`, `spawn_fun`).
            ExprKind::Label(l) => match self.label(self.current, l) {
                Ok(at) => Node::Fun(at.0),
                Err((span, msg)) if l.module.is_none() => {
                    return Err((
                        span,
                        format!(
                            "{msg} (atoms are written {})",
                            diag::quote(&format!(":{}", l.name))
                        ),
                    ))
                }
                Err(e) => return Err(e),
            },
        })
    }

    /// A value operand: register, constant or template.
    fn src(&mut self, e: &Expr) -> Result<Src, (Span, String)> {
        if let ExprKind::Reg(r) = e.kind {
            return Ok(Src::reg(r));
        }
        let node = self.node(e, Usage::Value)?;
        let mut has_reg = false;
        // A map is always built when the instruction runs (its keys are put in order then).
        node.walk(&mut |n| has_reg |= matches!(n, Node::Reg(_) | Node::Map(_)));
        let (table, what) = if has_reg {
            (&mut self.templates, "templates")
        } else {
            (&mut self.literals, "literals")
        };
        let k = Self::intern(table, node);
        if k > Src::MAX_INDEX {
            return Err((e.span, format!("too many {what} in one program")));
        }
        Ok(if has_reg {
            Src::template(k)
        } else {
            Src::constant(k)
        })
    }

    fn label(&mut self, unit: usize, l: &LabelRef) -> Result<Label, (Span, String)> {
        let u = &self.units[unit];
        let target = match &l.module {
            None => u,
            Some(m) if *m == u.name => u,
            Some(m) => {
                let Some(t) = self.unit_by_name.get(m).map(|&i| &self.units[i]) else {
                    return Err((
                        l.span,
                        format!(
                            "unknown module {} in {}",
                            diag::quote(m),
                            diag::quote(&label_text(l))
                        ),
                    ));
                };
                if !u.imports.iter().any(|(i, _)| i == m) {
                    return Err((
                        l.span,
                        format!(
                            "module {} is not imported (add {})",
                            diag::quote(m),
                            diag::quote(&format!(".import {m}"))
                        ),
                    ));
                }
                if !t.exports.iter().any(|(e, _)| *e == l.name) {
                    return Err((
                        l.span,
                        format!(
                            "{} is not exported by module {}",
                            diag::quote(&label_text(l)),
                            diag::quote(m)
                        ),
                    ));
                }
                t
            }
        };
        match target.labels.get(&l.name) {
            Some((at, _)) => Ok(Label(target.base + at)),
            None if l.module.is_some() => Err((
                l.span,
                format!("undefined label {}", diag::quote(&label_text(l))),
            )),
            None => Err((l.span, format!("undefined label {}", diag::quote(&l.name)))),
        }
    }

    fn emit(&mut self) -> Module {
        for unit in 0..self.units.len() {
            self.emit_unit(unit);
        }
        let mut m = std::mem::take(&mut self.module);
        m.atoms = self.atoms.iter().cloned().collect();
        m.literals = self.literals.keys().cloned().collect();
        m.templates = self.templates.keys().cloned().collect();
        m.patterns = self.patterns.keys().cloned().collect();
        m
    }

    fn emit_unit(&mut self, unit: usize) {
        self.current = unit;
        let u = &self.units[unit];
        let file = u.file;
        let text_len = self.files[file].text.len();
        let lines = self.lines[file].clone();
        let items = std::mem::take(&mut self.units[unit].items);
        let u = &self.units[unit];
        let start = u.base;
        // Exports must name labels of this unit.
        for (name, span) in u.exports.clone() {
            if !self.units[unit].labels.contains_key(&name) {
                self.error(
                    file,
                    span,
                    format!(
                        "exported label {} is not defined in this module",
                        diag::quote(&name)
                    ),
                );
            }
        }
        let u = &self.units[unit];
        for (name, (at, _)) in &u.labels {
            self.module.labels.push(LabelDef {
                name: name.clone(),
                unit: unit as u32,
                at: Label(u.base + at),
            });
        }
        self.module.units.push(Unit {
            name: u.name.clone(),
            file: u
                .file_name
                .clone()
                .unwrap_or_else(|| self.files[file].name.clone()),
            start,
            end: start + u.len,
            exports: u.exports.iter().map(|(n, _)| n.clone()).collect(),
            imports: u.imports.iter().map(|(n, _)| n.clone()).collect(),
        });
        // Per item, where the next instruction starts (one pass from the end: a search per item
        // is quadratic in a file of many labels).
        let mut next_starts = vec![text_len; items.len()];
        let mut next = text_len;
        for (n, item) in items.iter().enumerate().rev() {
            next_starts[n] = next;
            if let Item::Instr(i) = item {
                next = i.span.start;
            }
        }
        // `.line N`: the next source line counts as line N.
        let mut line_shift: i64 = 0;
        let mut last_line = 0u32;
        for (n, item) in items.iter().enumerate() {
            self.clause_zone = (item.span().end, next_starts[n]);
            match item {
                Item::Line { line, span } => {
                    let physical = lines.line(span.start) as i64;
                    line_shift = *line as i64 - (physical + 1);
                }
                Item::Instr(i) => {
                    let line = (lines.line(i.span.start) as i64 + line_shift).max(0) as u32;
                    last_line = line;
                    let instr = match self.instr(unit, i) {
                        Ok(instr) => instr,
                        Err((span, msg)) => {
                            self.error(file, span, msg);
                            Instr::Nop {}
                        }
                    };
                    self.module.code.push(instr);
                    self.module.lines.push(line);
                }
                _ => {}
            }
        }
        if self.units[unit].implicit_end {
            self.module.code.push(Instr::End {});
            self.module.lines.push(last_line);
        }
        self.units[unit].items = items;
    }

    fn instr(&mut self, unit: usize, i: &ast::Instr) -> Result<Instr, (Span, String)> {
        let Some(op) = Opcode::from_mnemonic(&i.mnemonic) else {
            return Err((
                i.mnemonic_span,
                format!("unknown instruction {}", diag::quote(&i.mnemonic)),
            ));
        };
        let info = op.info();
        let takes_clauses = info.operands.iter().any(|s| s.kind == OperandKind::Clauses);
        if !takes_clauses {
            if let Some(c) = i.clauses.first() {
                return Err((c.span, format!("`{}` takes no clauses", i.mnemonic)));
            }
        }
        let line_operands: Vec<_> = info
            .operands
            .iter()
            .filter(|s| !matches!(s.kind, OperandKind::Clauses | OperandKind::Args))
            .collect();
        let required = line_operands.iter().filter(|s| s.default.is_none()).count();
        let variadic = info.operands.iter().any(|s| s.kind == OperandKind::Args);
        let given = i.operands.len();
        if given < required || (!variadic && given > line_operands.len()) {
            let expected = if required == line_operands.len() {
                format!("{required}")
            } else {
                format!("{required} or {}", line_operands.len())
            };
            let expected = if variadic {
                format!("at least {required}")
            } else {
                expected
            };
            let plural = if required == 1 && !variadic && line_operands.len() == 1 {
                ""
            } else {
                "s"
            };
            let span = i
                .operands
                .get(line_operands.len())
                .map_or(i.span, |e| e.span);
            return Err((
                span,
                format!(
                    "`{}` takes {expected} operand{plural} (`{}`), found {given}",
                    i.mnemonic,
                    ember_vm::isa::syntax(op)
                ),
            ));
        }
        let mut ops: Vec<Operand> = Vec::with_capacity(info.operands.len());
        let mut given_ops = i.operands.iter();
        for spec in info.operands {
            let operand = match spec.kind {
                OperandKind::Clauses => Operand::Clauses(self.clauses(unit, op, i)?),
                OperandKind::Args => {
                    let rest: Vec<&Expr> = given_ops.by_ref().collect();
                    if let Some(extra) = rest.get(256) {
                        return Err((
                            extra.span,
                            "more than 256 arguments (they land in r0 ... r255)".into(),
                        ));
                    }
                    let list = rest
                        .into_iter()
                        .map(|e| self.src(e))
                        .collect::<Result<Vec<_>, _>>()?;
                    self.module.args.push(list);
                    Operand::Args(ArgsId(self.module.args.len() as u32 - 1))
                }
                kind => {
                    let expr = match given_ops.next() {
                        Some(e) => e.clone(),
                        None => {
                            let text = spec.default.expect("count checked above");
                            let (prog, _) = parser::parse(&format!("nop {text}\n"));
                            let Some(Item::Instr(d)) = prog.items.into_iter().next() else {
                                unreachable!("instruction table defaults parse")
                            };
                            d.operands.into_iter().next().expect("one default operand")
                        }
                    };
                    self.operand(unit, kind, &expr, i)?
                }
            };
            ops.push(operand);
        }
        // `call m:l`, `jump m:l`, `spawn d, m:l`, `spawn_link d, m:l` of an exported label go through the
        // export table (to the module's current version); a label of this module named with
        // its module but not exported stays a local call.
        let ext = match op {
            Opcode::Call => Some((0, Opcode::CallExt)),
            Opcode::Jump => Some((0, Opcode::JumpExt)),
            Opcode::Spawn => Some((1, Opcode::SpawnExt)),
            Opcode::SpawnLink => Some((1, Opcode::SpawnLinkExt)),
            _ => None,
        };
        if let Some((k, ext)) = ext {
            if let Some(ExprKind::Label(l)) = i.operands.get(k).map(|e| &e.kind) {
                let exported = l.module.as_ref().is_some_and(|m| {
                    self.unit_by_name
                        .get(m)
                        .is_some_and(|&t| self.units[t].exports.iter().any(|(e, _)| *e == l.name))
                });
                if exported {
                    return Ok(
                        Instr::from_operands(ext, &ops).expect("same operands as the plain form")
                    );
                }
            }
        }
        Ok(Instr::from_operands(op, &ops).expect("operands built from the table"))
    }

    fn operand(
        &mut self,
        unit: usize,
        kind: OperandKind,
        e: &Expr,
        i: &ast::Instr,
    ) -> Result<Operand, (Span, String)> {
        Ok(match kind {
            OperandKind::Dst => match e.kind {
                ExprKind::Reg(r) => Operand::Reg(Reg(r)),
                _ => {
                    return Err((
                        e.span,
                        format!(
                            "`{}` expects a destination register here, found {}",
                            i.mnemonic,
                            describe(e)
                        ),
                    ))
                }
            },
            OperandKind::Src => Operand::Src(self.src(e)?),
            OperandKind::Num => match e.kind {
                ExprKind::Reg(_) | ExprKind::Int(_) => Operand::Src(self.src(e)?),
                _ => {
                    return Err((
                        e.span,
                        format!(
                            "`{}` expects an integer or a register here, found {}",
                            i.mnemonic,
                            describe(e)
                        ),
                    ))
                }
            },
            OperandKind::Label => match &e.kind {
                ExprKind::Label(l) => Operand::Label(self.label(unit, l)?),
                _ => {
                    return Err((
                        e.span,
                        format!(
                            "`{}` expects a label here, found {}",
                            i.mnemonic,
                            describe(e)
                        ),
                    ))
                }
            },
            OperandKind::Pattern => Operand::Pattern(self.pattern(e)?),
            OperandKind::Clauses | OperandKind::Args => unreachable!("handled by the caller"),
        })
    }

    fn pattern(&mut self, e: &Expr) -> Result<PatId, (Span, String)> {
        let node = self.node(e, Usage::Pattern)?;
        Ok(PatId(Self::intern(&mut self.patterns, node)))
    }

    fn clauses(
        &mut self,
        unit: usize,
        op: Opcode,
        i: &ast::Instr,
    ) -> Result<ClausesId, (Span, String)> {
        let dropped_clause = self.parse_errors[self.units[unit].file]
            .iter()
            .any(|&e| e >= self.clause_zone.0 && e < self.clause_zone.1);
        if i.clauses.is_empty() && !dropped_clause {
            return Err((
                i.span,
                format!(
                    "`{}` needs clauses on the following lines (`| PATTERN -> label`)",
                    i.mnemonic
                ),
            ));
        }
        let mut table = ClauseTable::default();
        let mut after_span = None;
        for Clause { kind, target, span } in &i.clauses {
            let target = match target {
                Some(l) => Some(self.label(unit, l)?),
                None => None,
            };
            match kind {
                ClauseKind::Pattern(p) => {
                    if let Some(after) = after_span {
                        return Err((after, "the `after` clause must be the last one".into()));
                    }
                    let pattern = self.pattern(p)?;
                    table
                        .clauses
                        .push(ember_vm::bytecode::Clause { pattern, target });
                }
                ClauseKind::After(t) => {
                    if op != Opcode::Receive {
                        return Err((
                            *span,
                            format!("`{}` cannot have an `after` clause", i.mnemonic),
                        ));
                    }
                    if table.after.is_some() {
                        return Err((*span, "only one `after` clause is allowed".into()));
                    }
                    let ok = match &t.kind {
                        ExprKind::Reg(_) => true,
                        ExprKind::Int(ms) => *ms >= 0,
                        ExprKind::Atom(a) => a == "infinity",
                        _ => false,
                    };
                    if !ok {
                        return Err((
                            t.span,
                            "`after` takes milliseconds (an integer >= 0), a register or :infinity"
                                .into(),
                        ));
                    }
                    let timeout = self.src(t)?;
                    table.after = Some(After { timeout, target });
                    after_span = Some(*span);
                }
            }
        }
        self.module.clauses.push(table);
        Ok(ClausesId(self.module.clauses.len() as u32 - 1))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Usage {
    Value,
    Pattern,
}

fn label_text(l: &LabelRef) -> String {
    match &l.module {
        Some(m) => format!("{m}:{}", l.name),
        None => l.name.clone(),
    }
}

/// A short description of an operand for error messages.
fn describe(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Reg(r) => format!("register `r{r}`"),
        ExprKind::Pin(r) => format!("`^r{r}`"),
        ExprKind::Int(i) => format!("integer `{i}`"),
        ExprKind::Float(bits) => format!("float `{}`", ember_vm::float_text(f64::from_bits(*bits))),
        ExprKind::Atom(a) => format!("atom {}", diag::quote(&format!(":{a}"))),
        ExprKind::Str(_) => "a string".into(),
        ExprKind::Tuple(_) => "a tuple".into(),
        ExprKind::List(..) => "a list".into(),
        ExprKind::Map(_) => "a map".into(),
        ExprKind::Wild => "`_`".into(),
        ExprKind::Label(l) => format!("label {}", diag::quote(&label_text(l))),
    }
}

/// Byte offset → 1-based line number.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }
    fn line(&self, offset: usize) -> u32 {
        self.starts.partition_point(|&s| s <= offset) as u32
    }
}

/// Convenience for tests and tools: assemble source text held in memory.
pub fn assemble_str(name: &str, text: &str) -> Result<Module, AsmErrors> {
    assemble(SourceFile {
        name: name.to_string(),
        text: text.to_string(),
        dir: None,
    })
}
