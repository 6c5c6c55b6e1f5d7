//! Attacks on the web listener (issue #13), replayed against real nodes and the stand-in Auth
//! service over loopback:
//! - anonymous downloads of a public link flooding Raft and the event history; bursts from one
//!   client and on one link (429 + `Retry-After`); a limited link still stops at its limit;
//! - sign-in as a password oracle (throttled per login and per client address, the address
//!   forwarded to the Auth service);
//! - the open redirect after sign-in (`next=/%09/evil.example`);
//! - a spoofed client address (`Forwarded` behind an `X-Forwarded-For` proxy, `ip=` of a
//!   signed-in user);
//! - `/metrics` and `/api/v1/cluster` without a token off loopback.

use crate::harness;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use harness::devauth::{AuthMode, SeededTokens, auth_section, node_with_seeded_users};
use harness::events::history;
use harness::pages::PageClient;
use harness::{POLL, TestNode, browser_from, http_client, put, random_bytes, sha256_hex};
use reqwest::header::{ACCEPT, LOCATION, RETRY_AFTER};
use serde_json::{Value, json};

/// A service token of these tests' `[[api.service_token]]`.
const SERVICE: &str = "security-web-service-token-0123456789";

/// `[[api.service_token]]` for [`SERVICE`].
fn service_token_section() -> String {
    format!("\n[[api.service_token]]\nname = \"security-tests\"\nsha256 = \"{}\"\n", sha256_hex(SERVICE.as_bytes()))
}

