//! Integrity checks against a real node: Content-MD5 and `x-amz-checksum-*` (headers and
//! streaming trailers) are verified before an object becomes visible, and checksums are returned
//! when asked.

use crate::harness;

use std::time::SystemTime;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, ChecksumType, CompletedMultipartUpload, CompletedPart, ObjectAttributes,
};
use harness::sigv4::{HeaderSign, xml_error_code};
use harness::*;

/// AWS answers a body that does not match its `x-amz-checksum-*` with 400 `BadDigest`.
const CHECKSUM_ERRORS: &[&str] = &["BadDigest"];

async fn assert_absent(client: &Client, bucket: &str, key: &str, what: &str) {
    expect_err(
        client.head_object().bucket(bucket).key(key).send().await,
        404,
        None,
        &format!("{what}: HeadObject {key}"),
    );
    let keys = list_all_keys(client, bucket).await;
    assert!(!keys.iter().any(|k| k == key), "{what}: {key} is listed although its upload failed: {keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_md5_is_verified() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "md5").await;
    let v1 = random_bytes(1, 10_000);
    let v2 = random_bytes(2, 10_000);

    // Correct Content-MD5 is accepted.
    ok(
        client
            .put_object()
            .bucket(&bucket)
            .key("k")
            .content_md5(base64(&md5_bytes(&v1)))
            .body(ByteStream::from(v1.clone()))
            .send()
            .await,
        "PutObject with the right Content-MD5",
    );

    // A wrong one is BadDigest, and the previous version stays intact.
    expect_err(
        client
            .put_object()
            .bucket(&bucket)
            .key("k")
            .content_md5(base64(&md5_bytes(&v1)))
            .body(ByteStream::from(v2.clone()))
            .send()
            .await,
        400,
        Some("BadDigest"),
        "PutObject with the Content-MD5 of other bytes",
    );
    let got = ok(client.get_object().bucket(&bucket).key("k").send().await, "GetObject");
    assert_eq!(got.e_tag(), Some(etag_of(&v1).as_str()), "ETag after a BadDigest overwrite");
    assert_bytes_eq(
        &got.body.collect().await.expect("body").into_bytes(),
        &v1,
        "previous version after a BadDigest overwrite",
    );

    // A new key with a wrong Content-MD5 does not exist afterwards.
    expect_err(
        client
            .put_object()
            .bucket(&bucket)
            .key("new")
            .content_md5(base64(&md5_bytes(b"other")))
            .body(ByteStream::from(v2.clone()))
            .send()
            .await,
        400,
        Some("BadDigest"),
        "PutObject (new key) with a wrong Content-MD5",
    );
    assert_absent(&client, &bucket, "new", "wrong Content-MD5").await;

    // A Content-MD5 that is not a base64 MD5 at all.
    expect_err_code_in(
        client
            .put_object()
            .bucket(&bucket)
            .key("bad-md5")
            .content_md5("not-base64-md5!")
            .body(ByteStream::from_static(b"abc"))
            .send()
            .await,
        &["InvalidDigest", "BadDigest"],
        "PutObject with a malformed Content-MD5",
    );
    assert_absent(&client, &bucket, "bad-md5", "malformed Content-MD5").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_md5_is_verified_on_upload_part() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "md5-part").await;
    let up = ok(client.create_multipart_upload().bucket(&bucket).key("m").send().await, "CreateMultipartUpload");
    let id = up.upload_id().expect("UploadId");
    expect_err(
        client
            .upload_part()
            .bucket(&bucket)
            .key("m")
            .upload_id(id)
            .part_number(1)
            .content_md5(base64(&md5_bytes(b"something else")))
            .body(ByteStream::from_static(b"part data"))
            .send()
            .await,
        400,
        Some("BadDigest"),
        "UploadPart with a wrong Content-MD5",
    );
    let parts = ok(client.list_parts().bucket(&bucket).key("m").upload_id(id).send().await, "ListParts");
    assert!(parts.parts().is_empty(), "a part with a bad digest was kept: {:?}", parts.parts());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_checksum_headers_are_refused() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "cksum-bad").await;
    let data = random_bytes(3, 50_000);
    let old = b"previous version".to_vec();
    put(&client, &bucket, "existing", &old).await;
    let wrong_sha256 = base64(&sha256_bytes(b"not the data"));
    let wrong_sha1 = base64(&[7u8; 20]);
    let wrong_crc32 = b64_crc(crc32(&data) ^ 1);
    let wrong_crc32c = b64_crc(crc32c(&data) ^ 1);

    for key in ["fresh", "existing"] {
        expect_err_code_in(
            client
                .put_object()
                .bucket(&bucket)
                .key(key)
                .checksum_sha256(&wrong_sha256)
                .body(ByteStream::from(data.clone()))
                .send()
                .await,
            CHECKSUM_ERRORS,
            &format!("PutObject {key} with a wrong x-amz-checksum-sha256"),
        );
        expect_err_code_in(
            client
                .put_object()
                .bucket(&bucket)
                .key(key)
                .checksum_crc32(&wrong_crc32)
                .body(ByteStream::from(data.clone()))
                .send()
                .await,
            CHECKSUM_ERRORS,
            &format!("PutObject {key} with a wrong x-amz-checksum-crc32"),
        );
        expect_err_code_in(
            client
                .put_object()
                .bucket(&bucket)
                .key(key)
                .checksum_crc32_c(&wrong_crc32c)
                .body(ByteStream::from(data.clone()))
                .send()
                .await,
            CHECKSUM_ERRORS,
            &format!("PutObject {key} with a wrong x-amz-checksum-crc32c"),
        );
        expect_err_code_in(
            client
                .put_object()
                .bucket(&bucket)
                .key(key)
                .checksum_sha1(&wrong_sha1)
                .body(ByteStream::from(data.clone()))
                .send()
                .await,
            CHECKSUM_ERRORS,
            &format!("PutObject {key} with a wrong x-amz-checksum-sha1"),
        );
    }
    assert_absent(&client, &bucket, "fresh", "wrong checksums").await;
    assert_eq!(get_bytes(&client, &bucket, "existing").await, old, "a refused overwrite changed the existing object");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correct_checksum_headers_are_stored_and_returned() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "cksum-ok").await;
    let data = random_bytes(4, 123_457);
    let sha = base64(&sha256_bytes(&data));
    let c32 = b64_crc(crc32(&data));
    let c32c = b64_crc(crc32c(&data));

    let out = ok(
        client
            .put_object()
            .bucket(&bucket)
            .key("sha")
            .checksum_sha256(&sha)
            .body(ByteStream::from(data.clone()))
            .send()
            .await,
        "PutObject with the right x-amz-checksum-sha256",
    );
    assert_eq!(out.checksum_sha256(), Some(sha.as_str()), "PutObject echoes the SHA-256");
    ok(
        client
            .put_object()
            .bucket(&bucket)
            .key("crc32")
            .checksum_crc32(&c32)
            .body(ByteStream::from(data.clone()))
            .send()
            .await,
        "PutObject with the right x-amz-checksum-crc32",
    );
    ok(
        client
            .put_object()
            .bucket(&bucket)
            .key("crc32c")
            .checksum_crc32_c(&c32c)
            .body(ByteStream::from(data.clone()))
            .send()
            .await,
        "PutObject with the right x-amz-checksum-crc32c",
    );

    let get = ok(
        client.get_object().bucket(&bucket).key("sha").checksum_mode(ChecksumMode::Enabled).send().await,
        "GetObject checksum-mode=ENABLED",
    );
    assert_eq!(get.checksum_sha256(), Some(sha.as_str()), "GetObject ChecksumSHA256");
    assert_bytes_eq(&get.body.collect().await.expect("body").into_bytes(), &data, "sha body");
    let head = ok(
        client.head_object().bucket(&bucket).key("sha").checksum_mode(ChecksumMode::Enabled).send().await,
        "HeadObject checksum-mode=ENABLED",
    );
    assert_eq!(head.checksum_sha256(), Some(sha.as_str()), "HeadObject ChecksumSHA256");

    let get = ok(
        client.get_object().bucket(&bucket).key("crc32").checksum_mode(ChecksumMode::Enabled).send().await,
        "GetObject crc32 checksum-mode=ENABLED",
    );
    assert_eq!(get.checksum_crc32(), Some(c32.as_str()), "GetObject ChecksumCRC32");
    let get = ok(
        client.get_object().bucket(&bucket).key("crc32c").checksum_mode(ChecksumMode::Enabled).send().await,
        "GetObject crc32c checksum-mode=ENABLED",
    );
    assert_eq!(get.checksum_crc32_c(), Some(c32c.as_str()), "GetObject ChecksumCRC32C");

    // The ETag stays the MD5 whatever checksum was sent.
    assert_eq!(get.e_tag(), Some(etag_of(&data).as_str()), "ETag of a checksummed object");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_streaming_trailer_checksum_when_supported() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client_checksums_when_supported();
    let bucket = create_bucket(&client, "trailer").await;
    let dir = tempfile::tempdir().expect("tempdir");

    // In-memory bodies: the SDK puts a CRC32 header.
    let small = random_bytes(5, 3000);
    ok(
        client.put_object().bucket(&bucket).key("in-memory").body(ByteStream::from(small.clone())).send().await,
        "PutObject (WhenSupported, in-memory body)",
    );

    // Streaming bodies: aws-chunked with signed chunks and an x-amz-checksum-crc32 trailer.
    for (key, len, encoding) in [
        ("streamed-small", 10usize, None),
        ("streamed-multi-chunk", MIB + 123, None),
        ("streamed-gzip", 200_000, Some("gzip")),
    ] {
        let data = random_bytes(len as u64, len);
        let path = dir.path().join(key);
        std::fs::write(&path, &data).expect("write temp file");
        let body = ByteStream::from_path(&path).await.expect("ByteStream::from_path");
        let out = ok(
            client
                .put_object()
                .bucket(&bucket)
                .key(key)
                .set_content_encoding(encoding.map(str::to_owned))
                .body(body)
                .send()
                .await,
            &format!("PutObject {key} (WhenSupported, streaming trailer)"),
        );
        assert_eq!(out.e_tag(), Some(etag_of(&data).as_str()), "{key}: ETag of the decoded body");

        let get = ok(
            client.get_object().bucket(&bucket).key(key).checksum_mode(ChecksumMode::Enabled).send().await,
            &format!("GetObject {key} checksum-mode=ENABLED"),
        );
        assert_eq!(
            get.checksum_crc32(),
            Some(b64_crc(crc32(&data)).as_str()),
            "{key}: the trailer's CRC32 is returned"
        );
        assert_eq!(get.content_length(), Some(len as i64), "{key}: decoded length stored");
        assert_eq!(
            get.content_encoding(),
            encoding,
            "{key}: Content-Encoding must be stored with aws-chunked stripped"
        );
        assert_bytes_eq(
            &get.body.collect().await.expect("body").into_bytes(),
            &data,
            &format!("{key}: body (chunk framing removed)"),
        );
    }

    let get = ok(
        client.get_object().bucket(&bucket).key("in-memory").checksum_mode(ChecksumMode::Enabled).send().await,
        "GetObject in-memory checksum-mode=ENABLED",
    );
    assert_eq!(get.checksum_crc32(), Some(b64_crc(crc32(&small)).as_str()), "in-memory CRC32");
}

