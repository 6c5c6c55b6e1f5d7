//! Applying the object commands: writing and deleting objects (with the ownership, blob index
//! and work items they change), their tags, and multipart uploads.

use super::{Changes, Origin};
use crate::command::CommandOutcome::{Deleted, Done, Rejected};
use crate::command::{Command, CommandOutcome, Rejection, VersionTouched, WriteCondition};
use crate::error::StoreError;
use crate::event::{Actor, EventKind};
use crate::model::{MultipartUpload, ObjectMeta, PartChecksums, WorkItem};
use crate::tables::{self, record_key};

impl Changes<'_> {
    /// [`crate::Command::PutObject`]: a new version of a key (or the completion of a multipart
    /// upload), under its write condition, with the ownership, blob index and work items it
    /// changes.
    pub(super) fn put_object(
        &mut self,
        bucket: &str,
        key: &str,
        meta: &ObjectMeta,
        condition: &WriteCondition,
        completes_upload: Option<&str>,
    ) -> Result<CommandOutcome, StoreError> {
        if self.tables.bucket(bucket)?.is_none() {
            return Ok(Rejected(Rejection::NoSuchBucket));
        }
        let completed = match completes_upload {
            Some(upload_id) => match self.tables.upload(upload_id)? {
                Some(upload) => Some(upload),
                None => return Ok(Rejected(Rejection::NoSuchUpload)),
            },
            None => None,
        };
        let current = self.tables.object(bucket, key)?;
        let allowed = match (condition, &current) {
            (WriteCondition::None, _) => true,
            (WriteCondition::Absent, current) => current.is_none(),
            (WriteCondition::ETagIs(etag), Some(current)) => &current.etag == etag,
            (WriteCondition::ETagIs(_), None) => false,
        };
        // Judged before the upload is removed: a refused CompleteMultipartUpload leaves its
        // upload for the client to complete again, as S3 does. Only a conditional completion
        // can be refused here, and gateways send those only once the cluster writes format 2
        // (nodes of the previous release removed the upload first), so replicas agree.
        if !allowed {
            return Ok(Rejected(Rejection::PreconditionFailed));
        }
        // The new object starts with no ACL (`private`), or with the one its upload asked for.
        self.forget_object_acl(bucket, key);
        if let Some(upload) = completed {
            self.settle_upload_acl(&upload.id, Some((bucket, key)))?;
            self.batch.remove(record_key(tables::UPLOAD, &[&upload.id]));
            if upload.node == self.node {
                self.owe(&WorkItem::DropUploadParts { upload: upload.id.clone() })?;
            }
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
        let versioning = self.tables.versioning(bucket)?;
        let (replaced, version_id) = match versioning {
            None => {
                let replaced = self.remove_object(bucket, key, Some(&meta.blob))?;
                self.put(record_key(tables::OBJECT, &[bucket, key]), meta)?;
                (replaced, None)
            }
            Some(state) => {
                let (replaced, id) = self.put_versioned(bucket, key, meta, state)?;
                (replaced, Some(id))
            }
        };
        if let Some((owner, since)) = owner {
            self.put(record_key(tables::OWNER, &[bucket, key]), &owner)?;
            if let Some(since) = since {
                self.put(record_key(tables::OWNED_SINCE, &[bucket, key]), &since)?;
            }
        }
        if meta.inline.is_none() {
            self.put(record_key(tables::BLOB, &[&meta.blob]), &format!("{bucket}/{key}"))?;
            if !meta.holders.contains_key(&self.node) {
                self.owe(&WorkItem::Pull { bucket: bucket.to_owned(), key: key.to_owned(), blob: meta.blob.clone() })?;
            }
        }
        // The writer is the holder that had it first (a new version has only that one).
        let writer = meta.holders.iter().min_by_key(|(_, at)| **at).map(|(node, _)| *node);
        let region = match writer {
            Some(node) => self.region_of(node)?,
            None => String::new(),
        };
        let (bucket_name, key_name) = (bucket.to_owned(), key.to_owned());
        let (bucket, key, size, etag) = (bucket.to_owned(), key.to_owned(), meta.size, meta.etag.clone());
        let kind = if replaced {
            EventKind::ObjectUpdated { bucket, key, size, etag, region }
        } else {
            EventKind::ObjectCreated { bucket, key, size, etag, region }
        };
        self.emit(Some(meta.last_modified), kind)?;
        let Some(version_id) = version_id else { return Ok(Done) };
        let kind = EventKind::ObjectVersionCreated {
            bucket: bucket_name.clone(),
            key: key_name.clone(),
            version_id: version_id.clone(),
            delete_marker: false,
        };
        self.emit(Some(meta.last_modified), kind)?;
        self.lock_new_version(&bucket_name, &key_name, &version_id, meta.last_modified, completes_upload)?;
        Ok(CommandOutcome::Versions(vec![VersionTouched { key: key_name, version_id, delete_marker: false }]))
    }

    /// [`crate::Command::WithPartChecksums`]: the wrapped write, then (if it applied) its
    /// object's part checksums under its blob. Written after the write's own changes, so an
    /// overwrite's removal of the old object's checksums (another blob) cannot undo them.
    pub(super) fn with_part_checksums(
        &mut self,
        parts: &PartChecksums,
        command: &Command,
    ) -> Result<CommandOutcome, StoreError> {
        let outcome = self.apply(command)?;
        if matches!(outcome, Rejected(_)) {
            return Ok(outcome);
        }
        let mut write = command;
        while let Command::WithAcl { command, .. } | Command::WithObjectLock { command, .. } = write {
            write = command.as_ref();
        }
        match write {
            Command::PutObject { meta, .. } if meta.inline.is_none() && !meta.blob.is_empty() => {
                self.put(record_key(tables::PART_CHECKSUMS, &[&meta.blob]), parts)?;
            }
            other => {
                // A proposer bug; the write itself applied as it would alone.
                tracing::error!(command = ?other, "part checksums came with a command that stores no blob");
            }
        }
        Ok(outcome)
    }

    /// [`crate::Command::DeleteObjects`]: the keys that existed go, with their shares; the outcome
    /// lists them.
    pub(super) fn delete_objects(&mut self, bucket: &str, keys: &[String]) -> Result<CommandOutcome, StoreError> {
        if self.tables.bucket(bucket)?.is_none() {
            return Ok(Rejected(Rejection::NoSuchBucket));
        }
        if let Some(state) = self.tables.versioning(bucket)? {
            let at = self.command_time()?;
            let mut markers = Vec::with_capacity(keys.len());
            for key in keys {
                let (had_object, marker) = self.delete_versioned(bucket, key, state, at)?;
                if had_object {
                    self.emit(None, EventKind::ObjectDeleted { bucket: bucket.to_owned(), key: key.clone() })?;
                    let shares = self.tables.shares_of_object(bucket, key)?;
                    self.revoke_shares_of(shares)?;
                }
                let kind = EventKind::ObjectVersionCreated {
                    bucket: bucket.to_owned(),
                    key: key.clone(),
                    version_id: marker.version_id.clone(),
                    delete_marker: true,
                };
                self.emit(None, kind)?;
                markers.push(marker);
            }
            return Ok(CommandOutcome::Versions(markers));
        }
        let mut deleted = Vec::new();
        for key in keys {
            if self.remove_object(bucket, key, None)? {
                self.emit(None, EventKind::ObjectDeleted { bucket: bucket.to_owned(), key: key.clone() })?;
                // A delete ends the file's shares; an overwrite (PutObject) keeps them.
                let shares = self.tables.shares_of_object(bucket, key)?;
                self.revoke_shares_of(shares)?;
                deleted.push(key.clone());
            }
        }
        Ok(Deleted(deleted))
    }

    /// [`crate::Command::SetTags`]: replaces the tags of the current version.
    pub(super) fn set_tags(
        &mut self,
        bucket: &str,
        key: &str,
        tags: &[(String, String)],
    ) -> Result<CommandOutcome, StoreError> {
        let Some(mut meta) = self.tables.object(bucket, key)? else {
            return Ok(Rejected(Rejection::NoSuchKey));
        };
        tags.clone_into(&mut meta.tags);
        self.put(record_key(tables::OBJECT, &[bucket, key]), &meta)?;
        Ok(Done)
    }

    /// [`crate::Command::SetVersionTags`]: replaces the tags of one version, current or stored.
    pub(super) fn set_version_tags(
        &mut self,
        bucket: &str,
        key: &str,
        version_id: &str,
        tags: &[(String, String)],
    ) -> Result<CommandOutcome, StoreError> {
        if self.tables.bucket(bucket)?.is_none() {
            return Ok(Rejected(Rejection::NoSuchBucket));
        }
        let Some((stored_at, version)) = self.tables.version(bucket, key, version_id)? else {
            return Ok(Rejected(Rejection::NoSuchKey));
        };
        // A delete marker has no tags to set.
        let Some(mut meta) = version.meta else { return Ok(Rejected(Rejection::NoSuchKey)) };
        tags.clone_into(&mut meta.tags);
        self.store_version_meta(bucket, key, stored_at.as_deref(), &meta)?;
        let kind = EventKind::ObjectVersionTagged {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version_id: version_id.to_owned(),
            tag_count: u32::try_from(tags.len()).unwrap_or(u32::MAX),
        };
        self.emit(None, kind)?;
        Ok(Done)
    }

    /// [`crate::Command::CreateUpload`]: a multipart upload starts in an existing bucket.
    pub(super) fn create_upload(&mut self, upload: &MultipartUpload) -> Result<CommandOutcome, StoreError> {
        if self.tables.bucket(&upload.bucket)?.is_none() {
            return Ok(Rejected(Rejection::NoSuchBucket));
        }
        self.put(record_key(tables::UPLOAD, &[&upload.id]), upload)?;
        Ok(Done)
    }

    /// [`crate::Command::AbortUpload`]: the upload goes; the node that holds its parts owes
    /// dropping them.
    pub(super) fn abort_upload(&mut self, id: &str) -> Result<CommandOutcome, StoreError> {
        let Some(upload) = self.tables.upload(id)? else {
            return Ok(Rejected(Rejection::NoSuchUpload));
        };
        self.batch.remove(record_key(tables::UPLOAD, &[id]));
        self.batch.remove(record_key(tables::UPLOAD_LOCK, &[id]));
        self.settle_upload_acl(id, None)?;
        if upload.node == self.node {
            self.owe(&WorkItem::DropUploadParts { upload: id.to_owned() })?;
        }
        Ok(Done)
    }

    /// Removes the current version of a key, if any, with its blob index entry; owes a blob
    /// drop when this node holds the bytes. Returns whether a version existed.
    fn remove_object(&mut self, bucket: &str, key: &str, keep_blob: Option<&str>) -> Result<bool, StoreError> {
        let Some(old) = self.tables.object(bucket, key)? else { return Ok(false) };
        self.batch.remove(record_key(tables::OBJECT, &[bucket, key]));
        self.batch.remove(record_key(tables::OWNER, &[bucket, key]));
        self.batch.remove(record_key(tables::OWNED_SINCE, &[bucket, key]));
        self.forget_object_acl(bucket, key);
        if old.inline.is_none() && keep_blob != Some(old.blob.as_str()) {
            self.batch.remove(record_key(tables::BLOB, &[&old.blob]));
            self.batch.remove(record_key(tables::PART_CHECKSUMS, &[&old.blob]));
            if old.holders.contains_key(&self.node) {
                self.owe(&WorkItem::DropBlob { blob: old.blob })?;
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use crate::command::Command;

    use crate::model::{Bucket, WorkItem};

    use crate::state_machine::testing::{entry, kinds, owed, put, state_machine};

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

    /// Part checksums come with a multipart write, through a versioned bucket's history, and
    /// go with the bytes they describe: an overwrite, a delete, or deleting the kept version.
    #[test]
    fn part_checksums_live_as_long_as_their_blob() {
        use crate::acl::Acl;
        use crate::model::{Checksums, PartChecksums, VersioningState};
        let dir = tempfile::tempdir().expect("tempdir");
        let sm = state_machine(dir.path());
        let bucket = Bucket { name: "b".into(), created: 5, region: "r".into() };
        sm.apply_entry(&entry(1, Command::CreateBucket(bucket))).expect("apply");
        let sums = PartChecksums {
            parts: vec![
                Checksums { crc32: Some("AAAAAA==".into()), ..Default::default() },
                Checksums { crc32: Some("AAAAAQ==".into()), ..Default::default() },
            ],
        };
        let with = |blob: &str| Command::WithPartChecksums {
            parts: sums.clone(),
            command: Box::new(Command::WithAcl { acl: Acl::default(), command: Box::new(put("k", blob, 1)) }),
        };
        sm.apply_entry(&entry(2, with("ff01"))).expect("apply");
        assert_eq!(sm.tables.part_checksums("ff01").expect("read"), Some(sums.clone()), "stored with the write");
        // A refused write stores nothing (no bucket).
        let refused = Command::WithPartChecksums {
            parts: sums.clone(),
            command: Box::new(match put("k", "ff09", 1) {
                Command::PutObject { key, meta, condition, completes_upload, .. } => {
                    Command::PutObject { bucket: "none".into(), key, meta, condition, completes_upload }
                }
                other => other,
            }),
        };
        sm.apply_entry(&entry(3, refused)).expect("apply");
        assert_eq!(sm.tables.part_checksums("ff09").expect("read"), None, "a refused write leaves nothing");
        // An overwrite drops the old blob's checksums, and a delete the new one's.
        sm.apply_entry(&entry(4, with("ff02"))).expect("apply");
        assert_eq!(sm.tables.part_checksums("ff01").expect("read"), None, "gone with the overwritten blob");
        assert!(sm.tables.part_checksums("ff02").expect("read").is_some());
        sm.apply_entry(&entry(5, Command::DeleteObjects { bucket: "b".into(), keys: vec!["k".into()] }))
            .expect("apply");
        assert_eq!(sm.tables.part_checksums("ff02").expect("read"), None, "gone with the deleted object");
        // In a versioned bucket a kept version keeps them until it is deleted for good.
        let versioning = Command::PutBucketVersioning { bucket: "b".into(), state: VersioningState::Enabled };
        sm.apply_entry(&entry(6, versioning)).expect("apply");
        sm.apply_entry(&entry(7, with("ff03"))).expect("apply");
        sm.apply_entry(&entry(8, put("k", "ff04", 1))).expect("apply");
        assert!(sm.tables.part_checksums("ff03").expect("read").is_some(), "a kept version keeps them");
        let kept = sm.tables.stored_versions("b", "k").expect("versions");
        let id = kept.first().map(|(_, v)| v.id.clone()).expect("a kept version");
        let delete = Command::DeleteVersion { bucket: "b".into(), key: "k".into(), version_id: id };
        sm.apply_entry(&entry(9, delete)).expect("apply");
        assert_eq!(sm.tables.part_checksums("ff03").expect("read"), None, "gone with the version");
    }
}
