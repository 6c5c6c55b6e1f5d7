//! Access control lists, object ownership and the public access block: the S3 operations that
//! set and read them (Get/PutBucketAcl, Get/PutObjectAcl, the ownership controls, the public
//! access block), and the ACL a write asks for (`x-amz-acl`, `x-amz-grant-*` on CreateBucket,
//! PutObject, CopyObject and CreateMultipartUpload).
//!
//! Canonical ids: a bucket or object owned by a user has the user's id as its owner's canonical
//! id (display name: the user's name); one owned by nobody (written by an operator's or
//! service's key) is the operator's, `meridian`. Grants name such ids or the AllUsers and
//! AuthenticatedUsers groups; email grantees cannot be resolved here
//! (UnresolvableGrantByEmailAddress) and unknown ids are InvalidArgument, as S3 answers.
//! How the stored lists decide who may do what is in `access`.

use meridian_raft::{
    Acl, AclGrant, AclGrantee, AclPermission, BucketAccess, BucketAccessChange, Command, ObjectOwnership,
    PublicAccessBlock,
};
use s3s::dto::{
    AccessControlPolicy, DeleteBucketOwnershipControlsInput, DeleteBucketOwnershipControlsOutput,
    DeletePublicAccessBlockInput, DeletePublicAccessBlockOutput, GetBucketAclInput, GetBucketAclOutput,
    GetBucketOwnershipControlsInput, GetBucketOwnershipControlsOutput, GetObjectAclInput, GetObjectAclOutput,
    GetPublicAccessBlockInput, GetPublicAccessBlockOutput, Grant, Grantee, Owner, OwnershipControls,
    OwnershipControlsRule, Permission, PublicAccessBlockConfiguration, PutBucketAclInput, PutBucketAclOutput,
    PutBucketOwnershipControlsInput, PutBucketOwnershipControlsOutput, PutObjectAclInput, PutObjectAclOutput,
    PutPublicAccessBlockInput, PutPublicAccessBlockOutput, Type,
};
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use crate::error;
use crate::gateway::Gateway;

/// The operator's canonical id and display name: the owner of what no user owns.
pub(crate) const OPERATOR_ID: &str = meridian_raft::OPERATOR_ID;

/// The AllUsers group's URI.
const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";

/// The AuthenticatedUsers group's URI.
const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";

/// Most grants one ACL may hold, as S3 allows.
const MAX_GRANTS: usize = 100;

/// The ACL a request states, in whichever of S3's three ways it used.
#[derive(Debug, Default)]
pub(crate) struct AclRequest {
    /// `x-amz-acl`.
    pub(crate) canned: Option<String>,
    /// The `x-amz-grant-*` headers, with the permission each grants.
    pub(crate) grant_headers: Vec<(AclPermission, String)>,
    /// An `AccessControlPolicy` body (PutBucketAcl / PutObjectAcl).
    pub(crate) body: Option<AccessControlPolicy>,
}

/// Collects `x-amz-grant-*` header values into [`AclRequest::grant_headers`].
macro_rules! grant_headers {
    ($input:expr, $($field:ident => $perm:expr),+ $(,)?) => {{
        let mut headers = Vec::new();
        $(if let Some(value) = $input.$field.take() { headers.push(($perm, value)); })+
        headers
    }};
}
pub(crate) use grant_headers;

/// The [`AclRequest`] of a write of a new object (PutObject, CopyObject,
/// CreateMultipartUpload: `x-amz-acl` and the `x-amz-grant-*` headers objects take), taken out
/// of its input.
macro_rules! object_acl_request {
    ($input:expr) => {
        $crate::acl::AclRequest {
            canned: $input.acl.take().map(|a| a.as_str().to_owned()),
            grant_headers: $crate::acl::grant_headers!($input,
                grant_full_control => meridian_raft::AclPermission::FullControl,
                grant_read => meridian_raft::AclPermission::Read,
                grant_read_acp => meridian_raft::AclPermission::ReadAcp,
                grant_write_acp => meridian_raft::AclPermission::WriteAcp,
            ),
            body: None,
        }
    };
}
pub(crate) use object_acl_request;

