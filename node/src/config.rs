//! `cluster.toml`: the one typed description of a cluster, shared by every node and tool.
//!
//! Loading checks everything a node relies on and names the offending field in its error, so
//! a bad file is refused at start instead of failing later in a confusing way.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// A config file that cannot be used, with the field at fault.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {cause}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why (not a `source`: the message already says it once).
        cause: std::io::Error,
    },
    /// The file is not valid TOML or does not fit the schema (toml names the field).
    #[error("{path}: {cause}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message, with line and key.
        cause: Box<toml::de::Error>,
    },
    /// A field has a value that cannot work.
    #[error("{path}: {field}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Dotted path of the field, e.g. `region[1].s3`.
        field: String,
        /// What is wrong.
        message: String,
    },
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClusterConfig {
    /// Cluster-wide settings.
    pub(crate) cluster: ClusterSection,
    /// The development access key.
    pub(crate) dev_key: DevKey,
    /// Raft timing.
    #[serde(default)]
    pub(crate) raft: RaftSection,
    /// Storage settings.
    #[serde(default)]
    pub(crate) storage: StorageSection,
    /// Replication settings.
    #[serde(default)]
    pub(crate) replication: ReplicationSection,
    /// Client-position settings (used by geo routing).
    #[serde(default)]
    pub(crate) geo: GeoSection,
    /// The regions, one node each, in the order scripts list them.
    pub(crate) region: Vec<RegionConfig>,
    /// Directory of the config file; relative paths are resolved against it.
    #[serde(skip)]
    pub(crate) base_dir: PathBuf,
}

/// `[cluster]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClusterSection {
    /// Name of the cluster; Raft refuses peers with another.
    pub(crate) name: String,
    /// Key of the HMAC that signs internal requests.
    pub(crate) secret: String,
    /// Region for clients whose position is unknown.
    pub(crate) default_region: String,
    /// Base domain for virtual-host style S3 requests (`bucket.domain`); path style always works.
    #[serde(default)]
    pub(crate) s3_domain: Option<String>,
}

/// `[dev_key]`: created in the replicated key store when the cluster is first initialized.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DevKey {
    /// Access key id.
    pub(crate) access_key_id: String,
    /// Secret access key.
    pub(crate) secret_access_key: String,
}

/// `[raft]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RaftSection {
    /// Leader heartbeat interval.
    pub(crate) heartbeat_ms: u64,
    /// Election timeout, lower bound.
    pub(crate) election_timeout_min_ms: u64,
    /// Election timeout, upper bound.
    pub(crate) election_timeout_max_ms: u64,
    /// Entries between snapshots.
    pub(crate) snapshot_every: u64,
    /// How long a write may wait for its commit before the client gets ServiceUnavailable.
    pub(crate) commit_timeout_ms: u64,
    /// `linearizable` (default): every read first catches up with the leader's commit index;
    /// `local`: reads of known keys are served from local state without a round trip.
    pub(crate) read_consistency: ReadConsistencySetting,
}

/// `[raft] read_consistency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ReadConsistencySetting {
    /// See [`meridian_s3gw::ReadConsistency::Linearizable`].
    Linearizable,
    /// See [`meridian_s3gw::ReadConsistency::Local`].
    Local,
}

impl Default for RaftSection {
    fn default() -> Self {
        Self {
            heartbeat_ms: 300,
            election_timeout_min_ms: 1500,
            election_timeout_max_ms: 3000,
            snapshot_every: 20_000,
            commit_timeout_ms: 10_000,
            read_consistency: ReadConsistencySetting::Linearizable,
        }
    }
}

/// `[storage]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct StorageSection {
    /// Multipart uploads older than this are aborted.
    pub(crate) multipart_max_age_secs: u64,
}

impl Default for StorageSection {
    fn default() -> Self {
        Self { multipart_max_age_secs: 24 * 3600 }
    }
}

/// `[replication]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ReplicationSection {
    /// How many blobs a node pulls at once.
    pub(crate) max_concurrent_pulls: usize,
    /// Bandwidth limit of all pulls of a node together, MiB/s; 0 means unlimited.
    pub(crate) bandwidth_mib_per_sec: u64,
}

impl Default for ReplicationSection {
    fn default() -> Self {
        Self { max_concurrent_pulls: 4, bandwidth_mib_per_sec: 0 }
    }
}

