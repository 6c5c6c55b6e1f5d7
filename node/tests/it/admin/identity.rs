//! Sign-in through the cinema's Auth service, end to end: real `meridian node` processes and the
//! stand-in Auth service (`meridian dev-auth`) on loopback, called with reqwest.
//!
//! Tokens for the negative cases are built here, with the same keys the stand-in uses (or with
//! wrong ones), so each case changes exactly one thing against a token that is accepted.

use crate::harness;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use harness::cluster::{ClusterOptions, TestCluster};
use harness::devauth::{AUTH_SECRET, AuthMode, DevAuth, ISSUER, auth_section, fixture, free_auth_addr};
use harness::{NodeOptions, POLL, TestNode, http_client};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
use serde_json::{Value, json};

/// A node with `[auth]` in `mode` and the stand-in it points at.
async fn node_with_auth(mode: AuthMode) -> (TestNode, DevAuth) {
    let addr = free_auth_addr();
    let node = TestNode::start_with_extra(NodeOptions::default(), &auth_section(addr, mode, 1)).await;
    let devauth = DevAuth::start(node.config_path(), mode != AuthMode::Hs256).await;
    (node, devauth)
}

fn now() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs()).expect("fits")
}

/// Claims the node accepts: alice's access token, valid from a minute ago for ten minutes.
fn good_claims() -> Value {
    let now = now();
    json!({ "iss": ISSUER, "sub": "u-alice", "roles": ["user"], "type": "access",
            "iat": now - 60, "nbf": now - 60, "exp": now + 600 })
}

/// `good_claims` with `changes` merged in (a `null` removes the claim).
fn claims_with(changes: Value) -> Value {
    let mut claims = good_claims();
    for (key, value) in changes.as_object().expect("object") {
        if value.is_null() {
            claims.as_object_mut().expect("object").remove(key);
        } else {
            claims[key] = value.clone();
        }
    }
    claims
}

fn hs256(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret.as_bytes()))
        .expect("sign HS256")
}

fn rs256(claims: &Value, key_fixture: &str, kid: Option<&str>) -> String {
    let pem = std::fs::read(fixture(key_fixture)).expect("read key fixture");
    let mut header = Header::new(Algorithm::RS256);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_rsa_pem(&pem).expect("RSA key")).expect("sign RS256")
}

/// An unsigned token (`alg: none`), as an attacker would send it.
fn alg_none(claims: &Value) -> String {
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT"})), b64(claims))
}

