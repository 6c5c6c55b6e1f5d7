//! The openraft type configuration: what a node is, what the log carries.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::command::{Command, CommandOutcome};

/// A region's node id, as configured in `cluster.toml` (`[[region]] id`).
pub type NodeId = u64;

/// What the cluster membership records about a node: enough to reach it and to tell people
/// where it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionNode {
    /// The region's name, e.g. `frankfurt`.
    pub region: String,
    /// `host:port` of the internal listener (Raft RPC, blob pulls).
    pub internal: String,
    /// `host:port` of the S3 listener.
    pub s3: String,
    /// `host:port` of the web listener.
    pub web: String,
}

impl fmt::Display for RegionNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.region, self.internal)
    }
}

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
