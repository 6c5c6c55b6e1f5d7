//! Errors of the metadata store.

use crate::types::{NodeId, RegionNode};

/// A failure of the local store: the disk, the encoding, or an invariant.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed to read or write.
    #[error("metadata engine: {0}")]
    Engine(#[from] sled::Error),
    /// A record could not be encoded or decoded.
    #[error("metadata encoding: {0}")]
    Codec(String),
    /// File I/O of snapshots failed.
    #[error("metadata i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Why a proposed command was not committed. None of these is a rejection by the state machine
/// (those are [`crate::Rejection`]s inside a committed outcome).
#[derive(Debug, thiserror::Error)]
pub enum ProposeError {
    /// No leader is known or reachable, e.g. this node is in a minority partition.
    #[error("no leader reachable: {0}")]
    NoLeader(String),
    /// The leader did not commit the entry in time.
    #[error("commit timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// Forwarding to the leader failed.
    #[error("forwarding to leader {leader} ({node}) failed: {reason}")]
    Forward {
        /// Who we believed the leader was.
        leader: NodeId,
        /// Its address.
        node: RegionNode,
        /// What went wrong.
        reason: String,
    },
    /// Raft is shutting down or hit a fatal error.
    #[error("raft stopped: {0}")]
    Fatal(String),
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
