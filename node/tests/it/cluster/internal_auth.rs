//! The internal listener of every node refuses requests that are unsigned, signed wrongly, or
//! signed correctly but outside the 30 s replay window, before any handler runs: a forged
//! proposal creates no bucket, a forged vote with a huge term moves no node's term. The test's
//! own signer (HMAC-SHA256 over "METHOD\nPATH\nTIMESTAMP\nhex(sha256(body))", written from the
//! protocol description, not taken from the server) is shown to be right by requests the nodes
//! accept: a blob fetch answered 404, and the very proposal body, signed, creating its bucket.
//!
//! That is the previous release's signature (v1), accepted only during a rolling upgrade, so
//! this cluster runs with `[internal_rpc] legacy_signatures = true`: the bad signatures are
//! refused all the same. Scheme v2 and its refusals are in `security/listeners.rs`.

use crate::harness;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use harness::cluster::{CLUSTER_SECRET, TestCluster, id_of};
use harness::sigv4::hmac_sha256;
use harness::*;
use meridian_raft::Command;
use meridian_raft::model::Bucket;
use meridian_raft::network::{PROPOSE_PATH, VOTE_PATH, encode};
use openraft::raft::VoteRequest;
use openraft::{CommittedLeaderId, LogId, Vote};

/// A term no real election of this test reaches.
const FORGED_TERM: u64 = 1_000_000;

fn unix_now() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs()).expect("i64")
}

