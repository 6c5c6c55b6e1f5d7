//! Durability against a real node: `kill -9` in the middle of a PUT loop loses no acknowledged
//! write and leaves no half-visible object; SIGTERM is graceful; a client that disconnects
//! mid-body leaves no trace. Every test here owns its node (they kill it).

use crate::harness;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use harness::*;

const TOTAL_PUTS: usize = 400;
const WRITERS: usize = 4;
const KILL_AFTER_ACKS: usize = 120;
const MAX_SIZE: u64 = 256 * 1024;

#[derive(Default)]
struct LoopState {
    next: AtomicUsize,
    acked_count: AtomicUsize,
    killed: AtomicBool,
    /// Every PUT that was started: key -> the bytes sent.
    attempted: Mutex<HashMap<String, Vec<u8>>>,
    /// PUTs answered 200: key -> bytes.
    acked: Mutex<HashMap<String, Vec<u8>>>,
    /// PUTs started and not answered yet.
    in_flight: Mutex<HashSet<String>>,
    /// Errors seen before the kill (must stay empty).
    errors_before_kill: Mutex<Vec<String>>,
}

fn object_for(i: usize) -> (String, Vec<u8>) {
    let key = format!("crash/{i:04}");
    let size = match i % 50 {
        0 => 0,
        1 => MAX_SIZE as usize,
        _ => XorShift::new(i as u64 + 1).below(MAX_SIZE + 1) as usize,
    };
    (key, random_bytes(i as u64 * 7919 + 3, size))
}

