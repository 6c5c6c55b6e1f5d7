//! The state machine's records in sled, and the reads the rest of Meridian makes of them.
//!
//! Everything lives in ONE sled tree under short key prefixes, so that applying a log entry is a
//! single atomic `apply_batch` and a snapshot is a single ordered scan:
//!
//! | prefix | key | value |
//! | --- | --- | --- |
//! | `b/` | bucket | [`Bucket`] |
//! | `o/` | bucket `/` key | [`ObjectMeta`] (bucket names cannot contain `/`) |
//! | `u/` | upload id | [`MultipartUpload`] |
//! | `k/` | access key id | [`AccessKey`] |
//! | `a/` | access key id | [`KeyRecord`]: its owner and whether it is disabled (absent: a legacy key) |
//! | `x/` | blob id | bucket `/` key of the version that owns it |
//! | `p/` | user id | [`User`] (people known to the admin panel) |
//! | `n/` | bucket, or bucket `/` key | user id of the bucket's or object's owner (see `docs/admin.md`) |
//! | `h/` | share id | [`Share`] |
//! | `t/` | hex SHA-256 of a public link's token | share id |
//! | `i/` | bucket `/` key `/` share id | share id: the shares of the file as it is now (a delete revokes them and drops these) |
//! | `j/` | user `/` bucket `/` key `/` share id | share id: named-user shares, by the user they name (same life as `i/`) |
//! | `c/` | creator `/` share id | share id: shares by the user who made them |
//! | `m/` | `applied`, `membership` | Raft's view of the state machine |
//! | `m/events` | | the event history's bookkeeping (see `history`) |
//! | `m/format` | | the cluster's active format (see `codec`) |
//! | `e/` | big-endian log index, big-endian sub-position | retained [`Event`](crate::event::Event)s |
//! | `s/` | webhook subscription name | [`Cursor`] of the last event delivered to it |
//! | `w/` | sequence number | this node's own [`WorkItem`]s; never in snapshots |
//! | `y/` | bucket | [`VersioningState`] of a bucket ever versioned (format 2) |
//! | `q/` | bucket `/` key | [`LatestVersion`]: the latest version of a key written while versioned (format 2) |
//! | `r/` | bucket `/` key `NUL` sort | [`ObjectVersion`]: non-current versions and delete markers, newest first (format 2) |
//! | `ol/` | bucket | [`BucketObjectLock`]: the bucket has Object Lock, with its default retention (format 2) |
//! | `lv/` | bucket `/` key `NUL` version id | [`VersionLock`]: a version's retention and legal hold (format 2) |
//! | `lu/` | upload id | [`VersionLock`] the version a multipart upload completes will get (format 2) |
//! | `pc/` | blob id | [`PartChecksums`]: the part checksums of the multipart object assembled into that blob (format 2) |

use std::ops::Bound;

use openraft::{LogId, StoredMembership};

use crate::codec::{decode, encode};
use crate::error::StoreError;
use crate::event::Cursor;
use crate::model::{
    AccessKey, AccessKeyInfo, Bucket, KeyRecord, LatestVersion, ListedObject, MultipartUpload, ObjectMeta,
    ObjectMetaHead, ObjectVersion, PartChecksums, Share, ShareAudience, User, VersioningState, WorkItem,
};
use crate::node_id::{NodeId, RegionNode};
use crate::object_lock::{BucketObjectLock, VersionLock};
use crate::snapshot_view::{SnapshotView, StateBatch};