/// `GET /api/v1/me` with `Authorization: Bearer token`: status and JSON body.
async fn me(node: &TestNode, token: &str) -> (StatusCode, Value) {
    let resp = http_client()
        .get(format!("{}/api/v1/me", node.web_url()))
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .send()
        .await
        .expect("GET /api/v1/me");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Asserts that `token` is refused with 401 and error code `code`.
async fn assert_refused(node: &TestNode, token: &str, code: &str, case: &str) {
    let (status, body) = me(node, token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}: {body}");
    assert_eq!(body["error"], code, "{case}: {body}");
}

/// Signs in; returns the response (status, Set-Cookie values, body).
async fn sign_in(node: &TestNode, login: &str, password: &str) -> (StatusCode, Vec<String>, Value) {
    let resp = http_client()
        .post(format!("{}/api/v1/session", node.web_url()))
        .json(&json!({ "login": login, "password": password }))
        .send()
        .await
        .expect("POST /api/v1/session");
    let status = resp.status();
    let cookies = set_cookies(&resp);
    (status, cookies, resp.json().await.unwrap_or(Value::Null))
}

fn set_cookies(resp: &reqwest::Response) -> Vec<String> {
    resp.headers().get_all(SET_COOKIE).iter().map(|v| v.to_str().expect("ascii").to_owned()).collect()
}

/// The `name=value` part of the Set-Cookie for `name`.
fn cookie_pair(cookies: &[String], name: &str) -> String {
    cookies
        .iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .and_then(|c| c.split(';').next())
        .unwrap_or_else(|| panic!("no Set-Cookie for {name} in {cookies:?}"))
        .to_owned()
}

#[tokio::test]
async fn sign_in_me_refresh_and_sign_out() {
    let (node, _devauth) = node_with_auth(AuthMode::Hs256).await;
    let _log = node.log_on_panic();
    let http = http_client();
    let web = node.web_url();

    // A wrong password is a clear 401 and sets no cookie.
    let (status, cookies, body) = sign_in(&node, "alice", "not-her-password").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_credentials");
    assert!(cookies.is_empty(), "{cookies:?}");
    let (status, _, body) = sign_in(&node, "nobody", "x").await;
    assert_eq!((status, &body["error"]), (StatusCode::UNAUTHORIZED, &json!("invalid_credentials")));

    // The right one: tokens in the body, two HttpOnly SameSite cookies, no Secure over plain HTTP.
    let (status, cookies, session) = sign_in(&node, "alice", "alice-password").await;
    assert_eq!(status, StatusCode::OK, "{session}");
    assert_eq!(session["user"]["login"], "alice");
    assert_eq!(session["user"]["id"], "u-alice");
    assert_eq!(session["user"]["admin"], false);
    assert_eq!(session["token_type"], "Bearer");
    assert!(session["expires_at"].as_i64().expect("expires_at") > now());
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    for cookie in &cookies {
        for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age="] {
            assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
        }
        assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    }
    let access = session["access_token"].as_str().expect("access_token").to_owned();
    let refresh = session["refresh_token"].as_str().expect("refresh_token").to_owned();
    assert_eq!(cookie_pair(&cookies, "meridian_session"), format!("meridian_session={access}"));
    assert_eq!(cookie_pair(&cookies, "meridian_session_refresh"), format!("meridian_session_refresh={refresh}"));

    // Behind a TLS proxy the cookies are Secure.
    let resp = http
        .post(format!("{web}/api/v1/session"))
        .header("x-forwarded-proto", "https")
        .json(&json!({ "login": "bob", "password": "bob-password" }))
        .send()
        .await
        .expect("sign in bob");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(set_cookies(&resp).iter().all(|c| c.ends_with("; Secure")), "{:?}", set_cookies(&resp));

    // The token works as Bearer and as the cookie; the sign-in was recorded in the user list.
    let (status, body) = me(&node, &access).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["id"].as_str(), body["via"].as_str()), (Some("u-alice"), Some("bearer")));
    assert!(body["last_sign_in"].as_i64().is_some(), "sign-in upserts the user: {body}");
    let resp = http
        .get(format!("{web}/api/v1/me"))
        .header(COOKIE, cookie_pair(&cookies, "meridian_session"))
        .send()
        .await
        .expect("me by cookie");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.json::<Value>().await.expect("json")["via"], "cookie");
    let resp = http.get(format!("{web}/api/v1/me")).send().await.expect("me without credentials");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.json::<Value>().await.expect("json")["error"], "not_signed_in");

    // Refresh with the body's refresh token: a new, working access token.
    let resp = http
        .post(format!("{web}/api/v1/session/refresh"))
        .json(&json!({ "refresh_token": refresh }))
        .send()
        .await
        .expect("refresh");
    assert_eq!(resp.status(), StatusCode::OK);
    let refreshed: Value = resp.json().await.expect("json");
    let new_access = refreshed["access_token"].as_str().expect("access_token");
    assert_ne!(new_access, access);
    assert_eq!(me(&node, new_access).await.0, StatusCode::OK);

    // Refresh with nothing but the refresh cookie, as a page does.
    let resp = http
        .post(format!("{web}/api/v1/session/refresh"))
        .header(COOKIE, cookie_pair(&cookies, "meridian_session_refresh"))
        .send()
        .await
        .expect("refresh by cookie");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(set_cookies(&resp).len(), 2);

    // An access token is not a refresh token: refused, and the cookies are cleared.
    let resp = http
        .post(format!("{web}/api/v1/session/refresh"))
        .json(&json!({ "refresh_token": access }))
        .send()
        .await
        .expect("refresh with an access token");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookies(&resp).iter().all(|c| c.contains("Max-Age=0")), "{:?}", set_cookies(&resp));
    assert_eq!(resp.json::<Value>().await.expect("json")["error"], "refresh_refused");

    // A page of another origin cannot use the cookies to refresh.
    let resp = http
        .post(format!("{web}/api/v1/session/refresh"))
        .header(COOKIE, cookie_pair(&cookies, "meridian_session_refresh"))
        .header("origin", "http://127.0.0.1:1")
        .send()
        .await
        .expect("cross-origin refresh");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    // Sign-out clears both cookies.
    let resp = http
        .delete(format!("{web}/api/v1/session"))
        .header(COOKIE, cookie_pair(&cookies, "meridian_session"))
        .send()
        .await
        .expect("sign out");
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let cleared = set_cookies(&resp);
    assert_eq!(cleared.len(), 2, "{cleared:?}");
    assert!(cleared.iter().any(|c| c.starts_with("meridian_session=;")), "{cleared:?}");
    assert!(cleared.iter().any(|c| c.starts_with("meridian_session_refresh=;")), "{cleared:?}");
    assert!(cleared.iter().all(|c| c.contains("Max-Age=0") && c.contains("HttpOnly")), "{cleared:?}");
}

