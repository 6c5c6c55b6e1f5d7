//! The files of signed-in users: `POST /api/v1/buckets` (a bucket of one's own),
//! `GET /api/v1/files` (what the caller may see, with per-region replication state) and
//! `DELETE /api/v1/files/{bucket}/{*key}`. Downloads go through `files::file`, which takes a
//! signed-in user too and checks [`may_access`].
//!
//! Ownership (docs/admin.md): a bucket created by a signed-in user is theirs, and so is every
//! file in it; a file a signed-in user writes first is theirs wherever it lives. Admins see and
//! manage everything. Every change is proposed with the user as its actor, so it lands in the
//! history under their name.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use meridian_raft::model::{Bucket, ObjectMeta};
use meridian_raft::{Actor, Command, CommandOutcome, MetaStore, Rejection};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::identity::{SignedInUser, now_millis};
use crate::{ApiCaller, WebState};

/// Files per page when the caller does not say.
const DEFAULT_LIMIT: usize = 100;
/// Most files per page.
const MAX_LIMIT: usize = 1000;
/// Most objects one listing looks at, so a user who owns few files in a large store gets a short
/// page with a `next` rather than a request that walks everything.
const SCAN_BUDGET: usize = 50_000;

/// Who calls a route open to cinema services and people alike (downloads): a signed-in user
/// when the request carries a JWT as Bearer or only the session cookie, else a machine caller.
/// Deciding by the credential's shape first keeps a user's token from being logged as a refused
/// service token.
pub(crate) enum Requester {
    /// An access key or service token.
    Machine(ApiCaller),
    /// A person signed in through the Auth service.
    Person(SignedInUser),
}

impl FromRequestParts<WebState> for Requester {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, Self::Rejection> {
        let authorization = parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
        // A JWT is three dot-separated parts; service tokens and Basic credentials are not.
        let person = match authorization.map(|h| h.split_once(' ').unwrap_or((h, ""))) {
            // Only the session cookie can identify the caller then; without sign-in configured,
            // the machine path answers the 401.
            None => state.identity.is_some(),
            Some((scheme, token)) => scheme.eq_ignore_ascii_case("bearer") && token.trim().matches('.').count() == 2,
        };
        if person {
            SignedInUser::from_request_parts(parts, state).await.map(Self::Person)
        } else {
            ApiCaller::from_request_parts(parts, state).await.map(Self::Machine)
        }
    }
}

/// Whether `user` may see and change `bucket/key` (`key` `None`: the bucket itself): admins
/// always; others when they own the bucket or the file.
pub(crate) fn may_access(
    meta: &MetaStore,
    user: &SignedInUser,
    bucket: &str,
    key: Option<&str>,
) -> Result<bool, ApiError> {
    if user.is_admin() {
        return Ok(true);
    }
    let read = |e: meridian_raft::StoreError| ApiError::internal("reading owners", &e);
    if meta.bucket_owner(bucket).map_err(read)?.as_deref() == Some(user.id.as_str()) {
        return Ok(true);
    }
    match key {
        Some(key) => Ok(meta.object_owner(bucket, key).map_err(read)?.as_deref() == Some(user.id.as_str())),
        None => Ok(false),
    }
}

/// Proposes `command` on behalf of `user`, mapping refusals to the API's errors.
pub(crate) async fn propose_as(
    state: &WebState,
    user: &SignedInUser,
    command: Command,
) -> Result<CommandOutcome, ApiError> {
    let command = command.attributed(Some(Actor::User(user.id.clone())), now_millis());
    let outcome =
        state.meta.propose(command).await.map_err(|e| ApiError::unavailable(format!("cannot commit: {e}")))?;
    match outcome {
        CommandOutcome::Rejected(Rejection::BucketAlreadyOwnedByYou) => Err(ApiError {
            status: StatusCode::CONFLICT,
            code: "conflict",
            message: "the bucket exists already".into(),
        }),
        CommandOutcome::Rejected(Rejection::NoSuchBucket) => Err(ApiError::not_found("no such bucket")),
        // A file or share gone by the time the command was applied; callers name it.
        CommandOutcome::Rejected(Rejection::NoSuchKey) => Err(ApiError::not_found("not found")),
        CommandOutcome::Rejected(other) => {
            Err(ApiError { status: StatusCode::CONFLICT, code: "conflict", message: other.to_string() })
        }
        done => Ok(done),
    }
}

/// The body of `POST /api/v1/buckets`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewBucket {
    /// The bucket's name: S3 rules (3 to 63 of `a-z`, `0-9`, `-`, `.`, starting and ending with a
    /// letter or digit).
    name: String,
}

/// S3's bucket naming rules, the part that matters for path-style addressing.
fn valid_bucket_name(name: &str) -> bool {
    let edge_ok = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (3..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && edge_ok(name.as_bytes().first())
        && edge_ok(name.as_bytes().last())
        && !name.contains("..")
}

/// `POST /api/v1/buckets`: a bucket owned by the caller.
pub(crate) async fn create_bucket(
    State(state): State<WebState>,
    user: SignedInUser,
    body: Result<Json<NewBucket>, JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if !valid_bucket_name(&body.name) {
        return Err(ApiError::bad_request(
            "name: 3 to 63 of a-z, 0-9, '-' and '.', starting and ending with a letter or digit",
        ));
    }
    let bucket = Bucket { name: body.name.clone(), created: now_millis(), region: state.region.clone() };
    propose_as(&state, &user, Command::CreateBucket(bucket)).await?;
    tracing::info!(user = %user.actor(), bucket = %body.name, "bucket created");
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "bucket": body.name, "owner": user.id }))))
}

