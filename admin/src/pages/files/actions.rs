//! The forms of "My files" and of a file's page that change something: a new bucket, a delete
//! (with its confirmation page), a new share and a revocation. Each calls the API's function as
//! the signed-in user, then sends the browser back to a page saying what was done.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::detail::file_view;
use super::visible_object;
use crate::WebState;
use crate::error::ApiError;
use crate::files_api::{ClientAddress, create_bucket_as, delete_file};
use crate::pages::csrf::CsrfForm;
use crate::pages::format::{self, file_href};
use crate::pages::lists::user_label;
use crate::pages::{Chrome, PageError, PageUser, render, see_other};
use crate::shares::NewShare;

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

/// The restore button's form.
#[derive(Deserialize)]
pub(crate) struct RestoreForm {
    /// The file's bucket.
    bucket: String,
    /// The file's key.
    key: String,
    /// The version to restore.
    version_id: String,
}

/// `POST /files/restore`: the chosen version becomes a new current version, then back to the
/// file's page.
pub(crate) async fn restore_version(
    State(state): State<WebState>,
    page: PageUser,
    client: ClientAddress,
    CsrfForm(form): CsrfForm<RestoreForm>,
) -> Result<Response, PageError> {
    crate::versions_api::restore_version(&state, &page.user, client.0, &form.bucket, &form.key, &form.version_id)
        .await?;
    let query = format::query(&[("notice", "restored"), ("name", &form.version_id)]);
    Ok(see_other(&format!("{}?{query}", file_href(&form.bucket, &form.key))))
}
