//! The Raft state machine: applying committed commands to the placement database.
//!
//! `apply` turns each entry into one atomic sled batch: the placement change, the work items it
//! owes this node (e.g. "drop blob Y"), and the new applied index, together. It never does
//! network I/O and never calls back into Raft; it only wakes the local workers.

use openraft::storage::RaftStateMachine;
use openraft::{Entry, EntryPayload, LogId, OptionalSend, Snapshot, SnapshotMeta, StorageError, StoredMembership};
use std::path::PathBuf;
use tokio::sync::watch;

use crate::command::{Command, CommandOutcome, Rejection, WriteCondition};
use crate::error::StoreError;
use crate::model::{User, WorkItem};
use crate::snapshot::SnapshotFiles;
use crate::tables::{self, Tables, record_key};
use crate::types::{NodeId, RegionNode, TypeConfig};

/// The state machine handed to openraft.
pub(crate) struct StateMachine {
    /// This node's id: work items are derived for it alone.
    pub(crate) node: NodeId,
    /// The records.
    pub(crate) tables: Tables,
    /// Where snapshots are written and received.
    pub(crate) snapshots: SnapshotFiles,
    /// Bumped whenever `apply` records work for this node.
    pub(crate) work: watch::Sender<u64>,
    /// The last applied log index, for readers that wait until their write is visible here.
    pub(crate) applied_tx: watch::Sender<u64>,
    /// Path of the snapshot being received, between `begin_receiving_snapshot` and `install`.
    pub(crate) incoming: Option<PathBuf>,
}

/// Accumulates one entry's changes; applied atomically.
struct Changes<'a> {
    tables: &'a Tables,
    node: NodeId,
    batch: sled::Batch,
    /// Log index of the entry, the first half of work item keys.
    index: u64,
    /// Work items added by this entry, the second half of their keys.
    work_added: u32,
}

