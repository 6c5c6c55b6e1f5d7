//! Faults of the node process: `kill -9` then a restart on the same data dir, and SIGSTOP then
//! SIGCONT (a node that hangs: connections to it open and nothing answers), aimed at the leader
//! or at a random node.

use std::time::Duration;

use futures::future::LocalBoxFuture;

use crate::harness::cluster::TestCluster;
use crate::harness::{Frozen, XorShift};

use super::{Nemesis, current_leader};

/// What is done to the victim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// SIGKILL; healing restarts it on the same data dir.
    Kill,
    /// SIGSTOP; healing sends SIGCONT.
    Freeze,
}

/// Who the victim is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// The node the cluster agrees leads (a random node when there is no agreed leader).
    Leader,
    /// Any node.
    Random,
}

/// A fault in place, to be healed.
enum Active {
    /// Node index that was killed.
    Killed(usize),
    /// A frozen node; dropping the guard thaws it.
    Frozen(Frozen),
}

/// Kills or freezes one node per event, choosing among `actions` and `targets`.
pub(crate) struct ProcessNemesis {
    /// The actions to choose from.
    actions: Vec<Action>,
    /// The targets to choose from.
    targets: Vec<Target>,
    /// The fault in place.
    active: Option<Active>,
}

impl ProcessNemesis {
    /// A nemesis choosing among `actions` and `targets` at each event.
    pub(crate) fn new(actions: &[Action], targets: &[Target]) -> Self {
        ProcessNemesis { actions: actions.to_vec(), targets: targets.to_vec(), active: None }
    }
}

impl Nemesis for ProcessNemesis {
    fn inject<'a>(&'a mut self, cluster: &'a TestCluster, rng: &'a mut XorShift) -> LocalBoxFuture<'a, String> {
        Box::pin(async move {
            let action = self.actions[rng.below(self.actions.len() as u64) as usize];
            let target = self.targets[rng.below(self.targets.len() as u64) as usize];
            let random = rng.below(3) as usize;
            let (victim, role) = match target {
                Target::Leader => match current_leader(cluster, Duration::from_secs(5)).await {
                    Some(leader) => (leader, "the leader"),
                    None => (random, "random: no agreed leader"),
                },
                Target::Random => (random, "random"),
            };
            let node = cluster.node(victim);
            match action {
                Action::Kill => {
                    node.kill9();
                    self.active = Some(Active::Killed(victim));
                    format!("kill -9 node {victim} ({role})")
                }
                Action::Freeze => {
                    self.active = Some(Active::Frozen(node.freeze()));
                    format!("SIGSTOP node {victim} ({role})")
                }
            }
        })
    }

    fn heal<'a>(&'a mut self, cluster: &'a TestCluster) -> LocalBoxFuture<'a, ()> {
        Box::pin(async move {
            match self.active.take() {
                Some(Active::Killed(i)) => cluster.node(i).restart().await,
                Some(Active::Frozen(frozen)) => drop(frozen),
                None => {}
            }
        })
    }
}
