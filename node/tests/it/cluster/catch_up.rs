//! Catch-up of many small objects across a long link (issue 17): a region that was down while
//! hundreds of small objects were written pulls every one of them once it is back, each is
//! listed as held in placement, and the holder reports of many pulls share Raft log entries
//! instead of costing a forwarded commit each; objects deleted while the region catches up are
//! neither held nor left on its disk.
//!
//! Every internal listener sits behind a relay that delays each direction by [`ONE_WAY`], so a
//! report from the follower that pulls is two round trips, as between continents.

use crate::harness;

use std::time::{Duration, Instant};

use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use futures::StreamExt as _;
use harness::cluster::{ClusterOptions, TestCluster, free_ports, id_of};
use harness::delay::DelayRelay;
use harness::placement::placement;
use harness::*;

/// Delay of each direction of every internal link: a 50 ms round trip.
const ONE_WAY: Duration = Duration::from_millis(25);
/// Objects written while the region is down.
const OBJECTS: usize = 300;
/// Size of each: above the inline limit (16 KiB), so each is a blob to pull.
const OBJECT_BYTES: usize = 20 * 1024;
/// Every this many objects, one is deleted right after the region is back.
const DELETE_EVERY: usize = 25;
/// The catch-up (and every other wait here) ends well within this.
const BOUND: Duration = Duration::from_secs(45);

