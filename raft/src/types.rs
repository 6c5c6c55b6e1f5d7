//! The openraft type configuration: what a node is, what the log carries.

use crate::command::{Command, CommandOutcome};
use crate::node_id::{NodeId, RegionNode};

openraft::declare_raft_types!(
    /// Meridian's Raft types: commands in, outcomes out, snapshots streamed from files.
    pub TypeConfig:
        D = Command,
        R = CommandOutcome,
        NodeId = NodeId,
        Node = RegionNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
);

/// The running Raft instance of this crate's type configuration.
pub(crate) type Raft = openraft::Raft<TypeConfig>;

// openraft's records as this crate stores them (log, log meta, state machine meta, snapshot
// meta); their shapes are openraft 0.9's, which the pinned version keeps (see `codec`).
crate::codec::record! {
    openraft::Entry<TypeConfig> => "log entry",
    openraft::Vote<NodeId> => "vote",
    openraft::LogId<NodeId> => "log id",
    Option<openraft::LogId<NodeId>> => "optional log id",
    openraft::StoredMembership<NodeId, RegionNode> => "membership",
    openraft::SnapshotMeta<NodeId, RegionNode> => "snapshot metadata",
}
