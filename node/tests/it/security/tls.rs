//! TLS on the listeners (issue #14), against a real node over real sockets.
//!
//! - The internal listener refuses, at the TLS layer, a plaintext request, a TLS client without
//!   a certificate, a certificate of another CA (naming this very cluster and region) and a
//!   certificate of the right CA naming another cluster or a region cluster.toml does not list;
//!   the node keeps serving S3 meanwhile, and `/api/v1/cluster` and `/metrics` say why it
//!   refused each.
//! - aws-sdk-s3 works against the S3 listener over `https://` with the cluster CA as its only
//!   trust root.
//! - A certificate re-issued while the node runs is served to new connections after SIGHUP, and
//!   after a file change alone (the 10 s poll), while a connection opened before keeps working.
//!   (Whether a listener also answers plain HTTP is a unit test of the sniff decision:
//!   `listeners::tls`, and of `plain_http_allowed`: `config::tls`.)

use crate::harness;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use harness::internal_tls::{connect_with, internal_http, node_tls};
use harness::*;
use meridian_tls::NodeName;
use meridian_tls::pki::{self, NodeCertRequest};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// The single test node's cluster (see `harness::node`).
const CLUSTER: &str = "meridian-test";

/// Issues a certificate for `name` with the CA in `ca_dir`, written as `<file>.crt`/`.key` in
/// `out`.
fn issue(ca_dir: &Path, name: NodeName, out: &Path, file: &str, days: u32) -> (PathBuf, PathBuf) {
    let (cert, key) = (out.join(format!("{file}.crt")), out.join(format!("{file}.key")));
    let request = NodeCertRequest { name, hosts: vec!["127.0.0.1".into(), "localhost".into()], validity_days: days };
    pki::issue(&ca_dir.join("ca.crt"), &ca_dir.join("ca.key"), &request, &cert, &key).expect("issue");
    (cert, key)
}

/// A client config presenting `cert`/`key` and trusting the test cluster's CA.
fn client_with(cert: &Path, key: &Path) -> rustls::ClientConfig {
    let identity = meridian_tls::Identity::load(cert, key).expect("identity");
    let anchors = meridian_tls::TrustAnchors::load(&harness::tls::ca_cert(CLUSTER)).expect("CA");
    meridian_tls::internal_client_config(identity, &anchors).expect("client config")
}

