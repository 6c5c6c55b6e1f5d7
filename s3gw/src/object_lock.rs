//! S3 Object Lock: the bucket's lock configuration, a version's retention and legal hold, the
//! lock headers of writes and reads, and who may bypass GOVERNANCE.
//!
//! Every refusal that depends on stored state is decided again by the state machine when the
//! command applies (the gateway checks first to answer early, the state machine decides); the
//! time a retention is compared with is this node's clock when the request arrived, carried in
//! the command. Object Lock's commands and records are format 2: a bucket can have lock only
//! once the cluster writes format 2.

use meridian_raft::model::{NULL_VERSION, UnixMillis};
use meridian_raft::{
    BucketObjectLock, Command, DefaultRetention, Retention, RetentionMode, RetentionPeriod, VersionLock,
};
use s3s::dto::{
    GetObjectLegalHoldInput, GetObjectLegalHoldOutput, GetObjectLockConfigurationInput,
    GetObjectLockConfigurationOutput, GetObjectRetentionInput, GetObjectRetentionOutput, ObjectLockConfiguration,
    ObjectLockEnabled, ObjectLockLegalHold, ObjectLockLegalHoldStatus, ObjectLockMode, ObjectLockRetention,
    ObjectLockRetentionMode, ObjectLockRule, PutObjectLegalHoldInput, PutObjectLegalHoldOutput,
    PutObjectLockConfigurationInput, PutObjectLockConfigurationOutput, PutObjectRetentionInput,
    PutObjectRetentionOutput, Timestamp,
};
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use crate::access::KeyScope;
use crate::convert::{millis, timestamp};
use crate::error;
use crate::gateway::{Gateway, now_millis};
use crate::versioning::{check_version_id, upgrading};

/// Longest default retention accepted, in days (S3 caps it at 100 years).
const MAX_DEFAULT_DAYS: i32 = 36_500;
/// Longest default retention accepted, in years.
const MAX_DEFAULT_YEARS: i32 = 100;

/// An S3 error with a code s3s has no constant for, and its status.
fn custom_error(code: &'static str, status: http::StatusCode, message: &str) -> S3Error {
    let mut error = S3Error::with_message(S3ErrorCode::Custom(code.into()), message.to_owned());
    error.set_status_code(status);
    error
}

/// The answer to lock settings on a bucket that has no Object Lock, as S3 gives it.
pub(crate) fn missing_lock_configuration() -> S3Error {
    s3_error!(InvalidRequest, "Bucket is missing Object Lock Configuration")
}

/// The answer to a delete or retention change a lock refuses.
pub(crate) fn locked_error() -> S3Error {
    s3_error!(AccessDenied, "Access Denied because object protected by object lock.")
}

/// A retention mode as S3 names it; anything else is refused.
fn parse_mode(mode: &str) -> S3Result<RetentionMode> {
    match mode {
        "GOVERNANCE" => Ok(RetentionMode::Governance),
        "COMPLIANCE" => Ok(RetentionMode::Compliance),
        _ => Err(s3_error!(InvalidArgument, "Unknown wormMode directive.")),
    }
}

/// The S3 name of a retention mode.
fn mode_name(mode: RetentionMode) -> &'static str {
    match mode {
        RetentionMode::Governance => ObjectLockRetentionMode::GOVERNANCE,
        RetentionMode::Compliance => ObjectLockRetentionMode::COMPLIANCE,
    }
}

/// A retention of a request: a mode and a date in the future, both or neither.
fn requested_retention(mode: Option<&str>, until: Option<&Timestamp>, now: UnixMillis) -> S3Result<Option<Retention>> {
    match (mode, until) {
        (None, None) => Ok(None),
        (Some(mode), Some(until)) => {
            let mode = parse_mode(mode)?;
            let until = millis(until);
            if until <= now {
                return Err(s3_error!(InvalidArgument, "The retain until date must be in the future!"));
            }
            Ok(Some(Retention { mode, until }))
        }
        _ => Err(s3_error!(
            InvalidArgument,
            "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied"
        )),
    }
}

