//! Clock rate drift between this node and the leader that grants its read lease.
//!
//! A follower's lease holds until `t0 + duration - margin` on its own monotonic clock, the
//! leader's record of it until `now + duration + margin` on the leader's: that is safe only while
//! the two clocks run at nearly the same rate (see "Read leases" in `docs/architecture.md`). The
//! leader puts its monotonic clock in a header of every lease grant ([`CLOCK_HEADER`]); the
//! holder compares the leader's elapsed time with its own between grants several renewals apart
//! and, when the rates differ by more than [`DriftMonitor::bound_ppm`], stops serving reads
//! under the lease (they ask the leader for a read index instead) until the rates agree again.
//! The leader measures the other way round with the same [`RateWindow`] (`follower_clocks`):
//! followers put their clock in the same header of their lease requests.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::locks::lock;
use crate::node_id::NodeId;

/// Response header of a lease grant carrying the leader's monotonic clock, in ms since the
/// leader's process started ([`clock_reading_ms`]). A header, not a field of the bincode
/// `LeaseGrant`, so the wire body stays what older peers send and expect.
pub const CLOCK_HEADER: &str = "x-meridian-clock-ms";

/// This process's monotonic clock in ms since its first reading: what a leader puts in
/// [`CLOCK_HEADER`]. Only differences between readings of one process mean anything.
pub fn clock_reading_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Most samples kept of one clock (a follower's grants, a leader's lease requests): the window the rate is measured over is at most this many
/// renewals (eight lease periods), long enough that round-trip jitter is small against it.
const MAX_SAMPLES: usize = 32;

/// How often, at most, a node that keeps measuring drift past the bound warns about it.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// One reading of another node's clock, placed on this node's clock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    /// The earliest this node's clock could read when the other node read its own.
    pub(crate) sent: Instant,
    /// The latest it could read then.
    pub(crate) received: Instant,
    /// The other node's clock reading, ms (somewhere between `sent` and `received`).
    pub(crate) remote_ms: u64,
}

/// What [`RateWindow::measure`] found: how much faster the other clock ran than ours.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Measurement {
    /// The rate difference, ppm (positive: the other clock is faster, ours slow).
    pub(crate) estimate_ppm: f64,
    /// Its uncertainty from the sample intervals, ppm.
    pub(crate) uncertainty_ppm: f64,
    /// The stretch of this node's time it spans.
    pub(crate) window: Duration,
    /// Whether the other clock's elapsed time was negative (never a real clock).
    pub(crate) backwards: bool,
}

impl Measurement {
    /// The verdict for `bound_ppm`, given the one before (kept while too uncertain to tell).
    pub(crate) fn verdict(&self, bound_ppm: u64, before: DriftVerdict) -> DriftVerdict {
        let bound = bound_ppm as f64;
        if self.estimate_ppm.abs() - self.uncertainty_ppm > bound || self.backwards {
            DriftVerdict::Exceeded
        } else if self.estimate_ppm.abs() + self.uncertainty_ppm <= bound {
            DriftVerdict::WithinBound
        } else {
            before
        }
    }
}

/// The last [`MAX_SAMPLES`] readings of one other process's clock: the rate measurement both
/// ends of a lease use (a follower of its leader's clock, the leader of each follower's).
#[derive(Debug, Default)]
pub(crate) struct RateWindow {
    /// Oldest first.
    samples: VecDeque<Sample>,
}

impl RateWindow {
    /// Adds `sample`; returns false when the reading went back, which means the other process
    /// restarted (its clock counts from its start): the window then starts afresh from it.
    pub(crate) fn push(&mut self, sample: Sample) -> bool {
        let continuous = self.samples.back().is_none_or(|last| sample.remote_ms >= last.remote_ms);
        if !continuous {
            self.samples.clear();
        }
        self.samples.push_back(sample);
        while self.samples.len() > MAX_SAMPLES {
            self.samples.pop_front();
        }
        continuous
    }

    /// Forgets every sample.
    pub(crate) fn clear(&mut self) {
        self.samples.clear();
    }

