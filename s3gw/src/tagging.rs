//! Object tagging and GetObjectAttributes.

use meridian_raft::Command;
use s3s::dto::{
    DeleteObjectTaggingInput, DeleteObjectTaggingOutput, ETag, GetObjectAttributesInput, GetObjectAttributesOutput,
    GetObjectAttributesParts, GetObjectTaggingInput, GetObjectTaggingOutput, ObjectPart, PutObjectTaggingInput,
    PutObjectTaggingOutput, StorageClass, Tag,
};
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::convert::{check_tags, checksum_dto, timestamp};
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

    pub(crate) async fn get_object_attributes_op(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        let input = req.input;
        let found = self.version_for_read(&input.bucket, &input.key, input.version_id.as_deref()).await?;
        let object = found.meta;
        let wants = |name: &str| input.object_attributes.iter().any(|a| a.as_str().eq_ignore_ascii_case(name));
        if input.object_attributes.is_empty() {
            return Err(s3_error!(InvalidArgument, "x-amz-object-attributes must name at least one attribute"));
        }
        let parts = (wants("ObjectParts") && !object.parts.is_empty()).then(|| {
            let marker = input.part_number_marker.unwrap_or(0);
            let max_parts = input.max_parts.unwrap_or(1000).clamp(0, 1000);
            let after: Vec<_> = object.parts.iter().filter(|p| p.number > marker).collect();
            let limit = usize::try_from(max_parts).unwrap_or(0);
            let truncated = after.len() > limit;
            let shown: Vec<ObjectPart> = after
                .iter()
                .take(limit)
                .map(|p| ObjectPart {
                    part_number: Some(p.number),
                    size: i64::try_from(p.size).ok(),
                    ..Default::default()
                })
                .collect();
            GetObjectAttributesParts {
                total_parts_count: i32::try_from(object.parts.len()).ok(),
                part_number_marker: input.part_number_marker,
                next_part_number_marker: shown.last().filter(|_| truncated).and_then(|p| p.part_number),
                max_parts: Some(max_parts),
                is_truncated: Some(truncated),
                parts: Some(shown),
            }
        });
        let kind = crate::composite::checksum_type(&object.checksums);
        let has_checksum = kind.is_some();
        let checksum = s3s::dto::Checksum { checksum_type: kind, ..checksum_dto(&object.checksums) };
        Ok(S3Response::new(GetObjectAttributesOutput {
            e_tag: wants("ETag").then(|| ETag::Strong(object.etag.clone())),
            object_size: wants("ObjectSize").then(|| i64::try_from(object.size).ok()).flatten(),
            storage_class: wants("StorageClass").then(|| StorageClass::from_static(StorageClass::STANDARD)),
            checksum: (wants("Checksum") && has_checksum).then_some(checksum),
            object_parts: parts,
            last_modified: Some(timestamp(object.last_modified)),
            version_id: found.version_id,
            ..Default::default()
        }))
    }
}
