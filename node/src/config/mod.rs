//! `cluster.toml`: the one typed description of a cluster, shared by every node and tool.
//!
//! Loading checks everything a node relies on and names the offending field in its error, so
//! a bad file is refused at start instead of failing later in a confusing way. This module is
//! the whole file and its loading; each section's type and checks live in the module named
//! after it.

mod api;
mod auth;
mod cluster;
mod error;
mod events;
mod geo;
mod limits;
mod raft;
mod region;
mod s3;
mod shares;
mod shipped_secrets;
mod storage;
#[cfg(test)]
pub(crate) mod testing;
mod tls;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use self::api::ApiSection;
pub(crate) use self::auth::{AuthAlgorithm, AuthSection};
use self::cluster::{ClusterSection, DevKey};
pub(crate) use self::error::ConfigError;
pub(crate) use self::events::{EventsSection, WebhookConfig};
use self::geo::GeoSection;
pub(crate) use self::limits::LimitsSection;
use self::raft::{InternalRpcSection, RaftSection, ReadConsistencySetting};
pub(crate) use self::region::{RegionConfig, Role};
use self::s3::S3Section;
use self::shares::SharesSection;
use self::storage::{ReplicationSection, StorageSection};
pub(crate) use self::tls::{InternalTls, TlsSection};

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClusterConfig {
    /// Cluster-wide settings.
    pub(crate) cluster: ClusterSection,
    /// The development access key; optional (`scripts/cluster-up` and the tests use one).
    #[serde(default)]
    pub(crate) dev_key: Option<DevKey>,
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
    /// Who may call the web listener's JSON API besides access-key holders.
    #[serde(default)]
    pub(crate) api: ApiSection,
    /// The event bus: retained history and webhook subscriptions.
    #[serde(default)]
    pub(crate) events: EventsSection,
    /// Sign-in through the cinema's Auth service; without it the user routes answer 503.
    #[serde(default)]
    pub(crate) auth: Option<AuthSection>,
    /// Share links: how many wrong passwords are tolerated.
    #[serde(default)]
    pub(crate) shares: SharesSection,
    /// The S3 listener: which proxies' `X-Forwarded-For` is believed.
    #[serde(default)]
    pub(crate) s3: S3Section,
    /// Timeouts and connection caps of the three listeners.
    #[serde(default)]
    pub(crate) limits: LimitsSection,
    /// Signatures of requests between nodes.
    #[serde(default)]
    pub(crate) internal_rpc: InternalRpcSection,
    /// The regions, one node each, in the order scripts list them.
    pub(crate) region: Vec<RegionConfig>,
    /// `[tls]`: required (validation says how to make it when it is missing); an `Option` only so
    /// that its absence is explained rather than reported as a missing field.
    #[serde(default)]
    pub(crate) tls: Option<TlsSection>,
    /// Directory of the config file; relative paths are resolved against it.
    #[serde(skip)]
    pub(crate) base_dir: PathBuf,
}

/// `path` resolved against the config file's directory.
pub(crate) fn resolve(base_dir: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() { path.to_path_buf() } else { base_dir.join(path) }
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

    /// Checks every section and returns the first error. The order is fixed, as it decides what
    /// a file with several faults reports; the regions come before what names them
    /// (`cluster.default_region`, the CIDR map).
    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        self.cluster.validate(path)?;
        if let Some(dev_key) = &self.dev_key {
            dev_key.validate(path)?;
        }
        if self.region.is_empty() {
            return Err(ConfigError::invalid(path, "region".into(), "at least one [[region]] is required".into()));
        }
        self.raft.validate(path)?;
        let names = region::validate_regions(&self.region, path)?;
        if !names.contains(&self.cluster.default_region) {
            return Err(ConfigError::invalid(
                path,
                "cluster.default_region".into(),
                format!("{:?} is not a configured region", self.cluster.default_region),
            ));
        }
        self.geo.validate(path, &self.base_dir, &names)?;
        self.limits.validate(path)?;
        self.s3.validate(path)?;
        self.storage.validate(path)?;
        self.replication.validate(path)?;
        self.internal_rpc.validate(path)?;
        self.events.validate(path)?;
        self.shares.validate(path)?;
        if let Some(auth) = &self.auth {
            auth.validate(path, &self.base_dir)?;
        }
        self.api.validate(path)?;
        match &self.tls {
            Some(tls) => tls.validate(path, &self.region),
            None => Err(ConfigError::invalid(
                path,
                "tls".into(),
                "[tls] is missing: nodes talk to each other only over mutual TLS. Make the cluster's CA and \
                 certificates with `meridian cert init` and `meridian cert issue --region NAME` (scripts/cluster-up \
                 does it), then add [tls] with ca_cert (see cluster.toml and docs/deploy.md)"
                    .into(),
            )),
        }
    }

    /// `[tls]`, which validation made sure is there.
    pub(crate) fn tls(&self) -> &TlsSection {
        self.tls.as_ref().expect("validated: [tls] is required")
    }

    /// How clients reach a region's S3 listener, for presigned URLs and redirects: `s3_url`, else
    /// `http://{s3}` where that listener answers plain HTTP (loopback, `plain_http_networks`),
    /// else `https://{s3}`.
    pub(crate) fn s3_url(&self, region: &RegionConfig) -> String {
        if let Some(url) = &region.s3_url {
            return url.clone();
        }
        let plain = region.s3.parse::<std::net::SocketAddr>().is_ok_and(|a| self.tls().plain_http_allowed(a.ip()));
        format!("{}://{}", if plain { "http" } else { "https" }, region.s3)
    }

    /// A path of the config, resolved against the config file's directory.
    pub(crate) fn resolve(&self, path: &Path) -> PathBuf {
        resolve(&self.base_dir, path)
    }

    /// The region called `name`.
    pub(crate) fn region(&self, name: &str) -> Option<&RegionConfig> {
        self.region.iter().find(|r| r.name == name)
    }

    /// A region's data directory, resolved against the config file's directory.
    pub(crate) fn data_dir(&self, region: &RegionConfig) -> PathBuf {
        self.resolve(&region.data_dir)
    }

    /// Raft timing as the store wants it.
    pub(crate) fn timing(&self) -> meridian_raft::RaftTiming {
        meridian_raft::RaftTiming {
            heartbeat: Duration::from_millis(self.raft.heartbeat_ms),
            election_min: Duration::from_millis(self.raft.election_timeout_min_ms),
            election_max: Duration::from_millis(self.raft.election_timeout_max_ms),
            snapshot_every: self.raft.snapshot_every.max(1),
            commit_timeout: Duration::from_millis(self.raft.commit_timeout_ms.max(100)),
            read_lease: Duration::from_millis(self.raft.read_lease_ms.unwrap_or(self.raft.election_timeout_min_ms)),
        }
    }

    /// The read consistency the gateway applies.
    pub(crate) fn read_consistency(&self) -> meridian_s3gw::ReadConsistency {
        match self.raft.read_consistency {
            ReadConsistencySetting::Linearizable => meridian_s3gw::ReadConsistency::Linearizable,
            ReadConsistencySetting::Available => meridian_s3gw::ReadConsistency::Available,
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

    #[test]
    fn the_shipped_cluster_toml_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cluster.toml");
        let config = ClusterConfig::load(&path).expect("cluster.toml loads");
        assert_eq!(config.region.len(), 3);
        assert!(config.auth.is_some(), "the shipped cluster signs in through the stand-in");
    }
}
