//! Replication of blob files between the data dirs of a three-node cluster: a large object ends
//! up as a byte-identical file under `<data_dir>/blobs/` of every node (and the placement API
//! lists every region as a holder), is readable everywhere the moment its PUT returned,
//! disappears from every disk after its DELETE, and a node that was down while objects were
//! written pulls all of them once it is back, with no operator action.

use crate::harness;

use std::time::{Duration, Instant};

use harness::cluster::{REGIONS, TestCluster, id_of, index_of};
use harness::placement::{placement, wait_placement};
use harness::*;

/// How long a blob may take to reach (or leave) every data dir on loopback.
const CONVERGE_BOUND: Duration = Duration::from_secs(30);

/// Waits (bounded) until `done(node)` holds on every node; returns when each got there (from
/// `since`), or panics with what is still missing.
async fn wait_each(
    cluster: &TestCluster,
    since: Instant,
    timeout: Duration,
    what: &str,
    done: impl Fn(usize) -> bool,
) -> Vec<Duration> {
    let mut reached: Vec<Option<Duration>> = vec![None; cluster.nodes.len()];
    let deadline = since + timeout;
    loop {
        for (i, r) in reached.iter_mut().enumerate() {
            if r.is_none() && done(i) {
                *r = Some(since.elapsed());
            }
        }
        if reached.iter().all(Option::is_some) {
            return reached.into_iter().map(|r| r.expect("all reached")).collect();
        }
        if Instant::now() > deadline {
            panic!("{what}: not reached within {timeout:?} on every node: {reached:?}\n{}", cluster.log_report());
        }
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_large_object_reaches_every_data_dir_and_its_delete_removes_it_everywhere() {
    let cluster = TestCluster::start().await;
    // Written through a follower; the other follower is the reader.
    let (leader, [a, c]) = cluster.roles().await;
    let (client_a, client_c) = (cluster.node(a).client(), cluster.node(c).client());
    let bucket = create_bucket(&client_a, "repl").await;
    let data = random_bytes(2024, 2 * MIB);

    put(&client_a, &bucket, "big", &data).await;
    let put_done = Instant::now();
    // Readable at C at once, whether or not C has pulled it yet.
    assert_bytes_eq(&get_bytes(&client_c, &bucket, "big").await, &data, "GET at node C right after the PUT at A");
    let first_read = put_done.elapsed();
    // The node that took the PUT holds the file before answering.
    assert_eq!(cluster.blob_files_with(a, &data).len(), 1, "node A's blob file right after its PUT returned");
    // C's placement view knows the object at once and lists A as a holder from the start.
    let http = http_client();
    let early = placement(&http, cluster.node(c), &bucket, "big").await.expect("placement at C right after the PUT");
    assert!(early.since(id_of(a)).is_some(), "A must hold the blob from its PUT on: {early:#?}");
    assert_eq!((early.size, early.etag.as_str(), early.inline), (data.len() as u64, md5_hex(&data).as_str(), false));
    eprintln!("placement at C right after the PUT: holders {:?}, pending {:?}", early.holder_ids(), early.pending);

    // Every region holds it within the bound, as placement says and as each disk shows.
    let done = wait_placement(&http, cluster.node(c), &bucket, "big", CONVERGE_BOUND, "replication", |p| {
        p.replicated && p.holder_ids() == [1, 2, 3]
    })
    .await;
    assert!(done.pending.is_empty(), "nothing pending once replicated: {done:#?}");
    for holder in &done.holders {
        let i = index_of(holder.node_id);
        assert_eq!(holder.region.as_deref(), Some(REGIONS[i].0), "region name of node {}", holder.node_id);
        assert!(holder.since_ms >= done.last_modified_ms, "node {i} got the blob before it was written: {done:#?}");
        let path = done.blob_path(cluster.node(i).data_dir());
        let on_disk = std::fs::read(&path).unwrap_or_else(|e| panic!("node {i} is listed but {path:?}: {e}"));
        assert_bytes_eq(&on_disk, &data, &format!("blob file of node {i} listed by placement"));
    }

    let reached = wait_each(&cluster, put_done, CONVERGE_BOUND, "the 2 MiB blob file", |i| {
        cluster.blob_files_with(i, &data).len() == 1
    })
    .await;
    let converged = reached.iter().max().copied().unwrap_or_default();
    eprintln!(
        "REPLICATION: 2 MiB object PUT at node {a}, leader {leader}; GET at node {c} took {first_read:?}; blob file on nodes 0/1/2 after {reached:?}; converged after {converged:?}"
    );
    let names: Vec<_> =
        (0..3).map(|i| cluster.blob_files_with(i, &data)[0].file_name().map(ToOwned::to_owned)).collect();
    eprintln!("blob file names: {names:?}");
    for (i, node) in cluster.nodes.iter().enumerate() {
        assert_bytes_eq(&get_bytes(&node.client(), &bucket, "big").await, &data, &format!("GET on node {i}"));
    }

    // Delete through the leader: the file leaves every data dir.
    ok(cluster.node(leader).client().delete_object().bucket(&bucket).key("big").send().await, "DeleteObject");
    let deleted = Instant::now();
    let gone = wait_each(&cluster, deleted, CONVERGE_BOUND, "removal of the blob file", |i| {
        cluster.blob_files_with(i, &data).is_empty()
    })
    .await;
    eprintln!("DELETE: blob file gone from nodes 0/1/2 after {gone:?}");
    for (i, node) in cluster.nodes.iter().enumerate() {
        expect_err(
            node.client().get_object().bucket(&bucket).key("big").send().await,
            404,
            Some("NoSuchKey"),
            &format!("GET after DELETE on node {i}"),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_killed_during_writes_pulls_every_missed_blob_after_restart() {
    const N: usize = 20;
    let cluster = TestCluster::start().await;
    let (leader, [a, c]) = cluster.roles().await;
    let bucket = create_bucket(&cluster.node(a).client(), "catchup").await;

    cluster.node(c).kill9();
    let mut objects = Vec::new();
    for i in 0..N {
        let size = 64 * 1024 + XorShift::new(i as u64 + 500).below(236 * 1024 + 1) as usize;
        let data = random_bytes(9000 + i as u64, size);
        // Half through the follower, half through the leader.
        let via = if i % 2 == 0 { a } else { leader };
        let key = format!("missed/{i:02}");
        put(&cluster.node(via).client(), &bucket, &key, &data).await;
        objects.push((key, data));
    }
    let written = Instant::now();
    let present = |i: usize| objects.iter().filter(|(_, d)| cluster.blob_files_with(i, d).len() == 1).count();
    // The two live nodes replicate between themselves; the dead one has none of them.
    for i in [a, leader] {
        let deadline = written + CONVERGE_BOUND;
        while present(i) < N {
            assert!(
                Instant::now() < deadline,
                "node {i} holds {} of {N} blob files\n{}",
                present(i),
                cluster.log_report()
            );
            tokio::time::sleep(POLL).await;
        }
    }
    assert_eq!(present(c), 0, "node {c} was down while the objects were written");

    let restart = Instant::now();
    cluster.node(c).restart().await;
    let ready = restart.elapsed();
    let deadline = restart + Duration::from_secs(60);
    loop {
        let n = present(c);
        if n == N {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node {c} holds only {n} of {N} blob files 60 s after its restart\n{}",
            cluster.log_report()
        );
        tokio::time::sleep(POLL).await;
    }
    let converged = restart.elapsed();
    eprintln!(
        "CATCH-UP REPLICATION: node {c} ready {ready:?} after restart; all {N} blob files ({} KiB) byte-identical after {converged:?}",
        objects.iter().map(|(_, d)| d.len()).sum::<usize>() / 1024
    );
    // Exactly one file per object (no duplicates, no leftovers) and every byte right through C.
    let expected_files = N;
    let files = cluster.blob_files(c).len();
    assert_eq!(files, expected_files, "blob files on node {c}");
    let client_c = cluster.node(c).client();
    for (key, data) in &objects {
        assert_bytes_eq(&get_bytes(&client_c, &bucket, key).await, data, &format!("GET {key} at node {c}"));
    }
    assert!(cluster.node(c).tmp_files().is_empty(), "node {c} left temp files: {:?}", cluster.node(c).tmp_files());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_at_a_node_still_pulling_stream_from_a_holder_ranges_included() {
    // Pulls limited to 1 MiB/s: a 6 MiB blob takes C about six seconds to copy, a window in
    // which C knows the object but does not hold its bytes.
    let options = harness::cluster::ClusterOptions { bandwidth_mib_per_sec: 1, ..Default::default() };
    let cluster = TestCluster::start_with(options).await;
    let (a, c) = (0, 2);
    let http = http_client();
    let bucket = create_bucket(&cluster.node(a).client(), "stream-through").await;
    let data = random_bytes(606, 6 * MIB);
    put(&cluster.node(a).client(), &bucket, "movie", &data).await;

    let pending_at_c = |p: &harness::placement::Placement| p.since(id_of(c)).is_none();
    let before = placement(&http, cluster.node(c), &bucket, "movie").await.expect("placement at C");
    assert!(pending_at_c(&before), "C cannot have pulled 6 MiB at 1 MiB/s yet: {before:#?}");

    let client_c = cluster.node(c).client();
    assert_bytes_eq(&get_bytes(&client_c, &bucket, "movie").await, &data, "whole GET at C while it pulls");
    let n = data.len();
    for (range, want) in [
        ("bytes=0-99".to_owned(), 0..100),
        ("bytes=1000000-2999999".to_owned(), 1_000_000..3_000_000),
        (format!("bytes={}-", n - 5), n - 5..n),
        ("bytes=-100".to_owned(), n - 100..n),
    ] {
        let out = ok(
            client_c.get_object().bucket(&bucket).key("movie").range(&range).send().await,
            &format!("GET {range} at C"),
        );
        let expected = format!("bytes {}-{}/{n}", want.start, want.end - 1);
        assert_eq!(out.content_range(), Some(expected.as_str()), "{range}");
        let body = out.body.collect().await.expect("range body").into_bytes();
        assert_bytes_eq(&body, &data[want], &format!("GET {range} at C while it pulls"));
    }
    // Still not held by C after all those reads: they were streamed from a holder.
    let during = placement(&http, cluster.node(c), &bucket, "movie").await.expect("placement at C");
    assert!(pending_at_c(&during), "the reads above must have run while C was still pulling: {during:#?}");
    assert!(cluster.blob_files_with(c, &data).is_empty(), "C must not hold the file yet");

    // The throttled pull still completes.
    let done = wait_placement(&http, cluster.node(c), &bucket, "movie", CONVERGE_BOUND, "throttled pull", |p| {
        !pending_at_c(p)
    })
    .await;
    assert_bytes_eq(
        &std::fs::read(done.blob_path(cluster.node(c).data_dir())).expect("C's blob file"),
        &data,
        "C's copy after the throttled pull",
    );
}
