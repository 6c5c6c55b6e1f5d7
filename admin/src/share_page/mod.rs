//! `/s/{token}`: a public share link, opened by anyone who has it.
//!
//! - unknown or revoked: 404; expired or out of downloads: 410 (small HTML pages, never JSON,
//!   never a bucket or key name);
//! - `HEAD` answers the status `GET` would, and never counts a download;
//! - a link with a password or a download limit: `GET` shows a page, and only its form's `POST`
//!   downloads. Link previews (chat apps, mail scanners) only `GET`, so they cannot spend a
//!   limited link's downloads;
//! - a link with neither: `GET` downloads at once;
//! - downloads are limited per link and per client address (`[shares] uses_*`): past the
//!   budget the answer is a 429 page with `Retry-After`, before any work is done;
//! - a download resolves the file and the node and presigns first, then counts the use, then
//!   redirects (302) to a presigned URL valid for `[shares] presign_secs`: a revocation stops new
//!   downloads at once, and URLs already handed out work for at most that long. A link with a
//!   download limit is counted through Raft before the redirect (`UseShare`, which enforces the
//!   limit across nodes); a link without one is counted on the node and committed once per
//!   `[shares] flush_ms` as one count per link (`CountShareUses`, one event per flush), so
//!   anonymous visitors cannot turn each click into a Raft entry and an event;
//! - every `POST` carries a CSRF token that must match a cookie scoped to the link (double
//!   submit; cross-origin posts are refused too). A wrong password gets one generic message;
//!   attempts are reserved before the password is checked, limited per link and per client
//!   address ([`AttemptLimits`](crate::AttemptLimits)), and every refusal is logged. argon2
//!   runs on at most [`MAX_VERIFYING`](limits::MAX_VERIFYING)-per-core blocking threads at
//!   once; past that the answer is 429.
//!
//! Here: the `GET` and `HEAD` entry points, which decide between the link's form and a download.
//! The form and its `POST` are in [`form`], the download in [`download`], the limits and the
//! download counts kept between requests in [`limits`], the message pages in [`messages`];
//! whether a link may be used at all is [`crate::access::usable_link`].

mod download;
mod form;
mod limits;
mod messages;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::header::CACHE_CONTROL;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use meridian_raft::model::{Share, ShareAudience};

pub(crate) use form::submit;
pub(crate) use limits::ShareLinks;
pub use limits::ShareSettings;

use crate::WebState;
use crate::access::usable_link;

/// What `GET` shows for a usable link: `None` to download at once.
fn needs_page(share: &Share) -> Option<bool> {
    match &share.audience {
        ShareAudience::Public { password_hash: Some(_), .. } => Some(true),
        ShareAudience::Public { max_downloads: Some(_), .. } => Some(false),
        _ => None,
    }
}

/// `GET /s/{token}`.
pub(crate) async fn open(
    State(state): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    let share = match usable_link(&state.meta, &token).await {
        Ok(share) => share,
        Err(refusal) => return refusal.into_response(),
    };
    match needs_page(&share) {
        Some(password) => form::link_form(&state, &headers, StatusCode::OK, &token, password, None),
        None => download::hand_out(&state, &share, peer, &headers).await,
    }
}

/// `HEAD /s/{token}`: the status a `GET` would get, without counting anything (a usable link
/// answers 200 even when a `GET` would redirect).
pub(crate) async fn peek(State(state): State<WebState>, Path(token): Path<String>) -> Response {
    match usable_link(&state.meta, &token).await {
        Ok(_) => (StatusCode::OK, [(CACHE_CONTROL, "no-store")]).into_response(),
        Err(refusal) => refusal.into_response(),
    }
}
