//! Who may run which S3 operation: every request is signed with SigV4, and each credential does
//! only what it was issued for.
//!
//! s3s calls [`AccessPolicy::check`] once a request's signature is verified and its operation is
//! known, before the body is read; the per-operation hooks (`copy_object`, `upload_part_copy`)
//! run once the input is parsed, to authorize the other object such a request names.
//!
//! **The system key** (see `admin::presign::system_key`) signs the URLs the web API hands to
//! panel users and services. Its secret never leaves the nodes, but the URLs do, and a presigned
//! URL signs only what is in its query and its signed headers: a client holding one could add
//! `x-amz-copy-source` (turning a PUT into a copy of someone else's file), `x-amz-meta-*`, or a
//! body of any size. So a system-key request must be a presigned URL for one of the operations
//! the web API hands out, and every header that the gateway would store with the object, and the
//! body's size, must be covered by its signature: exactly what the web API promised.
//!
//! **A key that belongs to a user** (`meridian key create --owner user:ID`) acts as that user
//! and reaches what the panel would let them reach ([`meridian_raft::access`]): their buckets
//! and files, and files shared with them. A key of a service (the default, and every key made
//! before keys had owners) reaches everything, as operators' and services' keys always did.
//!
//! **Grants** (issue #15): beyond that, a bucket's policy and ACLs (and an object's ACL) may
//! grant other keys, and unsigned requests, what S3 would grant them (see [`crate::acl`] and
//! [`crate::policy`]). An explicit Deny of the bucket's policy refuses the request whoever
//! signed it (the system key aside: its URLs carry what the panel decided). Grants are read
//! from this node's state; a request they do not allow is judged once more after a read index,
//! so a grant made through another node applies at once, and a revoked one within the
//! milliseconds replication takes.

use std::net::IpAddr;

use meridian_raft::access::Person;
use meridian_raft::model::KeyOwner;
use meridian_raft::{AclGrantee, AclPermission, MetaStore, ObjectOwnership};
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::Credentials;
use s3s::dto::{CopyObjectInput, CopySource, PostObjectInput, UploadPartCopyInput};
use s3s::{S3Request, S3Result, s3_error};

use crate::error;
use crate::gateway::{ClientAddr, Gateway, now_millis};
use crate::policy::{PolicyAction, PolicyRequest, PolicyVerdict};

/// Longest lifetime of a presigned URL, as S3 allows: 7 days.
const MAX_PRESIGNED_EXPIRY_SECS: u64 = 7 * 24 * 3600;

/// The operations the web API presigns with the system key: uploads (single and multipart)
/// and downloads, nothing else.
const SYSTEM_KEY_OPERATIONS: &[&str] = &[
    "PutObject",
    "CreateMultipartUpload",
    "UploadPart",
    "CompleteMultipartUpload",
    "AbortMultipartUpload",
    "GetObject",
    "HeadObject",
];

/// The operations that write a new version of their object (a user's URL for them is checked
/// against the user's write access again when used).
const WRITE_OPERATIONS: &[&str] = &["PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"];

/// Request headers a system-key request may carry unsigned: they frame or protect the body and
/// change nothing that is stored.
const HARMLESS_AMZ_HEADERS: &[&str] =
    &["x-amz-content-sha256", "x-amz-date", "x-amz-user-agent", "x-amz-decoded-content-length", "x-amz-trailer"];

/// Headers the gateway stores with an object (on PutObject and CreateMultipartUpload): on a
/// system-key request each must be signed.
const STORED_HEADERS: &[&str] =
    &["content-type", "content-disposition", "content-encoding", "content-language", "cache-control", "expires"];

/// What the signing key of a request may reach, resolved once per request by
/// [`AccessPolicy::check`] and left in the request's extensions for the gateway (which
/// attributes a user's writes to them and lists only their buckets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyScope {
    /// A service's or operator's key: every bucket and file.
    Everything,
    /// A user's key: what that user may reach.
    Person {
        /// The user id.
        id: String,
        /// Whether the user holds the admin role (as last synced from the Auth service).
        admin: bool,
    },
}

