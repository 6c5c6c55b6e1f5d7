//! `[storage]` and `[replication]` of `cluster.toml`: how a node keeps its blobs (multipart
//! cleanup, scrubbing) and how it pulls the copies it should hold from its peers.

use serde::Deserialize;

/// `[storage]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct StorageSection {
    /// Multipart uploads older than this are aborted.
    pub(crate) multipart_max_age_secs: u64,
    /// Pause between the end of one scrub pass and the start of the next (a pass re-reads every
    /// blob this node holds, to find missing and corrupt copies and pull them again); 0 turns
    /// the periodic scrub off (`meridian scrub` still runs one on demand).
    pub(crate) scrub_interval_secs: u64,
    /// Read bandwidth of a scrub pass, MiB/s, so it does not starve clients of the disk;
    /// 0 means unlimited.
    pub(crate) scrub_bandwidth_mib_per_sec: u64,
}

impl Default for StorageSection {
    fn default() -> Self {
        Self { multipart_max_age_secs: 24 * 3600, scrub_interval_secs: 6 * 3600, scrub_bandwidth_mib_per_sec: 64 }
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
