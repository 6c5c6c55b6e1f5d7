//! The S3 edge cases that broke clients (issue #15, section 6), each with AWS's status, error
//! code and headers for the good and the bad case: bucket names another key owns, listing
//! corners (`max-keys=0`, empty delimiter, `fetch-owner`, ListBuckets paging), chunked PUTs
//! without Content-Length, request ids, `?partNumber=N`, resent parts, conditional writes and
//! their race.

use crate::harness;

use std::sync::Arc;
use std::time::SystemTime;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use harness::cli::create_key;
use harness::sigv4::{HeaderSign, xml_error_code};
use harness::*;

use super::multipart::{create_upload, upload_part};

const MIB: usize = 1024 * 1024;

/// The `<RequestId>` of an S3 XML error body.
fn xml_request_id(body: &str) -> Option<String> {
    let start = body.find("<RequestId>")? + "<RequestId>".len();
    let end = body[start..].find("</RequestId>")? + start;
    Some(body[start..end].to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_bucket_of_a_name_another_key_owns_is_bucket_already_exists() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let (a_id, a_secret) = create_key(node.config_path(), "edge-a", Some("user:u-edge-a"));
    let (b_id, b_secret) = create_key(node.config_path(), "edge-b", Some("user:u-edge-b"));
    let alice = node.client_with_keys(&a_id, &a_secret);
    let bob = node.client_with_keys(&b_id, &b_secret);
    let bucket = create_bucket(&alice, "taken").await;

    expect_err(
        alice.create_bucket().bucket(&bucket).send().await,
        409,
        Some("BucketAlreadyOwnedByYou"),
        "CreateBucket of her own bucket",
    );
    expect_err(
        bob.create_bucket().bucket(&bucket).send().await,
        409,
        Some("BucketAlreadyExists"),
        "CreateBucket of a name another user's key owns",
    );
    // The operator's key acts for the account that owns every bucket.
    expect_err(
        node.client().create_bucket().bucket(&bucket).send().await,
        409,
        Some("BucketAlreadyOwnedByYou"),
        "CreateBucket with the operator's key",
    );
    // Bob's refusal changed nothing: the bucket is still Alice's.
    ok(alice.head_bucket().bucket(&bucket).send().await, "HeadBucket by its owner");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_keys_zero_empty_delimiter_owner_and_marker() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "corners").await;
    for key in ["a/1", "a/2", "b", "c"] {
        put(&client, &bucket, key, key.as_bytes()).await;
    }

    // max-keys=0: nothing, and not truncated (a client paging until IsTruncated is false ends).
    let zero = ok(client.list_objects_v2().bucket(&bucket).max_keys(0).send().await, "ListObjectsV2 max-keys=0");
    assert_eq!(zero.key_count(), Some(0));
    assert!(zero.contents().is_empty() && zero.common_prefixes().is_empty(), "{zero:?}");
    assert_eq!(zero.is_truncated(), Some(false), "max-keys=0 is not truncated");
    assert_eq!(zero.next_continuation_token(), None);
    let zero_v1 = ok(client.list_objects().bucket(&bucket).max_keys(0).send().await, "ListObjects max-keys=0");
    assert!(zero_v1.contents().is_empty());
    assert_eq!(zero_v1.is_truncated(), Some(false));

    // An empty delimiter is no delimiter: every key, no common prefixes.
    let flat = ok(client.list_objects_v2().bucket(&bucket).delimiter("").send().await, "ListObjectsV2 delimiter=''");
    let keys: Vec<&str> = flat.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["a/1", "a/2", "b", "c"]);
    assert!(flat.common_prefixes().is_empty());

    // fetch-owner: the owner only when asked for, with an ID and a DisplayName.
    let plain = ok(client.list_objects_v2().bucket(&bucket).send().await, "ListObjectsV2");
    assert!(plain.contents().iter().all(|o| o.owner().is_none()), "no owner unless fetch-owner");
    let owned = ok(client.list_objects_v2().bucket(&bucket).fetch_owner(true).send().await, "fetch-owner=true");
    for object in owned.contents() {
        let owner = object.owner().expect("fetch-owner=true names the owner");
        assert_eq!(owner.id(), Some("meridian"));
        assert_eq!(owner.display_name(), Some("meridian"));
    }

    // ListObjects v1: Marker is exclusive, and every object names its owner.
    let v1 = ok(client.list_objects().bucket(&bucket).marker("a/2").send().await, "ListObjects marker=a/2");
    let keys: Vec<&str> = v1.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["b", "c"], "after the marker");
    assert_eq!(v1.marker(), Some("a/2"));
    assert!(v1.contents().iter().all(|o| o.owner().and_then(|o| o.id()) == Some("meridian")));
    let paged = ok(client.list_objects().bucket(&bucket).max_keys(2).send().await, "ListObjects max-keys=2");
    assert_eq!(paged.is_truncated(), Some(true));
    let next = paged.next_marker().expect("NextMarker of a truncated page").to_owned();
    let rest = ok(client.list_objects().bucket(&bucket).marker(&next).send().await, "ListObjects next page");
    let keys: Vec<&str> = rest.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["b", "c"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_buckets_pages_by_max_buckets_token_and_prefix() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    // A prefix of its own: other tests create buckets on the shared node meanwhile.
    let prefix = unique_bucket("lbp");
    let mut names: Vec<String> = Vec::new();
    for i in 0..3 {
        let name = format!("{prefix}-{i}");
        ok(client.create_bucket().bucket(&name).send().await, "CreateBucket");
        names.push(name);
    }
    let first = ok(client.list_buckets().prefix(&prefix).max_buckets(2).send().await, "ListBuckets page 1");
    let got: Vec<&str> = first.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(got, [names[0].as_str(), names[1].as_str()]);
    assert_eq!(first.prefix(), Some(prefix.as_str()));
    let token = first.continuation_token().expect("a ContinuationToken when more follow").to_owned();
    let second = ok(
        client.list_buckets().prefix(&prefix).max_buckets(2).continuation_token(&token).send().await,
        "ListBuckets page 2",
    );
    let got: Vec<&str> = second.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(got, [names[2].as_str()]);
    assert_eq!(second.continuation_token(), None, "the last page has no token");
    let all = ok(client.list_buckets().prefix(&prefix).send().await, "ListBuckets by prefix");
    assert_eq!(all.buckets().len(), 3);
    assert_eq!(all.continuation_token(), None);

    for max in [0, 10_001] {
        expect_err(
            client.list_buckets().max_buckets(max).send().await,
            400,
            Some("InvalidArgument"),
            &format!("ListBuckets max-buckets={max}"),
        );
    }
    expect_err(
        client.list_buckets().continuation_token("%%not-a-token").send().await,
        400,
        Some("InvalidArgument"),
        "ListBuckets with a forged token",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_put_without_content_length_is_stored_whole() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "chunked").await;
    let data = random_bytes(41, 3 * MIB + 12_345);
    let host = node.s3_addr.to_string();
    let path = format!("/{bucket}/streamed.bin");
    let signer = HeaderSign {
        method: "PUT",
        host: &host,
        path: &path,
        region: REGION,
        access_key: ACCESS_KEY,
        secret_key: SECRET_KEY,
        content_sha256: "UNSIGNED-PAYLOAD",
        headers: &[],
        now: SystemTime::now(),
    };
    // A stream of unknown length: reqwest sends `Transfer-Encoding: chunked`, no Content-Length.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = data.chunks(200_000).map(|c| Ok(c.to_vec())).collect();
    let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let req = signer.sign(http_client().put(format!("{}{path}", node.s3_url())));
    let resp = req.body(body).send().await.expect("chunked PUT");
    let status = resp.status().as_u16();
    let etag = resp.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let text = resp.text().await.unwrap_or_default();
    assert_eq!(status, 200, "chunked PUT without Content-Length: {text}");
    assert_eq!(etag, Some(etag_of(&data)), "the ETag is the MD5 of every byte sent");
    let head = ok(client.head_object().bucket(&bucket).key("streamed.bin").send().await, "HeadObject");
    assert_eq!(head.content_length(), Some(i64::try_from(data.len()).expect("size")));
    // Read back in full through the blob store, not from what the PUT answered.
    assert_bytes_eq(&get_bytes(&client, &bucket, "streamed.bin").await, &data, "chunked object");

    // What an attacker would send: the same chunked body unsigned is refused before a byte
    // is stored (the stand-in length changes nothing about who may write).
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![Ok(vec![7u8; 100_000])];
    let resp = http_client()
        .put(format!("{}/{bucket}/anonymous.bin", node.s3_url()))
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .expect("anonymous chunked PUT");
    assert_eq!(resp.status().as_u16(), 403, "an unsigned chunked PUT");
    expect_err(client.head_object().bucket(&bucket).key("anonymous.bin").send().await, 404, None, "nothing stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_has_a_request_id_and_error_bodies_repeat_it() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "reqid").await;
    let http = http_client();

    // An error of the gateway (NoSuchKey), one of s3s (an unsigned request: AccessDenied) and
    // one of the listener itself (a malformed presigned URL).
    let missing = client.get_object().bucket(&bucket).key("missing").presigned(
        aws_sdk_s3::presigning::PresigningConfig::expires_in(std::time::Duration::from_secs(60)).expect("config"),
    );
    let missing = missing.await.expect("presign").uri().to_owned();
    let malformed = missing.replace("X-Amz-Expires=60", "X-Amz-Expires=0");
    let anonymous = format!("{}/{bucket}/missing", node.s3_url());
    let mut seen = std::collections::HashSet::new();
    for (url, status, code) in [
        (missing, 404, "NoSuchKey"),
        (anonymous, 403, "AccessDenied"),
        (malformed, 400, "AuthorizationQueryParametersError"),
    ] {
        let resp = http.get(&url).send().await.expect("GET");
        assert_eq!(resp.status().as_u16(), status, "{url}");
        let header = resp.headers().get("x-amz-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = resp.text().await.unwrap_or_default();
        assert_eq!(xml_error_code(&body).as_deref(), Some(code), "{body}");
        let header = header.expect("an x-amz-request-id header on every error");
        assert_eq!(
            xml_request_id(&body).as_deref(),
            Some(header.as_str()),
            "the body's RequestId is the header's: {body}"
        );
        assert_eq!(body.matches("<RequestId>").count(), 1, "{body}");
        assert!(seen.insert(header), "request ids are unique");
    }

    // Successes and HEAD errors (no body) carry one too; the SDK reads it as the request id.
    put(&client, &bucket, "k", b"v").await;
    let out = ok(client.head_object().bucket(&bucket).key("k").send().await, "HeadObject");
    use aws_sdk_s3::operation::RequestId as _;
    let id = out.request_id().expect("the SDK sees a request id on a success");
    assert_eq!(id.len(), 16);
    let err = client.head_object().bucket(&bucket).key("nope").send().await.expect_err("404");
    assert!(err.request_id().is_some_and(|id| id.len() == 16), "a HEAD 404 has a request id: {err:?}");
}

fn completed(parts: &[(i32, &str)]) -> CompletedMultipartUpload {
    CompletedMultipartUpload::builder()
        .set_parts(Some(
            parts.iter().map(|(n, e)| CompletedPart::builder().part_number(*n).e_tag(*e).build()).collect(),
        ))
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn part_numbers_resent_parts_and_conditional_completion() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    node.wait_format_raised().await;
    let client = node.client();
    let bucket = create_bucket(&client, "parts").await;
    let key = "film.bin";
    let id = create_upload(&client, &bucket, key).await;
    let first_try = random_bytes(51, 5 * MIB);
    let stale = upload_part(&client, &bucket, key, &id, 1, &first_try).await;
    // The part is sent again with other bytes: the last upload of a part wins.
    let part1 = random_bytes(52, 5 * MIB);
    let e1 = upload_part(&client, &bucket, key, &id, 1, &part1).await;
    assert_ne!(stale, e1);
    let part2 = random_bytes(53, 777_777);
    let e2 = upload_part(&client, &bucket, key, &id, 2, &part2).await;
    expect_err(
        client
            .complete_multipart_upload()
            .bucket(&bucket)
            .key(key)
            .upload_id(&id)
            .multipart_upload(completed(&[(1, &stale), (2, &e2)]))
            .send()
            .await,
        400,
        Some("InvalidPart"),
        "Complete naming the ETag of a part sent again since",
    );

    // A key that exists: If-None-Match: * refuses the completion and leaves the upload.
    put(&client, &bucket, key, b"already here").await;
    expect_err(
        client
            .complete_multipart_upload()
            .bucket(&bucket)
            .key(key)
            .upload_id(&id)
            .if_none_match("*")
            .multipart_upload(completed(&[(1, &e1), (2, &e2)]))
            .send()
            .await,
        412,
        Some("PreconditionFailed"),
        "Complete with If-None-Match: * over an existing key",
    );
    expect_err(
        client
            .complete_multipart_upload()
            .bucket(&bucket)
            .key(key)
            .upload_id(&id)
            .if_match("\"0123456789abcdef0123456789abcdef\"")
            .multipart_upload(completed(&[(1, &e1), (2, &e2)]))
            .send()
            .await,
        412,
        Some("PreconditionFailed"),
        "Complete with an If-Match of another ETag",
    );
    assert_eq!(get_bytes(&client, &bucket, key).await, b"already here", "a refused completion wrote nothing");
    let current = etag_of(b"already here");
    ok(
        client
            .complete_multipart_upload()
            .bucket(&bucket)
            .key(key)
            .upload_id(&id)
            .if_match(&current)
            .multipart_upload(completed(&[(1, &e1), (2, &e2)]))
            .send()
            .await,
        "Complete with If-Match of the current ETag (the upload survived the refusals)",
    );
    let whole = [part1.as_slice(), part2.as_slice()].concat();
    assert_bytes_eq(&get_bytes(&client, &bucket, key).await, &whole, "the object is the last upload of each part");

    // GET and HEAD ?partNumber=N: that part's bytes and size, and the object's part count.
    for (n, bytes, start) in [(1, &part1, 0usize), (2, &part2, part1.len())] {
        let out = ok(client.get_object().bucket(&bucket).key(key).part_number(n).send().await, "GET ?partNumber");
        assert_eq!(out.parts_count(), Some(2));
        let range = format!("bytes {start}-{}/{}", start + bytes.len() - 1, whole.len());
        assert_eq!(out.content_range(), Some(range.as_str()));
        let body = out.body.collect().await.expect("body").into_bytes();
        assert_bytes_eq(&body, bytes, "part bytes");
        let head = ok(client.head_object().bucket(&bucket).key(key).part_number(n).send().await, "HEAD ?partNumber");
        assert_eq!(head.content_length(), Some(i64::try_from(bytes.len()).expect("len")));
        assert_eq!(head.parts_count(), Some(2));
        assert_eq!(head.content_range(), Some(range.as_str()));
    }
    // A part's HEAD is a 206, as its GET (the SDK does not show the status; a presigned HEAD does).
    let presigned = client
        .head_object()
        .bucket(&bucket)
        .key(key)
        .part_number(2)
        .presigned(
            aws_sdk_s3::presigning::PresigningConfig::expires_in(std::time::Duration::from_secs(60)).expect("config"),
        )
        .await
        .expect("presign");
    let resp = http_client().head(presigned.uri()).send().await.expect("HEAD");
    assert_eq!(resp.status().as_u16(), 206, "HEAD ?partNumber=2");
    assert_eq!(resp.headers().get("x-amz-mp-parts-count").and_then(|v| v.to_str().ok()), Some("2"));
    expect_err(
        client.get_object().bucket(&bucket).key(key).part_number(3).send().await,
        416,
        Some("InvalidPartNumber"),
        "GET a part the object does not have",
    );
    expect_err(client.head_object().bucket(&bucket).key(key).part_number(3).send().await, 416, None, "HEAD part 3");
    expect_err(
        client.get_object().bucket(&bucket).key(key).part_number(10_001).send().await,
        400,
        Some("InvalidArgument"),
        "GET ?partNumber over 10000",
    );
    expect_err(
        client.get_object().bucket(&bucket).key(key).part_number(1).range("bytes=0-1").send().await,
        400,
        Some("InvalidRequest"),
        "partNumber and Range together",
    );
    // An object not made by multipart upload is its own part 1.
    put(&client, &bucket, "single", b"one part").await;
    let single = ok(client.get_object().bucket(&bucket).key("single").part_number(1).send().await, "part 1");
    assert_eq!(single.body.collect().await.expect("body").into_bytes().as_ref(), b"one part");
    expect_err(
        client.get_object().bucket(&bucket).key("single").part_number(2).send().await,
        416,
        Some("InvalidPartNumber"),
        "part 2 of a simple object",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_puts_and_racing_creators() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "cond").await;
    let first = ok(
        client
            .put_object()
            .bucket(&bucket)
            .key("k")
            .if_none_match("*")
            .body(ByteStream::from_static(b"v1"))
            .send()
            .await,
        "PutObject If-None-Match: * of a new key",
    );
    let etag = first.e_tag().expect("ETag").to_owned();
    expect_err(
        client
            .put_object()
            .bucket(&bucket)
            .key("k")
            .if_none_match("*")
            .body(ByteStream::from_static(b"v2"))
            .send()
            .await,
        412,
        Some("PreconditionFailed"),
        "PutObject If-None-Match: * of an existing key",
    );
    expect_err(
        client
            .put_object()
            .bucket(&bucket)
            .key("k")
            .if_match(etag_of(b"other"))
            .body(ByteStream::from_static(b"v2"))
            .send()
            .await,
        412,
        Some("PreconditionFailed"),
        "PutObject If-Match of another ETag",
    );
    expect_err(
        client
            .put_object()
            .bucket(&bucket)
            .key("absent")
            .if_match(&etag)
            .body(ByteStream::from_static(b"v2"))
            .send()
            .await,
        412,
        Some("PreconditionFailed"),
        "PutObject If-Match of a key that does not exist",
    );
    ok(
        client.put_object().bucket(&bucket).key("k").if_match(&etag).body(ByteStream::from_static(b"v2")).send().await,
        "PutObject If-Match of the current ETag",
    );
    assert_eq!(get_bytes(&client, &bucket, "k").await, b"v2");

    // Racing creators: every round, 8 clients PUT the same new key with If-None-Match: * at
    // once; exactly one wins and the object is the winner's bytes.
    let client = Arc::new(client);
    for round in 0..5 {
        let key = format!("race-{round}");
        let mut tasks = Vec::new();
        for writer in 0..8u8 {
            let (client, bucket, key) = (client.clone(), bucket.clone(), key.clone());
            tasks.push(tokio::spawn(async move {
                let body = vec![writer; 1000 + usize::from(writer)];
                let result = client
                    .put_object()
                    .bucket(&bucket)
                    .key(&key)
                    .if_none_match("*")
                    .body(ByteStream::from(body.clone()))
                    .send()
                    .await;
                (body, result.map_err(|e| service_err(&e)))
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            let (body, result) = task.await.expect("writer task");
            match result {
                Ok(_) => winners.push(body),
                Err(e) => assert_eq!((e.status, e.code.as_deref()), (412, Some("PreconditionFailed")), "{e:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one creator wins");
        assert_eq!(get_bytes(&client, &bucket, &key).await, winners[0], "round {round}: the winner's bytes");
    }
}

/// A browser form upload (POST Object) signed with SigV4 over a policy: fields in order, the
/// file last. Returns status and body.
async fn post_form(node: &TestNode, bucket: &str, key: &str, policy_json: &str, file: &[u8]) -> (u16, String) {
    let resp =
        send_form(node, bucket, &PostForm { key, policy_json, signed_json: policy_json, extra: &[] }, file).await;
    (resp.status().as_u16(), resp.text().await.unwrap_or_default())
}

/// [`post_form`] sending `policy_json` with the signature of `signed_json` (a tampered form).
async fn post_form_signed_as(
    node: &TestNode,
    bucket: &str,
    key: &str,
    policy_json: &str,
    signed_json: &str,
    file: &[u8],
) -> (u16, String) {
    let resp = send_form(node, bucket, &PostForm { key, policy_json, signed_json, extra: &[] }, file).await;
    (resp.status().as_u16(), resp.text().await.unwrap_or_default())
}

/// The fields of a browser form upload a test chooses.
struct PostForm<'a> {
    /// The object key field.
    key: &'a str,
    /// The policy sent, with `{bucket}`, `{credential}` and `{date}` filled in.
    policy_json: &'a str,
    /// The policy the signature is made over (differs from `policy_json` in a tampered form).
    signed_json: &'a str,
    /// More form fields, sent after the signature and before the file.
    extra: &'a [(&'a str, &'a str)],
}

/// Sends `form` with `file` as a POST Object to `bucket` on `node`, not following redirects.
async fn send_form(node: &TestNode, bucket: &str, form: &PostForm<'_>, file: &[u8]) -> reqwest::Response {
    use harness::sigv4::{amz_dates, hmac_sha256};
    let (date, stamp) = amz_dates(SystemTime::now());
    let credential = format!("{ACCESS_KEY}/{date}/{REGION}/s3/aws4_request");
    let fill =
        |json: &str| json.replace("{bucket}", bucket).replace("{credential}", &credential).replace("{date}", &stamp);
    let policy = base64(fill(form.policy_json).as_bytes());
    let signed = base64(fill(form.signed_json).as_bytes());
    let k_date = hmac_sha256(format!("AWS4{SECRET_KEY}").as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(&k_date, REGION.as_bytes());
    let k_service = hmac_sha256(&k_region, b"s3");
    let k_signing = hmac_sha256(&k_service, b"aws4_request");
    let signature = hex::encode(hmac_sha256(&k_signing, signed.as_bytes()));
    let boundary = "meridian-form-boundary-7d1";
    let mut body = Vec::new();
    let fields = [
        ("key", form.key),
        ("x-amz-algorithm", "AWS4-HMAC-SHA256"),
        ("x-amz-credential", &credential),
        ("x-amz-date", &stamp),
        ("policy", &policy),
        ("x-amz-signature", &signature),
    ];
    for (name, value) in fields.iter().chain(form.extra) {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.bin\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    browser_from(std::net::Ipv4Addr::LOCALHOST)
        .post(format!("{}/{bucket}", node.s3_url()))
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(body)
        .send()
        .await
        .expect("POST form")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_object_answers_as_its_success_action_fields_ask() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "post-action").await;
    // A policy names the redirect pages it allows; an empty prefix allows none given.
    let policy_for = |redirect_prefix: &str| {
        format!(
            r#"{{"expiration":"2099-01-01T00:00:00.000Z","conditions":[{{"bucket":"{{bucket}}"}},["starts-with","$key","posters/"],["starts-with","$success_action_redirect","{redirect_prefix}"],["starts-with","$success_action_status",""],{{"x-amz-algorithm":"AWS4-HMAC-SHA256"}},{{"x-amz-credential":"{{credential}}"}},{{"x-amz-date":"{{date}}"}}]}}"#
        )
    };
    let (status_policy, redirect_policy) = (policy_for(""), policy_for("https://cinema.example/"));
    let form = |key, extra| PostForm { key, policy_json: &status_policy, signed_json: &status_policy, extra };
    let redirect_form =
        |key, extra| PostForm { key, policy_json: &redirect_policy, signed_json: &redirect_policy, extra };
    // s3s writes the ETag without the quotes AWS puts around it (docs/s3-compatibility.md).
    let etag = md5_hex(b"poster");

    // 201: the PostResponse document naming what was stored.
    let resp = send_form(node, &bucket, &form("posters/201.jpg", &[("success_action_status", "201")]), b"poster").await;
    assert_eq!(resp.status().as_u16(), 201);
    let body = resp.text().await.unwrap_or_default();
    for part in
        [format!("<Bucket>{bucket}</Bucket>"), "<Key>posters/201.jpg</Key>".into(), format!("<ETag>{etag}</ETag>")]
    {
        assert!(body.contains(&part), "201 names {part}: {body}");
    }

    // 200: an empty answer.
    let resp = send_form(node, &bucket, &form("posters/200.jpg", &[("success_action_status", "200")]), b"poster").await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.text().await.unwrap_or_default(), "");

    // A redirect: 303 to the page with bucket, key and ETag appended, as AWS does.
    let resp = send_form(
        node,
        &bucket,
        &redirect_form("posters/303.jpg", &[("success_action_redirect", "https://cinema.example/uploaded?from=form")]),
        b"poster",
    )
    .await;
    assert_eq!(resp.status().as_u16(), 303);
    let location = resp.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let url = reqwest::Url::parse(&location).expect("an absolute Location");
    assert_eq!((url.host_str(), url.path()), (Some("cinema.example"), "/uploaded"), "{location}");
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(query.get("from").map(String::as_str), Some("form"), "the page's own query kept: {location}");
    assert_eq!(query.get("bucket"), Some(&bucket));
    assert_eq!(query.get("key").map(String::as_str), Some("posters/303.jpg"));
    assert_eq!(query.get("etag"), Some(&etag));

    // What an attacker would send: a redirect elsewhere than the policy allows, or one that
    // would inject a header. Neither stores anything.
    let resp = send_form(
        node,
        &bucket,
        &redirect_form("posters/evil.jpg", &[("success_action_redirect", "https://attacker.example/")]),
        b"poster",
    )
    .await;
    assert!(resp.status().is_client_error(), "a redirect outside the policy: {}", resp.status());
    let resp = send_form(
        node,
        &bucket,
        &redirect_form(
            "posters/crlf.jpg",
            &[("success_action_redirect", "https://cinema.example/\r\nSet-Cookie: a=b")],
        ),
        b"poster",
    )
    .await;
    assert!(resp.status().is_client_error(), "a redirect with a line break: {}", resp.status());
    assert!(resp.headers().get("set-cookie").is_none());
    for key in ["posters/201.jpg", "posters/200.jpg", "posters/303.jpg"] {
        assert_eq!(get_bytes(&client, &bucket, key).await, b"poster", "{key} stored");
    }
    for key in ["posters/evil.jpg", "posters/crlf.jpg"] {
        expect_err(client.head_object().bucket(&bucket).key(key).send().await, 404, None, "nothing stored");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_object_form_uploads_obey_their_signed_policy() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "post").await;
    let policy = |expiration: &str| {
        format!(
            r#"{{"expiration":"{expiration}","conditions":[{{"bucket":"{{bucket}}"}},["starts-with","$key","posters/"],{{"x-amz-algorithm":"AWS4-HMAC-SHA256"}},{{"x-amz-credential":"{{credential}}"}},{{"x-amz-date":"{{date}}"}},["content-length-range",1,1000]]}}"#
        )
    };
    let good = policy("2099-01-01T00:00:00.000Z");
    let (status, body) = post_form(node, &bucket, "posters/a.jpg", &good, b"poster bytes").await;
    assert_eq!(status, 204, "a form upload the policy allows (AWS's default success_action_status): {body}");
    assert_eq!(get_bytes(&client, &bucket, "posters/a.jpg").await, b"poster bytes");

    // What an attacker would send with someone's signed form: another key, a bigger file, an
    // expired policy, a policy edited after signing.
    // A failed condition is 403 AccessDenied, as on AWS; a policy that cannot be read is 400
    // InvalidPolicyDocument.
    let (status, body) = post_form(node, &bucket, "private/x", &good, b"x").await;
    assert_eq!(
        (status, xml_error_code(&body).as_deref()),
        (403, Some("AccessDenied")),
        "a key outside starts-with: {body}"
    );
    assert!(body.contains("Invalid according to Policy"), "{body}");
    let (status, body) = post_form(node, &bucket, "posters/x", "{not json", b"x").await;
    assert_eq!(
        (status, xml_error_code(&body).as_deref()),
        (400, Some("InvalidPolicyDocument")),
        "an unreadable policy: {body}"
    );
    let forged = good.replace("posters/", "");
    let (status, body) = post_form_signed_as(node, &bucket, "private/x", &forged, &good, b"x").await;
    assert_eq!(status, 403, "a policy changed after signing (signed as the original): {body}");
    let (status, body) = post_form(node, &bucket, "posters/big", &good, &[0u8; 1001]).await;
    assert!((400..500).contains(&status), "a file over content-length-range: {status} {body}");
    let (status, body) = post_form(node, &bucket, "posters/old", &policy("2001-01-01T00:00:00.000Z"), b"x").await;
    assert_eq!((status, xml_error_code(&body).as_deref()), (403, Some("AccessDenied")), "an expired policy: {body}");
    for key in ["private/x", "posters/big", "posters/old"] {
        expect_err(client.head_object().bucket(&bucket).key(key).send().await, 404, None, "nothing stored");
    }
}
