//! The leader's clock rate against its followers': the other half of the drift check of
//! `clock_drift` (fault-suite anomaly 7 in `docs/faults.md`).
//!
//! A follower measures its rate against the leader's and stops reading under its lease past
//! the bound; that covers a follower's lease whichever of the two clocks is off. What it does not
//! cover is the leader's own clock: its own lease (which only the next leader's takeover wait
//! bounds) and its record of the grants it made, which decides when a write may become visible.
//! So every follower puts its monotonic clock in the header [`crate::CLOCK_HEADER`] of its lease
//! requests, and the leader measures each follower's rate against its own with the same
//! [`RateWindow`] over the last 32 requests.
//!
//! **The bound** is the followers' one ([`crate::clock_drift::bound_ppm`]: half of
//! `margin / duration` as a rate, 56,250 ppm for a 400 ms lease), after a window of two leases.
//! A request is one-way, so each reading is placed within [`ONE_WAY_ALLOWANCE`] before its
//! arrival; a request that took longer (a WAN link with jitter) can only make the leader think
//! its clock is off when it is not, never the other way, and that costs round trips, not
//! safety.
//!
//! **Past the bound** against one follower, that follower is refused leases. Past it against
//! more than half of the followers it measures, the leader's clock is the odd one out: it then
//! refuses every lease grant (followers read with a read index), stops reading under its own
//! lease (its reads confirm leadership with a quorum), and stretches every grant it made by one
//! more lease plus the margin before it stops holding writes back for it (see
//! `Leases::stretch_grants`: safe for rates up to twice apart). It logs a warning with fields,
//! counts it (`meridian_leader_clock_drift_exceeded`, `meridian_leader_clock_drift_episodes_total`)
//! and shows it in `GET /api/v1/cluster` (`status.leader_clock`). It keeps measuring (refused
//! requests are samples too) and trusts its clock again once the majority is back within the
//! bound.
//!
//! **Followers of the previous release** send no header: they cannot be measured, count neither
//! way, and their leases rest on the margin alone, as in that release.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::clock_drift::{DriftVerdict, RateWindow, Sample, bound_ppm, min_window};
use crate::locks::lock;
use crate::node_id::NodeId;

/// How long before its arrival at the leader a follower's clock reading may have been taken:
/// the time a lease request spends between the follower's clock read and the leader's (TLS on
/// an open connection, the handler's start).
pub(crate) const ONE_WAY_ALLOWANCE: Duration = Duration::from_millis(5);

/// How often, at most, a leader that keeps judging its clock off warns about it.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// The leader's measurement of one follower's clock.
#[derive(Debug, Default)]
struct FollowerWindow {
    /// The follower's readings.
    samples: RateWindow,
    /// The verdict of the last measurement.
    verdict: Option<DriftVerdict>,
    /// How much faster the follower's clock ran than the leader's, ppm (positive: the leader's
    /// is slow).
    estimate_ppm: Option<i64>,
}

/// One follower as the leader measured it, for status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FollowerClock {
    /// The follower.
    pub id: NodeId,
    /// Whether its rate agrees with the leader's (`unmeasured`: too few requests yet, or a
    /// follower of the previous release that sends no clock).
    pub verdict: DriftVerdict,
    /// How much faster its clock runs than the leader's, ppm (positive: the leader's is slow).
    pub estimate_ppm: Option<i64>,
}

/// What the leader knows of its own clock, for status and metrics.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LeaderClockStatus {
    /// `exceeded` while the leader's rate differs past the bound from more than half of the
    /// followers it measures (it grants no lease and reads with a quorum round then);
    /// `within_bound` otherwise once measured; `unmeasured` before.
    pub verdict: DriftVerdict,
    /// Each follower measured.
    pub followers: Vec<FollowerClock>,
    /// The bound, ppm.
    pub bound_ppm: u64,
    /// How many times the verdict turned to exceeded since the node started.
    pub episodes: u64,
}

/// Leader side: measures its clock rate against each follower's from their lease requests.
#[derive(Debug)]
pub(crate) struct FollowerClocks {
    /// Largest rate difference, ppm, that is within the bound.
    bound_ppm: u64,
    /// Shortest stretch of the leader's time a measurement must span.
    min_window: Duration,
    /// Each follower's measurement.
    windows: Mutex<HashMap<NodeId, FollowerWindow>>,
    /// Whether the leader judged its own clock off at the last request, and when it last warned.
    off: Mutex<(bool, Option<Instant>)>,
    /// How many times that judgement turned to off.
    episodes: AtomicU64,
}

