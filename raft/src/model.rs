//! The plain data of the placement database. Everything here is replicated through Raft
//! except [`WorkItem`]s, which each node derives for itself while applying the log.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::node_id::NodeId;

/// Milliseconds since the Unix epoch. Chosen by the proposing node, so applying the log is
/// deterministic on every replica.
pub type UnixMillis = i64;

/// A bucket.
///
/// A stored record (`codec::Record`): to add a field, raise its `FORMAT`, keep the old
/// shape and write its conversion there; never change this shape in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    /// Bucket name (validated by the gateway before it is proposed).
    pub name: String,
    /// When it was created.
    pub created: UnixMillis,
    /// Region whose node created it, answered by GetBucketLocation.
    pub region: String,
}

/// S3's bucket naming rules, the part that matters for path-style addressing: 3 to 63 of
/// `a-z`, `0-9`, `-` and `.`, starting and ending with a letter or digit, no `..`. The web API
/// and the S3 gateway check it before creating a bucket; the store itself only relies on the
/// weaker rule that a name has no `/` (see `tables`), which every name passing this has.
#[must_use]
pub fn valid_bucket_name(name: &str) -> bool {
    let edge_ok = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (3..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && edge_ok(name.as_bytes().first())
        && edge_ok(name.as_bytes().last())
        && !name.contains("..")
}

/// The id of a blob in a node's blob store: 128 random bits, hex. Blobs are immutable; an
/// overwrite gets a new id.
pub type BlobId = String;

/// The checksums a client asked to be stored with an object, base64 as S3 sends them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksums {
    /// CRC-32 (IEEE).
    pub crc32: Option<String>,
    /// CRC-32C (Castagnoli).
    pub crc32c: Option<String>,
    /// SHA-1.
    pub sha1: Option<String>,
    /// SHA-256.
    pub sha256: Option<String>,
    /// CRC-64/NVME.
    pub crc64nvme: Option<String>,
}

/// HTTP-level metadata kept with an object and returned on GET/HEAD.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentHeaders {
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// `Content-Disposition`.
    pub content_disposition: Option<String>,
    /// `Content-Encoding`, with `aws-chunked` removed.
    pub content_encoding: Option<String>,
    /// `Content-Language`.
    pub content_language: Option<String>,
    /// `Cache-Control`.
    pub cache_control: Option<String>,
    /// `Expires`, as milliseconds since the epoch.
    pub expires: Option<UnixMillis>,
    /// `x-amz-meta-*`, without the prefix.
    pub user: BTreeMap<String, String>,
}

/// One part of an object assembled by multipart upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartSummary {
    /// The part number the client gave it.
    pub number: i32,
    /// Its size in bytes.
    pub size: u64,
    /// Hex MD5 of the part.
    pub etag: String,
}

/// The checksums of a multipart object's parts, one per entry of its [`ObjectMeta::parts`], in
/// the same order: what GetObjectAttributes lists under `ObjectParts`. Kept in a table of its
/// own (`pc/BLOB`, by the blob the parts were assembled into) rather than in [`PartSummary`],
/// whose shape is part of every object record and log entry the previous release reads; the
/// blob id names exactly one version, and goes when that version's bytes are freed.
///
/// A stored record (`codec::Record`, new in format 2 and written only once the cluster raised
/// its format): to change its shape, raise its `FORMAT` and write the conversion.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartChecksums {
    /// Each part's checksums as its UploadPart verified or computed them (base64).
    pub parts: Vec<Checksums>,
}