/// Builds `STREAMING-UNSIGNED-PAYLOAD-TRAILER` bodies by hand: the SDK always sends a correct
/// trailer, so this is how a wrong one reaches the server.
async fn put_with_unsigned_trailer(
    node: &TestNode,
    bucket: &str,
    key: &str,
    data: &[u8],
    trailer_name: &str,
    trailer_value: &str,
) -> (u16, String) {
    let host = node.s3_addr.to_string();
    let path = format!("/{bucket}/{}", uri_encode(key, true));
    let mut body = Vec::new();
    for chunk in data.chunks(64 * 1024) {
        body.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        body.extend_from_slice(chunk);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n");
    body.extend_from_slice(format!("{trailer_name}:{trailer_value}\r\n\r\n").as_bytes());
    let extra = [
        ("content-encoding", "aws-chunked".to_owned()),
        ("x-amz-decoded-content-length", data.len().to_string()),
        ("x-amz-trailer", trailer_name.to_owned()),
    ];
    let signer = HeaderSign {
        method: "PUT",
        host: &host,
        path: &path,
        region: REGION,
        access_key: ACCESS_KEY,
        secret_key: SECRET_KEY,
        content_sha256: "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        headers: &extra,
        now: SystemTime::now(),
    };
    let req = signer.sign(http_client().put(format!("http://{host}{path}")));
    let resp = req.body(body).send().await.expect("hand-built PUT");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_trailer_checksum_is_verified() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "trailer-bad").await;
    let data = random_bytes(6, 150_000);

    // Control: the same hand-built request with the right CRC32 is accepted, so a refusal
    // below is about the checksum and nothing else.
    let (status, body) =
        put_with_unsigned_trailer(node, &bucket, "good", &data, "x-amz-checksum-crc32", &b64_crc(crc32(&data))).await;
    assert_eq!(status, 200, "hand-built streaming PUT with the right CRC32 trailer: {body}");
    assert_bytes_eq(&get_bytes(&client, &bucket, "good").await, &data, "trailer-checked object");
    let head = ok(
        client.head_object().bucket(&bucket).key("good").checksum_mode(ChecksumMode::Enabled).send().await,
        "HeadObject checksum-mode=ENABLED",
    );
    assert_eq!(head.checksum_crc32(), Some(b64_crc(crc32(&data)).as_str()), "stored trailer CRC32");

    for (key, name, value) in [
        ("bad-crc32", "x-amz-checksum-crc32", b64_crc(crc32(&data) ^ 0x8000_0000)),
        ("bad-crc32c", "x-amz-checksum-crc32c", b64_crc(crc32c(&data) ^ 1)),
        ("bad-sha256", "x-amz-checksum-sha256", base64(&sha256_bytes(b"nope"))),
        // Overwrite attempt: the good object must survive.
        ("good", "x-amz-checksum-crc32", b64_crc(crc32(&data) ^ 1)),
    ] {
        let (status, body) = put_with_unsigned_trailer(node, &bucket, key, &data, name, &value).await;
        let code = xml_error_code(&body);
        assert!(
            (400..500).contains(&status) && code.as_deref().is_some_and(|c| CHECKSUM_ERRORS.contains(&c)),
            "PUT {key} with a wrong {name} trailer: expected 400 BadDigest/XAmzContentChecksumMismatch, got {status} {body}"
        );
        if key != "good" {
            assert_absent(&client, &bucket, key, &format!("wrong {name} trailer")).await;
        }
    }
    assert_bytes_eq(
        &get_bytes(&client, &bucket, "good").await,
        &data,
        "object after a refused overwrite with a bad trailer",
    );
    node.assert_tmp_empty_within(std::time::Duration::from_secs(10), "after refused uploads").await;
}

