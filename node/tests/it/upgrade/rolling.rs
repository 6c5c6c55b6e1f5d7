//! A rolling upgrade of a three-region cluster, with writes running. The "previous release" is
//! this binary in previous-release mode (`MERIDIAN_TESTING_PREVIOUS_RELEASE=1`, see
//! `meridian_raft::protocol`): no protocol headers, format 0 records, no format raise, which is
//! what release a01dacd speaks and writes (`upgrade::a01dacd` covers its real data). One node
//! at a time is stopped and started in current mode; a current node among previous ones keeps
//! writing format 0; once all three are current the leader raises the format; every
//! acknowledged write is then read back from every region, byte for byte.
//!
//! And a node speaking a protocol nobody else does (`MERIDIAN_TESTING_PROTOCOL=99`) is refused
//! on both sides with a message naming both versions, counted in the status.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use serde_json::Value;

use crate::harness::cluster::{ClusterOptions, TestCluster, run_cli};
use crate::harness::*;

/// The previous-release switch of the binary.
const PREVIOUS: (&str, &str) = ("MERIDIAN_TESTING_PREVIOUS_RELEASE", "1");
/// Keys each region's writer cycles through (so most writes are overwrites).
const KEYS_PER_WRITER: usize = 12;
/// Bound of every wait on the cluster.
const WAIT: Duration = Duration::from_secs(45);

