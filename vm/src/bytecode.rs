//! The bytecode module: what the assembler produces, what an `.ebc` file holds, and (once
//! verified, see [`crate::verify`]) what the VM runs.
//!
//! A module is a linked program: one or more *units* (the source modules: the program's own file
//! and everything it imports), whose code is concatenated into one instruction vector so that a
//! label, local or `mod:label`, is a single instruction index. Atoms, literals, templates,
//! patterns, clause tables and argument lists are shared tables indexed by the instructions.

use crate::isa::{ArgsId, ClausesId, Instr, Label, Opcode, Operand, OperandKind, PatId, Src};
use std::fmt;

/// First bytes of every `.ebc` file.
pub const MAGIC: &[u8; 4] = b"EMBC";
/// Bumped on any change to the file layout or the instruction table.
pub const VERSION: u16 = 2;

/// A literal, template or pattern, as a tree. Which node kinds are allowed depends on the table
/// (the verifier checks): literals use none of `Reg`/`Pin`/`Wild`, templates no `Pin`/`Wild`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Node {
    Int(i64),
    /// A float, by its IEEE 754 bits (finite; the assembler rejects anything else).
    Float(u64),
    Atom(u32),
    Binary(Vec<u8>),
    Tuple(Vec<Node>),
    /// `[items... | tail]` with at least one item; a proper list has tail `Nil`.
    List(Vec<Node>, Box<Node>),
    Nil,
    /// In a template: the register's value. In a pattern: binds the register (or, when the
    /// register occurs earlier in the same pattern, must equal what that occurrence bound).
    Reg(u8),
    /// `^rN` in a pattern: must equal the register's current value.
    Pin(u8),
    /// `_` in a pattern.
    Wild,
    /// A function reference: a label used as a value (an instruction index).
    Fun(u32),
    /// `#{k => v, ...}` in a template (built when the instruction runs; later keys win), or
    /// `#{k := p, ...}` in a pattern (the map has every key, each value matching its pattern;
    /// a key is a constant or a pinned register). Never in a literal.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// Calls `f` on this node and every node inside it.
    pub fn walk(&self, f: &mut impl FnMut(&Node)) {
        f(self);
        match self {
            Node::Tuple(items) => items.iter().for_each(|n| n.walk(f)),
            Node::List(items, tail) => {
                items.iter().for_each(|n| n.walk(f));
                tail.walk(f);
            }
            Node::Map(pairs) => pairs.iter().for_each(|(k, v)| {
                k.walk(f);
                v.walk(f);
            }),
            _ => {}
        }
    }
}

impl Node {
    /// Calls `f` on this node and every node inside it, which it may change. (Recursion is
    /// bounded by the nesting limit of source and bytecode files.)
    pub fn walk_mut(&mut self, f: &mut impl FnMut(&mut Node)) {
        f(self);
        match self {
            Node::Tuple(items) => items.iter_mut().for_each(|n| n.walk_mut(f)),
            Node::List(items, tail) => {
                items.iter_mut().for_each(|n| n.walk_mut(f));
                tail.walk_mut(f);
            }
            Node::Map(pairs) => pairs.iter_mut().for_each(|(k, v)| {
                k.walk_mut(f);
                v.walk_mut(f);
            }),
            _ => {}
        }
    }

    /// May this node be a key of a map pattern: a pinned register, or a constant (no
    /// register, `_` or map inside: a key never binds, and maps are never literals)?
    pub fn is_map_pattern_key(&self) -> bool {
        if matches!(self, Node::Pin(_)) {
            return true;
        }
        let mut ok = true;
        self.walk(&mut |x| {
            ok &= !matches!(x, Node::Reg(_) | Node::Pin(_) | Node::Wild | Node::Map(_))
        });
        ok
    }
}

/// One `| pattern [-> L]` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clause {
    pub pattern: PatId,
    /// `None`: continue after the instruction.
    pub target: Option<Label>,
}

/// The `| after T [-> L]` line of a `receive`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct After {
    /// A register, an integer constant (milliseconds, ≥ 0) or the atom `:infinity`.
    pub timeout: Src,
    pub target: Option<Label>,
}

/// The clauses of one `case` or `receive`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ClauseTable {
    pub clauses: Vec<Clause>,
    pub after: Option<After>,
}

