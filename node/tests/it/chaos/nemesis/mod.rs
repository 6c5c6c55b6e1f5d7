//! Nemeses: the faults a chaos run injects. Each kind lives in a module of its own and
//! implements [`Nemesis`]: inject one fault, then heal it. The runner calls them in turn, so a
//! new kind is one more module and one more name (the process nemeses in [`by_name`]; the ones
//! that need a cluster of their own, partition and clock, in the runner's `run_named`).

pub(crate) mod clock;
pub(crate) mod disk;
pub(crate) mod partition;
pub(crate) mod process;

use futures::future::LocalBoxFuture;

use crate::harness::XorShift;
use crate::harness::cluster::TestCluster;

/// One kind of fault.
pub(crate) trait Nemesis {
    /// Injects one fault into `cluster` (choosing its victim with `rng`); returns what it did,
    /// for the report. Must leave the fault in place until [`Nemesis::heal`].
    fn inject<'a>(&'a mut self, cluster: &'a TestCluster, rng: &'a mut XorShift) -> LocalBoxFuture<'a, String>;

    /// Undoes the fault injected last (restarts, thaws...), waiting (bounded) until the victim
    /// serves again; does nothing when no fault is in place.
    fn heal<'a>(&'a mut self, cluster: &'a TestCluster) -> LocalBoxFuture<'a, ()>;

    /// How long the fault injected last should stay in place, ms (a random value in this
    /// range); `None` leaves it to the run's `hold_ms`. A kind of fault that needs time to show
    /// (a clock rate the drift estimate must measure) says so here.
    fn hold_ms(&self) -> Option<(u64, u64)> {
        None
    }
}

/// The nemeses a run can be asked for by name (`MERIDIAN_CHAOS_NEMESIS`, `scripts/chaos
/// --nemesis`).
pub(crate) const NAMES: [&str; 10] =
    ["kill", "kill-leader", "freeze", "freeze-leader", "process", "none", "partition", "clock", "all", "mixed"];

/// The process nemesis called `name`: `kill` / `freeze` (a random node), `kill-leader` /
/// `freeze-leader` (the leader), `process` (any of those four), `none` (no faults: a baseline).
/// `partition`, `clock` and `all` (alias `mixed`) need a cluster made for them: the runner's
/// `run_named` builds those.
pub(crate) fn by_name(name: &str) -> Option<Box<dyn Nemesis>> {
    use process::{Action, ProcessNemesis, Target};
    let (actions, targets): (&[Action], &[Target]) = match name {
        "kill" => (&[Action::Kill], &[Target::Random]),
        "kill-leader" => (&[Action::Kill], &[Target::Leader]),
        "freeze" => (&[Action::Freeze], &[Target::Random]),
        "freeze-leader" => (&[Action::Freeze], &[Target::Leader]),
        "process" => (&[Action::Kill, Action::Freeze], &[Target::Leader, Target::Random]),
        "none" => return Some(Box::new(NoFaults)),
        _ => return None,
    };
    Some(Box::new(ProcessNemesis::new(actions, targets)))
}

/// No faults: the workload alone, to compare with.
struct NoFaults;

impl Nemesis for NoFaults {
    fn inject<'a>(&'a mut self, _: &'a TestCluster, _: &'a mut XorShift) -> LocalBoxFuture<'a, String> {
        Box::pin(async { "nothing".to_owned() })
    }

    fn heal<'a>(&'a mut self, _: &'a TestCluster) -> LocalBoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

/// Each event one of several nemeses, drawn at random: the `all` nemesis.
pub(crate) struct AnyOf<'n> {
    /// The nemeses drawn from.
    members: Vec<Box<dyn Nemesis + 'n>>,
    /// The one that injected last, to heal it and to ask how long it holds.
    last: Option<usize>,
}

impl<'n> AnyOf<'n> {
    /// A nemesis drawing one of `members` at each event.
    pub(crate) fn new(members: Vec<Box<dyn Nemesis + 'n>>) -> Self {
        assert!(!members.is_empty(), "AnyOf needs at least one nemesis");
        AnyOf { members, last: None }
    }
}

impl Nemesis for AnyOf<'_> {
    fn inject<'a>(&'a mut self, cluster: &'a TestCluster, rng: &'a mut XorShift) -> LocalBoxFuture<'a, String> {
        Box::pin(async move {
            let i = rng.below(self.members.len() as u64) as usize;
            self.last = Some(i);
            self.members[i].inject(cluster, rng).await
        })
    }

    fn heal<'a>(&'a mut self, cluster: &'a TestCluster) -> LocalBoxFuture<'a, ()> {
        Box::pin(async move {
            if let Some(i) = self.last {
                self.members[i].heal(cluster).await;
            }
        })
    }

    fn hold_ms(&self) -> Option<(u64, u64)> {
        self.last.and_then(|i| self.members[i].hold_ms())
    }
}

/// The node index the cluster agrees is the leader, polled for at most `within`.
pub(crate) async fn current_leader(cluster: &TestCluster, within: std::time::Duration) -> Option<usize> {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some((leader, _)) = cluster.agreed_leader(&[0, 1, 2]).await {
            return Some(leader);
        }
        if std::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(crate::harness::POLL).await;
    }
}
