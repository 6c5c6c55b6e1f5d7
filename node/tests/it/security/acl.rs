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

/// A DeleteObjects body of `keys` (S3's XML).
fn delete_body(keys: &[&str]) -> aws_sdk_s3::types::Delete {
    let objects = keys
        .iter()
        .map(|k| aws_sdk_s3::types::ObjectIdentifier::builder().key(*k).build().expect("ObjectIdentifier"))
        .collect();
    aws_sdk_s3::types::Delete::builder().set_objects(Some(objects)).build().expect("Delete")
}

/// (deleted keys, refused keys with their codes) of a DeleteObjects that answered 200.
async fn batch_delete(client: &Client, bucket: &str, keys: &[&str]) -> (Vec<String>, Vec<(String, String)>) {
    let out = client
        .delete_objects()
        .bucket(bucket)
        .delete(delete_body(keys))
        .send()
        .await
        .expect("DeleteObjects answers 200, refusals inside");
    let deleted = out.deleted().iter().filter_map(|d| d.key().map(str::to_owned)).collect();
    let refused = out
        .errors()
        .iter()
        .map(|e| (e.key().unwrap_or_default().to_owned(), e.code().unwrap_or_default().to_owned()))
        .collect();
    (deleted, refused)
}

/// DeleteObjects by keys that do not own the bucket (issue #15): each key is judged as its
/// DeleteObject would be. A key the policy allows `s3:DeleteObject` deletes there; a key
/// granted WRITE by the bucket's ACL deletes anywhere in it; a key granted nothing gets
/// AccessDenied per key in the 200 answer and deletes nothing; a Deny refuses the owner's
/// batch too; an unsigned batch deletes only what everyone is granted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_deletes_are_judged_key_by_key() {
    let (node, _devauth, SeededTokens { bob, .. }) =
        node_with_seeded_users(|addr| auth_section(addr, AuthMode::Hs256, 1)).await;
    let _log = node.log_on_panic();
    node.wait_format_raised().await;
    let bucket = harness::unique_bucket("bobs-drafts");
    let (status, body) =
        harness::web_api(&node, reqwest::Method::POST, "/api/v1/buckets", &bob, Some(json!({ "name": bucket }))).await;
    assert_eq!(status, 201, "{body}");
    let dev = node.client();
    for key in ["tmp/1", "tmp/2", "tmp/3", "keep/1", "keep/2", "locked/1", "open/1"] {
        put(&dev, &bucket, key, b"draft").await;
    }
    let (bob_id, bob_secret) = create_key(node.config_path(), "bob-batch", Some("user:u-bob"));
    let bobs = node.client_with_keys(&bob_id, &bob_secret);
    let (alice_id, alice_secret) = create_key(node.config_path(), "alice-batch", Some("user:u-alice"));
    let alice = node.client_with_keys(&alice_id, &alice_secret);
    let (alice2_id, alice2_secret) = create_key(node.config_path(), "alice-batch-2", Some("user:u-alice"));
    let alice2 = node.client_with_keys(&alice2_id, &alice2_secret);
    let exists = |key: &'static str| {
        let dev = dev.clone();
        let bucket = bucket.clone();
        async move { dev.head_object().bucket(&bucket).key(key).send().await.is_ok() }
    };

    // Nothing granted: every key refused inside a 200, nothing deleted.
    let (deleted, refused) = batch_delete(&alice, &bucket, &["tmp/1", "keep/1"]).await;
    assert!(deleted.is_empty(), "{deleted:?}");
    assert_eq!(
        refused,
        vec![("tmp/1".into(), "AccessDenied".into()), ("keep/1".into(), "AccessDenied".into())],
        "AccessDenied per key"
    );
    assert!(exists("tmp/1").await && exists("keep/1").await, "nothing was deleted");

    // The policy allows alice's key s3:DeleteObject on tmp/*, and denies everyone locked/*.
    let policy = json!({ "Version": "2012-10-17", "Statement": [
        statement("Allow", json!({ "AWS": alice_id }), "s3:DeleteObject", format!("arn:aws:s3:::{bucket}/tmp/*")),
        statement("Deny", json!("*"), "s3:DeleteObject", format!("arn:aws:s3:::{bucket}/locked/*")),
    ] });
    assert_eq!(set_policy(&bobs, &bucket, &policy).await, None);
    let (deleted, refused) = batch_delete(&alice, &bucket, &["tmp/1", "keep/1"]).await;
    assert_eq!(deleted, vec!["tmp/1".to_owned()], "the policy's grant, as DeleteObject has it");
    assert_eq!(refused, vec![("keep/1".into(), "AccessDenied".into())]);
    assert!(!exists("tmp/1").await && exists("keep/1").await);
    let single = alice.delete_object().bucket(&bucket).key("keep/1").send().await;
    assert_eq!(code_of(&single).as_deref(), Some("AccessDenied"), "DeleteObject agrees");
    let (deleted, refused) = batch_delete(&alice2, &bucket, &["tmp/2"]).await;
    assert!(deleted.is_empty(), "the grant names one key, not its user's others");
    assert_eq!(refused, vec![("tmp/2".into(), "AccessDenied".into())]);

    // A bucket ACL WRITE grant to alice's canonical id: any key of hers deletes anywhere, but
    // the Deny still holds, for the owner too.
    let acl = bobs.put_bucket_acl().bucket(&bucket).grant_write("id=\"u-alice\"").grant_full_control("id=\"u-bob\"");
    assert_eq!(code_of(&acl.send().await), None, "PutBucketAcl granting alice WRITE");
    let (deleted, refused) = batch_delete(&alice2, &bucket, &["tmp/2", "keep/1", "locked/1"]).await;
    assert_eq!(deleted, vec!["tmp/2".to_owned(), "keep/1".to_owned()], "the ACL's WRITE grant");
    assert_eq!(refused, vec![("locked/1".into(), "AccessDenied".into())], "the Deny beats the ACL");
    let (deleted, refused) = batch_delete(&bobs, &bucket, &["keep/2", "locked/1"]).await;
    assert_eq!(deleted, vec!["keep/2".to_owned()], "the owner deletes his own");
    assert_eq!(refused, vec![("locked/1".into(), "AccessDenied".into())], "but not what the policy denies");
    assert!(exists("locked/1").await);

    // Unsigned: exactly what everyone is granted.
    let everyone = json!({ "Version": "2012-10-17", "Statement": [
        statement("Allow", json!("*"), "s3:DeleteObject", format!("arn:aws:s3:::{bucket}/open/*")),
    ] });
    assert_eq!(set_policy(&bobs, &bucket, &everyone).await, None);
    let xml = "<Delete><Object><Key>open/1</Key></Object><Object><Key>tmp/3</Key></Object></Delete>";
    let md5 = harness::base64(&harness::md5_bytes(xml.as_bytes()));
    let resp = http_client()
        .post(format!("{}/{bucket}?delete", node.s3_url()))
        .header("content-md5", md5.clone())
        .body(xml)
        .send()
        .await
        .expect("unsigned DeleteObjects");
    assert_eq!(resp.status(), 200, "refusals are per key");
    let text = resp.text().await.unwrap_or_default();
    let (deleted, errors) = text.split_once("<Error>").unwrap_or((text.as_str(), ""));
    assert!(deleted.contains("<Key>open/1</Key>") && !deleted.contains("tmp/3"), "{text}");
    assert!(errors.contains("<Key>tmp/3</Key>") && errors.contains("<Code>AccessDenied</Code>"), "{text}");
    assert!(!exists("open/1").await && exists("tmp/3").await, "only what everyone may delete");
    let resp = http_client()
        .post(format!("{}/{}?delete", node.s3_url(), harness::unique_bucket("nobody-has-it")))
        .header("content-md5", md5)
        .body(xml)
        .send()
        .await
        .expect("unsigned DeleteObjects of a missing bucket");
    let status = resp.status().as_u16();
    assert_eq!(
        (status, xml_error_code(&resp.text().await.unwrap_or_default()).as_deref()),
        (403, Some("AccessDenied")),
        "an unsigned caller learns nothing of buckets"
    );
}