impl KeyScope {
    /// The person the scope stands for, if any.
    pub(crate) fn person(&self) -> Option<Person<'_>> {
        match self {
            Self::Everything => None,
            Self::Person { id, admin } => Some(Person { id, admin: *admin }),
        }
    }
}

/// Who sent a DeleteObjects request, left in its extensions by [`AccessPolicy::check`]. The
/// request names its keys only in its body, so the gateway judges each key as a DeleteObject
/// of it would be judged ([`AccessPolicy::may_delete`]): a grantee deletes what the bucket's
/// ACL or policy lets it delete, and every other key is AccessDenied inside the 200 answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BatchDeleter {
    /// The signing access key; `None`: an unsigned request.
    access_key: Option<String>,
    /// What that key reaches; `None`: an unsigned request.
    scope: Option<KeyScope>,
}

impl BatchDeleter {
    /// Whether the request was signed at all (an unsigned one learns nothing of the bucket).
    pub(crate) fn is_signed(&self) -> bool {
        self.access_key.is_some()
    }
}

/// What an operation needs of a user's key on its bucket or object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Nothing: the operation is answered for the user alone (ListBuckets) or creates
    /// something that becomes theirs (CreateBucket).
    Nothing,
    /// Read the object: owner, admin, or a share.
    ReadObject,
    /// Write a new version of the object: owner, admin, or a write share.
    WriteObject,
    /// Own the object (delete it): owner or admin.
    OwnObject,
    /// Own the bucket (list, delete, batch delete).
    OwnBucket,
    /// Not open to users' keys.
    Refused,
}

/// What `op` needs of a user's key.
fn need(op: &str) -> Need {
    match op {
        "ListBuckets" | "CreateBucket" => Need::Nothing,
        "GetObject"
        | "HeadObject"
        | "GetObjectTagging"
        | "GetObjectAttributes"
        | "ListParts"
        | "GetObjectRetention"
        | "GetObjectLegalHold" => Need::ReadObject,
        "PutObject"
        | "CopyObject"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "UploadPartCopy"
        | "CompleteMultipartUpload"
        | "AbortMultipartUpload"
        | "PutObjectTagging"
        | "DeleteObjectTagging"
        | "PutObjectRetention"
        | "PutObjectLegalHold" => Need::WriteObject,
        "DeleteObject" => Need::OwnObject,
        "ListObjects"
        | "ListObjectsV2"
        | "ListObjectVersions"
        | "ListMultipartUploads"
        | "HeadBucket"
        | "GetBucketLocation"
        | "DeleteBucket"
        | "DeleteObjects"
        | "PutBucketCors"
        | "GetBucketCors"
        | "DeleteBucketCors"
        | "PutBucketVersioning"
        | "GetBucketVersioning"
        | "PutObjectLockConfiguration"
        | "GetObjectLockConfiguration"
        | "GetBucketAcl"
        | "PutBucketAcl"
        | "GetBucketPolicy"
        | "PutBucketPolicy"
        | "DeleteBucketPolicy"
        | "GetBucketPolicyStatus"
        | "GetBucketOwnershipControls"
        | "PutBucketOwnershipControls"
        | "DeleteBucketOwnershipControls"
        | "GetPublicAccessBlock"
        | "PutPublicAccessBlock"
        | "DeletePublicAccessBlock" => Need::OwnBucket,
        "GetObjectAcl" | "PutObjectAcl" => Need::OwnObject,
        _ => Need::Refused,
    }
}

/// What ACL permission an operation needs, and on what: the bucket's list or the object's.
fn acl_need(op: &str) -> Option<(AclTarget, AclPermission)> {
    use AclPermission::{Read, ReadAcp, Write, WriteAcp};
    Some(match op {
        "GetObject" | "HeadObject" => (AclTarget::Object, Read),
        "ListObjects" | "ListObjectsV2" | "ListObjectVersions" | "ListMultipartUploads" | "HeadBucket" => {
            (AclTarget::Bucket, Read)
        }
        "PutObject"
        | "CopyObject"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "UploadPartCopy"
        | "CompleteMultipartUpload"
        | "AbortMultipartUpload"
        | "DeleteObject" => (AclTarget::Bucket, Write),
        "GetBucketAcl" => (AclTarget::Bucket, ReadAcp),
        "PutBucketAcl" => (AclTarget::Bucket, WriteAcp),
        "GetObjectAcl" => (AclTarget::Object, ReadAcp),
        "PutObjectAcl" => (AclTarget::Object, WriteAcp),
        _ => return None,
    })
}