async fn api(node: &TestNode, method: reqwest::Method, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = http_client().request(method, format!("{}{path}", node.web_url())).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let resp = request.header(ACCEPT, "application/json").send().await.expect("web API request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A bucket of `owner` holding `film.mp4`; returns the bucket.
async fn bucket_with_file(node: &TestNode, owner: &str) -> String {
    let bucket = harness::unique_bucket("secweb");
    let (status, body) =
        api(node, reqwest::Method::POST, "/api/v1/buckets", owner, Some(json!({ "name": bucket }))).await;
    assert_eq!(status, 201, "{body}");
    put(&node.client(), &bucket, "film.mp4", &random_bytes(7, 64 * 1024)).await;
    bucket
}

/// Creates a public link to `bucket/film.mp4` with `extra` settings; returns (id, link path).
async fn public_link(node: &TestNode, owner: &str, bucket: &str, extra: Value) -> (String, String) {
    let mut body = json!({ "bucket": bucket, "key": "film.mp4" });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let (status, created) = api(node, reqwest::Method::POST, "/api/v1/shares", owner, Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["share"]["id"].as_str().expect("id").to_owned();
    (id, created["url"].as_str().expect("a public link").to_owned())
}

/// The link's download count, as its owner's share list shows it.
async fn downloads(node: &TestNode, owner: &str, bucket: &str, id: &str) -> u64 {
    let (status, page) =
        api(node, reqwest::Method::GET, &format!("/api/v1/shares?file={bucket}/film.mp4"), owner, None).await;
    assert_eq!(status, 200, "{page}");
    let shares = page["shares"].as_array().expect("shares");
    let share = shares.iter().find(|s| s["id"] == id).unwrap_or_else(|| panic!("share {id} listed: {page}"));
    share["downloads"].as_u64().expect("downloads")
}

/// The `ShareUsed` events of share `id` in the node's history.
async fn share_used_events(node: &TestNode, id: &str) -> usize {
    history(node, None, 500).await.iter().filter(|e| e.kind == "ShareUsed" && e.data["share"] == id).count()
}

/// Opens a limited link as a browser would: its page, then the page's download button.
async fn open_limited(web: &str, client: &reqwest::Client, link: &str) -> u16 {
    let resp = client.get(format!("{web}{link}")).send().await.expect("GET link");
    if resp.status().as_u16() != 200 {
        return resp.status().as_u16();
    }
    let cookie = resp.headers()["set-cookie"].to_str().expect("cookie").split(';').next().expect("pair").to_owned();
    let html = resp.text().await.expect("html");
    let csrf = harness::pages::field(&html, "csrf").expect("csrf field");
    let resp = client
        .post(format!("{web}{link}"))
        .header("cookie", cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("POST download");
    resp.status().as_u16()
}

/// Attack: every anonymous click on an unlimited public link committed a Raft entry and an
/// event, so a script could flood the log and push the history out. Now N rapid downloads
/// produce far fewer entries and events, while the count still converges to N.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlimited_link_downloads_are_counted_without_an_entry_each() {
    const N: u64 = 60;
    let (node, _devauth, SeededTokens { alice, .. }) = node_with_seeded_users(|addr| {
        format!(
            "{}\n[shares]\nuses_per_client = 1000\nuses_per_link = 1000\nflush_ms = 1000\n",
            auth_section(addr, AuthMode::Hs256, 60)
        )
    })
    .await;
    let _log = node.log_on_panic();
    let bucket = bucket_with_file(&node, &alice).await;
    let (id, link) = public_link(&node, &alice, &bucket, json!({})).await;
    let web = node.web_url();
    let visitors: Vec<reqwest::Client> = (0..4).map(|i| browser_from(Ipv4Addr::new(127, 0, 9, 10 + i))).collect();
    let started = Instant::now();
    for i in 0..N {
        let resp = visitors[(i % 4) as usize].get(format!("{web}{link}")).send().await.expect("GET link");
        assert_eq!(resp.status().as_u16(), 302, "download {i} is handed out at once");
        assert!(resp.headers().contains_key(LOCATION));
    }
    let clicking = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut count = downloads(&node, &alice, &bucket, &id).await;
    while count < N {
        assert!(Instant::now() < deadline, "the download count reached {count} of {N} within 20 s");
        tokio::time::sleep(POLL).await;
        count = downloads(&node, &alice, &bucket, &id).await;
    }
    assert_eq!(count, N, "every download counted once");
    let events = share_used_events(&node, &id).await;
    // One event per flush (each second) at most, plus one at each edge.
    let most = clicking.as_secs() + 2;
    assert!(
        events >= 1 && (events as u64) <= most && (events as u64) < N / 4,
        "{N} downloads in {clicking:?} gave {events} ShareUsed events (one per flush expected)"
    );
}

/// Attack: one client (or many, on one link) hammering a link. Past the client's budget it
/// gets a 429 page with `Retry-After`, while others go on; past the link's budget everyone does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_on_a_link_gets_429_with_retry_after() {
    let (node, _devauth, SeededTokens { alice, .. }) = node_with_seeded_users(|addr| {
        format!(
            "{}\n[shares]\nuses_per_client = 5\nuses_per_link = 8\nuses_window_secs = 600\n",
            auth_section(addr, AuthMode::Hs256, 60)
        )
    })
    .await;
    let _log = node.log_on_panic();
    let bucket = bucket_with_file(&node, &alice).await;
    let (_, link) = public_link(&node, &alice, &bucket, json!({})).await;
    let web = node.web_url();
    let (greedy, other, late) = (
        browser_from(Ipv4Addr::new(127, 0, 9, 20)),
        browser_from(Ipv4Addr::new(127, 0, 9, 21)),
        browser_from(Ipv4Addr::new(127, 0, 9, 22)),
    );
    for i in 0..5 {
        let status = greedy.get(format!("{web}{link}")).send().await.expect("GET").status().as_u16();
        assert_eq!(status, 302, "download {i} within the client's budget");
    }
    let refused = greedy.get(format!("{web}{link}")).send().await.expect("GET");
    assert_eq!(refused.status().as_u16(), 429, "the client's budget is spent");
    let retry: u64 = refused.headers()[RETRY_AFTER].to_str().expect("text").parse().expect("seconds");
    assert!((1..=600).contains(&retry), "Retry-After {retry}");
    let page = refused.text().await.expect("body");
    assert!(page.contains("Too many downloads") && page.contains("seconds"), "a page a person understands: {page}");
    for i in 0..3 {
        let status = other.get(format!("{web}{link}")).send().await.expect("GET").status().as_u16();
        assert_eq!(status, 302, "another client still downloads ({i})");
    }
    let status = other.get(format!("{web}{link}")).send().await.expect("GET").status().as_u16();
    assert_eq!(status, 429, "the link's budget (8) is spent, whoever asks");
    let resp = late.get(format!("{web}{link}")).send().await.expect("GET");
    assert_eq!(resp.status().as_u16(), 429, "a fresh client too");
    assert!(resp.headers().contains_key(RETRY_AFTER));
}

/// A link with a download limit is still counted exactly, through Raft, before each redirect:
/// it stops at its limit, and its count is right at once (no flush to wait for).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limited_link_still_stops_at_exactly_its_limit() {
    let (node, _devauth, SeededTokens { alice, .. }) =
        node_with_seeded_users(|addr| auth_section(addr, AuthMode::Hs256, 60)).await;
    let _log = node.log_on_panic();
    let bucket = bucket_with_file(&node, &alice).await;
    let (id, link) = public_link(&node, &alice, &bucket, json!({ "max_downloads": 3 })).await;
    let web = node.web_url();
    let mut statuses = Vec::new();
    for i in 0..5u8 {
        let visitor = browser_from(Ipv4Addr::new(127, 0, 9, 30 + i));
        statuses.push(open_limited(&web, &visitor, &link).await);
        if i == 2 {
            assert_eq!(downloads(&node, &alice, &bucket, &id).await, 3, "counted before the redirect");
        }
    }
    assert_eq!(statuses, [302, 302, 302, 410, 410]);
    assert_eq!(downloads(&node, &alice, &bucket, &id).await, 3);
}

/// `POST /api/v1/session` from `ip`; returns the status, `Retry-After` and the body.
async fn sign_in_from(node: &TestNode, ip: Ipv4Addr, login: &str, password: &str) -> (u16, Option<u64>, Value) {
    let resp = browser_from(ip)
        .post(format!("{}/api/v1/session", node.web_url()))
        .json(&json!({ "login": login, "password": password }))
        .send()
        .await
        .expect("POST /api/v1/session");
    let status = resp.status().as_u16();
    let retry = resp.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    (status, retry, resp.json().await.unwrap_or(Value::Null))
}

/// Attack: guessing passwords through the sign-in route, which asked the Auth service every
/// time. Now wrong passwords for one login hit 429 with `Retry-After` (the right password too,
/// until the window passes), the form says so in words, one address cannot spray many logins,
/// and other logins from other addresses still sign in. The Auth service sees the person's
/// address, not the node's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_guessing_is_throttled_per_login_and_per_client() {
    let (node, devauth, _) = node_with_seeded_users(|addr| {
        format!(
            "{}sign_in_attempts_per_login = 3\nsign_in_attempts_per_client = 5\nsign_in_window_secs = 600\n",
            auth_section(addr, AuthMode::Hs256, 60)
        )
    })
    .await;
    let _log = node.log_on_panic();
    let guesser = Ipv4Addr::new(127, 0, 9, 40);
    for i in 0..3 {
        let (status, _, body) = sign_in_from(&node, guesser, "alice", &format!("guess-{i}")).await;
        assert_eq!(status, 401, "wrong password {i}: {body}");
    }
    let (status, retry, body) = sign_in_from(&node, guesser, "alice", "guess-3").await;
    assert_eq!((status, body["error"].as_str()), (429, Some("too_many_attempts")), "{body}");
    assert!(retry.is_some_and(|r| (1..=600).contains(&r)), "Retry-After: {retry:?}");
    let (status, retry, _) = sign_in_from(&node, Ipv4Addr::new(127, 0, 9, 41), "ALICE", "alice-password").await;
    assert_eq!(status, 429, "the login's budget holds from any address and any spelling");
    assert!(retry.is_some());

    // Another login from another address still works, and its address reaches the Auth service.
    let (status, _, body) = sign_in_from(&node, Ipv4Addr::new(127, 0, 9, 42), "bob", "bob-password").await;
    assert_eq!(status, 200, "{body}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !devauth.log().contains("client=127.0.9.42") {
        assert!(Instant::now() < deadline, "the stand-in never saw the client's address:\n{}", devauth.log());
        tokio::time::sleep(POLL).await;
    }

    // One address spraying logins: its own budget (5) runs out across logins.
    let sprayer = Ipv4Addr::new(127, 0, 9, 43);
    for i in 0..5 {
        let (status, _, _) = sign_in_from(&node, sprayer, &format!("user-{i}"), "password").await;
        assert_eq!(status, 401, "login {i}");
    }
    let (status, retry, _) = sign_in_from(&node, sprayer, "admin", "admin-password").await;
    assert_eq!((status, retry.is_some()), (429, true), "the address's budget is spent");

    // The sign-in form: the same limit, in words. (This browser is 127.0.0.1, with budget left.)
    let browser = PageClient::new(&node.web_url());
    let form = browser.get("/signin").await;
    let page = browser
        .post("/signin", &[("csrf", &form.csrf()), ("login", "alice"), ("password", "x"), ("next", "/files")])
        .await;
    assert_eq!(page.status, 429, "{}", page.html);
    assert!(page.html.contains("Too many failed sign-ins"), "{}", page.html);
}

