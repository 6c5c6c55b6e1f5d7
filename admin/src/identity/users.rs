//! `GET /api/v1/users`: the people known to the panel, for picking whom to share with.
//!
//! Any signed-in user sees the users that exist (id, login, name); an admin also sees e-mail,
//! roles, sign-in times and the users deleted upstream, with when that was noticed.

use axum::Json;
use axum::extract::{Query, State};
use meridian_raft::model::User;
use serde::{Deserialize, Serialize};

use super::signed_in::SignedInUser;
use crate::WebState;
use crate::error::ApiError;

/// Largest page.
const MAX_LIMIT: usize = 1000;

/// Query of `GET /api/v1/users`.
#[derive(Deserialize)]
pub(crate) struct ListQuery {
    /// Page size, 1..=1000 (default 1000).
    limit: Option<usize>,
    /// Start after this user id (the previous page's `next_after`).
    after: Option<String>,
}

/// One user of the list. The fields after `name` are shown to admins only.
#[derive(Serialize)]
pub(crate) struct UserEntry {
    /// User id (the Auth service's `sub`).
    id: String,
    /// Sign-in name.
    login: String,
    /// Display name.
    name: String,
    /// E-mail (admins).
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    /// Roles (admins).
    #[serde(skip_serializing_if = "Option::is_none")]
    roles: Option<Vec<String>>,
    /// Whether the Auth service no longer has the user (admins).
    #[serde(skip_serializing_if = "Option::is_none")]
    deleted: Option<bool>,
    /// When the sync noticed the deletion, ms since the epoch (admins).
    #[serde(skip_serializing_if = "Option::is_none")]
    deleted_at: Option<i64>,
    /// Last sign-in through the panel, ms since the epoch (admins).
    #[serde(skip_serializing_if = "Option::is_none")]
    last_sign_in: Option<i64>,
    /// When the profile last changed, ms since the epoch (admins).
    #[serde(skip_serializing_if = "Option::is_none")]
    updated: Option<i64>,
}

impl UserEntry {
    fn new(user: User, admin: bool) -> Self {
        let p = user.profile;
        Self {
            id: p.id,
            login: p.login,
            name: p.name,
            email: admin.then_some(p.email),
            roles: admin.then_some(p.roles),
            deleted: admin.then_some(user.deleted.is_some()),
            deleted_at: user.deleted.filter(|_| admin),
            last_sign_in: user.last_sign_in.filter(|_| admin),
            updated: admin.then_some(user.updated),
        }
    }
}

/// The answer.
#[derive(Serialize)]
pub(crate) struct UserList {
    /// The users, by id.
    users: Vec<UserEntry>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_after: Option<String>,
}

/// `GET /api/v1/users`.
pub(crate) async fn list(
    State(state): State<WebState>,
    caller: SignedInUser,
    Query(query): Query<ListQuery>,
) -> Result<Json<UserList>, ApiError> {
    let limit = query.limit.unwrap_or(MAX_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!("limit must be 1..={MAX_LIMIT}")));
    }
    let admin = caller.is_admin();
    let all = state.meta.users().map_err(|e| ApiError::internal("reading the user list", &e))?;
    let mut visible = all
        .into_iter()
        .filter(|u| query.after.as_deref().is_none_or(|after| u.profile.id.as_str() > after))
        .filter(|u| admin || u.deleted.is_none());
    let users: Vec<UserEntry> = visible.by_ref().take(limit).map(|u| UserEntry::new(u, admin)).collect();
    let next_after = if visible.next().is_some() { users.last().map(|u| u.id.clone()) } else { None };
    Ok(Json(UserList { users, next_after }))
}