/// One source module inside the program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unit {
    pub name: String,
    /// The source file name used in error messages (`ring.basm`).
    pub file: String,
    /// Instruction range `[start, end)` of this unit's code.
    pub start: u32,
    pub end: u32,
    pub exports: Vec<String>,
    pub imports: Vec<String>,
}

/// A named code position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelDef {
    pub name: String,
    pub unit: u32,
    pub at: Label,
}

/// A linked bytecode program. Build it with the assembler or [`Module::decode`]; run it only
/// after [`crate::verify::verify`].
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Module {
    pub atoms: Vec<String>,
    pub literals: Vec<Node>,
    pub templates: Vec<Node>,
    pub patterns: Vec<Node>,
    pub clauses: Vec<ClauseTable>,
    pub args: Vec<Vec<Src>>,
    pub units: Vec<Unit>,
    pub labels: Vec<LabelDef>,
    pub code: Vec<Instr>,
    /// The source line of each instruction (parallel to `code`; 0 when unknown).
    pub lines: Vec<u32>,
}

/// Why bytes could not be read as a module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// Byte offset in the file where the problem was found.
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {}: {}", self.offset, self.message)
    }
}

impl std::error::Error for DecodeError {}

const NO_LABEL: u32 = u32::MAX;
/// Deepest nesting a literal, template or pattern may have in a file (the decoder recurses).
pub const MAX_NODE_DEPTH: usize = 200;

mod tag {
    pub const INT: u8 = 0;
    pub const ATOM: u8 = 1;
    pub const BINARY: u8 = 2;
    pub const TUPLE: u8 = 3;
    pub const LIST: u8 = 4;
    pub const NIL: u8 = 5;
    pub const REG: u8 = 6;
    pub const PIN: u8 = 7;
    pub const WILD: u8 = 8;
    pub const FUN: u8 = 9;
    /// Eight bytes follow: the IEEE 754 bits, little-endian. (Added within version 1:
    /// files without floats read as before.)
    pub const FLOAT: u8 = 10;
    /// The number of pairs, then each key and value. (Added within version 1, as FLOAT.)
    pub const MAP: u8 = 11;
}

struct Writer {
    out: Vec<u8>,
}

