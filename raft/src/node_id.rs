//! Who a node is: its id and its membership record.
//!
//! Kept apart from `types` (openraft's type configuration, which names `Command`), so that
//! `command`, `model` and the others that only need a node's id import nothing that imports
//! them back.

use std::fmt;

use serde::{Deserialize, Serialize};

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
