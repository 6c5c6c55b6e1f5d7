//! Object tagging (Put/Get/DeleteObjectTagging, `x-amz-tagging` on PUT, tags on CopyObject) and
//! GetObjectAttributes against a real node.

use crate::harness;

use std::collections::BTreeMap;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, ObjectAttributes, StorageClass, Tag, Tagging, TaggingDirective,
};
use harness::*;

async fn tags_of(client: &Client, bucket: &str, key: &str) -> BTreeMap<String, String> {
    let out = ok(
        client.get_object_tagging().bucket(bucket).key(key).send().await,
        &format!("GetObjectTagging {bucket}/{key}"),
    );
    out.tag_set().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect()
}

fn tag_map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn tagging(pairs: &[(&str, &str)]) -> Tagging {
    Tagging::builder()
        .set_tag_set(Some(pairs.iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build().expect("Tag")).collect()))
        .build()
        .expect("Tagging")
}

/// ETags in GetObjectAttributes come without quotes on AWS; accept both spellings.
fn unquoted(etag: &str) -> &str {
    etag.trim_matches('"')
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_delete_object_tagging() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "tags").await;
    put(&client, &bucket, "t", b"tagged").await;
    assert!(tags_of(&client, &bucket, "t").await.is_empty(), "new object has no tags");

    ok(
        client
            .put_object_tagging()
            .bucket(&bucket)
            .key("t")
            .tagging(tagging(&[("project", "meridian"), ("stage", "raw footage")]))
            .send()
            .await,
        "PutObjectTagging",
    );
    assert_eq!(tags_of(&client, &bucket, "t").await, tag_map(&[("project", "meridian"), ("stage", "raw footage")]));

    // A second PutObjectTagging replaces the whole set.
    ok(
        client.put_object_tagging().bucket(&bucket).key("t").tagging(tagging(&[("stage", "final")])).send().await,
        "PutObjectTagging (replace)",
    );
    assert_eq!(tags_of(&client, &bucket, "t").await, tag_map(&[("stage", "final")]));

    // Tagging does not touch the object itself.
    assert_eq!(get_bytes(&client, &bucket, "t").await, b"tagged");

    ok(client.delete_object_tagging().bucket(&bucket).key("t").send().await, "DeleteObjectTagging");
    assert!(tags_of(&client, &bucket, "t").await.is_empty(), "tags after DeleteObjectTagging");
    assert_eq!(get_bytes(&client, &bucket, "t").await, b"tagged", "object after DeleteObjectTagging");

    expect_err(
        client.get_object_tagging().bucket(&bucket).key("missing").send().await,
        404,
        Some("NoSuchKey"),
        "GetObjectTagging of a missing key",
    );
    expect_err(
        client.put_object_tagging().bucket(&bucket).key("missing").tagging(tagging(&[("a", "b")])).send().await,
        404,
        Some("NoSuchKey"),
        "PutObjectTagging of a missing key",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_are_removed_with_the_object() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "tags-del").await;
    ok(
        client.put_object().bucket(&bucket).key("k").tagging("old=1").body(ByteStream::from_static(b"v1")).send().await,
        "PutObject with tags",
    );
    ok(client.delete_object().bucket(&bucket).key("k").send().await, "DeleteObject");
    put(&client, &bucket, "k", b"v2").await;
    assert!(tags_of(&client, &bucket, "k").await.is_empty(), "a new object under a deleted key inherited its tags");
    // An overwrite without x-amz-tagging drops the old tags too (S3 replaces the object whole).
    ok(
        client
            .put_object()
            .bucket(&bucket)
            .key("k")
            .tagging("again=1")
            .body(ByteStream::from_static(b"v3"))
            .send()
            .await,
        "PutObject with tags",
    );
    put(&client, &bucket, "k", b"v4").await;
    assert!(tags_of(&client, &bucket, "k").await.is_empty(), "tags survived an overwrite");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_amz_tagging_on_put_and_copy() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "tags-put").await;
    ok(
        client
            .put_object()
            .bucket(&bucket)
            .key("src")
            .tagging("a=1&b=2&note=hello%20world")
            .body(ByteStream::from_static(b"source"))
            .send()
            .await,
        "PutObject with x-amz-tagging",
    );
    let want = tag_map(&[("a", "1"), ("b", "2"), ("note", "hello world")]);
    assert_eq!(tags_of(&client, &bucket, "src").await, want, "tags from x-amz-tagging");
    let head = ok(client.get_object().bucket(&bucket).key("src").send().await, "GetObject");
    assert_eq!(head.tag_count(), Some(3), "x-amz-tagging-count on GetObject");

    // CopyObject keeps the tags by default (tagging directive COPY)...
    ok(
        client.copy_object().bucket(&bucket).key("copy-default").copy_source(format!("{bucket}/src")).send().await,
        "CopyObject (default tagging directive)",
    );
    assert_eq!(tags_of(&client, &bucket, "copy-default").await, want, "tags after copy");
    ok(
        client
            .copy_object()
            .bucket(&bucket)
            .key("copy-explicit")
            .copy_source(format!("{bucket}/src"))
            .tagging_directive(TaggingDirective::Copy)
            .send()
            .await,
        "CopyObject (tagging directive COPY)",
    );
    assert_eq!(tags_of(&client, &bucket, "copy-explicit").await, want, "tags after COPY");

    // ...and REPLACE takes them from the request.
    ok(
        client
            .copy_object()
            .bucket(&bucket)
            .key("copy-replace")
            .copy_source(format!("{bucket}/src"))
            .tagging_directive(TaggingDirective::Replace)
            .tagging("z=26")
            .send()
            .await,
        "CopyObject (tagging directive REPLACE)",
    );
    assert_eq!(tags_of(&client, &bucket, "copy-replace").await, tag_map(&[("z", "26")]), "tags after REPLACE");
    assert_eq!(tags_of(&client, &bucket, "src").await, want, "copying must not change the source's tags");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_object_attributes_single_part() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "attrs").await;
    let data = random_bytes(1, 4321);
    let sha = base64(&sha256_bytes(&data));
    ok(
        client
            .put_object()
            .bucket(&bucket)
            .key("a")
            .checksum_sha256(&sha)
            .body(ByteStream::from(data.clone()))
            .send()
            .await,
        "PutObject with x-amz-checksum-sha256",
    );
    let out = ok(
        client
            .get_object_attributes()
            .bucket(&bucket)
            .key("a")
            .object_attributes(ObjectAttributes::Etag)
            .object_attributes(ObjectAttributes::ObjectSize)
            .object_attributes(ObjectAttributes::StorageClass)
            .object_attributes(ObjectAttributes::Checksum)
            .object_attributes(ObjectAttributes::ObjectParts)
            .send()
            .await,
        "GetObjectAttributes",
    );
    assert_eq!(out.e_tag().map(unquoted), Some(md5_hex(&data).as_str()), "ETag");
    assert_eq!(out.object_size(), Some(4321), "ObjectSize");
    assert_eq!(out.storage_class(), Some(&StorageClass::Standard), "StorageClass");
    assert_eq!(
        out.checksum().and_then(|c| c.checksum_sha256()),
        Some(sha.as_str()),
        "Checksum.ChecksumSHA256 of an object stored with one"
    );
    assert!(out.last_modified().is_some(), "Last-Modified header");
    assert!(
        out.object_parts().is_none_or(|p| p.total_parts_count().unwrap_or(0) == 0),
        "a single-part object has no ObjectParts: {:?}",
        out.object_parts()
    );

    // Only what is asked for is returned.
    let out = ok(
        client
            .get_object_attributes()
            .bucket(&bucket)
            .key("a")
            .object_attributes(ObjectAttributes::ObjectSize)
            .send()
            .await,
        "GetObjectAttributes ObjectSize only",
    );
    assert_eq!(out.object_size(), Some(4321));
    assert_eq!(out.e_tag(), None, "ETag returned though not requested");

    expect_err(
        client
            .get_object_attributes()
            .bucket(&bucket)
            .key("missing")
            .object_attributes(ObjectAttributes::Etag)
            .send()
            .await,
        404,
        Some("NoSuchKey"),
        "GetObjectAttributes of a missing key",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_object_attributes_multipart_parts() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "attrs-mpu").await;
    let up = ok(client.create_multipart_upload().bucket(&bucket).key("m").send().await, "CreateMultipartUpload");
    let id = up.upload_id().expect("UploadId").to_owned();
    let p1 = random_bytes(2, 5 * MIB);
    let p2 = random_bytes(3, 777);
    let mut parts = Vec::new();
    for (n, p) in [(1, &p1), (2, &p2)] {
        let out = ok(
            client
                .upload_part()
                .bucket(&bucket)
                .key("m")
                .upload_id(&id)
                .part_number(n)
                .body(ByteStream::from(p.clone()))
                .send()
                .await,
            "UploadPart",
        );
        parts.push(CompletedPart::builder().part_number(n).e_tag(out.e_tag().expect("ETag")).build());
    }
    ok(
        client
            .complete_multipart_upload()
            .bucket(&bucket)
            .key("m")
            .upload_id(&id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await,
        "CompleteMultipartUpload",
    );
    let out = ok(
        client
            .get_object_attributes()
            .bucket(&bucket)
            .key("m")
            .object_attributes(ObjectAttributes::Etag)
            .object_attributes(ObjectAttributes::ObjectSize)
            .object_attributes(ObjectAttributes::StorageClass)
            .object_attributes(ObjectAttributes::ObjectParts)
            .send()
            .await,
        "GetObjectAttributes of a multipart object",
    );
    let want_etag = multipart_etag(&[&p1, &p2]);
    assert_eq!(out.e_tag().map(unquoted), Some(unquoted(&want_etag)), "ETag");
    assert_eq!(out.object_size(), Some((p1.len() + p2.len()) as i64), "ObjectSize");
    assert_eq!(out.storage_class(), Some(&StorageClass::Standard), "StorageClass");
    let parts = out.object_parts().expect("ObjectParts of a multipart object");
    assert_eq!(parts.total_parts_count(), Some(2), "ObjectParts.TotalPartsCount");
    if !parts.parts().is_empty() {
        let listed: Vec<(Option<i32>, Option<i64>)> =
            parts.parts().iter().map(|p| (p.part_number(), p.size())).collect();
        assert_eq!(
            listed,
            vec![(Some(1), Some(p1.len() as i64)), (Some(2), Some(p2.len() as i64))],
            "ObjectParts.Parts"
        );
    }
}

