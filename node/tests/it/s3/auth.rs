//! Authentication against a real node: unsigned requests, wrong secret, unknown access key,
//! presigned URLs (working, tampered, expired, over seven days).

use crate::harness;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use harness::sigv4::{amz_dates, hmac_sha256, xml_error_code};
use harness::*;
use meridian_admin::presign::Presign;

#[test]
fn sigv4_helper_hmac_matches_rfc4231_case_2() {
    let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
    assert_eq!(hex::encode(mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

#[test]
fn sigv4_helper_dates() {
    let t = UNIX_EPOCH + Duration::from_secs(1_440_938_160);
    assert_eq!(amz_dates(t), ("20150830".to_owned(), "20150830T123600Z".to_owned()));
    let t = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29T00:00:00Z
    assert_eq!(amz_dates(t), ("20000229".to_owned(), "20000229T000000Z".to_owned()));
}

#[test]
fn helper_encodings() {
    assert_eq!(base64(b""), "");
    assert_eq!(base64(b"f"), "Zg==");
    assert_eq!(base64(b"fo"), "Zm8=");
    assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    assert_eq!(url_decode("a%2Bb+c%25%E6%97%A5"), "a+b c%日");
    assert_eq!(uri_encode("a b/c+é", true), "a%20b/c%2B%C3%A9");
    assert_eq!(
        multipart_etag(&[b"a", b"b"]),
        format!("\"{}-2\"", md5_hex(&[md5_bytes(b"a"), md5_bytes(b"b")].concat()))
    );
}

async fn status_and_code(resp: reqwest::Response) -> (u16, Option<String>, String) {
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    (status, xml_error_code(&body), body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_requests_are_refused() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "unsigned").await;
    put(&client, &bucket, "secret.txt", b"top secret").await;
    let http = http_client();
    let base = node.s3_url();

    let (status, code, body) = status_and_code(http.get(format!("{base}/")).send().await.expect("GET /")).await;
    assert_eq!(status, 403, "anonymous ListBuckets: {body}");
    assert_eq!(code.as_deref(), Some("AccessDenied"), "anonymous ListBuckets: {body}");

    let (status, code, body) =
        status_and_code(http.get(format!("{base}/{bucket}/secret.txt")).send().await.expect("GET object")).await;
    assert_eq!(status, 403, "anonymous GetObject: {body}");
    assert_eq!(code.as_deref(), Some("AccessDenied"), "anonymous GetObject: {body}");
    assert!(!body.contains("top secret"), "anonymous GET leaked the object");

    let (status, _, body) =
        status_and_code(http.get(format!("{base}/{bucket}?list-type=2")).send().await.expect("list")).await;
    assert_eq!(status, 403, "anonymous ListObjectsV2: {body}");
    assert!(!body.contains("secret.txt"), "anonymous listing leaked a key: {body}");

    let (status, _, body) = status_and_code(
        http.put(format!("{base}/{bucket}/planted.txt")).body("anonymous data").send().await.expect("PUT"),
    )
    .await;
    assert_eq!(status, 403, "anonymous PutObject: {body}");
    let (status, _, body) =
        status_and_code(http.put(format!("{base}/{}", unique_bucket("anon-bucket"))).send().await.expect("PUT bucket"))
            .await;
    assert_eq!(status, 403, "anonymous CreateBucket: {body}");
    let (status, _, body) =
        status_and_code(http.delete(format!("{base}/{bucket}/secret.txt")).send().await.expect("DELETE")).await;
    assert_eq!(status, 403, "anonymous DeleteObject: {body}");

    expect_err(
        client.head_object().bucket(&bucket).key("planted.txt").send().await,
        404,
        None,
        "object PUT anonymously",
    );
    assert_eq!(get_bytes(&client, &bucket, "secret.txt").await, b"top secret", "after anonymous DELETE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_is_signature_does_not_match() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "wrongsecret").await;
    let bad = node.client_with_keys(ACCESS_KEY, "definitely-not-the-secret-key-000000000");
    expect_err(
        bad.list_buckets().send().await,
        403,
        Some("SignatureDoesNotMatch"),
        "ListBuckets signed with a wrong secret",
    );
    expect_err(
        bad.put_object().bucket(&bucket).key("k").body(ByteStream::from_static(b"forged")).send().await,
        403,
        Some("SignatureDoesNotMatch"),
        "PutObject signed with a wrong secret",
    );
    expect_err(
        client.head_object().bucket(&bucket).key("k").send().await,
        404,
        None,
        "object PUT with a wrong signature",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_access_key_is_refused() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let bad = node.client_with_keys("AKIDUNKNOWNKEY000000", SECRET_KEY);
    // The issue asks for AccessDenied (AWS itself answers InvalidAccessKeyId).
    expect_err(bad.list_buckets().send().await, 403, Some("AccessDenied"), "ListBuckets with an unknown access key");
    expect_err(
        bad.put_object().bucket(unique_bucket("whatever")).key("k").body(ByteStream::from_static(b"x")).send().await,
        403,
        Some("AccessDenied"),
        "PutObject with an unknown access key",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_get_and_put_work() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "presign").await;
    let data = random_bytes(1, 100_000);
    put(&client, &bucket, "dir/file name+1.bin", &data).await;
    let http = http_client();

    let get = client
        .get_object()
        .bucket(&bucket)
        .key("dir/file name+1.bin")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(600)).expect("config"))
        .await
        .expect("presign GET");
    let resp = http.get(get.uri()).send().await.expect("presigned GET");
    assert_eq!(resp.status().as_u16(), 200, "presigned GET status");
    assert_eq!(
        resp.headers().get("etag").and_then(|v| v.to_str().ok()),
        Some(etag_of(&data).as_str()),
        "presigned GET ETag"
    );
    assert_bytes_eq(&resp.bytes().await.expect("body"), &data, "presigned GET body");

    // Tampering with the signed URL breaks it.
    let tampered = get.uri().replace("file%20name", "file%20nam3");
    assert_ne!(tampered, get.uri(), "the key must appear encoded in the URL");
    let (status, code, body) = status_and_code(http.get(&tampered).send().await.expect("tampered GET")).await;
    assert_eq!(status, 403, "presigned URL for another key: {body}");
    assert_eq!(code.as_deref(), Some("SignatureDoesNotMatch"), "tampered URL: {body}");

    let up = random_bytes(2, 70_000);
    let put_req = client
        .put_object()
        .bucket(&bucket)
        .key("uploaded via presign")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(600)).expect("config"))
        .await
        .expect("presign PUT");
    let mut req = http.put(put_req.uri()).body(up.clone());
    for (k, v) in put_req.headers() {
        req = req.header(k, v);
    }
    let resp = req.send().await.expect("presigned PUT");
    let status = resp.status().as_u16();
    let etag = resp.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(status, 200, "presigned PUT: {}", resp.text().await.unwrap_or_default());
    assert_eq!(etag.as_deref(), Some(etag_of(&up).as_str()), "presigned PUT ETag");
    assert_bytes_eq(
        &get_bytes(&client, &bucket, "uploaded via presign").await,
        &up,
        "object uploaded through a presigned URL",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_presign_is_access_denied() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "expired").await;
    put(&client, &bucket, "k", b"short-lived").await;
    let signed_at = SystemTime::now();
    let req = client
        .get_object()
        .bucket(&bucket)
        .key("k")
        .presigned(
            PresigningConfig::builder()
                .start_time(signed_at)
                .expires_in(Duration::from_secs(1))
                .build()
                .expect("config"),
        )
        .await
        .expect("presign");
    let http = http_client();
    // Bounded wait for the URL to expire: X-Amz-Date has one-second resolution, so it is
    // expired at most 2 s after signing; poll until the server refuses it.
    let deadline = Instant::now() + Duration::from_secs(15);
    let (status, code, body) = loop {
        let resp = http.get(req.uri()).send().await.expect("GET presigned");
        if resp.status().as_u16() != 200 {
            break status_and_code(resp).await;
        }
        assert!(Instant::now() < deadline, "a presigned URL valid for 1 s still works 15 s later");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status, 403, "expired presigned URL: {body}");
    assert_eq!(code.as_deref(), Some("AccessDenied"), "expired presigned URL: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presign_expiry_over_seven_days_is_refused() {
    // The SDK refuses to build such a URL (PresigningConfig caps at 604800 s), so it is signed
    // with the production presigner (which signs whatever it is given; the web API bounds its
    // own expiries in the config); the same signer with allowed expiries is checked first, so a
    // bug in the signer makes this test fail rather than pass.
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "week").await;
    put(&client, &bucket, "k", b"weekly").await;
    assert!(
        PresigningConfig::expires_in(Duration::from_secs(604_801)).is_err(),
        "the SDK now accepts > 7 days; this test could use it"
    );
    let endpoint = node.s3_url();
    let http = http_client();
    let url = |expires_secs: u64| {
        Presign {
            method: "GET",
            endpoint: &endpoint,
            region: REGION,
            access_key: ACCESS_KEY,
            secret_key: SECRET_KEY,
            bucket: &bucket,
            key: "k",
            query: &[],
            headers: &[],
            expires_secs,
            now: SystemTime::now(),
        }
        .url()
        .expect("presign")
    };
    for ok_expiry in [3600, 604_800] {
        let resp = http.get(url(ok_expiry)).send().await.expect("GET");
        let (status, _, body) = status_and_code(resp).await;
        assert_eq!(status, 200, "hand-presigned GET with X-Amz-Expires={ok_expiry}: {body}");
        assert_eq!(body, "weekly");
    }
    // As AWS: 400 AuthorizationQueryParametersError, before the signature is looked at.
    let valid = url(3600);
    let out_of_range = [
        url(604_801),
        url(30 * 86_400),
        url(0),
        valid.replace("X-Amz-Expires=3600", "X-Amz-Expires=-5"),
        valid.replace("X-Amz-Expires=3600", "X-Amz-Expires=soon"),
        valid.replace("X-Amz-Expires=3600", "X-Amz-Expires=99999999999999999999"),
    ];
    for bad in out_of_range {
        let resp = http.get(&bad).send().await.expect("GET");
        let (status, code, body) = status_and_code(resp).await;
        assert_eq!(status, 400, "{bad} must be refused: {body}");
        assert_eq!(code.as_deref(), Some("AuthorizationQueryParametersError"), "{bad}: {body}");
    }
}
