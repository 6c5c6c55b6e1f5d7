//! The files of signed-in users: `POST /api/v1/buckets` (a bucket of one's own),
//! `GET /api/v1/files` (what the caller may see, with per-region replication state) and
//! `DELETE /api/v1/files/{bucket}/{*key}` and the file detail ([`file_detail`], answered by
//! `GET /api/v1/files/{bucket}/{*key}?detail`). Downloads go through `downloads::file`, which takes a
//! signed-in user too. Who may see what is decided in [`crate::access`].
//!
//! Ownership (docs/admin.md): a bucket created by a signed-in user is theirs, and so is every
//! file in it; a file a signed-in user writes first is theirs wherever it lives. Admins see and
//! manage everything. Every change is proposed with the user as its actor, so it lands in the
//! history under their name.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use meridian_raft::model::{Bucket, ObjectMeta};
use meridian_raft::{Actor, Command, CommandOutcome, Rejection};
use serde::{Deserialize, Serialize};

use crate::access::{FileRights, file_rights, lists_file, may_access};
use crate::error::ApiError;
use crate::history::{self, Entry as HistoryEntry};
use crate::identity::{SignedInUser, now_millis};
use crate::placement::Placement;
use crate::shares::{Listing, ShareJson, list_shares};
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

/// The address of the client of a panel request, for the history: the socket peer, or the
/// address a trusted proxy forwarded (`[geo] trusted_proxies`) when geo routing is configured.
/// An extractor, so every handler that changes something records it the same way.
pub(crate) struct ClientAddress(pub(crate) String);

impl FromRequestParts<WebState> for ClientAddress {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, Self::Rejection> {
        let ConnectInfo(peer) = ConnectInfo::<SocketAddr>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::internal("reading the client's address", &e))?;
        let ip = state
            .routing
            .as_ref()
            .and_then(|routing| crate::route::locate(routing, peer, &parts.headers, None).ok())
            .map_or_else(|| peer.ip().to_canonical(), |located| located.address.ip);
        Ok(Self(ip.to_string()))
    }
}

/// Proposes `command` on behalf of `user`, from `client`, mapping refusals to the API's errors.
pub(crate) async fn propose_as(
    state: &WebState,
    user: &SignedInUser,
    client: String,
    command: Command,
) -> Result<CommandOutcome, ApiError> {
    let command = command.attributed_from(Some(Actor::User(user.id.clone())), now_millis(), Some(client));
    match state.meta.propose(command).await.map_err(|e| ApiError::propose(&e))? {
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

/// Creates bucket `name`, owned by `user`, asked from `client` (the API and the "My files" page).
pub(crate) async fn create_bucket_as(
    state: &WebState,
    user: &SignedInUser,
    client: String,
    name: &str,
) -> Result<(), ApiError> {
    if !meridian_raft::model::valid_bucket_name(name) {
        return Err(ApiError::bad_request(
            "name: 3 to 63 of a-z, 0-9, '-' and '.', starting and ending with a letter or digit",
        ));
    }
    let bucket = Bucket { name: name.to_owned(), created: now_millis(), region: state.region.clone() };
    propose_as(state, user, client, Command::CreateBucket(bucket)).await?;
    tracing::info!(user = %user.actor(), bucket = %name, "bucket created");
    Ok(())
}

/// `POST /api/v1/buckets`: a bucket owned by the caller.
pub(crate) async fn create_bucket(
    State(state): State<WebState>,
    user: SignedInUser,
    client: ClientAddress,
    body: Result<Json<NewBucket>, JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    create_bucket_as(&state, &user, client.0, &body.name).await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "bucket": body.name, "owner": user.id }))))
}

/// The query string of `GET /api/v1/files`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FilesQuery {
    /// Only this bucket.
    pub(crate) bucket: Option<String>,
    /// Start behind this file, `BUCKET/KEY` (the `next` of the previous page).
    pub(crate) after: Option<String>,
    /// Most files in the page (1..=1000, default 100).
    pub(crate) limit: Option<usize>,
}

/// Whether a region holds a copy of a file.
#[derive(Debug, Serialize)]
pub(crate) struct RegionCopy {
    /// Region name.
    pub(crate) region: String,
    /// Whether its node holds the bytes of the current version.
    pub(crate) replicated: bool,
    /// Since when, Unix ms.
    pub(crate) since_ms: Option<i64>,
}

/// One file of the listing.
#[derive(Debug, Serialize)]
pub(crate) struct FileEntry {
    /// Bucket name.
    pub(crate) bucket: String,
    /// Object key.
    pub(crate) key: String,
    /// Size in bytes.
    pub(crate) size: u64,
    /// `Content-Type`, when the uploader gave one.
    pub(crate) content_type: Option<String>,
    /// ETag without quotes.
    pub(crate) etag: String,
    /// When the current version was written, Unix ms.
    pub(crate) modified_ms: i64,
    /// The owner's user id, if a user owns it.
    pub(crate) owner: Option<String>,
    /// Replication state per region (inline small files are in every region at once).
    pub(crate) regions: Vec<RegionCopy>,
}

/// A page of files.
#[derive(Debug, Serialize)]
pub(crate) struct FilesPage {
    /// Files in bucket, then key order.
    pub(crate) files: Vec<FileEntry>,
    /// Pass as `after` to go on; `null` at the end.
    pub(crate) next: Option<String>,
}

/// `GET /api/v1/files`.
pub(crate) async fn list(
    State(state): State<WebState>,
    user: SignedInUser,
    query: Result<Query<FilesQuery>, QueryRejection>,
) -> Result<Json<FilesPage>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    list_files(&state, &user, &query).map(Json)
}