impl Writer {
    fn u8(&mut self, v: u8) {
        self.out.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    fn uleb(&mut self, mut v: u64) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.out.push(byte);
                return;
            }
            self.out.push(byte | 0x80);
        }
    }
    fn sleb(&mut self, v: i64) {
        // zigzag keeps small negative numbers short
        self.uleb(((v << 1) ^ (v >> 63)) as u64);
    }
    fn len(&mut self, n: usize) {
        self.uleb(n as u64);
    }
    fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.out.extend_from_slice(b);
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    fn node(&mut self, n: &Node) {
        match n {
            Node::Int(i) => {
                self.u8(tag::INT);
                self.sleb(*i);
            }
            Node::Float(bits) => {
                self.u8(tag::FLOAT);
                self.out.extend_from_slice(&bits.to_le_bytes());
            }
            Node::Atom(a) => {
                self.u8(tag::ATOM);
                self.uleb(*a as u64);
            }
            Node::Binary(b) => {
                self.u8(tag::BINARY);
                self.bytes(b);
            }
            Node::Tuple(items) => {
                self.u8(tag::TUPLE);
                self.len(items.len());
                items.iter().for_each(|i| self.node(i));
            }
            Node::List(items, tail) => {
                self.u8(tag::LIST);
                self.len(items.len());
                items.iter().for_each(|i| self.node(i));
                self.node(tail);
            }
            Node::Nil => self.u8(tag::NIL),
            Node::Reg(r) => {
                self.u8(tag::REG);
                self.uleb(*r as u64);
            }
            Node::Pin(r) => {
                self.u8(tag::PIN);
                self.uleb(*r as u64);
            }
            Node::Wild => self.u8(tag::WILD),
            Node::Fun(at) => {
                self.u8(tag::FUN);
                self.uleb(*at as u64);
            }
            Node::Map(pairs) => {
                self.u8(tag::MAP);
                self.len(pairs.len());
                for (k, v) in pairs {
                    self.node(k);
                    self.node(v);
                }
            }
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

type Res<T> = Result<T, DecodeError>;

impl<'a> Reader<'a> {
    fn err<T>(&self, message: impl Into<String>) -> Res<T> {
        Err(DecodeError {
            offset: self.pos,
            message: message.into(),
        })
    }
    fn u8(&mut self, what: &str) -> Res<u8> {
        match self.bytes.get(self.pos) {
            Some(b) => {
                self.pos += 1;
                Ok(*b)
            }
            None => self.err(format!("truncated {what}")),
        }
    }
    fn take(&mut self, n: usize, what: &str) -> Res<&'a [u8]> {
        if self.bytes.len() - self.pos < n {
            return self.err(format!("truncated {what}"));
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u16(&mut self, what: &str) -> Res<u16> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, what: &str) -> Res<u32> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn uleb(&mut self, what: &str) -> Res<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.u8(what)?;
            if shift == 63 && b > 1 {
                return self.err(format!("{what}: number too large"));
            }
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        self.err(format!("{what}: number too large"))
    }
    fn u32_leb(&mut self, what: &str) -> Res<u32> {
        let at = self.pos;
        let v = self.uleb(what)?;
        u32::try_from(v).map_err(|_| DecodeError {
            offset: at,
            message: format!("{what}: {v} is out of range"),
        })
    }
    fn sleb(&mut self, what: &str) -> Res<i64> {
        let z = self.uleb(what)?;
        Ok(((z >> 1) as i64) ^ -((z & 1) as i64))
    }
    /// A count of items that each take at least one byte: bounded by what is left, so a
    /// corrupt count cannot make us reserve gigabytes.
    fn count(&mut self, what: &str) -> Res<usize> {
        let at = self.pos;
        let n = self.uleb(what)?;
        if n > (self.bytes.len() - self.pos) as u64 {
            return Err(DecodeError {
                offset: at,
                message: format!("{what}: count {n} exceeds the file"),
            });
        }
        Ok(n as usize)
    }
    fn bytes(&mut self, what: &str) -> Res<&'a [u8]> {
        let n = self.count(what)?;
        self.take(n, what)
    }
    fn str(&mut self, what: &str) -> Res<String> {
        let at = self.pos;
        let b = self.bytes(what)?;
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError {
            offset: at,
            message: format!("{what} is not valid UTF-8"),
        })
    }
    fn reg(&mut self, what: &str) -> Res<u8> {
        let at = self.pos;
        let r = self.uleb(what)?;
        u8::try_from(r).map_err(|_| DecodeError {
            offset: at,
            message: format!("register r{r} out of range (r0..r255)"),
        })
    }
    fn node(&mut self, depth: usize) -> Res<Node> {
        if depth > MAX_NODE_DEPTH {
            return self.err(format!("term nested deeper than {MAX_NODE_DEPTH}"));
        }
        let at = self.pos;
        Ok(match self.u8("term")? {
            tag::INT => Node::Int(self.sleb("integer")?),
            tag::FLOAT => {
                let b = self.take(8, "float")?;
                let bits = u64::from_le_bytes(b.try_into().expect("8 bytes"));
                if !f64::from_bits(bits).is_finite() {
                    return Err(DecodeError {
                        offset: at,
                        message: "a float that is infinite or NaN".into(),
                    });
                }
                Node::Float(bits)
            }
            tag::ATOM => Node::Atom(self.u32_leb("atom index")?),
            tag::BINARY => Node::Binary(self.bytes("binary")?.to_vec()),
            tag::TUPLE => {
                let n = self.count("tuple size")?;
                let items = (0..n)
                    .map(|_| self.node(depth + 1))
                    .collect::<Res<Vec<_>>>()?;
                Node::Tuple(items)
            }
            tag::LIST => {
                let n = self.count("list length")?;
                if n == 0 {
                    return self.err("list node without items");
                }
                let items = (0..n)
                    .map(|_| self.node(depth + 1))
                    .collect::<Res<Vec<_>>>()?;
                Node::List(items, Box::new(self.node(depth + 1)?))
            }
            tag::NIL => Node::Nil,
            tag::REG => Node::Reg(self.reg("register")?),
            tag::PIN => Node::Pin(self.reg("register")?),
            tag::WILD => Node::Wild,
            tag::FUN => Node::Fun(self.u32_leb("function reference")?),
            tag::MAP => {
                let n = self.count("map size")?;
                let pairs = (0..n)
                    .map(|_| Ok((self.node(depth + 1)?, self.node(depth + 1)?)))
                    .collect::<Res<Vec<_>>>()?;
                Node::Map(pairs)
            }
            t => {
                return Err(DecodeError {
                    offset: at,
                    message: format!("unknown term tag {t}"),
                })
            }
        })
    }
    fn opt_label(&mut self, what: &str) -> Res<Option<u32>> {
        let v = self.u32(what)?;
        Ok((v != NO_LABEL).then_some(v))
    }
}

