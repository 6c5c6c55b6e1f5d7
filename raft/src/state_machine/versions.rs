//! Applying versioning: a bucket's versioning state, writes and deletes in a versioned bucket
//! (new versions, delete markers, the `null` version) and deleting one version for good.
//!
//! Layout (see `tables`): the current version stays in `o/`, so every reader of current objects
//! (GET, listings, replication, the scrub) works as before; `q/` names the latest version of a
//! key written while versioned; `r/` keeps every other version and every delete marker, newest
//! first. A version's id comes from the log: the entry's index and the version's position in
//! it, inverted so that a newer version sorts first. Ids are never reused, since log indexes
//! are not.

use super::Changes;
use crate::command::CommandOutcome::{Done, Rejected};
use crate::command::{CommandOutcome, Rejection, VersionTouched};
use crate::error::StoreError;
use crate::event::EventKind;
use crate::model::{LatestVersion, NULL_VERSION, ObjectMeta, ObjectVersion, UnixMillis, VersioningState, WorkItem};
use crate::tables::{self, record_key, version_key};

/// Where the latest version of a key is, as apply sees it before changing it.
struct Latest {
    /// Its version id.
    id: String,
    /// Its sort key.
    sort: String,
    /// The current object, when the latest is one (`o/`); `None`: a delete marker in `r/`.
    object: Option<ObjectMeta>,
}

