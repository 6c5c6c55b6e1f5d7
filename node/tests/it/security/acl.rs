//! Attacks on access control (issue #15, section 3), replayed against a real node with users:
//! another user's key reaching for the ACLs, policy and access settings of a bucket it does
//! not own; a policy grant used with another key; a Deny against an Allow (and against the
//! owner); unsigned writes; `aws:SourceIp` with a forged `X-Forwarded-For`; policies and
//! grants outside what can be honoured.

use crate::harness;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ObjectOwnership, OwnershipControls, OwnershipControlsRule, PublicAccessBlockConfiguration};
use harness::cli::create_key;
use harness::devauth::{AuthMode, SeededTokens, auth_section, node_with_seeded_users};
use harness::sigv4::xml_error_code;
use harness::{TestNode, browser_from, http_client, put};
use serde_json::json;

/// The S3 error code of a failed SDK call (`None`: it succeeded).
fn code_of<T, E: aws_sdk_s3::error::ProvideErrorMetadata>(
    result: &Result<T, aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>>,
) -> Option<String> {
    match result {
        Ok(_) => None,
        Err(e) => Some(e.as_service_error().and_then(|s| s.code()).unwrap_or("(no code)").to_owned()),
    }
}

/// Status and error code of an unsigned request from `client`.
async fn unsigned(
    client: &reqwest::Client,
    method: reqwest::Method,
    node: &TestNode,
    path: &str,
    forwarded_for: Option<&str>,
) -> (u16, Option<String>) {
    let mut request = client.request(method.clone(), format!("{}{path}", node.s3_url()));
    if let Some(ip) = forwarded_for {
        request = request.header("x-forwarded-for", ip);
    }
    if method == reqwest::Method::PUT {
        request = request.body("unsigned");
    }
    let resp = request.send().await.expect("unsigned request");
    let status = resp.status().as_u16();
    (status, xml_error_code(&resp.text().await.unwrap_or_default()))
}

async fn set_policy(client: &Client, bucket: &str, policy: &serde_json::Value) -> Option<String> {
    code_of(&client.put_bucket_policy().bucket(bucket).policy(policy.to_string()).send().await)
}