impl FollowerClocks {
    /// The measurements for leases of `duration` with safety margin `margin`.
    pub(crate) fn new(duration: Duration, margin: Duration) -> Self {
        Self {
            bound_ppm: bound_ppm(duration, margin),
            min_window: min_window(duration),
            windows: Mutex::new(HashMap::new()),
            off: Mutex::new((false, None)),
            episodes: AtomicU64::new(0),
        }
    }

    /// Records a lease request of `follower` that arrived at `arrived` (the leader's clock)
    /// carrying the follower's clock reading `follower_ms` (`None`: a follower of the previous
    /// release, or a header that did not parse; it is then unmeasured). Returns its verdict.
    pub(crate) fn observe(&self, follower: NodeId, arrived: Instant, follower_ms: Option<u64>) -> DriftVerdict {
        let mut windows = lock(&self.windows);
        let w = windows.entry(follower).or_default();
        let Some(follower_ms) = follower_ms else {
            *w = FollowerWindow::default();
            return DriftVerdict::Unmeasured;
        };
        let sent = arrived.checked_sub(ONE_WAY_ALLOWANCE).unwrap_or(arrived);
        if !w.samples.push(Sample { sent, received: arrived, remote_ms: follower_ms }) {
            // The follower restarted: its clock counts from its start. Not drift.
            w.verdict = None;
            w.estimate_ppm = None;
        }
        if let Some(m) = w.samples.measure(self.min_window) {
            let before = w.verdict.unwrap_or(DriftVerdict::Unmeasured);
            w.verdict = Some(m.verdict(self.bound_ppm, before));
            w.estimate_ppm = Some(m.estimate_ppm.round() as i64);
        }
        w.verdict.unwrap_or(DriftVerdict::Unmeasured)
    }

    /// Whether this leader's clock is off: past the bound against more than half of the
    /// `followers` (the other members) that it measures. Logs and counts the changes.
    pub(crate) fn leader_clock_off(&self, term: u64, followers: &[NodeId]) -> bool {
        let (measured, exceeded, worst) = {
            let windows = lock(&self.windows);
            let mut measured = 0usize;
            let mut exceeded = 0usize;
            let mut worst: Option<i64> = None;
            for w in followers.iter().filter_map(|id| windows.get(id)) {
                match w.verdict {
                    Some(DriftVerdict::Exceeded) => {
                        measured += 1;
                        exceeded += 1;
                        worst = worst.max(w.estimate_ppm.map(i64::abs));
                    }
                    Some(DriftVerdict::WithinBound) => measured += 1,
                    Some(DriftVerdict::Unmeasured) | None => {}
                }
            }
            (measured, exceeded, worst)
        };
        let off_now = exceeded > 0 && exceeded * 2 > measured;
        let mut off = lock(&self.off);
        let now = Instant::now();
        if off_now && (!off.0 || off.1.is_none_or(|at| now.duration_since(at) >= WARN_EVERY)) {
            if !off.0 {
                self.episodes.fetch_add(1, Ordering::Relaxed);
            }
            off.1 = Some(now);
            tracing::warn!(
                term,
                worst_drift_ppm = worst,
                bound_ppm = self.bound_ppm,
                exceeded,
                measured,
                "this leader's clock rate differs from most followers' past the lease bound: it grants no read lease and reads with a quorum round"
            );
        } else if !off_now && off.0 {
            tracing::info!(term, exceeded, measured, "leader clock back within the lease bound: read leases again");
        }
        off.0 = off_now;
        off_now
    }

    /// Whether the last judgement found this leader's clock off (see [`Self::leader_clock_off`]).
    pub(crate) fn judged_off(&self) -> bool {
        lock(&self.off).0
    }