    /// The rate of the other clock against ours between the oldest and the newest sample, once
    /// they span at least `min_window` of our time.
    pub(crate) fn measure(&self, min_window: Duration) -> Option<Measurement> {
        let (&oldest, &newest) = (self.samples.front()?, self.samples.back()?);
        let local = midpoint(newest).saturating_duration_since(midpoint(oldest));
        if local < min_window || local.is_zero() {
            return None;
        }
        let local_ms = local.as_secs_f64() * 1000.0;
        let remote_elapsed = newest.remote_ms as f64 - oldest.remote_ms as f64;
        // The other node read its clock somewhere within each sample's interval: half of each
        // adds to the uncertainty of the elapsed time, plus a millisecond of the header's
        // rounding.
        let span = |s: Sample| s.received.saturating_duration_since(s.sent).as_secs_f64() * 1000.0;
        Some(Measurement {
            estimate_ppm: (remote_elapsed / local_ms - 1.0) * 1e6,
            uncertainty_ppm: ((span(oldest) + span(newest)) / 2.0 + 1.0) / local_ms * 1e6,
            window: local,
            backwards: remote_elapsed < 0.0,
        })
    }
}

/// Whether this node's clock may be trusted for its lease, as last measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftVerdict {
    /// Not measured yet against the current leader (just started, or a new leader): the lease
    /// is not used until the window is long enough to tell.
    Unmeasured,
    /// The rates agree within the bound: the lease is used.
    WithinBound,
    /// The rates differ by more than the bound: the lease is not used.
    Exceeded,
}

/// The measurements of one leader (one leader in one term: its clock is only comparable with
/// itself, and a restarted leader is a new term).
#[derive(Debug)]
struct Window {
    /// The leader and term the samples come from.
    source: Option<(NodeId, u64)>,
    /// The grants as clock samples.
    samples: RateWindow,
    /// The verdict of the last measurement.
    verdict: DriftVerdict,
    /// The last estimate: how much faster the leader's clock ran than ours, ppm (positive: ours
    /// is slow, so our lease outlasts the leader's record of it).
    estimate_ppm: Option<i64>,
    /// The uncertainty of that estimate from the round trips, ppm.
    uncertainty_ppm: Option<u64>,
    /// When the last warning about drift was logged.
    warned_at: Option<Instant>,
}

/// What [`DriftMonitor::snapshot`] reports, for status and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DriftReport {
    /// See [`DriftVerdict`].
    pub(crate) verdict: DriftVerdict,
    /// The last estimate, ppm (see `Window::estimate_ppm`).
    pub(crate) estimate_ppm: Option<i64>,
    /// The bound past which the lease is not used, ppm.
    pub(crate) bound_ppm: u64,
    /// How many times the verdict turned to [`DriftVerdict::Exceeded`].
    pub(crate) episodes: u64,
}

/// Measures this node's clock rate against its lease grantor's and says whether the lease may
/// be used.
#[derive(Debug)]
pub(crate) struct DriftMonitor {
    /// Largest rate difference, ppm, under which the lease is used.
    bound_ppm: u64,
    /// Shortest stretch of this node's time a measurement must span before it gives a verdict.
    min_window: Duration,
    /// The measurements of the current leader.
    window: Mutex<Window>,
    /// How many times the verdict turned to exceeded (for metrics: each is a warning).
    episodes: AtomicU64,
}

impl DriftMonitor {
    /// A monitor for leases of `duration` with safety margin `margin`.
    ///
    /// The margin absorbs a rate difference of up to `2 * margin / (duration + margin)`: the
    /// holder's lease ends `duration - margin` after it asked (its clock), the leader's record
    /// `duration + margin` after the grant (the leader's clock). The bound is half the smaller
    /// figure `margin / duration`, so that the rest of the margin still covers scheduling delays
    /// and the uncertainty of the measurement: about 5.6% for a 400 ms lease.
    pub(crate) fn new(duration: Duration, margin: Duration) -> Self {
        Self {
            bound_ppm: bound_ppm(duration, margin),
            min_window: min_window(duration),
            window: Mutex::new(Window {
                source: None,
                samples: RateWindow::default(),
                verdict: DriftVerdict::Unmeasured,
                estimate_ppm: None,
                uncertainty_ppm: None,
                warned_at: None,
            }),
            episodes: AtomicU64::new(0),
        }
    }

    /// The bound, ppm.
    #[cfg(test)]
    pub(crate) fn bound_ppm(&self) -> u64 {
        self.bound_ppm
    }

