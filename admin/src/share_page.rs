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
//!   address ([`AttemptLimits`]), and every refusal is logged. argon2 runs on at most
//!   [`MAX_VERIFYING`]-per-core blocking threads at once; past that the answer is 429.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordVerifier as _};
use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::header::{CACHE_CONTROL, LOCATION, RETRY_AFTER, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use meridian_raft::model::{Share, ShareAudience};
use meridian_raft::{Command, CommandOutcome, MetaStore};
use serde::Deserialize;
use subtle::ConstantTimeEq as _;

use crate::access::{LinkRefusal, usable_link};
use crate::attempts::{AttemptLimits, Attempts};
use crate::downloads::download_url;
use crate::identity::cookies::{self, CookieSecure};
use crate::identity::now_millis;
use crate::route::{locate, routing};
use crate::shares::MAX_PASSWORD_LEN;
use crate::{ApiCaller, ApiError, WebState};

/// The cookie carrying the CSRF token of a link's form (one per link: `Path=/s/{token}`).
const CSRF_COOKIE: &str = "meridian_share_csrf";
/// Concurrent argon2 runs per core (checking a link's password, hashing a new link's). Each
/// takes about 19 MiB and a blocking thread for tens of milliseconds; the cap bounds both.
pub(crate) const MAX_VERIFYING: usize = 2;
/// Most links with downloads waiting to be committed. Past it a download is committed on its
/// own, as a limited link's is: memory stays bounded however many links are busy.
const MAX_PENDING_LINKS: usize = 100_000;

/// The settings of share links (`[shares]` in `cluster.toml`).
#[derive(Debug, Clone, Copy)]
pub struct ShareSettings {
    /// The password guessing limits.
    pub attempts: AttemptLimits,
    /// How long a presigned URL handed out through a share lives: the most a URL outlives a
    /// revocation (or, for a limited link, how long one counted download can be re-fetched).
    pub presign: Duration,
    /// Downloads allowed per link (`per_link`) and per client address (`per_client`) within
    /// `window`: anonymous visitors cannot turn a link into a flood of work for the cluster.
    pub uses: AttemptLimits,
    /// How often the downloads of links without a download limit are committed, as one count
    /// per link (instead of one Raft entry and one event per download).
    pub flush_every: Duration,
}

impl Default for ShareSettings {
    fn default() -> Self {
        Self {
            attempts: AttemptLimits::default(),
            presign: Duration::from_secs(60),
            uses: AttemptLimits { per_link: 600, per_client: 30, window: Duration::from_secs(60) },
            flush_every: Duration::from_secs(1),
        }
    }
}

/// Downloads of links without a limit, counted on this node and not yet committed.
#[derive(Default)]
struct Tally {
    /// Per share id: downloads since the last flush, and the latest downloader's address.
    counts: HashMap<String, (u64, String)>,
    /// Whether a flush task runs (it stops once it finds nothing to flush).
    flushing: bool,
}

/// What the share link handlers keep between requests.
pub(crate) struct ShareLinks {
    /// The settings.
    settings: ShareSettings,
    /// Password attempts.
    attempts: Attempts,
    /// Downloads, per link and per client.
    uses: Attempts,
    /// Downloads of unlimited links waiting to be committed.
    tally: Mutex<Tally>,
    /// Permits for argon2 runs at once: checking a link's password, and hashing a new link's
    /// (`shares`), so creating links cannot starve or outrun the cap either.
    verifying: Arc<tokio::sync::Semaphore>,
}

impl ShareLinks {
    pub(crate) fn new(settings: ShareSettings) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Self {
            settings,
            attempts: Attempts::new(settings.attempts),
            uses: Attempts::new(settings.uses),
            tally: Mutex::default(),
            verifying: Arc::new(tokio::sync::Semaphore::new(MAX_VERIFYING * cores)),
        }
    }

    /// How long URLs handed out through shares live.
    pub(crate) fn presign_expiry(&self) -> Duration {
        self.settings.presign
    }

    /// The permits of argon2 runs (share passwords checked and hashed).
    pub(crate) fn argon2_permits(&self) -> &Arc<tokio::sync::Semaphore> {
        &self.verifying
    }

    fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts a download of a link without a limit, to be committed with the others of the
    /// next flush; starts the flush task when none runs. False when too many links wait: the
    /// caller then commits this download on its own.
    fn count_later(self: &Arc<Self>, meta: &MetaStore, id: &str, client: String) -> bool {
        let mut tally = self.tally();
        let full = tally.counts.len() >= MAX_PENDING_LINKS;
        match tally.counts.get_mut(id) {
            Some((count, last)) => {
                *count += 1;
                *last = client;
            }
            None if full => return false,
            None => {
                tally.counts.insert(id.to_owned(), (1, client));
            }
        }
        if !tally.flushing {
            tally.flushing = true;
            tokio::spawn(flush_uses(Arc::clone(self), meta.clone()));
        }
        true
    }

    /// Puts counts that could not be committed back, to go with the next flush.
    fn restore(&self, id: String, count: u64, client: String) {
        let mut tally = self.tally();
        let full = tally.counts.len() >= MAX_PENDING_LINKS;
        match tally.counts.get_mut(&id) {
            Some((pending, _)) => *pending += count,
            None if full => tracing::error!(share = %id, count, "share downloads dropped: too many links pending"),
            None => {
                tally.counts.insert(id, (count, client));
            }
        }
    }
}