/// The [`AclRequest`] of a bucket's creation or of an ACL operation (`x-amz-acl` and the five
/// `x-amz-grant-*` headers buckets and ACL calls take, and `body`), taken out of its input.
macro_rules! acl_request {
    ($input:expr, body: $body:expr) => {
        AclRequest {
            canned: $input.acl.take().map(|a| a.as_str().to_owned()),
            grant_headers: grant_headers!($input,
                grant_full_control => AclPermission::FullControl,
                grant_read => AclPermission::Read,
                grant_read_acp => AclPermission::ReadAcp,
                grant_write => AclPermission::Write,
                grant_write_acp => AclPermission::WriteAcp,
            ),
            body: $body,
        }
    };
}

impl AclRequest {
    /// Whether the request states any ACL.
    pub(crate) fn is_empty(&self) -> bool {
        self.canned.is_none() && self.grant_headers.is_empty() && self.body.is_none()
    }
}

/// Whether an ACL grants anything to everyone or every signed caller (what S3 calls public).
pub(crate) fn is_public(acl: &Acl) -> bool {
    acl.grants.iter().any(|g| matches!(g.grantee, AclGrantee::AllUsers | AclGrantee::AuthenticatedUsers))
}

/// Whether an ACL grants only the owners named (what BucketOwnerEnforced still accepts, and
/// what a thing without an ACL has anyway).
fn owner_only(acl: &Acl, owners: &[&str]) -> bool {
    acl.grants.iter().all(|g| matches!(&g.grantee, AclGrantee::CanonicalUser(id) if owners.contains(&id.as_str())))
}

fn grant(grantee: AclGrantee, permission: AclPermission) -> AclGrant {
    AclGrant { grantee, permission }
}

/// The grants of a canned ACL, for an owner and (objects) the bucket's owner.
fn canned(name: &str, owner: &str, bucket_owner: Option<&str>) -> S3Result<Acl> {
    use AclGrantee::{AllUsers, AuthenticatedUsers, CanonicalUser};
    use AclPermission::{FullControl, Read, Write};
    let mut grants = vec![grant(CanonicalUser(owner.to_owned()), FullControl)];
    match (name, bucket_owner) {
        ("private", _) => {}
        ("public-read", _) => grants.push(grant(AllUsers, Read)),
        ("public-read-write", _) => grants.extend([grant(AllUsers, Read), grant(AllUsers, Write)]),
        ("authenticated-read", _) => grants.push(grant(AuthenticatedUsers, Read)),
        ("bucket-owner-read", Some(b)) if b != owner => grants.push(grant(CanonicalUser(b.to_owned()), Read)),
        ("bucket-owner-full-control", Some(b)) if b != owner => {
            grants.push(grant(CanonicalUser(b.to_owned()), FullControl));
        }
        ("bucket-owner-read" | "bucket-owner-full-control", Some(_)) => {}
        ("aws-exec-read" | "log-delivery-write", _) => {
            return Err(s3_error!(NotImplemented, "The canned ACL {name} is not supported here"));
        }
        _ => return Err(s3_error!(InvalidArgument, "Invalid canned ACL {name}")),
    }
    Ok(Acl { grants })
}

/// A permission's S3 name.
fn permission_name(p: AclPermission) -> &'static str {
    match p {
        AclPermission::FullControl => Permission::FULL_CONTROL,
        AclPermission::Read => Permission::READ,
        AclPermission::Write => Permission::WRITE,
        AclPermission::ReadAcp => Permission::READ_ACP,
        AclPermission::WriteAcp => Permission::WRITE_ACP,
    }
}

/// A permission by its S3 name.
fn permission_named(name: &str) -> S3Result<AclPermission> {
    Ok(match name {
        Permission::FULL_CONTROL => AclPermission::FullControl,
        Permission::READ => AclPermission::Read,
        Permission::WRITE => AclPermission::Write,
        Permission::READ_ACP => AclPermission::ReadAcp,
        Permission::WRITE_ACP => AclPermission::WriteAcp,
        other => return Err(s3_error!(MalformedACLError, "Unknown permission {other}")),
    })
}

