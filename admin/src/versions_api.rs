//! A file's versions in the panel: `GET /api/v1/versions/{bucket}/{*key}` lists them (version
//! id, size, date, delete markers) and `POST /api/v1/versions/{bucket}/{*key}` with
//! `{"version_id": ID}` restores one: a new current version copied from it (a cinema rolls back
//! a bad re-encode). Both are its owner's (and admins'); anyone else gets 404, as for a file
//! they cannot see. The restore is written by the S3 gateway (it holds the bytes), through
//! [`VersionRestorer`], on the user's behalf, so it lands in the history under their name.

use std::future::Future;
use std::pin::Pin;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use meridian_raft::Actor;
use meridian_raft::model::{NULL_VERSION, valid_version_id};
use serde::{Deserialize, Serialize};

use crate::WebState;
use crate::access::may_access;
use crate::error::ApiError;
use crate::files_api::ClientAddress;
use crate::identity::SignedInUser;

/// What a restore failed on, as the gateway says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreFailure {
    /// No such version (or file).
    NotFound,
    /// The version is a delete marker.
    DeleteMarker,
    /// The bytes are not on this node yet, or the store is unavailable: try again.
    Unavailable(String),
    /// Refused by the store, in words.
    Refused(String),
}

/// The future of a restore: the new version's id (`None` in a bucket never versioned).
pub type RestoreFuture<'a> = Pin<Box<dyn Future<Output = Result<Option<String>, RestoreFailure>> + Send + 'a>>;

/// Who writes a restored version: the node's S3 gateway, which holds the bytes.
pub trait VersionRestorer: Send + Sync {
    /// Copies version `version_id` of `bucket/key` as its new current version, for `actor`
    /// asking from `client`.
    fn restore<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        version_id: &'a str,
        actor: Actor,
        client: String,
    ) -> RestoreFuture<'a>;
}

/// One version of a file, newest first in the list.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct VersionJson {
    /// The version id (`null` for a version written before versioning).
    pub(crate) version_id: String,
    /// Size in bytes; `null` for a delete marker.
    pub(crate) size: Option<u64>,
    /// When it was written, Unix ms.
    pub(crate) modified_ms: i64,
    /// Whether it is a delete marker.
    pub(crate) delete_marker: bool,
    /// Whether it is the latest version (the file as it is now).
    pub(crate) latest: bool,
}

/// The answer of the listing.
#[derive(Debug, Serialize)]
pub(crate) struct VersionsPage {
    /// The versions, newest first.
    pub(crate) versions: Vec<VersionJson>,
}

/// The versions of `bucket/key` for `user`: 404 unless they own it or are an admin.
pub(crate) fn list_versions(
    state: &WebState,
    user: &SignedInUser,
    bucket: &str,
    key: &str,
) -> Result<Vec<VersionJson>, ApiError> {
    let missing = || ApiError::not_found(format!("no file {key:?} in bucket {bucket:?}"));
    if !may_access(&state.meta, user, bucket, Some(key))? {
        return Err(missing());
    }
    let read = |e: meridian_raft::StoreError| ApiError::internal("reading versions", &e);
    let (latest, current) = state.meta.current_version(bucket, key).map_err(read)?;
    let mut versions = Vec::new();
    if let Some(object) = current {
        let version_id = latest.as_ref().map_or_else(|| NULL_VERSION.to_owned(), |l| l.id.clone());
        versions.push(VersionJson {
            version_id,
            size: Some(object.size),
            modified_ms: object.last_modified,
            delete_marker: false,
            latest: true,
        });
    }
    for (_, version) in state.meta.stored_versions(bucket, key).map_err(read)? {
        let latest = latest.as_ref().is_some_and(|l| l.id == version.id) && versions.is_empty();
        versions.push(VersionJson {
            size: version.meta.as_ref().map(|m| m.size),
            modified_ms: version.at,
            delete_marker: version.meta.is_none(),
            latest,
            version_id: version.id,
        });
    }
    if versions.is_empty() {
        return Err(missing());
    }
    Ok(versions)
}

/// `GET /api/v1/versions/{bucket}/{*key}`.
pub(crate) async fn list(
    State(state): State<WebState>,
    user: SignedInUser,
    Path((bucket, key)): Path<(String, String)>,
) -> Result<Json<VersionsPage>, ApiError> {
    list_versions(&state, &user, &bucket, &key).map(|versions| Json(VersionsPage { versions }))
}

/// The body of `POST /api/v1/versions/{bucket}/{*key}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RestoreBody {
    /// The version to restore.
    pub(crate) version_id: String,
}

/// Restores version `version_id` of `bucket/key` as `user` from `client` (the API and the
/// file page's button): 404 unless they own the file; returns the new version's id.
pub(crate) async fn restore_version(
    state: &WebState,
    user: &SignedInUser,
    client: String,
    bucket: &str,
    key: &str,
    version_id: &str,
) -> Result<Option<String>, ApiError> {
    if !may_access(&state.meta, user, bucket, Some(key))? {
        return Err(ApiError::not_found(format!("no file {key:?} in bucket {bucket:?}")));
    }
    if !valid_version_id(version_id) {
        return Err(ApiError::bad_request("version_id: 24 hex digits, or null"));
    }
    let Some(restorer) = state.restorer.as_ref() else {
        return Err(ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "unavailable",
            message: "restoring versions is not available on this listener".into(),
        });
    };
    let actor = Actor::User(user.id.clone());
    match restorer.restore(bucket, key, version_id, actor, client).await {
        Ok(new_version) => {
            tracing::info!(user = %user.actor(), %bucket, %key, from = %version_id, to = ?new_version, "version restored");
            Ok(new_version)
        }
        Err(RestoreFailure::NotFound) => Err(ApiError::not_found(format!("no version {version_id:?} of {key:?}"))),
        Err(RestoreFailure::DeleteMarker) => {
            Err(ApiError::bad_request("that version is a delete marker: it has nothing to restore"))
        }
        Err(RestoreFailure::Unavailable(message)) => {
            Err(ApiError { status: StatusCode::SERVICE_UNAVAILABLE, code: "unavailable", message })
        }
        Err(RestoreFailure::Refused(message)) => {
            Err(ApiError { status: StatusCode::CONFLICT, code: "conflict", message })
        }
    }
}

/// `POST /api/v1/versions/{bucket}/{*key}`: 201 with the new version's id.
pub(crate) async fn restore(
    State(state): State<WebState>,
    user: SignedInUser,
    client: ClientAddress,
    Path((bucket, key)): Path<(String, String)>,
    body: Result<Json<RestoreBody>, JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let restored = restore_version(&state, &user, client.0, &bucket, &key, &body.version_id).await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "restored_from": body.version_id, "version_id": restored }))))
}
