//! The stand-in's HTTP endpoints: the contract of `docs/auth.md`, plus `/dev/v1` for tests.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;

use crate::directory::{Directory, SeedUser};
use crate::signer::Signer;
use crate::{DevAuthConfig, JWKS_PATH, LOGIN_PATH, REFRESH_PATH, USERS_PATH};

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState {
    /// The users.
    pub(crate) users: Arc<Directory>,
    /// The token signer.
    pub(crate) signer: Arc<Signer>,
    /// The configuration (service token, TTLs).
    pub(crate) config: Arc<DevAuthConfig>,
}

/// Largest page of the user list.
const MAX_PAGE: usize = 500;
/// Page size when the caller gives none.
const DEFAULT_PAGE: usize = 100;

pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok (stand-in Auth service)" }))
        .route(LOGIN_PATH, post(login))
        .route(REFRESH_PATH, post(refresh))
        .route(USERS_PATH, get(list_users))
        .route(JWKS_PATH, get(jwks))
        .route("/dev/v1/users/{id}", put(put_user).delete(delete_user))
        .with_state(state)
}

/// An error as the contract describes it: `{"error": code, "message": text}`.
struct Failure {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl Failure {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }
}

impl From<JsonRejection> for Failure {
    fn from(rejection: JsonRejection) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", rejection.body_text())
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.status, Json(serde_json::json!({ "error": self.code, "message": self.message }))).into_response()
    }
}

/// `POST /auth/v1/login` body.
#[derive(Deserialize)]
struct LoginRequest {
    login: String,
    password: String,
}

/// `POST /auth/v1/refresh` body.
#[derive(Deserialize)]
struct RefreshRequest {
    refresh_token: String,
}

/// A user as the login answer and the user list show it (never the password).
#[derive(Serialize)]
struct UserInfo {
    id: String,
    login: String,
    name: String,
    email: String,
    roles: Vec<String>,
}

impl From<&SeedUser> for UserInfo {
    fn from(user: &SeedUser) -> Self {
        Self {
            id: user.id.clone(),
            login: user.login.clone(),
            name: user.name.clone(),
            email: user.email.clone(),
            roles: user.roles.clone(),
        }
    }
}

/// The answer of login and refresh.
#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    refresh_token: String,
    token_type: &'static str,
    /// Seconds the access token lives.
    expires_in: u64,
    /// Seconds the refresh token lives.
    refresh_expires_in: u64,
    user: UserInfo,
}

fn tokens_for(state: &AppState, user: &SeedUser) -> Result<Json<TokenResponse>, Failure> {
    let pair = state.signer.issue(user).map_err(|e| {
        tracing::error!(error = %e, "signing failed");
        Failure::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "signing the token failed")
    })?;
    Ok(Json(TokenResponse {
        access_token: pair.access,
        refresh_token: pair.refresh,
        token_type: "Bearer",
        expires_in: state.signer.access_ttl().as_secs(),
        refresh_expires_in: state.signer.refresh_ttl().as_secs(),
        user: user.into(),
    }))
}

/// The address of the person signing in, as Meridian forwards it (`X-Forwarded-For`, the
/// leftmost entry: Meridian sends exactly one), else the caller's own. A real Auth service
/// believes the header only from Meridian's nodes; the stand-in serves nothing else.
fn client_of(headers: &HeaderMap, peer: SocketAddr) -> String {
    headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.trim().parse::<IpAddr>().ok())
        .unwrap_or_else(|| peer.ip())
        .to_string()
}

async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<LoginRequest>, JsonRejection>,
) -> Result<Json<TokenResponse>, Failure> {
    let Json(request) = body?;
    let client = client_of(&headers, peer);
    let Some(user) = state.users.authenticate(&request.login, &request.password) else {
        tracing::info!(login = %request.login, %client, "sign-in refused");
        return Err(Failure::new(StatusCode::UNAUTHORIZED, "invalid_credentials", "wrong login or password"));
    };
    tracing::info!(user = %user.id, login = %user.login, %client, "signed in");
    tokens_for(&state, &user)
}

async fn refresh(
    State(state): State<AppState>,
    body: Result<Json<RefreshRequest>, JsonRejection>,
) -> Result<Json<TokenResponse>, Failure> {
    let Json(request) = body?;
    let invalid = |message: String| Failure::new(StatusCode::UNAUTHORIZED, "invalid_token", message);
    let id = state.signer.check_refresh(&request.refresh_token).map_err(|e| invalid(e.to_string()))?;
    // Roles are read again, so a refresh picks up changes; a removed user cannot refresh.
    let user = state.users.get(&id).ok_or_else(|| invalid(format!("user {id:?} no longer exists")))?;
    tokens_for(&state, &user)
}

/// Refuses callers without the service token.
fn require_service(state: &AppState, headers: &HeaderMap) -> Result<(), Failure> {
    let presented = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if bool::from(presented.as_bytes().ct_eq(state.config.service_token.as_bytes())) {
        Ok(())
    } else {
        Err(Failure::new(StatusCode::UNAUTHORIZED, "unauthorized", "this endpoint needs the service token (Bearer)"))
    }
}

/// `GET /auth/v1/users` query.
#[derive(Deserialize)]
struct PageQuery {
    /// Page size (1..=500, default 100).
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// One page of the user list.
#[derive(Serialize)]
struct UserPage {
    users: Vec<UserInfo>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    next_cursor: Option<String>,
}

async fn list_users(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<PageQuery>,
) -> Result<Json<UserPage>, Failure> {
    require_service(&state, &headers)?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Failure::new(StatusCode::BAD_REQUEST, "bad_request", format!("limit must be 1..={MAX_PAGE}")));
    }
    // The cursor is the last id of the previous page; clients treat it as opaque.
    let (users, more) = state.users.page(query.cursor.as_deref(), limit);
    let next_cursor = if more { users.last().map(|u| u.id.clone()) } else { None };
    Ok(Json(UserPage { users: users.iter().map(UserInfo::from).collect(), next_cursor }))
}

async fn jwks(State(state): State<AppState>) -> Response {
    if state.signer.jwks().keys.is_empty() {
        return Failure::new(StatusCode::NOT_FOUND, "not_found", "this service signs with HS256: no public keys")
            .into_response();
    }
    Json(state.signer.jwks().clone()).into_response()
}

/// `PUT /dev/v1/users/{id}` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutUser {
    login: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    password: String,
    #[serde(default)]
    roles: Vec<String>,
}

async fn put_user(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<PutUser>, JsonRejection>,
) -> Result<StatusCode, Failure> {
    require_service(&state, &headers)?;
    let Json(body) = body?;
    if body.login.is_empty() {
        return Err(Failure::new(StatusCode::BAD_REQUEST, "bad_request", "login must not be empty"));
    }
    let user = SeedUser {
        id: id.clone(),
        login: body.login,
        name: body.name,
        email: body.email,
        password: body.password,
        roles: body.roles,
    };
    let created =
        state.users.upsert(user).map_err(|e| Failure::new(StatusCode::CONFLICT, "conflict", e.to_string()))?;
    tracing::info!(user = %id, created, "user changed upstream (dev endpoint)");
    Ok(if created { StatusCode::CREATED } else { StatusCode::OK })
}

async fn delete_user(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, Failure> {
    require_service(&state, &headers)?;
    if state.users.remove(&id) {
        tracing::info!(user = %id, "user removed upstream (dev endpoint)");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Failure::new(StatusCode::NOT_FOUND, "not_found", format!("no user {id:?}")))
    }
}