/// The lock asked for by the `x-amz-object-lock-*` headers of a write (PutObject, CopyObject,
/// CreateMultipartUpload); `None` when it sends none.
pub(crate) fn lock_from_headers(
    mode: Option<&ObjectLockMode>,
    until: Option<&Timestamp>,
    legal_hold: Option<&ObjectLockLegalHoldStatus>,
) -> S3Result<Option<VersionLock>> {
    let retention = requested_retention(mode.map(ObjectLockMode::as_str), until, now_millis())?;
    let legal_hold = match legal_hold.map(ObjectLockLegalHoldStatus::as_str) {
        None => None,
        Some("ON") => Some(true),
        Some("OFF") => Some(false),
        Some(_) => return Err(s3_error!(InvalidArgument, "Legal Hold must be either of 'ON' or 'OFF'")),
    };
    if retention.is_none() && legal_hold.is_none() {
        return Ok(None);
    }
    Ok(Some(VersionLock { retention, legal_hold: legal_hold.unwrap_or(false) }))
}

/// The checksum headers a request may prove its body's integrity with, besides `Content-MD5`.
const CHECKSUM_HEADERS: &[&str] = &[
    "x-amz-checksum-crc32",
    "x-amz-checksum-crc32c",
    "x-amz-checksum-crc64nvme",
    "x-amz-checksum-sha1",
    "x-amz-checksum-sha256",
    "x-amz-sdk-checksum-algorithm",
];

/// Refuses a request with Object Lock parameters whose body nothing protects, as AWS does: a
/// lock cannot be undone, so the bytes (or the retention XML) it fixes for years must be the
/// bytes the client meant. A `Content-MD5`, an `x-amz-checksum-*` header, the SDK's algorithm
/// header or a checksum trailer counts; an empty value counts as none.
pub(crate) fn require_integrity_header(headers: &http::HeaderMap) -> S3Result<()> {
    let present = |name: &str| headers.get(name).is_some_and(|v| !v.as_bytes().trim_ascii().is_empty());
    let trailer = headers
        .get_all("x-amz-trailer")
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.to_ascii_lowercase().contains("x-amz-checksum-")));
    if present("content-md5") || trailer || CHECKSUM_HEADERS.iter().any(|name| present(name)) {
        return Ok(());
    }
    Err(s3_error!(
        InvalidRequest,
        "Content-MD5 OR x-amz-checksum- HTTP header is required for Put Object requests with Object Lock parameters"
    ))
}

/// A write command with the lock its request asked for (see [`Command::WithObjectLock`]).
pub(crate) fn with_lock(command: Command, lock: Option<VersionLock>) -> Command {
    match lock {
        Some(lock) => Command::WithObjectLock { lock, command: Box::new(command) },
        None => command,
    }
}

/// The lock headers GET and HEAD answer with.
pub(crate) struct LockHeaders {
    /// `x-amz-object-lock-mode`.
    pub(crate) mode: Option<ObjectLockMode>,
    /// `x-amz-object-lock-retain-until-date`.
    pub(crate) until: Option<Timestamp>,
    /// `x-amz-object-lock-legal-hold`.
    pub(crate) legal_hold: Option<ObjectLockLegalHoldStatus>,
}

impl Gateway {
    /// Refuses lock headers on a write to a bucket without Object Lock (InvalidRequest, as S3).
    pub(crate) fn check_lock_request(&self, bucket: &str, lock: Option<&VersionLock>) -> S3Result<()> {
        if lock.is_none() {
            return Ok(());
        }
        if !self.meta.versioning_available() {
            return Err(upgrading());
        }
        if self.meta.object_lock(bucket).map_err(error::store)?.is_none() {
            return Err(missing_lock_configuration());
        }
        Ok(())
    }

    /// [`require_integrity_header`] for a PutObject to `bucket`: needed when the write asks for a
    /// lock or the bucket gives every new version its default retention.
    pub(crate) fn check_put_integrity(
        &self,
        bucket: &str,
        lock: Option<&VersionLock>,
        headers: &http::HeaderMap,
    ) -> S3Result<()> {
        let locked_by_default = || -> S3Result<bool> {
            let config = self.meta.object_lock(bucket).map_err(error::store)?;
            Ok(config.is_some_and(|c| c.default_retention.is_some()))
        };
        if lock.is_some() || locked_by_default()? {
            return require_integrity_header(headers);
        }
        Ok(())
    }

