//! The syntax tree of a .basm file, as produced by [`crate::parser::parse`].
//!
//! Every node carries a [`Span`]: byte offsets into the source text. The tree is faithful to the
//! source: the parser does not know the instruction table, so any mnemonic with any operands is
//! accepted here, and `^rN` or `_` may appear anywhere an operand may; the assembler checks them.

use std::fmt;

/// A half-open byte range `start..end` into the source text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }

    /// The span from the start of `self` to the end of `other`.
    pub fn to(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    pub fn len(self) -> usize {
        self.end.saturating_sub(self.start)
    }

    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

/// A whole source file: its items in source order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Program {
    pub items: Vec<Item>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// `.module NAME`
    Module { name: String, span: Span },
    /// `.export a, b, ...` (one span per name)
    Export {
        names: Vec<(String, Span)>,
        span: Span,
    },
    /// `.import x, y, ...` (one span per name)
    Import {
        names: Vec<(String, Span)>,
        span: Span,
    },
    /// `.file "NAME"`
    File { name: String, span: Span },
    /// `.line N`
    Line { line: u32, span: Span },
    /// `name:` (the span covers the name and the colon)
    Label { name: String, span: Span },
    /// An instruction with the clause lines that follow it.
    Instr(Instr),
}

impl Item {
    pub fn span(&self) -> Span {
        match self {
            Item::Module { span, .. }
            | Item::Export { span, .. }
            | Item::Import { span, .. }
            | Item::File { span, .. }
            | Item::Line { span, .. }
            | Item::Label { span, .. } => *span,
            Item::Instr(i) => i.span,
        }
    }
}

/// `mnemonic op, op, ...` followed by zero or more clause lines (`| ...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instr {
    pub mnemonic: String,
    pub mnemonic_span: Span,
    pub operands: Vec<Expr>,
    pub clauses: Vec<Clause>,
    /// The instruction's own line: from the mnemonic to the end of the last operand (clauses
    /// have their own spans and are not included).
    pub span: Span,
}

/// `| PATTERN [-> LABEL]` or `| after EXPR [-> LABEL]`; the span runs from `|` to the end of
/// the clause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clause {
    pub kind: ClauseKind,
    pub target: Option<LabelRef>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClauseKind {
    Pattern(Expr),
    After(Expr),
}

/// `label` (module `None`) or `mod:label` (module `Some`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelRef {
    pub module: Option<String>,
    pub name: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExprKind {
    /// `r5`
    Reg(u8),
    /// `^r5`
    Pin(u8),
    /// `42`, `-0x1f`
    Int(i64),
    /// `1.5`, `-2.0e-3`: the IEEE 754 bits
    Float(u64),
    /// `:ok`, `:"two words"` (the name, without colon or quotes, escapes resolved)
    Atom(String),
    /// `"text"` (the bytes, escapes resolved)
    Str(Vec<u8>),
    /// `{a, b}`
    Tuple(Vec<Expr>),
    /// `[a, b]` (tail `None`) or `[a, b | t]` (tail `Some`)
    List(Vec<Expr>, Option<Box<Expr>>),
    /// `_`
    Wild,
    /// `label` or `mod:label`
    Label(LabelRef),
    /// `#{k => v, ...}` (a template) or `#{k := p, ...}` (a pattern)
    Map(Vec<MapPair>),
}

/// One `key => value` or `key := pattern` of a map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapPair {
    pub key: Expr,
    pub value: Expr,
    /// `:=` (a pattern's association) rather than `=>`.
    pub exact: bool,
    /// The `=>` or `:=` token.
    pub op_span: Span,
}
