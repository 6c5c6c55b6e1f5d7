//! Files of signed-in users against a real node and the stand-in Auth service: a user's bucket
//! and what is in it are theirs (listed with replication state, downloadable through geo routing,
//! deletable, in their history, with a detail of placement, history and shares); another user
//! sees none of it and gets the same 404 as for a missing file; admins see everything.

use crate::harness;

use harness::devauth::{AuthMode, SeededTokens, auth_section, node_with_seeded_users};
use harness::{TestNode, create_bucket, http_client, put, random_bytes};
use serde_json::{Value, json};

/// `METHOD {web}{path}` as the holder of `token`, with an optional JSON body: status and body.
async fn call(node: &TestNode, method: reqwest::Method, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = http_client()
        .request(method, format!("{}{path}", node.web_url()))
        .bearer_auth(token)
        .header("accept", "application/json");
    if let Some(body) = body {
        request = request.json(&body);
    }
    let resp = request.send().await.expect("web API request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn get(node: &TestNode, path: &str, token: &str) -> (u16, Value) {
    call(node, reqwest::Method::GET, path, token, None).await
}

/// `(bucket, key)` of each file of a `GET /api/v1/files` page.
fn names(page: &Value) -> Vec<(String, String)> {
    let files = page["files"].as_array().unwrap_or_else(|| panic!("files in {page}"));
    files
        .iter()
        .map(|f| (f["bucket"].as_str().expect("bucket").into(), f["key"].as_str().expect("key").into()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_see_download_and_delete_only_their_own_files() {
    let (node, _devauth, SeededTokens { admin, alice, bob }) =
        node_with_seeded_users(|addr| auth_section(addr, AuthMode::Hs256, 1)).await;
    let _log = node.log_on_panic();
    let web = node.web_url();
    let post = reqwest::Method::POST;

    // Alice's bucket.
    let mine = harness::unique_bucket("alice");
    let (status, body) = call(&node, post.clone(), "/api/v1/buckets", &alice, Some(json!({ "name": mine }))).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["owner"], "u-alice");
    let (status, body) = call(&node, post.clone(), "/api/v1/buckets", &bob, Some(json!({ "name": mine }))).await;
    assert_eq!(status, 409, "a taken name: {body}");
    for bad in [json!({ "name": "No_Caps" }), json!({ "name": "ab" }), json!({ "nom": "abc" }), json!("x")] {
        let (status, body) = call(&node, post.clone(), "/api/v1/buckets", &alice, Some(bad.clone())).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }

    // Files in it (written over S3, e.g. through a presigned upload) and one elsewhere.
    let client = node.client();
    let film = random_bytes(7, 300 * 1024);
    put(&client, &mine, "film.mp4", &film).await;
    put(&client, &mine, "notes.txt", b"small").await;
    let other = create_bucket(&client, "admins").await;
    put(&client, &other, "secret.txt", b"not alice's").await;

    let (status, page) = get(&node, "/api/v1/files", &alice).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(names(&page), [(mine.clone(), "film.mp4".to_owned()), (mine.clone(), "notes.txt".to_owned())]);
    let entry = &page["files"][0];
    assert_eq!(entry["size"], 300 * 1024, "{entry}");
    let regions = entry["regions"].as_array().expect("regions");
    assert_eq!(regions.len(), 1, "one region in this cluster: {entry}");
    assert_eq!(regions[0]["replicated"], true, "the receiving node holds it: {entry}");
    assert!(page["next"].is_null());
    let (_, page) = get(&node, "/api/v1/files?limit=1", &alice).await;
    assert_eq!(names(&page).len(), 1);
    let next = page["next"].as_str().expect("next").to_owned();
    let (_, page) = get(&node, &format!("/api/v1/files?limit=1&after={next}"), &alice).await;
    assert_eq!(names(&page), [(mine.clone(), "notes.txt".to_owned())], "the second page");

    let (_, page) = get(&node, "/api/v1/files", &bob).await;
    assert!(names(&page).is_empty(), "bob owns nothing: {page}");
    let (_, page) = get(&node, "/api/v1/files", &admin).await;
    let all = names(&page);
    assert!(all.contains(&(other.clone(), "secret.txt".to_owned())) && all.len() >= 3, "an admin sees all: {page}");

    // Download through geo routing: a presigned URL that needs no credentials.
    let (status, link) = get(&node, &format!("/api/v1/files/{mine}/film.mp4"), &alice).await;
    assert_eq!(status, 200, "{link}");
    let url = link["url"].as_str().expect("url");
    let bytes = http_client().get(url).send().await.expect("presigned GET").bytes().await.expect("body");
    assert!(bytes.as_ref() == film.as_slice(), "downloaded bytes differ from the upload");
    let (status, _) = get(&node, &format!("/api/v1/files/{other}/secret.txt"), &alice).await;
    assert_eq!(status, 404, "another's file looks missing");
    let (status, _) = get(&node, &format!("/api/v1/files/{mine}/film.mp4"), &bob).await;
    assert_eq!(status, 404, "bob cannot download alice's file");

    // Delete: not bob, alice yes.
    let delete = reqwest::Method::DELETE;
    let (status, _) = call(&node, delete.clone(), &format!("/api/v1/files/{mine}/notes.txt"), &bob, None).await;
    assert_eq!(status, 404, "bob cannot delete alice's file");
    let (status, body) = call(&node, delete.clone(), &format!("/api/v1/files/{mine}/notes.txt"), &alice, None).await;
    assert_eq!(status, 204, "{body}");
    let (status, _) = call(&node, delete, &format!("/api/v1/files/{mine}/notes.txt"), &alice, None).await;
    assert_eq!(status, 404, "deleted already");
    let (_, page) = get(&node, "/api/v1/files", &alice).await;
    assert_eq!(names(&page), [(mine.clone(), "film.mp4".to_owned())]);

    // Her history: her bucket, the files written into it, her delete under her name.
    let (status, history) = get(&node, &format!("/api/v1/history?file={mine}"), &alice).await;
    assert_eq!(status, 200, "{history}");
    let seen: Vec<(String, String)> = history["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| (e["action"].as_str().expect("action").into(), e["actor"].as_str().unwrap_or("-").into()))
        .collect();
    let actions: Vec<&str> = seen.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(actions, ["bucket_create", "create", "create", "delete"], "{history}");
    assert_eq!(seen[0].1, "user:u-alice");
    assert_eq!(seen[3].1, "user:u-alice");
    let clients: Vec<&str> =
        history["entries"].as_array().expect("entries").iter().map(|e| e["client"].as_str().unwrap_or("-")).collect();
    assert_eq!(clients, ["127.0.0.1"; 4], "panel and S3 changes record the client's address: {history}");
    let (_, history) = get(&node, "/api/v1/history?user=u-alice", &admin).await;
    assert_eq!(history["entries"].as_array().expect("entries").len(), 2, "admin filters by user: {history}");
    let (_, history) = get(&node, &format!("/api/v1/history?file={mine}"), &bob).await;
    assert!(history["entries"].as_array().expect("entries").is_empty(), "bob sees none of it: {history}");

    // The file detail: the file, where its bytes are, its history and its shares.
    let detail_path = format!("/api/v1/files/{mine}/film.mp4?detail");
    let (status, _) = get(&node, &detail_path, &bob).await;
    assert_eq!(status, 404, "not bob's, not shared with him");
    let share = json!({ "bucket": mine, "key": "film.mp4", "user": "u-bob" });
    let (status, body) = call(&node, post, "/api/v1/shares", &alice, Some(share)).await;
    assert_eq!(status, 201, "{body}");
    let (status, detail) = get(&node, &detail_path, &alice).await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["file"]["key"], "film.mp4", "{detail}");
    assert_eq!(detail["file"]["size"], 300 * 1024, "{detail}");
    assert_eq!(detail["file"]["regions"][0]["replicated"], true, "{detail}");
    assert_eq!(detail["placement"]["replicated"], true, "{detail}");
    assert_eq!(detail["placement"]["holders"][0]["region"], harness::REGION, "{detail}");
    let actions: Vec<&str> =
        detail["history"].as_array().expect("history").iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(actions, ["create", "share_create"], "only this file's history: {detail}");
    assert!(detail["history_next"].is_null(), "{detail}");
    let shares = detail["shares"].as_array().expect("the owner sees the shares");
    assert_eq!(shares.len(), 1, "{detail}");
    assert_eq!(shares[0]["user"], "u-bob");
    assert_eq!((detail["may_manage"].as_bool(), detail["may_replace"].as_bool()), (Some(true), Some(true)));
    let (status, shared) = get(&node, &detail_path, &bob).await;
    assert_eq!(status, 200, "shared with bob: {shared}");
    assert!(shared["shares"].is_null(), "bob does not see who else has it: {shared}");
    assert_eq!((shared["may_manage"].as_bool(), shared["may_replace"].as_bool()), (Some(false), Some(false)));
    assert_eq!(shared["placement"]["key"], "film.mp4");
    let (status, _) = get(&node, &detail_path, &admin).await;
    assert_eq!(status, 200, "admins see every file");
    let (status, body) = get(&node, &format!("/api/v1/files/{mine}/film.mp4?detail=maybe"), &alice).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("bad_request")), "{body}");
    let (status, _) = get(&node, &format!("/api/v1/files/{mine}/notes.txt?detail"), &alice).await;
    assert_eq!(status, 404, "a deleted file has no detail");
    let resp = http_client()
        .get(format!("{web}{detail_path}"))
        .basic_auth(harness::ACCESS_KEY, Some(harness::SECRET_KEY))
        .send()
        .await
        .expect("GET detail with a key");
    assert_eq!(resp.status().as_u16(), 403, "the detail is for people; machines have placement");
}