async fn writer(client: aws_sdk_s3::Client, bucket: String, state: Arc<LoopState>) {
    loop {
        if state.killed.load(Ordering::SeqCst) {
            return;
        }
        let i = state.next.fetch_add(1, Ordering::SeqCst);
        if i >= TOTAL_PUTS {
            return;
        }
        let (key, data) = object_for(i);
        state.attempted.lock().expect("lock").insert(key.clone(), data.clone());
        state.in_flight.lock().expect("lock").insert(key.clone());
        let result = client.put_object().bucket(&bucket).key(&key).body(ByteStream::from(data.clone())).send().await;
        match result {
            Ok(out) => {
                // A 200 read after the kill still was sent by the server, after its commit:
                // it counts as acknowledged.
                if out.e_tag() != Some(etag_of(&data).as_str()) {
                    state.errors_before_kill.lock().expect("lock").push(format!(
                        "PUT {key}: ETag {:?}, want {}",
                        out.e_tag(),
                        etag_of(&data)
                    ));
                }
                state.acked.lock().expect("lock").insert(key.clone(), data);
                state.in_flight.lock().expect("lock").remove(&key);
                state.acked_count.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) => {
                // Stays in `in_flight`: its outcome is unknown.
                if !state.killed.load(Ordering::SeqCst) {
                    state
                        .errors_before_kill
                        .lock()
                        .expect("lock")
                        .push(format!("PUT {key}: {}", DisplayErrorContext(&e)));
                }
                return;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill9_mid_put_loop_loses_no_acknowledged_write() {
    let node = TestNode::start().await;
    let client = node.client();
    let bucket = create_bucket(&client, "crash").await;
    let state = Arc::new(LoopState::default());

    let writers: Vec<_> =
        (0..WRITERS).map(|_| tokio::spawn(writer(client.clone(), bucket.clone(), Arc::clone(&state)))).collect();

    // Kill once enough PUTs are acknowledged AND some are in flight right now.
    let deadline = Instant::now() + Duration::from_secs(120);
    let in_flight_at_kill: HashSet<String> = loop {
        {
            let in_flight = state.in_flight.lock().expect("lock");
            if state.acked_count.load(Ordering::SeqCst) >= KILL_AFTER_ACKS && !in_flight.is_empty() {
                state.killed.store(true, Ordering::SeqCst);
                let snapshot = in_flight.clone();
                drop(in_flight);
                node.kill9();
                break snapshot;
            }
        }
        let errors = state.errors_before_kill.lock().expect("lock").clone();
        assert!(errors.is_empty(), "PUTs failed before the kill: {errors:#?}\n{}", node.log_report());
        assert!(
            state.next.load(Ordering::SeqCst) < TOTAL_PUTS + WRITERS,
            "the loop ended before {KILL_AFTER_ACKS} acknowledgements"
        );
        assert!(
            Instant::now() < deadline,
            "only {} PUTs acknowledged within 120 s\n{}",
            state.acked_count.load(Ordering::SeqCst),
            node.log_report()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    for w in writers {
        tokio::time::timeout(Duration::from_secs(60), w)
            .await
            .expect("writers stop within 60 s of the kill")
            .expect("writer task panicked");
    }
    let errors = state.errors_before_kill.lock().expect("lock").clone();
    assert!(errors.is_empty(), "PUTs failed before the kill: {errors:#?}");

    let acked = state.acked.lock().expect("lock").clone();
    let attempted = state.attempted.lock().expect("lock").clone();
    let unresolved: BTreeSet<String> = attempted.keys().filter(|k| !acked.contains_key(*k)).cloned().collect();
    eprintln!(
        "kill -9 after {} acknowledged PUTs, {} in flight at the kill, {} attempted in all",
        acked.len(),
        in_flight_at_kill.len(),
        attempted.len()
    );
    assert!(acked.len() >= KILL_AFTER_ACKS);

    node.restart().await;
    node.assert_tmp_empty_within(Duration::from_secs(10), "after restart from kill -9").await;

    let client = node.client();
    let listed = list_all_keys(&client, &bucket).await;
    let listed_set: BTreeSet<&String> = listed.iter().collect();
    assert_eq!(listed.len(), listed_set.len(), "a key is listed twice: {listed:?}");

    // Every acknowledged PUT is there, byte for byte.
    let mut missing = Vec::new();
    for (key, data) in &acked {
        if !listed_set.contains(key) {
            missing.push(key.clone());
            continue;
        }
        let got = get_bytes(&client, &bucket, key).await;
        assert_bytes_eq(&got, data, &format!("acknowledged {key} after kill -9"));
    }
    missing.sort();
    assert!(
        missing.is_empty(),
        "{} acknowledged PUTs lost by kill -9: {missing:?}\n{}",
        missing.len(),
        node.log_report()
    );

    // Nothing else exists but what was in flight, and that is complete if visible.
    for key in &listed {
        assert!(attempted.contains_key(key), "{key} is listed but was never written");
        if !acked.contains_key(key) {
            assert!(unresolved.contains(key), "{key} is listed, was not acknowledged and not in flight");
            let got = get_bytes(&client, &bucket, key).await;
            assert_bytes_eq(&got, &attempted[key], &format!("in-flight {key} is visible, so it must be complete"));
        }
    }
    // Unacknowledged, unlisted keys are really absent (HEAD agrees with the listing).
    for key in unresolved.iter().filter(|k| !listed_set.contains(k)) {
        expect_err(
            client.head_object().bucket(&bucket).key(key).send().await,
            404,
            None,
            &format!("unacknowledged, unlisted {key}"),
        );
    }

    // The node keeps working after recovery.
    put(&client, &bucket, "after-restart", b"alive").await;
    assert_eq!(get_bytes(&client, &bucket, "after-restart").await, b"alive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_overwrites_deletes_and_buckets_survive_kill9() {
    let node = TestNode::start().await;
    let client = node.client();
    let bucket = create_bucket(&client, "crash-ops").await;
    let v1 = random_bytes(1, 100_000);
    let v2 = random_bytes(2, 30_000);
    put(&client, &bucket, "over", &v1).await;
    put(&client, &bucket, "over", &v2).await;
    put(&client, &bucket, "gone", b"to be deleted").await;
    ok(client.delete_object().bucket(&bucket).key("gone").send().await, "DeleteObject");
    ok(
        client
            .put_object_tagging()
            .bucket(&bucket)
            .key("over")
            .tagging(
                aws_sdk_s3::types::Tagging::builder()
                    .tag_set(aws_sdk_s3::types::Tag::builder().key("t").value("1").build().expect("tag"))
                    .build()
                    .expect("tagging"),
            )
            .send()
            .await,
        "PutObjectTagging",
    );
    let late_bucket = create_bucket(&client, "crash-late").await;
    let dead_bucket = create_bucket(&client, "crash-dead").await;
    ok(client.delete_bucket().bucket(&dead_bucket).send().await, "DeleteBucket");

    node.kill9();
    node.restart().await;
    let client = node.client();

    assert_bytes_eq(&get_bytes(&client, &bucket, "over").await, &v2, "acknowledged overwrite");
    expect_err(
        client.get_object().bucket(&bucket).key("gone").send().await,
        404,
        Some("NoSuchKey"),
        "acknowledged delete after kill -9",
    );
    assert_eq!(list_all_keys(&client, &bucket).await, vec!["over".to_owned()]);
    let tags = ok(client.get_object_tagging().bucket(&bucket).key("over").send().await, "GetObjectTagging");
    assert_eq!(tags.tag_set().len(), 1, "acknowledged tagging after kill -9");
    ok(client.head_bucket().bucket(&late_bucket).send().await, "bucket created before kill -9");
    expect_err(client.head_bucket().bucket(&dead_bucket).send().await, 404, None, "bucket deleted before kill -9");
    node.assert_tmp_empty_within(Duration::from_secs(10), "after restart").await;
}

/// A presigned PUT URL for `key`, usable by a plain HTTP client.
async fn presigned_put(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> (String, Vec<(String, String)>) {
    let req = client
        .put_object()
        .bucket(bucket)
        .key(key)
        .presigned(PresigningConfig::expires_in(Duration::from_secs(600)).expect("config"))
        .await
        .expect("presign PUT");
    let headers = req.headers().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    (req.uri().to_owned(), headers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_upload_leaves_no_trace() {
    let node = TestNode::start().await;
    let client = node.client();
    let bucket = create_bucket(&client, "interrupted").await;
    let old = random_bytes(9, 20_000);
    put(&client, &bucket, "existing", &old).await;

    for key in ["fresh", "existing"] {
        let (url, headers) = presigned_put(&client, &bucket, key).await;
        const DECLARED: usize = 4 * MIB;
        const CHUNK: usize = 64 * 1024;
        const SENT_CHUNKS: usize = 16; // 1 MiB of the declared 4 MiB
        let tmp_dir = node.tmp_dir();
        let body = futures::stream::unfold(0usize, move |i| {
            let tmp_dir = tmp_dir.clone();
            async move {
                if i < SENT_CHUNKS {
                    let chunk: Result<Bytes, io::Error> = Ok(Bytes::from(random_bytes(i as u64, CHUNK)));
                    return Some((chunk, i + 1));
                }
                if i == SENT_CHUNKS {
                    // Give the server the time to start spooling the body (bounded: if the
                    // server keeps it elsewhere, the test goes on after 10 s).
                    let spooling = wait_until(Duration::from_secs(10), || !all_files(&tmp_dir).is_empty()).await;
                    eprintln!("interrupting the body; server temp file seen: {spooling}");
                    let err: Result<Bytes, io::Error> =
                        Err(io::Error::new(io::ErrorKind::ConnectionAborted, "client gives up mid-body"));
                    return Some((err, i + 1));
                }
                None
            }
        });
        let mut req = http_client()
            .put(&url)
            .header("content-length", DECLARED.to_string())
            .body(reqwest::Body::wrap_stream(body));
        for (k, v) in &headers {
            req = req.header(k, v);
        }
        let result = req.send().await;
        if let Ok(resp) = &result {
            assert_ne!(resp.status().as_u16(), 200, "a PUT whose body broke off after 1 MiB of 4 MiB was acknowledged");
        }

        // No object, no temp file, and the old version (if any) intact.
        if key == "fresh" {
            expect_err(
                client.head_object().bucket(&bucket).key(key).send().await,
                404,
                None,
                "HeadObject after an interrupted upload",
            );
        } else {
            assert_bytes_eq(&get_bytes(&client, &bucket, key).await, &old, "object after an interrupted overwrite");
        }
        node.assert_tmp_empty_within(Duration::from_secs(10), &format!("interrupted upload of {key}")).await;
    }
    assert_eq!(list_all_keys(&client, &bucket).await, vec!["existing".to_owned()], "listing after interrupted uploads");
    // The same key uploads fine afterwards.
    put(&client, &bucket, "fresh", b"complete this time").await;
    assert_eq!(get_bytes(&client, &bucket, "fresh").await, b"complete this time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_request_and_stops_cleanly() {
    let node = TestNode::start().await;
    let client = node.client();
    let bucket = create_bucket(&client, "sigterm").await;
    let before = random_bytes(1, 50_000);
    put(&client, &bucket, "before", &before).await;

    // A PUT whose body is held back until SIGTERM has been sent.
    let (url, headers) = presigned_put(&client, &bucket, "during").await;
    let data = random_bytes(2, 2 * MIB);
    let term_sent = Arc::new(AtomicBool::new(false));
    let first_half_sent = Arc::new(AtomicBool::new(false));
    let body = {
        let data = Bytes::from(data.clone());
        let term_sent = Arc::clone(&term_sent);
        let first_half_sent = Arc::clone(&first_half_sent);
        futures::stream::unfold(0usize, move |i| {
            let data = data.clone();
            let term_sent = Arc::clone(&term_sent);
            let first_half_sent = Arc::clone(&first_half_sent);
            async move {
                match i {
                    0 => Some((Ok::<Bytes, io::Error>(data.slice(..MIB)), 1)),
                    1 => {
                        first_half_sent.store(true, Ordering::SeqCst);
                        let sent = wait_until(Duration::from_secs(30), || term_sent.load(Ordering::SeqCst)).await;
                        if !sent {
                            return Some((Err(io::Error::other("SIGTERM never sent")), 2));
                        }
                        Some((Ok(data.slice(MIB..)), 2))
                    }
                    _ => None,
                }
            }
        })
    };
    let mut req =
        http_client().put(&url).header("content-length", data.len().to_string()).body(reqwest::Body::wrap_stream(body));
    for (k, v) in &headers {
        req = req.header(k, v);
    }
    let upload = tokio::spawn(req.send());

    assert!(
        wait_until(Duration::from_secs(10), || first_half_sent.load(Ordering::SeqCst)).await,
        "the first half of the body was never sent"
    );
    // Bounded wait for the server to be receiving it (its temp file appears), then SIGTERM.
    let tmp_dir = node.tmp_dir();
    let receiving = wait_until(Duration::from_secs(10), || !all_files(&tmp_dir).is_empty()).await;
    eprintln!("sending SIGTERM; server temp file seen: {receiving}");
    let pid = node.pid();
    let kill_status =
        std::process::Command::new("sh").arg("-c").arg(format!("kill -TERM {pid}")).status().expect("kill -TERM");
    assert!(kill_status.success());
    term_sent.store(true, Ordering::SeqCst);

    let resp = tokio::time::timeout(Duration::from_secs(30), upload)
        .await
        .expect("in-flight PUT answered within 30 s of SIGTERM")
        .expect("upload task")
        .expect("in-flight PUT during graceful shutdown");
    let status = resp.status().as_u16();
    assert_eq!(status, 200, "a request in flight at SIGTERM must finish: {}", resp.text().await.unwrap_or_default());

    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(st) = node.exited() {
            break st;
        }
        assert!(Instant::now() < deadline, "the node did not exit within 30 s of SIGTERM\n{}", node.log_report());
        tokio::time::sleep(POLL).await;
    };
    assert!(exit.success(), "exit status after SIGTERM: {exit}\n{}", node.log_report());

    node.restart().await;
    let client = node.client();
    assert_bytes_eq(&get_bytes(&client, &bucket, "before").await, &before, "object PUT before SIGTERM");
    assert_bytes_eq(&get_bytes(&client, &bucket, "during").await, &data, "object PUT during SIGTERM");
    node.assert_tmp_empty_within(Duration::from_secs(10), "after graceful restart").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overwrites_and_deletes_free_the_old_blob() {
    // Blob files live under <data_dir>/blobs (objects over the inline size, 16 KiB, have one).
    let node = TestNode::start().await;
    let client = node.client();
    let bucket = create_bucket(&client, "blobfree").await;
    let blobs_dir = node.data_dir().join("blobs");
    let count = || all_files(&blobs_dir).len();
    let baseline = count();

    put(&client, &bucket, "k", &random_bytes(1, 200_000)).await;
    assert!(
        wait_until(Duration::from_secs(10), || count() == baseline + 1).await,
        "one 200 KB object: {} blob files, baseline {baseline}",
        count()
    );
    for i in 2..6u64 {
        put(&client, &bucket, "k", &random_bytes(i, 200_000)).await;
    }
    assert!(
        wait_until(Duration::from_secs(10), || count() == baseline + 1).await,
        "after 4 overwrites the old blobs must be freed: {} blob files, baseline {baseline}",
        count()
    );
    // An overwrite with a small (inline) object frees the blob too.
    put(&client, &bucket, "k", b"small").await;
    assert!(
        wait_until(Duration::from_secs(10), || count() == baseline).await,
        "overwrite with an inline object: {} blob files, baseline {baseline}",
        count()
    );
    put(&client, &bucket, "k2", &random_bytes(7, 300_000)).await;
    ok(client.delete_object().bucket(&bucket).key("k2").send().await, "DeleteObject");
    assert!(
        wait_until(Duration::from_secs(10), || count() == baseline).await,
        "after DeleteObject the blob must be freed: {} blob files, baseline {baseline}",
        count()
    );
    // And the freed state survives a crash: nothing reappears, nothing is lost.
    node.kill9();
    node.restart().await;
    let client = node.client();
    assert_eq!(get_bytes(&client, &bucket, "k").await, b"small");
    expect_err(client.head_object().bucket(&bucket).key("k2").send().await, 404, None, "deleted k2 after restart");
    assert!(
        wait_until(Duration::from_secs(10), || count() == baseline).await,
        "blob files after restart: {}, baseline {baseline}",
        count()
    );
}
