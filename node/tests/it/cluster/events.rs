//! The event bus on a three-node cluster: `GET /api/v1/events` as Server-Sent Events and as JSON
//! pages. A consumer that starts at cursor 0, disconnects, resumes on other nodes (by
//! `Last-Event-ID` and by `after=`) and lives through a `kill -9` of the leader it reads from
//! sees every event exactly once, in order, identical to the history every node serves. JSON
//! pages honour `limit`, long-poll, need credentials, and a purged cursor is a 410 that says where
//! the retained history resumes.

use crate::harness;

use std::collections::BTreeSet;
use std::time::Duration;

use harness::cluster::{ClusterOptions, REGIONS, TestCluster};
use harness::events::{EventOut, SseStream, assert_strictly_ordered, get_json, history, page, wait_history};
use harness::*;

/// How long a consumer waits for one expected event.
const EVENT_TIMEOUT: Duration = Duration::from_secs(30);

fn key(i: usize) -> String {
    format!("movie-{i:03}.mp4")
}

/// Even objects are inline (their bytes ride in the log), odd ones are blobs that the other
/// regions pull, which adds `ObjectReplicated` events to the stream.
fn body(i: usize) -> Vec<u8> {
    random_bytes(i as u64 + 1, if i.is_multiple_of(2) { 300 } else { 20 * 1024 })
}

fn created(events: &[EventOut]) -> BTreeSet<String> {
    events.iter().filter(|e| e.kind == "ObjectCreated").map(|e| e.key().to_owned()).collect()
}

fn deleted(events: &[EventOut]) -> BTreeSet<String> {
    events.iter().filter(|e| e.kind == "ObjectDeleted").map(|e| e.key().to_owned()).collect()
}

/// Reads events into `seen` until `done(seen)` holds.
async fn read_until(sse: &mut SseStream, seen: &mut Vec<EventOut>, done: impl Fn(&[EventOut]) -> bool) {
    // Bounded: each turn takes one event or fails after EVENT_TIMEOUT; a healthy run needs a few
    // dozen turns.
    for _ in 0..10_000 {
        if done(seen) {
            return;
        }
        seen.push(sse.next_event(EVENT_TIMEOUT).await);
    }
    panic!("the expected events did not arrive within 10000 events: {seen:#?}");
}

fn last_cursor(seen: &[EventOut]) -> String {
    seen.last().map(|e| e.cursor.clone()).expect("at least one event seen")
}

