//! The Raft state machine: applying committed commands to the placement database.
//!
//! `apply` turns each entry into one atomic sled batch: the placement change, the work items it
//! owes this node (e.g. "drop blob Y"), the events it means for outside consumers, and the new
//! applied index, together. It never does network I/O and never calls back into Raft; it only
//! wakes the local workers.
//!
//! `apply` dispatches on the command; each group of commands is applied in its own module.

mod acl;
mod buckets;
mod cors;
mod events;
mod keys;
mod object_lock;
mod objects;
mod replicas;
mod shares;
#[cfg(test)]
mod testing;
mod users;
mod versions;

use openraft::storage::RaftStateMachine;
use openraft::{Entry, EntryPayload, LogId, OptionalSend, Snapshot, SnapshotMeta, StorageError, StoredMembership};
use std::collections::BTreeMap;
use std::path::PathBuf;
use tokio::sync::watch;

use crate::command::{Command, CommandOutcome};
use crate::error::StoreError;
use crate::event::{Actor, Cursor, EventKind};
use crate::history::{self, HistoryWriter, NewEvent};
use crate::model::{UnixMillis, WorkItem};
use crate::node_id::{NodeId, RegionNode};
use crate::snapshot::SnapshotFiles;
use crate::tables::{self, Tables};
use crate::types::TypeConfig;

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
    /// The visibility gate: an entry is applied (made visible) only once every read-lease
    /// holder has it (docs/architecture.md, "Read leases").
    pub(crate) leases: std::sync::Arc<crate::lease::Leases>,
}

/// What an envelope says about the command it wraps.
#[derive(Clone)]
struct Origin {
    /// Who asked for it.
    actor: Option<Actor>,
    /// The proposer's time of the change, recorded in its events (apply never reads a clock).
    at: UnixMillis,
    /// From which client address (S3 writes).
    client: Option<String>,
}

/// Accumulates one entry's changes; applied atomically.
struct Changes<'a> {
    tables: &'a Tables,
    node: NodeId,
    batch: crate::snapshot_view::StateBatch,
    /// Log index of the entry, the first half of work item keys.
    index: u64,
    /// Work items added by this entry, the second half of their keys.
    work_added: u32,
    /// Who asked for the command being applied, when, and from which address, from its
    /// [`Command::Attributed`] or [`Command::AttributedFrom`] envelope.
    origin: Option<Origin>,
    /// Events of the command being applied, in order (the caller files them in the history).
    events: Vec<NewEvent>,
    /// Region names by node id, read from the membership when an event first needs one.
    regions: Option<BTreeMap<NodeId, String>>,
    /// The history trim the command being applied asks for ([`Command::TrimEvents`]); the caller
    /// carries it out, since it owns the history's bookkeeping.
    trim: Option<Cursor>,
    /// The active format the entry raised the cluster to ([`Command::RaiseFormat`]); records are
    /// written in it once the entry's batch is applied.
    format_raised: Option<u16>,
    /// Versions this entry created so far, the second half of their ids. A batch's command `i`
    /// starts at `i << 16`, so a batch re-applied after a crash (which skips the commands
    /// already done) hands out the same ids as the first time, never one already used.
    versions_made: u32,
    /// The lock a [`Command::WithObjectLock`] asks for, taken by the version (or upload) the
    /// command it wraps makes.
    requested_lock: Option<crate::object_lock::VersionLock>,
}

