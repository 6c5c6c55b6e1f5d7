//! Nemeses: the faults a chaos run injects. Each kind lives in a module of its own and
//! implements [`Nemesis`]: inject one fault, then heal it. The runner calls them in turn, so a
//! new kind (a cut link between network namespaces, a skewed clock) is one more module and one
//! more name in [`by_name`].

pub(crate) mod disk;
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
}

/// The nemeses a run can be asked for by name (`MERIDIAN_CHAOS_NEMESIS`, `scripts/chaos
/// --nemesis`).
pub(crate) const NAMES: [&str; 7] = ["kill", "kill-leader", "freeze", "freeze-leader", "process", "none", "mixed"];

/// The nemesis called `name`: `kill` / `freeze` (a random node), `kill-leader` /
/// `freeze-leader` (the leader), `process` (any of those four), `mixed` (every process nemesis,
/// then the others as they are added), `none` (no faults: a baseline).
pub(crate) fn by_name(name: &str) -> Option<Box<dyn Nemesis>> {
    use process::{Action, ProcessNemesis, Target};
    let (actions, targets): (&[Action], &[Target]) = match name {
        "kill" => (&[Action::Kill], &[Target::Random]),
        "kill-leader" => (&[Action::Kill], &[Target::Leader]),
        "freeze" => (&[Action::Freeze], &[Target::Random]),
        "freeze-leader" => (&[Action::Freeze], &[Target::Leader]),
        "process" | "mixed" => (&[Action::Kill, Action::Freeze], &[Target::Leader, Target::Random]),
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
