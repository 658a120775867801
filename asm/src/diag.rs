//! Diagnostics and their rendering.
//!
//! Each diagnostic renders as three lines (the contract's `FILE:LINE:COL: error: WHAT`, the
//! source line, and a caret line):
//!
//! ```text
//! prog.basm:3:5: error: unknown instruction `foo`
//!     foo r1, r2
//!     ^^^
//! ```
//!
//! LINE and COL are 1-based and COL counts characters (a tab is one column). The header comes
//! from codespan-reporting's short display style; the line/column arithmetic from its
//! [`Files`] implementation for [`SimpleFile`].

use crate::ast::Span;
use codespan_reporting::diagnostic::{Diagnostic as CsDiagnostic, Label};
use codespan_reporting::files::{Files, SimpleFile};
use codespan_reporting::term::{self, termcolor::NoColor, Config, DisplayStyle};
use std::fmt;

/// An error at a place in one source file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub span: Span,
    pub message: String,
}

impl Diagnostic {
    pub fn new(span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            span,
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at {})", self.message, self.span)
    }
}

/// Clamps `offset` into the source and moves it back to a character boundary.
fn clamp(source: &str, offset: usize) -> usize {
    let mut o = offset.min(source.len());
    while !source.is_char_boundary(o) {
        o -= 1;
    }
    o
}

/// The 1-based line and column (in characters) of a byte offset. Offsets past the end of the
/// source, or inside a multi-byte character, are clamped; this never panics.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let file = SimpleFile::new("", source);
    let offset = clamp(source, offset);
    match file.location((), offset) {
        Ok(loc) => (loc.line_number, loc.column_number),
        Err(_) => fallback_line_col(source, offset),
    }
}

fn fallback_line_col(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    )
}

/// Renders the diagnostics one after another, each as header, source line and caret line
/// (every line ends with `\n`; no blank lines between diagnostics).
pub fn render(file_name: &str, source: &str, diags: &[Diagnostic]) -> String {
    let file = SimpleFile::new(file_name, source);
    let mut out = String::new();
    for d in diags {
        render_one(&file, file_name, source, d, &mut out);
    }
    out
}

