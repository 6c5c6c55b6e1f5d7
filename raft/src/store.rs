//! [`MetaStore`]: the metadata store as the rest of Meridian sees it.
//!
//! Writes are [`Command`]s proposed through Raft; on a follower they are forwarded to the
//! leader, and the call returns once the entry is applied HERE too, so a client that wrote
//! through this node reads its write back from it. Reads come from the local state machine,
//! after [`MetaStore::read_barrier`]: free while this node holds a read lease (see `lease`),
//! one round trip to the leader otherwise.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::watch;

use crate::command::{Command, CommandOutcome};
use crate::durable::DurableDb;
use crate::error::{LeaderError, ProposeError, StoreError};
use crate::event::{Cursor, Event};
use crate::history::{EventRetention, EventsError, TrimTarget};
use crate::lease::{LeaseGrant, LeaseRequest, Leases};
use crate::log_store::LogStore;
use crate::model::{AccessKey, AccessKeyInfo, Bucket, KeyOwner, MultipartUpload, ObjectMeta, User, WorkItem};
use crate::network::{HttpNetwork, LEASE_PATH, LeaderCallError, PROPOSE_PATH, PeerClient, READ_INDEX_PATH};
use crate::node_id::{NodeId, RegionNode};
use crate::signing::RequestSigner;
use crate::snapshot::SnapshotFiles;
use crate::state_machine::StateMachine;
use crate::tables::{ObjectCursor, Tables};
use crate::types::Raft;

/// Raft timing, from `cluster.toml`'s `[raft]` table.
#[derive(Debug, Clone)]
pub struct RaftTiming {
    /// Leader heartbeat interval.
    pub heartbeat: Duration,
    /// Lower bound of the election timeout.
    pub election_min: Duration,
    /// Upper bound of the election timeout.
    pub election_max: Duration,
    /// Entries between snapshots.
    pub snapshot_every: u64,
    /// How long a proposal may wait for its commit before the client gets an error.
    pub commit_timeout: Duration,
    /// How long a read lease lasts (zero: no leases; every read asks the leader). A new leader
    /// keeps new entries invisible for the longer of this and `election_max` after its election.
    pub read_lease: Duration,
}

/// Everything needed to open a node's store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// This node's id.
    pub node_id: NodeId,
    /// This node's addresses, as recorded in the membership.
    pub node: RegionNode,
    /// Directory for the sled database and snapshots.
    pub dir: PathBuf,
    /// Cluster name; Raft refuses peers of another cluster.
    pub cluster_name: String,
    /// The cluster secret that signs internal requests.
    pub secret: String,
    /// Also send and accept the previous release's request signature (rolling upgrade).
    pub legacy_signatures: bool,
    /// Heartbeat, election, lease and commit timeouts (`[raft]` of the config).
    pub timing: RaftTiming,
}

/// The replicated metadata store of one node. Cheap to clone.
#[derive(Clone)]
pub struct MetaStore {
    inner: Arc<Inner>,
}

struct Inner {
    node_id: NodeId,
    raft: Raft,
    tables: Tables,
    db: DurableDb,
    applied: watch::Receiver<u64>,
    work: watch::Receiver<u64>,
    peers: PeerClient,
    commit_timeout: Duration,
    /// Proposals waiting for the batcher (see [`MetaStore::propose`]).
    proposals: tokio::sync::mpsc::UnboundedSender<Proposal>,
    /// When this node last heard from a leader (AppendEntries), Unix ms; 0 = never.
    last_leader_contact: std::sync::atomic::AtomicI64,
    /// Read leases held and granted, and the visibility gate (see `lease`); shared with the
    /// state machine (which applies only visible entries) and the network (which announces
    /// only visible commits).
    leases: Arc<Leases>,
    /// Index of the last entry in this node's log (kept by the log store).
    appended: Arc<AtomicU64>,
    /// The last leadership confirmation (when it started, the read index it gave); see
    /// [`MetaStore::confirm_leadership`].
    last_confirmation: tokio::sync::Mutex<Option<(Instant, u64)>>,
    /// The term and start of the last leadership confirmation, for status: with openraft's
    /// periodic heartbeat off (see [`run_heartbeat`]) its own quorum-ack metric only moves with
    /// writes. The term keeps a node leading again from showing a confirmation of its last term.
    last_confirmed_at: std::sync::Mutex<Option<(u64, Instant)>>,
    /// Read barriers passed under a lease (no round trip), for status and tests.
    lease_reads: AtomicU64,
    /// Read barriers that asked the leader for a read index.
    read_index_reads: AtomicU64,
}