    /// Records a grant of `leader` in `term`, asked at `sent` and answered at `received` (this
    /// node's clock) with the leader's clock reading `leader_ms` (`None`: a leader of a release
    /// without the header, whose rate cannot be measured; its leases are used as before).
    pub(crate) fn observe(
        &self,
        leader: NodeId,
        term: u64,
        sent: Instant,
        received: Instant,
        leader_ms: Option<u64>,
    ) -> DriftVerdict {
        let mut w = lock(&self.window);
        if w.source != Some((leader, term)) {
            w.source = Some((leader, term));
            w.samples.clear();
            w.verdict = DriftVerdict::Unmeasured;
            w.estimate_ppm = None;
            w.uncertainty_ppm = None;
        }
        let Some(leader_ms) = leader_ms else {
            w.verdict = DriftVerdict::WithinBound;
            return w.verdict;
        };
        if !w.samples.push(Sample { sent, received, remote_ms: leader_ms }) {
            // The leader's clock counts from its process start: a reading that goes back means
            // it restarted (openraft lets a leader killed within the election timeout come back
            // as leader of the same term). Not drift: measure its rate afresh, the lease unused
            // meanwhile.
            tracing::info!(leader, term, "the leader's clock went back (it restarted): measuring its rate afresh");
            w.verdict = DriftVerdict::Unmeasured;
            w.estimate_ppm = None;
            w.uncertainty_ppm = None;
        }
        let Some(m) = w.samples.measure(self.min_window) else { return w.verdict };
        let before = w.verdict;
        w.verdict = m.verdict(self.bound_ppm, before);
        let local = m.window;
        let (estimate, uncertainty) = (m.estimate_ppm, m.uncertainty_ppm);
        w.estimate_ppm = Some(estimate.round() as i64);
        w.uncertainty_ppm = Some(uncertainty.round() as u64);
        let now = Instant::now();
        if w.verdict == DriftVerdict::Exceeded {
            if before != DriftVerdict::Exceeded {
                self.episodes.fetch_add(1, Ordering::Relaxed);
            }
            if before != DriftVerdict::Exceeded || w.warned_at.is_none_or(|at| now.duration_since(at) >= WARN_EVERY) {
                w.warned_at = Some(now);
                tracing::warn!(
                    leader,
                    term,
                    drift_ppm = w.estimate_ppm,
                    uncertainty_ppm = w.uncertainty_ppm,
                    bound_ppm = self.bound_ppm,
                    window_ms = local.as_millis() as u64,
                    "this node's clock rate differs from the leader's past the lease bound: reads ask the leader instead of using the read lease"
                );
            }
        } else if before == DriftVerdict::Exceeded && w.verdict == DriftVerdict::WithinBound {
            tracing::info!(
                leader,
                term,
                drift_ppm = w.estimate_ppm,
                bound_ppm = self.bound_ppm,
                "clock rate back within the lease bound: reads use the read lease again"
            );
        }
        w.verdict
    }

    /// Whether reads may rest on a lease granted by `leader` in `term`.
    pub(crate) fn lease_usable(&self, leader: NodeId, term: u64) -> bool {
        let w = lock(&self.window);
        w.source == Some((leader, term)) && w.verdict == DriftVerdict::WithinBound
    }

    /// The last measurement, for status and metrics.
    pub(crate) fn report(&self) -> DriftReport {
        let w = lock(&self.window);
        DriftReport {
            verdict: w.verdict,
            estimate_ppm: w.estimate_ppm,
            bound_ppm: self.bound_ppm,
            episodes: self.episodes.load(Ordering::Relaxed),
        }
    }
}

/// The drift bound, ppm, for leases of `duration` with safety margin `margin`: half of
/// `margin / duration` as a rate (see [`DriftMonitor::new`]); 0 with leases off.
pub(crate) fn bound_ppm(duration: Duration, margin: Duration) -> u64 {
    if duration.is_zero() {
        0
    } else {
        u64::try_from(margin.as_micros() * 500_000 / duration.as_micros()).unwrap_or(u64::MAX)
    }
}

/// The shortest stretch of time a measurement must span before it gives a verdict: two leases,
/// so that the jitter of a few samples is small against it.
pub(crate) fn min_window(duration: Duration) -> Duration {
    duration * 2
}

