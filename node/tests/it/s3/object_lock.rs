//! S3 Object Lock against real nodes (aws-sdk-s3): buckets created with lock, the lock
//! configuration and its default retention, retention and legal hold per version, the lock
//! headers of writes and reads, and deletes a lock refuses. Settings are written through one
//! region and read and attacked through the others; a COMPLIANCE version is tried through every
//! region before and after a restart; GOVERNANCE's bypass is the bucket owner's, not a key
//! that only has a write share.

use crate::harness;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    BucketVersioningStatus, CompletedMultipartUpload, CompletedPart, DefaultRetention, Delete, ObjectIdentifier,
    ObjectLockConfiguration, ObjectLockEnabled, ObjectLockLegalHold, ObjectLockLegalHoldStatus, ObjectLockMode,
    ObjectLockRetention, ObjectLockRetentionMode, ObjectLockRule, VersioningConfiguration,
};
use harness::cluster::{TestCluster, shared_cluster};
use harness::*;

/// Milliseconds since the epoch, now.
fn now_ms() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_millis())
        .expect("a time that fits")
}

/// `offset` from now, as the SDK's date (whole seconds, as S3 headers carry them).
fn in_future(offset: Duration) -> DateTime {
    let secs = now_ms() / 1000 + i64::try_from(offset.as_secs()).expect("small offset");
    DateTime::from_secs(secs)
}

/// A bucket created with Object Lock through `client`.
async fn create_locked_bucket(client: &Client, prefix: &str) -> String {
    let bucket = unique_bucket(prefix);
    ok(
        client.create_bucket().bucket(&bucket).object_lock_enabled_for_bucket(true).send().await,
        "CreateBucket with object lock",
    );
    bucket
}

/// PUT with a retention; returns the version id.
async fn put_retained(client: &Client, bucket: &str, key: &str, mode: ObjectLockMode, until: DateTime) -> String {
    let out = ok(
        client
            .put_object()
            .bucket(bucket)
            .key(key)
            .object_lock_mode(mode)
            .object_lock_retain_until_date(until)
            .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Crc32)
            .body(ByteStream::from_static(b"locked bytes"))
            .send()
            .await,
        "PutObject with a retention",
    );
    out.version_id().expect("a version id").to_owned()
}

/// A retention as PutObjectRetention sends it.
fn retention(mode: ObjectLockRetentionMode, until: DateTime) -> ObjectLockRetention {
    ObjectLockRetention::builder().mode(mode).retain_until_date(until).build()
}

/// A lock configuration with an optional default retention of `days`.
fn lock_config(default: Option<(ObjectLockRetentionMode, i32)>) -> ObjectLockConfiguration {
    let mut config = ObjectLockConfiguration::builder().object_lock_enabled(ObjectLockEnabled::Enabled);
    if let Some((mode, days)) = default {
        let rule = ObjectLockRule::builder()
            .default_retention(DefaultRetention::builder().mode(mode).days(days).build())
            .build();
        config = config.rule(rule);
    }
    config.build()
}

/// Tries to delete `version` for good through `client` (with or without the bypass header):
/// S3 answers 403 AccessDenied for a locked version.
async fn delete_version_refused(client: &Client, bucket: &str, key: &str, version: &str, bypass: bool, what: &str) {
    expect_err(
        client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .version_id(version)
            .bypass_governance_retention(bypass)
            .send()
            .await,
        403,
        Some("AccessDenied"),
        what,
    );
}

