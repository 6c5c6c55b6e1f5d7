//! `[api]` and `[[api.service_token]]` of `cluster.toml`: who may call the web listener's JSON
//! API besides access-key holders (the cinema's services), and who may read its status routes.

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

use super::ConfigError;

/// `[api]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApiSection {
    /// Bearer tokens of the cinema's services (event consumers, the upload front end).
    #[serde(default)]
    pub(crate) service_token: Vec<ServiceTokenConfig>,
    /// Who may read `/metrics` and `/api/v1/cluster` (they describe the cluster's members,
    /// addresses and load).
    #[serde(default)]
    pub(crate) status_access: StatusAccess,
}

/// `[api] status_access`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum StatusAccess {
    /// Open when the node's web listener binds a loopback address, else `token`.
    #[default]
    Auto,
    /// Anyone who reaches the web listener.
    Open,
    /// Only callers with a service token or an access key (as on the rest of the JSON API).
    Token,
}

/// One `[[api.service_token]]`: only the token's hash is in the file, so a leaked config does not
/// leak the token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServiceTokenConfig {
    /// Who holds the token; the actor name of what it does.
    pub(crate) name: String,
    /// Lowercase hex SHA-256 of the token (`printf %s TOKEN | sha256sum`).
    pub(crate) sha256: String,
}

impl ApiSection {
    /// Whether the status routes are open to anyone on a web listener bound to `web`.
    pub(crate) fn status_open(&self, web: &str) -> bool {
        match self.status_access {
            StatusAccess::Open => true,
            StatusAccess::Token => false,
            StatusAccess::Auto => web.parse::<SocketAddr>().is_ok_and(|addr| addr.ip().is_loopback()),
        }
    }

    /// The tokens in the form the web listener checks.
    pub(crate) fn service_tokens(&self) -> Vec<meridian_admin::ServiceToken> {
        self.service_token
            .iter()
            .filter_map(|t| {
                let mut sha256 = [0u8; 32];
                hex::decode_to_slice(&t.sha256, &mut sha256).ok()?;
                Some(meridian_admin::ServiceToken { name: t.name.clone(), sha256 })
            })
            .collect()
    }

    /// Checks that each service token is named and its hash is a SHA-256 in hex, so
    /// [`ApiSection::service_tokens`] never drops one silently.
    pub(super) fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        for (i, token) in self.service_token.iter().enumerate() {
            if token.name.trim().is_empty() {
                return Err(ConfigError::invalid(
                    path,
                    format!("api.service_token[{i}].name"),
                    "must not be empty".into(),
                ));
            }
            if token.sha256.len() != 64 || !token.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ConfigError::invalid(
                    path,
                    format!("api.service_token[{i}].sha256"),
                    "must be 64 hex digits (the SHA-256 of the token)".into(),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{VALID, load_str};
    use super::StatusAccess;

    /// The status routes are open on a loopback web listener and need a token elsewhere,
    /// unless `[api] status_access` says otherwise.
    #[test]
    fn status_routes_are_open_only_on_loopback_by_default() {
        let config = load_str(VALID).expect("valid");
        assert_eq!(config.api.status_access, StatusAccess::Auto);
        assert!(config.api.status_open("127.0.0.1:8080"));
        assert!(config.api.status_open("[::1]:8080"));
        assert!(!config.api.status_open("0.0.0.0:8080"));
        assert!(!config.api.status_open("192.0.2.10:8080"));
        let open = load_str(&format!("{VALID}[api]\nstatus_access = \"open\"\n")).expect("valid");
        assert!(open.api.status_open("0.0.0.0:8080"));
        let token = load_str(&format!("{VALID}[api]\nstatus_access = \"token\"\n")).expect("valid");
        assert!(!token.api.status_open("127.0.0.1:8080"));
        let bad = load_str(&format!("{VALID}[api]\nstatus_access = \"maybe\"\n")).err().map(|e| e.to_string());
        assert!(bad.is_some_and(|e| e.contains("status_access")), "a bad value names the field");
    }
}
