//! A node whose data dir fills up: every node's data dir is a small tmpfs, and one of them is
//! filled. Writes through it must be refused with a clear S3 error (not hang, not crash the
//! node), reads through it must answer the acknowledged bytes or be refused (never stale),
//! nothing acknowledged may be lost, and once space comes back it must take writes again with
//! no operator: by itself, or, if its store met ENOSPC, after reopening it (the node runs its
//! binary again, `node/src/store_recovery.rs`); a restart afterwards must find its Raft log and
//! sled tables intact.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_s3::primitives::ByteStream;

use crate::harness::cluster::TestCluster;
use crate::harness::{http_client, random_bytes};

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

/// How the data dir is filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Filler {
    /// Up to ENOSPC in one go, then left alone: the node's space reserve gives sled room, unless
    /// the fill won the race against a check (then the store fails and is reopened).
    OneGo,
    /// Up to ENOSPC, then every byte that comes free is taken as well (the released reserve
    /// too) while writes go on elsewhere: the node's store certainly meets ENOSPC.
    Slowing,
}

/// Whether an answer is a refusal that says the node cannot take it now: 507 (low on space) or
/// 503 (the store stopped after a storage error and is being reopened).
fn is_space_refusal(answer: &Result<(), String>) -> bool {
    matches!(answer.as_ref().map_err(String::as_str), Err("507 InsufficientStorage" | "503 ServiceUnavailable"))
}

