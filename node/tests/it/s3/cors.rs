//! Bucket CORS against a real node (issue #15, section 4): Put/Get/DeleteBucketCors through
//! Raft, browser preflights answered from the bucket's rules (wildcard origins, methods,
//! headers, expose headers, max age), the headers on the responses they allow, 403
//! AccessForbidden where no rule allows, and the panel's presigned-URL CORS unchanged.

use crate::harness;

use std::time::{Duration, Instant, SystemTime};

use aws_sdk_s3::types::{CorsConfiguration, CorsRule};
use harness::cluster::TestCluster;
use harness::sigv4::{HeaderSign, xml_error_code};
use harness::*;

/// The rules every test here starts from: the panel's origin may PUT and GET with a
/// Content-Type; any subdomain of example.com may GET.
fn rules() -> CorsConfiguration {
    CorsConfiguration::builder()
        .cors_rules(
            CorsRule::builder()
                .id("uploads")
                .allowed_origins("https://panel.example.org")
                .allowed_methods("PUT")
                .allowed_methods("GET")
                .allowed_headers("content-type")
                .allowed_headers("x-amz-*")
                .expose_headers("ETag")
                .max_age_seconds(600)
                .build()
                .expect("rule"),
        )
        .cors_rules(
            CorsRule::builder().allowed_origins("https://*.example.com").allowed_methods("GET").build().expect("rule"),
        )
        .build()
        .expect("configuration")
}

/// A preflight: status, the headers that matter, and the error code of a refusal.
struct Preflight {
    status: u16,
    allow_origin: Option<String>,
    allow_methods: Option<String>,
    allow_headers: Option<String>,
    max_age: Option<String>,
    expose: Option<String>,
    code: Option<String>,
}

async fn preflight(url: &str, origin: &str, method: &str, headers: Option<&str>) -> Preflight {
    let mut req = http_client()
        .request(reqwest::Method::OPTIONS, url)
        .header("origin", origin)
        .header("access-control-request-method", method);
    if let Some(headers) = headers {
        req = req.header("access-control-request-headers", headers);
    }
    let resp = req.send().await.expect("OPTIONS");
    let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (allow_origin, allow_methods, allow_headers, max_age, expose) = (
        header("access-control-allow-origin"),
        header("access-control-allow-methods"),
        header("access-control-allow-headers"),
        header("access-control-max-age"),
        header("access-control-expose-headers"),
    );
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    Preflight { status, allow_origin, allow_methods, allow_headers, max_age, expose, code: xml_error_code(&body) }
}

