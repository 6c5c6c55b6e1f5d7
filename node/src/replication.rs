//! The replicator: pulls the blobs this node owes (work items recorded while applying the log)
//! from the nearest, least-loaded nodes that hold them, with bounded concurrency, a shared
//! bandwidth limit, and retries with backoff. Work items live in the store, so a restart resumes
//! them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use meridian_geo::{GeoPoint, Health, LoadBoard, haversine_km};
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
/// Most holder reports waiting for their commit at once; past it no new pull starts (wanted
/// ones aside). Reports are small and share log entries, so this only bounds memory and the
/// proposal queue when the leader is unreachable.
const MOST_REPORTS_IN_FLIGHT: usize = 1024;
/// Work items looked at beyond those in flight, backing off and the free slots, each time
/// pulls are started: the queue of a catch-up may hold many thousands, and reading it whole
/// after every finished pull would cost the square of its length.
const LOOKAHEAD: usize = 256;

/// What a finished copy hands back to the run loop: the work item's key, the object it was
/// for (to report it), and how the copy went.
struct CopyDone {
    /// The work item's key in the store.
    item: Vec<u8>,
    /// Bucket, object key and blob of the copy, for its report.
    object: (String, String, String),
    /// What the copy achieved, or why it failed.
    result: Result<PullOutcome, String>,
    /// How long the copy took.
    took: Duration,
}

/// What a finished report hands back: the work item's key, and whether it committed.
type ReportDone = (Vec<u8>, Result<(), String>);

/// Settings of the replicator.
pub(crate) struct Replicator {
    gateway: Gateway,
    /// Which holder to ask first.
    order: HolderOrder,
    throttle: Arc<Throttle>,
    /// Pulls of objects above `small_object_kib` at once (`max_concurrent_pulls`).
    max_concurrent: usize,
    /// Pulls of objects up to `small_object_kib` at once (`max_concurrent_small_pulls`): a
    /// small pull costs a round trip or two and hardly any bandwidth, so over a long link many
    /// must be in flight for a catch-up to be bound by the link's bandwidth.
    max_concurrent_small: usize,
}

/// Orders the holders of a blob for a pull.
struct HolderOrder {
    /// Other nodes with their distance from this one (km), nearest first.
    nearest: Vec<(NodeId, f64)>,
    /// Peers' load and health, as exchanged by the nodes (see `load_exchange`).
    board: Arc<LoadBoard>,
    /// Holders within this distance of the nearest healthy holder are picked by load.
    near_tier_km: f64,
    /// Outgoing bytes/s that weigh as one request in flight when comparing loads.
    bytes_per_request: f64,
}

impl HolderOrder {
    /// Holders in the order to try: among the holders not known to be down, those within the
    /// near tier of the nearest one, least loaded first; then the others, nearest first; then
    /// holders the board says are down (the board may be behind); then members not in the
    /// configuration (joined at run time), whose distance is unknown.
    fn preference(&self, holders: impl Iterator<Item = NodeId>) -> Vec<NodeId> {
        let holders: HashSet<NodeId> = holders.collect();
        let now = Instant::now();
        let mut up = Vec::new();
        let mut down = Vec::new();
        for &(id, km) in self.nearest.iter().filter(|(id, _)| holders.contains(id)) {
            let view = self.board.view(id, now);
            let score = view.load.map_or(0.0, |l| l.score(self.bytes_per_request));
            if view.health == Health::Down { down.push(id) } else { up.push((id, km, score)) }
        }
        let nearest_km = up.first().map_or(0.0, |&(_, km, _)| km);
        let (mut near, far): (Vec<_>, Vec<_>) =
            up.into_iter().partition(|&(_, km, _)| km <= nearest_km + self.near_tier_km);
        // Stable: equal loads keep the nearer holder first.
        near.sort_by(|a, b| a.2.total_cmp(&b.2));
        let mut order: Vec<NodeId> = near.into_iter().chain(far).map(|(id, ..)| id).collect();
        order.extend(down);
        let rest: Vec<NodeId> = holders.iter().copied().filter(|id| !order.contains(id)).collect();
        order.extend(rest);
        order
    }
}

