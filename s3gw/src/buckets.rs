//! Bucket operations.

use meridian_raft::Command;
use meridian_raft::model::Bucket;
use s3s::dto::{
    BucketLocationConstraint, CreateBucketInput, CreateBucketOutput, DeleteBucketInput, DeleteBucketOutput,
    GetBucketLocationInput, GetBucketLocationOutput, HeadBucketInput, HeadBucketOutput, ListBucketsInput,
    ListBucketsOutput,
};
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::convert::timestamp;
use crate::error;
use crate::gateway::{Gateway, now_millis};

impl Gateway {
    pub(crate) async fn create_bucket_op(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let origin = self.origin_of(&req);
        let name = req.input.bucket;
        if !s3s::path::check_bucket_name(&name) {
            return Err(s3_error!(InvalidBucketName));
        }
        let bucket = Bucket { name: name.clone(), created: now_millis(), region: self.region.clone() };
        self.commit_as(origin, Command::CreateBucket(bucket)).await?;
        tracing::info!(bucket = %name, "bucket created");
        Ok(S3Response::new(CreateBucketOutput { location: Some(format!("/{name}")) }))
    }

    pub(crate) async fn delete_bucket_op(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let origin = self.origin_of(&req);
        let name = req.input.bucket;
        // Make sure we see every object written anywhere before judging emptiness here; the
        // state machine checks again when the command applies.
        self.meta.read_barrier().await.map_err(error::propose)?;
        self.commit_as(origin, Command::DeleteBucket { name: name.clone() }).await?;
        tracing::info!(bucket = %name, "bucket deleted");
        Ok(S3Response::new(DeleteBucketOutput {}))
    }

    pub(crate) async fn head_bucket_op(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        let bucket = self.bucket(&req.input.bucket).await?;
        Ok(S3Response::new(HeadBucketOutput { bucket_region: Some(bucket.region), ..Default::default() }))
    }

    pub(crate) async fn list_buckets_op(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        self.sync_for_read().await?;
        let mut buckets = self.meta.buckets().map_err(error::store)?;
        // A user's key lists the user's buckets only.
        if let Some(person) = req.extensions.get::<crate::access::KeyScope>().and_then(crate::access::KeyScope::person)
        {
            let mut owned = Vec::with_capacity(buckets.len());
            for bucket in buckets {
                if self.meta.person_owns(person, &bucket.name, None).map_err(error::store)? {
                    owned.push(bucket);
                }
            }
            buckets = owned;
        }
        let buckets = buckets
            .into_iter()
            .map(|b| s3s::dto::Bucket {
                name: Some(b.name),
                creation_date: Some(timestamp(b.created)),
                bucket_region: Some(b.region),
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(s3s::dto::Owner { display_name: Some("meridian".into()), id: Some("meridian".into()) }),
            ..Default::default()
        }))
    }

    pub(crate) async fn get_bucket_location_op(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        let bucket = self.bucket(&req.input.bucket).await?;
        Ok(S3Response::new(GetBucketLocationOutput {
            location_constraint: Some(BucketLocationConstraint::from(bucket.region)),
        }))
    }
}
