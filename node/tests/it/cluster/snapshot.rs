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

/// Waits (30 s at most) until `leader` has purged its log behind a snapshot.
async fn wait_log_purged(cluster: &TestCluster, leader: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while purged_index(cluster, leader).await.is_none_or(|p| p == 0) {
        assert!(Instant::now() < deadline, "the leader never purged its log\n{}", cluster.log_report());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A region that loses its disk: killed, its data dir emptied (it restarts with its id only).
fn kill_and_wipe(cluster: &TestCluster, node: usize) {
    cluster.node(node).kill9();
    std::fs::remove_dir_all(cluster.node(node).data_dir()).expect("wipe the data dir");
    std::fs::create_dir_all(cluster.node(node).data_dir()).expect("recreate it empty");
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
    wait_log_purged(&cluster, leader).await;

    kill_and_wipe(&cluster, wiped);
    cluster.node(wiped).restart().await;
    // One more write, so the leader has something to replicate (and learns of the loss).
    client.put_object().bucket("wipe").key("after").body(b"after".to_vec().into()).send().await.expect("PUT after");
    cluster.wait_applied_equal(&[0, 1, 2], before + 1, Duration::from_secs(60)).await;
    let keys = list_all_keys(&cluster.node(wiped).client(), "wipe").await;
    assert_eq!(keys.len(), WRITES + 1, "objects listed on the wiped node");
}

/// Objects of the leader-change test: enough, with [`LEADER_CHANGE_PAD`] of metadata each, that
/// the snapshot is larger than one of openraft's chunks (3 MiB), so the install is cut short
/// between chunks.
const LEADER_CHANGE_OBJECTS: usize = 3000;
/// User metadata of each of those objects, bytes (what makes the snapshot large).
const LEADER_CHANGE_PAD: usize = 1400;
/// Bytes a connection to the catching-up node carries before the relay swallows its answers: more
/// than the AppendEntries probes before the snapshot (at most 300 entries of ~1.6 KB each), less
/// than a snapshot chunk, so the first chunk arrives whole and the leader never hears back.
const SNAPSHOT_DOOM_TOTAL: usize = 2 * 1024 * 1024;

/// A region whose data dir was lost catches up by snapshot, and the leader sending it dies in
/// the middle of the install (kill -9 while the node has received the first chunk and the
/// leader waits for its answer). The other node is elected, sends its own snapshot, and the region
/// ends with every object, bytes compared, and the writes acknowledged after the change.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_change_in_the_middle_of_a_snapshot_install_loses_nothing() {
    use crate::harness::cluster::free_ports;
    use crate::harness::relay::CuttingRelay;
    use aws_sdk_s3::primitives::ByteStream;
    use futures::StreamExt as _;

    let ports = free_ports::<12>();
    let mut relays = Vec::new();
    for i in 0..3 {
        relays.push(CuttingRelay::start(ports[4 * i + 2], ports[4 * i + 3]).await);
    }
    let cluster =
        TestCluster::start_behind_relays(&ClusterOptions { snapshot_every: 100, ..Default::default() }, &ports).await;
    let (leader, [wiped, survivor]) = cluster.roles().await;
    let client = cluster.node(leader).client();
    client.create_bucket().bucket("install").send().await.expect("create bucket");
    let body_of = |i: usize| {
        if i.is_multiple_of(BLOB_EVERY) { random_bytes(i as u64, 20_000) } else { format!("v{i}").into_bytes() }
    };
    let pad = "m".repeat(LEADER_CHANGE_PAD);
    let started = Instant::now();
    let puts = futures::stream::iter(0..LEADER_CHANGE_OBJECTS).map(|i| {
        let (client, pad, body) = (client.clone(), pad.clone(), body_of(i));
        async move {
            let key = format!("k{i:05}");
            let put = client.put_object().bucket("install").key(&key).metadata("pad", pad).body(ByteStream::from(body));
            put.send().await.unwrap_or_else(|e| panic!("PUT {key}: {e:?}"));
        }
    });
    // Two at a time: the proposal batcher puts concurrent writes in one entry, and the log must
    // grow past the 1000 entries kept behind a snapshot for the purge point to move.
    puts.buffer_unordered(2).collect::<Vec<()>>().await;
    println!("{LEADER_CHANGE_OBJECTS} objects written in {:?}", started.elapsed());
    let before = cluster.wait_applied_equal(&[0, 1, 2], 1, Duration::from_secs(60)).await;
    wait_log_purged(&cluster, leader).await;

    // The region loses its disk and comes back with its id; the leader's stream to it will send
    // the snapshot down a connection whose answers the relay swallows.
    kill_and_wipe(&cluster, wiped);
    relays[wiped].arm_total(SNAPSHOT_DOOM_TOTAL);
    // Not healthy until it has the keys, which come with the snapshot: not waited for here.
    cluster.node(wiped).start_unwaited();
    // One more write, so the leader has something to replicate (and learns of the loss).
    client.put_object().bucket("install").key("after").body(b"after".to_vec().into()).send().await.expect("PUT after");

    let deadline = Instant::now() + Duration::from_secs(30);
    let first_chunk = loop {
        let log = std::fs::read_to_string(cluster.node(wiped).log_path()).unwrap_or_default();
        if relays[wiped].doomed().0 >= 1
            && let Some(line) = log.lines().find(|l| l.contains("snapshot chunk received"))
        {
            break line.to_owned();
        }
        assert!(Instant::now() < deadline, "no snapshot install started\n{}", cluster.log_report());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!("install started: {first_chunk}");
    cluster.node(leader).kill9();
    relays[wiped].cut();
    // Only the survivor can win (the wiped node's log is empty), and the wiped node is not ready
    // before its install is done: the survivor's own word is what is awaited.
    cluster.wait_for_leader(&[survivor], Duration::from_secs(30)).await;
    // Writes acknowledged by the new leader while the install is redone.
    let via_survivor = cluster.node(survivor).client();
    for i in 0..20 {
        let key = format!("during-{i}");
        via_survivor
            .put_object()
            .bucket("install")
            .key(&key)
            .body(key.clone().into_bytes().into())
            .send()
            .await
            .expect("PUT during");
    }
    // Every write above was acknowledged, so applied on the survivor: equal means the wiped
    // node has them all.
    cluster.wait_applied_equal(&[wiped, survivor], before + 1, Duration::from_secs(60)).await;
    let log = std::fs::read_to_string(cluster.node(wiped).log_path()).unwrap_or_default();
    let chunks: Vec<&str> = log.lines().filter(|l| l.contains("snapshot chunk received")).collect();
    println!("snapshot chunks received by the wiped node: {}\n{}", chunks.len(), chunks.join("\n"));
    assert!(chunks.len() >= 2, "the new leader sent the snapshot again");
    cluster.node(leader).restart().await;
    cluster.wait_applied_equal(&[0, 1, 2], before + 1, Duration::from_secs(60)).await;

    // Every object on the region that caught up, bytes compared.
    let wiped_client = cluster.node(wiped).client();
    let keys = list_all_keys(&wiped_client, "install").await;
    assert_eq!(keys.len(), LEADER_CHANGE_OBJECTS + 21, "objects listed on the wiped node");
    let expected = |key: &str| -> Vec<u8> {
        match key.strip_prefix('k') {
            Some(i) => body_of(i.parse().expect("key index")),
            None if key == "after" => b"after".to_vec(),
            None => key.as_bytes().to_vec(),
        }
    };
    let reads = futures::stream::iter(keys).map(|key| {
        let (client, want) = (wiped_client.clone(), expected(&key));
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let got = match client.get_object().bucket("install").key(&key).send().await {
                    Ok(out) => out.body.collect().await.map(|b| b.into_bytes().to_vec()).ok(),
                    Err(_) => None,
                };
                if got.as_deref() == Some(&want[..]) {
                    return;
                }
                // A blob may still be on its way (pulled after the install).
                assert!(
                    Instant::now() < deadline,
                    "GET {key} on the wiped node: {:?} bytes, want {}",
                    got.map(|g| g.len()),
                    want.len()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });
    reads.buffer_unordered(16).collect::<Vec<()>>().await;
}
