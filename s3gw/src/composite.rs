//! Whole-object checksums of multipart uploads, the way S3 makes them (`COMPOSITE`): the
//! checksum of the concatenated raw part checksums, then `-N` for N parts.
//!
//! The value goes into the object's stored [`Checksums`] like any other checksum; the `-N`
//! suffix is what marks it as composite, so no new stored field is needed and nodes of the
//! previous release read it unchanged.

use base64::Engine as _;
use s3s::crypto::{Checksum as _, Crc32, Crc32c, Sha1, Sha256};
use s3s::dto::ChecksumType;

use meridian_raft::model::Checksums;

/// Why no composite checksum can be made from an upload's parts.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CompositeError {
    /// A part lacks the checksum of the upload's algorithm (it was received before the
    /// algorithm was known, or its stored value is damaged).
    #[error("part {number} has no valid {algorithm} checksum")]
    MissingPartChecksum {
        /// The part number, for the client's error message.
        number: i32,
        /// The upload's algorithm.
        algorithm: String,
    },
}

/// The composite checksum of `parts` (number and stored checksums, in upload order) for
/// `algorithm`, as the [`Checksums`] to store with the object. `None` for an algorithm S3 has
/// no composite form of (CRC64NVME is full-object only) or none at all.
pub(crate) fn composite(algorithm: Option<&str>, parts: &[(i32, &Checksums)]) -> Result<Checksums, CompositeError> {
    let Some(algorithm) = algorithm.map(str::to_ascii_uppercase) else {
        return Ok(Checksums::default());
    };
    let pick: fn(&Checksums) -> &Option<String> = match algorithm.as_str() {
        "CRC32" => |s| &s.crc32,
        "CRC32C" => |s| &s.crc32c,
        "SHA1" => |s| &s.sha1,
        "SHA256" => |s| &s.sha256,
        _ => return Ok(Checksums::default()),
    };
    let mut concatenated = Vec::with_capacity(parts.len() * 32);
    for (number, sums) in parts {
        let raw = pick(sums)
            .as_deref()
            .and_then(|value| base64::engine::general_purpose::STANDARD.decode(value.trim()).ok())
            .ok_or_else(|| CompositeError::MissingPartChecksum { number: *number, algorithm: algorithm.clone() })?;
        concatenated.extend_from_slice(&raw);
    }
    let digest: Vec<u8> = match algorithm.as_str() {
        "CRC32" => Crc32::checksum(&concatenated).as_ref().to_vec(),
        "CRC32C" => Crc32c::checksum(&concatenated).as_ref().to_vec(),
        "SHA1" => Sha1::checksum(&concatenated).as_ref().to_vec(),
        _ => Sha256::checksum(&concatenated).as_ref().to_vec(),
    };
    let value = Some(format!("{}-{}", base64::engine::general_purpose::STANDARD.encode(digest), parts.len()));
    let mut sums = Checksums::default();
    match algorithm.as_str() {
        "CRC32" => sums.crc32 = value,
        "CRC32C" => sums.crc32c = value,
        "SHA1" => sums.sha1 = value,
        _ => sums.sha256 = value,
    }
    Ok(sums)
}

/// What kind of checksum an object carries, for `x-amz-checksum-type`: composite values end
/// in `-N` (base64 never contains `-`), anything else covers the whole object.
pub(crate) fn checksum_type(sums: &Checksums) -> Option<ChecksumType> {
    let values = [&sums.crc32, &sums.crc32c, &sums.sha1, &sums.sha256, &sums.crc64nvme];
    let present: Vec<&str> = values.iter().filter_map(|v| v.as_deref()).collect();
    if present.is_empty() {
        return None;
    }
    let composite = present.iter().any(|v| v.contains('-'));
    Some(ChecksumType::from_static(if composite { ChecksumType::COMPOSITE } else { ChecksumType::FULL_OBJECT }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn composite_is_the_checksum_of_part_checksums_with_the_part_count() {
        let a = Checksums { crc32: Some(b64(&Crc32::checksum(b"first part"))), ..Default::default() };
        let b = Checksums { crc32: Some(b64(&Crc32::checksum(b"second"))), ..Default::default() };
        let got = composite(Some("crc32"), &[(1, &a), (2, &b)]).ok().and_then(|s| s.crc32);
        let mut raw = Crc32::checksum(b"first part").to_vec();
        raw.extend_from_slice(&Crc32::checksum(b"second"));
        assert_eq!(got, Some(format!("{}-2", b64(&Crc32::checksum(&raw)))));
        assert_eq!(
            checksum_type(&Checksums { crc32: got, ..Default::default() }).map(|t| t.as_str().to_owned()),
            Some("COMPOSITE".into())
        );
    }

    #[test]
    fn a_part_without_the_algorithm_is_an_error_and_no_algorithm_is_no_checksum() {
        let a = Checksums::default();
        assert!(composite(Some("SHA256"), &[(1, &a)]).is_err());
        assert_eq!(composite(None, &[(1, &a)]).ok(), Some(Checksums::default()));
        assert_eq!(composite(Some("CRC64NVME"), &[(1, &a)]).ok(), Some(Checksums::default()));
    }
}
