//! The replicator: pulls the blobs this node owes (work items recorded while applying the log)
//! from the nearest nodes that hold them, with bounded concurrency, a shared bandwidth limit,
//! and retries with backoff. Work items live in the store, so a restart resumes them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use meridian_geo::{GeoPoint, haversine_km};
use meridian_raft::NodeId;
use meridian_raft::model::WorkItem;
use meridian_s3gw::{Gateway, PullOutcome, Throttle};
use tokio::task::JoinSet;

use crate::config::ClusterConfig;
use crate::shutdown::Shutdown;

/// Even without a wake-up, pending pulls are looked at this often (retries come due).
const RESCAN: Duration = Duration::from_secs(2);
/// First retry delay of a failed pull; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest retry delay.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Settings of the replicator.
pub(crate) struct Replicator {
    gateway: Gateway,
    /// Other nodes, nearest first.
    nearest: Vec<NodeId>,
    throttle: Arc<Throttle>,
    max_concurrent: usize,
}

/// A failed pull waiting for its retry.
struct Backoff {
    next_try: Instant,
    delay: Duration,
}

impl Replicator {
    /// A replicator for the node of `region` in `config`.
    pub(crate) fn new(gateway: Gateway, config: &ClusterConfig, region: &crate::config::RegionConfig) -> Self {
        let mut others: Vec<(f64, NodeId)> = config
            .region
            .iter()
            .filter(|r| r.id != region.id)
            .map(|r| {
                let (here, there) =
                    (GeoPoint::new(region.latitude, region.longitude), GeoPoint::new(r.latitude, r.longitude));
                (haversine_km(here, there), r.id)
            })
            .collect();
        others.sort_by(|a, b| a.0.total_cmp(&b.0));
        let rate = config.replication.bandwidth_mib_per_sec * 1024 * 1024;
        Self {
            gateway,
            nearest: others.into_iter().map(|(_, id)| id).collect(),
            throttle: Arc::new(Throttle::new(rate)),
            max_concurrent: config.replication.max_concurrent_pulls.max(1),
        }
    }

    /// Holders in the order to try: nearest configured regions first, then any other member.
    fn preference(&self, holders: impl Iterator<Item = NodeId>) -> Vec<NodeId> {
        let holders: HashSet<NodeId> = holders.collect();
        let mut order: Vec<NodeId> = self.nearest.iter().copied().filter(|id| holders.contains(id)).collect();
        let rest: Vec<NodeId> = holders.iter().copied().filter(|id| !order.contains(id)).collect();
        order.extend(rest);
        order
    }

    /// Runs until shutdown.
    pub(crate) async fn run(self, shutdown: Shutdown) {
        let mut signal = self.gateway.meta().work_signal();
        let mut running: JoinSet<(Vec<u8>, Result<PullOutcome, String>, Duration)> = JoinSet::new();
        let mut in_flight: HashSet<Vec<u8>> = HashSet::new();
        let mut backoff: HashMap<Vec<u8>, Backoff> = HashMap::new();
        loop {
            self.start_due_pulls(&mut running, &mut in_flight, &backoff);
            tokio::select! {
                Some(done) = running.join_next() => {
                    if let Ok((key, result, took)) = done {
                        in_flight.remove(&key);
                        self.finish(key, result, took, &mut backoff);
                    }
                }
                changed = signal.changed() => if changed.is_err() { return },
                () = tokio::time::sleep(RESCAN) => {}
                () = shutdown.wait() => {
                    running.abort_all();
                    return;
                }
            }
        }
    }

    /// Starts pulls that are due, up to the concurrency limit.
    fn start_due_pulls(
        &self,
        running: &mut JoinSet<(Vec<u8>, Result<PullOutcome, String>, Duration)>,
        in_flight: &mut HashSet<Vec<u8>>,
        backoff: &HashMap<Vec<u8>, Backoff>,
    ) {
        let items = match self.gateway.meta().work_items() {
            Ok(items) => items,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the work queue");
                return;
            }
        };
        let now = Instant::now();
        for (key, item) in items {
            if in_flight.len() >= self.max_concurrent {
                return;
            }
            let WorkItem::Pull { bucket, key: object_key, blob } = item else { continue };
            if in_flight.contains(&key) || backoff.get(&key).is_some_and(|b| b.next_try > now) {
                continue;
            }
            let holders = match self.gateway.meta().object(&bucket, &object_key) {
                Ok(Some(object)) => object.holders.keys().copied().collect::<Vec<_>>(),
                _ => Vec::new(),
            };
            let order = self.preference(holders.into_iter());
            let (gateway, throttle) = (self.gateway.clone(), self.throttle.clone());
            in_flight.insert(key.clone());
            running.spawn(async move {
                let started = Instant::now();
                let result = gateway
                    .pull_replica(&bucket, &object_key, &blob, &order, &throttle)
                    .await
                    .map_err(|e| format!("{bucket}/{object_key}: {e}"));
                (key, result, started.elapsed())
            });
        }
    }

    /// Records the end of a pull: done (the work item goes), or failed (retry later).
    fn finish(
        &self,
        key: Vec<u8>,
        result: Result<PullOutcome, String>,
        took: Duration,
        backoff: &mut HashMap<Vec<u8>, Backoff>,
    ) {
        match result {
            Ok(outcome) => {
                match outcome {
                    PullOutcome::Pulled { bytes, from } => {
                        tracing::info!(bytes, from, ms = took.as_millis(), "replica pulled and reported");
                    }
                    PullOutcome::AlreadyHeld => tracing::info!("replica already on disk; reported"),
                    PullOutcome::Moot => tracing::debug!("pull no longer needed"),
                }
                backoff.remove(&key);
                if let Err(e) = self.gateway.meta().complete_work(&key) {
                    tracing::warn!(error = %e, "cannot mark a pull done");
                }
            }
            Err(e) => {
                let delay = backoff.get(&key).map_or(FIRST_BACKOFF, |b| (b.delay * 2).min(MAX_BACKOFF));
                tracing::warn!(error = %e, retry_in = ?delay, "pull failed");
                backoff.insert(key, Backoff { next_try: Instant::now() + delay, delay });
            }
        }
    }
}
