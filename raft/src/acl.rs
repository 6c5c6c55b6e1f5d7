//! Who besides its owner may reach a bucket or an object, as the state machine stores it: S3
//! access control lists (bucket and object ACLs), a bucket's object ownership setting, its
//! public access block and its bucket policy. All new in format 2, in tables of their own
//! (`acl/` per bucket, `oacl/` per current object, `vacl/` per version that is not current,
//! `uacl/` per unfinished multipart upload), so no record of the previous release changes
//! shape. The gateway validates and evaluates them; the state machine only keeps them (and
//! forgets an object's ACL when the object is replaced or deleted, as S3 does: a new object
//! starts `private` unless its write says otherwise; in a versioned bucket the replaced
//! version keeps its ACL in `vacl/`, and gets it back if it becomes current again).

use serde::{Deserialize, Serialize};

use crate::codec::Record;

/// The canonical id of the operator's account: the owner of buckets and objects no user owns
/// (the gateway names it so in ACLs and listings).
pub const OPERATOR_ID: &str = "meridian";

/// What an ACL grant allows, as S3 names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AclPermission {
    /// Everything below.
    FullControl,
    /// A bucket: list its objects. An object: read it.
    Read,
    /// A bucket: write and delete its objects. (Not valid on objects.)
    Write,
    /// Read the ACL itself.
    ReadAcp,
    /// Change the ACL.
    WriteAcp,
}

/// Who an ACL grant is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AclGrantee {
    /// One account, by canonical id (a user id, or the operator's id `meridian`).
    CanonicalUser(String),
    /// Everyone, signed or not (`http://acs.amazonaws.com/groups/global/AllUsers`).
    AllUsers,
    /// Every request signed with a valid key of this cluster
    /// (`http://acs.amazonaws.com/groups/global/AuthenticatedUsers`).
    AuthenticatedUsers,
}

/// One grant of an ACL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclGrant {
    /// Who it is for.
    pub grantee: AclGrantee,
    /// What it allows.
    pub permission: AclPermission,
}

/// An access control list: its grants, in the order given (GetBucketAcl returns them so). The
/// owner is not stored: it is the bucket's or object's owner at the time it is read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acl {
    /// The grants.
    pub grants: Vec<AclGrant>,
}

/// A bucket's object ownership setting (PutBucketOwnershipControls).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObjectOwnership {
    /// ACLs are disabled: only the bucket owner's rights and the policy count.
    BucketOwnerEnforced,
    /// ACLs apply; objects written with `bucket-owner-full-control` belong to the bucket owner.
    BucketOwnerPreferred,
    /// ACLs apply; the writer owns what it writes.
    ObjectWriter,
}

/// A bucket's public access block (PutPublicAccessBlock): the four flags, as S3 names them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicAccessBlock {
    /// Refuse a write of a public ACL (bucket or object).
    pub block_public_acls: bool,
    /// Public grants of ACLs count for nothing.
    pub ignore_public_acls: bool,
    /// Refuse a public bucket policy.
    pub block_public_policy: bool,
    /// A public policy grants nothing to anonymous callers or keys it does not name.
    pub restrict_public_buckets: bool,
}

/// Everything about a bucket's access besides its owner, stored under `acl/`. A bucket without
/// this record has the settings of a bucket S3 created before 2023: ACL `private`, ACLs
/// enabled, no public access block, no policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketAccess {
    /// The bucket's ACL; `None`: `private`.
    pub acl: Option<Acl>,
    /// Its object ownership setting; `None`: none set (ACLs enabled, writer owns).
    pub ownership: Option<ObjectOwnership>,
    /// Its public access block; `None`: none set.
    pub public_access_block: Option<PublicAccessBlock>,
    /// Its bucket policy, the JSON text as the owner sent it (validated by the gateway).
    pub policy: Option<String>,
}

/// One change to a bucket's [`BucketAccess`] (the payload of
/// [`crate::Command::SetBucketAccess`]). Each replaces one part, so concurrent changes to
/// different parts (a policy and an ACL) never undo each other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BucketAccessChange {
    /// PutBucketAcl (or CreateBucket with an ACL).
    Acl(Acl),
    /// Put/DeleteBucketOwnershipControls.
    Ownership(Option<ObjectOwnership>),
    /// Put/DeletePublicAccessBlock.
    PublicAccessBlock(Option<PublicAccessBlock>),
    /// Put/DeleteBucketPolicy.
    Policy(Option<String>),
}

impl BucketAccess {
    /// This access with `change` applied.
    #[must_use]
    pub fn with(mut self, change: &BucketAccessChange) -> Self {
        match change {
            BucketAccessChange::Acl(acl) => self.acl = Some(acl.clone()),
            BucketAccessChange::Ownership(ownership) => self.ownership = *ownership,
            BucketAccessChange::PublicAccessBlock(block) => self.public_access_block = *block,
            BucketAccessChange::Policy(policy) => self.policy.clone_from(policy),
        }
        self
    }
}

impl Record for BucketAccess {
    const NAME: &'static str = "bucket access settings";
    /// New in format 2, one shape so far: gateways propose it only once the cluster writes 2.
    const FORMAT: u16 = 2;
}

impl Record for Acl {
    const NAME: &'static str = "access control list";
    /// New in format 2 (object, version and upload ACLs, `oacl/`, `vacl/` and `uacl/`), gated like
    /// [`BucketAccess`].
    const FORMAT: u16 = 2;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::encode_body;

    /// The parts of [`BucketAccessChange`], [`AclGrantee`] and [`AclPermission`] are numbered by
    /// position in the log: pinned here, new ones go last.
    #[test]
    fn variant_numbers_are_pinned() {
        let first = |bytes: Result<Vec<u8>, crate::StoreError>| bytes.expect("encodes")[0];
        assert_eq!(first(encode_body(&BucketAccessChange::Acl(Acl::default()))), 0);
        assert_eq!(first(encode_body(&BucketAccessChange::Ownership(None))), 1);
        assert_eq!(first(encode_body(&BucketAccessChange::PublicAccessBlock(None))), 2);
        assert_eq!(first(encode_body(&BucketAccessChange::Policy(None))), 3);
        assert_eq!(first(encode_body(&AclGrantee::AuthenticatedUsers)), 2);
        assert_eq!(first(encode_body(&AclPermission::WriteAcp)), 4);
        assert_eq!(first(encode_body(&ObjectOwnership::ObjectWriter)), 2);
    }
}
