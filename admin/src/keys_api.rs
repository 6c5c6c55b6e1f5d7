//! The S3 access keys, for admins: `GET /api/v1/keys` lists them (never their secrets),
//! `POST /api/v1/keys/{id}/disable` and `/enable` switch one off and on, `DELETE
//! /api/v1/keys/{id}` deletes it. A change is committed through Raft, so every node's S3
//! listener refuses a disabled or deleted key from the moment the call returns (the S3 auth path
//! reads keys linearizably).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use meridian_raft::model::AccessKeyInfo;
use meridian_raft::{Command, CommandOutcome};
use serde::Serialize;

use crate::WebState;
use crate::error::ApiError;
use crate::files_api::{ClientAddress, propose_as};
use crate::identity::{SignedInUser, now_millis};

/// One key of the list.
#[derive(Debug, Serialize)]
pub(crate) struct KeyEntry {
    /// The access key id.
    id: String,
    /// Its human name.
    name: String,
    /// When it was created, ms since the epoch (0 for the keys installed from the config).
    created: i64,
    /// `user:ID` or `service:NAME`.
    owner: String,
    /// False for a key with no recorded owner (made before owners existed, or installed from
    /// the config): `owner` is then the service named after the key.
    owner_recorded: bool,
    /// Whether it is disabled.
    disabled: bool,
    /// When it was disabled, ms since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    disabled_at: Option<i64>,
}

impl From<AccessKeyInfo> for KeyEntry {
    fn from(key: AccessKeyInfo) -> Self {
        Self {
            id: key.id,
            name: key.name,
            created: key.created,
            owner: key.owner.to_string(),
            owner_recorded: key.owner_recorded,
            disabled: key.disabled.is_some(),
            disabled_at: key.disabled,
        }
    }
}

/// The answer of `GET /api/v1/keys`.
#[derive(Debug, Serialize)]
pub(crate) struct KeyList {
    /// Every key, by id.
    keys: Vec<KeyEntry>,
}

/// The answer of a disable or enable: the key's new state.
#[derive(Debug, Serialize)]
pub(crate) struct KeyState {
    /// The access key id.
    id: String,
    /// Whether it is now disabled.
    disabled: bool,
}

/// Keys are for admins only: anyone else gets 403 (401 without a session, from the extractor).
fn require_admin(user: &SignedInUser) -> Result<(), ApiError> {
    if user.is_admin() {
        Ok(())
    } else {
        tracing::warn!(user = %user.actor(), "non-admin asked for the access keys");
        Err(ApiError::forbidden("managing access keys needs the admin role"))
    }
}

/// `GET /api/v1/keys`: every key, as of a read index (nothing committed elsewhere before the
/// call is missed).
pub(crate) async fn list(State(state): State<WebState>, user: SignedInUser) -> Result<Json<KeyList>, ApiError> {
    require_admin(&user)?;
    state.meta.read_barrier().await.map_err(|e| ApiError::unavailable(format!("cannot read the keys now: {e}")))?;
    let keys = state.meta.access_keys().map_err(|e| ApiError::internal("reading the key store", &e))?;
    Ok(Json(KeyList { keys: keys.into_iter().map(KeyEntry::from).collect() }))
}

/// Commits a key command as `user`; NoSuchKey becomes a 404 naming the key.
async fn change(
    state: &WebState,
    user: &SignedInUser,
    client: String,
    id: &str,
    command: Command,
) -> Result<CommandOutcome, ApiError> {
    propose_as(state, user, client, command).await.map_err(|e| {
        if e.status == StatusCode::NOT_FOUND { ApiError::not_found(format!("no access key {id:?}")) } else { e }
    })
}

/// `POST /api/v1/keys/{id}/disable`.
pub(crate) async fn disable(
    State(state): State<WebState>,
    user: SignedInUser,
    client: ClientAddress,
    Path(id): Path<String>,
) -> Result<Json<KeyState>, ApiError> {
    set_disabled(&state, &user, client, id, true).await
}

/// `POST /api/v1/keys/{id}/enable`.
pub(crate) async fn enable(
    State(state): State<WebState>,
    user: SignedInUser,
    client: ClientAddress,
    Path(id): Path<String>,
) -> Result<Json<KeyState>, ApiError> {
    set_disabled(&state, &user, client, id, false).await
}

/// Disables or enables key `id` as an admin.
async fn set_disabled(
    state: &WebState,
    user: &SignedInUser,
    client: ClientAddress,
    id: String,
    disabled: bool,
) -> Result<Json<KeyState>, ApiError> {
    require_admin(user)?;
    let command = Command::SetAccessKeyDisabled { id: id.clone(), disabled: disabled.then(now_millis) };
    change(state, user, client.0, &id, command).await?;
    tracing::info!(user = %user.actor(), access_key = %id, disabled, "access key state changed");
    Ok(Json(KeyState { id, disabled }))
}

/// `DELETE /api/v1/keys/{id}`.
pub(crate) async fn delete(
    State(state): State<WebState>,
    user: SignedInUser,
    client: ClientAddress,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_admin(&user)?;
    change(&state, &user, client.0, &id, Command::DeleteAccessKey { id: id.clone() }).await?;
    tracing::info!(user = %user.actor(), access_key = %id, "access key deleted");
    Ok(StatusCode::NO_CONTENT)
}
