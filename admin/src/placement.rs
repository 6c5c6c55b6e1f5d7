//! `GET /api/v1/objects/{bucket}/{key}/placement`: where an object's bytes are. The regions
//! that hold its blob (and since when), the regions still waiting for it, and what it is (size,
//! ETag, last modified), for services that route downloads and for operators.
//!
//! Keys contain `/`, so the route takes everything after the bucket as one wildcard and the
//! handler cuts the trailing `/placement` off it; axum has already percent-decoded it, so
//! `a%2Fb` and `a/b` name the same key, and a literal `%` arrives as `%25`.

use axum::Json;
use axum::extract::{Path, State};
use meridian_raft::NodeId;
use meridian_raft::model::{ObjectMeta, UnixMillis};
use serde::Serialize;

use crate::WebState;
use crate::api_auth::ApiCaller;
use crate::error::ApiError;

/// The route, as axum spells it (the wildcard ends with `/placement`).
pub(crate) const ROUTE: &str = "/api/v1/objects/{bucket}/{*key_and_view}";

/// The last path segment of a placement request.
const SUFFIX: &str = "/placement";

/// The JSON answer.
#[derive(Debug, Serialize)]
pub(crate) struct Placement {
    /// Bucket name.
    pub(crate) bucket: String,
    /// Object key.
    pub(crate) key: String,
    /// Size in bytes.
    pub(crate) size: u64,
    /// ETag without quotes: hex MD5, or `md5-of-part-md5s-N` for multipart objects.
    pub(crate) etag: String,
    /// When this version was written, RFC 3339.
    pub(crate) last_modified: String,
    /// The same, as Unix milliseconds.
    pub(crate) last_modified_ms: UnixMillis,
    /// True for small objects whose bytes travel in the Raft log: every member holds them as
    /// soon as it applies the write, and no blob file exists.
    pub(crate) inline: bool,
    /// The blob id (the file name under each holder's `blobs/`), for operators; none when inline.
    pub(crate) blob: Option<String>,
    /// Nodes holding the bytes, by node id.
    pub(crate) holders: Vec<Holder>,
    /// Members that do not hold the bytes yet (their replicator owes a pull), by node id.
    pub(crate) pending: Vec<Member>,
    /// True when every member holds the bytes.
    pub(crate) replicated: bool,
}

/// A node holding an object's bytes.
#[derive(Debug, Serialize)]
pub(crate) struct Holder {
    /// Raft node id.
    pub(crate) node_id: NodeId,
    /// Its region; `null` for a node no longer in the membership.
    pub(crate) region: Option<String>,
    /// When it got the bytes, RFC 3339 (for inline objects: when they were written).
    pub(crate) since: String,
    /// The same, as Unix milliseconds.
    pub(crate) since_ms: UnixMillis,
}

/// A member that does not hold an object's bytes yet.
#[derive(Debug, Serialize)]
pub(crate) struct Member {
    /// Raft node id.
    pub(crate) node_id: NodeId,
    /// Its region.
    pub(crate) region: String,
}

/// Answers the placement of one object, or a 404 once the leader confirmed it does not exist.
pub(crate) async fn placement(
    caller: ApiCaller,
    State(state): State<WebState>,
    Path((bucket, key_and_view)): Path<(String, String)>,
) -> Result<Json<Placement>, ApiError> {
    let key = key_and_view
        .strip_suffix(SUFFIX)
        .filter(|key| !key.is_empty())
        .ok_or_else(|| ApiError::not_found("no such route: use /api/v1/objects/{bucket}/{key}/placement"))?;
    tracing::debug!(actor = %caller.actor(), %bucket, %key, "placement asked");
    placement_of(&state, &bucket, key).await.map(Json)
}

/// Where `bucket/key`'s bytes are (the API and a file's page), or a 404 once the leader
/// confirmed it does not exist.
pub(crate) async fn placement_of(state: &WebState, bucket: &str, key: &str) -> Result<Placement, ApiError> {
    // Unknown here may only mean "not applied here yet": a PUT acknowledged by another node must
    // never be answered with a 404 (same rule as S3 reads).
    let found = state.meta.read_confirmed(|m| m.object(bucket, key)).await;
    let Some(object) = found.map_err(|e| ApiError::read("placement", &e))? else {
        return Err(absent(state, bucket, key)?);
    };
    Ok(describe(state, bucket.to_owned(), key.to_owned(), object))
}

/// The 404 for a key that does not exist, saying whether the bucket does.
fn absent(state: &WebState, bucket: &str, key: &str) -> Result<ApiError, ApiError> {
    let bucket_exists = state.meta.bucket(bucket).map_err(|e| ApiError::internal("reading buckets", &e))?.is_some();
    Ok(if bucket_exists {
        ApiError::not_found(format!("no object {key:?} in bucket {bucket:?}"))
    } else {
        ApiError::not_found(format!("no bucket {bucket:?}"))
    })
}

/// Builds the answer from the object's record and this node's view of the membership.
pub(crate) fn describe(state: &WebState, bucket: String, key: String, object: ObjectMeta) -> Placement {
    let members: Vec<(NodeId, String)> =
        state.meta.status().members.into_iter().map(|member| (member.id, member.region)).collect();
    let region_of = |id: NodeId| members.iter().find(|(m, _)| *m == id).map(|(_, region)| region.clone());
    let inline = object.inline.is_some();
    let held: Vec<(NodeId, UnixMillis)> = if inline {
        members.iter().map(|(id, _)| (*id, object.last_modified)).collect()
    } else {
        object.holders.iter().map(|(id, since)| (*id, *since)).collect()
    };
    let holders: Vec<Holder> = held
        .iter()
        .map(|&(node_id, since_ms)| Holder { node_id, region: region_of(node_id), since: rfc3339(since_ms), since_ms })
        .collect();
    let pending: Vec<Member> = members
        .iter()
        .filter(|(id, _)| !held.iter().any(|(holder, _)| holder == id))
        .map(|(node_id, region)| Member { node_id: *node_id, region: region.clone() })
        .collect();
    Placement {
        bucket,
        key,
        size: object.size,
        etag: object.etag,
        last_modified: rfc3339(object.last_modified),
        last_modified_ms: object.last_modified,
        inline,
        blob: (!inline).then_some(object.blob),
        replicated: pending.is_empty(),
        holders,
        pending,
    }
}

/// Unix milliseconds as RFC 3339 (UTC); the raw number when out of range.
pub(crate) fn rfc3339(ms: UnixMillis) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_format_as_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
