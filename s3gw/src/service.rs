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

    #[tracing::instrument(level = "debug", skip_all, fields(op = "GetBucketAcl"))]
    async fn get_bucket_acl(&self, req: S3Request<GetBucketAclInput>) -> S3Result<S3Response<GetBucketAclOutput>> {
        self.get_bucket_acl_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "PutBucketAcl"))]
    async fn put_bucket_acl(&self, req: S3Request<PutBucketAclInput>) -> S3Result<S3Response<PutBucketAclOutput>> {
        self.put_bucket_acl_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "GetObjectAcl"))]
    async fn get_object_acl(&self, req: S3Request<GetObjectAclInput>) -> S3Result<S3Response<GetObjectAclOutput>> {
        self.get_object_acl_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "PutObjectAcl"))]
    async fn put_object_acl(&self, req: S3Request<PutObjectAclInput>) -> S3Result<S3Response<PutObjectAclOutput>> {
        self.put_object_acl_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "GetBucketOwnershipControls"))]
    async fn get_bucket_ownership_controls(
        &self,
        req: S3Request<GetBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<GetBucketOwnershipControlsOutput>> {
        self.get_bucket_ownership_controls_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "PutBucketOwnershipControls"))]
    async fn put_bucket_ownership_controls(
        &self,
        req: S3Request<PutBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<PutBucketOwnershipControlsOutput>> {
        self.put_bucket_ownership_controls_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "DeleteBucketOwnershipControls"))]
    async fn delete_bucket_ownership_controls(
        &self,
        req: S3Request<DeleteBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<DeleteBucketOwnershipControlsOutput>> {
        self.delete_bucket_ownership_controls_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "GetPublicAccessBlock"))]
    async fn get_public_access_block(
        &self,
        req: S3Request<GetPublicAccessBlockInput>,
    ) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
        self.get_public_access_block_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "PutPublicAccessBlock"))]
    async fn put_public_access_block(
        &self,
        req: S3Request<PutPublicAccessBlockInput>,
    ) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
        self.put_public_access_block_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "DeletePublicAccessBlock"))]
    async fn delete_public_access_block(
        &self,
        req: S3Request<DeletePublicAccessBlockInput>,
    ) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
        self.delete_public_access_block_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "GetBucketPolicy"))]
    async fn get_bucket_policy(
        &self,
        req: S3Request<GetBucketPolicyInput>,
    ) -> S3Result<S3Response<GetBucketPolicyOutput>> {
        self.get_bucket_policy_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "PutBucketPolicy"))]
    async fn put_bucket_policy(
        &self,
        req: S3Request<PutBucketPolicyInput>,
    ) -> S3Result<S3Response<PutBucketPolicyOutput>> {
        self.put_bucket_policy_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "DeleteBucketPolicy"))]
    async fn delete_bucket_policy(
        &self,
        req: S3Request<DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
        self.delete_bucket_policy_op(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(op = "GetBucketPolicyStatus"))]
    async fn get_bucket_policy_status(
        &self,
        req: S3Request<GetBucketPolicyStatusInput>,
    ) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
        self.get_bucket_policy_status_op(req).await
    }
}
