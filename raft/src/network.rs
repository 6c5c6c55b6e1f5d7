//! Raft RPC and leader calls over the internal listener: bincode bodies, signed requests, one
//! shared HTTP client.
//!
//! The server side lives in the node crate (it owns the listener); the paths and the body
//! encoding are defined here so both sides agree.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec;
use crate::commit_notice::{Acknowledged, NoticeRoute, Notices};
use crate::error::LeaderError;
use crate::lease::Leases;
use crate::node_id::{NodeId, RegionNode};
use crate::protocol::{self, PeerVersion, PeerVersions};
use crate::signing::RequestSigner;
use crate::types::TypeConfig;

/// Path of AppendEntries.
pub const APPEND_PATH: &str = "/internal/v1/raft/append";
/// Path of RequestVote.
pub const VOTE_PATH: &str = "/internal/v1/raft/vote";
/// Path of InstallSnapshot (one chunk per call).
pub const SNAPSHOT_PATH: &str = "/internal/v1/raft/snapshot";
/// Path where the leader takes commands forwarded by followers.
pub const PROPOSE_PATH: &str = "/internal/v1/propose";
/// Path where the leader answers read-index requests.
pub const READ_INDEX_PATH: &str = "/internal/v1/read-index";
/// Path where the leader grants read leases (body: a [`crate::LeaseRequest`]).
pub const LEASE_PATH: &str = "/internal/v1/lease";

/// Path where a node reports its load and health (GET, bincode `meridian_geo::NodeLoad` reply; the
/// type lives with the geo routing that reads it).
pub const LOAD_PATH: &str = "/internal/v1/load";

/// Path prefix where a node serves the blobs it holds (`{BLOB_PATH}/{id}`, GET, optional Range).
pub const BLOB_PATH: &str = "/internal/v1/blobs";

/// Largest body the internal listener accepts: the server refuses more (413), and the client
/// never sends more (see [`MAX_APPEND_BODY`]).
pub const MAX_RPC_BODY: usize = 64 * 1024 * 1024;

/// Largest AppendEntries body sent with more than one entry. openraft batches up to 300 entries
/// per call, and one entry can carry many small objects inline, so a follower catching up after
/// some downtime could be sent tens of MiB at once; a larger body is split (openraft retries
/// with fewer entries). The size is set by time, not memory: openraft 0.9 gives every
/// AppendEntries one heartbeat interval (300 ms by default) to complete, round trip included,
/// and a call that times out is retried as it was, so a body that cannot cross a WAN link in
/// that time would stall its follower for good. A single entry is always sent; the proposal
/// batcher keeps entries below 512 KiB of object bytes (`MAX_BATCH_BYTES` in `store::propose`).
pub const MAX_APPEND_BODY: usize = 1024 * 1024;

/// Encodes an RPC body or reply.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, crate::StoreError> {
    codec::encode_any(value)
}

/// Decodes an RPC body or reply (untrusted bytes: the codec bounds what decoding may allocate).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, crate::StoreError> {
    codec::decode_any(bytes)
}

/// Why a call to a peer failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The peer could not be reached (connect refused, timed out).
    #[error("peer unreachable: {0}")]
    Unreachable(#[source] reqwest::Error),
    /// The request was sent but failed on the way or the peer refused it.
    #[error("peer call failed: {0}")]
    Failed(String),
    /// The peer speaks an internal protocol this node does not (or refused this node's): the
    /// message names both versions and what to do.
    #[error("incompatible peer: {0}")]
    Incompatible(String),
}

/// What the leader's side of a call answers (the propose, read-index, lease and membership
/// routes): the value, or a [`LeaderError`] as its text.
///
/// The previous release sends and expects exactly this shape, bincode `Result<T, String>`, so it
/// stays the wire format: a typed error on the wire would be a new variant an older node cannot
/// decode. Each side converts at its edge: the server with [`leader_reply`], the caller with
/// [`PeerClient::call_leader`] (which reads old and new messages alike, see
/// `LeaderError::from(String)`).
pub type LeaderReply<T> = Result<T, String>;

/// The wire form of a leader's answer (see [`LeaderReply`]).
pub fn leader_reply<T>(result: Result<T, LeaderError>) -> LeaderReply<T> {
    result.map_err(|e| e.to_string())
}