impl Module {
    /// Byte offset of each instruction in the encoded code section, plus the end offset.
    fn code_offsets(&self) -> Vec<u32> {
        let mut offsets = Vec::with_capacity(self.code.len() + 1);
        let mut w = Writer { out: Vec::new() };
        let mut at = 0u32;
        for instr in &self.code {
            offsets.push(at);
            w.out.clear();
            encode_instr(&mut w, instr, &|l| l.0);
            at += w.out.len() as u32;
        }
        offsets.push(at);
        offsets
    }

    /// Serialises the module in the `.ebc` format.
    pub fn encode(&self) -> Vec<u8> {
        let offsets = self.code_offsets();
        // Labels past the end (only in unverified modules) keep a recognisable out-of-range value.
        let off = |l: Label| offsets.get(l.0 as usize).copied().unwrap_or(NO_LABEL - 1);
        let opt = |l: Option<Label>| l.map_or(NO_LABEL, off);
        let mut w = Writer { out: Vec::new() };
        w.out.extend_from_slice(MAGIC);
        w.out.extend_from_slice(&VERSION.to_le_bytes());
        w.out.extend_from_slice(&0u16.to_le_bytes());

        w.len(self.atoms.len());
        self.atoms.iter().for_each(|a| w.str(a));
        for table in [&self.literals, &self.templates, &self.patterns] {
            w.len(table.len());
            table.iter().for_each(|n| w.node(n));
        }
        w.len(self.clauses.len());
        for t in &self.clauses {
            w.len(t.clauses.len());
            for c in &t.clauses {
                w.uleb(c.pattern.0 as u64);
                w.u32(opt(c.target));
            }
            match &t.after {
                None => w.u8(0),
                Some(a) => {
                    w.u8(1);
                    w.uleb(a.timeout.raw() as u64);
                    w.u32(opt(a.target));
                }
            }
        }
        w.len(self.args.len());
        for list in &self.args {
            w.len(list.len());
            list.iter().for_each(|s| w.uleb(s.raw() as u64));
        }
        w.len(self.units.len());
        for u in &self.units {
            w.str(&u.name);
            w.str(&u.file);
            w.u32(off(Label(u.start)));
            w.u32(off(Label(u.end)));
            w.len(u.exports.len());
            u.exports.iter().for_each(|e| w.str(e));
            w.len(u.imports.len());
            u.imports.iter().for_each(|e| w.str(e));
        }
        w.len(self.labels.len());
        for l in &self.labels {
            w.str(&l.name);
            w.uleb(l.unit as u64);
            w.u32(off(l.at));
        }
        let mut code = Writer { out: Vec::new() };
        for instr in &self.code {
            encode_instr(&mut code, instr, &off);
        }
        w.bytes(&code.out);
        // Line table, run-length encoded: (instruction count, line) pairs.
        let mut runs: Vec<(u32, u32)> = Vec::new();
        for &line in &self.lines {
            match runs.last_mut() {
                Some((n, l)) if *l == line => *n += 1,
                _ => runs.push((1, line)),
            }
        }
        w.len(runs.len());
        for (n, line) in runs {
            w.uleb(n as u64);
            w.uleb(line as u64);
        }
        w.out
    }