/// The ACL's grants as S3 lists them, with display names from `name_of`.
fn grants_out(acl: &Acl, name_of: &dyn Fn(&str) -> String) -> Vec<Grant> {
    acl.grants
        .iter()
        .map(|g| {
            let grantee = match &g.grantee {
                AclGrantee::CanonicalUser(id) => Grantee {
                    display_name: Some(name_of(id)),
                    email_address: None,
                    id: Some(id.clone()),
                    type_: Type::from_static(Type::CANONICAL_USER),
                    uri: None,
                },
                group => Grantee {
                    display_name: None,
                    email_address: None,
                    id: None,
                    type_: Type::from_static(Type::GROUP),
                    uri: Some(if *group == AclGrantee::AllUsers { ALL_USERS } else { AUTHENTICATED_USERS }.to_owned()),
                },
            };
            Grant {
                grantee: Some(grantee),
                permission: Some(Permission::from(permission_name(g.permission).to_owned())),
            }
        })
        .collect()
}

/// The NoSuchPublicAccessBlockConfiguration error (404), which s3s has no code for.
fn no_public_access_block() -> S3Error {
    let mut e = S3Error::with_message(
        S3ErrorCode::Custom("NoSuchPublicAccessBlockConfiguration".into()),
        "The public access block configuration was not found",
    );
    e.set_status_code(http::StatusCode::NOT_FOUND);
    e
}

/// The error S3 answers an ACL on a bucket whose ACLs are disabled with.
fn acls_disabled() -> S3Error {
    s3_error!(AccessControlListNotSupported, "The bucket does not allow ACLs")
}

/// Who owns the objects of one bucket, read once for a whole answer (a listing names the owner
/// of every object it holds).
pub(crate) struct ObjectOwners {
    /// The bucket owner's canonical id.
    bucket_owner: String,
    /// Whether the bucket is BucketOwnerEnforced (its owner owns every object).
    enforced: bool,
}

impl ObjectOwners {
    /// The owners of `bucket`'s objects.
    pub(crate) fn of(gateway: &Gateway, bucket: &str) -> S3Result<Self> {
        let enforced = gateway.bucket_access(bucket)?.ownership == Some(ObjectOwnership::BucketOwnerEnforced);
        Ok(Self { bucket_owner: gateway.bucket_owner_id(bucket)?, enforced })
    }

    /// The canonical id of `bucket/key`'s owner.
    pub(crate) fn owner_of(&self, gateway: &Gateway, bucket: &str, key: &str) -> S3Result<String> {
        if self.enforced {
            return Ok(self.bucket_owner.clone());
        }
        Ok(gateway.meta.object_owner(bucket, key).map_err(error::store)?.unwrap_or_else(|| self.bucket_owner.clone()))
    }
}

impl Gateway {
    /// The canonical id of the user `owner` (or the operator's for `None`).
    pub(crate) fn canonical_id(owner: Option<String>) -> String {
        owner.unwrap_or_else(|| OPERATOR_ID.to_owned())
    }

    /// The display name of a canonical id: a user's name, the operator's `meridian`.
    fn display_name(&self, id: &str) -> String {
        if id == OPERATOR_ID {
            return OPERATOR_ID.to_owned();
        }
        match self.meta.user(id) {
            Ok(Some(user)) if !user.profile.name.is_empty() => user.profile.name,
            Ok(Some(user)) => user.profile.login,
            _ => id.to_owned(),
        }
    }

    /// Whether `id` names an account here: the operator, or a user the panel knows.
    pub(crate) fn known_canonical_id(&self, id: &str) -> bool {
        id == OPERATOR_ID || self.meta.user(id).is_ok_and(|u| u.is_some_and(|u| u.deleted.is_none()))
    }

    /// A bucket's access settings (none set: the defaults).
    pub(crate) fn bucket_access(&self, bucket: &str) -> S3Result<BucketAccess> {
        Ok(self.meta.bucket_access(bucket).map_err(error::store)?.unwrap_or_default())
    }

    /// The canonical id of a bucket's owner.
    pub(crate) fn bucket_owner_id(&self, bucket: &str) -> S3Result<String> {
        Ok(Self::canonical_id(self.meta.bucket_owner(bucket).map_err(error::store)?))
    }

