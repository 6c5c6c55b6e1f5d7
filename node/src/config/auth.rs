//! `[auth]` of `cluster.toml`: sign-in through the cinema's Auth service (where it is, how its
//! tokens are checked, the session cookie and the sign-in attempt limits).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, resolve};

/// `[auth]`: where the cinema's Auth service is and how its tokens are checked (the contract
/// is `docs/auth.md`). Required fields default to empty and are reported by validation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct AuthSection {
    /// The login endpoint (`POST`, login + password -> tokens).
    pub(crate) login_url: String,
    /// The refresh endpoint (`POST`, refresh token -> tokens).
    pub(crate) refresh_url: String,
    /// The paginated user list (`GET`, called with `service_token`).
    pub(crate) users_url: String,
    /// The JWKS of RS256 keys; RS256 needs this or `public_key_file`.
    pub(crate) jwks_url: Option<String>,
    /// The one accepted token algorithm; tokens with another `alg` are refused.
    pub(crate) algorithm: AuthAlgorithm,
    /// HS256: the secret shared with the Auth service (at least 32 bytes).
    pub(crate) hs256_secret: Option<String>,
    /// RS256: the Auth service's public key, PEM (relative to the config file).
    pub(crate) public_key_file: Option<PathBuf>,
    /// Required `iss` of tokens.
    pub(crate) issuer: String,
    /// Required `aud` of tokens, if the Auth service sets one.
    pub(crate) audience: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf`, seconds.
    pub(crate) leeway_secs: u64,
    /// Bearer token Meridian presents to the user list.
    pub(crate) service_token: String,
    /// How often the leader syncs the user list, seconds.
    pub(crate) sync_interval_secs: u64,
    /// Users asked for per page of the user list.
    pub(crate) users_page_size: u32,
    /// Timeout of each call to the Auth service, ms.
    pub(crate) request_timeout_ms: u64,
    /// How long fetched JWKS keys are used before they are fetched again, seconds.
    pub(crate) jwks_refresh_secs: u64,
    /// Name of the session cookie (the refresh cookie adds `_refresh`).
    pub(crate) cookie_name: String,
    /// `auto` (Secure when the request came through TLS, per `X-Forwarded-Proto`), `always`, `never`.
    pub(crate) cookie_secure: CookieSecureSetting,
    /// `lax` or `strict`.
    pub(crate) cookie_same_site: SameSiteSetting,
    /// Sign-in attempts refused by the Auth service tolerated per login within
    /// `sign_in_window_secs`, from anyone (1 to 10,000); then 429.
    pub(crate) sign_in_attempts_per_login: u32,
    /// Sign-in attempts refused tolerated per client (IPv4 address or IPv6 /64) within the
    /// window, over all logins (1 to 10,000).
    pub(crate) sign_in_attempts_per_client: u32,
    /// The window of the sign-in limits, seconds (1 to one day).
    pub(crate) sign_in_window_secs: u64,
}

impl Default for AuthSection {
    fn default() -> Self {
        Self {
            login_url: String::new(),
            refresh_url: String::new(),
            users_url: String::new(),
            jwks_url: None,
            algorithm: AuthAlgorithm::Hs256,
            hs256_secret: None,
            public_key_file: None,
            issuer: String::new(),
            audience: None,
            leeway_secs: 30,
            service_token: String::new(),
            sync_interval_secs: 60,
            users_page_size: 100,
            request_timeout_ms: 5000,
            jwks_refresh_secs: 300,
            cookie_name: "meridian_session".into(),
            cookie_secure: CookieSecureSetting::Auto,
            cookie_same_site: SameSiteSetting::Lax,
            sign_in_attempts_per_login: 10,
            sign_in_attempts_per_client: 30,
            sign_in_window_secs: 300,
        }
    }
}

/// `[auth] algorithm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub(crate) enum AuthAlgorithm {
    /// HMAC-SHA256 with `hs256_secret`.
    #[serde(rename = "HS256")]
    Hs256,
    /// RSA-SHA256 with `public_key_file` or `jwks_url`.
    #[serde(rename = "RS256")]
    Rs256,
}

