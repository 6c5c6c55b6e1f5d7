//! A file's own page: its size and owner, its placement per region, its shares and its
//! history, with the forms to replace, share and delete it (handled in [`super::actions`]).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::{FileParams, SHARES_ON_A_PAGE, notice_text, visible_object};
use crate::WebState;
use crate::error::ApiError;
use crate::history::{HistoryQuery, read_history};
use crate::pages::format::{self, download_href, file_href};
use crate::pages::lists::{HistoryRow, history_rows, user_label};
use crate::pages::{Chrome, PageError, PageUser, render};
use crate::placement::placement_of;
use crate::shares::{Listing, list_shares};

/// History entries on a file's page (the history page has them all).
const FILE_HISTORY: usize = 100;

/// One region of a file's placement.
pub(crate) struct PlacementRow {
    /// Region name (or the node id of a node no longer a member).
    region: String,
    /// Whether it holds the bytes.
    held: bool,
    /// Since when, or "waiting".
    since: String,
}

/// One share of a file.
pub(crate) struct ShareRow {
    /// Share id (for revoking).
    id: String,
    /// "Public link" or the user's name.
    audience: String,
    /// `read` / `write` for user shares; the link's password and limit otherwise.
    terms: String,
    /// Downloads so far (links).
    downloads: String,
    /// When it expires.
    expires: String,
    /// `active`, `expired`, `exhausted` or `revoked`.
    state: &'static str,
}

/// One version of the file, for the versions table.
pub(crate) struct VersionRow {
    /// Version id.
    id: String,
    /// Size, written for a person ("—" for a delete marker).
    size: String,
    /// When it was written.
    modified: String,
    /// Whether it is the file as it is now.
    latest: bool,
    /// Whether it is a delete marker.
    delete_marker: bool,
}

/// A user to share with.
pub(crate) struct UserChoice {
    /// User id (the form's value).
    id: String,
    /// Name and login.
    label: String,
}

/// A file's page.
#[derive(Template)]
#[template(path = "file.html")]
pub(crate) struct FilePage {
    /// The layout.
    chrome: Chrome,
    /// What was just done.
    notice: Option<String>,
    /// The public link just created: shown this once, with a copy button.
    created_url: Option<String>,
    /// The file's bucket, for the heading and the forms.
    bucket: String,
    /// The file's key, for the heading and the forms.
    key: String,
    /// The size, written for a person.
    size: String,
    /// Content type.
    content_type: String,
    /// ETag.
    etag: String,
    /// Last written.
    modified: String,
    /// Owner's name, or "no owner".
    owner: String,
    /// Whether every region holds it.
    replicated: bool,
    /// Placement per region.
    placement: Vec<PlacementRow>,
    /// Download link.
    download: String,
    /// Delete confirmation link.
    delete: String,
    /// Shares of the file.
    shares: Vec<ShareRow>,
    /// Users to share with.
    users: Vec<UserChoice>,
    /// Its history (named as the shared history table expects).
    rows: Vec<HistoryRow>,
    /// This page, where an upload of a new version comes back to.
    href: String,
    /// The whole history of the file, on the history page.
    history_href: String,
    /// Its versions, newest first (the page is its owner's and admins', who may restore any).
    versions: Vec<VersionRow>,
}