/// The tags of one version by `versionId` (issue #15): PutObjectTagging / DeleteObjectTagging of
/// a non-current version through one region change that version alone, as every region reads
/// it, and answer its `x-amz-version-id`; the current version's tags stay; a delete marker is
/// 405 MethodNotAllowed, an unknown id 404 NoSuchVersion, a malformed one 400 InvalidArgument;
/// the history records the change with the version id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_of_a_non_current_version_change_alone_through_every_region() {
    let cluster = harness::cluster::shared_cluster().await;
    cluster.wait_format_raised().await;
    let clients: Vec<Client> = (0..3).map(|i| cluster.node(i).client()).collect();
    let bucket = create_bucket(&clients[0], "vtags").await;
    let enabled = aws_sdk_s3::types::VersioningConfiguration::builder()
        .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
        .build();
    ok(
        clients[0].put_bucket_versioning().bucket(&bucket).versioning_configuration(enabled).send().await,
        "PutBucketVersioning",
    );
    let put_tagged = |body: &'static [u8], tags: &'static str| {
        let client = clients[0].clone();
        let bucket = bucket.clone();
        async move {
            let out = ok(
                client
                    .put_object()
                    .bucket(&bucket)
                    .key("film")
                    .tagging(tags)
                    .body(ByteStream::from_static(body))
                    .send()
                    .await,
                "PutObject with tags",
            );
            out.version_id().expect("a version id").to_owned()
        }
    };
    let v1 = put_tagged(b"cut one", "state=draft").await;
    let v2 = put_tagged(b"cut two", "state=final").await;

    let version_tags = |i: usize, version: String| {
        let client = clients[i].clone();
        let bucket = bucket.clone();
        async move {
            let out = ok(
                client.get_object_tagging().bucket(&bucket).key("film").version_id(&version).send().await,
                "GetObjectTagging ?versionId",
            );
            assert_eq!(out.version_id(), Some(version.as_str()));
            out.tag_set().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect::<BTreeMap<_, _>>()
        }
    };
    let put = ok(
        clients[1]
            .put_object_tagging()
            .bucket(&bucket)
            .key("film")
            .version_id(&v1)
            .tagging(tagging(&[("state", "archived"), ("reel", "1")]))
            .send()
            .await,
        "PutObjectTagging ?versionId=v1 through region B",
    );
    assert_eq!(put.version_id(), Some(v1.as_str()), "x-amz-version-id of the version tagged");
    for (i, client) in clients.iter().enumerate() {
        assert_eq!(version_tags(i, v1.clone()).await, tag_map(&[("state", "archived"), ("reel", "1")]), "v1, node {i}");
        assert_eq!(version_tags(i, v2.clone()).await, tag_map(&[("state", "final")]), "v2 untouched, node {i}");
        assert_eq!(tags_of(client, &bucket, "film").await, tag_map(&[("state", "final")]), "current, node {i}");
    }
    let deleted = ok(
        clients[2].delete_object_tagging().bucket(&bucket).key("film").version_id(&v1).send().await,
        "DeleteObjectTagging ?versionId=v1 through region C",
    );
    assert_eq!(deleted.version_id(), Some(v1.as_str()));
    assert!(version_tags(0, v1.clone()).await.is_empty(), "v1's tags are gone");
    assert_eq!(tags_of(&clients[1], &bucket, "film").await, tag_map(&[("state", "final")]), "current keeps its tags");
    // Tagging the current version by its id is the same as without.
    ok(
        clients[0]
            .put_object_tagging()
            .bucket(&bucket)
            .key("film")
            .version_id(&v2)
            .tagging(tagging(&[("state", "out")]))
            .send()
            .await,
        "PutObjectTagging ?versionId of the current version",
    );
    assert_eq!(tags_of(&clients[2], &bucket, "film").await, tag_map(&[("state", "out")]));

    // The bad cases, as AWS answers them.
    let marker = ok(clients[0].delete_object().bucket(&bucket).key("film").send().await, "DeleteObject");
    let marker = marker.version_id().expect("the marker's id").to_owned();
    expect_err(
        clients[1]
            .put_object_tagging()
            .bucket(&bucket)
            .key("film")
            .version_id(&marker)
            .tagging(tagging(&[("a", "b")]))
            .send()
            .await,
        405,
        Some("MethodNotAllowed"),
        "tags of a delete marker",
    );
    expect_err(
        clients[2].delete_object_tagging().bucket(&bucket).key("film").version_id(&marker).send().await,
        405,
        Some("MethodNotAllowed"),
        "removing the tags of a delete marker",
    );
    expect_err(
        clients[0]
            .put_object_tagging()
            .bucket(&bucket)
            .key("film")
            .version_id("0".repeat(24))
            .tagging(tagging(&[("a", "b")]))
            .send()
            .await,
        404,
        Some("NoSuchVersion"),
        "tags of a version that does not exist",
    );
    expect_err(
        clients[0]
            .put_object_tagging()
            .bucket(&bucket)
            .key("other")
            .version_id(&v1)
            .tagging(tagging(&[("a", "b")]))
            .send()
            .await,
        404,
        Some("NoSuchVersion"),
        "another key's version id",
    );
    for bad in ["../../x", "NULL", "k\u{1}"] {
        expect_err(
            clients[0].delete_object_tagging().bucket(&bucket).key("film").version_id(bad).send().await,
            400,
            Some("InvalidArgument"),
            &format!("malformed version id {bad:?}"),
        );
    }
    // The history carries the version id of each change.
    let events = harness::events::wait_history(cluster.node(2), None, std::time::Duration::from_secs(10), |events| {
        events.iter().filter(|e| e.kind == "ObjectVersionTagged" && e.bucket() == bucket).count() >= 3
    })
    .await;
    let tagged: Vec<(String, u64)> = events
        .iter()
        .filter(|e| e.kind == "ObjectVersionTagged" && e.bucket() == bucket)
        .map(|e| {
            let id = e.data.get("version_id").and_then(serde_json::Value::as_str).unwrap_or_default().to_owned();
            (id, e.data.get("tag_count").and_then(serde_json::Value::as_u64).unwrap_or(99))
        })
        .collect();
    assert_eq!(tagged, vec![(v1.clone(), 2), (v1, 0), (v2, 1)], "each change with its version and tag count");
}