/// `[geo]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GeoSection {
    /// The CIDR-to-region map ("fake GeoIP").
    #[serde(default)]
    pub(crate) cidr: Vec<CidrRule>,
}

/// One `[[geo.cidr]]` rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CidrRule {
    /// `address/prefix`.
    pub(crate) cidr: String,
    /// Region of the clients in it.
    pub(crate) region: String,
}

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
    /// Web listener.
    pub(crate) web: String,
    /// Internal listener: the address peers dial, recorded in the Raft membership.
    pub(crate) internal: String,
    /// Address the internal listener binds when it is not `internal` itself: when peers reach
    /// this node through something in between (a relay, a NAT, a WAN emulator), they dial
    /// `internal` while the node listens here. Default: `internal`.
    #[serde(default)]
    pub(crate) internal_bind: Option<String>,
    /// Data directory (relative to the config file).
    pub(crate) data_dir: PathBuf,
    /// Voter or learner.
    pub(crate) role: Role,
}

impl ClusterConfig {
    /// Reads and validates a config file.
    pub(crate) fn load(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|cause| ConfigError::Read { path: path.to_path_buf(), cause })?;
        let mut config: Self = toml::from_str(&text)
            .map_err(|cause| ConfigError::Parse { path: path.to_path_buf(), cause: Box::new(cause) })?;
        config.base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        if config.base_dir.as_os_str().is_empty() {
            config.base_dir = PathBuf::from(".");
        }
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid =
            |field: String, message: String| ConfigError::Invalid { path: path.to_path_buf(), field, message };
        if self.cluster.name.trim().is_empty() {
            return Err(invalid("cluster.name".into(), "must not be empty".into()));
        }
        if self.cluster.secret.len() < 16 {
            return Err(invalid("cluster.secret".into(), "must be at least 16 characters".into()));
        }
        if self.dev_key.access_key_id.len() < 3 || self.dev_key.secret_access_key.len() < 8 {
            return Err(invalid(
                "dev_key".into(),
                "access_key_id (>= 3 chars) and secret_access_key (>= 8 chars) are required".into(),
            ));
        }
        if self.region.is_empty() {
            return Err(invalid("region".into(), "at least one [[region]] is required".into()));
        }
        let raft = &self.raft;
        if raft.heartbeat_ms == 0 || raft.election_timeout_min_ms <= raft.heartbeat_ms {
            return Err(invalid(
                "raft.election_timeout_min_ms".into(),
                "must be greater than raft.heartbeat_ms (> 0)".into(),
            ));
        }
        if raft.election_timeout_max_ms <= raft.election_timeout_min_ms {
            return Err(invalid(
                "raft.election_timeout_max_ms".into(),
                "must be greater than raft.election_timeout_min_ms".into(),
            ));
        }
        let (mut ids, mut names, mut addrs) = (HashSet::new(), HashSet::new(), HashSet::new());
        for (i, region) in self.region.iter().enumerate() {
            let field = |name: &str| format!("region[{i}].{name}");
            if region.id == 0 || !ids.insert(region.id) {
                return Err(invalid(field("id"), format!("{} is zero or used twice", region.id)));
            }
            if region.name.is_empty()
                || !region.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(invalid(
                    field("name"),
                    format!("{:?} must be lowercase letters, digits and '-'", region.name),
                ));
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
                    return Err(invalid(field(name), format!("{addr:?} is not an ip:port address")));
                }
                if !addrs.insert(addr.clone()) {
                    return Err(invalid(field(name), format!("{addr} is used twice")));
                }
            }
        }
        if !self.region.iter().any(|r| r.role == Role::Voter) {
            return Err(invalid("region".into(), "at least one region must have role = \"voter\"".into()));
        }
        if !names.contains(&self.cluster.default_region) {
            return Err(invalid(
                "cluster.default_region".into(),
                format!("{:?} is not a configured region", self.cluster.default_region),
            ));
        }
        for (i, rule) in self.geo.cidr.iter().enumerate() {
            let valid = rule.cidr.split_once('/').is_some_and(|(ip, bits)| {
                let max = match ip.parse::<IpAddr>() {
                    Ok(IpAddr::V4(_)) => 32,
                    Ok(IpAddr::V6(_)) => 128,
                    Err(_) => return false,
                };
                bits.parse::<u8>().is_ok_and(|b| b <= max)
            });
            if !valid {
                return Err(invalid(format!("geo.cidr[{i}].cidr"), format!("{:?} is not address/prefix", rule.cidr)));
            }
            if !names.contains(&rule.region) {
                return Err(invalid(
                    format!("geo.cidr[{i}].region"),
                    format!("{:?} is not a configured region", rule.region),
                ));
            }
        }
        Ok(())
    }

    /// The region called `name`.
    pub(crate) fn region(&self, name: &str) -> Option<&RegionConfig> {
        self.region.iter().find(|r| r.name == name)
    }

    /// A region's data directory, resolved against the config file's directory.
    pub(crate) fn data_dir(&self, region: &RegionConfig) -> PathBuf {
        if region.data_dir.is_absolute() { region.data_dir.clone() } else { self.base_dir.join(&region.data_dir) }
    }

    /// Raft timing as the store wants it.
    pub(crate) fn timing(&self) -> meridian_raft::RaftTiming {
        meridian_raft::RaftTiming {
            heartbeat: Duration::from_millis(self.raft.heartbeat_ms),
            election_min: Duration::from_millis(self.raft.election_timeout_min_ms),
            election_max: Duration::from_millis(self.raft.election_timeout_max_ms),
            snapshot_every: self.raft.snapshot_every.max(1),
            commit_timeout: Duration::from_millis(self.raft.commit_timeout_ms.max(100)),
        }
    }

    /// The read consistency the gateway applies.
    pub(crate) fn read_consistency(&self) -> meridian_s3gw::ReadConsistency {
        match self.raft.read_consistency {
            ReadConsistencySetting::Linearizable => meridian_s3gw::ReadConsistency::Linearizable,
            ReadConsistencySetting::Local => meridian_s3gw::ReadConsistency::Local,
        }
    }

    /// Where a region's internal listener binds: `internal_bind`, else `internal`.
    pub(crate) fn internal_bind(region: &RegionConfig) -> &str {
        region.internal_bind.as_deref().unwrap_or(&region.internal)
    }

    /// The membership record of a region.
    pub(crate) fn node_of(region: &RegionConfig) -> meridian_raft::RegionNode {
        meridian_raft::RegionNode {
            region: region.name.clone(),
            internal: region.internal.clone(),
            s3: region.s3.clone(),
            web: region.web.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str) -> Result<ClusterConfig, ConfigError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cluster.toml");
        std::fs::write(&path, text).expect("write config");
        ClusterConfig::load(&path)
    }

    const VALID: &str = r#"
