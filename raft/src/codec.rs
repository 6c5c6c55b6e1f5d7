//! The one binary encoding of the store: bincode 2 over serde, in a versioned envelope.
//!
//! Log entries, state machine records, snapshot metadata and internal RPC bodies all go through
//! this module, so the stored and transmitted formats are decided in one place.
//!
//! # Formats
//!
//! A record is written in the cluster's *active format* ([`active_format`], a replicated
//! record raised through Raft once every member reads the new format; see `docs/upgrade.md`):
//!
//! | format | bytes | written by |
//! | --- | --- | --- |
//! | 0 | the bincode body alone | release a01dacd, and every release until the cluster raises its format |
//! | 1 and later | `0xFF`, the format as a bincode varint, the bincode body | this release, once raised |
//!
//! Decoding dispatches on the first byte: `0xFF` opens an envelope, anything else is a format 0
//! body. A format above [`CURRENT_FORMAT`] is refused with [`StoreError::UnknownFormat`] naming
//! the record and the format (a record written by a newer release: never guessed at).
//!
//! # Why `0xFF` cannot start a format 0 record (audit)
//!
//! bincode 2's standard configuration writes every integer, length and enum discriminant as a
//! varint whose first byte is the value itself (below 251) or a width marker (251 to 254):
//! never 255. Signed integers are zigzagged into the same varint. `Option` and `bool` are one
//! byte, 0 or 1. So a format 0 record starts with `0xFF` only if its first encoded field is a
//! raw `u8`, a `[u8; N]`, an `f32`/`f64`, or the record is not bincode at all. Every stored or
//! transmitted record type, with its first encoded field (a unit test per type,
//! `tests::every_legacy_record_decodes`, encodes each with extreme values and decodes it back):
//!
//! | record | where | first encoded field |
//! | --- | --- | --- |
//! | `Entry<TypeConfig>` | log (`raft_log`), AppendEntries | `log_id.leader_id.term`: u64 varint |
//! | `Vote` | log meta `vote`, vote RPC | `leader_id.term`: u64 varint |
//! | `Option<LogId>` | log meta `committed`, `last_purged` | Option tag |
//! | `LogId` | `m/applied` | `leader_id.term`: u64 varint |
//! | `StoredMembership` | `m/membership` | `log_id`: Option tag |
//! | `SnapshotMeta` | `current.meta` | `last_log_id`: Option tag |
//! | `Bucket`, `MultipartUpload`, `AccessKey`, `Share` | `b/`, `u/`, `k/`, `h/` | an id or name: String length varint |
//! | `ObjectMeta` | `o/` | `blob`: String length varint |
//! | `User` | `p/` | `profile.id`: String length varint |
//! | `KeyRecord` | `a/` | `owner`: Option tag |
//! | `String` | `n/`, `x/`, `t/`, `i/`, `j/`, `c/` | length varint |
//! | `u64` | `v/` | varint |
//! | `i64` | `m/newest_event_at` | zigzag varint |
//! | `u16` | `m/format` (new in format 1, written only once raised) | varint |
//! | `HistoryState` | `m/events` | `retained`: u64 varint |
//! | `Event` | `e/` | `cursor.index`: u64 varint |
//! | `Cursor` | `s/` | `index`: u64 varint |
//! | `WorkItem` | `w/` (local only) | enum discriminant varint |
//! | `BucketCors` | `cors/` (new in format 2, written only once raised) | `rules`: length varint |
//! | `BucketAccess`, `Acl` | `acl/`, `oacl/`, `vacl/` and `uacl/` (new in format 2, written only once raised) | `acl`: Option tag / `grants`: length varint |
//! | `VersioningState`, `LatestVersion`, `ObjectVersion` | `y/`, `q/`, `r/` (new in format 2, written only once raised) | enum discriminant varint / `id`: String length varint |
//! | `BucketObjectLock`, `VersionLock` | `ol/`, `lv/`, `lu/` (new in format 2, written only once raised) | `default_retention`: Option tag / `retention`: Option tag |
//! | `PartChecksums` | `pc/` (new in format 2, written only once raised) | `parts`: length varint |
//! | `Command` | inside entries, propose RPC | enum discriminant varint |
//! | RPC bodies: `VoteRequest`, `AppendEntriesRequest`, `InstallSnapshotRequest` | internal listener | `vote.leader_id.term`: u64 varint |
//! | RPC replies: `Result<_, _>` | internal listener | enum discriminant varint |
//! | `LeaseRequest`, `LeaseGrant`, `(u64, CommandOutcome)` | lease, propose | u64 varint |
//! | `NodeLoad` (geo) | load RPC | `in_flight`: u32 varint (its `f64` is second) |
//! | `KeyRequest`, `MembershipChange` (node) | key, membership RPC | enum discriminant varint |
//! | `Vec<String>` and other lists | scrub, replies | length varint |
//! | `()` | empty replies | no bytes: an empty input is format 0 |
//!
//! Not bincode, so not records: blob bodies (`/internal/v1/blobs`, raw file bytes, checked by
//! size and hash), the snapshot data file (its own framing, versioned by its magic line; the
//! record values inside are stored records as above, each with its own format), and sled keys.
//!
//! # Adding a field (the rule)
//!
//! See [`Record`]: never change the shape of a type in place.

