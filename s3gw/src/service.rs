//! The S3 trait, operation by operation, mapped onto the gateway's modules.
//! Operations not listed here answer NotImplemented (s3s's default).

use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result};

use crate::gateway::Gateway;

#[async_trait::async_trait]
impl S3 for Gateway {
    #[tracing::instrument(level = "debug", skip_all, fields(op = "AbortMultipartUpload"))]
    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.abort_multipart_upload_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "CompleteMultipartUpload"))]
    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        self.refuse_when_disk_low()?;
        self.complete_multipart_upload_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "CopyObject"))]
    async fn copy_object(&self, req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
        self.refuse_when_disk_low()?;
        self.copy_object_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "CreateBucket"))]
    async fn create_bucket(&self, req: S3Request<CreateBucketInput>) -> S3Result<S3Response<CreateBucketOutput>> {
        self.create_bucket_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "CreateMultipartUpload"))]
    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        self.refuse_when_disk_low()?;
        self.create_multipart_upload_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "DeleteBucketCors"))]
    async fn delete_bucket_cors(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        self.delete_bucket_cors_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "GetBucketCors"))]
    async fn get_bucket_cors(&self, req: S3Request<GetBucketCorsInput>) -> S3Result<S3Response<GetBucketCorsOutput>> {
        self.get_bucket_cors_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "PutBucketCors"))]
    async fn put_bucket_cors(&self, req: S3Request<PutBucketCorsInput>) -> S3Result<S3Response<PutBucketCorsOutput>> {
        self.put_bucket_cors_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "DeleteBucket"))]
    async fn delete_bucket(&self, req: S3Request<DeleteBucketInput>) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.delete_bucket_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "DeleteObject"))]
    async fn delete_object(&self, req: S3Request<DeleteObjectInput>) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.delete_object_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "DeleteObjectTagging"))]
    async fn delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        self.delete_object_tagging_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "DeleteObjects"))]
    async fn delete_objects(&self, req: S3Request<DeleteObjectsInput>) -> S3Result<S3Response<DeleteObjectsOutput>> {
        self.delete_objects_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "GetBucketLocation"))]
    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.get_bucket_location_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "GetBucketVersioning"))]
    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        self.get_bucket_versioning_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "PutObjectLockConfiguration"))]
    async fn put_object_lock_configuration(
        &self,
        req: S3Request<PutObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
        self.put_object_lock_configuration_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "GetObjectLockConfiguration"))]
    async fn get_object_lock_configuration(
        &self,
        req: S3Request<GetObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
        self.get_object_lock_configuration_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "PutObjectRetention"))]
    async fn put_object_retention(
        &self,
        req: S3Request<PutObjectRetentionInput>,
    ) -> S3Result<S3Response<PutObjectRetentionOutput>> {
        self.put_object_retention_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "GetObjectRetention"))]
    async fn get_object_retention(
        &self,
        req: S3Request<GetObjectRetentionInput>,
    ) -> S3Result<S3Response<GetObjectRetentionOutput>> {
        self.get_object_retention_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "PutObjectLegalHold"))]
    async fn put_object_legal_hold(
        &self,
        req: S3Request<PutObjectLegalHoldInput>,
    ) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
        self.put_object_legal_hold_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "GetObjectLegalHold"))]
    async fn get_object_legal_hold(
        &self,
        req: S3Request<GetObjectLegalHoldInput>,
    ) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
        self.get_object_legal_hold_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "PutBucketVersioning"))]
    async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        self.put_bucket_versioning_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "GetObject"))]
    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        self.get_object_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "GetObjectAttributes"))]
    async fn get_object_attributes(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        self.get_object_attributes_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "GetObjectTagging"))]
    async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        self.get_object_tagging_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "HeadBucket"))]
    async fn head_bucket(&self, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
        self.head_bucket_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "HeadObject"))]
    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        self.head_object_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "ListBuckets"))]
    async fn list_buckets(&self, req: S3Request<ListBucketsInput>) -> S3Result<S3Response<ListBucketsOutput>> {
        self.list_buckets_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "ListMultipartUploads"))]
    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        self.list_multipart_uploads_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "ListObjectVersions"))]
    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        self.list_object_versions_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "ListObjects"))]
    async fn list_objects(&self, req: S3Request<ListObjectsInput>) -> S3Result<S3Response<ListObjectsOutput>> {
        self.list_objects_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "ListObjectsV2"))]
    async fn list_objects_v2(&self, req: S3Request<ListObjectsV2Input>) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.list_objects_v2_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "ListParts"))]
    async fn list_parts(&self, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
        self.list_parts_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "PutObject"))]
    async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        self.refuse_when_disk_low()?;
        self.put_object_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "PutObjectTagging"))]
    async fn put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        self.put_object_tagging_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "UploadPart"))]
    async fn upload_part(&self, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
        self.refuse_when_disk_low()?;
        self.upload_part_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "UploadPartCopy"))]
    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        self.refuse_when_disk_low()?;
        self.upload_part_copy_op(req).await
    }
}
