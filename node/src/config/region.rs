//! `[[region]]` of `cluster.toml`: the regions, one node each, with their position, listeners,
//! data directory and Raft role.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;

/// Whether a region votes in Raft.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Role {
    /// Votes and counts for the quorum.
    Voter,
    /// Receives the log but does not vote.
    Learner,
}

/// One `[[region]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegionConfig {
    /// Raft node id, unique and stable.
    pub(crate) id: u64,
    /// Region name, unique.
    pub(crate) name: String,
    /// Latitude of the region, degrees.
    pub(crate) latitude: f64,
    /// Longitude of the region, degrees.
    pub(crate) longitude: f64,
    /// S3 listener.
    pub(crate) s3: String,
    /// How clients reach the S3 listener, for presigned URLs (`http(s)://host[:port]`, e.g. a
    /// public name in front of it); `http://{s3}` when absent.
    #[serde(default)]
    pub(crate) s3_url: Option<String>,
    /// Web listener.
    pub(crate) web: String,
    /// Internal listener: the address peers dial (`ip:port` or `host:port`), recorded in the
    /// Raft membership. A host name needs `internal_bind`.
    pub(crate) internal: String,
    /// Address the internal listener binds when it is not `internal` itself: when peers reach
    /// this node through something in between (a relay, a NAT, a WAN emulator), they dial
    /// `internal` while the node listens here. Default: `internal`.
    #[serde(default)]
    pub(crate) internal_bind: Option<String>,
    /// Source address of this node's calls to peers (Raft, forwarded writes, blob pulls, load
    /// exchange): on a host with several addresses, the one peers' firewalls expect; and what
    /// lets `scripts/wan-bench` tell regions apart on loopback, so its relay can give every pair
    /// of regions its own delay. Default: chosen by the operating system.
    #[serde(default)]
    pub(crate) internal_source: Option<std::net::IpAddr>,
    /// The node's certificate chain, issued by the cluster CA (default: `<name>.crt` beside
    /// `[tls] ca_cert`): presented by the internal listener and on calls to peers, and by the
    /// S3 and web listeners unless `public_cert` is set.
    #[serde(default)]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The key of `tls_cert` (default: `<name>.key` beside `[tls] ca_cert`).
    #[serde(default)]
    pub(crate) tls_key: Option<PathBuf>,
    /// A certificate chain for the S3 and web listeners only (one a public CA issued for the
    /// names clients use); with `public_key`.
    #[serde(default)]
    pub(crate) public_cert: Option<PathBuf>,
    /// The key of `public_cert`.
    #[serde(default)]
    pub(crate) public_key: Option<PathBuf>,
    /// Data directory (relative to the config file).
    pub(crate) data_dir: PathBuf,
    /// Voter or learner.
    pub(crate) role: Role,
}

/// Checks each region and that ids, names and listener addresses are unique over all of them
/// and that one region votes; returns the region names, which other sections refer to.
pub(super) fn validate_regions(regions: &[RegionConfig], path: &Path) -> Result<HashSet<String>, ConfigError> {
    let invalid = |field: String, message: String| ConfigError::invalid(path, field, message);
    let (mut ids, mut names, mut addrs) = (HashSet::new(), HashSet::new(), HashSet::new());
    for (i, region) in regions.iter().enumerate() {
        let field = |name: &str| format!("region[{i}].{name}");
        if region.id == 0 || !ids.insert(region.id) {
            return Err(invalid(field("id"), format!("{} is zero or used twice", region.id)));
        }
        if region.name.is_empty()
            || !region.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(invalid(field("name"), format!("{:?} must be lowercase letters, digits and '-'", region.name)));
        }
        if !names.insert(region.name.clone()) {
            return Err(invalid(field("name"), format!("{:?} is used twice", region.name)));
        }
        if !(-90.0..=90.0).contains(&region.latitude) {
            return Err(invalid(field("latitude"), format!("{} is not within -90..=90", region.latitude)));
        }
        if !(-180.0..=180.0).contains(&region.longitude) {
            return Err(invalid(field("longitude"), format!("{} is not within -180..=180", region.longitude)));
        }
        let bind = region.internal_bind.iter().map(|a| ("internal_bind", a));
        for (name, addr) in
            [("s3", &region.s3), ("web", &region.web), ("internal", &region.internal)].into_iter().chain(bind)
        {
            if addr.parse::<SocketAddr>().is_err() {
                let named_host = name == "internal" && region.internal_bind.is_some() && is_host_port(addr);
                if !named_host {
                    let expected = if name == "internal" {
                        "an ip:port address (or host:port, with internal_bind)"
                    } else {
                        "an ip:port address"
                    };
                    return Err(invalid(field(name), format!("{addr:?} is not {expected}")));
                }
            }
            if !addrs.insert(addr.clone()) {
                return Err(invalid(field(name), format!("{addr} is used twice")));
            }
        }
        if let Some(source) = region.internal_source
            && (source.is_unspecified() || source.is_multicast())
        {
            return Err(invalid(field("internal_source"), format!("{source} is not an address a call can leave from")));
        }
        if let Some(url) = &region.s3_url {
            let host = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
            if host.is_none_or(|h| h.is_empty() || h.contains('/')) {
                return Err(invalid(field("s3_url"), format!("{url:?} is not http(s)://host[:port]")));
            }
        }
    }
    if !regions.iter().any(|r| r.role == Role::Voter) {
        return Err(invalid("region".into(), "at least one region must have role = \"voter\"".into()));
    }
    Ok(names)
}