/// The owner of a new object follows the bucket's ObjectOwnership (issue #15), as GetObjectAcl,
/// ListObjects (v1, V2 fetch-owner) and ListObjectVersions report it: ObjectWriter gives it to
/// its writer; BucketOwnerPreferred to the bucket's owner when written with
/// `bucket-owner-full-control` (else its writer); BucketOwnerEnforced to the bucket's owner,
/// every object, and an ACL naming anyone else is 400 AccessControlListNotSupported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_ownership_decides_who_owns_a_new_object() {
    let (node, _devauth, SeededTokens { bob, .. }) =
        node_with_seeded_users(|addr| auth_section(addr, AuthMode::Hs256, 1)).await;
    let _log = node.log_on_panic();
    node.wait_format_raised().await;
    let bucket = harness::unique_bucket("bobs-inbox");
    let (status, body) =
        harness::web_api(&node, reqwest::Method::POST, "/api/v1/buckets", &bob, Some(json!({ "name": bucket }))).await;
    assert_eq!(status, 201, "{body}");
    let (bob_id, bob_secret) = create_key(node.config_path(), "bob-own", Some("user:u-bob"));
    let bobs = node.client_with_keys(&bob_id, &bob_secret);
    let (alice_id, alice_secret) = create_key(node.config_path(), "alice-own", Some("user:u-alice"));
    let alice = node.client_with_keys(&alice_id, &alice_secret);
    let writes = json!({ "Version": "2012-10-17", "Statement": [
        statement("Allow", json!({ "CanonicalUser": "u-alice" }), "s3:PutObject", format!("arn:aws:s3:::{bucket}/*")),
    ] });
    assert_eq!(set_policy(&bobs, &bucket, &writes).await, None);
    let set_ownership = |ownership: ObjectOwnership| {
        let bobs = bobs.clone();
        let bucket = bucket.clone();
        async move {
            let controls = OwnershipControls::builder()
                .rules(OwnershipControlsRule::builder().object_ownership(ownership).build().expect("rule"))
                .build()
                .expect("controls");
            let set = bobs.put_bucket_ownership_controls().bucket(&bucket).ownership_controls(controls);
            assert_eq!(code_of(&set.send().await), None, "PutBucketOwnershipControls");
        }
    };
    let owner_of = |key: &'static str| {
        let bobs = bobs.clone();
        let bucket = bucket.clone();
        async move {
            let acl = bobs.get_object_acl().bucket(&bucket).key(key).send().await.expect("GetObjectAcl");
            acl.owner().and_then(|o| o.id()).unwrap_or_default().to_owned()
        }
    };
    let alice_puts = |key: &'static str, acl: Option<aws_sdk_s3::types::ObjectCannedAcl>| {
        let alice = alice.clone();
        let bucket = bucket.clone();
        async move {
            let put = alice.put_object().bucket(&bucket).key(key).set_acl(acl).body(ByteStream::from_static(b"reel"));
            code_of(&put.send().await)
        }
    };

    set_ownership(ObjectOwnership::ObjectWriter).await;
    assert_eq!(alice_puts("writer.mkv", None).await, None);
    assert_eq!(owner_of("writer.mkv").await, "u-alice", "ObjectWriter: the writer owns it");

    set_ownership(ObjectOwnership::BucketOwnerPreferred).await;
    let full = aws_sdk_s3::types::ObjectCannedAcl::BucketOwnerFullControl;
    assert_eq!(alice_puts("preferred.mkv", Some(full.clone())).await, None);
    assert_eq!(alice_puts("plain.mkv", None).await, None);
    assert_eq!(owner_of("preferred.mkv").await, "u-bob", "BucketOwnerPreferred + bucket-owner-full-control");
    assert_eq!(owner_of("plain.mkv").await, "u-alice", "BucketOwnerPreferred without it: the writer");
    let acl = bobs.get_object_acl().bucket(&bucket).key("preferred.mkv").send().await.expect("GetObjectAcl");
    assert!(
        acl.grants().iter().any(|g| g.grantee().and_then(|g| g.id()) == Some("u-bob")
            && g.permission() == Some(&aws_sdk_s3::types::Permission::FullControl)),
        "the bucket's owner has FULL_CONTROL: {acl:?}"
    );
    let v1 = bobs.list_objects().bucket(&bucket).send().await.expect("ListObjects");
    let owners: Vec<(&str, &str)> = v1
        .contents()
        .iter()
        .map(|o| (o.key().unwrap_or_default(), o.owner().and_then(|o| o.id()).unwrap_or_default()))
        .collect();
    assert_eq!(
        owners,
        vec![("plain.mkv", "u-alice"), ("preferred.mkv", "u-bob"), ("writer.mkv", "u-alice")],
        "ListObjects v1 names each owner"
    );
    let v2 = bobs.list_objects_v2().bucket(&bucket).fetch_owner(true).send().await.expect("ListObjectsV2");
    let display: Vec<&str> =
        v2.contents().iter().map(|o| o.owner().and_then(|o| o.display_name()).unwrap_or_default()).collect();
    assert_eq!(display.len(), 3);
    assert!(display.iter().all(|d| !d.is_empty() && !d.starts_with("u-")), "display names: {display:?}");

    set_ownership(ObjectOwnership::BucketOwnerEnforced).await;
    assert_eq!(owner_of("writer.mkv").await, "u-bob", "BucketOwnerEnforced: every object is the bucket owner's");
    let refused = alice_puts("enforced.mkv", Some(aws_sdk_s3::types::ObjectCannedAcl::PublicRead)).await;
    assert_eq!(refused.as_deref(), Some("AccessControlListNotSupported"));
    assert_eq!(alice_puts("enforced.mkv", None).await, None, "without an ACL the write is taken");
    assert_eq!(owner_of("enforced.mkv").await, "u-bob");
    let versions = bobs.list_object_versions().bucket(&bucket).send().await.expect("ListObjectVersions");
    assert!(
        versions.versions().iter().all(|v| v.owner().and_then(|o| o.id()) == Some("u-bob")),
        "ListObjectVersions names the owner: {versions:?}"
    );
    let v2 = bobs.list_objects_v2().bucket(&bucket).fetch_owner(true).send().await.expect("ListObjectsV2");
    assert!(v2.contents().iter().all(|o| o.owner().and_then(|o| o.id()) == Some("u-bob")));
    // Lifting the setting: ownership as written again.
    assert_eq!(code_of(&bobs.delete_bucket_ownership_controls().bucket(&bucket).send().await), None);
    assert_eq!(owner_of("writer.mkv").await, "u-alice");
    assert_eq!(owner_of("preferred.mkv").await, "u-bob", "the transfer made at write time stays");
}

