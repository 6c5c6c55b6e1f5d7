//! `clippy-report`: reads cargo/clippy JSON diagnostics
//! (`cargo clippy --message-format=json`) from a file or standard input and
//! writes one self-contained HTML report: totals, counts per lint and per
//! file, and every (deduplicated) finding. See `clippy-report --help`.

mod cli;
mod error;
mod model;
mod parse;
mod render;

use std::fs::{self, File};
use std::io::{self, BufReader, Write};
use std::path::Path;
use std::process::ExitCode;

use cli::{Command, Options};
use error::Error;
use model::Report;
use parse::Parsed;
use render::HtmlReport;

/// Exit status when `--fail-on-findings` is given and the report has findings.
const EXIT_FINDINGS: u8 = 3;

/// How many findings `--fail-on-findings` lists on stderr before eliding.
const MAX_LISTED: usize = 50;

/// Runs the tool; errors are printed to stderr with a non-zero status.
fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("clippy-report: error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}

/// Parses the command line and does what it says.
fn run() -> Result<ExitCode, Error> {
    match cli::parse(std::env::args_os().skip(1))? {
        Command::Help => {
            println!("{}", cli::USAGE);
            Ok(ExitCode::SUCCESS)
        }
        Command::Version => {
            println!("clippy-report {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        Command::Report(options) => report(&options),
    }
}

/// Reads the input, writes the HTML and prints a one-line summary to stderr.
fn report(options: &Options) -> Result<ExitCode, Error> {
    let parsed = read_input(options.input.as_deref())?;
    if parsed.stats.skipped_lines > 0 {
        eprintln!("clippy-report: skipped {} line(s) that were not JSON messages", parsed.stats.skipped_lines);
    }
    if parsed.stats.messages == 0 {
        eprintln!(
            "clippy-report: warning: the input held no cargo JSON messages (was cargo run with --message-format=json?)"
        );
    }
    let report = Report::new(parsed.findings, parsed.stats);
    let html = HtmlReport { report: &report, title: &options.title }.to_string();
    write_output(options.output.as_deref(), &html)?;

    let totals = report.totals();
    let target = options.output.as_deref().map_or_else(|| "standard output".to_owned(), |p| p.display().to_string());
    eprintln!(
        "clippy-report: {} finding(s) ({} error(s), {} warning(s)) in {} file(s); report written to {target}",
        totals.total,
        totals.errors,
        totals.warnings,
        report.by_file().len(),
    );
    if options.fail_on_findings && !report.is_empty() {
        list_findings(&report);
        return Ok(ExitCode::from(EXIT_FINDINGS));
    }
    Ok(ExitCode::SUCCESS)
}

/// Lists findings on stderr, one line each, so a failing CI log shows what
/// to fix without opening the HTML.
fn list_findings(report: &Report) {
    let findings = report.findings();
    for finding in findings.iter().take(MAX_LISTED) {
        eprintln!("{}: {}[{}]: {}", finding.location, finding.level, finding.lint, finding.message);
    }
    if findings.len() > MAX_LISTED {
        eprintln!("... and {} more (see the HTML report)", findings.len() - MAX_LISTED);
    }
}

/// Parses the input file, or standard input when `path` is `None`.
fn read_input(path: Option<&Path>) -> Result<Parsed, Error> {
    match path {
        Some(path) => {
            let file = File::open(path).map_err(|source| Error::Read { path: Some(path.to_path_buf()), source })?;
            parse::parse_reader(BufReader::new(file), Some(path))
        }
        None => parse::parse_reader(io::stdin().lock(), None),
    }
}

/// Writes the page to `path` (creating its parent directory if needed), or
/// to standard output when `path` is `None`.
fn write_output(path: Option<&Path>, html: &str) -> Result<(), Error> {
    let Some(path) = path else {
        let mut stdout = io::stdout().lock();
        return stdout
            .write_all(html.as_bytes())
            .and_then(|()| stdout.flush())
            .map_err(|source| Error::Write { path: None, source });
    };
    let write_error = |source| Error::Write { path: Some(path.to_path_buf()), source };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(write_error)?;
    }
    fs::write(path, html).map_err(write_error)
}
