//! A file's versions in the admin panel: `GET /api/v1/versions/{bucket}/{key}` lists them and
//! `POST` restores one as a new current version (a cinema rolls back a bad re-encode). Only the
//! file's owner (and admins) may do either: another user gets 404, and nothing changes. The
//! same in a real browser: the file page's table and its Restore button.

use crate::harness;

use std::time::Duration;

use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use harness::devauth::{AuthMode, SeededTokens, auth_section, node_with_seeded_users};
use harness::webdriver::Driver;
use harness::{TestNode, get_bytes, http_client, ok, put, unique_bucket};
use serde_json::{Value, json};

/// A call to the web API as `token`.
async fn api(node: &TestNode, method: reqwest::Method, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = http_client().request(method, format!("{}{path}", node.web_url())).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let resp = request.send().await.expect("web API request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Alice's versioned bucket with two versions of `cut.mp4` (the first good, the second a bad
/// re-encode); returns the bucket.
async fn two_versions(node: &TestNode, alice: &str) -> String {
    let bucket = unique_bucket("panelver");
    let (status, body) =
        api(node, reqwest::Method::POST, "/api/v1/buckets", alice, Some(json!({ "name": bucket }))).await;
    assert_eq!(status, 201, "{body}");
    let s3 = node.client();
    let enabled = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
    ok(s3.put_bucket_versioning().bucket(&bucket).versioning_configuration(enabled).send().await, "versioning");
    put(&s3, &bucket, "cut.mp4", b"the good encode").await;
    put(&s3, &bucket, "cut.mp4", b"a bad re-encode, longer").await;
    bucket
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_lists_and_restores_versions_and_no_one_else_can() {
    let (node, _devauth, SeededTokens { alice, bob, admin }) =
        node_with_seeded_users(|addr| auth_section(addr, AuthMode::Hs256, 1)).await;
    let _log = node.log_on_panic();
    node.wait_format_raised().await;
    let bucket = two_versions(&node, &alice).await;
    let path = format!("/api/v1/versions/{bucket}/cut.mp4");
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;

    let (status, listed) = api(&node, get.clone(), &path, &alice, None).await;
    assert_eq!(status, 200, "{listed}");
    let versions = listed["versions"].as_array().expect("versions").clone();
    assert_eq!(versions.len(), 2, "{listed}");
    assert_eq!(versions[0]["latest"], true);
    assert_eq!(versions[0]["size"], 23);
    assert_eq!((versions[1]["latest"].clone(), versions[1]["size"].clone()), (json!(false), json!(15)));
    let good = versions[1]["version_id"].as_str().expect("id").to_owned();

    // Bob neither sees nor restores alice's versions: the same 404 as a missing file.
    let (status, body) = api(&node, get.clone(), &path, &bob, None).await;
    assert_eq!(status, 404, "bob lists alice's versions: {body}");
    let (status, body) = api(&node, post.clone(), &path, &bob, Some(json!({ "version_id": good }))).await;
    assert_eq!(status, 404, "bob restores alice's version: {body}");
    assert_eq!(get_bytes(&node.client(), &bucket, "cut.mp4").await, b"a bad re-encode, longer", "unchanged");
    // Bad input: no such version, a malformed id, an unknown field.
    let (status, _) = api(&node, post.clone(), &path, &alice, Some(json!({ "version_id": "0".repeat(24) }))).await;
    assert_eq!(status, 404, "an unknown version");
    let (status, _) = api(&node, post.clone(), &path, &alice, Some(json!({ "version_id": "../x" }))).await;
    assert_eq!(status, 400, "a malformed id");
    let (status, _) = api(&node, post.clone(), &path, &alice, Some(json!({ "version_id": good, "x": 1 }))).await;
    assert_eq!(status, 400, "an unknown field");

    // Alice restores the good encode: a new current version with its bytes, the bad one kept.
    let (status, restored) = api(&node, post.clone(), &path, &alice, Some(json!({ "version_id": good }))).await;
    assert_eq!(status, 201, "{restored}");
    assert_eq!(restored["restored_from"], good.as_str());
    assert_eq!(get_bytes(&node.client(), &bucket, "cut.mp4").await, b"the good encode");
    let (_, listed) = api(&node, get.clone(), &path, &admin, None).await;
    let versions = listed["versions"].as_array().expect("versions");
    assert_eq!(versions.len(), 3, "an admin sees them too: {listed}");
    assert_eq!(versions[0]["version_id"], restored["version_id"]);
    // The history says alice wrote the new version.
    let (status, history) = api(&node, get, &format!("/api/v1/history?file={bucket}/cut.mp4"), &alice, None).await;
    assert_eq!(status, 200, "{history}");
    let text = history.to_string();
    assert!(text.contains("u-alice") && text.contains(restored["version_id"].as_str().expect("id")), "{history}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_is_restored_from_the_file_page_in_a_browser() {
    let driver = Driver::start().await;
    let (node, _devauth, SeededTokens { alice, .. }) =
        node_with_seeded_users(|addr| auth_section(addr, AuthMode::Hs256, 1)).await;
    let _log = node.log_on_panic();
    node.wait_format_raised().await;
    let bucket = two_versions(&node, &alice).await;
    let web = node.web_url();
    let work = tempfile::tempdir().expect("temp dir");
    let browser = driver.browser("alice-versions", work.path()).await;
    browser.goto(&format!("{web}/file/{bucket}/cut.mp4")).await;
    browser.wait_url("the sign-in page", |u| u.contains("/signin")).await;
    browser.find("#signin input[name=login]").await.type_text("alice").await;
    browser.find("#signin input[name=password]").await.type_text("alice-password").await;
    browser.find("#signin button[type=submit]").await.click().await;
    browser.wait_url("the file's page", |u| u.contains("/file/")).await;
    browser.wait_text("Versions", Duration::from_secs(10)).await;
    let rows = browser.execute("return document.querySelectorAll('#versions tbody tr').length;", json!([])).await;
    assert_eq!(rows.as_u64(), Some(2), "two versions listed");
    browser.screenshot("versions-01-listed").await;
    browser.find("#versions tbody tr:nth-child(2) button[type=submit]").await.click().await;
    browser.wait_text("Restored version", Duration::from_secs(10)).await;
    let rows = browser.execute("return document.querySelectorAll('#versions tbody tr').length;", json!([])).await;
    assert_eq!(rows.as_u64(), Some(3), "the restored copy is a new version");
    browser.screenshot("versions-02-restored").await;
    assert_eq!(get_bytes(&node.client(), &bucket, "cut.mp4").await, b"the good encode");
    browser.close().await;
}
