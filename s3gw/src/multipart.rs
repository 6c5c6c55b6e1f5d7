//! Multipart uploads. The upload itself is replicated (any node can list it); its parts are
//! files on the disk of the node that receives them, each with a small durable record beside
//! it. Completion assembles the parts into one blob with in-kernel copies.

use std::path::{Path, PathBuf};

use meridian_raft::model::{Checksums, MultipartUpload, PartChecksums, PartSummary};
use meridian_raft::{Command, MetaStore};
use s3s::crypto::{Checksum as _, Md5};
use s3s::dto::{
    AbortMultipartUploadInput, AbortMultipartUploadOutput, ChecksumAlgorithm, ChecksumType,
    CompleteMultipartUploadInput, CompleteMultipartUploadOutput, CopyPartResult, CopySource,
    CreateMultipartUploadInput, CreateMultipartUploadOutput, ETag, ListMultipartUploadsInput,
    ListMultipartUploadsOutput, ListPartsInput, ListPartsOutput, Part, StreamingBlob, UploadPartCopyInput,
    UploadPartCopyOutput, UploadPartInput, UploadPartOutput,
};
use s3s::{S3Request, S3Response, S3Result, s3_error};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::acl::object_acl_request;
use crate::blob::{BlobStore, new_id, sync_dir};
use crate::composite::{checksum_type, composite};
use crate::conditions::copy_source_preconditions;
use crate::convert::{HeaderFields, declared_checksums, parse_tagging_header, set_checksums, timestamp};
use crate::error;
use crate::full_object::{ChecksumKind, full_object};
use crate::gateway::{Gateway, now_millis};
use crate::ingest::{Declared, Ingested, ingest};
use crate::objects::{WriteOptions, check_key};

/// Every part but the last must be at least this big.
const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// S3's highest part number.
pub(crate) const MAX_PART_NUMBER: i32 = 10_000;

/// What is recorded about a received part, beside its bytes.
#[derive(Debug, Serialize, Deserialize)]
struct PartRecord {
    number: i32,
    size: u64,
    /// Hex MD5.
    etag: String,
    last_modified: i64,
    checksums: Checksums,
}

fn data_path(dir: &Path, number: i32) -> PathBuf {
    dir.join(format!("{number:05}.part"))
}

fn record_path(dir: &Path, number: i32) -> PathBuf {
    dir.join(format!("{number:05}.json"))
}

/// Where an upload keeps the checksum type it was created with: local, like its parts, since
/// only the node holding the parts completes it, and the replicated upload record (whose shape
/// the previous release reads) has no field for it. Not `.json`, so [`read_parts`] skips it.
fn checksum_kind_path(dir: &Path) -> PathBuf {
    dir.join("checksum-type")
}