impl Changes<'_> {
    /// The sort key (and id) of a version this entry creates: unique per entry position, newer
    /// ones first.
    fn next_version_sort(&mut self) -> String {
        self.versions_made = self.versions_made.saturating_add(1);
        format!("{:016x}{:08x}", u64::MAX - self.index, u32::MAX - self.versions_made)
    }

    /// The sort key given to a `null` version written before versioning, when a versioned write
    /// first moves it out of `o/`: older than anything this entry creates.
    fn legacy_sort(&self) -> String {
        format!("{:016x}{:08x}", u64::MAX - self.index, u32::MAX)
    }

    /// [`crate::Command::PutBucketVersioning`].
    pub(super) fn put_bucket_versioning(
        &mut self,
        bucket: &str,
        state: VersioningState,
    ) -> Result<CommandOutcome, StoreError> {
        if self.tables.bucket(bucket)?.is_none() {
            return Ok(Rejected(Rejection::NoSuchBucket));
        }
        self.put(record_key(tables::VERSIONING, &[bucket]), &state)?;
        Ok(Done)
    }

    /// The latest version of `bucket/key`, if it has any.
    fn latest(&self, bucket: &str, key: &str) -> Result<Option<Latest>, StoreError> {
        let object = self.tables.object(bucket, key)?;
        match (self.tables.latest(bucket, key)?, object) {
            (Some(LatestVersion { id, sort }), object) => Ok(Some(Latest { id, sort, object })),
            (None, Some(object)) => {
                Ok(Some(Latest { id: NULL_VERSION.into(), sort: self.legacy_sort(), object: Some(object) }))
            }
            (None, None) => Ok(None),
        }
    }

    /// Forgets a version's bytes: the blob index entry goes, and this node owes dropping the
    /// blob if it holds it (the same path an overwrite of an unversioned object takes).
    fn free_version(&mut self, meta: &ObjectMeta) -> Result<(), StoreError> {
        if meta.inline.is_none() && !meta.blob.is_empty() {
            self.batch.remove(record_key(tables::BLOB, &[&meta.blob]));
            if meta.holders.contains_key(&self.node) {
                self.owe(&WorkItem::DropBlob { blob: meta.blob.clone() })?;
            }
        }
        Ok(())
    }

    /// Makes room for a new latest version of `bucket/key`: the current object leaves `o/`
    /// (kept in `r/`, or freed when both it and the new version are `null`), and the stored
    /// `null` version goes when the new one is `null` too. Returns whether an object was current.
    fn retire_latest(&mut self, bucket: &str, key: &str, new_is_null: bool) -> Result<bool, StoreError> {
        let latest = self.latest(bucket, key)?;
        let mut had_object = false;
        if let Some(Latest { id, sort, object }) = latest {
            if let Some(object) = object {
                had_object = true;
                self.batch.remove(record_key(tables::OBJECT, &[bucket, key]));
                if new_is_null && id == NULL_VERSION {
                    self.free_version(&object)?;
                } else {
                    let at = object.last_modified;
                    self.put(version_key(bucket, key, &sort), &ObjectVersion { id, meta: Some(object), at })?;
                }
            }
        }
        if new_is_null {
            for (sort, version) in self.tables.stored_versions(bucket, key)? {
                if version.id == NULL_VERSION {
                    self.batch.remove(version_key(bucket, key, &sort));
                    if let Some(meta) = &version.meta {
                        self.free_version(meta)?;
                    }
                }
            }
        }
        Ok(had_object)
    }

    /// A PUT (or copy, or multipart completion) in a versioned bucket: the new version becomes
    /// current, the previous one is kept (Enabled) or, being `null`, replaced (Suspended).
    /// Returns whether an object was current before, and the new version's id.
    pub(super) fn put_versioned(
        &mut self,
        bucket: &str,
        key: &str,
        meta: &ObjectMeta,
        state: VersioningState,
    ) -> Result<(bool, String), StoreError> {
        let sort = self.next_version_sort();
        let id = match state {
            VersioningState::Enabled => sort.clone(),
            VersioningState::Suspended => NULL_VERSION.to_owned(),
        };
        let replaced = self.retire_latest(bucket, key, id == NULL_VERSION)?;
        self.put(record_key(tables::OBJECT, &[bucket, key]), meta)?;
        self.put(record_key(tables::LATEST, &[bucket, key]), &LatestVersion { id: id.clone(), sort })?;
        Ok((replaced, id))
    }

    /// A delete without a version id in a versioned bucket: a delete marker becomes the latest
    /// version (even of a key that has none, as S3 does); nothing is freed unless the marker
    /// is `null` and replaces the `null` version.
    pub(super) fn delete_versioned(
        &mut self,
        bucket: &str,
        key: &str,
        state: VersioningState,
        at: UnixMillis,
    ) -> Result<(bool, VersionTouched), StoreError> {
        let sort = self.next_version_sort();
        let id = match state {
            VersioningState::Enabled => sort.clone(),
            VersioningState::Suspended => NULL_VERSION.to_owned(),
        };
        let had_object = self.retire_latest(bucket, key, id == NULL_VERSION)?;
        self.put(version_key(bucket, key, &sort), &ObjectVersion { id: id.clone(), meta: None, at })?;
        self.put(record_key(tables::LATEST, &[bucket, key]), &LatestVersion { id: id.clone(), sort })?;
        Ok((had_object, VersionTouched { key: key.to_owned(), version_id: id, delete_marker: true }))
    }

    /// [`crate::Command::DeleteVersion`]: one version goes for good, its blob freed; when it was
    /// the latest, the next newest (object or marker) becomes the latest.
    pub(super) fn delete_version(&mut self, bucket: &str, key: &str, id: &str) -> Result<CommandOutcome, StoreError> {
        if self.tables.bucket(bucket)?.is_none() {
            return Ok(Rejected(Rejection::NoSuchBucket));
        }
        let latest = self.latest(bucket, key)?;
        let is_latest = latest.as_ref().is_some_and(|l| l.id == id);
        let Some((stored_at, version)) = self.tables.version(bucket, key, id)? else {
            return Ok(CommandOutcome::Versions(Vec::new()));
        };
        match &stored_at {
            Some(sort) => self.batch.remove(version_key(bucket, key, sort)),
            None => self.batch.remove(record_key(tables::OBJECT, &[bucket, key])),
        }
        if let Some(meta) = &version.meta {
            self.free_version(meta)?;
        }
        if is_latest {
            self.promote_next(bucket, key, stored_at.as_deref())?;
        }
        let kind = EventKind::ObjectVersionDeleted {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version_id: id.to_owned(),
            delete_marker: version.meta.is_none(),
        };
        self.emit(None, kind)?;
        let touched =
            VersionTouched { key: key.to_owned(), version_id: id.to_owned(), delete_marker: version.meta.is_none() };
        Ok(CommandOutcome::Versions(vec![touched]))
    }

    /// After the latest version of a key was deleted: the newest stored one (other than
    /// `removed`, which the batch already drops) becomes the latest; an object moves to `o/`.
    fn promote_next(&mut self, bucket: &str, key: &str, removed: Option<&str>) -> Result<(), StoreError> {
        let next =
            self.tables.stored_versions(bucket, key)?.into_iter().find(|(sort, _)| Some(sort.as_str()) != removed);
        let Some((sort, version)) = next else {
            self.batch.remove(record_key(tables::LATEST, &[bucket, key]));
            self.batch.remove(record_key(tables::OWNER, &[bucket, key]));
            self.batch.remove(record_key(tables::OWNED_SINCE, &[bucket, key]));
            return Ok(());
        };
        if let Some(meta) = &version.meta {
            self.batch.remove(version_key(bucket, key, &sort));
            self.put(record_key(tables::OBJECT, &[bucket, key]), meta)?;
        }
        self.put(record_key(tables::LATEST, &[bucket, key]), &LatestVersion { id: version.id, sort })?;
        Ok(())
    }

    /// Whether `blob` of `bucket/key` is one of its versions, current or stored, with that
    /// version's metadata and where it is stored (sort key; `None`: `o/`).
    pub(super) fn version_with_blob(
        &self,
        bucket: &str,
        key: &str,
        blob: &str,
    ) -> Result<Option<(Option<String>, ObjectMeta)>, StoreError> {
        self.tables.version_with_blob(bucket, key, blob)
    }

    /// Writes back a version's metadata where [`Self::version_with_blob`] found it.
    pub(super) fn store_version_meta(
        &mut self,
        bucket: &str,
        key: &str,
        stored_at: Option<&str>,
        meta: &ObjectMeta,
    ) -> Result<(), StoreError> {
        match stored_at {
            None => self.put(record_key(tables::OBJECT, &[bucket, key]), meta),
            Some(sort) => {
                let Some(mut version) = self.tables.get::<ObjectVersion>(&version_key(bucket, key, sort))? else {
                    return Ok(());
                };
                version.meta = Some(meta.clone());
                self.put(version_key(bucket, key, sort), &version)
            }
        }
    }
}