/// Why a call to the leader's side of a route failed: the call itself, or the leader's answer.
#[derive(Debug, thiserror::Error)]
pub enum LeaderCallError {
    /// The request did not get an answer (unreachable, refused by the listener, undecodable).
    #[error(transparent)]
    Call(#[from] CallError),
    /// The node answered, with an error.
    #[error(transparent)]
    Leader(#[from] LeaderError),
}

impl LeaderCallError {
    /// Whether the leader certainly did not act on the request, so that sending it again cannot
    /// make it take effect twice: the connection was never made, or the leader answered that
    /// it does not lead or refused. A call that failed after it was sent (reset, timeout, an
    /// answer cut short or refused, an answer this node judged incompatible only once it came
    /// back) or a leader whose Raft stopped may have appended the command.
    pub(crate) fn left_no_effect(&self) -> bool {
        match self {
            Self::Call(CallError::Unreachable(e)) => e.is_connect(),
            Self::Call(CallError::Failed(_) | CallError::Incompatible(_)) => false,
            Self::Leader(LeaderError::NotLeader { .. } | LeaderError::Refused(_)) => true,
            Self::Leader(LeaderError::Timeout | LeaderError::Fatal(_)) => false,
        }
    }
}

/// How calls reach other nodes' internal listeners.
#[derive(Debug, Clone)]
pub enum PeerTransport {
    /// `https://`, with this rustls configuration: the cluster CA as the only root and this
    /// node's certificate as the client certificate (mutual TLS; the peer refuses anything else).
    Tls(Box<rustls::ClientConfig>),
    /// `http://`: only while `[tls] internal = "accept-plaintext"` (a rolling upgrade from a
    /// release without TLS, whose nodes cannot answer TLS yet).
    Plain,
}

impl PeerTransport {
    /// The URL scheme calls use.
    fn scheme(&self) -> &'static str {
        match self {
            Self::Tls(_) => "https",
            Self::Plain => "http",
        }
    }
}

/// How often a call connection with nothing arriving is probed with an HTTP/2 PING.
const PING_EVERY: Duration = Duration::from_secs(2);

/// How long a PING may go unanswered before its connection is given up. A peer that vanished
/// without closing (its host gone, a network that drops packets) would otherwise hold every
/// later call to it on a dead connection until the kernel gives up on it, minutes later; with
/// HTTP/1.1 each call that timed out took its connection with it. Well above any round trip
/// between regions, and above the stalls of a loaded machine.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// Signed calls to other nodes' internal listeners.
///
/// Calls go over HTTP/2 where the peer offers it (ALPN; a node of the previous release offers
/// HTTP/1.1 only, and gets it): every call to one peer shares one connection. Over HTTP/1.1 a
/// call that overlapped another to the same peer (a forwarded write beside a lease renewal, a
/// heartbeat beside an AppendEntries) needed a second connection, and one idle for the pool's 4 s
/// was gone, so now and then a write paid a TLS handshake, one round trip more: through a
/// follower 200 ms from the leader, one write in 50 took 3 round trips instead of 2
/// (BENCHMARKS.md, "Regions 100 ms apart"). Blobs keep HTTP/1.1, a connection each (see
/// the `bulk` field).
#[derive(Clone)]
pub struct PeerClient {
    /// Calls: Raft RPC, forwarded writes, leases, read indexes, loads; HTTP/2 when offered.
    http: reqwest::Client,
    /// Blob transfers: HTTP/1.1 only, so that a large blob neither queues the calls sharing the
    /// HTTP/2 connection behind its bytes nor shares one TCP window with the other streams of a
    /// parallel pull, whose point is one window each over a long round trip.
    bulk: reqwest::Client,
    signer: Arc<RequestSigner>,
    /// `https` or `http` (see [`PeerTransport`]).
    scheme: &'static str,
    /// This node's id, sent in [`crate::protocol::NODE_HEADER`] (0: the CLI, not a node).
    from: NodeId,
    /// What each peer said of its protocol, format and release in its last reply.
    versions: Arc<PeerVersions>,
}

impl PeerClient {
    /// A client signing with the cluster secret and dialing peers over `transport`. Fails only
    /// when the HTTP client cannot be built with the TLS configuration (there is no fallback: a
    /// client without it would not be one the peers accept).
    pub fn new(signer: Arc<RequestSigner>, transport: PeerTransport) -> Result<Self, reqwest::Error> {
        Self::from_address(signer, transport, None)
    }

