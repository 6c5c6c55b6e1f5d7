//! Who may do what with a bucket or a file, decided from the store's records alone.
//!
//! One rule for a *person* (a user of the cinema's Auth service), applied by the web API to a
//! signed-in user and by the S3 gateway to an access key that belongs to a user, so the panel
//! and S3 can never disagree about who reaches a file:
//!
//! - an admin reaches everything;
//! - the owner of a bucket reaches the bucket and every file in it;
//! - the owner of a file reaches the file;
//! - anyone else reaches a file only through an active share naming them (`read` to see it,
//!   `write` to also upload a new version of it), and a bucket not at all.

use crate::MetaStore;
use crate::error::StoreError;
use crate::model::{ShareAudience, SharePermission, ShareState, UnixMillis};

/// How a person reaches a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PersonAccess {
    /// Owns the file or its bucket, or is an admin: may also delete and share it.
    Owner,
    /// Through a share naming them.
    Shared {
        /// The share that grants it (downloads through it are recorded as uses of it).
        share: String,
    },
}

/// The person a check is made for.
#[derive(Debug, Clone, Copy)]
pub struct Person<'a> {
    /// Their user id (the `sub` of their tokens).
    pub id: &'a str,
    /// Whether they hold the admin role.
    pub admin: bool,
}

impl MetaStore {
    /// Whether `person` owns `bucket` (`key` `None`) or the file `bucket/key`, counting
    /// ownership of its bucket, or is an admin.
    pub fn person_owns(&self, person: Person<'_>, bucket: &str, key: Option<&str>) -> Result<bool, StoreError> {
        if person.admin || self.bucket_owner(bucket)?.as_deref() == Some(person.id) {
            return Ok(true);
        }
        match key {
            Some(key) => Ok(self.object_owner(bucket, key)?.as_deref() == Some(person.id)),
            None => Ok(false),
        }
    }

    /// How `person` reaches the file `bucket/key` at `now`, for reading (`write` false) or for
    /// writing a new version; `None`: not at all.
    pub fn person_access(
        &self,
        person: Person<'_>,
        bucket: &str,
        key: &str,
        write: bool,
        now: UnixMillis,
    ) -> Result<Option<PersonAccess>, StoreError> {
        if self.person_owns(person, bucket, Some(key))? {
            return Ok(Some(PersonAccess::Owner));
        }
        let shares = self.user_shares_of(person.id, bucket, key)?;
        let granted = shares.into_iter().find(|s| {
            s.state(now) == ShareState::Active
                && matches!(&s.audience, ShareAudience::User { permission, .. }
                    if !write || *permission == SharePermission::Write)
        });
        Ok(granted.map(|share| PersonAccess::Shared { share: share.id }))
    }
}