    /// The canonical id of an object's owner: its writer if a user (or the bucket's owner when
    /// BucketOwnerPreferred gave it to them), else the bucket's owner; under BucketOwnerEnforced
    /// always the bucket's owner, as S3 documents (every object, whoever wrote it).
    pub(crate) fn object_owner_id(&self, bucket: &str, key: &str) -> S3Result<String> {
        ObjectOwners::of(self, bucket)?.owner_of(self, bucket, key)
    }

    /// The owner element of an answer (an id and its display name).
    pub(crate) fn owner_out(&self, id: &str) -> Owner {
        Owner { display_name: Some(self.display_name(id)), id: Some(id.to_owned()) }
    }

    /// The ACL `request` states, checked: one way of stating it, known grantees, and what the
    /// bucket's ownership setting and public access block allow. `owner` is the canonical id of
    /// what the ACL is for; `for_object` names the bucket's owner (objects only).
    pub(crate) fn requested_acl(
        &self,
        bucket: &str,
        request: AclRequest,
        owner: &str,
        for_object: bool,
    ) -> S3Result<Option<Acl>> {
        if request.is_empty() {
            return Ok(None);
        }
        let bucket_owner = if for_object { Some(self.bucket_owner_id(bucket)?) } else { None };
        let acl = match request {
            AclRequest { canned: Some(name), grant_headers, body: None } if grant_headers.is_empty() => {
                canned(&name, owner, bucket_owner.as_deref())?
            }
            AclRequest { canned: None, grant_headers, body: None } => {
                let mut grants = Vec::new();
                for (permission, value) in grant_headers {
                    for grantee in parse_grant_header(&value)? {
                        grants.push(AclGrant { grantee, permission });
                    }
                }
                Acl { grants }
            }
            AclRequest { canned: None, grant_headers, body: Some(body) } if grant_headers.is_empty() => {
                let mut grants = Vec::new();
                for g in body.grants.unwrap_or_default() {
                    let permission = permission_named(g.permission.as_ref().map_or("", |p| p.as_str()))?;
                    let grantee = g.grantee.ok_or_else(|| s3_error!(MalformedACLError, "A Grant needs a Grantee"))?;
                    grants.push(AclGrant { grantee: grantee_in(grantee)?, permission });
                }
                Acl { grants }
            }
            _ => {
                return Err(s3_error!(
                    InvalidRequest,
                    "Specifying both Canned ACLs and Header Grants (or a body) is not allowed"
                ));
            }
        };
        if acl.grants.len() > MAX_GRANTS {
            return Err(s3_error!(MalformedACLError, "An ACL may hold at most {MAX_GRANTS} grants"));
        }
        for g in &acl.grants {
            if let AclGrantee::CanonicalUser(id) = &g.grantee
                && !self.known_canonical_id(id)
            {
                return Err(s3_error!(InvalidArgument, "Invalid id"));
            }
            if for_object && g.permission == AclPermission::Write {
                return Err(s3_error!(MalformedACLError, "WRITE cannot be granted on an object"));
            }
        }
        let access = self.bucket_access(bucket)?;
        let owners: Vec<&str> = [Some(owner), bucket_owner.as_deref()].into_iter().flatten().collect();
        if access.ownership == Some(ObjectOwnership::BucketOwnerEnforced) && !owner_only(&acl, &owners) {
            return Err(acls_disabled());
        }
        if access.public_access_block.is_some_and(|b| b.block_public_acls) && is_public(&acl) {
            tracing::info!(bucket, "public ACL refused: the bucket blocks public ACLs");
            return Err(s3_error!(AccessDenied, "The bucket's public access block refuses public ACLs"));
        }
        Ok(Some(acl))
    }

