//! "My files" (list, new bucket, upload, delete with a confirmation) and a file's own page
//! (placement per region, replace, its shares and history), on top of the API's functions.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::csrf::CsrfForm;
use super::format::{self, download_href, file_href};
use super::lists::{HistoryRow, history_rows, user_label};
use super::{Chrome, PageError, PageUser, render, see_other};
use crate::WebState;
use crate::access::may_access;
use crate::error::ApiError;
use crate::files_api::{ClientAddress, FilesQuery, create_bucket_as, delete_file, list_files, own_buckets};
use crate::history::{HistoryQuery, read_history};
use crate::placement::placement_of;
use crate::shares::{Listing, NewShare, list_shares};

/// Files per page of "My files".
const PAGE_SIZE: usize = 50;
/// History entries on a file's page (the history page has them all).
const FILE_HISTORY: usize = 100;

/// One region's copy of a file, as a cell of the list.
pub(crate) struct RegionCell {
    /// Region name.
    region: String,
    /// Whether its node holds the bytes.
    replicated: bool,
    /// Since when, for the tooltip.
    since: String,
}

/// One row of "My files".
pub(crate) struct FileRow {
    /// Bucket name.
    bucket: String,
    /// The object key, shown and linked to the file's page.
    key: String,
    /// Size for a person.
    size: String,
    /// Content type, or a dash.
    content_type: String,
    /// Last written.
    modified: String,
    /// Copies per region, in the membership's order.
    regions: Vec<RegionCell>,
    /// The file's page.
    href: String,
    /// Its download.
    download: String,
    /// Its delete confirmation.
    delete: String,
}

/// The "My files" page.
#[derive(Template)]
#[template(path = "files.html")]
pub(crate) struct FilesPage {
    /// The layout.
    chrome: Chrome,
    /// What was just done, if anything.
    notice: Option<String>,
    /// Buckets the user may upload to (and filter by).
    buckets: Vec<String>,
    /// The bucket filter, empty for all.
    bucket: String,
    /// The files.
    rows: Vec<FileRow>,
    /// The next page, if any.
    next: Option<String>,
    /// Whether this is a later page (offer the first).
    later_page: bool,
}

/// Query of "My files".
#[derive(Deserialize)]
pub(crate) struct FilesParams {
    /// Only this bucket.
    #[serde(default)]
    bucket: String,
    /// Start behind this file (`BUCKET/KEY`).
    #[serde(default)]
    after: String,
    /// What was just done: `uploaded`, `deleted` or `bucket`.
    #[serde(default)]
    notice: String,
    /// The file or bucket it was done to.
    #[serde(default)]
    name: String,
}

/// The sentence of a notice code (codes, not text, travel in the URL: nobody can make the
/// page say something else by sending a link).
pub(super) fn notice_text(code: &str, name: &str) -> Option<String> {
    match code {
        "uploaded" => Some(format!("Uploaded {name}.")),
        "deleted" => Some(format!("Deleted {name}.")),
        "bucket" => Some(format!("Created bucket {name}. Upload files into it below.")),
        "shared" => Some(format!("Shared with {name}.")),
        "revoked" => Some("Share revoked: it stopped working at once.".to_owned()),
        _ => None,
    }
}

/// Most shares a page lists (a file's page, "Shared with me"); the API pages through the rest.
pub(crate) const SHARES_ON_A_PAGE: usize = 500;

