//! HTTP conditional requests (If-Match, If-None-Match, If-Modified-Since,
//! If-Unmodified-Since) against an object's current version, as RFC 9110 orders them.

use meridian_raft::model::ObjectMeta;
use s3s::dto::{ETagCondition, Timestamp};
use s3s::{S3Result, s3_error};

use crate::convert::millis;

/// The conditions of one request.
#[derive(Default)]
pub(crate) struct Preconditions<'a> {
    pub(crate) if_match: Option<&'a ETagCondition>,
    pub(crate) if_none_match: Option<&'a ETagCondition>,
    pub(crate) if_modified_since: Option<&'a Timestamp>,
    pub(crate) if_unmodified_since: Option<&'a Timestamp>,
}

/// The conditions of a GET or HEAD input (same field names, no common trait).
macro_rules! read_preconditions {
    ($input:expr) => {
        $crate::conditions::Preconditions {
            if_match: $input.if_match.as_ref(),
            if_none_match: $input.if_none_match.as_ref(),
            if_modified_since: $input.if_modified_since.as_ref(),
            if_unmodified_since: $input.if_unmodified_since.as_ref(),
        }
    };
}
pub(crate) use read_preconditions;

/// The `x-amz-copy-source-if-*` conditions of a CopyObject or UploadPartCopy input.
macro_rules! copy_source_preconditions {
    ($input:expr) => {
        $crate::conditions::Preconditions {
            if_match: $input.copy_source_if_match.as_ref(),
            if_none_match: $input.copy_source_if_none_match.as_ref(),
            if_modified_since: $input.copy_source_if_modified_since.as_ref(),
            if_unmodified_since: $input.copy_source_if_unmodified_since.as_ref(),
        }
    };
}
pub(crate) use copy_source_preconditions;

fn matches(condition: &ETagCondition, etag: &str) -> bool {
    match condition {
        ETagCondition::Any => true,
        ETagCondition::ETag(expected) => expected.value() == etag,
    }
}

/// HTTP dates have second precision: compare whole seconds.
fn seconds(millis: i64) -> i64 {
    millis.div_euclid(1000)
}

impl Preconditions<'_> {
    /// Checks the conditions for a read: 412 PreconditionFailed or 304 NotModified when
    /// they fail. `If-Match` overrides `If-Unmodified-Since`; `If-None-Match` overrides
    /// `If-Modified-Since`.
    pub(crate) fn check_read(&self, object: &ObjectMeta) -> S3Result<()> {
        let modified = seconds(object.last_modified);
        if let Some(condition) = self.if_match {
            if !matches(condition, &object.etag) {
                return Err(s3_error!(PreconditionFailed, "If-Match did not match the current ETag"));
            }
        } else if let Some(since) = self.if_unmodified_since
            && modified > seconds(millis(since))
        {
            return Err(s3_error!(PreconditionFailed, "the object was modified after If-Unmodified-Since"));
        }
        if let Some(condition) = self.if_none_match {
            if matches(condition, &object.etag) {
                return Err(s3_error!(NotModified));
            }
        } else if let Some(since) = self.if_modified_since
            && modified <= seconds(millis(since))
        {
            return Err(s3_error!(NotModified));
        }
        Ok(())
    }

    /// The same checks for a copy source, where every failure is 412.
    pub(crate) fn check_copy_source(&self, object: &ObjectMeta) -> S3Result<()> {
        self.check_read(object).map_err(|e| {
            if *e.code() == s3s::S3ErrorCode::NotModified {
                s3_error!(PreconditionFailed, "copy source precondition failed")
            } else {
                e
            }
        })
    }
}