/// Configuration, defaults and the bad cases, written through one region and read through the
/// others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_configuration_defaults_and_bad_requests_as_aws_answers_them() {
    let cluster = shared_cluster().await;
    cluster.wait_format_raised().await;
    // Writes with lock parameters carry a checksum, as AWS requires (see
    // `puts_with_lock_parameters_need_an_integrity_header`).
    let clients: Vec<Client> = (0..3).map(|i| cluster.node(i).client_checksums_when_supported()).collect();
    let bucket = create_locked_bucket(&clients[0], "olconf").await;

    // Lock turns versioning on, for good.
    let versioning = ok(clients[1].get_bucket_versioning().bucket(&bucket).send().await, "GetBucketVersioning");
    assert_eq!(versioning.status(), Some(&BucketVersioningStatus::Enabled), "a lock bucket is versioned");
    let suspend = VersioningConfiguration::builder().status(BucketVersioningStatus::Suspended).build();
    expect_err(
        clients[2].put_bucket_versioning().bucket(&bucket).versioning_configuration(suspend).send().await,
        409,
        Some("InvalidBucketState"),
        "suspending versioning of a lock bucket",
    );
    let config =
        ok(clients[2].get_object_lock_configuration().bucket(&bucket).send().await, "GetObjectLockConfiguration");
    let config = config.object_lock_configuration().expect("a configuration");
    assert_eq!(config.object_lock_enabled(), Some(&ObjectLockEnabled::Enabled));
    assert!(config.rule().is_none(), "no default retention yet");

    // A default retention, set through one region, is applied to writes through another.
    ok(
        clients[1]
            .put_object_lock_configuration()
            .bucket(&bucket)
            .object_lock_configuration(lock_config(Some((ObjectLockRetentionMode::Governance, 1))))
            .send()
            .await,
        "PutObjectLockConfiguration",
    );
    let read = ok(clients[0].get_object_lock_configuration().bucket(&bucket).send().await, "read back");
    let default = read.object_lock_configuration().and_then(|c| c.rule()).and_then(|r| r.default_retention());
    assert_eq!(default.and_then(|d| d.mode()), Some(&ObjectLockRetentionMode::Governance));
    assert_eq!(default.and_then(aws_sdk_s3::types::DefaultRetention::days), Some(1));
    let before = now_ms();
    let written = ok(
        clients[2].put_object().bucket(&bucket).key("default").body(ByteStream::from_static(b"d")).send().await,
        "PutObject under the default retention",
    );
    let version = written.version_id().expect("version id").to_owned();
    let head = ok(clients[0].head_object().bucket(&bucket).key("default").send().await, "HeadObject");
    assert_eq!(head.object_lock_mode(), Some(&ObjectLockMode::Governance), "the default mode");
    let until = head.object_lock_retain_until_date().expect("a retain-until date").to_millis().expect("millis");
    let day = 24 * 3600 * 1000;
    assert!((before + day - 1000..=now_ms() + day + 1000).contains(&until), "one day from the write: {until}");
    assert_eq!(head.object_lock_legal_hold_status(), Some(&ObjectLockLegalHoldStatus::Off));
    delete_version_refused(&clients[1], &bucket, "default", &version, false, "deleting a default-retained version")
        .await;

    // Bad configurations.
    let zero = lock_config(Some((ObjectLockRetentionMode::Governance, 0)));
    expect_err(
        clients[0].put_object_lock_configuration().bucket(&bucket).object_lock_configuration(zero).send().await,
        400,
        Some("InvalidArgument"),
        "a default retention of 0 days",
    );
    let both = ObjectLockConfiguration::builder()
        .object_lock_enabled(ObjectLockEnabled::Enabled)
        .rule(
            ObjectLockRule::builder()
                .default_retention(
                    DefaultRetention::builder().mode(ObjectLockRetentionMode::Compliance).days(1).years(1).build(),
                )
                .build(),
        )
        .build();
    expect_err(
        clients[0].put_object_lock_configuration().bucket(&bucket).object_lock_configuration(both).send().await,
        400,
        Some("MalformedXML"),
        "a default retention of days and years",
    );

    // Lock headers: both or neither, and in the future.
    let half = clients[1]
        .put_object()
        .bucket(&bucket)
        .key("half")
        .object_lock_mode(ObjectLockMode::Compliance)
        .body(ByteStream::from_static(b"h"))
        .send()
        .await;
    expect_err(half, 400, Some("InvalidArgument"), "a lock mode without a date");
    let past = clients[1]
        .put_object()
        .bucket(&bucket)
        .key("past")
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(DateTime::from_secs(now_ms() / 1000 - 3600))
        .body(ByteStream::from_static(b"p"))
        .send()
        .await;
    expect_err(past, 400, Some("InvalidArgument"), "a retain-until date in the past");
    expect_err(
        clients[0].get_object_legal_hold().bucket(&bucket).key("missing").send().await,
        404,
        Some("NoSuchKey"),
        "the legal hold of a missing key",
    );

    // A bucket without lock: no configuration, and lock headers or settings are InvalidRequest.
    let plain = create_bucket(&clients[0], "olplain").await;
    expect_err(
        clients[1].get_object_lock_configuration().bucket(&plain).send().await,
        404,
        Some("ObjectLockConfigurationNotFoundError"),
        "the lock configuration of a bucket without lock",
    );
    let headers = clients[2]
        .put_object()
        .bucket(&plain)
        .key("k")
        .object_lock_mode(ObjectLockMode::Governance)
        .object_lock_retain_until_date(in_future(Duration::from_secs(3600)))
        .body(ByteStream::from_static(b"k"))
        .send()
        .await;
    expect_err(headers, 400, Some("InvalidRequest"), "lock headers on a bucket without lock");
    put(&clients[0], &plain, "k", b"k").await;
    expect_err(
        clients[1].get_object_retention().bucket(&plain).key("k").send().await,
        400,
        Some("InvalidRequest"),
        "GetObjectRetention in a bucket without lock",
    );
    // Enabling lock on an existing bucket needs its versioning enabled first, as on AWS.
    expect_err(
        clients[2]
            .put_object_lock_configuration()
            .bucket(&plain)
            .object_lock_configuration(lock_config(None))
            .send()
            .await,
        409,
        Some("InvalidBucketState"),
        "lock on an unversioned bucket",
    );
    let enabled = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
    ok(
        clients[0].put_bucket_versioning().bucket(&plain).versioning_configuration(enabled).send().await,
        "enable versioning",
    );
    ok(
        clients[2]
            .put_object_lock_configuration()
            .bucket(&plain)
            .object_lock_configuration(lock_config(None))
            .send()
            .await,
        "lock on a versioned bucket",
    );
    expect_err(
        clients[1].get_object_retention().bucket(&plain).key("k").send().await,
        404,
        Some("NoSuchObjectLockConfiguration"),
        "GetObjectRetention of a version without retention",
    );
    expect_err(
        clients[0].get_object_lock_configuration().bucket(unique_bucket("olnone")).send().await,
        404,
        Some("NoSuchBucket"),
        "the lock configuration of a missing bucket",
    );
}

