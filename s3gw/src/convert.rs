//! Conversions between the metadata store's plain data and s3s's DTOs.

use std::collections::BTreeMap;

use meridian_raft::model::{Checksums, ContentHeaders, UnixMillis};
use s3s::dto::Timestamp;
use s3s::{S3Result, s3_error};

/// Milliseconds since the epoch as an S3 timestamp.
pub(crate) fn timestamp(millis: UnixMillis) -> Timestamp {
    let nanos = i128::from(millis) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(time::OffsetDateTime::UNIX_EPOCH).into()
}

/// An S3 timestamp as milliseconds since the epoch.
pub(crate) fn millis(timestamp: &Timestamp) -> UnixMillis {
    let odt: time::OffsetDateTime = timestamp.clone().into();
    i64::try_from(odt.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

/// `Content-Encoding` without the transport-only `aws-chunked` token.
pub(crate) fn stored_encoding(encoding: Option<String>) -> Option<String> {
    let encoding = encoding?;
    let kept: Vec<&str> = encoding
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("aws-chunked"))
        .collect();
    (!kept.is_empty()).then(|| kept.join(", "))
}

/// The HTTP metadata of a PUT, copy or multipart creation.
pub(crate) struct HeaderFields {
    pub(crate) content_type: Option<String>,
    pub(crate) content_disposition: Option<String>,
    pub(crate) content_encoding: Option<String>,
    pub(crate) content_language: Option<String>,
    pub(crate) cache_control: Option<String>,
    pub(crate) expires: Option<Timestamp>,
    pub(crate) metadata: Option<std::collections::HashMap<String, String>>,
}

/// Most bytes of user metadata (`x-amz-meta-*` names and values) one object may carry, as S3
/// allows. Every node keeps it in the log and the state table, so it must stay small.
const MAX_USER_METADATA_BYTES: usize = 2 * 1024;

impl HeaderFields {
    /// The headers to store, or MetadataTooLarge past S3's 2 KiB of user metadata.
    pub(crate) fn into_stored(self) -> S3Result<ContentHeaders> {
        let user_bytes: usize = self.metadata.iter().flatten().map(|(name, value)| name.len() + value.len()).sum();
        if user_bytes > MAX_USER_METADATA_BYTES {
            return Err(s3_error!(
                MetadataTooLarge,
                "Your metadata headers exceed the maximum allowed metadata size ({user_bytes} > {MAX_USER_METADATA_BYTES} bytes)."
            ));
        }
        Ok(ContentHeaders {
            content_type: self.content_type,
            content_disposition: self.content_disposition,
            content_encoding: stored_encoding(self.content_encoding),
            content_language: self.content_language,
            cache_control: self.cache_control,
            expires: self.expires.as_ref().map(millis),
            user: self.metadata.map(|m| m.into_iter().collect::<BTreeMap<_, _>>()).unwrap_or_default(),
        })
    }
}

/// Stored user metadata as s3s wants it.
pub(crate) fn user_metadata(headers: &ContentHeaders) -> Option<std::collections::HashMap<String, String>> {
    (!headers.user.is_empty()).then(|| headers.user.clone().into_iter().collect())
}

/// Parses an `x-amz-tagging` header (`k1=v1&k2=v2`, form-encoded) and checks S3's limits.
pub(crate) fn parse_tagging_header(header: &str) -> S3Result<Vec<(String, String)>> {
    let decode = |s: &str| {
        let spaced = s.replace('+', " ");
        percent_encoding::percent_decode_str(&spaced)
            .decode_utf8()
            .map(std::borrow::Cow::into_owned)
            .map_err(|_| s3_error!(InvalidTag, "tag is not valid UTF-8"))
    };
    let mut tags = Vec::new();
    for pair in header.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        tags.push((decode(key)?, decode(value)?));
    }
    check_tags(&tags)?;
    Ok(tags)
}

