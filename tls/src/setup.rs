//! The rustls configurations: the internal listener (mutual TLS with the cluster CA), the S3 and
//! web listeners (server certificate only), and the client of calls between nodes.

use std::path::Path;
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig, ServerConnection};
use x509_parser::extensions::GeneralName;

use crate::identity::read_certificates;
use crate::{Identity, NodeName, TlsError};

/// The cluster CA's certificates: what a peer's certificate must chain to. Read once at start; a
/// new CA means restarting the nodes (it also means re-issuing every certificate).
#[derive(Debug, Clone)]
pub struct TrustAnchors {
    /// The roots, as rustls verifies with them.
    roots: Arc<RootCertStore>,
}

impl TrustAnchors {
    /// Reads the CA certificate(s) of a PEM file.
    pub fn load(path: &Path) -> Result<Self, TlsError> {
        let mut roots = RootCertStore::empty();
        for cert in read_certificates(path)? {
            roots.add(cert).map_err(|e| TlsError::pem(path, e))?;
        }
        Ok(Self { roots: Arc::new(roots) })
    }
}

/// The protocol the S3 and web listeners speak inside TLS, and the one a client of the internal
/// listeners asks for by default: HTTP/1.1.
fn alpn() -> Vec<Vec<u8>> {
    vec![b"http/1.1".to_vec()]
}

/// What the internal listener offers: HTTP/2 first, so calls between nodes share one warm
/// connection per peer (`meridian_raft::network::PeerClient` asks for it), and HTTP/1.1 for
/// clients that ask for nothing else (a node of the previous release, the CLI, blob pulls).
fn internal_alpn() -> Vec<Vec<u8>> {
    vec![b"h2".to_vec(), b"http/1.1".to_vec()]
}

/// The internal listener: presents `identity`, and completes a handshake only with a client
/// whose certificate chains to the cluster CA. Which region the client is, is checked after the
/// handshake ([`peer_name`]): the CA vouches for the certificate, the name says whose it is.
pub fn internal_server_config(identity: Arc<Identity>, anchors: &TrustAnchors) -> Result<Arc<ServerConfig>, TlsError> {
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::clone(&anchors.roots), crate::provider())
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))?;
    let mut config = ServerConfig::builder_with_provider(crate::provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(identity);
    config.alpn_protocols = internal_alpn();
    Ok(Arc::new(config))
}

/// An S3 or web listener: presents `identity` to anyone.
pub fn public_server_config(identity: Arc<Identity>) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(crate::provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(identity);
    config.alpn_protocols = alpn();
    Ok(Arc::new(config))
}

/// Calls to other nodes: trusts the cluster CA alone (not the system's roots: a certificate any
/// public CA issued for a peer's host name is not a peer) and presents `identity`.
pub fn internal_client_config(identity: Arc<Identity>, anchors: &TrustAnchors) -> Result<ClientConfig, TlsError> {
    let mut config = ClientConfig::builder_with_provider(crate::provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(Arc::clone(&anchors.roots))
        .with_client_cert_resolver(identity);
    config.alpn_protocols = alpn();
    Ok(config)
}

/// The node a verified client certificate names, or why it names none.
pub fn peer_name(connection: &ServerConnection) -> Result<NodeName, String> {
    let certs = connection.peer_certificates().ok_or("no client certificate")?;
    let leaf = certs.first().ok_or("no client certificate")?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).map_err(|e| format!("unreadable certificate: {e}"))?;
    let sans = cert.subject_alternative_name().map_err(|e| format!("unreadable SAN: {e}"))?;
    sans.into_iter()
        .flat_map(|sans| sans.value.general_names.iter())
        .find_map(|san| match san {
            GeneralName::URI(uri) => NodeName::parse(uri),
            _ => None,
        })
        .ok_or_else(|| "the certificate names no Meridian node (no spiffe://<cluster>/region/<name> URI)".to_owned())
}
