//! The scrub on a three-node cluster: blob files corrupted (bytes flipped, same size) or deleted
//! by hand on one node are found by a scrub pass, dropped from that node's holdings and pulled
//! again, until placement lists the node once more and its files are byte-identical; reads at
//! that node return the right bytes throughout the repair. Once on demand (`meridian scrub`),
//! once by the periodic pass.
//!
//! And what the scrub must not do: unlist a missing blob on the first pass that misses it,
//! unlist or delete the last copy of an object (it is quarantined as `*.corrupt` and reported),
//! or report anything when most blobs are missing or `blobs/` lost its marker (a volume not
//! mounted, a directory emptied by mistake).

use crate::harness;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use harness::cluster::{TestCluster, id_of};
use harness::placement::{Placement, placement, wait_placement};
use harness::*;

/// How long a pull of a few MiB (or a periodic pass plus the pull) may take on loopback.
const HEAL_BOUND: Duration = Duration::from_secs(30);

/// What `meridian scrub` said: whether it succeeded, its report as (field, value) pairs, and its
/// stderr.
struct ScrubRun {
    success: bool,
    report: Vec<(String, u64)>,
    stderr: String,
}

/// Runs `meridian scrub` for node `i`.
fn scrub(cluster: &TestCluster, i: usize) -> ScrubRun {
    let node = cluster.node(i);
    let region = harness::cluster::REGIONS[i].0;
    let output = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["scrub", "--timeout-secs", "120", "--config"])
        .arg(node.config_path())
        .args(["--region", region])
        .output()
        .expect("run meridian scrub");
    let report = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let (field, value) = line.split_once(':')?;
            Some((field.trim().to_owned(), value.trim().parse().ok()?))
        })
        .collect();
    ScrubRun { success: output.status.success(), report, stderr: String::from_utf8_lossy(&output.stderr).into_owned() }
}

/// Runs `meridian scrub` for node `i`, which must succeed, and returns its report.
fn scrub_now(cluster: &TestCluster, i: usize) -> Vec<(String, u64)> {
    let run = scrub(cluster, i);
    assert!(run.success, "meridian scrub failed: {}\n{:?}\n{}", run.stderr, run.report, cluster.log_report());
    run.report
}

/// Files named `*.corrupt` under node `i`'s blob directory.
fn quarantined(cluster: &TestCluster, i: usize) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for shard in std::fs::read_dir(cluster.blobs_dir(i)).expect("read blobs/").flatten() {
        if let Ok(entries) = std::fs::read_dir(shard.path()) {
            found.extend(entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "corrupt")));
        }
    }
    found
}

/// One field of a scrub report.
fn field(report: &[(String, u64)], name: &str) -> u64 {
    report.iter().find(|(f, _)| f == name).map(|(_, v)| *v).unwrap_or_else(|| panic!("no {name} in {report:?}"))
}

/// Flips every bit of `len` bytes at `offset` of a file, keeping its size.
fn flip_bytes(path: &Path, offset: usize, len: usize) {
    let mut bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {path:?}: {e}"));
    let size = bytes.len();
    for b in &mut bytes[offset..offset + len] {
        *b = !*b;
    }
    std::fs::write(path, &bytes).unwrap_or_else(|e| panic!("write {path:?}: {e}"));
    assert_eq!(std::fs::metadata(path).map(|m| m.len() as usize).ok(), Some(size), "size kept");
}

