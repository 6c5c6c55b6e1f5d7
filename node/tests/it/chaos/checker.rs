//! The history checker: each key is a register, and every read must fit some order of the
//! writes that respects real time (linearizability, searched per key in the style of Wing &
//! Gong / Porcupine, with memoised states and a bounded budget). Writes whose outcome is
//! unknown may take effect at any time after their invocation, or never; refused ones never.
//!
//! Besides, it reports every read of a value that was never written (bytes, ETags or keys the
//! workload cannot name), and, from the reads made after healing, a region that answers
//! differently from the others and a listing that disagrees with the objects.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;

use super::history::{Observed, Op, Outcome, ValueId};

/// How many search states one key may cost before the checker gives up on it (and says so).
pub(crate) const STATE_BUDGET: usize = 2_000_000;

/// What kind of anomaly was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AnomalyKind {
    /// No order of the writes explains what the reads of this key saw: a stale read, a lost
    /// acknowledged write, a write that came back.
    NotLinearizable,
    /// A read saw a value the workload never wrote (or bytes that do not match it).
    NeverWritten,
    /// After healing, regions answer differently for this key.
    Diverged,
    /// After healing, a listing disagrees with what a GET of each key answers.
    ListingMismatch,
    /// After healing, a live object's bytes did not reach every region in time.
    NotReplicated,
    /// After healing, a region did not answer a read of this key (or a listing) at all.
    Unavailable,
    /// The search ran out of budget: nothing is known about this key.
    Inconclusive,
}

/// One anomaly: which key, which operations, why.
#[derive(Debug, Clone)]
pub(crate) struct Anomaly {
    /// What was found.
    pub(crate) kind: AnomalyKind,
    /// The key (or the prefix, for a listing).
    pub(crate) key: String,
    /// The operations involved (history indexes).
    pub(crate) ops: Vec<usize>,
    /// For a person: what the operations show.
    pub(crate) detail: String,
}

/// What the checker found in one history.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// Every anomaly.
    pub(crate) anomalies: Vec<Anomaly>,
    /// Operations checked (reads and writes that took part in a per-key search).
    pub(crate) ops_checked: usize,
    /// Acknowledged writes.
    pub(crate) acked_writes: usize,
    /// Acknowledged reads that saw a value or an absence.
    pub(crate) acked_reads: usize,
    /// Writes whose outcome is unknown.
    pub(crate) unknown_writes: usize,
    /// Search states visited over all keys.
    pub(crate) states: usize,
}

impl Report {
    /// The anomalies of one kind.
    pub(crate) fn of_kind(&self, kind: AnomalyKind) -> Vec<&Anomaly> {
        self.anomalies.iter().filter(|a| a.kind == kind).collect()
    }

    /// The report for a person: the figures, then each anomaly with its operations.
    pub(crate) fn describe(&self, history: &[Op], seed: u64) -> String {
        let mut out = format!(
            "seed {seed}: {} ops checked ({} acknowledged writes, {} unknown writes, {} acknowledged reads), \
             {} search states, {} anomalies\n",
            self.ops_checked,
            self.acked_writes,
            self.unknown_writes,
            self.acked_reads,
            self.states,
            self.anomalies.len()
        );
        for a in self.anomalies.iter().take(20) {
            out.push_str(&format!("  {:?} on {:?}: {}\n", a.kind, a.key, a.detail));
            for &id in a.ops.iter().take(12) {
                if let Some(op) = history.get(id) {
                    out.push_str(&format!("      {op}\n"));
                }
            }
        }
        if self.anomalies.len() > 20 {
            out.push_str(&format!("  ... and {} more\n", self.anomalies.len() - 20));
        }
        out.push_str(&format!("  replay: MERIDIAN_CHAOS_SEED={seed}\n"));
        out
    }
}

