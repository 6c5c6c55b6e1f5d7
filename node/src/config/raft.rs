//! `[raft]` and `[internal_rpc]` of `cluster.toml`: how the nodes agree (timing, snapshots,
//! read consistency and leases) and how the requests between them are signed.

use std::path::Path;

use serde::Deserialize;

use super::ConfigError;

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
    /// How long a read lease lasts, ms: while a node holds one, a linearizable read costs no
    /// round trip (see docs/architecture.md, "Read leases"). Unset: `election_timeout_min_ms`;
    /// 0: no leases (every linearizable read asks the leader for a read index). At most
    /// `election_timeout_min_ms`, because a new leader only waits out leases up to its election
    /// timeout; every node must use the same value (a leader refuses leases to other durations).
    pub(crate) read_lease_ms: Option<u64>,
}

/// `[raft] read_consistency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ReadConsistencySetting {
    /// See [`meridian_s3gw::ReadConsistency::Linearizable`].
    Linearizable,
    /// See [`meridian_s3gw::ReadConsistency::Available`].
    Available,
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
            read_lease_ms: None,
        }
    }
}

impl RaftSection {
    /// Checks that the timeouts are ordered heartbeat < election min < election max and that a
    /// read lease cannot outlast what a new leader waits out.
    pub(super) fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |field: &str, message: String| Err(ConfigError::invalid(path, field.into(), message));
        if self.heartbeat_ms == 0 || self.election_timeout_min_ms <= self.heartbeat_ms {
            return invalid("raft.election_timeout_min_ms", "must be greater than raft.heartbeat_ms (> 0)".into());
        }
        if self.election_timeout_max_ms <= self.election_timeout_min_ms {
            return invalid("raft.election_timeout_max_ms", "must be greater than raft.election_timeout_min_ms".into());
        }
        if let Some(lease) = self.read_lease_ms
            && lease > self.election_timeout_min_ms
        {
            return invalid(
                "raft.read_lease_ms",
                format!(
                    "{lease} is longer than raft.election_timeout_min_ms ({}): a new leader waits out the \
                     leases of its predecessor for at most its election timeout, so a longer lease could \
                     serve stale reads after a leader change",
                    self.election_timeout_min_ms
                ),
            );
        }
        Ok(())
    }
}

/// `[internal_rpc]`: signatures of requests between nodes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct InternalRpcSection {
    /// Also send and accept the signature of releases before scheme v2, which does not name
    /// the destination node or the cluster and has no nonce (replayable within 30 s to any
    /// node). Only for a rolling upgrade from such a release: turn it off once every node runs
    /// this one.
    pub(crate) legacy_signatures: bool,
    /// Nonces of accepted requests a node remembers for the replay window; when full, the
    /// oldest goes and requests as old are refused.
    pub(crate) nonce_cache_entries: usize,
}

impl Default for InternalRpcSection {
    fn default() -> Self {
        Self { legacy_signatures: false, nonce_cache_entries: 100_000 }
    }
}

impl InternalRpcSection {
    /// Checks that the nonce cache is big enough to matter and small enough to fit in memory.
    pub(super) fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let (value, min, max) = (self.nonce_cache_entries as u64, 16, 100_000_000);
        if !(min..=max).contains(&value) {
            return Err(ConfigError::invalid(
                path,
                "internal_rpc.nonce_cache_entries".into(),
                format!("{value} is not within {min}..={max}"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::testing::{VALID, assert_errors_name_the_field, load_str};

    #[test]
    fn read_leases_default_to_the_election_timeout_and_may_not_exceed_it() {
        let config = load_str(VALID).expect("valid");
        assert_eq!(config.timing().read_lease, Duration::from_millis(config.raft.election_timeout_min_ms));
        let off = load_str(&format!("{VALID}[raft]\nread_lease_ms = 0\n")).expect("leases off");
        assert_eq!(off.timing().read_lease, Duration::ZERO);
        let too_long = format!("{VALID}[raft]\nelection_timeout_min_ms = 400\nread_lease_ms = 401\n");
        let message = load_str(&too_long).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("raft.read_lease_ms") && message.contains("400"), "{message}");
    }

    #[test]
    fn internal_rpc_has_safe_defaults() {
        let config = load_str(VALID).expect("valid");
        assert!(!config.internal_rpc.legacy_signatures, "the replayable signature is off unless asked for");
        let set = load_str(&format!("{VALID}[internal_rpc]\nlegacy_signatures = true\n")).expect("valid");
        assert!(set.internal_rpc.legacy_signatures);
    }

    #[test]
    fn errors_name_the_field() {
        assert_errors_name_the_field([
            (format!("{VALID}[internal_rpc]\nnonce_cache_entries = 1\n"), "internal_rpc.nonce_cache_entries"),
            (format!("{VALID}[internal_rpc]\nlegacy_signatures = \"yes\"\n"), "legacy_signatures"),
        ]);
    }
}
