//! The internal protocol's version, and what each peer said of its own.
//!
//! Every internal request and reply carries this node's protocol version, the newest record
//! format it reads and its release, in headers ([`PROTOCOL_HEADER`], [`FORMATS_HEADER`],
//! [`RELEASE_HEADER`]). A peer that sends none is of release a01dacd: protocol 0, format 0.
//! The headers are not part of the request signature (`signing`): release a01dacd verifies
//! signatures over method, path, time, nonce and body only, and a header it does not know is
//! ignored, so it keeps accepting this release's requests. They cannot be forged to any gain
//! either: only cluster members reach the listener (mutual TLS, signed requests), and a wrong
//! value makes a node refuse the call or delay the format raise, nothing more.
//!
//! A node refuses a peer whose protocol it does not speak (HTTP 426 on the server side, an
//! error on the client side), with a message naming both versions and what to do, logged once
//! per peer per [`LOG_EVERY`] and counted ([`refusals`]).
//!
//! Two switches exist for tests only (environment variables, read once at start):
//! `MERIDIAN_TESTING_PROTOCOL=N` makes the node speak protocol N alone (a deliberately
//! incompatible node), and `MERIDIAN_TESTING_PREVIOUS_RELEASE=1` makes it behave as release
//! a01dacd on the wire and on disk: no headers, no checks, format 0 written, no format raise.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crate::codec::CURRENT_FORMAT;
use crate::node_id::NodeId;

/// Header with the sender's internal protocol version (absent: 0, release a01dacd).
pub const PROTOCOL_HEADER: &str = "x-meridian-protocol";
/// Header with the newest record format the sender reads (absent: 0).
pub const FORMATS_HEADER: &str = "x-meridian-formats";
/// Header with the sender's release (crate version `+` git commit).
pub const RELEASE_HEADER: &str = "x-meridian-release";
/// Header with the sender's node id (for the receiver's logs: the signature names the
/// destination, not the sender).
pub const NODE_HEADER: &str = "x-meridian-node";

/// The protocol this release speaks: 1 adds the version headers to protocol 0 (release
/// a01dacd), whose requests and replies are otherwise the same.
pub const PROTOCOL: u32 = 1;
/// The oldest protocol this release still speaks (a rolling upgrade from a01dacd).
pub const MIN_PROTOCOL: u32 = 0;

/// This node's release: the crate version and the git commit the binary was built from, set
/// once at start by the node ([`set_release`]; its `build.rs` reads the commit).
pub fn release() -> &'static str {
    RELEASE.get().map_or(concat!(env!("CARGO_PKG_VERSION"), "+unknown"), String::as_str)
}

static RELEASE: OnceLock<String> = OnceLock::new();

/// Sets this node's release (once; later calls are ignored).
pub fn set_release(release: &str) {
    let _ = RELEASE.set(release.to_owned());
}

/// How often a refusal of the same peer is logged (each one is counted).
pub const LOG_EVERY: Duration = Duration::from_secs(60);

/// Most peers whose last refusal is remembered for [`LOG_EVERY`].
const MAX_LOGGED_PEERS: usize = 256;

/// What this node speaks on the wire, fixed at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Speaking {
    /// The protocol it sends.
    pub protocol: u32,
    /// The oldest protocol it accepts from peers.
    pub min: u32,
    /// The newest protocol it accepts from peers.
    pub max: u32,
    /// The newest record format it reads (what it advertises; the format raise waits for it).
    pub reads_format: u16,
    /// Behaves as release a01dacd (tests: see the module docs).
    pub previous_release: bool,
}

/// What this node speaks: this release's range, or a testing switch's.
pub fn speaking() -> Speaking {
    static SPEAKING: OnceLock<Speaking> = OnceLock::new();
    *SPEAKING.get_or_init(|| {
        let previous = std::env::var("MERIDIAN_TESTING_PREVIOUS_RELEASE").is_ok_and(|v| v == "1");
        let forced = std::env::var("MERIDIAN_TESTING_PROTOCOL").ok().and_then(|v| v.parse::<u32>().ok());
        let speaking = match (previous, forced) {
            (true, _) => Speaking { protocol: 0, min: 0, max: u32::MAX, reads_format: 0, previous_release: true },
            (false, Some(p)) => {
                Speaking { protocol: p, min: p, max: p, reads_format: CURRENT_FORMAT, previous_release: false }
            }
            (false, None) => Speaking {
                protocol: PROTOCOL,
                min: MIN_PROTOCOL,
                max: PROTOCOL,
                reads_format: CURRENT_FORMAT,
                previous_release: false,
            },
        };
        if previous || forced.is_some() {
            tracing::warn!(?speaking, "TESTING switch: this node speaks a protocol other than its release's");
        }
        speaking
    })
}

/// The headers this node sends with every internal request and reply (none in
/// previous-release mode, as release a01dacd sent none).
pub fn headers(node: NodeId) -> Vec<(&'static str, String)> {
    let s = speaking();
    if s.previous_release {
        return Vec::new();
    }
    vec![
        (PROTOCOL_HEADER, s.protocol.to_string()),
        (FORMATS_HEADER, s.reads_format.to_string()),
        (RELEASE_HEADER, release().to_owned()),
        (NODE_HEADER, node.to_string()),
    ]
}

/// What a peer said of itself in its headers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PeerVersion {
    /// Its protocol (0 when it sent none).
    pub protocol: u32,
    /// The newest record format it reads (0 when it sent none).
    pub reads_format: u16,
    /// Its release, when it said (release a01dacd does not).
    pub release: Option<String>,
}

