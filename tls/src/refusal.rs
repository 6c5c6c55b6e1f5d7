//! Why a listener turned a connection away: one reason per refusal, in words for the logs and
//! the status, and as a short label for `/metrics`.

use std::fmt;

use rustls::server::ServerConnection;
use rustls::{AlertDescription, CertificateError};

use crate::NodeName;

/// Why a connection was refused before any request was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Plain HTTP (the first byte is not a TLS handshake) where only TLS is served.
    Plaintext,
    /// No TLS handshake within the header-read timeout.
    Timeout,
    /// A TLS client without a certificate, on the internal listener.
    NoClientCertificate,
    /// A client certificate that does not chain to the cluster CA.
    UnknownIssuer,
    /// A client certificate outside its validity (expired, or not valid yet).
    Expired,
    /// A client certificate that is otherwise invalid (bad signature, wrong usage, ...).
    BadCertificate(String),
    /// A certificate of the cluster CA that names no Meridian node.
    NotANode,
    /// A certificate of the cluster CA that names a node of another cluster.
    OtherCluster(NodeName),
    /// A certificate of the cluster CA that names a region this cluster does not have.
    UnknownRegion(NodeName),
    /// The client refused this node's certificate (it sent an alert).
    ClientRefused(String),
    /// Any other handshake failure (not TLS after all, no common cipher, cut short, ...).
    Handshake(String),
}

impl Refusal {
    /// Every label [`Refusal::label`] gives, for a metrics family that lists zeros too.
    pub const LABELS: [&'static str; 11] = [
        "plaintext",
        "timeout",
        "no_client_certificate",
        "unknown_issuer",
        "expired",
        "bad_certificate",
        "not_a_node",
        "other_cluster",
        "unknown_region",
        "client_refused",
        "handshake",
    ];

    /// The `reason` label of `meridian_tls_handshake_refusals_total`: a fixed word, never a
    /// name a client chose (labels must not grow without bound).
    pub fn label(&self) -> &'static str {
        match self {
            Self::Plaintext => "plaintext",
            Self::Timeout => "timeout",
            Self::NoClientCertificate => "no_client_certificate",
            Self::UnknownIssuer => "unknown_issuer",
            Self::Expired => "expired",
            Self::BadCertificate(_) => "bad_certificate",
            Self::NotANode => "not_a_node",
            Self::OtherCluster(_) => "other_cluster",
            Self::UnknownRegion(_) => "unknown_region",
            Self::ClientRefused(_) => "client_refused",
            Self::Handshake(_) => "handshake",
        }
    }

    /// The reason of a failed server handshake, from the error tokio-rustls returns (a
    /// `rustls::Error` inside an `io::Error`).
    pub fn of_handshake_error(error: &std::io::Error) -> Self {
        let Some(tls) = error.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) else {
            return Self::Handshake(error.to_string());
        };
        match tls {
            rustls::Error::NoCertificatesPresented => Self::NoClientCertificate,
            rustls::Error::InvalidCertificate(cert) => match cert {
                // A bad signature on a chain that names the cluster CA as issuer: signed by
                // another CA of the same name (every cluster's CA is called after its cluster).
                CertificateError::UnknownIssuer | CertificateError::BadSignature => Self::UnknownIssuer,
                CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. } => Self::Expired,
                other => Self::BadCertificate(format!("{other:?}")),
            },
            rustls::Error::AlertReceived(alert) => Self::ClientRefused(alert_text(*alert)),
            other => Self::Handshake(other.to_string()),
        }
    }
}

fn alert_text(alert: AlertDescription) -> String {
    format!("{alert:?}")
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Plaintext => f.write_str("plaintext"),
            Self::Timeout => f.write_str("no TLS handshake within the header-read timeout"),
            Self::NoClientCertificate => f.write_str("no client certificate"),
            Self::UnknownIssuer => f.write_str("certificate not issued by the cluster CA"),
            Self::Expired => f.write_str("certificate expired or not valid yet"),
            Self::BadCertificate(why) => write!(f, "invalid certificate: {why}"),
            Self::NotANode => f.write_str("the certificate names no Meridian node"),
            Self::OtherCluster(name) => {
                write!(f, "names region {} of cluster {}, not of this cluster", name.region, name.cluster)
            }
            Self::UnknownRegion(name) => {
                write!(f, "names region {} of this cluster, which cluster.toml does not list", name.region)
            }
            Self::ClientRefused(alert) => write!(f, "the client refused this node's certificate ({alert})"),
            Self::Handshake(why) => write!(f, "TLS handshake failed: {why}"),
        }
    }
}

/// Admits the client of a completed internal handshake: its certificate (already verified
/// against the cluster CA) must name `cluster` and one of `regions`. The CA vouches for the
/// certificate; this says whose it is, so a certificate the same CA issued to another cluster's
/// node (a CA shared between staging and production) does not get in.
pub fn admit_peer<S: AsRef<str>>(
    connection: &ServerConnection,
    cluster: &str,
    regions: &[S],
) -> Result<NodeName, Refusal> {
    let name = match crate::peer_name(connection) {
        Ok(name) => name,
        Err(_) if connection.peer_certificates().is_none_or(<[_]>::is_empty) => {
            return Err(Refusal::NoClientCertificate);
        }
        Err(_) => return Err(Refusal::NotANode),
    };
    if name.cluster != cluster {
        return Err(Refusal::OtherCluster(name));
    }
    if !regions.iter().any(|r| r.as_ref() == name.region) {
        return Err(Refusal::UnknownRegion(name));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_listed_and_texts_name_the_node() {
        let all = [
            Refusal::Plaintext,
            Refusal::Timeout,
            Refusal::NoClientCertificate,
            Refusal::UnknownIssuer,
            Refusal::Expired,
            Refusal::BadCertificate("x".into()),
            Refusal::NotANode,
            Refusal::OtherCluster(NodeName::new("other", "frankfurt")),
            Refusal::UnknownRegion(NodeName::new("c1", "mars")),
            Refusal::ClientRefused("UnknownCA".into()),
            Refusal::Handshake("x".into()),
        ];
        for (refusal, label) in all.iter().zip(Refusal::LABELS) {
            assert_eq!(refusal.label(), label);
        }
        assert_eq!(
            Refusal::OtherCluster(NodeName::new("other", "frankfurt")).to_string(),
            "names region frankfurt of cluster other, not of this cluster"
        );
        assert_eq!(Refusal::UnknownIssuer.to_string(), "certificate not issued by the cluster CA");
    }

    #[test]
    fn handshake_errors_are_classified() {
        let wrap = |e: rustls::Error| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        assert_eq!(
            Refusal::of_handshake_error(&wrap(rustls::Error::NoCertificatesPresented)),
            Refusal::NoClientCertificate
        );
        assert_eq!(
            Refusal::of_handshake_error(&wrap(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer))),
            Refusal::UnknownIssuer
        );
        assert_eq!(
            Refusal::of_handshake_error(&wrap(rustls::Error::InvalidCertificate(CertificateError::Expired))),
            Refusal::Expired
        );
        let eof = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
        assert_eq!(Refusal::of_handshake_error(&eof).label(), "handshake");
    }
}
