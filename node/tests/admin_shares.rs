//! Shares against a real node and the stand-in Auth service: public links (download limit,
//! expiry, revocation, password with CSRF and rate limit) and links for named users (read
//! permission, revocation), all in the history.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use common::devauth::{AuthMode, DevAuth, auth_section, free_auth_addr};
use common::{NodeOptions, POLL, TestNode, http_client, put, random_bytes};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};

/// Wrong passwords tolerated per client address in this test's config.
const PER_CLIENT: usize = 3;

/// A browser-like client from `ip` that does not follow redirects (the test looks at them).
fn browser(ip: Ipv4Addr) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .local_address(IpAddr::V4(ip))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

async fn api(node: &TestNode, method: reqwest::Method, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = http_client().request(method, format!("{}{path}", node.web_url())).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let resp = request.send().await.expect("web API request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Creates a share as `token`; returns (id, link path if public).
async fn share(node: &TestNode, token: &str, body: Value) -> (String, Option<String>) {
    let (status, created) = api(node, reqwest::Method::POST, "/api/v1/shares", token, Some(body)).await;
    assert_eq!(status, 201, "{created}");
    (created["share"]["id"].as_str().expect("id").to_owned(), created["url"].as_str().map(str::to_owned))
}

/// Opens a link; on a 302, downloads from where it points and returns the bytes too.
async fn open(node: &TestNode, client: &reqwest::Client, link: &str) -> (u16, Option<Vec<u8>>) {
    let resp = client.get(format!("{}{link}", node.web_url())).send().await.expect("GET link");
    let status = resp.status().as_u16();
    if status != 302 {
        return (status, None);
    }
    let location = resp.headers()[LOCATION].to_str().expect("location").to_owned();
    assert!(location.contains("X-Amz-Expires="), "a presigned, short-lived URL: {location}");
    let bytes = http_client().get(location).send().await.expect("presigned GET").bytes().await.expect("body");
    (302, Some(bytes.to_vec()))
}

/// The password form of a link: (csrf field, cookie pair).
async fn form(node: &TestNode, client: &reqwest::Client, link: &str) -> (String, String) {
    let resp = client.get(format!("{}{link}", node.web_url())).send().await.expect("GET link");
    assert_eq!(resp.status().as_u16(), 200, "a password page");
    let cookie = resp.headers()[SET_COOKIE].to_str().expect("cookie").split(';').next().expect("pair").to_owned();
    let html = resp.text().await.expect("html");
    let csrf = html.split("name=\"csrf\" value=\"").nth(1).and_then(|r| r.split('"').next()).expect("csrf field");
    (csrf.to_owned(), cookie)
}

async fn submit(
    node: &TestNode,
    client: &reqwest::Client,
    link: &str,
    cookie: Option<&str>,
    csrf: &str,
    password: &str,
) -> reqwest::Response {
    let mut request = client.post(format!("{}{link}", node.web_url())).form(&[("csrf", csrf), ("password", password)]);
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    request.send().await.expect("POST password")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_and_user_shares_enforce_their_rules() {
    let addr = free_auth_addr();
    let extra = format!(
        "{}\n[shares]\npassword_attempts_per_client = {PER_CLIENT}\npassword_attempts_per_link = 100\npassword_window_secs = 600\n",
        auth_section(addr, AuthMode::Hs256, 1)
    );
    let node = TestNode::start_with_extra(NodeOptions::default(), &extra).await;
    let devauth = DevAuth::start(node.config_path(), false).await;
    let _log = node.log_on_panic();
    let web = node.web_url();
    let alice = devauth.access_token(&web, "alice", "alice-password").await;
    let bob = devauth.access_token(&web, "bob", "bob-password").await;
    let (post, delete) = (reqwest::Method::POST, reqwest::Method::DELETE);

    let bucket = common::unique_bucket("shares");
    let (status, body) = api(&node, post.clone(), "/api/v1/buckets", &alice, Some(json!({ "name": bucket }))).await;
    assert_eq!(status, 201, "{body}");
    let film = random_bytes(11, 200 * 1024);
    put(&node.client(), &bucket, "film.mp4", &film).await;
    let file = json!({ "bucket": bucket, "key": "film.mp4" });
    let with = |extra: Value| {
        let mut body = file.clone();
        body.as_object_mut().expect("object").extend(extra.as_object().expect("object").clone());
        body
    };
    let visitor = browser(Ipv4Addr::new(127, 0, 0, 1));

    // Only the owner shares; bad input is a 400.
    let (status, _) = api(&node, post.clone(), "/api/v1/shares", &bob, Some(file.clone())).await;
    assert_eq!(status, 404, "bob cannot share alice's file");
    for bad in [
        json!({ "max_downloads": 0 }),
        json!({ "expires_in_secs": 0 }),
        json!({ "user": "u-nobody" }),
        json!({ "user": "u-bob", "password": "x" }),
        json!({ "permission": "write" }),
        json!({ "password": "" }),
    ] {
        let (status, body) = api(&node, post.clone(), "/api/v1/shares", &alice, Some(with(bad.clone()))).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }

    // Download limit.
    let (_, link) = share(&node, &alice, with(json!({ "max_downloads": 2 }))).await;
    let link = link.expect("public link");
    assert!(link.len() >= "/s/".len() + 43, "a token of at least 256 bits: {link}");
    for _ in 0..2 {
        let (status, bytes) = open(&node, &visitor, &link).await;
        assert_eq!(status, 302);
        assert!(bytes.as_deref() == Some(film.as_slice()), "the shared bytes");
    }
    assert_eq!(open(&node, &visitor, &link).await.0, 410, "out of downloads");
    assert_eq!(open(&node, &visitor, "/s/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await.0, 404, "unknown token");

    // Revocation: not by bob, at once by alice.
    let (id, link) = share(&node, &alice, file.clone()).await;
    let link = link.expect("public link");
    assert_eq!(open(&node, &visitor, &link).await.0, 302);
    let (status, _) = api(&node, delete.clone(), &format!("/api/v1/shares/{id}"), &bob, None).await;
    assert_eq!(status, 404, "bob cannot revoke alice's share");
    let (status, _) = api(&node, delete.clone(), &format!("/api/v1/shares/{id}"), &alice, None).await;
    assert_eq!(status, 204);
    assert_eq!(open(&node, &visitor, &link).await.0, 404, "revoked");

    // Expiry (bounded wait on the clock, not a fixed sleep).
    let (_, link) = share(&node, &alice, with(json!({ "expires_in_secs": 1 }))).await;
    let link = link.expect("public link");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = open(&node, &visitor, &link).await.0;
        if status == 410 {
            break;
        }
        assert_eq!(status, 302, "before expiry the link works");
        assert!(Instant::now() < deadline, "the link did not expire");
        tokio::time::sleep(POLL).await;
    }

    // Password: CSRF first, then the rate limit per client address, then the right password.
    let (_, link) = share(&node, &alice, with(json!({ "password": "open sesame" }))).await;
    let link = link.expect("public link");
    let (csrf, cookie) = form(&node, &visitor, &link).await;
    assert_eq!(
        submit(&node, &visitor, &link, None, &csrf, "open sesame").await.status().as_u16(),
        403,
        "no CSRF cookie"
    );
    assert_eq!(
        submit(&node, &visitor, &link, Some(&cookie), "forged", "open sesame").await.status().as_u16(),
        403,
        "wrong CSRF token"
    );
    let cross = visitor
        .post(format!("{web}{link}"))
        .header(COOKIE, &cookie)
        .header("origin", "http://evil.example")
        .form(&[("csrf", csrf.as_str()), ("password", "open sesame")])
        .send()
        .await
        .expect("POST");
    assert_eq!(cross.status().as_u16(), 403, "a cross-origin post");
    for attempt in 0..PER_CLIENT {
        let resp = submit(&node, &visitor, &link, Some(&cookie), &csrf, "guess").await;
        assert_eq!(resp.status().as_u16(), 401, "wrong password {attempt}");
        assert!(resp.text().await.expect("html").contains("did not work"), "a generic message");
    }
    let resp = submit(&node, &visitor, &link, Some(&cookie), &csrf, "open sesame").await;
    assert_eq!(resp.status().as_u16(), 429, "over the limit even with the right password");
    let other = browser(Ipv4Addr::new(127, 0, 0, 2));
    let (csrf, cookie) = form(&node, &other, &link).await;
    let resp = submit(&node, &other, &link, Some(&cookie), &csrf, "open sesame").await;
    assert_eq!(resp.status().as_u16(), 302, "another client with the right password");
    let location = resp.headers()[LOCATION].to_str().expect("location").to_owned();
    let bytes = http_client().get(location).send().await.expect("GET").bytes().await.expect("body");
    assert!(bytes.as_ref() == film.as_slice(), "the shared bytes after the password");
    assert!(node.log_report().contains("share password attempts over the limit"), "the limit is logged");

    // A read share for bob: he downloads, cannot delete; revoked, he cannot download.
    let download = format!("/api/v1/files/{bucket}/film.mp4");
    let (status, _) = api(&node, reqwest::Method::GET, &download, &bob, None).await;
    assert_eq!(status, 404, "not shared yet");
    let (id, link) = share(&node, &alice, with(json!({ "user": "u-bob", "permission": "read" }))).await;
    assert!(link.is_none(), "user shares have no public link");
    let (_, mine) = api(&node, reqwest::Method::GET, "/api/v1/shares?with_me=true", &bob, None).await;
    let ids: Vec<&str> = mine["shares"].as_array().expect("shares").iter().filter_map(|s| s["id"].as_str()).collect();
    assert_eq!(ids, [id.as_str()], "shared with bob: {mine}");
    let (_, theirs) = api(&node, reqwest::Method::GET, "/api/v1/shares", &alice, None).await;
    assert!(theirs["shares"].as_array().expect("shares").len() >= 5, "alice lists her shares");
    assert!(!theirs.to_string().contains("token"), "no token or hash is ever listed");
    let (status, link) = api(&node, reqwest::Method::GET, &download, &bob, None).await;
    assert_eq!(status, 200, "a read share downloads (the client followed the presigned redirect): {link}");
    let (status, _) = api(&node, delete.clone(), &download, &bob, None).await;
    assert_eq!(status, 404, "a read share does not delete");
    let upload = json!({ "bucket": bucket, "key": "film.mp4", "size": 7 });
    let (status, _) = api(&node, post.clone(), "/api/v1/uploads", &bob, Some(upload.clone())).await;
    assert_eq!(status, 404, "a read share does not upload a new version");
    let (status, _) = api(&node, delete, &format!("/api/v1/shares/{id}"), &alice, None).await;
    assert_eq!(status, 204);
    let (status, _) = api(&node, reqwest::Method::GET, &download, &bob, None).await;
    assert_eq!(status, 404, "revoked at once");

    // A write share: bob uploads a new version (an update in the history).
    share(&node, &alice, with(json!({ "user": "u-bob", "permission": "write" }))).await;
    let (status, plan) = api(&node, post.clone(), "/api/v1/uploads", &bob, Some(upload)).await;
    assert_eq!(status, 200, "{plan}");
    let url = plan["put"]["url"].as_str().expect("a presigned PUT");
    let resp = http_client().put(url).body(b"new cut".to_vec()).send().await.expect("PUT");
    assert!(resp.status().is_success(), "presigned PUT: {}", resp.status());

    // All of it is in alice's history.
    let (_, history) =
        api(&node, reqwest::Method::GET, &format!("/api/v1/history?file={bucket}/film.mp4&limit=500"), &alice, None)
            .await;
    let entries = history["entries"].as_array().expect("entries");
    let count = |action: &str| entries.iter().filter(|e| e["action"] == action).count();
    assert_eq!(count("share_create"), 6, "{history}");
    assert_eq!(count("update"), 1, "bob's new version: {history}");
    assert_eq!(count("share_revoke"), 2, "{history}");
    // Two limited downloads, one before revocation, at least one before expiry, one after the password.
    assert!(count("share_use") >= 5, "{history}");
    let used = entries.iter().find(|e| e["action"] == "share_use").expect("a use");
    assert_eq!(used["data"]["client"], "127.0.0.1", "the client address: {used}");
}
