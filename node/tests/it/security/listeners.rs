//! Attacks on the listeners themselves (issue #13, items 5 and 6): exhausting them, and
//! replaying requests between nodes.
//!
//! - An unsigned (or forged) request to the internal listener is refused from its headers,
//!   before its body is sent, and a flood of 64 MiB bodies does not grow the node's memory.
//! - Slowloris on the S3 and web listeners: connections that never finish their headers are
//!   closed after `[limits] header_read_timeout_ms`, and honest clients are served meanwhile;
//!   at `max_connections_*` a client waits for a slot and gets one once the slow ones are closed.
//! - A request body that stalls is closed after `[limits] idle_timeout_ms`.
//! - HTTP/2 is spoken only on the internal listener, to a client that chose it by ALPN: the
//!   preface sent without that choice (plain HTTP to S3, TLS settled on HTTP/1.1) is refused.
//! - A correctly signed internal request is accepted once, by the node it was made for, in its
//!   own cluster: replayed to the same node, sent to another node, or signed with another
//!   cluster's name, it is refused; so is the previous release's signature (no
//!   `[internal_rpc] legacy_signatures`).
//!
//! The test's signer is written from the protocol description in `meridian_raft::signing`
//! (HMAC-SHA256 over a tag and length-prefixed fields), not taken from the server; the 404s it
//! gets for a blob nobody holds show it is right.

use crate::harness;

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::presigning::PresigningConfig;
use harness::cluster::{CLUSTER_NAME, CLUSTER_SECRET, REGIONS, TestCluster, id_of};
use harness::internal_tls::{internal_connect, internal_http};
use harness::sigv4::hmac_sha256;
use harness::*;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Cluster name and secret of the single-node harness (`harness::TestNode`), node id 1.
const SINGLE_CLUSTER: &str = "meridian-test";
const SINGLE_SECRET: &str = "test-cluster-secret-0123456789abcdef0123456789";

/// A path every node answers 404 to when the request is accepted (nobody holds this blob).
fn blob_path() -> String {
    format!("/internal/v1/blobs/{}", "0".repeat(32))
}

fn unix_now() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs()).expect("i64")
}

/// Signature v2 headers of a request to node `to` of cluster `cluster`: HMAC-SHA256 keyed with
/// the secret over "meridian-internal-v2" then, each prefixed by its length (u32, big endian):
/// cluster, destination id (decimal), method, path, time (decimal), nonce, SHA-256 of the body.
fn sign_v2(
    secret: &str,
    cluster: &str,
    to: u64,
    method: &str,
    path: &str,
    body: &[u8],
    nonce: [u8; 16],
) -> Vec<(&'static str, String)> {
    let timestamp = unix_now().to_string();
    let body_sha = sha256_bytes(body);
    let to = to.to_string();
    let mut message = b"meridian-internal-v2".to_vec();
    for field in
        [cluster.as_bytes(), to.as_bytes(), method.as_bytes(), path.as_bytes(), timestamp.as_bytes(), &nonce, &body_sha]
    {
        message.extend_from_slice(&u32::try_from(field.len()).expect("short field").to_be_bytes());
        message.extend_from_slice(field);
    }
    let signature = hex::encode(hmac_sha256(secret.as_bytes(), &message));
    vec![
        ("x-meridian-timestamp", timestamp),
        ("x-meridian-nonce", hex::encode(nonce)),
        ("x-meridian-content-sha256", hex::encode(body_sha)),
        ("x-meridian-signature-v2", signature),
    ]
}

/// A fresh random-enough nonce for one request of this test.
fn nonce(seed: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    XorShift::new(seed ^ u64::from(std::process::id()) ^ unix_now().unsigned_abs()).fill(&mut out);
    out
}

/// The previous release's signature (v1): HMAC over "METHOD\nPATH\nTIME\nhex(sha256(body))".
fn sign_v1(secret: &str, method: &str, path: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    let timestamp = unix_now();
    let canonical = format!("{method}\n{path}\n{timestamp}\n{}", sha256_hex(body));
    let signature = hex::encode(hmac_sha256(secret.as_bytes(), canonical.as_bytes()));
    vec![("x-meridian-timestamp", timestamp.to_string()), ("x-meridian-signature", signature)]
}