/// Commits the counted downloads every `flush_every`, one `CountShareUses` per link (the
/// proposals of one flush share log entries); ends when a flush finds nothing to commit. Counts
/// that cannot be committed now go with the next flush; a node that stops loses at most one
/// interval's counts of links without a limit (never of a limited link: those are committed
/// before their redirect).
async fn flush_uses(links: Arc<ShareLinks>, meta: MetaStore) {
    loop {
        tokio::time::sleep(links.settings.flush_every).await;
        let counts = {
            let mut tally = links.tally();
            if tally.counts.is_empty() {
                tally.flushing = false;
                return;
            }
            std::mem::take(&mut tally.counts)
        };
        let at = now_millis();
        let proposals = counts.into_iter().map(|(id, (count, client))| {
            let meta = meta.clone();
            async move {
                let command = Command::CountShareUses { id: id.clone(), at, count, client: client.clone() };
                (meta.propose(command).await, id, count, client)
            }
        });
        for (outcome, id, count, client) in futures::future::join_all(proposals).await {
            match outcome {
                Ok(CommandOutcome::Done) => tracing::debug!(share = %id, count, "share downloads committed"),
                // Deleted with its file meanwhile: nothing left to count on.
                Ok(other) => tracing::info!(share = %id, count, ?other, "share downloads not counted: share gone"),
                Err(error) => {
                    tracing::warn!(share = %id, count, %error, "cannot commit share downloads yet; retrying");
                    links.restore(id, count, client);
                }
            }
        }
    }
}

/// A page of the link, in the panel's style, saying `message`.
fn page(status: StatusCode, title: &str, message: &str) -> Response {
    crate::pages::link_message(status, title, message)
}

fn not_found() -> Response {
    page(StatusCode::NOT_FOUND, "Link not found", "This link does not exist or was revoked.")
}

/// 429 with `Retry-After`, as a page a person can read.
fn too_many(title: &str, body: &str, retry_after_secs: u64) -> Response {
    let mut response = page(StatusCode::TOO_MANY_REQUESTS, title, body);
    response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
    response
}

