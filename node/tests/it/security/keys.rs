//! Attacks on credentials and ownership (issue #13), replayed against real nodes:
//! - the secrets shipped in the repository, on a node that listens beyond loopback;
//! - an access key that leaked and must be revoked: disabled or deleted through one node, it is
//!   refused by every node from the moment the command returns (CLI and admin web API);
//! - a rotated cluster secret: the system key derived from the old one stops working;
//! - a write share used to take ownership of a file nobody owned.

use crate::harness;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use harness::cli::{create_key, key_cli, run_node_until_exit};
use harness::cluster::{ClusterOptions, TestCluster, three_region_config};
use harness::devauth::{AuthMode, SeededTokens, auth_section, node_with_seeded_users};
use harness::{ACCESS_KEY, POLL, SECRET_KEY, TestNode, http_client, put};
use serde_json::{Value, json};

/// The S3 error code of a ListBuckets signed by `client`; `None` when it succeeds.
async fn list_buckets_error(client: &Client) -> Option<String> {
    match client.list_buckets().send().await {
        Ok(_) => None,
        Err(e) => Some(e.into_service_error().meta().code().unwrap_or("(no code)").to_owned()),
    }
}

/// The line of `key list` for `id`, if it is listed.
fn listed(config: &Path, id: &str) -> Option<String> {
    let (ok, stdout, stderr) = key_cli(config, &["list"]);
    assert!(ok, "key list failed: {stderr}");
    assert!(stdout.starts_with("ACCESS KEY ID"), "a header line: {stdout}");
    stdout.lines().find(|line| line.starts_with(id)).map(str::to_owned)
}

/// Disabling a key through node A (the CLI asks the first region) makes nodes B and C refuse
/// it on the very next request, though both had served it before (their local copy of the key
/// is not trusted); enabling it again works at once; deleting it is as immediate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_disabled_or_deleted_through_one_node_is_refused_on_every_node_at_once() {
    let cluster = TestCluster::start().await;
    let config = cluster.node(0).config_path().to_path_buf();
    let (id, secret) = create_key(&config, "encoder", Some("user:u-7"));
    let b = cluster.node(1).client_with_keys(&id, &secret);
    let c = cluster.node(2).client_with_keys(&id, &secret);
    let bucket = harness::create_bucket(&b, "revoke").await;
    put(&c, &bucket, "k", b"served by C").await;
    assert_eq!(list_buckets_error(&b).await, None);
    let line = listed(&config, &id).expect("the new key is listed");
    assert!(line.contains("enabled") && line.contains("user:u-7") && line.contains("encoder"), "{line}");
    assert!(!line.contains(&secret), "never the secret: {line}");

    let (ok, _, stderr) = key_cli(&config, &["disable", &id]);
    assert!(ok, "disable: {stderr}");
    assert_eq!(list_buckets_error(&b).await.as_deref(), Some("AccessDenied"), "node B right after the disable");
    assert_eq!(list_buckets_error(&c).await.as_deref(), Some("AccessDenied"), "node C right after the disable");
    assert!(listed(&config, &id).is_some_and(|l| l.contains("disabled")), "listed as disabled");

    let (ok, _, stderr) = key_cli(&config, &["enable", &id]);
    assert!(ok, "enable: {stderr}");
    assert_eq!(list_buckets_error(&b).await, None, "node B right after the enable");
    assert_eq!(list_buckets_error(&c).await, None, "node C right after the enable");

    let (ok, _, stderr) = key_cli(&config, &["delete", &id]);
    assert!(ok, "delete: {stderr}");
    assert_eq!(list_buckets_error(&b).await.as_deref(), Some("AccessDenied"), "node B right after the delete");
    assert_eq!(list_buckets_error(&c).await.as_deref(), Some("AccessDenied"), "node C right after the delete");
    assert_eq!(listed(&config, &id), None, "a deleted key is not listed");
    let (ok, _, stderr) = key_cli(&config, &["disable", &id]);
    assert!(!ok && stderr.contains("no access key"), "an unknown key is named: {stderr}");
    // The other keys were left alone.
    assert_eq!(list_buckets_error(&cluster.node(1).client()).await, None, "the dev key still works");
}