fn statement(effect: &str, principal: serde_json::Value, action: &str, resource: String) -> serde_json::Value {
    json!({ "Effect": effect, "Principal": principal, "Action": action, "Resource": resource })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_and_policies_cannot_be_turned_against_their_bucket() {
    let (node, _devauth, SeededTokens { bob, .. }) =
        node_with_seeded_users(|addr| auth_section(addr, AuthMode::Hs256, 1)).await;
    let _log = node.log_on_panic();
    node.wait_format_raised().await;
    // Bob's bucket, made in the panel (his), with a film and a secret.
    let bucket = harness::unique_bucket("bobs-films");
    let (status, body) =
        harness::web_api(&node, reqwest::Method::POST, "/api/v1/buckets", &bob, Some(json!({ "name": bucket }))).await;
    assert_eq!(status, 201, "{body}");
    let dev = node.client();
    put(&dev, &bucket, "films/dune.mkv", b"film").await;
    put(&dev, &bucket, "secret/plan.txt", b"secret").await;
    let (bob_id, bob_secret) = create_key(node.config_path(), "bob-laptop", Some("user:u-bob"));
    let bobs = node.client_with_keys(&bob_id, &bob_secret);
    let (alice_id, alice_secret) = create_key(node.config_path(), "alice-laptop", Some("user:u-alice"));
    let alice = node.client_with_keys(&alice_id, &alice_secret);
    let (alice2_id, alice2_secret) = create_key(node.config_path(), "alice-phone", Some("user:u-alice"));
    let alice2 = node.client_with_keys(&alice2_id, &alice2_secret);

    // Alice's key may neither read nor change any access setting of bob's bucket.
    let anyone = json!({ "Version": "2012-10-17", "Statement": [statement("Allow", json!("*"), "s3:*", format!("arn:aws:s3:::{bucket}/*"))] });
    let denied = Some("AccessDenied".to_owned());
    assert_eq!(set_policy(&alice, &bucket, &anyone).await, denied, "PutBucketPolicy");
    assert_eq!(code_of(&alice.get_bucket_policy().bucket(&bucket).send().await), denied, "GetBucketPolicy");
    assert_eq!(code_of(&alice.delete_bucket_policy().bucket(&bucket).send().await), denied, "DeleteBucketPolicy");
    assert_eq!(
        code_of(&alice.get_bucket_policy_status().bucket(&bucket).send().await),
        denied,
        "GetBucketPolicyStatus"
    );
    assert_eq!(code_of(&alice.get_bucket_acl().bucket(&bucket).send().await), denied, "GetBucketAcl");
    let public_read = aws_sdk_s3::types::BucketCannedAcl::PublicRead;
    assert_eq!(code_of(&alice.put_bucket_acl().bucket(&bucket).acl(public_read).send().await), denied, "PutBucketAcl");
    let object_acl = alice
        .put_object_acl()
        .bucket(&bucket)
        .key("secret/plan.txt")
        .acl(aws_sdk_s3::types::ObjectCannedAcl::PublicRead);
    assert_eq!(code_of(&object_acl.send().await), denied, "PutObjectAcl");
    assert_eq!(code_of(&alice.get_object_acl().bucket(&bucket).key("films/dune.mkv").send().await), denied);
    let open = PublicAccessBlockConfiguration::builder().block_public_acls(false).build();
    let pab = alice.put_public_access_block().bucket(&bucket).public_access_block_configuration(open);
    assert_eq!(code_of(&pab.send().await), denied, "PutPublicAccessBlock");
    assert_eq!(code_of(&alice.delete_public_access_block().bucket(&bucket).send().await), denied);
    let enforced = OwnershipControls::builder()
        .rules(OwnershipControlsRule::builder().object_ownership(ObjectOwnership::ObjectWriter).build().expect("rule"))
        .build()
        .expect("controls");
    let ownership = alice.put_bucket_ownership_controls().bucket(&bucket).ownership_controls(enforced);
    assert_eq!(code_of(&ownership.send().await), denied, "PutBucketOwnershipControls");
    assert_eq!(code_of(&dev.get_bucket_policy().bucket(&bucket).send().await).as_deref(), Some("NoSuchBucketPolicy"));
    let (status, _) =
        unsigned(&http_client(), reqwest::Method::GET, &node, &format!("/{bucket}/secret/plan.txt"), None).await;
    assert_eq!(status, 403, "nothing was opened");

    // A grant to one of alice's keys is that key's alone; a grant to her canonical id is hers.
    let to_key = json!({ "Version": "2012-10-17", "Statement": [statement("Allow", json!({ "AWS": [alice_id] }), "s3:GetObject", format!("arn:aws:s3:::{bucket}/films/*"))] });
    assert_eq!(set_policy(&bobs, &bucket, &to_key).await, None, "bob sets his bucket's policy");
    let film = alice.get_object().bucket(&bucket).key("films/dune.mkv").send().await;
    assert_eq!(code_of(&film), None, "the key the policy names reads");
    assert_eq!(
        code_of(&alice.get_object().bucket(&bucket).key("secret/plan.txt").send().await),
        denied,
        "outside the resource"
    );
    assert_eq!(
        code_of(&alice2.get_object().bucket(&bucket).key("films/dune.mkv").send().await),
        denied,
        "another key of hers"
    );
    let put_film = alice.put_object().bucket(&bucket).key("films/fake.mkv").body(ByteStream::from_static(b"x"));
    assert_eq!(code_of(&put_film.send().await), denied, "a GetObject grant does not write");
    let grant = bobs.put_object_acl().bucket(&bucket).key("secret/plan.txt").grant_read("id=\"u-alice\"");
    assert_eq!(code_of(&grant.send().await), None, "PutObjectAcl granting alice's canonical id");
    assert_eq!(
        code_of(&alice2.get_object().bucket(&bucket).key("secret/plan.txt").send().await),
        None,
        "any key of alice's"
    );

    // Grants that cannot be honoured are refused as S3 refuses them.
    let email =
        bobs.put_object_acl().bucket(&bucket).key("films/dune.mkv").grant_read("emailAddress=\"a@example.com\"");
    assert_eq!(code_of(&email.send().await).as_deref(), Some("UnresolvableGrantByEmailAddress"));
    let unknown = bobs.put_object_acl().bucket(&bucket).key("films/dune.mkv").grant_read("id=\"u-nobody\"");
    assert_eq!(code_of(&unknown.send().await).as_deref(), Some("InvalidArgument"));

    // Deny beats Allow, for the caller it names and for the owner too.
    let deny = json!({ "Version": "2012-10-17", "Statement": [
        statement("Allow", json!("*"), "s3:GetObject", format!("arn:aws:s3:::{bucket}/*")),
        statement("Deny", json!({ "AWS": alice_id }), "s3:GetObject", format!("arn:aws:s3:::{bucket}/films/*")),
        statement("Deny", json!("*"), "s3:GetObject", format!("arn:aws:s3:::{bucket}/secret/*")),
    ] });
    assert_eq!(set_policy(&bobs, &bucket, &deny).await, None);
    let (status, _) =
        unsigned(&http_client(), reqwest::Method::GET, &node, &format!("/{bucket}/films/dune.mkv"), None).await;
    assert_eq!(status, 200, "the Allow for everyone");
    assert_eq!(
        code_of(&alice.get_object().bucket(&bucket).key("films/dune.mkv").send().await),
        denied,
        "her key denied"
    );
    assert_eq!(
        code_of(&alice2.get_object().bucket(&bucket).key("films/dune.mkv").send().await),
        None,
        "her other key is not"
    );
    assert_eq!(
        code_of(&alice2.get_object().bucket(&bucket).key("secret/plan.txt").send().await),
        denied,
        "Deny beats her ACL grant"
    );
    assert_eq!(
        code_of(&bobs.get_object().bucket(&bucket).key("secret/plan.txt").send().await),
        denied,
        "and the owner"
    );
    assert_eq!(
        code_of(&dev.get_object().bucket(&bucket).key("secret/plan.txt").send().await),
        denied,
        "and the operator"
    );
    assert_eq!(
        code_of(&bobs.get_bucket_policy().bucket(&bucket).send().await),
        None,
        "the owner still manages the policy"
    );

    // Unsigned writes: refused unless granted, and only where granted.
    let drop = json!({ "Version": "2012-10-17", "Statement": [statement("Allow", json!("*"), "s3:PutObject", format!("arn:aws:s3:::{bucket}/drop/*"))] });
    let (status, code) =
        unsigned(&http_client(), reqwest::Method::PUT, &node, &format!("/{bucket}/drop/a.txt"), None).await;
    assert_eq!((status, code.as_deref()), (403, Some("AccessDenied")), "no grant yet");
    assert_eq!(set_policy(&bobs, &bucket, &drop).await, None);
    let (status, _) =
        unsigned(&http_client(), reqwest::Method::PUT, &node, &format!("/{bucket}/drop/a.txt"), None).await;
    assert_eq!(status, 200, "granted");
    for path in [format!("/{bucket}/films/dune.mkv"), format!("/{bucket}/drop"), format!("/{bucket}/drop/../films/x")] {
        let (status, _) = unsigned(&http_client(), reqwest::Method::PUT, &node, &path, None).await;
        assert_eq!(status, 403, "unsigned PUT {path}");
    }
    let (status, _) =
        unsigned(&http_client(), reqwest::Method::DELETE, &node, &format!("/{bucket}/drop/a.txt"), None).await;
    assert_eq!(status, 403, "PutObject does not delete");

    // aws:SourceIp is the address the node saw; X-Forwarded-For changes nothing.
    let from_loopback = json!({ "Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": format!("arn:aws:s3:::{bucket}/films/*"),
        "Condition": { "IpAddress": { "aws:SourceIp": "127.0.0.1/32" } } }] });
    assert_eq!(set_policy(&bobs, &bucket, &from_loopback).await, None);
    let path = format!("/{bucket}/films/dune.mkv");
    let here = browser_from(std::net::Ipv4Addr::new(127, 0, 0, 1));
    let elsewhere = browser_from(std::net::Ipv4Addr::new(127, 0, 0, 2));
    assert_eq!(unsigned(&here, reqwest::Method::GET, &node, &path, None).await.0, 200, "from 127.0.0.1");
    assert_eq!(unsigned(&elsewhere, reqwest::Method::GET, &node, &path, None).await.0, 403, "from 127.0.0.2");
    let forged = unsigned(&elsewhere, reqwest::Method::GET, &node, &path, Some("127.0.0.1")).await;
    assert_eq!(forged.0, 403, "a forged X-Forwarded-For is not believed");
    let status = bobs.get_bucket_policy_status().bucket(&bucket).send().await.expect("GetBucketPolicyStatus");
    assert_eq!(
        status.policy_status().and_then(aws_sdk_s3::types::PolicyStatus::is_public),
        Some(false),
        "limited to one address: not public"
    );

    // Policies outside the subset, or too large, are MalformedPolicy and change nothing.
    let malformed = Some("MalformedPolicy".to_owned());
    let nobody = json!({ "Statement": [statement("Allow", json!({ "AWS": "AKIDNOBODY" }), "s3:GetObject", format!("arn:aws:s3:::{bucket}/*"))] });
    assert_eq!(set_policy(&bobs, &bucket, &nobody).await, malformed, "a principal that is nobody here");
    let other =
        json!({ "Statement": [statement("Allow", json!("*"), "s3:GetObject", "arn:aws:s3:::someone-else/*".into())] });
    assert_eq!(set_policy(&bobs, &bucket, &other).await, malformed, "another bucket's resource");
    let not_action = json!({ "Statement": [{ "Effect": "Allow", "Principal": "*", "NotAction": "s3:DeleteObject", "Resource": format!("arn:aws:s3:::{bucket}/*") }] });
    assert_eq!(set_policy(&bobs, &bucket, &not_action).await, malformed, "NotAction");
    let referer = json!({ "Statement": [{ "Effect": "Deny", "Principal": "*", "Action": "s3:GetObject", "Resource": format!("arn:aws:s3:::{bucket}/*"), "Condition": { "StringNotLike": { "aws:Referer": "https://cinema.example/*" } } }] });
    assert_eq!(set_policy(&bobs, &bucket, &referer).await, malformed, "a condition that would not be enforced");
    let padding = "x".repeat(21 * 1024);
    let huge = json!({ "Id": padding, "Statement": [statement("Allow", json!("*"), "s3:GetObject", format!("arn:aws:s3:::{bucket}/*"))] });
    assert_eq!(set_policy(&bobs, &bucket, &huge).await, malformed, "over 20 KiB");
    let garbage = bobs.put_bucket_policy().bucket(&bucket).policy("{\"Statement\": [").send().await;
    assert_eq!(code_of(&garbage), malformed, "not JSON");
    let kept = bobs.get_bucket_policy().bucket(&bucket).send().await.expect("GetBucketPolicy");
    assert_eq!(kept.policy(), Some(from_loopback.to_string().as_str()), "the last good policy is kept");
}
