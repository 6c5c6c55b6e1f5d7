//! Reading cargo's `--message-format=json` stream into [`Finding`]s.
//!
//! Cargo writes one JSON object per line. Only `compiler-message` lines
//! matter here, and of those only diagnostics that point somewhere (have a
//! span): the trailing "N warnings emitted" summaries carry none. The
//! `build-finished` line tells whether the build succeeded.

use std::io::BufRead;

use serde::Deserialize;

use crate::error::Error;
use crate::model::{Finding, InputStats, Level, Location, NO_CODE};

/// One line of cargo's JSON output, reduced to the fields the report uses.
/// Unknown fields (package id, target, artifact paths...) are ignored.
#[derive(Debug, Deserialize)]
struct CargoMessage {
    /// Kind of line: `compiler-message`, `compiler-artifact`, `build-finished`...
    reason: String,
    /// The diagnostic, for `compiler-message` lines.
    #[serde(default)]
    message: Option<Diagnostic>,
    /// Whether the build succeeded, for the `build-finished` line.
    #[serde(default)]
    success: Option<bool>,
}

/// A rustc diagnostic (the `message` of a `compiler-message` line).
#[derive(Debug, Deserialize)]
struct Diagnostic {
    /// Short message, e.g. "length comparison to zero".
    #[serde(default)]
    message: String,
    /// Lint name or error code; `null` for some errors and for summaries.
    #[serde(default)]
    code: Option<DiagnosticCode>,
    /// "error", "warning", "note"...
    #[serde(default)]
    level: String,
    /// Source locations; empty for summaries like "3 warnings emitted".
    #[serde(default)]
    spans: Vec<Span>,
    /// Human-readable rendering, as rustc would print it.
    #[serde(default)]
    rendered: Option<String>,
}

/// The `code` object of a diagnostic.
#[derive(Debug, Deserialize)]
struct DiagnosticCode {
    /// e.g. `clippy::needless_return`, `unused_variables`, `E0308`.
    code: String,
}

/// One source span of a diagnostic.
#[derive(Debug, Deserialize)]
struct Span {
    /// File path, relative to the workspace root for workspace files;
    /// `<...>` names for code that macros generated.
    file_name: String,
    /// 1-based first line.
    line_start: u64,
    /// 1-based first column.
    column_start: u64,
    /// Whether this is the span the diagnostic is about.
    #[serde(default)]
    is_primary: bool,
    /// For spans inside a macro expansion: where the macro was invoked.
    #[serde(default)]
    expansion: Option<Box<Expansion>>,
}

/// Macro expansion info of a span.
#[derive(Debug, Deserialize)]
struct Expansion {
    /// The invocation site of the macro.
    span: Span,
}

impl Span {
    /// Follows macro expansions out of generated code (`<...>` file names)
    /// to the invocation site that a reader can open.
    fn resolve(&self) -> &Span {
        let mut span = self;
        while span.file_name.starts_with('<') {
            match &span.expansion {
                Some(expansion) => span = &expansion.span,
                None => break,
            }
        }
        span
    }
}

/// What a whole input stream yielded.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Findings in input order, duplicates included.
    pub findings: Vec<Finding>,
    /// Message counts and build verdict.
    pub stats: InputStats,
}

/// Reads cargo JSON messages line by line from `reader`.
///
/// Blank lines and lines that do not start with `{` are skipped (counted in
/// [`InputStats::skipped_lines`]); a line that starts with `{` but is not a valid
/// cargo message is an error naming its line number.
pub fn parse_reader<R: BufRead>(reader: R, path: Option<&std::path::Path>) -> Result<Parsed, Error> {
    let mut parsed = Parsed::default();
    for (index, line) in reader.lines().enumerate() {
        let line = line.map_err(|source| Error::Read { path: path.map(std::path::Path::to_path_buf), source })?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if !line.starts_with('{') {
            parsed.stats.skipped_lines += 1;
            continue;
        }
        let message: CargoMessage =
            serde_json::from_str(line).map_err(|source| Error::Json { line: index + 1, source })?;
        parsed.stats.messages += 1;
        match message.reason.as_str() {
            "compiler-message" => {
                if let Some(finding) = message.message.and_then(finding_from) {
                    parsed.findings.push(finding);
                }
            }
            "build-finished" => parsed.stats.build_success = message.success,
            _ => {}
        }
    }
    Ok(parsed)
}

/// Turns a diagnostic into a finding, or `None` when it has no location
/// (the "N warnings emitted" / "aborting due to" summaries).
fn finding_from(diagnostic: Diagnostic) -> Option<Finding> {
    let span = diagnostic.spans.iter().find(|span| span.is_primary).or_else(|| diagnostic.spans.first())?.resolve();
    Some(Finding {
        lint: diagnostic.code.map_or_else(|| NO_CODE.to_owned(), |code| code.code),
        level: Level::from_rustc(&diagnostic.level),
        location: Location { file: span.file_name.clone(), line: span.line_start, column: span.column_start },
        message: diagnostic.message,
        rendered: diagnostic.rendered.map(|text| strip_ansi(&text)),
    })
}

