//! Command-line parsing (by hand: the tool has four options and no wish for
//! a dependency).

use std::ffi::OsString;
use std::path::PathBuf;

use crate::error::Error;

/// Title used when `--title` is not given.
pub const DEFAULT_TITLE: &str = "Clippy report";

/// The `--help` text.
pub const USAGE: &str = "\
clippy-report: turn cargo/clippy JSON diagnostics into one self-contained HTML page.

Usage:
  cargo clippy --message-format=json | clippy-report [OPTIONS] > report.html

Options:
  --input FILE         read cargo JSON messages from FILE (default: standard input; `-` = stdin)
  --output FILE        write the HTML to FILE (default: standard output; `-` = stdout)
  --title TEXT         page title (default: \"Clippy report\")
  --fail-on-findings   exit with status 3 after writing the report if it has any finding
  -h, --help           print this help
  -V, --version        print the version

Exit status: 0 report written, 1 I/O or input error, 2 usage error,
3 findings present with --fail-on-findings. A one-line summary goes to stderr.";

/// What the user asked for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Print [`USAGE`].
    Help,
    /// Print the version.
    Version,
    /// Generate a report.
    Report(Options),
}

/// Options of a report run.
#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    /// Input file; `None` reads standard input.
    pub input: Option<PathBuf>,
    /// Output file; `None` writes standard output.
    pub output: Option<PathBuf>,
    /// Page title.
    pub title: String,
    /// Exit with status 3 when the report has findings.
    pub fail_on_findings: bool,
}

/// Parses the arguments after the program name. Accepts `--opt VALUE` and
/// `--opt=VALUE`; rejects unknown and repeated options.
pub fn parse<I: IntoIterator<Item = OsString>>(args: I) -> Result<Command, Error> {
    let mut input = None;
    let mut output = None;
    let mut title = None;
    let mut fail_on_findings = false;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let arg = arg.into_string().map_err(|raw| usage(format!("argument {raw:?} is not valid UTF-8")))?;
        let (name, inline_value) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name.to_owned(), Some(value.to_owned())),
            _ => (arg, None),
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "--fail-on-findings" if inline_value.is_none() => fail_on_findings = true,
            "--fail-on-findings" => {
                return Err(usage("option `--fail-on-findings` takes no value".to_owned()));
            }
            "--input" | "--output" | "--title" => {
                let value = match inline_value {
                    Some(value) => OsString::from(value),
                    None => args.next().ok_or_else(|| usage(format!("option `{name}` needs a value")))?,
                };
                let slot_was_empty = match name.as_str() {
                    "--input" => input.replace(path_or_stdio(value)).is_none(),
                    "--output" => output.replace(path_or_stdio(value)).is_none(),
                    _ => title
                        .replace(
                            value
                                .into_string()
                                .map_err(|_| usage("the value of `--title` is not valid UTF-8".to_owned()))?,
                        )
                        .is_none(),
                };
                if !slot_was_empty {
                    return Err(usage(format!("option `{name}` given twice")));
                }
            }
            other => return Err(usage(format!("unexpected argument `{other}`"))),
        }
    }
    Ok(Command::Report(Options {
        input: input.flatten(),
        output: output.flatten(),
        title: title.unwrap_or_else(|| DEFAULT_TITLE.to_owned()),
        fail_on_findings,
    }))
}

/// A path argument, where `-` stands for the standard stream (`None`).
fn path_or_stdio(value: OsString) -> Option<PathBuf> {
    (value != "-").then(|| PathBuf::from(value))
}

/// Builds a usage error.
fn usage(text: String) -> Error {
    Error::Usage(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses string arguments.
    fn run(args: &[&str]) -> Result<Command, Error> {
        parse(args.iter().map(OsString::from))
    }

    /// Parses string arguments that must form a report command.
    fn options(args: &[&str]) -> Options {
        match run(args) {
            Ok(Command::Report(options)) => options,
            other => panic!("expected report options for {args:?}, got {other:?}"),
        }
    }

    #[test]
    fn defaults_to_standard_streams() {
        let opts = options(&[]);
        assert_eq!(opts.input, None);
        assert_eq!(opts.output, None);
        assert_eq!(opts.title, DEFAULT_TITLE);
        assert!(!opts.fail_on_findings);
    }

    #[test]
    fn reads_separate_and_inline_values() {
        let opts = options(&[
            "--input",
            "in.jsonl",
            "--output=out/r.html",
            "--title",
            "Meridian = lint",
            "--fail-on-findings",
        ]);
        assert_eq!(opts.input, Some(PathBuf::from("in.jsonl")));
        assert_eq!(opts.output, Some(PathBuf::from("out/r.html")));
        assert_eq!(opts.title, "Meridian = lint");
        assert!(opts.fail_on_findings);
    }

    #[test]
    fn dash_means_standard_stream() {
        let opts = options(&["--input", "-", "--output=-"]);
        assert_eq!((opts.input, opts.output), (None, None));
    }

    #[test]
    fn help_and_version() {
        assert_eq!(run(&["--help"]).ok(), Some(Command::Help));
        assert_eq!(run(&["--input", "x", "-h"]).ok(), Some(Command::Help));
        assert_eq!(run(&["-V"]).ok(), Some(Command::Version));
    }

    #[test]
    fn rejects_bad_usage() {
        for args in [
            &["--input"][..],
            &["--bogus"],
            &["file.json"],
            &["--title", "a", "--title", "b"],
            &["--fail-on-findings=yes"],
        ] {
            match run(args) {
                Err(Error::Usage(_)) => {}
                other => panic!("expected a usage error for {args:?}, got {other:?}"),
            }
        }
    }
}