    /// As [`PeerClient::new`], with calls leaving from `source` when given (a node's
    /// `internal_source`), else from the address the operating system picks.
    pub fn from_address(
        signer: Arc<RequestSigner>,
        transport: PeerTransport,
        source: Option<std::net::IpAddr>,
    ) -> Result<Self, reqwest::Error> {
        let scheme = transport.scheme();
        let builder = || {
            reqwest::Client::builder()
                .local_address(source)
                .tcp_nodelay(true)
                // Below the peers' header-read timeout (10 s by default), which also closes idle
                // HTTP/1.1 keep-alive connections: the client lets go first, so it never sends a
                // request on a connection the server is closing at that moment. An HTTP/2
                // connection is in use every heartbeat or lease renewal, so it never gets there.
                .pool_idle_timeout(Duration::from_secs(4))
                .connect_timeout(Duration::from_secs(2))
        };
        let calls = builder()
            .http2_keep_alive_interval(PING_EVERY)
            .http2_keep_alive_timeout(PING_TIMEOUT)
            .http2_keep_alive_while_idle(true);
        let bulk = builder().http1_only();
        let (calls, bulk) = match transport {
            PeerTransport::Tls(config) => {
                let mut for_calls = *config;
                // HTTP/2 first; a peer that offers only HTTP/1.1 (the previous release) or no
                // ALPN at all is called over HTTP/1.1 as before.
                for_calls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
                let mut for_bulk = for_calls.clone();
                for_bulk.alpn_protocols = vec![b"http/1.1".to_vec()];
                (calls.use_preconfigured_tls(for_calls), bulk.use_preconfigured_tls(for_bulk))
            }
            // Plain HTTP (an upgrade from a release without TLS) stays HTTP/1.1: without ALPN
            // the client cannot learn that a peer speaks HTTP/2.
            PeerTransport::Plain => (calls, bulk),
        };
        Ok(Self { http: calls.build()?, bulk: bulk.build()?, signer, scheme, from: 0, versions: Arc::default() })
    }

    /// The same client, sending `node` as the caller in its protocol headers.
    #[must_use]
    pub fn from_node(mut self, node: NodeId) -> Self {
        self.from = node;
        self
    }

    /// What each peer said of its version in its last reply to this client.
    pub fn versions(&self) -> &Arc<PeerVersions> {
        &self.versions
    }

    /// Adds the signature and this node's protocol headers to a request for node `to`.
    fn headers(
        &self,
        mut builder: reqwest::RequestBuilder,
        method: &str,
        path: &str,
        to: NodeId,
        body: &[u8],
    ) -> reqwest::RequestBuilder {
        for (name, value) in self.signer.headers(method, path, to, body) {
            builder = builder.header(name, value);
        }
        for (name, value) in protocol::headers(self.from) {
            builder = builder.header(name, value);
        }
        builder
    }

    /// Records what node `to` said of its version in `response`, and refuses the reply of a
    /// peer whose protocol this node does not speak.
    fn check_reply(&self, to: NodeId, response: &reqwest::Response) -> Result<(), CallError> {
        let headers = response.headers();
        let version = PeerVersion::from_headers(|name| headers.get(name).and_then(|v| v.to_str().ok()));
        let peer = to.to_string();
        if let Some(message) = version.incompatibility(&peer) {
            protocol::note_refusal(&peer, &version, "client", &message);
            return Err(CallError::Incompatible(message));
        }
        self.versions.record(to, version);
        Ok(())
    }

    /// The URL of `path` on the internal listener at `addr`.
    fn url(&self, addr: &str, path: &str) -> String {
        format!("{}://{addr}{path}", self.scheme)
    }

    /// POSTs a bincode body to node `to` at `{scheme}://{addr}{path}` and decodes the bincode reply.
    /// The request is signed for `to` alone: any other node refuses it.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        to: NodeId,
        addr: &str,
        path: &str,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, CallError> {
        let body = encode(request).map_err(|e| CallError::Failed(e.to_string()))?;
        self.call_encoded(to, addr, path, body, timeout).await
    }

    /// [`PeerClient::call`] to a route that answers a [`LeaderReply`]: the leader's error comes
    /// back typed.
    pub async fn call_leader<Req: Serialize, T: DeserializeOwned>(
        &self,
        to: NodeId,
        addr: &str,
        path: &str,
        request: &Req,
        timeout: Duration,
    ) -> Result<T, LeaderCallError> {
        let reply: LeaderReply<T> = self.call(to, addr, path, request, timeout).await?;
        Ok(reply.map_err(LeaderError::from)?)
    }

