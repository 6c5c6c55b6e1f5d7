//! Meridian's web listener (`:800N`): what a node serves over HTTP to people and to the
//! cinema's services, as one axum [`router`] over a [`WebState`] that the node builds from
//! `cluster.toml`.
//!
//! - **The JSON API** under `/api/v1` ([`router`] lists every route): files and buckets, uploads
//!   and downloads sent to the nearest node with presigned URLs (geo routing, [`route`]),
//!   placement, shares, history, the event stream ([`events`]), access keys, users, sign-in
//!   through the cinema's Auth service ([`identity`]), and its OpenAPI document.
//! - **For operators**: `/healthz`, `/metrics` ([`metrics`]) and `/api/v1/cluster`.
//! - **The admin panel**: server-rendered pages (module `pages`, templates in `admin/templates/`)
//!   over the same functions as the API, and the public share links `/s/{token}`.
//!
//! Callers are services (an access key as HTTP Basic or a service token as Bearer:
//! [`ApiCaller`]) or signed-in people (the Auth service's JWT, as cookie or Bearer:
//! [`SignedInUser`]). Every change is a command committed through the replicated store
//! ([`MetaStore`]), so every node's listener serves the same data. The pages are described in
//! `docs/admin.md`; the threat model in `docs/security.md`.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use meridian_raft::MetaStore;
use serde::Serialize;

mod access;
mod api_auth;
mod attempts;
mod downloads;
mod error;
pub mod events;
mod files_api;
mod history;
pub mod identity;
mod keys_api;
pub mod metrics;
mod openapi;
mod pages;
mod placement;
pub mod presign;
pub mod route;
mod share_page;
mod shares;
pub mod tls_status;
mod uploads;
mod versions_api;

pub use api_auth::{ApiCaller, ServiceToken};
pub use attempts::AttemptLimits;
pub use error::ApiError;
pub use identity::sync::run_user_sync;
pub use identity::{IdentityError, IdentitySettings, SignedInUser};
pub use share_page::ShareSettings;
pub use versions_api::{RestoreFailure, RestoreFuture, VersionRestorer};

/// What the web handlers share.
#[derive(Clone)]
pub struct WebState {
    meta: MetaStore,
    region: String,
    /// An access key that must be in the store before the node reports ready (the dev key of
    /// `cluster.toml`), so clients started on "ready" can sign requests at once.
    required_key: Option<String>,
    /// Set once `required_key` was seen: readiness waits for the key at start only, so an
    /// admin deleting the dev key later does not take every node out of its load balancer.
    required_key_seen: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Bearer tokens of the cinema's services allowed on the JSON API (see [`ApiCaller`]).
    service_tokens: std::sync::Arc<[ServiceToken]>,
    /// Counters shown by `/metrics` (the S3 listener's are fed by the node).
    metrics: std::sync::Arc<metrics::Metrics>,
    /// Geo routing (`/api/v1/route`, `/uploads`, `/files`); absent, those answer 503.
    routing: Option<std::sync::Arc<route::Routing>>,
    /// Becomes `true` when the node stops: long-lived responses (the event stream) end then, so
    /// the listener can drain. `None`: they end only when the client goes.
    stop: Option<tokio::sync::watch::Receiver<bool>>,
    /// Sign-in through the cinema's Auth service; `None` when `[auth]` is not configured (the
    /// user routes then answer 503).
    identity: Option<std::sync::Arc<identity::Identity>>,
    /// Share links: password attempts, the argon2 permits and how long handed-out URLs live
    /// (see `share_page`).
    share_links: std::sync::Arc<share_page::ShareLinks>,
    /// Whether `/metrics` and `/api/v1/cluster` answer anyone; else they need an [`ApiCaller`]
    /// (they describe members, addresses and load).
    status_open: bool,
    /// The node's certificates and TLS refusals, for `/api/v1/cluster` and `/metrics`; `None`
    /// leaves them out.
    tls: Option<std::sync::Arc<dyn tls_status::TlsStatusSource>>,
    /// Writes restored versions (the node's S3 gateway, which holds the bytes); `None`: the
    /// restore answers 503.
    restorer: Option<std::sync::Arc<dyn versions_api::VersionRestorer>>,
}

impl WebState {
    /// State for the node of `region`.
    pub fn new(meta: MetaStore, region: String, required_key: Option<String>) -> Self {
        Self {
            meta,
            region,
            required_key,
            required_key_seen: std::sync::Arc::default(),
            service_tokens: std::sync::Arc::new([]),
            metrics: std::sync::Arc::default(),
            routing: None,
            stop: None,
            identity: None,
            share_links: std::sync::Arc::new(share_page::ShareLinks::new(ShareSettings::default())),
            status_open: false,
            tls: None,
            restorer: None,
        }
    }

    /// Shows these counters on `/metrics`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: std::sync::Arc<metrics::Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Enables the geo routing routes.
    #[must_use]
    pub fn with_routing(mut self, routing: std::sync::Arc<route::Routing>) -> Self {
        self.routing = Some(routing);
        self
    }

    /// Accepts these service tokens on the JSON API.
    #[must_use]
    pub fn with_service_tokens(mut self, tokens: Vec<ServiceToken>) -> Self {
        self.service_tokens = tokens.into();
        self
    }

