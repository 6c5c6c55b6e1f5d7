//! Every other region's node: its internal address answers, a mutual-TLS handshake with this
//! node's certificate succeeds (what Raft and blob pulls will need), and its clock agrees with
//! ours. All peers at once, each step bounded, so a dead region costs seconds, not minutes.

use super::probe::{self, Unreachable};
use super::{Finding, Host, clock};
use crate::config::{InternalTls, RegionConfig};

/// `peer.NAME` and, for a reachable peer, `clock.NAME`, per other region in config order.
pub(super) async fn check(host: &Host<'_>) -> Vec<Finding> {
    let peers = host.config.region.iter().filter(|r| r.name != host.region.name);
    let checks = peers.map(|peer| async move {
        let (finding, reachable) = reach(host, peer).await;
        let mut findings = vec![finding];
        if reachable {
            findings.push(clock::check(host, peer).await);
        }
        findings
    });
    futures::future::join_all(checks).await.into_iter().flatten().collect()
}

/// Connects to the peer's internal address and shakes hands with mutual TLS: the finding, and
/// whether the peer was reachable at all (then its clock is worth measuring).
async fn reach(host: &Host<'_>, peer: &RegionConfig) -> (Finding, bool) {
    let check = format!("peer.{}", peer.name);
    let addr = &peer.internal;
    let tcp = match probe::resolve(addr).await {
        Ok(socket) => probe::connect(socket).await,
        Err(e) => Err(Unreachable::Other(e)),
    };
    let tcp = match tcp {
        Ok(tcp) => tcp,
        // Nothing listening is what a peer not started yet looks like: this node starts without
        // it (Raft needs a majority, not everyone), so a first node's doctor does not fail on it.
        Err(Unreachable::Refused(e)) => {
            let fix = format!("start {}'s node (the cluster needs a majority of its regions up)", peer.name);
            return (Finding::warn(check, format!("{addr}: {e}"), fix), false);
        }
        Err(Unreachable::Other(e)) => {
            let fix = format!(
                "check {}'s host is up and TCP {addr} is open from this host (the internal port faces the other regions only)",
                peer.name
            );
            return (Finding::fail(check, format!("{addr}: {e}"), fix), false);
        }
    };
    let Some(tls) = host.client_tls() else {
        return (
            Finding::fail(
                check,
                format!("{addr} answers; mutual TLS not tried: the node certificate or CA does not load"),
                "see the certificate checks",
            ),
            true,
        );
    };
    let finding = match probe::handshake(tcp, tls, probe::host_of(addr)).await {
        Ok(_) => Finding::ok(check, format!("{addr} answers; mutual TLS handshake succeeded")),
        Err(e) if host.config.tls().internal == InternalTls::AcceptPlaintext => Finding::warn(
            check,
            format!("{addr} answers, but mutual TLS failed: {e}"),
            "fine while [tls] internal = \"accept-plaintext\" and the rolling upgrade runs; not after",
        ),
        Err(e) => Finding::fail(
            check,
            format!("{addr} answers, but mutual TLS failed: {e}"),
            format!(
                "both certificates must come from the same cluster CA and name their region and host (`meridian doctor` on {}'s host says which)",
                peer.name
            ),
        ),
    };
    (finding, true)
}
