//! Meridian's replicated metadata store.
//!
//! One Raft group (openraft) spans every region; its log lives in sled and its state machine is
//! the placement database: buckets, objects (with the nodes that hold their bytes), multipart
//! uploads and access keys. Every committed entry is also an event of the system's bus.
//!
//! The crate hides sled and openraft behind [`MetaStore`]: the rest of Meridian proposes
//! [`Command`]s and reads plain data ([`model`]). The exceptions still open
//! ([`MetaStore::raft`], used by the admin and node crates) are listed under rule R2 of
//! `docs/architecture.md`, with the map of this crate's files.

pub mod access;
mod codec;
pub mod command;
mod durable;
mod error;
pub mod event;
mod history;
mod lease;
mod log_store;
pub mod model;
pub mod network;
mod read;
pub mod signing;
mod snapshot;
mod state_machine;
mod store;
mod tables;
pub mod types;

#[cfg(test)]
mod untrusted_bytes_tests;

pub use command::{Command, CommandOutcome, Rejection};
pub use error::{ProposeError, StoreError};
pub use event::{ACTOR_QUERY_PARAM, Actor, Cursor, Event, EventKind};
pub use history::{EventRetention, EventsError, TrimTarget};
pub use lease::{LeaseGrant, LeaseRequest};
pub use read::ReadError;
pub use store::{ClusterStatus, MemberStatus, MetaStore, RaftTiming, StoreConfig};
pub use tables::{ObjectCursor, SharePage};
pub use types::{NodeId, RegionNode, TypeConfig};
