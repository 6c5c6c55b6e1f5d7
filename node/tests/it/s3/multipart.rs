//! Multipart uploads against a real node: Create, UploadPart, UploadPartCopy, ListParts,
//! ListMultipartUploads, Complete (ETag, content), InvalidPart, InvalidPartOrder,
//! EntityTooSmall, Abort.

use crate::harness;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use harness::*;

/// CreateMultipartUpload; the upload id.
pub(super) async fn create_upload(client: &Client, bucket: &str, key: &str) -> String {
    let out = ok(
        client.create_multipart_upload().bucket(bucket).key(key).send().await,
        &format!("CreateMultipartUpload {bucket}/{key}"),
    );
    assert_eq!(out.bucket(), Some(bucket), "CreateMultipartUpload Bucket");
    assert_eq!(out.key(), Some(key), "CreateMultipartUpload Key");
    out.upload_id().expect("UploadId").to_owned()
}

/// UploadPart `n` of `data`; its ETag (checked to be the part's quoted MD5).
pub(super) async fn upload_part(client: &Client, bucket: &str, key: &str, id: &str, n: i32, data: &[u8]) -> String {
    let out = ok(
        client
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(id)
            .part_number(n)
            .body(ByteStream::from(data.to_vec()))
            .send()
            .await,
        &format!("UploadPart {n} ({} bytes)", data.len()),
    );
    let etag = out.e_tag().expect("UploadPart ETag").to_owned();
    assert_eq!(etag, etag_of(data), "UploadPart {n} ETag is the part's quoted MD5");
    etag
}

/// CompleteMultipartUpload with these (part number, ETag) pairs.
async fn complete<S: AsRef<str>>(
    client: &Client,
    bucket: &str,
    key: &str,
    id: &str,
    parts: &[(i32, S)],
) -> Result<
    aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadOutput,
    aws_sdk_s3::error::SdkError<aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadError>,
> {
    client
        .complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(id)
        .multipart_upload(completed(parts))
        .send()
        .await
}

