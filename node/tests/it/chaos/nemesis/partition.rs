//! Faults of the network between the nodes: the cluster runs on three hosts of network
//! namespaces ([`NetHosts`], root only) and each event cuts links with nft rules inside the
//! hosts, in one of the shapes of [`Shape`], then heals every cut. The test's own clients sit in
//! the root namespace, which is never cut, so they keep reaching every node: a request through
//! a node cut off from the majority is answered by that node (a 503 after the commit timeout),
//! which is what the checker has to see.

use std::time::Duration;

use futures::future::LocalBoxFuture;

use crate::harness::XorShift;
use crate::harness::cluster::TestCluster;
use crate::harness::netns::NetHosts;

use super::{Nemesis, current_leader};

/// The shapes of cut one event chooses among.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// The leader cut from both others: the old leader must stop serving, the two elect.
    IsolateLeader,
    /// Any node cut from both others.
    IsolateRandom,
    /// A follower in the minority, the leader and the other follower in the majority (with
    /// three nodes a split is one against two; this is the split where the leader keeps its
    /// quorum, so the minority is a follower that must refuse rather than serve what it knows).
    SplitFollowerMinority,
    /// Two nodes cannot see each other; the third (the bridge) sees both.
    Bridge,
    /// Packets from the leader to one follower are dropped (the other way flows).
    OneWayFromLeader,
    /// Packets from one follower to the leader are dropped (the other way flows).
    OneWayToLeader,
}

/// Every shape, in the order an event draws from.
pub(crate) const SHAPES: [Shape; 6] = [
    Shape::IsolateLeader,
    Shape::IsolateRandom,
    Shape::SplitFollowerMinority,
    Shape::Bridge,
    Shape::OneWayFromLeader,
    Shape::OneWayToLeader,
];

/// Cuts links of `net` at each event, in a random [`Shape`]; heals every cut.
pub(crate) struct PartitionNemesis<'n> {
    /// The hosts the cluster runs on; their nft tables hold the cuts.
    net: &'n NetHosts,
    /// Whether a cut is in place (heal does nothing otherwise).
    cut: bool,
}

impl<'n> PartitionNemesis<'n> {
    /// A nemesis cutting links of `net` (the cluster must have been started inside it).
    pub(crate) fn new(net: &'n NetHosts) -> Self {
        PartitionNemesis { net, cut: false }
    }
}

/// The two nodes other than `a`, in index order.
fn others(a: usize) -> [usize; 2] {
    match a {
        0 => [1, 2],
        1 => [0, 2],
        _ => [0, 1],
    }
}

impl Nemesis for PartitionNemesis<'_> {
    fn inject<'a>(&'a mut self, cluster: &'a TestCluster, rng: &'a mut XorShift) -> LocalBoxFuture<'a, String> {
        Box::pin(async move {
            let shape = SHAPES[rng.below(SHAPES.len() as u64) as usize];
            // Every draw is made whatever the shape, so a seed fixes the same choices whatever
            // the leader turned out to be.
            let random = rng.below(3) as usize;
            let pick = rng.below(2) as usize;
            let (leader, role) = match current_leader(cluster, Duration::from_secs(5)).await {
                Some(leader) => (leader, "leader"),
                // No agreed leader (an election under way): aim at a random node instead.
                None => (random, "random: no agreed leader"),
            };
            let follower = others(leader)[pick];
            self.cut = true;
            match shape {
                Shape::IsolateLeader => {
                    self.net.isolate(leader);
                    format!("isolated node {leader} ({role})")
                }
                Shape::IsolateRandom => {
                    self.net.isolate(random);
                    format!("isolated node {random} (random)")
                }
                Shape::SplitFollowerMinority => {
                    self.net.isolate(follower);
                    let [a, b] = others(follower);
                    format!("split: node {follower} (follower) | nodes {a}, {b} (with the {role} {leader})")
                }
                Shape::Bridge => {
                    let [a, b] = others(random);
                    self.net.cut(a, b);
                    format!("bridge: nodes {a} and {b} cut from each other, node {random} sees both ({role} {leader})")
                }
                Shape::OneWayFromLeader => {
                    self.net.cut_one_way(leader, follower);
                    format!("one-way loss from node {leader} ({role}) to node {follower}")
                }
                Shape::OneWayToLeader => {
                    self.net.cut_one_way(follower, leader);
                    format!("one-way loss from node {follower} to node {leader} ({role})")
                }
            }
        })
    }

    fn heal<'a>(&'a mut self, cluster: &'a TestCluster) -> LocalBoxFuture<'a, ()> {
        Box::pin(async move {
            if !std::mem::take(&mut self.cut) {
                return;
            }
            self.net.heal();
            // Bounded: a cluster that finds no leader again shows in the final reads, which
            // record it as an anomaly, rather than stopping the run here.
            if current_leader(cluster, Duration::from_secs(20)).await.is_none() {
                println!("[chaos] no agreed leader within 20 s of healing a partition");
            }
        })
    }

    fn hold_ms(&self) -> Option<(u64, u64)> {
        Some((1000, 4000))
    }
}
