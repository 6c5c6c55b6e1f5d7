//! Shares against real nodes and the stand-in Auth service: public links (download limit, also
//! across nodes; HEAD and previews; expiry, revocation, password with CSRF and rate limit, a
//! burst of guesses), links for named users (read and write, expiry, revocation), shares dying
//! with their file, listing by file, all in the history.

use crate::harness;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use harness::cluster::{ClusterOptions, TestCluster};
use harness::devauth::{AuthMode, DevAuth, SeededTokens, auth_section, free_auth_addr, node_with_seeded_users};
use harness::{POLL, TestNode, browser_from, http_client, put, random_bytes, web_api};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};

/// Wrong passwords tolerated per client address in this test's config.
const PER_CLIENT: usize = 3;
/// Wrong passwords tolerated per link in this test's config.
const PER_LINK: usize = 100;
/// Life of the URLs handed out through shares in these tests.
const PRESIGN_SECS: u64 = 30;

/// The `[auth]` and `[shares]` of these tests.
fn config(addr: std::net::SocketAddr) -> String {
    format!(
        "{}\n[shares]\npassword_attempts_per_client = {PER_CLIENT}\npassword_attempts_per_link = {PER_LINK}\n\
         password_window_secs = 600\npresign_secs = {PRESIGN_SECS}\n",
        auth_section(addr, AuthMode::Hs256, 1)
    )
}

/// Creates a share as `token`; returns (id, link path if public).
async fn share(node: &TestNode, token: &str, body: Value) -> (String, Option<String>) {
    let (status, created) = web_api(node, reqwest::Method::POST, "/api/v1/shares", token, Some(body)).await;
    assert_eq!(status, 201, "{created}");
    (created["share"]["id"].as_str().expect("id").to_owned(), created["url"].as_str().map(str::to_owned))
}

/// Follows a link's 302 to the presigned URL: the bytes.
async fn follow(resp: reqwest::Response) -> (u16, Option<Vec<u8>>) {
    let status = resp.status().as_u16();
    if status != 302 {
        return (status, None);
    }
    let location = resp.headers()[LOCATION].to_str().expect("location").to_owned();
    assert!(
        location.contains(&format!("X-Amz-Expires={PRESIGN_SECS}&")),
        "a presigned URL of [shares] life: {location}"
    );
    let bytes = http_client().get(location).send().await.expect("presigned GET").bytes().await.expect("body");
    (302, Some(bytes.to_vec()))
}