/// A TLS client of the test cluster's CA that presents no certificate.
fn client_without_certificate() -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(harness::tls::ca_cert(CLUSTER)).expect("CA pem") {
        roots.add(cert.expect("CA cert")).expect("root");
    }
    rustls::ClientConfig::builder_with_provider(meridian_tls::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// A request head for the internal listener's load route (unsigned: a client the TLS layer
/// admits gets 401 from the signature check).
fn load_request(addr: SocketAddr) -> String {
    format!("GET /internal/v1/load HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n")
}

/// Reads what the server sends until it closes (or errs, or 5 s pass).
async fn read_all<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Sends the load request over TLS with `config`; the answer's text, or why there was none.
async fn try_tls(addr: SocketAddr, config: rustls::ClientConfig) -> Result<String, String> {
    // In TLS 1.3 the client's handshake is done before the server has checked its certificate:
    // a refusal shows on the first read.
    let mut stream = connect_with(addr, config).await.map_err(|e| format!("handshake: {e}"))?;
    stream.write_all(load_request(addr).as_bytes()).await.map_err(|e| format!("write: {e}"))?;
    let mut out = Vec::new();
    match tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await {
        Ok(Ok(_)) if !out.is_empty() => Ok(String::from_utf8_lossy(&out).into_owned()),
        Ok(Ok(_)) => Err("closed without an answer".into()),
        Ok(Err(e)) => Err(format!("read: {e}")),
        Err(_) => Err("no answer in 5 s".into()),
    }
}

/// `GET /api/v1/cluster` of the node, as JSON.
async fn cluster_view(node: &TestNode) -> serde_json::Value {
    let response = http_client().get(format!("{}/api/v1/cluster", node.web_url())).send().await.expect("cluster");
    assert_eq!(response.status().as_u16(), 200);
    response.json().await.expect("cluster json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_internal_listener_refuses_plaintext_and_wrong_certificates_and_says_why() {
    let node = TestNode::start().await;
    let _log = node.log_on_panic();
    let addr = node.internal_addr;
    let client = node.client();
    let bucket = create_bucket(&client, "tls-refusals").await;
    let ca_dir = harness::tls::cluster_pki(CLUSTER, &[REGION]);
    let scratch = tempfile::tempdir().expect("scratch dir");

    // A node of this cluster gets through TLS; the HMAC check then refuses the unsigned request:
    // 401 from the application shows the TLS layer let it in.
    let admitted = try_tls(addr, node_tls(CLUSTER, REGION)).await.expect("a node of the cluster is admitted");
    assert!(admitted.starts_with("HTTP/1.1 401"), "{admitted}");

    // (a) Plaintext: closed without an HTTP answer.
    let mut plain = TcpStream::connect(addr).await.expect("connect");
    plain.write_all(load_request(addr).as_bytes()).await.expect("write");
    let answer = read_all(&mut plain).await;
    assert!(!answer.contains("HTTP/1.1"), "plaintext got an answer: {answer}");

    // (b) TLS, no client certificate.
    let answer = try_tls(addr, client_without_certificate()).await;
    assert!(answer.is_err(), "a client without a certificate got: {answer:?}");

    // (c) A certificate naming this very cluster and region, from another CA of the same name.
    let other_ca = scratch.path().join("other-ca");
    pki::init_ca(CLUSTER, &other_ca.join("ca.crt"), &other_ca.join("ca.key"), 30).expect("other CA");
    let (cert, key) = issue(&other_ca, NodeName::new(CLUSTER, REGION), scratch.path(), "forged", 30);
    let answer = try_tls(addr, client_with(&cert, &key)).await;
    assert!(answer.is_err(), "a certificate of another CA got: {answer:?}");

    // (d) The cluster's own CA, naming another cluster; and a region cluster.toml does not list.
    let (cert, key) = issue(&ca_dir, NodeName::new("another-cluster", REGION), scratch.path(), "staging", 30);
    let answer = try_tls(addr, client_with(&cert, &key)).await;
    assert!(answer.is_err(), "a certificate of another cluster got: {answer:?}");
    let (cert, key) = issue(&ca_dir, NodeName::new(CLUSTER, "mars"), scratch.path(), "mars", 30);
    let answer = try_tls(addr, client_with(&cert, &key)).await;
    assert!(answer.is_err(), "a certificate of an unknown region got: {answer:?}");

    // The node keeps serving.
    put(&client, &bucket, "after", b"still here").await;
    assert_eq!(get_bytes(&client, &bucket, "after").await, b"still here");
    assert!(node.exited().is_none(), "the node died");

    // The status says why, in words, with the peer's address.
    let view = cluster_view(&node).await;
    let recent = view["tls"]["recent_refusals"].as_array().expect("recent_refusals").clone();
    let reasons: Vec<&str> = recent.iter().filter_map(|r| r["reason"].as_str()).collect();
    for expected in [
        "plaintext",
        "no client certificate",
        "certificate not issued by the cluster CA",
        "names region frankfurt of cluster another-cluster, not of this cluster",
        "names region mars of this cluster, which cluster.toml does not list",
    ] {
        assert!(reasons.contains(&expected), "{expected:?} not among {reasons:?}");
    }
    assert!(
        recent
            .iter()
            .all(|r| r["listener"] == "internal" && r["peer"].as_str().is_some_and(|p| p.starts_with("127.0.0.1:")))
    );
    let internal = &view["tls"]["certificates"][0];
    assert_eq!(internal["certificate"], "internal");
    assert!(internal["not_after_unix"].as_i64().expect("not_after") > 0);

    // So do the metrics, by reason.
    let text = node.metrics_text().await;
    for reason in ["plaintext", "no_client_certificate", "unknown_issuer", "other_cluster", "unknown_region"] {
        let line = format!("meridian_tls_handshake_refusals_total{{listener=\"internal\",reason=\"{reason}\"}} 1");
        assert!(text.contains(&line), "{line} not in /metrics:\n{text}");
    }
    let expiry = text
        .lines()
        .find_map(|l| l.strip_prefix("meridian_tls_certificate_expiry_seconds{certificate=\"internal\"} "))
        .and_then(|v| v.parse::<i64>().ok())
        .expect("expiry gauge");
    assert!((29 * 86_400..=30 * 86_400).contains(&expiry), "the test certificate lasts 30 days: {expiry}");
    // Logged (at most once per peer per 10 s: all came from 127.0.0.1, so one line).
    let log = std::fs::read_to_string(node.log_path()).expect("log");
    let lines = log.matches("refused a connection").count();
    assert!((1..=2).contains(&lines), "{lines} log lines for five refusals within seconds: {log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn aws_sdk_s3_over_https_with_the_cluster_ca_as_the_only_root() {
    use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
    let node = TestNode::start().await;
    let _log = node.log_on_panic();
    let pem = std::fs::read(harness::tls::ca_cert(CLUSTER)).expect("CA pem");
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(
            TlsContext::builder()
                .with_trust_store(TrustStore::empty().with_pem_certificate(pem))
                .build()
                .expect("tls context"),
        )
        .build_https();
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(format!("https://{}", node.s3_addr))
        .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "tls-test"))
        .force_path_style(true)
        .retry_config(RetryConfig::disabled())
        .http_client(http)
        .build();
    let client = aws_sdk_s3::Client::from_conf(conf);
    let bucket = create_bucket(&client, "https").await;
    let body = random_bytes(11, 3 * MIB);
    put(&client, &bucket, "film.mp4", &body).await;
    assert_eq!(get_bytes(&client, &bucket, "film.mp4").await, body);
    let listed = ok(client.list_objects_v2().bucket(&bucket).send().await, "ListObjectsV2 over https");
    let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["film.mp4"]);
    // The same client without the CA fails: it is the CA that is trusted, nothing else.
    let untrusting = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(TlsContext::builder().with_trust_store(TrustStore::empty()).build().expect("tls context"))
        .build_https();
    let conf = client.config().to_builder().http_client(untrusting).build();
    let refused = aws_sdk_s3::Client::from_conf(conf).list_buckets().send().await;
    assert!(refused.is_err(), "a client without the cluster CA was served: {refused:?}");
}

