//! [`Gateway`]: the state every S3 operation shares, and the steps they have in common.

use std::sync::Arc;

use meridian_raft::model::{Bucket, ObjectMeta, UnixMillis};
use meridian_raft::{ACTOR_QUERY_PARAM, Actor, Command, CommandOutcome, MetaStore};
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
    /// The access key id whose requests may name another actor ([`ACTOR_QUERY_PARAM`]): the
    /// system key the web API presigns with on behalf of users and services. `None`: no key may.
    pub(crate) delegating_key: Option<String>,
    /// How pulls split and resume, their counters, and the blobs viewers wait for.
    pub(crate) pulls: Arc<crate::pulls::Pulls>,
}

/// The address of the client of an S3 request, as the listener saw it. The node puts it in each
/// request's extensions (s3s hands them to the operations), so the history can say where a
/// write came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub std::net::IpAddr);

/// Marks a PUT whose body came without a length (`Transfer-Encoding: chunked`, no
/// `Content-Length`): the listener sets `Content-Length` to [`crate::MAX_UNSIZED_BODY`] so
/// s3s, which refuses a body of unknown length (411), lets it through after authenticating
/// it, and puts this in the request's extensions (clients cannot set extensions). The gateway
/// then takes the body's real length instead of that header, up to the same bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnsizedBody;

/// Who made an S3 request and from where: what the history records for what it changes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Origin {
    /// The access key that signed it, or the user or service a system-key URL was signed for.
    pub(crate) actor: Option<Actor>,
    /// The client's address.
    pub(crate) client: Option<String>,
}

/// How reads see writes acknowledged by other nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadConsistency {
    /// Every read first learns the leader's commit index (read index, or a read lease) and waits
    /// until this node has applied it: a read never misses a write, overwrite or delete
    /// acknowledged anywhere before it started. A node that cannot reach the leader (a minority
    /// partition, a lost quorum) refuses the read with ServiceUnavailable after the commit
    /// timeout rather than answer from state that may be stale.
    Linearizable,
    /// [`Self::Linearizable`] while the node reaches the leader; cut off from it, the node
    /// serves the keys it knows as it knows them (possibly missing overwrites and deletes made
    /// elsewhere since) instead of refusing: availability over linearizability during a
    /// partition, for regions whose viewers should keep watching films through a cut link.
    /// An unknown key still cannot be confirmed absent, so it stays ServiceUnavailable.
    Available,
    /// Reads of keys this node knows are answered from its own state, with no round trip; an
    /// overwrite or delete made through another node shows up once this node applies it
    /// (typically milliseconds). Unknown keys still go through the read index, so a new
    /// object is visible everywhere as soon as its PUT returned.
    Local,
}

/// The record format that brought the commands of this release's S3 edge cases
/// (DeleteBucket aborting uploads, conditional CompleteMultipartUpload, bucket CORS).
pub(crate) const EDGE_FORMAT: u16 = 2;

impl Gateway {
    /// Refuses (503, see [`error::upgrade_in_progress`]) a command new in [`EDGE_FORMAT`] while
    /// a node of the previous release may still receive it.
    pub(crate) fn require_edge_format(&self) -> S3Result<()> {
        if self.meta.cluster_format_at_least(EDGE_FORMAT) {
            return Ok(());
        }
        Err(error::upgrade_in_progress())
    }

    /// Refuses a write that would store bytes or an upload while this node's data dir is nearly
    /// full (its space reserve released for the Raft log): InsufficientStorage, before anything
    /// is stored or proposed. Reads and deletes are not refused; they free space or need none.
    pub(crate) fn refuse_when_disk_low(&self) -> s3s::S3Result<()> {
        if self.meta.disk_low() {
            return Err(crate::error::insufficient_storage());
        }
        Ok(())
    }
}

/// Now, in the metadata store's time unit.
pub(crate) fn now_millis() -> UnixMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The value of the [`ACTOR_QUERY_PARAM`] of a request's query string, percent-decoded.
pub(crate) fn named_actor(query: Option<&str>) -> Option<String> {
    let value = query?.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        name.eq_ignore_ascii_case(ACTOR_QUERY_PARAM).then_some(value)
    })?;
    Some(percent_encoding::percent_decode_str(value).decode_utf8_lossy().into_owned())
}

impl Gateway {
    /// A gateway over the given stores.
    pub fn new(meta: MetaStore, blobs: Arc<DiskBlobs>, region: String, consistency: ReadConsistency) -> Self {
        Self { meta, blobs, region, consistency, delegating_key: None, pulls: Arc::default() }
    }

    /// Pulls blobs with these settings (call before the gateway is cloned for the workers).
    #[must_use]
    pub fn with_pull_settings(mut self, settings: crate::pulls::PullSettings) -> Self {
        self.pulls = Arc::new(crate::pulls::Pulls { settings, ..Default::default() });
        self
    }

    /// The pull settings, counters and wanted blobs (for the replicator and `/metrics`).
    pub fn pulls(&self) -> &Arc<crate::pulls::Pulls> {
        &self.pulls
    }

    /// Lets requests signed with `access_key_id` (the system key) name the actor they act for.
    #[must_use]
    pub fn with_delegating_key(mut self, access_key_id: String) -> Self {
        self.delegating_key = Some(access_key_id);
        self
    }