/// S3's tag rules: at most 10, unique keys of 1..=128 characters, values up to 256.
pub(crate) fn check_tags(tags: &[(String, String)]) -> S3Result<()> {
    if tags.len() > 10 {
        return Err(s3_error!(InvalidTag, "an object can have at most 10 tags"));
    }
    let mut seen = std::collections::HashSet::new();
    for (key, value) in tags {
        if key.is_empty() || key.chars().count() > 128 || value.chars().count() > 256 {
            return Err(s3_error!(InvalidTag, "tag key or value has an invalid length"));
        }
        if !seen.insert(key) {
            return Err(s3_error!(InvalidTag, "duplicate tag key {key}"));
        }
    }
    Ok(())
}

/// Stored checksums as the fields s3s outputs carry.
pub(crate) fn checksum_dto(sums: &Checksums) -> s3s::dto::Checksum {
    s3s::dto::Checksum {
        checksum_crc32: sums.crc32.clone(),
        checksum_crc32c: sums.crc32c.clone(),
        checksum_sha1: sums.sha1.clone(),
        checksum_sha256: sums.sha256.clone(),
        checksum_crc64nvme: sums.crc64nvme.clone(),
        ..Default::default()
    }
}

/// Copies stored checksums onto an s3s output. Every output type carries the same five
/// `checksum_*` fields but no common trait, hence a macro.
macro_rules! set_checksums {
    ($output:expr, $sums:expr) => {{
        let sums: &meridian_raft::model::Checksums = $sums;
        $output.checksum_crc32 = sums.crc32.clone();
        $output.checksum_crc32c = sums.crc32c.clone();
        $output.checksum_sha1 = sums.sha1.clone();
        $output.checksum_sha256 = sums.sha256.clone();
        $output.checksum_crc64nvme = sums.crc64nvme.clone();
    }};
}
pub(crate) use set_checksums;

/// The `x-amz-checksum-*` values an s3s input carries (PutObject, UploadPart).
macro_rules! declared_checksums {
    ($input:expr) => {
        meridian_raft::model::Checksums {
            crc32: $input.checksum_crc32,
            crc32c: $input.checksum_crc32c,
            sha1: $input.checksum_sha1,
            sha256: $input.checksum_sha256,
            crc64nvme: $input.checksum_crc64nvme,
        }
    };
}
pub(crate) use declared_checksums;

/// Percent-encodes a key for `encoding-type=url` listings: everything but unreserved
/// characters and `/`, so clients decoding with either `unquote` or `unquote_plus` get the
/// exact key back (a literal `+` travels as `%2B`, a space as `%20`).
pub(crate) fn url_encode(key: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');
    percent_encoding::utf8_percent_encode(key, KEEP).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_chunked_is_not_stored() {
        assert_eq!(stored_encoding(Some("aws-chunked".into())), None);
        assert_eq!(stored_encoding(Some("aws-chunked, gzip".into())).as_deref(), Some("gzip"));
        assert_eq!(stored_encoding(Some("gzip".into())).as_deref(), Some("gzip"));
    }

    #[test]
    fn tagging_header_round_trips_and_limits_apply() {
        let tags = parse_tagging_header("a=1&b%20c=d+e&empty=").unwrap_or_default();
        assert_eq!(tags, vec![("a".into(), "1".into()), ("b c".into(), "d e".into()), ("empty".into(), String::new())]);
        assert!(parse_tagging_header("a=1&a=2").is_err());
        let eleven: Vec<String> = (0..11).map(|i| format!("k{i}=v")).collect();
        assert!(parse_tagging_header(&eleven.join("&")).is_err());
    }

    #[test]
    fn url_encoding_escapes_what_unquote_plus_would_change() {
        assert_eq!(url_encode("a b+c%d/é"), "a%20b%2Bc%25d/%C3%A9");
    }

    #[test]
    fn timestamps_round_trip_at_millisecond_precision() {
        assert_eq!(millis(&timestamp(1_700_000_000_123)), 1_700_000_000_123);
    }
}
