//! Object operations: PUT, GET, HEAD, DELETE, batch delete and copy.

use std::collections::BTreeMap;

use bytes::Bytes;
use meridian_raft::WriteCondition;
use meridian_raft::model::{ContentHeaders, ObjectMeta, PartChecksums};
use meridian_raft::{Command, CommandOutcome, VersionLock};
use s3s::dto::{
    CopyObjectInput, CopyObjectOutput, CopyObjectResult, CopySource, DeleteObjectInput, DeleteObjectOutput,
    DeleteObjectsInput, DeleteObjectsOutput, DeletedObject, ETag, ETagCondition, GetObjectInput, GetObjectOutput,
    HeadObjectInput, HeadObjectOutput, PutObjectInput, PutObjectOutput, StreamingBlob,
};
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::acl::object_acl_request;
use crate::blob::{BlobStore, new_id};
use crate::conditions::{copy_source_preconditions, read_preconditions};
use crate::convert::{HeaderFields, declared_checksums, parse_tagging_header, set_checksums, timestamp, user_metadata};
use crate::error;
use crate::gateway::{EDGE_FORMAT, Gateway, Origin, now_millis};
use crate::ingest::{Declared, Received, ingest};
use crate::object_lock::{lock_from_headers, with_lock};
use crate::versioning::{check_version_id, touched, upgrading};

/// S3's limit on key length, in bytes of UTF-8.
const MAX_KEY_BYTES: usize = 1024;
/// Bodies up to this size are read in one go and sent as one buffer.
const SMALL_BODY: u64 = 1 << 20;

/// Refuses keys S3 would refuse.
pub(crate) fn check_key(key: &str) -> S3Result<()> {
    if key.len() > MAX_KEY_BYTES {
        return Err(s3_error!(KeyTooLongError, "Your key is too long (at most {MAX_KEY_BYTES} bytes)."));
    }
    if key.is_empty() {
        return Err(s3_error!(InvalidArgument, "the object key must not be empty"));
    }
    Ok(())
}

