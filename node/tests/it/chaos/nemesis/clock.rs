//! Faults of a node's clocks: each event restarts one random node (kill -9, same data dir)
//! under libfaketime with a random wall-clock offset and a rate either inside the drift bound
//! the read leases tolerate or past it; healing restarts it at the real rate. libfaketime fixes
//! the rate when the process starts (see `harness::faketime`), so both ends of an event are
//! restarts. Past the bound the node must notice and stop reading under its lease; inside it the
//! lease stays safe; either way the checker must see no stale read.

use futures::future::LocalBoxFuture;

use crate::harness::cluster::TestCluster;
use crate::harness::faketime::ClockSkew;
use crate::harness::{Launch, XorShift};

use super::Nemesis;

/// The largest wall-clock offset an event draws, ms (either sign).
const MAX_OFFSET_MS: u64 = 500;
/// Rates past the drift bound: 0.7 s of the node's time per real second, and 1.3.
const PAST_THE_BOUND: [f64; 2] = [0.7, 1.3];

/// Restarts one node per event under a skewed clock; heals by restarting it on the real clock.
pub(crate) struct ClockNemesis {
    /// The libfaketime preload library.
    library: std::path::PathBuf,
    /// How each node is started with the real clock (a network namespace wrapper when the
    /// cluster runs on `NetHosts`); the skew is added to it, and healing goes back to it.
    base: [Launch; 3],
    /// The node running skewed, to be healed.
    skewed: Option<usize>,
}

impl ClockNemesis {
    /// A nemesis preloading `library`, nodes otherwise started as `base` says.
    pub(crate) fn new(library: std::path::PathBuf, base: [Launch; 3]) -> Self {
        ClockNemesis { library, base, skewed: None }
    }
}

/// A random clock: an offset of up to ±[`MAX_OFFSET_MS`] and, with even odds, a rate inside
/// the bound (x0.98..x1.02) or one of [`PAST_THE_BOUND`]; the skew and whether it is past.
pub(crate) fn draw_skew(rng: &mut XorShift) -> (ClockSkew, bool) {
    let offset_ms = rng.below(2 * MAX_OFFSET_MS + 1) as i64 - MAX_OFFSET_MS as i64;
    let past = rng.below(2) == 0;
    let rate = if past {
        PAST_THE_BOUND[rng.below(PAST_THE_BOUND.len() as u64) as usize]
    } else {
        // 0.980 to 1.020 in steps of 0.001.
        0.98 + rng.below(41) as f64 / 1000.0
    };
    (ClockSkew { spec: format!("{:+.3} x{rate:.3}", offset_ms as f64 / 1000.0) }, past)
}

impl Nemesis for ClockNemesis {
    fn inject<'a>(&'a mut self, cluster: &'a TestCluster, rng: &'a mut XorShift) -> LocalBoxFuture<'a, String> {
        Box::pin(async move {
            let victim = rng.below(3) as usize;
            let (skew, past) = draw_skew(rng);
            let mut launch = skew.launch(&self.library);
            launch.wrapper = self.base[victim].wrapper.clone();
            launch.env.extend(self.base[victim].env.iter().cloned());
            let node = cluster.node(victim);
            node.set_launch(launch);
            self.skewed = Some(victim);
            node.restart().await;
            let bound = if past { "past the drift bound" } else { "inside the drift bound" };
            format!("restarted node {victim} with FAKETIME=\"{}\" ({bound})", skew.spec)
        })
    }

    fn heal<'a>(&'a mut self, cluster: &'a TestCluster) -> LocalBoxFuture<'a, ()> {
        Box::pin(async move {
            if let Some(victim) = self.skewed.take() {
                let node = cluster.node(victim);
                node.set_launch(self.base[victim].clone());
                node.restart().await;
            }
        })
    }

    fn hold_ms(&self) -> Option<(u64, u64)> {
        // Long enough for the drift estimate (a window of 32 lease renewals of 100 ms) to
        // judge the rate, so that both the lease reads and the refusal past the bound happen.
        Some((3000, 6000))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every drawn clock stays within the offsets and rates the nemesis claims, both kinds of
    /// rate come up, and the spec is one libfaketime reads (`+S.mmm xR.rrr`).
    #[test]
    fn drawn_skews_stay_within_their_bounds() {
        let mut rng = XorShift::new(29);
        let (mut inside, mut past) = (0, 0);
        for _ in 0..1000 {
            let (skew, is_past) = draw_skew(&mut rng);
            let (offset, rate) = skew.spec.split_once(" x").expect("offset and rate");
            assert!(offset.starts_with(['+', '-']), "{}", skew.spec);
            let offset: f64 = offset.parse().expect("offset");
            let rate: f64 = rate.parse().expect("rate");
            assert!(offset.abs() <= 0.5, "{}", skew.spec);
            if is_past {
                past += 1;
                assert!(rate == 0.7 || rate == 1.3, "{}", skew.spec);
            } else {
                inside += 1;
                assert!((0.98..=1.02).contains(&rate), "{}", skew.spec);
            }
        }
        assert!(inside > 300 && past > 300, "{inside} inside, {past} past");
    }
}
