//! The one error type of the JSON API: a status code and a message a person can act on.

use axum::Json;
use axum::http::StatusCode;
use axum::http::header::WWW_AUTHENTICATE;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error answered by a `/api/v1/...` route as `{"error": code, "message": text}`.
///
/// Every handler returns `Result<_, ApiError>`, so a bad request is always a 4xx with a message
/// and never a panic or an empty 500.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable machine-readable code (`unauthorized`, `not_found`, ...).
    pub code: &'static str,
    /// What went wrong, for a person.
    pub message: String,
}

impl ApiError {
    /// 400: the request itself is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, code: "bad_request", message: message.into() }
    }

    /// 401: no credentials, or credentials that do not verify.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self { status: StatusCode::UNAUTHORIZED, code: "unauthorized", message: message.into() }
    }

    /// 403: the caller is known but may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self { status: StatusCode::FORBIDDEN, code: "forbidden", message: message.into() }
    }

    /// 404: the thing named in the path does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self { status: StatusCode::NOT_FOUND, code: "not_found", message: message.into() }
    }

    /// 503: the node cannot answer right now (no leader, store unavailable); retrying may work.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self { status: StatusCode::SERVICE_UNAVAILABLE, code: "unavailable", message: message.into() }
    }

    /// 500 for a failure of this node (its store), logged with the cause.
    pub fn internal(context: &str, error: &dyn std::fmt::Display) -> Self {
        tracing::error!(%error, context, "web API request failed");
        Self { status: StatusCode::INTERNAL_SERVER_ERROR, code: "internal", message: format!("{context} failed") }
    }
    /// A proposal that was not committed ([`meridian_raft::MetaStore::propose`]): 503 while the
    /// cluster cannot commit (a retry may work), 500 when this node's own store failed; the
    /// rule is [`meridian_raft::ProposeError::is_unavailable`], the same the S3 gateway maps by.
    pub fn propose(error: &meridian_raft::ProposeError) -> Self {
        if error.is_unavailable() {
            Self::unavailable(format!("cannot commit: {error}"))
        } else {
            Self::internal("committing", error)
        }
    }

    /// A confirmed read of `what` ([`meridian_raft::MetaStore::read_confirmed`]) that failed: 500
    /// for the local store, 503 when the leader could not confirm that it is absent.
    pub fn read(what: &str, error: &meridian_raft::ReadError) -> Self {
        match error {
            meridian_raft::ReadError::Store(e) => Self::internal(&format!("reading {what}"), e),
            meridian_raft::ReadError::Unconfirmed(_) => Self::unavailable(format!("{what}: {error}")),
        }
    }
}

/// The JSON body of an [`ApiError`].
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(ErrorBody { error: self.code, message: &self.message });
        if self.status == StatusCode::UNAUTHORIZED {
            // Tells HTTP clients which schemes the API takes.
            (self.status, [(WWW_AUTHENTICATE, "Basic realm=\"meridian\", Bearer")], body).into_response()
        } else {
            (self.status, body).into_response()
        }
    }
}

/// The page size a listing asked for (`limit`), `default` when absent; a 400 outside 1..=`max`.
/// One rule for every paged route of the API.
pub(crate) fn page_limit(asked: Option<usize>, default: usize, max: usize) -> Result<usize, ApiError> {
    let limit = asked.unwrap_or(default);
    if (1..=max).contains(&limit) { Ok(limit) } else { Err(ApiError::bad_request(format!("limit must be 1 to {max}"))) }
}
