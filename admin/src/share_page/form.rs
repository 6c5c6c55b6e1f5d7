//! A share link's form, for links with a password or a download limit: the page with its CSRF
//! cookie, and its `POST`, checked for the CSRF token, then for the password (attempts limited,
//! argon2 under permits) before the download.

use std::net::SocketAddr;
use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordVerifier as _};
use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use meridian_raft::model::ShareAudience;
use serde::Deserialize;
use subtle::ConstantTimeEq as _;

use super::download::hand_out;
use super::messages::{error_page, page, too_many};
use crate::access::usable_link;
use crate::identity::cookies::{self, CookieSecure};
use crate::route::{locate, routing};
use crate::shares::MAX_PASSWORD_LEN;
use crate::{ApiError, WebState};

/// The cookie carrying the CSRF token of a link's form (one per link: `Path=/s/{token}`).
const CSRF_COOKIE: &str = "meridian_share_csrf";

/// The link's form (a password field when `password`), with its CSRF token in a hidden field
/// and in a cookie scoped to this link. A token the browser already holds for the link is kept,
/// so a second tab or a reload does not void the first tab's form.
pub(super) fn link_form(
    state: &WebState,
    headers: &HeaderMap,
    status: StatusCode,
    token: &str,
    password: bool,
    message: Option<&str>,
) -> Response {
    let csrf = cookies::read(headers, CSRF_COOKIE)
        .filter(|c| c.len() == 32 && c.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(|| hex::encode(rand::random::<[u8; 16]>()));
    let mut response = crate::pages::link_form(status, token, &csrf, password, message);
    let policy = state.identity.as_ref().map_or(CookieSecure::Auto, |i| i.cookie.secure);
    let secure = if policy.applies(headers) { "; Secure" } else { "" };
    let cookie = format!("{CSRF_COOKIE}={csrf}; Path=/s/{token}; HttpOnly; SameSite=Strict{secure}");
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(SET_COOKIE, value);
    }
    response
}

/// The link form's fields.
#[derive(Debug, Deserialize)]
pub(crate) struct LinkForm {
    /// Must equal the CSRF cookie.
    csrf: String,
    /// The link's password (links with one).
    password: Option<String>,
}

/// `POST /s/{token}`: the link's form (password, or the download button of a limited link).
pub(crate) async fn submit(
    State(state): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(token): Path<String>,
    form: Result<Form<LinkForm>, FormRejection>,
) -> Response {
    let share = match usable_link(&state.meta, &token).await {
        Ok(share) => share,
        Err(refusal) => return refusal.into_response(),
    };
    let Ok(Form(form)) = form else {
        return page(StatusCode::BAD_REQUEST, "Form not understood", "Reload the link and try again.");
    };
    let cookie = cookies::read(&headers, CSRF_COOKIE).unwrap_or_default();
    if !cookies::same_origin(&headers)
        || cookie.is_empty()
        || !bool::from(cookie.as_bytes().ct_eq(form.csrf.as_bytes()))
    {
        tracing::warn!(share = %share.id, client = %peer.ip(), "share link form refused: CSRF token missing or wrong");
        return page(StatusCode::FORBIDDEN, "Form expired", "Reload the link and try again.");
    }
    let ShareAudience::Public { password_hash: Some(hash), .. } = &share.audience else {
        return hand_out(&state, &share, peer, &headers).await;
    };
    let client = routing(&state).and_then(|r| locate(r, peer, &headers, None)).map_or(peer.ip(), |c| c.address.ip);
    let links = &state.share_links;
    let reservation = match links.attempts.reserve(&share.id, client) {
        Ok(reservation) => reservation,
        Err(refused) => {
            tracing::warn!(share = %share.id, %client, why = ?refused.why, "share password attempts over the limit");
            let message = "Too many wrong passwords. Wait a few minutes and try again.";
            return too_many("Too many attempts", message, refused.retry_after_secs());
        }
    };
    let password = form.password.unwrap_or_default();
    // Longer than any password a link can have: wrong, without spending argon2 on it.
    let right = if password.is_empty() || password.len() > MAX_PASSWORD_LEN {
        false
    } else {
        let Ok(permit) = Arc::clone(&links.verifying).try_acquire_owned() else {
            links.attempts.release(&reservation);
            tracing::warn!(share = %share.id, %client, "share password checks busy");
            return too_many("Too many attempts", "Too many attempts right now. Try again in a few seconds.", 5);
        };
        let hash = hash.clone();
        let checked = tokio::task::spawn_blocking(move || {
            // Held until argon2 is done, even if the client has gone.
            let _permit = permit;
            PasswordHash::new(&hash)
                .is_ok_and(|parsed| argon2::Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
        })
        .await;
        match checked {
            Ok(right) => right,
            Err(e) => return error_page(&ApiError::internal("checking the password", &e)),
        }
    };
    if !right {
        tracing::warn!(share = %share.id, %client, "wrong share password");
        let message = Some("That did not work. Check the password and try again.");
        return link_form(&state, &headers, StatusCode::UNAUTHORIZED, &token, true, message);
    }
    links.attempts.release(&reservation);
    hand_out(&state, &share, peer, &headers).await
}
