//! The one error of loading `cluster.toml`: every section's validation reports through it, so
//! a refused file always names itself and the field at fault.

use std::path::{Path, PathBuf};

/// A config file that cannot be used, with the field at fault.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {cause}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why (not a `source`: the message already says it once).
        cause: std::io::Error,
    },
    /// The file is not valid TOML or does not fit the schema (toml names the field).
    #[error("{path}: {cause}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message, with line and key.
        cause: Box<toml::de::Error>,
    },
    /// A field has a value that cannot work.
    #[error("{path}: {field}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Dotted path of the field, e.g. `region[1].s3`.
        field: String,
        /// What is wrong.
        message: String,
    },
}

impl ConfigError {
    /// [`ConfigError::Invalid`] for `field` of the file at `path`: the one shape every section's
    /// validation builds.
    pub(crate) fn invalid(path: &Path, field: String, message: String) -> Self {
        Self::Invalid { path: path.to_path_buf(), field, message }
    }
}
