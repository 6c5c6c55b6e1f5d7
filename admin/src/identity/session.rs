//! Signing in and out: `POST /api/v1/session` (login and password, checked by the Auth service),
//! `POST /api/v1/session/refresh`, `DELETE /api/v1/session`, and `GET /api/v1/me`.
//!
//! Sign-in and refresh answer the tokens in the body (for API clients) and set two HttpOnly
//! cookies (for the pages): the access token, living as long as it does, and the refresh token.
//! A page refreshes before `expires_at` by calling `POST /api/v1/session/refresh` with no body:
//! the refresh cookie is enough.

use std::net::{IpAddr, SocketAddr};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::header::{RETRY_AFTER, SET_COOKIE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{AppendHeaders, IntoResponse, Response};
use meridian_raft::Command;
use meridian_raft::model::UserProfile;
use serde::{Deserialize, Serialize};

use super::jwt::{AccessClaims, unverified_expiry};
use super::signed_in::{Credential, SignedInUser, identity};
use super::upstream::{TokenGrant, UpstreamError};
use super::{Identity, cookies, now_millis, now_secs};
use crate::WebState;
use crate::error::ApiError;

/// Longest login accepted (the Auth service's logins are far shorter).
const MAX_LOGIN: usize = 256;
/// Longest password accepted.
const MAX_PASSWORD: usize = 1024;

/// `POST /api/v1/session` body.
#[derive(Deserialize)]
pub(crate) struct SignInRequest {
    /// What the person signs in with.
    login: String,
    /// The password, passed through to the Auth service and never stored.
    password: String,
}

/// `POST /api/v1/session/refresh` body (optional: the refresh cookie does as well).
#[derive(Deserialize)]
struct RefreshRequest {
    /// The refresh token of the sign-in.
    refresh_token: String,
}

/// The signed-in user as `GET /api/v1/me` and the session answers show it.
#[derive(Serialize)]
pub(crate) struct Me {
    /// User id.
    id: String,
    /// Sign-in name.
    login: String,
    /// Display name.
    name: String,
    /// E-mail.
    email: String,
    /// Roles of the token.
    roles: Vec<String>,
    /// Whether the user is an administrator.
    admin: bool,
    /// Last sign-in through this panel (ms since the epoch), when known.
    last_sign_in: Option<i64>,
}

/// The answer of sign-in and refresh.
#[derive(Serialize)]
pub(crate) struct SessionBody {
    /// Who is signed in.
    user: Me,
    /// The access token, for `Authorization: Bearer`.
    access_token: String,
    /// The refresh token, for `POST /api/v1/session/refresh`.
    refresh_token: String,
    /// Always `Bearer`.
    token_type: &'static str,
    /// Seconds the access token lives.
    expires_in: u64,
    /// When the access token expires (seconds since the epoch): refresh before.
    expires_at: u64,
    /// When the refresh token expires, when known.
    refresh_expires_at: Option<u64>,
}

/// `GET /api/v1/me` answer: the user plus the session.
#[derive(Serialize)]
pub(crate) struct MeBody {
    #[serde(flatten)]
    user: Me,
    /// How this request was authenticated.
    via: Credential,
    /// When its access token expires.
    expires_at: u64,
}

/// 502 for an Auth service that is away or breaks the contract.
fn bad_gateway(code: &'static str, message: String) -> ApiError {
    tracing::error!(code, %message, "Auth service call failed");
    ApiError { status: StatusCode::BAD_GATEWAY, code, message }
}

fn upstream_error(error: UpstreamError, refused: ApiError) -> ApiError {
    match error {
        UpstreamError::Refused(detail) => {
            tracing::info!(%detail, "the Auth service refused");
            refused
        }
        other => bad_gateway("auth_unavailable", other.to_string()),
    }
}

/// 403 for a browser request from a page of another origin.
fn require_same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    if cookies::same_origin(headers) { Ok(()) } else { Err(ApiError::forbidden("cross-origin request refused")) }
}

/// Checks the access token the Auth service just issued: a token this node would refuse
/// afterwards means the two are configured differently, which must show at sign-in.
async fn verify_grant(identity: &Identity, grant: &TokenGrant) -> Result<AccessClaims, ApiError> {
    identity.verifier.verify(&grant.access_token).await.map_err(|e| {
        bad_gateway(
            "auth_misconfigured",
            format!(
                "the Auth service issued an access token this node does not accept: {e} (check [auth] in cluster.toml)"
            ),
        )
    })
}

