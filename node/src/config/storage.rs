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
    /// How many blobs above `small_object_kib` a node pulls at once (and, beside them, how
    /// many blobs viewers are waiting for).
    pub(crate) max_concurrent_pulls: usize,
    /// How many objects up to `small_object_kib` a node pulls at once: each costs a round trip
    /// or two and little bandwidth, so a catch-up over a long link needs many in flight.
    pub(crate) max_concurrent_small_pulls: usize,
    /// Bandwidth limit of all pulls of a node together, MiB/s; 0 means unlimited.
    pub(crate) bandwidth_mib_per_sec: u64,
    /// Ranged streams one large blob is pulled over at once: over a long round trip one TCP
    /// stream is limited by its window, several add up.
    pub(crate) streams_per_blob: usize,
    /// Blobs larger than this many MiB are pulled over `streams_per_blob` streams.
    pub(crate) split_above_mib: u64,
    /// Segment size of resumable pulls, MiB: blobs larger than one segment are pulled into a
    /// partial file kept across interruptions, and an interrupted pull loses at most the
    /// segments it was in the middle of (one per stream).
    pub(crate) segment_mib: u64,
    /// Objects up to this many KiB are pulled before larger ones.
    pub(crate) small_object_kib: u64,
}

impl Default for ReplicationSection {
    fn default() -> Self {
        let pulls = meridian_s3gw::PullSettings::default();
        Self {
            max_concurrent_pulls: 4,
            max_concurrent_small_pulls: 32,
            bandwidth_mib_per_sec: 0,
            streams_per_blob: pulls.streams_per_blob,
            split_above_mib: pulls.split_above >> 20,
            segment_mib: pulls.segment_bytes >> 20,
            small_object_kib: pulls.small_below >> 10,
        }
    }
}

/// Streams per blob a config may ask for: each is a connection and a segment buffer.
const STREAMS_PER_BLOB_RANGE: std::ops::RangeInclusive<usize> = 1..=64;
/// Small pulls a config may ask for at once: each holds a connection to a holder and an
/// object of up to `small_object_kib` in flight.
const SMALL_PULLS_RANGE: std::ops::RangeInclusive<usize> = 1..=1024;
/// Segment sizes a config may ask for, MiB: each stream buffers one segment in memory.
const SEGMENT_MIB_RANGE: std::ops::RangeInclusive<u64> = 1..=256;

impl ReplicationSection {
    /// Checks the bounds of the pull settings.
    pub(super) fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        if !STREAMS_PER_BLOB_RANGE.contains(&self.streams_per_blob) {
            return Err(ConfigError::invalid(
                path,
                "replication.streams_per_blob".into(),
                format!("{} is not within {STREAMS_PER_BLOB_RANGE:?}", self.streams_per_blob),
            ));
        }
        if !SMALL_PULLS_RANGE.contains(&self.max_concurrent_small_pulls) {
            return Err(ConfigError::invalid(
                path,
                "replication.max_concurrent_small_pulls".into(),
                format!("{} is not within {SMALL_PULLS_RANGE:?}", self.max_concurrent_small_pulls),
            ));
        }
        if !SEGMENT_MIB_RANGE.contains(&self.segment_mib) {
            return Err(ConfigError::invalid(
                path,
                "replication.segment_mib".into(),
                format!("{} is not within {SEGMENT_MIB_RANGE:?} (MiB)", self.segment_mib),
            ));
        }
        if self.split_above_mib > 1 << 30 || self.small_object_kib > 1 << 30 {
            return Err(ConfigError::invalid(
                path,
                "replication.split_above_mib".into(),
                "split_above_mib and small_object_kib must be at most 2^30".into(),
            ));
        }
        Ok(())
    }

    /// The gateway's pull settings.
    pub(crate) fn pull_settings(&self) -> meridian_s3gw::PullSettings {
        meridian_s3gw::PullSettings {
            streams_per_blob: self.streams_per_blob,
            split_above: self.split_above_mib << 20,
            segment_bytes: self.segment_mib << 20,
            small_below: self.small_object_kib << 10,
        }
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
    fn pull_settings_default_and_out_of_bounds_values_are_refused_naming_the_field() {
        let config = load_str(VALID).expect("valid");
        assert_eq!(config.replication.pull_settings(), meridian_s3gw::PullSettings::default());
        let set = load_str(&format!("{VALID}[replication]\nstreams_per_blob = 8\nsegment_mib = 2\n")).expect("valid");
        assert_eq!(
            (set.replication.pull_settings().streams_per_blob, set.replication.pull_settings().segment_bytes),
            (8, 2 << 20)
        );
        assert_errors_name_the_field([
            (format!("{VALID}[replication]\nstreams_per_blob = 0\n"), "replication.streams_per_blob"),
            (format!("{VALID}[replication]\nstreams_per_blob = 65\n"), "replication.streams_per_blob"),
            (format!("{VALID}[replication]\nsegment_mib = 0\n"), "replication.segment_mib"),
            (
                format!("{VALID}[replication]\nmax_concurrent_small_pulls = 0\n"),
                "replication.max_concurrent_small_pulls",
            ),
            (
                format!("{VALID}[replication]\nmax_concurrent_small_pulls = 1025\n"),
                "replication.max_concurrent_small_pulls",
            ),
            (format!("{VALID}[replication]\nsplit_above_mib = 99999999999\n"), "replication.split_above_mib"),
        ]);
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
