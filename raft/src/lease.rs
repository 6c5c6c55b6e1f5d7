//! Read leases: every node answers reads from its own state machine, linearizably, without a
//! round trip to the leader while its lease holds.
//!
//! A quorum lease in which every member may hold one: a write becomes visible anywhere only once
//! every unexpired holder has it in its log, so a holder only applies its own log before reading.
//! The protocol (holding, visibility, lagging holders, changing leaders, clocks) is explained once,
//! in "Read leases" of `docs/architecture.md`; this module is its bookkeeping: [`Leases`] grants
//! and holds leases ([`LAG_LIMIT`] bounds a holder's lag), admits entries to the state machine
//! (`admit`) and caps the commit index sent to followers (`cap_commit`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use openraft::LogId;
use tokio::sync::watch;

use crate::locks::lock;
use crate::node_id::NodeId;

/// A node's request for a read lease.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct LeaseRequest {
    /// The asking node.
    pub holder: NodeId,
    /// The asking node's lease duration, ms. The leader refuses a duration other than its own: a
    /// later leader's wait only covers leases as long as its own settings allow (see module docs).
    pub duration_ms: u64,
}

/// The leader's answer to a lease request.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct LeaseGrant {
    /// The term of the granting leader.
    pub term: u64,
    /// The index the holder must apply before its first local read.
    pub read_index: u64,
    /// How long the lease may last, counted from when the holder asked, ms.
    pub valid_for_ms: u64,
}

/// Why a leader refused a lease.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LeaseRefusal {
    /// The leader has leases off.
    #[error("read leases are off on the leader")]
    Disabled,
    /// The two nodes are configured with different lease durations.
    #[error("lease duration {asked_ms} ms differs from the leader's {ours_ms} ms (raft.read_lease_ms)")]
    DurationMismatch {
        /// The holder's duration.
        asked_ms: u64,
        /// The leader's duration.
        ours_ms: u64,
    },
    /// The holder's log trails the commit index too far (e.g. a learner catching up).
    #[error("log too far behind: matched {matched:?}, committed {committed:?}")]
    Lagging {
        /// The holder's matched index, if any.
        matched: Option<u64>,
        /// The leader's commit index.
        committed: Option<u64>,
    },
    /// The holder has kept a committed entry invisible for too long.
    #[error("held back a committed entry for {for_ms} ms")]
    Stalling {
        /// For how long.
        for_ms: u128,
    },
    /// The leader measured the holder's clock rate, or its own against most followers', past
    /// the drift bound (`follower_clocks`).
    #[error("clock rate past the lease drift bound ({which}); read with a read index instead")]
    ClockDrift {
        /// Whose clock: "the holder's against the leader's" or "the leader's against most followers'".
        which: &'static str,
    },
}

/// Most entries a holder's log may trail the commit index when it is granted a lease.
pub(crate) const LAG_LIMIT: u64 = 64;

/// How long an AppendEntries waits for the visible index to reach the commit index it carries
/// before it goes out capped (see [`Leases::cap_commit`]).
pub(crate) const CAP_PATIENCE: Duration = Duration::from_millis(10);

/// A lease this node holds.
#[derive(Debug, Clone, Copy)]
struct Lease {
    /// The leader that granted it.
    leader: NodeId,
    /// The term it was granted in.
    term: u64,
    /// When it runs out, by this node's clock.
    valid_until: Instant,
    /// The read index it was granted at: local state is fresh once this is applied.
    min_applied: u64,
}

/// Leader side: one holder of a lease.
#[derive(Debug, Clone, Copy)]
struct Holder {
    /// When its grant runs out (this node's clock; later than the holder's own view).
    until: Instant,
    /// Since when it has held back visibility, and the commit index it lacked then. Reset when it
    /// gets that index (so a holder that keeps up, a little behind, is not "stalling").
    behind: Option<(Instant, u64)>,
    /// Whether `until` was stretched for a leader clock judged off (see
    /// [`Leases::stretch_grants`]): once per grant.
    stretched: bool,
}

/// Leader side: the grants of one term.
#[derive(Debug, Default)]
struct Granted {
    /// The term the grants belong to.
    term: u64,
    /// Each holder.
    holders: HashMap<NodeId, Holder>,
}

/// What [`Leases::advance`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Advance {
    /// Whether the visible log id moved.
    pub(crate) advanced: bool,
    /// When to compute again even if nothing else changes: a lagging holder's grant runs out, or
    /// the new-leader wait ends.
    pub(crate) wake_at: Option<Instant>,
}

