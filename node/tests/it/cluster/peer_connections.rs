//! Calls between nodes keep one connection per peer. Over HTTP/1.1 a call that overlapped
//! another to the same peer (a forwarded write beside a lease renewal) needed a second
//! connection, and a spare one idle for the client pool's 4 s was gone, so now and then a write
//! paid a new TLS handshake: one round trip more, which across regions 200 ms apart made one write
//! in 50 through a follower cost three round trips instead of two (BENCHMARKS.md, "Regions 100 ms
//! apart"). Calls now travel over HTTP/2 (negotiated by ALPN) and share the one connection, so
//! the leader's internal listener opens no connection at all across an idle period longer than
//! the pool's idle timeout followed by concurrent writes through both followers, and none over
//! HTTP/1.1 (which only blob transfers use; these objects travel inline).

use crate::harness;

use std::time::Duration;

use harness::cluster::TestCluster;
use harness::*;

/// Longer than `PeerClient`'s pool idle timeout (4 s): over HTTP/1.1 the spare connections were
/// gone after it.
const IDLE: Duration = Duration::from_millis(5500);

/// Connections the node's internal listener served so far: (HTTP/1.1, HTTP/2).
async fn internal_connections(node: &harness::TestNode) -> (u64, u64) {
    let text = node.metrics_text().await;
    let count = |protocol: &str| {
        let series = format!("meridian_connections_opened_total{{listener=\"internal\",protocol=\"{protocol}\"}} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&series))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {series} in /metrics:\n{text}"))
    };
    (count("http1"), count("h2"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_to_the_leader_share_one_connection_per_peer_across_idle_periods() {
    let cluster = TestCluster::start().await;
    let (leader, [follower, other]) = cluster.roles().await;
    let clients = [cluster.node(follower).client(), cluster.node(other).client()];
    let bucket = create_bucket(&clients[0], "peer-conns").await;
    let body = random_bytes(11, 4096);
    // Warm-up: every follower has forwarded a write and holds its lease.
    for (i, client) in clients.iter().enumerate() {
        put(client, &bucket, &format!("warm-up/{i}"), &body).await;
    }
    let (http1_before, h2_before) = internal_connections(cluster.node(leader)).await;
    assert!(h2_before >= 2, "each follower calls the leader over HTTP/2: {h2_before} connection(s)");

    tokio::time::sleep(IDLE).await;
    // Concurrent writes through both followers: their forwards overlap each other and the
    // followers' lease renewals.
    let writes = clients.iter().enumerate().flat_map(|(c, client)| {
        let (bucket, body) = (&bucket, &body);
        (0..8).map(move |i| async move { put(client, bucket, &format!("after-idle/{c}/{i}"), body).await })
    });
    futures::future::join_all(writes).await;

    let (http1_after, h2_after) = internal_connections(cluster.node(leader)).await;
    assert_eq!(
        (http1_after, h2_after),
        (http1_before, h2_before),
        "the leader's internal listener opened connections across an idle period and concurrent forwards \
         (HTTP/1.1, HTTP/2): each one cost a caller a TLS handshake"
    );
    assert_eq!(http1_after, 0, "no call to the leader fell back to HTTP/1.1");
}