    /// The ACL a write of a new object asks for (checked as [`Self::requested_acl`]); the new
    /// object's owner is its writer if a user, else the bucket's owner.
    pub(crate) fn new_object_acl(
        &self,
        bucket: &str,
        origin: &crate::gateway::Origin,
        request: AclRequest,
    ) -> S3Result<Option<Acl>> {
        if request.is_empty() {
            return Ok(None);
        }
        let owner = match &origin.actor {
            Some(meridian_raft::Actor::User(id)) => id.clone(),
            _ => self.bucket_owner_id(bucket)?,
        };
        let bucket_owner = self.bucket_owner_id(bucket)?;
        // A new object without an ACL is private: `x-amz-acl: private` (which many tools send
        // on every write) needs nothing stored, and works during an upgrade too.
        // BucketOwnerPreferred: a grant of FULL_CONTROL to the bucket's owner by another writer
        // is kept, since it gives the bucket's owner the object (see the state machine).
        let preferred = self.bucket_access(bucket)?.ownership == Some(ObjectOwnership::BucketOwnerPreferred);
        let transfers = |acl: &Acl| {
            preferred
                && owner != bucket_owner
                && acl.grants.iter().any(|g| {
                    g.permission == AclPermission::FullControl
                        && g.grantee == AclGrantee::CanonicalUser(bucket_owner.clone())
                })
        };
        let acl = self
            .requested_acl(bucket, request, &owner, true)?
            .filter(|acl| transfers(acl) || !owner_only(acl, &[owner.as_str(), bucket_owner.as_str()]));
        // Checked before any byte is stored: a refused write stores nothing.
        if acl.is_some() {
            self.require_edge_format()?;
        }
        Ok(acl)
    }

    /// The command that writes `command`'s bucket, object or upload with the ACL its request
    /// asked for (format 2: refused with 503 while the cluster is being upgraded).
    pub(crate) fn with_requested_acl(&self, command: Command, acl: Option<Acl>) -> S3Result<Command> {
        match acl {
            None => Ok(command),
            Some(acl) => {
                self.require_edge_format()?;
                Ok(Command::WithAcl { acl, command: Box::new(command) })
            }
        }
    }

    pub(crate) async fn get_bucket_acl_op(
        &self,
        req: S3Request<GetBucketAclInput>,
    ) -> S3Result<S3Response<GetBucketAclOutput>> {
        let bucket = &req.input.bucket;
        self.bucket(bucket).await?;
        let owner = self.bucket_owner_id(bucket)?;
        let access = self.bucket_access(bucket)?;
        let acl = match (access.ownership, access.acl) {
            (Some(ObjectOwnership::BucketOwnerEnforced), _) | (_, None) => canned("private", &owner, None)?,
            (_, Some(acl)) => acl,
        };
        Ok(S3Response::new(GetBucketAclOutput {
            grants: Some(grants_out(&acl, &|id| self.display_name(id))),
            owner: Some(self.owner_out(&owner)),
        }))
    }

    pub(crate) async fn put_bucket_acl_op(
        &self,
        req: S3Request<PutBucketAclInput>,
    ) -> S3Result<S3Response<PutBucketAclOutput>> {
        let origin = self.origin_of(&req);
        let mut input = req.input;
        let bucket = input.bucket.clone();
        self.bucket(&bucket).await?;
        let request = acl_request!(input, body: input.access_control_policy.take());
        if request.is_empty() {
            return Err(s3_error!(MissingSecurityHeader, "Your request was missing a required header: x-amz-acl"));
        }
        let owner = self.bucket_owner_id(&bucket)?;
        let acl = self.requested_acl(&bucket, request, &owner, false)?.unwrap_or_default();
        self.require_edge_format()?;
        let public = is_public(&acl);
        let command = Command::SetBucketAccess { bucket: bucket.clone(), change: BucketAccessChange::Acl(acl) };
        self.commit_as(origin, command).await?;
        tracing::info!(bucket = %bucket, public, "bucket ACL set");
        Ok(S3Response::new(PutBucketAclOutput {}))
    }

    pub(crate) async fn get_object_acl_op(
        &self,
        req: S3Request<GetObjectAclInput>,
    ) -> S3Result<S3Response<GetObjectAclOutput>> {
        let input = req.input;
        let stored = match input.version_id.as_deref() {
            None => {
                self.object(&input.bucket, &input.key).await?;
                self.meta.object_acl(&input.bucket, &input.key).map_err(error::store)?
            }
            Some(version_id) => {
                // Errors as GET `?versionId=`: NoSuchVersion, a delete marker 405.
                let found = self.version_for_read(&input.bucket, &input.key, Some(version_id)).await?;
                let version_id = found.version_id.as_deref().unwrap_or(version_id);
                self.meta.object_version_acl(&input.bucket, &input.key, version_id).map_err(error::store)?
            }
        };
        let owner = self.object_owner_id(&input.bucket, &input.key)?;
        let access = self.bucket_access(&input.bucket)?;
        let acl = match (access.ownership, stored) {
            (Some(ObjectOwnership::BucketOwnerEnforced), _) | (_, None) => canned("private", &owner, None)?,
            (_, Some(acl)) => acl,
        };
        Ok(S3Response::new(GetObjectAclOutput {
            grants: Some(grants_out(&acl, &|id| self.display_name(id))),
            owner: Some(self.owner_out(&owner)),
            request_charged: None,
        }))
    }