/// The two signature headers for a request made at `timestamp`, signed with `secret`.
fn sign(secret: &str, method: &str, path: &str, timestamp: i64, body: &[u8]) -> [(&'static str, String); 2] {
    let canonical = format!("{method}\n{path}\n{timestamp}\n{}", sha256_hex(body));
    let signature = hex::encode(hmac_sha256(secret.as_bytes(), canonical.as_bytes()));
    [("x-meridian-timestamp", timestamp.to_string()), ("x-meridian-signature", signature)]
}

/// How a request is (mis)signed.
#[derive(Debug, Clone, Copy)]
enum Signing {
    Unsigned,
    /// Only the timestamp header.
    TimestampOnly,
    /// A fresh timestamp and 64 hex digits that are not the HMAC.
    GarbageSignature,
    /// A signature that is not hex at all.
    NonHexSignature,
    /// Correct HMAC construction with another secret.
    WrongSecret,
    /// Correct signature of another body.
    OtherBody,
    /// Correct signature of another path.
    OtherPath,
    /// Correctly signed with the cluster secret, 60 s in the past.
    Stale,
    /// Correctly signed with the cluster secret, 60 s in the future.
    Future,
    /// Correctly signed, a non-numeric timestamp.
    BadTimestamp,
    /// Correct: must be accepted.
    Valid,
}

const BAD: [Signing; 10] = [
    Signing::Unsigned,
    Signing::TimestampOnly,
    Signing::GarbageSignature,
    Signing::NonHexSignature,
    Signing::WrongSecret,
    Signing::OtherBody,
    Signing::OtherPath,
    Signing::Stale,
    Signing::Future,
    Signing::BadTimestamp,
];

fn headers(signing: Signing, method: &str, path: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    let now = unix_now();
    match signing {
        Signing::Unsigned => Vec::new(),
        Signing::TimestampOnly => vec![("x-meridian-timestamp", now.to_string())],
        Signing::GarbageSignature => {
            vec![("x-meridian-timestamp", now.to_string()), ("x-meridian-signature", "ab".repeat(32))]
        }
        Signing::NonHexSignature => {
            vec![("x-meridian-timestamp", now.to_string()), ("x-meridian-signature", "not-a-signature".into())]
        }
        Signing::WrongSecret => sign("not-the-cluster-secret-0123456789", method, path, now, body).to_vec(),
        Signing::OtherBody => sign(CLUSTER_SECRET, method, path, now, b"some other body").to_vec(),
        Signing::OtherPath => sign(CLUSTER_SECRET, method, "/internal/v1/read-index", now, body).to_vec(),
        Signing::Stale => sign(CLUSTER_SECRET, method, path, now - 60, body).to_vec(),
        Signing::Future => sign(CLUSTER_SECRET, method, path, now + 60, body).to_vec(),
        Signing::BadTimestamp => {
            let mut h = sign(CLUSTER_SECRET, method, path, now, body).to_vec();
            h[0].1 = "yesterday".into();
            h
        }
        Signing::Valid => sign(CLUSTER_SECRET, method, path, now, body).to_vec(),
    }
}

async fn post(http: &reqwest::Client, node: &TestNode, path: &str, body: &[u8], signing: Signing) -> (u16, Vec<u8>) {
    let mut req = http.post(format!("https://{}{path}", node.internal_addr)).body(body.to_vec());
    for (name, value) in headers(signing, "POST", path, body) {
        req = req.header(name, value);
    }
    let resp = req.send().await.unwrap_or_else(|e| panic!("POST {path}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.bytes().await.expect("response body").to_vec())
}

async fn bucket_names(node: &TestNode) -> Vec<String> {
    let out = ok(node.client().list_buckets().send().await, "ListBuckets");
    out.buckets().iter().filter_map(|b| b.name().map(str::to_owned)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_unsigned_and_stale_internal_requests_are_refused_and_change_nothing() {
    let cluster = TestCluster::start_with_extra(
        harness::cluster::ClusterOptions::default(),
        "[internal_rpc]\nlegacy_signatures = true\n",
    )
    .await;
    // A client of the cluster's CA (as a node): TLS lets it in, the signature decides.
    let http = harness::internal_tls::internal_http(harness::cluster::CLUSTER_NAME, "virginia");
    let leader = cluster.leader().await;
    let existing = create_bucket(&cluster.node(0).client(), "before").await;
    let buckets_before: Vec<Vec<String>> = {
        let mut v = Vec::new();
        for node in &cluster.nodes {
            v.push(bucket_names(node).await);
        }
        v
    };
    assert!(buckets_before.iter().all(|b| *b == vec![existing.clone()]), "buckets before: {buckets_before:?}");

    // A well-formed proposal (it would create a bucket) and a well-formed vote request (a term
    // far above any real one: granting or even reading it would move the node's term).
    let forged_bucket = unique_bucket("forged");
    let command = Command::CreateBucket(Bucket { name: forged_bucket.clone(), created: 0, region: "frankfurt".into() });
    let propose_body = encode(&command).expect("encode command");
    let vote = VoteRequest::new(
        Vote::new(FORGED_TERM, id_of(2)),
        Some(LogId::new(CommittedLeaderId::new(FORGED_TERM, id_of(2)), 1_000_000_000)),
    );
    let vote_body = encode(&vote).expect("encode vote");

    let mut refused = 0;
    for (n, node) in cluster.nodes.iter().enumerate() {
        for (path, body) in [(PROPOSE_PATH, &propose_body), (VOTE_PATH, &vote_body)] {
            for signing in BAD {
                let (status, reply) = post(&http, node, path, body, signing).await;
                assert_eq!(
                    status,
                    401,
                    "POST {path} to node {n} ({signing:?}) must be refused; got {status}: {}",
                    String::from_utf8_lossy(&reply)
                );
                refused += 1;
            }
        }
    }
    eprintln!("{refused} forged/unsigned/stale internal requests refused with 401");

    // Nothing changed: the same buckets everywhere, no term anywhere near the forged one, and
    // the cluster still has its leader.
    for (n, node) in cluster.nodes.iter().enumerate() {
        assert_eq!(bucket_names(node).await, buckets_before[n], "buckets on node {n} after the forged requests");
        expect_err(
            node.client().head_bucket().bucket(&forged_bucket).send().await,
            404,
            None,
            &format!("HeadBucket of the forged bucket on node {n}"),
        );
        let h = cluster.health(n).await.expect("health");
        assert!(h.term < FORGED_TERM, "node {n} took the forged term: {h:?}");
    }
    assert_eq!(cluster.leader().await, leader, "the forged votes moved the leadership");

    // The signer is right: a signed blob fetch of an id nobody holds is a 404 (not 401)...
    let blob_path = format!("/internal/v1/blobs/{}", "0".repeat(32));
    for (n, node) in cluster.nodes.iter().enumerate() {
        let mut req = http.get(format!("https://{}{blob_path}", node.internal_addr));
        for (name, value) in headers(Signing::Valid, "GET", &blob_path, b"") {
            req = req.header(name, value);
        }
        let status = req.send().await.expect("GET blob").status().as_u16();
        assert_eq!(status, 404, "correctly signed GET {blob_path} on node {n}");
        // ...and the same fetch unsigned or stale is a 401.
        for signing in [Signing::Unsigned, Signing::Stale, Signing::WrongSecret] {
            let mut req = http.get(format!("https://{}{blob_path}", node.internal_addr));
            for (name, value) in headers(signing, "GET", &blob_path, b"") {
                req = req.header(name, value);
            }
            let status = req.send().await.expect("GET blob").status().as_u16();
            assert_eq!(status, 401, "GET {blob_path} on node {n} ({signing:?})");
        }
    }

    // ...and the very proposal that was refused above, correctly signed and sent to the leader,
    // does create the bucket: the 401s were the signature check, not a bad body.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let leader = cluster.leader().await;
        let (status, _) = post(&http, cluster.node(leader), PROPOSE_PATH, &propose_body, Signing::Valid).await;
        assert_eq!(status, 200, "correctly signed proposal to the leader");
        if bucket_names(cluster.node(leader)).await.contains(&forged_bucket) {
            break;
        }
        assert!(Instant::now() < deadline, "the signed proposal did not create {forged_bucket}");
        tokio::time::sleep(POLL).await;
    }
    for (n, node) in cluster.nodes.iter().enumerate() {
        ok(node.client().head_bucket().bucket(&forged_bucket).send().await, &format!("HeadBucket on node {n}"));
    }
}