impl Changes<'_> {
    fn put<T: serde::Serialize>(&mut self, key: Vec<u8>, value: &T) -> Result<(), StoreError> {
        self.batch.insert(key, Tables::value(value)?);
        Ok(())
    }

    fn owe(&mut self, item: &WorkItem) -> Result<(), StoreError> {
        let mut key = tables::WORK.to_vec();
        key.extend_from_slice(&self.index.to_be_bytes());
        key.extend_from_slice(&self.work_added.to_be_bytes());
        self.work_added += 1;
        self.put(key, item)
    }

    /// Removes the current version of a key, if any, with its blob index entry; owes a blob
    /// drop when this node holds the bytes. Returns whether a version existed.
    fn remove_object(&mut self, bucket: &str, key: &str, keep_blob: Option<&str>) -> Result<bool, StoreError> {
        let Some(old) = self.tables.object(bucket, key)? else { return Ok(false) };
        self.batch.remove(record_key(tables::OBJECT, &[bucket, key]));
        if old.inline.is_none() && keep_blob != Some(old.blob.as_str()) {
            self.batch.remove(record_key(tables::BLOB, &[&old.blob]));
            if old.holders.contains_key(&self.node) {
                self.owe(&WorkItem::DropBlob { blob: old.blob })?;
            }
        }
        Ok(true)
    }

    fn apply(&mut self, command: &Command) -> Result<CommandOutcome, StoreError> {
        use CommandOutcome::{Deleted, Done, Rejected};
        Ok(match command {
            Command::CreateBucket(bucket) => {
                if self.tables.bucket(&bucket.name)?.is_some() {
                    return Ok(Rejected(Rejection::BucketAlreadyOwnedByYou));
                }
                self.put(record_key(tables::BUCKET, &[&bucket.name]), bucket)?;
                Done
            }
            Command::DeleteBucket { name } => {
                if self.tables.bucket(name)?.is_none() {
                    return Ok(Rejected(Rejection::NoSuchBucket));
                }
                if !self.tables.bucket_is_empty(name)? {
                    return Ok(Rejected(Rejection::BucketNotEmpty));
                }
                self.batch.remove(record_key(tables::BUCKET, &[name]));
                Done
            }
            Command::PutObject { bucket, key, meta, condition, completes_upload } => {
                if self.tables.bucket(bucket)?.is_none() {
                    return Ok(Rejected(Rejection::NoSuchBucket));
                }
                if let Some(upload_id) = completes_upload {
                    let Some(upload) = self.tables.upload(upload_id)? else {
                        return Ok(Rejected(Rejection::NoSuchUpload));
                    };
                    self.batch.remove(record_key(tables::UPLOAD, &[upload_id]));
                    if upload.node == self.node {
                        self.owe(&WorkItem::DropUploadParts { upload: upload_id.clone() })?;
                    }
                }
                let current = self.tables.object(bucket, key)?;
                let allowed = match (condition, &current) {
                    (WriteCondition::None, _) => true,
                    (WriteCondition::Absent, current) => current.is_none(),
                    (WriteCondition::ETagIs(etag), Some(current)) => &current.etag == etag,
                    (WriteCondition::ETagIs(_), None) => false,
                };
                if !allowed {
                    return Ok(Rejected(Rejection::PreconditionFailed));
                }
                self.remove_object(bucket, key, Some(&meta.blob))?;
                self.put(record_key(tables::OBJECT, &[bucket, key]), meta)?;
                if meta.inline.is_none() {
                    self.put(record_key(tables::BLOB, &[&meta.blob]), &format!("{bucket}/{key}"))?;
                    if !meta.holders.contains_key(&self.node) {
                        self.owe(&WorkItem::Pull {
                            bucket: bucket.clone(),
                            key: key.clone(),
                            blob: meta.blob.clone(),
                        })?;
                    }
                }
                Done
            }
            Command::DeleteObjects { bucket, keys } => {
                if self.tables.bucket(bucket)?.is_none() {
                    return Ok(Rejected(Rejection::NoSuchBucket));
                }
                let mut deleted = Vec::new();
                for key in keys {
                    if self.remove_object(bucket, key, None)? {
                        deleted.push(key.clone());
                    }
                }
                Deleted(deleted)
            }
            Command::SetTags { bucket, key, tags } => {
                let Some(mut meta) = self.tables.object(bucket, key)? else {
                    return Ok(Rejected(Rejection::NoSuchKey));
                };
                meta.tags.clone_from(tags);
                self.put(record_key(tables::OBJECT, &[bucket, key]), &meta)?;
                Done
            }
            Command::CreateUpload(upload) => {
                if self.tables.bucket(&upload.bucket)?.is_none() {
                    return Ok(Rejected(Rejection::NoSuchBucket));
                }
                self.put(record_key(tables::UPLOAD, &[&upload.id]), upload)?;
                Done
            }
            Command::AbortUpload { id } => {
                let Some(upload) = self.tables.upload(id)? else {
                    return Ok(Rejected(Rejection::NoSuchUpload));
                };
                self.batch.remove(record_key(tables::UPLOAD, &[id]));
                if upload.node == self.node {
                    self.owe(&WorkItem::DropUploadParts { upload: id.clone() })?;
                }
                Done
            }
            Command::PutAccessKey(access_key) => {
                self.put(record_key(tables::KEY, &[&access_key.id]), access_key)?;
                Done
            }
            // Batches are unrolled by `apply_entry`; a nested one would be a proposer bug.
            Command::Batch(_) => {
                return Err(StoreError::Codec("nested command batch".into()));
            }
            Command::UpsertUsers { users, at, sign_in } => {
                for profile in users {
                    let user = match self.tables.user(&profile.id)? {
                        Some(mut user) => {
                            if user.profile != *profile || user.deleted.is_some() {
                                user.updated = *at;
                            }
                            user.profile.clone_from(profile);
                            user.deleted = None;
                            if *sign_in {
                                user.last_sign_in = Some(*at);
                            }
                            user
                        }
                        None => User {
                            profile: profile.clone(),
                            first_seen: *at,
                            updated: *at,
                            last_sign_in: sign_in.then_some(*at),
                            deleted: None,
                        },
                    };
                    self.put(record_key(tables::USER, &[&profile.id]), &user)?;
                }
                Done
            }
            Command::MarkUsersDeleted { ids, at } => {
                for id in ids {
                    if let Some(mut user) = self.tables.user(id)?
                        && user.deleted.is_none()
                    {
                        user.deleted = Some(*at);
                        self.put(record_key(tables::USER, &[id]), &user)?;
                    }
                }
                Done
            }
            Command::ReplicaAdded { bucket, key, blob, node, at } => match self.tables.object(bucket, key)? {
                Some(mut meta) if &meta.blob == blob => {
                    meta.holders.insert(*node, *at);
                    self.put(record_key(tables::OBJECT, &[bucket, key]), &meta)?;
                    Done
                }
                // The version moved on while the node was pulling: its copy is garbage.
                _ => {
                    if *node == self.node {
                        self.owe(&WorkItem::DropBlob { blob: blob.clone() })?;
                    }
                    Rejected(Rejection::NoSuchKey)
                }
            },
        })
    }
}

/// Converts a store failure into openraft's error for the state machine.
fn sm_error(e: StoreError) -> StorageError<NodeId> {
    StorageError::from_io_error(
        openraft::ErrorSubject::StateMachine,
        openraft::ErrorVerb::Write,
        std::io::Error::other(e.to_string()),
    )
}

