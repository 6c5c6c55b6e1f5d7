//! Leader failover on a three-node cluster: a write loop through a follower keeps going while the
//! leader is `kill -9`ed and later restarted; no acknowledged write is lost on any node, nothing
//! appears that was never sent, a new leader is elected within a bound, and the old leader
//! catches up after its restart. A follower that was down while megabytes of log piled up
//! catches up too. And without failures, a leader without writes to send keeps its followers from
//! electing another.

use crate::harness;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use harness::cluster::{ClusterOptions, TestCluster, id_of};
use harness::*;

const TOTAL_PUTS: usize = 300;
const WRITERS: usize = 2;
/// The leader is killed once this many PUTs are acknowledged...
const KILL_AFTER_ACKS: usize = 60;
/// ...and no PUT with an index from here on starts before the kill (so some run across it).
const GATE_KILL: usize = 100;
/// The old leader is restarted once this many more PUTs are acknowledged after the kill...
const RESTART_AFTER_MORE_ACKS: usize = 60;
/// ...and no PUT from here on starts before the restart (so some run after it).
const GATE_RESTART: usize = 220;
/// Largest acceptable time from the kill to a new leader both survivors agree on.
const FAILOVER_BOUND: Duration = Duration::from_secs(10);

const PHASE_BEFORE_KILL: usize = 0;
const PHASE_KILLED: usize = 1;
const PHASE_RESTARTED: usize = 2;

#[derive(Default)]
struct LoopState {
    next: AtomicUsize,
    acked_count: AtomicUsize,
    phase: AtomicUsize,
    /// Every PUT started: key -> bytes.
    attempted: Mutex<HashMap<String, Vec<u8>>>,
    /// PUTs answered 200 with the right ETag: key -> bytes.
    acked: Mutex<HashMap<String, Vec<u8>>>,
    /// PUTs that failed (outcome unknown): (key, phase when started, error).
    failed: Mutex<Vec<(String, usize, String)>>,
    /// Acknowledgements per phase in which the PUT started.
    acked_by_phase: [AtomicUsize; 3],
}

/// Mixed sizes: every third object is inline (<= 16 KiB, bytes in the log), the rest are blobs.
fn object_for(i: usize) -> (String, Vec<u8>) {
    let key = format!("failover/{i:04}");
    let mut rng = XorShift::new(i as u64 + 11);
    let size =
        if i.is_multiple_of(3) { 1 + rng.below(16 * 1024) as usize } else { 17 * 1024 + rng.below(80 * 1024) as usize };
    (key, random_bytes(i as u64 * 31 + 5, size))
}