    /// [`PeerClient::call_leader`], also returning the leader's clock reading from the
    /// [`crate::CLOCK_HEADER`] of its answer, a grant or a refusal alike (both are clock
    /// samples): `None` when absent (a node of an older release). A header that is not a number
    /// fails the call: no reading may be made up. The request carries this node's clock in the
    /// same header, for the leader's own measurement (`follower_clocks`; a leader of the previous
    /// release ignores it).
    pub(crate) async fn call_leader_clocked<Req: Serialize, T: DeserializeOwned>(
        &self,
        to: NodeId,
        addr: &str,
        path: &str,
        request: &Req,
        timeout: Duration,
    ) -> Result<(Result<T, LeaderError>, Option<u64>), CallError> {
        let body = encode(request).map_err(|e| CallError::Failed(e.to_string()))?;
        let builder = self.headers(self.http.post(self.url(addr, path)).timeout(timeout), "POST", path, to, &body);
        // Read last, as close to sending as it gets (see `follower_clocks::ONE_WAY_ALLOWANCE`).
        let builder = builder.header(crate::CLOCK_HEADER, crate::clock_reading_ms());
        let response = Self::timed(to, path, builder.body(body)).await?;
        self.check_reply(to, &response)?;
        let clock =
            match response.headers().get(crate::CLOCK_HEADER) {
                None => None,
                Some(value) => {
                    Some(value.to_str().ok().and_then(|v| v.parse::<u64>().ok()).ok_or_else(|| {
                        CallError::Failed(format!("{} is not a number: {value:?}", crate::CLOCK_HEADER))
                    })?)
                }
            };
        let reply: LeaderReply<T> = Self::read_reply(response).await?;
        Ok((reply.map_err(LeaderError::from), clock))
    }

    /// Like [`PeerClient::call`], with the body already encoded.
    pub async fn call_encoded<Resp: DeserializeOwned>(
        &self,
        to: NodeId,
        addr: &str,
        path: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Resp, CallError> {
        let builder = self.headers(self.http.post(self.url(addr, path)).timeout(timeout), "POST", path, to, &body);
        self.finish(to, path, builder.body(body)).await
    }

    /// GETs `{scheme}://{addr}{path}` of node `to` (signed, no body) and decodes the bincode reply.
    pub async fn get<Resp: DeserializeOwned>(
        &self,
        to: NodeId,
        addr: &str,
        path: &str,
        timeout: Duration,
    ) -> Result<Resp, CallError> {
        let builder = self.headers(self.http.get(self.url(addr, path)).timeout(timeout), "GET", path, to, b"");
        self.finish(to, path, builder).await
    }

    /// Sends a request and decodes its bincode reply; a non-2xx answer is a failure.
    async fn finish<Resp: DeserializeOwned>(
        &self,
        to: NodeId,
        path: &str,
        builder: reqwest::RequestBuilder,
    ) -> Result<Resp, CallError> {
        let response = Self::timed(to, path, builder).await?;
        self.check_reply(to, &response)?;
        Self::read_reply(response).await
    }

    /// [`PeerClient::send`], logging (debug) how long the answer's headers took and over which
    /// HTTP version: a call that took a round trip more than its peers is the trace of a
    /// connection opened for it (a TLS handshake is one more round trip), see "Regions 100 ms
    /// apart" in BENCHMARKS.md.
    async fn timed(to: NodeId, path: &str, builder: reqwest::RequestBuilder) -> Result<reqwest::Response, CallError> {
        let started = std::time::Instant::now();
        let response = Self::send(builder).await;
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match &response {
            Ok(answer) => {
                tracing::debug!(to, path, elapsed_ms, version = ?answer.version(), status = answer.status().as_u16(), "peer call answered");
            }
            Err(error) => tracing::debug!(to, path, elapsed_ms, %error, "peer call failed"),
        }
        response
    }

    /// Sends a request; a failure to get an answer is [`CallError::Unreachable`] when the peer
    /// could not be reached in time.
    async fn send(builder: reqwest::RequestBuilder) -> Result<reqwest::Response, CallError> {
        builder.send().await.map_err(|e| {
            if e.is_connect() || e.is_timeout() { CallError::Unreachable(e) } else { CallError::Failed(e.to_string()) }
        })
    }

    /// Decodes the bincode reply of an answer; a non-2xx answer is a failure.
    async fn read_reply<Resp: DeserializeOwned>(response: reqwest::Response) -> Result<Resp, CallError> {
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| CallError::Failed(e.to_string()))?;
        if !status.is_success() {
            return Err(CallError::Failed(format!("{status}: {}", String::from_utf8_lossy(&bytes))));
        }
        decode(&bytes).map_err(|e| CallError::Failed(e.to_string()))
    }

