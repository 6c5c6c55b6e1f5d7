//! Object tagging and GetObjectAttributes.

use meridian_raft::Command;
use s3s::dto::{
    DeleteObjectTaggingInput, DeleteObjectTaggingOutput, ETag, GetObjectAttributesInput, GetObjectAttributesOutput,
    GetObjectAttributesParts, GetObjectTaggingInput, GetObjectTaggingOutput, ObjectPart, PutObjectTaggingInput,
    PutObjectTaggingOutput, StorageClass, Tag,
};
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::convert::{check_tags, checksum_dto, timestamp};
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
