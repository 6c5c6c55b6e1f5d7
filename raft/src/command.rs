//! What the log carries: commands proposed by the gateways, and what applying them produced.

use serde::{Deserialize, Serialize};

use crate::acl::{Acl, BucketAccessChange};
use crate::cors::BucketCors;
use crate::event::{Actor, Cursor};
#[cfg(doc)]
use crate::model::KeyRecord;
use crate::model::{
    AccessKey, Bucket, KeyOwner, MultipartUpload, ObjectMeta, PartChecksums, Share, UnixMillis, UserProfile,
    VersioningState,
};
use crate::node_id::NodeId;
use crate::object_lock::{BucketObjectLock, Retention, VersionLock};

/// A change to the placement database. Every decision that depends on current state (does the
/// bucket exist, is it empty, does the ETag match) is taken while applying, so it is the same
/// on every replica and free of races between nodes.
///
/// A stored record (`codec::Record`, inside every log entry): add variants only at the
/// end; to change a variant's fields, raise `FORMAT`, keep the old shape and write its conversion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
// A command is built once and moved into the log; boxing the large variant would only add an
// allocation.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Create a bucket.
    CreateBucket(Bucket),
    /// Delete an empty bucket.
    DeleteBucket {
        /// Bucket name.
        name: String,
    },
    /// Write a version of an object (PUT, copy, multipart completion).
    PutObject {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
        /// The new version.
        meta: ObjectMeta,
        /// Apply only if the current version matches.
        condition: WriteCondition,
        /// The multipart upload this write completes, removed in the same step.
        completes_upload: Option<String>,
    },
    /// Delete objects (DeleteObject, DeleteObjects). Missing keys are not an error.
    DeleteObjects {
        /// Bucket name.
        bucket: String,
        /// Keys to delete.
        keys: Vec<String>,
    },
    /// Replace an object's tags.
    SetTags {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
        /// The new tag set (empty removes all).
        tags: Vec<(String, String)>,
    },
    /// Start a multipart upload.
    CreateUpload(MultipartUpload),
    /// Abort a multipart upload (its parts are then removed by the node holding them).
    AbortUpload {
        /// Upload id.
        id: String,
    },
    /// Add an S3 access key.
    PutAccessKey(AccessKey),
    /// Several commands proposed concurrently, carried by one log entry so they share one
    /// disk flush (openraft 0.9 flushes each append before it takes the next). Applied in
    /// order, each exactly as if it had its own entry.
    Batch(Vec<Command>),
    /// A node now holds an object's blob (replication reports it through this).
    ReplicaAdded {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
        /// The blob the node holds (ignored if the object moved on to another version).
        blob: String,
        /// The node.
        node: NodeId,
        /// When it got it.
        at: UnixMillis,
    },
    /// A command proposed on someone's behalf: applied exactly as `command`, while the event bus
    /// reports `actor` and `at` for what it did. An envelope rather than a field on each command,
    /// so every command (and the admin commands to come) can carry it without changing shape.
    Attributed {
        /// Who asked for it (the access key of the S3 request, a service), when known.
        actor: Option<Actor>,
        /// When it was asked for, on the proposing node's clock (events need a time, and deletes
        /// carry none of their own).
        at: UnixMillis,
        /// The command itself (neither a batch nor another envelope).
        command: Box<Command>,
    },
    /// The leader delivered a webhook subscription's events up to `cursor`: a new leader resumes
    /// behind it. Never moves a subscription backwards (a late report of a deposed leader).
    WebhookDelivered {
        /// The subscription's name in `cluster.toml`.
        subscription: String,
        /// The last event delivered.
        cursor: Cursor,
    },
    /// A node found its copy of an object's blob missing or corrupt (the scrub reports it
    /// through this, after moving a corrupt copy aside): it stops being listed as a holder and
    /// owes itself a pull of the blob again. Refused (`PreconditionFailed`) when the node is the
    /// only holder: unlisting the last copy would leave nothing to pull from, and its damaged
    /// bytes are all that is left to recover from by hand.
    ReplicaLost {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
        /// The blob the node lost (ignored if the object moved on to another version, whose
        /// overwrite already dropped it).
        blob: String,
        /// The node.
        node: NodeId,
        /// When it found out.
        at: UnixMillis,
    },
    /// Users seen at the Auth service (by a sync or a sign-in): created, or their profile
    /// replaced; a user marked deleted comes back. Unchanged profiles keep their `updated` time.
    UpsertUsers {
        /// The profiles.
        users: Vec<UserProfile>,
        /// When they were seen (chosen by the proposer).
        at: UnixMillis,
        /// Set for a sign-in: also records `at` as the user's last sign-in.
        sign_in: bool,
    },
    /// Users a sync no longer found at the Auth service: marked deleted at `at`, not removed.
    /// Unknown or already deleted ids are left as they are.
    MarkUsersDeleted {
        /// The user ids.
        ids: Vec<String>,
        /// When the sync found them gone.
        at: UnixMillis,
    },
    /// Create a share (its id and, for a link, its token hash are new).
    CreateShare(Share),
    /// Revoke a share at once. Already revoked or unknown: rejected (`NoSuchKey`).
    RevokeShare {
        /// The share's id.
        id: String,
        /// The revocation time, from the proposer's clock (apply never reads a clock).
        at: UnixMillis,
    },
    /// A public link was used to download: counted, unless it was revoked, expired at `at` or
    /// out of downloads meanwhile (rejected `PreconditionFailed`; unknown: `NoSuchKey`). Decided
    /// while applying, so two nodes serving the last allowed download cannot both succeed.
    UseShare {
        /// The share's id.
        id: String,
        /// The download's time, from the proposer's clock: expiry is judged against it, so
        /// every node decides alike.
        at: UnixMillis,
        /// The downloader's address, for the history.
        client: String,
    },
    /// Drop the retained events up to and including `through` (the oldest first, at most a
    /// bounded number per entry). The leader proposes it from its `[events]` retention; the
    /// history is trimmed only by this command, so every node keeps the same events whatever
    /// its own configuration says. A cursor at or behind what is already trimmed changes nothing.
    /// After the older variants, so log entries and snapshots written before it still decode.
    TrimEvents {
        /// The newest event to drop.
        through: Cursor,
    },
    /// [`Command::Attributed`] plus the address of the client whose request caused the command,
    /// for the history (S3 writes). A variant of its own, and the last one, because log entries
    /// and snapshots are bincode, which is not self-describing: a field added to `Attributed`
    /// would make every entry written before it undecodable, while a new variant leaves them
    /// decoding as they did.
    AttributedFrom {
        /// Who asked for it, when known (see [`Command::Attributed`]).
        actor: Option<Actor>,
        /// When it was asked for, on the proposing node's clock.
        at: UnixMillis,
        /// The client's IP address as the receiving node saw it.
        client: String,
        /// The command itself (neither a batch nor another envelope).
        command: Box<Command>,
    },
    /// Add an S3 access key with its owner (the key and its [`KeyRecord`] in one step).
    /// Refused (`PreconditionFailed`) when the id is taken: a new key never replaces another.
    /// After the older variants, so entries written before it still decode.
    CreateAccessKey {
        /// The key.
        key: AccessKey,
        /// Who it belongs to.
        owner: KeyOwner,
    },
    /// Disable an access key (it signs nothing from the moment this is applied) or enable it
    /// again. Unknown id: rejected (`NoSuchKey`).
    SetAccessKeyDisabled {
        /// The access key id.
        id: String,
        /// When it was disabled; `None` enables it.
        disabled: Option<UnixMillis>,
    },
    /// Delete an access key and its record. Unknown id: rejected (`NoSuchKey`).
    DeleteAccessKey {
        /// The access key id.
        id: String,
    },
    /// Downloads through a public link without a download limit, counted on one node since its
    /// last flush: added to the link's count, with one event for all of them (anonymous visitors
    /// would otherwise cost one log entry and one event each). Counted even if the link was
    /// revoked or expired meanwhile: the downloads were handed out before that. Unknown:
    /// rejected (`NoSuchKey`). After the older variants, so everything written before it still decodes.
    CountShareUses {
        /// The share's id.
        id: String,
        /// When the count was flushed.
        at: UnixMillis,
        /// How many downloads.
        count: u64,
        /// The latest downloader's address, for the history.
        client: String,
    },
    /// Raise the format every node writes records in to `format` (see `codec` and
    /// `docs/upgrade.md`). Proposed by the leader alone, once every member has said it reads
    /// that format; nodes of the previous release never receive it, since they are no longer
    /// members by then, which is why a new variant needs no new format here. A format lower than
    /// the active one is ignored (the format only goes up).
    RaiseFormat {
        /// The new active format.
        format: u16,
    },
    /// DeleteBucket as S3 means it: a bucket that holds no objects goes, and its unfinished
    /// multipart uploads are aborted in the same step (their parts dropped by the nodes holding
    /// them). [`Command::DeleteBucket`] refuses such a bucket and stays as it was, since nodes of
    /// the previous release apply it that way. New in format 2: proposed only once the cluster
    /// writes it, so no node of the previous release receives it.
    DeleteBucketAbortingUploads {
        /// Bucket name.
        name: String,
    },
    /// Set a bucket's CORS configuration (PutBucketCors), replacing any before it. Unknown
    /// bucket: rejected (`NoSuchBucket`). New in format 2, proposed only once it is written.
    PutBucketCors {
        /// Bucket name.
        bucket: String,
        /// The configuration.
        cors: BucketCors,
    },
    /// Remove a bucket's CORS configuration (DeleteBucketCors); none is not an error. Unknown
    /// bucket: rejected (`NoSuchBucket`). New in format 2, proposed only once it is written.
    DeleteBucketCors {
        /// Bucket name.
        bucket: String,
    },
    /// Set a bucket's versioning state (S3 PutBucketVersioning). Format 2: proposed only once
    /// the cluster's active format is 2 (no node of the previous release is a member then).
    /// Unknown bucket: rejected (`NoSuchBucket`).
    PutBucketVersioning {
        /// Bucket name.
        bucket: String,
        /// The new state.
        state: VersioningState,
    },
    /// Delete one version (or delete marker) of a key for good (S3 DeleteObject with
    /// `versionId`): its blob is freed; deleting the latest makes the next newest the latest.
    /// A version that does not exist is not an error (the outcome lists nothing). Format 2,
    /// gated like [`Command::PutBucketVersioning`].
    DeleteVersion {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
        /// The version id (valid shape, checked by the gateway).
        version_id: String,
    },
    /// CreateBucket with `x-amz-bucket-object-lock-enabled: true`: the bucket, its versioning
    /// enabled and its Object Lock configuration (no default retention) in one step, so a
    /// refused creation (the name is taken) changes nothing of the existing bucket. Format 2.
    CreateBucketWithObjectLock(Bucket),
    /// Set a bucket's Object Lock configuration (PutObjectLockConfiguration): enables lock on a
    /// bucket whose versioning is enabled (else `InvalidBucketState`), or replaces its default
    /// retention. Format 2.
    PutObjectLockConfiguration {
        /// Bucket name.
        bucket: String,
        /// The configuration.
        config: BucketObjectLock,
    },
    /// A write (`PutObject`) or an upload start (`CreateUpload`) with the lock headers of its
    /// request: the version it makes gets `lock` (an upload keeps it for the version its
    /// completion makes). Refused (`ObjectLockNotEnabled`) in a bucket without Object Lock.
    /// Format 2; it wraps the command inside any `Attributed` envelope, never one.
    WithObjectLock {
        /// The lock asked for (a retention without one falls back to the bucket's default).
        lock: VersionLock,
        /// The write.
        command: Box<Command>,
    },
    /// Set or remove a version's retention (PutObjectRetention), judged against its current
    /// retention at `now` (see `object_lock::retention_change_allowed`): refused with
    /// `ObjectLocked`. Unknown version: `NoSuchKey`. Format 2.
    PutObjectRetention {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
        /// The version (the gateway resolves "the latest" to its id).
        version_id: String,
        /// The new retention; `None` removes it.
        retention: Option<Retention>,
        /// The request's time on the proposer's clock: apply never reads a clock.
        now: UnixMillis,
        /// Whether the request bypasses GOVERNANCE (set only for keys allowed to).
        bypass_governance: bool,
    },
    /// Put a legal hold on a version or lift it (PutObjectLegalHold). Unknown version:
    /// `NoSuchKey`; a bucket without lock: `ObjectLockNotEnabled`. Format 2.
    PutObjectLegalHold {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
        /// The version (resolved by the gateway).
        version_id: String,
        /// Whether the hold is on.
        on: bool,
    },
    /// [`Command::DeleteVersion`] judged against the version's lock at `now`: a version under
    /// a legal hold or an unexpired retention (GOVERNANCE without the bypass) is refused with
    /// `ObjectLocked`, on every replica alike. Format 2.
    DeleteVersionAt {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
        /// The version id (valid shape, checked by the gateway).
        version_id: String,
        /// The request's time on the proposer's clock.
        now: UnixMillis,
        /// Whether the request bypasses GOVERNANCE (set only for keys allowed to).
        bypass_governance: bool,
    },
    /// Change one part of a bucket's access settings (its ACL, object ownership, public access
    /// block or policy; see [`BucketAccessChange`]). Unknown bucket: rejected (`NoSuchBucket`).
    /// New in format 2, proposed only once it is written.
    SetBucketAccess {
        /// Bucket name.
        bucket: String,
        /// The part that changes.
        change: BucketAccessChange,
    },
    /// Set the ACL of a key's current object (PutObjectAcl). Unknown key: rejected
    /// (`NoSuchKey`). New in format 2, proposed only once it is written.
    PutObjectAcl {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
        /// The ACL.
        acl: Acl,
    },
    /// `command` (a [`Command::CreateBucket`], [`Command::PutObject`] or
    /// [`Command::CreateUpload`]) with the ACL its request asked for (`x-amz-acl`,
    /// `x-amz-grant-*`), set in the same step when it applies, so the thing is never visible
    /// with another ACL. New in format 2, proposed only once it is written.
    WithAcl {
        /// The ACL the bucket, object or upload gets.
        acl: Acl,
        /// The command that creates it.
        command: Box<Command>,
    },
    /// `command` (a [`Command::PutObject`] of a multipart object, possibly inside
    /// [`Command::WithAcl`] and [`Command::WithObjectLock`]) with the checksums of the object's
    /// parts, stored (`pc/`, by the object's blob) in the same step when the write applies, so
    /// GetObjectAttributes lists them through every region. New in format 2, proposed only once
    /// it is written; before that the write goes without them.
    WithPartChecksums {
        /// The checksums, one per part of the object, in part order.
        parts: PartChecksums,
        /// The write.
        command: Box<Command>,
    },
    /// Replace the tags of one version of a key, current or not (PutObjectTagging and
    /// DeleteObjectTagging with `versionId`). Unknown version or a delete marker: rejected
    /// (`NoSuchKey`; the gateway answers NoSuchVersion or 405 before proposing). New in format
    /// 2, proposed only once it is written.
    SetVersionTags {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
        /// The version id.
        version_id: String,
        /// The new tags (empty: none).
        tags: Vec<(String, String)>,
    },
    /// Set the ACL of one version of a key, current or not (PutObjectAcl with `versionId`).
    /// Unknown version or a delete marker: rejected (`NoSuchKey`). New in format 2, proposed
    /// only once it is written.
    PutVersionAcl {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
        /// The version id.
        version_id: String,
        /// The ACL.
        acl: Acl,
    },
}