/// `[s3] trusted_proxies` (issue #15): `aws:SourceIp` is the TCP peer unless the peer is a
/// trusted proxy; then the right-most `X-Forwarded-For` hop that is not itself trusted. A
/// forged header from anyone else is ignored, and a forged left part of a chain passed through
/// a trusted proxy does not count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
    let extra = "[s3]\ntrusted_proxies = [\"127.0.0.3/32\", \"127.0.0.4/32\"]\n";
    let node = TestNode::start_with_extra(harness::NodeOptions::default(), extra).await;
    let _log = node.log_on_panic();
    node.wait_format_raised().await;
    let dev = node.client();
    let bucket = harness::create_bucket(&dev, "proxied").await;
    put(&dev, &bucket, "films/dune.mkv", b"film").await;
    let office = json!({ "Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": format!("arn:aws:s3:::{bucket}/films/*"),
        "Condition": { "IpAddress": { "aws:SourceIp": "127.0.0.1/32" } } }] });
    assert_eq!(set_policy(&dev, &bucket, &office).await, None);
    let path = format!("/{bucket}/films/dune.mkv");
    let get = |from: [u8; 4], forwarded: Option<&'static str>| {
        let node = &node;
        let path = path.clone();
        async move {
            let client = browser_from(std::net::Ipv4Addr::from(from));
            unsigned(&client, reqwest::Method::GET, node, &path, forwarded).await.0
        }
    };
    assert_eq!(get([127, 0, 0, 1], None).await, 200, "the office itself");
    assert_eq!(get([127, 0, 0, 2], None).await, 403, "someone else");
    assert_eq!(get([127, 0, 0, 2], Some("127.0.0.1")).await, 403, "a forged header from an untrusted peer");
    assert_eq!(get([127, 0, 0, 3], Some("127.0.0.1")).await, 200, "the trusted proxy forwards the office");
    assert_eq!(get([127, 0, 0, 3], Some("127.0.0.2")).await, 403, "the trusted proxy forwards someone else");
    assert_eq!(
        get([127, 0, 0, 3], Some("127.0.0.1, 127.0.0.2")).await,
        403,
        "a forged left part: the proxy appended the real client"
    );
    assert_eq!(get([127, 0, 0, 3], Some("127.0.0.1, 127.0.0.4")).await, 200, "two trusted proxies in a row");
    assert_eq!(get([127, 0, 0, 3], Some("unknown, 127.0.0.1")).await, 200, "only the right-most untrusted hop counts");
    assert_eq!(get([127, 0, 0, 3], Some("127.0.0.1, garbage")).await, 403, "an unreadable hop stops the walk");
    assert_eq!(get([127, 0, 0, 3], None).await, 403, "a proxy without the header is the client");
}