    /// Streams a blob (or a byte range of it) from node `from` at `addr`.
    pub async fn fetch_blob(
        &self,
        from: NodeId,
        addr: &str,
        blob: &str,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<impl futures::Stream<Item = Result<bytes::Bytes, CallError>> + Send + 'static, CallError> {
        use futures::TryStreamExt as _;
        let path = format!("{BLOB_PATH}/{blob}");
        let mut builder = self.headers(self.bulk.get(self.url(addr, &path)), "GET", &path, from, b"");
        if let Some(range) = range.filter(|r| r.end > r.start) {
            builder = builder.header("range", format!("bytes={}-{}", range.start, range.end - 1));
        }
        let response = Self::send(builder).await?;
        self.check_reply(from, &response)?;
        if !response.status().is_success() {
            return Err(CallError::Failed(format!("blob {blob} from {addr}: {}", response.status())));
        }
        Ok(response.bytes_stream().map_err(|e| CallError::Failed(e.to_string())))
    }

    /// Streams the bytes of `blob` from `range.start` on, from node `from` at `addr`, asking
    /// for `range` only. Returns the offset the stream really starts at: `range.start`
    /// when the holder answered the range (206), 0 when it sent the whole blob (200) as a
    /// holder that ignores ranges would; the caller skips what it did not ask for. Release
    /// a01dacd already answers `Range: bytes=first-last` with 206, so ranged pulls work with
    /// holders of the previous release too; the fallback is for any holder that does not.
    pub async fn fetch_blob_range(
        &self,
        from: NodeId,
        addr: &str,
        blob: &str,
        range: std::ops::Range<u64>,
    ) -> Result<(u64, impl futures::Stream<Item = Result<bytes::Bytes, CallError>> + Send + 'static), CallError> {
        use futures::TryStreamExt as _;
        let path = format!("{BLOB_PATH}/{blob}");
        let mut builder = self.headers(self.bulk.get(self.url(addr, &path)), "GET", &path, from, b"");
        if range.end > range.start {
            builder = builder.header("range", format!("bytes={}-{}", range.start, range.end - 1));
        }
        let response = Self::send(builder).await?;
        self.check_reply(from, &response)?;
        let starts_at = match response.status() {
            reqwest::StatusCode::PARTIAL_CONTENT => range.start,
            reqwest::StatusCode::OK => 0,
            status => return Err(CallError::Failed(format!("blob {blob} from {addr}: {status}"))),
        };
        Ok((starts_at, response.bytes_stream().map_err(|e| CallError::Failed(e.to_string()))))
    }
}

/// Creates a connection per peer for openraft.
#[derive(Clone)]
pub struct HttpNetwork {
    peers: PeerClient,
    /// The visibility gate: caps the commit index sent to followers (see `lease`).
    leases: Arc<Leases>,
    /// See [`PeerConnection::heartbeat_rejected`].
    heartbeat_rejected: Arc<AtomicBool>,
}

impl HttpNetwork {
    /// A network over the given client, announcing commits only as far as `leases` allows, and
    /// raising `heartbeat_rejected` when a follower turns a heartbeat down for its log.
    pub(crate) fn new(peers: PeerClient, leases: Arc<Leases>, heartbeat_rejected: Arc<AtomicBool>) -> Self {
        Self { peers, leases, heartbeat_rejected }
    }
}

/// openraft's handle on one peer.
pub struct PeerConnection {
    peers: PeerClient,
    target: NodeId,
    addr: String,
    /// See [`HttpNetwork`].
    leases: Arc<Leases>,
    /// Raised when this peer answers a heartbeat (an AppendEntries without entries) with a
    /// conflict: its log lacks what the leader believes it holds, as after a region lost its
    /// disk and came back empty with its old id. The heartbeats that confirm leadership run
    /// beside openraft's replication streams, which only learn of a conflict from a request of
    /// their own; the leader's heartbeat task sees this flag and sends one down the streams
    /// (see `store::tasks::run_heartbeat`), so the stream searches again and sends a snapshot.
    heartbeat_rejected: Arc<AtomicBool>,
    /// What the peer last acknowledged on this connection: whether a commit notice may travel
    /// beside it (see `commit_notice`).
    acknowledged: Acknowledged,
    /// The peer's commit notices beside this connection; started with the first one.
    notices: Option<Notices>,
}

impl PeerConnection {
    async fn rpc<Req, Resp, E>(
        &self,
        path: &str,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, RegionNode, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let body = encode(request).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        self.send(path, body, option).await
    }