    pub(crate) async fn put_object_acl_op(
        &self,
        req: S3Request<PutObjectAclInput>,
    ) -> S3Result<S3Response<PutObjectAclOutput>> {
        let origin = self.origin_of(&req);
        let mut input = req.input;
        let (bucket, key) = (input.bucket.clone(), input.key.clone());
        // The version named (its id as stored), or the current object.
        let version = match input.version_id.take() {
            None => {
                self.object(&bucket, &key).await?;
                None
            }
            Some(version_id) => {
                let found = self.version_for_read(&bucket, &key, Some(&version_id)).await?;
                Some(found.version_id.unwrap_or(version_id))
            }
        };
        let request = acl_request!(input, body: input.access_control_policy.take());
        if request.is_empty() {
            return Err(s3_error!(MissingSecurityHeader, "Your request was missing a required header: x-amz-acl"));
        }
        let owner = self.object_owner_id(&bucket, &key)?;
        let acl = self.requested_acl(&bucket, request, &owner, true)?.unwrap_or_default();
        self.require_edge_format()?;
        let command = match version.clone() {
            // A bucket never versioned has one version, its current object.
            Some(version_id) if self.meta.versioning(&bucket).map_err(error::store)?.is_some() => {
                Command::PutVersionAcl { bucket: bucket.clone(), key: key.clone(), version_id, acl }
            }
            _ => Command::PutObjectAcl { bucket: bucket.clone(), key: key.clone(), acl },
        };
        self.commit_as(origin, command).await?;
        tracing::info!(bucket = %bucket, key = %key, version = ?version, "object ACL set");
        Ok(S3Response::new(PutObjectAclOutput::default()))
    }

