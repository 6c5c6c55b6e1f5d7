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
        // Object Lock needs every write to make a version of its own, as on S3.
        if state != VersioningState::Enabled && self.tables.object_lock(bucket)?.is_some() {
            return Ok(Rejected(Rejection::InvalidBucketState));
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
            self.batch.remove(record_key(tables::PART_CHECKSUMS, &[&meta.blob]));
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
        if let Some(Latest { id, sort, object: Some(object) }) = latest {
            had_object = true;
            self.batch.remove(record_key(tables::OBJECT, &[bucket, key]));
            if new_is_null && id == NULL_VERSION {
                self.free_version(&object)?;
            } else {
                let at = object.last_modified;
                self.keep_acl_of_retired(bucket, key, &id)?;
                self.put(version_key(bucket, key, &sort), &ObjectVersion { id, meta: Some(object), at })?;
            }
        }
        if new_is_null {
            for (sort, version) in self.tables.stored_versions(bucket, key)? {
                if version.id == NULL_VERSION {
                    self.forget_version_acl(bucket, key, NULL_VERSION);
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
        // The retired object took its ACL to `vacl/` (see `acl`); a marker has none.
        self.forget_object_acl(bucket, key);
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
            Some(sort) => {
                self.batch.remove(version_key(bucket, key, sort));
                self.forget_version_acl(bucket, key, id);
            }
            None => self.batch.remove(record_key(tables::OBJECT, &[bucket, key])),
        }
        if let Some(meta) = &version.meta {
            self.free_version(meta)?;
        }
        if is_latest {
            self.forget_object_acl(bucket, key);
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
            self.restore_acl_of_promoted(bucket, key, &version.id)?;
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

#[cfg(test)]
mod tests {
    use crate::command::{Command, CommandOutcome, VersionTouched};
    use crate::model::{Bucket, NULL_VERSION, VersioningState, WorkItem};
    use crate::state_machine::testing::{entry, kinds, owed, put, state_machine};

    /// The version id a versioned write reported.
    fn version_of(outcome: &CommandOutcome) -> String {
        match outcome {
            CommandOutcome::Versions(v) if v.len() == 1 => v[0].version_id.clone(),
            other => panic!("expected one version, got {other:?}"),
        }
    }

    /// A state machine with bucket `b` in versioning `state`.
    fn setup(state: VersioningState) -> (tempfile::TempDir, crate::state_machine::StateMachine) {
        let dir = tempfile::tempdir().expect("tempdir");
        let sm = state_machine(dir.path());
        let bucket = Bucket { name: "b".into(), created: 0, region: "r".into() };
        sm.apply_entry(&entry(1, Command::CreateBucket(bucket))).expect("apply");
        sm.apply_entry(&entry(2, Command::PutBucketVersioning { bucket: "b".into(), state })).expect("apply");
        (dir, sm)
    }

    /// A version keeps its own ACL and tags: an overwrite moves the current object's ACL to
    /// `vacl/`, each version's ACL and tags change alone, and a version that becomes current
    /// again brings its ACL back; a delete marker takes neither.
    #[test]
    fn versions_keep_their_own_acls_and_tags() {
        use crate::acl::{Acl, AclGrant, AclGrantee, AclPermission};
        use crate::command::Rejection;
        let public = Acl { grants: vec![AclGrant { grantee: AclGrantee::AllUsers, permission: AclPermission::Read }] };
        let (_dir, sm) = setup(VersioningState::Enabled);
        let first = Command::WithAcl { acl: public.clone(), command: Box::new(put("k", "aa01", 1)) };
        let v1 = version_of(&sm.apply_entry(&entry(3, first)).expect("apply").0);
        let v2 = version_of(&sm.apply_entry(&entry(4, put("k", "aa02", 1))).expect("apply").0);
        assert_eq!(sm.tables.object_acl("b", "k").expect("read"), None, "the new version is private");
        assert_eq!(sm.tables.version_acl("b", "k", &v1).expect("read"), Some(public.clone()), "v1 kept its ACL");

        let tags = vec![("state".to_owned(), "old".to_owned())];
        let tag_v1 =
            Command::SetVersionTags { bucket: "b".into(), key: "k".into(), version_id: v1.clone(), tags: tags.clone() };
        assert_eq!(sm.apply_entry(&entry(5, tag_v1)).expect("apply").0, CommandOutcome::Done);
        let stored = sm.tables.version("b", "k", &v1).expect("read").and_then(|(_, v)| v.meta).expect("v1");
        assert_eq!(stored.tags, tags, "the stored version's tags");
        assert!(sm.tables.object("b", "k").expect("read").expect("current").tags.is_empty(), "current untouched");
        let acl_v2 =
            Command::PutVersionAcl { bucket: "b".into(), key: "k".into(), version_id: v2.clone(), acl: public.clone() };
        assert_eq!(sm.apply_entry(&entry(6, acl_v2)).expect("apply").0, CommandOutcome::Done);
        assert_eq!(sm.tables.object_acl("b", "k").expect("read"), Some(public.clone()), "v2 is current: oacl/");

        let delete = Command::DeleteObjects { bucket: "b".into(), keys: vec!["k".into()] };
        let marker = match sm.apply_entry(&entry(7, delete)).expect("apply").0 {
            CommandOutcome::Versions(v) => v[0].version_id.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(sm.tables.version_acl("b", "k", &v2).expect("read"), Some(public.clone()), "v2 kept its ACL");
        for (index, command) in [
            (8, Command::SetVersionTags { bucket: "b".into(), key: "k".into(), version_id: marker.clone(), tags }),
            (
                9,
                Command::PutVersionAcl {
                    bucket: "b".into(),
                    key: "k".into(),
                    version_id: marker.clone(),
                    acl: public.clone(),
                },
            ),
            (
                10,
                Command::PutVersionAcl {
                    bucket: "b".into(),
                    key: "k".into(),
                    version_id: "0".repeat(24),
                    acl: public.clone(),
                },
            ),
        ] {
            assert_eq!(
                sm.apply_entry(&entry(index, command)).expect("apply").0,
                CommandOutcome::Rejected(Rejection::NoSuchKey),
                "a marker or an unknown version has no ACL or tags"
            );
        }
        // Deleting v2 for good forgets its ACL; deleting the marker makes v1 current with its own.
        let gone = Command::DeleteVersion { bucket: "b".into(), key: "k".into(), version_id: v2.clone() };
        sm.apply_entry(&entry(11, gone)).expect("apply");
        assert_eq!(sm.tables.version_acl("b", "k", &v2).expect("read"), None, "v2's ACL went with it");
        let unmark = Command::DeleteVersion { bucket: "b".into(), key: "k".into(), version_id: marker };
        sm.apply_entry(&entry(12, unmark)).expect("apply");
        assert_eq!(sm.tables.object("b", "k").expect("read").map(|o| o.blob), Some("aa01".into()));
        assert_eq!(sm.tables.object_acl("b", "k").expect("read"), Some(public), "v1 current again, with its ACL");
        assert_eq!(sm.tables.version_acl("b", "k", &v1).expect("read"), None, "moved, not copied");
    }

    /// An overwrite in an enabled bucket keeps the old version and its blob (no drop owed); a
    /// delete leaves a marker; deleting the marker brings the newest version back; deleting a
    /// version for good frees its blob.
    #[test]
    fn enabled_buckets_keep_versions_until_one_is_deleted() {
        let (_dir, sm) = setup(VersioningState::Enabled);
        let v1 = version_of(&sm.apply_entry(&entry(3, put("k", "aa01", 1))).expect("apply").0);
        let v2 = version_of(&sm.apply_entry(&entry(4, put("k", "aa02", 1))).expect("apply").0);
        assert!(v2 < v1, "newer ids sort first: {v2} {v1}");
        assert!(owed(&sm).is_empty(), "no blob is dropped by a versioned overwrite: {:?}", owed(&sm));
        assert_eq!(sm.tables.object("b", "k").expect("read").map(|o| o.blob), Some("aa02".into()));
        let kept = sm.tables.stored_versions("b", "k").expect("read");
        assert_eq!(kept.len(), 1);
        assert_eq!(
            (kept[0].1.id.as_str(), kept[0].1.meta.as_ref().map(|m| m.blob.as_str())),
            (v1.as_str(), Some("aa01"))
        );
        assert!(sm.tables.blob_is_referenced("aa01").expect("read"), "a kept version's blob stays referenced");

        let delete = Command::DeleteObjects { bucket: "b".into(), keys: vec!["k".into()] };
        let (outcome, _) = sm.apply_entry(&entry(5, delete)).expect("apply");
        let marker = match outcome {
            CommandOutcome::Versions(v) => {
                assert!(v[0].delete_marker);
                v[0].version_id.clone()
            }
            other => panic!("{other:?}"),
        };
        assert!(sm.tables.object("b", "k").expect("read").is_none(), "the key is deleted");
        assert_eq!(sm.tables.latest("b", "k").expect("read").map(|l| l.id), Some(marker.clone()));
        assert!(!sm.tables.bucket_is_empty("b").expect("read"), "versions keep a bucket from being empty");

        let undelete = Command::DeleteVersion { bucket: "b".into(), key: "k".into(), version_id: marker.clone() };
        let (outcome, _) = sm.apply_entry(&entry(6, undelete)).expect("apply");
        assert_eq!(
            outcome,
            CommandOutcome::Versions(vec![VersionTouched { key: "k".into(), version_id: marker, delete_marker: true }])
        );
        assert_eq!(sm.tables.object("b", "k").expect("read").map(|o| o.blob), Some("aa02".into()), "v2 is back");
        assert_eq!(sm.tables.latest("b", "k").expect("read").map(|l| l.id), Some(v2.clone()));

        let drop_v1 = Command::DeleteVersion { bucket: "b".into(), key: "k".into(), version_id: v1.clone() };
        sm.apply_entry(&entry(7, drop_v1.clone())).expect("apply");
        assert_eq!(owed(&sm), vec![WorkItem::DropBlob { blob: "aa01".into() }], "a deleted version's blob is freed");
        assert!(!sm.tables.blob_is_referenced("aa01").expect("read"));
        let (again, _) = sm.apply_entry(&entry(8, drop_v1)).expect("apply");
        assert_eq!(again, CommandOutcome::Versions(Vec::new()), "a version deleted twice: nothing, no error");

        // Deleting the last version forgets the key altogether.
        let drop_v2 = Command::DeleteVersion { bucket: "b".into(), key: "k".into(), version_id: v2 };
        sm.apply_entry(&entry(9, drop_v2)).expect("apply");
        assert!(sm.tables.latest("b", "k").expect("read").is_none());
        assert!(sm.tables.bucket_is_empty("b").expect("read"));

        // The history names every version made and deleted, beside the object events.
        let kinds = kinds(&sm, 9);
        assert_eq!(
            kinds,
            [
                "BucketCreated",
                "ObjectCreated",
                "ObjectVersionCreated",
                "ObjectUpdated",
                "ObjectVersionCreated",
                "ObjectDeleted",
                "ObjectVersionCreated",
                "ObjectVersionDeleted",
                "ObjectVersionDeleted",
                "ObjectVersionDeleted",
            ]
        );
        let events = crate::history::read(&sm.tables, None, 100, 9).expect("read");
        assert!(
            matches!(&events[2].kind, crate::event::EventKind::ObjectVersionCreated { version_id, delete_marker: false, .. } if *version_id == v1),
            "{:?}",
            events[2].kind
        );
    }

    /// A suspended bucket writes the null version, replacing the previous null version only:
    /// the versions written while enabled are kept.
    #[test]
    fn suspended_buckets_replace_only_the_null_version() {
        let (_dir, sm) = setup(VersioningState::Enabled);
        let kept = version_of(&sm.apply_entry(&entry(3, put("k", "bb01", 1))).expect("apply").0);
        let suspend = Command::PutBucketVersioning { bucket: "b".into(), state: VersioningState::Suspended };
        sm.apply_entry(&entry(4, suspend)).expect("apply");
        assert_eq!(version_of(&sm.apply_entry(&entry(5, put("k", "bb02", 1))).expect("apply").0), NULL_VERSION);
        assert_eq!(version_of(&sm.apply_entry(&entry(6, put("k", "bb03", 1))).expect("apply").0), NULL_VERSION);
        assert_eq!(owed(&sm), vec![WorkItem::DropBlob { blob: "bb02".into() }], "the first null version is freed");
        let ids: Vec<String> =
            sm.tables.stored_versions("b", "k").expect("read").into_iter().map(|(_, v)| v.id).collect();
        assert_eq!(ids, vec![kept.clone()], "the enabled version is kept");
        assert_eq!(
            sm.tables.version("b", "k", NULL_VERSION).expect("read").and_then(|(_, v)| v.meta).map(|m| m.blob),
            Some("bb03".into())
        );
    }

    /// A non-holder of a kept version still owes its pull, and its report lands on that version.
    #[test]
    fn kept_versions_are_replicated_like_objects() {
        let (_dir, sm) = setup(VersioningState::Enabled);
        let v1 = version_of(&sm.apply_entry(&entry(3, put("k", "cc01", 2))).expect("apply").0);
        sm.apply_entry(&entry(4, put("k", "cc02", 2))).expect("apply");
        let pulls = owed(&sm);
        assert_eq!(pulls.len(), 2, "both versions to pull: {pulls:?}");
        let added = Command::ReplicaAdded { bucket: "b".into(), key: "k".into(), blob: "cc01".into(), node: 1, at: 9 };
        let (outcome, _) = sm.apply_entry(&entry(5, added)).expect("apply");
        assert_eq!(outcome, CommandOutcome::Done, "a kept version takes the report");
        let (_, version) = sm.tables.version("b", "k", &v1).expect("read").expect("kept");
        assert!(version.meta.expect("a version").holders.contains_key(&1), "node 1 now holds v1");
    }
}
