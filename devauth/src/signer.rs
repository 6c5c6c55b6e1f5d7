//! Issuing and checking the stand-in's JWTs, and publishing its public key as a JWKS.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse, RSAKeyParameters, RSAKeyType,
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::rand::SecureRandom as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::directory::SeedUser;
use crate::{DevAuthConfig, DevAuthError, Signing};

/// The claims of every token it issues (the contract of `docs/auth.md`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Claims {
    /// Issuer: the stand-in's configured issuer, which Meridian checks.
    pub(crate) iss: String,
    /// User id.
    pub(crate) sub: String,
    /// Audience, when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) aud: Option<String>,
    /// Issued at (seconds since the epoch).
    pub(crate) iat: u64,
    /// Not before.
    pub(crate) nbf: u64,
    /// Expiry (seconds since the epoch): the token is refused from then on.
    pub(crate) exp: u64,
    /// `access` or `refresh`.
    #[serde(rename = "type")]
    pub(crate) kind: String,
    /// The user's roles at issue time.
    pub(crate) roles: Vec<String>,
    /// A random id, so two tokens issued in the same second still differ.
    pub(crate) jti: String,
}

/// Both tokens of a sign-in or a refresh.
pub(crate) struct TokenPair {
    /// The access token.
    pub(crate) access: String,
    /// The refresh token.
    pub(crate) refresh: String,
}

/// Signs and checks tokens with the configured key.
pub(crate) struct Signer {
    algorithm: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// The public key set served at `/auth/v1/jwks` (empty for HS256: a shared secret is never
    /// published).
    jwks: JwkSet,
    /// Key id put in every header (RS256), so verifiers can pick the key out of the JWKS.
    kid: Option<String>,
    issuer: String,
    audience: Option<String>,
    access_ttl: Duration,
    refresh_ttl: Duration,
    random: ring::rand::SystemRandom,
}

/// Why a refresh token was refused.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct RefreshRefused(String);

impl Signer {
    pub(crate) fn new(config: &DevAuthConfig) -> Result<Self, DevAuthError> {
        let (algorithm, encoding, decoding, jwks, kid) = match &config.signing {
            Signing::Hs256 { secret } => (
                Algorithm::HS256,
                EncodingKey::from_secret(secret.as_bytes()),
                DecodingKey::from_secret(secret.as_bytes()),
                JwkSet { keys: Vec::new() },
                None,
            ),
            Signing::Rs256 { private_key } => {
                let key_error = |message: String| DevAuthError::Key { path: private_key.clone(), message };
                let text = std::fs::read(private_key).map_err(|e| key_error(e.to_string()))?;
                let encoding = EncodingKey::from_rsa_pem(&text).map_err(|e| key_error(e.to_string()))?;
                let parsed = pem::parse(&text).map_err(|e| key_error(e.to_string()))?;
                let pair = match parsed.tag() {
                    "PRIVATE KEY" => ring::signature::RsaKeyPair::from_pkcs8(parsed.contents()),
                    "RSA PRIVATE KEY" => ring::signature::RsaKeyPair::from_der(parsed.contents()),
                    other => return Err(key_error(format!("a PEM {other:?} is not an RSA private key"))),
                }
                .map_err(|e| key_error(e.to_string()))?;
                let public: ring::rsa::PublicKeyComponents<Vec<u8>> = pair.public().into();
                let n = b64url(&public.n);
                let e = b64url(&public.e);
                let decoding = DecodingKey::from_rsa_components(&n, &e).map_err(|e| key_error(e.to_string()))?;
                // A stable key id: the start of the public key's SHA-256.
                let kid = hex::encode(&Sha256::digest(pair.public().as_ref())[..8]);
                let jwk = Jwk {
                    common: CommonParameters {
                        public_key_use: Some(PublicKeyUse::Signature),
                        key_algorithm: Some(KeyAlgorithm::RS256),
                        key_id: Some(kid.clone()),
                        ..CommonParameters::default()
                    },
                    algorithm: AlgorithmParameters::RSA(RSAKeyParameters { key_type: RSAKeyType::RSA, n, e }),
                };
                (Algorithm::RS256, encoding, decoding, JwkSet { keys: vec![jwk] }, Some(kid))
            }
        };
        Ok(Self {
            algorithm,
            encoding,
            decoding,
            jwks,
            kid,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            access_ttl: config.access_ttl,
            refresh_ttl: config.refresh_ttl,
            random: ring::rand::SystemRandom::new(),
        })
    }

    /// `HS256` or `RS256`, for the start-up log.
    pub(crate) fn algorithm_name(&self) -> &'static str {
        match self.algorithm {
            Algorithm::RS256 => "RS256",
            _ => "HS256",
        }
    }

    pub(crate) fn jwks(&self) -> &JwkSet {
        &self.jwks
    }

    pub(crate) fn access_ttl(&self) -> Duration {
        self.access_ttl
    }

    pub(crate) fn refresh_ttl(&self) -> Duration {
        self.refresh_ttl
    }

    /// A fresh access and refresh token for `user`.
    pub(crate) fn issue(&self, user: &SeedUser) -> Result<TokenPair, jsonwebtoken::errors::Error> {
        Ok(TokenPair {
            access: self.sign(user, "access", self.access_ttl)?,
            refresh: self.sign(user, "refresh", self.refresh_ttl)?,
        })
    }

    fn sign(&self, user: &SeedUser, kind: &str, ttl: Duration) -> Result<String, jsonwebtoken::errors::Error> {
        let now = now_secs();
        let mut jti = [0u8; 16];
        // SystemRandom only fails when the OS has no entropy source at all; an all-zero jti
        // then only costs the uniqueness of a token id, not its security.
        let _ = self.random.fill(&mut jti);
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: user.id.clone(),
            aud: self.audience.clone(),
            iat: now,
            nbf: now,
            exp: now + ttl.as_secs(),
            kind: kind.to_owned(),
            roles: user.roles.clone(),
            jti: hex::encode(jti),
        };
        let mut header = Header::new(self.algorithm);
        header.kid.clone_from(&self.kid);
        jsonwebtoken::encode(&header, &claims, &self.encoding)
    }

    /// The user id of a valid refresh token of ours.
    pub(crate) fn check_refresh(&self, token: &str) -> Result<String, RefreshRefused> {
        let mut validation = Validation::new(self.algorithm);
        validation.leeway = 0;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "sub"]);
        match &self.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|e| RefreshRefused(format!("refresh token refused: {e}")))?;
        if data.claims.kind != "refresh" {
            return Err(RefreshRefused(format!("a token of type {:?} is not a refresh token", data.claims.kind)));
        }
        Ok(data.claims.sub)
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Unpadded base64url, as JWKs carry `n` and `e`.
fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
