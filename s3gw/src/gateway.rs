//! [`Gateway`]: the state every S3 operation shares, and the steps they have in common.

use std::sync::Arc;

use meridian_raft::model::{Bucket, ObjectMeta, UnixMillis};
use meridian_raft::{Command, CommandOutcome, MetaStore};
use s3s::{S3Result, s3_error};

use crate::blob::DiskBlobs;
use crate::error;

/// The S3 gateway of one node.
#[derive(Clone)]
pub struct Gateway {
    /// The replicated metadata store.
    pub(crate) meta: MetaStore,
    /// This node's blob store.
    pub(crate) blobs: Arc<DiskBlobs>,
    /// This node's region name (GetBucketLocation, new buckets).
    pub(crate) region: String,
}

/// Now, in the metadata store's time unit.
pub(crate) fn now_millis() -> UnixMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Gateway {
    /// A gateway over the given stores.
    pub fn new(meta: MetaStore, blobs: Arc<DiskBlobs>, region: String) -> Self {
        Self { meta, blobs, region }
    }

    /// The metadata store (for the node's background workers).
    pub fn meta(&self) -> &MetaStore {
        &self.meta
    }

    /// The blob store (for the node's background workers).
    pub fn blobs(&self) -> &Arc<DiskBlobs> {
        &self.blobs
    }

    /// Proposes a command and turns a refusal into its S3 error.
    pub(crate) async fn commit(&self, command: Command) -> S3Result<CommandOutcome> {
        match self.meta.propose(command).await.map_err(error::propose)? {
            CommandOutcome::Rejected(rejection) => Err(error::rejected(rejection)),
            outcome => Ok(outcome),
        }
    }

    /// Reads a record locally; when it is absent, first catches up with the leader (read index)
    /// and reads again, so a write acknowledged by another node is never reported missing.
    pub(crate) async fn read_through<T>(
        &self,
        read: impl Fn(&MetaStore) -> Result<Option<T>, meridian_raft::StoreError>,
    ) -> S3Result<Option<T>> {
        if let Some(found) = read(&self.meta).map_err(error::store)? {
            return Ok(Some(found));
        }
        self.meta.read_barrier().await.map_err(error::propose)?;
        read(&self.meta).map_err(error::store)
    }

    /// The bucket, or NoSuchBucket.
    pub(crate) async fn bucket(&self, name: &str) -> S3Result<Bucket> {
        self.read_through(|m| m.bucket(name)).await?.ok_or_else(|| s3_error!(NoSuchBucket))
    }

    /// The current version of an object, or NoSuchBucket / NoSuchKey.
    pub(crate) async fn object(&self, bucket: &str, key: &str) -> S3Result<ObjectMeta> {
        if let Some(found) = self.read_through(|m| m.object(bucket, key)).await? {
            return Ok(found);
        }
        self.bucket(bucket).await?;
        Err(s3_error!(NoSuchKey))
    }
}