impl StateMachine {
    /// Applies one entry atomically and returns its outcome.
    fn apply_entry(&self, entry: &Entry<TypeConfig>) -> Result<(CommandOutcome, bool), StoreError> {
        let mut changes = Changes {
            tables: &self.tables,
            node: self.node,
            batch: sled::Batch::default(),
            index: entry.log_id.index,
            work_added: 0,
        };
        let outcome = match &entry.payload {
            EntryPayload::Blank => CommandOutcome::Done,
            EntryPayload::Normal(Command::Batch(commands)) => {
                // Each command sees the ones before it: they are written one sled batch at a
                // time. The applied index moves only with the last one, so a crash in between
                // re-applies the whole entry, which converges to the same state (every command
                // is idempotent when re-applied on top of itself).
                let mut outcomes = Vec::with_capacity(commands.len());
                for (i, command) in commands.iter().enumerate() {
                    outcomes.push(changes.apply(command)?);
                    if i + 1 < commands.len() {
                        self.tables.tree.apply_batch(std::mem::take(&mut changes.batch))?;
                    }
                }
                CommandOutcome::Batch(outcomes)
            }
            EntryPayload::Normal(command) => changes.apply(command)?,
            EntryPayload::Membership(membership) => {
                let stored = StoredMembership::new(Some(entry.log_id), membership.clone());
                changes.put(tables::MEMBERSHIP.to_vec(), &stored)?;
                CommandOutcome::Done
            }
        };
        changes.put(tables::APPLIED.to_vec(), &entry.log_id)?;
        let owes_work = changes.work_added > 0;
        self.tables.tree.apply_batch(changes.batch)?;
        Ok((outcome, owes_work))
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = crate::snapshot::SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, RegionNode>), StorageError<NodeId>> {
        let applied = self.tables.applied().map_err(sm_error)?;
        let membership = self.tables.membership().map_err(sm_error)?;
        Ok((applied, membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandOutcome>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut outcomes = Vec::new();
        let mut owes_work = false;
        let mut last = None;
        for entry in entries {
            let (outcome, owes) = self.apply_entry(&entry).map_err(sm_error)?;
            owes_work |= owes;
            last = Some(entry.log_id.index);
            outcomes.push(outcome);
        }
        if let Some(index) = last {
            self.applied_tx.send_replace(index);
        }
        if owes_work {
            self.work.send_modify(|generation| *generation += 1);
        }
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // The dump happens here, between two `apply` calls, so it is a consistent view; the
        // builder only hands the finished file to openraft.
        let dumped = self.snapshots.dump(&self.tables);
        crate::snapshot::SnapshotBuilder { dumped: Some(dumped), files: self.snapshots.clone() }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError<NodeId>> {
        let (path, file) = self.snapshots.incoming().await.map_err(sm_error)?;
        self.incoming = Some(path);
        Ok(Box::new(file))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, RegionNode>,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError<NodeId>> {
        drop(snapshot);
        let Some(path) = self.incoming.take() else {
            return Err(sm_error(StoreError::Codec("install_snapshot without a received snapshot".into())));
        };
        self.snapshots.install(&path, meta, &self.tables, self.node).map_err(sm_error)?;
        if let Some(applied) = meta.last_log_id {
            self.applied_tx.send_replace(applied.index);
        }
        self.work.send_modify(|generation| *generation += 1);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        self.snapshots.current().await.map_err(sm_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Bucket, ObjectMeta};

    fn state_machine(dir: &std::path::Path) -> StateMachine {
        let db = sled::Config::new().path(dir.join("db")).temporary(true).open().expect("sled");
        StateMachine {
            node: 1,
            tables: Tables { tree: db.open_tree("state").expect("tree") },
            snapshots: SnapshotFiles { dir: dir.join("snapshots") },
            work: watch::channel(0).0,
            applied_tx: watch::channel(0).0,
            incoming: None,
        }
    }

    fn entry(index: u64, command: Command) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(command),
        }
    }

    fn object(blob: &str, holder: NodeId) -> ObjectMeta {
        ObjectMeta {
            blob: blob.into(),
            inline: None,
            size: 1,
            etag: "e".into(),
            last_modified: 0,
            headers: Default::default(),
            tags: Vec::new(),
            checksums: Default::default(),
            parts: Vec::new(),
            holders: [(holder, 0)].into(),
        }
    }

    fn put(key: &str, blob: &str, holder: NodeId) -> Command {
        Command::PutObject {
            bucket: "b".into(),
            key: key.into(),
            meta: object(blob, holder),
            condition: WriteCondition::None,
            completes_upload: None,
        }
    }

    /// The applied index must read back exactly (bincode is not self-describing: writing an
    /// `Option<LogId>` and reading a `LogId` once decoded garbage, and a restarted node
    /// re-applied its whole log).
    #[test]
    fn applied_index_reads_back_after_apply() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sm = state_machine(dir.path());
        let bucket = Bucket { name: "b".into(), created: 0, region: "r".into() };
        let e = entry(42, Command::CreateBucket(bucket));
        sm.apply_entry(&e).expect("apply");
        assert_eq!(sm.tables.applied().expect("read"), Some(e.log_id));
    }

    /// A batch applies its commands in order, each seeing the ones before it, and owes the
    /// same work as separate entries would.
    #[test]
    fn batch_commands_see_each_other() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sm = state_machine(dir.path());
        let bucket = Bucket { name: "b".into(), created: 0, region: "r".into() };
        let batch = Command::Batch(vec![
            Command::CreateBucket(bucket.clone()),
            put("k", "aa01", 1),
            put("k", "aa02", 1),
            Command::CreateBucket(bucket),
        ]);
        let (outcome, owes) = sm.apply_entry(&entry(5, batch)).expect("apply");
        assert_eq!(
            outcome,
            CommandOutcome::Batch(vec![
                CommandOutcome::Done,
                CommandOutcome::Done,
                CommandOutcome::Done,
                CommandOutcome::Rejected(Rejection::BucketAlreadyOwnedByYou),
            ])
        );
        assert!(owes, "the overwritten blob must be dropped");
        assert_eq!(sm.tables.object("b", "k").expect("read").map(|o| o.blob), Some("aa02".into()));
        let work = sm.tables.work_items().expect("work");
        assert_eq!(work.len(), 1);
        assert_eq!(work[0].1, WorkItem::DropBlob { blob: "aa01".into() });
        assert_eq!(sm.tables.applied().expect("read").map(|l| l.index), Some(5));
    }

    fn profile(id: &str, name: &str) -> crate::model::UserProfile {
        crate::model::UserProfile {
            id: id.into(),
            login: id.into(),
            name: name.into(),
            email: String::new(),
            roles: vec!["user".into()],
        }
    }

    /// Users are created, changed (keeping first-seen and last sign-in), marked deleted with a
    /// time rather than removed, and come back when seen again; re-applying is harmless.
    #[test]
    fn users_are_upserted_and_marked_deleted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sm = state_machine(dir.path());
        let upsert = |users, at, sign_in| Command::UpsertUsers { users, at, sign_in };
        sm.apply_entry(&entry(1, upsert(vec![profile("a", "Ann")], 10, true))).expect("apply");
        sm.apply_entry(&entry(2, upsert(vec![profile("a", "Ann"), profile("b", "Ben")], 20, false))).expect("apply");
        let a = sm.tables.user("a").expect("read").expect("a exists");
        assert_eq!((a.first_seen, a.updated, a.last_sign_in, a.deleted), (10, 10, Some(10), None));

        sm.apply_entry(&entry(3, upsert(vec![profile("a", "Anna")], 30, false))).expect("apply");
        let a = sm.tables.user("a").expect("read").expect("a exists");
        assert_eq!((a.profile.name.as_str(), a.updated, a.last_sign_in), ("Anna", 30, Some(10)));

        let delete = Command::MarkUsersDeleted { ids: vec!["b".into(), "nobody".into()], at: 40 };
        sm.apply_entry(&entry(4, delete.clone())).expect("apply");
        sm.apply_entry(&entry(5, delete)).expect("re-apply");
        let b = sm.tables.user("b").expect("read").expect("b is kept");
        assert_eq!(b.deleted, Some(40), "the first deletion time stays");
        assert!(sm.tables.user("nobody").expect("read").is_none());
        assert_eq!(sm.tables.users().expect("read").len(), 2);

        sm.apply_entry(&entry(6, upsert(vec![profile("b", "Ben")], 50, false))).expect("apply");
        let b = sm.tables.user("b").expect("read").expect("b");
        assert_eq!((b.deleted, b.updated, b.first_seen), (None, 50, 20));
    }

    /// A node that does not hold a new blob owes a pull of it; the holder does not.
    #[test]
    fn non_holders_owe_a_pull() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sm = state_machine(dir.path());
        let bucket = Bucket { name: "b".into(), created: 0, region: "r".into() };
        sm.apply_entry(&entry(1, Command::CreateBucket(bucket))).expect("apply");
        sm.apply_entry(&entry(2, put("mine", "bb01", 1))).expect("apply");
        sm.apply_entry(&entry(3, put("theirs", "bb02", 2))).expect("apply");
        let work: Vec<WorkItem> = sm.tables.work_items().expect("work").into_iter().map(|(_, w)| w).collect();
        assert_eq!(work, vec![WorkItem::Pull { bucket: "b".into(), key: "theirs".into(), blob: "bb02".into() }]);
    }
}