async fn wait_phase(state: &LoopState, phase: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while state.phase.load(Ordering::SeqCst) < phase {
        assert!(Instant::now() < deadline, "the writers waited 120 s for phase {phase}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn writer(client: aws_sdk_s3::Client, bucket: String, state: Arc<LoopState>) {
    loop {
        let i = state.next.fetch_add(1, Ordering::SeqCst);
        if i >= TOTAL_PUTS {
            return;
        }
        if i >= GATE_RESTART {
            wait_phase(&state, PHASE_RESTARTED).await;
        } else if i >= GATE_KILL {
            wait_phase(&state, PHASE_KILLED).await;
        }
        let (key, data) = object_for(i);
        let phase = state.phase.load(Ordering::SeqCst);
        state.attempted.lock().expect("lock").insert(key.clone(), data.clone());
        let result = client.put_object().bucket(&bucket).key(&key).body(ByteStream::from(data.clone())).send().await;
        match result {
            Ok(out) if out.e_tag() == Some(etag_of(&data).as_str()) => {
                state.acked.lock().expect("lock").insert(key, data);
                state.acked_count.fetch_add(1, Ordering::SeqCst);
                state.acked_by_phase[phase].fetch_add(1, Ordering::SeqCst);
            }
            Ok(out) => state.failed.lock().expect("lock").push((
                key,
                phase,
                format!("200 with ETag {:?}, want {}", out.e_tag(), etag_of(&data)),
            )),
            Err(e) => state.failed.lock().expect("lock").push((key, phase, DisplayErrorContext(&e).to_string())),
        }
    }
}

/// Waits (bounded) until the acknowledgement count reaches `n`.
async fn wait_acks(cluster: &TestCluster, state: &LoopState, n: usize, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while state.acked_count.load(Ordering::SeqCst) < n {
        assert!(
            Instant::now() < deadline,
            "{what}: only {} of {n} PUTs acknowledged within 120 s; failures: {:#?}\n{}",
            state.acked_count.load(Ordering::SeqCst),
            state.failed.lock().expect("lock"),
            cluster.log_report()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_through_a_follower_survive_a_leader_kill_and_restart() {
    let cluster = TestCluster::start().await;
    let (old_leader, [via, other]) = cluster.roles().await;
    let term_before = cluster.health(old_leader).await.expect("leader health").term;
    eprintln!("leader: node {old_leader} (id {}), term {term_before}; writing through node {via}", id_of(old_leader));
    let client = cluster.node(via).client();
    let bucket = create_bucket(&client, "failover").await;

    let state = Arc::new(LoopState::default());
    let writers: Vec<_> =
        (0..WRITERS).map(|_| tokio::spawn(writer(client.clone(), bucket.clone(), Arc::clone(&state)))).collect();

    // Kill the leader in the middle of the loop.
    wait_acks(&cluster, &state, KILL_AFTER_ACKS, "before the kill").await;
    let failed_before_kill = state.failed.lock().expect("lock").clone();
    assert!(failed_before_kill.is_empty(), "PUTs failed before the kill: {failed_before_kill:#?}");
    let killed_at = Instant::now();
    cluster.node(old_leader).kill9();
    let acks_at_kill = state.acked_count.load(Ordering::SeqCst);
    state.phase.store(PHASE_KILLED, Ordering::SeqCst);

    // Time to a new leader both survivors agree on (polling their /healthz).
    let new_leader = cluster.wait_for_leader(&[via, other], Duration::from_secs(30)).await;
    let failover = killed_at.elapsed();
    let new_term = cluster.health(new_leader).await.expect("new leader health").term;
    eprintln!(
        "FAILOVER: kill -9 of node {old_leader} -> node {new_leader} leads (term {term_before} -> {new_term}) after {failover:?}; {acks_at_kill} PUTs acknowledged at the kill"
    );
    assert!(new_term > term_before, "the new leader's term {new_term} is not above the old {term_before}");
    assert!(
        failover < FAILOVER_BOUND,
        "failover took {failover:?} (bound {FAILOVER_BOUND:?})\n{}",
        cluster.log_report()
    );

    // Writes keep being acknowledged through the follower; then the old leader comes back.
    wait_acks(&cluster, &state, acks_at_kill + RESTART_AFTER_MORE_ACKS, "after the kill").await;
    let restart_started = Instant::now();
    cluster.node(old_leader).restart().await;
    let ready_after = restart_started.elapsed();
    // How far behind it came back, and how long it took to apply what the others had then.
    let at_restart = cluster.health(old_leader).await.expect("restarted node health").applied_index;
    let mut others_then = 0;
    for i in [via, other] {
        others_then = others_then.max(cluster.health(i).await.expect("survivor health").applied_index);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while cluster.health(old_leader).await.map_or(0, |h| h.applied_index) < others_then {
        assert!(Instant::now() < deadline, "node {old_leader} did not reach applied index {others_then} within 60 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!(
        "RESTART: node {old_leader} ready {ready_after:?} after its restart began (applied {at_restart}); reached the others' index {others_then} {:?} after the restart began",
        restart_started.elapsed()
    );
    state.phase.store(PHASE_RESTARTED, Ordering::SeqCst);

    for w in writers {
        tokio::time::timeout(Duration::from_secs(180), w)
            .await
            .expect("writers finish within 180 s")
            .expect("writer task panicked");
    }
    let attempted = state.attempted.lock().expect("lock").clone();
    let acked = state.acked.lock().expect("lock").clone();
    let failed = state.failed.lock().expect("lock").clone();
    let by_phase: Vec<usize> = state.acked_by_phase.iter().map(|a| a.load(Ordering::SeqCst)).collect();
    eprintln!(
        "{} PUTs attempted, {} acknowledged (started before the kill / after it / after the restart: {by_phase:?}), {} failed: {failed:#?}",
        attempted.len(),
        acked.len(),
        failed.len()
    );
    assert_eq!(attempted.len(), TOTAL_PUTS);
    assert!(by_phase[PHASE_BEFORE_KILL] >= KILL_AFTER_ACKS, "PUTs acknowledged before the kill: {by_phase:?}");
    assert!(by_phase[PHASE_KILLED] > 0 && by_phase[PHASE_RESTARTED] > 0, "no PUT acknowledged in some phase");
    // A PUT forwarded to the dead leader that it never took (connection refused) is retried by
    // the follower until the commit timeout; one the leader may have taken answers 503 (outcome
    // unknown, never proposed twice). With a quick failover at most one per writer may fail.
    assert!(failed.len() <= WRITERS, "{} PUTs failed: {failed:#?}", failed.len());
    // A PUT started before the kill may have been in flight at it.
    for (key, phase, error) in &failed {
        assert_ne!(*phase, PHASE_RESTARTED, "PUT {key} failed outside the failover window: {error}");
        assert!(
            error.contains("ServiceUnavailable"),
            "PUT {key} failed otherwise than with an unknown outcome: {error}"
        );
    }

    // The old leader catches up: its applied index reaches what the others had applied when the
    // loop ended.
    let mut target = 0;
    for i in [via, other] {
        target = target.max(cluster.health(i).await.expect("survivor health").applied_index);
    }
    let catch_up_started = Instant::now();
    let deadline = catch_up_started + Duration::from_secs(60);
    loop {
        let h = cluster.health(old_leader).await;
        if h.as_ref().is_ok_and(|h| h.applied_index >= target) {
            eprintln!(
                "CATCH-UP: node {old_leader} applied index {target} {:?} after the loop ended",
                catch_up_started.elapsed()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node {old_leader} did not reach applied index {target} within 60 s: {h:?}\n{}",
            cluster.log_report()
        );
        tokio::time::sleep(POLL).await;
    }
    cluster.wait_applied_equal(&[0, 1, 2], target, Duration::from_secs(60)).await;

    // Every acknowledged write, on every node: metadata (HEAD) and bytes (GET).
    let mut keys: Vec<&String> = acked.keys().collect();
    keys.sort();
    for (n, node) in cluster.nodes.iter().enumerate() {
        let c = node.client();
        for key in &keys {
            let data = &acked[*key];
            let head = ok(c.head_object().bucket(&bucket).key(*key).send().await, &format!("HEAD {key} on node {n}"));
            assert_eq!(head.content_length(), Some(data.len() as i64), "size of {key} on node {n}");
            assert_eq!(head.e_tag(), Some(etag_of(data).as_str()), "ETag of {key} on node {n}");
            assert_bytes_eq(&get_bytes(&c, &bucket, key).await, data, &format!("GET {key} on node {n}"));
        }
    }

    // Listings: every acknowledged key, nothing that was never sent, the same on every node;
    // a failed (unknown outcome) PUT is either absent or complete.
    let acked_keys: BTreeSet<String> = acked.keys().cloned().collect();
    let mut listings = Vec::new();
    for (n, node) in cluster.nodes.iter().enumerate() {
        let c = node.client();
        let listed: BTreeSet<String> = list_all_keys(&c, &bucket).await.into_iter().collect();
        let missing: Vec<&String> = acked_keys.difference(&listed).collect();
        assert!(missing.is_empty(), "node {n} does not list acknowledged keys {missing:?}");
        let unknown: Vec<&String> = listed.iter().filter(|k| !attempted.contains_key(*k)).collect();
        assert!(unknown.is_empty(), "node {n} lists keys that were never written: {unknown:?}");
        for key in listed.difference(&acked_keys) {
            assert_bytes_eq(
                &get_bytes(&c, &bucket, key).await,
                &attempted[key],
                &format!("unacknowledged {key} on node {n}"),
            );
        }
        listings.push(listed);
    }
    assert!(listings.iter().all(|l| *l == listings[0]), "the nodes list different keys");
    eprintln!(
        "verified {} acknowledged objects on all 3 nodes; {} unacknowledged PUTs are listed",
        acked_keys.len(),
        listings[0].len() - acked_keys.len()
    );
}

/// The node turns openraft's periodic heartbeat off (on the replication stream it held writes back
/// for a round trip) and sends its own beside the streams; without that, the followers of an idle
/// leader would elect a new one every election timeout.
#[tokio::test]
async fn an_idle_leader_keeps_its_followers() {
    // Leases off: a leader renewing its own read lease confirms its leadership with a quorum
    // round, which is a heartbeat too; this test is about the heartbeat alone.
    let options = ClusterOptions { read_lease_ms: Some(0), ..ClusterOptions::default() };
    let cluster = &TestCluster::start_with(options).await;
    let leader = cluster.leader().await;
    let term = cluster.health(leader).await.expect("leader health").term;
    // Four times the longest election timeout: a follower that stopped hearing from the leader
    // would have started an election (a new term) several times over.
    let watch_for = Duration::from_millis(cluster.options.election_timeout_max_ms * 4);
    let end = Instant::now() + watch_for;
    let mut looks = 0;
    while Instant::now() < end {
        for (i, health) in cluster.healths(&[0, 1, 2]).await {
            let health = health.unwrap_or_else(|e| panic!("node {i}: {e}"));
            assert_eq!(
                (health.term, health.leader),
                (term, Some(id_of(leader))),
                "node {i} changed term or leader while the cluster was idle:\n{}",
                cluster.log_report()
            );
        }
        looks += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(looks >= 10, "only {looks} looks in {watch_for:?}");
}

/// Objects up to 16 KiB travel inside the log entries, and openraft sends a follower up to 300
/// entries per AppendEntries: after some downtime that is more than one request body may carry
/// (axum's default limit of 2 MiB refused it with 413, every retry, so the follower never caught
/// up). The leader now splits what it sends, and the listener takes up to its own limit.
#[tokio::test]
async fn a_follower_back_from_downtime_catches_up_on_megabytes_of_log() {
    let cluster = &TestCluster::start().await;
    let (leader, [follower, _]) = cluster.roles().await;
    let client = cluster.node(leader).client();
    let bucket = create_bucket(&client, "catchup").await;
    cluster.node(follower).terminate(Duration::from_secs(20)).await.expect("follower stops on SIGTERM");

    // 400 entries of 15 KiB (one PUT at a time: one entry each), about 6 MiB of log.
    const OBJECTS: u64 = 400;
    for i in 0..OBJECTS {
        put(&client, &bucket, &format!("k{i:03}"), &random_bytes(i, 15 * 1024)).await;
    }
    let written = cluster.health(leader).await.expect("leader health").applied_index;

    cluster.node(follower).restart().await;
    cluster.wait_applied_equal(&[0, 1, 2], written, Duration::from_secs(60)).await;
    let back = cluster.node(follower).client();
    for i in [0, OBJECTS / 2, OBJECTS - 1] {
        let key = format!("k{i:03}");
        assert_bytes_eq(&get_bytes(&back, &bucket, &key).await, &random_bytes(i, 15 * 1024), &key);
    }
}
