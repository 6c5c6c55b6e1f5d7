//! Errors of the metadata store.

use openraft::error::{CheckIsLeaderError, ClientWriteError, Fatal, ForwardToLeader, RaftError};

use crate::node_id::{NodeId, RegionNode};

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
    /// The HTTP client of calls to peers could not be built with its TLS configuration.
    #[error("client of calls to peers: {0}")]
    PeerClient(#[source] reqwest::Error),
    /// A record was written in a format this release cannot read: by a newer release, or
    /// damaged. Never guessed at (see `codec`).
    #[error(
        "{record} record in format {format}, but this release reads formats 0 to {readable}: it was written by a \
         newer release (upgrade this node) or is damaged"
    )]
    UnknownFormat {
        /// Which record type (its `Record::NAME`).
        record: &'static str,
        /// The format the record says it is in.
        format: u64,
        /// The newest format this release reads.
        readable: u16,
    },
}

/// Why a proposed command was not committed. None of these is a rejection by the state machine
/// (those are [`crate::Rejection`]s inside a committed outcome).
///
/// A proposal follows leader changes until its commit timeout, so "no leader" and a forward the
/// leader never got are not answers of their own: they end as [`ProposeError::Timeout`]. A
/// forward the leader may have got ends at once as [`ProposeError::OutcomeUnknown`], because
/// proposing it again could apply it twice.
#[derive(Debug, thiserror::Error)]
pub enum ProposeError {
    /// The command was not committed and applied here in time (no leader, no quorum, or the
    /// leader could not be reached).
    #[error("commit timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// Raft is shutting down or hit a fatal error.
    #[error("raft stopped: {0}")]
    Fatal(String),
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The command was forwarded to the leader, but the call failed after it was sent (the
    /// connection dropped, the leader died or timed out before answering): the leader may have
    /// appended it, and it may still commit. It is not proposed again, since a command applied
    /// twice can bring back a version overwritten in between, whose blob its holder already
    /// dropped (anomaly 4 of docs/faults.md).
    #[error("the leader may or may not have committed the write: {0}")]
    OutcomeUnknown(String),
}

impl ProposeError {
    /// Whether the cluster cannot commit right now and a retry later may succeed (S3
    /// `ServiceUnavailable`, HTTP 503), rather than this node's own store failing (500). The one
    /// rule the S3 gateway and the web API both map by.
    pub fn is_unavailable(&self) -> bool {
        !matches!(self, Self::Store(_))
    }

    /// The same failure for another proposal of the same log entry (one batch, one error, many
    /// waiting callers): each gets the kind the entry failed with, so a store failure stays a
    /// store failure (500) and a timeout a timeout.
    pub(crate) fn for_each_in_batch(&self) -> Self {
        match self {
            Self::Timeout(after) => Self::Timeout(*after),
            Self::Fatal(reason) => Self::Fatal(reason.clone()),
            Self::OutcomeUnknown(reason) => Self::OutcomeUnknown(reason.clone()),
            // sled's and std's errors are not `Clone`: the cause travels as text.
            Self::Store(e) => Self::Store(StoreError::Codec(e.to_string())),
        }
    }
}

/// Why a node asked to act as the leader (a forwarded proposal, a read index, a read lease, a
/// membership change) did not: the one error the leader's side of a call between nodes answers.
///
/// On the wire it travels as its text inside the `Result<T, String>` reply the previous release
/// sends and expects (see [`crate::network::LeaderReply`]); [`LeaderError::from`] a `String`
/// reads this type's own text back and recognises the previous release's messages, so nodes of
/// both releases understand each other during a rolling upgrade.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaderError {
    /// This node does not lead; `leader` is the one it knows of, if any. Retry there.
    #[error("not the leader (leader: {})", leader_text(*.leader))]
    NotLeader {
        /// The leader this node knows of.
        leader: Option<NodeId>,
    },
    /// The leader will not do this (a lease it may not grant, a membership change in progress,
    /// a node that is not a member); why, for a person.
    #[error("refused: {0}")]
    Refused(String),
    /// The leader could not confirm its leadership with a quorum in time.
    #[error("timed out: no quorum answered")]
    Timeout,
    /// Raft stopped on the leader, or its store failed.
    #[error("fatal: {0}")]
    Fatal(String),
}

/// How [`LeaderError::NotLeader`] names the leader in its text.
fn leader_text(leader: Option<NodeId>) -> String {
    leader.map_or_else(|| "unknown".to_owned(), |id| id.to_string())
}

