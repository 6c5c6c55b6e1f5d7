//! Webhooks on a three-node cluster: a receiver on 127.0.0.1 that answers 500 to the first
//! attempts still gets every event, in order, each POST signed with HMAC-SHA256 of
//! `TIMESTAMP.BODY`. Events the leader could not deliver (the receiver was down) when it was
//! `kill -9`ed are delivered by the new leader, which resumes from the progress recorded through
//! Raft (re-delivering at most what was not yet recorded).

use crate::harness;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use harness::cluster::{ClusterOptions, TestCluster};
use harness::events::{EventOut, assert_strictly_ordered, history, position};
use harness::*;
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;

const SECRET: &str = "webhook-test-secret-0123456789";
const SUBSCRIPTION: &str = "catalog";
/// The receiver answers 500 to this many first attempts.
const FAILURES: usize = 3;

/// One POST the receiver got.
#[derive(Debug, Clone)]
struct Attempt {
    headers: HeaderMap,
    body: Vec<u8>,
    /// What it answered.
    status: u16,
}

/// The receiver's record.
#[derive(Default)]
struct Receiver {
    attempts: Vec<Attempt>,
    /// While set, every POST is answered 503 (the receiver is "down").
    outage: bool,
}

#[derive(Debug, Deserialize)]
struct Delivery {
    subscription: String,
    events: Vec<EventOut>,
}

