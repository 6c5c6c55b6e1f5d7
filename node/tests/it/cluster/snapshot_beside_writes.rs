//! A snapshot build does not stall writes (issue #16): the dump runs from a consistent view
//! beside `apply`, so the leader's applied index moves on while its snapshot file is being
//! written, and no PUT fails meanwhile.
//!
//! Timing-free: a build is "in progress" between its `snapshot view opened` log line and its
//! `snapshot written` line (same snapshot id, whose first half is the view's applied index X).
//! The test samples the leader's applied index, then reads its log: an index above X sampled
//! before a log read that shows build X opened but not written proves an apply happened during
//! the build (an index above X cannot be sampled before the view opened at X). Before this
//! change `apply` waited for the whole dump, so no such sample could exist.

use crate::harness;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use futures::StreamExt as _;
use harness::cluster::{ClusterOptions, TestCluster};
use harness::random_bytes;

/// Objects written before the observation starts: with [`BODY_BYTES`] each, a snapshot of
/// ~30 MB, whose dump takes long enough to be seen (and stays under the policy's 32 MiB, so a
/// build follows every `snapshot_every` entries).
const OBJECTS: usize = 2500;
/// Body of each object: inline in the log and the state (under the gateway's 16 KiB).
const BODY_BYTES: usize = 12 * 1024;

/// The snapshot ids of the builds `log` shows as opened but not yet written.
fn builds_in_progress(log: &str) -> Vec<(u64, String)> {
    let id_after = |line: &str| {
        let rest = &line[line.find("snapshot=")? + "snapshot=".len()..];
        let id = rest.split_whitespace().next()?.trim_matches('"').to_owned();
        let index = id.split('-').next()?.parse::<u64>().ok()?;
        Some((index, id))
    };
    let opened: Vec<(u64, String)> =
        log.lines().filter(|l| l.contains("snapshot view opened")).filter_map(id_after).collect();
    let written: Vec<String> =
        log.lines().filter(|l| l.contains("snapshot written")).filter_map(id_after).map(|(_, id)| id).collect();
    opened.into_iter().filter(|(_, id)| !written.contains(id)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_are_applied_while_a_snapshot_is_built() {
    let cluster = TestCluster::start_with(ClusterOptions { snapshot_every: 100, ..Default::default() }).await;
    let leader = cluster.leader().await;
    let client = cluster.node(leader).client();
    client.create_bucket().bucket("beside").send().await.expect("create bucket");
    let started = Instant::now();
    futures::stream::iter(0..OBJECTS)
        .map(|i| {
            let client = client.clone();
            async move {
                let key = format!("fill/{i:05}");
                let body = ByteStream::from(random_bytes(i as u64, BODY_BYTES));
                client
                    .put_object()
                    .bucket("beside")
                    .key(&key)
                    .body(body)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("PUT {key}: {e:?}"));
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
    println!("{OBJECTS} objects written in {:?}", started.elapsed());

    // Writes go on, one entry after another, while the test watches the leader's builds.
    let stop = Arc::new(AtomicBool::new(false));
    let slowest_micros = Arc::new(AtomicU64::new(0));
    let writer = tokio::spawn({
        let (client, stop, slowest_micros) = (client.clone(), stop.clone(), slowest_micros.clone());
        async move {
            let mut written = 0usize;
            while !stop.load(Ordering::Acquire) {
                let key = format!("during/{written:06}");
                let body = ByteStream::from(random_bytes(written as u64, BODY_BYTES));
                let put = Instant::now();
                let outcome = client.put_object().bucket("beside").key(&key).body(body).send().await;
                outcome.unwrap_or_else(|e| panic!("PUT {key} during snapshot builds: {e:?}"));
                let micros = u64::try_from(put.elapsed().as_micros()).unwrap_or(u64::MAX);
                slowest_micros.fetch_max(micros, Ordering::Relaxed);
                written += 1;
            }
            written
        }
    });

    let deadline = Instant::now() + Duration::from_secs(120);
    let seen = loop {
        let applied = cluster.health(leader).await.map(|h| h.applied_index).unwrap_or(0);
        let log = std::fs::read_to_string(cluster.node(leader).log_path()).unwrap_or_default();
        if let Some((index, id)) = builds_in_progress(&log).into_iter().find(|(index, _)| applied > *index) {
            break (index, id, applied);
        }
        assert!(
            Instant::now() < deadline && !writer.is_finished(),
            "no apply was seen during a snapshot build within 120 s\n{}",
            cluster.log_report()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    stop.store(true, Ordering::Release);
    let written =
        tokio::time::timeout(Duration::from_secs(60), writer).await.expect("the writer stops").expect("writer");
    let (index, id, applied) = seen;
    println!(
        "build {id} (view at {index}) in progress while the leader had applied {applied}; {written} PUTs beside the \
         builds, slowest {} ms",
        slowest_micros.load(Ordering::Relaxed) / 1000
    );
    // The build finishes, and its file holds what the view saw (the node stays healthy).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = std::fs::read_to_string(cluster.node(leader).log_path()).unwrap_or_default();
        if log.lines().any(|l| l.contains("snapshot written") && l.contains(&id)) {
            break;
        }
        assert!(Instant::now() < deadline, "build {id} never finished\n{}", cluster.log_report());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.wait_applied_equal(&[0, 1, 2], applied, Duration::from_secs(60)).await;
}
