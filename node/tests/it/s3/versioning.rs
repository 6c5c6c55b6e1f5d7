//! S3 versioning against the three-node cluster (aws-sdk-s3): Put/GetBucketVersioning, version
//! ids on writes, GET/HEAD/DELETE `?versionId=`, delete markers, the `null` version of a
//! suspended bucket, ListObjectVersions with its markers, copies from a version and multipart
//! uploads in a versioned bucket. Each write goes through one region and is read through the
//! others; one test kills and restarts nodes to show every version is replicated and kept.

use crate::harness;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketVersioningStatus, CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier, VersioningConfiguration,
};
use harness::cluster::{TestCluster, shared_cluster};
use harness::*;

/// Sets a bucket's versioning status through `client`.
async fn set_versioning(client: &Client, bucket: &str, status: BucketVersioningStatus) {
    let config = VersioningConfiguration::builder().status(status.clone()).build();
    ok(
        client.put_bucket_versioning().bucket(bucket).versioning_configuration(config).send().await,
        &format!("PutBucketVersioning {status:?}"),
    );
}

/// PUT returning the version id S3 reported (`None`: no `x-amz-version-id`).
async fn put_version(client: &Client, bucket: &str, key: &str, data: &[u8]) -> Option<String> {
    let out = ok(
        client.put_object().bucket(bucket).key(key).body(ByteStream::from(data.to_vec())).send().await,
        &format!("PutObject {bucket}/{key}"),
    );
    out.version_id().map(str::to_owned)
}

/// The body of one version, read through `client`.
async fn get_version(client: &Client, bucket: &str, key: &str, version: &str) -> Vec<u8> {
    let out = ok(
        client.get_object().bucket(bucket).key(key).version_id(version).send().await,
        &format!("GetObject {key}?versionId={version}"),
    );
    assert_eq!(out.version_id(), Some(version), "GetObject ?versionId answers with that version id");
    out.body.collect().await.expect("body").into_bytes().to_vec()
}

/// A response header of a failed request.
fn error_header<T, E>(
    result: &Result<T, SdkError<E, aws_sdk_s3::config::http::HttpResponse>>,
    name: &str,
) -> Option<String> {
    match result {
        Err(SdkError::ServiceError(ctx)) => ctx.raw().headers().get(name).map(str::to_owned),
        _ => None,
    }
}

