//! Object operations against a real node: PutObject/GetObject/HeadObject, ranges, conditional
//! requests, metadata, DeleteObject(s), CopyObject, NoSuchKey, key length and path-traversal keys.

use crate::harness;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::{ByteStream, DateTime, DateTimeFormat};
use aws_sdk_s3::types::{Delete, MetadataDirective, ObjectIdentifier};
use harness::*;

async fn presigned_get_url(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> String {
    let req = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .presigned(PresigningConfig::expires_in(Duration::from_secs(600)).expect("presign config"))
        .await
        .unwrap_or_else(|e| panic!("presign GET {bucket}/{key}: {e}"));
    req.uri().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_round_trip_and_etag() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "roundtrip").await;
    for (i, len) in [0usize, 1, 1000, 64 * 1024 + 7, 3 * MIB + 5].into_iter().enumerate() {
        let key = format!("obj-{len}");
        let data = random_bytes(100 + i as u64, len);
        let etag = put(&client, &bucket, &key, &data).await;
        assert_eq!(etag, etag_of(&data), "PutObject ETag of {len} bytes");

        let out = ok(client.get_object().bucket(&bucket).key(&key).send().await, "GetObject");
        assert_eq!(out.e_tag(), Some(etag_of(&data).as_str()), "GetObject ETag of {len} bytes");
        assert_eq!(out.content_length(), Some(len as i64), "GetObject Content-Length of {len} bytes");
        assert!(out.last_modified().is_some(), "GetObject without Last-Modified");
        let body = out.body.collect().await.expect("body").into_bytes();
        assert_bytes_eq(&body, &data, &format!("GetObject body of {len} bytes"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overwrite_replaces_content_and_etag() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "overwrite").await;
    let v1 = random_bytes(1, 5000);
    let v2 = random_bytes(2, 300);
    put(&client, &bucket, "k", &v1).await;
    let etag2 = put(&client, &bucket, "k", &v2).await;
    assert_eq!(etag2, etag_of(&v2));
    assert_bytes_eq(&get_bytes(&client, &bucket, "k").await, &v2, "after overwrite");
    let head = ok(client.head_object().bucket(&bucket).key("k").send().await, "HeadObject");
    assert_eq!(head.content_length(), Some(300), "HeadObject size after overwrite");
    assert_eq!(list_all_keys(&client, &bucket).await, vec!["k".to_owned()], "one key after overwrite");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_requests() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "range").await;
    let data = random_bytes(7, 100);
    put(&client, &bucket, "r", &data).await;

    for (range, want_cr, from, to) in [
        ("bytes=0-9", "bytes 0-9/100", 0usize, 10usize),
        ("bytes=-5", "bytes 95-99/100", 95, 100),
        ("bytes=10-", "bytes 10-99/100", 10, 100),
        ("bytes=42-42", "bytes 42-42/100", 42, 43),
        // An end past the size is clipped to the last byte.
        ("bytes=90-200", "bytes 90-99/100", 90, 100),
    ] {
        let out = ok(
            client.get_object().bucket(&bucket).key("r").range(range).send().await,
            &format!("GetObject Range {range}"),
        );
        assert_eq!(out.content_range(), Some(want_cr), "Content-Range for {range}");
        assert_eq!(out.content_length(), Some((to - from) as i64), "Content-Length for {range}");
        assert_eq!(out.e_tag(), Some(etag_of(&data).as_str()), "ETag for {range}");
        let body = out.body.collect().await.expect("body").into_bytes();
        assert_bytes_eq(&body, &data[from..to], &format!("body for {range}"));
    }

    expect_err(
        client.get_object().bucket(&bucket).key("r").range("bytes=100-").send().await,
        416,
        Some("InvalidRange"),
        "GetObject Range bytes=100- of a 100-byte object",
    );
    expect_err(
        client.get_object().bucket(&bucket).key("r").range("bytes=500-600").send().await,
        416,
        Some("InvalidRange"),
        "GetObject Range bytes=500-600 of a 100-byte object",
    );

    // The status codes themselves, seen by a plain HTTP client.
    let url = presigned_get_url(&client, &bucket, "r").await;
    let http = http_client();
    let resp = http.get(&url).header("range", "bytes=0-9").send().await.expect("ranged GET");
    assert_eq!(resp.status().as_u16(), 206, "ranged GET status");
    assert_eq!(
        resp.headers().get("content-range").and_then(|v| v.to_str().ok()),
        Some("bytes 0-9/100"),
        "ranged GET Content-Range"
    );
    assert_eq!(&resp.bytes().await.expect("body")[..], &data[..10]);
    let resp = http.get(&url).header("range", "bytes=100-").send().await.expect("unsatisfiable GET");
    assert_eq!(resp.status().as_u16(), 416, "unsatisfiable range status");
    let resp = http.get(&url).send().await.expect("plain GET");
    assert_eq!(resp.status().as_u16(), 200, "GET without Range");
    assert_eq!(&resp.bytes().await.expect("body")[..], &data[..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_get_and_head() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "cond").await;
    let data = random_bytes(9, 2048);
    let etag = put(&client, &bucket, "c", &data).await;
    let other_etag = etag_of(b"something else");
    let head = ok(client.head_object().bucket(&bucket).key("c").send().await, "HeadObject");
    let lm = *head.last_modified().expect("Last-Modified");
    let hour_before = DateTime::from_secs(lm.secs() - 3600);
    let hour_after = DateTime::from_secs(lm.secs() + 3600);

    // If-Match
    let out = ok(
        client.get_object().bucket(&bucket).key("c").if_match(&etag).send().await,
        "GET If-Match with the object's ETag",
    );
    assert_bytes_eq(&out.body.collect().await.expect("body").into_bytes(), &data, "If-Match body");
    ok(client.get_object().bucket(&bucket).key("c").if_match("*").send().await, "GET If-Match: *");
    expect_err(
        client.get_object().bucket(&bucket).key("c").if_match(&other_etag).send().await,
        412,
        Some("PreconditionFailed"),
        "GET If-Match with another ETag",
    );

    // If-None-Match
    expect_err(
        client.get_object().bucket(&bucket).key("c").if_none_match(&etag).send().await,
        304,
        None,
        "GET If-None-Match with the object's ETag",
    );
    ok(
        client.get_object().bucket(&bucket).key("c").if_none_match(&other_etag).send().await,
        "GET If-None-Match with another ETag",
    );

    // If-Modified-Since (second granularity, as in HTTP dates)
    expect_err(
        client.get_object().bucket(&bucket).key("c").if_modified_since(lm).send().await,
        304,
        None,
        "GET If-Modified-Since = Last-Modified",
    );
    ok(
        client.get_object().bucket(&bucket).key("c").if_modified_since(hour_before).send().await,
        "GET If-Modified-Since = Last-Modified - 1h",
    );

    // If-Unmodified-Since
    expect_err(
        client.get_object().bucket(&bucket).key("c").if_unmodified_since(hour_before).send().await,
        412,
        Some("PreconditionFailed"),
        "GET If-Unmodified-Since = Last-Modified - 1h",
    );
    ok(
        client.get_object().bucket(&bucket).key("c").if_unmodified_since(lm).send().await,
        "GET If-Unmodified-Since = Last-Modified",
    );
    ok(
        client.get_object().bucket(&bucket).key("c").if_unmodified_since(hour_after).send().await,
        "GET If-Unmodified-Since = Last-Modified + 1h",
    );

    // Precedence (RFC 7232 / S3): If-Match true + If-Unmodified-Since false -> 200.
    ok(
        client.get_object().bucket(&bucket).key("c").if_match(&etag).if_unmodified_since(hour_before).send().await,
        "GET If-Match (true) + If-Unmodified-Since (false)",
    );
    // If-None-Match false + If-Modified-Since true -> 304.
    expect_err(
        client.get_object().bucket(&bucket).key("c").if_none_match(&etag).if_modified_since(hour_before).send().await,
        304,
        None,
        "GET If-None-Match (match) + If-Modified-Since (modified)",
    );

    // HEAD answers the same way.
    expect_err(
        client.head_object().bucket(&bucket).key("c").if_none_match(&etag).send().await,
        304,
        None,
        "HEAD If-None-Match with the object's ETag",
    );
    expect_err(
        client.head_object().bucket(&bucket).key("c").if_match(&other_etag).send().await,
        412,
        None,
        "HEAD If-Match with another ETag",
    );
    ok(
        client.head_object().bucket(&bucket).key("c").if_match(&etag).send().await,
        "HEAD If-Match with the object's ETag",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_object_fields() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "head").await;
    let data = random_bytes(11, 12345);
    ok(
        client
            .put_object()
            .bucket(&bucket)
            .key("h")
            .metadata("color", "blue")
            .metadata("owner-name", "alice")
            .body(ByteStream::from(data.clone()))
            .send()
            .await,
        "PutObject with metadata",
    );
    let head = ok(client.head_object().bucket(&bucket).key("h").send().await, "HeadObject");
    assert_eq!(head.content_length(), Some(12345), "HeadObject Content-Length");
    assert_eq!(head.e_tag(), Some(etag_of(&data).as_str()), "HeadObject ETag");
    assert!(head.last_modified().is_some(), "HeadObject Last-Modified");
    let meta = head.metadata().cloned().unwrap_or_default();
    let want: HashMap<String, String> =
        [("color", "blue"), ("owner-name", "alice")].into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    assert_eq!(meta, want, "HeadObject x-amz-meta-*");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_metadata_is_kept_and_returned() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "meta").await;
    let expires = DateTime::from_secs(1_900_000_000);
    ok(
        client
            .put_object()
            .bucket(&bucket)
            .key("m.json.gz")
            .content_type("application/json; charset=utf-8")
            .content_disposition("attachment; filename=\"report.json.gz\"")
            .content_encoding("gzip")
            .cache_control("max-age=3600, must-revalidate")
            .expires(expires)
            .metadata("project", "meridian")
            .metadata("reel", "42")
            .body(ByteStream::from_static(b"not really gzip"))
            .send()
            .await,
        "PutObject with standard metadata",
    );

    let get = ok(client.get_object().bucket(&bucket).key("m.json.gz").send().await, "GetObject");
    let head = ok(client.head_object().bucket(&bucket).key("m.json.gz").send().await, "HeadObject");
    let want_meta: HashMap<String, String> =
        [("project", "meridian"), ("reel", "42")].into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    for (what, ct, cd, ce, cc, ex, meta) in [
        (
            "GetObject",
            get.content_type(),
            get.content_disposition(),
            get.content_encoding(),
            get.cache_control(),
            get.expires_string(),
            get.metadata(),
        ),
        (
            "HeadObject",
            head.content_type(),
            head.content_disposition(),
            head.content_encoding(),
            head.cache_control(),
            head.expires_string(),
            head.metadata(),
        ),
    ] {
        assert_eq!(ct, Some("application/json; charset=utf-8"), "{what} Content-Type");
        assert_eq!(cd, Some("attachment; filename=\"report.json.gz\""), "{what} Content-Disposition");
        assert_eq!(ce, Some("gzip"), "{what} Content-Encoding");
        assert_eq!(cc, Some("max-age=3600, must-revalidate"), "{what} Cache-Control");
        let ex = ex.unwrap_or_else(|| panic!("{what}: no Expires header"));
        let parsed = DateTime::from_str(ex, DateTimeFormat::HttpDate)
            .unwrap_or_else(|e| panic!("{what}: Expires {ex:?} is not an HTTP date: {e}"));
        assert_eq!(parsed.secs(), expires.secs(), "{what} Expires ({ex})");
        assert_eq!(meta.cloned().unwrap_or_default(), want_meta, "{what} x-amz-meta-*");
    }
    let body = get.body.collect().await.expect("body").into_bytes();
    assert_eq!(&body[..], b"not really gzip", "body stored as sent (no decoding)");

    // Without a Content-Type the object still gets one (S3 defaults to binary/octet-stream).
    put(&client, &bucket, "plain", b"x").await;
    let head = ok(client.head_object().bucket(&bucket).key("plain").send().await, "HeadObject");
    assert!(
        head.content_type().is_some_and(|t| !t.is_empty()),
        "object without Content-Type: {:?}",
        head.content_type()
    );
    assert_eq!(head.content_encoding(), None, "Content-Encoding invented for a plain PUT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_key_is_no_such_key() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "nokey").await;
    expect_err(
        client.get_object().bucket(&bucket).key("nope").send().await,
        404,
        Some("NoSuchKey"),
        "GetObject of a missing key",
    );
    expect_err(client.head_object().bucket(&bucket).key("nope").send().await, 404, None, "HeadObject of a missing key");
    expect_err(
        client.copy_object().bucket(&bucket).key("dest").copy_source(format!("{bucket}/nope")).send().await,
        404,
        Some("NoSuchKey"),
        "CopyObject from a missing key",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_object_is_idempotent() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "del").await;
    put(&client, &bucket, "d", b"bye").await;
    let out = ok(client.delete_object().bucket(&bucket).key("d").send().await, "DeleteObject");
    // S3 answers 204 No Content; the SDK hides the status, but the call must succeed.
    drop(out);
    expect_err(
        client.get_object().bucket(&bucket).key("d").send().await,
        404,
        Some("NoSuchKey"),
        "GetObject after DeleteObject",
    );
    ok(client.delete_object().bucket(&bucket).key("d").send().await, "second DeleteObject of the same key");
    ok(
        client.delete_object().bucket(&bucket).key("never-existed").send().await,
        "DeleteObject of a key that never existed",
    );
    assert!(list_all_keys(&client, &bucket).await.is_empty(), "bucket not empty after deletes");
}

fn ids(keys: &[&str]) -> Vec<ObjectIdentifier> {
    keys.iter().map(|k| ObjectIdentifier::builder().key(*k).build().expect("ObjectIdentifier")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_objects_batch_and_quiet() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "delmany").await;
    for k in ["a", "b", "c", "d", "e"] {
        put(&client, &bucket, k, k.as_bytes()).await;
    }

    let out = ok(
        client
            .delete_objects()
            .bucket(&bucket)
            .delete(Delete::builder().set_objects(Some(ids(&["a", "b", "missing"]))).build().expect("Delete"))
            .send()
            .await,
        "DeleteObjects (verbose)",
    );
    let deleted: BTreeSet<&str> = out.deleted().iter().filter_map(|d| d.key()).collect();
    assert_eq!(
        deleted,
        BTreeSet::from(["a", "b", "missing"]),
        "DeleteObjects reports every requested key (a missing key counts as deleted)"
    );
    assert!(out.errors().is_empty(), "DeleteObjects errors: {:?}", out.errors());

    let out = ok(
        client
            .delete_objects()
            .bucket(&bucket)
            .delete(Delete::builder().set_objects(Some(ids(&["c", "d"]))).quiet(true).build().expect("Delete"))
            .send()
            .await,
        "DeleteObjects (quiet)",
    );
    assert!(out.deleted().is_empty(), "quiet DeleteObjects must not list deleted keys: {:?}", out.deleted());
    assert!(out.errors().is_empty(), "quiet DeleteObjects errors: {:?}", out.errors());

    assert_eq!(list_all_keys(&client, &bucket).await, vec!["e".to_owned()], "keys left after both DeleteObjects");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_object_metadata_directives() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let src_bucket = create_bucket(&client, "copysrc").await;
    let dst_bucket = create_bucket(&client, "copydst").await;
    let data = random_bytes(21, 70_000);
    ok(
        client
            .put_object()
            .bucket(&src_bucket)
            .key("src/orig.bin")
            .content_type("video/mp4")
            .cache_control("no-cache")
            .metadata("origin", "camera-1")
            .body(ByteStream::from(data.clone()))
            .send()
            .await,
        "PutObject source",
    );
    let meta = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    };

    // Same bucket, default directive (COPY).
    let out = ok(
        client
            .copy_object()
            .bucket(&src_bucket)
            .key("copy/same-bucket.bin")
            .copy_source(format!("{src_bucket}/src/orig.bin"))
            .send()
            .await,
        "CopyObject within the bucket",
    );
    assert_eq!(
        out.copy_object_result().and_then(|r| r.e_tag()),
        Some(etag_of(&data).as_str()),
        "CopyObject result ETag"
    );
    // Other bucket, explicit COPY.
    ok(
        client
            .copy_object()
            .bucket(&dst_bucket)
            .key("copied.bin")
            .copy_source(format!("{src_bucket}/src/orig.bin"))
            .metadata_directive(MetadataDirective::Copy)
            .send()
            .await,
        "CopyObject to another bucket (COPY)",
    );
    for (b, k) in [(&src_bucket, "copy/same-bucket.bin"), (&dst_bucket, "copied.bin")] {
        let head = ok(client.head_object().bucket(b).key(k).send().await, "HeadObject copy");
        assert_eq!(head.content_type(), Some("video/mp4"), "{b}/{k} Content-Type (COPY)");
        assert_eq!(head.cache_control(), Some("no-cache"), "{b}/{k} Cache-Control (COPY)");
        assert_eq!(
            head.metadata().cloned().unwrap_or_default(),
            meta(&[("origin", "camera-1")]),
            "{b}/{k} metadata (COPY)"
        );
        assert_eq!(head.e_tag(), Some(etag_of(&data).as_str()), "{b}/{k} ETag");
        assert_bytes_eq(&get_bytes(&client, b, k).await, &data, &format!("{b}/{k} body"));
    }

    // REPLACE: metadata comes from the request only.
    ok(
        client
            .copy_object()
            .bucket(&dst_bucket)
            .key("replaced.bin")
            .copy_source(format!("{src_bucket}/src/orig.bin"))
            .metadata_directive(MetadataDirective::Replace)
            .content_type("application/octet-stream")
            .metadata("stage", "final")
            .send()
            .await,
        "CopyObject REPLACE",
    );
    let head = ok(client.head_object().bucket(&dst_bucket).key("replaced.bin").send().await, "HeadObject replaced");
    assert_eq!(head.content_type(), Some("application/octet-stream"), "Content-Type (REPLACE)");
    assert_eq!(head.cache_control(), None, "Cache-Control must not survive REPLACE");
    assert_eq!(head.metadata().cloned().unwrap_or_default(), meta(&[("stage", "final")]), "metadata (REPLACE)");
    assert_bytes_eq(&get_bytes(&client, &dst_bucket, "replaced.bin").await, &data, "replaced body");

    // Copy onto itself with REPLACE updates the metadata in place.
    ok(
        client
            .copy_object()
            .bucket(&src_bucket)
            .key("src/orig.bin")
            .copy_source(format!("{src_bucket}/src/orig.bin"))
            .metadata_directive(MetadataDirective::Replace)
            .metadata("origin", "camera-2")
            .send()
            .await,
        "CopyObject onto itself (REPLACE)",
    );
    let head = ok(client.head_object().bucket(&src_bucket).key("src/orig.bin").send().await, "HeadObject self-copy");
    assert_eq!(
        head.metadata().cloned().unwrap_or_default(),
        meta(&[("origin", "camera-2")]),
        "metadata after self-copy"
    );
    assert_bytes_eq(&get_bytes(&client, &src_bucket, "src/orig.bin").await, &data, "body after self-copy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_length_limit() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "keylen").await;
    // 1024 bytes of UTF-8, multi-byte characters included (2 + 1022).
    let key_1024 = format!("é{}", "k".repeat(1022));
    assert_eq!(key_1024.len(), 1024);
    put(&client, &bucket, &key_1024, b"longest").await;
    assert_eq!(get_bytes(&client, &bucket, &key_1024).await, b"longest");
    assert_eq!(list_all_keys(&client, &bucket).await, vec![key_1024.clone()]);

    let key_1025 = "k".repeat(1025);
    expect_err(
        client.put_object().bucket(&bucket).key(&key_1025).body(ByteStream::from_static(b"too long")).send().await,
        400,
        Some("KeyTooLongError"),
        "PutObject with a 1025-byte key",
    );
    assert_eq!(list_all_keys(&client, &bucket).await, vec![key_1024], "a refused key must not be stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_traversal_keys_are_ordinary_keys() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "traversal").await;
    let keys = ["../../etc/passwd", "a/../../b", "./x", "../../../../../../../../tmp/evil"];
    for (i, k) in keys.iter().enumerate() {
        let data = format!("content of {k} #{i}").into_bytes();
        put(&client, &bucket, k, &data).await;
    }
    for (i, k) in keys.iter().enumerate() {
        let data = format!("content of {k} #{i}").into_bytes();
        assert_eq!(get_bytes(&client, &bucket, k).await, data, "GET {k:?}");
        let head = ok(client.head_object().bucket(&bucket).key(*k).send().await, "HEAD");
        assert_eq!(head.content_length(), Some(data.len() as i64), "HEAD {k:?}");
    }
    let mut want: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
    want.sort();
    assert_eq!(list_all_keys(&client, &bucket).await, want, "listing of traversal keys");
    // Listed exactly, also with a prefix that contains the dots.
    let out = ok(client.list_objects_v2().bucket(&bucket).prefix("../../").send().await, "ListObjectsV2 prefix ../../");
    let listed: Vec<&str> = out.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(listed, vec!["../../../../../../../../tmp/evil", "../../etc/passwd"], "prefix ../../");

    // The keys never became paths: no file named after them anywhere in the node's tree
    // (config, data dir, working dir), which is deep enough to catch `../` escapes.
    let offenders: Vec<_> = all_files(node.root())
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "passwd" || n == "evil"))
        .collect();
    assert!(offenders.is_empty(), "object keys leaked into the filesystem: {offenders:?}");
    assert!(!std::path::Path::new("/tmp/evil").exists(), "a key escaped to /tmp/evil");

    // Deleting them deletes exactly them.
    for k in keys {
        ok(client.delete_object().bucket(&bucket).key(k).send().await, "DeleteObject");
    }
    assert!(list_all_keys(&client, &bucket).await.is_empty());
}