/// GETs `path` on the internal listener at `addr` with these headers (over mutual TLS, as a
/// node: `http` is a [`harness::internal_tls::internal_http`] client); the status.
async fn get_with(http: &reqwest::Client, addr: SocketAddr, path: &str, headers: &[(&'static str, String)]) -> u16 {
    let mut request = http.get(format!("https://{addr}{path}"));
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request.send().await.unwrap_or_else(|e| panic!("GET {path} on {addr}: {e}")).status().as_u16()
}

/// Sends a raw request head to the single node's internal listener (over mutual TLS, as a node)
/// and reads the start of the answer, at most `within`; `None` if no answer came (the server
/// waits for more).
async fn head_only_answer(addr: SocketAddr, head: &str, within: Duration) -> Option<String> {
    let mut stream = internal_connect(addr, SINGLE_CLUSTER, REGION).await;
    stream.write_all(head.as_bytes()).await.expect("write head");
    let mut buf = vec![0u8; 4096];
    match tokio::time::timeout(within, stream.read(&mut buf)).await {
        Ok(Ok(n)) if n > 0 => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        _ => None,
    }
}

/// Resident memory of a process, bytes.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS line");
    let kib: u64 = line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("VmRSS value");
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unsigned_bodies_are_refused_before_they_are_sent_and_do_not_grow_memory() {
    let node = TestNode::start().await;
    let _log = node.log_on_panic();
    let addr = node.internal_addr;
    const HUGE: usize = 64 * MIB;

    // Unsigned, forged, and for another node: each answered from the headers, no body sent.
    let forged = {
        let mut h = sign_v2(
            "not-the-cluster-secret-0123456789",
            SINGLE_CLUSTER,
            1,
            "POST",
            "/internal/v1/raft/append",
            b"",
            nonce(1),
        );
        h.retain(|(n, _)| *n != "x-meridian-content-sha256");
        h.push(("x-meridian-content-sha256", "ab".repeat(32)));
        h
    };
    let other_node = sign_v2(SINGLE_SECRET, SINGLE_CLUSTER, 2, "POST", "/internal/v1/raft/append", b"x", nonce(2));
    for (what, headers) in [("unsigned", Vec::new()), ("forged", forged), ("signed for node 2", other_node)] {
        let extra: String = headers.iter().map(|(n, v)| format!("{n}: {v}\r\n")).collect();
        let head =
            format!("POST /internal/v1/raft/append HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {HUGE}\r\n{extra}\r\n");
        let answer = head_only_answer(addr, &head, Duration::from_secs(5)).await;
        let answer = answer.unwrap_or_else(|| panic!("{what}: no answer before the 64 MiB body was sent"));
        assert!(answer.starts_with("HTTP/1.1 401"), "{what}: {answer}");
    }

    // Correctly signed, but more than the route takes (a vote is a few bytes): 413 at once.
    let body = b"not sent";
    let signed = sign_v2(SINGLE_SECRET, SINGLE_CLUSTER, 1, "POST", "/internal/v1/raft/vote", body, nonce(3));
    let extra: String = signed.iter().map(|(n, v)| format!("{n}: {v}\r\n")).collect();
    let head = format!("POST /internal/v1/raft/vote HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {HUGE}\r\n{extra}\r\n");
    let answer = head_only_answer(addr, &head, Duration::from_secs(5)).await.expect("answer to an oversized vote");
    assert!(answer.starts_with("HTTP/1.1 413"), "oversized vote: {answer}");

    // A flood of unsigned 64 MiB bodies, 8 at a time: the node's memory stays where it was.
    let pid = node.pid();
    let before = rss_bytes(pid);
    let flood = (0..8).map(|_| async move {
        let mut stream = internal_connect(addr, SINGLE_CLUSTER, REGION).await;
        let head = format!("POST /internal/v1/raft/append HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {HUGE}\r\n\r\n");
        stream.write_all(head.as_bytes()).await.expect("write head");
        let chunk = vec![0x5a_u8; MIB];
        let mut sent = 0;
        // At most the whole body; the node hangs up long before.
        for _ in 0..HUGE / MIB {
            match tokio::time::timeout(Duration::from_secs(5), stream.write_all(&chunk)).await {
                Ok(Ok(())) => sent += MIB,
                _ => break,
            }
        }
        sent
    });
    let sent: Vec<usize> = futures::future::join_all(flood).await;
    let after = rss_bytes(pid);
    eprintln!("flood: sent {sent:?} bytes per connection; RSS {before} -> {after}");
    assert!(after < before + 32 * MIB as u64, "RSS grew from {before} to {after} bytes under unsigned 64 MiB bodies");
    assert!(node.exited().is_none(), "the node died");
    let health = http_client().get(format!("{}/healthz", node.web_url())).send().await.expect("healthz");
    assert_eq!(health.status().as_u16(), 200);
}

/// A client that sends a request head one byte every 100 ms and never finishes it. Returns when
/// the server closed the connection (or answered), measured from the connect; `None` if it was
/// still open after `give_up`.
async fn slowloris(addr: SocketAddr, give_up: Duration) -> Option<Duration> {
    trickle(addr, format!("GET /healthz HTTP/1.1\r\nhost: {addr}\r\nx-slow: ").into_bytes(), give_up).await
}

/// The same against the TLS handshake: a record header that announces a 16 KiB ClientHello, then
/// its bytes one at a time. Every listener takes TLS, so a handshake that never ends must not hold
/// a connection slot longer than a request head that never ends.
async fn slow_handshake(addr: SocketAddr, give_up: Duration) -> Option<Duration> {
    trickle(addr, vec![0x16, 0x03, 0x01, 0x40, 0x00, 0x01], give_up).await
}

/// Sends `head`, then 'a's, one byte every 100 ms; see [`slowloris`].
async fn trickle(addr: SocketAddr, head: Vec<u8>, give_up: Duration) -> Option<Duration> {
    let start = Instant::now();
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let mut bytes = head.into_iter().chain(std::iter::repeat(b'a'));
    let mut buf = [0u8; 1024];
    while start.elapsed() < give_up {
        tokio::select! {
            // Closed (0 or an error) or answered (a 408): either way the slot is free.
            _ = reader.read(&mut buf) => return Some(start.elapsed()),
            () = tokio::time::sleep(Duration::from_millis(100)) => {
                let byte = bytes.next().unwrap_or(b'a');
                if writer.write_all(&[byte]).await.is_err() {
                    return Some(start.elapsed());
                }
            }
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slowloris_and_slow_handshakes_are_cut_off_at_the_header_timeout_while_honest_clients_are_served() {
    let node = TestNode::start_with_extra(
        NodeOptions::default(),
        "\n[limits]\nheader_read_timeout_ms = 1000\nmax_connections_s3 = 64\nmax_connections_web = 64\n",
    )
    .await;
    let _log = node.log_on_panic();
    let give_up = Duration::from_secs(8);
    let mut slow = Vec::new();
    for addr in [node.s3_addr, node.web_addr] {
        for _ in 0..16 {
            slow.push((addr, tokio::spawn(slowloris(addr, give_up))));
        }
    }
    for addr in [node.s3_addr, node.web_addr, node.internal_addr] {
        for _ in 0..8 {
            slow.push((addr, tokio::spawn(slow_handshake(addr, give_up))));
        }
    }
    // Meanwhile honest clients are served by both listeners, at once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let client = node.client();
    ok(client.list_buckets().send().await, "ListBuckets during slowloris");
    let health = http_client().get(format!("{}/healthz", node.web_url())).send().await.expect("healthz");
    assert_eq!(health.status().as_u16(), 200, "web during slowloris");
    assert!(started.elapsed() < Duration::from_secs(1), "honest requests waited {:?}", started.elapsed());

    for (addr, task) in slow {
        let closed = task.await.expect("slow client task");
        let closed =
            closed.unwrap_or_else(|| panic!("a slowloris connection to {addr} was still open after {give_up:?}"));
        assert!(
            closed >= Duration::from_millis(900) && closed < Duration::from_secs(4),
            "slowloris connection to {addr} closed after {closed:?}, expected about the 1 s header timeout"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_the_connection_cap_a_client_waits_for_a_slot_and_gets_one() {
    // The harness never touches the S3 listener, so its four slots are the slow clients'.
    let node = TestNode::start_with_extra(
        NodeOptions::default(),
        "\n[limits]\nheader_read_timeout_ms = 1500\nmax_connections_s3 = 4\n",
    )
    .await;
    let _log = node.log_on_panic();
    let addr = node.s3_addr;
    let started = Instant::now();
    let slow: Vec<_> = (0..4).map(|_| tokio::spawn(slowloris(addr, Duration::from_secs(10)))).collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Any S3 answer will do (anonymous: AccessDenied): it shows the connection was served.
    let status = http_client().get(format!("http://{addr}/")).send().await.expect("GET / on S3").status();
    let served_at = started.elapsed();
    let mut first_close = Duration::MAX;
    for task in slow {
        let closed = task.await.expect("slow client task").expect("a slow client was never closed");
        first_close = first_close.min(closed);
    }
    eprintln!("S3 answered {status} after {served_at:?}; first slow connection closed after {first_close:?}");
    assert!(
        served_at >= first_close,
        "the fifth connection was served ({served_at:?}) before any of the four slow ones was closed ({first_close:?}): no cap"
    );
    assert!(served_at < Duration::from_secs(5), "the client waited {served_at:?} for a slot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_body_is_closed_after_the_idle_timeout() {
    let node = TestNode::start_with_extra(NodeOptions::default(), "\n[limits]\nidle_timeout_ms = 1000\n").await;
    let _log = node.log_on_panic();
    let addr = node.internal_addr;
    // Correctly signed for this node, so the body is read; 10 of its 1000 bytes ever come.
    let body = vec![0u8; 1000];
    let path = "/internal/v1/raft/append";
    let headers = sign_v2(SINGLE_SECRET, SINGLE_CLUSTER, 1, "POST", path, &body, nonce(4));
    let extra: String = headers.iter().map(|(n, v)| format!("{n}: {v}\r\n")).collect();
    let mut stream = internal_connect(addr, SINGLE_CLUSTER, REGION).await;
    let head = format!("POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: 1000\r\n{extra}\r\n");
    stream.write_all(head.as_bytes()).await.expect("write head");
    stream.write_all(&body[..10]).await.expect("write some body");
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(6), stream.read(&mut buf)).await;
    let waited = started.elapsed();
    match read {
        Ok(Ok(0) | Err(_)) => {}
        Ok(Ok(n)) => panic!("expected the connection closed, got {:?}", String::from_utf8_lossy(&buf[..n])),
        Err(_) => panic!("a stalled body kept its connection open for {waited:?}"),
    }
    assert!(waited >= Duration::from_millis(900), "closed after {waited:?}, before the idle timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_download_the_client_does_not_read_is_closed_after_the_idle_timeout() {
    let node = TestNode::start_with_extra(NodeOptions::default(), "\n[limits]\nidle_timeout_ms = 1000\n").await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "slowread").await;
    const SIZE: usize = 64 * MIB;
    put(&client, &bucket, "big", &random_bytes(7, SIZE)).await;
    let url = client
        .get_object()
        .bucket(&bucket)
        .key("big")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).expect("presign config"))
        .await
        .expect("presign")
        .uri()
        .to_owned();
    let path = url.split_once("://").and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_owned())).expect("path");
    let mut stream = TcpStream::connect(node.s3_addr).await.expect("connect");
    let head = format!("GET {path} HTTP/1.1\r\nhost: {}\r\n\r\n", node.s3_addr);
    stream.write_all(head.as_bytes()).await.expect("write request");
    // Read nothing until the socket buffers are full and the node has waited the idle timeout
    // for us; this wait is the attack, not a guess at timing.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut got = 0usize;
    let mut buf = vec![0u8; MIB];
    let deadline = Instant::now() + Duration::from_secs(20);
    // Bounded: at most the response plus its head, or the deadline.
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => got += n,
            Err(_) => panic!("the connection neither sent nor closed for 5 s after {got} bytes"),
        }
    }
    assert!(got > 0, "the node sent nothing");
    assert!(got < SIZE, "the whole {SIZE}-byte response arrived ({got} bytes): the unread download was not cut off");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_servers_own_silence_is_not_idle() {
    let node = TestNode::start_with_extra(NodeOptions::default(), "\n[limits]\nidle_timeout_ms = 1000\n").await;
    let _log = node.log_on_panic();
    let client = node.client();
    let bucket = create_bucket(&client, "silence").await;
    let start = harness::events::page(&node, "limit=1000").await.next;
    // An event stream with nothing to say for more than the idle timeout stays open...
    let mut stream = harness::events::SseStream::open(&node, Some(&start), None).await;
    match stream.next(Duration::from_millis(2500)).await {
        Err(e) if e.starts_with("no SSE event") => {}
        other => panic!("the quiet event stream ended or broke: {other:?}"),
    }
    // ...and a long poll (the handler waits 3 s) is answered.
    let started = Instant::now();
    let (status, body) = harness::events::get_json(&node, &format!("after={start}&wait_secs=3")).await;
    assert_eq!(status, 200, "long poll: {body}");
    eprintln!("long poll answered after {:?}", started.elapsed());
    // The stream still delivers.
    put(&client, &bucket, "k", b"data").await;
    let event = stream.next_event(Duration::from_secs(10)).await;
    assert_eq!(event.key(), "k");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn internal_requests_are_good_once_for_one_node_of_one_cluster() {
    let cluster = TestCluster::start().await;
    // TLS lets a node of the cluster in; the signature decides about each request.
    let http = internal_http(CLUSTER_NAME, REGIONS[2].0);
    let path = blob_path();
    let (a, b) = (cluster.node(0).internal_addr, cluster.node(1).internal_addr);

    // Made for node A (id 1): accepted by A (404: the blob is not held there).
    let captured = sign_v2(CLUSTER_SECRET, CLUSTER_NAME, id_of(0), "GET", &path, b"", nonce(10));
    assert_eq!(get_with(&http, a, &path, &captured).await, 404, "the signed request, first time, to A");
    // The same bytes again, to A: a replay.
    assert_eq!(get_with(&http, a, &path, &captured).await, 401, "the request replayed to A");
    // Captured for A, replayed to B (which never saw it): not signed for B.
    let for_a = sign_v2(CLUSTER_SECRET, CLUSTER_NAME, id_of(0), "GET", &path, b"", nonce(11));
    assert_eq!(get_with(&http, b, &path, &for_a).await, 401, "A's request replayed to B");
    assert_eq!(get_with(&http, a, &path, &for_a).await, 404, "and it was a good request for A");
    // Right secret, right node, another cluster's name.
    let other = sign_v2(CLUSTER_SECRET, "another-cluster", id_of(1), "GET", &path, b"", nonce(12));
    assert_eq!(get_with(&http, b, &path, &other).await, 401, "signed for another cluster");
    // The previous release's signature, with legacy_signatures off.
    assert_eq!(get_with(&http, b, &path, &sign_v1(CLUSTER_SECRET, "GET", &path, b"")).await, 401, "v1 signature");
    // Each node takes requests made for it.
    for i in 0..3 {
        let own = sign_v2(CLUSTER_SECRET, CLUSTER_NAME, id_of(i), "GET", &path, b"", nonce(20 + i as u64));
        assert_eq!(get_with(&http, cluster.node(i).internal_addr, &path, &own).await, 404, "node {i}, own request");
    }
    // And the cluster still works: its nodes sign for each other.
    let bucket = create_bucket(&cluster.node(1).client(), "replay").await;
    ok(cluster.node(2).client().head_bucket().bucket(&bucket).send().await, "HeadBucket on another node");
}

/// The HTTP/2 client connection preface (RFC 9113, section 3.4) and an empty SETTINGS frame.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// What the server sends first after `H2_PREFACE` (until it closes or 3 s pass).
async fn answer_to_h2_preface<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(stream: &mut S) -> Vec<u8> {
    stream.write_all(H2_PREFACE).await.expect("write the preface");
    let mut buf = vec![0u8; 1024];
    match tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buf)).await {
        Ok(Ok(n)) => buf[..n].to_vec(),
        _ => Vec::new(),
    }
}

/// An HTTP/2 server's first frame: SETTINGS (type 4) on stream 0.
fn is_h2_settings(bytes: &[u8]) -> bool {
    bytes.len() >= 9 && bytes[3] == 0x04 && bytes[5..9] == [0, 0, 0, 0]
}

/// HTTP/2 serves calls between nodes (they share one connection per peer), and only there: on
/// the internal listener, to a client that chose it by ALPN. A client sending the HTTP/2 preface
/// without that choice (plain HTTP to the S3 listener, or TLS that settled on HTTP/1.1) gets an
/// HTTP/1.1 refusal, and the S3 listener never agrees to HTTP/2 at all: its attack surface (many
/// streams per connection, their resets, HPACK) stays behind the peers' certificate check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_is_spoken_only_on_the_internal_listener_to_clients_that_chose_it() {
    let node = shared_node().await;

    let mut plain = TcpStream::connect(node.s3_addr).await.expect("connect to S3");
    let answer = answer_to_h2_preface(&mut plain).await;
    assert!(!is_h2_settings(&answer), "plain S3 spoke HTTP/2: {answer:?}");

    let mut http1 = internal_connect(node.internal_addr, SINGLE_CLUSTER, REGION).await;
    assert_eq!(http1.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let answer = answer_to_h2_preface(&mut http1).await;
    assert!(!is_h2_settings(&answer), "an HTTP/1.1 connection switched to HTTP/2: {answer:?}");

    let mut wants_h2 = harness::internal_tls::node_tls(SINGLE_CLUSTER, REGION);
    wants_h2.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let mut h2 = harness::internal_tls::connect_with(node.internal_addr, wants_h2.clone())
        .await
        .expect("TLS to the internal listener");
    assert_eq!(h2.get_ref().1.alpn_protocol(), Some(&b"h2"[..]), "the internal listener offers HTTP/2");
    let answer = answer_to_h2_preface(&mut h2).await;
    assert!(is_h2_settings(&answer), "no HTTP/2 SETTINGS from the internal listener: {answer:?}");

    let s3 = harness::internal_tls::connect_with(node.s3_addr, wants_h2).await.expect("TLS to the S3 listener");
    assert_eq!(s3.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]), "the S3 listener agreed to HTTP/2");
}
