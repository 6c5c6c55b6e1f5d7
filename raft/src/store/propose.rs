//! Writes: [`MetaStore::propose`] queues a command for the batcher, which proposes what queued
//! up as one log entry, through Raft on the leader or forwarded to it from a follower; and the
//! leader's side of a forwarded proposal.

use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};

use super::{Inner, MetaStore, fatal};
use crate::command::{Command, CommandOutcome};
use crate::error::{LeaderError, ProposeError};
use crate::network::{LeaderCallError, PROPOSE_PATH};
use crate::node_id::{NodeId, RegionNode};

/// A command waiting to be proposed, and where its outcome goes.
pub(super) struct Proposal {
    command: Command,
    reply: tokio::sync::oneshot::Sender<Result<CommandOutcome, ProposeError>>,
}

/// Most commands one log entry carries.
const MAX_BATCH: usize = 256;

/// Most inline object bytes one log entry carries (a batch closes once it holds this much):
/// an entry must cross a WAN link within one AppendEntries timeout (see
/// [`crate::network::MAX_APPEND_BODY`]). 256 objects of 16 KiB would be 4 MiB.
pub(crate) const MAX_BATCH_BYTES: usize = 512 * 1024;

/// Proposes queued commands, one log entry at a time: everything that queued up while the
/// previous entry was being committed goes into the next one. openraft 0.9 flushes each append
/// before it takes the next, so without this every concurrent write would pay its own disk
/// flush; with it, N concurrent writes share one.
pub(super) async fn run_batcher(
    store: std::sync::Weak<Inner>,
    mut queue: tokio::sync::mpsc::UnboundedReceiver<Proposal>,
) {
    while let Some(first) = queue.recv().await {
        let mut bytes = first.command.inline_bytes();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            match queue.try_recv() {
                Ok(next) => {
                    bytes += next.command.inline_bytes();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        let Some(inner) = store.upgrade() else { return };
        let store = MetaStore { inner };
        let timeout = store.inner.commit_timeout;
        if batch.len() == 1 {
            let Proposal { command, reply } = batch.remove(0);
            let result = tokio::time::timeout(timeout, store.propose_until_done(command))
                .await
                .unwrap_or(Err(ProposeError::Timeout(timeout)));
            let _ = reply.send(result);
            continue;
        }
        let (commands, replies): (Vec<Command>, Vec<_>) = batch.into_iter().map(|p| (p.command, p.reply)).unzip();
        let result = tokio::time::timeout(timeout, store.propose_until_done(Command::Batch(commands)))
            .await
            .unwrap_or(Err(ProposeError::Timeout(timeout)));
        match result {
            Ok(CommandOutcome::Batch(outcomes)) if outcomes.len() == replies.len() => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Ok(other) => {
                for reply in replies {
                    let _ = reply.send(Err(fatal(format!("batch answered with {other:?}"))));
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(e.for_each_in_batch()));
                }
            }
        }
    }
}

impl MetaStore {
    /// Proposes a command and returns its outcome once it is committed and applied on this
    /// node. Follows leader changes; gives up after the commit timeout. Concurrent proposals
    /// share log entries (see `run_batcher`).
    pub async fn propose(&self, command: Command) -> Result<CommandOutcome, ProposeError> {
        let (reply, outcome) = tokio::sync::oneshot::channel();
        self.inner.proposals.send(Proposal { command, reply }).map_err(|_| fatal("proposal batcher stopped"))?;
        outcome.await.map_err(|_| fatal("proposal batcher stopped"))?
    }

    pub(super) async fn propose_until_done(&self, command: Command) -> Result<CommandOutcome, ProposeError> {
        let mut backoff = Duration::from_millis(20);
        loop {
            let leader = match self.inner.raft.client_write(command.clone()).await {
                // Applied, so visible: every read-lease holder has it (see `lease`).
                Ok(response) => return Ok(response.data),
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                    forward.leader_id.zip(forward.leader_node)
                }
                Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => return Err(fatal(e)),
                Err(RaftError::Fatal(e)) => return Err(fatal(e)),
            };
            if let Some((leader, node)) = leader {
                let sent = std::time::Instant::now();
                match self.forward(leader, &node, &command).await {
                    Ok((index, outcome)) => {
                        let forward_ms = sent.elapsed().as_millis();
                        // Committed: proposing it again would apply it twice, so only waiting
                        // here can fail (the store is shutting down).
                        self.wait_applied(index).await?;
                        tracing::debug!(
                            leader,
                            index,
                            forward_ms,
                            applied_ms = sent.elapsed().as_millis(),
                            "forwarded proposal committed and applied here"
                        );
                        return Ok(outcome);
                    }
                    // The leader never took it (moved, not reachable): wait for the next one and
                    // try again.
                    Err(e) if e.left_no_effect() => {
                        tracing::debug!(leader, error = %e, "forwarding failed before the leader took it; retrying");
                    }
                    // The leader may have appended it, and a later leader may commit it: sent
                    // again it could commit twice, with other writes in between.
                    Err(e) => {
                        tracing::warn!(leader, error = %e, "forwarded proposal lost on the way back; outcome unknown");
                        return Err(ProposeError::OutcomeUnknown(format!("forwarded to node {leader}: {e}")));
                    }
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }

    /// Sends a command to the leader; its outcome and the log index to apply before answering.
    async fn forward(
        &self,
        leader: NodeId,
        node: &RegionNode,
        command: &Command,
    ) -> Result<(u64, CommandOutcome), LeaderCallError> {
        self.inner.peers.call_leader(leader, &node.internal, PROPOSE_PATH, command, self.inner.commit_timeout).await
    }

    /// The leader's side of a forwarded proposal: commit it here and report its log index.
    pub async fn propose_as_leader(&self, command: Command) -> Result<(u64, CommandOutcome), LeaderError> {
        let response = self.inner.raft.client_write(command).await?;
        Ok((response.log_id.index, response.data))
    }
}
