//! Receiving an object's bytes: stream the body into a temp blob, hashing as it goes, and
//! verify every digest the client sent before anything becomes visible.
//!
//! A body that fails (client gone, bad chunk signature) or a digest that does not match drops
//! the [`BlobWriter`], which deletes the temp file: no trace is left.

use base64::Engine as _;
use futures::StreamExt;
use s3s::checksum::ChecksumHasher;
use s3s::crypto::{Checksum as _, Md5};
use s3s::dto::StreamingBlob;
use s3s::{S3Error, S3ErrorCode, S3Result, TrailingHeaders, s3_error};

use meridian_raft::model::Checksums;

use crate::blob::{BlobStore, BlobWriter};
use crate::error::blob_io;

/// What the client declared about the body it is sending.
#[derive(Debug, Default)]
pub(crate) struct Declared {
    /// `Content-MD5`, base64.
    pub(crate) content_md5: Option<String>,
    /// `x-amz-checksum-*` headers, base64.
    pub(crate) checksums: Checksums,
    /// `x-amz-sdk-checksum-algorithm` / `x-amz-checksum-algorithm`: compute this one and expect
    /// its value in the header or the trailer.
    pub(crate) algorithm: Option<String>,
    /// The algorithm of the multipart upload a part belongs to: computed as well, whatever
    /// the client declared (an SDK may add its own default, e.g. a CRC32 trailer), because
    /// completion makes the composite checksum from it.
    pub(crate) upload_algorithm: Option<String>,
    /// `Content-Length`, when sent.
    pub(crate) length: Option<i64>,
}

/// Most bytes a body of unknown length (`Transfer-Encoding: chunked` without
/// `Content-Length`, see [`crate::UnsizedBody`]) may bring: S3's largest single PUT, 5 GiB.
pub const MAX_UNSIZED_BODY: u64 = 5 * 1024 * 1024 * 1024;

/// Bodies up to this size are kept in memory and stored inline in the metadata entry.
pub(crate) const INLINE_MAX: usize = 16 * 1024;

/// Where a received body is.
pub(crate) enum Received {
    /// Small: in memory, to be stored inline.
    Inline(Vec<u8>),
    /// Large: in a temp blob, ready to commit.
    Spilled(BlobWriter),
}

impl Received {
    /// The body as a temp blob (writing a small one out), for callers that need a file.
    pub(crate) async fn into_writer(self, blobs: &dyn BlobStore) -> std::io::Result<BlobWriter> {
        match self {
            Received::Spilled(writer) => Ok(writer),
            Received::Inline(bytes) => {
                let mut writer = blobs.create().await?;
                writer.write(&bytes).await?;
                Ok(writer)
            }
        }
    }
}

/// A body received and verified.
pub(crate) struct Ingested {
    /// The bytes.
    pub(crate) received: Received,
    /// Bytes received.
    pub(crate) size: u64,
    /// Raw MD5 of the bytes.
    pub(crate) md5: [u8; 16],
    /// The verified checksums to store with the object.
    pub(crate) checksums: Checksums,
}

impl Ingested {
    /// The single-part ETag: hex MD5.
    pub(crate) fn etag(&self) -> String {
        hex::encode(self.md5)
    }
}

/// The error AWS answers for a body whose `x-amz-checksum-*` does not match: 400 `BadDigest`,
/// the same code as a wrong `Content-MD5`, so clients retry or report it the same way.
fn checksum_mismatch(algorithm: &str) -> S3Error {
    S3Error::with_message(
        S3ErrorCode::BadDigest,
        format!("The {algorithm} you specified did not match the calculated checksum."),
    )
}

/// Every checksum S3 knows: its name, its header, and the length of its raw digest.
const ALGORITHMS: [(&str, &str, usize); 5] = [
    ("CRC32", "x-amz-checksum-crc32", 4),
    ("CRC32C", "x-amz-checksum-crc32c", 4),
    ("SHA1", "x-amz-checksum-sha1", 20),
    ("SHA256", "x-amz-checksum-sha256", 32),
    ("CRC64NVME", "x-amz-checksum-crc64nvme", 8),
];

/// The declared values in the order of [`ALGORITHMS`].
fn in_order(sums: &Checksums) -> [&Option<String>; 5] {
    [&sums.crc32, &sums.crc32c, &sums.sha1, &sums.sha256, &sums.crc64nvme]
}

/// Refuses a declared checksum that is not base64 of a digest of the right length, as AWS
/// does (400 `InvalidRequest`): such a value can never match, and telling the client it is
/// malformed is more useful than `BadDigest` after the whole body was received.
fn check_well_formed(sums: &Checksums) -> S3Result<()> {
    for ((_, header, length), value) in ALGORITHMS.iter().zip(in_order(sums)) {
        if let Some(value) = value {
            let decoded = base64::engine::general_purpose::STANDARD.decode(value.trim());
            if decoded.map(|d| d.len()).ok() != Some(*length) {
                return Err(s3_error!(InvalidRequest, "Value for {header} header is invalid."));
            }
        }
    }
    Ok(())
}

