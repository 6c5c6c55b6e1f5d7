//! Whole-object (`FULL_OBJECT`) checksums of multipart uploads: the CRC of the whole body,
//! combined from each part's CRC and length, never by reading the assembled bytes again.
//!
//! A CRC with equal initial value and final XOR (CRC-32, CRC-32C and CRC-64/NVME all start
//! from and end with all ones) satisfies `crc(A ++ B) = shift(crc(A), len(B)) ^ crc(B)`, where
//! `shift` multiplies by `x^(8·len(B))` modulo the polynomial: `crc_fast::checksum_combine` does
//! that in `O(log len)`. Only the CRCs have this property, which is why S3 refuses FULL_OBJECT
//! with SHA-1 or SHA-256 (see [`ChecksumKind::for_upload`]).

use base64::Engine as _;
use crc_fast::CrcAlgorithm;

use meridian_raft::model::Checksums;

/// How a multipart upload's whole-object checksum is made, as CreateMultipartUpload's
/// `x-amz-checksum-type` chose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChecksumKind {
    /// The checksum of the concatenated part checksums, then `-N` (see `composite`).
    Composite,
    /// The CRC of the whole object, combined from the parts' CRCs.
    FullObject,
}

/// Why an upload's checksum type or its whole-object checksum cannot be had, each answered as
/// AWS does (400 `InvalidRequest`, or `InvalidPart` for a part without its CRC).
#[derive(Debug, thiserror::Error)]
pub(crate) enum FullObjectError {
    /// `x-amz-checksum-type` without `x-amz-checksum-algorithm`.
    #[error("The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.")]
    TypeWithoutAlgorithm,
    /// A type that is neither `COMPOSITE` nor `FULL_OBJECT`.
    #[error("Value for x-amz-checksum-type header is invalid.")]
    UnknownType,
    /// A type S3 has no such checksum of for the algorithm (FULL_OBJECT SHA, COMPOSITE CRC64NVME).
    #[error("The {kind} checksum type cannot be used with the {algorithm} checksum algorithm.")]
    Unsupported {
        /// The type asked for, as S3 names it.
        kind: &'static str,
        /// The algorithm, in lower case as S3's message has it.
        algorithm: String,
    },
    /// A part lacks a valid CRC of the upload's algorithm.
    #[error("part {number} has no valid {algorithm} checksum")]
    MissingPartChecksum {
        /// The part number, for the client's error message.
        number: i32,
        /// The upload's algorithm.
        algorithm: &'static str,
    },
}

impl ChecksumKind {
    /// The kind of an upload created with `algorithm` (upper case) and `x-amz-checksum-type`
    /// `requested`: without a type, CRC-64/NVME is FULL_OBJECT (it has no composite form) and
    /// every other algorithm COMPOSITE, as S3 decides. `None`: no algorithm, no checksum.
    pub(crate) fn for_upload(
        algorithm: Option<&str>,
        requested: Option<&str>,
    ) -> Result<Option<Self>, FullObjectError> {
        let Some(algorithm) = algorithm else {
            return match requested {
                Some(_) => Err(FullObjectError::TypeWithoutAlgorithm),
                None => Ok(None),
            };
        };
        let crc = matches!(algorithm, "CRC32" | "CRC32C" | "CRC64NVME");
        let kind = match requested {
            None if algorithm == "CRC64NVME" => Self::FullObject,
            None => Self::Composite,
            Some("FULL_OBJECT") => Self::FullObject,
            Some("COMPOSITE") => Self::Composite,
            Some(_) => return Err(FullObjectError::UnknownType),
        };
        let refused = match kind {
            Self::FullObject if !crc => Some("FULL_OBJECT"),
            Self::Composite if algorithm == "CRC64NVME" => Some("COMPOSITE"),
            _ => None,
        };
        if let Some(kind) = refused {
            return Err(FullObjectError::Unsupported { kind, algorithm: algorithm.to_ascii_lowercase() });
        }
        Ok(Some(kind))
    }