/// A header-signed GET of `bucket/key` sent by a page of `origin`: status and its
/// `Access-Control-Allow-Origin` / `-Expose-Headers`.
async fn signed_get_from(
    node: &TestNode,
    bucket: &str,
    key: &str,
    origin: &str,
) -> (u16, Option<String>, Option<String>) {
    let host = node.s3_addr.to_string();
    let path = format!("/{bucket}/{key}");
    let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let extra = [("origin", origin.to_owned())];
    let signer = HeaderSign {
        method: "GET",
        host: &host,
        path: &path,
        region: REGION,
        access_key: ACCESS_KEY,
        secret_key: SECRET_KEY,
        content_sha256: empty,
        headers: &extra,
        now: SystemTime::now(),
    };
    let req = signer.sign(http_client().get(format!("{}{path}", node.s3_url())));
    let resp = req.send().await.expect("GET");
    let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    (resp.status().as_u16(), header("access-control-allow-origin"), header("access-control-expose-headers"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_cors_is_stored_answered_and_removed() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    node.wait_format_raised().await;
    let client = node.client();
    let bucket = create_bucket(&client, "cors").await;
    put(&client, &bucket, "poster.jpg", b"jpeg").await;
    let url = format!("{}/{bucket}/poster.jpg", node.s3_url());

    // No configuration yet: GetBucketCors is 404, a preflight 403.
    expect_err(
        client.get_bucket_cors().bucket(&bucket).send().await,
        404,
        Some("NoSuchCORSConfiguration"),
        "GetBucketCors of a bucket without rules",
    );
    let before = preflight(&url, "https://panel.example.org", "GET", None).await;
    assert_eq!((before.status, before.code.as_deref()), (403, Some("AccessForbidden")), "no rules yet");
    assert_eq!(before.allow_origin, None);

    ok(client.put_bucket_cors().bucket(&bucket).cors_configuration(rules()).send().await, "PutBucketCors");
    let got = ok(client.get_bucket_cors().bucket(&bucket).send().await, "GetBucketCors");
    assert_eq!(got.cors_rules().len(), 2);
    let first = &got.cors_rules()[0];
    assert_eq!(first.id(), Some("uploads"));
    assert_eq!(first.allowed_methods(), ["PUT", "GET"]);
    assert_eq!(first.allowed_origins(), ["https://panel.example.org"]);
    assert_eq!(first.expose_headers(), ["ETag"]);
    assert_eq!(first.max_age_seconds(), Some(600));
    assert_eq!(got.cors_rules()[1].allowed_origins(), ["https://*.example.com"]);

    // Allowed: the first matching rule's headers, the origin echoed, the headers asked for.
    let put = preflight(&url, "https://panel.example.org", "PUT", Some("Content-Type, X-Amz-Date")).await;
    assert_eq!(put.status, 200, "an allowed preflight");
    assert_eq!(put.allow_origin.as_deref(), Some("https://panel.example.org"));
    assert_eq!(put.allow_methods.as_deref(), Some("PUT, GET"));
    assert_eq!(put.allow_headers.as_deref(), Some("Content-Type, X-Amz-Date"));
    assert_eq!(put.max_age.as_deref(), Some("600"));
    assert_eq!(put.expose.as_deref(), Some("ETag"));
    let sub = preflight(&url, "https://films.example.com", "GET", None).await;
    assert_eq!((sub.status, sub.allow_origin.as_deref()), (200, Some("https://films.example.com")), "wildcard origin");

    // Refused: another origin, a method or a header no rule allows, a look-alike origin.
    for (origin, method, headers, what) in [
        ("https://evil.example.net", "GET", None, "an origin no rule names"),
        ("https://films.example.com", "PUT", None, "a method the wildcard rule does not allow"),
        ("https://panel.example.org", "DELETE", None, "a method no rule allows"),
        ("https://panel.example.org", "PUT", Some("content-type, x-evil"), "a header no rule allows"),
        ("https://example.com", "GET", None, "the wildcard needs a subdomain"),
        ("https://films.example.com.evil.net", "GET", None, "a look-alike origin"),
        ("http://films.example.com", "GET", None, "another scheme"),
    ] {
        let p = preflight(&url, origin, method, headers).await;
        assert_eq!((p.status, p.code.as_deref()), (403, Some("AccessForbidden")), "{what}");
        assert_eq!(p.allow_origin, None, "{what}: no allow headers on a refusal");
    }

    // The request itself: the matching rule's headers on its response, none for others.
    let (status, origin, expose) = signed_get_from(node, &bucket, "poster.jpg", "https://panel.example.org").await;
    assert_eq!(status, 200);
    assert_eq!(origin.as_deref(), Some("https://panel.example.org"));
    assert_eq!(expose.as_deref(), Some("ETag"));
    let (status, origin, _) = signed_get_from(node, &bucket, "poster.jpg", "https://evil.example.net").await;
    assert_eq!((status, origin), (200, None), "the response is served; the browser hides it from the page");

    // S3's refusals of a configuration.
    let bad = CorsConfiguration::builder()
        .cors_rules(CorsRule::builder().allowed_origins("*").allowed_methods("PATCH").build().expect("rule"))
        .build()
        .expect("configuration");
    expect_err(
        client.put_bucket_cors().bucket(&bucket).cors_configuration(bad).send().await,
        400,
        Some("InvalidRequest"),
        "PutBucketCors with a method S3 does not know",
    );
    let two_wildcards = CorsConfiguration::builder()
        .cors_rules(
            CorsRule::builder().allowed_origins("https://*.*.com").allowed_methods("GET").build().expect("rule"),
        )
        .build()
        .expect("configuration");
    expect_err(
        client.put_bucket_cors().bucket(&bucket).cors_configuration(two_wildcards).send().await,
        400,
        Some("InvalidRequest"),
        "PutBucketCors with two wildcards in an origin",
    );
    assert_eq!(ok(client.get_bucket_cors().bucket(&bucket).send().await, "GetBucketCors").cors_rules().len(), 2);

    ok(client.delete_bucket_cors().bucket(&bucket).send().await, "DeleteBucketCors");
    expect_err(
        client.get_bucket_cors().bucket(&bucket).send().await,
        404,
        Some("NoSuchCORSConfiguration"),
        "after delete",
    );
    let after = preflight(&url, "https://panel.example.org", "GET", None).await;
    assert_eq!((after.status, after.code.as_deref()), (403, Some("AccessForbidden")), "rules removed");
    ok(client.delete_bucket_cors().bucket(&bucket).send().await, "DeleteBucketCors of no rules");
    expect_err(
        client.put_bucket_cors().bucket("no-such-bucket-cors").cors_configuration(rules()).send().await,
        404,
        Some("NoSuchBucket"),
        "PutBucketCors of a missing bucket",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_urls_keep_the_panels_cors_and_rules_go_with_their_bucket() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    node.wait_format_raised().await;
    let client = node.client();
    let bucket = create_bucket(&client, "cors-panel").await;
    put(&client, &bucket, "k", b"v").await;
    // A presigned URL works from any origin, rules or not (the admin panel uploads with them).
    let presigned = client
        .get_object()
        .bucket(&bucket)
        .key("k")
        .presigned(aws_sdk_s3::presigning::PresigningConfig::expires_in(Duration::from_secs(300)).expect("config"))
        .await
        .expect("presign");
    let p = preflight(presigned.uri(), "https://anywhere.example.net", "GET", Some("content-type")).await;
    assert!(p.status == 200 || p.status == 204, "presigned preflight: {}", p.status);
    assert_eq!(p.allow_origin.as_deref(), Some("*"));
    let resp = http_client().get(presigned.uri()).header("origin", "https://anywhere.example.net").send().await;
    let resp = resp.expect("GET presigned");
    assert_eq!(resp.headers().get("access-control-allow-origin").and_then(|v| v.to_str().ok()), Some("*"));

    // Rules go with their bucket: a bucket re-created under the same name starts without them.
    ok(client.put_bucket_cors().bucket(&bucket).cors_configuration(rules()).send().await, "PutBucketCors");
    ok(client.delete_object().bucket(&bucket).key("k").send().await, "DeleteObject");
    ok(client.delete_bucket().bucket(&bucket).send().await, "DeleteBucket");
    ok(client.create_bucket().bucket(&bucket).send().await, "CreateBucket again");
    expect_err(
        client.get_bucket_cors().bucket(&bucket).send().await,
        404,
        Some("NoSuchCORSConfiguration"),
        "re-created",
    );
}

/// Rules set through one region answer preflights in every region (read from each node's own
/// state once it has applied them: bounded wait).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_cors_set_in_one_region_answers_in_every_region() {
    let cluster = TestCluster::start().await;
    cluster.wait_format_raised().await;
    let client = cluster.node(0).client();
    let bucket = create_bucket(&client, "cors-geo").await;
    ok(client.put_bucket_cors().bucket(&bucket).cors_configuration(rules()).send().await, "PutBucketCors");
    for i in 0..3 {
        let url = format!("{}/{bucket}/anything", cluster.node(i).s3_url());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let p = preflight(&url, "https://panel.example.org", "PUT", None).await;
            if p.status == 200 {
                assert_eq!(p.allow_origin.as_deref(), Some("https://panel.example.org"));
                break;
            }
            assert!(Instant::now() < deadline, "node {i} did not answer the preflight within 10 s: {}", p.status);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let got = ok(cluster.node(i).client().get_bucket_cors().bucket(&bucket).send().await, "GetBucketCors");
        assert_eq!(got.cors_rules().len(), 2, "node {i}");
    }
}
