//! What a node tells about its TLS: when its certificates expire and which connections its
//! listeners refused. The node gathers it (this crate does not hold the certificates); the web
//! listener shows it in `/api/v1/cluster` (field `tls`) and `/metrics`.
//!
//! Every field has a default: `meridian cluster status` reads the answers of nodes of older
//! releases (no `tls` at all) and of newer ones (fields it does not know) alike.

use serde::{Deserialize, Serialize};

/// A node's TLS figures at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TlsStatus {
    /// The certificates the node presents, one per role.
    pub certificates: Vec<CertificateStatus>,
    /// Refused connections since start, per listener and reason (zeros included).
    pub refusals: Vec<RefusalCount>,
    /// The last few refusals, oldest first.
    pub recent_refusals: Vec<RecentRefusal>,
}

/// One certificate in use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CertificateStatus {
    /// Its role: `internal` (internal listener and calls to peers) or `public` (S3 and web).
    pub certificate: String,
    /// The file it was read from.
    pub path: String,
    /// The end of its validity, seconds since the Unix epoch.
    pub not_after_unix: i64,
}

/// Refusals of one reason on one listener.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RefusalCount {
    /// `s3`, `web` or `internal`.
    pub listener: String,
    /// A fixed word (`plaintext`, `no_client_certificate`, `unknown_issuer`, ...).
    pub reason: String,
    /// Connections refused for it.
    pub count: u64,
}

/// One refused connection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RecentRefusal {
    /// When, Unix milliseconds.
    pub at_unix_ms: i64,
    /// `s3`, `web` or `internal`.
    pub listener: String,
    /// The client's address (`ip:port`).
    pub peer: String,
    /// Why, in words ("plaintext", "certificate not issued by the cluster CA", ...).
    pub reason: String,
}

/// Where the web listener gets a node's [`TlsStatus`] at each request.
pub trait TlsStatusSource: Send + Sync {
    /// The figures now.
    fn tls_status(&self) -> TlsStatus;
}

/// Seconds from `now_unix` to a certificate's end (negative once expired).
pub(crate) fn expires_in_secs(certificate: &CertificateStatus, now_unix: i64) -> i64 {
    certificate.not_after_unix.saturating_sub(now_unix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_without_tls_fields_or_with_unknown_ones_decodes() {
        let old: TlsStatus = serde_json::from_str("{}").expect("empty");
        assert_eq!(old, TlsStatus::default());
        let newer: TlsStatus = serde_json::from_str(
            r#"{"certificates":[{"certificate":"internal","not_after_unix":5,"issuer":"x"}],"future":1}"#,
        )
        .expect("newer");
        assert_eq!(newer.certificates[0].not_after_unix, 5);
        assert_eq!(newer.certificates[0].path, "");
    }
}
