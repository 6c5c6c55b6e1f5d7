//! The committed log seen as events: what outside consumers (the SSE stream, webhooks) read.
//!
//! Events are derived while applying the log, on every node alike, and kept in a bounded history
//! in the state machine (see `history`), so they never depend on the Raft log still existing.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::model::UnixMillis;

/// Where an event sits in the stream: the log index of the entry that produced it, and its place
/// among that entry's events (one entry, e.g. a batch or a multi-key delete, can yield several).
///
/// Cursors are totally ordered by `(index, sub)`; a consumer passes the last one it processed back
/// as `after` to resume exactly behind it. Written `INDEX.SUB`; a bare `INDEX` means "after every
/// event of entry INDEX" (so `0` is the start of the stream).
///
/// A stored record (`codec::Record`): to add a field, raise its `FORMAT`, keep the old
/// shape and write its conversion there; never change this shape in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Cursor {
    /// Log index of the entry.
    pub index: u64,
    /// Position of the event among the entry's events, from 0. `u32::MAX` is reserved for "past
    /// every event of the entry" (see [`Cursor::after_entry`]) and never names an event.
    pub sub: u32,
}

impl Cursor {
    /// The position just behind every event of entry `index`.
    pub fn after_entry(index: u64) -> Self {
        Self { index, sub: u32::MAX }
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.sub == u32::MAX { write!(f, "{}", self.index) } else { write!(f, "{}.{}", self.index, self.sub) }
    }
}

/// A cursor that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a cursor (INDEX or INDEX.SUB, decimal)")]
pub struct BadCursor(String);

impl FromStr for Cursor {
    type Err = BadCursor;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadCursor(s.to_owned());
        let number = |part: &str| -> Result<u64, BadCursor> {
            // `u64::from_str` accepts a leading '+'; a cursor is digits only.
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            part.parse().map_err(|_| bad())
        };
        match s.split_once('.') {
            None => Ok(Self::after_entry(number(s)?)),
            Some((index, sub)) => {
                let sub = u32::try_from(number(sub)?).ok().filter(|&sub| sub != u32::MAX).ok_or_else(bad)?;
                Ok(Self { index: number(index)?, sub })
            }
        }
    }
}

/// Who caused a change, when known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Actor {
    /// A request signed with this S3 access key id (S3 API, or the web API with Basic auth).
    AccessKey(String),
    /// A cinema service calling the web API with its bearer token (its configured name).
    Service(String),
    /// A person signed in through the cinema's Auth service (their user id, the token's `sub`).
    /// Last, so log entries and events stored before it existed still decode.
    User(String),
}

impl fmt::Display for Actor {
    /// `key:ID`, `service:NAME` or `user:ID`: the form logs and event consumers see.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AccessKey(id) => write!(f, "key:{id}"),
            Self::Service(name) => write!(f, "service:{name}"),
            Self::User(id) => write!(f, "user:{id}"),
        }
    }
}

/// The query parameter of a presigned URL, signed with the system key, that names the actor the
/// web API signed it for (`user:ID` or `service:NAME`): the S3 gateway records that actor, not the
/// system key, for what the request changes. Covered by the URL's signature, so it cannot be
/// added or altered without the system key's secret.
pub const ACTOR_QUERY_PARAM: &str = "x-meridian-actor";

/// A string that is not an actor.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not an actor (key:ID, service:NAME or user:ID)")]
pub struct BadActor(String);

impl FromStr for Actor {
    type Err = BadActor;

    /// The [`Display`](fmt::Display) form back: `key:ID`, `service:NAME` or `user:ID`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some(("key", id)) if !id.is_empty() => Ok(Self::AccessKey(id.to_owned())),
            Some(("service", name)) if !name.is_empty() => Ok(Self::Service(name.to_owned())),
            Some(("user", id)) if !id.is_empty() => Ok(Self::User(id.to_owned())),
            _ => Err(BadActor(s.to_owned())),
        }
    }
}

