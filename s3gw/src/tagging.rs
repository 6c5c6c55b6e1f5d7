//! Object tagging.

use meridian_raft::Command;
use s3s::dto::{
    DeleteObjectTaggingInput, DeleteObjectTaggingOutput, GetObjectTaggingInput, GetObjectTaggingOutput,
    PutObjectTaggingInput, PutObjectTaggingOutput, Tag,
};
use s3s::{S3Request, S3Response, S3Result};

use crate::convert::check_tags;
use crate::error;
use crate::gateway::{Gateway, Origin};
use crate::versioning::upgrading;

impl Gateway {
    pub(crate) async fn put_object_tagging_op(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        let origin = self.origin_of(&req);
        let input = req.input;
        let tags: Vec<(String, String)> = input
            .tagging
            .tag_set
            .into_iter()
            .map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default()))
            .collect();
        check_tags(&tags)?;
        if let Some(version_id) = input.version_id {
            let version_id = self.set_version_tags(origin, input.bucket, input.key, version_id, tags).await?;
            return Ok(S3Response::new(PutObjectTaggingOutput { version_id: Some(version_id) }));
        }
        self.object(&input.bucket, &input.key).await?;
        self.commit(Command::SetTags { bucket: input.bucket, key: input.key, tags }).await?;
        Ok(S3Response::new(PutObjectTaggingOutput::default()))
    }

    /// The tags of one version replaced (PutObjectTagging, DeleteObjectTagging with
    /// `versionId`): a stored version's change leaves the current one's alone. Errors as GET
    /// `?versionId=` (NoSuchVersion; a delete marker 405 with its headers). Returns the version
    /// id to answer with.
    async fn set_version_tags(
        &self,
        origin: Origin,
        bucket: String,
        key: String,
        version_id: String,
        tags: Vec<(String, String)>,
    ) -> S3Result<String> {
        let found = self.version_for_read(&bucket, &key, Some(&version_id)).await?;
        let version_id = found.version_id.unwrap_or(version_id);
        let count = tags.len();
        if self.meta.versioning(&bucket).map_err(error::store)?.is_none() {
            // A bucket never versioned: `null` is its current object, which the previous
            // release's command tags (during an upgrade too).
            self.commit_as(origin, Command::SetTags { bucket, key, tags }).await?;
            return Ok(version_id);
        }
        if !self.meta.versioning_available() {
            return Err(upgrading());
        }
        let command =
            Command::SetVersionTags { bucket: bucket.clone(), key: key.clone(), version_id: version_id.clone(), tags };
        self.commit_as(origin, command).await?;
        tracing::info!(%bucket, %key, version = %version_id, tags = count, "version tags set");
        Ok(version_id)
    }

    pub(crate) async fn get_object_tagging_op(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        let input = req.input;
        let found = self.version_for_read(&input.bucket, &input.key, input.version_id.as_deref()).await?;
        let tag_set = found.meta.tags.into_iter().map(|(k, v)| Tag { key: Some(k), value: Some(v) }).collect();
        Ok(S3Response::new(GetObjectTaggingOutput { tag_set, version_id: found.version_id }))
    }

    pub(crate) async fn delete_object_tagging_op(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        let origin = self.origin_of(&req);
        let input = req.input;
        if let Some(version_id) = input.version_id {
            let version_id = self.set_version_tags(origin, input.bucket, input.key, version_id, Vec::new()).await?;
            return Ok(S3Response::new(DeleteObjectTaggingOutput { version_id: Some(version_id) }));
        }
        self.object(&input.bucket, &input.key).await?;
        self.commit(Command::SetTags { bucket: input.bucket, key: input.key, tags: Vec::new() }).await?;
        Ok(S3Response::new(DeleteObjectTaggingOutput::default()))
    }
}