/// The leases held by this node and, when it leads, granted by it; and the visibility gate
/// that keeps writes invisible until every holder has them.
#[derive(Debug)]
pub(crate) struct Leases {
    /// How long a lease lasts; zero turns leases off (the gate still applies the new-leader wait).
    duration: Duration,
    /// Safety margin for clock rate drift and scheduling delays.
    margin: Duration,
    /// How long a new leader keeps everything invisible: `max(duration, election_max) + margin`.
    takeover: Duration,
    /// This node's own lease.
    own: Mutex<Option<Lease>>,
    /// Leader side: the grants of the term this node leads.
    granted: Mutex<Granted>,
    /// Leader side: the term this node leads and when it first saw itself leading it.
    leading_since: Mutex<Option<(u64, Instant)>>,
    /// The last log id this node may make visible (apply, or announce as committed).
    visible: watch::Sender<Option<LogId<NodeId>>>,
    /// The highest committed log id waiting to become visible: an entry the state machine waits
    /// to apply, or a commit index an AppendEntries waits to announce. Raft hands out only
    /// committed ids there, so the gate learns the commit index from it without asking Raft
    /// (a round trip to its core on every replication step cost about a fifth of the leader's
    /// CPU per write).
    wanted: watch::Sender<Option<LogId<NodeId>>>,
    /// Set when an AppendEntries carried a commit index lowered to `visible`: followers then
    /// need a heartbeat once it moves.
    capped: AtomicBool,
}

impl Leases {
    /// Leases of `duration` (zero: no leases, every read asks the leader), in a cluster whose
    /// election timeout is at most `election_max`; `applied` is what this node has already
    /// applied (visible before it started).
    pub(crate) fn new(duration: Duration, election_max: Duration, applied: Option<LogId<NodeId>>) -> Self {
        let margin = duration / 10 + Duration::from_millis(5);
        Self {
            duration,
            margin,
            takeover: duration.max(election_max) + margin,
            own: Mutex::new(None),
            granted: Mutex::new(Granted::default()),
            leading_since: Mutex::new(None),
            visible: watch::Sender::new(applied),
            wanted: watch::Sender::new(None),
            capped: AtomicBool::new(false),
        }
    }

    /// A full lease.
    pub(crate) fn duration(&self) -> Duration {
        self.duration
    }

    /// The safety margin for clock rate drift and scheduling delays (the drift bound of
    /// `clock_drift` is derived from it).
    pub(crate) fn margin(&self) -> Duration {
        self.margin
    }

    /// Whether leases are on.
    pub(crate) fn enabled(&self) -> bool {
        !self.duration.is_zero()
    }

    /// How often a node renews its lease.
    pub(crate) fn renew_every(&self) -> Duration {
        self.duration / 4
    }

    /// Records a lease obtained by a request sent at `asked_at`.
    /// `valid_for` is what the grantor promised: a full lease after a fresh quorum confirmation,
    /// or what remains of the leader's own lease when it granted from that.
    pub(crate) fn hold(&self, leader: NodeId, term: u64, asked_at: Instant, min_applied: u64, valid_for: Duration) {
        let valid_until = asked_at + valid_for.min(self.duration).saturating_sub(self.margin);
        *lock(&self.own) = Some(Lease { leader, term, valid_until, min_applied });
    }

    /// The index to apply before reading locally, if this node holds a lease from `leader` in
    /// `term` right now.
    pub(crate) fn read_index(&self, leader: Option<NodeId>, term: u64) -> Option<u64> {
        let lease = (*lock(&self.own))?;
        let valid = Some(lease.leader) == leader && lease.term == term && Instant::now() < lease.valid_until;
        valid.then_some(lease.min_applied)
    }

    /// How much longer this node's lease from `leader` in `term` holds.
    pub(crate) fn remaining(&self, leader: Option<NodeId>, term: u64) -> Option<Duration> {
        let lease = (*lock(&self.own))?;
        let current = Some(lease.leader) == leader && lease.term == term;
        current.then(|| lease.valid_until.saturating_duration_since(Instant::now())).filter(|d| !d.is_zero())
    }