/// The files `user` may see (the API and the "My files" page): in bucket, then key order,
/// from behind `query.after`.
pub(crate) fn list_files(state: &WebState, user: &SignedInUser, query: &FilesQuery) -> Result<FilesPage, ApiError> {
    let limit = crate::error::page_limit(query.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
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
        let whole_bucket = may_access(&state.meta, user, &bucket.name, None)?;
        let start = after.filter(|(b, _)| *b == bucket.name).map(|(_, key)| key);
        let mut cursor = state.meta.objects(&bucket.name, "", start);
        while let Some((key, meta)) = cursor.next_object().map_err(read)? {
            scanned += 1;
            let owner = state.meta.object_owner(&bucket.name, &key).map_err(read)?;
            if lists_file(user, whole_bucket, owner.as_deref()) {
                files.push(entry(&bucket.name, key.clone(), &meta, owner, &members));
            }
            if files.len() >= limit || scanned >= SCAN_BUDGET {
                next = Some(format!("{}/{key}", bucket.name));
                break 'buckets;
            }
        }
    }
    Ok(FilesPage { files, next })
}

/// The buckets `user` owns (all of them for an admin): where the "My files" page offers to
/// upload.
pub(crate) fn own_buckets(state: &WebState, user: &SignedInUser) -> Result<Vec<String>, ApiError> {
    let buckets = state.meta.buckets().map_err(|e| ApiError::internal("listing buckets", &e))?;
    let mut names = Vec::new();
    for bucket in buckets {
        if may_access(&state.meta, user, &bucket.name, None)? {
            names.push(bucket.name);
        }
    }
    Ok(names)
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
    client: ClientAddress,
    Path((bucket, key)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    delete_file(&state, &user, client.0, &bucket, &key).await.map(|()| StatusCode::NO_CONTENT)
}

/// Deletes `bucket/key` as `user`, asked from `client` (the API and the delete page): 404 when
/// they may not see it.
pub(crate) async fn delete_file(
    state: &WebState,
    user: &SignedInUser,
    client: String,
    bucket: &str,
    key: &str,
) -> Result<(), ApiError> {
    let missing = || ApiError::not_found(format!("no file {key:?} in bucket {bucket:?}"));
    if !may_access(&state.meta, user, bucket, Some(key))? {
        return Err(missing());
    }
    let command = Command::DeleteObjects { bucket: bucket.to_owned(), keys: vec![key.to_owned()] };
    match propose_as(state, user, client, command).await? {
        CommandOutcome::Deleted(keys) if !keys.is_empty() => {
            tracing::info!(user = %user.actor(), %bucket, %key, "file deleted");
            Ok(())
        }
        _ => Err(missing()),
    }
}

/// Everything the panel shows about one file: the answer of
/// `GET /api/v1/files/{bucket}/{*key}?detail`, and what the file page renders.
#[derive(Debug, Serialize)]
pub(crate) struct FileDetail {
    /// The file as the listing shows it: size, type, dates, owner, replication per region.
    pub(crate) file: FileEntry,
    /// Where its bytes are node by node, and which members still owe a copy (the answer of
    /// `GET /api/v1/objects/{bucket}/{key}/placement`).
    pub(crate) placement: Placement,
    /// Its history as far as the caller may see it, oldest first: the first page of
    /// `GET /api/v1/history?file=BUCKET/KEY`.
    pub(crate) history: Vec<HistoryEntry>,
    /// `after` for `GET /api/v1/history?file=BUCKET/KEY` to read on; `null`: that was all.
    pub(crate) history_next: Option<String>,
    /// Its shares (every state), for its owner and admins; `null` for a user it is only shared
    /// with, who may not see who else has it.
    pub(crate) shares: Option<Vec<ShareJson>>,
    /// Whether the caller may delete and share it (its owner, an admin).
    pub(crate) may_manage: bool,
    /// Whether the caller may upload a new version (its owner, an admin, a `write` share).
    pub(crate) may_replace: bool,
}

/// Most shares the file detail lists.
const SHARES_IN_DETAIL: usize = 500;

/// The detail of `bucket/key` for `user`: 404 (as for a missing file) unless they own it, are an
/// admin, or have it shared with them.
pub(crate) async fn file_detail(
    state: &WebState,
    user: &SignedInUser,
    bucket: &str,
    key: &str,
) -> Result<FileDetail, ApiError> {
    let FileRights { may_manage, may_replace } = file_rights(&state.meta, user, bucket, key)?;
    let meta = crate::route::object(state, bucket, key).await?;
    let read = |e: meridian_raft::StoreError| ApiError::internal("reading the file", &e);
    let owner = state.meta.object_owner(bucket, key).map_err(read)?;
    let members: Vec<(u64, String)> = state.meta.status().members.into_iter().map(|m| (m.id, m.region)).collect();
    let file = entry(bucket, key.to_owned(), &meta, owner, &members);
    let placement = crate::placement::describe(state, bucket.to_owned(), key.to_owned(), meta);
    let page =
        history::read_page(&state.meta, user, &history::Filter::file(bucket, key), None, history::DEFAULT_LIMIT)?;
    // The first page of the file's shares; `GET /api/v1/shares?file=` pages through them all.
    let shares = if may_manage {
        Some(list_shares(state, user, Listing::OfFile { bucket, key }, None, SHARES_IN_DETAIL)?.shares)
    } else {
        None
    };
    Ok(FileDetail { file, placement, history: page.entries, history_next: page.next, shares, may_manage, may_replace })
}