/// A COMPLIANCE version cannot be deleted, shortened or unlocked through any region, before or
/// after a restart; a delete without a version id still leaves a marker. Legal holds, copies
/// and multipart uploads carry their locks too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compliance_version_survives_every_delete_through_every_region_and_a_restart() {
    let cluster = TestCluster::start().await;
    cluster.wait_format_raised().await;
    // Writes with lock parameters carry a checksum, as AWS requires (see
    // `puts_with_lock_parameters_need_an_integrity_header`).
    let clients: Vec<Client> = (0..3).map(|i| cluster.node(i).client_checksums_when_supported()).collect();
    let bucket = create_locked_bucket(&clients[0], "olcomp").await;
    let until = in_future(Duration::from_secs(3600));
    let version = put_retained(&clients[0], &bucket, "master.mxf", ObjectLockMode::Compliance, until).await;

    for (i, client) in clients.iter().enumerate() {
        let head =
            ok(client.head_object().bucket(&bucket).key("master.mxf").version_id(&version).send().await, "HeadObject");
        assert_eq!(head.object_lock_mode(), Some(&ObjectLockMode::Compliance), "mode through node {i}");
        assert_eq!(head.object_lock_retain_until_date(), Some(&until), "date through node {i}");
        let get = ok(client.get_object().bucket(&bucket).key("master.mxf").send().await, "GetObject");
        assert_eq!(get.object_lock_mode(), Some(&ObjectLockMode::Compliance), "GET's mode through node {i}");
        for bypass in [false, true] {
            delete_version_refused(
                client,
                &bucket,
                "master.mxf",
                &version,
                bypass,
                &format!("node {i} bypass {bypass}"),
            )
            .await;
        }
        let shorten = retention(ObjectLockRetentionMode::Compliance, in_future(Duration::from_secs(60)));
        expect_err(
            client
                .put_object_retention()
                .bucket(&bucket)
                .key("master.mxf")
                .version_id(&version)
                .retention(shorten)
                .bypass_governance_retention(true)
                .send()
                .await,
            403,
            Some("AccessDenied"),
            "shortening COMPLIANCE, even with the bypass",
        );
        let weaken = retention(ObjectLockRetentionMode::Governance, in_future(Duration::from_secs(7200)));
        expect_err(
            client
                .put_object_retention()
                .bucket(&bucket)
                .key("master.mxf")
                .version_id(&version)
                .retention(weaken)
                .send()
                .await,
            403,
            Some("AccessDenied"),
            "turning COMPLIANCE into GOVERNANCE",
        );
    }
    // DeleteObjects reports the locked version as an error of its own.
    let batch = Delete::builder()
        .objects(ObjectIdentifier::builder().key("master.mxf").version_id(&version).build().expect("identifier"))
        .build()
        .expect("delete");
    let out = ok(clients[2].delete_objects().bucket(&bucket).delete(batch).send().await, "DeleteObjects");
    assert!(out.deleted().is_empty(), "nothing deleted: {out:?}");
    assert_eq!(out.errors().first().and_then(|e| e.code()), Some("AccessDenied"), "{out:?}");

    // Extending is allowed, and read back through another region.
    let later = in_future(Duration::from_secs(7200));
    ok(
        clients[1]
            .put_object_retention()
            .bucket(&bucket)
            .key("master.mxf")
            .version_id(&version)
            .retention(retention(ObjectLockRetentionMode::Compliance, later))
            .send()
            .await,
        "extending COMPLIANCE",
    );
    let read = ok(
        clients[2].get_object_retention().bucket(&bucket).key("master.mxf").version_id(&version).send().await,
        "GetObjectRetention",
    );
    assert_eq!(read.retention().and_then(|r| r.retain_until_date()), Some(&later));

    // A delete without a version id adds a marker, as AWS does; the version stays.
    let marker = ok(clients[1].delete_object().bucket(&bucket).key("master.mxf").send().await, "DeleteObject");
    assert_eq!(marker.delete_marker(), Some(true));

    // A legal hold, set through one region, protects a version without retention everywhere
    // until it is lifted.
    let held = ok(
        clients[0].put_object().bucket(&bucket).key("held").body(ByteStream::from_static(b"held")).send().await,
        "PutObject",
    );
    let held = held.version_id().expect("version").to_owned();
    let on = ObjectLockLegalHold::builder().status(ObjectLockLegalHoldStatus::On).build();
    ok(
        clients[2].put_object_legal_hold().bucket(&bucket).key("held").legal_hold(on).send().await,
        "PutObjectLegalHold ON",
    );
    let hold = ok(
        clients[0].get_object_legal_hold().bucket(&bucket).key("held").version_id(&held).send().await,
        "GetObjectLegalHold",
    );
    assert_eq!(hold.legal_hold().and_then(|h| h.status()), Some(&ObjectLockLegalHoldStatus::On));
    delete_version_refused(&clients[1], &bucket, "held", &held, true, "deleting a held version").await;

    // A copy and a multipart upload get the locks their own requests ask for.
    let copy = ok(
        clients[1]
            .copy_object()
            .bucket(&bucket)
            .key("copy")
            .copy_source(format!("{bucket}/held"))
            .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
            .send()
            .await,
        "CopyObject with a legal hold",
    );
    let copy = copy.version_id().expect("version").to_owned();
    let upload = ok(
        clients[2]
            .create_multipart_upload()
            .bucket(&bucket)
            .key("mp")
            .object_lock_mode(ObjectLockMode::Compliance)
            .object_lock_retain_until_date(until)
            .send()
            .await,
        "CreateMultipartUpload with a retention",
    );
    let upload_id = upload.upload_id().expect("upload id");
    let part = ok(
        clients[2]
            .upload_part()
            .bucket(&bucket)
            .key("mp")
            .upload_id(upload_id)
            .part_number(1)
            .body(ByteStream::from_static(b"one part"))
            .send()
            .await,
        "UploadPart",
    );
    let parts = CompletedMultipartUpload::builder()
        .parts(CompletedPart::builder().part_number(1).set_e_tag(part.e_tag().map(str::to_owned)).build())
        .build();
    let done = ok(
        clients[2]
            .complete_multipart_upload()
            .bucket(&bucket)
            .key("mp")
            .upload_id(upload_id)
            .multipart_upload(parts)
            .send()
            .await,
        "CompleteMultipartUpload",
    );
    let mp = done.version_id().expect("version").to_owned();

    // Every region still refuses after the writer is killed and nodes restart.
    cluster.node(0).kill9();
    cluster.node(0).restart().await;
    cluster.node(1).restart().await;
    for (i, client) in clients.iter().enumerate() {
        delete_version_refused(client, &bucket, "master.mxf", &version, true, &format!("after restart, node {i}"))
            .await;
        delete_version_refused(client, &bucket, "held", &held, true, &format!("held, after restart, node {i}")).await;
        delete_version_refused(client, &bucket, "copy", &copy, true, &format!("copy, node {i}")).await;
        delete_version_refused(client, &bucket, "mp", &mp, true, &format!("multipart, node {i}")).await;
        let got = ok(
            client.get_object().bucket(&bucket).key("master.mxf").version_id(&version).send().await,
            "the locked version after restart",
        );
        let body = got.body.collect().await.expect("body").into_bytes();
        assert_eq!(&body[..], b"locked bytes", "through node {i}");
    }

    // Lifted, the held version goes like any other.
    let off = ObjectLockLegalHold::builder().status(ObjectLockLegalHoldStatus::Off).build();
    ok(
        clients[1].put_object_legal_hold().bucket(&bucket).key("held").version_id(&held).legal_hold(off).send().await,
        "PutObjectLegalHold OFF",
    );
    ok(
        clients[2].delete_object().bucket(&bucket).key("held").version_id(&held).send().await,
        "deleting a version whose hold was lifted",
    );
}