/// Builds a file's page (the page itself, and the answer to a new share).
pub(super) async fn file_view(
    state: &WebState,
    page: &PageUser,
    bucket: &str,
    key: &str,
    notice: Option<String>,
    created_url: Option<String>,
) -> Result<FilePage, PageError> {
    let object = visible_object(state, page, bucket, key)?;
    let placement = placement_of(state, bucket, key).await?;
    let mut rows: Vec<PlacementRow> = placement
        .holders
        .iter()
        .map(|h| PlacementRow {
            region: h.region.clone().unwrap_or_else(|| format!("node {}", h.node_id)),
            held: true,
            since: format::time(h.since_ms),
        })
        .collect();
    rows.extend(placement.pending.iter().map(|m| PlacementRow {
        region: m.region.clone(),
        held: false,
        since: "waiting for its copy".to_owned(),
    }));
    let now = crate::identity::now_millis();
    let shares = list_shares(state, &page.user, Listing::OfFile { bucket, key }, None, SHARES_ON_A_PAGE)?
        .shares
        .into_iter()
        .map(|s| ShareRow {
            audience: match &s.user {
                Some(user) => user_label(state, user),
                None => "Public link".to_owned(),
            },
            terms: match s.permission.as_deref() {
                Some("write") => "may download and replace".to_owned(),
                Some(_) => "may download".to_owned(),
                None => {
                    let password = if s.has_password { "password" } else { "no password" };
                    match s.max_downloads {
                        Some(max) => format!("{password}, at most {max} downloads"),
                        None => password.to_owned(),
                    }
                }
            },
            downloads: if s.kind == "public" { s.downloads.to_string() } else { "—".to_owned() },
            expires: match s.expires_ms {
                Some(ms) if ms <= now => format!("expired {}", format::time(ms)),
                Some(ms) => format::time(ms),
                None => "never".to_owned(),
            },
            state: s.state,
            id: s.id,
        })
        .collect();
    let users = state
        .meta
        .users()
        .map_err(|e| ApiError::internal("reading the user list", &e))?
        .into_iter()
        .filter(|u| u.deleted.is_none() && u.profile.id != page.user.id)
        .map(|u| UserChoice {
            label: if u.profile.name.is_empty() {
                u.profile.login.clone()
            } else {
                format!("{} ({})", u.profile.name, u.profile.login)
            },
            id: u.profile.id,
        })
        .collect();
    let file = format!("{bucket}/{key}");
    let history_query = HistoryQuery { file: Some(file.clone()), limit: Some(FILE_HISTORY), ..HistoryQuery::default() };
    let history = history_rows(state, read_history(state, &page.user, &history_query)?.entries);
    let read_owner = |e: meridian_raft::StoreError| ApiError::internal("reading owners", &e);
    // A file written into a user's bucket by an S3 client or upload link is the bucket owner's.
    let owner = match state.meta.object_owner(bucket, key).map_err(read_owner)? {
        Some(id) => user_label(state, &id),
        None => match state.meta.bucket_owner(bucket).map_err(read_owner)? {
            Some(id) => format!("{} (owns the bucket)", user_label(state, &id)),
            None => "nobody: written with an S3 key (administrators only)".to_owned(),
        },
    };
    let versions = crate::versions_api::list_versions(state, &page.user, bucket, key)?
        .into_iter()
        .map(|v| VersionRow {
            size: v.size.map_or_else(|| "—".to_owned(), format::size),
            modified: format::time(v.modified_ms),
            latest: v.latest,
            delete_marker: v.delete_marker,
            id: v.version_id,
        })
        .collect();
    Ok(FilePage {
        versions,
        chrome: page.chrome(key.to_owned(), "files"),
        notice,
        created_url,
        size: format::size(object.size),
        content_type: object.headers.content_type.clone().unwrap_or_else(|| "—".to_owned()),
        etag: object.etag.clone(),
        modified: format::time(object.last_modified),
        owner,
        replicated: placement.replicated,
        placement: rows,
        download: download_href(bucket, key),
        delete: format!("/files/delete?{}", format::query(&[("bucket", bucket), ("key", key)])),
        shares,
        users,
        rows: history,
        href: file_href(bucket, key),
        history_href: format!("/history?{}", format::query(&[("file", &file)])),
        bucket: bucket.to_owned(),
        key: key.to_owned(),
    })
}

/// `GET /file/{bucket}/{*key}`.
pub(crate) async fn file_page(
    State(state): State<WebState>,
    page: PageUser,
    Path((bucket, key)): Path<(String, String)>,
    Query(params): Query<FileParams>,
) -> Result<Response, PageError> {
    let view = file_view(&state, &page, &bucket, &key, notice_text(&params.notice, &params.name), None).await?;
    Ok(render(StatusCode::OK, &view))
}