    /// Sends an encoded RPC and decodes its reply.
    async fn send<Resp, E>(
        &self,
        path: &str,
        body: Vec<u8>,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, RegionNode, RaftError<NodeId, E>>>
    where
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let reply: Result<Resp, RaftError<NodeId, E>> =
            self.peers.call_encoded(self.target, &self.addr, path, body, option.hard_ttl()).await.map_err(
                |e| match e {
                    // openraft stops a follower's stream for 500 ms after an Unreachable: right
                    // for a peer that refuses connections, wrong for a slow answer on a long
                    // link, where the pause came on top of the timeout and made a write's tail
                    // a second long (BENCHMARKS.md, regions 100 ms apart). A timeout is
                    // reported as openraft's own timeout is: retried at the next round.
                    CallError::Unreachable(e) if !e.is_connect() => RPCError::Network(NetworkError::new(&e)),
                    CallError::Unreachable(e) => RPCError::Unreachable(Unreachable::new(&e)),
                    CallError::Failed(message) | CallError::Incompatible(message) => {
                        RPCError::Network(NetworkError::new(&std::io::Error::other(message)))
                    }
                },
            )?;
        reply.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetworkFactory<TypeConfig> for HttpNetwork {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &RegionNode) -> Self::Network {
        PeerConnection {
            peers: self.peers.clone(),
            target,
            addr: node.internal.clone(),
            leases: self.leases.clone(),
            heartbeat_rejected: self.heartbeat_rejected.clone(),
            acknowledged: Acknowledged::default(),
            notices: None,
        }
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        mut rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, RegionNode, RaftError<NodeId>>> {
        if self.acknowledged.covers(&rpc) {
            // Only news of a commit, and the follower already has everything it refers to: sent
            // beside the stream, which stays free for the next write ("Commit notices" in
            // `docs/architecture.md`).
            let notices = self.notices.get_or_insert_with(|| {
                let route = NoticeRoute {
                    peers: self.peers.clone(),
                    target: self.target,
                    addr: self.addr.clone(),
                    leases: self.leases.clone(),
                    timeout: option.hard_ttl(),
                };
                Notices::start(route, &self.acknowledged)
            });
            notices.queue(rpc);
            return Ok(AppendEntriesResponse::Success);
        }
        // A follower applies what it hears is committed: it must not hear of an entry before
        // every read-lease holder has it.
        rpc.leader_commit = self.leases.cap_commit(rpc.leader_commit).await;
        let sent = rpc.entries.last().map(|entry| entry.log_id).or(rpc.prev_log_id);
        let body = encode(&rpc).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        if body.len() > MAX_APPEND_BODY && rpc.entries.len() > 1 {
            // Ask openraft for fewer entries, in proportion, rounded down.
            let fit = rpc.entries.len() * MAX_APPEND_BODY / body.len();
            tracing::debug!(
                target = self.target,
                bytes = body.len(),
                entries = rpc.entries.len(),
                fit,
                "AppendEntries too large; splitting"
            );
            return Err(RPCError::PayloadTooLarge(PayloadTooLarge::new_entries_hint(fit.max(1) as u64)));
        }
        let heartbeat = rpc.entries.is_empty();
        let answer = self.send(APPEND_PATH, body, &option).await;
        self.acknowledged.record(&rpc.vote, sent, answer.as_ref().ok());
        if heartbeat && matches!(answer, Ok(AppendEntriesResponse::Conflict)) {
            tracing::info!(
                target = self.target,
                "a follower's log lacks entries it had: asking its stream to search again"
            );
            self.heartbeat_rejected.store(true, Ordering::Release);
        }
        answer
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, RegionNode, RaftError<NodeId, InstallSnapshotError>>>
    {
        self.rpc(SNAPSHOT_PATH, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, RegionNode, RaftError<NodeId>>> {
        self.rpc(VOTE_PATH, &rpc, &option).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Command;
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Vote};

    /// A forward is sent again only when the leader certainly did not take it (a refused
    /// connection, "not the leader", a refusal); a connection that ends after the request went
    /// out, or a leader whose Raft stopped, may have appended it (anomaly 4 of docs/faults.md).
    #[tokio::test]
    async fn only_a_forward_the_leader_never_took_is_sent_again() {
        use tokio::io::AsyncReadExt as _;
        let http = reqwest::Client::new();
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let nobody = closed.local_addr().expect("address");
        drop(closed);
        let refused = PeerClient::send(http.post(format!("http://{nobody}/p")).body("x")).await.expect_err("refused");
        assert!(LeaderCallError::Call(refused).left_no_effect(), "a refused connection carried nothing");

        // A peer that reads the whole request, then closes without answering.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let peer = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.ends_with(b"x") {
                let n = socket.read(&mut buf).await.expect("read");
                assert!(n > 0, "the request arrives whole");
                request.extend_from_slice(&buf[..n]);
            }
        });
        let cut = PeerClient::send(http.post(format!("http://{addr}/p")).body("x")).await.expect_err("cut");
        peer.await.expect("the peer read the request");
        assert!(!LeaderCallError::Call(cut).left_no_effect(), "a request that arrived may have been acted on");

        assert!(LeaderCallError::Leader(LeaderError::NotLeader { leader: Some(2) }).left_no_effect());
        assert!(LeaderCallError::Leader(LeaderError::Refused("membership change".into())).left_no_effect());
        assert!(!LeaderCallError::Leader(LeaderError::Fatal("raft stopped".into())).left_no_effect());
        assert!(!LeaderCallError::Call(CallError::Failed("503: busy".into())).left_no_effect());
    }

    /// An entry of about `bytes` bytes encoded.
    fn entry(index: u64, bytes: usize) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Command::DeleteBucket { name: "x".repeat(bytes) }),
        }
    }

