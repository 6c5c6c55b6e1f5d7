//! `/s/{token}`: a public share link, opened by anyone who has it.
//!
//! - unknown or revoked: 404; expired or out of downloads: 410 (both small HTML pages);
//! - no password: the download is counted through Raft (`UseShare`, which also enforces the
//!   limit across nodes) and the browser is sent (302) to a presigned URL on the node geo
//!   routing picks, valid for `[geo] presign_expiry_secs`: the long-lived link never leads to a
//!   long-lived file URL;
//! - a password: a form (POST back here) carrying a CSRF token that must match a cookie set with
//!   the form (double submit; cross-origin posts are refused too). A wrong password gets one
//!   generic message; attempts are limited per link and per client address ([`AttemptLimits`])
//!   and every refusal is logged.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordVerifier as _};
use axum::Form;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::header::{CACHE_CONTROL, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use meridian_raft::model::{Share, ShareAudience};
use meridian_raft::{Command, CommandOutcome};
use serde::Deserialize;
use subtle::ConstantTimeEq as _;

use crate::files::download_url;
use crate::identity::cookies;
use crate::identity::now_millis;
use crate::route::{locate, routing};
use crate::shares::{share_state, token_hash};
use crate::{ApiCaller, ApiError, WebState};

/// The cookie carrying the CSRF token of the password form.
const CSRF_COOKIE: &str = "meridian_share_csrf";
/// Most clients or links tracked at once; past it, stale entries are dropped first.
const MAX_TRACKED: usize = 100_000;

/// How many wrong passwords are tolerated (`[shares]` in `cluster.toml`).
#[derive(Debug, Clone, Copy)]
pub struct AttemptLimits {
    /// Wrong passwords per link within `window`, from anyone.
    pub per_link: u32,
    /// Wrong passwords per client address within `window`, over all links.
    pub per_client: u32,
    /// The sliding window.
    pub window: Duration,
}

impl Default for AttemptLimits {
    fn default() -> Self {
        Self { per_link: 20, per_client: 5, window: Duration::from_secs(300) }
    }
}

/// Recent wrong passwords, per link and per client address, on this node. Not replicated: a
/// guesser spreading attempts over N nodes gets N times the budget, still far too little to
/// guess a password.
pub(crate) struct Attempts {
    /// The limits.
    limits: AttemptLimits,
    /// Times of recent failures by share id.
    by_link: Mutex<HashMap<String, Vec<Instant>>>,
    /// Times of recent failures by client address.
    by_client: Mutex<HashMap<IpAddr, Vec<Instant>>>,
}

impl Attempts {
    pub(crate) fn new(limits: AttemptLimits) -> Self {
        Self { limits, by_link: Mutex::default(), by_client: Mutex::default() }
    }

    /// Failures within the window, dropping older ones.
    fn recent<K: std::hash::Hash + Eq + Clone>(&self, map: &Mutex<HashMap<K, Vec<Instant>>>, key: &K) -> usize {
        let window = self.limits.window;
        let mut map = map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() > MAX_TRACKED {
            map.retain(|_, times| times.iter().any(|t| t.elapsed() < window));
        }
        map.get_mut(key).map_or(0, |times| {
            times.retain(|t| t.elapsed() < window);
            times.len()
        })
    }

    fn note<K: std::hash::Hash + Eq>(map: &Mutex<HashMap<K, Vec<Instant>>>, key: K) {
        map.lock().unwrap_or_else(std::sync::PoisonError::into_inner).entry(key).or_default().push(Instant::now());
    }

    /// Whether another attempt is allowed now.
    fn allowed(&self, link: &str, client: IpAddr) -> bool {
        self.recent(&self.by_link, &link.to_owned()) < self.limits.per_link as usize
            && self.recent(&self.by_client, &client) < self.limits.per_client as usize
    }

    fn failed(&self, link: &str, client: IpAddr) {
        Self::note(&self.by_link, link.to_owned());
        Self::note(&self.by_client, client);
    }
}

/// A page of the link, in the panel's style, saying `message`.
fn page(status: StatusCode, title: &str, message: &str) -> Response {
    crate::pages::link_message(status, title, message)
}

/// The 404 / 410 pages, or `None` when the link can be used.
fn unusable(share: Option<&Share>) -> Option<Response> {
    let Some(share) = share else {
        return Some(page(StatusCode::NOT_FOUND, "Link not found", "This link does not exist or was revoked."));
    };
    match share_state(share, now_millis()) {
        "revoked" => Some(page(StatusCode::NOT_FOUND, "Link not found", "This link does not exist or was revoked.")),
        "expired" => Some(page(StatusCode::GONE, "Link expired", "This link has expired.")),
        "exhausted" => Some(page(StatusCode::GONE, "Link used up", "This link has no downloads left.")),
        _ => None,
    }
}

/// The password form, with a fresh CSRF token in the form and its cookie.
fn password_form(status: StatusCode, token: &str, message: Option<&str>) -> Response {
    let csrf = hex::encode(rand::random::<[u8; 16]>());
    let mut response = crate::pages::link_password(status, token, &csrf, message);
    let cookie = format!("{CSRF_COOKIE}={csrf}; Path=/s/; HttpOnly; SameSite=Strict");
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(SET_COOKIE, value);
    }
    response
}

