//! The network nemesis (#19): three nodes on three hosts (network namespaces on a bridge, see
//! `harness::netns`), links cut and healed with nft while S3 clients keep writing and reading.
//! A minority refuses writes with a clear 503 within the commit timeout and never serves a value
//! the majority has overwritten; the majority keeps committing; a node that sees both sides of a
//! cut keeps the cluster committing; one-way loss; after every heal all regions converge, bytes
//! compared on each. Needs root (skipped loudly otherwise; CI runs them under sudo).

use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;

use crate::harness::cluster::{ClusterOptions, TestCluster};
use crate::harness::netns::NetCluster;
use crate::harness::*;

/// Commit timeout of these clusters: a write that cannot commit fails this fast.
const COMMIT_TIMEOUT: Duration = Duration::from_millis(2000);

fn options() -> ClusterOptions {
    ClusterOptions { commit_timeout_ms: COMMIT_TIMEOUT.as_millis() as u64, ..Default::default() }
}

/// An acknowledged write: bucket, key, bytes.
type Acked = (String, String, Vec<u8>);

/// PUTs `data` through `client`, retrying refusals for at most `within`; the time it took when
/// acknowledged.
async fn put_within(client: &Client, bucket: &str, key: &str, data: &[u8], within: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < within {
        let put = client.put_object().bucket(bucket).key(key).body(ByteStream::from(data.to_vec())).send().await;
        if put.is_ok() {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// After a heal: one leader, every log applied alike, every acknowledged write readable with
/// its bytes through every node, and (above the 16 KiB that ride inline in the log) its blob on
/// every node's disk: replication pulled it.
async fn assert_converged(cluster: &TestCluster, acked: &[Acked]) {
    cluster.wait_for_leader(&[0, 1, 2], Duration::from_secs(30)).await;
    let index =
        cluster.healths(&[0, 1, 2]).await.values().filter_map(|h| h.as_ref().ok()).map(|h| h.applied_index).max();
    cluster.wait_applied_equal(&[0, 1, 2], index.unwrap_or(0), Duration::from_secs(30)).await;
    // The last write of each key wins.
    let mut last = std::collections::BTreeMap::new();
    for (bucket, key, data) in acked {
        last.insert((bucket.clone(), key.clone()), data.clone());
    }
    for i in 0..3 {
        let client = cluster.node(i).client();
        for ((bucket, key), data) in &last {
            assert_bytes_eq(&get_bytes(&client, bucket, key).await, data, &format!("{bucket}/{key} through node {i}"));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..3 {
        for ((bucket, key), data) in last.iter().filter(|(_, data)| data.len() > 16 * 1024) {
            while cluster.blob_files_with(i, data).is_empty() {
                assert!(
                    Instant::now() < deadline,
                    "node {i} never held the bytes of {bucket}/{key}\n{}",
                    cluster.log_report()
                );
                tokio::time::sleep(POLL).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_leader_refuses_writes_and_stale_reads_while_the_majority_commits() {
    let Some(NetCluster { cluster, net }) =
        NetCluster::start("cluster::partition_hosts::an_isolated_leader_refuses_writes", options()).await
    else {
        return;
    };
    let (old_leader, [a, b]) = cluster.roles().await;
    let minority = cluster.node(old_leader).client();
    let bucket = create_bucket(&minority, "split").await;
    let mut acked: Vec<Acked> = Vec::new();
    put(&minority, &bucket, "register", b"before the split").await;
    // Every node has applied it before the cut.
    cluster.wait_applied_equal(&[0, 1, 2], 1, Duration::from_secs(10)).await;
    acked.push((bucket.clone(), "register".into(), b"before the split".to_vec()));

    net.isolate(old_leader);
    let cut_at = Instant::now();

    // The majority elects a leader and commits, through both of its nodes.
    let mut first_commit = None;
    for round in 0..10 {
        let node = [a, b][round % 2];
        let data = random_bytes(round as u64, 20_000 + round);
        let key = if round == 9 { "register".to_owned() } else { format!("majority-{round}") };
        let took = put_within(&cluster.node(node).client(), &bucket, &key, &data, Duration::from_secs(15))
            .await
            .unwrap_or_else(|| panic!("the majority never committed write {round}\n{}", cluster.log_report()));
        first_commit.get_or_insert(cut_at.elapsed());
        println!("majority write {round} through node {node}: {took:?}");
        acked.push((bucket.clone(), key, data));
    }
    let new_leader = cluster.wait_for_leader(&[a, b], Duration::from_secs(10)).await;

    // The minority refuses a write with a clear 503 within the commit timeout...
    let started = Instant::now();
    let err = minority
        .put_object()
        .bucket(&bucket)
        .key("minority")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("a write in the minority must fail");
    let refused_after = started.elapsed();
    let code = err.into_service_error().meta().code().map(str::to_owned);
    assert_eq!(code.as_deref(), Some("ServiceUnavailable"), "a write in the minority");
    // The commit timeout, after at most 1 s spent confirming the access key with the leader
    // (`s3gw::auth`), which also fails here.
    assert!(refused_after < COMMIT_TIMEOUT + Duration::from_millis(1500), "refused after {refused_after:?}");
    // ...and refuses reads too (`read_consistency = "linearizable"`, the default): with no lease
    // it asks for a read index, and cut off it gives up at the commit timeout rather than serve
    // "before the split", which the majority has overwritten since (a stale read, found by this
    // test in #19 and fixed: the old behaviour is now the opt-in "available" mode).
    let started = Instant::now();
    let read = minority.get_object().bucket(&bucket).key("register").send().await;
    let read_after = started.elapsed();
    let code = read
        .expect_err("a minority must not serve a value it cannot confirm")
        .into_service_error()
        .meta()
        .code()
        .map(str::to_owned);
    assert_eq!(code.as_deref(), Some("ServiceUnavailable"), "a read of a known key in the minority");
    assert!(read_after >= COMMIT_TIMEOUT, "refused only after the read index failed: {read_after:?}");
    let unknown = minority.get_object().bucket(&bucket).key("majority-0").send().await;
    let code = unknown.expect_err("a key the minority never saw").into_service_error().meta().code().map(str::to_owned);
    assert_eq!(
        code.as_deref(),
        Some("ServiceUnavailable"),
        "an unknown key in the minority cannot be confirmed absent"
    );
    println!(
        "isolated leader {old_leader}: majority leader {new_leader}, first majority commit {:?} after the cut; \
         minority write refused in {refused_after:?}, known key refused after {read_after:?}",
        first_commit.unwrap_or_default()
    );

    net.heal();
    let healed = Instant::now();
    assert_converged(&cluster, &acked).await;
    println!("converged {:?} after the heal", healed.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_node_that_sees_both_sides_keeps_the_cluster_committing() {
    let Some(NetCluster { cluster, net }) =
        NetCluster::start("cluster::partition_hosts::a_bridge_node_that_sees_both_sides", options()).await
    else {
        return;
    };
    let (leader, [cut_off, bridge]) = cluster.roles().await;
    let client = cluster.node(bridge).client();
    let bucket = create_bucket(&client, "bridge").await;
    // The leader and one follower cannot see each other; the bridge sees both.
    net.cut(leader, cut_off);
    let mut acked: Vec<Acked> = Vec::new();
    let mut slowest = Duration::ZERO;
    let mut leaders = std::collections::BTreeSet::new();
    let started = Instant::now();
    for round in 0..20 {
        let data = random_bytes(100 + round as u64, 20_000);
        let key = format!("bridge-{round}");
        let took = put_within(&client, &bucket, &key, &data, Duration::from_secs(15)).await.unwrap_or_else(|| {
            panic!("no commit through the bridge node for 15 s (write {round})\n{}", cluster.log_report())
        });
        slowest = slowest.max(took);
        acked.push((bucket.clone(), key, data));
        if let Ok(h) = cluster.health(bridge).await {
            leaders.extend(h.leader);
        }
    }
    println!(
        "bridge {bridge} between {leader} and {cut_off}: 20 writes in {:?}, slowest {slowest:?}, leaders seen {leaders:?}",
        started.elapsed()
    );
    net.heal();
    assert_converged(&cluster, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_way_loss_from_the_leader_leaves_the_cluster_committing() {
    let Some(NetCluster { cluster, net }) =
        NetCluster::start("cluster::partition_hosts::one_way_loss", options()).await
    else {
        return;
    };
    let (leader, [deaf, other]) = cluster.roles().await;
    let bucket = create_bucket(&cluster.node(other).client(), "oneway").await;
    // Nothing the leader sends reaches `deaf`; what `deaf` sends reaches the leader.
    net.cut_one_way(leader, deaf);
    let mut acked: Vec<Acked> = Vec::new();
    let started = Instant::now();
    for round in 0..12 {
        let node = [other, deaf, leader][round % 3];
        let data = random_bytes(200 + round as u64, 20_500);
        let key = format!("oneway-{round}");
        // Through `deaf` a write may only commit once it is part of a majority again, which
        // needs a leader it can hear: allowed to fail, then not counted.
        let within = if node == deaf { Duration::from_secs(3) } else { Duration::from_secs(15) };
        match put_within(&cluster.node(node).client(), &bucket, &key, &data, within).await {
            Some(took) => {
                println!("one-way loss: write {round} through node {node} in {took:?}");
                acked.push((bucket.clone(), key, data));
            }
            None => {
                assert_eq!(node, deaf, "a write through node {node}, which has a majority, never committed");
                println!("one-way loss: write {round} through the deaf node {node} not acknowledged");
            }
        }
    }
    println!("one-way loss {leader} -> {deaf}: {} writes acknowledged in {:?}", acked.len(), started.elapsed());
    assert!(acked.len() >= 8, "the majority side must keep committing");
    net.heal();
    assert_converged(&cluster, &acked).await;

    // An asymmetric link: the leader cannot open connections to a follower, the follower can
    // open them to the leader (and data flows both ways on those). Writes through the third
    // node, which reaches everyone, all commit; through the two ends they may fail (a node
    // forwards its writes to the leader, which it may not be able to dial) and are not counted.
    let (leader, [follower, third]) = cluster.roles().await;
    net.block_dial(leader, follower);
    let started = Instant::now();
    let mut through_ends = 0;
    // Longer than the peers' keep-alive (4 s), so connections opened before the block are gone
    // and the leader has to dial again.
    let mut round = 0;
    while round < 9 || started.elapsed() < Duration::from_secs(8) {
        round += 1;
        let node = [third, follower, leader][round % 3];
        let data = random_bytes(300 + round as u64, 21_000);
        let key = format!("asymmetric-{round}");
        let within = if node == third { Duration::from_secs(15) } else { Duration::from_secs(3) };
        match put_within(&cluster.node(node).client(), &bucket, &key, &data, within).await {
            Some(took) => {
                println!("asymmetric: write {round} through node {node} in {took:?}");
                through_ends += usize::from(node != third);
                acked.push((bucket.clone(), key, data));
            }
            None => {
                assert_ne!(node, third, "write {round} through node {node}, which reaches everyone, never committed");
                println!("asymmetric: write {round} through node {node} not acknowledged");
            }
        }
    }
    println!(
        "leader {leader} cannot dial {follower}: {} writes acknowledged, {through_ends} of them through the ends, in {round} \
         rounds over {:?}",
        acked.len(),
        started.elapsed()
    );
    net.heal();
    assert_converged(&cluster, &acked).await;
}
