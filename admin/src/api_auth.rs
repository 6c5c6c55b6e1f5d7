//! Who is calling the JSON API, for the routes that other services of the cinema use (events,
//! placement, routing).
//!
//! Two kinds of machine credentials are accepted:
//! - an S3 access key, as HTTP Basic `access_key_id:secret_access_key`: the same keys SDKs use,
//!   checked against the replicated key store;
//! - a service token, as `Authorization: Bearer TOKEN`: a random string whose SHA-256 is listed in
//!   `cluster.toml` (`[[api.service_token]]`), so the configuration never holds the token itself.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::WebState;
use crate::error::ApiError;

/// A service allowed to call the API with a bearer token.
#[derive(Debug, Clone)]
pub struct ServiceToken {
    /// Who the token belongs to; shown in logs and as the actor of what it does.
    pub name: String,
    /// SHA-256 of the token.
    pub sha256: [u8; 32],
}

/// An authenticated caller of the JSON API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiCaller {
    /// Signed in with an S3 access key (its id).
    AccessKey(String),
    /// Signed in with a configured service token (its name).
    Service(String),
}

impl ApiCaller {
    /// A short name of the caller for logs and event actors, e.g. `key:MERIDIAN...`.
    pub fn actor(&self) -> String {
        self.as_actor().to_string()
    }

    /// The caller as the actor of the commands it causes (see [`meridian_raft::Command::Attributed`]).
    pub fn as_actor(&self) -> meridian_raft::Actor {
        match self {
            Self::AccessKey(id) => meridian_raft::Actor::AccessKey(id.clone()),
            Self::Service(name) => meridian_raft::Actor::Service(name.clone()),
        }
    }
}

impl FromRequestParts<WebState> for ApiCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("this API needs an access key (Basic) or a service token (Bearer)"))?
            .to_str()
            .map_err(|_| ApiError::unauthorized("the Authorization header is not text"))?;
        let (scheme, credentials) = header.split_once(' ').unwrap_or((header, ""));
        let credentials = credentials.trim();
        if scheme.eq_ignore_ascii_case("basic") {
            access_key(state, credentials).inspect_err(|error| {
                tracing::warn!(reason = %error.message, "web API access key refused");
            })
        } else if scheme.eq_ignore_ascii_case("bearer") {
            service_token(state, credentials).ok_or_else(|| {
                tracing::warn!("web API bearer token refused");
                ApiError::unauthorized("unknown token")
            })
        } else {
            Err(ApiError::unauthorized(format!("unsupported authorization scheme {scheme:?}")))
        }
    }
}

/// Checks `base64(id:secret)` against the key store.
fn access_key(state: &WebState, credentials: &str) -> Result<ApiCaller, ApiError> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(credentials)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| ApiError::unauthorized("malformed Basic credentials"))?;
    let (id, secret) =
        decoded.split_once(':').ok_or_else(|| ApiError::unauthorized("Basic credentials must be id:secret"))?;
    // A disabled key is refused like an unknown one.
    let key = state.meta.usable_access_key(id).map_err(|e| ApiError::internal("reading the key store", &e))?;
    // Same message for an unknown id and a wrong secret: the answer must not tell which ids exist.
    let key = key.ok_or_else(|| ApiError::unauthorized("unknown access key or wrong secret"))?;
    if bool::from(key.secret.as_bytes().ct_eq(secret.as_bytes())) {
        Ok(ApiCaller::AccessKey(key.id))
    } else {
        Err(ApiError::unauthorized("unknown access key or wrong secret"))
    }
}

/// Looks the token's hash up among the configured service tokens.
fn service_token(state: &WebState, token: &str) -> Option<ApiCaller> {
    let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    state
        .service_tokens
        .iter()
        .find(|known| bool::from(known.sha256.ct_eq(&digest)))
        .map(|known| ApiCaller::Service(known.name.clone()))
}
