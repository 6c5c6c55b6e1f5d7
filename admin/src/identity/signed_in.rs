//! The signed-in user of a request: the extractor every user-facing route (API and pages) takes.

use std::sync::Arc;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::Serialize;

use super::jwt::TokenError;
use super::{Identity, cookies};
use crate::WebState;
use crate::error::ApiError;

/// How the request carried its access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Credential {
    /// `Authorization: Bearer` (API clients).
    Bearer,
    /// The session cookie (the pages). Pages that change state must also check a CSRF token;
    /// cross-origin requests are already refused here.
    Cookie,
}

/// A person signed in through the cinema's Auth service, as proven by a valid access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedInUser {
    /// The Auth service's user id (`sub`).
    pub id: String,
    /// The roles of the token.
    pub roles: Vec<String>,
    /// When the access token expires (seconds since the epoch): a page can refresh before.
    pub expires_at: u64,
    /// How the token came.
    pub via: Credential,
}

impl SignedInUser {
    /// Whether the user may see and manage everything.
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|r| r == "admin")
    }

    /// The user as the store's access rule sees them ([`meridian_raft::access`]).
    pub fn person(&self) -> meridian_raft::access::Person<'_> {
        meridian_raft::access::Person { id: &self.id, admin: self.is_admin() }
    }

    /// A short name for logs and history entries, e.g. `user:u-alice`.
    pub fn actor(&self) -> String {
        format!("user:{}", self.id)
    }
}

/// 401 for a refused token, with the reason's code; 503 when the keys cannot be had.
impl From<TokenError> for ApiError {
    fn from(error: TokenError) -> Self {
        let status = match error {
            TokenError::KeysUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        };
        ApiError { status, code: error.code(), message: error.to_string() }
    }
}

/// The identity part, or 503 when `[auth]` is not configured on this node.
pub(crate) fn identity(state: &WebState) -> Result<&Arc<Identity>, ApiError> {
    state.identity.as_ref().ok_or_else(|| ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        code: "auth_not_configured",
        message: "sign-in is not configured on this node ([auth] in cluster.toml)".into(),
    })
}

/// The token a request carries and how: the `Authorization` header wins over the cookie.
fn presented_token(parts: &Parts, identity: &Identity) -> Result<Option<(String, Credential)>, ApiError> {
    if let Some(header) = parts.headers.get(AUTHORIZATION) {
        let header = header.to_str().map_err(|_| ApiError::unauthorized("the Authorization header is not text"))?;
        let (scheme, token) = header.split_once(' ').unwrap_or((header, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(ApiError::unauthorized("sign in as a user: send Authorization: Bearer <access token>"));
        }
        return Ok(Some((token.trim().to_owned(), Credential::Bearer)));
    }
    Ok(cookies::read(&parts.headers, &identity.cookie.name).map(|token| (token, Credential::Cookie)))
}

impl FromRequestParts<WebState> for SignedInUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, Self::Rejection> {
        let identity = identity(state)?;
        let (token, via) = presented_token(parts, identity)?.ok_or_else(|| ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "not_signed_in",
            message: "sign in first (POST /api/v1/session), then send the access token as Bearer".into(),
        })?;
        if via == Credential::Cookie && !parts.method.is_safe() && !cookies::same_origin(&parts.headers) {
            tracing::warn!(path = %parts.uri.path(), "cross-origin request with the session cookie refused");
            return Err(ApiError::forbidden("cross-origin request refused"));
        }
        let claims = identity.verifier.verify(&token).await.inspect_err(|error| {
            tracing::info!(reason = %error, code = error.code(), ?via, "access token refused");
        })?;
        // A user the sync found deleted upstream loses access at once, not when the token expires.
        let known = state.meta.user(&claims.sub).map_err(|e| ApiError::internal("reading the user list", &e))?;
        if known.is_some_and(|user| user.deleted.is_some()) {
            return Err(ApiError {
                status: StatusCode::UNAUTHORIZED,
                code: "user_deleted",
                message: "this user was removed at the Auth service".into(),
            });
        }
        Ok(SignedInUser { id: claims.sub, roles: claims.roles, expires_at: claims.exp, via })
    }
}

/// For pages that look different when signed in: `None` instead of a rejection when there is
/// no valid session (the page then offers the sign-in form).
impl OptionalFromRequestParts<WebState> for SignedInUser {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Option<Self>, Self::Rejection> {
        Ok(<Self as FromRequestParts<WebState>>::from_request_parts(parts, state).await.ok())
    }
}
