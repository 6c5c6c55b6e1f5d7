//! Applying the access control commands: a bucket's access settings changed, an object's ACL
//! set, and an ACL set with the bucket, object or upload its request creates.

use super::Changes;
use crate::acl::{Acl, BucketAccessChange};
use crate::command::CommandOutcome::{Done, Rejected};
use crate::command::{Command, CommandOutcome, Rejection};
use crate::error::StoreError;
use crate::tables::{self, record_key, version_acl_key};

impl Changes<'_> {
    /// [`crate::Command::SetBucketAccess`]: one part of the bucket's settings replaced, the
    /// others kept.
    pub(super) fn set_bucket_access(
        &mut self,
        bucket: &str,
        change: &BucketAccessChange,
    ) -> Result<CommandOutcome, StoreError> {
        if self.tables.bucket(bucket)?.is_none() {
            return Ok(Rejected(Rejection::NoSuchBucket));
        }
        let access = self.tables.bucket_access(bucket)?.unwrap_or_default().with(change);
        self.put(record_key(tables::BUCKET_ACCESS, &[bucket]), &access)?;
        Ok(Done)
    }

    /// [`crate::Command::PutObjectAcl`]: the current object's ACL, replacing any before it.
    pub(super) fn put_object_acl(&mut self, bucket: &str, key: &str, acl: &Acl) -> Result<CommandOutcome, StoreError> {
        if self.tables.bucket(bucket)?.is_none() {
            return Ok(Rejected(Rejection::NoSuchBucket));
        }
        if self.tables.object(bucket, key)?.is_none() {
            return Ok(Rejected(Rejection::NoSuchKey));
        }
        self.put(record_key(tables::OBJECT_ACL, &[bucket, key]), acl)?;
        Ok(Done)
    }

    /// [`crate::Command::PutVersionAcl`]: the ACL of one version, in `oacl/` when it is the
    /// current object, else in `vacl/`.
    pub(super) fn put_version_acl(
        &mut self,
        bucket: &str,
        key: &str,
        version_id: &str,
        acl: &Acl,
    ) -> Result<CommandOutcome, StoreError> {
        if self.tables.bucket(bucket)?.is_none() {
            return Ok(Rejected(Rejection::NoSuchBucket));
        }
        match self.tables.version(bucket, key, version_id)? {
            Some((None, version)) if version.meta.is_some() => {
                self.put(record_key(tables::OBJECT_ACL, &[bucket, key]), acl)?;
            }
            Some((Some(_), version)) if version.meta.is_some() => {
                self.put(version_acl_key(bucket, key, version_id), acl)?;
            }
            // Unknown, or a delete marker (which has no ACL).
            _ => return Ok(Rejected(Rejection::NoSuchKey)),
        }
        Ok(Done)
    }

    /// The current object of `bucket/key` (version `version_id`) stops being current but is
    /// kept: its ACL goes with it from `oacl/` to `vacl/` (the caller replaces or forgets the
    /// `oacl/` entry).
    pub(super) fn keep_acl_of_retired(&mut self, bucket: &str, key: &str, version_id: &str) -> Result<(), StoreError> {
        if let Some(acl) = self.tables.object_acl(bucket, key)? {
            self.put(version_acl_key(bucket, key, version_id), &acl)?;
        }
        Ok(())
    }

    /// A stored version becomes the current object again: its ACL moves back to `oacl/`
    /// (replacing whatever the batch left there; none: `private`).
    pub(super) fn restore_acl_of_promoted(
        &mut self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<(), StoreError> {
        match self.tables.version_acl(bucket, key, version_id)? {
            Some(acl) => {
                self.batch.remove(version_acl_key(bucket, key, version_id));
                self.put(record_key(tables::OBJECT_ACL, &[bucket, key]), &acl)
            }
            None => {
                self.forget_object_acl(bucket, key);
                Ok(())
            }
        }
    }

    /// Forgets the ACL of a stored version that goes for good.
    pub(super) fn forget_version_acl(&mut self, bucket: &str, key: &str, version_id: &str) {
        self.batch.remove(version_acl_key(bucket, key, version_id));
    }

    /// [`crate::Command::WithAcl`]: the inner command, then (if it applied) the ACL of what it
    /// created. The inner command's own writes are in the same batch: this writes after them,
    /// so an overwrite's reset of the old ACL (see `put_object`) is replaced by this one.
    pub(super) fn with_acl(&mut self, acl: &Acl, command: &Command) -> Result<CommandOutcome, StoreError> {
        let outcome = self.apply(command)?;
        if matches!(outcome, Rejected(_)) {
            return Ok(outcome);
        }
        // The write may carry an Object Lock inside the ACL (the gateway wraps in that order).
        let created = match command {
            Command::WithObjectLock { command, .. } => command.as_ref(),
            other => other,
        };
        let key = match created {
            Command::CreateBucket(bucket) | Command::CreateBucketWithObjectLock(bucket) => {
                let access = crate::acl::BucketAccess::default().with(&BucketAccessChange::Acl(acl.clone()));
                self.put(record_key(tables::BUCKET_ACCESS, &[&bucket.name]), &access)?;
                return Ok(outcome);
            }
            Command::PutObject { bucket, key, .. } => {
                self.bucket_owner_preferred(bucket, key, acl)?;
                record_key(tables::OBJECT_ACL, &[bucket, key])
            }
            Command::CreateUpload(upload) => record_key(tables::UPLOAD_ACL, &[&upload.id]),
            other => {
                // A proposer bug; the command itself applied as it would alone.
                tracing::error!(command = ?other, "an ACL came with a command that creates nothing it applies to");
                return Ok(outcome);
            }
        };
        self.put(key, acl)?;
        Ok(outcome)
    }

    /// BucketOwnerPreferred: an object written with `bucket-owner-full-control` (its ACL grants
    /// the bucket's owner FULL_CONTROL) belongs to the bucket's owner, not its writer, as S3
    /// documents. The owner record is the one the panel's rights follow too: the writer keeps
    /// only what the ACL or a share grants. (ObjectWriter and no setting: the writer owns it, as
    /// `put_object` records; BucketOwnerEnforced is decided when read.)
    fn bucket_owner_preferred(&mut self, bucket: &str, key: &str, acl: &Acl) -> Result<(), StoreError> {
        let preferred = self.tables.bucket_access(bucket)?.and_then(|a| a.ownership)
            == Some(crate::acl::ObjectOwnership::BucketOwnerPreferred);
        if !preferred {
            return Ok(());
        }
        let bucket_owner = self.tables.bucket_owner(bucket)?;
        let canonical = bucket_owner.as_deref().unwrap_or(crate::acl::OPERATOR_ID);
        let full_control = acl.grants.iter().any(|g| {
            g.permission == crate::acl::AclPermission::FullControl
                && g.grantee == crate::acl::AclGrantee::CanonicalUser(canonical.to_owned())
        });
        if !full_control {
            return Ok(());
        }
        match bucket_owner {
            Some(user) => {
                self.put(record_key(tables::OWNER, &[bucket, key]), &user)?;
                let since = self.index;
                self.put(record_key(tables::OWNED_SINCE, &[bucket, key]), &since)?;
            }
            // The operator's bucket: an object without an owner record is the bucket owner's.
            None => {
                self.batch.remove(record_key(tables::OWNER, &[bucket, key]));
                self.batch.remove(record_key(tables::OWNED_SINCE, &[bucket, key]));
            }
        }
        Ok(())
    }

    /// Forgets the ACL of a key's object (it is being replaced or deleted: S3 gives a new
    /// object `private` unless its write says otherwise). Nothing to remove on nodes of the
    /// previous release: they never stored any.
    pub(super) fn forget_object_acl(&mut self, bucket: &str, key: &str) {
        self.batch.remove(record_key(tables::OBJECT_ACL, &[bucket, key]));
    }

    /// Moves the ACL an upload asked for to the object its completion writes (or forgets it,
    /// when the upload is aborted: `to` `None`).
    pub(super) fn settle_upload_acl(&mut self, upload: &str, to: Option<(&str, &str)>) -> Result<(), StoreError> {
        let Some(acl) = self.tables.upload_acl(upload)? else { return Ok(()) };
        self.batch.remove(record_key(tables::UPLOAD_ACL, &[upload]));
        if let Some((bucket, key)) = to {
            self.put(record_key(tables::OBJECT_ACL, &[bucket, key]), &acl)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::acl::{Acl, AclGrant, AclGrantee, AclPermission, BucketAccessChange, PublicAccessBlock};
    use crate::command::{Command, CommandOutcome, Rejection};
    use crate::model::Bucket;
    use crate::state_machine::testing::{entry, put, state_machine};

    fn public_read() -> Acl {
        Acl { grants: vec![AclGrant { grantee: AclGrantee::AllUsers, permission: AclPermission::Read }] }
    }

    #[test]
    fn bucket_settings_change_one_part_at_a_time_and_go_with_the_bucket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sm = state_machine(dir.path());
        let bucket = Bucket { name: "b".into(), created: 1, region: "r".into() };
        let create = Command::WithAcl { acl: public_read(), command: Box::new(Command::CreateBucket(bucket.clone())) };
        assert_eq!(sm.apply_entry(&entry(1, create)).expect("apply").0, CommandOutcome::Done);
        assert_eq!(sm.tables.bucket_access("b").expect("read").and_then(|a| a.acl), Some(public_read()));
        let policy =
            Command::SetBucketAccess { bucket: "b".into(), change: BucketAccessChange::Policy(Some("{}".into())) };
        sm.apply_entry(&entry(2, policy)).expect("apply");
        let block = PublicAccessBlock { block_public_acls: true, ..Default::default() };
        let pab =
            Command::SetBucketAccess { bucket: "b".into(), change: BucketAccessChange::PublicAccessBlock(Some(block)) };
        sm.apply_entry(&entry(3, pab)).expect("apply");
        let access = sm.tables.bucket_access("b").expect("read").expect("set");
        assert_eq!(access.acl, Some(public_read()), "the ACL stays");
        assert_eq!(access.policy.as_deref(), Some("{}"), "the policy stays");
        assert_eq!(access.public_access_block, Some(block));

        sm.apply_entry(&entry(4, Command::DeleteBucket { name: "b".into() })).expect("apply");
        sm.apply_entry(&entry(5, Command::CreateBucket(bucket))).expect("apply");
        assert_eq!(sm.tables.bucket_access("b").expect("read"), None, "a re-created bucket starts private");
        let missing = Command::SetBucketAccess { bucket: "nope".into(), change: BucketAccessChange::Policy(None) };
        assert_eq!(
            sm.apply_entry(&entry(6, missing)).expect("apply").0,
            CommandOutcome::Rejected(Rejection::NoSuchBucket)
        );
    }

    #[test]
    fn an_object_acl_lives_as_long_as_its_object() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sm = state_machine(dir.path());
        let bucket = Bucket { name: "b".into(), created: 1, region: "r".into() };
        sm.apply_entry(&entry(1, Command::CreateBucket(bucket))).expect("apply");
        let with = Command::WithAcl { acl: public_read(), command: Box::new(put("k", "blob-1", 1)) };
        sm.apply_entry(&entry(2, with)).expect("apply");
        assert_eq!(sm.tables.object_acl("b", "k").expect("read"), Some(public_read()));
        sm.apply_entry(&entry(3, put("k", "blob-2", 1))).expect("apply");
        assert_eq!(sm.tables.object_acl("b", "k").expect("read"), None, "an overwrite starts private");
        let set = Command::PutObjectAcl { bucket: "b".into(), key: "k".into(), acl: public_read() };
        sm.apply_entry(&entry(4, set)).expect("apply");
        assert_eq!(sm.tables.object_acl("b", "k").expect("read"), Some(public_read()));
        let delete = Command::DeleteObjects { bucket: "b".into(), keys: vec!["k".into()] };
        sm.apply_entry(&entry(5, delete)).expect("apply");
        assert_eq!(sm.tables.object_acl("b", "k").expect("read"), None, "a delete forgets it");
        let missing = Command::PutObjectAcl { bucket: "b".into(), key: "gone".into(), acl: public_read() };
        assert_eq!(
            sm.apply_entry(&entry(6, missing)).expect("apply").0,
            CommandOutcome::Rejected(Rejection::NoSuchKey)
        );
    }
}
