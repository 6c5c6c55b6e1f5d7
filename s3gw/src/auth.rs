//! Who may call the S3 API: SigV4 secrets come from the replicated key store, and every
//! request must be signed.

use meridian_raft::MetaStore;
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::{S3Result, s3_error};

/// Longest lifetime of a presigned URL, as S3 allows: 7 days.
const MAX_PRESIGNED_EXPIRY_SECS: u64 = 7 * 24 * 3600;

/// Looks access keys up in the metadata store.
pub struct KeyStoreAuth {
    meta: MetaStore,
}

impl KeyStoreAuth {
    /// Authentication over the given store.
    pub fn new(meta: MetaStore) -> Self {
        Self { meta }
    }
}

#[async_trait::async_trait]
impl S3Auth for KeyStoreAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        // A key created through another node a moment ago may not be applied here yet.
        let found = self.meta.read_confirmed(|m| m.access_key(access_key)).await;
        match found.map_err(crate::error::read)? {
            Some(key) => Ok(SecretKey::from(key.secret)),
            None => {
                tracing::info!(access_key, "request with an unknown access key");
                Err(s3_error!(AccessDenied, "The AWS access key Id you provided does not exist in our records."))
            }
        }
    }
}

/// Refuses anonymous requests and presigned URLs that would live longer than S3 allows.
pub struct AccessPolicy;

#[async_trait::async_trait]
impl S3Access for AccessPolicy {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        if cx.credentials().is_none() {
            return Err(s3_error!(AccessDenied, "Requests must be signed."));
        }
        let expires = cx
            .uri()
            .query()
            .into_iter()
            .flat_map(|q| q.split('&'))
            .find_map(|pair| pair.strip_prefix("X-Amz-Expires=").and_then(|v| v.parse::<u64>().ok()));
        if expires.is_some_and(|secs| secs > MAX_PRESIGNED_EXPIRY_SECS) {
            return Err(s3_error!(AccessDenied, "Presigned URLs may not be valid for more than 7 days."));
        }
        Ok(())
    }
}
