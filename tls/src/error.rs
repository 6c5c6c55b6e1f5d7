//! Why a certificate, a key or a TLS config could not be had.

use std::path::PathBuf;

/// A failure to read, make or use a certificate or key. Each names the file it is about.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why (part of this error's text, so not also its `source`).
        cause: std::io::Error,
    },
    /// A file holds no PEM certificate or key of a kind we read, or a damaged one.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A certificate could not be parsed or does not say what it must.
    #[error("certificate {what}: {reason}")]
    Certificate {
        /// Which certificate (a path or a role).
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// rcgen could not make a key or a certificate.
    #[error("cannot issue: {0}")]
    Issue(#[from] rcgen::Error),
    /// rustls refused the certificate, the key or the configuration.
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
    /// The trust anchors could not build a verifier.
    #[error("cluster CA: {0}")]
    Verifier(String),
}

impl TlsError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), cause: source }
    }

    pub(crate) fn pem(path: impl Into<PathBuf>, reason: impl ToString) -> Self {
        Self::Pem { path: path.into(), reason: reason.to_string() }
    }
}