    /// Leader side: records `holder` as holding a lease granted in `term`, from `now` on, unless
    /// it may not hold one. `matched` is its log as the leader knows it, `committed` the
    /// leader's commit index.
    pub(crate) fn grant(
        &self,
        term: u64,
        holder: NodeId,
        asked_duration: Duration,
        matched: Option<LogId<NodeId>>,
        committed: Option<LogId<NodeId>>,
        now: Instant,
    ) -> Result<(), LeaseRefusal> {
        if !self.enabled() {
            return Err(LeaseRefusal::Disabled);
        }
        if asked_duration != self.duration {
            return Err(LeaseRefusal::DurationMismatch {
                asked_ms: millis(asked_duration),
                ours_ms: millis(self.duration),
            });
        }
        let (matched, committed) = (matched.map(|l| l.index), committed.map(|l| l.index));
        if committed.unwrap_or(0) > matched.unwrap_or(0) + LAG_LIMIT || (matched.is_none() && committed.is_some()) {
            return Err(LeaseRefusal::Lagging { matched, committed });
        }
        let mut granted = lock(&self.granted);
        if granted.term != term {
            *granted = Granted { term, holders: HashMap::new() };
        }
        let entry = granted.holders.entry(holder).or_insert(Holder { until: now, behind: None, stretched: false });
        if entry.behind.is_some_and(|(_, lacked)| matched.unwrap_or(0) >= lacked) {
            // It got what it lacked (perhaps after its grant ran out and the gate stopped
            // watching it): no longer stalling.
            entry.behind = None;
        }
        if let Some((since, _)) = entry.behind
            && now.saturating_duration_since(since) > self.renew_every()
        {
            // Not renewed: its grant runs out within one lease and stops holding writes back.
            return Err(LeaseRefusal::Stalling { for_ms: now.saturating_duration_since(since).as_millis() });
        }
        let fresh = now + self.duration + self.margin;
        if fresh > entry.until {
            // A new grant: stretched again if the leader's clock is judged off once more.
            entry.until = fresh;
            entry.stretched = false;
        }
        Ok(())
    }

    /// Leader side, while its clock is judged off (`follower_clocks`): every grant of `term`
    /// holds writes back for one more lease plus the margin than recorded, the worst case for
    /// clock rates up to twice apart; a holder's lease by its own clock then ends before the
    /// leader stops counting it even though the leader's clock may have run fast. Once per
    /// grant, so calling it again changes nothing.
    pub(crate) fn stretch_grants(&self, term: u64) {
        let mut granted = lock(&self.granted);
        if granted.term != term {
            return;
        }
        let extra = self.duration + self.margin;
        for holder in granted.holders.values_mut().filter(|h| !h.stretched) {
            holder.until += extra;
            holder.stretched = true;
        }
    }

    /// Leader side: the holders of a lease granted in `term` that has not run out, with expiry.
    #[cfg(test)]
    fn holders(&self, term: u64) -> Vec<(NodeId, Instant)> {
        let granted = lock(&self.granted);
        let now = Instant::now();
        if granted.term != term {
            return Vec::new();
        }
        granted.holders.iter().filter(|(_, h)| h.until > now).map(|(id, h)| (*id, h.until)).collect()
    }

    /// Leader side: when this node may first make entries visible in `term` (see module docs).
    pub(crate) fn writes_allowed_from(&self, term: u64) -> Instant {
        let mut since = lock(&self.leading_since);
        match *since {
            Some((t, at)) if t == term => at + self.takeover,
            _ => {
                let now = Instant::now();
                *since = Some((term, now));
                now + self.takeover
            }
        }
    }

    /// Leader side: moves the visible log id up to `min(committed, matched of every unexpired
    /// holder)` of `term`, never down. `alone`: no other node is a member, so none can hold a
    /// lease (from this leader or an earlier one).
    pub(crate) fn advance(
        &self,
        term: u64,
        committed: Option<LogId<NodeId>>,
        matched: impl Fn(NodeId) -> Option<LogId<NodeId>>,
        alone: bool,
        now: Instant,
    ) -> Advance {
        if !alone {
            let allowed = self.writes_allowed_from(term);
            if now < allowed {
                return Advance { advanced: false, wake_at: Some(allowed) };
            }
        }
        let mut candidate = committed;
        let mut wake_at: Option<Instant> = None;
        // Held across the publish, so a grant recorded meanwhile either counts here or sees the
        // result (its read index is taken after recording it).
        let mut granted = lock(&self.granted);
        if granted.term == term {
            for (id, holder) in granted.holders.iter_mut().filter(|(_, h)| h.until > now) {
                let has = matched(*id);
                if has >= committed {
                    holder.behind = None;
                    continue;
                }
                candidate = candidate.min(has);
                wake_at = Some(wake_at.map_or(holder.until, |w| w.min(holder.until)));
                let needed = committed.map_or(0, |l| l.index);
                match holder.behind {
                    Some((_, lacked)) if has.map_or(0, |l| l.index) < lacked => {}
                    _ => holder.behind = Some((now, needed)),
                }
            }
        }
        let advanced = self.visible.send_if_modified(|visible| {
            let moved = candidate > *visible;
            if moved {
                *visible = candidate;
            }
            moved
        });
        drop(granted);
        Advance { advanced, wake_at }
    }

