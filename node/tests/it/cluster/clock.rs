//! The clock nemesis (#19): one follower runs under libfaketime. Leases compare only monotonic
//! clocks with themselves, so a wall-clock offset of a few hundred ms changes nothing; a rate
//! drift inside the bound (half the lease margin, see "Read leases" in docs/architecture.md)
//! keeps the lease in use; past the bound the node measures it, says so (status, metrics,
//! `meridian cluster status`) and stops reading under its lease, and a read right after an
//! acknowledged write through it never returns the old value.
//! Skipped loudly when libfaketime is missing (scripts/install-test-tools installs it).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::cluster::{ClusterOptions, TestCluster, id_of, run_cli};
use crate::harness::faketime::{ClockSkew, require_libfaketime};
use crate::harness::*;

/// What a node's `GET /api/v1/cluster` says of its lease and clock.
#[derive(Debug, Clone)]
struct LeaseView {
    /// Remaining lease it would read under, ms.
    lease_ms: Option<u64>,
    /// Reads served under the lease.
    lease_reads: u64,
    /// Reads that asked the leader.
    read_index_reads: u64,
    /// `clock_drift.verdict`.
    verdict: Option<String>,
    /// `clock_drift.estimate_ppm`.
    estimate_ppm: Option<i64>,
    /// `clock_drift.episodes`.
    episodes: u64,
}

async fn lease_view(node: &TestNode) -> LeaseView {
    let url = format!("{}/api/v1/cluster", node.web_url());
    let body: serde_json::Value =
        http_client().get(&url).send().await.expect("GET /api/v1/cluster").json().await.expect("JSON");
    let s = &body["status"];
    LeaseView {
        lease_ms: s["read_lease_ms"].as_u64(),
        lease_reads: s["lease_reads"].as_u64().expect("lease_reads"),
        read_index_reads: s["read_index_reads"].as_u64().expect("read_index_reads"),
        verdict: s["clock_drift"]["verdict"].as_str().map(str::to_owned),
        estimate_ppm: s["clock_drift"]["estimate_ppm"].as_i64(),
        episodes: s["clock_drift"]["episodes"].as_u64().unwrap_or(0),
    }
}