/// Attack (confirmed): `/signin?next=/%09/evil.example` sent a signed-in user off-site
/// (browsers drop the tab and read `//evil.example`). Now every variant goes to the panel's home.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_next_never_leaves_the_site() {
    let (node, _devauth, _) = node_with_seeded_users(|addr| auth_section(addr, AuthMode::Hs256, 60)).await;
    let _log = node.log_on_panic();
    let browser = PageClient::new(&node.web_url());
    browser.sign_in("alice", "alice-password").await;
    let payloads = [
        "/%09/evil.example",
        "/%0A/evil.example",
        "/%0D%0A/evil.example",
        "/%5C/evil.example",
        "/%5Cevil.example",
        "//evil.example",
        "/%2F/evil.example",
        "/%252F%252Fevil.example",
        "https://evil.example/",
        "%2F%2Fevil.example",
    ];
    for payload in payloads {
        let resp = browser.get(&format!("/signin?next={payload}")).await;
        assert_eq!((resp.status, resp.location.as_deref()), (303, Some("/files")), "next={payload}");
    }
    let resp = browser.get("/signin?next=/shares").await;
    assert_eq!(resp.location.as_deref(), Some("/shares"), "a path of the panel is kept");

    // The form's own `next` too.
    let other = PageClient::new(&node.web_url());
    let form = other.get("/signin").await;
    let resp = other
        .post(
            "/signin",
            &[("csrf", &form.csrf()), ("login", "bob"), ("password", "bob-password"), ("next", "/\t/evil.example")],
        )
        .await;
    assert_eq!((resp.status, resp.location.as_deref()), (303, Some("/files")));
}