/// Opens a link as a browser would: GET, and for a limited link the page's Download button
/// (POST with its CSRF token); a 302 is followed and the bytes returned too.
async fn open_on(web: &str, client: &reqwest::Client, link: &str) -> (u16, Option<Vec<u8>>) {
    let resp = client.get(format!("{web}{link}")).send().await.expect("GET link");
    if resp.status().as_u16() != 200 {
        return follow(resp).await;
    }
    let (csrf, cookie) = form_of(resp).await;
    let resp = client
        .post(format!("{web}{link}"))
        .header(COOKIE, cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("POST download");
    follow(resp).await
}

async fn open(node: &TestNode, client: &reqwest::Client, link: &str) -> (u16, Option<Vec<u8>>) {
    open_on(&node.web_url(), client, link).await
}

/// The CSRF field and cookie pair of a link's page.
async fn form_of(resp: reqwest::Response) -> (String, String) {
    assert_eq!(resp.status().as_u16(), 200, "a link page");
    let cookie = resp.headers()[SET_COOKIE].to_str().expect("cookie").split(';').next().expect("pair").to_owned();
    let html = resp.text().await.expect("html");
    let csrf = html.split("name=\"csrf\" value=\"").nth(1).and_then(|r| r.split('"').next()).expect("csrf field");
    (csrf.to_owned(), cookie)
}

/// The password form of a link: (csrf field, cookie pair).
async fn form(node: &TestNode, client: &reqwest::Client, link: &str) -> (String, String) {
    form_of(client.get(format!("{}{link}", node.web_url())).send().await.expect("GET link")).await
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
    let (node, _devauth, SeededTokens { alice, bob, .. }) = node_with_seeded_users(config).await;
    let _log = node.log_on_panic();
    let web = node.web_url();
    let (post, delete) = (reqwest::Method::POST, reqwest::Method::DELETE);

    let bucket = harness::unique_bucket("shares");
    let (status, body) = web_api(&node, post.clone(), "/api/v1/buckets", &alice, Some(json!({ "name": bucket }))).await;
    assert_eq!(status, 201, "{body}");
    let film = random_bytes(11, 200 * 1024);
    put(&node.client(), &bucket, "film.mp4", &film).await;
    let file = json!({ "bucket": bucket, "key": "film.mp4" });
    let with = |extra: Value| {
        let mut body = file.clone();
        body.as_object_mut().expect("object").extend(extra.as_object().expect("object").clone());
        body
    };
    let visitor = browser_from(Ipv4Addr::new(127, 0, 0, 1));

    // Only the owner shares; bad input is a 400.
    let (status, _) = web_api(&node, post.clone(), "/api/v1/shares", &bob, Some(file.clone())).await;
    assert_eq!(status, 404, "bob cannot share alice's file");
    for bad in [
        json!({ "max_downloads": 0 }),
        json!({ "expires_in_secs": 0 }),
        json!({ "user": "u-nobody" }),
        json!({ "user": "u-bob", "password": "x" }),
        json!({ "permission": "write" }),
        json!({ "password": "" }),
    ] {
        let (status, body) = web_api(&node, post.clone(), "/api/v1/shares", &alice, Some(with(bad.clone()))).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }

    // Download limit. A limited link's GET is a page: HEAD and link previews (GET only)
    // spend nothing; only the page's button downloads.
    let (_, link) = share(&node, &alice, with(json!({ "max_downloads": 2 }))).await;
    let link = link.expect("public link");
    assert!(link.len() >= "/s/".len() + 43, "a token of at least 256 bits: {link}");
    for _ in 0..3 {
        let head = visitor.head(format!("{web}{link}")).send().await.expect("HEAD");
        assert_eq!(head.status().as_u16(), 200, "HEAD of a usable link");
        let preview = visitor.get(format!("{web}{link}")).send().await.expect("GET");
        assert_eq!(preview.status().as_u16(), 200, "a page, not a download");
    }
    for _ in 0..2 {
        let (status, bytes) = open(&node, &visitor, &link).await;
        assert_eq!(status, 302);
        assert!(bytes.as_deref() == Some(film.as_slice()), "the shared bytes");
    }
    assert_eq!(open(&node, &visitor, &link).await.0, 410, "out of downloads");
    let head = visitor.head(format!("{web}{link}")).send().await.expect("HEAD");
    assert_eq!(head.status().as_u16(), 410, "HEAD tells the state too");
    assert_eq!(open(&node, &visitor, "/s/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await.0, 404, "unknown token");

    // Revocation: not by bob, at once by alice.
    let (id, link) = share(&node, &alice, file.clone()).await;
    let link = link.expect("public link");
    assert_eq!(open(&node, &visitor, &link).await.0, 302);
    let (status, _) = web_api(&node, delete.clone(), &format!("/api/v1/shares/{id}"), &bob, None).await;
    assert_eq!(status, 404, "bob cannot revoke alice's share");
    let (status, _) = web_api(&node, delete.clone(), &format!("/api/v1/shares/{id}"), &alice, None).await;
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

    // The CSRF cookie is the link's own (a second link does not replace it), kept across a
    // reload (a second tab's form stays valid), and Secure behind TLS.
    let reload = visitor.get(format!("{web}{link}")).header(COOKIE, &cookie).send().await.expect("GET");
    let set = reload.headers()[SET_COOKIE].to_str().expect("cookie").to_owned();
    assert!(set.contains(&format!("Path={link};")), "scoped to the link: {set}");
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    assert_eq!(form_of(reload).await.0, csrf, "a reload keeps the token of the first tab");
    let behind_tls =
        visitor.get(format!("{web}{link}")).header("x-forwarded-proto", "https").send().await.expect("GET");
    let set = behind_tls.headers()[SET_COOKIE].to_str().expect("cookie").to_owned();
    assert!(set.contains("; Secure"), "Secure behind TLS: {set}");

    // A burst of wrong passwords from a fresh client: the attempts are reserved before argon2
    // runs, so at most the client's budget is checked; the rest is refused at once.
    let burst_client = browser_from(Ipv4Addr::new(127, 0, 0, 9));
    let (burst_csrf, burst_cookie) = form(&node, &burst_client, &link).await;
    let posts = (0..24).map(|_| submit(&node, &burst_client, &link, Some(&burst_cookie), &burst_csrf, "guess"));
    let statuses: Vec<u16> = futures::future::join_all(posts).await.iter().map(|r| r.status().as_u16()).collect();
    let wrong = statuses.iter().filter(|s| **s == 401).count();
    assert!((1..=PER_CLIENT).contains(&wrong), "at most the budget checked: {statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), statuses.len() - wrong, "{statuses:?}");
    let other = browser_from(Ipv4Addr::new(127, 0, 0, 2));
    let (csrf, cookie) = form(&node, &other, &link).await;
    let resp = submit(&node, &other, &link, Some(&cookie), &csrf, "open sesame").await;
    assert_eq!(resp.status().as_u16(), 302, "another client with the right password");
    let location = resp.headers()[LOCATION].to_str().expect("location").to_owned();
    let bytes = http_client().get(location).send().await.expect("GET").bytes().await.expect("body");
    assert!(bytes.as_ref() == film.as_slice(), "the shared bytes after the password");
    assert!(node.log_report().contains("share password attempts over the limit"), "the limit is logged");

    // A read share for bob: he downloads, cannot delete; revoked, he cannot download.
    let download = format!("/api/v1/files/{bucket}/film.mp4");
    let (status, _) = web_api(&node, reqwest::Method::GET, &download, &bob, None).await;
    assert_eq!(status, 404, "not shared yet");
    let (id, link) = share(&node, &alice, with(json!({ "user": "u-bob", "permission": "read" }))).await;
    assert!(link.is_none(), "user shares have no public link");
    let (_, mine) = web_api(&node, reqwest::Method::GET, "/api/v1/shares?with_me=true", &bob, None).await;
    let ids: Vec<&str> = mine["shares"].as_array().expect("shares").iter().filter_map(|s| s["id"].as_str()).collect();
    assert_eq!(ids, [id.as_str()], "shared with bob: {mine}");
    let (_, theirs) = web_api(&node, reqwest::Method::GET, "/api/v1/shares", &alice, None).await;
    assert!(theirs["shares"].as_array().expect("shares").len() >= 5, "alice lists her shares");
    assert!(!theirs.to_string().contains("token"), "no token or hash is ever listed");
    let (status, link) = web_api(&node, reqwest::Method::GET, &download, &bob, None).await;
    assert_eq!(status, 200, "a read share downloads (the client followed the presigned redirect): {link}");
    let (status, _) = web_api(&node, delete.clone(), &download, &bob, None).await;
    assert_eq!(status, 404, "a read share does not delete");
    let upload = json!({ "bucket": bucket, "key": "film.mp4", "size": 7 });
    let (status, _) = web_api(&node, post.clone(), "/api/v1/uploads", &bob, Some(upload.clone())).await;
    assert_eq!(status, 404, "a read share does not upload a new version");
    let (status, _) = web_api(&node, delete, &format!("/api/v1/shares/{id}"), &alice, None).await;
    assert_eq!(status, 204);
    let (status, _) = web_api(&node, reqwest::Method::GET, &download, &bob, None).await;
    assert_eq!(status, 404, "revoked at once");

    // A write share: bob uploads a new version (an update in the history).
    share(&node, &alice, with(json!({ "user": "u-bob", "permission": "write" }))).await;
    let (status, plan) = web_api(&node, post.clone(), "/api/v1/uploads", &bob, Some(upload)).await;
    assert_eq!(status, 200, "{plan}");
    let url = plan["put"]["url"].as_str().expect("a presigned PUT");
    let resp = http_client().put(url).body(b"new cut".to_vec()).send().await.expect("PUT");
    assert!(resp.status().is_success(), "presigned PUT: {}", resp.status());

    // All of it is in alice's history.
    let (_, history) = web_api(
        &node,
        reqwest::Method::GET,
        &format!("/api/v1/history?file={bucket}/film.mp4&limit=500"),
        &alice,
        None,
    )
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
    let created = entries.iter().find(|e| e["action"] == "share_create").expect("a share created");
    assert_eq!(created["client"], "127.0.0.1", "the creator's address: {created}");
    // Bob's download through his read share is a use of it, by him.
    let by_bob = entries.iter().filter(|e| e["action"] == "share_use" && e["actor"] == "user:u-bob").count();
    assert_eq!(by_bob, 1, "the named user's download: {history}");
}

/// A share dies with its file: once the file is deleted, its link and its user shares stay
/// dead even when a file appears again at the same key, in a bucket re-created by someone else;
/// a share of a missing file is refused. Also: a user share expires, owners list the shares an
/// admin made on their file, and the list pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shares_die_with_their_file_and_are_listed_by_file() {
    let (node, _devauth, SeededTokens { admin, alice, bob }) = node_with_seeded_users(config).await;
    let _log = node.log_on_panic();
    let web = node.web_url();
    let (get, post, delete) = (reqwest::Method::GET, reqwest::Method::POST, reqwest::Method::DELETE);
    let visitor = browser_from(Ipv4Addr::LOCALHOST);

    let bucket = harness::unique_bucket("gone");
    let (status, body) = web_api(&node, post.clone(), "/api/v1/buckets", &alice, Some(json!({ "name": bucket }))).await;
    assert_eq!(status, 201, "{body}");
    let file = json!({ "bucket": bucket, "key": "report.pdf" });
    let (status, _) = web_api(&node, post.clone(), "/api/v1/shares", &alice, Some(file.clone())).await;
    assert_eq!(status, 404, "no file yet, no share");
    put(&node.client(), &bucket, "report.pdf", b"alice's report").await;
    let (link_id, link) = share(&node, &alice, file.clone()).await;
    let link = link.expect("public link");
    let mut for_bob = file.clone();
    for_bob.as_object_mut().expect("object").insert("user".into(), json!("u-bob"));
    for_bob.as_object_mut().expect("object").insert("permission".into(), json!("write"));
    share(&node, &alice, for_bob).await;
    let (admin_made, _) = share(&node, &admin, file.clone()).await;
    let download = format!("/api/v1/files/{bucket}/report.pdf");
    let upload = json!({ "bucket": bucket, "key": "report.pdf", "size": 3 });
    assert_eq!(open(&node, &visitor, &link).await.0, 302, "the link works");
    assert_eq!(web_api(&node, get.clone(), &download, &bob, None).await.0, 200, "bob's share works");

    // The owner lists every share of her file, the admin's too; pages go on with `next`.
    let path = format!("/api/v1/shares?file={bucket}/report.pdf&limit=2");
    let (status, page) = web_api(&node, get.clone(), &path, &alice, None).await;
    assert_eq!(status, 200, "{page}");
    let next = page["next"].as_str().expect("a second page").to_owned();
    let (_, rest) = web_api(&node, get.clone(), &format!("{path}&after={next}"), &alice, None).await;
    let ids: Vec<String> = [&page, &rest]
        .iter()
        .flat_map(|p| p["shares"].as_array().expect("shares").iter().map(|s| s["id"].as_str().expect("id").to_owned()))
        .collect();
    assert_eq!(ids.len(), 3, "{page} {rest}");
    assert!(ids.contains(&admin_made), "alice sees the admin's share of her file: {ids:?}");
    assert_eq!(web_api(&node, get.clone(), &path, &bob, None).await.0, 404, "not bob's file");
    let (status, bad) = web_api(&node, get.clone(), "/api/v1/shares?limit=0", &alice, None).await;
    assert_eq!((status, bad["error"].as_str()), (400, Some("bad_request")), "{bad}");

    // Delete, and write a new file at the key: the old shares do not come back.
    let (status, _) = web_api(&node, delete.clone(), &download, &alice, None).await;
    assert_eq!(status, 204);
    assert_eq!(open(&node, &visitor, &link).await.0, 404, "the link died with the file");
    put(&node.client(), &bucket, "report.pdf", b"alice's next report").await;
    assert_eq!(open(&node, &visitor, &link).await.0, 404, "a new file at the key is not reachable by the link");
    assert_eq!(web_api(&node, get.clone(), &download, &bob, None).await.0, 404, "nor by bob's old share");
    assert_eq!(web_api(&node, post.clone(), "/api/v1/uploads", &bob, Some(upload.clone())).await.0, 404, "nor written");

    // Delete it and the bucket (over S3), and let bob re-create both.
    let (status, _) = web_api(&node, delete, &download, &alice, None).await;
    assert_eq!(status, 204);
    node.client().delete_bucket().bucket(&bucket).send().await.expect("DeleteBucket");
    let (status, body) = web_api(&node, post.clone(), "/api/v1/buckets", &bob, Some(json!({ "name": bucket }))).await;
    assert_eq!(status, 201, "{body}");
    put(&node.client(), &bucket, "report.pdf", b"bob's report").await;
    assert_eq!(open(&node, &visitor, &link).await.0, 404, "the old link never serves bob's file");
    let (_, mine) = web_api(&node, get.clone(), "/api/v1/shares", &alice, None).await;
    let old = mine["shares"].as_array().expect("shares").iter().find(|s| s["id"] == link_id.as_str()).cloned();
    assert_eq!(old.as_ref().map(|s| s["state"].clone()), Some(json!("revoked")), "{mine}");
    let (_, on_new) =
        web_api(&node, get.clone(), &format!("/api/v1/shares?file={bucket}/report.pdf"), &bob, None).await;
    assert_eq!(on_new["shares"].as_array().map(Vec::len), Some(0), "the new file has no shares: {on_new}");

    // A user share of the new file, with an expiry: it works, then it does not.
    let carol_bucket = harness::unique_bucket("expiry");
    let (status, _) =
        web_api(&node, post.clone(), "/api/v1/buckets", &alice, Some(json!({ "name": carol_bucket }))).await;
    assert_eq!(status, 201);
    put(&node.client(), &carol_bucket, "cut.mov", b"cut").await;
    let expiring = json!({ "bucket": carol_bucket, "key": "cut.mov", "user": "u-bob", "expires_in_secs": 1 });
    share(&node, &alice, expiring).await;
    let cut = format!("/api/v1/files/{carol_bucket}/cut.mov");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = web_api(&node, get.clone(), &cut, &bob, None).await;
        if status == 404 {
            break;
        }
        assert_eq!(status, 200, "before expiry the share works: {body}");
        assert!(Instant::now() < deadline, "the user share did not expire");
        tokio::time::sleep(POLL).await;
    }

    // Bad bodies on the API are JSON 4xx.
    let resp = http_client()
        .post(format!("{web}/api/v1/uploads"))
        .bearer_auth(&bob)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = resp.json().await.expect("a JSON error");
    assert_eq!(body["error"], "bad_request", "{body}");
    let (status, _) = web_api(&node, post, "/api/v1/uploads", &bob, Some(upload)).await;
    assert_eq!(status, 200, "bob owns the re-created bucket");
}

/// The download limit holds across the cluster: concurrent opens of one limited link on three
/// nodes serve exactly the limit, and every node then answers 410.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_download_limit_holds_across_nodes() {
    const LIMIT: usize = 3;
    let addr = free_auth_addr();
    let cluster = TestCluster::start_with_extra(ClusterOptions::default(), &config(addr)).await;
    let first = cluster.node(0);
    let devauth = DevAuth::start(first.config_path(), false).await;
    let web = first.web_url();
    let alice = devauth.access_token(&web, "alice", "alice-password").await;
    let bucket = harness::unique_bucket("limit");
    let (status, body) =
        web_api(first, reqwest::Method::POST, "/api/v1/buckets", &alice, Some(json!({ "name": bucket }))).await;
    assert_eq!(status, 201, "{body}");
    let film = random_bytes(5, 64 * 1024);
    put(&first.client(), &bucket, "film.mp4", &film).await;
    let body = json!({ "bucket": bucket, "key": "film.mp4", "max_downloads": LIMIT });
    let (_, link) = share(first, &alice, body).await;
    let link = link.expect("public link");

    let visitor = browser_from(Ipv4Addr::LOCALHOST);
    let webs: Vec<String> = (0..3).map(|i| cluster.node(i).web_url()).collect();
    let opens = (0..4 * LIMIT).map(|i| open_on(&webs[i % webs.len()], &visitor, &link));
    let results = futures::future::join_all(opens).await;
    let served: Vec<&Vec<u8>> =
        results.iter().filter_map(|(status, bytes)| (*status == 302).then_some(bytes.as_ref()).flatten()).collect();
    let statuses: Vec<u16> = results.iter().map(|r| r.0).collect();
    assert_eq!(served.len(), LIMIT, "exactly the limit, whichever nodes served: {statuses:?}");
    assert!(served.iter().all(|b| b.as_slice() == film.as_slice()), "the shared bytes");
    assert!(statuses.iter().all(|s| *s == 302 || *s == 410), "the rest are used up: {statuses:?}");
    for web in &webs {
        let deadline = Instant::now() + Duration::from_secs(10);
        // A follower may not have applied the last use yet: wait for it, bounded.
        while open_on(web, &visitor, &link).await.0 != 410 {
            assert!(Instant::now() < deadline, "{web} still serves a used-up link");
            tokio::time::sleep(POLL).await;
        }
    }
}