/// Which ACL an operation is judged by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AclTarget {
    /// The bucket's.
    Bucket,
    /// The object's: the version the request names, else the current one.
    Object,
}

/// Who is asking, as grants and policies name callers.
#[derive(Debug, Clone, Copy)]
struct Caller<'a> {
    /// The signing access key; `None`: an unsigned request.
    access_key: Option<&'a str>,
    /// The caller's canonical id (a user's id, or the operator's for other keys).
    canonical: Option<&'a str>,
}

/// The key that signed a request and what it reaches, as judged together.
#[derive(Debug, Clone, Copy)]
struct Signer<'a> {
    /// The signing access key's id.
    access_key: &'a str,
    /// What that key reaches.
    scope: &'a KeyScope,
}

/// What the bucket's policy and ACLs say about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grant {
    /// An explicit Deny of the policy.
    Denied,
    /// A policy Allow or an ACL grant.
    Granted,
    /// Nothing: only the owner's rights count.
    Nothing,
}

/// Decides, for every S3 request, whether its credential may run it.
pub struct AccessPolicy {
    /// The metadata store: the owners and shares a user's URL is checked against.
    meta: MetaStore,
    /// The gateway: bucket policies and access settings as it reads them.
    gateway: Gateway,
    /// The system key's id, whose requests are held to what the web API hands out.
    system_key: Option<String>,
}

impl AccessPolicy {
    /// The policy of a gateway (the system key is its delegating key).
    pub fn new(gateway: &Gateway) -> Self {
        Self { meta: gateway.meta.clone(), gateway: gateway.clone(), system_key: gateway.delegating_key.clone() }
    }

    fn is_system_key(&self, credentials: &Credentials) -> bool {
        self.system_key.as_deref() == Some(credentials.access_key.as_str())
    }

    /// What `access_key` may reach: a user's key is scoped to its user (refused once the user is
    /// gone from the Auth service); any other key reaches everything.
    fn key_scope(&self, access_key: &str) -> S3Result<KeyScope> {
        match self.meta.access_key_owner(access_key).map_err(error::store)? {
            Some(KeyOwner::User(id)) => {
                // A user the panel has not met yet (never signed in, not synced) is a plain user.
                let user = self.meta.user(&id).map_err(error::store)?;
                if user.as_ref().is_some_and(|u| u.deleted.is_some()) {
                    tracing::warn!(access_key, user = %id, "key of a user the Auth service no longer lists");
                    return Err(s3_error!(AccessDenied, "This key's user no longer exists."));
                }
                let admin = user.is_some_and(|u| u.profile.roles.iter().any(|r| r == "admin"));
                Ok(KeyScope::Person { id, admin })
            }
            Some(KeyOwner::Service(_)) | None => Ok(KeyScope::Everything),
        }
    }

    /// Whether `person` may run `op` on what the request names.
    fn check_person(&self, person: Person<'_>, op: &str, path: &s3s::path::S3Path) -> S3Result<()> {
        use s3s::path::S3Path;
        let needed = need(op);
        let allowed = match (needed, path) {
            (Need::Nothing, _) => true,
            (Need::Refused, _) | (_, S3Path::Root) => false,
            (Need::OwnBucket, S3Path::Bucket { bucket } | S3Path::Object { bucket, .. }) => {
                self.meta.person_owns(person, bucket, None).map_err(error::store)?
            }
            (_, S3Path::Bucket { .. }) => false,
            (Need::OwnObject, S3Path::Object { bucket, key }) => {
                self.meta.person_owns(person, bucket, Some(key)).map_err(error::store)?
            }
            (Need::ReadObject | Need::WriteObject, S3Path::Object { bucket, key }) => {
                let write = needed == Need::WriteObject;
                let access = self.meta.person_access(person, bucket, key, write, now_millis());
                access.map_err(error::store)?.is_some()
            }
        };
        if !allowed {
            tracing::info!(user = person.id, op, ?path, "user key refused");
            return Err(s3_error!(AccessDenied, "This key's user may not run {op} here."));
        }
        Ok(())
    }

