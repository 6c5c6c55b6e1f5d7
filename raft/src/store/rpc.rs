//! The follower side of Raft's RPCs, for the internal listener: what a leader or a candidate
//! asks of this node.

use openraft::error::RaftError;

use super::MetaStore;
use crate::node_id::NodeId;

impl MetaStore {
    /// Follower side of RequestVote, for the internal listener.
    pub async fn vote(
        &self,
        request: openraft::raft::VoteRequest<NodeId>,
    ) -> Result<openraft::raft::VoteResponse<NodeId>, RaftError<NodeId>> {
        self.inner.raft.vote(request).await
    }

    /// Follower side of InstallSnapshot (one chunk), for the internal listener.
    pub async fn install_snapshot(
        &self,
        request: openraft::raft::InstallSnapshotRequest<crate::TypeConfig>,
    ) -> Result<openraft::raft::InstallSnapshotResponse<NodeId>, RaftError<NodeId, openraft::error::InstallSnapshotError>>
    {
        // Rare (a region catching up from scratch) and worth seeing: an install cut short by a
        // leader change shows here as chunks from one leader, then a fresh start from another.
        tracing::info!(
            leader = ?request.vote.leader_id().voted_for(),
            term = request.vote.leader_id().get_term(),
            snapshot = %request.meta.snapshot_id,
            offset = request.offset,
            bytes = request.data.len(),
            done = request.done,
            "snapshot chunk received"
        );
        self.inner.raft.install_snapshot(request).await
    }

    /// Follower side of AppendEntries (a heartbeat or entries): notes the leader's contact and the
    /// commit index it announced (capped at what may be visible), then hands it to Raft.
    pub async fn append_entries(
        &self,
        request: openraft::raft::AppendEntriesRequest<crate::TypeConfig>,
    ) -> Result<openraft::raft::AppendEntriesResponse<NodeId>, RaftError<NodeId>> {
        self.note_leader_contact();
        // Raised first: Raft hands the state machine these entries as soon as it takes them.
        self.inner.leases.raise(request.leader_commit);
        self.inner.raft.append_entries(request).await
    }

    /// Records that a leader's AppendEntries (a heartbeat or entries) just arrived.
    fn note_leader_contact(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        self.inner.last_leader_contact.store(now, std::sync::atomic::Ordering::Relaxed);
    }
}
