//! Commit notices beside the replication stream: how a follower hears that its log is committed
//! further without the leader's next write waiting a round trip for that news.
//!
//! openraft 0.9 keeps one AppendEntries in flight per follower, and once the commit index moves
//! it fills an idle stream with an AppendEntries without entries that only carries the new
//! commit index. Across a WAN that message holds the stream for a whole round trip: a write that
//! reaches the leader just after the previous one committed (a client writing one object after
//! another) waited for it before its own entries could leave, so a write at the leader cost two
//! round trips instead of one. See "Commit notices" in `docs/architecture.md`.
//!
//! So when the stream hands the network such a notice, and the follower has already acknowledged
//! exactly its `prev_log_id` under the same vote ([`Acknowledged`]), the notice goes out beside
//! the stream ([`Notices`]: one in flight per follower, the newest replacing any that waits) and
//! the stream is told at once that it succeeded, which is what the follower answers unless its
//! vote changed since. A follower that answers otherwise (a higher vote, a conflict) or cannot be
//! reached marks the stream's acknowledgement as doubtful: its next notice travels on the stream
//! again and openraft sees the real answer (it also sees a higher vote in the leader's next
//! heartbeat round, see `run_heartbeat`). Nothing here makes an entry visible: the commit index a
//! notice carries is still capped by the visibility gate ([`Leases::cap_commit`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use openraft::error::RaftError;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse};
use openraft::{LogId, Vote};
use tokio::sync::watch;

use crate::lease::Leases;
use crate::network::{APPEND_PATH, CallError, PeerClient, encode};
use crate::node_id::NodeId;
use crate::types::TypeConfig;

/// What one replication stream's follower last acknowledged: the leader's vote and the last log
/// id of the AppendEntries it accepted. Only a notice whose `prev_log_id` is that log id, under
/// that vote, may be answered without the follower (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Acknowledged {
    /// The vote and matched log id of the last AppendEntries the follower accepted on this stream.
    last: Option<(Vote<NodeId>, Option<LogId<NodeId>>)>,
    /// Set by a notice sent beside the stream that did not succeed: the next one goes on the
    /// stream, so openraft learns the follower's real answer.
    doubt: Arc<AtomicBool>,
}

impl Acknowledged {
    /// Records the answer to an AppendEntries sent on the stream: `sent` is the last log id it
    /// carried (its `prev_log_id` when it had no entries).
    pub(crate) fn record(
        &mut self,
        vote: &Vote<NodeId>,
        sent: Option<LogId<NodeId>>,
        answer: Option<&AppendEntriesResponse<NodeId>>,
    ) {
        self.last = match answer {
            Some(AppendEntriesResponse::Success) => Some((*vote, sent)),
            Some(AppendEntriesResponse::PartialSuccess(matched)) => Some((*vote, *matched)),
            _ => None,
        };
    }

    /// Whether `rpc` is a bare commit notice the follower has already acknowledged everything
    /// of, so it may travel beside the stream.
    pub(crate) fn covers(&self, rpc: &AppendEntriesRequest<TypeConfig>) -> bool {
        if !rpc.entries.is_empty() || self.doubt.swap(false, Ordering::AcqRel) {
            return false;
        }
        self.last.as_ref().is_some_and(|(vote, matched)| *vote == rpc.vote && *matched == rpc.prev_log_id)
    }
}

/// Sends one follower its commit notices beside the replication stream: one at a time, the
/// newest replacing one that waits (a newer notice carries a commit index at least as high).
/// The sending task ends when this is dropped (openraft dropped the stream).
pub(crate) struct Notices {
    /// The newest notice not yet taken by the sending task.
    newest: watch::Sender<Option<AppendEntriesRequest<TypeConfig>>>,
}

/// Where a follower's notices go and how they are sent.
pub(crate) struct NoticeRoute {
    /// The signed client calls go through.
    pub(crate) peers: PeerClient,
    /// The follower.
    pub(crate) target: NodeId,
    /// Its internal listener.
    pub(crate) addr: String,
    /// The visibility gate, which caps the commit index a notice carries.
    pub(crate) leases: Arc<Leases>,
    /// How long one notice may take (openraft's AppendEntries timeout, the heartbeat interval).
    pub(crate) timeout: Duration,
}

impl Notices {
    /// Starts the sending task of `route`; failures set `acknowledged`'s doubt.
    pub(crate) fn start(route: NoticeRoute, acknowledged: &Acknowledged) -> Self {
        let (newest, queued) = watch::channel(None);
        tokio::spawn(send_notices(route, queued, acknowledged.doubt.clone()));
        Self { newest }
    }

    /// Queues `rpc` (a notice [`Acknowledged::covers`]) to be sent beside the stream.
    pub(crate) fn queue(&self, rpc: AppendEntriesRequest<TypeConfig>) {
        self.newest.send_replace(Some(rpc));
    }
}

