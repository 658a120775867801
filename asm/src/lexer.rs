//! The .basm lexer (built with `logos`).
//!
//! [`lex`] turns the whole source into tokens with byte spans. Newlines are tokens (one
//! instruction per line); blanks and `;` comments are skipped. A malformed literal or an unknown
//! character becomes a [`TokenKind::Error`] token carrying the message, whose span points at the
//! offending text (for a bad escape: the escape itself), so the parser can report it and carry on
//! with the next line. The lexer never panics.
//!
//! `mod:label` lexes as an identifier immediately followed by an atom token (`:label`); the
//! parser joins the two when there is no gap between their spans.

use crate::ast::Span;
use logos::{Lexer, Logos};

/// An error found while lexing one token. `span` (when set) narrows the error to a part of the
/// token, e.g. a bad escape inside a string.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LexError {
    pub message: String,
    pub span: Option<Span>,
}

impl LexError {
    fn new(message: impl Into<String>, span: Option<Span>) -> LexError {
        LexError {
            message: message.into(),
            span,
        }
    }
}

#[derive(Logos, Clone, Debug, PartialEq, Eq)]
#[logos(error = LexError)]
#[logos(skip r"[ \t\r\f\v]+")]
#[logos(skip r";[^\n]*")]
pub enum TokenKind {
    #[token("\n")]
    Newline,
    #[token(",")]
    Comma,
    #[token("{")]
    LBrace,
    #[token("}")]
    RBrace,
    #[token("[")]
    LBracket,
    #[token("]")]
    RBracket,
    #[token("|")]
    Pipe,
    #[token("->")]
    Arrow,
    /// `#{`: opens a map.
    #[token("#{")]
    MapOpen,
    /// `=>` in a map template.
    #[token("=>")]
    FatArrow,
    /// `:=` in a map pattern.
    #[token(":=")]
    ColonEq,
    #[token("^")]
    Caret,
    #[token("_", priority = 10)]
    Underscore,
    /// A bare `:` (ends a label definition).
    #[token(":")]
    Colon,

    #[token(".module")]
    Module,
    #[token(".export")]
    Export,
    #[token(".import")]
    Import,
    #[token(".file")]
    File,
    #[token(".line")]
    Line,
    /// Any other `.name` (the parser reports it as an unknown directive).
    #[regex(r"\.[A-Za-z_][A-Za-z0-9_]*", |lex| lex.slice()[1..].to_owned())]
    Directive(String),

    /// `r0` … `r255`
    #[regex("r[0-9]+", register)]
    Reg(u8),
    #[regex("[A-Za-z_][A-Za-z0-9_]*", |lex| lex.slice().to_owned())]
    Ident(String),
    /// `42`, `-7`, `0x1f`, `-0x1F`, `1_000_000`
    #[regex("-?[0-9][0-9A-Za-z_]*", integer)]
    Int(i64),
    /// `1.5`, `-0.25`, `2.0e10`, `1.0e-3` (as in Erlang: digits on both sides of the point);
    /// the IEEE 754 bits of the nearest float.
    #[regex(r"-?[0-9][0-9_]*\.[0-9][0-9_]*([eE][+-]?[0-9]+)?", float)]
    Float(u64),
    /// `:ok` (the name without the colon)
    #[regex(":[A-Za-z_][A-Za-z0-9_]*", |lex| lex.slice()[1..].to_owned())]
    Atom(String),
    /// `:"two words"` (the name, escapes resolved)
    #[token(":\"", quoted_atom)]
    QuotedAtom(String),
    /// `"text"` (the bytes, escapes resolved)
    #[token("\"", string)]
    Str(Vec<u8>),

