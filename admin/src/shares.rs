//! `/api/v1/shares`: sharing a file by public link or with named users, listing and revoking.
//!
//! Shares live in the replicated store (`Command::CreateShare`/`RevokeShare`/`UseShare`), so a
//! link works on every node and a revocation holds everywhere once applied. A public link's token
//! is 256 random bits, handed out once at creation and stored only as its SHA-256; its password,
//! if any, only as an argon2id hash. The link itself is served by `share_page`.

use argon2::password_hash::{PasswordHasher as _, SaltString};
use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use base64::Engine as _;
use meridian_raft::model::{Share, ShareAudience, SharePermission};
use meridian_raft::{Actor, Command, CommandOutcome, MetaStore, Rejection};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::WebState;
use crate::error::ApiError;
use crate::files_api::may_access;
use crate::identity::{SignedInUser, now_millis};

/// Longest expiry a share may be given: ten years.
const MAX_EXPIRY_SECS: u64 = 10 * 365 * 24 * 3600;
/// Longest link password accepted (argon2 takes any length; this bounds the work per attempt).
const MAX_PASSWORD_LEN: usize = 256;

/// The hex SHA-256 of a link token: how the store knows it.
pub(crate) fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Where the share stands now.
pub(crate) fn share_state(share: &Share, now: i64) -> &'static str {
    let exhausted = match &share.audience {
        ShareAudience::Public { max_downloads, .. } => max_downloads.is_some_and(|max| share.downloads >= max),
        ShareAudience::User { .. } => false,
    };
    if share.revoked.is_some() {
        "revoked"
    } else if share.expires.is_some_and(|e| e <= now) {
        "expired"
    } else if exhausted {
        "exhausted"
    } else {
        "active"
    }
}

/// Whether an active named-user share gives `user` access to `bucket/key`: any permission, or,
/// with `write`, a write permission (upload a new version).
pub(crate) fn shared_with(
    meta: &MetaStore,
    user: &str,
    bucket: &str,
    key: &str,
    write: bool,
) -> Result<bool, ApiError> {
    let shares = meta.shares().map_err(|e| ApiError::internal("reading shares", &e))?;
    let now = now_millis();
    Ok(shares.iter().any(|s| {
        matches!(&s.audience, ShareAudience::User { user: u, permission }
            if u == user && (!write || *permission == SharePermission::Write))
            && s.bucket == bucket
            && s.key == key
            && share_state(s, now) == "active"
    }))
}

/// The body of `POST /api/v1/shares`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewShare {
    /// Bucket of the file.
    pub(crate) bucket: String,
    /// Key of the file.
    pub(crate) key: String,
    /// Share with this user id (from `/api/v1/users`); absent: a public link.
    pub(crate) user: Option<String>,
    /// For a user share: `read` (default) or `write`.
    pub(crate) permission: Option<String>,
    /// Stops working after this many seconds; absent: never.
    pub(crate) expires_in_secs: Option<u64>,
    /// Public link only: a password to ask for.
    pub(crate) password: Option<String>,
    /// Public link only: most downloads.
    pub(crate) max_downloads: Option<u64>,
}

/// A share as the API shows it (never its token or hashes).
#[derive(Debug, Serialize)]
pub(crate) struct ShareJson {
    /// Id, for `DELETE /api/v1/shares/{id}`.
    pub(crate) id: String,
    /// Bucket of the file.
    pub(crate) bucket: String,
    /// Key of the file.
    pub(crate) key: String,
    /// `public` or `user`.
    pub(crate) kind: &'static str,
    /// For a user share: the user.
    pub(crate) user: Option<String>,
    /// For a user share: `read` or `write`.
    pub(crate) permission: Option<&'static str>,
    /// Whether the link asks for a password.
    pub(crate) has_password: bool,
    /// The link's download limit.
    pub(crate) max_downloads: Option<u64>,
    /// Downloads so far.
    pub(crate) downloads: u64,
    /// Who created it.
    pub(crate) created_by: String,
    /// When, Unix ms.
    pub(crate) created_ms: i64,
    /// When it expires, Unix ms.
    pub(crate) expires_ms: Option<i64>,
    /// When it was revoked, Unix ms.
    pub(crate) revoked_ms: Option<i64>,
    /// `active`, `expired`, `exhausted` or `revoked`.
    pub(crate) state: &'static str,
}

