//! `/s/{token}`: a public share link, opened by anyone who has it.
//!
//! - unknown or revoked: 404; expired or out of downloads: 410 (small HTML pages, never JSON,
//!   never a bucket or key name);
//! - `HEAD` answers the status `GET` would, and never counts a download;
//! - a link with a password or a download limit: `GET` shows a page, and only its form's `POST`
//!   downloads. Link previews (chat apps, mail scanners) only `GET`, so they cannot spend a
//!   limited link's downloads;
//! - a link with neither: `GET` downloads at once;
//! - a download resolves the file and the node and presigns first, then counts the use through
//!   Raft (`UseShare`, which also enforces the limit across nodes), then redirects (302) to a
//!   presigned URL valid for `[shares] presign_secs`: a revocation stops new downloads at once,
//!   and URLs already handed out work for at most that long;
//! - every `POST` carries a CSRF token that must match a cookie scoped to the link (double
//!   submit; cross-origin posts are refused too). A wrong password gets one generic message;
//!   attempts are reserved before the password is checked, limited per link and per client
//!   address ([`AttemptLimits`]), and every refusal is logged. argon2 runs on at most
//!   [`MAX_VERIFYING`]-per-core blocking threads at once; past that the answer is 429.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordVerifier as _};
use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::header::{CACHE_CONTROL, LOCATION, RETRY_AFTER, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use meridian_raft::model::{Share, ShareAudience, ShareState};
use meridian_raft::{Command, CommandOutcome};
use serde::Deserialize;
use subtle::ConstantTimeEq as _;

use crate::files::download_url;
use crate::identity::cookies::{self, CookieSecure};
use crate::identity::now_millis;
use crate::route::{locate, routing};
use crate::shares::{MAX_PASSWORD_LEN, token_hash};
use crate::{ApiCaller, ApiError, WebState};

/// The cookie carrying the CSRF token of a link's form (one per link: `Path=/s/{token}`).
const CSRF_COOKIE: &str = "meridian_share_csrf";
/// Most links, and most client addresses, tracked at once. Past it, a new one is refused
/// (429) until old entries age out: memory stays bounded whatever the attacker rotates.
const MAX_TRACKED: usize = 100_000;
/// Concurrent password checks per core. Each argon2 verification takes about 19 MiB and a
/// blocking thread for tens of milliseconds; the cap bounds both.
pub(crate) const MAX_VERIFYING: usize = 2;
/// Shortest pause between two sweeps of the attempt maps when they are full (a sweep walks the
/// whole map under the lock).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// How many wrong passwords are tolerated (`[shares]` in `cluster.toml`).
#[derive(Debug, Clone, Copy)]
pub struct AttemptLimits {
    /// Wrong passwords per link within `window`, from anyone.
    pub per_link: u32,
    /// Wrong passwords per client (IPv4 address, or IPv6 /64) within `window`, over all links.
    pub per_client: u32,
    /// The sliding window.
    pub window: Duration,
}

impl Default for AttemptLimits {
    fn default() -> Self {
        Self { per_link: 20, per_client: 5, window: Duration::from_secs(300) }
    }
}

/// The settings of share links (`[shares]` in `cluster.toml`).
#[derive(Debug, Clone, Copy)]
pub struct ShareSettings {
    /// The password guessing limits.
    pub attempts: AttemptLimits,
    /// How long a presigned URL handed out through a share lives: the most a URL outlives a
    /// revocation (or, for a limited link, how long one counted download can be re-fetched).
    pub presign: Duration,
}

impl Default for ShareSettings {
    fn default() -> Self {
        Self { attempts: AttemptLimits::default(), presign: Duration::from_secs(60) }
    }
}

/// A client as the limits see it: an IPv4 address, or the /64 of an IPv6 address (one host
/// usually owns a whole /64 and can rotate through it). IPv4-mapped IPv6 counts as IPv4.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

/// The attempt counters, behind one lock so a check and its reservation are one step.
#[derive(Default)]
struct Book {
    /// Times of recent attempts by share id (each list holds at most `per_link`).
    by_link: HashMap<String, Vec<Instant>>,
    /// Times of recent attempts by client key (each list holds at most `per_client`).
    by_client: HashMap<IpAddr, Vec<Instant>>,
    /// When the maps were last swept of stale entries.
    last_sweep: Option<Instant>,
}

/// Why an attempt was not allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// The link's budget is spent.
    Link,
    /// The client's budget is spent.
    Client,
    /// Too many links or clients are tracked.
    Full,
}

/// An attempt counted before its password is checked; released if it turns out right.
#[derive(Debug)]
struct Reservation {
    /// The share id.
    link: String,
    /// The client key.
    client: IpAddr,
    /// The instant recorded in both lists.
    at: Instant,
}

