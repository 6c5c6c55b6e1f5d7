//! Read leases: every node answers reads from its own state machine, linearizably, without a
//! round trip to the leader while its lease holds.
//!
//! The scheme is a quorum lease in which every member may hold one:
//!
//! - **Holding.** Each node renews its lease about four times per lease period. A follower notes
//!   the time `t0`, asks the leader, and the leader records it as a holder until
//!   `now + duration + margin` (its own clock) *before* taking a read index, which it returns.
//!   The follower's lease then holds until `t0 + duration - margin` (its clock), for the leader and
//!   term that granted it, and is usable once the node has applied the returned read index. The
//!   leader leases itself the same way, from its own read index (a quorum heartbeat round).
//! - **Writing.** The leader acknowledges a committed write only once every holder whose lease
//!   has not run out has the entry in its log (Raft's matched index). A reader with a lease
//!   therefore has every acknowledged write in its log; it waits until it has applied everything
//!   in its log, then reads locally.
//! - **Changing leaders.** A new leader does not know the leases its predecessor granted. Every
//!   grant was made before the new leader's election (the old leader confirmed a quorum after
//!   recording it, and a quorum that voted for the new term refuses the old one), and lasts at most
//!   `duration` from then, so the new leader acknowledges no write during its first `duration`.
//!   A lease also ends at once when its node sees another leader or term.
//!
//! Clocks are only compared with themselves (monotonic `Instant`s); `margin` covers drift in rate
//! between machines over one lease period.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::types::NodeId;

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

/// The leases held by this node and, when it leads, granted by it.
#[derive(Debug)]
pub(crate) struct Leases {
    /// How long a lease lasts; zero turns leases off.
    duration: Duration,
    /// Safety margin for clock rate drift and scheduling delays.
    margin: Duration,
    /// This node's own lease.
    own: Mutex<Option<Lease>>,
    /// Leader side: the term the grants belong to, and each holder's expiry (this node's clock).
    granted: Mutex<(u64, HashMap<NodeId, Instant>)>,
    /// Leader side: the term this node leads and when it first saw itself leading it.
    leading_since: Mutex<Option<(u64, Instant)>>,
}

impl Leases {
    /// Leases of `duration` (zero: no leases, every read asks the leader).
    pub(crate) fn new(duration: Duration) -> Self {
        Self {
            duration,
            margin: duration / 10 + Duration::from_millis(5),
            own: Mutex::new(None),
            granted: Mutex::new((0, HashMap::new())),
            leading_since: Mutex::new(None),
        }
    }

    /// A full lease.
    pub(crate) fn duration(&self) -> Duration {
        self.duration
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

    /// Leader side: records `holder` as holding a lease granted in `term`, from now on.
    pub(crate) fn grant(&self, term: u64, holder: NodeId) {
        let mut granted = lock(&self.granted);
        if granted.0 != term {
            *granted = (term, HashMap::new());
        }
        granted.1.insert(holder, Instant::now() + self.duration + self.margin);
    }

    /// Leader side: the holders of a lease granted in `term` that has not run out, with expiry.
    pub(crate) fn holders(&self, term: u64) -> Vec<(NodeId, Instant)> {
        let granted = lock(&self.granted);
        let now = Instant::now();
        if granted.0 != term {
            return Vec::new();
        }
        granted.1.iter().filter(|(_, until)| **until > now).map(|(id, until)| (*id, *until)).collect()
    }

    /// Leader side: when this node may first acknowledge writes in `term` (see the module docs).
    pub(crate) fn writes_allowed_from(&self, term: u64) -> Instant {
        let mut since = lock(&self.leading_since);
        match *since {
            Some((t, at)) if t == term => at + self.duration + self.margin,
            _ => {
                let now = Instant::now();
                *since = Some((term, now));
                now + self.duration + self.margin
            }
        }
    }
}

/// Locks a mutex whose data stays consistent even if a holder panicked (plain values only).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_holds_only_for_its_leader_and_term_and_until_it_runs_out() {
        let leases = Leases::new(Duration::from_millis(200));
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
    fn grants_belong_to_one_term_and_outlive_the_holders_view() {
        let leases = Leases::new(Duration::from_millis(200));
        leases.grant(5, 2);
        let holders = leases.holders(5);
        assert_eq!(holders.len(), 1);
        assert!(holders[0].1 >= Instant::now() + Duration::from_millis(200), "leader counts duration + margin");
        assert!(leases.holders(6).is_empty(), "grants of another term do not count");
        leases.grant(6, 3);
        assert!(leases.holders(5).is_empty(), "a new term forgets the old grants");
    }

    #[test]
    fn a_new_leader_waits_one_lease_before_acknowledging() {
        let leases = Leases::new(Duration::from_millis(200));
        let first = leases.writes_allowed_from(7);
        assert!(first >= Instant::now() + Duration::from_millis(200));
        assert_eq!(leases.writes_allowed_from(7), first, "the same term keeps its start");
        assert!(leases.writes_allowed_from(8) >= first, "a new term starts again");
    }

    #[test]
    fn zero_duration_turns_leases_off() {
        assert!(!Leases::new(Duration::ZERO).enabled());
        assert!(Leases::new(Duration::from_secs(1)).enabled());
    }
}