/// Sets up a hasher for every algorithm the client sent or asked for.
fn hasher_for(declared: &Declared) -> S3Result<ChecksumHasher> {
    let mut hasher = ChecksumHasher::default();
    let sums = &declared.checksums;
    let algorithm = declared.algorithm.as_deref().map(str::to_ascii_uppercase);
    let upload_algorithm = declared.upload_algorithm.as_deref().map(str::to_ascii_uppercase);
    let wants = |name: &str, value: &Option<String>| {
        value.is_some() || algorithm.as_deref() == Some(name) || upload_algorithm.as_deref() == Some(name)
    };
    if wants("CRC32", &sums.crc32) {
        hasher.crc32 = Some(s3s::crypto::Crc32::new());
    }
    if wants("CRC32C", &sums.crc32c) {
        hasher.crc32c = Some(s3s::crypto::Crc32c::new());
    }
    if wants("SHA1", &sums.sha1) {
        hasher.sha1 = Some(s3s::crypto::Sha1::new());
    }
    if wants("SHA256", &sums.sha256) {
        hasher.sha256 = Some(s3s::crypto::Sha256::new());
    }
    if wants("CRC64NVME", &sums.crc64nvme) {
        hasher.crc64nvme = Some(s3s::crypto::Crc64Nvme::new());
    }
    if let Some(name) = algorithm.as_deref()
        && !ALGORITHMS.iter().any(|(known, _, _)| *known == name)
    {
        return Err(s3_error!(InvalidArgument, "unsupported checksum algorithm {name}"));
    }
    Ok(hasher)
}

/// Streams `body` into a new temp blob and verifies it against what the client declared
/// (headers, then streaming trailers).
pub(crate) async fn ingest(
    blobs: &dyn BlobStore,
    body: Option<StreamingBlob>,
    declared: Declared,
    trailers: Option<TrailingHeaders>,
) -> S3Result<Ingested> {
    let mut buffer = Vec::new();
    let mut writer: Option<BlobWriter> = None;
    let mut md5 = Md5::new();
    check_well_formed(&declared.checksums)?;
    let mut hasher = hasher_for(&declared)?;
    let mut size = 0u64;
    if let Some(mut body) = body {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                tracing::info!(error = %e, received = size, "request body failed; upload discarded");
                s3_error!(IncompleteBody, "the request body could not be read completely")
            })?;
            if declared.length.is_none() && size + chunk.len() as u64 > MAX_UNSIZED_BODY {
                return Err(s3_error!(EntityTooLarge, "Your proposed upload exceeds the maximum allowed object size."));
            }
            md5.update(&chunk);
            hasher.update(&chunk);
            match writer.as_mut() {
                Some(writer) => writer.write(&chunk).await.map_err(blob_io)?,
                None if buffer.len() + chunk.len() <= INLINE_MAX => buffer.extend_from_slice(&chunk),
                None => {
                    // Too big to inline: move what we have to a temp blob and stream on.
                    let mut spilled = blobs.create().await.map_err(blob_io)?;
                    spilled.write(&buffer).await.map_err(blob_io)?;
                    spilled.write(&chunk).await.map_err(blob_io)?;
                    buffer = Vec::new();
                    writer = Some(spilled);
                }
            }
            size += chunk.len() as u64;
        }
    }
    if let Some(length) = declared.length
        && u64::try_from(length).ok() != Some(size)
    {
        return Err(s3_error!(IncompleteBody, "received {size} bytes, Content-Length said {length}"));
    }
    let md5 = md5.finalize();
    if let Some(expected) = &declared.content_md5 {
        let expected = base64::engine::general_purpose::STANDARD
            .decode(expected.trim())
            .map_err(|_| s3_error!(InvalidDigest, "Content-MD5 is not valid base64"))?;
        if expected.as_slice() != md5.as_slice() {
            return Err(s3_error!(BadDigest, "The Content-MD5 you specified did not match what we received."));
        }
    }

    let mut expected = declared.checksums;
    if let Some(trailers) = trailers.and_then(|t| t.take()) {
        let read = |name: &str| trailers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let trailer_sums = Checksums {
            crc32: read("x-amz-checksum-crc32"),
            crc32c: read("x-amz-checksum-crc32c"),
            sha1: read("x-amz-checksum-sha1"),
            sha256: read("x-amz-checksum-sha256"),
            crc64nvme: read("x-amz-checksum-crc64nvme"),
        };
        check_well_formed(&trailer_sums)?;
        expected = merge(expected, trailer_sums);
    }
    let computed = hasher.finalize();
    let computed_sums = [
        &computed.checksum_crc32,
        &computed.checksum_crc32c,
        &computed.checksum_sha1,
        &computed.checksum_sha256,
        &computed.checksum_crc64nvme,
    ];
    for (((name, _, _), expected), computed) in ALGORITHMS.iter().zip(in_order(&expected)).zip(computed_sums) {
        if let Some(expected) = expected
            && computed.as_deref() != Some(expected.trim())
        {
            return Err(checksum_mismatch(name));
        }
    }
    // Store what was verified, plus the declared algorithm's value even when the client
    // sent none to compare with (S3 then computes and keeps it).
    let checksums = Checksums {
        crc32: computed.checksum_crc32,
        crc32c: computed.checksum_crc32c,
        sha1: computed.checksum_sha1,
        sha256: computed.checksum_sha256,
        crc64nvme: computed.checksum_crc64nvme,
    };
    let received = match writer {
        Some(writer) => Received::Spilled(writer),
        None => Received::Inline(buffer),
    };
    Ok(Ingested { received, size, md5, checksums })
}

/// Values from `b` fill the gaps of `a`.
fn merge(a: Checksums, b: Checksums) -> Checksums {
    Checksums {
        crc32: a.crc32.or(b.crc32),
        crc32c: a.crc32c.or(b.crc32c),
        sha1: a.sha1.or(b.sha1),
        sha256: a.sha256.or(b.sha256),
        crc64nvme: a.crc64nvme.or(b.crc64nvme),
    }
}
