//! Applying Object Lock: buckets created with lock, their configuration, the lock a write or an
//! upload asks for, retention and legal hold changes, and the deletes a lock refuses.
//!
//! Every decision compares the stored lock with a time carried by the command (its own `now`, or
//! the envelope's time for [`crate::Command::DeleteVersion`]), never a clock read here, so every
//! replica refuses the same deletes whatever it races with.

use super::Changes;
use crate::command::CommandOutcome::{Done, Rejected};
use crate::command::{Command, CommandOutcome, Rejection};
use crate::error::StoreError;
use crate::model::{Bucket, UnixMillis, VersioningState};
use crate::object_lock::{BucketObjectLock, Retention, VersionLock, retention_change_allowed};
use crate::tables::{self, record_key, version_lock_key};

impl Changes<'_> {
    /// [`Command::CreateBucketWithObjectLock`]: the bucket, versioning enabled and lock on, or
    /// nothing at all when the bucket cannot be created.
    pub(super) fn create_bucket_with_object_lock(&mut self, bucket: &Bucket) -> Result<CommandOutcome, StoreError> {
        let outcome = self.create_bucket(bucket)?;
        if outcome == Done {
            self.put(record_key(tables::VERSIONING, &[&bucket.name]), &VersioningState::Enabled)?;
            self.put(record_key(tables::OBJECT_LOCK, &[&bucket.name]), &BucketObjectLock::default())?;
        }
        Ok(outcome)
    }

    /// [`Command::PutObjectLockConfiguration`]: lock goes on only over enabled versioning (as
    /// S3 requires); a bucket that has it already just gets the new default retention.
    pub(super) fn put_object_lock_configuration(
        &mut self,
        bucket: &str,
        config: &BucketObjectLock,
    ) -> Result<CommandOutcome, StoreError> {
        if self.tables.bucket(bucket)?.is_none() {
            return Ok(Rejected(Rejection::NoSuchBucket));
        }
        let locked = self.tables.object_lock(bucket)?.is_some();
        if !locked && self.tables.versioning(bucket)? != Some(VersioningState::Enabled) {
            return Ok(Rejected(Rejection::InvalidBucketState));
        }
        self.put(record_key(tables::OBJECT_LOCK, &[bucket]), config)?;
        Ok(Done)
    }

    /// [`Command::WithObjectLock`]: the wrapped write or upload start, in a bucket with lock, its
    /// version (or upload) getting `lock`.
    pub(super) fn with_object_lock(
        &mut self,
        lock: VersionLock,
        command: &Command,
    ) -> Result<CommandOutcome, StoreError> {
        let bucket = match command {
            Command::PutObject { bucket, .. } => bucket.as_str(),
            Command::CreateUpload(upload) => upload.bucket.as_str(),
            _ => return Err(StoreError::Codec("an object lock wraps neither a write nor an upload".into())),
        };
        if self.tables.bucket(bucket)?.is_none() {
            return Ok(Rejected(Rejection::NoSuchBucket));
        }
        if self.tables.object_lock(bucket)?.is_none() {
            return Ok(Rejected(Rejection::ObjectLockNotEnabled));
        }
        self.requested_lock = Some(lock);
        let outcome = self.apply(command);
        let unused = self.requested_lock.take();
        if let (Command::CreateUpload(upload), Ok(Done), Some(lock)) = (command, &outcome, unused)
            && !lock.is_empty()
        {
            self.put(record_key(tables::UPLOAD_LOCK, &[&upload.id]), &lock)?;
        }
        outcome
    }

    /// Gives a version a write just made in `bucket` its lock: the one its request (or its
    /// multipart upload) asked for, its retention defaulting to the bucket's default retention
    /// counted from the version's write time. Nothing in a bucket without lock.
    pub(super) fn lock_new_version(
        &mut self,
        bucket: &str,
        key: &str,
        version_id: &str,
        written: UnixMillis,
        completes_upload: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut asked = self.requested_lock.take();
        if let Some(upload) = completes_upload {
            let upload_key = record_key(tables::UPLOAD_LOCK, &[upload]);
            if let Some(lock) = self.tables.get::<VersionLock>(&upload_key)? {
                asked = asked.or(Some(lock));
                self.batch.remove(upload_key);
            }
        }
        let Some(config) = self.tables.object_lock(bucket)? else { return Ok(()) };
        let mut lock = asked.unwrap_or_default();
        if lock.retention.is_none()
            && let Some(default) = config.default_retention
        {
            let until = written.saturating_add(default.period.millis());
            lock.retention = Some(Retention { mode: default.mode, until });
        }
        if !lock.is_empty() {
            self.put(version_lock_key(bucket, key, version_id), &lock)?;
        }
        Ok(())
    }

    /// The stored lock of a version that exists and is not a delete marker; `Err` carries the
    /// rejection when there is no such version or the bucket has no lock.
    fn lockable_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<Result<VersionLock, Rejection>, StoreError> {
        if self.tables.bucket(bucket)?.is_none() {
            return Ok(Err(Rejection::NoSuchBucket));
        }
        if self.tables.object_lock(bucket)?.is_none() {
            return Ok(Err(Rejection::ObjectLockNotEnabled));
        }
        match self.tables.version(bucket, key, version_id)? {
            Some((_, version)) if version.meta.is_some() => {
                Ok(Ok(self.tables.version_lock(bucket, key, version_id)?.unwrap_or_default()))
            }
            _ => Ok(Err(Rejection::NoSuchKey)),
        }
    }

    /// Stores a version's lock, or forgets it when it holds nothing.
    fn store_version_lock(
        &mut self,
        bucket: &str,
        key: &str,
        version_id: &str,
        lock: &VersionLock,
    ) -> Result<(), StoreError> {
        let at = version_lock_key(bucket, key, version_id);
        if lock.is_empty() {
            self.batch.remove(at);
            Ok(())
        } else {
            self.put(at, lock)
        }
    }

    /// [`Command::PutObjectRetention`].
    pub(super) fn put_object_retention(
        &mut self,
        bucket: &str,
        key: &str,
        version_id: &str,
        retention: Option<Retention>,
        now: UnixMillis,
        bypass_governance: bool,
    ) -> Result<CommandOutcome, StoreError> {
        let mut lock = match self.lockable_version(bucket, key, version_id)? {
            Ok(lock) => lock,
            Err(rejection) => return Ok(Rejected(rejection)),
        };
        if !retention_change_allowed(lock.retention, retention, now, bypass_governance) {
            return Ok(Rejected(Rejection::ObjectLocked));
        }
        lock.retention = retention;
        self.store_version_lock(bucket, key, version_id, &lock)?;
        Ok(Done)
    }

    /// [`Command::PutObjectLegalHold`].
    pub(super) fn put_object_legal_hold(
        &mut self,
        bucket: &str,
        key: &str,
        version_id: &str,
        on: bool,
    ) -> Result<CommandOutcome, StoreError> {
        let mut lock = match self.lockable_version(bucket, key, version_id)? {
            Ok(lock) => lock,
            Err(rejection) => return Ok(Rejected(rejection)),
        };
        lock.legal_hold = on;
        self.store_version_lock(bucket, key, version_id, &lock)?;
        Ok(Done)
    }

    /// [`Command::DeleteVersionAt`] and [`Command::DeleteVersion`]: the version goes (with its
    /// lock record) unless its lock protects it at `now`.
    pub(super) fn delete_version_at(
        &mut self,
        bucket: &str,
        key: &str,
        version_id: &str,
        now: UnixMillis,
        bypass_governance: bool,
    ) -> Result<CommandOutcome, StoreError> {
        if let Some(lock) = self.tables.version_lock(bucket, key, version_id)?
            && lock.protects(now, bypass_governance)
        {
            return Ok(Rejected(Rejection::ObjectLocked));
        }
        let outcome = self.delete_version(bucket, key, version_id)?;
        if matches!(&outcome, CommandOutcome::Versions(v) if !v.is_empty()) {
            self.batch.remove(version_lock_key(bucket, key, version_id));
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use crate::command::{Command, CommandOutcome, Rejection};
    use crate::model::{Bucket, MultipartUpload, VersioningState};
    use crate::object_lock::{
        BucketObjectLock, DefaultRetention, Retention, RetentionMode, RetentionPeriod, VersionLock,
    };
    use crate::state_machine::testing::{entry, put, state_machine};

    const DAY: i64 = 24 * 3600 * 1000;

    fn version_of(outcome: &CommandOutcome) -> String {
        match outcome {
            CommandOutcome::Versions(v) if v.len() == 1 => v[0].version_id.clone(),
            other => panic!("expected one version, got {other:?}"),
        }
    }

    fn bucket() -> Bucket {
        Bucket { name: "b".into(), created: 0, region: "r".into() }
    }

    fn delete_at(version_id: &str, now: i64, bypass_governance: bool) -> Command {
        Command::DeleteVersionAt {
            bucket: "b".into(),
            key: "k".into(),
            version_id: version_id.into(),
            now,
            bypass_governance,
        }
    }

    fn locked(command: Command, mode: RetentionMode, until: i64) -> Command {
        let lock = VersionLock { retention: Some(Retention { mode, until }), legal_hold: false };
        Command::WithObjectLock { lock, command: Box::new(command) }
    }

    /// A COMPLIANCE version cannot be deleted before its date, bypass or not, nor by the
    /// untimed DeleteVersion (judged at the envelope's time); after the date it goes, with its
    /// lock. A delete without a version id still leaves a marker.
    #[test]
    fn compliance_versions_outlive_every_delete_until_their_date() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sm = state_machine(dir.path());
        sm.apply_entry(&entry(1, Command::CreateBucketWithObjectLock(bucket()))).expect("apply");
        assert_eq!(sm.tables.versioning("b").expect("read"), Some(VersioningState::Enabled));
        let put = locked(put("k", "aa01", 1), RetentionMode::Compliance, 1000);
        let v1 = version_of(&sm.apply_entry(&entry(2, put)).expect("apply").0);
        for (index, command) in [
            (3, delete_at(&v1, 999, true)),
            (
                4,
                Command::DeleteVersion { bucket: "b".into(), key: "k".into(), version_id: v1.clone() }
                    .attributed(None, 10),
            ),
        ] {
            let (outcome, _) = sm.apply_entry(&entry(index, command)).expect("apply");
            assert_eq!(outcome, CommandOutcome::Rejected(Rejection::ObjectLocked));
        }
        let marker = Command::DeleteObjects { bucket: "b".into(), keys: vec!["k".into()] };
        assert!(
            matches!(sm.apply_entry(&entry(5, marker)).expect("apply").0, CommandOutcome::Versions(ref v) if v[0].delete_marker)
        );
        let shorten = Command::PutObjectRetention {
            bucket: "b".into(),
            key: "k".into(),
            version_id: v1.clone(),
            retention: None,
            now: 10,
            bypass_governance: true,
        };
        assert_eq!(
            sm.apply_entry(&entry(6, shorten)).expect("apply").0,
            CommandOutcome::Rejected(Rejection::ObjectLocked)
        );
        let (outcome, _) = sm.apply_entry(&entry(7, delete_at(&v1, 1000, false))).expect("apply");
        assert!(matches!(outcome, CommandOutcome::Versions(ref v) if v.len() == 1), "{outcome:?}");
        assert_eq!(sm.tables.version_lock("b", "k", &v1).expect("read"), None, "the lock went with its version");
    }

    /// A write asking for both an ACL and a lock (the gateway wraps the lock inside the ACL)
    /// gets both, and so does a lock bucket created with an ACL.
    #[test]
    fn an_acl_and_a_lock_asked_together_are_both_kept() {
        use crate::acl::{Acl, AclGrant, AclGrantee, AclPermission};
        let public = Acl { grants: vec![AclGrant { grantee: AclGrantee::AllUsers, permission: AclPermission::Read }] };
        let dir = tempfile::tempdir().expect("tempdir");
        let sm = state_machine(dir.path());
        let create =
            Command::WithAcl { acl: public.clone(), command: Box::new(Command::CreateBucketWithObjectLock(bucket())) };
        assert_eq!(sm.apply_entry(&entry(1, create)).expect("apply").0, CommandOutcome::Done);
        assert!(sm.tables.object_lock("b").expect("read").is_some(), "lock on");
        assert_eq!(sm.tables.bucket_access("b").expect("read").and_then(|a| a.acl), Some(public.clone()));
        let write = Command::WithAcl {
            acl: public.clone(),
            command: Box::new(locked(put("k", "aa01", 1), RetentionMode::Compliance, 1000)),
        };
        let v1 = version_of(&sm.apply_entry(&entry(2, write)).expect("apply").0);
        assert_eq!(sm.tables.object_acl("b", "k").expect("read"), Some(public), "the ACL was set");
        assert!(sm.tables.version_lock("b", "k", &v1).expect("read").is_some(), "the lock was set");
    }

    /// GOVERNANCE yields to the bypass only; a legal hold to nothing until lifted.
    #[test]
    fn governance_yields_to_the_bypass_and_legal_holds_to_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sm = state_machine(dir.path());
        sm.apply_entry(&entry(1, Command::CreateBucketWithObjectLock(bucket()))).expect("apply");
        let v1 = version_of(
            &sm.apply_entry(&entry(2, locked(put("k", "aa01", 1), RetentionMode::Governance, 1000))).expect("apply").0,
        );
        let held = Command::WithObjectLock {
            lock: VersionLock { retention: None, legal_hold: true },
            command: Box::new(put("k", "aa02", 1)),
        };
        let v2 = version_of(&sm.apply_entry(&entry(3, held)).expect("apply").0);
        assert_eq!(
            sm.apply_entry(&entry(4, delete_at(&v1, 10, false))).expect("apply").0,
            CommandOutcome::Rejected(Rejection::ObjectLocked)
        );
        assert_eq!(
            sm.apply_entry(&entry(5, delete_at(&v2, 10, true))).expect("apply").0,
            CommandOutcome::Rejected(Rejection::ObjectLocked)
        );
        assert!(
            matches!(sm.apply_entry(&entry(6, delete_at(&v1, 10, true))).expect("apply").0, CommandOutcome::Versions(ref v) if v.len() == 1)
        );
        let lift =
            Command::PutObjectLegalHold { bucket: "b".into(), key: "k".into(), version_id: v2.clone(), on: false };
        assert_eq!(sm.apply_entry(&entry(7, lift)).expect("apply").0, CommandOutcome::Done);
        assert_eq!(sm.tables.version_lock("b", "k", &v2).expect("read"), None, "an empty lock is not kept");
        assert!(
            matches!(sm.apply_entry(&entry(8, delete_at(&v2, 10, false))).expect("apply").0, CommandOutcome::Versions(ref v) if v.len() == 1)
        );
    }

    /// Lock goes on only over enabled versioning and then keeps it enabled; lock requests in a
    /// bucket without lock are refused; the default retention counts from the write; an
    /// upload's lock reaches the version its completion makes.
    #[test]
    fn configuration_defaults_and_uploads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sm = state_machine(dir.path());
        sm.apply_entry(&entry(1, Command::CreateBucket(bucket()))).expect("apply");
        let config = BucketObjectLock {
            default_retention: Some(DefaultRetention {
                mode: RetentionMode::Governance,
                period: RetentionPeriod::Days(2),
            }),
        };
        let enable = Command::PutObjectLockConfiguration { bucket: "b".into(), config };
        assert_eq!(
            sm.apply_entry(&entry(2, enable.clone())).expect("apply").0,
            CommandOutcome::Rejected(Rejection::InvalidBucketState)
        );
        let lock_put = locked(put("k", "aa01", 1), RetentionMode::Governance, 5);
        assert_eq!(
            sm.apply_entry(&entry(3, lock_put)).expect("apply").0,
            CommandOutcome::Rejected(Rejection::ObjectLockNotEnabled)
        );
        let versioning = Command::PutBucketVersioning { bucket: "b".into(), state: VersioningState::Enabled };
        sm.apply_entry(&entry(4, versioning)).expect("apply");
        assert_eq!(sm.apply_entry(&entry(5, enable)).expect("apply").0, CommandOutcome::Done);
        let suspend = Command::PutBucketVersioning { bucket: "b".into(), state: VersioningState::Suspended };
        assert_eq!(
            sm.apply_entry(&entry(6, suspend)).expect("apply").0,
            CommandOutcome::Rejected(Rejection::InvalidBucketState)
        );

        let mut plain = put("k", "aa02", 1);
        if let Command::PutObject { meta, .. } = &mut plain {
            meta.last_modified = 7;
        }
        let v = version_of(&sm.apply_entry(&entry(7, plain)).expect("apply").0);
        let lock = sm.tables.version_lock("b", "k", &v).expect("read").expect("the default retention");
        assert_eq!(lock.retention, Some(Retention { mode: RetentionMode::Governance, until: 7 + 2 * DAY }));

        let upload = MultipartUpload {
            id: "up1".into(),
            bucket: "b".into(),
            key: "m".into(),
            initiated: 0,
            node: 1,
            headers: Default::default(),
            tags: Vec::new(),
            checksum_algorithm: None,
        };
        let start = locked(Command::CreateUpload(upload), RetentionMode::Compliance, 99);
        assert_eq!(sm.apply_entry(&entry(8, start)).expect("apply").0, CommandOutcome::Done);
        let mut complete = put("m", "aa03", 1);
        if let Command::PutObject { completes_upload, .. } = &mut complete {
            *completes_upload = Some("up1".into());
        }
        let v = version_of(&sm.apply_entry(&entry(9, complete)).expect("apply").0);
        let lock = sm.tables.version_lock("b", "m", &v).expect("read").expect("the upload's lock");
        assert_eq!(lock.retention, Some(Retention { mode: RetentionMode::Compliance, until: 99 }));
    }
}
