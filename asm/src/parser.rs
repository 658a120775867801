//! The .basm parser: tokens → [`Program`], with error recovery by lines.
//!
//! The grammar, one line at a time:
//!
//! ```text
//! line     := label* (directive | instr | clause)?  (end of line)
//! label    := IDENT ':'
//! instr    := IDENT (expr (',' expr)*)?
//! clause   := '|' (expr | 'after' expr) ('->' labelref)?
//! expr     := REG | '^' REG | INT | ATOM | STRING | '_' | labelref
//!           | '{' (expr (',' expr)*)? '}'
//!           | '[' (expr (',' expr)* ('|' expr)?)? ']'
//! labelref := IDENT | IDENT ATOM        (`mod:label`: no gap between the two tokens)
//! ```
//!
//! `main:end` (a label immediately followed by an instruction, no blank) is read as the label
//! `main` and the instruction `end`. A clause line belongs to the instruction before it (only
//! blank lines, comments, `.file` and `.line` may come in between). On an error the parser
//! records one diagnostic and skips to the next line, so independent errors on different lines
//! are all reported. It never panics.

use crate::ast::*;
use crate::diag::{self, Diagnostic};
use crate::lexer::{lex, Token, TokenKind};

/// How deeply tuples and lists may nest (deeper input is reported, not a stack overflow).
pub const MAX_NESTING: usize = 200;

/// Parses a whole .basm source. Returns everything that parsed, and the diagnostics in source
/// order (at most one per line).
pub fn parse(source: &str) -> (Program, Vec<Diagnostic>) {
    let mut p = Parser {
        src: source,
        toks: lex(source),
        pos: 0,
        last_end: 0,
        items: Vec::new(),
        diags: Vec::new(),
        attach: Attach::Nothing,
    };
    while p.pos < p.toks.len() {
        let clause_line = matches!(p.peek(), Some(TokenKind::Pipe));
        if let Err(d) = p.line() {
            p.diags.push(d);
            p.skip_line();
            if !clause_line {
                // Clauses after a broken line are still parsed (and their own errors reported)
                // but attached nowhere and not reported as orphans.
                p.attach = Attach::Broken;
            }
        }
    }
    (Program { items: p.items }, p.diags)
}

/// What a clause line would attach to.
enum Attach {
    /// Nothing before it: a clause here is an error.
    Nothing,
    /// The instruction at this index in `items`.
    Instr(usize),
    /// A label came between the instruction and the clause: an error.
    Label(String),
    /// The line before failed to parse: drop the clause silently.
    Broken,
}

struct Parser<'s> {
    src: &'s str,
    toks: Vec<Token>,
    pos: usize,
    /// The end of the last token consumed (where "found end of line" points).
    last_end: usize,
    items: Vec<Item>,
    diags: Vec<Diagnostic>,
    attach: Attach,
}

type PResult<T> = Result<T, Diagnostic>;