    /// The lock headers of a version GET or HEAD found (none without a lock).
    pub(crate) fn lock_headers(&self, bucket: &str, key: &str, version_id: Option<&str>) -> S3Result<LockHeaders> {
        let none = LockHeaders { mode: None, until: None, legal_hold: None };
        let Some(version_id) = version_id else { return Ok(none) };
        if self.meta.object_lock(bucket).map_err(error::store)?.is_none() {
            return Ok(none);
        }
        let Some(lock) = self.meta.version_lock(bucket, key, version_id).map_err(error::store)? else {
            return Ok(none);
        };
        Ok(LockHeaders {
            mode: lock.retention.map(|r| ObjectLockMode::from_static(mode_name(r.mode))),
            until: lock.retention.map(|r| timestamp(r.until)),
            legal_hold: Some(ObjectLockLegalHoldStatus::from_static(if lock.legal_hold {
                ObjectLockLegalHoldStatus::ON
            } else {
                ObjectLockLegalHoldStatus::OFF
            })),
        })
    }

    /// Whether the request may bypass GOVERNANCE retention: it asked to, and its key may (an
    /// operator's or service's key, or a key of the bucket's owner or of an admin). A key that
    /// asks without the right gets no bypass, so the lock refuses what it needed it for.
    pub(crate) fn governance_bypass(
        &self,
        asked: Option<bool>,
        scope: Option<&KeyScope>,
        bucket: &str,
    ) -> S3Result<bool> {
        if asked != Some(true) {
            return Ok(false);
        }
        let allowed = match scope {
            // Unsigned (a grant to everyone): deleting is not bypassing a lock.
            None => false,
            Some(KeyScope::Everything) => true,
            Some(KeyScope::Person { id, admin }) => {
                let person = meridian_raft::access::Person { id, admin: *admin };
                self.meta.person_owns(person, bucket, None).map_err(error::store)?
            }
        };
        if !allowed {
            tracing::info!(%bucket, "governance bypass asked by a key that may not use it");
        }
        Ok(allowed)
    }

    /// Refuses before proposing a delete of a version its lock protects now (the state machine
    /// judges again at apply, with the same time).
    pub(crate) fn check_version_deletable(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
        now: UnixMillis,
        bypass: bool,
    ) -> S3Result<()> {
        match self.meta.version_lock(bucket, key, version_id).map_err(error::store)? {
            Some(lock) if lock.protects(now, bypass) => Err(locked_error()),
            _ => Ok(()),
        }
    }

    /// The version a retention or legal hold request names: `version_id`, or the latest
    /// (which must not be a delete marker). The bucket must have lock.
    async fn lock_target(&self, bucket: &str, key: &str, version_id: Option<&str>) -> S3Result<String> {
        self.bucket(bucket).await?;
        self.sync_for_read().await?;
        if self.meta.object_lock(bucket).map_err(error::store)?.is_none() {
            return Err(missing_lock_configuration());
        }
        let found = self.version_for_read(bucket, key, version_id).await?;
        Ok(found.version_id.unwrap_or_else(|| NULL_VERSION.to_owned()))
    }

    pub(crate) async fn put_object_lock_configuration_op(
        &self,
        req: S3Request<PutObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
        let origin = self.origin_of(&req);
        require_integrity_header(&req.headers)?;
        let input = req.input;
        let Some(config) = input.object_lock_configuration else {
            return Err(s3_error!(MalformedXML, "the Object Lock configuration is missing"));
        };
        if config.object_lock_enabled.as_ref().map(ObjectLockEnabled::as_str) != Some(ObjectLockEnabled::ENABLED) {
            return Err(s3_error!(MalformedXML, "ObjectLockEnabled must be Enabled"));
        }
        let default_retention = match config.rule.and_then(|r| r.default_retention) {
            None => None,
            Some(default) => {
                let Some(mode) = default.mode else {
                    return Err(s3_error!(MalformedXML, "a default retention needs a Mode"));
                };
                let period = match (default.days, default.years) {
                    (Some(days), None) if (1..=MAX_DEFAULT_DAYS).contains(&days) => {
                        RetentionPeriod::Days(days.unsigned_abs())
                    }
                    (None, Some(years)) if (1..=MAX_DEFAULT_YEARS).contains(&years) => {
                        RetentionPeriod::Years(years.unsigned_abs())
                    }
                    (Some(_), Some(_)) | (None, None) => {
                        return Err(s3_error!(MalformedXML, "a default retention has either Days or Years"));
                    }
                    _ => {
                        return Err(s3_error!(
                            InvalidArgument,
                            "Default retention period must be a positive integer value (at most 100 years)"
                        ));
                    }
                };
                Some(DefaultRetention { mode: parse_mode(mode.as_str())?, period })
            }
        };
        self.bucket_for_write(&input.bucket).await?;
        if !self.meta.versioning_available() {
            return Err(upgrading());
        }
        let command = Command::PutObjectLockConfiguration {
            bucket: input.bucket.clone(),
            config: BucketObjectLock { default_retention },
        };
        self.commit_as(origin, command).await?;
        tracing::info!(bucket = %input.bucket, ?default_retention, "object lock configuration set");
        Ok(S3Response::new(PutObjectLockConfigurationOutput::default()))
    }

