//! [`MetaStore`]: the metadata store as the rest of Meridian sees it.
//!
//! Writes are [`Command`](crate::Command)s proposed through Raft; on a follower they are
//! forwarded to the leader, and the call returns once the entry is applied HERE too, so a client
//! that wrote through this node reads its write back from it. Reads come from the local state
//! machine, after [`MetaStore::read_barrier`]: free while this node holds a read lease (see
//! `lease`), one round trip to the leader otherwise.
//!
//! The store's jobs, one file each: `propose` (the proposal batcher and forwarding to the
//! leader), `reads` (read barriers, read leases and the leader-side RPCs they rest on),
//! `confirmed` (reads that answer "absent" only after a read barrier), `tasks`
//! (the heartbeat, lease renewal and the visibility gate, running for as long as the store
//! lives), `rpc` (the follower side of Raft's RPCs), `membership` (joining and leaving),
//! `status` (what a node reports of the cluster) and `queries` (the typed reads of the local
//! state machine).

mod confirmed;
mod membership;
mod propose;
mod queries;
mod reads;
mod rpc;
mod status;
mod tasks;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::clock_drift::DriftMonitor;
use crate::durable::DurableDb;
use crate::error::{ProposeError, StoreError};
use crate::follower_clocks::FollowerClocks;
use crate::lease::Leases;
use crate::log_store::LogStore;
use crate::network::{HttpNetwork, PeerClient, PeerTransport};
use crate::node_id::{NodeId, RegionNode};
use crate::signing::RequestSigner;
use crate::snapshot::SnapshotFiles;
use crate::snapshot_policy::{LOG_PERCENT_OF_SNAPSHOT, SnapshotPolicy};
use crate::state_machine::StateMachine;
use crate::tables::Tables;
use crate::types::Raft;

pub use confirmed::ReadError;
pub use status::{ClockDriftStatus, ClusterStatus, Leadership, MemberStatus};

/// Raft timing, from `cluster.toml`'s `[raft]` table.
#[derive(Debug, Clone)]
pub struct RaftTiming {
    /// Leader heartbeat interval.
    pub heartbeat: Duration,
    /// Lower bound of the election timeout.
    pub election_min: Duration,
    /// Upper bound of the election timeout.
    pub election_max: Duration,
    /// Entries since the last snapshot below which no new one is built; above it, one is built
    /// once the log has grown by half the last snapshot's size (`snapshot_policy`).
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
    /// How calls to peers travel: mutual TLS, or plaintext during an upgrade.
    pub transport: PeerTransport,
    /// Source address of calls to peers (`internal_source`); `None`: the system's choice.
    pub source_address: Option<std::net::IpAddr>,
    /// Bytes of page cache of the sled database (`[storage] cache_mib`): what bounds the
    /// store's memory whatever the number of objects (sled's own default is 1 GiB).
    pub cache_bytes: u64,
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
    proposals: tokio::sync::mpsc::UnboundedSender<propose::Proposal>,
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
    /// periodic heartbeat off (see [`tasks::run_heartbeat`]) its own quorum-ack metric only moves with
    /// writes. The term keeps a node leading again from showing a confirmation of its last term.
    last_confirmed_at: std::sync::Mutex<Option<(u64, Instant)>>,
    /// Read barriers passed under a lease (no round trip), for status and tests.
    lease_reads: AtomicU64,
    /// Read barriers that asked the leader for a read index.
    read_index_reads: AtomicU64,
    /// This node's clock rate measured against its lease grantor's: a follower whose clock
    /// drifts past the bound stops reading under its lease (see `clock_drift`).
    drift: DriftMonitor,
    /// Leader side: its clock rate measured against each follower's; a leader whose clock is
    /// off against most of them grants no lease and reads without its own (see
    /// `follower_clocks`).
    follower_clocks: FollowerClocks,
    /// The term this process started in and the index of the last entry in its log then: the
    /// lowest read index it hands out while leading that term (see `confirm_leadership`).
    restart_floor: (u64, u64),
}

fn fatal(e: impl std::fmt::Display) -> ProposeError {
    ProposeError::Fatal(e.to_string())
}