    /// The name S3 gives the kind (`x-amz-checksum-type`).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Composite => s3s::dto::ChecksumType::COMPOSITE,
            Self::FullObject => s3s::dto::ChecksumType::FULL_OBJECT,
        }
    }

    /// Parses [`ChecksumKind::as_str`].
    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            s3s::dto::ChecksumType::COMPOSITE => Some(Self::Composite),
            s3s::dto::ChecksumType::FULL_OBJECT => Some(Self::FullObject),
            _ => None,
        }
    }
}

/// One CRC S3 makes FULL_OBJECT checksums with.
struct CrcSpec {
    /// The CRC as crc-fast names it.
    crc: CrcAlgorithm,
    /// Its S3 name, for errors.
    name: &'static str,
    /// Its field among stored checksums.
    field: fn(&mut Checksums) -> &mut Option<String>,
    /// Its width in bytes.
    width: usize,
}

/// The CRC of `algorithm` (upper case); `None` for a non-CRC algorithm.
fn crc_of(algorithm: &str) -> Option<CrcSpec> {
    let (crc, name, field, width): (_, _, fn(&mut Checksums) -> &mut Option<String>, _) = match algorithm {
        "CRC32" => (CrcAlgorithm::Crc32IsoHdlc, "CRC32", |s| &mut s.crc32, 4),
        "CRC32C" => (CrcAlgorithm::Crc32Iscsi, "CRC32C", |s| &mut s.crc32c, 4),
        "CRC64NVME" => (CrcAlgorithm::Crc64Nvme, "CRC64NVME", |s| &mut s.crc64nvme, 8),
        _ => return None,
    };
    Some(CrcSpec { crc, name, field, width })
}

