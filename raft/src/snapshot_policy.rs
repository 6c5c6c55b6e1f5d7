//! When a node builds a snapshot: once the log written since the last one is a fraction of the
//! state's size, not every fixed number of entries.
//!
//! A snapshot is a full copy of the state (the file format the upgrade fixtures and older peers
//! read), so its cost grows with the object count. Built every `snapshot_every` entries, as
//! openraft's `LogsSinceLast` policy does, a fill of N objects writes N / snapshot_every
//! snapshots of up to N records each: O(N²) bytes, and each build stalls `apply` for longer
//! than the last. Built when the log has grown by [`LOG_PERCENT_OF_SNAPSHOT`] of the last
//! snapshot's size, the snapshots of a fill form a geometric series: all of them together cost
//! a constant times the final state ((100 + p) / p, 3x for p = 50), and their number grows
//! with log N. `snapshot_every` stays as the floor, and while the snapshot is under
//! [`MIN_LOG_BYTES`] it is the whole rule, so a small store compacts its log as it always did
//! (docs/architecture.md, "Snapshots and log compaction").

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::snapshot::SnapshotFiles;

/// Log bytes since the last snapshot, in percent of that snapshot's size, that make the next
/// one due. Higher: fewer snapshots (less I/O) but a longer log on disk and to replay at
/// restart; lower: the opposite. 50 keeps the log at most half the state's size.
pub(crate) const LOG_PERCENT_OF_SNAPSHOT: u64 = 50;

/// Log bytes since the last snapshot that make one due even below the entry floor (`[raft]
/// snapshot_every`), when the log is also [`LOG_PERCENT_OF_SNAPSHOT`] of the state; and the
/// snapshot size under which the plain `snapshot_every` rhythm applies.
pub(crate) const MIN_LOG_BYTES: u64 = 32 << 20;

/// How often the policy looks at the log (a check is two atomic loads and a `stat`).
pub(crate) const CHECK_EVERY: Duration = Duration::from_secs(1);

/// How long a trigger may go unanswered (no new snapshot) before the policy asks again: a
/// build of millions of records takes seconds, and openraft ignores a trigger during a build.
pub(crate) const RETRIGGER_AFTER: Duration = Duration::from_secs(60);

/// The rule, apart from the clock and openraft, so it can be tested on its own.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SnapshotPolicy {
    /// Entries since the last snapshot below which none is built (`[raft] snapshot_every`).
    pub(crate) min_entries: u64,
    /// See [`LOG_PERCENT_OF_SNAPSHOT`].
    pub(crate) log_percent: u64,
}

impl SnapshotPolicy {
    /// Whether a snapshot is due, given the entries and log bytes appended since the last one
    /// and that snapshot's size in bytes (0 when there is none yet).
    pub(crate) fn due(&self, entries_since: u64, log_bytes_since: u64, snapshot_bytes: u64) -> bool {
        // The proposal batcher packs many writes into one entry (a few hundred small PUTs), so
        // the entry floor alone could leave gigabytes of log uncompacted: enough bytes count too.
        // A small state (its snapshot under MIN_LOG_BYTES) is cheap to dump: it keeps the plain
        // `snapshot_every` rhythm, so a small store's log is purged as promptly as before.
        let small = snapshot_bytes < MIN_LOG_BYTES && entries_since >= self.min_entries;
        let proportional = (entries_since >= self.min_entries || log_bytes_since >= MIN_LOG_BYTES)
            && u128::from(log_bytes_since) * 100 >= u128::from(snapshot_bytes) * u128::from(self.log_percent);
        entries_since > 0 && (small || proportional)
    }
}

/// Bytes appended to this node's log since it started, kept by the log store; the policy
/// compares how far it moved since the last snapshot with that snapshot's size.
#[derive(Debug, Default, Clone)]
pub(crate) struct LogGrowth {
    /// Encoded bytes of every entry appended since the process started.
    appended: Arc<AtomicU64>,
}

impl LogGrowth {
    /// Notes `bytes` more appended.
    pub(crate) fn add(&self, bytes: u64) {
        self.appended.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Bytes appended so far.
    pub(crate) fn total(&self) -> u64 {
        self.appended.load(Ordering::Relaxed)
    }
}

/// The size of the current snapshot file, 0 when there is none.
pub(crate) fn snapshot_bytes(files: &SnapshotFiles) -> u64 {
    std::fs::metadata(files.data_path()).map_or(0, |m| m.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: SnapshotPolicy = SnapshotPolicy { min_entries: 1000, log_percent: 50 };

    #[test]
    fn the_first_snapshot_comes_after_the_floor() {
        assert!(!POLICY.due(999, MIN_LOG_BYTES - 1, 0));
        assert!(POLICY.due(1000, 1, 0));
        assert!(POLICY.due(10, MIN_LOG_BYTES, 0), "few entries of many bytes (batched writes) count too");
        assert!(!POLICY.due(0, MIN_LOG_BYTES, 0));
    }

    #[test]
    fn later_snapshots_wait_for_the_log_to_reach_half_the_state() {
        let snapshot = 100 << 20;
        assert!(!POLICY.due(1_000_000, (50 << 20) - 1, snapshot), "entries alone do not make it due");
        assert!(POLICY.due(1000, 50 << 20, snapshot));
        assert!(!POLICY.due(999, (50 << 20) - 1, snapshot), "nor do bytes below the floor");
        assert!(POLICY.due(999, 50 << 20, snapshot), "over the byte floor, bytes alone suffice");
    }

    #[test]
    fn a_fill_writes_a_linear_amount_of_snapshots() {
        // N records of 1 KiB appended one entry each; every due snapshot writes the whole state.
        let (record, mut written, mut last_snapshot, mut since, mut builds) = (1024u64, 0u64, 0u64, 0u64, 0u32);
        let n = 1_000_000u64;
        for i in 1..=n {
            since += 1;
            if POLICY.due(since, since * record, last_snapshot) {
                last_snapshot = i * record;
                written += last_snapshot;
                since = 0;
                builds += 1;
            }
        }
        let state = n * record;
        // Up to 32 MiB of state a snapshot every 1000 entries (~16 MiB each on average), then
        // the geometric series (at most 3x the state).
        assert!(written <= 4 * state, "all snapshots together wrote {written} bytes for a {state} byte state");
        assert!(builds <= 50, "{builds} snapshots for {n} objects");
        // The old fixed policy (every 20 000 entries) would have written N² / 40 000 records.
        let fixed: u64 = (1..=n / 20_000).map(|k| k * 20_000 * record).sum();
        assert!(fixed > 5 * written, "fixed {fixed} vs proportional {written}");
    }

    #[test]
    fn a_small_state_keeps_the_entry_rhythm() {
        let small = MIN_LOG_BYTES - 1;
        assert!(POLICY.due(1000, 1, small), "a small snapshot is rebuilt every snapshot_every entries");
        assert!(!POLICY.due(999, 1, small));
        assert!(!POLICY.due(1000, 1, MIN_LOG_BYTES), "from MIN_LOG_BYTES on, the log must grow by half");
    }

    #[test]
    fn sizes_that_would_overflow_do_not() {
        assert!(POLICY.due(u64::MAX, u64::MAX, u64::MAX));
        assert!(!POLICY.due(u64::MAX, u64::MAX / 2 - 1, u64::MAX));
    }
}
