//! Access control against real nodes (issue #15, section 3): bucket and object ACLs (canned
//! and explicit grants), bucket policies (the documented subset), OwnershipControls and
//! PublicAccessBlock, set through one region with aws-sdk-s3 and judged on the others, and
//! unsigned requests (plain reqwest, no signature) allowed exactly where they grant.

use crate::harness;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, ObjectCannedAcl, ObjectOwnership, OwnershipControls,
    OwnershipControlsRule, PublicAccessBlockConfiguration,
};
use harness::cluster::shared_cluster;
use harness::sigv4::xml_error_code;
use harness::*;

/// An unsigned request, as a CDN or a browser sends it: (status, body, error code).
pub(crate) async fn anonymous(
    method: reqwest::Method,
    node: &TestNode,
    path: &str,
    body: &[u8],
) -> (u16, Vec<u8>, Option<String>) {
    let resp = http_client()
        .request(method, format!("{}{path}", node.s3_url()))
        .body(body.to_vec())
        .send()
        .await
        .expect("unsigned request");
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.expect("body").to_vec();
    let code = xml_error_code(&String::from_utf8_lossy(&bytes));
    (status, bytes, code)
}

/// An unsigned GET: (status, body, error code).
pub(crate) async fn anonymous_get(node: &TestNode, path: &str) -> (u16, Vec<u8>, Option<String>) {
    anonymous(reqwest::Method::GET, node, path, b"").await
}

/// Waits (bounded) until an unsigned GET of `path` through `node` answers `status`: a grant
/// applies everywhere at once (a refusal is judged again after a read index), but a revocation
/// reaches another node when that node applies it, milliseconds later.
async fn wait_anonymous_status(node: &TestNode, path: &str, status: u16, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (got, _, _) = anonymous_get(node, path).await;
        if got == status {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: unsigned GET {path} answered {got}, not {status}");
        tokio::time::sleep(POLL).await;
    }
}

/// The S3 error code of a failed SDK call (`None`: it succeeded).
pub(crate) fn code_of<T, E: aws_sdk_s3::error::ProvideErrorMetadata + std::fmt::Debug>(
    result: &Result<T, aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>>,
) -> Option<String> {
    match result {
        Ok(_) => None,
        Err(aws_sdk_s3::error::SdkError::ServiceError(e)) => e.err().code().map(str::to_owned),
        Err(e) => Some(format!("not a service error: {e:?}")),
    }
}

async fn put_acl(client: &Client, bucket: &str, key: &str, data: &[u8], acl: ObjectCannedAcl) {
    ok(
        client.put_object().bucket(bucket).key(key).acl(acl).body(ByteStream::from(data.to_vec())).send().await,
        &format!("PutObject {bucket}/{key} with an ACL"),
    );
}

