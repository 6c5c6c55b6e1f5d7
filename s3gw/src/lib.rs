//! Meridian's S3 gateway: an [`s3s::S3`] implementation over this node's blob store and the
//! replicated metadata store.
//!
//! Bytes go to the local [`blob`] store; metadata goes through Raft ([`meridian_raft::MetaStore`]),
//! and a write is acknowledged only after both are durable. Each group of operations lives in
//! its own module (`buckets`, `objects`, `listing`, `multipart`, `tagging`); `service` maps
//! the S3 trait onto them.

mod access;
mod acl;
mod attributes;
mod auth;
pub mod blob;
mod buckets;
mod composite;
mod conditions;
mod convert;
mod cors;
mod error;
mod full_object;
mod gateway;
mod housekeeping;
mod ingest;
mod listing;
mod multipart;
mod object_lock;
mod objects;
mod partial;
mod policy;
mod post_form;
mod pulls;
mod replica;
mod restore;
mod scrub;
mod segmented;
mod service;
mod tagging;
mod versioning;

pub use access::{AccessPolicy, KeyScope, presigned_expiry_problem};
pub use auth::KeyStoreAuth;
pub use cors::{CorsAnswer, PreflightRefusal};
pub use gateway::{ClientAddr, Gateway, ReadConsistency, UnsizedBody};
pub use housekeeping::HousekeepingError;
pub use ingest::MAX_UNSIZED_BODY;
pub use pulls::{PullSettings, PullStats, Pulls, Wanted};
pub use replica::{PullError, PullOutcome, Throttle};
pub use restore::RestoreError;
pub use scrub::{ScrubError, ScrubReport, Scrubber};
