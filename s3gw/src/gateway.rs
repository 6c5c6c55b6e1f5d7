//! [`Gateway`]: the state every S3 operation shares, and the steps they have in common.

use std::sync::Arc;

use meridian_raft::model::{Bucket, ObjectMeta, UnixMillis};
use meridian_raft::{Actor, Command, CommandOutcome, MetaStore};
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
    /// How reads see writes made through other nodes.
    pub(crate) consistency: ReadConsistency,
}

/// How reads see writes acknowledged by other nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadConsistency {
    /// Every read first learns the leader's commit index (read index) and waits until this
    /// node has applied it: a read never misses a write, overwrite or delete acknowledged
    /// anywhere before it started. Costs one round trip to the leader (and the leader's
    /// heartbeat to a quorum) per read.
    Linearizable,
    /// Reads of keys this node knows are answered from its own state, with no round trip; an
    /// overwrite or delete made through another node shows up once this node applies it
    /// (typically milliseconds). Unknown keys still go through the read index, so a new
    /// object is visible everywhere as soon as its PUT returned.
    Local,
}

/// Now, in the metadata store's time unit.
pub(crate) fn now_millis() -> UnixMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Who signed an S3 request: the actor the event bus reports for what it changed.
pub(crate) fn actor_of(credentials: Option<&s3s::auth::Credentials>) -> Option<Actor> {
    credentials.map(|c| Actor::AccessKey(c.access_key.clone()))
}

impl Gateway {
    /// A gateway over the given stores.
    pub fn new(meta: MetaStore, blobs: Arc<DiskBlobs>, region: String, consistency: ReadConsistency) -> Self {
        Self { meta, blobs, region, consistency }
    }

    /// The metadata store (for the node's background workers).
    pub fn meta(&self) -> &MetaStore {
        &self.meta
    }

    /// The blob store (for the node's background workers).
    pub fn blobs(&self) -> &Arc<DiskBlobs> {
        &self.blobs
    }

    /// Proposes a command on behalf of `actor` (see [`Command::Attributed`]), now.
    pub(crate) async fn commit_as(&self, actor: Option<Actor>, command: Command) -> S3Result<CommandOutcome> {
        self.commit(command.attributed(actor, now_millis())).await
    }

    /// Proposes a command and turns a refusal into its S3 error.
    pub(crate) async fn commit(&self, command: Command) -> S3Result<CommandOutcome> {
        match self.meta.propose(command).await.map_err(error::propose)? {
            CommandOutcome::Rejected(rejection) => Err(error::rejected(rejection)),
            outcome => Ok(outcome),
        }
    }

    /// Catches up with everything committed before now (read index), when reads are
    /// linearizable.
    pub(crate) async fn sync_for_read(&self) -> S3Result<()> {
        if self.consistency == ReadConsistency::Linearizable
            && let Err(e) = self.meta.read_barrier().await
        {
            // Cut off from the leader: answer from what this node knows (see read_through).
            tracing::warn!(error = %e, "no read index (cut off from the leader?); serving local state");
        }
        Ok(())
    }

    /// Reads a record after catching up with the leader (see [`ReadConsistency`]). Whatever the
    /// mode, an absent record is only reported after a read index, so a write acknowledged by
    /// another node is never reported missing. Returns `None` only after that catch-up.
    pub(crate) async fn read_through<T>(
        &self,
        read: impl Fn(&MetaStore) -> Result<Option<T>, meridian_raft::StoreError>,
    ) -> S3Result<Option<T>> {
        if self.consistency == ReadConsistency::Linearizable {
            if let Err(e) = self.meta.read_barrier().await {
                // Cut off from the leader (a minority partition, a lost quorum): what this node
                // knows is served rather than nothing, possibly missing writes made elsewhere
                // since; an unknown key cannot be confirmed absent, so that stays an error.
                if let Some(found) = read(&self.meta).map_err(error::store)? {
                    tracing::warn!(error = %e, "no read index (cut off from the leader?); serving local state");
                    return Ok(Some(found));
                }
                return Err(error::propose(e));
            }
            return read(&self.meta).map_err(error::store);
        }
        self.meta.read_confirmed(read).await.map_err(error::read)
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
        // read_through caught up with the leader before returning None: local state is enough.
        if self.meta.bucket(bucket).map_err(error::store)?.is_none() {
            return Err(s3_error!(NoSuchBucket));
        }
        Err(s3_error!(NoSuchKey))
    }
}
