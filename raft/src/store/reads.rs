//! Linearizable reads: [`MetaStore::read_barrier`] (free under a read lease, one round trip to
//! the leader otherwise), and the leader's side of what it rests on: lease grants, read indexes
//! and the quorum confirmations they share. The protocol: "Read leases" in
//! `docs/architecture.md`.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use openraft::error::RaftError;

use super::{MetaStore, fatal};
use crate::clock_drift::DriftVerdict;
use crate::error::{LeaderError, ProposeError};
use crate::lease::{LeaseGrant, LeaseRefusal, LeaseRequest};
use crate::network::{LeaderCallError, READ_INDEX_PATH};
use crate::node_id::NodeId;

impl MetaStore {
    /// Leader side of a lease request: records the grant, unless the holder may not hold one
    /// (see `lease`, and `follower_clocks` for the clocks), then confirms leadership with a
    /// quorum and returns the term and the read index the holder must apply first.
    /// `holder_clock_ms` is the holder's clock reading from the request's
    /// [`crate::CLOCK_HEADER`] (`None`: a holder of the previous release, or no number there).
    pub async fn grant_lease(
        &self,
        request: LeaseRequest,
        holder_clock_ms: Option<u64>,
    ) -> Result<LeaseGrant, LeaderError> {
        let arrived = Instant::now();
        let holder = request.holder;
        let (term, matched, followers) = {
            let m = self.inner.raft.metrics().borrow().clone();
            if m.current_leader != Some(self.inner.node_id) {
                return Err(LeaderError::NotLeader { leader: m.current_leader });
            }
            if m.membership_config.membership().get_node(&holder).is_none() {
                return Err(LeaderError::Refused(format!("node {holder} is not a member")));
            }
            let followers = self.other_members(&m);
            (m.current_term, m.replication.as_ref().and_then(|r| r.get(&holder).copied().flatten()), followers)
        };
        // Measured before any refusal: a refused request is a sample too, which is how the
        // leader sees the rates agree again.
        let holder_verdict = self.inner.follower_clocks.observe(holder, arrived, holder_clock_ms);
        let refusal = if self.inner.follower_clocks.leader_clock_off(term, &followers) {
            // Grants made before the judgement may outlast the leader's record of them.
            self.inner.leases.stretch_grants(term);
            Some(LeaseRefusal::ClockDrift { which: "the leader's against most followers'" })
        } else if holder_verdict == DriftVerdict::Exceeded {
            Some(LeaseRefusal::ClockDrift { which: "the holder's against the leader's" })
        } else {
            None
        };
        if let Some(refusal) = refusal {
            tracing::debug!(holder, %refusal, "read lease refused");
            return Err(LeaderError::Refused(refusal.to_string()));
        }
        let committed = self.committed().await?;
        // Recorded before the read index: an entry made visible after this point waits for the
        // holder, one made visible before is covered by the read index.
        let granted_at = Instant::now();
        let asked = Duration::from_millis(request.duration_ms);
        if let Err(refusal) = self.inner.leases.grant(term, holder, asked, matched, committed, granted_at) {
            tracing::debug!(holder, %refusal, "read lease refused");
            return Err(LeaderError::Refused(refusal.to_string()));
        }
        let (read_index, valid_for) = match self.own_leader_lease(term) {
            // No other leader makes anything visible while this node's own lease lasts, so a
            // lease that ends no later is safe without a new quorum round. The commit index is
            // read after the grant was recorded, so it covers every visibility step that did
            // not count the holder.
            Some((remaining, since_confirmed)) => {
                let committed = self.committed().await?.map_or(0, |l| l.index);
                (since_confirmed.max(committed).max(self.visible_index()), remaining)
            }
            None => (self.confirm_leadership(granted_at).await?, self.inner.leases.duration()),
        };
        if self.inner.raft.metrics().borrow().current_term != term {
            return Err(LeaderError::Refused("the term changed while granting".into()));
        }
        let valid_for_ms = u64::try_from(valid_for.as_millis()).unwrap_or(u64::MAX);
        Ok(LeaseGrant { term, read_index, valid_for_ms })
    }

    /// This node's commit index (Raft's, not yet necessarily visible).
    async fn committed(&self) -> Result<Option<openraft::LogId<NodeId>>, LeaderError> {
        Ok(self.inner.raft.with_raft_state(|st| st.committed).await?)
    }

    /// This node's own lease as the leader of `term`: what remains of it, and the read index of
    /// the quorum confirmation it rests on.
    /// `None` while this leader's clock is judged off (`follower_clocks`): its lease, counted on
    /// that clock, may outlast the next leader's takeover wait.
    fn own_leader_lease(&self, term: u64) -> Option<(Duration, u64)> {
        if self.inner.follower_clocks.judged_off() {
            return None;
        }
        let me = Some(self.inner.node_id);
        Some((self.inner.leases.remaining(me, term)?, self.inner.leases.read_index(me, term)?))
    }

    /// The index of the last entry this node may make visible.
    fn visible_index(&self) -> u64 {
        self.inner.leases.visible().map_or(0, |l| l.index)
    }