/// One request on an open HTTP/1.1 connection (kept alive): the status line.
async fn healthz_on<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(stream: &mut S) -> String {
    stream.write_all(b"GET /healthz HTTP/1.1\r\nhost: node\r\n\r\n").await.expect("write");
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("answer in time")
            .expect("read");
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&data));
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                .and_then(|v| v.parse::<usize>().ok())
                .expect("content-length");
            if body.len() >= length {
                return head.lines().next().unwrap_or_default().to_owned();
            }
        }
    }
}

/// The leaf certificate a TLS connection to `addr` is served (trusting the test cluster's CA).
async fn served_leaf(addr: SocketAddr) -> (Vec<u8>, tokio_rustls::client::TlsStream<TcpStream>) {
    let stream = connect_with(addr, client_without_certificate()).await.expect("TLS to the web listener");
    let leaf = stream.get_ref().1.peer_certificates().expect("server certificate")[0].to_vec();
    (leaf, stream)
}

/// The first certificate of a PEM file, DER.
fn leaf_of(path: &Path) -> Vec<u8> {
    CertificateDer::pem_file_iter(path).expect("pem").next().expect("a certificate").expect("cert").to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reissued_certificate_is_served_after_sighup_or_a_file_change_and_open_connections_survive() {
    // The node's own copy of its certificate (the harness's is shared by every test node).
    let ca_dir = harness::tls::cluster_pki(CLUSTER, &[REGION]);
    let own = tempfile::tempdir().expect("cert dir");
    let (cert, key) = issue(&ca_dir, NodeName::new(CLUSTER, REGION), own.path(), "node", 30);
    let extra = format!("tls_cert = '{}'\ntls_key = '{}'\n", cert.display(), key.display());
    let node = TestNode::start_with_extra(NodeOptions::default(), &extra).await;
    let _log = node.log_on_panic();
    let first = leaf_of(&cert);

    // A connection opened before the renewal, with a request served on it.
    let (leaf, mut before) = served_leaf(node.web_addr).await;
    assert_eq!(leaf, first, "the web listener serves the node's certificate");
    assert!(healthz_on(&mut before).await.starts_with("HTTP/1.1 200"));

    // Re-issued (5 days: also inside the expiry warning window), then SIGHUP.
    issue(&ca_dir, NodeName::new(CLUSTER, REGION), own.path(), "node", 5);
    let second = leaf_of(&cert);
    assert_ne!(second, first);
    let status = std::process::Command::new("kill").arg("-HUP").arg(node.pid().to_string()).status().expect("kill");
    assert!(status.success());
    let mut served = Vec::new();
    for _ in 0..50 {
        (served, _) = served_leaf(node.web_addr).await;
        if served == second {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(served, second, "new connections get the re-issued certificate after SIGHUP");
    // The old connection goes on, with what it started with.
    assert!(healthz_on(&mut before).await.starts_with("HTTP/1.1 200"), "the open connection was dropped");
    assert_eq!(before.get_ref().1.peer_certificates().expect("cert")[0].to_vec(), first);
    // The peers' side (mutual TLS) and the status use it too.
    let view = cluster_view(&node).await;
    let not_after = view["tls"]["certificates"][0]["not_after_unix"].as_i64().expect("not_after");
    let days = (not_after
        - i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs())
            .expect("i64"))
        / 86_400;
    assert!((4..=5).contains(&days), "status shows the re-issued (5-day) certificate's expiry: {days} days");
    let admitted = try_tls(node.internal_addr, node_tls(CLUSTER, REGION)).await.expect("admitted");
    assert!(admitted.starts_with("HTTP/1.1 401"), "{admitted}");
    let log = std::fs::read_to_string(node.log_path()).expect("log");
    assert!(log.contains("loaded a new TLS certificate"), "{log}");
    assert!(log.contains("TLS certificate expires soon"), "a 5-day certificate is warned about: {log}");

    // Without a signal: the file's change is noticed within the 10 s poll.
    issue(&ca_dir, NodeName::new(CLUSTER, REGION), own.path(), "node", 20);
    let third = leaf_of(&cert);
    let mut served = Vec::new();
    for _ in 0..30 {
        (served, _) = served_leaf(node.web_addr).await;
        if served == third {
            break;
        }
        // The open connection keeps being used (idle for the header-read timeout, 10 s, the
        // server would close it: that is keep-alive's limit, not the reload's doing).
        assert!(healthz_on(&mut before).await.starts_with("HTTP/1.1 200"), "the open connection was dropped");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(served, third, "new connections get the re-issued certificate after the poll");
    assert!(healthz_on(&mut before).await.starts_with("HTTP/1.1 200"), "the open connection was dropped");

    // A broken renewal (a key that does not match) keeps the certificate in use.
    std::fs::copy(ca_dir.join("ca.key"), &key).expect("copy");
    let status = std::process::Command::new("kill").arg("-HUP").arg(node.pid().to_string()).status().expect("kill");
    assert!(status.success());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (served, _) = served_leaf(node.web_addr).await;
    assert_eq!(served, third, "a bad file replaced the certificate in use");
    let log = std::fs::read_to_string(node.log_path()).expect("log");
    assert!(log.contains("cannot reload the TLS certificate"), "{log}");
    // Internal calls (the internal listener and peers) go on as well.
    let http = internal_http(CLUSTER, REGION);
    let status = http.get(format!("https://{}/internal/v1/load", node.internal_addr)).send().await.expect("internal");
    assert_eq!(status.status().as_u16(), 401, "admitted by TLS, refused by the signature check");
}
