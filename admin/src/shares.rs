//! `/api/v1/shares`: sharing a file by public link or with named users, listing and revoking.
//!
//! Shares live in the replicated store (`Command::CreateShare`/`RevokeShare`/`UseShare`), so a
//! link works on every node and a revocation holds everywhere once applied. A public link's token
//! is 256 random bits, handed out once at creation and stored only as its SHA-256; its password,
//! if any, only as an argon2id hash. The link itself is served by `share_page`.

use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::{PasswordHasher as _, SaltString};
use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use base64::Engine as _;
use meridian_raft::Command;
use meridian_raft::model::{Share, ShareAudience, SharePermission, ShareState};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::WebState;
use crate::access::{may_access, may_revoke};
use crate::error::ApiError;
use crate::files_api::{ClientAddress, propose_as};
use crate::identity::{SignedInUser, now_millis};
use crate::route::object;

/// Longest expiry a share may be given: ten years.
const MAX_EXPIRY_SECS: u64 = 10 * 365 * 24 * 3600;
/// Longest link password accepted (argon2 takes any length; this bounds the work per attempt).
pub(crate) const MAX_PASSWORD_LEN: usize = 256;
/// Shares per page of `GET /api/v1/shares` when the caller does not say.
const DEFAULT_LIMIT: usize = 100;
/// Most shares per page.
const MAX_LIMIT: usize = 500;

/// The hex SHA-256 of a link token: how the store knows it.
pub(crate) fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
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
    pub(crate) permission: Option<String>,
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
                ("user", Some(user.clone()), Some(permission.to_string()), false, None)
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
            state: share.state(now).as_str(),
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

/// How long a new link's password waits for an argon2 permit before the answer is 429.
const HASH_WAIT: Duration = Duration::from_secs(10);