impl ShareJson {
    pub(crate) fn new(share: &Share, now: i64) -> Self {
        let (kind, user, permission, has_password, max_downloads) = match &share.audience {
            ShareAudience::Public { password_hash, max_downloads, .. } => {
                ("public", None, None, password_hash.is_some(), *max_downloads)
            }
            ShareAudience::User { user, permission } => {
                let permission = match permission {
                    SharePermission::Read => "read",
                    SharePermission::Write => "write",
                };
                ("user", Some(user.clone()), Some(permission), false, None)
            }
        };
        Self {
            id: share.id.clone(),
            bucket: share.bucket.clone(),
            key: share.key.clone(),
            kind,
            user,
            permission,
            has_password,
            max_downloads,
            downloads: share.downloads,
            created_by: share.created_by.clone(),
            created_ms: share.created,
            expires_ms: share.expires,
            revoked_ms: share.revoked,
            state: share_state(share, now),
        }
    }
}

/// The answer to a created share: the share, and for a link its token, shown only this once.
#[derive(Debug, Serialize)]
pub(crate) struct Created {
    /// The share.
    pub(crate) share: ShareJson,
    /// The link's path, `/s/{token}` (public links).
    pub(crate) url: Option<String>,
}

/// Random bytes as unpadded base64url.
fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::fill(buf.as_mut_slice());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// argon2id of the password, as a PHC string (the crate's default, OWASP-grade parameters).
async fn hash_password(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        rand::fill(&mut salt);
        let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
        argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| ApiError::internal("hashing the password", &e))?
    .map_err(|e| ApiError::internal("hashing the password", &e))
}

/// `POST /api/v1/shares`: only the file's owner (or an admin) shares it.
pub(crate) async fn create(
    State(state): State<WebState>,
    user: SignedInUser,
    body: Result<Json<NewShare>, JsonRejection>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    create_share(&state, &user, body).await.map(|created| (StatusCode::CREATED, Json(created)))
}

/// Creates the share `body` describes as `user` (the API and a file's page).
pub(crate) async fn create_share(state: &WebState, user: &SignedInUser, body: NewShare) -> Result<Created, ApiError> {
    let missing = || ApiError::not_found(format!("no file {:?} in bucket {:?}", body.key, body.bucket));
    if !may_access(&state.meta, user, &body.bucket, Some(&body.key))? {
        return Err(missing());
    }
    if state.meta.object(&body.bucket, &body.key).map_err(|e| ApiError::internal("reading the file", &e))?.is_none() {
        return Err(missing());
    }
    let now = now_millis();
    let expires = match body.expires_in_secs {
        None => None,
        Some(secs) if (1..=MAX_EXPIRY_SECS).contains(&secs) => {
            Some(now + i64::try_from(secs * 1000).unwrap_or(i64::MAX))
        }
        Some(_) => return Err(ApiError::bad_request(format!("expires_in_secs must be 1 to {MAX_EXPIRY_SECS}"))),
    };
    let mut token = None;
    let audience = match &body.user {
        Some(target) => {
            if body.password.is_some() || body.max_downloads.is_some() {
                return Err(ApiError::bad_request("password and max_downloads are for public links only"));
            }
            let known = state.meta.user(target).map_err(|e| ApiError::internal("reading the user list", &e))?;
            if known.is_none_or(|u| u.deleted.is_some()) {
                return Err(ApiError::bad_request(format!("user: no user {target:?} in the user list")));
            }
            let permission = match body.permission.as_deref() {
                None | Some("read") => SharePermission::Read,
                Some("write") => SharePermission::Write,
                Some(_) => return Err(ApiError::bad_request("permission must be read or write")),
            };
            ShareAudience::User { user: target.clone(), permission }
        }
        None => {
            if body.permission.is_some() {
                return Err(ApiError::bad_request("permission is for user shares only"));
            }
            if body.max_downloads == Some(0) {
                return Err(ApiError::bad_request("max_downloads must be at least 1"));
            }
            let password_hash = match body.password {
                None => None,
                Some(password) if !password.is_empty() && password.len() <= MAX_PASSWORD_LEN => {
                    Some(hash_password(password).await?)
                }
                Some(_) => {
                    return Err(ApiError::bad_request(format!("password must be 1 to {MAX_PASSWORD_LEN} bytes")));
                }
            };
            let new_token = random_token(32);
            let token_sha256 = token_hash(&new_token);
            token = Some(new_token);
            ShareAudience::Public { token_sha256, password_hash, max_downloads: body.max_downloads }
        }
    };
    let share = Share {
        id: hex::encode(rand::random::<[u8; 16]>()),
        bucket: body.bucket.clone(),
        key: body.key.clone(),
        created_by: user.id.clone(),
        created: now,
        expires,
        revoked: None,
        downloads: 0,
        audience,
    };
    let command = Command::CreateShare(share.clone()).attributed(Some(Actor::User(user.id.clone())), now);
    match state.meta.propose(command).await.map_err(|e| ApiError::unavailable(format!("cannot commit: {e}")))? {
        CommandOutcome::Done => {}
        other => return Err(ApiError::internal("creating the share", &format!("{other:?}"))),
    }
    tracing::info!(user = %user.actor(), share = %share.id, bucket = %share.bucket, key = %share.key, "share created");
    let url = token.map(|t| format!("/s/{t}"));
    Ok(Created { share: ShareJson::new(&share, now), url })
}

