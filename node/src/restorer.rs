//! The admin panel's version restore, carried out by this node's S3 gateway: the gateway holds
//! the blobs and writes versions, the panel only decides who may ask.

use meridian_admin::{RestoreFailure, RestoreFuture, VersionRestorer};
use meridian_raft::Actor;
use meridian_s3gw::{Gateway, RestoreError};

/// The gateway, as the panel's [`VersionRestorer`].
pub(crate) struct GatewayRestorer(pub(crate) Gateway);

impl VersionRestorer for GatewayRestorer {
    fn restore<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        version_id: &'a str,
        actor: Actor,
        client: String,
    ) -> RestoreFuture<'a> {
        Box::pin(async move {
            self.0.restore_version(bucket, key, version_id, actor, Some(client)).await.map_err(|e| match e {
                RestoreError::NoSuchVersion { .. } => RestoreFailure::NotFound,
                RestoreError::DeleteMarker(_) => RestoreFailure::DeleteMarker,
                RestoreError::NotHeldHere => RestoreFailure::Unavailable(e.to_string()),
                RestoreError::Refused(message) => RestoreFailure::Refused(message),
            })
        })
    }
}