/// The page for a failure: the link's own 404 when the file is gone, a 503 when the cluster
/// cannot serve now, a 500 otherwise. Never the JSON error, which names buckets and keys.
fn error_page(error: &ApiError) -> Response {
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

/// What `GET` shows for a usable link: `None` to download at once.
fn needs_page(share: &Share) -> Option<bool> {
    match &share.audience {
        ShareAudience::Public { password_hash: Some(_), .. } => Some(true),
        ShareAudience::Public { max_downloads: Some(_), .. } => Some(false),
        _ => None,
    }
}

/// The link's form (a password field when `password`), with its CSRF token in a hidden field
/// and in a cookie scoped to this link. A token the browser already holds for the link is kept,
/// so a second tab or a reload does not void the first tab's form.
fn link_form(
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

/// Checks the link's download budget, resolves the file, picks the node and presigns; then
/// counts the download; then redirects. Nothing is counted for a download that cannot be
/// served. A limited link's download is committed through Raft before the redirect (the limit
/// holds across nodes); an unlimited link's is counted here and committed with the next flush.
async fn hand_out(state: &WebState, share: &Share, peer: SocketAddr, headers: &HeaderMap) -> Response {
    let located = match routing(state).and_then(|r| locate(r, peer, headers, None)) {
        Ok(located) => located,
        Err(e) => {
            tracing::warn!(share = %share.id, status = %e.status, error = %e.message, "share link cannot be served");
            return error_page(&e);
        }
    };
    let client = located.address.ip;
    let links = &state.share_links;
    if let Err(refused) = links.uses.reserve(&share.id, client) {
        tracing::warn!(share = %share.id, %client, why = ?refused.why, "share link downloads over the limit");
        let secs = refused.retry_after_secs();
        let message =
            format!("This link was opened too many times in a short while. Wait {secs} seconds and try again.");
        return too_many("Too many downloads", &message, secs);
    }
    let prepared = async {
        let caller = ApiCaller::Service(format!("share:{}", share.id));
        let expiry = links.presign_expiry();
        let (url, site, _) = download_url(state, &caller, &located, &share.bucket, &share.key, expiry).await?;
        Ok::<_, ApiError>((url, site.region.clone()))
    };
    let (url, region) = match prepared.await {
        Ok(prepared) => prepared,
        Err(e) => {
            tracing::warn!(share = %share.id, status = %e.status, error = %e.message, "share link cannot be served");
            return error_page(&e);
        }
    };
    let unlimited = matches!(share.audience, ShareAudience::Public { max_downloads: None, .. });
    if !(unlimited && links.count_later(&state.meta, &share.id, client.to_string())) {
        let command = Command::UseShare { id: share.id.clone(), at: now_millis(), client: client.to_string() };
        match state.meta.propose(command).await {
            Ok(CommandOutcome::Done) => {}
            // Revoked, expired or used up by someone else meanwhile.
            Ok(_) => return page(StatusCode::GONE, "Link used up", "This link can no longer be used."),
            Err(e) => return error_page(&ApiError::propose(&e)),
        }
    }
    tracing::info!(share = %share.id, %client, %region, "share link used");
    (StatusCode::FOUND, [(LOCATION, url.as_str()), (CACHE_CONTROL, "no-store")]).into_response()
}

/// `GET /s/{token}`.
pub(crate) async fn open(
    State(state): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    let share = match usable_link(&state.meta, &token) {
        Ok(share) => share,
        Err(refusal) => return refusal.into_response(),
    };
    match needs_page(&share) {
        Some(password) => link_form(&state, &headers, StatusCode::OK, &token, password, None),
        None => hand_out(&state, &share, peer, &headers).await,
    }
}

/// `HEAD /s/{token}`: the status a `GET` would get, without counting anything (a usable link
/// answers 200 even when a `GET` would redirect).
pub(crate) async fn peek(State(state): State<WebState>, Path(token): Path<String>) -> Response {
    match usable_link(&state.meta, &token) {
        Ok(_) => (StatusCode::OK, [(CACHE_CONTROL, "no-store")]).into_response(),
        Err(refusal) => refusal.into_response(),
    }
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
    let share = match usable_link(&state.meta, &token) {
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