/// A GET racing an overwrite of the same key gets one version whole, never the new version cut
/// to the old one's length: the overwrite frees the old blob, and the GET that finds it gone
/// looks the key up again and answers for the new version (docs/faults.md, anomaly 8, where
/// the fault suite saw 200 with the first 30,389 bytes of a 57,859-byte value).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_get_racing_an_overwrite_gets_one_version_whole() {
    /// How many overwrites the readers race (a few seconds).
    const OVERWRITES: usize = 300;
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "race").await;
    // Blob-backed (over 16 KiB), every version a different length.
    let versions: Vec<Vec<u8>> = (0..8u64).map(|i| random_bytes(100 + i, 20_000 + 997 * i as usize)).collect();
    ok(client.put_object().bucket(&bucket).key("k").body(ByteStream::from(versions[0].clone())).send().await, "PUT v0");
    let done = std::sync::atomic::AtomicBool::new(false);
    // Overwrites in a loop while readers GET the key as fast as they can.
    let writer = async {
        for round in 1..=OVERWRITES {
            let version = &versions[round % versions.len()];
            client
                .put_object()
                .bucket(&bucket)
                .key("k")
                .body(ByteStream::from(version.clone()))
                .send()
                .await
                .expect("overwrite");
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
    };
    let reader = || async {
        let mut gets = 0usize;
        while !done.load(std::sync::atomic::Ordering::Relaxed) {
            let got = client.get_object().bucket(&bucket).key("k").send().await.expect("GET during an overwrite");
            let declared = got.content_length();
            let body = got.body.collect().await.expect("body").into_bytes();
            assert_eq!(declared, Some(body.len() as i64), "Content-Length and the body differ");
            assert!(
                versions.iter().any(|v| v[..] == body[..]),
                "a GET during an overwrite got {} bytes that are no version whole",
                body.len()
            );
            gets += 1;
        }
        gets
    };
    let ((), counts) = tokio::join!(writer, futures::future::join_all((0..8).map(|_| reader())));
    let gets: usize = counts.iter().sum();
    println!("{gets} GETs raced {OVERWRITES} overwrites, each saw one version whole");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crc64nvme_and_sha1_are_verified_stored_and_returned() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "cksum-64").await;
    // Past the inline limit as well as below it: both stores keep the checksum.
    for (key, data) in [("small", random_bytes(64, 1_000)), ("large", random_bytes(65, 200_000))] {
        let c64 = b64_crc64(crc64nvme(&data));
        let out = ok(
            client
                .put_object()
                .bucket(&bucket)
                .key(key)
                .checksum_crc64_nvme(&c64)
                .body(ByteStream::from(data.clone()))
                .send()
                .await,
            &format!("PutObject {key} with the right x-amz-checksum-crc64nvme"),
        );
        assert_eq!(out.checksum_crc64_nvme(), Some(c64.as_str()), "PutObject {key} echoes the CRC64NVME");
        let get = ok(
            client.get_object().bucket(&bucket).key(key).checksum_mode(ChecksumMode::Enabled).send().await,
            &format!("GetObject {key} checksum-mode=ENABLED"),
        );
        assert_eq!(get.checksum_crc64_nvme(), Some(c64.as_str()), "GetObject {key} ChecksumCRC64NVME");
        let head = ok(
            client.head_object().bucket(&bucket).key(key).checksum_mode(ChecksumMode::Enabled).send().await,
            &format!("HeadObject {key} checksum-mode=ENABLED"),
        );
        assert_eq!(head.checksum_crc64_nvme(), Some(c64.as_str()), "HeadObject {key} ChecksumCRC64NVME");
        // Without the mode, no checksum: S3 returns them only when asked.
        let plain = ok(client.head_object().bucket(&bucket).key(key).send().await, "HeadObject without mode");
        assert_eq!(plain.checksum_crc64_nvme(), None, "HeadObject {key} without checksum-mode");
    }

    let data = random_bytes(66, 5_000);
    let sha1 = base64(&sha1_bytes(&data));
    ok(
        client
            .put_object()
            .bucket(&bucket)
            .key("sha1")
            .checksum_sha1(&sha1)
            .body(ByteStream::from(data.clone()))
            .send()
            .await,
        "PutObject with the right x-amz-checksum-sha1",
    );
    let head = ok(
        client.head_object().bucket(&bucket).key("sha1").checksum_mode(ChecksumMode::Enabled).send().await,
        "HeadObject sha1 checksum-mode=ENABLED",
    );
    assert_eq!(head.checksum_sha1(), Some(sha1.as_str()), "HeadObject ChecksumSHA1");

    let err = expect_err(
        client
            .put_object()
            .bucket(&bucket)
            .key("bad-64")
            .checksum_crc64_nvme(b64_crc64(crc64nvme(&data) ^ 1))
            .body(ByteStream::from(data.clone()))
            .send()
            .await,
        400,
        Some("BadDigest"),
        "PutObject with a wrong x-amz-checksum-crc64nvme",
    );
    assert!(format!("{err:?}").contains("CRC64NVME"), "the error names the algorithm: {err:?}");
    assert_absent(&client, &bucket, "bad-64", "wrong CRC64NVME").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_checksum_values_are_invalid_requests() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "cksum-form").await;
    let data = b"some bytes".to_vec();
    // What a careless or hostile client sends: not base64, a digest of the wrong length (a
    // CRC32 value in the SHA-256 or CRC64NVME header), a huge value. (An empty header
    // reaches the node as no header at all.)
    let huge = "A".repeat(8_000);
    let cases = [
        ("not-base64", "crc32", "%%%not base64%%%"),
        ("short-sha256", "sha256", "AAAAAA=="),
        ("short-crc64", "crc64nvme", "AAAAAA=="),
        ("huge-crc64", "crc64nvme", huge.as_str()),
    ];
    for (key, header, value) in cases {
        let request = client.put_object().bucket(&bucket).key(key).body(ByteStream::from(data.clone()));
        let request = match header {
            "crc32" => request.checksum_crc32(value),
            "sha256" => request.checksum_sha256(value),
            _ => request.checksum_crc64_nvme(value),
        };
        expect_err(
            request.send().await,
            400,
            Some("InvalidRequest"),
            &format!("PutObject {key} with a malformed x-amz-checksum-{header}"),
        );
        assert_absent(&client, &bucket, key, "malformed checksum").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_part_checksums_are_verified_and_listed() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "cksum-part").await;
    let up = ok(client.create_multipart_upload().bucket(&bucket).key("m").send().await, "CreateMultipartUpload");
    let id = up.upload_id().expect("UploadId");
    let data = random_bytes(67, 30_000);

    expect_err(
        client
            .upload_part()
            .bucket(&bucket)
            .key("m")
            .upload_id(id)
            .part_number(1)
            .checksum_crc32(b64_crc(crc32(&data) ^ 1))
            .body(ByteStream::from(data.clone()))
            .send()
            .await,
        400,
        Some("BadDigest"),
        "UploadPart with a wrong x-amz-checksum-crc32",
    );
    expect_err(
        client
            .upload_part()
            .bucket(&bucket)
            .key("m")
            .upload_id(id)
            .part_number(1)
            .checksum_sha256(base64(&sha256_bytes(b"other")))
            .body(ByteStream::from(data.clone()))
            .send()
            .await,
        400,
        Some("BadDigest"),
        "UploadPart with a wrong x-amz-checksum-sha256",
    );
    let parts = ok(client.list_parts().bucket(&bucket).key("m").upload_id(id).send().await, "ListParts");
    assert!(parts.parts().is_empty(), "a part with a wrong checksum was kept: {:?}", parts.parts());

    let c64 = b64_crc64(crc64nvme(&data));
    let out = ok(
        client
            .upload_part()
            .bucket(&bucket)
            .key("m")
            .upload_id(id)
            .part_number(1)
            .checksum_crc64_nvme(&c64)
            .body(ByteStream::from(data.clone()))
            .send()
            .await,
        "UploadPart with the right x-amz-checksum-crc64nvme",
    );
    assert_eq!(out.checksum_crc64_nvme(), Some(c64.as_str()), "UploadPart echoes the CRC64NVME");
    let parts = ok(client.list_parts().bucket(&bucket).key("m").upload_id(id).send().await, "ListParts");
    let listed: Vec<_> = parts.parts().iter().map(|p| (p.part_number(), p.checksum_crc64_nvme())).collect();
    assert_eq!(listed, vec![(Some(1), Some(c64.as_str()))], "ListParts shows the verified part's checksum");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_composite_checksum_and_attributes() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    // Part checksums are recorded for GetObjectAttributes once the format is raised.
    node.wait_format_raised().await;
    let bucket = create_bucket(&client, "cksum-mpu").await;

    let up = ok(
        client
            .create_multipart_upload()
            .bucket(&bucket)
            .key("m")
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .send()
            .await,
        "CreateMultipartUpload SHA256",
    );
    let id = up.upload_id().expect("UploadId");
    let first = random_bytes(68, 5 * 1024 * 1024);
    let second = random_bytes(69, 1_000);
    let (sha_first, sha_second) = (sha256_bytes(&first), sha256_bytes(&second));
    let p1 = ok(
        client
            .upload_part()
            .bucket(&bucket)
            .key("m")
            .upload_id(id)
            .part_number(1)
            .checksum_sha256(base64(&sha_first))
            .body(ByteStream::from(first.clone()))
            .send()
            .await,
        "UploadPart 1 with its SHA-256",
    );
    // No checksum sent: the node computes the upload's algorithm itself, as S3 does.
    let p2 = ok(
        client
            .upload_part()
            .bucket(&bucket)
            .key("m")
            .upload_id(id)
            .part_number(2)
            .body(ByteStream::from(second.clone()))
            .send()
            .await,
        "UploadPart 2 without a checksum",
    );
    assert_eq!(p2.checksum_sha256(), Some(base64(&sha_second).as_str()), "the upload's algorithm computed for a part");
    let part = |n: i32, etag: Option<&str>, sha: String| {
        CompletedPart::builder().part_number(n).set_e_tag(etag.map(str::to_owned)).checksum_sha256(sha).build()
    };

    // A part checksum in the completion list that is not the uploaded part's: InvalidPart,
    // and the upload stays to be completed properly.
    expect_err(
        client
            .complete_multipart_upload()
            .bucket(&bucket)
            .key("m")
            .upload_id(id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .parts(part(1, p1.e_tag(), base64(&sha_first)))
                    .parts(part(2, p2.e_tag(), base64(&sha256_bytes(b"not part 2"))))
                    .build(),
            )
            .send()
            .await,
        400,
        Some("InvalidPart"),
        "CompleteMultipartUpload with a wrong part checksum",
    );
    assert_absent(&client, &bucket, "m", "completion refused").await;

    let mut raw = sha_first.to_vec();
    raw.extend_from_slice(&sha_second);
    let want = format!("{}-2", base64(&sha256_bytes(&raw)));
    let done = ok(
        client
            .complete_multipart_upload()
            .bucket(&bucket)
            .key("m")
            .upload_id(id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .parts(part(1, p1.e_tag(), base64(&sha_first)))
                    .parts(part(2, p2.e_tag(), base64(&sha_second)))
                    .build(),
            )
            .send()
            .await,
        "CompleteMultipartUpload",
    );
    assert_eq!(done.checksum_sha256(), Some(want.as_str()), "composite SHA-256 on completion");
    assert_eq!(done.checksum_type(), Some(&ChecksumType::Composite), "checksum type on completion");

    let head = ok(
        client.head_object().bucket(&bucket).key("m").checksum_mode(ChecksumMode::Enabled).send().await,
        "HeadObject checksum-mode=ENABLED",
    );
    assert_eq!(head.checksum_sha256(), Some(want.as_str()), "HeadObject composite SHA-256");
    assert_eq!(head.checksum_type(), Some(&ChecksumType::Composite), "HeadObject checksum type");
    let get = ok(
        client.get_object().bucket(&bucket).key("m").checksum_mode(ChecksumMode::Enabled).send().await,
        "GetObject checksum-mode=ENABLED",
    );
    assert_eq!(get.checksum_sha256(), Some(want.as_str()), "GetObject composite SHA-256");
    let body = get.body.collect().await.expect("body").into_bytes();
    assert_bytes_eq(&body, &[first.as_slice(), second.as_slice()].concat(), "multipart object bytes");

    // GetObjectAttributes: the checksum with its type, and the parts one page at a time.
    let attrs = |marker: Option<i32>| {
        client
            .get_object_attributes()
            .bucket(&bucket)
            .key("m")
            .object_attributes(ObjectAttributes::Checksum)
            .object_attributes(ObjectAttributes::ObjectParts)
            .object_attributes(ObjectAttributes::ObjectSize)
            .max_parts(1)
            .set_part_number_marker(marker.map(|m| m.to_string()))
            .send()
    };
    let page = ok(attrs(None).await, "GetObjectAttributes page 1");
    let checksum = page.checksum().expect("Checksum attribute");
    // S3 gives the composite value here without its "-N" (the count is in ObjectParts).
    let want_attr = base64(&sha256_bytes(&raw));
    assert_eq!(checksum.checksum_sha256(), Some(want_attr.as_str()), "GetObjectAttributes composite SHA-256");
    assert_eq!(checksum.checksum_type(), Some(&ChecksumType::Composite), "GetObjectAttributes checksum type");
    assert_eq!(page.object_size(), Some(i64::try_from(first.len() + second.len()).expect("size")));
    let parts = page.object_parts().expect("ObjectParts");
    assert_eq!(parts.total_parts_count(), Some(2));
    assert_eq!(parts.is_truncated(), Some(true), "page 1 of 2 is truncated");
    let listed: Vec<_> = parts.parts().iter().map(|p| (p.part_number(), p.checksum_sha256())).collect();
    assert_eq!(listed, vec![(Some(1), Some(base64(&sha_first).as_str()))], "page 1: part 1 with its SHA-256");
    let next = parts.next_part_number_marker().map(str::to_owned);
    assert_eq!(next.as_deref(), Some("1"));
    let page = ok(attrs(next.and_then(|n| n.parse().ok())).await, "GetObjectAttributes page 2");
    let parts = page.object_parts().expect("ObjectParts");
    assert_eq!(parts.is_truncated(), Some(false), "page 2 of 2 is the last");
    let listed: Vec<_> = parts.parts().iter().map(|p| (p.part_number(), p.size(), p.checksum_sha256())).collect();
    assert_eq!(listed, vec![(Some(2), Some(1_000), Some(base64(&sha_second).as_str()))], "page 2: part 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_checksum_with_sdk_default_part_checksums_and_wrong_whole_checksum() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    // This client adds its own CRC32 trailer to every part: the node must still compute the
    // upload's SHA-1 for each.
    let client = node.client_checksums_when_supported();
    let bucket = create_bucket(&client, "cksum-mpu2").await;

    expect_err(
        client
            .create_multipart_upload()
            .bucket(&bucket)
            .key("odd")
            .checksum_algorithm(ChecksumAlgorithm::from("MD6"))
            .send()
            .await,
        400,
        Some("InvalidRequest"),
        "CreateMultipartUpload with an unknown checksum algorithm",
    );

    let up = ok(
        client
            .create_multipart_upload()
            .bucket(&bucket)
            .key("m")
            .checksum_algorithm(ChecksumAlgorithm::Sha1)
            .send()
            .await,
        "CreateMultipartUpload SHA1",
    );
    let id = up.upload_id().expect("UploadId");
    let data = random_bytes(70, 20_000);
    let p1 = ok(
        client
            .upload_part()
            .bucket(&bucket)
            .key("m")
            .upload_id(id)
            .part_number(1)
            .body(ByteStream::from(data.clone()))
            .send()
            .await,
        "UploadPart with the SDK's default checksum",
    );
    let want = format!("{}-1", base64(&sha1_bytes(&sha1_bytes(&data))));
    let complete_listing = |whole: Option<String>, part_sha1: Option<String>| {
        client
            .complete_multipart_upload()
            .bucket(&bucket)
            .key("m")
            .upload_id(id)
            .set_checksum_sha1(whole)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .parts(
                        CompletedPart::builder()
                            .part_number(1)
                            .set_e_tag(p1.e_tag().map(str::to_owned))
                            .set_checksum_sha1(part_sha1)
                            .build(),
                    )
                    .build(),
            )
            .send()
    };
    // A composite upload's completion must name each part's checksum, as S3 asks.
    let refused = complete_listing(Some(want.clone()), None).await;
    expect_err(refused, 400, Some("InvalidRequest"), "CompleteMultipartUpload without the part's SHA-1");
    let part_sha1 = base64(&sha1_bytes(&data));
    let complete = |whole: Option<String>| complete_listing(whole, Some(part_sha1.clone()));
    expect_err(
        complete(Some(format!("{}-1", base64(&sha1_bytes(b"other"))))).await,
        400,
        Some("BadDigest"),
        "CompleteMultipartUpload with a wrong whole-object SHA-1",
    );
    assert_absent(&client, &bucket, "m", "completion with a wrong checksum").await;
    let done = ok(complete(Some(want.clone())).await, "CompleteMultipartUpload with the right composite SHA-1");
    assert_eq!(done.checksum_sha1(), Some(want.as_str()), "composite SHA-1 of one part");
    let head = ok(
        client.head_object().bucket(&bucket).key("m").checksum_mode(ChecksumMode::Enabled).send().await,
        "HeadObject checksum-mode=ENABLED",
    );
    assert_eq!(head.checksum_sha1(), Some(want.as_str()), "HeadObject composite SHA-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_part_copy_gets_the_upload_checksum() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "cksum-copy").await;
    let source = random_bytes(71, 40_000);
    put(&client, &bucket, "src", &source).await;
    let up = ok(
        client
            .create_multipart_upload()
            .bucket(&bucket)
            .key("m")
            .checksum_algorithm(ChecksumAlgorithm::Crc32C)
            .send()
            .await,
        "CreateMultipartUpload CRC32C",
    );
    let id = up.upload_id().expect("UploadId");
    let copied = ok(
        client
            .upload_part_copy()
            .bucket(&bucket)
            .key("m")
            .upload_id(id)
            .part_number(1)
            .copy_source(format!("{bucket}/src"))
            .copy_source_range("bytes=0-9999")
            .send()
            .await,
        "UploadPartCopy of a range",
    );
    let result = copied.copy_part_result().expect("CopyPartResult");
    let part_crc = b64_crc(crc32c(&source[..10_000]));
    assert_eq!(result.checksum_crc32_c(), Some(part_crc.as_str()), "the copied range's CRC32C");
    let done = ok(
        client
            .complete_multipart_upload()
            .bucket(&bucket)
            .key("m")
            .upload_id(id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .parts(
                        CompletedPart::builder()
                            .part_number(1)
                            .set_e_tag(result.e_tag().map(str::to_owned))
                            .checksum_crc32_c(&part_crc)
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await,
        "CompleteMultipartUpload of the copied part",
    );
    let want = format!("{}-1", b64_crc(crc32c(&crc32c(&source[..10_000]).to_be_bytes())));
    assert_eq!(done.checksum_crc32_c(), Some(want.as_str()), "composite CRC32C of a copied part");
}

/// One CRC algorithm as the test drives it: its SDK name, its value of a body computed here
/// (bitwise, independent of the node's code), and its field among an answer's checksums.
struct Crc {
    algorithm: ChecksumAlgorithm,
    of: fn(&[u8]) -> String,
    pick: PickCrc,
}

/// Picks an answer's value of one CRC among its CRC32, CRC32C and CRC64NVME fields.
type PickCrc = fn(Option<&str>, Option<&str>, Option<&str>) -> Option<String>;

const FULL_OBJECT_CRCS: [Crc; 3] = [
    Crc { algorithm: ChecksumAlgorithm::Crc32, of: |b| b64_crc(crc32(b)), pick: |a, _, _| a.map(str::to_owned) },
    Crc { algorithm: ChecksumAlgorithm::Crc32C, of: |b| b64_crc(crc32c(b)), pick: |_, b, _| b.map(str::to_owned) },
    Crc {
        algorithm: ChecksumAlgorithm::Crc64Nvme,
        of: |b| b64_crc64(crc64nvme(b)),
        pick: |_, _, c| c.map(str::to_owned),
    },
];

/// FULL_OBJECT multipart checksums through three regions, for each CRC S3 allows them with: the
/// upload is created in one region, completed there with the CRC of the whole body (a wrong one
/// is 400 BadDigest and keeps the upload; the wrong checksum type is 400 InvalidRequest), and
/// the other regions return the same CRC with `x-amz-checksum-type: FULL_OBJECT` on HEAD and GET,
/// and in GetObjectAttributes with each part's CRC, one page at a time. SHA-1 and SHA-256 are
/// COMPOSITE only and CRC-64/NVME FULL_OBJECT only (400 InvalidRequest), as S3 answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_object_multipart_checksums_through_every_region() {
    let cluster = harness::cluster::shared_cluster().await;
    cluster.wait_format_raised().await;
    let a = cluster.node(0).client();
    let bucket = create_bucket(&a, "cksum-full").await;

    let refused = [
        (Some(ChecksumAlgorithm::Sha256), Some(ChecksumType::FullObject), "FULL_OBJECT with SHA256"),
        (Some(ChecksumAlgorithm::Sha1), Some(ChecksumType::FullObject), "FULL_OBJECT with SHA1"),
        (Some(ChecksumAlgorithm::Crc64Nvme), Some(ChecksumType::Composite), "COMPOSITE with CRC64NVME"),
        (None, Some(ChecksumType::FullObject), "a checksum type without an algorithm"),
        (Some(ChecksumAlgorithm::Crc32), Some(ChecksumType::from("WHOLE")), "an unknown checksum type"),
    ];
    for (algorithm, kind, what) in refused {
        let create = a
            .create_multipart_upload()
            .bucket(&bucket)
            .key("refused")
            .set_checksum_algorithm(algorithm)
            .set_checksum_type(kind)
            .send()
            .await;
        expect_err(create, 400, Some("InvalidRequest"), &format!("CreateMultipartUpload {what}"));
    }
    let uploads = ok(a.list_multipart_uploads().bucket(&bucket).send().await, "ListMultipartUploads");
    assert!(uploads.uploads().is_empty(), "a refused creation left an upload: {:?}", uploads.uploads());

    for (i, crc) in FULL_OBJECT_CRCS.iter().enumerate() {
        let key = format!("full-{}", crc.algorithm.as_str());
        // Created and completed through one region, read through the two others.
        let writer = cluster.node(i % 3).client();
        let (reader, attributes) = (cluster.node((i + 1) % 3).client(), cluster.node((i + 2) % 3).client());
        let first = random_bytes(80 + i as u64, 5 * 1024 * 1024);
        let second = random_bytes(90 + i as u64, 1_234);
        let body = [first.as_slice(), second.as_slice()].concat();
        let whole = (crc.of)(&body);

        // CRC-64/NVME is FULL_OBJECT without being asked; the others are asked.
        let kind = (crc.algorithm != ChecksumAlgorithm::Crc64Nvme).then_some(ChecksumType::FullObject);
        let created = ok(
            writer
                .create_multipart_upload()
                .bucket(&bucket)
                .key(&key)
                .checksum_algorithm(crc.algorithm.clone())
                .set_checksum_type(kind)
                .send()
                .await,
            &format!("CreateMultipartUpload {key}"),
        );
        assert_eq!(created.checksum_type(), Some(&ChecksumType::FullObject), "{key}: the upload's checksum type");
        let id = created.upload_id().expect("UploadId");
        let mut parts = Vec::new();
        for (n, data) in [(1, &first), (2, &second)] {
            let out = ok(
                writer
                    .upload_part()
                    .bucket(&bucket)
                    .key(&key)
                    .upload_id(id)
                    .part_number(n)
                    .body(ByteStream::from(data.clone()))
                    .send()
                    .await,
                &format!("UploadPart {key} {n}"),
            );
            let echoed = (crc.pick)(out.checksum_crc32(), out.checksum_crc32_c(), out.checksum_crc64_nvme());
            assert_eq!(echoed, Some((crc.of)(data)), "{key}: part {n}'s CRC computed by the node");
            parts.push(CompletedPart::builder().part_number(n).set_e_tag(out.e_tag().map(str::to_owned)).build());
        }
        let complete = |value: String, kind: ChecksumType| {
            let request = writer
                .complete_multipart_upload()
                .bucket(&bucket)
                .key(&key)
                .upload_id(id)
                .checksum_type(kind)
                .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts.clone())).build());
            match crc.algorithm {
                ChecksumAlgorithm::Crc32 => request.checksum_crc32(value),
                ChecksumAlgorithm::Crc32C => request.checksum_crc32_c(value),
                _ => request.checksum_crc64_nvme(value),
            }
            .send()
        };
        let wrong = (crc.of)(&body[1..]);
        expect_err(
            complete(wrong, ChecksumType::FullObject).await,
            400,
            Some("BadDigest"),
            &format!("CompleteMultipartUpload {key} with the CRC of other bytes"),
        );
        expect_err(
            complete(whole.clone(), ChecksumType::Composite).await,
            400,
            Some("InvalidRequest"),
            &format!("CompleteMultipartUpload {key} asking COMPOSITE of a FULL_OBJECT upload"),
        );
        let kept = ok(writer.list_parts().bucket(&bucket).key(&key).upload_id(id).send().await, "ListParts");
        assert_eq!(kept.parts().len(), 2, "{key}: a refused completion keeps the upload to retry");
        assert_eq!(kept.checksum_type(), Some(&ChecksumType::FullObject), "{key}: ListParts' checksum type");
        let done = ok(complete(whole.clone(), ChecksumType::FullObject).await, &format!("Complete {key}"));
        let value = (crc.pick)(done.checksum_crc32(), done.checksum_crc32_c(), done.checksum_crc64_nvme());
        assert_eq!(value.as_deref(), Some(whole.as_str()), "{key}: the whole object's CRC on completion");
        assert_eq!(done.checksum_type(), Some(&ChecksumType::FullObject), "{key}: type on completion");

        let head = ok(
            reader.head_object().bucket(&bucket).key(&key).checksum_mode(ChecksumMode::Enabled).send().await,
            &format!("HeadObject {key} through another region"),
        );
        let value = (crc.pick)(head.checksum_crc32(), head.checksum_crc32_c(), head.checksum_crc64_nvme());
        assert_eq!(value.as_deref(), Some(whole.as_str()), "{key}: HeadObject's CRC");
        assert_eq!(head.checksum_type(), Some(&ChecksumType::FullObject), "{key}: HeadObject's type");
        let get = ok(
            reader.get_object().bucket(&bucket).key(&key).checksum_mode(ChecksumMode::Enabled).send().await,
            &format!("GetObject {key} through another region"),
        );
        let value = (crc.pick)(get.checksum_crc32(), get.checksum_crc32_c(), get.checksum_crc64_nvme());
        assert_eq!(value.as_deref(), Some(whole.as_str()), "{key}: GetObject's CRC");
        assert_eq!(get.checksum_type(), Some(&ChecksumType::FullObject), "{key}: GetObject's type");
        let got = get.body.collect().await.expect("body").into_bytes();
        assert_eq!((crc.of)(&got), whole, "{key}: the bytes read through another region match the CRC");

        let page = |marker: Option<&str>| {
            attributes
                .get_object_attributes()
                .bucket(&bucket)
                .key(&key)
                .object_attributes(ObjectAttributes::Checksum)
                .object_attributes(ObjectAttributes::ObjectParts)
                .max_parts(1)
                .set_part_number_marker(marker.map(str::to_owned))
                .send()
        };
        let first_page = ok(page(None).await, &format!("GetObjectAttributes {key} page 1"));
        let checksum = first_page.checksum().expect("Checksum");
        let value = (crc.pick)(checksum.checksum_crc32(), checksum.checksum_crc32_c(), checksum.checksum_crc64_nvme());
        assert_eq!(value.as_deref(), Some(whole.as_str()), "{key}: GetObjectAttributes' CRC");
        assert_eq!(checksum.checksum_type(), Some(&ChecksumType::FullObject), "{key}: GetObjectAttributes' type");
        let mut listed = Vec::new();
        let mut marker: Option<String> = None;
        for expected_page in 1..=2 {
            let answer =
                if expected_page == 1 { first_page.clone() } else { ok(page(marker.as_deref()).await, "page 2") };
            let parts = answer.object_parts().expect("ObjectParts");
            assert_eq!(parts.total_parts_count(), Some(2), "{key}: TotalPartsCount");
            assert_eq!(parts.is_truncated(), Some(expected_page == 1), "{key}: page {expected_page} truncated");
            for part in parts.parts() {
                let value = (crc.pick)(part.checksum_crc32(), part.checksum_crc32_c(), part.checksum_crc64_nvme());
                listed.push((part.part_number(), part.size(), value));
            }
            marker = parts.next_part_number_marker().map(str::to_owned);
        }
        let want = vec![
            (Some(1), Some(first.len() as i64), Some((crc.of)(&first))),
            (Some(2), Some(second.len() as i64), Some((crc.of)(&second))),
        ];
        assert_eq!(listed, want, "{key}: each part with its CRC, one per page");
    }
}