/// The user's profile: as the Auth service answered it, else as stored, else from the token.
fn profile_of(state: &WebState, grant: &TokenGrant, claims: &AccessClaims) -> Result<UserProfile, ApiError> {
    if let Some(user) = &grant.user {
        if user.id != claims.sub {
            return Err(bad_gateway(
                "auth_misconfigured",
                format!("the login answer names user {:?} but the token is for {:?}", user.id, claims.sub),
            ));
        }
        return Ok(user.clone().into());
    }
    let stored = state.meta.user(&claims.sub).map_err(|e| ApiError::internal("reading the user list", &e))?;
    Ok(match stored {
        Some(user) => UserProfile { roles: claims.roles.clone(), ..user.profile },
        None => UserProfile {
            id: claims.sub.clone(),
            login: claims.sub.clone(),
            name: String::new(),
            email: String::new(),
            roles: claims.roles.clone(),
        },
    })
}

/// A session the Auth service just granted, checked by this node: what sign-in and refresh
/// hand to the API's JSON answer or to the pages' redirect.
pub(crate) struct Session {
    /// The tokens as the Auth service issued them.
    grant: TokenGrant,
    /// The verified claims of the access token.
    claims: AccessClaims,
    /// Who signed in.
    profile: UserProfile,
    /// The sign-in time recorded in the user list, when known.
    last_sign_in: Option<i64>,
}

impl Session {
    /// The new access token (the pages put it in the request they are serving).
    pub(crate) fn access_token(&self) -> &str {
        &self.grant.access_token
    }
}

/// The two `Set-Cookie` values of a session: the access token, living as long as it does, and
/// the refresh token.
pub(crate) fn session_cookies(identity: &Identity, headers: &HeaderMap, session: &Session) -> [HeaderValue; 2] {
    let now = now_secs();
    let cookie = &identity.cookie;
    let access =
        cookie.set(&cookie.name, &session.grant.access_token, Some(session.claims.exp.saturating_sub(now)), headers);
    let refresh = cookie.set(
        &cookie.refresh_name(),
        &session.grant.refresh_token,
        refresh_expires_at(&session.grant).map(|at| at.saturating_sub(now)),
        headers,
    );
    [access, refresh]
}

/// When the refresh token expires: as the Auth service said, else its JWT `exp`.
fn refresh_expires_at(grant: &TokenGrant) -> Option<u64> {
    grant.refresh_expires_in.map(|s| now_secs() + s).or_else(|| unverified_expiry(&grant.refresh_token))
}

/// The answer of a sign-in or refresh: the body and both cookies.
fn session_response(identity: &Identity, headers: &HeaderMap, session: Session) -> Response {
    let [access_cookie, refresh_cookie] = session_cookies(identity, headers, &session);
    let Session { grant, claims, profile, last_sign_in } = session;
    let refresh_expires_at = refresh_expires_at(&grant);
    let body = SessionBody {
        user: Me {
            admin: claims.roles.iter().any(|r| r == "admin"),
            roles: claims.roles.clone(),
            id: profile.id,
            login: profile.login,
            name: profile.name,
            email: profile.email,
            last_sign_in,
        },
        access_token: grant.access_token,
        refresh_token: grant.refresh_token,
        token_type: "Bearer",
        expires_in: grant.expires_in,
        expires_at: claims.exp,
        refresh_expires_at,
    };
    (AppendHeaders([(SET_COOKIE, access_cookie), (SET_COOKIE, refresh_cookie)]), Json(body)).into_response()
}

/// The code of the error a throttled sign-in answers.
pub(crate) const TOO_MANY_ATTEMPTS: &str = "too_many_attempts";

/// A sign-in that opened no session: the API's error, and for a throttled one, when to try
/// again (`Retry-After`).
#[derive(Debug)]
pub(crate) struct SignInError {
    /// The error as the API answers it.
    pub(crate) error: ApiError,
    /// Seconds until another attempt may be allowed (throttled sign-ins only).
    pub(crate) retry_after_secs: Option<u64>,
}

