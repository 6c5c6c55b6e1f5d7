//! The web listener's answer while the metadata store has failed (a full data dir; see
//! `store_recovery`): 503 with a sentence a person understands, for the panel, the JSON API
//! and share links alike. Nothing the node would answer from its state can be trusted until the
//! store is reopened, so no page is drawn from it. `/metrics` stays open: it is how an operator
//! sees the failure.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use meridian_raft::MetaStore;

/// What a person is told while the store is failed.
const MESSAGE: &str = "This node's metadata store stopped after a storage error (a full disk?) and \
                       reopens by itself once there is room again. Other regions still serve; try again \
                       in a moment.\n";

/// Refuses every web request but `/metrics` with 503 while `meta` reports a storage failure.
pub(crate) async fn refuse_while_failed(State(meta): State<MetaStore>, request: Request, next: Next) -> Response {
    if request.uri().path() != "/metrics" && meta.storage_failure().is_some() {
        return (http::StatusCode::SERVICE_UNAVAILABLE, [(http::header::RETRY_AFTER, "5")], MESSAGE).into_response();
    }
    next.run(request).await
}
