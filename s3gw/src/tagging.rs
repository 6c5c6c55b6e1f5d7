//! Object tagging.

use meridian_raft::Command;
use s3s::dto::{
    DeleteObjectTaggingInput, DeleteObjectTaggingOutput, GetObjectTaggingInput, GetObjectTaggingOutput,
    PutObjectTaggingInput, PutObjectTaggingOutput, Tag,
};
use s3s::{S3Request, S3Response, S3Result};

use crate::convert::check_tags;
use crate::gateway::Gateway;

impl Gateway {
    pub(crate) async fn put_object_tagging_op(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        let input = req.input;
        let tags: Vec<(String, String)> = input
            .tagging
            .tag_set
            .into_iter()
            .map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default()))
            .collect();
        check_tags(&tags)?;
        crate::versioning::refuse_version_id(input.version_id.as_deref())?;
        self.object(&input.bucket, &input.key).await?;
        self.commit(Command::SetTags { bucket: input.bucket, key: input.key, tags }).await?;
        Ok(S3Response::new(PutObjectTaggingOutput::default()))
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
        let input = req.input;
        crate::versioning::refuse_version_id(input.version_id.as_deref())?;
        self.object(&input.bucket, &input.key).await?;
        self.commit(Command::SetTags { bucket: input.bucket, key: input.key, tags: Vec::new() }).await?;
        Ok(S3Response::new(DeleteObjectTaggingOutput::default()))
    }
}