/// `GET /files`.
pub(crate) async fn my_files(
    State(state): State<WebState>,
    page: PageUser,
    Query(params): Query<FilesParams>,
) -> Result<Response, PageError> {
    let query = FilesQuery {
        bucket: Some(params.bucket.clone()).filter(|b| !b.is_empty()),
        after: Some(params.after.clone()).filter(|a| !a.is_empty()),
        limit: Some(PAGE_SIZE),
    };
    let listing = list_files(&state, &page.user, &query)?;
    let rows = listing
        .files
        .into_iter()
        .map(|f| FileRow {
            href: file_href(&f.bucket, &f.key),
            download: download_href(&f.bucket, &f.key),
            delete: format!("/files/delete?{}", format::query(&[("bucket", &f.bucket), ("key", &f.key)])),
            size: format::size(f.size),
            content_type: f.content_type.unwrap_or_else(|| "—".to_owned()),
            modified: format::time(f.modified_ms),
            regions: f
                .regions
                .into_iter()
                .map(|r| RegionCell {
                    since: r
                        .since_ms
                        .map_or_else(|| "waiting for a copy".to_owned(), |ms| format!("since {}", format::time(ms))),
                    region: r.region,
                    replicated: r.replicated,
                })
                .collect(),
            bucket: f.bucket,
            key: f.key,
        })
        .collect();
    let next =
        listing.next.map(|after| format!("/files?{}", format::query(&[("bucket", &params.bucket), ("after", &after)])));
    let view = FilesPage {
        chrome: page.chrome("My files", "files"),
        notice: notice_text(&params.notice, &params.name),
        buckets: own_buckets(&state, &page.user)?,
        bucket: params.bucket,
        rows,
        next,
        later_page: !params.after.is_empty(),
    };
    Ok(render(StatusCode::OK, &view))
}

/// The new-bucket form.
#[derive(Deserialize)]
pub(crate) struct BucketForm {
    /// The bucket's name.
    name: String,
}

/// `POST /files/buckets`.
pub(crate) async fn create_bucket(
    State(state): State<WebState>,
    page: PageUser,
    client: ClientAddress,
    CsrfForm(form): CsrfForm<BucketForm>,
) -> Result<Response, PageError> {
    let name = form.name.trim();
    create_bucket_as(&state, &page.user, client.0, name).await?;
    Ok(see_other(&format!("/files?{}", format::query(&[("notice", "bucket"), ("name", name), ("bucket", name)]))))
}

/// A file named in a query or form.
#[derive(Deserialize)]
pub(crate) struct FileRef {
    /// The bucket of the file the request names.
    bucket: String,
    /// The key of the file the request names.
    key: String,
}

/// The delete confirmation.
#[derive(Template)]
#[template(path = "delete.html")]
pub(crate) struct DeletePage {
    /// The layout.
    chrome: Chrome,
    /// The bucket of the file to delete, sent back with the confirmation.
    bucket: String,
    /// The key of the file to delete, sent back with the confirmation.
    key: String,
    /// Its size, so the person sees what goes.
    size: String,
    /// Back to the file's page.
    href: String,
}

/// 404 unless `user` may change `bucket/key` and it exists (the API's rule and answer).
fn visible_object(
    state: &WebState,
    page: &PageUser,
    bucket: &str,
    key: &str,
) -> Result<meridian_raft::model::ObjectMeta, PageError> {
    let missing = || {
        PageError::Api(ApiError::not_found(format!("There is no file {key:?} in bucket {bucket:?} that you can see.")))
    };
    if !may_access(&state.meta, &page.user, bucket, Some(key))? {
        return Err(missing());
    }
    state.meta.object(bucket, key).map_err(|e| ApiError::internal("reading the file", &e))?.ok_or_else(missing)
}

/// `GET /files/delete?bucket=&key=`: "are you sure?".
pub(crate) async fn confirm_delete(
    State(state): State<WebState>,
    page: PageUser,
    Query(file): Query<FileRef>,
) -> Result<Response, PageError> {
    let object = visible_object(&state, &page, &file.bucket, &file.key)?;
    let view = DeletePage {
        chrome: page.chrome(format!("Delete {}", file.key), "files"),
        size: format::size(object.size),
        href: file_href(&file.bucket, &file.key),
        bucket: file.bucket,
        key: file.key,
    };
    Ok(render(StatusCode::OK, &view))
}

/// `POST /files/delete`: the confirmed delete.
pub(crate) async fn delete(
    State(state): State<WebState>,
    page: PageUser,
    client: ClientAddress,
    CsrfForm(file): CsrfForm<FileRef>,
) -> Result<Response, PageError> {
    delete_file(&state, &page.user, client.0, &file.bucket, &file.key).await?;
    let name = format!("{}/{}", file.bucket, file.key);
    Ok(see_other(&format!("/files?{}", format::query(&[("notice", "deleted"), ("name", &name)]))))
}

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
}