    /// A lexical error; the message says what is wrong. Never produced by logos directly.
    Error(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    pub span: Span,
}

/// Lexes the whole source. Never fails: errors become [`TokenKind::Error`] tokens.
pub fn lex(source: &str) -> Vec<Token> {
    let mut lexer = TokenKind::lexer(source);
    let mut tokens = Vec::new();
    while let Some(result) = lexer.next() {
        let range = lexer.span();
        let span = Span::new(range.start, range.end);
        let token = match result {
            Ok(kind) => Token { kind, span },
            Err(e) => {
                let message = if e.message.is_empty() {
                    unexpected_char(source, span)
                } else {
                    e.message
                };
                Token {
                    kind: TokenKind::Error(message),
                    span: e.span.unwrap_or(span),
                }
            }
        };
        tokens.push(token);
    }
    tokens
}

fn unexpected_char(source: &str, span: Span) -> String {
    match source.get(span.start..).and_then(|s| s.chars().next()) {
        Some(c) => format!("unexpected character `{}`", c.escape_debug()),
        None => "unexpected end of file".to_owned(),
    }
}

fn register(lex: &mut Lexer<TokenKind>) -> Result<u8, LexError> {
    let digits = &lex.slice()[1..];
    let value = digits.bytes().fold(0u32, |acc, d| {
        acc.saturating_mul(10).saturating_add(u32::from(d - b'0'))
    });
    u8::try_from(value).map_err(|_| {
        LexError::new(
            format!(
                "register out of range: {} (registers are r0 to r255)",
                crate::diag::quote(lex.slice())
            ),
            None,
        )
    })
}

fn integer(lex: &mut Lexer<TokenKind>) -> Result<i64, LexError> {
    let text = lex.slice();
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (radix, digits) = match body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        Some(hex) => (16, hex),
        None => (10, body),
    };
    let invalid = || {
        LexError::new(
            format!("invalid integer literal {}", crate::diag::quote(text)),
            None,
        )
    };
    let mut magnitude: u128 = 0;
    let mut seen_digit = false;
    let mut overflow = false;
    for c in digits.chars() {
        if c == '_' {
            continue;
        }
        let d = c.to_digit(radix).ok_or_else(invalid)?;
        seen_digit = true;
        match magnitude
            .checked_mul(u128::from(radix))
            .and_then(|m| m.checked_add(u128::from(d)))
        {
            Some(m) if m <= 1u128 << 64 => magnitude = m,
            _ => overflow = true,
        }
    }
    if !seen_digit {
        return Err(invalid());
    }
    let value = if negative {
        -(magnitude as i128)
    } else {
        magnitude as i128
    };
    match i64::try_from(value) {
        Ok(v) if !overflow => Ok(v),
        _ => Err(LexError::new("integer out of range", None)),
    }
}

fn float(lex: &mut Lexer<TokenKind>) -> Result<u64, LexError> {
    let text: String = lex.slice().chars().filter(|&c| c != '_').collect();
    match text.parse::<f64>() {
        Ok(f) if f.is_finite() => Ok(f.to_bits()),
        _ => Err(LexError::new(
            format!(
                "float out of range: {} (floats are 64-bit, at most about 1.8e308)",
                crate::diag::quote(lex.slice())
            ),
            None,
        )),
    }
}

fn string(lex: &mut Lexer<TokenKind>) -> Result<Vec<u8>, LexError> {
    quoted(lex, 1, "string")
}

fn quoted_atom(lex: &mut Lexer<TokenKind>) -> Result<String, LexError> {
    let bytes = quoted(lex, 2, "atom")?;
    let range = lex.span();
    String::from_utf8(bytes).map_err(|_| {
        LexError::new(
            "atom is not valid UTF-8",
            Some(Span::new(range.start, range.end)),
        )
    })
}

