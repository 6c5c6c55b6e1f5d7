//! What the replicator and the gateway share about pulls: how a large blob is split
//! ([`PullSettings`]), what pulls did since start ([`PullStats`], shown on `/metrics`), and which
//! blobs viewers are asking for right now ([`Wanted`], so their pulls jump the queue).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Everything about pulls the gateway and the replicator share.
#[derive(Debug, Default)]
pub struct Pulls {
    /// How blobs are pulled.
    pub settings: PullSettings,
    /// What pulls did since start.
    pub stats: PullStats,
    /// Blobs viewers are waiting for.
    pub wanted: Wanted,
}

/// How blobs are pulled: set from `[replication]` of `cluster.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullSettings {
    /// Ranged streams one blob is pulled over at once when it is larger than `split_above`:
    /// one TCP stream over a long round trip is limited by its window, several are not.
    pub streams_per_blob: usize,
    /// Blobs larger than this (bytes) are pulled over `streams_per_blob` streams; smaller ones
    /// over one.
    pub split_above: u64,
    /// Size (bytes) of the segments a large pull is cut into: the unit of resuming (a pull
    /// interrupted keeps every segment it finished) and of the per-segment hashes kept beside
    /// the partial file. Blobs no larger than one segment are pulled whole, not resumably.
    pub segment_bytes: u64,
    /// Objects no larger than this (bytes) are pulled before larger ones.
    pub small_below: u64,
}

impl Default for PullSettings {
    fn default() -> Self {
        Self { streams_per_blob: 4, split_above: 64 << 20, segment_bytes: 8 << 20, small_below: 1 << 20 }
    }
}

impl PullSettings {
    /// How many streams a blob of `size` bytes is pulled over.
    pub(crate) fn streams_for(&self, size: u64) -> usize {
        if size > self.split_above { self.streams_per_blob.max(1) } else { 1 }
    }

    /// Whether a blob of `size` bytes is pulled segment by segment into a kept partial file.
    pub(crate) fn resumable(&self, size: u64) -> bool {
        size > self.segment_bytes
    }
}

/// Counters of the pulls of this node since start (Prometheus counters on `/metrics`).
#[derive(Debug, Default)]
pub struct PullStats {
    /// Blob bytes received from holders, whether they were kept or not: what crossed the link.
    fetched: AtomicU64,
    /// Bytes a pull did not fetch again because a partial copy already held them verified.
    resumed: AtomicU64,
    /// Bytes received and then thrown away because they did not match the object's digests.
    refused: AtomicU64,
    /// Pulls that continued a partial copy instead of starting from zero.
    resumes: AtomicU64,
    /// Partial copies thrown away (object deleted or overwritten, or bytes that failed
    /// verification).
    discarded: AtomicU64,
    /// Copies finished (fetched, verified and durable, or found already here): with
    /// `copy_micros`, where a catch-up's time goes before the report.
    copies: AtomicU64,
    /// Microseconds the finished copies took, added up (overlapping copies each count whole).
    copy_micros: AtomicU64,
    /// Holder reports (`ReplicaAdded`) committed.
    reports: AtomicU64,
    /// Microseconds from proposing a report to its commit being applied here, added up: over
    /// a long link a follower's report is two round trips, often more than its copy.
    report_micros: AtomicU64,
}