/// One version of an object: what it is, and which nodes hold its bytes.
///
/// A stored record (`codec::Record`): to add a field, raise its `FORMAT`, keep the old
/// shape and write its conversion there; never change this shape in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    /// The blob holding the bytes; empty when the bytes are inline.
    pub blob: BlobId,
    /// The bytes themselves, for small objects: they travel in the Raft log entry, so a small
    /// PUT costs one (group-committed) log flush instead of a blob file, a directory sync and a
    /// log flush, and every node holds them as soon as it applies the entry.
    pub inline: Option<Vec<u8>>,
    /// Size in bytes.
    pub size: u64,
    /// ETag without quotes: hex MD5, or `md5-of-part-md5s-N` for multipart objects.
    pub etag: String,
    /// When this version was written.
    pub last_modified: UnixMillis,
    /// HTTP metadata.
    pub headers: ContentHeaders,
    /// Object tags, in the order the client gave them.
    pub tags: Vec<(String, String)>,
    /// Checksums the client asked for (verified before the write was accepted).
    pub checksums: Checksums,
    /// Parts, for objects made by multipart upload; empty otherwise.
    pub parts: Vec<PartSummary>,
    /// Nodes that hold the blob, with the time each got it.
    pub holders: BTreeMap<NodeId, UnixMillis>,
}

/// What a listing shows of an object (ListObjects, ListObjectVersions): read from the stored
/// [`ObjectMeta`] without decoding the rest of it, above all not an inline body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    /// Size in bytes.
    pub size: u64,
    /// ETag without quotes.
    pub etag: String,
    /// When this version was written.
    pub last_modified: UnixMillis,
}

/// The leading fields of a stored [`ObjectMeta`], in its order: bincode reads fields in
/// sequence and leaves the rest unread, so a listing decodes only these. Whoever changes the
/// fields of `ObjectMeta` (or how its records are stored) changes this with it; the test
/// `listed_objects_match_their_metadata` in `tables` fails otherwise.
#[derive(Deserialize)]
pub(crate) struct ObjectMetaHead {
    /// [`ObjectMeta::blob`], unused.
    _blob: BlobId,
    /// [`ObjectMeta::inline`], read past without keeping it.
    _inline: Option<SkippedBytes>,
    /// [`ObjectMeta::size`].
    size: u64,
    /// [`ObjectMeta::etag`].
    etag: String,
    /// [`ObjectMeta::last_modified`].
    last_modified: UnixMillis,
}

impl From<ObjectMeta> for ObjectMetaHead {
    fn from(meta: ObjectMeta) -> Self {
        Self { _blob: meta.blob, _inline: None, size: meta.size, etag: meta.etag, last_modified: meta.last_modified }
    }
}

impl From<ObjectMetaHead> for ListedObject {
    fn from(head: ObjectMetaHead) -> Self {
        Self { size: head.size, etag: head.etag, last_modified: head.last_modified }
    }
}

/// A byte string read and dropped (as bincode stores a `Vec<u8>`: a length, then the bytes).
pub(crate) struct SkippedBytes;

impl<'de> Deserialize<'de> for SkippedBytes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// Accepts the bytes and keeps nothing.
        struct Skip;
        impl<'de> serde::de::Visitor<'de> for Skip {
            type Value = SkippedBytes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, _: &[u8]) -> Result<SkippedBytes, E> {
                Ok(SkippedBytes)
            }
            fn visit_byte_buf<E: serde::de::Error>(self, _: Vec<u8>) -> Result<SkippedBytes, E> {
                Ok(SkippedBytes)
            }
        }
        deserializer.deserialize_byte_buf(Skip)
    }
}

/// A multipart upload in progress. Its parts live on the disk of the node that receives them;
/// the upload itself is replicated so any node can list it.
///
/// A stored record (`codec::Record`): to add a field, raise its `FORMAT`, keep the old
/// shape and write its conversion there; never change this shape in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultipartUpload {
    /// Upload id handed to the client.
    pub id: String,
    /// Target bucket.
    pub bucket: String,
    /// Target key.
    pub key: String,
    /// When it was started.
    pub initiated: UnixMillis,
    /// The node holding the parts.
    pub node: NodeId,
    /// Metadata for the object to be, from CreateMultipartUpload.
    pub headers: ContentHeaders,
    /// Tags for the object to be.
    pub tags: Vec<(String, String)>,
    /// Checksum algorithm the client declared, if any (e.g. `CRC32`).
    pub checksum_algorithm: Option<String>,
}