/// `GET /api/v1/route?op=put` as the service from 127.0.0.1 (a trusted proxy) with `headers`:
/// the client address the node settled on, and its source.
async fn routed_address(node: &TestNode, query: &str, headers: &[(&str, &str)]) -> (String, String) {
    let mut request = http_client().get(format!("{}/api/v1/route?op=put{query}", node.web_url())).bearer_auth(SERVICE);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let resp = request.send().await.expect("GET /api/v1/route");
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.expect("JSON");
    let address = &body["client"]["address"];
    (address["ip"].as_str().unwrap_or_default().to_owned(), address["source"].as_str().unwrap_or_default().to_owned())
}

/// Attack: behind a proxy that appends `X-Forwarded-For`, a client wrote its own `Forwarded`
/// header, which was read first: it chose its address (its node, its rate-limit budget). Now
/// only the configured header is read. And a signed-in user's `ip=` named any address for the
/// routing and the history: it is ignored for people, kept for services.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_addresses_cannot_be_spoofed() {
    let (node, _devauth, SeededTokens { alice, .. }) = node_with_seeded_users(|addr| {
        format!("{}\n[geo]\ntrusted_proxies = [\"127.0.0.1/32\"]\n{}", auth_section(addr, AuthMode::Hs256, 60), {
            service_token_section()
        })
    })
    .await;
    let _log = node.log_on_panic();
    let spoofed = [("forwarded", "for=127.0.9.66"), ("x-forwarded-for", "127.0.9.50")];
    let (ip, source) = routed_address(&node, "", &spoofed).await;
    assert_eq!(
        (ip.as_str(), source.as_str()),
        ("127.0.9.50", "x_forwarded_for"),
        "the proxy's header, not the client's"
    );
    let (ip, source) = routed_address(&node, "", &spoofed[..1]).await;
    assert_eq!((ip.as_str(), source.as_str()), ("127.0.0.1", "peer"), "a lone Forwarded is ignored");
    let (ip, source) = routed_address(&node, "&ip=127.0.9.77", &[]).await;
    assert_eq!((ip.as_str(), source.as_str()), ("127.0.9.77", "given"), "a service asks on a viewer's behalf");

    // A signed-in user's `ip=` (download link) and `client_ip` (upload plan) are ignored.
    let bucket = bucket_with_file(&node, &alice).await;
    let path = format!("/api/v1/files/{bucket}/film.mp4?ip=127.0.9.66");
    let (status, link) = api(&node, reqwest::Method::GET, &path, &alice, None).await;
    assert_eq!(status, 200, "{link}");
    assert_eq!(link["client"]["address"]["ip"], "127.0.0.1", "{link}");
    assert_eq!(link["client"]["address"]["source"], "peer", "{link}");
    let upload = json!({ "bucket": bucket, "key": "new.bin", "size": 10, "client_ip": "127.0.9.66" });
    let (status, plan) = api(&node, reqwest::Method::POST, "/api/v1/uploads", &alice, Some(upload.clone())).await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["client"]["address"]["ip"], "127.0.0.1", "{plan}");
    let (status, plan) = api(&node, reqwest::Method::POST, "/api/v1/uploads", SERVICE, Some(upload)).await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["client"]["address"]["ip"], "127.0.9.66", "a service's client_ip is kept: {plan}");
}

