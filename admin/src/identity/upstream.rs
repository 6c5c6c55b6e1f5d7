//! Calls to the cinema's Auth service: login, refresh, and the paginated user list
//! (the contract is in `docs/auth.md`).

use serde::{Deserialize, Serialize};

/// The header that carries the signing-in person's address to the Auth service.
pub(crate) const CLIENT_HEADER: &str = "x-forwarded-for";

/// The Auth service's endpoints and the token Meridian presents to list users.
pub(crate) struct AuthClient {
    http: reqwest::Client,
    login_url: String,
    refresh_url: String,
    users_url: String,
    /// Bearer token for the user list.
    service_token: String,
}

/// Why a call to the Auth service did not give what was asked.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    /// The Auth service answered 401/403: wrong login or password, or a refresh token it no
    /// longer accepts. Its message is passed on.
    #[error("{0}")]
    Refused(String),
    /// The Auth service could not be reached or timed out.
    #[error("the Auth service at {url} is unreachable: {cause}")]
    Unreachable {
        /// The URL called.
        url: String,
        /// The transport error.
        cause: String,
    },
    /// Any other answer: a status the contract does not have, or a body that does not fit it.
    #[error("the Auth service at {url} answered unexpectedly: {detail}")]
    Protocol {
        /// The URL called.
        url: String,
        /// What was wrong.
        detail: String,
    },
}

/// A user as the Auth service describes it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct UpstreamUser {
    /// Stable id (`sub`).
    pub(crate) id: String,
    /// Sign-in name.
    pub(crate) login: String,
    /// Display name.
    #[serde(default)]
    pub(crate) name: String,
    /// E-mail.
    #[serde(default)]
    pub(crate) email: String,
    /// The Auth service's roles of the user; `admin` among them makes an admin of the panel.
    #[serde(default)]
    pub(crate) roles: Vec<String>,
}

impl From<UpstreamUser> for meridian_raft::model::UserProfile {
    fn from(user: UpstreamUser) -> Self {
        Self { id: user.id, login: user.login, name: user.name, email: user.email, roles: user.roles }
    }
}

/// The answer of login and refresh.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct TokenGrant {
    /// The access token (JWT).
    pub(crate) access_token: String,
    /// The refresh token.
    pub(crate) refresh_token: String,
    /// Seconds the access token lives.
    pub(crate) expires_in: u64,
    /// Seconds the refresh token lives, when the service says.
    #[serde(default)]
    pub(crate) refresh_expires_in: Option<u64>,
    /// The signed-in user, when the service says (login does; Meridian falls back to the
    /// token's claims otherwise).
    #[serde(default)]
    pub(crate) user: Option<UpstreamUser>,
}

/// One page of the user list.
#[derive(Debug, Deserialize)]
pub(crate) struct UserPage {
    /// The users of this page.
    pub(crate) users: Vec<UpstreamUser>,
    /// Cursor of the next page; absent or `null` on the last.
    #[serde(default)]
    pub(crate) next_cursor: Option<String>,
}

/// `{"login", "password"}`.
#[derive(Serialize)]
struct LoginBody<'a> {
    login: &'a str,
    password: &'a str,
}

/// `{"refresh_token"}`.
#[derive(Serialize)]
struct RefreshBody<'a> {
    refresh_token: &'a str,
}

/// The contract's error body.
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: String,
}

impl AuthClient {
    pub(crate) fn new(
        http: reqwest::Client,
        login_url: String,
        refresh_url: String,
        users_url: String,
        service_token: String,
    ) -> Self {
        Self { http, login_url, refresh_url, users_url, service_token }
    }

    /// Signs a person in with login and password, telling the Auth service the person's address
    /// (`X-Forwarded-For`, see `docs/auth.md`) so its own limits and logs see them, not this
    /// node.
    pub(crate) async fn login(
        &self,
        login: &str,
        password: &str,
        client: std::net::IpAddr,
    ) -> Result<TokenGrant, UpstreamError> {
        let request = self
            .http
            .post(&self.login_url)
            .header(CLIENT_HEADER, client.to_string())
            .json(&LoginBody { login, password });
        self.read(&self.login_url, request).await
    }

    /// Trades a refresh token for new tokens.
    pub(crate) async fn refresh(&self, refresh_token: &str) -> Result<TokenGrant, UpstreamError> {
        self.read(&self.refresh_url, self.http.post(&self.refresh_url).json(&RefreshBody { refresh_token })).await
    }

    /// One page of the user list, after `cursor`.
    pub(crate) async fn users_page(&self, cursor: Option<&str>, limit: u32) -> Result<UserPage, UpstreamError> {
        let mut query: Vec<(&str, String)> = vec![("limit", limit.to_string())];
        if let Some(cursor) = cursor {
            query.push(("cursor", cursor.to_owned()));
        }
        let request = self.http.get(&self.users_url).bearer_auth(&self.service_token).query(&query);
        self.read(&self.users_url, request).await
    }

    async fn read<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<T, UpstreamError> {
        let unreachable = |e: reqwest::Error| UpstreamError::Unreachable { url: url.to_owned(), cause: e.to_string() };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        if status.is_success() {
            return response
                .json()
                .await
                .map_err(|e| UpstreamError::Protocol { url: url.to_owned(), detail: format!("body: {e}") });
        }
        let message = response.json::<ErrorBody>().await.map(|b| b.message).unwrap_or_default();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            Err(UpstreamError::Refused(message))
        } else {
            Err(UpstreamError::Protocol { url: url.to_owned(), detail: format!("status {status}: {message}") })
        }
    }
}
