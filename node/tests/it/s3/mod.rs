//! The S3 API against one node. Most of these tests share the node [`shared_node`] starts once
//! per run, each in buckets of its own; tests that need their own settings start their own.
//!
//! [`shared_node`]: crate::harness::shared_node

mod acl;
mod auth;
mod buckets;
mod cors;
mod edge;
mod integrity;
mod listing;
mod multipart;
mod object_lock;
mod objects;
mod tagging_attrs;
mod versioning;
