//! Listing: ListObjectsV2, ListObjects (v1) and ListObjectVersions, over one ordered walk.

use base64::Engine as _;
use meridian_raft::StoreError;
use meridian_raft::model::{ListedObject, NULL_VERSION};
use s3s::dto::{
    CommonPrefix, DeleteMarkerEntry, ETag, EncodingType, ListObjectVersionsInput, ListObjectVersionsOutput,
    ListObjectsInput, ListObjectsOutput, ListObjectsV2Input, ListObjectsV2Output, Object, ObjectStorageClass,
    ObjectVersion, ObjectVersionStorageClass, Owner,
};
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::convert::{timestamp, url_encode};
use crate::error;
use crate::gateway::Gateway;

/// S3's default and maximum page size.
const MAX_KEYS: i32 = 1000;

/// The owner ListBuckets reports: the operator's account, since every bucket belongs to it
/// whichever key wrote it. Clients (rclone, s3cmd) read the owner's ID and DisplayName as
/// present and non-empty. Objects in listings name their own owner (see `ObjectOwners`).
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

fn object_entry(key: String, meta: &ListedObject, encoder: &Encoder, owner: Option<Owner>) -> Object {
    Object {
        owner,
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
    /// A page's objects as listed, each with its owner when `with_owner` (ListObjects v1
    /// always, V2 with `fetch-owner`).
    fn object_entries(
        &self,
        bucket: &str,
        objects: Vec<(String, ListedObject)>,
        encoder: &Encoder,
        with_owner: bool,
    ) -> S3Result<Vec<Object>> {
        let owners = if with_owner { Some(crate::acl::ObjectOwners::of(self, bucket)?) } else { None };
        objects
            .into_iter()
            .map(|(key, meta)| {
                let owner = match &owners {
                    Some(owners) => Some(self.owner_out(&owners.owner_of(self, bucket, &key)?)),
                    None => None,
                };
                Ok(object_entry(key, &meta, encoder, owner))
            })
            .collect()
    }

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
        let contents = self.object_entries(&input.bucket, page.objects, &encoder, fetch_owner)?;
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
            contents: Some(contents),
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
        // Version 1 always names each object's owner.
        let contents = self.object_entries(&input.bucket, page.objects, &encoder, true)?;
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket),
            prefix: Some(encoder.key(&prefix)),
            delimiter: encoder.opt(input.delimiter.as_deref()),
            marker: encoder.opt(input.marker.as_deref()),
            encoding_type: input.encoding_type,
            max_keys: Some(max_keys),
            next_marker,
            is_truncated: Some(page.truncated),
            contents: Some(contents),
            common_prefixes: Some(prefix_entries(page.prefixes, &encoder)),
            ..Default::default()
        }))
    }

    /// ListObjectVersions: every version and delete marker, keys in order, each key's versions
    /// newest first: the current object (`o/`) then the kept ones (`r/`), merged as they are
    /// walked. A bucket never versioned lists each object as its `null` version.
    pub(crate) async fn list_object_versions_op(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let input = req.input;
        let encoder = Encoder::new(input.encoding_type.as_ref())?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let max_keys = input.max_keys.unwrap_or(MAX_KEYS);
        let key_marker = input.key_marker.as_deref().filter(|m| !m.is_empty());
        let version_marker = input.version_id_marker.as_deref().filter(|m| !m.is_empty());
        if let Some(marker) = version_marker {
            if key_marker.is_none() {
                return Err(s3_error!(
                    InvalidArgument,
                    "A version-id marker cannot be specified without a key marker."
                ));
            }
            crate::versioning::check_version_id(marker)?;
        }
        self.bucket(&input.bucket).await?;
        let query = VersionQuery {
            bucket: &input.bucket,
            prefix: &prefix,
            delimiter: input.delimiter.as_deref(),
            key_marker,
            version_marker,
            max_keys: max_keys.clamp(0, MAX_KEYS),
        };
        let page = self.versions_page(&query).map_err(error::store)?;
        let owners = crate::acl::ObjectOwners::of(self, &input.bucket)?;
        let mut versions = Vec::new();
        let mut markers = Vec::new();
        for entry in page.entries {
            let owner = Some(self.owner_out(&owners.owner_of(self, &input.bucket, &entry.key)?));
            match entry.listed {
                Some(meta) => versions.push(ObjectVersion {
                    owner,
                    key: Some(encoder.key(&entry.key)),
                    version_id: Some(entry.version_id),
                    is_latest: Some(entry.is_latest),
                    size: i64::try_from(meta.size).ok(),
                    e_tag: Some(ETag::Strong(meta.etag.clone())),
                    last_modified: Some(timestamp(meta.last_modified)),
                    storage_class: Some(ObjectVersionStorageClass::from_static(ObjectVersionStorageClass::STANDARD)),
                    ..Default::default()
                }),
                None => markers.push(DeleteMarkerEntry {
                    key: Some(encoder.key(&entry.key)),
                    version_id: Some(entry.version_id),
                    is_latest: Some(entry.is_latest),
                    last_modified: Some(timestamp(entry.at)),
                    owner,
                }),
            }
        }
        let truncated = page.truncated;
        let (next_key, next_version) = match page.last {
            Some((key, version)) if truncated => (Some(encoder.key(&key)), version),
            _ => (None, None),
        };
        Ok(S3Response::new(ListObjectVersionsOutput {
            name: Some(input.bucket),
            prefix: Some(encoder.key(&prefix)),
            delimiter: encoder.opt(input.delimiter.as_deref()),
            key_marker: encoder.opt(input.key_marker.as_deref()),
            version_id_marker: input.version_id_marker,
            encoding_type: input.encoding_type,
            max_keys: Some(max_keys),
            is_truncated: Some(truncated),
            next_key_marker: next_key,
            next_version_id_marker: next_version,
            versions: Some(versions),
            delete_markers: Some(markers),
            common_prefixes: Some(prefix_entries(page.prefixes, &encoder)),
            ..Default::default()
        }))
    }

    /// Walks the current objects and the kept versions of a bucket together and collects one
    /// page of ListObjectVersions.
    fn versions_page(&self, query: &VersionQuery<'_>) -> Result<VersionPage, StoreError> {
        let bucket = query.bucket;
        let mut current = self.meta.objects(bucket, query.prefix, query.key_marker);
        // Where the kept versions resume: after the marker version of the marker key, or after
        // every version of the marker key.
        let start = match (query.key_marker, query.version_marker) {
            (None, _) => None,
            (Some(key), None) => Some((key, None)),
            (Some(key), Some(marker)) => Some((key, self.resume_sort(bucket, key, marker)?)),
        };
        let mut kept =
            self.meta.version_walk(bucket, query.prefix, start.as_ref().map(|(key, sort)| (*key, sort.as_deref())));
        if let Some(rolled) = query.key_marker.and_then(|m| common_prefix(m, query.prefix, query.delimiter)) {
            current.skip_keys_starting_with(rolled);
            kept.skip_keys_starting_with(rolled);
        }
        let mut page = VersionPage { entries: Vec::new(), prefixes: Vec::new(), truncated: false, last: None };
        let mut next_current = current.next_listed()?;
        let mut next_kept = kept.next_version()?;
        let mut count = 0;
        loop {
            let take_current = match (&next_current, &next_kept) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                // A key's current object comes before its kept versions.
                (Some((ck, _)), Some((kk, _, _))) => ck <= kk,
            };
            if count == query.max_keys {
                page.truncated = true;
                break;
            }
            count += 1;
            let key = if take_current {
                next_current.as_ref().map(|(k, _)| k.clone())
            } else {
                next_kept.as_ref().map(|(k, _, _)| k.clone())
            }
            .unwrap_or_default();
            if let Some(rolled) = common_prefix(&key, query.prefix, query.delimiter) {
                let rolled = rolled.to_owned();
                current.skip_keys_starting_with(&rolled);
                kept.skip_keys_starting_with(&rolled);
                next_current = current.next_listed()?;
                next_kept = kept.next_version()?;
                page.last = Some((rolled.clone(), None));
                page.prefixes.push(rolled);
                continue;
            }
            let entry = if take_current {
                let Some((key, listed)) = next_current.take() else { break };
                next_current = current.next_listed()?;
                let version_id =
                    self.meta.latest_version(bucket, &key)?.map_or_else(|| NULL_VERSION.to_owned(), |l| l.id);
                VersionEntry { at: listed.last_modified, key, version_id, is_latest: true, listed: Some(listed) }
            } else {
                let Some((key, sort, version)) = next_kept.take() else { break };
                next_kept = kept.next_version()?;
                // A kept object is never the latest (that one is in `o/`); a marker may be.
                let is_latest =
                    version.meta.is_none() && self.meta.latest_version(bucket, &key)?.is_some_and(|l| l.sort == sort);
                let listed =
                    version.meta.map(|m| ListedObject { size: m.size, etag: m.etag, last_modified: m.last_modified });
                VersionEntry { at: version.at, key, version_id: version.id, is_latest, listed }
            };
            page.last = Some((entry.key.clone(), Some(entry.version_id.clone())));
            page.entries.push(entry);
        }
        Ok(page)
    }

    /// The sort key after which a listing resumes, for a version-id marker of `key`: `Some("")`
    /// (from the first kept version) when the marker is the current object, the marker's own
    /// sort key when it is kept, `None` (after every version of the key) when it is unknown.
    fn resume_sort(&self, bucket: &str, key: &str, marker: &str) -> Result<Option<String>, StoreError> {
        let current_id = match self.meta.object(bucket, key)? {
            Some(_) => Some(self.meta.latest_version(bucket, key)?.map_or_else(|| NULL_VERSION.to_owned(), |l| l.id)),
            None => None,
        };
        if current_id.as_deref() == Some(marker) {
            return Ok(Some(String::new()));
        }
        let kept = self.meta.stored_versions(bucket, key)?;
        Ok(kept.into_iter().find(|(_, v)| v.id == marker).map(|(sort, _)| sort))
    }
}

