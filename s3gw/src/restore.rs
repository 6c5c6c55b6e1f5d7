//! Restoring an older version of a file as its new current version (the admin panel's
//! "restore": a cinema rolls back a bad re-encode). The version's bytes are copied onto its own
//! key, exactly as an S3 client restores with CopyObject from `?versionId=`: the chosen version
//! stays as it was, and the copy is a new version written on the user's behalf.

use meridian_raft::Actor;
use s3s::S3ErrorCode;

use crate::blob::{BlobStore, new_id};
use crate::gateway::{Gateway, Origin};
use crate::objects::WriteOptions;

/// Why a version could not be restored.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// No such version of the file (or no such file).
    #[error("no version {version_id:?} of {bucket}/{key}")]
    NoSuchVersion {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
        /// The version asked for.
        version_id: String,
    },
    /// The version is a delete marker: it has no bytes to restore.
    #[error("version {0:?} is a delete marker")]
    DeleteMarker(String),
    /// This node does not hold the version's bytes yet (replication is still on its way).
    #[error("the version's bytes are not on this node yet; try again shortly")]
    NotHeldHere,
    /// The store refused or failed (named by its S3 error).
    #[error("{0}")]
    Refused(String),
}

impl Gateway {
    /// Writes a copy of version `version_id` of `bucket/key` as the key's new current version,
    /// for `actor` asking from `client`. Returns the new version's id (`None` in a bucket never
    /// versioned).
    pub async fn restore_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
        actor: Actor,
        client: Option<String>,
    ) -> Result<Option<String>, RestoreError> {
        let found = match self.copy_source_version(bucket, key, Some(version_id)).await {
            Ok(found) => found,
            Err(e) if *e.code() == S3ErrorCode::InvalidRequest => {
                return Err(RestoreError::DeleteMarker(version_id.to_owned()));
            }
            Err(e)
                if matches!(
                    e.code(),
                    S3ErrorCode::NoSuchVersion | S3ErrorCode::NoSuchKey | S3ErrorCode::InvalidArgument
                ) =>
            {
                return Err(RestoreError::NoSuchVersion {
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                    version_id: version_id.to_owned(),
                });
            }
            Err(e) => return Err(RestoreError::Refused(e.message().unwrap_or("refused").to_owned())),
        };
        let source = found.meta;
        let blob = if source.inline.is_some() { String::new() } else { new_id() };
        if source.inline.is_none()
            && let Err(e) = self.blobs.duplicate(&source.blob, &blob).await
        {
            tracing::warn!(blob = %source.blob, error = %e, "restore: the version's bytes are not on this node");
            return Err(RestoreError::NotHeldHere);
        }
        let mut meta = self.new_version(blob, source.size, source.etag.clone(), source.headers.clone());
        meta.inline.clone_from(&source.inline);
        meta.tags.clone_from(&source.tags);
        meta.checksums = source.checksums.clone();
        meta.parts = source.parts.clone();
        let origin = Origin { actor: Some(actor), client };
        let restored = self
            .commit_new_version(bucket, key, meta, WriteOptions::default(), origin)
            .await
            .map_err(|e| RestoreError::Refused(e.message().unwrap_or("refused").to_owned()))?;
        tracing::info!(%bucket, %key, from = %version_id, to = ?restored, "version restored");
        Ok(restored)
    }
}
