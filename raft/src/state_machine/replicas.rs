//! Applying the replica reports: a node that pulled a copy of an object's blob, or lost one.

use super::Changes;
use crate::command::CommandOutcome::{Done, Rejected};
use crate::command::{CommandOutcome, Rejection};
use crate::error::StoreError;
use crate::event::EventKind;
use crate::model::{UnixMillis, WorkItem};
use crate::node_id::NodeId;

impl Changes<'_> {
    /// [`crate::Command::ReplicaAdded`]: a node now holds the blob of the current version.
    pub(super) fn replica_added(
        &mut self,
        bucket: &str,
        key: &str,
        blob: &str,
        node: NodeId,
        at: UnixMillis,
    ) -> Result<CommandOutcome, StoreError> {
        // The version may be the current one or, in a versioned bucket, an older one that is
        // kept: every version is replicated like an object.
        Ok(match self.version_with_blob(bucket, key, blob)? {
            Some((stored_at, mut meta)) => {
                let new_region = meta.holders.insert(node, at).is_none();
                self.store_version_meta(bucket, key, stored_at.as_deref(), &meta)?;
                if new_region {
                    let region = self.region_of(node)?;
                    let kind = EventKind::ObjectReplicated { bucket: bucket.to_owned(), key: key.to_owned(), region };
                    self.emit(Some(at), kind)?;
                }
                Done
            }
            // The version moved on while the node was pulling: its copy is garbage.
            _ => {
                if node == self.node {
                    self.owe(&WorkItem::DropBlob { blob: blob.to_owned() })?;
                }
                Rejected(Rejection::NoSuchKey)
            }
        })
    }

    /// [`crate::Command::ReplicaLost`]: a node lost its copy and owes pulling it again.
    pub(super) fn replica_lost(
        &mut self,
        bucket: &str,
        key: &str,
        blob: &str,
        node: NodeId,
        at: UnixMillis,
    ) -> Result<CommandOutcome, StoreError> {
        let Some((stored_at, mut meta)) = self.version_with_blob(bucket, key, blob)? else {
            // Superseded or deleted since the scrub looked: the overwrite or delete
            // already owed the drop of this blob, and there is nothing to pull back.
            return Ok(Rejected(Rejection::NoSuchKey));
        };
        if !meta.holders.contains_key(&node) {
            // Reported twice (two passes before the pull finished): the first report
            // already owed the pull.
            return Ok(Done);
        }
        if meta.holders.len() == 1 {
            // The last holder stays listed: with no holder, every pull of the object
            // fails and reads find no node, and whatever is left of its bytes (the
            // scrub quarantines them) is the only chance to recover it.
            return Ok(Rejected(Rejection::PreconditionFailed));
        }
        meta.holders.remove(&node);
        self.store_version_meta(bucket, key, stored_at.as_deref(), &meta)?;
        // Same batch as the placement change: the node cannot be unlisted and forget
        // to fetch the blob again. A later ReplicaAdded (from that pull) lists it again.
        if node == self.node {
            self.owe(&WorkItem::Pull { bucket: bucket.to_owned(), key: key.to_owned(), blob: blob.to_owned() })?;
        }
        // Tells consumers why the ObjectReplicated of the repair comes a second time.
        let region = self.region_of(node)?;
        self.emit(Some(at), EventKind::ObjectReplicaLost { bucket: bucket.to_owned(), key: key.to_owned(), region })?;
        Ok(Done)
    }
}

#[cfg(test)]
mod tests {
    use crate::command::{Command, CommandOutcome, Rejection};
    use crate::event::EventKind;
    use crate::model::{Bucket, WorkItem};
    use crate::node_id::NodeId;

    use crate::state_machine::testing::{entry, kinds, owed, put, state_machine};

    fn lost(key: &str, blob: &str, node: NodeId) -> Command {
        Command::ReplicaLost { bucket: "b".into(), key: key.into(), blob: blob.into(), node, at: 7 }
    }

    /// A lost replica unlists the node and owes that node (only) a pull, in the same entry, with
    /// an `ObjectReplicaLost` event that explains the `ObjectReplicated` of the repair; the last
    /// holder is never unlisted; a report for a superseded version changes nothing.
    #[test]
    fn a_lost_replica_is_unlisted_and_pulled_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sm = state_machine(dir.path());
        let bucket = Bucket { name: "b".into(), created: 0, region: "r".into() };
        sm.apply_entry(&entry(1, Command::CreateBucket(bucket))).expect("apply");
        sm.apply_entry(&entry(2, put("k", "cc01", 1))).expect("apply");
        let added =
            |node, at| Command::ReplicaAdded { bucket: "b".into(), key: "k".into(), blob: "cc01".into(), node, at };
        let holders =
            || sm.tables.object("b", "k").expect("read").map(|o| o.holders.keys().copied().collect::<Vec<_>>());
        sm.apply_entry(&entry(3, added(2, 5))).expect("apply");

        // Another node's loss: placement changes here, but this node owes nothing.
        let (outcome, owes) = sm.apply_entry(&entry(4, lost("k", "cc01", 2))).expect("apply");
        assert_eq!((outcome, owes), (CommandOutcome::Done, false));
        assert_eq!(holders(), Some(vec![1]));

