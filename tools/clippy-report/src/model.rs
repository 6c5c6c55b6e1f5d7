//! The report's data: findings, their deduplication and the per-lint and
//! per-file tallies that the HTML summary shows.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

/// Lint name shown for a diagnostic that carries no code (rare rustc errors).
pub const NO_CODE: &str = "(no code)";

/// Severity of a finding, as rustc names it in its JSON `level` field.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    /// An error: the lint is denied, or the code does not compile.
    Error,
    /// A warning: what `-D warnings` turns into a failure.
    Warning,
    /// Any other level rustc may use at top level (`note`, `help`, `failure-note`, an ICE...).
    Other(String),
}

impl Level {
    /// Maps rustc's `level` string onto a [`Level`].
    pub fn from_rustc(level: &str) -> Self {
        match level {
            "error" => Self::Error,
            "warning" => Self::Warning,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The name used in the report, also usable as a CSS class suffix.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Other(name) => name,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a finding points: the primary span's start, as rustc reports it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location {
    /// Path of the file, usually relative to the workspace root.
    pub file: String,
    /// 1-based line number.
    pub line: u64,
    /// 1-based column number.
    pub column: u64,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// One diagnostic from clippy or rustc that the report lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Lint or error code, e.g. `clippy::len_zero`, `unused_variables`, `E0308`.
    pub lint: String,
    /// Severity: error or warning (the report counts and colours them apart).
    pub level: Level,
    /// Primary location.
    pub location: Location,
    /// The one-line message, e.g. MSG.
    pub message: String,
    /// rustc's full human-readable rendering (source excerpt, help), if any.
    pub rendered: Option<String>,
}

impl Finding {
    /// What makes two findings "the same" for deduplication: lint, file, line
    /// and message. Cargo reports a lint once per target that compiles the
    /// file (e.g. the lib and its unit-test build), so duplicates are common.
    fn dedup_key(&self) -> (&str, &str, u64, &str) {
        (&self.lint, &self.location.file, self.location.line, &self.message)
    }
}

/// Counts of findings in one group (one lint, one file, or the whole report).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// All findings in the group.
    pub total: usize,
    /// Findings at level error.
    pub errors: usize,
    /// Findings at level warning.
    pub warnings: usize,
}

impl Tally {
    /// Counts one more finding of the given level.
    fn add(&mut self, level: &Level) {
        self.total += 1;
        match level {
            Level::Error => self.errors += 1,
            Level::Warning => self.warnings += 1,
            Level::Other(_) => {}
        }
    }

    /// Findings that are neither errors nor warnings.
    pub fn others(&self) -> usize {
        self.total - self.errors - self.warnings
    }
}

/// Facts about the input stream besides its findings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InputStats {
    /// Lines that were cargo JSON messages (of any `reason`).
    pub messages: usize,
    /// Non-empty lines that were not JSON objects and were skipped.
    pub skipped_lines: usize,
    /// Cargo's `build-finished.success`, when the input had that line.
    pub build_success: Option<bool>,
}

/// Everything the HTML page shows: deduplicated, sorted findings plus
/// facts about the input.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Unique findings, sorted by file, line, column, lint.
    findings: Vec<Finding>,
    /// How many repeated findings were dropped.
    duplicates: usize,
    /// What else the input said.
    input: InputStats,
}

impl Report {
    /// Builds a report from findings in input order, dropping duplicates
    /// (first occurrence wins) and sorting the rest by location.
    pub fn new(findings: Vec<Finding>, input: InputStats) -> Self {
        let total = findings.len();
        let mut unique: Vec<Finding> = {
            let mut seen = HashSet::new();
            findings.iter().filter(|finding| seen.insert(finding.dedup_key())).cloned().collect()
        };
        unique.sort_by(|a, b| (&a.location, &a.lint, &a.message).cmp(&(&b.location, &b.lint, &b.message)));
        Self { duplicates: total - unique.len(), findings: unique, input }
    }

    /// The unique findings, sorted by location.
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// Number of repeated findings that were dropped.
    pub fn duplicates(&self) -> usize {
        self.duplicates
    }

    /// Message counts and build verdict of the input.
    pub fn input(&self) -> InputStats {
        self.input
    }

    /// True when there is nothing to report.
    pub fn is_empty(&self) -> bool {
        self.findings.is_empty()
    }