impl MetaStore {
    /// Opens (or creates) the store under `config.dir` and starts this node's Raft instance.
    pub async fn open(config: StoreConfig) -> Result<Self, StoreError> {
        std::fs::create_dir_all(&config.dir)?;
        let db = DurableDb::open(&config.dir.join("meta"), config.cache_bytes)?;
        let tables = Tables::new(db.db().open_tree("state")?);
        // Write what the cluster last agreed on, before anything is written: format 0 on a data
        // dir of release a01dacd or of a cluster that has not raised yet.
        crate::codec::set_active_format(tables.active_format()?);
        let applied_log_id = tables.applied()?;
        let (applied_tx, applied) = watch::channel(applied_log_id.map_or(0, |l| l.index));
        // openraft re-applies the entries up to the commit index it saved inside `Raft::new`, before
        // the gate runs, so those count as visible. The log store saves a commit index only up to
        // what was visible (a leader's runs ahead while a lease holder lags), so nothing shows
        // here that a holder of a lease granted before the restart may lack.
        let saved_committed = LogStore::saved_committed(&db)?;
        let leases = Arc::new(Leases::new(
            config.timing.read_lease,
            config.timing.election_max,
            applied_log_id.max(saved_committed),
        ));
        let mut log_store = LogStore::open(&db, leases.clone())?;
        // The term this process starts in (its saved vote's) and its log's end: see
        // `Inner::restart_floor`.
        let started_term = openraft::storage::RaftLogStorage::read_vote(&mut log_store)
            .await
            .map_err(|e| StoreError::Codec(format!("saved vote: {e}")))?
            .map_or(0, |vote| vote.leader_id().get_term());
        let restart_floor = (started_term, log_store.appended().load(std::sync::atomic::Ordering::Acquire));
        let appended = log_store.appended();
        let growth = log_store.growth();
        let (work_tx, work) = watch::channel(0u64);
        let snapshot_files = SnapshotFiles::new(config.dir.join("snapshots"));
        let state_machine = StateMachine {
            node: config.node_id,
            tables: tables.clone(),
            snapshots: snapshot_files.clone(),
            work: work_tx,
            applied_tx,
            incoming: None,
            leases: leases.clone(),
        };
        let signer =
            Arc::new(RequestSigner::new(&config.secret, &config.cluster_name).with_legacy(config.legacy_signatures));
        let peers = PeerClient::from_address(signer, config.transport.clone(), config.source_address)
            .map_err(StoreError::PeerClient)?
            .from_node(config.node_id);
        let timing = &config.timing;
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let raft_config = openraft::Config {
            cluster_name: config.cluster_name.clone(),
            heartbeat_interval: millis(timing.heartbeat),
            election_timeout_min: millis(timing.election_min),
            election_timeout_max: millis(timing.election_max),
            // Ours instead (`run_snapshot_policy`): proportional to the state, not every N entries.
            snapshot_policy: openraft::SnapshotPolicy::Never,
            max_in_snapshot_log_to_keep: 1000,
            install_snapshot_timeout: 10_000,
            // Sent beside the replication streams instead (see `run_heartbeat`).
            enable_heartbeat: false,
            ..Default::default()
        }
        .validate()
        .map_err(|e| StoreError::Codec(format!("raft config: {e}")))?;
        let heartbeat_rejected = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let raft = Raft::new(
            config.node_id,
            Arc::new(raft_config),
            HttpNetwork::new(peers.clone(), leases.clone(), heartbeat_rejected.clone()),
            log_store,
            state_machine,
        )
        .await
        .map_err(|e| StoreError::Codec(format!("raft start: {e}")))?;
        let (proposals, queue) = tokio::sync::mpsc::unbounded_channel();
        let drift = DriftMonitor::new(leases.duration(), leases.margin());
        let follower_clocks = FollowerClocks::new(leases.duration(), leases.margin());
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
                drift,
                follower_clocks,
                restart_floor,
            }),
        };
        tokio::spawn(propose::run_batcher(Arc::downgrade(&store.inner), queue));
        tokio::spawn(tasks::run_visibility_gate(
            Arc::downgrade(&store.inner),
            store.inner.raft.metrics(),
            store.inner.leases.wanted(),
        ));
        tokio::spawn(tasks::run_heartbeat(Arc::downgrade(&store.inner), timing.heartbeat, heartbeat_rejected));
        tokio::spawn(tasks::run_format_raise(Arc::downgrade(&store.inner)));
        let policy = SnapshotPolicy { min_entries: timing.snapshot_every, log_percent: LOG_PERCENT_OF_SNAPSHOT };
        tokio::spawn(tasks::run_snapshot_policy(Arc::downgrade(&store.inner), policy, growth, snapshot_files));
        tokio::spawn(crate::reserve::DiskReserve::watch(Arc::downgrade(store.inner.db.reserve())));
        if store.inner.leases.enabled() {
            tokio::spawn(tasks::run_lease_keeper(Arc::downgrade(&store.inner)));
        }
        Ok(store)
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.inner.node_id
    }

    /// Whether the data dir is nearly full: the space reserve is released for the log, and new
    /// writes (object bytes, uploads) must be refused until space returns (see `reserve`).
    pub fn disk_low(&self) -> bool {
        self.inner.db.reserve().is_low()
    }

    /// Why this node's metadata store cannot be trusted any more, if it cannot: a flush met a
    /// storage error (sled then fails every later write until reopened), or Raft stopped on a
    /// storage error (openraft does not restart it). From then on the node must serve nothing
    /// from the store (its state may be stale: it no longer takes the leader's entries) and
    /// reopen it; reads, lease renewals and the read barrier refuse meanwhile. `None` while the
    /// store works, and after a plain shutdown.
    pub fn storage_failure(&self) -> Option<String> {
        if let Some(error) = self.inner.db.failure() {
            return Some(format!("the metadata store cannot write to its data dir: {error}"));
        }
        match &self.inner.raft.metrics().borrow().running_state {
            Ok(()) | Err(openraft::error::Fatal::Stopped) => None,
            Err(fatal) => Some(format!("raft stopped: {fatal}")),
        }
    }

    /// The free space of the data dir now, and how much it needs before the store may be
    /// reopened after a storage failure (room for the space reserve and as much again, the mark
    /// at which a node low on space takes writes again; see `reserve`).
    pub fn space_to_reopen(&self) -> std::io::Result<(u64, u64)> {
        let available = self.inner.db.reserve().available()?;
        Ok((available, crate::reserve::RESTORE_BYTES))
    }

    /// The error a request gets while [`MetaStore::storage_failure`] says the store failed.
    pub(crate) fn refuse_if_failed(&self) -> Result<(), ProposeError> {
        match self.storage_failure() {
            Some(why) => Err(ProposeError::Fatal(format!("{why}; this node reopens its store once space returns"))),
            None => Ok(()),
        }
    }

    /// Signed calls to other nodes.
    pub fn peers(&self) -> &PeerClient {
        &self.inner.peers
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