/// GOVERNANCE yields to `x-amz-bypass-governance-retention` from the bucket owner's key (and a
/// service's), never from a key that may only write the file (a write share), nor without the
/// header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn governance_bypass_is_the_bucket_owners_not_a_write_shares() {
    use harness::cli::create_key;
    use harness::devauth::{AuthMode, SeededTokens, auth_section, node_with_seeded_users};
    use serde_json::{Value, json};

    let (node, _devauth, SeededTokens { alice, .. }) =
        node_with_seeded_users(|addr| auth_section(addr, AuthMode::Hs256, 1)).await;
    let _log = node.log_on_panic();
    node.wait_format_raised().await;
    let (alice_id, alice_secret) = create_key(node.config_path(), "alice-lock", Some("user:u-alice"));
    let (bob_id, bob_secret) = create_key(node.config_path(), "bob-lock", Some("user:u-bob"));
    let alice_key = node.client_with_keys(&alice_id, &alice_secret);
    let bob_key = node.client_with_keys(&bob_id, &bob_secret);
    let bucket = create_locked_bucket(&alice_key, "olgov").await;
    let until = in_future(Duration::from_secs(3600));
    let v1 = put_retained(&alice_key, &bucket, "cut.mp4", ObjectLockMode::Governance, until).await;
    let v2 = put_retained(&alice_key, &bucket, "cut.mp4", ObjectLockMode::Governance, until).await;

    // Bob may write the file through a share, so he reaches its retention, but not the bypass.
    let share = json!({ "bucket": bucket, "key": "cut.mp4", "user": "u-bob", "permission": "write" });
    let resp = http_client()
        .post(format!("{}/api/v1/shares", node.web_url()))
        .bearer_auth(&alice)
        .json(&share)
        .send()
        .await
        .expect("share request");
    let status = resp.status().as_u16();
    assert_eq!(status, 201, "alice shares the file with bob: {}", resp.json::<Value>().await.unwrap_or_default());
    let read = ok(
        bob_key.get_object_retention().bucket(&bucket).key("cut.mp4").version_id(&v1).send().await,
        "bob reads the retention of a file shared with him",
    );
    assert_eq!(read.retention().and_then(|r| r.mode()), Some(&ObjectLockRetentionMode::Governance));
    let shorter = retention(ObjectLockRetentionMode::Governance, in_future(Duration::from_secs(60)));
    expect_err(
        bob_key
            .put_object_retention()
            .bucket(&bucket)
            .key("cut.mp4")
            .version_id(&v1)
            .retention(shorter.clone())
            .bypass_governance_retention(true)
            .send()
            .await,
        403,
        Some("AccessDenied"),
        "bob shortening GOVERNANCE with the bypass header",
    );
    delete_version_refused(&bob_key, &bucket, "cut.mp4", &v1, true, "bob deleting a GOVERNANCE version").await;

    // Alice, the bucket's owner: refused without the header, allowed with it.
    delete_version_refused(&alice_key, &bucket, "cut.mp4", &v1, false, "alice without the bypass").await;
    expect_err(
        alice_key
            .put_object_retention()
            .bucket(&bucket)
            .key("cut.mp4")
            .version_id(&v1)
            .retention(shorter.clone())
            .send()
            .await,
        403,
        Some("AccessDenied"),
        "alice shortening without the bypass",
    );
    ok(
        alice_key
            .put_object_retention()
            .bucket(&bucket)
            .key("cut.mp4")
            .version_id(&v1)
            .retention(shorter)
            .bypass_governance_retention(true)
            .send()
            .await,
        "alice shortens GOVERNANCE with the bypass",
    );
    ok(
        alice_key
            .delete_object()
            .bucket(&bucket)
            .key("cut.mp4")
            .version_id(&v1)
            .bypass_governance_retention(true)
            .send()
            .await,
        "alice deletes a GOVERNANCE version with the bypass",
    );
    // A service's key (the operator's) may bypass too.
    ok(
        node.client()
            .delete_object()
            .bucket(&bucket)
            .key("cut.mp4")
            .version_id(&v2)
            .bypass_governance_retention(true)
            .send()
            .await,
        "the service key deletes a GOVERNANCE version with the bypass",
    );
    let left = ok(alice_key.list_object_versions().bucket(&bucket).send().await, "ListObjectVersions");
    assert!(left.versions().is_empty(), "both versions are gone: {left:?}");
}

