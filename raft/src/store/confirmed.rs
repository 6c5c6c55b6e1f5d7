//! Reads that may only call a record absent after catching up with the leader.

use super::MetaStore;
use crate::error::{ProposeError, StoreError};

/// Why a confirmed read ([`MetaStore::read_confirmed`]) has no answer.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The record is not here and the leader could not be asked whether it exists elsewhere
    /// (cut off from it, no quorum): "absent" cannot be answered.
    #[error("cannot confirm with the leader that it is absent: {0}")]
    Unconfirmed(#[source] ProposeError),
}

impl MetaStore {
    /// Reads a record from the local state; when it is not there, waits for a read index
    /// ([`MetaStore::read_barrier`]) and reads again. So `None` is only answered once everything
    /// the leader had committed is applied here: a write acknowledged through another node a
    /// moment ago is never reported missing. A record found at once is served without the round
    /// trip (it may be a little stale, never absent by mistake).
    pub async fn read_confirmed<T>(
        &self,
        read: impl Fn(&MetaStore) -> Result<Option<T>, StoreError>,
    ) -> Result<Option<T>, ReadError> {
        // Even a local read must not answer from a store that stopped taking entries.
        self.refuse_if_failed().map_err(ReadError::Unconfirmed)?;
        if let Some(found) = read(self)? {
            return Ok(Some(found));
        }
        self.read_barrier().await.map_err(ReadError::Unconfirmed)?;
        Ok(read(self)?)
    }
}