/// An S3 access key.
///
/// A stored record (`codec::Record`): to add a field, raise its `FORMAT`, keep the old
/// shape and write its conversion there; never change this shape in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKey {
    /// The public access key id.
    pub id: String,
    /// The secret. SigV4 needs the secret itself on the verifying side (it is an HMAC key),
    /// so it cannot be stored as a one-way hash the way share tokens are.
    pub secret: String,
    /// A human name for the key.
    pub name: String,
    /// When it was created.
    pub created: UnixMillis,
}

/// What the cinema's Auth service says about a person: the part of a [`User`] that a sync or
/// a sign-in replaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserProfile {
    /// The Auth service's stable user id (the `sub` of the user's tokens).
    pub id: String,
    /// What the person signs in with; shown when picking whom to share with.
    pub login: String,
    /// Display name.
    pub name: String,
    /// E-mail address (may be empty).
    pub email: String,
    /// Roles at the Auth service; `admin` sees and manages everything in the panel.
    pub roles: Vec<String>,
}

/// A person known to the panel. Synced from the Auth service and upserted at each sign-in, so
/// shares can name users who have never signed in. Users removed upstream are kept, marked
/// deleted, so shares and history that name them stay readable.
///
/// A stored record (`codec::Record`): to add a field, raise its `FORMAT`, keep the old
/// shape and write its conversion there; never change this shape in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The upstream profile.
    pub profile: UserProfile,
    /// When the panel first learned of the user.
    pub first_seen: UnixMillis,
    /// When the profile last changed (or the user came back after a deletion).
    pub updated: UnixMillis,
    /// The last sign-in through this panel, if any.
    pub last_sign_in: Option<UnixMillis>,
    /// When a sync found the user gone upstream; `None` while the user exists.
    pub deleted: Option<UnixMillis>,
}

/// What a named user may do with a file shared with them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SharePermission {
    /// See and download it.
    Read,
    /// Also upload a new version of it.
    Write,
}

impl std::fmt::Display for SharePermission {
    /// `read` or `write`: the one spelling the API, the history and the logs use.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Read => "read",
            Self::Write => "write",
        })
    }
}

/// Where a share stands at some instant. One definition, used by apply (which decides whether
/// a use is allowed) and by the pages and API (which show it), so they cannot disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareState {
    /// Neither revoked, expired nor out of downloads: it may be opened.
    Active,
    /// Past its expiry.
    Expired,
    /// A public link that used up its downloads.
    Exhausted,
    /// Revoked (by a person, or because its file or bucket was deleted).
    Revoked,
}

impl ShareState {
    /// The lower-case name the API shows.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Expired => "expired",
            Self::Exhausted => "exhausted",
            Self::Revoked => "revoked",
        }
    }
}

/// Who a share is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShareAudience {
    /// Anyone with the link `/s/{token}`.
    Public {
        /// SHA-256 (hex) of the link's token: the token itself is never stored.
        token_sha256: String,
        /// argon2id PHC string of the link's password, when it has one.
        password_hash: Option<String>,
        /// Most downloads the link allows; `None`: no limit.
        max_downloads: Option<u64>,
    },
    /// One user of the synced user list, signed in.
    User {
        /// The user's id.
        user: String,
        /// What they may do.
        permission: SharePermission,
    },
}

/// A file shared by its owner (or an admin). Replicated, so a link works on every node and a
/// revocation holds everywhere as soon as it is applied.
///
/// A stored record (`codec::Record`): to add a field, raise its `FORMAT`, keep the old
/// shape and write its conversion there; never change this shape in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    /// Public id, for listing and revoking (random; not the link's token).
    pub id: String,
    /// Bucket of the file.
    pub bucket: String,
    /// Key of the file.
    pub key: String,
    /// The user who created it.
    pub created_by: String,
    /// When it was created.
    pub created: UnixMillis,
    /// When it stops working; `None`: never.
    pub expires: Option<UnixMillis>,
    /// When it was revoked; a revoked share never works again.
    pub revoked: Option<UnixMillis>,
    /// Downloads through the link so far (public links).
    pub downloads: u64,
    /// Who it is for.
    pub audience: ShareAudience,
}