/// One operation on one key as the register search sees it.
#[derive(Debug, Clone)]
struct KeyOp {
    /// Index in the history.
    id: usize,
    /// Invocation, µs.
    call: u64,
    /// Completion, µs; `u64::MAX` for a write of unknown outcome (it may land any time).
    ret: u64,
    /// What it does to the register.
    action: Action,
}

/// A register operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// Sets the value (`None`: deletes).
    Write(Option<ValueId>),
    /// Must see exactly this value.
    Read(Option<ValueId>),
}

/// Why a key's search failed.
#[derive(Debug)]
enum SearchFailure {
    /// No linearization: the ops of the deepest attempt that could not go on.
    Impossible { stuck: Vec<usize>, linearized: usize },
    /// Out of budget.
    Budget,
}

/// Checks a whole history: per-key linearizability, values never written, and the after-heal
/// agreement of regions and listings. `keys` is the key space (listings name only live keys).
pub(crate) fn check(history: &[Op], keys: &[String]) -> Report {
    let mut report = Report::default();
    for op in history {
        if let Observed::Garbage(what) = &op.observed {
            report.anomalies.push(Anomaly {
                kind: AnomalyKind::NeverWritten,
                key: op.key.clone(),
                ops: vec![op.id],
                detail: format!("read something never written: {what}"),
            });
        }
        if op.wrote.is_some() {
            match op.outcome {
                Outcome::Ok => report.acked_writes += 1,
                Outcome::Unknown(_) => report.unknown_writes += 1,
                Outcome::Refused(_) => {}
            }
        } else if op.outcome == Outcome::Ok && !matches!(op.observed, Observed::Nothing | Observed::Garbage(_)) {
            report.acked_reads += 1;
        }
    }
    for key in keys {
        let ops = key_ops(history, key);
        report.ops_checked += ops.len();
        match search(&ops, STATE_BUDGET, &mut report.states) {
            Ok(()) => {}
            Err(SearchFailure::Budget) => report.anomalies.push(Anomaly {
                kind: AnomalyKind::Inconclusive,
                key: key.clone(),
                ops: Vec::new(),
                detail: format!("{} ops: the search ran out of its budget of {STATE_BUDGET} states", ops.len()),
            }),
            Err(SearchFailure::Impossible { stuck, linearized }) => report.anomalies.push(Anomaly {
                kind: AnomalyKind::NotLinearizable,
                key: key.clone(),
                ops: stuck,
                detail: format!(
                    "no order of the writes explains the reads: at best {linearized} of {} ops fit; \
                     these could not go next (the first is the earliest-completing one left)",
                    ops.len()
                ),
            }),
        }
    }
    check_after_heal(history, keys, &mut report);
    report
}

/// The register operations of `key`: writes that may have taken effect (unknown ones open-ended,
/// and dropped when no read could have seen them), and acknowledged reads of it (listings count
/// as reads of every key of the space).
fn key_ops(history: &[Op], key: &str) -> Vec<KeyOp> {
    let mut ops = Vec::new();
    for op in history {
        let read = match (&op.outcome, &op.observed) {
            (Outcome::Ok, Observed::Value(v)) if op.key == key => Some(*v),
            (Outcome::Ok, Observed::Listing(l)) if key.starts_with(&op.key) => Some(l.get(key).copied()),
            _ => None,
        };
        if let Some(v) = read {
            ops.push(KeyOp { id: op.id, call: op.invoked_us, ret: op.completed_us, action: Action::Read(v) });
        }
        if op.key == key
            && let Some(w) = op.wrote
        {
            match op.outcome {
                Outcome::Ok => {
                    ops.push(KeyOp { id: op.id, call: op.invoked_us, ret: op.completed_us, action: Action::Write(w) });
                }
                Outcome::Unknown(_) => {
                    ops.push(KeyOp { id: op.id, call: op.invoked_us, ret: u64::MAX, action: Action::Write(w) });
                }
                Outcome::Refused(_) => {}
            }
        }
    }
    prune_unseen_unknown_writes(ops)
}