/// The scripted full-disk scenario with `filler`; returns whether the victim's store failed
/// (and was reopened by the node itself).
async fn full_data_dir(test: &str, filler: Filler) -> bool {
    let disks = Mutex::new(Vec::new());
    let Some(cluster) = cluster_on_small_disks(&disks, test, DISK_MIB).await else { return false };
    let disks = disks.into_inner().expect("disks");
    let (leader, [victim, other]) = cluster.roles().await;
    let c: Vec<_> = cluster.nodes.iter().map(|n| chaos_client(n, Duration::from_secs(15))).collect();
    c[leader].create_bucket().bucket("full").send().await.expect("CreateBucket");
    let small = random_bytes(1, 1000);
    let big = random_bytes(2, 300_000);
    let (old, new) = (random_bytes(3, 2000), random_bytes(4, 2000));
    for (key, data) in [("before-small", &small), ("before-big", &big), ("overwritten", &old)] {
        try_put(&c[other], "full", key, data).await.unwrap_or_else(|e| panic!("PUT {key}: {e}"));
    }
    // Before the fill: the victim has the blob and the first version (so reading them later
    // needs no pull, and a stale read would show the old version).
    eventually(Duration::from_secs(30), "the victim holds before-big and overwritten", || async {
        try_get(&c[victim], "full", "before-big").await?;
        match try_get(&c[victim], "full", "overwritten").await? {
            got if got == old => Ok(()),
            got => Err(format!("{} bytes that differ", got.len())),
        }
    })
    .await;

    let disk = &disks[victim];
    let stop_eating = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let eater = match filler {
        Filler::OneGo => {
            let filled = disk.fill();
            println!("filled {} KiB of node {victim}'s data dir; {:?} bytes free", filled / 1024, disk.free_bytes());
            None
        }
        Filler::Slowing => Some(disk.eat_in_background(stop_eating.clone(), Duration::from_secs(60))),
    };
    // The node notices within its check interval (or at its next log append).
    eventually(Duration::from_secs(5), "a write through the full node is refused with 507 or 503", || async {
        match try_put(&c[victim], "full", "probe", &small).await {
            answer if is_space_refusal(&answer) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    if filler == Filler::Slowing {
        // Writes elsewhere reach the victim's log; with every free byte eaten its store fails.
        eventually(Duration::from_secs(20), "the full node's store fails and it refuses reads too", || async {
            try_put(&c[other], "full", "push", &small).await?;
            match try_get(&c[victim], "full", "before-small").await {
                Err(e) if e.contains("ServiceUnavailable") => Ok(()),
                other => Err(format!("a read through the victim answered {:?}", other.map(|b| b.len()))),
            }
        })
        .await;
    }
    for (label, data) in [("small", &small), ("big", &big)] {
        let started = Instant::now();
        let answer = try_put(&c[victim], "full", &format!("during-{label}-via-victim"), data).await;
        assert!(is_space_refusal(&answer), "PUT {label} through the full node: {answer:?}");
        assert!(started.elapsed() < Duration::from_secs(2), "the refusal took {:?}", started.elapsed());
        try_put(&c[other], "full", &format!("during-{label}-via-other"), data)
            .await
            .unwrap_or_else(|e| panic!("PUT {label} through a node with space, while the victim is full: {e}"));
    }
    try_put(&c[other], "full", "overwritten", &new).await.unwrap_or_else(|e| panic!("overwrite: {e}"));
    // Reads through the full node: the right bytes (its log keeps taking entries from the
    // reserve), or refused (its store failed), never stale.
    let failed = |got: &Result<Vec<u8>, String>| matches!(got, Err(e) if e.contains("ServiceUnavailable"));
    let mut store_failed = false;
    for (key, data) in [("before-big", &big), ("during-small-via-other", &small), ("overwritten", &new)] {
        let got = try_get(&c[victim], "full", key).await;
        store_failed |= failed(&got);
        assert!(
            got.as_deref() == Ok(&data[..]) || failed(&got),
            "GET {key} via the full node: neither the acknowledged bytes nor a refusal: {:?}",
            got.map(|b| if b == old {
                "the overwritten version: a stale read".to_owned()
            } else {
                format!("{} bytes", b.len())
            })
        );
    }
    let deleted = c[victim].delete_object().bucket("full").key("before-small").send().await;
    if deleted.is_err() {
        // Refused by a node whose store failed (before anything was proposed): delete elsewhere.
        let answer = deleted.as_ref().err().and_then(|e| e.raw_response()).map(|r| r.status().as_u16());
        assert_eq!(answer, Some(503), "a DELETE through the full node is taken or refused with 503: {deleted:?}");
        c[other].delete_object().bucket("full").key("before-small").send().await.expect("DELETE via another node");
    }
    assert!(cluster.node(victim).exited().is_none(), "the full node exited\n{}", cluster.log_report());
    if store_failed {
        // The web listener (panel, JSON API, share links) serves nothing from a failed store
        // either; the store is reopened only once space returns, so it is still failed here.
        let web = http_client().get(format!("{}/api/v1/cluster", cluster.node(victim).web_url())).send().await;
        let status = web.map(|r| r.status().as_u16()).map_err(|e| e.to_string());
        println!("the web API of node {victim}, its store failed, answered {status:?}");
        assert_eq!(status, Ok(503), "the web API of a node whose store failed");
    }

    stop_eating.store(true, std::sync::atomic::Ordering::Release);
    if let Some(eater) = eater {
        let eaten = eater.join().expect("filler thread");
        println!("the filler took {} KiB of node {victim}'s data dir", eaten / 1024);
    }
    disk.drain();
    eventually(
        Duration::from_secs(40),
        "writes through the node are taken again once space returns (no restart by an operator)",
        || async { try_put(&c[victim], "full", "after-via-victim", &big).await },
    )
    .await;
    let log = std::fs::read_to_string(cluster.node(victim).log_path()).unwrap_or_default();
    let reopened = log.contains("space is back: reopening the store");
    assert_eq!(reopened, log.contains("metadata store failed"), "a failed store is reopened, and only then");
    assert!(cluster.node(victim).exited().is_none(), "the node exited instead of reopening its store");
    // Nothing acknowledged was lost, everywhere; the blob written meanwhile reaches the victim.
    for (i, client) in c.iter().enumerate() {
        for (key, data) in [
            ("before-big", &big),
            ("during-small-via-other", &small),
            ("during-big-via-other", &big),
            ("overwritten", &new),
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
    reopened
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_data_dir_refuses_writes_with_507_keeps_serving_reads_and_recovers_without_a_restart() {
    let reopened = full_data_dir("chaos::disk_full (a full data dir)", Filler::OneGo).await;
    println!("the victim's store failed and was reopened: {reopened}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_filler_that_eats_the_reserve_too_stops_the_store_which_serves_nothing_and_reopens_once_space_returns() {
    let test = "chaos::disk_full (a filler that eats the reserve too)";
    if SmallDisk::can_mount().is_err() {
        // `full_data_dir` says so loudly.
        full_data_dir(test, Filler::Slowing).await;
        return;
    }
    assert!(full_data_dir(test, Filler::Slowing).await, "the node's store met ENOSPC, so it must have reopened it");
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
