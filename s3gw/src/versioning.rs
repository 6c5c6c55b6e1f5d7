//! S3 versioning: Put/GetBucketVersioning, and the version lookups GET, HEAD, DELETE, copy and
//! ListObjectVersions share (version ids, delete markers, their headers and errors).
//!
//! Versioning's commands and records are format 2: they are proposed only once the cluster
//! writes that format (every node runs this release); before that the operations that need them
//! answer 503 ServiceUnavailable.

use meridian_raft::model::{LatestVersion, NULL_VERSION, ObjectMeta, VersioningState, valid_version_id};
use meridian_raft::{Command, CommandOutcome, VersionTouched};
use s3s::dto::{
    BucketVersioningStatus, GetBucketVersioningInput, GetBucketVersioningOutput, PutBucketVersioningInput,
    PutBucketVersioningOutput,
};
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use crate::error;
use crate::gateway::Gateway;

/// The answer while the cluster still writes the previous release's format: versioning's
/// records must not reach a node of that release.
pub(crate) fn upgrading() -> S3Error {
    s3_error!(ServiceUnavailable, "the cluster is being upgraded; try again when every node runs this release")
}

/// Refuses a version id this store could not have handed out (before it reaches a table key).
pub(crate) fn check_version_id(id: &str) -> S3Result<()> {
    if valid_version_id(id) { Ok(()) } else { Err(s3_error!(InvalidArgument, "Invalid version id specified")) }
}

/// The `x-amz-version-id` (and, for a marker, `x-amz-delete-marker: true`) headers added to an
/// error answer: S3 names the delete marker a GET of a deleted key found.
fn with_marker_headers(mut error: S3Error, version_id: &str) -> S3Error {
    // s3s replaces the error answer's headers with these: keep the XML body's type.
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/xml"));
    headers.insert("x-amz-delete-marker", http::HeaderValue::from_static("true"));
    if let Ok(value) = http::HeaderValue::from_str(version_id) {
        headers.insert("x-amz-version-id", value);
    }
    error.set_headers(headers);
    error
}

/// The version a write or delete reported, if the bucket is versioned.
pub(crate) fn touched(outcome: &CommandOutcome) -> Option<&VersionTouched> {
    match outcome {
        CommandOutcome::Versions(versions) => versions.first(),
        _ => None,
    }
}

/// What a read of one object found: its bytes' metadata and the version id S3 reports (`None`
/// in a bucket never versioned, where S3 sends no version header).
pub(crate) struct FoundVersion {
    /// The version.
    pub(crate) meta: ObjectMeta,
    /// Its id, for `x-amz-version-id`.
    pub(crate) version_id: Option<String>,
}

impl Gateway {
    pub(crate) async fn put_bucket_versioning_op(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        let origin = self.origin_of(&req);
        let input = req.input;
        let config = input.versioning_configuration;
        if config.mfa_delete.as_ref().is_some_and(|m| m.as_str() == "Enabled") {
            return Err(s3_error!(NotImplemented, "MFA delete is not supported"));
        }
        let state = match config.status.as_ref().map(BucketVersioningStatus::as_str) {
            Some("Enabled") => VersioningState::Enabled,
            Some("Suspended") => VersioningState::Suspended,
            _ => return Err(s3_error!(MalformedXML, "the versioning status must be Enabled or Suspended")),
        };
        self.bucket_for_write(&input.bucket).await?;
        if !self.meta.versioning_available() {
            return Err(upgrading());
        }
        let command = Command::PutBucketVersioning { bucket: input.bucket.clone(), state };
        match self.commit_as(origin, command).await {
            Err(e) if *e.code() == S3ErrorCode::InvalidBucketState => {
                return Err(s3_error!(
                    InvalidBucketState,
                    "An Object Lock configuration is present on this bucket, so the versioning state cannot be changed."
                ));
            }
            result => result?,
        };
        tracing::info!(bucket = %input.bucket, ?state, "bucket versioning set");
        Ok(S3Response::new(PutBucketVersioningOutput {}))
    }