/// Drops writes of unknown outcome whose value no read that ended after their invocation saw.
/// Sound: in any linearization that places such a write, the ops between it and the next write
/// are reads of its value, and there are none, so removing it changes what no read sees. It
/// keeps the search small when a dead node turned many writes into unknowns.
fn prune_unseen_unknown_writes(ops: Vec<KeyOp>) -> Vec<KeyOp> {
    let seen = |w: &KeyOp, v: Option<ValueId>| {
        ops.iter().any(|r| r.action == Action::Read(v) && r.ret > w.call && r.id != w.id)
    };
    let keep: Vec<bool> = ops
        .iter()
        .map(|op| match op.action {
            Action::Write(v) if op.ret == u64::MAX => seen(op, v),
            _ => true,
        })
        .collect();
    let mut ops: Vec<KeyOp> = ops.into_iter().zip(keep).filter_map(|(op, k)| k.then_some(op)).collect();
    ops.sort_by_key(|op| (op.call, op.ret));
    ops
}

/// A set of op positions (into the key's sorted ops).
#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Self {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn has(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
    fn with(&self, i: usize) -> Self {
        let mut b = self.clone();
        b.0[i / 64] |= 1 << (i % 64);
        b
    }
    fn count(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }
}

/// Depth-first search for a linearization of `ops` (a register that starts absent), memoising
/// (linearized set, value) states; at most `budget` states.
fn search(ops: &[KeyOp], budget: usize, states: &mut usize) -> Result<(), SearchFailure> {
    let n = ops.len();
    let required: Vec<usize> = (0..n).filter(|&i| ops[i].ret != u64::MAX).collect();
    let mut seen: HashSet<(Bits, Option<ValueId>)> = HashSet::new();
    let start = (Bits::new(n), None);
    let mut stack = vec![start.clone()];
    seen.insert(start);
    let mut best: (usize, Bits) = (0, Bits::new(n));
    while let Some((done, value)) = stack.pop() {
        *states += 1;
        if required.iter().all(|&i| done.has(i)) {
            return Ok(());
        }
        let done_required = required.iter().filter(|&&i| done.has(i)).count();
        if done_required > best.0 || (done_required == best.0 && done.count() < best.1.count()) {
            best = (done_required, done.clone());
        }
        // An op may go next only if no other pending op completed before it was invoked.
        let min_ret = (0..n).filter(|&i| !done.has(i)).map(|i| ops[i].ret).min().unwrap_or(u64::MAX);
        for (i, op) in ops.iter().enumerate() {
            if done.has(i) {
                continue;
            }
            if op.call > min_ret {
                // Sorted by invocation: every later op was invoked later still.
                break;
            }
            let next_value = match op.action {
                Action::Write(v) => v,
                Action::Read(v) if v == value => value,
                Action::Read(_) => continue,
            };
            let state = (done.with(i), next_value);
            if seen.insert(state.clone()) {
                if seen.len() > budget {
                    return Err(SearchFailure::Budget);
                }
                stack.push(state);
            }
        }
    }
    // Explain with the deepest attempt: the required ops it could not place, earliest first.
    let done = best.1;
    let mut stuck: Vec<usize> = (0..n).filter(|&i| !done.has(i)).collect();
    stuck.sort_by_key(|&i| (ops[i].ret, ops[i].call));
    let last_placed = (0..n).filter(|&i| done.has(i)).max_by_key(|&i| ops[i].ret.min(ops[i].call.saturating_add(1)));
    let mut ids: Vec<usize> = stuck.iter().take(8).map(|&i| ops[i].id).collect();
    if let Some(i) = last_placed {
        ids.push(ops[i].id);
    }
    Err(SearchFailure::Impossible { stuck: ids, linearized: best.0 })
}

