//! The "My files" page: the files a user may see, page by page, with their replication per
//! region, the buckets they may upload to, and the notice of what was just done.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::notice_text;
use crate::WebState;
use crate::files_api::{FilesQuery, list_files, own_buckets};
use crate::pages::format::{self, download_href, file_href};
use crate::pages::{Chrome, PageError, PageUser, render};

/// Files per page of "My files".
const PAGE_SIZE: usize = 50;

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
