//! Verifying the Auth service's access tokens.
//!
//! The algorithm is pinned by configuration and checked against the token's header before any
//! key is touched, so neither `alg: none` nor the classic confusion (an HS256 token whose
//! "secret" is the RS256 public key) gets as far as a signature check.

use std::time::Duration;

use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::jwks::JwksCache;

/// Where the verifying key comes from; also fixes the one accepted algorithm.
pub enum VerificationKey {
    /// HS256 with a secret shared with the Auth service.
    Hs256 {
        /// The shared secret.
        secret: Vec<u8>,
    },
    /// RS256 with a public key given as PEM (`BEGIN PUBLIC KEY` or `BEGIN RSA PUBLIC KEY`).
    Rs256Pem {
        /// The PEM text.
        pem: Vec<u8>,
    },
    /// RS256 with the keys the Auth service publishes as a JWKS, cached and refreshed.
    Rs256Jwks {
        /// The JWKS URL.
        url: String,
        /// How long fetched keys are used before they are fetched again.
        refresh: Duration,
    },
}

/// Why a token was refused. Each maps to a distinct `error` code of the 401 answer, so a client
/// (or a test) can tell an expired token, which a refresh fixes, from a forged one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts with a JSON header and payload.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The header names another algorithm than the pinned one.
    #[error("token algorithm {found:?} is not accepted (this node accepts {pinned} only)")]
    WrongAlgorithm {
        /// The header's `alg`.
        found: String,
        /// The configured algorithm.
        pinned: &'static str,
    },
    /// The signature does not verify with the configured key.
    #[error("the token's signature does not verify")]
    BadSignature,
    /// `exp` (plus leeway) has passed.
    #[error("the token has expired")]
    Expired,
    /// `nbf` (minus leeway) is still in the future.
    #[error("the token is not valid yet (nbf is in the future)")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("the token was issued by someone else")]
    WrongIssuer,
    /// `aud` does not name the configured audience.
    #[error("the token is meant for another audience")]
    WrongAudience,
    /// A claim the contract requires is absent.
    #[error("the token lacks the {0:?} claim")]
    MissingClaim(String),
    /// `type` is not `access` (e.g. a refresh token presented as an access token).
    #[error("a token of type {0:?} is not an access token")]
    WrongType(String),
    /// RS256 with a JWKS: no key of the set matches and the set cannot be fetched right now.
    #[error("the Auth service's signing keys are unavailable: {0}")]
    KeysUnavailable(String),
}

impl TokenError {
    /// The stable `error` code of the 401 answer.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "token_malformed",
            Self::WrongAlgorithm { .. } => "token_algorithm",
            Self::BadSignature => "token_signature",
            Self::Expired => "token_expired",
            Self::NotYetValid => "token_not_yet_valid",
            Self::WrongIssuer => "token_issuer",
            Self::WrongAudience => "token_audience",
            Self::MissingClaim(_) => "token_claims",
            Self::WrongType(_) => "token_type",
            Self::KeysUnavailable(_) => "auth_keys_unavailable",
        }
    }
}

/// The claims Meridian reads from an access token. Every field has a default so that a missing
/// claim is reported by name (by the validation or by the verifier) rather than as
/// a parse error.
#[derive(Debug, Clone, Deserialize)]
pub struct AccessClaims {
    /// The user id.
    #[serde(default)]
    pub sub: String,
    /// The user's roles; `admin` grants everything.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Expiry, seconds since the epoch.
    #[serde(default)]
    pub exp: u64,
    /// `access` or `refresh`; only `access` is accepted.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
}

/// The header fields looked at before verification.
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// Checks access tokens against one pinned algorithm and key source.
pub(crate) struct TokenVerifier {
    algorithm: Algorithm,
    keys: Keys,
    validation: Validation,
}

/// The resolved key source.
enum Keys {
    /// A fixed key (HS256 secret or RS256 PEM).
    Fixed(DecodingKey),
    /// Keys of a JWKS.
    Jwks(JwksCache),
}

/// Why a verifier cannot be built from its settings.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(pub String);