/// Recent password attempts, per link and per client, on this node. Not replicated: a guesser
/// spreading attempts over N nodes gets N times the budget, still far too little to guess a
/// password.
pub(crate) struct Attempts {
    /// The limits.
    limits: AttemptLimits,
    /// The counters.
    book: Mutex<Book>,
}

impl Attempts {
    pub(crate) fn new(limits: AttemptLimits) -> Self {
        Self { limits, book: Mutex::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Checks both budgets and, when both have room, records the attempt in both, in one step:
    /// concurrent requests cannot all pass the check before any is recorded.
    fn reserve(&self, link: &str, client: IpAddr) -> Result<Reservation, Refusal> {
        let client = client_key(client);
        let window = self.limits.window;
        let now = Instant::now();
        let fresh = |times: &mut Vec<Instant>| times.retain(|t| now.duration_since(*t) < window);
        let mut book = self.lock();
        let book = &mut *book;
        let link_used = book.by_link.get_mut(link).map_or(0, |t| {
            fresh(t);
            t.len()
        });
        let client_used = book.by_client.get_mut(&client).map_or(0, |t| {
            fresh(t);
            t.len()
        });
        if link_used >= self.limits.per_link as usize {
            return Err(Refusal::Link);
        }
        if client_used >= self.limits.per_client as usize {
            return Err(Refusal::Client);
        }
        let full = |book: &Book| {
            (link_used == 0 && book.by_link.len() >= MAX_TRACKED)
                || (client_used == 0 && book.by_client.len() >= MAX_TRACKED)
        };
        if full(book) {
            if book.last_sweep.is_none_or(|t| now.duration_since(t) >= SWEEP_EVERY) {
                book.last_sweep = Some(now);
                book.by_link.retain(|_, t| t.iter().any(|t| now.duration_since(*t) < window));
                book.by_client.retain(|_, t| t.iter().any(|t| now.duration_since(*t) < window));
            }
            if full(book) {
                return Err(Refusal::Full);
            }
        }
        book.by_link.entry(link.to_owned()).or_default().push(now);
        book.by_client.entry(client).or_default().push(now);
        Ok(Reservation { link: link.to_owned(), client, at: now })
    }

    /// Gives a reserved attempt back (the password was right, or it was never checked).
    fn release(&self, reservation: &Reservation) {
        let mut book = self.lock();
        let drop_one = |times: &mut Vec<Instant>| {
            if let Some(i) = times.iter().position(|t| *t == reservation.at) {
                times.swap_remove(i);
            }
        };
        if let Some(times) = book.by_link.get_mut(&reservation.link) {
            drop_one(times);
        }
        if let Some(times) = book.by_client.get_mut(&reservation.client) {
            drop_one(times);
        }
    }
}

/// What the share link handlers keep between requests.
pub(crate) struct ShareLinks {
    /// The settings.
    settings: ShareSettings,
    /// Password attempts.
    attempts: Attempts,
    /// Permits for argon2 verifications running at once.
    verifying: Arc<tokio::sync::Semaphore>,
}

impl ShareLinks {
    pub(crate) fn new(settings: ShareSettings) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Self {
            settings,
            attempts: Attempts::new(settings.attempts),
            verifying: Arc::new(tokio::sync::Semaphore::new(MAX_VERIFYING * cores)),
        }
    }

    /// How long URLs handed out through shares live.
    pub(crate) fn presign_expiry(&self) -> Duration {
        self.settings.presign
    }
}

/// A page of the link, in the panel's style, saying `message`.
fn page(status: StatusCode, title: &str, message: &str) -> Response {
    crate::pages::link_message(status, title, message)
}

fn not_found() -> Response {
    page(StatusCode::NOT_FOUND, "Link not found", "This link does not exist or was revoked.")
}

fn too_many(body: &str) -> Response {
    let mut response = page(StatusCode::TOO_MANY_REQUESTS, "Too many attempts", body);
    response.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("5"));
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

/// Why a link cannot be used; each is answered by its page.
#[derive(Debug)]
enum Unusable {
    /// Unknown or revoked: 404.
    NotFound,
    /// Past its expiry: 410.
    Expired,
    /// Out of downloads: 410.
    Exhausted,
    /// The store could not be read.
    Failed(ApiError),
}

impl IntoResponse for Unusable {
    fn into_response(self) -> Response {
        match self {
            Self::NotFound => not_found(),
            Self::Expired => page(StatusCode::GONE, "Link expired", "This link has expired."),
            Self::Exhausted => page(StatusCode::GONE, "Link used up", "This link has no downloads left."),
            Self::Failed(e) => error_page(&e),
        }
    }
}

/// The share behind a token, if it can be used now.
fn usable(state: &WebState, token: &str) -> Result<Share, Unusable> {
    let share = state
        .meta
        .share_by_token(&token_hash(token))
        .map_err(|e| Unusable::Failed(ApiError::internal("reading shares", &e)))?
        .ok_or(Unusable::NotFound)?;
    match share.state(now_millis()) {
        ShareState::Active => Ok(share),
        ShareState::Revoked => Err(Unusable::NotFound),
        ShareState::Expired => Err(Unusable::Expired),
        ShareState::Exhausted => Err(Unusable::Exhausted),
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

/// Resolves the file, picks the node and presigns; then counts the download through Raft; then
/// redirects. Nothing is counted for a download that cannot be served.
async fn hand_out(state: &WebState, share: &Share, peer: SocketAddr, headers: &HeaderMap) -> Response {
    let prepared = async {
        let client = locate(routing(state)?, peer, headers, None)?;
        let caller = ApiCaller::Service(format!("share:{}", share.id));
        let expiry = state.share_links.presign_expiry();
        let (url, site, _) = download_url(state, &caller, &client, &share.bucket, &share.key, expiry).await?;
        Ok::<_, ApiError>((url, site.region.clone(), client.address.ip))
    };
    let (url, region, client) = match prepared.await {
        Ok(prepared) => prepared,
        Err(e) => {
            tracing::warn!(share = %share.id, status = %e.status, error = %e.message, "share link cannot be served");
            return error_page(&e);
        }
    };
    let command = Command::UseShare { id: share.id.clone(), at: now_millis(), client: client.to_string() };
    match state.meta.propose(command).await {
        Ok(CommandOutcome::Done) => {}
        // Revoked, expired or used up by someone else meanwhile.
        Ok(_) => return page(StatusCode::GONE, "Link used up", "This link can no longer be used."),
        Err(e) => return error_page(&ApiError::unavailable(format!("cannot commit: {e}"))),
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
    let share = match usable(&state, &token) {
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
    match usable(&state, &token) {
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
    let share = match usable(&state, &token) {
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
        Err(refusal) => {
            tracing::warn!(share = %share.id, %client, ?refusal, "share password attempts over the limit");
            return too_many("Too many wrong passwords. Wait a few minutes and try again.");
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
            return too_many("Too many attempts right now. Try again in a few seconds.");
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The link's budget holds across clients, the client's across links, and both recover
    /// when the window has passed; a released attempt does not count.
    #[test]
    fn attempts_are_limited_per_link_and_per_client() {
        let window = Duration::from_millis(200);
        let attempts = Attempts::new(AttemptLimits { per_link: 2, per_client: 3, window });
        let (a, b, c) = ([127, 0, 0, 1].into(), [127, 0, 0, 2].into(), [127, 0, 0, 3].into());
        attempts.reserve("link", a).expect("first");
        attempts.reserve("link", b).expect("second");
        assert_eq!(attempts.reserve("link", c).err(), Some(Refusal::Link), "the link's budget is spent, whoever asks");
        let released = attempts.reserve("other", a).expect("another link, a client with budget left");
        attempts.release(&released);
        attempts.reserve("other", a).expect("released: the budget is back");
        attempts.reserve("third", a).expect("third");
        assert_eq!(attempts.reserve("fourth", a).err(), Some(Refusal::Client), "the client's budget is spent");
        std::thread::sleep(window);
        attempts.reserve("link", a).expect("the window has passed");
    }

    /// An IPv6 client is one /64: rotating the host part gives no new budget.
    #[test]
    fn ipv6_clients_count_per_64() {
        let attempts = Attempts::new(AttemptLimits { per_link: 100, per_client: 2, window: Duration::from_secs(60) });
        let ip = |last: u16| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 0, last));
        attempts.reserve("a", ip(1)).expect("first");
        attempts.reserve("b", ip(2)).expect("second");
        assert_eq!(attempts.reserve("c", ip(3)).err(), Some(Refusal::Client), "same /64");
        let other = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 3, 0, 0, 0, 1));
        attempts.reserve("c", other).expect("another /64");
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().expect("ip");
        assert_eq!(client_key(mapped), IpAddr::from([10, 0, 0, 1]), "IPv4-mapped counts as IPv4");
    }

    /// Many threads racing for one budget get exactly the budget.
    #[test]
    fn reservations_are_atomic() {
        let attempts =
            Arc::new(Attempts::new(AttemptLimits { per_link: 1000, per_client: 5, window: Duration::from_secs(60) }));
        let granted: usize = (0..16)
            .map(|_| {
                let attempts = Arc::clone(&attempts);
                std::thread::spawn(move || {
                    (0..20).filter(|_| attempts.reserve("link", [10, 0, 0, 1].into()).is_ok()).count()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().expect("thread"))
            .sum();
        assert_eq!(granted, 5);
    }
}
