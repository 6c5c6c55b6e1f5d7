//! Clock offset against a peer, from the `Date` header of its web listener's `/healthz`.
//!
//! `Date` has one-second resolution, so a single answer says little. Polling until the peer's
//! Date ticks over to the next second pins the moment the peer's clock read exactly that second:
//! it lies between the previous request leaving and the ticked answer arriving (Cristian's method
//! on the tick's edge). The precision is about one round trip.
//!
//! Meridian's read leases compare clocks only with themselves (monotonic), so an offset does not
//! break them by itself; but request signatures (30 s window), tokens and presigned URLs use wall
//! time, and a host whose clock is off usually also drifts, which is what the lease margin
//! covers. So the bound doctor holds an offset to is that margin.

use std::time::{Duration, SystemTime};

use super::probe::HttpConnection;
use super::{Finding, Host};
use crate::config::{ClusterConfig, RegionConfig};

/// How long a peer is polled for its tick (after connecting).
const POLL_FOR: Duration = Duration::from_millis(1500);

/// Pause between requests: keeps a loopback peer from being hammered, and costs ~1 ms of precision.
const PAUSE: Duration = Duration::from_millis(1);

/// Offsets above this are reported (WARN).
const WARN_ABOVE: Duration = Duration::from_millis(100);

/// One request: when it left and its answer came back (local wall time, seconds since the Unix
/// epoch), and the peer's `Date` in it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Sample {
    /// Local time the request was sent.
    pub(super) sent: f64,
    /// Local time the answer arrived.
    pub(super) received: f64,
    /// The peer's `Date`, whole seconds.
    pub(super) date: i64,
}

/// A measured offset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Offset {
    /// Peer's clock minus ours, seconds (positive: the peer is ahead).
    pub(super) offset: f64,
    /// Half the width of the interval the true offset lies in, seconds.
    pub(super) uncertainty: f64,
}

/// The offset from consecutive samples where the peer's Date ticked over: its clock read
/// exactly `later.date` at some local time between `earlier.sent` (the earlier answer was
/// stamped after that, and before the tick) and `later.received` (the later one was stamped at
/// or after the tick, and before that). The middle of that interval is the estimate. Of several
/// ticks, the tightest. `None` when the Date never ticked.
pub(super) fn tick_edge(samples: &[Sample]) -> Option<Offset> {
    samples
        .windows(2)
        .filter(|pair| pair[1].date > pair[0].date)
        .map(|pair| {
            let (from, to) = (pair[0].sent, pair[1].received);
            Offset { offset: pair[1].date as f64 - (from + to) / 2.0, uncertainty: (to - from) / 2.0 }
        })
        .min_by(|a, b| a.uncertainty.total_cmp(&b.uncertainty))
}

/// The offset the cluster tolerates: the read-lease safety margin (docs/architecture.md, "Read
/// leases": a tenth of the lease plus 5 ms, `raft/src/lease.rs`), of the election timeout's
/// lower bound when leases are off (the lease a node would have by default).
pub(super) fn drift_bound(config: &ClusterConfig) -> Duration {
    let timing = config.timing();
    let lease = if timing.read_lease.is_zero() { timing.election_min } else { timing.read_lease };
    lease / 10 + Duration::from_millis(5)
}

/// What an offset means: OK, WARN above 100 ms, FAIL above `bound`.
pub(super) fn judge(peer: &str, offset: Offset, bound: Duration) -> Finding {
    let check = format!("clock.{peer}");
    let ms = offset.offset * 1000.0;
    let side = if ms >= 0.0 { "ahead of" } else { "behind" };
    let detail = format!("{peer} is {:.1} ms {side} this host (± {:.1} ms)", ms.abs(), offset.uncertainty * 1000.0);
    let fix = "run NTP (chrony or systemd-timesyncd) on both hosts against the same servers";
    let off = Duration::from_secs_f64(offset.offset.abs());
    if off > bound {
        Finding::fail(
            check,
            format!("{detail}: more than the read-lease safety margin of {} ms", bound.as_millis()),
            fix,
        )
    } else if off > WARN_ABOVE {
        Finding::warn(check, format!("{detail}: more than {} ms", WARN_ABOVE.as_millis()), fix)
    } else {
        Finding::ok(check, detail)
    }
}