    pub(crate) async fn get_bucket_ownership_controls_op(
        &self,
        req: S3Request<GetBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<GetBucketOwnershipControlsOutput>> {
        self.bucket(&req.input.bucket).await?;
        let Some(ownership) = self.bucket_access(&req.input.bucket)?.ownership else {
            return Err(s3_error!(OwnershipControlsNotFoundError, "The bucket ownership controls were not found"));
        };
        let name = match ownership {
            ObjectOwnership::BucketOwnerEnforced => s3s::dto::ObjectOwnership::BUCKET_OWNER_ENFORCED,
            ObjectOwnership::BucketOwnerPreferred => s3s::dto::ObjectOwnership::BUCKET_OWNER_PREFERRED,
            ObjectOwnership::ObjectWriter => s3s::dto::ObjectOwnership::OBJECT_WRITER,
        };
        let rule = OwnershipControlsRule { object_ownership: s3s::dto::ObjectOwnership::from_static(name) };
        Ok(S3Response::new(GetBucketOwnershipControlsOutput {
            ownership_controls: Some(OwnershipControls { rules: vec![rule] }),
        }))
    }

    pub(crate) async fn put_bucket_ownership_controls_op(
        &self,
        req: S3Request<PutBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<PutBucketOwnershipControlsOutput>> {
        let origin = self.origin_of(&req);
        let input = req.input;
        let [rule] = input.ownership_controls.rules.as_slice() else {
            return Err(s3_error!(MalformedXML, "OwnershipControls must hold exactly one Rule"));
        };
        self.bucket(&input.bucket).await?;
        self.set_ownership(origin, &input.bucket, rule.object_ownership.as_str()).await?;
        Ok(S3Response::new(PutBucketOwnershipControlsOutput {}))
    }

    /// Sets a bucket's object ownership by its S3 name.
    pub(crate) async fn set_ownership(&self, origin: crate::gateway::Origin, bucket: &str, name: &str) -> S3Result<()> {
        let ownership = match name {
            s3s::dto::ObjectOwnership::BUCKET_OWNER_ENFORCED => ObjectOwnership::BucketOwnerEnforced,
            s3s::dto::ObjectOwnership::BUCKET_OWNER_PREFERRED => ObjectOwnership::BucketOwnerPreferred,
            s3s::dto::ObjectOwnership::OBJECT_WRITER => ObjectOwnership::ObjectWriter,
            other => return Err(s3_error!(InvalidArgument, "Unknown ObjectOwnership {other}")),
        };
        self.require_edge_format()?;
        let change = BucketAccessChange::Ownership(Some(ownership));
        self.commit_as(origin, Command::SetBucketAccess { bucket: bucket.to_owned(), change }).await?;
        tracing::info!(bucket, ?ownership, "bucket ownership controls set");
        Ok(())
    }

    /// The ACL a CreateBucket asks for (checked), taken out of its input.
    pub(crate) fn create_bucket_acl(
        &self,
        origin: &crate::gateway::Origin,
        input: &mut s3s::dto::CreateBucketInput,
    ) -> S3Result<Option<Acl>> {
        let request = acl_request!(input, body: None);
        if request.is_empty() {
            return Ok(None);
        }
        let owner = match &origin.actor {
            Some(meridian_raft::Actor::User(id)) => id.clone(),
            _ => OPERATOR_ID.to_owned(),
        };
        // A new bucket has no settings yet: only the grants themselves are checked, and a
        // private ACL is what it has anyway.
        let acl = self.requested_acl("", request, &owner, false)?;
        Ok(acl.filter(|acl| !owner_only(acl, &[owner.as_str()])))
    }

    pub(crate) async fn delete_bucket_ownership_controls_op(
        &self,
        req: S3Request<DeleteBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<DeleteBucketOwnershipControlsOutput>> {
        let origin = self.origin_of(&req);
        let bucket = req.input.bucket;
        self.bucket(&bucket).await?;
        self.require_edge_format()?;
        let change = BucketAccessChange::Ownership(None);
        self.commit_as(origin, Command::SetBucketAccess { bucket: bucket.clone(), change }).await?;
        tracing::info!(bucket = %bucket, "bucket ownership controls removed");
        Ok(S3Response::new(DeleteBucketOwnershipControlsOutput {}))
    }

    pub(crate) async fn get_public_access_block_op(
        &self,
        req: S3Request<GetPublicAccessBlockInput>,
    ) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
        self.bucket(&req.input.bucket).await?;
        let Some(block) = self.bucket_access(&req.input.bucket)?.public_access_block else {
            return Err(no_public_access_block());
        };
        Ok(S3Response::new(GetPublicAccessBlockOutput {
            public_access_block_configuration: Some(PublicAccessBlockConfiguration {
                block_public_acls: Some(block.block_public_acls),
                block_public_policy: Some(block.block_public_policy),
                ignore_public_acls: Some(block.ignore_public_acls),
                restrict_public_buckets: Some(block.restrict_public_buckets),
            }),
        }))
    }

    pub(crate) async fn put_public_access_block_op(
        &self,
        req: S3Request<PutPublicAccessBlockInput>,
    ) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
        let origin = self.origin_of(&req);
        let input = req.input;
        let c = input.public_access_block_configuration;
        let block = PublicAccessBlock {
            block_public_acls: c.block_public_acls.unwrap_or(false),
            ignore_public_acls: c.ignore_public_acls.unwrap_or(false),
            block_public_policy: c.block_public_policy.unwrap_or(false),
            restrict_public_buckets: c.restrict_public_buckets.unwrap_or(false),
        };
        self.bucket(&input.bucket).await?;
        self.require_edge_format()?;
        let change = BucketAccessChange::PublicAccessBlock(Some(block));
        self.commit_as(origin, Command::SetBucketAccess { bucket: input.bucket.clone(), change }).await?;
        tracing::info!(bucket = %input.bucket, ?block, "public access block set");
        Ok(S3Response::new(PutPublicAccessBlockOutput {}))
    }

    pub(crate) async fn delete_public_access_block_op(
        &self,
        req: S3Request<DeletePublicAccessBlockInput>,
    ) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
        let origin = self.origin_of(&req);
        let bucket = req.input.bucket;
        self.bucket(&bucket).await?;
        self.require_edge_format()?;
        let change = BucketAccessChange::PublicAccessBlock(None);
        self.commit_as(origin, Command::SetBucketAccess { bucket: bucket.clone(), change }).await?;
        tracing::info!(bucket = %bucket, "public access block removed");
        Ok(S3Response::new(DeletePublicAccessBlockOutput {}))
    }
}

