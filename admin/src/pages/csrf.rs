//! CSRF tokens of the pages' forms: a double submit. The page layer gives every browser a
//! random token in an HttpOnly, `SameSite=Strict` cookie; every form carries the same value in
//! a hidden `csrf` field; every POST must carry both, equal, and come from this origin (or say
//! no origin). A page of another site can make the browser post, but can neither read the
//! cookie nor, with `SameSite=Strict`, have it sent.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq as _;

use super::PageError;
use crate::error::ApiError;
use crate::identity::cookies;

/// The cookie holding the token (not the share link's `meridian_share_csrf`, which lives on
/// `/s/` only).
pub(crate) const COOKIE: &str = "meridian_csrf";

/// The token of the current request (from its cookie, or fresh), put into the request's
/// extensions by the page layer for the forms of the page.
#[derive(Debug, Clone)]
pub(crate) struct Token(pub(crate) String);

/// A new random token: 128 bits, hex.
pub(crate) fn new_token() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// The token of the request's cookie, if it has the shape of one.
pub(crate) fn from_cookie(headers: &HeaderMap) -> Option<String> {
    cookies::read(headers, COOKIE).filter(|t| t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A form body whose `csrf` field matched the cookie; then parsed as `T`.
pub(crate) struct CsrfForm<T>(pub(crate) T);

/// Just the token field of any form.
#[derive(Deserialize)]
struct Field {
    /// The hidden field.
    csrf: Option<String>,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for CsrfForm<T> {
    type Rejection = PageError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let path = request.uri().path().to_owned();
        let cookie = from_cookie(request.headers());
        let same_origin = cookies::same_origin(request.headers());
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|e| PageError::Api(ApiError::bad_request(format!("form: {e}"))))?;
        let field = serde_urlencoded::from_bytes::<Field>(&body).ok().and_then(|f| f.csrf);
        let valid = match (&cookie, &field) {
            (Some(cookie), Some(field)) => bool::from(cookie.as_bytes().ct_eq(field.as_bytes())),
            _ => false,
        };
        if !valid || !same_origin {
            tracing::warn!(
                %path,
                cookie = cookie.is_some(),
                field = field.is_some(),
                same_origin,
                "form refused: CSRF token missing or wrong"
            );
            return Err(PageError::Csrf);
        }
        serde_urlencoded::from_bytes::<T>(&body)
            .map(CsrfForm)
            .map_err(|e| PageError::Api(ApiError::bad_request(format!("form: {e}"))))
    }
}
