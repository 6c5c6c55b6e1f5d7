//! The store's background tasks, each running for as long as the store lives: the leader's
//! heartbeat, the renewal of this node's read lease, the leader side of the visibility gate, and
//! the snapshot policy. (The proposal batcher, the fifth, is in `propose`.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{Inner, MetaStore};
use crate::error::LeaderError;
use crate::lease::{LeaseGrant, LeaseRequest};
use crate::network::{CallError, LEASE_PATH};
use crate::node_id::{NodeId, RegionNode};
use crate::snapshot::SnapshotFiles;
use crate::snapshot_policy::{CHECK_EVERY, LogGrowth, RETRIGGER_AFTER, SnapshotPolicy, snapshot_bytes};

/// Renews this node's read lease four times per lease period, for as long as the store lives.
pub(super) async fn run_lease_keeper(store: std::sync::Weak<Inner>) {
    loop {
        let Some(inner) = store.upgrade() else { return };
        let store = MetaStore { inner };
        let every = store.inner.leases.renew_every();
        store.renew_lease().await;
        drop(store);
        tokio::time::sleep(every).await;
    }
}

/// The leader's heartbeat, sent beside the replication streams rather than on them, every
/// `every`, for as long as the store lives: an AppendEntries without entries to every voter at
/// once, and openraft's own heartbeat down every stream every [`LEARNER_HEARTBEAT_EVERY`]th tick
/// while the membership has learners. Why openraft's periodic heartbeat is off and this runs
/// instead: "Heartbeats" in `docs/architecture.md`. A voter that turned one of these down for
/// its log (`heartbeat_rejected`, see `network::PeerConnection`) gets a stream heartbeat at the
/// next tick, which lets its stream find out and catch it up.
pub(super) async fn run_heartbeat(store: std::sync::Weak<Inner>, every: Duration, heartbeat_rejected: Arc<AtomicBool>) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for tick in 0_u64.. {
        ticks.tick().await;
        let Some(inner) = store.upgrade() else { return };
        let store = MetaStore { inner };
        let has_learners = {
            let m = store.inner.raft.metrics();
            let m = m.borrow();
            if m.current_leader != Some(store.inner.node_id) {
                continue;
            }
            m.membership_config.membership().learner_ids().next().is_some()
        };
        let rejected = heartbeat_rejected.swap(false, Ordering::AcqRel);
        if (rejected || has_learners && tick.is_multiple_of(LEARNER_HEARTBEAT_EVERY))
            && let Err(e) = store.inner.raft.trigger().heartbeat().await
        {
            tracing::debug!(error = %e, "stream heartbeat failed");
        }
        // A round ends with a quorum's answers or after `every` (openraft's timeout for these
        // requests is the heartbeat interval), so ticks are at most that late.
        if let Err(e) = store.confirm_leadership(Instant::now()).await {
            tracing::debug!(error = %e, "heartbeat round failed");
        }
    }
}

/// How many heartbeat ticks apart the stream heartbeats for learners go (see [`run_heartbeat`]):
/// rarely, because each one holds its stream for a round trip, voters' streams included.
const LEARNER_HEARTBEAT_EVERY: u64 = 4;