#[tokio::test]
async fn hs256_token_checks() {
    let (node, _devauth) = node_with_auth(AuthMode::Hs256).await;
    let _log = node.log_on_panic();
    let now = now();

    // The control: a token built here with the right secret is accepted, so every refusal
    // below is down to the one thing that case changes.
    let (status, body) = me(&node, &hs256(&good_claims(), AUTH_SECRET)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], "u-alice");
    // Expired a moment ago, within the leeway: still accepted.
    assert_eq!(me(&node, &hs256(&claims_with(json!({"exp": now - 5})), AUTH_SECRET)).await.0, StatusCode::OK);

    let cases = [
        (hs256(&claims_with(json!({"exp": now - 120})), AUTH_SECRET), "token_expired", "expired"),
        (hs256(&claims_with(json!({"nbf": now + 300})), AUTH_SECRET), "token_not_yet_valid", "nbf in the future"),
        (hs256(&good_claims(), "another-secret-0123456789abcdef0123"), "token_signature", "wrong secret"),
        (hs256(&claims_with(json!({"type": "refresh"})), AUTH_SECRET), "token_type", "refresh token as access"),
        (hs256(&claims_with(json!({"type": null})), AUTH_SECRET), "token_claims", "no type"),
        (hs256(&claims_with(json!({"exp": null})), AUTH_SECRET), "token_claims", "no exp"),
        (hs256(&claims_with(json!({"iss": "someone-else"})), AUTH_SECRET), "token_issuer", "wrong issuer"),
        (alg_none(&good_claims()), "token_algorithm", "alg none"),
        (rs256(&good_claims(), "devauth-rs256.pem", None), "token_algorithm", "RS256 while HS256 is pinned"),
        ("not-a-jwt".to_owned(), "token_malformed", "garbage"),
    ];
    for (token, code, case) in &cases {
        assert_refused(&node, token, code, case).await;
    }

    // A valid token whose payload was changed (a role added) no longer verifies.
    let valid = hs256(&good_claims(), AUTH_SECRET);
    let parts: Vec<&str> = valid.split('.').collect();
    let forged_payload =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims_with(json!({"roles": ["admin"]})).to_string());
    let forged = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
    assert_refused(&node, &forged, "token_signature", "payload changed after signing").await;

    // Basic credentials are not a user's.
    let resp = http_client()
        .get(format!("{}/api/v1/me", node.web_url()))
        .basic_auth("MERIDIANTEST00000001", Some("secret"))
        .send()
        .await
        .expect("me with Basic");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

/// The RS256 checks that hold whichever way the public key is configured.
async fn rs256_checks(node: &TestNode, kid: Option<&str>) {
    let (status, session) = {
        let (status, _, body) = sign_in(node, "admin", "admin-password").await;
        (status, body)
    };
    assert_eq!(status, StatusCode::OK, "the stand-in's RS256 token verifies: {session}");
    assert_eq!(session["user"]["admin"], true);
    let (status, body) = me(node, &rs256(&good_claims(), "devauth-rs256.pem", kid)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let public_pem = std::fs::read_to_string(fixture("devauth-rs256.pub.pem")).expect("public key");
    let now = now();
    let cases = [
        (rs256(&good_claims(), "other-rs256.pem", kid), "token_signature", "signed by another key"),
        // The classic confusion: the public key used as an HMAC secret.
        (hs256(&good_claims(), &public_pem), "token_algorithm", "HS256 with the public key as secret"),
        (alg_none(&good_claims()), "token_algorithm", "alg none"),
        (rs256(&claims_with(json!({"exp": now - 120})), "devauth-rs256.pem", kid), "token_expired", "expired"),
        (rs256(&claims_with(json!({"nbf": now + 300})), "devauth-rs256.pem", kid), "token_not_yet_valid", "nbf"),
        (rs256(&claims_with(json!({"type": "refresh"})), "devauth-rs256.pem", kid), "token_type", "refresh token"),
    ];
    for (token, code, case) in &cases {
        assert_refused(node, token, code, case).await;
    }
}

#[tokio::test]
async fn rs256_with_a_pem_public_key() {
    let (node, _devauth) = node_with_auth(AuthMode::Rs256Pem).await;
    let _log = node.log_on_panic();
    rs256_checks(&node, None).await;
}

#[tokio::test]
async fn rs256_with_the_jwks() {
    let (node, devauth) = node_with_auth(AuthMode::Rs256Jwks).await;
    let _log = node.log_on_panic();
    let jwks: Value = http_client()
        .get(format!("http://{}/auth/v1/jwks", devauth.addr))
        .send()
        .await
        .expect("GET jwks")
        .json()
        .await
        .expect("jwks json");
    let kid = jwks["keys"][0]["kid"].as_str().expect("the stand-in names its key").to_owned();
    rs256_checks(&node, Some(&kid)).await;
    // Without a kid every key of the set is tried.
    assert_eq!(me(&node, &rs256(&good_claims(), "devauth-rs256.pem", None)).await.0, StatusCode::OK);
    // A kid the set does not have is no key at all.
    assert_refused(&node, &rs256(&good_claims(), "other-rs256.pem", Some("forged-kid")), "token_signature", "kid")
        .await;
}

#[tokio::test]
async fn without_auth_config_the_user_routes_say_so() {
    let node = TestNode::start().await;
    let _log = node.log_on_panic();
    let (status, body) = me(&node, "anything").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "auth_not_configured");
}