    pub(crate) async fn get_object_lock_configuration_op(
        &self,
        req: S3Request<GetObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
        let bucket = req.input.bucket;
        self.bucket(&bucket).await?;
        let Some(config) = self.meta.object_lock(&bucket).map_err(error::store)? else {
            return Err(custom_error(
                "ObjectLockConfigurationNotFoundError",
                http::StatusCode::NOT_FOUND,
                "Object Lock configuration does not exist for this bucket",
            ));
        };
        let rule = config.default_retention.map(|d| ObjectLockRule {
            default_retention: Some(s3s::dto::DefaultRetention {
                mode: Some(ObjectLockRetentionMode::from_static(mode_name(d.mode))),
                days: match d.period {
                    RetentionPeriod::Days(days) => i32::try_from(days).ok(),
                    RetentionPeriod::Years(_) => None,
                },
                years: match d.period {
                    RetentionPeriod::Years(years) => i32::try_from(years).ok(),
                    RetentionPeriod::Days(_) => None,
                },
            }),
        });
        Ok(S3Response::new(GetObjectLockConfigurationOutput {
            object_lock_configuration: Some(ObjectLockConfiguration {
                object_lock_enabled: Some(ObjectLockEnabled::from_static(ObjectLockEnabled::ENABLED)),
                rule,
            }),
        }))
    }

    pub(crate) async fn put_object_retention_op(
        &self,
        req: S3Request<PutObjectRetentionInput>,
    ) -> S3Result<S3Response<PutObjectRetentionOutput>> {
        let origin = self.origin_of(&req);
        require_integrity_header(&req.headers)?;
        let scope = req.extensions.get::<KeyScope>().cloned();
        let input = req.input;
        if let Some(id) = input.version_id.as_deref() {
            check_version_id(id)?;
        }
        let now = now_millis();
        let retention = match &input.retention {
            None => None,
            Some(ObjectLockRetention { mode, retain_until_date }) => {
                requested_retention(mode.as_ref().map(ObjectLockRetentionMode::as_str), retain_until_date.as_ref(), now)
                    .map_err(|e| if *e.code() == S3ErrorCode::InvalidArgument { e } else { s3_error!(MalformedXML) })?
            }
        };
        let version_id = self.lock_target(&input.bucket, &input.key, input.version_id.as_deref()).await?;
        let bypass = self.governance_bypass(input.bypass_governance_retention, scope.as_ref(), &input.bucket)?;
        let current = self.meta.version_lock(&input.bucket, &input.key, &version_id).map_err(error::store)?;
        if !meridian_raft::retention_change_allowed(current.and_then(|l| l.retention), retention, now, bypass) {
            return Err(locked_error());
        }
        let command = Command::PutObjectRetention {
            bucket: input.bucket.clone(),
            key: input.key.clone(),
            version_id: version_id.clone(),
            retention,
            now,
            bypass_governance: bypass,
        };
        self.commit_as(origin, command).await?;
        tracing::info!(bucket = %input.bucket, key = %input.key, version = %version_id, ?retention, "retention set");
        Ok(S3Response::new(PutObjectRetentionOutput::default()))
    }