/// Scans the body of a quoted literal after its opening (`prefix` bytes, already matched), up to
/// and including the closing `"`. A literal may not span lines: a newline or the end of the file
/// before the closing quote is "unterminated"; the token then stops before the newline so the
/// next line lexes normally.
fn quoted(lex: &mut Lexer<TokenKind>, prefix: usize, what: &str) -> Result<Vec<u8>, LexError> {
    let start = lex.span().start;
    let body_start = start + prefix;
    let rest = lex.remainder();
    let bytes = rest.as_bytes();
    let mut out = Vec::new();
    let mut bad_escape: Option<LexError> = None;
    let mut i = 0;
    loop {
        match bytes.get(i) {
            None | Some(b'\n') => {
                lex.bump(i);
                return Err(LexError::new(
                    format!("unterminated {what}"),
                    Some(Span::new(start, body_start + i)),
                ));
            }
            Some(b'"') => {
                lex.bump(i + 1);
                return match bad_escape {
                    Some(e) => Err(e),
                    None => Ok(out),
                };
            }
            Some(b'\\') => {
                let simple = match bytes.get(i + 1) {
                    // A backslash at the end of the line: the literal is unterminated.
                    None | Some(b'\n') => {
                        i += 1;
                        continue;
                    }
                    Some(b'n') => Some(b'\n'),
                    Some(b't') => Some(b'\t'),
                    Some(b'r') => Some(b'\r'),
                    Some(b'\\') => Some(b'\\'),
                    Some(b'"') => Some(b'"'),
                    Some(b'0') => Some(0),
                    Some(_) => None,
                };
                if let Some(b) = simple {
                    out.push(b);
                    i += 2;
                    continue;
                }
                if bytes[i + 1] == b'x' {
                    let hex = bytes[i + 2..]
                        .iter()
                        .take(2)
                        .take_while(|b| b.is_ascii_hexdigit())
                        .count();
                    if hex == 2 {
                        let h = &rest[i + 2..i + 4];
                        out.push(u8::from_str_radix(h, 16).unwrap_or(0));
                    } else if bad_escape.is_none() {
                        let text = &rest[i..i + 2 + hex];
                        bad_escape = Some(LexError::new(
                            format!("bad escape `{text}`"),
                            Some(Span::new(body_start + i, body_start + i + 2 + hex)),
                        ));
                    }
                    i += 2 + hex;
                    continue;
                }
                // Any other character (possibly multi-byte) after the backslash.
                let c = rest[i + 1..].chars().next().unwrap_or('\\');
                let len = 1 + c.len_utf8();
                if bad_escape.is_none() {
                    bad_escape = Some(LexError::new(
                        format!("bad escape `\\{}`", c.escape_debug()),
                        Some(Span::new(body_start + i, body_start + i + len)),
                    ));
                }
                i += len;
            }
            Some(&b) => {
                out.push(b);
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TokenKind::*;
    use super::*;

    fn kinds(src: &str) -> Vec<TokenKind> {
        lex(src).into_iter().map(|t| t.kind).collect()
    }

    fn one(src: &str) -> TokenKind {
        let toks = kinds(src);
        assert_eq!(toks.len(), 1, "{src:?} gave {toks:?}");
        toks.into_iter().next().unwrap()
    }

    fn err(src: &str) -> (String, Span) {
        let toks = lex(src);
        let t = toks
            .iter()
            .find(|t| matches!(t.kind, Error(_)))
            .unwrap_or_else(|| panic!("no error in {src:?}: {toks:?}"));
        match &t.kind {
            Error(m) => (m.clone(), t.span),
            _ => unreachable!(),
        }
    }

    fn ident(s: &str) -> TokenKind {
        Ident(s.to_owned())
    }

    #[test]
    fn punctuation() {
        assert_eq!(
            kinds(", { } [ ] | -> ^ _ :\n"),
            vec![
                Comma, LBrace, RBrace, LBracket, RBracket, Pipe, Arrow, Caret, Underscore, Colon,
                Newline
            ]
        );
    }

    #[test]
    fn map_punctuation() {
        assert_eq!(
            kinds("#{:a => 1, r1 := _}"),
            vec![
                MapOpen,
                Atom("a".into()),
                FatArrow,
                Int(1),
                Comma,
                Reg(1),
                ColonEq,
                Underscore,
                RBrace
            ]
        );
    }

    #[test]
    fn spans_are_byte_offsets() {
        let toks = lex("  move r1, {:é, \"ü\"}\n");
        let spans: Vec<(usize, usize)> = toks.iter().map(|t| (t.span.start, t.span.end)).collect();
        assert_eq!(
            spans,
            vec![
                (2, 6),
                (7, 9),
                (9, 10),
                (11, 12),
                (12, 13),
                (13, 15),
                (15, 16),
                (17, 21),
                (21, 22),
                (22, 23)
            ]
        );
        // `:é` is not an atom (identifiers are ASCII): `:` then an unexpected character.
        assert_eq!(toks[4].kind, Colon);
        assert_eq!(toks[5].kind, Error("unexpected character `é`".into()));
    }

    #[test]
    fn comments_and_blanks_are_skipped() {
        assert_eq!(
            kinds("; a comment\n  \t nop ; trailing , { \n"),
            vec![Newline, ident("nop"), Newline]
        );
        assert_eq!(
            kinds("nop\r\nend"),
            vec![ident("nop"), Newline, ident("end")]
        );
        assert_eq!(kinds(";no newline at end"), vec![]);
        assert_eq!(kinds(""), vec![]);
    }

    #[test]
    fn directives() {
        assert_eq!(
            kinds(".module .export .import .file .line .bogus .modules"),
            vec![
                Module,
                Export,
                Import,
                File,
                Line,
                Directive("bogus".into()),
                Directive("modules".into())
            ]
        );
    }

    #[test]
    fn registers_and_identifiers() {
        assert_eq!(one("r0"), Reg(0));
        assert_eq!(one("r7"), Reg(7));
        assert_eq!(one("r255"), Reg(255));
        assert_eq!(one("r007"), Reg(7));
        assert_eq!(one("ret"), ident("ret"));
        assert_eq!(one("rx"), ident("rx"));
        assert_eq!(one("r1a"), ident("r1a"));
        assert_eq!(one("r"), ident("r"));
        assert_eq!(one("R1"), ident("R1"));
        assert_eq!(one("_foo"), ident("_foo"));
        assert_eq!(one("spawn_link"), ident("spawn_link"));
        assert_eq!(one("_"), Underscore);
        assert_eq!(kinds("main:"), vec![ident("main"), Colon]);
        assert_eq!(kinds("mod:label"), vec![ident("mod"), Atom("label".into())]);
    }

    #[test]
    fn register_out_of_range() {
        assert_eq!(
            err("move r256, 1"),
            (
                "register out of range: `r256` (registers are r0 to r255)".into(),
                Span::new(5, 9)
            )
        );
        let (m, s) = err("r99999999999999999999999");
        assert_eq!(
            m,
            "register out of range: `r99999999999999999999999` (registers are r0 to r255)"
        );
        assert_eq!(s, Span::new(0, 24));
    }

    #[test]
    fn integers() {
        assert_eq!(one("42"), Int(42));
        assert_eq!(one("0"), Int(0));
        assert_eq!(one("-7"), Int(-7));
        assert_eq!(one("0x1f"), Int(31));
        assert_eq!(one("0X1F"), Int(31));
        assert_eq!(one("-0x1F"), Int(-31));
        assert_eq!(one("1_000_000"), Int(1_000_000));
        assert_eq!(one("0x_ff_ff"), Int(0xffff));
        assert_eq!(one("9223372036854775807"), Int(i64::MAX));
        assert_eq!(one("-9223372036854775808"), Int(i64::MIN));
        assert_eq!(one("0x7fffffffffffffff"), Int(i64::MAX));
        assert_eq!(one("-0x8000000000000000"), Int(i64::MIN));
        assert_eq!(kinds("1,-2"), vec![Int(1), Comma, Int(-2)]);
        assert_eq!(one("1.5"), Float(1.5f64.to_bits()));
        assert_eq!(one("-0.25"), Float((-0.25f64).to_bits()));
        assert_eq!(one("2.0e10"), Float(2.0e10f64.to_bits()));
        assert_eq!(one("1.0e-3"), Float(1.0e-3f64.to_bits()));
        assert_eq!(one("1_000.5"), Float(1000.5f64.to_bits()));
        assert_eq!(one("-0.0"), Float((-0.0f64).to_bits()));
        assert_eq!(kinds("1.5,2"), vec![Float(1.5f64.to_bits()), Comma, Int(2)]);
        assert_eq!(
            kinds("- 2"),
            vec![Error("unexpected character `-`".into()), Int(2)]
        );
    }

    #[test]
    fn integer_errors() {
        assert_eq!(
            err("9223372036854775808"),
            ("integer out of range".into(), Span::new(0, 19))
        );
        assert_eq!(err("-9223372036854775809").0, "integer out of range");
        assert_eq!(err("0x8000000000000000").0, "integer out of range");
        assert_eq!(
            err("99999999999999999999999999999999999999999999999").0,
            "integer out of range"
        );
        assert_eq!(
            err("x, 12abc"),
            ("invalid integer literal `12abc`".into(), Span::new(3, 8))
        );
        assert_eq!(err("0x").0, "invalid integer literal `0x`");
        assert_eq!(err("0x_").0, "invalid integer literal `0x_`");
        assert_eq!(err("0xfg").0, "invalid integer literal `0xfg`");
        assert_eq!(err("0b101").0, "invalid integer literal `0b101`");
    }

    #[test]
    fn atoms() {
        assert_eq!(one(":ok"), Atom("ok".into()));
        assert_eq!(one(":EXIT"), Atom("EXIT".into()));
        assert_eq!(one(":_x1"), Atom("_x1".into()));
        assert_eq!(one(":\"two words\""), QuotedAtom("two words".into()));
        assert_eq!(one(":\"\""), QuotedAtom(String::new()));
        assert_eq!(
            one(r#":"a\"b\\c\n\x41é""#),
            QuotedAtom("a\"b\\c\nAé".into())
        );
        assert_eq!(kinds(": ok"), vec![Colon, ident("ok")]);
        assert_eq!(kinds(":1"), vec![Colon, Int(1)]);
    }

    #[test]
    fn atom_errors() {
        assert_eq!(
            err(r#"x :"a\qb""#),
            ("bad escape `\\q`".into(), Span::new(5, 7))
        );
        assert_eq!(
            err(":\"abc\nnop"),
            ("unterminated atom".into(), Span::new(0, 5))
        );
        assert_eq!(
            err(r#":"\xff""#),
            ("atom is not valid UTF-8".into(), Span::new(0, 7))
        );
    }

    #[test]
    fn strings() {
        assert_eq!(one(r#""""#), Str(vec![]));
        assert_eq!(one(r#""text""#), Str(b"text".to_vec()));
        assert_eq!(one(r#""\n\t\r\\\"\0""#), Str(b"\n\t\r\\\"\0".to_vec()));
        assert_eq!(one(r#""\x00\xff\x7F\xAb""#), Str(vec![0, 0xff, 0x7f, 0xab]));
        assert_eq!(
            one("\"héllo → 世界\""),
            Str("héllo → 世界".as_bytes().to_vec())
        );
        assert_eq!(one("\"; not a comment\""), Str(b"; not a comment".to_vec()));
        assert_eq!(one("\"tab\there\""), Str(b"tab\there".to_vec()));
        assert_eq!(
            kinds("\"a\"\"b\""),
            vec![Str(b"a".to_vec()), Str(b"b".to_vec())]
        );
    }

    #[test]
    fn string_errors() {
        assert_eq!(
            err("print \"abc"),
            ("unterminated string".into(), Span::new(6, 10))
        );
        assert_eq!(
            err("print \"abc\nnop"),
            ("unterminated string".into(), Span::new(6, 10))
        );
        assert_eq!(
            err("\"abc\\"),
            ("unterminated string".into(), Span::new(0, 5))
        );
        assert_eq!(err("\""), ("unterminated string".into(), Span::new(0, 1)));
        assert_eq!(
            err(r#"move r0, "a\qb""#),
            ("bad escape `\\q`".into(), Span::new(11, 13))
        );
        assert_eq!(
            err(r#""\x4g""#),
            ("bad escape `\\x4`".into(), Span::new(1, 4))
        );
        assert_eq!(err(r#""\x""#), ("bad escape `\\x`".into(), Span::new(1, 3)));
        assert_eq!(err(r#""\é""#), ("bad escape `\\é`".into(), Span::new(1, 4)));
        // The first bad escape is the one reported.
        assert_eq!(
            err(r#""\a\b""#),
            ("bad escape `\\a`".into(), Span::new(1, 3))
        );
        // Unterminated wins over a bad escape.
        assert_eq!(
            err("\"\\q"),
            ("unterminated string".into(), Span::new(0, 3))
        );
    }

    #[test]
    fn recovery_after_errors() {
        // An unterminated string stops at the newline; the next line lexes normally.
        assert_eq!(
            kinds("print \"abc\nnop\n"),
            vec![
                ident("print"),
                Error("unterminated string".into()),
                Newline,
                ident("nop"),
                Newline
            ]
        );
        // A bad escape consumes the whole string.
        assert_eq!(
            kinds("print \"a\\qb\", 1"),
            vec![
                ident("print"),
                Error("bad escape `\\q`".into()),
                Comma,
                Int(1)
            ]
        );
        assert_eq!(
            kinds("a @ b . # $"),
            vec![
                ident("a"),
                Error("unexpected character `@`".into()),
                ident("b"),
                Error("unexpected character `.`".into()),
                Error("unexpected character `#`".into()),
                Error("unexpected character `$`".into()),
            ]
        );
        assert_eq!(
            kinds("\0"),
            vec![Error("unexpected character `\\0`".into())]
        );
    }

    #[test]
    fn multibyte_unknown_characters_have_whole_char_spans() {
        for src in ["é", "世", "🦀", "\u{feff}nop"] {
            let toks = lex(src);
            let c = src.chars().next().unwrap();
            assert_eq!(
                toks[0].span,
                Span::new(0, c.len_utf8()),
                "{src:?}: {toks:?}"
            );
            for t in &toks {
                assert!(src.is_char_boundary(t.span.start) && src.is_char_boundary(t.span.end));
            }
        }
    }
}