/// The sending task of [`Notices`]: until the stream is dropped.
async fn send_notices(
    route: NoticeRoute,
    mut queued: watch::Receiver<Option<AppendEntriesRequest<TypeConfig>>>,
    doubt: Arc<AtomicBool>,
) {
    while queued.changed().await.is_ok() {
        let Some(mut rpc) = queued.borrow_and_update().clone() else { continue };
        rpc.leader_commit = route.leases.cap_commit(rpc.leader_commit).await;
        let answer: Result<Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>, CallError> = match encode(&rpc) {
            Ok(body) => route.peers.call_encoded(route.target, &route.addr, APPEND_PATH, body, route.timeout).await,
            Err(e) => Err(CallError::Failed(e.to_string())),
        };
        let answer = answer.map_err(|e| e.to_string()).and_then(|reply| reply.map_err(|e| e.to_string()));
        match answer {
            Ok(AppendEntriesResponse::Success | AppendEntriesResponse::PartialSuccess(_)) => {
                tracing::trace!(target = route.target, commit = ?rpc.leader_commit, "commit notice delivered");
            }
            Ok(other) => {
                doubt.store(true, Ordering::Release);
                tracing::debug!(target = route.target, answer = ?other, "commit notice refused; the stream asks again");
            }
            Err(error) => {
                doubt.store(true, Ordering::Release);
                tracing::debug!(target = route.target, %error, "commit notice failed; the stream asks again");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, Entry, EntryPayload};

    use super::*;

    fn log_id(term: u64, index: u64) -> Option<LogId<NodeId>> {
        Some(LogId::new(CommittedLeaderId::new(term, 1), index))
    }

    fn vote(term: u64) -> Vote<NodeId> {
        Vote::new_committed(term, 1)
    }

    /// An AppendEntries of `vote` after `prev`, with `entries` blank entries.
    fn append(vote: Vote<NodeId>, prev: Option<LogId<NodeId>>, entries: u64) -> AppendEntriesRequest<TypeConfig> {
        let first = prev.map_or(0, |l| l.index + 1);
        AppendEntriesRequest {
            vote,
            prev_log_id: prev,
            leader_commit: prev,
            entries: (first..first + entries)
                .map(|i| Entry { log_id: log_id(vote.leader_id().term, i).unwrap(), payload: EntryPayload::Blank })
                .collect(),
        }
    }

    #[test]
    fn only_a_bare_notice_at_what_the_follower_acknowledged_under_the_same_vote_skips_the_stream() {
        let mut acked = Acknowledged::default();
        assert!(!acked.covers(&append(vote(2), log_id(2, 5), 0)), "nothing acknowledged yet");
        acked.record(&vote(2), log_id(2, 5), Some(&AppendEntriesResponse::Success));
        assert!(acked.covers(&append(vote(2), log_id(2, 5), 0)));
        assert!(!acked.covers(&append(vote(2), log_id(2, 5), 1)), "entries always travel on the stream");
        assert!(!acked.covers(&append(vote(2), log_id(2, 4), 0)), "another prefix than the acknowledged one");
        assert!(!acked.covers(&append(vote(2), log_id(2, 6), 0)), "more than the follower acknowledged");
        assert!(!acked.covers(&append(vote(3), log_id(2, 5), 0)), "another vote (a new term)");
        acked.record(&vote(2), log_id(2, 9), Some(&AppendEntriesResponse::PartialSuccess(log_id(2, 7))));
        assert!(acked.covers(&append(vote(2), log_id(2, 7), 0)), "a partial success acknowledges what it says");
    }

    #[test]
    fn a_refused_or_failed_answer_sends_the_next_notice_on_the_stream() {
        let mut acked = Acknowledged::default();
        acked.record(&vote(2), log_id(2, 5), Some(&AppendEntriesResponse::Success));
        acked.record(&vote(2), log_id(2, 5), Some(&AppendEntriesResponse::HigherVote(vote(3))));
        assert!(!acked.covers(&append(vote(2), log_id(2, 5), 0)), "a higher vote");
        acked.record(&vote(2), log_id(2, 5), Some(&AppendEntriesResponse::Success));
        acked.record(&vote(2), log_id(2, 5), None);
        assert!(!acked.covers(&append(vote(2), log_id(2, 5), 0)), "a failed call");
        acked.record(&vote(2), log_id(2, 5), Some(&AppendEntriesResponse::Conflict));
        assert!(!acked.covers(&append(vote(2), log_id(2, 5), 0)), "a conflict");
        // A notice sent beside the stream that did not succeed: once, the stream's own.
        acked.record(&vote(2), log_id(2, 5), Some(&AppendEntriesResponse::Success));
        acked.doubt.store(true, Ordering::Release);
        assert!(!acked.covers(&append(vote(2), log_id(2, 5), 0)), "in doubt: on the stream");
        acked.record(&vote(2), log_id(2, 5), Some(&AppendEntriesResponse::Success));
        assert!(acked.covers(&append(vote(2), log_id(2, 5), 0)), "the stream's answer settles the doubt");
    }
}
