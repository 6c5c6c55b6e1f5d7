//! Listing against a real node: ListObjectsV2 (prefix, delimiter, max-keys, continuation-token,
//! start-after), ListObjects v1 (marker, NextMarker), `encoding-type=url`, ListObjectVersions.

use crate::harness;

use std::collections::BTreeSet;

use aws_sdk_s3::Client;
use aws_sdk_s3::types::EncodingType;
use harness::*;

async fn put_keys(client: &Client, bucket: &str, keys: &[&str]) {
    for k in keys {
        put(client, bucket, k, format!("body of {k}").as_bytes()).await;
    }
}

fn keys_of(contents: &[aws_sdk_s3::types::Object]) -> Vec<String> {
    contents.iter().map(|o| o.key().expect("Key").to_owned()).collect()
}

fn prefixes_of(prefixes: &[aws_sdk_s3::types::CommonPrefix]) -> Vec<String> {
    prefixes.iter().map(|p| p.prefix().expect("Prefix").to_owned()).collect()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_v2_prefix_and_delimiter() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "lsprefix").await;
    put_keys(
        &client,
        &bucket,
        &[
            "photos/2024/a.jpg",
            "photos/2024/b.jpg",
            "photos/2025/c.jpg",
            "photos/top.jpg",
            "videos/v.mp4",
            "readme.txt",
        ],
    )
    .await;

    let out =
        ok(client.list_objects_v2().bucket(&bucket).prefix("photos/").send().await, "ListObjectsV2 prefix=photos/");
    assert_eq!(
        keys_of(out.contents()),
        strings(&["photos/2024/a.jpg", "photos/2024/b.jpg", "photos/2025/c.jpg", "photos/top.jpg"]),
        "prefix=photos/"
    );
    assert!(out.common_prefixes().is_empty(), "no delimiter, no CommonPrefixes");
    assert_eq!(out.key_count(), Some(4), "KeyCount prefix=photos/");
    assert_eq!(out.is_truncated(), Some(false), "IsTruncated prefix=photos/");
    let sizes: Vec<i64> = out.contents().iter().map(|o| o.size().unwrap_or(-1)).collect();
    let want_sizes: Vec<i64> = ["photos/2024/a.jpg", "photos/2024/b.jpg", "photos/2025/c.jpg", "photos/top.jpg"]
        .iter()
        .map(|k| format!("body of {k}").len() as i64)
        .collect();
    assert_eq!(sizes, want_sizes, "Size of listed objects");
    for o in out.contents() {
        let k = o.key().expect("Key");
        assert_eq!(o.e_tag(), Some(etag_of(format!("body of {k}").as_bytes()).as_str()), "listed ETag of {k}");
        assert!(o.last_modified().is_some(), "listed LastModified of {k}");
    }

    let out = ok(client.list_objects_v2().bucket(&bucket).delimiter("/").send().await, "ListObjectsV2 delimiter=/");
    assert_eq!(keys_of(out.contents()), strings(&["readme.txt"]), "delimiter=/ contents");
    assert_eq!(prefixes_of(out.common_prefixes()), strings(&["photos/", "videos/"]), "delimiter=/ CommonPrefixes");
    assert_eq!(out.key_count(), Some(3), "KeyCount counts keys and CommonPrefixes");

    let out = ok(
        client.list_objects_v2().bucket(&bucket).prefix("photos/").delimiter("/").send().await,
        "ListObjectsV2 prefix=photos/ delimiter=/",
    );
    assert_eq!(keys_of(out.contents()), strings(&["photos/top.jpg"]));
    assert_eq!(prefixes_of(out.common_prefixes()), strings(&["photos/2024/", "photos/2025/"]));

    let out =
        ok(client.list_objects_v2().bucket(&bucket).prefix("nothing/").send().await, "ListObjectsV2 prefix=nothing/");
    assert!(out.contents().is_empty() && out.common_prefixes().is_empty());
    assert_eq!(out.key_count(), Some(0), "KeyCount of an empty listing");
    assert_eq!(out.is_truncated(), Some(false));

    // A delimiter other than "/".
    let out = ok(client.list_objects_v2().bucket(&bucket).delimiter(".").send().await, "ListObjectsV2 delimiter=.");
    assert!(out.contents().is_empty(), "every key contains a dot: {:?}", keys_of(out.contents()));
    assert_eq!(
        prefixes_of(out.common_prefixes()),
        strings(&["photos/2024/a.", "photos/2024/b.", "photos/2025/c.", "photos/top.", "readme.", "videos/v."])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_v2_paging_with_continuation_token() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "lspaging").await;
    let all: Vec<String> = (0..25).map(|i| format!("key-{i:02}")).collect();
    // Put in a scrambled order: listing order must not depend on insertion order.
    for i in [13, 0, 24, 7, 1, 19, 2, 3, 22, 4, 5, 6, 8, 9, 10, 11, 12, 14, 15, 16, 17, 18, 20, 21, 23] {
        put(&client, &bucket, &all[i], all[i].as_bytes()).await;
    }

    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut page_sizes = Vec::new();
    loop {
        assert!(page_sizes.len() < 10, "too many pages: {page_sizes:?}");
        let out = ok(
            client.list_objects_v2().bucket(&bucket).max_keys(7).set_continuation_token(token.clone()).send().await,
            "ListObjectsV2 max-keys=7",
        );
        assert_eq!(out.max_keys(), Some(7), "MaxKeys echoed");
        assert_eq!(out.continuation_token(), token.as_deref(), "ContinuationToken echoed");
        let keys = keys_of(out.contents());
        assert_eq!(out.key_count(), Some(keys.len() as i32), "KeyCount of page {}", page_sizes.len());
        page_sizes.push(keys.len());
        seen.extend(keys);
        if out.is_truncated() == Some(true) {
            token = Some(out.next_continuation_token().expect("IsTruncated without NextContinuationToken").to_owned());
        } else {
            assert_eq!(out.next_continuation_token(), None, "NextContinuationToken on the last page");
            break;
        }
    }
    assert_eq!(page_sizes, vec![7, 7, 7, 4], "page sizes");
    assert_eq!(seen, all, "all 25 keys exactly once, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_v2_start_after() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "lsstart").await;
    let all: Vec<String> = (0..15).map(|i| format!("key-{i:02}")).collect();
    for k in &all {
        put(&client, &bucket, k, b"x").await;
    }
    let out = ok(
        client.list_objects_v2().bucket(&bucket).start_after("key-10").send().await,
        "ListObjectsV2 start-after=key-10",
    );
    assert_eq!(keys_of(out.contents()), all[11..].to_vec(), "start-after an existing key");
    assert_eq!(out.start_after(), Some("key-10"), "StartAfter echoed");

    let out = ok(
        client.list_objects_v2().bucket(&bucket).start_after("key-05x").send().await,
        "ListObjectsV2 start-after=key-05x",
    );
    assert_eq!(keys_of(out.contents()), all[6..].to_vec(), "start-after a key between keys");

    let out =
        ok(client.list_objects_v2().bucket(&bucket).start_after("zzz").send().await, "ListObjectsV2 start-after=zzz");
    assert!(out.contents().is_empty(), "start-after past the last key");

    // start-after combined with paging: the token wins after the first page.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..10 {
        let out = ok(
            client
                .list_objects_v2()
                .bucket(&bucket)
                .start_after("key-03")
                .max_keys(4)
                .set_continuation_token(token.clone())
                .send()
                .await,
            "ListObjectsV2 start-after + paging",
        );
        seen.extend(keys_of(out.contents()));
        if out.is_truncated() != Some(true) {
            break;
        }
        token = out.next_continuation_token().map(str::to_owned);
    }
    assert_eq!(seen, all[4..].to_vec(), "start-after + paging");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_v2_paging_counts_common_prefixes() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "lsprefpage").await;
    put_keys(&client, &bucket, &["a/1", "a/2", "b/1", "c", "d/1", "d/2", "e"]).await;
    let mut contents = Vec::new();
    let mut prefixes = Vec::new();
    let mut token: Option<String> = None;
    for page in 0..10 {
        let out = ok(
            client
                .list_objects_v2()
                .bucket(&bucket)
                .delimiter("/")
                .max_keys(2)
                .set_continuation_token(token.clone())
                .send()
                .await,
            "ListObjectsV2 delimiter=/ max-keys=2",
        );
        let n = out.contents().len() + out.common_prefixes().len();
        assert!(n <= 2, "page {page} holds {n} entries with max-keys=2");
        contents.extend(keys_of(out.contents()));
        prefixes.extend(prefixes_of(out.common_prefixes()));
        if out.is_truncated() != Some(true) {
            break;
        }
        token = Some(out.next_continuation_token().expect("token").to_owned());
    }
    assert_eq!(contents, strings(&["c", "e"]), "contents across pages");
    assert_eq!(prefixes, strings(&["a/", "b/", "d/"]), "each CommonPrefix exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_v1_marker_and_next_marker() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "lsv1").await;
    put_keys(&client, &bucket, &["a/1", "a/2", "b", "c/1", "d"]).await;

    let out = ok(client.list_objects().bucket(&bucket).marker("b").send().await, "ListObjects marker=b");
    assert_eq!(keys_of(out.contents()), strings(&["c/1", "d"]), "marker=b");
    assert_eq!(out.marker(), Some("b"), "Marker echoed");

    // Paging without a delimiter: the client continues from the last key.
    let mut seen = Vec::new();
    let mut marker: Option<String> = None;
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages < 10, "too many pages");
        let out = ok(
            client.list_objects().bucket(&bucket).max_keys(2).set_marker(marker.clone()).send().await,
            "ListObjects max-keys=2",
        );
        let keys = keys_of(out.contents());
        seen.extend(keys.clone());
        if out.is_truncated() == Some(true) {
            marker = Some(
                out.next_marker()
                    .map(str::to_owned)
                    .or_else(|| keys.last().cloned())
                    .expect("a truncated page has keys"),
            );
        } else {
            break;
        }
    }
    assert_eq!(seen, strings(&["a/1", "a/2", "b", "c/1", "d"]), "v1 paging");
    assert_eq!(pages, 3, "5 keys with max-keys=2");

    // With a delimiter, NextMarker is returned on truncated pages.
    let out = ok(
        client.list_objects().bucket(&bucket).delimiter("/").max_keys(2).send().await,
        "ListObjects delimiter=/ max-keys=2",
    );
    assert_eq!(prefixes_of(out.common_prefixes()), strings(&["a/"]), "page 1 prefixes");
    assert_eq!(keys_of(out.contents()), strings(&["b"]), "page 1 contents");
    assert_eq!(out.is_truncated(), Some(true), "page 1 IsTruncated");
    assert_eq!(out.next_marker(), Some("b"), "page 1 NextMarker");
    let out = ok(
        client.list_objects().bucket(&bucket).delimiter("/").max_keys(2).marker("b").send().await,
        "ListObjects delimiter=/ max-keys=2 marker=b",
    );
    assert_eq!(prefixes_of(out.common_prefixes()), strings(&["c/"]), "page 2 prefixes");
    assert_eq!(keys_of(out.contents()), strings(&["d"]), "page 2 contents");
    assert_eq!(out.is_truncated(), Some(false), "page 2 IsTruncated");
}

