//! `[storage]` and `[replication]` of `cluster.toml`: how a node keeps its blobs (multipart
//! cleanup, scrubbing) and its metadata database (cache), and how it pulls the copies it should
//! hold from its peers.

use std::path::Path;

use serde::Deserialize;

use super::ConfigError;

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
    /// MiB of page cache of the metadata database (sled's `cache_capacity`; the Raft log and the
    /// state tables share it). It is what bounds a node's memory as the object count grows:
    /// sled's own default is 1 GiB, which a node reaches at a few hundred thousand objects.
    pub(crate) cache_mib: u64,
}

/// Default of `[storage] cache_mib`: enough for the hot part of the tables of millions of
/// objects (measured in BENCHMARKS.md, "Scale"), a small fraction of a server's memory.
const DEFAULT_CACHE_MIB: u64 = 128;
/// Bounds of `[storage] cache_mib`: below 8 MiB sled evicts its working set on every write;
/// above 1 TiB is a typo (and would overflow nothing, but fits no machine).
const CACHE_MIB_RANGE: std::ops::RangeInclusive<u64> = 8..=1024 * 1024;

impl Default for StorageSection {
    fn default() -> Self {
        Self {
            multipart_max_age_secs: 24 * 3600,
            scrub_interval_secs: 6 * 3600,
            scrub_bandwidth_mib_per_sec: 64,
            cache_mib: DEFAULT_CACHE_MIB,
        }
    }
}

impl StorageSection {
    /// Checks that the database cache is within [`CACHE_MIB_RANGE`].
    pub(super) fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        if !CACHE_MIB_RANGE.contains(&self.cache_mib) {
            return Err(ConfigError::invalid(
                path,
                "storage.cache_mib".into(),
                format!(
                    "{} is not within {}..={} (MiB of the metadata database's cache)",
                    self.cache_mib,
                    CACHE_MIB_RANGE.start(),
                    CACHE_MIB_RANGE.end()
                ),
            ));
        }
        Ok(())
    }

    /// The database cache in bytes, as sled takes it.
    pub(crate) fn cache_bytes(&self) -> u64 {
        self.cache_mib.saturating_mul(1024 * 1024)
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

#[cfg(test)]
mod tests {
    use super::super::testing::{VALID, assert_errors_name_the_field, load_str};

    #[test]
    fn the_database_cache_defaults_to_128_mib_and_can_be_set() {
        let config = load_str(VALID).expect("valid");
        assert_eq!(config.storage.cache_bytes(), 128 << 20);
        let set = load_str(&format!("{VALID}[storage]\ncache_mib = 512\n")).expect("valid");
        assert_eq!(set.storage.cache_bytes(), 512 << 20);
    }

    #[test]
    fn a_cache_out_of_bounds_is_refused_naming_the_field() {
        assert_errors_name_the_field([
            (format!("{VALID}[storage]\ncache_mib = 0\n"), "storage.cache_mib"),
            (format!("{VALID}[storage]\ncache_mib = 7\n"), "storage.cache_mib"),
            (format!("{VALID}[storage]\ncache_mib = 1048577\n"), "storage.cache_mib"),
            (format!("{VALID}[storage]\ncache_mib = -1\n"), "cache_mib"),
            (format!("{VALID}[storage]\ncache_mib = \"big\"\n"), "cache_mib"),
        ]);
    }
}
