//! Listing: ListObjectsV2, ListObjects (v1) and ListObjectVersions, over one ordered walk.

use base64::Engine as _;
use meridian_raft::model::ListedObject;
use s3s::dto::{
    CommonPrefix, ETag, EncodingType, ListObjectVersionsInput, ListObjectVersionsOutput, ListObjectsInput,
    ListObjectsOutput, ListObjectsV2Input, ListObjectsV2Output, Object, ObjectStorageClass, ObjectVersion,
    ObjectVersionStorageClass, Owner,
};
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::convert::{timestamp, url_encode};
use crate::error;
use crate::gateway::Gateway;

/// S3's default and maximum page size.
const MAX_KEYS: i32 = 1000;

/// The owner every listing reports (ListBuckets, and objects in ListObjects v1 and in
/// ListObjectsV2 with `fetch-owner=true`): the operator's account, since every bucket belongs to
/// it whichever key wrote it. Clients (rclone, s3cmd) read the owner's ID and DisplayName as
/// present and non-empty; a user's own files are told apart by the panel, not by S3 owners.
pub(crate) fn operator_owner() -> Owner {
    Owner { display_name: Some(OPERATOR.into()), id: Some(OPERATOR.into()) }
}

/// The operator account's ID and display name in S3 answers.
const OPERATOR: &str = "meridian";

/// One page of a listing.
struct Page {
    objects: Vec<(String, ListedObject)>,
    prefixes: Vec<String>,
    truncated: bool,
    /// The last key or common prefix in the page: where the next page starts (exclusive).
    last: Option<String>,
}

/// What to list.
struct Query<'a> {
    bucket: &'a str,
    prefix: &'a str,
    delimiter: Option<&'a str>,
    after: Option<&'a str>,
    max_keys: i32,
}

/// How keys are written back to the client.
struct Encoder {
    url: bool,
}

impl Encoder {
    fn new(encoding: Option<&EncodingType>) -> S3Result<Self> {
        match encoding.map(EncodingType::as_str) {
            None => Ok(Self { url: false }),
            Some("url") => Ok(Self { url: true }),
            Some(other) => Err(s3_error!(InvalidArgument, "Invalid Encoding Method specified in Request: {other}")),
        }
    }

    fn key(&self, key: &str) -> String {
        if self.url { url_encode(key) } else { key.to_owned() }
    }

    fn opt(&self, value: Option<&str>) -> Option<String> {
        value.map(|v| self.key(v))
    }
}

/// The common prefix `key` rolls up into, if any.
fn common_prefix<'k>(key: &'k str, prefix: &str, delimiter: Option<&str>) -> Option<&'k str> {
    let delimiter = delimiter.filter(|d| !d.is_empty())?;
    let rest = key.get(prefix.len()..)?;
    let at = rest.find(delimiter)?;
    key.get(..prefix.len() + at + delimiter.len())
}

fn object_entry(key: String, meta: &ListedObject, encoder: &Encoder, with_owner: bool) -> Object {
    Object {
        owner: with_owner.then(operator_owner),
        key: Some(encoder.key(&key)),
        size: i64::try_from(meta.size).ok(),
        e_tag: Some(ETag::Strong(meta.etag.clone())),
        last_modified: Some(timestamp(meta.last_modified)),
        storage_class: Some(ObjectStorageClass::from_static(ObjectStorageClass::STANDARD)),
        ..Default::default()
    }
}

fn prefix_entries(prefixes: Vec<String>, encoder: &Encoder) -> Vec<CommonPrefix> {
    prefixes.into_iter().map(|p| CommonPrefix { prefix: Some(encoder.key(&p)) }).collect()
}

impl Gateway {
    /// Walks the bucket and collects one page.
    async fn list_page(&self, query: &Query<'_>) -> S3Result<Page> {
        self.bucket(query.bucket).await?;
        let max_keys = query.max_keys.clamp(0, MAX_KEYS);
        let mut cursor = self.meta.objects(query.bucket, query.prefix, query.after);
        // A marker inside a common prefix (or the prefix itself) means that prefix was already
        // reported: skip the rest of it.
        if let Some(rolled) = query.after.and_then(|a| common_prefix(a, query.prefix, query.delimiter)) {
            cursor.skip_keys_starting_with(rolled);
        }
        let mut page = Page { objects: Vec::new(), prefixes: Vec::new(), truncated: false, last: None };
        // `max-keys=0` asks for no keys: an empty page that is not truncated, as AWS answers.
        // Truncated with nothing in it would hand out no token to go on from, and clients
        // that page until IsTruncated is false would loop forever.
        if max_keys == 0 {
            return Ok(page);
        }
        let mut count = 0;
        while let Some((key, meta)) = cursor.next_listed().map_err(error::store)? {
            if count == max_keys {
                page.truncated = true;
                break;
            }
            count += 1;
            if let Some(rolled) = common_prefix(&key, query.prefix, query.delimiter) {
                let rolled = rolled.to_owned();
                cursor.skip_keys_starting_with(&rolled);
                page.last = Some(rolled.clone());
                page.prefixes.push(rolled);
            } else {
                page.last = Some(key.clone());
                page.objects.push((key, meta));
            }
        }
        Ok(page)
    }