    /// If this node holds a read lease right now: the index to apply before a local read, and
    /// how long the lease still holds (the longest it makes sense to wait for that).
    fn lease_read_target(&self) -> Option<(u64, Duration)> {
        let (leader, term) = {
            let m = self.inner.raft.metrics();
            let m = m.borrow();
            (m.current_leader, m.current_term)
        };
        if let Some(leader) = leader
            && leader != self.inner.node_id
            && !self.inner.drift.lease_usable(leader, term)
        {
            // This node's clock has not been measured against the grantor's yet, or runs at
            // another rate past the bound: its lease may outlast the leader's record of it.
            return None;
        }
        if leader == Some(self.inner.node_id) && self.inner.follower_clocks.judged_off() {
            // This leader's clock runs at another rate than most followers' (see
            // `follower_clocks`): its own lease is not trusted.
            return None;
        }
        let granted_at = self.inner.leases.read_index(leader, term)?;
        let remaining = self.inner.leases.remaining(leader, term)?;
        let target = if leader == Some(self.inner.node_id) {
            // This node decides what is visible: entries of earlier terms are covered by the
            // confirmed read index, and nothing of this term is visible anywhere past its own
            // visible index.
            granted_at.max(self.visible_index())
        } else {
            // Everything visible anywhere is in this node's log (see `lease`): applying the
            // whole log is enough, no round trip.
            granted_at.max(self.inner.appended.load(Ordering::Acquire))
        };
        Some((target, remaining))
    }

    /// The leader's side of a read-index request: the index a reader must have applied to see
    /// everything visible anywhere (in particular every acknowledged write) before the request
    /// arrived.
    pub async fn read_index_as_leader(&self) -> Result<u64, LeaderError> {
        let term = self.inner.raft.metrics().borrow().current_term;
        if let Some((_, confirmed)) = self.own_leader_lease(term) {
            // While this node's lease lasts no other leader makes anything visible (see
            // `lease`): the confirmed read index covers earlier terms, the visible index this one.
            return Ok(confirmed.max(self.visible_index()));
        }
        self.confirm_leadership(Instant::now()).await
    }

    /// The leader's read index from a quorum confirmation that started at or after `since`.
    ///
    /// Confirmations run one at a time, and a caller that queued behind one which started late
    /// enough takes its result: read-index requests and lease grants from every follower share
    /// heartbeat rounds instead of each paying (and, with a peer down, logging) their own.
    pub(super) async fn confirm_leadership(&self, since: Instant) -> Result<u64, LeaderError> {
        let mut last = self.inner.last_confirmation.lock().await;
        if let Some((started, index)) = *last
            && started >= since
        {
            return Ok(index);
        }
        let started = Instant::now();
        let term = self.inner.raft.metrics().borrow().current_term;
        // Not `ensure_linearizable`: it also waits until this node applied the read index, which
        // may wait for a lagging lease holder; the caller waits for what it needs itself.
        let (read_log_id, _) = self.inner.raft.get_read_log_id().await?;
        let index = read_log_id.map_or(0, |l| l.index).max(self.restart_floor(term));
        *last = Some((started, index));
        *self.inner.last_confirmed_at.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((term, started));
        Ok(index)
    }

    /// The lowest read index this node may hand out as the leader of `term`: its log's end at
    /// startup if it started in that term, else 0. openraft's read index for a leader restarted
    /// within its term (it keeps its vote) is the commit index it saved, which trails what was
    /// visible before the restart (the log store saves it capped at the visible index, and does
    /// not flush it), or the first entry of its term, old by then. Everything committed anywhere
    /// is in its log, so its log's end at startup misses nothing.
    fn restart_floor(&self, term: u64) -> u64 {
        let (started_term, started_last_index) = self.inner.restart_floor;
        if term == started_term { started_last_index } else { 0 }
    }

    /// Waits until this node has applied everything the leader had committed when called.
    /// Call it before answering "does not exist", so a write made through another node just
    /// before is never missed.
    pub async fn read_barrier(&self) -> Result<(), ProposeError> {
        // A store that failed takes no more entries: whatever it has may be stale, lease or not.
        self.refuse_if_failed()?;
        let timeout = self.inner.commit_timeout;
        if let Some((target, remaining)) = self.lease_read_target() {
            // Bounded by the lease: an entry a lagging holder keeps invisible is waited for at
            // most that long, then the read asks the leader.
            if tokio::time::timeout(remaining, self.wait_applied(target)).await.is_ok() {
                self.inner.lease_reads.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
        }
        self.inner.read_index_reads.fetch_add(1, Ordering::Relaxed);
        let attempt = async {
            let mut backoff = Duration::from_millis(20);
            loop {
                let term = self.inner.raft.metrics().borrow().current_term;
                match self.inner.raft.ensure_linearizable().await {
                    // This node leads: its read index is openraft's, no lower than its floor
                    // after a restart within its term.
                    Ok(log_id) => {
                        return self.wait_applied(log_id.map_or(0, |l| l.index).max(self.restart_floor(term))).await;
                    }
                    Err(RaftError::APIError(openraft::error::CheckIsLeaderError::ForwardToLeader(forward))) => {
                        if let (Some(leader), Some(node)) = (forward.leader_id, forward.leader_node) {
                            let reply: Result<u64, LeaderCallError> = self
                                .inner
                                .peers
                                .call_leader(leader, &node.internal, READ_INDEX_PATH, &(), timeout)
                                .await;
                            match reply {
                                Ok(index) => return self.wait_applied(index).await,
                                Err(e) => {
                                    tracing::debug!(leader, error = %e, "read index from leader failed; retrying");
                                }
                            }
                        }
                    }
                    Err(RaftError::APIError(e)) => tracing::debug!(error = %e, "read index failed; retrying"),
                    Err(RaftError::Fatal(e)) => return Err(fatal(e)),
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(500));
            }
        };
        tokio::time::timeout(timeout, attempt).await.map_err(|_| ProposeError::Timeout(timeout))?
    }

    /// Waits until the local state machine has applied `index`.
    pub async fn wait_applied(&self, index: u64) -> Result<(), ProposeError> {
        let mut applied = self.inner.applied.clone();
        applied.wait_for(|applied| *applied >= index).await.map_err(fatal)?;
        Ok(())
    }
}