    /// What the bucket's policy (and, when `want_grant`, the ACLs) say about `caller` running
    /// `op` on `path` (its version `version`, when the request names one) from `client`.
    /// Without `want_grant` only a Deny is looked for (the caller may run it anyway, as owner).
    fn grants(
        &self,
        caller: Caller<'_>,
        op: &str,
        path: &s3s::path::S3Path,
        version: Option<&str>,
        client: Option<IpAddr>,
        want_grant: bool,
    ) -> S3Result<Grant> {
        use s3s::path::S3Path;
        let (bucket, key) = match path {
            S3Path::Root => return Ok(Grant::Nothing),
            S3Path::Bucket { bucket } => (bucket.as_ref(), None),
            S3Path::Object { bucket, key } => (bucket.as_ref(), Some(key.as_ref())),
        };
        let access = self.gateway.bucket_access(bucket)?;
        let block = access.public_access_block.unwrap_or_default();
        if let (Some(action), Some(policy)) =
            (PolicyAction::of_operation(op), self.gateway.bucket_policy(bucket, access.policy.as_deref()))
        {
            let ids: Vec<&str> = caller.access_key.into_iter().chain(caller.canonical).collect();
            match policy.evaluate(&PolicyRequest { ids: &ids, action, bucket, key, client }) {
                PolicyVerdict::Deny => return Ok(Grant::Denied),
                // RestrictPublicBuckets: a public statement grants nobody.
                PolicyVerdict::Allow { public } if want_grant && !(public && block.restrict_public_buckets) => {
                    return Ok(Grant::Granted);
                }
                _ => {}
            }
        }
        if !want_grant || access.ownership == Some(ObjectOwnership::BucketOwnerEnforced) {
            return Ok(Grant::Nothing);
        }
        let Some((target, needed)) = acl_need(op) else { return Ok(Grant::Nothing) };
        let acl = match (target, key, version) {
            (AclTarget::Bucket, _, _) => access.acl,
            (AclTarget::Object, Some(key), None) => self.meta.object_acl(bucket, key).map_err(error::store)?,
            (AclTarget::Object, Some(key), Some(version)) => {
                self.meta.object_version_acl(bucket, key, version).map_err(error::store)?
            }
            (AclTarget::Object, None, _) => None,
        };
        let granted = acl.is_some_and(|acl| {
            acl.grants.iter().any(|g| {
                (g.permission == needed || g.permission == AclPermission::FullControl)
                    && match &g.grantee {
                        AclGrantee::AllUsers => !block.ignore_public_acls,
                        AclGrantee::AuthenticatedUsers => caller.access_key.is_some() && !block.ignore_public_acls,
                        AclGrantee::CanonicalUser(id) => caller.canonical == Some(id.as_str()),
                    }
            })
        });
        Ok(if granted { Grant::Granted } else { Grant::Nothing })
    }

    /// [`Self::grants`] for a caller that needs a grant; when this node's state grants nothing,
    /// judged again after a read index (a grant made through another node a moment ago).
    async fn grants_confirmed(
        &self,
        caller: Caller<'_>,
        op: &str,
        path: &s3s::path::S3Path,
        version: Option<&str>,
        client: Option<IpAddr>,
    ) -> S3Result<Grant> {
        let local = self.grants(caller, op, path, version, client, true)?;
        if local != Grant::Nothing {
            return Ok(local);
        }
        if let Err(e) = self.meta.read_barrier().await {
            tracing::debug!(error = %e, "no read index for a grant check; judged on local state");
            return Ok(local);
        }
        self.grants(caller, op, path, version, client, true)
    }

