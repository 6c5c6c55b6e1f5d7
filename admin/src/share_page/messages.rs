//! The pages a share link answers with when it does not download: not found, gone, too many
//! requests, try again; in the panel's style, never JSON, never naming a bucket or key.

use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::ApiError;
use crate::access::LinkRefusal;

/// A page of the link, in the panel's style, saying `message`.
pub(super) fn page(status: StatusCode, title: &str, message: &str) -> Response {
    crate::pages::link_message(status, title, message)
}

/// The link's 404: unknown, revoked, or its file gone.
pub(super) fn not_found() -> Response {
    page(StatusCode::NOT_FOUND, "Link not found", "This link does not exist or was revoked.")
}

/// 429 with `Retry-After`, as a page a person can read.
pub(super) fn too_many(title: &str, body: &str, retry_after_secs: u64) -> Response {
    let mut response = page(StatusCode::TOO_MANY_REQUESTS, title, body);
    response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
    response
}

/// The page for a failure: the link's own 404 when the file is gone, a 503 when the cluster
/// cannot serve now, a 500 otherwise. Never the JSON error, which names buckets and keys.
pub(super) fn error_page(error: &ApiError) -> Response {
    match error.status {
        StatusCode::NOT_FOUND => not_found(),
        StatusCode::SERVICE_UNAVAILABLE => page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Try again soon",
            "The file cannot be served right now. Try again in a moment.",
        ),
        _ => page(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong", "Try again later."),
    }
}

/// Each refusal as the link's page.
impl IntoResponse for LinkRefusal {
    fn into_response(self) -> Response {
        match self {
            Self::NotFound => not_found(),
            Self::Expired => page(StatusCode::GONE, "Link expired", "This link has expired."),
            Self::Exhausted => page(StatusCode::GONE, "Link used up", "This link has no downloads left."),
            Self::Failed(e) => error_page(&e),
        }
    }
}
