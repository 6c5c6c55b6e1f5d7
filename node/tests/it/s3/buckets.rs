//! Bucket operations against a real node: CreateBucket (name rules, re-create), HeadBucket,
//! DeleteBucket, ListBuckets, GetBucketLocation, NoSuchBucket.

use crate::harness;

use aws_sdk_s3::primitives::ByteStream;
use harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_head_list_delete_bucket() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "lifecycle").await;

    ok(client.head_bucket().bucket(&bucket).send().await, "HeadBucket of a bucket just created");

    let list = ok(client.list_buckets().send().await, "ListBuckets");
    let names: Vec<&str> = list.buckets().iter().filter_map(|b| b.name()).collect();
    assert!(names.contains(&bucket.as_str()), "ListBuckets does not list {bucket}: {names:?}");
    let entry = list.buckets().iter().find(|b| b.name() == Some(bucket.as_str())).expect("listed");
    assert!(entry.creation_date().is_some(), "ListBuckets entry of {bucket} has no CreationDate");

    ok(client.delete_bucket().bucket(&bucket).send().await, "DeleteBucket of an empty bucket");
    expect_err(client.head_bucket().bucket(&bucket).send().await, 404, None, "HeadBucket after DeleteBucket");
    let list = ok(client.list_buckets().send().await, "ListBuckets after delete");
    assert!(
        !list.buckets().iter().any(|b| b.name() == Some(bucket.as_str())),
        "deleted bucket {bucket} is still listed"
    );
    // The name is free again.
    ok(client.create_bucket().bucket(&bucket).send().await, "re-CreateBucket after DeleteBucket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_missing_bucket_is_404() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let missing = unique_bucket("never-created");
    expect_err(client.head_bucket().bucket(&missing).send().await, 404, None, "HeadBucket of a missing bucket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_bucket_names_are_refused() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let too_long = "a".repeat(64);
    for name in ["AB", "a", "ab", "-abc", "abc-", "a..b", "192.168.1.1", "Upper-case", "under_score", too_long.as_str()]
    {
        expect_err(
            client.create_bucket().bucket(name).send().await,
            400,
            Some("InvalidBucketName"),
            &format!("CreateBucket {name:?}"),
        );
    }
    // None of them exists afterwards (a name the gateway refuses must not be half-created).
    let list = ok(client.list_buckets().send().await, "ListBuckets");
    for b in list.buckets() {
        let name = b.name().unwrap_or_default();
        assert!(
            name.len() >= 3 && !name.contains("..") && name != "192.168.1.1",
            "an invalid bucket name was created: {name:?}"
        );
    }
    // Edge cases that ARE valid: 3 and 63 characters, dots and digits.
    for name in [
        unique_bucket("x").chars().take(3).collect::<String>(),
        format!("{}{}", unique_bucket("long"), "z".repeat(63)).chars().take(63).collect(),
        format!("dotted.{}", unique_bucket("name")),
    ] {
        // A 3-char prefix may collide with a previous run on the shared node: accept "already owned".
        match client.create_bucket().bucket(&name).send().await {
            Ok(_) => {}
            Err(e) => {
                let se = service_err(&e);
                assert_eq!(
                    se.code.as_deref(),
                    Some("BucketAlreadyOwnedByYou"),
                    "CreateBucket of the valid name {name:?} failed: {se:?}"
                );
            }
        }
        ok(client.head_bucket().bucket(&name).send().await, &format!("HeadBucket {name:?}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_is_bucket_already_owned_by_you() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "owned").await;
    put(&client, &bucket, "keep-me", b"still here").await;
    expect_err(
        client.create_bucket().bucket(&bucket).send().await,
        409,
        Some("BucketAlreadyOwnedByYou"),
        "second CreateBucket of the same name",
    );
    // The existing bucket and its content are untouched.
    assert_eq!(get_bytes(&client, &bucket, "keep-me").await, b"still here", "object in a re-created bucket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_non_empty_bucket_is_bucket_not_empty() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "nonempty").await;
    put(&client, &bucket, "dir/obj", b"x").await;
    expect_err(
        client.delete_bucket().bucket(&bucket).send().await,
        409,
        Some("BucketNotEmpty"),
        "DeleteBucket of a bucket holding an object",
    );
    ok(client.head_bucket().bucket(&bucket).send().await, "HeadBucket after a refused DeleteBucket");
    ok(client.delete_object().bucket(&bucket).key("dir/obj").send().await, "DeleteObject");
    ok(client.delete_bucket().bucket(&bucket).send().await, "DeleteBucket once emptied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_bucket_with_pending_multipart_upload_is_refused_or_cleans_it() {
    // S3 deletes a bucket that holds only unfinished multipart uploads, aborting them; an
    // object still keeps it (BucketNotEmpty), and then the uploads are left as they were.
    let node = shared_node().await;
    let _log = node.log_on_panic();
    node.wait_format_raised().await;
    let client = node.client();
    let bucket = create_bucket(&client, "mpu-pending").await;
    let up = ok(client.create_multipart_upload().bucket(&bucket).key("big").send().await, "CreateMultipartUpload");
    let upload_id = up.upload_id().expect("UploadId").to_owned();
    ok(
        client
            .upload_part()
            .bucket(&bucket)
            .key("big")
            .upload_id(&upload_id)
            .part_number(1)
            .body(aws_sdk_s3::primitives::ByteStream::from_static(b"part"))
            .send()
            .await,
        "UploadPart",
    );
    put(&client, &bucket, "object", b"keeps the bucket").await;
    expect_err(
        client.delete_bucket().bucket(&bucket).send().await,
        409,
        Some("BucketNotEmpty"),
        "DeleteBucket of a bucket with an object and an upload",
    );
    ok(client.list_parts().bucket(&bucket).key("big").upload_id(&upload_id).send().await, "the upload survived");

    ok(client.delete_object().bucket(&bucket).key("object").send().await, "DeleteObject");
    ok(client.delete_bucket().bucket(&bucket).send().await, "DeleteBucket of a bucket with only an upload");
    expect_err(client.head_bucket().bucket(&bucket).send().await, 404, None, "HeadBucket after the delete");
    expect_err(
        client.list_parts().bucket(&bucket).key("big").upload_id(&upload_id).send().await,
        404,
        None,
        "ListParts of an upload of a deleted bucket",
    );
    // The name is free again, and the new bucket has no uploads.
    ok(client.create_bucket().bucket(&bucket).send().await, "CreateBucket again");
    let uploads = ok(client.list_multipart_uploads().bucket(&bucket).send().await, "ListMultipartUploads");
    assert!(uploads.uploads().is_empty(), "the aborted upload is gone: {:?}", uploads.uploads());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_bucket_location_is_the_node_region() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "location").await;
    let out = ok(client.get_bucket_location().bucket(&bucket).send().await, "GetBucketLocation");
    // AWS answers "" for us-east-1; Meridian answers the name of the node's region.
    assert_eq!(
        out.location_constraint().map(aws_sdk_s3::types::BucketLocationConstraint::as_str),
        Some(REGION),
        "GetBucketLocation: {out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_on_a_missing_bucket_are_no_such_bucket() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let missing = unique_bucket("missing");
    expect_err(
        client.put_object().bucket(&missing).key("k").body(ByteStream::from_static(b"data")).send().await,
        404,
        Some("NoSuchBucket"),
        "PutObject into a missing bucket",
    );
    expect_err(
        client.get_object().bucket(&missing).key("k").send().await,
        404,
        Some("NoSuchBucket"),
        "GetObject from a missing bucket",
    );
    expect_err(
        client.list_objects_v2().bucket(&missing).send().await,
        404,
        Some("NoSuchBucket"),
        "ListObjectsV2 of a missing bucket",
    );
    expect_err(
        client.list_objects().bucket(&missing).send().await,
        404,
        Some("NoSuchBucket"),
        "ListObjects of a missing bucket",
    );
    expect_err(
        client.delete_bucket().bucket(&missing).send().await,
        404,
        Some("NoSuchBucket"),
        "DeleteBucket of a missing bucket",
    );
    expect_err(
        client.get_bucket_location().bucket(&missing).send().await,
        404,
        Some("NoSuchBucket"),
        "GetBucketLocation of a missing bucket",
    );
    expect_err(
        client.create_multipart_upload().bucket(&missing).key("k").send().await,
        404,
        Some("NoSuchBucket"),
        "CreateMultipartUpload in a missing bucket",
    );
    expect_err(
        client.delete_object().bucket(&missing).key("k").send().await,
        404,
        Some("NoSuchBucket"),
        "DeleteObject in a missing bucket",
    );
    // Nothing got created on the way.
    expect_err(
        client.head_bucket().bucket(&missing).send().await,
        404,
        None,
        "HeadBucket of the missing bucket after the failed operations",
    );
}
