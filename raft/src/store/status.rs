//! What this node knows of the cluster and of leadership, for status pages, health checks and
//! `meridian cluster status`.

use std::sync::atomic::Ordering;

use super::MetaStore;
use crate::clock_drift::DriftVerdict;
use crate::node_id::NodeId;

impl MetaStore {
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

    /// This node's view of the cluster, for status pages and `meridian cluster status`.
    pub fn status(&self) -> ClusterStatus {
        let metrics = self.inner.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let voters: std::collections::BTreeSet<NodeId> = membership.voter_ids().collect();
        let versions = self.inner.peers.versions();
        let speaking = crate::protocol::speaking();
        // A node in previous-release mode answers what release a01dacd answered: none of these.
        let own = (!speaking.previous_release).then(|| crate::protocol::PeerVersion {
            protocol: speaking.protocol,
            reads_format: speaking.reads_format,
            release: Some(crate::protocol::release().to_owned()),
        });
        let members = membership
            .nodes()
            .map(|(id, node)| {
                let version = if *id == self.inner.node_id { own.clone() } else { versions.recent(*id, VERSION_FRESH) };
                MemberStatus {
                    id: *id,
                    region: node.region.clone(),
                    voter: voters.contains(id),
                    matched_index: metrics
                        .replication
                        .as_ref()
                        .and_then(|r| r.get(id).copied().flatten())
                        .map(|l| l.index),
                    release: version.as_ref().and_then(|v| v.release.clone()),
                    protocol: version.as_ref().map(|v| v.protocol),
                    reads_format: version.as_ref().map(|v| v.reads_format),
                }
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
                .filter(|_| match metrics.current_leader {
                    // A follower's lease counts only while its clock is trusted (`clock_drift`).
                    Some(leader) if leader != self.inner.node_id => {
                        self.inner.drift.lease_usable(leader, metrics.current_term)
                    }
                    // A leader's own lease counts only while its clock agrees with most
                    // followers' (`follower_clocks`).
                    Some(_) => !self.inner.follower_clocks.judged_off(),
                    None => true,
                })
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            leader_clock: (metrics.current_leader == Some(self.inner.node_id) && self.inner.leases.enabled())
                .then(|| self.inner.follower_clocks.status(&self.other_members(&metrics))),
            clock_drift: (metrics.current_leader != Some(self.inner.node_id) && self.inner.leases.enabled())
                .then(|| self.inner.drift.report())
                .map(|r| ClockDriftStatus {
                    verdict: r.verdict,
                    estimate_ppm: r.estimate_ppm,
                    bound_ppm: r.bound_ppm,
                    episodes: r.episodes,
                }),
            lease_reads: self.inner.lease_reads.load(Ordering::Relaxed),
            read_index_reads: self.inner.read_index_reads.load(Ordering::Relaxed),
            members,
            release: own.as_ref().and_then(|v| v.release.clone()),
            protocol: own.as_ref().map(|v| v.protocol),
            reads_format: own.as_ref().map(|v| v.reads_format),
            writes_format: own.is_some().then(crate::codec::active_format),
            active_format: own.as_ref().and_then(|_| self.inner.tables.active_format().ok()),
            protocol_refusals: crate::protocol::refusals(),
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

    /// Whether this node is the Raft leader right now, as far as it knows.
    pub fn is_leader(&self) -> bool {
        self.inner.raft.metrics().borrow().current_leader == Some(self.inner.node_id)
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
    /// This node's release (crate version `+` git commit). This field and the five below are
    /// absent from the answers of release a01dacd (and of a node in previous-release mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// The internal protocol this node speaks (see `protocol`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<u32>,
    /// The newest record format this node reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reads_format: Option<u16>,
    /// The record format this node writes (the cluster's active format as it applied it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writes_format: Option<u16>,
    /// The cluster's active format, as recorded in this node's state machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_format: Option<u16>,
    /// Peers refused since start because this node does not speak their protocol.
    #[serde(default)]
    pub protocol_refusals: u64,
    /// A follower's clock rate measured against the leader's, which decides whether it may read
    /// under its lease; `None` on the leader, with leases off, and from older releases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_drift: Option<ClockDriftStatus>,
    /// The leader's clock rate measured against each follower's, and whether it is judged off
    /// (it then grants no lease and reads with a quorum round; see `follower_clocks`); `None`
    /// on followers, with leases off, and from older releases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_clock: Option<crate::LeaderClockStatus>,
}

/// A follower's clock drift against the leader that grants its lease (see "Read leases" in
/// `docs/architecture.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClockDriftStatus {
    /// Whether the lease is used: `within_bound` yes; `exceeded` and `unmeasured` (not measured
    /// against the current leader yet) no.
    pub verdict: DriftVerdict,
    /// How much faster the leader's clock runs than this node's, parts per million (positive:
    /// this node's clock is slow); `None` until measured.
    pub estimate_ppm: Option<i64>,
    /// The bound past which the lease is not used, ppm.
    pub bound_ppm: u64,
    /// How many times the drift went past the bound since the node started.
    pub episodes: u64,
}

/// How recent a peer's report of its version must be to be shown.
const VERSION_FRESH: std::time::Duration = std::time::Duration::from_secs(30);

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
    /// Its release, as it last said to this node (absent: it did not say, or not lately).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// Its internal protocol, as it last said to this node (0: a node of release a01dacd).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<u32>,
    /// The newest record format it reads, as it last said to this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reads_format: Option<u16>,
}
