//! The cluster's own certificate authority: `meridian cert init` makes it, `meridian cert issue`
//! signs each node's certificate with it. Keys are ECDSA P-256; key files are written 0600.
//!
//! The CA's key is needed only to issue. Nodes need the CA's certificate (to know their peers)
//! and their own certificate and key; the CA key belongs on the machine that issues, not on them.

use std::io::Write as _;
use std::net::IpAddr;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use crate::identity::CertSummary;
use crate::{NodeName, TlsError};

/// Days a CA made by [`init_ca`] is valid: its expiry means re-issuing every node.
pub const CA_VALIDITY_DAYS: u32 = 3650;

/// Days a node certificate is valid unless asked otherwise.
pub const NODE_VALIDITY_DAYS: u32 = 365;

/// Makes a new CA for `cluster`: a self-signed certificate at `cert_path` and its key at
/// `key_path`. Refuses to overwrite either file: a new CA disowns every certificate the old one
/// issued.
pub fn init_ca(cluster: &str, cert_path: &Path, key_path: &Path, validity_days: u32) -> Result<CertSummary, TlsError> {
    refuse_existing(cert_path)?;
    refuse_existing(key_path)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, format!("Meridian cluster CA ({cluster})"));
    params.distinguished_name.push(DnType::OrganizationName, "Meridian");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    (params.not_before, params.not_after) = validity(validity_days);
    let cert = params.self_signed(&key)?;
    write_new(key_path, key.serialize_pem().as_bytes(), true)?;
    write_new(cert_path, cert.pem().as_bytes(), false)?;
    CertSummary::of_der(cert_path, cert.der())
}

/// What a node certificate is issued for.
#[derive(Debug, Clone)]
pub struct NodeCertRequest {
    /// The node's name, written as a URI SAN: what peers check.
    pub name: NodeName,
    /// Host names and IP addresses clients dial the node by (its listeners' hosts, the hosts of
    /// its public URLs): DNS or IP SANs, so ordinary HTTPS clients verify the node too.
    pub hosts: Vec<String>,
    /// Days of validity from now.
    pub validity_days: u32,
}

/// Issues a node certificate signed by the CA at `ca_cert`/`ca_key`, written to
/// `cert_path` (the certificate, then the CA's: a full chain) and `key_path`. Replaces existing
/// files: re-issuing is how a node's certificate is renewed (the node reloads it by itself).
pub fn issue(
    ca_cert: &Path,
    ca_key: &Path,
    request: &NodeCertRequest,
    cert_path: &Path,
    key_path: &Path,
) -> Result<CertSummary, TlsError> {
    let ca_cert_pem = std::fs::read_to_string(ca_cert).map_err(|e| TlsError::io(ca_cert, e))?;
    let ca_key_pem = std::fs::read_to_string(ca_key).map_err(|e| TlsError::io(ca_key, e))?;
    let ca_key_pair = KeyPair::from_pem(&ca_key_pem).map_err(|e| TlsError::pem(ca_key, e))?;
    let issuer = Issuer::from_ca_cert_pem(&ca_cert_pem, ca_key_pair).map_err(|e| TlsError::pem(ca_cert, e))?;

    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, format!("meridian {}", request.name.region));
    params.distinguished_name.push(DnType::OrganizationName, "Meridian");
    params.subject_alt_names.push(SanType::URI(request.name.uri().try_into()?));
    for host in &request.hosts {
        let san = match host.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(host.as_str().try_into()?),
        };
        if !params.subject_alt_names.contains(&san) {
            params.subject_alt_names.push(san);
        }
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    (params.not_before, params.not_after) = validity(request.validity_days);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;

    let chain = format!("{}{}", cert.pem(), ca_cert_pem);
    write_replacing(key_path, key.serialize_pem().as_bytes(), true)?;
    write_replacing(cert_path, chain.as_bytes(), false)?;
    CertSummary::of_der(cert_path, cert.der())
}

/// From an hour ago (a peer whose clock is a little behind accepts it at once) to `days` ahead.
fn validity(days: u32) -> (OffsetDateTime, OffsetDateTime) {
    let now = OffsetDateTime::now_utc();
    (now - Duration::hours(1), now + Duration::days(i64::from(days)))
}

fn refuse_existing(path: &Path) -> Result<(), TlsError> {
    if path.exists() {
        return Err(TlsError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::AlreadyExists, "exists already; not replaced"),
        ));
    }
    Ok(())
}

/// Writes a file that must not exist yet, fsynced; `secret` files are readable by the owner only.
fn write_new(path: &Path, bytes: &[u8], secret: bool) -> Result<(), TlsError> {
    let io = |e| TlsError::io(path, e);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    let mut file = options.open(path).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)
}

/// Replaces a file in one step (a temporary file renamed over it), so a node reloading it never
/// reads half a certificate or a key that does not match.
fn write_replacing(path: &Path, bytes: &[u8], secret: bool) -> Result<(), TlsError> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".new");
    let temporary = std::path::PathBuf::from(temporary);
    let _ = std::fs::remove_file(&temporary);
    write_new(&temporary, bytes, secret)?;
    std::fs::rename(&temporary, path).map_err(|e| TlsError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("meridian-tls-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_node_certificate_names_its_region_and_hosts() {
        let dir = temp_dir("issue");
        let ca = init_ca("meridian-dev", &dir.join("ca.crt"), &dir.join("ca.key"), 30).expect("ca");
        assert!(ca.expires_in_secs() > 29 * 86_400);
        let request = NodeCertRequest {
            name: NodeName::new("meridian-dev", "frankfurt"),
            hosts: vec!["127.0.0.1".into(), "fra.example.net".into()],
            validity_days: 10,
        };
        let node = issue(&dir.join("ca.crt"), &dir.join("ca.key"), &request, &dir.join("n.crt"), &dir.join("n.key"))
            .expect("issue");
        assert_eq!(node.name, Some(request.name.clone()));
        assert_eq!(node.hosts, vec!["127.0.0.1".to_owned(), "fra.example.net".to_owned()]);
        assert!((9 * 86_400..=10 * 86_400).contains(&node.expires_in_secs()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.join("n.key")).expect("key").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // A second init would disown every certificate issued: refused.
        assert!(init_ca("meridian-dev", &dir.join("ca.crt"), &dir.join("ca.key2"), 30).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