pub(crate) const BUCKET: &[u8] = b"b/";
pub(crate) const OBJECT: &[u8] = b"o/";
pub(crate) const UPLOAD: &[u8] = b"u/";
pub(crate) const KEY: &[u8] = b"k/";
/// `a/ID`: the [`KeyRecord`] of access key ID (owner, disabled), beside its `k/` record.
pub(crate) const KEY_RECORD: &[u8] = b"a/";
pub(crate) const BLOB: &[u8] = b"x/";
pub(crate) const USER: &[u8] = b"p/";
pub(crate) const OWNER: &[u8] = b"n/";
/// `v/BUCKET` and `v/BUCKET/KEY`: the log index at which the current owner's ownership began.
/// The history shows an owner only what happened since (not a previous owner's past).
pub(crate) const OWNED_SINCE: &[u8] = b"v/";
pub(crate) const SHARE: &[u8] = b"h/";
pub(crate) const SHARE_TOKEN: &[u8] = b"t/";
pub(crate) const SHARE_BY_OBJECT: &[u8] = b"i/";
pub(crate) const SHARE_BY_USER: &[u8] = b"j/";
pub(crate) const SHARE_BY_CREATOR: &[u8] = b"c/";
pub(crate) const WORK: &[u8] = b"w/";
pub(crate) const APPLIED: &[u8] = b"m/applied";
pub(crate) const MEMBERSHIP: &[u8] = b"m/membership";
pub(crate) const EVENTS_STATE: &[u8] = b"m/events";
pub(crate) const EVENT: &[u8] = b"e/";
pub(crate) const SUBSCRIPTION: &[u8] = b"s/";
/// `m/format`: the cluster's active format (a `u16`; absent: format 0, release a01dacd's).
/// Replicated and in snapshots, like every `m/` record.
pub(crate) const FORMAT: &[u8] = b"m/format";
/// A bucket's CORS configuration (`BucketCors`), by bucket name; new in format 2.
pub(crate) const CORS: &[u8] = b"cors/";
/// `acl/BUCKET`: the bucket's [`crate::acl::BucketAccess`] (ACL, ownership, public access
/// block, policy); new in format 2.
pub(crate) const BUCKET_ACCESS: &[u8] = b"acl/";
/// `oacl/BUCKET/KEY`: the [`crate::acl::Acl`] of a key's current object; new in format 2.
pub(crate) const OBJECT_ACL: &[u8] = b"oacl/";
/// `uacl/UPLOAD`: the [`crate::acl::Acl`] an unfinished multipart upload gives its object when
/// completed; new in format 2.
pub(crate) const UPLOAD_ACL: &[u8] = b"uacl/";
/// `vacl/BUCKET/KEY NUL ID`: the [`crate::acl::Acl`] of a version that is not current (see
/// [`version_acl_key`]); the current object's stays in `oacl/`. New in format 2.
pub(crate) const VERSION_ACL: &[u8] = b"vacl/";

/// `y/BUCKET`: the bucket's [`VersioningState`], once versioning was ever configured.
pub(crate) const VERSIONING: &[u8] = b"y/";
/// `q/BUCKET/KEY`: the [`LatestVersion`] of a key written while its bucket was versioned.
pub(crate) const LATEST: &[u8] = b"q/";
/// `r/BUCKET/KEY NUL SORT`: an [`ObjectVersion`] that is not in `o/` (see [`version_key`]).
pub(crate) const VERSION: &[u8] = b"r/";
/// `ol/BUCKET`: the bucket's [`BucketObjectLock`] (present: Object Lock enabled, for good).
pub(crate) const OBJECT_LOCK: &[u8] = b"ol/";
/// `lv/BUCKET/KEY NUL ID`: the [`VersionLock`] of version ID (see [`version_lock_key`]).
pub(crate) const VERSION_LOCK: &[u8] = b"lv/";
/// `lu/UPLOAD`: the [`VersionLock`] asked for when the multipart upload was created.
pub(crate) const UPLOAD_LOCK: &[u8] = b"lu/";

/// `pc/BLOB`: the [`PartChecksums`] of the multipart object whose bytes are blob BLOB; removed
/// with the blob index entry (`x/`) when that version is freed.
pub(crate) const PART_CHECKSUMS: &[u8] = b"pc/";

/// `lv/bucket/key NUL id`: a NUL before the id, as in `r/` keys, since a key may hold `/`.
pub(crate) fn version_lock_key(bucket: &str, key: &str, version_id: &str) -> Vec<u8> {
    let mut out = record_key(VERSION_LOCK, &[bucket, key]);
    out.push(0);
    out.extend_from_slice(version_id.as_bytes());
    out
}

/// `vacl/bucket/key NUL id`: a NUL before the id, as in `lv/` keys, since a key may hold `/`.
pub(crate) fn version_acl_key(bucket: &str, key: &str, version_id: &str) -> Vec<u8> {
    let mut out = record_key(VERSION_ACL, &[bucket, key]);
    out.push(0);
    out.extend_from_slice(version_id.as_bytes());
    out
}

/// Length of a version sort key (and of a version id): 16 hex digits of the inverted log index,
/// 8 of the inverted position within the entry.
pub(crate) const SORT_LEN: usize = 24;

/// `r/bucket/key NUL sort`. NUL (not `/`) ends the key because it sorts before every other
/// byte: a walk over `r/bucket/` then meets keys in key order, each key's versions newest
/// first, before any longer key that starts with it.
pub(crate) fn version_key(bucket: &str, key: &str, sort: &str) -> Vec<u8> {
    let mut out = version_prefix(bucket, key);
    out.extend_from_slice(sort.as_bytes());
    out
}

/// `r/bucket/key NUL`: where the versions of one key start.
fn version_prefix(bucket: &str, key: &str) -> Vec<u8> {
    let mut out = record_key(VERSION, &[bucket, key]);
    out.push(0);
    out
}

