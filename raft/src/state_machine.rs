//! The Raft state machine: applying committed commands to the placement database.
//!
//! `apply` turns each entry into one atomic sled batch: the placement change, the work items it
//! owes this node (e.g. "drop blob Y"), the events it means for outside consumers, and the new
//! applied index, together. It never does network I/O and never calls back into Raft; it only
//! wakes the local workers.

use openraft::storage::RaftStateMachine;
use openraft::{Entry, EntryPayload, LogId, OptionalSend, Snapshot, SnapshotMeta, StorageError, StoredMembership};
use std::collections::BTreeMap;
use std::path::PathBuf;
use tokio::sync::watch;

use crate::command::{Command, CommandOutcome, Rejection, WriteCondition};
use crate::error::StoreError;
use crate::event::{Actor, Cursor, EventKind};
use crate::history::{self, HistoryWriter, NewEvent};
use crate::model::{KeyRecord, Share, ShareAudience, ShareState, UnixMillis, User, WorkItem};
use crate::node_id::{NodeId, RegionNode};
use crate::snapshot::SnapshotFiles;
use crate::tables::{self, Tables, record_key};
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
    batch: sled::Batch,
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

    /// Removes the current version of a key, if any, with its blob index entry; owes a blob
    /// drop when this node holds the bytes. Returns whether a version existed.
    fn remove_object(&mut self, bucket: &str, key: &str, keep_blob: Option<&str>) -> Result<bool, StoreError> {
        let Some(old) = self.tables.object(bucket, key)? else { return Ok(false) };
        self.batch.remove(record_key(tables::OBJECT, &[bucket, key]));
        self.batch.remove(record_key(tables::OWNER, &[bucket, key]));
        self.batch.remove(record_key(tables::OWNED_SINCE, &[bucket, key]));
        if old.inline.is_none() && keep_blob != Some(old.blob.as_str()) {
            self.batch.remove(record_key(tables::BLOB, &[&old.blob]));
            if old.holders.contains_key(&self.node) {
                self.owe(&WorkItem::DropBlob { blob: old.blob })?;
            }
        }
        Ok(true)
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

    /// Indexes a new share by file, by the user it names and by its creator (see `tables`).
    fn index_share(&mut self, share: &Share) -> Result<(), StoreError> {
        let id = &share.id;
        self.put(record_key(tables::SHARE_BY_OBJECT, &[&share.bucket, &share.key, id]), id)?;
        self.put(record_key(tables::SHARE_BY_CREATOR, &[&share.created_by, id]), id)?;
        if let ShareAudience::User { user, .. } = &share.audience {
            self.put(record_key(tables::SHARE_BY_USER, &[user, &share.bucket, &share.key, id]), id)?;
        }
        Ok(())
    }

    /// Revokes the shares of a file that is going away (deleted, or its bucket deleted), so a
    /// later file at the same key, maybe someone else's, is never reachable through them; and
    /// drops them from the file and user indexes, which describe the file as it is now. The
    /// creator keeps seeing them, revoked.
    fn revoke_shares_of(&mut self, shares: Vec<Share>) -> Result<(), StoreError> {
        let at = self.command_time()?;
        for mut share in shares {
            let id = share.id.clone();
            self.batch.remove(record_key(tables::SHARE_BY_OBJECT, &[&share.bucket, &share.key, &id]));
            if let ShareAudience::User { user, .. } = &share.audience {
                self.batch.remove(record_key(tables::SHARE_BY_USER, &[user, &share.bucket, &share.key, &id]));
            }
            if share.revoked.is_some() {
                continue;
            }
            share.revoked = Some(at);
            self.put(record_key(tables::SHARE, &[&id]), &share)?;
            let kind = EventKind::ShareRevoked { share: id, bucket: share.bucket, key: share.key };
            self.emit(Some(at), kind)?;
        }
        Ok(())
    }

    fn apply(&mut self, command: &Command) -> Result<CommandOutcome, StoreError> {
        use CommandOutcome::{Deleted, Done, Rejected};
        Ok(match command {
            Command::CreateBucket(bucket) => {
                // A name with `/` would alias other records' keys: no such bucket can exist.
                if !tables::addressable(&bucket.name) {
                    return Ok(Rejected(Rejection::NoSuchBucket));
                }
                if self.tables.bucket(&bucket.name)?.is_some() {
                    return Ok(Rejected(Rejection::BucketAlreadyOwnedByYou));
                }
                self.put(record_key(tables::BUCKET, &[&bucket.name]), bucket)?;
                // A bucket a signed-in user creates is theirs, with every file in it.
                if let Some(Origin { actor: Some(Actor::User(id)), .. }) = self.origin.clone() {
                    self.put(record_key(tables::OWNER, &[&bucket.name]), &id)?;
                    let since = self.index;
                    self.put(record_key(tables::OWNED_SINCE, &[&bucket.name]), &since)?;
                }
                let kind = EventKind::BucketCreated { bucket: bucket.name.clone(), region: bucket.region.clone() };
                self.emit(Some(bucket.created), kind)?;
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
                self.batch.remove(record_key(tables::OWNER, &[name]));
                self.batch.remove(record_key(tables::OWNED_SINCE, &[name]));
                // Deleting each file revoked its shares already; this catches those left from
                // before that rule (not in the file index, hence the scan: bucket deletes are
                // rare), so a bucket re-created by someone else starts clean.
                let mut leftover = self.tables.shares()?;
                leftover.retain(|s| s.bucket == *name && s.revoked.is_none());
                self.revoke_shares_of(leftover)?;
                self.emit(None, EventKind::BucketDeleted { bucket: name.clone() })?;
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
                // An overwrite never changes ownership: a user with a write share, or an S3 key,
                // replaces the owner's file, it does not take it, and a file nobody owns (written
                // by a key) stays unowned, or a write share would turn into delete and share
                // rights that outlive the share. A user becomes owner only of a file their write
                // creates, or of one in their own bucket. Ownership keeps its start across
                // overwrites; a new owner's starts here.
                let owner = match self.tables.owner(bucket, key)? {
                    Some(owner) => Some((owner, self.tables.owned_since(bucket, Some(key))?)),
                    None => match &self.origin {
                        Some(Origin { actor: Some(Actor::User(id)), .. })
                            if current.is_none() || self.tables.bucket_owner(bucket)?.as_deref() == Some(id) =>
                        {
                            Some((id.clone(), Some(self.index)))
                        }
                        _ => None,
                    },
                };
                let replaced = self.remove_object(bucket, key, Some(&meta.blob))?;
                self.put(record_key(tables::OBJECT, &[bucket, key]), meta)?;
                if let Some((owner, since)) = owner {
                    self.put(record_key(tables::OWNER, &[bucket, key]), &owner)?;
                    if let Some(since) = since {
                        self.put(record_key(tables::OWNED_SINCE, &[bucket, key]), &since)?;
                    }
                }
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
                // The writer is the holder that had it first (a new version has only that one).
                let writer = meta.holders.iter().min_by_key(|(_, at)| **at).map(|(node, _)| *node);
                let region = match writer {
                    Some(node) => self.region_of(node)?,
                    None => String::new(),
                };
                let (bucket, key, size, etag) = (bucket.clone(), key.clone(), meta.size, meta.etag.clone());
                let kind = if replaced {
                    EventKind::ObjectUpdated { bucket, key, size, etag, region }
                } else {
                    EventKind::ObjectCreated { bucket, key, size, etag, region }
                };
                self.emit(Some(meta.last_modified), kind)?;
                Done
            }
            Command::DeleteObjects { bucket, keys } => {
                if self.tables.bucket(bucket)?.is_none() {
                    return Ok(Rejected(Rejection::NoSuchBucket));
                }
                let mut deleted = Vec::new();
                for key in keys {
                    if self.remove_object(bucket, key, None)? {
                        self.emit(None, EventKind::ObjectDeleted { bucket: bucket.clone(), key: key.clone() })?;
                        // A delete ends the file's shares; an overwrite (PutObject) keeps them.
                        let shares = self.tables.shares_of_object(bucket, key)?;
                        self.revoke_shares_of(shares)?;
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
            Command::Attributed { actor, at, command } => {
                self.apply_attributed(Origin { actor: actor.clone(), at: *at, client: None }, command)?
            }
            Command::AttributedFrom { actor, at, client, command } => {
                let origin = Origin { actor: actor.clone(), at: *at, client: Some(client.clone()) };
                self.apply_attributed(origin, command)?
            }
            Command::WebhookDelivered { subscription, cursor } => {
                if self.tables.delivered(subscription)?.is_none_or(|current| current < *cursor) {
                    self.put(record_key(tables::SUBSCRIPTION, &[subscription]), cursor)?;
                }
                Done
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
            Command::CreateShare(share) => {
                if self.tables.share(&share.id)?.is_some() {
                    return Ok(Rejected(Rejection::PreconditionFailed));
                }
                // The file may have been deleted since the proposer looked: a share of nothing
                // would come back to life with the next file at that key.
                if self.tables.object(&share.bucket, &share.key)?.is_none() {
                    return Ok(Rejected(Rejection::NoSuchKey));
                }
                self.put(record_key(tables::SHARE, &[&share.id]), share)?;
                self.index_share(share)?;
                let audience = match &share.audience {
                    ShareAudience::Public { token_sha256, .. } => {
                        self.put(record_key(tables::SHARE_TOKEN, &[token_sha256]), &share.id)?;
                        "public".to_owned()
                    }
                    ShareAudience::User { user, permission } => format!("user:{user}:{permission}"),
                };
                let kind = EventKind::ShareCreated {
                    share: share.id.clone(),
                    bucket: share.bucket.clone(),
                    key: share.key.clone(),
                    audience,
                    expires: share.expires,
                };
                self.emit(Some(share.created), kind)?;
                Done
            }
            Command::RevokeShare { id, at } => {
                let Some(mut share) = self.tables.share(id)?.filter(|s| s.revoked.is_none()) else {
                    return Ok(Rejected(Rejection::NoSuchKey));
                };
                share.revoked = Some(*at);
                self.put(record_key(tables::SHARE, &[id]), &share)?;
                let kind = EventKind::ShareRevoked { share: id.clone(), bucket: share.bucket, key: share.key };
                self.emit(Some(*at), kind)?;
                Done
            }
            Command::UseShare { id, at, client } => {
                let Some(mut share) = self.tables.share(id)? else {
                    return Ok(Rejected(Rejection::NoSuchKey));
                };
                // Judged no earlier than the newest time already in the history, so a proposer
                // whose clock runs behind cannot stretch a link past its expiry.
                let now = history::newest_time(self.tables)?.map_or(*at, |newest| newest.max(*at));
                if share.state(now) != ShareState::Active {
                    return Ok(Rejected(Rejection::PreconditionFailed));
                }
                share.downloads += 1;
                self.put(record_key(tables::SHARE, &[id]), &share)?;
                let kind = EventKind::ShareUsed {
                    share: id.clone(),
                    bucket: share.bucket,
                    key: share.key,
                    client: client.clone(),
                };
                self.emit(Some(*at), kind)?;
                Done
            }
            Command::CountShareUses { id, at, count, client } => {
                let Some(mut share) = self.tables.share(id)? else {
                    return Ok(Rejected(Rejection::NoSuchKey));
                };
                share.downloads = share.downloads.saturating_add(*count);
                self.put(record_key(tables::SHARE, &[id]), &share)?;
                let client =
                    if *count > 1 { format!("{client} and {} more downloads", count - 1) } else { client.clone() };
                let kind = EventKind::ShareUsed { share: id.clone(), bucket: share.bucket, key: share.key, client };
                self.emit(Some(*at), kind)?;
                Done
            }
            Command::ReplicaAdded { bucket, key, blob, node, at } => match self.tables.object(bucket, key)? {
                Some(mut meta) if &meta.blob == blob => {
                    let new_region = meta.holders.insert(*node, *at).is_none();
                    self.put(record_key(tables::OBJECT, &[bucket, key]), &meta)?;
                    if new_region {
                        let region = self.region_of(*node)?;
                        let kind = EventKind::ObjectReplicated { bucket: bucket.clone(), key: key.clone(), region };
                        self.emit(Some(*at), kind)?;
                    }
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
            Command::ReplicaLost { bucket, key, blob, node, at } => {
                let Some(mut meta) = self.tables.object(bucket, key)?.filter(|m| &m.blob == blob) else {
                    // Superseded or deleted since the scrub looked: the overwrite or delete
                    // already owed the drop of this blob, and there is nothing to pull back.
                    return Ok(Rejected(Rejection::NoSuchKey));
                };
                if !meta.holders.contains_key(node) {
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
                meta.holders.remove(node);
                self.put(record_key(tables::OBJECT, &[bucket, key]), &meta)?;
                // Same batch as the placement change: the node cannot be unlisted and forget
                // to fetch the blob again. A later ReplicaAdded (from that pull) lists it again.
                if *node == self.node {
                    self.owe(&WorkItem::Pull { bucket: bucket.clone(), key: key.clone(), blob: blob.clone() })?;
                }
                // Tells consumers why the ObjectReplicated of the repair comes a second time.
                let region = self.region_of(*node)?;
                self.emit(
                    Some(*at),
                    EventKind::ObjectReplicaLost { bucket: bucket.clone(), key: key.clone(), region },
                )?;
                Done
            }
            Command::TrimEvents { through } => {
                self.trim = Some(*through);
                Done
            }
            Command::CreateAccessKey { key, owner } => {
                if self.tables.access_key(&key.id)?.is_some() {
                    return Ok(Rejected(Rejection::PreconditionFailed));
                }
                self.put(record_key(tables::KEY, &[&key.id]), key)?;
                let record = KeyRecord { owner: Some(owner.clone()), disabled: None };
                self.put(record_key(tables::KEY_RECORD, &[&key.id]), &record)?;
                Done
            }
            Command::SetAccessKeyDisabled { id, disabled } => {
                if self.tables.access_key(id)?.is_none() {
                    return Ok(Rejected(Rejection::NoSuchKey));
                }
                // A legacy key gets a record here, its owner still unknown.
                let mut record = self.tables.key_record(id)?.unwrap_or_default();
                record.disabled = *disabled;
                self.put(record_key(tables::KEY_RECORD, &[id]), &record)?;
                Done
            }
            Command::DeleteAccessKey { id } => {
                if self.tables.access_key(id)?.is_none() {
                    return Ok(Rejected(Rejection::NoSuchKey));
                }
                self.batch.remove(record_key(tables::KEY, &[id]));
                self.batch.remove(record_key(tables::KEY_RECORD, &[id]));
                Done
            }
        })
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
            batch: sled::Batch::default(),
            index: entry.log_id.index,
            work_added: 0,
            origin: None,
            events: Vec::new(),
            regions: None,
            trim: None,
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
                    outcomes.push(changes.apply(command)?);
                    history.add(std::mem::take(&mut changes.events))?;
                    if let Some(through) = changes.trim.take() {
                        history.trim_through(&self.tables, &mut changes.batch, through)?;
                    }
                    if i + 1 < commands.len() {
                        history.checkpoint(&mut changes.batch, i + 1)?;
                        self.tables.tree.apply_batch(std::mem::take(&mut changes.batch))?;
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
            self.leases.admit(entry.log_id).await;
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
            leases: std::sync::Arc::new(crate::lease::Leases::new(
                std::time::Duration::ZERO,
                std::time::Duration::ZERO,
                Some(LogId::new(openraft::CommittedLeaderId::new(1, 1), u64::MAX)),
            )),
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

    /// The work items this node owes, in order.
    fn owed(sm: &StateMachine) -> Vec<WorkItem> {
        sm.tables.work_items().expect("work").into_iter().map(|(_, w)| w).collect()
    }

    /// The kinds of the retained events up to `applied`, in order.
    fn kinds(sm: &StateMachine, applied: u64) -> Vec<&'static str> {
        crate::history::read(&sm.tables, None, 100, applied).expect("read").iter().map(|e| e.kind.name()).collect()
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

    /// A first write by a signed-in user makes them the owner; an overwrite by anyone else is an
    /// update that keeps the owner; a delete forgets it.
    #[test]
    fn users_own_what_they_create_and_overwrites_are_updates() {
        use crate::event::Actor;
        let dir = tempfile::tempdir().expect("tempdir");
        let sm = state_machine(dir.path());
        let bucket = Bucket { name: "b".into(), created: 5, region: "r".into() };
        let alice = Some(Actor::User("u-alice".into()));
        sm.apply_entry(&entry(1, Command::CreateBucket(bucket).attributed(alice.clone(), 9))).expect("apply");
        assert_eq!(sm.tables.bucket_owner("b").expect("owner"), Some("u-alice".into()), "a user's bucket is theirs");
        let key = Some(Actor::AccessKey("KEY".into()));
        sm.apply_entry(&entry(2, put("k", "dd01", 1).attributed(alice, 10))).expect("apply");
        assert_eq!(sm.tables.owner("b", "k").expect("owner"), Some("u-alice".into()));
        sm.apply_entry(&entry(3, put("k", "dd02", 1).attributed(key.clone(), 11))).expect("apply");
        assert_eq!(sm.tables.owner("b", "k").expect("owner"), Some("u-alice".into()), "an overwrite keeps the owner");
        sm.apply_entry(&entry(4, put("s3", "dd03", 1).attributed(key, 12))).expect("apply");
        assert_eq!(sm.tables.owner("b", "s3").expect("owner"), None, "an S3 key owns nothing");
        let delete = Command::DeleteObjects { bucket: "b".into(), keys: vec!["k".into()] };
        sm.apply_entry(&entry(5, delete)).expect("apply");
        assert_eq!(sm.tables.owner("b", "k").expect("owner"), None, "a delete forgets the owner");
        let kinds = kinds(&sm, 5);
        assert_eq!(kinds, ["BucketCreated", "ObjectCreated", "ObjectUpdated", "ObjectCreated", "ObjectDeleted"]);
    }

    /// A write share never turns into ownership: a user overwriting a file nobody owns (written
    /// by an S3 key) does not become its owner; creating a file, or writing in one's own bucket,
    /// does.
    #[test]
    fn an_overwrite_of_an_unowned_file_does_not_make_the_writer_its_owner() {
        use crate::event::Actor;
        let dir = tempfile::tempdir().expect("tempdir");
        let sm = state_machine(dir.path());
        let bob = Some(Actor::User("u-bob".into()));
        let alice = Some(Actor::User("u-alice".into()));
        let key = Some(Actor::AccessKey("KEY".into()));
        let bucket = Bucket { name: "b".into(), created: 5, region: "r".into() };
        sm.apply_entry(&entry(1, Command::CreateBucket(bucket).attributed(key.clone(), 9))).expect("apply");
        sm.apply_entry(&entry(2, put("k", "ee01", 1).attributed(key.clone(), 10))).expect("apply");
        assert_eq!(sm.tables.owner("b", "k").expect("owner"), None);
        sm.apply_entry(&entry(3, put("k", "ee02", 1).attributed(bob.clone(), 11))).expect("apply");
        assert_eq!(sm.tables.owner("b", "k").expect("owner"), None, "an overwrite through a share takes nothing");
        sm.apply_entry(&entry(4, put("new", "ee03", 1).attributed(bob, 12))).expect("apply");
        assert_eq!(sm.tables.owner("b", "new").expect("owner"), Some("u-bob".into()), "a creating write owns");

        // In a bucket of her own, alice's overwrite of a key-written file makes it hers.
        let mine = Bucket { name: "a".into(), created: 5, region: "r".into() };
        sm.apply_entry(&entry(5, Command::CreateBucket(mine).attributed(alice.clone(), 13))).expect("apply");
        let in_a = |blob: &str| match put("f", blob, 1) {
            Command::PutObject { key, meta, condition, completes_upload, .. } => {
                Command::PutObject { bucket: "a".into(), key, meta, condition, completes_upload }
            }
            other => other,
        };
        sm.apply_entry(&entry(6, in_a("ee04").attributed(key, 14))).expect("apply");
        assert_eq!(sm.tables.owner("a", "f").expect("owner"), None);
        sm.apply_entry(&entry(7, in_a("ee05").attributed(alice, 15))).expect("apply");
        assert_eq!(sm.tables.owner("a", "f").expect("owner"), Some("u-alice".into()));
    }

    /// Keys are created with an owner (never over another key), disabled and enabled, and
    /// deleted with their record; a key made by `PutAccessKey` is a legacy key: enabled, owned
    /// by the service named after it, until it gets a record.
    #[test]
    fn access_keys_are_created_disabled_enabled_and_deleted() {
        use crate::model::{AccessKey, KeyOwner};
        let dir = tempfile::tempdir().expect("tempdir");
        let sm = state_machine(dir.path());
        let key = |id: &str| AccessKey { id: id.into(), secret: "s".into(), name: format!("n-{id}"), created: 7 };
        let owner = KeyOwner::User("u-1".into());
        let create = |id: &str| Command::CreateAccessKey { key: key(id), owner: owner.clone() };
        let outcome = |sm: &StateMachine, i, c| sm.apply_entry(&entry(i, c)).expect("apply").0;
        assert_eq!(outcome(&sm, 1, create("K1")), CommandOutcome::Done);
        assert_eq!(outcome(&sm, 2, create("K1")), CommandOutcome::Rejected(Rejection::PreconditionFailed));
        assert_eq!(outcome(&sm, 3, Command::PutAccessKey(key("LEGACY"))), CommandOutcome::Done);
        let infos = sm.tables.access_keys().expect("list");
        assert_eq!(infos.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["K1", "LEGACY"]);
        assert_eq!((infos[0].owner.clone(), infos[0].owner_recorded), (owner.clone(), true));
        assert_eq!((infos[1].owner.clone(), infos[1].owner_recorded), (KeyOwner::Service("n-LEGACY".into()), false));
        assert!(infos.iter().all(|i| i.disabled.is_none() && i.created == 7));

        let disable = |id: &str, at| Command::SetAccessKeyDisabled { id: id.into(), disabled: at };
        assert_eq!(outcome(&sm, 4, disable("LEGACY", Some(50))), CommandOutcome::Done);
        assert_eq!(sm.tables.key_record("LEGACY").expect("read").and_then(|r| r.disabled), Some(50));
        assert_eq!(sm.tables.access_keys().expect("list")[1].owner, KeyOwner::Service("n-LEGACY".into()));
        assert_eq!(outcome(&sm, 5, disable("LEGACY", None)), CommandOutcome::Done);
        assert_eq!(sm.tables.key_record("LEGACY").expect("read").and_then(|r| r.disabled), None);
        assert_eq!(outcome(&sm, 6, disable("NOPE", Some(1))), CommandOutcome::Rejected(Rejection::NoSuchKey));

        let delete = |id: &str| Command::DeleteAccessKey { id: id.into() };
        assert_eq!(outcome(&sm, 7, delete("K1")), CommandOutcome::Done);
        assert_eq!(sm.tables.access_key("K1").expect("read"), None);
        assert_eq!(sm.tables.key_record("K1").expect("read"), None);
        assert_eq!(outcome(&sm, 8, delete("K1")), CommandOutcome::Rejected(Rejection::NoSuchKey));
        // A key re-created at a deleted id starts enabled, with its new owner.
        assert_eq!(outcome(&sm, 9, create("K1")), CommandOutcome::Done);
        assert_eq!(sm.tables.key_record("K1").expect("read").and_then(|r| r.disabled), None);
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
        let work = owed(&sm);
        assert_eq!(work, vec![WorkItem::Pull { bucket: "b".into(), key: "theirs".into(), blob: "bb02".into() }]);
    }

    fn share(id: &str, key: &str, audience: ShareAudience) -> Command {
        Command::CreateShare(Share {
            id: id.into(),
            bucket: "b".into(),
            key: key.into(),
            created_by: "u-alice".into(),
            created: 10,
            expires: Some(1_000),
            revoked: None,
            downloads: 0,
            audience,
        })
    }

    fn public(token: &str) -> ShareAudience {
        ShareAudience::Public { token_sha256: token.into(), password_hash: None, max_downloads: Some(2) }
    }

    /// Downloads counted on a node arrive as one count: added to the link's downloads, with
    /// one event for all of them; an unknown link is refused.
    #[test]
    fn counted_share_uses_add_up_with_one_event() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sm = state_machine(dir.path());
        let bucket = Bucket { name: "b".into(), created: 0, region: "r".into() };
        sm.apply_entry(&entry(1, Command::CreateBucket(bucket))).expect("apply");
        sm.apply_entry(&entry(2, put("k", "ef01", 1).attributed(None, 20))).expect("apply");
        let unlimited = ShareAudience::Public { token_sha256: "t".into(), password_hash: None, max_downloads: None };
        sm.apply_entry(&entry(3, share("s1", "k", unlimited))).expect("apply");
        let count =
            |id: &str, count| Command::CountShareUses { id: id.into(), at: 30, count, client: "192.0.2.1".into() };
        let (outcome, _) = sm.apply_entry(&entry(4, count("s1", 40))).expect("apply");
        assert_eq!(outcome, CommandOutcome::Done);
        let (outcome, _) = sm.apply_entry(&entry(5, count("nope", 1))).expect("apply");
        assert_eq!(outcome, CommandOutcome::Rejected(Rejection::NoSuchKey));
        assert_eq!(sm.tables.share("s1").expect("read").map(|s| s.downloads), Some(40));
        let used = crate::history::read(&sm.tables, None, 100, 5).expect("read");
        let used: Vec<_> = used.iter().filter(|e| e.kind.name() == "ShareUsed").collect();
        assert_eq!(used.len(), 1, "one event for the whole count");
    }

    /// Shares die with their file: a delete (not an overwrite) revokes them and drops them from
    /// the file and user indexes, so a new file at the key starts with none; a share of a
    /// missing file is refused; a bucket delete revokes what is left; uses are judged at the
    /// newest time in the history, not an older proposer clock.
    #[test]
    fn shares_die_with_their_file() {
        use crate::model::SharePermission;
        let dir = tempfile::tempdir().expect("tempdir");
        let sm = state_machine(dir.path());
        let bucket = Bucket { name: "b".into(), created: 0, region: "r".into() };
        sm.apply_entry(&entry(1, Command::CreateBucket(bucket))).expect("apply");
        let (outcome, _) = sm.apply_entry(&entry(2, share("s0", "k", public("t0")))).expect("apply");
        assert_eq!(outcome, CommandOutcome::Rejected(Rejection::NoSuchKey), "no file, no share");
        sm.apply_entry(&entry(3, put("k", "ee01", 1).attributed(None, 20))).expect("apply");
        sm.apply_entry(&entry(4, put("k/sub", "ee02", 1).attributed(None, 21))).expect("apply");
        let carol = ShareAudience::User { user: "u-carol".into(), permission: SharePermission::Write };
        for (i, command) in
            [share("s1", "k", public("t1")), share("s2", "k", carol), share("s3", "k/sub", public("t3"))]
                .into_iter()
                .enumerate()
        {
            let (outcome, _) = sm.apply_entry(&entry(5 + i as u64, command)).expect("apply");
            assert_eq!(outcome, CommandOutcome::Done);
        }
        let ids = |shares: Vec<Share>| shares.into_iter().map(|s| s.id).collect::<Vec<_>>();
        assert_eq!(ids(sm.tables.shares_of_object("b", "k").expect("read")), ["s1", "s2"], "not k/sub's");
        assert_eq!(ids(sm.tables.user_shares_of("u-carol", "b", "k").expect("read")), ["s2"]);
        assert_eq!(ids(sm.tables.shares_created_by("u-alice", None, 10).expect("read").shares), ["s1", "s2", "s3"]);

        // An overwrite keeps them.
        sm.apply_entry(&entry(8, put("k", "ee03", 1).attributed(None, 30))).expect("apply");
        assert_eq!(sm.tables.shares_of_object("b", "k").expect("read").len(), 2, "an overwrite keeps shares");

        // A use at a time before the newest event is judged at the newest event's time.
        let use_at = |at| Command::UseShare { id: "s1".into(), at, client: "c".into() };
        sm.apply_entry(&entry(9, put("late", "ee04", 1).attributed(None, 1_500))).expect("apply");
        let (outcome, _) = sm.apply_entry(&entry(10, use_at(900))).expect("apply");
        assert_eq!(outcome, CommandOutcome::Rejected(Rejection::PreconditionFailed), "expired at the cluster's time");

        // A delete revokes them and empties the indexes; the creator still lists them.
        let delete = Command::DeleteObjects { bucket: "b".into(), keys: vec!["k".into()] };
        sm.apply_entry(&entry(11, delete.attributed(None, 1_600))).expect("apply");
        assert!(sm.tables.shares_of_object("b", "k").expect("read").is_empty());
        assert!(sm.tables.user_shares_of("u-carol", "b", "k").expect("read").is_empty());
        let s1 = sm.tables.share_by_token("t1").expect("read").expect("s1 kept");
        assert_eq!(s1.revoked, Some(1_600));
        sm.apply_entry(&entry(12, put("k", "ee05", 1).attributed(None, 1_700))).expect("apply");
        assert!(sm.tables.shares_of_object("b", "k").expect("read").is_empty(), "a new file starts without shares");
        assert_eq!(sm.tables.share("s3").expect("read").and_then(|s| s.revoked), None, "k/sub untouched");

        // Emptied and deleted, the bucket takes its remaining shares with it, including one
        // recorded before the indexes existed (written here straight into `h/`).
        let delete =
            Command::DeleteObjects { bucket: "b".into(), keys: vec!["k".into(), "k/sub".into(), "late".into()] };
        sm.apply_entry(&entry(13, delete.attributed(None, 1_800))).expect("apply");
        assert!(sm.tables.share("s3").expect("read").is_some_and(|s| s.revoked.is_some()));
        let Command::CreateShare(legacy) = share("s4", "gone", public("t4")) else { unreachable!() };
        sm.tables
            .tree
            .insert(record_key(tables::SHARE, &["s4"]), Tables::value(&legacy).expect("encode"))
            .expect("insert");
        sm.apply_entry(&entry(14, Command::DeleteBucket { name: "b".into() }.attributed(None, 1_900))).expect("apply");
        assert_eq!(sm.tables.share("s4").expect("read").and_then(|s| s.revoked), Some(1_900));
        let revoked = crate::history::read(&sm.tables, None, 100, 14)
            .expect("read")
            .iter()
            .filter(|e| e.kind.name() == "ShareRevoked")
            .count();
        assert_eq!(revoked, 4, "one ShareRevoked per share");
    }

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

    /// Applying never trims the history by itself, however long it grows; `TrimEvents` does,
    /// inside a batch too, and a cursor behind it is then refused. Events without a time keep
    /// the newest time even once everything is trimmed.
    #[test]
    fn events_are_trimmed_only_by_the_trim_command() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sm = state_machine(dir.path());
        let bucket = Bucket { name: "b".into(), created: 0, region: "r".into() };
        sm.apply_entry(&entry(1, Command::CreateBucket(bucket))).expect("apply");
        for i in 0..200u64 {
            let mut command = put(&format!("k{i}"), &format!("ab{i:02x}"), 1);
            if let Command::PutObject { meta, .. } = &mut command {
                meta.last_modified = 1_000 + i64::try_from(i).expect("small");
            }
            sm.apply_entry(&entry(2 + i, command)).expect("apply");
        }
        let all = crate::history::read(&sm.tables, None, 1000, 300).expect("read");
        assert_eq!(all.len(), 201, "nothing is trimmed without a TrimEvents entry");

        let through = all[150].cursor;
        let mut late = put("late", "abff", 1);
        if let Command::PutObject { meta, .. } = &mut late {
            meta.last_modified = 5_000;
        }
        let batch = Command::Batch(vec![Command::TrimEvents { through }, late]);
        sm.apply_entry(&entry(300, batch)).expect("apply");
        let left = crate::history::read(&sm.tables, None, 1000, 300).expect("read");
        assert_eq!(left.first().map(|e| e.cursor), Some(all[151].cursor));
        assert_eq!(left.len(), 51);
        assert!(matches!(
            crate::history::read(&sm.tables, Some(all[10].cursor), 10, 300),
            Err(crate::history::EventsError::Gone { .. })
        ));

        sm.apply_entry(&entry(301, Command::TrimEvents { through: Cursor::after_entry(300) })).expect("apply");
        assert!(crate::history::read(&sm.tables, None, 1000, 301).expect("read").is_empty());
        let delete = Command::DeleteObjects { bucket: "b".into(), keys: vec!["late".into()] };
        sm.apply_entry(&entry(302, delete)).expect("apply");
        let deleted = crate::history::read(&sm.tables, None, 10, 302).expect("read");
        assert_eq!(deleted.iter().map(|e| e.at).collect::<Vec<_>>(), [5_000], "the newest time, not 0");
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
}