use std::sync::atomic::{AtomicU16, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::StoreError;

/// bincode's standard configuration: varint integers, little endian.
const CONFIG: bincode::config::Configuration = bincode::config::standard();

/// Most bytes one decoded value may claim. bincode otherwise trusts a length prefix and
/// allocates what it says before finding the input too short: one damaged or hostile record
/// could abort the node. The largest legitimate value is an internal request body (the internal
/// listener takes at most 64 MiB).
const MAX_DECODED_BYTES: usize = 64 * 1024 * 1024;

/// [`CONFIG`] with [`MAX_DECODED_BYTES`]: the same encoding, a bounded decoder.
const DECODE_CONFIG: bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_DECODED_BYTES>,
> = CONFIG.with_limit::<MAX_DECODED_BYTES>();

/// First byte of a versioned record: a byte no format 0 record starts with (see the audit in
/// the module docs).
pub(crate) const ENVELOPE: u8 = 0xFF;

/// The format of release a01dacd: bincode alone, no envelope.
pub const LEGACY_FORMAT: u16 = 0;

/// The newest format this binary reads and can write. Raise it (by one) when a [`Record`]
/// changes shape, and give that record the new number as its [`Record::FORMAT`].
pub const CURRENT_FORMAT: u16 = 2;

/// The format this process writes: the cluster's active format, as applied from the log (see
/// `state_machine`). One node per process, so one value; it starts at [`LEGACY_FORMAT`], which
/// is what a node must write until it has read the cluster's record saying otherwise.
static ACTIVE_FORMAT: AtomicU16 = AtomicU16::new(LEGACY_FORMAT);

/// The format this node writes every record in.
pub fn active_format() -> u16 {
    ACTIVE_FORMAT.load(Ordering::Acquire)
}

/// Sets the format this node writes (the state machine, when it opens or applies a raise). A
/// format this binary cannot write is capped at [`CURRENT_FORMAT`] (the state machine refuses
/// such a raise before it gets here).
pub(crate) fn set_active_format(format: u16) {
    ACTIVE_FORMAT.store(format.min(CURRENT_FORMAT), Ordering::Release);
}

/// A type stored or transmitted through this codec: its format history lives next to it.
///
/// **To add a field to a record type** (or change its shape in any way): do not edit the
/// struct in place, since records written by older releases and by nodes that have not
/// upgraded yet keep the old shape, and bincode has no field names to tell them apart.
/// 1. Keep the old shape as a private type (`FooV0`, with the same serde derive).
/// 2. Raise [`CURRENT_FORMAT`] by one (once per release) and set this type's
///    [`Record::FORMAT`] to it.
/// 3. Implement [`Record::migrate`]: a body of a format below `FORMAT` decodes as the old
///    shape and is converted (the new field gets its default).
/// 4. Implement [`Record::encode_body`]: until the cluster raises its active format, nodes
///    still write the old format, so the new value is converted back to the old shape.
/// 5. Add a unit test decoding a record of the old shape (see `codec::tests`).
///
/// Enum variants are only ever added at the end (a variant index is its encoding); an
/// added variant needs no new format only if no node of the previous release can receive it
/// before the raise (say why where you add it).
pub trait Record: Serialize + DeserializeOwned {
    /// The record's name in errors and logs.
    const NAME: &'static str;
    /// The format that introduced this type's current shape (0: unchanged since a01dacd).
    const FORMAT: u16 = LEGACY_FORMAT;

    /// Builds today's value from a body written in `format` (at most [`CURRENT_FORMAT`]). The
    /// default decodes the body as today's shape, which is right while `format >= FORMAT`.
    fn migrate(format: u16, body: &[u8]) -> Result<Self, StoreError> {
        let _ = format;
        decode_body(body)
    }

    /// The body of this value in `format`; below [`Record::FORMAT`] an implementation converts
    /// to the older shape. The default encodes today's shape.
    fn encode_body(&self, format: u16) -> Result<Vec<u8>, StoreError> {
        let _ = format;
        encode_body(self)
    }
}

/// Declares types whose shape is unchanged since format 0 (the default [`Record`] methods).
macro_rules! record {
    ($($ty:ty => $name:literal),+ $(,)?) => {
        $(impl $crate::codec::Record for $ty {
            const NAME: &'static str = $name;
        })+
    };
}
pub(crate) use record;

record! {
    String => "string",
    u64 => "u64",
    i64 => "i64",
    u16 => "format number",
}

/// bincode of `value`, without envelope.
pub(crate) fn encode_body<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, StoreError> {
    bincode::serde::encode_to_vec(value, CONFIG).map_err(|e| StoreError::Codec(e.to_string()))
}

/// Decodes a bincode body (untrusted: bounded by [`MAX_DECODED_BYTES`]).
pub(crate) fn decode_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    bincode::serde::decode_from_slice(bytes, DECODE_CONFIG)
        .map(|(value, _read)| value)
        .map_err(|e| StoreError::Codec(e.to_string()))
}