impl TokenVerifier {
    /// A verifier for `key`, accepting tokens of `issuer` (and `audience`, when given) whose
    /// `exp` / `nbf` hold within `leeway`.
    pub(crate) fn new(
        key: VerificationKey,
        issuer: &str,
        audience: Option<&str>,
        leeway: Duration,
        http: reqwest::Client,
    ) -> Result<Self, KeyError> {
        let (algorithm, keys) = match key {
            VerificationKey::Hs256 { secret } => (Algorithm::HS256, Keys::Fixed(DecodingKey::from_secret(&secret))),
            VerificationKey::Rs256Pem { pem } => {
                let key = DecodingKey::from_rsa_pem(&pem)
                    .map_err(|e| KeyError(format!("not an RSA public key in PEM form: {e}")))?;
                (Algorithm::RS256, Keys::Fixed(key))
            }
            VerificationKey::Rs256Jwks { url, refresh } => {
                (Algorithm::RS256, Keys::Jwks(JwksCache::new(url, refresh, http)))
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "sub"]);
        match audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                validation.required_spec_claims.insert("aud".to_owned());
            }
            None => validation.validate_aud = false,
        }
        Ok(Self { algorithm, keys, validation })
    }

    /// The pinned algorithm's name.
    pub(crate) fn algorithm_name(&self) -> &'static str {
        algorithm_name(self.algorithm)
    }

    /// The claims of a valid access token.
    pub(crate) async fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let header = raw_header(token)?;
        if header.alg != self.algorithm_name() {
            return Err(TokenError::WrongAlgorithm { found: header.alg, pinned: self.algorithm_name() });
        }
        let claims = match &self.keys {
            Keys::Fixed(key) => self.decode(token, key)?,
            Keys::Jwks(cache) => {
                let candidates = cache.keys_for(header.kid.as_deref()).await?;
                // Without a `kid` every key of the set is tried; a bad signature under all of
                // them is a bad signature.
                let mut last = TokenError::BadSignature;
                let mut found = None;
                for key in &candidates {
                    match self.decode(token, key) {
                        Ok(claims) => {
                            found = Some(claims);
                            break;
                        }
                        Err(TokenError::BadSignature) => {}
                        Err(other) => {
                            last = other;
                            break;
                        }
                    }
                }
                found.ok_or(last)?
            }
        };
        match claims.kind.as_deref() {
            Some("access") => {}
            Some(other) => return Err(TokenError::WrongType(other.to_owned())),
            None => return Err(TokenError::MissingClaim("type".into())),
        }
        if claims.sub.is_empty() {
            return Err(TokenError::MissingClaim("sub".into()));
        }
        Ok(claims)
    }

    fn decode(&self, token: &str, key: &DecodingKey) -> Result<AccessClaims, TokenError> {
        jsonwebtoken::decode::<AccessClaims>(token, key, &self.validation).map(|data| data.claims).map_err(|e| {
            match e.kind() {
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
                ErrorKind::InvalidAudience => TokenError::WrongAudience,
                ErrorKind::MissingRequiredClaim(claim) => TokenError::MissingClaim(claim.clone()),
                ErrorKind::InvalidAlgorithm => {
                    TokenError::WrongAlgorithm { found: "(other)".into(), pinned: self.algorithm_name() }
                }
                // `roles` not a list, a claim of the wrong type...: not the contract's payload.
                _ => TokenError::Malformed(e.to_string()),
            }
        })
    }
}

/// `HS256` / `RS256`.
fn algorithm_name(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::RS256 => "RS256",
        _ => "HS256",
    }
}

/// The header of a token, read without trusting it.
fn raw_header(token: &str) -> Result<RawHeader, TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(TokenError::Malformed("a JWT has three dot-separated parts".into()));
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .map_err(|e| TokenError::Malformed(format!("header is not base64url: {e}")))?;
    serde_json::from_slice(&bytes).map_err(|e| TokenError::Malformed(format!("header is not a JWT header: {e}")))
}

/// The `exp` of a token, read WITHOUT verifying it: only for choosing how long a cookie lives.
pub(crate) fn unverified_expiry(token: &str) -> Option<u64> {
    #[derive(Deserialize)]
    struct Exp {
        exp: u64,
    }
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice::<Exp>(&bytes).ok().map(|e| e.exp)
}