    /// Ends long-lived responses once `stop` turns `true`.
    #[must_use]
    pub fn with_stop_signal(mut self, stop: tokio::sync::watch::Receiver<bool>) -> Self {
        self.stop = Some(stop);
        self
    }

    /// Share links as `[shares]` of `cluster.toml` says: password limits, URL lifetime.
    #[must_use]
    pub fn with_share_settings(mut self, settings: ShareSettings) -> Self {
        self.share_links = std::sync::Arc::new(share_page::ShareLinks::new(settings));
        self
    }

    /// Lets anyone read `/metrics` and `/api/v1/cluster` (`[api] status_access`); by default
    /// they need a service token or an access key.
    #[must_use]
    pub fn with_open_status(mut self, open: bool) -> Self {
        self.status_open = open;
        self
    }

    /// Shows the node's TLS figures (certificate expiry, refused connections) in
    /// `/api/v1/cluster` and `/metrics`.
    #[must_use]
    pub fn with_tls_status(mut self, source: std::sync::Arc<dyn tls_status::TlsStatusSource>) -> Self {
        self.tls = Some(source);
        self
    }

    /// Lets the panel restore older versions of files through `restorer`.
    #[must_use]
    pub fn with_version_restorer(mut self, restorer: std::sync::Arc<dyn VersionRestorer>) -> Self {
        self.restorer = Some(restorer);
        self
    }

    /// Enables sign-in through the cinema's Auth service.
    pub fn with_identity(mut self, settings: IdentitySettings) -> Result<Self, IdentityError> {
        self.identity = Some(std::sync::Arc::new(identity::Identity::new(settings)?));
        Ok(self)
    }
}

/// The web router.
pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/api/v1/cluster", get(cluster))
        .route("/api/v1/route", get(route::route))
        .route("/api/v1/uploads", axum::routing::post(uploads::create))
        .route("/api/v1/files", get(files_api::list))
        .route("/api/v1/files/{bucket}/{*key}", get(downloads::file).delete(files_api::delete))
        .route("/api/v1/buckets", post(files_api::create_bucket))
        .route("/api/v1/versions/{bucket}/{*key}", get(versions_api::list).post(versions_api::restore))
        .route("/metrics", get(metrics::metrics))
        .route("/api/v1/events", get(events::events))
        .route(placement::ROUTE, get(placement::placement))
        .route("/api/v1/session", post(identity::session::sign_in).delete(identity::session::sign_out))
        .route("/api/v1/session/refresh", post(identity::session::refresh))
        .route("/api/v1/me", get(identity::session::me))
        .route("/api/v1/users", get(identity::users::list))
        .route("/api/v1/history", get(history::history))
        .route("/api/v1/shares", get(shares::list).post(shares::create))
        .route("/api/v1/shares/{id}", axum::routing::delete(shares::revoke))
        .route("/s/{token}", get(share_page::open).head(share_page::peek).post(share_page::submit))
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/api/v1/keys", get(keys_api::list))
        .route("/api/v1/keys/{id}", axum::routing::delete(keys_api::delete))
        .route("/api/v1/keys/{id}/disable", post(keys_api::disable))
        .route("/api/v1/keys/{id}/enable", post(keys_api::enable))
        .merge(pages::router(state.clone()))
        .fallback(pages::not_found)
        .with_state(state)
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

/// 200 once the node knows a leader, has applied a membership that includes it, and has the
/// required access key; 503 before.
async fn healthz(State(state): State<WebState>) -> impl IntoResponse {
    let leadership = state.meta.leadership();
    let node_id = state.meta.node_id();
    let key_ready = match &state.required_key {
        Some(_) if state.required_key_seen.load(std::sync::atomic::Ordering::Relaxed) => true,
        Some(id) => {
            let seen = matches!(state.meta.access_key(id), Ok(Some(_)));
            if seen {
                state.required_key_seen.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            seen
        }
        None => true,
    };
    let ready = leadership.ready() && key_ready;
    let health = Health {
        region: state.region.clone(),
        node_id,
        ready,
        leader: leadership.leader,
        term: leadership.term,
        applied_index: state.meta.applied_index(),
    };
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(health))
}

/// `GET /api/v1/cluster`: this node's view of the cluster (leader, term, indexes, members, and,
/// on the leader, how far each member is replicated), and its TLS figures (`tls`: certificate
/// expiry, refused connections; absent on a node without them).
async fn cluster(State(state): State<WebState>, caller: Result<ApiCaller, ApiError>) -> Result<Response, ApiError> {
    may_read_status(&state, caller)?;
    let mut body = serde_json::json!({ "region": state.region, "status": state.meta.status() });
    if let Some(tls) = &state.tls {
        body["tls"] = serde_json::to_value(tls.tls_status()).unwrap_or_default();
    }
    Ok(Json(body).into_response())
}

/// The status routes are open, or the caller is authenticated (401 otherwise, saying how).
pub(crate) fn may_read_status(state: &WebState, caller: Result<ApiCaller, ApiError>) -> Result<(), ApiError> {
    if state.status_open {
        return Ok(());
    }
    caller.map(drop).inspect_err(|error| {
        tracing::info!(reason = %error.message, "status route refused: no token");
    })
}