/// `host:port` with a DNS host name: letters, digits, '-' and '.', and a port.
fn is_host_port(addr: &str) -> bool {
    addr.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty()
            && host.len() <= 253
            && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            && port.parse::<u16>().is_ok_and(|p| p > 0)
    })
}

#[cfg(test)]
mod tests {
    use super::super::ClusterConfig;
    use super::super::testing::{VALID, assert_errors_name_the_field, load_str};

    #[test]
    fn internal_bind_defaults_to_the_advertised_address() {
        let config = load_str(VALID).expect("valid");
        assert_eq!(ClusterConfig::internal_bind(&config.region[0]), "127.0.0.1:3");
        let relayed = VALID.replace("name = \"a\"", "name = \"a\"\ninternal_bind = \"127.0.0.1:4\"");
        let config = load_str(&relayed).expect("valid with internal_bind");
        assert_eq!(ClusterConfig::internal_bind(&config.region[0]), "127.0.0.1:4");
        assert_eq!(ClusterConfig::node_of(&config.region[0]).internal, "127.0.0.1:3", "peers dial `internal`");
    }

    #[test]
    fn internal_source_is_an_address_to_call_from() {
        let config = load_str(VALID).expect("valid");
        assert_eq!(config.region[0].internal_source, None, "the system's choice by default");
        let sourced = VALID.replace("name = \"a\"", "name = \"a\"\ninternal_source = \"127.0.0.12\"");
        let config = load_str(&sourced).expect("valid with internal_source");
        assert_eq!(config.region[0].internal_source, Some([127, 0, 0, 12].into()));
    }

    #[test]
    fn internal_may_name_a_host_when_the_bind_address_is_given() {
        let named = VALID
            .replace("internal = \"127.0.0.1:3\"", "internal = \"node-a.example:3\"\ninternal_bind = \"127.0.0.1:3\"");
        let config = load_str(&named).expect("a host name with internal_bind");
        assert_eq!(ClusterConfig::node_of(&config.region[0]).internal, "node-a.example:3");
        assert_eq!(ClusterConfig::internal_bind(&config.region[0]), "127.0.0.1:3");
    }

    #[test]
    fn errors_name_the_field() {
        assert_errors_name_the_field([
            (VALID.replace("127.0.0.1:1", "nowhere"), "region[0].s3"),
            (VALID.replace("latitude = 1.0", "latitude = 100.0"), "region[0].latitude"),
            (VALID.replace("role = \"voter\"", "role = \"boss\""), "role"),
            (VALID.replace("name = \"a\"", "name = \"a\"\nbogus = 1"), "bogus"),
            (VALID.replace("role = \"voter\"", "role = \"voter\"\ns3_url = \"ftp://x\""), "region[0].s3_url"),
            (VALID.replace("name = \"a\"", "name = \"a\"\ninternal_bind = \"x\""), "region[0].internal_bind"),
            (VALID.replace("name = \"a\"", "name = \"a\"\ninternal_source = \"0.0.0.0\""), "region[0].internal_source"),
            (VALID.replace("name = \"a\"", "name = \"a\"\ninternal_source = \"here\""), "internal_source"),
            (VALID.replace("127.0.0.1:3", "node-a.example:3"), "region[0].internal"),
            (VALID.replace("name = \"a\"", "name = \"a\"\ninternal_bind = \"127.0.0.1:1\""), "region[0].internal_bind"),
        ]);
    }
}