    /// Reads an `.ebc` file. This checks only that the bytes are well formed; call
    /// [`crate::verify::verify`] before running the result.
    pub fn decode(bytes: &[u8]) -> Result<Module, DecodeError> {
        let mut r = Reader { bytes, pos: 0 };
        if r.take(4, "header").ok() != Some(MAGIC.as_slice()) {
            return Err(DecodeError {
                offset: 0,
                message: "not an Ember bytecode file (bad magic)".into(),
            });
        }
        let version = r.u16("header")?;
        if version != VERSION {
            return Err(DecodeError {
                offset: 4,
                message: format!(
                    "unsupported bytecode version {version} (this Ember reads {VERSION})"
                ),
            });
        }
        if r.u16("header")? != 0 {
            return Err(DecodeError {
                offset: 6,
                message: "reserved header field is not zero".into(),
            });
        }
        let mut m = Module::default();
        let n = r.count("atom table")?;
        for _ in 0..n {
            m.atoms.push(r.str("atom")?);
        }
        for which in 0..3 {
            let n = r.count("term table")?;
            let mut table = Vec::with_capacity(n);
            for _ in 0..n {
                table.push(r.node(0)?);
            }
            match which {
                0 => m.literals = table,
                1 => m.templates = table,
                _ => m.patterns = table,
            }
        }
        // Labels are byte offsets in the file; they are mapped to instruction indices once the
        // code has been read. Until then they are kept raw.
        let mut raw_clause_labels: Vec<(usize, Option<usize>, u32)> = Vec::new();
        let n = r.count("clause tables")?;
        for t in 0..n {
            let mut table = ClauseTable::default();
            let k = r.count("clause count")?;
            for c in 0..k {
                let pattern = PatId(r.u32_leb("pattern index")?);
                if let Some(l) = r.opt_label("clause target")? {
                    raw_clause_labels.push((t, Some(c), l));
                }
                table.clauses.push(Clause {
                    pattern,
                    target: None,
                });
            }
            match r.u8("clause table")? {
                0 => {}
                1 => {
                    let at = r.pos;
                    let raw = r.u32_leb("timeout")?;
                    let timeout = Src::from_raw(raw).ok_or_else(|| DecodeError {
                        offset: at,
                        message: format!("bad timeout operand {raw:#x}"),
                    })?;
                    if let Some(l) = r.opt_label("after target")? {
                        raw_clause_labels.push((t, None, l));
                    }
                    table.after = Some(After {
                        timeout,
                        target: None,
                    });
                }
                b => return r.err(format!("bad after flag {b}")),
            }
            m.clauses.push(table);
        }
        let n = r.count("argument lists")?;
        for _ in 0..n {
            let k = r.count("argument count")?;
            let mut list = Vec::with_capacity(k);
            for _ in 0..k {
                let at = r.pos;
                let raw = r.u32_leb("argument")?;
                list.push(Src::from_raw(raw).ok_or_else(|| DecodeError {
                    offset: at,
                    message: format!("bad argument operand {raw:#x}"),
                })?);
            }
            m.args.push(list);
        }
        let n = r.count("unit table")?;
        let mut raw_units = Vec::new();
        for _ in 0..n {
            let name = r.str("unit name")?;
            let file = r.str("unit file")?;
            let start = r.u32("unit start")?;
            let end = r.u32("unit end")?;
            let k = r.count("exports")?;
            let exports = (0..k).map(|_| r.str("export")).collect::<Res<Vec<_>>>()?;
            let k = r.count("imports")?;
            let imports = (0..k).map(|_| r.str("import")).collect::<Res<Vec<_>>>()?;
            raw_units.push((start, end));
            m.units.push(Unit {
                name,
                file,
                start: 0,
                end: 0,
                exports,
                imports,
            });
        }
        let n = r.count("label table")?;
        let mut raw_labels = Vec::new();
        for _ in 0..n {
            let name = r.str("label name")?;
            let unit = r.u32_leb("label unit")?;
            raw_labels.push(r.u32("label offset")?);
            m.labels.push(LabelDef {
                name,
                unit,
                at: Label(0),
            });
        }
        let code_bytes = r.bytes("code")?;
        let code_base = r.pos - code_bytes.len();
        // Decode instructions with raw byte-offset labels, remembering where each starts.
        let mut starts: Vec<u32> = Vec::new();
        let mut raw_code = Vec::new();
        let mut cr = Reader {
            bytes: code_bytes,
            pos: 0,
        };
        while cr.pos < code_bytes.len() {
            starts.push(cr.pos as u32);
            let instr = decode_instr(&mut cr).map_err(|e| DecodeError {
                offset: code_base + e.offset,
                message: e.message,
            })?;
            raw_code.push(instr);
        }
        let end = code_bytes.len() as u32;
        let to_index = |off: u32, what: &str| -> Res<Label> {
            if off == end {
                return Ok(Label(starts.len() as u32));
            }
            match starts.binary_search(&off) {
                Ok(i) => Ok(Label(i as u32)),
                Err(_) if off > end => Err(DecodeError {
                    offset: code_base,
                    message: format!("{what} at byte {off} is outside the code ({end} bytes)"),
                }),
                Err(_) => Err(DecodeError {
                    offset: code_base + off as usize,
                    message: format!("{what} at byte {off} is in the middle of an instruction"),
                }),
            }
        };
        for (i, instr) in raw_code.iter().enumerate() {
            let mut ops = instr.operands();
            for op in ops.iter_mut() {
                if let Operand::Label(l) = op {
                    let target = to_index(l.0, "jump target").map_err(|e| DecodeError {
                        offset: e.offset,
                        message: format!("instruction {i}: {}", e.message),
                    })?;
                    *l = target;
                }
            }
            m.code
                .push(Instr::from_operands(instr.opcode(), &ops).expect("same shape"));
        }
        for (t, c, raw) in raw_clause_labels {
            let l = to_index(raw, "clause target")?;
            match c {
                Some(c) => m.clauses[t].clauses[c].target = Some(l),
                None => m.clauses[t].after.as_mut().expect("after").target = Some(l),
            }
        }
        for (u, (start, end)) in m.units.iter_mut().zip(raw_units) {
            u.start = to_index(start, "unit start")?.0;
            u.end = to_index(end, "unit end")?.0;
        }
        for (l, raw) in m.labels.iter_mut().zip(raw_labels) {
            l.at = to_index(raw, "label")?;
        }
        let n = r.count("line table")?;
        for _ in 0..n {
            let at = r.pos;
            let k = r.uleb("line run")?;
            let line = r.u32_leb("line")?;
            if k > (m.code.len() - m.lines.len()) as u64 {
                return Err(DecodeError {
                    offset: at,
                    message: "line table covers more instructions than the code has".into(),
                });
            }
            m.lines.extend(std::iter::repeat_n(line, k as usize));
        }
        if r.pos != bytes.len() {
            return r.err(format!(
                "{} unexpected bytes after the line table",
                bytes.len() - r.pos
            ));
        }
        Ok(m)
    }
}