/// The query string of `GET /api/v1/shares`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// `true`: the shares made with the caller by others, instead of the caller's own.
    with_me: Option<bool>,
}

/// `GET /api/v1/shares`: the caller's shares (an admin: everyone's), or `?with_me=true` the
/// active ones that name the caller.
pub(crate) async fn list(
    State(state): State<WebState>,
    user: SignedInUser,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let selected = list_shares(&state, &user, query.with_me == Some(true))?;
    Ok(Json(serde_json::json!({ "shares": selected })))
}

/// The shares `user` created (an admin: everyone's), or with `with_me` the active ones that
/// name `user` (the API, a file's page and the "Shared with me" page).
pub(crate) fn list_shares(state: &WebState, user: &SignedInUser, with_me: bool) -> Result<Vec<ShareJson>, ApiError> {
    let shares = state.meta.shares().map_err(|e| ApiError::internal("reading shares", &e))?;
    let now = now_millis();
    Ok(shares
        .iter()
        .filter(|s| {
            if with_me {
                matches!(&s.audience, ShareAudience::User { user: u, .. } if *u == user.id)
                    && share_state(s, now) == "active"
            } else {
                user.is_admin() || s.created_by == user.id
            }
        })
        .map(|s| ShareJson::new(s, now))
        .collect())
}

/// `DELETE /api/v1/shares/{id}`: revoke at once (its creator, the file's owner, or an admin).
pub(crate) async fn revoke(
    State(state): State<WebState>,
    user: SignedInUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    revoke_share(&state, &user, &id).await.map(|()| StatusCode::NO_CONTENT)
}

/// Revokes share `id` as `user` (the API and a file's page): 404 when they may not see it.
pub(crate) async fn revoke_share(state: &WebState, user: &SignedInUser, id: &str) -> Result<(), ApiError> {
    let missing = || ApiError::not_found(format!("no share {id:?}"));
    let share = state.meta.share(id).map_err(|e| ApiError::internal("reading shares", &e))?.ok_or_else(missing)?;
    if share.created_by != user.id && !may_access(&state.meta, user, &share.bucket, Some(&share.key))? {
        return Err(missing());
    }
    let now = now_millis();
    let command =
        Command::RevokeShare { id: id.to_owned(), at: now }.attributed(Some(Actor::User(user.id.clone())), now);
    match state.meta.propose(command).await.map_err(|e| ApiError::unavailable(format!("cannot commit: {e}")))? {
        CommandOutcome::Done => {
            tracing::info!(user = %user.actor(), share = %id, "share revoked");
            Ok(())
        }
        CommandOutcome::Rejected(Rejection::NoSuchKey) => Err(missing()),
        other => Err(ApiError::internal("revoking the share", &format!("{other:?}"))),
    }
}
