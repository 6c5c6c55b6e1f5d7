//! Applying the bucket commands: creating a bucket (and recording its owner) and deleting an
//! empty one.

use super::{Changes, Origin};
use crate::command::CommandOutcome::{Done, Rejected};
use crate::command::{CommandOutcome, Rejection};
use crate::error::StoreError;
use crate::event::{Actor, EventKind};
use crate::model::Bucket;
use crate::tables::{self, record_key};

impl Changes<'_> {
    /// [`crate::Command::CreateBucket`]: a new bucket, owned by the signed-in user who creates it.
    pub(super) fn create_bucket(&mut self, bucket: &Bucket) -> Result<CommandOutcome, StoreError> {
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
        Ok(Done)
    }

    /// [`crate::Command::DeleteBucket`]: only an empty bucket goes, taking its remaining shares
    /// with it.
    pub(super) fn delete_bucket(&mut self, name: &str) -> Result<CommandOutcome, StoreError> {
        if self.tables.bucket(name)?.is_none() {
            return Ok(Rejected(Rejection::NoSuchBucket));
        }
        if !self.tables.bucket_is_empty(name)? {
            return Ok(Rejected(Rejection::BucketNotEmpty));
        }
        self.remove_bucket(name)
    }

    /// [`crate::Command::DeleteBucketAbortingUploads`]: a bucket without objects goes, its
    /// unfinished multipart uploads aborted in the same step, as S3's DeleteBucket does.
    pub(super) fn delete_bucket_aborting_uploads(&mut self, name: &str) -> Result<CommandOutcome, StoreError> {
        if self.tables.bucket(name)?.is_none() {
            return Ok(Rejected(Rejection::NoSuchBucket));
        }
        if self.tables.bucket_has_objects(name)? {
            return Ok(Rejected(Rejection::BucketNotEmpty));
        }
        for upload in self.tables.uploads(name)? {
            self.abort_upload(&upload.id)?;
        }
        self.remove_bucket(name)
    }

    /// Removes an empty bucket's records (its CORS configuration too) and revokes its shares.
    fn remove_bucket(&mut self, name: &str) -> Result<CommandOutcome, StoreError> {
        self.batch.remove(record_key(tables::BUCKET, &[name]));
        // A bucket re-created later starts without the old one's CORS rules. Nothing to remove
        // on a node of the previous release: it never stored any.
        self.batch.remove(record_key(tables::CORS, &[name]));
        self.batch.remove(record_key(tables::BUCKET_ACCESS, &[name]));
        self.batch.remove(record_key(tables::OWNER, &[name]));
        self.batch.remove(record_key(tables::OWNED_SINCE, &[name]));
        self.batch.remove(record_key(tables::VERSIONING, &[name]));
        self.batch.remove(record_key(tables::OBJECT_LOCK, &[name]));
        // Deleting each file revoked its shares already; this catches those left from
        // before that rule (not in the file index, hence the scan: bucket deletes are
        // rare), so a bucket re-created by someone else starts clean.
        let mut leftover = self.tables.shares()?;
        leftover.retain(|s| s.bucket == *name && s.revoked.is_none());
        self.revoke_shares_of(leftover)?;
        self.emit(None, EventKind::BucketDeleted { bucket: name.to_owned() })?;
        Ok(Done)
    }
}

#[cfg(test)]
mod tests {
    use crate::command::{Command, CommandOutcome, Rejection, WriteCondition};
    use crate::model::{Bucket, MultipartUpload, WorkItem};
    use crate::state_machine::testing::{entry, object, owed, put, state_machine};

    fn upload(id: &str) -> MultipartUpload {
        MultipartUpload {
            id: id.into(),
            bucket: "b".into(),
            key: "big".into(),
            initiated: 1,
            node: 1,
            headers: Default::default(),
            tags: Vec::new(),
            checksum_algorithm: None,
        }
    }

    /// S3's DeleteBucket: unfinished uploads do not keep a bucket alive, objects do; the
    /// previous release's command still refuses both.
    #[test]
    fn deleting_a_bucket_aborts_its_uploads_but_not_past_an_object() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sm = state_machine(dir.path());
        let bucket = Bucket { name: "b".into(), created: 1, region: "r".into() };
        sm.apply_entry(&entry(1, Command::CreateBucket(bucket))).expect("apply");
        sm.apply_entry(&entry(2, Command::CreateUpload(upload("u1")))).expect("apply");
        sm.apply_entry(&entry(3, Command::CreateUpload(upload("u2")))).expect("apply");
        let old = sm.apply_entry(&entry(4, Command::DeleteBucket { name: "b".into() })).expect("apply").0;
        assert_eq!(old, CommandOutcome::Rejected(Rejection::BucketNotEmpty), "the old command is unchanged");

        sm.apply_entry(&entry(5, put("k", "dd01", 1))).expect("apply");
        let refused =
            sm.apply_entry(&entry(6, Command::DeleteBucketAbortingUploads { name: "b".into() })).expect("apply");
        assert_eq!(refused.0, CommandOutcome::Rejected(Rejection::BucketNotEmpty), "an object keeps the bucket");
        assert!(sm.tables.upload("u1").expect("read").is_some(), "a refused delete aborts nothing");

        let delete = Command::DeleteObjects { bucket: "b".into(), keys: vec!["k".into()] };
        sm.apply_entry(&entry(7, delete)).expect("apply");
        let done = sm.apply_entry(&entry(8, Command::DeleteBucketAbortingUploads { name: "b".into() })).expect("apply");
        assert_eq!(done.0, CommandOutcome::Done);
        assert!(sm.tables.bucket("b").expect("read").is_none());
        assert!(sm.tables.uploads("b").expect("read").is_empty(), "the uploads went with it");
        let drops: Vec<WorkItem> =
            owed(&sm).into_iter().filter(|w| matches!(w, WorkItem::DropUploadParts { .. })).collect();
        assert_eq!(drops.len(), 2, "this node owes dropping both uploads' parts: {drops:?}");
        let again =
            sm.apply_entry(&entry(9, Command::DeleteBucketAbortingUploads { name: "b".into() })).expect("apply");
        assert_eq!(again.0, CommandOutcome::Rejected(Rejection::NoSuchBucket));
    }

    /// A CompleteMultipartUpload refused by its condition leaves the upload to complete again.
    #[test]
    fn a_refused_conditional_completion_keeps_its_upload() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sm = state_machine(dir.path());
        let bucket = Bucket { name: "b".into(), created: 1, region: "r".into() };
        sm.apply_entry(&entry(1, Command::CreateBucket(bucket))).expect("apply");
        sm.apply_entry(&entry(2, Command::CreateUpload(upload("u1")))).expect("apply");
        sm.apply_entry(&entry(3, put("big", "dd01", 1))).expect("apply");
        let complete = |condition| Command::PutObject {
            bucket: "b".into(),
            key: "big".into(),
            meta: object("dd02", 1),
            condition,
            completes_upload: Some("u1".into()),
        };
        let refused = sm.apply_entry(&entry(4, complete(WriteCondition::Absent))).expect("apply").0;
        assert_eq!(refused, CommandOutcome::Rejected(Rejection::PreconditionFailed));
        assert!(sm.tables.upload("u1").expect("read").is_some(), "the upload is still there");
        let done = sm.apply_entry(&entry(5, complete(WriteCondition::ETagIs("e".into())))).expect("apply").0;
        assert_eq!(done, CommandOutcome::Done);
        assert!(sm.tables.upload("u1").expect("read").is_none(), "completed");
    }
}