/// Keys that break naive URL or XML handling.
const AWKWARD_KEYS: &[&str] = &[
    "100% real.txt",
    "a+b=c.txt",
    "plus+only",
    "space in name/file one.txt",
    "space in name/file+two.txt",
    "unicodé/日本語 ファイル.txt",
    "tilde~and*star(1)",
    "amp&lt<gt>\"quote'.xml",
    "question?mark#hash",
    "percent%2Fencoded-looking",
    "trailing space ",
    "emoji-🎬.mp4",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awkward_keys_round_trip_and_list_raw() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "lsraw").await;
    put_keys(&client, &bucket, AWKWARD_KEYS).await;
    for k in AWKWARD_KEYS {
        assert_eq!(get_bytes(&client, &bucket, k).await, format!("body of {k}").into_bytes(), "GET {k:?}");
    }
    let mut want = strings(AWKWARD_KEYS);
    want.sort();
    assert_eq!(list_all_keys(&client, &bucket).await, want, "raw listing (no encoding-type)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoding_type_url_round_trips_keys() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "lsurl").await;
    put_keys(&client, &bucket, AWKWARD_KEYS).await;
    let mut want = strings(AWKWARD_KEYS);
    want.sort();

    // aws-sdk-s3 does not decode: with EncodingType::Url the keys come back URL-encoded and the
    // caller decodes them (as boto3 does, with unquote_plus).
    let out = ok(
        client.list_objects_v2().bucket(&bucket).encoding_type(EncodingType::Url).send().await,
        "ListObjectsV2 encoding-type=url",
    );
    assert_eq!(out.encoding_type(), Some(&EncodingType::Url), "EncodingType echoed");
    let encoded = keys_of(out.contents());
    for e in &encoded {
        assert!(!e.contains(' ') && e.is_ascii(), "encoding-type=url returned a key that is not URL-encoded: {e:?}");
    }
    let decoded: Vec<String> = encoded.iter().map(|e| url_decode(e)).collect();
    assert_eq!(decoded, want, "ListObjectsV2 keys decoded from encoding-type=url");

    // With a delimiter the CommonPrefixes are encoded too.
    let out = ok(
        client.list_objects_v2().bucket(&bucket).delimiter("/").encoding_type(EncodingType::Url).send().await,
        "ListObjectsV2 delimiter=/ encoding-type=url",
    );
    let prefixes: Vec<String> = prefixes_of(out.common_prefixes()).iter().map(|p| url_decode(p)).collect();
    assert_eq!(prefixes, strings(&["space in name/", "unicodé/"]), "decoded CommonPrefixes");
    for p in prefixes_of(out.common_prefixes()) {
        assert!(!p.contains(' ') && p.is_ascii(), "CommonPrefix not URL-encoded: {p:?}");
    }

    // A prefix with special characters selects exactly its keys.
    let out = ok(
        client
            .list_objects_v2()
            .bucket(&bucket)
            .prefix("space in name/file+")
            .encoding_type(EncodingType::Url)
            .send()
            .await,
        "ListObjectsV2 prefix with space and plus",
    );
    let decoded: Vec<String> = keys_of(out.contents()).iter().map(|e| url_decode(e)).collect();
    assert_eq!(decoded, strings(&["space in name/file+two.txt"]));

    // ListObjects v1 too.
    let out = ok(
        client.list_objects().bucket(&bucket).encoding_type(EncodingType::Url).send().await,
        "ListObjects encoding-type=url",
    );
    let decoded: Vec<String> = keys_of(out.contents()).iter().map(|e| url_decode(e)).collect();
    assert_eq!(decoded, want, "ListObjects keys decoded from encoding-type=url");

    // Paging with encoded keys: the continuation token must work and nothing may repeat.
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..20 {
        let out = ok(
            client
                .list_objects_v2()
                .bucket(&bucket)
                .encoding_type(EncodingType::Url)
                .max_keys(5)
                .set_continuation_token(token.clone())
                .send()
                .await,
            "ListObjectsV2 encoding-type=url max-keys=5",
        );
        all.extend(keys_of(out.contents()).iter().map(|e| url_decode(e)));
        if out.is_truncated() != Some(true) {
            break;
        }
        token = Some(out.next_continuation_token().expect("token").to_owned());
    }
    assert_eq!(all, want, "paged encoded listing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_object_versions_of_an_unversioned_bucket_lists_each_object_as_its_null_version() {
    let node = shared_node().await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "lsversions").await;
    put_keys(&client, &bucket, &["v/1", "v/2", "w"]).await;
    // An overwrite must not produce a second version in an unversioned bucket.
    put(&client, &bucket, "w", b"second").await;

    let out = ok(client.list_object_versions().bucket(&bucket).send().await, "ListObjectVersions");
    let keys: Vec<&str> = out.versions().iter().filter_map(|v| v.key()).collect();
    assert_eq!(keys, vec!["v/1", "v/2", "w"], "one version per key");
    for v in out.versions() {
        assert_eq!(v.version_id(), Some("null"), "VersionId of {:?}", v.key());
        assert_eq!(v.is_latest(), Some(true), "IsLatest of {:?}", v.key());
    }
    let w = out.versions().iter().find(|v| v.key() == Some("w")).expect("w");
    assert_eq!(w.size(), Some(6), "size of the latest w");
    assert_eq!(w.e_tag(), Some(etag_of(b"second").as_str()), "ETag of w");
    assert!(out.delete_markers().is_empty(), "no delete markers: {:?}", out.delete_markers());

    let out =
        ok(client.list_object_versions().bucket(&bucket).prefix("v/").send().await, "ListObjectVersions prefix=v/");
    let keys: BTreeSet<&str> = out.versions().iter().filter_map(|v| v.key()).collect();
    assert_eq!(keys, BTreeSet::from(["v/1", "v/2"]), "ListObjectVersions prefix");

    // Conformance suites empty buckets through ListObjectVersions + DeleteObjects with the
    // returned version ids: "null" must be accepted.
    let ids: Vec<_> = ok(client.list_object_versions().bucket(&bucket).send().await, "ListObjectVersions")
        .versions()
        .iter()
        .map(|v| {
            aws_sdk_s3::types::ObjectIdentifier::builder()
                .key(v.key().expect("key"))
                .set_version_id(v.version_id().map(str::to_owned))
                .build()
                .expect("ObjectIdentifier")
        })
        .collect();
    let out = ok(
        client
            .delete_objects()
            .bucket(&bucket)
            .delete(aws_sdk_s3::types::Delete::builder().set_objects(Some(ids)).build().expect("Delete"))
            .send()
            .await,
        "DeleteObjects with VersionId=null",
    );
    assert!(out.errors().is_empty(), "DeleteObjects errors: {:?}", out.errors());
    assert!(list_all_keys(&client, &bucket).await.is_empty(), "bucket emptied through versions");
    ok(client.delete_bucket().bucket(&bucket).send().await, "DeleteBucket");
}