/// Local work a node owes after applying the log. Written in the same atomic batch as the
/// placement change that caused it, so a crash can never lose it.
///
/// A stored record (`codec::Record`): to add a field, raise its `FORMAT`, keep the old
/// shape and write its conversion there; never change this shape in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkItem {
    /// Delete a blob that no version refers to any more.
    DropBlob {
        /// The blob to delete.
        blob: BlobId,
    },
    /// Copy an object's blob from a node that holds it, then report it through Raft.
    Pull {
        /// Bucket of the object.
        bucket: String,
        /// Key of the object.
        key: String,
        /// The blob of the version to copy (a newer version makes the pull moot).
        blob: BlobId,
    },
    /// Delete the parts of a multipart upload that was completed or aborted.
    DropUploadParts {
        /// The upload id.
        upload: String,
    },
}

impl Share {
    /// Where the share stands at `at`: revoked wins over expired, which wins over exhausted.
    #[must_use]
    pub fn state(&self, at: UnixMillis) -> ShareState {
        let exhausted = match &self.audience {
            ShareAudience::Public { max_downloads, .. } => max_downloads.is_some_and(|max| self.downloads >= max),
            ShareAudience::User { .. } => false,
        };
        if self.revoked.is_some() {
            ShareState::Revoked
        } else if self.expires.is_some_and(|e| e <= at) {
            ShareState::Expired
        } else if exhausted {
            ShareState::Exhausted
        } else {
            ShareState::Active
        }
    }
}

/// Who an S3 access key belongs to: what it may do is decided per owner (the S3 gateway
/// authorizes copy sources per key owner).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyOwner {
    /// A person known to the panel (the Auth service's user id).
    User(String),
    /// A service of the cinema, or an operator's tool (its name).
    Service(String),
}

impl std::fmt::Display for KeyOwner {
    /// `user:ID` or `service:NAME`: the one spelling the CLI, the API and the logs use.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::User(id) => write!(f, "user:{id}"),
            Self::Service(name) => write!(f, "service:{name}"),
        }
    }
}

/// A string that is not a key owner.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a key owner (user:ID or service:NAME)")]
pub struct BadKeyOwner(String);

impl std::str::FromStr for KeyOwner {
    type Err = BadKeyOwner;

    /// The [`Display`](std::fmt::Display) form back: `user:ID` or `service:NAME`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid = |part: &str| !part.is_empty() && !part.chars().any(char::is_control);
        match s.split_once(':') {
            Some(("user", id)) if valid(id) => Ok(Self::User(id.to_owned())),
            Some(("service", name)) if valid(name) => Ok(Self::Service(name.to_owned())),
            _ => Err(BadKeyOwner(s.to_owned())),
        }
    }
}

/// What Meridian knows about an access key beyond the [`AccessKey`] itself, in a record of its
/// own (`a/` table): [`AccessKey`] is bincode in the log and the `k/` table, so it cannot grow
/// fields. A key without this record is a key made before it existed: enabled, owner unknown.
///
/// A stored record (`codec::Record`): to add a field, raise its `FORMAT`, keep the old
/// shape and write its conversion there; never change this shape in place.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Who the key belongs to; `None` for a key created without one (then it counts as a
    /// service's key, see [`AccessKeyInfo::owner`]).
    pub owner: Option<KeyOwner>,
    /// When the key was disabled; a disabled key signs nothing until it is enabled again.
    pub disabled: Option<UnixMillis>,
}

