//! How the gateway's failures become S3 errors.

use meridian_raft::{ProposeError, ReadError, Rejection, StoreError};
use s3s::{S3Error, S3ErrorCode, s3_error};

/// An unexpected failure: logged with its cause, reported as InternalError.
pub(crate) fn internal(e: impl std::fmt::Display) -> S3Error {
    tracing::error!(error = %e, "internal error");
    s3_error!(InternalError, "internal error")
}

/// This node's disk is (nearly) full: the write is refused before anything was stored or
/// proposed, so the client may retry it elsewhere or later. S3 has no code of its own for this;
/// `InsufficientStorage` with HTTP 507 is what WebDAV and other S3 servers answer, and clients
/// do not retry it blindly as they would a 503.
pub(crate) fn insufficient_storage() -> S3Error {
    let mut error = S3Error::with_message(
        S3ErrorCode::Custom("InsufficientStorage".into()),
        "the data dir of this node is full: writes through it are refused until space returns; \
         reads still work, and other nodes still take writes",
    );
    error.set_status_code(http::StatusCode::INSUFFICIENT_STORAGE);
    error
}

/// A blob file could not be written: a full disk is [`insufficient_storage`], anything else
/// an internal error.
pub(crate) fn blob_io(e: std::io::Error) -> S3Error {
    if e.kind() == std::io::ErrorKind::StorageFull || e.raw_os_error() == Some(28) {
        tracing::warn!(error = %e, "blob write refused: the disk is full");
        return insufficient_storage();
    }
    internal(e)
}

/// A command new in format 2 while some node may still run the previous release (the
/// cluster has not raised its format yet): nothing was proposed. 503, so clients retry, with
/// a message that says why and when it stops.
pub(crate) fn upgrade_in_progress() -> S3Error {
    tracing::info!("a command new in this release refused: the cluster format is not raised yet");
    s3_error!(ServiceUnavailable, "the cluster is being upgraded; try again when every node runs this release")
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
        Rejection::ObjectLocked => return crate::object_lock::locked_error(),
        Rejection::InvalidBucketState => S3ErrorCode::InvalidBucketState,
        Rejection::ObjectLockNotEnabled => return crate::object_lock::missing_lock_configuration(),
    };
    S3Error::with_message(code, rejection.to_string())
}
