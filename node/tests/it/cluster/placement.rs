//! The placement API of the web listener (`GET /api/v1/objects/{bucket}/{key}/placement`) on a
//! three-node cluster: it answers right after a PUT made through another node (never a 404 for
//! an acknowledged write), takes keys with slashes and characters that need percent-encoding,
//! describes inline and multipart objects, answers 404 JSON for what does not exist, and refuses
//! callers without valid credentials with 401 before saying anything about the object.

use crate::harness;

use std::time::Duration;

use harness::cluster::{REGIONS, shared_cluster};
use harness::placement::{placement, placement_url, wait_placement};
use harness::*;

/// How long replication of a few MiB may take on loopback.
const CONVERGE_BOUND: Duration = Duration::from_secs(30);

/// Milliseconds since the epoch, now.
fn now_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock after 1970");
    i64::try_from(since.as_millis()).expect("fits i64")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_right_after_a_put_elsewhere_with_awkward_keys() {
    let cluster = shared_cluster().await;
    let http = http_client();
    let (writer, reader) = (cluster.node(0), cluster.node(2));
    let bucket = create_bucket(&writer.client(), "placement").await;
    let data = random_bytes(77, 300 * 1024);
    // Slashes (also doubled), a space, non-ASCII, '+', '%', '&', '?', '#', and a key whose last
    // segment is itself "placement".
    let keys = ["plain", "dir/sub dir/ü+%&?#=;.bin", "a//b/", "x/placement"];
    for key in keys {
        let before = now_ms();
        put(&writer.client(), &bucket, key, &data).await;
        // Asked at once at another node: known there, or confirmed with the leader; never 404.
        let p = placement(&http, reader, &bucket, key)
            .await
            .unwrap_or_else(|e| panic!("placement of {key:?} at node 2 right after the PUT at node 0: {e:?}"));
        assert_eq!((p.bucket.as_str(), p.key.as_str()), (bucket.as_str(), key));
        assert_eq!((p.size, p.etag.as_str(), p.inline), (data.len() as u64, md5_hex(&data).as_str(), false));
        assert!(p.blob.is_some(), "a blob object names its blob: {p:#?}");
        assert!((before - 1000..=now_ms() + 1000).contains(&p.last_modified_ms), "last modified now: {p:#?}");
        assert!(p.last_modified.ends_with('Z') && p.last_modified.contains('T'), "RFC 3339: {}", p.last_modified);
        assert!(p.since(1).is_some(), "the writer holds the blob from the start: {p:#?}");
        let listed: Vec<u64> = p.holder_ids().into_iter().chain(p.pending.iter().map(|m| m.node_id)).collect();
        let mut listed_sorted = listed.clone();
        listed_sorted.sort_unstable();
        assert_eq!(listed_sorted, [1, 2, 3], "every member is a holder or pending, once: {p:#?}");
        for member in &p.pending {
            assert_eq!(member.region, REGIONS[usize::try_from(member.node_id).expect("id") - 1].0);
        }
    }
    // And every one of them ends up everywhere.
    for key in keys {
        let p = wait_placement(&http, reader, &bucket, key, CONVERGE_BOUND, "replication", |p| p.replicated).await;
        assert_eq!(p.holder_ids(), [1, 2, 3]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_and_multipart_objects_are_described() {
    let cluster = shared_cluster().await;
    let http = http_client();
    let client = cluster.node(1).client();
    let bucket = create_bucket(&client, "placement-kinds").await;

    // Small objects travel in the log: every member holds them once it applied the write.
    let small = b"a few bytes".to_vec();
    put(&client, &bucket, "small", &small).await;
    let p = placement(&http, cluster.node(0), &bucket, "small").await.expect("placement of an inline object");
    assert!(p.inline && p.blob.is_none() && p.replicated && p.pending.is_empty(), "{p:#?}");
    assert_eq!(p.holder_ids(), [1, 2, 3]);
    assert_eq!(p.etag, md5_hex(&small));

    // Multipart: the ETag of the parts, the whole size.
    let (part1, part2) = (random_bytes(5, 5 * MIB), random_bytes(6, 1024));
    put_multipart(&client, &bucket, "multi", &[&part1, &part2]).await;
    let p = placement(&http, cluster.node(2), &bucket, "multi").await.expect("placement of a multipart object");
    assert_eq!(p.size, (part1.len() + part2.len()) as u64);
    assert_eq!(format!("\"{}\"", p.etag), multipart_etag(&[&part1, &part2]));
    assert!(!p.inline && p.since(2).is_some(), "{p:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_buckets_keys_and_routes_get_404_json() {
    let cluster = shared_cluster().await;
    let http = http_client();
    let node = cluster.node(1);
    let bucket = create_bucket(&node.client(), "placement-404").await;
    let cases = [
        (placement(&http, node, "no-such-bucket-placement", "k").await, "no bucket"),
        (placement(&http, node, &bucket, "no/such/key").await, "no object"),
    ];
    for (answer, message) in cases {
        let (status, body) = answer.expect_err("unknown things must not have a placement");
        assert_eq!(status, 404, "{body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("404 body {body:?}: {e}"));
        assert_eq!(json["error"], "not_found", "{body}");
        assert!(json["message"].as_str().unwrap_or_default().contains(message), "{body}");
    }
    // Another view than "placement" under the same prefix is not a route.
    let url = format!("{}/api/v1/objects/{bucket}/k/elsewhere", node.web_url());
    let resp = http.get(&url).basic_auth(ACCESS_KEY, Some(SECRET_KEY)).send().await.expect("GET");
    assert_eq!(resp.status().as_u16(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_without_valid_credentials_get_401() {
    let cluster = shared_cluster().await;
    let http = http_client();
    let node = cluster.node(0);
    let bucket = create_bucket(&node.client(), "placement-auth").await;
    put(&node.client(), &bucket, "secret-file", &random_bytes(3, 20_000)).await;
    let url = placement_url(node, &bucket, "secret-file");
    let basic = |id: &str, secret: &str| format!("Basic {}", base64(format!("{id}:{secret}").as_bytes()));
    let refused = [
        ("no Authorization header", None),
        ("wrong secret", Some(basic(ACCESS_KEY, "not-the-secret-not-the-secret-000000000"))),
        ("unknown access key", Some(basic("NOSUCHKEY0000000000", SECRET_KEY))),
        ("Basic without a colon", Some(format!("Basic {}", base64(ACCESS_KEY.as_bytes())))),
        ("Basic that is not base64", Some("Basic !!!".to_owned())),
        ("unknown bearer token", Some("Bearer not-a-configured-service-token".to_owned())),
        ("unsupported scheme", Some(format!("Digest {ACCESS_KEY}"))),
    ];
    for (what, header) in refused {
        let mut request = http.get(&url);
        if let Some(header) = header {
            request = request.header("authorization", header);
        }
        let resp = request.send().await.expect("GET placement");
        let status = resp.status().as_u16();
        let challenge = resp.headers().get("www-authenticate").map(|v| v.to_str().unwrap_or_default().to_owned());
        let body = resp.text().await.expect("body");
        assert_eq!(status, 401, "{what}: {body}");
        assert!(challenge.is_some_and(|c| c.contains("Basic")), "{what}: 401 without a Basic challenge");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{what}: {body:?}: {e}"));
        assert_eq!(json["error"], "unauthorized", "{what}: {body}");
    }
    // Credentials are checked before existence: an anonymous caller learns nothing of a key.
    let unknown = placement_url(node, &bucket, "no-such-key");
    assert_eq!(http.get(&unknown).send().await.expect("GET").status().as_u16(), 401);
    // The same request with the real key works.
    let resp = http.get(&url).header("authorization", basic(ACCESS_KEY, SECRET_KEY)).send().await.expect("GET");
    assert_eq!(resp.status().as_u16(), 200);
}