/// The cinema's case: a bucket of posters and trailers served to a CDN by unsigned GETs through
/// every region, by a bucket policy, while its other prefixes, another bucket, listing and
/// writes stay refused; the policy is returned as stored and reported public; removing it
/// makes everything private again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cinemas_posters_and_trailers_are_public_and_nothing_else() {
    let cluster = shared_cluster().await;
    cluster.wait_format_raised().await;
    let a = cluster.node(0).client();
    let public = create_bucket(&a, "cinema-public").await;
    let private = create_bucket(&a, "cinema-private").await;
    put(&a, &public, "posters/dune.jpg", b"poster bytes").await;
    put(&a, &public, "trailers/dune.mp4", b"trailer bytes").await;
    put(&a, &public, "contracts/dune.pdf", b"contract").await;
    put(&a, &private, "posters/secret.jpg", b"unreleased").await;
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"cdn","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":["arn:aws:s3:::{public}/posters/*","arn:aws:s3:::{public}/trailers/*"]}}]}}"#
    );
    ok(a.put_bucket_policy().bucket(&public).policy(&policy).send().await, "PutBucketPolicy");

    for node in [cluster.node(1), cluster.node(2), cluster.node(0)] {
        let (status, body, _) = anonymous_get(node, &format!("/{public}/posters/dune.jpg")).await;
        assert_eq!((status, body.as_slice()), (200, &b"poster bytes"[..]), "poster through {}", node.s3_url());
        let (status, body, _) = anonymous_get(node, &format!("/{public}/trailers/dune.mp4")).await;
        assert_eq!((status, body.as_slice()), (200, &b"trailer bytes"[..]), "trailer");
        let head = http_client().head(format!("{}/{public}/posters/dune.jpg", node.s3_url())).send().await;
        assert_eq!(head.expect("HEAD").status(), 200, "an unsigned HEAD of a poster");
        for refused in [
            format!("/{public}/contracts/dune.pdf"),
            format!("/{public}/posters"),
            format!("/{public}?list-type=2"),
            format!("/{private}/posters/secret.jpg"),
            format!("/{private}?list-type=2"),
            "/".to_owned(),
        ] {
            let (status, _, code) = anonymous_get(node, &refused).await;
            assert_eq!((status, code.as_deref()), (403, Some("AccessDenied")), "unsigned GET {refused}");
        }
        let (status, _, code) =
            anonymous(reqwest::Method::PUT, node, &format!("/{public}/posters/fake.jpg"), b"x").await;
        assert_eq!((status, code.as_deref()), (403, Some("AccessDenied")), "unsigned PUT");
        let (status, _, code) =
            anonymous(reqwest::Method::DELETE, node, &format!("/{public}/posters/dune.jpg"), b"").await;
        assert_eq!((status, code.as_deref()), (403, Some("AccessDenied")), "unsigned DELETE");
    }
    let c = cluster.node(2).client();
    let stored = ok(c.get_bucket_policy().bucket(&public).send().await, "GetBucketPolicy");
    assert_eq!(stored.policy(), Some(policy.as_str()), "the policy as sent");
    let status = ok(c.get_bucket_policy_status().bucket(&public).send().await, "GetBucketPolicyStatus");
    assert_eq!(status.policy_status().and_then(aws_sdk_s3::types::PolicyStatus::is_public), Some(true));
    assert_eq!(code_of(&c.get_bucket_policy().bucket(&private).send().await).as_deref(), Some("NoSuchBucketPolicy"));

    ok(cluster.node(1).client().delete_bucket_policy().bucket(&public).send().await, "DeleteBucketPolicy");
    let poster = format!("/{public}/posters/dune.jpg");
    wait_anonymous_status(cluster.node(2), &poster, 403, "private again once the policy is gone").await;
}