/// Counts the download through Raft, then redirects to a short-lived presigned URL.
async fn hand_out(
    state: &WebState,
    share: &Share,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let routing = routing(state)?;
    let client = locate(routing, peer, headers, None)?;
    let command = Command::UseShare { id: share.id.clone(), at: now_millis(), client: client.address.ip.to_string() };
    match state.meta.propose(command).await.map_err(|e| ApiError::unavailable(format!("cannot commit: {e}")))? {
        CommandOutcome::Done => {}
        // Revoked, expired or used up by someone else meanwhile.
        _ => return Ok(page(StatusCode::GONE, "Link used up", "This link can no longer be used.")),
    }
    let caller = ApiCaller::Service(format!("share:{}", share.id));
    let (url, site, _) = download_url(state, &caller, &client, &share.bucket, &share.key).await?;
    tracing::info!(share = %share.id, client = %client.address.ip, region = %site.region, "share link used");
    Ok((StatusCode::FOUND, [(LOCATION, url.as_str()), (CACHE_CONTROL, "no-store")]).into_response())
}

fn lookup(state: &WebState, token: &str) -> Result<Option<Share>, ApiError> {
    state.meta.share_by_token(&token_hash(token)).map_err(|e| ApiError::internal("reading shares", &e))
}

/// `GET /s/{token}`.
pub(crate) async fn open(
    State(state): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    let share = lookup(&state, &token)?;
    if let Some(refusal) = unusable(share.as_ref()) {
        return Ok(refusal);
    }
    let Some(share) = share else {
        return Ok(page(StatusCode::NOT_FOUND, "Link not found", "This link does not exist or was revoked."));
    };
    if matches!(&share.audience, ShareAudience::Public { password_hash: Some(_), .. }) {
        return Ok(password_form(StatusCode::OK, &token, None));
    }
    hand_out(&state, &share, peer, &headers).await
}

/// The password form's fields.
#[derive(Debug, Deserialize)]
pub(crate) struct PasswordForm {
    /// Must equal the CSRF cookie.
    csrf: String,
    /// The link's password.
    password: String,
}

/// `POST /s/{token}`: the password form.
pub(crate) async fn submit(
    State(state): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(token): Path<String>,
    Form(form): Form<PasswordForm>,
) -> Result<Response, ApiError> {
    let share = lookup(&state, &token)?;
    if let Some(refusal) = unusable(share.as_ref()) {
        return Ok(refusal);
    }
    let Some(share) = share else {
        return Ok(page(StatusCode::NOT_FOUND, "Link not found", "This link does not exist or was revoked."));
    };
    let ShareAudience::Public { password_hash: Some(hash), .. } = &share.audience else {
        return hand_out(&state, &share, peer, &headers).await;
    };
    let cookie = cookies::read(&headers, CSRF_COOKIE).unwrap_or_default();
    if !cookies::same_origin(&headers)
        || cookie.is_empty()
        || !bool::from(cookie.as_bytes().ct_eq(form.csrf.as_bytes()))
    {
        tracing::warn!(share = %share.id, client = %peer.ip(), "share password form refused: CSRF token missing or wrong");
        return Ok(page(StatusCode::FORBIDDEN, "Form expired", "Reload the link and try again."));
    }
    let client = routing(&state).and_then(|r| locate(r, peer, &headers, None)).map_or(peer.ip(), |c| c.address.ip);
    if !state.share_attempts.allowed(&share.id, client) {
        tracing::warn!(share = %share.id, %client, "share password attempts over the limit");
        return Ok(page(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts",
            "Too many wrong passwords. Wait a few minutes and try again.",
        ));
    }
    let (hash, password) = (hash.clone(), form.password);
    let right = tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .is_ok_and(|parsed| argon2::Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
    })
    .await
    .map_err(|e| ApiError::internal("checking the password", &e))?;
    if !right {
        state.share_attempts.failed(&share.id, client);
        tracing::warn!(share = %share.id, %client, "wrong share password");
        return Ok(password_form(
            StatusCode::UNAUTHORIZED,
            &token,
            Some("That did not work. Check the password and try again."),
        ));
    }
    hand_out(&state, &share, peer, &headers).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The link's budget holds across clients, the client's across links, and both recover
    /// when the window has passed.
    #[test]
    fn attempts_are_limited_per_link_and_per_client() {
        let window = Duration::from_millis(200);
        let attempts = Attempts::new(AttemptLimits { per_link: 2, per_client: 3, window });
        let (a, b, c) = ([127, 0, 0, 1].into(), [127, 0, 0, 2].into(), [127, 0, 0, 3].into());
        attempts.failed("link", a);
        attempts.failed("link", b);
        assert!(!attempts.allowed("link", c), "the link's budget is spent, whoever asks");
        assert!(attempts.allowed("other", a), "another link, a client with budget left");
        attempts.failed("other", a);
        attempts.failed("third", a);
        assert!(!attempts.allowed("fourth", a), "the client's budget is spent, whatever the link");
        std::thread::sleep(window);
        assert!(attempts.allowed("link", a), "the window has passed");
    }
}