/// The query string of `GET /api/v1/files`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FilesQuery {
    /// Only this bucket.
    bucket: Option<String>,
    /// Start behind this file, `BUCKET/KEY` (the `next` of the previous page).
    after: Option<String>,
    /// Most files in the page (1..=1000, default 100).
    limit: Option<usize>,
}

/// Whether a region holds a copy of a file.
#[derive(Debug, Serialize)]
struct RegionCopy {
    /// Region name.
    region: String,
    /// Whether its node holds the bytes of the current version.
    replicated: bool,
    /// Since when, Unix ms.
    since_ms: Option<i64>,
}

/// One file of the listing.
#[derive(Debug, Serialize)]
struct FileEntry {
    /// Bucket name.
    bucket: String,
    /// Object key.
    key: String,
    /// Size in bytes.
    size: u64,
    /// `Content-Type`, when the uploader gave one.
    content_type: Option<String>,
    /// ETag without quotes.
    etag: String,
    /// When the current version was written, Unix ms.
    modified_ms: i64,
    /// The owner's user id, if a user owns it.
    owner: Option<String>,
    /// Replication state per region (inline small files are in every region at once).
    regions: Vec<RegionCopy>,
}

/// A page of files.
#[derive(Debug, Serialize)]
pub(crate) struct FilesPage {
    /// Files in bucket, then key order.
    files: Vec<FileEntry>,
    /// Pass as `after` to go on; `null` at the end.
    next: Option<String>,
}

/// `GET /api/v1/files`.
pub(crate) async fn list(
    State(state): State<WebState>,
    user: SignedInUser,
    query: Result<Query<FilesQuery>, QueryRejection>,
) -> Result<Json<FilesPage>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!("limit must be 1 to {MAX_LIMIT}")));
    }
    let after = match query.after.as_deref() {
        None => None,
        Some(after) => Some(after.split_once('/').ok_or_else(|| ApiError::bad_request("after must be BUCKET/KEY"))?),
    };
    let read = |e: meridian_raft::StoreError| ApiError::internal("listing files", &e);
    let members: Vec<(u64, String)> = state.meta.status().members.into_iter().map(|m| (m.id, m.region)).collect();
    let mut buckets = state.meta.buckets().map_err(read)?;
    buckets.retain(|b| query.bucket.as_deref().is_none_or(|only| only == b.name));
    buckets.retain(|b| after.is_none_or(|(after_bucket, _)| b.name.as_str() >= after_bucket));
    let (mut files, mut scanned, mut next) = (Vec::new(), 0usize, None);
    'buckets: for bucket in buckets {
        let whole_bucket = may_access(&state.meta, &user, &bucket.name, None)?;
        let start = after.filter(|(b, _)| *b == bucket.name).map(|(_, key)| key);
        let mut cursor = state.meta.objects(&bucket.name, "", start);
        while let Some((key, meta)) = cursor.next_object().map_err(read)? {
            scanned += 1;
            let owner = state.meta.object_owner(&bucket.name, &key).map_err(read)?;
            if whole_bucket || owner.as_deref() == Some(user.id.as_str()) {
                files.push(entry(&bucket.name, key.clone(), &meta, owner, &members));
            }
            if files.len() >= limit || scanned >= SCAN_BUDGET {
                next = Some(format!("{}/{key}", bucket.name));
                break 'buckets;
            }
        }
    }
    Ok(Json(FilesPage { files, next }))
}

fn entry(bucket: &str, key: String, meta: &ObjectMeta, owner: Option<String>, members: &[(u64, String)]) -> FileEntry {
    let regions = members
        .iter()
        .map(|(id, region)| {
            let since_ms = if meta.inline.is_some() { Some(meta.last_modified) } else { meta.holders.get(id).copied() };
            RegionCopy { region: region.clone(), replicated: since_ms.is_some(), since_ms }
        })
        .collect();
    FileEntry {
        bucket: bucket.to_owned(),
        key,
        size: meta.size,
        content_type: meta.headers.content_type.clone(),
        etag: meta.etag.clone(),
        modified_ms: meta.last_modified,
        owner,
        regions,
    }
}

/// `DELETE /api/v1/files/{bucket}/{*key}`: 204, or 404 when the caller may not see the file
/// (the answer does not tell another user's files from missing ones).
pub(crate) async fn delete(
    State(state): State<WebState>,
    user: SignedInUser,
    Path((bucket, key)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let missing = || ApiError::not_found(format!("no file {key:?} in bucket {bucket:?}"));
    if !may_access(&state.meta, &user, &bucket, Some(&key))? {
        return Err(missing());
    }
    let command = Command::DeleteObjects { bucket: bucket.clone(), keys: vec![key.clone()] };
    match propose_as(&state, &user, command).await? {
        CommandOutcome::Deleted(keys) if !keys.is_empty() => {
            tracing::info!(user = %user.actor(), %bucket, %key, "file deleted");
            Ok(StatusCode::NO_CONTENT)
        }
        _ => Err(missing()),
    }
}
