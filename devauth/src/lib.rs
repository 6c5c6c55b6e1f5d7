//! **A STAND-IN for the cinema's Auth service.** Not part of a production deployment.
//!
//! Meridian never stores passwords: people sign in at the cinema's Auth service, which issues
//! JWT access tokens that Meridian verifies (see `docs/auth.md` for the contract). Local
//! clusters and tests have no such service, so this crate implements exactly that contract and
//! nothing more:
//!
//! - `POST /auth/v1/login` and `POST /auth/v1/refresh`: tokens for seeded users;
//! - `GET /auth/v1/users`: the paginated user list, for callers with the service token;
//! - `GET /auth/v1/jwks`: the public key, when it signs with RS256;
//! - stand-in only, for tests: `PUT` / `DELETE /dev/v1/users/{id}` change users "upstream".
//!
//! Users live in memory, seeded from a TOML file ([`seed_users`]); passwords are compared as given.
//! It runs as `meridian dev-auth`, which fills [`DevAuthConfig`] from `cluster.toml`'s `[auth]`.

mod directory;
mod routes;
mod signer;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt as _;

pub use directory::SeedUser;

/// Path of the login endpoint.
pub const LOGIN_PATH: &str = "/auth/v1/login";
/// Path of the refresh endpoint.
pub const REFRESH_PATH: &str = "/auth/v1/refresh";
/// Path of the paginated user list.
pub const USERS_PATH: &str = "/auth/v1/users";
/// Path of the JSON Web Key Set (RS256 only).
pub const JWKS_PATH: &str = "/auth/v1/jwks";

/// What the stand-in needs to run.
#[derive(Debug, Clone)]
pub struct DevAuthConfig {
    /// Where it listens (taken from the host and port of `[auth] login_url`).
    pub listen: SocketAddr,
    /// `iss` of every token it issues.
    pub issuer: String,
    /// `aud` of every token, when Meridian is configured to require one.
    pub audience: Option<String>,
    /// How tokens are signed.
    pub signing: Signing,
    /// The bearer token that callers of the user list (and the `/dev/v1` endpoints) present.
    pub service_token: String,
    /// Lifetime of access tokens.
    pub access_ttl: Duration,
    /// Lifetime of refresh tokens.
    pub refresh_ttl: Duration,
    /// A seed file; `None` uses the built-in users of `devauth/seed.toml`.
    pub seed: Option<PathBuf>,
}

/// The signing key of issued tokens.
#[derive(Debug, Clone)]
pub enum Signing {
    /// HS256 with a secret shared with Meridian.
    Hs256 {
        /// The shared secret.
        secret: String,
    },
    /// RS256 with an RSA private key; Meridian verifies with the public half (PEM or JWKS).
    Rs256 {
        /// PEM file of the private key (PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`).
        private_key: PathBuf,
    },
}

/// Why the stand-in cannot start.
#[derive(Debug, thiserror::Error)]
pub enum DevAuthError {
    /// The seed file cannot be read or parsed.
    #[error("seed file {path}: {message}")]
    Seed {
        /// The file (or `built-in`).
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The RS256 private key cannot be used.
    #[error("RS256 private key {path}: {message}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The listener cannot be bound or failed.
    #[error("listening on {addr}: {cause}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        cause: std::io::Error,
    },
}

/// The seeded users (from `seed`, or the built-in ones), e.g. to print the logins.
pub fn seed_users(seed: Option<&Path>) -> Result<Vec<SeedUser>, DevAuthError> {
    directory::load_seed(seed)
}

/// Serves the stand-in until `shutdown` completes.
pub async fn serve(
    config: DevAuthConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), DevAuthError> {
    let users = directory::Directory::new(directory::load_seed(config.seed.as_deref())?);
    let signer = signer::Signer::new(&config)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|cause| DevAuthError::Listen { addr: config.listen, cause })?
        // Small JSON answers must not wait for the peer's delayed ACK (see DESIGN.md, Sockets).
        .tap_io(|tcp| {
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::debug!(%error, "cannot set TCP_NODELAY");
            }
        });
    tracing::warn!(
        addr = %config.listen,
        algorithm = signer.algorithm_name(),
        issuer = %config.issuer,
        "STAND-IN Auth service for development and tests: never use it in production"
    );
    let state = routes::AppState { users: Arc::new(users), signer: Arc::new(signer), config: Arc::new(config) };
    let addr = state.config.listen;
    // The peer address is the client when no `X-Forwarded-For` names one (see `routes`).
    axum::serve(listener, routes::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|cause| DevAuthError::Listen { addr, cause })
}