/// Builds a file's page (the page itself, and the answer to a new share).
async fn file_view(
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
    Ok(FilePage {
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

/// Query of a file's page (and of "Shared with me").
#[derive(Deserialize)]
pub(crate) struct FileParams {
    /// What was just done (see [`notice_text`]).
    #[serde(default)]
    pub(super) notice: String,
    /// To whom.
    #[serde(default)]
    pub(super) name: String,
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

/// The two share forms of a file's page.
#[derive(Deserialize)]
pub(crate) struct ShareForm {
    /// The bucket of the file to share.
    bucket: String,
    /// The key of the file to share.
    key: String,
    /// `public` or `user`.
    kind: String,
    /// Seconds until it expires; empty: never.
    #[serde(default)]
    expires_in_secs: String,
    /// Public link: a password; empty: none.
    #[serde(default)]
    password: String,
    /// Public link: most downloads; empty: no limit.
    #[serde(default)]
    max_downloads: String,
    /// User share: the user id.
    #[serde(default)]
    user: String,
    /// User share: `read` or `write`.
    #[serde(default)]
    permission: String,
}

/// An optional number field: empty is `None`, anything else must parse.
fn number(field: &str, text: &str) -> Result<Option<u64>, ApiError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| ApiError::bad_request(format!("{field} must be a whole number")))
}

/// `http://HOST` of the request (https behind a TLS proxy): the one-time link is shown whole,
/// ready to paste.
fn origin(headers: &HeaderMap) -> String {
    let host = headers.get(axum::http::header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("localhost");
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
    format!("{}://{host}", if https { "https" } else { "http" })
}

/// `POST /shares`: a public link (its URL shown once, on the file's page rendered in answer)
/// or a share with a named user.
pub(crate) async fn create_share(
    State(state): State<WebState>,
    page: PageUser,
    client: ClientAddress,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<ShareForm>,
) -> Result<Response, PageError> {
    let public = match form.kind.as_str() {
        "public" => true,
        "user" => false,
        _ => return Err(ApiError::bad_request("kind must be public or user").into()),
    };
    let request = NewShare {
        bucket: form.bucket.clone(),
        key: form.key.clone(),
        user: (!public).then(|| form.user.clone()),
        permission: (!public).then(|| form.permission.clone()).filter(|p| !p.is_empty()),
        expires_in_secs: number("expiry", &form.expires_in_secs)?,
        password: Some(form.password.clone()).filter(|p| public && !p.is_empty()),
        max_downloads: if public { number("download limit", &form.max_downloads)? } else { None },
    };
    let created = crate::shares::create_share(&state, &page.user, client.0, request).await?;
    match created.url {
        Some(path) => {
            let url = format!("{}{path}", origin(&headers));
            let notice = Some("Public link created. Copy it now: it is shown only this once.".to_owned());
            let view = file_view(&state, &page, &form.bucket, &form.key, notice, Some(url)).await?;
            Ok(render(StatusCode::CREATED, &view))
        }
        None => {
            let name = user_label(&state, &form.user);
            let query = format::query(&[("notice", "shared"), ("name", &name)]);
            Ok(see_other(&format!("{}?{query}", file_href(&form.bucket, &form.key))))
        }
    }
}

/// The revoke button's form.
#[derive(Deserialize)]
pub(crate) struct RevokeForm {
    /// Share id.
    id: String,
    /// The file's bucket, to go back to its page.
    bucket: String,
    /// The file's key.
    key: String,
}

/// `POST /shares/revoke`.
pub(crate) async fn revoke_share(
    State(state): State<WebState>,
    page: PageUser,
    client: ClientAddress,
    CsrfForm(form): CsrfForm<RevokeForm>,
) -> Result<Response, PageError> {
    crate::shares::revoke_share(&state, &page.user, client.0, &form.id).await?;
    Ok(see_other(&format!("{}?notice=revoked", file_href(&form.bucket, &form.key))))
}
