//! CIDR blocks (`address/prefix`) as `cluster.toml` writes them.

use std::net::IpAddr;

pub use ipnetwork::IpNetwork;

/// A string that is not `address/prefix`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not address/prefix (e.g. 10.0.0.0/8 or 2001:db8::/32)")]
pub struct CidrError {
    /// The text as given.
    pub text: String,
}

/// Parses `address/prefix`; the prefix is required, so a bare address is not silently a /32.
pub fn parse_cidr(text: &str) -> Result<IpNetwork, CidrError> {
    let error = || CidrError { text: text.to_owned() };
    if !text.contains('/') {
        return Err(error());
    }
    text.trim().parse::<IpNetwork>().map_err(|_| error())
}

/// Whether `ip` is in `network`, seeing an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a
/// dual-stack socket reports) as the IPv4 address it is.
pub fn contains(network: &IpNetwork, ip: IpAddr) -> bool {
    network.contains(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches() {
        let net = parse_cidr("127.0.0.2/32").expect("valid");
        assert!(contains(&net, "127.0.0.2".parse().expect("ip")));
        assert!(contains(&net, "::ffff:127.0.0.2".parse().expect("ip")));
        assert!(!contains(&net, "127.0.0.3".parse().expect("ip")));
        let v6 = parse_cidr("2001:db8::/32").expect("valid");
        assert!(contains(&v6, "2001:db8:1::9".parse().expect("ip")));
        for bad in ["127.0.0.1", "127.0.0.1/33", "nowhere/8", "", "::/129"] {
            assert!(parse_cidr(bad).is_err(), "{bad:?} must be refused");
        }
    }
}
