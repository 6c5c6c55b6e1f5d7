//! Latency percentiles and throughput figures for one workload.

use std::time::Duration;

/// The value at percentile `p` (0..=100) of `sorted` (ascending), by the nearest-rank method:
/// the smallest sample such that at least `p` % of the samples are less than or equal to it.
/// `None` when there are no samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    let p = p.clamp(0.0, 100.0);
    // Rank 1..=n; p = 0 maps to the smallest sample.
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    let index = rank.clamp(1, n) - 1;
    sorted.get(index).copied()
}

/// Summary of the per-operation latencies of one workload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencySummary {
    /// Arithmetic mean latency (the WAN benchmark reports it beside the percentiles).
    pub mean: Duration,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// Largest latency seen.
    pub max: Duration,
}

impl LatencySummary {
    /// Summarises `samples` (any order); `None` when there are none.
    pub fn from_samples(samples: &[Duration]) -> Option<Self> {
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let max = *sorted.last()?;
        let mean = sorted.iter().sum::<Duration>() / u32::try_from(sorted.len()).ok()?;
        Some(Self { mean, p50: percentile(&sorted, 50.0)?, p99: percentile(&sorted, 99.0)?, max })
    }
}

/// Operations per second for `ops` operations finished in `wall`; 0 for an empty interval.
pub fn per_second(ops: u64, wall: Duration) -> f64 {
    let secs = wall.as_secs_f64();
    if secs > 0.0 { ops as f64 / secs } else { 0.0 }
}

/// Megabytes (10^6 bytes, as `dd` counts them) per second for `bytes` moved in `wall`.
pub fn megabytes_per_second(bytes: u64, wall: Duration) -> f64 {
    per_second(bytes, wall) / 1_000_000.0
}

/// A duration as fractional milliseconds, for output.
pub fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Durations of 1..=n milliseconds, in ascending order.
    fn ms_range(n: u64) -> Vec<Duration> {
        (1..=n).map(Duration::from_millis).collect()
    }

    #[test]
    fn empty_has_no_percentile() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(LatencySummary::from_samples(&[]), None);
    }

    #[test]
    fn single_sample_is_every_percentile() {
        let one = [Duration::from_millis(7)];
        for p in [0.0, 1.0, 50.0, 99.0, 100.0] {
            assert_eq!(percentile(&one, p), Some(Duration::from_millis(7)));
        }
    }

    #[test]
    fn nearest_rank_on_one_to_hundred() {
        let v = ms_range(100);
        assert_eq!(percentile(&v, 0.0), Some(Duration::from_millis(1)));
        assert_eq!(percentile(&v, 1.0), Some(Duration::from_millis(1)));
        assert_eq!(percentile(&v, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&v, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&v, 100.0), Some(Duration::from_millis(100)));
    }

    #[test]
    fn nearest_rank_rounds_up() {
        // n = 10: p50 -> rank 5, p99 -> rank ceil(9.9) = 10, p51 -> rank ceil(5.1) = 6.
        let v = ms_range(10);
        assert_eq!(percentile(&v, 50.0), Some(Duration::from_millis(5)));
        assert_eq!(percentile(&v, 51.0), Some(Duration::from_millis(6)));
        assert_eq!(percentile(&v, 99.0), Some(Duration::from_millis(10)));
        // n = 2000: p99 -> rank 1980.
        let v = ms_range(2000);
        assert_eq!(percentile(&v, 99.0), Some(Duration::from_millis(1980)));
        assert_eq!(percentile(&v, 50.0), Some(Duration::from_millis(1000)));
    }

    #[test]
    fn out_of_range_p_is_clamped() {
        let v = ms_range(4);
        assert_eq!(percentile(&v, -5.0), Some(Duration::from_millis(1)));
        assert_eq!(percentile(&v, 250.0), Some(Duration::from_millis(4)));
    }

    #[test]
    fn summary_sorts_its_input() {
        let mut v = ms_range(100);
        v.reverse();
        let s = LatencySummary::from_samples(&v);
        assert_eq!(
            s,
            Some(LatencySummary {
                mean: Duration::from_micros(50_500),
                p50: Duration::from_millis(50),
                p99: Duration::from_millis(99),
                max: Duration::from_millis(100),
            })
        );
    }

    #[test]
    fn rates() {
        assert_eq!(per_second(500, Duration::from_millis(250)), 2000.0);
        assert_eq!(per_second(5, Duration::ZERO), 0.0);
        assert_eq!(megabytes_per_second(64_000_000, Duration::from_secs(2)), 32.0);
        assert_eq!(millis(Duration::from_micros(1500)), 1.5);
    }
}