/// Encodes a record in the active format, for storage or the wire.
pub(crate) fn encode<T: Record>(value: &T) -> Result<Vec<u8>, StoreError> {
    encode_as(value, active_format())
}

/// Encodes a record in `format` (format 0: exactly what release a01dacd writes).
pub(crate) fn encode_as<T: Record>(value: &T, format: u16) -> Result<Vec<u8>, StoreError> {
    let body = value.encode_body(format)?;
    Ok(frame(format, body))
}

/// Puts `body` in the envelope of `format` (none for format 0).
fn frame(format: u16, body: Vec<u8>) -> Vec<u8> {
    if format == LEGACY_FORMAT {
        return body;
    }
    let mut out = Vec::with_capacity(body.len() + 4);
    out.push(ENVELOPE);
    // A u16 always encodes (varint of at most 3 bytes).
    out.extend_from_slice(&bincode::encode_to_vec(format, CONFIG).unwrap_or_default());
    out.extend_from_slice(&body);
    out
}

/// Splits a record into its format and body, refusing formats above `readable`.
fn unframe<'a>(bytes: &'a [u8], record: &'static str, readable: u16) -> Result<(u16, &'a [u8]), StoreError> {
    let Some((&ENVELOPE, rest)) = bytes.split_first() else { return Ok((LEGACY_FORMAT, bytes)) };
    let (format, read): (u64, usize) = bincode::decode_from_slice(rest, CONFIG)
        .map_err(|e| StoreError::Codec(format!("{record}: unreadable format number: {e}")))?;
    match u16::try_from(format) {
        Ok(format) if format <= readable => Ok((format, &rest[read..])),
        _ => Err(StoreError::UnknownFormat { record, format, readable }),
    }
}