impl PeerVersion {
    /// Reads a peer's headers through `header` (absent or unparsable: release a01dacd's values).
    pub fn from_headers<'a>(header: impl Fn(&str) -> Option<&'a str>) -> Self {
        Self {
            protocol: header(PROTOCOL_HEADER).and_then(|v| v.trim().parse().ok()).unwrap_or(0),
            reads_format: header(FORMATS_HEADER).and_then(|v| v.trim().parse().ok()).unwrap_or(0),
            release: header(RELEASE_HEADER).map(|v| v.chars().take(64).collect()),
        }
    }

    /// Why this node cannot talk with a peer of this version, if it cannot: a message naming
    /// both versions and what to do. `peer` names the peer (its node id or address).
    pub fn incompatibility(&self, peer: &str) -> Option<String> {
        let s = speaking();
        if s.previous_release || (s.min..=s.max).contains(&self.protocol) {
            return None;
        }
        let theirs = self.release.as_deref().unwrap_or("a01dacd or older");
        let advice = if self.protocol < s.min {
            "upgrade that node to this release (or one speaking a protocol in this range)"
        } else {
            "upgrade this node, or roll that node back to a release speaking a protocol in this range"
        };
        Some(format!(
            "peer {peer} speaks internal protocol {} (release {theirs}); this node (release {}) speaks \
             protocols {} to {}: {advice}; see docs/upgrade.md",
            self.protocol,
            release(),
            s.min,
            s.max
        ))
    }
}

/// Refusals of peers whose protocol this node does not speak, since start.
pub fn refusals() -> u64 {
    REFUSALS.load(Ordering::Relaxed)
}

static REFUSALS: AtomicU64 = AtomicU64::new(0);

/// Counts a refusal and logs it, once per peer per [`LOG_EVERY`]. `side`: whether this node
/// refused a request (`server`) or a reply (`client`).
pub fn note_refusal(peer: &str, version: &PeerVersion, side: &'static str, message: &str) {
    static LOGGED: OnceLock<Mutex<BTreeMap<String, Instant>>> = OnceLock::new();
    REFUSALS.fetch_add(1, Ordering::Relaxed);
    let mut logged = LOGGED.get_or_init(Default::default).lock().unwrap_or_else(PoisonError::into_inner);
    let now = Instant::now();
    let key = format!("{side} {peer}");
    if logged.get(&key).is_some_and(|at| now.duration_since(*at) < LOG_EVERY) {
        return;
    }
    // Bounded: an entry per peer and side refused within the interval, and at most
    // `MAX_LOGGED_PEERS` of them (the peer name is what the caller says; past the bound, a
    // refusal is counted and logged every time rather than remembered).
    logged.retain(|_, at| now.duration_since(*at) < LOG_EVERY);
    if logged.len() < MAX_LOGGED_PEERS {
        logged.insert(key, now);
    }
    let s = speaking();
    tracing::error!(
        peer,
        side,
        peer_protocol = version.protocol,
        peer_release = version.release.as_deref().unwrap_or("a01dacd or older"),
        protocol = s.protocol,
        min_protocol = s.min,
        max_protocol = s.max,
        release = release(),
        refusals = refusals(),
        "{message}"
    );
}

/// The versions peers last reported, by node id, and when: the leader raises the cluster's
/// format once every member reported that it reads the new one, recently.
#[derive(Debug, Default)]
pub struct PeerVersions {
    /// Node id to (what it said, when).
    seen: Mutex<BTreeMap<NodeId, (PeerVersion, Instant)>>,
}

impl PeerVersions {
    /// Records what node `node` said in a reply.
    pub fn record(&self, node: NodeId, version: PeerVersion) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.insert(node, (version, Instant::now()));
    }

    /// What `node` said, if it answered within `within`.
    pub fn recent(&self, node: NodeId, within: Duration) -> Option<PeerVersion> {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.get(&node).filter(|(_, at)| at.elapsed() <= within).map(|(v, _)| v.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_without_headers_is_release_a01dacd_and_is_spoken_to() {
        let old = PeerVersion::from_headers(|_| None);
        assert_eq!(old, PeerVersion { protocol: 0, reads_format: 0, release: None });
        assert_eq!(old.incompatibility("2"), None);
    }

    #[test]
    fn a_peer_of_an_unknown_protocol_is_refused_with_both_versions_and_what_to_do() {
        let newer = PeerVersion::from_headers(|h| match h {
            PROTOCOL_HEADER => Some("99"),
            RELEASE_HEADER => Some("9.9.9+future"),
            _ => None,
        });
        let message = newer.incompatibility("node 3").expect("refused");
        assert!(message.contains("protocol 99") && message.contains("9.9.9+future"), "{message}");
        assert!(message.contains(release()) && message.contains("protocols 0 to 1"), "{message}");
        assert!(message.contains("upgrade this node"), "{message}");
        // Garbage is release a01dacd's (absent), never a panic; a huge release is cut.
        let garbage = PeerVersion::from_headers(|h| match h {
            PROTOCOL_HEADER => Some("-1"),
            FORMATS_HEADER => Some("x"),
            RELEASE_HEADER => Some("r"),
            _ => None,
        });
        assert_eq!((garbage.protocol, garbage.reads_format), (0, 0));
        let long = "v".repeat(10_000);
        assert_eq!(PeerVersion::from_headers(|_| Some(long.as_str())).release.map(|r| r.len()), Some(64));
    }
}
