//! The internal listener: Raft RPC and calls between nodes. Every request must carry a valid
//! HMAC signature of the cluster secret (see `meridian_raft::signing`); anything else gets 401
//! before a handler runs.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use meridian_raft::model::AccessKey;
use meridian_raft::network::{self, APPEND_PATH, PROPOSE_PATH, READ_INDEX_PATH, SNAPSHOT_PATH, VOTE_PATH};
use meridian_raft::signing::{RequestSigner, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use meridian_raft::{Command, MetaStore};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Path where `meridian key create` sends a new key.
pub(crate) const KEYS_PATH: &str = "/internal/v1/keys";
/// Largest internal request body (a snapshot chunk is a few MiB).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// What the handlers share.
#[derive(Clone)]
struct Internal {
    meta: MetaStore,
    signer: Arc<RequestSigner>,
}

/// The internal router.
pub(crate) fn router(meta: MetaStore, signer: Arc<RequestSigner>) -> Router {
    let state = Internal { meta, signer };
    Router::new()
        .route(APPEND_PATH, post(append))
        .route(VOTE_PATH, post(vote))
        .route(SNAPSHOT_PATH, post(snapshot))
        .route(PROPOSE_PATH, post(propose))
        .route(READ_INDEX_PATH, post(read_index))
        .route(KEYS_PATH, post(create_key))
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
        Ok(request) => reply(&state.meta.raft().append_entries(request).await),
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
