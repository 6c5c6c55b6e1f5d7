//! `[cluster]` and `[dev_key]` of `cluster.toml`: the cluster's name and internal secret, and
//! the optional development access key.

use std::path::Path;

use serde::Deserialize;

use super::ConfigError;

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

impl ClusterSection {
    /// Checks the name and the secret; `default_region` is checked once the regions are known
    /// (see `ClusterConfig::validate`).
    pub(super) fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        if self.name.trim().is_empty() {
            return Err(ConfigError::invalid(path, "cluster.name".into(), "must not be empty".into()));
        }
        if self.secret.len() < 16 {
            return Err(ConfigError::invalid(path, "cluster.secret".into(), "must be at least 16 characters".into()));
        }
        Ok(())
    }
}

/// `[dev_key]`: installed in the replicated key store by the first voter at each start (a
/// deleted dev key comes back then: remove the section to keep it gone).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DevKey {
    /// Access key id.
    pub(crate) access_key_id: String,
    /// Secret access key.
    pub(crate) secret_access_key: String,
}

impl DevKey {
    /// Checks that both parts are long enough to be a key at all.
    pub(super) fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        if self.access_key_id.len() < 3 || self.secret_access_key.len() < 8 {
            return Err(ConfigError::invalid(
                path,
                "dev_key".into(),
                "access_key_id (>= 3 chars) and secret_access_key (>= 8 chars) are required".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{VALID, assert_errors_name_the_field};

    #[test]
    fn errors_name_the_field() {
        assert_errors_name_the_field([
            (VALID.replace("default_region = \"a\"", "default_region = \"zz\""), "cluster.default_region"),
            (VALID.replace("0123456789abcdef0123", "short"), "cluster.secret"),
        ]);
    }
}