    /// Whether `access_key` (reaching `scope`) may run `op` on `path` from `client`: its own
    /// rights (a user's key: what the user owns or is shared) unless the bucket's policy denies
    /// it, or else what the policy or ACLs grant it. `confirm`: a refusal on this node's state
    /// is judged again after a read index (the caller has not just caught up itself).
    async fn judge_signed(
        &self,
        signer: Signer<'_>,
        op: &str,
        path: &s3s::path::S3Path,
        version: Option<&str>,
        client: Option<IpAddr>,
        confirm: bool,
    ) -> S3Result<()> {
        let Signer { access_key, scope } = signer;
        let canonical = match scope {
            KeyScope::Person { id, .. } => id.as_str(),
            KeyScope::Everything => crate::acl::OPERATOR_ID,
        };
        let caller = Caller { access_key: Some(access_key), canonical: Some(canonical) };
        match scope.person() {
            Some(person) => {
                if let Err(refused) = self.check_person(person, op, path) {
                    // Not the user's own: what the bucket's policy or ACLs grant them.
                    let grant = if confirm {
                        self.grants_confirmed(caller, op, path, version, client).await?
                    } else {
                        self.grants(caller, op, path, version, client, true)?
                    };
                    if grant != Grant::Granted {
                        return Err(refused);
                    }
                    tracing::debug!(user = person.id, op, ?path, "user key granted by policy or ACL");
                } else if self.grants(caller, op, path, version, client, false)? == Grant::Denied {
                    tracing::info!(user = person.id, op, ?path, "denied by the bucket policy");
                    return Err(s3_error!(AccessDenied, "Access Denied"));
                }
            }
            None => {
                if self.grants(caller, op, path, version, client, false)? == Grant::Denied {
                    tracing::info!(key = %access_key, op, ?path, "denied by the bucket policy");
                    return Err(s3_error!(AccessDenied, "Access Denied"));
                }
            }
        }
        Ok(())
    }