/// Leader side of the visibility gate (see `lease`): recomputes what may be visible whenever
/// replication progresses (Raft metrics), the state machine waits for an entry, or a lagging
/// holder's grant or the new-leader wait runs out; for as long as the store lives.
pub(super) async fn run_visibility_gate(
    store: std::sync::Weak<Inner>,
    mut metrics: watch::Receiver<openraft::RaftMetrics<NodeId, RegionNode>>,
    mut wanted: watch::Receiver<Option<openraft::LogId<NodeId>>>,
) {
    loop {
        let Some(inner) = store.upgrade() else { return };
        let wake_at = MetaStore { inner }.advance_visibility().await;
        let timer = async {
            match wake_at {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = metrics.changed() => if changed.is_err() { return },
            changed = wanted.changed() => if changed.is_err() { return },
            () = timer => {}
        }
    }
}

impl MetaStore {
    /// Leader side: moves the visible log id as far as every read-lease holder allows (see
    /// `lease`), and tells the followers at once when it moved past a commit index they were
    /// sent. Returns when to look again if nothing else changes.
    async fn advance_visibility(&self) -> Option<Instant> {
        // Committed (Raft hands out only committed ids to wait for), so no need to ask Raft.
        let committed = *self.inner.leases.wanted().borrow();
        if committed <= self.inner.leases.visible() {
            // Nothing waits to become visible (most metrics changes are heartbeat answers).
            return None;
        }
        let (term, alone, matched) = {
            let m = self.inner.raft.metrics();
            let m = m.borrow();
            if m.current_leader != Some(self.inner.node_id) || m.state != openraft::ServerState::Leader {
                return None;
            }
            let alone = m.membership_config.membership().nodes().all(|(id, _)| *id == self.inner.node_id);
            let matched: Vec<(NodeId, Option<openraft::LogId<NodeId>>)> =
                m.replication.as_ref().map(|r| r.iter().map(|(id, l)| (*id, *l)).collect()).unwrap_or_default();
            (m.current_term, alone, matched)
        };
        if committed.is_some_and(|c| c.leader_id.term > term) {
            // Leading a newer term than the metrics said: its holders and wait are not known
            // yet; the metrics change that follows brings this back.
            return None;
        }
        let matched = |id: NodeId| matched.iter().find(|(m, _)| *m == id).and_then(|(_, l)| *l);
        let advance = self.inner.leases.advance(term, committed, matched, alone, Instant::now());
        if advance.advanced && self.inner.leases.take_capped() {
            tracing::trace!(visible = ?self.inner.leases.visible(), "visible index moved; pushing it to followers");
            // Voters hear of it at once beside their replication streams (a stream may have a
            // capped AppendEntries in flight for a round trip); learners through their streams.
            let voters = self.clone();
            tokio::spawn(async move {
                if let Err(e) = voters.confirm_leadership(Instant::now()).await {
                    tracing::debug!(error = %e, "announcing a visibility change failed");
                }
            });
            if let Err(e) = self.inner.raft.trigger().heartbeat().await {
                tracing::debug!(error = %e, "heartbeat after a visibility change failed");
            }
        }
        advance.wake_at
    }

    /// Renews this node's read lease: from its own quorum confirmation when it leads, from the
    /// leader otherwise. Failures just let the lease run out; reads then ask the leader.
    async fn renew_lease(&self) {
        if self.storage_failure().is_some() {
            // No lease for a node that no longer appends: the leader would hold its writes
            // back for it, and it must not read under one anyway.
            return;
        }
        let (leader, term) = {
            let m = self.inner.raft.metrics().borrow().clone();
            (m.current_leader, m.current_term)
        };
        let Some(leader) = leader else { return };
        let asked_at = Instant::now();
        if leader == self.inner.node_id {
            // Starts the new-leader wait as early as possible, not at the first write.
            self.inner.leases.writes_allowed_from(term);
            if let Ok(index) = self.confirm_leadership(asked_at).await {
                self.inner.leases.hold(leader, term, asked_at, index, self.inner.leases.duration());
            }
            return;
        }
        let Some(node) = self.member(leader) else { return };
        let wait = self.inner.leases.renew_every() * 2;
        let request = LeaseRequest {
            holder: self.inner.node_id,
            duration_ms: u64::try_from(self.inner.leases.duration().as_millis()).unwrap_or(u64::MAX),
        };
        let reply: Result<(Result<LeaseGrant, LeaderError>, Option<u64>), CallError> =
            self.inner.peers.call_leader_clocked(leader, &node.internal, LEASE_PATH, &request, wait).await;
        match reply {
            Ok((Ok(grant), leader_clock)) if grant.term == term => {
                // Every grant is a clock sample, also while the drift keeps the lease unused:
                // that is how the node sees the rate come back.
                self.inner.drift.observe(leader, term, asked_at, Instant::now(), leader_clock);
                let valid_for = Duration::from_millis(grant.valid_for_ms);
                self.inner.leases.hold(leader, term, asked_at, grant.read_index, valid_for);
            }
            Ok((Ok(_), _)) => {}
            Ok((Err(LeaderError::Refused(reason)), leader_clock)) => {
                // A refusal from the leader is a clock sample too: a leader that refuses because
                // it measured this node's clock past the bound (`follower_clocks`) must not keep
                // it from measuring the same thing.
                if leader_clock.is_some() {
                    self.inner.drift.observe(leader, term, asked_at, Instant::now(), leader_clock);
                }
                tracing::debug!(leader, %reason, "read lease refused");
            }
            Ok((Err(e), _)) => tracing::debug!(leader, error = %e, "read lease refused"),
            Err(e) => tracing::debug!(leader, error = %e, "read lease request failed"),
        }
    }
}

/// How often the leader checks whether every member reads a newer format ([`run_format_raise`]):
/// often, so a new cluster raises it within a second of forming (commands new in this release
/// wait for it); the check reads only in-memory state.
const FORMAT_CHECK_EVERY: Duration = Duration::from_millis(300);
/// How recent a member's report of the formats it reads must be to count: a node replaced by
/// an older binary stops counting this long after its last answer of the newer one.
const FORMAT_REPORT_FRESH: Duration = Duration::from_secs(6);

/// The leader raises the cluster's active format to [`crate::codec::CURRENT_FORMAT`] once every
/// member (voters and learners) recently said it reads it: before that every node writes the
/// previous release's format, so nodes of that release keep working and a rollback stays
/// possible. For as long as the store lives; idle once the format is current.
pub(super) async fn run_format_raise(store: std::sync::Weak<Inner>) {
    let target = crate::codec::CURRENT_FORMAT;
    if crate::protocol::speaking().previous_release {
        return; // the previous release never raised anything
    }
    loop {
        tokio::time::sleep(FORMAT_CHECK_EVERY).await;
        let Some(inner) = store.upgrade() else { return };
        let store = MetaStore { inner };
        match store.inner.tables.active_format() {
            Ok(active) if active >= target => return,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "format raise: cannot read the active format");
                continue;
            }
        }
        let members: Vec<NodeId> = {
            let m = store.inner.raft.metrics();
            let m = m.borrow();
            if m.current_leader != Some(store.inner.node_id) {
                continue;
            }
            m.membership_config.membership().nodes().map(|(id, _)| *id).collect()
        };
        let versions = store.inner.peers.versions();
        let behind: Vec<NodeId> = members
            .iter()
            .copied()
            .filter(|id| *id != store.inner.node_id)
            .filter(|id| versions.recent(*id, FORMAT_REPORT_FRESH).is_none_or(|v| v.reads_format < target))
            .collect();
        if !behind.is_empty() {
            tracing::debug!(?behind, format = target, "format raise waits for members that do not read it yet");
            continue;
        }
        match store.propose(crate::Command::RaiseFormat { format: target }).await {
            Ok(_) => tracing::info!(format = target, ?members, "every member reads the new format: raised it"),
            Err(e) => tracing::warn!(error = %e, format = target, "format raise not committed; retrying"),
        }
    }
}