/// An access key as listings show it: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKeyInfo {
    /// The public access key id.
    pub id: String,
    /// Its human name.
    pub name: String,
    /// When it was created (0 for the keys a node installs from its config).
    pub created: UnixMillis,
    /// Who it belongs to. A key with no recorded owner (made before owners existed, or
    /// installed from the config) is the service named after the key's name.
    pub owner: KeyOwner,
    /// Whether the owner was recorded (false: the legacy fallback above).
    pub owner_recorded: bool,
    /// When it was disabled, if it is.
    pub disabled: Option<UnixMillis>,
}

impl AccessKeyInfo {
    /// The listing entry of `key` with its record, if it has one.
    #[must_use]
    pub fn new(key: &AccessKey, record: Option<&KeyRecord>) -> Self {
        let recorded = record.and_then(|r| r.owner.clone());
        Self {
            id: key.id.clone(),
            name: key.name.clone(),
            created: key.created,
            owner_recorded: recorded.is_some(),
            owner: recorded.unwrap_or_else(|| KeyOwner::Service(key.name.clone())),
            disabled: record.and_then(|r| r.disabled),
        }
    }
}

/// A bucket's versioning state (S3 PutBucketVersioning), kept in a record of its own (`y/`
/// table) beside the [`Bucket`], which cannot grow fields in place. A bucket without this record
/// was never versioned: it behaves exactly as before versioning existed.
///
/// A stored record (`codec::Record`) new in format 2: written only once the cluster raised its
/// format, so no node of the previous release ever reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VersioningState {
    /// Every write makes a new version with its own id; deletes leave delete markers.
    Enabled,
    /// Writes replace the `null` version only; versions made while enabled are kept.
    Suspended,
}

/// The id S3 gives the version written while a bucket was unversioned or suspended.
pub const NULL_VERSION: &str = "null";

/// A version of an object that is not the current one, or a delete marker (current or not),
/// stored under `r/` (see `tables`). The current version itself stays in `o/`, as it always was,
/// so every reader of current objects works unchanged.
///
/// A stored record (`codec::Record`) new in format 2 (written only after the raise).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectVersion {
    /// The version id S3 clients see: 24 hex digits, or [`NULL_VERSION`].
    pub id: String,
    /// The version itself; `None` for a delete marker.
    pub meta: Option<ObjectMeta>,
    /// When it was written (a delete marker has no metadata of its own to say so).
    pub at: UnixMillis,
}

/// Which version of a key is the latest one, for keys written while their bucket was versioned
/// (`q/` table). The latest is the `o/` object when there is one, else the delete marker stored
/// under `sort` in `r/`. A key without this record but with an `o/` object has the `null`
/// version as its latest (written before versioning was enabled).
///
/// A stored record (`codec::Record`) new in format 2 (written only after the raise).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatestVersion {
    /// Its version id (as [`ObjectVersion::id`]).
    pub id: String,
    /// Its position among the key's versions (`r/` key suffix): 24 hex digits that sort newest
    /// first. Equal to `id` except for `null` versions, whose id says nothing of their age.
    pub sort: String,
}

impl crate::codec::Record for VersioningState {
    const NAME: &'static str = "bucket versioning";
    const FORMAT: u16 = 2;
}

impl crate::codec::Record for ObjectVersion {
    const NAME: &'static str = "object version";
    const FORMAT: u16 = 2;
}

impl crate::codec::Record for LatestVersion {
    const NAME: &'static str = "latest version";
    const FORMAT: u16 = 2;
}

/// Whether `id` has the shape of a version id this store hands out (24 lowercase hex digits) or
/// is `null`: anything else is refused before it reaches a table key.
#[must_use]
pub fn valid_version_id(id: &str) -> bool {
    id == NULL_VERSION || (id.len() == 24 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

crate::codec::record! {
    Bucket => "bucket",
    ObjectMeta => "object metadata",
    MultipartUpload => "multipart upload",
    AccessKey => "access key",
    User => "user",
    Share => "share",
    WorkItem => "work item",
    KeyRecord => "key record",
    PartChecksums => "part checksums",
}
