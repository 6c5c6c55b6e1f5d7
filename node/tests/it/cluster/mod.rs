//! Clusters of three (or four) nodes: large pulls (resumed, parallel, verified, prioritised), catch-up of many small objects, clock drift, consistency, events, failover, internal auth,
//! a forwarded write whose answer is lost, membership, one connection per peer, partitions (frozen peers; cut links between network namespaces), placement,
//! replication, scrub, snapshots, webhooks, writes across a WAN.

mod big_pulls;
mod catch_up;
mod clock;
mod consistency;
mod events;
mod failover;
mod internal_auth;
mod lost_answer;
mod membership;
mod partition;
mod partition_hosts;
mod peer_connections;
mod placement;
mod replication;
mod scrub;
mod snapshot;
mod snapshot_beside_writes;
mod wan_writes;
mod webhooks;
