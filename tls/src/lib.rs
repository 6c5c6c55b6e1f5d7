//! Meridian's TLS, with rustls (no OpenSSL).
//!
//! Every node holds a certificate issued by the cluster's own CA ([`pki`]): it names the node's
//! region in a SPIFFE URI (`spiffe://<cluster>/region/<name>`, [`NodeName`]) and the host names
//! clients dial. The internal listener requires such a certificate from every peer (mutual TLS);
//! the S3 and web listeners present the region's certificate (or a publicly trusted one) to
//! anyone. Certificates are [`Identity`]s that reload from their files on demand, without dropping
//! connections: new handshakes use the new files.
//!
//! Configs are built with the *ring* provider by name ([`provider`]): aws-lc-rs is in the
//! dependency tree too, and rustls refuses to guess between two.

mod error;
mod identity;
mod name;
pub mod pki;
mod refusal;
mod setup;

pub use error::TlsError;
pub use identity::{CertSummary, Identity};
pub use name::NodeName;
pub use refusal::{Refusal, admit_peer};
pub use setup::{TrustAnchors, internal_client_config, internal_server_config, peer_name, public_server_config};
pub use tokio_rustls::{TlsAcceptor, server::TlsStream};

/// The first byte of every TLS connection (a handshake record). A listener that also speaks plain
/// HTTP tells the two apart by it: no HTTP method starts with 0x16.
pub const HANDSHAKE_RECORD: u8 = 0x16;

/// The crypto provider of every config: ring.
pub fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}