impl Command {
    /// Bytes of object data the command carries inline (its bulk in a log entry).
    pub(crate) fn inline_bytes(&self) -> usize {
        match self {
            Self::PutObject { meta, .. } => meta.inline.as_ref().map_or(0, Vec::len),
            Self::Attributed { command, .. }
            | Self::AttributedFrom { command, .. }
            | Self::WithObjectLock { command, .. }
            | Self::WithAcl { command, .. }
            | Self::WithPartChecksums { command, .. } => command.inline_bytes(),
            Self::Batch(commands) => commands.iter().map(Self::inline_bytes).sum(),
            _ => 0,
        }
    }

    /// Wraps the command with who asked for it and when (see [`Command::Attributed`]).
    #[must_use]
    pub fn attributed(self, actor: Option<Actor>, at: UnixMillis) -> Self {
        Self::Attributed { actor, at, command: Box::new(self) }
    }

    /// Wraps the command with who asked for it, when, and from which address (see
    /// [`Command::AttributedFrom`]); without an address, the plain [`Command::Attributed`], so
    /// such entries stay readable by nodes that predate the address.
    #[must_use]
    pub fn attributed_from(self, actor: Option<Actor>, at: UnixMillis, client: Option<String>) -> Self {
        match client {
            Some(client) => Self::AttributedFrom { actor, at, client, command: Box::new(self) },
            None => self.attributed(actor, at),
        }
    }
}