fn render_one(
    file: &SimpleFile<&str, &str>,
    file_name: &str,
    source: &str,
    d: &Diagnostic,
    out: &mut String,
) {
    let start = clamp(source, d.span.start);
    let end = clamp(source, d.span.end).max(start);

    // Header, by codespan-reporting's short style: `FILE:LINE:COL: error: WHAT`.
    let cs = CsDiagnostic::error()
        .with_message(d.message.as_str())
        .with_labels(vec![Label::primary((), start..end)]);
    let config = Config {
        display_style: DisplayStyle::Short,
        ..Config::default()
    };
    let mut writer = NoColor::new(Vec::new());
    match term::emit(&mut writer, &config, file, &cs) {
        Ok(()) => out.push_str(&String::from_utf8_lossy(&writer.into_inner())),
        Err(_) => {
            let (line, col) = line_col(source, start);
            out.push_str(&format!("{file_name}:{line}:{col}: error: {}\n", d.message));
        }
    }

    // The source line, without its line ending.
    let range = file
        .line_index((), start)
        .and_then(|i| file.line_range((), i))
        .ok()
        .filter(|r| r.start <= start && start <= r.end && r.end <= source.len());
    let (line_start, line_end) = match range {
        Some(r) => (r.start, r.end),
        None => (
            source[..start].rfind('\n').map_or(0, |i| i + 1),
            source[start..]
                .find('\n')
                .map_or(source.len(), |i| start + i + 1),
        ),
    };
    let text = &source[line_start..line_end];
    let text = text.strip_suffix('\n').unwrap_or(text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    out.push_str(text);
    out.push('\n');

    // The caret line: the prefix with its tabs kept (so the carets line up), then one caret per
    // character of the span on this line, at least one.
    for c in source[line_start..start].chars() {
        out.push(if c == '\t' { '\t' } else { ' ' });
    }
    let text_end = line_start + text.len();
    let caret_end = end.min(text_end).max(start);
    let carets = source[start..caret_end].chars().count().max(1);
    out.push_str(&"^".repeat(carets));
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(start: usize, end: usize, msg: &str) -> Diagnostic {
        Diagnostic::new(Span::new(start, end), msg)
    }

    #[test]
    fn contract_example() {
        let src = ".module m\nmain:\n    foo r1, r2\n    end\n";
        let at = src.find("foo").unwrap();
        assert_eq!(
            render(
                "prog.basm",
                src,
                &[d(at, at + 3, "unknown instruction `foo`")]
            ),
            "prog.basm:3:5: error: unknown instruction `foo`\n    foo r1, r2\n    ^^^\n"
        );
    }

    #[test]
    fn codespan_short_header_is_the_contract_header() {
        // The header line alone, straight from codespan-reporting.
        let src = "a\n  bc\n";
        let out = render("x.basm", src, &[d(4, 5, "what")]);
        assert_eq!(out.lines().next().unwrap(), "x.basm:2:3: error: what");
    }

    #[test]
    fn several_diagnostics_are_concatenated() {
        let src = "move r0, }\nprint \"abc\n";
        let out = render(
            "f.basm",
            src,
            &[
                d(9, 10, "expected an operand, found `}`"),
                d(17, 21, "unterminated string"),
            ],
        );
        assert_eq!(
            out,
            "f.basm:1:10: error: expected an operand, found `}`\n\
             move r0, }\n\
             \x20        ^\n\
             f.basm:2:7: error: unterminated string\n\
             print \"abc\n\
             \x20     ^^^^\n"
        );
    }

    #[test]
    fn tabs_keep_carets_aligned() {
        let src = "main:\n\tmove\tr0, @\n";
        let at = src.find('@').unwrap();
        assert_eq!(
            render("t.basm", src, &[d(at, at + 1, "unexpected character `@`")]),
            "t.basm:2:11: error: unexpected character `@`\n\tmove\tr0, @\n\t    \t    ^\n"
        );
    }

    #[test]
    fn columns_count_characters() {
        let src = "print \"é\", x@\n";
        let at = src.find('@').unwrap();
        assert_eq!(line_col(src, at), (1, 13));
        assert_eq!(
            render("u.basm", src, &[d(at, at + 1, "bad")]),
            "u.basm:1:13: error: bad\nprint \"é\", x@\n            ^\n"
        );
    }

    #[test]
    fn end_of_file_spans() {
        // Unterminated string running to the end of a file without a final newline.
        let src = "nop\nprint \"abc";
        assert_eq!(
            render("e.basm", src, &[d(10, 14, "unterminated string")]),
            "e.basm:2:7: error: unterminated string\nprint \"abc\n      ^^^^\n"
        );
        // An empty span exactly at the end of the file.
        assert_eq!(
            render("e.basm", src, &[d(14, 14, "expected `}`")]),
            "e.basm:2:11: error: expected `}`\nprint \"abc\n          ^\n"
        );
        // At the end of a file that ends with a newline: the (empty) last line.
        let src = "nop\n";
        assert_eq!(
            render("e.basm", src, &[d(4, 4, "eof")]),
            "e.basm:2:1: error: eof\n\n^\n"
        );
        // Past the end, reversed, inside a character, empty file: clamped, no panic.
        assert_eq!(
            render("e.basm", src, &[d(100, 200, "far")]),
            "e.basm:2:1: error: far\n\n^\n"
        );
        assert_eq!(
            render("e.basm", src, &[d(3, 1, "rev")]),
            "e.basm:1:4: error: rev\nnop\n   ^\n"
        );
        assert_eq!(
            render("e.basm", "é", &[d(1, 2, "mid")]),
            "e.basm:1:1: error: mid\né\n^\n"
        );
        assert_eq!(
            render("e.basm", "", &[d(0, 0, "empty")]),
            "e.basm:1:1: error: empty\n\n^\n"
        );
    }

    #[test]
    fn spans_over_several_lines_stop_at_the_line_end() {
        let src = "a {1,\r\n2}\n";
        assert_eq!(
            render("m.basm", src, &[d(2, 9, "multi")]),
            "m.basm:1:3: error: multi\na {1,\n  ^^^\n"
        );
    }

    #[test]
    fn line_col_positions() {
        let src = "ab\n\tc\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 2), (1, 3));
        assert_eq!(line_col(src, 3), (2, 1));
        assert_eq!(line_col(src, 4), (2, 2));
        assert_eq!(line_col(src, 6), (3, 1));
        assert_eq!(line_col(src, 1000), (3, 1));
        assert_eq!(line_col("", 5), (1, 1));
    }
}