/// A request to the web API as `token` (`None`: no credentials).
async fn api(node: &TestNode, method: reqwest::Method, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = http_client().request(method, format!("{}{path}", node.web_url()));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let resp = request.send().await.expect("web API request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The status of `GET /api/v1/events` with an access key as HTTP Basic credentials.
async fn events_with_key(node: &TestNode, id: &str, secret: &str) -> u16 {
    let resp = http_client()
        .get(format!("{}/api/v1/events?limit=1", node.web_url()))
        .basic_auth(id, Some(secret))
        .header("accept", "application/json")
        .send()
        .await
        .expect("GET events");
    resp.status().as_u16()
}

/// Admins list, disable, enable and delete keys on the web API; signed-in users who are not
/// admins get 403 and change nothing; without a session, 401. A disabled key is refused by S3
/// and by the web API's Basic authentication alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_revoke_keys_on_the_web_api_and_no_one_else_can() {
    let (node, _devauth, SeededTokens { admin, alice, bob }) =
        node_with_seeded_users(|addr| auth_section(addr, AuthMode::Hs256, 1)).await;
    let _log = node.log_on_panic();
    let (get, post, delete) = (reqwest::Method::GET, reqwest::Method::POST, reqwest::Method::DELETE);
    let (id, secret) = create_key(node.config_path(), "encoder", None);
    let client = node.client_with_keys(&id, &secret);
    assert_eq!(list_buckets_error(&client).await, None);

    assert_eq!(api(&node, get.clone(), "/api/v1/keys", None).await.0, 401, "no session");
    assert_eq!(api(&node, get.clone(), "/api/v1/keys", Some(&alice)).await.0, 403, "not an admin");
    let (status, list) = api(&node, get.clone(), "/api/v1/keys", Some(&admin)).await;
    assert_eq!(status, 200, "{list}");
    let keys = list["keys"].as_array().expect("keys");
    let entry = keys.iter().find(|k| k["id"] == id.as_str()).expect("the new key is listed");
    assert_eq!(entry["owner"], "service:encoder", "the CLI's default owner: {entry}");
    assert_eq!((entry["owner_recorded"].as_bool(), entry["disabled"].as_bool()), (Some(true), Some(false)));
    assert!(entry["created"].as_i64().is_some_and(|t| t > 0), "a creation time: {entry}");
    let dev = keys.iter().find(|k| k["id"] == ACCESS_KEY).expect("the dev key is listed");
    assert_eq!(dev["owner"], "service:dev", "a key from the config is the dev service's: {dev}");
    assert_eq!(dev["owner_recorded"], true, "installed with its owner: {dev}");
    assert!(dev["created"].as_i64().is_some_and(|t| t > 0), "installed with its creation time: {dev}");
    assert!(keys.iter().any(|k| k["id"].as_str().is_some_and(|i| i.starts_with("MSYS"))), "the system key");
    assert!(!list.to_string().contains(&secret) && !list.to_string().contains(SECRET_KEY), "no secret is listed");

    let disable = format!("/api/v1/keys/{id}/disable");
    let enable = format!("/api/v1/keys/{id}/enable");
    let remove = format!("/api/v1/keys/{id}");
    for (method, path) in [(post.clone(), &disable), (post.clone(), &enable), (delete.clone(), &remove)] {
        assert_eq!(api(&node, method.clone(), path, Some(&bob)).await.0, 403, "{method} {path} as bob");
        assert_eq!(api(&node, method.clone(), path, None).await.0, 401, "{method} {path} without a session");
    }
    assert_eq!(list_buckets_error(&client).await, None, "refused calls changed nothing");
    assert_eq!(events_with_key(&node, &id, &secret).await, 200, "the web API takes the key");

    let (status, body) = api(&node, post.clone(), &disable, Some(&admin)).await;
    assert_eq!((status, &body["disabled"]), (200, &json!(true)), "{body}");
    assert_eq!(list_buckets_error(&client).await.as_deref(), Some("AccessDenied"));
    assert_eq!(events_with_key(&node, &id, &secret).await, 401, "the web API refuses a disabled key");
    let (status, body) = api(&node, post.clone(), &enable, Some(&admin)).await;
    assert_eq!((status, &body["disabled"]), (200, &json!(false)), "{body}");
    assert_eq!(list_buckets_error(&client).await, None, "enabled again");
    assert_eq!(api(&node, delete.clone(), &remove, Some(&admin)).await.0, 204);
    assert_eq!(list_buckets_error(&client).await.as_deref(), Some("AccessDenied"));
    let (status, body) = api(&node, delete, &remove, Some(&admin)).await;
    assert_eq!(status, 404, "deleted already: {body}");
    assert!(body["message"].as_str().is_some_and(|m| m.contains(&id)), "the key is named: {body}");
    assert_eq!(api(&node, post, "/api/v1/keys/NOSUCHKEY/disable", Some(&admin)).await.0, 404);

    // Even the dev key of the config can be revoked, and the node stays ready for its clients.
    let dev_key = format!("/api/v1/keys/{ACCESS_KEY}");
    assert_eq!(api(&node, reqwest::Method::DELETE, &dev_key, Some(&admin)).await.0, 204);
    assert_eq!(list_buckets_error(&node.client()).await.as_deref(), Some("AccessDenied"));
    let health = http_client().get(format!("{}/healthz", node.web_url())).send().await.expect("healthz");
    assert_eq!(health.status().as_u16(), 200, "deleting the dev key must not take the node out of service");
}

/// The system key is derived from the cluster secret: after the secret is rotated, the old
/// system key (which anyone with the old secret can compute) signs nothing any more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_cluster_secret_retires_the_old_system_key() {
    let node = TestNode::start().await;
    let _log = node.log_on_panic();
    let text = fs::read_to_string(node.config_path()).expect("config");
    let old_secret = text
        .lines()
        .find_map(|l| l.strip_prefix("secret = \"").and_then(|l| l.strip_suffix('"')))
        .expect("[cluster] secret")
        .to_owned();
    let old = meridian_admin::presign::system_key(&old_secret);
    // The system key signs only presigned downloads and uploads: a presigned GET tells whether
    // the store knows it (200) or not (403).
    let bucket = harness::create_bucket(&node.client(), "rotate").await;
    put(&node.client(), &bucket, "k", b"v").await;
    let works = |key: meridian_admin::presign::SystemKey| {
        let (endpoint, bucket) = (node.s3_url(), bucket.clone());
        async move {
            let url = meridian_admin::presign::Presign {
                method: "GET",
                endpoint: &endpoint,
                region: harness::REGION,
                access_key: &key.id,
                secret_key: &key.secret,
                bucket: &bucket,
                key: "k",
                query: &[],
                headers: &[],
                expires_secs: 60,
                now: std::time::SystemTime::now(),
            }
            .url()
            .expect("presign");
            let status = http_client().get(url).send().await.expect("GET").status().as_u16();
            assert!(status == 200 || status == 403, "presigned GET with a system key: {status}");
            status == 200
        }
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    // The first voter installs the system key right after the dev key: wait for it (bounded).
    while !works(old.clone()).await {
        assert!(Instant::now() < deadline, "the system key was never installed");
        tokio::time::sleep(POLL).await;
    }

    node.terminate(Duration::from_secs(20)).await.expect("the node stops on SIGTERM");
    let new_secret = "a-rotated-cluster-secret-0123456789abcdef";
    fs::write(node.config_path(), text.replace(&old_secret, new_secret)).expect("rewrite config");
    node.restart().await;
    let new = meridian_admin::presign::system_key(new_secret);
    let deadline = Instant::now() + Duration::from_secs(20);
    while works(old.clone()).await || !works(new.clone()).await {
        assert!(Instant::now() < deadline, "the old system key still works, or the new one does not");
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(listed(node.config_path(), &old.id), None, "the old system key is gone from the list");
}

/// A file nobody owns (written with an S3 key) is shared with bob for write; bob uploads a new
/// version through the web API's presigned PUT. Once the share is revoked, bob must have no
/// right left on it: he neither deletes nor shares nor reads it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_share_never_makes_its_user_the_owner() {
    let (node, _devauth, SeededTokens { admin, bob, .. }) =
        node_with_seeded_users(|addr| auth_section(addr, AuthMode::Hs256, 1)).await;
    let _log = node.log_on_panic();
    let call = |method: reqwest::Method, path: String, token: String, body: Option<Value>| {
        let web = node.web_url();
        async move {
            let mut request = http_client().request(method, format!("{web}{path}")).bearer_auth(token);
            if let Some(body) = body {
                request = request.json(&body);
            }
            let resp = request.send().await.expect("web API request");
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (get, post, delete) = (reqwest::Method::GET, reqwest::Method::POST, reqwest::Method::DELETE);
    let bucket = harness::create_bucket(&node.client(), "owner").await;
    put(&node.client(), &bucket, "cut.mp4", b"written with an S3 key").await;

    let share = json!({ "bucket": bucket, "key": "cut.mp4", "user": "u-bob", "permission": "write" });
    let (status, created) = call(post.clone(), "/api/v1/shares".into(), admin.clone(), Some(share)).await;
    assert_eq!(status, 201, "admin shares the file with bob: {created}");
    let share_id = created["share"]["id"].as_str().expect("share id").to_owned();
    let upload = json!({ "bucket": bucket, "key": "cut.mp4", "size": 7 });
    let (status, plan) = call(post.clone(), "/api/v1/uploads".into(), bob.clone(), Some(upload)).await;
    assert_eq!(status, 200, "{plan}");
    let url = plan["put"]["url"].as_str().expect("a presigned PUT");
    let resp = http_client().put(url).body(b"bob cut".to_vec()).send().await.expect("PUT");
    assert!(resp.status().is_success(), "presigned PUT: {}", resp.status());

    let (status, _) = call(delete.clone(), format!("/api/v1/shares/{share_id}"), admin.clone(), None).await;
    assert_eq!(status, 204, "admin revokes the share");
    let file = format!("/api/v1/files/{bucket}/cut.mp4");
    let (status, _) = call(get, file.clone(), bob.clone(), None).await;
    assert_eq!(status, 404, "revoked: bob no longer reads it");
    let (status, body) = call(delete, file, bob.clone(), None).await;
    assert_eq!(status, 404, "bob must not delete a file he only had a write share on: {body}");
    let reshare = json!({ "bucket": bucket, "key": "cut.mp4" });
    let (status, body) = call(post, "/api/v1/shares".into(), bob, Some(reshare)).await;
    assert_eq!(status, 404, "bob must not share it either: {body}");
    let head = node.client().head_object().bucket(&bucket).key("cut.mp4").send().await.expect("the file is there");
    assert_eq!(head.content_length(), Some(7), "bob's version is the current one");
}

/// The values of the repository's `cluster.toml`, anyone can read them: a node whose region
/// listens on anything but loopback refuses each one at start, naming the field, before it
/// binds or creates anything.
#[test]
fn shipped_secrets_are_refused_on_a_non_loopback_listener() {
    let shipped = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../cluster.toml")).expect("toml");
    let value = |key: &str| {
        shipped
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key} = \"")).and_then(|l| l.strip_suffix('"')))
            .unwrap_or_else(|| panic!("no {key} in cluster.toml"))
            .to_owned()
    };
    let cases = [
        ("cluster.secret", "secret", harness::cluster::CLUSTER_SECRET.to_owned()),
        ("dev_key.secret_access_key", "secret_access_key", SECRET_KEY.to_owned()),
        ("auth.hs256_secret", "hs256_secret", harness::devauth::AUTH_SECRET.to_owned()),
        ("auth.service_token", "service_token", harness::devauth::SERVICE_TOKEN.to_owned()),
    ];
    let mut failures = Vec::new();
    for (field, key, ours) in cases {
        let dir = tempfile::Builder::new().prefix("meridian-shipped-").tempdir().expect("tempdir");
        let auth = auth_section("127.0.0.1:1".parse().expect("addr"), AuthMode::Hs256, 60);
        let options = ClusterOptions { extra_config: auth, ..ClusterOptions::default() };
        let text = three_region_config(&options, dir.path());
        assert!(text.contains(&ours), "{field}: the template has {ours:?}");
        let text = text.replace(&ours, &value(key));
        // Frankfurt's web listener on every interface (refused before anything binds).
        let web = text.lines().find_map(|l| l.strip_prefix("web = \"127.0.0.1:")).expect("frankfurt's web address");
        let port = web.trim_end_matches('"').to_owned();
        let text = text.replacen(&format!("web = \"127.0.0.1:{port}\""), &format!("web = \"0.0.0.0:{port}\""), 1);
        assert!(text.contains("0.0.0.0:"), "{field}: the web address was replaced");
        let config = dir.path().join("cluster.toml");
        fs::write(&config, &text).expect("write config");
        let cwd = dir.path().join("cwd");
        fs::create_dir_all(&cwd).expect("cwd");
        let (status, stderr) = run_node_until_exit(&config, &cwd, "frankfurt");
        let failed = status.is_some_and(|status| !status.success());
        eprintln!("{field}: failed {failed}, stderr: {}", stderr.trim());
        if !failed {
            failures.push(format!("{field}: the node did not refuse to start"));
        }
        if !stderr.contains(field) || !stderr.contains("0.0.0.0") {
            failures.push(format!("{field}: stderr does not name the field and address: {stderr:?}"));
        }
        if dir.path().join("data").exists() {
            failures.push(format!("{field}: a data dir was created"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A key that belongs to a user acts as that user on S3: it reaches the user's buckets and
/// files and what is shared with them, and nothing else. Above all, CopyObject and
/// UploadPartCopy authorize their source for the key's user, so a copy cannot read what a GET
/// could not. A service's key (the dev key) still reaches everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_key_reaches_only_what_its_user_may() {
    use aws_sdk_s3::primitives::ByteStream;
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    let (node, _devauth, SeededTokens { alice, bob, .. }) =
        node_with_seeded_users(|addr| auth_section(addr, AuthMode::Hs256, 1)).await;
    let _log = node.log_on_panic();
    let api = |method: reqwest::Method, path: String, token: String, body: Value| {
        let web = node.web_url();
        async move {
            let resp = http_client()
                .request(method, format!("{web}{path}"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("web API request");
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let post = reqwest::Method::POST;
    // Bob's bucket and secret, and a file of alice's in a bucket of her own, made in the panel.
    let bobs = harness::unique_bucket("bob");
    let alices = harness::unique_bucket("alice");
    for (bucket, token) in [(&bobs, &bob), (&alices, &alice)] {
        let (status, body) =
            api(post.clone(), "/api/v1/buckets".into(), token.clone(), json!({ "name": bucket })).await;
        assert_eq!(status, 201, "{body}");
    }
    let dev = node.client();
    put(&dev, &bobs, "secret.txt", b"bob's secret").await;
    put(&dev, &alices, "mine.txt", b"alice's own").await;

    let (id, secret) = create_key(node.config_path(), "alice-laptop", Some("user:u-alice"));
    let key = node.client_with_keys(&id, &secret);
    let denied = |what: &str, code: Option<String>| {
        assert_eq!(code.as_deref(), Some("AccessDenied"), "{what} with alice's key");
    };
    let code = |e: &dyn ProvideCode| e.code_of();
    denied("GET bob's file", code(&key.get_object().bucket(&bobs).key("secret.txt").send().await));
    denied("LIST bob's bucket", code(&key.list_objects_v2().bucket(&bobs).send().await));
    denied(
        "PUT into bob's bucket",
        code(&key.put_object().bucket(&bobs).key("x").body(ByteStream::from_static(b"x")).send().await),
    );
    denied("DELETE bob's file", code(&key.delete_object().bucket(&bobs).key("secret.txt").send().await));
    let copy = key.copy_object().bucket(&alices).key("stolen.txt").copy_source(format!("{bobs}/secret.txt"));
    denied("CopyObject from bob's file", code(&copy.send().await));
    let upload = key.create_multipart_upload().bucket(&alices).key("stolen.bin").send().await.expect("start upload");
    let upload_id = upload.upload_id().expect("upload id");
    let part_copy = key
        .upload_part_copy()
        .bucket(&alices)
        .key("stolen.bin")
        .upload_id(upload_id)
        .part_number(1)
        .copy_source(format!("{bobs}/secret.txt"));
    denied("UploadPartCopy from bob's file", code(&part_copy.send().await));
    let head = dev.head_object().bucket(&alices).key("stolen.txt").send().await;
    assert!(head.is_err(), "nothing was copied");
    // The bucket settings new in this release are the owner's alone: no turning on versioning,
    // reading or replacing the CORS rules of bob's bucket, nor listing its versions.
    node.wait_format_raised().await;
    let cors = aws_sdk_s3::types::CorsConfiguration::builder()
        .cors_rules(
            aws_sdk_s3::types::CorsRule::builder()
                .allowed_methods("GET")
                .allowed_origins("*")
                .build()
                .expect("a CORS rule"),
        )
        .build()
        .expect("a CORS configuration");
    let enabled = aws_sdk_s3::types::VersioningConfiguration::builder()
        .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
        .build();
    let put_cors = key.put_bucket_cors().bucket(&bobs).cors_configuration(cors.clone());
    denied("PutBucketCors on bob's bucket", code(&put_cors.send().await));
    denied("GetBucketCors on bob's bucket", code(&key.get_bucket_cors().bucket(&bobs).send().await));
    denied("DeleteBucketCors on bob's bucket", code(&key.delete_bucket_cors().bucket(&bobs).send().await));
    let put_versioning = key.put_bucket_versioning().bucket(&bobs).versioning_configuration(enabled.clone());
    denied("PutBucketVersioning on bob's bucket", code(&put_versioning.send().await));
    denied("GetBucketVersioning on bob's bucket", code(&key.get_bucket_versioning().bucket(&bobs).send().await));
    denied("ListObjectVersions of bob's bucket", code(&key.list_object_versions().bucket(&bobs).send().await));
    let versioned = dev.get_bucket_versioning().bucket(&bobs).send().await.expect("GetBucketVersioning");
    assert_eq!(versioned.status(), None, "bob's bucket was left unversioned");
    dev.get_bucket_cors().bucket(&bobs).send().await.expect_err("bob's bucket was left without CORS rules");
    // On her own bucket the same calls work.
    key.put_bucket_versioning()
        .bucket(&alices)
        .versioning_configuration(enabled)
        .send()
        .await
        .expect("versioning her own bucket");
    key.put_bucket_cors().bucket(&alices).cors_configuration(cors).send().await.expect("CORS rules on her own bucket");

    // Her own files and buckets work as with any key.
    let own = key.copy_object().bucket(&alices).key("copy.txt").copy_source(format!("{alices}/mine.txt"));
    own.send().await.expect("a copy of her own file");
    let own_part = key
        .upload_part_copy()
        .bucket(&alices)
        .key("stolen.bin")
        .upload_id(upload_id)
        .part_number(1)
        .copy_source(format!("{alices}/mine.txt"))
        .send()
        .await
        .expect("a part copied from her own file");
    let part = CompletedPart::builder()
        .part_number(1)
        .set_e_tag(own_part.copy_part_result().and_then(|r| r.e_tag().map(str::to_owned)))
        .build();
    key.complete_multipart_upload()
        .bucket(&alices)
        .key("stolen.bin")
        .upload_id(upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().parts(part).build())
        .send()
        .await
        .expect("complete");
    let listed = key.list_buckets().send().await.expect("ListBuckets");
    let names: Vec<&str> = listed.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, [alices.as_str()], "alice's key lists alice's buckets only");
    // A bucket made with her key is hers in the panel too.
    let made = harness::unique_bucket("made");
    key.create_bucket().bucket(&made).send().await.expect("CreateBucket");
    let plan = json!({ "bucket": made, "key": "through-the-panel.txt", "size": 1 });
    let (status, body) = api(post.clone(), "/api/v1/uploads".into(), alice.clone(), plan).await;
    assert_eq!(status, 200, "alice owns the bucket her key made: {body}");

    // Shared with her: now she may read and copy it.
    let share = json!({ "bucket": bobs, "key": "secret.txt", "user": "u-alice", "permission": "read" });
    let (status, body) = api(post, "/api/v1/shares".into(), bob.clone(), share).await;
    assert_eq!(status, 201, "{body}");
    key.get_object().bucket(&bobs).key("secret.txt").send().await.expect("GET through the share");
    let copy = key.copy_object().bucket(&alices).key("shared-copy.txt").copy_source(format!("{bobs}/secret.txt"));
    copy.send().await.expect("a copy of a file shared with her");

    // The dev key is a service's: it reaches everything, copies included.
    let copy = dev.copy_object().bucket(&bobs).key("copy.txt").copy_source(format!("{alices}/mine.txt"));
    copy.send().await.expect("the service key copies anything");
}

/// The S3 error code of an SDK result, if it failed.
trait ProvideCode {
    /// The code, `None` when the request succeeded.
    fn code_of(&self) -> Option<String>;
}

impl<T, E: aws_sdk_s3::error::ProvideErrorMetadata> ProvideCode
    for Result<T, aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>>
{
    fn code_of(&self) -> Option<String> {
        match self {
            Ok(_) => None,
            Err(e) => Some(e.as_service_error().and_then(|s| s.code()).unwrap_or("(no code)").to_owned()),
        }
    }
}