impl PullStats {
    /// Counts bytes received from a holder.
    pub(crate) fn fetched(&self, bytes: u64) {
        self.fetched.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts a pull continued from `bytes` already held.
    pub(crate) fn resumed(&self, bytes: u64) {
        self.resumes.fetch_add(1, Ordering::Relaxed);
        self.resumed.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts bytes refused by verification.
    pub(crate) fn refused(&self, bytes: u64) {
        self.refused.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts a partial copy thrown away.
    pub(crate) fn discarded(&self) {
        self.discarded.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a finished copy that took `took`.
    pub(crate) fn copied(&self, took: Duration) {
        self.copies.fetch_add(1, Ordering::Relaxed);
        self.copy_micros.fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Counts a committed report that took `took`.
    pub(crate) fn reported(&self, took: Duration) {
        self.reports.fetch_add(1, Ordering::Relaxed);
        self.report_micros.fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Blob bytes received from holders since start.
    pub fn fetched_bytes(&self) -> u64 {
        self.fetched.load(Ordering::Relaxed)
    }

    /// Appends the counters in the Prometheus text format.
    pub fn write_prometheus(&self, out: &mut String) {
        let series = [
            ("meridian_pull_fetched_bytes_total", "Blob bytes received from holders by pulls.", &self.fetched),
            (
                "meridian_pull_resumed_bytes_total",
                "Bytes pulls did not fetch again because a partial copy held them.",
                &self.resumed,
            ),
            (
                "meridian_pull_refused_bytes_total",
                "Bytes received and thrown away because they did not match the object's digests.",
                &self.refused,
            ),
            ("meridian_pull_resumes_total", "Pulls that continued a partial copy.", &self.resumes),
            ("meridian_pull_partials_discarded_total", "Partial copies thrown away.", &self.discarded),
            ("meridian_pull_copies_total", "Copies finished (verified and durable, or already here).", &self.copies),
            ("meridian_pull_copy_microseconds_total", "Time the finished copies took, added up.", &self.copy_micros),
            ("meridian_pull_reports_total", "Holder reports (ReplicaAdded) committed.", &self.reports),
            (
                "meridian_pull_report_microseconds_total",
                "Time from proposing a holder report to its commit applied here, added up.",
                &self.report_micros,
            ),
        ];
        for (name, help, value) in series {
            let _ =
                writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", value.load(Ordering::Relaxed));
        }
    }
}

/// How long a viewer's request keeps a blob's pull ahead of the queue.
const WANTED_FOR: Duration = Duration::from_secs(600);
/// Most blobs remembered as wanted: viewers choose what they request, so the set is bounded
/// (past it, the oldest want is forgotten; its pull merely waits its turn).
const MAX_WANTED: usize = 1024;

/// Blobs that GETs on this node asked for while the node did not hold them yet: their pulls go
/// first. Only blob ids of objects the viewer was allowed to read get here.
#[derive(Debug, Default)]
pub struct Wanted {
    /// Blob id to when it was last asked for.
    blobs: Mutex<HashMap<String, Instant>>,
    /// Wakes the replicator when a blob is newly wanted.
    wake: tokio::sync::Notify,
}

impl Wanted {
    /// Notes that a viewer asked for `blob`.
    pub(crate) fn want(&self, blob: &str) {
        let now = Instant::now();
        let new = {
            let mut blobs = self.blobs.lock().unwrap_or_else(PoisonError::into_inner);
            if blobs.len() >= MAX_WANTED && !blobs.contains_key(blob) {
                blobs.retain(|_, at| now.duration_since(*at) < WANTED_FOR);
                if blobs.len() >= MAX_WANTED {
                    let oldest = blobs.iter().min_by_key(|(_, at)| **at).map(|(b, _)| b.clone());
                    if let Some(oldest) = oldest {
                        blobs.remove(&oldest);
                    }
                }
            }
            blobs.insert(blob.to_owned(), now).is_none()
        };
        if new {
            self.wake.notify_one();
        }
    }

    /// Whether a viewer asked for `blob` recently.
    pub fn is_wanted(&self, blob: &str) -> bool {
        let blobs = self.blobs.lock().unwrap_or_else(PoisonError::into_inner);
        blobs.get(blob).is_some_and(|at| at.elapsed() < WANTED_FOR)
    }

    /// Forgets `blob` (its pull is done or moot).
    pub fn forget(&self, blob: &str) {
        self.blobs.lock().unwrap_or_else(PoisonError::into_inner).remove(blob);
    }

    /// Waits until a blob is newly wanted.
    pub async fn newly_wanted(&self) {
        self.wake.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_blobs_above_the_thresholds_are_split_or_resumable() {
        let s = PullSettings { streams_per_blob: 3, split_above: 100, segment_bytes: 10, small_below: 5 };
        assert_eq!((s.streams_for(100), s.streams_for(101)), (1, 3));
        assert!(!s.resumable(10) && s.resumable(11));
    }

    #[test]
    fn wanted_blobs_are_bounded_and_forgotten() {
        let wanted = Wanted::default();
        for i in 0..(MAX_WANTED + 10) {
            wanted.want(&format!("{i:032x}"));
        }
        assert_eq!(wanted.blobs.lock().expect("lock").len(), MAX_WANTED, "an attacker's GETs cannot grow it");
        let last = format!("{:032x}", MAX_WANTED + 9);
        assert!(wanted.is_wanted(&last));
        wanted.forget(&last);
        assert!(!wanted.is_wanted(&last));
    }
}
