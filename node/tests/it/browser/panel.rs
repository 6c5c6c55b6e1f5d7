//! The admin panel in a real browser (Debian's headless Chromium over WebDriver) against a
//! three-region cluster and the stand-in Auth service: sign in, create a bucket and upload a
//! file through the page (a multipart upload with a progress bar, straight to the S3 listener
//! with presigned URLs), see it in the list, create a password-protected public link, open it
//! in a fresh browser, enter the password, download, and compare the bytes. Every page is kept
//! as a screenshot under `target/test-artifacts/screenshots/`.

use crate::harness;

use std::path::Path;
use std::time::{Duration, Instant};

use harness::cluster::{ClusterOptions, TestCluster};
use harness::devauth::{AuthMode, DevAuth, auth_section, free_auth_addr};
use harness::webdriver::{Browser, Driver, screenshot_dir};
use harness::{POLL, assert_bytes_eq, random_bytes, unique_bucket};
use serde_json::json;

/// Size of the uploaded file: over the 1 MiB multipart threshold of this test's config, so the
/// page uploads it in two parts (5 MiB and 1 MiB).
const FILE_SIZE: usize = 6 * 1024 * 1024;
/// The link's password.
const LINK_PASSWORD: &str = "popcorn-and-sunsets";

/// Waits until `dir` holds one finished download; returns its bytes.
async fn downloaded(dir: &Path, timeout: Duration) -> Vec<u8> {
    let deadline = Instant::now() + timeout;
    loop {
        let files: Vec<_> = std::fs::read_dir(dir)
            .expect("read downloads")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| !p.extension().is_some_and(|e| e == "crdownload" || e == "tmp"))
            .collect();
        if let [file] = files.as_slice()
            && let Ok(bytes) = std::fs::read(file)
            && bytes.len() >= FILE_SIZE
        {
            return bytes;
        }
        assert!(Instant::now() < deadline, "no finished download in {} within {timeout:?}: {files:?}", dir.display());
        tokio::time::sleep(POLL).await;
    }
}