/// Measures and judges the offset against `peer`: its web listener over plain HTTP on loopback,
/// else HTTPS trusting the cluster CA.
pub(super) async fn check(host: &Host<'_>, peer: &RegionConfig) -> Finding {
    let check = format!("clock.{}", peer.name);
    let plain = peer.web.parse::<std::net::SocketAddr>().is_ok_and(|a| a.ip().to_canonical().is_loopback());
    let mut connection = match HttpConnection::open(&peer.web, plain, host.client_tls()).await {
        Ok(connection) => connection,
        Err(e) => {
            return Finding::warn(check, format!("not measured: web listener {}: {e}", peer.web), "see the peer check");
        }
    };
    let mut samples = Vec::new();
    let deadline = tokio::time::Instant::now() + POLL_FOR;
    while tokio::time::Instant::now() < deadline {
        let sent = now();
        let answer = match connection.get("/healthz").await {
            Ok(answer) => answer,
            Err(e) => return Finding::warn(check, format!("not measured: {}: {e}", peer.web), "see the peer check"),
        };
        let received = now();
        let Some(date) = answer.date else {
            return Finding::warn(
                check,
                format!("not measured: {} sends no Date header", peer.web),
                "is it a meridian node?",
            );
        };
        samples.push(Sample { sent, received, date });
        if let Some(offset) = tick_edge(&samples) {
            return judge(&peer.name, offset, drift_bound(host.config));
        }
        tokio::time::sleep(PAUSE).await;
    }
    Finding::warn(
        check,
        format!(
            "not measured: {}'s Date did not tick within {} ms (round trips too slow?)",
            peer.name,
            POLL_FOR.as_millis()
        ),
        "check the link to that peer",
    )
}

/// Local wall time, seconds since the Unix epoch.
fn now() -> f64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::super::Level;
    use super::*;

    /// Samples of a peer whose clock is `offset` s ahead, polled every `step` s with round trips
    /// of `rtt` s, its answer stamped in the middle of each round trip, from local time `start`.
    fn polled(offset: f64, start: f64, step: f64, rtt: f64, count: usize) -> Vec<Sample> {
        (0..count)
            .map(|i| {
                let sent = start + i as f64 * step;
                let stamped = sent + rtt / 2.0 + offset;
                Sample { sent, received: sent + rtt, date: stamped.floor() as i64 }
            })
            .collect()
    }

    #[test]
    fn the_tick_edge_recovers_the_offset_within_a_round_trip() {
        for offset in [0.0, 0.0123, -0.25, 3.7, -42.042] {
            for (step, rtt) in [(0.002, 0.0005), (0.05, 0.03), (0.21, 0.2)] {
                let samples = polled(offset, 1_796_646_884.31, step, rtt, (1.5 / step) as usize);
                let found = tick_edge(&samples).expect("the Date ticks within 1.5 s");
                assert!((found.offset - offset).abs() <= found.uncertainty + 1e-6, "{offset} {step} {rtt}: {found:?}");
                assert!(found.uncertainty <= (step + rtt) / 2.0 + 1e-6, "{found:?}");
            }
        }
    }

    #[test]
    fn no_tick_no_offset() {
        let samples = polled(0.0, 100.0, 0.01, 0.001, 50);
        assert_eq!(tick_edge(&samples), None, "100.0 .. 100.5: the Date stays at 100");
        assert_eq!(tick_edge(&[]), None);
    }

    #[test]
    fn offsets_are_judged_against_100_ms_and_the_lease_margin() {
        let bound = Duration::from_millis(155);
        let at = |s: f64| judge("virginia", Offset { offset: s, uncertainty: 0.001 }, bound);
        assert_eq!(at(0.004).level, Level::Ok);
        assert_eq!(at(-0.12).level, Level::Warn);
        let fail = at(0.2);
        assert_eq!(fail.level, Level::Fail);
        assert!(
            fail.detail.contains("virginia is 200.0 ms ahead") && fail.detail.contains("155 ms"),
            "{}",
            fail.detail
        );
    }

    #[test]
    fn the_bound_is_the_documented_lease_margin() {
        use crate::config::testing::{VALID, load_str};
        let config = load_str(VALID).expect("valid");
        assert_eq!(drift_bound(&config), Duration::from_millis(155), "lease 1500 ms: 150 + 5");
        let config = load_str(&format!("{VALID}[raft]\nread_lease_ms = 1000\n")).expect("valid");
        assert_eq!(drift_bound(&config), Duration::from_millis(105));
        let config = load_str(&format!("{VALID}[raft]\nread_lease_ms = 0\n")).expect("valid");
        assert_eq!(drift_bound(&config), Duration::from_millis(155), "leases off: the default lease's margin");
    }
}
