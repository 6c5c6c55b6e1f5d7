//! The history of files (`GET /api/v1/history`) against a real node and the stand-in Auth
//! service: S3 writes show up as create, update and delete with the access key as actor; the
//! filters (action, user, file, dates) and pages select what they say; admins see everything and
//! other users only their own.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::devauth::{AuthMode, DevAuth, auth_section, free_auth_addr};
use common::{NodeOptions, TestNode, create_bucket, http_client, put};
use serde_json::Value;

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