        // The last holder stays listed, whatever it reports: nothing to pull from otherwise.
        let (outcome, owes) = sm.apply_entry(&entry(5, lost("k", "cc01", 1))).expect("apply");
        assert_eq!((outcome, owes), (CommandOutcome::Rejected(Rejection::PreconditionFailed), false));
        assert_eq!(holders(), Some(vec![1]));
        assert!(sm.tables.work_items().expect("work").is_empty());

        // With another holder back, this node's loss unlists it and owes a pull in the same
        // entry; a repeat is a no-op.
        sm.apply_entry(&entry(6, added(2, 6))).expect("apply");
        let (outcome, owes) = sm.apply_entry(&entry(7, lost("k", "cc01", 1))).expect("apply");
        assert_eq!((outcome, owes), (CommandOutcome::Done, true));
        assert_eq!(holders(), Some(vec![2]));
        let pull = WorkItem::Pull { bucket: "b".into(), key: "k".into(), blob: "cc01".into() };
        let work = owed(&sm);
        assert_eq!(work, vec![pull]);
        let (outcome, owes) = sm.apply_entry(&entry(8, lost("k", "cc01", 1))).expect("apply");
        assert_eq!((outcome, owes), (CommandOutcome::Done, false));

        // The pull reports back: listed again.
        sm.apply_entry(&entry(9, added(1, 9))).expect("apply");
        assert_eq!(sm.tables.object("b", "k").expect("read").and_then(|o| o.holders.get(&1).copied()), Some(9));

        // Every second ObjectReplicated of a region follows an ObjectReplicaLost of it.
        let events: Vec<(String, String)> = crate::history::read(&sm.tables, None, 100, 9)
            .expect("read")
            .into_iter()
            .filter_map(|e| match e.kind {
                EventKind::ObjectReplicated { region, .. } => Some(("ObjectReplicated".into(), region)),
                EventKind::ObjectReplicaLost { region, .. } => Some(("ObjectReplicaLost".into(), region)),
                _ => None,
            })
            .collect();
        let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter().map(|(k, r)| ((*k).to_owned(), (*r).to_owned())).collect()
        };
        assert_eq!(
            events,
            pairs(&[
                ("ObjectReplicated", "node-2"),
                ("ObjectReplicaLost", "node-2"),
                ("ObjectReplicated", "node-2"),
                ("ObjectReplicaLost", "node-1"),
                ("ObjectReplicated", "node-1"),
            ])
        );

        // Overwritten: a late report about the old blob neither unlists nor owes anything.
        sm.apply_entry(&entry(10, put("k", "cc02", 2))).expect("apply");
        let before = sm.tables.work_items().expect("work").len();
        let (outcome, owes) = sm.apply_entry(&entry(11, lost("k", "cc01", 1))).expect("apply");
        assert_eq!((outcome, owes), (CommandOutcome::Rejected(Rejection::NoSuchKey), false));
        assert_eq!(sm.tables.work_items().expect("work").len(), before);
    }

    /// Reports of many pulls carried by one log entry (the proposal batcher's `Batch`, which
    /// the previous release applies too) apply each as its own: holders listed, one
    /// `ObjectReplicated` per new holder, and a report about an object deleted meanwhile is
    /// refused alone and leaves its copy to be dropped. Applied again (a replay), nothing
    /// changes and no event repeats.
    #[test]
    fn reports_batched_in_one_entry_apply_each_as_its_own_and_replay_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sm = state_machine(dir.path());
        let bucket = Bucket { name: "b".into(), created: 0, region: "r".into() };
        sm.apply_entry(&entry(1, Command::CreateBucket(bucket))).expect("apply");
        for (i, key) in ["k1", "k2", "k3"].iter().enumerate() {
            sm.apply_entry(&entry(2 + i as u64, put(key, &format!("cc0{}", i + 1), 2))).expect("apply");
        }
        sm.apply_entry(&entry(5, Command::DeleteObjects { bucket: "b".into(), keys: vec!["k2".into()] }))
            .expect("apply");
        let added = |key: &str, blob: &str| Command::ReplicaAdded {
            bucket: "b".into(),
            key: key.into(),
            blob: blob.into(),
            node: 1,
            at: 50,
        };
        let batch = Command::Batch(vec![added("k1", "cc01"), added("k2", "cc02"), added("k3", "cc03")]);
        let (outcome, _) = sm.apply_entry(&entry(6, batch.clone())).expect("apply");
        assert_eq!(
            outcome,
            CommandOutcome::Batch(vec![
                CommandOutcome::Done,
                CommandOutcome::Rejected(Rejection::NoSuchKey),
                CommandOutcome::Done
            ])
        );
        let holders = |key: &str| sm.tables.object("b", key).expect("read").map(|o| o.holders);
        assert_eq!(holders("k1"), Some([(1, 50), (2, 0)].into()));
        assert_eq!(holders("k3"), Some([(1, 50), (2, 0)].into()));
        assert_eq!(holders("k2"), None);
        assert!(owed(&sm).contains(&WorkItem::DropBlob { blob: "cc02".into() }), "the deleted object's copy goes");
        let replicated = |applied| kinds(&sm, applied).iter().filter(|k| **k == "ObjectReplicated").count();
        assert_eq!(replicated(6), 2);

        let (again, _) = sm.apply_entry(&entry(7, batch)).expect("apply again");
        assert_eq!(again, outcome);
        assert_eq!(holders("k1"), Some([(1, 50), (2, 0)].into()));
        assert_eq!(replicated(7), 2, "a replayed report emits nothing new");
    }
}
