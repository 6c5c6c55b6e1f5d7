//! A follower that was down while the log moved past the purge point catches up from a
//! snapshot by itself: every object listed, every blob pulled.

use crate::harness;

use std::time::{Duration, Instant};

use harness::cluster::{ClusterOptions, TestCluster};
use harness::{http_client, list_all_keys, random_bytes};

/// Writes one at a time, so each is its own log entry and the log grows well past the 1000
/// entries kept behind a snapshot (so the purge point moves even if the last snapshot lags).
const OBJECTS: usize = 1300;
/// Every this many objects is large enough to be a blob (not inline), so it must be pulled.
const BLOB_EVERY: usize = 100;

async fn purged_index(cluster: &TestCluster, node: usize) -> Option<u64> {
    let url = format!("{}/api/v1/cluster", cluster.node(node).web_url());
    let body: serde_json::Value = http_client().get(url).send().await.ok()?.json().await.ok()?;
    body["status"]["purged_index"].as_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_down_past_the_purge_point_catches_up_from_a_snapshot() {
    let cluster = TestCluster::start_with(ClusterOptions { snapshot_every: 100, ..Default::default() }).await;
    let (leader, [_, lagging]) = cluster.roles().await;
    cluster.node(lagging).kill9();

    let client = cluster.node(leader).client();
    client.create_bucket().bucket("snap").send().await.expect("create bucket");
    let mut blobs = Vec::new();
    for i in 0..OBJECTS {
        let body = if i % BLOB_EVERY == 0 { random_bytes(i as u64, 20_000) } else { format!("v{i}").into_bytes() };
        let key = format!("k{i:05}");
        client.put_object().bucket("snap").key(&key).body(body.clone().into()).send().await.expect("PUT");
        if i % BLOB_EVERY == 0 {
            blobs.push(body);
        }
    }
    // Snapshots are built and the log purged in the background: wait for it, bounded.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let purged = purged_index(&cluster, leader).await;
        if purged.is_some_and(|p| p > 0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the leader never purged its log behind a snapshot (purged_index {purged:?})\n{}",
            cluster.log_report()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let restarted = Instant::now();
    cluster.node(lagging).restart().await;
    cluster.wait_applied_equal(&[0, 1, 2], OBJECTS as u64, Duration::from_secs(60)).await;
    println!("caught up from a snapshot in {:?}", restarted.elapsed());
    let log = std::fs::read_to_string(cluster.node(lagging).log_path()).unwrap_or_default();
    assert!(
        log.contains("snapshot installed"),
        "the lagging node did not install a snapshot\n{}",
        cluster.log_report()
    );

    let keys = list_all_keys(&cluster.node(lagging).client(), "snap").await;
    assert_eq!(keys.len(), OBJECTS, "objects listed on the node that caught up");

    // The event history travels in the snapshot: the node serves the events of entries it
    // never saw in its log, exactly as the leader does.
    let caught_up = harness::events::history(cluster.node(lagging), None, 1000).await;
    let created = caught_up.iter().filter(|e| e.kind == "ObjectCreated").count();
    assert_eq!(created, OBJECTS, "ObjectCreated events served by the node that caught up");
    assert_eq!(
        caught_up[..OBJECTS + 1],
        harness::events::history(cluster.node(leader), None, 1000).await[..OBJECTS + 1]
    );

    // It owes and performs a pull of every blob it lacks.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let missing = blobs.iter().filter(|b| cluster.blob_files_with(lagging, b).is_empty()).count();
        if missing == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{missing} blobs never pulled after the snapshot\n{}", cluster.log_report());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A region whose disk was lost comes back with its old id and an empty data dir: the leader
/// still believes it holds everything up to where it left, finds out from its first rejection,
/// and sends it the snapshot (its log is purged below that point).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_follower_rejoining_with_its_id_catches_up_from_a_snapshot() {
    const WRITES: usize = OBJECTS;
    let cluster = TestCluster::start_with(ClusterOptions { snapshot_every: 100, ..Default::default() }).await;
    let (leader, [_, wiped]) = cluster.roles().await;
    let client = cluster.node(leader).client();
    client.create_bucket().bucket("wipe").send().await.expect("create bucket");
    for i in 0..WRITES {
        let key = format!("k{i:05}");
        client
            .put_object()
            .bucket("wipe")
            .key(&key)
            .body(format!("v{i}").into_bytes().into())
            .send()
            .await
            .expect("PUT");
    }
    let before = cluster.wait_applied_equal(&[0, 1, 2], WRITES as u64, Duration::from_secs(60)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while purged_index(&cluster, leader).await.is_none_or(|p| p == 0) {
        assert!(Instant::now() < deadline, "the leader never purged its log\n{}", cluster.log_report());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    cluster.node(wiped).kill9();
    std::fs::remove_dir_all(cluster.node(wiped).data_dir()).expect("wipe the data dir");
    std::fs::create_dir_all(cluster.node(wiped).data_dir()).expect("recreate it empty");
    cluster.node(wiped).restart().await;
    // One more write, so the leader has something to replicate (and learns of the loss).
    client.put_object().bucket("wipe").key("after").body(b"after".to_vec().into()).send().await.expect("PUT after");
    cluster.wait_applied_equal(&[0, 1, 2], before + 1, Duration::from_secs(60)).await;
    let keys = list_all_keys(&cluster.node(wiped).client(), "wipe").await;
    assert_eq!(keys.len(), WRITES + 1, "objects listed on the wiped node");
}
