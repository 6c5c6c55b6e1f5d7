//! `[tls]` of `cluster.toml`, and each region's certificate files: the cluster's own CA, mutual
//! TLS between nodes, and where the S3 and web listeners may also answer plain HTTP.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ConfigError, RegionConfig};

/// `[tls]`: TLS on every listener. Required: the internal listener speaks only mutual TLS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TlsSection {
    /// The cluster CA's certificate (`meridian cert init` makes it): what a peer's certificate
    /// must chain to, and what HTTPS clients of the default setup trust.
    pub(crate) ca_cert: PathBuf,
    /// The CA's private key, read only by `meridian cert issue`; keep it off the nodes.
    /// Default: `ca.key` beside `ca_cert`.
    #[serde(default)]
    pub(crate) ca_key: Option<PathBuf>,
    /// How the internal listener and calls to peers use TLS.
    #[serde(default)]
    pub(crate) internal: InternalTls,
    /// Networks (CIDR) on which the S3 and web listeners also answer plain HTTP, besides
    /// loopback: a listener bound inside one sits behind a load balancer or CDN that terminates
    /// TLS. Anywhere else they answer HTTPS only.
    #[serde(default)]
    pub(crate) plain_http_networks: Vec<String>,
    /// Days ahead of a certificate's expiry from which the node warns about it.
    #[serde(default = "default_expiry_warning_days")]
    pub(crate) expiry_warning_days: u32,
}

fn default_expiry_warning_days() -> u32 {
    14
}

/// `[tls] internal`: mutual TLS between nodes, or the step of a rolling upgrade from a release
/// without it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum InternalTls {
    /// Peers dial with TLS and a cluster certificate; the listener refuses anything else.
    #[default]
    Mutual,
    /// The listener also accepts plaintext peers, and this node dials its peers in plaintext:
    /// set on every node while nodes of a release without TLS remain, then back to `mutual`.
    AcceptPlaintext,
}

/// The certificate and key files one region's listeners use, resolved against the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RegionTlsFiles {
    /// The node's certificate chain (issued by the cluster CA): internal listener, peer calls.
    pub(crate) cert: PathBuf,
    /// Its private key.
    pub(crate) key: PathBuf,
    /// The S3 and web listeners' certificate chain (`public_cert`, else `cert`).
    pub(crate) public_cert: PathBuf,
    /// Its private key.
    pub(crate) public_key: PathBuf,
}

impl TlsSection {
    /// Checks the CIDRs and the warning window.
    pub(super) fn validate(&self, path: &Path, regions: &[RegionConfig]) -> Result<(), ConfigError> {
        for (i, cidr) in self.plain_http_networks.iter().enumerate() {
            if let Err(e) = meridian_geo::parse_cidr(cidr) {
                return Err(ConfigError::invalid(path, format!("tls.plain_http_networks[{i}]"), e.to_string()));
            }
        }
        if !(1..=365).contains(&self.expiry_warning_days) {
            return Err(ConfigError::invalid(
                path,
                "tls.expiry_warning_days".into(),
                format!("{} is not within 1..=365", self.expiry_warning_days),
            ));
        }
        for (i, region) in regions.iter().enumerate() {
            if region.public_cert.is_some() != region.public_key.is_some() {
                return Err(ConfigError::invalid(
                    path,
                    format!("region[{i}].public_cert"),
                    "public_cert and public_key go together".into(),
                ));
            }
        }
        Ok(())
    }

    /// The CA key's path, as written (default `ca.key` beside the CA certificate).
    pub(crate) fn ca_key(&self) -> PathBuf {
        self.ca_key.clone().unwrap_or_else(|| self.ca_cert.with_file_name("ca.key"))
    }

    /// A region's files, as written: `tls_cert`/`tls_key`, by default `<region>.crt` and
    /// `<region>.key` beside the CA certificate (where `meridian cert issue` writes them).
    pub(crate) fn region_files(&self, region: &RegionConfig) -> RegionTlsFiles {
        let cert =
            region.tls_cert.clone().unwrap_or_else(|| self.ca_cert.with_file_name(format!("{}.crt", region.name)));
        let key = region.tls_key.clone().unwrap_or_else(|| self.ca_cert.with_file_name(format!("{}.key", region.name)));
        let (public_cert, public_key) = match (&region.public_cert, &region.public_key) {
            (Some(cert), Some(key)) => (cert.clone(), key.clone()),
            _ => (cert.clone(), key.clone()),
        };
        RegionTlsFiles { cert, key, public_cert, public_key }
    }

    /// Whether a listener bound to `ip` also answers plain HTTP: loopback, or inside one of
    /// `plain_http_networks`.
    pub(crate) fn plain_http_allowed(&self, ip: IpAddr) -> bool {
        ip.is_loopback()
            || self
                .plain_http_networks
                .iter()
                .filter_map(|cidr| meridian_geo::parse_cidr(cidr).ok())
                .any(|network| meridian_geo::contains(&network, ip))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{VALID, assert_errors_name_the_field, load_str};

    #[test]
    fn region_files_default_beside_the_ca() {
        let config = load_str(VALID).expect("valid");
        let tls = config.tls.as_ref().expect("tls");
        let files = tls.region_files(&config.region[0]);
        assert_eq!(files.cert, std::path::Path::new("tls/a.crt"));
        assert_eq!(files.public_key, std::path::Path::new("tls/a.key"));
        assert_eq!(tls.ca_key(), std::path::Path::new("tls/ca.key"));
        assert!(tls.plain_http_allowed("127.0.0.5".parse().expect("ip")));
        assert!(!tls.plain_http_allowed("10.1.2.3".parse().expect("ip")));
        let private = VALID.replace("[tls]\n", "[tls]\nplain_http_networks = [\"10.0.0.0/8\"]\n");
        let config = load_str(&private).expect("valid");
        assert!(config.tls.as_ref().expect("tls").plain_http_allowed("10.1.2.3".parse().expect("ip")));
    }

    #[test]
    fn errors_name_the_field() {
        assert_errors_name_the_field([
            (VALID.replace("[tls]\n", "[tls]\nplain_http_networks = [\"nope\"]\n"), "tls.plain_http_networks[0]"),
            (VALID.replace("[tls]\n", "[tls]\nexpiry_warning_days = 0\n"), "tls.expiry_warning_days"),
            (VALID.replace("[tls]\n", "[tls]\ninternal = \"sometimes\"\n"), "internal"),
            (VALID.replace("role = \"voter\"", "role = \"voter\"\npublic_cert = \"x.crt\""), "region[0].public_cert"),
            (VALID.replace("[tls]\nca_cert = \"tls/ca.crt\"\n", ""), "tls"),
        ]);
    }
}
