//! How loaded each node is, as last reported, and whether it answers.
//!
//! Every node measures itself ([`NodeLoad`]) and its peers poll it about once a second; the
//! [`LoadBoard`] keeps the latest report per node with the time it arrived. A report older than
//! the staleness bound counts as unknown; a node whose last poll failed is down and is never
//! routed to until it answers again.

use std::collections::BTreeMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// What a node reports about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeLoad {
    /// S3 requests being served right now (a download counts until its last byte is sent).
    pub in_flight: u32,
    /// Bytes per second sent by the S3 listener, exponentially weighted moving average.
    pub bytes_out_per_sec: f64,
    /// Free bytes on the data directory's file system (for unprivileged users).
    pub disk_free_bytes: u64,
    /// Whether the node knows a leader and is a member (it can take writes).
    pub ready: bool,
}

impl NodeLoad {
    /// One number to compare nodes: requests in flight, plus the outgoing byte rate expressed
    /// in requests (`bytes_per_request` B/s count as one more request), so a node streaming a
    /// few large files is as busy as one serving many small ones.
    pub fn score(&self, bytes_per_request: f64) -> f64 {
        let weighted = if bytes_per_request > 0.0 { self.bytes_out_per_sec / bytes_per_request } else { 0.0 };
        f64::from(self.in_flight) + weighted
    }
}

/// Whether a node can be routed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// It answered the last poll recently; its load is known.
    Up,
    /// No recent report (never polled yet, or reports stopped arriving): it may be routed to,
    /// but its load is unknown.
    Unknown,
    /// The last poll failed (refused, timed out, refused our signature): never routed to.
    Down,
}

/// What the board knows about one node at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeerView {
    /// Up, unknown or down.
    pub health: Health,
    /// The latest report, when it is fresh enough to use.
    pub load: Option<NodeLoad>,
    /// Age of the latest report, milliseconds.
    pub report_age_ms: Option<u64>,
    /// Why the last poll failed, when the node is down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The board's record of one node.
#[derive(Debug, Clone, Default)]
struct Entry {
    /// The latest report and when it arrived.
    report: Option<(NodeLoad, Instant)>,
    /// The last poll's failure, cleared by the next report.
    failure: Option<String>,
}

/// The latest load report of every node. Shared between the poller that writes it and the
/// routing API that reads it.
#[derive(Debug)]
pub struct LoadBoard {
    /// Per node id.
    entries: RwLock<BTreeMap<u64, Entry>>,
    /// Reports older than this are unknown.
    stale_after: Duration,
}

impl LoadBoard {
    /// An empty board whose reports go stale after `stale_after`.
    pub fn new(stale_after: Duration) -> Self {
        Self { entries: RwLock::new(BTreeMap::new()), stale_after }
    }

    /// Records a report from `node` that arrived at `at`; the node is up again.
    pub fn record(&self, node: u64, load: NodeLoad, at: Instant) {
        let mut entries = self.entries.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = entries.entry(node).or_default();
        if entry.failure.take().is_some() {
            tracing::info!(node, "peer answers again");
        }
        entry.report = Some((load, at));
    }

    /// Records that polling `node` failed: it is down until it answers again.
    pub fn record_failure(&self, node: u64, error: String) {
        let mut entries = self.entries.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = entries.entry(node).or_default();
        if entry.failure.is_none() {
            tracing::warn!(node, %error, "peer does not answer; not routing to it");
        }
        entry.failure = Some(error);
    }

    /// What is known about `node` at `now`.
    pub fn view(&self, node: u64, now: Instant) -> PeerView {
        let entries = self.entries.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(entry) = entries.get(&node) else {
            return PeerView { health: Health::Unknown, load: None, report_age_ms: None, error: None };
        };
        let age = entry.report.map(|(_, at)| now.saturating_duration_since(at));
        let report_age_ms = age.map(|a| u64::try_from(a.as_millis()).unwrap_or(u64::MAX));
        if let Some(error) = &entry.failure {
            return PeerView { health: Health::Down, load: None, report_age_ms, error: Some(error.clone()) };
        }
        match (entry.report, age) {
            (Some((load, _)), Some(age)) if age <= self.stale_after => {
                PeerView { health: Health::Up, load: Some(load), report_age_ms, error: None }
            }
            _ => PeerView { health: Health::Unknown, load: None, report_age_ms, error: None },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_stale_down_and_back() {
        let board = LoadBoard::new(Duration::from_secs(3));
        let t0 = Instant::now();
        assert_eq!(board.view(1, t0).health, Health::Unknown);
        let load = NodeLoad { in_flight: 2, bytes_out_per_sec: 0.0, disk_free_bytes: 1, ready: true };
        board.record(1, load, t0);
        let view = board.view(1, t0 + Duration::from_secs(1));
        assert_eq!((view.health, view.load, view.report_age_ms), (Health::Up, Some(load), Some(1000)));
        let view = board.view(1, t0 + Duration::from_secs(4));
        assert_eq!((view.health, view.load), (Health::Unknown, None));
        board.record_failure(1, "connection refused".into());
        let view = board.view(1, t0 + Duration::from_secs(1));
        assert_eq!(view.health, Health::Down);
        assert_eq!(view.error.as_deref(), Some("connection refused"));
        board.record(1, load, t0 + Duration::from_secs(5));
        assert_eq!(board.view(1, t0 + Duration::from_secs(5)).health, Health::Up);
    }

    #[test]
    fn score_weighs_bytes_as_requests() {
        let load =
            NodeLoad { in_flight: 2, bytes_out_per_sec: 20.0 * 1024.0 * 1024.0, disk_free_bytes: 0, ready: true };
        assert!((load.score(10.0 * 1024.0 * 1024.0) - 4.0).abs() < 1e-9);
        assert!((load.score(0.0) - 2.0).abs() < 1e-9);
    }
}
