//! The internal listener: Raft RPC and calls between nodes. Every request must carry a valid
//! HMAC signature of the cluster secret (see `meridian_raft::signing`); anything else gets 401
//! before a handler runs.

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
use meridian_raft::model::AccessKey;
use meridian_raft::network::{self, APPEND_PATH, BLOB_PATH, PROPOSE_PATH, READ_INDEX_PATH, SNAPSHOT_PATH, VOTE_PATH};
use meridian_raft::signing::{RequestSigner, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use meridian_raft::{Command, MetaStore};
use meridian_s3gw::blob::{BlobStore, DiskBlobs};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};

/// Path where `meridian key create` sends a new key.
pub(crate) const KEYS_PATH: &str = "/internal/v1/keys";
/// Path where `meridian cluster add-region` / `remove-region` ask for a membership change.
pub(crate) const MEMBERSHIP_PATH: &str = "/internal/v1/membership";

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

/// Largest internal request body (a snapshot chunk is a few MiB).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// What the handlers share.
#[derive(Clone)]
struct Internal {
    meta: MetaStore,
    blobs: Arc<DiskBlobs>,
    signer: Arc<RequestSigner>,
}

/// The internal router.
pub(crate) fn router(meta: MetaStore, blobs: Arc<DiskBlobs>, signer: Arc<RequestSigner>) -> Router {
    let state = Internal { meta, blobs, signer };
    Router::new()
        .route(APPEND_PATH, post(append))
        .route(VOTE_PATH, post(vote))
        .route(SNAPSHOT_PATH, post(snapshot))
        .route(PROPOSE_PATH, post(propose))
        .route(READ_INDEX_PATH, post(read_index))
        .route(KEYS_PATH, post(create_key))
        .route(MEMBERSHIP_PATH, post(change_membership))
        .route(&format!("{BLOB_PATH}/{{id}}"), get(serve_blob))
        .layer(middleware::from_fn_with_state(state.clone(), verify_signature))
        .with_state(state)
}

/// Refuses requests whose signature is missing, forged or stale.
async fn verify_signature(State(state): State<Internal>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response();
    };
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let path = parts.uri.path_and_query().map_or(parts.uri.path(), |p| p.as_str());
    if let Err(e) =
        state.signer.verify(parts.method.as_str(), path, header(TIMESTAMP_HEADER), header(SIGNATURE_HEADER), &bytes)
    {
        tracing::warn!(%path, error = %e, "refused an internal request");
        return (StatusCode::UNAUTHORIZED, e.to_string()).into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes))).await
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

async fn append(State(state): State<Internal>, body: Bytes) -> Response {
    match decode(&body) {
        Ok(request) => {
            state.meta.note_leader_contact();
            reply(&state.meta.raft().append_entries(request).await)
        }
        Err(response) => response,
    }
}

async fn vote(State(state): State<Internal>, body: Bytes) -> Response {
    match decode(&body) {
        Ok(request) => reply(&state.meta.raft().vote(request).await),
        Err(response) => response,
    }
}

async fn snapshot(State(state): State<Internal>, body: Bytes) -> Response {
    match decode(&body) {
        Ok(request) => reply(&state.meta.raft().install_snapshot(request).await),
        Err(response) => response,
    }
}

async fn propose(State(state): State<Internal>, body: Bytes) -> Response {
    match decode::<Command>(&body) {
        Ok(command) => reply(&state.meta.propose_as_leader(command).await),
        Err(response) => response,
    }
}

async fn read_index(State(state): State<Internal>) -> Response {
    reply(&state.meta.read_index_as_leader().await)
}

async fn create_key(State(state): State<Internal>, body: Bytes) -> Response {
    match decode::<AccessKey>(&body) {
        Ok(key) => {
            let id = key.id.clone();
            let result = state.meta.propose(Command::PutAccessKey(key)).await.map(|_| ()).map_err(|e| e.to_string());
            if result.is_ok() {
                tracing::info!(access_key = %id, "access key created");
            }
            reply(&result)
        }
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
    let mut file = file;
    if let Err(e) = file.seek(std::io::SeekFrom::Start(start)).await {
        return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
    }
    let stream = tokio_util::io::ReaderStream::with_capacity(file.take(end - start), 256 * 1024);
    let status = if (start, end) == (0, size) { StatusCode::OK } else { StatusCode::PARTIAL_CONTENT };
    (status, [("content-length", (end - start).to_string())], Body::from_stream(stream)).into_response()
}

async fn change_membership(State(state): State<Internal>, body: Bytes) -> Response {
    match decode::<MembershipChange>(&body) {
        Ok(MembershipChange::Add { id, node, voter }) => reply(&state.meta.add_region(id, node, voter).await),
        Ok(MembershipChange::Remove { id }) => reply(&remove_region(&state.meta, id).await),
        Err(response) => response,
    }
}

/// Removes a region in two committed steps: a voter is first demoted to a learner, kept in the
/// membership so that it still receives the entry that demotes it, then removed.
///
/// Removing a voter outright stops replication to it as soon as the leader appends the change,
/// so it never learns it was removed: it goes on believing it votes, and once its election
/// timeout passes it campaigns for ever against the cluster. A learner never campaigns, and it
/// is as a learner that it sees its last membership.
async fn remove_region(meta: &MetaStore, id: u64) -> Result<(), String> {
    let is_voter = meta.raft().metrics().borrow().membership_config.membership().voter_ids().any(|v| v == id);
    if is_voter {
        let change = openraft::ChangeMembers::RemoveVoters(std::collections::BTreeSet::from([id]));
        meta.raft().change_membership(change, true).await.map_err(|e| e.to_string())?;
        tracing::info!(id, "region demoted to learner");
    }
    // No longer a voter: this only drops it from the members.
    meta.remove_region(id).await
}
