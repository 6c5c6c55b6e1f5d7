//! Who is calling the S3 API: SigV4 secrets come from the replicated key store. What each caller
//! may then do is [`crate::access`].

use meridian_raft::MetaStore;
use s3s::auth::{S3Auth, SecretKey};
use s3s::{S3Result, s3_error};

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