/// Why a pull was started when it was: what the queue's order and limits go by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// A viewer asked this node for the object.
    Wanted,
    /// A small object (up to `small_object_kib`): limited by `max_concurrent_small_pulls`.
    Small,
    /// A large object: limited by `max_concurrent_pulls`.
    Large,
}

/// A failed pull waiting for its retry.
struct Backoff {
    next_try: Instant,
    delay: Duration,
}

impl Replicator {
    /// A replicator for the node of `region` in `config`.
    pub(crate) fn new(
        gateway: Gateway,
        config: &ClusterConfig,
        region: &crate::config::RegionConfig,
        board: Arc<LoadBoard>,
    ) -> Self {
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
            order: HolderOrder {
                nearest: others.into_iter().map(|(km, id)| (id, km)).collect(),
                board,
                near_tier_km: config.geo.near_tier_km,
                #[allow(clippy::cast_precision_loss)] // a rate setting, far below 2^52
                bytes_per_request: config.geo.bytes_per_sec_per_request as f64,
            },
            throttle: Arc::new(Throttle::new(rate)),
            max_concurrent: config.replication.max_concurrent_pulls.max(1),
            max_concurrent_small: config.replication.max_concurrent_small_pulls.max(1),
        }
    }

    /// Runs until shutdown.
    ///
    /// A pull is a copy and then a report: the copy holds one of the limited slots; its
    /// report (a Raft write, two round trips from a follower over a long link) does not, so
    /// the next copy starts at once and the reports of many copies share one log entry. The
    /// work item stays until its report committed: a restart or a failed report pulls again,
    /// which finds the blob here and only reports it.
    pub(crate) async fn run(self, shutdown: Shutdown) {
        let mut signal = self.gateway.meta().work_signal();
        let pulls = self.gateway.pulls().clone();
        let mut copying: JoinSet<CopyDone> = JoinSet::new();
        let mut reporting: JoinSet<ReportDone> = JoinSet::new();
        let mut in_flight: HashMap<Vec<u8>, Class> = HashMap::new();
        let mut reports_in_flight: HashSet<Vec<u8>> = HashSet::new();
        let mut backoff: HashMap<Vec<u8>, Backoff> = HashMap::new();
        loop {
            self.start_due_pulls(&mut copying, &mut in_flight, &reports_in_flight, &backoff);
            tokio::select! {
                Some(done) = copying.join_next() => {
                    let mut next = Some(done);
                    // Everything else finished too is taken before pulls are started again: one
                    // look at the queue for many finished pulls.
                    while let Some(done) = next {
                        if let Ok(done) = done {
                            in_flight.remove(&done.item);
                            self.copied(done, &mut reporting, &mut reports_in_flight, &mut backoff);
                        }
                        next = copying.try_join_next();
                    }
                }
                Some(done) = reporting.join_next() => {
                    let mut next = Some(done);
                    while let Some(done) = next {
                        if let Ok((item, result)) = done {
                            reports_in_flight.remove(&item);
                            self.finish(item, result, &mut backoff);
                        }
                        next = reporting.try_join_next();
                    }
                }
                changed = signal.changed() => if changed.is_err() { return },
                () = pulls.wanted.newly_wanted() => {}
                () = tokio::time::sleep(RESCAN) => {}
                () = shutdown.wait() => {
                    copying.abort_all();
                    reporting.abort_all();
                    return;
                }
            }
        }
    }

    /// Starts pulls that are due, most urgent first: blobs viewers are waiting for (outside
    /// the limits, up to `max_concurrent_pulls` of them), then small objects (up to
    /// `max_concurrent_small_pulls`), then large ones (up to `max_concurrent_pulls`): a film
    /// or two being pulled for hours hold back neither small objects nor viewers.
    fn start_due_pulls(
        &self,
        running: &mut JoinSet<CopyDone>,
        in_flight: &mut HashMap<Vec<u8>, Class>,
        reports_in_flight: &HashSet<Vec<u8>>,
        backoff: &HashMap<Vec<u8>, Backoff>,
    ) {
        let limit = in_flight.len()
            + reports_in_flight.len()
            + backoff.len()
            + self.max_concurrent_small
            + 2 * self.max_concurrent
            + LOOKAHEAD;
        let items = match self.gateway.meta().first_work_items(limit) {
            Ok(items) => items,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the work queue");
                return;
            }
        };
        let now = Instant::now();
        let pulls = self.gateway.pulls();
        let due: Vec<(Vec<u8>, String, String, String)> = items
            .into_iter()
            .filter_map(|(key, item)| match item {
                WorkItem::Pull { bucket, key: object_key, blob } => Some((key, bucket, object_key, blob)),
                _ => None,
            })
            .filter(|(key, ..)| {
                !in_flight.contains_key(key)
                    && !reports_in_flight.contains(key)
                    && backoff.get(key).is_none_or(|b| b.next_try <= now)
            })
            .collect();
        let count =
            |in_flight: &HashMap<Vec<u8>, Class>, class: Class| in_flight.values().filter(|c| **c == class).count();
        // Pulls viewers wait for do not count against the limits (they have their own, as much
        // as `max_concurrent_pulls`): a GET is waiting on them, and they must not take the
        // slots of the others.
        for (key, bucket, object_key, blob) in &due {
            if pulls.wanted.is_wanted(blob) && count(in_flight, Class::Wanted) < self.max_concurrent {
                self.start(running, in_flight, Class::Wanted, key, bucket, object_key, blob);
            }
        }
        if reports_in_flight.len() >= MOST_REPORTS_IN_FLIGHT {
            return;
        }
        let (mut small, mut large) = (count(in_flight, Class::Small), count(in_flight, Class::Large));
        for (key, bucket, object_key, blob) in &due {
            if small >= self.max_concurrent_small && large >= self.max_concurrent {
                break;
            }
            if in_flight.contains_key(key) {
                continue;
            }
            let size = match self.gateway.meta().object(bucket, object_key) {
                Ok(Some(object)) => object.size,
                _ => 0,
            };
            if size <= pulls.settings.small_below {
                if small < self.max_concurrent_small {
                    self.start(running, in_flight, Class::Small, key, bucket, object_key, blob);
                    small += 1;
                }
            } else if large < self.max_concurrent {
                self.start(running, in_flight, Class::Large, key, bucket, object_key, blob);
                large += 1;
            }
        }
    }

    /// Starts the copy of one work item.
    #[allow(clippy::too_many_arguments)] // the work item's fields and the loop's state
    fn start(
        &self,
        running: &mut JoinSet<CopyDone>,
        in_flight: &mut HashMap<Vec<u8>, Class>,
        class: Class,
        key: &[u8],
        bucket: &str,
        object_key: &str,
        blob: &str,
    ) {
        let holders = match self.gateway.meta().object(bucket, object_key) {
            Ok(Some(object)) => object.holders.keys().copied().collect::<Vec<_>>(),
            _ => Vec::new(),
        };
        let order = self.order.preference(holders.into_iter());
        let (gateway, throttle) = (self.gateway.clone(), self.throttle.clone());
        let (item, bucket, object_key, blob) =
            (key.to_vec(), bucket.to_owned(), object_key.to_owned(), blob.to_owned());
        tracing::debug!(bucket, key = object_key, ?class, "pull started");
        in_flight.insert(item.clone(), class);
        running.spawn(async move {
            let started = Instant::now();
            let result = gateway
                .copy_replica(&bucket, &object_key, &blob, &order, &throttle)
                .await
                .map_err(|e| format!("{bucket}/{object_key}: {e}"));
            CopyDone { item, object: (bucket, object_key, blob), result, took: started.elapsed() }
        });
    }

    /// Takes a finished copy: a copy that needs no report is done; one that does has its
    /// report proposed in a task of its own (reports proposed together share a log entry);
    /// a failed one is retried later.
    fn copied(
        &self,
        done: CopyDone,
        reporting: &mut JoinSet<ReportDone>,
        reports_in_flight: &mut HashSet<Vec<u8>>,
        backoff: &mut HashMap<Vec<u8>, Backoff>,
    ) {
        let CopyDone { item, object: (bucket, object_key, blob), result, took } = done;
        match result {
            Ok(PullOutcome::Moot) => {
                tracing::debug!(bucket, key = object_key, "pull no longer needed");
                self.finish(item, Ok(()), backoff);
            }
            Ok(outcome) => {
                let gateway = self.gateway.clone();
                reports_in_flight.insert(item.clone());
                reporting.spawn(async move {
                    let started = Instant::now();
                    let result = gateway
                        .report_replica(&bucket, &object_key, &blob)
                        .await
                        .map_err(|e| format!("reporting {bucket}/{object_key}: {e}"));
                    let (copy_ms, report_ms) = (took.as_millis(), started.elapsed().as_millis());
                    match (&result, outcome) {
                        (Ok(()), PullOutcome::Pulled { bytes, from }) => {
                            // `bytes` and `from` first: tests read this line as
                            // "replica pulled and reported bytes=N from=ID".
                            tracing::info!(
                                bytes,
                                from,
                                bucket,
                                key = object_key,
                                copy_ms,
                                report_ms,
                                "replica pulled and reported"
                            );
                        }
                        (Ok(()), _) => {
                            tracing::info!(bucket, key = object_key, report_ms, "replica already on disk; reported");
                        }
                        (Err(_), _) => {}
                    }
                    (item, result)
                });
            }
            Err(e) => self.finish(item, Err(e), backoff),
        }
    }

    /// Records the end of a pull: done (the work item goes), or failed (retry later).
    fn finish(&self, key: Vec<u8>, result: Result<(), String>, backoff: &mut HashMap<Vec<u8>, Backoff>) {
        match result {
            Ok(()) => {
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

#[cfg(test)]
mod tests {
    use meridian_geo::NodeLoad;

    use super::*;

    fn order(board: LoadBoard) -> HolderOrder {
        // Node 2 is 300 km away, node 3 600 km, node 4 9000 km; the near tier is 1000 km wide.
        HolderOrder {
            nearest: vec![(2, 300.0), (3, 600.0), (4, 9000.0)],
            board: Arc::new(board),
            near_tier_km: 1000.0,
            bytes_per_request: 1e6,
        }
    }

    fn busy(in_flight: u32) -> NodeLoad {
        NodeLoad { in_flight, ready: true, ..NodeLoad::default() }
    }

    #[test]
    fn the_least_loaded_near_holder_goes_first_and_the_far_one_after() {
        let board = LoadBoard::new(Duration::from_secs(60));
        let now = Instant::now();
        board.record(2, busy(9), now);
        board.record(3, busy(1), now);
        board.record(4, busy(0), now);
        assert_eq!(order(board).preference([2, 3, 4].into_iter()), vec![3, 2, 4]);
    }

    #[test]
    fn equal_loads_keep_the_nearer_holder_and_down_holders_come_last() {
        let board = LoadBoard::new(Duration::from_secs(60));
        board.record(2, busy(0), Instant::now());
        board.record(3, busy(0), Instant::now());
        board.record_failure(2, "connection refused".into());
        let order = order(board);
        assert_eq!(order.preference([2, 3, 4].into_iter()), vec![3, 4, 2]);
        assert_eq!(order.preference([3, 7].into_iter()), vec![3, 7], "unknown members last");
    }
}