/// What happened. New kinds (shares, history) are added as variants at the end; consumers ignore
/// types they do not know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// A bucket was created.
    BucketCreated {
        /// Bucket name.
        bucket: String,
        /// Region of the node that created it.
        region: String,
    },
    /// An empty bucket was deleted.
    BucketDeleted {
        /// Bucket name.
        bucket: String,
    },
    /// A new version of an object was written (PUT, copy, multipart completion; an overwrite too).
    ObjectCreated {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
        /// Size in bytes.
        size: u64,
        /// ETag without quotes.
        etag: String,
        /// Region of the node that received the bytes (where the object first lives).
        region: String,
    },
    /// Another region now holds a copy of the object's current version.
    ObjectReplicated {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
        /// The region that got the copy.
        region: String,
    },
    /// An object was deleted.
    ObjectDeleted {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
    },
    /// A new version replaced an existing object (PUT, copy or multipart completion over a key
    /// that had a version): the history's "update", distinct from a first write. Same fields as
    /// [`EventKind::ObjectCreated`].
    ObjectUpdated {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
        /// Size in bytes of the new version.
        size: u64,
        /// ETag of the new version, without quotes.
        etag: String,
        /// Region of the node that received the bytes.
        region: String,
    },
    /// A file was shared.
    ShareCreated {
        /// The share's id.
        share: String,
        /// Bucket of the file.
        bucket: String,
        /// Key of the file.
        key: String,
        /// `public`, or `user:ID:read` / `user:ID:write`.
        audience: String,
        /// When it expires (Unix ms), if it does.
        expires: Option<UnixMillis>,
    },
    /// A public link was used to download the file.
    ShareUsed {
        /// The share's id.
        share: String,
        /// Bucket of the file.
        bucket: String,
        /// Key of the file.
        key: String,
        /// The downloader's address.
        client: String,
    },
    /// A share was revoked.
    ShareRevoked {
        /// The share's id.
        share: String,
        /// Bucket of the file.
        bucket: String,
        /// Key of the file.
        key: String,
    },
    /// A region's copy of the object's current version was found missing or corrupt (by the
    /// scrub) and that region is no longer listed as holding it; it pulls the object again, and
    /// the `ObjectReplicated` that follows is that repair, not a second copy.
    ObjectReplicaLost {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
        /// The region that lost its copy.
        region: String,
    },
    /// A versioned bucket got a new version of an object or a delete marker (alongside the
    /// `ObjectCreated`/`ObjectUpdated`/`ObjectDeleted` of the same write): the history shows
    /// which version it was. Only in buckets versioned in format 2.
    ObjectVersionCreated {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
        /// The new version's id (`null` while versioning is suspended).
        version_id: String,
        /// Whether the new version is a delete marker.
        delete_marker: bool,
    },
    /// One version (or delete marker) of an object was deleted for good (DeleteObject with a
    /// version id). Only in buckets versioned in format 2.
    ObjectVersionDeleted {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
        /// The deleted version's id.
        version_id: String,
        /// Whether it was a delete marker.
        delete_marker: bool,
    },
    /// The tags of one version were replaced or removed (PutObjectTagging, DeleteObjectTagging
    /// with a version id). Only from commands of format 2 (`SetVersionTags`), so no node of
    /// the previous release stores it.
    ObjectVersionTagged {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
        /// The version whose tags changed.
        version_id: String,
        /// How many tags it has now (0: removed).
        tag_count: u32,
    },
}

impl EventKind {
    /// The kind's name, as consumers see it in `type`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::BucketCreated { .. } => "BucketCreated",
            Self::BucketDeleted { .. } => "BucketDeleted",
            Self::ObjectCreated { .. } => "ObjectCreated",
            Self::ObjectReplicated { .. } => "ObjectReplicated",
            Self::ObjectDeleted { .. } => "ObjectDeleted",
            Self::ObjectUpdated { .. } => "ObjectUpdated",
            Self::ShareCreated { .. } => "ShareCreated",
            Self::ShareUsed { .. } => "ShareUsed",
            Self::ShareRevoked { .. } => "ShareRevoked",
            Self::ObjectReplicaLost { .. } => "ObjectReplicaLost",
            Self::ObjectVersionCreated { .. } => "ObjectVersionCreated",
            Self::ObjectVersionDeleted { .. } => "ObjectVersionDeleted",
            Self::ObjectVersionTagged { .. } => "ObjectVersionTagged",
        }
    }

    /// The object the event is about, as (bucket, key); `None` for bucket events.
    pub fn object(&self) -> Option<(&str, &str)> {
        match self {
            Self::ObjectCreated { bucket, key, .. }
            | Self::ObjectReplicated { bucket, key, .. }
            | Self::ObjectDeleted { bucket, key }
            | Self::ObjectUpdated { bucket, key, .. }
            | Self::ShareCreated { bucket, key, .. }
            | Self::ShareUsed { bucket, key, .. }
            | Self::ShareRevoked { bucket, key, .. }
            | Self::ObjectReplicaLost { bucket, key, .. }
            | Self::ObjectVersionCreated { bucket, key, .. }
            | Self::ObjectVersionDeleted { bucket, key, .. }
            | Self::ObjectVersionTagged { bucket, key, .. } => Some((bucket, key)),
            Self::BucketCreated { .. } | Self::BucketDeleted { .. } => None,
        }
    }
}