/// The value of an unlabelled series in a Prometheus text (0 when absent).
fn series(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Waits (bounded) until node `i`'s replication queue is empty.
async fn wait_queue_empty(cluster: &TestCluster, i: usize, what: &str) {
    let deadline = Instant::now() + BOUND;
    loop {
        let metrics = cluster.node(i).metrics_text().await;
        if metrics.contains("meridian_replication_queue_length ")
            && series(&metrics, "meridian_replication_queue_length") == 0
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: node {i}'s queue still holds {} items\n{}",
            series(&metrics, "meridian_replication_queue_length"),
            cluster.log_report()
        );
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_region_catches_up_hundreds_of_small_objects_with_reports_sharing_log_entries() {
    let ports = free_ports::<12>();
    let mut relays = Vec::new();
    for i in 0..3 {
        relays.push(DelayRelay::start(ports[4 * i + 2], ports[4 * i + 3], ONE_WAY).await);
    }
    let options = ClusterOptions {
        heartbeat_ms: 300,
        election_timeout_min_ms: 1500,
        election_timeout_max_ms: 3000,
        ..ClusterOptions::default()
    };
    let cluster = TestCluster::start_behind_relays(&options, &ports).await;
    let (leader, [a, c]) = cluster.roles().await;
    let bucket = create_bucket(&cluster.node(leader).client(), "catch-up").await;

    // C (a follower: its reports are forwarded to the leader) is down while the objects are
    // written, half through the leader and half through A, 32 at a time.
    cluster.node(c).kill9();
    let objects: Vec<(String, Vec<u8>)> =
        (0..OBJECTS).map(|i| (format!("small/{i:04}"), random_bytes(4200 + i as u64, OBJECT_BYTES))).collect();
    let clients = [cluster.node(leader).client(), cluster.node(a).client()];
    futures::stream::iter(objects.iter().enumerate())
        .for_each_concurrent(32, |(i, (key, data))| {
            let (client, bucket) = (&clients[i % 2], &bucket);
            async move {
                put(client, bucket, key, data).await;
            }
        })
        .await;
    for i in [leader, a] {
        wait_queue_empty(&cluster, i, "the live regions replicate between themselves").await;
    }
    let applied_before = series(&cluster.node(leader).metrics_text().await, "meridian_raft_applied_index");

    let restarted = Instant::now();
    cluster.node(c).restart().await;
    // Some objects go while C catches up: their reports (if C got that far) are refused alone
    // within their entry, and their copies must not stay on C's disk.
    let deleted: Vec<&str> = objects.iter().step_by(DELETE_EVERY).map(|(k, _)| k.as_str()).collect();
    let identifiers: Vec<ObjectIdentifier> =
        deleted.iter().map(|k| ObjectIdentifier::builder().key(*k).build().expect("object identifier")).collect();
    let delete = Delete::builder().set_objects(Some(identifiers)).build().expect("delete request");
    let answer = clients[0].delete_objects().bucket(&bucket).delete(delete).send().await.expect("DeleteObjects");
    assert!(answer.errors().is_empty(), "DeleteObjects: {:?}", answer.errors());
    // C's queue is empty until it has applied the writes it missed: wait for that first.
    let target = series(&cluster.node(leader).metrics_text().await, "meridian_raft_applied_index");
    let deadline = Instant::now() + BOUND;
    while series(&cluster.node(c).metrics_text().await, "meridian_raft_applied_index") < target {
        assert!(Instant::now() < deadline, "C did not apply the log up to {target}\n{}", cluster.log_report());
        tokio::time::sleep(POLL).await;
    }
    wait_queue_empty(&cluster, c, "C's catch-up").await;
    let caught_up = restarted.elapsed();
    let leader_metrics = cluster.node(leader).metrics_text().await;
    let entries = series(&leader_metrics, "meridian_raft_applied_index") - applied_before;
    let c_metrics = cluster.node(c).metrics_text().await;
    let (reports, report_us, copies, copy_us) = (
        series(&c_metrics, "meridian_pull_reports_total"),
        series(&c_metrics, "meridian_pull_report_microseconds_total"),
        series(&c_metrics, "meridian_pull_copies_total"),
        series(&c_metrics, "meridian_pull_copy_microseconds_total"),
    );
    eprintln!(
        "SMALL CATCH-UP over {:?} RTT: {OBJECTS} x {} KiB, {} deleted meanwhile, in {caught_up:?} from C's restart; \
         {reports} reports in {entries} log entries; mean copy {} ms, mean report {} ms",
        2 * ONE_WAY,
        OBJECT_BYTES / 1024,
        deleted.len(),
        copy_us / copies.max(1) / 1000,
        report_us / reports.max(1) / 1000,
    );

    // Every object kept is held by C, as placement says (at the leader) and C's disk shows.
    let http = http_client();
    let kept: Vec<&(String, Vec<u8>)> = objects.iter().filter(|(k, _)| !deleted.contains(&k.as_str())).collect();
    for (key, data) in &kept {
        let p = placement(&http, cluster.node(leader), &bucket, key)
            .await
            .unwrap_or_else(|e| panic!("placement of {key} at the leader: {e:?}"));
        assert!(p.since(id_of(c)).is_some(), "C must be listed as a holder of {key}: {p:#?}");
        let on_disk = std::fs::read(p.blob_path(cluster.node(c).data_dir()))
            .unwrap_or_else(|e| panic!("C is listed as a holder of {key} but its blob file: {e}"));
        assert!(on_disk == *data, "C's copy of {key} differs from what was written");
    }
    assert!(reports >= kept.len() as u64, "C reported {reports} holdings for {} objects", kept.len());
    // One forwarded commit per report would take as many entries as reports (and a pull slot
    // for two round trips each); shared, the catch-up takes a handful.
    assert!(
        entries < (OBJECTS / 6) as u64,
        "{reports} reports took {entries} log entries: reports do not share entries\n{}",
        cluster.log_report()
    );

    // The deleted objects: gone everywhere, and C keeps no copy (its pulled copies dropped).
    for key in &deleted {
        assert!(
            placement(&http, cluster.node(c), &bucket, key).await.is_err(),
            "{key} was deleted but C's placement still knows it"
        );
    }
    let deadline = Instant::now() + BOUND;
    loop {
        let files = cluster.blob_files(c).len();
        if files == kept.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "C holds {files} blob files for {} objects kept\n{}",
            kept.len(),
            cluster.log_report()
        );
        tokio::time::sleep(POLL).await;
    }
    assert!(cluster.node(c).tmp_files().is_empty(), "C left temp files: {:?}", cluster.node(c).tmp_files());
    drop(relays);
}
