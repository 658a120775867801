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
//!
//! Output stays bounded whatever the input: a source line longer than [`LINE_WINDOW`]
//! characters is shown as a window around the error, its cut ends marked `...`; a message is
//! cut at [`MAX_MESSAGE`] characters; and [`crate::AsmErrors`] shows at most [`MAX_SHOWN`]
//! diagnostics.

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

/// Most characters of a source line shown under a header.
pub const LINE_WINDOW: usize = 160;
/// Characters of the line shown before the error's start when the line is cut.
const LEAD: usize = 60;
/// Most characters of a message shown in a header.
pub const MAX_MESSAGE: usize = 400;
/// Most diagnostics shown for one assembly; the rest are counted in a closing line.
pub const MAX_SHOWN: usize = 100;
/// Most characters of a name or literal quoted in a message.
const MAX_QUOTED: usize = 32;

/// `text` in backquotes for a message, cut with `…` when long (a message must not repeat a
/// megabyte-long identifier).
pub fn quote(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED) {
        Some(_) => {
            let short: String = text.chars().take(MAX_QUOTED - 1).collect();
            format!("`{short}…`")
        }
        None => format!("`{text}`"),
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
    let message = match d.message.char_indices().nth(MAX_MESSAGE) {
        Some((cut, _)) => format!("{}...", &d.message[..cut]),
        None => d.message.clone(),
    };
    let cs = CsDiagnostic::error()
        .with_message(message.as_str())
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
            out.push_str(&format!("{file_name}:{line}:{col}: error: {message}\n"));
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

    // Character positions on the line: the error's start, and the end of its carets (at least
    // one caret; a span over several lines stops at this line's end).
    let at = source[line_start..start].chars().count();
    let caret_end = end.min(line_start + text.len()).max(start);
    let carets = source[start..caret_end].chars().count().max(1);
    let len = text.chars().count();

    // A long line is shown as a window of LINE_WINDOW characters that starts a little before
    // the error (or ends at the line's end), its cut ends marked `...`.
    let (from, to) = if len <= LINE_WINDOW {
        (0, len)
    } else {
        let from = at.saturating_sub(LEAD).min(len - LINE_WINDOW);
        (from, from + LINE_WINDOW)
    };
    let byte = |n: usize| text.char_indices().nth(n).map_or(text.len(), |(i, _)| i);
    let (from_byte, to_byte) = (byte(from), byte(to));
    if from > 0 {
        out.push_str("...");
    }
    out.push_str(&text[from_byte..to_byte]);
    if to < len {
        out.push_str("...");
    }
    out.push('\n');

    // The caret line: the shown prefix with its tabs kept (so the carets line up), then the
    // carets, as many as fit in the window.
    if from > 0 {
        out.push_str("   ");
    }
    for c in source[line_start + from_byte..start].chars() {
        out.push(if c == '\t' { '\t' } else { ' ' });
    }
    let shown = carets.min(to.saturating_sub(at)).max(1);
    out.push_str(&"^".repeat(shown));
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
    fn a_long_line_is_shown_as_a_window_around_the_error() {
        // 1 MB line, error far inside it: the header has the true column, the echoed line is
        // the window with both ends cut, and the caret sits under the `@`.
        let src = format!(
            "main:\n    print \"{}\" @ {}\n",
            "a".repeat(500_000),
            "b".repeat(500_000)
        );
        let at = src.find('@').unwrap();
        let out = render("l.basm", &src, &[d(at, at + 1, "unexpected character `@`")]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], "l.basm:2:500014: error: unexpected character `@`");
        assert!(lines[1].starts_with("...aaa") && lines[1].ends_with("bbb..."));
        assert_eq!(lines[1].chars().count(), LINE_WINDOW + 6);
        let caret = lines[2].find('^').unwrap();
        assert_eq!(&lines[1][caret..caret + 1], "@");
        assert_eq!(lines[2].trim_start(), "^");
    }

    #[test]
    fn long_lines_cut_only_at_the_ends_they_need() {
        let tail = "x".repeat(300);
        // Error near the start: nothing cut before it.
        let src = format!("ab@{tail}");
        let out = render("s.basm", &src, &[d(2, 3, "at start")]);
        assert_eq!(
            out,
            format!("s.basm:1:3: error: at start\nab@{}...\n  ^\n", &tail[..157])
        );
        // Error at the very end (an empty span): the window ends at the line's end.
        let src = format!("{tail}\n");
        let out = render("s.basm", &src, &[d(300, 300, "at end")]);
        assert_eq!(
            out,
            format!(
                "s.basm:1:301: error: at end\n...{}\n{}^\n",
                &tail[..160],
                " ".repeat(163)
            )
        );
        // A long span: the carets stop at the window's end.
        let out = render("s.basm", &src, &[d(10, 290, "long span")]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "s.basm:1:11: error: long span");
        assert_eq!(lines[2], format!("{}{}", " ".repeat(10), "^".repeat(150)));
    }

    #[test]
    fn a_window_keeps_tabs_and_counts_characters() {
        let src = format!("{}\t@{}", "é".repeat(200), "é".repeat(200));
        let at = src.find('@').unwrap();
        let out = render("w.basm", &src, &[d(at, at + 1, "here")]);
        assert_eq!(
            out,
            format!(
                "w.basm:1:202: error: here\n...{}\t@{}...\n   {}\t^\n",
                "é".repeat(59),
                "é".repeat(99),
                " ".repeat(59)
            )
        );
    }

    #[test]
    fn long_messages_and_names_are_cut() {
        let long = "m".repeat(10_000);
        let out = render("m.basm", "x\n", &[d(0, 1, &long)]);
        let header = out.lines().next().unwrap();
        assert_eq!(
            header,
            format!("m.basm:1:1: error: {}...", "m".repeat(MAX_MESSAGE))
        );
        assert_eq!(quote("abc"), "`abc`");
        assert_eq!(quote(&"q".repeat(32)), format!("`{}`", "q".repeat(32)));
        assert_eq!(quote(&"q".repeat(33)), format!("`{}…`", "q".repeat(31)));
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