/// `[auth] cookie_secure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum CookieSecureSetting {
    /// See [`meridian_admin::identity::CookieSecure::Auto`].
    Auto,
    /// See [`meridian_admin::identity::CookieSecure::Always`].
    Always,
    /// See [`meridian_admin::identity::CookieSecure::Never`].
    Never,
}

/// `[auth] cookie_same_site`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SameSiteSetting {
    /// `SameSite=Lax`.
    Lax,
    /// `SameSite=Strict`.
    Strict,
}

impl AuthSection {
    /// Checks the section, reading `public_key_file` relative to `base_dir`; errors name the
    /// field as `auth.<field>`.
    pub(super) fn validate(&self, path: &Path, base_dir: &Path) -> Result<(), ConfigError> {
        let invalid = |field: &str, message: String| Err(ConfigError::invalid(path, format!("auth.{field}"), message));
        for (field, url) in
            [("login_url", &self.login_url), ("refresh_url", &self.refresh_url), ("users_url", &self.users_url)]
                .into_iter()
                .chain(self.jwks_url.as_ref().map(|url| ("jwks_url", url)))
        {
            if url.is_empty() {
                return invalid(field, "must be set".into());
            }
            match reqwest::Url::parse(url) {
                Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some() => {}
                _ => return invalid(field, format!("{url:?} is not an http(s) URL")),
            }
        }
        match self.algorithm {
            AuthAlgorithm::Hs256 => {
                if self.hs256_secret.as_ref().is_none_or(|s| s.len() < 32) {
                    return invalid("hs256_secret", "HS256 needs a shared secret of at least 32 bytes".into());
                }
                if self.public_key_file.is_some() || self.jwks_url.is_some() {
                    return invalid(
                        "algorithm",
                        "HS256 takes hs256_secret; public_key_file and jwks_url are for RS256".into(),
                    );
                }
            }
            AuthAlgorithm::Rs256 => {
                if self.hs256_secret.is_some() {
                    return invalid("hs256_secret", "is for HS256; RS256 takes public_key_file or jwks_url".into());
                }
                match (&self.public_key_file, &self.jwks_url) {
                    (Some(_), Some(_)) | (None, None) => {
                        return invalid("algorithm", "RS256 needs exactly one of public_key_file and jwks_url".into());
                    }
                    (Some(file), None) => {
                        let file = resolve(base_dir, file);
                        if let Err(e) = std::fs::metadata(&file) {
                            return invalid("public_key_file", format!("{}: {e}", file.display()));
                        }
                    }
                    (None, Some(_)) => {}
                }
            }
        }
        if self.issuer.trim().is_empty() {
            return invalid("issuer", "must be set (the `iss` of the Auth service's tokens)".into());
        }
        if self.service_token.len() < 16 {
            return invalid("service_token", "must be at least 16 characters".into());
        }
        if self.leeway_secs > 300 {
            return invalid("leeway_secs", format!("{} is more than 300 seconds", self.leeway_secs));
        }
        if self.sync_interval_secs == 0 {
            return invalid("sync_interval_secs", "must be at least 1".into());
        }
        if !(1..=500).contains(&self.users_page_size) {
            return invalid("users_page_size", format!("{} is not within 1..=500", self.users_page_size));
        }
        if self.request_timeout_ms < 100 {
            return invalid("request_timeout_ms", "must be at least 100".into());
        }
        if self.jwks_refresh_secs < 10 {
            return invalid("jwks_refresh_secs", "must be at least 10".into());
        }
        for (field, value, max) in [
            ("sign_in_attempts_per_login", u64::from(self.sign_in_attempts_per_login), 10_000),
            ("sign_in_attempts_per_client", u64::from(self.sign_in_attempts_per_client), 10_000),
            ("sign_in_window_secs", self.sign_in_window_secs, 86_400),
        ] {
            if !(1..=max).contains(&value) {
                return invalid(field, format!("must be 1 to {max}"));
            }
        }
        if self.cookie_name.is_empty()
            || !self.cookie_name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return invalid("cookie_name", format!("{:?} must be letters, digits, '_' and '-'", self.cookie_name));
        }
        Ok(())
    }

    /// The settings of the web listener's identity part; reads the public key file.
    pub(crate) fn identity_settings(&self, base_dir: &Path) -> anyhow::Result<meridian_admin::IdentitySettings> {
        use meridian_admin::identity::{CookieSecure, CookieSettings, SameSite, VerificationKey};
        let key = match (self.algorithm, &self.public_key_file, &self.jwks_url) {
            (AuthAlgorithm::Hs256, ..) => {
                VerificationKey::Hs256 { secret: self.hs256_secret.clone().unwrap_or_default().into_bytes() }
            }
            (AuthAlgorithm::Rs256, Some(file), _) => {
                let file = resolve(base_dir, file);
                let pem = std::fs::read(&file)
                    .map_err(|e| anyhow::anyhow!("auth.public_key_file: cannot read {}: {e}", file.display()))?;
                VerificationKey::Rs256Pem { pem }
            }
            (AuthAlgorithm::Rs256, None, jwks) => VerificationKey::Rs256Jwks {
                url: jwks.clone().unwrap_or_default(),
                refresh: Duration::from_secs(self.jwks_refresh_secs),
            },
        };
        Ok(meridian_admin::IdentitySettings {
            login_url: self.login_url.clone(),
            refresh_url: self.refresh_url.clone(),
            users_url: self.users_url.clone(),
            key,
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            leeway: Duration::from_secs(self.leeway_secs),
            service_token: self.service_token.clone(),
            sync_interval: Duration::from_secs(self.sync_interval_secs),
            users_page_size: self.users_page_size,
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            cookie: CookieSettings {
                name: self.cookie_name.clone(),
                secure: match self.cookie_secure {
                    CookieSecureSetting::Auto => CookieSecure::Auto,
                    CookieSecureSetting::Always => CookieSecure::Always,
                    CookieSecureSetting::Never => CookieSecure::Never,
                },
                same_site: match self.cookie_same_site {
                    SameSiteSetting::Lax => SameSite::Lax,
                    SameSiteSetting::Strict => SameSite::Strict,
                },
            },
            sign_in_attempts: meridian_admin::AttemptLimits {
                per_link: self.sign_in_attempts_per_login,
                per_client: self.sign_in_attempts_per_client,
                window: Duration::from_secs(self.sign_in_window_secs),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{VALID, load_str};

    const AUTH: &str = r#"
[auth]
login_url = "http://127.0.0.1:8100/auth/v1/login"
refresh_url = "http://127.0.0.1:8100/auth/v1/refresh"
users_url = "http://127.0.0.1:8100/auth/v1/users"
algorithm = "HS256"
hs256_secret = "0123456789abcdef0123456789abcdef"
issuer = "test"
service_token = "service-token-0123456789"
"#;

    #[test]
    fn auth_errors_name_the_field() {
        let valid = format!("{VALID}{AUTH}");
        assert!(load_str(&valid).is_ok(), "{:?}", load_str(&valid).err());
        let cases = [
            (valid.replace("0123456789abcdef0123456789abcdef", "short"), "auth.hs256_secret"),
            (valid.replace("http://127.0.0.1:8100/auth/v1/users", "ftp://x/users"), "auth.users_url"),
            (valid.replace("\"HS256\"", "\"RS256\""), "auth.hs256_secret"),
            (valid.replace("\"HS256\"", "\"none\""), "algorithm"),
            (valid.replace("issuer = \"test\"", "issuer = \"\""), "auth.issuer"),
            (format!("{valid}cookie_name = \"a b\"\n"), "auth.cookie_name"),
            (format!("{valid}sync_interval_secs = 0\n"), "auth.sync_interval_secs"),
            (format!("{valid}cookie_secure = \"sometimes\"\n"), "cookie_secure"),
            (
                valid
                    .replace("hs256_secret = \"0123456789abcdef0123456789abcdef\"", "public_key_file = \"nowhere.pem\"")
                    .replace("\"HS256\"", "\"RS256\""),
                "auth.public_key_file",
            ),
        ];
        for (text, field) in cases {
            let message = load_str(&text).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(message.contains(field), "error {message:?} should name {field}");
        }
    }
}
