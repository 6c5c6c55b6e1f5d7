//! The Auth service's RS256 public keys, fetched from its JWKS URL, cached, and fetched again
//! when they age out or when a token names a key id the cache does not know (key rotation).

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use tokio::sync::{Mutex, RwLock};

use super::jwt::TokenError;

/// A token naming an unknown key id makes the cache fetch again, but not more often than this
/// after the last attempt (successful or not), so a stream of forged `kid`s, or tokens arriving
/// while the Auth service is down, cannot turn this node into a flood against it nor queue every
/// sign-in behind one fetch after another.
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
    /// When the last fetch was attempted, whatever came of it. Held while fetching, so concurrent
    /// requests wait for one fetch instead of each starting one.
    last_attempt: Mutex<Option<Instant>>,
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
        Self { url, refresh, http, current: RwLock::new(None), last_attempt: Mutex::new(None) }
    }

    /// The keys to try for a token whose header names `kid` (all of them when it names none).
    pub(crate) async fn keys_for(&self, kid: Option<&str>) -> Result<Vec<DecodingKey>, TokenError> {
        if let Some(keys) = self.cached(kid, self.refresh).await {
            return Ok(keys);
        }
        let mut last_attempt = self.last_attempt.lock().await;
        // Another request may have fetched (or failed to) while this one waited.
        if last_attempt.is_some_and(|at| at.elapsed() < MIN_REFETCH.min(self.refresh)) {
            return self.last_fetched(kid).await;
        }
        *last_attempt = Some(Instant::now());
        match self.fetch().await {
            Ok(keys) => {
                *self.current.write().await = Some(Fetched { keys: Arc::new(keys), at: Instant::now() });
            }
            Err(reason) => {
                tracing::warn!(url = %self.url, %reason, "fetching the Auth service's JWKS failed");
                if self.current.read().await.is_none() {
                    return Err(TokenError::KeysUnavailable(reason));
                }
            }
        }
        self.last_fetched(kid).await
    }

    /// The matching keys of the last set fetched, however old: stale keys are better than none
    /// while the Auth service is away. A key id the set does not have: the token was not signed
    /// by the Auth service (as far as anyone can tell until the next fetch is allowed).
    async fn last_fetched(&self, kid: Option<&str>) -> Result<Vec<DecodingKey>, TokenError> {
        let current = self.current.read().await;
        let Some(fetched) = current.as_ref() else {
            return Err(TokenError::KeysUnavailable("the last fetch failed moments ago".into()));
        };
        let keys = select(&fetched.keys, kid);
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::response::IntoResponse as _;

    use super::*;

    /// The public key of `node/tests/fixtures/devauth-rs256.pem`, as a JWK modulus.
    const MODULUS: &str = "yy0sTq8Ckbf_QQXtzT4ugb0yZMU708qCnJ2ZHNP4fOGE3cPQ0nTd_3Eb_G9mRDJWMW1qQJBoXMjZviuFBu2sB3og-dg3B5fbBIOKZmlAlI8i7enCbyn0USSCHhBatwEU7F_bwyZUBN_dBUogYa7Al8EtWbYuYSd5XbIAsUWCgqjQvxQU0A4rBVczNOwP53l2Gc_JPMrcQMK_rmWrklvgAi2t0-VaStckDUxakZwTQBh2Lm77_9P49R_BhPe1Bfmo6X3JTSaNIF0U4Ak7stUiAfhao2bWkZu4QY9XMxEN3z_Yssy2YgmcLFgDKkOVUuiTtcAFUPGbZLQrDwYQEIuTyQ";

    /// A JWKS endpoint on loopback that counts its requests; it answers the key set while `up`,
    /// 503 otherwise.
    async fn jwks_server(up: bool) -> (String, Arc<AtomicUsize>) {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let set = serde_json::json!({ "keys": [{ "kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig", "n": MODULUS, "e": "AQAB" }] });
        let app = axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                let set = set.clone();
                async move {
                    if up {
                        axum::Json(set).into_response()
                    } else {
                        axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response()
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}/jwks"), hits)
    }

    /// Unknown key ids fetch the set again at most once per MIN_REFETCH, and are refused from
    /// the cache in between; a known one is served from the cache.
    #[tokio::test]
    async fn unknown_kids_refetch_at_most_once_per_period() {
        let (url, hits) = jwks_server(true).await;
        let cache = JwksCache::new(url, Duration::from_secs(3600), reqwest::Client::new());
        assert_eq!(cache.keys_for(Some("k1")).await.map(|k| k.len()).ok(), Some(1));
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        for i in 0..20 {
            let kid = format!("forged-{i}");
            assert!(matches!(cache.keys_for(Some(&kid)).await, Err(TokenError::BadSignature)), "{kid}");
        }
        assert_eq!(hits.load(Ordering::SeqCst), 1, "forged kids right after a fetch fetch nothing");
        assert_eq!(cache.keys_for(Some("k1")).await.map(|k| k.len()).ok(), Some(1));
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    /// While the Auth service is down, a stream of tokens makes one fetch attempt per period,
    /// not one each.
    #[tokio::test]
    async fn failed_fetches_are_not_repeated_for_every_token() {
        let (url, hits) = jwks_server(false).await;
        let cache = JwksCache::new(url, Duration::from_secs(3600), reqwest::Client::new());
        for i in 0..20 {
            let kid = format!("kid-{i}");
            assert!(matches!(cache.keys_for(Some(&kid)).await, Err(TokenError::KeysUnavailable(_))), "{kid}");
        }
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }
}