/// ACLs: a public-read object is served unsigned through another region, an overwrite without
/// an ACL makes it private (as S3), PutObjectAcl changes it, a public-read bucket ACL opens
/// listing but not writing, public-read-write opens writing, a multipart upload's ACL reaches
/// the completed object, and GetBucketAcl / GetObjectAcl answer grants with owner ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canned_acls_open_exactly_what_they_say_through_every_region() {
    let cluster = shared_cluster().await;
    cluster.wait_format_raised().await;
    let (a, b, c) = (cluster.node(0).client(), cluster.node(1).client(), cluster.node(2).client());
    let bucket = create_bucket(&a, "acl").await;
    put_acl(&a, &bucket, "poster.jpg", b"v1", ObjectCannedAcl::PublicRead).await;
    put(&a, &bucket, "private.jpg", b"p").await;
    let (status, body, _) = anonymous_get(cluster.node(1), &format!("/{bucket}/poster.jpg")).await;
    assert_eq!((status, body.as_slice()), (200, &b"v1"[..]), "public-read object, unsigned, region B");
    let (status, _, _) = anonymous_get(cluster.node(1), &format!("/{bucket}/private.jpg")).await;
    assert_eq!(status, 403, "its neighbour stays private");
    let acl = ok(b.get_object_acl().bucket(&bucket).key("poster.jpg").send().await, "GetObjectAcl");
    assert_eq!(acl.owner().and_then(|o| o.id()), Some("meridian"), "the operator owns what its key wrote");
    assert_eq!(acl.owner().and_then(|o| o.display_name()), Some("meridian"));
    let grants: Vec<(Option<&str>, Option<&str>, &str)> = acl
        .grants()
        .iter()
        .map(|g| {
            let grantee = g.grantee().expect("grantee");
            (grantee.id(), grantee.uri(), g.permission().map_or("", |p| p.as_str()))
        })
        .collect();
    assert_eq!(
        grants,
        vec![
            (Some("meridian"), None, "FULL_CONTROL"),
            (None, Some("http://acs.amazonaws.com/groups/global/AllUsers"), "READ")
        ]
    );

    put(&c, &bucket, "poster.jpg", b"v2").await;
    let poster = format!("/{bucket}/poster.jpg");
    wait_anonymous_status(cluster.node(0), &poster, 403, "an overwrite without an ACL is private").await;
    ok(
        b.put_object_acl().bucket(&bucket).key("poster.jpg").acl(ObjectCannedAcl::PublicRead).send().await,
        "PutObjectAcl",
    );
    let (status, body, _) = anonymous_get(cluster.node(2), &format!("/{bucket}/poster.jpg")).await;
    assert_eq!((status, body.as_slice()), (200, &b"v2"[..]), "public again by PutObjectAcl");

    // The bucket's ACL: public-read lists, public-read-write also writes.
    let (status, _, _) = anonymous_get(cluster.node(1), &format!("/{bucket}?list-type=2")).await;
    assert_eq!(status, 403, "a private bucket is not listed");
    ok(
        a.put_bucket_acl().bucket(&bucket).acl(aws_sdk_s3::types::BucketCannedAcl::PublicRead).send().await,
        "PutBucketAcl public-read",
    );
    let (status, body, _) = anonymous_get(cluster.node(1), &format!("/{bucket}?list-type=2")).await;
    assert_eq!(status, 200, "public-read lists unsigned");
    assert!(String::from_utf8_lossy(&body).contains("<Key>private.jpg</Key>"));
    let (status, _, _) = anonymous_get(cluster.node(1), &format!("/{bucket}/private.jpg")).await;
    assert_eq!(status, 403, "listing a bucket does not read its objects");
    let put_path = format!("/{bucket}/dropped.txt");
    let (status, _, code) = anonymous(reqwest::Method::PUT, cluster.node(2), &put_path, b"drop").await;
    assert_eq!((status, code.as_deref()), (403, Some("AccessDenied")), "public-read does not write");
    ok(
        a.put_bucket_acl().bucket(&bucket).acl(aws_sdk_s3::types::BucketCannedAcl::PublicReadWrite).send().await,
        "PutBucketAcl public-read-write",
    );
    let (status, _, _) = anonymous(reqwest::Method::PUT, cluster.node(2), &put_path, b"drop").await;
    assert_eq!(status, 200, "public-read-write takes an unsigned PUT");
    let got = ok(a.get_object().bucket(&bucket).key("dropped.txt").send().await, "GET the dropped file");
    assert_eq!(got.body.collect().await.expect("body").into_bytes().as_ref(), b"drop");
    let bucket_acl = ok(c.get_bucket_acl().bucket(&bucket).send().await, "GetBucketAcl");
    let permissions: Vec<&str> =
        bucket_acl.grants().iter().filter_map(|g| g.permission()).map(aws_sdk_s3::types::Permission::as_str).collect();
    assert_eq!(permissions, vec!["FULL_CONTROL", "READ", "WRITE"]);

    // A multipart upload's ACL is the completed object's.
    let upload = ok(
        b.create_multipart_upload().bucket(&bucket).key("trailer.mp4").acl(ObjectCannedAcl::PublicRead).send().await,
        "CreateMultipartUpload with an ACL",
    );
    let id = upload.upload_id().expect("upload id");
    let part = ok(
        b.upload_part()
            .bucket(&bucket)
            .key("trailer.mp4")
            .upload_id(id)
            .part_number(1)
            .body(ByteStream::from_static(b"trailer"))
            .send()
            .await,
        "UploadPart",
    );
    let parts = CompletedMultipartUpload::builder()
        .parts(CompletedPart::builder().part_number(1).e_tag(part.e_tag().unwrap_or_default()).build())
        .build();
    ok(
        b.complete_multipart_upload()
            .bucket(&bucket)
            .key("trailer.mp4")
            .upload_id(id)
            .multipart_upload(parts)
            .send()
            .await,
        "CompleteMultipartUpload",
    );
    let (status, body, _) = anonymous_get(cluster.node(0), &format!("/{bucket}/trailer.mp4")).await;
    assert_eq!((status, body.as_slice()), (200, &b"trailer"[..]), "the upload's ACL reached the object");
    // A copy takes the ACL its request names, not the source's.
    ok(
        a.copy_object()
            .bucket(&bucket)
            .key("copy.jpg")
            .copy_source(format!("{bucket}/private.jpg"))
            .acl(ObjectCannedAcl::PublicRead)
            .send()
            .await,
        "CopyObject with an ACL",
    );
    let (status, _, _) = anonymous_get(cluster.node(1), &format!("/{bucket}/copy.jpg")).await;
    assert_eq!(status, 200, "the copy is public-read");
}

