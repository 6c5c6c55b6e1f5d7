//! The typed reads of the local state machine (buckets, objects, keys, users, shares, events,
//! work items) and the signals that say it moved. They read what this node has applied; a
//! caller that must see writes made through other nodes calls [`MetaStore::read_barrier`]
//! first.

use tokio::sync::watch;

use super::MetaStore;
use crate::error::StoreError;
use crate::event::{Cursor, Event};
use crate::history::{EventRetention, EventsError, TrimTarget};
use crate::model::{
    AccessKey, AccessKeyInfo, Bucket, KeyOwner, LatestVersion, MultipartUpload, ObjectMeta, ObjectVersion, User,
    VersioningState, WorkItem,
};
use crate::tables::{ObjectCursor, VersionWalk};

impl MetaStore {
    /// The index applied locally.
    pub fn applied_index(&self) -> u64 {
        *self.inner.applied.borrow()
    }

    /// Changes whenever the local state machine applies entries (or installs a snapshot); the
    /// value is the applied index. Event readers wait on it for new events.
    pub fn applied_signal(&self) -> watch::Receiver<u64> {
        self.inner.applied.clone()
    }

    /// Changes whenever applying the log records new work for this node; each worker keeps its
    /// own receiver, so none misses a wake-up another consumed.
    pub fn work_signal(&self) -> watch::Receiver<u64> {
        self.inner.work.clone()
    }

    /// A bucket, if it exists.
    pub fn bucket(&self, name: &str) -> Result<Option<Bucket>, StoreError> {
        self.inner.tables.bucket(name)
    }

    /// Every bucket, by name.
    pub fn buckets(&self) -> Result<Vec<Bucket>, StoreError> {
        self.inner.tables.buckets()
    }

    /// A bucket's CORS configuration, if it has one (this node's state, not confirmed).
    pub fn bucket_cors(&self, bucket: &str) -> Result<Option<crate::cors::BucketCors>, StoreError> {
        self.inner.tables.bucket_cors(bucket)
    }

    /// A bucket's access settings (ACL, ownership, public access block, policy), if any were
    /// set (this node's state, not confirmed).
    pub fn bucket_access(&self, bucket: &str) -> Result<Option<crate::acl::BucketAccess>, StoreError> {
        self.inner.tables.bucket_access(bucket)
    }

    /// The ACL of a key's current object, if one other than `private` was set (this node's
    /// state, not confirmed).
    pub fn object_acl(&self, bucket: &str, key: &str) -> Result<Option<crate::acl::Acl>, StoreError> {
        self.inner.tables.object_acl(bucket, key)
    }