/// Splits the part of an `r/` key after `r/bucket/` into key and sort key: the sort key is the
/// last [`SORT_LEN`] bytes, after a NUL.
pub(crate) fn split_version_key(rest: &[u8]) -> Option<(String, String)> {
    let cut = rest.len().checked_sub(SORT_LEN + 1)?;
    if rest[cut] != 0 {
        return None;
    }
    let key = String::from_utf8(rest[..cut].to_vec()).ok()?;
    let sort = String::from_utf8(rest[cut + 1..].to_vec()).ok()?;
    Some((key, sort))
}

/// Builds `prefix ++ parts joined by '/'`.
pub(crate) fn record_key(prefix: &[u8], parts: &[&str]) -> Vec<u8> {
    let mut key = prefix.to_vec();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            key.push(b'/');
        }
        key.extend_from_slice(part.as_bytes());
    }
    key
}

/// Whether `bucket` can name a bucket in a record key: one non-empty segment, no `/`. Keys
/// join bucket and object key with `/`, so this is what keeps `bucket "b/x", key "y"` from
/// aliasing `bucket "b", key "x/y"`. Every read that takes a bucket name checks it, whatever
/// its caller validated (the S3 path parser and the web API apply S3's full naming rules on
/// top: [`crate::model::valid_bucket_name`]).
pub(crate) fn addressable(bucket: &str) -> bool {
    !bucket.is_empty() && !bucket.contains('/')
}

/// Read access to the state machine's records. Cheap to clone (sled trees are shared handles).
#[derive(Clone)]
pub(crate) struct Tables {
    /// The one tree holding every record. Read it freely; change replicated records only
    /// through [`Tables::apply_batch`] (a running snapshot dump depends on it).
    pub(crate) tree: sled::Tree,
    /// The view a running snapshot dump reads through, kept by [`Tables::apply_batch`].
    pub(crate) view: std::sync::Arc<SnapshotView>,
}

impl Tables {
    /// The records in `tree`, with no dump running.
    pub(crate) fn new(tree: sled::Tree) -> Self {
        Self { tree, view: std::sync::Arc::default() }
    }

    /// Applies `batch` atomically: the one way the replicated records change (the apply path
    /// and nothing else), so that a snapshot dump in progress first gets the pre-image of every
    /// key the batch changes (see `snapshot_view`). Only this node's own work items
    /// (`tables::WORK`), which are never dumped, and a snapshot install (which waits for any
    /// dump to end) write the tree directly.
    pub(crate) fn apply_batch(&self, batch: StateBatch) -> Result<(), StoreError> {
        self.view.save_pre_images(&self.tree, &batch)?;
        self.tree.apply_batch(batch.into_sled())?;
        Ok(())
    }