/// Removes ANSI escape sequences, which `rendered` contains when cargo ran
/// with `--message-format=json-diagnostic-rendered-ansi`.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        // CSI sequence: ESC '[' parameters, ending with a byte in '@'..='~'.
        if chars.next() == Some('[') {
            for end in chars.by_ref() {
                if ('@'..='~').contains(&end) {
                    break;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `input` as if read from standard input.
    fn parse(input: &str) -> Parsed {
        parse_reader(input.as_bytes(), None).expect("input should parse")
    }

    /// A `compiler-message` line with the given code, level and spans JSON.
    fn message_line(code: &str, level: &str, message: &str, spans: &str) -> String {
        format!(
            r#"{{"reason":"compiler-message","package_id":"p","target":{{"kind":["lib"]}},"message":{{"rendered":"{level}: {message}\n","$message_type":"diagnostic","children":[],"code":{code},"level":"{level}","message":"{message}","spans":{spans}}}}}"#
        )
    }

    /// A primary span JSON object at `file:line:col`.
    fn span(file: &str, line: u64, col: u64, primary: bool) -> String {
        format!(
            r#"{{"file_name":"{file}","line_start":{line},"line_end":{line},"column_start":{col},"column_end":{col},"is_primary":{primary},"label":null,"text":[],"expansion":null}}"#
        )
    }

    #[test]
    fn reads_a_clippy_warning() {
        let line = message_line(
            r#"{"code":"clippy::len_zero","explanation":null}"#,
            "warning",
            "length comparison to zero",
            &format!("[{}]", span("src/lib.rs", 12, 8, true)),
        );
        let parsed = parse(&line);
        assert_eq!(parsed.findings.len(), 1);
        let finding = &parsed.findings[0];
        assert_eq!(finding.lint, "clippy::len_zero");
        assert_eq!(finding.level, Level::Warning);
        assert_eq!(finding.location.to_string(), "src/lib.rs:12:8");
        assert_eq!(finding.message, "length comparison to zero");
        assert_eq!(finding.rendered.as_deref(), Some("warning: length comparison to zero\n"));
    }

    #[test]
    fn skips_other_reasons_and_summaries() {
        let summary = message_line("null", "warning", "2 warnings emitted", "[]");
        let input = format!(
            "{}\n{summary}\n\n{}\n",
            r#"{"reason":"compiler-artifact","package_id":"p","target":{"kind":["lib"]},"fresh":true}"#,
            r#"{"reason":"build-finished","success":false}"#,
        );
        let parsed = parse(&input);
        assert!(parsed.findings.is_empty());
        assert_eq!(parsed.stats.build_success, Some(false));
        assert_eq!(parsed.stats.skipped_lines, 0);
        assert_eq!(parsed.stats.messages, 3);
    }

    #[test]
    fn prefers_the_primary_span() {
        let spans = format!("[{},{}]", span("src/other.rs", 1, 1, false), span("src/main.rs", 7, 3, true));
        let parsed = parse(&message_line("null", "error", "mismatched", &spans));
        let finding = &parsed.findings[0];
        assert_eq!(finding.location.to_string(), "src/main.rs:7:3");
        assert_eq!(finding.lint, NO_CODE);
        assert_eq!(finding.level, Level::Error);
    }

    #[test]
    fn follows_macro_expansions_out_of_generated_code() {
        let inner = span("src/lib.rs", 20, 5, false);
        let generated = format!(
            r#"{{"file_name":"<dbg macros>","line_start":1,"column_start":1,"is_primary":true,"expansion":{{"span":{inner},"macro_decl_name":"dbg!","def_site_span":null}}}}"#
        );
        let parsed = parse(&message_line(
            r#"{"code":"clippy::dbg_macro","explanation":null}"#,
            "warning",
            "dbg",
            &format!("[{generated}]"),
        ));
        assert_eq!(parsed.findings[0].location.to_string(), "src/lib.rs:20:5");
    }

    #[test]
    fn skips_non_json_lines_but_rejects_broken_json() {
        let parsed = parse("   Compiling foo v0.1.0\n\n");
        assert_eq!(parsed.stats.skipped_lines, 1);
        assert_eq!(parsed.stats.messages, 0);
        assert!(parsed.findings.is_empty());
        assert_eq!(parsed.stats.build_success, None);

        let input = "{\"reason\":\"build-finished\",\"success\":true}\n{\"reason\": oops}\n";
        match parse_reader(input.as_bytes(), None) {
            Err(Error::Json { line, .. }) => assert_eq!(line, 2),
            other => panic!("expected a JSON error on line 2, got {other:?}"),
        }
    }

    #[test]
    fn strips_ansi_colours() {
        assert_eq!(strip_ansi("\u{1b}[0m\u{1b}[1m\u{1b}[33mwarning\u{1b}[0m: x <y>"), "warning: x <y>");
        assert_eq!(strip_ansi("plain"), "plain");
    }
}
