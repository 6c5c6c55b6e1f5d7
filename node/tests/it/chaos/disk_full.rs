//! A node whose data dir fills up: every node's data dir is a small tmpfs, and one of them is
//! filled. Writes through it must be refused with a clear S3 error (not hang, not crash the
//! node), reads through it must go on, nothing acknowledged may be lost, and once space comes
//! back it must take writes again without a restart; a restart afterwards must find its Raft
//! log and sled tables intact.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_s3::primitives::ByteStream;

use crate::harness::cluster::TestCluster;
use crate::harness::random_bytes;

use super::nemesis::disk::{DiskNemesis, SmallDisk};
use super::workload::chaos_client;
use super::{RunConfig, RunOutcome, run, start_cluster};

/// Size of each node's data dir (tmpfs) in the scripted test, MiB: room for the log and a few
/// blobs. Long runs write far more (tens of thousands of log entries), so they take
/// `MERIDIAN_CHAOS_DISK_MIB` (default 512): a data dir that fills with the workload's own data on
/// every node is another test (the reserve only buys time, see docs/faults.md).
const DISK_MIB: u64 = 64;

/// Says loudly that a test did not run, and why.
fn skip_loudly(test: &str, why: &str) {
    let bar = "!".repeat(80);
    eprintln!(
        "\n{bar}\n!!! SKIPPED: {test}: mounting a small tmpfs needs root (CAP_SYS_ADMIN): {why}\n!!! It was NOT run.\n{bar}\n"
    );
}

/// Starts a cluster with every data dir on its own small tmpfs; `None` (after saying so) when
/// this process cannot mount. The disks must outlive the cluster: declare them first.
async fn cluster_on_small_disks(disks: &Mutex<Vec<SmallDisk>>, test: &str, mib: u64) -> Option<TestCluster> {
    if let Err(why) = SmallDisk::can_mount() {
        skip_loudly(test, &why);
        return None;
    }
    let cluster = start_cluster("", |_, dir| {
        let disk = SmallDisk::mount(dir, mib).unwrap_or_else(|e| panic!("{e}"));
        disks.lock().expect("disks lock").push(disk);
    })
    .await;
    Some(cluster)
}

/// What a PUT through a node answered: Ok, or status and code.
async fn try_put(client: &aws_sdk_s3::Client, bucket: &str, key: &str, data: &[u8]) -> Result<(), String> {
    match client.put_object().bucket(bucket).key(key).body(ByteStream::from(data.to_vec())).send().await {
        Ok(_) => Ok(()),
        Err(e) => Err(match e.raw_response() {
            Some(raw) => format!("{} {}", raw.status().as_u16(), e.code().unwrap_or("-")),
            None => format!("no answer: {}", DisplayErrorContext(&e)),
        }),
    }
}