    /// Whether the sender of a DeleteObjects request may delete `bucket/key`, exactly as a
    /// DeleteObject of that key by the same caller would be judged. `Err` only for a failure
    /// to judge (the store); a refusal is `Ok(false)`. Judged on this node's state: the caller
    /// catches up with the leader once for the whole request (a thousand refused keys must not
    /// cost a thousand read indexes).
    pub(crate) async fn may_delete(
        &self,
        deleter: &BatchDeleter,
        bucket: &str,
        key: &str,
        client: Option<IpAddr>,
    ) -> S3Result<bool> {
        let path = s3s::path::S3Path::object(bucket, key);
        let verdict = match (&deleter.access_key, &deleter.scope) {
            (Some(access_key), Some(scope)) => {
                self.judge_signed(Signer { access_key, scope }, "DeleteObject", &path, None, client, false).await
            }
            _ => {
                let anonymous = Caller { access_key: None, canonical: None };
                match self.grants(anonymous, "DeleteObject", &path, None, client, true)? {
                    Grant::Granted => Ok(()),
                    Grant::Denied | Grant::Nothing => Err(s3_error!(AccessDenied, "Access Denied")),
                }
            }
        };
        match verdict {
            Ok(()) => Ok(true),
            Err(e) if *e.code() == s3s::S3ErrorCode::AccessDenied => {
                tracing::info!(key = ?deleter.access_key, %bucket, object = %key, "batch delete of a key refused");
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// A request signed with the system key: see the module doc.
    fn check_system_key_request(&self, cx: &S3AccessContext<'_>) -> S3Result<()> {
        let op = cx.s3_op().name();
        let query = QueryParams(cx.uri().query().unwrap_or_default());
        if query.get("X-Amz-Signature").is_none() {
            return Err(s3_error!(AccessDenied, "The system key only signs URLs handed out by the web API."));
        }
        if !SYSTEM_KEY_OPERATIONS.contains(&op) {
            tracing::warn!(op, "system-key URL used for an operation the web API never hands out");
            return Err(s3_error!(AccessDenied, "This URL does not allow {op}."));
        }
        let signed = query.get("X-Amz-SignedHeaders").unwrap_or_default().to_ascii_lowercase();
        let signed: Vec<&str> = signed.split(';').collect();
        // Only these two store the request's content headers with an object; a completion's
        // `content-type: application/xml` describes its own XML body.
        let stores_headers = matches!(op, "PutObject" | "CreateMultipartUpload");
        for name in cx.headers().keys().map(http::HeaderName::as_str) {
            let stored = (stores_headers && STORED_HEADERS.contains(&name))
                || (name.starts_with("x-amz-")
                    && !HARMLESS_AMZ_HEADERS.contains(&name)
                    && !name.starts_with("x-amz-checksum-")
                    && name != "x-amz-sdk-checksum-algorithm");
            if stored && !signed.contains(&name) {
                tracing::warn!(op, header = name, "unsigned header on a system-key URL");
                return Err(s3_error!(AccessDenied, "This URL does not allow the header {name}."));
            }
        }
        // The declared size is part of the promise: the body can be neither larger nor smaller.
        if matches!(op, "PutObject" | "UploadPart") && !signed.contains(&"content-length") {
            return Err(s3_error!(AccessDenied, "This URL does not sign the size of the upload."));
        }
        Ok(())
    }

    /// A user's upload URL is used while the user may still write the file: a share revoked
    /// between handing out the URL and using it stops the upload.
    fn check_acting_user_may_write(&self, cx: &S3AccessContext<'_>) -> S3Result<()> {
        let op = cx.s3_op().name();
        if !WRITE_OPERATIONS.contains(&op) {
            return Ok(());
        }
        let Some(user) = crate::gateway::named_actor(cx.uri().query())
            .and_then(|actor| actor.strip_prefix("user:").map(str::to_owned))
        else {
            return Ok(());
        };
        let s3s::path::S3Path::Object { bucket, key } = cx.s3_path() else { return Ok(()) };
        let stored_admin = self
            .meta
            .user(&user)
            .map_err(error::store)?
            .is_some_and(|u| u.deleted.is_none() && u.profile.roles.iter().any(|r| r == "admin"));
        let person = Person { id: &user, admin: stored_admin };
        let access = self.meta.person_access(person, bucket, key, true, now_millis()).map_err(error::store)?;
        if access.is_none() {
            tracing::warn!(%user, %bucket, %key, op, "upload URL used after the user lost write access");
            return Err(s3_error!(AccessDenied, "You may no longer write this file."));
        }
        Ok(())
    }

    /// The other object a copy names is read for the caller: the key may read it like a GET.
    async fn authorize_copy_source(
        &self,
        credentials: Option<&Credentials>,
        source: &CopySource,
        client: Option<IpAddr>,
    ) -> S3Result<()> {
        let Some(credentials) = credentials else {
            return Err(s3_error!(AccessDenied, "Requests must be signed."));
        };
        if self.is_system_key(credentials) {
            return Err(s3_error!(AccessDenied, "This URL does not allow copying."));
        }
        let CopySource::Bucket { bucket, key, version_id } = source else {
            return Err(s3_error!(NotImplemented, "access point copy sources are not supported"));
        };
        let scope = self.key_scope(&credentials.access_key)?;
        let canonical = match &scope {
            KeyScope::Person { id, .. } => id.as_str(),
            KeyScope::Everything => crate::acl::OPERATOR_ID,
        };
        let caller = Caller { access_key: Some(&credentials.access_key), canonical: Some(canonical) };
        let path = s3s::path::S3Path::object(bucket, key);
        let reads_own = match scope.person() {
            Some(person) => {
                self.meta.person_access(person, bucket, key, false, now_millis()).map_err(error::store)?.is_some()
            }
            None => true,
        };
        let grant = if reads_own {
            self.grants(caller, "GetObject", &path, version_id.as_deref(), client, false)?
        } else {
            self.grants_confirmed(caller, "GetObject", &path, version_id.as_deref(), client).await?
        };
        if grant == Grant::Denied || (!reads_own && grant != Grant::Granted) {
            tracing::warn!(key = %credentials.access_key, %bucket, %key, "copy from an object the key may not read");
            return Err(s3_error!(AccessDenied, "This key may not read the copy source."));
        }
        tracing::debug!(key = %credentials.access_key, %bucket, %key, "copy source authorized");
        Ok(())
    }
}

/// A raw query string, read parameter by parameter (names compared as sent).
struct QueryParams<'a>(&'a str);

impl<'a> QueryParams<'a> {
    /// The percent-decoded value of the first parameter called `name`.
    fn get(&self, name: &str) -> Option<String> {
        self.0.split('&').find_map(|pair| {
            let (n, value) = pair.split_once('=').unwrap_or((pair, ""));
            (n == name).then(|| percent_encoding::percent_decode_str(value).decode_utf8_lossy().into_owned())
        })
    }

    /// Whether a parameter called `name` is present.
    fn has(&self, name: &str) -> bool {
        self.0.split('&').any(|pair| pair.split_once('=').map_or(pair, |(n, _)| n) == name)
    }
}

/// What is wrong with the `X-Amz-Expires` of a presigned (SigV4 query) request, if anything:
/// AWS takes 1 to 604800 seconds and answers anything else with a 400
/// AuthorizationQueryParametersError before it looks at the signature or the clock. s3s would
/// take any `u32` (a URL valid for 136 years) and answer a non-number as InvalidRequest. A
/// request that is not presigned has no problem here.
pub fn presigned_expiry_problem(query: Option<&str>) -> Option<&'static str> {
    let query = QueryParams(query?);
    if !query.has("X-Amz-Signature") {
        return None;
    }
    let Some(expires) = query.get("X-Amz-Expires") else {
        return Some("Query-string authentication version 4 requires the X-Amz-Expires parameter");
    };
    match expires.parse::<i64>() {
        Err(_) => Some("X-Amz-Expires should be a number"),
        Ok(secs) if secs < 1 => Some("X-Amz-Expires must be a positive number of seconds"),
        Ok(secs) if secs.unsigned_abs() > MAX_PRESIGNED_EXPIRY_SECS => {
            Some("X-Amz-Expires must be less than a week (in seconds) that is 604800")
        }
        Ok(_) => None,
    }
}

/// Whether a request is signed with AWS Signature Version 2 (an `Authorization: AWS id:sig`
/// header, or `AWSAccessKeyId`/`Signature` query parameters): SigV2 signs with SHA-1, leaves the
/// body and most headers unsigned, and lets presigned URLs live for any time.
fn signed_with_v2(headers: &http::HeaderMap, query: Option<&str>) -> bool {
    let header_v2 = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("AWS ") || v.starts_with("aws "));
    let query = QueryParams(query.unwrap_or_default());
    header_v2 || query.has("AWSAccessKeyId") || (query.has("Signature") && !query.has("X-Amz-Signature"))
}