    /// Tries every RPC body type the internal listener decodes, and the replies clients decode.
    fn decode_all(bytes: &[u8]) {
        let _ = decode::<AppendEntriesRequest<TypeConfig>>(bytes);
        let _ = decode::<VoteRequest<NodeId>>(bytes);
        let _ = decode::<InstallSnapshotRequest<TypeConfig>>(bytes);
        let _ = decode::<Command>(bytes);
        let _ = decode::<crate::LeaseRequest>(bytes);
        let _ = decode::<crate::model::AccessKey>(bytes);
        let _ = decode::<Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>>(bytes);
        let _ = decode::<Result<(u64, crate::CommandOutcome), String>>(bytes);
        let _ = decode::<Vec<String>>(bytes);
    }

    #[test]
    fn a_length_prefix_claiming_more_than_the_limit_is_refused_without_allocating_it() {
        // A byte vector claiming 2^62 bytes: bincode would allocate the claimed length first.
        let mut body = vec![0xFD];
        body.extend_from_slice(&(1u64 << 62).to_le_bytes());
        assert!(decode::<Vec<u8>>(&body).is_err());
        assert!(decode::<String>(&body).is_err());
        assert!(decode::<Command>(&[0x00, 0xFD, 0, 0, 0, 0, 0, 0, 0, 0x40]).is_err());
        // Just over the limit is refused too; what a real body carries decodes.
        let mut body = vec![0xFC];
        body.extend_from_slice(&u32::try_from(MAX_RPC_BODY + 1).expect("fits").to_le_bytes());
        assert!(decode::<Vec<u8>>(&body).is_err());
        let real = encode(&vec![7u8; 1000]).expect("encode");
        assert_eq!(decode::<Vec<u8>>(&real).expect("decode"), vec![7u8; 1000]);
    }

    proptest::proptest! {
        /// Garbage bodies never panic the decoder (nor abort it on a huge allocation).
        #[test]
        fn garbage_bodies_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            decode_all(&bytes);
        }

