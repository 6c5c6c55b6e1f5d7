//! The admin panel's pages over HTTP against a real node and the stand-in Auth service:
//! sign-in (right and wrong password), pages that need it redirect to it, the session cookies'
//! flags and their refresh, CSRF on every form (missing, wrong, or from another origin: a 403
//! page, and nothing changes), another user's file as a 404 page, the history's filters and
//! pages, escaping, and the error pages.

use crate::harness;

use harness::devauth::{AuthMode, DevAuth, auth_section, free_auth_addr};
use harness::pages::{PageClient, PageResponse, field};
use harness::{NodeOptions, TestNode, put, random_bytes, unique_bucket};

/// Asserts a 403 page that says the form was refused.
fn assert_csrf_refused(resp: &PageResponse, what: &str) {
    assert_eq!(resp.status, 403, "{what}: {}", resp.html);
    assert!(resp.html.contains("This form has expired or did not come from this site"), "{what}: {}", resp.html);
    assert!(resp.html.contains("/static/panel.css"), "{what}: the panel's style");
}

/// A form's fields plus the CSRF token.
fn with_csrf<'a>(csrf: &'a str, fields: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut all = vec![("csrf", csrf)];
    all.extend_from_slice(fields);
    all
}

/// Posts `fields` to `path` without a token, with a wrong one, and with the right one from
/// another origin: each must be a 403 page.
async fn assert_form_guarded(client: &PageClient, path: &str, fields: &[(&str, &str)]) {
    assert_csrf_refused(&client.post(path, fields).await, &format!("{path} without a token"));
    let wrong = "0123456789abcdef0123456789abcdef";
    assert_csrf_refused(&client.post(path, &with_csrf(wrong, fields)).await, &format!("{path} with a wrong token"));
    let csrf = client.cookie("meridian_csrf").expect("the CSRF cookie");
    let foreign = client.post_from(path, &with_csrf(&csrf, fields), "http://127.0.0.1:1").await;
    assert_csrf_refused(&foreign, &format!("{path} from another origin"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_sign_in_guard_forms_and_hide_other_users_files() {
    let addr = free_auth_addr();
    let node = TestNode::start_with_extra(NodeOptions::default(), &auth_section(addr, AuthMode::Hs256, 1)).await;
    let devauth = DevAuth::start(node.config_path(), false).await;
    let _log = node.log_on_panic();
    let web = node.web_url();

    // Signed out: every page sends to the sign-in page, and comes back after it.
    let alice = PageClient::new(&web);
    // The first answer hands out the CSRF cookie, whatever the page.
    let first = alice.get("/").await;
    let csrf_cookie = first.set_cookie("meridian_csrf").expect("a CSRF cookie").to_owned();
    assert!(csrf_cookie.contains("HttpOnly") && csrf_cookie.contains("SameSite=Strict"), "{csrf_cookie}");
    for (path, next) in [
        ("/", None),
        ("/files", Some("%2Ffiles")),
        ("/history?action=create", Some("%2Fhistory%3Faction%3Dcreate")),
        ("/shared", Some("%2Fshared")),
        ("/file/b/k", Some("%2Ffile%2Fb%2Fk")),
    ] {
        let resp = alice.get(path).await;
        assert_eq!(resp.status, 303, "{path}");
        let location = resp.location.expect("a redirect");
        match next {
            Some(next) => assert_eq!(location, format!("/signin?next={next}"), "{path}"),
            None => assert_eq!(location, "/signin", "{path}"),
        }
    }

    // The sign-in page hands out a CSRF cookie; the form is guarded like every other.
    let page = alice.get("/signin?next=/history").await;
    assert_eq!(page.status, 200);
    assert!(page.set_cookie("meridian_csrf").is_none(), "the token is kept, not replaced");
    assert_eq!(page.csrf(), alice.cookie("meridian_csrf").expect("kept"), "the form carries the cookie's token");
    let login = [("login", "alice"), ("password", "alice-password"), ("next", "/history")];
    assert_form_guarded(&alice, "/signin", &login).await;
    assert!(alice.cookie("meridian_session").is_none(), "no session from a refused form");

    // A wrong password: the form again, with a message and the login kept; no session.
    let wrong = alice.post("/signin", &with_csrf(&page.csrf(), &[("login", "alice"), ("password", "nope")])).await;
    assert_eq!(wrong.status, 401, "{}", wrong.html);
    assert!(wrong.html.contains("Wrong login or password"), "{}", wrong.html);
    assert_eq!(field(&wrong.html, "login").as_deref(), Some("alice"));
    assert!(wrong.set_cookie("meridian_session").is_none());

    // The right one: HttpOnly, SameSite cookies and back to where the user was going.
    let signed_in = alice.post("/signin", &with_csrf(&page.csrf(), &login)).await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.html);
    assert_eq!(signed_in.location.as_deref(), Some("/history"));
    for name in ["meridian_session", "meridian_session_refresh"] {
        let cookie = signed_in.set_cookie(name).unwrap_or_else(|| panic!("{name} set"));
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
        assert!(!cookie.contains("Secure"), "plain HTTP: not Secure");
    }
    // `next` never leads off the site.
    let offsite = alice.get("/signin?next=//evil.example/").await;
    assert_eq!(offsite.location.as_deref(), Some("/files"), "signed in: straight on, but not off-site");

    let files = alice.get("/files").await;
    assert_eq!(files.status, 200);
    assert!(files.html.contains("Alice Martin") && files.html.contains("action=\"/signout\""), "header with user");
    assert!(files.html.contains("Create a bucket first"), "no bucket yet");

    // New bucket: guarded, then created.
    let bucket = unique_bucket("pages");
    assert_form_guarded(&alice, "/files/buckets", &[("name", &bucket)]).await;
    assert!(!alice.get("/files").await.html.contains(&bucket), "no bucket from refused forms");
    let csrf = alice.cookie("meridian_csrf").expect("csrf");
    let created = alice.post("/files/buckets", &with_csrf(&csrf, &[("name", &bucket)])).await;
    assert_eq!(created.status, 303, "{}", created.html);
    let bad = alice.post("/files/buckets", &with_csrf(&csrf, &[("name", "No_Such Name")])).await;
    assert_eq!(bad.status, 400, "a bad name is a 400 page");
    assert!(bad.html.contains("3 to 63"), "{}", bad.html);

    // A file in it (written with an S3 key: the bucket's files are alice's), with a name that
    // must be escaped.
    let key = "reels/<b>premiere</b> & co.bin";
    let bytes = random_bytes(7, 300 * 1024);
    put(&node.client(), &bucket, key, &bytes).await;
    let list = alice.get(&format!("/files?bucket={bucket}")).await;
    assert!(list.html.contains("reels/&#60;b&#62;premiere&#60;/b&#62; &#38; co.bin"), "escaped:\n{}", list.html);
    assert!(!list.html.contains("<b>premiere"), "never raw");
    assert!(list.html.contains("300.0 KiB") && list.html.contains("frankfurt"), "size and region state");
    let file_path = format!("/file/{bucket}/reels/%3Cb%3Epremiere%3C/b%3E%20%26%20co.bin");
    assert!(list.html.contains(&file_path.replace('&', "&#38;")), "a link to the file's page:\n{}", list.html);

    let file = alice.get(&file_path).await;
    assert_eq!(file.status, 200, "{}", file.html);
    assert!(file.html.contains("Copies per region") && file.html.contains("frankfurt"));
    assert!(file.html.contains("Alice Martin (alice) (owns the bucket)"), "owner");
    assert!(file.html.contains("class=\"action create\""), "its history");

    // Shares from the file's page: guarded; a public link shown once; a share with bob.
    let public =
        [("bucket", bucket.as_str()), ("key", key), ("kind", "public"), ("password", "pw"), ("max_downloads", "2")];
    assert_form_guarded(&alice, "/shares", &public).await;
    let link = alice.post("/shares", &with_csrf(&csrf, &public)).await;
    assert_eq!(link.status, 201, "{}", link.html);
    // `<input type="text" readonly value="URL" id="share-url" ...>`
    let url = link
        .html
        .split("readonly value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the link, shown once")
        .to_owned();
    assert!(url.starts_with(&format!("{web}/s/")), "a whole link: {url}");
    let opened = PageClient::new(&web).get(url.trim_start_matches(&web)).await;
    assert_eq!(opened.status, 200, "the link asks for its password");
    assert!(opened.html.contains("protected by a password") && opened.html.contains("/static/panel.css"));
    let again = alice.get(&file_path).await;
    assert!(!again.html.contains(url.trim_start_matches(&web)), "the link is never shown again");
    assert!(again.html.contains("password, at most 2 downloads"), "the share is listed");

    let bob = PageClient::new(&web);
    bob.sign_in("bob", "bob-password").await;
    let to_bob =
        [("bucket", bucket.as_str()), ("key", key), ("kind", "user"), ("user", "u-bob"), ("permission", "read")];
    assert_form_guarded(&alice, "/shares", &to_bob).await;
    assert!(bob.get("/shared").await.html.contains("Nobody has shared"), "refused forms shared nothing");
    let shared = alice.post("/shares", &with_csrf(&csrf, &to_bob)).await;
    assert_eq!(shared.status, 303, "{}", shared.html);
    let bob_shared = bob.get("/shared").await;
    assert!(
        bob_shared.html.contains("&#60;b&#62;premiere") && bob_shared.html.contains("Alice Martin"),
        "{}",
        bob_shared.html
    );

    // Another user's file is a 404 page, on every page and form that names it.
    let theirs = bob.get(&file_path).await;
    assert_eq!(theirs.status, 404, "{}", theirs.html);
    assert!(theirs.html.contains("Not found") && theirs.html.contains("/static/panel.css"));
    let confirm = bob.get(&format!("/files/delete?bucket={bucket}&key=x")).await;
    assert_eq!(confirm.status, 404);
    let bob_csrf = bob.cookie("meridian_csrf").expect("csrf");
    let delete = [("bucket", bucket.as_str()), ("key", key)];
    assert_eq!(bob.post("/files/delete", &with_csrf(&bob_csrf, &delete)).await.status, 404, "bob cannot delete it");
    let steal = [("bucket", bucket.as_str()), ("key", key), ("kind", "public")];
    assert_eq!(bob.post("/shares", &with_csrf(&bob_csrf, &steal)).await.status, 404, "nor share it");
    assert!(!bob.get("/files").await.html.contains(&bucket), "nor see it in his list");

    // Revoke: guarded, then done.
    let share_id = alice
        .get(&file_path)
        .await
        .html
        .split("name=\"id\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a revoke form")
        .to_owned();
    let revoke = [("id", share_id.as_str()), ("bucket", bucket.as_str()), ("key", key)];
    assert_form_guarded(&alice, "/shares/revoke", &revoke).await;
    assert_eq!(bob.post("/shares/revoke", &with_csrf(&bob_csrf, &revoke)).await.status, 404, "not bob's to revoke");
    let revoked = alice.post("/shares/revoke", &with_csrf(&csrf, &revoke)).await;
    assert_eq!(revoked.status, 303, "{}", revoked.html);
    assert!(alice.get(&file_path).await.html.contains("class=\"state revoked\""), "revoked");

    // History: filters and pages. 55 more files make two pages of the bucket's creates.
    let many = unique_bucket("pages-many");
    let created = alice.post("/files/buckets", &with_csrf(&csrf, &[("name", &many)])).await;
    assert_eq!(created.status, 303);
    for i in 0..55 {
        put(&node.client(), &many, &format!("f{i:02}"), b"x").await;
    }
    let first = alice.get(&format!("/history?action=create&file={many}")).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.html.matches("class=\"action create\"").count(), 50, "a page of 50");
    let next = first
        .html
        .split("<a href=\"")
        .find_map(|part| part.split_once("\">Next page").map(|(href, _)| href.replace("&#38;", "&")))
        .expect("a next page link");
    let second = alice.get(&next).await;
    assert_eq!(second.html.matches("class=\"action create\"").count(), 5, "the rest");
    assert!(second.html.contains("First page"));
    let deletes = alice.get(&format!("/history?action=delete&file={many}")).await;
    assert!(deletes.html.contains("Nothing in the history here"), "no deletes yet");
    let bad_date = alice.get("/history?from=yesterday").await;
    assert_eq!(bad_date.status, 400, "a bad date is a 400 page");
    let shares_by_alice = alice.get("/history?user=u-alice&action=share_create").await;
    assert_eq!(shares_by_alice.html.matches("class=\"action share_create\"").count(), 2, "her two shares");
    assert!(bob.get(&format!("/history?file={many}")).await.html.contains("Nothing in the history here"), "not bob's");

    // Delete: a confirmation page, a guarded form, then gone.
    let confirm = alice
        .get(&format!("/files/delete?bucket={bucket}&key={}", "reels/%3Cb%3Epremiere%3C/b%3E%20%26%20co.bin"))
        .await;
    assert_eq!(confirm.status, 200);
    assert!(confirm.html.contains("Delete this file?") && confirm.html.contains("id=\"delete\""));
    assert_form_guarded(&alice, "/files/delete", &delete).await;
    assert_eq!(alice.get(&file_path).await.status, 200, "still there after refused forms");
    let deleted = alice.post("/files/delete", &with_csrf(&csrf, &delete)).await;
    assert_eq!(deleted.status, 303);
    assert_eq!(alice.get(&file_path).await.status, 404, "gone");

    // An expired or missing access token is refreshed from the refresh cookie.
    alice.set_cookie("meridian_session", None);
    let refreshed = alice.get("/files").await;
    assert_eq!(refreshed.status, 200, "refreshed instead of sent to sign in");
    assert!(refreshed.set_cookie("meridian_session").is_some(), "a new access token");
    alice.set_cookie("meridian_session", None);
    alice.set_cookie("meridian_session_refresh", Some("not-a-refresh-token"));
    let refused = alice.get("/files").await;
    assert_eq!(refused.status, 303, "a refused refresh token: sign in again");
    alice.sign_in("alice", "alice-password").await;

    // Sign out: guarded, then the cookies are gone and pages ask to sign in.
    assert_form_guarded(&alice, "/signout", &[]).await;
    assert_eq!(alice.get("/files").await.status, 200, "still signed in");
    let csrf = alice.cookie("meridian_csrf").expect("csrf");
    let out = alice.post("/signout", &with_csrf(&csrf, &[])).await;
    assert_eq!((out.status, out.location.as_deref()), (303, Some("/signin")));
    assert!(alice.cookie("meridian_session").is_none() && alice.cookie("meridian_session_refresh").is_none());
    assert_eq!(alice.get("/files").await.status, 303);

    // A form's target opened as a page leads back to the files; unknown paths are 404 pages;
    // the API keeps answering JSON.
    for path in ["/shares", "/shares/revoke", "/files/buckets", "/signout"] {
        assert_eq!(alice.get(path).await.location.as_deref(), Some("/files"), "GET {path}");
    }
    let missing = alice.get("/no/such/page").await;
    assert_eq!(missing.status, 404);
    assert!(missing.html.contains("There is no page at this address"));
    let api = alice.get("/api/v1/no-such-route").await;
    assert_eq!(api.status, 404);
    assert!(api.html.starts_with('{'), "JSON: {}", api.html);
    drop(devauth);
}
