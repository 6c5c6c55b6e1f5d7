//! Membership changes at run time, through the real CLI: `meridian cluster add-region` brings a
//! fourth region in while the log it missed has been purged (so it must catch up from a
//! snapshot), makes it a voter that serves what was written before it joined, and
//! `meridian cluster remove-region` takes a region out so that nothing asks it anything any more:
//! no log replication, no quorum counting, no blob pulls.

use crate::harness;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use harness::cluster::{ClusterOptions, TestCluster, id_of, region_of, run_cli};
use harness::*;

/// Objects written (one at a time, so each is its own log entry) before the new region joins:
/// well past the 1000 entries kept behind a snapshot, so the purge point moves.
const OBJECTS: usize = 1300;
/// Every this many objects is large enough to be a blob (not inline), so it must be pulled.
const BLOB_EVERY: usize = 100;
/// Bound on one membership change through the CLI (it includes the snapshot catch-up).
const CLI_BOUND: Duration = Duration::from_secs(200);
/// Bound on convergence after a change (applied indexes, membership views, blob pulls).
const CONVERGE_BOUND: Duration = Duration::from_secs(60);

/// Body of object number `i`: every [`BLOB_EVERY`]th one 40 KB (a blob), the rest inline.
fn body_of(i: usize) -> Vec<u8> {
    if i.is_multiple_of(BLOB_EVERY) { random_bytes(i as u64, 40_000) } else { format!("v{i}").into_bytes() }
}

/// `GET /api/v1/cluster` of node `i` (its `status` object), or None if it does not answer.
async fn status(cluster: &TestCluster, i: usize) -> Option<serde_json::Value> {
    let url = format!("{}/api/v1/cluster", cluster.node(i).web_url());
    let body: serde_json::Value = http_client().get(url).send().await.ok()?.json().await.ok()?;
    Some(body["status"].clone())
}

/// Node `i`'s view of the membership: id -> voter.
async fn members(cluster: &TestCluster, i: usize) -> Option<BTreeMap<u64, bool>> {
    let status = status(cluster, i).await?;
    status["members"]
        .as_array()?
        .iter()
        .map(|m| Some((m["id"].as_u64()?, m["voter"].as_bool()?)))
        .collect::<Option<BTreeMap<_, _>>>()
}