    pub(crate) async fn get_object_retention_op(
        &self,
        req: S3Request<GetObjectRetentionInput>,
    ) -> S3Result<S3Response<GetObjectRetentionOutput>> {
        let input = req.input;
        let version_id = self.lock_target(&input.bucket, &input.key, input.version_id.as_deref()).await?;
        let lock = self.meta.version_lock(&input.bucket, &input.key, &version_id).map_err(error::store)?;
        let Some(retention) = lock.and_then(|l| l.retention) else {
            return Err(no_lock_configuration());
        };
        Ok(S3Response::new(GetObjectRetentionOutput {
            retention: Some(ObjectLockRetention {
                mode: Some(ObjectLockRetentionMode::from_static(mode_name(retention.mode))),
                retain_until_date: Some(timestamp(retention.until)),
            }),
        }))
    }

    pub(crate) async fn put_object_legal_hold_op(
        &self,
        req: S3Request<PutObjectLegalHoldInput>,
    ) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
        let origin = self.origin_of(&req);
        require_integrity_header(&req.headers)?;
        let input = req.input;
        if let Some(id) = input.version_id.as_deref() {
            check_version_id(id)?;
        }
        let on = match input.legal_hold.as_ref().and_then(|h| h.status.as_ref()).map(ObjectLockLegalHoldStatus::as_str)
        {
            Some("ON") => true,
            Some("OFF") => false,
            _ => return Err(s3_error!(MalformedXML, "the legal hold Status must be ON or OFF")),
        };
        let version_id = self.lock_target(&input.bucket, &input.key, input.version_id.as_deref()).await?;
        let command = Command::PutObjectLegalHold {
            bucket: input.bucket.clone(),
            key: input.key.clone(),
            version_id: version_id.clone(),
            on,
        };
        self.commit_as(origin, command).await?;
        tracing::info!(bucket = %input.bucket, key = %input.key, version = %version_id, on, "legal hold set");
        Ok(S3Response::new(PutObjectLegalHoldOutput::default()))
    }

    pub(crate) async fn get_object_legal_hold_op(
        &self,
        req: S3Request<GetObjectLegalHoldInput>,
    ) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
        let input = req.input;
        let version_id = self.lock_target(&input.bucket, &input.key, input.version_id.as_deref()).await?;
        let Some(lock) = self.meta.version_lock(&input.bucket, &input.key, &version_id).map_err(error::store)? else {
            return Err(no_lock_configuration());
        };
        let status = if lock.legal_hold { ObjectLockLegalHoldStatus::ON } else { ObjectLockLegalHoldStatus::OFF };
        Ok(S3Response::new(GetObjectLegalHoldOutput {
            legal_hold: Some(ObjectLockLegalHold { status: Some(ObjectLockLegalHoldStatus::from_static(status)) }),
        }))
    }
}

/// A version without the lock setting asked for (S3: 404 NoSuchObjectLockConfiguration).
fn no_lock_configuration() -> S3Error {
    custom_error(
        "NoSuchObjectLockConfiguration",
        http::StatusCode::NOT_FOUND,
        "The specified object does not have a ObjectLock configuration",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_headers_come_whole_and_in_the_future() {
        let future = timestamp(now_millis() + 60_000);
        let past = timestamp(now_millis() - 60_000);
        let gov = ObjectLockMode::from_static(ObjectLockMode::GOVERNANCE);
        let on = ObjectLockLegalHoldStatus::from_static(ObjectLockLegalHoldStatus::ON);
        assert!(lock_from_headers(None, None, None).expect("none").is_none());
        let lock = lock_from_headers(Some(&gov), Some(&future), Some(&on)).expect("whole").expect("a lock");
        assert!(lock.legal_hold && lock.retention.is_some_and(|r| r.mode == RetentionMode::Governance));
        for (mode, until) in [(Some(&gov), None), (None, Some(&future)), (Some(&gov), Some(&past))] {
            let e = lock_from_headers(mode, until, None).expect_err("refused");
            assert_eq!(*e.code(), S3ErrorCode::InvalidArgument);
        }
        let odd = ObjectLockMode::from("FOREVER".to_owned());
        assert!(lock_from_headers(Some(&odd), Some(&future), None).is_err());
        let odd_hold = ObjectLockLegalHoldStatus::from("MAYBE".to_owned());
        assert!(lock_from_headers(None, None, Some(&odd_hold)).is_err());
    }
}