/// Every version and delete marker of a bucket as (key, version id, is latest, is marker),
/// versions and markers of a page merged in key order, newest first per key (the order S3
/// lists them in), read page by page with `max_keys` through the key and version-id markers.
async fn list_versions_paged(client: &Client, bucket: &str, max_keys: i32) -> Vec<(String, String, bool, bool)> {
    let mut all = Vec::new();
    let (mut key_marker, mut version_marker): (Option<String>, Option<String>) = (None, None);
    for _page in 0..1000 {
        let out = ok(
            client
                .list_object_versions()
                .bucket(bucket)
                .max_keys(max_keys)
                .set_key_marker(key_marker.clone())
                .set_version_id_marker(version_marker.clone())
                .send()
                .await,
            "ListObjectVersions page",
        );
        let mut page: Vec<(String, String, bool, bool)> = out
            .versions()
            .iter()
            .map(|v| {
                (
                    v.key().unwrap_or_default().into(),
                    v.version_id().unwrap_or_default().into(),
                    v.is_latest() == Some(true),
                    false,
                )
            })
            .chain(out.delete_markers().iter().map(|m| {
                (
                    m.key().unwrap_or_default().into(),
                    m.version_id().unwrap_or_default().into(),
                    m.is_latest() == Some(true),
                    true,
                )
            }))
            .collect();
        assert!(page.len() <= usize::try_from(max_keys).expect("max keys"), "a page holds at most max-keys entries");
        // Ids sort newest first within a key (null versions aside, which these tests page over
        // only when they hold none).
        page.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        all.extend(page);
        if out.is_truncated() != Some(true) {
            return all;
        }
        key_marker = out.next_key_marker().map(str::to_owned);
        version_marker = out.next_version_id_marker().map(str::to_owned);
        assert!(key_marker.is_some(), "a truncated page names the next key marker");
    }
    panic!("ListObjectVersions never ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versioning_configuration_is_stored_through_raft_and_read_in_every_region() {
    let cluster = shared_cluster().await;
    cluster.wait_format_raised().await;
    let clients: Vec<Client> = (0..3).map(|i| cluster.node(i).client()).collect();
    let bucket = create_bucket(&clients[0], "vconf").await;

    // Never enabled: an empty configuration, as AWS answers.
    let out = ok(clients[1].get_bucket_versioning().bucket(&bucket).send().await, "GetBucketVersioning");
    assert_eq!(out.status(), None, "a bucket never versioned has no status");
    assert_eq!(out.mfa_delete(), None);

    set_versioning(&clients[0], &bucket, BucketVersioningStatus::Enabled).await;
    for client in &clients[1..] {
        let out = ok(client.get_bucket_versioning().bucket(&bucket).send().await, "GetBucketVersioning");
        assert_eq!(out.status(), Some(&BucketVersioningStatus::Enabled), "Enabled, read through another region");
    }
    set_versioning(&clients[2], &bucket, BucketVersioningStatus::Suspended).await;
    let out = ok(clients[0].get_bucket_versioning().bucket(&bucket).send().await, "GetBucketVersioning");
    assert_eq!(out.status(), Some(&BucketVersioningStatus::Suspended));

    // Bad cases: no such bucket, a status S3 does not know.
    let missing = unique_bucket("vnone");
    let config = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
    expect_err(
        clients[1].put_bucket_versioning().bucket(&missing).versioning_configuration(config).send().await,
        404,
        Some("NoSuchBucket"),
        "PutBucketVersioning of a missing bucket",
    );
    expect_err(
        clients[2].get_bucket_versioning().bucket(&missing).send().await,
        404,
        Some("NoSuchBucket"),
        "GetBucketVersioning of a missing bucket",
    );
    let bogus = VersioningConfiguration::builder().status(BucketVersioningStatus::from("Sometimes")).build();
    expect_err(
        clients[0].put_bucket_versioning().bucket(&bucket).versioning_configuration(bogus).send().await,
        400,
        Some("MalformedXML"),
        "PutBucketVersioning with an unknown status",
    );
    let out = ok(clients[1].get_bucket_versioning().bucket(&bucket).send().await, "GetBucketVersioning");
    assert_eq!(out.status(), Some(&BucketVersioningStatus::Suspended), "a refused change changes nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_delete_markers_and_version_deletes_across_regions() {
    let cluster = shared_cluster().await;
    cluster.wait_format_raised().await;
    let clients: Vec<Client> = (0..3).map(|i| cluster.node(i).client()).collect();
    let bucket = create_bucket(&clients[0], "vobj").await;
    set_versioning(&clients[0], &bucket, BucketVersioningStatus::Enabled).await;

    // Two versions, one small (inline) and one big (a blob), written through two regions.
    let one = random_bytes(1, 1000);
    let two = random_bytes(2, 300 * 1024);
    let v1 = put_version(&clients[0], &bucket, "k", &one).await.expect("a version id on PUT");
    let v2 = put_version(&clients[1], &bucket, "k", &two).await.expect("a version id on PUT");
    assert_ne!(v1, v2, "every write gets its own version id");
    assert!(v2 < v1, "version ids sort newest first: {v2} vs {v1}");

    let latest = ok(clients[2].get_object().bucket(&bucket).key("k").send().await, "GetObject");
    assert_eq!(latest.version_id(), Some(v2.as_str()), "GET answers with the latest version id");
    assert_bytes_eq(&latest.body.collect().await.expect("body").into_bytes(), &two, "latest through region 3");
    assert_bytes_eq(&get_version(&clients[2], &bucket, "k", &v1).await, &one, "v1 through region 3");
    assert_bytes_eq(&get_version(&clients[0], &bucket, "k", &v2).await, &two, "v2 through region 1");
    let head = ok(clients[1].head_object().bucket(&bucket).key("k").version_id(&v1).send().await, "HeadObject v1");
    assert_eq!((head.version_id(), head.content_length()), (Some(v1.as_str()), Some(1000)), "HEAD ?versionId");

    // A named version's tags and attributes are that version's, through any region.
    let tags = ok(clients[0].get_object_tagging().bucket(&bucket).key("k").version_id(&v1).send().await, "tags of v1");
    assert_eq!((tags.version_id(), tags.tag_set().len()), (Some(v1.as_str()), 0), "GetObjectTagging ?versionId");
    let attributes = ok(
        clients[2]
            .get_object_attributes()
            .bucket(&bucket)
            .key("k")
            .version_id(&v1)
            .object_attributes(aws_sdk_s3::types::ObjectAttributes::ObjectSize)
            .object_attributes(aws_sdk_s3::types::ObjectAttributes::Etag)
            .send()
            .await,
        "attributes of v1",
    );
    assert_eq!(
        (attributes.version_id(), attributes.object_size(), attributes.e_tag().map(|e| e.trim_matches('"'))),
        (Some(v1.as_str()), Some(1000), Some(md5_hex(&one).as_str())),
        "GetObjectAttributes ?versionId answers for v1, not the latest"
    );
    expect_err(
        clients[1]
            .get_object_attributes()
            .bucket(&bucket)
            .key("k")
            .version_id("0".repeat(24))
            .object_attributes(aws_sdk_s3::types::ObjectAttributes::ObjectSize)
            .send()
            .await,
        404,
        Some("NoSuchVersion"),
        "attributes of a version that does not exist",
    );
    let tagged = ok(
        clients[0]
            .put_object_tagging()
            .bucket(&bucket)
            .key("k")
            .version_id(&v1)
            .tagging(
                aws_sdk_s3::types::Tagging::builder()
                    .tag_set(aws_sdk_s3::types::Tag::builder().key("a").value("b").build().expect("tag"))
                    .build()
                    .expect("tagging"),
            )
            .send()
            .await,
        "PutObjectTagging ?versionId of a non-current version",
    );
    assert_eq!(tagged.version_id(), Some(v1.as_str()), "the version tagged is named in the answer");
    let current = ok(clients[2].get_object_tagging().bucket(&bucket).key("k").send().await, "GetObjectTagging");
    assert!(current.tag_set().iter().all(|t| t.key() != "a"), "the current version's tags are not the named one's");

    // Attacks on the version id: unknown, malformed, another key's.
    let unknown = "0".repeat(24);
    expect_err(
        clients[1].get_object().bucket(&bucket).key("k").version_id(&unknown).send().await,
        404,
        Some("NoSuchVersion"),
        "GET of a version that does not exist",
    );
    let too_long = format!("{v1}0");
    for bad in ["../../etc/passwd", "ZZZ", too_long.as_str(), "NULL", "k\u{0}x"] {
        expect_err(
            clients[2].get_object().bucket(&bucket).key("k").version_id(bad).send().await,
            400,
            Some("InvalidArgument"),
            &format!("GET with the malformed version id {bad:?}"),
        );
        expect_err(
            clients[0].delete_object().bucket(&bucket).key("k").version_id(bad).send().await,
            400,
            Some("InvalidArgument"),
            &format!("DELETE with the malformed version id {bad:?}"),
        );
    }
    put_version(&clients[0], &bucket, "other", b"other").await.expect("version id");
    expect_err(
        clients[0].get_object().bucket(&bucket).key("other").version_id(&v1).send().await,
        404,
        Some("NoSuchVersion"),
        "GET of another key's version id",
    );
    let gone = ok(clients[1].delete_object().bucket(&bucket).key("other").version_id(&v1).send().await, "DELETE");
    assert_eq!(gone.delete_marker(), None, "deleting another key's version id deletes nothing");
    assert_bytes_eq(&get_version(&clients[2], &bucket, "k", &v1).await, &one, "k's v1 is still there");

    // A delete leaves a marker: GET is 404 with the marker's headers, GET of the marker 405.
    let deleted = ok(clients[0].delete_object().bucket(&bucket).key("k").send().await, "DeleteObject");
    assert_eq!(deleted.delete_marker(), Some(true), "DELETE in a versioned bucket makes a delete marker");
    let marker = deleted.version_id().expect("the marker's version id").to_owned();
    for client in &clients[1..] {
        let result = client.get_object().bucket(&bucket).key("k").send().await;
        assert_eq!(error_header(&result, "x-amz-delete-marker").as_deref(), Some("true"), "GET of a deleted key");
        assert_eq!(error_header(&result, "x-amz-version-id").as_deref(), Some(marker.as_str()));
        expect_err(result, 404, Some("NoSuchKey"), "GET of a key whose latest is a delete marker");
        let result = client.get_object().bucket(&bucket).key("k").version_id(&marker).send().await;
        assert_eq!(error_header(&result, "x-amz-delete-marker").as_deref(), Some("true"), "GET of the marker");
        expect_err(result, 405, Some("MethodNotAllowed"), "GET ?versionId=<delete marker>");
    }
    assert!(!list_all_keys(&clients[2], &bucket).await.contains(&"k".to_owned()), "a deleted key is not listed");
    assert_bytes_eq(&get_version(&clients[1], &bucket, "k", &v2).await, &two, "versions survive a delete");
    expect_err(
        clients[1].delete_bucket().bucket(&bucket).send().await,
        409,
        Some("BucketNotEmpty"),
        "a bucket holding versions is not empty",
    );

    // Deleting the marker brings the key back; deleting the latest version promotes the next.
    let out = ok(clients[2].delete_object().bucket(&bucket).key("k").version_id(&marker).send().await, "DELETE marker");
    assert_eq!((out.delete_marker(), out.version_id()), (Some(true), Some(marker.as_str())));
    assert_bytes_eq(&get_bytes(&clients[0], &bucket, "k").await, &two, "the marker's delete restores v2");
    let out = ok(clients[0].delete_object().bucket(&bucket).key("k").version_id(&v2).send().await, "DELETE v2");
    assert_eq!((out.delete_marker(), out.version_id()), (None, Some(v2.as_str())));
    let latest = ok(clients[1].get_object().bucket(&bucket).key("k").send().await, "GetObject");
    assert_eq!(latest.version_id(), Some(v1.as_str()), "v1 is the latest again");
    assert_bytes_eq(&latest.body.collect().await.expect("body").into_bytes(), &one, "v1's bytes");
    expect_err(
        clients[2].get_object().bucket(&bucket).key("k").version_id(&v2).send().await,
        404,
        Some("NoSuchVersion"),
        "a deleted version is gone everywhere",
    );

    // DeleteObjects with version ids empties the bucket for good.
    let mut ids = Vec::new();
    for (key, version, _, _) in list_versions_paged(&clients[1], &bucket, 1000).await {
        ids.push(ObjectIdentifier::builder().key(key).version_id(version).build().expect("identifier"));
    }
    assert_eq!(ids.len(), 2, "k's v1 and other's version are left");
    let out = ok(
        clients[0]
            .delete_objects()
            .bucket(&bucket)
            .delete(Delete::builder().set_objects(Some(ids)).build().expect("Delete"))
            .send()
            .await,
        "DeleteObjects with version ids",
    );
    assert!(out.errors().is_empty(), "{:?}", out.errors());
    assert!(out.deleted().iter().all(|d| d.version_id().is_some()), "each deleted version is named");
    ok(clients[2].delete_bucket().bucket(&bucket).send().await, "DeleteBucket once every version is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_bucket_writes_and_replaces_only_the_null_version() {
    let cluster = shared_cluster().await;
    cluster.wait_format_raised().await;
    let clients: Vec<Client> = (0..3).map(|i| cluster.node(i).client()).collect();
    let bucket = create_bucket(&clients[0], "vnull").await;
    // Written before versioning: the null version, kept when versioning starts.
    assert_eq!(put_version(&clients[0], &bucket, "k", b"before").await, None, "no version id while unversioned");
    set_versioning(&clients[1], &bucket, BucketVersioningStatus::Enabled).await;
    let head = ok(clients[2].head_object().bucket(&bucket).key("k").send().await, "HeadObject");
    assert_eq!(head.version_id(), Some("null"), "an object from before versioning is the null version");
    let kept = put_version(&clients[2], &bucket, "k", b"enabled").await.expect("version id");
    assert_eq!(get_version(&clients[0], &bucket, "k", "null").await, b"before", "the null version is kept");

    set_versioning(&clients[0], &bucket, BucketVersioningStatus::Suspended).await;
    assert_eq!(put_version(&clients[1], &bucket, "k", b"first null").await.as_deref(), Some("null"));
    assert_eq!(put_version(&clients[2], &bucket, "k", b"second null").await.as_deref(), Some("null"));
    let versions = list_versions_paged(&clients[0], &bucket, 1000).await;
    let ids: BTreeSet<&str> = versions.iter().map(|v| v.1.as_str()).collect();
    assert_eq!(ids, BTreeSet::from(["null", kept.as_str()]), "one null version, the enabled one kept: {versions:?}");
    assert_eq!(get_version(&clients[1], &bucket, "k", "null").await, b"second null");
    assert_eq!(get_version(&clients[1], &bucket, "k", &kept).await, b"enabled");

    // A delete while suspended: a null delete marker replaces the null version.
    let out = ok(clients[0].delete_object().bucket(&bucket).key("k").send().await, "DeleteObject");
    assert_eq!((out.delete_marker(), out.version_id()), (Some(true), Some("null")));
    let out = ok(clients[2].list_object_versions().bucket(&bucket).send().await, "ListObjectVersions");
    assert_eq!(out.versions().len(), 1, "only the enabled version is left: {out:?}");
    assert_eq!(out.versions()[0].version_id(), Some(kept.as_str()));
    assert_eq!(out.versions()[0].is_latest(), Some(false));
    assert_eq!(out.delete_markers().len(), 1);
    assert_eq!((out.delete_markers()[0].version_id(), out.delete_markers()[0].is_latest()), (Some("null"), Some(true)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unversioned_bucket_answers_without_version_ids() {
    let cluster = shared_cluster().await;
    let clients: Vec<Client> = (0..3).map(|i| cluster.node(i).client()).collect();
    let bucket = create_bucket(&clients[0], "vplain").await;
    assert_eq!(put_version(&clients[0], &bucket, "k", b"one").await, None, "no x-amz-version-id on PUT");
    put_version(&clients[1], &bucket, "k", b"two").await;
    let out = ok(clients[2].get_object().bucket(&bucket).key("k").send().await, "GetObject");
    assert_eq!(out.version_id(), None, "no x-amz-version-id on GET");
    let out = ok(clients[0].delete_object().bucket(&bucket).key("k").send().await, "DeleteObject");
    assert_eq!((out.delete_marker(), out.version_id()), (None, None), "a plain delete");
    let result = clients[1].get_object().bucket(&bucket).key("k").send().await;
    assert_eq!(error_header(&result, "x-amz-delete-marker"), None, "no marker in an unversioned bucket");
    expect_err(result, 404, Some("NoSuchKey"), "GET after the delete");
    let out = ok(clients[2].list_object_versions().bucket(&bucket).send().await, "ListObjectVersions");
    assert!(out.versions().is_empty() && out.delete_markers().is_empty(), "nothing kept: {out:?}");
    expect_err(
        clients[0].delete_object().bucket(&bucket).key("k").version_id("0".repeat(24)).send().await,
        400,
        Some("InvalidArgument"),
        "a version id other than null names nothing in an unversioned bucket",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_object_versions_pages_through_markers_with_prefix_and_delimiter() {
    let cluster = shared_cluster().await;
    cluster.wait_format_raised().await;
    let clients: Vec<Client> = (0..3).map(|i| cluster.node(i).client()).collect();
    let bucket = create_bucket(&clients[0], "vlist").await;
    set_versioning(&clients[0], &bucket, BucketVersioningStatus::Enabled).await;
    let mut a = Vec::new();
    for (i, client) in clients.iter().enumerate() {
        a.push(put_version(client, &bucket, "a", format!("a{i}").as_bytes()).await.expect("id"));
    }
    let ab = put_version(&clients[1], &bucket, "a/b", b"ab").await.expect("id");
    let b = put_version(&clients[2], &bucket, "b", b"b").await.expect("id");
    let b_marker = ok(clients[0].delete_object().bucket(&bucket).key("b").send().await, "DeleteObject")
        .version_id()
        .expect("marker id")
        .to_owned();
    let cd = put_version(&clients[0], &bucket, "c/d", b"cd").await.expect("id");

    let want = vec![
        ("a".to_owned(), a[2].clone(), true, false),
        ("a".to_owned(), a[1].clone(), false, false),
        ("a".to_owned(), a[0].clone(), false, false),
        ("a/b".to_owned(), ab, true, false),
        ("b".to_owned(), b_marker.clone(), true, true),
        ("b".to_owned(), b.clone(), false, false),
        ("c/d".to_owned(), cd, true, false),
    ];
    for (client, max_keys) in [(&clients[1], 1000), (&clients[2], 1), (&clients[0], 2), (&clients[1], 3)] {
        assert_eq!(list_versions_paged(client, &bucket, max_keys).await, want, "max-keys {max_keys}");
    }

    let out = ok(clients[2].list_object_versions().bucket(&bucket).delimiter("/").send().await, "delimiter /");
    let prefixes: Vec<&str> = out.common_prefixes().iter().filter_map(|p| p.prefix()).collect();
    assert_eq!(prefixes, ["a/", "c/"], "common prefixes");
    let keys: Vec<&str> = out.versions().iter().filter_map(|v| v.key()).collect();
    assert_eq!(keys, ["a", "a", "a", "b"], "versions beside the prefixes");
    assert_eq!(out.delete_markers().len(), 1);
    let out = ok(clients[0].list_object_versions().bucket(&bucket).prefix("a").send().await, "prefix a");
    let keys: Vec<&str> = out.versions().iter().filter_map(|v| v.key()).collect();
    assert_eq!(keys, ["a", "a", "a", "a/b"], "prefix a");
    // Resuming after a's second version lists its third, then the rest.
    let out = ok(
        clients[1].list_object_versions().bucket(&bucket).key_marker("a").version_id_marker(&a[1]).send().await,
        "ListObjectVersions after a's second version",
    );
    let first = out.versions().first().map(|v| (v.key(), v.version_id()));
    assert_eq!(first, Some((Some("a"), Some(a[0].as_str()))), "resumes right after the version-id marker");

    expect_err(
        clients[2].list_object_versions().bucket(&bucket).version_id_marker(&b).send().await,
        400,
        Some("InvalidArgument"),
        "a version-id marker without a key marker",
    );
    expect_err(
        clients[2].list_object_versions().bucket(&bucket).key_marker("a").version_id_marker("../x").send().await,
        400,
        Some("InvalidArgument"),
        "a malformed version-id marker",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_from_a_version_and_multipart_uploads_make_new_versions() {
    let cluster = shared_cluster().await;
    cluster.wait_format_raised().await;
    let clients: Vec<Client> = (0..3).map(|i| cluster.node(i).client()).collect();
    let bucket = create_bucket(&clients[0], "vcopy").await;
    set_versioning(&clients[0], &bucket, BucketVersioningStatus::Enabled).await;
    let old = random_bytes(7, 100 * 1024);
    let v1 = put_version(&clients[0], &bucket, "src", &old).await.expect("id");
    put_version(&clients[0], &bucket, "src", b"newer").await.expect("id");

    let out = ok(
        clients[0]
            .copy_object()
            .bucket(&bucket)
            .key("dst")
            .copy_source(format!("{bucket}/src?versionId={v1}"))
            .send()
            .await,
        "CopyObject from a version",
    );
    assert_eq!(out.copy_source_version_id(), Some(v1.as_str()), "x-amz-copy-source-version-id");
    let copied = out.version_id().expect("the copy's own version id").to_owned();
    assert_bytes_eq(&get_version(&clients[2], &bucket, "dst", &copied).await, &old, "the copy holds v1's bytes");

    // Restoring an older version: copied onto its own key, it becomes the latest again.
    let out = ok(
        clients[1]
            .copy_object()
            .bucket(&bucket)
            .key("src")
            .copy_source(format!("{bucket}/src?versionId={v1}"))
            .send()
            .await,
        "CopyObject of a version onto its own key",
    );
    let restored = out.version_id().expect("the restore is a new version").to_owned();
    assert_ne!(restored, v1);
    let latest = ok(clients[2].get_object().bucket(&bucket).key("src").send().await, "GetObject after the restore");
    assert_eq!(latest.version_id(), Some(restored.as_str()));
    assert_bytes_eq(&latest.body.collect().await.expect("body").into_bytes(), &old, "restored bytes");
    expect_err(
        clients[1].copy_object().bucket(&bucket).key("src").copy_source(format!("{bucket}/src")).send().await,
        400,
        Some("InvalidRequest"),
        "CopyObject of the latest onto itself without changing anything",
    );

    let marker = ok(clients[1].delete_object().bucket(&bucket).key("src").send().await, "DeleteObject")
        .version_id()
        .expect("marker")
        .to_owned();
    expect_err(
        clients[0]
            .copy_object()
            .bucket(&bucket)
            .key("dst")
            .copy_source(format!("{bucket}/src?versionId={marker}"))
            .send()
            .await,
        400,
        Some("InvalidRequest"),
        "CopyObject from a delete marker",
    );
    expect_err(
        clients[0].copy_object().bucket(&bucket).key("dst").copy_source(format!("{bucket}/src")).send().await,
        404,
        Some("NoSuchKey"),
        "CopyObject of a key whose latest is a delete marker",
    );
    expect_err(
        clients[0]
            .copy_object()
            .bucket(&bucket)
            .key("dst")
            .copy_source(format!("{bucket}/src?versionId={}", "f".repeat(24)))
            .send()
            .await,
        404,
        Some("NoSuchVersion"),
        "CopyObject from an unknown version",
    );

    // Multipart completion creates a version; the one before it is kept.
    let mut ids = Vec::new();
    for (n, body) in [b"multi one".as_slice(), b"multi two".as_slice()].into_iter().enumerate() {
        let client = &clients[n + 1];
        let upload = ok(client.create_multipart_upload().bucket(&bucket).key("mp").send().await, "Create");
        let id = upload.upload_id().expect("upload id");
        let part = ok(
            client
                .upload_part()
                .bucket(&bucket)
                .key("mp")
                .upload_id(id)
                .part_number(1)
                .body(ByteStream::from(body.to_vec()))
                .send()
                .await,
            "UploadPart",
        );
        let done = CompletedMultipartUpload::builder()
            .parts(CompletedPart::builder().part_number(1).set_e_tag(part.e_tag().map(str::to_owned)).build())
            .build();
        let out = ok(
            client
                .complete_multipart_upload()
                .bucket(&bucket)
                .key("mp")
                .upload_id(id)
                .multipart_upload(done)
                .send()
                .await,
            "CompleteMultipartUpload",
        );
        ids.push(out.version_id().expect("a version id on completion").to_owned());
    }
    assert_ne!(ids[0], ids[1]);
    assert_eq!(get_version(&clients[0], &bucket, "mp", &ids[0]).await, b"multi one");
    assert_eq!(get_version(&clients[0], &bucket, "mp", &ids[1]).await, b"multi two");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_version_is_replicated_and_kept_across_restarts() {
    let cluster = TestCluster::start().await;
    cluster.wait_format_raised().await;
    let clients: Vec<Client> = (0..3).map(|i| cluster.node(i).client()).collect();
    let bucket = create_bucket(&clients[0], "vrepl").await;
    set_versioning(&clients[0], &bucket, BucketVersioningStatus::Enabled).await;
    let one = random_bytes(11, 200 * 1024);
    let two = random_bytes(12, 250 * 1024);
    let v1 = put_version(&clients[0], &bucket, "film", &one).await.expect("id");
    let v2 = put_version(&clients[0], &bucket, "film", &two).await.expect("id");

    // Both versions' blobs reach every node, the overwritten one included.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let held: Vec<(usize, usize)> =
            (0..3).map(|i| (cluster.blob_files_with(i, &one).len(), cluster.blob_files_with(i, &two).len())).collect();
        if held.iter().all(|h| *h == (1, 1)) {
            break;
        }
        assert!(Instant::now() < deadline, "versions not replicated within 60 s: (v1, v2) copies per node {held:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // With the writer down, the other regions serve the old version from their own copies.
    cluster.node(0).kill9();
    assert_bytes_eq(&get_version(&clients[1], &bucket, "film", &v1).await, &one, "v1 without the writer");
    assert_bytes_eq(&get_version(&clients[2], &bucket, "film", &v2).await, &two, "v2 without the writer");
    cluster.node(0).restart().await;
    cluster.node(1).restart().await;

    for client in &clients {
        let listed = list_versions_paged(client, &bucket, 1000).await;
        assert_eq!(
            listed,
            vec![("film".to_owned(), v2.clone(), true, false), ("film".to_owned(), v1.clone(), false, false)],
            "versions after restarts"
        );
    }
    assert_bytes_eq(&get_version(&clients[0], &bucket, "film", &v1).await, &one, "v1 after restart");

    // The scrub checks kept versions too: node 2's copy of v1, corrupted, is found and pulled again.
    let copy = cluster.blob_files_with(2, &one).pop().expect("node 2 holds v1");
    let mut bytes = std::fs::read(&copy).expect("read v1's blob");
    for b in &mut bytes[..64] {
        *b = !*b;
    }
    std::fs::write(&copy, &bytes).expect("corrupt v1's blob");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["scrub", "--timeout-secs", "120", "--config"])
        .arg(cluster.node(2).config_path())
        .args(["--region", harness::cluster::REGIONS[2].0])
        .output()
        .expect("run meridian scrub");
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "meridian scrub: {report}\n{}", String::from_utf8_lossy(&output.stderr));
    let corrupt = report
        .lines()
        .find_map(|l| l.split_once(':').filter(|(f, _)| f.trim() == "corrupt").map(|(_, v)| v.trim().to_owned()));
    assert_eq!(corrupt.as_deref(), Some("1"), "the scrub found the kept version's bad copy: {report}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while cluster.blob_files_with(2, &one).len() != 1 {
        assert!(Instant::now() < deadline, "v1 not pulled again on node 2 within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_bytes_eq(&get_version(&clients[2], &bucket, "film", &v1).await, &one, "v1 at node 2 after the repair");

    // Deleting a version frees its blob on every node.
    ok(clients[1].delete_object().bucket(&bucket).key("film").version_id(&v1).send().await, "DELETE v1");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let held: Vec<(usize, usize)> =
            (0..3).map(|i| (cluster.blob_files_with(i, &one).len(), cluster.blob_files_with(i, &two).len())).collect();
        if held.iter().all(|h| *h == (0, 1)) {
            break;
        }
        assert!(Instant::now() < deadline, "v1's blob not freed within 60 s: (v1, v2) copies per node {held:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versioning_lock_and_access_settings_wait_for_every_node_to_run_this_release() {
    // Every node in previous-release mode: the cluster keeps writing format 0, which a node of
    // release a01dacd reads, so nothing of format 2 may be proposed.
    let options = harness::cluster::ClusterOptions {
        env: vec![("MERIDIAN_TESTING_PREVIOUS_RELEASE", "1")],
        ..harness::cluster::ClusterOptions::default()
    };
    let cluster = TestCluster::start_with(options).await;
    let clients: Vec<Client> = (0..3).map(|i| cluster.node(i).client()).collect();
    let bucket = create_bucket(&clients[0], "vupgrade").await;
    let config = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
    let refused = expect_err(
        clients[1].put_bucket_versioning().bucket(&bucket).versioning_configuration(config).send().await,
        503,
        Some("ServiceUnavailable"),
        "PutBucketVersioning before the format raise",
    );
    assert!(format!("{refused:?}").contains("being upgraded"), "the answer says why: {refused:?}");
    let out = ok(clients[2].get_bucket_versioning().bucket(&bucket).send().await, "GetBucketVersioning");
    assert_eq!(out.status(), None, "nothing was stored");
    // Unversioned buckets work as before, `versionId=null` included.
    assert_eq!(put_version(&clients[0], &bucket, "k", b"x").await, None);
    ok(clients[1].delete_object().bucket(&bucket).key("k").version_id("null").send().await, "DELETE ?versionId=null");
    expect_err(clients[2].head_object().bucket(&bucket).key("k").send().await, 404, None, "deleted");

    // The other settings of this release wait the same way, and store nothing meanwhile.
    use aws_sdk_s3::types::{BucketCannedAcl, ObjectCannedAcl, ObjectLockConfiguration, ObjectLockEnabled};
    let upgrading = |what: &str| format!("{what} before the format raise");
    expect_err(
        clients[0].create_bucket().bucket(format!("{bucket}-lock")).object_lock_enabled_for_bucket(true).send().await,
        503,
        Some("ServiceUnavailable"),
        &upgrading("CreateBucket with Object Lock"),
    );
    expect_err(clients[1].head_bucket().bucket(format!("{bucket}-lock")).send().await, 404, None, "no bucket made");
    let lock = ObjectLockConfiguration::builder().object_lock_enabled(ObjectLockEnabled::Enabled).build();
    expect_err(
        clients[2].put_object_lock_configuration().bucket(&bucket).object_lock_configuration(lock).send().await,
        503,
        Some("ServiceUnavailable"),
        &upgrading("PutObjectLockConfiguration"),
    );
    expect_err(
        clients[0].put_bucket_acl().bucket(&bucket).acl(BucketCannedAcl::PublicRead).send().await,
        503,
        Some("ServiceUnavailable"),
        &upgrading("PutBucketAcl"),
    );
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{bucket}/*"}}]}}"#
    );
    expect_err(
        clients[1].put_bucket_policy().bucket(&bucket).policy(policy).send().await,
        503,
        Some("ServiceUnavailable"),
        &upgrading("PutBucketPolicy"),
    );
    expect_err(
        clients[2]
            .put_object()
            .bucket(&bucket)
            .key("public")
            .acl(ObjectCannedAcl::PublicRead)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await,
        503,
        Some("ServiceUnavailable"),
        &upgrading("PutObject with a public ACL"),
    );
    expect_err(clients[0].head_object().bucket(&bucket).key("public").send().await, 404, None, "nothing stored");
    // `x-amz-acl: private`, which many tools send on every write, stores nothing new: it works.
    ok(
        clients[0]
            .put_object()
            .bucket(&bucket)
            .key("private")
            .acl(ObjectCannedAcl::Private)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await,
        "PutObject with x-amz-acl: private",
    );
}