/// `/api/v1/cluster` of node `i` (its `status` object), or `Null` when it does not answer.
async fn status(cluster: &TestCluster, i: usize) -> Value {
    let url = format!("{}/api/v1/cluster", cluster.node(i).web_url());
    match http_client().get(&url).timeout(Duration::from_secs(2)).send().await {
        Ok(resp) => resp.json::<Value>().await.map(|v| v["status"].clone()).unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

/// Polls the statuses of `among` until `cond` holds for all of them, at most [`WAIT`].
async fn wait_statuses(cluster: &TestCluster, among: &[usize], what: &str, cond: impl Fn(&Value) -> bool) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let mut all = true;
        let mut seen = Vec::new();
        for &i in among {
            let s = status(cluster, i).await;
            all &= cond(&s);
            seen.push(s);
        }
        if all {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: not within {WAIT:?}; statuses {seen:#?}");
        tokio::time::sleep(POLL).await;
    }
}

/// What one writer did to one key: the body of its last acknowledged PUT, and the bodies it
/// sent after that without an answer (failed while a node restarted: they may or may not have
/// been committed, so the key may end up holding one of them).
#[derive(Debug, Default, Clone)]
struct KeyLog {
    acked: Option<Vec<u8>>,
    unanswered: Vec<Vec<u8>>,
}

/// The body of write `n` of writer `w`: every 4th is large enough to be a blob (pulled by the
/// other regions), the rest inline in the log.
fn body(w: usize, n: usize) -> Vec<u8> {
    let stamp = format!("writer {w} write {n};");
    let len = if n.is_multiple_of(4) { 40 * 1024 } else { 300 };
    stamp.bytes().cycle().take(len).collect()
}

/// Writes and overwrites keys `w{w}/k{0..KEYS_PER_WRITER}` through node `w` until `stop`.
async fn writer(
    client: aws_sdk_s3::Client,
    bucket: String,
    w: usize,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<BTreeMap<String, KeyLog>>>,
) -> usize {
    let mut acked = 0;
    for n in 0.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let key = format!("w{w}/k{}", n % KEYS_PER_WRITER);
        let data = body(w, n);
        let sent = client.put_object().bucket(&bucket).key(&key).body(ByteStream::from(data.clone())).send().await;
        {
            let mut log = log.lock().expect("log");
            let entry = log.entry(key).or_default();
            match sent {
                Ok(_) => {
                    entry.acked = Some(data);
                    entry.unanswered.clear();
                    acked += 1;
                }
                Err(_) => entry.unanswered.push(data),
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    acked
}

fn field_u64(s: &Value, name: &str) -> Option<u64> {
    s[name].as_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_upgrade_under_writes_loses_no_acknowledged_write_and_raises_the_format_at_the_end() {
    let options = ClusterOptions { env: vec![PREVIOUS], ..ClusterOptions::default() };
    let cluster = TestCluster::start_with(options).await;
    let _logs: Vec<_> = cluster.nodes.iter().map(|n| n.log_on_panic()).collect();
    // Previous-release mode answers what release a01dacd answered: no version fields.
    wait_statuses(&cluster, &[0, 1, 2], "previous-release nodes say nothing of versions", |s| {
        s["node_id"].is_u64() && s.get("protocol").is_none() && s.get("active_format").is_none()
    })
    .await;
    let bucket = create_bucket(&cluster.node(0).client(), "rolling").await;

    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(BTreeMap::new()));
    let writers: Vec<_> = (0..3)
        .map(|w| tokio::spawn(writer(cluster.node(w).client(), bucket.clone(), w, stop.clone(), log.clone())))
        .collect();
    // Some writes before the first node goes.
    assert!(
        wait_until(WAIT, || log.lock().expect("log").values().filter(|k| k.acked.is_some()).count() >= 12).await,
        "writers made no progress"
    );

    for i in 0..3 {
        let node = cluster.node(i);
        assert!(node.terminate(Duration::from_secs(20)).await.is_some(), "node {i} did not stop on SIGTERM");
        node.set_env(&[]);
        node.restart().await;
        cluster.wait_for_leader(&[0, 1, 2], WAIT).await;
        // The upgraded node reports its versions, and still writes format 0.
        wait_statuses(&cluster, &[i], "upgraded node reports protocol 1, reads a newer format, writes format 0", |s| {
            field_u64(s, "protocol") == Some(1)
                && field_u64(s, "reads_format").is_some_and(|f| f >= 1)
                && (i == 2 || field_u64(s, "writes_format") == Some(0))
        })
        .await;
        if i < 2 {
            // It has heard the previous-release peers (protocol 0, format 0) and so, whoever
            // leads, the format stays 0: checked after the leader had several chances to raise.
            let old_ids: Vec<u64> = (i + 1..3).map(|j| j as u64 + 1).collect();
            wait_statuses(&cluster, &[i], "the upgraded node heard its previous-release peers", |s| {
                s["members"].as_array().is_some_and(|members| {
                    members.iter().filter(|m| m["id"].as_u64().is_some_and(|id| old_ids.contains(&id))).count()
                        == old_ids.len()
                        && members
                            .iter()
                            .filter(|m| m["id"].as_u64().is_some_and(|id| old_ids.contains(&id)))
                            .all(|m| m["protocol"] == 0)
                })
            })
            .await;
            tokio::time::sleep(Duration::from_secs(5)).await;
            for j in 0..=i {
                let s = status(&cluster, j).await;
                assert_eq!(field_u64(&s, "active_format"), Some(0), "format raised with old nodes present: {s:#}");
                assert_eq!(field_u64(&s, "writes_format"), Some(0), "node {j} writes a format old nodes cannot read");
            }
        }
    }

    // All three current: the leader raises the format, and every node writes it.
    wait_statuses(&cluster, &[0, 1, 2], "the cluster format is raised to the newest on every node", |s| {
        field_u64(s, "active_format").is_some_and(|f| f >= 1)
            && field_u64(s, "active_format") == field_u64(s, "reads_format")
            && field_u64(s, "writes_format") == field_u64(s, "reads_format")
    })
    .await;
    let (ok, printed) = run_cli(
        &["cluster".as_ref(), "status".as_ref(), "--config".as_ref(), cluster.node(0).config_path().as_os_str()],
        Duration::from_secs(20),
    )
    .await;
    // The newest format this release reads, whatever number that is.
    let newest = field_u64(&status(&cluster, 0).await, "reads_format").expect("reads_format");
    assert!(
        ok && printed.contains(&format!("cluster format: {newest}")) && printed.contains(&format!("{newest}/{newest}")),
        "{printed}"
    );

    stop.store(true, Ordering::Relaxed);
    let mut acked = 0;
    for writer in writers {
        acked += writer.await.expect("writer");
    }
    assert!(acked >= 30, "only {acked} writes were acknowledged");

    // Every acknowledged write, from every region, byte for byte (or a later unanswered one).
    let log = log.lock().expect("log").clone();
    for i in 0..3 {
        let client = cluster.node(i).client();
        for (key, k) in &log {
            let Some(acked) = &k.acked else { continue };
            let got = get_bytes(&client, &bucket, key).await;
            assert!(
                &got == acked || k.unanswered.contains(&got),
                "region {i}, key {key}: holds {:?}, last acknowledged {:?}",
                String::from_utf8_lossy(&got[..got.len().min(40)]),
                String::from_utf8_lossy(&acked[..acked.len().min(40)])
            );
        }
    }

    // New writes, in the new format, still replicate everywhere.
    let fresh = body(9, 0);
    put(&cluster.node(2).client(), &bucket, "after-raise", &fresh).await;
    for i in 0..3 {
        assert_eq!(get_bytes(&cluster.node(i).client(), &bucket, "after-raise").await, fresh, "region {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_speaking_an_unknown_protocol_is_refused_on_both_sides_with_both_versions() {
    let cluster = TestCluster::start().await;
    let _logs: Vec<_> = cluster.nodes.iter().map(|n| n.log_on_panic()).collect();
    let odd = cluster.node(2);
    assert!(odd.terminate(Duration::from_secs(20)).await.is_some(), "node did not stop");
    odd.set_env(&[("MERIDIAN_TESTING_PROTOCOL", "99")]);
    odd.start_unwaited();

    // Both sides log the refusal, naming both versions and what to do.
    let logged = |node: &crate::harness::TestNode, needles: &[&str]| {
        let text = std::fs::read_to_string(node.log_path()).unwrap_or_default();
        needles.iter().all(|n| text.contains(n))
    };
    assert!(
        wait_until(WAIT, || logged(
            cluster.node(0),
            &["speaks internal protocol 99", "protocols 0 to 1", "upgrade this node"]
        ) || logged(
            cluster.node(1),
            &["speaks internal protocol 99", "protocols 0 to 1", "upgrade this node"]
        ))
        .await,
        "the current nodes did not log the refusal\n{}\n{}",
        cluster.node(0).log_tail(30),
        cluster.node(1).log_tail(30)
    );
    assert!(
        wait_until(WAIT, || logged(odd, &["speaks internal protocol 1", "protocols 99 to 99"])).await,
        "the odd node did not log the refusal\n{}",
        odd.log_tail(30)
    );
    // Counted in the status of both sides; the odd node never joins.
    wait_statuses(&cluster, &[2], "the odd node counts refusals", |s| {
        field_u64(s, "protocol") == Some(99) && field_u64(s, "protocol_refusals").is_some_and(|n| n > 0)
    })
    .await;
    let metrics = odd.metrics_text().await;
    let scraped = metrics
        .lines()
        .find_map(|l| l.strip_prefix("meridian_internal_protocol_refusals_total "))
        .and_then(|v| v.trim().parse::<u64>().ok());
    assert!(scraped.is_some_and(|n| n > 0), "refusals not in /metrics: {scraped:?}");
    let refusals = field_u64(&status(&cluster, 0).await, "protocol_refusals").unwrap_or(0)
        + field_u64(&status(&cluster, 1).await, "protocol_refusals").unwrap_or(0);
    assert!(refusals > 0, "the current nodes counted no refusal");
    // It never hears a leader: every AppendEntries is refused before it reaches Raft. (Its
    // `/healthz` may still name the leader of the vote it saved before the restart.)
    let odd_status = status(&cluster, 2).await;
    assert!(odd_status["last_leader_contact_ms"].is_null(), "the odd node heard a leader: {odd_status:#}");

    // Logged once per peer per interval, not once per refused request (many per second).
    let lines = std::fs::read_to_string(cluster.node(0).log_path())
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("speaks internal protocol 99"))
        .count();
    assert!(lines <= 4, "{lines} refusal lines: not rate limited");

    // Back to this release's protocol, it rejoins.
    assert!(odd.terminate(Duration::from_secs(20)).await.is_some(), "node did not stop");
    odd.set_env(&[]);
    odd.restart().await;
    cluster.wait_for_leader(&[0, 1, 2], WAIT).await;
}

/// A cluster formed of this release's nodes alone writes this release's format almost at once:
/// commands new in this release are refused until then, so the window must stay short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_cluster_raises_its_format_within_seconds() {
    let cluster = TestCluster::start().await;
    let started = std::time::Instant::now();
    cluster.wait_format_raised().await;
    let s = status(&cluster, 0).await;
    assert!(field_u64(&s, "active_format").is_some_and(|f| f >= 1), "{s:#}");
    assert!(started.elapsed() < Duration::from_secs(10), "raised only after {:?}", started.elapsed());
}

/// Commands new in format 2 (bucket CORS, DeleteBucket aborting uploads, a conditional
/// CompleteMultipartUpload) never reach a node of the previous release: while one is a member,
/// an upgraded node answers them 503 with the reason (or, for DeleteBucket, the previous
/// release's BucketNotEmpty) and proposes nothing; once every node runs this release and the
/// format is raised, they work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_new_in_format_2_wait_until_every_node_runs_this_release() {
    let options = ClusterOptions { env: vec![PREVIOUS], ..ClusterOptions::default() };
    let cluster = TestCluster::start_with(options).await;
    let _logs: Vec<_> = cluster.nodes.iter().map(|n| n.log_on_panic()).collect();
    let node = cluster.node(0);
    assert!(node.terminate(Duration::from_secs(20)).await.is_some(), "node 0 did not stop on SIGTERM");
    node.set_env(&[]);
    node.restart().await;
    cluster.wait_for_leader(&[0, 1, 2], WAIT).await;
    wait_statuses(&cluster, &[0], "node 0 runs this release", |s| field_u64(s, "protocol") == Some(1)).await;

    let client = node.client();
    let bucket = create_bucket(&client, "format2").await;
    let upload = client.create_multipart_upload().bucket(&bucket).key("big").send().await.expect("upload");
    let upload_id = upload.upload_id().expect("UploadId").to_owned();
    let cors = aws_sdk_s3::types::CorsConfiguration::builder()
        .cors_rules(
            aws_sdk_s3::types::CorsRule::builder().allowed_origins("*").allowed_methods("GET").build().expect("rule"),
        )
        .build()
        .expect("configuration");
    let refused = expect_err(
        client.put_bucket_cors().bucket(&bucket).cors_configuration(cors.clone()).send().await,
        503,
        Some("ServiceUnavailable"),
        "PutBucketCors before the raise",
    );
    assert!(refused.message.as_deref().is_some_and(|m| m.contains("being upgraded")), "{refused:?}");
    expect_err(
        client.delete_bucket_cors().bucket(&bucket).send().await,
        503,
        Some("ServiceUnavailable"),
        "DeleteBucketCors before the raise",
    );
    let part = client
        .upload_part()
        .bucket(&bucket)
        .key("big")
        .upload_id(&upload_id)
        .part_number(1)
        .body(ByteStream::from_static(b"part"))
        .send()
        .await
        .expect("UploadPart");
    let completed = aws_sdk_s3::types::CompletedMultipartUpload::builder()
        .parts(aws_sdk_s3::types::CompletedPart::builder().part_number(1).e_tag(part.e_tag().expect("ETag")).build())
        .build();
    expect_err(
        client
            .complete_multipart_upload()
            .bucket(&bucket)
            .key("big")
            .upload_id(&upload_id)
            .if_none_match("*")
            .multipart_upload(completed.clone())
            .send()
            .await,
        503,
        Some("ServiceUnavailable"),
        "a conditional CompleteMultipartUpload before the raise",
    );
    expect_err(
        client.delete_bucket().bucket(&bucket).send().await,
        409,
        Some("BucketNotEmpty"),
        "the previous release's DeleteBucket",
    );

    for i in 1..3 {
        let node = cluster.node(i);
        assert!(node.terminate(Duration::from_secs(20)).await.is_some(), "node {i} did not stop on SIGTERM");
        node.set_env(&[]);
        node.restart().await;
    }
    cluster.wait_for_leader(&[0, 1, 2], WAIT).await;
    cluster.wait_format_raised().await;
    client
        .put_bucket_cors()
        .bucket(&bucket)
        .cors_configuration(cors)
        .send()
        .await
        .expect("PutBucketCors after the raise");
    client.delete_bucket().bucket(&bucket).send().await.expect("DeleteBucket with only an upload, after the raise");
}
