//! Who is calling the S3 API: SigV4 secrets come from the replicated key store. What each caller
//! may then do is [`crate::access`].

use meridian_raft::MetaStore;
use s3s::auth::{S3Auth, SecretKey};
use s3s::{S3Result, s3_error};

/// Longest wait for a read index before a key is checked: with a lease there is none, without
/// one it is a round trip to the leader. Short, because a node cut off from the leader would
/// otherwise add a whole commit timeout to every request before it even starts.
const KEY_CONFIRM_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

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
        // Linearizable whatever the read consistency: a key disabled or deleted through another
        // node must not sign the next request here, and a key created elsewhere a moment ago
        // must work. Under a read lease this costs no round trip.
        let confirmed = match tokio::time::timeout(KEY_CONFIRM_WAIT, self.meta.read_barrier()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no read index within {KEY_CONFIRM_WAIT:?}")),
        };
        let found = self.meta.usable_access_key(access_key).map_err(crate::error::store)?;
        match (found, confirmed) {
            (Some(key), Ok(())) => Ok(SecretKey::from(key.secret)),
            // Cut off from the leader: a key this node knows as usable keeps working, as reads
            // of known records do (a disable made meanwhile on the majority side cannot reach
            // this node until the partition heals).
            (Some(key), Err(error)) => {
                tracing::warn!(access_key, %error, "key not confirmed with the leader; serving local state");
                Ok(SecretKey::from(key.secret))
            }
            (None, Ok(())) => {
                tracing::info!(access_key, "request with an unknown or disabled access key");
                Err(s3_error!(AccessDenied, "The AWS access key Id you provided does not exist in our records."))
            }
            (None, Err(error)) => {
                tracing::warn!(access_key, %error, "unknown access key, and no leader to confirm it");
                Err(s3_error!(ServiceUnavailable, "the metadata store cannot confirm the access key right now"))
            }
        }
    }
}
