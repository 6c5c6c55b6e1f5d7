//! Attacks on the S3 listener through the URLs the web API hands out, and on what the S3 API
//! accepts (issue #13, items 1, 10, 12, 13 and 14): each test replays one against a real node
//! with the stand-in Auth service, and checks that it is refused and changes nothing.

use crate::harness;

use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_s3::primitives::ByteStream;
use base64::Engine as _;
use harness::devauth::{SeededTokens, auth_section, node_with_seeded_users};
use harness::{ACCESS_KEY, REGION, SECRET_KEY, TestNode, expect_err, http_client, ok, put, unique_bucket, web_api};
use hmac::{KeyInit as _, Mac as _};
use meridian_admin::presign::{Presign, system_key};
use serde_json::{Value, json};

/// The cluster secret of the harness's config (`harness/node.rs`): the test derives the system key
/// from it as the node does.
const CLUSTER_SECRET: &str = "test-cluster-secret-0123456789abcdef0123456789";
/// A web API service token of these tests, and its name.
const SERVICE_TOKEN: &str = "security-presign-service-token-0123456789";

/// `[auth]`, a service token, and multipart plans from 1 MiB (parts of 5 MiB).
fn config(addr: std::net::SocketAddr) -> String {
    let sha = harness::sha256_hex(SERVICE_TOKEN.as_bytes());
    format!(
        "{}\n[geo]\nmultipart_threshold_mib = 1\nmultipart_part_mib = 5\n\n\
         [[api.service_token]]\nname = \"ticketing\"\nsha256 = \"{sha}\"\n",
        auth_section(addr, harness::devauth::AuthMode::Hs256, 1)
    )
}

/// A bucket created through the web API, owned by the holder of `token`.
async fn bucket_of(node: &TestNode, token: &str, prefix: &str) -> String {
    let bucket = unique_bucket(prefix);
    let (status, body) =
        web_api(node, reqwest::Method::POST, "/api/v1/buckets", token, Some(json!({ "name": bucket }))).await;
    assert_eq!(status, 201, "create bucket: {body}");
    bucket
}

/// `POST /api/v1/uploads` as the holder of `token`.
async fn plan(node: &TestNode, token: &str, body: Value) -> Value {
    let (status, plan) = web_api(node, reqwest::Method::POST, "/api/v1/uploads", token, Some(body)).await;
    assert_eq!(status, 200, "upload plan: {plan}");
    plan
}

/// Status, S3 error code and body of a response.
async fn outcome(resp: reqwest::Response) -> (u16, Option<String>, String) {
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    let code = body.split_once("<Code>").and_then(|(_, rest)| rest.split_once("</Code>")).map(|(c, _)| c.to_owned());
    (status, code, body)
}