/// The checksum type of the upload in `dir`; `None` when it has no algorithm, or was created
/// by a release that made only composite checksums (and wrote no such file).
async fn read_checksum_kind(dir: &Path) -> S3Result<Option<ChecksumKind>> {
    match tokio::fs::read_to_string(checksum_kind_path(dir)).await {
        Ok(text) => ChecksumKind::parse(&text)
            .map(Some)
            .ok_or_else(|| error::internal(format!("unreadable checksum type {text:?} in {}", dir.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(error::internal(e)),
    }
}

/// The checksum type of the upload in `dir` with `algorithm` (upper case): as written at its
/// creation, or, for an upload created before types were kept, S3's default for the algorithm.
async fn upload_kind(dir: &Path, algorithm: Option<&str>) -> S3Result<Option<ChecksumKind>> {
    if algorithm.is_none() {
        return Ok(None);
    }
    match read_checksum_kind(dir).await? {
        Some(kind) => Ok(Some(kind)),
        None => Ok(ChecksumKind::for_upload(algorithm, None).ok().flatten()),
    }
}

/// The parts received so far, by number.
async fn read_parts(dir: &Path) -> S3Result<Vec<PartRecord>> {
    let mut parts = Vec::new();
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(parts),
        Err(e) => return Err(error::internal(e)),
    };
    while let Some(entry) = entries.next_entry().await.map_err(error::internal)? {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "json") {
            let bytes = tokio::fs::read(&path).await.map_err(error::internal)?;
            parts.push(serde_json::from_slice::<PartRecord>(&bytes).map_err(error::internal)?);
        }
    }
    parts.sort_by_key(|p| p.number);
    Ok(parts)
}

/// Whether every checksum the client declared equals the stored one (a stored value the
/// client did not declare is fine; a declared value with nothing stored is not).
fn declared_matches(declared: &Checksums, stored: &Checksums) -> bool {
    let pairs = [
        (&declared.crc32, &stored.crc32),
        (&declared.crc32c, &stored.crc32c),
        (&declared.sha1, &stored.sha1),
        (&declared.sha256, &stored.sha256),
        (&declared.crc64nvme, &stored.crc64nvme),
    ];
    pairs.iter().all(|(declared, stored)| declared.as_deref().is_none_or(|d| stored.as_deref() == Some(d.trim())))
}

/// Only the value of `algorithm` (upper case) among `sums`: a part may carry more (an SDK's own
/// default CRC beside the upload's algorithm), S3 lists the upload's.
fn only_algorithm(sums: &Checksums, algorithm: &str) -> Checksums {
    let mut out = Checksums::default();
    match algorithm {
        "CRC32" => out.crc32.clone_from(&sums.crc32),
        "CRC32C" => out.crc32c.clone_from(&sums.crc32c),
        "SHA1" => out.sha1.clone_from(&sums.sha1),
        "SHA256" => out.sha256.clone_from(&sums.sha256),
        "CRC64NVME" => out.crc64nvme.clone_from(&sums.crc64nvme),
        _ => {}
    }
    out
}

fn strip_quotes(etag: &str) -> &str {
    etag.trim().trim_matches('"')
}

/// Parses `bytes=first-last` (both inclusive) of UploadPartCopy.
fn parse_copy_range(range: &str, size: u64) -> S3Result<std::ops::Range<u64>> {
    let invalid =
        || s3_error!(InvalidArgument, "The x-amz-copy-source-range value must be of the form bytes=first-last");
    let (first, last) = range.strip_prefix("bytes=").and_then(|r| r.split_once('-')).ok_or_else(invalid)?;
    let first: u64 = first.parse().map_err(|_| invalid())?;
    let last: u64 = last.parse().map_err(|_| invalid())?;
    if first > last || last >= size {
        return Err(s3_error!(InvalidRange, "The requested range is not satisfiable"));
    }
    Ok(first..last + 1)
}

impl Gateway {
    /// The upload, checked to belong to this bucket and key and to keep its parts here.
    async fn upload_here(&self, bucket: &str, key: &str, upload_id: &str) -> S3Result<(MultipartUpload, PathBuf)> {
        let upload = self
            .read_through(|m: &MetaStore| m.upload(upload_id))
            .await?
            .filter(|u| u.bucket == bucket && u.key == key)
            .ok_or_else(|| s3_error!(NoSuchUpload))?;
        if upload.node != self.meta.node_id() {
            return Err(s3_error!(
                InvalidRequest,
                "this upload was started on another region's node; send its parts there"
            ));
        }
        let dir = self.blobs.upload_dir(upload_id).map_err(|_| s3_error!(NoSuchUpload))?;
        Ok((upload, dir))
    }

    /// Makes a received part durable: its bytes, then its record.
    async fn store_part(&self, dir: &Path, number: i32, ingested: Ingested) -> S3Result<PartRecord> {
        if !(1..=MAX_PART_NUMBER).contains(&number) {
            return Err(s3_error!(InvalidArgument, "Part number must be an integer between 1 and {MAX_PART_NUMBER}"));
        }
        let record = PartRecord {
            number,
            size: ingested.size,
            etag: ingested.etag(),
            last_modified: now_millis(),
            checksums: ingested.checksums.clone(),
        };
        let writer = ingested.received.into_writer(&*self.blobs).await.map_err(error::blob_io)?;
        self.blobs.commit_to(writer, &data_path(dir, number)).await.map_err(error::internal)?;
        let bytes = serde_json::to_vec(&record).map_err(error::internal)?;
        let mut writer = self.blobs.create().await.map_err(error::internal)?;
        writer.write(&bytes).await.map_err(error::internal)?;
        self.blobs.commit_to(writer, &record_path(dir, number)).await.map_err(error::internal)?;
        Ok(record)
    }

    pub(crate) async fn create_multipart_upload_op(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let origin = self.origin_of(&req);
        let mut input = req.input;
        check_key(&input.key)?;
        self.bucket_for_write(&input.bucket).await?;
        let acl = self.new_object_acl(&input.bucket, &origin, object_acl_request!(input))?;
        let tags = input.tagging.as_deref().map(parse_tagging_header).transpose()?.unwrap_or_default();
        // Every part computes this algorithm: an unknown one must fail here, not at completion.
        let algorithm = input.checksum_algorithm.as_ref().map(|a| a.as_str().to_ascii_uppercase());
        if let Some(algorithm) = &algorithm
            && !["CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME"].contains(&algorithm.as_str())
        {
            return Err(s3_error!(InvalidRequest, "unsupported checksum algorithm {algorithm}"));
        }
        // COMPOSITE or FULL_OBJECT, as S3 allows them per algorithm (400 InvalidRequest else).
        let kind =
            ChecksumKind::for_upload(algorithm.as_deref(), input.checksum_type.as_ref().map(ChecksumType::as_str))
                .map_err(|e| s3_error!(InvalidRequest, "{e}"))?;
        let lock = crate::object_lock::lock_from_headers(
            input.object_lock_mode.as_ref(),
            input.object_lock_retain_until_date.as_ref(),
            input.object_lock_legal_hold_status.as_ref(),
        )?;
        self.check_lock_request(&input.bucket, lock.as_ref())?;
        let upload = MultipartUpload {
            id: new_id(),
            bucket: input.bucket.clone(),
            key: input.key.clone(),
            initiated: now_millis(),
            node: self.meta.node_id(),
            headers: HeaderFields {
                content_type: input.content_type,
                content_disposition: input.content_disposition,
                content_encoding: input.content_encoding,
                content_language: input.content_language,
                cache_control: input.cache_control,
                expires: input.expires,
                metadata: input.metadata,
            }
            .into_stored()?,
            tags,
            checksum_algorithm: input.checksum_algorithm.as_ref().map(|a| a.as_str().to_owned()),
        };
        let dir = self.blobs.upload_dir(&upload.id).map_err(error::internal)?;
        tokio::fs::create_dir_all(&dir).await.map_err(error::internal)?;
        if let Some(kind) = kind {
            // Durable before the upload exists for anyone: completion must find it.
            let mut writer = self.blobs.create().await.map_err(error::internal)?;
            writer.write(kind.as_str().as_bytes()).await.map_err(error::internal)?;
            self.blobs.commit_to(writer, &checksum_kind_path(&dir)).await.map_err(error::internal)?;
        }
        let id = upload.id.clone();
        self.commit(self.with_requested_acl(crate::object_lock::with_lock(Command::CreateUpload(upload), lock), acl)?)
            .await?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(id),
            checksum_algorithm: input.checksum_algorithm,
            checksum_type: kind.map(|k| ChecksumType::from_static(k.as_str())),
            ..Default::default()
        }))
    }

    pub(crate) async fn upload_part_op(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let input = req.input;
        let (upload, dir) = self.upload_here(&input.bucket, &input.key, &input.upload_id).await?;
        let declared = Declared {
            content_md5: input.content_md5,
            checksums: declared_checksums!(input),
            algorithm: input.checksum_algorithm.map(|a| a.as_str().to_owned()),
            // Computed for every part even when the client sends none, as S3 does: completion
            // needs it from each part for the composite checksum.
            upload_algorithm: upload.checksum_algorithm,
            length: input.content_length,
        };
        let ingested = ingest(&*self.blobs, input.body, declared, req.trailing_headers).await?;
        let record = self.store_part(&dir, input.part_number, ingested).await?;
        let mut output = UploadPartOutput { e_tag: Some(ETag::Strong(record.etag)), ..Default::default() };
        set_checksums!(output, &record.checksums);
        Ok(S3Response::new(output))
    }

    pub(crate) async fn upload_part_copy_op(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let input = req.input;
        let (upload, dir) = self.upload_here(&input.bucket, &input.key, &input.upload_id).await?;
        let CopySource::Bucket { bucket: src_bucket, key: src_key, version_id: src_version } = &input.copy_source
        else {
            return Err(s3_error!(NotImplemented, "access point copy sources are not supported"));
        };
        let found = self.copy_source_version(src_bucket, src_key, src_version.as_deref()).await?;
        let (source, copy_source_version_id) = (found.meta, found.version_id);
        copy_source_preconditions!(input).check_copy_source(&source)?;
        let range = match &input.copy_source_range {
            Some(range) => parse_copy_range(range, source.size)?,
            None => 0..source.size,
        };
        let body = if let Some(inline) = &source.inline {
            let slice = inline.get(range.start as usize..range.end as usize).unwrap_or_default();
            StreamingBlob::from(s3s::Body::from(bytes::Bytes::copy_from_slice(slice)))
        } else {
            match self.blobs.open(&source.blob).await.map_err(error::internal)? {
                Some(mut file) => {
                    file.seek(std::io::SeekFrom::Start(range.start)).await.map_err(error::internal)?;
                    let reader = file.take(range.end - range.start);
                    StreamingBlob::wrap(tokio_util::io::ReaderStream::with_capacity(reader, 256 * 1024))
                }
                None => self.stream_from_holder(&source, range.clone()).await?,
            }
        };
        let declared = Declared { upload_algorithm: upload.checksum_algorithm, ..Default::default() };
        let ingested = ingest(&*self.blobs, Some(body), declared, None).await?;
        let record = self.store_part(&dir, input.part_number, ingested).await?;
        let mut result = CopyPartResult {
            e_tag: Some(ETag::Strong(record.etag)),
            last_modified: Some(timestamp(record.last_modified)),
            ..Default::default()
        };
        set_checksums!(result, &record.checksums);
        Ok(S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some(result),
            copy_source_version_id,
            ..Default::default()
        }))
    }

    pub(crate) async fn list_parts_op(&self, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
        let input = req.input;
        let (upload, dir) = self.upload_here(&input.bucket, &input.key, &input.upload_id).await?;
        let algorithm = upload.checksum_algorithm.as_deref().map(str::to_ascii_uppercase);
        let kind = upload_kind(&dir, algorithm.as_deref()).await?;
        let marker = input.part_number_marker.unwrap_or(0);
        let max_parts = input.max_parts.unwrap_or(1000).clamp(0, 1000);
        let mut parts: Vec<PartRecord> = read_parts(&dir).await?.into_iter().filter(|p| p.number > marker).collect();
        let truncated = parts.len() > usize::try_from(max_parts).unwrap_or(0);
        parts.truncate(usize::try_from(max_parts).unwrap_or(0));
        let next = parts.last().filter(|_| truncated).map(|p| p.number);
        let parts = parts
            .into_iter()
            .map(|p| {
                let mut part = Part {
                    part_number: Some(p.number),
                    size: i64::try_from(p.size).ok(),
                    e_tag: Some(ETag::Strong(p.etag.clone())),
                    last_modified: Some(timestamp(p.last_modified)),
                    ..Default::default()
                };
                set_checksums!(part, &p.checksums);
                part
            })
            .collect();
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            part_number_marker: input.part_number_marker,
            next_part_number_marker: next,
            max_parts: Some(max_parts),
            is_truncated: Some(truncated),
            parts: Some(parts),
            checksum_algorithm: upload.checksum_algorithm.map(ChecksumAlgorithm::from),
            checksum_type: kind.map(|k| ChecksumType::from_static(k.as_str())),
            ..Default::default()
        }))
    }

    pub(crate) async fn list_multipart_uploads_op(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let input = req.input;
        self.bucket(&input.bucket).await?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let max_uploads = input.max_uploads.unwrap_or(1000).clamp(0, 1000);
        let mut uploads = self.meta.uploads(&input.bucket).map_err(error::store)?;
        uploads.retain(|u| u.key.starts_with(&prefix));
        uploads.sort_by(|a, b| (&a.key, a.initiated, &a.id).cmp(&(&b.key, b.initiated, &b.id)));
        if let Some(marker) = input.key_marker.as_deref().filter(|m| !m.is_empty()) {
            let upload_marker = input.upload_id_marker.as_deref();
            let mut past_upload_marker = upload_marker.is_none();
            uploads.retain(|u| {
                if u.key.as_str() > marker {
                    return true;
                }
                if u.key.as_str() == marker && !past_upload_marker {
                    if Some(u.id.as_str()) == upload_marker {
                        past_upload_marker = true;
                    }
                    return false;
                }
                false
            });
        }
        let limit = usize::try_from(max_uploads).unwrap_or(0);
        let truncated = uploads.len() > limit;
        uploads.truncate(limit);
        let last = uploads.last().filter(|_| truncated).map(|u| (u.key.clone(), u.id.clone()));
        let uploads = uploads
            .into_iter()
            .map(|u| s3s::dto::MultipartUpload {
                key: Some(u.key),
                upload_id: Some(u.id),
                initiated: Some(timestamp(u.initiated)),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: input.prefix,
            key_marker: input.key_marker,
            upload_id_marker: input.upload_id_marker,
            max_uploads: Some(max_uploads),
            is_truncated: Some(truncated),
            next_key_marker: last.as_ref().map(|(k, _)| k.clone()),
            next_upload_id_marker: last.map(|(_, id)| id),
            uploads: Some(uploads),
            ..Default::default()
        }))
    }

    pub(crate) async fn complete_multipart_upload_op(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let origin = self.origin_of(&req);
        let input = req.input;
        let (upload, dir) = self.upload_here(&input.bucket, &input.key, &input.upload_id).await?;
        let condition = crate::objects::write_condition(input.if_match.as_ref(), input.if_none_match.as_ref())?;
        // Nodes of the previous release remove the upload before judging a condition.
        if condition != meridian_raft::WriteCondition::None {
            self.require_edge_format()?;
        }
        let requested = input.multipart_upload.and_then(|m| m.parts).unwrap_or_default();
        if requested.is_empty() {
            return Err(s3_error!(MalformedXML, "You must specify at least one part"));
        }
        // Order first: a list out of order is InvalidPartOrder whatever else is wrong with it.
        let mut numbers = Vec::with_capacity(requested.len());
        for part in &requested {
            let number = part.part_number.ok_or_else(|| s3_error!(InvalidPart, "a part has no part number"))?;
            if numbers.last().is_some_and(|previous| *previous >= number) {
                return Err(s3_error!(InvalidPartOrder, "The list of parts was not in ascending order."));
            }
            numbers.push(number);
        }
        let algorithm = upload.checksum_algorithm.as_deref().map(str::to_ascii_uppercase);
        let kind = upload_kind(&dir, algorithm.as_deref()).await?.unwrap_or(ChecksumKind::Composite);
        if let Some(asked) = input.checksum_type.as_ref().map(ChecksumType::as_str)
            && algorithm.is_some()
            && asked != kind.as_str()
        {
            return Err(s3_error!(
                InvalidRequest,
                "The upload was created using the {} checksum mode. The complete request must use the same checksum mode.",
                kind.as_str()
            ));
        }
        let received = read_parts(&dir).await?;
        let mut chosen = Vec::with_capacity(requested.len());
        for (i, (part, number)) in requested.iter().zip(numbers).enumerate() {
            let record = received
                .iter()
                .find(|r| r.number == number)
                .ok_or_else(|| s3_error!(InvalidPart, "part {number} was not uploaded"))?;
            let etag = part.e_tag.as_ref().map(|e| strip_quotes(e.value()).to_owned());
            if etag.as_deref() != Some(record.etag.as_str()) {
                return Err(s3_error!(InvalidPart, "part {number}'s ETag does not match"));
            }
            let given = declared_checksums!(part.clone());
            // S3 needs each part's checksum of a composite upload in the list (what the
            // composite is made of); a full-object upload's parts may go without.
            if let Some(algorithm) = algorithm.as_deref()
                && kind == ChecksumKind::Composite
                && only_algorithm(&given, algorithm) == Checksums::default()
            {
                return Err(s3_error!(
                    InvalidRequest,
                    "The upload was created using a {} checksum. The complete request must include the checksum for each part. It was missing for part {number} in the request.",
                    algorithm.to_ascii_lowercase()
                ));
            }
            if !declared_matches(&given, &record.checksums) {
                return Err(s3_error!(InvalidPart, "part {number}'s checksum does not match the uploaded part"));
            }
            if record.size < MIN_PART_SIZE && i + 1 < requested.len() {
                return Err(s3_error!(
                    EntityTooSmall,
                    "Your proposed upload is smaller than the minimum allowed object size."
                ));
            }
            chosen.push(record);
        }

        // The multipart ETag: MD5 of the concatenated binary part MD5s, then "-N".
        let mut md5_of_md5s = Md5::new();
        for record in &chosen {
            md5_of_md5s.update(&hex::decode(&record.etag).map_err(error::internal)?);
        }
        let etag = format!("{}-{}", hex::encode(md5_of_md5s.finalize()), chosen.len());
        let checksums = match (kind, &algorithm) {
            (ChecksumKind::FullObject, Some(algorithm)) => {
                let parts: Vec<(i32, &Checksums, u64)> =
                    chosen.iter().map(|r| (r.number, &r.checksums, r.size)).collect();
                full_object(algorithm, &parts).map_err(|e| s3_error!(InvalidPart, "{e}"))?
            }
            _ => {
                let parts: Vec<(i32, &Checksums)> = chosen.iter().map(|r| (r.number, &r.checksums)).collect();
                composite(algorithm.as_deref(), &parts).map_err(|e| s3_error!(InvalidPart, "{e}"))?
            }
        };
        let whole = Checksums {
            crc32: input.checksum_crc32.clone(),
            crc32c: input.checksum_crc32c.clone(),
            sha1: input.checksum_sha1.clone(),
            sha256: input.checksum_sha256.clone(),
            crc64nvme: input.checksum_crc64nvme.clone(),
        };
        // A whole-object value that differs: BadDigest, and the upload stays for a retry.
        if !declared_matches(&whole, &checksums) {
            return Err(s3_error!(
                BadDigest,
                "The {} checksum you specified did not match the calculated checksum.",
                kind.as_str()
            ));
        }

        let writer = self.blobs.create().await.map_err(error::internal)?;
        let sources: Vec<PathBuf> = chosen.iter().map(|r| data_path(&dir, r.number)).collect();
        let target = writer.path().to_path_buf();
        let size = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
            let mut out = std::fs::OpenOptions::new().append(true).open(target)?;
            let mut total = 0;
            for source in sources {
                // std::io::copy between files uses copy_file_range: no bytes pass through us.
                total += std::io::copy(&mut std::fs::File::open(source)?, &mut out)?;
            }
            Ok(total)
        })
        .await
        .map_err(error::internal)?
        .map_err(error::internal)?;
        let blob = new_id();
        self.blobs.commit(writer, &blob).await.map_err(error::blob_io)?;

        let mut meta = self.new_version(blob, size, etag.clone(), upload.headers.clone());
        meta.tags = upload.tags.clone();
        meta.checksums.clone_from(&checksums);
        meta.parts =
            chosen.iter().map(|r| PartSummary { number: r.number, size: r.size, etag: r.etag.clone() }).collect();
        // Each part's checksum of the upload's algorithm, for GetObjectAttributes' ObjectParts
        // (S3 lists parts only for an object with a checksum).
        let part_checksums = algorithm.as_deref().map(|algorithm| PartChecksums {
            parts: chosen.iter().map(|r| only_algorithm(&r.checksums, algorithm)).collect(),
        });
        let upload_id = Some(input.upload_id.clone());
        // A refused condition leaves the upload in place (the same entry would have removed
        // it), so the client may complete it again, as with AWS.
        // The ACL the upload asked for is moved to the object by the state machine.
        let version_id = self
            .commit_new_version(
                &input.bucket,
                &input.key,
                meta,
                WriteOptions { condition, completes_upload: upload_id, part_checksums, ..Default::default() },
                origin,
            )
            .await?;
        tracing::info!(bucket = %input.bucket, key = %input.key, size, parts = chosen.len(), "multipart upload completed");
        let mut output = CompleteMultipartUploadOutput {
            location: Some(format!("/{}/{}", input.bucket, input.key)),
            bucket: Some(input.bucket),
            key: Some(input.key),
            e_tag: Some(ETag::Strong(etag)),
            version_id,
            checksum_type: checksum_type(&checksums),
            ..Default::default()
        };
        set_checksums!(output, &checksums);
        Ok(S3Response::new(output))
    }

    pub(crate) async fn abort_multipart_upload_op(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let input = req.input;
        self.read_through(|m: &MetaStore| m.upload(&input.upload_id))
            .await?
            .filter(|u| u.bucket == input.bucket && u.key == input.key)
            .ok_or_else(|| s3_error!(NoSuchUpload))?;
        self.commit(Command::AbortUpload { id: input.upload_id }).await?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    /// Removes an upload's parts directory (after completion or abort).
    pub(crate) async fn drop_upload_parts(&self, upload_id: &str) -> std::io::Result<()> {
        let dir = self.blobs.upload_dir(upload_id)?;
        match tokio::fs::remove_dir_all(&dir).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => sync_dir(&self.blobs.parts_root()).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_copy_range;

    #[test]
    fn copy_ranges_are_inclusive_and_bounded() {
        assert_eq!(parse_copy_range("bytes=0-9", 100).ok(), Some(0..10));
        assert!(parse_copy_range("bytes=5-100", 100).is_err());
        assert!(parse_copy_range("bytes=9-3", 100).is_err());
        assert!(parse_copy_range("0-9", 100).is_err());
    }
}
