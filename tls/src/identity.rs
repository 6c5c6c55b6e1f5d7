//! A certificate and key read from files, swapped in place when the files change.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use rustls::SignatureScheme;
use rustls::client::ResolvesClientCert;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::extensions::GeneralName;

use crate::{NodeName, TlsError};

/// What a certificate says, for the status, `/metrics`, the logs and `meridian cert`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSummary {
    /// The file it was read from.
    pub path: PathBuf,
    /// The node it names (its SPIFFE URI), if it is a Meridian node's certificate.
    pub name: Option<NodeName>,
    /// Its DNS and IP SANs.
    pub hosts: Vec<String>,
    /// The end of its validity, seconds since the Unix epoch.
    pub not_after_unix: i64,
}

impl CertSummary {
    /// Reads the summary of a DER certificate.
    pub(crate) fn of_der(path: &Path, der: &[u8]) -> Result<Self, TlsError> {
        let invalid = |reason: String| TlsError::Certificate { what: path.display().to_string(), reason };
        let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| invalid(e.to_string()))?;
        let mut name = None;
        let mut hosts = Vec::new();
        if let Ok(Some(sans)) = cert.subject_alternative_name() {
            for san in &sans.value.general_names {
                match san {
                    GeneralName::URI(uri) => name = name.or_else(|| NodeName::parse(uri)),
                    GeneralName::DNSName(dns) => hosts.push((*dns).to_owned()),
                    GeneralName::IPAddress(bytes) => hosts.extend(ip_text(bytes)),
                    _ => {}
                }
            }
        }
        Ok(Self { path: path.to_owned(), name, hosts, not_after_unix: cert.validity().not_after.timestamp() })
    }

    /// What the first certificate of a PEM file says.
    pub fn read(path: &Path) -> Result<Self, TlsError> {
        let chain = read_certificates(path)?;
        Self::of_der(path, &chain[0])
    }

    /// Seconds until it expires (negative once it has).
    pub fn expires_in_secs(&self) -> i64 {
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.not_after_unix - i64::try_from(now).unwrap_or(i64::MAX)
    }
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(|b| std::net::Ipv4Addr::from(b).to_string()),
        16 => <[u8; 16]>::try_from(bytes).ok().map(|b| std::net::Ipv6Addr::from(b).to_string()),
        _ => None,
    }
}

/// A node's (or a listener's) certificate chain and private key, from two PEM files, served to
/// every new handshake as a server certificate and as a client certificate.
///
/// [`Identity::reload`] reads the files again and swaps the pair in one step; handshakes in
/// progress and open connections keep what they started with. A file that does not load (half
/// copied, a key that does not match) leaves the old pair in place: a botched renewal never takes
/// a node off the network.
#[derive(Debug)]
pub struct Identity {
    /// The certificate chain's file (the node's certificate first).
    cert_path: PathBuf,
    /// The private key's file.
    key_path: PathBuf,
    /// What handshakes use now, and the files' modification times it was read at.
    current: RwLock<Loaded>,
}

/// One loaded pair.
#[derive(Debug, Clone)]
struct Loaded {
    /// The chain and the signing key, as rustls uses them.
    key: Arc<CertifiedKey>,
    /// What the leaf certificate says.
    summary: CertSummary,
    /// The files' modification times when read: a change means reload.
    stamp: (Option<SystemTime>, Option<SystemTime>),
}

impl Identity {
    /// Reads the pair; fails when either file is missing or they do not match.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Arc<Self>, TlsError> {
        let loaded = read_pair(cert_path, key_path)?;
        Ok(Arc::new(Self {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            current: RwLock::new(loaded),
        }))
    }

    /// What the certificate in use says.
    pub fn summary(&self) -> CertSummary {
        self.read().summary.clone()
    }

    /// Reads the files again if either changed since the last read (or always, with `force`:
    /// SIGHUP). `Ok(Some(summary))` when a new pair is in use; `Ok(None)` when nothing changed;
    /// an error leaves the old pair in use.
    pub fn reload(&self, force: bool) -> Result<Option<CertSummary>, TlsError> {
        let stamp = (modified(&self.cert_path), modified(&self.key_path));
        if !force && stamp == self.read().stamp {
            return Ok(None);
        }
        let loaded = read_pair(&self.cert_path, &self.key_path)?;
        let summary = loaded.summary.clone();
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = loaded;
        Ok(Some(summary))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Loaded> {
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn certified_key(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.read().key)
    }
}

impl ResolvesServerCert for Identity {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.certified_key())
    }
}

impl ResolvesClientCert for Identity {
    fn resolve(&self, _root_hint_subjects: &[&[u8]], _sigschemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.certified_key())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Reads a chain and a key and checks that they belong together.
fn read_pair(cert_path: &Path, key_path: &Path) -> Result<Loaded, TlsError> {
    // The stamp is taken before reading: a file replaced while we read is read again next time.
    let stamp = (modified(cert_path), modified(key_path));
    let chain = read_certificates(cert_path)?;
    let key_pem = std::fs::read(key_path).map_err(|e| TlsError::io(key_path, e))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::pem(key_path, e))?;
    let signer = crate::provider().key_provider.load_private_key(key).map_err(|e| TlsError::pem(key_path, e))?;
    let summary = CertSummary::of_der(cert_path, &chain[0])?;
    let certified = CertifiedKey::new(chain, signer);
    certified.keys_match().map_err(|e| {
        TlsError::pem(key_path, format!("does not match the certificate in {}: {e}", cert_path.display()))
    })?;
    Ok(Loaded { key: Arc::new(certified), summary, stamp })
}

/// Every certificate of a PEM file, in order; at least one.
pub(crate) fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = std::fs::read(path).map_err(|e| TlsError::io(path, e))?;
    let certs =
        CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>().map_err(|e| TlsError::pem(path, e))?;
    if certs.is_empty() {
        return Err(TlsError::pem(path, "holds no PEM certificate"));
    }
    Ok(certs)
}
