//! Read-after-write across regions on a three-node cluster: whatever a PUT or DELETE through one
//! node returned is what every other node answers at once (no waiting, no retries), for inline
//! objects (bytes in the Raft log) and blob objects (bytes pulled or streamed from a holder);
//! listings agree everywhere.
//!
//! A node that served a known key from its own state without catching up first would be caught
//! only when it lags at that moment, so each check runs many times (writes through the leader and
//! through both followers, reads through the others).

use crate::harness;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use harness::cluster::{ClusterOptions, TestCluster, shared_cluster};
use harness::*;

/// Inline (<= 16 KiB: bytes in the log entry) and blob-backed sizes.
const SIZES: [(&str, usize); 2] = [("small", 1000), ("big", MIB)];

fn clients(cluster: &TestCluster) -> Vec<Client> {
    cluster.nodes.iter().map(TestNode::client).collect()
}

async fn head_status(client: &Client, bucket: &str, key: &str) -> Result<(i64, String), u16> {
    match client.head_object().bucket(bucket).key(key).send().await {
        Ok(out) => Ok((out.content_length().unwrap_or(-1), out.e_tag().unwrap_or_default().to_owned())),
        Err(e) => Err(service_err(&e).status),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_through_one_node_is_read_back_through_every_other_at_once() {
    let cluster = shared_cluster().await;
    let clients = clients(cluster);
    let bucket = create_bucket(&clients[0], "rw").await;
    // The bucket made through node 0 is there on the others at once, too.
    for (r, client) in clients.iter().enumerate().skip(1) {
        ok(client.head_bucket().bucket(&bucket).send().await, &format!("HeadBucket through node {r}"));
    }

    let mut seed = 1;
    for round in 0..3 {
        for w in 0..3 {
            for (label, size) in SIZES {
                seed += 1;
                let key = format!("round{round}/{label}-via-{w}");
                let data = random_bytes(seed, size);
                let etag = put(&clients[w], &bucket, &key, &data).await;
                assert_eq!(etag, etag_of(&data), "ETag of PUT {key} through node {w}");
                for r in (0..3).filter(|&r| r != w) {
                    let got = get_bytes(&clients[r], &bucket, &key).await;
                    assert_bytes_eq(
                        &got,
                        &data,
                        &format!("GET {key} through node {r} right after PUT through node {w}"),
                    );
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_overwrite_through_one_node_is_read_back_through_every_other_at_once() {
    let cluster = shared_cluster().await;
    let clients = clients(cluster);
    let bucket = create_bucket(&clients[0], "ow").await;
    // Every node has read (and so knows) the old version before the overwrite: a node that
    // answered from its own state without catching up would serve the old bytes.
    let mut stale = Vec::new();
    let mut checks = 0;
    for round in 0..3u64 {
        for w in 0..3 {
            for (label, size) in SIZES {
                let key = format!("round{round}/{label}-via-{w}");
                let v1 = random_bytes(1000 + round * 10 + w as u64, size);
                put(&clients[w], &bucket, &key, &v1).await;
                for (r, client) in clients.iter().enumerate() {
                    assert_bytes_eq(
                        &get_bytes(client, &bucket, &key).await,
                        &v1,
                        &format!("GET v1 of {key} via node {r}"),
                    );
                }
                let v2 = random_bytes(2000 + round * 10 + w as u64, size);
                put(&clients[w], &bucket, &key, &v2).await;
                for r in (0..3).filter(|&r| r != w) {
                    let got = get_bytes(&clients[r], &bucket, &key).await;
                    checks += 1;
                    if got != v2 {
                        let which = if got == v1 { "the OLD version" } else { "unknown bytes" };
                        // How long until it serves the new version (bounded): staleness, not loss.
                        let since = Instant::now();
                        let mut fixed = None;
                        while since.elapsed() < Duration::from_secs(10) {
                            if get_bytes(&clients[r], &bucket, &key).await == v2 {
                                fixed = Some(since.elapsed());
                                break;
                            }
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                        stale.push(format!(
                            "GET {key} through node {r} right after overwrite through node {w}: {which}; new version served {fixed:?} later"
                        ));
                    }
                }
            }
        }
    }
    // Eventually (bounded), every node serves v2: the failures above are staleness, not loss.
    assert!(
        stale.is_empty(),
        "{} of {checks} reads right after an overwrite were stale:\n{}",
        stale.len(),
        stale.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delete_through_one_node_is_a_404_through_every_other_at_once() {
    let cluster = shared_cluster().await;
    let clients = clients(cluster);
    let bucket = create_bucket(&clients[1], "del").await;
    let mut stale = Vec::new();
    let mut checks = 0;

    for round in 0..6 {
        for d in 0..3 {
            for (label, size) in SIZES {
                let key = format!("round{round}/{label}-deleted-via-{d}");
                let data = random_bytes(round * 100 + d as u64 * 10 + size as u64, size);
                // Written through another node than the one that deletes it.
                put(&clients[(d + 1) % 3], &bucket, &key, &data).await;
                // Every node reads it first, so every node knows the key locally: a node that
                // answered from its own state without catching up would serve the stale object.
                for (r, client) in clients.iter().enumerate() {
                    assert_bytes_eq(&get_bytes(client, &bucket, &key).await, &data, &format!("GET {key} via node {r}"));
                }
                ok(
                    clients[d].delete_object().bucket(&bucket).key(&key).send().await,
                    &format!("DeleteObject {key} through node {d}"),
                );
                for r in (0..3).filter(|&r| r != d) {
                    checks += 1;
                    match clients[r].get_object().bucket(&bucket).key(&key).send().await {
                        Ok(out) => {
                            let since = Instant::now();
                            let mut fixed = None;
                            while since.elapsed() < Duration::from_secs(10) {
                                if head_status(&clients[r], &bucket, &key).await == Err(404) {
                                    fixed = Some(since.elapsed());
                                    break;
                                }
                                tokio::time::sleep(Duration::from_millis(1)).await;
                            }
                            stale.push(format!(
                                "GET {key} through node {r} right after DELETE through node {d}: 200, {:?} bytes; 404 {fixed:?} later",
                                out.content_length()
                            ));
                        }
                        Err(e) => {
                            let se = service_err(&e);
                            assert_eq!(
                                (se.status, se.code.as_deref()),
                                (404, Some("NoSuchKey")),
                                "GET {key} through node {r} after DELETE: {se:?}"
                            );
                        }
                    }
                    checks += 1;
                    let head = head_status(&clients[r], &bucket, &key).await;
                    if head != Err(404) {
                        stale
                            .push(format!("HEAD {key} through node {r} right after DELETE through node {d}: {head:?}"));
                    }
                }
            }
        }
    }
    assert!(
        stale.is_empty(),
        "{} of {checks} reads right after a DELETE still found the object:\n{}",
        stale.len(),
        stale.join("\n")
    );
    // Nothing is left, as every node lists it.
    for (r, client) in clients.iter().enumerate() {
        assert_eq!(list_all_keys(client, &bucket).await, Vec::<String>::new(), "listing through node {r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn listings_agree_on_every_node_after_writes_through_different_nodes() {
    let cluster = shared_cluster().await;
    let clients = clients(cluster);
    let bucket = create_bucket(&clients[2], "list").await;

    let mut expected = BTreeSet::new();
    let mut visibility_failures = Vec::new();
    for i in 0..30u64 {
        let w = (i % 3) as usize;
        let key = format!("dir{}/obj-{i:03}", i % 4);
        let size = if i % 5 == 0 { 40 * 1024 } else { (i as usize * 97) % 3000 };
        put(&clients[w], &bucket, &key, &random_bytes(i + 77, size)).await;
        expected.insert(key.clone());
        // Every fourth write removes an earlier key through yet another node.
        if i % 4 == 3 {
            let victim = format!("dir{}/obj-{:03}", (i - 2) % 4, i - 2);
            ok(
                clients[(w + 2) % 3].delete_object().bucket(&bucket).key(&victim).send().await,
                &format!("DeleteObject {victim}"),
            );
            expected.remove(&victim);
        }
        // Visible in the listing of the next node right away.
        let r = (w + 1) % 3;
        let listed: BTreeSet<String> = list_all_keys(&clients[r], &bucket).await.into_iter().collect();
        if listed != expected {
            visibility_failures.push(format!(
                "after write #{i} through node {w}: node {r} lists {} keys; missing {:?}, extra {:?}",
                listed.len(),
                expected.difference(&listed).collect::<Vec<_>>(),
                listed.difference(&expected).collect::<Vec<_>>()
            ));
        }
    }

    let want: Vec<String> = expected.iter().cloned().collect();
    for (r, client) in clients.iter().enumerate() {
        assert_eq!(list_all_keys(client, &bucket).await, want, "full listing through node {r}");
        // Paged, with a delimiter: the same view.
        let out = ok(client.list_objects_v2().bucket(&bucket).delimiter("/").send().await, "ListObjectsV2 delimiter");
        let prefixes: Vec<&str> = out.common_prefixes().iter().filter_map(|p| p.prefix()).collect();
        assert_eq!(prefixes, vec!["dir0/", "dir1/", "dir2/", "dir3/"], "common prefixes through node {r}");
        let out = ok(client.list_objects_v2().bucket(&bucket).max_keys(7).send().await, "ListObjectsV2 max-keys 7");
        assert_eq!(
            out.contents().iter().filter_map(|o| o.key()).collect::<Vec<_>>(),
            want.iter().take(7).map(String::as_str).collect::<Vec<_>>(),
            "first page through node {r}"
        );
    }
    assert!(
        visibility_failures.is_empty(),
        "a listing right after a write/delete through another node did not show it:\n{}",
        visibility_failures.join("\n")
    );
}

/// The read-lease counters of a node (`GET /api/v1/cluster`).
async fn lease_counters(node: &TestNode) -> (Option<u64>, u64, u64) {
    let url = format!("http://{}/api/v1/cluster", node.web_addr);
    let body: serde_json::Value = reqwest::get(&url).await.expect("GET /api/v1/cluster").json().await.expect("JSON");
    let status = &body["status"];
    (
        status["read_lease_ms"].as_u64(),
        status["lease_reads"].as_u64().expect("lease_reads"),
        status["read_index_reads"].as_u64().expect("read_index_reads"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_holding_a_read_lease_reads_without_asking_the_leader() {
    // Leases are on by default (as long as the election timeout's lower bound).
    let cluster = &TestCluster::start_with(ClusterOptions::default()).await;
    let (leader, [follower, _]) = cluster.roles().await;
    let bucket = create_bucket(&cluster.node(leader).client(), "lease").await;
    let data = random_bytes(77, 1000);
    put(&cluster.node(leader).client(), &bucket, "known", &data).await;

    let deadline = Instant::now() + Duration::from_secs(10);
    while lease_counters(cluster.node(follower)).await.0.is_none() {
        assert!(Instant::now() < deadline, "follower {follower} never got a read lease");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, lease_before, asked_before) = lease_counters(cluster.node(follower)).await;
    let client = cluster.node(follower).client();
    const READS: u64 = 50;
    for _ in 0..READS {
        assert_bytes_eq(&get_bytes(&client, &bucket, "known").await, &data, "GET through the follower");
    }
    let (_, lease_after, asked_after) = lease_counters(cluster.node(follower)).await;
    // A lease may lapse for a moment on a loaded machine (its renewal is late); a few reads then
    // ask the leader. Without working leases every read would.
    assert!(
        asked_after - asked_before <= READS / 10,
        "{} of {READS} reads asked the leader despite a lease",
        asked_after - asked_before
    );
    assert!(lease_after - lease_before >= READS * 9 / 10, "only {} reads under the lease", lease_after - lease_before);
}

/// The body of `key` as read through `client`.
async fn get_text(client: &Client, bucket: &str, key: &str) -> String {
    String::from_utf8(get_bytes(client, bucket, key).await).expect("UTF-8 body")
}

/// Waits (bounded) until `node` holds a read lease with at least `left` of it to run, and
/// returns a time by which that lease has certainly not run out yet.
async fn lease_with_at_least(node: &TestNode, left: Duration) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let asked = Instant::now();
        if let (Some(ms), _, _) = lease_counters(node).await
            && Duration::from_millis(ms) >= left
        {
            // The node measured `ms` after `asked`, so its lease lasts at least until this.
            return asked + Duration::from_millis(ms);
        }
        assert!(Instant::now() < deadline, "node never held a read lease with {left:?} to run");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The quorum-lease rule with a lease holder that stops answering (SIGSTOP) while a write is in
/// flight: the write commits with the other two nodes, but no read anywhere shows it before the
/// frozen holder has it or its lease ran out (otherwise a later read on the holder, served
/// from its lease, would miss what an earlier read saw); the write is then acknowledged within
/// about one lease, not timed out, and later writes do not wait for the frozen node at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_stays_invisible_until_a_frozen_lease_holder_has_it_or_its_lease_ran_out() {
    let options = ClusterOptions { commit_timeout_ms: 5_000, ..ClusterOptions::default() };
    // The default lease: election_timeout_min_ms.
    let lease = Duration::from_millis(options.election_timeout_min_ms);
    let cluster = &TestCluster::start_with(options).await;
    let (leader, [holder, other]) = cluster.roles().await;
    let leader_client = cluster.node(leader).client();
    let bucket = create_bucket(&leader_client, "quorum-lease").await;
    put(&leader_client, &bucket, "k", b"v1").await;
    for i in [holder, other] {
        assert_eq!(get_text(&cluster.node(i).client(), &bucket, "k").await, "v1", "node {i} before the write");
    }

    let holder_lease_lasts_until = lease_with_at_least(cluster.node(holder), lease / 2).await;
    let frozen = cluster.node(holder).freeze();
    let write = tokio::spawn({
        let (client, bucket) = (leader_client.clone(), bucket.clone());
        async move {
            let started = Instant::now();
            let result = client.put_object().bucket(&bucket).key("k").body(b"v2".to_vec().into()).send().await;
            (result.map(|_| ()).map_err(|e| format!("{:?}", service_err(&e))), started.elapsed())
        }
    });
    // Read through the leader until the write shows: not before the holder's lease ran out.
    let deadline = Instant::now() + Duration::from_secs(10);
    let seen_at = loop {
        let body = get_text(&leader_client, &bucket, "k").await;
        let answered = Instant::now();
        if body == "v2" {
            break answered;
        }
        assert_eq!(body, "v1", "GET through the leader during the write");
        assert!(answered < deadline, "the write never became visible on the leader");
    };
    assert!(
        seen_at >= holder_lease_lasts_until,
        "the leader showed the write {:?} before the frozen holder's lease ran out: a read on the holder \
         under its lease would have missed it",
        holder_lease_lasts_until - seen_at
    );
    let (result, took) = tokio::time::timeout(Duration::from_secs(10), write).await.expect("PUT ends").expect("task");
    assert_eq!(result, Ok(()), "the PUT committed with two of three nodes");
    assert!(took < lease * 3, "a frozen lease holder delayed the write by {took:?}, more than about one lease");
    // Every read after the leader's sees it, the other lease holder's included.
    assert_eq!(get_text(&cluster.node(other).client(), &bucket, "k").await, "v2", "node {other} after the leader");

    // The frozen node holds no lease any more: writes no longer wait for it.
    let started = Instant::now();
    put(&leader_client, &bucket, "k", b"v3").await;
    let next = started.elapsed();
    assert!(next < lease / 2, "a write after the frozen holder's lease ran out still waited {next:?}");

    // Thawed, the old holder answers with the write too (its lease ran out: it asks the leader).
    drop(frozen);
    assert_eq!(get_text(&cluster.node(holder).client(), &bucket, "k").await, "v3", "node {holder} after thawing");
    // And it holds a lease again once it caught up.
    lease_with_at_least(cluster.node(holder), Duration::from_millis(1)).await;
    assert_eq!(get_text(&cluster.node(holder).client(), &bucket, "k").await, "v3", "node {holder} under a new lease");
}