/// After healing, every region must answer the same for every key, and each region's listing
/// must name exactly the keys its GETs found, with the same values.
fn check_after_heal(history: &[Op], keys: &[String], report: &mut Report) {
    let finals: Vec<&Op> = history.iter().filter(|op| op.after_heal && op.outcome == Outcome::Ok).collect();
    // region -> key -> (value, op)
    let mut gets: BTreeMap<usize, BTreeMap<&str, (Option<ValueId>, usize)>> = BTreeMap::new();
    for op in finals.iter().filter(|op| matches!(op.observed, Observed::Value(_))) {
        if let Observed::Value(v) = op.observed {
            gets.entry(op.region).or_default().insert(op.key.as_str(), (v, op.id));
        }
    }
    for key in keys {
        let answers: BTreeSet<Option<ValueId>> =
            gets.values().filter_map(|m| m.get(key.as_str()).map(|(v, _)| *v)).collect();
        if answers.len() > 1 {
            report.anomalies.push(Anomaly {
                kind: AnomalyKind::Diverged,
                key: key.clone(),
                ops: gets.values().filter_map(|m| m.get(key.as_str()).map(|(_, id)| *id)).collect(),
                detail: format!("after healing, regions answer differently: {answers:?}"),
            });
        }
    }
    for op in finals {
        let Observed::Listing(listed) = &op.observed else { continue };
        let Some(region_gets) = gets.get(&op.region) else { continue };
        for key in keys.iter().filter(|k| k.starts_with(&op.key)) {
            let Some((got, get_id)) = region_gets.get(key.as_str()) else { continue };
            let in_listing = listed.get(key).copied();
            if in_listing != *got {
                report.anomalies.push(Anomaly {
                    kind: AnomalyKind::ListingMismatch,
                    key: key.clone(),
                    ops: vec![op.id, *get_id],
                    detail: format!("after healing, node {} lists {in_listing:?} but GETs {got:?}", op.region),
                });
            }
        }
        for listed_key in listed.keys().filter(|k| !keys.contains(k)) {
            report.anomalies.push(Anomaly {
                kind: AnomalyKind::NeverWritten,
                key: listed_key.clone(),
                ops: vec![op.id],
                detail: "listed a key the workload never wrote".into(),
            });
        }
    }
}