        /// Nor do garbage bodies that start like real ones (a valid prefix, then anything).
        #[test]
        fn truncated_and_mutated_bodies_never_panic(
            cut in 0usize..200,
            flip in 0usize..200,
            byte in proptest::prelude::any::<u8>(),
        ) {
            let vote = encode(&VoteRequest::new(Vote::new(3, 1), Some(LogId::new(CommittedLeaderId::new(3, 1), 9))))
                .expect("encode");
            let append = encode(&AppendEntriesRequest::<TypeConfig> {
                vote: Vote::new_committed(1, 1),
                prev_log_id: None,
                leader_commit: None,
                entries: vec![entry(1, 10), entry(2, 20)],
            })
            .expect("encode");
            for real in [vote, append] {
                let mut bytes = real[..cut.min(real.len())].to_vec();
                if let Some(b) = bytes.get_mut(flip) {
                    *b = byte;
                }
                decode_all(&bytes);
                let mut mutated = real.clone();
                if let Some(b) = mutated.get_mut(flip) {
                    *b = byte;
                }
                decode_all(&mutated);
            }
        }
    }

    #[tokio::test]
    async fn an_append_larger_than_a_request_may_carry_asks_raft_for_fewer_entries() {
        let leases = Arc::new(Leases::new(Duration::ZERO, Duration::ZERO, None));
        let mut connection = PeerConnection {
            peers: PeerClient::new(Arc::new(RequestSigner::new("secret", "test")), PeerTransport::Plain)
                .expect("client"),
            target: 2,
            // Nothing listens there: a request that is sent fails as unreachable.
            addr: "127.0.0.1:9".into(),
            leases,
            heartbeat_rejected: Arc::default(),
            acknowledged: Acknowledged::default(),
            notices: None,
        };
        let each = 64 * 1024;
        let entries = MAX_APPEND_BODY / each * 3;
        let request = AppendEntriesRequest {
            vote: Vote::new_committed(1, 1),
            prev_log_id: None,
            leader_commit: None,
            entries: (1..=entries as u64).map(|i| entry(i, each)).collect(),
        };
        let option = RPCOption::new(Duration::from_secs(1));
        match connection.append_entries(request, option.clone()).await {
            Err(RPCError::PayloadTooLarge(too_large)) => {
                let hint = too_large.entries_hint() as usize;
                assert!(hint > 0 && hint < entries, "hint {hint} of {entries}");
                assert!(hint * each <= MAX_APPEND_BODY, "{hint} entries of {each} bytes do not fit");
            }
            other => panic!("expected PayloadTooLarge, got {other:?}"),
        }
        // One entry is sent whatever its size (the listener takes far more than the limit).
        let single = AppendEntriesRequest {
            vote: Vote::new_committed(1, 1),
            prev_log_id: None,
            leader_commit: None,
            entries: vec![entry(1, MAX_APPEND_BODY + 1)],
        };
        let sent = connection.append_entries(single, option).await;
        assert!(matches!(sent, Err(RPCError::Unreachable(_))), "{sent:?}");
    }

    /// Only a peer that cannot be connected to is Unreachable (openraft then pauses the stream
    /// for 500 ms); a peer that takes the request and answers late is a plain network error,
    /// which openraft retries at once.
    #[tokio::test]
    async fn a_late_answer_is_no_reason_to_pause_replication() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        // Accepts and holds the connection, never answering.
        let silent = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.expect("accept");
            tokio::time::sleep(Duration::from_secs(10)).await;
            drop(socket);
        });
        let mut connection = PeerConnection {
            peers: PeerClient::new(Arc::new(RequestSigner::new("secret", "test")), PeerTransport::Plain)
                .expect("client"),
            target: 2,
            addr: addr.to_string(),
            leases: Arc::new(Leases::new(Duration::ZERO, Duration::ZERO, None)),
            heartbeat_rejected: Arc::default(),
            acknowledged: Acknowledged::default(),
            notices: None,
        };
        let heartbeat = AppendEntriesRequest {
            vote: Vote::new_committed(1, 1),
            prev_log_id: None,
            leader_commit: None,
            entries: vec![entry(1, 10)],
        };
        let late = connection.append_entries(heartbeat.clone(), RPCOption::new(Duration::from_millis(200))).await;
        assert!(matches!(late, Err(RPCError::Network(_))), "{late:?}");
        silent.abort();

        connection.addr = "127.0.0.1:9".into();
        let refused = connection.append_entries(heartbeat, RPCOption::new(Duration::from_millis(200))).await;
        assert!(matches!(refused, Err(RPCError::Unreachable(_))), "{refused:?}");
    }
}