fn encode_instr(w: &mut Writer, instr: &Instr, label_offset: &dyn Fn(Label) -> u32) {
    w.u8(instr.opcode() as u8);
    for op in instr.operands() {
        match op {
            Operand::Reg(r) => w.uleb(r.0 as u64),
            Operand::Src(s) => w.uleb(s.raw() as u64),
            Operand::Label(l) => w.u32(label_offset(l)),
            Operand::Pattern(PatId(i))
            | Operand::Clauses(ClausesId(i))
            | Operand::Args(ArgsId(i)) => w.uleb(i as u64),
        }
    }
}

/// Decodes one instruction; labels stay raw byte offsets.
fn decode_instr(r: &mut Reader) -> Res<Instr> {
    let at = r.pos;
    let byte = r.u8("instruction")?;
    let op = Opcode::from_u8(byte).ok_or_else(|| DecodeError {
        offset: at,
        message: format!("unknown opcode {byte:#04x}"),
    })?;
    let mut ops: smallvec::SmallVec<[Operand; 4]> = smallvec::SmallVec::new();
    for spec in op.info().operands {
        let at = r.pos;
        ops.push(match spec.kind {
            OperandKind::Dst => Operand::Reg(crate::isa::Reg(r.reg("register")?)),
            OperandKind::Src | OperandKind::Num => {
                let raw = r.u32_leb("operand")?;
                Operand::Src(Src::from_raw(raw).ok_or_else(|| DecodeError {
                    offset: at,
                    message: format!(
                        "`{}`: bad operand {raw:#x} (register out of range or unknown kind)",
                        op.mnemonic()
                    ),
                })?)
            }
            OperandKind::Label => Operand::Label(Label(r.u32("label")?)),
            OperandKind::Pattern => Operand::Pattern(PatId(r.u32_leb("pattern index")?)),
            OperandKind::Clauses => Operand::Clauses(ClausesId(r.u32_leb("clause table index")?)),
            OperandKind::Args => Operand::Args(ArgsId(r.u32_leb("argument list index")?)),
        });
    }
    Ok(Instr::from_operands(op, &ops).expect("operands built from the opcode's own table"))
}
