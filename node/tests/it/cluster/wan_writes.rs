//! Writes across a WAN: with every pair of regions 200 ms apart (a delaying relay in front of each
//! node's internal listener) and read leases on, a PUT or DELETE through the leader costs one
//! round trip, one request after another. A write that reached the leader just after the
//! previous one committed used to wait a whole round trip for openraft's commit notice to come
//! back on the follower's replication stream ("Commit notices" in `docs/architecture.md`), so
//! every write at the leader took two. The bound sits halfway between one round trip and two,
//! on the lower quartile: load on the machine only adds delay, and a loaded CI runner (this
//! test beside fifty others on two cores) moved the median 50 ms above one round trip, the
//! lower quartile far less.

use crate::harness;

use std::time::{Duration, Instant};

use harness::cluster::{ClusterOptions, TestCluster, free_ports};
use harness::delay::DelayRelay;
use harness::*;

/// One way between two regions: a round trip is twice this. Long, so that one round trip more
/// stands far above the noise of a loaded machine.
const ONE_WAY: Duration = Duration::from_millis(100);
/// Timed writes per kind and node.
const WRITES: usize = 12;

/// The lower quartile of `samples`: what most writes took at least, whatever a few stalls added.
fn lower_quartile(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 4]
}

/// PUTs then DELETEs `WRITES` small objects one after another through `client`; the lower
/// quartiles.
async fn timed_writes(client: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> (Duration, Duration) {
    let body = random_bytes(7, 4096);
    let mut puts = Vec::new();
    for i in 0..WRITES {
        let began = Instant::now();
        put(client, bucket, &format!("{prefix}/{i}"), &body).await;
        puts.push(began.elapsed());
    }
    let mut deletes = Vec::new();
    for i in 0..WRITES {
        let began = Instant::now();
        client.delete_object().bucket(bucket).key(format!("{prefix}/{i}")).send().await.expect("DeleteObject");
        deletes.push(began.elapsed());
    }
    (lower_quartile(puts), lower_quartile(deletes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_costs_one_round_trip_at_the_leader_and_two_through_a_follower() {
    let ports = free_ports::<12>();
    let mut relays = Vec::new();
    for i in 0..3 {
        relays.push(DelayRelay::start(ports[4 * i + 2], ports[4 * i + 3], ONE_WAY).await);
    }
    // An AppendEntries must complete within a heartbeat interval: 500 ms for a 200 ms round trip
    // on a loaded machine; read leases on (the default, as long as the election timeout's floor).
    let options = ClusterOptions {
        heartbeat_ms: 500,
        election_timeout_min_ms: 2500,
        election_timeout_max_ms: 5000,
        ..ClusterOptions::default()
    };
    let cluster = TestCluster::start_behind_relays(&options, &ports).await;
    let (leader, [follower, _]) = cluster.roles().await;
    let (via_leader, via_follower) = (cluster.node(leader).client(), cluster.node(follower).client());
    let bucket = create_bucket(&via_leader, "wan-writes").await;
    // Warm-up: connections between the nodes are open, every node holds its lease.
    let _ = timed_writes(&via_follower, &bucket, "warm-up").await;

    let rtt = 2 * ONE_WAY;
    let (put_leader, delete_leader) = timed_writes(&via_leader, &bucket, "leader").await;
    let (put_follower, delete_follower) = timed_writes(&via_follower, &bucket, "follower").await;
    let report = format!(
        "RTT {rtt:?}; lower quartiles at the leader: PUT {put_leader:?}, DELETE {delete_leader:?}; through a \
         follower: PUT {put_follower:?}, DELETE {delete_follower:?}"
    );
    eprintln!("{report}");
    for (what, took) in [("PUT", put_leader), ("DELETE", delete_leader)] {
        assert!(took >= rtt, "a write at the leader needs its followers' answer: {what} {took:?}; {report}");
        assert!(took < rtt * 3 / 2, "a {what} at the leader costs one round trip; {report}\n{}", cluster.log_report());
    }
    // Through a follower: forward, one round of the leader, answer; loosely bounded (a loaded
    // machine adds more there: two processes' work on the way), it guards against a third trip.
    for (what, took) in [("PUT", put_follower), ("DELETE", delete_follower)] {
        assert!(
            took >= rtt * 2,
            "a write through a follower crosses to the leader and back: {what} {took:?}; {report}"
        );
        assert!(
            took < rtt * 3,
            "a {what} through a follower costs two round trips; {report}\n{}",
            cluster.log_report()
        );
    }

    // Every write is visible everywhere at once (leases keep reads linearizable): the last one
    // through the follower is read back through the third node.
    let third = (0..3).find(|i| *i != leader && *i != follower).expect("three nodes");
    put(&via_follower, &bucket, "last", b"last").await;
    let got = get_bytes(&cluster.node(third).client(), &bucket, "last").await;
    assert_eq!(got, b"last", "an acknowledged write is read back through another region");
}