impl From<ApiError> for SignInError {
    fn from(error: ApiError) -> Self {
        Self { error, retry_after_secs: None }
    }
}

impl IntoResponse for SignInError {
    fn into_response(self) -> Response {
        let mut response = self.error.into_response();
        if let Some(secs) = self.retry_after_secs {
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// The address of the person signing in: the peer, or what a trusted proxy forwarded.
pub(crate) fn client_of(state: &WebState, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
    crate::route::routing(state)
        .and_then(|routing| crate::route::locate(routing, peer, headers, None))
        .map_or_else(|_| peer.ip().to_canonical(), |located| located.address.ip)
}

/// Signs `login` in at the Auth service, checks the token it issues and upserts the user into
/// the replicated user list (with the sign-in time). Shared by the API and the sign-in page.
///
/// Every attempt is reserved against the budgets of the login and of `client` before the
/// password leaves this node; only an attempt the Auth service refuses keeps counting. Past
/// either budget the answer is 429 and the Auth service is not asked.
pub(crate) async fn open_session(
    state: &WebState,
    identity: &Identity,
    login: &str,
    password: &str,
    client: IpAddr,
) -> Result<Session, SignInError> {
    if login.is_empty() || login.len() > MAX_LOGIN {
        return Err(ApiError::bad_request(format!("login must be 1 to {MAX_LOGIN} bytes")).into());
    }
    if password.len() > MAX_PASSWORD {
        return Err(ApiError::bad_request(format!("password must be at most {MAX_PASSWORD} bytes")).into());
    }
    // One budget per login however it is spelled.
    let reservation = match identity.sign_in_attempts.reserve(&login.to_lowercase(), client) {
        Ok(reservation) => reservation,
        Err(refused) => {
            tracing::warn!(%login, %client, why = ?refused.why, "sign-in attempts over the limit");
            let secs = refused.retry_after_secs();
            let error = ApiError {
                status: StatusCode::TOO_MANY_REQUESTS,
                code: TOO_MANY_ATTEMPTS,
                message: format!("too many failed sign-ins; try again in {secs} seconds"),
            };
            return Err(SignInError { error, retry_after_secs: Some(secs) });
        }
    };
    let refused = ApiError {
        status: StatusCode::UNAUTHORIZED,
        code: "invalid_credentials",
        message: "wrong login or password".into(),
    };
    let grant = match identity.upstream.login(login, password, client).await {
        Ok(grant) => grant,
        Err(UpstreamError::Refused(detail)) => {
            tracing::info!(%login, %client, %detail, "the Auth service refused the sign-in");
            return Err(refused.into());
        }
        Err(other) => {
            // Not the person's doing: the attempt does not count.
            identity.sign_in_attempts.release(&reservation);
            return Err(upstream_error(other, refused).into());
        }
    };
    identity.sign_in_attempts.release(&reservation);
    let claims = verify_grant(identity, &grant).await?;
    let profile = profile_of(state, &grant, &claims)?;
    let at = now_millis();
    // The sign-in stands even if the cluster cannot commit right now: the user list is for
    // sharing, and the next sync catches up.
    let upsert = Command::UpsertUsers { users: vec![profile.clone()], at, sign_in: true };
    let last_sign_in = match state.meta.propose(upsert).await {
        Ok(_) => Some(at),
        Err(error) => {
            tracing::warn!(user = %profile.id, %error, "could not record the sign-in in the user list");
            None
        }
    };
    tracing::info!(user = %profile.id, login = %profile.login, %client, admin = claims.roles.iter().any(|r| r == "admin"), "signed in");
    Ok(Session { grant, claims, profile, last_sign_in })
}

/// `POST /api/v1/session`: login and password to the Auth service; tokens back, cookies set,
/// and the user upserted into the replicated user list. 429 with `Retry-After` past the
/// sign-in limits.
pub(crate) async fn sign_in(
    State(state): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<SignInRequest>, JsonRejection>,
) -> Result<Response, SignInError> {
    let identity = identity(&state)?;
    require_same_origin(&headers)?;
    let Json(request) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let client = client_of(&state, peer, &headers);
    let session = open_session(&state, identity, &request.login, &request.password, client).await?;
    Ok(session_response(identity, &headers, session))
}

/// The code of the error [`renew_session`] answers when the Auth service refuses the refresh
/// token: the caller must sign in again (and its cookies are stale).
pub(crate) const REFRESH_REFUSED: &str = "refresh_refused";

/// New tokens for `refresh_token` from the Auth service, checked by this node. Shared by the
/// API and the pages (which refresh on their own when the access token is about to expire).
pub(crate) async fn renew_session(
    state: &WebState,
    identity: &Identity,
    refresh_token: &str,
) -> Result<Session, ApiError> {
    let grant = match identity.upstream.refresh(refresh_token).await {
        Ok(grant) => grant,
        Err(UpstreamError::Refused(detail)) => {
            tracing::info!(%detail, "refresh refused by the Auth service");
            return Err(ApiError {
                status: StatusCode::UNAUTHORIZED,
                code: REFRESH_REFUSED,
                message: format!("the refresh token was refused; sign in again ({detail})"),
            });
        }
        Err(other) => return Err(bad_gateway("auth_unavailable", other.to_string())),
    };
    let claims = verify_grant(identity, &grant).await?;
    let profile = profile_of(state, &grant, &claims)?;
    let last_sign_in = state.meta.user(&claims.sub).ok().flatten().and_then(|u| u.last_sign_in);
    tracing::debug!(user = %claims.sub, "session refreshed");
    Ok(Session { grant, claims, profile, last_sign_in })
}

/// `POST /api/v1/session/refresh`: new tokens for the refresh token of the body, or of the
/// refresh cookie when the body is empty. A refused refresh token clears the cookies.
pub(crate) async fn refresh(
    State(state): State<WebState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let identity = identity(&state)?;
    require_same_origin(&headers)?;
    let token = if body.iter().all(u8::is_ascii_whitespace) {
        cookies::read(&headers, &identity.cookie.refresh_name())
    } else {
        let request: RefreshRequest =
            serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("body: {e}")))?;
        Some(request.refresh_token)
    };
    let Some(token) = token else {
        return Err(ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "not_signed_in",
            message: "no refresh token: send {\"refresh_token\": ...} or the refresh cookie".into(),
        });
    };
    match renew_session(&state, identity, &token).await {
        Ok(session) => Ok(session_response(identity, &headers, session)),
        Err(error) if error.code == REFRESH_REFUSED => {
            Ok((AppendHeaders(clear_cookies(identity, &headers)), error).into_response())
        }
        Err(error) => Err(error),
    }
}