/// What ListObjectVersions lists.
struct VersionQuery<'a> {
    /// The bucket.
    bucket: &'a str,
    /// Only keys starting with this.
    prefix: &'a str,
    /// Rolls keys up into common prefixes at its first occurrence after `prefix`.
    delimiter: Option<&'a str>,
    /// The page starts after this key (all its versions, or those up to `version_marker`).
    key_marker: Option<&'a str>,
    /// The page starts after this version of `key_marker`.
    version_marker: Option<&'a str>,
    /// Most entries (versions, markers, common prefixes) in the page.
    max_keys: i32,
}

/// One version or delete marker in a ListObjectVersions page.
struct VersionEntry {
    /// Object key.
    key: String,
    /// Its version id.
    version_id: String,
    /// Whether it is the key's latest version.
    is_latest: bool,
    /// Size, ETag and time of a version; `None` for a delete marker.
    listed: Option<ListedObject>,
    /// When it was written.
    at: i64,
}

/// One page of ListObjectVersions.
struct VersionPage {
    /// Versions and delete markers, in listing order.
    entries: Vec<VersionEntry>,
    /// Common prefixes, in order.
    prefixes: Vec<String>,
    /// Whether more entries follow.
    truncated: bool,
    /// The last key (with its version id) or common prefix in the page: the next page's markers.
    last: Option<(String, Option<String>)>,
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