    /// What the leader knows of its clock, for status and metrics.
    pub(crate) fn status(&self, followers: &[NodeId]) -> LeaderClockStatus {
        let windows = lock(&self.windows);
        let followers: Vec<FollowerClock> = followers
            .iter()
            .filter_map(|id| windows.get(id).map(|w| (*id, w)))
            .map(|(id, w)| FollowerClock {
                id,
                verdict: w.verdict.unwrap_or(DriftVerdict::Unmeasured),
                estimate_ppm: w.estimate_ppm,
            })
            .collect();
        let verdict = if self.judged_off() {
            DriftVerdict::Exceeded
        } else if followers.iter().any(|f| f.verdict == DriftVerdict::WithinBound) {
            DriftVerdict::WithinBound
        } else {
            DriftVerdict::Unmeasured
        };
        LeaderClockStatus {
            verdict,
            followers,
            bound_ppm: self.bound_ppm,
            episodes: self.episodes.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Duration = Duration::from_millis(400);
    const RENEW: Duration = Duration::from_millis(100);

    fn clocks() -> FollowerClocks {
        FollowerClocks::new(D, D / 10 + Duration::from_millis(5))
    }

    /// Feeds `n` requests of `follower` one renewal apart on the leader's clock, the follower's
    /// clock running at `rate` times the leader's.
    fn feed(c: &FollowerClocks, follower: NodeId, start: Instant, rate: f64, n: u32) -> DriftVerdict {
        let mut verdict = DriftVerdict::Unmeasured;
        for i in 0..n {
            let elapsed_ms = (RENEW * i).as_secs_f64() * 1000.0;
            verdict = c.observe(follower, start + RENEW * i, Some(10_000 + (elapsed_ms * rate) as u64));
        }
        verdict
    }

    #[test]
    fn a_leader_clock_off_against_most_followers_is_judged_off_and_one_odd_follower_is_not() {
        let t = Instant::now();
        // The leader runs 30% fast: both followers look 23% slow.
        let c = clocks();
        assert_eq!(feed(&c, 2, t, 1.0 / 1.3, 20), DriftVerdict::Exceeded);
        assert_eq!(feed(&c, 3, t, 1.0 / 1.3, 20), DriftVerdict::Exceeded);
        assert!(c.leader_clock_off(1, &[2, 3]));
        assert!(c.leader_clock_off(1, &[2, 3]), "still off: one episode");
        let status = c.status(&[2, 3]);
        assert_eq!((status.verdict, status.episodes), (DriftVerdict::Exceeded, 1), "{status:?}");
        assert!(status.followers.iter().all(|f| f.estimate_ppm.is_some_and(|e| (-260_000..=-200_000).contains(&e))));
        // One follower 30% off, the other in step: that follower's clock is the odd one.
        let c = clocks();
        assert_eq!(feed(&c, 2, t, 1.3, 20), DriftVerdict::Exceeded);
        assert_eq!(feed(&c, 3, t, 1.0, 20), DriftVerdict::WithinBound);
        assert!(!c.leader_clock_off(1, &[2, 3]));
        assert_eq!(c.status(&[2, 3]).verdict, DriftVerdict::WithinBound);
        // 2% is inside the bound.
        let c = clocks();
        feed(&c, 2, t, 1.02, 20);
        feed(&c, 3, t, 0.98, 20);
        assert!(!c.leader_clock_off(1, &[2, 3]));
    }

    #[test]
    fn unmeasured_followers_count_neither_way_and_a_restarted_follower_is_no_drift() {
        let t = Instant::now();
        let c = clocks();
        // A follower of the previous release (no header) and one with too few requests yet.
        assert_eq!(c.observe(2, t, None), DriftVerdict::Unmeasured);
        assert_eq!(feed(&c, 3, t, 1.0 / 1.3, 3), DriftVerdict::Unmeasured);
        assert!(!c.leader_clock_off(1, &[2, 3]));
        assert_eq!(c.status(&[2, 3]).verdict, DriftVerdict::Unmeasured);
        // Measured past the bound, then restarted (its clock starts again): measured afresh.
        assert_eq!(feed(&c, 3, t, 1.0 / 1.3, 20), DriftVerdict::Exceeded);
        assert!(c.leader_clock_off(1, &[2, 3]), "the only measured follower disagrees");
        assert_eq!(c.observe(3, t + RENEW * 21, Some(3)), DriftVerdict::Unmeasured);
        assert!(!c.leader_clock_off(1, &[2, 3]));
    }

    #[test]
    fn hostile_readings_never_panic_nor_make_a_clock_look_good() {
        // An authenticated peer with a broken or hostile clock header: extreme values, a clock
        // that leaps, readings all equal. The worst it can do is have leases refused.
        let t = Instant::now();
        let c = clocks();
        for (i, ms) in [0, u64::MAX, 0, u64::MAX / 2, u64::MAX, u64::MAX].into_iter().enumerate() {
            c.observe(2, t + RENEW * u32::try_from(i).unwrap(), Some(ms));
        }
        let v = feed(&c, 3, t, 0.0, 20);
        assert_eq!(v, DriftVerdict::Exceeded, "a clock that stands still is past the bound");
        let leap = clocks();
        leap.observe(2, t, Some(0));
        assert_eq!(leap.observe(2, t + D * 3, Some(u64::MAX)), DriftVerdict::Exceeded);
        let _ = c.status(&[2, 3]);
        let _ = c.leader_clock_off(1, &[2, 3]);
    }
}
