//! Background duties of the gateway: the work that applying the log assigned to this node,
//! blobs no version refers to, and multipart uploads nobody finished.

use std::time::Duration;

use meridian_raft::Command;
use meridian_raft::model::WorkItem;

use crate::blob::BlobStore;
use crate::gateway::{Gateway, now_millis};

/// A blob younger than this may belong to a write still waiting for its commit.
const ORPHAN_GRACE: Duration = Duration::from_secs(15 * 60);

/// Why a housekeeping pass stopped early.
#[derive(Debug, thiserror::Error)]
pub enum HousekeepingError {
    /// Reading the metadata store failed.
    #[error("metadata store: {0}")]
    Store(#[from] meridian_raft::StoreError),
    /// The disk failed.
    #[error("blob store: {0}")]
    Io(#[from] std::io::Error),
}

impl Gateway {
    /// Performs every pending local work item of this node (drops), oldest first; pulls are
    /// the replicator's. Returns how many were done.
    pub async fn perform_pending_work(&self) -> Result<usize, HousekeepingError> {
        let items = self.meta.work_items()?;
        let mut done = 0;
        for (key, item) in &items {
            match item {
                WorkItem::Pull { .. } => continue,
                WorkItem::DropBlob { blob } => {
                    // A version written later may have reused nothing, but a replica pulled
                    // late could be referenced again: only drop what nothing refers to.
                    if !self.meta.blob_is_referenced(blob)? {
                        self.blobs.remove(blob).await?;
                        tracing::debug!(%blob, "dropped a blob no version refers to");
                    }
                }
                WorkItem::DropUploadParts { upload } => self.drop_upload_parts(upload).await?,
            }
            self.meta.complete_work(key)?;
            done += 1;
        }
        Ok(done)
    }

    /// Deletes blobs that no version refers to and that are old enough not to belong to a
    /// write in progress (e.g. left by a crash between the blob's rename and its commit).
    pub async fn sweep_orphan_blobs(&self) -> Result<usize, HousekeepingError> {
        let mut removed = 0;
        for (blob, age) in self.blobs.list().await? {
            if age >= ORPHAN_GRACE && !self.meta.blob_is_referenced(&blob)? {
                self.blobs.remove(&blob).await?;
                removed += 1;
            }
        }
        if removed > 0 {
            tracing::info!(removed, "removed orphaned blobs");
        }
        // Partial pulls of blobs no object refers to any more (deleted or overwritten while
        // this node was pulling them) leave no trace either.
        removed += self.sweep_partials().await?;
        Ok(removed)
    }

    /// Aborts multipart uploads started on this node longer than `max_age` ago.
    pub async fn abort_stale_uploads(&self, max_age: Duration) -> Result<usize, HousekeepingError> {
        let cutoff = now_millis() - i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
        let mut aborted = 0;
        for upload in self.meta.all_uploads()? {
            if upload.node == self.meta.node_id() && upload.initiated < cutoff {
                match self.meta.propose(Command::AbortUpload { id: upload.id.clone() }).await {
                    Ok(_) => aborted += 1,
                    Err(e) => tracing::warn!(upload = %upload.id, error = %e, "could not abort a stale upload"),
                }
            }
        }
        if aborted > 0 {
            tracing::info!(aborted, "aborted abandoned multipart uploads");
        }
        Ok(aborted)
    }
}