/// `forwarded_header = "forwarded"`: the RFC 7239 header is read, `X-Forwarded-For` is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forwarded_header_can_be_chosen() {
    let extra = format!(
        "\n[geo]\ntrusted_proxies = [\"127.0.0.1/32\"]\nforwarded_header = \"forwarded\"\n{}",
        service_token_section()
    );
    let node = TestNode::start_with_extra(harness::NodeOptions::default(), &extra).await;
    let _log = node.log_on_panic();
    let both = [("forwarded", "for=\"127.0.9.51:4711\""), ("x-forwarded-for", "127.0.9.66")];
    let (ip, source) = routed_address(&node, "", &both).await;
    assert_eq!((ip.as_str(), source.as_str()), ("127.0.9.51", "forwarded"));
    let (ip, _) = routed_address(&node, "", &both[1..]).await;
    assert_eq!(ip, "127.0.0.1", "X-Forwarded-For is the client's own here");
}

/// Attack: `/metrics` and `/api/v1/cluster` told anyone the cluster's members, addresses and
/// load. With `status_access = "token"` (the default off loopback) they need a service token
/// or an access key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_routes_need_a_token_unless_open() {
    let extra = format!("\n[api]\nstatus_access = \"token\"\n{}", service_token_section());
    let node = TestNode::start_with_extra(harness::NodeOptions::default(), &extra).await;
    let _log = node.log_on_panic();
    for path in ["/metrics", "/api/v1/cluster"] {
        let url = format!("{}{path}", node.web_url());
        let anonymous = http_client().get(&url).send().await.expect("GET");
        assert_eq!(anonymous.status().as_u16(), 401, "{path} without a token");
        let wrong = http_client().get(&url).bearer_auth("not-a-token").send().await.expect("GET");
        assert_eq!(wrong.status().as_u16(), 401, "{path} with a wrong token");
        let service = http_client().get(&url).bearer_auth(SERVICE).send().await.expect("GET");
        assert_eq!(service.status().as_u16(), 200, "{path} with a service token");
        let key = http_client().get(&url).basic_auth(harness::ACCESS_KEY, Some(harness::SECRET_KEY)).send().await;
        assert_eq!(key.expect("GET").status().as_u16(), 200, "{path} with an access key");
    }
    // The default on a loopback listener: open (the local scripts and Prometheus on the host).
    let local = harness::shared_node().await;
    let open = http_client().get(format!("{}/metrics", local.web_url())).send().await.expect("GET");
    assert_eq!(open.status().as_u16(), 200);
}
