//! Clusters of three (or four) nodes: clock drift, consistency, events, failover, internal auth, membership,
//! partitions, placement, replication, scrub, snapshots, webhooks.

mod clock;
mod consistency;
mod events;
mod failover;
mod internal_auth;
mod membership;
mod partition;
mod placement;
mod replication;
mod scrub;
mod snapshot;
mod webhooks;