/// PUTs through `client`, retrying (bounded) across a failover; returns the keys acknowledged.
async fn put_all(client: aws_sdk_s3::Client, bucket: String, keys: std::ops::Range<usize>) -> Vec<String> {
    let mut acked = Vec::new();
    for i in keys {
        for attempt in 1..=10 {
            let result = client
                .put_object()
                .bucket(&bucket)
                .key(key(i))
                .body(aws_sdk_s3::primitives::ByteStream::from(body(i)))
                .send()
                .await;
            match result {
                Ok(_) => {
                    acked.push(key(i));
                    break;
                }
                Err(e) if attempt < 10 => {
                    eprintln!("PUT {} attempt {attempt}: {}", key(i), aws_sdk_s3::error::DisplayErrorContext(&e));
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                Err(e) => panic!("PUT {} failed 10 times: {}", key(i), aws_sdk_s3::error::DisplayErrorContext(&e)),
            }
        }
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_consumer_sees_every_event_once_in_order_across_reconnects_and_a_leader_kill() {
    let cluster = TestCluster::start().await;
    let _log = cluster.node(0).log_on_panic();
    let (leader, [writer_node, other]) = cluster.roles().await;
    let writer = cluster.node(writer_node).client();
    let bucket = create_bucket(&writer, "events").await;
    let phase1: Vec<String> = put_all(writer.clone(), bucket.clone(), 0..8).await;
    ok(writer.delete_object().bucket(&bucket).key(key(1)).send().await, "DeleteObject");

    // From cursor 0 on the leader; the consumer goes away after four events.
    let mut seen: Vec<EventOut> = Vec::new();
    let mut sse = SseStream::open(cluster.node(leader), Some("0"), None).await;
    for _ in 0..4 {
        seen.push(sse.next_event(EVENT_TIMEOUT).await);
    }
    drop(sse);

    // Resumes on a follower by Last-Event-ID, with the stale `after=0` an EventSource repeats.
    let mut sse = SseStream::open(cluster.node(other), Some("0"), Some(&last_cursor(&seen))).await;
    let phase1_done =
        |seen: &[EventOut]| phase1.iter().all(|k| created(seen).contains(k)) && deleted(seen).contains(&key(1));
    read_until(&mut sse, &mut seen, phase1_done).await;
    drop(sse);

    // Back on the leader by `after=`, while writes flow through a follower; the leader is
    // killed mid-stream.
    let mut sse = SseStream::open(cluster.node(leader), Some(&last_cursor(&seen)), None).await;
    let writes = tokio::spawn(put_all(writer.clone(), bucket.clone(), 8..28));
    read_until(&mut sse, &mut seen, |seen| created(seen).len() >= phase1.len() + 3).await;
    cluster.node(leader).kill9();
    // Whatever the dying node managed to send counts; a torn last event does not.
    for _ in 0..10_000 {
        match sse.next(Duration::from_secs(10)).await {
            Ok(Some(message)) => seen.push(serde_json::from_str(&message.data).expect("event JSON")),
            Ok(None) | Err(_) => break,
        }
    }
    drop(sse);

    // Resumes on the surviving follower; the writes (some across the failover) all show up.
    let mut sse = SseStream::open(cluster.node(other), Some(&last_cursor(&seen)), None).await;
    let phase2 = writes.await.expect("writer task");
    assert_eq!(phase2.len(), 20, "every PUT of the second phase is acknowledged");
    read_until(&mut sse, &mut seen, |seen| phase2.iter().all(|k| created(seen).contains(k))).await;
    drop(sse);

    // Exactly once, in order: the consumer's sequence is the history itself, event for event.
    assert_strictly_ordered(&seen, "events seen by the consumer");
    let served = history(cluster.node(writer_node), None, 7).await;
    assert!(served.len() >= seen.len(), "the history holds fewer events than the consumer saw");
    assert_eq!(seen, served[..seen.len()], "the consumer's events differ from the history (gap or duplicate)");
    assert_eq!(seen[0].kind, "BucketCreated", "the stream starts at the beginning: {:?}", seen[0]);

    // Who, where and what.
    let region = REGIONS[writer_node].0;
    for event in seen.iter().filter(|e| e.kind == "ObjectCreated") {
        assert_eq!(event.actor.as_deref(), Some(format!("key:{ACCESS_KEY}").as_str()), "actor of {event:?}");
        assert_eq!(event.bucket(), bucket);
        assert_eq!(event.data["region"], region, "region of {event:?}");
        let i: usize = event.key()[6..9].parse().expect("key number");
        assert_eq!(event.data["size"], body(i).len(), "size of {event:?}");
        assert_eq!(event.data["etag"], md5_hex(&body(i)), "etag of {event:?}");
        assert!(event.time_ms > 1_600_000_000_000, "time of {event:?}");
    }
    let replicated: Vec<&EventOut> = seen.iter().filter(|e| e.kind == "ObjectReplicated").collect();
    assert!(!replicated.is_empty(), "blob objects are replicated, and that is an event");
    for event in replicated {
        assert!(event.key()[6..9].parse::<usize>().is_ok_and(|i| i % 2 == 1), "only blobs replicate: {event:?}");
        assert_ne!(event.data["region"], region, "a copy lands in another region: {event:?}");
        assert_eq!(event.actor, None);
    }

    // The killed node comes back, catches up, and serves the very same history.
    cluster.node(leader).restart().await;
    let restored = wait_history(cluster.node(leader), None, Duration::from_secs(60), |h| h.len() >= seen.len()).await;
    assert_eq!(seen, restored[..seen.len()], "the restarted node serves another history");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_pages_credentials_long_poll_and_purged_cursors() {
    let token = "events-test-service-token-0123456789";
    let options = ClusterOptions {
        extra_config: format!(
            "[events]\nretain = 25\n\n[[api.service_token]]\nname = \"catalog\"\nsha256 = \"{}\"\n",
            sha256_hex(token.as_bytes())
        ),
        ..Default::default()
    };
    let cluster = TestCluster::start_with(options).await;
    let _log = cluster.node(0).log_on_panic();
    let (reader, writer_node) = (cluster.node(0), 1);
    let http = http_client();
    let url = format!("{}/api/v1/events", reader.web_url());

    // Credentials: none, a wrong secret, an unknown token are refused; the token works.
    for (what, request) in [
        ("no credentials (SSE)", http.get(&url)),
        ("no credentials (JSON)", http.get(&url).header("accept", "application/json")),
        ("wrong secret", http.get(&url).basic_auth(ACCESS_KEY, Some("wrong-secret"))),
        ("unknown token", http.get(&url).bearer_auth("not-a-token")),
    ] {
        let response = request.send().await.expect("GET events");
        assert_eq!(response.status().as_u16(), 401, "{what}");
        let body: serde_json::Value = response.json().await.expect("JSON error body");
        assert_eq!(body["error"], "unauthorized", "{what}: {body}");
    }
    let response =
        http.get(&url).bearer_auth(token).header("accept", "application/json").send().await.expect("GET events");
    assert_eq!(response.status().as_u16(), 200, "a service token reads events");
    for bad in ["after=abc", "after=1.2.3", "limit=0", "limit=1001", "limit=many", "since=3"] {
        let (status, body) = get_json(reader, bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        let body: serde_json::Value = serde_json::from_str(&body).expect("JSON error body");
        assert_eq!(body["error"], "bad_request", "{bad}: {body}");
    }

    // Pages of three walk exactly the events of what was written, in order.
    let start = page(reader, "limit=1000").await.next;
    let client = cluster.node(writer_node).client();
    let bucket = create_bucket(&client, "pages").await;
    for i in 0..8 {
        put(&client, &bucket, &key(i), &body(i * 2)).await;
    }
    ok(client.delete_object().bucket(&bucket).key(key(3)).send().await, "DeleteObject");
    let events = wait_history(reader, Some(&start), Duration::from_secs(30), |h| h.len() >= 10).await;
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    let mut want = vec!["BucketCreated"];
    want.extend(["ObjectCreated"; 8]);
    want.push("ObjectDeleted");
    assert_eq!(kinds, want, "{events:#?}");
    assert_eq!(history(reader, Some(&start), 3).await, events, "pages of 3 read the same events");
    // Another node serves the same events once it has applied them (it may lag a moment).
    wait_history(cluster.node(2), Some(&start), Duration::from_secs(30), |h| h.len() >= 10).await;
    assert_eq!(history(cluster.node(2), Some(&start), 4).await, events, "another node serves the same events");
    assert_eq!(events[0].data, serde_json::json!({ "bucket": bucket, "region": REGIONS[writer_node].0 }));
    assert_eq!(events[9].data, serde_json::json!({ "bucket": bucket, "key": key(3) }));
    assert!(events.iter().all(|e| e.actor.as_deref() == Some(format!("key:{ACCESS_KEY}").as_str())));
    let caught_up = page(reader, &format!("after={}", events[9].cursor)).await;
    assert!(caught_up.events.is_empty());

    // A long poll returns as soon as something happens.
    let poll = {
        let query = format!("after={}&wait_secs=30", caught_up.next);
        let reader_url = reader.web_url();
        tokio::spawn(async move {
            http_client()
                .get(format!("{reader_url}/api/v1/events?{query}"))
                .basic_auth(ACCESS_KEY, Some(SECRET_KEY))
                .header("accept", "application/json")
                .send()
                .await
                .expect("long poll")
                .json::<harness::events::Page>()
                .await
                .expect("long poll page")
        })
    };
    put(&client, &bucket, "late.mp4", b"late").await;
    let polled = poll.await.expect("poll task");
    assert_eq!(polled.events.len(), 1, "{:?}", polled.events);
    assert_eq!(polled.events[0].key(), "late.mp4");

    // Thirty more events overflow the retention of 25: `start` is purged. The leader trims
    // through the log about once a second, so the history settles shortly after the writes.
    for i in 0..30 {
        put(&client, &bucket, &format!("more-{i}"), b"x").await;
    }
    wait_history(reader, None, Duration::from_secs(30), |h| h.len() <= 25).await;
    let mut gone = None;
    for _ in 0..600 {
        let (status, body) = get_json(reader, &format!("after={start}")).await;
        if status == 410 {
            gone = Some(body);
            break;
        }
        assert_eq!(status, 200, "{body}");
        tokio::time::sleep(POLL).await;
    }
    let gone: serde_json::Value =
        serde_json::from_str(&gone.expect("a purged cursor is answered 410 within 30 s")).expect("410 body");
    assert_eq!(gone["error"], "gone", "{gone}");
    let oldest = gone["oldest"].as_str().expect("the oldest retained cursor").to_owned();
    let resume_after = gone["resume_after"].as_str().expect("where to resume").to_owned();
    let retained = history(reader, Some(&resume_after), 100).await;
    assert_eq!(retained.first().map(|e| e.cursor.as_str()), Some(oldest.as_str()), "resuming reads the oldest");
    assert!(retained.len() <= 25, "at most `retain` events are kept, got {}", retained.len());
    let sse = http
        .get(&url)
        .basic_auth(ACCESS_KEY, Some(SECRET_KEY))
        .header("last-event-id", &start)
        .send()
        .await
        .expect("SSE with a purged id");
    assert_eq!(sse.status().as_u16(), 410, "an SSE consumer behind the history gets 410 too");
    // The oldest still retained is not purged.
    let (status, body) = get_json(reader, &format!("after={resume_after}")).await;
    assert_eq!(status, 200, "{body}");

    // An open stream does not hold a stopping node: SIGTERM ends it and the node exits cleanly.
    let mut open = SseStream::open(cluster.node(2), Some(&resume_after), None).await;
    open.next_event(EVENT_TIMEOUT).await;
    let exit = cluster.node(2).terminate(Duration::from_secs(20)).await;
    assert!(exit.is_some_and(|status| status.success()), "the node did not stop cleanly: {exit:?}");
    // What was sent before the stop may still be read; then the stream ends.
    let mut ended = false;
    for _ in 0..100 {
        if matches!(open.next(Duration::from_secs(10)).await, Ok(None) | Err(_)) {
            ended = true;
            break;
        }
    }
    assert!(ended, "the stream ends with the node");
}
