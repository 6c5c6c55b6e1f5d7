//! Meridian's web listener: health and cluster status now; the admin pages, JSON API and
//! share links grow here.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use meridian_raft::MetaStore;
use serde::Serialize;

/// What the web handlers share.
#[derive(Clone)]
pub struct WebState {
    meta: MetaStore,
    region: String,
}

impl WebState {
    /// State for the node of `region`.
    pub fn new(meta: MetaStore, region: String) -> Self {
        Self { meta, region }
    }
}

/// The web router.
pub fn router(state: WebState) -> Router {
    Router::new().route("/healthz", get(healthz)).with_state(state)
}

/// The body of `/healthz`.
#[derive(Serialize)]
struct Health {
    region: String,
    node_id: u64,
    ready: bool,
    leader: Option<u64>,
    term: u64,
    applied_index: u64,
}

/// 200 once the node knows a leader and has applied a membership that includes it; 503 before.
async fn healthz(State(state): State<WebState>) -> impl IntoResponse {
    let metrics = state.meta.raft().metrics().borrow().clone();
    let node_id = state.meta.node_id();
    let member = metrics.membership_config.membership().get_node(&node_id).is_some();
    let ready = metrics.current_leader.is_some() && member;
    let health = Health {
        region: state.region.clone(),
        node_id,
        ready,
        leader: metrics.current_leader,
        term: metrics.current_term,
        applied_index: state.meta.applied_index(),
    };
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(health))
}
