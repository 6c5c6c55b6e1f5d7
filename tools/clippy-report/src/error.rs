//! The tool's error type: what can go wrong, with enough context to act on.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Everything that stops `clippy-report` from producing a report.
#[derive(Debug)]
pub enum Error {
    /// The command line was wrong; the text says how.
    Usage(String),
    /// Reading the input failed (`None` means standard input).
    Read {
        /// The input file, or `None` for standard input.
        path: Option<PathBuf>,
        /// The underlying I/O error.
        source: io::Error,
    },
    /// A line that looked like JSON (starts with `{`) did not parse.
    Json {
        /// 1-based line number in the input.
        line: usize,
        /// What serde_json objected to.
        source: serde_json::Error,
    },
    /// Writing the HTML failed (`None` means standard output).
    Write {
        /// The output file, or `None` for standard output.
        path: Option<PathBuf>,
        /// The underlying I/O error.
        source: io::Error,
    },
}

impl Error {
    /// The process exit code for this error: 2 for usage errors, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => 2,
            Self::Read { .. } | Self::Json { .. } | Self::Write { .. } => 1,
        }
    }
}

/// Names a file for messages, or the standard stream used instead.
fn describe(path: Option<&PathBuf>, stream: &str) -> String {
    path.map_or_else(|| stream.to_owned(), |p| p.display().to_string())
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(text) => write!(f, "{text} (try --help)"),
            Self::Read { path, source } => {
                write!(f, "cannot read {}: {source}", describe(path.as_ref(), "standard input"))
            }
            Self::Json { line, source } => {
                write!(f, "input line {line} is not a valid cargo JSON message: {source}")
            }
            Self::Write { path, source } => {
                write!(f, "cannot write {}: {source}", describe(path.as_ref(), "standard output"))
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Usage(_) => None,
            Self::Read { source, .. } | Self::Write { source, .. } => Some(source),
            Self::Json { source, .. } => Some(source),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_stream_or_file() {
        let read = Error::Read { path: None, source: io::Error::new(io::ErrorKind::InvalidData, "bad bytes") };
        assert_eq!(read.to_string(), "cannot read standard input: bad bytes");
        assert_eq!(read.exit_code(), 1);

        let write = Error::Write {
            path: Some(PathBuf::from("out/report.html")),
            source: io::Error::new(io::ErrorKind::PermissionDenied, "denied"),
        };
        assert_eq!(write.to_string(), "cannot write out/report.html: denied");
        assert!(std::error::Error::source(&write).is_some());

        let usage = Error::Usage("unknown option `--x`".to_owned());
        assert_eq!(usage.exit_code(), 2);
        assert!(usage.to_string().contains("--help"));
    }
}