/// A precondition on the current version of the key being written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteCondition {
    /// Always write.
    #[default]
    None,
    /// Only if no version exists (`If-None-Match: *`).
    Absent,
    /// Only if the current version has this ETag (`If-Match`).
    ETagIs(String),
}

/// The result of applying one command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandOutcome {
    /// Applied, with nothing more to report.
    Done,
    /// Applied: these keys existed and were deleted (DeleteObjects reports them).
    Deleted(Vec<String>),
    /// Not applied, because of the state it met.
    Rejected(Rejection),
    /// The outcomes of a [`Command::Batch`], in order.
    Batch(Vec<CommandOutcome>),
    /// Applied in a versioned bucket: the versions written or removed, in order (a PUT's new
    /// version, the delete markers of a delete, the version a [`Command::DeleteVersion`]
    /// removed). Only ever the outcome of a command on a versioned bucket, which exists only
    /// once the cluster raised its format to 2, so no node of the previous release receives it.
    Versions(Vec<VersionTouched>),
}

/// A version a command wrote or removed, as the S3 answer reports it (`x-amz-version-id`,
/// `x-amz-delete-marker`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionTouched {
    /// Object key.
    pub key: String,
    /// Its version id.
    pub version_id: String,
    /// Whether it is a delete marker.
    pub delete_marker: bool,
}