    /// The ACL of one version of a key: the current object's (`oacl/`) when `version_id` is
    /// current, else the stored one of that version; `None`: `private` (this node's state).
    pub fn object_version_acl(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<Option<crate::acl::Acl>, StoreError> {
        match self.inner.tables.version(bucket, key, version_id)? {
            Some((None, _)) => self.inner.tables.object_acl(bucket, key),
            Some((Some(_), _)) => self.inner.tables.version_acl(bucket, key, version_id),
            None => Ok(None),
        }
    }

    /// The ACL an unfinished multipart upload gives its object, if one was asked for.
    pub fn upload_acl(&self, upload: &str) -> Result<Option<crate::acl::Acl>, StoreError> {
        self.inner.tables.upload_acl(upload)
    }

    /// Whether the cluster writes records of `format` or newer: every member runs a release
    /// that reads it, so commands and records new in that format may be proposed. Until then
    /// a node of the previous release could receive them, and they are refused.
    pub fn cluster_format_at_least(&self, format: u16) -> bool {
        crate::codec::active_format() >= format
    }

    /// The checksums of the parts of the multipart object stored in `blob`, if they were
    /// recorded (a completion before the cluster wrote format 2 recorded none).
    pub fn part_checksums(&self, blob: &str) -> Result<Option<crate::model::PartChecksums>, StoreError> {
        self.inner.tables.part_checksums(blob)
    }

    /// The current version of an object, if any.
    pub fn object(&self, bucket: &str, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        self.inner.tables.object(bucket, key)
    }

    /// An ordered walk over a bucket's keys starting with `prefix`, after `after` if given.
    pub fn objects(&self, bucket: &str, prefix: &str, after: Option<&str>) -> ObjectCursor {
        self.inner.tables.objects(bucket, prefix, after)
    }

    /// Whether the cluster writes format 2, which versioning's commands and records need: until
    /// then a node of the previous release may still be a member, and must never receive them.
    pub fn versioning_available(&self) -> bool {
        crate::codec::active_format() >= 2
    }

    /// A bucket's Object Lock configuration; `None`: lock is not enabled (this node's state).
    pub fn object_lock(&self, bucket: &str) -> Result<Option<crate::object_lock::BucketObjectLock>, StoreError> {
        self.inner.tables.object_lock(bucket)
    }

    /// The lock (retention, legal hold) of one version of a key, if it has one.
    pub fn version_lock(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<Option<crate::object_lock::VersionLock>, StoreError> {
        self.inner.tables.version_lock(bucket, key, version_id)
    }

    /// A bucket's versioning state; `None`: never versioned.
    pub fn versioning(&self, bucket: &str) -> Result<Option<VersioningState>, StoreError> {
        self.inner.tables.versioning(bucket)
    }

    /// The latest version of a key written while its bucket was versioned (`None`: the key's
    /// current object, if any, is the `null` version).
    pub fn latest_version(&self, bucket: &str, key: &str) -> Result<Option<LatestVersion>, StoreError> {
        self.inner.tables.latest(bucket, key)
    }

    /// The latest version of a key (`q/`) with its current object (`o/`), read so that both
    /// belong to the same applied state: the pair is read again while a write moved the latest
    /// in between (bounded: a key rewritten that often is read as last seen).
    pub fn current_version(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<(Option<LatestVersion>, Option<ObjectMeta>), StoreError> {
        let tables = &self.inner.tables;
        let mut latest = tables.latest(bucket, key)?;
        for _ in 0..8 {
            let object = tables.object(bucket, key)?;
            let again = tables.latest(bucket, key)?;
            if again == latest {
                return Ok((latest, object));
            }
            latest = again;
        }
        Ok((latest, tables.object(bucket, key)?))
    }

    /// Version `id` of a key (the current object or a stored version or delete marker).
    pub fn object_version(&self, bucket: &str, key: &str, id: &str) -> Result<Option<ObjectVersion>, StoreError> {
        Ok(self.inner.tables.version(bucket, key, id)?.map(|(_, v)| v))
    }

    /// The version of `bucket/key` whose bytes are `blob`, current or kept (replication pulls
    /// every version).
    pub fn version_with_blob(&self, bucket: &str, key: &str, blob: &str) -> Result<Option<ObjectMeta>, StoreError> {
        Ok(self.inner.tables.version_with_blob(bucket, key, blob)?.map(|(_, m)| m))
    }

    /// The stored versions (`r/`: kept versions and delete markers) of a key, newest first, each
    /// with its sort key.
    pub fn stored_versions(&self, bucket: &str, key: &str) -> Result<Vec<(String, ObjectVersion)>, StoreError> {
        self.inner.tables.stored_versions(bucket, key)
    }

    /// An ordered walk over the stored versions of a bucket's keys starting with `prefix`, from
    /// the version of `start` = (key, sort key) on (exclusive), or from after every version of
    /// the key `start.0` when the sort key is `None`.
    pub fn version_walk(&self, bucket: &str, prefix: &str, start: Option<(&str, Option<&str>)>) -> VersionWalk {
        let from = start.map(|(key, sort)| {
            let mut from = crate::tables::version_key(bucket, key, "");
            match sort {
                // The next byte string after `key NUL sort`.
                Some(sort) => {
                    from.extend_from_slice(sort.as_bytes());
                    from.push(0);
                }
                None => from.push(0xFF),
            }
            from
        });
        self.inner.tables.version_walk(bucket, prefix, from)
    }

    /// A multipart upload in progress.
    pub fn upload(&self, id: &str) -> Result<Option<MultipartUpload>, StoreError> {
        self.inner.tables.upload(id)
    }

    /// A bucket's multipart uploads in progress.
    pub fn uploads(&self, bucket: &str) -> Result<Vec<MultipartUpload>, StoreError> {
        self.inner.tables.uploads(bucket)
    }

    /// Every multipart upload in progress, in any bucket.
    pub fn all_uploads(&self) -> Result<Vec<MultipartUpload>, StoreError> {
        let mut all = Vec::new();
        for bucket in self.buckets()? {
            all.extend(self.uploads(&bucket.name)?);
        }
        Ok(all)
    }

    /// An access key, disabled or not: whoever checks a signature must use
    /// [`MetaStore::usable_access_key`] instead.
    pub fn access_key(&self, id: &str) -> Result<Option<AccessKey>, StoreError> {
        self.inner.tables.access_key(id)
    }

    /// An access key that may sign requests: it exists and is not disabled. Reads local
    /// state; callers that must not miss a disable made through another node call
    /// [`MetaStore::read_barrier`] first.
    pub fn usable_access_key(&self, id: &str) -> Result<Option<AccessKey>, StoreError> {
        let Some(key) = self.inner.tables.access_key(id)? else { return Ok(None) };
        let disabled = self.inner.tables.key_record(id)?.is_some_and(|r| r.disabled.is_some());
        Ok((!disabled).then_some(key))
    }

    /// Who an access key belongs to; `None` if there is no such key. A key without a recorded
    /// owner (a legacy key, or one installed from the config) is the service named after the
    /// key's name.
    pub fn access_key_owner(&self, id: &str) -> Result<Option<KeyOwner>, StoreError> {
        let Some(key) = self.inner.tables.access_key(id)? else { return Ok(None) };
        let record = self.inner.tables.key_record(id)?;
        Ok(Some(AccessKeyInfo::new(&key, record.as_ref()).owner))
    }

    /// Every access key, without its secret, in id order.
    pub fn access_keys(&self) -> Result<Vec<AccessKeyInfo>, StoreError> {
        self.inner.tables.access_keys()
    }

    /// A user known to the admin panel (deleted ones included).
    pub fn user(&self, id: &str) -> Result<Option<User>, StoreError> {
        self.inner.tables.user(id)
    }

    /// Every user known to the admin panel, deleted ones included, in id order.
    pub fn users(&self) -> Result<Vec<User>, StoreError> {
        self.inner.tables.users()
    }

    /// Whether some object version refers to this blob.
    pub fn blob_is_referenced(&self, blob: &str) -> Result<bool, StoreError> {
        self.inner.tables.blob_is_referenced(blob)
    }

    /// The work this node owes, oldest first, with the key to complete each.
    pub fn work_items(&self) -> Result<Vec<(Vec<u8>, WorkItem)>, StoreError> {
        Ok(self.inner.tables.work_items()?.into_iter().map(|(k, w)| (k.to_vec(), w)).collect())
    }

    /// The first `limit` work items this node owes, in order (see [`MetaStore::work_items`]):
    /// what the replicator looks at each time a slot frees, without reading a long queue whole.
    pub fn first_work_items(&self, limit: usize) -> Result<Vec<(Vec<u8>, WorkItem)>, StoreError> {
        Ok(self.inner.tables.first_work_items(limit)?.into_iter().map(|(k, w)| (k.to_vec(), w)).collect())
    }

    /// Marks a work item done.
    pub fn complete_work(&self, key: &[u8]) -> Result<(), StoreError> {
        self.inner.tables.tree.remove(key)?;
        Ok(())
    }

    /// Up to `limit` retained events behind `after` (from the oldest retained one when `None`),
    /// in order, all from entries this node has applied. [`EventsError::Gone`] when events right
    /// behind `after` were trimmed from the history.
    pub fn events_after(&self, after: Option<Cursor>, limit: usize) -> Result<Vec<Event>, EventsError> {
        crate::history::read(&self.inner.tables, after, limit, self.applied_index())
    }

    /// How far `retention` lets the event history go now (a bounded number of events at a
    /// time), if at all: what the leader proposes with [`crate::Command::TrimEvents`].
    pub fn event_trim_target(&self, retention: EventRetention) -> Result<Option<TrimTarget>, StoreError> {
        crate::history::trim_target(&self.inner.tables, retention)
    }

    /// The user who owns an object (wrote its first version while signed in), if any.
    pub fn object_owner(&self, bucket: &str, key: &str) -> Result<Option<String>, StoreError> {
        self.inner.tables.owner(bucket, key)
    }

    /// The log index at which the current ownership of `bucket` (`key: None`) or `bucket/key`
    /// began: the history shows an owner what happened since, not a previous owner's past.
    /// `None` without an owner, or for ownership recorded before this index was kept.
    pub fn owned_since(&self, bucket: &str, key: Option<&str>) -> Result<Option<u64>, StoreError> {
        self.inner.tables.owned_since(bucket, key)
    }

    /// The user who owns a bucket (created it while signed in), if any.
    pub fn bucket_owner(&self, bucket: &str) -> Result<Option<String>, StoreError> {
        self.inner.tables.bucket_owner(bucket)
    }

    /// A share by id.
    pub fn share(&self, id: &str) -> Result<Option<crate::model::Share>, StoreError> {
        self.inner.tables.share(id)
    }

    /// The share of a public link, by the hex SHA-256 of its token.
    pub fn share_by_token(&self, token_sha256: &str) -> Result<Option<crate::model::Share>, StoreError> {
        self.inner.tables.share_by_token(token_sha256)
    }

    /// A page of every share, in id order (`after`: the previous page's `next`).
    pub fn shares_page(&self, after: Option<&str>, limit: usize) -> Result<crate::SharePage, StoreError> {
        self.inner.tables.shares_page(after, limit)
    }

    /// A page of the shares `user` created, in id order.
    pub fn shares_created_by(
        &self,
        user: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<crate::SharePage, StoreError> {
        self.inner.tables.shares_created_by(user, after, limit)
    }

    /// A page of the named-user shares naming `user`, in file order.
    pub fn shares_with_user(
        &self,
        user: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<crate::SharePage, StoreError> {
        self.inner.tables.shares_with_user(user, after, limit)
    }

    /// A page of the shares of the file `bucket/key` as it is now, in id order.
    pub fn shares_of_object(
        &self,
        bucket: &str,
        key: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<crate::SharePage, StoreError> {
        self.inner.tables.shares_of_object_page(bucket, key, after, limit)
    }

    /// The named-user shares of `bucket/key` naming `user` (an index read, not a scan).
    pub fn user_shares_of(&self, user: &str, bucket: &str, key: &str) -> Result<Vec<crate::model::Share>, StoreError> {
        self.inner.tables.user_shares_of(user, bucket, key)
    }

    /// The last event delivered to a webhook subscription, as recorded through Raft.
    pub fn webhook_delivered(&self, subscription: &str) -> Result<Option<Cursor>, StoreError> {
        self.inner.tables.delivered(subscription)
    }
}
