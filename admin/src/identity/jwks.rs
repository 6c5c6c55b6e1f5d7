//! The Auth service's RS256 public keys, fetched from its JWKS URL, cached, and fetched again
//! when they age out or when a token names a key id the cache does not know (key rotation).

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use tokio::sync::{Mutex, RwLock};

use super::jwt::TokenError;

/// A token naming an unknown key id makes the cache fetch again, but not more often than this,
/// so a stream of forged `kid`s cannot turn this node into a flood against the Auth service.
const MIN_REFETCH: Duration = Duration::from_secs(10);

/// The cached key set.
pub(crate) struct JwksCache {
    /// The JWKS URL.
    url: String,
    /// Keys older than this are fetched again before use.
    refresh: Duration,
    http: reqwest::Client,
    /// The last set fetched, if any.
    current: RwLock<Option<Fetched>>,
    /// Held while fetching, so concurrent requests wait for one fetch instead of each starting one.
    fetching: Mutex<()>,
}

/// One fetched key set.
struct Fetched {
    /// RSA keys with their ids.
    keys: Arc<Vec<(Option<String>, DecodingKey)>>,
    /// When it was fetched.
    at: Instant,
}

impl JwksCache {
    pub(crate) fn new(url: String, refresh: Duration, http: reqwest::Client) -> Self {
        Self { url, refresh, http, current: RwLock::new(None), fetching: Mutex::new(()) }
    }

    /// The keys to try for a token whose header names `kid` (all of them when it names none).
    pub(crate) async fn keys_for(&self, kid: Option<&str>) -> Result<Vec<DecodingKey>, TokenError> {
        if let Some(keys) = self.cached(kid, self.refresh).await {
            return Ok(keys);
        }
        let _fetching = self.fetching.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(keys) = self.cached(kid, MIN_REFETCH.min(self.refresh)).await {
            return Ok(keys);
        }
        match self.fetch().await {
            Ok(keys) => {
                *self.current.write().await = Some(Fetched { keys: Arc::new(keys), at: Instant::now() });
            }
            Err(reason) => {
                tracing::warn!(url = %self.url, %reason, "fetching the Auth service's JWKS failed");
                // Stale keys are better than none while the Auth service is briefly away.
                let current = self.current.read().await;
                let Some(fetched) = current.as_ref() else { return Err(TokenError::KeysUnavailable(reason)) };
                return Ok(select(&fetched.keys, kid));
            }
        }
        let current = self.current.read().await;
        let keys = current.as_ref().map(|f| select(&f.keys, kid)).unwrap_or_default();
        // A key id the fresh set does not have: the token was not signed by the Auth service.
        if keys.is_empty() { Err(TokenError::BadSignature) } else { Ok(keys) }
    }

    /// The matching cached keys, if the cache is younger than `max_age` and has a match.
    async fn cached(&self, kid: Option<&str>, max_age: Duration) -> Option<Vec<DecodingKey>> {
        let current = self.current.read().await;
        let fetched = current.as_ref().filter(|f| f.at.elapsed() < max_age)?;
        let keys = select(&fetched.keys, kid);
        (!keys.is_empty()).then_some(keys)
    }

    async fn fetch(&self) -> Result<Vec<(Option<String>, DecodingKey)>, String> {
        let response = self.http.get(&self.url).send().await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("status {}", response.status()));
        }
        let set: JwkSet = response.json().await.map_err(|e| format!("not a JWKS: {e}"))?;
        let keys: Vec<_> = set
            .keys
            .iter()
            // Only RSA keys: an `oct` entry would otherwise become an HMAC secret.
            .filter(|jwk| matches!(jwk.algorithm, AlgorithmParameters::RSA(_)))
            .filter_map(|jwk| DecodingKey::from_jwk(jwk).ok().map(|key| (jwk.common.key_id.clone(), key)))
            .collect();
        if keys.is_empty() {
            return Err("the set holds no RSA key".into());
        }
        tracing::info!(url = %self.url, keys = keys.len(), "fetched the Auth service's JWKS");
        Ok(keys)
    }
}

/// The keys with id `kid`, or every key when `kid` is `None`.
fn select(keys: &[(Option<String>, DecodingKey)], kid: Option<&str>) -> Vec<DecodingKey> {
    keys.iter().filter(|(id, _)| kid.is_none() || id.as_deref() == kid).map(|(_, key)| key.clone()).collect()
}