    /// Follower side: the leader announced `commit` (already capped at its visible log id), so
    /// everything up to it may be visible here.
    pub(crate) fn raise(&self, commit: Option<LogId<NodeId>>) {
        self.visible.send_if_modified(|visible| {
            let moved = commit > *visible;
            if moved {
                *visible = commit;
            }
            moved
        });
    }

    /// The last log id this node may make visible.
    pub(crate) fn visible(&self) -> Option<LogId<NodeId>> {
        *self.visible.borrow()
    }

    /// The commit index to send in an AppendEntries: `committed`, capped at the visible log id.
    ///
    /// An entry usually commits on the very acknowledgement that also makes it visible, and
    /// openraft announces the commit at once, racing the gate; a capped announcement would leave
    /// followers a whole round trip behind (one AppendEntries in flight per follower). So this
    /// first gives the gate [`CAP_PATIENCE`] to catch up.
    pub(crate) async fn cap_commit(&self, committed: Option<LogId<NodeId>>) -> Option<LogId<NodeId>> {
        if committed <= self.visible() {
            return committed;
        }
        let mut visible = self.visible.subscribe();
        self.want(committed);
        let _ = tokio::time::timeout(CAP_PATIENCE, visible.wait_for(|v| *v >= committed)).await;
        if committed <= self.visible() {
            return committed;
        }
        // Flagged before the second look, so an advance published in between either is seen
        // here or sees the flag and sends the heartbeat.
        self.capped.store(true, Ordering::SeqCst);
        committed.min(self.visible())
    }

    /// Whether an AppendEntries was capped since the last call (followers await a heartbeat).
    pub(crate) fn take_capped(&self) -> bool {
        self.capped.swap(false, Ordering::SeqCst)
    }

    /// State machine side: waits until committed entry `log_id` may be applied.
    pub(crate) async fn admit(&self, log_id: LogId<NodeId>) {
        let index = log_id.index;
        let mut visible = self.visible.subscribe();
        if visible.borrow().is_some_and(|l| l.index >= index) {
            return;
        }
        self.want(Some(log_id));
        // The sender lives in `self`, so this only ends when the index is visible.
        let _ = visible.wait_for(|v| v.is_some_and(|l| l.index >= index)).await;
    }

    /// Notes that committed `log_id` waits to become visible (see `wanted`).
    fn want(&self, log_id: Option<LogId<NodeId>>) {
        self.wanted.send_if_modified(|wanted| {
            let more = log_id > *wanted;
            if more {
                *wanted = log_id;
            }
            more
        });
    }

    /// The highest committed log id waiting to become visible, and its changes.
    pub(crate) fn wanted(&self) -> watch::Receiver<Option<LogId<NodeId>>> {
        self.wanted.subscribe()
    }
}

