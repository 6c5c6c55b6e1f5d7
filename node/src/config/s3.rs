//! `[s3]` of `cluster.toml`: how the S3 listener tells who its clients are.

use std::path::Path;

use meridian_geo::{TrustedProxies, parse_cidr};
use serde::Deserialize;

use super::ConfigError;

/// `[s3]`: settings of the S3 listener.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct S3Section {
    /// Networks (CIDR) of the operator's own reverse proxies or load balancers in front of the
    /// S3 listener. Only a request whose TCP peer is inside one has its `X-Forwarded-For`
    /// believed: the client is the right-most address of the chain that is not itself a trusted
    /// proxy. From anyone else the header is ignored and the TCP peer is the client, since
    /// anyone could write any address there and pass a bucket policy's `aws:SourceIp`
    /// condition. Empty (the default): nobody's header is believed.
    pub(crate) trusted_proxies: Vec<String>,
}

impl S3Section {
    /// Checks that every entry is a CIDR block.
    pub(super) fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        for (i, cidr) in self.trusted_proxies.iter().enumerate() {
            if let Err(e) = parse_cidr(cidr) {
                return Err(ConfigError::invalid(path, format!("s3.trusted_proxies[{i}]"), e.to_string()));
            }
        }
        Ok(())
    }

    /// The trusted proxies, reading `X-Forwarded-For` (validated at load: every entry parses).
    pub(crate) fn trusted_proxies(&self) -> TrustedProxies {
        TrustedProxies::new(self.trusted_proxies.iter().filter_map(|cidr| parse_cidr(cidr).ok()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{VALID, assert_errors_name_the_field, load_str};

    #[test]
    fn trusted_proxies_are_empty_by_default_and_read_as_cidrs() {
        let config = load_str(VALID).expect("valid");
        assert!(config.s3.trusted_proxies.is_empty(), "nobody is trusted by default");
        let ip = |s: &str| s.parse::<std::net::IpAddr>().expect("ip");
        let peer = ip("10.1.2.3");
        let got = config.s3.trusted_proxies().client_address(peer, &[], &["6.6.6.6"]);
        assert_eq!(got.ip, peer, "no proxy is trusted: the peer is the client");
        let with = format!("{VALID}\n[s3]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1/128\"]\n");
        let config = load_str(&with).expect("valid");
        let got = config.s3.trusted_proxies().client_address(peer, &[], &["6.6.6.6, 203.0.113.9"]);
        assert_eq!(got.ip, ip("203.0.113.9"), "the right-most untrusted hop");
    }

    #[test]
    fn errors_name_the_field() {
        assert_errors_name_the_field([
            (format!("{VALID}\n[s3]\ntrusted_proxies = [\"10.0.0.0/8\", \"nope\"]\n"), "s3.trusted_proxies[1]"),
            (format!("{VALID}\n[s3]\ntrusted_proxies = [\"10.0.0.1\"]\n"), "s3.trusted_proxies[0]"),
            (format!("{VALID}\n[s3]\ntrusted_proxy = []\n"), "trusted_proxy"),
        ]);
    }
}