/// Waits until node `id` is listed again for `key` with a time after `after_ms`, then checks
/// its file is byte-identical to `data`; returns the new placement.
async fn wait_healed(
    cluster: &TestCluster,
    i: usize,
    bucket: &str,
    key: &str,
    after_ms: i64,
    data: &[u8],
) -> Placement {
    let http = http_client();
    let id = id_of(i);
    let p =
        wait_placement(&http, cluster.node(i), bucket, key, HEAL_BOUND, &format!("heal of {key} on node {i}"), |p| {
            p.since(id).is_some_and(|since| since > after_ms) && p.replicated
        })
        .await;
    let path = p.blob_path(cluster.node(i).data_dir());
    let on_disk = std::fs::read(&path).unwrap_or_else(|e| panic!("node {i} listed again but {path:?}: {e}"));
    assert_bytes_eq(&on_disk, data, &format!("{key} on node {i} after the repair"));
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn corrupt_and_deleted_blobs_are_found_dropped_and_pulled_again() {
    let cluster = TestCluster::start().await;
    let http = http_client();
    let (writer, b) = (0, 1);
    let client = cluster.node(writer).client();
    let bucket = create_bucket(&client, "scrub").await;

    let single = random_bytes(1, MIB + 17);
    let (part1, part2) = (random_bytes(2, 5 * MIB), random_bytes(3, 700 * 1024));
    let multi: Vec<u8> = [part1.as_slice(), part2.as_slice()].concat();
    let gone = random_bytes(4, 512 * 1024);
    let intact = random_bytes(5, 300 * 1024);
    put(&client, &bucket, "single", &single).await;
    put_multipart(&client, &bucket, "multi", &[&part1, &part2]).await;
    put(&client, &bucket, "dir/gone", &gone).await;
    put(&client, &bucket, "intact", &intact).await;
    let objects = [("single", &single), ("multi", &multi), ("dir/gone", &gone), ("intact", &intact)];
    let mut before = Vec::new();
    for (key, _) in objects {
        let p = wait_placement(&http, cluster.node(b), &bucket, key, HEAL_BOUND, "replication", |p| p.replicated).await;
        before.push(p);
    }
    let since_b = |p: &Placement| p.since(id_of(b)).expect("B holds it");

    // Damage B's copies by hand: same size but flipped bytes (in the second part of the
    // multipart object, which only a per-part check catches), and one file deleted.
    let data_b = cluster.node(b).data_dir().to_path_buf();
    flip_bytes(&before[0].blob_path(&data_b), 1000, 8);
    flip_bytes(&before[1].blob_path(&data_b), part1.len() + 123, 1);
    std::fs::remove_file(before[2].blob_path(&data_b)).expect("delete B's blob by hand");

    let report = scrub_now(&cluster, b);
    eprintln!("SCRUB REPORT: {report:?}");
    assert_eq!(field(&report, "checked"), 4, "{report:?}");
    assert_eq!(field(&report, "corrupt"), 2, "{report:?}");
    assert_eq!(field(&report, "missing"), 1, "{report:?}");
    assert_eq!(field(&report, "unconfirmed"), 1, "{report:?}");
    assert_eq!(field(&report, "unlisted"), 2, "{report:?}");
    assert_eq!(field(&report, "last_copy"), 0, "{report:?}");
    assert_eq!(field(&report, "errors"), 0, "{report:?}");
    assert!(field(&report, "bytes") >= (single.len() + multi.len() + intact.len()) as u64, "{report:?}");
    // When the pass returns, no corrupt byte is left on B's disk to be served: each damaged
    // copy is either gone or already replaced by a verified pull, and nothing stays quarantined
    // (other nodes hold good copies).
    for (p, data) in [(&before[0], &single), (&before[1], &multi)] {
        match std::fs::read(p.blob_path(&data_b)) {
            Ok(bytes) => assert_bytes_eq(&bytes, data, &format!("{} on B right after the scrub", p.key)),
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{}: {e}", p.key),
        }
    }
    assert_eq!(quarantined(&cluster, b), Vec::<std::path::PathBuf>::new(), "quarantined copies of repaired blobs");
    // A blob missing for the first time is not reported yet: B is still listed for it.
    let gone_now = placement(&http, cluster.node(b), &bucket, "dir/gone").await.expect("placement");
    assert_eq!(gone_now.since(id_of(b)), Some(since_b(&before[2])), "unlisted after one pass");
    // The next pass finds it missing again and reports it.
    let report = scrub_now(&cluster, b);
    assert_eq!(
        [
            field(&report, "missing"),
            field(&report, "unconfirmed"),
            field(&report, "unlisted"),
            field(&report, "corrupt")
        ],
        [1, 0, 1, 0],
        "{report:?}"
    );

    // Reads at B return the right bytes during the repair (streamed from a holder or re-pulled).
    let client_b = cluster.node(b).client();
    for (key, data) in objects {
        assert_bytes_eq(&get_bytes(&client_b, &bucket, key).await, data, &format!("GET {key} at B during the repair"));
    }
    for (p, (key, data)) in before.iter().zip(objects).take(3) {
        wait_healed(&cluster, b, &bucket, key, since_b(p), data).await;
    }
    let untouched = placement(&http, cluster.node(b), &bucket, "intact").await.expect("placement");
    assert_eq!(untouched.since(id_of(b)), Some(since_b(&before[3])), "an intact copy is left alone");
    let log = std::fs::read_to_string(cluster.node(b).log_path()).expect("read B's log");
    for needle in ["blob on disk is corrupt", "missing from disk", "single", "dir/gone"] {
        assert!(log.contains(needle), "B's log should mention {needle:?}");
    }

    // Healed: a further pass finds nothing.
    let report = scrub_now(&cluster, b);
    assert_eq!(
        [field(&report, "checked"), field(&report, "corrupt"), field(&report, "missing"), field(&report, "unlisted")],
        [4, 0, 0, 0],
        "{report:?}"
    );
    // The stream says why B's copies were replicated a second time.
    let events = harness::events::history(cluster.node(b), None, 500).await;
    let region_b = harness::cluster::REGIONS[b].0;
    let of_single: Vec<&str> = events
        .iter()
        .filter(|e| e.data["key"] == "single" && e.data["region"] == region_b)
        .map(|e| e.kind.as_str())
        .filter(|k| *k != "ObjectCreated")
        .collect();
    assert_eq!(of_single, ["ObjectReplicated", "ObjectReplicaLost", "ObjectReplicated"], "{events:#?}");

    // The last copy: every node's copy of one object is corrupt. The first two are unlisted and
    // pull again (in vain); the third stays listed, its bytes quarantined, and says so loudly.
    let lonely = random_bytes(6, 200 * 1024);
    put(&client, &bucket, "lonely", &lonely).await;
    let all_three = |p: &Placement| p.holders.len() == 3;
    let p = wait_placement(&http, cluster.node(0), &bucket, "lonely", HEAL_BOUND, "replication", all_three).await;
    for i in 0..3 {
        flip_bytes(&p.blob_path(cluster.node(i).data_dir()), 10, 4);
    }
    for i in [0, 1] {
        let report = scrub_now(&cluster, i);
        assert_eq!([field(&report, "corrupt"), field(&report, "unlisted")], [1, 1], "node {i}: {report:?}");
    }
    let c = 2;
    let run = scrub(&cluster, c);
    assert!(!run.success, "a pass that keeps a damaged last copy must fail: {:?}", run.report);
    assert!(run.stderr.contains("no other copy"), "{}", run.stderr);
    assert_eq!(
        [field(&run.report, "corrupt"), field(&run.report, "unlisted"), field(&run.report, "last_copy")],
        [1, 0, 1],
        "{:?}",
        run.report
    );
    let now = placement(&http, cluster.node(c), &bucket, "lonely").await.expect("placement");
    assert_eq!(now.holder_ids(), [id_of(c)], "the last holder stays listed");
    let aside = quarantined(&cluster, c);
    assert_eq!(aside.len(), 1, "C keeps the corrupt bytes aside: {aside:?}");
    assert_eq!(std::fs::read(&aside[0]).map(|b| b.len()).ok(), Some(lonely.len()), "all of them");
    assert!(!p.blob_path(cluster.node(c).data_dir()).exists(), "and never serves them");
    let log = std::fs::read_to_string(cluster.node(c).log_path()).expect("read C's log");
    assert!(log.contains("no other node holds the object"), "C's log should say the copy is the last one");

    // Most blobs gone at once (a directory emptied by mistake): the pass reports nothing.
    for file in cluster.blob_files(c) {
        std::fs::remove_file(&file).expect("delete C's blob by hand");
    }
    let run = scrub(&cluster, c);
    assert!(!run.success && run.stderr.contains("are missing"), "{:?} {}", run.report, run.stderr);
    // Without the marker (another directory mounted in its place) neither.
    let marker = cluster.blobs_dir(c).join(harness::cluster::BLOBS_MARKER);
    std::fs::remove_file(&marker).expect("remove C's marker");
    let run = scrub(&cluster, c);
    assert!(!run.success && run.stderr.contains("marker"), "{:?} {}", run.report, run.stderr);
    for (key, _) in objects {
        let p = placement(&http, cluster.node(c), &bucket, key).await.expect("placement");
        assert!(p.since(id_of(c)).is_some(), "{key}: C must still be listed after aborted passes");
    }

    // The periodic pass does the same without anyone asking: restart B scrubbing every second,
    // then delete a file behind its back.
    let mut config = std::fs::read_to_string(cluster.node(b).config_path()).expect("read B's config");
    config.push_str("\n[storage]\nscrub_interval_secs = 1\n");
    std::fs::write(cluster.node(b).config_path(), config).expect("write B's config");
    cluster.node(b).restart().await;
    let p = placement(&http, cluster.node(b), &bucket, "intact").await.expect("placement");
    std::fs::remove_file(p.blob_path(&data_b)).expect("delete B's blob by hand");
    wait_healed(&cluster, b, &bucket, "intact", since_b(&p), &intact).await;
    let client_b = cluster.node(b).client();
    assert_bytes_eq(&get_bytes(&client_b, &bucket, "intact").await, &intact, "GET intact at B after the heal");
    assert!(cluster.node(b).tmp_files().is_empty(), "B left temp files: {:?}", cluster.node(b).tmp_files());
}
