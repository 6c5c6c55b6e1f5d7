//! The internal listener: Raft RPC and calls between nodes. Every request must carry a valid
//! HMAC signature of the cluster secret, made for this node of this cluster, with a nonce not
//! seen before (see `meridian_raft::signing`); anything else gets 401 before a handler runs,
//! and before its body is read: an unsigned client cannot make the node buffer anything.
//! Each route takes a body of at most its own size (413 beyond). A signed request from a peer
//! whose internal protocol this node does not speak gets 426 with a message naming both
//! versions (see `meridian_raft::protocol`); every signed request's reply carries this node's.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Path;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use meridian_raft::network::{
    self, APPEND_PATH, BLOB_PATH, LEASE_PATH, LOAD_PATH, PROPOSE_PATH, READ_INDEX_PATH, SNAPSHOT_PATH, VOTE_PATH,
};
use meridian_raft::protocol::{self, PeerVersion};
use meridian_raft::signing::{ReplayGuard, RequestSigner, SignatureError};
use meridian_raft::{Command, LeaderError, MetaStore};
use meridian_s3gw::Scrubber;
use meridian_s3gw::blob::{BlobStore, DiskBlobs};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Path where `meridian key create | list | disable | enable | delete` send their requests.
pub(crate) const KEYS_PATH: &str = "/internal/v1/keys";
/// Path where `meridian cluster add-region` / `remove-region` ask for a membership change.
pub(crate) const MEMBERSHIP_PATH: &str = "/internal/v1/membership";
/// Path where `meridian scrub` asks a node for a scrub pass and gets its report.
pub(crate) const SCRUB_PATH: &str = "/internal/v1/scrub";

/// A membership change asked for by the CLI (served by the leader only).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) enum MembershipChange {
    /// Add a region, as a voter or a learner.
    Add {
        /// Its node id.
        id: u64,
        /// Its addresses.
        node: meridian_raft::RegionNode,
        /// Whether it votes.
        voter: bool,
    },
    /// Remove a region.
    Remove {
        /// Its node id.
        id: u64,
    },
}

/// Largest internal request body (a snapshot chunk is a few MiB; AppendEntries are split below
/// a quarter of it).
const MAX_BODY: usize = meridian_raft::network::MAX_RPC_BODY;
/// Largest body of a key or membership change (one record).
const MAX_RECORD_BODY: usize = 1024 * 1024;
/// Largest body of every other route (votes, leases, read index, load, scrub, blob reads: a
/// few bytes or none).
const MAX_SMALL_BODY: usize = 64 * 1024;

/// The largest body the route at `path` takes: only the routes that carry log entries,
/// snapshot chunks and commands take large ones.
fn body_limit(path: &str) -> usize {
    match path {
        APPEND_PATH | SNAPSHOT_PATH | PROPOSE_PATH => MAX_BODY,
        KEYS_PATH | MEMBERSHIP_PATH => MAX_RECORD_BODY,
        _ => MAX_SMALL_BODY,
    }
}

/// The request signer of a cluster's config, for nodes and the CLI alike.
pub(crate) fn signer(config: &crate::config::ClusterConfig) -> RequestSigner {
    RequestSigner::new(&config.cluster.secret, &config.cluster.name).with_legacy(config.internal_rpc.legacy_signatures)
}

/// What the handlers share.
#[derive(Clone)]
struct Internal {
    meta: MetaStore,
    blobs: Arc<DiskBlobs>,
    signer: Arc<RequestSigner>,
    /// This node's id: requests must be signed for it.
    node_id: u64,
    /// Nonces already accepted (replays are refused).
    replay: Arc<ReplayGuard>,
    /// This node's load, polled by its peers.
    load: Arc<crate::load::LoadMeter>,
    /// Runs on-demand scrub passes (one at a time with the periodic ones).
    scrubber: Arc<Scrubber>,
}