/// Builds snapshots when [`SnapshotPolicy::due`] says so (openraft's own policy is off, see
/// `snapshot_policy`), for as long as the store lives. A trigger that did not produce a snapshot
/// within [`RETRIGGER_AFTER`] (a build in progress, or one that failed) is repeated.
pub(super) async fn run_snapshot_policy(
    store: std::sync::Weak<Inner>,
    policy: SnapshotPolicy,
    growth: LogGrowth,
    files: SnapshotFiles,
) {
    // The log bytes at the last snapshot this task saw (or asked for), and that snapshot.
    let mut mark = growth.total();
    let mut seen = None;
    let mut asked: Option<Instant> = None;
    let mut ticks = tokio::time::interval(CHECK_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(inner) = store.upgrade() else { return };
        let (snapshot, applied) = {
            let m = inner.raft.metrics();
            let m = m.borrow();
            (m.snapshot, m.last_applied)
        };
        if snapshot != seen {
            // A snapshot appeared (built here, or installed from the leader): count from it.
            seen = snapshot;
            asked = None;
            mark = growth.total();
            continue;
        }
        if asked.is_some_and(|at| at.elapsed() < RETRIGGER_AFTER) {
            continue;
        }
        let entries_since = applied.map_or(0, |l| l.index).saturating_sub(snapshot.map_or(0, |l| l.index));
        let bytes_since = growth.total().saturating_sub(mark);
        if !policy.due(entries_since, bytes_since, snapshot_bytes(&files)) {
            continue;
        }
        tracing::info!(entries_since, bytes_since, "snapshot due");
        if let Err(e) = inner.raft.trigger().snapshot().await {
            tracing::warn!(error = %e, "cannot trigger a snapshot");
        }
        asked = Some(Instant::now());
    }
}