/// Fills the sign-in form and waits for the files page.
async fn sign_in(browser: &Browser, login: &str, password: &str) {
    let field = browser.find("#signin input[name=login]").await;
    field.clear().await;
    field.type_text(login).await;
    browser.find("#signin input[name=password]").await.type_text(password).await;
    browser.find("#signin button[type=submit]").await.click().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_upload_share_and_download_in_a_browser() {
    // The browser comes first: without it the test fails at once, saying how to install it.
    let driver = Driver::start().await;
    let addr = free_auth_addr();
    let options = ClusterOptions {
        extra_config: format!(
            "{}\n[geo]\nmultipart_threshold_mib = 1\nmultipart_part_mib = 5\n",
            auth_section(addr, AuthMode::Hs256, 1)
        ),
        ..ClusterOptions::default()
    };
    let cluster = TestCluster::start_with(options).await;
    let node = cluster.node(0);
    let devauth = DevAuth::start(node.config_path(), false).await;
    let _log = node.log_on_panic();
    let web = node.web_url();
    let shots = screenshot_dir();
    let work = tempfile::tempdir().expect("temp dir");
    let film = random_bytes(2026, FILE_SIZE);
    let film_path = work.path().join("premiere-teaser.bin");
    std::fs::write(&film_path, &film).expect("write the file to upload");

    // Signed out, the panel sends the browser to the sign-in page.
    let owner_downloads = work.path().join("owner-downloads");
    std::fs::create_dir_all(&owner_downloads).expect("mkdir");
    let alice = driver.browser("alice", &owner_downloads).await;
    alice.goto(&format!("{web}/files")).await;
    alice.wait_url("the sign-in page", |u| u.contains("/signin?next=%2Ffiles")).await;
    alice.screenshot("01-sign-in").await;

    // A wrong password shows the form again with a message.
    sign_in(&alice, "alice", "not-her-password").await;
    alice.wait_text("Wrong login or password", Duration::from_secs(10)).await;
    alice.screenshot("02-sign-in-wrong-password").await;

    sign_in(&alice, "alice", "alice-password").await;
    alice.wait_url("my files", |u| u.ends_with("/files")).await;
    alice.wait_text("Alice Martin", Duration::from_secs(5)).await;
    alice.screenshot("03-files-empty").await;

    // A bucket, then the file through the upload form.
    let bucket = unique_bucket("browser");
    alice.find("#new-bucket input[name=name]").await.type_text(&bucket).await;
    alice.find("#new-bucket button[type=submit]").await.click().await;
    alice.wait_text(&format!("Created bucket {bucket}"), Duration::from_secs(10)).await;
    alice.find("#upload input[name=file]").await.type_text(&film_path.display().to_string()).await;
    alice.find("#upload input[name=key]").await.type_text("trailers/premiere-teaser.bin").await;
    alice.find("#upload button[type=submit]").await.click().await;
    alice.wait_url("the list after the upload", |u| u.contains("notice=uploaded")).await;
    alice.wait_text("Uploaded", Duration::from_secs(5)).await;
    let row = alice.find("table.files td.name a").await;
    assert_eq!(row.text().await, "trailers/premiere-teaser.bin", "the uploaded file is in the list");
    alice.wait_text("6.0 MiB", Duration::from_secs(5)).await;
    // Wait (bounded) until the other regions pulled it, so the list shows every copy.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        alice.goto(&format!("{web}/files?bucket={bucket}")).await;
        let held = alice.execute("return document.querySelectorAll('.region.held').length;", json!([])).await;
        if held.as_u64() == Some(3) {
            break;
        }
        assert!(Instant::now() < deadline, "the file did not reach the three regions: {held}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    alice.screenshot("04-files").await;

    // The file's page: a password-protected public link, shown once, with a copy button.
    row_link(&alice).await;
    alice.wait_text("Copies per region", Duration::from_secs(10)).await;
    alice.screenshot("05-file").await;
    alice.find("#share-public input[name=password]").await.type_text(LINK_PASSWORD).await;
    alice.find("#share-public input[name=max_downloads]").await.type_text("3").await;
    alice.find("#share-public button[type=submit]").await.click().await;
    let url_field = alice.find("#share-url").await;
    let link = url_field.property("value").await.as_str().expect("the link").to_owned();
    assert!(link.starts_with(&format!("{web}/s/")), "a whole link to this node: {link}");
    alice.find("[data-copy]").await.click().await;
    alice.wait_text("Copied", Duration::from_secs(5)).await;
    alice.screenshot("06-file-link-created").await;

    // Share it with bob, who may replace it.
    let file_page = format!("{web}/file/{bucket}/trailers/premiere-teaser.bin");
    alice.goto(&file_page).await;
    alice
        .execute(
            "document.querySelector('#share-user select[name=user]').value = arguments[0];\
         document.querySelector('#share-user select[name=permission]').value = 'write';",
            json!(["u-bob"]),
        )
        .await;
    alice.find("#share-user button[type=submit]").await.click().await;
    alice.wait_text("Shared with Bob", Duration::from_secs(10)).await;

    // History and an error page.
    alice.goto(&format!("{web}/history")).await;
    alice.wait_text("share create", Duration::from_secs(5)).await;
    alice.screenshot("07-history").await;
    alice.goto(&format!("{web}/file/{bucket}/no-such-file.bin")).await;
    alice.wait_text("Not found", Duration::from_secs(5)).await;
    alice.screenshot("09-not-found").await;

    // A stranger in a fresh browser: the link asks for the password, refuses a wrong one, and
    // downloads with the right one.
    let downloads = work.path().join("stranger-downloads");
    std::fs::create_dir_all(&downloads).expect("mkdir");
    let stranger = driver.browser("stranger", &downloads).await;
    stranger.goto(&link).await;
    stranger.find("input[name=password]").await;
    stranger.screenshot("10-link-password").await;
    stranger.find("input[name=password]").await.type_text("wrong guess").await;
    stranger.find("form button").await.click().await;
    stranger.wait_text("did not work", Duration::from_secs(10)).await;
    stranger.screenshot("11-link-wrong-password").await;
    stranger.find("input[name=password]").await.type_text(LINK_PASSWORD).await;
    stranger.find("form button").await.click().await;
    let bytes = downloaded(&downloads, Duration::from_secs(60)).await;
    assert_bytes_eq(&bytes, &film, "the file downloaded through the public link");

    // Bob sees it under "Shared with me" and uploads a new version from there.
    let bob = driver.browser("bob", &work.path().join("bob-downloads")).await;
    bob.goto(&format!("{web}/shared")).await;
    sign_in(&bob, "bob", "bob-password").await;
    bob.wait_url("shared with me", |u| u.ends_with("/shared")).await;
    bob.wait_text("trailers/premiere-teaser.bin", Duration::from_secs(5)).await;
    bob.screenshot("08-shared-with-me").await;
    let version = random_bytes(7, 100 * 1024);
    let version_path = work.path().join("teaser-v2.bin");
    std::fs::write(&version_path, &version).expect("write the new version");
    bob.find("form[data-upload] input[name=file]").await.type_text(&version_path.display().to_string()).await;
    bob.find("form[data-upload] button[type=submit]").await.click().await;
    bob.wait_url("back after the replace", |u| u.contains("notice=uploaded")).await;
    bob.wait_text("Uploaded", Duration::from_secs(5)).await;
    bob.screenshot("13-shared-replaced").await;
    alice.goto(&file_page).await;
    alice.wait_text("100.0 KiB", Duration::from_secs(10)).await;
    alice.wait_text("update", Duration::from_secs(5)).await;
    bob.close().await;

    // Delete through the confirmation step.
    alice.goto(&format!("{web}/files?bucket={bucket}")).await;
    alice.find("table.files a.danger").await.click().await;
    alice.wait_text("100.0 KiB", Duration::from_secs(5)).await;
    alice.wait_text("Delete this file?", Duration::from_secs(5)).await;
    alice.screenshot("12-delete-confirm").await;
    alice.find("#delete button[type=submit]").await.click().await;
    alice.wait_text("Deleted", Duration::from_secs(10)).await;
    assert!(alice.try_find("table.files").await.is_none(), "the list is empty again");

    stranger.close().await;
    alice.close().await;
    drop(devauth);
    eprintln!("screenshots in {}", shots.display());
}

/// Opens the first file of the list.
async fn row_link(browser: &Browser) {
    browser.find("table.files td.name a").await.click().await;
    browser.wait_url("the file's page", |u| u.contains("/file/")).await;
}