/// The middle of a sample's interval: the best guess of when the other node read its clock.
fn midpoint(s: Sample) -> Instant {
    s.sent + s.received.saturating_duration_since(s.sent) / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Duration = Duration::from_millis(400);
    const RENEW: Duration = Duration::from_millis(100);
    const RTT: Duration = Duration::from_millis(2);

    fn monitor() -> DriftMonitor {
        DriftMonitor::new(D, D / 10 + Duration::from_millis(5))
    }

    /// Feeds `n` grants one renewal apart on our clock, starting at `start`, whose leader clock
    /// runs at `rate` times ours; returns the last verdict and the next start.
    fn feed(m: &DriftMonitor, term: u64, start: Instant, leader_start: u64, rate: f64, n: u32) -> DriftVerdict {
        let mut verdict = DriftVerdict::Unmeasured;
        for i in 0..n {
            let sent = start + RENEW * i;
            let elapsed_ms = (RENEW * i).as_secs_f64() * 1000.0 + 1.0;
            let leader_ms = leader_start + (elapsed_ms * rate) as u64;
            verdict = m.observe(1, term, sent, sent + RTT, Some(leader_ms));
        }
        verdict
    }

    #[test]
    fn the_bound_is_half_the_margin_as_a_rate() {
        // margin 45 ms of 400 ms: 11.25% as a rate, half of it is the bound.
        assert_eq!(monitor().bound_ppm(), 56_250);
        assert_eq!(DriftMonitor::new(Duration::ZERO, Duration::from_millis(5)).bound_ppm(), 0);
    }

    #[test]
    fn agreeing_clocks_make_the_lease_usable_only_after_a_long_enough_window() {
        let m = monitor();
        let t = Instant::now();
        assert_eq!(feed(&m, 3, t, 1_000, 1.0, 3), DriftVerdict::Unmeasured, "two renewals cannot tell");
        assert!(!m.lease_usable(1, 3));
        assert_eq!(feed(&m, 3, t, 1_000, 1.0, 12), DriftVerdict::WithinBound);
        assert!(m.lease_usable(1, 3));
        assert!(!m.lease_usable(2, 3), "another leader");
        assert!(!m.lease_usable(1, 4), "another term");
        let r = m.report();
        assert!(r.estimate_ppm.is_some_and(|e| e.abs() < 5_000), "{r:?}");
    }

    #[test]
    fn drift_within_the_bound_keeps_the_lease_and_past_it_stops_it_until_it_is_back() {
        let m = monitor();
        let t = Instant::now();
        assert_eq!(feed(&m, 1, t, 0, 1.02, 20), DriftVerdict::WithinBound, "2% is inside the bound");
        let m = monitor();
        assert_eq!(feed(&m, 1, t, 0, 1.25, 20), DriftVerdict::Exceeded, "our clock 20% slow");
        assert!(!m.lease_usable(1, 1));
        assert_eq!(m.report().episodes, 1);
        let m = monitor();
        assert_eq!(feed(&m, 1, t, 0, 0.8, 20), DriftVerdict::Exceeded, "our clock 25% fast");
        // The rate comes back: once the window holds only agreeing samples, the lease is used.
        let later = t + RENEW * 20;
        let leader_now = (RENEW * 20).as_millis() as u64 * 8 / 10;
        assert_eq!(feed(&m, 1, later, leader_now, 1.0, MAX_SAMPLES as u32 + 1), DriftVerdict::WithinBound);
        assert!(m.lease_usable(1, 1));
        assert_eq!(m.report().episodes, 1);
    }

    #[test]
    fn a_leader_clock_that_goes_back_starts_a_new_window_and_a_huge_round_trip_never_makes_the_lease_usable() {
        let m = monitor();
        let t = Instant::now();
        feed(&m, 1, t, 1_000_000, 1.0, 12);
        assert!(m.lease_usable(1, 1));
        // A clock reading that goes back (the leader restarted, or a broken header) starts a new
        // window: the lease stays unused until the new one is long enough, and it is no drift.
        let restart = t + RENEW * 12;
        assert_eq!(m.observe(1, 1, restart, restart + RTT, Some(5)), DriftVerdict::Unmeasured);
        assert!(!m.lease_usable(1, 1));
        assert_eq!(m.report().episodes, 0, "a restart is not a drift episode");
        assert_eq!(feed(&m, 1, restart + RENEW, 5 + RENEW.as_millis() as u64, 1.0, 12), DriftVerdict::WithinBound);
        assert!(m.lease_usable(1, 1));
        // Round trips as long as the window: too uncertain to tell, the lease stays unused.
        let m = monitor();
        for i in 0..12 {
            let sent = t + RENEW * i;
            m.observe(1, 2, sent, sent + Duration::from_millis(900), Some(u64::from(i) * 100));
        }
        assert!(!m.lease_usable(1, 2));
    }

    #[test]
    fn a_leader_without_the_header_is_trusted_as_before() {
        let m = monitor();
        let t = Instant::now();
        assert_eq!(m.observe(1, 1, t, t + RTT, None), DriftVerdict::WithinBound);
        assert!(m.lease_usable(1, 1));
    }
}
