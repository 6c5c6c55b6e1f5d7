//! Large blobs pulled in segments (issue 17): a pull interrupted by its holder's death or by
//! the puller's own restart continues from the segments it already verified instead of from
//! zero; a blob split over two holders at once arrives byte for byte; bytes that fail the
//! object's digests (a holder with a damaged copy) are refused and fetched again; and a blob a
//! viewer asks for, and small objects, are pulled before a queue of large ones.
//!
//! Pulls are throttled (`[replication] bandwidth_mib_per_sec`) so that a test can act in the
//! middle of one; "how far" is read from the puller's own counters on `/metrics`.

use crate::harness;

use std::time::{Duration, Instant};

use harness::cluster::{ClusterOptions, TestCluster, id_of};
use harness::placement::{placement, wait_placement};
use harness::*;

/// A pull of the sizes below, throttled as below, converges well within this.
const CONVERGE_BOUND: Duration = Duration::from_secs(40);

/// The value of an unlabelled counter in a Prometheus text (0 when absent).
fn counter(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Options of a cluster whose pulls of blobs above 1 MiB go in 1 MiB segments at `mib_per_sec`.
fn segmented(mib_per_sec: u64, streams: usize) -> ClusterOptions {
    ClusterOptions {
        bandwidth_mib_per_sec: mib_per_sec,
        replication_extra: format!("segment_mib = 1\nstreams_per_blob = {streams}\nsplit_above_mib = 1\n"),
        ..Default::default()
    }
}

/// Waits (bounded) until node `i` has received at least `bytes` blob bytes from holders.
async fn wait_fetched(cluster: &TestCluster, i: usize, bytes: u64) {
    let deadline = Instant::now() + CONVERGE_BOUND;
    loop {
        let fetched = counter(&cluster.node(i).metrics_text().await, "meridian_pull_fetched_bytes_total");
        if fetched >= bytes {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node {i} fetched only {fetched} of {bytes} bytes\n{}",
            cluster.log_report()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Files left under node `i`'s `partial/` directory.
fn partial_files(cluster: &TestCluster, i: usize) -> Vec<std::path::PathBuf> {
    match std::fs::read_dir(cluster.node(i).data_dir().join("partial")) {
        Ok(entries) => entries.filter_map(Result::ok).map(|e| e.path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// Waits until node `c` is listed as a holder of `bucket/key`, then checks its blob file.
async fn wait_held_exactly(cluster: &TestCluster, c: usize, bucket: &str, key: &str, data: &[u8], what: &str) {
    let http = http_client();
    let done =
        wait_placement(&http, cluster.node(c), bucket, key, CONVERGE_BOUND, what, |p| p.since(id_of(c)).is_some())
            .await;
    let on_disk = std::fs::read(done.blob_path(cluster.node(c).data_dir())).expect("the puller's blob file");
    assert_bytes_eq(&on_disk, data, &format!("{what}: the puller's copy"));
    assert!(partial_files(cluster, c).is_empty(), "{what}: partial files left: {:?}", partial_files(cluster, c));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pull_cut_by_its_holders_death_resumes_from_the_verified_offset() {
    // 16 MiB at 4 MiB/s: about four seconds per puller, one stream.
    let cluster = TestCluster::start_with(segmented(4, 1)).await;
    let (_leader, [a, c]) = cluster.roles().await;
    let bucket = create_bucket(&cluster.node(a).client(), "resume-holder").await;
    let data = random_bytes(1717, 16 * MIB);
    put(&cluster.node(a).client(), &bucket, "film", &data).await;

    // A is the only holder: kill it when C is about half way.
    let size = data.len() as u64;
    wait_fetched(&cluster, c, size / 2).await;
    cluster.node(a).kill9();
    let at_kill = counter(&cluster.node(c).metrics_text().await, "meridian_pull_fetched_bytes_total");
    assert!(at_kill < size, "C finished before A died ({at_kill} bytes): the test proves nothing");
    cluster.node(a).restart().await;

    wait_held_exactly(&cluster, c, &bucket, "film", &data, "pull resumed after the holder's restart").await;
    let metrics = cluster.node(c).metrics_text().await;
    let (fetched, resumed) = (
        counter(&metrics, "meridian_pull_fetched_bytes_total"),
        counter(&metrics, "meridian_pull_resumed_bytes_total"),
    );
    eprintln!(
        "RESUME AFTER HOLDER DEATH: {size} bytes, {at_kill} fetched at the kill, {fetched} in all, {resumed} resumed"
    );
    // `resumed` counts what a new attempt found on disk; when the holder is back before the
    // pull gives up, the same attempt continues from its segments and it stays 0. Either way
    // the bytes fetched say whether it started again from zero.
    // From zero again would cost at least size + at_kill; resuming costs about size plus the
    // segment in flight.
    assert!(fetched < size + at_kill.min(size / 2) - MIB as u64, "C fetched {fetched} bytes for a {size}-byte blob");
    assert_bytes_eq(&get_bytes(&cluster.node(c).client(), &bucket, "film").await, &data, "GET at C");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_puller_restarted_mid_pull_resumes_and_leaves_no_partial_behind() {
    let cluster = TestCluster::start_with(segmented(4, 1)).await;
    let (_leader, [a, c]) = cluster.roles().await;
    let bucket = create_bucket(&cluster.node(a).client(), "resume-puller").await;
    let data = random_bytes(2727, 16 * MIB);
    put(&cluster.node(a).client(), &bucket, "film", &data).await;
    let size = data.len() as u64;
    wait_fetched(&cluster, c, size / 2).await;
    cluster.node(c).kill9();
    assert!(!partial_files(&cluster, c).is_empty(), "the partial copy must be on disk when the puller dies");
    cluster.node(c).restart().await;

    wait_held_exactly(&cluster, c, &bucket, "film", &data, "pull resumed after the puller's restart").await;
    // The counters started again with the process: they count what was fetched after it.
    let metrics = cluster.node(c).metrics_text().await;
    let (fetched, resumed) = (
        counter(&metrics, "meridian_pull_fetched_bytes_total"),
        counter(&metrics, "meridian_pull_resumed_bytes_total"),
    );
    eprintln!("RESUME AFTER PULLER RESTART: {size} bytes; after the restart {fetched} fetched, {resumed} resumed");
    assert!(resumed >= size / 3, "the restarted puller must keep what it had ({resumed} bytes resumed)");
    assert!(fetched <= size - resumed + 2 * MIB as u64, "only the missing segments are fetched: {fetched}");
}

/// A cluster where C was down while `data` was written at A and pulled by B: C then has two
/// holders to pull from, over two streams.
/// `env`: the testing switches every node starts with.
async fn two_holders(
    seed: u64,
    bucket: &str,
    env: Vec<(&'static str, &'static str)>,
) -> (TestCluster, String, Vec<u8>, [usize; 3]) {
    let cluster = TestCluster::start_with(ClusterOptions { env, ..segmented(0, 2) }).await;
    let (leader, [a, c]) = cluster.roles().await;
    cluster.node(c).kill9();
    let bucket = create_bucket(&cluster.node(a).client(), bucket).await;
    let data = random_bytes(seed, 12 * MIB);
    put(&cluster.node(a).client(), &bucket, "film", &data).await;
    let http = http_client();
    wait_placement(&http, cluster.node(a), &bucket, "film", CONVERGE_BOUND, "two holders", |p| {
        p.since(id_of(a)).is_some() && p.since(id_of(leader)).is_some()
    })
    .await;
    (cluster, bucket, data, [a, leader, c])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_parallel_pull_from_two_holders_produces_the_exact_bytes() {
    let (cluster, bucket, data, [_, _, c]) = two_holders(3737, "parallel", Vec::new()).await;
    cluster.node(c).restart().await;
    wait_held_exactly(&cluster, c, &bucket, "film", &data, "parallel pull").await;
    let metrics = cluster.node(c).metrics_text().await;
    assert_eq!(counter(&metrics, "meridian_pull_refused_bytes_total"), 0, "nothing to refuse");
    assert!(counter(&metrics, "meridian_pull_fetched_bytes_total") >= data.len() as u64);
    assert_bytes_eq(&get_bytes(&cluster.node(c).client(), &bucket, "film").await, &data, "GET at C");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bytes_from_a_damaged_holder_are_refused_and_fetched_again() {
    let (cluster, bucket, data, [_, b, c]) = two_holders(4747, "damaged", Vec::new()).await;
    // Damage B's copy in every segment: whichever runs of segments B serves are wrong (the
    // two streams share one queue of runs, so which runs B serves depends on timing).
    let files = cluster.blob_files_with(b, &data);
    assert_eq!(files.len(), 1, "B's blob file");
    let mut damaged = data.clone();
    for at in (MIB / 2..data.len()).step_by(MIB) {
        damaged[at] ^= 0x5a;
    }
    std::fs::write(&files[0], &damaged).expect("damage B's copy");
    cluster.node(c).restart().await;

    wait_held_exactly(&cluster, c, &bucket, "film", &data, "pull past a damaged holder").await;
    let refused = counter(&cluster.node(c).metrics_text().await, "meridian_pull_refused_bytes_total");
    assert!(refused > 0, "B's bytes must have been refused: {refused}");
    assert_bytes_eq(&get_bytes(&cluster.node(c).client(), &bucket, "film").await, &data, "GET at C");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_viewers_object_and_small_objects_jump_the_queue_of_large_pulls() {
    // Two pulls at once, 2 MiB/s in all: six 4 MiB objects take C about twelve seconds in a row.
    let options = ClusterOptions {
        bandwidth_mib_per_sec: 2,
        max_concurrent_pulls: 2,
        replication_extra: "small_object_kib = 64\n".into(),
        ..Default::default()
    };
    let cluster = TestCluster::start_with(options).await;
    let (_leader, [a, c]) = cluster.roles().await;
    let client_a = cluster.node(a).client();
    let bucket = create_bucket(&client_a, "priority").await;
    cluster.node(c).kill9();
    let mut large = Vec::new();
    for i in 0..6u64 {
        let data = random_bytes(5000 + i, 4 * MIB);
        put(&client_a, &bucket, &format!("queue/{i}"), &data).await;
        large.push(data);
    }
    let mut small = Vec::new();
    for i in 0..4u64 {
        let data = random_bytes(6000 + i, 32 * 1024);
        put(&client_a, &bucket, &format!("small/{i}"), &data).await;
        small.push(data);
    }
    // Written last: a queue taken in order would pull it last.
    let wanted = random_bytes(7000, 2 * MIB);
    put(&client_a, &bucket, "wanted", &wanted).await;

    cluster.node(c).restart().await;
    assert_bytes_eq(&get_bytes(&cluster.node(c).client(), &bucket, "wanted").await, &wanted, "viewer's GET at C");
    let http = http_client();
    let held = |key: &str| {
        let (http, node, bucket, key) = (&http, cluster.node(c), &bucket, key.to_owned());
        async move { placement(http, node, bucket, &key).await.ok().is_some_and(|p| p.since(id_of(c)).is_some()) }
    };
    let deadline = Instant::now() + CONVERGE_BOUND;
    while !held("wanted").await {
        assert!(Instant::now() < deadline, "C never pulled the wanted object\n{}", cluster.log_report());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let large_held = async || {
        let mut n = 0;
        for i in 0..6 {
            n += usize::from(held(&format!("queue/{i}")).await);
        }
        n
    };
    let at_wanted = large_held().await;
    loop {
        let mut small_held = 0;
        for i in 0..4 {
            small_held += usize::from(held(&format!("small/{i}")).await);
        }
        if small_held == 4 {
            break;
        }
        assert!(Instant::now() < deadline, "C pulled only {small_held} of 4 small objects\n{}", cluster.log_report());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let at_small = large_held().await;
    eprintln!(
        "PRIORITY: C held {at_wanted} of 6 large objects when it held the wanted one, {at_small} when it held every small one"
    );
    assert!(at_wanted <= 2, "the viewer's object must not wait for the queue: {at_wanted} of 6 large pulled first");
    assert!(at_small <= 3, "small objects must not wait behind the large ones: {at_small} of 6 large pulled first");
    for (i, data) in large.iter().enumerate() {
        wait_held_exactly(&cluster, c, &bucket, &format!("queue/{i}"), data, "the queue still drains").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn holders_speaking_the_previous_releases_wire_serve_segmented_pulls() {
    // The cluster runs as release a01dacd (no version headers, format 0); C comes back as this
    // release, as in a rolling upgrade. Ranged requests are what a01dacd already serves, so the
    // new puller needs nothing else from its holders.
    let previous = vec![("MERIDIAN_TESTING_PREVIOUS_RELEASE", "1")];
    let (cluster, bucket, data, [_, _, c]) = two_holders(5757, "old-holders", previous).await;
    cluster.node(c).set_env(&[]);
    cluster.node(c).restart().await;
    wait_held_exactly(&cluster, c, &bucket, "film", &data, "segmented pull from previous-release holders").await;
    assert_bytes_eq(&get_bytes(&cluster.node(c).client(), &bucket, "film").await, &data, "GET at C");
}