/// argon2id of the password, as a PHC string (the crate's default, OWASP-grade parameters).
/// Runs under the same permits as the links' password checks: creating links in a loop cannot
/// take more memory and blocking threads than the cap allows.
async fn hash_password(
    permits: &Arc<tokio::sync::Semaphore>,
    wait: Duration,
    password: String,
) -> Result<String, ApiError> {
    let permit = match tokio::time::timeout(wait, Arc::clone(permits).acquire_owned()).await {
        Ok(Ok(permit)) => permit,
        Ok(Err(closed)) => return Err(ApiError::internal("waiting to hash the password", &closed)),
        Err(_) => {
            tracing::warn!("share password hashing busy");
            return Err(ApiError {
                status: StatusCode::TOO_MANY_REQUESTS,
                code: "busy",
                message: "too many passwords are being checked or hashed right now; try again in a few seconds".into(),
            });
        }
    };
    tokio::task::spawn_blocking(move || {
        // Held until argon2 is done, even if the client has gone.
        let _permit = permit;
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
    client: ClientAddress,
    body: Result<Json<NewShare>, JsonRejection>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    create_share(&state, &user, client.0, body).await.map(|created| (StatusCode::CREATED, Json(created)))
}

/// Creates the share `body` describes as `user`, asked from `client` (the API and a file's page).
pub(crate) async fn create_share(
    state: &WebState,
    user: &SignedInUser,
    client: String,
    body: NewShare,
) -> Result<Created, ApiError> {
    let missing = || ApiError::not_found(format!("no file {:?} in bucket {:?}", body.key, body.bucket));
    if !may_access(&state.meta, user, &body.bucket, Some(&body.key))? {
        return Err(missing());
    }
    // Through a read barrier when it is not here yet: a file uploaded a moment ago in another
    // region can be shared at once. Apply checks again (it may be deleted meanwhile).
    object(state, &body.bucket, &body.key)
        .await
        .map_err(|e| if e.status == StatusCode::NOT_FOUND { missing() } else { e })?;
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
                    Some(hash_password(state.share_links.argon2_permits(), HASH_WAIT, password).await?)
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
    // A file deleted meanwhile is refused in apply (NoSuchKey): the same 404.
    propose_as(state, user, client, Command::CreateShare(share.clone()))
        .await
        .map_err(|e| if e.status == StatusCode::NOT_FOUND { missing() } else { e })?;
    tracing::info!(user = %user.actor(), share = %share.id, bucket = %share.bucket, key = %share.key, "share created");
    let url = token.map(|t| format!("/s/{t}"));
    Ok(Created { share: ShareJson::new(&share, now), url })
}

/// The query string of `GET /api/v1/shares`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// `true`: the active shares made with the caller by others, instead of the caller's own.
    with_me: Option<bool>,
    /// `BUCKET/KEY`: every share of that file (its owner or an admin), whoever made it.
    file: Option<String>,
    /// The `next` of the previous page.
    after: Option<String>,
    /// Most shares in the page (1..=500, default 100).
    limit: Option<usize>,
}

/// A page of shares.
#[derive(Debug, Serialize)]
pub(crate) struct SharesPage {
    /// The shares, in the order of the listing (see docs/admin.md).
    pub(crate) shares: Vec<ShareJson>,
    /// Pass as `after` to go on; `null` at the end.
    pub(crate) next: Option<String>,
}

/// `GET /api/v1/shares`: the caller's shares (an admin: everyone's), `?with_me=true` the active
/// ones that name the caller, or `?file=BUCKET/KEY` all shares of a file the caller may manage.
/// Paged through indexes: no request reads the whole share table.
pub(crate) async fn list(
    State(state): State<WebState>,
    user: SignedInUser,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<SharesPage>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = crate::error::page_limit(query.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let listing = match (&query.file, query.with_me == Some(true)) {
        (Some(_), true) => return Err(ApiError::bad_request("with_me and file do not go together")),
        (Some(file), false) => {
            let (bucket, key) = file.split_once('/').ok_or_else(|| ApiError::bad_request("file must be BUCKET/KEY"))?;
            Listing::OfFile { bucket, key }
        }
        (None, true) => Listing::WithMe,
        (None, false) => Listing::Mine,
    };
    list_shares(&state, &user, listing, query.after.as_deref(), limit).map(Json)
}

/// Which shares a listing shows.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Listing<'a> {
    /// The caller's own (an admin: everyone's).
    Mine,
    /// The active shares that name the caller.
    WithMe,
    /// Every share of one file the caller may manage, whoever made it.
    OfFile {
        /// The file's bucket.
        bucket: &'a str,
        /// The file's key.
        key: &'a str,
    },
}

/// A page of the shares `listing` asks for, as `user` may see them (the API, a file's page and
/// the "Shared with me" page). Paged through indexes: no request reads the whole share table.
pub(crate) fn list_shares(
    state: &WebState,
    user: &SignedInUser,
    listing: Listing<'_>,
    after: Option<&str>,
    limit: usize,
) -> Result<SharesPage, ApiError> {
    let read = |e: meridian_raft::StoreError| ApiError::internal("reading shares", &e);
    let page = match listing {
        Listing::OfFile { bucket, key } => {
            if !may_access(&state.meta, user, bucket, Some(key))? {
                return Err(ApiError::not_found(format!("no file {key:?} in bucket {bucket:?}")));
            }
            state.meta.shares_of_object(bucket, key, after, limit).map_err(read)?
        }
        Listing::WithMe => state.meta.shares_with_user(&user.id, after, limit).map_err(read)?,
        Listing::Mine if user.is_admin() => state.meta.shares_page(after, limit).map_err(read)?,
        Listing::Mine => state.meta.shares_created_by(&user.id, after, limit).map_err(read)?,
    };
    let now = now_millis();
    let with_me = matches!(listing, Listing::WithMe);
    let shares = page
        .shares
        .iter()
        .filter(|s| !with_me || s.state(now) == ShareState::Active)
        .map(|s| ShareJson::new(s, now))
        .collect();
    Ok(SharesPage { shares, next: page.next })
}

/// `DELETE /api/v1/shares/{id}`: revoke at once (its creator, the file's owner, or an admin).
pub(crate) async fn revoke(
    State(state): State<WebState>,
    user: SignedInUser,
    client: ClientAddress,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    revoke_share(&state, &user, client.0, &id).await.map(|()| StatusCode::NO_CONTENT)
}

/// Revokes share `id` as `user`, asked from `client` (the API and a file's page): 404 when they
/// may not see it.
pub(crate) async fn revoke_share(
    state: &WebState,
    user: &SignedInUser,
    client: String,
    id: &str,
) -> Result<(), ApiError> {
    let missing = || ApiError::not_found(format!("no share {id:?}"));
    let share = state.meta.share(id).map_err(|e| ApiError::internal("reading shares", &e))?.ok_or_else(missing)?;
    if !may_revoke(&state.meta, user, &share)? {
        return Err(missing());
    }
    let command = Command::RevokeShare { id: id.to_owned(), at: now_millis() };
    // Already revoked (NoSuchKey in apply): the same 404 as an unknown id.
    propose_as(state, user, client, command)
        .await
        .map_err(|e| if e.status == StatusCode::NOT_FOUND { missing() } else { e })?;
    tracing::info!(user = %user.actor(), share = %id, "share revoked");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hashing a new link's password takes one of the permits that bound argon2 (the same ones
    /// the links' password checks take): with none free it waits, then answers 429.
    #[tokio::test]
    async fn hashing_waits_for_an_argon2_permit() {
        let permits = Arc::new(tokio::sync::Semaphore::new(1));
        let held = Arc::clone(&permits).acquire_owned().await.expect("permit");
        let busy = hash_password(&permits, Duration::from_millis(50), "pw".into()).await;
        assert_eq!(busy.err().map(|e| e.status), Some(StatusCode::TOO_MANY_REQUESTS), "no permit: 429");
        drop(held);
        let hash = hash_password(&permits, Duration::from_millis(50), "pw".into()).await.expect("hashed");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert_eq!(permits.available_permits(), 1, "the permit is given back");
    }
}