/// The FULL_OBJECT checksum of an object made of `parts` (number, stored checksums, size in
/// bytes; in object order) for `algorithm` (upper case), as the [`Checksums`] to store with
/// it. Empty for an algorithm that is not a CRC (refused at creation).
pub(crate) fn full_object(algorithm: &str, parts: &[(i32, &Checksums, u64)]) -> Result<Checksums, FullObjectError> {
    let Some(CrcSpec { crc, name, field, width }) = crc_of(algorithm) else { return Ok(Checksums::default()) };
    let mut whole: Option<u64> = None;
    for (number, sums, size) in parts {
        let mut sums = (*sums).clone();
        let value = field(&mut sums)
            .as_deref()
            .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v.trim()).ok())
            .filter(|raw| raw.len() == width)
            .map(|raw| raw.iter().fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte)))
            .ok_or(FullObjectError::MissingPartChecksum { number: *number, algorithm: name })?;
        whole = Some(match whole {
            None => value,
            Some(before) => crc_fast::checksum_combine(crc, before, value, *size),
        });
    }
    // No part at all is refused before this (MalformedXML); the CRC of nothing is 0 anyway.
    let whole = whole.unwrap_or(0);
    let bytes = whole.to_be_bytes();
    let mut out = Checksums::default();
    *field(&mut out) = Some(base64::engine::general_purpose::STANDARD.encode(&bytes[8 - width..]));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3s::crypto::{Checksum as _, Crc32, Crc32c, Crc64Nvme};

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    /// Splits `body` at `cuts`, checksums each piece with `direct`, combines, and compares with
    /// `direct` of the whole body: the combination must equal a CRC of every byte.
    fn combined_equals_direct(algorithm: &str, direct: fn(&[u8]) -> String, body: &[u8], cuts: &[usize]) {
        let mut pieces = Vec::new();
        let mut start = 0;
        for &cut in cuts.iter().chain(std::iter::once(&body.len())) {
            pieces.push(&body[start..cut]);
            start = cut;
        }
        let sums: Vec<Checksums> = pieces
            .iter()
            .map(|piece| {
                let mut sums = Checksums::default();
                let field = crc_of(algorithm).expect("a CRC").field;
                *field(&mut sums) = Some(direct(piece));
                sums
            })
            .collect();
        let parts: Vec<(i32, &Checksums, u64)> =
            sums.iter().zip(&pieces).zip(1..).map(|((s, p), n)| (n, s, p.len() as u64)).collect();
        let mut got = full_object(algorithm, &parts).expect("combined");
        let field = crc_of(algorithm).expect("a CRC").field;
        assert_eq!(field(&mut got).clone(), Some(direct(body)), "{algorithm} of {} pieces", pieces.len());
    }

    #[test]
    fn combined_crcs_equal_the_crc_of_the_whole_body() {
        let body: Vec<u8> = (0u32..300_000).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let crc32: fn(&[u8]) -> String = |b| b64(&Crc32::checksum(b));
        let crc32c: fn(&[u8]) -> String = |b| b64(&Crc32c::checksum(b));
        let crc64: fn(&[u8]) -> String = |b| b64(&Crc64Nvme::checksum(b));
        for (algorithm, direct) in [("CRC32", crc32), ("CRC32C", crc32c), ("CRC64NVME", crc64)] {
            combined_equals_direct(algorithm, direct, &body, &[]);
            combined_equals_direct(algorithm, direct, &body, &[1]);
            combined_equals_direct(algorithm, direct, &body, &[100_000, 200_000]);
            // Uneven parts, a one-byte part, and an empty last part.
            combined_equals_direct(algorithm, direct, &body, &[7, 8, 65_536, 299_999]);
            combined_equals_direct(algorithm, direct, &body, &[150_000, 300_000]);
        }
    }

    #[test]
    fn a_part_without_its_crc_is_an_error_naming_it() {
        let good = Checksums { crc32: Some(b64(&Crc32::checksum(b"a"))), ..Default::default() };
        let none = Checksums::default();
        let short = Checksums { crc32: Some(b64(b"abc")), ..Default::default() };
        for bad in [&none, &short] {
            match full_object("CRC32", &[(1, &good, 1), (2, bad, 1)]) {
                Err(FullObjectError::MissingPartChecksum { number: 2, algorithm: "CRC32" }) => {}
                other => panic!("expected part 2 refused, got {other:?}"),
            }
        }
    }

    #[test]
    fn checksum_types_follow_s3s_rules() {
        let kind = |a: Option<&str>, t: Option<&str>| ChecksumKind::for_upload(a, t).map_err(|e| e.to_string());
        assert_eq!(kind(None, None), Ok(None));
        assert_eq!(kind(Some("CRC32"), None), Ok(Some(ChecksumKind::Composite)));
        assert_eq!(kind(Some("SHA256"), None), Ok(Some(ChecksumKind::Composite)));
        assert_eq!(kind(Some("CRC64NVME"), None), Ok(Some(ChecksumKind::FullObject)));
        for crc in ["CRC32", "CRC32C", "CRC64NVME"] {
            assert_eq!(kind(Some(crc), Some("FULL_OBJECT")), Ok(Some(ChecksumKind::FullObject)), "{crc}");
        }
        assert_eq!(
            kind(Some("SHA256"), Some("FULL_OBJECT")),
            Err("The FULL_OBJECT checksum type cannot be used with the sha256 checksum algorithm.".into())
        );
        assert!(kind(Some("SHA1"), Some("FULL_OBJECT")).is_err());
        assert_eq!(
            kind(Some("CRC64NVME"), Some("COMPOSITE")),
            Err("The COMPOSITE checksum type cannot be used with the crc64nvme checksum algorithm.".into())
        );
        assert!(kind(None, Some("FULL_OBJECT")).is_err(), "a type needs an algorithm");
        assert!(kind(Some("CRC32"), Some("full_object")).is_err(), "S3's values are upper case");
        for kind in [ChecksumKind::Composite, ChecksumKind::FullObject] {
            assert_eq!(ChecksumKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(ChecksumKind::parse("garbage"), None);
    }
}