/// `GET /api/v1/users` on node `i` as `token`.
async fn users(cluster: &TestCluster, i: usize, token: &str) -> Vec<Value> {
    let resp = http_client()
        .get(format!("{}/api/v1/users", cluster.node(i).web_url()))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET /api/v1/users");
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.expect("json");
    body["users"].as_array().expect("users").clone()
}

/// Polls `GET /api/v1/users` on node `i` until `check` holds (at most 20 s).
async fn wait_users(cluster: &TestCluster, i: usize, token: &str, what: &str, check: impl Fn(&[Value]) -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let list = users(cluster, i, token).await;
        if check(&list) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: never seen on node {i}; last list {list:?}");
        tokio::time::sleep(POLL).await;
    }
}

fn user<'a>(list: &'a [Value], id: &str) -> Option<&'a Value> {
    list.iter().find(|u| u["id"] == id)
}

#[tokio::test]
async fn user_sync_adds_changes_and_marks_deleted() {
    let addr = free_auth_addr();
    let cluster =
        TestCluster::start_with_extra(ClusterOptions::default(), &auth_section(addr, AuthMode::Hs256, 1)).await;
    let devauth = DevAuth::start(cluster.node(0).config_path(), false).await;
    let leader = cluster.leader().await;
    let follower = (leader + 1) % 3;
    let admin = hs256(&claims_with(json!({"sub": "u-admin", "roles": ["admin"]})), AUTH_SECRET);
    let alice = hs256(&good_claims(), AUTH_SECRET);

    // The seeded users arrive (the stand-in pages by 2, so this follows the cursor).
    wait_users(&cluster, follower, &admin, "the seeded users", |l| {
        ["u-alice", "u-bob", "u-admin"].iter().all(|id| user(l, id).is_some())
    })
    .await;

    // Added upstream.
    devauth.put_user("u-carol", "carol", "Carol Weiss", "carol-password", &["user"]).await;
    wait_users(&cluster, follower, &alice, "carol added", |l| {
        user(l, "u-carol").is_some_and(|u| u["name"] == "Carol Weiss")
    })
    .await;
    let (status, _, carol_session) = sign_in(cluster.node(follower), "carol", "carol-password").await;
    assert_eq!(status, StatusCode::OK);
    let carol = carol_session["access_token"].as_str().expect("token").to_owned();

    // Changed upstream.
    devauth.put_user("u-bob", "bob", "Robert Keller", "bob-password", &["user", "editor"]).await;
    wait_users(&cluster, leader, &admin, "bob renamed", |l| {
        user(l, "u-bob").is_some_and(|u| u["name"] == "Robert Keller" && u["roles"] == json!(["user", "editor"]))
    })
    .await;

    // Removed upstream: marked deleted (with the time) for admins, gone for users.
    devauth.delete_user("u-carol").await;
    wait_users(&cluster, follower, &admin, "carol marked deleted", |l| {
        user(l, "u-carol").is_some_and(|u| u["deleted"] == true && u["deleted_at"].as_i64().is_some())
    })
    .await;
    let seen_by_alice = users(&cluster, follower, &alice).await;
    assert!(user(&seen_by_alice, "u-carol").is_none(), "{seen_by_alice:?}");
    assert!(user(&seen_by_alice, "u-bob").is_some_and(|u| u.get("deleted").is_none() && u.get("email").is_none()));
    // Her still-unexpired token no longer gets in.
    assert_refused(cluster.node(follower), &carol, "user_deleted", "deleted upstream").await;
}