/// Waits (bounded) until `cond` holds, polling every 100 ms; panics with `what` otherwise.
async fn eventually<F, Fut>(within: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + within;
    loop {
        let last = match cond().await {
            Ok(()) => return,
            Err(e) => e,
        };
        assert!(Instant::now() < deadline, "{what} within {within:?}; last: {last}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// GET through `client`: the body, or status and code.
async fn try_get(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Vec<u8>, String> {
    match client.get_object().bucket(bucket).key(key).send().await {
        Ok(out) => out.body.collect().await.map(|b| b.into_bytes().to_vec()).map_err(|e| e.to_string()),
        Err(e) => Err(DisplayErrorContext(&e).to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "open (docs/faults.md, anomaly 1): the space reserve loses the race with a filler that takes the last bytes between two checks, and then the node's Raft stops; passed 2 of 3 runs with a filler that fills in one go, 0 of 3 with one that slows down near the end (it then eats the released reserve too)"]
async fn a_full_data_dir_refuses_writes_with_507_keeps_serving_reads_and_recovers_without_a_restart() {
    let disks = Mutex::new(Vec::new());
    let test = "chaos::disk_full (a full data dir)";
    let Some(cluster) = cluster_on_small_disks(&disks, test, DISK_MIB).await else { return };
    let disks = disks.into_inner().expect("disks");
    let (leader, [victim, other]) = cluster.roles().await;
    let c: Vec<_> = cluster.nodes.iter().map(|n| chaos_client(n, Duration::from_secs(15))).collect();
    c[leader].create_bucket().bucket("full").send().await.expect("CreateBucket");
    let small = random_bytes(1, 1000);
    let big = random_bytes(2, 300_000);
    for (key, data) in [("before-small", &small), ("before-big", &big)] {
        try_put(&c[other], "full", key, data).await.unwrap_or_else(|e| panic!("PUT {key}: {e}"));
    }
    // Before the fill: the victim has the blob (so reading it later needs no pull).
    eventually(Duration::from_secs(30), "the victim holds before-big", || async {
        try_get(&c[victim], "full", "before-big").await.map(drop)
    })
    .await;

    let disk = &disks[victim];
    let filled = disk.fill();
    println!("filled {} KiB of node {victim}'s data dir; {:?} bytes free", filled / 1024, disk.free_bytes());
    // The node notices within its check interval (or at its next log append).
    eventually(
        Duration::from_secs(5),
        "a write through the full node is refused with 507 InsufficientStorage",
        || async {
            match try_put(&c[victim], "full", "probe", &small).await {
                Err(e) if e == "507 InsufficientStorage" => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    for (label, data) in [("small", &small), ("big", &big)] {
        let started = Instant::now();
        let answer = try_put(&c[victim], "full", &format!("during-{label}-via-victim"), data).await;
        assert_eq!(answer, Err("507 InsufficientStorage".to_owned()), "PUT {label} through the full node");
        assert!(started.elapsed() < Duration::from_secs(2), "the refusal took {:?}", started.elapsed());
        try_put(&c[other], "full", &format!("during-{label}-via-other"), data)
            .await
            .unwrap_or_else(|e| panic!("PUT {label} through a node with space, while the victim is full: {e}"));
    }
    // Reads through the full node: what it had, and what was written elsewhere meanwhile (its
    // Raft log keeps taking entries from the reserve, so it is not stale).
    assert_eq!(
        try_get(&c[victim], "full", "before-big").await.as_deref(),
        Ok(&big[..]),
        "GET before-big via the full node"
    );
    assert_eq!(
        try_get(&c[victim], "full", "during-small-via-other").await.as_deref(),
        Ok(&small[..]),
        "GET of a write made elsewhere, via the full node"
    );
    let deleted = c[victim].delete_object().bucket("full").key("before-small").send().await;
    assert!(deleted.is_ok(), "a DELETE through the full node frees space and is taken: {deleted:?}");
    assert!(cluster.node(victim).exited().is_none(), "the full node crashed\n{}", cluster.log_report());

    disk.drain();
    eventually(
        Duration::from_secs(10),
        "writes through the node are taken again once space returns (no restart)",
        || async { try_put(&c[victim], "full", "after-via-victim", &big).await },
    )
    .await;
    // Nothing acknowledged was lost, everywhere; the blob written meanwhile reaches the victim.
    for (i, client) in c.iter().enumerate() {
        for (key, data) in [
            ("before-big", &big),
            ("during-small-via-other", &small),
            ("during-big-via-other", &big),
            ("after-via-victim", &big),
        ] {
            eventually(Duration::from_secs(30), &format!("GET {key} through node {i}"), || async {
                match try_get(client, "full", key).await {
                    Ok(got) if got == *data => Ok(()),
                    Ok(got) => Err(format!("{} bytes that differ", got.len())),
                    Err(e) => Err(e),
                }
            })
            .await;
        }
        let gone = try_get(client, "full", "before-small").await;
        assert!(gone.is_err(), "before-small was deleted, node {i} still serves it");
    }
    // The Raft log and sled survived the full disk: a restart opens them and serves everything.
    cluster.node(victim).kill9();
    cluster.node(victim).restart().await;
    cluster.wait_for_leader(&[0, 1, 2], Duration::from_secs(30)).await;
    for key in ["before-big", "during-big-via-other", "after-via-victim"] {
        assert_eq!(try_get(&c[victim], "full", key).await.as_deref(), Ok(&big[..]), "GET {key} via the restarted node");
    }
    drop(cluster);
    drop(disks);
}

/// A chaos run with the disk nemesis on one node (a follower when the run starts).
pub(crate) async fn run_with_full_disk(config: &RunConfig) -> RunOutcome {
    let disks = Mutex::new(Vec::new());
    let mib = super::env_or("MERIDIAN_CHAOS_DISK_MIB", 512u64);
    let Some(cluster) = cluster_on_small_disks(&disks, "chaos run, disk nemesis", mib).await else {
        panic!("the disk nemesis needs root");
    };
    let (_, [victim, _]) = cluster.roles().await;
    let disks = disks.into_inner().expect("disks");
    let mut nemesis = DiskNemesis { victim, disk: &disks[victim] };
    let outcome = run(&cluster, &mut nemesis, config).await;
    drop(cluster);
    drop(disks);
    outcome
}
