//! Meridian's replicated metadata store.
//!
//! One Raft group (openraft) spans every region; its log lives in sled and its state machine is
//! the placement database: buckets, objects (with the nodes that hold their bytes), multipart
//! uploads and access keys. Every committed entry is also an event of the system's bus.
//!
//! The crate hides sled and openraft behind [`MetaStore`]: the rest of Meridian proposes
//! [`Command`]s and reads plain data ([`model`]), and never touches the engine underneath.
//! [`MetaStore`] hands out what the rest needs of Raft (leadership, membership, the RPC handlers
//! of the internal listener) as its own methods, so no other crate names openraft (the node's
//! tests alone, which forge raw Raft RPCs): rule R2 of `docs/architecture.md`, with the map of this
//! crate's files.
//!
//! Each public item has one path: the items of `command`, `event`, `types`, `error` and the
//! other private modules are re-exported here; `access`, `model`, `network` and `signing` are
//! reached through their module.

pub mod access;
mod acl;
mod clock_drift;
mod codec;
mod command;
mod commit_notice;
mod cors;
mod durable;
mod error;
mod event;
mod follower_clocks;
mod history;
mod lease;
mod locks;
mod log_store;
pub mod model;
pub mod network;
mod node_id;
mod object_lock;
pub mod protocol;
mod reserve;
pub mod signing;
mod snapshot;
mod snapshot_policy;
mod snapshot_view;
mod state_machine;
mod store;
mod tables;
mod types;

#[cfg(test)]
mod untrusted_bytes_tests;

pub use acl::{
    Acl, AclGrant, AclGrantee, AclPermission, BucketAccess, BucketAccessChange, OPERATOR_ID, ObjectOwnership,
    PublicAccessBlock,
};
pub use clock_drift::{CLOCK_HEADER, DriftVerdict, clock_reading_ms};
pub use command::{Command, CommandOutcome, Rejection, VersionTouched, WriteCondition};
pub use cors::{BucketCors, CorsRule};
pub use error::{LeaderError, ProposeError, StoreError};
pub use event::{ACTOR_QUERY_PARAM, Actor, BadActor, BadCursor, Cursor, Event, EventKind};
pub use follower_clocks::{FollowerClock, LeaderClockStatus};
pub use history::{EventRetention, EventsError, TrimTarget};
pub use lease::{LeaseGrant, LeaseRequest};
pub use node_id::{NodeId, RegionNode};
pub use object_lock::{
    BucketObjectLock, DefaultRetention, Retention, RetentionMode, RetentionPeriod, VersionLock,
    retention_change_allowed,
};
pub use store::{
    ClockDriftStatus, ClusterStatus, Leadership, MemberStatus, MetaStore, RaftTiming, ReadError, StoreConfig,
};
pub use tables::{ObjectCursor, SharePage, VersionWalk};
pub use types::TypeConfig;
