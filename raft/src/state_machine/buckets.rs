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
        self.batch.remove(record_key(tables::BUCKET, &[name]));
        self.batch.remove(record_key(tables::OWNER, &[name]));
        self.batch.remove(record_key(tables::OWNED_SINCE, &[name]));
        self.batch.remove(record_key(tables::VERSIONING, &[name]));
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
