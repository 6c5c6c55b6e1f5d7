//! The history of files (`GET /api/v1/history`) against a real node and the stand-in Auth
//! service: S3 writes show up as create, update and delete with the access key as actor; the
//! filters (action, user, file, dates) and pages select what they say; admins see everything and
//! other users only their own. Uploads a signed-in user makes through presigned URLs are theirs in
//! the history (the URL names them, under the system key's signature), and S3 writes carry the
//! client's address.

use crate::harness;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{SystemTime, UNIX_EPOCH};

use harness::devauth::{AuthMode, DevAuth, SeededTokens, auth_section, free_auth_addr, node_with_seeded_users};
use harness::{
    ACCESS_KEY, MIB, NodeOptions, REGION, SECRET_KEY, TestNode, create_bucket, http_client, put, random_bytes,
    sha256_hex,
};
use serde_json::{Value, json};

/// `GET /api/v1/history?{query}` as the holder of `token`: status and JSON body.
async fn history(node: &TestNode, token: Option<&str>, query: &str) -> (u16, Value) {
    let mut request = http_client().get(format!("{}/api/v1/history?{query}", node.web_url()));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let resp = request.send().await.expect("GET /api/v1/history");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The `action` of each entry of a 200 page.
fn actions(body: &Value) -> Vec<String> {
    body["entries"].as_array().expect("entries").iter().map(|e| e["action"].as_str().expect("action").into()).collect()
}

fn now_ms() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis()).expect("fits")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_shows_file_changes_with_filters_pages_and_visibility() {
    let addr = free_auth_addr();
    let node = TestNode::start_with_extra(NodeOptions::default(), &auth_section(addr, AuthMode::Hs256, 1)).await;
    let devauth = DevAuth::start(node.config_path(), false).await;
    let _log = node.log_on_panic();
    let web = node.web_url();
    let admin = devauth.access_token(&web, "admin", "admin-password").await;
    let alice = devauth.access_token(&web, "alice", "alice-password").await;

    let started = now_ms();
    let client = node.client();
    let bucket = create_bucket(&client, "history").await;
    put(&client, &bucket, "film.mp4", b"first cut").await;
    put(&client, &bucket, "film.mp4", b"director's cut").await;
    put(&client, &bucket, "other.txt", b"notes").await;
    client.delete_object().bucket(&bucket).key("film.mp4").send().await.expect("DeleteObject");
    let file = format!("file={bucket}/film.mp4");

    // The S3 path is acknowledged after its entry is applied on this node: no waiting needed.
    let (status, body) = history(&node, Some(&admin), &file).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(actions(&body), ["create", "update", "delete"], "{body}");
    let entries = body["entries"].as_array().expect("entries");
    let key_actor = entries[0]["actor"].as_str().expect("actor").to_owned();
    assert!(key_actor.starts_with("key:"), "S3 writes are attributed to the access key: {key_actor}");
    for entry in entries {
        assert_eq!(entry["actor"], key_actor.as_str(), "{entry}");
        assert_eq!(entry["data"]["bucket"], bucket.as_str(), "{entry}");
        assert_eq!(entry["data"]["key"], "film.mp4", "{entry}");
        let at = entry["time_ms"].as_i64().expect("time_ms");
        assert!(at >= started - 5_000 && at <= now_ms() + 5_000, "time {at} near the test's clock");
    }
    assert_eq!(entries[1]["type"], "ObjectUpdated");
    assert_eq!(entries[1]["data"]["size"], 14);
    assert!(body["next"].is_null(), "the whole history was looked at: {body}");

    // Filters.
    let (_, body) = history(&node, Some(&admin), &format!("{file}&action=update")).await;
    assert_eq!(actions(&body), ["update"]);
    let (_, body) = history(&node, Some(&admin), &format!("file={bucket}")).await;
    assert_eq!(actions(&body), ["bucket_create", "create", "update", "create", "delete"], "{body}");
    let (_, body) = history(&node, Some(&admin), &format!("file={bucket}&user={key_actor}")).await;
    assert_eq!(actions(&body).len(), 5, "every change of the bucket was made with the key: {body}");
    let (_, body) = history(&node, Some(&admin), &format!("file={bucket}&user=user:u-bob")).await;
    assert_eq!(actions(&body), Vec::<String>::new(), "bob did nothing: {body}");
    let (_, body) = history(&node, Some(&admin), &format!("{file}&from_ms={}", now_ms() + 60_000)).await;
    assert_eq!(actions(&body), Vec::<String>::new(), "nothing happened in the future");
    let (_, body) =
        history(&node, Some(&admin), &format!("{file}&from_ms={}&to_ms={}", started - 5_000, now_ms() + 5_000)).await;
    assert_eq!(actions(&body).len(), 3, "all of it happened during the test");

    // Pages of one walk the same entries; `next` says where to go on.
    let mut walked = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..10 {
        let query = match &after {
            Some(cursor) => format!("{file}&limit=1&after={cursor}"),
            None => format!("{file}&limit=1"),
        };
        let (status, body) = history(&node, Some(&admin), &query).await;
        assert_eq!(status, 200, "{body}");
        walked.extend(actions(&body));
        match body["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(walked, ["create", "update", "delete"]);

    // Visibility: alice owns none of these files and did none of it.
    let (status, body) = history(&node, Some(&alice), &format!("file={bucket}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(actions(&body), Vec::<String>::new(), "a user does not see other people's files: {body}");

    // Refusals.
    let (status, body) = history(&node, None, "").await;
    assert_eq!(status, 401, "{body}");
    for bad in
        ["action=rename", "limit=0", "limit=501", "after=x", "file=", "file=/k", "from_ms=5&to_ms=4", "color=red"]
    {
        let (status, body) = history(&node, Some(&admin), bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"], "bad_request", "{bad}: {body}");
    }
}

/// The address the presigned requests of the test come from: another loopback address than the
/// SDK's 127.0.0.1, so the recorded address is seen to be the real client's.
const UPLOADER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));

/// A service token of the cinema (its SHA-256 is in the node's `[[api.service_token]]`).
const SERVICE_TOKEN: &str = "ticketing-service-token-0123456789abcdef";

/// An HTTP client whose connections come from [`UPLOADER`].
fn uploader() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .local_address(UPLOADER)
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .expect("build reqwest client")
}

/// `POST /api/v1/uploads` for `key` of `size` bytes as the holder of `token`: the plan.
async fn plan_upload(node: &TestNode, token: &str, bucket: &str, key: &str, size: usize) -> Value {
    let resp = http_client()
        .post(format!("{}/api/v1/uploads", node.web_url()))
        .bearer_auth(token)
        .json(&json!({ "bucket": bucket, "key": key, "size": size }))
        .send()
        .await
        .expect("POST /api/v1/uploads");
    assert_eq!(resp.status().as_u16(), 200, "upload plan for {key}");
    resp.json().await.expect("plan JSON")
}

/// The text of the first `<tag>` of an S3 XML answer.
fn xml_text<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    Some(&xml[start..start + xml[start..].find(&format!("</{tag}>"))?])
}

/// `(action, actor, client)` of each entry of a history page, by key.
fn who_and_where(body: &Value) -> Vec<(String, String, String, String)> {
    let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| (text(&e["data"]["key"]), text(&e["action"]), text(&e["actor"]), text(&e["client"])))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_uploads_are_the_users_and_s3_writes_carry_the_client_address() {
    let addr = free_auth_addr();
    // A 6 MiB file gets a multipart plan (parts of 5 MiB), so completion is covered too.
    let extra = format!(
        "{}\n[geo]\nmultipart_threshold_mib = 1\nmultipart_part_mib = 5\n\n[[api.service_token]]\nname = \"ticketing\"\nsha256 = \"{}\"\n",
        auth_section(addr, AuthMode::Hs256, 1),
        sha256_hex(SERVICE_TOKEN.as_bytes())
    );
    let node = TestNode::start_with_extra(NodeOptions::default(), &extra).await;
    let devauth = DevAuth::start(node.config_path(), false).await;
    let _log = node.log_on_panic();
    let web = node.web_url();
    let admin = devauth.access_token(&web, "admin", "admin-password").await;
    let alice = devauth.access_token(&web, "alice", "alice-password").await;
    let bucket = harness::unique_bucket("presigned");
    let resp = http_client()
        .post(format!("{web}/api/v1/buckets"))
        .bearer_auth(&alice)
        .json(&json!({ "name": bucket }))
        .send()
        .await
        .expect("POST /api/v1/buckets");
    assert_eq!(resp.status().as_u16(), 201);
    let http = uploader();

    // One presigned PUT: the URL names alice, under the system key's signature.
    let plan = plan_upload(&node, &alice, &bucket, "small.txt", 5).await;
    let url = plan["put"]["url"].as_str().expect("a presigned PUT").to_owned();
    assert!(url.contains("x-meridian-actor=user%3Au-alice"), "the URL names its user: {url}");
    let resp = http.put(&url).body(b"hello".to_vec()).send().await.expect("PUT");
    assert!(resp.status().is_success(), "presigned PUT: {}", resp.status());

    // Changing the name breaks the signature.
    let plan = plan_upload(&node, &alice, &bucket, "small.txt", 5).await;
    let forged = plan["put"]["url"].as_str().expect("url").replace("user%3Au-alice", "user%3Au-bob");
    let resp = http.put(&forged).body(b"mine now".to_vec()).send().await.expect("PUT");
    assert_eq!(resp.status().as_u16(), 403, "a renamed actor does not verify");

    // A multipart plan: parts, then the completion (the write) from the same client.
    let big = random_bytes(11, 6 * MIB);
    let plan = plan_upload(&node, &alice, &bucket, "big.bin", big.len()).await;
    let multipart = &plan["multipart"];
    let mut offset = 0;
    let mut parts = String::new();
    for part in multipart["parts"].as_array().expect("parts") {
        let size = usize::try_from(part["size"].as_u64().expect("size")).expect("fits");
        let url = part["url"].as_str().expect("part url");
        let resp = http.put(url).body(big[offset..offset + size].to_vec()).send().await.expect("PUT part");
        assert!(resp.status().is_success(), "part: {}", resp.status());
        let etag = resp.headers().get("etag").and_then(|v| v.to_str().ok()).expect("part ETag").to_owned();
        parts.push_str(&format!("<Part><PartNumber>{}</PartNumber><ETag>{etag}</ETag></Part>", part["part_number"]));
        offset += size;
    }
    let complete = multipart["complete"]["url"].as_str().expect("complete url");
    let resp = http
        .post(complete)
        .body(format!("<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>"))
        .send()
        .await
        .expect("POST complete");
    let status = resp.status();
    let text = resp.text().await.expect("complete body");
    assert!(status.is_success() && xml_text(&text, "ETag").is_some(), "complete: {status} {text}");

    // Any other key may not name someone: its own URL naming alice is recorded as the key.
    let s3_endpoint = format!("http://{}", node.s3_addr);
    let named = [("x-meridian-actor", "user:u-alice".to_owned())];
    let own = meridian_admin::presign::Presign {
        method: "PUT",
        endpoint: &s3_endpoint,
        region: REGION,
        access_key: ACCESS_KEY,
        secret_key: SECRET_KEY,
        bucket: &bucket,
        key: "keyed.txt",
        query: &named,
        headers: &[],
        expires_secs: 60,
        now: SystemTime::now(),
    }
    .url()
    .expect("presign");
    let resp = http.put(&own).body(b"by key".to_vec()).send().await.expect("PUT");
    assert!(resp.status().is_success(), "key-signed PUT: {}", resp.status());

    // A service's upload is the service's.
    let plan = plan_upload(&node, SERVICE_TOKEN, &bucket, "served.txt", 6).await;
    let url = plan["put"]["url"].as_str().expect("a presigned PUT");
    let resp = http.put(url).body(b"served".to_vec()).send().await.expect("PUT");
    assert!(resp.status().is_success(), "service PUT: {}", resp.status());

    // And an SDK write, from 127.0.0.1.
    put(&node.client(), &bucket, "sdk.txt", b"sdk").await;

    let (status, body) = history(&node, Some(&admin), &format!("file={bucket}&action=create")).await;
    assert_eq!(status, 200, "{body}");
    let key_actor = format!("key:{ACCESS_KEY}");
    let uploader = UPLOADER.to_string();
    let want = [
        ("small.txt", "user:u-alice", uploader.as_str()),
        ("big.bin", "user:u-alice", uploader.as_str()),
        ("keyed.txt", key_actor.as_str(), uploader.as_str()),
        ("served.txt", "service:ticketing", uploader.as_str()),
        ("sdk.txt", key_actor.as_str(), "127.0.0.1"),
    ];
    let want: Vec<_> =
        want.iter().map(|(k, a, c)| ((*k).to_owned(), "create".to_owned(), (*a).to_owned(), (*c).to_owned())).collect();
    assert_eq!(who_and_where(&body), want, "{body}");

    // Alice's own view: what she uploaded is hers (she owns the files she wrote first).
    let (_, body) = history(&node, Some(&alice), "user=u-alice&action=create").await;
    let keys: Vec<String> = who_and_where(&body).into_iter().map(|(k, ..)| k).collect();
    assert_eq!(keys, ["small.txt", "big.bin"], "{body}");
    let resp = http_client()
        .get(format!("{web}/api/v1/files?bucket={bucket}"))
        .bearer_auth(&alice)
        .send()
        .await
        .expect("GET files");
    let files: Value = resp.json().await.expect("files JSON");
    let owners: Vec<(&str, &str)> = files["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| (f["key"].as_str().expect("key"), f["owner"].as_str().unwrap_or("-")))
        .collect();
    let want =
        [("big.bin", "u-alice"), ("keyed.txt", "-"), ("sdk.txt", "-"), ("served.txt", "-"), ("small.txt", "u-alice")];
    assert_eq!(owners, want, "{files}");
}

/// A bucket deleted and created again under the same name by someone else: its new owner sees
/// what happened since their bucket exists, not the previous owner's past at that name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_owner_does_not_see_the_previous_owners_past() {
    let (node, _devauth, SeededTokens { alice, bob, .. }) =
        node_with_seeded_users(|addr| auth_section(addr, AuthMode::Hs256, 1)).await;
    let _log = node.log_on_panic();
    let web = node.web_url();
    let bucket = harness::unique_bucket("owners");
    let create_as = |token: String| {
        let (web, bucket) = (web.clone(), bucket.clone());
        async move {
            let resp = http_client()
                .post(format!("{web}/api/v1/buckets"))
                .bearer_auth(&token)
                .json(&json!({ "name": bucket }))
                .send()
                .await
                .expect("POST /api/v1/buckets");
            assert_eq!(resp.status().as_u16(), 201);
        }
    };
    let upload = |token: String, body: &'static [u8]| {
        let (node, bucket) = (&node, bucket.clone());
        async move {
            let plan = plan_upload(node, &token, &bucket, "cut.mp4", body.len()).await;
            let url = plan["put"]["url"].as_str().expect("a presigned PUT").to_owned();
            let resp = uploader().put(&url).body(body.to_vec()).send().await.expect("PUT");
            assert!(resp.status().is_success(), "presigned PUT: {}", resp.status());
        }
    };

    // Alice's bucket and file, then an operator empties and deletes the bucket over S3.
    create_as(alice.clone()).await;
    upload(alice.clone(), b"alice's cut").await;
    let client = node.client();
    client.delete_object().bucket(&bucket).key("cut.mp4").send().await.expect("DeleteObject");
    client.delete_bucket().bucket(&bucket).send().await.expect("DeleteBucket");
    // Bob takes the name and writes the same key.
    create_as(bob.clone()).await;
    upload(bob.clone(), b"bob's cut").await;

    let file = format!("file={bucket}/cut.mp4");
    let (status, body) = history(&node, Some(&bob), &file).await;
    assert_eq!(status, 200, "{body}");
    let seen = who_and_where(&body).into_iter().map(|(_, action, actor, _)| (action, actor)).collect::<Vec<_>>();
    assert_eq!(seen, [("create".to_owned(), "user:u-bob".to_owned())], "bob sees only his own file's past");
    let (_, body) = history(&node, Some(&bob), &format!("file={bucket}")).await;
    assert_eq!(actions(&body), ["bucket_create", "create"], "nor the previous bucket's: {body}");

    // Alice keeps what she did herself.
    let (_, body) = history(&node, Some(&alice), &format!("file={bucket}")).await;
    assert_eq!(actions(&body), ["bucket_create", "create"], "{body}");
}