/// `Set-Cookie` values that delete both session cookies.
pub(crate) fn clear_cookies(identity: &Identity, headers: &HeaderMap) -> [(HeaderName, HeaderValue); 2] {
    let cookie = &identity.cookie;
    [(SET_COOKIE, cookie.clear(&cookie.name, headers)), (SET_COOKIE, cookie.clear(&cookie.refresh_name(), headers))]
}

/// `DELETE /api/v1/session`: clears both cookies. Tokens are stateless: an access token copied
/// elsewhere stays valid until it expires, which is why access tokens are short-lived.
pub(crate) async fn sign_out(State(state): State<WebState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let identity = identity(&state)?;
    require_same_origin(&headers)?;
    Ok((StatusCode::NO_CONTENT, AppendHeaders(clear_cookies(identity, &headers))).into_response())
}

/// `GET /api/v1/me`: who the token belongs to.
pub(crate) async fn me(State(state): State<WebState>, user: SignedInUser) -> Result<Json<MeBody>, ApiError> {
    let stored = state.meta.user(&user.id).map_err(|e| ApiError::internal("reading the user list", &e))?;
    let admin = user.is_admin();
    let (profile, last_sign_in) = match stored {
        Some(stored) => (stored.profile, stored.last_sign_in),
        None => (
            UserProfile {
                id: user.id.clone(),
                login: user.id.clone(),
                name: String::new(),
                email: String::new(),
                roles: Vec::new(),
            },
            None,
        ),
    };
    Ok(Json(MeBody {
        user: Me {
            id: user.id,
            login: profile.login,
            name: profile.name,
            email: profile.email,
            roles: user.roles,
            admin,
            last_sign_in,
        },
        via: user.via,
        expires_at: user.expires_at,
    }))
}