async fn hook(State(receiver): State<Arc<Mutex<Receiver>>>, headers: HeaderMap, body: axum::body::Bytes) -> StatusCode {
    let mut receiver = receiver.lock().expect("receiver lock");
    let status = if receiver.attempts.len() < FAILURES {
        StatusCode::INTERNAL_SERVER_ERROR
    } else if receiver.outage {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    receiver.attempts.push(Attempt { headers, body: body.to_vec(), status: status.as_u16() });
    status
}

/// Starts the receiver on 127.0.0.1; returns its URL and record.
async fn start_receiver() -> (String, Arc<Mutex<Receiver>>) {
    let receiver = Arc::new(Mutex::new(Receiver::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the receiver");
    let addr = listener.local_addr().expect("receiver address");
    let app = axum::Router::new().route("/hook", axum::routing::post(hook)).with_state(receiver.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.expect("receiver serves") });
    (format!("http://{addr}/hook"), receiver)
}

/// Checks the signature headers of one attempt.
#[track_caller]
fn assert_signed(attempt: &Attempt) {
    let header = |name: &str| {
        attempt.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_else(|| panic!("no {name} header")).to_owned()
    };
    let timestamp = header("x-meridian-timestamp");
    let seconds: i64 = timestamp.parse().expect("numeric timestamp");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64;
    assert!((now - seconds).abs() < 300, "timestamp {seconds} is far from now {now}");
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes()).expect("HMAC key");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(&attempt.body);
    let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(header("x-meridian-signature"), want, "signature of {}", String::from_utf8_lossy(&attempt.body));
    assert_eq!(header("x-meridian-subscription"), SUBSCRIPTION);
    assert_eq!(header("content-type"), "application/json");
}

fn deliveries(attempts: &[Attempt]) -> Vec<Delivery> {
    attempts.iter().map(|a| serde_json::from_slice(&a.body).expect("delivery JSON")).collect()
}

/// The events the receiver accepted (answered 200), in arrival order, re-deliveries included.
fn accepted(receiver: &Mutex<Receiver>) -> Vec<EventOut> {
    let attempts: Vec<Attempt> =
        receiver.lock().expect("receiver lock").attempts.iter().filter(|a| a.status == 200).cloned().collect();
    deliveries(&attempts).into_iter().flat_map(|d| d.events).collect()
}

/// Waits (bounded) until the receiver accepted an `ObjectCreated` of each key.
async fn wait_delivered(receiver: &Mutex<Receiver>, keys: &[String], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let events = accepted(receiver);
        let missing: Vec<&String> = keys
            .iter()
            .filter(|k| !events.iter().any(|e| e.kind == "ObjectCreated" && e.key() == k.as_str()))
            .collect();
        if missing.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "not delivered within {timeout:?}: {missing:?}");
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_still_gets_every_event_in_order_across_a_leader_kill() {
    let (url, receiver) = start_receiver().await;
    let options = ClusterOptions {
        extra_config: format!(
            "[[events.webhook]]\nname = \"{SUBSCRIPTION}\"\nurl = \"{url}\"\nsecret = \"{SECRET}\"\n\
             max_batch = 4\nretry_min_ms = 100\nretry_max_ms = 800\ntimeout_ms = 5000\n"
        ),
        ..Default::default()
    };
    let cluster = TestCluster::start_with(options).await;
    let _log = cluster.node(0).log_on_panic();
    let (leader, [writer_node, other]) = cluster.roles().await;
    let client = cluster.node(writer_node).client();
    let bucket = create_bucket(&client, "hooks").await;
    let first: Vec<String> = (0..10).map(|i| format!("first-{i}")).collect();
    for k in &first {
        put(&client, &bucket, k, k.as_bytes()).await;
    }
    wait_delivered(&receiver, &first, Duration::from_secs(60)).await;

    // The receiver goes down; the leader keeps trying these events and is killed meanwhile.
    receiver.lock().expect("receiver lock").outage = true;
    let stuck: Vec<String> = (0..5).map(|i| format!("stuck-{i}")).collect();
    for k in &stuck {
        put(&client, &bucket, k, k.as_bytes()).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let tried = receiver.lock().expect("receiver lock").attempts.iter().any(|a| {
            a.status == 503 && deliveries(std::slice::from_ref(a))[0].events.iter().any(|e| e.key() == stuck[0])
        });
        if tried {
            break;
        }
        assert!(Instant::now() < deadline, "the leader did not try to deliver {} within 30 s", stuck[0]);
        tokio::time::sleep(POLL).await;
    }
    cluster.node(leader).kill9();
    receiver.lock().expect("receiver lock").outage = false;

    // The new leader delivers what the old one could not, then what comes next.
    cluster.wait_for_leader(&[writer_node, other], Duration::from_secs(30)).await;
    let second: Vec<String> = (0..10).map(|i| format!("second-{i}")).collect();
    for k in &second {
        put(&client, &bucket, k, k.as_bytes()).await;
    }
    wait_delivered(&receiver, &stuck, Duration::from_secs(60)).await;
    wait_delivered(&receiver, &second, Duration::from_secs(60)).await;

    let attempts = receiver.lock().expect("receiver lock").attempts.clone();
    // The first attempts failed and the same batch was retried until it was taken.
    let statuses: Vec<u16> = attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses[..FAILURES + 1], [500, 500, 500, 200], "{statuses:?}");
    assert!(attempts[..=FAILURES].iter().all(|a| a.body == attempts[0].body), "a retry sends the same batch");
    for attempt in &attempts {
        assert_signed(attempt);
    }
    for delivery in deliveries(&attempts) {
        assert_eq!(delivery.subscription, SUBSCRIPTION);
        assert!(!delivery.events.is_empty() && delivery.events.len() <= 4, "batch of {}", delivery.events.len());
        assert_strictly_ordered(&delivery.events, "one delivery");
    }

    // At least once, in order: dropping what was already seen (a re-delivery after the leader
    // change) leaves exactly the history, from its first event, with no gap.
    let served = history(cluster.node(other), None, 100).await;
    let by_cursor: BTreeMap<String, &EventOut> = served.iter().map(|e| (e.cursor.clone(), e)).collect();
    let mut unique: Vec<EventOut> = Vec::new();
    for event in accepted(&receiver) {
        assert_eq!(by_cursor.get(&event.cursor), Some(&&event), "a delivered event differs from the history");
        if unique.last().is_none_or(|last| last.position() < event.position()) {
            unique.push(event);
        } else {
            // Only ever a step back to re-deliver, never a reordering within what is new.
            assert!(unique.iter().any(|seen| seen.cursor == event.cursor), "{} came out of order", event.cursor);
        }
    }
    assert!(!unique.is_empty());
    assert_eq!(unique, served[..unique.len()], "the deliveries skipped events of the history");
    assert_eq!(position(&unique[0].cursor), served[0].position(), "delivery starts at the oldest event");
}