/// PublicAccessBlock's four flags and BucketOwnerEnforced, each against what it blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_access_block_and_ownership_controls_are_honoured() {
    let cluster = shared_cluster().await;
    cluster.wait_format_raised().await;
    let (a, b) = (cluster.node(0).client(), cluster.node(1).client());
    let bucket = create_bucket(&a, "pab").await;
    put_acl(&a, &bucket, "public.jpg", b"p", ObjectCannedAcl::PublicRead).await;
    let path = format!("/{bucket}/public.jpg");
    assert_eq!(anonymous_get(cluster.node(2), &path).await.0, 200);
    let missing = b.get_public_access_block().bucket(&bucket).send().await;
    assert_eq!(code_of(&missing).as_deref(), Some("NoSuchPublicAccessBlockConfiguration"));

    let block = |acls: bool, ignore: bool, policy: bool, restrict: bool| {
        PublicAccessBlockConfiguration::builder()
            .block_public_acls(acls)
            .ignore_public_acls(ignore)
            .block_public_policy(policy)
            .restrict_public_buckets(restrict)
            .build()
    };
    let set = |config: PublicAccessBlockConfiguration| {
        let a = a.clone();
        let bucket = bucket.clone();
        async move {
            ok(
                a.put_public_access_block().bucket(&bucket).public_access_block_configuration(config).send().await,
                "PutPublicAccessBlock",
            )
        }
    };
    set(block(true, false, false, false)).await;
    let refused = b
        .put_object()
        .bucket(&bucket)
        .key("new.jpg")
        .acl(ObjectCannedAcl::PublicRead)
        .body(ByteStream::from_static(b"n"));
    assert_eq!(code_of(&refused.send().await).as_deref(), Some("AccessDenied"), "BlockPublicAcls: PutObject");
    let refused = b.put_object_acl().bucket(&bucket).key("public.jpg").acl(ObjectCannedAcl::AuthenticatedRead);
    assert_eq!(code_of(&refused.send().await).as_deref(), Some("AccessDenied"), "BlockPublicAcls: PutObjectAcl");
    assert!(b.head_object().bucket(&bucket).key("new.jpg").send().await.is_err(), "nothing was stored");
    assert_eq!(anonymous_get(cluster.node(2), &path).await.0, 200, "BlockPublicAcls leaves existing ACLs");
    let got = ok(b.get_public_access_block().bucket(&bucket).send().await, "GetPublicAccessBlock");
    let config = got.public_access_block_configuration().expect("configuration");
    assert_eq!(
        (config.block_public_acls(), config.ignore_public_acls(), config.block_public_policy()),
        (Some(true), Some(false), Some(false))
    );

    set(block(false, true, false, false)).await;
    wait_anonymous_status(cluster.node(2), &path, 403, "IgnorePublicAcls").await;

    let public_policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{bucket}/*"}}]}}"#
    );
    set(block(false, false, true, false)).await;
    let refused = b.put_bucket_policy().bucket(&bucket).policy(&public_policy).send().await;
    assert_eq!(code_of(&refused).as_deref(), Some("AccessDenied"), "BlockPublicPolicy");
    set(block(false, true, false, true)).await;
    ok(b.put_bucket_policy().bucket(&bucket).policy(&public_policy).send().await, "a public policy, allowed now");
    wait_anonymous_status(cluster.node(2), &path, 403, "RestrictPublicBuckets ignores it").await;
    ok(a.delete_public_access_block().bucket(&bucket).send().await, "DeletePublicAccessBlock");
    assert_eq!(anonymous_get(cluster.node(2), &path).await.0, 200, "without a block the policy applies");
    ok(a.delete_bucket_policy().bucket(&bucket).send().await, "DeleteBucketPolicy");

    // BucketOwnerEnforced: ACLs off; a non-private ACL is AccessControlListNotSupported.
    let enforced = OwnershipControls::builder()
        .rules(
            OwnershipControlsRule::builder()
                .object_ownership(ObjectOwnership::BucketOwnerEnforced)
                .build()
                .expect("rule"),
        )
        .build()
        .expect("controls");
    ok(
        a.put_bucket_ownership_controls().bucket(&bucket).ownership_controls(enforced).send().await,
        "PutBucketOwnershipControls",
    );
    let got = ok(b.get_bucket_ownership_controls().bucket(&bucket).send().await, "GetBucketOwnershipControls");
    let rule = got.ownership_controls().and_then(|c| c.rules().first()).map(|r| r.object_ownership().clone());
    assert_eq!(rule, Some(ObjectOwnership::BucketOwnerEnforced));
    wait_anonymous_status(cluster.node(2), &path, 403, "ACLs no longer count").await;
    let refused =
        b.put_object().bucket(&bucket).key("x").acl(ObjectCannedAcl::PublicRead).body(ByteStream::from_static(b"x"));
    let refused = refused.send().await;
    assert_eq!(code_of(&refused).as_deref(), Some("AccessControlListNotSupported"));
    assert_eq!(refused.err().and_then(|e| e.raw_response().map(|r| r.status().as_u16())), Some(400));
    let private =
        b.put_object().bucket(&bucket).key("x").acl(ObjectCannedAcl::Private).body(ByteStream::from_static(b"x"));
    ok(private.send().await, "a private ACL is still accepted");
    let acl = ok(b.get_object_acl().bucket(&bucket).key("public.jpg").send().await, "GetObjectAcl");
    assert_eq!(acl.grants().len(), 1, "only the owner's grant is reported");
    ok(a.delete_bucket_ownership_controls().bucket(&bucket).send().await, "DeleteBucketOwnershipControls");
    let gone = b.get_bucket_ownership_controls().bucket(&bucket).send().await;
    assert_eq!(code_of(&gone).as_deref(), Some("OwnershipControlsNotFoundError"));
    assert_eq!(anonymous_get(cluster.node(2), &path).await.0, 200, "ACLs count again");
}

/// ACLs of versions by `versionId` (issue #15): each version keeps its own ACL, set and read
/// through any region; a public current version does not open the older ones (nor the
/// reverse); a version made current again brings its ACL back; a delete marker is 405, an
/// unknown id 404 NoSuchVersion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_version_has_its_own_acl_through_every_region() {
    let cluster = shared_cluster().await;
    cluster.wait_format_raised().await;
    let (a, b, c) = (cluster.node(0).client(), cluster.node(1).client(), cluster.node(2).client());
    let bucket = create_bucket(&a, "vacl").await;
    let enabled = aws_sdk_s3::types::VersioningConfiguration::builder()
        .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
        .build();
    ok(a.put_bucket_versioning().bucket(&bucket).versioning_configuration(enabled).send().await, "versioning");
    let v1 = ok(
        a.put_object()
            .bucket(&bucket)
            .key("poster.jpg")
            .acl(ObjectCannedAcl::PublicRead)
            .body(ByteStream::from_static(b"old"))
            .send()
            .await,
        "PutObject v1 public-read",
    );
    let v1 = v1.version_id().expect("v1").to_owned();
    let v2 =
        ok(a.put_object().bucket(&bucket).key("poster.jpg").body(ByteStream::from_static(b"new")).send().await, "v2");
    let v2 = v2.version_id().expect("v2").to_owned();
    let get = |node: usize, version: Option<&str>| {
        let path = match version {
            Some(v) => format!("/{bucket}/poster.jpg?versionId={v}"),
            None => format!("/{bucket}/poster.jpg"),
        };
        async move { anonymous_get(cluster.node(node), &path).await }
    };
    let is_public = |acl: &aws_sdk_s3::operation::get_object_acl::GetObjectAclOutput| {
        acl.grants()
            .iter()
            .any(|g| g.grantee().and_then(|g| g.uri()) == Some("http://acs.amazonaws.com/groups/global/AllUsers"))
    };
    // v1 kept its ACL when v2 replaced it; v2 is private.
    let acl = ok(b.get_object_acl().bucket(&bucket).key("poster.jpg").version_id(&v1).send().await, "GetObjectAcl v1");
    assert!(is_public(&acl), "v1 is public-read: {acl:?}");
    assert_eq!(acl.owner().and_then(|o| o.id()), Some("meridian"));
    let acl = ok(c.get_object_acl().bucket(&bucket).key("poster.jpg").send().await, "GetObjectAcl current");
    assert!(!is_public(&acl), "v2 is private");
    let (status, body, _) = get(1, Some(&v1)).await;
    assert_eq!((status, body.as_slice()), (200, &b"old"[..]), "v1 unsigned, by its own ACL");
    assert_eq!(get(2, None).await.0, 403, "the current version is private");
    assert_eq!(get(2, Some(&v2)).await.0, 403, "v2 by id too");

    // PutObjectAcl of each version, through other regions.
    ok(
        b.put_object_acl()
            .bucket(&bucket)
            .key("poster.jpg")
            .version_id(&v2)
            .acl(ObjectCannedAcl::PublicRead)
            .send()
            .await,
        "PutObjectAcl ?versionId=v2 (current)",
    );
    ok(
        c.put_object_acl().bucket(&bucket).key("poster.jpg").version_id(&v1).acl(ObjectCannedAcl::Private).send().await,
        "PutObjectAcl ?versionId=v1 (non-current)",
    );
    let (status, body, _) = get(0, None).await;
    assert_eq!((status, body.as_slice()), (200, &b"new"[..]), "v2 public now");
    wait_anonymous_status(cluster.node(0), &format!("/{bucket}/poster.jpg?versionId={v1}"), 403, "v1 private").await;
    let acl = ok(a.get_object_acl().bucket(&bucket).key("poster.jpg").version_id(&v1).send().await, "v1's ACL");
    assert!(!is_public(&acl) && acl.grants().len() == 1, "v1 holds the owner's grant alone: {acl:?}");

    // Deleting v2 makes v1 current, with v1's ACL (private), not v2's.
    ok(a.delete_object().bucket(&bucket).key("poster.jpg").version_id(&v2).send().await, "delete v2");
    wait_anonymous_status(cluster.node(1), &format!("/{bucket}/poster.jpg"), 403, "v1 current, private").await;
    let acl = ok(b.get_object_acl().bucket(&bucket).key("poster.jpg").send().await, "GetObjectAcl current");
    assert!(!is_public(&acl), "v2's ACL went with v2");

    // The bad cases.
    let marker = ok(a.delete_object().bucket(&bucket).key("poster.jpg").send().await, "a delete marker");
    let marker = marker.version_id().expect("marker id").to_owned();
    let on_marker = b.get_object_acl().bucket(&bucket).key("poster.jpg").version_id(&marker).send().await;
    expect_err(on_marker, 405, Some("MethodNotAllowed"), "GetObjectAcl of a delete marker");
    let on_marker = c
        .put_object_acl()
        .bucket(&bucket)
        .key("poster.jpg")
        .version_id(&marker)
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await;
    expect_err(on_marker, 405, Some("MethodNotAllowed"), "PutObjectAcl of a delete marker");
    let unknown = a
        .put_object_acl()
        .bucket(&bucket)
        .key("poster.jpg")
        .version_id("0".repeat(24))
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await;
    expect_err(unknown, 404, Some("NoSuchVersion"), "PutObjectAcl of an unknown version");
    let malformed = a.get_object_acl().bucket(&bucket).key("poster.jpg").version_id("../x").send().await;
    expect_err(malformed, 400, Some("InvalidArgument"), "a malformed version id");
    let (status, _, _) = get(2, Some(&format!("{v1}%00"))).await;
    assert_eq!(status, 403, "a crafted version id opens nothing");
}

/// DeleteObjects through any region by an unsigned caller (issue #15): what the bucket's ACL
/// (public-read-write) or policy grants everyone is deleted, the rest is AccessDenied per key in
/// the 200 answer, and the deletion is seen through every region.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_batch_deletes_delete_what_everyone_is_granted_through_every_region() {
    let cluster = shared_cluster().await;
    cluster.wait_format_raised().await;
    let a = cluster.node(0).client();
    let bucket = create_bucket(&a, "batch").await;
    for key in ["drop/1", "drop/2", "keep/1"] {
        put(&a, &bucket, key, b"x").await;
    }
    let post = |node: usize, keys: &[&str]| {
        let xml: String = keys.iter().map(|k| format!("<Object><Key>{k}</Key></Object>")).collect();
        let xml = format!("<Delete>{xml}</Delete>");
        let md5 = base64(&md5_bytes(xml.as_bytes()));
        let url = format!("{}/{bucket}?delete", cluster.node(node).s3_url());
        async move {
            let resp = http_client().post(url).header("content-md5", md5).body(xml).send().await.expect("POST ?delete");
            (resp.status().as_u16(), resp.text().await.unwrap_or_default())
        }
    };
    let (status, text) = post(1, &["drop/1", "keep/1"]).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(text.matches("<Code>AccessDenied</Code>").count(), 2, "both refused: {text}");
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":"*","Action":"s3:DeleteObject","Resource":"arn:aws:s3:::{bucket}/drop/*"}}]}}"#
    );
    ok(a.put_bucket_policy().bucket(&bucket).policy(&policy).send().await, "PutBucketPolicy");
    let (status, text) = post(2, &["drop/1", "keep/1"]).await;
    assert_eq!(status, 200, "{text}");
    let (deleted, errors) = text.split_once("<Error>").unwrap_or((text.as_str(), ""));
    assert!(deleted.contains("<Key>drop/1</Key>") && !deleted.contains("keep/1"), "{text}");
    assert!(errors.contains("<Key>keep/1</Key>"), "{text}");
    for node in 0..3 {
        let client = cluster.node(node).client();
        expect_err(client.head_object().bucket(&bucket).key("drop/1").send().await, 404, None, "deleted everywhere");
        ok(client.head_object().bucket(&bucket).key("keep/1").send().await, "kept everywhere");
    }
    ok(a.delete_bucket_policy().bucket(&bucket).send().await, "DeleteBucketPolicy");
    ok(
        a.put_bucket_acl().bucket(&bucket).acl(aws_sdk_s3::types::BucketCannedAcl::PublicReadWrite).send().await,
        "PutBucketAcl public-read-write",
    );
    let (status, text) = post(1, &["drop/2", "keep/1"]).await;
    assert_eq!((status, text.contains("<Error>")), (200, false), "WRITE to everyone deletes anything: {text}");
    for node in 0..3 {
        let keys = list_all_keys(&cluster.node(node).client(), &bucket).await;
        assert!(keys.is_empty(), "node {node} still lists {keys:?}");
    }
}