impl Changes<'_> {
    fn put<T: crate::codec::Record>(&mut self, key: Vec<u8>, value: &T) -> Result<(), StoreError> {
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

    /// Notes an event of the command being applied. Its time is the envelope's when there is
    /// one, else the command's own (`own_time`), else the newest event's (so time never runs
    /// backwards in the stream).
    fn emit(&mut self, own_time: Option<UnixMillis>, kind: EventKind) -> Result<(), StoreError> {
        let (actor, at, client) = match &self.origin {
            Some(origin) => (origin.actor.clone(), origin.at, origin.client.clone()),
            None => match own_time {
                Some(at) => (None, at, None),
                None => (None, history::newest_time(self.tables)?.unwrap_or(0), None),
            },
        };
        self.events.push(NewEvent { at, actor, kind, client });
        Ok(())
    }

    /// The region of a member node, for events; `node-ID` for a node no longer a member.
    fn region_of(&mut self, node: NodeId) -> Result<String, StoreError> {
        if self.regions.is_none() {
            let membership = self.tables.membership()?;
            let names = membership.membership().nodes().map(|(id, n)| (*id, n.region.clone())).collect();
            self.regions = Some(names);
        }
        Ok(self.regions.as_ref().and_then(|r| r.get(&node).cloned()).unwrap_or_else(|| format!("node-{node}")))
    }

    /// Applies the command of an envelope, its events carrying `origin`.
    fn apply_attributed(&mut self, origin: Origin, command: &Command) -> Result<CommandOutcome, StoreError> {
        if matches!(command, Command::Batch(_) | Command::Attributed { .. } | Command::AttributedFrom { .. }) {
            return Err(StoreError::Codec("an attributed command wraps a batch or an envelope".into()));
        }
        self.origin = Some(origin);
        let outcome = self.apply(command);
        self.origin = None;
        outcome
    }

    /// The time of the command being applied when it carries none of its own: the envelope's,
    /// else the newest in the history (deterministic either way).
    fn command_time(&self) -> Result<UnixMillis, StoreError> {
        match &self.origin {
            Some(origin) => Ok(origin.at),
            None => Ok(history::newest_time(self.tables)?.unwrap_or(0)),
        }
    }

    /// Applies one command: each group of commands is applied by its module (`buckets`,
    /// `objects`, `keys`, `users`, `shares`, `replicas`, `events`); envelopes and batches here.
    fn apply(&mut self, command: &Command) -> Result<CommandOutcome, StoreError> {
        match command {
            Command::CreateBucket(bucket) => self.create_bucket(bucket),
            Command::DeleteBucket { name } => self.delete_bucket(name),
            Command::PutObject { bucket, key, meta, condition, completes_upload } => {
                self.put_object(bucket, key, meta, condition, completes_upload.as_deref())
            }
            Command::DeleteObjects { bucket, keys } => self.delete_objects(bucket, keys),
            Command::SetTags { bucket, key, tags } => self.set_tags(bucket, key, tags),
            Command::CreateUpload(upload) => self.create_upload(upload),
            Command::AbortUpload { id } => self.abort_upload(id),
            Command::PutAccessKey(access_key) => self.put_access_key(access_key),
            // Batches are unrolled by `apply_entry`; a nested one would be a proposer bug.
            Command::Batch(_) => Err(StoreError::Codec("nested command batch".into())),
            Command::Attributed { actor, at, command } => {
                self.apply_attributed(Origin { actor: actor.clone(), at: *at, client: None }, command)
            }
            Command::AttributedFrom { actor, at, client, command } => {
                let origin = Origin { actor: actor.clone(), at: *at, client: Some(client.clone()) };
                self.apply_attributed(origin, command)
            }
            Command::WebhookDelivered { subscription, cursor } => self.webhook_delivered(subscription, *cursor),
            Command::UpsertUsers { users, at, sign_in } => self.upsert_users(users, *at, *sign_in),
            Command::MarkUsersDeleted { ids, at } => self.mark_users_deleted(ids, *at),
            Command::CreateShare(share) => self.create_share(share),
            Command::RevokeShare { id, at } => self.revoke_share(id, *at),
            Command::UseShare { id, at, client } => self.use_share(id, *at, client),
            Command::CountShareUses { id, at, count, client } => self.count_share_uses(id, *at, *count, client),
            Command::ReplicaAdded { bucket, key, blob, node, at } => self.replica_added(bucket, key, blob, *node, *at),
            Command::ReplicaLost { bucket, key, blob, node, at } => self.replica_lost(bucket, key, blob, *node, *at),
            Command::TrimEvents { through } => self.trim_events(*through),
            Command::CreateAccessKey { key, owner } => self.create_access_key(key, owner),
            Command::SetAccessKeyDisabled { id, disabled } => self.set_access_key_disabled(id, *disabled),
            Command::DeleteAccessKey { id } => self.delete_access_key(id),
            Command::RaiseFormat { format } => self.raise_format(*format),
            Command::DeleteBucketAbortingUploads { name } => self.delete_bucket_aborting_uploads(name),
            Command::PutBucketCors { bucket, cors } => self.put_bucket_cors(bucket, cors),
            Command::DeleteBucketCors { bucket } => self.delete_bucket_cors(bucket),
            Command::PutBucketVersioning { bucket, state } => self.put_bucket_versioning(bucket, *state),
            Command::DeleteVersion { bucket, key, version_id } => {
                // Judged at the envelope's time (the proposer's), without bypass: a lock holds
                // against every path that deletes a version.
                let now = self.command_time()?;
                self.delete_version_at(bucket, key, version_id, now, false)
            }
            Command::CreateBucketWithObjectLock(bucket) => self.create_bucket_with_object_lock(bucket),
            Command::PutObjectLockConfiguration { bucket, config } => {
                self.put_object_lock_configuration(bucket, config)
            }
            Command::WithObjectLock { lock, command } => self.with_object_lock(*lock, command),
            Command::PutObjectRetention { bucket, key, version_id, retention, now, bypass_governance } => {
                self.put_object_retention(bucket, key, version_id, *retention, *now, *bypass_governance)
            }
            Command::PutObjectLegalHold { bucket, key, version_id, on } => {
                self.put_object_legal_hold(bucket, key, version_id, *on)
            }
            Command::DeleteVersionAt { bucket, key, version_id, now, bypass_governance } => {
                self.delete_version_at(bucket, key, version_id, *now, *bypass_governance)
            }
            Command::SetBucketAccess { bucket, change } => self.set_bucket_access(bucket, change),
            Command::PutObjectAcl { bucket, key, acl } => self.put_object_acl(bucket, key, acl),
            Command::WithAcl { acl, command } => self.with_acl(acl, command),
            Command::WithPartChecksums { parts, command } => self.with_part_checksums(parts, command),
            Command::SetVersionTags { bucket, key, version_id, tags } => {
                self.set_version_tags(bucket, key, version_id, tags)
            }
            Command::PutVersionAcl { bucket, key, version_id, acl } => {
                self.put_version_acl(bucket, key, version_id, acl)
            }
        }
    }
}