    pub(crate) fn get<T: crate::codec::Record>(&self, key: &[u8]) -> Result<Option<T>, StoreError> {
        match self.tree.get(key)? {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }

    fn all<T: crate::codec::Record>(&self, prefix: &[u8]) -> Result<Vec<T>, StoreError> {
        self.tree
            .scan_prefix(prefix)
            .map(|item| {
                let (_, value) = item?;
                decode(&value)
            })
            .collect()
    }

    pub(crate) fn bucket(&self, name: &str) -> Result<Option<Bucket>, StoreError> {
        if !addressable(name) {
            return Ok(None);
        }
        self.get(&record_key(BUCKET, &[name]))
    }

    pub(crate) fn buckets(&self) -> Result<Vec<Bucket>, StoreError> {
        self.all(BUCKET)
    }

    pub(crate) fn object(&self, bucket: &str, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        if !addressable(bucket) {
            return Ok(None);
        }
        self.get(&record_key(OBJECT, &[bucket, key]))
    }

    /// True when the bucket holds no object, no version or delete marker, and no multipart upload.
    pub(crate) fn bucket_is_empty(&self, bucket: &str) -> Result<bool, StoreError> {
        if self.bucket_has_objects(bucket)? {
            return Ok(false);
        }
        Ok(self.uploads(bucket)?.is_empty())
    }

    /// Whether the bucket holds at least one object, kept version or delete marker (unfinished
    /// uploads aside): S3 refuses to delete such a bucket.
    pub(crate) fn bucket_has_objects(&self, bucket: &str) -> Result<bool, StoreError> {
        for table in [OBJECT, VERSION] {
            let mut prefix = record_key(table, &[bucket]);
            prefix.push(b'/');
            if self.tree.scan_prefix(&prefix).next().transpose()?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// A bucket's CORS configuration, if it has one.
    pub(crate) fn bucket_cors(&self, bucket: &str) -> Result<Option<crate::cors::BucketCors>, StoreError> {
        if !addressable(bucket) {
            return Ok(None);
        }
        self.get(&record_key(CORS, &[bucket]))
    }

    /// A bucket's Object Lock configuration; `None`: lock is not enabled on it.
    pub(crate) fn object_lock(&self, bucket: &str) -> Result<Option<BucketObjectLock>, StoreError> {
        if !addressable(bucket) {
            return Ok(None);
        }
        self.get(&record_key(OBJECT_LOCK, &[bucket]))
    }

    /// The lock of version `version_id` of `bucket/key`, if it has one.
    pub(crate) fn version_lock(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<Option<VersionLock>, StoreError> {
        if !addressable(bucket) {
            return Ok(None);
        }
        self.get(&version_lock_key(bucket, key, version_id))
    }

    /// A bucket's access settings, if any were ever set.
    pub(crate) fn bucket_access(&self, bucket: &str) -> Result<Option<crate::acl::BucketAccess>, StoreError> {
        if !addressable(bucket) {
            return Ok(None);
        }
        self.get(&record_key(BUCKET_ACCESS, &[bucket]))
    }

    /// The ACL of a key's current object, if one other than `private` was set.
    pub(crate) fn object_acl(&self, bucket: &str, key: &str) -> Result<Option<crate::acl::Acl>, StoreError> {
        if !addressable(bucket) {
            return Ok(None);
        }
        self.get(&record_key(OBJECT_ACL, &[bucket, key]))
    }

    /// The ACL of version `version_id` of `bucket/key` while it is not the current one, if one
    /// other than `private` was set.
    pub(crate) fn version_acl(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<Option<crate::acl::Acl>, StoreError> {
        if !addressable(bucket) {
            return Ok(None);
        }
        self.get(&version_acl_key(bucket, key, version_id))
    }

    /// The ACL an unfinished multipart upload gives its object, if one was asked for.
    pub(crate) fn upload_acl(&self, upload: &str) -> Result<Option<crate::acl::Acl>, StoreError> {
        self.get(&record_key(UPLOAD_ACL, &[upload]))
    }

    /// The part checksums of the multipart object stored in `blob`, if they were recorded.
    pub(crate) fn part_checksums(&self, blob: &str) -> Result<Option<PartChecksums>, StoreError> {
        if blob.is_empty() {
            return Ok(None);
        }
        self.get(&record_key(PART_CHECKSUMS, &[blob]))
    }

    /// The bucket's versioning state; `None` for a bucket never versioned.
    pub(crate) fn versioning(&self, bucket: &str) -> Result<Option<VersioningState>, StoreError> {
        if !addressable(bucket) {
            return Ok(None);
        }
        self.get(&record_key(VERSIONING, &[bucket]))
    }

    /// The latest version of a key written while its bucket was versioned.
    pub(crate) fn latest(&self, bucket: &str, key: &str) -> Result<Option<LatestVersion>, StoreError> {
        if !addressable(bucket) {
            return Ok(None);
        }
        self.get(&record_key(LATEST, &[bucket, key]))
    }

    /// The versions of one key kept in `r/` (non-current ones and delete markers), newest first,
    /// each with its sort key. Entries of longer keys that share the prefix are skipped: their
    /// rest is not exactly a sort key.
    pub(crate) fn stored_versions(&self, bucket: &str, key: &str) -> Result<Vec<(String, ObjectVersion)>, StoreError> {
        if !addressable(bucket) {
            return Ok(Vec::new());
        }
        let prefix = version_prefix(bucket, key);
        let mut out = Vec::new();
        for item in self.tree.scan_prefix(&prefix) {
            let (k, v) = item?;
            let rest = &k[prefix.len()..];
            if rest.len() != SORT_LEN || rest.contains(&0) {
                continue;
            }
            out.push((String::from_utf8_lossy(rest).into_owned(), decode(&v)?));
        }
        Ok(out)
    }

    /// The version `id` of a key as (sort key if it is in `r/`, the version): the current one
    /// (`o/`, sort `None`) or a stored one.
    pub(crate) fn version(
        &self,
        bucket: &str,
        key: &str,
        id: &str,
    ) -> Result<Option<(Option<String>, ObjectVersion)>, StoreError> {
        if let Some(current) = self.object(bucket, key)? {
            let current_id = self.latest(bucket, key)?.map_or_else(|| crate::model::NULL_VERSION.to_owned(), |l| l.id);
            if current_id == id {
                let at = current.last_modified;
                return Ok(Some((None, ObjectVersion { id: current_id, meta: Some(current), at })));
            }
        }
        if id != crate::model::NULL_VERSION {
            if !addressable(bucket) || id.len() != SORT_LEN {
                return Ok(None);
            }
            let found: Option<ObjectVersion> = self.get(&version_key(bucket, key, id))?;
            return Ok(found.map(|v| (Some(id.to_owned()), v)));
        }
        Ok(self.stored_versions(bucket, key)?.into_iter().find(|(_, v)| v.id == id).map(|(s, v)| (Some(s), v)))
    }

    /// The version of `bucket/key` whose bytes are `blob`: the current one or a stored one,
    /// with the sort key of the stored one (replication and the scrub look versions up by blob).
    pub(crate) fn version_with_blob(
        &self,
        bucket: &str,
        key: &str,
        blob: &str,
    ) -> Result<Option<(Option<String>, ObjectMeta)>, StoreError> {
        if let Some(current) = self.object(bucket, key)?.filter(|m| m.blob == blob) {
            return Ok(Some((None, current)));
        }
        if blob.is_empty() {
            return Ok(None);
        }
        Ok(self
            .stored_versions(bucket, key)?
            .into_iter()
            .find_map(|(sort, v)| v.meta.filter(|m| m.blob == blob).map(|m| (Some(sort), m))))
    }

    /// An ordered walk over the stored versions (`r/`) of a bucket's keys starting with
    /// `prefix`, from `start` (a full `r/` key, inclusive) when given.
    pub(crate) fn version_walk(&self, bucket: &str, prefix: &str, start: Option<Vec<u8>>) -> VersionWalk {
        let mut bucket_prefix = record_key(VERSION, &[bucket]);
        bucket_prefix.push(b'/');
        let scope = [bucket_prefix.as_slice(), prefix.as_bytes()].concat();
        let iter = addressable(bucket).then(|| {
            let from = start.filter(|s| *s > scope).unwrap_or_else(|| scope.clone());
            self.tree.range(from..)
        });
        VersionWalk { tree: self.tree.clone(), bucket_prefix, scope, iter }
    }

    pub(crate) fn upload(&self, id: &str) -> Result<Option<MultipartUpload>, StoreError> {
        self.get(&record_key(UPLOAD, &[id]))
    }

    pub(crate) fn uploads(&self, bucket: &str) -> Result<Vec<MultipartUpload>, StoreError> {
        let mut uploads: Vec<MultipartUpload> = self.all(UPLOAD)?;
        uploads.retain(|u| u.bucket == bucket);
        Ok(uploads)
    }

    pub(crate) fn access_key(&self, id: &str) -> Result<Option<AccessKey>, StoreError> {
        self.get(&record_key(KEY, &[id]))
    }

    /// The owner and state of an access key; `None` for a legacy key (or no key).
    pub(crate) fn key_record(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        self.get(&record_key(KEY_RECORD, &[id]))
    }

    /// Every access key, without secrets, in id order.
    pub(crate) fn access_keys(&self) -> Result<Vec<AccessKeyInfo>, StoreError> {
        let keys: Vec<AccessKey> = self.all(KEY)?;
        keys.iter().map(|key| Ok(AccessKeyInfo::new(key, self.key_record(&key.id)?.as_ref()))).collect()
    }

    pub(crate) fn user(&self, id: &str) -> Result<Option<User>, StoreError> {
        self.get(&record_key(USER, &[id]))
    }

    /// The user who owns an object, if a signed-in user wrote it (see `docs/admin.md`).
    pub(crate) fn owner(&self, bucket: &str, key: &str) -> Result<Option<String>, StoreError> {
        if !addressable(bucket) {
            return Ok(None);
        }
        self.get(&record_key(OWNER, &[bucket, key]))
    }

    /// The log index at which the current ownership of `bucket` (`key: None`) or of
    /// `bucket/key` began; `None` for no owner, or one recorded before this existed.
    pub(crate) fn owned_since(&self, bucket: &str, key: Option<&str>) -> Result<Option<u64>, StoreError> {
        if !addressable(bucket) {
            return Ok(None);
        }
        match key {
            Some(key) => self.get(&record_key(OWNED_SINCE, &[bucket, key])),
            None => self.get(&record_key(OWNED_SINCE, &[bucket])),
        }
    }

    /// The user who owns a bucket (created it while signed in), if any.
    pub(crate) fn bucket_owner(&self, bucket: &str) -> Result<Option<String>, StoreError> {
        if !addressable(bucket) {
            return Ok(None);
        }
        self.get(&record_key(OWNER, &[bucket]))
    }

    pub(crate) fn share(&self, id: &str) -> Result<Option<Share>, StoreError> {
        self.get(&record_key(SHARE, &[id]))
    }

    /// The share whose public link has this token hash (hex SHA-256).
    pub(crate) fn share_by_token(&self, token_sha256: &str) -> Result<Option<Share>, StoreError> {
        match self.get::<String>(&record_key(SHARE_TOKEN, &[token_sha256]))? {
            Some(id) => self.share(&id),
            None => Ok(None),
        }
    }

    /// Every share, revoked ones included, in id order.
    pub(crate) fn shares(&self) -> Result<Vec<Share>, StoreError> {
        self.all(SHARE)
    }

    /// Up to `limit` shares whose index key starts with `prefix`, in index order, beginning
    /// behind `prefix ++ after`. `exact`: only entries directly under `prefix` (the rest of the
    /// key is the share id), which keeps `i/b/k/` from matching the shares of `k/sub`. `keep`
    /// re-checks the loaded share, so a user id or key that happens to contain `/` can never
    /// borrow another's entries.
    fn share_index(
        &self,
        prefix: Vec<u8>,
        after: Option<&str>,
        limit: usize,
        exact: bool,
        keep: impl Fn(&Share) -> bool,
    ) -> Result<SharePage, StoreError> {
        let start = match after {
            Some(after) => Bound::Excluded([prefix.as_slice(), after.as_bytes()].concat()),
            None => Bound::Included(prefix.clone()),
        };
        let mut page = SharePage { shares: Vec::new(), next: None };
        for item in self.tree.range((start, Bound::Unbounded)) {
            let (key, value) = item?;
            if !key.starts_with(&prefix) {
                break;
            }
            let rest = &key[prefix.len()..];
            if exact && rest.contains(&b'/') {
                continue;
            }
            // `h/` holds the shares themselves; the indexes hold their ids.
            let share = if prefix.starts_with(SHARE) {
                Some(decode::<Share>(&value)?)
            } else {
                self.share(&decode::<String>(&value)?)?
            };
            if let Some(share) = share.filter(|s| keep(s)) {
                page.shares.push(share);
            }
            if page.shares.len() >= limit {
                page.next = Some(String::from_utf8_lossy(rest).into_owned());
                break;
            }
        }
        Ok(page)
    }

    /// Every share of the file `bucket/key` as it is now (a delete revoked and unindexed those of
    /// an earlier file at the same key).
    pub(crate) fn shares_of_object(&self, bucket: &str, key: &str) -> Result<Vec<Share>, StoreError> {
        self.shares_of_object_page(bucket, key, None, usize::MAX).map(|p| p.shares)
    }

    /// A page of the shares of `bucket/key`, in id order; `after` is a share id.
    pub(crate) fn shares_of_object_page(
        &self,
        bucket: &str,
        key: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<SharePage, StoreError> {
        if !addressable(bucket) {
            return Ok(SharePage { shares: Vec::new(), next: None });
        }
        let mut prefix = record_key(SHARE_BY_OBJECT, &[bucket, key]);
        prefix.push(b'/');
        self.share_index(prefix, after, limit, true, |s| s.bucket == bucket && s.key == key)
    }

    /// The named-user shares of `bucket/key` that name `user`.
    pub(crate) fn user_shares_of(&self, user: &str, bucket: &str, key: &str) -> Result<Vec<Share>, StoreError> {
        if !addressable(bucket) {
            return Ok(Vec::new());
        }
        let mut prefix = record_key(SHARE_BY_USER, &[user, bucket, key]);
        prefix.push(b'/');
        self.share_index(prefix, None, usize::MAX, true, |s| {
            s.bucket == bucket
                && s.key == key
                && matches!(&s.audience, ShareAudience::User { user: u, .. } if u == user)
        })
        .map(|p| p.shares)
    }

    /// A page of the named-user shares that name `user`, in bucket, key, id order; `after` is
    /// the `next` of the previous page.
    pub(crate) fn shares_with_user(
        &self,
        user: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<SharePage, StoreError> {
        let mut prefix = record_key(SHARE_BY_USER, &[user]);
        prefix.push(b'/');
        self.share_index(
            prefix,
            after,
            limit,
            false,
            |s| matches!(&s.audience, ShareAudience::User { user: u, .. } if u == user),
        )
    }

    /// A page of the shares `user` created, in id order; `after` is a share id.
    pub(crate) fn shares_created_by(
        &self,
        user: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<SharePage, StoreError> {
        let mut prefix = record_key(SHARE_BY_CREATOR, &[user]);
        prefix.push(b'/');
        self.share_index(prefix, after, limit, true, |s| s.created_by == user)
    }

    /// A page of every share, in id order; `after` is a share id.
    pub(crate) fn shares_page(&self, after: Option<&str>, limit: usize) -> Result<SharePage, StoreError> {
        self.share_index(SHARE.to_vec(), after, limit, true, |_| true)
    }

    /// Every user, deleted ones included, in id order.
    pub(crate) fn users(&self) -> Result<Vec<User>, StoreError> {
        self.all(USER)
    }

    pub(crate) fn blob_is_referenced(&self, blob: &str) -> Result<bool, StoreError> {
        Ok(self.tree.contains_key(record_key(BLOB, &[blob]))?)
    }

    pub(crate) fn work_items(&self) -> Result<Vec<(sled::IVec, WorkItem)>, StoreError> {
        self.tree
            .scan_prefix(WORK)
            .map(|item| {
                let (key, value) = item?;
                Ok((key, decode(&value)?))
            })
            .collect()
    }

    /// The first `limit` work items, in order: a lazy scan, so a caller that needs the head
    /// of a long queue (a catch-up of millions of objects) does not decode all of it.
    pub(crate) fn first_work_items(&self, limit: usize) -> Result<Vec<(sled::IVec, WorkItem)>, StoreError> {
        self.tree
            .scan_prefix(WORK)
            .take(limit)
            .map(|item| {
                let (key, value) = item?;
                Ok((key, decode(&value)?))
            })
            .collect()
    }

    /// The last event delivered to a webhook subscription, if any was.
    pub(crate) fn delivered(&self, subscription: &str) -> Result<Option<Cursor>, StoreError> {
        self.get(&record_key(SUBSCRIPTION, &[subscription]))
    }

    /// The last applied log id (stored as a plain `LogId`; absent before the first entry).
    pub(crate) fn applied(&self) -> Result<Option<LogId<NodeId>>, StoreError> {
        self.get(APPLIED)
    }

    /// The cluster's active format, as applied here (format 0 until a raise was applied).
    pub(crate) fn active_format(&self) -> Result<u16, StoreError> {
        Ok(self.get(FORMAT)?.unwrap_or(crate::codec::LEGACY_FORMAT))
    }

    pub(crate) fn membership(&self) -> Result<StoredMembership<NodeId, RegionNode>, StoreError> {
        Ok(self.get(MEMBERSHIP)?.unwrap_or_default())
    }

    /// Encodes a record for a batch.
    pub(crate) fn value<T: crate::codec::Record>(value: &T) -> Result<Vec<u8>, StoreError> {
        encode(value)
    }

    /// An ordered walk over a bucket's objects whose keys start with `prefix`, beginning after
    /// `after` (exclusive) when given.
    pub(crate) fn objects(&self, bucket: &str, prefix: &str, after: Option<&str>) -> ObjectCursor {
        let mut bucket_prefix = record_key(OBJECT, &[bucket]);
        bucket_prefix.push(b'/');
        let mut cursor = ObjectCursor {
            tree: self.tree.clone(),
            scope: [bucket_prefix.as_slice(), prefix.as_bytes()].concat(),
            bucket_prefix,
            iter: None,
        };
        if !addressable(bucket) {
            return cursor; // no iterator: an empty walk
        }
        let start = match after {
            Some(after) if after.as_bytes() >= prefix.as_bytes() => {
                Bound::Excluded([cursor.bucket_prefix.as_slice(), after.as_bytes()].concat())
            }
            _ => Bound::Included(cursor.scope.clone()),
        };
        cursor.iter = Some(cursor.tree.range((start, Bound::Unbounded)));
        cursor
    }
}

/// An ordered walk over stored versions (see [`crate::MetaStore::version_walk`]).
pub struct VersionWalk {
    /// The state machine's tree, to restart the walk further on.
    tree: sled::Tree,
    /// `r/bucket/`.
    bucket_prefix: Vec<u8>,
    /// `r/bucket/prefix`: the walk ends at the first key outside it.
    scope: Vec<u8>,
    /// The walk; `None` once it left the scope (or for a bucket name no record can have).
    iter: Option<sled::Iter>,
}

impl VersionWalk {
    /// The next stored version as (key, sort key, version), or `None` at the end of the scope.
    pub fn next_version(&mut self) -> Result<Option<(String, String, ObjectVersion)>, StoreError> {
        loop {
            let Some(iter) = self.iter.as_mut() else { return Ok(None) };
            match iter.next().transpose()? {
                Some((k, v)) if k.starts_with(&self.scope) => {
                    // A record whose key is not `key NUL sort` is skipped, never misread.
                    let Some((key, sort)) = split_version_key(&k[self.bucket_prefix.len()..]) else { continue };
                    return Ok(Some((key, sort, decode(&v)?)));
                }
                _ => {
                    self.iter = None;
                    return Ok(None);
                }
            }
        }
    }

    /// Skips every remaining version of a key that starts with `key_prefix` (a common prefix
    /// already reported).
    pub fn skip_keys_starting_with(&mut self, key_prefix: &str) {
        let mut start = [self.bucket_prefix.as_slice(), key_prefix.as_bytes()].concat();
        start.push(0xFF);
        self.iter = Some(self.tree.range(start..));
    }
}

/// One page of shares read through an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharePage {
    /// The shares, in the index's order.
    pub shares: Vec<Share>,
    /// Where the next page starts (pass it back as `after`); `None` at the end.
    pub next: Option<String>,
}

/// An ordered walk over one bucket's objects (see [`crate::MetaStore::objects`]). It reads the
/// live tree, so a listing running beside writes sees each key at most once, in order.
pub struct ObjectCursor {
    tree: sled::Tree,
    /// `o/bucket/`.
    bucket_prefix: Vec<u8>,
    /// `o/bucket/prefix`: the walk ends at the first key outside it.
    scope: Vec<u8>,
    iter: Option<sled::Iter>,
}

impl ObjectCursor {
    /// The next object, as (key, metadata), or `None` at the end of the scope.
    pub fn next_object(&mut self) -> Result<Option<(String, ObjectMeta)>, StoreError> {
        let Some(iter) = self.iter.as_mut() else { return Ok(None) };
        match iter.next().transpose()? {
            Some((k, v)) if k.starts_with(&self.scope) => {
                let key = String::from_utf8_lossy(&k[self.bucket_prefix.len()..]).into_owned();
                Ok(Some((key, decode(&v)?)))
            }
            _ => {
                self.iter = None;
                Ok(None)
            }
        }
    }

    /// The next object as a listing shows it (key, size, ETag, time), or `None` at the end of
    /// the scope: like [`Self::next_object`] without decoding the rest of the metadata (an
    /// inline body above all), which made up most of a listing's time.
    pub fn next_listed(&mut self) -> Result<Option<(String, ListedObject)>, StoreError> {
        let Some(iter) = self.iter.as_mut() else { return Ok(None) };
        match iter.next().transpose()? {
            Some((k, v)) if k.starts_with(&self.scope) => {
                let key = String::from_utf8_lossy(&k[self.bucket_prefix.len()..]).into_owned();
                Ok(Some((key, crate::codec::decode_head::<ObjectMeta, ObjectMetaHead>(&v)?.into())))
            }
            _ => {
                self.iter = None;
                Ok(None)
            }
        }
    }

    /// Skips every remaining key that starts with `key_prefix` (a common prefix already
    /// reported). `0xFF` never occurs in UTF-8, so it sorts after every continuation.
    pub fn skip_keys_starting_with(&mut self, key_prefix: &str) {
        let mut start = [self.bucket_prefix.as_slice(), key_prefix.as_bytes()].concat();
        start.push(0xFF);
        self.iter = Some(self.tree.range(start..));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::{OBJECT, Tables, record_key};
    use crate::model::{ContentHeaders, ObjectMeta, PartSummary};

    fn object(inline: Option<Vec<u8>>, etag: &str, tags: usize) -> ObjectMeta {
        ObjectMeta {
            blob: if inline.is_some() { String::new() } else { format!("blob-{etag}") },
            size: inline.as_ref().map_or(5 << 20, |b| b.len() as u64),
            inline,
            etag: etag.into(),
            last_modified: 1_700_000_000_123,
            headers: ContentHeaders { content_type: Some("video/mp4".into()), ..Default::default() },
            tags: (0..tags).map(|i| (format!("t{i}"), "v".into())).collect(),
            checksums: Default::default(),
            parts: vec![PartSummary { number: 1, size: 5, etag: "p".into() }],
            holders: BTreeMap::from([(1, 5), (2, 6)]),
        }
    }

    #[test]
    fn listed_objects_match_their_metadata() {
        let db = sled::Config::new().temporary(true).open().expect("sled");
        let tables = Tables::new(db.open_tree("state").expect("tree"));
        let stored = [
            ("a", object(Some(vec![7u8; 1024]), "e1", 0)),
            ("b", object(None, "e2", 3)),
            ("c", object(Some(Vec::new()), "e3", 1)),
            ("d/ünï", object(Some(vec![0xFF; 16 * 1024]), "e4", 0)),
        ];
        for (key, meta) in &stored {
            tables.tree.insert(record_key(OBJECT, &["bk", key]), Tables::value(meta).expect("encode")).expect("insert");
        }
        let mut cursor = tables.objects("bk", "", None);
        for (key, meta) in &stored {
            let (listed_key, listed) = cursor.next_listed().expect("decode").expect("one more");
            assert_eq!(&listed_key, key);
            assert_eq!(
                (listed.size, listed.etag.as_str(), listed.last_modified),
                (meta.size, meta.etag.as_str(), meta.last_modified)
            );
        }
        assert!(cursor.next_listed().expect("end").is_none());
    }

    #[test]
    fn a_damaged_record_is_an_error_not_a_panic() {
        let db = sled::Config::new().temporary(true).open().expect("sled");
        let tables = Tables::new(db.open_tree("state").expect("tree"));
        // An inline body that claims 4 GiB, and a record cut short.
        tables
            .tree
            .insert(record_key(OBJECT, &["bk", "a"]), vec![0u8, 1, 0xFC, 0xFF, 0xFF, 0xFF, 0xFF])
            .expect("insert");
        tables.tree.insert(record_key(OBJECT, &["bk", "b"]), vec![0u8]).expect("insert");
        let mut cursor = tables.objects("bk", "", None);
        assert!(cursor.next_listed().is_err());
        let mut cursor = tables.objects("bk", "a\u{1}", None);
        let mut cursor_b = tables.objects("bk", "b", None);
        assert!(cursor.next_listed().expect("nothing under that prefix").is_none());
        assert!(cursor_b.next_listed().is_err());
    }
}