    pub(crate) async fn list_objects_v2_op(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let input = req.input;
        let encoder = Encoder::new(input.encoding_type.as_ref())?;
        let token_key = match &input.continuation_token {
            Some(token) => Some(
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(token)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| s3_error!(InvalidArgument, "The continuation token provided is incorrect"))?,
            ),
            None => None,
        };
        let prefix = input.prefix.clone().unwrap_or_default();
        let after = token_key.as_deref().or(input.start_after.as_deref());
        let max_keys = input.max_keys.unwrap_or(MAX_KEYS);
        let fetch_owner = input.fetch_owner == Some(true);
        let query =
            Query { bucket: &input.bucket, prefix: &prefix, delimiter: input.delimiter.as_deref(), after, max_keys };
        let page = self.list_page(&query).await?;
        let next = page
            .truncated
            .then(|| page.last.as_ref().map(|l| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(l)))
            .flatten();
        let key_count = i32::try_from(page.objects.len() + page.prefixes.len()).unwrap_or(i32::MAX);
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: Some(encoder.key(&prefix)),
            delimiter: encoder.opt(input.delimiter.as_deref()),
            start_after: encoder.opt(input.start_after.as_deref()),
            encoding_type: input.encoding_type,
            max_keys: Some(max_keys),
            key_count: Some(key_count),
            continuation_token: input.continuation_token,
            next_continuation_token: next,
            is_truncated: Some(page.truncated),
            contents: Some(page.objects.into_iter().map(|(k, m)| object_entry(k, &m, &encoder, fetch_owner)).collect()),
            common_prefixes: Some(prefix_entries(page.prefixes, &encoder)),
            ..Default::default()
        }))
    }

    pub(crate) async fn list_objects_op(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let input = req.input;
        let encoder = Encoder::new(input.encoding_type.as_ref())?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let max_keys = input.max_keys.unwrap_or(MAX_KEYS);
        let query = Query {
            bucket: &input.bucket,
            prefix: &prefix,
            delimiter: input.delimiter.as_deref(),
            after: input.marker.as_deref().filter(|m| !m.is_empty()),
            max_keys,
        };
        let page = self.list_page(&query).await?;
        let next_marker = if page.truncated { page.last.as_deref().map(|l| encoder.key(l)) } else { None };
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket),
            prefix: Some(encoder.key(&prefix)),
            delimiter: encoder.opt(input.delimiter.as_deref()),
            marker: encoder.opt(input.marker.as_deref()),
            encoding_type: input.encoding_type,
            max_keys: Some(max_keys),
            next_marker,
            is_truncated: Some(page.truncated),
            // Version 1 always names each object's owner.
            contents: Some(page.objects.into_iter().map(|(k, m)| object_entry(k, &m, &encoder, true)).collect()),
            common_prefixes: Some(prefix_entries(page.prefixes, &encoder)),
            ..Default::default()
        }))
    }

    /// Buckets are unversioned: every object is its only version, with version id `null`.
    pub(crate) async fn list_object_versions_op(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let input = req.input;
        let encoder = Encoder::new(input.encoding_type.as_ref())?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let max_keys = input.max_keys.unwrap_or(MAX_KEYS);
        let query = Query {
            bucket: &input.bucket,
            prefix: &prefix,
            delimiter: input.delimiter.as_deref(),
            after: input.key_marker.as_deref().filter(|m| !m.is_empty()),
            max_keys,
        };
        let page = self.list_page(&query).await?;
        let versions = page
            .objects
            .into_iter()
            .map(|(key, meta)| ObjectVersion {
                key: Some(encoder.key(&key)),
                version_id: Some("null".into()),
                is_latest: Some(true),
                size: i64::try_from(meta.size).ok(),
                e_tag: Some(ETag::Strong(meta.etag.clone())),
                last_modified: Some(timestamp(meta.last_modified)),
                storage_class: Some(ObjectVersionStorageClass::from_static(ObjectVersionStorageClass::STANDARD)),
                ..Default::default()
            })
            .collect();
        let truncated = page.truncated;
        Ok(S3Response::new(ListObjectVersionsOutput {
            name: Some(input.bucket),
            prefix: Some(encoder.key(&prefix)),
            delimiter: encoder.opt(input.delimiter.as_deref()),
            key_marker: encoder.opt(input.key_marker.as_deref()),
            version_id_marker: input.version_id_marker,
            encoding_type: input.encoding_type,
            max_keys: Some(max_keys),
            is_truncated: Some(truncated),
            next_key_marker: if truncated { page.last.as_deref().map(|l| encoder.key(l)) } else { None },
            next_version_id_marker: truncated.then(|| "null".to_owned()),
            versions: Some(versions),
            common_prefixes: Some(prefix_entries(page.prefixes, &encoder)),
            ..Default::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::common_prefix;

    #[test]
    fn common_prefixes_roll_up_at_the_first_delimiter_after_the_prefix() {
        assert_eq!(common_prefix("a/b/c", "", Some("/")), Some("a/"));
        assert_eq!(common_prefix("a/b/c", "a/", Some("/")), Some("a/b/"));
        assert_eq!(common_prefix("a/b", "a/b", Some("/")), None);
        assert_eq!(common_prefix("abc", "", None), None);
        assert_eq!(common_prefix("x--y--z", "", Some("--")), Some("x--"));
    }
}