    pub(crate) async fn get_bucket_versioning_op(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        let bucket = req.input.bucket;
        self.bucket(&bucket).await?;
        let status = match self.meta.versioning(&bucket).map_err(error::store)? {
            None => None,
            Some(VersioningState::Enabled) => {
                Some(BucketVersioningStatus::from_static(BucketVersioningStatus::ENABLED))
            }
            Some(VersioningState::Suspended) => {
                Some(BucketVersioningStatus::from_static(BucketVersioningStatus::SUSPENDED))
            }
        };
        Ok(S3Response::new(GetBucketVersioningOutput { status, mfa_delete: None }))
    }

    /// The version a GET, HEAD or copy source names: `version_id`, or the latest. A latest that
    /// is a delete marker is NoSuchKey with the marker's headers; a named delete marker is
    /// MethodNotAllowed (405) with them; an unknown id is NoSuchVersion.
    pub(crate) async fn version_for_read(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> S3Result<FoundVersion> {
        let Some(id) = version_id else { return self.latest_for_read(bucket, key).await };
        check_version_id(id)?;
        let found = self.read_through(|m| m.object_version(bucket, key, id)).await?;
        let Some(version) = found else {
            if self.meta.bucket(bucket).map_err(error::store)?.is_none() {
                return Err(s3_error!(NoSuchBucket));
            }
            return Err(s3_error!(NoSuchVersion, "The specified version does not exist."));
        };
        match version.meta {
            Some(meta) => Ok(FoundVersion { meta, version_id: Some(version.id) }),
            None => {
                let mut error = S3Error::with_message(
                    S3ErrorCode::MethodNotAllowed,
                    "The specified method is not allowed against this resource.",
                );
                error.set_status_code(http::StatusCode::METHOD_NOT_ALLOWED);
                Err(with_marker_headers(error, &version.id))
            }
        }
    }

    /// The version a copy (CopyObject, UploadPartCopy) reads: as [`Self::version_for_read`],
    /// except that naming a delete marker is InvalidRequest (400), as S3 answers.
    pub(crate) async fn copy_source_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> S3Result<FoundVersion> {
        match self.version_for_read(bucket, key, version_id).await {
            Err(e) if *e.code() == S3ErrorCode::MethodNotAllowed => Err(s3_error!(
                InvalidRequest,
                "The source of a copy request may not specifically refer to a delete marker by version id."
            )),
            other => other,
        }
    }

    /// The latest version of a key, with its id when the bucket is versioned.
    async fn latest_for_read(&self, bucket: &str, key: &str) -> S3Result<FoundVersion> {
        let found = self
            .read_through(|m| m.current_version(bucket, key).map(|(latest, object)| object.map(|o| (latest, o))))
            .await;
        match found {
            Ok(Some((latest, meta))) => {
                let version_id = self.reported_version_id(bucket, latest)?;
                Ok(FoundVersion { meta, version_id })
            }
            Ok(None) => {
                if self.meta.bucket(bucket).map_err(error::store)?.is_none() {
                    return Err(s3_error!(NoSuchBucket));
                }
                // read_through caught up with the leader: local state says whether a delete
                // marker hides the key.
                match self.meta.latest_version(bucket, key).map_err(error::store)? {
                    Some(marker) => Err(with_marker_headers(s3_error!(NoSuchKey), &marker.id)),
                    None => Err(s3_error!(NoSuchKey)),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// The id S3 reports for the current object: none in a bucket never versioned, else the
    /// latest version's id (`null` for an object written before versioning).
    fn reported_version_id(&self, bucket: &str, latest: Option<LatestVersion>) -> S3Result<Option<String>> {
        if let Some(latest) = latest {
            return Ok(Some(latest.id));
        }
        let versioned = self.meta.versioning(bucket).map_err(error::store)?.is_some();
        Ok(versioned.then(|| NULL_VERSION.to_owned()))
    }
}