/// Waits (bounded) until node `i`'s drift verdict is `verdict`; returns its view then.
async fn wait_verdict(cluster: &TestCluster, i: usize, verdict: &str) -> LeaseView {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let view = lease_view(cluster.node(i)).await;
        if view.verdict.as_deref() == Some(verdict) {
            return view;
        }
        assert!(
            Instant::now() < deadline,
            "node {i} never reached drift verdict {verdict}: {view:?}\n{}",
            cluster.log_report()
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Starts a cluster whose node 2 runs with `skew`, and makes sure node 2 is a follower (the
/// drift is measured against the leader's clock): while it leads, it is restarted, up to five
/// times. Returns the cluster and the leader's index.
async fn cluster_with_skewed_follower(skew: &ClockSkew, library: &Path) -> (TestCluster, usize) {
    let launches = [Default::default(), Default::default(), skew.launch(library)];
    let cluster = TestCluster::start_launched(ClusterOptions::default(), launches).await;
    for _ in 0..5 {
        let leader = cluster.leader().await;
        if leader != 2 {
            return (cluster, leader);
        }
        cluster.node(2).restart().await;
    }
    panic!("the skewed node kept winning elections\n{}", cluster.log_report());
}

/// Reads `key` through `client` `reads` times, each right after an acknowledged overwrite
/// through `writer`: every read must return the value just written.
async fn read_after_write(writer: &aws_sdk_s3::Client, reader: &aws_sdk_s3::Client, bucket: &str, rounds: usize) {
    for round in 0..rounds {
        let value = format!("value {round}");
        put(writer, bucket, "register", value.as_bytes()).await;
        let got = get_bytes(reader, bucket, "register").await;
        assert_eq!(String::from_utf8_lossy(&got), value, "round {round}: a read right after an acknowledged write");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wall_clock_offset_changes_nothing_for_leases() {
    let Some(library) = require_libfaketime("cluster::clock::a_wall_clock_offset_changes_nothing_for_leases") else {
        return;
    };
    // The nemesis on a running cluster: a follower restarted 400 ms behind.
    let cluster = TestCluster::start().await;
    let (_, [_, skewed]) = cluster.roles().await;
    ClockSkew::offset(-0.4).apply(cluster.node(skewed), &library).await;
    // A restarted follower finds the leader in place (it keeps its followers' votes).
    let leader = cluster.leader().await;
    assert_ne!(leader, skewed, "the restarted node took the lead");
    let view = wait_verdict(&cluster, skewed, "within_bound").await;
    assert!(view.estimate_ppm.is_some_and(|ppm| ppm.abs() < 20_000), "an offset is not a rate: {view:?}");
    let bucket = create_bucket(&cluster.node(leader).client(), "clock-offset").await;
    let before = lease_view(cluster.node(skewed)).await;
    read_after_write(&cluster.node(leader).client(), &cluster.node(skewed).client(), &bucket, 40).await;
    let after = lease_view(cluster.node(skewed)).await;
    println!("offset -0.4 s: {before:?} -> {after:?}");
    assert!(
        after.lease_reads - before.lease_reads >= 30,
        "reads through the offset node should use its lease: {before:?} -> {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drift_inside_the_bound_keeps_the_lease() {
    let Some(library) = require_libfaketime("cluster::clock::a_drift_inside_the_bound_keeps_the_lease") else {
        return;
    };
    // 2% fast: the leader's clock looks 1.96% slow from the node.
    let (cluster, leader) = cluster_with_skewed_follower(&ClockSkew::rate(1.02), &library).await;
    wait_verdict(&cluster, 2, "within_bound").await;
    // A full window (32 renewals of 100 ms) makes the estimate a measurement of what
    // libfaketime does to Rust's Instant, not of round-trip jitter.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let view = lease_view(cluster.node(2)).await;
    let ppm = view.estimate_ppm.expect("an estimate");
    println!("rate x1.02: measured {ppm} ppm (expected about -19600): {view:?}");
    assert!((-35_000..=-8_000).contains(&ppm), "libfaketime's rate should show in the estimate: {view:?}");
    assert_eq!(view.verdict.as_deref(), Some("within_bound"));
    let bucket = create_bucket(&cluster.node(leader).client(), "clock-drift-ok").await;
    let before = lease_view(cluster.node(2)).await;
    read_after_write(&cluster.node(leader).client(), &cluster.node(2).client(), &bucket, 40).await;
    let after = lease_view(cluster.node(2)).await;
    assert!(after.lease_reads - before.lease_reads >= 30, "the lease stays in use: {before:?} -> {after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drift_past_the_bound_stops_lease_reads_and_reads_stay_fresh() {
    let Some(library) =
        require_libfaketime("cluster::clock::a_drift_past_the_bound_stops_lease_reads_and_reads_stay_fresh")
    else {
        return;
    };
    // 0.7 s per real second: a lease of 400 ms minus its 45 ms margin lasts 507 ms of real
    // time on this node, longer than the leader's record of it (445 ms): unsafe if used.
    let (cluster, leader) = cluster_with_skewed_follower(&ClockSkew::rate(0.7), &library).await;
    let view = wait_verdict(&cluster, 2, "exceeded").await;
    let ppm = view.estimate_ppm.expect("an estimate");
    println!("rate x0.7: measured {ppm} ppm (expected about +428600): {view:?}");
    assert!((350_000..=520_000).contains(&ppm), "libfaketime's rate should show in the estimate: {view:?}");
    assert!(view.episodes >= 1, "{view:?}");
    assert_eq!(view.lease_ms, None, "status shows no usable lease: {view:?}");

    let metrics = cluster.node(2).metrics_text().await;
    assert!(metrics.contains("\nmeridian_clock_drift_exceeded 1\n"), "metrics:\n{metrics}");
    assert!(metrics.contains("meridian_clock_drift_episodes_total "), "metrics:\n{metrics}");

    let (ok, text) = run_cli(
        &["cluster".as_ref(), "status".as_ref(), "--config".as_ref(), cluster.node(0).config_path().as_os_str()],
        Duration::from_secs(20),
    )
    .await;
    assert!(ok, "meridian cluster status failed:\n{text}");
    assert!(text.contains("clock_drift") && text.contains("ppm!"), "cluster status shows the drift:\n{text}");

    let bucket = create_bucket(&cluster.node(leader).client(), "clock-drift-past").await;
    let before = lease_view(cluster.node(2)).await;
    read_after_write(&cluster.node(leader).client(), &cluster.node(2).client(), &bucket, 60).await;
    let after = lease_view(cluster.node(2)).await;
    println!("rate x0.7: {before:?} -> {after:?}");
    assert_eq!(
        after.lease_reads, before.lease_reads,
        "no read under the lease while drifting: {before:?} -> {after:?}"
    );
    assert!(after.read_index_reads - before.read_index_reads >= 60, "every read asked the leader: {after:?}");

    // Back on the real clock, the node measures the leader again and uses its lease (unless
    // it came back as the leader, which measures nobody).
    crate::harness::faketime::heal(cluster.node(2)).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let view = lease_view(cluster.node(2)).await;
        let leads = cluster.health(2).await.is_ok_and(|h| h.leader == Some(3));
        if leads || view.verdict.as_deref() == Some("within_bound") {
            break;
        }
        assert!(Instant::now() < deadline, "the healed node never trusted its clock again: {view:?}");
        tokio::time::sleep(POLL).await;
    }
}

/// What the leader's `GET /api/v1/cluster` says of its own clock (`status.leader_clock`).
async fn leader_clock_verdict(node: &TestNode) -> Option<String> {
    let url = format!("{}/api/v1/cluster", node.web_url());
    let body: serde_json::Value =
        http_client().get(&url).send().await.expect("GET /api/v1/cluster").json().await.expect("JSON");
    body["status"]["leader_clock"]["verdict"].as_str().map(str::to_owned)
}

/// Makes node `want` the leader: while another node leads, that one is frozen until the other
/// two elect a leader, then thawed (it rejoins as a follower), up to eight times.
async fn make_leader(cluster: &TestCluster, want: usize) {
    for _ in 0..8 {
        let leader = cluster.leader().await;
        if leader == want {
            return;
        }
        let others: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
        let frozen = cluster.node(leader).freeze();
        cluster.wait_for_leader(&others, Duration::from_secs(20)).await;
        drop(frozen);
    }
    panic!("node {want} never won an election\n{}", cluster.log_report());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_clock_runs_fast_says_so_grants_no_lease_and_reads_stay_fresh() {
    let Some(library) = require_libfaketime(
        "cluster::clock::a_leader_whose_clock_runs_fast_says_so_grants_no_lease_and_reads_stay_fresh",
    ) else {
        return;
    };
    // Anomaly 7 of docs/faults.md: the leader 30% fast. Its record of a grant (445 ms of its
    // time) ends 342 ms of real time later, before the follower's lease (355 ms) does; and its
    // own lease is checked against nobody.
    let launches = [ClockSkew::rate(1.3).launch(&library), Default::default(), Default::default()];
    let cluster = TestCluster::start_launched(ClusterOptions::default(), launches).await;
    make_leader(&cluster, 0).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while leader_clock_verdict(cluster.node(0)).await.as_deref() != Some("exceeded") {
        assert!(
            Instant::now() < deadline,
            "the fast leader never judged its clock off: {:?}\n{}",
            leader_clock_verdict(cluster.node(0)).await,
            cluster.log_report()
        );
        tokio::time::sleep(POLL).await;
        if cluster.health(0).await.is_ok_and(|h| h.leader != Some(id_of(0))) {
            make_leader(&cluster, 0).await;
        }
    }
    let metrics = cluster.node(0).metrics_text().await;
    assert!(metrics.contains("\nmeridian_leader_clock_drift_exceeded 1\n"), "metrics:\n{metrics}");
    let (ok, text) = run_cli(
        &["cluster".as_ref(), "status".as_ref(), "--config".as_ref(), cluster.node(1).config_path().as_os_str()],
        Duration::from_secs(20),
    )
    .await;
    assert!(ok && text.contains("ppm!"), "cluster status shows the leader's drift:\n{text}");

    let bucket = create_bucket(&cluster.node(0).client(), "leader-clock-fast").await;
    let before: Vec<LeaseView> =
        vec![lease_view(cluster.node(0)).await, lease_view(cluster.node(1)).await, lease_view(cluster.node(2)).await];
    // Reads right after acknowledged writes, through each follower and through the leader.
    read_after_write(&cluster.node(0).client(), &cluster.node(1).client(), &bucket, 20).await;
    read_after_write(&cluster.node(0).client(), &cluster.node(2).client(), &bucket, 20).await;
    read_after_write(&cluster.node(1).client(), &cluster.node(0).client(), &bucket, 20).await;
    let after: Vec<LeaseView> =
        vec![lease_view(cluster.node(0)).await, lease_view(cluster.node(1)).await, lease_view(cluster.node(2)).await];
    println!("leader x1.3: {before:?} -> {after:?}");
    assert_eq!(
        leader_clock_verdict(cluster.node(0)).await.as_deref(),
        Some("exceeded"),
        "still leading and judged off (else the counts below mean nothing)"
    );
    for i in 0..3 {
        assert_eq!(
            after[i].lease_reads, before[i].lease_reads,
            "node {i} read under a lease while the leader's clock was off: {before:?} -> {after:?}"
        );
    }
    assert!(after[0].lease_ms.is_none(), "the leader shows no usable lease: {:?}", after[0]);
}
