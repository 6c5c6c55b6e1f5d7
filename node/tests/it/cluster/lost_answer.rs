//! A forwarded write whose answer is lost (anomaly 4 of docs/faults.md): a follower forwards a
//! PutObject to the leader, the leader commits it, and the answer never comes back (the leader
//! dies, the link breaks). Meanwhile another write of the same key commits, and the node that
//! holds the first version's blob drops it, as an overwrite should. The follower must not
//! propose the first write again: applied a second time, it would bring back a version whose
//! bytes are gone from every node, and every GET of the key would answer 503 for good (what
//! `scripts/chaos --nemesis process --seed 2000` met after killing the leader).
//!
//! The lost answer is made deterministic with a relay in front of the leader's internal
//! listener (`harness::relay`): it lets the forwarded request through and swallows the answer
//! until the test has written the second version, then closes the connection.

use crate::harness;

use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use harness::cluster::{ClusterOptions, TestCluster, free_ports};
use harness::relay::CuttingRelay;
use harness::*;

/// The user metadata that makes the forwarded PutObject the one large request on the leader's
/// internal link (S3 allows 2 KiB of it): the relay recognises the forward by its size alone,
/// since it sees only TLS.
const PAD: usize = 1900;
/// Reads from a follower to the leader at least this large are taken for the forward: every other
/// call on that link (read index, lease, load report) is far smaller.
const DOOM_AT: usize = 1500;
/// Bound of every wait of this test.
const BOUND: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_forwarded_write_whose_answer_is_lost_is_not_applied_again_over_a_later_write() {
    // Each node advertises its relay as `internal` and listens on `internal_bind` behind it.
    let ports = free_ports::<12>();
    let mut relays = Vec::new();
    for i in 0..3 {
        relays.push(CuttingRelay::start(ports[4 * i + 2], ports[4 * i + 3]).await);
    }
    let cluster = TestCluster::start_behind_relays(&ClusterOptions::default(), &ports).await;
    let (leader, [follower, _]) = cluster.roles().await;
    let (via_follower, via_leader) = (cluster.node(follower).client(), cluster.node(leader).client());
    let bucket = create_bucket(&via_follower, "lost-answer").await;
    // Blob-backed (larger than the 16 KiB kept inline): the bytes live on the node that took the PUT.
    let (first, second) = (random_bytes(41, 64 * 1024), random_bytes(42, 64 * 1024));

    // The follower takes the first version; its forward to the leader loses its answer.
    relays[leader].arm(DOOM_AT);
    let put_first = {
        let (client, bucket, body) = (via_follower.clone(), bucket.clone(), first.clone());
        tokio::spawn(async move {
            client
                .put_object()
                .bucket(bucket)
                .key("k")
                .metadata("pad", "p".repeat(PAD))
                .body(ByteStream::from(body))
                .send()
                .await
        })
    };
    let first_etag = format!("\"{}\"", hex::encode(md5_bytes(&first)));
    let committed = tokio::time::timeout(BOUND, async {
        loop {
            if let Ok(head) = via_leader.head_object().bucket(&bucket).key("k").send().await
                && head.e_tag() == Some(first_etag.as_str())
            {
                return;
            }
            tokio::time::sleep(POLL).await;
        }
    })
    .await;
    assert!(committed.is_ok(), "the first version committed on the leader\n{}", cluster.log_report());
    let (doomed, swallowed) = relays[leader].doomed();
    assert!(doomed >= 1 && swallowed > 0, "the leader's answer to the forward was swallowed: {doomed} {swallowed}");
    assert!(!put_first.is_finished(), "the follower's PUT must still wait for the lost answer");

    // The second version, acknowledged, while the first PUT still waits.
    let second_etag = put(&via_leader, &bucket, "k", &second).await;
    // The follower applied it and dropped the first version's blob, which no version refers to.
    let dropped = wait_until(BOUND, || cluster.blob_files_with(follower, &first).is_empty()).await;
    assert!(dropped, "the follower dropped the overwritten blob\n{}", cluster.log_report());

    // The answer is lost for good: the follower sees its forward end without one.
    relays[leader].cut();
    let answer = tokio::time::timeout(BOUND, put_first).await.expect("the first PUT ends").expect("the PUT task");

    // Whatever the key holds now, every node serves its bytes.
    for i in 0..3 {
        let get = cluster.node(i).client().get_object().bucket(&bucket).key("k").send();
        let Ok(got) = tokio::time::timeout(BOUND, get).await else {
            panic!("GET through node {i} within {BOUND:?}");
        };
        let out = match got {
            Ok(out) => out,
            Err(e) => panic!(
                "GET through node {i} after the lost answer (the first PUT answered {}): {}\n{}",
                if answer.is_ok() { "200" } else { "an error" },
                aws_sdk_s3::error::DisplayErrorContext(&e),
                cluster.log_report()
            ),
        };
        let etag = out.e_tag().map(str::to_owned);
        let body = out.body.collect().await.expect("read the body").into_bytes();
        assert_eq!(etag.as_deref(), Some(second_etag.as_str()), "node {i} serves the later write");
        assert_bytes_eq(&body, &second, &format!("the bytes through node {i}"));
    }
    // The first write took effect once, before the second; its caller was told the outcome is
    // unknown (503), not that it failed or succeeded.
    match answer {
        Ok(out) => {
            panic!("the first PUT was acknowledged ({:?}) although it was applied before the second", out.e_tag())
        }
        Err(e) => {
            let err = service_err(&e);
            assert_eq!((err.status, err.code.as_deref()), (503, Some("ServiceUnavailable")), "{err:?}");
        }
    }
}