    /// Counts over all findings.
    pub fn totals(&self) -> Tally {
        let mut tally = Tally::default();
        for finding in &self.findings {
            tally.add(&finding.level);
        }
        tally
    }

    /// Counts per lint, most frequent first (ties by name).
    pub fn by_lint(&self) -> Vec<(&str, Tally)> {
        self.grouped(|finding| &finding.lint)
    }

    /// Counts per file, most findings first (ties by path).
    pub fn by_file(&self) -> Vec<(&str, Tally)> {
        self.grouped(|finding| &finding.location.file)
    }

    /// Tallies findings by the key that `key` picks, sorted by count
    /// descending, then key ascending.
    fn grouped<'a>(&'a self, key: impl Fn(&'a Finding) -> &'a str) -> Vec<(&'a str, Tally)> {
        let mut groups: BTreeMap<&str, Tally> = BTreeMap::new();
        for finding in &self.findings {
            groups.entry(key(finding)).or_default().add(&finding.level);
        }
        let mut rows: Vec<(&str, Tally)> = groups.into_iter().collect();
        // Stable sort keeps the BTreeMap's name order among equal counts.
        rows.sort_by_key(|(_, tally)| std::cmp::Reverse(tally.total));
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A warning finding for `lint` at `file:line`.
    fn finding(lint: &str, file: &str, line: u64, message: &str) -> Finding {
        Finding {
            lint: lint.to_owned(),
            level: Level::Warning,
            location: Location { file: file.to_owned(), line, column: 1 },
            message: message.to_owned(),
            rendered: None,
        }
    }

    #[test]
    fn levels_map_from_rustc_names() {
        assert_eq!(Level::from_rustc("error"), Level::Error);
        assert_eq!(Level::from_rustc("warning"), Level::Warning);
        assert_eq!(Level::from_rustc("failure-note"), Level::Other("failure-note".to_owned()));
        assert_eq!(Level::Other("note".to_owned()).to_string(), "note");
    }

    #[test]
    fn identical_findings_are_deduplicated() {
        const MSG: &str = "length comparison to zero";
        let report = Report::new(
            vec![
                finding("clippy::len_zero", "src/a.rs", 3, MSG),
                finding("clippy::len_zero", "src/a.rs", 3, MSG),
                // Same place, other lint: kept.
                finding("clippy::other", "src/a.rs", 3, MSG),
                // Same lint, other line: kept.
                finding("clippy::len_zero", "src/a.rs", 4, MSG),
            ],
            InputStats::default(),
        );
        assert_eq!(report.findings().len(), 3);
        assert_eq!(report.duplicates(), 1);
    }

    #[test]
    fn findings_are_sorted_by_location() {
        let report = Report::new(
            vec![finding("b", "src/b.rs", 1, "m"), finding("a", "src/a.rs", 9, "m"), finding("a", "src/a.rs", 2, "m")],
            InputStats { build_success: Some(true), ..InputStats::default() },
        );
        let order: Vec<String> = report.findings().iter().map(|f| f.location.to_string()).collect();
        assert_eq!(order, ["src/a.rs:2:1", "src/a.rs:9:1", "src/b.rs:1:1"]);
        assert_eq!(report.input().build_success, Some(true));
    }

    #[test]
    fn tallies_count_per_lint_and_file() {
        let mut error = finding("clippy::x", "src/b.rs", 1, "boom");
        error.level = Level::Error;
        let report = Report::new(
            vec![finding("clippy::y", "src/a.rs", 1, "m"), finding("clippy::x", "src/a.rs", 2, "m"), error],
            InputStats::default(),
        );
        let totals = report.totals();
        assert_eq!((totals.total, totals.errors, totals.warnings), (3, 1, 2));
        assert_eq!(totals.others(), 0);

        let lints: Vec<(&str, usize)> = report.by_lint().iter().map(|(name, t)| (*name, t.total)).collect();
        assert_eq!(lints, [("clippy::x", 2), ("clippy::y", 1)]);

        let files = report.by_file();
        assert_eq!(files[0].0, "src/a.rs");
        assert_eq!(files[0].1.total, 2);
        assert_eq!(files[1].0, "src/b.rs");
        assert_eq!(files[1].1.errors, 1);
    }

    #[test]
    fn empty_report_has_zero_totals() {
        let report = Report::new(Vec::new(), InputStats::default());
        assert!(report.is_empty());
        assert_eq!(report.totals(), Tally::default());
        assert!(report.by_lint().is_empty());
    }
}
