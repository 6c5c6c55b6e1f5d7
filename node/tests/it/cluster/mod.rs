//! Clusters of three (or four) nodes: clock drift, consistency, events, failover, internal auth,
//! membership, partitions (frozen peers; cut links between network namespaces), placement,
//! replication, scrub, snapshots, webhooks.

mod clock;
mod consistency;
mod events;
mod failover;
mod internal_auth;
mod membership;
mod partition;
mod partition_hosts;
mod placement;
mod replication;
mod scrub;
mod snapshot;
mod webhooks;
