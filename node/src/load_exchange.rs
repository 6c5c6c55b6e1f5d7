//! The load exchange: once per `[geo] load_interval_ms`, this node samples its own load and
//! polls every peer's (`GET /internal/v1/load`, signed), and writes what it learns into the
//! [`LoadBoard`] the routing API reads. A peer that does not answer within the interval is
//! marked down at once, so it stops being routed to within about one interval of dying.

use std::sync::Arc;
use std::time::{Duration, Instant};

use meridian_geo::{LoadBoard, NodeLoad};
use meridian_raft::network::{LOAD_PATH, PeerClient};

use crate::load::LoadMeter;
use crate::shutdown::Shutdown;

/// A peer to poll.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    /// Its Raft node id.
    pub(crate) id: u64,
    /// Its internal listener.
    pub(crate) internal: String,
}

/// Samples and polls until shutdown.
pub(crate) async fn run(
    self_id: u64,
    meter: Arc<LoadMeter>,
    board: Arc<LoadBoard>,
    peers: Vec<Peer>,
    client: PeerClient,
    interval: Duration,
    shutdown: Shutdown,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = shutdown.wait() => return,
        }
        meter.tick();
        board.record(self_id, meter.current(), Instant::now());
        let polls = peers.iter().map(|peer| {
            let client = &client;
            async move { (peer, client.get::<NodeLoad>(peer.id, &peer.internal, LOAD_PATH, interval).await) }
        });
        for (peer, result) in futures::future::join_all(polls).await {
            match result {
                Ok(load) => board.record(peer.id, load, Instant::now()),
                Err(e) => board.record_failure(peer.id, e.to_string()),
            }
        }
    }
}