impl Changes<'_> {
    /// Records a raised active format. A format this binary cannot read fails the apply (the
    /// node stops rather than write or read records it does not understand): the leader only
    /// proposes a format every member said it reads.
    fn raise_format(&mut self, format: u16) -> Result<CommandOutcome, StoreError> {
        if format > crate::codec::CURRENT_FORMAT {
            return Err(StoreError::UnknownFormat {
                record: "cluster format raise",
                format: u64::from(format),
                readable: crate::codec::CURRENT_FORMAT,
            });
        }
        if format > self.tables.active_format()? {
            self.put(tables::FORMAT.to_vec(), &format)?;
            self.format_raised = Some(format);
        }
        Ok(CommandOutcome::Done)
    }
}

/// The first free work item number of entry `index`, one past the highest still stored for it
/// (the items its already applied commands owed). Reusing the number of an item a worker already
/// completed is harmless: its key is gone.
fn next_work_seq(tables: &Tables, index: u64) -> Result<u32, StoreError> {
    let mut prefix = tables::WORK.to_vec();
    prefix.extend_from_slice(&index.to_be_bytes());
    let Some(item) = tables.tree.scan_prefix(&prefix).next_back() else { return Ok(0) };
    let (key, _) = item?;
    let seq = key
        .get(prefix.len()..)
        .and_then(|rest| <[u8; 4]>::try_from(rest).ok())
        .ok_or_else(|| StoreError::Codec("malformed work item key".into()))?;
    Ok(u32::from_be_bytes(seq).saturating_add(1))
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
            batch: crate::snapshot_view::StateBatch::default(),
            index: entry.log_id.index,
            work_added: 0,
            origin: None,
            events: Vec::new(),
            regions: None,
            trim: None,
            format_raised: None,
            versions_made: 0,
            requested_lock: None,
        };
        let mut history = HistoryWriter::begin(&self.tables, entry.log_id.index)?;
        let outcome = match &entry.payload {
            EntryPayload::Blank => CommandOutcome::Done,
            EntryPayload::Normal(Command::Batch(commands)) => {
                // Each command sees the ones before it: they are written one sled batch at a
                // time, and the history notes with each how many commands are done. The applied
                // index moves only with the last one, so a crash in between re-applies the
                // entry: the commands already done are skipped, since applying one again on top
                // of the later ones would undo them (k->A re-applied over k->B).
                if history.resumed() {
                    // The work items the done commands owed are stored under this index.
                    changes.work_added = next_work_seq(&self.tables, entry.log_id.index)?;
                }
                let mut outcomes = Vec::with_capacity(commands.len());
                for (i, command) in commands.iter().enumerate() {
                    if history.already_applied(i) {
                        // Nobody waits for the outcomes of a crash re-apply: the proposer's
                        // call ended with the crash.
                        outcomes.push(CommandOutcome::Done);
                        continue;
                    }
                    changes.versions_made = u32::try_from(i).unwrap_or(u32::MAX >> 16).min(u32::MAX >> 16) << 16;
                    outcomes.push(changes.apply(command)?);
                    history.add(std::mem::take(&mut changes.events))?;
                    if let Some(through) = changes.trim.take() {
                        history.trim_through(&self.tables, &mut changes.batch, through)?;
                    }
                    if i + 1 < commands.len() {
                        history.checkpoint(&mut changes.batch, i + 1)?;
                        self.tables.apply_batch(std::mem::take(&mut changes.batch))?;
                    }
                }
                CommandOutcome::Batch(outcomes)
            }
            EntryPayload::Normal(command) => {
                let outcome = changes.apply(command)?;
                history.add(std::mem::take(&mut changes.events))?;
                if let Some(through) = changes.trim.take() {
                    history.trim_through(&self.tables, &mut changes.batch, through)?;
                }
                outcome
            }
            EntryPayload::Membership(membership) => {
                let stored = StoredMembership::new(Some(entry.log_id), membership.clone());
                changes.put(tables::MEMBERSHIP.to_vec(), &stored)?;
                CommandOutcome::Done
            }
        };
        history.finish(&mut changes.batch)?;
        changes.put(tables::APPLIED.to_vec(), &entry.log_id)?;
        let owes_work = changes.work_added > 0;
        self.tables.apply_batch(changes.batch)?;
        if let Some(format) = changes.format_raised {
            crate::codec::set_active_format(format);
            tracing::info!(
                format,
                index = entry.log_id.index,
                "cluster format raised: records are written in it from now on"
            );
        }
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
            self.leases.admit(entry.log_id).await;
            // A dump in progress keeps the pre-images of what entries change; past its budget
            // the entry waits for the dump to catch up (at once when none runs).
            self.tables.view.room().await;
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
        // Only the view opens here, between two `apply` calls (this runs on the worker that
        // applies); the file is written by `build_snapshot`, which openraft runs in a task of
        // its own while applies go on. openraft starts no build while one runs, so the wait
        // for the lock is for nothing in practice.
        let dumping = self.snapshots.dumping.clone().lock_owned().await;
        let pending = self.snapshots.open_view(&self.tables);
        crate::snapshot::SnapshotBuilder { pending: Some(pending), files: self.snapshots.clone(), _dumping: dumping }
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
        // An install rewrites every record in one batch, past the pre-image bookkeeping of a
        // dump: it waits until a dump in progress has written its file.
        let _no_dump = self.snapshots.dumping.lock().await;
        let Some(path) = self.incoming.take() else {
            return Err(sm_error(StoreError::Codec("install_snapshot without a received snapshot".into())));
        };
        self.snapshots.install(&path, meta, &self.tables, self.node).map_err(sm_error)?;
        // The snapshot's records replaced ours, the cluster's format with them.
        crate::codec::set_active_format(self.tables.active_format().map_err(sm_error)?);
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
    use crate::command::Rejection;
    use crate::model::Bucket;
    use crate::state_machine::testing::{entry, kinds, owed, put, state_machine};

    /// The proposal batcher closes a batch by the object bytes it carries inline: they count
    /// through envelopes and nested batches; blob-backed objects weigh nothing.
    #[test]
    fn inline_bytes_count_through_envelopes_and_batches() {
        let mut small = put("s", "", 1);
        if let Command::PutObject { meta, .. } = &mut small {
            meta.inline = Some(vec![7; 100]);
        }
        let attributed = small.clone().attributed_from(None, 1, Some("192.0.2.1".into()));
        let batch = Command::Batch(vec![attributed, put("big", "blob-1", 1), small.clone()]);
        assert_eq!(small.inline_bytes(), 100);
        assert_eq!(batch.inline_bytes(), 200);
        assert_eq!(Command::DeleteBucket { name: "b".into() }.inline_bytes(), 0);
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

    /// Applying records the events of what actually changed, with the envelope's actor and time,
    /// under cursors ordered like the log; refused commands yield none.
    #[test]
    fn apply_records_events_with_actor_and_time() {
        use crate::event::{Actor, Cursor, EventKind};
        let dir = tempfile::tempdir().expect("tempdir");
        let sm = state_machine(dir.path());
        let bucket = Bucket { name: "b".into(), created: 5, region: "r".into() };
        let alice = Some(Actor::AccessKey("ALICE".into()));
        sm.apply_entry(&entry(1, Command::CreateBucket(bucket.clone()).attributed(alice.clone(), 100))).expect("apply");
        sm.apply_entry(&entry(2, put("k1", "cc01", 1))).expect("apply");
        let batch = Command::Batch(vec![
            Command::CreateBucket(bucket).attributed(alice.clone(), 200),
            put("k2", "cc02", 1).attributed(alice.clone(), 201),
            Command::DeleteObjects { bucket: "b".into(), keys: vec!["k1".into(), "nope".into(), "k2".into()] }
                .attributed(None, 202),
        ]);
        sm.apply_entry(&entry(3, batch)).expect("apply");
        let replica = |key: &str, blob: &str| Command::ReplicaAdded {
            bucket: "b".into(),
            key: key.into(),
            blob: blob.into(),
            node: 2,
            at: 300,
        };
        sm.apply_entry(&entry(4, put("k3", "cc03", 1))).expect("apply");
        sm.apply_entry(&entry(5, replica("k3", "cc03"))).expect("apply");
        sm.apply_entry(&entry(6, replica("k3", "cc03"))).expect("apply");

        let events = crate::history::read(&sm.tables, None, 100, 6).expect("read");
        let seen: Vec<(String, &str, i64, Option<String>)> = events
            .iter()
            .map(|e| (e.cursor.to_string(), e.kind.name(), e.at, e.actor.as_ref().map(ToString::to_string)))
            .collect();
        let key = Some("key:ALICE".to_owned());
        assert_eq!(
            seen,
            vec![
                ("1.0".into(), "BucketCreated", 100, key.clone()),
                ("2.0".into(), "ObjectCreated", 0, None),
                ("3.0".into(), "ObjectCreated", 201, key),
                ("3.1".into(), "ObjectDeleted", 202, None),
                ("3.2".into(), "ObjectDeleted", 202, None),
                ("4.0".into(), "ObjectCreated", 0, None),
                ("5.0".into(), "ObjectReplicated", 300, None),
            ]
        );
        assert_eq!(
            events[1].kind,
            EventKind::ObjectCreated {
                bucket: "b".into(),
                key: "k1".into(),
                size: 1,
                etag: "e".into(),
                region: "node-1".into(),
            }
        );
        assert_eq!(events[4].kind, EventKind::ObjectDeleted { bucket: "b".into(), key: "k2".into() });
        assert!(events.iter().all(|e| e.client.is_none()), "no envelope here names a client");

        // Webhook cursors only move forward.
        let delivered = |cursor| Command::WebhookDelivered { subscription: "hook".into(), cursor };
        sm.apply_entry(&entry(7, delivered(Cursor { index: 3, sub: 1 }))).expect("apply");
        sm.apply_entry(&entry(8, delivered(Cursor { index: 2, sub: 0 }))).expect("apply");
        assert_eq!(sm.tables.delivered("hook").expect("read"), Some(Cursor { index: 3, sub: 1 }));

        // An envelope with the client's address puts it on the command's events; a user actor
        // in it owns what they write, as with the plain envelope.
        let user = Some(Actor::User("u-1".into()));
        let from = put("k4", "cc04", 1).attributed_from(user.clone(), 400, Some("192.0.2.9".into()));
        assert!(matches!(from, Command::AttributedFrom { .. }));
        sm.apply_entry(&entry(9, from)).expect("apply");
        let last = crate::history::read(&sm.tables, Some(Cursor::after_entry(8)), 10, 9).expect("read");
        assert_eq!(last.len(), 1);
        assert_eq!((last[0].client.as_deref(), last[0].actor.clone(), last[0].at), (Some("192.0.2.9"), user, 400));
        assert_eq!(sm.tables.owner("b", "k4").expect("owner"), Some("u-1".into()));
        let nested = Command::AttributedFrom {
            actor: None,
            at: 1,
            client: "192.0.2.9".into(),
            command: Box::new(put("k5", "cc05", 1).attributed(None, 1)),
        };
        assert!(sm.apply_entry(&entry(10, nested)).is_err(), "an envelope in an envelope is refused");
    }

    /// A batch entry interrupted between its commands' sled batches (here by a failing command,
    /// as a crash would) and applied again skips the commands already applied: re-running
    /// `k -> A` over the later `k -> B` would owe a drop of B, and the work items of the commands
    /// still to come must not take the numbers of those already owed.
    #[test]
    fn a_reapplied_batch_skips_the_commands_already_applied() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sm = state_machine(dir.path());
        let bucket = Bucket { name: "b".into(), created: 0, region: "r".into() };
        sm.apply_entry(&entry(1, Command::CreateBucket(bucket))).expect("apply");
        let done = vec![put("k", "aa0a", 1), put("k", "aa0b", 1), put("p1", "aa01", 2)];
        let mut interrupted = done.clone();
        interrupted.push(Command::Batch(Vec::new()));
        assert!(sm.apply_entry(&entry(5, Command::Batch(interrupted))).is_err(), "the fourth command fails");
        assert_eq!(sm.tables.applied().expect("read").map(|l| l.index), Some(1), "the entry is not applied");

        let mut again = done;
        again.push(put("p2", "aa02", 2));
        let (outcome, _) = sm.apply_entry(&entry(5, Command::Batch(again))).expect("re-apply");
        assert!(matches!(outcome, CommandOutcome::Batch(ref o) if o.len() == 4), "{outcome:?}");
        assert_eq!(sm.tables.object("b", "k").expect("read").map(|o| o.blob), Some("aa0b".into()));
        let work = owed(&sm);
        let pull = |key: &str, blob: &str| WorkItem::Pull { bucket: "b".into(), key: key.into(), blob: blob.into() };
        assert_eq!(work, vec![WorkItem::DropBlob { blob: "aa0a".into() }, pull("p1", "aa01"), pull("p2", "aa02")]);
        let kinds = kinds(&sm, 5);
        assert_eq!(kinds, ["BucketCreated", "ObjectCreated", "ObjectUpdated", "ObjectCreated", "ObjectCreated"]);
    }
}