impl From<String> for LeaderError {
    /// Reads a leader's error back from the text it crossed the wire as: this type's own
    /// [`Display`](std::fmt::Display), or a message of the previous release (which sent
    /// openraft's error text or its own sentences). A message it does not know is a refusal: the
    /// leader answered, and said no.
    fn from(text: String) -> Self {
        if let Some(rest) = text.strip_prefix("not the leader (leader: ").and_then(|r| r.strip_suffix(')')) {
            return Self::NotLeader { leader: rest.parse().ok() };
        }
        if let Some(rest) = text.strip_prefix("refused: ") {
            return Self::Refused(rest.to_owned());
        }
        if let Some(rest) = text.strip_prefix("fatal: ") {
            return Self::Fatal(rest.to_owned());
        }
        if text == "timed out: no quorum answered" {
            return Self::Timeout;
        }
        // The previous release: its own "not the leader", openraft's `ForwardToLeader`
        // ("has to forward request to: Some(2), Some(..)"), `QuorumNotEnough` and `Fatal`.
        if text == "not the leader" {
            return Self::NotLeader { leader: None };
        }
        if let Some(rest) = text.strip_prefix("has to forward request to: ") {
            let leader = rest.strip_prefix("Some(").and_then(|r| r.split(')').next()).and_then(|id| id.parse().ok());
            return Self::NotLeader { leader };
        }
        if text.starts_with("not enough for a quorum") {
            return Self::Timeout;
        }
        if text == "raft stopped" || text == "panicked" {
            return Self::Fatal(text);
        }
        Self::Refused(text)
    }
}

impl From<ForwardToLeader<NodeId, RegionNode>> for LeaderError {
    fn from(forward: ForwardToLeader<NodeId, RegionNode>) -> Self {
        Self::NotLeader { leader: forward.leader_id }
    }
}

impl From<CheckIsLeaderError<NodeId, RegionNode>> for LeaderError {
    fn from(e: CheckIsLeaderError<NodeId, RegionNode>) -> Self {
        match e {
            CheckIsLeaderError::ForwardToLeader(forward) => forward.into(),
            CheckIsLeaderError::QuorumNotEnough(_) => Self::Timeout,
        }
    }
}

impl From<ClientWriteError<NodeId, RegionNode>> for LeaderError {
    fn from(e: ClientWriteError<NodeId, RegionNode>) -> Self {
        match e {
            ClientWriteError::ForwardToLeader(forward) => forward.into(),
            ClientWriteError::ChangeMembershipError(e) => Self::Refused(e.to_string()),
        }
    }
}

impl From<Fatal<NodeId>> for LeaderError {
    fn from(e: Fatal<NodeId>) -> Self {
        Self::Fatal(e.to_string())
    }
}

impl From<std::convert::Infallible> for LeaderError {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

impl<E: Into<LeaderError>> From<RaftError<NodeId, E>> for LeaderError {
    fn from(e: RaftError<NodeId, E>) -> Self {
        match e {
            RaftError::APIError(e) => e.into(),
            RaftError::Fatal(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leader_error_reads_back_from_its_own_text() {
        for e in [
            LeaderError::NotLeader { leader: Some(3) },
            LeaderError::NotLeader { leader: None },
            LeaderError::Refused("node 9 is not a member".into()),
            LeaderError::Timeout,
            LeaderError::Fatal("raft stopped".into()),
        ] {
            assert_eq!(LeaderError::from(e.to_string()), e);
        }
    }

    #[test]
    fn the_previous_releases_messages_are_recognised() {
        let forward = ForwardToLeader::<NodeId, RegionNode>::new(2, RegionNode::default());
        assert_eq!(LeaderError::from(forward.to_string()), LeaderError::NotLeader { leader: Some(2) });
        let unknown = ForwardToLeader::<NodeId, RegionNode>::empty();
        assert_eq!(LeaderError::from(unknown.to_string()), LeaderError::NotLeader { leader: None });
        assert_eq!(LeaderError::from("not the leader".to_owned()), LeaderError::NotLeader { leader: None });
        let stopped = Fatal::<NodeId>::Stopped.to_string();
        assert_eq!(LeaderError::from(stopped.clone()), LeaderError::Fatal(stopped));
        let refusal = "the term changed while granting".to_owned();
        assert_eq!(LeaderError::from(refusal.clone()), LeaderError::Refused(refusal));
        // What a leader of this release sends, as an older node would log it.
        assert_eq!(LeaderError::NotLeader { leader: Some(2) }.to_string(), "not the leader (leader: 2)");
    }
}