/// Sends a PUT's request line and headers (declaring `content_length` bytes) but no body, and
/// reads the answer the node gives before the body: (status, body).
fn headers_only_put(url: &str, content_length: usize, headers: &[(&str, &str)]) -> (u16, String) {
    use std::io::{Read as _, Write as _};
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_at(rest.find('/').expect("path"));
    let mut socket = std::net::TcpStream::connect(host).expect("connect");
    socket.set_read_timeout(Some(std::time::Duration::from_secs(10))).expect("timeout");
    let mut request = format!("PUT {path} HTTP/1.1\r\nhost: {host}\r\ncontent-length: {content_length}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    socket.write_all(request.as_bytes()).expect("send headers");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // Until the end of the XML error body (the node closes or keeps the socket; both are fine).
    while !String::from_utf8_lossy(&answer).contains("</Error>") {
        match socket.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, answer)
}

/// Uploads `data` to `bucket/key` as the holder of `token`, the way the panel does.
async fn upload(node: &TestNode, token: &str, bucket: &str, key: &str, data: &[u8]) {
    let plan = plan(node, token, json!({ "bucket": bucket, "key": key, "size": data.len() })).await;
    let url = plan["put"]["url"].as_str().expect("a presigned PUT");
    let resp = http_client().put(url).body(data.to_vec()).send().await.expect("PUT");
    assert_eq!(resp.status().as_u16(), 200, "upload of {key}: {}", resp.text().await.unwrap_or_default());
}

/// Whether `bucket/key` exists, asked as the service (which sees every file).
async fn exists(node: &TestNode, bucket: &str, key: &str) -> bool {
    let path = format!("/api/v1/objects/{bucket}/{key}/placement");
    let (status, body) = web_api(node, reqwest::Method::GET, &path, SERVICE_TOKEN, None).await;
    assert!(status == 200 || status == 404, "placement of {bucket}/{key}: {status} {body}");
    status == 200
}

async fn start() -> (TestNode, harness::devauth::DevAuth, SeededTokens) {
    node_with_seeded_users(config).await
}

/// The confirmed attack: a user's own presigned PUT (or part) URL, sent with
/// `x-amz-copy-source` naming another user's file, must not copy it.
#[tokio::test(flavor = "multi_thread")]
async fn a_presigned_put_cannot_copy_another_users_file() {
    let (node, _auth, users) = start().await;
    let _log = node.log_on_panic();
    let bobs = bucket_of(&node, &users.bob, "bob").await;
    upload(&node, &users.bob, &bobs, "secret.txt", b"bob's secret").await;
    let alices = bucket_of(&node, &users.alice, "alice").await;

    // A single PUT URL for alice's own bucket, used as CopyObject.
    let single = plan(&node, &users.alice, json!({ "bucket": alices, "key": "stolen.txt", "size": 3 })).await;
    let url = single["put"]["url"].as_str().expect("a presigned PUT");
    for source in [format!("{bobs}/secret.txt"), format!("/{bobs}/secret.txt")] {
        let resp = http_client().put(url).header("x-amz-copy-source", &source).body("abc").send().await;
        let resp = resp.expect("PUT");
        let (status, code, body) = outcome(resp).await;
        assert_eq!((status, code.as_deref()), (403, Some("AccessDenied")), "copy through a PUT URL: {body}");
    }
    assert!(!exists(&node, &alices, "stolen.txt").await, "nothing was copied");

    // A part URL of a multipart plan, used as UploadPartCopy.
    let multi = plan(&node, &users.alice, json!({ "bucket": alices, "key": "stolen.bin", "size": 6 << 20 })).await;
    let part = &multi["multipart"]["parts"][0];
    let size = usize::try_from(part["size"].as_u64().expect("part size")).expect("fits");
    let url = part["url"].as_str().expect("a part URL");
    // The node answers from the headers alone, before the body (the socket shows it: the 403
    // arrives while the declared 5 MiB were never sent).
    let source = format!("{bobs}/secret.txt");
    let (status, body) = headers_only_put(url, size, &[("x-amz-copy-source", &source)]);
    assert_eq!(status, 403, "copy through a part URL: {body}");
    assert!(body.contains("<Code>AccessDenied</Code>"), "copy through a part URL: {body}");

    // The plan still works for what it was made for.
    let url = single["put"]["url"].as_str().expect("a presigned PUT");
    let resp = http_client().put(url).body("abc").send().await.expect("PUT");
    assert_eq!(resp.status().as_u16(), 200, "the URL's own upload");
    assert!(exists(&node, &alices, "stolen.txt").await);
}

/// One tampered use of a URL: what it tries, the headers it adds, the body it sends.
type Attempt = (&'static str, &'static [(&'static str, &'static str)], &'static [u8]);

/// The tightened URLs still carry the panel's own multipart upload, sent exactly as the panel's
/// script sends it (parts without headers, the completion as `application/xml`).
#[tokio::test(flavor = "multi_thread")]
async fn the_panels_multipart_upload_goes_through_its_plan() {
    let (node, _auth, users) = start().await;
    let _log = node.log_on_panic();
    let bucket = bucket_of(&node, &users.alice, "panel").await;
    let data = harness::random_bytes(7, 6 << 20);
    let body = json!({ "bucket": bucket, "key": "film.mp4", "size": data.len(), "content_type": "video/mp4" });
    let plan = plan(&node, &users.alice, body).await;
    let multipart = &plan["multipart"];
    let mut completion = String::from("<CompleteMultipartUpload>");
    let mut offset = 0;
    for part in multipart["parts"].as_array().expect("parts") {
        let size = usize::try_from(part["size"].as_u64().expect("size")).expect("fits");
        let url = part["url"].as_str().expect("part url");
        let resp = http_client().put(url).body(data[offset..offset + size].to_vec()).send().await.expect("PUT part");
        assert_eq!(resp.status().as_u16(), 200, "part {}", part["part_number"]);
        let etag = resp.headers().get("etag").and_then(|v| v.to_str().ok()).expect("ETag").to_owned();
        completion
            .push_str(&format!("<Part><PartNumber>{}</PartNumber><ETag>{etag}</ETag></Part>", part["part_number"]));
        offset += size;
    }
    completion.push_str("</CompleteMultipartUpload>");
    let url = multipart["complete"]["url"].as_str().expect("complete url");
    let resp = http_client().post(url).header("content-type", "application/xml").body(completion).send().await;
    let (status, _, text) = outcome(resp.expect("POST complete")).await;
    assert_eq!(status, 200, "completion as the panel sends it: {text}");
    let head = node.client().head_object().bucket(&bucket).key("film.mp4").send().await;
    let head = ok(head, "HEAD");
    assert_eq!(head.content_length(), Some(6 << 20));
    assert_eq!(head.content_type(), Some("video/mp4"), "the type signed at the start");
}

/// A presigned PUT signs the size and type the API promised; headers that would be stored with
/// the object are refused unless signed.
#[tokio::test(flavor = "multi_thread")]
async fn a_presigned_put_holds_to_the_promised_size_type_and_metadata() {
    let (node, _auth, users) = start().await;
    let _log = node.log_on_panic();
    let bucket = bucket_of(&node, &users.alice, "promise").await;
    let typed =
        plan(&node, &users.alice, json!({ "bucket": bucket, "key": "f.txt", "size": 5, "content_type": "text/plain" }))
            .await;
    assert_eq!(typed["headers"]["content-type"], "text/plain", "{typed}");
    let url = typed["put"]["url"].as_str().expect("a presigned PUT");
    let attempts: [Attempt; 7] = [
        ("a larger body", &[("content-type", "text/plain")], b"123456"),
        ("a smaller body", &[("content-type", "text/plain")], b"1234"),
        ("another type", &[("content-type", "text/html")], b"12345"),
        ("user metadata", &[("content-type", "text/plain"), ("x-amz-meta-owner", "mallory")], b"12345"),
        ("a disposition", &[("content-type", "text/plain"), ("content-disposition", "inline")], b"12345"),
        ("tags", &[("content-type", "text/plain"), ("x-amz-tagging", "a=b")], b"12345"),
        ("a storage class", &[("content-type", "text/plain"), ("x-amz-storage-class", "GLACIER")], b"12345"),
    ];
    for (what, headers, body) in attempts {
        let mut request = http_client().put(url).body(body.to_vec());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let (status, code, text) = outcome(request.send().await.expect("PUT")).await;
        assert_eq!(status, 403, "{what}: {text}");
        assert!(matches!(code.as_deref(), Some("AccessDenied" | "SignatureDoesNotMatch")), "{what}: {text}");
        assert!(!exists(&node, &bucket, "f.txt").await, "{what} stored nothing");
    }
    let resp = http_client().put(url).header("content-type", "text/plain").body(b"12345".to_vec()).send().await;
    assert_eq!(resp.expect("PUT").status().as_u16(), 200, "the promised upload");
    let head = node.client().head_object().bucket(&bucket).key("f.txt").send().await;
    assert_eq!(ok(head, "HEAD").content_type(), Some("text/plain"));

    // Without a promised type, a type sent anyway is refused.
    let untyped = plan(&node, &users.alice, json!({ "bucket": bucket, "key": "g.html", "size": 2 })).await;
    let url = untyped["put"]["url"].as_str().expect("a presigned PUT");
    let resp = http_client().put(url).header("content-type", "text/html").body(b"<p".to_vec()).send().await;
    let (status, _, text) = outcome(resp.expect("PUT")).await;
    assert_eq!(status, 403, "an unsigned content type: {text}");
}

/// The system key (held only by the nodes) signs uploads and downloads, nothing else: not even a
/// correctly signed URL for another operation, nor a header-signed request, is allowed.
#[tokio::test(flavor = "multi_thread")]
async fn the_system_key_signs_only_what_the_web_api_hands_out() {
    let (node, _auth, users) = start().await;
    let _log = node.log_on_panic();
    let bucket = bucket_of(&node, &users.alice, "system").await;
    upload(&node, &users.alice, &bucket, "kept.txt", b"kept").await;
    let endpoint = node.s3_url();
    let sign =
        |method: &'static str, key: &str, query: &[(&str, String)]| system_url(&endpoint, &bucket, method, key, query);
    let http = http_client();
    let refused = [
        ("DeleteObject", http.delete(sign("DELETE", "kept.txt", &[]))),
        ("ListObjects", http.get(sign("GET", "", &[]))),
        ("DeleteBucket", http.delete(sign("DELETE", "", &[]))),
        ("PutObjectTagging", http.put(sign("PUT", "kept.txt", &[("tagging", String::new())])).body("<Tagging/>")),
    ];
    for (what, request) in refused {
        let (status, code, body) = outcome(request.send().await.expect("request")).await;
        assert!(status == 403, "{what} with the system key: {status} {body}");
        assert!(matches!(code.as_deref(), Some("AccessDenied" | "SignatureDoesNotMatch")), "{what}: {body}");
    }
    // A PUT URL that does not sign the size (not one the web API makes) is refused too.
    let (status, _, body) = outcome(http.put(sign("PUT", "new.txt", &[])).body("x").send().await.expect("PUT")).await;
    assert_eq!(status, 403, "unsized system-key PUT: {body}");
    // Header-signed requests with the system key (an SDK holding it) are refused.
    let system = system_key(CLUSTER_SECRET);
    let sdk = node.client_with_keys(&system.id, &system.secret);
    expect_err(sdk.list_buckets().send().await, 403, Some("AccessDenied"), "ListBuckets with the system key");
    expect_err(sdk.get_object().bucket(&bucket).key("kept.txt").send().await, 403, Some("AccessDenied"), "SDK GET");
    assert!(exists(&node, &bucket, "kept.txt").await, "nothing was deleted");
    // A download URL of the system key still works.
    let resp = http.get(sign("GET", "kept.txt", &[])).send().await.expect("GET");
    assert_eq!(resp.status().as_u16(), 200);
}

/// A URL signed with the system key, as only the nodes can make it.
fn system_url(endpoint: &str, bucket: &str, method: &'static str, key: &str, query: &[(&str, String)]) -> String {
    let system = system_key(CLUSTER_SECRET);
    Presign {
        method,
        endpoint,
        region: REGION,
        access_key: &system.id,
        secret_key: &system.secret,
        bucket,
        key,
        query,
        headers: &[],
        expires_secs: 60,
        now: SystemTime::now(),
    }
    .url()
    .expect("presign")
}

/// An upload URL handed to a user through a write share stops working once the share is revoked.
#[tokio::test(flavor = "multi_thread")]
async fn an_upload_url_dies_with_the_share_that_granted_it() {
    let (node, _auth, users) = start().await;
    let _log = node.log_on_panic();
    let bucket = bucket_of(&node, &users.alice, "revoke").await;
    upload(&node, &users.alice, &bucket, "cut.mp4", b"first cut").await;
    let share = json!({ "bucket": bucket, "key": "cut.mp4", "user": "u-bob", "permission": "write" });
    let (status, created) = web_api(&node, reqwest::Method::POST, "/api/v1/shares", &users.alice, Some(share)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["share"]["id"].as_str().expect("share id").to_owned();
    let plan = plan(&node, &users.bob, json!({ "bucket": bucket, "key": "cut.mp4", "size": 9 })).await;
    let (status, _) =
        web_api(&node, reqwest::Method::DELETE, &format!("/api/v1/shares/{id}"), &users.alice, None).await;
    assert_eq!(status, 204);
    let url = plan["put"]["url"].as_str().expect("a presigned PUT");
    let (status, code, body) =
        outcome(http_client().put(url).body(b"bob's cut".to_vec()).send().await.expect("PUT")).await;
    assert_eq!((status, code.as_deref()), (403, Some("AccessDenied")), "after revocation: {body}");
    let got = node.client().get_object().bucket(&bucket).key("cut.mp4").send().await;
    let data = ok(got, "GET").body.collect().await.expect("body").into_bytes();
    assert_eq!(&data[..], b"first cut", "the file is unchanged");
}

/// HMAC-SHA1, base64: the SigV2 signature.
fn sigv2(secret: &str, string_to_sign: &str) -> String {
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// SigV2 (header or presigned, here a 30-day URL) is refused, with the reason.
#[tokio::test(flavor = "multi_thread")]
async fn signature_version_2_is_refused() {
    let node = TestNode::start().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = harness::create_bucket(&client, "sigv2").await;
    put(&client, &bucket, "k", b"v2").await;
    let expires = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() + 30 * 86_400;
    let signature = sigv2(SECRET_KEY, &format!("GET\n\n\n{expires}\n/{bucket}/k"));
    let query = [("AWSAccessKeyId", ACCESS_KEY.to_owned()), ("Expires", expires.to_string()), ("Signature", signature)];
    let resp = http_client().get(format!("{}/{bucket}/k", node.s3_url())).query(&query).send().await.expect("GET");
    let (status, code, body) = outcome(resp).await;
    assert_eq!((status, code.as_deref()), (403, Some("AccessDenied")), "SigV2 presigned: {body}");
    assert!(body.contains("Signature Version 2"), "{body}");

    let date = httpdate(SystemTime::now());
    let signature = sigv2(SECRET_KEY, &format!("GET\n\n\n{date}\n/{bucket}/k"));
    let resp = http_client()
        .get(format!("{}/{bucket}/k", node.s3_url()))
        .header("date", &date)
        .header("authorization", format!("AWS {ACCESS_KEY}:{signature}"))
        .send()
        .await
        .expect("GET");
    let (status, code, body) = outcome(resp).await;
    assert_eq!((status, code.as_deref()), (403, Some("AccessDenied")), "SigV2 header: {body}");
}

/// An HTTP date (RFC 7231 IMF-fixdate), as SigV2 signs it.
fn httpdate(t: SystemTime) -> String {
    aws_sdk_s3::primitives::DateTime::from(t).fmt(aws_sdk_s3::primitives::DateTimeFormat::HttpDate).expect("format")
}

/// Download links make the browser save the file, and no S3 answer lets it sniff a type.
#[tokio::test(flavor = "multi_thread")]
async fn downloads_are_attachments_and_never_sniffed() {
    let (node, _auth, users) = start().await;
    let _log = node.log_on_panic();
    let bucket = bucket_of(&node, &users.alice, "html").await;
    let page = b"<script>alert(document.cookie)</script>";
    let body = json!({ "bucket": bucket, "key": "dir/page.html", "size": page.len(), "content_type": "text/html" });
    let upload_plan = plan(&node, &users.alice, body).await;
    let url = upload_plan["put"]["url"].as_str().expect("a presigned PUT");
    let resp = http_client().put(url).header("content-type", "text/html").body(page.to_vec()).send().await;
    assert_eq!(resp.expect("PUT").status().as_u16(), 200);

    let link = http_client()
        .get(format!("{}/api/v1/files/{bucket}/dir/page.html", node.web_url()))
        .bearer_auth(&users.alice)
        .header("accept", "application/json")
        .send()
        .await
        .expect("link");
    let link: Value = link.json().await.expect("link JSON");
    let url = link["url"].as_str().expect("url");
    let resp = http_client().get(url).send().await.expect("GET");
    assert_eq!(resp.status().as_u16(), 200);
    let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(header("content-disposition").as_deref(), Some("attachment; filename*=UTF-8''page.html"));
    assert_eq!(header("x-content-type-options").as_deref(), Some("nosniff"));

    let head = node.client().head_object().bucket(&bucket).key("dir/page.html").send().await;
    ok(head, "HEAD");
    let raw = node.client().get_object().bucket(&bucket).key("dir/page.html").send().await;
    let raw = ok(raw, "GET");
    assert_eq!(raw.content_disposition(), None, "a plain GET keeps the stored headers");
}

/// `bucket "b/x", key "y"` never reaches `bucket "b", key "x/y"` (the store joins them with `/`).
#[tokio::test(flavor = "multi_thread")]
async fn a_bucket_name_with_a_slash_aliases_nothing() {
    let (node, _auth, users) = start().await;
    let _log = node.log_on_panic();
    let bucket = bucket_of(&node, &users.alice, "alias").await;
    upload(&node, &users.alice, &bucket, "x/y", b"alice's").await;
    let aliased = format!("{bucket}%2Fx");
    for path in [format!("/api/v1/objects/{aliased}/y/placement"), format!("/api/v1/files/{aliased}/y")] {
        let (status, body) = web_api(&node, reqwest::Method::GET, &path, SERVICE_TOKEN, None).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    let path = format!("/api/v1/files/{aliased}/y?detail");
    let (status, body) = web_api(&node, reqwest::Method::GET, &path, &users.admin, None).await;
    assert_eq!(status, 404, "{path} as admin: {body}");
    let share = json!({ "bucket": format!("{bucket}/x"), "key": "y" });
    let (status, body) = web_api(&node, reqwest::Method::POST, "/api/v1/shares", &users.admin, Some(share)).await;
    assert_eq!(status, 404, "a share of the alias: {body}");
    let (status, body) = web_api(
        &node,
        reqwest::Method::POST,
        "/api/v1/buckets",
        &users.bob,
        Some(json!({ "name": format!("{bucket}/x") })),
    )
    .await;
    assert_eq!(status, 400, "a bucket named with a slash: {body}");
}

/// User metadata is bounded at S3's 2 KiB.
#[tokio::test(flavor = "multi_thread")]
async fn user_metadata_is_bounded() {
    let node = TestNode::start().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = harness::create_bucket(&client, "meta").await;
    let at_limit = "v".repeat(2048 - "big".len());
    let fits =
        client.put_object().bucket(&bucket).key("fits").metadata("big", &at_limit).body(ByteStream::from_static(b"1"));
    ok(fits.send().await, "2 KiB of metadata");
    let over = format!("{at_limit}v");
    let big = client.put_object().bucket(&bucket).key("big").metadata("big", &over).body(ByteStream::from_static(b"1"));
    expect_err(big.send().await, 400, Some("MetadataTooLarge"), "over 2 KiB of metadata");
    let multipart = client.create_multipart_upload().bucket(&bucket).key("big").metadata("big", &over).send().await;
    expect_err(multipart, 400, Some("MetadataTooLarge"), "multipart over 2 KiB of metadata");
}
