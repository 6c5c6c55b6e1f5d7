//! `meridian key create`: a new key pair is committed through the running node and signs
//! requests at once; an unknown key still gets AccessDenied.

use crate::harness;

use harness::cli::create_key;
use harness::{TestNode, create_bucket};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_key_signs_requests_and_unknown_keys_are_refused() {
    let node = TestNode::start().await;
    let _log = node.log_on_panic();
    let (id, secret) = create_key(node.config_path(), "encoder", None);
    assert!(id.len() >= 16 && secret.len() >= 32, "key pair too short: {id} / {secret}");

    let client = node.client_with_keys(&id, &secret);
    let bucket = create_bucket(&client, "cli-key").await;
    client
        .put_object()
        .bucket(&bucket)
        .key("hello")
        .body(b"made with a new key".to_vec().into())
        .send()
        .await
        .expect("PUT signed with the new key");

    // A different secret for the same id must fail: the store holds the real secret.
    let forged = node.client_with_keys(&id, "not-the-secret-not-the-secret-0000000000");
    let err = forged.list_buckets().send().await.expect_err("wrong secret accepted");
    assert_eq!(err.into_service_error().meta().code(), Some("SignatureDoesNotMatch"));

    // Two keys created in a row are distinct.
    let (second, _) = create_key(node.config_path(), "second", None);
    assert_ne!(id, second);

    // `key list` shows both, owned by the service named after them (the default owner), with
    // their state and creation time, and never a secret.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["key", "list", "--config"])
        .arg(node.config_path())
        .output()
        .expect("run meridian key list");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "key list failed: {}", String::from_utf8_lossy(&output.stderr));
    let line = stdout.lines().find(|l| l.starts_with(&id)).unwrap_or_else(|| panic!("{id} not listed: {stdout}"));
    assert!(line.contains("service:encoder") && line.contains("enabled") && line.contains("Z "), "{line}");
    assert!(stdout.lines().any(|l| l.starts_with(&second)), "{stdout}");
    assert!(!stdout.contains(&secret), "no secret in the list");

    // An owner that is neither user:ID nor service:NAME is refused before anything is sent.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["key", "create", "--name", "x", "--owner", "root", "--config"])
        .arg(node.config_path())
        .output()
        .expect("run meridian key create");
    assert!(!output.status.success(), "a bad owner must be refused");
    assert!(String::from_utf8_lossy(&output.stderr).contains("user:ID or service:NAME"), "the error says the form");
}