#[async_trait::async_trait]
impl S3Access for AccessPolicy {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        if signed_with_v2(cx.headers(), cx.uri().query()) {
            return Err(s3_error!(
                AccessDenied,
                "AWS Signature Version 2 is not accepted: sign requests with Signature Version 4."
            ));
        }
        let client = cx.extensions_mut().get::<ClientAddr>().map(|c| c.0);
        let op = cx.s3_op().name();
        // An object's ACL is the named version's (each version has its own, as on S3).
        let version = QueryParams(cx.uri().query().unwrap_or_default()).get("versionId");
        let Some(credentials) = cx.credentials() else {
            if op == "DeleteObjects" {
                // Judged key by key once the body is read (see `BatchDeleter`).
                cx.extensions_mut().insert(BatchDeleter { access_key: None, scope: None });
                return Ok(());
            }
            // Unsigned: exactly what a policy or ACL grants everyone.
            let anonymous = Caller { access_key: None, canonical: None };
            if self.grants_confirmed(anonymous, op, cx.s3_path(), version.as_deref(), client).await? != Grant::Granted {
                tracing::debug!(op, path = ?cx.s3_path(), "unsigned request refused");
                return Err(s3_error!(AccessDenied, "Access Denied"));
            }
            tracing::debug!(op, path = ?cx.s3_path(), "unsigned request granted");
            return Ok(());
        };
        // The listener refuses these before s3s sees them; checked again for any other caller.
        if let Some(problem) = presigned_expiry_problem(cx.uri().query()) {
            return Err(s3_error!(AuthorizationQueryParametersError, "{problem}"));
        }
        if self.is_system_key(credentials) {
            self.check_system_key_request(cx)?;
            self.check_acting_user_may_write(cx)?;
            return Ok(());
        }
        let access_key = credentials.access_key.clone();
        let scope = self.key_scope(&access_key)?;
        if op == "DeleteObjects" {
            // Judged key by key once the body is read (see `BatchDeleter`).
            let deleter = BatchDeleter { access_key: Some(access_key), scope: Some(scope.clone()) };
            cx.extensions_mut().insert(deleter);
        } else {
            self.judge_signed(
                Signer { access_key: &access_key, scope: &scope },
                op,
                cx.s3_path(),
                version.as_deref(),
                client,
                true,
            )
            .await?;
        }
        cx.extensions_mut().insert(scope);
        Ok(())
    }

    async fn copy_object(&self, req: &mut S3Request<CopyObjectInput>) -> S3Result<()> {
        let client = req.extensions.get::<ClientAddr>().map(|c| c.0);
        self.authorize_copy_source(req.credentials.as_ref(), &req.input.copy_source, client).await
    }

    async fn upload_part_copy(&self, req: &mut S3Request<UploadPartCopyInput>) -> S3Result<()> {
        let client = req.extensions.get::<ClientAddr>().map(|c| c.0);
        self.authorize_copy_source(req.credentials.as_ref(), &req.input.copy_source, client).await
    }

    async fn post_object(&self, req: &mut S3Request<PostObjectInput>) -> S3Result<()> {
        // Called before the object is stored; s3s builds the redirect only afterwards.
        crate::post_form::check_redirect(req.input.success_action_redirect.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigv2_is_recognised_in_headers_and_query() {
        let mut headers = http::HeaderMap::new();
        assert!(!signed_with_v2(&headers, Some("X-Amz-Signature=abc&X-Amz-Credential=k")));
        assert!(signed_with_v2(&headers, Some("AWSAccessKeyId=K&Expires=1&Signature=x")));
        let expiry = |e: &str| presigned_expiry_problem(Some(&format!("X-Amz-Expires={e}&X-Amz-Signature=s")));
        for bad in ["0", "-1", "604801", "99999999999999999999", "1e3", "", "%20"] {
            assert!(expiry(bad).is_some(), "X-Amz-Expires={bad}");
        }
        for good in ["1", "3600", "604800"] {
            assert_eq!(expiry(good), None, "X-Amz-Expires={good}");
        }
        assert!(presigned_expiry_problem(Some("X-Amz-Signature=s")).is_some(), "missing");
        assert_eq!(presigned_expiry_problem(Some("uploads&X-Amz-Expires=0")), None, "not presigned");
        assert!(signed_with_v2(&headers, Some("Signature=x&Expires=1")));
        headers.insert(http::header::AUTHORIZATION, http::HeaderValue::from_static("AWS K:c2lnbmF0dXJl"));
        assert!(signed_with_v2(&headers, None));
        headers.insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=K/20260101/r/s3/aws4_request"),
        );
        assert!(!signed_with_v2(&headers, None));
    }

    #[test]
    fn query_params_are_decoded_and_matched_whole() {
        let q = QueryParams("X-Amz-SignedHeaders=content-length%3Bhost&uploads&X-Amz-Signature=");
        assert_eq!(q.get("X-Amz-SignedHeaders").as_deref(), Some("content-length;host"));
        assert!(q.has("uploads"));
        assert_eq!(q.get("X-Amz-Signature").as_deref(), Some(""));
        assert_eq!(q.get("X-Amz-Signed"), None);
    }
}