/// Waits (bounded) until every node of `among` sees exactly `want` as the membership.
async fn wait_members(cluster: &TestCluster, among: &[usize], want: &BTreeMap<u64, bool>) {
    let deadline = Instant::now() + CONVERGE_BOUND;
    loop {
        let mut views = BTreeMap::new();
        for &i in among {
            views.insert(i, members(cluster, i).await);
        }
        if views.values().all(|v| v.as_ref() == Some(want)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "membership views {views:?} did not become {want:?} within {CONVERGE_BOUND:?}\n{}",
            cluster.log_report()
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Runs `meridian cluster <verb> --config <config of node i> --region <name>` and asserts success.
async fn cluster_cli(cluster: &TestCluster, config_of: usize, verb: &str, region: &str) -> String {
    let config = cluster.node(config_of).config_path().as_os_str();
    let args = [OsStr::new("cluster"), OsStr::new(verb), OsStr::new("--config"), config, OsStr::new("--region")];
    let mut args = args.to_vec();
    args.push(OsStr::new(region));
    let (ok, output) = run_cli(&args, CLI_BOUND).await;
    assert!(ok, "meridian cluster {verb} --region {region} failed:\n{output}\n{}", cluster.log_report());
    output
}

/// Waits (bounded) until node `i` holds a blob file with exactly `data`.
async fn wait_blob(cluster: &TestCluster, i: usize, data: &[u8], what: &str) {
    let deadline = Instant::now() + CONVERGE_BOUND;
    while cluster.blob_files_with(i, data).is_empty() {
        assert!(Instant::now() < deadline, "{what}: node {i} never got the blob\n{}", cluster.log_report());
        tokio::time::sleep(POLL).await;
    }
}

/// Sends a signal to a node process (SIGSTOP freezes it: connections to it hang, unanswered).
fn signal(cluster: &TestCluster, i: usize, sig: &str) {
    let pid = cluster.node(i).pid().to_string();
    let status = std::process::Command::new("kill").args([sig, &pid]).status().expect("run kill");
    assert!(status.success(), "kill {sig} {pid} failed");
}

/// Great-circle distance (haversine, unit sphere) between two test regions, the order in which
/// a node's replicator tries holders.
fn great_circle((_, lat1, lon1): (&str, f64, f64), (_, lat2, lon2): (&str, f64, f64)) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let (dp, dl) = ((lat2 - lat1).to_radians(), (lon2 - lon1).to_radians());
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * h.sqrt().asin()
}

/// Now, Unix milliseconds (the clock the nodes report their last leader contact in).
fn unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_added_at_run_time_catches_up_from_a_snapshot_votes_and_serves_and_a_removed_one_is_no_longer_asked() {
    let mut cluster = TestCluster::start_with(ClusterOptions { snapshot_every: 100, ..Default::default() }).await;
    let leader = cluster.leader().await;
    let client = cluster.node(leader).client();
    let bucket = create_bucket(&client, "members").await;
    for i in 0..OBJECTS {
        put(&client, &bucket, &format!("k{i:05}"), &body_of(i)).await;
    }
    // The leader builds snapshots and purges its log in the background: wait for it, bounded.
    let deadline = Instant::now() + CONVERGE_BOUND;
    loop {
        let purged = status(&cluster, leader).await.and_then(|s| s["purged_index"].as_u64());
        if purged.is_some_and(|p| p > 0) {
            break;
        }
        assert!(Instant::now() < deadline, "the leader never purged its log (purged_index {purged:?})");
        tokio::time::sleep(POLL).await;
    }

    // ---- add-region: the new node starts outside the cluster, joins, catches up, votes. ----
    let new = cluster.start_spare_node().await;
    let new_id = id_of(new);
    let new_name = region_of(new).0;
    assert_eq!(members(&cluster, leader).await.map(|m| m.contains_key(&new_id)), Some(false), "member too early");
    let added = Instant::now();
    let said = cluster_cli(&cluster, new, "add-region", new_name).await;
    println!("add-region took {:?}: {}", added.elapsed(), said.trim());
    let four: BTreeMap<u64, bool> = (0..4).map(|i| (id_of(i), true)).collect();
    wait_members(&cluster, &[0, 1, 2, 3], &four).await;
    cluster.node(new).wait_healthy().await;
    cluster.wait_applied_equal(&[0, 1, 2, 3], OBJECTS as u64, CONVERGE_BOUND).await;
    let log = std::fs::read_to_string(cluster.node(new).log_path()).unwrap_or_default();
    assert!(
        log.contains("snapshot installed"),
        "the new region did not catch up from a snapshot\n{}",
        cluster.log_report()
    );

    // It serves what was written before it joined: the listing, metadata and bytes.
    let new_client = cluster.node(new).client();
    let keys = list_all_keys(&new_client, &bucket).await;
    assert_eq!(keys.len(), OBJECTS, "objects listed by the new region");
    for i in (0..OBJECTS).step_by(BLOB_EVERY / 4) {
        let (key, body) = (format!("k{i:05}"), body_of(i));
        let head = ok(new_client.head_object().bucket(&bucket).key(&key).send().await, &format!("HEAD {key}"));
        assert_eq!(head.content_length(), Some(body.len() as i64), "size of {key} on the new region");
        assert_eq!(head.e_tag(), Some(etag_of(&body).as_str()), "ETag of {key} on the new region");
        assert_bytes_eq(&get_bytes(&new_client, &bucket, &key).await, &body, &format!("GET {key} on the new region"));
    }
    // And it pulls every blob it owes into its own data dir.
    for i in (0..OBJECTS).step_by(BLOB_EVERY) {
        wait_blob(&cluster, new, &body_of(i), &format!("blob of k{i:05}")).await;
    }
    let (ok_status, table) = run_cli(
        &[
            OsStr::new("cluster"),
            OsStr::new("status"),
            OsStr::new("--config"),
            cluster.node(new).config_path().as_os_str(),
        ],
        Duration::from_secs(30),
    )
    .await;
    assert!(ok_status && table.lines().any(|l| l.starts_with(new_name) && l.contains("Follower")), "{table}");

    // ---- remove-region: take out the original follower nearest to the new region, so the new
    // region's replicator would ask it first if it still counted. ----
    let leader = cluster.wait_for_leader(&[0, 1, 2, 3], CONVERGE_BOUND).await;
    assert_ne!(leader, new, "the new region took the lead; nothing should have caused an election");
    let distance_to_new = |i: usize| great_circle(region_of(i), region_of(new));
    let mut followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    followers.sort_by(|&x, &y| distance_to_new(x).total_cmp(&distance_to_new(y)));
    let (removed, other) = (followers[0], followers[1]);
    let removed_id = id_of(removed);
    println!("leader {leader}, removing {removed} ({}), other follower {other}", region_of(removed).0);

    // A blob the new region lacks and the soon-removed region holds (written through it while
    // the new region is down): after the removal, the new region must pull it from elsewhere.
    cluster.node(new).kill9();
    let late = random_bytes(77, 64 * 1024);
    put(&cluster.node(removed).client(), &bucket, "late", &late).await;
    wait_blob(&cluster, leader, &late, "blob written through the region to remove").await;
    wait_blob(&cluster, other, &late, "blob written through the region to remove").await;

    let said = cluster_cli(&cluster, new, "remove-region", region_of(removed).0).await;
    println!("{}", said.trim());
    let three: BTreeMap<u64, bool> = [leader, other, new].iter().map(|&i| (id_of(i), true)).collect();
    wait_members(&cluster, &[leader, other], &three).await;
    let leader_status = status(&cluster, leader).await.expect("leader status");
    assert!(
        !leader_status["members"].as_array().is_some_and(|m| m.iter().any(|m| m["id"].as_u64() == Some(removed_id))),
        "the leader still reports the removed region: {leader_status}"
    );

    // The leader no longer replicates to it: while writes go on, its applied index and its last
    // contact with a leader stay where they were. And it knows it no longer votes, so it does not
    // campaign either: writes go on for several election timeouts and its term stays put.
    let before = status(&cluster, removed).await.expect("removed region's status");
    let leader_applied = status(&cluster, leader).await.and_then(|s| s["applied_index"].as_u64()).expect("applied");
    let writes_started = unix_ms();
    for i in 0..30 {
        put(&client, &bucket, &format!("after-removal-{i}"), b"x").await;
    }
    cluster.wait_applied_equal(&[leader, other], leader_applied + 30, CONVERGE_BOUND).await;
    // Watched for three election timeouts (a voter cut off from its leader would campaign within
    // one): its term and state must not move.
    let watch = Instant::now();
    let quiet_for = Duration::from_millis(3 * cluster.options.election_timeout_max_ms);
    let after = loop {
        let now = status(&cluster, removed).await.expect("removed region's status");
        assert!(
            now["term"] == before["term"] && now["state"] != "Candidate",
            "the removed region campaigns: {before} -> {now}"
        );
        if watch.elapsed() >= quiet_for {
            break now;
        }
        tokio::time::sleep(POLL).await;
    };
    println!("removed region while writes went on: {before} -> {after}");
    let applied = after["applied_index"].as_u64().unwrap_or(u64::MAX);
    assert!(applied <= leader_applied, "the removed region still applies new entries: {before} -> {after}");
    let contact = after["last_leader_contact_ms"].as_i64().unwrap_or(0);
    assert!(
        contact < writes_started && before["last_leader_contact_ms"] == after["last_leader_contact_ms"],
        "the removed region still hears from the leader: {before} -> {after}"
    );

    // Freeze it: anyone who still asked it would now hang instead of failing fast.
    signal(&cluster, removed, "-STOP");
    // The new region comes back and pulls the late blob, from another holder, in bounded time.
    cluster.node(new).restart().await;
    wait_blob(&cluster, new, &late, "late blob on the returning new region").await;
    assert_bytes_eq(&get_bytes(&new_client, &bucket, "late").await, &late, "GET late on the new region");
    // Its log says where the late blob came from (logged once the replica is reported, a
    // moment after the file is in place): only this run of the node counts, since before the
    // removal it rightly pulled from every member.
    let pulled = format!("replica pulled and reported bytes={}", late.len());
    let deadline = Instant::now() + CONVERGE_BOUND;
    let line = loop {
        let log = std::fs::read_to_string(cluster.node(new).log_path()).unwrap_or_default();
        let this_run = log.rsplit("===== test harness: spawning").next().unwrap_or_default();
        if let Some(line) = this_run.lines().find(|l| l.contains(&pulled)) {
            break line.to_owned();
        }
        assert!(Instant::now() < deadline, "no {pulled:?} line in the new region's log\n{}", cluster.log_report());
        tokio::time::sleep(POLL).await;
    };
    assert!(!line.contains(&format!("from={removed_id}")), "the new region pulled from the removed one: {line}");

    // Quorum is now {leader, other, new}: with the removed region frozen and `other` down too,
    // writes through the new region still commit (2 of 3), which they could not if the removed
    // region still counted (2 of 4).
    cluster.node(other).kill9();
    for i in 0..10 {
        put(&new_client, &bucket, &format!("quorum-{i}"), b"two of three").await;
    }
    assert_eq!(get_bytes(&client, &bucket, "quorum-9").await, b"two of three", "read back on the leader");
    signal(&cluster, removed, "-CONT");
}