/// A duration in whole milliseconds, saturating.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Duration = Duration::from_millis(200);

    fn log_id(term: u64, index: u64) -> Option<LogId<NodeId>> {
        Some(LogId::new(openraft::CommittedLeaderId::new(term, 1), index))
    }

    /// Leases of `D` whose new-leader wait for term 1 is already over.
    fn leader() -> Leases {
        let leases = Leases::new(D, Duration::from_millis(400), log_id(1, 5));
        *lock(&leases.leading_since) = Some((1, Instant::now().checked_sub(Duration::from_secs(5)).unwrap()));
        leases
    }

    #[test]
    fn a_lease_holds_only_for_its_leader_and_term_and_until_it_runs_out() {
        let leases = Leases::new(D, D, None);
        assert_eq!(leases.read_index(Some(1), 3), None, "no lease yet");
        leases.hold(1, 3, Instant::now(), 42, Duration::from_secs(9));
        assert_eq!(leases.read_index(Some(1), 3), Some(42));
        assert_eq!(leases.read_index(Some(2), 3), None, "another leader");
        assert_eq!(leases.read_index(Some(1), 4), None, "another term");
        assert_eq!(leases.read_index(None, 3), None, "no leader");
        leases.hold(1, 3, Instant::now().checked_sub(Duration::from_millis(190)).unwrap(), 42, Duration::from_secs(9));
        assert_eq!(leases.read_index(Some(1), 3), None, "older than duration - margin");
        leases.hold(1, 3, Instant::now(), 42, Duration::from_millis(20));
        assert_eq!(leases.read_index(Some(1), 3), None, "the grantor promised less than the margin");
        leases.hold(1, 3, Instant::now(), 42, Duration::from_millis(150));
        assert!(leases.remaining(Some(1), 3).unwrap() <= Duration::from_millis(150), "never past the promise");
    }

    #[test]
    fn stretched_grants_hold_writes_back_one_lease_longer_once() {
        let leases = leader();
        let now = Instant::now();
        leases.grant(1, 2, D, log_id(1, 5), log_id(1, 5), now).unwrap();
        let recorded = leases.holders(1)[0].1;
        leases.stretch_grants(2);
        assert_eq!(leases.holders(1)[0].1, recorded, "another term's grants are not touched");
        leases.stretch_grants(1);
        leases.stretch_grants(1);
        let margin = leases.margin();
        assert_eq!(leases.holders(1)[0].1, recorded + D + margin, "one more lease and margin, once");
        // A write committed now waits for the holder until the stretched end.
        let held = leases.advance(1, log_id(1, 9), |_| log_id(1, 5), false, now);
        assert_eq!(held.wake_at, Some(recorded + D + margin));
        assert_eq!(leases.visible(), log_id(1, 5));
    }

    #[test]
    fn grants_belong_to_one_term_and_outlive_the_holders_view() {
        let leases = leader();
        let now = Instant::now();
        leases.grant(5, 2, D, log_id(5, 10), log_id(5, 10), now).unwrap();
        let holders = leases.holders(5);
        assert_eq!(holders.len(), 1);
        assert!(holders[0].1 >= now + D, "leader counts duration + margin");
        assert!(leases.holders(6).is_empty(), "grants of another term do not count");
        leases.grant(6, 3, D, log_id(6, 10), log_id(6, 10), now).unwrap();
        assert!(leases.holders(5).is_empty(), "a new term forgets the old grants");
    }

    #[test]
    fn a_new_leader_makes_nothing_visible_for_the_longer_of_a_lease_and_the_election_timeout() {
        let leases = Leases::new(D, Duration::from_millis(400), log_id(1, 5));
        let first = leases.writes_allowed_from(7);
        assert!(first >= Instant::now() + Duration::from_millis(400), "election_max counts when longer");
        assert_eq!(leases.writes_allowed_from(7), first, "the same term keeps its start");
        assert!(leases.writes_allowed_from(8) >= first, "a new term starts again");
        let held = leases.advance(8, log_id(8, 9), |_| None, false, Instant::now());
        assert_eq!(held, Advance { advanced: false, wake_at: Some(leases.writes_allowed_from(8)) });
        assert_eq!(leases.visible(), log_id(1, 5), "nothing new is visible during the wait");
        assert!(leases.advance(8, log_id(8, 9), |_| None, true, Instant::now()).advanced, "alone: no wait");
        // Leases off: grants are refused, but a new leader still waits the election timeout.
        let off = Leases::new(Duration::ZERO, Duration::from_millis(400), None);
        assert!(off.writes_allowed_from(1) >= Instant::now() + Duration::from_millis(400));
        assert_eq!(off.grant(1, 2, Duration::ZERO, None, None, Instant::now()), Err(LeaseRefusal::Disabled));
    }

    #[tokio::test]
    async fn visibility_waits_for_every_unexpired_holder_and_never_goes_back() {
        let leases = leader();
        let now = Instant::now();
        leases.grant(1, 2, D, log_id(1, 8), log_id(1, 8), now).unwrap();
        // Entry 9 committed (leader + node 3); holder 2 has only 8.
        let matched = |id: NodeId| if id == 2 { log_id(1, 8) } else { log_id(1, 9) };
        let step = leases.advance(1, log_id(1, 9), matched, false, now);
        assert!(step.advanced, "5 -> 8");
        assert_eq!(leases.visible(), log_id(1, 8), "9 stays invisible while holder 2 lacks it");
        assert!(step.wake_at.is_some_and(|w| w >= now + D), "wakes when the grant runs out");
        assert_eq!(leases.cap_commit(log_id(1, 9)).await, log_id(1, 8), "followers hear of 8 only");
        assert!(leases.take_capped());
        assert!(!leases.take_capped(), "reported once");
        // Holder 2 catches up.
        assert!(leases.advance(1, log_id(1, 9), |_| log_id(1, 9), false, now).advanced);
        assert_eq!(leases.visible(), log_id(1, 9));
        assert_eq!(leases.cap_commit(log_id(1, 9)).await, log_id(1, 9));
        assert!(!leases.take_capped(), "nothing was capped");
        // A new holder that lags does not take back what is visible.
        leases.grant(1, 3, D, log_id(1, 7), log_id(1, 9), now).unwrap();
        assert!(
            !leases
                .advance(1, log_id(1, 10), |id| if id == 3 { log_id(1, 7) } else { log_id(1, 10) }, false, now)
                .advanced
        );
        assert_eq!(leases.visible(), log_id(1, 9));
        // Once its grant ran out, it holds nothing back.
        let later = now + D * 2;
        assert!(leases.advance(1, log_id(1, 10), |_| log_id(1, 7), false, later).advanced);
        assert_eq!(leases.visible(), log_id(1, 10));
    }

    #[test]
    fn a_follower_may_show_what_the_leader_announced() {
        let leases = Leases::new(D, D, log_id(1, 5));
        leases.raise(log_id(2, 9));
        assert_eq!(leases.visible(), log_id(2, 9));
        leases.raise(log_id(1, 7));
        assert_eq!(leases.visible(), log_id(2, 9), "never back");
    }

    #[tokio::test]
    async fn the_state_machine_waits_until_an_entry_is_visible() {
        let leases = std::sync::Arc::new(leader());
        leases.admit(log_id(1, 5).unwrap()).await;
        let mut wanted = leases.wanted();
        let waiting = tokio::spawn({
            let leases = leases.clone();
            async move { leases.admit(log_id(1, 7).unwrap()).await }
        });
        wanted.changed().await.unwrap();
        assert_eq!(*wanted.borrow(), log_id(1, 7), "the gate hears what is awaited");
        assert!(!waiting.is_finished());
        leases.raise(log_id(1, 7));
        tokio::time::timeout(Duration::from_secs(5), waiting).await.unwrap().unwrap();
    }

    #[test]
    fn lagging_or_stalling_holders_and_other_durations_are_refused() {
        let leases = leader();
        let now = Instant::now();
        assert!(matches!(
            leases.grant(1, 2, D * 2, log_id(1, 9), log_id(1, 9), now),
            Err(LeaseRefusal::DurationMismatch { asked_ms: 400, ours_ms: 200 })
        ));
        assert!(matches!(leases.grant(1, 2, D, None, log_id(1, 9), now), Err(LeaseRefusal::Lagging { .. })));
        assert!(matches!(
            leases.grant(1, 2, D, log_id(1, 9), log_id(1, 10 + LAG_LIMIT), now),
            Err(LeaseRefusal::Lagging { .. })
        ));
        leases.grant(1, 2, D, log_id(1, 9), log_id(1, 9 + LAG_LIMIT), now).unwrap();
        // Holder 2 keeps lacking entry 80 that committed at `now`.
        leases.advance(1, log_id(1, 80), |_| log_id(1, 70), false, now);
        let soon = now + D / 8;
        leases.advance(1, log_id(1, 81), |_| log_id(1, 75), false, soon);
        leases.grant(1, 2, D, log_id(1, 75), log_id(1, 81), soon).unwrap();
        let late = now + D / 2;
        assert!(matches!(
            leases.grant(1, 2, D, log_id(1, 79), log_id(1, 81), late),
            Err(LeaseRefusal::Stalling { .. })
        ));
        // Progress past the entry it lacked resets the clock: a holder that keeps up a little
        // behind under steady writes keeps its lease.
        leases.advance(1, log_id(1, 90), |_| log_id(1, 85), false, late);
        leases.grant(1, 2, D, log_id(1, 85), log_id(1, 90), late).unwrap();
        leases.advance(1, log_id(1, 90), |_| log_id(1, 90), false, late);
        leases.grant(1, 2, D, log_id(1, 90), log_id(1, 90), late + D).unwrap();
    }
}