/// A command waiting to be proposed, and where its outcome goes.
struct Proposal {
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
async fn run_batcher(store: std::sync::Weak<Inner>, mut queue: tokio::sync::mpsc::UnboundedReceiver<Proposal>) {
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

/// Renews this node's read lease four times per lease period, for as long as the store lives.
async fn run_lease_keeper(store: std::sync::Weak<Inner>) {
    loop {
        let Some(inner) = store.upgrade() else { return };
        let store = MetaStore { inner };
        let every = store.inner.leases.renew_every();
        store.renew_lease().await;
        drop(store);
        tokio::time::sleep(every).await;
    }
}

/// The leader's heartbeat, sent beside the replication streams rather than on them, every
/// `every`, for as long as the store lives: an AppendEntries without entries to every voter at
/// once, and openraft's own heartbeat down every stream every [`LEARNER_HEARTBEAT_EVERY`]th tick
/// while the membership has learners. Why openraft's periodic heartbeat is off and this runs
/// instead: "Heartbeats" in `docs/architecture.md`.
async fn run_heartbeat(store: std::sync::Weak<Inner>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for tick in 0_u64.. {
        ticks.tick().await;
        let Some(inner) = store.upgrade() else { return };
        let store = MetaStore { inner };
        let has_learners = {
            let m = store.inner.raft.metrics();
            let m = m.borrow();
            if m.current_leader != Some(store.inner.node_id) {
                continue;
            }
            m.membership_config.membership().learner_ids().next().is_some()
        };
        if has_learners
            && tick.is_multiple_of(LEARNER_HEARTBEAT_EVERY)
            && let Err(e) = store.inner.raft.trigger().heartbeat().await
        {
            tracing::debug!(error = %e, "stream heartbeat failed");
        }
        // A round ends with a quorum's answers or after `every` (openraft's timeout for these
        // requests is the heartbeat interval), so ticks are at most that late.
        if let Err(e) = store.confirm_leadership(Instant::now()).await {
            tracing::debug!(error = %e, "heartbeat round failed");
        }
    }
}

/// How many heartbeat ticks apart the stream heartbeats for learners go (see [`run_heartbeat`]):
/// rarely, because each one holds its stream for a round trip, voters' streams included.
const LEARNER_HEARTBEAT_EVERY: u64 = 4;

/// Leader side of the visibility gate (see `lease`): recomputes what may be visible whenever
/// replication progresses (Raft metrics), the state machine waits for an entry, or a lagging
/// holder's grant or the new-leader wait runs out; for as long as the store lives.
async fn run_visibility_gate(
    store: std::sync::Weak<Inner>,
    mut metrics: watch::Receiver<openraft::RaftMetrics<NodeId, RegionNode>>,
    mut wanted: watch::Receiver<Option<openraft::LogId<NodeId>>>,
) {
    loop {
        let Some(inner) = store.upgrade() else { return };
        let wake_at = MetaStore { inner }.advance_visibility().await;
        let timer = async {
            match wake_at {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = metrics.changed() => if changed.is_err() { return },
            changed = wanted.changed() => if changed.is_err() { return },
            () = timer => {}
        }
    }
}

fn fatal(e: impl std::fmt::Display) -> ProposeError {
    ProposeError::Fatal(e.to_string())
}

impl MetaStore {
    /// Opens (or creates) the store under `config.dir` and starts this node's Raft instance.
    pub async fn open(config: StoreConfig) -> Result<Self, StoreError> {
        std::fs::create_dir_all(&config.dir)?;
        let db = DurableDb::open(&config.dir.join("meta"))?;
        let tables = Tables { tree: db.db().open_tree("state")? };
        let mut log_store = LogStore::open(&db)?;
        let appended = log_store.appended();
        let (work_tx, work) = watch::channel(0u64);
        let applied_log_id = tables.applied()?;
        let (applied_tx, applied) = watch::channel(applied_log_id.map_or(0, |l| l.index));
        // openraft re-applies the entries up to the commit index it saved inside `Raft::new`, before
        // the gate runs, so those count as visible. On a follower that index came from a leader
        // (capped at what was visible); on a leader it may be ahead of what was visible, which is
        // safe for linearizable reads (a new leader's read index waits out old leases) but may
        // show those entries to local reads and event readers here up to one lease early.
        let saved_committed = openraft::storage::RaftLogStorage::read_committed(&mut log_store)
            .await
            .map_err(|e| StoreError::Codec(format!("saved commit index: {e}")))?;
        let leases = Arc::new(Leases::new(
            config.timing.read_lease,
            config.timing.election_max,
            applied_log_id.max(saved_committed),
        ));
        let state_machine = StateMachine {
            node: config.node_id,
            tables: tables.clone(),
            snapshots: SnapshotFiles { dir: config.dir.join("snapshots") },
            work: work_tx,
            applied_tx,
            incoming: None,
            leases: leases.clone(),
        };
        let signer =
            Arc::new(RequestSigner::new(&config.secret, &config.cluster_name).with_legacy(config.legacy_signatures));
        let peers = PeerClient::new(signer);
        let timing = &config.timing;
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let raft_config = openraft::Config {
            cluster_name: config.cluster_name.clone(),
            heartbeat_interval: millis(timing.heartbeat),
            election_timeout_min: millis(timing.election_min),
            election_timeout_max: millis(timing.election_max),
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(timing.snapshot_every),
            max_in_snapshot_log_to_keep: 1000,
            install_snapshot_timeout: 10_000,
            // Sent beside the replication streams instead (see `run_heartbeat`).
            enable_heartbeat: false,
            ..Default::default()
        }
        .validate()
        .map_err(|e| StoreError::Codec(format!("raft config: {e}")))?;
        let raft = Raft::new(
            config.node_id,
            Arc::new(raft_config),
            HttpNetwork::new(peers.clone(), leases.clone()),
            log_store,
            state_machine,
        )
        .await
        .map_err(|e| StoreError::Codec(format!("raft start: {e}")))?;
        let (proposals, queue) = tokio::sync::mpsc::unbounded_channel();
        let store = Self {
            inner: Arc::new(Inner {
                node_id: config.node_id,
                raft,
                tables,
                db,
                applied,
                work,
                peers,
                commit_timeout: timing.commit_timeout,
                last_leader_contact: std::sync::atomic::AtomicI64::new(0),
                proposals,
                leases,
                appended,
                last_confirmation: tokio::sync::Mutex::new(None),
                last_confirmed_at: std::sync::Mutex::new(None),
                lease_reads: AtomicU64::new(0),
                read_index_reads: AtomicU64::new(0),
            }),
        };
        tokio::spawn(run_batcher(Arc::downgrade(&store.inner), queue));
        tokio::spawn(run_visibility_gate(
            Arc::downgrade(&store.inner),
            store.inner.raft.metrics(),
            store.inner.leases.wanted(),
        ));
        tokio::spawn(run_heartbeat(Arc::downgrade(&store.inner), timing.heartbeat));
        if store.inner.leases.enabled() {
            tokio::spawn(run_lease_keeper(Arc::downgrade(&store.inner)));
        }
        Ok(store)
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.inner.node_id
    }

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
        self.inner.raft.install_snapshot(request).await
    }

    /// Who leads, in which term, and whether this node is a member, read at one instant (health
    /// checks, the load a node reports to its peers).
    pub fn leadership(&self) -> Leadership {
        let metrics = self.inner.raft.metrics();
        let metrics = metrics.borrow();
        Leadership {
            leader: metrics.current_leader,
            term: metrics.current_term,
            member: metrics.membership_config.membership().get_node(&self.inner.node_id).is_some(),
        }
    }

    /// The ids of every member, voters and learners, in id order.
    pub fn member_ids(&self) -> Vec<NodeId> {
        self.inner.raft.metrics().borrow().membership_config.membership().nodes().map(|(id, _)| *id).collect()
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

    /// Proposes a command and returns its outcome once it is committed and applied on this
    /// node. Follows leader changes; gives up after the commit timeout. Concurrent proposals
    /// share log entries (see `run_batcher`).
    pub async fn propose(&self, command: Command) -> Result<CommandOutcome, ProposeError> {
        let (reply, outcome) = tokio::sync::oneshot::channel();
        self.inner.proposals.send(Proposal { command, reply }).map_err(|_| fatal("proposal batcher stopped"))?;
        outcome.await.map_err(|_| fatal("proposal batcher stopped"))?
    }

    async fn propose_until_done(&self, command: Command) -> Result<CommandOutcome, ProposeError> {
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
                match self.forward(leader, &node, &command).await {
                    Ok((index, outcome)) => {
                        // Committed: proposing it again would apply it twice, so only waiting
                        // here can fail (the store is shutting down).
                        self.wait_applied(index).await?;
                        return Ok(outcome);
                    }
                    // The leader moved or is down: wait for the next one and try again.
                    Err(e) => tracing::debug!(leader, error = %e, "forwarding failed; retrying"),
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

    /// Leader side: moves the visible log id as far as every read-lease holder allows (see
    /// `lease`), and tells the followers at once when it moved past a commit index they were
    /// sent. Returns when to look again if nothing else changes.
    async fn advance_visibility(&self) -> Option<Instant> {
        // Committed (Raft hands out only committed ids to wait for), so no need to ask Raft.
        let committed = *self.inner.leases.wanted().borrow();
        if committed <= self.inner.leases.visible() {
            // Nothing waits to become visible (most metrics changes are heartbeat answers).
            return None;
        }
        let (term, alone, matched) = {
            let m = self.inner.raft.metrics();
            let m = m.borrow();
            if m.current_leader != Some(self.inner.node_id) || m.state != openraft::ServerState::Leader {
                return None;
            }
            let alone = m.membership_config.membership().nodes().all(|(id, _)| *id == self.inner.node_id);
            let matched: Vec<(NodeId, Option<openraft::LogId<NodeId>>)> =
                m.replication.as_ref().map(|r| r.iter().map(|(id, l)| (*id, *l)).collect()).unwrap_or_default();
            (m.current_term, alone, matched)
        };
        if committed.is_some_and(|c| c.leader_id.term > term) {
            // Leading a newer term than the metrics said: its holders and wait are not known
            // yet; the metrics change that follows brings this back.
            return None;
        }
        let matched = |id: NodeId| matched.iter().find(|(m, _)| *m == id).and_then(|(_, l)| *l);
        let advance = self.inner.leases.advance(term, committed, matched, alone, Instant::now());
        if advance.advanced && self.inner.leases.take_capped() {
            tracing::trace!(visible = ?self.inner.leases.visible(), "visible index moved; pushing it to followers");
            // Voters hear of it at once beside their replication streams (a stream may have a
            // capped AppendEntries in flight for a round trip); learners through their streams.
            let voters = self.clone();
            tokio::spawn(async move {
                if let Err(e) = voters.confirm_leadership(Instant::now()).await {
                    tracing::debug!(error = %e, "announcing a visibility change failed");
                }
            });
            if let Err(e) = self.inner.raft.trigger().heartbeat().await {
                tracing::debug!(error = %e, "heartbeat after a visibility change failed");
            }
        }
        advance.wake_at
    }

    /// Leader side of a lease request: records the grant, unless the holder may not hold one
    /// (see `lease`), then confirms leadership with a quorum and returns the term and the read
    /// index the holder must apply first.
    pub async fn grant_lease(&self, request: LeaseRequest) -> Result<LeaseGrant, LeaderError> {
        let holder = request.holder;
        let (term, matched) = {
            let m = self.inner.raft.metrics().borrow().clone();
            if m.current_leader != Some(self.inner.node_id) {
                return Err(LeaderError::NotLeader { leader: m.current_leader });
            }
            if m.membership_config.membership().get_node(&holder).is_none() {
                return Err(LeaderError::Refused(format!("node {holder} is not a member")));
            }
            (m.current_term, m.replication.as_ref().and_then(|r| r.get(&holder).copied().flatten()))
        };
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

    /// This node's own lease as the leader of `term`: what remains of it, and the read index of
    /// the quorum confirmation it rests on.
    fn own_leader_lease(&self, term: u64) -> Option<(Duration, u64)> {
        let me = Some(self.inner.node_id);
        Some((self.inner.leases.remaining(me, term)?, self.inner.leases.read_index(me, term)?))
    }

    /// The index of the last entry this node may make visible.
    fn visible_index(&self) -> u64 {
        self.inner.leases.visible().map_or(0, |l| l.index)
    }

    /// Renews this node's read lease: from its own quorum confirmation when it leads, from the
    /// leader otherwise. Failures just let the lease run out; reads then ask the leader.
    async fn renew_lease(&self) {
        let (leader, term) = {
            let m = self.inner.raft.metrics().borrow().clone();
            (m.current_leader, m.current_term)
        };
        let Some(leader) = leader else { return };
        let asked_at = Instant::now();
        if leader == self.inner.node_id {
            // Starts the new-leader wait as early as possible, not at the first write.
            self.inner.leases.writes_allowed_from(term);
            if let Ok(index) = self.confirm_leadership(asked_at).await {
                self.inner.leases.hold(leader, term, asked_at, index, self.inner.leases.duration());
            }
            return;
        }
        let Some(node) = self.member(leader) else { return };
        let wait = self.inner.leases.renew_every() * 2;
        let request = LeaseRequest {
            holder: self.inner.node_id,
            duration_ms: u64::try_from(self.inner.leases.duration().as_millis()).unwrap_or(u64::MAX),
        };
        let reply: Result<LeaseGrant, LeaderCallError> =
            self.inner.peers.call_leader(leader, &node.internal, LEASE_PATH, &request, wait).await;
        match reply {
            Ok(grant) if grant.term == term => {
                let valid_for = Duration::from_millis(grant.valid_for_ms);
                self.inner.leases.hold(leader, term, asked_at, grant.read_index, valid_for);
            }
            Ok(_) => {}
            Err(LeaderCallError::Leader(reason)) => tracing::debug!(leader, %reason, "read lease refused"),
            Err(LeaderCallError::Call(e)) => tracing::debug!(leader, error = %e, "read lease request failed"),
        }
    }

    /// If this node holds a read lease right now: the index to apply before a local read, and
    /// how long the lease still holds (the longest it makes sense to wait for that).
    fn lease_read_target(&self) -> Option<(u64, Duration)> {
        let (leader, term) = {
            let m = self.inner.raft.metrics();
            let m = m.borrow();
            (m.current_leader, m.current_term)
        };
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
    async fn confirm_leadership(&self, since: Instant) -> Result<u64, LeaderError> {
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
        let index = read_log_id.map_or(0, |l| l.index);
        *last = Some((started, index));
        *self.inner.last_confirmed_at.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((term, started));
        Ok(index)
    }

    /// Waits until this node has applied everything the leader had committed when called.
    /// Call it before answering "does not exist", so a write made through another node just
    /// before is never missed.
    pub async fn read_barrier(&self) -> Result<(), ProposeError> {
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
                match self.inner.raft.ensure_linearizable().await {
                    Ok(log_id) => return self.wait_applied(log_id.map_or(0, |l| l.index)).await,
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

    /// A bucket, if it exists.
    pub fn bucket(&self, name: &str) -> Result<Option<Bucket>, StoreError> {
        self.inner.tables.bucket(name)
    }

    /// Every bucket, by name.
    pub fn buckets(&self) -> Result<Vec<Bucket>, StoreError> {
        self.inner.tables.buckets()
    }

    /// The current version of an object, if any.
    pub fn object(&self, bucket: &str, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        self.inner.tables.object(bucket, key)
    }

    /// An ordered walk over a bucket's keys starting with `prefix`, after `after` if given.
    pub fn objects(&self, bucket: &str, prefix: &str, after: Option<&str>) -> ObjectCursor {
        self.inner.tables.objects(bucket, prefix, after)
    }

    /// A multipart upload in progress.
    pub fn upload(&self, id: &str) -> Result<Option<MultipartUpload>, StoreError> {
        self.inner.tables.upload(id)
    }

    /// A bucket's multipart uploads in progress.
    pub fn uploads(&self, bucket: &str) -> Result<Vec<MultipartUpload>, StoreError> {
        self.inner.tables.uploads(bucket)
    }

    /// Every multipart upload in progress, in any bucket.
    pub fn all_uploads(&self) -> Result<Vec<MultipartUpload>, StoreError> {
        let mut all = Vec::new();
        for bucket in self.buckets()? {
            all.extend(self.uploads(&bucket.name)?);
        }
        Ok(all)
    }

    /// An access key, disabled or not: whoever checks a signature must use
    /// [`MetaStore::usable_access_key`] instead.
    pub fn access_key(&self, id: &str) -> Result<Option<AccessKey>, StoreError> {
        self.inner.tables.access_key(id)
    }

    /// An access key that may sign requests: it exists and is not disabled. Reads local
    /// state; callers that must not miss a disable made through another node call
    /// [`MetaStore::read_barrier`] first.
    pub fn usable_access_key(&self, id: &str) -> Result<Option<AccessKey>, StoreError> {
        let Some(key) = self.inner.tables.access_key(id)? else { return Ok(None) };
        let disabled = self.inner.tables.key_record(id)?.is_some_and(|r| r.disabled.is_some());
        Ok((!disabled).then_some(key))
    }

    /// Who an access key belongs to; `None` if there is no such key. A key without a recorded
    /// owner (a legacy key, or one installed from the config) is the service named after the
    /// key's name.
    pub fn access_key_owner(&self, id: &str) -> Result<Option<KeyOwner>, StoreError> {
        let Some(key) = self.inner.tables.access_key(id)? else { return Ok(None) };
        let record = self.inner.tables.key_record(id)?;
        Ok(Some(AccessKeyInfo::new(&key, record.as_ref()).owner))
    }

    /// Every access key, without its secret, in id order.
    pub fn access_keys(&self) -> Result<Vec<AccessKeyInfo>, StoreError> {
        self.inner.tables.access_keys()
    }

    /// A user known to the admin panel (deleted ones included).
    pub fn user(&self, id: &str) -> Result<Option<User>, StoreError> {
        self.inner.tables.user(id)
    }

    /// Every user known to the admin panel, deleted ones included, in id order.
    pub fn users(&self) -> Result<Vec<User>, StoreError> {
        self.inner.tables.users()
    }

    /// Whether some object version refers to this blob.
    pub fn blob_is_referenced(&self, blob: &str) -> Result<bool, StoreError> {
        self.inner.tables.blob_is_referenced(blob)
    }

    /// The work this node owes, oldest first, with the key to complete each.
    pub fn work_items(&self) -> Result<Vec<(Vec<u8>, WorkItem)>, StoreError> {
        Ok(self.inner.tables.work_items()?.into_iter().map(|(k, w)| (k.to_vec(), w)).collect())
    }

    /// Marks a work item done.
    pub fn complete_work(&self, key: &[u8]) -> Result<(), StoreError> {
        self.inner.tables.tree.remove(key)?;
        Ok(())
    }

    /// Changes whenever applying the log records new work for this node; each worker keeps its
    /// own receiver, so none misses a wake-up another consumed.
    pub fn work_signal(&self) -> watch::Receiver<u64> {
        self.inner.work.clone()
    }

    /// The membership record of a node, if it is a member.
    pub fn member(&self, id: NodeId) -> Option<RegionNode> {
        self.inner.raft.metrics().borrow().membership_config.membership().get_node(&id).cloned()
    }

    /// Signed calls to other nodes.
    pub fn peers(&self) -> &PeerClient {
        &self.inner.peers
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

    /// Records that a leader's AppendEntries (a heartbeat or entries) just arrived.
    fn note_leader_contact(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        self.inner.last_leader_contact.store(now, std::sync::atomic::Ordering::Relaxed);
    }

    /// This node's view of the cluster, for status pages and `meridian cluster status`.
    pub fn status(&self) -> ClusterStatus {
        let metrics = self.inner.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let voters: std::collections::BTreeSet<NodeId> = membership.voter_ids().collect();
        let members = membership
            .nodes()
            .map(|(id, node)| MemberStatus {
                id: *id,
                region: node.region.clone(),
                voter: voters.contains(id),
                matched_index: metrics.replication.as_ref().and_then(|r| r.get(id).copied().flatten()).map(|l| l.index),
            })
            .collect();
        let contact = self.inner.last_leader_contact.load(std::sync::atomic::Ordering::Relaxed);
        ClusterStatus {
            node_id: self.inner.node_id,
            state: format!("{:?}", metrics.state),
            leader: metrics.current_leader,
            term: metrics.current_term,
            last_log_index: metrics.last_log_index.unwrap_or(0),
            applied_index: self.applied_index(),
            snapshot_index: metrics.snapshot.map(|l| l.index),
            purged_index: metrics.purged.map(|l| l.index),
            last_leader_contact_ms: (contact > 0).then_some(contact),
            millis_since_quorum_ack: (metrics.current_leader == Some(self.inner.node_id))
                .then(|| self.millis_since_quorum_ack(metrics.current_term, metrics.millis_since_quorum_ack))
                .flatten(),
            read_lease_ms: self
                .inner
                .leases
                .remaining(metrics.current_leader, metrics.current_term)
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            lease_reads: self.inner.lease_reads.load(Ordering::Relaxed),
            read_index_reads: self.inner.read_index_reads.load(Ordering::Relaxed),
            members,
        }
    }

    /// Milliseconds since a quorum last acknowledged this node as leader of `term`: through
    /// replication (`from_raft`, openraft's figure) or a heartbeat round, whichever is later.
    fn millis_since_quorum_ack(&self, term: u64, from_raft: Option<u64>) -> Option<u64> {
        let confirmed = *self.inner.last_confirmed_at.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let by_heartbeat = confirmed
            .filter(|(of, _)| *of == term)
            .map(|(_, at)| u64::try_from(at.elapsed().as_millis()).unwrap_or(u64::MAX));
        match (from_raft, by_heartbeat) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The index applied locally.
    pub fn applied_index(&self) -> u64 {
        *self.inner.applied.borrow()
    }

    /// Changes whenever the local state machine applies entries (or installs a snapshot); the
    /// value is the applied index. Event readers wait on it for new events.
    pub fn applied_signal(&self) -> watch::Receiver<u64> {
        self.inner.applied.clone()
    }

    /// Up to `limit` retained events behind `after` (from the oldest retained one when `None`),
    /// in order, all from entries this node has applied. [`EventsError::Gone`] when events right
    /// behind `after` were trimmed from the history.
    pub fn events_after(&self, after: Option<Cursor>, limit: usize) -> Result<Vec<Event>, EventsError> {
        crate::history::read(&self.inner.tables, after, limit, self.applied_index())
    }

    /// How far `retention` lets the event history go now (a bounded number of events at a
    /// time), if at all: what the leader proposes with [`Command::TrimEvents`].
    pub fn event_trim_target(&self, retention: EventRetention) -> Result<Option<TrimTarget>, StoreError> {
        crate::history::trim_target(&self.inner.tables, retention)
    }

    /// The user who owns an object (wrote its first version while signed in), if any.
    pub fn object_owner(&self, bucket: &str, key: &str) -> Result<Option<String>, StoreError> {
        self.inner.tables.owner(bucket, key)
    }

    /// The log index at which the current ownership of `bucket` (`key: None`) or `bucket/key`
    /// began: the history shows an owner what happened since, not a previous owner's past.
    /// `None` without an owner, or for ownership recorded before this index was kept.
    pub fn owned_since(&self, bucket: &str, key: Option<&str>) -> Result<Option<u64>, StoreError> {
        self.inner.tables.owned_since(bucket, key)
    }

    /// The user who owns a bucket (created it while signed in), if any.
    pub fn bucket_owner(&self, bucket: &str) -> Result<Option<String>, StoreError> {
        self.inner.tables.bucket_owner(bucket)
    }

    /// A share by id.
    pub fn share(&self, id: &str) -> Result<Option<crate::model::Share>, StoreError> {
        self.inner.tables.share(id)
    }

    /// The share of a public link, by the hex SHA-256 of its token.
    pub fn share_by_token(&self, token_sha256: &str) -> Result<Option<crate::model::Share>, StoreError> {
        self.inner.tables.share_by_token(token_sha256)
    }

    /// A page of every share, in id order (`after`: the previous page's `next`).
    pub fn shares_page(&self, after: Option<&str>, limit: usize) -> Result<crate::SharePage, StoreError> {
        self.inner.tables.shares_page(after, limit)
    }

    /// A page of the shares `user` created, in id order.
    pub fn shares_created_by(
        &self,
        user: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<crate::SharePage, StoreError> {
        self.inner.tables.shares_created_by(user, after, limit)
    }

    /// A page of the named-user shares naming `user`, in file order.
    pub fn shares_with_user(
        &self,
        user: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<crate::SharePage, StoreError> {
        self.inner.tables.shares_with_user(user, after, limit)
    }

    /// A page of the shares of the file `bucket/key` as it is now, in id order.
    pub fn shares_of_object(
        &self,
        bucket: &str,
        key: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<crate::SharePage, StoreError> {
        self.inner.tables.shares_of_object_page(bucket, key, after, limit)
    }

    /// The named-user shares of `bucket/key` naming `user` (an index read, not a scan).
    pub fn user_shares_of(&self, user: &str, bucket: &str, key: &str) -> Result<Vec<crate::model::Share>, StoreError> {
        self.inner.tables.user_shares_of(user, bucket, key)
    }

    /// The last event delivered to a webhook subscription, as recorded through Raft.
    pub fn webhook_delivered(&self, subscription: &str) -> Result<Option<Cursor>, StoreError> {
        self.inner.tables.delivered(subscription)
    }

    /// Whether this node is the Raft leader right now, as far as it knows.
    pub fn is_leader(&self) -> bool {
        self.inner.raft.metrics().borrow().current_leader == Some(self.inner.node_id)
    }

    /// Stops Raft and flushes the database.
    pub async fn shutdown(&self) -> Result<(), StoreError> {
        if let Err(e) = self.inner.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
        self.inner.db.flush().await?;
        Ok(())
    }
}

/// What a node knows of leadership at one instant ([`MetaStore::leadership`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leadership {
    /// The leader this node knows of.
    pub leader: Option<NodeId>,
    /// The current term.
    pub term: u64,
    /// Whether the membership this node applied includes it.
    pub member: bool,
}

impl Leadership {
    /// Whether the node may serve: it knows a leader and is a member.
    pub fn ready(&self) -> bool {
        self.leader.is_some() && self.member
    }
}

/// One node's view of the cluster.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ClusterStatus {
    /// This node.
    pub node_id: NodeId,
    /// Leader, Follower, Candidate or Learner.
    pub state: String,
    /// The leader this node knows of.
    pub leader: Option<NodeId>,
    /// Current term.
    pub term: u64,
    /// Last index in this node's log.
    pub last_log_index: u64,
    /// Last index applied to this node's state machine.
    pub applied_index: u64,
    /// Last index covered by this node's snapshot.
    pub snapshot_index: Option<u64>,
    /// Last index purged from this node's log.
    pub purged_index: Option<u64>,
    /// When this node last heard from a leader, Unix ms (followers).
    pub last_leader_contact_ms: Option<i64>,
    /// Milliseconds since a quorum last acknowledged this node as leader (leaders).
    pub millis_since_quorum_ack: Option<u64>,
    /// How much longer this node's read lease holds, ms; `None` without a valid lease.
    #[serde(default)]
    pub read_lease_ms: Option<u64>,
    /// Read barriers this node passed under its lease, without a round trip.
    #[serde(default)]
    pub lease_reads: u64,
    /// Read barriers for which this node asked the leader (no valid lease).
    #[serde(default)]
    pub read_index_reads: u64,
    /// The members.
    pub members: Vec<MemberStatus>,
}

/// One member as seen by a node (replication progress only when that node leads).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct MemberStatus {
    /// Node id.
    pub id: NodeId,
    /// Region name.
    pub region: String,
    /// Voter or learner.
    pub voter: bool,
    /// Highest log index known to be replicated to it (leader's view).
    pub matched_index: Option<u64>,
}