/// The internal router.
pub(crate) fn router(
    meta: MetaStore,
    blobs: Arc<DiskBlobs>,
    signer: Arc<RequestSigner>,
    replay: Arc<ReplayGuard>,
    load: Arc<crate::load::LoadMeter>,
    scrubber: Arc<Scrubber>,
) -> Router {
    let node_id = meta.node_id();
    let state = Internal { meta, blobs, signer, node_id, replay, load, scrubber };
    Router::new()
        .route(APPEND_PATH, post(append))
        .route(VOTE_PATH, post(vote))
        .route(SNAPSHOT_PATH, post(snapshot))
        .route(PROPOSE_PATH, post(propose))
        .route(READ_INDEX_PATH, post(read_index))
        .route(LEASE_PATH, post(grant_lease))
        .route(KEYS_PATH, post(create_key))
        .route(MEMBERSHIP_PATH, post(change_membership))
        .route(LOAD_PATH, get(report_load))
        .route(SCRUB_PATH, post(scrub))
        .route(&format!("{BLOB_PATH}/{{id}}"), get(serve_blob))
        .layer(middleware::from_fn_with_state(state.clone(), verify_signature))
        // The signature check above has read and bounded the body already; without this the
        // handlers' `Bytes` would refuse anything over axum's default 2 MiB (an AppendEntries
        // to a follower catching up: 413, again and again, so it never caught up).
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// Refuses requests whose signature is missing, forged, stale, made for another node or
/// cluster, or replayed, from the headers alone; then reads the body (within the route's limit)
/// and checks it is the signed one.
async fn verify_signature(State(state): State<Internal>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or(parts.uri.path(), |p| p.as_str());
    let refuse = |e: SignatureError| {
        tracing::warn!(%path, method = %parts.method, error = %e, "refused an internal request");
        (StatusCode::UNAUTHORIZED, e.to_string()).into_response()
    };
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let pending = match state.signer.check_headers(state.node_id, parts.method.as_str(), path, header) {
        Ok(pending) => pending,
        Err(e) => return refuse(e),
    };
    if let Some((nonce, timestamp)) = pending.nonce()
        && let Err(e) = state.replay.check(nonce, timestamp)
    {
        return refuse(e);
    }
    let limit = body_limit(parts.uri.path());
    let declared = header(http::header::CONTENT_LENGTH.as_str()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        tracing::warn!(%path, ?declared, limit, "refused an internal request body over the route's limit");
        return (StatusCode::PAYLOAD_TOO_LARGE, format!("request body over {limit} bytes")).into_response();
    }
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, format!("request body over {limit} bytes or cut short"))
            .into_response();
    };
    let legacy = pending.is_legacy();
    if let Err(e) = pending.verify_body(&bytes) {
        return refuse(e);
    }
    if legacy {
        tracing::debug!(%path, "accepted a request signed with the previous scheme (legacy_signatures)");
    }
    // Only a signed request learns this node's versions, and only a signed request's versions
    // are believed.
    let version = PeerVersion::from_headers(header);
    let peer = header(protocol::NODE_HEADER).map_or_else(|| "(unnamed)".to_owned(), |id| id.chars().take(20).collect());
    let mut response = match version.incompatibility(&format!("node {peer}")) {
        Some(message) => {
            protocol::note_refusal(&peer, &version, "server", &message);
            (StatusCode::UPGRADE_REQUIRED, message).into_response()
        }
        None => next.run(Request::from_parts(parts, Body::from(bytes))).await,
    };
    for (name, value) in protocol::headers(state.node_id) {
        if let Ok(value) = http::HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// Decodes a bincode body or answers 400.
#[allow(clippy::result_large_err)] // the error IS the response, returned at once
fn decode<T: DeserializeOwned>(body: &Bytes) -> Result<T, Response> {
    network::decode(body).map_err(|e| (StatusCode::BAD_REQUEST, format!("bad request body: {e}")).into_response())
}

/// Encodes a bincode reply.
fn reply<T: Serialize>(value: &T) -> Response {
    match network::encode(value) {
        Ok(bytes) => (StatusCode::OK, bytes).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Encodes the answer of a leader-side route in the wire form both releases read
/// ([`network::LeaderReply`]: the error as its text).
fn leader_reply<T: Serialize>(result: Result<T, LeaderError>) -> Response {
    reply(&network::leader_reply(result))
}

async fn append(State(state): State<Internal>, body: Bytes) -> Response {
    match decode(&body) {
        Ok(request) => reply(&state.meta.append_entries(request).await),
        Err(response) => response,
    }
}

async fn vote(State(state): State<Internal>, body: Bytes) -> Response {
    match decode(&body) {
        Ok(request) => reply(&state.meta.vote(request).await),
        Err(response) => response,
    }
}

async fn snapshot(State(state): State<Internal>, body: Bytes) -> Response {
    match decode(&body) {
        Ok(request) => reply(&state.meta.install_snapshot(request).await),
        Err(response) => response,
    }
}

async fn propose(State(state): State<Internal>, body: Bytes) -> Response {
    match decode::<Command>(&body) {
        Ok(command) => leader_reply(state.meta.propose_as_leader(command).await),
        Err(response) => response,
    }
}

/// This node's load and readiness, for its peers' routing decisions.
async fn report_load(State(state): State<Internal>) -> Response {
    reply(&state.load.current())
}

async fn read_index(State(state): State<Internal>) -> Response {
    leader_reply(state.meta.read_index_as_leader().await)
}

/// A lease request: the holder's clock reading (`meridian_raft::CLOCK_HEADER`, absent from
/// nodes of the previous release) goes to the leader's drift measurement; a value that is not a
/// number counts as absent (the holder is then not measured, which grants nothing more).
async fn grant_lease(State(state): State<Internal>, headers: HeaderMap, body: Bytes) -> Response {
    let holder_clock = headers.get(meridian_raft::CLOCK_HEADER).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    match decode::<meridian_raft::LeaseRequest>(&body) {
        Ok(request) => {
            let mut response = leader_reply(state.meta.grant_lease(request, holder_clock).await);
            // Read as late as possible, so it falls inside the holder's round trip (see
            // `meridian_raft::CLOCK_HEADER`).
            let clock = axum::http::HeaderValue::from(meridian_raft::clock_reading_ms());
            response.headers_mut().insert(meridian_raft::CLOCK_HEADER, clock);
            response
        }
        Err(response) => response,
    }
}

/// `meridian key ...`: create, list, disable, enable, delete (see `crate::keys`).
async fn create_key(State(state): State<Internal>, body: Bytes) -> Response {
    match decode::<crate::keys::KeyRequest>(&body) {
        Ok(request) => reply(&crate::keys::serve(&state.meta, request).await),
        Err(response) => response,
    }
}

/// Parses `bytes=first-last` (inclusive) into a half-open range.
fn parse_range(headers: &HeaderMap) -> Option<(u64, u64)> {
    let value = headers.get("range")?.to_str().ok()?;
    let (first, last) = value.strip_prefix("bytes=")?.split_once('-')?;
    let (first, last) = (first.parse::<u64>().ok()?, last.parse::<u64>().ok()?);
    (first <= last).then_some((first, last + 1))
}

/// Streams a blob this node holds to another node (reads of objects not held there yet,
/// replication).
async fn serve_blob(State(state): State<Internal>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let file = match state.blobs.open(&id).await {
        Ok(Some(file)) => file,
        Ok(None) => return (StatusCode::NOT_FOUND, "blob not held here").into_response(),
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let size = match file.metadata().await {
        Ok(m) => m.len(),
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let (start, end) = parse_range(&headers).map_or((0, size), |(s, e)| (s, e.min(size)));
    if start > end {
        return (StatusCode::RANGE_NOT_SATISFIABLE, "range outside the blob").into_response();
    }
    let status = if (start, end) == (0, size) { StatusCode::OK } else { StatusCode::PARTIAL_CONTENT };
    let body = blob_body(file.into_std().await, start, end - start);
    (status, [("content-length", (end - start).to_string())], body).into_response()
}

/// Bytes of a blob read per step when serving it.
const SERVE_CHUNK: u64 = 1024 * 1024;
/// Chunks read ahead of the network when serving a blob.
const SERVE_AHEAD: usize = 4;

/// A body of `len` bytes of `file` from `start`, read by a blocking thread straight into fresh
/// buffers: one copy out of the page cache (tokio's `File` would copy each read twice, through
/// its own buffer), a few chunks ahead of the network.
fn blob_body(mut file: std::fs::File, start: u64, len: u64) -> Body {
    use std::io::{Read as _, Seek as _};
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(SERVE_AHEAD);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = file.seek(std::io::SeekFrom::Start(start)) {
            let _ = tx.blocking_send(Err(e));
            return;
        }
        let mut left = len;
        while left > 0 {
            let want = left.min(SERVE_CHUNK);
            let mut chunk = Vec::with_capacity(usize::try_from(want).unwrap_or(0));
            let next = match (&mut file).take(want).read_to_end(&mut chunk) {
                Ok(0) => Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "blob shorter than its size")),
                Ok(n) => {
                    left -= n as u64;
                    Ok(Bytes::from(chunk))
                }
                Err(e) => Err(e),
            };
            let failed = next.is_err();
            // A closed channel means the peer hung up: stop reading.
            if tx.blocking_send(next).is_err() || failed {
                return;
            }
        }
    });
    Body::from_stream(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

async fn change_membership(State(state): State<Internal>, body: Bytes) -> Response {
    match decode::<MembershipChange>(&body) {
        Ok(MembershipChange::Add { id, node, voter }) => leader_reply(state.meta.add_region(id, node, voter).await),
        Ok(MembershipChange::Remove { id }) => leader_reply(state.meta.remove_region(id).await),
        Err(response) => response,
    }
}

/// Runs a scrub pass now (after any pass in progress) and answers its report.
async fn scrub(State(state): State<Internal>) -> Response {
    reply(&state.scrubber.run_pass().await.map_err(|e| e.to_string()))
}