/// A write with Object Lock parameters needs a Content-MD5 or a checksum, as AWS answers
/// (issue #15): PutObject with lock headers or into a bucket with a default retention, and
/// PutObjectRetention / PutObjectLegalHold / PutObjectLockConfiguration; without one it is 400
/// InvalidRequest and nothing is stored. A bucket without lock takes plain writes as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn puts_with_lock_parameters_need_an_integrity_header() {
    let cluster = shared_cluster().await;
    cluster.wait_format_raised().await;
    // The SDK's default sends a checksum; these do not unless an operation requires one.
    let (plain, checked) = (cluster.node(1).client(), cluster.node(2).client_checksums_when_supported());
    let bucket = create_locked_bucket(&checked, "olmd5").await;
    let until = in_future(Duration::from_secs(3600));
    let message =
        "Content-MD5 OR x-amz-checksum- HTTP header is required for Put Object requests with Object Lock parameters";
    let refused = expect_err(
        plain
            .put_object()
            .bucket(&bucket)
            .key("a")
            .object_lock_mode(ObjectLockMode::Governance)
            .object_lock_retain_until_date(until)
            .body(ByteStream::from_static(b"a"))
            .send()
            .await,
        400,
        Some("InvalidRequest"),
        "lock headers without an integrity header",
    );
    assert_eq!(refused.message.as_deref(), Some(message));
    expect_err(plain.head_object().bucket(&bucket).key("a").send().await, 404, None, "nothing was stored");
    let md5 = base64(&md5_bytes(b"a"));
    ok(
        plain
            .put_object()
            .bucket(&bucket)
            .key("a")
            .object_lock_mode(ObjectLockMode::Governance)
            .object_lock_retain_until_date(until)
            .content_md5(&md5)
            .body(ByteStream::from_static(b"a"))
            .send()
            .await,
        "lock headers with Content-MD5",
    );
    ok(
        plain
            .put_object()
            .bucket(&bucket)
            .key("b")
            .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
            .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Crc32C)
            .body(ByteStream::from_static(b"b"))
            .send()
            .await,
        "a legal hold with a CRC32C checksum",
    );
    ok(
        plain.put_object().bucket(&bucket).key("c").body(ByteStream::from_static(b"c")).send().await,
        "no lock: no need",
    );

    // A default retention makes every write a locked one.
    ok(
        checked
            .put_object_lock_configuration()
            .bucket(&bucket)
            .object_lock_configuration(lock_config(Some((ObjectLockRetentionMode::Governance, 1))))
            .send()
            .await,
        "PutObjectLockConfiguration with a default retention",
    );
    for node in 0..3 {
        let client = cluster.node(node).client();
        let refused = client.put_object().bucket(&bucket).key("d").body(ByteStream::from_static(b"d")).send().await;
        expect_err(refused, 400, Some("InvalidRequest"), &format!("default retention, no checksum, node {node}"));
    }
    ok(
        plain
            .put_object()
            .bucket(&bucket)
            .key("d")
            .content_md5(base64(&md5_bytes(b"d")))
            .body(ByteStream::from_static(b"d"))
            .send()
            .await,
        "default retention with Content-MD5",
    );

    // The lock operations themselves, as plain signed HTTP (the SDK always sends a checksum).
    let node = cluster.node(0);
    let host = node.s3_addr.to_string();
    let send = |path: String, body: &'static str, md5: bool| {
        let host = host.clone();
        async move {
            let payload = sha256_hex(body.as_bytes());
            let mut extra = Vec::new();
            if md5 {
                extra.push(("content-md5", base64(&md5_bytes(body.as_bytes()))));
            }
            let signer = harness::sigv4::HeaderSign {
                method: "PUT",
                host: &host,
                path: &path,
                region: REGION,
                access_key: ACCESS_KEY,
                secret_key: SECRET_KEY,
                content_sha256: &payload,
                headers: &extra,
                now: SystemTime::now(),
            };
            let req = signer.sign(http_client().put(format!("{}{path}", node.s3_url())));
            let resp = req.body(body).send().await.expect("signed PUT");
            let status = resp.status().as_u16();
            (status, harness::sigv4::xml_error_code(&resp.text().await.unwrap_or_default()))
        }
    };
    let retention =
        "<Retention><Mode>GOVERNANCE</Mode><RetainUntilDate>2099-01-01T00:00:00Z</RetainUntilDate></Retention>";
    let hold = "<LegalHold><Status>ON</Status></LegalHold>";
    let config = "<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled></ObjectLockConfiguration>";
    for (path, body, what) in [
        (format!("/{bucket}/c?retention"), retention, "PutObjectRetention"),
        (format!("/{bucket}/c?legal-hold"), hold, "PutObjectLegalHold"),
        (format!("/{bucket}?object-lock"), config, "PutObjectLockConfiguration"),
    ] {
        let refused = send(path.clone(), body, false).await;
        assert_eq!(refused, (400, Some("InvalidRequest".to_owned())), "{what} without Content-MD5");
        assert_eq!(send(path, body, true).await, (200, None), "{what} with Content-MD5");
    }
    let read = ok(plain.get_object_legal_hold().bucket(&bucket).key("c").send().await, "GetObjectLegalHold");
    assert_eq!(read.legal_hold().and_then(|h| h.status()), Some(&ObjectLockLegalHoldStatus::On));
    let config = ok(plain.get_object_lock_configuration().bucket(&bucket).send().await, "the configuration");
    assert!(
        config.object_lock_configuration().and_then(|c| c.rule()).is_none(),
        "the last configuration (no default retention) was stored"
    );
}