fn completed<S: AsRef<str>>(parts: &[(i32, S)]) -> CompletedMultipartUpload {
    CompletedMultipartUpload::builder()
        .set_parts(Some(
            parts.iter().map(|(n, e)| CompletedPart::builder().part_number(*n).e_tag(e.as_ref()).build()).collect(),
        ))
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_full_flow() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "mpu").await;
    let key = "movies/feature film.mp4";

    // Source of the UploadPartCopy: 6 MiB, of which bytes 1 MiB .. 6 MiB are copied.
    let src = random_bytes(1, 6 * MIB);
    put(&client, &bucket, "source.bin", &src).await;

    let up = ok(
        client
            .create_multipart_upload()
            .bucket(&bucket)
            .key(key)
            .content_type("video/mp4")
            .metadata("title", "meridian")
            .send()
            .await,
        "CreateMultipartUpload",
    );
    let id = up.upload_id().expect("UploadId").to_owned();

    let part1 = random_bytes(2, 5 * MIB);
    let part2 = &src[MIB..6 * MIB];
    let part3 = random_bytes(3, 1000);
    let e1 = upload_part(&client, &bucket, key, &id, 1, &part1).await;
    let copy = ok(
        client
            .upload_part_copy()
            .bucket(&bucket)
            .key(key)
            .upload_id(&id)
            .part_number(2)
            .copy_source(format!("{bucket}/source.bin"))
            .copy_source_range(format!("bytes={}-{}", MIB, 6 * MIB - 1))
            .send()
            .await,
        "UploadPartCopy",
    );
    let e2 = copy.copy_part_result().and_then(|r| r.e_tag()).expect("UploadPartCopy ETag").to_owned();
    assert_eq!(e2, etag_of(part2), "UploadPartCopy ETag is the MD5 of the copied range");
    let e3 = upload_part(&client, &bucket, key, &id, 3, &part3).await;

    // In progress: listed, and not visible as an object.
    let uploads = ok(client.list_multipart_uploads().bucket(&bucket).send().await, "ListMultipartUploads");
    assert!(
        uploads.uploads().iter().any(|u| u.upload_id() == Some(id.as_str()) && u.key() == Some(key)),
        "ListMultipartUploads does not show {id}: {:?}",
        uploads.uploads()
    );
    expect_err(
        client.head_object().bucket(&bucket).key(key).send().await,
        404,
        None,
        "HeadObject of an uncompleted upload",
    );

    let parts = ok(client.list_parts().bucket(&bucket).key(key).upload_id(&id).send().await, "ListParts");
    let listed: Vec<(i32, String, i64)> = parts
        .parts()
        .iter()
        .map(|p| (p.part_number().expect("PartNumber"), p.e_tag().expect("ETag").to_owned(), p.size().expect("Size")))
        .collect();
    assert_eq!(
        listed,
        vec![
            (1, e1.clone(), part1.len() as i64),
            (2, e2.clone(), part2.len() as i64),
            (3, e3.clone(), part3.len() as i64),
        ],
        "ListParts"
    );

    // ListParts paging.
    let page = ok(
        client.list_parts().bucket(&bucket).key(key).upload_id(&id).max_parts(2).send().await,
        "ListParts max-parts=2",
    );
    let nums: Vec<i32> = page.parts().iter().filter_map(aws_sdk_s3::types::Part::part_number).collect();
    assert_eq!(nums, vec![1, 2], "ListParts first page");
    assert_eq!(page.is_truncated(), Some(true), "ListParts IsTruncated");
    let marker = page.next_part_number_marker().expect("NextPartNumberMarker").to_owned();
    let page = ok(
        client
            .list_parts()
            .bucket(&bucket)
            .key(key)
            .upload_id(&id)
            .max_parts(2)
            .part_number_marker(marker)
            .send()
            .await,
        "ListParts second page",
    );
    let nums: Vec<i32> = page.parts().iter().filter_map(aws_sdk_s3::types::Part::part_number).collect();
    assert_eq!(nums, vec![3], "ListParts second page");

    let done = ok(
        client
            .complete_multipart_upload()
            .bucket(&bucket)
            .key(key)
            .upload_id(&id)
            .multipart_upload(completed(&[(1, &e1), (2, &e2), (3, &e3)]))
            .send()
            .await,
        "CompleteMultipartUpload",
    );
    let want_etag = multipart_etag(&[&part1, part2, &part3]);
    assert_eq!(done.e_tag(), Some(want_etag.as_str()), "CompleteMultipartUpload ETag");
    assert_eq!(done.key(), Some(key));
    assert_eq!(done.bucket(), Some(bucket.as_str()));

    let mut all = part1.clone();
    all.extend_from_slice(part2);
    all.extend_from_slice(&part3);
    let got = ok(client.get_object().bucket(&bucket).key(key).send().await, "GetObject");
    assert_eq!(got.e_tag(), Some(want_etag.as_str()), "GetObject ETag of the multipart object");
    assert_eq!(got.content_length(), Some(all.len() as i64));
    assert_eq!(got.content_type(), Some("video/mp4"), "Content-Type from CreateMultipartUpload");
    assert_eq!(
        got.metadata().and_then(|m| m.get("title")).map(String::as_str),
        Some("meridian"),
        "metadata from CreateMultipartUpload"
    );
    let body = got.body.collect().await.expect("body").into_bytes();
    assert_bytes_eq(&body, &all, "multipart object = concatenation of the parts");

    // A range across the part boundaries.
    let from = 5 * MIB - 10;
    let to = 10 * MIB + 10;
    let got = ok(
        client.get_object().bucket(&bucket).key(key).range(format!("bytes={from}-{}", to - 1)).send().await,
        "ranged GetObject across parts",
    );
    let body = got.body.collect().await.expect("body").into_bytes();
    assert_bytes_eq(&body, &all[from..to], "range across part boundaries");

    // The upload is gone.
    let uploads =
        ok(client.list_multipart_uploads().bucket(&bucket).send().await, "ListMultipartUploads after complete");
    assert!(!uploads.uploads().iter().any(|u| u.upload_id() == Some(id.as_str())), "completed upload still listed");
    expect_err(
        client.list_parts().bucket(&bucket).key(key).upload_id(&id).send().await,
        404,
        Some("NoSuchUpload"),
        "ListParts of a completed upload",
    );
    // And listed as an object with the multipart ETag.
    let out = ok(client.list_objects_v2().bucket(&bucket).prefix("movies/").send().await, "ListObjectsV2");
    let obj = out.contents().first().expect("listed");
    assert_eq!(obj.key(), Some(key));
    assert_eq!(obj.size(), Some(all.len() as i64));
    assert_eq!(obj.e_tag(), Some(want_etag.as_str()), "listed ETag");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_with_wrong_etag_is_invalid_part() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "mpu-invpart").await;
    let id = create_upload(&client, &bucket, "k").await;
    // 5 MiB: a valid non-last part, so that a missing part 2 is the only defect below.
    let data = random_bytes(4, 5 * MIB);
    let e1 = upload_part(&client, &bucket, "k", &id, 1, &data).await;

    expect_err(
        complete(&client, &bucket, "k", &id, &[(1, "\"0123456789abcdef0123456789abcdef\"")]).await,
        400,
        Some("InvalidPart"),
        "Complete with a wrong ETag",
    );
    expect_err(
        complete(&client, &bucket, "k", &id, &[(1, &e1), (2, &e1)]).await,
        400,
        Some("InvalidPart"),
        "Complete naming a part that was never uploaded",
    );
    expect_err(
        client.head_object().bucket(&bucket).key("k").send().await,
        404,
        None,
        "HeadObject after failed completes",
    );
    // A failed Complete leaves the upload usable.
    let done =
        ok(complete(&client, &bucket, "k", &id, &[(1, &e1)]).await, "Complete with the right ETag after failures");
    assert_eq!(done.e_tag(), Some(multipart_etag(&[&data]).as_str()));
    assert_bytes_eq(&get_bytes(&client, &bucket, "k").await, &data, "single-part multipart object");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_with_descending_parts_is_invalid_part_order() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "mpu-order").await;
    let id = create_upload(&client, &bucket, "k").await;
    // Part sizes are fine (first >= 5 MiB): only the order is wrong.
    let p1 = random_bytes(5, 5 * MIB);
    let p2 = random_bytes(6, 100);
    let e1 = upload_part(&client, &bucket, "k", &id, 1, &p1).await;
    let e2 = upload_part(&client, &bucket, "k", &id, 2, &p2).await;
    expect_err(
        complete(&client, &bucket, "k", &id, &[(2, &e2), (1, &e1)]).await,
        400,
        Some("InvalidPartOrder"),
        "Complete with descending part numbers",
    );
    expect_err(
        complete(&client, &bucket, "k", &id, &[(1, &e1), (1, &e1), (2, &e2)]).await,
        400,
        Some("InvalidPartOrder"),
        "Complete with a repeated part number",
    );
    expect_err(
        client.head_object().bucket(&bucket).key("k").send().await,
        404,
        None,
        "HeadObject after InvalidPartOrder",
    );
    ok(client.abort_multipart_upload().bucket(&bucket).key("k").upload_id(&id).send().await, "AbortMultipartUpload");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_non_last_part_is_entity_too_small() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "mpu-small").await;
    let id = create_upload(&client, &bucket, "k").await;
    let p1 = random_bytes(7, 1024);
    let p2 = random_bytes(8, 1024);
    let e1 = upload_part(&client, &bucket, "k", &id, 1, &p1).await;
    let e2 = upload_part(&client, &bucket, "k", &id, 2, &p2).await;
    expect_err(
        complete(&client, &bucket, "k", &id, &[(1, &e1), (2, &e2)]).await,
        400,
        Some("EntityTooSmall"),
        "Complete with a 1 KiB non-last part",
    );
    // Just under the limit is still too small.
    let p1 = random_bytes(9, 5 * MIB - 1);
    let e1 = upload_part(&client, &bucket, "k", &id, 1, &p1).await;
    expect_err(
        complete(&client, &bucket, "k", &id, &[(1, &e1), (2, &e2)]).await,
        400,
        Some("EntityTooSmall"),
        "Complete with a (5 MiB - 1) non-last part",
    );
    expect_err(
        client.head_object().bucket(&bucket).key("k").send().await,
        404,
        None,
        "HeadObject after EntityTooSmall",
    );
    // Re-uploading part 1 at exactly 5 MiB replaces it and makes the upload completable.
    let p1 = random_bytes(10, 5 * MIB);
    let e1 = upload_part(&client, &bucket, "k", &id, 1, &p1).await;
    let done =
        ok(complete(&client, &bucket, "k", &id, &[(1, &e1), (2, &e2)]).await, "Complete with a 5 MiB first part");
    assert_eq!(done.e_tag(), Some(multipart_etag(&[&p1, &p2]).as_str()));
    let mut all = p1.clone();
    all.extend_from_slice(&p2);
    assert_bytes_eq(&get_bytes(&client, &bucket, "k").await, &all, "object after re-uploaded part");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_then_list_parts_is_no_such_upload() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "mpu-abort").await;
    let id = create_upload(&client, &bucket, "k").await;
    upload_part(&client, &bucket, "k", &id, 1, &random_bytes(11, 4096)).await;
    ok(client.abort_multipart_upload().bucket(&bucket).key("k").upload_id(&id).send().await, "AbortMultipartUpload");
    expect_err(
        client.list_parts().bucket(&bucket).key("k").upload_id(&id).send().await,
        404,
        Some("NoSuchUpload"),
        "ListParts after abort",
    );
    expect_err(
        client
            .upload_part()
            .bucket(&bucket)
            .key("k")
            .upload_id(&id)
            .part_number(2)
            .body(ByteStream::from_static(b"late"))
            .send()
            .await,
        404,
        Some("NoSuchUpload"),
        "UploadPart after abort",
    );
    expect_err(
        complete(&client, &bucket, "k", &id, &[(1, "\"x\"")]).await,
        404,
        Some("NoSuchUpload"),
        "Complete after abort",
    );
    let uploads = ok(client.list_multipart_uploads().bucket(&bucket).send().await, "ListMultipartUploads after abort");
    assert!(uploads.uploads().is_empty(), "aborted upload still listed: {:?}", uploads.uploads());
    expect_err(client.head_object().bucket(&bucket).key("k").send().await, 404, None, "HeadObject after abort");
    expect_err(
        client.list_parts().bucket(&bucket).key("k").upload_id("no-such-upload-id").send().await,
        404,
        Some("NoSuchUpload"),
        "ListParts of an unknown upload id",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_overwrites_existing_object() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "mpu-over").await;
    put(&client, &bucket, "k", b"old small object").await;
    let id = create_upload(&client, &bucket, "k").await;
    let p1 = random_bytes(12, 5 * MIB);
    let p2 = random_bytes(13, 10);
    let e1 = upload_part(&client, &bucket, "k", &id, 1, &p1).await;
    let e2 = upload_part(&client, &bucket, "k", &id, 2, &p2).await;
    // Until completion the old object is what readers see.
    assert_eq!(get_bytes(&client, &bucket, "k").await, b"old small object");
    ok(
        complete(&client, &bucket, "k", &id, &[(1, &e1), (2, &e2)]).await,
        "CompleteMultipartUpload over an existing key",
    );
    let mut all = p1;
    all.extend_from_slice(&p2);
    assert_bytes_eq(&get_bytes(&client, &bucket, "k").await, &all, "overwritten by multipart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_upload_is_removed_after_the_configured_age() {
    // Its own node: the maximum age is a node setting.
    let node = TestNode::start_with(NodeOptions { multipart_max_age_secs: 2 }).await;
    let client = node.client();
    let bucket = create_bucket(&client, "mpu-stale").await;
    let id = create_upload(&client, &bucket, "abandoned").await;
    upload_part(&client, &bucket, "abandoned", &id, 1, &random_bytes(14, 100_000)).await;
    let parts_dir = node.data_dir().join("parts");
    let had_part_files = !all_files(&parts_dir).is_empty();

    // Bounded wait: the upload is 2 s old after 2 s; give the sweeper 60 s more.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match client.list_parts().bucket(&bucket).key("abandoned").upload_id(&id).send().await {
            Ok(_) => {}
            Err(e) => {
                let se = service_err(&e);
                assert_eq!(se.code.as_deref(), Some("NoSuchUpload"), "ListParts: {se:?}");
                break;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "an upload abandoned with multipart_max_age_secs = 2 still exists 60 s later\n{}",
            node.log_report()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let uploads = ok(client.list_multipart_uploads().bucket(&bucket).send().await, "ListMultipartUploads");
    assert!(uploads.uploads().is_empty(), "stale upload still listed");
    if had_part_files {
        assert!(
            wait_until(std::time::Duration::from_secs(10), || all_files(&parts_dir).is_empty()).await,
            "part files of the removed upload remain: {:?}",
            all_files(&parts_dir)
        );
    }
}