/// Decodes a record of any format up to [`CURRENT_FORMAT`].
pub(crate) fn decode<T: Record>(bytes: &[u8]) -> Result<T, StoreError> {
    decode_readable(bytes, CURRENT_FORMAT.max(T::FORMAT))
}

/// [`decode`], reading formats up to `readable`.
fn decode_readable<T: Record>(bytes: &[u8], readable: u16) -> Result<T, StoreError> {
    let (format, body) = unframe(bytes, T::NAME, readable)?;
    T::migrate(format, body)
}

/// Decodes only the leading fields of a `T` record, as `H` (a listing reads an object's size and
/// ETag, not its inline body). bincode reads fields in order and leaves the rest, so `H` mirrors
/// the first fields of `T`'s current shape; a body of an older format goes through
/// [`Record::migrate`] and `H::from` instead.
pub(crate) fn decode_head<T: Record, H: DeserializeOwned + From<T>>(bytes: &[u8]) -> Result<H, StoreError> {
    let (format, body) = unframe(bytes, T::NAME, CURRENT_FORMAT.max(T::FORMAT))?;
    if format >= T::FORMAT { decode_body(body) } else { T::migrate(format, body).map(H::from) }
}

/// Encodes a value that is not a [`Record`] (an RPC body built of openraft's generic types or of
/// another crate's types) in the active format: same envelope, no migration hook. A body type
/// that changes shape must become a [`Record`] first.
pub(crate) fn encode_any<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    Ok(frame(active_format(), encode_body(value)?))
}

