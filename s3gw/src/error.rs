//! How the gateway's failures become S3 errors.

use meridian_raft::{ProposeError, ReadError, Rejection, StoreError};
use s3s::{S3Error, S3ErrorCode, s3_error};

/// An unexpected failure: logged with its cause, reported as InternalError.
pub(crate) fn internal(e: impl std::fmt::Display) -> S3Error {
    tracing::error!(error = %e, "internal error");
    s3_error!(InternalError, "internal error")
}

/// A store read failed.
pub(crate) fn store(e: StoreError) -> S3Error {
    internal(e)
}

/// A proposal was not committed: the cluster cannot take writes now (e.g. this node is cut off
/// from the majority), which clients retry as ServiceUnavailable; or this node's store failed.
/// The rule is [`ProposeError::is_unavailable`], the same the web API maps by.
pub(crate) fn propose(e: ProposeError) -> S3Error {
    if !e.is_unavailable() {
        return internal(e);
    }
    tracing::warn!(error = %e, "write not committed");
    s3_error!(ServiceUnavailable, "the metadata store cannot commit writes right now: {e}")
}

/// A confirmed read failed: the store, or no read index to confirm an absence with.
pub(crate) fn read(e: ReadError) -> S3Error {
    match e {
        ReadError::Store(e) => store(e),
        ReadError::Unconfirmed(e) => propose(e),
    }
}

/// A command the state machine refused.
pub(crate) fn rejected(rejection: Rejection) -> S3Error {
    let code = match rejection {
        Rejection::NoSuchBucket => S3ErrorCode::NoSuchBucket,
        Rejection::BucketAlreadyOwnedByYou => S3ErrorCode::BucketAlreadyOwnedByYou,
        Rejection::BucketNotEmpty => S3ErrorCode::BucketNotEmpty,
        Rejection::NoSuchKey => S3ErrorCode::NoSuchKey,
        Rejection::NoSuchUpload => S3ErrorCode::NoSuchUpload,
        Rejection::PreconditionFailed => S3ErrorCode::PreconditionFailed,
    };
    S3Error::with_message(code, rejection.to_string())
}