/// Why the state machine refused a command. Maps one to one onto S3 error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Rejection {
    /// The bucket does not exist.
    #[error("the specified bucket does not exist")]
    NoSuchBucket,
    /// The bucket exists already.
    #[error("the bucket already exists and is owned by you")]
    BucketAlreadyOwnedByYou,
    /// The bucket still holds objects or uploads.
    #[error("the bucket is not empty")]
    BucketNotEmpty,
    /// The key does not exist.
    #[error("the specified key does not exist")]
    NoSuchKey,
    /// The multipart upload does not exist (completed or aborted).
    #[error("the specified multipart upload does not exist")]
    NoSuchUpload,
    /// A write condition did not hold.
    #[error("at least one of the preconditions did not hold")]
    PreconditionFailed,
    /// The version is protected by Object Lock (retention or legal hold). Only the answer to
    /// commands of format 2, like the two below, so no node of the previous release receives it.
    #[error("the object version is protected by Object Lock")]
    ObjectLocked,
    /// The bucket's state does not allow the change (lock without versioning enabled,
    /// suspending versioning of a bucket with lock).
    #[error("the bucket's state does not allow this operation")]
    InvalidBucketState,
    /// Object Lock settings on a bucket without Object Lock.
    #[error("the bucket does not have Object Lock enabled")]
    ObjectLockNotEnabled,
}