/// Decodes what [`encode_any`] wrote (any format up to [`CURRENT_FORMAT`]; the body's shape
/// is the same in all of them).
pub(crate) fn decode_any<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    let (_format, body) = unframe(bytes, std::any::type_name::<T>(), CURRENT_FORMAT)?;
    decode_body(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Actor, Cursor, Event, EventKind};
    use crate::model::{
        AccessKey, Bucket, ContentHeaders, KeyOwner, KeyRecord, MultipartUpload, ObjectMeta, Share, ShareAudience,
        SharePermission, User, UserProfile, WorkItem,
    };
    use crate::node_id::{NodeId, RegionNode};
    use crate::types::TypeConfig;
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Membership, SnapshotMeta, StoredMembership, Vote};
    use std::collections::{BTreeMap, BTreeSet};

    /// What release a01dacd wrote for `value`: plain bincode, which [`encode_as`] format 0 must
    /// reproduce byte for byte, which must not start with the envelope byte, and which decodes.
    fn legacy_round_trip<T: Record + PartialEq + std::fmt::Debug>(value: T) {
        let a01dacd = bincode::serde::encode_to_vec(&value, CONFIG).expect("encode");
        assert_eq!(encode_as(&value, LEGACY_FORMAT).expect("encode"), a01dacd, "{}", T::NAME);
        assert_ne!(a01dacd.first(), Some(&ENVELOPE), "{} starts with the envelope byte", T::NAME);
        assert_eq!(decode::<T>(&a01dacd).expect("a legacy record decodes"), value, "{}", T::NAME);
        let enveloped = encode_as(&value, CURRENT_FORMAT).expect("encode");
        assert_eq!(enveloped[0], ENVELOPE);
        assert_eq!(decode::<T>(&enveloped).expect("a current record decodes"), value, "{}", T::NAME);
    }

    /// Extreme ids: a term of u64::MAX encodes as the widest varint (marker 0xFD, never 0xFF).
    fn log_id(term: u64) -> LogId<NodeId> {
        LogId::new(CommittedLeaderId::new(term, u64::MAX), u64::MAX)
    }

    fn membership() -> StoredMembership<NodeId, RegionNode> {
        let node =
            RegionNode { region: "eu".into(), internal: "127.0.0.1:7001".into(), s3: String::new(), web: "w".into() };
        let nodes = BTreeMap::from([(u64::MAX, node)]);
        StoredMembership::new(Some(log_id(7)), Membership::new(vec![BTreeSet::from([u64::MAX])], nodes))
    }

    fn object() -> ObjectMeta {
        ObjectMeta {
            blob: "\u{ff}".repeat(300),
            inline: Some(vec![0xFF; 3]),
            size: u64::MAX,
            etag: "e".into(),
            last_modified: i64::MIN,
            headers: ContentHeaders::default(),
            tags: vec![],
            checksums: Default::default(),
            parts: vec![],
            holders: BTreeMap::from([(u64::MAX, i64::MAX)]),
        }
    }

    #[test]
    fn every_legacy_record_decodes() {
        for term in [0, 250, 251, u64::MAX] {
            legacy_round_trip(log_id(term));
            legacy_round_trip(Some(log_id(term)));
            legacy_round_trip(Vote::<NodeId>::new(term, u64::MAX));
            legacy_round_trip(Entry::<TypeConfig> {
                log_id: log_id(term),
                payload: EntryPayload::Normal(crate::Command::DeleteBucket { name: "b".into() }),
            });
        }
        legacy_round_trip(None::<LogId<NodeId>>);
        legacy_round_trip(Entry::<TypeConfig> {
            log_id: log_id(1),
            payload: EntryPayload::Membership(membership().membership().clone()),
        });
        legacy_round_trip(membership());
        legacy_round_trip(SnapshotMeta {
            last_log_id: Some(log_id(3)),
            last_membership: membership(),
            snapshot_id: "s".into(),
        });
        legacy_round_trip(Bucket { name: "\u{ff}".repeat(251), created: i64::MIN, region: "r".into() });
        legacy_round_trip(object());
        legacy_round_trip(MultipartUpload {
            id: "u".into(),
            bucket: "b".into(),
            key: "k".into(),
            initiated: -1,
            node: u64::MAX,
            headers: ContentHeaders::default(),
            tags: vec![],
            checksum_algorithm: None,
        });
        legacy_round_trip(AccessKey { id: "k".into(), secret: "s".into(), name: "n".into(), created: i64::MAX });
        legacy_round_trip(KeyRecord { owner: Some(KeyOwner::Service("s".into())), disabled: Some(i64::MIN) });
        legacy_round_trip(KeyRecord::default());
        let profile =
            UserProfile { id: "p".into(), login: "l".into(), name: "n".into(), email: "e".into(), roles: vec![] };
        legacy_round_trip(User { profile, first_seen: 0, updated: i64::MIN, last_sign_in: None, deleted: None });
        legacy_round_trip(Share {
            id: "s".into(),
            bucket: "b".into(),
            key: "k".into(),
            created_by: "c".into(),
            created: 1,
            expires: None,
            revoked: None,
            downloads: u64::MAX,
            audience: ShareAudience::User { user: "u".into(), permission: SharePermission::Read },
        });
        legacy_round_trip(WorkItem::Pull { bucket: "b".into(), key: "k".into(), blob: "x".into() });
        legacy_round_trip(String::new());
        legacy_round_trip("\u{ff}".repeat(70_000));
        legacy_round_trip(u64::MAX);
        legacy_round_trip(i64::MIN);
        legacy_round_trip(u16::MAX);
        legacy_round_trip(Cursor { index: u64::MAX, sub: u32::MAX });
        legacy_round_trip(Event {
            cursor: Cursor { index: u64::MAX, sub: 0 },
            at: i64::MIN,
            actor: Some(Actor::User("u".into())),
            kind: EventKind::BucketDeleted { bucket: "b".into() },
            client: None,
        });
        legacy_round_trip(crate::history::HistoryState::for_tests(u64::MAX));
        legacy_round_trip(crate::Command::DeleteAccessKey { id: "k".into() });
    }

    #[test]
    fn a_record_of_an_unknown_future_format_is_a_typed_error_naming_it() {
        let mut future = vec![ENVELOPE];
        future.extend_from_slice(&bincode::encode_to_vec(CURRENT_FORMAT + 1, CONFIG).expect("encode"));
        future.extend_from_slice(&encode_body(&"b".to_string()).expect("encode"));
        match decode::<Bucket>(&future) {
            Err(StoreError::UnknownFormat { record, format, readable }) => {
                assert_eq!((record, format, readable), ("bucket", u64::from(CURRENT_FORMAT) + 1, CURRENT_FORMAT));
            }
            other => panic!("expected UnknownFormat, got {other:?}"),
        }
        let message = decode::<ObjectMeta>(&[ENVELOPE, 0xFD, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
            .expect_err("refused")
            .to_string();
        assert!(message.contains("object metadata") && message.contains("18446744073709551615"), "{message}");
        // A damaged envelope is an error too, never a panic.
        assert!(decode::<Bucket>(&[ENVELOPE]).is_err());
        assert!(decode::<Bucket>(&[ENVELOPE, 0xFF]).is_err());
        assert!(decode_any::<Vec<u8>>(&[ENVELOPE, 9]).is_err());
    }

    /// A record type as it was in format 1 (say): a name only.
    #[derive(serde::Serialize, serde::Deserialize)]
    struct LabelV1 {
        name: String,
    }

    /// The same record after format 2 added a colour: it keeps the old shape beside it and says
    /// how to convert both ways, as the rule on [`Record`] asks.
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Label {
        name: String,
        colour: Option<String>,
    }

    impl Record for Label {
        const NAME: &'static str = "label";
        const FORMAT: u16 = 2;

        fn migrate(format: u16, body: &[u8]) -> Result<Self, StoreError> {
            if format < Self::FORMAT {
                let old: LabelV1 = decode_body(body)?;
                return Ok(Self { name: old.name, colour: None });
            }
            decode_body(body)
        }

        fn encode_body(&self, format: u16) -> Result<Vec<u8>, StoreError> {
            if format < Self::FORMAT {
                return encode_body(&LabelV1 { name: self.name.clone() });
            }
            encode_body(self)
        }
    }

    #[test]
    fn a_record_migrates_from_its_old_shape_and_is_written_in_it_until_the_raise() {
        let old = LabelV1 { name: "n".into() };
        let want = Label { name: "n".into(), colour: None };
        // Written by a release before the field existed: bare (format 0) and enveloped (1).
        let bare = encode_body(&old).expect("encode");
        assert_eq!(decode::<Label>(&bare).expect("migrates"), want);
        let mut v1 = vec![ENVELOPE, 1];
        v1.extend_from_slice(&bare);
        assert_eq!(decode::<Label>(&v1).expect("migrates"), want);
        // Before the raise, the new value is written in the old shape, which old nodes read.
        let coloured = Label { name: "n".into(), colour: Some("red".into()) };
        let written = encode_as(&coloured, 1).expect("encode");
        assert_eq!(written, v1);
        // After it, the new shape, which round-trips.
        let written = encode_as(&coloured, 2).expect("encode");
        assert_eq!(&written[..2], &[ENVELOPE, 2]);
        assert_eq!(decode::<Label>(&written).expect("decodes"), coloured);
        // A binary that reads only format 1 refuses it, by name.
        assert!(matches!(
            decode_readable::<Label>(&written, 1),
            Err(StoreError::UnknownFormat { record: "label", format: 2, readable: 1 })
        ));
    }
}
