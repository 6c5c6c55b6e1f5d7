//! Who is signed in: people of the cinema, identified by its Auth service.
//!
//! Meridian keeps no passwords. The Auth service checks them and issues JWT access tokens
//! (`sub` = user id, `roles`, `exp`/`nbf`, `type` = `access`), which Meridian verifies on every
//! request (`jwt`); API clients send them as `Authorization: Bearer`, the pages as an HttpOnly
//! cookie (`cookies`). [`SignedInUser`] is the extractor both use. The session routes
//! (`session`) sign in through the Auth service, refresh and sign out; the users known to the
//! panel are synced from the Auth service's user list by the leader (`sync`) and listed by
//! `users`. The contract with the Auth service is `docs/auth.md`.

pub(crate) mod cookies;
mod jwks;
pub(crate) mod jwt;
pub(crate) mod session;
pub(crate) mod signed_in;
pub(crate) mod sync;
mod upstream;
pub(crate) mod users;

use std::time::Duration;

pub use cookies::{CookieSecure, CookieSettings, SameSite};
pub use jwt::{AccessClaims, TokenError, VerificationKey};
pub use signed_in::{Credential, SignedInUser};

/// Everything the identity part needs, as `[auth]` of `cluster.toml` says it.
pub struct IdentitySettings {
    /// The Auth service's login endpoint.
    pub login_url: String,
    /// Its refresh endpoint.
    pub refresh_url: String,
    /// Its paginated user list.
    pub users_url: String,
    /// The verifying key, which also pins the algorithm.
    pub key: VerificationKey,
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud`, if any.
    pub audience: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
    /// Bearer token presented to the user list.
    pub service_token: String,
    /// How often the leader syncs the user list.
    pub sync_interval: Duration,
    /// Users asked for per page of the user list.
    pub users_page_size: u32,
    /// Timeout of each call to the Auth service.
    pub request_timeout: Duration,
    /// The session cookies.
    pub cookie: CookieSettings,
    /// Sign-in attempts the Auth service refuses, tolerated per login (`per_link`) and per
    /// client address within the window, before the answer is 429.
    pub sign_in_attempts: crate::AttemptLimits,
}

/// Why the identity part cannot start.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The verifying key is unusable.
    #[error("auth key: {0}")]
    Key(#[from] jwt::KeyError),
    /// The HTTP client cannot be built (TLS roots).
    #[error("HTTP client for the Auth service: {0}")]
    Client(#[from] reqwest::Error),
}

/// The running identity part, shared by the web handlers and the sync worker.
pub(crate) struct Identity {
    /// Checks access tokens.
    pub(crate) verifier: jwt::TokenVerifier,
    /// Calls the Auth service.
    pub(crate) upstream: upstream::AuthClient,
    /// Cookie names and flags.
    pub(crate) cookie: CookieSettings,
    /// Interval of the user sync.
    pub(crate) sync_interval: Duration,
    /// Page size of the user sync.
    pub(crate) users_page_size: u32,
    /// Refused sign-ins, per login and per client: the password oracle's budget.
    pub(crate) sign_in_attempts: crate::attempts::Attempts,
}

impl Identity {
    pub(crate) fn new(settings: IdentitySettings) -> Result<Self, IdentityError> {
        let http = reqwest::Client::builder()
            .timeout(settings.request_timeout)
            .tcp_nodelay(true)
            // Tokens and passwords travel in these calls: never follow a redirect elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let verifier = jwt::TokenVerifier::new(
            settings.key,
            &settings.issuer,
            settings.audience.as_deref(),
            settings.leeway,
            http.clone(),
        )?;
        tracing::info!(
            algorithm = verifier.algorithm_name(),
            issuer = %settings.issuer,
            login_url = %settings.login_url,
            "sign-in through the Auth service enabled"
        );
        let upstream = upstream::AuthClient::new(
            http,
            settings.login_url,
            settings.refresh_url,
            settings.users_url,
            settings.service_token,
        );
        Ok(Self {
            verifier,
            upstream,
            cookie: settings.cookie,
            sync_interval: settings.sync_interval,
            users_page_size: settings.users_page_size,
            sign_in_attempts: crate::attempts::Attempts::new(settings.sign_in_attempts),
        })
    }
}

/// Milliseconds since the Unix epoch, the replicated store's clock.
pub(crate) fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Seconds since the Unix epoch, the clock of token claims.
pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