[cluster]
name = "t"
secret = "0123456789abcdef0123"
default_region = "a"
[dev_key]
access_key_id = "KEY"
secret_access_key = "secret-secret"
[[region]]
id = 1
name = "a"
latitude = 1.0
longitude = 2.0
s3 = "127.0.0.1:1"
web = "127.0.0.1:2"
internal = "127.0.0.1:3"
data_dir = "data/a"
role = "voter"
"#;

    #[test]
    fn the_shipped_cluster_toml_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cluster.toml");
        let config = ClusterConfig::load(&path).expect("cluster.toml loads");
        assert_eq!(config.region.len(), 3);
    }

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
    fn errors_name_the_field() {
        assert!(load_str(VALID).is_ok());
        let cases = [
            (VALID.replace("127.0.0.1:1", "nowhere"), "region[0].s3"),
            (VALID.replace("latitude = 1.0", "latitude = 100.0"), "region[0].latitude"),
            (VALID.replace("default_region = \"a\"", "default_region = \"zz\""), "cluster.default_region"),
            (VALID.replace("0123456789abcdef0123", "short"), "cluster.secret"),
            (VALID.replace("role = \"voter\"", "role = \"boss\""), "role"),
            (VALID.replace("name = \"a\"", "name = \"a\"\nbogus = 1"), "bogus"),
            (VALID.replace("name = \"a\"", "name = \"a\"\ninternal_bind = \"x\""), "region[0].internal_bind"),
            (VALID.replace("name = \"a\"", "name = \"a\"\ninternal_bind = \"127.0.0.1:1\""), "region[0].internal_bind"),
        ];
        for (text, field) in cases {
            let message = load_str(&text).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(message.contains(field), "error {message:?} should name {field}");
        }
    }
}
