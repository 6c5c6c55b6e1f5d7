//! Who is in the cluster: creating it, adding and removing regions, and the members' records.

use std::collections::BTreeMap;

use openraft::error::RaftError;

use super::{MetaStore, fatal};
use crate::error::{LeaderError, ProposeError};
use crate::node_id::{NodeId, RegionNode};

impl MetaStore {
    /// The ids of every member, voters and learners, in id order.
    pub fn member_ids(&self) -> Vec<NodeId> {
        self.inner.raft.metrics().borrow().membership_config.membership().nodes().map(|(id, _)| *id).collect()
    }

    /// The ids of every member but this node (voters and learners), in id order, as `metrics`
    /// show the membership.
    pub(super) fn other_members(&self, metrics: &openraft::RaftMetrics<NodeId, RegionNode>) -> Vec<NodeId> {
        metrics
            .membership_config
            .membership()
            .nodes()
            .map(|(id, _)| *id)
            .filter(|id| *id != self.inner.node_id)
            .collect()
    }

    /// Creates the cluster with these voters if this node has never been part of one.
    /// Returns whether it did; a store that is already initialized is left as it is.
    pub async fn initialize_if_new(&self, voters: BTreeMap<NodeId, RegionNode>) -> Result<bool, ProposeError> {
        if self.inner.raft.is_initialized().await.map_err(fatal)? {
            return Ok(false);
        }
        match self.inner.raft.initialize(voters).await {
            Ok(()) => Ok(true),
            Err(RaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => Ok(false),
            Err(e) => Err(fatal(e)),
        }
    }

    /// The membership record of a node, if it is a member.
    pub fn member(&self, id: NodeId) -> Option<RegionNode> {
        self.inner.raft.metrics().borrow().membership_config.membership().get_node(&id).cloned()
    }

    /// Adds a region on the leader: it joins as a learner, and once it has caught up with the log
    /// (openraft's blocking add) it becomes a voter when `voter` is set. Errors say who leads
    /// when this node does not.
    pub async fn add_region(&self, id: NodeId, node: RegionNode, voter: bool) -> Result<(), LeaderError> {
        self.inner.raft.add_learner(id, node, true).await?;
        tracing::info!(id, "region joined as a learner and caught up");
        if voter {
            let change = openraft::ChangeMembers::AddVoterIds(std::collections::BTreeSet::from([id]));
            self.inner.raft.change_membership(change, false).await?;
            tracing::info!(id, "region promoted to voter");
        }
        Ok(())
    }

    /// Removes a region on the leader in two committed steps: a voter is first demoted to a
    /// learner, kept in the membership so that it still receives the entry that demotes it,
    /// then removed from the members, so it is no longer asked anything.
    ///
    /// Removing a voter outright stops replication to it as soon as the leader appends the
    /// change, so it never learns it was removed: it goes on believing it votes and, once its
    /// election timeout passes, campaigns for ever. A learner never campaigns.
    pub async fn remove_region(&self, id: NodeId) -> Result<(), LeaderError> {
        let ids = std::collections::BTreeSet::from([id]);
        let is_voter = self.inner.raft.metrics().borrow().membership_config.membership().voter_ids().any(|v| v == id);
        if is_voter {
            let change = openraft::ChangeMembers::RemoveVoters(ids.clone());
            self.inner.raft.change_membership(change, true).await?;
            tracing::info!(id, "region demoted to learner");
        }
        let change = openraft::ChangeMembers::RemoveNodes(ids);
        self.inner.raft.change_membership(change, false).await?;
        tracing::info!(id, "region removed from the cluster");
        Ok(())
    }
}