/// One event of the bus, as retained in the state machine.
///
/// A stored record (`codec::Record`): to add a field, raise its `FORMAT`, keep the old
/// shape and write its conversion there; never change this shape in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Its place in the stream.
    pub cursor: Cursor,
    /// When it happened, as the proposing node saw it (Unix ms). Taken from the log entry, so
    /// every node reports the same time.
    pub at: UnixMillis,
    /// Who caused it, when the command says.
    pub actor: Option<Actor>,
    /// What happened.
    pub kind: EventKind,
    /// The IP address of the client whose request caused it, when the command says (S3 writes).
    /// Last, and absent from events stored before it existed: older events decode through a
    /// fallback that leaves it `None`.
    pub client: Option<String>,
}

/// An [`Event`] as stored before events carried a client address.
#[derive(Deserialize)]
struct EventWithoutClient {
    cursor: Cursor,
    at: UnixMillis,
    actor: Option<Actor>,
    kind: EventKind,
}

impl Event {
    /// Decodes a stored event, of either shape (see its [`crate::codec::Record`] migration).
    pub(crate) fn decode_stored(bytes: &[u8]) -> Result<Self, crate::error::StoreError> {
        crate::codec::decode::<Self>(bytes)
    }
}

crate::codec::record! { Cursor => "cursor" }

impl crate::codec::Record for Event {
    const NAME: &'static str = "event";

    /// Format 0 holds two shapes: events stored before `client` existed simply end before it
    /// (bincode is not self-describing), so decoding them as today's shape fails at the end of
    /// their bytes, and they are then read as [`EventWithoutClient`]. Every later format has
    /// today's shape.
    fn migrate(format: u16, body: &[u8]) -> Result<Self, crate::error::StoreError> {
        let current = crate::codec::decode_body::<Self>(body);
        if format > crate::codec::LEGACY_FORMAT {
            return current;
        }
        current.or_else(|current| {
            crate::codec::decode_body::<EventWithoutClient>(body)
                .map(|old| Self { cursor: old.cursor, at: old.at, actor: old.actor, kind: old.kind, client: None })
                .map_err(|_| current)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_parse_and_print_back() {
        for text in ["0", "17", "17.0", "17.4294967294"] {
            let cursor: Cursor = text.parse().expect("parses");
            assert_eq!(cursor.to_string(), text);
        }
        assert_eq!("17".parse::<Cursor>().ok(), Some(Cursor::after_entry(17)));
        for bad in ["", ".", "1.", ".1", "+1", "1.+2", "a", "1.2.3", "1.4294967295", "-1"] {
            assert!(bad.parse::<Cursor>().is_err(), "{bad:?} must not parse");
        }
    }

    #[test]
    fn actors_parse_back_from_their_display_form() {
        for actor in [Actor::AccessKey("K1".into()), Actor::Service("tickets".into()), Actor::User("u-7".into())] {
            assert_eq!(actor.to_string().parse::<Actor>().ok(), Some(actor));
        }
        for bad in ["", "user:", "u-7", "root:x", ":x"] {
            assert!(bad.parse::<Actor>().is_err(), "{bad:?} must not parse");
        }
    }

    /// Events stored before `client` existed still decode (and ones with it round-trip).
    #[test]
    fn events_stored_without_a_client_still_decode() {
        #[derive(Serialize)]
        struct Old {
            cursor: Cursor,
            at: UnixMillis,
            actor: Option<Actor>,
            kind: EventKind,
        }
        let kind = EventKind::ObjectDeleted { bucket: "b".into(), key: "k".into() };
        let cursor = Cursor { index: 3, sub: 1 };
        let actor = Some(Actor::AccessKey("K".into()));
        let old = crate::codec::encode_body(&Old { cursor, at: 5, actor: actor.clone(), kind: kind.clone() })
            .expect("encode");
        let event = Event::decode_stored(&old).expect("an old event decodes");
        assert_eq!(event, Event { cursor, at: 5, actor: actor.clone(), kind: kind.clone(), client: None });
        let new = Event { cursor, at: 5, actor, kind, client: Some("192.0.2.7".into()) };
        let bytes = crate::codec::encode(&new).expect("encode");
        assert_eq!(Event::decode_stored(&bytes).expect("decodes"), new);
    }

    #[test]
    fn an_entry_cursor_sorts_after_its_events_and_before_the_next_entry() {
        let after_17 = Cursor::after_entry(17);
        assert!(Cursor { index: 17, sub: 5 } < after_17);
        assert!(after_17 < Cursor { index: 18, sub: 0 });
    }
}