impl fmt::Display for AnomalyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    //! Hand-made histories: the checker accepts what a linearizable store may answer and
    //! reports each kind of anomaly it exists for.

    use super::super::history::Kind;
    use super::*;

    /// Builds histories op by op.
    #[derive(Default)]
    struct H(Vec<Op>);

    impl H {
        fn push(
            &mut self,
            key: &str,
            kind: Kind,
            wrote: Option<Option<ValueId>>,
            observed: Observed,
            t: (u64, u64),
            outcome: Outcome,
        ) -> &mut Self {
            let id = self.0.len();
            self.0.push(Op {
                id,
                client: id % 3,
                region: id % 3,
                key: key.into(),
                kind,
                wrote,
                observed,
                invoked_us: t.0,
                completed_us: t.1,
                outcome,
                after_heal: false,
            });
            self
        }
        fn put(&mut self, key: &str, v: ValueId, t: (u64, u64)) -> &mut Self {
            self.push(key, Kind::Put, Some(Some(v)), Observed::Nothing, t, Outcome::Ok)
        }
        fn put_unknown(&mut self, key: &str, v: ValueId, t: (u64, u64)) -> &mut Self {
            self.push(key, Kind::Put, Some(Some(v)), Observed::Nothing, t, Outcome::Unknown("timeout".into()))
        }
        fn put_refused(&mut self, key: &str, v: ValueId, t: (u64, u64)) -> &mut Self {
            self.push(key, Kind::Put, Some(Some(v)), Observed::Nothing, t, Outcome::Refused("400".into()))
        }
        fn delete(&mut self, key: &str, t: (u64, u64)) -> &mut Self {
            self.push(key, Kind::Delete, Some(None), Observed::Nothing, t, Outcome::Ok)
        }
        fn get(&mut self, key: &str, v: Option<ValueId>, t: (u64, u64)) -> &mut Self {
            self.push(key, Kind::Get, None, Observed::Value(v), t, Outcome::Ok)
        }
        fn list(&mut self, prefix: &str, listed: &[(&str, ValueId)], t: (u64, u64)) -> &mut Self {
            let l = listed.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
            self.push(prefix, Kind::List, None, Observed::Listing(l), t, Outcome::Ok)
        }
        fn heal(&mut self) -> &mut Self {
            self.0.last_mut().expect("an op").after_heal = true;
            self
        }
        fn check(&self, keys: &[&str]) -> Report {
            let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
            check(&self.0, &keys)
        }
    }

    fn kinds(r: &Report) -> Vec<AnomalyKind> {
        r.anomalies.iter().map(|a| a.kind).collect()
    }

    #[test]
    fn a_sequential_history_is_linearizable() {
        let r = H::default()
            .put("a", 1, (0, 10))
            .get("a", Some(1), (11, 20))
            .put("a", 2, (21, 30))
            .get("a", Some(2), (31, 40))
            .delete("a", (41, 50))
            .get("a", None, (51, 60))
            .check(&["a"]);
        assert!(r.anomalies.is_empty(), "{:?}", r.anomalies);
        assert_eq!((r.acked_writes, r.acked_reads), (3, 3));
    }

    #[test]
    fn a_read_concurrent_with_a_write_may_see_either_value() {
        let r = H::default()
            .put("a", 1, (0, 10))
            .put("a", 2, (20, 40))
            .get("a", Some(1), (25, 30))
            .get("a", Some(2), (26, 31))
            .get("a", Some(2), (41, 50))
            .check(&["a"]);
        assert!(r.anomalies.is_empty(), "{:?}", r.anomalies);
    }

    #[test]
    fn a_stale_read_after_an_acknowledged_overwrite_is_reported() {
        let h = {
            let mut h = H::default();
            h.put("a", 1, (0, 10)).put("a", 2, (20, 30)).get("a", Some(1), (31, 40));
            h
        };
        let r = h.check(&["a"]);
        assert_eq!(kinds(&r), [AnomalyKind::NotLinearizable]);
        assert!(r.anomalies[0].ops.contains(&2), "the stale read is named: {:?}", r.anomalies[0].ops);
        assert!(r.describe(&h.0, 42).contains("MERIDIAN_CHAOS_SEED=42"));
    }

    #[test]
    fn a_read_that_sees_an_old_value_again_is_reported() {
        // Two reads one after the other: new, then old (a value that came back).
        let r = H::default()
            .put("a", 1, (0, 10))
            .put("a", 2, (20, 100))
            .get("a", Some(2), (30, 40))
            .get("a", Some(1), (50, 60))
            .check(&["a"]);
        assert_eq!(kinds(&r), [AnomalyKind::NotLinearizable]);
    }

    #[test]
    fn a_lost_acknowledged_write_is_reported_by_the_final_read() {
        let r = H::default()
            .put("a", 1, (0, 10))
            .put("a", 2, (20, 30))
            .get("a", Some(1), (1000, 1010))
            .heal()
            .check(&["a"]);
        assert_eq!(kinds(&r), [AnomalyKind::NotLinearizable]);
    }

    #[test]
    fn an_unknown_write_may_land_late_or_never() {
        let late = H::default()
            .put("a", 1, (0, 10))
            .put_unknown("a", 2, (20, 30))
            .get("a", Some(1), (40, 50))
            .get("a", Some(2), (500, 510))
            .check(&["a"]);
        assert!(late.anomalies.is_empty(), "{:?}", late.anomalies);
        let never =
            H::default().put("a", 1, (0, 10)).put_unknown("a", 2, (20, 30)).get("a", Some(1), (500, 510)).check(&["a"]);
        assert!(never.anomalies.is_empty(), "{:?}", never.anomalies);
        // But not before it was invoked.
        let early =
            H::default().put("a", 1, (0, 10)).get("a", Some(2), (11, 15)).put_unknown("a", 2, (20, 30)).check(&["a"]);
        assert_eq!(kinds(&early), [AnomalyKind::NotLinearizable]);
    }

    #[test]
    fn a_refused_write_must_not_be_seen() {
        let r =
            H::default().put("a", 1, (0, 10)).put_refused("a", 2, (20, 30)).get("a", Some(2), (40, 50)).check(&["a"]);
        assert_eq!(kinds(&r), [AnomalyKind::NotLinearizable]);
    }

    #[test]
    fn a_value_never_written_is_reported() {
        let mut h = H::default();
        h.put("a", 1, (0, 10));
        h.push("a", Kind::Get, None, Observed::Garbage("bytes of v9 that do not match".into()), (20, 30), Outcome::Ok);
        let r = h.check(&["a"]);
        assert_eq!(kinds(&r), [AnomalyKind::NeverWritten]);
    }

    #[test]
    fn listings_are_reads_of_every_key() {
        let ok = H::default()
            .put("p/a", 1, (0, 10))
            .put("p/b", 2, (0, 10))
            .delete("p/b", (20, 30))
            .list("p/", &[("p/a", 1)], (40, 50))
            .check(&["p/a", "p/b"]);
        assert!(ok.anomalies.is_empty(), "{:?}", ok.anomalies);
        // A listing that still names a key deleted before it started.
        let stale = H::default()
            .put("p/a", 1, (0, 10))
            .delete("p/a", (20, 30))
            .list("p/", &[("p/a", 1)], (40, 50))
            .check(&["p/a"]);
        assert_eq!(kinds(&stale), [AnomalyKind::NotLinearizable]);
    }

    #[test]
    fn regions_that_disagree_after_healing_are_reported() {
        let mut h = H::default();
        h.put("a", 1, (0, 10)).put_unknown("a", 2, (20, 30));
        // Node 2 and node 0 (ids 2, 3 -> regions 2, 0) answer differently at the end.
        h.get("a", Some(2), (100, 110)).heal().get("a", Some(1), (100, 110)).heal();
        let r = h.check(&["a"]);
        assert!(kinds(&r).contains(&AnomalyKind::Diverged), "{:?}", r.anomalies);
    }

    #[test]
    fn a_listing_that_disagrees_with_the_objects_after_healing_is_reported() {
        let mut h = H::default();
        h.put("p/a", 1, (0, 10)).put("p/b", 2, (0, 10));
        // op 2 -> region 2: GETs of both keys, then a listing without p/b, all via region 2.
        h.get("p/a", Some(1), (100, 110)).heal();
        h.0.last_mut().expect("op").region = 2;
        h.get("p/b", Some(2), (100, 110)).heal();
        h.0.last_mut().expect("op").region = 2;
        h.list("p/", &[("p/a", 1)], (100, 110)).heal();
        h.0.last_mut().expect("op").region = 2;
        let r = h.check(&["p/a", "p/b"]);
        assert!(kinds(&r).contains(&AnomalyKind::ListingMismatch), "{:?}", r.anomalies);
    }

    #[test]
    fn many_concurrent_unknown_writes_stay_within_budget() {
        // 40 unknown writes, every one seen by a later read, all concurrent: the memo keeps it small
        // enough (values are distinct, so states are (set, value) pairs).
        let mut h = H::default();
        for v in 1..=12 {
            h.put_unknown("a", v, (v as u64, v as u64 + 5));
        }
        for v in 1..=12 {
            h.get("a", Some(v), (100 + v as u64 * 10, 105 + v as u64 * 10));
        }
        let r = h.check(&["a"]);
        assert!(r.anomalies.is_empty(), "{:?}", r.anomalies);
        assert!(r.states < STATE_BUDGET);
    }
}