/// A grantee of an `AccessControlPolicy` body.
fn grantee_in(grantee: Grantee) -> S3Result<AclGrantee> {
    match grantee.type_.as_str() {
        Type::CANONICAL_USER => match grantee.id {
            Some(id) if !id.is_empty() => Ok(AclGrantee::CanonicalUser(id)),
            _ => Err(s3_error!(InvalidArgument, "Invalid id")),
        },
        Type::GROUP => group(grantee.uri.as_deref().unwrap_or_default()),
        Type::AMAZON_CUSTOMER_BY_EMAIL => Err(unresolvable_email()),
        other => Err(s3_error!(MalformedACLError, "Unknown grantee type {other}")),
    }
}

/// A group grantee by URI.
fn group(uri: &str) -> S3Result<AclGrantee> {
    match uri {
        ALL_USERS => Ok(AclGrantee::AllUsers),
        AUTHENTICATED_USERS => Ok(AclGrantee::AuthenticatedUsers),
        _ => Err(s3_error!(InvalidArgument, "Invalid group uri")),
    }
}

fn unresolvable_email() -> S3Error {
    s3_error!(UnresolvableGrantByEmailAddress, "The email address you provided does not match any account on record.")
}

/// The grantees of one `x-amz-grant-*` header: `id="..."`, `uri="..."` or
/// `emailAddress="..."`, comma-separated.
fn parse_grant_header(value: &str) -> S3Result<Vec<AclGrantee>> {
    let mut out = Vec::new();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((kind, quoted)) = part.split_once('=') else {
            return Err(s3_error!(InvalidArgument, "Invalid grant header {part}"));
        };
        let target = quoted.trim().trim_matches('"');
        out.push(match kind.trim().to_ascii_lowercase().as_str() {
            "id" if !target.is_empty() => AclGrantee::CanonicalUser(target.to_owned()),
            "uri" => group(target)?,
            "emailaddress" => return Err(unresolvable_email()),
            _ => return Err(s3_error!(InvalidArgument, "Invalid grant header {part}")),
        });
    }
    if out.is_empty() {
        return Err(s3_error!(InvalidArgument, "An x-amz-grant header names no grantee"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canned_acls_expand_to_s3s_grants() {
        let acl = canned("public-read-write", "u-1", None).expect("known");
        assert_eq!(acl.grants.len(), 3);
        assert!(is_public(&acl));
        assert!(!is_public(&canned("private", "u-1", None).expect("known")));
        assert!(is_public(&canned("authenticated-read", "u-1", None).expect("known")));
        let full = canned("bucket-owner-full-control", "u-1", Some("u-2")).expect("known");
        assert_eq!(full.grants[1], grant(AclGrantee::CanonicalUser("u-2".into()), AclPermission::FullControl));
        assert_eq!(canned("nope", "u", None).map_err(|e| e.code().as_str().to_owned()), Err("InvalidArgument".into()));
    }

    #[test]
    fn grant_headers_name_ids_groups_and_refuse_emails() {
        let g = parse_grant_header(r#"id="u-1", uri="http://acs.amazonaws.com/groups/global/AllUsers""#).expect("ok");
        assert_eq!(g, vec![AclGrantee::CanonicalUser("u-1".into()), AclGrantee::AllUsers]);
        let code = |v: &str| parse_grant_header(v).map_err(|e| e.code().as_str().to_owned());
        assert_eq!(code(r#"emailAddress="a@b.c""#), Err("UnresolvableGrantByEmailAddress".into()));
        assert_eq!(code(r#"uri="http://acs.amazonaws.com/groups/s3/LogDelivery""#), Err("InvalidArgument".into()));
        assert_eq!(code("garbage"), Err("InvalidArgument".into()));
        assert_eq!(code(""), Err("InvalidArgument".into()));
    }
}