crate::codec::record! { Command => "command", CommandOutcome => "command outcome" }

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode, encode};
    use crate::event::EventKind;

    /// New commands and event kinds go last: log entries, snapshots and stored events written
    /// before them keep decoding to what they were (bincode numbers variants by position).
    #[test]
    fn new_variants_keep_the_old_encodings() {
        // `RevokeShare { id: "s", at: 5 }` as the previous version wrote it.
        let old: Command = decode(&[16, 1, b's', 10]).expect("decodes");
        assert_eq!(old, Command::RevokeShare { id: "s".into(), at: 5 });
        let trim = encode(&Command::TrimEvents { through: Cursor { index: 1, sub: 0 } }).expect("encode");
        assert_eq!(trim[0], 18, "TrimEvents comes after every older command");
        let lost = EventKind::ObjectReplicaLost { bucket: String::new(), key: String::new(), region: String::new() };
        assert_eq!(crate::codec::encode_body(&lost).expect("encode")[0], 9, "ObjectReplicaLost is the last event kind");
    }

    /// Log entries written before `AttributedFrom` existed decode as they did: the envelope's
    /// bytes (bincode: variant index, then fields) are fixed here, and the new variant comes last.
    #[test]
    fn envelopes_written_before_the_client_address_still_decode() {
        let old_bytes = [10u8, 0, 10, 1, 1, b'b'];
        let decoded: Command = crate::codec::decode(&old_bytes).expect("decodes");
        assert_eq!(decoded, Command::DeleteBucket { name: "b".into() }.attributed(None, 5));
        assert_eq!(crate::codec::encode_as(&decoded, crate::codec::LEGACY_FORMAT).expect("encodes"), old_bytes);
        let from = Command::DeleteBucket { name: "b".into() }.attributed_from(None, 5, Some("192.0.2.1".into()));
        let bytes = crate::codec::encode_body(&from).expect("encodes");
        assert_eq!(bytes[0], 19, "AttributedFrom is the last variant");
        assert_eq!(crate::codec::decode::<Command>(&bytes).expect("decodes"), from);
        let delete = crate::codec::encode_body(&Command::DeleteAccessKey { id: "k".into() }).expect("encodes");
        assert_eq!(delete[0], 22, "the access key commands come after AttributedFrom");
        let counted = Command::CountShareUses { id: "s".into(), at: 1, count: 2, client: "c".into() };
        assert_eq!(
            crate::codec::encode_body(&counted).expect("encodes")[0],
            23,
            "CountShareUses comes after the access key commands"
        );
        assert_eq!(
            crate::codec::encode_body(&Command::RaiseFormat { format: 1 }).expect("encodes")[0],
            24,
            "RaiseFormat keeps its place: every variant before it decodes as release a01dacd wrote it"
        );
        // Format 2's commands come after it, in this order, for good.
        let format_2 = [
            Command::DeleteBucketAbortingUploads { name: "b".into() },
            Command::PutBucketCors { bucket: "b".into(), cors: BucketCors { rules: Vec::new() } },
            Command::DeleteBucketCors { bucket: "b".into() },
            Command::PutBucketVersioning { bucket: "b".into(), state: crate::model::VersioningState::Enabled },
            Command::DeleteVersion { bucket: "b".into(), key: "k".into(), version_id: "v".into() },
            Command::CreateBucketWithObjectLock(crate::model::Bucket {
                name: "b".into(),
                created: 0,
                region: "r".into(),
            }),
            Command::PutObjectLockConfiguration { bucket: "b".into(), config: BucketObjectLock::default() },
            Command::WithObjectLock {
                lock: VersionLock::default(),
                command: Box::new(Command::DeleteBucket { name: "b".into() }),
            },
            Command::PutObjectRetention {
                bucket: "b".into(),
                key: "k".into(),
                version_id: "v".into(),
                retention: None,
                now: 0,
                bypass_governance: false,
            },
            Command::PutObjectLegalHold { bucket: "b".into(), key: "k".into(), version_id: "v".into(), on: true },
            Command::DeleteVersionAt {
                bucket: "b".into(),
                key: "k".into(),
                version_id: "v".into(),
                now: 0,
                bypass_governance: false,
            },
            Command::SetBucketAccess { bucket: "b".into(), change: BucketAccessChange::Policy(None) },
            Command::PutObjectAcl { bucket: "b".into(), key: "k".into(), acl: Acl::default() },
            Command::WithAcl { acl: Acl::default(), command: Box::new(Command::DeleteBucket { name: "b".into() }) },
            Command::WithPartChecksums {
                parts: PartChecksums::default(),
                command: Box::new(Command::DeleteBucket { name: "b".into() }),
            },
            Command::SetVersionTags { bucket: "b".into(), key: "k".into(), version_id: "v".into(), tags: Vec::new() },
            Command::PutVersionAcl { bucket: "b".into(), key: "k".into(), version_id: "v".into(), acl: Acl::default() },
        ];
        for (command, index) in format_2.iter().zip(25u8..) {
            assert_eq!(crate::codec::encode_body(command).expect("encodes")[0], index, "{command:?}");
        }
        // Format 2's event kinds come after ObjectReplicaLost, in this order.
        let tagged = EventKind::ObjectVersionTagged {
            bucket: String::new(),
            key: String::new(),
            version_id: String::new(),
            tag_count: 0,
        };
        assert_eq!(crate::codec::encode_body(&tagged).expect("encode")[0], 12, "ObjectVersionTagged");
        // Object Lock's rejections come after the older ones.
        let locked = CommandOutcome::Rejected(Rejection::ObjectLocked);
        assert_eq!(crate::codec::encode_body(&locked).expect("encodes"), [2, 6]);
        let plain = Command::DeleteBucket { name: "b".into() }.attributed_from(None, 5, None);
        assert!(matches!(plain, Command::Attributed { .. }), "no address: the plain envelope");
    }
}