    /// Who made `req` and from where. The actor is the signing access key, except for a
    /// request signed with the delegating key that names a user or service
    /// ([`ACTOR_QUERY_PARAM`]): the signature covers the query, so only the web API, which holds
    /// that key, can have written the name.
    pub(crate) fn origin_of<T>(&self, req: &s3s::S3Request<T>) -> Origin {
        let client = req.extensions.get::<ClientAddr>().map(|addr| addr.0.to_string());
        let Some(credentials) = req.credentials.as_ref() else { return Origin { actor: None, client } };
        // A user's key acts as its user: what it creates is theirs, and the history says who.
        if let Some(crate::access::KeyScope::Person { id, .. }) = req.extensions.get::<crate::access::KeyScope>() {
            return Origin { actor: Some(Actor::User(id.clone())), client };
        }
        let signer = Actor::AccessKey(credentials.access_key.clone());
        let Some(named) = named_actor(req.uri.query()) else { return Origin { actor: Some(signer), client } };
        if self.delegating_key.as_deref() != Some(credentials.access_key.as_str()) {
            tracing::debug!(key = %credentials.access_key, named = %named, "actor named by a key that may not; ignored");
            return Origin { actor: Some(signer), client };
        }
        let actor = match named.parse::<Actor>() {
            Ok(actor @ (Actor::User(_) | Actor::Service(_))) => actor,
            _ => {
                tracing::warn!(named = %named, "system-key request names no user or service; recorded as the key");
                signer
            }
        };
        Origin { actor: Some(actor), client }
    }

    /// The metadata store (for the node's background workers).
    pub fn meta(&self) -> &MetaStore {
        &self.meta
    }

    /// The blob store (for the node's background workers).
    pub fn blobs(&self) -> &Arc<DiskBlobs> {
        &self.blobs
    }

    /// Proposes a command on behalf of `origin` (see [`Command::AttributedFrom`]), now.
    pub(crate) async fn commit_as(&self, origin: Origin, command: Command) -> S3Result<CommandOutcome> {
        self.commit(command.attributed_from(origin.actor, now_millis(), origin.client)).await
    }

    /// Proposes a command and turns a refusal into its S3 error.
    pub(crate) async fn commit(&self, command: Command) -> S3Result<CommandOutcome> {
        match self.meta.propose(command).await.map_err(error::propose)? {
            CommandOutcome::Rejected(rejection) => Err(error::rejected(rejection)),
            outcome => Ok(outcome),
        }
    }

    /// Catches up with everything committed before now (read index), when reads are
    /// linearizable; cut off from the leader, refuses (or, [`ReadConsistency::Available`], goes
    /// on with what this node knows).
    pub(crate) async fn sync_for_read(&self) -> S3Result<()> {
        if self.consistency == ReadConsistency::Local {
            return Ok(());
        }
        if let Err(e) = self.meta.read_barrier().await {
            if self.consistency == ReadConsistency::Linearizable {
                return Err(error::propose(e));
            }
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
        match self.consistency {
            ReadConsistency::Linearizable => {
                self.meta.read_barrier().await.map_err(error::propose)?;
                read(&self.meta).map_err(error::store)
            }
            ReadConsistency::Available => {
                if let Err(e) = self.meta.read_barrier().await {
                    // Cut off from the leader: what this node knows is served rather than
                    // nothing, possibly missing writes made elsewhere since; an unknown key
                    // cannot be confirmed absent, so that stays an error.
                    if let Some(found) = read(&self.meta).map_err(error::store)? {
                        tracing::warn!(error = %e, "no read index (cut off from the leader?); serving local state");
                        return Ok(Some(found));
                    }
                    return Err(error::propose(e));
                }
                read(&self.meta).map_err(error::store)
            }
            ReadConsistency::Local => self.meta.read_confirmed(read).await.map_err(error::read),
        }
    }

    /// The bucket, or NoSuchBucket.
    pub(crate) async fn bucket(&self, name: &str) -> S3Result<Bucket> {
        self.read_through(|m| m.bucket(name)).await?.ok_or_else(|| s3_error!(NoSuchBucket))
    }

    /// The bucket a write goes to, or NoSuchBucket. A bucket this node knows needs no read
    /// index first: the write's own commit is refused if the bucket was deleted meanwhile (the
    /// state machine checks), and a node cut off from the leader then refuses the write once,
    /// at the commit timeout, instead of first waiting as long again for a read index (#19).
    pub(crate) async fn bucket_for_write(&self, name: &str) -> S3Result<()> {
        if self.meta.bucket(name).map_err(error::store)?.is_some() {
            return Ok(());
        }
        self.bucket(name).await.map(drop)
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

#[cfg(test)]
mod tests {
    use super::named_actor;

    #[test]
    fn the_named_actor_is_read_from_the_query() {
        assert_eq!(
            named_actor(Some("X-Amz-Date=1&x-meridian-actor=user%3Au-7&uploadId=u")).as_deref(),
            Some("user:u-7")
        );
        assert_eq!(named_actor(Some("X-Meridian-Actor=service:tix")).as_deref(), Some("service:tix"));
        assert_eq!(named_actor(Some("uploads&partNumber=1")), None);
        assert_eq!(named_actor(None), None);
    }
}