/// The write condition of `If-None-Match: *` / `If-Match: "etag"` on a PUT or a
/// CompleteMultipartUpload: checked by the state machine as the write applies, so of two
/// racing creators with `If-None-Match: *` exactly one wins.
pub(crate) fn write_condition(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> S3Result<WriteCondition> {
    match (if_match, if_none_match) {
        (None, None) => Ok(WriteCondition::None),
        (None, Some(ETagCondition::Any)) => Ok(WriteCondition::Absent),
        (Some(ETagCondition::ETag(etag)), None) => Ok(WriteCondition::ETagIs(etag.value().to_owned())),
        _ => Err(s3_error!(NotImplemented, "only If-None-Match: * and If-Match: <etag> are supported on writes")),
    }
}

/// How a new version is written, beside its metadata.
#[derive(Default)]
pub(crate) struct WriteOptions {
    /// The write's precondition (`If-Match`, `If-None-Match`).
    pub(crate) condition: WriteCondition,
    /// The multipart upload it completes, if any.
    pub(crate) completes_upload: Option<String>,
    /// The Object Lock its request asked for, if any.
    pub(crate) lock: Option<VersionLock>,
    /// The ACL the new object gets, set in the same Raft entry (`None`: private).
    pub(crate) acl: Option<meridian_raft::Acl>,
    /// The checksums of a multipart object's parts, stored in the same Raft entry once the
    /// cluster writes format 2 (before, the object goes without them: GetObjectAttributes then
    /// lists its parts without checksums).
    pub(crate) part_checksums: Option<PartChecksums>,
}

/// The fields GET and HEAD share, from a stored version.
struct Described {
    e_tag: ETag,
    headers: ContentHeaders,
}

impl Gateway {
    /// Commits a version whose blob this node just wrote, on behalf of `origin`. On a definite
    /// refusal the blob is deleted at once; when the outcome is unknown (timeout, lost leader) it
    /// is left for the orphan sweep, because the entry may still commit.
    pub(crate) async fn commit_new_version(
        &self,
        bucket: &str,
        key: &str,
        meta: ObjectMeta,
        how: WriteOptions,
        origin: Origin,
    ) -> S3Result<Option<String>> {
        let blob = meta.blob.clone();
        let at = meta.last_modified;
        let WriteOptions { condition, completes_upload, lock, acl, part_checksums } = how;
        let put =
            Command::PutObject { bucket: bucket.to_owned(), key: key.to_owned(), meta, condition, completes_upload };
        // The ACL wraps the lock: the state machine finds the write inside either.
        let mut command = self.with_requested_acl(with_lock(put, lock), acl)?;
        // The part checksums wrap both, and only once no node of the previous release can
        // receive them: they are a convenience of GetObjectAttributes, never worth refusing
        // the write for.
        if let Some(parts) = part_checksums.filter(|_| self.meta.cluster_format_at_least(EDGE_FORMAT)) {
            command = Command::WithPartChecksums { parts, command: Box::new(command) };
        }
        let command = command.attributed_from(origin.actor, at, origin.client);
        match self.meta.propose(command).await {
            Ok(CommandOutcome::Rejected(rejection)) => {
                if blob.is_empty() {
                    return Err(error::rejected(rejection));
                }
                if let Err(e) = self.blobs.remove(&blob).await {
                    tracing::warn!(%blob, error = %e, "could not remove the blob of a refused write");
                }
                Err(error::rejected(rejection))
            }
            Ok(outcome) => Ok(crate::versioning::touched(&outcome).map(|v| v.version_id.clone())),
            Err(e) => Err(error::propose(e)),
        }
    }

    /// A new version's metadata, held by this node from now.
    pub(crate) fn new_version(&self, blob: String, size: u64, etag: String, headers: ContentHeaders) -> ObjectMeta {
        let now = now_millis();
        ObjectMeta {
            blob,
            inline: None,
            size,
            etag,
            last_modified: now,
            headers,
            tags: Vec::new(),
            checksums: Default::default(),
            parts: Vec::new(),
            holders: BTreeMap::from([(self.meta.node_id(), now)]),
        }
    }

    pub(crate) async fn put_object_op(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        let origin = self.origin_of(&req);
        // The listener's stand-in length of a chunked body is no length at all.
        let unsized_body = req.extensions.get::<crate::UnsizedBody>().is_some();
        let mut input = req.input;
        check_key(&input.key)?;
        self.bucket_for_write(&input.bucket).await?;
        let acl = self.new_object_acl(&input.bucket, &origin, object_acl_request!(input))?;
        let condition = write_condition(input.if_match.as_ref(), input.if_none_match.as_ref())?;
        let lock = lock_from_headers(
            input.object_lock_mode.as_ref(),
            input.object_lock_retain_until_date.as_ref(),
            input.object_lock_legal_hold_status.as_ref(),
        )?;
        self.check_lock_request(&input.bucket, lock.as_ref())?;
        self.check_put_integrity(&input.bucket, lock.as_ref(), &req.headers)?;
        let tags = input.tagging.as_deref().map(parse_tagging_header).transpose()?.unwrap_or_default();
        let declared = Declared {
            content_md5: input.content_md5,
            checksums: declared_checksums!(input),
            algorithm: input.checksum_algorithm.map(|a| a.as_str().to_owned()),
            upload_algorithm: None,
            length: if unsized_body { None } else { input.content_length },
        };
        let headers = HeaderFields {
            content_type: input.content_type,
            content_disposition: input.content_disposition,
            content_encoding: input.content_encoding,
            content_language: input.content_language,
            cache_control: input.cache_control,
            expires: input.expires,
            metadata: input.metadata,
        }
        .into_stored()?;

        let ingested = ingest(&*self.blobs, input.body, declared, req.trailing_headers).await?;
        let etag = ingested.etag();
        let (size, checksums) = (ingested.size, ingested.checksums.clone());
        let mut meta = match ingested.received {
            Received::Inline(bytes) => {
                let mut meta = self.new_version(String::new(), size, etag.clone(), headers);
                meta.inline = Some(bytes);
                meta
            }
            Received::Spilled(writer) => {
                let blob = new_id();
                self.blobs.commit(writer, &blob).await.map_err(error::blob_io)?;
                self.new_version(blob, size, etag.clone(), headers)
            }
        };
        meta.tags = tags;
        meta.checksums.clone_from(&checksums);
        let version_id = self
            .commit_new_version(
                &input.bucket,
                &input.key,
                meta,
                WriteOptions { condition, completes_upload: None, lock, acl, part_checksums: None },
                origin,
            )
            .await?;
        tracing::debug!(bucket = %input.bucket, key = %input.key, size, version = ?version_id, "object stored");
        let mut output = PutObjectOutput {
            e_tag: Some(ETag::Strong(etag)),
            size: i64::try_from(size).ok(),
            version_id,
            ..Default::default()
        };
        set_checksums!(output, &checksums);
        Ok(S3Response::new(output))
    }

    /// Streams a byte range of an object's blob from the first holder that answers.
    pub(crate) async fn stream_from_holder(
        &self,
        object: &ObjectMeta,
        range: std::ops::Range<u64>,
    ) -> S3Result<StreamingBlob> {
        let me = self.meta.node_id();
        // A viewer waits for these bytes: this node's own pull of them jumps the queue.
        self.pulls.wanted.want(&object.blob);
        for holder in object.holders.keys().filter(|h| **h != me) {
            let Some(node) = self.meta.member(*holder) else { continue };
            match self.meta.peers().fetch_blob(*holder, &node.internal, &object.blob, Some(range.clone())).await {
                Ok(stream) => {
                    tracing::debug!(blob = %object.blob, holder, "streaming from a holder");
                    return Ok(StreamingBlob::wrap(stream));
                }
                Err(e) => tracing::warn!(blob = %object.blob, holder, error = %e, "holder could not serve the blob"),
            }
        }
        Err(s3_error!(ServiceUnavailable, "no node holding this object's bytes is reachable right now"))
    }

    fn describe(object: &ObjectMeta) -> Described {
        Described { e_tag: ETag::Strong(object.etag.clone()), headers: object.headers.clone() }
    }

    /// The byte range a GET asks for: a Range header, or one part of a multipart object.
    fn requested_range(input: &GetObjectInput, object: &ObjectMeta) -> S3Result<Option<std::ops::Range<u64>>> {
        if let Some(part_number) = input.part_number {
            if input.range.is_some() {
                return Err(s3_error!(
                    InvalidRequest,
                    "Cannot specify both Range header and partNumber query parameter"
                ));
            }
            return part_range(object, part_number);
        }
        match &input.range {
            None => Ok(None),
            Some(range) => range
                .check(object.size)
                .map(Some)
                .map_err(|_| s3_error!(InvalidRange, "The requested range is not satisfiable")),
        }
    }

    pub(crate) async fn get_object_op(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        let input = &req.input;
        // An overwrite may free the blob between the lookup and the open: then the key has a
        // new version, so look it up again (once) and answer for it whole: its own
        // preconditions, range and length. Serving the new file with the old version's length
        // answered 200 with a truncated body (docs/faults.md, anomaly 8).
        let mut freed_once = false;
        loop {
            let found = self.version_for_read(&input.bucket, &input.key, input.version_id.as_deref()).await?;
            let version_id = found.version_id;
            let object = found.meta;
            read_preconditions!(input).check_read(&object)?;
            let range = Self::requested_range(input, &object)?;
            let (start, len) = match &range {
                Some(r) => (r.start, r.end - r.start),
                None => (0, object.size),
            };
            if let Some(inline) = &object.inline {
                let bytes =
                    Bytes::copy_from_slice(inline.get(start as usize..(start + len) as usize).unwrap_or_default());
                let body = StreamingBlob::from(s3s::Body::from(bytes));
                let output = self.get_output(input, &object, version_id, range, len, body);
                return self.with_lock_headers(input, output);
            }
            let body = match self.blobs.open(&object.blob).await.map_err(error::internal)? {
                Some(mut file) => {
                    if start > 0 {
                        file.seek(std::io::SeekFrom::Start(start)).await.map_err(error::internal)?;
                    }
                    if len <= SMALL_BODY {
                        let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
                        (&mut file).take(len).read_to_end(&mut buf).await.map_err(error::internal)?;
                        StreamingBlob::from(s3s::Body::from(Bytes::from(buf)))
                    } else {
                        StreamingBlob::wrap(tokio_util::io::ReaderStream::with_capacity(file.take(len), 256 * 1024))
                    }
                }
                None if !freed_once && object.holders.contains_key(&self.meta.node_id()) => {
                    freed_once = true;
                    continue;
                }
                // Known here but not held yet: stream it from a node that holds it.
                None => self.stream_from_holder(&object, start..start + len).await?,
            };
            let output = self.get_output(input, &object, version_id, range, len, body);
            return self.with_lock_headers(input, output);
        }
    }

    /// Adds the version's Object Lock headers to a GET's answer.
    fn with_lock_headers(
        &self,
        input: &GetObjectInput,
        mut response: S3Response<GetObjectOutput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let lock = self.lock_headers(&input.bucket, &input.key, response.output.version_id.as_deref())?;
        response.output.object_lock_mode = lock.mode;
        response.output.object_lock_retain_until_date = lock.until;
        response.output.object_lock_legal_hold_status = lock.legal_hold;
        Ok(response)
    }

    /// The GetObject response for a body of `len` bytes.
    fn get_output(
        &self,
        input: &GetObjectInput,
        object: &ObjectMeta,
        version_id: Option<String>,
        range: Option<std::ops::Range<u64>>,
        len: u64,
        body: StreamingBlob,
    ) -> S3Response<GetObjectOutput> {
        let whole = range.is_none();
        let checksum_wanted = input.checksum_mode.as_ref().is_some_and(|m| m.as_str() == "ENABLED");
        let with_checksums = whole && checksum_wanted;
        let Described { e_tag, headers } = Self::describe(object);
        let content_range =
            range.as_ref().map(|r| format!("bytes {}-{}/{}", r.start, r.end.saturating_sub(1), object.size));
        let mut output = GetObjectOutput {
            body: Some(body),
            content_length: i64::try_from(len).ok(),
            content_range,
            accept_ranges: Some("bytes".into()),
            e_tag: Some(e_tag),
            last_modified: Some(timestamp(object.last_modified)),
            metadata: user_metadata(&headers),
            content_type: headers.content_type.as_deref().and_then(|c| c.parse().ok()),
            content_disposition: headers.content_disposition,
            content_encoding: headers.content_encoding,
            content_language: headers.content_language,
            cache_control: headers.cache_control,
            expires: headers.expires.map(timestamp),
            tag_count: i32::try_from(object.tags.len()).ok().filter(|n| *n > 0),
            parts_count: i32::try_from(object.parts.len()).ok().filter(|n| *n > 0),
            version_id,
            ..Default::default()
        };
        if with_checksums {
            set_checksums!(output, &object.checksums);
            output.checksum_type = crate::composite::checksum_type(&object.checksums);
        }
        apply_response_overrides(&mut output, input);
        no_sniff(S3Response::new(output))
    }

    pub(crate) async fn head_object_op(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let input = &req.input;
        let found = self.version_for_read(&input.bucket, &input.key, input.version_id.as_deref()).await?;
        let object = found.meta;
        read_preconditions!(input).check_read(&object)?;
        let checksum_wanted = input.checksum_mode.as_ref().is_some_and(|m| m.as_str() == "ENABLED");

        let range = match input.part_number {
            Some(_) if input.range.is_some() => {
                return Err(s3_error!(
                    InvalidRequest,
                    "Cannot specify both Range header and partNumber query parameter"
                ));
            }
            Some(part_number) => part_range(&object, part_number)?,
            None => None,
        };
        let content_length = range.as_ref().map_or(object.size, |r| r.end - r.start);
        let content_range =
            range.as_ref().map(|r| format!("bytes {}-{}/{}", r.start, r.end.saturating_sub(1), object.size));
        let Described { e_tag, headers } = Self::describe(&object);
        let mut output = HeadObjectOutput {
            content_length: i64::try_from(content_length).ok(),
            content_range,
            accept_ranges: Some("bytes".into()),
            e_tag: Some(e_tag),
            last_modified: Some(timestamp(object.last_modified)),
            metadata: user_metadata(&headers),
            content_type: headers.content_type.as_deref().and_then(|c| c.parse().ok()),
            content_disposition: headers.content_disposition,
            content_encoding: headers.content_encoding,
            content_language: headers.content_language,
            cache_control: headers.cache_control,
            expires: headers.expires.map(timestamp),
            parts_count: i32::try_from(object.parts.len()).ok().filter(|n| *n > 0),
            version_id: found.version_id,
            ..Default::default()
        };
        if checksum_wanted {
            set_checksums!(output, &object.checksums);
            output.checksum_type = crate::composite::checksum_type(&object.checksums);
        }
        let lock = self.lock_headers(&input.bucket, &input.key, output.version_id.as_deref())?;
        output.object_lock_mode = lock.mode;
        output.object_lock_retain_until_date = lock.until;
        output.object_lock_legal_hold_status = lock.legal_hold;
        Ok(no_sniff(S3Response::new(output)))
    }

    pub(crate) async fn delete_object_op(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let origin = self.origin_of(&req);
        let scope = req.extensions.get::<crate::access::KeyScope>().cloned();
        let input = req.input;
        self.bucket_for_write(&input.bucket).await?;
        let bypass = self.governance_bypass(input.bypass_governance_retention, scope.as_ref(), &input.bucket)?;
        let command = match input.version_id {
            Some(version_id) => match self.version_delete(&input.bucket, &version_id).await? {
                VersionDelete::Versioned => self.locked_version_delete(input.bucket, input.key, version_id, bypass)?,
                VersionDelete::Plain => Command::DeleteObjects { bucket: input.bucket, keys: vec![input.key] },
            },
            None => Command::DeleteObjects { bucket: input.bucket, keys: vec![input.key] },
        };
        let asked_version = match &command {
            Command::DeleteVersionAt { version_id, .. } => Some(version_id.clone()),
            _ => None,
        };
        let outcome = self.commit_as(origin, command).await?;
        let output = match touched(&outcome) {
            Some(version) => DeleteObjectOutput {
                version_id: Some(version.version_id.clone()),
                delete_marker: version.delete_marker.then_some(true),
                ..Default::default()
            },
            // A version that was not there: deleting it again is not an error.
            None => DeleteObjectOutput { version_id: asked_version, ..Default::default() },
        };
        Ok(S3Response::new(output))
    }

    pub(crate) async fn delete_objects_op(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let origin = self.origin_of(&req);
        let scope = req.extensions.get::<crate::access::KeyScope>().cloned();
        let deleter = req.extensions.get::<crate::access::BatchDeleter>().cloned();
        let client = req.extensions.get::<crate::gateway::ClientAddr>().map(|c| c.0);
        let input = req.input;
        match self.bucket_for_write(&input.bucket).await {
            // An unsigned caller learns nothing of buckets it was granted nothing in.
            Err(e) if *e.code() == S3ErrorCode::NoSuchBucket && deleter.as_ref().is_some_and(|d| !d.is_signed()) => {
                return Err(s3_error!(AccessDenied, "Access Denied"));
            }
            other => other?,
        }
        let bypass = self.governance_bypass(input.bypass_governance_retention, scope.as_ref(), &input.bucket)?;
        if input.delete.objects.len() > 1000 {
            return Err(s3_error!(MalformedXML, "at most 1000 keys can be deleted in one request"));
        }
        // Each key is judged as its DeleteObject would be, on state caught up once.
        let judge = deleter.map(|deleter| (crate::access::AccessPolicy::new(self), deleter));
        if judge.is_some() {
            self.sync_for_read().await?;
        }
        let mut keys = Vec::new();
        let mut versions = Vec::new();
        let mut errors = Vec::new();
        for object in input.delete.objects {
            check_key(&object.key)?;
            if let Some((policy, deleter)) = &judge
                && !policy.may_delete(deleter, &input.bucket, &object.key, client).await?
            {
                let refused = s3_error!(AccessDenied, "Access Denied");
                errors.push(entry_error(&object.key, object.version_id.as_deref(), &refused));
                continue;
            }
            match object.version_id {
                Some(version_id) => match self.version_delete(&input.bucket, &version_id).await? {
                    VersionDelete::Versioned => versions.push((object.key, version_id)),
                    VersionDelete::Plain => keys.push(object.key),
                },
                None => keys.push(object.key),
            }
        }
        let mut deleted = Vec::with_capacity(keys.len() + versions.len());
        if !keys.is_empty() {
            let command = Command::DeleteObjects { bucket: input.bucket.clone(), keys: keys.clone() };
            let outcome = self.commit_as(origin.clone(), command).await?;
            match outcome {
                // A versioned bucket: each key got a delete marker.
                CommandOutcome::Versions(markers) => deleted.extend(markers.into_iter().map(|m| DeletedObject {
                    key: Some(m.key),
                    delete_marker: Some(true),
                    delete_marker_version_id: Some(m.version_id),
                    ..Default::default()
                })),
                // S3 reports every requested key as deleted, existing or not.
                _ => deleted.extend(keys.into_iter().map(|key| DeletedObject { key: Some(key), ..Default::default() })),
            }
        }
        for (key, version_id) in versions {
            let command =
                match self.locked_version_delete(input.bucket.clone(), key.clone(), version_id.clone(), bypass) {
                    Ok(command) => command,
                    Err(e) => {
                        errors.push(entry_error(&key, Some(&version_id), &e));
                        continue;
                    }
                };
            let outcome = match self.commit_as(origin.clone(), command).await {
                Ok(outcome) => outcome,
                // A lock refuses this entry alone, as S3 reports it.
                Err(e) if *e.code() == S3ErrorCode::AccessDenied => {
                    errors.push(entry_error(&key, Some(&version_id), &e));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let marker = touched(&outcome).is_some_and(|v| v.delete_marker);
            deleted.push(DeletedObject {
                key: Some(key),
                version_id: Some(version_id.clone()),
                delete_marker: marker.then_some(true),
                delete_marker_version_id: marker.then_some(version_id),
            });
        }
        // Quiet mode reports only errors.
        if input.delete.quiet.unwrap_or(false) {
            deleted.clear();
        }
        Ok(S3Response::new(DeleteObjectsOutput { deleted: Some(deleted), errors: Some(errors), ..Default::default() }))
    }

    pub(crate) async fn copy_object_op(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let origin = self.origin_of(&req);
        let mut input = req.input;
        check_key(&input.key)?;
        let acl = self.new_object_acl(&input.bucket, &origin, object_acl_request!(input))?;
        let CopySource::Bucket { bucket: src_bucket, key: src_key, version_id: src_version } = &input.copy_source
        else {
            return Err(s3_error!(NotImplemented, "access point copy sources are not supported"));
        };
        let found = self.copy_source_version(src_bucket, src_key, src_version.as_deref()).await?;
        let source_version_id = found.version_id;
        let source = found.meta;
        copy_source_preconditions!(input).check_copy_source(&source)?;
        self.bucket_for_write(&input.bucket).await?;
        // A copy gets the lock its own request asks for (or the bucket's default), never the
        // source's, as on S3.
        let lock = lock_from_headers(
            input.object_lock_mode.as_ref(),
            input.object_lock_retain_until_date.as_ref(),
            input.object_lock_legal_hold_status.as_ref(),
        )?;
        self.check_lock_request(&input.bucket, lock.as_ref())?;

        let replace_metadata = input.metadata_directive.as_ref().is_some_and(|d| d.as_str() == "REPLACE");
        let replace_tags = input.tagging_directive.as_ref().is_some_and(|d| d.as_str() == "REPLACE");
        // Copying a named version onto its own key is how S3 clients restore an older version:
        // allowed, as S3 allows it.
        let same_place = **src_bucket == *input.bucket && **src_key == *input.key && src_version.is_none();
        if same_place && !replace_metadata && !replace_tags {
            return Err(s3_error!(
                InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata."
            ));
        }
        let headers = if replace_metadata {
            HeaderFields {
                content_type: input.content_type,
                content_disposition: input.content_disposition,
                content_encoding: input.content_encoding,
                content_language: input.content_language,
                cache_control: input.cache_control,
                expires: input.expires,
                metadata: input.metadata,
            }
            .into_stored()?
        } else {
            source.headers.clone()
        };
        let tags = if replace_tags {
            input.tagging.as_deref().map(parse_tagging_header).transpose()?.unwrap_or_default()
        } else {
            source.tags.clone()
        };

        let blob = if source.inline.is_some() { String::new() } else { new_id() };
        if source.inline.is_none()
            && let Err(e) = self.blobs.duplicate(&source.blob, &blob).await
        {
            tracing::error!(blob = %source.blob, error = %e, "copy source blob not available on this node");
            return Err(s3_error!(ServiceUnavailable, "the source object's bytes are not available on this node yet"));
        }
        let mut meta = self.new_version(blob, source.size, source.etag.clone(), headers);
        meta.inline.clone_from(&source.inline);
        meta.tags = tags;
        meta.checksums = source.checksums.clone();
        meta.parts = source.parts.clone();
        // The copy keeps the source's parts, so it keeps their checksums too.
        let part_checksums = if source.parts.is_empty() || source.inline.is_some() {
            None
        } else {
            self.meta.part_checksums(&source.blob).map_err(error::store)?
        };
        let last_modified = meta.last_modified;
        let version_id = self
            .commit_new_version(
                &input.bucket,
                &input.key,
                meta,
                WriteOptions { lock, acl, part_checksums, ..Default::default() },
                origin,
            )
            .await?;
        Ok(S3Response::new(CopyObjectOutput {
            version_id,
            copy_source_version_id: source_version_id,
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(ETag::Strong(source.etag)),
                last_modified: Some(timestamp(last_modified)),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }
}

/// The bytes of part `number` of `object` (`GET`/`HEAD ?partNumber=N`), as AWS answers:
/// a number outside 1 to 10000 is InvalidArgument; a part the object does not have is 416
/// InvalidPartNumber. An object not made by multipart upload is its own part 1, served whole
/// (`None`).
fn part_range(object: &ObjectMeta, number: i32) -> S3Result<Option<std::ops::Range<u64>>> {
    if !(1..=crate::multipart::MAX_PART_NUMBER).contains(&number) {
        return Err(s3_error!(InvalidArgument, "Part number must be an integer between 1 and 10000, inclusive"));
    }
    if object.parts.is_empty() && number == 1 {
        return Ok(None);
    }
    let mut start = 0u64;
    for part in &object.parts {
        if part.number == number {
            return Ok(Some(start..start + part.size));
        }
        start += part.size;
    }
    let mut error = S3Error::with_message(
        S3ErrorCode::Custom("InvalidPartNumber".into()),
        "The requested partnumber is not satisfiable",
    );
    error.set_status_code(http::StatusCode::RANGE_NOT_SATISFIABLE);
    Err(error)
}

/// One refused entry of a DeleteObjects answer.
fn entry_error(key: &str, version_id: Option<&str>, error: &S3Error) -> s3s::dto::Error {
    s3s::dto::Error {
        code: Some(error.code().as_str().to_owned()),
        key: Some(key.to_owned()),
        message: error.message().map(str::to_owned),
        version_id: version_id.map(str::to_owned),
    }
}

/// How a delete that names a version is carried out.
enum VersionDelete {
    /// As [`Command::DeleteVersion`] (a versioned bucket).
    Versioned,
    /// As a plain delete: the `null` version of a bucket never versioned is its object, and
    /// deleting it needs no command of the new format (conformance suites empty unversioned
    /// buckets this way, during upgrades too).
    Plain,
}

impl Gateway {
    /// Decides how to delete `version_id` in `bucket`: a malformed id is InvalidArgument, as is
    /// a non-`null` id in a bucket never versioned (it cannot name anything there).
    /// The command deleting one version for good, judged against its lock now (refused here
    /// already when the lock protects it; the state machine judges again with the same time).
    fn locked_version_delete(
        &self,
        bucket: String,
        key: String,
        version_id: String,
        bypass: bool,
    ) -> S3Result<Command> {
        let now = now_millis();
        self.check_version_deletable(&bucket, &key, &version_id, now, bypass)?;
        Ok(Command::DeleteVersionAt { bucket, key, version_id, now, bypass_governance: bypass })
    }

    async fn version_delete(&self, bucket: &str, version_id: &str) -> S3Result<VersionDelete> {
        check_version_id(version_id)?;
        // The versioning state decides what the delete does: read it after catching up.
        self.sync_for_read().await?;
        if self.meta.versioning(bucket).map_err(error::store)?.is_none() {
            if version_id == meridian_raft::model::NULL_VERSION {
                return Ok(VersionDelete::Plain);
            }
            return Err(s3_error!(InvalidArgument, "Invalid version id specified"));
        }
        if !self.meta.versioning_available() {
            return Err(upgrading());
        }
        Ok(VersionDelete::Versioned)
    }
}

/// The `response-*` query parameters of a signed GET replace the stored headers in the answer
/// (S3's response header overrides): the web API's download links ask for
/// `Content-Disposition: attachment` this way.
fn apply_response_overrides(output: &mut GetObjectOutput, input: &GetObjectInput) {
    if let Some(disposition) = &input.response_content_disposition {
        output.content_disposition = Some(disposition.clone());
    }
    if let Some(content_type) = input.response_content_type.as_deref().and_then(|c| c.parse().ok()) {
        output.content_type = Some(content_type);
    }
    if let Some(cache_control) = &input.response_cache_control {
        output.cache_control = Some(cache_control.clone());
    }
    if let Some(encoding) = &input.response_content_encoding {
        output.content_encoding = Some(encoding.clone());
    }
    if let Some(language) = &input.response_content_language {
        output.content_language = Some(language.clone());
    }
    if let Some(expires) = &input.response_expires {
        output.expires = Some(expires.clone());
    }
}

/// Adds `X-Content-Type-Options: nosniff`, so a browser never guesses a type that would make it
/// run a stored file (say, HTML sent as `text/plain`) on the S3 listener's origin.
fn no_sniff<T>(mut response: S3Response<T>) -> S3Response<T> {
    response.headers.insert(http::header::X_CONTENT_TYPE_OPTIONS, http::HeaderValue::from_static("nosniff"));
    response
}