impl Parser<'_> {
    // ---- token access -------------------------------------------------------------------

    fn peek(&self) -> Option<&TokenKind> {
        self.toks.get(self.pos).map(|t| &t.kind)
    }

    fn peek_at(&self, n: usize) -> Option<&Token> {
        self.toks.get(self.pos + n)
    }

    fn bump(&mut self) -> Token {
        let t = self.toks[self.pos].clone();
        self.pos += 1;
        self.last_end = t.span.end;
        t
    }

    /// At a newline or the end of the file.
    fn at_eol(&self) -> bool {
        matches!(self.peek(), None | Some(TokenKind::Newline))
    }

    /// Consumes the end of the line, or reports what is there instead.
    fn end_line(&mut self, expected: &str) -> PResult<()> {
        match self.peek() {
            None => Ok(()),
            Some(TokenKind::Newline) => {
                self.bump();
                Ok(())
            }
            Some(_) => Err(self.unexpected(expected)),
        }
    }

    fn skip_line(&mut self) {
        while self.pos < self.toks.len() {
            let nl = matches!(self.toks[self.pos].kind, TokenKind::Newline);
            self.pos += 1;
            if nl {
                break;
            }
        }
    }

    /// "expected X, found Y" at the next token; a lexer error token reports its own message.
    fn unexpected(&self, expected: &str) -> Diagnostic {
        match self.toks.get(self.pos) {
            Some(Token {
                kind: TokenKind::Error(msg),
                span,
            }) => Diagnostic::new(*span, msg.clone()),
            Some(t) if !matches!(t.kind, TokenKind::Newline) => Diagnostic::new(
                t.span,
                format!("expected {expected}, found {}", self.describe(t)),
            ),
            _ => Diagnostic::new(
                Span::new(self.last_end, self.last_end),
                format!("expected {expected}, found end of line"),
            ),
        }
    }

    fn describe(&self, t: &Token) -> String {
        diag::quote(self.src.get(t.span.start..t.span.end).unwrap_or(""))
    }

    // ---- lines --------------------------------------------------------------------------

    fn line(&mut self) -> PResult<()> {
        loop {
            let Some(tok) = self.toks.get(self.pos) else {
                return Ok(());
            };
            let span = tok.span;
            match &tok.kind {
                TokenKind::Newline => {
                    self.bump();
                    return Ok(());
                }
                TokenKind::Ident(name) => {
                    let name = name.clone();
                    match self.peek_at(1) {
                        Some(Token {
                            kind: TokenKind::Colon,
                            span: colon,
                        }) => {
                            let colon = *colon;
                            self.bump();
                            self.bump();
                            self.label_def(name, span.to(colon));
                        }
                        Some(Token {
                            kind: TokenKind::Atom(mnemonic),
                            span: atom,
                        }) if atom.start == span.end => {
                            // `main:end` — a label and an instruction with no blank between.
                            let (mnemonic, atom) = (mnemonic.clone(), *atom);
                            self.bump();
                            self.bump();
                            self.label_def(name, Span::new(span.start, atom.start + 1));
                            return self.instr(mnemonic, Span::new(atom.start + 1, atom.end));
                        }
                        _ => {
                            self.bump();
                            return self.instr(name, span);
                        }
                    }
                }
                TokenKind::Pipe => return self.clause_line(),
                TokenKind::Module => return self.module(),
                TokenKind::Export => return self.names(true),
                TokenKind::Import => return self.names(false),
                TokenKind::File => return self.file(),
                TokenKind::Line => return self.line_directive(),
                TokenKind::Directive(name) => {
                    return Err(Diagnostic::new(
                        span,
                        format!("unknown directive `.{name}`"),
                    ))
                }
                _ => return Err(self.unexpected("an instruction, a label or a directive")),
            }
        }
    }

    fn label_def(&mut self, name: String, span: Span) {
        // With no instruction before it, a clause after a label has simply no instruction.
        if !matches!(self.attach, Attach::Nothing) {
            self.attach = Attach::Label(name.clone());
        }
        self.items.push(Item::Label { name, span });
    }

    fn instr(&mut self, mnemonic: String, mnemonic_span: Span) -> PResult<()> {
        self.attach = Attach::Broken;
        let mut operands = Vec::new();
        // The first clause may share the instruction's line (`receive | {:ok, r1}`).
        let clause_here = |p: &Self| matches!(p.peek(), Some(TokenKind::Pipe));
        if !self.at_eol() && !clause_here(self) {
            loop {
                operands.push(self.expr(0)?);
                match self.peek() {
                    Some(TokenKind::Comma) => {
                        self.bump();
                    }
                    _ if self.at_eol() || clause_here(self) => break,
                    _ => return Err(self.unexpected("`,` or end of line")),
                }
            }
        }
        let clause_follows = clause_here(self);
        if !clause_follows {
            self.end_line("`,` or end of line")?;
        }
        let end = operands.last().map_or(mnemonic_span.end, |e| e.span.end);
        self.attach = Attach::Instr(self.items.len());
        self.items.push(Item::Instr(Instr {
            mnemonic,
            mnemonic_span,
            operands,
            clauses: Vec::new(),
            span: Span::new(mnemonic_span.start, end),
        }));
        if clause_follows {
            return self.clause_line();
        }
        Ok(())
    }

    fn clause_line(&mut self) -> PResult<()> {
        let pipe = self.bump().span;
        let kind = match self.peek() {
            Some(TokenKind::Ident(k)) if k == "after" => {
                self.bump();
                if matches!(self.peek(), Some(TokenKind::Arrow)) || self.at_eol() {
                    return Err(self.unexpected("a timeout after `after`"));
                }
                ClauseKind::After(self.expr(0)?)
            }
            Some(TokenKind::Arrow) => return Err(self.unexpected("a pattern after `|`")),
            _ if self.at_eol() => return Err(self.unexpected("a pattern after `|`")),
            _ => ClauseKind::Pattern(self.expr(0)?),
        };
        let target = if matches!(self.peek(), Some(TokenKind::Arrow)) {
            self.bump();
            let label = self.label_ref("a label after `->`")?;
            self.end_line("end of line")?;
            Some(label)
        } else {
            self.end_line("`->` or end of line")?;
            None
        };
        let end = match (&target, &kind) {
            (Some(l), _) => l.span.end,
            (None, ClauseKind::Pattern(e) | ClauseKind::After(e)) => e.span.end,
        };
        let clause = Clause {
            kind,
            target,
            span: Span::new(pipe.start, end),
        };
        match &self.attach {
            Attach::Instr(i) => {
                if let Some(Item::Instr(instr)) = self.items.get_mut(*i) {
                    instr.clauses.push(clause);
                }
                Ok(())
            }
            Attach::Broken => Ok(()),
            Attach::Nothing => Err(Diagnostic::new(
                pipe,
                "clause line without a preceding instruction",
            )),
            Attach::Label(name) => Err(Diagnostic::new(
                pipe,
                format!("clause line separated from its instruction by label `{name}`"),
            )),
        }
    }

    // ---- directives ---------------------------------------------------------------------

    fn module(&mut self) -> PResult<()> {
        let dir = self.bump().span;
        let (name, span) = self.ident("a module name after `.module`")?;
        self.end_line("end of line")?;
        self.attach = Attach::Nothing;
        self.items.push(Item::Module {
            name,
            span: dir.to(span),
        });
        Ok(())
    }

    /// `.export a, b` (`export`) or `.import x, y`.
    fn names(&mut self, export: bool) -> PResult<()> {
        let dir = self.bump().span;
        let what = if export {
            "a label name after `.export`"
        } else {
            "a module name after `.import`"
        };
        let mut names = vec![self.ident(what)?];
        while matches!(self.peek(), Some(TokenKind::Comma)) {
            self.bump();
            let what = if export {
                "a label name"
            } else {
                "a module name"
            };
            names.push(self.ident(what)?);
        }
        self.end_line("`,` or end of line")?;
        let span = dir.to(names[names.len() - 1].1);
        self.attach = Attach::Nothing;
        self.items.push(if export {
            Item::Export { names, span }
        } else {
            Item::Import { names, span }
        });
        Ok(())
    }

    fn file(&mut self) -> PResult<()> {
        let dir = self.bump().span;
        let (bytes, span) = match self.peek() {
            Some(TokenKind::Str(b)) => {
                let b = b.clone();
                (b, self.bump().span)
            }
            _ => return Err(self.unexpected("a string after `.file`")),
        };
        let name = String::from_utf8(bytes)
            .map_err(|_| Diagnostic::new(span, "file name is not valid UTF-8"))?;
        self.end_line("end of line")?;
        self.items.push(Item::File {
            name,
            span: dir.to(span),
        });
        Ok(())
    }

    fn line_directive(&mut self) -> PResult<()> {
        let dir = self.bump().span;
        let (value, span) = match self.peek() {
            Some(TokenKind::Int(v)) => {
                let v = *v;
                (v, self.bump().span)
            }
            _ => return Err(self.unexpected("a line number after `.line`")),
        };
        let line =
            u32::try_from(value).map_err(|_| Diagnostic::new(span, "line number out of range"))?;
        self.end_line("end of line")?;
        self.items.push(Item::Line {
            line,
            span: dir.to(span),
        });
        Ok(())
    }

    fn ident(&mut self, expected: &str) -> PResult<(String, Span)> {
        match self.peek() {
            Some(TokenKind::Ident(name)) => {
                let name = name.clone();
                Ok((name, self.bump().span))
            }
            _ => Err(self.unexpected(expected)),
        }
    }

    // ---- operands and patterns ----------------------------------------------------------

    /// `label` or `mod:label` (the atom token must touch the identifier).
    fn label_ref(&mut self, expected: &str) -> PResult<LabelRef> {
        let (name, span) = self.ident(expected)?;
        if let Some(Token {
            kind: TokenKind::Atom(label),
            span: atom,
        }) = self.toks.get(self.pos)
        {
            if atom.start == span.end {
                let (label, atom) = (label.clone(), *atom);
                self.bump();
                return Ok(LabelRef {
                    module: Some(name),
                    name: label,
                    span: span.to(atom),
                });
            }
        }
        Ok(LabelRef {
            module: None,
            name,
            span,
        })
    }

    fn expr(&mut self, depth: usize) -> PResult<Expr> {
        let Some(tok) = self.toks.get(self.pos) else {
            return Err(self.unexpected("an operand"));
        };
        let span = tok.span;
        let kind = match &tok.kind {
            TokenKind::Reg(r) => ExprKind::Reg(*r),
            TokenKind::Int(i) => ExprKind::Int(*i),
            TokenKind::Float(bits) => ExprKind::Float(*bits),
            TokenKind::Atom(a) | TokenKind::QuotedAtom(a) => ExprKind::Atom(a.clone()),
            TokenKind::Str(s) => ExprKind::Str(s.clone()),
            TokenKind::Underscore => ExprKind::Wild,
            TokenKind::Caret => {
                self.bump();
                return match self.peek() {
                    Some(TokenKind::Reg(r)) => {
                        let r = *r;
                        let reg = self.bump().span;
                        Ok(Expr {
                            kind: ExprKind::Pin(r),
                            span: span.to(reg),
                        })
                    }
                    _ => Err(self.unexpected("a register after `^`")),
                };
            }
            TokenKind::Ident(_) => {
                let l = self.label_ref("a label")?;
                return Ok(Expr {
                    span: l.span,
                    kind: ExprKind::Label(l),
                });
            }
            TokenKind::LBrace | TokenKind::LBracket | TokenKind::MapOpen
                if depth >= MAX_NESTING =>
            {
                return Err(Diagnostic::new(
                    span,
                    format!(
                        "tuples, lists and maps nested too deeply (more than {MAX_NESTING} levels)"
                    ),
                ));
            }
            TokenKind::LBrace => return self.tuple(depth),
            TokenKind::MapOpen => return self.map(depth),
            TokenKind::LBracket => return self.list(depth),
            _ => return Err(self.unexpected("an operand")),
        };
        self.bump();
        Ok(Expr { kind, span })
    }

    fn tuple(&mut self, depth: usize) -> PResult<Expr> {
        let open = self.bump().span;
        let unclosed =
            || Diagnostic::new(open, "unclosed tuple: `{` has no matching `}` on its line");
        let mut elems = Vec::new();
        if matches!(self.peek(), Some(TokenKind::RBrace)) {
            let close = self.bump().span;
            return Ok(Expr {
                kind: ExprKind::Tuple(elems),
                span: open.to(close),
            });
        }
        loop {
            if self.at_eol() {
                return Err(unclosed());
            }
            elems.push(self.expr(depth + 1)?);
            match self.peek() {
                Some(TokenKind::Comma) => {
                    self.bump();
                }
                Some(TokenKind::RBrace) => {
                    let close = self.bump().span;
                    return Ok(Expr {
                        kind: ExprKind::Tuple(elems),
                        span: open.to(close),
                    });
                }
                _ if self.at_eol() => return Err(unclosed()),
                _ => return Err(self.unexpected("`,` or `}`")),
            }
        }
    }

    fn map(&mut self, depth: usize) -> PResult<Expr> {
        let open = self.bump().span;
        let unclosed =
            || Diagnostic::new(open, "unclosed map: `#{` has no matching `}` on its line");
        let mut pairs = Vec::new();
        if matches!(self.peek(), Some(TokenKind::RBrace)) {
            let close = self.bump().span;
            return Ok(Expr {
                kind: ExprKind::Map(pairs),
                span: open.to(close),
            });
        }
        loop {
            if self.at_eol() {
                return Err(unclosed());
            }
            let key = self.expr(depth + 1)?;
            let exact = match self.peek() {
                Some(TokenKind::FatArrow) => false,
                Some(TokenKind::ColonEq) => true,
                _ if self.at_eol() => return Err(unclosed()),
                _ => return Err(self.unexpected("`=>` or `:=`")),
            };
            let op_span = self.bump().span;
            if self.at_eol() {
                return Err(unclosed());
            }
            let value = self.expr(depth + 1)?;
            pairs.push(MapPair {
                key,
                value,
                exact,
                op_span,
            });
            match self.peek() {
                Some(TokenKind::Comma) => {
                    self.bump();
                }
                Some(TokenKind::RBrace) => {
                    let close = self.bump().span;
                    return Ok(Expr {
                        kind: ExprKind::Map(pairs),
                        span: open.to(close),
                    });
                }
                _ if self.at_eol() => return Err(unclosed()),
                _ => return Err(self.unexpected("`,` or `}`")),
            }
        }
    }

    fn list(&mut self, depth: usize) -> PResult<Expr> {
        let open = self.bump().span;
        let unclosed =
            || Diagnostic::new(open, "unclosed list: `[` has no matching `]` on its line");
        let mut elems = Vec::new();
        if matches!(self.peek(), Some(TokenKind::RBracket)) {
            let close = self.bump().span;
            return Ok(Expr {
                kind: ExprKind::List(elems, None),
                span: open.to(close),
            });
        }
        loop {
            if self.at_eol() {
                return Err(unclosed());
            }
            elems.push(self.expr(depth + 1)?);
            match self.peek() {
                Some(TokenKind::Comma) => {
                    self.bump();
                }
                Some(TokenKind::RBracket) => {
                    let close = self.bump().span;
                    return Ok(Expr {
                        kind: ExprKind::List(elems, None),
                        span: open.to(close),
                    });
                }
                Some(TokenKind::Pipe) => {
                    self.bump();
                    if self.at_eol() {
                        return Err(unclosed());
                    }
                    let tail = self.expr(depth + 1)?;
                    return match self.peek() {
                        Some(TokenKind::RBracket) => {
                            let close = self.bump().span;
                            Ok(Expr {
                                kind: ExprKind::List(elems, Some(Box::new(tail))),
                                span: open.to(close),
                            })
                        }
                        _ if self.at_eol() => Err(unclosed()),
                        _ => Err(self.unexpected("`]`")),
                    };
                }
                _ if self.at_eol() => return Err(unclosed()),
                _ => return Err(self.unexpected("`,`, `|` or `]`")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::render;
    use proptest::prelude::*;

    // ---- helpers ------------------------------------------------------------------------

    fn ok(src: &str) -> Program {
        let (prog, diags) = parse(src);
        assert!(
            diags.is_empty(),
            "unexpected diagnostics for {src:?}: {diags:?}"
        );
        prog
    }

    /// The single instruction of a one-line program.
    fn instr(src: &str) -> Instr {
        let prog = ok(src);
        match prog.items.as_slice() {
            [Item::Instr(i)] => i.clone(),
            other => panic!("expected one instruction, got {other:?}"),
        }
    }

    /// The operand of `x OPERAND`, its spans shifted to be relative to the operand text.
    fn operand(text: &str) -> ExprKind {
        let i = instr(&format!("x {text}"));
        assert_eq!(i.operands.len(), 1, "{text}: {:?}", i.operands);
        assert_eq!(
            i.operands[0].span,
            Span::new(2, 2 + text.len()),
            "span of {text}"
        );
        strip(&i.operands[0]).kind
    }

    /// Spans zeroed, for structural comparison.
    fn strip(e: &Expr) -> Expr {
        let kind = match &e.kind {
            ExprKind::Tuple(xs) => ExprKind::Tuple(xs.iter().map(strip).collect()),
            ExprKind::List(xs, t) => ExprKind::List(
                xs.iter().map(strip).collect(),
                t.as_ref().map(|t| Box::new(strip(t))),
            ),
            ExprKind::Label(l) => ExprKind::Label(LabelRef {
                span: Span::default(),
                ..l.clone()
            }),
            k => k.clone(),
        };
        Expr {
            kind,
            span: Span::default(),
        }
    }

    fn e(kind: ExprKind) -> Expr {
        Expr {
            kind,
            span: Span::default(),
        }
    }
    fn reg(r: u8) -> Expr {
        e(ExprKind::Reg(r))
    }
    fn int(i: i64) -> Expr {
        e(ExprKind::Int(i))
    }
    fn atom(a: &str) -> Expr {
        e(ExprKind::Atom(a.into()))
    }
    fn label(m: Option<&str>, n: &str) -> LabelRef {
        LabelRef {
            module: m.map(Into::into),
            name: n.into(),
            span: Span::default(),
        }
    }

    /// The diagnostics of `src` as (message, spanned text) pairs.
    fn errs(src: &str) -> Vec<(String, Span)> {
        parse(src)
            .1
            .into_iter()
            .map(|d| (d.message, d.span))
            .collect()
    }

    fn one_err(src: &str) -> (String, Span) {
        let es = errs(src);
        assert_eq!(es.len(), 1, "{src:?}: {es:?}");
        es.into_iter().next().unwrap()
    }

    fn at(src: &str, needle: &str) -> Span {
        let i = src
            .find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not in {src:?}"));
        Span::new(i, i + needle.len())
    }

    // ---- whole programs -----------------------------------------------------------------

    const SPEC_EXAMPLE: &str = "\
; comments run from ';' to the end of the line
.module pingpong          ; optional; defaults to the file's stem
.export main, ponger      ; labels other modules may call or spawn
.import supervisor        ; a stdlib module, or NAME.basm beside this file

main:                     ; a label: identifier followed by ':'
    self    r0
    spawn   r1, ponger, r0
    send    r1, {:ping, r0}
    receive
      | {:pong, r2} -> got
      | after 1000  -> timeout
got:
    print   r2
    end
timeout:
    crash   :timeout
";

    #[test]
    fn spec_example() {
        let src = SPEC_EXAMPLE;
        let prog = ok(src);
        let items = &prog.items;
        assert_eq!(items.len(), 13, "{items:#?}");
        assert_eq!(
            items[0],
            Item::Module {
                name: "pingpong".into(),
                span: at(src, ".module pingpong")
            }
        );
        assert_eq!(
            items[1],
            Item::Export {
                names: vec![
                    ("main".into(), Span::new(121, 125)),
                    ("ponger".into(), Span::new(127, 133))
                ],
                span: at(src, ".export main, ponger"),
            }
        );
        let main_def = at(src, "main:   ");
        assert_eq!(
            items[2],
            Item::Import {
                names: vec![("supervisor".into(), at(src, "supervisor"))],
                span: at(src, ".import supervisor")
            }
        );
        assert_eq!(
            items[3],
            Item::Label {
                name: "main".into(),
                span: Span::new(main_def.start, main_def.start + 5)
            }
        );
        let Item::Instr(self_) = &items[4] else {
            panic!()
        };
        assert_eq!(self_.mnemonic, "self");
        assert_eq!(self_.mnemonic_span, at(src, "self"));
        assert_eq!(self_.span, at(src, "self    r0"));
        assert_eq!(
            self_.operands,
            vec![Expr {
                kind: ExprKind::Reg(0),
                span: Span::new(self_.span.end - 2, self_.span.end)
            }]
        );

        let Item::Instr(spawn) = &items[5] else {
            panic!()
        };
        assert_eq!(spawn.span, at(src, "spawn   r1, ponger, r0"));
        assert_eq!(
            spawn.operands.iter().map(strip).collect::<Vec<_>>(),
            vec![reg(1), e(ExprKind::Label(label(None, "ponger"))), reg(0)]
        );
        let Item::Instr(send) = &items[6] else {
            panic!()
        };
        assert_eq!(send.operands[1].span, at(src, "{:ping, r0}"));
        assert_eq!(
            strip(&send.operands[1]),
            e(ExprKind::Tuple(vec![atom("ping"), reg(0)]))
        );

        let Item::Instr(receive) = &items[7] else {
            panic!()
        };
        assert_eq!(receive.mnemonic, "receive");
        assert!(receive.operands.is_empty());
        assert_eq!(receive.clauses.len(), 2);
        let c0 = &receive.clauses[0];
        assert_eq!(c0.span, at(src, "| {:pong, r2} -> got"));
        let ClauseKind::Pattern(p) = &c0.kind else {
            panic!()
        };
        assert_eq!(strip(p), e(ExprKind::Tuple(vec![atom("pong"), reg(2)])));
        assert_eq!(
            c0.target,
            Some(LabelRef {
                module: None,
                name: "got".into(),
                span: Span::new(c0.span.end - 3, c0.span.end)
            })
        );
        let c1 = &receive.clauses[1];
        assert_eq!(c1.span, at(src, "| after 1000  -> timeout"));
        assert_eq!(
            c1.kind,
            ClauseKind::After(Expr {
                kind: ExprKind::Int(1000),
                span: at(src, "1000")
            })
        );
        assert_eq!(c1.target.as_ref().unwrap().name, "timeout");

        assert_eq!(
            items[8],
            Item::Label {
                name: "got".into(),
                span: at(src, "got:")
            }
        );
        let Item::Instr(end) = &items[10] else {
            panic!()
        };
        assert_eq!((end.mnemonic.as_str(), end.operands.len()), ("end", 0));
        assert_eq!(end.span, end.mnemonic_span);
        assert_eq!(
            items[11],
            Item::Label {
                name: "timeout".into(),
                span: at(src, "timeout:")
            }
        );
        let Item::Instr(crash) = &items[12] else {
            panic!()
        };
        let t = at(src, ":timeout\n");
        assert_eq!(
            crash.operands[0],
            Expr {
                kind: ExprKind::Atom("timeout".into()),
                span: Span::new(t.start, t.end - 1)
            }
        );
    }

    #[test]
    fn labels_on_instruction_lines() {
        let prog = ok("loop: add r0, r0, 1\na: b: nop\nmain:end\nx :\n");
        let summary: Vec<String> = prog
            .items
            .iter()
            .map(|i| match i {
                Item::Label { name, .. } => format!("{name}:"),
                Item::Instr(i) => i.mnemonic.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            summary,
            ["loop:", "add", "a:", "b:", "nop", "main:", "end", "x:"]
        );
        let Item::Label { span, .. } = &prog.items[5] else {
            panic!()
        };
        assert_eq!(*span, Span::new(30, 35));
        let Item::Instr(end) = &prog.items[6] else {
            panic!()
        };
        assert_eq!(end.mnemonic_span, Span::new(35, 38));
    }

    #[test]
    fn directives() {
        let src = ".file \"src/ring.ember\"\n.line 42\n.export a\n.import x, y,z\n";
        let prog = ok(src);
        let exp = at(src, ".export a");
        let imp = at(src, ".import x, y,z");
        let name = |i: usize| Span::new(i, i + 1);
        assert_eq!(
            prog.items,
            vec![
                Item::File {
                    name: "src/ring.ember".into(),
                    span: at(src, ".file \"src/ring.ember\"")
                },
                Item::Line {
                    line: 42,
                    span: at(src, ".line 42")
                },
                Item::Export {
                    names: vec![("a".into(), name(exp.end - 1))],
                    span: exp
                },
                Item::Import {
                    names: vec![
                        ("x".into(), name(imp.start + 8)),
                        ("y".into(), name(imp.start + 11)),
                        ("z".into(), name(imp.start + 13)),
                    ],
                    span: imp,
                },
            ]
        );
    }

    #[test]
    fn empty_and_comment_only_sources() {
        assert_eq!(ok(""), Program::default());
        assert_eq!(ok("\n\n; nothing\n   \n"), Program::default());
        assert_eq!(instr("nop").span, Span::new(0, 3)); // no final newline
    }

    // ---- operands -----------------------------------------------------------------------

    #[test]
    fn literal_operands() {
        assert_eq!(operand("r7"), ExprKind::Reg(7));
        assert_eq!(operand("^r5"), ExprKind::Pin(5));
        assert_eq!(operand("^ r5"), ExprKind::Pin(5));
        assert_eq!(operand("-0x1F"), ExprKind::Int(-31));
        assert_eq!(operand(":ok"), ExprKind::Atom("ok".into()));
        assert_eq!(
            operand(":\"two words\""),
            ExprKind::Atom("two words".into())
        );
        assert_eq!(operand("\"a\\x00\""), ExprKind::Str(vec![b'a', 0]));
        assert_eq!(operand("_"), ExprKind::Wild);
        assert_eq!(operand("ponger"), ExprKind::Label(label(None, "ponger")));
        assert_eq!(
            operand("lists:map"),
            ExprKind::Label(label(Some("lists"), "map"))
        );
        assert_eq!(operand("after"), ExprKind::Label(label(None, "after")));
    }

    #[test]
    fn qualified_labels() {
        let i = instr("spawn r1, supervisor:start, r0");
        assert_eq!(
            i.operands[1],
            Expr {
                kind: ExprKind::Label(LabelRef {
                    module: Some("supervisor".into()),
                    name: "start".into(),
                    span: Span::new(10, 26)
                }),
                span: Span::new(10, 26)
            }
        );
        // With a gap it is a label and then an atom: not a qualified label.
        assert_eq!(
            one_err("call m :f"),
            (
                "expected `,` or end of line, found `:f`".into(),
                Span::new(7, 9)
            )
        );
        assert_eq!(
            one_err("call m: f"),
            (
                "expected `,` or end of line, found `:`".into(),
                Span::new(6, 7)
            )
        );
    }

    #[test]
    fn tuples_and_lists() {
        assert_eq!(operand("{}"), ExprKind::Tuple(vec![]));
        assert_eq!(operand("{:a, 1}"), ExprKind::Tuple(vec![atom("a"), int(1)]));
        assert_eq!(operand("[]"), ExprKind::List(vec![], None));
        assert_eq!(
            operand("[1, 2, r3]"),
            ExprKind::List(vec![int(1), int(2), reg(3)], None)
        );
        assert_eq!(
            operand("[r1 | r2]"),
            ExprKind::List(vec![reg(1)], Some(Box::new(reg(2))))
        );
        assert_eq!(
            operand("[a, b | t]"),
            ExprKind::List(
                vec![
                    e(ExprKind::Label(label(None, "a"))),
                    e(ExprKind::Label(label(None, "b")))
                ],
                Some(Box::new(e(ExprKind::Label(label(None, "t")))))
            )
        );
        assert_eq!(
            operand("{:reply, ^r5, {_, [r6 | _]}, []}"),
            ExprKind::Tuple(vec![
                atom("reply"),
                e(ExprKind::Pin(5)),
                e(ExprKind::Tuple(vec![
                    e(ExprKind::Wild),
                    e(ExprKind::List(
                        vec![reg(6)],
                        Some(Box::new(e(ExprKind::Wild)))
                    )),
                ])),
                e(ExprKind::List(vec![], None)),
            ])
        );
        // Inner spans are exact.
        let i = instr("move r0, {1, [2 | r3]}");
        let ExprKind::Tuple(xs) = &i.operands[1].kind else {
            panic!()
        };
        assert_eq!(xs[0].span, Span::new(10, 11));
        assert_eq!(xs[1].span, Span::new(13, 21));
        let ExprKind::List(_, Some(tail)) = &xs[1].kind else {
            panic!()
        };
        assert_eq!(tail.span, Span::new(18, 20));
    }

    #[test]
    fn operands_are_kept_faithfully() {
        // The parser does not know the instruction table.
        let i = instr("frobnicate _, ^r1, \"s\", x:y, {}, -1");
        assert_eq!(i.mnemonic, "frobnicate");
        assert_eq!(i.operands.len(), 6);
        assert_eq!(i.span, Span::new(0, 35));
    }

    // ---- clauses ------------------------------------------------------------------------

    #[test]
    fn clauses() {
        let src = "\
case r0
  | {:ping, r2}         -> on_ping
  | {:reply, ^r5, r6}   -> m:on_reply
  | {:EXIT, _, r3}
  | [h | t]
  | after 500           -> on_timeout
  | after r4
  | after :infinity     ; comment
nop
";
        let prog = ok(src);
        assert_eq!(prog.items.len(), 2);
        let Item::Instr(case) = &prog.items[0] else {
            panic!()
        };
        assert_eq!(case.span, at(src, "case r0"));
        let cs = &case.clauses;
        assert_eq!(cs.len(), 7);
        assert_eq!(cs[0].span, at(src, "| {:ping, r2}         -> on_ping"));
        assert_eq!(
            cs[1].target,
            Some(LabelRef {
                module: Some("m".into()),
                name: "on_reply".into(),
                span: at(src, "m:on_reply")
            })
        );
        let ClauseKind::Pattern(p) = &cs[1].kind else {
            panic!()
        };
        assert_eq!(
            strip(p),
            e(ExprKind::Tuple(vec![
                atom("reply"),
                e(ExprKind::Pin(5)),
                reg(6)
            ]))
        );
        assert_eq!(cs[2].target, None);
        assert_eq!(cs[2].span, at(src, "| {:EXIT, _, r3}"));
        let ClauseKind::Pattern(p) = &cs[3].kind else {
            panic!()
        };
        assert_eq!(
            strip(p),
            e(ExprKind::List(
                vec![e(ExprKind::Label(label(None, "h")))],
                Some(Box::new(e(ExprKind::Label(label(None, "t")))))
            ))
        );
        assert_eq!(
            cs[4].kind,
            ClauseKind::After(Expr {
                kind: ExprKind::Int(500),
                span: at(src, "500")
            })
        );
        assert_eq!(
            cs[4].target.as_ref().map(|l| l.name.as_str()),
            Some("on_timeout")
        );
        assert_eq!(
            cs[5].kind,
            ClauseKind::After(Expr {
                kind: ExprKind::Reg(4),
                span: at(src, "r4")
            })
        );
        assert_eq!(cs[5].target, None);
        assert_eq!(cs[6].span, at(src, "| after :infinity"));
        assert!(
            matches!(&cs[6].kind, ClauseKind::After(Expr { kind: ExprKind::Atom(a), .. }) if a == "infinity")
        );
    }

    #[test]
    fn clauses_may_follow_line_directives_and_blank_lines() {
        let prog = ok("receive\n\n; c\n.line 7\n  | x -> y\n");
        let Item::Instr(r) = &prog.items[0] else {
            panic!()
        };
        assert_eq!(r.clauses.len(), 1);
        assert!(matches!(prog.items[1], Item::Line { line: 7, .. }));
    }

    #[test]
    fn after_is_a_keyword_only_right_after_the_pipe() {
        let i = instr("case r0\n | {after} -> after\n");
        let ClauseKind::Pattern(p) = &i.clauses[0].kind else {
            panic!()
        };
        assert_eq!(
            strip(p),
            e(ExprKind::Tuple(vec![e(ExprKind::Label(label(
                None, "after"
            )))]))
        );
        assert_eq!(i.clauses[0].target.as_ref().unwrap().name, "after");
        let prog = ok("after:\n after r1\n");
        assert!(matches!(&prog.items[1], Item::Instr(i) if i.mnemonic == "after"));
    }

    // ---- errors -------------------------------------------------------------------------

    #[test]
    fn unexpected_tokens() {
        let src = "move r0, {1, 2}}";
        assert_eq!(
            one_err(src),
            (
                "expected `,` or end of line, found `}`".into(),
                Span::new(15, 16)
            )
        );
        assert_eq!(
            one_err("move r0 r1"),
            (
                "expected `,` or end of line, found `r1`".into(),
                Span::new(8, 10)
            )
        );
        assert_eq!(
            one_err("move r0,"),
            (
                "expected an operand, found end of line".into(),
                Span::new(8, 8)
            )
        );
        assert_eq!(
            one_err("move r0, ; c\n"),
            (
                "expected an operand, found end of line".into(),
                Span::new(8, 8)
            )
        );
        assert_eq!(
            one_err("move , r0"),
            ("expected an operand, found `,`".into(), Span::new(5, 6))
        );
        assert_eq!(
            one_err("move r0, ->"),
            ("expected an operand, found `->`".into(), Span::new(9, 11))
        );
        assert_eq!(
            one_err("move r0, :"),
            ("expected an operand, found `:`".into(), Span::new(9, 10))
        );
        assert_eq!(
            one_err("move {1 2}"),
            ("expected `,` or `}`, found `2`".into(), Span::new(8, 9))
        );
        assert_eq!(
            one_err("move {1,}"),
            ("expected an operand, found `}`".into(), Span::new(8, 9))
        );
        assert_eq!(
            one_err("move [1 2]"),
            (
                "expected `,`, `|` or `]`, found `2`".into(),
                Span::new(8, 9)
            )
        );
        assert_eq!(
            one_err("move [1 | 2, 3]"),
            ("expected `]`, found `,`".into(), Span::new(11, 12))
        );
        assert_eq!(
            one_err("move [| t]"),
            ("expected an operand, found `|`".into(), Span::new(6, 7))
        );
        assert_eq!(
            one_err("move ^1"),
            (
                "expected a register after `^`, found `1`".into(),
                Span::new(6, 7)
            )
        );
        assert_eq!(
            one_err("move ^"),
            (
                "expected a register after `^`, found end of line".into(),
                Span::new(6, 6)
            )
        );
        assert_eq!(
            one_err("r1: nop"),
            (
                "expected an instruction, a label or a directive, found `r1`".into(),
                Span::new(0, 2)
            )
        );
        assert_eq!(
            one_err("  }"),
            (
                "expected an instruction, a label or a directive, found `}`".into(),
                Span::new(2, 3)
            )
        );
        assert_eq!(
            one_err("move \"a very long string, longer than thirty-two characters\" x").0,
            "expected `,` or end of line, found `x`"
        );
        assert_eq!(
            one_err("x 1 \"a very long string, longer than thirty-two characters\"").0,
            "expected `,` or end of line, found `\"a very long string, longer tha…`"
        );
    }

    #[test]
    fn unclosed_tuples_and_lists() {
        assert_eq!(
            one_err("send r1, {:ping, r0\n"),
            (
                "unclosed tuple: `{` has no matching `}` on its line".into(),
                Span::new(9, 10)
            )
        );
        assert_eq!(
            one_err("send r1, {"),
            (
                "unclosed tuple: `{` has no matching `}` on its line".into(),
                Span::new(9, 10)
            )
        );
        assert_eq!(
            one_err("send r1, {1,"),
            (
                "unclosed tuple: `{` has no matching `}` on its line".into(),
                Span::new(9, 10)
            )
        );
        assert_eq!(
            one_err("move r0, [1, {2}"),
            (
                "unclosed list: `[` has no matching `]` on its line".into(),
                Span::new(9, 10)
            )
        );
        assert_eq!(
            one_err("move r0, [1 |"),
            (
                "unclosed list: `[` has no matching `]` on its line".into(),
                Span::new(9, 10)
            )
        );
        assert_eq!(
            one_err("move r0, [1 | r2"),
            (
                "unclosed list: `[` has no matching `]` on its line".into(),
                Span::new(9, 10)
            )
        );
        assert_eq!(
            one_err("move r0, [[["),
            (
                "unclosed list: `[` has no matching `]` on its line".into(),
                Span::new(11, 12)
            )
        );
        // The closing bracket on the next line does not help: one instruction per line.
        let es = errs("move r0, {1,\n 2}\n");
        assert_eq!(
            es[0],
            (
                "unclosed tuple: `{` has no matching `}` on its line".into(),
                Span::new(9, 10)
            )
        );
    }

    #[test]
    fn malformed_clauses() {
        let pre = "receive\n";
        let p = pre.len();
        assert_eq!(
            one_err("receive\n  |"),
            (
                "expected a pattern after `|`, found end of line".into(),
                Span::new(p + 3, p + 3)
            )
        );
        assert_eq!(
            one_err("receive\n  | -> x"),
            (
                "expected a pattern after `|`, found `->`".into(),
                Span::new(p + 4, p + 6)
            )
        );
        assert_eq!(
            one_err("receive\n  | x ->"),
            (
                "expected a label after `->`, found end of line".into(),
                Span::new(p + 8, p + 8)
            )
        );
        assert_eq!(
            one_err("receive\n  | x -> ; c"),
            (
                "expected a label after `->`, found end of line".into(),
                Span::new(p + 8, p + 8)
            )
        );
        assert_eq!(
            one_err("receive\n  | x -> 1"),
            (
                "expected a label after `->`, found `1`".into(),
                Span::new(p + 9, p + 10)
            )
        );
        assert_eq!(
            one_err("receive\n  | x -> y z"),
            (
                "expected end of line, found `z`".into(),
                Span::new(p + 11, p + 12)
            )
        );
        assert_eq!(
            one_err("receive\n  | x y"),
            (
                "expected `->` or end of line, found `y`".into(),
                Span::new(p + 6, p + 7)
            )
        );
        assert_eq!(
            one_err("receive\n  | x -> a | y -> b"),
            (
                "expected end of line, found `|`".into(),
                Span::new(p + 11, p + 12)
            )
        );
        assert_eq!(
            one_err("receive\n  | after"),
            (
                "expected a timeout after `after`, found end of line".into(),
                Span::new(p + 9, p + 9)
            )
        );
        assert_eq!(
            one_err("receive\n  | after -> t"),
            (
                "expected a timeout after `after`, found `->`".into(),
                Span::new(p + 10, p + 12)
            )
        );
    }

    #[test]
    fn orphan_clauses() {
        assert_eq!(
            one_err("  | x -> y\n"),
            (
                "clause line without a preceding instruction".into(),
                Span::new(2, 3)
            )
        );
        assert_eq!(
            one_err(".module m\n| x\n"),
            (
                "clause line without a preceding instruction".into(),
                Span::new(10, 11)
            )
        );
        assert_eq!(
            one_err("receive\nhere:\n  | x\n"),
            (
                "clause line separated from its instruction by label `here`".into(),
                Span::new(16, 17)
            )
        );
        assert_eq!(
            one_err("receive\nhere: | x\n"),
            (
                "clause line separated from its instruction by label `here`".into(),
                Span::new(14, 15)
            )
        );
    }

    #[test]
    fn directive_errors() {
        assert_eq!(
            one_err(".module"),
            (
                "expected a module name after `.module`, found end of line".into(),
                Span::new(7, 7)
            )
        );
        assert_eq!(
            one_err(".module 1"),
            (
                "expected a module name after `.module`, found `1`".into(),
                Span::new(8, 9)
            )
        );
        assert_eq!(
            one_err(".module a b"),
            ("expected end of line, found `b`".into(), Span::new(10, 11))
        );
        assert_eq!(
            one_err(".export\n"),
            (
                "expected a label name after `.export`, found end of line".into(),
                Span::new(7, 7)
            )
        );
        assert_eq!(
            one_err(".export a,"),
            (
                "expected a label name, found end of line".into(),
                Span::new(10, 10)
            )
        );
        assert_eq!(
            one_err(".export a b"),
            (
                "expected `,` or end of line, found `b`".into(),
                Span::new(10, 11)
            )
        );
        assert_eq!(
            one_err(".import ; x"),
            (
                "expected a module name after `.import`, found end of line".into(),
                Span::new(7, 7)
            )
        );
        assert_eq!(
            one_err(".import a, :b"),
            (
                "expected a module name, found `:b`".into(),
                Span::new(11, 13)
            )
        );
        assert_eq!(
            one_err(".file"),
            (
                "expected a string after `.file`, found end of line".into(),
                Span::new(5, 5)
            )
        );
        assert_eq!(
            one_err(".file x"),
            (
                "expected a string after `.file`, found `x`".into(),
                Span::new(6, 7)
            )
        );
        assert_eq!(
            one_err(".file \"\\xff\""),
            ("file name is not valid UTF-8".into(), Span::new(6, 12))
        );
        assert_eq!(
            one_err(".line"),
            (
                "expected a line number after `.line`, found end of line".into(),
                Span::new(5, 5)
            )
        );
        assert_eq!(
            one_err(".line -1"),
            ("line number out of range".into(), Span::new(6, 8))
        );
        assert_eq!(
            one_err(".line 4294967296"),
            ("line number out of range".into(), Span::new(6, 16))
        );
        assert_eq!(
            one_err(".bogus x"),
            ("unknown directive `.bogus`".into(), Span::new(0, 6))
        );
    }

    #[test]
    fn lexer_errors_are_reported_by_the_parser() {
        assert_eq!(
            one_err("move r256, 1"),
            (
                "register out of range: `r256` (registers are r0 to r255)".into(),
                Span::new(5, 9)
            )
        );
        assert_eq!(
            one_err("move r0, 99999999999999999999"),
            ("integer out of range".into(), Span::new(9, 29))
        );
        assert_eq!(
            one_err("print \"abc"),
            ("unterminated string".into(), Span::new(6, 10))
        );
        assert_eq!(
            one_err("print \"a\\qb\""),
            ("bad escape `\\q`".into(), Span::new(8, 10))
        );
        assert_eq!(
            one_err("print @"),
            ("unexpected character `@`".into(), Span::new(6, 7))
        );
        assert_eq!(
            one_err("@"),
            ("unexpected character `@`".into(), Span::new(0, 1))
        );
        assert_eq!(
            one_err("print {1, \"x"),
            ("unterminated string".into(), Span::new(10, 12))
        );
        assert_eq!(
            one_err("receive\n | {r300}"),
            (
                "register out of range: `r300` (registers are r0 to r255)".into(),
                Span::new(12, 16)
            )
        );
        // The first error of a line wins, whichever stage found it.
        assert_eq!(
            one_err("move r0 r1, @"),
            (
                "expected `,` or end of line, found `r1`".into(),
                Span::new(8, 10)
            )
        );
    }

    #[test]
    fn several_errors_are_all_reported_and_parsing_recovers() {
        let src = "\
main:
    self r0
    move r1, {1 2}
    spawn r2, worker, r1
    receive
      | {:ok, r3} ->
      | after 100 -> timeout
    print r3
done:
    print \"unterminated
    end
";
        let (prog, diags) = parse(src);
        let got: Vec<(String, Span)> = diags.iter().map(|d| (d.message.clone(), d.span)).collect();
        assert_eq!(
            got,
            vec![
                (
                    "expected `,` or `}`, found `2`".into(),
                    Span::new(at(src, "2}").start, at(src, "2}").start + 1)
                ),
                ("expected a label after `->`, found end of line".into(), {
                    let a = at(src, "->\n").start + 2;
                    Span::new(a, a)
                }),
                ("unterminated string".into(), at(src, "\"unterminated")),
            ]
        );
        // Everything else parsed: the bad lines are simply missing.
        let names: Vec<String> = prog
            .items
            .iter()
            .map(|i| match i {
                Item::Label { name, .. } => format!("{name}:"),
                Item::Instr(i) => format!("{} {}", i.mnemonic, i.clauses.len()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            names,
            [
                "main:",
                "self 0",
                "spawn 0",
                "receive 1",
                "print 0",
                "done:",
                "end 0"
            ]
        );

        let rendered = render("prog.basm", src, &diags);
        assert_eq!(
            rendered,
            "\
prog.basm:3:17: error: expected `,` or `}`, found `2`
    move r1, {1 2}
                ^
prog.basm:6:21: error: expected a label after `->`, found end of line
      | {:ok, r3} ->
                    ^
prog.basm:10:11: error: unterminated string
    print \"unterminated
          ^^^^^^^^^^^^^
"
        );
    }

    #[test]
    fn clauses_after_a_broken_instruction_are_checked_but_not_orphans() {
        let src = "receive @\n  | {:a} -> x\n  | {:b\n";
        assert_eq!(
            errs(src),
            vec![
                ("unexpected character `@`".into(), at(src, "@")),
                (
                    "unclosed tuple: `{` has no matching `}` on its line".into(),
                    Span::new(at(src, "{:b").start, at(src, "{:b").start + 1)
                ),
            ]
        );
        // A label after a broken instruction line still counts as a separator.
        let (prog, _) = parse("loop: add r0, r0,\n");
        assert_eq!(
            prog.items,
            vec![Item::Label {
                name: "loop".into(),
                span: Span::new(0, 5)
            }]
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let src = format!("move r0, {}", "[".repeat(100_000));
        let (_, diags) = parse(&src);
        assert_eq!(diags.len(), 1);
        assert_eq!(
            diags[0].message,
            "tuples, lists and maps nested too deeply (more than 200 levels)"
        );
        let ok_src = format!(
            "move r0, {}{}",
            "{".repeat(MAX_NESTING),
            "}".repeat(MAX_NESTING)
        );
        assert!(parse(&ok_src).1.is_empty());
    }

    #[test]
    fn garbage_never_panics() {
        let bytes: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
        let text = String::from_utf8_lossy(&bytes);
        let (_, diags) = parse(&text);
        let _ = render("g.basm", &text, &diags);
        for src in [
            "|", "->", "^", ":", "\"", ":\"", "{", "[", "[|", "x:", "x:\"", "\n|\n", "a:b:c:d",
            "\\",
        ] {
            let (_, diags) = parse(src);
            let _ = render("g.basm", src, &diags);
        }
    }

    fn token_soup() -> impl Strategy<Value = String> {
        let piece = prop::sample::select(vec![
            "\n",
            " ",
            "\t",
            ",",
            "{",
            "}",
            "[",
            "]",
            "|",
            "->",
            "^",
            "_",
            ":",
            "main",
            "r1",
            "r300",
            "1",
            "-0x1f",
            "99999999999999999999",
            ":ok",
            ":\"a b\"",
            "\"s\\n\"",
            "\"bad\\q\"",
            "\"open",
            ".module",
            ".export",
            ".import",
            ".file",
            ".line",
            ".nope",
            "after",
            "; c",
            "é",
            "@",
            "\r\n",
            "m:l",
            "\\x",
            "\"",
        ]);
        prop::collection::vec(piece, 0..40).prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn random_strings_never_panic(s in "\\PC*") {
            let (_, diags) = parse(&s);
            let out = render("p.basm", &s, &diags);
            prop_assert_eq!(out.lines().count(), diags.len() * 3);
        }

        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let s = String::from_utf8_lossy(&bytes);
            let (_, diags) = parse(&s);
            let _ = render("p.basm", &s, &diags);
        }

        #[test]
        fn token_soup_never_panics(s in token_soup()) {
            let (prog, diags) = parse(&s);
            let _ = render("p.basm", &s, &diags);
            // Spans always lie inside the source, on character boundaries.
            for d in &diags {
                prop_assert!(d.span.start <= d.span.end && d.span.end <= s.len());
                prop_assert!(s.is_char_boundary(d.span.start) && s.is_char_boundary(d.span.end));
            }
            for item in &prog.items {
                let sp = item.span();
                prop_assert!(sp.start <= sp.end && sp.end <= s.len());
            }
            // Diagnostics come in source order, at most one per line.
            for w in diags.windows(2) {
                prop_assert!(w[0].span.start <= w[1].span.start);
            }
        }
    }
}
